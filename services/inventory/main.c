/* SPDX-License-Identifier: MIT */
/* The inventory service's program: configuration, signals and the loop all live in
 * ev_service_main; this file only names the service definition. */
#include "inventory.h"

int main(int argc, char **argv)
{
    return ev_service_main(&inventory_def, argc, argv);
}
