#!/bin/sh
# trace: the causal tree of an order; with payments stopped, the missing step
# is named with the service that owes it and its group's state.
. "$(dirname "$0")/lib.inc"

run 1 "$CHOREO" trace no-such-order
has "$TMP/err" "no events of order 'no-such-order'"
ok "an unknown order exits 1"

have_services orders inventory || skip "no $BUILD/bin/orders or inventory yet"
run 0 "$CHOREO" topics --create
start_service orders
start_service inventory
run 0 "$CHOREO" produce stock.added --data '{"sku":"s-1","qty":10}'
# Stock and orders are on different topics: let inventory apply the stock first
# (its group can read "caught up" before it is assigned any partition).
wait_dump 30 inventory '"s-1"' || fail "inventory never applied the stock of s-1"
run 0 "$CHOREO" produce order.placed --data "$(ORDER_DATA o-1 c-1 s-1)"
run 0 "$CHOREO" tail --from-beginning --key o-1 --until inventory.reserved --timeout 30s

run 0 "$CHOREO" trace o-1
has "$TMP/out" "order.placed"
has "$TMP/out" "└─ inventory.reserved"
has "$TMP/out" "inventory"
has "$TMP/out" "outcome: none yet"
has "$TMP/out" "waiting for payment.authorized|payment.declined from payments (after inventory.reserved)"
has "$TMP/out" "group ${CHOREO_TOPIC_PREFIX}payments"
has "$TMP/out" "the service is not running"
ok "stuck order: names the missing step and the stopped service"

run 0 "$CHOREO" trace o-1 --json
has "$TMP/out" '"outcome":null'
has "$TMP/out" '"waiting_for":["payment.authorized","payment.declined"],"service":"payments"'
ok "--json has the missing step"

have_services payments || skip "no payments binary: cannot finish the flow"
run 0 "$CHOREO" produce customer.registered \
    --data '{"customer_id":"c-1","name":"Ann","email":"ann@example.com","credit_limit_cents":100000}'
start_service payments
# Payments may see the order before the customer (other topic): either way
# the flow now reaches an order outcome past the payment step.
run 0 "$CHOREO" tail --from-beginning --key o-1 --until 'order.[cr][oe]*' --timeout 60s
run 0 "$CHOREO" trace o-1
has "$TMP/out" "payment."
lacks "$TMP/out" "waiting for payment"
run 0 "$CHOREO" trace o-1 --json
corr=$(tr ',' '\n' <"$TMP/out" | sed -n 's/^"correlationid":"\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$corr" ] || fail "no correlationid in trace --json"
run 0 "$CHOREO" trace --correlation "$corr"
has "$TMP/out" "payment."
ok "after payments starts the flow goes on; --correlation finds the same flow"
