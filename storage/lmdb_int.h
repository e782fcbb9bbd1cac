/*
 * lmdb_int.h - what storage/lmdb.c and storage/writer.c share: the store's
 * structure and the writer thread. Not a public header (storage/lmdb.h is).
 * Threads: see the fields' comments and lmdb.c's design notes.
 */
#ifndef HF_STORAGE_LMDB_INT_H
#define HF_STORAGE_LMDB_INT_H

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
    [HF_DB_KV] = "kv",         [HF_DB_LOG] = "log",   [HF_DB_META] = "meta",
    [HF_DB_ALARMS] = "alarms", [HF_DB_IDEM] = "idem", [HF_DB_OUTBOX] = "outbox",
    [HF_DB_FEED] = "feed",
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

/* LMDB and errno codes to ours (lmdb.c). */
int hf__lmdb_status_of(int rc);
/* The status of a failed write txn: a short write is a full disk too. */
int hf__lmdb_write_status(int rc);
/* The writer thread (writer.c): owns every write txn until close. */
void *hf__lmdb_writer(void *p);

#endif
