/* SPDX-License-Identifier: MIT */
/* The notifications service's program: configuration, signals and the loop all live in
 * ev_service_main; this file only names the service definition. */
#include "notifications.h"

int main(int argc, char **argv)
{
    return ev_service_main(&notifications_def, argc, argv);
}
