#!/bin/sh
# watch: an unknown group exits 1; with the payments service, its group's lag
# rises while the service is stopped (STOP) and falls to 0 after a restart (OK).
. "$(dirname "$0")/lib.inc"

run 1 "$CHOREO" watch --once --group no-such-group --window 200ms
has "$TMP/err" "no consumer group 'no-such-group'"
run 0 "$CHOREO" watch --once --json --window 200ms --interval 100ms
has "$TMP/out" '"groups":[]'
ok "unknown group exits 1; no groups is an empty list"

have_services payments || skip "no $BUILD/bin/payments yet (services not built)"
run 0 "$CHOREO" topics --create
start_service payments
wait_group payments '"member_count":1' 30
wait_group payments '"status":"OK","reason":"caught up"' 30
ok "running payments: one member, OK"

stop_service payments
i=0
while [ $i -lt 5 ]; do
    run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA "o-$i" c-1 s-1)"
    i=$((i + 1))
done
wait_group payments '"status":"STOP"' 30
grep -q '"lag":[1-9]' "$TMP/watch.json" || fail "STOP without lag: $(cat "$TMP/watch.json")"
grep -q '"member_count":0' "$TMP/watch.json" || fail "STOP with members: $(cat "$TMP/watch.json")"
run 1 "$CHOREO" watch --once --group payments --window 200ms --interval 100ms
has "$TMP/out" "STOP"
has "$TMP/out" "no members while lag is"
ok "payments stopped: lag > 0, no members, STOP (and exit 1)"

start_service payments
wait_group payments '"status":"OK","reason":"caught up"' 60
grep -q '"lag":0,"rate"' "$TMP/watch.json" || fail "OK but lag not 0: $(cat "$TMP/watch.json")"
has "$TMP/watch.json" '"member_count":1'
ok "payments restarted: lag back to 0, OK"
