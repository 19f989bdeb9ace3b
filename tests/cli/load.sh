#!/bin/sh
# load: with all five services, N orders all end and the report has the
# latency percentiles.
. "$(dirname "$0")/lib.inc"

run 2 "$CHOREO" load --orders 0
have_services orders inventory payments shipping notifications ||
    skip "services not built yet"
run 0 "$CHOREO" topics --create
for s in orders inventory payments shipping notifications; do start_service "$s"; done
CHOREO_DISPATCH_DELAY_MS=100
export CHOREO_DISPATCH_DELAY_MS
run 0 "$CHOREO" load --orders 30 --rate 200 --customers 3 --skus 2 --timeout 90s
has "$TMP/out" "placed 30"
has "$TMP/out" "completed 30"
has "$TMP/out" "unfinished 0"
has "$TMP/out" "placed->confirmed (event time)"
run 0 "$CHOREO" load --orders 10 --json --timeout 90s
has "$TMP/out" '"completed":10'
has "$TMP/out" '"p99_ms":'
ok "30 then 10 orders all completed; table and --json"
