/*
 * conns.c - holdfast-bench connections: how many WebSocket connections a
 * running server holds at once, how fast it takes them, and what each one
 * costs it in memory and CPU.
 *
 * Design notes
 * ------------
 * Phases. The main thread moves r->phase forward; each load thread owns
 * its share of the connections (contiguous indices) and follows:
 *   RAMP    dial one connection at a time (the handshake is blocking),
 *           paced by --connect-rate when given, and every SERVICE_NS read
 *           what the open ones have: the hello, and the server's heartbeat
 *           pings, which hf_ws_recv answers itself. A connection left
 *           unread for 2 x heartbeat + 5 s is dropped by the server, and a
 *           ramp to tens of thousands takes long enough for that to
 *           matter. A thread that fails GIVE_UP connects in a row stops
 *           dialing: the server is full or gone.
 *   HOLD    poll() every open connection, answering pings, --hold seconds.
 *           At its end the main thread reads the server's /metrics: the
 *           holdfast_connections gauge, resident memory and CPU time.
 *   VERIFY  send a protocol ping op on every connection still held (id =
 *           its global index + 1) and wait for the pong with that id.
 *   CLOSE   close them all together (wb_close_all).
 *
 * The server's cost. Memory per connection is (RSS at the end of the hold
 * - RSS before the ramp) / connections reached: exact only on a server
 * that held nothing before (freed heap is not always returned to the
 * OS, so an old server's "before" is already inflated). RSS comes from
 * the server's process_resident_memory_bytes, or with --pid from
 * /proc/PID/status VmRSS; CPU from process_cpu_seconds_total or
 * /proc/PID/stat. Both are per process: run one server per measurement.
 *
 * The verdict: every connection was made, none was lost during the hold,
 * every one answered its ping, and the server's gauge moved by exactly
 * what we hold (which other clients connecting meanwhile would upset: it
 * is then reported, not failed, when the --pid or scrape shows others).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/connsview.h"
#include "bench/ws.h"
#include "core/env.h"
#include "core/err.h"

#define CONNS         "connections"
#define CONNS_CLIENTS 1000
#define CONNS_HOLD    10.0
#define GIVE_UP       50 /* failed connects in a row: stop dialing */
#define PING_WAIT_S   30 /* for every pong of the verify phase */
#define HOLD_POLL_MS  100
#define SETTLE_TRIES  30 /* x 100 ms, for the gauge to hold still */

enum { P_RAMP = 0, P_HOLD, P_VERIFY, P_CLOSE };

/* A connection's state, st[] below. */
enum { S_NONE = 0, S_OPEN, S_PONG, S_DEAD };

/* The scenario's options: the common ones first (wb_ws_main passes &w). */
struct copts {
    struct wopts w;
    double hold, connect_rate;
    long long pid;
};

/* Shared by the main thread and the load threads: the plain fields are
 * set before the threads start; the atomics carry the rest. */
struct run {
    const struct target *t;
    uint32_t total;
    double rate; /* connects/s per thread; 0: as fast as they go */
    uint64_t t0;
    atomic_uint_least64_t connected, failed, pongs, dead;
    atomic_int phase, ramped, verified, stop;
};

/* Touched only by its own thread from pthread_create to pthread_join,
 * then read by the main thread. */
struct cthr {
    pthread_t thr;
    struct run *r;
    uint32_t first, n, dialed;
    hf_ws **ws;  /* n; NULL: never made, or gone */
    uint8_t *st; /* n; S_* */
    int *code;   /* n; S_DEAD: the server's close code, or an HF_E* < 0 */
    struct pollfd *pfds;
    uint32_t *pidx;
    hf_buf rx;
    msgpack_zone zone;
    struct hf_bench_lat lat; /* handshakes */
    uint64_t errs[HF_ECOUNT_], failed, last_ok_ns, msgs, bad_pongs;
    int http_status; /* the first refused handshake's, 0: none */
    int gave_up;
    uint32_t open_at_verify;
};

/* Connection idx of total, as wb_dial opens it, but quiet: failures are
 * counted, not printed each. */
static int
dial(const struct target *t, uint32_t idx, uint32_t total, hf_ws **out,
     int *status)
{
    int rv;

    *status = 0;
    rv = wb_connect(t, idx, total, 0, out);
    if (rv != 0) {
        if (rv == HF_EBADREQ && *out != NULL)
            *status = hf_ws_http_status(*out);
        hf_ws_close(*out);
        *out = NULL;
    }
    return rv;
}

static void
conn_dead(struct cthr *c, uint32_t i, int code)
{
    c->st[i] = S_DEAD;
    c->code[i] = code;
    hf_ws_close(c->ws[i]);
    c->ws[i] = NULL;
    atomic_fetch_add_explicit(&c->r->dead, 1, memory_order_relaxed);
}

/* Whether a message is {"op":"pong","id":want}, in either format. */
static int
is_pong(struct cthr *c, int binary, const char *p, size_t len, uint64_t want)
{
    int yes = 0;

    if (binary) {
        msgpack_object o;
        size_t off = 0;
        while (off < len && hf_unpack_next(p, len, &off, &c->zone, &o) == 0 &&
               !yes) {
            const msgpack_object *op = NULL, *id = NULL;
            for (uint32_t k = 0;
                 o.type == MSGPACK_OBJECT_MAP && k < o.via.map.size; k++) {
                const msgpack_object_kv *kv = &o.via.map.ptr[k];
                if (kv->key.type != MSGPACK_OBJECT_STR)
                    continue;
                if (kv->key.via.str.size == 2 &&
                    memcmp(kv->key.via.str.ptr, "op", 2) == 0)
                    op = &kv->val;
                else if (kv->key.via.str.size == 2 &&
                         memcmp(kv->key.via.str.ptr, "id", 2) == 0)
                    id = &kv->val;
            }
            yes = op != NULL && op->type == MSGPACK_OBJECT_STR &&
                  op->via.str.size == 4 &&
                  memcmp(op->via.str.ptr, "pong", 4) == 0 && id != NULL &&
                  id->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                  id->via.u64 == want;
            msgpack_zone_clear(&c->zone);
        }
        return yes;
    }
    for (const char *end = p + len; p < end && !yes;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        json_t *o = json_loadb(p, (size_t)(e - p), 0, NULL);
        json_t *id = json_object_get(o, "id");
        const char *op = json_string_value(json_object_get(o, "op"));
        yes = op != NULL && strcmp(op, "pong") == 0 && json_is_integer(id) &&
              (uint64_t)json_integer_value(id) == want;
        json_decref(o);
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return yes;
}

/* Reads what connection i has; answers pings (hf_ws_recv does). */
static void
conn_read(struct cthr *c, uint32_t i)
{
    int op, code, rv;

    do {
        code = 0;
        rv = hf_ws_recv(c->ws[i], 0, &op, &c->rx, &code);
        if (rv == HF_ETIMEOUT)
            return;
        if (rv != 0 || op == HF_WS_CLOSE) {
            conn_dead(c, i, rv != 0 ? rv : code);
            return;
        }
        c->msgs++;
        if (c->st[i] == S_OPEN &&
            atomic_load_explicit(&c->r->phase, memory_order_relaxed) ==
                P_VERIFY) {
            if (is_pong(c, op == HF_WS_BINARY, c->rx.data, c->rx.len,
                        (uint64_t)c->first + i + 1)) {
                c->st[i] = S_PONG;
                atomic_fetch_add_explicit(&c->r->pongs, 1,
                                          memory_order_relaxed);
            } else {
                c->bad_pongs++;
            }
        }
    } while (hf_ws_pending(c->ws[i]));
}

/* Waits up to timeout ms for any open connection to have something, and
 * reads those that do. */
static void
service(struct cthr *c, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < c->dialed; i++) {
        /* Bytes that came with the handshake reply (the hello) are
         * buffered already: poll() would not report them. */
        if (c->ws[i] != NULL && hf_ws_pending(c->ws[i]))
            conn_read(c, i);
        if (c->ws[i] != NULL) {
            c->pfds[np] =
                (struct pollfd){.fd = hf_ws_fd(c->ws[i]), .events = POLLIN};
            c->pidx[np++] = i;
        }
    }
    if (np == 0) {
        if (timeout > 0)
            wb_sleep_ms(timeout);
        return;
    }
    if (poll(c->pfds, np, timeout) <= 0)
        return;
    for (uint32_t j = 0; j < np; j++)
        if (c->pfds[j].revents != 0 && c->ws[c->pidx[j]] != NULL)
            conn_read(c, c->pidx[j]);
}

static int
phase(struct cthr *c)
{
    return atomic_load(&c->r->stop) ? P_CLOSE : atomic_load(&c->r->phase);
}

static void
ramp(struct cthr *c)
{
    struct run *r = c->r;
    uint64_t serviced = hf_mono_ns();
    int in_a_row = 0;

    for (uint32_t i = 0; i < c->n && !atomic_load(&r->stop); i++) {
        uint64_t t, now;
        int rv, status;

        if (r->rate > 0) { /* pace: connection i is due at t0 + i / rate */
            uint64_t due = r->t0 + (uint64_t)((double)i / r->rate * 1e9);
            while ((now = hf_mono_ns()) < due && !atomic_load(&r->stop)) {
                uint64_t left = (due - now) / 1000000u;
                service(c, left > 50 ? 50 : (int)left);
            }
            serviced = hf_mono_ns();
        }
        t = hf_mono_ns();
        rv = dial(r->t, c->first + i, r->total, &c->ws[i], &status);
        now = hf_mono_ns();
        c->dialed = i + 1;
        if (rv == 0) {
            hf_bench_lat_add(&c->lat, now - t);
            c->st[i] = S_OPEN;
            c->last_ok_ns = now;
            in_a_row = 0;
            atomic_fetch_add_explicit(&r->connected, 1, memory_order_relaxed);
        } else {
            int e = rv < 0 && rv > -HF_ECOUNT_ ? rv : HF_EINTERNAL;
            c->errs[-e]++;
            c->failed++;
            if (status != 0 && c->http_status == 0)
                c->http_status = status;
            atomic_fetch_add_explicit(&r->failed, 1, memory_order_relaxed);
            if (++in_a_row >= GIVE_UP) {
                c->gave_up = 1;
                break;
            }
        }
        if (now - serviced > SERVICE_NS) {
            service(c, 0);
            serviced = hf_mono_ns();
        }
    }
}

/* Sends {"op":"ping","id":global index + 1} on every connection held. */
static void
send_pings(struct cthr *c, int msgpack)
{
    hf_buf b = {0};

    for (uint32_t i = 0; i < c->dialed; i++) {
        uint64_t id = (uint64_t)c->first + i + 1;
        if (c->ws[i] == NULL)
            continue;
        c->open_at_verify++;
        b.len = 0;
        if (msgpack) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
            msgpack_pack_map(&pk, 2);
            hf_pack_cstr(&pk, "op");
            hf_pack_cstr(&pk, "ping");
            hf_pack_cstr(&pk, "id");
            msgpack_pack_uint64(&pk, id);
        } else {
            char m[64];
            int n = snprintf(m, sizeof(m),
                             "{\"op\":\"ping\",\"id\":%" PRIu64 "}", id);
            hf_buf_append(&b, m, (size_t)n);
        }
        if (wb_send_frame(c->ws[i], msgpack, &b) != 0)
            conn_dead(c, i, HF_EUNAVAIL);
    }
    hf_buf_free(&b);
}

static uint32_t
answered(const struct cthr *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->dialed; i++)
        n += c->st[i] == S_PONG || c->st[i] == S_DEAD;
    return n;
}

static void *
cthr_main(void *arg)
{
    struct cthr *c = arg;
    struct run *r = c->r;
    uint64_t dl;

    ramp(c);
    atomic_fetch_add(&r->ramped, 1);
    while (phase(c) < P_VERIFY)
        service(c, HOLD_POLL_MS);
    if (phase(c) == P_VERIFY) {
        uint32_t before_dead = 0;
        for (uint32_t i = 0; i < c->dialed; i++)
            before_dead += c->st[i] == S_DEAD;
        send_pings(c, r->t->msgpack);
        dl = hf_mono_ns() + (uint64_t)PING_WAIT_S * 1000000000u;
        while (answered(c) < c->open_at_verify + before_dead &&
               hf_mono_ns() < dl && phase(c) == P_VERIFY)
            service(c, 50);
    }
    atomic_fetch_add(&r->verified, 1);
    while (phase(c) < P_CLOSE)
        service(c, HOLD_POLL_MS);
    for (uint32_t i = 0; i < c->n; i++)
        c->pidx[i] = 0;
    wb_close_all(c->ws, c->dialed, c->pfds, c->pidx);
    return NULL;
}

static void
cthr_free(struct cthr *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->ws && i < c->n; i++)
        hf_ws_close(c->ws[i]);
    free(c->ws);
    free(c->st);
    free(c->code);
    free(c->pfds);
    free(c->pidx);
    hf_buf_free(&c->rx);
    msgpack_zone_destroy(&c->zone);
    free(c);
}

static struct cthr *
cthr_new(struct run *r, uint32_t first, uint32_t n)
{
    struct cthr *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    msgpack_zone_init(&c->zone, 1024);
    c->r = r;
    c->first = first;
    c->n = n;
    c->ws = calloc(n ? n : 1, sizeof(*c->ws));
    c->st = calloc(n ? n : 1, sizeof(*c->st));
    c->code = calloc(n ? n : 1, sizeof(*c->code));
    c->pfds = calloc(n ? n : 1, sizeof(*c->pfds));
    c->pidx = calloc(n ? n : 1, sizeof(*c->pidx));
    if (!c->ws || !c->st || !c->code || !c->pfds || !c->pidx) {
        cthr_free(c);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void
set_phase(struct run *r, int p)
{
    atomic_store(&r->phase, p);
}

/* Waits for *count to reach n, showing progress; 0 when stopped. */
static int
await_ramp(struct run *r, int n)
{
    uint64_t next = hf_mono_ns() + 1000000000u, last_ns = r->t0, last = 0;

    while (atomic_load(&r->ramped) < n) {
        uint64_t now, done;
        if (wb_interrupted) {
            atomic_store(&r->stop, 1);
            return 0;
        }
        wb_sleep_ms(20);
        if ((now = hf_mono_ns()) < next)
            continue;
        done = atomic_load(&r->connected);
        hf_bench_progress(
            "%s: %5.1fs %7" PRIu64 "/%u open %7.0f conn/s "
            "(%" PRIu64 " failed, %" PRIu64 " dropped)",
            CONNS, (double)(now - r->t0) / 1e9, done, r->total,
            (double)(done - last) / ((double)(now - last_ns) / 1e9),
            (uint64_t)atomic_load(&r->failed), (uint64_t)atomic_load(&r->dead));
        last = done;
        last_ns = now;
        next += 1000000000u;
    }
    return 1;
}

static void
hold(struct run *r, double seconds, uint64_t held)
{
    uint64_t t0 = hf_mono_ns(), next = t0 + 1000000000u, now;

    while ((now = hf_mono_ns()) - t0 < (uint64_t)(seconds * 1e9)) {
        if (wb_interrupted) {
            atomic_store(&r->stop, 1);
            return;
        }
        wb_sleep_ms(20);
        if (now >= next) {
            hf_bench_progress("%s: holding %" PRIu64 " %5.1f/%.0f s (%" PRIu64
                              " dropped)",
                              CONNS, held, (double)(now - t0) / 1e9, seconds,
                              (uint64_t)atomic_load(&r->dead));
            next += 1000000000u;
        }
    }
}

static int
run_conns(const struct wopts *wo, const struct target *t, int durability,
          struct hf_bench_result *res)
{
    const struct copts *o = (const struct copts *)wo; /* w is first */
    struct run r = {.t = t, .total = (uint32_t)wo->clients};
    int nthreads = (int)(wo->threads < wo->clients ? wo->threads : wo->clients);
    struct cthr **ct = calloc((size_t)nthreads, sizeof(*ct));
    struct hf_bench_lat *lat = calloc(1, sizeof(*lat));
    struct hf_bench_mark m0 = {0};
    struct sview v0, vh, v1;
    uint64_t reached = 0, failed, last_ok = 0, held = 0, pongs = 0;
    uint64_t dead_hold = 0, dead_verify = 0;
    uint64_t errs[HF_ECOUNT_] = {0}, bad_pongs = 0;
    uint32_t first = 0, nonverified, shown = 0;
    int started = 0, ok, rv = HF_BENCH_FAIL, http_status = 0, gave_up = 0;

    memset(res, 0, sizeof(*res));
    res->scenario = CONNS;
    res->durability = durability;
    res->clients = (int)wo->clients;
    res->url = t->url;
    res->has_conns = 1;
    res->server_bytes_per_conn = -1;
    res->server_cpu_pct = -1;
    if (ct == NULL || lat == NULL)
        goto out;
    r.rate = o->connect_rate > 0 ? o->connect_rate / nthreads : 0;
    printf("%s: %lld connections over %d threads to %s (%s), hold %.1f s, "
           "connect rate %s%.0f/s\n",
           CONNS, wo->clients, nthreads, t->url,
           t->msgpack ? "msgpack" : "JSON", o->hold,
           o->connect_rate > 0 ? "" : "unpaced ", o->connect_rate);
    fflush(stdout);
    /* The baseline once the gauge holds still: connections of an earlier
     * run may still be closing. */
    wb_conns_look(t, o->pid, &v0);
    for (int i = 0; i < SETTLE_TRIES && v0.conns > 0; i++) {
        struct sview v;
        wb_sleep_ms(100);
        wb_conns_look(t, o->pid, &v);
        if (v.conns == v0.conns)
            break;
        v0 = v;
    }
    if (!v0.ok && o->pid <= 0)
        printf("note: %s/metrics could not be read: the server's memory and "
               "gauge are unknown\n",
               t->host);
    for (int i = 0; i < nthreads; i++) {
        uint32_t n = r.total / (uint32_t)nthreads +
                     ((uint32_t)i < r.total % (uint32_t)nthreads);
        if ((ct[i] = cthr_new(&r, first, n)) == NULL)
            goto out;
        first += n;
    }
    r.t0 = hf_mono_ns();
    for (; started < nthreads; started++)
        if (pthread_create(&ct[started]->thr, NULL, cthr_main, ct[started]) !=
            0) {
            fprintf(stderr, "holdfast-bench %s: cannot start a thread\n",
                    CONNS);
            atomic_store(&r.stop, 1);
            break;
        }
    if (!await_ramp(&r, started))
        goto join;
    reached = atomic_load(&r.connected);
    for (int i = 0; i < started; i++)
        if (ct[i]->last_ok_ns > last_ok)
            last_ok = ct[i]->last_ok_ns;
    hf_bench_progress("%s: %5.1fs %7" PRIu64 "/%u open %7.0f conn/s over the "
                      "ramp (%" PRIu64 " failed)",
                      CONNS, (double)(last_ok - r.t0) / 1e9, reached, r.total,
                      last_ok > r.t0
                          ? (double)reached / ((double)(last_ok - r.t0) / 1e9)
                          : 0.0,
                      (uint64_t)atomic_load(&r.failed));
    set_phase(&r, P_HOLD);
    wb_conns_look(t, o->pid, &vh);
    hold(&r, o->hold, reached);
    hf_bench_progress_end();
    wb_conns_look(t, o->pid, &v1);
    held = reached - atomic_load(&r.dead);
    dead_hold = atomic_load(&r.dead);
    set_phase(&r, P_VERIFY);
    while (atomic_load(&r.verified) < started && !wb_interrupted)
        wb_sleep_ms(10);
    dead_verify = atomic_load(&r.dead) - dead_hold;
    pongs = atomic_load(&r.pongs);
join:
    set_phase(&r, P_CLOSE);
    for (int i = 0; i < started; i++)
        pthread_join(ct[i]->thr, NULL);
    if (wb_interrupted || started < nthreads)
        goto out;

    /* What the threads saw. */
    failed = 0;
    for (int i = 0; i < started; i++) {
        struct cthr *c = ct[i];
        hf_bench_lat_merge(lat, &c->lat);
        failed += c->failed;
        bad_pongs += c->bad_pongs;
        gave_up += c->gave_up;
        for (int k = 0; k < HF_ECOUNT_; k++)
            errs[k] += c->errs[k];
        if (http_status == 0)
            http_status = c->http_status;
    }
    res->ops = res->ok_ops = reached;
    res->seconds = last_ok > r.t0 ? (double)(last_ok - r.t0) / 1e9 : 0;
    res->errors = failed;
    memcpy(res->errs, errs, sizeof(res->errs));
    hf_bench_result_fill(res, lat, &m0, &m0);
    res->held = pongs;

    printf("ramp: %" PRIu64 " of %u connected in %.2f s: %.0f connections/s; "
           "handshake p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           reached, r.total, res->seconds, res->ops_per_sec, res->p50_us / 1e3,
           res->p99_us / 1e3, res->max_us / 1e3);
    if (failed > 0) {
        printf("failed connects: %" PRIu64 ":", failed);
        for (int k = 1; k < HF_ECOUNT_; k++)
            if (errs[k])
                printf(" %s %" PRIu64, hf_err_name(-k), errs[k]);
        if (http_status)
            printf(" (handshake refused with HTTP %d)", http_status);
        if (gave_up)
            printf("; %d of %d threads stopped dialing after %d failures in "
                   "a row (%" PRIu64 " connections not attempted)",
                   gave_up, started, GIVE_UP, r.total - reached - failed);
        printf("\n");
    }
    printf("hold: %.1f s with %" PRIu64 " open; %" PRIu64
           " dropped during the ramp and hold, %" PRIu64
           " while verifying; %" PRIu64 " answered their ping\n",
           o->hold, held, dead_hold, dead_verify, pongs);
    for (int i = 0; i < started && shown < SHOW; i++)
        for (uint32_t j = 0; j < ct[i]->dialed && shown < SHOW; j++)
            if (ct[i]->st[j] == S_DEAD) {
                if (ct[i]->code[j] < 0)
                    printf("  connection %u lost: %s\n", ct[i]->first + j,
                           hf_err_name(ct[i]->code[j]));
                else
                    printf("  connection %u closed by the server with %d\n",
                           ct[i]->first + j, ct[i]->code[j]);
                shown++;
            }

    /* The server's view. */
    if (v0.rss > 0 && v1.rss > 0 && reached > 0) {
        res->server_bytes_per_conn =
            (double)(v1.rss - v0.rss) / (double)reached;
        printf("server memory: RSS %.1f MiB before, %.1f MiB holding: "
               "%.0f bytes (%.2f KiB) per connection [%s]\n",
               (double)v0.rss / 1048576.0, (double)v1.rss / 1048576.0,
               res->server_bytes_per_conn, res->server_bytes_per_conn / 1024,
               o->pid > 0 ? "/proc/PID/status" : "/metrics");
    }
    if (vh.cpu >= 0 && v1.cpu >= vh.cpu && v1.ns > vh.ns) {
        res->server_cpu_pct =
            (v1.cpu - vh.cpu) / ((double)(v1.ns - vh.ns) / 1e9) * 100;
        printf("server CPU while holding: %.1f%% of one core (%.2f s over "
               "%.1f s)\n",
               res->server_cpu_pct, v1.cpu - vh.cpu,
               (double)(v1.ns - vh.ns) / 1e9);
    }
    if (v1.fds >= 0)
        printf("server: %" PRId64 " open file descriptors holding\n", v1.fds);

    /* The verdict. */
    ok = 1;
    nonverified = (uint32_t)(r.total - pongs);
    if (reached < r.total) {
        printf("verify: FAIL (%" PRIu64 " of %u connections could not be "
               "made)\n",
               r.total - reached, r.total);
        ok = 0;
    }
    if (dead_hold + dead_verify > 0) {
        printf("verify: FAIL (%" PRIu64 " connections dropped)\n",
               dead_hold + dead_verify);
        ok = 0;
    }
    if (pongs < held - dead_verify || bad_pongs > 0) {
        printf("verify: FAIL (%" PRIu64 " open connections did not answer "
               "their ping within %d s; %" PRIu64 " unexpected messages)\n",
               held - dead_verify - pongs, PING_WAIT_S, bad_pongs);
        ok = 0;
    }
    if (v0.conns >= 0 && v1.conns >= 0) {
        if ((uint64_t)(v1.conns - v0.conns) != held || v1.conns < v0.conns) {
            printf("verify: FAIL (the server's holdfast_connections went from "
                   "%" PRId64 " to %" PRId64 ", not +%" PRIu64
                   ": another client, or a miscount)\n",
                   v0.conns, v1.conns, held);
            ok = 0;
        }
    } else {
        printf("note: the server's holdfast_connections gauge could not be "
               "read: not checked\n");
    }
    res->verified = ok;
    if (ok)
        printf("verify: OK (%" PRIu64 " connections made, held %.1f s, every "
               "one answered a ping; server gauge %" PRId64 " = %" PRId64
               " before + %" PRIu64 ")\n",
               reached, o->hold, v1.conns, v0.conns, held);
    else
        printf("verify: FAIL [%s, %u not verified]\n", CONNS, nonverified);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    for (int i = 0; ct && i < nthreads; i++)
        cthr_free(ct[i]);
    free(ct);
    free(lat);
    return rv;
}

static void
conns_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench connections [flags]\n"
          "\n"
          "Ramps to N concurrent WebSocket connections to a running server, "
          "spread over T\n"
          "threads that each poll() theirs (reading the hello and answering "
          "the server's\n"
          "heartbeat pings while the ramp goes on), holds them S seconds, "
          "then sends a\n"
          "protocol ping on every one and expects its pong. Reports the "
          "connections\n"
          "reached, connects/s over the ramp, handshake latency (the "
          "latency columns),\n"
          "failed connects by reason, and the server's cost: (RSS holding - "
          "RSS before)\n"
          "/ N bytes per connection, and its CPU while holding. Those come "
          "from the\n"
          "server's /metrics (process_resident_memory_bytes, "
          "process_cpu_seconds_total),\n"
          "or with --pid from /proc/PID (a local server). Measure on a "
          "freshly started\n"
          "server: one that held connections before has freed heap in its "
          "\"before\".\n"
          "\n"
          "Verdict: every connection made, none dropped, every one answered "
          "its ping, and\n"
          "the server's holdfast_connections gauge rose by exactly what is "
          "held (so no\n"
          "other client may connect meanwhile). Else FAIL, exit 1.\n"
          "\n"
          "Each connection is a file descriptor here and on the server: "
          "both need\n"
          "RLIMIT_NOFILE above N (this side raises its soft limit to the "
          "hard one).\n"
          "Hold longer than the server's --heartbeat-s (default 25) to "
          "see the cost of\n"
          "its keepalive pings.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(out, f, n, "");
}

int
hf_bench_connections(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = CONNS, .usage = conns_usage, .run = run_conns};
    struct copts o = {
        .w = {.clients = CONNS_CLIENTS, .threads = wb_ncores(), .url = DEF_URL},
        .hold = CONNS_HOLD};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "clients",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.w.clients,
         .min = 1,
         .max = MAX_CONNS,
         .help = "concurrent connections to reach (default 1000)"},
        {.name = "threads",
         .metavar = "T",
         .type = HF_BF_INT,
         .dst = &o.w.threads,
         .min = 1,
         .max = 1024,
         .help = "client threads (default: one per core)"},
        {.name = "hold",
         .metavar = "S",
         .type = HF_BF_DOUBLE,
         .dst = &o.hold,
         .min = 0,
         .max = 86400,
         .help = "seconds to hold them all (default 10)"},
        {.name = "connect-rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.connect_rate,
         .min = 0,
         .max = 1e7,
         .help = "connects per second over all threads (default: as fast "
                 "as they go)"},
        {.name = "pid",
         .metavar = "PID",
         .type = HF_BF_INT,
         .dst = &o.pid,
         .min = 1,
         .max = 1 << 30,
         .help = "a local server's pid: RSS and CPU from /proc/PID"},
    };

    return wb_ws_main(&sc, &o.w, f, 5, argc, argv);
}
