/*
 * lmdb.c - core/storage.h on LMDB: readers, a group-commit writer, map growth.
 *
 * Design notes
 *
 * Threads. Workers read through numbered readers and hand write batches to
 * submit; one writer thread (writer()) owns every write transaction. The
 * environment is opened with MDB_NOTLS so a read transaction belongs to its
 * reader, not to a thread: each reader's txn is created once at open and is
 * then only renewed (rd_begin) and reset (rd_end), which costs no
 * allocation and keeps its lock-table slot.
 *
 * Group commit. submit appends to an intrusive FIFO (linked through
 * wb->next, so enqueueing allocates nothing) under mu. The writer takes the
 * whole queue at once, applies every operation of every batch in one write
 * txn, commits once (one fsync in sync mode) and only then calls done for
 * each batch in queue order. It reads wb->next before calling done: from
 * that moment the batch is its owner's again and may be resubmitted.
 *
 * Apply order. Within the txn the order of the operations is invisible, so
 * apply() sorts them by (database, key) and skips every write that a later
 * one to the same key overwrites (no database is MDB_DUPSORT, so a put
 * replaces the value and a delete removes it whatever came before). Puts
 * go through one cursor per database, which LMDB leaves on the leaf of the
 * previous key: the next key, usually on the same leaf, is found there
 * instead of by a search from the root. So LMDB walks each page once, in
 * order, and a hot key is written once per commit instead of once per
 * handler.
 *
 * Map growth. mdb_env_set_mapsize may only be called with no transaction
 * active in the process. LMDB checks for a write txn but not for readers,
 * so readers hold rw for reading from rd_begin to rd_end and the writer,
 * with its own txn aborted, takes rw for writing around the resize. The
 * rwlock prefers writers: a steady stream of readers cannot starve growth.
 * This is why storage.h forbids blocking while a reader is begun, and why one
 * thread must not begin two readers at once (the lock is not recursive).
 * After growing, the whole group is retried from the start.
 *
 * Fencing. When a group fails, none of it was written, and the engine
 * resets the affected actors from LMDB. A later batch of the same worker
 * generation was built on top of the lost writes, so it must not land:
 * fence[w] = (highest gen of w in the failed group) + 1, and any batch of w
 * with gen < fence[w] fails with the same status without being written, in
 * its queue order. The engine moves a worker to a new generation once it
 * has reset; those batches are written normally. Fences only grow and are
 * touched only by the writer thread.
 *
 * Lock order: rw before mu. A worker submits (mu) while its read snapshot
 * holds rw shared; the writer takes rw exclusively (map growth) only in
 * group(), with mu released, so the two never wait on each other. done
 * callbacks run with no store lock held.
 *
 * One process per directory. LMDB lets several processes share an
 * environment by design, but the engine caches actor state in memory, so
 * two servers on one directory each overwrite what the other acknowledged.
 * open therefore takes flock(LOCK_EX | LOCK_NB) on DIR/LOCK before
 * touching the environment and keeps that descriptor until close: a
 * second open, in this process or another, fails with HF_ECONFLICT and
 * names the holder's PID, which the holder writes into the file. flock
 * (not fcntl) because its lock belongs to the open file, so a second open
 * in the same process conflicts too, and the environment is never opened
 * twice in one process (which LMDB forbids). The descriptor is O_CLOEXEC;
 * the lock is released when the process dies, however it dies, so there
 * is no stale lock to clean up, and the file itself stays.
 *
 * Limits. A group has no size cap of its own: it is whatever was queued.
 * LMDB bounds one txn's dirty pages (MDB_TXN_FULL, 128Ki pages), so a group
 * beyond ~512 MiB of changed pages fails with HF_EINTERNAL; the engine's
 * backpressure keeps the queue far below that. Worker indexes are capped
 * at HF_LMDB_MAX_WORKERS so the fence table is a fixed array.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"
#include "storage/lmdb.h"

#define MOD "storage"

/* Lock-table slots beyond our readers: the writer and tools such as
 * mdb_stat attaching to a live environment. */
#define SPARE_READERS 8

/* wb->status of a batch that goes into this group's txn (never an HF_E*). */
#define PENDING 1

static const char *const dbnames[HF_DB_COUNT_] = {
    [HF_DB_KV] = "kv",         [HF_DB_LOG] = "log",
    [HF_DB_META] = "meta",     [HF_DB_ALARMS] = "alarms",
    [HF_DB_IDEM] = "idem",     [HF_DB_OUTBOX] = "outbox",
};

/* A reader's txn lives from open to close, reset between uses. */
struct reader {
    MDB_txn *txn;
    int begun; /* catches a double begin (it would deadlock) or end */
};

struct fence {
    uint64_t gen; /* batches with a lower gen fail; 0 = no fence */
    int status;   /* ... with this status */
};

struct lmdb {
    MDB_env *env;
    MDB_dbi dbi[HF_DB_COUNT_];
    int nrd;
    struct reader *rd; /* [nrd]; rd[r] touched only by reader r's user */

    /* Read-held from rd_begin to rd_end, write-held by the writer while it
     * resizes the map. */
    pthread_rwlock_t rw;

    pthread_mutex_t mu; /* protects the fields down to done_arg */
    pthread_cond_t cv;  /* signalled when the queue becomes non-empty and on
                           close */
    hf_wbatch *q_head, *q_tail;
    int closing;
    hf_store_done_fn done;
    void *done_arg;

    pthread_t thr;
    struct fence fence[HF_LMDB_MAX_WORKERS]; /* writer thread only */

    atomic_int fail_next;  /* test hook, see hf_lmdb_fail_next */
    atomic_size_t mapsize; /* written by the writer under rw, read anywhere */
    atomic_int broken;     /* the map could not be remapped: fail all */

    int lockfd; /* DIR/LOCK, flock'ed from open to close; -1 = none */

    /* What open got as far as, so one teardown serves every failure. */
    unsigned rw_ok : 1, mu_ok : 1, cv_ok : 1, thr_ok : 1;
};

/* LMDB and errno codes to ours: a full disk is storage_full, the rest is
 * unexpected. */
static int
status_of(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case ENOSPC:
    case EDQUOT:
    case MDB_MAP_FULL:
        return HF_ESTORAGE;
    default:
        return HF_EINTERNAL;
    }
}

/*
 * The status of a failed write txn (apply or commit). LMDB reports a short
 * write of a commit's pages as EIO ("short write, filesystem full?" in
 * mdb_page_flush): on a regular file the space (or quota) ran out part way,
 * while a write that got nothing down says ENOSPC. Both are storage_full.
 * LMDB gives a device error the same EIO, so it cannot be told apart here;
 * it is answered storage_full too, which still tells the client the truth
 * that matters (nothing was written; retry later), and the log line keeps
 * LMDB's error for the operator.
 */
static int
write_status(int rc)
{
    return rc == EIO ? HF_ESTORAGE : status_of(rc);
}

/* ------------------------------------------------------------------ */
/* Readers                                                             */

static int
rd_begin(void *self, int r)
{
    struct lmdb *s = self;
    int rc;

    if (r < 0 || r >= s->nrd) {
        hf_error(MOD, "rd_begin: no reader %d (have %d)", r, s->nrd);
        return HF_EINTERNAL;
    }
    if (s->rd[r].begun) {
        hf_error(MOD, "rd_begin: reader %d is already begun", r);
        return HF_EINTERNAL;
    }
    if ((rc = pthread_rwlock_rdlock(&s->rw)) != 0) {
        hf_error(MOD, "rd_begin: rwlock: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    if (atomic_load(&s->broken)) {
        pthread_rwlock_unlock(&s->rw);
        return HF_EINTERNAL;
    }
    if ((rc = mdb_txn_renew(s->rd[r].txn)) != 0) {
        pthread_rwlock_unlock(&s->rw);
        hf_error(MOD, "rd_begin: mdb_txn_renew: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    s->rd[r].begun = 1;
    return 0;
}

static void
rd_end(void *self, int r)
{
    struct lmdb *s = self;

    if (r < 0 || r >= s->nrd || !s->rd[r].begun)
        return;
    mdb_txn_reset(s->rd[r].txn);
    s->rd[r].begun = 0;
    pthread_rwlock_unlock(&s->rw);
}

static int
get(void *self, int r, int dbi, hf_slice key, hf_slice *val)
{
    struct lmdb *s = self;
    MDB_val k = {.mv_size = key.len, .mv_data = (void *)key.data};
    MDB_val v;
    int rc;

    if (r < 0 || r >= s->nrd || dbi < 0 || dbi >= HF_DB_COUNT_)
        return HF_EINTERNAL;
    rc = mdb_get(s->rd[r].txn, s->dbi[dbi], &k, &v);
    if (rc == MDB_NOTFOUND || rc == MDB_BAD_VALSIZE)
        return HF_ENOTFOUND; /* an empty or overlong key is never stored */
    if (rc != 0) {
        hf_error(MOD, "get: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    val->data = v.mv_data;
    val->len = v.mv_size;
    return 0;
}

/*
 * Positions c on the first key of the range, walking forward from lo or
 * backward from below hi. Returns 0, MDB_NOTFOUND or an error.
 */
static int
scan_first(MDB_cursor *c, hf_slice lo, hf_slice hi, int reverse, MDB_val *k,
           MDB_val *v)
{
    int rc;

    if (!reverse) {
        if (lo.len == 0)
            return mdb_cursor_get(c, k, v, MDB_FIRST);
        k->mv_size = lo.len;
        k->mv_data = (void *)lo.data;
        return mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    }
    if (hi.len == 0)
        return mdb_cursor_get(c, k, v, MDB_LAST);
    /* The first key >= hi, then one step back. If there is none, every key
     * is below hi and the range starts at the last one. */
    k->mv_size = hi.len;
    k->mv_data = (void *)hi.data;
    rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(c, k, v, MDB_LAST);
    if (rc != 0)
        return rc;
    return mdb_cursor_get(c, k, v, MDB_PREV);
}

static int
scan(void *self, int r, int dbi, hf_slice lo, hf_slice hi, int reverse,
     hf_scan_fn fn, void *arg)
{
    struct lmdb *s = self;
    MDB_cursor *c;
    MDB_val k, v;
    MDB_val lov = {.mv_size = lo.len, .mv_data = (void *)lo.data};
    MDB_val hiv = {.mv_size = hi.len, .mv_data = (void *)hi.data};
    MDB_txn *txn;
    int rc;

    if (r < 0 || r >= s->nrd || dbi < 0 || dbi >= HF_DB_COUNT_)
        return HF_EINTERNAL;
    txn = s->rd[r].txn;
    if ((rc = mdb_cursor_open(txn, s->dbi[dbi], &c)) != 0) {
        hf_error(MOD, "scan: mdb_cursor_open: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    for (rc = scan_first(c, lo, hi, reverse, &k, &v); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, reverse ? MDB_PREV : MDB_NEXT)) {
        /* Stop at the far bound, compared as LMDB orders keys. */
        if (!reverse && hi.len && mdb_cmp(txn, s->dbi[dbi], &k, &hiv) >= 0)
            break;
        if (reverse && lo.len && mdb_cmp(txn, s->dbi[dbi], &k, &lov) < 0)
            break;
        if (fn(arg, (hf_slice){k.mv_data, k.mv_size},
               (hf_slice){v.mv_data, v.mv_size}) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        hf_error(MOD, "scan: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Submission                                                          */

static int
submit(void *self, hf_wbatch *wb)
{
    struct lmdb *s = self;
    int rv = 0;

    if (wb->worker < 0 || wb->worker >= HF_LMDB_MAX_WORKERS) {
        hf_error(MOD, "submit: worker %d out of range (max %d)", wb->worker,
                 HF_LMDB_MAX_WORKERS);
        return HF_EINTERNAL;
    }
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        rv = HF_EUNAVAIL;
    } else if (s->done == NULL) {
        hf_error(MOD, "submit before set_done");
        rv = HF_EINTERNAL;
    } else {
        wb->next = NULL;
        if (s->q_tail)
            s->q_tail->next = wb;
        else
            s->q_head = wb;
        s->q_tail = wb;
        if (s->q_head == wb)
            pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rv;
}

static void
set_done(void *self, hf_store_done_fn fn, void *arg)
{
    struct lmdb *s = self;

    pthread_mutex_lock(&s->mu);
    s->done = fn;
    s->done_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

/* What a failed attempt reports, so the group logs one line. */
struct failure {
    const char *step;
    int rc; /* LMDB/errno code, or 0 when status says it all */
};

/* One operation of a group, as the writer applies it. */
struct gop {
    const char *key, *val;
    uint32_t klen, vlen;
    uint8_t dbi, kind;
};

/* A sort key: (dbi, 7 key bytes after the group's common prefix), and
 * the operation's position in the group (the last write of a key wins). */
struct gkey {
    uint64_t k;
    uint32_t i;
};

/* The writer thread's scratch lists of a group's operations. */
struct scratch {
    struct gop *v;      /* in group order */
    struct gkey *o, *t; /* the order to apply them in; t: merge space */
    size_t n, cap;
};

/* Above this many entries the scratch lists are freed after each group. */
#define SCRATCH_KEEP 65536

/* Puts or deletes one key. Returns 0 or an LMDB/errno code. */
static int
apply_one(struct lmdb *s, MDB_txn *txn, int dbi, int kind, const void *k,
          size_t kl, const void *v, size_t vl, struct failure *f)
{
    MDB_val mk = {.mv_size = kl, .mv_data = (void *)k};
    MDB_val mv = {.mv_size = vl, .mv_data = (void *)v};
    int rc;

    if (kind == HF_WOP_PUT) {
        f->step = "mdb_put";
        return mdb_put(txn, s->dbi[dbi], &mk, &mv, 0);
    }
    f->step = "mdb_del";
    rc = mdb_del(txn, s->dbi[dbi], &mk, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* (dbi, key in LMDB's order: memcmp, then the shorter first, then group
 * position) of two operations; ctx is the group's operation list. */
static int
gkey_cmp(const void *x, const void *y, void *ctx)
{
    const struct gop *v = ctx;
    const struct gkey *p = x, *q = y;
    const struct gop *a = &v[p->i], *b = &v[q->i];
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int r;

    if (a->dbi != b->dbi)
        return a->dbi < b->dbi ? -1 : 1;
    if ((r = n ? memcmp(a->key, b->key, n) : 0) != 0)
        return r;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return (p->i > q->i) - (p->i < q->i);
}

/* Merges the sorted runs [0, m) and [m, n) of a into b, stably by k. */
static void
gkey_merge(const struct gkey *a, size_t m, size_t n, struct gkey *b)
{
    size_t i = 0, j = m, o = 0;

    while (i < m && j < n)
        b[o++] = a[j].k < a[i].k ? a[j++] : a[i++];
    while (i < m)
        b[o++] = a[i++];
    while (j < n)
        b[o++] = a[j++];
}

/*
 * Fills sc->o with the group's operations sorted by (dbi, key, position).
 * Keys mostly differ right after the prefix that every key of the group
 * shares (e.g. "counter/a"), so a 64-bit sort key of (dbi, the next 7
 * bytes) orders nearly all of them: a stable bottom-up merge sort on it
 * (skipped when the order is already right, as when one key is written
 * over and over), then each run of equal sort keys by the whole key.
 */
static void
gop_sort(struct scratch *sc)
{
    const struct gop *v = sc->v;
    size_t n = sc->n, lcp = v[0].klen, sorted = 1;

    for (size_t i = 1; i < n && lcp > 0; i++) {
        size_t j = 0, m = v[i].klen < lcp ? v[i].klen : lcp;
        while (j < m && v[i].key[j] == v[0].key[j])
            j++;
        lcp = j;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t k = v[i].dbi;
        for (size_t j = lcp; j < lcp + 7; j++)
            k = k << 8 | (j < v[i].klen ? (unsigned char)v[i].key[j] : 0);
        sc->o[i] = (struct gkey){.k = k, .i = (uint32_t)i};
        sorted &= i == 0 || sc->o[i - 1].k <= k;
    }
    if (!sorted) {
        struct gkey *a = sc->o, *b = sc->t, *t;
        for (size_t w = 1; w < n; w *= 2) {
            for (size_t lo = 0; lo < n; lo += 2 * w) {
                size_t m = lo + w < n ? lo + w : n;
                size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
                gkey_merge(a + lo, m - lo, hi - lo, b + lo);
            }
            t = a, a = b, b = t;
        }
        if (a != sc->o)
            memcpy(sc->o, a, n * sizeof(*a));
    }
    for (size_t i = 0, j; i < n; i = j) {
        struct gkey *r = &sc->o[i];
        size_t k = 1;
        for (j = i + 1; j < n && sc->o[j].k == r->k; j++)
            ;
        while (k < j - i && gkey_cmp(&r[k - 1], &r[k], sc->v) < 0)
            k++;
        if (k < j - i)
            qsort_r(r, j - i, sizeof(*r), gkey_cmp, sc->v);
    }
}

static int
gop_samekey(const struct gop *a, const struct gop *b)
{
    return a->dbi == b->dbi && a->klen == b->klen &&
           memcmp(a->key, b->key, a->klen) == 0;
}

/* Checks an operation before it goes anywhere near LMDB. */
static int
op_ok(const hf_wop *op, struct failure *f)
{
    if (op->dbi < 0 || op->dbi >= HF_DB_COUNT_) {
        f->step = "apply (bad dbi)";
        return EINVAL;
    }
    if (op->kind != HF_WOP_PUT && op->kind != HF_WOP_DEL) {
        f->step = "apply (bad op kind)";
        return EINVAL;
    }
    return 0;
}

/* Applies the pending batches' operations one by one, in order. */
static int
apply_in_order(struct lmdb *s, MDB_txn *txn, hf_wbatch *head, struct failure *f)
{
    for (hf_wbatch *wb = head; wb; wb = wb->next) {
        size_t pos = 0;
        hf_wop op;
        int rc;

        if (wb->status != PENDING)
            continue;
        while (hf_wbatch_next(wb, &pos, &op))
            if ((rc = op_ok(&op, f)) != 0 ||
                (rc = apply_one(s, txn, op.dbi, op.kind, op.key.data,
                                op.key.len, op.val.data, op.val.len, f)) != 0)
                return rc;
    }
    return 0;
}

/* Doubles the scratch lists. Returns 0 or ENOMEM (they stay usable).
 * Not core/vec.h: three lists share one capacity, and running out here is
 * not fatal, only slower (core/oom.h's exception): apply falls back to
 * applying the group in order. */
static int
scratch_grow(struct scratch *sc)
{
    size_t cap = sc->cap ? sc->cap * 2 : 1024;
    void *p;

    if ((p = realloc(sc->v, cap * sizeof(*sc->v))) == NULL)
        return ENOMEM;
    sc->v = p;
    if ((p = realloc(sc->o, cap * sizeof(*sc->o))) == NULL)
        return ENOMEM;
    sc->o = p;
    if ((p = realloc(sc->t, cap * sizeof(*sc->t))) == NULL)
        return ENOMEM;
    sc->t = p;
    sc->cap = cap;
    return 0;
}

static void
scratch_free(struct scratch *sc)
{
    free(sc->v);
    free(sc->o);
    free(sc->t);
    *sc = (struct scratch){0};
}

/* Lists the pending batches' operations in sc, in order. Returns 0,
 * EINVAL (a bad operation) or ENOMEM. */
static int
gather(hf_wbatch *head, struct scratch *sc, struct failure *f)
{
    sc->n = 0;
    for (hf_wbatch *wb = head; wb; wb = wb->next) {
        size_t pos = 0;
        hf_wop op;
        int rc;

        if (wb->status != PENDING)
            continue;
        while (hf_wbatch_next(wb, &pos, &op)) {
            if ((rc = op_ok(&op, f)) != 0)
                return rc;
            if (sc->n == sc->cap && scratch_grow(sc) != 0)
                return ENOMEM;
            sc->v[sc->n] = (struct gop){
                .key = op.key.data,
                .val = op.val.data,
                .klen = (uint32_t)op.key.len,
                .vlen = (uint32_t)op.val.len,
                .dbi = (uint8_t)op.dbi,
                .kind = (uint8_t)op.kind,
            };
            sc->n++;
        }
    }
    return 0;
}

/*
 * Puts every operation of every pending batch into txn. They are applied
 * sorted by (database, key), and of several writes to one key only the
 * last: the txn ends in the state that applying them in order gives, while
 * LMDB visits its pages once each, in order. Without memory for the list
 * they are applied in order.
 */
static int
apply(struct lmdb *s, MDB_txn *txn, hf_wbatch *head, struct scratch *sc,
      struct failure *f)
{
    MDB_cursor *cur[HF_DB_COUNT_] = {0};
    int rc = gather(head, sc, f);

    if (rc == ENOMEM)
        return apply_in_order(s, txn, head, f);
    if (rc != 0 || sc->n == 0)
        return rc;
    gop_sort(sc);
    for (size_t i = 0; i < sc->n && rc == 0; i++) {
        const struct gop *g = &sc->v[sc->o[i].i];
        MDB_val k = {.mv_size = g->klen, .mv_data = (void *)g->key};
        MDB_val v = {.mv_size = g->vlen, .mv_data = (void *)g->val};

        if (i + 1 < sc->n && gop_samekey(g, &sc->v[sc->o[i + 1].i]))
            continue; /* a later write of this key follows */
        if (g->kind == HF_WOP_DEL) {
            /* Deletes are rare: a fresh search, and the put cursor of
             * the database starts afresh after it. */
            if (cur[g->dbi] != NULL) {
                mdb_cursor_close(cur[g->dbi]);
                cur[g->dbi] = NULL;
            }
            rc = apply_one(s, txn, g->dbi, g->kind, g->key, g->klen, g->val,
                           g->vlen, f);
            continue;
        }
        /* A cursor left on the page of the previous key finds the next
         * one there without searching from the root. */
        f->step = "mdb_cursor_open";
        if (cur[g->dbi] == NULL &&
            (rc = mdb_cursor_open(txn, s->dbi[g->dbi], &cur[g->dbi])) != 0)
            break;
        f->step = "mdb_cursor_put";
        rc = mdb_cursor_put(cur[g->dbi], &k, &v, 0);
    }
    for (int d = 0; d < HF_DB_COUNT_; d++)
        if (cur[d] != NULL)
            mdb_cursor_close(cur[d]);
    return rc;
}

/*
 * Doubles the map with no transaction active in the process: the writer's
 * own is aborted, and holding rw for writing means no reader is begun.
 * Returns 0, or an LMDB/errno code (E2BIG past the cap).
 */
static int
grow(struct lmdb *s)
{
    size_t old = atomic_load(&s->mapsize), want;
    int rc;

    if (old > HF_LMDB_MAP_MAX / 2)
        return E2BIG;
    want = old * 2;
    pthread_rwlock_wrlock(&s->rw);
    rc = mdb_env_set_mapsize(s->env, want);
    if (rc != 0 && mdb_env_set_mapsize(s->env, old) != 0) {
        /* The old mapping is gone and no new one exists: nothing may touch
         * the environment again. */
        atomic_store(&s->broken, 1);
        hf_error(MOD, "map resize to %zu failed and the old size could not "
                 "be restored; storage is unusable", want);
    }
    if (rc == 0)
        atomic_store(&s->mapsize, want);
    pthread_rwlock_unlock(&s->rw);
    if (rc == 0) {
        HF_INC(map_grows);
        hf_info(MOD, "map full: grew from %zu to %zu bytes", old, want);
    }
    return rc;
}

/*
 * Writes the pending batches of a group in one transaction, growing the
 * map and retrying as often as needed. Returns 0 or an HF_E* status; on
 * failure *f says where.
 */
static int
commit(struct lmdb *s, hf_wbatch *head, struct scratch *sc, struct failure *f)
{
    uint64_t nb = 0, nops = 0, nh = 0;
    uint64_t t0;
    MDB_txn *txn;
    int rc, hook;

    for (hf_wbatch *wb = head; wb; wb = wb->next) {
        if (wb->status == PENDING) {
            nb++;
            nops += wb->nops;
            nh += wb->nhandlers;
        }
    }
    for (;;) {
        if (atomic_load(&s->broken)) {
            f->step = "storage unusable after a failed map resize";
            f->rc = 0;
            return HF_EINTERNAL;
        }
        t0 = hf_mono_ns();
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
            f->step = "mdb_txn_begin";
            f->rc = rc;
            return status_of(rc);
        }
        rc = apply(s, txn, head, sc, f);
        if (rc == 0 && (hook = atomic_exchange(&s->fail_next, 0)) != 0) {
            mdb_txn_abort(txn);
            f->step = "injected by hf_lmdb_fail_next";
            f->rc = 0;
            return hook;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
        } else {
            f->step = "mdb_txn_commit"; /* frees txn whatever it returns */
            rc = mdb_txn_commit(txn);
        }
        if (rc == 0)
            break;
        f->rc = rc;
        if (rc != MDB_MAP_FULL)
            return write_status(rc);
        if ((rc = grow(s)) != 0) {
            f->step = rc == E2BIG ? "map growth (cap reached)"
                                  : "mdb_env_set_mapsize";
            f->rc = rc == E2BIG ? MDB_MAP_FULL : rc;
            return HF_ESTORAGE; /* the map is full and cannot grow */
        }
    }
    HF_INC(commits);
    HF_ADD(commit_batches, nb);
    HF_ADD(commit_ops, nops);
    HF_ADD(commit_handlers, nh);
    hf_hist_add(&hf_metrics.commit_handlers_hist, nh);
    hf_hist_add(&hf_metrics.commit_us_hist, (hf_mono_ns() - t0) / 1000);
    return 0;
}

static int
fenced(const struct lmdb *s, const hf_wbatch *wb)
{
    return wb->gen < s->fence[wb->worker].gen;
}

/* Handles one group: fenced batches fail, the rest share one commit, and
 * every batch goes back through done in queue order. */
static void
group(struct lmdb *s, hf_wbatch *head, hf_store_done_fn done, void *arg,
      struct scratch *sc)
{
    struct failure f = {"", 0};
    int npending = 0, st = 0, nfenced = 0;
    hf_wbatch *wb, *next;

    for (wb = head; wb; wb = wb->next) {
        if (fenced(s, wb)) {
            wb->status = s->fence[wb->worker].status;
            nfenced++;
        } else {
            wb->status = PENDING;
            npending++;
        }
    }
    if (npending > 0)
        st = commit(s, head, sc, &f);
    if (st != 0) {
        HF_INC(commit_failures);
        hf_error(MOD, "commit of %d batches failed (%s): %s: %s", npending,
                 hf_err_name(st), f.step,
                 f.rc ? mdb_strerror(f.rc) : "no LMDB error");
        for (wb = head; wb; wb = wb->next) {
            struct fence *fe = &s->fence[wb->worker];
            if (wb->gen + 1 > fe->gen) {
                fe->gen = wb->gen + 1;
                fe->status = st;
            }
        }
    }
    if (nfenced > 0)
        hf_debug(MOD, "%d fenced batches failed without being written",
                 nfenced);
    for (wb = head; wb; wb = next) {
        next = wb->next; /* done hands wb back: read the link first */
        if (wb->status == PENDING)
            wb->status = st;
        wb->next = NULL;
        done(arg, wb);
    }
}

static void *
writer(void *p)
{
    struct lmdb *s = p;
    struct scratch sc = {0};

    pthread_mutex_lock(&s->mu);
    for (;;) {
        hf_wbatch *head;
        hf_store_done_fn done;
        void *arg;

        while (s->q_head == NULL && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->q_head == NULL)
            break; /* closing and drained */
        head = s->q_head;
        s->q_head = s->q_tail = NULL;
        done = s->done;
        arg = s->done_arg;
        pthread_mutex_unlock(&s->mu);
        group(s, head, done, arg, &sc);
        if (sc.cap > SCRATCH_KEEP) /* a rare huge group: let it go */
            scratch_free(&sc);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    scratch_free(&sc);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

/* Frees whatever open got as far as. The writer must be stopped. */
static void
destroy(struct lmdb *s)
{
    if (s == NULL)
        return;
    if (s->rd) {
        for (int r = 0; r < s->nrd; r++)
            if (s->rd[r].txn)
                mdb_txn_abort(s->rd[r].txn);
        free(s->rd);
    }
    if (s->env)
        mdb_env_close(s->env);
    if (s->cv_ok)
        pthread_cond_destroy(&s->cv);
    if (s->mu_ok)
        pthread_mutex_destroy(&s->mu);
    if (s->rw_ok)
        pthread_rwlock_destroy(&s->rw);
    if (s->lockfd >= 0) /* last: the lock covers the environment's life */
        close(s->lockfd);
    free(s);
}

static void
lmdb_close(void *self)
{
    struct lmdb *s = self;

    if (s == NULL)
        return;
    if (s->thr_ok) {
        pthread_mutex_lock(&s->mu);
        s->closing = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thr, NULL);
    }
    destroy(s);
}

static const struct hf_store_ops lmdb_ops = {
    .rd_begin = rd_begin,
    .rd_end = rd_end,
    .get = get,
    .scan = scan,
    .submit = submit,
    .set_done = set_done,
    .close = lmdb_close,
};

static int
init_locks(struct lmdb *s)
{
    pthread_rwlockattr_t ra;
    int rc;

    if (pthread_rwlockattr_init(&ra) != 0)
        return -1;
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&s->rw, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (rc != 0)
        return -1;
    s->rw_ok = 1;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -1;
    s->mu_ok = 1;
    if (pthread_cond_init(&s->cv, NULL) != 0)
        return -1;
    s->cv_ok = 1;
    return 0;
}

/* Creates (or opens) every named database in one write transaction. */
static int
open_dbs(struct lmdb *s)
{
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    for (int i = 0; i < HF_DB_COUNT_; i++) {
        if ((rc = mdb_dbi_open(txn, dbnames[i], MDB_CREATE, &s->dbi[i])) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    return mdb_txn_commit(txn);
}

/*
 * Takes the directory lock (see the design notes) into s->lockfd and
 * writes our PID into the file. Returns 0, HF_ECONFLICT when another open
 * holds it (logged with the holder's PID), or an errno code.
 */
static int
lock_dir(struct lmdb *s, const char *dir)
{
    char path[PATH_MAX], pid[32] = "";
    ssize_t n;
    int len;

    if ((size_t)snprintf(path, sizeof(path), "%s/LOCK", dir) >= sizeof(path))
        return ENAMETOOLONG;
    s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lockfd < 0)
        return errno;
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK)
            return errno;
        /* The holder may not have written its PID yet: then say so. */
        n = pread(s->lockfd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        hf_error(MOD, "data directory %s is in use by another holdfast "
                 "(pid %s, lock %s): two servers on one directory lose "
                 "acknowledged writes; stop the other one first", dir,
                 pid[0] ? pid : "unknown", path);
        return HF_ECONFLICT;
    }
    /* For the message above only: a failure here costs nothing else. */
    len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lockfd, 0) != 0 ||
        pwrite(s->lockfd, pid, (size_t)len, 0) != len)
        hf_warn(MOD, "cannot write our pid into %s: %s", path,
                strerror(errno));
    return 0;
}

/* Whether dir already holds an LMDB data file with something in it. */
static int
has_data(const char *dir)
{
    char path[PATH_MAX];
    struct stat sb;

    if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >=
        sizeof(path))
        return 0;
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

int
hf_lmdb_open(hf_store *out, const struct hf_lmdb_opts *o)
{
    struct lmdb *s = NULL;
    unsigned flags = MDB_NOTLS;
    MDB_envinfo info;
    const char *step;
    int rc = 0, st = HF_EINTERNAL, existing;

    out->ops = NULL;
    out->self = NULL;
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0' ||
        o->nreaders < 0 || o->nreaders > 100000 ||
        (o->durability != HF_DURABLE_SYNC &&
         o->durability != HF_DURABLE_NONE)) {
        hf_error(MOD, "open: invalid options");
        return HF_EINTERNAL;
    }
    if (mkdir(o->dir, 0750) != 0 && errno != EEXIST) {
        rc = errno;
        step = "mkdir";
        goto fail;
    }
    s = hf_xcalloc(1, sizeof(*s));
    s->lockfd = -1;
    step = "locking the directory";
    if ((rc = lock_dir(s, o->dir)) == HF_ECONFLICT) {
        lmdb_close(s); /* already logged, and not an LMDB error */
        return HF_ECONFLICT;
    }
    if (rc != 0)
        goto fail;
    s->nrd = o->nreaders;
    if (s->nrd > 0)
        s->rd = hf_xcalloc((size_t)s->nrd, sizeof(*s->rd));
    step = "lock initialisation";
    if (init_locks(s) != 0)
        goto fail;

    if (o->durability == HF_DURABLE_NONE)
        flags |= MDB_NOSYNC;
    step = "mdb_env_create";
    if ((rc = mdb_env_create(&s->env)) != 0)
        goto fail;
    step = "mdb_env_set_maxdbs";
    if ((rc = mdb_env_set_maxdbs(s->env, HF_DB_COUNT_)) != 0)
        goto fail;
    step = "mdb_env_set_maxreaders";
    if ((rc = mdb_env_set_maxreaders(
             s->env, (unsigned)s->nrd + SPARE_READERS)) != 0)
        goto fail;
    /* A new environment starts at map_size. An existing one records the
     * size it last grew to; configuring a smaller size before opening would
     * shrink the map back (to the space in use, at best), so it is opened
     * at its recorded size and only raised to map_size. */
    existing = has_data(o->dir);
    step = "mdb_env_set_mapsize";
    if (!existing && o->map_size > 0 &&
        (rc = mdb_env_set_mapsize(s->env, o->map_size)) != 0)
        goto fail;
    step = "mdb_env_open";
    if ((rc = mdb_env_open(s->env, o->dir, flags, 0640)) != 0)
        goto fail;
    step = "mdb_env_info";
    if ((rc = mdb_env_info(s->env, &info)) != 0)
        goto fail;
    step = "mdb_env_set_mapsize";
    if (existing && o->map_size > info.me_mapsize &&
        (rc = mdb_env_set_mapsize(s->env, o->map_size)) != 0)
        goto fail;
    step = "creating the databases";
    if ((rc = open_dbs(s)) != 0)
        goto fail;
    step = "mdb_env_info";
    if ((rc = mdb_env_info(s->env, &info)) != 0)
        goto fail;
    atomic_store(&s->mapsize, info.me_mapsize);

    step = "creating the readers";
    for (int r = 0; r < s->nrd; r++) {
        if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rd[r].txn)) != 0)
            goto fail;
        mdb_txn_reset(s->rd[r].txn);
    }

    step = "pthread_create";
    if ((rc = pthread_create(&s->thr, NULL, writer, s)) != 0)
        goto fail;
    s->thr_ok = 1;

    if (o->durability == HF_DURABLE_NONE)
        hf_warn(MOD, "DURABILITY IS OFF (--durability none): commits are not "
                "fsynced and acknowledged writes CAN BE LOST on a crash; use "
                "only for throwaway benchmarks");
    hf_info(MOD, "opened %s: map %zu bytes, %d readers, durability %s",
            o->dir, info.me_mapsize, s->nrd,
            o->durability == HF_DURABLE_NONE ? "none" : "sync");
    out->ops = &lmdb_ops;
    out->self = s;
    return 0;

fail:
    if (rc != 0) {
        st = status_of(rc);
        hf_error(MOD, "open %s: %s: %s", o->dir, step, mdb_strerror(rc));
    } else {
        hf_error(MOD, "open %s: %s failed", o->dir, step);
    }
    lmdb_close(s);
    return st;
}

void
hf_lmdb_fail_next(hf_store *st, int err)
{
    struct lmdb *s = st->self;

    atomic_store(&s->fail_next, err);
}

size_t
hf_lmdb_map_size(hf_store *st)
{
    struct lmdb *s = st->self;

    return atomic_load(&s->mapsize);
}
