#!/bin/sh
# validate: envelopes and bare data against the schemas, one document or
# NDJSON, with line numbers and JSON pointers; exit 1 on anything invalid.
. "$(dirname "$0")/lib.inc"

env() { # env ID TYPE DATA
    printf '{"specversion":"1.0","id":"%s","source":"/choreo/cli","type":"%s","subject":"o-1","time":"2026-11-24T10:00:00.123Z","datacontenttype":"application/json","data":%s}\n' "$1" "$2" "$3"
}
good=$(ORDER_DATA o-1 c-1 s-1)

env e-1 order.placed "$good" >"$TMP/good.json"
run 0 "$CHOREO" validate "$TMP/good.json"
has "$TMP/out" "line 1: ok order.placed e-1"
has "$TMP/out" "1 valid, 0 invalid"
run 0 "$CHOREO" validate - <"$TMP/good.json"
ok "a good envelope, from a file and from stdin"

{
    env e-1 order.placed "$good"
    env e-2 order.placed '{"order_id":"o-2","customer_id":"c","items":[],"total_cents":1,"currency":"EUR"}'
    echo '{"specversion":"0.3","id":"e-3","source":"/x","type":"order.placed"}'
    env e-4 order.unknown '{}'
    echo '{"specversion":"1.0","id":"e-5","id":"dup","source":"/x","type":"order.placed"}'
    env e-6 order.confirmed '{"order_id":"o-1","payment_id":"p-1"}'
} >"$TMP/mixed.ndjson"
run 1 "$CHOREO" validate "$TMP/mixed.ndjson"
has "$TMP/out" "line 1: ok"
has "$TMP/out" "line 2: invalid order.placed: "
has "$TMP/out" "/items"
has "$TMP/out" "line 3: invalid: specversion"
has "$TMP/out" "line 4: invalid order.unknown: unknown event type"
has "$TMP/out" "line 5: invalid: duplicate_key"
has "$TMP/out" "line 6: ok order.confirmed e-6"
has "$TMP/out" "2 valid, 4 invalid"
run 1 "$CHOREO" validate --json "$TMP/mixed.ndjson"
has "$TMP/out" '"valid":2'
has "$TMP/out" '"invalid":4'
ok "NDJSON: each bad line named with its reason and pointer"

printf '%s\n' "$good" >"$TMP/data.json"
run 0 "$CHOREO" validate --type order.placed "$TMP/data.json"
printf '{"order_id":"o-1","customer_id":"c","items":[{"sku":"s","qty":"2","unit_price_cents":1}],"total_cents":1,"currency":"EUR"}\n' >"$TMP/bad.json"
run 1 "$CHOREO" validate --type order.placed "$TMP/bad.json"
has "$TMP/out" "/items/0/qty"
run 1 "$CHOREO" validate --type no.such.type "$TMP/data.json"
has "$TMP/err" "unknown event type"
run 1 "$CHOREO" validate "$TMP/no-such-file"
has "$TMP/err" "cannot open"
ok "--type validates bare data; bad type and missing file exit 1"

# A pretty-printed (multi-line) envelope is one document, not NDJSON.
printf '{\n  "specversion": "1.0", "id": "e-7", "source": "/choreo/cli",\n  "type": "order.completed", "data": {"order_id": "o-1"}\n}\n' >"$TMP/pretty.json"
run 0 "$CHOREO" validate "$TMP/pretty.json"
has "$TMP/out" "ok order.completed e-7"
ok "a multi-line document"
