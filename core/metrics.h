/*
 * metrics.h - process-wide counters, exported by the gateway as Prometheus
 * text (GET /metrics) and read by the benchmarks.
 *
 * Each layer owns its counters: the core's are hf_metrics (here); storage
 * and the gateway keep theirs beside their code and register a writer
 * (hf_metrics_register) that hf_metrics_write calls after the core's, with
 * the helpers below for the exposition format. Every counter is one global
 * updated from any thread with relaxed atomics: a monotonic counter or a
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
    atomic_int_least64_t actors_active;
    atomic_uint_least64_t activations;
    atomic_uint_least64_t evictions;
    atomic_int_least64_t mailbox_depth; /* queued across all actors */
    atomic_uint_least64_t overloaded;
    atomic_uint_least64_t events;
    atomic_uint_least64_t alarms_fired;
    atomic_uint_least64_t alarms_failed;
    atomic_uint_least64_t outbox_sent;
    atomic_uint_least64_t outbox_delivered;
    atomic_uint_least64_t idem_hits;
};

extern struct hf_metrics hf_metrics;

#define HF_INC(f)                                                              \
    atomic_fetch_add_explicit(&hf_metrics.f, 1, memory_order_relaxed)
#define HF_ADD(f, n)                                                           \
    atomic_fetch_add_explicit(&hf_metrics.f, (n), memory_order_relaxed)
#define HF_GET(f) atomic_load_explicit(&hf_metrics.f, memory_order_relaxed)

void hf_hist_add(hf_hist *h, uint64_t v);

/* A layer's writer: appends its metrics to out. hf_metrics_register adds
 * one (again: ignored), at most HF_METRICS_WRITERS; from any thread. */
typedef void hf_metrics_writer(FILE *out);
#define HF_METRICS_WRITERS 8
void hf_metrics_register(hf_metrics_writer *w);

/* The exposition format, for the writers. */
void hf_metrics_counter(FILE *out, const char *name, const char *help,
                        uint64_t v);
void hf_metrics_gauge(FILE *out, const char *name, const char *help, int64_t v);
void hf_metrics_hist(FILE *out, const char *name, const char *help,
                     const hf_hist *h);
/* One series of a labelled histogram (labels: e.g. `kind="x"`), without
 * the HELP and TYPE lines, which the writer prints once before. */
void hf_metrics_hist_series(FILE *out, const char *name, const char *labels,
                            const hf_hist *h);

/* Writes every metric in Prometheus text exposition format (the core's,
 * then each registered writer's), then the
 * process collector's standard ones read from the OS at that moment:
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_max_fds. */
void hf_metrics_write(FILE *out);

#endif
