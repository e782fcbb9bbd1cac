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
#include "storage/memtab.h"
#include "storage/wal.h"

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
    uint64_t snap; /* with the WAL: the last LSN this snapshot sees */
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

    /* The write-ahead log (walstore.c); wal NULL = off, and none of the
     * rest is used. */
    hf_wal *wal;
    MDB_dbi walinfo;  /* the "wal" database: "applied" -> u64 LSN */
    int durability;
    size_t ckpt_bytes, mem_max;
    uint64_t ckpt_ns;
    hf_buf walbuf;    /* writer thread only: a group's records */
    uint64_t next_lsn; /* writer thread only */
    /* Memtables: writes durable in the log, not yet checkpointed. The
     * writer inserts into active under mt_rw; frozen is being
     * checkpointed and never changes. Both pointers change under mt_rw
     * written; frozen is dropped only with rw also written (no reader
     * begun, so none holds a slice of it or an older LMDB snapshot). */
    pthread_rwlock_t mt_rw;
    hf_memtab *active, *frozen;
    uint64_t active_first_ns, active_bytes, active_last; /* writer only */
    /* ck_mu guards frozen_lsn, ck_ready and ck_stop; ck_cv wakes the
     * checkpointer (ck_ready, ck_stop) and a writer waiting for it. */
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    uint64_t frozen_lsn, frozen_mark; /* its last LSN; wal_bytes then */
    int ck_ready, ck_stop;
    pthread_t ck_thr;
    atomic_int ck_status;            /* last checkpoint's failure, or 0 */
    atomic_uint_least64_t applied;   /* LSN synced into LMDB */
    atomic_uint_least64_t logged;    /* LSN durable in the log */
    atomic_uint_least64_t applied_ns; /* when the last checkpoint ended */

    /* What open got as far as, so one teardown serves every failure. */
    unsigned rw_ok : 1, mu_ok : 1, cv_ok : 1, thr_ok : 1, mt_ok : 1,
        ck_ok : 1, ck_thr_ok : 1;
};

/* LMDB and errno codes to ours (lmdb.c). */
int hf__lmdb_status_of(int rc);
/* The status of a failed write txn: a short write is a full disk too. */
int hf__lmdb_write_status(int rc);
/* The writer thread (writer.c): owns every write txn until close, or,
 * with the WAL, every log append. */
void *hf__lmdb_writer(void *p);
/* Counts a durable group commit of nb batches begun at t0 (writer.c). */
void hf__lmdb_count_commit(uint64_t nb, uint64_t nops, uint64_t nh,
                           uint64_t t0);
/* Doubles the map (writer.c). Returns 0 or an LMDB/errno code. */
int hf__lmdb_grow(struct lmdb *s);
/* Puts or deletes one key (writer.c). Returns 0 or an LMDB/errno code. */
int hf__lmdb_apply_one(struct lmdb *s, MDB_txn *txn, int dbi, int kind,
                       const void *k, size_t kl, const void *v, size_t vl);

/* The first key of a scan (lmdb.c). Returns an LMDB code. */
int hf__lmdb_scan_first(MDB_cursor *c, hf_slice lo, hf_slice hi, int reverse,
                        MDB_val *k, MDB_val *v);

/* walstore.c: the store's side of the write-ahead log. */
/* At open, before any thread: replays the log into LMDB, opens it for
 * writing and starts the checkpointer. Returns 0 or HF_E*. */
int hf__wal_start(struct lmdb *s, const char *dir,
                  const struct hf_lmdb_opts *o);
/* The writer's group commit with the log: append, sync, memtable. Returns
 * 0 or the group's HF_E* status; *step says where it failed. */
int hf__wal_group(struct lmdb *s, hf_wbatch *head, const char **step);
/* The writer's tick: starts a checkpoint when one is due. */
void hf__wal_tick(struct lmdb *s, int closing);
/* How long the writer may sleep before the next tick is due (ns; 0 =
 * no deadline). */
uint64_t hf__wal_sleep_ns(struct lmdb *s);
/* At close, after the writer stopped: checkpoints the rest, stops the
 * checkpointer, closes the log. */
void hf__wal_stop(struct lmdb *s);
/* The log's metrics, for lmdb.c's writer. */
void hf__wal_metrics(FILE *out);
/* Reads with the memtables over LMDB. */
/* As of the reader's snapshot LSN. hf__wal_get: 0 or HF_ENOTFOUND from a
 * memtable, 1 = ask LMDB. */
int hf__wal_get(struct lmdb *s, uint64_t snap, int dbi, hf_slice key,
                hf_slice *val);
int hf__wal_scan(struct lmdb *s, MDB_txn *txn, uint64_t snap, int dbi,
                 hf_slice lo, hf_slice hi, int reverse, hf_scan_fn fn,
                 void *arg);

#endif
