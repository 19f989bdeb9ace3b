#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Differential check of events/schema*.c (the validator) against python3-jsonschema.

For every schema of schemas/ (and every definition of defs.json) it generates
instances from a fixed seed, valid ones from the schema and mutations of them,
validates each with jsonschema's Draft7Validator (project $refs served from
disk) and with the C validator (tests/fuzz/validate_tool), and fails listing
every instance the two judge differently.

usage: tests/fuzz/differential.py [BUILD_DIR] [--count N] [--seed S]
"""
import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import time
import warnings

try:
    import jsonschema
except ImportError:  # Debian's python3-jsonschema (.ci/deps) when python3 is another build
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = os.path.join(ROOT, "schemas")

# ---- formats ----------------------------------------------------------------
# Draft-07 leaves format assertion optional. jsonschema asserts none unless a
# FormatChecker is given (and which ones it has depends on optional modules);
# events/schema_formats.c asserts every draft-07 format (the optional suite of
# tests/unit/check_schema_suite.c pins them). The schemas of schemas/ use only
# date-time, so both sides get date-time, date, time (RFC 3339 section 5.6,
# RFC 3339 section 5.7 ranges) and email (one '@' with text on both sides, no
# white space), here written from the RFCs rather than from the C code.

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))", re.ASCII)


def _is_date(s):
    m = _DATE.fullmatch(s)
    if not m:
        return False
    y, month, day = int(m[1]), int(m[2]), int(m[3])
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    mdays = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return 1 <= month <= 12 and 1 <= day <= mdays[month - 1]


def _is_time(s):
    m = _TIME.fullmatch(s)
    if not m:
        return False
    ok = int(m[1]) <= 23 and int(m[2]) <= 59 and int(m[3]) <= 60  # 60: a leap second
    return ok and (m[6] is None or (int(m[6]) <= 23 and int(m[7]) <= 59))


def _is_date_time(s):
    return len(s) > 11 and s[10] in "Tt" and _is_date(s[:10]) and _is_time(s[11:])


def _is_email(s):
    local, at, domain = s.partition("@")
    return bool(at) and bool(local) and bool(domain) and "@" not in domain and not any(
        c in " \t\n\v\f\r" for c in s)


def format_checker():
    fc = jsonschema.FormatChecker(formats=())
    for name, fn in (("date-time", _is_date_time), ("date", _is_date), ("time", _is_time),
                     ("email", _is_email)):
        fc.checks(name)(lambda v, fn=fn: not isinstance(v, str) or fn(v))
    return fc


# ---- pattern ----------------------------------------------------------------
# JSON Schema patterns are ECMA 262, and jsonschema runs them with Python's re,
# where '$' also matches before a final newline ("ABC\n" would match ^[A-Z]{3}$).
# ECMA's '$' (no multiline flag) is the end of input: \Z. The C side (POSIX ERE
# without REG_NEWLINE) agrees with ECMA.

def ecma_to_python(pattern):
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append("\\Z" if c == "$" and not in_class else c)
        i += 1
    return "".join(out)


def _pattern(validator, patrn, instance, schema):
    if validator.is_type(instance, "string") and not re.search(ecma_to_python(patrn),
                                                               instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})


# ---- schemas and references ---------------------------------------------------

def load_schemas():
    docs = {}
    for path in sorted(glob.glob(os.path.join(SCHEMA_DIR, "*.json"))):
        name = os.path.basename(path)
        if name != "choreography.json":
            with open(path, encoding="utf-8") as f:
                docs[name] = json.load(f)
    return docs


def make_validator(schema, docs):
    """A validator whose $refs to the project's files are served from disk:
    each document under its $id, its file name and its file:// URI."""
    store = {}
    for name, doc in docs.items():
        for uri in (doc.get("$id"), name, "file://" + os.path.join(SCHEMA_DIR, name)):
            if uri:
                store[uri] = doc
    try:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT7
        registry = Registry().with_resources(
            (uri, Resource.from_contents(doc, default_specification=DRAFT7))
            for uri, doc in store.items())
        return Validator(schema, registry=registry, format_checker=format_checker())
    except ImportError:  # jsonschema < 4.18 (Debian 12's 4.10): RefResolver
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            resolver = jsonschema.RefResolver(schema.get("$id", ""), schema, store=store)
        return Validator(schema, resolver=resolver, format_checker=format_checker())


class Resolver:
    """Follows $refs for the generator (same documents as the validators)."""

    def __init__(self, docs):
        self.docs = docs
        self.by_id = {d.get("$id"): d for d in docs.values() if d.get("$id")}

    def resolve(self, ref, doc):
        target, _, frag = ref.partition("#")
        if target:
            name = target.rsplit("/", 1)[-1]
            doc = self.by_id.get(target) or self.docs[name]
        node = doc
        for tok in filter(None, frag.split("/")):
            node = node[tok.replace("~1", "/").replace("~0", "~")]
        return node, doc


# ---- instance generation ------------------------------------------------------

CHARS = ("abcxyzABCXYZ0189-_.:/@ " "\t\n" "\u00e9\u00df\u00ff" "\u4e2d\u6587"
         "\u2028\u200b\ufeff" "\U0001F600\U00010348")
INT64 = (1 << 63) - 1


class Gen:
    def __init__(self, rng, resolver):
        self.rng = rng
        self.res = resolver

    def text(self, lo, hi):
        n = self.rng.randint(lo, hi)
        return "".join(self.rng.choice(CHARS) for _ in range(n))

    def date_time(self):
        r = self.rng
        y, mo = r.choice([0, 1970, 1999, 2000, 2024, 2025, 2026, 2100, 9999]), r.randint(1, 12)
        d = r.choice([1, 15, 28, 29, 30, 31])
        h, mi, s = r.choice([0, 12, 23, 24]), r.choice([0, 30, 59, 60]), r.choice([0, 59, 60, 61])
        frac = r.choice(["", ".1", ".123", ".123456789"])
        off = r.choice(["Z", "z", "+00:00", "-08:00", "+23:59", "+24:00", "-00:60", "+1:00"])
        t = r.choice(["T", "t"])
        return f"{y:04d}-{mo:02d}-{d:02d}{t}{h:02d}:{mi:02d}:{s:02d}{frac}{off}"

    def pattern_string(self, pattern):
        r = self.rng
        if pattern == "^[A-Z]{3}$":
            return "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
        if pattern == "^[^@ ]+@[^@ ]+\\.[^@ ]+$":
            return f"{self.text(1, 8).replace('@', '').replace(' ', '') or 'a'}@" \
                   f"{r.choice(['example', 'b', 'x-y'])}.{r.choice(['com', 'io', 'co.uk'])}"
        return self.text(0, 10)

    def valid(self, s, doc, depth=0):
        r = self.rng
        if s is True or s == {}:
            return self.any(depth)
        if "$ref" in s:
            t, tdoc = self.res.resolve(s["$ref"], doc)
            return self.valid(t, tdoc, depth)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return r.choice(s["enum"])
        ty = s.get("type")
        if isinstance(ty, list):
            ty = r.choice(ty)
        if ty == "object" or "properties" in s:
            return self.valid_object(s, doc, depth)
        if ty == "array":
            lo = s.get("minItems", 0)
            n = r.randint(lo, min(s.get("maxItems", lo + 3), lo + 3))
            return [self.valid(s.get("items", True), doc, depth + 1) for _ in range(n)]
        if ty == "integer":
            lo = s.get("minimum", -1000)
            return r.choice([lo, lo + 1, lo + r.randint(0, 100000), INT64, 1 << 53])
        if ty == "number":
            return r.choice([0.5, 1e-300, 1e300, 3.0, -2.5]) + s.get("minimum", 0)
        if ty == "string":
            if "pattern" in s:
                return self.pattern_string(s["pattern"])
            if s.get("format") == "date-time":
                return self.date_time()
            lo = s.get("minLength", 0)
            return self.text(lo, min(s.get("maxLength", lo + 12), lo + 12) if r.random() < 0.8
                             else s.get("maxLength", lo + 12))
        if ty == "boolean":
            return r.choice([True, False])
        if ty == "null":
            return None
        return self.any(depth)

    def valid_object(self, s, doc, depth):
        props, req = s.get("properties", {}), set(s.get("required", []))
        out = {}
        for k, sub in props.items():
            if k in req or self.rng.random() < 0.5:
                out[k] = self.valid(sub, doc, depth + 1)
        if self.rng.random() < 0.2 and s.get("additionalProperties", True) is not False:
            out[self.text(1, 6)] = self.any(depth + 1)
        return out

    def any(self, depth=0):
        r = self.rng
        kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 4 else [])
        k = r.choice(kinds)
        if k == "null":
            return None
        if k == "bool":
            return r.choice([True, False])
        if k == "int":
            return r.choice([0, 1, -1, 64, 65, INT64, -INT64 - 1, r.randint(-10**6, 10**6)])
        if k == "float":
            return r.choice([0.0, -0.0, 1.0, 2.5, -1e-7, 1e308, 64.0, 1.5e300])
        if k == "str":
            return self.text(0, 12)
        if k == "list":
            return [self.any(depth + 1) for _ in range(r.randint(0, 3))]
        return {self.text(1, 5): self.any(depth + 1) for _ in range(r.randint(0, 3))}

    def mutate(self, v, depth=0):
        """One change somewhere in v: a value of another type, a boundary, a
        dropped or added key, a string or number edit."""
        r = self.rng
        if isinstance(v, dict) and v and r.random() < 0.7:
            k = r.choice(sorted(v))
            op = r.random()
            out = dict(v)
            if op < 0.2:
                del out[k]
            elif op < 0.3:
                out[self.text(1, 6)] = self.any(depth + 1)
            else:
                out[k] = self.mutate(v[k], depth + 1)
            return out
        if isinstance(v, list) and v and r.random() < 0.7:
            i = r.randrange(len(v))
            op = r.random()
            if op < 0.15:
                return []
            if op < 0.3:
                return v + [v[i]]
            return v[:i] + [self.mutate(v[i], depth + 1)] + v[i + 1:]
        if isinstance(v, str) and r.random() < 0.7:
            return r.choice([
                "", v + "\n", v + " ", v.lower(), v.upper(), v[:-1], v + v[-1:] * 200,
                v + "\U0001F600", "\u00e9" * len(v), v.replace("-", "/"),
                v[:10] + "T" + v[11:], v + "x"])
        if isinstance(v, bool) or v is None:
            return r.choice([0, 1, "true", [], {}, None if v is not None else False])
        if isinstance(v, (int, float)) and r.random() < 0.8:
            return r.choice([v - 1, v + 1, -v, float(v), v + 0.5, str(v), 0, -1,
                             INT64, -INT64 - 1, 1e19, float(INT64)])
        return self.any(depth)


# ---- the two validators ---------------------------------------------------------

def targets(docs):
    """(C uri, schema, document) of every schema and every definition of defs.json."""
    out = [(name, doc, doc) for name, doc in docs.items()]
    defs = docs.get("defs.json", {})
    base = defs.get("$id", "defs.json")
    for k, sub in sorted(defs.get("definitions", {}).items()):
        out.append((f"{base}#/definitions/{k}", {"$ref": f"{base}#/definitions/{k}"}, defs))
    return out


def in_int64(v):
    """v with integers jansson cannot hold (beyond 64 bits) made floats."""
    if isinstance(v, dict):
        return {k: in_int64(x) for k, x in v.items()}
    if isinstance(v, list):
        return [in_int64(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and not -INT64 - 1 <= v <= INT64:
        return float(v)
    return v


def instances(gen, schema, doc, count):
    out = []
    for i in range(count):
        roll = gen.rng.random()
        v = gen.valid(schema, doc)
        if roll < 0.4:
            pass
        elif roll < 0.9:
            for _ in range(gen.rng.randint(1, 3)):
                v = gen.mutate(v)
        else:
            v = gen.any()
        out.append(in_int64(v))
    return out


def run_c(tool, lines):
    p = subprocess.run([tool, SCHEMA_DIR], input="".join(lines).encode(),
                       capture_output=True, check=False)
    if p.returncode != 0:
        sys.exit(f"differential: {tool} failed ({p.returncode}): {p.stderr.decode()}")
    # Error texts are cut to 160 bytes, maybe inside a UTF-8 sequence.
    return p.stdout.decode("utf-8", "replace").split("\n")[:-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--count", type=int, default=2000, help="instances per schema")
    ap.add_argument("--seed", type=int, default=20261124)
    a = ap.parse_args()
    tool = os.path.join(a.build if os.path.isabs(a.build) else os.path.join(ROOT, a.build),
                        "tests", "fuzz", "validate_tool")
    if not os.access(tool, os.X_OK):
        sys.exit(f"differential: {tool} missing: make test-bins")
    t0 = time.monotonic()
    docs = load_schemas()
    gen = Gen(random.Random(a.seed), Resolver(docs))
    cases, lines = [], []
    for uri, schema, doc in targets(docs):
        v = make_validator(schema, docs)
        for inst in instances(gen, schema, doc, a.count):
            cases.append((uri, inst, v.is_valid(inst), v))
            lines.append(uri + "\t" + json.dumps(inst, ensure_ascii=True) + "\n")
    got = run_c(tool, lines)
    if len(got) != len(cases):
        sys.exit(f"differential: {len(cases)} instances sent, {len(got)} answers")
    bad, n_valid = [], 0
    for (uri, inst, py_ok, v), c in zip(cases, got):
        n_valid += py_ok
        c_ok = c == "valid"
        if (not c_ok and not c.startswith("invalid\t")) or c_ok != py_ok:
            why = "" if py_ok else jsonschema.exceptions.best_match(v.iter_errors(inst)).message
            bad.append(f"  {uri}: {json.dumps(inst, ensure_ascii=False)[:300]}\n"
                       f"    python: {'valid' if py_ok else 'invalid: ' + why[:200]}\n"
                       f"    C:      {c[:200]}")
    n_targets = len({c[0] for c in cases})
    print(f"differential: jsonschema {getattr(jsonschema, '__version__', '?')} against "
          f"events/schema*.c: {n_targets} schemas, {len(cases)} instances ({n_valid} valid, "
          f"{len(cases) - n_valid} invalid), {len(bad)} disagreements "
          f"({time.monotonic() - t0:.1f} s)")
    for b in bad[:50]:
        print(b)
    if len(bad) > 50:
        print(f"  ... {len(bad) - 50} more")
    return 1 if bad else 0


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sys.exit(main())
