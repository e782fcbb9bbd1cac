/*
 * metrics.h - process-wide counters, exported by the gateway as Prometheus
 * text (GET /metrics) and read by the benchmarks.
 *
 * One global instance, hf_metrics, owned by nobody and updated from any
 * thread with relaxed atomics: every field is a monotonic counter or a
 * gauge, and readers accept a momentarily inconsistent view across fields.
 */
#ifndef HF_CORE_METRICS_H
#define HF_CORE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

/* Upper bounds of histogram buckets: powers of two, 1 .. 2^(N-1). */
#define HF_HIST_N 24

typedef struct hf_hist {
    atomic_uint_least64_t bucket[HF_HIST_N + 1]; /* last = +Inf */
    atomic_uint_least64_t count;
    atomic_uint_least64_t sum;
} hf_hist;

struct hf_metrics {
    atomic_uint_least64_t calls[HF_ECOUNT_]; /* by outcome, index -err */
    atomic_uint_least64_t commits;           /* LMDB transactions */
    atomic_uint_least64_t commit_failures;
    atomic_uint_least64_t commit_batches;    /* worker batches committed */
    atomic_uint_least64_t commit_ops;        /* write operations */
    atomic_uint_least64_t commit_handlers;   /* handlers committed */
    atomic_uint_least64_t map_grows;
    atomic_int_least64_t actors_active;
    atomic_uint_least64_t activations;
    atomic_uint_least64_t evictions;
    atomic_int_least64_t mailbox_depth;     /* queued across all actors */
    atomic_uint_least64_t overloaded;
    atomic_uint_least64_t events;
    atomic_uint_least64_t alarms_fired;
    atomic_uint_least64_t alarms_failed;
    atomic_uint_least64_t outbox_sent;
    atomic_uint_least64_t outbox_delivered;
    atomic_uint_least64_t idem_hits;
    atomic_int_least64_t connections;       /* open WebSocket connections */
    atomic_uint_least64_t connections_total;
    atomic_uint_least64_t connections_refused;
    atomic_uint_least64_t frames_in;
    atomic_uint_least64_t frames_out;
    atomic_uint_least64_t messages_in;
    atomic_uint_least64_t bad_messages;
    atomic_uint_least64_t rate_limited;
    atomic_uint_least64_t slow_consumers;  /* closed with 1013 */
    atomic_uint_least64_t idle_hangups;    /* silent past the heartbeat */
    atomic_uint_least64_t subs_revoked;    /* ended by a new or expired token */
    atomic_uint_least64_t http_body_timeouts; /* bodies not whole in time */
    atomic_uint_least64_t http_requests;
    hf_hist commit_handlers_hist; /* handlers per commit */
    hf_hist commit_us_hist;       /* commit latency, microseconds */
};

extern struct hf_metrics hf_metrics;

#define HF_INC(f)     atomic_fetch_add_explicit(&hf_metrics.f, 1, memory_order_relaxed)
#define HF_ADD(f, n)  atomic_fetch_add_explicit(&hf_metrics.f, (n), memory_order_relaxed)
#define HF_GET(f)     atomic_load_explicit(&hf_metrics.f, memory_order_relaxed)

void hf_hist_add(hf_hist *h, uint64_t v);

/* Writes every metric in Prometheus text exposition format, then the
 * process collector's standard ones read from the OS at that moment:
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_max_fds. */
void hf_metrics_write(FILE *out);

#endif
