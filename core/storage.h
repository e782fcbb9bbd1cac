/*
 * storage.h - the durable storage interface the engine runs on.
 *
 * Design note: core must not include storage/ (DESIGN §1), yet the workers
 * read and the writer commits. So core declares the interface here, an ops
 * table in the way nng declares a transport, and storage/lmdb.c implements
 * it; main() wires the two. Tests use the same seam to observe commits.
 *
 * Databases (DESIGN §4), keys built by core/keys.h:
 *   HF_DB_KV      actor state            addr \0 userkey          -> value
 *   HF_DB_LOG     event log              addr \0 be64 seq         -> event
 *   HF_DB_META    per-actor metadata     addr \0 field            -> value
 *   HF_DB_ALARMS  alarm index by time    be64 ms  addr \0 name    -> ""
 *   HF_DB_IDEM    idempotency replies    addr \0 caller \0 key    -> be64 ms, ok byte, reply
 *   HF_DB_OUTBOX  undelivered sends      addr \0 be64 id          -> envelope
 *   HF_DB_FEED    webhook feed           be64 endpoint addr \0 be64 seq -> ""
 *
 * Writes travel as hf_wbatch: one worker's writes from one loop pass. The
 * store's single writer thread makes every batch submitted since its
 * last commit durable at once (group commit: one write-ahead log append
 * and one fsync in sync mode, or one LMDB transaction without the log)
 * and then hands each batch back through the done callback,
 * with wb->status set: 0 when the commit holding it is durable, or
 * HF_ESTORAGE / HF_EINTERNAL when it failed and none of it was written.
 */
#ifndef HF_CORE_STORAGE_H
#define HF_CORE_STORAGE_H

#include <stdint.h>

#include "core/buf.h"

/* How a commit reaches the disk (hf_lmdb_config's --durability). */
enum hf_durability {
    HF_DURABLE_SYNC = 0, /* fsync every group commit (default) */
    HF_DURABLE_NONE = 1  /* no fsync: throwaway benchmarks only */
};

enum hf_dbi {
    HF_DB_KV = 0,
    HF_DB_LOG,
    HF_DB_META,
    HF_DB_ALARMS,
    HF_DB_IDEM,
    HF_DB_OUTBOX,
    HF_DB_FEED,
    HF_DB_COUNT_
};

enum hf_wop_kind { HF_WOP_PUT = 1, HF_WOP_DEL = 2 };

/* A write batch. Owned by exactly one party at a time: the worker that
 * fills it, then the store (from submit until done), then the worker
 * again. The store reads ops, nops and nhandlers and sets status; the rest is the
 * engine's bookkeeping, carried along. */
typedef struct hf_wbatch {
    struct hf_wbatch *next; /* link for whichever queue holds it */
    int worker;             /* submitting worker */
    uint64_t gen;           /* worker generation (commit-failure fencing) */
    uint64_t id;            /* worker-local batch number, increasing */
    int status;             /* set by the store before done() */
    hf_buf ops;             /* encoded operations, see hf_wbatch_next */
    uint32_t nops;
    uint32_t nhandlers;     /* handlers whose writes it holds (metrics) */
    void *owner;            /* engine data (held outputs) */
    /* When set, the store hands this batch back through done(done_arg,
     * wb) instead of the callback given to set_done: for a writer that
     * is not a worker (the webhook feed's trimming). Kept by reset. */
    void (*done)(void *arg, struct hf_wbatch *wb);
    void *done_arg;
} hf_wbatch;

typedef struct hf_wop {
    int kind; /* HF_WOP_PUT or HF_WOP_DEL */
    int dbi;
    hf_slice key;
    hf_slice val; /* empty for DEL */
} hf_wop;

/* Appends an operation. Keys are at most HF_KEY_MAX bytes (LMDB's limit
 * less room to spare). Returns 0, HF_ETOOLARGE or HF_EINTERNAL (memory). */
#define HF_KEY_MAX 500
int hf_wbatch_put(hf_wbatch *wb, int dbi, const void *k, size_t kl,
                  const void *v, size_t vl);
int hf_wbatch_del(hf_wbatch *wb, int dbi, const void *k, size_t kl);

/* Iterates: start with *pos = 0; returns 1 and fills *op while there are
 * operations, 0 at the end. The slices point into wb->ops. An operation
 * whose header or bytes would run past the end of ops (never one that
 * hf_wbatch_put or hf_wbatch_del wrote) ends the iteration unread. */
int hf_wbatch_next(const hf_wbatch *wb, size_t *pos, hf_wop *op);

/* Empties the batch for reuse, keeping its memory. */
void hf_wbatch_reset(hf_wbatch *wb);

/* Called on the store's writer thread once per submitted batch, in
 * submission order for each worker, after its commit is durable or has
 * failed. Must not block: queue the batch and wake its owner. */
typedef void (*hf_store_done_fn)(void *arg, hf_wbatch *wb);

/* Called for each key in a scan; the slices are valid until the reader's
 * rd_end. Return 0 to continue, anything else to stop (scan returns 0). */
typedef int (*hf_scan_fn)(void *arg, hf_slice key, hf_slice val);

/*
 * Readers: the store is opened with a number of readers; reader r is used
 * by one thread at a time. Reads happen between rd_begin(r) and rd_end(r)
 * and see the snapshot taken at rd_begin, which includes every batch whose
 * done() was called before rd_begin. A reader must not stay begun while
 * its thread blocks: the store may need every reader ended to grow the map.
 */
struct hf_store_ops {
    int (*rd_begin)(void *self, int rd);
    void (*rd_end)(void *self, int rd);

    /* 0 and *val (valid until rd_end), HF_ENOTFOUND, or HF_EINTERNAL. */
    int (*get)(void *self, int rd, int dbi, hf_slice key, hf_slice *val);

    /* Visits keys with lo <= key < hi in order (hi.len == 0: no upper
     * bound); reverse visits them from the top down. */
    int (*scan)(void *self, int rd, int dbi, hf_slice lo, hf_slice hi,
                int reverse, hf_scan_fn fn, void *arg);

    /* Hands a batch to the writer. Thread-safe. Returns 0, or HF_EUNAVAIL
     * once the store is closing (the batch stays the caller's). */
    int (*submit)(void *self, hf_wbatch *wb);

    /* Sets the done callback. Call before the first submit. */
    void (*set_done)(void *self, hf_store_done_fn fn, void *arg);

    /* Commits what was submitted, calls done for all of it, stops the
     * writer and closes. No reader may be begun. */
    void (*close)(void *self);
};

typedef struct hf_store {
    const struct hf_store_ops *ops;
    void *self;
} hf_store;

#endif
