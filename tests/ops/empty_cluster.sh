#!/bin/sh
# SPDX-License-Identifier: MIT
# A new user's first run: the five services started on a cluster with none of
# their topics, then a customer, stock and an order produced by a foreign client
# (kcat, structured CloudEvents). The services create their topics before they
# subscribe, so the order completes within 10 s of being produced.
. "$(dirname "$0")/../cli/lib.inc"

command -v kcat >/dev/null 2>&1 || fail "kcat is not installed (make deps)"
have_services orders inventory payments shipping notifications || fail "services not built"
P=$CHOREO_TOPIC_PREFIX

topics_now() { kcat -b "$CHOREO_BROKERS" -L -J 2>/dev/null | tr ',' '\n' | grep -o "\"topic\":\"$P[^\"]*\"" | sort -u; }
[ -z "$(topics_now)" ] || fail "prefix $P has topics before the services start"

for s in orders inventory payments shipping notifications; do start_service "$s"; done

# Every topic of the contract and every DLQ exists, with CHOREO_TOPIC_PARTITIONS (3).
want="customers inventory orders payments shipments notifications dlq.orders
dlq.inventory dlq.payments dlq.shipping dlq.notifications"
deadline=$(($(date +%s) + 60))
until "$CHOREO" topics --json >"$TMP/topics.json" 2>"$TMP/topics.err" &&
    ! grep -q '"exists": *false' "$TMP/topics.json"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "topics not created in 60 s: $(cat "$TMP/topics.json" "$TMP/topics.err")"
    sleep 0.5
done
for t in $want; do
    python3 -c 'import json,sys; d={x["topic"]:x for x in json.load(open(sys.argv[1]))}; x=d[sys.argv[2]]; sys.exit(0 if x["exists"] and x["partitions"]==3 else 1)' \
        "$TMP/topics.json" "$P$t" || fail "topic $P$t missing or not 3 partitions: $(cat "$TMP/topics.json")"
done
ok "services created the 11 topics with 3 partitions each"
for s in orders inventory payments shipping notifications; do
    wait_group "$s" '"assignment":["' 30
done
wait_group payments "${P}customers/2" 30

uuid() { cat /proc/sys/kernel/random/uuid; }
now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }
ce() { # ce TYPE SUBJECT DATA: a structured-mode CloudEvent as one line
    id=$(uuid)
    printf '{"specversion":"1.0","id":"%s","source":"/kcat","type":"%s","subject":"%s","time":"%s","datacontenttype":"application/json","correlationid":"%s","causationid":"%s","data":%s}\n' \
        "$id" "$1" "$2" "$(now)" "$id" "$id" "$3"
}
send() { # send TOPIC KEY LINE
    printf '%s\n' "$3" | kcat -b "$CHOREO_BROKERS" -P -t "$P$1" -k "$2" \
        -H content-type=application/cloudevents+json 2>"$TMP/kcat.err" ||
        fail "kcat produce to $P$1: $(cat "$TMP/kcat.err")"
}
send customers c1 "$(ce customer.registered c1 '{"customer_id":"c1","name":"Ada","email":"ada@example.com","credit_limit_cents":100000}')"
send inventory sku-1 "$(ce stock.added sku-1 '{"sku":"sku-1","qty":5}')"
# The customer and the stock must be known before the order, as for any client.
wait_for() { # wait_for TOPIC PATTERN SECONDS
    deadline=$(($(date +%s) + $3))
    while :; do
        kcat -b "$CHOREO_BROKERS" -C -t "$P$1" -o beginning -e -q 2>/dev/null >"$TMP/read.txt"
        grep -qF -- "$2" "$TMP/read.txt" && return 0
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
# payments and inventory have applied them once they show in their dumps.
wait_dump 20 payments '"c1"' inventory '"sku-1"' || fail "customer or stock not applied in 20 s"
send orders o1 "$(ce order.placed o1 "$(ORDER_DATA o1 c1 sku-1)")"
wait_for orders '"type":"order.completed","subject":"o1"' 10 ||
    { grep -o '"type":"[a-z_.]*"' "$TMP/read.txt" >&2; fail "order o1 not completed within 10 s"; }
has "$TMP/read.txt" '"type":"order.confirmed"'
ok "order produced with kcat completed within 10 s on a cluster that started empty"
