/* htab.c - see htab.h. */
#include <stdlib.h>

#include "core/htab.h"
#include "core/oom.h"

#define MIN_BUCKETS 8

static void
grow(hf_htab *t)
{
    uint32_t ns = t->ht_b ? (t->ht_mask + 1) * 2 : MIN_BUCKETS;
    hf_hnode **nb = calloc(ns, sizeof(*nb));

    if (nb == NULL)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; t->ht_b && i <= t->ht_mask; i++) {
        hf_hnode *x = t->ht_b[i], *nx;
        for (; x; x = nx) {
            nx = x->hn_next;
            x->hn_next = nb[x->hn_hash & (ns - 1)];
            nb[x->hn_hash & (ns - 1)] = x;
        }
    }
    free(t->ht_b);
    t->ht_b = nb;
    t->ht_mask = ns - 1;
}

void
hf_htab_insert(hf_htab *t, hf_hnode *n, uint64_t hash)
{
    hf_hnode **b;

    if (t->ht_b == NULL || t->ht_n > t->ht_mask)
        grow(t);
    if (t->ht_b == NULL)
        hf_oom(); /* not even the first buckets: see htab.h's note */
    n->hn_hash = hash;
    b = &t->ht_b[hash & t->ht_mask];
    n->hn_next = *b;
    *b = n;
    t->ht_n++;
}

hf_hnode *
hf_htab_find(const hf_htab *t, uint64_t hash)
{
    hf_hnode *n;

    if (t->ht_b == NULL)
        return NULL;
    for (n = t->ht_b[hash & t->ht_mask]; n && n->hn_hash != hash;)
        n = n->hn_next;
    return n;
}

hf_hnode *
hf_htab_next(const hf_hnode *n)
{
    hf_hnode *x;

    for (x = n->hn_next; x && x->hn_hash != n->hn_hash;)
        x = x->hn_next;
    return x;
}

void
hf_htab_remove(hf_htab *t, hf_hnode *n)
{
    hf_hnode **pp = &t->ht_b[n->hn_hash & t->ht_mask];

    while (*pp != n)
        pp = &(*pp)->hn_next;
    *pp = n->hn_next;
    n->hn_next = NULL;
    t->ht_n--;
}

void
hf_htab_walk(hf_htab *t, void (*fn)(hf_hnode *, void *), void *arg)
{
    for (uint32_t i = 0; t->ht_b && i <= t->ht_mask; i++) {
        hf_hnode *x = t->ht_b[i], *nx;
        for (; x; x = nx) {
            nx = x->hn_next;
            fn(x, arg);
        }
    }
}

void
hf_htab_fini(hf_htab *t)
{
    free(t->ht_b);
    t->ht_b = NULL;
    t->ht_mask = t->ht_n = 0;
}
