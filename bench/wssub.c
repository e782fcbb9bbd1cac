/*
 * wssub.c - holdfast-bench's subscribers (fanout, publish): S WebSocket
 * connections over T threads that each poll() their sockets, each
 * subscribed to one actor, measuring the latency of every event they
 * receive and holding their actor to every event once, in seq order, up
 * to the final seq the scenario learns from its publishers.
 *
 * Latency: an event whose data carries meta.ts (hf_mono_ns at its send,
 * put there by the publisher) is measured from that; otherwise the send
 * time comes from the scenario's seqmap (r->sm), written by its
 * publishers when they send the call that makes seq; an event that
 * arrives before its entry is known is kept aside (struct defer) and
 * settled later.
 *
 * Threads: one struct subber per thread, touched by it alone until
 * joined; struct frun is shared (see ws.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ws.h"
#include "core/err.h"

static void
lat_sample(struct subber *w, uint32_t actor, uint64_t seq, uint64_t ns)
{
    uint64_t sent = wb_sm_get(&w->r->sm[actor], seq);

    if (sent != 0) {
        hf_bench_lat_add(&w->lat, ns > sent ? ns - sent : 0);
        return;
    }
    if (w->ndq == w->capdq) {
        size_t cap = w->capdq ? w->capdq * 2 : 4096;
        struct defer *d;
        if (cap > DEFER_MAX || (d = realloc(w->dq, cap * sizeof(*d))) == NULL) {
            w->unmatched++;
            return;
        }
        w->dq = d;
        w->capdq = cap;
    }
    w->dq[w->ndq++] = (struct defer){actor, seq, ns};
}

/* Settles the deferred samples whose send time is now known; with last
 * set, counts the rest as unmatched. */
static void
settle(struct subber *w, int last)
{
    size_t j = 0;

    for (size_t i = 0; i < w->ndq; i++) {
        struct defer d = w->dq[i];
        uint64_t sent = wb_sm_get(&w->r->sm[d.actor], d.seq);
        if (sent != 0)
            hf_bench_lat_add(&w->lat, d.ns > sent ? d.ns - sent : 0);
        else if (last)
            w->unmatched++;
        else
            w->dq[j++] = d;
    }
    w->ndq = j;
}

static void
on_sub_msg(void *arg, const struct smsg *m)
{
    struct subber *w = arg;
    struct sub *s = w->cur;
    const struct name *nm = &w->r->names[s->actor];
    uint64_t seq = m->seq;

    if (m->op == M_REPLY) {
        if (s->state != SUB_ASKED || !m->has_id || m->id != 1) {
            w->stray++;
        } else if (!m->ok || !m->has_seq) {
            s->err = m->ok ? HF_EBADREQ : m->err;
            w->sub_err = s->err;
        } else {
            s->start = s->last = m->seq;
            s->state = SUB_ON;
            atomic_fetch_add_explicit(&w->r->subscribed, 1,
                                      memory_order_relaxed);
        }
        return;
    }
    if (m->op != M_EVENT)
        return;
    if (s->state != SUB_ON || m->from_len != nm->len ||
        memcmp(m->from, nm->s, nm->len) != 0) {
        w->stray++;
        return;
    }
    w->deliveries++;
    s->got++;
    if (seq == s->last + 1) {
        s->last = seq;
    } else if (seq > s->last + 1) {
        if (s->gaps == 0 && s->late == 0)
            s->bad_want = s->last + 1, s->bad_got = seq;
        s->gaps += seq - s->last - 1;
        s->last = seq;
    } else {
        if (s->gaps == 0 && s->late == 0)
            s->bad_want = s->last + 1, s->bad_got = seq;
        s->late++;
        return;
    }
    if (m->has_ts) /* the event says when it was sent */
        hf_bench_lat_add(&w->lat, w->rd.now > m->ts ? w->rd.now - m->ts : 0);
    else if (w->r->sm != NULL)
        lat_sample(w, s->actor, seq, w->rd.now);
    else
        w->unmatched++;
}

static void
sub_dead(struct sub *s, int err, int code)
{
    s->state = SUB_DEAD;
    s->err = err;
    s->close_code = code;
}

static void
sub_drain(struct subber *w, struct sub *s)
{
    int err, code;

    w->cur = s;
    if (wb_drain(&w->rd, s->ws, on_sub_msg, w, &err, &code) != 0)
        sub_dead(s, err, code);
    w->last_ns = w->rd.now;
}

static hf_ws *
sub_live(void *arg, uint32_t i)
{
    struct subber *w = arg;
    struct sub *s = &w->subs[i];

    return s->state == SUB_DEAD ? NULL : s->ws;
}

static void
sub_ready(void *arg, uint32_t i)
{
    struct subber *w = arg;

    sub_drain(w, &w->subs[i]);
}

/* One poll() over the live (open) subscribers and a wb_drain of those
 * readable. Returns how many are live. */
static uint32_t
sub_pass(struct subber *w, int timeout)
{
    return wb_poll_pass(w->n, sub_live, sub_ready, w, w->pfds, w->pidx,
                        timeout);
}

/* Whether every live subscriber has the last seq of its actor. */
static int
caught_up(struct subber *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        struct sub *s = &w->subs[i];
        if (s->state == SUB_ON &&
            s->last < atomic_load_explicit(&w->r->final[s->actor],
                                           memory_order_relaxed))
            return 0;
    }
    return 1;
}

/* Closes the thread's subscribers, all together (wb_close_all). */
static void
sub_close(struct subber *w)
{
    hf_ws **v = calloc(w->n ? w->n : 1, sizeof(*v));

    if (v == NULL)
        return; /* subber_free closes them one by one */
    for (uint32_t i = 0; i < w->n; i++) {
        v[i] = w->subs[i].ws;
        w->subs[i].ws = NULL;
    }
    wb_close_all(v, w->n, w->pfds, w->pidx);
    free(v);
}

static void *
subber_main(void *arg)
{
    struct subber *w = arg;
    struct frun *r = w->r;
    hf_buf frame = {0};
    uint64_t dl, serviced = hf_mono_ns();

    /* Each connection subscribes as soon as it is open, and those open
     * are read now and then while the rest connect: a connection left
     * unread would not answer the server's heartbeat pings and be
     * dropped when connecting many takes long. */
    for (uint32_t i = 0; i < w->n; i++) {
        struct sub *s = &w->subs[i];
        uint64_t now;
        if (atomic_load(&r->failed) || atomic_load(&r->stop))
            goto out;
        if (wb_dial(r->cmd, r->t, w->first + i, r->nsubs, &s->ws) != 0) {
            atomic_store(&r->failed, 1);
            goto out;
        }
        atomic_fetch_add(&r->connected, 1);
        frame.len = 0;
        wb_put_msg(&frame, r->t->msgpack, "sub", 1, &r->names[s->actor], NULL,
                   0);
        if (wb_send_frame(s->ws, r->t->msgpack, &frame) != 0)
            sub_dead(s, HF_EUNAVAIL, 0);
        else
            s->state = SUB_ASKED;
        if ((now = hf_mono_ns()) - serviced > SERVICE_NS) {
            sub_pass(w, 0);
            serviced = now;
        }
    }
    dl = hf_mono_ns() + (uint64_t)SUB_S * 1000000000u;
    for (;;) {
        uint32_t on = 0, dead = 0;
        for (uint32_t i = 0; i < w->n; i++) {
            on += w->subs[i].state == SUB_ON;
            dead += w->subs[i].state == SUB_DEAD;
        }
        if (on == w->n)
            break;
        if (dead > 0 || w->sub_err || hf_mono_ns() > dl ||
            atomic_load(&r->failed) || atomic_load(&r->stop)) {
            if (!w->sub_err)
                w->sub_err = dead > 0 ? HF_EUNAVAIL : HF_ETIMEOUT;
            atomic_store(&r->failed, 1);
            goto out;
        }
        sub_pass(w, POLL_MS);
    }
    atomic_fetch_add(&r->ready, 1);
    w->settled_ns = hf_mono_ns();
    for (;;) {
        uint64_t now;
        if (atomic_load(&r->stop))
            break;
        if (atomic_load(&r->final_known) && caught_up(w))
            break;
        if (sub_pass(w, POLL_MS) == 0)
            break;
        atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                                  memory_order_relaxed);
        w->reported = w->deliveries;
        now = hf_mono_ns();
        if (w->ndq > 0 && now - w->settled_ns > SETTLE_NS) {
            settle(w, 0);
            w->settled_ns = now;
        }
    }
    atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                              memory_order_relaxed);
    w->reported = w->deliveries;
    settle(w, atomic_load(&r->final_known));
out:
    sub_close(w);
    hf_buf_free(&frame);
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
subber_free(struct subber *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; w->subs && i < w->n; i++)
        hf_ws_close(w->subs[i].ws);
    free(w->subs);
    free(w->pfds);
    free(w->pidx);
    free(w->dq);
    wb_reader_fini(&w->rd);
    free(w);
}

static struct subber *
subber_new(struct frun *r, uint32_t first, uint32_t n)
{
    struct subber *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    wb_reader_init(&w->rd);
    w->r = r;
    w->first = first;
    w->n = n;
    w->subs = calloc(n, sizeof(*w->subs));
    w->pfds = calloc(n, sizeof(*w->pfds));
    w->pidx = calloc(n, sizeof(*w->pidx));
    if (!w->subs || !w->pfds || !w->pidx) {
        subber_free(w);
        return NULL;
    }
    /* Subscriber i watches actor i mod A: as even as it gets. */
    for (uint32_t i = 0; i < n; i++)
        w->subs[i].actor = (first + i) % r->nactors;
    return w;
}

int
wb_judge_subs(struct frun *r, struct subber **sw, int n, struct ftotal *ft)
{
    uint64_t shown = 0;

    if ((ft->lat = calloc(1, sizeof(*ft->lat))) == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        struct subber *w = sw[i];
        hf_bench_lat_merge(ft->lat, &w->lat);
        ft->deliveries += w->deliveries;
        ft->unmatched += w->unmatched;
        ft->stray += w->stray;
        ft->malformed += w->rd.sc.malformed;
        ft->presence += w->rd.sc.presence;
        if (w->last_ns > ft->last_ns)
            ft->last_ns = w->last_ns;
        for (uint32_t j = 0; j < w->n; j++) {
            struct sub *s = &w->subs[j];
            uint64_t fin = atomic_load(&r->final[s->actor]);
            uint64_t tail = s->last < fin ? fin - s->last : 0;
            const char *who = r->names[s->actor].s;
            ft->expected += fin > s->start ? fin - s->start : 0;
            ft->lost += s->gaps + tail;
            ft->reordered += s->late;
            if (s->state == SUB_DEAD && shown++ < SHOW) {
                if (s->close_code)
                    printf("verify: FAIL (subscriber %u of %s closed by the "
                           "server with %d%s after seq %" PRIu64 ")\n",
                           w->first + j, who, s->close_code,
                           s->close_code == 1013
                               ? " (slow consumer: more than --outbuf-max "
                                 "queued for it)"
                               : "",
                           s->last);
                else
                    printf("verify: FAIL (subscriber %u of %s lost its "
                           "connection after seq %" PRIu64 ": %s)\n",
                           w->first + j, who, s->last, hf_err_name(s->err));
            }
            ft->dead += s->state == SUB_DEAD;
            if (s->gaps + s->late > 0 && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: expected seq "
                       "%" PRIu64 ", got %" PRIu64 " first; %" PRIu64
                       " missing, %" PRIu64 " late or repeated)\n",
                       w->first + j, who, s->bad_want, s->bad_got, s->gaps,
                       s->late);
            if (tail > 0 && s->state != SUB_DEAD && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: stopped at seq "
                       "%" PRIu64 " of %" PRIu64 ")\n",
                       w->first + j, who, s->last, fin);
        }
    }
    if (shown > SHOW)
        printf("verify: FAIL (%" PRIu64 " subscriber problems in all)\n",
               shown);
    return 0;
}

struct subber **
wb_subs_new(struct frun *r, int nthreads)
{
    struct subber **sw = calloc((size_t)nthreads, sizeof(*sw));
    uint32_t nt = (uint32_t)nthreads;

    if (sw == NULL)
        return NULL;
    for (uint32_t i = 0, first = 0; i < nt; i++) {
        uint32_t n = r->nsubs / nt + (i < r->nsubs % nt);
        if ((sw[i] = subber_new(r, first, n)) == NULL) {
            wb_subs_free(sw, nthreads);
            return NULL;
        }
        first += n;
    }
    return sw;
}

int
wb_subs_start(struct frun *r, struct subber **sw, int n, int *started)
{
    uint64_t next;
    int err = 0;

    for (*started = 0; *started < n; (*started)++)
        if (pthread_create(&sw[*started]->thr, NULL, subber_main,
                           sw[*started]) != 0)
            break;
    next = hf_mono_ns() + 1000000000u;
    while (atomic_load(&r->ready) < *started && *started == n &&
           !atomic_load(&r->failed) && !wb_interrupted) {
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u, subscribed "
                              "%" PRIu64,
                              r->cmd, (uint64_t)atomic_load(&r->connected),
                              r->nsubs, (uint64_t)atomic_load(&r->subscribed));
            next += 1000000000u;
        }
    }
    if (atomic_load(&r->ready) == n)
        return 0;
    wb_subs_join(r, sw, *started, 1);
    *started = 0;
    for (int i = 0; i < n; i++)
        if (sw[i] && sw[i]->sub_err)
            err = sw[i]->sub_err;
    hf_bench_progress_end();
    printf("FAIL: %s: could not connect and subscribe every subscriber "
           "(%" PRIu64 " connected, %" PRIu64 " subscribed%s%s)%s\n",
           r->cmd, (uint64_t)atomic_load(&r->connected),
           (uint64_t)atomic_load(&r->subscribed), err ? ": " : "",
           err ? hf_err_name(err) : "", wb_interrupted ? " (interrupted)" : "");
    return -1;
}

void
wb_subs_join(struct frun *r, struct subber **sw, int started, int stop)
{
    if (stop)
        atomic_store(&r->stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(sw[i]->thr, NULL);
}

void
wb_subs_free(struct subber **sw, int n)
{
    for (int i = 0; sw && i < n; i++)
        subber_free(sw[i]);
    free(sw);
}

int
wb_subs_ok(const struct ftotal *ft)
{
    int ok = ft->lost == 0 && ft->reordered == 0 && ft->dead == 0;

    if (ft->stray || ft->malformed) {
        printf("verify: FAIL (subscribers: %" PRIu64 " stray messages, %" PRIu64
               " unreadable)\n",
               ft->stray, ft->malformed);
        ok = 0;
    }
    if (ft->unmatched > 0)
        printf("note: %" PRIu64 " deliveries had no known publish time and "
               "no latency sample\n",
               ft->unmatched);
    if (ft->presence > 0)
        printf("note: the subscribers were also sent %" PRIu64
               " presence messages (other subscribers joining or leaving), not "
               "counted as deliveries\n",
               ft->presence);
    return ok;
}

void
wb_subs_result(struct hf_bench_result *res, const struct ftotal *ft,
               const struct ctotal *tot, uint64_t t0, uint64_t tpub,
               const struct srv *s0, const struct srv *s1)
{
    res->ops = res->ok_ops = ft->deliveries;
    res->seconds =
        (double)((ft->last_ns > tpub ? ft->last_ns : tpub) - t0) / 1e9;
    res->published = tot->ok;
    res->publish_per_sec =
        tpub > t0 ? (double)tot->ok / ((double)(tpub - t0) / 1e9) : 0;
    res->errors = tot->errors;
    memcpy(res->errs, tot->errs, sizeof(res->errs));
    res->lost = ft->lost;
    res->reordered = ft->reordered;
    hf_bench_result_fill(res, ft->lat, &s0->m, &s1->m);
}
