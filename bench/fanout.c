/*
 * fanout.c - holdfast-bench fanout: publishers emit events that a running
 * server delivers to many WebSocket subscribers; latency, loss and order
 * (see wscall.c and wsverify.c for the design notes).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/err.h"

/* ------------------------------------------------------------------ */
/* fanout: subscribers                                                 */

#define FANOUT     "fanout"
#define FAN_SUBS   1000
#define FAN_PUBS   2
#define FAN_WINDOW 32

enum { S_NEW = 0, S_ASKED, S_ON, S_DEAD };

struct sub {
    hf_ws *ws;
    uint32_t actor;
    int state;
    int err, close_code; /* S_DEAD: why */
    uint64_t start;      /* the seq its sub reply reported */
    uint64_t last;       /* the highest seq received */
    uint64_t got, gaps, late;
    uint64_t bad_want, bad_got; /* the first anomaly, for the report */
};

/* Shared by the main thread and the subscriber threads: the plain fields
 * are set before the threads start; final[] is written by the main thread
 * before it sets final_known. */
struct frun {
    const char *cmd;
    const struct target *t;
    const struct name *names;
    uint32_t nactors, nsubs;
    struct seqmap *sm;
    atomic_uint_least64_t *final; /* per actor: the last seq to expect */
    atomic_int final_known, stop, ready, finished, failed;
    atomic_uint_least64_t connected, subscribed, delivered;
};

/* A latency sample whose send time was not known at receipt. */
struct defer {
    uint32_t actor;
    uint64_t seq, ns;
};

/* Touched only by its own thread until joined. */
struct subber {
    pthread_t thr;
    struct frun *r;
    uint32_t first, n;
    struct sub *subs;
    struct pollfd *pfds;
    uint32_t *pidx;
    struct reader rd;
    struct sub *cur;
    uint64_t last_ns, settled_ns;
    struct hf_bench_lat lat;
    struct defer *dq;
    size_t ndq, capdq;
    uint64_t deliveries, reported, unmatched, stray;
    int sub_err;
};

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
        if (s->state != S_ASKED || !m->has_id || m->id != 1) {
            w->stray++;
        } else if (!m->ok || !m->has_seq) {
            s->err = m->ok ? HF_EBADREQ : m->err;
            w->sub_err = s->err;
        } else {
            s->start = s->last = m->seq;
            s->state = S_ON;
            atomic_fetch_add_explicit(&w->r->subscribed, 1,
                                      memory_order_relaxed);
        }
        return;
    }
    if (m->op != M_EVENT)
        return;
    if (s->state != S_ON || m->from_len != nm->len ||
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
    lat_sample(w, s->actor, seq, w->rd.now);
}

static void
sub_dead(struct sub *s, int err, int code)
{
    s->state = S_DEAD;
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

    return s->state == S_DEAD ? NULL : s->ws;
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
        if (s->state == S_ON &&
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
            s->state = S_ASKED;
        if ((now = hf_mono_ns()) - serviced > SERVICE_NS) {
            sub_pass(w, 0);
            serviced = now;
        }
    }
    dl = hf_mono_ns() + (uint64_t)SUB_S * 1000000000u;
    for (;;) {
        uint32_t on = 0, dead = 0;
        for (uint32_t i = 0; i < w->n; i++) {
            on += w->subs[i].state == S_ON;
            dead += w->subs[i].state == S_DEAD;
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

/* ------------------------------------------------------------------ */
/* fanout: the run                                                     */

/* What the subscribers saw, summed, and the verdict on their streams. */
struct ftotal {
    struct hf_bench_lat *lat;
    uint64_t deliveries, expected, lost, reordered, unmatched, stray, malformed,
        presence, dead, last_ns;
};

static int
judge_subs(struct frun *r, struct subber **sw, int n, struct ftotal *ft)
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
            if (s->state == S_DEAD && shown++ < SHOW) {
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
            ft->dead += s->state == S_DEAD;
            if (s->gaps + s->late > 0 && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: expected seq "
                       "%" PRIu64 ", got %" PRIu64 " first; %" PRIu64
                       " missing, %" PRIu64 " late or repeated)\n",
                       w->first + j, who, s->bad_want, s->bad_got, s->gaps,
                       s->late);
            if (tail > 0 && s->state != S_DEAD && shown++ < SHOW)
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

/* What fan_final needs: once every publish is answered, the actors are
 * final, and what they hold is what the subscribers must reach. */
struct fanfin {
    struct frun *fr;
    struct caller **cl;
    int64_t *vals; /* NULL when the actors could not be read back */
};

static void
fan_final(void *arg)
{
    struct fanfin *ff = arg;
    struct frun *fr = ff->fr;

    if ((ff->vals = calloc(fr->nactors, sizeof(*ff->vals))) != NULL &&
        wb_read_values(FANOUT, fr->t, fr->names, fr->nactors, ff->vals) != 0) {
        free(ff->vals);
        ff->vals = NULL;
    }
    for (uint32_t a = 0; a < fr->nactors; a++)
        atomic_store(&fr->final[a], ff->vals && ff->vals[a] > 0
                                        ? (uint64_t)ff->vals[a]
                                        : ff->cl[0]->seen[a].max);
}

static int
run_fanout(const struct wopts *o, const struct target *t, int durability,
           struct hf_bench_result *res)
{
    uint32_t nactors = (uint32_t)o->actors, nsubs = (uint32_t)o->subscribers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    struct frun fr = {
        .cmd = FANOUT, .t = t, .nactors = nactors, .nsubs = nsubs};
    struct crun cr = {.cmd = FANOUT,
                      .t = t,
                      .nactors = nactors,
                      .window = (uint32_t)o->window,
                      .nconns = (uint32_t)o->publishers,
                      .emit = 1,
                      .rate = o->rate,
                      .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct subber **sw = NULL;
    struct caller **cl = NULL;
    struct ctotal tot = {0};
    struct ftotal ft = {0};
    struct wb_pub pub = {0};
    struct fanfin ff = {.fr = &fr};
    struct name *names;
    uint64_t next, sum, t0, tpub;
    char tag[16];
    int sstarted = 0, sjoined = 0, ok = 0, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = FANOUT;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = res->subscribers = (int)o->subscribers;
    res->publishers = (int)o->publishers;
    res->window = (int)o->window;
    res->url = t->url;
    if ((names = wb_make_names(nactors, "counter/fan", tag, sizeof(tag))) ==
        NULL)
        return HF_BENCH_FAIL;
    fr.names = cr.names = names;
    fr.sm = cr.sm = calloc(nactors, sizeof(*fr.sm));
    fr.final = calloc(nactors, sizeof(*fr.final));
    sw = calloc((size_t)nthreads, sizeof(*sw));
    if (fr.sm == NULL || fr.final == NULL || sw == NULL)
        goto out;
    printf("%s: %lld subscribers over %d threads, %lld publishers (window "
           "%lld, ",
           FANOUT, o->subscribers, nthreads, o->publishers, o->window);
    if (o->rate > 0)
        printf("%.0f calls/s in all", o->rate);
    else
        printf("as fast as the window allows");
    printf(") to %s (%s), %lld actors counter/fan<i>.%s, ", t->url,
           t->msgpack ? "msgpack" : "JSON", o->actors, tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld publishes\n", o->ops);
    fflush(stdout);

    /* Subscribers first: every one must hold its subscription before the
     * first publish, so that it can be held to every event. */
    for (uint32_t i = 0, first = 0; i < (uint32_t)nthreads; i++) {
        uint32_t n =
            nsubs / (uint32_t)nthreads + (i < nsubs % (uint32_t)nthreads);
        if ((sw[i] = subber_new(&fr, first, n)) == NULL)
            goto out;
        first += n;
    }
    for (; sstarted < nthreads; sstarted++)
        if (pthread_create(&sw[sstarted]->thr, NULL, subber_main,
                           sw[sstarted]) != 0)
            break;
    next = hf_mono_ns() + 1000000000u;
    while (atomic_load(&fr.ready) < sstarted && sstarted == nthreads &&
           !atomic_load(&fr.failed) && !wb_interrupted) {
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u, subscribed "
                              "%" PRIu64,
                              FANOUT, (uint64_t)atomic_load(&fr.connected),
                              nsubs, (uint64_t)atomic_load(&fr.subscribed));
            next += 1000000000u;
        }
    }
    if (atomic_load(&fr.ready) < nthreads) {
        int err = 0;
        atomic_store(&fr.stop, 1);
        for (int i = 0; i < sstarted; i++)
            pthread_join(sw[i]->thr, NULL);
        sstarted = 0;
        for (int i = 0; i < nthreads; i++)
            if (sw[i] && sw[i]->sub_err)
                err = sw[i]->sub_err;
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect and subscribe every subscriber "
               "(%" PRIu64 " connected, %" PRIu64 " subscribed%s%s)%s\n",
               FANOUT, (uint64_t)atomic_load(&fr.connected),
               (uint64_t)atomic_load(&fr.subscribed), err ? ": " : "",
               err ? hf_err_name(err) : "",
               wb_interrupted ? " (interrupted)" : "");
        goto out;
    }

    /* Then the publishers. */
    if ((cl = wb_callers_new(&cr, 1)) == NULL)
        goto out;
    ff.cl = cl;
    pub = (struct wb_pub){.cr = &cr,
                          .cl = cl,
                          .n = 1,
                          .duration = duration,
                          .who = "publishers",
                          .what = "published",
                          .rwhat = "delivered",
                          .nreaders = sstarted,
                          .rstop = &fr.stop,
                          .rfinal_known = &fr.final_known,
                          .rfinished = &fr.finished,
                          .delivered = &fr.delivered,
                          .final = fan_final,
                          .arg = &ff};
    if (wb_publish(&pub) != 0)
        goto out;
    for (int i = 0; i < sstarted; i++)
        pthread_join(sw[i]->thr, NULL);
    sjoined = 1;
    t0 = pub.t0;
    tpub = pub.tpub;
    if (wb_ctotal_merge(&tot, cl, pub.started, nactors) != 0 ||
        judge_subs(&fr, sw, sstarted, &ft) != 0)
        goto out;

    res->ops = res->ok_ops = ft.deliveries;
    res->seconds = (double)((ft.last_ns > tpub ? ft.last_ns : tpub) - t0) / 1e9;
    res->published = tot.ok;
    res->publish_per_sec =
        tpub > t0 ? (double)tot.ok / ((double)(tpub - t0) / 1e9) : 0;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->lost = ft.lost;
    res->reordered = ft.reordered;
    hf_bench_result_fill(res, ft.lat, &pub.s0.m, &pub.s1.m);

    /* The verdict. */
    ok = ft.lost == 0 && ft.reordered == 0 && ft.dead == 0;
    if (ft.stray || ft.malformed) {
        printf("verify: FAIL (subscribers: %" PRIu64 " stray messages, %" PRIu64
               " unreadable)\n",
               ft.stray, ft.malformed);
        ok = 0;
    }
    if (!wb_callers_ok(&tot, cl, pub.started, "publisher"))
        ok = 0;
    if (ff.vals == NULL)
        ok = 0;
    else
        ok &= wb_check_actors(names, nactors, tot.seen, ff.vals, &sum);
    res->verified = ok;
    printf("%s: %" PRIu64 " events published, %" PRIu64
           " deliveries expected, %" PRIu64 " received; lost %" PRIu64
           ", reordered or repeated %" PRIu64 "\n",
           FANOUT, tot.ok, ft.expected, ft.deliveries, ft.lost, ft.reordered);
    if (ft.unmatched > 0)
        printf("note: %" PRIu64 " deliveries had no known publish time and "
               "no latency sample\n",
               ft.unmatched);
    if (ft.presence > 0)
        printf("note: the subscribers were also sent %" PRIu64
               " presence messages (other subscribers joining or leaving), not "
               "counted as deliveries\n",
               ft.presence);
    if (ok)
        printf("verify: OK (every subscriber got every event of its actor "
               "once, in seq order; actors hold the %" PRIu64
               " acknowledged publishes)\n",
               tot.ok);
    else
        printf("verify: FAIL [%s]\n", FANOUT);
    wb_note_limits(FANOUT, &pub.s0, &pub.s1, tot.errs[-HF_ERATELIMIT],
                   ft.deliveries + tot.ok + tot.errors);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    if (!sjoined) {
        atomic_store(&fr.stop, 1);
        for (int i = 0; i < sstarted; i++)
            pthread_join(sw[i]->thr, NULL);
    }
    wb_ctotal_free(&tot);
    free(ft.lat);
    free(ff.vals);
    wb_free_callers(cl, 1);
    for (int i = 0; sw && i < nthreads; i++)
        subber_free(sw[i]);
    free(sw);
    wb_sm_free(fr.sm, nactors);
    free(fr.final);
    free(names);
    return rv;
}

/* --peer: run the workload against another system instead (nats:
 * bench/nats.c). Set by the flag parser and read by run_peer, both on
 * the main thread. */
static const char *fan_peer;

int hf_bench_nats_fanout(const struct wopts *o, const struct target *t,
                         int durability, struct hf_bench_result *res);

static int
run_peer(const struct wopts *o, const struct target *t, int durability,
         struct hf_bench_result *res)
{
    if (fan_peer == NULL)
        return run_fanout(o, t, durability, res);
    memset(res, 0, sizeof(*res));
    if (strcmp(fan_peer, "nats") == 0)
        return hf_bench_nats_fanout(o, t, durability, res);
    fprintf(stderr, "holdfast-bench %s: --peer wants nats, not '%s'\n", FANOUT,
            fan_peer);
    return HF_BENCH_USAGE;
}

static void
fanout_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench fanout [flags]\n"
          "\n"
          "S subscriber connections, spread over T threads that each poll() "
          "their sockets,\n"
          "subscribe to A fresh actors counter/fan<i>.<tag> (subscriber i "
          "watches actor\n"
          "i mod A). Once all hold their subscription, P publisher "
          "connections (one\n"
          "thread) call incr {\"emit\":true} on the actors, R calls/s in "
          "all, or as fast\n"
          "as a window of W calls per publisher allows. Each incr emits one "
          "event, which\n"
          "the server delivers to every subscriber of that actor.\n"
          "\n"
          "deliv/s counts events received by all subscribers together per "
          "second, from\n"
          "the first publish to the last delivery. Latency runs from the "
          "publisher's\n"
          "write of a call to a subscriber's read of its event (matched by "
          "seq, which is\n"
          "the value incr returns on a fresh counter).\n"
          "\n"
          "Afterwards: every subscriber must have received every event of "
          "its actor,\n"
          "once, in seq order, up to what the actor holds (read through a "
          "fresh\n"
          "connection), and the actors must hold exactly the acknowledged "
          "publishes.\n"
          "Lost and reordered events are counted and shown; either is FAIL, "
          "exit 1.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(
        out, f, n,
        "A subscriber with more than --outbuf-max queued is closed by "
        "the server (1013);\nthat is reported, and it fails the "
        "run.\n"
        "\n--peer nats --url ws://HOST:PORT runs the same workload against a "
        "nats-server\nwebsocket listener (subjects for actors, NATS text "
        "protocol; see bench/nats.c).\n");
}

int
hf_bench_fanout(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = FANOUT, .usage = fanout_usage, .run = run_peer};
    struct wopts o = {.subscribers = FAN_SUBS,
                      .publishers = FAN_PUBS,
                      .actors = 1,
                      .window = FAN_WINDOW,
                      .threads = wb_ncores(),
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "subscribers",
         .metavar = "S",
         .type = HF_BF_INT,
         .dst = &o.subscribers,
         .min = 1,
         .max = MAX_CONNS,
         .help = "subscriber connections (default 1000)"},
        {.name = "publishers",
         .metavar = "P",
         .type = HF_BF_INT,
         .dst = &o.publishers,
         .min = 1,
         .max = 10000,
         .help = "publisher connections (default 2)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "publishes per second, all publishers together "
                 "(default 0: as fast as the window allows)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "publishes in flight per publisher (default 32)"},
        {.name = "actors",
         .metavar = "A",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_FAN_ACTOR,
         .help = "actors published to (default 1)"},
        {.name = "peer",
         .metavar = "NAME",
         .type = HF_BF_STR,
         .dst = &fan_peer,
         .help = "nats: the same workload against nats-server instead"},
    };
    size_t n = 6;

    wb_span_flags(f, &n, &o, "subscriber threads (default: one per core)",
                  "make N publishes in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
