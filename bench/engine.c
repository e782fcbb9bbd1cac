/*
 * engine.c - holdfast-bench engine: counter.incr at full speed through
 * the in-process driver, measuring throughput, latency and group commit.
 *
 * Design notes
 * ------------
 * Load. T client threads, each with its own driver, keep up to W calls in
 * flight. Whenever replies come back the client refills the window: it
 * queues one hf_drv_add per free slot and submits them with ONE
 * hf_drv_flush, so the host sees batches the way a gateway produces them.
 * Each call goes to counter/a<i>, i uniform over the N actors.
 *
 * The window. Slot s of a client holds one call in flight; its id is
 * (seq << 32) | s with seq counting the client's calls from 1, so a reply
 * finds its slot in O(1) and a reply whose id is not the one in flight
 * there (unknown, or a second reply to one call) is caught, not counted.
 *
 * The verdict. A benchmark that lies is worse than none, so a run only
 * counts when the engine's state matches what it acknowledged:
 *   - the ok incr replies of actor a carried the values 1..k_a, k_a being
 *     their number (checked as count, sum and max: cheap, and it catches
 *     lost, repeated and stale values, though not every combination);
 *   - get on every actor returns k_a, and the sum over actors equals the
 *     acknowledged total, first on the live host, then again after the
 *     host and store are closed and reopened (so the writes are in LMDB,
 *     not only in actor memory);
 *   - no stray or malformed replies.
 * Error replies (e.g. overloaded) are counted by code; they are not
 * failures of the verdict, since a failed call must change nothing.
 *
 * Stop. After --ops calls in total (claimed by the clients from a shared
 * counter, one atomic add per refill), or once --duration has passed, or
 * on SIGINT; clients stop submitting and wait for what is in flight. A
 * client that hears nothing for STALL_S seconds with calls in flight
 * reports a stall and the process exits 1 without shutting the host down
 * (which would wait for the very replies that never came).
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/kinds.h"
#include "bench/bench.h"
#include "client/driver.h"
#include "core/env.h"
#include "core/err.h"
#include "lua/lua.h"

#define SCENARIO      "engine"
#define STALL_S       30
#define POLL_MS       100
#define CALL_MS       10000 /* per verification get */
#define DEF_CLIENTS   4
#define DEF_WINDOW    256
#define DEF_OPS_SYNC  2000000
#define DEF_OPS_NONE  4000000
#define MAX_ACTORS    1000000
#define MAX_WINDOW    (1 << 20)
#define SHOW_MISMATCH 5

struct opts {
    long long actors, ops, clients, window, workers;
    double duration;
    const char *durability, *data, *json, *plot, *kinds_dir, *kind;
    int has_actors, has_ops, has_duration;
    const struct hf_kind *const *kinds; /* --kinds: built-ins + Lua */
    size_t nkinds;
};

/* "KIND/a<i>" for every actor, built once, then read-only. */
struct name {
    char s[48];
    size_t len;
};

/* One actor's view from the replies: count, sum and max of the values. */
struct seen {
    uint64_t acks, sum, max;
};

/* Shared by the main thread and the clients: the plain fields are set
 * before the clients start and only read afterwards; the rest are atomics. */
struct run {
    const struct opts *o;
    uint32_t nactors;
    const struct name *names;
    uint64_t total; /* calls to make; 0 = until told to stop */
    atomic_uint_least64_t claimed;
    atomic_uint_least64_t done; /* replies, for the progress line */
    atomic_int stop;
    atomic_int finished; /* clients that have returned */
};

/* Touched only by its own thread from pthread_create to pthread_join,
 * then read by the main thread. */
struct client {
    pthread_t thr;
    struct run *run;
    hf_drv *d;
    int idx;
    uint64_t rng, seq;
    /* the window, indexed by slot */
    uint64_t *sent_id, *sent_ns;
    uint32_t *sent_actor;
    uint32_t *freel, nfree, window;
    /* outcomes */
    struct seen *seen; /* per actor */
    uint64_t ok, errors, errs[HF_ECOUNT_];
    uint64_t stray;     /* unknown id, repeated reply, not a reply */
    uint64_t malformed; /* ok reply without an integer value */
    int stalled;
    int failed; /* hf_drv_add/flush error, for a batch of: */
    uint32_t failed_n;
    struct hf_bench_lat lat;
};

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* xorshift64*: each client its own, no locks, good enough for uniform
 * picks among at most MAX_ACTORS. */
static uint64_t
rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The integer under "value" in a {value} map; 0 when it is there. */
static int
value_of(const msgpack_object *o, int64_t *out)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 5 ||
            memcmp(k->via.str.ptr, "value", 5) != 0)
            continue;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->via.u64 <= INT64_MAX) {
            *out = (int64_t)v->via.u64;
            return 0;
        }
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *out = v->via.i64;
            return 0;
        }
        return -1;
    }
    return -1;
}

static int
code_of(hf_slice code)
{
    char name[32];

    if (code.len == 0 || code.len >= sizeof(name))
        return HF_EINTERNAL;
    memcpy(name, code.data, code.len);
    name[code.len] = '\0';
    return hf_err_from_name(name);
}

/* ------------------------------------------------------------------ */
/* clients                                                             */

/* How many calls this client may submit now, at most want. */
static uint32_t
claim(struct run *r, uint32_t want)
{
    uint64_t old;

    if (want == 0 || atomic_load_explicit(&r->stop, memory_order_relaxed))
        return 0;
    if (r->total == 0)
        return want;
    old = atomic_fetch_add_explicit(&r->claimed, want, memory_order_relaxed);
    if (old >= r->total)
        return 0;
    return r->total - old < want ? (uint32_t)(r->total - old) : want;
}

/* Queues n calls (n <= nfree) and submits them as one batch. */
static int
submit(struct client *c, uint32_t n)
{
    struct run *r = c->run;
    uint32_t first = c->nfree - n;
    uint64_t now;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = c->freel[--c->nfree];
        uint32_t a =
            r->nactors == 1 ? 0 : (uint32_t)(rnd(&c->rng) % r->nactors);
        hf_env e = {
            .op = HF_OP_CALL,
            .id = (++c->seq << 32) | s,
            .has_conn = 1,
            .to = {r->names[a].s, r->names[a].len},
            .method = {"incr", 4},
        };
        int rv = hf_drv_add(c->d, &e, NULL, 0);
        if (rv != 0)
            return rv;
        c->sent_id[s] = e.id;
        c->sent_actor[s] = a;
    }
    /* The slots just taken are still in freel[first .. first + n). */
    now = hf_mono_ns();
    for (uint32_t i = first; i < first + n; i++)
        c->sent_ns[c->freel[i]] = now;
    return hf_drv_flush(c->d);
}

static void
on_output(void *arg, const hf_env *e)
{
    struct client *c = arg;
    uint64_t now = hf_mono_ns();
    uint32_t s = (uint32_t)(e->id & 0xffffffffu);
    int64_t v;

    if (e->op != HF_OUT_REPLY || s >= c->window || c->sent_id[s] != e->id ||
        e->id == 0) {
        c->stray++;
        return;
    }
    hf_bench_lat_add(&c->lat, now - c->sent_ns[s]);
    if (e->ok) {
        struct seen *x = &c->seen[c->sent_actor[s]];
        if (value_of(e->val, &v) != 0 || v < 1) {
            c->malformed++;
        } else {
            x->acks++;
            x->sum += (uint64_t)v;
            if ((uint64_t)v > x->max)
                x->max = (uint64_t)v;
            c->ok++;
        }
    } else {
        c->errors++;
        c->errs[-code_of(e->code)]++;
    }
    c->sent_id[s] = 0;
    c->freel[c->nfree++] = s;
}

static void *
client_main(void *arg)
{
    struct client *c = arg;
    struct run *r = c->run;
    uint64_t last = hf_mono_ns();

    for (;;) {
        uint32_t n = claim(r, c->nfree);
        uint64_t before = c->ok + c->errors + c->malformed;
        int rv;

        if (n > 0 && (rv = submit(c, n)) != 0) {
            c->failed = rv;
            c->failed_n = n;
            atomic_store(&r->stop, 1);
            break;
        }
        if (c->nfree == c->window)
            break; /* nothing in flight and nothing more to send */
        hf_drv_poll(c->d, POLL_MS, on_output, c);
        uint64_t got = c->ok + c->errors + c->malformed - before;
        uint64_t now = hf_mono_ns();
        if (got > 0) {
            atomic_fetch_add_explicit(&r->done, got, memory_order_relaxed);
            last = now;
        } else if (now - last > (uint64_t)STALL_S * 1000000000u) {
            c->stalled = 1;
            atomic_store(&r->stop, 1);
            break;
        }
    }
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
client_free(struct client *c)
{
    if (c == NULL)
        return;
    free(c->sent_id);
    free(c->sent_ns);
    free(c->sent_actor);
    free(c->freel);
    free(c->seen);
    free(c);
}

static struct client *
client_new(struct run *r, int idx)
{
    struct client *c = calloc(1, sizeof(*c));
    uint32_t w = (uint32_t)r->o->window;

    if (c == NULL)
        return NULL;
    c->run = r;
    c->idx = idx;
    c->window = w;
    c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(idx + 1) ^ hf_mono_ns();
    if (c->rng == 0)
        c->rng = 1;
    c->sent_id = calloc(w, sizeof(*c->sent_id));
    c->sent_ns = calloc(w, sizeof(*c->sent_ns));
    c->sent_actor = calloc(w, sizeof(*c->sent_actor));
    c->freel = calloc(w, sizeof(*c->freel));
    c->seen = calloc(r->nactors, sizeof(*c->seen));
    if (!c->sent_id || !c->sent_ns || !c->sent_actor || !c->freel || !c->seen) {
        client_free(c);
        return NULL;
    }
    /* Free slots pop from the end: slot 0 goes first. */
    for (uint32_t i = 0; i < w; i++)
        c->freel[i] = w - 1 - i;
    c->nfree = w;
    return c;
}

/* ------------------------------------------------------------------ */
/* the verdict                                                         */

/* Gets every actor and compares with what the replies acknowledged.
 * Returns 1 when everything matches; prints each kind of mismatch. */
static int
check_state(hf_host *h, const struct run *r, const struct seen *tot,
            uint64_t acked, const char *when)
{
    hf_drv *d = NULL;
    uint64_t sum = 0, bad = 0;
    int rv;

    if ((rv = hf_drv_open(h, &d)) != 0) {
        printf("verify: FAIL (%s: cannot open a driver: %s)\n", when,
               hf_err_name(rv));
        return 0;
    }
    for (uint32_t a = 0; a < r->nactors; a++) {
        hf_drv_msg *m = NULL;
        int64_t v = 0;

        rv = hf_drv_call(d, r->names[a].s, "get", NULL, NULL, NULL, 0, CALL_MS,
                         &m);
        if (rv != 0 || !m->e.ok || value_of(m->e.val, &v) != 0) {
            printf("verify: FAIL (%s: get %s: %s)\n", when, r->names[a].s,
                   rv != 0   ? hf_err_name(rv)
                   : m->code ? m->code
                             : "no integer value");
            hf_drv_msg_free(m);
            hf_drv_close(d);
            return 0;
        }
        hf_drv_msg_free(m);
        sum += (uint64_t)v;
        if ((uint64_t)v != tot[a].acks && bad++ < SHOW_MISMATCH)
            printf("verify: FAIL (%s: %s holds %" PRId64
                   ", acknowledged %" PRIu64 ")\n",
                   when, r->names[a].s, v, tot[a].acks);
    }
    hf_drv_close(d);
    if (sum != acked)
        printf("verify: FAIL (%s: sum %" PRIu64 " != acknowledged %" PRIu64
               ")\n",
               when, sum, acked);
    else if (bad)
        printf("verify: FAIL (%s: sum matches but %" PRIu64
               " actors disagree)\n",
               when, bad);
    return sum == acked && bad == 0;
}

/* Checks the replies themselves: actor a's ok replies must carry the
 * values 1..k_a (k_a = their count), once each. */
static int
check_replies(const struct run *r, const struct seen *tot, uint64_t stray,
              uint64_t malformed)
{
    uint64_t bad = 0;

    for (uint32_t a = 0; a < r->nactors; a++) {
        uint64_t k = tot[a].acks;
        uint64_t want = k % 2 ? k * ((k + 1) / 2) : (k / 2) * (k + 1);
        if ((tot[a].max != k || tot[a].sum != want) && bad++ < SHOW_MISMATCH)
            printf("verify: FAIL (%s: %" PRIu64
                   " ok replies whose values are not 1..%" PRIu64
                   ": sum %" PRIu64 ", max %" PRIu64 ")\n",
                   r->names[a].s, k, k, tot[a].sum, tot[a].max);
    }
    if (stray)
        printf("verify: FAIL (%" PRIu64
               " replies with an unknown or already answered id)\n",
               stray);
    if (malformed)
        printf("verify: FAIL (%" PRIu64
               " ok replies without an integer value)\n",
               malformed);
    return bad == 0 && stray == 0 && malformed == 0;
}

/* ------------------------------------------------------------------ */
/* one run                                                             */

/* Where the previous progress line left off. */
struct tick {
    uint64_t done, ns;
};

/* The rate is over the time since t, or over the whole run when t is
 * NULL (the last line). */
static void
show_progress(const char *label, const struct run *r,
              const struct hf_bench_mark *m0, struct tick *t)
{
    struct tick from = t ? *t : (struct tick){0, m0->ns};
    struct hf_bench_mark m;
    uint64_t done = atomic_load(&r->done), commits, handlers;
    double dt;

    hf_bench_mark(&m);
    dt = (double)(m.ns - from.ns) / 1e9;
    commits = m.commits - m0->commits;
    handlers = m.handlers - m0->handlers;
    hf_bench_progress("%s: %5.1fs %10" PRIu64 " ops %9.0f ops/s %8" PRIu64
                      " commits %6.1f handlers/commit",
                      label, (double)(m.ns - m0->ns) / 1e9, done,
                      dt > 0 ? (double)(done - from.done) / dt : 0.0, commits,
                      commits ? (double)handlers / (double)commits : 0.0);
    if (t)
        *t = (struct tick){done, m.ns};
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs the load; returns 0, or HF_BENCH_FAIL for a failure that leaves
 * the rig usable. A stall exits the process. */
static int
load(struct run *r, struct client **cl, int nc, hf_host *h, const char *label,
     const char *dir, struct hf_bench_result *res, struct hf_bench_mark *m0,
     struct hf_bench_mark *m1)
{
    const struct opts *o = r->o;
    struct tick tick;
    uint64_t next;
    int started = 0, fail = 0;

    for (int i = 0; i < nc; i++)
        if (hf_drv_open(h, &cl[i]->d) != 0)
            return HF_BENCH_FAIL;
    hf_bench_mark(m0);
    tick = (struct tick){0, m0->ns};
    next = m0->ns + 1000000000u;
    for (; started < nc; started++)
        if (pthread_create(&cl[started]->thr, NULL, client_main, cl[started]) !=
            0) {
            fprintf(stderr, "holdfast-bench: cannot start a client thread\n");
            atomic_store(&r->stop, 1);
            fail = 1;
            break;
        }
    while (atomic_load(&r->finished) < started) {
        uint64_t now;
        sleep_ms(20);
        now = hf_mono_ns();
        if ((o->has_duration && (double)(now - m0->ns) >= o->duration * 1e9) ||
            interrupted)
            atomic_store(&r->stop, 1);
        if (now >= next) {
            show_progress(label, r, m0, &tick);
            next += 1000000000u;
        }
    }
    hf_bench_mark(m1);
    for (int i = 0; i < started; i++)
        pthread_join(cl[i]->thr, NULL);
    show_progress(label, r, m0, NULL);
    hf_bench_progress_end();
    res->seconds = (double)(m1->ns - m0->ns) / 1e9;

    for (int i = 0; i < started; i++) {
        struct client *c = cl[i];
        if (c->stalled) {
            printf("FAIL: %s: client %d heard nothing for %d s with %u "
                   "calls in flight: the engine hung or lost replies. "
                   "Data directory left at %s\n",
                   label, i, STALL_S, c->window - c->nfree, dir);
            fflush(stdout);
            exit(HF_BENCH_FAIL); /* closing the host would wait for them */
        }
        if (c->failed) {
            printf("FAIL: %s: client %d: submitting a batch of %u calls "
                   "failed: %s\n",
                   label, i, c->failed_n, hf_err_name(c->failed));
            fail = 1;
        }
    }
    return fail ? HF_BENCH_FAIL : 0;
}

static void
dir_label(char *buf, size_t size, uint32_t nactors, int durability)
{
    snprintf(buf, size, "%s-a%u-%s", SCENARIO, nactors,
             hf_bench_durability_name(durability));
}

static int
run_one(const struct opts *o, uint32_t nactors, int durability,
        const struct name *names, struct hf_bench_result *res)
{
    struct hf_bench_rig rig;
    struct run r = {.o = o, .nactors = nactors, .names = names};
    struct client **cl = NULL;
    struct seen *tot = NULL;
    struct hf_bench_lat *lat = NULL;
    struct hf_bench_mark m0, m1;
    uint64_t acked = 0, stray = 0, malformed = 0;
    char label[64], dirlabel[64];
    int nc = (int)o->clients, rv = HF_BENCH_FAIL, ok;

    snprintf(label, sizeof(label), "%s %u actor%s %s", SCENARIO, nactors,
             nactors == 1 ? "" : "s", hf_bench_durability_name(durability));
    dir_label(dirlabel, sizeof(dirlabel), nactors, durability);
    memset(res, 0, sizeof(*res));
    res->scenario = SCENARIO;
    res->actors = nactors;
    res->durability = durability;
    res->clients = nc;
    res->window = (int)o->window;
    r.total = o->has_duration                 ? 0
              : o->has_ops                    ? (uint64_t)o->ops
              : durability == HF_DURABLE_SYNC ? DEF_OPS_SYNC
                                              : DEF_OPS_NONE;

    if (hf_bench_rig_dir(&rig, o->data, dirlabel) != 0)
        return HF_BENCH_FAIL;
    rig.kinds = o->kinds;
    rig.nkinds = o->nkinds;
    if (hf_bench_rig_start(&rig, durability, (int)o->workers) != 0)
        goto out;
    res->workers = rig.cfg.workers;
    cl = calloc((size_t)nc, sizeof(*cl));
    tot = calloc(nactors, sizeof(*tot));
    lat = calloc(1, sizeof(*lat));
    if (cl == NULL || tot == NULL || lat == NULL)
        goto out;
    for (int i = 0; i < nc; i++)
        if ((cl[i] = client_new(&r, i)) == NULL)
            goto out;

    if (load(&r, cl, nc, rig.host, label, rig.dir, res, &m0, &m1) != 0)
        goto out;
    for (int i = 0; i < nc; i++) {
        struct client *c = cl[i];
        hf_bench_lat_merge(lat, &c->lat);
        for (uint32_t a = 0; a < nactors; a++) {
            tot[a].acks += c->seen[a].acks;
            tot[a].sum += c->seen[a].sum;
            if (c->seen[a].max > tot[a].max)
                tot[a].max = c->seen[a].max;
        }
        acked += c->ok;
        stray += c->stray;
        malformed += c->malformed;
        res->errors += c->errors;
        for (int k = 0; k < HF_ECOUNT_; k++)
            res->errs[k] += c->errs[k];
    }
    res->ops = acked + res->errors + malformed;
    res->ok_ops = acked;
    hf_bench_result_fill(res, lat, &m0, &m1);

    ok = check_replies(&r, tot, stray, malformed);
    ok &= check_state(rig.host, &r, tot, acked, "live");
    for (int i = 0; i < nc; i++) {
        hf_drv_close(cl[i]->d);
        cl[i]->d = NULL;
    }
    hf_bench_rig_stop(&rig);
    if (hf_bench_rig_start(&rig, durability, (int)o->workers) != 0)
        ok = 0;
    else
        ok &= check_state(rig.host, &r, tot, acked, "reopened");
    res->verified = ok;
    if (ok)
        printf("verify: OK (sum %" PRIu64 " == acknowledged %" PRIu64
               ") [%s; live and after reopening the store]\n",
               acked, acked, label);
    else
        printf("verify: FAIL [%s]\n", label);
    fflush(stdout);
    rv = ok ? 0 : HF_BENCH_FAIL;

out:
    for (int i = 0; cl && i < nc; i++) {
        if (cl[i])
            hf_drv_close(cl[i]->d);
        client_free(cl[i]);
    }
    free(cl);
    free(tot);
    free(lat);
    hf_bench_rig_close(&rig);
    return rv;
}

/* ------------------------------------------------------------------ */
/* the subcommand                                                      */

static void
usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench engine [flags]\n"
          "\n"
          "T client threads call counter.incr on counter/a<i>, i uniform "
          "over N actors,\n"
          "each keeping up to W calls in flight and submitting every refill "
          "as one batch.\n"
          "After each run every actor is read back, live and again after "
          "reopening the\n"
          "store, and must hold exactly what was acknowledged.\n"
          "\n"
          "flags:\n",
          out);
    hf_bench_flags_usage(out, f, n);
    fprintf(out,
            "\n"
            "Without --actors it runs the matrix, 1 actor then 10000, in "
            "each durability\n"
            "asked for, and --durability defaults to both: plain "
            "`holdfast-bench engine`\n"
            "makes 4 runs (1 sync, 1 none, 10000 sync, 10000 none). With "
            "--actors,\n"
            "--durability defaults to sync. --ops defaults to %d per run in "
            "sync,\n"
            "%d in none.\n"
            "\n"
            "Each run gets a fresh store: a new directory under $TMPDIR (or "
            "/tmp), removed\n"
            "afterwards, or DIR/engine-a<N>-<durability> with --data DIR, "
            "kept.\n"
            "\n"
            "ops counts every call answered; ops/s only those answered ok "
            "(error replies,\n"
            "e.g. overloaded, are listed by code). Latencies are submit to "
            "reply, in us;\n"
            "batch is handlers committed per LMDB commit.\n"
            "\n"
            "--json FILE writes one JSON object for a single run, an array "
            "of objects (one\n"
            "per run) when several run. Exit status: 0 when every run "
            "verified, 1 when one\n"
            "did not (or on Ctrl-C), 2 for bad usage.\n",
            DEF_OPS_SYNC, DEF_OPS_NONE);
}

int
hf_bench_engine(int argc, char **argv)
{
    struct opts o = {.actors = 1,
                     .clients = DEF_CLIENTS,
                     .window = DEF_WINDOW,
                     .workers = 0};
    const struct hf_bench_flag flags[] = {
        {.name = "actors",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_ACTORS,
         .seen = &o.has_actors,
         .help = "actors to spread calls over (default: 1, then 10000)"},
        {.name = "durability",
         .metavar = "MODE",
         .type = HF_BF_STR,
         .dst = &o.durability,
         .help = "sync, none or both (see below)"},
        {.name = "ops",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.ops,
         .min = 1,
         .max = 1e15,
         .seen = &o.has_ops,
         .help = "calls per run, all clients together"},
        {.name = "duration",
         .metavar = "S",
         .type = HF_BF_DOUBLE,
         .dst = &o.duration,
         .min = 0.1,
         .max = 86400,
         .seen = &o.has_duration,
         .help = "run for S seconds instead of a number of calls"},
        {.name = "clients",
         .metavar = "T",
         .type = HF_BF_INT,
         .dst = &o.clients,
         .min = 1,
         .max = 256,
         .help = "client threads, one driver each (default 4)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "calls in flight per client (default 256)"},
        {.name = "workers",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.workers,
         .min = 0,
         .max = 256,
         .help = "host worker threads (default 0 = one per core)"},
        {.name = "data",
         .metavar = "DIR",
         .type = HF_BF_STR,
         .dst = &o.data,
         .help = "keep each run's store in DIR/engine-a<N>-<durability>"},
        {.name = "json",
         .metavar = "FILE",
         .type = HF_BF_STR,
         .dst = &o.json,
         .help = "also write the results as JSON"},
        {.name = "kinds",
         .metavar = "DIR",
         .type = HF_BF_STR,
         .dst = &o.kinds_dir,
         .help = "also serve the Lua kinds of DIR (as --kinds of serve)"},
        {.name = "kind",
         .metavar = "NAME",
         .type = HF_BF_STR,
         .dst = &o.kind,
         .help = "the kind called, with incr {} and get -> {value} "
                 "(default counter; lcounter of examples/kinds is its Lua "
                 "twin)"},
        {.name = "plot",
         .metavar = "FILE.png",
         .type = HF_BF_STR,
         .dst = &o.plot,
         .help = "also draw the latency distributions (gnuplot)"},
    };
    const size_t nflags = sizeof(flags) / sizeof(flags[0]);
    uint32_t actors[2];
    int durs[2], na, nd, rv, status = HF_BENCH_OK;
    struct hf_bench_result res[4];
    size_t nres = 0;
    struct name *names;
    struct sigaction sa = {.sa_handler = on_sigint};
    hf_lua *lua = NULL;

    rv = hf_bench_flags(SCENARIO, flags, nflags, argc, argv);
    if (rv == 1) {
        usage(stdout, flags, nflags);
        return HF_BENCH_OK;
    }
    if (rv != 0)
        return rv;
    if (o.has_ops && o.has_duration) {
        fprintf(stderr,
                "holdfast-bench engine: --ops and --duration exclude each "
                "other\n");
        return HF_BENCH_USAGE;
    }
    if (o.kind == NULL)
        o.kind = "counter";
    if (strlen(o.kind) > 32) {
        fprintf(stderr, "holdfast-bench engine: --kind is too long\n");
        return HF_BENCH_USAGE;
    }
    if (o.durability == NULL)
        o.durability = o.has_actors ? "sync" : "both";
    if (strcmp(o.durability, "both") == 0) {
        durs[0] = HF_DURABLE_SYNC, durs[1] = HF_DURABLE_NONE, nd = 2;
    } else if ((durs[0] = hf_bench_durability(o.durability)) >= 0) {
        nd = 1;
    } else {
        fprintf(stderr,
                "holdfast-bench engine: --durability wants sync, none or "
                "both, not '%s'\n",
                o.durability);
        return HF_BENCH_USAGE;
    }
    if (o.has_actors)
        actors[0] = (uint32_t)o.actors, na = 1;
    else
        actors[0] = 1, actors[1] = 10000, na = 2;

    for (int a = 0; o.data && a < na; a++)
        for (int d = 0; d < nd; d++) {
            char label[64];
            dir_label(label, sizeof(label), actors[a], durs[d]);
            if (hf_bench_rig_check(o.data, label) != 0)
                return HF_BENCH_USAGE;
        }
    if (o.kinds_dir != NULL) {
        hf_lua_config lc;
        hf_lua_config_defaults(&lc);
        snprintf(lc.kinds, sizeof(lc.kinds), "%s", o.kinds_dir);
        if (hf_lua_open(&lua, &lc, hf_kinds, hf_nkinds, stderr) != 0)
            return HF_BENCH_USAGE;
        o.kinds = hf_lua_kinds(lua, &o.nkinds);
    }
    names = calloc(actors[na - 1], sizeof(*names)); /* the largest */
    if (names == NULL) {
        hf_lua_close(lua);
        return HF_BENCH_FAIL;
    }
    for (uint32_t i = 0; i < actors[na - 1]; i++)
        names[i].len = (size_t)snprintf(names[i].s, sizeof(names[i].s),
                                        "%s/a%u", o.kind, i);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    for (int a = 0; a < na && !interrupted; a++)
        for (int d = 0; d < nd && !interrupted; d++) {
            if (run_one(&o, actors[a], durs[d], names, &res[nres++]) != 0)
                status = HF_BENCH_FAIL;
        }
    free(names);
    hf_lua_close(lua);
    if (nres > 0) {
        putchar('\n');
        hf_bench_table(stdout, res, nres);
    }
    if (o.json && hf_bench_json(o.json, res, nres, na * nd > 1) != 0)
        status = HF_BENCH_FAIL;
    if (o.plot && nres > 0 && hf_bench_plot(o.plot, res, nres) != 0)
        status = HF_BENCH_FAIL;
    if (interrupted) {
        fprintf(stderr, "holdfast-bench engine: interrupted\n");
        if (status == HF_BENCH_OK)
            status = HF_BENCH_FAIL;
    }
    return status;
}
