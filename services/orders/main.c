/* SPDX-License-Identifier: MIT */
/* The orders service's program: configuration, signals and the loop all live in
 * ev_service_main; this file only names the service definition. */
#include "orders.h"

int main(int argc, char **argv)
{
    return ev_service_main(&orders_def, argc, argv);
}
