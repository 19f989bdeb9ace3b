#!/bin/sh
# Every subcommand that needs Kafka fails within 10 s with a message that says
# where it tried and what to do, and exits 1.
. "$(dirname "$0")/lib.inc"

check() {
    start=$(date +%s)
    run 1 "$CHOREO" -b 127.0.0.1:1 "$@"
    took=$(($(date +%s) - start))
    [ "$took" -lt 10 ] || fail "'$*' took $took s to give up"
    has "$TMP/err" "cannot reach Kafka at 127.0.0.1:1"
    has "$TMP/err" "make demo"
}

check produce order.placed --data "$(ORDER_DATA o-1 c-1 s-1)"
check produce --raw orders --data garbage
check tail --timeout 30s
check watch --once
check trace o-1
check topics
check topics --create
check dlq list orders
check load --orders 1
ok "unreachable broker: produce, tail, watch, trace, topics, dlq, load fail fast"
