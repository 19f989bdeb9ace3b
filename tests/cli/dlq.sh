#!/bin/sh
# dlq: a garbage record sent with produce --raw to a service's input lands in
# its DLQ with the headers; list shows them, replay sends it back.
. "$(dirname "$0")/lib.inc"

run 1 "$CHOREO" dlq list no-such-service
has "$TMP/err" "unknown service 'no-such-service'"
run 0 "$CHOREO" dlq list orders
has "$TMP/out" "0 dead letters"
ok "unknown service exits 1; an empty DLQ lists nothing"

have_services orders || skip "no $BUILD/bin/orders yet (services not built)"
run 0 "$CHOREO" topics --create
start_service orders
run 0 "$CHOREO" produce --raw orders --key junk-1 --data '{"this is": "not an event"'
run 0 "$CHOREO" tail dlq.orders --from-beginning -n 1 --timeout 60s

run 0 "$CHOREO" dlq list orders
has "$TMP/out" "from ${CHOREO_TOPIC_PREFIX}orders/"
has "$TMP/out" "error: "
has "$TMP/out" "by orders"
has "$TMP/out" 'value: {"this is": "not an event"'
has "$TMP/out" "1 dead letter in ${CHOREO_TOPIC_PREFIX}dlq.orders"
run 0 "$CHOREO" dlq list orders --json
has "$TMP/out" "\"original.topic\":\"${CHOREO_TOPIC_PREFIX}orders\""
has "$TMP/out" '"key":"junk-1"'
ok "list shows the dead letter with original topic/partition/offset, error, service, time"

offset=$(tr ',' '\n' <"$TMP/out" | sed -n 's/^"original.offset":"\([0-9]*\)".*/\1/p' | head -n 1)
run 0 "$CHOREO" dlq replay orders --offset 0
has "$TMP/out" "1 record replayed"
has "$TMP/out" "-> ${CHOREO_TOPIC_PREFIX}orders/"
run 1 "$CHOREO" dlq replay orders --id no-such-event
has "$TMP/err" "no dead letter"
# The replayed garbage is dead-lettered again: a second entry appears.
run 0 "$CHOREO" tail dlq.orders --from-beginning -n 2 --timeout 60s
ok "replay sends the original bytes back to ${CHOREO_TOPIC_PREFIX}orders (was offset $offset)"
