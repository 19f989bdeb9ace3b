#!/bin/sh
# SPDX-License-Identifier: MIT
# CloudEvents binary mode from a foreign client: kcat sends the customer, the
# stock and an order as ce_* headers with the data as the value (the default of
# several CloudEvents SDKs). The saga completes with the order's ce_id as the
# flow's correlation id, a duplicate is applied once, a type a service does not
# handle is skipped (no DLQ), a malformed binary record goes to the DLQ, and
# `choreo tail` shows the binary records as envelopes.
. "$(dirname "$0")/../cli/lib.inc"

command -v kcat >/dev/null 2>&1 || fail "kcat is not installed (make deps)"
have_services orders inventory payments shipping notifications || fail "services not built"
P=$CHOREO_TOPIC_PREFIX
for s in orders inventory payments shipping notifications; do start_service "$s"; done
for s in orders inventory payments shipping notifications; do
    wait_group "$s" '"assignment":["' 30
done
wait_group payments "${P}customers/2" 30

now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }
# bsend TOPIC KEY TYPE ID DATA [extra kcat -H args]: one binary-mode record
bsend() {
    topic=$1 key=$2 type=$3 id=$4 data=$5
    shift 5
    printf '%s\n' "$data" | kcat -b "$CHOREO_BROKERS" -P -t "$P$topic" -k "$key" \
        -H ce_specversion=1.0 -H "ce_id=$id" -H ce_source=/kcat -H "ce_type=$type" \
        -H "ce_subject=$key" -H "ce_time=$(now)" -H content-type=application/json \
        "$@" 2>"$TMP/kcat.err" || fail "kcat produce to $P$topic: $(cat "$TMP/kcat.err")"
}
read_topic() { kcat -b "$CHOREO_BROKERS" -C -t "$P$1" -o beginning -e -q -f '%h\t%s\n' 2>/dev/null; }
wait_in() { # wait_in TOPIC PATTERN SECONDS
    deadline=$(($(date +%s) + $3))
    until read_topic "$1" >"$TMP/read.txt" && grep -qF -- "$2" "$TMP/read.txt"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

bsend customers c1 customer.registered "cust-$$" \
    '{"customer_id":"c1","name":"Ada","email":"ada@example.com","credit_limit_cents":100000}'
bsend inventory sku-1 stock.added "stock-$$" '{"sku":"sku-1","qty":5}'
wait_dump 20 payments '"c1"' inventory '"sku-1"' ||
    fail "binary customer or stock not applied in 20 s"
ok "binary customer.registered and stock.added applied"

OID="order-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
for i in 1 2; do # the same event twice: one application
    bsend orders o1 order.placed "$OID" "$(ORDER_DATA o1 c1 sku-1)"
done
wait_in orders '"type":"order.completed","subject":"o1"' 20 || fail "o1 not completed in 20 s"
grep -F '"type":"order.confirmed"' "$TMP/read.txt" | grep -qF "\"correlationid\":\"$OID\"" ||
    fail "order.confirmed does not carry the binary ce_id $OID as its correlation id"
ok "binary order.placed completed; its ce_id is the flow's correlation id"
CHOREO_DATA_DIR="$TMP/inventory" "$BUILD/bin/inventory" --dump >"$TMP/inv.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["stock"][0]
sys.exit(0 if (s["available"], s["shipped"]) == (4, 1) else 1)' "$TMP/inv.json" ||
    fail "the duplicate binary order was applied twice: $(cat "$TMP/inv.json")"
ok "a duplicate binary record is applied once"

# malformed: no ce_id -> the DLQ of a service that handles order.placed
printf '%s\n' "$(ORDER_DATA o2 c1 sku-1)" | kcat -b "$CHOREO_BROKERS" -P -t "${P}orders" -k o2 \
    -H ce_specversion=1.0 -H ce_source=/kcat -H ce_type=order.placed \
    -H content-type=application/json 2>"$TMP/kcat.err" || fail "kcat: $(cat "$TMP/kcat.err")"
wait_in dlq.orders 'o2' 20 || fail "the binary record without ce_id is not in dlq.orders"
grep -F 'o2' "$TMP/read.txt" | grep -qF 'error=attribute: attribute id missing' ||
    fail "DLQ entry does not say the id is missing: $(cat "$TMP/read.txt")"
# an unhandled type is skipped: shipping does not consume order.placed
for s in shipping; do
    [ "$(read_topic "dlq.$s" | grep -c 'o1')" -eq 0 ] || fail "dlq.$s holds o1's binary order.placed"
done
ok "a malformed binary record is dead-lettered; a type not handled is skipped"

run 0 "$CHOREO" tail orders --from-beginning --key o1 --until order.placed --timeout 10s --json
has "$TMP/out" '"contentmode":"binary"'
has "$TMP/out" "\"id\":\"$OID\""
ok "choreo tail shows the binary record as an envelope"

run 0 "$CHOREO" produce stock.added --binary --data '{"sku":"sku-2","qty":7}'
wait_in inventory 'ce_type=stock.added' 10 || fail "no binary record from choreo produce --binary"
grep -F 'sku-2' "$TMP/read.txt" | grep -qF 'ce_specversion=1.0' ||
    fail "choreo produce --binary did not send ce_* headers: $(grep -F sku-2 "$TMP/read.txt")"
wait_dump 20 inventory '"sku-2"' || fail "stock from choreo produce --binary not applied in 20 s"
ok "choreo produce --binary sends binary mode, and the services apply it"
