/* SPDX-License-Identifier: MIT */
/* The orders service's definition: its handler table, emitted types, tables,
 * timers and dump, run by events/runtime.c. */
#ifndef CHOREO_ORDERS_H
#define CHOREO_ORDERS_H

#include "runtime.h"

extern const ev_service_def orders_def;

#endif
