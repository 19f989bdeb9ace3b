/* SPDX-License-Identifier: MIT */
/* The inventory service's definition: its handler table, emitted types, tables,
 * timers and dump, run by events/runtime.c. */
#ifndef CHOREO_INVENTORY_H
#define CHOREO_INVENTORY_H

#include "runtime.h"

extern const ev_service_def inventory_def;

#endif
