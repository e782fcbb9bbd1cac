/*
 * test_storage.c - the LMDB store (storage/lmdb.h) against
 * core/storage.h: reads, writes and scans, group commit and done order,
 * and the store's lifecycle (reopen, durability none, close, bad opens).
 * Map growth, failed commits and the limits are in test_storage_fail.c;
 * the fixture both use is storage_fx.h.
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

#include <cmocka.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/storage.h"
#include "storage/crc32c.h"
#include "storage/lmdb.h"
#include "storage_fx.h"

/* ------------------------------------------------------------------ */
/* Reads and writes                                                    */

static void
test_put_then_get_after_done(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);
    hf_slice v;

    /* Reader 1 is begun before the write is submitted: its snapshot must
     * not include it, even after done(). (Waiting with a reader begun is
     * only safe here because 16 MiB needs no growth for one small put.) */
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 1), 0);

    sfx_put1(wb, 0, 0, "alpha", "one");
    assert_int_equal(sfx_commit1(f, wb), 0);

    assert_int_equal(
        f->st.ops->get(f->st.self, 1, HF_DB_KV, (hf_slice){"alpha", 5}, &v),
        HF_ENOTFOUND);
    f->st.ops->rd_end(f->st.self, 1);

    /* Begun after done(): sees it, on either reader. */
    sfx_assert_value(f, "alpha", "one");
    assert_int_equal(sfx_read_str(f, 1, HF_DB_KV, "alpha", NULL, 0), 0);

    /* Overwrite. */
    sfx_put1(wb, 0, 0, "alpha", "two");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_value(f, "alpha", "two");
    sfx_batches_free(wb, 1);
}

static void
test_get_missing_key_is_not_found(void **state)
{
    struct sfx *f = *state;

    sfx_assert_absent(f, "nope");
    assert_int_equal(sfx_read_str(f, 0, HF_DB_KV, "", NULL, 0), HF_ENOTFOUND);
}

static void
test_delete_removes_key(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);

    sfx_put1(wb, 0, 0, "doomed", "x");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_value(f, "doomed", "x");

    sfx_label(wb, 0, 0, 1);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "doomed", 6), 0);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "never-was", 9), 0);
    /* Deleting a missing key is fine. */
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_absent(f, "doomed");

    /* Put and delete in one batch apply in order. */
    sfx_label(wb, 0, 0, 2);
    assert_int_equal(hf_wbatch_put(wb, HF_DB_KV, "brief", 5, "y", 1), 0);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "brief", 5), 0);
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_absent(f, "brief");
    sfx_batches_free(wb, 1);
}

static void
test_databases_are_separate(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);
    char got[16];

    sfx_label(wb, 0, 0, 0);
    for (int d = 0; d < HF_DB_COUNT_; d++) {
        char v[2] = {(char)('a' + d), 0};
        assert_int_equal(hf_wbatch_put(wb, d, "same", 4, v, 1), 0);
    }
    assert_int_equal(sfx_commit1(f, wb), 0);
    for (int d = 0; d < HF_DB_COUNT_; d++) {
        assert_int_equal(sfx_read_str(f, 0, d, "same", got, sizeof(got)), 0);
        assert_int_equal(got[0], 'a' + d);
    }
    sfx_batches_free(wb, 1);
}

/* ------------------------------------------------------------------ */
/* Scans                                                               */

#define SCAN_MAX 1200

struct seen {
    int n, stop_after; /* stop_after 0: never stop */
    int idx[SCAN_MAX]; /* key numbers in visit order */
};

static int
on_key(void *arg, hf_slice k, hf_slice v)
{
    struct seen *s = arg;
    char buf[16];

    if (s->n < SCAN_MAX && k.len < sizeof(buf)) {
        memcpy(buf, k.data, k.len);
        buf[k.len] = '\0';
        s->idx[s->n] = atoi(buf + 1);
        /* Values are the key with a 'v' in front. */
        if (v.len != k.len + 1 ||
            memcmp((const char *)v.data + 1, k.data, k.len) != 0)
            s->idx[s->n] = -1;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* Scans [lo, hi) ("" = unbounded) and checks the visited key numbers form
 * first, first+step, ... with n entries. */
static void
check_scan(struct sfx *f, const char *lo, const char *hi, int reverse,
           int stop_after, int n, int first, int step)
{
    struct seen *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->stop_after = stop_after;
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    assert_int_equal(
        f->st.ops->scan(f->st.self, 0, HF_DB_KV, (hf_slice){lo, strlen(lo)},
                        (hf_slice){hi, strlen(hi)}, reverse, on_key, s),
        0);
    f->st.ops->rd_end(f->st.self, 0);
    assert_int_equal(s->n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(s->idx[i], first + i * step);
    free(s);
}

static void
test_scan_range_forward_and_reverse_with_bounds(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(2);
    char k[16], v[24];

    /* Keys k0000, k0002, ..., k1998: 1,000 keys over many pages, so gaps
     * let bounds fall between keys. Plus a key in another database, which
     * no scan of kv may see. */
    sfx_label(&wb[0], 0, 0, 0);
    for (int i = 0; i < 2000; i += 2) {
        snprintf(k, sizeof(k), "k%04d", i);
        snprintf(v, sizeof(v), "v%s", k);
        assert_int_equal(hf_wbatch_put(&wb[0], HF_DB_KV, k, 5, v, 6), 0);
    }
    assert_int_equal(hf_wbatch_put(&wb[0], HF_DB_LOG, "k0001", 5, "x", 1), 0);
    assert_int_equal(sfx_commit1(f, &wb[0]), 0);

    /* Bounds on keys: lo included, hi excluded. */
    check_scan(f, "k0100", "k0200", 0, 0, 50, 100, 2);
    check_scan(f, "k0100", "k0200", 1, 0, 50, 198, -2);
    /* Bounds between keys. */
    check_scan(f, "k0101", "k0201", 0, 0, 50, 102, 2);
    check_scan(f, "k0101", "k0201", 1, 0, 50, 200, -2);
    /* Unbounded hi, and lo below every key. */
    check_scan(f, "k1990", "", 0, 0, 5, 1990, 2);
    check_scan(f, "k1990", "", 1, 0, 5, 1998, -2);
    check_scan(f, "a", "k0010", 0, 0, 5, 0, 2);
    check_scan(f, "a", "k0010", 1, 0, 5, 8, -2);
    /* Everything, both ways; and hi above every key. */
    check_scan(f, "", "", 0, 0, 1000, 0, 2);
    check_scan(f, "", "", 1, 0, 1000, 1998, -2);
    check_scan(f, "k1995", "z", 1, 0, 2, 1998, -2);
    /* Early stop: the callback's nonzero return ends the scan. */
    check_scan(f, "k0100", "", 0, 3, 3, 100, 2);
    check_scan(f, "", "k0100", 1, 3, 3, 98, -2);
    /* Empty ranges: lo == hi, lo > hi, between two keys, past either end. */
    check_scan(f, "k0100", "k0100", 0, 0, 0, 0, 0);
    check_scan(f, "k0100", "k0100", 1, 0, 0, 0, 0);
    check_scan(f, "k0300", "k0200", 0, 0, 0, 0, 0);
    check_scan(f, "k0300", "k0200", 1, 0, 0, 0, 0);
    check_scan(f, "k0101", "k0102", 0, 0, 0, 0, 0);
    check_scan(f, "k0101", "k0102", 1, 0, 0, 0, 0);
    check_scan(f, "", "k0000", 1, 0, 0, 0, 0);
    check_scan(f, "", "a", 1, 0, 0, 0, 0);
    check_scan(f, "z", "", 0, 0, 0, 0, 0);
    check_scan(f, "z", "", 1, 0, 0, 0, 0);
    sfx_batches_free(wb, 2);
}

static void
test_scan_of_empty_database_visits_nothing(void **state)
{
    struct sfx *f = *state;

    check_scan(f, "", "", 0, 0, 0, 0, 0);
    check_scan(f, "", "", 1, 0, 0, 0, 0);
    check_scan(f, "a", "b", 1, 0, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Group commit and ordering                                           */

static void
test_batches_queued_during_a_commit_share_one_txn(void **state)
{
    struct sfx *f = *state;
    enum { N = 100 };
    hf_wbatch *wb = sfx_batches(N + 1);
    uint64_t c0 = HF_LMDB_GET(commits), b0 = HF_LMDB_GET(commit_batches);
    uint64_t o0 = HF_LMDB_GET(commit_ops), h0 = HF_LMDB_GET(commit_handlers);
    uint64_t hh0 = atomic_load(&hf_lmdb_metrics.commit_handlers_hist.count);
    uint64_t us0 = atomic_load(&hf_lmdb_metrics.commit_us_hist.count);
    char k[32];

    /* The writer stalls in done(gate); the N batches queue up behind it. */
    sfx_put1(&wb[N], 9, 0, "gate", "g");
    sfx_gate_close(&f->c, &wb[N]);
    assert_int_equal(sfx_submit(f, &wb[N]), 0);
    assert_true(sfx_coll_wait(&f->c, &f->c.gate_entered, 1));
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "q%03d", i);
        sfx_label(&wb[i], i % 4, 0, (uint64_t)i);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_KV, k, 4, "v", 1), 0);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_META, k, 4, "m", 1), 0);
        wb[i].nhandlers = 3;
        assert_int_equal(sfx_submit(f, &wb[i]), 0);
    }
    sfx_gate_open(&f->c);
    sfx_wait_done(&f->c, N + 1);

    assert_ptr_equal(sfx_coll_pop(&f->c), &wb[N]);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(sfx_coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, 0);
    }
    /* One commit for the gate, one for all N. */
    assert_int_equal(HF_LMDB_GET(commits) - c0, 2);
    assert_int_equal(HF_LMDB_GET(commit_batches) - b0, N + 1);
    assert_int_equal(HF_LMDB_GET(commit_ops) - o0, 2 * N + 1);
    assert_int_equal(HF_LMDB_GET(commit_handlers) - h0, 3 * N + 1);
    assert_int_equal(
        atomic_load(&hf_lmdb_metrics.commit_handlers_hist.count) - hh0, 2);
    assert_int_equal(atomic_load(&hf_lmdb_metrics.commit_us_hist.count) - us0,
                     2);
    sfx_assert_value(f, "q000", "v");
    sfx_assert_value(f, "q099", "v");
    sfx_batches_free(wb, N + 1);
}

struct producer {
    struct sfx *f;
    int worker, n;
    hf_wbatch *wb;
    int failures; /* submit errors, checked by the test thread */
};

static void *
produce(void *arg)
{
    struct producer *p = arg;

    for (int i = 0; i < p->n; i++)
        if (sfx_submit(p->f, &p->wb[i]) != 0)
            p->failures++;
    return NULL;
}

/* Fills nw producers' batches: worker w's batch i puts "g<w>-<i>". */
static void
make_producers(struct sfx *f, struct producer *p, int nw, int n)
{
    char k[32];

    for (int w = 0; w < nw; w++) {
        p[w] = (struct producer){.f = f, .worker = w, .n = n};
        p[w].wb = sfx_batches(n);
        for (int i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "g%d-%05d", w, i);
            sfx_label(&p[w].wb[i], w, 0, (uint64_t)i);
            assert_int_equal(hf_wbatch_put(&p[w].wb[i], HF_DB_KV, k, strlen(k),
                                           k, strlen(k)),
                             0);
            p[w].wb[i].nhandlers = 1;
        }
    }
}

static void
run_producers(struct producer *p, int nw)
{
    pthread_t t[8];

    for (int w = 0; w < nw; w++)
        assert_int_equal(pthread_create(&t[w], NULL, produce, &p[w]), 0);
    for (int w = 0; w < nw; w++) {
        pthread_join(t[w], NULL);
        assert_int_equal(p[w].failures, 0);
    }
}

static void
test_group_commit_puts_many_batches_in_one_txn(void **state)
{
    struct sfx *f = *state;
    enum { NW = 4, N = 2000 };
    struct producer p[NW];
    uint64_t c0 = HF_LMDB_GET(commits), b0 = HF_LMDB_GET(commit_batches);
    char k[32];

    make_producers(f, p, NW, N);
    run_producers(p, NW);
    sfx_wait_done(&f->c, NW * N);
    for (int i = 0; i < NW * N; i++)
        assert_int_equal(sfx_coll_pop(&f->c)->status, 0);
    assert_int_equal(HF_LMDB_GET(commit_batches) - b0, NW * N);
    print_message("%d sfx_batches in %d commits\n", NW * N,
                  (int)(HF_LMDB_GET(commits) - c0));
    assert_true(HF_LMDB_GET(commits) - c0 < (uint64_t)(NW * N));
    assert_true(HF_LMDB_GET(commits) - c0 >= 1);

    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    for (int w = 0; w < NW; w++) {
        for (int i = 0; i < N; i++) {
            hf_slice v;
            snprintf(k, sizeof(k), "g%d-%05d", w, i);
            assert_int_equal(f->st.ops->get(f->st.self, 0, HF_DB_KV,
                                            (hf_slice){k, strlen(k)}, &v),
                             0);
            assert_int_equal(v.len, strlen(k));
            assert_memory_equal(v.data, k, v.len);
        }
    }
    f->st.ops->rd_end(f->st.self, 0);
    for (int w = 0; w < NW; w++)
        sfx_batches_free(p[w].wb, N);
}

static void
test_done_order_is_submission_order_per_worker(void **state)
{
    struct sfx *f = *state;
    enum { NW = 4, N = 1000 };
    struct producer p[NW];
    uint64_t next[NW] = {0};

    make_producers(f, p, NW, N);
    run_producers(p, NW);
    sfx_wait_done(&f->c, NW * N);
    for (int i = 0; i < NW * N; i++) {
        hf_wbatch *wb = sfx_coll_pop(&f->c);
        assert_non_null(wb);
        assert_int_equal(wb->status, 0);
        assert_int_equal(wb->id, next[wb->worker]);
        next[wb->worker]++;
    }
    assert_null(sfx_coll_pop(&f->c));
    for (int w = 0; w < NW; w++)
        sfx_batches_free(p[w].wb, N);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

static void
test_reopen_keeps_committed_data(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);

    sfx_put1(wb, 0, 0, "kept", "yes");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_close(f);
    assert_int_equal(sfx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    sfx_assert_value(f, "kept", "yes");
    /* The map did not shrink below what the first open set. */
    assert_true(hf_lmdb_map_size(&f->st) >= (16u << 20));
    sfx_batches_free(wb, 1);
}

static void
test_durability_none_still_commits(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);

    sfx_close(f);
    assert_int_equal(sfx_open(f, 4u << 20, HF_DURABLE_NONE), 0);
    sfx_put1(wb, 0, 0, "fast", "loose");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_assert_value(f, "fast", "loose");
    sfx_close(f);
    assert_int_equal(sfx_open(f, 4u << 20, HF_DURABLE_SYNC), 0);
    sfx_assert_value(f, "fast", "loose");
    sfx_batches_free(wb, 1);
}

static void
test_close_drains_queued_batches(void **state)
{
    struct sfx *f = *state;
    enum { N = 1000 };
    hf_wbatch *wb = sfx_batches(N);
    char k[16];

    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        sfx_label(&wb[i], i % 2, 0, (uint64_t)i);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_KV, k, 5, k, 5), 0);
        assert_int_equal(sfx_submit(f, &wb[i]), 0);
    }
    sfx_close(f);
    /* close returned: every done() ran, on the writer, before the join. */
    assert_int_equal(f->c.n, N);
    for (int i = 0; i < N; i++) {
        hf_wbatch *got = sfx_coll_pop(&f->c);
        assert_non_null(got);
        assert_int_equal(got->status, 0);
    }
    assert_int_equal(sfx_open(f, 0, HF_DURABLE_SYNC), 0);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        sfx_assert_value(f, k, k);
    }
    sfx_batches_free(wb, N);
}

static void
test_open_fails_cleanly_on_bad_dir(void **state)
{
    struct sfx *f = *state;
    struct hf_lmdb_opts o = {.nreaders = 1, .map_size = 1u << 20};
    char path[PATH_MAX + 32];
    hf_store st;
    FILE *fp;

    /* Parent missing: mkdir fails. */
    snprintf(path, sizeof(path), "%s/missing/deeper", f->dir);
    o.dir = path;
    assert_int_equal(hf_lmdb_open(&st, &o), HF_EINTERNAL);
    assert_null(st.self);

    /* A regular file where the directory should be: mkdir says EEXIST, and
     * mdb_env_open fails after the locks and the env exist. */
    snprintf(path, sizeof(path), "%s/plainfile", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(hf_lmdb_open(&st, &o), HF_EINTERNAL);
    assert_null(st.self);

    /* Bad options. */
    o.dir = f->dir;
    o.durability = 7;
    assert_int_equal(hf_lmdb_open(&st, &o), HF_EINTERNAL);
    o.durability = HF_DURABLE_SYNC;
    o.nreaders = -1;
    assert_int_equal(hf_lmdb_open(&st, &o), HF_EINTERNAL);

    /* close accepts the NULL a failed open leaves. */
    f->st.ops->close(NULL);
}

static void
test_rd_begin_twice_is_refused(void **state)
{
    struct sfx *f = *state;

    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), HF_EINTERNAL);
    f->st.ops->rd_end(f->st.self, 0);
    f->st.ops->rd_end(f->st.self, 0); /* a second end is ignored */
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 2), HF_EINTERNAL);
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    f->st.ops->rd_end(f->st.self, 0);
}

static void
test_submit_rejects_out_of_range_worker(void **state)
{
    struct sfx *f = *state;
    hf_wbatch *wb = sfx_batches(1);

    sfx_put1(wb, HF_LMDB_MAX_WORKERS, 0, "w", "w");
    assert_int_equal(sfx_submit(f, wb), HF_EINTERNAL);
    sfx_put1(wb, -1, 0, "w", "w");
    assert_int_equal(sfx_submit(f, wb), HF_EINTERNAL);
    sfx_put1(wb, HF_LMDB_MAX_WORKERS - 1, 0, "w", "w");
    assert_int_equal(sfx_commit1(f, wb), 0);
    sfx_batches_free(wb, 1);
}

/* The log's checksum is CRC-32C: RFC 3720's check value, and a CRC
 * continued over two pieces equals the CRC of the whole. */
static void
test_crc32c_is_castagnoli(void **state)
{
    static const char msg[] = "123456789";
    (void)state;

    assert_int_equal(hf_crc32c(0, msg, 9), 0xE3069283u);
    assert_int_equal(hf_crc32c(hf_crc32c(0, msg, 4), msg + 4, 5), 0xE3069283u);
    assert_int_equal(hf_crc32c(0, "", 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        SFX_T(test_put_then_get_after_done),
        SFX_T(test_crc32c_is_castagnoli),
        SFX_T(test_get_missing_key_is_not_found),
        SFX_T(test_delete_removes_key),
        SFX_T(test_databases_are_separate),
        SFX_T(test_scan_range_forward_and_reverse_with_bounds),
        SFX_T(test_scan_of_empty_database_visits_nothing),
        SFX_T(test_batches_queued_during_a_commit_share_one_txn),
        SFX_T(test_group_commit_puts_many_batches_in_one_txn),
        SFX_T(test_done_order_is_submission_order_per_worker),
        SFX_T(test_reopen_keeps_committed_data),
        SFX_T(test_durability_none_still_commits),
        SFX_T(test_close_drains_queued_batches),
        SFX_T(test_open_fails_cleanly_on_bad_dir),
        SFX_T(test_rd_begin_twice_is_refused),
        SFX_T(test_submit_rejects_out_of_range_worker),
    };

    if (getenv("HF_TEST_VERBOSE") == NULL)
        hf_log_set_level(HF_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
