#!/bin/sh
# flow renders schemas/choreography.json as text and as Graphviz dot.
. "$(dirname "$0")/lib.inc"

run 0 "$CHOREO" flow
has "$TMP/out" "services:"
has "$TMP/out" "payments"
has "$TMP/out" "consumes customer.registered, order.placed, inventory.reserved"
has "$TMP/out" "inventory.reserved      -> payment.authorized | payment.declined   (by payments)"
has "$TMP/out" "${CHOREO_TOPIC_PREFIX}orders"
ok "text: services, events with prefixed topics, the chain"

run 0 "$CHOREO" flow --dot
has "$TMP/out" "digraph choreo {"
has "$TMP/out" '"payments" -> "payment.authorized";'
has "$TMP/out" '"inventory.reserved" -> "payments"'
opens=$(tr -cd '{' <"$TMP/out" | wc -c)
closes=$(tr -cd '}' <"$TMP/out" | wc -c)
[ "$opens" -eq "$closes" ] || fail "unbalanced braces in dot output"
tail -n 1 "$TMP/out" | grep -qx '}' || fail "dot output does not end with }"
if command -v dot >/dev/null 2>&1; then
    "$CHOREO" flow --dot | dot -Tsvg >/dev/null || fail "dot rejects the output"
fi
ok "--dot is a digraph with producer and consumer edges"

run 0 "$CHOREO" flow --json
has "$TMP/out" '"flow":'
run 1 "$CHOREO" flow --schema-dir "$TMP"
has "$TMP/err" "cannot load the contract"
ok "--json, and a missing contract exits 1"
