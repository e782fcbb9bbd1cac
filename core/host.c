/*
 * host.c - the actor host: workers, routing, the output gate, alarms.
 *
 * Design notes
 * ------------
 * Ownership. Actor kind/name belongs to worker hash(addr) % W for its whole
 * life and only that thread touches it, so actor state has no locks. Only
 * two things cross threads: messages pushed onto a worker's queue (from
 * hf_host_submit, other workers' outbox deliveries and the timer) and write
 * batches handed back by the store's writer thread. Both go through the
 * worker's mutex, once per batch of messages, never once per message.
 *
 * A worker pass. The worker takes everything queued at once and then:
 *   1. begins a read snapshot (after taking the store's done notices, so
 *      the snapshot includes every commit it is about to learn of);
 *   2. marks the returned batches resolved and releases, in order, every
 *      resolved batch at the head of its pending list (the output gate);
 *   3. files new messages into actor mailboxes, activating actors;
 *   4. runs actors from the run queue, each handler staging its effects in
 *      the context and committing them into the current batch;
 *   5. seals the batch: to the store when it holds writes, else straight
 *      onto the pending list; then releases what has become releasable;
 *   6. ends the snapshot and hands each sink its output buffer.
 *
 * The output gate. Nothing a handler produced leaves before the commit
 * holding its writes is durable, and batches are released strictly in the
 * order they were made, so a reply that read uncommitted data (or a batch
 * without writes that followed one with them) waits for that data. Per
 * actor, events are therefore released in seq order, and a subscription
 * registers at its own release point: events before it are in its backlog
 * (read from LMDB, now durable), events after it arrive live.
 *
 * Reads. A handler reads its staged writes, then the actor's cache, then
 * the pass's snapshot. Releasing a batch (step 2, after the snapshot has
 * begun) turns the cache entries it carried into clean copies of what
 * LMDB now holds (a few per actor, see cache.c), so the next read of a
 * key the actor just wrote costs no B-tree lookup. They stay true because
 * only the actor writes its keys; an actor is reset with its whole cache.
 *
 * Commit failure. The store fails a batch and fences every later batch of
 * that worker with the same generation. When the worker learns of it, it
 * bumps its generation, fails the later batches it never sent to the store
 * (they may have read the lost writes), and resets every actor that had
 * anything in those batches from LMDB. New work proceeds from there.
 *
 * Messages. A request is read once, by hf_host_submit (to route it and to
 * refuse what is malformed): its message keeps the envelope's bytes and,
 * as aux, where each field lies in them (hf_env_pos), so the worker only
 * unpacks the value. One malloc per message, freed after its handler.
 *
 * Lock order: worker mu and the timer's tmu are never held together.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/host_int.h"
#include "core/log.h"
#include "core/metrics.h"

#define RUN_BUDGET         64   /* messages per actor turn */
#define BATCH_MAX_HANDLERS 4096 /* seal early past this */
#define ALARM_BACKOFF_MAX  (5 * 60 * 1000)

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
/* records                                                             */

void
hf__rec(hf_buf *dst, int type, const void *fixed, size_t flen,
        const void *v1, size_t l1, const void *v2, size_t l2, const void *v3,
        size_t l3)
{
    struct rhdr h = {.type = (uint32_t)type,
                     .len = (uint32_t)(flen + l1 + l2 + l3)};
    HF_MUST(hf_buf_reserve(dst, sizeof(h) + h.len));
    hf_buf_append(dst, &h, sizeof(h));
    hf_buf_append(dst, fixed, flen);
    hf_buf_append(dst, v1, l1);
    hf_buf_append(dst, v2, l2);
    hf_buf_append(dst, v3, l3);
}

void
hf__rec_fanout(hf_buf *dst, struct actor *a, const void *env, size_t len)
{
    struct r_fanout rf = {.a = a};
    hf__rec(dst, R_FANOUT, &rf, sizeof(rf), env, len, NULL, 0, NULL, 0);
}

/* A reply record; takes a reference on sink. */
static void
rec_reply(hf_buf *dst, hf_sink *sink, uint64_t conn, uint64_t id, int err,
          const void *data, size_t len)
{
    struct r_reply rr = {.sink = sink, .conn = conn, .id = id, .err = err};
    if (sink)
        hf_sink_ref(sink);
    hf__rec(dst, R_REPLY, &rr, sizeof(rr), data, len, NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* kinds                                                               */

const struct hf_kind *
hf__kind_find(hf_host *h, const char *addr, size_t klen)
{
    /* strncmp stops at the name's NUL, so name[klen] is only read when
     * the name has klen bytes (the address part holds no NUL). */
    for (size_t i = 0; i < h->nkinds; i++) {
        const char *name = h->kinds[i]->name;
        if (name[0] == addr[0] && strncmp(name, addr, klen) == 0 &&
            name[klen] == '\0')
            return h->kinds[i];
    }
    return NULL;
}

static const struct hf_method *
method_find(const struct hf_kind *k, hf_slice m)
{
    for (size_t i = 0; i < k->nmethods; i++)
        if (hf_slice_is(m, k->methods[i].name))
            return &k->methods[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* worker queues                                                       */

static void
push_msgs(struct worker *w, struct msg *head, struct msg *tail)
{
    int wake;
    pthread_mutex_lock(&w->mu);
    wake = w->qhead == NULL && w->dhead == NULL;
    if (w->qtail)
        w->qtail->next = head;
    else
        w->qhead = head;
    w->qtail = tail;
    /* Signal before unlocking: once the lock is dropped the worker may
     * finish, and the host may destroy the condition variable. */
    if (wake)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The store's done callback, on the writer thread. */
static void
on_done(void *arg, hf_wbatch *wb)
{
    hf_host *h = arg;
    struct worker *w = &h->w[wb->worker];
    int wake;

    wb->next = NULL;
    pthread_mutex_lock(&w->mu);
    wake = w->qhead == NULL && w->dhead == NULL;
    if (w->dtail)
        w->dtail->next = wb;
    else
        w->dhead = wb;
    w->dtail = wb;
    if (wake) /* under the lock: see push_msgs */
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static struct msg *
msg_new(int type, uint64_t hash, const void *addr, size_t alen,
        const void *env, size_t len, const void *aux, size_t auxlen)
{
    struct msg *m = hf_xmalloc(sizeof(*m) + alen + len + auxlen);
    m->next = NULL;
    m->type = type;
    m->sink = NULL;
    m->at = 0;
    m->hash = hash;
    m->alen = (uint32_t)alen;
    m->len = (uint32_t)len;
    m->auxlen = (uint32_t)auxlen;
    memcpy(m->data, addr, alen);
    if (len)
        memcpy(m->data + alen, env, len);
    if (auxlen)
        memcpy(m->data + alen + len, aux, auxlen);
    return m;
}

static void
msg_free(struct msg *m)
{
    if (m->sink)
        hf_sink_unref(m->sink);
    free(m);
}

static void
post(hf_host *h, struct msg *m)
{
    push_msgs(&h->w[m->hash % (uint64_t)h->nw], m, m);
}

/* ------------------------------------------------------------------ */
/* the timer: a min-heap of alarms, firing into worker queues          */

static void
heap_swap(struct tent **a, struct tent **b)
{
    struct tent *t = *a;
    *a = *b;
    *b = t;
}

static void
timer_add(hf_host *h, int64_t at, uint64_t hash, const char *addr,
          size_t alen, const char *name, size_t nlen)
{
    struct tent *t = hf_xmalloc(sizeof(*t) + alen + nlen);
    size_t i;

    t->at = at;
    t->hash = hash;
    t->alen = (uint32_t)alen;
    t->nlen = (uint32_t)nlen;
    memcpy(t->data, addr, alen);
    memcpy(t->data + alen, name, nlen);
    pthread_mutex_lock(&h->tmu);
    if (h->nheap == h->capheap) {
        h->capheap = h->capheap ? h->capheap * 2 : 64;
        h->heap = hf_xrealloc(h->heap, h->capheap * sizeof(*h->heap));
    }
    i = h->nheap++;
    h->heap[i] = t;
    while (i > 0 && h->heap[(i - 1) / 2]->at > h->heap[i]->at) {
        heap_swap(&h->heap[(i - 1) / 2], &h->heap[i]);
        i = (i - 1) / 2;
    }
    pthread_cond_signal(&h->tcv);
    pthread_mutex_unlock(&h->tmu);
}

static struct tent *
heap_pop(hf_host *h)
{
    struct tent *top = h->heap[0];
    size_t i = 0;

    h->heap[0] = h->heap[--h->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->nheap && h->heap[l]->at < h->heap[m]->at)
            m = l;
        if (r < h->nheap && h->heap[r]->at < h->heap[m]->at)
            m = r;
        if (m == i)
            break;
        heap_swap(&h->heap[i], &h->heap[m]);
        i = m;
    }
    return top;
}

static void *
timer_main(void *arg)
{
    hf_host *h = arg;

    pthread_mutex_lock(&h->tmu);
    while (!h->tstop) {
        int64_t now = hf_now_ms();
        if (h->nheap == 0) {
            pthread_cond_wait(&h->tcv, &h->tmu);
        } else if (h->heap[0]->at > now) {
            /* Sleep until the earliest alarm, at most a second, so a
             * wall-clock jump is noticed. */
            struct timespec ts;
            int64_t ms = h->heap[0]->at - now;
            clock_gettime(CLOCK_REALTIME, &ts);
            if (ms > 1000)
                ms = 1000;
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&h->tcv, &h->tmu, &ts);
        } else {
            struct tent *t = heap_pop(h);
            struct msg *m;
            pthread_mutex_unlock(&h->tmu);
            m = msg_new(M_ALARM, t->hash, t->data, t->alen, NULL, 0,
                        t->data + t->alen, t->nlen);
            m->at = t->at;
            free(t);
            post(h, m);
            pthread_mutex_lock(&h->tmu);
        }
    }
    pthread_mutex_unlock(&h->tmu);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* actors                                                              */

static void
random_epoch(char out[17])
{
    unsigned char r[8];
    static const char hex[] = "0123456789abcdef";
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = hf_mono_ns() ^ (uint64_t)hf_now_ms();
        memcpy(r, &t, 8);
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[16] = '\0';
}

static int
meta_alarm_cb(void *arg, hf_slice key, hf_slice val)
{
    struct actor *a = arg;
    const char *name = (const char *)key.data + a->alen + 3; /* \0 a: */
    size_t nl = key.len - a->alen - 3;
    struct alarm *al;

    if (val.len != 12 || nl == 0)
        return 0;
    al = hf_xcalloc(1, sizeof(*al) + nl + 1);
    memcpy(al->name, name, nl);
    al->at = (int64_t)hf_get_be64(val.data);
    al->attempt = hf_get_be32((const char *)val.data + 8);
    al->next = a->alarms;
    a->alarms = al;
    return 0;
}

/* Loads seq, epoch, outbox id and alarms from the store's snapshot. */
static void
load_meta(struct worker *w, struct actor *a)
{
    const hf_store *st = &w->host->st;
    char key[HF_KEYBUF], hi[HF_KEYBUF];
    hf_slice v;
    size_t n, nh;

    a->seq = a->obx = 0;
    a->epoch_saved = 0;
    n = hf_key_actor(key, a->addr, a->alen, "seq", 3);
    if (st->ops->get(st->self, w->idx, HF_DB_META, (hf_slice){key, n}, &v) ==
            0 &&
        v.len == 8)
        a->seq = hf_get_be64(v.data);
    n = hf_key_actor(key, a->addr, a->alen, "obx", 3);
    if (st->ops->get(st->self, w->idx, HF_DB_META, (hf_slice){key, n}, &v) ==
            0 &&
        v.len == 8)
        a->obx = hf_get_be64(v.data);
    n = hf_key_actor(key, a->addr, a->alen, "epoch", 5);
    if (st->ops->get(st->self, w->idx, HF_DB_META, (hf_slice){key, n}, &v) ==
            0 &&
        v.len == 16) {
        memcpy(a->epoch, v.data, 16);
        a->epoch[16] = '\0';
        a->epoch_saved = 1;
    } else {
        random_epoch(a->epoch);
    }
    n = hf_key_actor(key, a->addr, a->alen, "a:", 2);
    nh = hf_key_actor(hi, a->addr, a->alen, "a;", 2);
    st->ops->scan(st->self, w->idx, HF_DB_META, (hf_slice){key, n},
                  (hf_slice){hi, nh}, 0, meta_alarm_cb, a);
}

static void
free_alarms(struct actor *a)
{
    while (a->alarms) {
        struct alarm *al = a->alarms;
        a->alarms = al->next;
        free(al);
    }
}

static void
lru_unlink(struct worker *w, struct actor *a)
{
    if (a->lprev)
        a->lprev->lnext = a->lnext;
    else
        w->lhead = a->lnext;
    if (a->lnext)
        a->lnext->lprev = a->lprev;
    else
        w->ltail = a->lprev;
    a->lprev = a->lnext = NULL;
}

static void
lru_append(struct worker *w, struct actor *a)
{
    a->lprev = w->ltail;
    a->lnext = NULL;
    if (w->ltail)
        w->ltail->lnext = a;
    else
        w->lhead = a;
    w->ltail = a;
}

static void
touch(struct worker *w, struct actor *a)
{
    a->used_ns = w->now_ns;
    if (w->ltail != a) {
        lru_unlink(w, a);
        lru_append(w, a);
    }
}

static void
tab_grow(struct worker *w)
{
    uint32_t ns = w->tabmask ? (w->tabmask + 1) * 2 : 256;
    struct actor **nt = hf_xcalloc(ns, sizeof(*nt));
    for (uint32_t i = 0; w->tabmask && i <= w->tabmask; i++) {
        struct actor *a = w->tab[i], *nx;
        for (; a != NULL; a = nx) {
            nx = a->hnext;
            a->hnext = nt[(a->hash >> 8) & (ns - 1)];
            nt[(a->hash >> 8) & (ns - 1)] = a;
        }
    }
    free(w->tab);
    w->tab = nt;
    w->tabmask = ns - 1;
}

/* The actor for addr, activated if needed; NULL only for an unknown kind
 * (submit checks, so only a stale outbox entry can get here). */
static struct actor *
actor_get(struct worker *w, const char *addr, size_t alen, uint64_t hash)
{
    struct actor *a;
    const struct hf_kind *k;
    size_t klen;

    if (w->tabmask) {
        for (a = w->tab[(hash >> 8) & w->tabmask]; a != NULL; a = a->hnext)
            if (a->hash == hash && a->alen == alen &&
                memcmp(a->addr, addr, alen) == 0)
                return a;
    }
    if (hf_addr_check(addr, alen, &klen) != 0 ||
        (k = hf__kind_find(w->host, addr, klen)) == NULL)
        return NULL;
    a = hf_xcalloc(1, sizeof(*a) + alen + 1);
    memcpy(a->addr, addr, alen);
    a->alen = alen;
    a->klen = klen;
    a->hash = hash;
    a->kind = k;
    a->used_ns = w->now_ns;
    load_meta(w, a);
    if (w->nactors >= w->tabmask)
        tab_grow(w);
    a->hnext = w->tab[(hash >> 8) & w->tabmask];
    w->tab[(hash >> 8) & w->tabmask] = a;
    w->nactors++;
    lru_append(w, a);
    HF_INC(activations);
    atomic_fetch_add_explicit(&hf_metrics.actors_active, 1,
                              memory_order_relaxed);
    return a;
}

static void
actor_free(struct worker *w, struct actor *a)
{
    struct actor **pp = &w->tab[(a->hash >> 8) & w->tabmask];
    while (*pp != a)
        pp = &(*pp)->hnext;
    *pp = a->hnext;
    w->nactors--;
    lru_unlink(w, a);
    while (a->mhead) {
        struct msg *m = a->mhead;
        a->mhead = m->next;
        msg_free(m);
    }
    for (uint32_t i = 0; i < a->nsubs; i++) {
        hf_sink_unref(a->subs[i].sink);
        hf_buf_free(&a->subs[i].who);
    }
    free(a->subs);
    free(a->sinks);
    hf_cache_clear(&a->cache);
    free_alarms(a);
    free(a);
    atomic_fetch_sub_explicit(&hf_metrics.actors_active, 1,
                              memory_order_relaxed);
}

static int
evictable(struct worker *w, struct actor *a)
{
    return a->nmsg == 0 && !a->queued && a->nsubs == 0 &&
           hf_cache_settled(&a->cache) && a->last_batch <= w->released;
}

static void
evict_idle(struct worker *w)
{
    uint64_t idle = (uint64_t)w->host->cfg.idle_ms * 1000000u;
    uint32_t n = w->nactors;

    while (n-- > 0 && w->lhead != NULL &&
           w->now_ns - w->lhead->used_ns >= idle) {
        struct actor *a = w->lhead;
        if (evictable(w, a)) {
            actor_free(w, a);
            HF_INC(evictions);
        } else {
            touch(w, a); /* busy or watched: look again later */
        }
    }
}

/* ------------------------------------------------------------------ */
/* subscriptions                                                       */

static struct sinkcount *
sinkcount_find(struct actor *a, hf_sink *s)
{
    for (uint32_t i = 0; i < a->nsinks; i++)
        if (a->sinks[i].sink == s)
            return &a->sinks[i];
    return NULL;
}

static int
sub_find(struct actor *a, hf_sink *s, uint64_t conn)
{
    for (uint32_t i = 0; i < a->nsubs; i++)
        if (a->subs[i].sink == s && a->subs[i].conn == conn)
            return (int)i;
    return -1;
}

/* Adds a subscription; consumes the caller's sink reference. */
static void
sub_add(struct actor *a, hf_sink *s, uint64_t conn, const void *who,
        size_t wl, int announce)
{
    int i = sub_find(a, s, conn);
    struct sinkcount *sc;

    if (i >= 0) { /* resubscribe: refresh presence */
        a->subs[i].who.len = 0;
        HF_MUST(hf_buf_append(&a->subs[i].who, who, wl));
        a->subs[i].announce = announce;
        hf_sink_unref(s);
        return;
    }
    if (a->nsubs == a->capsubs) {
        a->capsubs = a->capsubs ? a->capsubs * 2 : 4;
        a->subs = hf_xrealloc(a->subs, a->capsubs * sizeof(*a->subs));
    }
    a->subs[a->nsubs] =
        (struct subscr){.sink = s, .conn = conn, .announce = announce};
    HF_MUST(hf_buf_append(&a->subs[a->nsubs].who, who, wl));
    a->nsubs++;
    if ((sc = sinkcount_find(a, s)) != NULL) {
        sc->n++;
        return;
    }
    if (a->nsinks == a->capsinks) {
        a->capsinks = a->capsinks ? a->capsinks * 2 : 4;
        a->sinks = hf_xrealloc(a->sinks, a->capsinks * sizeof(*a->sinks));
    }
    a->sinks[a->nsinks++] = (struct sinkcount){.sink = s, .n = 1};
}

/* Removes a subscription; its presence object moves to *who, and
 * *announce says whether it was subscribed with presence. */
static int
sub_remove(struct actor *a, hf_sink *s, uint64_t conn, hf_buf *who,
           int *announce)
{
    int i = sub_find(a, s, conn);
    struct sinkcount *sc;

    if (i < 0)
        return 0;
    *who = a->subs[i].who;
    *announce = a->subs[i].announce;
    a->subs[i] = a->subs[--a->nsubs];
    sc = sinkcount_find(a, s);
    if (--sc->n == 0)
        *sc = a->sinks[--a->nsinks];
    hf_sink_unref(s);
    return 1;
}

/* ------------------------------------------------------------------ */
/* output buffers, one per sink per pass                               */

static hf_buf *
out_for(struct worker *w, hf_sink *s)
{
    for (uint32_t i = 0; i < w->nouts; i++)
        if (w->outs[i].sink == s)
            return &w->outs[i].buf;
    if (w->nouts == w->capouts) {
        w->capouts = w->capouts ? w->capouts * 2 : 8;
        w->outs = hf_xrealloc(w->outs, w->capouts * sizeof(*w->outs));
    }
    hf_sink_ref(s);
    w->outs[w->nouts] = (struct out){.sink = s};
    return &w->outs[w->nouts++].buf;
}

static void
flush_outs(struct worker *w)
{
    for (uint32_t i = 0; i < w->nouts; i++) {
        hf_buf b = hf_buf_take(&w->outs[i].buf);
        if (b.len > 0)
            w->outs[i].sink->deliver(w->outs[i].sink, &b);
        hf_buf_free(&b);
        hf_sink_unref(w->outs[i].sink);
    }
    w->nouts = 0;
}

static void
fanout(struct worker *w, struct actor *a, const void *env, size_t len)
{
    for (uint32_t i = 0; i < a->nsinks; i++)
        HF_MUST(hf_buf_append(out_for(w, a->sinks[i].sink), env, len));
}

/* ------------------------------------------------------------------ */
/* batches                                                             */

struct batch *
hf__cur(struct worker *w)
{
    struct batch *b = w->cur;

    if (b != NULL)
        return b;
    if ((b = w->pool) != NULL)
        w->pool = b->pnext;
    else
        b = hf_xcalloc(1, sizeof(*b));
    hf_wbatch_reset(&b->wb);
    b->held.len = 0;
    b->nacts = 0;
    b->pnext = NULL;
    b->resolved = b->submitted = 0;
    b->wb.worker = w->idx;
    b->wb.gen = w->gen;
    b->wb.id = ++w->nextid;
    b->wb.owner = b;
    w->cur = b;
    return b;
}

static void
pend_append(struct worker *w, struct batch *b)
{
    b->pnext = NULL;
    if (w->ptail)
        w->ptail->pnext = b;
    else
        w->phead = b;
    w->ptail = b;
}

/* Closes the current batch: to the store if it has writes, else straight
 * onto the pending list (resolved once all before it are). */
static void
seal(struct worker *w)
{
    struct batch *b = w->cur;
    const hf_store *st = &w->host->st;

    if (b == NULL)
        return;
    w->cur = NULL;
    if (b->wb.nops == 0 && b->held.len == 0) {
        b->pnext = w->pool;
        w->pool = b;
        return;
    }
    pend_append(w, b);
    if (b->wb.nops == 0) {
        b->resolved = 1;
        return;
    }
    b->submitted = 1;
    if (st->ops->submit(st->self, &b->wb) != 0) {
        b->wb.status = HF_EUNAVAIL;
        b->resolved = 1;
    }
}

/* ------------------------------------------------------------------ */
/* release: the output gate opens for one batch                        */

static void
pack_backlog_event(msgpack_packer *pk, struct actor *a, uint64_t conn,
                   uint64_t seq, hf_slice stored)
{
    const char *p = stored.data;
    msgpack_pack_map(pk, 7);
    hf_pack_cstr(pk, "op");
    msgpack_pack_uint64(pk, HF_OUT_EVENT);
    hf_pack_cstr(pk, "c");
    msgpack_pack_uint64(pk, conn);
    hf_pack_cstr(pk, "from");
    hf_pack_str(pk, a->addr, a->alen);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, seq);
    pk->callback(pk->data, p + 1, stored.len - 1); /* 3 stored fields */
}

struct backlog {
    struct actor *a;
    uint64_t conn, next;
    hf_buf *buf;
    int gap;
};

static int
backlog_cb(void *arg, hf_slice key, hf_slice val)
{
    struct backlog *bl = arg;
    uint64_t seq = hf_get_be64((const char *)key.data + key.len - 8);
    msgpack_packer pk;

    if (seq != bl->next || val.len < 1 ||
        (unsigned char)*(const char *)val.data != 0x83) {
        bl->gap = 1;
        return 1;
    }
    msgpack_packer_init(&pk, bl->buf, hf_buf_mpwrite);
    pack_backlog_event(&pk, bl->a, bl->conn, seq, val);
    bl->next++;
    return 0;
}

static void
release_sub(struct worker *w, const struct r_sub *rs, const char *who,
            size_t wl, int status)
{
    struct actor *a = rs->a;
    const hf_store *st = &w->host->st;
    hf_buf *out = out_for(w, rs->sink);
    hf_buf events = {0}, res = {0};
    msgpack_packer pk;
    int recovered = 1;

    if (status != 0) {
        msgpack_packer_init(&pk, out, hf_buf_mpwrite);
        hf_env_pack_reply_err(&pk, rs->conn, rs->id, status,
                              "commit failed; subscribe again", 31);
        HF_INC(calls[-status]);
        hf_sink_unref(rs->sink);
        return;
    }
    if (rs->has_since) {
        uint64_t since = (uint64_t)rs->since;
        if (!rs->epoch_ok || rs->since < 0 || since > rs->seq_at) {
            recovered = 0;
        } else if (since < rs->seq_at) {
            struct backlog bl = {.a = a, .conn = rs->conn, .next = since + 1,
                                 .buf = &events};
            char lo[HF_KEYBUF], hi[HF_KEYBUF];
            size_t ll = hf_key_seq(lo, a->addr, a->alen, since + 1);
            size_t hl = hf_key_seq(hi, a->addr, a->alen, rs->seq_at + 1);
            st->ops->scan(st->self, w->idx, HF_DB_LOG, (hf_slice){lo, ll},
                          (hf_slice){hi, hl}, 0, backlog_cb, &bl);
            if (bl.gap || bl.next != rs->seq_at + 1) {
                recovered = 0;
                events.len = 0;
            }
        }
    }
    msgpack_packer_init(&pk, &res, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 3);
    hf_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, rs->seq_at);
    hf_pack_cstr(&pk, "epoch");
    hf_pack_cstr(&pk, a->epoch);
    hf_pack_cstr(&pk, "recovered");
    if (recovered)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_packer_init(&pk, out, hf_buf_mpwrite);
    hf_env_pack_reply_ok(&pk, rs->conn, rs->id, (hf_slice){res.data, res.len});
    HF_MUST(hf_buf_append(out, events.data, events.len));
    HF_INC(calls[0]);
    hf_buf_free(&events);
    hf_buf_free(&res);

    sub_add(a, rs->sink, rs->conn, who, wl, rs->announce);
    if (!rs->announce)
        return; /* a silent watcher (a board, a dashboard): no join */
    msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
    w->tmp.len = 0;
    hf_env_pack_presence(&pk, (hf_slice){a->addr, a->alen}, 1,
                         (hf_slice){who, wl});
    fanout(w, a, w->tmp.data, w->tmp.len);
}

static void
release_unsub(struct worker *w, const struct r_unsub *ru, int status)
{
    struct actor *a = ru->a;
    hf_buf *out = out_for(w, ru->sink);
    hf_buf who = {0};
    msgpack_packer pk;
    int removed = 0, announce = 0;
    char res = (char)0xc3; /* true */

    if (status == 0)
        removed = sub_remove(a, ru->sink, ru->conn, &who, &announce);
    msgpack_packer_init(&pk, out, hf_buf_mpwrite);
    if (status != 0) {
        hf_env_pack_reply_err(&pk, ru->conn, ru->id, status, NULL, 0);
    } else {
        if (!removed)
            res = (char)0xc2; /* false: was not subscribed */
        hf_env_pack_reply_ok(&pk, ru->conn, ru->id, (hf_slice){&res, 1});
    }
    HF_INC(calls[-status]);
    hf_sink_unref(ru->sink);
    if (removed && announce) {
        w->tmp.len = 0;
        msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
        hf_env_pack_presence(&pk, (hf_slice){a->addr, a->alen}, 0,
                             (hf_slice){who.data, who.len});
        fanout(w, a, w->tmp.data, w->tmp.len);
    }
    hf_buf_free(&who);
}

struct hist {
    hf_buf *buf;
    uint64_t first, n;
    uint32_t limit;
};

static int
history_cb(void *arg, hf_slice key, hf_slice val)
{
    struct hist *hs = arg;
    uint64_t seq = hf_get_be64((const char *)key.data + key.len - 8);
    msgpack_packer pk;

    if (val.len < 1 || (unsigned char)*(const char *)val.data != 0x83)
        return 0; /* not an event record: skip it */
    if (hs->n == 0)
        hs->first = seq;
    msgpack_packer_init(&pk, hs->buf, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 4);
    hf_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    pk.callback(pk.data, (const char *)val.data + 1, val.len - 1);
    return ++hs->n >= hs->limit;
}

static void
release_history(struct worker *w, const struct r_history *rh, int status)
{
    struct actor *a = rh->a;
    const hf_store *st = &w->host->st;
    hf_buf *out = out_for(w, rh->sink);
    hf_buf events = {0}, res = {0};
    struct hist hs = {.buf = &events, .limit = rh->limit};
    msgpack_packer pk;

    msgpack_packer_init(&pk, out, hf_buf_mpwrite);
    if (status != 0) {
        hf_env_pack_reply_err(&pk, rh->conn, rh->id, status, NULL, 0);
    } else {
        char lo[HF_KEYBUF], hi[HF_KEYBUF];
        size_t ll = hf_key_seq(lo, a->addr, a->alen, rh->after + 1);
        size_t hl = hf_key_seq(hi, a->addr, a->alen, rh->seq_at + 1);
        if (rh->after < rh->seq_at)
            st->ops->scan(st->self, w->idx, HF_DB_LOG, (hf_slice){lo, ll},
                          (hf_slice){hi, hl}, 0, history_cb, &hs);
        msgpack_packer_init(&pk, &res, hf_buf_mpwrite);
        msgpack_pack_map(&pk, 4);
        hf_pack_cstr(&pk, "seq");
        msgpack_pack_uint64(&pk, rh->seq_at);
        hf_pack_cstr(&pk, "epoch");
        hf_pack_cstr(&pk, a->epoch);
        hf_pack_cstr(&pk, "recovered");
        /* Up to date is recovered; a client ahead of the log (another
         * epoch, or a wiped actor) is not; otherwise the events found
         * must start right after `after`. */
        if (rh->after == rh->seq_at || (hs.n > 0 && hs.first == rh->after + 1))
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        hf_pack_cstr(&pk, "events");
        msgpack_pack_array(&pk, (uint32_t)hs.n);
        HF_MUST(hf_buf_append(&res, events.data, events.len));
        msgpack_packer_init(&pk, out, hf_buf_mpwrite);
        hf_env_pack_reply_ok(&pk, rh->conn, rh->id,
                             (hf_slice){res.data, res.len});
    }
    HF_INC(calls[-status]);
    hf_sink_unref(rh->sink);
    hf_buf_free(&events);
    hf_buf_free(&res);
}

static void
release_records(struct worker *w, struct batch *b, int status)
{
    const char *p = b->held.data;
    msgpack_packer pk;

    for (size_t pos = 0; pos < b->held.len;) {
        struct rhdr h;
        const char *body;

        memcpy(&h, p + pos, sizeof(h));
        body = p + pos + sizeof(h);
        pos += sizeof(h) + h.len;
        switch (h.type) {
        case R_REPLY: {
            struct r_reply rr;
            const char *d;
            size_t dl;
            int err;
            memcpy(&rr, body, sizeof(rr));
            d = body + sizeof(rr);
            dl = h.len - sizeof(rr);
            err = rr.err;
            if (status != 0 && err == 0) {
                err = status;
                d = "the commit holding this result failed";
                dl = strlen(d);
            }
            HF_INC(calls[-err]);
            if (rr.sink == NULL)
                break;
            msgpack_packer_init(&pk, out_for(w, rr.sink), hf_buf_mpwrite);
            if (err == 0)
                hf_env_pack_reply_ok(&pk, rr.conn, rr.id, (hf_slice){d, dl});
            else
                hf_env_pack_reply_err(&pk, rr.conn, rr.id, err, d, dl);
            hf_sink_unref(rr.sink);
            break;
        }
        case R_FANOUT: {
            struct r_fanout rf;
            memcpy(&rf, body, sizeof(rf));
            if (status == 0)
                fanout(w, rf.a, body + sizeof(rf), h.len - sizeof(rf));
            break;
        }
        case R_SUB: {
            struct r_sub rs;
            memcpy(&rs, body, sizeof(rs));
            release_sub(w, &rs, body + sizeof(rs), h.len - sizeof(rs),
                        status);
            break;
        }
        case R_UNSUB: {
            struct r_unsub ru;
            memcpy(&ru, body, sizeof(ru));
            release_unsub(w, &ru, status);
            break;
        }
        case R_HISTORY: {
            struct r_history rh;
            memcpy(&rh, body, sizeof(rh));
            release_history(w, &rh, status);
            break;
        }
        case R_OUTBOX: {
            struct r_outbox ro;
            const char *v;
            struct msg *m;
            memcpy(&ro, body, sizeof(ro));
            v = body + sizeof(ro);
            if (status != 0)
                break;
            m = msg_new(M_OUTBOX, ro.hash, v, ro.alen, v + ro.alen,
                        ro.envlen, v + ro.alen + ro.envlen, ro.keylen);
            post(w->host, m);
            break;
        }
        case R_ALARM: {
            struct r_alarm ra;
            const char *v;
            memcpy(&ra, body, sizeof(ra));
            v = body + sizeof(ra);
            if (status == 0)
                timer_add(w->host, ra.at, ra.hash, v, ra.alen, v + ra.alen,
                          ra.nlen);
            break;
        }
        }
    }
}

static void
release_ready(struct worker *w)
{
    struct batch *b;

    while ((b = w->phead) != NULL && b->resolved) {
        int status = b->wb.status;
        w->phead = b->pnext;
        if (w->phead == NULL)
            w->ptail = NULL;
        if (status == 0)
            for (uint32_t i = 0; i < b->nacts; i++)
                hf_cache_prune(&b->acts[i]->cache, b->wb.id);
        release_records(w, b, status);
        w->released = b->wb.id;
        b->pnext = w->pool;
        w->pool = b;
    }
}

/* A batch failed: everything the worker made after it is suspect. */
static void
commit_failed(struct worker *w, struct batch *failed)
{
    int status = failed->wb.status;

    w->gen++;
    for (struct batch *b = failed->pnext; b != NULL; b = b->pnext)
        if (!b->submitted) {
            b->wb.status = status;
            b->resolved = 1;
        }
    for (uint32_t i = 0; w->tabmask && i <= w->tabmask; i++)
        for (struct actor *a = w->tab[i]; a != NULL; a = a->hnext)
            if (a->last_batch >= failed->wb.id) {
                hf_cache_clear(&a->cache);
                free_alarms(a);
                load_meta(w, a);
                /* Re-arm: a retry scheduled in the lost batch is gone,
                 * the persisted time is back. Duplicates are harmless:
                 * a firing is checked against the actor's alarm. */
                for (struct alarm *al = a->alarms; al; al = al->next)
                    timer_add(w->host, al->at, a->hash, a->addr, a->alen,
                              al->name, strlen(al->name));
            }
    hf_warn("host", "worker %d: commit failed (%s); actors reset from disk",
            w->idx, hf_err_name(status));
}

/* ------------------------------------------------------------------ */
/* processing one message                                              */

/* An error reply, held in the current batch (it may reflect state that
 * is not durable yet, e.g. a conflict with an uncommitted booking). */
static void
reply_err(struct worker *w, hf_sink *sink, const hf_env *e, int err,
          const char *msg)
{
    rec_reply(&hf__cur(w)->held, sink, e->conn, e->id, err, msg,
              msg ? strlen(msg) : 0);
}

/* An idempotency key belongs to its caller: the stored key is the
 * caller's subject, a NUL, then the client's key, so that bob reusing
 * kim's key runs his own call rather than getting her answer (and his
 * write silently not done). Callers without a subject share one scope:
 * with auth off every caller is the same anonymous principal. A token's
 * subject (at most 128 bytes) with the longest key (HF_IDEMKEY_MAX) fits
 * beside the longest address in a storage key; an actor caller's address
 * with the outbox's short keys too. 0 with *out in buf (IDEMKEY_SCOPED
 * bytes), or -1 when it does not fit. */
#define IDEMKEY_SCOPED (HF_KEY_MAX - HF_ADDR_MAX - 1)

static int
idem_key(char *buf, const char *caller, hf_slice key, hf_slice *out)
{
    size_t cl = strlen(caller);

    if (cl + 1 + key.len > IDEMKEY_SCOPED)
        return -1;
    memcpy(buf, caller, cl);
    buf[cl] = '\0';
    memcpy(buf + cl + 1, key.data, key.len);
    *out = (hf_slice){buf, cl + 1 + key.len};
    return 0;
}

static int
idem_lookup(struct worker *w, struct actor *a, hf_slice key, hf_slice *res)
{
    struct hf_ctx *c = &w->ctx;
    hf_slice v;
    int64_t at;

    if (hf__ctx_read(c, HF_DB_IDEM, key.data, key.len, &v) != 0 ||
        v.len < 9)
        return 0;
    at = (int64_t)hf_get_be64(v.data);
    if (c->now - at > (int64_t)w->host->cfg.idem_window_s * 1000)
        return 0;
    res->data = (const char *)v.data + 9;
    res->len = v.len - 9;
    (void)a;
    return 1;
}

/* Deletes a delivered outbox entry: a system write outside any handler. */
static void
outbox_done(struct worker *w, struct actor *a, const struct msg *m)
{
    struct batch *b = hf__cur(w);
    HF_MUST(hf_wbatch_del(&b->wb, HF_DB_OUTBOX, m->data + m->alen + m->len,
                       m->auxlen));
    HF_INC(outbox_delivered);
    a->last_batch = b->wb.id;
}

static void
builtin_info(struct worker *w, struct actor *a, msgpack_packer *pk)
{
    (void)w;
    msgpack_pack_map(pk, 3);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, a->seq);
    hf_pack_cstr(pk, "epoch");
    hf_pack_cstr(pk, a->epoch);
    hf_pack_cstr(pk, "subscribers");
    msgpack_pack_uint32(pk, a->nsubs);
}

static void
builtin_presence(struct worker *w, struct actor *a, msgpack_packer *pk)
{
    uint32_t n = 0;

    (void)w;
    for (uint32_t i = 0; i < a->nsubs; i++)
        n += a->subs[i].announce != 0;
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < a->nsubs; i++)
        if (a->subs[i].announce)
            hf_pack_raw(pk,
                        (hf_slice){a->subs[i].who.data, a->subs[i].who.len});
}

static const struct {
    const char *name;
    void (*fn)(struct worker *, struct actor *, msgpack_packer *);
} builtins[] = {
    {"info", builtin_info},
    {"presence", builtin_presence},
};

static void
do_call(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
        const char *caller)
{
    struct hf_ctx *c = &w->ctx;
    const struct hf_method *meth;
    hf_slice stored, ikey = {0};
    char ikbuf[IDEMKEY_SCOPED];
    int rv, outbox = m->type == M_OUTBOX;

    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (hf_slice_is(e->method, builtins[i].name)) {
            msgpack_packer pk;
            w->tmp.len = 0;
            msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
            builtins[i].fn(w, a, &pk);
            rec_reply(&hf__cur(w)->held, m->sink, e->conn, e->id, 0,
                      w->tmp.data, w->tmp.len);
            return;
        }
    }
    if ((meth = method_find(a->kind, e->method)) == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "kind '%s' has no method '%.*s'", a->kind->name,
                 (int)(e->method.len > 64 ? 64 : e->method.len),
                 (const char *)e->method.data);
        reply_err(w, m->sink, e, rv = HF_ENOTFOUND, c->errmsg);
        goto outbox_drop;
    }
    if (meth->roles != HF_ROLE_ANY &&
        (e->role & (meth->roles | HF_ROLE_ADMIN)) == 0) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "method '%s' needs another role", meth->name);
        reply_err(w, m->sink, e, rv = HF_EFORBIDDEN, c->errmsg);
        goto outbox_drop;
    }
    hf__ctx_begin(w, a, caller, e->role);
    if (e->key.len > HF_IDEMKEY_MAX) {
        reply_err(w, m->sink, e, HF_EBADREQ, "idempotency key too long");
        return;
    }
    if (e->key.len > 0 && idem_key(ikbuf, caller, e->key, &ikey) != 0) {
        reply_err(w, m->sink, e, HF_EBADREQ, "idempotency key too long");
        return;
    }
    if (e->key.len > 0 && idem_lookup(w, a, ikey, &stored)) {
        HF_INC(idem_hits);
        rec_reply(&hf__cur(w)->held, m->sink, e->conn, e->id, 0, stored.data,
                  stored.len);
        if (outbox)
            outbox_done(w, a, m);
        return;
    }
    rv = meth->fn(c, e->val ? e->val : hf__nil());
    if (rv == 0) {
        if (!c->has_result)
            hf_reply(c);
        if (e->key.len > 0) {
            char hdr[9];
            hf_put_be64(hdr, (uint64_t)c->now);
            hdr[8] = 1;
            c->tmp.len = 0;
            HF_MUST(hf_buf_append(&c->tmp, hdr, 9));
            HF_MUST(hf_buf_append(&c->tmp, c->result.data, c->result.len));
            hf__ctx_stage_write(c, HF_DB_IDEM, ikey.data, ikey.len,
                                c->tmp.data, c->tmp.len, 0);
        }
        rec_reply(&c->tout, m->sink, e->conn, e->id, 0, c->result.data,
                  c->result.len);
        hf__ctx_commit(w);
        if (outbox)
            outbox_done(w, a, m);
        return;
    }
    if (rv > 0 || rv <= -HF_ECOUNT_)
        rv = HF_EINTERNAL;
    hf__ctx_abort(w);
    reply_err(w, m->sink, e, rv, c->errmsg[0] ? c->errmsg : NULL);
outbox_drop:
    if (outbox) {
        hf_warn("host", "%s: dropped a message from %.*s: %s", a->addr,
                (int)e->sub.len, (const char *)e->sub.data,
                c->errmsg[0] ? c->errmsg : hf_err_name(rv));
        outbox_done(w, a, m);
    }
}

/* Runs a join/leave hook as its own unit; its result is ignored. */
static void
run_hook(struct worker *w, struct actor *a, const char *caller,
         unsigned role, const msgpack_object *presence, int join)
{
    int rv;

    if ((join && a->kind->join == NULL) || (!join && a->kind->leave == NULL))
        return;
    hf__ctx_begin(w, a, caller, role);
    rv = join ? a->kind->join(&w->ctx, presence ? presence : hf__nil())
              : a->kind->leave(&w->ctx);
    if (rv == 0)
        hf__ctx_commit(w);
    else
        hf__ctx_abort(w);
}

/* Fields of a presence "who" that only the server sets. */
static int
is_reserved_who(const msgpack_object *k)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == 3 &&
           memcmp(k->via.str.ptr, "sub", 3) == 0;
}

static void
do_sub(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
       const char *caller)
{
    struct r_sub rs = {.a = a, .sink = m->sink, .conn = e->conn, .id = e->id,
                       .since = e->since, .has_since = e->has_since,
                       .epoch_ok = 1};
    msgpack_packer pk;
    const msgpack_object *pres = e->val;
    uint32_t extra = 0;

    if (m->sink == NULL)
        return;
    run_hook(w, a, caller, e->role, pres, 1);
    rs.seq_at = a->seq;
    if (e->epoch.len > 0 && a->seq > 0 && !hf_slice_is(e->epoch, a->epoch))
        rs.epoch_ok = 0;
    /* who = {"sub": caller, ...presence fields}. "sub" is the server's:
     * a client's own "sub" field is dropped, or it could pose as another
     * subject (a duplicate key reads as either value, parser by parser). */
    w->tmp.len = 0;
    msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
    rs.announce = pres != NULL && pres->type != MSGPACK_OBJECT_NIL;
    if (pres && pres->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < pres->via.map.size; i++)
            extra += !is_reserved_who(&pres->via.map.ptr[i].key);
    msgpack_pack_map(&pk, 1 + extra);
    hf_pack_cstr(&pk, "sub");
    hf_pack_cstr(&pk, caller);
    for (uint32_t i = 0; extra > 0 && i < pres->via.map.size; i++) {
        if (is_reserved_who(&pres->via.map.ptr[i].key))
            continue;
        msgpack_pack_object(&pk, pres->via.map.ptr[i].key);
        msgpack_pack_object(&pk, pres->via.map.ptr[i].val);
    }
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_SUB, &rs, sizeof(rs), w->tmp.data,
            w->tmp.len, NULL, 0, NULL, 0);
}

static void
do_unsub(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
         const char *caller)
{
    struct r_unsub ru = {.a = a, .sink = m->sink, .conn = e->conn,
                         .id = e->id};
    if (m->sink == NULL)
        return;
    run_hook(w, a, caller, e->role, NULL, 0);
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_UNSUB, &ru, sizeof(ru), NULL, 0, NULL, 0,
            NULL, 0);
}

static void
do_history(struct worker *w, struct actor *a, struct msg *m, const hf_env *e)
{
    struct r_history rh = {.a = a, .sink = m->sink, .conn = e->conn,
                           .id = e->id, .seq_at = a->seq, .limit = 100};

    if (m->sink == NULL)
        return;
    if (e->has_since && e->since > 0)
        rh.after = (uint64_t)e->since;
    if (e->val && e->val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        rh.limit = e->val->via.u64 == 0    ? 1
                   : e->val->via.u64 > 1000 ? 1000
                                           : (uint32_t)e->val->via.u64;
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_HISTORY, &rh, sizeof(rh), NULL, 0, NULL, 0,
            NULL, 0);
}

static void
do_signal(struct worker *w, struct actor *a, const hf_env *e,
          const char *caller)
{
    msgpack_packer pk;
    hf_buf data = {0};

    if (e->val)
        msgpack_packer_init(&pk, &data, hf_buf_mpwrite),
            msgpack_pack_object(&pk, *e->val);
    w->tmp.len = 0;
    msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
    hf_env_pack_signal(&pk, (hf_slice){a->addr, a->alen}, e->method,
                       (hf_slice){caller, strlen(caller)},
                       (hf_slice){data.data, data.len});
    hf__rec_fanout(&hf__cur(w)->held, a, w->tmp.data, w->tmp.len);
    hf_buf_free(&data);
}

static void
do_alarm(struct worker *w, struct actor *a, struct msg *m)
{
    const char *name = m->data + m->alen;
    struct alarm *al;
    char nbuf[72];
    int rv = 0;

    if (m->auxlen >= sizeof(nbuf))
        return;
    memcpy(nbuf, name, m->auxlen);
    nbuf[m->auxlen] = '\0';
    for (al = a->alarms; al != NULL; al = al->next)
        if (strcmp(al->name, nbuf) == 0)
            break;
    if (al == NULL || al->at != m->at)
        return; /* moved or cancelled since it was queued */
    hf__ctx_begin(w, a, a->addr, 0);
    hf_alarm_cancel(&w->ctx, nbuf);
    if (a->kind->alarm)
        rv = a->kind->alarm(&w->ctx, nbuf);
    HF_INC(alarms_fired);
    if (rv == 0) {
        hf__ctx_commit(w);
        return;
    }
    hf__ctx_abort(w);
    HF_INC(alarms_failed);
    {
        int64_t old = al->at, delay;
        uint32_t shift = al->attempt < 20 ? al->attempt : 20;
        delay = (int64_t)w->host->cfg.alarm_retry_ms << shift;
        if (delay > ALARM_BACKOFF_MAX)
            delay = ALARM_BACKOFF_MAX;
        al->attempt++;
        al->at = hf_now_ms() + delay;
        hf__alarm_write(w, a, al, old);
        hf__batch_touch(hf__cur(w), a);
        a->last_batch = hf__cur(w)->wb.id;
        hf_warn("host", "%s: alarm '%s' failed (%s), retry %u in %lld ms",
                a->addr, nbuf, w->ctx.errmsg[0] ? w->ctx.errmsg : "error",
                al->attempt, (long long)delay);
    }
}

/* The caller's subject as a C string: at most size - 1 bytes, cut at a
 * NUL (what snprintf's "%.*s" makes of it). */
static void
caller_str(char *out, size_t size, hf_slice sub)
{
    size_t n = sub.len < size - 1 ? sub.len : size - 1;
    const char *nul;

    if (n > 0 && (nul = memchr(sub.data, '\0', n)) != NULL)
        n = (size_t)(nul - (const char *)sub.data);
    if (n > 0)
        memcpy(out, sub.data, n);
    out[n] = '\0';
}

/* The envelope of a queued request or outbox message, with its value
 * unpacked into zone (if not NULL). A request carries what hf_host_submit
 * read of it (aux: an hf_env_pos), so only an outbox message is read
 * again. Returns 0, or HF_EBADREQ with e holding what could be read. */
static int
msg_env(const struct msg *m, msgpack_zone *zone, hf_env *e)
{
    const char *env = m->data + m->alen;
    size_t off = 0;
    int st;

    if (m->type == M_REQ && m->auxlen == sizeof(hf_env_pos)) {
        hf_env_pos pos;
        memcpy(&pos, env + m->len, sizeof(pos));
        return hf_env_pos_load(&pos, env, zone, e);
    }
    if (hf_env_read(env, m->len, &off, zone, e, &st) != 0) {
        memset(e, 0, sizeof(*e));
        return HF_EBADREQ;
    }
    return st;
}

static void
process(struct worker *w, struct actor *a, struct msg *m)
{
    hf_env e;
    char caller[256];

    if (m->type == M_ALARM) {
        do_alarm(w, a, m);
        goto done;
    }
    if (msg_env(m, &w->zone, &e) != 0) {
        /* e holds what could be read, the connection and request id
         * included, so the caller hears why (its pending entry would
         * otherwise wait forever). */
        if (e.op != HF_OP_SIGNAL)
            reply_err(w, m->sink, &e, HF_EBADREQ,
                      "malformed arguments (nested too deep?)");
        goto done;
    }
    caller_str(caller, sizeof(caller), e.sub);
    switch (e.op) {
    case HF_OP_CALL:
        do_call(w, a, m, &e, caller);
        break;
    case HF_OP_SUB:
        do_sub(w, a, m, &e, caller);
        break;
    case HF_OP_UNSUB:
        do_unsub(w, a, m, &e, caller);
        break;
    case HF_OP_SIGNAL:
        do_signal(w, a, &e, caller);
        break;
    case HF_OP_HISTORY:
        do_history(w, a, m, &e);
        break;
    default:
        reply_err(w, m->sink, &e, HF_EBADREQ, "unknown op");
    }
done:
    msgpack_zone_clear(&w->zone);
    a->last_batch = hf__cur(w)->wb.id;
}

/* Files a message into its actor's mailbox. */
static void
dispatch(struct worker *w, struct msg *m)
{
    struct actor *a = actor_get(w, m->data, m->alen, m->hash);

    if (a == NULL) {
        hf_warn("host", "dropped a message for unknown actor '%.*s'",
                (int)m->alen, m->data);
        msg_free(m);
        return;
    }
    if (m->type == M_REQ && a->nmsg >= (uint32_t)w->host->cfg.mailbox_max) {
        hf_env e;
        msg_env(m, NULL, &e);
        if (e.op != HF_OP_SIGNAL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, out_for(w, m->sink), hf_buf_mpwrite);
            hf_env_pack_reply_err(&pk, e.conn, e.id, HF_EOVERLOADED,
                                  "mailbox full", 12);
            HF_INC(calls[-HF_EOVERLOADED]);
        }
        HF_INC(overloaded);
        msg_free(m);
        return;
    }
    m->next = NULL;
    if (a->mtail)
        a->mtail->next = m;
    else
        a->mhead = m;
    a->mtail = m;
    a->nmsg++;
    HF_ADD(mailbox_depth, 1);
    touch(w, a);
    if (!a->queued) {
        a->queued = 1;
        a->rnext = NULL;
        if (w->rtail)
            w->rtail->rnext = a;
        else
            w->rhead = a;
        w->rtail = a;
    }
}

static void
run(struct worker *w)
{
    struct actor *a;

    while ((a = w->rhead) != NULL) {
        w->rhead = a->rnext;
        if (w->rhead == NULL)
            w->rtail = NULL;
        for (int n = 0; n < RUN_BUDGET && a->mhead != NULL; n++) {
            struct msg *m = a->mhead;
            a->mhead = m->next;
            if (a->mhead == NULL)
                a->mtail = NULL;
            a->nmsg--;
            HF_ADD(mailbox_depth, -1);
            process(w, a, m);
            msg_free(m);
        }
        if (a->mhead != NULL) {
            a->rnext = NULL;
            if (w->rtail)
                w->rtail->rnext = a;
            else
                w->rhead = a;
            w->rtail = a;
        } else {
            a->queued = 0;
        }
        if (w->cur && w->cur->wb.nhandlers >= BATCH_MAX_HANDLERS)
            seal(w);
    }
}

static void
pass(struct worker *w, struct msg *q, hf_wbatch *d)
{
    const hf_store *st = &w->host->st;

    w->now_ns = hf_mono_ns();
    if (st->ops->rd_begin(st->self, w->idx) != 0)
        hf_error("host", "worker %d: cannot begin a read snapshot", w->idx);
    while (d != NULL) {
        struct batch *b = d->owner;
        d = d->next;
        b->resolved = 1;
        if (b->wb.status != 0 && b->wb.gen == w->gen)
            commit_failed(w, b);
    }
    release_ready(w);
    while (q != NULL) {
        struct msg *m = q;
        q = q->next;
        dispatch(w, m);
    }
    run(w);
    seal(w);
    release_ready(w);
    st->ops->rd_end(st->self, w->idx);
    flush_outs(w);
    if (w->now_ns >= w->next_evict_ns) {
        evict_idle(w);
        w->next_evict_ns = w->now_ns + 250000000u;
    }
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    for (;;) {
        struct msg *q;
        hf_wbatch *d;
        int stop;

        pthread_mutex_lock(&w->mu);
        while (w->qhead == NULL && w->dhead == NULL &&
               !(w->stopping && w->phead == NULL)) {
            struct timespec ts;
            if (w->nactors == 0) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
                break;
        }
        q = w->qhead;
        d = w->dhead;
        w->qhead = w->qtail = NULL;
        w->dhead = w->dtail = NULL;
        stop = w->stopping;
        pthread_mutex_unlock(&w->mu);

        pass(w, q, d);
        if (stop && q == NULL && d == NULL && w->phead == NULL &&
            w->rhead == NULL)
            break;
    }
    return NULL;
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
        m = msg_new(M_REQ, hash, e.to.data, e.to.len,
                    (const char *)buf + start, off - start, &pos, sizeof(pos));
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
                msg_free(m);
            }
        } else {
            push_msgs(&h->w[i], heads[i], tails[i]);
        }
    }
    if (rv == 0 && errs.len > 0)
        sink->deliver(sink, &errs);
    hf_buf_free(&errs);
    return rv;
}

int
hf_host_workers(const hf_host *h)
{
    return h->nw;
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
    timer_add(s->h, at, hf_addr_hash(k + 8, alen), k + 8, alen, nul + 1,
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
        post(s->h, msg_new(M_OUTBOX, hf_addr_hash(e.to.data, e.to.len),
                           e.to.data, e.to.len, val.data, val.len, key.data,
                           key.len));
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
        actor_free(w, w->lhead);
    free(w->tab);
    while (w->qhead) {
        struct msg *m = w->qhead;
        w->qhead = m->next;
        msg_free(m);
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
    int started = 0;

    for (size_t i = 0; i < o->nkinds; i++) {
        const char *n = o->kinds[i]->name;
        char probe[HF_KIND_MAX + 8];
        /* A kind name is valid when "name/x" is a valid address. */
        if (strlen(n) > HF_KIND_MAX ||
            hf_addr_check(probe, (size_t)snprintf(probe, sizeof(probe),
                                                  "%s/x", n),
                          NULL) != 0)
            return HF_EBADREQ;
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->kinds[j]->name, n) == 0)
                return HF_EBADREQ;
    }
    if (o->cfg->workers < 1 || o->cfg->workers > 256)
        return HF_EBADREQ;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return HF_EINTERNAL;
    h->cfg = *o->cfg;
    h->st = o->store;
    h->kinds = o->kinds;
    h->nkinds = o->nkinds;
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
    h->st.ops->set_done(h->st.self, on_done, h);
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
        if (pthread_create(&h->w[started].thr, NULL, worker_main,
                           &h->w[started]) != 0)
            goto fail;
    if (pthread_create(&h->tthr, NULL, timer_main, h) != 0)
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
    for (size_t i = 0; i < h->nheap; i++)
        free(h->heap[i]);
    free(h->heap);
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
    for (size_t i = 0; i < h->nheap; i++)
        free(h->heap[i]);
    free(h->heap);
    pthread_cond_destroy(&h->tcv);
    pthread_mutex_destroy(&h->tmu);
    free(h);
}
