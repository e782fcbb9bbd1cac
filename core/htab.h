/*
 * htab.h - an intrusive hash table keyed by a 64-bit hash.
 *
 * We often need to find things by a hash of what names them (an address, a
 * connection id) in O(1), and to remove them without a second lookup. Each
 * such thing embeds an hf_hnode; the table only links nodes, it allocates
 * nothing per entry. Several nodes may share one hash (different names
 * that collide): hf_htab_find returns the first node with the hash and
 * hf_htab_next the following ones, and the caller compares its own key.
 *
 * The bucket array doubles when the table holds as many nodes as buckets,
 * so chains stay short; it is allocated on the first insert, so an empty
 * table costs only the struct. Out of memory while growing is not an
 * error: the table keeps its buckets and longer chains.
 *
 * Threads: none of its own. A table belongs to whoever embeds it; callers
 * serialize every call on one table.
 */
#ifndef HF_CORE_HTAB_H
#define HF_CORE_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct hf_hnode {
    struct hf_hnode *hn_next;
    uint64_t hn_hash;
} hf_hnode;

typedef struct hf_htab {
    hf_hnode **ht_b; /* buckets, NULL until the first insert */
    uint32_t ht_mask;
    uint32_t ht_n; /* nodes linked */
} hf_htab;

/* Links n under hash. n must not be in a table. */
void hf_htab_insert(hf_htab *t, hf_hnode *n, uint64_t hash);
/* The first node with this hash, or NULL. */
hf_hnode *hf_htab_find(const hf_htab *t, uint64_t hash);
/* The next node after n with n's hash, or NULL. */
hf_hnode *hf_htab_next(const hf_hnode *n);
/* Unlinks n, which must be in t. */
void hf_htab_remove(hf_htab *t, hf_hnode *n);
/* Every node, in no order, for a walk that may remove the node it is
 * given (but no other): hf_htab_walk(t, fn, arg) calls fn(node, arg). */
void hf_htab_walk(hf_htab *t, void (*fn)(hf_hnode *, void *), void *arg);
/* Frees the buckets (not the nodes) and empties the table. */
void hf_htab_fini(hf_htab *t);

static inline uint32_t
hf_htab_count(const hf_htab *t)
{
    return t->ht_n;
}

/* The struct that embeds node n as member m. */
#define hf_htab_entry(n, type, m)                                              \
    ((type *)(void *)((char *)(n)-offsetof(type, m)))

#endif
