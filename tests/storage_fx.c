/*
 * storage_fx.c - the fixture of the LMDB store tests: see storage_fx.h.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "core/storage.h"
#include "storage/lmdb.h"
#include "storage_fx.h"

#define WAIT_S 120 /* a test waiting longer than this for done() fails */

/* ------------------------------------------------------------------ */
/* Collector: done() appends here, the test thread takes from here.    */

static void
coll_init(struct sfx_coll *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void
coll_fini(struct sfx_coll *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void
on_done(void *arg, hf_wbatch *wb)
{
    struct sfx_coll *c = arg;

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
int
sfx_coll_wait(struct sfx_coll *c, const int *flag, int want)
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
void
sfx_wait_done(struct sfx_coll *c, int n)
{
    assert_true(sfx_coll_wait(c, &c->n, n));
}

/* Takes the oldest collected batch (NULL when none). */
hf_wbatch *
sfx_coll_pop(struct sfx_coll *c)
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

void
sfx_gate_close(struct sfx_coll *c, hf_wbatch *wb)
{
    pthread_mutex_lock(&c->mu);
    c->gate = wb;
    c->gate_entered = c->gate_open = 0;
    pthread_mutex_unlock(&c->mu);
}

void
sfx_gate_open(struct sfx_coll *c)
{
    pthread_mutex_lock(&c->mu);
    c->gate_open = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* Fixture: a temp directory and an open store.                        */

void
sfx_rm_dir(const char *dir)
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
/* Set by a test before sfx_open: a memtable bound and no checkpoint by
 * age (0: the defaults above). */
size_t sfx_mem_max;

int
sfx_open(struct sfx *f, size_t map_size, int durability)
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

    if (sfx_mem_max) {
        o.mem_max = sfx_mem_max;
        o.ckpt_bytes = sfx_mem_max / 4;
        o.ckpt_ms = 3600000;
    }
    rc = hf_lmdb_open(&f->st, &o);

    if (rc == 0) {
        f->open = 1;
        f->st.ops->set_done(f->st.self, on_done, &f->c);
    }
    return rc;
}

void
sfx_close(struct sfx *f)
{
    if (f->open)
        f->st.ops->close(f->st.self);
    f->open = 0;
}

int
sfx_setup(void **state)
{
    struct sfx *f = calloc(1, sizeof(*f));
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
    if (sfx_open(f, 16u << 20, HF_DURABLE_SYNC) != 0) {
        sfx_rm_dir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int
sfx_teardown(void **state)
{
    struct sfx *f = *state;

    sfx_close(f);
    coll_fini(&f->c);
    sfx_rm_dir(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Batches and reads                                                   */

hf_wbatch *
sfx_batches(int n)
{
    hf_wbatch *wb = calloc((size_t)n, sizeof(*wb));
    assert_non_null(wb);
    return wb;
}

void
sfx_batches_free(hf_wbatch *wb, int n)
{
    for (int i = 0; i < n; i++)
        hf_buf_free(&wb[i].ops);
    free(wb);
}

void
sfx_label(hf_wbatch *wb, int worker, uint64_t gen, uint64_t id)
{
    hf_wbatch_reset(wb);
    wb->worker = worker;
    wb->gen = gen;
    wb->id = id;
}

/* A batch holding one put of a string key and value. */
void
sfx_put1(hf_wbatch *wb, int worker, uint64_t gen, const char *k, const char *v)
{
    sfx_label(wb, worker, gen, 0);
    assert_int_equal(hf_wbatch_put(wb, HF_DB_KV, k, strlen(k), v, strlen(v)),
                     0);
    wb->nhandlers = 1;
}

int
sfx_submit(struct sfx *f, hf_wbatch *wb)
{
    return f->st.ops->submit(f->st.self, wb);
}

/* Submits one batch, waits for it and returns its status. Only for tests
 * with nothing else in flight. */
int
sfx_commit1(struct sfx *f, hf_wbatch *wb)
{
    int n;

    pthread_mutex_lock(&f->c.mu);
    n = f->c.n;
    pthread_mutex_unlock(&f->c.mu);
    assert_int_equal(sfx_submit(f, wb), 0);
    sfx_wait_done(&f->c, n + 1);
    assert_ptr_equal(sfx_coll_pop(&f->c), wb);
    return wb->status;
}

/* Reads a string value through reader rd; returns get's result. */
int
sfx_read_str(struct sfx *f, int rd, int dbi, const char *k, char *out,
             size_t cap)
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

void
sfx_assert_value(struct sfx *f, const char *k, const char *want)
{
    char got[256];

    assert_int_equal(sfx_read_str(f, 0, HF_DB_KV, k, got, sizeof(got)), 0);
    assert_string_equal(got, want);
}

void
sfx_assert_absent(struct sfx *f, const char *k)
{
    assert_int_equal(sfx_read_str(f, 0, HF_DB_KV, k, NULL, 0), HF_ENOTFOUND);
}
