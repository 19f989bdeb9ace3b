#!/bin/sh
# topics --create makes the contract's topics and the DLQs (existing ones are
# fine); topics lists them with partitions and end offsets.
. "$(dirname "$0")/lib.inc"

run 0 "$CHOREO" topics
has "$TMP/out" "${CHOREO_TOPIC_PREFIX}orders"
has "$TMP/out" "missing"
ok "before --create the topics are listed as missing"

run 0 "$CHOREO" topics --create --partitions 2
has "$TMP/out" "created  ${CHOREO_TOPIC_PREFIX}orders (2 partitions"
has "$TMP/out" "created  ${CHOREO_TOPIC_PREFIX}dlq.notifications"
lacks "$TMP/out" "missing"
run 0 "$CHOREO" topics --create
has "$TMP/out" "exists   ${CHOREO_TOPIC_PREFIX}orders"
ok "--create, twice"

run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-1 c-1 s-1)"
run 0 "$CHOREO" topics --json
has "$TMP/out" "{\"topic\":\"${CHOREO_TOPIC_PREFIX}orders\",\"exists\":true,\"partitions\":2,"
has "$TMP/out" '"total":1'
ok "--json shows partitions and end offsets"
