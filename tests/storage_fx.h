/*
 * storage_fx.h - the fixture of the LMDB store tests (test_storage.c,
 * test_storage_fail.c): a fresh data directory under $HF_TEST_TMP (or
 * /tmp) with a store opened on it, and helpers to build, submit and wait
 * for write batches and to read values back.
 *
 * Completed batches are collected by a done callback into a
 * mutex-protected FIFO that the test thread waits on. Some tests "gate"
 * the writer: the done callback of one chosen batch blocks until the test
 * opens the gate, so whatever the test submits meanwhile is queued behind
 * it and lands in one group, deterministically. (Real done callbacks must
 * not block; here stalling the writer is the point.)
 *
 * HF_TEST_NO_WAL=1 runs every test without the write-ahead log (ctest
 * runs both suites both ways). The helpers assert with cmocka, so call
 * them on the test thread only; helper threads record failures in plain
 * counters that the test thread checks after joining them.
 */
#ifndef HF_TESTS_STORAGE_FX_H
#define HF_TESTS_STORAGE_FX_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/storage.h"

/* Collector: done() appends here, the test thread takes from here. */
struct sfx_coll {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hf_wbatch *head, *tail; /* linked through wb->next, in done order */
    int n;                  /* batches received so far */
    hf_wbatch *gate;        /* done(gate) blocks until gate_open */
    int gate_entered, gate_open;
};

/* Fixture: a temp directory and an open store (open: 1 while it is). */
struct sfx {
    char dir[PATH_MAX];
    hf_store st;
    int open;
    struct sfx_coll c;
};

/* A cmocka test entry with the fixture: *state is a struct sfx whose
 * store is open on a 16 MiB map, durability sync. */
#define SFX_T(fn) cmocka_unit_test_setup_teardown(fn, sfx_setup, sfx_teardown)

/* Set by a test before sfx_open: a memtable bound and no checkpoint by
 * age (0: the fixture's small, frequent checkpoints). */
extern size_t sfx_mem_max;

int sfx_setup(void **state);
int sfx_teardown(void **state);
/* Opens the store on f->dir with done() feeding f->c; returns
 * hf_lmdb_open's result. sfx_close closes it if open (drains the queue). */
int sfx_open(struct sfx *f, size_t map_size, int durability);
void sfx_close(struct sfx *f);
/* Removes dir and the files in it (no subdirectories). */
void sfx_rm_dir(const char *dir);

/* Waits until *flag (read under c->mu) is at least want; 0 on time-out
 * (120 s). sfx_wait_done fails the test unless n batches in all have come
 * back through done() in time. */
int sfx_coll_wait(struct sfx_coll *c, const int *flag, int want);
void sfx_wait_done(struct sfx_coll *c, int n);
/* Takes the oldest collected batch (NULL when none). */
hf_wbatch *sfx_coll_pop(struct sfx_coll *c);
/* Makes done(wb) block until sfx_gate_open; c->gate_entered is 1 once the
 * writer is inside it. */
void sfx_gate_close(struct sfx_coll *c, hf_wbatch *wb);
void sfx_gate_open(struct sfx_coll *c);

/* n zeroed batches (calloc'ed; fails the test when out of memory), freed
 * with their buffers by sfx_batches_free. */
hf_wbatch *sfx_batches(int n);
void sfx_batches_free(hf_wbatch *wb, int n);
/* Empties wb and labels it with worker, generation and id. */
void sfx_label(hf_wbatch *wb, int worker, uint64_t gen, uint64_t id);
/* Makes wb one put of a string key and value in kv (id 0, one handler). */
void sfx_put1(hf_wbatch *wb, int worker, uint64_t gen, const char *k,
              const char *v);
/* The store's submit. sfx_commit1 submits one batch, waits for it and
 * returns its status: only for tests with nothing else in flight. */
int sfx_submit(struct sfx *f, hf_wbatch *wb);
int sfx_commit1(struct sfx *f, hf_wbatch *wb);
/* Reads a string value through reader rd into out (cap bytes, may be NULL)
 * in a read transaction of its own; returns get's result. */
int sfx_read_str(struct sfx *f, int rd, int dbi, const char *k, char *out,
                 size_t cap);
/* Fails the test unless key k of kv reads as want / is absent (reader 0). */
void sfx_assert_value(struct sfx *f, const char *k, const char *want);
void sfx_assert_absent(struct sfx *f, const char *k);

#endif /* HF_TESTS_STORAGE_FX_H */
