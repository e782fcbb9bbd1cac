/*
 * host.c - the actor host's front door: open and close, hf_host_submit
 * (routing), sinks and the kinds table (replaceable while running: Lua
 * kinds are reloaded on SIGHUP).
 *
 * The host is split by job; the files share core/host_int.h:
 *   host.c    open/close, submit, sinks, kinds
 *   queue.c   messages, and the worker queues they cross threads on
 *   timer.c   the timer thread and its heap of due alarms
 *   table.c   each worker's actor table, LRU, eviction and reset
 *   worker.c  the worker thread: one pass over what was queued
 *   ops.c     processing one message: call, sub, unsub, signal, history,
 *             alarms, built-in methods
 *   gate.c    batches, held output records and the output gate
 *
 * Design notes
 * ------------
 * Ownership. Actor kind/name belongs to worker hash(addr) % W for its whole
 * life and only that thread touches it, so actor state has no locks. Only
 * two things cross threads: messages pushed onto a worker's queue (from
 * hf_host_submit, other workers' outbox deliveries and the timer) and write
 * batches handed back by the store's writer thread. Both go through the
 * worker's mutex, once per batch of messages, never once per message
 * (queue.c).
 *
 * Startup. hf_host_open re-queues the outbox entries not yet delivered and
 * arms the persisted alarms, reading them with the host's own reader (index
 * W) before any worker starts.
 *
 * Lock order: worker mu and the timer's tmu are never held together.
 *
 * Threads: hf_host_submit and the sink functions run on any thread;
 * hf_host_open and hf_host_close once each, from one thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/host_int.h"
#include "core/log.h"
#include "core/metrics.h"

/* ------------------------------------------------------------------ */
/* sinks                                                               */

void
hf_sink_init(hf_sink *s, void (*deliver)(hf_sink *, hf_buf *),
             void (*release)(hf_sink *))
{
    s->deliver = deliver;
    s->release = release;
    atomic_init(&s->refs, 1);
}

void
hf_sink_ref(hf_sink *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void
hf_sink_unref(hf_sink *s)
{
    if (s != NULL &&
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1 &&
        s->release != NULL)
        s->release(s);
}

/* ------------------------------------------------------------------ */
/* kinds                                                               */

const struct hf_kind *
hf__kind_find(hf_host *h, const char *addr, size_t klen)
{
    const struct kindset *ks =
        atomic_load_explicit(&h->kinds, memory_order_acquire);

    /* strncmp stops at the name's NUL, so name[klen] is only read when
     * the name has klen bytes (the address part holds no NUL). */
    for (size_t i = 0; i < ks->n; i++) {
        const char *name = ks->k[i]->name;
        if (name[0] == addr[0] && strncmp(name, addr, klen) == 0 &&
            name[klen] == '\0')
            return ks->k[i];
    }
    return NULL;
}

/* A new kinds table, or NULL when a name is not a valid kind or appears
 * twice. */
static struct kindset *
kindset_new(const struct hf_kind *const *kinds, size_t n)
{
    struct kindset *ks;

    for (size_t i = 0; i < n; i++) {
        const char *name = kinds[i]->name;
        char probe[HF_KIND_MAX + 8];
        /* A kind name is valid when "name/x" is a valid address. */
        if (strlen(name) > HF_KIND_MAX ||
            hf_addr_check(probe, (size_t)snprintf(probe, sizeof(probe),
                                                  "%s/x", name),
                          NULL) != 0)
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(kinds[j]->name, name) == 0)
                return NULL;
    }
    ks = hf_xcalloc(1, sizeof(*ks) + n * sizeof(ks->k[0]));
    ks->n = n;
    if (n > 0)
        memcpy(ks->k, kinds, n * sizeof(ks->k[0]));
    return ks;
}

int
hf_host_set_kinds(hf_host *h, const struct hf_kind *const *kinds, size_t n)
{
    struct kindset *ks = kindset_new(kinds, n);

    if (ks == NULL)
        return HF_EBADREQ;
    ks->retired = atomic_load_explicit(&h->kinds, memory_order_relaxed);
    atomic_store_explicit(&h->kinds, ks, memory_order_release);
    return 0;
}

void
hf_host_clock_changed(hf_host *h)
{
    pthread_mutex_lock(&h->tmu);
    pthread_cond_signal(&h->tcv);
    pthread_mutex_unlock(&h->tmu);
}

int
hf_host_alarms_due(hf_host *h)
{
    int due;

    pthread_mutex_lock(&h->tmu);
    due = h->tposting > 0 || (h->nheap > 0 && h->heap[0]->at <= hf_now_ms());
    pthread_mutex_unlock(&h->tmu);
    return due;
}

static void
kindsets_free(hf_host *h)
{
    struct kindset *ks = atomic_load(&h->kinds);

    while (ks != NULL) {
        struct kindset *next = ks->retired;
        free(ks);
        ks = next;
    }
}

/* ------------------------------------------------------------------ */
/* submit                                                              */

/* Whether the msgpack object that starts with byte c is a map. */
static int
mp_is_map(unsigned char c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* Routing needs only the envelope's header fields: hf_env_read finds them
 * without unpacking anything. The message keeps them (hf_env_pos, as its
 * aux) so the worker does not read the envelope again; it unpacks only
 * the value. */
int
hf_host_submit(hf_host *h, hf_sink *sink, const void *buf, size_t len)
{
    struct msg *heads[256] = {0}, *tails[256] = {0};
    hf_buf errs = {0};
    msgpack_packer epk;
    size_t off = 0;
    int closing = atomic_load(&h->closing), rv = 0;

    msgpack_packer_init(&epk, &errs, hf_buf_mpwrite);
    while (off < len) {
        size_t start = off, klen;
        hf_env e;
        hf_env_pos pos;
        uint64_t hash;
        struct msg *m;
        int wi, err = 0, st;
        const char *why = NULL;

        if (hf_env_read(buf, len, &off, NULL, &e, &st) != 0 ||
            !mp_is_map(((const unsigned char *)buf)[start])) {
            rv = HF_EBADREQ;
            break;
        }
        if (st != 0 || e.op < HF_OP_CALL || e.op > HF_OP_HISTORY) {
            err = HF_EBADREQ, why = "malformed envelope";
        } else if (hf_addr_check(e.to.data, e.to.len, &klen) != 0) {
            err = HF_EBADREQ, why = "bad address";
        } else if (hf__kind_find(h, e.to.data, klen) == NULL) {
            err = HF_ENOTFOUND, why = "unknown kind";
        } else if (e.op == HF_OP_CALL && e.method.len == 0) {
            err = HF_EBADREQ, why = "missing method";
        } else if (closing) {
            err = HF_EUNAVAIL, why = "server is shutting down";
        }
        if (err != 0) {
            if (e.op != HF_OP_SIGNAL) {
                hf_env_pack_reply_err(&epk, e.conn, e.id, err, why,
                                      strlen(why));
                HF_INC(calls[-err]);
            }
            continue;
        }
        hash = hf_addr_hash(e.to.data, e.to.len);
        hf_env_pos_save(&pos, &e, (const char *)buf + start);
        m = hf__msg_new(M_REQ, hash, e.to.data, e.to.len,
                        (const char *)buf + start, off - start, &pos,
                        sizeof(pos));
        m->sink = sink;
        hf_sink_ref(sink);
        wi = (int)(hash % (uint64_t)h->nw);
        if (tails[wi])
            tails[wi]->next = m;
        else
            heads[wi] = m;
        tails[wi] = m;
    }
    for (int i = 0; i < h->nw; i++) {
        if (heads[i] == NULL)
            continue;
        if (rv != 0) { /* a malformed batch submits nothing */
            while (heads[i]) {
                struct msg *m = heads[i];
                heads[i] = m->next;
                hf__msg_free(m);
            }
        } else {
            hf__push_msgs(&h->w[i], heads[i], tails[i]);
        }
    }
    if (rv == 0 && errs.len > 0)
        sink->deliver(sink, &errs);
    hf_buf_free(&errs);
    return rv;
}

/* ------------------------------------------------------------------ */
/* open and close                                                      */

struct startup {
    hf_host *h;
    uint64_t n;
};

static int
alarm_load_cb(void *arg, hf_slice key, hf_slice val)
{
    struct startup *s = arg;
    const char *k = key.data, *nul;
    int64_t at;
    size_t alen;

    (void)val;
    if (key.len < 10)
        return 0;
    at = (int64_t)hf_get_be64(k);
    nul = memchr(k + 8, '\0', key.len - 8);
    if (nul == NULL)
        return 0;
    alen = (size_t)(nul - (k + 8));
    hf__timer_add(s->h, at, hf_addr_hash(k + 8, alen), k + 8, alen, nul + 1,
                  key.len - 8 - alen - 1);
    s->n++;
    return 0;
}

static int
outbox_load_cb(void *arg, hf_slice key, hf_slice val)
{
    struct startup *s = arg;
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    hf_env e;

    msgpack_zone_init(&zone, 1024);
    if (hf_unpack_next(val.data, val.len, &off, &zone, &obj) == 0 &&
        hf_env_decode(&obj, &e) == 0 && e.to.len > 0) {
        hf__post(s->h,
                 hf__msg_new(M_OUTBOX, hf_addr_hash(e.to.data, e.to.len),
                             e.to.data, e.to.len, val.data, val.len,
                             key.data, key.len));
        s->n++;
    }
    msgpack_zone_destroy(&zone);
    return 0;
}

static void
worker_fini(struct worker *w)
{
    struct batch *b;

    while (w->lhead)
        hf__actor_free(w, w->lhead);
    hf_htab_fini(&w->actors);
    while (w->qhead) {
        struct msg *m = w->qhead;
        w->qhead = m->next;
        hf__msg_free(m);
    }
    while ((b = w->pool) != NULL) {
        w->pool = b->pnext;
        hf_buf_free(&b->wb.ops);
        hf_buf_free(&b->held);
        free(b->acts);
        free(b);
    }
    free(w->outs);
    hf_buf_free(&w->tmp);
    hf__ctx_free(&w->ctx);
    msgpack_zone_destroy(&w->zone);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

int
hf_host_open(hf_host **out, const struct hf_host_opts *o)
{
    hf_host *h;
    struct startup s = {0};
    struct kindset *ks;
    int started = 0;

    if (o->cfg->workers < 1 || o->cfg->workers > 256)
        return HF_EBADREQ;
    if ((ks = kindset_new(o->kinds, o->nkinds)) == NULL)
        return HF_EBADREQ;
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        free(ks);
        return HF_EINTERNAL;
    }
    h->cfg = *o->cfg;
    h->st = o->store;
    atomic_init(&h->kinds, ks);
    h->nw = o->cfg->workers;
    atomic_init(&h->closing, 0);
    pthread_mutex_init(&h->tmu, NULL);
    pthread_cond_init(&h->tcv, NULL);
    if ((h->w = calloc((size_t)h->nw, sizeof(*h->w))) == NULL)
        goto fail;
    for (int i = 0; i < h->nw; i++) {
        struct worker *w = &h->w[i];
        w->host = h;
        w->idx = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        msgpack_zone_init(&w->zone, 8192);
    }
    h->st.ops->set_done(h->st.self, hf__on_done, h);
    s.h = h;

    /* Re-queue what was sent but not delivered, and arm the alarms. The
     * host's own reader is index nw. */
    if (h->st.ops->rd_begin(h->st.self, h->nw) == 0) {
        h->st.ops->scan(h->st.self, h->nw, HF_DB_ALARMS, (hf_slice){"", 0},
                        (hf_slice){NULL, 0}, 0, alarm_load_cb, &s);
        if (s.n)
            hf_info("host", "armed %" PRIu64 " persisted alarms", s.n);
        s.n = 0;
        h->st.ops->scan(h->st.self, h->nw, HF_DB_OUTBOX, (hf_slice){"", 0},
                        (hf_slice){NULL, 0}, 0, outbox_load_cb, &s);
        if (s.n)
            hf_info("host", "re-queued %" PRIu64 " undelivered messages",
                    s.n);
        h->st.ops->rd_end(h->st.self, h->nw);
    }
    for (; started < h->nw; started++)
        if (pthread_create(&h->w[started].thr, NULL, hf__worker_main,
                           &h->w[started]) != 0)
            goto fail;
    if (pthread_create(&h->tthr, NULL, hf__timer_main, h) != 0)
        goto fail;
    *out = h;
    return 0;

fail:
    hf_error("host", "cannot start threads");
    for (int i = 0; i < started; i++) {
        pthread_mutex_lock(&h->w[i].mu);
        h->w[i].stopping = 1;
        pthread_mutex_unlock(&h->w[i].mu);
        pthread_cond_signal(&h->w[i].cv);
        pthread_join(h->w[i].thr, NULL);
    }
    for (int i = 0; h->w && i < h->nw; i++)
        worker_fini(&h->w[i]);
    free(h->w);
    hf__timer_fini(h);
    kindsets_free(h);
    free(h);
    return HF_EINTERNAL;
}

void
hf_host_close(hf_host *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->closing, 1);
    pthread_mutex_lock(&h->tmu);
    h->tstop = 1;
    pthread_mutex_unlock(&h->tmu);
    pthread_cond_signal(&h->tcv);
    pthread_join(h->tthr, NULL);
    for (int i = 0; i < h->nw; i++) {
        pthread_mutex_lock(&h->w[i].mu);
        h->w[i].stopping = 1;
        pthread_mutex_unlock(&h->w[i].mu);
        pthread_cond_signal(&h->w[i].cv);
    }
    for (int i = 0; i < h->nw; i++)
        pthread_join(h->w[i].thr, NULL);
    for (int i = 0; i < h->nw; i++)
        worker_fini(&h->w[i]);
    free(h->w);
    hf__timer_fini(h);
    kindsets_free(h);
    pthread_cond_destroy(&h->tcv);
    pthread_mutex_destroy(&h->tmu);
    free(h);
}
