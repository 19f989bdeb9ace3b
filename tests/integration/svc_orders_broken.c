/* SPDX-License-Identifier: MIT */
/* A fixture: the orders service with one handler broken on purpose, as a
 * faulty deploy would be: payment.declined is taken for an authorization.
 * `--verify` of this build against the real service's log must report it. */
#include "../../services/orders/orders.c"

/* The broken handler: a declined payment confirms the order once reserved. */
static int broken_on_declined(ev_ctx *ctx, const ev_envelope *ev, ev_error *err)
{
    return ord_fact(ctx, ev, ORD_FACT_SQL("authorized"), false, err);
}

static const ev_handler broken_handlers[] = {
    {"order.placed", ord_on_placed},
    {"order.cancel_requested", ord_on_cancel_requested},
    {"inventory.reserved", ord_on_reserved},
    {"inventory.rejected", ord_on_out_of_stock},
    {"payment.authorized", ord_on_authorized},
    {"payment.declined", broken_on_declined},
    {"shipment.dispatched", ord_on_dispatched},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    ev_service_def def = orders_def;
    def.handlers = broken_handlers;
    (void)ord_handlers;
    return ev_service_main(&def, argc, argv);
}
