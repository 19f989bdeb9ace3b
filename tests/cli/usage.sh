#!/bin/sh
# Usage errors exit 2 with a hint; --help exits 0 for every subcommand.
. "$(dirname "$0")/lib.inc"

for cmd in produce tail watch trace flow topics validate dlq load flows board; do
    run 0 "$CHOREO" "$cmd" --help
    has "$TMP/out" "usage: choreo $cmd"
    run 2 "$CHOREO" "$cmd" --no-such-option
    has "$TMP/err" "choreo $cmd --help"
done
ok "--help and unknown options for every subcommand"

run 2 "$CHOREO"
run 2 "$CHOREO" frobnicate
has "$TMP/err" "unknown command 'frobnicate'"
run 0 "$CHOREO" --help
has "$TMP/out" "watch"

run 2 "$CHOREO" produce
has "$TMP/err" "expected one event TYPE"
run 2 "$CHOREO" produce order.placed --data '{}' -f /dev/null
run 2 "$CHOREO" tail -n zero
run 2 "$CHOREO" tail --timeout soon
run 2 "$CHOREO" watch --interval 10ms
run 2 "$CHOREO" trace
run 2 "$CHOREO" trace a b
run 2 "$CHOREO" validate
run 2 "$CHOREO" dlq list
run 2 "$CHOREO" dlq burn orders
run 2 "$CHOREO" load
has "$TMP/err" "--orders N is required"
run 2 "$CHOREO" topics --partitions 0
run 2 "$CHOREO" flows --since soon
run 2 "$CHOREO" board --addr nowhere
ok "missing and bad arguments exit 2"
