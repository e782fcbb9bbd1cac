/*
 * memtab.h - the WAL's memtable: writes that are durable in the log but
 * not yet in LMDB, ordered by (database, key) as LMDB orders them, so
 * that a read can merge it with an LMDB cursor (DESIGN §4.5).
 *
 * A skip list of keys; each key holds its newest value or a tombstone.
 * Overwriting a key never frees the value it replaces: a reader may still
 * hold a slice of it. Every byte lives until hf_memtab_free.
 *
 * Thread-safety: none inside. The store guards the active table with a
 * rwlock (one writer inserts, readers look up and iterate) and never
 * changes a frozen one. Errors: none; running out of memory aborts
 * (core/oom.h).
 */
#ifndef HF_STORAGE_MEMTAB_H
#define HF_STORAGE_MEMTAB_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct hf_memtab hf_memtab;
struct mt_node;

hf_memtab *hf_memtab_new(void);
/* Frees every node and value. Accepts NULL. */
void hf_memtab_free(hf_memtab *m);

/* Sets (dbi, key) to val, or to a tombstone when del, as of log sequence
 * number lsn (never lower than the previous put's). Copies both. */
void hf_memtab_put(hf_memtab *m, uint64_t lsn, int dbi, const void *k,
                   size_t kl, const void *v, size_t vl, int del);

/* Bytes held (keys, values and overhead, old values included). */
size_t hf_memtab_bytes(const hf_memtab *m);
/* Distinct keys held. */
size_t hf_memtab_count(const hf_memtab *m);

/* 1 with the newest value at or below LSN snap (*del set for a
 * tombstone), or 0 when the key had none then. Reads as of a snapshot:
 * versions are kept. The slice lives until hf_memtab_free. */
int hf_memtab_get(const hf_memtab *m, uint64_t snap, int dbi, hf_slice key,
                  hf_slice *val, int *del);

/* A position in one database's keys as of LSN snap (keys with no value
 * then are skipped); node NULL = past the end. */
typedef struct hf_memtab_it {
    const hf_memtab *m;
    const struct mt_node *node;
    int dbi;
    uint64_t snap;
} hf_memtab_it;

/* Positions: first key >= k (k.len 0: the first key); last key < k
 * (k.len 0: the last key). Then next and prev. */
void hf_memtab_seek_ge(hf_memtab_it *it, const hf_memtab *m, uint64_t snap,
                       int dbi, hf_slice k);
void hf_memtab_seek_lt(hf_memtab_it *it, const hf_memtab *m, uint64_t snap,
                       int dbi, hf_slice k);
void hf_memtab_next(hf_memtab_it *it);
void hf_memtab_prev(hf_memtab_it *it);
/* The current key and value (del: a tombstone). it->node must be set. */
void hf_memtab_cur(const hf_memtab_it *it, hf_slice *key, hf_slice *val,
                   int *del);

/* Visits every key of every database in order: dbi, key, newest value
 * (a checkpoint: the table is frozen, every version is durable). */
typedef void hf_memtab_visit(void *arg, int dbi, hf_slice key, hf_slice val,
                             int del);
void hf_memtab_each(const hf_memtab *m, hf_memtab_visit *fn, void *arg);

#endif
