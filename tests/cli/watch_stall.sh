#!/bin/sh
# watch: a group with a member that consumes but never commits while records
# wait is STALL over a full window (kcat stands in for a stuck service).
. "$(dirname "$0")/lib.inc"

command -v kcat >/dev/null 2>&1 || skip "kcat not installed"
run 0 "$CHOREO" topics --create
group="${CHOREO_TOPIC_PREFIX}stuck"
kcat -b "$CHOREO_BROKERS" -G "$group" -X enable.auto.commit=false -X enable.auto.offset.store=false \
    -X auto.offset.reset=latest "${CHOREO_TOPIC_PREFIX}orders" >/dev/null 2>"$TMP/kcat.err" &
kpid=$!
trap 'kill $kpid 2>/dev/null; cleanup' EXIT
wait_group "$group" '"member_count":1' 30
i=0
while [ $i -lt 3 ]; do
    run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA "o-$i" c-1 s-1)"
    i=$((i + 1))
done
run 1 "$CHOREO" watch --once --json --group "$group" --window 6s
has "$TMP/out" '"status":"STALL"'
has "$TMP/out" "not moving for"
grep -q '"lag":3,' "$TMP/out" || fail "lag is not 3: $(cat "$TMP/out")"
ok "a member that never commits while lag is 3: STALL over a 6 s window"

run 0 "$CHOREO" watch --once --json --group "$group" --window 1s
has "$TMP/out" "too short to judge progress"
ok "a window shorter than the commit interval gives no STALL verdict"
