/*
 * lmdb.c - core/storage.h on LMDB: open and close, the directory lock,
 * readers and submission. The writer thread is writer.c; the structures
 * both share are lmdb_int.h.
 *
 * Design notes
 *
 * Threads. Workers read through numbered readers and hand write batches to
 * submit; one writer thread (writer.c) owns every write transaction. The
 * environment is opened with MDB_NOTLS so a read transaction belongs to its
 * reader, not to a thread: each reader's txn is created once at open and is
 * then only renewed (rd_begin) and reset (rd_end), which costs no
 * allocation and keeps its lock-table slot.
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
 */
#include "storage/lmdb_int.h"

/* LMDB and errno codes to ours: a full disk is storage_full, the rest is
 * unexpected. */
int
hf__lmdb_status_of(int rc)
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
int
hf__lmdb_write_status(int rc)
{
    return rc == EIO ? HF_ESTORAGE : hf__lmdb_status_of(rc);
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
    /* After the renew: LMDB's snapshot holds no LSN above this one (a
     * checkpoint applies only logged LSNs), so the memtables' versions up
     * to it and LMDB agree. */
    if (s->wal)
        s->rd[r].snap = atomic_load(&s->logged);
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
    if (s->wal && (rc = hf__wal_get(s, s->rd[r].snap, dbi, key, val)) != 1)
        return rc;
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
int
hf__lmdb_scan_first(MDB_cursor *c, hf_slice lo, hf_slice hi, int reverse, MDB_val *k,
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
    if (s->wal)
        return hf__wal_scan(s, txn, s->rd[r].snap, dbi, lo, hi, reverse, fn,
                            arg);
    if ((rc = mdb_cursor_open(txn, s->dbi[dbi], &c)) != 0) {
        hf_error(MOD, "scan: mdb_cursor_open: %s", mdb_strerror(rc));
        return HF_EINTERNAL;
    }
    for (rc = hf__lmdb_scan_first(c, lo, hi, reverse, &k, &v); rc == 0;
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
/* Metrics                                                             */

struct hf_lmdb_metrics hf_lmdb_metrics;

static void
metrics_write(FILE *out)
{
    hf_metrics_counter(out, "holdfast_commits_total",
            "Group commits (log appends, or LMDB txns without the log).",
            HF_LMDB_GET(commits));
    hf_metrics_counter(out, "holdfast_commit_failures_total", "Failed commits.",
            HF_LMDB_GET(commit_failures));
    hf_metrics_counter(out, "holdfast_commit_ops_total", "Write operations committed.",
            HF_LMDB_GET(commit_ops));
    hf_metrics_counter(out, "holdfast_map_grows_total", "LMDB map size increases.",
            HF_LMDB_GET(map_grows));
    hf_metrics_hist(out, "holdfast_commit_handlers", "Handlers per group commit.",
         &hf_lmdb_metrics.commit_handlers_hist);
    hf_metrics_hist(out, "holdfast_commit_latency_us", "Group commit latency.",
         &hf_lmdb_metrics.commit_us_hist);
    hf__wal_metrics(out);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static const char *const durabilities[] = {"sync", "none", NULL};
static const char *const wal_syncs[] = {"fdatasync", "dsync", NULL};

#define F(f) offsetof(hf_lmdb_config, f)
#define S(f) sizeof(((hf_lmdb_config *)0)->f)

const struct hf_opt hf_lmdb_config_opts[] = {
    {.name = "data", .type = HF_OPT_STR, .off = F(data), .size = S(data),
     .def = "./data", .help = "data directory (LMDB environment)"},
    {.name = "durability", .type = HF_OPT_ENUM, .off = F(durability),
     .names = durabilities, .def = "sync",
     .help = "sync (fsync per group commit) or none"},
    {.name = "map-size-mb", .type = HF_OPT_INT, .off = F(map_size_mb),
     .min = 1, .max = INT_MAX, .def = "1024",
     .help = "initial LMDB map size; it grows when full"},
    {.name = "wal", .type = HF_OPT_BOOL, .off = F(wal), .def = "true",
     .help = "acknowledge on a write-ahead log append, checkpoint into LMDB "
             "in bulk"},
    {.name = "wal-sync", .type = HF_OPT_ENUM, .off = F(wal_sync),
     .names = wal_syncs, .def = "fdatasync",
     .help = "how a log write is made durable: fdatasync, or dsync "
             "(O_DSYNC writes)"},
    {.name = "wal-segment-mb", .type = HF_OPT_INT, .off = F(wal_segment_mb),
     .min = 1, .max = 4096, .def = "16",
     .help = "log segment size, reserved ahead"},
    {.name = "checkpoint-mb", .type = HF_OPT_INT, .off = F(checkpoint_mb),
     .min = 1, .max = 65536, .def = "64",
     .help = "checkpoint into LMDB after this much log"},
    {.name = "checkpoint-ms", .type = HF_OPT_INT, .off = F(checkpoint_ms),
     .min = 1, .max = 3600000, .def = "1000",
     .help = "... or this long after the first write since the last"},
    {.name = "wal-mem-mb", .type = HF_OPT_INT, .off = F(wal_mem_mb),
     .min = 1, .max = 1 << 20, .def = "256",
     .help = "writes not yet checkpointed held in memory before writes "
             "answer overloaded"},
};
const size_t hf_lmdb_config_nopts =
    sizeof(hf_lmdb_config_opts) / sizeof(hf_lmdb_config_opts[0]);

hf_optset
hf_lmdb_config_set(hf_lmdb_config *cfg)
{
    return (hf_optset){hf_lmdb_config_opts, hf_lmdb_config_nopts, cfg};
}

struct hf_lmdb_opts
hf_lmdb_config_opts_of(const hf_lmdb_config *cfg)
{
    return (struct hf_lmdb_opts){
        .dir = cfg->data,
        .durability = cfg->durability,
        .map_size = (size_t)cfg->map_size_mb << 20,
        .no_wal = !cfg->wal,
        .wal_dsync = cfg->wal_sync == 1,
        .wal_segment = (size_t)cfg->wal_segment_mb << 20,
        .ckpt_bytes = (size_t)cfg->checkpoint_mb << 20,
        .ckpt_ms = cfg->checkpoint_ms,
        .mem_max = (size_t)cfg->wal_mem_mb << 20,
    };
}

void
hf_lmdb_config_defaults(hf_lmdb_config *cfg)
{
    hf_optset s = hf_lmdb_config_set(cfg);

    memset(cfg, 0, sizeof(*cfg));
    hf_opts_defaults(&s, 1);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

/* Frees whatever open got as far as. The writer must be stopped. */
static void
destroy(struct lmdb *s)
{
    if (s == NULL)
        return;
    hf__wal_stop(s); /* before the environment: it checkpoints into it */
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
        hf_error(MOD,
                 "data directory %s is in use by another holdfast "
                 "(pid %s, lock %s): two servers on one directory lose "
                 "acknowledged writes; stop the other one first",
                 dir, pid[0] ? pid : "unknown", path);
        return HF_ECONFLICT;
    }
    /* For the message above only: a failure here costs nothing else. */
    len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lockfd, 0) != 0 ||
        pwrite(s->lockfd, pid, (size_t)len, 0) != len)
        hf_warn(MOD, "cannot write our pid into %s: %s", path, strerror(errno));
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

    hf_metrics_register(metrics_write);
    out->ops = NULL;
    out->self = NULL;
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0' || o->nreaders < 0 ||
        o->nreaders > 100000 ||
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
    if ((rc = mdb_env_set_maxdbs(s->env, HF_DB_COUNT_ + 1)) != 0)
        goto fail;
    step = "mdb_env_set_maxreaders";
    if ((rc = mdb_env_set_maxreaders(s->env,
                                     (unsigned)s->nrd + SPARE_READERS)) != 0)
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

    if (!o->no_wal && (st = hf__wal_start(s, o->dir, o)) != 0) {
        hf_error(MOD, "open %s: the write-ahead log could not start", o->dir);
        lmdb_close(s);
        return st;
    }

    step = "creating the readers";
    for (int r = 0; r < s->nrd; r++) {
        if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rd[r].txn)) != 0)
            goto fail;
        mdb_txn_reset(s->rd[r].txn);
    }

    step = "pthread_create";
    if ((rc = pthread_create(&s->thr, NULL, hf__lmdb_writer, s)) != 0)
        goto fail;
    s->thr_ok = 1;

    if (o->durability == HF_DURABLE_NONE)
        hf_warn(MOD,
                "DURABILITY IS OFF (--durability none): commits are not "
                "fsynced and acknowledged writes CAN BE LOST on a crash; use "
                "only for throwaway benchmarks");
    hf_info(MOD, "opened %s: map %zu bytes, %d readers, durability %s, %s",
            o->dir, info.me_mapsize, s->nrd,
            o->durability == HF_DURABLE_NONE ? "none" : "sync",
            s->wal ? "write-ahead log on" : "no write-ahead log");
    out->ops = &lmdb_ops;
    out->self = s;
    return 0;

fail:
    if (rc != 0) {
        st = hf__lmdb_status_of(rc);
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
