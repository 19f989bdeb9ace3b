#!/bin/sh
# SPDX-License-Identifier: MIT
# Security end to end: a broker of its own with SASL_SSL (SCRAM-SHA-512) and
# ACLs (choreo-broker start --secure), the ACLs of `choreo acl --apply`, and the
# whole saga with each service on its own credentials. A service principal may
# not write a topic it does not own; a wrong password fails clearly within
# seconds; no password shows in logs, /metrics, --dump, outputs or argv.
# Ignores CHOREO_BROKERS: the broker here is always its own, on free ports;
# CHOREO_SECURE_NODES=3 makes it a 3-node cluster (default 1).
. "$(dirname "$0")/../cli/lib.inc"

have_services orders inventory payments shipping notifications || fail "services not built"
command -v openssl >/dev/null 2>&1 || fail "openssl is not installed (make deps)"
command -v curl >/dev/null 2>&1 || fail "curl is not installed (make deps)"
BROKER_DIR="$TMP/broker"
SEC="$BROKER_DIR/secure"
OUT="$TMP/outputs" # every output of every command, searched for secrets at the end
mkdir -p "$OUT"
P=$CHOREO_TOPIC_PREFIX
SVCS="orders inventory payments shipping notifications"
t0=$(date +%s)

broker_started=
secure_cleanup() {
    cleanup
    [ -n "$broker_started" ] && env -u CHOREO_BROKERS "$ROOT/broker/choreo-broker" stop --data-dir "$BROKER_DIR" >/dev/null
}
trap secure_cleanup EXIT

NODES=${CHOREO_SECURE_NODES:-1}

# A first port P with P..P+2N-1 free (N clients, then N controllers).
free_ports() {
    python3 - "$((2 * NODES))" <<'PY'
import socket, sys
n = int(sys.argv[1])
for _ in range(50):
    socks = []
    try:
        a = socket.socket()
        socks.append(a)
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        for i in range(1, n):
            b = socket.socket()
            socks.append(b)
            b.bind(("127.0.0.1", port + i))
    except OSError:
        continue
    finally:
        for x in socks:
            x.close()
    print(port)
    break
PY
}

# as USER CMD...: execs CMD with USER's credentials file loaded (it sets
# CHOREO_BROKERS and the CHOREO_KAFKA_* settings), so call it in a subshell or
# in the background ($! is then CMD's pid). `env VAR=...` after USER overrides.
as() {
    set -a
    . "$SEC/$1.env"
    set +a
    shift
    exec "$@"
}

# ---------------------------------------------------------------- the broker

PORT=$(free_ports)
[ -n "$PORT" ] || fail "no $((2 * NODES)) free ports in a row"
broker_started=1
t=$(date +%s)
env -u CHOREO_BROKERS "$ROOT/broker/choreo-broker" start --secure --nodes "$NODES" \
    --port "$PORT" --data-dir "$BROKER_DIR" \
    >"$OUT/broker-start" 2>&1 ||
    fail "secure broker did not start: $(cat "$OUT/broker-start")"
ok "secure broker ($NODES node(s)) up on 127.0.0.1:$PORT in $(($(date +%s) - t)) s"

users="admin cli $SVCS"
for u in $users; do
    f="$SEC/$u.env"
    [ -f "$f" ] || fail "no credentials file $f"
    [ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f"), not 600"
    has "$f" "CHOREO_BROKERS=127.0.0.1:$PORT"
    has "$f" "CHOREO_KAFKA_security_protocol=SASL_SSL"
    has "$f" "CHOREO_KAFKA_sasl_mechanisms=SCRAM-SHA-512"
    has "$f" "CHOREO_KAFKA_sasl_username=$u"
    has "$f" "CHOREO_KAFKA_ssl_ca_location=$SEC/ca.crt"
    grep -v '^#' "$f" | grep -qv '^CHOREO_BROKERS=\|^CHOREO_KAFKA_' &&
        fail "$f holds other lines than CHOREO_BROKERS and CHOREO_KAFKA_*"
done
# The secrets: every user's password and the keystore's.
SECRETS=$(sed -n 's/^CHOREO_KAFKA_sasl_password=//p' "$SEC"/*.env; cat "$SEC/store.pass")
[ "$(echo "$SECRETS" | grep -c '^[0-9a-f]\{48\}$')" -eq 8 ] ||
    fail "expected 8 secrets of 48 hex digits"
ok "credentials files for $users: mode 0600, CHOREO_BROKERS and CHOREO_KAFKA_* lines"

# Without credentials the broker answers nothing.
run 1 "$CHOREO" -b "127.0.0.1:$PORT" topics
cp "$TMP/err" "$OUT/plain-err"

# ---------------------------------------------------------------- topics and ACLs

(as admin "$CHOREO" topics --create) >"$OUT/topics-create" 2>&1 ||
    fail "admin could not create the topics: $(cat "$OUT/topics-create")"
(as admin "$CHOREO" acl --apply) >"$OUT/acl-apply" 2>&1 ||
    fail "choreo acl --apply failed: $(cat "$OUT/acl-apply")"
f="$OUT/acl-apply"
grep -q ' created$' "$f" || fail "acl --apply created nothing: $(cat "$f")"
grep -q ' exists$' "$f" && fail "acl --apply on a fresh cluster found bindings: $(cat "$f")"
for row in "User:payments +TOPIC +${P}payments +LITERAL +WRITE +ALLOW +\\* +created" \
    "User:payments +TOPIC +${P}dlq.payments +LITERAL +WRITE +ALLOW" \
    "User:payments +GROUP +${P}payments +LITERAL +READ +ALLOW" \
    "User:shipping +TOPIC +${P}orders +LITERAL +READ +ALLOW" \
    "User:cli +TOPIC +${P}orders +LITERAL +WRITE +ALLOW"; do
    grep -Eq "^$row" "$f" || fail "acl --apply lacks /$row/: $(cat "$f")"
done
grep -Eq "^User:payments +TOPIC +${P}orders +LITERAL +WRITE" "$f" &&
    fail "payments may write orders: $(cat "$f")"
(as admin "$CHOREO" acl --apply --json) >"$OUT/acl-again" 2>&1 ||
    fail "second acl --apply failed: $(cat "$OUT/acl-again")"
grep -q '"status":"created"' "$OUT/acl-again" &&
    fail "second acl --apply created again: $(cat "$OUT/acl-again")"
has "$OUT/acl-again" '"status":"exists"'
ok "choreo acl --apply: $(grep -c ' created$' "$f") bindings created, the second run only finds them"

# ---------------------------------------------------------------- the saga

# The command line runs as cli from here on (watch, produce, tail).
set -a
. "$SEC/cli.env"
set +a
for s in $SVCS; do
    mkdir -p "$TMP/$s"
    as "$s" env CHOREO_DATA_DIR="$TMP/$s" CHOREO_HTTP_ADDR=127.0.0.1:0 \
        CHOREO_LOG_LEVEL=debug "$BUILD/bin/$s" >>"$TMP/$s.log" 2>&1 &
    echo $! >"$TMP/$s.pid"
    SERVICES="$SERVICES $s"
done
for s in $SVCS; do
    wait_group "$s" '"assignment":["' 60
done
ok "the five services joined their groups, each as its own principal"

produce() { # produce TYPE DATA: as cli, must succeed
    "$CHOREO" produce "$1" --data "$2" >"$OUT/produce-$1" 2>&1 ||
        fail "produce $1 as cli: $(cat "$OUT/produce-$1")"
}
produce customer.registered '{"customer_id":"c1","name":"Ada","email":"ada@example.com","credit_limit_cents":100000}'
produce stock.added '{"sku":"sku-1","qty":5}'
wait_dump 30 payments '"c1"' inventory '"sku-1"' || fail "customer or stock not applied in 30 s"
t=$(date +%s)
produce order.placed "$(ORDER_DATA o1 c1 sku-1)"
"$CHOREO" tail orders --from-beginning --key o1 --until order.completed --timeout 30s \
    >"$OUT/tail" 2>&1 || fail "order o1 not completed within 30 s: $(cat "$OUT/tail")"
has "$OUT/tail" '"type":"order.confirmed"'
ok "the saga over SASL_SSL with the derived ACLs: o1 completed in $(($(date +%s) - t)) s"

# ---------------------------------------------------------------- denied

# payments may write payments, never orders: the broker refuses the records.
err="$OUT/denied"
(as payments "$CHOREO" produce order.placed --data "$(ORDER_DATA o2 c1 sku-1)") >"$err" 2>&1 &&
    fail "payments wrote to ${P}orders: $(cat "$err")"
grep -qi 'topic authorization failed\|TOPIC_AUTHORIZATION_FAILED' "$err" ||
    fail "payments writing ${P}orders: no authorization error: $(cat "$err")"
(as payments "$CHOREO" produce payment.declined \
    --data '{"order_id":"o-x","reason":"credit_limit"}') >"$OUT/allowed" 2>&1 ||
    fail "payments could not write its own topic: $(cat "$OUT/allowed")"
ok "payments writing ${P}orders is denied by the broker ($(grep -o 'Broker: Topic authorization failed' "$err" | head -n 1)); its own topic is fine"

# Nor may it create topics or grant itself ACLs.
(as payments "$CHOREO" --topic-prefix "${P}x-" topics --create) >"$OUT/create-denied" 2>&1 &&
    fail "payments created topics: $(cat "$OUT/create-denied")"
has "$OUT/create-denied" "AUTHORIZATION_FAILED"
(as payments "$CHOREO" acl --apply payments) >"$OUT/acl-denied" 2>&1 &&
    fail "payments applied ACLs: $(cat "$OUT/acl-denied")"
has "$OUT/acl-denied" "CLUSTER_AUTHORIZATION_FAILED"
ok "payments may neither create topics nor alter ACLs"

# ---------------------------------------------------------------- wrong password

t=$(date +%s)
err="$OUT/wrong-cli"
(as cli env CHOREO_KAFKA_sasl_password=not-the-password "$CHOREO" topics) >"$err" 2>&1 &&
    fail "choreo with a wrong password succeeded"
took=$(($(date +%s) - t))
[ "$took" -le 5 ] || fail "choreo with a wrong password took $took s"
has "$err" "authentication to Kafka at 127.0.0.1:$PORT"
has "$err" "failed: SASL authentication error"
has "$err" "invalid credentials"
ok "choreo with a wrong password: exit 1 in $took s: $(head -c 120 "$err")..."

mkdir -p "$TMP/wrong"
log="$TMP/wrong.log"
t=$(date +%s)
as orders env CHOREO_DATA_DIR="$TMP/wrong" CHOREO_TOPIC_PREFIX="${P}wrong-" \
    CHOREO_KAFKA_sasl_password=not-the-password "$BUILD/bin/orders" >"$log" 2>&1 &
wpid=$!
until grep -q 'level=error.*SASL authentication error.*invalid credentials' "$log"; do
    [ $(($(date +%s) - t)) -lt 10 ] || {
        kill "$wpid" 2>/dev/null
        fail "orders with a wrong password logged no authentication error in 10 s: $(cat "$log")"
    }
    sleep 0.1
done
took=$(($(date +%s) - t))
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
[ "$took" -le 5 ] || fail "the authentication error took $took s"
ok "orders with a wrong password logs the authentication error at level error in $took s"

# ---------------------------------------------------------------- no secret anywhere

ps -eo args >"$OUT/ps"
for s in $SVCS; do
    port=$(sed -n 's/.*msg="health and metrics listening".* port=\([0-9]*\).*/\1/p' \
        "$TMP/$s.log" | head -n 1)
    [ -n "$port" ] || fail "$s: no metrics port in its log"
    curl -fsS "http://127.0.0.1:$port/metrics" >"$OUT/$s-metrics" ||
        fail "$s: GET /metrics failed"
    grep -q . "$OUT/$s-metrics" || fail "$s: empty /metrics"
    curl -fsS "http://127.0.0.1:$port/healthz" >"$OUT/$s-healthz" 2>&1 || true
    (as "$s" env CHOREO_DATA_DIR="$TMP/$s" "$BUILD/bin/$s" --dump) >"$OUT/$s-dump" 2>&1 ||
        fail "$s --dump failed: $(cat "$OUT/$s-dump")"
done
for s in $SVCS; do stop_service "$s"; done
grep -q 'msg="kafka property from environment" property=sasl.password' "$TMP/orders.log" ||
    fail "the services' debug log does not name the properties it read (test is blind)"
searched=$(ls "$TMP"/*.log "$OUT"/* "$BROKER_DIR"/node-*/logs/* | wc -l)
for secret in $SECRETS; do
    hits=$(grep -rlF -- "$secret" "$TMP"/*.log "$OUT" "$BROKER_DIR"/node-*/logs || true)
    [ -z "$hits" ] || fail "a secret appears in: $hits"
done
ok "no secret in $searched files: service logs (debug), broker logs, /metrics, /healthz, --dump, CLI outputs, ps args"
ok "all in $(($(date +%s) - t0)) s"
