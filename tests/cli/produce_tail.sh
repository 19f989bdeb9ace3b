#!/bin/sh
# produce builds and validates the envelope, keys it by the contract and reports
# the delivery; tail --until finds it. Invalid data is never sent.
. "$(dirname "$0")/lib.inc"

run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-1 c-1 s-1)"
has "$TMP/out" "topic=${CHOREO_TOPIC_PREFIX}orders"
has "$TMP/out" "key=o-1"
id=$(sed -n 's/^id=\([^ ]*\) .*/\1/p' "$TMP/out")
[ -n "$id" ] || fail "no id in: $(cat "$TMP/out")"

run 0 "$CHOREO" tail --from-beginning --key o-1 --until order.placed --timeout 20s
has "$TMP/out" "\"id\":\"$id\""
has "$TMP/out" '"source":"/choreo/cli"'
has "$TMP/out" '"partitionkey":"o-1"'
ok "produce then tail --until finds the event ($id)"

run 0 "$CHOREO" produce order.placed --json --id my-id-1 --correlation corr-1 \
    --data "$(ORDER_DATA o-2 c-1 s-1)"
has "$TMP/out" '"id":"my-id-1"'
has "$TMP/out" '"offset":'
run 0 "$CHOREO" tail --from-beginning --key o-2 --until 'order.*' --timeout 20s
has "$TMP/out" '"correlationid":"corr-1"'
ok "--id, --correlation and --json"

run 1 "$CHOREO" produce order.shipped --data '{}'
has "$TMP/err" "unknown event type 'order.shipped'"
has "$TMP/err" "choreo flow"
ok "unknown type exits 1 with the hint"

run 1 "$CHOREO" produce order.placed --data \
    '{"order_id":"bad-1","customer_id":"c-1","items":[{"sku":"s","qty":0,"unit_price_cents":1}],"total_cents":1,"currency":"EUR"}'
has "$TMP/err" "/items/0/qty"
has "$TMP/err" "nothing sent"
run 1 "$CHOREO" produce order.placed --data '{"order_id":"bad-2"}'
has "$TMP/err" "nothing sent"
run 1 "$CHOREO" produce order.placed --data '{not json'
has "$TMP/err" "not JSON"
# trace reads every topic to its end: a sent bad-1 would be found.
run 1 "$CHOREO" trace bad-1
has "$TMP/err" "no events of order 'bad-1'"
run 1 "$CHOREO" trace bad-2
ok "invalid data names the field and is not sent"

i=0
: >"$TMP/bulk.ndjson"
while [ $i -lt 200 ]; do
    ORDER_DATA "bulk-$i" c-1 s-1 >>"$TMP/bulk.ndjson"
    echo >>"$TMP/bulk.ndjson"
    i=$((i + 1))
done
run 0 "$CHOREO" produce order.placed <"$TMP/bulk.ndjson"
has "$TMP/out" "produced 200 order.placed"
has "$TMP/out" "0 errors"
run 0 "$CHOREO" tail orders --from-beginning --key bulk-199 --until order.placed --timeout 20s
echo '{"order_id":"x"}' >>"$TMP/bulk.ndjson"
run 1 "$CHOREO" produce order.placed --json <"$TMP/bulk.ndjson"
has "$TMP/out" '"errors":1'
has "$TMP/err" "line 201"
ok "NDJSON on stdin: 200 events, one summary line; a bad line counted"

run 0 "$CHOREO" produce --raw orders --key raw-1 --data 'not an event {'
has "$TMP/out" "topic=${CHOREO_TOPIC_PREFIX}orders"
run 0 "$CHOREO" tail orders --from-beginning --key raw-1 -n 1 --timeout 20s
has "$TMP/out" '"raw":"not an event {"'
ok "--raw sends bytes as given; tail shows them as not an event"

run 0 "$CHOREO" tail orders --since 10m --key o-1 -n 1 --timeout 20s
has "$TMP/out" "$id"
run 1 "$CHOREO" tail orders --key o-1 --until order.cancelled --timeout 1s
has "$TMP/err" "no order.cancelled event with key o-1 within the timeout"
run 0 "$CHOREO" tail --from-beginning --type 'order.pl*' --key o-2 -n 1 --timeout 20s --pretty
has "$TMP/out" "order.placed"
has "$TMP/out" "orders/"
ok "tail --since, --timeout exits 1, --type glob, --pretty"
