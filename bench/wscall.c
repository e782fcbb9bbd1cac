/*
 * wscall.c - the callers of holdfast-bench's scenarios against a running
 * server (see ws.h): threads whose connections keep a window of calls in
 * flight (counter.incr, or a scenario's own workload, struct wload), and
 * the map from (actor, seq) to send time that fan-out latency needs.
 *
 * Design notes
 * ------------
 * Threads. Each caller thread owns a set of connections and multiplexes
 * them with poll(); a connection is touched by its thread only. What the
 * threads share is the run (struct crun): plain fields written before they
 * start, atomics for the rest. A struct caller is its thread's from
 * pthread_create to pthread_join, then read by the main thread.
 *
 * Connecting many. Handshakes are blocking, one at a time per thread, so
 * thousands take a while: the connections already open are read every
 * SERVICE_NS meanwhile, or the server would drop them for not answering
 * its heartbeat. Each thread closes its connections together
 * (wb_close_all).
 *
 * The window. Slot s of a connection's window holds one call in flight;
 * its id is (seq << SLOT_BITS) | s with seq counting the connection's
 * calls from 1, so a reply finds its slot in O(1) and a reply that does
 * not match the call in flight there (unknown id, a second reply) is
 * caught. Whenever replies come back the free slots are refilled with ONE
 * frame ('\n'-joined JSON or concatenated msgpack, at most FRAME_MSGS
 * messages / FRAME_BYTES so the server's frame limits hold). Latency is
 * from writing that frame to reading the reply.
 *
 * Fan-out latency. Subscribers see "seq"; publishers see the value their
 * incr returned, which equals the seq on a fresh counter where every incr
 * emits. The publisher thread records, per actor and seq, when the call
 * was sent (struct seqmap: chunks allocated by that one thread, published
 * with release stores). A subscriber whose event comes in before the
 * publisher has read the matching reply keeps (actor, seq, receipt time)
 * and settles it a little later (fanout.c); latency samples are therefore
 * exact whichever of the two the server writes first.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ws.h"
#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "client/wsclient.h"

/* ------------------------------------------------------------------ */
/* fan-out latency: when each publish was sent, by actor and seq        */

static void
sm_set(struct seqmap *sm, uint64_t seq, uint64_t ns)
{
    uint64_t c = seq >> SM_BITS;
    atomic_uint_least64_t *ch;

    if (c >= SM_CHUNKS)
        return;
    ch = atomic_load_explicit(&sm->chunk[c], memory_order_relaxed);
    if (ch == NULL) {
        if ((ch = calloc((size_t)1 << SM_BITS, sizeof(*ch))) == NULL)
            return;
        atomic_store_explicit(&sm->chunk[c], ch, memory_order_release);
    }
    atomic_store_explicit(&ch[seq & ((1u << SM_BITS) - 1)], ns,
                          memory_order_relaxed);
}

uint64_t
wb_sm_get(struct seqmap *sm, uint64_t seq)
{
    uint64_t c = seq >> SM_BITS;
    atomic_uint_least64_t *ch;

    if (c >= SM_CHUNKS)
        return 0;
    ch = atomic_load_explicit(&sm->chunk[c], memory_order_acquire);
    if (ch == NULL)
        return 0;
    return atomic_load_explicit(&ch[seq & ((1u << SM_BITS) - 1)],
                                memory_order_relaxed);
}

void
wb_sm_free(struct seqmap *sm, uint32_t n)
{
    for (uint32_t a = 0; sm && a < n; a++)
        for (int c = 0; c < SM_CHUNKS; c++)
            free(atomic_load(&sm[a].chunk[c]));
    free(sm);
}

/* ------------------------------------------------------------------ */
/* callers: connections keeping a window of counter.incr in flight     */

static uint32_t
claim(struct crun *r, uint32_t want)
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

static int
exhausted(struct crun *r)
{
    return atomic_load_explicit(&r->stop, memory_order_relaxed) ||
           (r->total > 0 && atomic_load_explicit(
                                &r->claimed, memory_order_relaxed) >= r->total);
}

static void
conn_dead(struct caller *c, struct cconn *k, int err, int code)
{
    if (k->dead)
        return;
    k->dead = 1;
    k->err = err;
    k->close_code = code;
    c->lost_calls += c->r->window - k->nfree;
    c->dead++;
}

/* Sends the slots just taken, sl[0..n), as one frame, stamping them. */
static int
flush_calls(struct caller *c, struct cconn *k, const uint32_t *sl, uint32_t n)
{
    uint64_t now = hf_mono_ns();
    int rv;

    for (uint32_t i = 0; i < n; i++)
        k->sent_ns[sl[i]] = now;
    rv = wb_send_frame(k->ws, c->r->t->msgpack, &c->frame);
    c->frame.len = 0;
    return rv;
}

/* Takes n free slots (n <= nfree) and sends their calls. */
static int
submit(struct caller *c, struct cconn *k, uint32_t n)
{
    struct crun *r = c->r;
    uint32_t sl[FRAME_MSGS], m = 0;
    int rv;

    c->frame.len = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = k->freel[--k->nfree], a;
        uint64_t id = (++k->seq << SLOT_BITS) | s;
        if (r->wl != NULL) {
            a = r->wl->put(c, k, s, id);
        } else {
            a = r->nactors == 1 ? 0 : (uint32_t)(wb_rnd(&c->rng) % r->nactors);
            wb_put_msg(&c->frame, r->t->msgpack, "call", id, &r->names[a],
                       "incr", r->emit);
        }
        k->sent_id[s] = id;
        k->sent_actor[s] = a;
        sl[m++] = s;
        if (m == FRAME_MSGS || c->frame.len >= FRAME_BYTES || i + 1 == n) {
            if ((rv = flush_calls(c, k, sl, m)) != 0)
                return rv;
            m = 0;
        }
    }
    c->sent += n;
    return 0;
}

static void
on_reply(void *arg, const struct smsg *m)
{
    struct caller *c = arg;
    struct cconn *k = c->cur;
    struct crun *r = c->r;
    uint32_t s = (uint32_t)(m->id & (MAX_WINDOW - 1));

    if (m->op != M_REPLY)
        return; /* hello, pong */
    if (!m->has_id || m->id == 0 || s >= r->window || k->sent_id[s] != m->id) {
        c->stray++;
        return;
    }
    hf_bench_lat_add(&c->lat, c->rd.now - k->sent_ns[s]);
    if (r->wl != NULL) {
        switch (r->wl->reply(c, k, s, m)) {
        case WR_OK:
            c->seen[k->sent_actor[s]].acks++;
            c->ok++;
            break;
        case WR_REFUSED:
            c->refused++;
            break;
        default: {
            int e = m->ok                                ? HF_EBADREQ
                    : m->err < 0 && m->err > -HF_ECOUNT_ ? m->err
                                                         : HF_EINTERNAL;
            c->errors++;
            c->errs[-e]++;
        }
        }
    } else if (m->ok) {
        struct seen *x = &c->seen[k->sent_actor[s]];
        if (!m->has_value || m->value < 1) {
            c->bad_value++;
        } else {
            uint64_t v = (uint64_t)m->value;
            x->acks++;
            x->sum += v;
            if (v > x->max)
                x->max = v;
            c->ok++;
            if (r->sm)
                sm_set(&r->sm[k->sent_actor[s]], v, k->sent_ns[s]);
        }
    } else {
        int e = m->err < 0 && m->err > -HF_ECOUNT_ ? m->err : HF_EINTERNAL;
        c->errors++;
        c->errs[-e]++;
    }
    k->sent_id[s] = 0;
    k->freel[k->nfree++] = s;
}

static void
caller_drain(struct caller *c, struct cconn *k)
{
    int err, code;

    c->cur = k;
    if (wb_drain(&c->rd, k->ws, on_reply, c, &err, &code) != 0)
        conn_dead(c, k, err, code);
}

/* Replies read so far, whatever they said. */
static uint64_t
answered(const struct caller *c)
{
    return c->ok + c->refused + c->errors + c->bad_value + c->stray;
}

static void
caller_loop(struct caller *c)
{
    struct crun *r = c->r;
    uint64_t last = hf_mono_ns();

    for (;;) {
        uint64_t before = answered(c), now;
        uint32_t inflight = 0, np = 0;
        int timeout = POLL_MS, n;

        for (uint32_t i = 0; i < c->n; i++) {
            struct cconn *k = &c->conns[i];
            uint32_t want;
            if (k->dead)
                continue;
            want = claim(r, (uint32_t)wb_pace(r->rate, c->t0, c->sent, k->nfree,
                                              &timeout));
            if (want > 0 && submit(c, k, want) != 0)
                conn_dead(c, k, HF_EUNAVAIL, 0);
            if (k->dead)
                continue;
            inflight += r->window - k->nfree;
            c->pfds[np] =
                (struct pollfd){.fd = hf_ws_fd(k->ws), .events = POLLIN};
            c->pidx[np++] = i;
        }
        if (np == 0 || (inflight == 0 && exhausted(r)))
            break;
        n = poll(c->pfds, np, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (uint32_t j = 0; j < np; j++) {
            struct cconn *k = &c->conns[c->pidx[j]];
            if (c->pfds[j].revents != 0 || hf_ws_pending(k->ws))
                caller_drain(c, k);
        }
        now = hf_mono_ns();
        if (answered(c) > before) {
            atomic_fetch_add_explicit(&r->done, answered(c) - before,
                                      memory_order_relaxed);
            last = now;
        } else if (inflight == 0) {
            last = now; /* paced, or waiting to stop: not a stall */
        } else if (now - last > (uint64_t)STALL_S * 1000000000u) {
            c->stalled = 1;
            atomic_store(&r->stop, 1);
            break;
        }
    }
}

/* Closes the thread's connections, all together (wb_close_all). */
static void
caller_close(struct caller *c)
{
    hf_ws **v = calloc(c->n ? c->n : 1, sizeof(*v));

    if (v == NULL)
        return; /* caller_free closes them one by one */
    for (uint32_t i = 0; i < c->n; i++) {
        v[i] = c->conns[i].ws;
        c->conns[i].ws = NULL;
    }
    wb_close_all(v, c->n, c->pfds, c->pidx);
    free(v);
}

/* Reads whatever the first upto connections have (hello, pings) while
 * there is nothing to send yet, so that none goes unread for long: the
 * server drops connections that do not answer its heartbeat. */
static void
caller_idle(struct caller *c, uint32_t upto, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < upto; i++) {
        if (c->conns[i].dead)
            continue;
        c->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(c->conns[i].ws), .events = POLLIN};
        c->pidx[np++] = i;
    }
    if (np == 0 || poll(c->pfds, np, timeout) <= 0)
        return;
    for (uint32_t j = 0; j < np; j++)
        if (c->pfds[j].revents != 0)
            caller_drain(c, &c->conns[c->pidx[j]]);
}

static void *
caller_main(void *arg)
{
    struct caller *c = arg;
    struct crun *r = c->r;
    uint64_t serviced = hf_mono_ns(), now;

    for (uint32_t i = 0; i < c->n; i++) {
        if (atomic_load(&r->stop) || atomic_load(&r->failed))
            goto out;
        if (wb_dial(r->cmd, r->t, c->first + i, r->nconns, &c->conns[i].ws) !=
            0) {
            atomic_store(&r->failed, 1);
            goto out;
        }
        atomic_fetch_add(&r->connected, 1);
        if ((now = hf_mono_ns()) - serviced > SERVICE_NS) {
            caller_idle(c, i + 1, 0);
            serviced = now;
        }
    }
    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load(&r->go)) {
        if (atomic_load(&r->stop))
            goto out;
        caller_idle(c, c->n, 1);
    }
    c->t0 = hf_mono_ns();
    caller_loop(c);
out:
    caller_close(c);
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
caller_free(struct caller *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->conns && i < c->n; i++) {
        struct cconn *k = &c->conns[i];
        hf_ws_close(k->ws);
        free(k->sent_id);
        free(k->sent_ns);
        free(k->sent_actor);
        free(k->sent_aux);
        free(k->freel);
    }
    free(c->conns);
    free(c->pfds);
    free(c->pidx);
    free(c->seen);
    hf_buf_free(&c->frame);
    wb_reader_fini(&c->rd);
    free(c);
}

static struct caller *
caller_new(struct crun *r, uint32_t first, uint32_t n, int idx)
{
    struct caller *c = calloc(1, sizeof(*c));
    uint32_t w = r->window;

    if (c == NULL)
        return NULL;
    wb_reader_init(&c->rd);
    c->r = r;
    c->first = first;
    c->n = n;
    c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(idx + 1) ^ hf_mono_ns();
    if (c->rng == 0)
        c->rng = 1;
    c->conns = calloc(n, sizeof(*c->conns));
    c->pfds = calloc(n, sizeof(*c->pfds));
    c->pidx = calloc(n, sizeof(*c->pidx));
    c->seen = calloc(r->nactors, sizeof(*c->seen));
    if (!c->conns || !c->pfds || !c->pidx || !c->seen)
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        struct cconn *k = &c->conns[i];
        k->sent_id = calloc(w, sizeof(*k->sent_id));
        k->sent_ns = calloc(w, sizeof(*k->sent_ns));
        k->idx = first + i;
        k->sent_actor = calloc(w, sizeof(*k->sent_actor));
        k->sent_aux = calloc(w, sizeof(*k->sent_aux));
        k->freel = calloc(w, sizeof(*k->freel));
        if (!k->sent_id || !k->sent_ns || !k->sent_actor || !k->sent_aux ||
            !k->freel)
            goto fail;
        for (uint32_t s = 0; s < w; s++)
            k->freel[s] = w - 1 - s;
        k->nfree = w;
    }
    return c;
fail:
    caller_free(c);
    return NULL;
}

/* Builds nthreads callers over r->nconns connections. */
struct caller **
wb_callers_new(struct crun *r, int nthreads)
{
    struct caller **cl = calloc((size_t)nthreads, sizeof(*cl));
    uint32_t first = 0;

    if (cl == NULL)
        return NULL;
    for (int i = 0; i < nthreads; i++) {
        uint32_t n = r->nconns / (uint32_t)nthreads +
                     ((uint32_t)i < r->nconns % (uint32_t)nthreads);
        if ((cl[i] = caller_new(r, first, n, i)) == NULL) {
            for (int j = 0; j < i; j++)
                caller_free(cl[j]);
            free(cl);
            return NULL;
        }
        first += n;
    }
    return cl;
}

int
wb_ctotal_merge(struct ctotal *t, struct caller **cl, int n, uint32_t nactors)
{
    memset(t, 0, sizeof(*t));
    t->seen = calloc(nactors, sizeof(*t->seen));
    t->lat = calloc(1, sizeof(*t->lat));
    if (t->seen == NULL || t->lat == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        struct caller *c = cl[i];
        hf_bench_lat_merge(t->lat, &c->lat);
        for (uint32_t a = 0; a < nactors; a++) {
            t->seen[a].acks += c->seen[a].acks;
            t->seen[a].sum += c->seen[a].sum;
            if (c->seen[a].max > t->seen[a].max)
                t->seen[a].max = c->seen[a].max;
        }
        t->ok += c->ok;
        t->refused += c->refused;
        t->errors += c->errors;
        for (int k = 0; k < HF_ECOUNT_; k++)
            t->errs[k] += c->errs[k];
        t->stray += c->stray;
        t->bad_value += c->bad_value;
        t->lost_calls += c->lost_calls;
        t->malformed += c->rd.sc.malformed;
        t->dead += c->dead;
        t->stalled |= c->stalled;
    }
    return 0;
}

void
wb_ctotal_free(struct ctotal *t)
{
    free(t->seen);
    free(t->lat);
}

/* Says which caller connections died and how; returns their number. */
uint32_t
wb_report_dead(const char *who, struct caller **cl, int n)
{
    uint32_t dead = 0;

    for (int i = 0; i < n; i++)
        for (uint32_t j = 0; j < cl[i]->n; j++) {
            struct cconn *k = &cl[i]->conns[j];
            if (!k->dead)
                continue;
            if (dead++ < SHOW) {
                if (k->close_code)
                    printf("verify: FAIL (%s connection %u closed by the "
                           "server with %d%s)\n",
                           who, cl[i]->first + j, k->close_code,
                           k->close_code == 1013
                               ? ": slow consumer (--outbuf-max)"
                           : k->close_code == 1008 ? ": policy"
                           : k->close_code == 1009 ? ": frame too large"
                                                   : "");
                else
                    printf("verify: FAIL (%s connection %u lost: %s)\n", who,
                           cl[i]->first + j, hf_err_name(k->err));
            }
        }
    return dead;
}

/* ------------------------------------------------------------------ */
/* running callers                                                     */

int
wb_start_callers(struct caller **cl, int n, struct crun *r)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&cl[i]->thr, NULL, caller_main, cl[i]) != 0) {
            fprintf(stderr, "holdfast-bench %s: cannot start a thread\n",
                    r->cmd);
            atomic_store(&r->stop, 1);
            return i;
        }
    return n;
}

/* Waits until every started caller has connected: 1; or one failed, or
 * Ctrl-C: 0. label prefixes the progress line. */
int
wb_await_callers(struct crun *r, int started, const char *label)
{
    uint64_t next = hf_mono_ns() + 1000000000u;

    while (atomic_load(&r->ready) < started) {
        if (atomic_load(&r->failed) || wb_interrupted ||
            atomic_load(&r->finished) > 0)
            return 0;
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u", label,
                              (uint64_t)atomic_load(&r->connected), r->nconns);
            next += 1000000000u;
        }
    }
    return 1;
}

void
wb_join_callers(struct caller **cl, int started)
{
    for (int i = 0; i < started; i++)
        pthread_join(cl[i]->thr, NULL);
}

void
wb_free_callers(struct caller **cl, int n)
{
    for (int i = 0; cl && i < n; i++)
        caller_free(cl[i]);
    free(cl);
}

/* The last reply any caller read, for "first submit to last reply". */
uint64_t
wb_last_reply(struct caller **cl, int n, uint64_t t0)
{
    uint64_t t = t0;
    for (int i = 0; i < n; i++)
        if (cl[i]->rd.now > t)
            t = cl[i]->rd.now;
    return t;
}
