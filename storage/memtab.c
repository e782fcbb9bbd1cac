/*
 * memtab.c - the WAL's memtable (memtab.h): a skip list.
 *
 * Design notes
 *
 * Why a skip list: reads merge it with an LMDB cursor in both directions,
 * so it must be ordered; one writer inserts while readers look up under
 * a rwlock, and a skip list inserts without rebalancing. Nodes never
 * move or go away before the table is freed, so a slice handed to a
 * reader stays valid for as long as the store promises (rd_end).
 *
 * Memory: every node and value lives until the table is freed, so they
 * are cut from chunks of their own (mt_alloc), mapped with mmap and
 * unmapped together in hf_memtab_free. malloc would spread a table's
 * hundreds of thousands of small blocks across the writer thread's arena
 * between longer-lived blocks, and a freed table would then not go back
 * to the system: the server's RSS crept up with each checkpoint that
 * freed a table into holes the next could not quite reuse.
 *
 * Point lookups (every get, and every put to find the key it replaces)
 * go through a hash index of the nodes (core/htab.h) instead of the list:
 * the list's O(log n) search, a memcmp per level, was the largest item
 * of a durable write's profile. Only a key new to the table pays the
 * list's search, to be linked in order.
 *
 * Order: database first, then the key as LMDB's default comparison
 * orders it (memcmp on the common length, then the shorter first).
 * Backward steps search from the head for the last key below the current
 * one (O(log n) each): reverse scans are short (history, recent items).
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/addr.h"
#include "core/htab.h"
#include "core/oom.h"
#include "storage/memtab.h"

#define MAXH  20                  /* 4^20 keys before the list degrades */
#define CHUNK ((size_t)256 << 10) /* a chunk's size; larger blocks: own */

struct mt_val {
    struct mt_val *old; /* the value this one replaced; freed with it */
    uint64_t lsn;
    uint32_t len;
    uint8_t del;
    unsigned char data[];
};

struct mt_node {
    hf_hnode hn; /* in the table's index, by mt_hash */
    struct mt_val *v;
    uint32_t klen;
    uint8_t dbi, h;
    struct mt_node *next[]; /* [h], then the key's bytes */
};

struct mt_chunk {
    struct mt_chunk *next; /* the chunk mapped before this one */
    size_t size, used;     /* mapped bytes, bytes handed out */
    alignas(max_align_t) unsigned char data[];
};

struct hf_memtab {
    struct mt_chunk *chunks; /* newest first; blocks are cut from it */
    struct mt_node *head;    /* a node of height MAXH with no key */
    hf_htab idx;             /* every node, by mt_hash */
    int h;                   /* highest level in use */
    uint64_t rnd;            /* xorshift state for node heights */
    size_t bytes, count;
};

static const unsigned char *
nkey(const struct mt_node *n)
{
    return (const unsigned char *)&n->next[n->h];
}

/* <0, 0, >0: node n against (dbi, k). */
static int
cmp(const struct mt_node *n, int dbi, const void *k, size_t kl)
{
    size_t m = n->klen < kl ? n->klen : kl;
    int r;

    if (n->dbi != dbi)
        return n->dbi < dbi ? -1 : 1;
    if (m && (r = memcmp(nkey(n), k, m)) != 0)
        return r;
    return (n->klen > kl) - (n->klen < kl);
}

/* n bytes, aligned for any type, from the table's chunks. */
static void *
mt_alloc(hf_memtab *m, size_t n)
{
    const size_t al = alignof(max_align_t);
    struct mt_chunk *c = m->chunks;
    size_t size;

    n = (n + al - 1) & ~(al - 1);
    if (c == NULL || c->size - c->used < n) {
        size = sizeof(*c) + n;
        if (size < CHUNK)
            size = CHUNK;
        c = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED)
            hf_oom();
        c->size = size - sizeof(*c);
        c->used = 0;
        if (m->chunks && size > CHUNK) { /* keep cutting from the last */
            c->next = m->chunks->next;
            m->chunks->next = c;
        } else {
            c->next = m->chunks;
            m->chunks = c;
        }
    }
    c->used += n;
    return c->data + c->used - n;
}

static uint64_t
mt_hash(int dbi, const void *k, size_t kl)
{
    return hf_addr_hash(k, kl) ^ (uint64_t)dbi * 0x9E3779B97F4A7C15ull;
}

/* The node of (dbi, k) with hash h, or NULL. */
static struct mt_node *
lookup(const hf_memtab *m, uint64_t h, int dbi, const void *k, size_t kl)
{
    for (hf_hnode *x = hf_htab_find(&m->idx, h); x; x = hf_htab_next(x)) {
        struct mt_node *n = hf_htab_entry(x, struct mt_node, hn);
        if (n->dbi == dbi && n->klen == kl &&
            (kl == 0 || memcmp(nkey(n), k, kl) == 0))
            return n;
    }
    return NULL;
}

hf_memtab *
hf_memtab_new(void)
{
    hf_memtab *m = hf_xcalloc(1, sizeof(*m));

    m->head = hf_xcalloc(1, sizeof(*m->head) + MAXH * sizeof(m->head));
    m->head->h = MAXH;
    m->h = 1;
    m->rnd = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)m;
    return m;
}

void
hf_memtab_free(hf_memtab *m)
{
    struct mt_chunk *c, *next;

    if (m == NULL)
        return;
    for (c = m->chunks; c; c = next) {
        next = c->next;
        munmap(c, sizeof(*c) + c->size);
    }
    hf_htab_fini(&m->idx);
    free(m->head);
    free(m);
}

static int
rand_height(hf_memtab *m)
{
    uint64_t x = m->rnd;
    int h = 1;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    m->rnd = x;
    while (h < MAXH && (x & 3) == 0) { /* p = 1/4 a level */
        h++;
        x >>= 2;
    }
    return h;
}

/* Fills prev[] with the last node below (dbi, k) at each level; returns
 * the first node >= (dbi, k), or NULL. */
static struct mt_node *
find_ge(const hf_memtab *m, int dbi, const void *k, size_t kl,
        struct mt_node **prev)
{
    struct mt_node *x = m->head;

    for (int l = m->h - 1; l >= 0; l--) {
        while (x->next[l] && cmp(x->next[l], dbi, k, kl) < 0)
            x = x->next[l];
        if (prev)
            prev[l] = x;
    }
    return x->next[0];
}

void
hf_memtab_put(hf_memtab *m, uint64_t lsn, int dbi, const void *k, size_t kl,
              const void *v, size_t vl, int del)
{
    struct mt_node *prev[MAXH], *n;
    struct mt_val *nv = mt_alloc(m, sizeof(*nv) + vl);
    uint64_t hash = mt_hash(dbi, k, kl);
    int h;

    nv->lsn = lsn;
    nv->len = (uint32_t)vl;
    nv->del = (uint8_t)(del != 0);
    if (vl)
        memcpy(nv->data, v, vl);
    m->bytes += sizeof(*nv) + vl;
    if ((n = lookup(m, hash, dbi, k, kl)) != NULL) {
        nv->old = n->v;
        n->v = nv;
        return;
    }
    find_ge(m, dbi, k, kl, prev);
    nv->old = NULL;
    h = rand_height(m);
    for (int l = m->h; l < h; l++)
        prev[l] = m->head;
    if (h > m->h)
        m->h = h;
    n = mt_alloc(m, sizeof(*n) + (size_t)h * sizeof(n) + kl);
    n->v = nv;
    n->klen = (uint32_t)kl;
    n->dbi = (uint8_t)dbi;
    n->h = (uint8_t)h;
    memcpy((unsigned char *)&n->next[h], k, kl);
    for (int l = 0; l < h; l++) {
        n->next[l] = prev[l]->next[l];
        prev[l]->next[l] = n;
    }
    hf_htab_insert(&m->idx, &n->hn, hash);
    m->bytes += sizeof(*n) + (size_t)h * sizeof(n) + kl;
    m->count++;
}

size_t
hf_memtab_bytes(const hf_memtab *m)
{
    return m->bytes;
}

size_t
hf_memtab_count(const hf_memtab *m)
{
    return m->count;
}

/* The newest version of n at or below snap, or NULL. */
static const struct mt_val *
as_of(const struct mt_node *n, uint64_t snap)
{
    const struct mt_val *v = n->v;

    while (v && v->lsn > snap)
        v = v->old;
    return v;
}

int
hf_memtab_get(const hf_memtab *m, uint64_t snap, int dbi, hf_slice key,
              hf_slice *val, int *del)
{
    const struct mt_node *n =
        lookup(m, mt_hash(dbi, key.data, key.len), dbi, key.data, key.len);
    const struct mt_val *v;

    if (n == NULL || (v = as_of(n, snap)) == NULL)
        return 0;
    val->data = v->data;
    val->len = v->len;
    *del = v->del;
    return 1;
}

static const struct mt_node *
in_db(const struct mt_node *n, int dbi)
{
    return n && n->dbi == dbi ? n : NULL;
}

/* The last node of it's database below (dbi, k); with k NULL, its last. */
static const struct mt_node *
last_below(const hf_memtab_it *it, const void *k, size_t kl)
{
    struct mt_node *prev[MAXH];

    if (k == NULL) /* the last key of dbi: the last one below dbi + 1 */
        find_ge(it->m, it->dbi + 1, "", 0, prev);
    else
        find_ge(it->m, it->dbi, k, kl, prev);
    return prev[0] == it->m->head ? NULL : in_db(prev[0], it->dbi);
}

void
hf_memtab_seek_ge(hf_memtab_it *it, const hf_memtab *m, uint64_t snap, int dbi,
                  hf_slice k)
{
    it->m = m;
    it->dbi = dbi;
    it->snap = snap;
    it->node = in_db(find_ge(m, dbi, k.data, k.len, NULL), dbi);
    while (it->node && as_of(it->node, snap) == NULL)
        it->node = in_db(it->node->next[0], dbi);
}

void
hf_memtab_seek_lt(hf_memtab_it *it, const hf_memtab *m, uint64_t snap, int dbi,
                  hf_slice k)
{
    it->m = m;
    it->dbi = dbi;
    it->snap = snap;
    it->node = last_below(it, k.len ? k.data : NULL, k.len);
    while (it->node && as_of(it->node, snap) == NULL)
        it->node = last_below(it, nkey(it->node), it->node->klen);
}

void
hf_memtab_next(hf_memtab_it *it)
{
    do
        it->node = it->node ? in_db(it->node->next[0], it->dbi) : NULL;
    while (it->node && as_of(it->node, it->snap) == NULL);
}

void
hf_memtab_prev(hf_memtab_it *it)
{
    do
        it->node =
            it->node ? last_below(it, nkey(it->node), it->node->klen) : NULL;
    while (it->node && as_of(it->node, it->snap) == NULL);
}

void
hf_memtab_cur(const hf_memtab_it *it, hf_slice *key, hf_slice *val, int *del)
{
    const struct mt_val *v = as_of(it->node, it->snap);

    key->data = nkey(it->node);
    key->len = it->node->klen;
    val->data = v->data;
    val->len = v->len;
    *del = v->del;
}

void
hf_memtab_each(const hf_memtab *m, hf_memtab_visit *fn, void *arg)
{
    for (const struct mt_node *n = m->head->next[0]; n; n = n->next[0])
        fn(arg, n->dbi, (hf_slice){nkey(n), n->klen},
           (hf_slice){n->v->data, n->v->len}, n->v->del);
}
