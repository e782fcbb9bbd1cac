/*
 * bench.c - holdfast-bench: the subcommand table and the shared harness
 * (see bench.h).
 *
 * Design notes
 * ------------
 * A scenario is a row in `cmds`; adding one is adding a row and a file.
 * In-process scenarios (engine) drive the engine through core/driver.h, on
 * a store of their own in a fresh data directory, so that every run starts
 * empty and its correctness verdict can be exact. Scenarios against a
 * running server (all the others: ws.h) get the same exactness from
 * actor names no earlier run used.
 *
 * Logging is cut to warnings before anything starts: the host's info
 * lines would break up the progress line. Storage still warns that
 * durability "none" can lose acknowledged writes on a crash; it is meant
 * to.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "bench/bench.h"
#include "core/log.h"
#include "core/metrics.h"
#include "storage/lmdb.h"

#define MAP_SIZE ((size_t)4 << 30)

static const struct hf_bench_cmd cmds[] = {
    {.name = "engine",
     .summary = "counter.incr through the in-process driver: throughput, "
                "latency, group commit",
     .run = hf_bench_engine},
    {.name = "calls",
     .summary = "counter.incr over WebSocket against a running server: "
                "pipelined calls, latency",
     .run = hf_bench_calls},
    {.name = "connections",
     .summary = "how many WebSocket connections a running server holds: "
                "connects/s, bytes each",
     .run = hf_bench_connections},
    {.name = "booking",
     .summary = "users racing for device slots over WebSocket: durable "
                "reservations/s, 0 double bookings",
     .run = hf_bench_booking},
    {.name = "devices",
     .summary = "devices reporting status to dashboards over WebSocket: "
                "propagation latency, 0 lost",
     .run = hf_bench_devices},
    {.name = "mix",
     .summary = "a blend of the five kinds over WebSocket: calls/s per "
                "operation, exact state afterwards",
     .run = hf_bench_mix},
    {.name = "fanout",
     .summary = "events from publishers to many WebSocket subscribers of a "
                "running server",
     .run = hf_bench_fanout},
    {.name = "publish",
     .summary = "POST /v1/publish batches from HTTP publishers to many "
                "WebSocket subscribers",
     .run = hf_bench_publish},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* ------------------------------------------------------------------ */
/* flags                                                               */

static int
set_flag(const char *cmd, const struct hf_bench_flag *f, const char *v)
{
    char *end;

    switch (f->type) {
    case HF_BF_INT: {
        long long n;
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || (double)n < f->min ||
            (double)n > f->max) {
            fprintf(stderr,
                    "holdfast-bench %s: --%s wants an integer from %.0f to "
                    "%.0f, not '%s'\n",
                    cmd, f->name, f->min, f->max, v);
            return HF_BENCH_USAGE;
        }
        *(long long *)f->dst = n;
        break;
    }
    case HF_BF_DOUBLE: {
        double x;
        errno = 0;
        x = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0' || !(x >= f->min) ||
            x > f->max) {
            fprintf(stderr,
                    "holdfast-bench %s: --%s wants a number from %g to %g, "
                    "not '%s'\n",
                    cmd, f->name, f->min, f->max, v);
            return HF_BENCH_USAGE;
        }
        *(double *)f->dst = x;
        break;
    }
    case HF_BF_BOOL:
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0) {
            fprintf(stderr,
                    "holdfast-bench %s: --%s takes no value (or =0, =1)\n", cmd,
                    f->name);
            return HF_BENCH_USAGE;
        }
        *(int *)f->dst = *v == '1';
        break;
    case HF_BF_STR:
        if (*v == '\0') {
            fprintf(stderr, "holdfast-bench %s: --%s wants a value\n", cmd,
                    f->name);
            return HF_BENCH_USAGE;
        }
        *(const char **)f->dst = v;
        break;
    }
    if (f->seen)
        *f->seen = 1;
    return 0;
}

int
hf_bench_flags(const char *cmd, const struct hf_bench_flag *f, size_t n,
               int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        size_t nlen, k;

        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr,
                    "holdfast-bench %s: unexpected argument '%s' (see "
                    "holdfast-bench %s --help)\n",
                    cmd, a, cmd);
            return HF_BENCH_USAGE;
        }
        a += 2;
        eq = strchr(a, '=');
        nlen = eq ? (size_t)(eq - a) : strlen(a);
        for (k = 0; k < n; k++)
            if (strlen(f[k].name) == nlen && memcmp(f[k].name, a, nlen) == 0)
                break;
        if (k == n) {
            fprintf(stderr,
                    "holdfast-bench %s: unknown flag '%s' (see "
                    "holdfast-bench %s --help)\n",
                    cmd, argv[i], cmd);
            return HF_BENCH_USAGE;
        }
        if (eq) {
            v = eq + 1;
        } else if (f[k].type == HF_BF_BOOL) {
            v = "1";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "holdfast-bench %s: --%s wants a value\n", cmd,
                    f[k].name);
            return HF_BENCH_USAGE;
        }
        if (set_flag(cmd, &f[k], v) != 0)
            return HF_BENCH_USAGE;
    }
    return 0;
}

void
hf_bench_flags_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", f[i].name,
                 f[i].metavar[0] ? " " : "", f[i].metavar);
        fprintf(out, "  %-22s %s\n", left, f[i].help);
    }
}

int
hf_bench_durability(const char *s)
{
    if (strcmp(s, "sync") == 0)
        return HF_DURABLE_SYNC;
    if (strcmp(s, "none") == 0)
        return HF_DURABLE_NONE;
    return -1;
}

const char *
hf_bench_durability_name(int durability)
{
    if (durability == HF_BENCH_DUR_UNKNOWN)
        return "?";
    return durability == HF_DURABLE_NONE ? "none" : "sync";
}

/* ------------------------------------------------------------------ */
/* latency                                                             */

/* Values below 2 * SUB have a bucket each; above, a power of two [2^m,
 * 2^(m+1)) is cut into SUB equal buckets, so the index is continuous:
 * shift * SUB + (v >> shift), with v >> shift in [SUB, 2 * SUB). */
#define SUB_BITS 6

static unsigned
lat_index(uint64_t v)
{
    int shift;

    if (v < 2 * HF_BENCH_LAT_SUB)
        return (unsigned)v;
    shift = (63 - __builtin_clzll(v)) - SUB_BITS;
    return (unsigned)shift * HF_BENCH_LAT_SUB + (unsigned)(v >> shift);
}

static uint64_t
lat_mid(unsigned idx)
{
    unsigned shift;
    uint64_t sub;

    if (idx < 2 * HF_BENCH_LAT_SUB)
        return idx;
    shift = idx / HF_BENCH_LAT_SUB - 1;
    sub = idx - shift * HF_BENCH_LAT_SUB;
    return (sub << shift) + (((uint64_t)1 << shift) >> 1);
}

void
hf_bench_lat_add(struct hf_bench_lat *l, uint64_t ns)
{
    l->b[lat_index(ns)]++;
    l->n++;
    if (ns > l->max)
        l->max = ns;
}

void
hf_bench_lat_merge(struct hf_bench_lat *dst, const struct hf_bench_lat *src)
{
    for (unsigned i = 0; i < HF_BENCH_LAT_NB; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t
hf_bench_lat_quantile(const struct hf_bench_lat *l, double q)
{
    uint64_t rank, seen = 0;

    if (l->n == 0)
        return 0;
    /* The rank-th smallest sample, 1-based, rounding up. */
    rank = (uint64_t)(q * (double)l->n);
    if ((double)rank < q * (double)l->n)
        rank++;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < HF_BENCH_LAT_NB; i++) {
        seen += l->b[i];
        if (seen >= rank) {
            uint64_t v = lat_mid(i);
            return v < l->max ? v : l->max;
        }
    }
    return l->max;
}

/* ------------------------------------------------------------------ */
/* rig                                                                 */

static int
rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "holdfast-bench: cannot remove %s: %s\n", path,
                strerror(errno));
    return 0;
}

static int
dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int empty = 1;

    if (d == NULL)
        return 0;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

int
hf_bench_rig_check(const char *base, const char *label)
{
    char dir[PATH_MAX];

    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", base, label) >=
        sizeof(dir)) {
        fprintf(stderr, "holdfast-bench: --data path too long\n");
        return HF_EBADREQ;
    }
    /* The verdict compares against what this run acknowledged, so the
     * store must start empty. */
    if (access(dir, F_OK) == 0 && !dir_is_empty(dir)) {
        fprintf(stderr,
                "holdfast-bench: %s is not empty; each run needs a fresh "
                "store (remove it or pick another --data)\n",
                dir);
        return HF_EBADREQ;
    }
    return 0;
}

int
hf_bench_rig_dir(struct hf_bench_rig *r, const char *base, const char *label)
{
    const char *tmp = getenv("TMPDIR");

    memset(r, 0, sizeof(*r));
    if (base == NULL) {
        if (tmp == NULL || *tmp == '\0')
            tmp = "/tmp";
        snprintf(r->dir, sizeof(r->dir), "%s/holdfast-bench-%s-XXXXXX", tmp,
                 label);
        if (mkdtemp(r->dir) == NULL) {
            fprintf(stderr, "holdfast-bench: cannot make a directory %s: %s\n",
                    r->dir, strerror(errno));
            return HF_EINTERNAL;
        }
        r->made_tmp = 1;
        return 0;
    }
    if (mkdir(base, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "holdfast-bench: cannot make %s: %s\n", base,
                strerror(errno));
        return HF_EINTERNAL;
    }
    if (hf_bench_rig_check(base, label) != 0)
        return HF_EBADREQ;
    snprintf(r->dir, sizeof(r->dir), "%s/%s", base, label);
    if (mkdir(r->dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "holdfast-bench: cannot make %s: %s\n", r->dir,
                strerror(errno));
        return HF_EINTERNAL;
    }
    return 0;
}

int
hf_bench_rig_start(struct hf_bench_rig *r, int durability, int workers)
{
    hf_lmdb_config sc;
    hf_optset set = hf_lmdb_config_set(&sc);
    struct hf_lmdb_opts o;
    int rv;

    hf_config_defaults(&r->cfg);
    r->cfg.workers = workers;
    hf_config_finish(&r->cfg);
    /* The storage options as a server takes them from HOLDFAST_* (e.g.
     * HOLDFAST_WAL=false to measure without the write-ahead log). */
    hf_lmdb_config_defaults(&sc);
    if (hf_opts_env(&set, 1, stderr) != 0)
        return HF_EBADREQ;
    o = hf_lmdb_config_opts_of(&sc);
    o.dir = r->dir;
    o.nreaders = r->cfg.workers + 2;
    o.durability = durability;
    o.map_size = MAP_SIZE;
    rv = hf_lmdb_open(&r->st, &o);
    if (rv != 0) {
        fprintf(stderr, "holdfast-bench: cannot open a store in %s: %s\n",
                r->dir, hf_err_name(rv));
        return rv;
    }
    r->st_open = 1;
    rv = hf_host_open(&r->host, &(struct hf_host_opts){
                                    .cfg = &r->cfg,
                                    .store = r->st,
                                    .kinds = r->kinds ? r->kinds : hf_kinds,
                                    .nkinds = r->kinds ? r->nkinds : hf_nkinds,
                                });
    if (rv != 0) {
        fprintf(stderr, "holdfast-bench: cannot start the host: %s\n",
                hf_err_name(rv));
        r->host = NULL;
        hf_bench_rig_stop(r);
        return rv;
    }
    return 0;
}

void
hf_bench_rig_stop(struct hf_bench_rig *r)
{
    hf_host_close(r->host);
    r->host = NULL;
    if (r->st_open)
        r->st.ops->close(r->st.self);
    r->st_open = 0;
}

void
hf_bench_rig_close(struct hf_bench_rig *r)
{
    hf_bench_rig_stop(r);
    if (r->made_tmp)
        nftw(r->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    r->made_tmp = 0;
}

/* ------------------------------------------------------------------ */
/* metrics and progress                                                */

void
hf_bench_mark(struct hf_bench_mark *m)
{
    m->ns = hf_mono_ns();
    m->commits = HF_LMDB_GET(commits);
    m->handlers = HF_LMDB_GET(commit_handlers);
    m->commit_us = atomic_load_explicit(&hf_lmdb_metrics.commit_us_hist.sum,
                                        memory_order_relaxed);
    m->commit_n = atomic_load_explicit(&hf_lmdb_metrics.commit_us_hist.count,
                                       memory_order_relaxed);
}

static int progress_tty = -1; /* main thread only */
static int progress_showing;

void
hf_bench_progress(const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (progress_tty < 0)
        progress_tty = isatty(STDERR_FILENO);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (progress_tty) {
        fprintf(stderr, "\r%s\033[K", line);
        progress_showing = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void
hf_bench_progress_end(void)
{
    if (progress_showing)
        fputc('\n', stderr);
    progress_showing = 0;
}

/* ------------------------------------------------------------------ */
/* results                                                             */

void
hf_bench_result_fill(struct hf_bench_result *r, const struct hf_bench_lat *lat,
                     const struct hf_bench_mark *m0,
                     const struct hf_bench_mark *m1)
{
    uint64_t handlers = m1->handlers - m0->handlers;
    uint64_t cn = m1->commit_n - m0->commit_n;

    r->ops_per_sec = r->seconds > 0 ? (double)r->ok_ops / r->seconds : 0;
    r->p50_us = (double)hf_bench_lat_quantile(lat, 0.50) / 1e3;
    r->p90_us = (double)hf_bench_lat_quantile(lat, 0.90) / 1e3;
    r->p99_us = (double)hf_bench_lat_quantile(lat, 0.99) / 1e3;
    r->p999_us = (double)hf_bench_lat_quantile(lat, 0.999) / 1e3;
    r->max_us = (double)lat->max / 1e3;
    for (int i = 0; i < HF_BENCH_CURVE; i++)
        r->curve_us[i] =
            (double)hf_bench_lat_quantile(lat, 1.0 - pow(10.0, -i / 20.0)) /
            1e3;
    r->has_curve = lat->n > 0;
    r->commits = m1->commits - m0->commits;
    r->mean_batch = r->commits ? (double)handlers / (double)r->commits : 0;
    r->commit_us =
        cn ? (double)(m1->commit_us - m0->commit_us) / (double)cn : 0;
}

static void
errors_lines(FILE *out, const struct hf_bench_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i].errors == 0)
            continue;
        fprintf(out, "errors in %s %lld/%s:", r[i].scenario, r[i].actors,
                hf_bench_durability_name(r[i].durability));
        for (int c = 1; c < HF_ECOUNT_; c++)
            if (r[i].errs[c])
                fprintf(out, " %s %llu", hf_err_name(-c),
                        (unsigned long long)r[i].errs[c]);
        fputc('\n', out);
    }
}

static void
fanout_table(FILE *out, const struct hf_bench_result *r, size_t n)
{
    fprintf(out,
            "%-8s %6s %-4s %5s %4s %6s %9s %8s %10s %7s %9s %8s %8s %8s "
            "%9s %9s %8s %6s %6s %6s %-3s\n",
            "scenario", "actors", "dur", "subs", "pubs", "window", "published",
            "pub/s", "deliveries", "seconds", "deliv/s", "p50_us", "p90_us",
            "p99_us", "p99.9_us", "max_us", "commits", "lost", "reord",
            "errors", "ok");
    for (size_t i = 0; i < n; i++) {
        const struct hf_bench_result *x = &r[i];
        fprintf(out,
                "%-8s %6lld %-4s %5d %4d %6d %9llu %8.0f %10llu %7.2f %9.0f "
                "%8.1f %8.1f %8.1f %9.1f %9.1f %8llu %6llu %6llu %6llu "
                "%-3s\n",
                x->scenario, x->actors, hf_bench_durability_name(x->durability),
                x->subscribers, x->publishers, x->window,
                (unsigned long long)x->published, x->publish_per_sec,
                (unsigned long long)x->ops, x->seconds, x->ops_per_sec,
                x->p50_us, x->p90_us, x->p99_us, x->p999_us, x->max_us,
                (unsigned long long)x->commits, (unsigned long long)x->lost,
                (unsigned long long)x->reordered, (unsigned long long)x->errors,
                x->verified ? "yes" : "NO");
    }
}

void
hf_bench_table(FILE *out, const struct hf_bench_result *r, size_t n)
{
    if (n > 0 && r[0].subscribers > 0) {
        fanout_table(out, r, n);
        errors_lines(out, r, n);
        return;
    }
    fprintf(out,
            "%-8s %7s %-4s %3s %6s %9s %7s %9s %8s %8s %8s %9s %9s %8s "
            "%6s %6s %-3s\n",
            "scenario", "actors", "dur", "cli", "window", "ops", "seconds",
            "ops/s", "p50_us", "p90_us", "p99_us", "p99.9_us", "max_us",
            "commits", "batch", "errors", "ok");
    for (size_t i = 0; i < n; i++) {
        const struct hf_bench_result *x = &r[i];
        fprintf(out,
                "%-8s %7lld %-4s %3d %6d %9llu %7.2f %9.0f %8.1f %8.1f %8.1f "
                "%9.1f %9.1f %8llu %6.1f %6llu %-3s\n",
                x->scenario, x->actors, hf_bench_durability_name(x->durability),
                x->clients, x->window, (unsigned long long)x->ops, x->seconds,
                x->ops_per_sec, x->p50_us, x->p90_us, x->p99_us, x->p999_us,
                x->max_us, (unsigned long long)x->commits, x->mean_batch,
                (unsigned long long)x->errors, x->verified ? "yes" : "NO");
    }
    errors_lines(out, r, n);
}

void
hf_bench_extra(struct hf_bench_result *r, const char *name, double value)
{
    if (r->nextra >= HF_BENCH_EXTRA)
        return;
    r->extra[r->nextra].name = name;
    r->extra[r->nextra].value = value;
    r->nextra++;
}

static json_t *
result_json(const struct hf_bench_result *r)
{
    json_t *o = json_object(), *errs = json_object();

    json_object_set_new(o, "scenario", json_string(r->scenario));
    json_object_set_new(o, "actors", json_integer(r->actors));
    json_object_set_new(
        o, "durability",
        r->durability == HF_BENCH_DUR_UNKNOWN
            ? json_null()
            : json_string(hf_bench_durability_name(r->durability)));
    json_object_set_new(o, "clients", json_integer(r->clients));
    json_object_set_new(o, "window", json_integer(r->window));
    json_object_set_new(o, "workers", json_integer(r->workers));
    json_object_set_new(o, "ops", json_integer((json_int_t)r->ops));
    json_object_set_new(o, "ok_ops", json_integer((json_int_t)r->ok_ops));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "ops_per_sec", json_real(r->ops_per_sec));
    json_object_set_new(o, "p50_ms", json_real(r->p50_us / 1e3));
    json_object_set_new(o, "p99_ms", json_real(r->p99_us / 1e3));
    json_object_set_new(o, "p50_us", json_real(r->p50_us));
    json_object_set_new(o, "p90_us", json_real(r->p90_us));
    json_object_set_new(o, "p99_us", json_real(r->p99_us));
    json_object_set_new(o, "p999_us", json_real(r->p999_us));
    json_object_set_new(o, "max_us", json_real(r->max_us));
    json_object_set_new(o, "commits", json_integer((json_int_t)r->commits));
    json_object_set_new(o, "mean_batch", json_real(r->mean_batch));
    json_object_set_new(o, "commit_us_mean", json_real(r->commit_us));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    for (int c = 1; c < HF_ECOUNT_; c++)
        if (r->errs[c])
            json_object_set_new(errs, hf_err_name(-c),
                                json_integer((json_int_t)r->errs[c]));
    json_object_set_new(o, "errors_by_code", errs);
    if (r->refused > 0 || r->has_bookings)
        json_object_set_new(o, "refused", json_integer((json_int_t)r->refused));
    if (r->has_bookings) {
        json_object_set_new(o, "double_bookings",
                            json_integer((json_int_t)r->double_bookings));
        json_object_set_new(o, "lost_acks",
                            json_integer((json_int_t)r->lost_acks));
    }
    for (int i = 0; i < r->nextra && i < HF_BENCH_EXTRA; i++)
        json_object_set_new(o, r->extra[i].name, json_real(r->extra[i].value));
    if (r->has_conns) {
        json_object_set_new(o, "connections", json_integer((json_int_t)r->ops));
        json_object_set_new(o, "held", json_integer((json_int_t)r->held));
        json_object_set_new(o, "server_bytes_per_conn",
                            r->server_bytes_per_conn >= 0
                                ? json_real(r->server_bytes_per_conn)
                                : json_null());
        json_object_set_new(o, "server_cpu_pct",
                            r->server_cpu_pct >= 0
                                ? json_real(r->server_cpu_pct)
                                : json_null());
    }
    if (r->url)
        json_object_set_new(o, "url", json_string(r->url));
    if (r->subscribers > 0) {
        json_object_set_new(o, "subscribers", json_integer(r->subscribers));
        json_object_set_new(o, "publishers", json_integer(r->publishers));
        json_object_set_new(o, "published",
                            json_integer((json_int_t)r->published));
        json_object_set_new(o, "publish_per_sec",
                            json_real(r->publish_per_sec));
        json_object_set_new(o, "deliveries", json_integer((json_int_t)r->ops));
        json_object_set_new(o, "deliveries_per_sec", json_real(r->ops_per_sec));
        json_object_set_new(o, "lost", json_integer((json_int_t)r->lost));
        json_object_set_new(o, "reordered",
                            json_integer((json_int_t)r->reordered));
    }
    json_object_set_new(o, "verified", json_boolean(r->verified));
    return o;
}

int
hf_bench_plot(const char *path, const struct hf_bench_result *r, size_t n)
{
    char dat[PATH_MAX], gp[PATH_MAX], cmd[PATH_MAX + 64];
    FILE *f;
    int have = 0, rv;

    if ((size_t)snprintf(dat, sizeof(dat), "%s.dat", path) >= sizeof(dat) ||
        (size_t)snprintf(gp, sizeof(gp), "%s.gp", path) >= sizeof(gp)) {
        fprintf(stderr, "holdfast-bench: --plot path too long\n");
        return HF_EINTERNAL;
    }
    if ((f = fopen(dat, "w")) == NULL) {
        fprintf(stderr, "holdfast-bench: cannot write %s: %s\n", dat,
                strerror(errno));
        return HF_EINTERNAL;
    }
    /* One block per run: x = 1 / (1 - q), y = latency in ms. */
    for (size_t k = 0; k < n; k++) {
        if (!r[k].has_curve)
            continue;
        fprintf(f, "# %s %s\n", r[k].scenario,
                hf_bench_durability_name(r[k].durability));
        for (int i = 0; i < HF_BENCH_CURVE; i++)
            fprintf(f, "%g %g\n", pow(10.0, i / 20.0), r[k].curve_us[i] / 1e3);
        fputs("\n\n", f);
        have++;
    }
    fclose(f);
    if (have == 0) {
        fprintf(stderr, "holdfast-bench: --plot: no latency samples\n");
        remove(dat);
        return HF_EINTERNAL;
    }
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr,
                "holdfast-bench: --plot: gnuplot is not installed (apt-get "
                "install gnuplot-nox); the distribution is in %s\n",
                dat);
        return 0;
    }
    if ((f = fopen(gp, "w")) == NULL) {
        fprintf(stderr, "holdfast-bench: cannot write %s: %s\n", gp,
                strerror(errno));
        return HF_EINTERNAL;
    }
    fprintf(f,
            "set terminal pngcairo size 900,540 noenhanced\n"
            "set output '%s'\n"
            "set title 'holdfast-bench latency by percentile'\n"
            "set logscale x\n"
            /* a tic label is a format: %% is a literal % */
            "set xtics ('50%%%%' 2, '90%%%%' 10, '99%%%%' 100, "
            "'99.9%%%%' 1000, '99.99%%%%' 10000, '99.999%%%%' 100000)\n"
            "set xrange [1:100000]\n"
            "set xlabel 'percentile'\n"
            "set ylabel 'latency (ms)'\n"
            "set grid\n"
            "set key left top\n"
            "plot ",
            path);
    for (size_t k = 0, b = 0; k < n; k++) {
        if (!r[k].has_curve)
            continue;
        fprintf(f,
                "%s'%s' index %zu with lines lw 2 title '%s %s: %.0f/s, "
                "p99 %.2f ms'",
                b ? ", " : "", dat, b, r[k].scenario,
                hf_bench_durability_name(r[k].durability), r[k].ops_per_sec,
                r[k].p99_us / 1e3);
        b++;
    }
    fputc('\n', f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>&1", gp);
    rv = system(cmd);
    remove(gp);
    if (rv != 0) {
        fprintf(stderr,
                "holdfast-bench: gnuplot failed (status %d); the "
                "distribution is in %s\n",
                rv, dat);
        return HF_EINTERNAL;
    }
    remove(dat);
    printf("plot: %s\n", path);
    return 0;
}

int
hf_bench_json(const char *path, const struct hf_bench_result *r, size_t n,
              int array)
{
    json_t *doc;
    int rv;

    if (array) {
        doc = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(doc, result_json(&r[i]));
    } else {
        doc = n ? result_json(&r[0]) : json_object();
    }
    rv = json_dump_file(doc, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rv != 0) {
        fprintf(stderr, "holdfast-bench: cannot write %s: %s\n", path,
                strerror(errno));
        return HF_EINTERNAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */

static void
usage(FILE *out)
{
    fprintf(out, "usage: holdfast-bench <scenario> [flags]\n"
                 "       holdfast-bench <scenario> --help\n\n"
                 "scenarios:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(out, "\nExit status: 0 when every run passed its correctness "
                 "check, 1 when one\nfailed, 2 for bad usage.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return HF_BENCH_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return HF_BENCH_OK;
    }
    hf_log_set_level(HF_LOG_WARN);
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].run(argc - 2, argv + 2);
    fprintf(stderr, "holdfast-bench: unknown scenario '%s'\n\n", argv[1]);
    usage(stderr);
    return HF_BENCH_USAGE;
}
