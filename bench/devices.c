/*
 * devices.c - holdfast-bench devices: a fleet of devices reporting their
 * status and heartbeating, and dashboards watching all of them, against a
 * running server. What it measures is status propagation: from a
 * device's report leaving it to every dashboard showing the change.
 *
 * Design notes
 * ------------
 * Devices. D connections, connection i being device dv<i>.<tag>, one call
 * in flight each (a device reports in order), through the callers of
 * wscall.c. Calls alternate report and heartbeat; the reports alternate
 * in_use and available, so every report is a status change and emits one
 * event; heartbeats of a live device emit nothing. A report carries
 * meta {"ts": hf_mono_ns() at send}, which the event repeats: the
 * dashboards read the latency from the payload itself. --rate spreads the
 * calls of all devices over time (default 2,000/s: a fleet reporting a
 * few times a second), 0 sends as fast as replies come back.
 *
 * Dashboards. B connections each subscribe to every device (D subs on one
 * connection, as a fleet dashboard does) before the devices start, and
 * follow each device's seq. The number of events a device emitted is
 * known exactly from the reports' replies (changed: true), so after the
 * run every dashboard must have received, for every device, seq 1..k_d
 * once each and in order: lost and reordered events are counted as in
 * fanout, and either fails the run.
 *
 * Threads: the dashboards' connections are spread over their own threads
 * (each poll()s its connections); the devices run on the caller threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/env.h"
#include "core/err.h"

#define DEVICES     "devices"
#define DV_DEVICES  200
#define DV_DASH     10
#define DV_RATE     2000.0
#define DV_MAX_DEVS 20000

/* ------------------------------------------------------------------ */
/* the devices (callers)                                               */

/* Read-only while running (crun.wl_arg). */
struct dv {
    uint32_t ndev;
    const struct name *devs;
    atomic_uint_least64_t *changes; /* per device: events acknowledged */
};

/* sent_aux[s]: 1 for a report, 0 for a heartbeat. */
static uint32_t
dv_put(struct caller *c, struct cconn *k, uint32_t s, uint64_t id)
{
    const struct dv *d = c->r->wl_arg;
    uint32_t dev = k->idx % d->ndev;
    int report = k->seq % 2 == 1; /* k->seq counts from 1 */
    const char *st = (k->seq / 2) % 2 == 0 ? "in_use" : "available";
    uint64_t ts = hf_mono_ns();

    k->sent_actor[s] = dev;
    k->sent_aux[s] = (uint32_t)report;
    if (!c->r->t->msgpack) {
        char tmp[NAME_CAP + 200];
        int n;
        if (report)
            n = snprintf(tmp, sizeof(tmp),
                         "%s{\"op\":\"call\",\"id\":%" PRIu64
                         ",\"to\":\"%s\",\"method\":\"report\",\"args\":{"
                         "\"status\":\"%s\",\"meta\":{\"ts\":%" PRIu64 "}}}",
                         c->frame.len ? "\n" : "", id, d->devs[dev].s, st, ts);
        else
            n = snprintf(tmp, sizeof(tmp),
                         "%s{\"op\":\"call\",\"id\":%" PRIu64
                         ",\"to\":\"%s\",\"method\":\"heartbeat\"}",
                         c->frame.len ? "\n" : "", id, d->devs[dev].s);
        hf_buf_append(&c->frame, tmp, (size_t)n);
        return dev;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->frame, hf_buf_mpwrite);
    msgpack_pack_map(&pk, report ? 5 : 4);
    hf_pack_cstr(&pk, "op");
    hf_pack_cstr(&pk, "call");
    hf_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    hf_pack_cstr(&pk, "to");
    hf_pack_str(&pk, d->devs[dev].s, d->devs[dev].len);
    hf_pack_cstr(&pk, "method");
    hf_pack_cstr(&pk, report ? "report" : "heartbeat");
    if (report) {
        hf_pack_cstr(&pk, "args");
        msgpack_pack_map(&pk, 2);
        hf_pack_cstr(&pk, "status");
        hf_pack_cstr(&pk, st);
        hf_pack_cstr(&pk, "meta");
        msgpack_pack_map(&pk, 1);
        hf_pack_cstr(&pk, "ts");
        msgpack_pack_uint64(&pk, ts);
    }
    return dev;
}

/* Whether an ok reply says the status changed (and so an event went
 * out): 1, 0, or -1 when it does not say. */
static int
changed(const struct smsg *m)
{
    if (m->mresult != NULL) {
        const msgpack_object *o = m->mresult;
        for (uint32_t i = 0;
             o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR &&
                kv->key.via.str.size == 7 &&
                memcmp(kv->key.via.str.ptr, "changed", 7) == 0)
                return kv->val.type == MSGPACK_OBJECT_BOOLEAN
                           ? kv->val.via.boolean
                           : -1;
        }
        return -1;
    }
    if (m->jresult != NULL) {
        json_t *v = json_object_get(m->jresult, "changed");
        return json_is_boolean(v) ? json_is_true(v) : -1;
    }
    if (m->result != NULL) {
        if (memmem(m->result, m->result_len, "\"changed\":true", 14))
            return 1;
        if (memmem(m->result, m->result_len, "\"changed\":false", 15))
            return 0;
    }
    return -1;
}

static int
dv_reply(struct caller *c, struct cconn *k, uint32_t s, const struct smsg *m)
{
    const struct dv *d = c->r->wl_arg;
    int ch;

    if (!m->ok)
        return WR_ERROR;
    if ((ch = changed(m)) < 0)
        return WR_ERROR; /* counted as bad_request: not the reply promised */
    if (ch)
        atomic_fetch_add_explicit(&d->changes[k->sent_actor[s]], 1,
                                  memory_order_relaxed);
    return WR_OK;
}

static const struct wload dv_load = {.put = dv_put, .reply = dv_reply};

/* ------------------------------------------------------------------ */
/* the dashboards                                                      */

enum { D_NEW = 0, D_ASKED, D_ON, D_DEAD };

/* One dashboard connection: a subscription to every device. */
struct dash {
    hf_ws *ws;
    int state, err, close_code;
    uint32_t subscribed; /* sub replies received */
    uint64_t *last;      /* per device: the highest seq received */
    uint64_t got, gaps, late;
};

/* Shared by the main thread and the dashboard threads. */
struct drun {
    const struct target *t;
    const struct dv *d;
    uint32_t ndash, name_prefix; /* bytes before the device number */
    atomic_int stop, ready, finished, failed, final_known;
    atomic_uint_least64_t connected, subscribed, delivered;
};

/* Touched only by its own thread until joined. */
struct dashw {
    pthread_t thr;
    struct drun *r;
    uint32_t first, n;
    struct dash *dash;
    struct pollfd *pfds;
    uint32_t *pidx;
    struct reader rd;
    struct dash *cur;
    struct hf_bench_lat lat;
    uint64_t deliveries, reported, stray, no_ts, last_ns;
    int sub_err;
};

/* The device index in "device/dv<i>.<tag>", or -1. */
static long
dev_index(const struct drun *r, const char *from, size_t n)
{
    unsigned long v = 0;
    size_t i = r->name_prefix;

    if (n <= i || from[i] < '0' || from[i] > '9')
        return -1;
    for (; i < n && from[i] >= '0' && from[i] <= '9'; i++)
        v = v * 10 + (unsigned long)(from[i] - '0');
    if (v >= r->d->ndev || i >= n || n != r->d->devs[v].len ||
        memcmp(from, r->d->devs[v].s, n) != 0)
        return -1;
    return (long)v;
}

static void
on_dash_msg(void *arg, const struct smsg *m)
{
    struct dashw *w = arg;
    struct dash *b = w->cur;
    long dev;

    if (m->op == M_REPLY) {
        if (b->state != D_ASKED || !m->has_id || m->id == 0 ||
            m->id > w->r->d->ndev) {
            w->stray++;
        } else if (!m->ok || !m->has_seq) {
            b->err = m->ok ? HF_EBADREQ : m->err;
            w->sub_err = b->err;
        } else if (m->seq != 0) {
            b->err = HF_EBADREQ; /* a fresh device starts at seq 0 */
            w->sub_err = b->err;
        } else if (++b->subscribed == w->r->d->ndev) {
            b->state = D_ON;
        }
        if (m->ok && m->has_seq)
            atomic_fetch_add_explicit(&w->r->subscribed, 1,
                                      memory_order_relaxed);
        return;
    }
    if (m->op != M_EVENT)
        return;
    if (b->state != D_ON || (dev = dev_index(w->r, m->from, m->from_len)) < 0) {
        w->stray++;
        return;
    }
    w->deliveries++;
    b->got++;
    if (m->seq == b->last[dev] + 1) {
        b->last[dev] = m->seq;
    } else if (m->seq > b->last[dev] + 1) {
        b->gaps += m->seq - b->last[dev] - 1;
        b->last[dev] = m->seq;
    } else {
        b->late++;
        return;
    }
    if (m->has_ts)
        hf_bench_lat_add(&w->lat, w->rd.now > m->ts ? w->rd.now - m->ts : 0);
    else
        w->no_ts++;
}

static void
dash_drain(struct dashw *w, struct dash *b)
{
    int err, code;

    w->cur = b;
    if (wb_drain(&w->rd, b->ws, on_dash_msg, w, &err, &code) != 0) {
        b->state = D_DEAD;
        b->err = err;
        b->close_code = code;
    }
    w->last_ns = w->rd.now;
}

static hf_ws *
dash_live(void *arg, uint32_t i)
{
    struct dashw *w = arg;
    struct dash *b = &w->dash[i];

    return b->state == D_DEAD ? NULL : b->ws;
}

static void
dash_ready(void *arg, uint32_t i)
{
    struct dashw *w = arg;

    dash_drain(w, &w->dash[i]);
}

/* One poll() over the open dashboards and a wb_drain of those readable.
 * Returns how many are open. */
static uint32_t
dash_pass(struct dashw *w, int timeout)
{
    return wb_poll_pass(w->n, dash_live, dash_ready, w, w->pfds, w->pidx,
                        timeout);
}

static int
dash_caught_up(struct dashw *w)
{
    const struct dv *d = w->r->d;

    for (uint32_t i = 0; i < w->n; i++) {
        struct dash *b = &w->dash[i];
        if (b->state != D_ON)
            continue;
        for (uint32_t v = 0; v < d->ndev; v++)
            if (b->last[v] <
                atomic_load_explicit(&d->changes[v], memory_order_relaxed))
                return 0;
    }
    return 1;
}

/* Opens the thread's dashboards and subscribes each to every device. */
static int
dash_subscribe(struct dashw *w)
{
    struct drun *r = w->r;
    hf_buf frame = {0};
    uint64_t dl;
    int rv = 0;

    for (uint32_t i = 0; i < w->n && rv == 0; i++) {
        struct dash *b = &w->dash[i];
        if (wb_dial(DEVICES, r->t, w->first + i, r->ndash, &b->ws) != 0) {
            rv = HF_EUNAVAIL;
            break;
        }
        atomic_fetch_add(&r->connected, 1);
        b->state = D_ASKED;
        frame.len = 0;
        for (uint32_t v = 0; v < r->d->ndev && rv == 0; v++) {
            wb_put_msg(&frame, r->t->msgpack, "sub", (uint64_t)v + 1,
                       &r->d->devs[v], NULL, 0);
            if (frame.len >= FRAME_BYTES || (v + 1) % FRAME_MSGS == 0 ||
                v + 1 == r->d->ndev) {
                if (wb_send_frame(b->ws, r->t->msgpack, &frame) != 0)
                    rv = HF_EUNAVAIL;
                frame.len = 0;
            }
        }
        dash_pass(w, 0);
    }
    hf_buf_free(&frame);
    dl = hf_mono_ns() + (uint64_t)SUB_S * 1000000000u;
    while (rv == 0) {
        uint32_t on = 0;
        for (uint32_t i = 0; i < w->n; i++) {
            on += w->dash[i].state == D_ON;
            if (w->dash[i].state == D_DEAD)
                rv = HF_EUNAVAIL;
        }
        if (on == w->n)
            break;
        if (w->sub_err)
            rv = w->sub_err;
        else if (hf_mono_ns() > dl)
            rv = HF_ETIMEOUT;
        else if (atomic_load(&r->stop) || atomic_load(&r->failed))
            rv = HF_EUNAVAIL;
        else
            dash_pass(w, POLL_MS);
    }
    if (rv != 0 && !w->sub_err)
        w->sub_err = rv;
    return rv;
}

static void *
dash_main(void *arg)
{
    struct dashw *w = arg;
    struct drun *r = w->r;
    hf_ws **v;

    if (dash_subscribe(w) != 0) {
        atomic_store(&r->failed, 1);
        goto out;
    }
    atomic_fetch_add(&r->ready, 1);
    for (;;) {
        if (atomic_load(&r->stop))
            break;
        if (atomic_load(&r->final_known) && dash_caught_up(w))
            break;
        if (dash_pass(w, POLL_MS) == 0)
            break;
        atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                                  memory_order_relaxed);
        w->reported = w->deliveries;
    }
    atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                              memory_order_relaxed);
    w->reported = w->deliveries;
out:
    if ((v = calloc(w->n ? w->n : 1, sizeof(*v))) != NULL) {
        for (uint32_t i = 0; i < w->n; i++) {
            v[i] = w->dash[i].ws;
            w->dash[i].ws = NULL;
        }
        wb_close_all(v, w->n, w->pfds, w->pidx);
        free(v);
    }
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
dashw_free(struct dashw *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; w->dash && i < w->n; i++) {
        hf_ws_close(w->dash[i].ws);
        free(w->dash[i].last);
    }
    free(w->dash);
    free(w->pfds);
    free(w->pidx);
    wb_reader_fini(&w->rd);
    free(w);
}

static struct dashw *
dashw_new(struct drun *r, uint32_t first, uint32_t n)
{
    struct dashw *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    wb_reader_init(&w->rd);
    w->r = r;
    w->first = first;
    w->n = n;
    w->dash = calloc(n ? n : 1, sizeof(*w->dash));
    w->pfds = calloc(n ? n : 1, sizeof(*w->pfds));
    w->pidx = calloc(n ? n : 1, sizeof(*w->pidx));
    if (!w->dash || !w->pfds || !w->pidx)
        goto fail;
    for (uint32_t i = 0; i < n; i++)
        if ((w->dash[i].last = calloc(r->d->ndev, sizeof(uint64_t))) == NULL)
            goto fail;
    return w;
fail:
    dashw_free(w);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

struct dvtotal {
    struct hf_bench_lat *lat;
    uint64_t deliveries, expected, lost, reordered, stray, no_ts, malformed,
        dead, last_ns;
};

static int
judge(struct drun *r, struct dashw **dw, int n, struct dvtotal *t)
{
    const struct dv *d = r->d;
    uint64_t shown = 0;

    if ((t->lat = calloc(1, sizeof(*t->lat))) == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        struct dashw *w = dw[i];
        hf_bench_lat_merge(t->lat, &w->lat);
        t->deliveries += w->deliveries;
        t->stray += w->stray;
        t->no_ts += w->no_ts;
        t->malformed += w->rd.sc.malformed;
        if (w->last_ns > t->last_ns)
            t->last_ns = w->last_ns;
        for (uint32_t j = 0; j < w->n; j++) {
            struct dash *b = &w->dash[j];
            uint64_t tail = 0;
            for (uint32_t v = 0; v < d->ndev; v++) {
                uint64_t fin = atomic_load(&d->changes[v]);
                t->expected += fin;
                if (b->last[v] < fin)
                    tail += fin - b->last[v];
            }
            t->lost += b->gaps + tail;
            t->reordered += b->late;
            t->dead += b->state == D_DEAD;
            if (b->state == D_DEAD && shown++ < SHOW)
                printf("verify: FAIL (dashboard %u lost its connection: "
                       "%s, close code %d)\n",
                       w->first + j, hf_err_name(b->err), b->close_code);
            else if (b->gaps + b->late + tail > 0 && shown++ < SHOW)
                printf("verify: FAIL (dashboard %u: %" PRIu64
                       " events missing, %" PRIu64 " late or repeated)\n",
                       w->first + j, b->gaps + tail, b->late);
        }
    }
    return 0;
}

static int
run_devices(const struct wopts *o, const struct target *t, int durability,
            struct hf_bench_result *res)
{
    uint32_t ndev = (uint32_t)o->actors, ndash = (uint32_t)o->subscribers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    struct dv d = {.ndev = ndev};
    struct drun dr = {.t = t, .d = &d, .ndash = ndash};
    struct crun cr = {.cmd = DEVICES,
                      .wl = &dv_load,
                      .wl_arg = &d,
                      .t = t,
                      .nactors = ndev,
                      .window = 1,
                      .nconns = ndev,
                      .rate = o->rate,
                      .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct dashw **dw = NULL;
    struct caller **cl = NULL;
    struct ctotal tot = {0};
    struct dvtotal dt = {0};
    struct wb_pub pub = {0};
    struct name *names;
    uint64_t next, t0, tpub;
    uint64_t reports = 0;
    char tag[16];
    int dstarted = 0, djoined = 0, ok = 0, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = DEVICES;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = res->subscribers = (int)ndash;
    res->publishers = (int)ndev;
    res->window = 1;
    res->url = t->url;
    if ((names = wb_make_names(ndev, "device/dv", tag, sizeof(tag))) == NULL)
        return HF_BENCH_FAIL;
    d.devs = cr.names = names;
    dr.name_prefix = (uint32_t)strlen("device/dv");
    d.changes = calloc(ndev, sizeof(*d.changes));
    dw = calloc((size_t)nthreads, sizeof(*dw));
    if (d.changes == NULL || dw == NULL)
        goto out;
    printf("%s: %u devices device/dv<i>.%s (one connection each, report and "
           "heartbeat in turn, ",
           DEVICES, ndev, tag);
    if (o->rate > 0)
        printf("%.0f calls/s in all", o->rate);
    else
        printf("as fast as replies come");
    printf("), %u dashboards each watching every device, over %d threads, "
           "to %s (%s), ",
           ndash, nthreads, t->url, t->msgpack ? "msgpack" : "JSON");
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld calls\n", o->ops);
    fflush(stdout);

    /* Dashboards first, so that each can be held to every event. */
    for (uint32_t i = 0, first = 0; i < (uint32_t)nthreads; i++) {
        uint32_t n =
            ndash / (uint32_t)nthreads + (i < ndash % (uint32_t)nthreads);
        if ((dw[i] = dashw_new(&dr, first, n)) == NULL)
            goto out;
        first += n;
    }
    for (; dstarted < nthreads; dstarted++)
        if (pthread_create(&dw[dstarted]->thr, NULL, dash_main, dw[dstarted]) !=
            0)
            break;
    next = hf_mono_ns() + 1000000000u;
    while (atomic_load(&dr.ready) < dstarted && dstarted == nthreads &&
           !atomic_load(&dr.failed) && !wb_interrupted) {
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: dashboards connected %" PRIu64
                              "/%u, subscriptions %" PRIu64 "/%" PRIu64,
                              DEVICES, (uint64_t)atomic_load(&dr.connected),
                              ndash, (uint64_t)atomic_load(&dr.subscribed),
                              (uint64_t)ndash * ndev);
            next += 1000000000u;
        }
    }
    if (atomic_load(&dr.ready) < nthreads) {
        int err = 0;
        atomic_store(&dr.stop, 1);
        for (int i = 0; i < dstarted; i++)
            pthread_join(dw[i]->thr, NULL);
        dstarted = 0;
        for (int i = 0; i < nthreads; i++)
            if (dw[i] && dw[i]->sub_err)
                err = dw[i]->sub_err;
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect and subscribe every dashboard "
               "(%s)%s\n",
               DEVICES, err ? hf_err_name(err) : "?",
               wb_interrupted ? " (interrupted)" : "");
        goto out;
    }

    /* Then the devices. Once every call is answered, the event counts
     * (d.changes) are final. */
    if ((cl = wb_callers_new(&cr, 1)) == NULL)
        goto out;
    pub = (struct wb_pub){.cr = &cr,
                          .cl = cl,
                          .n = 1,
                          .duration = duration,
                          .who = "devices",
                          .what = "calls",
                          .rwhat = "dashboard updates",
                          .nreaders = dstarted,
                          .rstop = &dr.stop,
                          .rfinal_known = &dr.final_known,
                          .rfinished = &dr.finished,
                          .delivered = &dr.delivered};
    if (wb_publish(&pub) != 0)
        goto out;
    for (int i = 0; i < dstarted; i++)
        pthread_join(dw[i]->thr, NULL);
    djoined = 1;
    t0 = pub.t0;
    tpub = pub.tpub;
    if (wb_ctotal_merge(&tot, cl, pub.started, ndev) != 0 ||
        judge(&dr, dw, dstarted, &dt) != 0)
        goto out;
    for (uint32_t v = 0; v < ndev; v++)
        reports += atomic_load(&d.changes[v]);

    res->ops = res->ok_ops = dt.deliveries;
    res->seconds = (double)((dt.last_ns > tpub ? dt.last_ns : tpub) - t0) / 1e9;
    res->published = reports;
    res->publish_per_sec =
        tpub > t0 ? (double)tot.ok / ((double)(tpub - t0) / 1e9) : 0;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->lost = dt.lost;
    res->reordered = dt.reordered;
    hf_bench_result_fill(res, dt.lat, &pub.s0.m, &pub.s1.m);
    hf_bench_extra(res, "calls_per_sec", res->publish_per_sec);
    hf_bench_extra(res, "status_changes", (double)reports);

    ok = dt.lost == 0 && dt.reordered == 0 && dt.dead == 0;
    if (dt.stray || dt.malformed || dt.no_ts) {
        printf("verify: FAIL (dashboards: %" PRIu64 " stray messages, %" PRIu64
               " unreadable, %" PRIu64 " status events without the "
               "timestamp sent)\n",
               dt.stray, dt.malformed, dt.no_ts);
        ok = 0;
    }
    if (!wb_callers_ok(&tot, cl, pub.started, "device"))
        ok = 0;
    if (tot.errors) {
        printf("verify: FAIL (devices: %" PRIu64 " error replies)\n",
               tot.errors);
        ok = 0;
    }
    res->verified = ok;
    printf("%s: %" PRIu64 " calls answered (%" PRIu64
           " status changes), %" PRIu64 " dashboard updates expected, %" PRIu64
           " received; lost %" PRIu64 ", reordered or repeated %" PRIu64 "\n",
           DEVICES, tot.ok, reports, dt.expected, dt.deliveries, dt.lost,
           dt.reordered);
    if (ok)
        printf("verify: OK (every dashboard saw every status change of every "
               "device once, in seq order)\n");
    else
        printf("verify: FAIL [%s]\n", DEVICES);
    wb_note_limits(DEVICES, &pub.s0, &pub.s1, tot.errs[-HF_ERATELIMIT],
                   dt.deliveries + tot.ok + tot.errors);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    if (!djoined) {
        atomic_store(&dr.stop, 1);
        for (int i = 0; i < dstarted; i++)
            pthread_join(dw[i]->thr, NULL);
    }
    wb_ctotal_free(&tot);
    free(dt.lat);
    wb_free_callers(cl, 1);
    for (int i = 0; dw && i < nthreads; i++)
        dashw_free(dw[i]);
    free(dw);
    free(d.changes);
    free(names);
    return rv;
}

static void
devices_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench devices [flags]\n"
          "\n"
          "D devices, one WebSocket connection each, call report and "
          "heartbeat in turn on\n"
          "their fresh actor device/dv<i>.<tag> (one call in flight each, "
          "R calls/s in\n"
          "all); every report changes the status (in_use, available, ...) "
          "and carries\n"
          "meta {ts}. B dashboards, each one connection subscribed to every "
          "device, receive\n"
          "the status events. Latency is propagation: from the report's send "
          "to a\n"
          "dashboard's receipt of its event (from the timestamp in the "
          "payload).\n"
          "\n"
          "Afterwards every dashboard must have received every status change "
          "of every\n"
          "device once and in seq order, as many as the reports' replies "
          "said changed\n"
          "the status. Lost and reordered events are counted; either is FAIL, "
          "exit 1.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(out, f, n, "");
}

int
hf_bench_devices(int argc, char **argv)
{
    static const struct wscen sc = {.name = DEVICES,
                                    .usage = devices_usage,
                                    .run = run_devices,
                                    .actor_conns = 1};
    struct wopts o = {.actors = DV_DEVICES,
                      .subscribers = DV_DASH,
                      .rate = DV_RATE,
                      .threads = 1,
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "devices",
         .metavar = "D",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = DV_MAX_DEVS,
         .help = "devices, one connection each (default 200)"},
        {.name = "dashboards",
         .metavar = "B",
         .type = HF_BF_INT,
         .dst = &o.subscribers,
         .min = 1,
         .max = 10000,
         .help = "dashboards, each subscribed to every device (default 10)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "device calls per second in all, half of them reports "
                 "(default 2000; 0: as fast as replies come)"},
    };
    size_t n = 3;

    wb_span_flags(f, &n, &o, "dashboard threads (default 1)",
                  "make N device calls in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
