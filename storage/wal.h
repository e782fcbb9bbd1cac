/*
 * wal.h - the write-ahead log's files: segments in DATA/wal/, records,
 * replay, truncation and the fault-injection points (DESIGN §4.5).
 *
 * A record is one worker batch: a 24-byte header (magic, CRC32C, LSN,
 * payload length) and the batch's encoded operations (core/wbatch.c).
 * LSNs count records from 1 with no gap. Segments are files named by a
 * 16-hex-digit number, preallocated and zero-filled when created, then
 * recycled (renamed to a higher number) once a synced checkpoint holds
 * every record in them.
 *
 * Ownership and threads: an hf_wal belongs to the store. hf_wal_write is
 * called by the store's writer thread only; hf_wal_retire by the
 * checkpointer; both may run at once (a mutex guards the segment list).
 * hf_wal_replay, hf_wal_truncate_at and hf_wal_status work on a
 * directory with no open hf_wal in this process.
 *
 * Errors: HF_ESTORAGE when the disk is full (a segment cannot be
 * reserved), HF_EINTERNAL otherwise; every failure is logged with the
 * file, the step and the OS error.
 */
#ifndef HF_STORAGE_WAL_H
#define HF_STORAGE_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define HF_WAL_HDR 24

typedef struct hf_wal hf_wal;

struct hf_wal_opts {
    const char *dir;    /* DATA/wal; created when missing */
    size_t seg_size;    /* bytes per segment */
    int sync;           /* 1: make each write durable before returning */
    int dsync;          /* 1: O_DSYNC writes instead of write + fdatasync */
    uint64_t next_lsn;  /* the LSN of the first record to be written */
};

/* Opens the log for writing after a replay: every segment already in the
 * directory is applied, so they become the pool of segments to recycle;
 * a first segment and a spare are reserved. Returns 0 and *out, or an
 * error (logged). */
int hf_wal_open(hf_wal **out, const struct hf_wal_opts *o);
/* Closes the files. Accepts NULL. */
void hf_wal_close(hf_wal *w);

/* Appends a record for payload p (n bytes) with LSN lsn to out. */
void hf_wal_record(hf_buf *out, uint64_t lsn, const void *p, size_t n);

/* Writes records (first .. last LSN, built by hf_wal_record) in one
 * sequential write and, when syncing, one fdatasync; returns only when
 * they are durable. On failure nothing of them counts: the next write
 * goes to the same place with the same LSNs. After a failed sync the log
 * refuses every write (HF_EINTERNAL) until restarted: what reached the
 * disk is then unknown. */
int hf_wal_write(hf_wal *w, const hf_buf *recs, uint64_t first,
                 uint64_t last);

/* A synced checkpoint holds every record up to lsn: segments wholly at or
 * below it are recycled. Returns how many. */
int hf_wal_retire(hf_wal *w, uint64_t lsn);

/* Segments in use (not counting the pool and the spare). */
int hf_wal_segments(hf_wal *w);

/* Called by replay for each record after `applied`, in LSN order. A
 * nonzero return stops the replay and is returned. */
typedef int hf_wal_apply_fn(void *arg, uint64_t lsn, const void *p,
                            size_t n);

struct hf_wal_replay_info {
    uint64_t last;      /* last LSN found (applied when none follow) */
    uint64_t records;   /* records handed to fn */
    uint64_t bytes;     /* their payload bytes */
    int torn;           /* a torn tail was found (and truncated) */
};

/*
 * Reads the log in dir and calls fn for every record with LSN > applied.
 * A torn tail (a partial record, or a bad CRC with nothing valid after
 * it) ends the log: it is logged and, with fix, zeroed so that it cannot
 * be read again. A bad record followed by a valid one, or a gap in the
 * LSNs, is corruption in the middle of the log: replay stops, logs the
 * segment file and offset and how to proceed (holdfast recover
 * --truncate-at), and returns HF_EINTERNAL. A missing directory is an
 * empty log.
 */
int hf_wal_replay(const char *dir, uint64_t applied, int fix,
                  hf_wal_apply_fn *fn, void *arg,
                  struct hf_wal_replay_info *info);

/* Drops the log from segment seg, byte offset off on: zeroes that
 * segment from off and removes every later one. For `holdfast recover`.
 * Returns 0 or HF_EINTERNAL (logged). */
int hf_wal_truncate_at(const char *dir, uint64_t seg, uint64_t off);

/* Fault injection: when the environment variable HOLDFAST_FAULT names
 * this point, the process says so on stderr and _exits (status 86) —
 * at the (HOLDFAST_FAULT_SKIP + 1)th time it passes. Inert otherwise.
 * Points: wal-append (written, not synced), wal-sync (synced, not
 * released), ckpt-mid (checkpoint txn half applied), ckpt-recycle
 * (checkpoint synced, segments not yet recycled), replay-mid (recovery
 * under way: a record applied, the replay not committed). */
void hf_fault(const char *point);

#endif
