/*
 * cache.h - an actor's overlay of writes that are not yet durable, plus a
 * few clean copies of recently written keys.
 *
 * Every write an actor's handler makes lands here (tagged with the worker
 * batch that carries it to LMDB, "dirty") and in the batch. Reads look here
 * first, then in LMDB. When a batch's commit is durable and the worker has
 * begun a read snapshot that includes it, hf_cache_prune settles the
 * entries that batch carried (unless a later batch wrote the key again):
 * small ones become clean copies of what LMDB now holds (batch 0; at most
 * 8 per actor, at most 256 bytes each, oldest dropped first) and the rest
 * are dropped. Clean copies stay true because only the actor writes its
 * keys; a reset clears the whole cache.
 *
 * Entries are kept in a hash table (core/htab.h) for lookups and in a list
 * ordered by batch for pruning. Thread affinity: owned by the actor's worker.
 */
#ifndef HF_CORE_CACHE_H
#define HF_CORE_CACHE_H

#include <stdint.h>

#include "core/buf.h"
#include "core/htab.h"

typedef struct hf_centry {
    hf_hnode hn;                   /* in the table, by hash of dbi and key */
    struct hf_centry *prev, *next; /* batch order, oldest first */
    uint64_t batch;
    uint32_t vlen;
    uint16_t klen;
    uint8_t dbi;
    uint8_t tomb; /* a delete */
    char *val;
    char key[];
} hf_centry;

typedef struct hf_cache {
    hf_htab tab; /* every entry, clean and dirty */
    hf_centry *oldest, *newest;
} hf_cache;

/* The entry for (dbi, key), or NULL. Valid until the next set or prune. */
hf_centry *hf_cache_get(hf_cache *c, int dbi, const void *k, size_t kl);

/* Records a write (tomb = delete) carried by batch. Out of memory aborts
 * (core/oom.h). */
void hf_cache_set(hf_cache *c, int dbi, const void *k, size_t kl,
                  const void *v, size_t vl, int tomb, uint64_t batch);

/* Settles entries carried by batches <= batch (see above). */
void hf_cache_prune(hf_cache *c, uint64_t batch);

/* Drops everything (used to reset an actor after a failed commit). */
void hf_cache_clear(hf_cache *c);

/* Whether no write is in flight: clean entries sit before dirty ones in
 * batch order, so the newest entry tells. */
static inline int
hf_cache_settled(const hf_cache *c)
{
    return c->newest == NULL || c->newest->batch == 0;
}

static inline int
hf_cache_empty(const hf_cache *c)
{
    return hf_htab_count(&c->tab) == 0;
}

#endif
