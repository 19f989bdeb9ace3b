/* SPDX-License-Identifier: MIT */
/* The shipping service's definition: its handler table, emitted types, tables,
 * timers and dump, run by events/runtime.c. */
#ifndef CHOREO_SHIPPING_H
#define CHOREO_SHIPPING_H

#include "runtime.h"

extern const ev_service_def shipping_def;

#endif
