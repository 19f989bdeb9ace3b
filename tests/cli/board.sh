#!/bin/sh
# board: the flow board over HTTP, then in headless Chromium (board_browser.py):
# the page, an order moving a count, a stopped service's order stuck, its tree.
# BOARD_SCREENSHOT: where the browser's screenshot goes (default: the temp dir).
. "$(dirname "$0")/lib.inc"

have_services orders inventory payments shipping || skip "services not built yet"
run 0 "$CHOREO" topics --create
CHOREO_DISPATCH_DELAY_MS=100
export CHOREO_DISPATCH_DELAY_MS
for s in orders inventory payments shipping; do start_service "$s"; done
run 0 "$CHOREO" produce stock.added --data '{"sku":"s-1","qty":10}'
run 0 "$CHOREO" produce customer.registered \
    --data '{"customer_id":"c-1","name":"Ann","email":"ann@example.com","credit_limit_cents":100000}'
wait_group inventory '"status":"OK","reason":"caught up"' 30
wait_group payments '"status":"OK","reason":"caught up"' 30

: >"$TMP/board.log"
"$CHOREO" board --addr 127.0.0.1:0 --stuck-after 2s >"$TMP/board.out" 2>"$TMP/board.log" &
echo $! >"$TMP/board.pid"
SERVICES="$SERVICES board"
deadline=$(($(date +%s) + 20))
url=
while [ -z "$url" ]; do
    url=$(sed -n 's/.*serving the flow board on \(http:[^ ]*\)$/\1/p' "$TMP/board.log")
    [ "$(date +%s)" -lt "$deadline" ] || fail "board did not start: $(cat "$TMP/board.log")"
    [ -n "$url" ] || sleep 0.2
done

curl -fsS "$url" >"$TMP/page.html" || fail "GET / failed"
has "$TMP/page.html" "choreo flow board"
grep -Eq "(src|href)=[\"']?(https?:)?//" "$TMP/page.html" &&
    fail "the page loads something from elsewhere: $(grep -Eo "(src|href)=[^ >]*" "$TMP/page.html")"
curl -fsS "${url}api/flows" >"$TMP/flows.json" || fail "GET /api/flows failed"
has "$TMP/flows.json" '"steps":'
curl -sS -o /dev/null -w '%{http_code}' "${url}api/trace?order=-x" >"$TMP/code"
has "$TMP/code" 400
# The event stream: a first report within a few seconds.
curl -sN --max-time 4 "${url}api/events" >"$TMP/sse.txt" 2>/dev/null
has "$TMP/sse.txt" "event: flows"
has "$TMP/sse.txt" 'data: {"stuck_after_ms":2000'
ok "the page, /api/flows and the event stream answer"

# Debian's python3-selenium is for Debian's python3 (another python3 may come first).
PY=
for p in /usr/bin/python3 python3; do
    "$p" -c 'import selenium' 2>/dev/null && PY=$p && break
done
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || [ -z "$PY" ]; then
    skip "no chromium, chromium-driver or python3-selenium (make deps installs them)"
fi
"$PY" "$ROOT/tests/cli/board_browser.py" "$url" "$CHOREO" "$TMP/payments.pid" \
    "${BOARD_SCREENSHOT:-$TMP/board.png}" || fail "the browser test failed (board log: $(tail -5 "$TMP/board.log"))"
