/*
 * writer.c - the store's one writer thread: group commit, apply order,
 * map growth and fencing (see also lmdb.c, which owns the rest).
 *
 * Design notes
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
 * Limits. A group has no size cap of its own: it is whatever was queued.
 * LMDB bounds one txn's dirty pages (MDB_TXN_FULL, 128Ki pages), so a group
 * beyond ~512 MiB of changed pages fails with HF_EINTERNAL; the engine's
 * backpressure keeps the queue far below that. Worker indexes are capped
 * at HF_LMDB_MAX_WORKERS so the fence table is a fixed array.
 */
#include <time.h>

#include "storage/lmdb_int.h"

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

int
hf__lmdb_apply_one(struct lmdb *s, MDB_txn *txn, int dbi, int kind,
                   const void *k, size_t kl, const void *v, size_t vl)
{
    struct failure f;

    return apply_one(s, txn, dbi, kind, k, kl, v, vl, &f);
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
int
hf__lmdb_grow(struct lmdb *s)
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
        hf_error(MOD,
                 "map resize to %zu failed and the old size could not "
                 "be restored; storage is unusable",
                 want);
    }
    if (rc == 0)
        atomic_store(&s->mapsize, want);
    pthread_rwlock_unlock(&s->rw);
    if (rc == 0) {
        HF_LMDB_INC(map_grows);
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
            return hf__lmdb_status_of(rc);
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
            return hf__lmdb_write_status(rc);
        if ((rc = hf__lmdb_grow(s)) != 0) {
            f->step = rc == E2BIG ? "map growth (cap reached)"
                                  : "mdb_env_set_mapsize";
            f->rc = rc == E2BIG ? MDB_MAP_FULL : rc;
            return HF_ESTORAGE; /* the map is full and cannot grow */
        }
    }
    hf__lmdb_count_commit(nb, nops, nh, t0);
    return 0;
}

void
hf__lmdb_count_commit(uint64_t nb, uint64_t nops, uint64_t nh, uint64_t t0)
{
    HF_LMDB_INC(commits);
    HF_LMDB_ADD(commit_batches, nb);
    HF_LMDB_ADD(commit_ops, nops);
    HF_LMDB_ADD(commit_handlers, nh);
    hf_hist_add(&hf_lmdb_metrics.commit_handlers_hist, nh);
    hf_hist_add(&hf_lmdb_metrics.commit_us_hist, (hf_mono_ns() - t0) / 1000);
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
    if (npending > 0 && s->wal)
        st = hf__wal_group(s, head, &f.step);
    else if (npending > 0)
        st = commit(s, head, sc, &f);
    if (st != 0) {
        HF_LMDB_INC(commit_failures);
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
        if (wb->done != NULL)
            wb->done(wb->done_arg, wb);
        else
            done(arg, wb);
    }
}

void *
hf__lmdb_writer(void *p)
{
    struct lmdb *s = p;
    struct scratch sc = {0};

    pthread_mutex_lock(&s->mu);
    for (;;) {
        hf_wbatch *head;
        hf_store_done_fn done;
        void *arg;

        while (s->q_head == NULL && !s->closing) {
            uint64_t ns = s->wal ? hf__wal_sleep_ns(s) : 0;
            struct timespec ts;
            if (ns == 0) {
                pthread_cond_wait(&s->cv, &s->mu);
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &ts);
            ns += (uint64_t)ts.tv_nsec;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
                pthread_mutex_unlock(&s->mu);
                hf__wal_tick(s, 0); /* a checkpoint is due by age */
                pthread_mutex_lock(&s->mu);
            }
        }
        if (s->q_head == NULL)
            break; /* closing and drained */
        head = s->q_head;
        s->q_head = s->q_tail = NULL;
        done = s->done;
        arg = s->done_arg;
        pthread_mutex_unlock(&s->mu);
        group(s, head, done, arg, &sc);
        if (s->wal)
            hf__wal_tick(s, 0);
        if (sc.cap > SCRATCH_KEEP) /* a rare huge group: let it go */
            scratch_free(&sc);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    scratch_free(&sc);
    return NULL;
}
