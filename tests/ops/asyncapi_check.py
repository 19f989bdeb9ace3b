#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Checks docs/asyncapi.yaml: parses, equals the generator's model, every $ref
# resolves, every contract type and topic is there, valid against AsyncAPI 2.6.
"""usage: asyncapi_check.py ROOT DOC   (exit 1 with one line per problem)"""
import json
import os
import subprocess
import sys

try:
    import yaml
except ImportError:  # Debian's python3-yaml (.ci/deps) when python3 is another build
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)
    return out


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return False
    cur = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(cur, dict) or part not in cur:
            return False
        cur = cur[part]
    return True


def check(root, path):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        return ["%s does not parse: %s" % (path, e)]
    model = json.loads(subprocess.check_output(
        [sys.executable, os.path.join(root, "docs", "gen-asyncapi"), "--json"]))
    if doc != model:
        problems.append("the YAML does not load as the generator's model")
    if doc.get("asyncapi") != "2.6.0":
        problems.append("asyncapi version is %r, not 2.6.0" % doc.get("asyncapi"))
    for r in refs(doc, []):
        if not resolve(doc, r):
            problems.append("$ref %s does not resolve" % r)
    with open(os.path.join(root, "schemas", "choreography.json"), encoding="utf-8") as f:
        contract = json.load(f)
    msgs = doc.get("components", {}).get("messages", {})
    chans = doc.get("channels", {})
    for etype, route in contract["events"].items():
        if etype not in msgs:
            problems.append("no message for %s" % etype)
        if route["topic"] not in chans:
            problems.append("no channel for topic %s" % route["topic"])
    for svc in contract["services"]:
        if "dlq." + svc not in chans:
            problems.append("no dead-letter channel for %s" % svc)
    problems.extend(validate(root, doc))
    return problems


def validate(root, doc):
    try:
        import jsonschema
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")  # Debian's python3-jsonschema
        try:
            import jsonschema
        except ImportError:
            print("asyncapi: python jsonschema not installed: schema validation skipped")
            return []
    with open(os.path.join(root, "tests", "fixtures", "asyncapi",
                           "asyncapi-2.6.0.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    errs = jsonschema.Draft7Validator(schema).iter_errors(doc)
    return ["AsyncAPI 2.6 schema: %s: %s" % ("/".join(map(str, e.path)), e.message[:200])
            for e in errs]


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1], argv[2])
    for p in problems:
        print("asyncapi: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
