/*
 * bench.h - the harness shared by holdfast-bench's scenarios.
 *
 * holdfast-bench is one executable with one subcommand per scenario
 * (engine in-process; calls, connections, booking, devices, mix and
 * fanout against a running server over WebSocket, sharing bench/ws.h and
 * the ws*.c files it lists). A scenario is a function taking the
 * arguments after its name and returning the exit status; it is listed
 * in the const table in bench.c. What every scenario needs lives
 * here so that each one is only its own workload:
 *
 *   flags     a table-driven "--name value" parser and its usage text;
 *   latency   a log-linear histogram of nanosecond samples (HDR-like:
 *             64 sub-buckets per power of two, so a quantile is within
 *             1/64 of the true sample), one per client thread, merged;
 *   rig       a fresh data directory, an LMDB store and a host on it;
 *   progress  one status line per second on stderr;
 *   results   one row per run: the table on stdout and the JSON file.
 *
 * Thread-safety: a latency histogram belongs to one thread until it is
 * merged. Everything else is called from the main thread only.
 */
#ifndef HF_BENCH_BENCH_H
#define HF_BENCH_BENCH_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/err.h"
#include "core/host.h"
#include "core/storage.h"

/* Exit statuses: 0 when every run verified, 1 when a run failed or lied,
 * 2 for bad usage. */
enum { HF_BENCH_OK = 0, HF_BENCH_FAIL = 1, HF_BENCH_USAGE = 2 };

/* A scenario: argv holds only the arguments after its name. */
struct hf_bench_cmd {
    const char *name;
    const char *summary; /* one line for the top-level --help */
    int (*run)(int argc, char **argv);
};

int hf_bench_engine(int argc, char **argv);
int hf_bench_calls(int argc, char **argv);
int hf_bench_connections(int argc, char **argv);
int hf_bench_fanout(int argc, char **argv);
int hf_bench_publish(int argc, char **argv);
int hf_bench_booking(int argc, char **argv);
int hf_bench_devices(int argc, char **argv);
int hf_bench_mix(int argc, char **argv);

/* ------------------------------------------------------------------ */
/* flags                                                               */

enum hf_bench_ftype {
    HF_BF_INT,    /* long long, within [min, max] */
    HF_BF_DOUBLE, /* double, within [min, max] */
    HF_BF_STR,    /* const char *, pointing into argv */
    HF_BF_BOOL    /* int set to 1 by a bare "--name" (takes no value;
                     "--name=0" or "=1" also work) */
};

struct hf_bench_flag {
    const char *name;    /* without the leading "--" */
    const char *metavar; /* shown in the usage text */
    enum hf_bench_ftype type;
    void *dst;       /* long long *, double *, const char ** or int * */
    double min, max; /* numeric flags only */
    int *seen;       /* set to 1 when given; may be NULL */
    const char *help;
};

/* Parses "--name value" and "--name=value" into the table's destinations.
 * Returns 0; 1 when --help or -h was given (nothing else is parsed: the
 * caller prints its usage and exits 0); or HF_BENCH_USAGE after printing
 * what was wrong to stderr, naming the subcommand cmd. */
int hf_bench_flags(const char *cmd, const struct hf_bench_flag *f, size_t n,
                   int argc, char **argv);

/* One line per flag: "  --name METAVAR  help". */
void hf_bench_flags_usage(FILE *out, const struct hf_bench_flag *f, size_t n);

/* "sync" / "none" to HF_DURABLE_*, or -1. */
int hf_bench_durability(const char *s);

/* "sync", "none", or "?" for HF_BENCH_DUR_UNKNOWN (a remote server that
 * was not told to the bench). */
#define HF_BENCH_DUR_UNKNOWN (-1)
const char *hf_bench_durability_name(int durability);

/* ------------------------------------------------------------------ */
/* latency                                                             */

#define HF_BENCH_LAT_SUB 64 /* sub-buckets per power of two */
#define HF_BENCH_LAT_NB  (HF_BENCH_LAT_SUB * 59)

struct hf_bench_lat {
    uint64_t n, max;
    uint64_t b[HF_BENCH_LAT_NB];
};

void hf_bench_lat_add(struct hf_bench_lat *l, uint64_t ns);
void hf_bench_lat_merge(struct hf_bench_lat *dst,
                        const struct hf_bench_lat *src);

/* The sample at quantile q (0..1), in ns: the midpoint of its bucket,
 * never more than the largest sample. 0 when there are none. */
uint64_t hf_bench_lat_quantile(const struct hf_bench_lat *l, double q);

/* ------------------------------------------------------------------ */
/* rig: a store and a host on a fresh data directory                   */

struct hf_bench_rig {
    char dir[PATH_MAX];
    int made_tmp;  /* dir came from mkdtemp: removed by _close */
    hf_config cfg; /* workers resolved */
    hf_store st;
    int st_open;
    hf_host *host; /* NULL when stopped */
    const struct hf_kind *const *kinds; /* NULL: the built-in kinds */
    size_t nkinds;
};

/* Checks that base/label does not exist or is empty. Returns 0, or
 * HF_EBADREQ after printing why to stderr. */
int hf_bench_rig_check(const char *base, const char *label);

/* Makes the data directory: under base (created if missing) as
 * base/label, which must not exist yet or be empty; or, with base NULL, a
 * new temporary directory under $TMPDIR or /tmp. Returns 0, or
 * HF_EBADREQ / HF_EINTERNAL after printing why to stderr. */
int hf_bench_rig_dir(struct hf_bench_rig *r, const char *base,
                     const char *label);

/* Opens the store (nreaders = workers + 2, 4 GiB map) and the host with
 * hf_kinds, on r->dir. workers 0 means one per core. Returns 0 or an
 * HF_E* code (already logged). */
int hf_bench_rig_start(struct hf_bench_rig *r, int durability, int workers);

/* Closes the host, then the store. Every driver must be closed first.
 * Safe on a stopped rig. */
void hf_bench_rig_stop(struct hf_bench_rig *r);

/* Stops the rig and removes the directory if it was temporary. */
void hf_bench_rig_close(struct hf_bench_rig *r);

/* ------------------------------------------------------------------ */
/* metrics and progress                                                */

/* A snapshot of the storage counters; runs subtract two of them. */
struct hf_bench_mark {
    uint64_t ns;                  /* hf_mono_ns() when taken */
    uint64_t commits;             /* LMDB transactions */
    uint64_t handlers;            /* handlers committed */
    uint64_t commit_us, commit_n; /* commit latency sum and count */
};

void hf_bench_mark(struct hf_bench_mark *m);

/* Writes a status line on stderr: overwritten in place when stderr is a
 * terminal, one line per call otherwise (readable in CI logs). */
void hf_bench_progress(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Ends the status line, if one is showing. */
void hf_bench_progress_end(void);

/* ------------------------------------------------------------------ */
/* results                                                             */

struct hf_bench_result {
    const char *scenario;
    long long actors;
    int durability;
    int clients, window, workers;
    uint64_t ops;       /* calls answered, ok or not */
    uint64_t ok_ops;    /* calls answered ok */
    double seconds;     /* first submit to last reply */
    double ops_per_sec; /* ok_ops / seconds: errors do not count */
    double p50_us, p90_us, p99_us, p999_us, max_us;
    uint64_t commits;
    double mean_batch;         /* handlers committed per commit */
    double commit_us;          /* mean commit latency (fsync included) */
    uint64_t errors;           /* error replies */
    uint64_t errs[HF_ECOUNT_]; /* by code, index -err */
    int verified;              /* the correctness verdict passed */
    /* Scenarios against a running server (all but engine): its URL, or
     * NULL in-process. commits, batch and commit_us then come from the
     * server's /metrics (zero when it could not be read). */
    const char *url;
    /* fanout and devices (subscribers > 0). clients is then the number of
     * subscribers, window the publishers' window; ops and ok_ops count
     * deliveries (events received, over all subscribers), ops_per_sec is
     * deliveries per second, the latencies run from a publisher's send of
     * the call to a subscriber's receipt of its event, and errors are the
     * publishers' error replies. */
    int subscribers, publishers;
    uint64_t published;     /* publish calls answered ok */
    double publish_per_sec; /* published / publishing time */
    uint64_t lost;          /* events a subscriber never got */
    uint64_t reordered;     /* events that came late or twice */
    /* connections only (has_conns): ops and ok_ops are the connections
     * reached, ops_per_sec connects/s over the ramp, the latencies the
     * handshakes', errors the failed connects by code; held: connections
     * that answered a ping after the hold; the server's RSS growth per
     * connection reached and its CPU while holding (% of one core), < 0
     * when unknown. */
    int has_conns;
    uint64_t held;
    double server_bytes_per_conn, server_cpu_pct;
    /* Scenarios whose calls may be refused by design (booking: conflict):
     * those answers, counted apart from ok_ops and errors. */
    uint64_t refused;
    /* booking: the verdict counts (has_bookings set). double_bookings:
     * slots acknowledged to two different users; lost_acks: acknowledged
     * bookings the device does not hold afterwards. */
    int has_bookings;
    uint64_t double_bookings, lost_acks;
    /* The latency distribution for --plot: curve_us[i] is the latency at
     * quantile 1 - 10^(-i / 20), i.e. from the median (i = 6) to
     * 99.999% (i = 100); filled by hf_bench_result_fill. */
#define HF_BENCH_CURVE 101
    double curve_us[HF_BENCH_CURVE];
    int has_curve;
    /* Extra figures a scenario reports, written into the JSON as they
     * are (name, value), up to HF_BENCH_EXTRA. */
#define HF_BENCH_EXTRA 8
    struct {
        const char *name;
        double value;
    } extra[HF_BENCH_EXTRA];
    int nextra;
};

/* Adds an extra figure to r (ignored past HF_BENCH_EXTRA). */
void hf_bench_extra(struct hf_bench_result *r, const char *name,
                    double value);

/* Fills ops_per_sec, the percentiles, commits, mean_batch and commit_us
 * from the samples and the two metric marks. */
void hf_bench_result_fill(struct hf_bench_result *r,
                          const struct hf_bench_lat *lat,
                          const struct hf_bench_mark *m0,
                          const struct hf_bench_mark *m1);

/* The summary table (header and one row per result), then one line per
 * error code seen. Fan-out rows (subscribers > 0) get a table of their
 * own, with publish and delivery columns. */
void hf_bench_table(FILE *out, const struct hf_bench_result *r, size_t n);

/* Draws the latency distributions of r[0..n) (those with a curve) into
 * a PNG at path with gnuplot: latency against percentile, the tail
 * stretched (HdrHistogram style). Without gnuplot it says so and writes
 * the data next to path (path.dat) instead. Returns 0, or HF_EINTERNAL
 * after printing why. */
int hf_bench_plot(const char *path, const struct hf_bench_result *r,
                  size_t n);

/* Writes the results to path as one JSON object, or as an array of
 * objects when array is set. Returns 0 or HF_EINTERNAL (printed). */
int hf_bench_json(const char *path, const struct hf_bench_result *r, size_t n,
                  int array);

#endif
