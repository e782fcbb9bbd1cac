/*
 * walstore.c - the store's side of the write-ahead log: group commit to
 * the log, the memtables that reads merge with LMDB, the checkpointer,
 * and replay at open (see wal.c for the files).
 *
 * Design notes
 *
 * The order of a write (DESIGN §4.5):
 *   1. the writer takes every queued batch, appends one record per batch
 *      to the log in one write, and syncs once;
 *   2. it puts their operations into the active memtable, then hands each
 *      batch back (done): the output gate opens only now;
 *   3. by size or age it freezes the active memtable (a new one takes the
 *      writes) and wakes the checkpointer, which applies the frozen one to
 *      LMDB in one transaction, with the last LSN it holds in the same
 *      transaction, and commits with LMDB's own sync;
 *   4. only then are the log segments it covers recycled and the frozen
 *      memtable dropped.
 * A crash anywhere leaves every acknowledged write in the log at an LSN
 * above LMDB's applied one, or in LMDB: replay applies the log after
 * LMDB's LSN, so nothing acknowledged is lost and nothing applies twice
 * (a put or delete of a whole value is the same done twice, and replay
 * goes in LSN order).
 *
 * Why the checkpoint commits with LMDB's sync rather than MDB_NOSYNC and
 * an mdb_env_sync afterwards: a NOSYNC commit writes the meta page with
 * the data pages, so a power cut between the commit and the sync can
 * leave a meta page that points at pages never written. LMDB's own commit
 * syncs the pages, then writes and syncs the meta page: two syncs per
 * checkpoint, a second or 64 MiB apart, and LMDB is never damaged.
 *
 * What is in memory when: a batch's writes sit in the worker's cache from
 * the handler to the release (core/cache.c), in the active memtable from
 * the log's sync to the freeze, in the frozen one until its checkpoint is
 * synced, and in LMDB after. Reads look at the active memtable, then the
 * frozen one, then the LMDB snapshot: a key in a memtable is always newer
 * than LMDB's. The frozen table is dropped with the rw lock written, so
 * no reader that might still hold an older LMDB snapshot, or a slice of
 * the table, is begun.
 *
 * Backpressure: the active memtable holds at most --wal-mem-mb. Past it
 * the writer freezes at once if the checkpointer is free, or waits for it
 * up to a second; then the group fails with overloaded (storage_full when
 * checkpoints fail for a full disk), through the usual fencing (§2.6):
 * nothing is dropped silently.
 */
#include <time.h>

#include "storage/lmdb_int.h"

#define WAIT_MEM_NS 1000000000ull /* how long a writer waits for memory */
#define RETRY_MS 200              /* between failed checkpoints */
#define RELEASE_NS 10000000000ull /* heap given back at most this often */

static const char APPLIED[] = "applied";

/* ------------------------------------------------------------------ */
/* Group commit                                                        */

/* Checks a batch's operations before they are logged: a bad one would
 * otherwise fail every replay. */
static int
batch_ok(const hf_wbatch *wb)
{
    size_t pos = 0;
    hf_wop op;

    while (hf_wbatch_next(wb, &pos, &op))
        if (op.dbi < 0 || op.dbi >= HF_DB_COUNT_ ||
            (op.kind != HF_WOP_PUT && op.kind != HF_WOP_DEL))
            return 0;
    return 1;
}

/* Under ck_mu, with the checkpointer idle: the active table becomes the
 * frozen one. */
static void
freeze_locked(struct lmdb *s)
{
    pthread_rwlock_wrlock(&s->mt_rw);
    s->frozen = s->active;
    s->active = hf_memtab_new();
    pthread_rwlock_unlock(&s->mt_rw);
    s->frozen_lsn = s->active_last;
    s->frozen_mark = HF_LMDB_GET(wal_bytes);
    s->ck_ready = 1;
    s->active_first_ns = 0;
    s->active_bytes = 0;
    pthread_cond_broadcast(&s->ck_cv);
}

static void
abs_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ns += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* The memory bound: 0 when the group may go on, else its status. */
static int
wait_memory(struct lmdb *s)
{
    struct timespec ts;
    int st = 0;

    if (hf_memtab_bytes(s->active) < s->mem_max)
        return 0;
    abs_in(&ts, WAIT_MEM_NS);
    pthread_mutex_lock(&s->ck_mu);
    while (s->ck_ready &&
           pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts) == 0)
        ;
    if (!s->ck_ready) {
        freeze_locked(s);
    } else {
        st = atomic_load(&s->ck_status) == HF_ESTORAGE ? HF_ESTORAGE
                                                       : HF_EOVERLOADED;
        HF_LMDB_INC(wal_backpressure);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return st;
}

int
hf__wal_group(struct lmdb *s, hf_wbatch *head, const char **step)
{
    uint64_t first = s->next_lsn, lsn = first, t0, nb = 0, nops = 0, nh = 0;
    int st, hook;

    if ((st = wait_memory(s)) != 0) {
        *step = "memtable full: checkpoints are behind";
        return st;
    }
    if ((hook = atomic_exchange(&s->fail_next, 0)) != 0) {
        *step = "injected by hf_lmdb_fail_next";
        return hook;
    }
    s->walbuf.len = 0;
    for (hf_wbatch *wb = head; wb; wb = wb->next) {
        if (wb->status != PENDING)
            continue;
        if (!batch_ok(wb)) {
            *step = "apply (bad operation)";
            return HF_EINTERNAL;
        }
        hf_wal_record(&s->walbuf, lsn++, wb->ops.data, wb->ops.len);
        nb++;
        nops += wb->nops;
        nh += wb->nhandlers;
    }
    if (nb == 0)
        return 0;
    t0 = hf_mono_ns();
    if ((st = hf_wal_write(s->wal, &s->walbuf, first, lsn - 1)) != 0) {
        *step = "log append";
        return st;
    }
    hf_hist_add(&hf_lmdb_metrics.wal_sync_us_hist,
                (hf_mono_ns() - t0) / 1000);
    hf__lmdb_count_commit(nb, nops, nh, t0); /* as the LMDB path does */
    s->next_lsn = lsn;

    pthread_rwlock_wrlock(&s->mt_rw);
    for (hf_wbatch *wb = head; wb; wb = wb->next) {
        size_t pos = 0;
        hf_wop op;
        if (wb->status != PENDING)
            continue;
        while (hf_wbatch_next(wb, &pos, &op))
            hf_memtab_put(s->active, first, op.dbi, op.key.data, op.key.len,
                          op.val.data, op.val.len, op.kind == HF_WOP_DEL);
        first++; /* the next batch's record */
    }
    pthread_rwlock_unlock(&s->mt_rw);
    if (s->active_first_ns == 0)
        s->active_first_ns = hf_mono_ns();
    s->active_bytes += s->walbuf.len;
    s->active_last = lsn - 1;
    atomic_store(&s->logged, lsn - 1);
    HF_LMDB_INC(wal_groups);
    HF_LMDB_ADD(wal_records, nb);
    HF_LMDB_ADD(wal_bytes, s->walbuf.len);
    hf_hist_add(&hf_lmdb_metrics.wal_group_hist, nb);
    if (s->walbuf.cap > (1u << 20)) /* a rare large group: let it go, */
        hf_buf_free(&s->walbuf);      /* not keep its pages for ever */
    return 0;
}

void
hf__wal_tick(struct lmdb *s, int closing)
{
    uint64_t now = hf_mono_ns();

    if (s->active_first_ns == 0)
        return; /* nothing new */
    if (!closing && s->active_bytes < s->ckpt_bytes &&
        now - s->active_first_ns < s->ckpt_ns)
        return;
    pthread_mutex_lock(&s->ck_mu);
    if (!s->ck_ready)
        freeze_locked(s);
    pthread_mutex_unlock(&s->ck_mu);
}

uint64_t
hf__wal_sleep_ns(struct lmdb *s)
{
    uint64_t now = hf_mono_ns(), due;

    if (s->active_first_ns == 0)
        return 0;
    due = s->active_first_ns + s->ckpt_ns;
    return due > now + 1000000 ? due - now : 1000000;
}

/* ------------------------------------------------------------------ */
/* Checkpoints                                                         */

struct apply_ctx {
    struct lmdb *s;
    MDB_txn *txn;
    MDB_cursor *cur[HF_DB_COUNT_];
    int rc;
    size_t n, half;
};

/* One key of the frozen table into the txn; keys come in order, so a
 * cursor left on the last key's leaf finds the next one there. */
static void
apply_key(void *arg, int dbi, hf_slice key, hf_slice val, int del)
{
    struct apply_ctx *a = arg;
    MDB_val k = {.mv_size = key.len, .mv_data = (void *)key.data};
    MDB_val v = {.mv_size = val.len, .mv_data = (void *)val.data};

    if (a->rc != 0)
        return;
    if (a->n++ == a->half)
        hf_fault("ckpt-mid");
    if (del) {
        a->rc = mdb_del(a->txn, a->s->dbi[dbi], &k, NULL);
        if (a->rc == MDB_NOTFOUND)
            a->rc = 0;
        return;
    }
    if (a->cur[dbi] == NULL &&
        (a->rc = mdb_cursor_open(a->txn, a->s->dbi[dbi], &a->cur[dbi])) != 0)
        return;
    a->rc = mdb_cursor_put(a->cur[dbi], &k, &v, 0);
}

static int
put_applied(struct lmdb *s, MDB_txn *txn, uint64_t lsn)
{
    MDB_val k = {.mv_size = sizeof(APPLIED) - 1, .mv_data = (void *)APPLIED};
    MDB_val v = {.mv_size = sizeof(lsn), .mv_data = &lsn};

    return mdb_put(txn, s->walinfo, &k, &v, 0);
}

/* Applies mt to LMDB with lsn as the applied LSN, in one txn, growing the
 * map as needed. Returns 0 or HF_E*. */
static int
checkpoint(struct lmdb *s, hf_memtab *mt, uint64_t lsn)
{
    uint64_t t0 = hf_mono_ns();
    int rc;

    for (;;) {
        struct apply_ctx a = {.s = s, .half = hf_memtab_count(mt) / 2};

        if (atomic_load(&s->broken))
            return HF_EINTERNAL;
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &a.txn)) != 0)
            break;
        hf_memtab_each(mt, apply_key, &a);
        for (int d = 0; d < HF_DB_COUNT_; d++)
            if (a.cur[d])
                mdb_cursor_close(a.cur[d]);
        if ((rc = a.rc) == 0)
            rc = put_applied(s, a.txn, lsn);
        if (rc == 0)
            rc = mdb_txn_commit(a.txn);
        else
            mdb_txn_abort(a.txn);
        if (rc == 0) {
            HF_LMDB_INC(checkpoints);
            hf_hist_add(&hf_lmdb_metrics.ckpt_us_hist,
                        (hf_mono_ns() - t0) / 1000);
            return 0;
        }
        if (rc != MDB_MAP_FULL)
            break;
        if ((rc = hf__lmdb_grow(s)) != 0) {
            hf_error(MOD, "checkpoint: the map is full and cannot grow");
            return HF_ESTORAGE;
        }
    }
    hf_error(MOD, "checkpoint to LSN %llu failed: %s (the log keeps it)",
             (unsigned long long)lsn, mdb_strerror(rc));
    return hf__lmdb_write_status(rc);
}

/* With rw written no reader is begun: none holds a slice of the frozen
 * table or a snapshot from before the checkpoint. */
static void
drop_frozen(struct lmdb *s)
{
    hf_memtab *old;

    pthread_rwlock_wrlock(&s->rw);
    pthread_rwlock_wrlock(&s->mt_rw);
    old = s->frozen;
    s->frozen = NULL;
    pthread_rwlock_unlock(&s->mt_rw);
    pthread_rwlock_unlock(&s->rw);
    hf_memtab_free(old);
}

static void *
ckpt_main(void *p)
{
    struct lmdb *s = p;
    uint64_t released = hf_mono_ns();

    pthread_mutex_lock(&s->ck_mu);
    for (;;) {
        uint64_t lsn, mark;
        int st;

        while (!s->ck_ready && !s->ck_stop)
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
        if (!s->ck_ready)
            break;
        lsn = s->frozen_lsn;
        mark = s->frozen_mark;
        pthread_mutex_unlock(&s->ck_mu);

        if ((st = checkpoint(s, s->frozen, lsn)) == 0) {
            hf_fault("ckpt-recycle");
            atomic_store(&s->applied, lsn);
            atomic_store(&s->applied_ns, hf_mono_ns());
            atomic_store(&hf_lmdb_metrics.applied_bytes, mark);
            atomic_store(&hf_lmdb_metrics.ckpt_end_ns, hf_mono_ns());
            hf_wal_retire(s->wal, lsn);
            drop_frozen(s);
            if (hf_mono_ns() - released >= RELEASE_NS) {
                hf_mem_release(); /* what the checkpoint's burst freed */
                released = hf_mono_ns();
            }
        } else {
            HF_LMDB_INC(ckpt_failures);
        }

        pthread_mutex_lock(&s->ck_mu);
        atomic_store(&s->ck_status, st);
        if (st == 0) {
            s->ck_ready = 0;
        } else if (s->ck_stop) {
            hf_error(MOD, "stopping with a failed checkpoint: the log "
                          "keeps everything after LSN %llu for the next "
                          "start",
                     (unsigned long long)atomic_load(&s->applied));
            break;
        } else {
            struct timespec ts;
            abs_in(&ts, RETRY_MS * 1000000ull);
            pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts);
        }
        pthread_cond_broadcast(&s->ck_cv);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

void
hf__wal_stop(struct lmdb *s)
{
    if (s->ck_thr_ok) {
        pthread_mutex_lock(&s->ck_mu);
        while (s->ck_ready && atomic_load(&s->ck_status) == 0)
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
        if (!s->ck_ready && s->active_first_ns != 0)
            freeze_locked(s);
        s->ck_stop = 1;
        pthread_cond_broadcast(&s->ck_cv);
        pthread_mutex_unlock(&s->ck_mu);
        pthread_join(s->ck_thr, NULL);
        s->ck_thr_ok = 0;
    }
    hf_memtab_free(s->frozen);
    hf_memtab_free(s->active);
    s->frozen = s->active = NULL;
    hf_wal_close(s->wal);
    s->wal = NULL;
    hf_buf_free(&s->walbuf);
    if (s->ck_ok) {
        pthread_cond_destroy(&s->ck_cv);
        pthread_mutex_destroy(&s->ck_mu);
    }
    if (s->mt_ok)
        pthread_rwlock_destroy(&s->mt_rw);
}

/* ------------------------------------------------------------------ */
/* Replay                                                              */

struct replay_ctx {
    struct lmdb *s;
    MDB_txn *txn;
    int rc; /* LMDB's, when it stopped the replay */
};

static int
replay_one(void *arg, uint64_t lsn, const void *p, size_t n)
{
    struct replay_ctx *r = arg;
    hf_wbatch wb = {.ops = {.data = (char *)p, .len = n}};
    size_t pos = 0;
    hf_wop op;

    (void)lsn;
    while (hf_wbatch_next(&wb, &pos, &op)) {
        if (op.dbi < 0 || op.dbi >= HF_DB_COUNT_) {
            hf_error(MOD, "replay: record %llu has a bad database %d",
                     (unsigned long long)lsn, op.dbi);
            return HF_EINTERNAL;
        }
        r->rc = hf__lmdb_apply_one(r->s, r->txn, op.dbi, op.kind,
                                   op.key.data, op.key.len, op.val.data,
                                   op.val.len);
        if (r->rc != 0)
            return HF_ESTORAGE;
    }
    return 0;
}

static int
read_applied(struct lmdb *s, uint64_t *lsn)
{
    MDB_val k = {.mv_size = sizeof(APPLIED) - 1, .mv_data = (void *)APPLIED};
    MDB_val v;
    MDB_txn *txn;
    int rc;

    *lsn = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    if ((rc = mdb_dbi_open(txn, "wal", MDB_CREATE, &s->walinfo)) == 0 &&
        (rc = mdb_get(txn, s->walinfo, &k, &v)) == 0 &&
        v.mv_size == sizeof(*lsn))
        memcpy(lsn, v.mv_data, sizeof(*lsn));
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        return mdb_txn_commit(txn); /* keeps the new dbi handle */
    mdb_txn_abort(txn);
    return rc;
}

/* Replays the log into LMDB in one txn. Returns 0 or HF_E* (logged). */
static int
replay(struct lmdb *s, const char *wdir, uint64_t *last)
{
    struct hf_wal_replay_info info;
    uint64_t applied, t0 = hf_mono_ns(), ms;
    int rc, st;

    if ((rc = read_applied(s, &applied)) != 0) {
        hf_error(MOD, "reading the applied LSN: %s", mdb_strerror(rc));
        return hf__lmdb_status_of(rc);
    }
    for (;;) {
        struct replay_ctx r = {.s = s};
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &r.txn)) != 0) {
            hf_error(MOD, "replay: mdb_txn_begin: %s", mdb_strerror(rc));
            return hf__lmdb_status_of(rc);
        }
        st = hf_wal_replay(wdir, applied, 1, replay_one, &r, &info);
        if (st == 0 && info.records > 0)
            st = (rc = put_applied(s, r.txn, info.last)) == 0 ? 0
                                                              : HF_ESTORAGE;
        if (st == 0 && info.records > 0) {
            rc = mdb_txn_commit(r.txn);
        } else {
            mdb_txn_abort(r.txn);
            rc = st == HF_ESTORAGE ? (r.rc ? r.rc : rc) : 0;
        }
        if (st == HF_EINTERNAL)
            return st; /* damaged: logged by the replay */
        if (rc == MDB_MAP_FULL && hf__lmdb_grow(s) == 0)
            continue;
        if (rc != 0) {
            hf_error(MOD, "replay into LMDB: %s", mdb_strerror(rc));
            return hf__lmdb_write_status(rc);
        }
        break;
    }
    ms = (hf_mono_ns() - t0) / 1000000;
    atomic_store(&hf_lmdb_metrics.replay_ms, ms);
    hf_info(MOD, "log replay: %llu records (%llu bytes) after LSN %llu in "
                 "%llu ms%s", (unsigned long long)info.records,
            (unsigned long long)info.bytes, (unsigned long long)applied,
            (unsigned long long)ms, info.torn ? ", torn tail truncated" : "");
    *last = info.last;
    return 0;
}

int
hf__wal_start(struct lmdb *s, const char *dir, const struct hf_lmdb_opts *o)
{
    char wdir[PATH_MAX];
    uint64_t last = 0;
    int st;

    if ((size_t)snprintf(wdir, sizeof(wdir), "%s/wal", dir) >= sizeof(wdir))
        return HF_EINTERNAL;
    s->durability = o->durability;
    s->ckpt_bytes = o->ckpt_bytes ? o->ckpt_bytes : (size_t)64 << 20;
    s->ckpt_ns = (uint64_t)(o->ckpt_ms ? o->ckpt_ms : 1000) * 1000000u;
    s->mem_max = o->mem_max ? o->mem_max : (size_t)256 << 20;
    if ((st = replay(s, wdir, &last)) != 0)
        return st;
    s->next_lsn = last + 1;
    atomic_store(&s->applied, last);
    atomic_store(&s->logged, last);
    atomic_store(&s->applied_ns, hf_mono_ns());
    st = hf_wal_open(&s->wal, &(struct hf_wal_opts){
        .dir = wdir,
        .seg_size = o->wal_segment ? o->wal_segment : (size_t)16 << 20,
        .sync = o->durability == HF_DURABLE_SYNC,
        .dsync = o->wal_dsync,
        .next_lsn = s->next_lsn,
    });
    if (st != 0)
        return st;
    if (pthread_rwlock_init(&s->mt_rw, NULL) != 0)
        return HF_EINTERNAL;
    s->mt_ok = 1;
    if (pthread_mutex_init(&s->ck_mu, NULL) != 0)
        return HF_EINTERNAL;
    if (pthread_cond_init(&s->ck_cv, NULL) != 0) {
        pthread_mutex_destroy(&s->ck_mu);
        return HF_EINTERNAL;
    }
    s->ck_ok = 1;
    s->active = hf_memtab_new();
    if (pthread_create(&s->ck_thr, NULL, ckpt_main, s) != 0)
        return HF_EINTERNAL;
    s->ck_thr_ok = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Metrics                                                             */

void
hf__wal_metrics(FILE *out)
{
    uint64_t bytes = HF_LMDB_GET(wal_bytes), applied = HF_LMDB_GET(applied_bytes);
    uint64_t end = HF_LMDB_GET(ckpt_end_ns), now = hf_mono_ns();
    uint64_t lag = bytes > applied ? bytes - applied : 0;

    hf_metrics_counter(out, "holdfast_wal_bytes_total",
                       "Bytes appended to the write-ahead log.", bytes);
    hf_metrics_counter(out, "holdfast_wal_records_total",
                       "Log records (worker batches) appended.",
                       HF_LMDB_GET(wal_records));
    hf_metrics_counter(out, "holdfast_wal_writes_total",
                       "Log appends (group commits), one sync each.",
                       HF_LMDB_GET(wal_groups));
    hf_metrics_counter(out, "holdfast_wal_backpressure_total",
                       "Groups refused because checkpoints were behind.",
                       HF_LMDB_GET(wal_backpressure));
    hf_metrics_counter(out, "holdfast_checkpoints_total",
                       "Checkpoints into LMDB.", HF_LMDB_GET(checkpoints));
    hf_metrics_counter(out, "holdfast_checkpoint_failures_total",
                       "Failed checkpoints (retried; the log keeps them).",
                       HF_LMDB_GET(ckpt_failures));
    hf_metrics_gauge(out, "holdfast_checkpoint_lag_bytes",
                     "Log bytes not yet in a synced checkpoint.",
                     (int64_t)lag);
    hf_metrics_gauge(out, "holdfast_checkpoint_lag_ms",
                     "Time since the last checkpoint, when the log is "
                     "ahead of it.",
                     lag && end && now > end ? (int64_t)((now - end) / 1000000)
                                             : 0);
    hf_metrics_gauge(out, "holdfast_wal_replay_ms",
                     "How long the log replay took at start.",
                     (int64_t)HF_LMDB_GET(replay_ms));
    hf_metrics_hist(out, "holdfast_wal_sync_us",
                    "Log append and sync latency.",
                    &hf_lmdb_metrics.wal_sync_us_hist);
    hf_metrics_hist(out, "holdfast_wal_group_records",
                    "Records per log append.", &hf_lmdb_metrics.wal_group_hist);
    hf_metrics_hist(out, "holdfast_checkpoint_us", "Checkpoint duration.",
                    &hf_lmdb_metrics.ckpt_us_hist);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

int
hf__wal_get(struct lmdb *s, uint64_t snap, int dbi, hf_slice key,
            hf_slice *val)
{
    int del = 0, found;

    pthread_rwlock_rdlock(&s->mt_rw);
    found = hf_memtab_get(s->active, snap, dbi, key, val, &del) ||
            (s->frozen &&
             hf_memtab_get(s->frozen, snap, dbi, key, val, &del));
    pthread_rwlock_unlock(&s->mt_rw);
    if (!found)
        return 1;
    return del ? HF_ENOTFOUND : 0;
}

/* LMDB's default order: memcmp on the common length, then the shorter. */
static int
keycmp(hf_slice a, hf_slice b)
{
    size_t m = a.len < b.len ? a.len : b.len;
    int r = m ? memcmp(a.data, b.data, m) : 0;

    return r ? r : (a.len > b.len) - (a.len < b.len);
}

/* One source of a merged scan: a memtable, or (it.m NULL) LMDB. */
struct src {
    hf_memtab_it it;
    MDB_cursor *c;
    int valid, del;
    hf_slice k, v;
};

static int
src_load(struct src *x, int rc)
{
    if (x->c == NULL) {
        if ((x->valid = x->it.node != NULL))
            hf_memtab_cur(&x->it, &x->k, &x->v, &x->del);
        return 0;
    }
    x->valid = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
src_step(struct src *x, int reverse, MDB_val *k, MDB_val *v)
{
    int rc;

    if (x->c == NULL) {
        if (reverse)
            hf_memtab_prev(&x->it);
        else
            hf_memtab_next(&x->it);
        return src_load(x, 0);
    }
    rc = mdb_cursor_get(x->c, k, v, reverse ? MDB_PREV : MDB_NEXT);
    x->k = (hf_slice){k->mv_data, k->mv_size};
    x->v = (hf_slice){v->mv_data, v->mv_size};
    return src_load(x, rc);
}

int
hf__wal_scan(struct lmdb *s, MDB_txn *txn, uint64_t snap, int dbi,
             hf_slice lo, hf_slice hi, int reverse, hf_scan_fn fn, void *arg)
{
    struct src x[3] = {0}; /* memtables newest first, then LMDB */
    hf_memtab *t[2];
    MDB_cursor *cur;
    MDB_val k, v;
    int n = 0, rc;

    if ((rc = mdb_cursor_open(txn, s->dbi[dbi], &cur)) != 0) {
        hf_error(MOD, "scan: mdb_cursor_open: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    pthread_rwlock_rdlock(&s->mt_rw);
    t[0] = s->active;
    t[1] = s->frozen;
    for (int i = 0; i < 2; i++) {
        if (t[i] == NULL)
            continue;
        if (reverse)
            hf_memtab_seek_lt(&x[n].it, t[i], snap, dbi, hi);
        else
            hf_memtab_seek_ge(&x[n].it, t[i], snap, dbi, lo);
        src_load(&x[n++], 0);
    }
    x[n].c = cur;
    rc = hf__lmdb_scan_first(cur, lo, hi, reverse, &k, &v);
    x[n].k = (hf_slice){k.mv_data, k.mv_size};
    x[n].v = (hf_slice){v.mv_data, v.mv_size};
    rc = src_load(&x[n], rc);
    n++;
    while (rc == 0) {
        int best = -1, del;
        hf_slice bk, bv;

        for (int i = 0; i < n; i++) {
            int c;
            if (!x[i].valid)
                continue;
            c = best < 0 ? -1 : keycmp(x[i].k, x[best].k);
            if (best < 0 || (reverse ? c > 0 : c < 0))
                best = i;
        }
        if (best < 0)
            break;
        bk = x[best].k;
        bv = x[best].v;
        del = x[best].c == NULL && x[best].del;
        if (!reverse && hi.len && keycmp(bk, hi) >= 0)
            break;
        if (reverse && lo.len && keycmp(bk, lo) < 0)
            break;
        if (!del && fn(arg, bk, bv) != 0)
            break;
        /* Past this key in every source that has it (bk stays valid: it
         * points into a memtable or LMDB's map, not into a source). */
        for (int i = 0; i < n && rc == 0; i++)
            if (x[i].valid && keycmp(x[i].k, bk) == 0)
                rc = src_step(&x[i], reverse, &k, &v);
    }
    pthread_rwlock_unlock(&s->mt_rw);
    mdb_cursor_close(cur);
    if (rc != 0) {
        hf_error(MOD, "scan: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    return 0;
}
