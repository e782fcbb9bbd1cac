/*
 * test_storage.c - the LMDB store (storage/lmdb.h) against core/storage.h.
 *
 * Every test gets a fresh data directory under $HF_TEST_TMP (or /tmp) and
 * a store opened on it. Completed batches are collected by a done callback
 * into a mutex-protected FIFO that the test thread waits on. Some tests
 * "gate" the writer: the done callback of one chosen batch blocks until the
 * test opens the gate, so whatever the test submits meanwhile is queued
 * behind it and lands in one group, deterministically. (Real done callbacks
 * must not block; here stalling the writer is the point.)
 *
 * cmocka asserts only on the test thread: helper threads record failures in
 * plain counters that the test thread checks after joining them.
 */
#include <dirent.h>
#include <errno.h>
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
#include "storage/crc32c.h"
#include "storage/lmdb.h"

#define WAIT_S 120 /* a test waiting longer than this for done() fails */

/* ------------------------------------------------------------------ */
/* Collector: done() appends here, the test thread takes from here.    */

struct coll {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hf_wbatch *head, *tail; /* linked through wb->next, in done order */
    int n;                  /* batches received so far */
    hf_wbatch *gate;        /* done(gate) blocks until gate_open */
    int gate_entered, gate_open;
};

static void
coll_init(struct coll *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void
coll_fini(struct coll *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void
on_done(void *arg, hf_wbatch *wb)
{
    struct coll *c = arg;

    pthread_mutex_lock(&c->mu);
    wb->next = NULL;
    if (c->tail)
        c->tail->next = wb;
    else
        c->head = wb;
    c->tail = wb;
    c->n++;
    if (wb == c->gate) {
        c->gate_entered = 1;
        pthread_cond_broadcast(&c->cv);
        while (!c->gate_open)
            pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until *flag (read under c->mu) is at least want; 0 on time-out. */
static int
coll_wait(struct coll *c, const int *flag, int want)
{
    struct timespec dl;
    int ok = 1;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_S;
    pthread_mutex_lock(&c->mu);
    while (*flag < want && ok)
        ok = pthread_cond_timedwait(&c->cv, &c->mu, &dl) != ETIMEDOUT;
    ok = *flag >= want;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Waits until n batches in all have come back through done(). */
static void
wait_done(struct coll *c, int n)
{
    assert_true(coll_wait(c, &c->n, n));
}

/* Takes the oldest collected batch (NULL when none). */
static hf_wbatch *
coll_pop(struct coll *c)
{
    hf_wbatch *wb;

    pthread_mutex_lock(&c->mu);
    wb = c->head;
    if (wb) {
        c->head = wb->next;
        if (c->head == NULL)
            c->tail = NULL;
        wb->next = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    return wb;
}

static void
gate_close(struct coll *c, hf_wbatch *wb)
{
    pthread_mutex_lock(&c->mu);
    c->gate = wb;
    c->gate_entered = c->gate_open = 0;
    pthread_mutex_unlock(&c->mu);
}

static void
gate_open(struct coll *c)
{
    pthread_mutex_lock(&c->mu);
    c->gate_open = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* Fixture: a temp directory and an open store.                        */

struct fx {
    char dir[PATH_MAX];
    hf_store st;
    int open;
    struct coll c;
};

static void
rm_dir(const char *dir)
{
    char p[PATH_MAX + 256];
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* HF_TEST_NO_WAL=1 runs every test without the write-ahead log (ctest
 * runs the suite both ways). With it, checkpoints are small and frequent
 * so that the tests cross many of them. */
/* Set by a test before fx_open: a memtable bound and no checkpoint by
 * age (0: the defaults above). */
static size_t fx_mem_max;

static int
fx_open(struct fx *f, size_t map_size, int durability)
{
    const char *nw = getenv("HF_TEST_NO_WAL");
    struct hf_lmdb_opts o = {
        .dir = f->dir,
        .nreaders = 2,
        .durability = durability,
        .map_size = map_size,
        .no_wal = nw != NULL && strcmp(nw, "1") == 0,
        .wal_segment = 1 << 20,
        .ckpt_bytes = 256 << 10,
        .ckpt_ms = 20,
    };
    int rc;

    if (fx_mem_max) {
        o.mem_max = fx_mem_max;
        o.ckpt_bytes = fx_mem_max / 4;
        o.ckpt_ms = 3600000;
    }
    rc = hf_lmdb_open(&f->st, &o);

    if (rc == 0) {
        f->open = 1;
        f->st.ops->set_done(f->st.self, on_done, &f->c);
    }
    return rc;
}

static void
fx_close(struct fx *f)
{
    if (f->open)
        f->st.ops->close(f->st.self);
    f->open = 0;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("HF_TEST_TMP");

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/storage-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    coll_init(&f->c);
    if (fx_open(f, 16u << 20, HF_DURABLE_SYNC) != 0) {
        rm_dir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    fx_close(f);
    coll_fini(&f->c);
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Batches and reads                                                   */

static hf_wbatch *
batches(int n)
{
    hf_wbatch *wb = calloc((size_t)n, sizeof(*wb));
    assert_non_null(wb);
    return wb;
}

static void
batches_free(hf_wbatch *wb, int n)
{
    for (int i = 0; i < n; i++)
        hf_buf_free(&wb[i].ops);
    free(wb);
}

static void
label(hf_wbatch *wb, int worker, uint64_t gen, uint64_t id)
{
    hf_wbatch_reset(wb);
    wb->worker = worker;
    wb->gen = gen;
    wb->id = id;
}

/* A batch holding one put of a string key and value. */
static void
put1(hf_wbatch *wb, int worker, uint64_t gen, const char *k, const char *v)
{
    label(wb, worker, gen, 0);
    assert_int_equal(hf_wbatch_put(wb, HF_DB_KV, k, strlen(k), v, strlen(v)),
                     0);
    wb->nhandlers = 1;
}

static int
submit(struct fx *f, hf_wbatch *wb)
{
    return f->st.ops->submit(f->st.self, wb);
}

/* Submits one batch, waits for it and returns its status. Only for tests
 * with nothing else in flight. */
static int
commit1(struct fx *f, hf_wbatch *wb)
{
    int n;

    pthread_mutex_lock(&f->c.mu);
    n = f->c.n;
    pthread_mutex_unlock(&f->c.mu);
    assert_int_equal(submit(f, wb), 0);
    wait_done(&f->c, n + 1);
    assert_ptr_equal(coll_pop(&f->c), wb);
    return wb->status;
}

/* Reads a string value through reader rd; returns get's result. */
static int
read_str(struct fx *f, int rd, int dbi, const char *k, char *out, size_t cap)
{
    hf_slice v;
    int rc;

    assert_int_equal(f->st.ops->rd_begin(f->st.self, rd), 0);
    rc = f->st.ops->get(f->st.self, rd, dbi, (hf_slice){k, strlen(k)}, &v);
    if (rc == 0 && out) {
        assert_true(v.len < cap);
        memcpy(out, v.data, v.len);
        out[v.len] = '\0';
    }
    f->st.ops->rd_end(f->st.self, rd);
    return rc;
}

static void
assert_value(struct fx *f, const char *k, const char *want)
{
    char got[256];

    assert_int_equal(read_str(f, 0, HF_DB_KV, k, got, sizeof(got)), 0);
    assert_string_equal(got, want);
}

static void
assert_absent(struct fx *f, const char *k)
{
    assert_int_equal(read_str(f, 0, HF_DB_KV, k, NULL, 0), HF_ENOTFOUND);
}

/* ------------------------------------------------------------------ */
/* Reads and writes                                                    */

static void
test_put_then_get_after_done(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);
    hf_slice v;

    /* Reader 1 is begun before the write is submitted: its snapshot must
     * not include it, even after done(). (Waiting with a reader begun is
     * only safe here because 16 MiB needs no growth for one small put.) */
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 1), 0);

    put1(wb, 0, 0, "alpha", "one");
    assert_int_equal(commit1(f, wb), 0);

    assert_int_equal(f->st.ops->get(f->st.self, 1, HF_DB_KV,
                                    (hf_slice){"alpha", 5}, &v),
                     HF_ENOTFOUND);
    f->st.ops->rd_end(f->st.self, 1);

    /* Begun after done(): sees it, on either reader. */
    assert_value(f, "alpha", "one");
    assert_int_equal(read_str(f, 1, HF_DB_KV, "alpha", NULL, 0), 0);

    /* Overwrite. */
    put1(wb, 0, 0, "alpha", "two");
    assert_int_equal(commit1(f, wb), 0);
    assert_value(f, "alpha", "two");
    batches_free(wb, 1);
}

static void
test_get_missing_key_is_not_found(void **state)
{
    struct fx *f = *state;

    assert_absent(f, "nope");
    assert_int_equal(read_str(f, 0, HF_DB_KV, "", NULL, 0), HF_ENOTFOUND);
}

static void
test_delete_removes_key(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);

    put1(wb, 0, 0, "doomed", "x");
    assert_int_equal(commit1(f, wb), 0);
    assert_value(f, "doomed", "x");

    label(wb, 0, 0, 1);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "doomed", 6), 0);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "never-was", 9), 0);
    assert_int_equal(commit1(f, wb), 0); /* deleting a missing key is fine */
    assert_absent(f, "doomed");

    /* Put and delete in one batch apply in order. */
    label(wb, 0, 0, 2);
    assert_int_equal(hf_wbatch_put(wb, HF_DB_KV, "brief", 5, "y", 1), 0);
    assert_int_equal(hf_wbatch_del(wb, HF_DB_KV, "brief", 5), 0);
    assert_int_equal(commit1(f, wb), 0);
    assert_absent(f, "brief");
    batches_free(wb, 1);
}

static void
test_databases_are_separate(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);
    char got[16];

    label(wb, 0, 0, 0);
    for (int d = 0; d < HF_DB_COUNT_; d++) {
        char v[2] = {(char)('a' + d), 0};
        assert_int_equal(hf_wbatch_put(wb, d, "same", 4, v, 1), 0);
    }
    assert_int_equal(commit1(f, wb), 0);
    for (int d = 0; d < HF_DB_COUNT_; d++) {
        assert_int_equal(read_str(f, 0, d, "same", got, sizeof(got)), 0);
        assert_int_equal(got[0], 'a' + d);
    }
    batches_free(wb, 1);
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
        if (v.len != k.len + 1 || memcmp((const char *)v.data + 1, k.data,
                                         k.len) != 0)
            s->idx[s->n] = -1;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* Scans [lo, hi) ("" = unbounded) and checks the visited key numbers form
 * first, first+step, ... with n entries. */
static void
check_scan(struct fx *f, const char *lo, const char *hi, int reverse,
           int stop_after, int n, int first, int step)
{
    struct seen *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->stop_after = stop_after;
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 0), 0);
    assert_int_equal(f->st.ops->scan(f->st.self, 0, HF_DB_KV,
                                     (hf_slice){lo, strlen(lo)},
                                     (hf_slice){hi, strlen(hi)}, reverse,
                                     on_key, s),
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
    struct fx *f = *state;
    hf_wbatch *wb = batches(2);
    char k[16], v[24];

    /* Keys k0000, k0002, ..., k1998: 1,000 keys over many pages, so gaps
     * let bounds fall between keys. Plus a key in another database, which
     * no scan of kv may see. */
    label(&wb[0], 0, 0, 0);
    for (int i = 0; i < 2000; i += 2) {
        snprintf(k, sizeof(k), "k%04d", i);
        snprintf(v, sizeof(v), "v%s", k);
        assert_int_equal(hf_wbatch_put(&wb[0], HF_DB_KV, k, 5, v, 6), 0);
    }
    assert_int_equal(hf_wbatch_put(&wb[0], HF_DB_LOG, "k0001", 5, "x", 1), 0);
    assert_int_equal(commit1(f, &wb[0]), 0);

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
    batches_free(wb, 2);
}

static void
test_scan_of_empty_database_visits_nothing(void **state)
{
    struct fx *f = *state;

    check_scan(f, "", "", 0, 0, 0, 0, 0);
    check_scan(f, "", "", 1, 0, 0, 0, 0);
    check_scan(f, "a", "b", 1, 0, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Group commit and ordering                                           */

static void
test_batches_queued_during_a_commit_share_one_txn(void **state)
{
    struct fx *f = *state;
    enum { N = 100 };
    hf_wbatch *wb = batches(N + 1);
    uint64_t c0 = HF_LMDB_GET(commits), b0 = HF_LMDB_GET(commit_batches);
    uint64_t o0 = HF_LMDB_GET(commit_ops), h0 = HF_LMDB_GET(commit_handlers);
    uint64_t hh0 = atomic_load(&hf_lmdb_metrics.commit_handlers_hist.count);
    uint64_t us0 = atomic_load(&hf_lmdb_metrics.commit_us_hist.count);
    char k[32];

    /* The writer stalls in done(gate); the N batches queue up behind it. */
    put1(&wb[N], 9, 0, "gate", "g");
    gate_close(&f->c, &wb[N]);
    assert_int_equal(submit(f, &wb[N]), 0);
    assert_true(coll_wait(&f->c, &f->c.gate_entered, 1));
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "q%03d", i);
        label(&wb[i], i % 4, 0, (uint64_t)i);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_KV, k, 4, "v", 1), 0);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_META, k, 4, "m", 1), 0);
        wb[i].nhandlers = 3;
        assert_int_equal(submit(f, &wb[i]), 0);
    }
    gate_open(&f->c);
    wait_done(&f->c, N + 1);

    assert_ptr_equal(coll_pop(&f->c), &wb[N]);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, 0);
    }
    /* One commit for the gate, one for all N. */
    assert_int_equal(HF_LMDB_GET(commits) - c0, 2);
    assert_int_equal(HF_LMDB_GET(commit_batches) - b0, N + 1);
    assert_int_equal(HF_LMDB_GET(commit_ops) - o0, 2 * N + 1);
    assert_int_equal(HF_LMDB_GET(commit_handlers) - h0, 3 * N + 1);
    assert_int_equal(atomic_load(&hf_lmdb_metrics.commit_handlers_hist.count) - hh0,
                     2);
    assert_int_equal(atomic_load(&hf_lmdb_metrics.commit_us_hist.count) - us0, 2);
    assert_value(f, "q000", "v");
    assert_value(f, "q099", "v");
    batches_free(wb, N + 1);
}

struct producer {
    struct fx *f;
    int worker, n;
    hf_wbatch *wb;
    int failures; /* submit errors, checked by the test thread */
};

static void *
produce(void *arg)
{
    struct producer *p = arg;

    for (int i = 0; i < p->n; i++)
        if (submit(p->f, &p->wb[i]) != 0)
            p->failures++;
    return NULL;
}

/* Fills nw producers' batches: worker w's batch i puts "g<w>-<i>". */
static void
make_producers(struct fx *f, struct producer *p, int nw, int n)
{
    char k[32];

    for (int w = 0; w < nw; w++) {
        p[w] = (struct producer){.f = f, .worker = w, .n = n};
        p[w].wb = batches(n);
        for (int i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "g%d-%05d", w, i);
            label(&p[w].wb[i], w, 0, (uint64_t)i);
            assert_int_equal(
                hf_wbatch_put(&p[w].wb[i], HF_DB_KV, k, strlen(k), k,
                              strlen(k)),
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
    struct fx *f = *state;
    enum { NW = 4, N = 2000 };
    struct producer p[NW];
    uint64_t c0 = HF_LMDB_GET(commits), b0 = HF_LMDB_GET(commit_batches);
    char k[32];

    make_producers(f, p, NW, N);
    run_producers(p, NW);
    wait_done(&f->c, NW * N);
    for (int i = 0; i < NW * N; i++)
        assert_int_equal(coll_pop(&f->c)->status, 0);
    assert_int_equal(HF_LMDB_GET(commit_batches) - b0, NW * N);
    print_message("%d batches in %d commits\n", NW * N,
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
        batches_free(p[w].wb, N);
}

static void
test_done_order_is_submission_order_per_worker(void **state)
{
    struct fx *f = *state;
    enum { NW = 4, N = 1000 };
    struct producer p[NW];
    uint64_t next[NW] = {0};

    make_producers(f, p, NW, N);
    run_producers(p, NW);
    wait_done(&f->c, NW * N);
    for (int i = 0; i < NW * N; i++) {
        hf_wbatch *wb = coll_pop(&f->c);
        assert_non_null(wb);
        assert_int_equal(wb->status, 0);
        assert_int_equal(wb->id, next[wb->worker]);
        next[wb->worker]++;
    }
    assert_null(coll_pop(&f->c));
    for (int w = 0; w < NW; w++)
        batches_free(p[w].wb, N);
}

/* ------------------------------------------------------------------ */
/* Map growth                                                          */

struct reader_loop {
    struct fx *f;
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
        int rc = st->ops->get(st->self, 1, HF_DB_KV, (hf_slice){"m00000", 6},
                              &v);
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
    struct fx *f = *state;
    enum { PER = 16, NB = 320, WAVE = 20 }; /* 5,120 values of 4 KiB */
    hf_wbatch *wb = batches(NB);
    struct reader_loop rl = {.f = f};
    uint64_t g0 = HF_LMDB_GET(map_grows);
    static char v[4096], got[4096];
    char k[16];
    pthread_t t;

    fx_close(f);
    rm_dir(f->dir);
    assert_int_equal(fx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    assert_int_equal(hf_lmdb_map_size(&f->st), 1u << 20);
    assert_int_equal(pthread_create(&t, NULL, read_forever, &rl), 0);

    for (int b = 0; b < NB; b++) {
        label(&wb[b], b % 3, 0, (uint64_t)b);
        for (int j = 0; j < PER; j++) {
            int i = b * PER + j;
            snprintf(k, sizeof(k), "m%05d", i);
            fill_value(v, i);
            assert_int_equal(hf_wbatch_put(&wb[b], HF_DB_KV, k, 6, v, 4096),
                             0);
        }
    }
    for (int b = 0; b < NB; b += WAVE) {
        for (int i = b; i < b + WAVE; i++)
            assert_int_equal(submit(f, &wb[i]), 0);
        wait_done(&f->c, b + WAVE);
    }
    atomic_store(&rl.stop, 1);
    pthread_join(t, NULL);

    for (int b = 0; b < NB; b++)
        assert_int_equal(coll_pop(&f->c)->status, 0);
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
        assert_int_equal(f->st.ops->get(f->st.self, 0, HF_DB_KV,
                                        (hf_slice){k, 6}, &got_s),
                         0);
        assert_int_equal(got_s.len, 4096);
        fill_value(got, i);
        assert_memory_equal(got_s.data, got, 4096);
    }
    f->st.ops->rd_end(f->st.self, 0);
    batches_free(wb, NB);
}

/* ------------------------------------------------------------------ */
/* Failure and fencing                                                 */

static void
test_failed_commit_fails_group_and_fences_worker(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(4);
    uint64_t fail0 = HF_LMDB_GET(commit_failures), c0 = HF_LMDB_GET(commits);

    hf_lmdb_fail_next(&f->st, HF_ESTORAGE);
    put1(&wb[0], 0, 0, "a", "A");
    assert_int_equal(commit1(f, &wb[0]), HF_ESTORAGE);
    assert_absent(f, "a");
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    assert_int_equal(HF_LMDB_GET(commits) - c0, 0);

    /* Same worker, same generation: fenced, not written. */
    put1(&wb[1], 0, 0, "b", "B");
    assert_int_equal(commit1(f, &wb[1]), HF_ESTORAGE);
    assert_absent(f, "b");

    /* The next generation of worker 0 is written. */
    put1(&wb[2], 0, 1, "c", "C");
    assert_int_equal(commit1(f, &wb[2]), 0);
    assert_value(f, "c", "C");

    /* Another worker was never fenced. */
    put1(&wb[3], 1, 0, "d", "D");
    assert_int_equal(commit1(f, &wb[3]), 0);
    assert_value(f, "d", "D");

    /* Fenced batches are no commit failures of their own. */
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    batches_free(wb, 4);
}

static void
test_failed_commit_fails_every_batch_in_the_group(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(5);
    hf_wbatch *gate = &wb[4];
    uint64_t fail0 = HF_LMDB_GET(commit_failures);

    put1(gate, 9, 0, "gate", "g");
    gate_close(&f->c, gate);
    assert_int_equal(submit(f, gate), 0);
    assert_true(coll_wait(&f->c, &f->c.gate_entered, 1));
    /* Armed only now, so the gate's commit went through. */
    hf_lmdb_fail_next(&f->st, HF_EINTERNAL);
    put1(&wb[0], 0, 3, "a", "A");
    put1(&wb[1], 1, 0, "b", "B");
    put1(&wb[2], 0, 4, "c", "C");
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(f, &wb[i]), 0);
    gate_open(&f->c);
    wait_done(&f->c, 4);
    assert_ptr_equal(coll_pop(&f->c), gate);
    assert_int_equal(gate->status, 0);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, HF_EINTERNAL);
    }
    assert_int_equal(HF_LMDB_GET(commit_failures) - fail0, 1);
    assert_absent(f, "a");
    assert_absent(f, "b");
    assert_absent(f, "c");

    /* The fence is the highest failed gen + 1, with the same status. */
    put1(&wb[0], 0, 4, "a", "A");
    assert_int_equal(commit1(f, &wb[0]), HF_EINTERNAL);
    put1(&wb[0], 0, 5, "a", "A");
    assert_int_equal(commit1(f, &wb[0]), 0);
    put1(&wb[1], 1, 0, "b", "B");
    assert_int_equal(commit1(f, &wb[1]), HF_EINTERNAL);
    put1(&wb[1], 1, 1, "b", "B");
    assert_int_equal(commit1(f, &wb[1]), 0);
    assert_value(f, "a", "A");
    assert_value(f, "b", "B");
    batches_free(wb, 5);
}

static void
test_fenced_batches_fail_in_queue_order_beside_written_ones(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(6);
    hf_wbatch *gate = &wb[5];
    uint64_t c0;
    static const int want[4] = {HF_ESTORAGE, 0, 0, HF_ESTORAGE};

    hf_lmdb_fail_next(&f->st, HF_ESTORAGE);
    put1(&wb[0], 0, 0, "a", "A");
    assert_int_equal(commit1(f, &wb[0]), HF_ESTORAGE);

    c0 = HF_LMDB_GET(commits);
    put1(gate, 2, 0, "gate", "g");
    gate_close(&f->c, gate);
    assert_int_equal(submit(f, gate), 0);
    assert_true(coll_wait(&f->c, &f->c.gate_entered, 1));
    put1(&wb[1], 0, 0, "b", "B"); /* fenced */
    put1(&wb[2], 1, 0, "c", "C");
    put1(&wb[3], 0, 1, "d", "D");
    put1(&wb[4], 0, 0, "e", "E"); /* fenced, though queued after gen 1 */
    for (int i = 1; i <= 4; i++)
        assert_int_equal(submit(f, &wb[i]), 0);
    gate_open(&f->c);
    wait_done(&f->c, 6);

    assert_ptr_equal(coll_pop(&f->c), gate);
    for (int i = 1; i <= 4; i++) {
        assert_ptr_equal(coll_pop(&f->c), &wb[i]);
        assert_int_equal(wb[i].status, want[i - 1]);
    }
    assert_int_equal(HF_LMDB_GET(commits) - c0, 2);
    assert_absent(f, "b");
    assert_value(f, "c", "C");
    assert_value(f, "d", "D");
    assert_absent(f, "e");
    batches_free(wb, 6);
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

static void
test_reopen_keeps_committed_data(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);

    put1(wb, 0, 0, "kept", "yes");
    assert_int_equal(commit1(f, wb), 0);
    fx_close(f);
    assert_int_equal(fx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    assert_value(f, "kept", "yes");
    /* The map did not shrink below what the first open set. */
    assert_true(hf_lmdb_map_size(&f->st) >= (16u << 20));
    batches_free(wb, 1);
}

/* Two stores on one directory would each cache state the other overwrites
 * (the engine lost half of 1,000 acknowledged increments that way), so a
 * directory in use refuses a second open, even from the same process,
 * until the first store closes. */
static void
test_second_open_of_a_directory_in_use_is_refused(void **state)
{
    struct fx *f = *state;
    struct hf_lmdb_opts o = {.dir = f->dir,
                             .nreaders = 1,
                             .durability = HF_DURABLE_SYNC,
                             .map_size = 1u << 20};
    hf_wbatch *wb = batches(1);
    hf_store st;
    int rc;

    rc = hf_lmdb_open(&st, &o);
    if (rc == 0) /* the defect: close it, so only the assertion fails */
        st.ops->close(st.self);
    assert_int_equal(rc, HF_ECONFLICT);
    assert_null(st.self);

    /* The first store is untouched by the refused open. */
    put1(wb, 0, 0, "still", "here");
    assert_int_equal(commit1(f, wb), 0);
    assert_value(f, "still", "here");

    /* Closing the first store frees the directory. */
    fx_close(f);
    assert_int_equal(fx_open(f, 1u << 20, HF_DURABLE_SYNC), 0);
    assert_value(f, "still", "here");
    batches_free(wb, 1);
}

static void
test_durability_none_still_commits(void **state)
{
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);

    fx_close(f);
    assert_int_equal(fx_open(f, 4u << 20, HF_DURABLE_NONE), 0);
    put1(wb, 0, 0, "fast", "loose");
    assert_int_equal(commit1(f, wb), 0);
    assert_value(f, "fast", "loose");
    fx_close(f);
    assert_int_equal(fx_open(f, 4u << 20, HF_DURABLE_SYNC), 0);
    assert_value(f, "fast", "loose");
    batches_free(wb, 1);
}

static void
test_close_drains_queued_batches(void **state)
{
    struct fx *f = *state;
    enum { N = 1000 };
    hf_wbatch *wb = batches(N);
    char k[16];

    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        label(&wb[i], i % 2, 0, (uint64_t)i);
        assert_int_equal(hf_wbatch_put(&wb[i], HF_DB_KV, k, 5, k, 5), 0);
        assert_int_equal(submit(f, &wb[i]), 0);
    }
    fx_close(f);
    /* close returned: every done() ran, on the writer, before the join. */
    assert_int_equal(f->c.n, N);
    for (int i = 0; i < N; i++) {
        hf_wbatch *got = coll_pop(&f->c);
        assert_non_null(got);
        assert_int_equal(got->status, 0);
    }
    assert_int_equal(fx_open(f, 0, HF_DURABLE_SYNC), 0);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "c%04d", i);
        assert_value(f, k, k);
    }
    batches_free(wb, N);
}

static void *
close_store(void *arg)
{
    struct fx *f = arg;

    f->st.ops->close(f->st.self);
    return NULL;
}

static void
test_submit_while_closing_is_unavailable(void **state)
{
    struct fx *f = *state;
    enum { NPROBE = 20000 };
    hf_wbatch *wb = batches(NPROBE + 1);
    hf_wbatch *gate = &wb[NPROBE];
    struct timespec pause = {0, 50000};
    int accepted = 0, rc = 0;
    pthread_t t;

    put1(gate, 0, 0, "gate", "g");
    gate_close(&f->c, gate);
    assert_int_equal(submit(f, gate), 0);
    assert_true(coll_wait(&f->c, &f->c.gate_entered, 1));

    /* close marks the store closing, then waits for the gated writer. */
    assert_int_equal(pthread_create(&t, NULL, close_store, f), 0);
    while (accepted < NPROBE) {
        put1(&wb[accepted], 1, 0, "probe", "p");
        if ((rc = submit(f, &wb[accepted])) != 0)
            break;
        accepted++;
        nanosleep(&pause, NULL);
    }
    assert_int_equal(rc, HF_EUNAVAIL);
    gate_open(&f->c);
    pthread_join(t, NULL);
    f->open = 0;

    /* Batches accepted before closing were still committed. */
    wait_done(&f->c, accepted + 1);
    for (int i = 0; i < accepted + 1; i++)
        assert_int_equal(coll_pop(&f->c)->status, 0);
    assert_null(coll_pop(&f->c));
    batches_free(wb, NPROBE + 1);
}

static void
test_open_fails_cleanly_on_bad_dir(void **state)
{
    struct fx *f = *state;
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
    struct fx *f = *state;

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
    struct fx *f = *state;
    hf_wbatch *wb = batches(1);

    put1(wb, HF_LMDB_MAX_WORKERS, 0, "w", "w");
    assert_int_equal(submit(f, wb), HF_EINTERNAL);
    put1(wb, -1, 0, "w", "w");
    assert_int_equal(submit(f, wb), HF_EINTERNAL);
    put1(wb, HF_LMDB_MAX_WORKERS - 1, 0, "w", "w");
    assert_int_equal(commit1(f, wb), 0);
    batches_free(wb, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

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
    struct fx *f = *state;
    enum { N = 40, VLEN = 100000 };
    hf_wbatch *wb = batches(N + 1);
    static char v[VLEN];
    char k[16];
    int st = 0, n;
    const char *nw = getenv("HF_TEST_NO_WAL");

    if (nw && strcmp(nw, "1") == 0) { /* no log, no memtable */
        batches_free(wb, N + 1);
        return;
    }
    fx_close(f);
    rm_dir(f->dir);
    fx_mem_max = 512 << 10;
    assert_int_equal(fx_open(f, 64u << 20, HF_DURABLE_SYNC), 0);
    fx_mem_max = 0;
    assert_int_equal(f->st.ops->rd_begin(f->st.self, 1), 0);
    for (n = 0; n < N && st == 0; n++) {
        label(&wb[n], 0, 0, (uint64_t)n);
        snprintf(k, sizeof(k), "big%02d", n);
        memset(v, 'a' + n % 26, sizeof(v));
        assert_int_equal(hf_wbatch_put(&wb[n], HF_DB_KV, k, strlen(k), v,
                                       sizeof(v)), 0);
        st = commit1(f, &wb[n]);
    }
    assert_int_equal(st, HF_EOVERLOADED);
    f->st.ops->rd_end(f->st.self, 1);

    label(&wb[N], 0, 1, (uint64_t)N); /* the worker's next generation */
    put1(&wb[N], 0, 1, "after", "yes");
    assert_int_equal(commit1(f, &wb[N]), 0);
    assert_value(f, "after", "yes");
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
    print_message("overloaded after %d acknowledged batches of %d bytes\n",
                  n - 1, VLEN);
    batches_free(wb, N + 1);
}

/* The log's checksum is CRC-32C: RFC 3720's check value, and a CRC
 * continued over two pieces equals the CRC of the whole. */
static void
test_crc32c_is_castagnoli(void **state)
{
    static const char msg[] = "123456789";
    (void)state;

    assert_int_equal(hf_crc32c(0, msg, 9), 0xE3069283u);
    assert_int_equal(hf_crc32c(hf_crc32c(0, msg, 4), msg + 4, 5),
                     0xE3069283u);
    assert_int_equal(hf_crc32c(0, "", 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_put_then_get_after_done),
        T(test_wal_memory_bound_answers_overloaded),
        T(test_crc32c_is_castagnoli),
        T(test_get_missing_key_is_not_found),
        T(test_delete_removes_key),
        T(test_databases_are_separate),
        T(test_scan_range_forward_and_reverse_with_bounds),
        T(test_scan_of_empty_database_visits_nothing),
        T(test_batches_queued_during_a_commit_share_one_txn),
        T(test_group_commit_puts_many_batches_in_one_txn),
        T(test_done_order_is_submission_order_per_worker),
        T(test_map_grows_when_full),
        T(test_failed_commit_fails_group_and_fences_worker),
        T(test_failed_commit_fails_every_batch_in_the_group),
        T(test_fenced_batches_fail_in_queue_order_beside_written_ones),
        T(test_reopen_keeps_committed_data),
        T(test_second_open_of_a_directory_in_use_is_refused),
        T(test_durability_none_still_commits),
        T(test_close_drains_queued_batches),
        T(test_submit_while_closing_is_unavailable),
        T(test_open_fails_cleanly_on_bad_dir),
        T(test_rd_begin_twice_is_refused),
        T(test_submit_rejects_out_of_range_worker),
    };

    if (getenv("HF_TEST_VERBOSE") == NULL)
        hf_log_set_level(HF_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
