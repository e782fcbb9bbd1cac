/*
 * cache.c - see cache.h. An hf_htab plus an intrusive doubly linked list.
 *
 * Design notes
 * ------------
 * Dirty and clean entries. An entry written by a batch whose commit is not
 * yet durable is dirty (batch > 0). When hf_cache_prune learns that its
 * batch is durable (and the worker's snapshot includes it), the entry is
 * not always dropped: if its value is small and the actor has few clean
 * entries, it stays as a clean entry (batch 0), a copy of what LMDB now
 * holds. Handlers mostly read what they wrote last time (a counter reads
 * its value, adds, writes it), so the next read is served here instead of
 * by a B-tree lookup, and the next write reuses the entry and, when the
 * size matches, its value buffer.
 *
 * A clean entry stays true because only the actor's own handlers write its
 * keys, and every such write makes the entry dirty again; a failed commit
 * resets the actor with hf_cache_clear, clean entries included. So a read
 * gets the same answer from a clean entry as from the snapshot.
 *
 * The list holds the clean entries first, least recently cleaned at the
 * head, then the dirty ones in batch order (a write appends with the
 * current batch, the newest). Pruning skips the clean prefix (at most
 * CLEAN_MAX long), turns the durable dirty entries at its end clean in
 * place, and drops the oldest clean entries beyond CLEAN_MAX. So an actor
 * holds at most CLEAN_MAX clean entries of at most CLEAN_VMAX bytes each,
 * and it has no write in flight exactly when the tail of the list (the
 * newest entry) is clean or the list is empty; the table holds both kinds.
 */
#include <stdlib.h>

#include "core/cache.h"
#include "core/oom.h"

#define CLEAN_MAX  8   /* clean entries per actor */
#define CLEAN_VMAX 256 /* largest value kept clean, bytes */

static uint32_t
hash(int dbi, const void *k, size_t kl)
{
    const unsigned char *p = k;
    uint32_t h = 2166136261u ^ (uint32_t)dbi;
    for (size_t i = 0; i < kl; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static void
unlink_entry(hf_cache *c, hf_centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->oldest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->newest = e->prev;
    e->prev = e->next = NULL;
}

static void
append_entry(hf_cache *c, hf_centry *e)
{
    e->next = NULL;
    e->prev = c->newest;
    if (c->newest)
        c->newest->next = e;
    else
        c->oldest = e;
    c->newest = e;
}

hf_centry *
hf_cache_get(hf_cache *c, int dbi, const void *k, size_t kl)
{
    if (hf_htab_count(&c->tab) == 0)
        return NULL;
    for (hf_hnode *n = hf_htab_find(&c->tab, hash(dbi, k, kl)); n != NULL;
         n = hf_htab_next(n)) {
        hf_centry *e = hf_htab_entry(n, hf_centry, hn);
        if (e->dbi == dbi && e->klen == kl && memcmp(e->key, k, kl) == 0)
            return e;
    }
    return NULL;
}

void
hf_cache_set(hf_cache *c, int dbi, const void *k, size_t kl, const void *v,
             size_t vl, int tomb, uint64_t batch)
{
    hf_centry *e = hf_cache_get(c, dbi, k, kl);
    int reuse = e != NULL && !tomb && vl > 0 && e->val != NULL && e->vlen == vl;
    char *nv = NULL;

    if (!reuse && !tomb && vl > 0) {
        nv = hf_xmalloc(vl);
        memcpy(nv, v, vl);
    }
    if (e == NULL) {
        e = hf_xmalloc(sizeof(*e) + kl);
        memset(e, 0, sizeof(*e));
        e->klen = (uint16_t)kl;
        e->dbi = (uint8_t)dbi;
        memcpy(e->key, k, kl);
        hf_htab_insert(&c->tab, &e->hn, hash(dbi, k, kl));
    } else {
        if (reuse) {
            memcpy(e->val, v, vl);
            nv = e->val;
        } else {
            free(e->val);
        }
        unlink_entry(c, e);
    }
    e->val = nv;
    e->vlen = tomb ? 0 : (uint32_t)vl;
    e->tomb = (uint8_t)(tomb != 0);
    e->batch = batch;
    append_entry(c, e);
}

static void
remove_entry(hf_cache *c, hf_centry *e)
{
    hf_htab_remove(&c->tab, &e->hn);
    unlink_entry(c, e);
    free(e->val);
    free(e);
}

void
hf_cache_prune(hf_cache *c, uint64_t batch)
{
    hf_centry *e = c->oldest, *next;
    uint32_t nclean = 0;

    for (; e != NULL && e->batch == 0; e = e->next)
        nclean++;
    for (; e != NULL && e->batch <= batch; e = next) {
        next = e->next;
        if (e->vlen > CLEAN_VMAX) {
            remove_entry(c, e);
            continue;
        }
        e->batch = 0; /* clean, and already where clean entries go */
        if (++nclean > CLEAN_MAX) {
            remove_entry(c, c->oldest);
            nclean--;
        }
    }
}

void
hf_cache_clear(hf_cache *c)
{
    while (c->oldest != NULL)
        remove_entry(c, c->oldest);
    hf_htab_fini(&c->tab);
}
