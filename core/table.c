/*
 * table.c - each worker's actor table (an hf_htab keyed by address hash):
 * activation (loading an actor's metadata), the LRU list, idle eviction,
 * and resetting actors from LMDB after a failed commit.
 *
 * Design notes
 * ------------
 * An actor is activated by the first message for it and stays in its
 * worker's table until it has been idle for idle_ms and holds nothing in
 * flight: no queued message, no subscriber, no unsettled cache entry, no
 * batch not yet released (evictable). The LRU list is ordered by last use,
 * least recent first, so eviction looks only at its head.
 *
 * Threads: everything here runs on the owning worker's thread only.
 */
#include <stdlib.h>
#include <sys/random.h>

#include "core/addr.h"
#include "core/host_int.h"
#include "core/metrics.h"

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

void
hf__touch(struct worker *w, struct actor *a)
{
    a->used_ns = w->now_ns;
    if (w->ltail != a) {
        lru_unlink(w, a);
        lru_append(w, a);
    }
}

/* The actor for addr, activated if needed; NULL only for an unknown kind
 * (submit checks, so only a stale outbox entry can get here). */
struct actor *
hf__actor_get(struct worker *w, const char *addr, size_t alen, uint64_t hash)
{
    struct actor *a;
    const struct hf_kind *k;
    size_t klen;

    for (hf_hnode *n = hf_htab_find(&w->actors, hf__tab_hash(hash)); n;
         n = hf_htab_next(n)) {
        a = hf_htab_entry(n, struct actor, hn);
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
    hf_htab_insert(&w->actors, &a->hn, hf__tab_hash(hash));
    lru_append(w, a);
    HF_INC(activations);
    atomic_fetch_add_explicit(&hf_metrics.actors_active, 1,
                              memory_order_relaxed);
    return a;
}

void
hf__actor_free(struct worker *w, struct actor *a)
{
    hf_htab_remove(&w->actors, &a->hn);
    lru_unlink(w, a);
    while (a->mhead) {
        struct msg *m = a->mhead;
        a->mhead = m->next;
        hf__msg_free(m);
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

void
hf__evict_idle(struct worker *w)
{
    uint64_t idle = (uint64_t)w->host->cfg.idle_ms * 1000000u;
    uint32_t n = hf_htab_count(&w->actors);

    while (n-- > 0 && w->lhead != NULL &&
           w->now_ns - w->lhead->used_ns >= idle) {
        struct actor *a = w->lhead;
        if (evictable(w, a)) {
            hf__actor_free(w, a);
            HF_INC(evictions);
        } else {
            hf__touch(w, a); /* busy or watched: look again later */
        }
    }
}

struct reset {
    struct worker *w;
    uint64_t since;
};

static void
reset_one(hf_hnode *n, void *arg)
{
    struct reset *r = arg;
    struct actor *a = hf_htab_entry(n, struct actor, hn);

    if (a->last_batch < r->since)
        return;
    hf_cache_clear(&a->cache);
    free_alarms(a);
    load_meta(r->w, a);
    /* Re-arm: a retry scheduled in the lost batch is gone, the persisted
     * time is back. Duplicates are harmless: a firing is checked against
     * the actor's alarm. */
    for (struct alarm *al = a->alarms; al; al = al->next)
        hf__timer_add(r->w->host, al->at, a->hash, a->addr, a->alen, al->name,
                      strlen(al->name));
}

/* Resets every actor with anything in batch `since` or later from the
 * store's snapshot: its cache, seq, epoch, outbox id and alarms. */
void
hf__actors_reset(struct worker *w, uint64_t since)
{
    struct reset r = {.w = w, .since = since};

    hf_htab_walk(&w->actors, reset_one, &r);
}
