#!/bin/sh
# choreo acl derives every principal's ACLs from schemas/choreography.json
# (checked here against a derivation of its own from the JSON), with the topic
# prefix; bad arguments are usage errors; --apply on a broker without an
# authorizer fails and says so. The secured broker: tests/secure/saga_secure.sh.
. "$(dirname "$0")/lib.inc"

run 0 "$CHOREO" acl --json
python3 - "$TMP/out" "$CHOREO_SCHEMA_DIR/choreography.json" "$CHOREO_TOPIC_PREFIX" <<'PY' ||
import json, sys
got = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
p = sys.argv[3]
ev = c["events"]
want = set()
def add(svc, rtype, name, op):
    want.add((svc, "User:" + svc, rtype, p + name, "LITERAL", "*", op, "ALLOW"))
for s, d in c["services"].items():
    for t in d["consumes"]:
        add(s, "TOPIC", ev[t]["topic"], "READ")
    for t in d["emits"]:
        add(s, "TOPIC", ev[t]["topic"], "WRITE")
    add(s, "TOPIC", "dlq." + s, "WRITE")
    add(s, "GROUP", s, "READ")
for t, r in ev.items():
    add("cli", "TOPIC", r["topic"], "READ")
    if r["producer"] == "cli":
        add("cli", "TOPIC", r["topic"], "WRITE")
for s in c["services"]:
    add("cli", "TOPIC", "dlq." + s, "READ")
    add("cli", "GROUP", s, "DESCRIBE")
keys = ("service", "principal", "resource_type", "resource_name", "pattern_type",
        "host", "operation", "permission")
rows = [tuple(b[k] for k in keys) for b in got]
assert len(rows) == len(set(rows)), "duplicate bindings"
missing, extra = want - set(rows), set(rows) - want
assert not missing and not extra, "missing %s extra %s" % (sorted(missing), sorted(extra))
PY
    fail "choreo acl --json differs from the contract's derivation: $(head -c 600 "$TMP/out")"
ok "choreo acl: every service's and cli's bindings follow from the contract ($(grep -o '"service"' "$TMP/out" | wc -l) bindings)"

run 0 "$CHOREO" acl payments
has "$TMP/out" "User:payments"
lacks "$TMP/out" "User:orders"
grep -Eq "^User:payments +TOPIC +${CHOREO_TOPIC_PREFIX}payments +LITERAL +WRITE +ALLOW +\*$" "$TMP/out" ||
    fail "no WRITE row for payments: $(cat "$TMP/out")"
grep -Eq "^User:payments +TOPIC +${CHOREO_TOPIC_PREFIX}orders +LITERAL +WRITE" "$TMP/out" &&
    fail "payments may write orders: $(cat "$TMP/out")"
run 0 "$CHOREO" acl shipping --principal-prefix User:prod-
has "$TMP/out" "User:prod-shipping"
ok "one service as a table; --principal-prefix"

run 0 "$CHOREO" acl --help
has "$TMP/out" "usage: choreo acl"
run 2 "$CHOREO" acl --no-such-option
has "$TMP/err" "choreo acl --help"
run 2 "$CHOREO" acl nosuch
has "$TMP/err" "unknown service 'nosuch'"
run 2 "$CHOREO" acl --principal-prefix nocolon
has "$TMP/err" "TYPE:"
ok "--help; unknown options and services, a principal prefix without a type: usage errors"

# The test broker has no authorizer.
run 1 "$CHOREO" acl --apply shipping
has "$TMP/err" "SECURITY_DISABLED"
has "$TMP/err" "choreo-broker start --secure"
ok "--apply without an authorizer: exit 1, says how to turn ACLs on"
