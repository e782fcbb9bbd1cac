/*
 * test_memtab.c - the write-ahead log's memtable (storage/memtab.h)
 * against a plain model: random puts and deletes over two databases with
 * keys of every length 0 to 9 bytes (so many share prefixes and some hash
 * alike), values of up to 100 KiB now and then (blocks larger than one of
 * the table's chunks), then every point read, forward and backward walk
 * at several snapshots compared with what the model says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/memtab.h"

#define NKEYS 600 /* distinct (dbi, key) pairs the ops draw from */
#define NOPS  20000
#define BIG   (100u << 10)

struct mkey {
    int dbi;
    size_t len;
    unsigned char k[9];
};

/* One write of the model: key index, lsn, value (or a tombstone). */
struct mop {
    int key;
    uint64_t lsn;
    int del;
    size_t vlen;
    unsigned char *v;
};

static struct mkey keys[NKEYS];
static struct mop ops[NOPS];

static uint64_t rnd = 88172645463325252ull;

static uint64_t
next_rand(void)
{
    rnd ^= rnd << 13;
    rnd ^= rnd >> 7;
    rnd ^= rnd << 17;
    return rnd;
}

/* LMDB's order: memcmp on the common length, then the shorter first. */
static int
key_cmp(const struct mkey *a, const struct mkey *b)
{
    size_t m = a->len < b->len ? a->len : b->len;
    int r;

    if (a->dbi != b->dbi)
        return a->dbi < b->dbi ? -1 : 1;
    if (m && (r = memcmp(a->k, b->k, m)) != 0)
        return r;
    return (a->len > b->len) - (a->len < b->len);
}

static int
key_qcmp(const void *x, const void *y)
{
    return key_cmp(x, y);
}

/* The model's newest write of key i at or below snap, or NULL. */
static const struct mop *
model_get(int i, int nops, uint64_t snap)
{
    for (int j = nops - 1; j >= 0; j--)
        if (ops[j].key == i && ops[j].lsn <= snap)
            return &ops[j];
    return NULL;
}

static void
make_keys(void)
{
    for (int i = 0; i < NKEYS; i++) {
        struct mkey *k;
        int dup;
        do {
            k = &keys[i];
            k->dbi = (int)(next_rand() % 2);
            k->len = (size_t)(next_rand() % 10);
            for (size_t j = 0; j < k->len; j++)
                k->k[j] = (unsigned char)("ab\0\xff"[next_rand() % 4]);
            dup = 0;
            for (int j = 0; j < i && !dup; j++)
                dup = key_cmp(&keys[j], k) == 0;
        } while (dup);
    }
    qsort(keys, NKEYS, sizeof(keys[0]), key_qcmp);
}

static void
check_value(const struct mop *want, hf_slice v, int del)
{
    assert_int_equal(del, want->del);
    if (!want->del) {
        assert_int_equal(v.len, want->vlen);
        assert_memory_equal(v.data, want->v, want->vlen);
    }
}

/* When key i has a version at the iterator's snapshot, checks that the
 * iterator is on it with that version, and returns 1 (step on); else 0. */
static int
check_cur(const hf_memtab_it *it, int i, int nops)
{
    const struct mop *w = model_get(i, nops, it->snap);
    hf_slice k, v;
    int del;

    if (w == NULL)
        return 0;
    assert_non_null(it->node);
    hf_memtab_cur(it, &k, &v, &del);
    assert_int_equal(k.len, keys[i].len);
    if (k.len)
        assert_memory_equal(k.data, keys[i].k, k.len);
    check_value(w, v, del);
    return 1;
}

/* Every point read and both walks of both databases as of snap. */
static void
check_at(const hf_memtab *m, int nops, uint64_t snap)
{
    for (int dbi = 0; dbi < 2; dbi++) {
        hf_memtab_it it;
        int first = -1, last = -1;

        for (int i = 0; i < NKEYS; i++) {
            const struct mop *w = model_get(i, nops, snap);
            hf_slice v;
            int del;
            int found =
                hf_memtab_get(m, snap, keys[i].dbi,
                              (hf_slice){keys[i].k, keys[i].len}, &v, &del);
            if (keys[i].dbi != dbi)
                continue;
            assert_int_equal(found, w != NULL);
            if (w)
                check_value(w, v, del);
            if (w && first < 0)
                first = i;
            if (w)
                last = i;
        }
        /* Forward from the start, then backward from the end: each key
         * with a version at snap, in order, tombstones included. */
        hf_memtab_seek_ge(&it, m, snap, dbi, (hf_slice){"", 0});
        for (int i = 0; i < NKEYS; i++)
            if (keys[i].dbi == dbi && check_cur(&it, i, nops))
                hf_memtab_next(&it);
        assert_null(it.node);
        hf_memtab_seek_lt(&it, m, snap, dbi, (hf_slice){"", 0});
        for (int i = NKEYS - 1; i >= 0; i--)
            if (keys[i].dbi == dbi && check_cur(&it, i, nops))
                hf_memtab_prev(&it);
        assert_null(it.node);
        /* A seek into the middle lands on the model's next key. */
        if (first >= 0) {
            int mid = (first + last) / 2, want = -1;
            hf_slice k, v;
            int del;
            for (int i = mid; i < NKEYS && want < 0; i++)
                if (keys[i].dbi == dbi && model_get(i, nops, snap))
                    want = i;
            hf_memtab_seek_ge(&it, m, snap, dbi,
                              (hf_slice){keys[mid].k, keys[mid].len});
            if (keys[mid].dbi != dbi || want < 0)
                continue; /* mid is in the other database */
            assert_non_null(it.node);
            hf_memtab_cur(&it, &k, &v, &del);
            assert_int_equal(k.len, keys[want].len);
        }
    }
}

static void
test_memtab_matches_model_at_every_snapshot(void **state)
{
    hf_memtab *m = hf_memtab_new();
    uint64_t lsn = 1;
    int n = 0;

    (void)state;
    make_keys();
    while (n < NOPS) {
        /* A group: a few writes under one LSN, as one log record. */
        int g = 1 + (int)(next_rand() % 4);
        for (int j = 0; j < g && n < NOPS; j++, n++) {
            struct mop *o = &ops[n];
            const struct mkey *k;
            o->key = (int)(next_rand() % NKEYS);
            o->lsn = lsn;
            o->del = next_rand() % 5 == 0;
            o->vlen = next_rand() % 500 == 0 ? BIG : next_rand() % 40;
            o->v = malloc(o->vlen ? o->vlen : 1);
            assert_non_null(o->v);
            for (size_t b = 0; b < o->vlen; b++)
                o->v[b] = (unsigned char)next_rand();
            k = &keys[o->key];
            hf_memtab_put(m, lsn, k->dbi, k->k, k->len, o->v,
                          o->del ? 0 : o->vlen, o->del);
            if (o->del)
                o->vlen = 0;
        }
        lsn++;
        if (lsn % 2000 == 0) /* a reader's view while the writer goes on */
            check_at(m, n, lsn - 1);
    }
    check_at(m, n, lsn - 1);
    check_at(m, n, lsn / 2);
    check_at(m, n, 1);
    check_at(m, n, 0); /* before anything: nothing */
    assert_true(hf_memtab_count(m) <= NKEYS);
    assert_true(hf_memtab_bytes(m) > 0);
    hf_memtab_free(m);
    for (int i = 0; i < NOPS; i++)
        free(ops[i].v);
}

static void
test_memtab_free_accepts_null_and_empty(void **state)
{
    hf_memtab *m = hf_memtab_new();
    hf_slice v;
    int del;

    (void)state;
    assert_int_equal(hf_memtab_get(m, 10, 0, (hf_slice){"a", 1}, &v, &del), 0);
    assert_int_equal(hf_memtab_count(m), 0);
    hf_memtab_free(m);
    hf_memtab_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memtab_matches_model_at_every_snapshot),
        cmocka_unit_test(test_memtab_free_accepts_null_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
