/* SPDX-License-Identifier: MIT */
/* The payments service's program: configuration, signals and the loop all live in
 * ev_service_main; this file only names the service definition. */
#include "payments.h"

int main(int argc, char **argv)
{
    return ev_service_main(&payments_def, argc, argv);
}
