#!/bin/sh
# flows: every flow at once. With payments stopped, `flows --state stuck` names
# the order, the step it waits for and the service that owes it (stopped);
# completed flows are counted; --json keeps its shape from run to run.
. "$(dirname "$0")/lib.inc"

run 2 "$CHOREO" flows --state nonsense
has "$TMP/err" "--state wants in-flight, stuck, completed, rejected or cancelled"
run 2 "$CHOREO" flows --step order.shipped
has "$TMP/err" "is not a step of the flow"
ok "bad --state and --step are usage errors"

have_services orders inventory payments shipping || skip "services not built yet"
run 0 "$CHOREO" topics --create
run 0 "$CHOREO" flows --json
has "$TMP/out" '"in_flight":0'
ok "no flows yet"

CHOREO_DISPATCH_DELAY_MS=100
export CHOREO_DISPATCH_DELAY_MS
for s in orders inventory payments shipping; do start_service "$s"; done
run 0 "$CHOREO" produce stock.added --data '{"sku":"s-1","qty":10}'
run 0 "$CHOREO" produce customer.registered \
    --data '{"customer_id":"c-1","name":"Ann","email":"ann@example.com","credit_limit_cents":100000}'
wait_group inventory '"status":"OK","reason":"caught up"' 30
wait_group payments '"status":"OK","reason":"caught up"' 30
run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-1 c-1 s-1)"
run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-2 c-1 s-1)"
run 0 "$CHOREO" tail --from-beginning --key o-1 --until order.completed --timeout 60s
run 0 "$CHOREO" tail --from-beginning --key o-2 --until order.completed --timeout 60s

# An order that cannot be served: rejected out of stock.
run 0 "$CHOREO" produce order.placed \
    --data '{"order_id":"o-3","customer_id":"c-1","items":[{"sku":"s-1","qty":50,"unit_price_cents":1}],"total_cents":50,"currency":"EUR"}'
run 0 "$CHOREO" tail --from-beginning --key o-3 --until order.rejected --timeout 60s

# Payments stops: the next order stops after inventory.reserved.
stop_service payments
run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-4 c-1 s-1)"
run 0 "$CHOREO" tail --from-beginning --key o-4 --until inventory.reserved --timeout 60s

# stuck once no next step came within 1 s: poll until it shows, 15 s at most
deadline=$(($(date +%s) + 15))
while :; do
    run 0 "$CHOREO" flows --stuck-after 1s --state stuck
    grep -qF "o-4" "$TMP/out" && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "o-4 never listed stuck: $(cat "$TMP/out")"
    sleep 0.5
done
has "$TMP/out" "stuck"
has "$TMP/out" "at inventory.reserved"
has "$TMP/out" "payment.authorized|payment.declined from payments"
has "$TMP/out" "group ${CHOREO_TOPIC_PREFIX}payments: 0 members"
has "$TMP/out" "the service is not running; start it"
lacks "$TMP/out" "o-1"
ok "--state stuck: the order, the awaited step, the service and its group"

run 0 "$CHOREO" flows --stuck-after 1s
has "$TMP/out" "order.completed"
grep -E '^order\.completed +- +2 ' "$TMP/out" >/dev/null ||
    fail "summary does not count 2 completed: $(cat "$TMP/out")"
grep -E '^order\.rejected +out_of_stock +1 ' "$TMP/out" >/dev/null ||
    fail "summary does not count 1 rejected out_of_stock: $(cat "$TMP/out")"
grep -E '^inventory\.reserved +inventory +1 +1 ' "$TMP/out" >/dev/null ||
    fail "inventory.reserved should have 1 in flight, 1 stuck: $(cat "$TMP/out")"
has "$TMP/out" "stuck (no next step within 1 s): 1"
ok "summary: completed and rejected counted, one in flight and stuck"

run 0 "$CHOREO" flows --state completed --json
for o in o-1 o-2; do has "$TMP/out" "\"order_id\":\"$o\""; done
lacks "$TMP/out" '"order_id":"o-4"'
run 0 "$CHOREO" flows --step inventory.reserved
has "$TMP/out" "o-4"
lacks "$TMP/out" "o-3 "
ok "--state completed and --step list those flows"

# --json: the same keys in the same order on every run; the numbers agree.
shape() { python3 -c '
import json, sys
def walk(v, p):
    if isinstance(v, dict):
        for k in v: walk(v[k], p + "/" + k)
        print(p, "{" + ",".join(v) + "}")
    elif isinstance(v, list):
        for x in v[:1]: walk(x, p + "[]")
    else:
        print(p, type(v).__name__ if v is not None else "null")
walk(json.load(sys.stdin), "")' <"$1"; }
run 0 "$CHOREO" flows --stuck-after 1s --json
cp "$TMP/out" "$TMP/a.json"
shape "$TMP/a.json" >"$TMP/a.shape" || fail "flows --json is not JSON: $(head -c 300 "$TMP/a.json")"
run 0 "$CHOREO" flows --stuck-after 1s --json
shape "$TMP/out" >"$TMP/b.shape"
cmp -s "$TMP/a.shape" "$TMP/b.shape" || fail "--json changed shape: $(diff "$TMP/a.shape" "$TMP/b.shape")"
python3 - "$TMP/a.json" <<'EOF' || fail "--json figures: $(head -c 1500 "$TMP/a.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert list(r) == ["stuck_after_ms", "window_ms", "steps", "edges", "outcomes", "totals",
                   "brokers", "prefix", "from", "since", "now", "read", "stuck", "flows"], list(r)
t = r["totals"]
assert t["flows"] == 4 and t["in_flight"] == 1 and t["stuck"] == 1, t
done = {(o["type"], o["reason"]): o["total"] for o in r["outcomes"]}
assert done == {("order.completed", ""): 2, ("order.rejected", "out_of_stock"): 1}, done
s = r["stuck"][0]
assert s["order_id"] == "o-4" and s["service"] == "payments", s
assert s["waiting_for"] == ["payment.authorized", "payment.declined"], s
assert s["members"] == 0 and s["status"] == "the service is not running; start it", s
steps = {x["type"]: x for x in r["steps"]}
assert steps["order.placed"]["events"] == 4, steps["order.placed"]
assert steps["payment.authorized"]["latency_ms"]["n"] == 2, steps["payment.authorized"]
assert r["read"]["records"] > 0 and r["from"] == "since", r["read"]
EOF
ok "--json: stable shape, the same figures"

# Payments back: the stuck order goes on and ends.
start_service payments
run 0 "$CHOREO" tail --from-beginning --key o-4 --until order.completed --timeout 60s
run 0 "$CHOREO" flows --stuck-after 1s --from-beginning --json
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["totals"]["stuck"] == 0 and r["totals"]["in_flight"] == 0, r["totals"]
assert r["from"] == "beginning" and r["since"] is None
' "$TMP/out" || fail "after payments restarted: $(head -c 800 "$TMP/out")"
ok "payments restarted: nothing stuck, nothing in flight"
