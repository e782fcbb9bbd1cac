/*
 * connsview.h - what a running server says of itself (connsview.c), for
 * holdfast-bench connections. Private to holdfast-bench. Main thread only.
 */
#ifndef HF_BENCH_CONNSVIEW_H
#define HF_BENCH_CONNSVIEW_H

#include <stdint.h>

#include "bench/ws.h"

/* What the server says of itself. Fields it could not tell are < 0. */
struct sview {
    int ok;        /* /metrics answered */
    int64_t conns; /* holdfast_connections */
    int64_t rss;   /* bytes */
    int64_t fds;   /* open */
    double cpu;    /* seconds, user + system */
    uint64_t ns;   /* when read */
};

/* Reads what the server says of itself into *v: its /metrics, then with
 * pid > 0 /proc/pid for memory, CPU and descriptors. */
void wb_conns_look(const struct target *t, long long pid, struct sview *v);

#endif
