/*
 * natsload.c - the load of holdfast-bench fanout --peer nats (see nats.c
 * for the workload and the verdict): subscriber threads, each reading its
 * share of the subscriber connections, and the one publisher thread
 * keeping --window PUBs per connection not yet covered by a PONG.
 *
 * Design notes
 * ------------
 * A subscriber sends CONNECT, SUB and PING in one frame; its PONG means
 * the subscription is in place. A publisher ends every frame of PUBs with
 * a PING, and remembers in a ring how many PUBs each PING covers: its
 * PONG moves them to "published". The payload is "<publisher> <seq>
 * <ns>"; a subscriber checks the seq per publisher (lost, reordered) and
 * takes the latency from the timestamp.
 *
 * Threads: an nsubber or npubber is touched only by its own thread from
 * pthread_create to pthread_join, then read by the main thread; they share
 * struct nrun only (nats.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/nats.h"
#include "core/env.h"
#include "core/err.h"

/* ------------------------------------------------------------------ */
/* subscribers                                                         */

static void
on_sub_msg(void *arg, struct nconn *k, const struct nmsg *m)
{
    struct nsubber *w = arg;
    struct nsub *s = (struct nsub *)k;
    const struct name *sj = &w->r->subj[s->subj];
    const char *wd[4];
    size_t wl[4];
    uint64_t p, seq, ts, *last;

    switch (m->op) {
    case N_PONG:
        if (s->state != S_ASKED) {
            w->stray++;
            return;
        }
        s->state = S_ON;
        atomic_fetch_add_explicit(&w->r->subscribed, 1, memory_order_relaxed);
        return;
    case N_ERR: {
        int e = wb_nats_err(m->data, m->len);
        w->errs[-e]++;
        w->sub_err = e;
        return;
    }
    case N_MSG:
        break;
    default:
        return; /* INFO, +OK */
    }
    if (s->state != S_ON || m->sid != 1 || m->subj_len != sj->len ||
        memcmp(m->subj, sj->s, sj->len) != 0) {
        w->stray++;
        return;
    }
    if (wb_nats_split(m->data, m->len, wd, wl, 3) != 3 ||
        wb_nats_dec(wd[0], wl[0], &p) != 0 || p >= w->r->npubs ||
        wb_nats_dec(wd[1], wl[1], &seq) != 0 ||
        wb_nats_dec(wd[2], wl[2], &ts) != 0) {
        w->bad_payload++;
        return;
    }
    w->deliveries++;
    s->got++;
    last = &s->last[p];
    if (seq == *last + 1) {
        *last = seq;
    } else if (seq > *last + 1) {
        if (s->gaps == 0 && s->late == 0)
            s->bad_pub = (uint32_t)p, s->bad_want = *last + 1, s->bad_got = seq;
        s->gaps += seq - *last - 1;
        *last = seq;
    } else {
        if (s->gaps == 0 && s->late == 0)
            s->bad_pub = (uint32_t)p, s->bad_want = *last + 1, s->bad_got = seq;
        s->late++;
        return;
    }
    hf_bench_lat_add(&w->lat, w->rd.now > ts ? w->rd.now - ts : 0);
}

static void
sub_drain(struct nsubber *w, struct nsub *s)
{
    if (wb_nats_drain(&s->k, &w->rd, on_sub_msg, w) != 0)
        s->state = S_DEAD;
    w->last_ns = w->rd.now;
}

/* One poll() over the live subscribers and a drain of those readable.
 * Returns how many are live. */
static uint32_t
sub_pass(struct nsubber *w, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < w->n; i++) {
        struct nsub *s = &w->subs[i];
        if (s->state == S_DEAD || s->k.ws == NULL)
            continue;
        w->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(s->k.ws), .events = POLLIN};
        w->pidx[np++] = i;
    }
    if (np == 0)
        return 0;
    if (poll(w->pfds, np, timeout) < 0 && errno != EINTR)
        return np;
    for (uint32_t j = 0; j < np; j++) {
        struct nsub *s = &w->subs[w->pidx[j]];
        if (w->pfds[j].revents != 0 || hf_ws_pending(s->k.ws))
            sub_drain(w, s);
    }
    return np;
}

/* Whether every live subscriber has every PUB sent to its subject. */
static int
caught_up(const struct nsubber *w)
{
    const struct nrun *r = w->r;

    for (uint32_t i = 0; i < w->n; i++) {
        const struct nsub *s = &w->subs[i];
        if (s->state != S_ON)
            continue;
        for (uint32_t p = 0; p < r->npubs; p++)
            if (s->last[p] < r->final[(size_t)p * r->nsubj + s->subj])
                return 0;
    }
    return 1;
}

void *
wb_nsubber_main(void *arg)
{
    struct nsubber *w = arg;
    struct nrun *r = w->r;
    uint64_t dl, serviced = hf_mono_ns();

    /* Connect, CONNECT + SUB + PING in one frame; the PONG confirms the
     * subscription. Those open are read now and then while the rest
     * connect, so that none leaves a server PING unanswered for long. */
    for (uint32_t i = 0; i < w->n; i++) {
        struct nsub *s = &w->subs[i];
        char tmp[CONN_CAP + NAME_CAP + 32];
        int len;
        uint64_t now;
        if (atomic_load(&r->failed) || atomic_load(&r->stop))
            goto out;
        if (wb_nats_dial(r->t, w->first + i, r->nsubs, &s->k.ws) != 0) {
            atomic_store(&r->failed, 1);
            goto out;
        }
        atomic_fetch_add(&r->connected, 1);
        len = snprintf(tmp, sizeof(tmp), "%sSUB %s 1\r\nPING\r\n", r->connect,
                       r->subj[s->subj].s);
        if (wb_nats_send(&s->k, tmp, (size_t)len) != 0)
            s->state = S_DEAD;
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
    for (;;) {
        if (atomic_load(&r->stop))
            break;
        if (atomic_load(&r->final_known) && caught_up(w))
            break;
        if (sub_pass(w, POLL_MS) == 0)
            break;
        atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                                  memory_order_relaxed);
        w->reported = w->deliveries;
    }
    atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                              memory_order_relaxed);
    w->reported = w->deliveries;
out:
    wb_nats_close_all(&w->subs[0].k, sizeof(struct nsub), w->n, w->pfds,
                      w->pidx);
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

void
wb_nsubber_free(struct nsubber *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; w->subs && i < w->n; i++)
        wb_nats_free(&w->subs[i].k);
    free(w->subs);
    free(w->lastv);
    free(w->pfds);
    free(w->pidx);
    hf_buf_free(&w->rd.rx);
    free(w);
}

struct nsubber *
wb_nsubber_new(struct nrun *r, uint32_t first, uint32_t n)
{
    struct nsubber *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->r = r;
    w->first = first;
    w->n = n;
    w->subs = calloc(n, sizeof(*w->subs));
    w->lastv = calloc((size_t)n * r->npubs, sizeof(*w->lastv));
    w->pfds = calloc(n, sizeof(*w->pfds));
    w->pidx = calloc(n, sizeof(*w->pidx));
    if (!w->subs || !w->lastv || !w->pfds || !w->pidx) {
        wb_nsubber_free(w);
        return NULL;
    }
    /* Subscriber i is on subject i mod A, as fanout.c spreads them. */
    for (uint32_t i = 0; i < n; i++) {
        w->subs[i].subj = (first + i) % r->nsubj;
        w->subs[i].last = &w->lastv[(size_t)i * r->npubs];
    }
    return w;
}

/* ------------------------------------------------------------------ */
/* publishers                                                          */

static void
on_pub_msg(void *arg, struct nconn *k, const struct nmsg *m)
{
    struct npubber *c = arg;
    struct npub *pb = (struct npub *)k;

    if (m->op == N_ERR) {
        int e = wb_nats_err(m->data, m->len);
        c->errs[-e]++;
        c->errors++;
        return;
    }
    if (m->op != N_PONG) {
        if (m->op == N_MSG)
            c->stray++; /* a publisher subscribes to nothing */
        return;
    }
    if (pb->rn == 0) {
        c->stray++;
        return;
    }
    {
        uint64_t upto = pb->ring[pb->rhead];
        pb->rhead = (pb->rhead + 1) % c->ring_cap;
        pb->rn--;
        if (upto > pb->acked) {
            c->acked += upto - pb->acked;
            atomic_fetch_add_explicit(&c->r->published, upto - pb->acked,
                                      memory_order_relaxed);
            pb->acked = upto;
        }
        c->last_pong = c->rd.now;
    }
}

static void
ring_push(struct npubber *c, struct npub *pb)
{
    pb->ring[(pb->rhead + pb->rn) % c->ring_cap] = pb->sent;
    pb->rn++;
}

static uint64_t
claim(struct npubber *c, uint64_t want)
{
    const struct nrun *r = c->r;

    if (want == 0 || atomic_load_explicit(&c->r->pstop, memory_order_relaxed))
        return 0;
    if (r->total > 0 && r->total - c->claimed < want)
        want = r->total - c->claimed;
    c->claimed += want;
    return want;
}

static int
exhausted(const struct npubber *c)
{
    return atomic_load_explicit(&c->r->pstop, memory_order_relaxed) ||
           (c->r->total > 0 && c->claimed >= c->r->total);
}

/* Sends n PUBs from publisher p, in frames of at most FRAME_MSGS
 * messages (well under nats-server's limits: a PUB line is under PUB_CAP
 * bytes), each ending with the PING that will cover it. */
static int
publish(struct npubber *c, uint32_t p, uint64_t n)
{
    struct nrun *r = c->r;
    struct npub *pb = &c->pubs[p];

    while (n > 0) {
        uint64_t now = hf_mono_ns(), m = 0;
        c->frame.len = 0;
        while (m < n && m < FRAME_MSGS) {
            char tmp[PUB_CAP], pl[64];
            uint32_t a =
                r->nsubj == 1 ? 0 : (uint32_t)(wb_rnd(&c->rng) % r->nsubj);
            int pn = snprintf(pl, sizeof(pl), "%u %" PRIu64 " %" PRIu64, p,
                              ++pb->seq[a], now);
            int tn = snprintf(tmp, sizeof(tmp), "PUB %s %d\r\n%s\r\n",
                              r->subj[a].s, pn, pl);
            if (hf_buf_append(&c->frame, tmp, (size_t)tn) != 0)
                return HF_EINTERNAL;
            m++;
        }
        if (hf_buf_append(&c->frame, "PING\r\n", 6) != 0)
            return HF_EINTERNAL;
        pb->sent += m;
        c->sent += m;
        ring_push(c, pb);
        if (wb_nats_send(&pb->k, c->frame.data, c->frame.len) != 0)
            return pb->k.err;
        n -= m;
    }
    return 0;
}

static void
pub_dead(struct npubber *c, struct npub *pb, int err)
{
    if (!pb->k.dead)
        wb_nats_dead(&pb->k, err, 0);
    c->dead++;
}

static void
pub_drain(struct npubber *c, struct npub *pb)
{
    if (wb_nats_drain(&pb->k, &c->rd, on_pub_msg, c) != 0)
        c->dead++;
}

/* One poll() over the live publishers (the first upto), draining those
 * readable. Returns how many are live. */
static uint32_t
pub_poll(struct npubber *c, uint32_t upto, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < upto; i++) {
        if (c->pubs[i].k.dead)
            continue;
        c->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(c->pubs[i].k.ws), .events = POLLIN};
        c->pidx[np++] = i;
    }
    if (np == 0)
        return 0;
    if (poll(c->pfds, np, timeout) < 0 && errno != EINTR)
        return np;
    for (uint32_t j = 0; j < np; j++) {
        struct npub *pb = &c->pubs[c->pidx[j]];
        if (c->pfds[j].revents != 0 || hf_ws_pending(pb->k.ws))
            pub_drain(c, pb);
    }
    return np;
}

static void
pub_loop(struct npubber *c)
{
    struct nrun *r = c->r;
    uint64_t last = hf_mono_ns();

    for (;;) {
        uint64_t before = c->acked, inflight = 0, now;
        int timeout = POLL_MS;

        for (uint32_t i = 0; i < r->npubs; i++) {
            struct npub *pb = &c->pubs[i];
            uint64_t room, frames, want;
            int rv;
            if (pb->k.dead)
                continue;
            /* The window, and room in the ring for the PINGs: one per
             * FRAME_MSGS PUBs at most. */
            room = r->window - (pb->sent - pb->acked);
            frames = c->ring_cap - pb->rn;
            if (room > frames * FRAME_MSGS)
                room = frames * FRAME_MSGS;
            want = claim(c, wb_pace(r->rate, c->t0, c->sent, room, &timeout));
            if (want > 0 && (rv = publish(c, i, want)) != 0)
                pub_dead(c, pb, rv);
            if (!pb->k.dead)
                inflight += pb->rn;
        }
        if (inflight == 0 && exhausted(c))
            break;
        if (pub_poll(c, r->npubs, timeout) == 0)
            break;
        now = hf_mono_ns();
        if (c->acked > before || inflight == 0) {
            last = now; /* progress, or paced: not a stall */
        } else if (now - last > (uint64_t)STALL_S * 1000000000u) {
            c->stalled = 1;
            break;
        }
    }
}

void *
wb_npubber_main(void *arg)
{
    struct npubber *c = arg;
    struct nrun *r = c->r;
    uint64_t dl;

    for (uint32_t i = 0; i < r->npubs; i++) {
        struct npub *pb = &c->pubs[i];
        char tmp[CONN_CAP + 16];
        int len;
        if (atomic_load(&r->pstop) || atomic_load(&r->pfailed))
            goto out;
        if (wb_nats_dial(r->t, r->nsubs + i, r->nsubs + r->npubs, &pb->k.ws) !=
            0) {
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        len = snprintf(tmp, sizeof(tmp), "%sPING\r\n", r->connect);
        ring_push(c, pb); /* a PING covering no PUB: the handshake */
        if (wb_nats_send(&pb->k, tmp, (size_t)len) != 0) {
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        pub_poll(c, i + 1, 0);
    }
    /* Ready when every CONNECT has its PONG: the server took it. */
    dl = hf_mono_ns() + (uint64_t)CONNECT_MS * 1000000u;
    for (;;) {
        uint32_t waiting = 0, dead = 0;
        for (uint32_t i = 0; i < r->npubs; i++) {
            waiting += c->pubs[i].rn > 0;
            dead += c->pubs[i].k.dead;
        }
        if (waiting == 0)
            break;
        if (dead > 0 || c->errors > 0 || hf_mono_ns() > dl ||
            atomic_load(&r->pstop)) {
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        pub_poll(c, r->npubs, POLL_MS);
    }
    atomic_store(&r->pready, 1);
    while (!atomic_load(&r->go)) {
        if (atomic_load(&r->pstop))
            goto out;
        pub_poll(c, r->npubs, 1);
    }
    c->t0 = c->last_pong = hf_mono_ns();
    pub_loop(c);
out:
    wb_nats_close_all(&c->pubs[0].k, sizeof(struct npub), r->npubs, c->pfds,
                      c->pidx);
    atomic_store(&r->pfinished, 1);
    return NULL;
}

void
wb_npubber_free(struct npubber *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->pubs && i < c->r->npubs; i++) {
        wb_nats_free(&c->pubs[i].k);
        free(c->pubs[i].ring);
        free(c->pubs[i].seq);
    }
    free(c->pubs);
    free(c->pfds);
    free(c->pidx);
    hf_buf_free(&c->rd.rx);
    hf_buf_free(&c->frame);
    free(c);
}

struct npubber *
wb_npubber_new(struct nrun *r)
{
    struct npubber *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->r = r;
    c->rng = hf_mono_ns() | 1;
    c->ring_cap = r->window < RING_MAX ? r->window + 1 : RING_MAX;
    c->pubs = calloc(r->npubs, sizeof(*c->pubs));
    c->pfds = calloc(r->npubs, sizeof(*c->pfds));
    c->pidx = calloc(r->npubs, sizeof(*c->pidx));
    if (!c->pubs || !c->pfds || !c->pidx)
        goto fail;
    for (uint32_t i = 0; i < r->npubs; i++) {
        c->pubs[i].ring = calloc(c->ring_cap, sizeof(uint64_t));
        c->pubs[i].seq = calloc(r->nsubj, sizeof(uint64_t));
        if (!c->pubs[i].ring || !c->pubs[i].seq)
            goto fail;
    }
    return c;
fail:
    wb_npubber_free(c);
    return NULL;
}
