/*
 * test_storage_fail.c - the LMDB store (storage/lmdb.h) at its limits and
 * when things fail: the map growing under a reader, failed commits and the
 * worker fencing that follows them, a second open of a directory in use,
 * submit while closing, and the log's memory bound answering overloaded.
 * The basic behaviour is in test_storage.c; the fixture both use is
 * storage_fx.h.
 *
 * cmocka asserts only on the test thread: helper threads record failures in
 * plain counters that the test thread checks after joining them.
 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/storage.h"
#include "storage/lmdb.h"
#include "storage_fx.h"

/* ------------------------------------------------------------------ */
/* Map growth                                                          */

struct reader_loop {
    struct sfx *f;
    atomic_int stop;
    long rounds, bad; /* bad: a result other than 0 / HF_ENOTFOUND */
};

static void *
read_forever(void *arg)
{
    struct reader_loop *r = arg;
    hf_store *st = &r->f->st;
    hf_slice v;

    while (!atomic_load(&r->stop)) {
        if (st->ops->rd_begin(st->self, 1) != 0) {
            r->bad++;
            continue;
        }
        int rc =
            st->ops->get(st->self, 1, HF_DB_KV, (hf_slice){"m00000", 6}, &v);
        if (rc != 0 && rc != HF_ENOTFOUND)
            r->bad++;
        if (rc == 0 && (v.len != 4096 || ((const char *)v.data)[4] != 'a'))
            r->bad++;
        st->ops->rd_end(st->self, 1);
        r->rounds++;
    }
    return NULL;
}

static void
fill_value(char *v, int i)
{
    memset(v, 'a' + i % 26, 4096);
    memcpy(v, &i, sizeof(i));
}

static void
test_map_grows_when_full(void **state)
{
    struct sfx *f = *state;
    enum { PER = 16, NB = 320, WAVE = 20 }; /* 5,120 values of 4 KiB */
    hf_wbatch *wb = sfx_batches(NB);
    struct reader_loop rl = {.f = f};
    uint64_t g0 = HF_LMDB_GET(map_grows);
    static char v[4096], got[4096];
    char k[16];
    pthread_t t;

    sfx_close(f);
    sfx_rm_dir(f->dir);
    assert_int_equal(sfx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    assert_int_equal(hf_lmdb_map_size(&f->st), 1u << 20);
    assert_int_equal(pthread_create(&t, NULL, read_forever, &rl), 0);

    for (int b = 0; b < NB; b++) {
        sfx_label(&wb[b], b % 3, 0, (uint64_t)b);
        for (int j = 0; j < PER; j++) {
            int i = b * PER + j;
            snprintf(k, sizeof(k), "m%05d", i);
            fill_value(v, i);
            assert_int_equal(hf_wbatch_put(&wb[b], HF_DB_KV, k, 6, v, 4096), 0);
        }
    }
    for (int b = 0; b < NB; b += WAVE) {
        for (int i = b; i < b + WAVE; i++)
            assert_int_equal(sfx_submit(f, &wb[i]), 0);
        sfx_wait_done(&f->c, b + WAVE);
    }
    atomic_store(&rl.stop, 1);
    pthread_join(t, NULL);

    for (int b = 0; b < NB; b++)
        assert_int_equal(sfx_coll_pop(&f->c)->status, 0);
    /* With the log, the map grows when a checkpoint fills it: soon. */
    for (int i = 0; i < 1000 && HF_LMDB_GET(map_grows) == g0; i++)
        usleep(10000);
    assert_true(hf_lmdb_map_size(&f->st) > (1u << 20));
    assert_true(HF_LMDB_GET(map_grows) - g0 > 0);
    assert_int_equal(rl.bad, 0);
    assert_true(rl.rounds > 0);

    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    for (int i = 0; i < NB * PER; i++) {
        hf_slice got_s;
        snprintf(k, sizeof(k), "m%05d", i);
        assert_int_equal(
            f->st.ops->get(f->st.self, 0, HF_DB_KV, (hf_slice){k, 6}, &got_s),
            0);
        assert_int_equal(got_s.len, 4096);
        fill_value(got, i);
        assert_memory_equal(got_s.data, got, 4096);
    }
    f->st.ops->rd_end(f->st.self, 0);
    sfx_batches_free(wb, NB);
}

/* ------------------------------------------------------------------ */
/* Failure and fencing                                                 */

static void
test_failed_commit_fails_group_and_fences_worker(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(4);
    uint64_t fail0 = HF_LMDB_GET(commit_failures), c0 = HF_LMDB_GET(commits);

    hf_lmdb_fail_next(&f->st, HF_ESTORAGE);
    sfx_put1(&wb[0], 0, 0, "a", "A");
    assert_int_equal(sfx_commit1(f, &wb[0]), HF_ESTORAGE);
    sfx_assert_absent(f, "a");
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    assert_int_equal(HF_LMDB_GET(commits) - c0, 0);

    /* Same worker, same generation: fenced, not written. */
    sfx_put1(&wb[1], 0, 0, "b", "B");
    assert_int_equal(sfx_commit1(f, &wb[1]), HF_ESTORAGE);
    sfx_assert_absent(f, "b");

    /* The next generation of worker 0 is written. */
    sfx_put1(&wb[2], 0, 1, "c", "C");
    assert_int_equal(sfx_commit1(f, &wb[2]), 0);
    sfx_assert_value(f, "c", "C");

    /* Another worker was never fenced. */
    sfx_put1(&wb[3], 1, 0, "d", "D");
    assert_int_equal(sfx_commit1(f, &wb[3]), 0);
    sfx_assert_value(f, "d", "D");

    /* Fenced batches are no commit failures of their own. */
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    sfx_batches_free(wb, 4);
}

static void
test_failed_commit_fails_every_batch_in_the_group(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(5);
    hf_wbatch *gate = &wb[4];
    uint64_t fail0 = HF_LMDB_GET(commit_failures);

    sfx_put1(gate, 9, 0, "gate", "g");
    sfx_gate_close(&f->c, gate);
    assert_int_equal(sfx_submit(f, gate), 0);
    assert_true(sfx_coll_wait(&f->c, &f->c.gate_entered, 1));
    /* Armed only now, so the gate's commit went through. */
    hf_lmdb_fail_next(&f->st, HF_EINTERNAL);
    sfx_put1(&wb[0], 0, 3, "a", "A");
    sfx_put1(&wb[1], 1, 0, "b", "B");
    sfx_put1(&wb[2], 0, 4, "c", "C");
    for (int i = 0; i < 3; i++)
        assert_int_equal(sfx_submit(f, &wb[i]), 0);
    sfx_gate_open(&f->c);
    sfx_wait_done(&f->c, 4);
    assert_ptr_equal(sfx_coll_pop(&f->c), gate);
    assert_int_equal(gate->status, 0);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(sfx_coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, HF_EINTERNAL);
    }
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    sfx_assert_absent(f, "a");
    sfx_assert_absent(f, "b");
    sfx_assert_absent(f, "c");

    /* The fence is the highest failed gen + 1, with the same status. */
    sfx_put1(&wb[0], 0, 4, "a", "A");
    assert_int_equal(sfx_commit1(f, &wb[0]), HF_EINTERNAL);
    sfx_put1(&wb[0], 0, 5, "a", "A");
    assert_int_equal(sfx_commit1(f, &wb[0]), 0);
    sfx_put1(&wb[1], 1, 0, "b", "B");
    assert_int_equal(sfx_commit1(f, &wb[1]), HF_EINTERNAL);
    sfx_put1(&wb[1], 1, 1, "b", "B");
    assert_int_equal(sfx_commit1(f, &wb[1]), 0);
    sfx_assert_value(f, "a", "A");
    sfx_assert_value(f, "b", "B");
    sfx_batches_free(wb, 5);
}

static void
test_fenced_batches_fail_in_queue_order_beside_written_ones(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(6);
    hf_wbatch *gate = &wb[5];
    uint64_t c0;
    static const int want[4] = {HF_ESTORAGE, 0, 0, HF_ESTORAGE};

    hf_lmdb_fail_next(&f->st, HF_ESTORAGE);
    sfx_put1(&wb[0], 0, 0, "a", "A");
    assert_int_equal(sfx_commit1(f, &wb[0]), HF_ESTORAGE);

    c0 = HF_LMDB_GET(commits);
    sfx_put1(gate, 2, 0, "gate", "g");
    sfx_gate_close(&f->c, gate);
    assert_int_equal(sfx_submit(f, gate), 0);
    assert_true(sfx_coll_wait(&f->c, &f->c.gate_entered, 1));
    sfx_put1(&wb[1], 0, 0, "b", "B"); /* fenced */
    sfx_put1(&wb[2], 1, 0, "c", "C");
    sfx_put1(&wb[3], 0, 1, "d", "D");
    sfx_put1(&wb[4], 0, 0, "e", "E"); /* fenced, though queued after gen 1 */
    for (int i = 1; i <= 4; i++)
        assert_int_equal(sfx_submit(f, &wb[i]), 0);
    sfx_gate_open(&f->c);
    sfx_wait_done(&f->c, 6);

    assert_ptr_equal(sfx_coll_pop(&f->c), gate);
    for (int i = 1; i <= 4; i++) {
        assert_ptr_equal(sfx_coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, want[i - 1]);
    }
    assert_int_equal(HF_LMDB_GET(commits) - c0, 2);
    sfx_assert_absent(f, "b");
    sfx_assert_value(f, "c", "C");
    sfx_assert_value(f, "d", "D");
    sfx_assert_absent(f, "e");
    sfx_batches_free(wb, 6);
}

/* ------------------------------------------------------------------ */
/* Lifecycle under contention and at the limits                        */

/* Two stores on one directory would each cache state the other overwrites
 * (the engine lost half of 1,000 acknowledged increments that way), so a
 * directory in use refuses a second open, even from the same process,
 * until the first store closes. */
static void
test_second_open_of_a_directory_in_use_is_refused(void **state)
{
    struct sfx *f = *state;
    struct hf_lmdb_opts o = {.dir = f->dir,
                             .nreaders = 1,
                             .durability = HF_DURABLE_SYNC,
                             .map_size = 1u << 20};
    hf_wbatch *wb = sfx_batches(1);
    hf_store st;
    int rc;

    rc = hf_lmdb_open(&st, &o);
    if (rc == 0) /* the defect: close it, so only the assertion fails */
        st.ops->close(st.self);
    assert_int_equal(rc, HF_ECONFLICT);
    assert_null(st.self);

    /* The first store is untouched by the refused open. */
    sfx_put1(wb, 0, 0, "still", "here");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_value(f, "still", "here");

    /* Closing the first store frees the directory. */
    sfx_close(f);
    assert_int_equal(sfx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    sfx_assert_value(f, "still", "here");
    sfx_batches_free(wb, 1);
}

static void *
close_store(void *arg)
{
    struct sfx *f = arg;

    f->st.ops->close(f->st.self);
    return NULL;
}

static void
test_submit_while_closing_is_unavailable(void **state)
{
    struct sfx *f = *state;
    enum { NPROBE = 20000 };
    hf_wbatch *wb = sfx_batches(NPROBE + 1);
    hf_wbatch *gate = &wb[NPROBE];
    struct timespec pause = {0, 50000};
    int accepted = 0, rc = 0;
    pthread_t t;

    sfx_put1(gate, 0, 0, "gate", "g");
    sfx_gate_close(&f->c, gate);
    assert_int_equal(sfx_submit(f, gate), 0);
    assert_true(sfx_coll_wait(&f->c, &f->c.gate_entered, 1));

    /* close marks the store closing, then waits for the gated writer. */
    assert_int_equal(pthread_create(&t, NULL, close_store, f), 0);
    while (accepted < NPROBE) {
        sfx_put1(&wb[accepted], 1, 0, "probe", "p");
        if ((rc = sfx_submit(f, &wb[accepted])) != 0)
            break;
        accepted++;
        nanosleep(&pause, NULL);
    }
    assert_int_equal(rc, HF_EUNAVAIL);
    sfx_gate_open(&f->c);
    pthread_join(t, NULL);
    f->open = 0;

    /* Batches accepted before closing were still committed. */
    sfx_wait_done(&f->c, accepted + 1);
    for (int i = 0; i < accepted + 1; i++)
        assert_int_equal(sfx_coll_pop(&f->c)->status, 0);
    assert_null(sfx_coll_pop(&f->c));
    sfx_batches_free(wb, NPROBE + 1);
}

/*
 * The log's memory bound: while a reader stays begun the checkpointer
 * cannot drop the memtable it applied, so the active one fills; past
 * --wal-mem-mb a group waits a second for the checkpointer, then fails
 * with overloaded (fencing the worker, as any failed commit). Once the
 * reader ends, writes resume, and every acknowledged one is there.
 */
static void
test_wal_memory_bound_answers_overloaded(void **state)
{
    struct sfx *f = *state;
    enum { N = 40, VLEN = 100000 };
    hf_wbatch *wb = sfx_batches(N + 1);
    static char v[VLEN];
    char k[16];
    int st = 0, n;
    const char *nw = getenv("HF_TEST_NO_WAL");

    if (nw && strcmp(nw, "1") == 0) { /* no log, no memtable */
        sfx_batches_free(wb, N + 1);
        return;
    }
    sfx_close(f);
    sfx_rm_dir(f->dir);
    sfx_mem_max = 512 << 10;
    assert_int_equal(sfx_open(f, 64u << 20, HF_DURABLE_SYNC), 0);
    sfx_mem_max = 0;
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 1), 0);
    for (n = 0; n < N && st == 0; n++) {
        sfx_label(&wb[n], 0, 0, (uint64_t)n);
        snprintf(k, sizeof(k), "big%02d", n);
        memset(v, 'a' + n % 26, sizeof(v));
        assert_int_equal(
            hf_wbatch_put(&wb[n], HF_DB_KV, k, strlen(k), v, sizeof(v)), 0);
        st = sfx_commit1(f, &wb[n]);
    }
    assert_int_equal(st, HF_EOVERLOADED);
    f->st.ops->rd_end(f->st.self, 1);

    sfx_label(&wb[N], 0, 1, (uint64_t)N); /* the worker's next generation */
    sfx_put1(&wb[N], 0, 1, "after", "yes");
    assert_int_equal(sfx_commit1(f, &wb[N]), 0);
    sfx_assert_value(f, "after", "yes");
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    for (int i = 0; i < n - 1; i++) {
        hf_slice got;
        snprintf(k, sizeof(k), "big%02d", i);
        assert_int_equal(f->st.ops->get(f->st.self, 0, HF_DB_KV,
                                        (hf_slice){k, strlen(k)}, &got),
                         0);
        assert_int_equal(got.len, VLEN);
        assert_int_equal(((const char *)got.data)[VLEN - 1], 'a' + i % 26);
    }
    f->st.ops->rd_end(f->st.self, 0);
    print_message("overloaded after %d acknowledged sfx_batches of %d bytes\n",
                  n - 1, VLEN);
    sfx_batches_free(wb, N + 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        SFX_T(test_wal_memory_bound_answers_overloaded),
        SFX_T(test_map_grows_when_full),
        SFX_T(test_failed_commit_fails_group_and_fences_worker),
        SFX_T(test_failed_commit_fails_every_batch_in_the_group),
        SFX_T(test_fenced_batches_fail_in_queue_order_beside_written_ones),
        SFX_T(test_second_open_of_a_directory_in_use_is_refused),
        SFX_T(test_submit_while_closing_is_unavailable),
    };

    if (getenv("HF_TEST_VERBOSE") == NULL)
        hf_log_set_level(HF_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
