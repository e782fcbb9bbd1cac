/*
 * lmdb.h - the LMDB implementation of the store interface (core/storage.h).
 *
 * One LMDB environment in a data directory, one named database per
 * HF_DB_* value ("kv", "log", "meta", "alarms", "idem", "outbox", and
 * "wal" for the log's applied LSN), a fixed set of readers and a single
 * writer thread that group-commits every batch submitted since its
 * previous commit: by default to the write-ahead log in DIR/wal, from
 * which a checkpointer thread updates LMDB in bulk (storage/walstore.c);
 * with no_wal straight into LMDB.
 *
 * Thread-safety, beyond what core/storage.h states for the ops table:
 *   - hf_lmdb_open and the store's close are not thread-safe: call them from
 *     one thread, with no reader begun and (for close) no other thread still
 *     using the store.
 *   - submit, hf_lmdb_fail_next and hf_lmdb_map_size are safe from any
 *     thread while the store is open.
 *   - Reader r is used by one thread at a time; a thread must not have two
 *     readers begun at once (rd_begin takes a read lock that the writer
 *     needs exclusively to grow the map, and the lock is not recursive).
 *   - done callbacks run on the writer thread, one at a time.
 *
 * Errors, beyond core/storage.h: rd_begin returns HF_EINTERNAL for a bad
 * index, a reader already begun, or an LMDB failure (rd_end of a reader
 * not begun is ignored); get and scan return HF_EINTERNAL for a bad reader
 * or database index. A batch's status is HF_ESTORAGE when the disk is full
 * (ENOSPC, EDQUOT, or the EIO with which LMDB reports a short write, so
 * any EIO while writing) or the map cannot grow (see HF_LMDB_MAP_MAX),
 * HF_EINTERNAL for anything else, and after a failure the worker's batches
 * of that generation and older fail too (the fencing rule in lmdb.c's
 * design notes).
 *
 * Ownership: the store owns everything hf_lmdb_open allocates; close frees
 * it. A submitted batch belongs to the store until its done callback is
 * called; the store never frees a batch. Slices returned by get and scan
 * point into LMDB's memory map and stay valid until that reader's rd_end.
 */
#ifndef HF_STORAGE_LMDB_H
#define HF_STORAGE_LMDB_H

#include <stddef.h>

#include "core/config.h"
#include "core/metrics.h"
#include "core/storage.h"

/* Batches must come from workers 0 .. HF_LMDB_MAX_WORKERS - 1: the writer
 * keeps one commit-failure fence per worker in a fixed table. submit
 * returns HF_EINTERNAL (and logs) for any other worker index. */
#define HF_LMDB_MAX_WORKERS 1024

/* The map never grows past this; a group that would need more fails with
 * HF_ESTORAGE. */
#define HF_LMDB_MAP_MAX ((size_t)1 << 40)

struct hf_lmdb_opts {
    const char *dir;  /* data directory; created (one level, mode 0750) if
                         missing */
    int nreaders;     /* number of readers (indexes 0 .. nreaders - 1) */
    int durability;   /* HF_DURABLE_SYNC or HF_DURABLE_NONE (core/storage.h) */
    size_t map_size;  /* initial map size in bytes; 0 = LMDB's default. An
                         existing environment keeps its larger size. */
    /* The write-ahead log (DESIGN §4.5); zero fields take the defaults. */
    int no_wal;         /* 1: commit every group straight into LMDB */
    int wal_dsync;      /* 1: O_DSYNC writes instead of fdatasync */
    size_t wal_segment; /* bytes per log segment (16 MiB) */
    size_t ckpt_bytes;  /* checkpoint after this much log (64 MiB) ... */
    int ckpt_ms;        /* ... or this long after a first write (1000) */
    size_t mem_max;     /* memtable bound before backpressure (256 MiB) */
};

/*
 * Opens the environment in o->dir, creates the named databases and the
 * readers, and starts the writer thread; on success fills *out, which the
 * caller later closes with out->ops->close(out->self). o is not kept.
 *
 * With HF_DURABLE_NONE the environment is opened with MDB_NOSYNC and a
 * warning is logged: an acknowledged write can be lost on a crash.
 *
 * The store holds an exclusive lock on o->dir (the file o->dir/LOCK, which
 * also records the holder's PID) from open to close: one store per
 * directory, whatever the process. A process that forks while a store is
 * open shares the lock with its child until the child execs or exits.
 *
 * Unless o->no_wal, the write-ahead log in o->dir/wal is replayed into
 * LMDB first (its time is logged), and a damaged log (a bad record with
 * valid ones after it) fails the open with HF_EINTERNAL, naming the
 * segment and offset; see hf_wal_truncate_at (storage/wal.h).
 *
 * Returns 0; HF_ECONFLICT when another store, in this process or another,
 * holds the directory (the log names its PID); HF_ESTORAGE when the disk
 * is full; HF_EINTERNAL for bad options or any other failure. Every
 * failure is logged and leaves nothing behind (*out is zeroed) except a
 * directory that mkdir created and its LOCK file.
 */
int hf_lmdb_open(hf_store *out, const struct hf_lmdb_opts *o);

/*
 * Test hook: the next commit fails with err (HF_ESTORAGE or HF_EINTERNAL)
 * instead of committing: the transaction is aborted, nothing is written,
 * and the group fails (and fences) exactly as a real failure would. err =
 * 0 disarms. Safe from any thread.
 */
void hf_lmdb_fail_next(hf_store *st, int err);

/* The current map size in bytes. Safe from any thread. */
size_t hf_lmdb_map_size(hf_store *st);

/* The storage layer's options (core/config.h tells how options work). */
typedef struct hf_lmdb_config {
    char data[512];  /* --data: the data directory */
    int durability;  /* --durability sync|none */
    int map_size_mb; /* --map-size-mb: initial map size */
    int wal;           /* --wal: the write-ahead log on (default) or off */
    int wal_sync;      /* --wal-sync fdatasync|dsync */
    int wal_segment_mb;
    int checkpoint_mb;
    int checkpoint_ms;
    int wal_mem_mb;
} hf_lmdb_config;

/* The store's open options from the configuration (nreaders left 0). */
struct hf_lmdb_opts hf_lmdb_config_opts_of(const hf_lmdb_config *cfg);

extern const struct hf_opt hf_lmdb_config_opts[];
extern const size_t hf_lmdb_config_nopts;

/* The storage set, over cfg. */
hf_optset hf_lmdb_config_set(hf_lmdb_config *cfg);
/* Every storage option at its default. */
void hf_lmdb_config_defaults(hf_lmdb_config *cfg);

/* The storage layer's counters (core/metrics.h tells how metrics work);
 * written to /metrics once a store has been opened. */
struct hf_lmdb_metrics {
    atomic_uint_least64_t commits;         /* group commits (log appends, or
                                              LMDB txns without the log) */
    atomic_uint_least64_t commit_failures;
    atomic_uint_least64_t commit_batches;  /* worker batches committed */
    atomic_uint_least64_t commit_ops;      /* write operations */
    atomic_uint_least64_t commit_handlers; /* handlers committed */
    atomic_uint_least64_t map_grows;
    hf_hist commit_handlers_hist; /* handlers per commit */
    hf_hist commit_us_hist;       /* commit latency, microseconds */
    /* The write-ahead log. */
    atomic_uint_least64_t wal_bytes, wal_records, wal_groups;
    atomic_uint_least64_t wal_backpressure; /* groups refused: memory */
    atomic_uint_least64_t checkpoints, ckpt_failures;
    atomic_uint_least64_t replay_ms;  /* the last replay at open */
    atomic_uint_least64_t applied_bytes; /* wal_bytes a checkpoint holds */
    atomic_uint_least64_t ckpt_end_ns;   /* when the last one ended */
    hf_hist wal_sync_us_hist;  /* log write + sync, microseconds */
    hf_hist wal_group_hist;    /* records (batches) per log write */
    hf_hist ckpt_us_hist;      /* checkpoint duration, microseconds */
};

extern struct hf_lmdb_metrics hf_lmdb_metrics;

#define HF_LMDB_INC(f)                                                       \
    atomic_fetch_add_explicit(&hf_lmdb_metrics.f, 1, memory_order_relaxed)
#define HF_LMDB_ADD(f, n)                                                    \
    atomic_fetch_add_explicit(&hf_lmdb_metrics.f, (n), memory_order_relaxed)
#define HF_LMDB_GET(f)                                                       \
    atomic_load_explicit(&hf_lmdb_metrics.f, memory_order_relaxed)

#endif
