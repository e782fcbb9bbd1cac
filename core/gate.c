/*
 * gate.c - batches, held output records, subscriptions, and the output
 * gate that releases them.
 *
 * Design notes
 * ------------
 * The output gate. Nothing a handler produced leaves before the commit
 * holding its writes is durable, and batches are released strictly in the
 * order they were made, so a reply that read uncommitted data (or a batch
 * without writes that followed one with them) waits for that data. Per
 * actor, events are therefore released in seq order, and a subscription
 * registers at its own release point: events before it are in its backlog
 * (read from LMDB, now durable), events after it arrive live.
 *
 * Held records. What a handler produces (replies, fanouts, subscriptions,
 * outbox sends, alarms) is appended to its batch as records (host_int.h)
 * and acted on only when the batch is released; a failed batch turns its
 * replies into errors and drops the rest.
 *
 * Reads. A handler reads its staged writes, then the actor's cache, then
 * the pass's snapshot. Releasing a batch (after the snapshot has begun)
 * turns the cache entries it carried into clean copies of what LMDB now
 * holds (a few per actor, see cache.c), so the next read of a key the
 * actor just wrote costs no B-tree lookup. They stay true because only the
 * actor writes its keys; an actor is reset with its whole cache.
 *
 * Commit failure. The store fails a batch and fences every later batch of
 * that worker with the same generation. When the worker learns of it, it
 * bumps its generation, fails the later batches it never sent to the store
 * (they may have read the lost writes), and resets every actor that had
 * anything in those batches from LMDB (table.c). New work proceeds from
 * there.
 *
 * Output buffers. Released output is gathered in one buffer per sink per
 * pass and handed to the sinks at the end of the pass.
 *
 * Threads: everything here runs on the owning worker's thread only.
 */
#include <stdlib.h>

#include "core/env.h"
#include "core/host_int.h"
#include "core/vec.h"
#include "core/log.h"
#include "core/metrics.h"

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
void
hf__rec_reply(hf_buf *dst, hf_sink *sink, uint64_t conn, uint64_t id, int err,
              const void *data, size_t len)
{
    struct r_reply rr = {.sink = sink, .conn = conn, .id = id, .err = err};
    if (sink)
        hf_sink_ref(sink);
    hf__rec(dst, R_REPLY, &rr, sizeof(rr), data, len, NULL, 0, NULL, 0);
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
    HF_VEC_GROW(a->subs, a->nsubs, a->capsubs, 4);
    a->subs[a->nsubs] =
        (struct subscr){.sink = s, .conn = conn, .announce = announce};
    HF_MUST(hf_buf_append(&a->subs[a->nsubs].who, who, wl));
    a->nsubs++;
    if ((sc = sinkcount_find(a, s)) != NULL) {
        sc->n++;
        return;
    }
    HF_VEC_PUSH(a->sinks, a->nsinks, a->capsinks, 4,
                ((struct sinkcount){.sink = s, .n = 1}));
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

hf_buf *
hf__out_for(struct worker *w, hf_sink *s)
{
    for (uint32_t i = 0; i < w->nouts; i++)
        if (w->outs[i].sink == s)
            return &w->outs[i].buf;
    HF_VEC_GROW(w->outs, w->nouts, w->capouts, 8);
    hf_sink_ref(s);
    w->outs[w->nouts] = (struct out){.sink = s};
    return &w->outs[w->nouts++].buf;
}

void
hf__flush_outs(struct worker *w)
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
        HF_MUST(hf_buf_append(hf__out_for(w, a->sinks[i].sink), env, len));
}

/* ------------------------------------------------------------------ */
/* batches                                                             */

/* Batches are reused, and a reused one keeps the buffers it grew. Kept
 * without a bound, the pool ratcheted up to (the most batches ever in
 * flight at once) x (the largest buffers each ever held): the soak saw
 * the heap climb for as long as it ran. So the pool keeps at most
 * POOL_MAX batches, and a batch whose buffers grew past BUF_KEEP gives
 * them back before it waits there. A first bound of 64 batches of up to
 * 256 KiB each still let the heap creep for half an hour (heaptrack: the
 * pooled held buffers, a slow fsync at a time); a worker rarely has more
 * than a few batches in flight, so the pool is small and its buffers
 * modest: at most POOL_MAX x 3 x BUF_KEEP (1.5 MiB) per worker. */
#define POOL_MAX 8
#define BUF_KEEP (64 * 1024)

static void
pool_put(struct worker *w, struct batch *b)
{
    if (w->npool >= POOL_MAX) {
        hf_buf_free(&b->wb.ops);
        hf_buf_free(&b->held);
        free(b->acts);
        free(b);
        return;
    }
    if (b->wb.ops.cap > BUF_KEEP)
        hf_buf_free(&b->wb.ops);
    if (b->held.cap > BUF_KEEP)
        hf_buf_free(&b->held);
    if (b->capacts > BUF_KEEP / sizeof(*b->acts)) {
        free(b->acts);
        b->acts = NULL;
        b->capacts = 0;
    }
    b->pnext = w->pool;
    w->pool = b;
    w->npool++;
}

struct batch *
hf__cur(struct worker *w)
{
    struct batch *b = w->cur;

    if (b != NULL)
        return b;
    if ((b = w->pool) != NULL) {
        w->pool = b->pnext;
        w->npool--;
    } else
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
void
hf__seal(struct worker *w)
{
    struct batch *b = w->cur;
    const hf_store *st = &w->host->st;

    if (b == NULL)
        return;
    w->cur = NULL;
    if (b->wb.nops == 0 && b->held.len == 0) {
        pool_put(w, b);
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

    if (seq != bl->next || !hf_env_event_value_ok(val)) {
        bl->gap = 1;
        return 1;
    }
    msgpack_packer_init(&pk, bl->buf, hf_buf_mpwrite);
    HF_MUST(hf_env_pack_event(&pk, 1, bl->conn,
                              (hf_slice){bl->a->addr, bl->a->alen}, seq, val));
    bl->next++;
    return 0;
}

static void
release_sub(struct worker *w, const struct r_sub *rs, const char *who,
            size_t wl, int status)
{
    struct actor *a = rs->a;
    const hf_store *st = &w->host->st;
    hf_buf *out = hf__out_for(w, rs->sink);
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
    hf_buf *out = hf__out_for(w, ru->sink);
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

    if (!hf_env_event_value_ok(val))
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
    hf_buf *out = hf__out_for(w, rh->sink);
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
            msgpack_packer_init(&pk, hf__out_for(w, rr.sink), hf_buf_mpwrite);
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
            m = hf__msg_new(M_OUTBOX, ro.hash, v, ro.alen, v + ro.alen,
                            ro.envlen, v + ro.alen + ro.envlen, ro.keylen);
            hf__post(w->host, m);
            break;
        }
        case R_ALARM: {
            struct r_alarm ra;
            const char *v;
            memcpy(&ra, body, sizeof(ra));
            v = body + sizeof(ra);
            if (status == 0)
                hf__timer_add(w->host, ra.at, ra.hash, v, ra.alen,
                              v + ra.alen, ra.nlen);
            break;
        }
        }
    }
}

void
hf__release_ready(struct worker *w)
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
        pool_put(w, b);
    }
}

/* A batch failed: everything the worker made after it is suspect. */
void
hf__commit_failed(struct worker *w, struct batch *failed)
{
    int status = failed->wb.status;

    w->gen++;
    for (struct batch *b = failed->pnext; b != NULL; b = b->pnext)
        if (!b->submitted) {
            b->wb.status = status;
            b->resolved = 1;
        }
    hf__actors_reset(w, failed->wb.id);
    hf_warn("host", "worker %d: commit failed (%s); actors reset from disk",
            w->idx, hf_err_name(status));
}
