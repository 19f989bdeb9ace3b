#!/bin/sh
# watch: a group that consumes, and commits, but slower than records arrive is
# WARN (lag grew at every sample while its offsets moved). The runtime's test
# service "counter" (tests/integration/svc_counter) is slowed by its test knob
# CHOREO_TEST_SLOW_MS to about 5 records/s while a load of about 60 records/s
# runs, all on one key so one partition carries the whole lag.
. "$(dirname "$0")/lib.inc"

COUNTER="$BUILD/tests/integration/svc_counter"
[ -x "$COUNTER" ] || fail "no $COUNTER: run \`make test-bins\` first"
CHOREO_SCHEMA_DIR="$ROOT/tests/fixtures/runtime"
export CHOREO_SCHEMA_DIR

run 0 "$CHOREO" topics --create
mkdir -p "$TMP/counter"
CHOREO_DATA_DIR="$TMP/counter" CHOREO_TEST_SLOW_MS=200 CHOREO_BATCH_SIZE=5 \
    "$COUNTER" >>"$TMP/counter.log" 2>&1 &
echo $! >"$TMP/counter.pid"
SERVICES="$SERVICES counter"
wait_group counter '"member_count":1' 30

# load SECONDS RATE: test.add records on key "w" at RATE a second, streamed
# through one `choreo produce` (NDJSON on stdin).
load() {
    python3 -c '
import sys, time
end, gap = time.monotonic() + float(sys.argv[1]), 1.0 / float(sys.argv[2])
while time.monotonic() < end:
    sys.stdout.write("{\"key\":\"w\",\"n\":1}\n")
    sys.stdout.flush()
    time.sleep(gap)
' "$1" "$2" 2>/dev/null | "$CHOREO" produce test.add >"$TMP/load.out" 2>"$TMP/load.err"
}
load 22 60 &
lpid=$!
trap 'kill $lpid 2>/dev/null; cleanup' EXIT

# Let the lag build up and a first commit land, then judge one 12 s window
# sampled every 2 s: ~120 records arrive between samples, a commit (every 5 s)
# takes back about 25.
sleep 5
run 0 "$CHOREO" watch --once --json --group counter --window 12s --interval 2s
has "$TMP/out" '"status":"WARN"'
has "$TMP/out" '"reason":"lag grew from'
python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["groups"][0]; sys.exit(0 if g["rate"] > 0 and g["member_count"] == 1 else 1)' \
    "$TMP/out" || fail "WARN without progress or member: $(cat "$TMP/out")"
ok "a slowed consumer under load: WARN ($(grep -o "\"reason\":\"[^\"]*\"" "$TMP/out"))"

wait $lpid || fail "the load failed: $(cat "$TMP/load.out" "$TMP/load.err")"
has "$TMP/load.out" ": 0 errors,"
ok "the load's records were all delivered"
