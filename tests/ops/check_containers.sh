#!/bin/sh
# SPDX-License-Identifier: MIT
# compose.yaml, Dockerfile and .dockerignore checked statically (no container engine
# here) by tests/ops/containers.py; then broken copies must be caught.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHECK="$ROOT/tests/ops/containers.py"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }

if python3 "$CHECK" "$ROOT"; then ok; else ko "the real compose.yaml/Dockerfile"; fi

# mutant NAME FILE SED-SCRIPT EXPECTED-TEXT: a broken copy must fail with that text.
mutant() {
    cp "$ROOT/compose.yaml" "$TMP/compose.yaml"
    cp "$ROOT/Dockerfile" "$TMP/Dockerfile"
    sed -i "$3" "$TMP/$2"
    out=$(python3 "$CHECK" "$ROOT" "$TMP/compose.yaml" "$TMP/Dockerfile")
    if [ $? -ne 0 ] && printf '%s\n' "$out" | grep -q "$4"; then
        ok
    else
        ko "mutant $1 not caught (want '$4'; got: $out)"
    fi
}

mutant missing-service compose.yaml '/^  notifications:/,/^volumes:/{/^volumes:/!d}' \
    'service notifications missing'
mutant env-typo compose.yaml 's/CHOREO_BROKERS:/CHOREO_BROKER:/' 'CHOREO_BROKER is not read'
mutant broker-unknown compose.yaml 's/CHOREO_BROKERS: kafka:19092/CHOREO_BROKERS: kafka:9999/' \
    'not an advertised kafka listener'
mutant health-port compose.yaml 's|127.0.0.1:8080/healthz|127.0.0.1:8081/healthz|' \
    'healthcheck does not GET /healthz'
mutant shared-volume compose.yaml 's|payments-data:/var/lib/choreo|orders-data:/var/lib/choreo|' \
    'shared with'
mutant store-elsewhere compose.yaml 's|@postgres:5432/choreo|@db:5432/choreo|' \
    'is not the compose postgres'
mutant no-pg-wait compose.yaml '/^    postgres:$/,/condition: service_healthy/d' \
    'does not wait for a healthy postgres'
mutant replicas-one-port compose.yaml 's|127.0.0.1:9101-9103:8080|127.0.0.1:9101:8080|' \
    'need a host port range'
mutant replicas-on-sqlite compose.yaml 's|  CHOREO_STORE: postgresql://choreo:choreo@postgres:5432/choreo|  CHOREO_STORE: sqlite|' \
    'replicas on SQLite stores'
mutant pg-image compose.yaml 's|image: postgres:15|image: mysql:8|' 'not the official postgres'
mutant zookeeper compose.yaml 's/KAFKA_PROCESS_ROLES: broker,controller/KAFKA_PROCESS_ROLES: broker/' \
    'not KRaft'
mutant unparsable compose.yaml '1i services: [unclosed' 'does not parse'
mutant no-make-target Dockerfile 's/RUN make all/RUN make everything/' 'no such target'
mutant root-user Dockerfile 's/^USER choreo/USER root/' 'runs as root'
mutant missing-lib Dockerfile 's/libmicrohttpd12 //' 'lacks libmicrohttpd12'
mutant wrong-base Dockerfile 's/FROM debian:bookworm-slim AS runtime/FROM alpine:3 AS runtime/' \
    'not Debian bookworm'

echo "containers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
