/* SPDX-License-Identifier: MIT */
/* The shipping service's program: configuration, signals and the loop all live in
 * ev_service_main; this file only names the service definition. */
#include "shipping.h"

int main(int argc, char **argv)
{
    return ev_service_main(&shipping_def, argc, argv);
}
