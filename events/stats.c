/* SPDX-License-Identifier: MIT */
/* The service loop's published totals behind one mutex: the loop publishes a
 * copy, metrics and health read it, neither depends on the other. */
#include "stats.h"

#include <pthread.h>

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static ev_runtime_stats stats_shared;

void ev_runtime_stats_get(ev_runtime_stats *out)
{
    pthread_mutex_lock(&stats_lock);
    *out = stats_shared;
    pthread_mutex_unlock(&stats_lock);
}

void ev_runtime_stats_publish(const ev_runtime_stats *st)
{
    pthread_mutex_lock(&stats_lock);
    stats_shared = *st;
    pthread_mutex_unlock(&stats_lock);
}
