/* metrics.c - see metrics.h. */
#include <dirent.h>
#include <pthread.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/metrics.h"

struct hf_metrics hf_metrics;

static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static hf_metrics_writer *writers[HF_METRICS_WRITERS]; /* wmu */
static int nwriters;                                   /* wmu */

void
hf_metrics_register(hf_metrics_writer *w)
{
    pthread_mutex_lock(&wmu);
    for (int i = 0; i < nwriters; i++)
        if (writers[i] == w)
            goto done;
    if (nwriters < HF_METRICS_WRITERS)
        writers[nwriters++] = w;
done:
    pthread_mutex_unlock(&wmu);
}

void
hf_hist_add(hf_hist *h, uint64_t v)
{
    int b = 0;
    while (b < HF_HIST_N && v > ((uint64_t)1 << b))
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void
hf_metrics_counter(FILE *out, const char *name, const char *help, uint64_t v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name,
            help, name, name, v);
}

void
hf_metrics_gauge(FILE *out, const char *name, const char *help, int64_t v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRId64 "\n", name, help,
            name, name, v);
}

void
hf_metrics_hist_series(FILE *out, const char *name, const char *labels,
                       const hf_hist *h)
{
    const char *sep = *labels ? "," : "";
    uint64_t cum = 0;

    for (int b = 0; b < HF_HIST_N; b++) {
        cum += atomic_load(&h->bucket[b]);
        fprintf(out, "%s_bucket{%s%sle=\"%" PRIu64 "\"} %" PRIu64 "\n", name,
                labels, sep, (uint64_t)1 << b, cum);
    }
    cum += atomic_load(&h->bucket[HF_HIST_N]);
    fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
            sep, cum);
    if (*labels)
        fprintf(out,
                "%s_sum{%s} %" PRIu64 "\n%s_count{%s} %" PRIu64 "\n", name,
                labels, (uint64_t)atomic_load(&h->sum), name, labels,
                (uint64_t)atomic_load(&h->count));
    else
        fprintf(out, "%s_sum %" PRIu64 "\n%s_count %" PRIu64 "\n", name,
                (uint64_t)atomic_load(&h->sum), name,
                (uint64_t)atomic_load(&h->count));
}

void
hf_metrics_hist(FILE *out, const char *name, const char *help, const hf_hist *h)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    hf_metrics_hist_series(out, name, "", h);
}

/* Pages resident, from /proc/self/statm (its second field); 0 if
 * unreadable. */
static uint64_t
resident_bytes(void)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static int64_t
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int64_t n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The process collector's standard names, so that the usual dashboards
 * and the benchmarks (memory per connection) read them as they are. */
static void
process_metrics(FILE *out)
{
    struct rusage ru;
    struct rlimit rl;

    if (getrusage(RUSAGE_SELF, &ru) == 0)
        fprintf(out,
                "# HELP process_cpu_seconds_total Total user and system CPU "
                "time spent in seconds.\n"
                "# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.6f\n",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec +
                    (double)ru.ru_stime.tv_usec / 1e6);
    hf_metrics_gauge(out, "process_resident_memory_bytes",
                     "Resident memory size in bytes.",
                     (int64_t)resident_bytes());
    hf_metrics_gauge(out, "process_open_fds",
                     "Number of open file descriptors.", open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        hf_metrics_gauge(
            out, "process_max_fds", "Maximum number of open file descriptors.",
            rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur);
}

void
hf_metrics_write(FILE *out)
{
    fprintf(out, "# HELP holdfast_calls_total Calls by outcome.\n"
                 "# TYPE holdfast_calls_total counter\n");
    for (int i = 0; i < HF_ECOUNT_; i++)
        fprintf(out, "holdfast_calls_total{outcome=\"%s\"} %" PRIu64 "\n",
                hf_err_name(-i), (uint64_t)HF_GET(calls[i]));
    hf_metrics_gauge(out, "holdfast_actors_active", "Actors in memory.",
                     HF_GET(actors_active));
    hf_metrics_counter(out, "holdfast_activations_total", "Actor activations.",
                       HF_GET(activations));
    hf_metrics_counter(out, "holdfast_evictions_total", "Actor evictions.",
                       HF_GET(evictions));
    hf_metrics_gauge(out, "holdfast_mailbox_depth",
                     "Messages queued to actors.", HF_GET(mailbox_depth));
    hf_metrics_counter(out, "holdfast_overloaded_total",
                       "Messages refused because a mailbox was full.",
                       HF_GET(overloaded));
    hf_metrics_counter(out, "holdfast_events_total", "Events emitted.",
                       HF_GET(events));
    hf_metrics_counter(out, "holdfast_alarms_fired_total",
                       "Alarm handler runs.", HF_GET(alarms_fired));
    hf_metrics_counter(out, "holdfast_alarms_failed_total",
                       "Alarm handler failures.", HF_GET(alarms_failed));
    hf_metrics_counter(out, "holdfast_outbox_sent_total",
                       "Actor-to-actor sends.", HF_GET(outbox_sent));
    hf_metrics_counter(out, "holdfast_idempotent_hits_total",
                       "Calls answered from a stored idempotent reply.",
                       HF_GET(idem_hits));
    pthread_mutex_lock(&wmu);
    for (int i = 0; i < nwriters; i++)
        writers[i](out);
    pthread_mutex_unlock(&wmu);
    process_metrics(out);
}
