/*
 * test_core.c - the engine's behaviour, through the in-process driver.
 *
 * Each test opens a real LMDB store in a fresh directory and a real host
 * with the test kinds below, and talks to it as a gateway would. A "gate"
 * store wraps the LMDB one so a test can hold commits back and observe
 * what is released before and after durability.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/config.h"
#include "client/driver.h"
#include "core/env.h"
#include "core/err.h"
#include "core/host.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mpjson.h"
#include "storage/lmdb.h"
#include "transport/gateway.h"

#define WAIT 10000 /* ms: generous, machines are shared */

/* ------------------------------------------------------------------ */
/* test kinds                                                          */

static atomic_int inside;    /* handlers of "tcount" running right now */
static atomic_int overlaps;  /* times two ran at once */
static atomic_int alarm_attempts;
static atomic_int alarm_fail_first; /* fail this many attempts */

static int64_t
load_int(hf_ctx *c, const char *k)
{
    hf_slice v;
    if (hf_get(c, k, strlen(k), &v) != 0 || v.len != 8)
        return 0;
    return (int64_t)hf_get_be64(v.data);
}

static int
store_int(hf_ctx *c, const char *k, int64_t n)
{
    char be[8];
    hf_put_be64(be, (uint64_t)n);
    return hf_put(c, k, strlen(k), be, 8);
}

static int
reply_int(hf_ctx *c, int64_t n)
{
    msgpack_packer *pk = hf_pk(c);
    msgpack_pack_map(pk, 1);
    hf_pack_cstr(pk, "value");
    msgpack_pack_int64(pk, n);
    return hf_reply(c);
}

static int
tcount_incr(hf_ctx *c, const msgpack_object *args)
{
    int64_t n;
    (void)args;
    if (atomic_fetch_add(&inside, 1) != 0)
        atomic_fetch_add(&overlaps, 1);
    n = load_int(c, "n") + 1;
    store_int(c, "n", n);
    atomic_fetch_sub(&inside, 1);
    return reply_int(c, n);
}

static int
tcount_get(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    return reply_int(c, load_int(c, "n"));
}

/* Ordering: each call carries (sender, n); n must be the sender's last
 * n + 1, else the call records a violation. */
static int
order_check(hf_ctx *c, const msgpack_object *args)
{
    const char *s;
    size_t sl;
    int64_t n, last;
    char key[80];
    int rv;

    if ((rv = hf_arg_str(c, args, "s", 1, 32, &s, &sl)) ||
        (rv = hf_arg_int(c, args, "n", 1, 0, INT64_MAX, &n)))
        return rv;
    snprintf(key, sizeof(key), "last:%.*s", (int)sl, s);
    last = load_int(c, key);
    if (n != last + 1)
        store_int(c, "violations", load_int(c, "violations") + 1);
    store_int(c, key, n);
    return reply_int(c, n);
}

static int
order_violations(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    return reply_int(c, load_int(c, "violations"));
}

static int
kv_put(hf_ctx *c, const msgpack_object *args)
{
    const char *k, *v;
    size_t kl, vl;
    int rv;
    if ((rv = hf_arg_str(c, args, "k", 1, 200, &k, &kl)) ||
        (rv = hf_arg_str(c, args, "v", 1, 1 << 20, &v, &vl)))
        return rv;
    return hf_put(c, k, kl, v, vl);
}

static int
kv_del(hf_ctx *c, const msgpack_object *args)
{
    const char *k;
    size_t kl;
    int rv;
    if ((rv = hf_arg_str(c, args, "k", 1, 200, &k, &kl)))
        return rv;
    return hf_del(c, k, kl);
}

static int
kv_get(hf_ctx *c, const msgpack_object *args)
{
    const char *k;
    size_t kl;
    hf_slice v;
    int rv;
    if ((rv = hf_arg_str(c, args, "k", 1, 200, &k, &kl)))
        return rv;
    if ((rv = hf_get(c, k, kl, &v)) != 0)
        return hf_fail(c, rv, "no key %.*s", (int)kl, k);
    hf_pack_str(hf_pk(c), v.data, v.len);
    return hf_reply(c);
}

/* Writes a blob of `size` bytes under key k (for map growth). */
static int
kv_blob(hf_ctx *c, const msgpack_object *args)
{
    const char *k;
    size_t kl;
    int64_t size;
    char *buf;
    int rv;
    if ((rv = hf_arg_str(c, args, "k", 1, 200, &k, &kl)) ||
        (rv = hf_arg_int(c, args, "size", 1, 1, 1 << 20, &size)))
        return rv;
    buf = malloc((size_t)size);
    memset(buf, k[kl - 1], (size_t)size);
    rv = hf_put(c, k, kl, buf, (size_t)size);
    free(buf);
    return rv;
}

struct listacc {
    msgpack_packer *pk;
    hf_buf keys;
    int n;
};

static int
list_cb(void *arg, hf_slice key, hf_slice val)
{
    struct listacc *la = arg;
    msgpack_packer pk;
    (void)val;
    msgpack_packer_init(&pk, &la->keys, hf_buf_mpwrite);
    hf_pack_str(&pk, key.data, key.len);
    la->n++;
    return 0;
}

static int
kv_list(hf_ctx *c, const msgpack_object *args)
{
    const char *lo = "", *hi = "";
    size_t lol = 0, hil = 0;
    int64_t rev = 0, limit = 0;
    struct listacc la = {0};
    msgpack_packer *pk;
    int rv;

    if ((rv = hf_arg_str(c, args, "lo", 0, 200, &lo, &lol)) ||
        (rv = hf_arg_str(c, args, "hi", 0, 200, &hi, &hil)) ||
        (rv = hf_arg_int(c, args, "reverse", 0, 0, 1, &rev)) ||
        (rv = hf_arg_int(c, args, "limit", 0, 0, 1000, &limit)))
        return rv;
    if ((rv = hf_list(c, (hf_slice){lo ? lo : "", lol},
                      (hf_slice){hi ? hi : "", hil}, (int)rev,
                      (size_t)limit, list_cb, &la)) != 0)
        return rv;
    pk = hf_pk(c);
    msgpack_pack_array(pk, (size_t)la.n);
    if (la.keys.len)
        pk->callback(pk->data, la.keys.data, la.keys.len);
    hf_buf_free(&la.keys);
    return hf_reply(c);
}

/* Emits n events of type "e" with data {i}. */
static int
kv_emit(hf_ctx *c, const msgpack_object *args)
{
    int64_t n = 1, i;
    int rv;
    if ((rv = hf_arg_int(c, args, "n", 0, 1, 1000, &n)))
        return rv;
    for (i = 0; i < n; i++) {
        msgpack_packer *pk = hf_pk(c);
        msgpack_pack_map(pk, 1);
        hf_pack_cstr(pk, "i");
        msgpack_pack_int64(pk, i);
        if ((rv = hf_emit(c, "e", NULL)) != 0)
            return rv;
    }
    return reply_int(c, (int64_t)hf_seq(c));
}

/* Does everything a unit can do, then fails. */
static int
kv_fail_after_writes(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    hf_put(c, "doomed", 6, "x", 1);
    hf_pk(c);
    hf_emit(c, "doomed", NULL);
    hf_send(c, "tcount/doomed-target", "incr");
    hf_alarm_set(c, "doomed", hf_now(c) + 50);
    hf_signal(c, "doomed");
    return hf_fail(c, HF_ECONFLICT, "refused on purpose");
}

static int
kv_send(hf_ctx *c, const msgpack_object *args)
{
    const char *to;
    size_t tl;
    char addr[HF_ADDR_MAX + 1];
    int rv;
    if ((rv = hf_arg_str(c, args, "to", 1, HF_ADDR_MAX, &to, &tl)))
        return rv;
    snprintf(addr, sizeof(addr), "%.*s", (int)tl, to);
    return hf_send(c, addr, "incr");
}

static int
kv_set_alarm(hf_ctx *c, const msgpack_object *args)
{
    int64_t in_ms;
    int rv;
    if ((rv = hf_arg_int(c, args, "in_ms", 1, 0, 3600000, &in_ms)))
        return rv;
    return hf_alarm_set(c, "a", hf_now(c) + in_ms);
}

static int
kv_get_alarm(hf_ctx *c, const msgpack_object *args)
{
    int64_t at;
    (void)args;
    return reply_int(c, hf_alarm_get(c, "a", &at) == 0 ? at : -1);
}

static int
kv_alarm(hf_ctx *c, const char *name)
{
    int n = atomic_fetch_add(&alarm_attempts, 1) + 1;
    if (n <= atomic_load(&alarm_fail_first))
        return hf_fail(c, HF_EUNAVAIL, "failing attempt %d on purpose", n);
    store_int(c, "fired", load_int(c, "fired") + 1);
    hf_pk(c);
    return hf_emit(c, name, NULL);
}

/* A value from hf_get must survive later writes in the same handler, and
 * writing from inside an hf_list callback must be safe. */
static int
lifetime_cb(void *arg, hf_slice key, hf_slice val)
{
    hf_ctx *c = arg;
    char k[64];
    (void)val;
    snprintf(k, sizeof(k), "copy-%.*s", (int)key.len, (const char *)key.data);
    return hf_put(c, k, strlen(k), key.data, key.len);
}

static int
kv_lifetime(hf_ctx *c, const msgpack_object *args)
{
    hf_slice first;
    char big[4096], k[32];
    (void)args;
    memset(big, 'z', sizeof(big));
    hf_put(c, "a", 1, "first-value", 11);
    if (hf_get(c, "a", 1, &first) != 0)
        return HF_EINTERNAL;
    for (int i = 0; i < 200; i++) { /* forces the staging to grow */
        snprintf(k, sizeof(k), "k%03d", i);
        hf_put(c, k, strlen(k), big, sizeof(big));
    }
    if (first.len != 11 || memcmp(first.data, "first-value", 11) != 0)
        return hf_fail(c, HF_EINTERNAL, "hf_get value moved");
    if (hf_list(c, (hf_slice){"k", 1}, (hf_slice){"l", 1}, 0, 0,
                lifetime_cb, c) != 0)
        return HF_EINTERNAL;
    return reply_int(c, 1);
}

static int
kv_admin_only(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    return reply_int(c, 1);
}

static int
kv_whoami(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    hf_pack_cstr(hf_pk(c), hf_caller(c));
    return hf_reply(c);
}

static const struct hf_method tcount_methods[] = {
    {.name = "incr", .fn = tcount_incr},
    {.name = "get", .fn = tcount_get},
};

static const struct hf_kind tcount = {
    .name = "tcount",
    .methods = tcount_methods,
    .nmethods = 2,
};

static const struct hf_method tk_methods[] = {
    {.name = "order", .fn = order_check},
    {.name = "violations", .fn = order_violations},
    {.name = "put", .fn = kv_put},
    {.name = "del", .fn = kv_del},
    {.name = "get", .fn = kv_get},
    {.name = "blob", .fn = kv_blob},
    {.name = "list", .fn = kv_list},
    {.name = "emit", .fn = kv_emit},
    {.name = "fail_after_writes", .fn = kv_fail_after_writes},
    {.name = "send", .fn = kv_send},
    {.name = "set_alarm", .fn = kv_set_alarm},
    {.name = "get_alarm", .fn = kv_get_alarm},
    {.name = "admin_only", .fn = kv_admin_only, .roles = HF_ROLE_SERVICE},
    {.name = "whoami", .fn = kv_whoami},
    {.name = "lifetime", .fn = kv_lifetime},
};

static const struct hf_kind tk = {
    .name = "tk",
    .methods = tk_methods,
    .nmethods = sizeof(tk_methods) / sizeof(tk_methods[0]),
    .alarm = kv_alarm,
};

static const struct hf_kind *const kinds[] = {&tcount, &tk};

/* ------------------------------------------------------------------ */
/* the gate: a store wrapper that can hold batches back                */

struct gate {
    hf_store inner;
    pthread_mutex_t mu;
    int closed;
    hf_wbatch *head, *tail; /* held while closed */
    atomic_int submitted;
};

static struct gate gate;

static int
g_rd_begin(void *s, int rd)
{
    return gate.inner.ops->rd_begin(gate.inner.self, rd);
    (void)s;
}
static void
g_rd_end(void *s, int rd)
{
    (void)s;
    gate.inner.ops->rd_end(gate.inner.self, rd);
}
static int
g_get(void *s, int rd, int dbi, hf_slice k, hf_slice *v)
{
    (void)s;
    return gate.inner.ops->get(gate.inner.self, rd, dbi, k, v);
}
static int
g_scan(void *s, int rd, int dbi, hf_slice lo, hf_slice hi, int rev,
       hf_scan_fn fn, void *arg)
{
    (void)s;
    return gate.inner.ops->scan(gate.inner.self, rd, dbi, lo, hi, rev, fn,
                                arg);
}
static int
g_submit(void *s, hf_wbatch *wb)
{
    (void)s;
    atomic_fetch_add(&gate.submitted, 1);
    pthread_mutex_lock(&gate.mu);
    if (gate.closed) {
        wb->next = NULL;
        if (gate.tail)
            gate.tail->next = wb;
        else
            gate.head = wb;
        gate.tail = wb;
        pthread_mutex_unlock(&gate.mu);
        return 0;
    }
    pthread_mutex_unlock(&gate.mu);
    return gate.inner.ops->submit(gate.inner.self, wb);
}
static void
g_set_done(void *s, hf_store_done_fn fn, void *arg)
{
    (void)s;
    gate.inner.ops->set_done(gate.inner.self, fn, arg);
}
static void
g_close(void *s)
{
    (void)s;
    gate.inner.ops->close(gate.inner.self);
}

static const struct hf_store_ops gate_ops = {
    .rd_begin = g_rd_begin,
    .rd_end = g_rd_end,
    .get = g_get,
    .scan = g_scan,
    .submit = g_submit,
    .set_done = g_set_done,
    .close = g_close,
};

static void
gate_close(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.closed = 1;
    pthread_mutex_unlock(&gate.mu);
}

static void
gate_open(void)
{
    hf_wbatch *wb;
    pthread_mutex_lock(&gate.mu);
    gate.closed = 0;
    wb = gate.head;
    gate.head = gate.tail = NULL;
    pthread_mutex_unlock(&gate.mu);
    while (wb) {
        hf_wbatch *next = wb->next;
        gate.inner.ops->submit(gate.inner.self, wb);
        wb = next;
    }
}

/* ------------------------------------------------------------------ */
/* an engine under test                                                */

struct eng {
    char dir[256];
    hf_config cfg;
    hf_lmdb_config store;
    hf_host *host;
    hf_drv *drv;
    int open;
};

static void
eng_start(struct eng *e)
{
    hf_store st;
    struct hf_lmdb_opts o = hf_lmdb_config_opts_of(&e->store);

    o.dir = e->dir;
    o.nreaders = e->cfg.workers + 3;
    assert_int_equal(hf_lmdb_open(&gate.inner, &o), 0);
    gate.closed = 0;
    gate.head = gate.tail = NULL;
    st.ops = &gate_ops;
    st.self = &gate;
    assert_int_equal(hf_host_open(&e->host,
                                  &(struct hf_host_opts){
                                      .cfg = &e->cfg,
                                      .store = st,
                                      .kinds = kinds,
                                      .nkinds = 2,
                                  }),
                     0);
    assert_int_equal(hf_drv_open(e->host, &e->drv), 0);
    e->open = 1;
}

static void
eng_stop(struct eng *e)
{
    if (!e->open)
        return;
    gate_open();
    hf_drv_close(e->drv);
    hf_host_close(e->host);
    gate.inner.ops->close(gate.inner.self);
    e->open = 0;
}

static struct eng *
eng_new(void (*tweak)(struct eng *))
{
    struct eng *e = calloc(1, sizeof(*e));
    const char *tmp = getenv("HF_TEST_TMP");

    snprintf(e->dir, sizeof(e->dir), "%s/core-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(e->dir));
    hf_config_defaults(&e->cfg);
    hf_lmdb_config_defaults(&e->store);
    e->store.wal_segment_mb = 1; /* small files: tests write little */
    e->cfg.workers = 2;
    e->cfg.alarm_retry_ms = 20;
    if (tweak)
        tweak(e);
    eng_start(e);
    return e;
}

static void
eng_free(struct eng *e)
{
    char cmd[300];
    eng_stop(e);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
    free(e);
}

/* A synchronous call; asserts it got a reply. */
static hf_drv_msg *
call(struct eng *e, const char *to, const char *method, const char *args)
{
    hf_drv_msg *m = NULL;
    assert_int_equal(
        hf_drv_call(e->drv, to, method, args, NULL, "tester", 0, WAIT, &m),
        0);
    return m;
}

static void
call_ok(struct eng *e, const char *to, const char *method, const char *args,
        const char *want_json)
{
    hf_drv_msg *m = call(e, to, method, args);
    if (!m->e.ok)
        fail_msg("%s.%s failed: %s %.*s", to, method, m->code,
                 (int)m->e.msg.len, (const char *)m->e.msg.data);
    if (want_json)
        assert_string_equal(m->json, want_json);
    hf_drv_msg_free(m);
}

static void
call_err(struct eng *e, const char *to, const char *method,
         const char *args, const char *code)
{
    hf_drv_msg *m = call(e, to, method, args);
    assert_false(m->e.ok);
    assert_string_equal(m->code, code);
    hf_drv_msg_free(m);
}

static int64_t
value_of(struct eng *e, const char *to, const char *method)
{
    hf_drv_msg *m = call(e, to, method, NULL);
    const msgpack_object *v;
    assert_true(m->e.ok);
    v = hf_arg(m->e.val, "value");
    assert_non_null(v);
    int64_t n = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                    ? v->via.i64
                    : (int64_t)v->via.u64;
    hf_drv_msg_free(m);
    return n;
}

/* Receives the next output that is not a presence notice. */
static hf_drv_msg *
recv_next(struct eng *e)
{
    hf_drv_msg *m = NULL;
    for (;;) {
        assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
        if (m->e.op != HF_OUT_PRESENCE)
            return m;
        hf_drv_msg_free(m);
    }
}

static int
nothing_arrives(struct eng *e, int ms)
{
    hf_drv_msg *m = NULL;
    if (hf_drv_recv(e->drv, ms, &m) == HF_ETIMEOUT)
        return 1;
    hf_drv_msg_free(m);
    return 0;
}

/* Waits until cond() or ~WAIT ms pass. */
static int
eventually(struct eng *e, int (*cond)(struct eng *))
{
    for (int i = 0; i < WAIT / 10; i++) {
        if (cond(e))
            return 1;
        usleep(10000);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* tests                                                               */

struct hammer {
    struct eng *e;
    int n;
    int acked;
};

static void
hammer_cb(void *arg, const hf_env *env)
{
    struct hammer *h = arg;
    if (env->op == HF_OUT_REPLY && env->ok)
        h->acked++;
}

static void *
hammer_main(void *arg)
{
    struct hammer *h = arg;
    hf_drv *d;
    int sent = 0, window = 500;
    hf_env e = {.op = HF_OP_CALL, .to = {"tcount/hot", 10},
                .method = {"incr", 4}};

    hf_drv_open(h->e->host, &d);
    while (h->acked < h->n) {
        int batch = 0;
        while (sent < h->n && sent - h->acked < window) {
            e.id = (uint64_t)++sent;
            hf_drv_add(d, &e, NULL, 0);
            batch++;
        }
        if (batch)
            hf_drv_flush(d);
        if (hf_drv_poll(d, WAIT, hammer_cb, h) == 0)
            break;
    }
    hf_drv_close(d);
    return NULL;
}

static void
test_counter_8_threads_100k_each_is_exact(void **state)
{
    struct eng *e = eng_new(NULL);
    pthread_t t[8];
    struct hammer h[8];
    int n = 100000;
    (void)state;

    atomic_store(&overlaps, 0);
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){.e = e, .n = n};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(h[i].acked, n);
    }
    assert_int_equal(value_of(e, "tcount/hot", "get"), 8 * n);
    assert_int_equal(atomic_load(&overlaps), 0);
    /* Group commit happened: far fewer commits than handlers. */
    assert_true(HF_LMDB_GET(commits) < (uint64_t)(8 * n) / 4);
    eng_free(e);
}

static void
test_per_sender_order_is_kept(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv *d[3];
    int n = 3000;
    char args[64];
    (void)state;

    for (int s = 0; s < 3; s++)
        hf_drv_open(e->host, &d[s]);
    /* Three senders interleave batches to two actors. */
    for (int i = 1; i <= n; i++) {
        for (int s = 0; s < 3; s++) {
            hf_buf a = {0};
            hf_env env = {.op = HF_OP_CALL, .id = (uint64_t)i,
                          .method = {"order", 5}};
            env.to = (i % 2) ? (hf_slice){"tk/o1", 5}
                             : (hf_slice){"tk/o2", 5};
            snprintf(args, sizeof(args), "{\"s\":\"s%d-%s\",\"n\":%d}", s,
                     (i % 2) ? "odd" : "even", (i + 1) / 2);
            hf_json_to_mp(args, strlen(args), &a);
            hf_drv_add(d[s], &env, a.data, a.len);
            hf_buf_free(&a);
            if (i % 7 == 0)
                hf_drv_flush(d[s]);
        }
    }
    for (int s = 0; s < 3; s++)
        hf_drv_flush(d[s]);
    for (int s = 0; s < 3; s++) {
        int got = 0;
        struct hammer h = {0};
        while (got < n && hf_drv_poll(d[s], WAIT, hammer_cb, &h) > 0)
            got = h.acked;
        assert_int_equal(h.acked, n);
        hf_drv_close(d[s]);
    }
    assert_int_equal(value_of(e, "tk/o1", "violations"), 0);
    assert_int_equal(value_of(e, "tk/o2", "violations"), 0);
    eng_free(e);
}

/* Reads a key straight from the store, bypassing the host. */
static int
store_has(struct eng *e, const char *addr, const char *k)
{
    char key[HF_KEYBUF];
    size_t n = hf_key_actor(key, addr, strlen(addr), k, strlen(k));
    hf_slice v;
    int rd = e->cfg.workers + 2, rv;
    gate.inner.ops->rd_begin(gate.inner.self, rd);
    rv = gate.inner.ops->get(gate.inner.self, rd, HF_DB_KV,
                             (hf_slice){key, n}, &v);
    gate.inner.ops->rd_end(gate.inner.self, rd);
    return rv == 0;
}

static void
test_reply_is_never_seen_before_its_commit_is_durable(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_env env = {.op = HF_OP_CALL, .id = 1, .to = {"tk/gated", 8},
                  .method = {"put", 3}};
    hf_buf a = {0};
    hf_drv_msg *m = NULL;
    (void)state;

    gate_close();
    hf_json_to_mp("{\"k\":\"x\",\"v\":\"1\"}", 17, &a);
    hf_drv_add(e->drv, &env, a.data, a.len);
    hf_buf_free(&a);
    hf_drv_flush(e->drv);
    /* The handler ran, its batch is waiting at the gate: no reply. */
    assert_true(nothing_arrives(e, 300));
    assert_false(store_has(e, "tk/gated", "x"));
    gate_open();
    assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
    assert_true(m->e.ok);
    assert_int_equal(m->e.id, 1);
    /* By the time the reply is out, the write is in LMDB. */
    assert_true(store_has(e, "tk/gated", "x"));
    hf_drv_msg_free(m);
    eng_free(e);
}

static void
test_read_only_call_waits_for_the_writes_it_saw(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_env put = {.op = HF_OP_CALL, .id = 1, .to = {"tk/ryw", 6},
                  .method = {"put", 3}};
    hf_env get = {.op = HF_OP_CALL, .id = 2, .to = {"tk/ryw", 6},
                  .method = {"get", 3}};
    hf_buf a = {0}, b = {0};
    hf_drv_msg *m = NULL;
    (void)state;

    gate_close();
    hf_json_to_mp("{\"k\":\"x\",\"v\":\"fresh\"}", 21, &a);
    hf_json_to_mp("{\"k\":\"x\"}", 9, &b);
    hf_drv_add(e->drv, &put, a.data, a.len);
    hf_drv_flush(e->drv);
    hf_drv_add(e->drv, &get, b.data, b.len);
    hf_drv_flush(e->drv);
    hf_buf_free(&a);
    hf_buf_free(&b);
    /* The get read the uncommitted write, so it is held too. */
    assert_true(nothing_arrives(e, 300));
    gate_open();
    assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
    assert_int_equal(m->e.id, 1);
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
    assert_int_equal(m->e.id, 2);
    assert_true(m->e.ok);
    assert_string_equal(m->json, "\"fresh\"");
    hf_drv_msg_free(m);
    eng_free(e);
}

static void
test_read_your_writes_across_handlers_before_commit(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    char args[64];
    (void)state;

    gate_close();
    /* Ten increments in flight, none durable: each sees the previous. */
    for (int i = 1; i <= 10; i++) {
        hf_env env = {.op = HF_OP_CALL, .id = (uint64_t)i,
                      .to = {"tcount/ryw", 10}, .method = {"incr", 4}};
        hf_drv_add(e->drv, &env, NULL, 0);
        hf_drv_flush(e->drv);
    }
    assert_true(nothing_arrives(e, 200));
    assert_false(store_has(e, "tcount/ryw", "n"));
    gate_open();
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
        snprintf(args, sizeof(args), "{\"value\":%d}", (int)m->e.id);
        assert_string_equal(m->json, args);
        hf_drv_msg_free(m);
    }
    eng_free(e);
}

static void
test_list_merges_uncommitted_writes_in_order(void **state)
{
    struct eng *e = eng_new(NULL);
    (void)state;

    call_ok(e, "tk/l", "put", "{\"k\":\"b\",\"v\":\"1\"}", NULL);
    call_ok(e, "tk/l", "put", "{\"k\":\"d\",\"v\":\"1\"}", NULL);
    call_ok(e, "tk/l", "put", "{\"k\":\"f\",\"v\":\"1\"}", NULL);
    gate_close();
    {
        const char *ops[][2] = {{"put", "{\"k\":\"a\",\"v\":\"2\"}"},
                                {"del", "{\"k\":\"d\"}"},
                                {"put", "{\"k\":\"e\",\"v\":\"2\"}"}};
        for (int i = 0; i < 3; i++) {
            hf_buf a = {0};
            hf_env env = {.op = HF_OP_CALL, .id = 100 + (uint64_t)i,
                          .to = {"tk/l", 4}};
            env.method = (hf_slice){ops[i][0], 3};
            hf_json_to_mp(ops[i][1], strlen(ops[i][1]), &a);
            hf_drv_add(e->drv, &env, a.data, a.len);
            hf_buf_free(&a);
        }
        hf_drv_flush(e->drv);
    }
    {
        hf_drv_msg *m = NULL;
        hf_env env = {.op = HF_OP_CALL, .id = 200, .to = {"tk/l", 4},
                      .method = {"list", 4}};
        hf_env env2 = env;
        hf_buf a = {0}, b = {0};
        hf_json_to_mp("{}", 2, &a);
        hf_json_to_mp("{\"reverse\":1,\"limit\":3,\"hi\":\"f\"}", 32, &b);
        hf_drv_add(e->drv, &env, a.data, a.len);
        env2.id = 201;
        hf_drv_add(e->drv, &env2, b.data, b.len);
        hf_drv_flush(e->drv);
        hf_buf_free(&a);
        hf_buf_free(&b);
        gate_open();
        for (int i = 0; i < 5; i++) {
            assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
            if (m->e.id == 200)
                assert_string_equal(m->json, "[\"a\",\"b\",\"e\",\"f\"]");
            if (m->e.id == 201)
                assert_string_equal(m->json, "[\"e\",\"b\",\"a\"]");
            hf_drv_msg_free(m);
        }
    }
    /* And the same once everything is durable. */
    call_ok(e, "tk/l", "list", "{}", "[\"a\",\"b\",\"e\",\"f\"]");
    eng_free(e);
}

static void
test_values_stay_valid_across_writes_and_writes_inside_list(void **state)
{
    struct eng *e = eng_new(NULL);
    (void)state;
    call_ok(e, "tk/life", "lifetime", NULL, "{\"value\":1}");
    call_ok(e, "tk/life", "get", "{\"k\":\"copy-k199\"}", "\"k199\"");
    call_ok(e, "tk/life", "get", "{\"k\":\"a\"}", "\"first-value\"");
    eng_free(e);
}

static void
test_failed_handler_rolls_back_everything(void **state)
{
    struct eng *e = eng_new(NULL);
    uint64_t sent = HF_GET(outbox_sent);
    hf_drv_msg *m;
    (void)state;

    m = call(e, "tk/rb", "fail_after_writes", NULL);
    assert_false(m->e.ok);
    assert_string_equal(m->code, "conflict");
    assert_int_equal(m->e.msg.len, strlen("refused on purpose"));
    hf_drv_msg_free(m);
    call_err(e, "tk/rb", "get", "{\"k\":\"doomed\"}", "not_found");
    m = call(e, "tk/rb", "info", NULL);
    assert_int_equal(hf_arg(m->e.val, "seq")->via.u64, 0);
    hf_drv_msg_free(m);
    call_ok(e, "tk/rb", "get_alarm", NULL, "{\"value\":-1}");
    usleep(200000); /* the send would have been delivered by now */
    assert_int_equal(value_of(e, "tcount/doomed-target", "get"), 0);
    assert_int_equal(HF_GET(outbox_sent), sent);
    eng_free(e);
}

static void
test_idempotent_repeat_returns_stored_reply_without_rerunning(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    uint64_t hits = HF_GET(idem_hits);
    (void)state;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(hf_drv_call(e->drv, "tcount/idem", "incr", NULL,
                                     "key-1", NULL, 0, WAIT, &m),
                         0);
        assert_true(m->e.ok);
        assert_string_equal(m->json, "{\"value\":1}");
        hf_drv_msg_free(m);
    }
    assert_int_equal(HF_GET(idem_hits) - hits, 2);
    assert_int_equal(hf_drv_call(e->drv, "tcount/idem", "incr", NULL,
                                 "key-2", NULL, 0, WAIT, &m),
                     0);
    assert_string_equal(m->json, "{\"value\":2}");
    hf_drv_msg_free(m);
    /* The stored reply is durable: it survives a restart. */
    eng_stop(e);
    eng_start(e);
    assert_int_equal(hf_drv_call(e->drv, "tcount/idem", "incr", NULL,
                                 "key-1", NULL, 0, WAIT, &m),
                     0);
    assert_string_equal(m->json, "{\"value\":1}");
    hf_drv_msg_free(m);
    assert_int_equal(value_of(e, "tcount/idem", "get"), 2);
    eng_free(e);
}

static void
retain5(struct eng *e)
{
    e->cfg.log_retain = 5;
}

static void
expect_event(struct eng *e, uint64_t seq, uint64_t conn, int unicast)
{
    hf_drv_msg *m = recv_next(e);
    assert_int_equal(m->e.op, HF_OUT_EVENT);
    assert_int_equal(m->e.seq, seq);
    assert_string_equal(m->from, "tk/log");
    if (unicast) {
        assert_true(m->e.has_conn);
        assert_int_equal(m->e.conn, conn);
    } else {
        assert_false(m->e.has_conn);
    }
    hf_drv_msg_free(m);
}

static int
count_cb(void *arg, hf_slice k, hf_slice v)
{
    (void)k;
    (void)v;
    (*(int *)arg)++;
    return 0;
}

static int
count_log(struct eng *e, const char *addr)
{
    char lo[HF_KEYBUF], hi[HF_KEYBUF];
    size_t ll = hf_key_actor(lo, addr, strlen(addr), NULL, 0);
    size_t hl = hf_key_actor_end(hi, addr, strlen(addr));
    int rd = e->cfg.workers + 2, n = 0;
    gate.inner.ops->rd_begin(gate.inner.self, rd);
    gate.inner.ops->scan(gate.inner.self, rd, HF_DB_LOG, (hf_slice){lo, ll},
                         (hf_slice){hi, hl}, 0, count_cb, &n);
    gate.inner.ops->rd_end(gate.inner.self, rd);
    return n;
}


static void
test_event_log_since_and_retention(void **state)
{
    struct eng *e = eng_new(retain5);
    hf_drv_msg *m = NULL;
    char epoch[17];
    (void)state;

    call_ok(e, "tk/log", "emit", "{\"n\":12}", "{\"value\":12}");
    assert_int_equal(count_log(e, "tk/log"), 5);

    /* Within retention: the missed events, in order, before live ones. */
    assert_int_equal(
        hf_drv_sub(e->drv, 1, "tk/log", 9, NULL, NULL, "u1", WAIT, &m), 0);
    assert_true(m->e.ok);
    assert_true(hf_arg(m->e.val, "recovered")->via.boolean);
    assert_int_equal(hf_arg(m->e.val, "seq")->via.u64, 12);
    snprintf(epoch, sizeof(epoch), "%.*s",
             (int)hf_arg(m->e.val, "epoch")->via.str.size,
             hf_arg(m->e.val, "epoch")->via.str.ptr);
    hf_drv_msg_free(m);
    for (uint64_t s = 10; s <= 12; s++)
        expect_event(e, s, 1, 1);
    call_ok(e, "tk/log", "emit", "{\"n\":2}", "{\"value\":14}");
    expect_event(e, 13, 0, 0);
    expect_event(e, 14, 0, 0);

    /* Beyond retention (8..14 kept? no: the last 5, 10..14). */
    assert_int_equal(
        hf_drv_sub(e->drv, 2, "tk/log", 3, NULL, NULL, "u2", WAIT, &m), 0);
    assert_false(hf_arg(m->e.val, "recovered")->via.boolean);
    hf_drv_msg_free(m);
    /* Up to date: recovered, nothing to replay. */
    assert_int_equal(
        hf_drv_sub(e->drv, 3, "tk/log", 14, epoch, NULL, "u3", WAIT, &m), 0);
    assert_true(hf_arg(m->e.val, "recovered")->via.boolean);
    hf_drv_msg_free(m);
    /* A different epoch means another history: not recovered. */
    assert_int_equal(hf_drv_sub(e->drv, 4, "tk/log", 12, "0000000000000000",
                                NULL, "u4", WAIT, &m),
                     0);
    assert_false(hf_arg(m->e.val, "recovered")->via.boolean);
    hf_drv_msg_free(m);
    /* The epoch is stable across restarts. */
    eng_stop(e);
    eng_start(e);
    m = call(e, "tk/log", "info", NULL);
    assert_int_equal(hf_arg(m->e.val, "seq")->via.u64, 14);
    assert_memory_equal(hf_arg(m->e.val, "epoch")->via.str.ptr, epoch, 16);
    hf_drv_msg_free(m);
    eng_free(e);
}

static void
test_history_reads_after_a_seq_with_limit_and_retention(void **state)
{
    struct eng *e = eng_new(retain5);
    hf_drv_msg *m = NULL;
    (void)state;

    call_ok(e, "tk/h", "emit", "{\"n\":12}", NULL);
    assert_int_equal(hf_drv_history(e->drv, "tk/h", 9, 2, WAIT, &m), 0);
    assert_true(m->e.ok);
    assert_true(hf_arg(m->e.val, "recovered")->via.boolean);
    assert_int_equal(hf_arg(m->e.val, "seq")->via.u64, 12);
    assert_non_null(strstr(m->json, "\"events\":[{\"seq\":10,\"type\":\"e\""));
    assert_non_null(strstr(m->json, "{\"seq\":11,"));
    assert_int_equal(hf_arg(m->e.val, "events")->via.array.size, 2);
    hf_drv_msg_free(m);
    /* Only 8..12 are kept: asking from 0 is not a full recovery. */
    assert_int_equal(hf_drv_history(e->drv, "tk/h", 0, 0, WAIT, &m), 0);
    assert_false(hf_arg(m->e.val, "recovered")->via.boolean);
    assert_int_equal(hf_arg(m->e.val, "events")->via.array.size, 5);
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_history(e->drv, "tk/h", 12, 0, WAIT, &m), 0);
    assert_true(hf_arg(m->e.val, "recovered")->via.boolean);
    assert_int_equal(hf_arg(m->e.val, "events")->via.array.size, 0);
    hf_drv_msg_free(m);
    /* A client ahead of the log holds another history. */
    assert_int_equal(hf_drv_history(e->drv, "tk/h", 20, 0, WAIT, &m), 0);
    assert_false(hf_arg(m->e.val, "recovered")->via.boolean);
    hf_drv_msg_free(m);
    eng_free(e);
}

static void
test_events_reach_subscribers_once_per_sink_with_presence(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    int joins = 0, events = 0, signals = 0;
    (void)state;

    assert_int_equal(hf_drv_sub(e->drv, 7, "tk/room", -1, NULL,
                                "{\"name\":\"Kim\"}", "u7", WAIT, &m),
                     0);
    assert_true(m->e.ok);
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_sub(e->drv, 8, "tk/room", -1, NULL, NULL, "u8",
                                WAIT, &m),
                     0);
    hf_drv_msg_free(m);
    /* u8 subscribed without presence: a silent watcher (a TV board, a
     * dashboard) is counted but neither listed nor announced, so a room
     * with many watchers costs no join storm. */
    m = call(e, "tk/room", "presence", NULL);
    assert_true(strstr(m->json, "\"name\":\"Kim\"") != NULL);
    assert_null(strstr(m->json, "\"sub\":\"u8\""));
    assert_int_equal(m->e.val->via.array.size, 1);
    hf_drv_msg_free(m);
    m = call(e, "tk/room", "info", NULL);
    assert_int_equal(hf_arg(m->e.val, "subscribers")->via.u64, 2);
    hf_drv_msg_free(m);
    call_ok(e, "tk/room", "emit", "{\"n\":1}", NULL);
    {
        hf_env sig = {.op = HF_OP_SIGNAL, .to = {"tk/room", 7},
                      .method = {"typing", 6}, .sub = {"u7", 2}};
        hf_drv_add(e->drv, &sig, NULL, 0);
        hf_drv_flush(e->drv);
    }
    /* One sink, two subscriptions: each event arrives once (the gateway
     * fans out to its own connections). */
    while (hf_drv_recv(e->drv, 300, &m) == 0) {
        if (m->e.op == HF_OUT_PRESENCE &&
            hf_slice_is(m->e.action, "join"))
            joins++;
        if (m->e.op == HF_OUT_EVENT)
            events++;
        if (m->e.op == HF_OUT_SIGNAL) {
            signals++;
            assert_string_equal(m->type, "typing");
            assert_true(hf_slice_is(m->e.sub, "u7"));
        }
        hf_drv_msg_free(m);
    }
    assert_int_equal(joins, 1); /* Kim's; u8 is silent */
    assert_int_equal(events, 1);
    assert_int_equal(signals, 1);
    assert_int_equal(hf_drv_unsub(e->drv, 7, "tk/room", WAIT, &m), 0);
    assert_true(m->e.ok);
    assert_string_equal(m->json, "true");
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
    assert_int_equal(m->e.op, HF_OUT_PRESENCE);
    assert_true(hf_slice_is(m->e.action, "leave"));
    assert_true(strstr(m->json, "\"name\":\"Kim\"") != NULL);
    hf_drv_msg_free(m);
    m = call(e, "tk/room", "info", NULL);
    assert_int_equal(hf_arg(m->e.val, "subscribers")->via.u64, 1);
    hf_drv_msg_free(m);
    /* The silent watcher leaves silently too. */
    assert_int_equal(hf_drv_unsub(e->drv, 8, "tk/room", WAIT, &m), 0);
    assert_string_equal(m->json, "true");
    hf_drv_msg_free(m);
    assert_int_not_equal(hf_drv_recv(e->drv, 300, &m), 0);
    eng_free(e);
}

static int
fired_once(struct eng *e)
{
    hf_drv_msg *m = call(e, "tk/al", "get", "{\"k\":\"fired\"}");
    int ok = m->e.ok;
    hf_drv_msg_free(m);
    return ok;
}

static void
test_alarm_is_persisted_fired_and_retried_on_failure(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    (void)state;

    atomic_store(&alarm_attempts, 0);
    atomic_store(&alarm_fail_first, 2);
    assert_int_equal(hf_drv_sub(e->drv, 1, "tk/al", -1, NULL, NULL, "u",
                                WAIT, &m),
                     0);
    hf_drv_msg_free(m);
    call_ok(e, "tk/al", "set_alarm", "{\"in_ms\":30}", NULL);
    m = call(e, "tk/al", "get_alarm", NULL);
    assert_true(hf_arg(m->e.val, "value")->via.u64 > 0);
    hf_drv_msg_free(m);
    /* The alarm's event arrives after two failed attempts. */
    m = recv_next(e);
    assert_int_equal(m->e.op, HF_OUT_EVENT);
    assert_string_equal(m->type, "a");
    hf_drv_msg_free(m);
    assert_int_equal(atomic_load(&alarm_attempts), 3);
    assert_true(eventually(e, fired_once));
    call_ok(e, "tk/al", "get_alarm", NULL, "{\"value\":-1}");
    /* Once handled, it does not fire again. */
    usleep(300000);
    assert_int_equal(atomic_load(&alarm_attempts), 3);
    eng_free(e);
}

static void
test_alarm_due_while_down_fires_after_restart(void **state)
{
    struct eng *e = eng_new(NULL);
    (void)state;

    atomic_store(&alarm_attempts, 0);
    atomic_store(&alarm_fail_first, 0);
    call_ok(e, "tk/al", "set_alarm", "{\"in_ms\":400}", NULL);
    eng_stop(e);
    assert_int_equal(atomic_load(&alarm_attempts), 0);
    usleep(600000);
    eng_start(e);
    assert_true(eventually(e, fired_once));
    assert_int_equal(atomic_load(&alarm_attempts), 1);
    eng_free(e);
}

static void
idle_fast(struct eng *e)
{
    e->cfg.idle_ms = 50;
}

static int
no_actors(struct eng *e)
{
    (void)e;
    return HF_GET(actors_active) == 0;
}

static void
test_eviction_and_reactivation_keep_state(void **state)
{
    struct eng *e = eng_new(idle_fast);
    uint64_t ev = HF_GET(evictions), act = HF_GET(activations);
    (void)state;

    for (int i = 0; i < 3; i++)
        value_of(e, "tcount/ev", "incr");
    assert_true(eventually(e, no_actors));
    assert_true(HF_GET(evictions) > ev);
    assert_int_equal(value_of(e, "tcount/ev", "incr"), 4);
    assert_true(HF_GET(activations) >= act + 2);
    eng_free(e);
}

static void
test_subscribed_actor_is_not_evicted(void **state)
{
    struct eng *e = eng_new(idle_fast);
    hf_drv_msg *m = NULL;
    (void)state;

    assert_int_equal(hf_drv_sub(e->drv, 1, "tk/watched", -1, NULL, NULL,
                                "u", WAIT, &m),
                     0);
    hf_drv_msg_free(m);
    usleep(400000);
    assert_int_equal(HF_GET(actors_active), 1);
    eng_free(e);
}

static void
map1mb(struct eng *e)
{
    e->store.map_size_mb = 1;
}

static void
test_map_full_grows_and_keeps_every_write(void **state)
{
    struct eng *e = eng_new(map1mb);
    uint64_t grows = HF_LMDB_GET(map_grows);
    char args[64], k[32];
    (void)state;

    for (int i = 0; i < 300; i++) {
        snprintf(args, sizeof(args), "{\"k\":\"blob%d\",\"size\":16384}", i);
        call_ok(e, "tk/big", "blob", args, NULL);
    }
    /* With the log, the map grows when a checkpoint fills it: soon. */
    for (int i = 0; i < 1000 && HF_LMDB_GET(map_grows) == grows; i++)
        usleep(10000);
    assert_true(HF_LMDB_GET(map_grows) > grows);
    assert_true(hf_lmdb_map_size(&gate.inner) > (1u << 20));
    for (int i = 0; i < 300; i += 37) {
        snprintf(k, sizeof(k), "blob%d", i);
        assert_true(store_has(e, "tk/big", k));
    }
    eng_free(e);
}

static void
test_failed_commit_fails_outputs_resets_actor_and_keeps_serving(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    (void)state;

    assert_int_equal(value_of(e, "tcount/f", "incr"), 1);
    gate_close();
    for (int i = 1; i <= 3; i++) {
        hf_env env = {.op = HF_OP_CALL, .id = (uint64_t)i,
                      .to = {"tcount/f", 8}, .method = {"incr", 4}};
        hf_drv_add(e->drv, &env, NULL, 0);
        hf_drv_flush(e->drv);
        usleep(20000); /* separate passes, separate batches */
    }
    hf_lmdb_fail_next(&gate.inner, HF_ESTORAGE);
    gate_open();
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
        assert_false(m->e.ok);
        assert_string_equal(m->code, "storage_full");
        hf_drv_msg_free(m);
    }
    /* Reads keep working and the actor restarts from the durable state. */
    assert_int_equal(value_of(e, "tcount/f", "get"), 1);
    assert_int_equal(value_of(e, "tcount/f", "incr"), 2);
    eng_free(e);
}

static void
flag(void *arg, hf_wbatch *b)
{
    (void)b;
    atomic_store((atomic_int *)arg, 1);
}

static void
test_outbox_delivers_exactly_once_despite_redelivery(void **state)
{
    struct eng *e = eng_new(NULL);
    uint64_t delivered = HF_GET(outbox_delivered);
    char okey[HF_KEYBUF];
    hf_buf env = {0};
    size_t kl;
    (void)state;

    call_ok(e, "tk/sender", "send", "{\"to\":\"tcount/recv\"}", NULL);
    for (int i = 0; i < 500 && HF_GET(outbox_delivered) == delivered; i++)
        usleep(10000);
    assert_int_equal(value_of(e, "tcount/recv", "get"), 1);

    /* Replay the same outbox entry, as a node that crashed before it
     * learned of the delivery would: same sender, same id. */
    {
        hf_env req = {.op = HF_OP_CALL, .to = {"tcount/recv", 11},
                      .method = {"incr", 4}, .key = {"ob:tk/sender:1", 14},
                      .sub = {"tk/sender", 9}, .role = HF_ROLE_ACTOR};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &env, hf_buf_mpwrite);
        hf_env_pack_request(&pk, &req, (hf_slice){"\xc0", 1});
    }
    kl = hf_key_seq(okey, "tk/sender", 9, 1);
    eng_stop(e);
    {
        struct hf_lmdb_opts o = {.dir = e->dir, .nreaders = 4,
                                 .map_size = 64 << 20};
        hf_store st;
        hf_wbatch wb = {0};
        assert_int_equal(hf_lmdb_open(&st, &o), 0);
        hf_wbatch_put(&wb, HF_DB_OUTBOX, okey, kl, env.data, env.len);
        /* Commit synchronously through the store: a done callback that
         * flags completion. */
        static atomic_int done;
        atomic_store(&done, 0);
        st.ops->set_done(st.self, flag, &done);
        assert_int_equal(st.ops->submit(st.self, &wb), 0);
        while (!atomic_load(&done))
            usleep(1000);
        assert_int_equal(wb.status, 0);
        st.ops->close(st.self);
        hf_buf_free(&wb.ops);
    }
    delivered = HF_GET(outbox_delivered);
    eng_start(e); /* re-queues the outbox entry */
    for (int i = 0; i < 500 && HF_GET(outbox_delivered) == delivered; i++)
        usleep(10000);
    assert_int_equal(HF_GET(outbox_delivered), delivered + 1);
    assert_int_equal(value_of(e, "tcount/recv", "get"), 1);
    hf_buf_free(&env);
    eng_free(e);
}


static void
test_actor_send_is_seen_with_actor_role_and_sender_address(void **state)
{
    struct eng *e = eng_new(NULL);
    (void)state;
    call_ok(e, "tk/w", "whoami", NULL, "\"tester\"");
    call_ok(e, "tk/s2", "send", "{\"to\":\"tcount/r2\"}", NULL);
    for (int i = 0; i < 500 && value_of(e, "tcount/r2", "get") == 0; i++)
        usleep(10000);
    assert_int_equal(value_of(e, "tcount/r2", "get"), 1);
    eng_free(e);
}

static void
test_bad_requests_get_coded_errors(void **state)
{
    struct eng *e = eng_new(NULL);
    hf_drv_msg *m = NULL;
    (void)state;

    call_err(e, "tk/x", "no_such_method", NULL, "not_found");
    call_err(e, "nokind/x", "get", NULL, "not_found");
    call_err(e, "Bad/x", "get", NULL, "bad_request");
    call_err(e, "tk/bad name", "get", NULL, "bad_request");
    call_err(e, "tk/", "get", NULL, "bad_request");
    call_err(e, "tk/x", "admin_only", NULL, "forbidden");
    call_err(e, "tk/x", "put", "{\"k\":1}", "bad_request");
    m = call(e, "tk/x", "put", "{\"v\":\"1\"}");
    assert_false(m->e.ok);
    assert_true(strstr((const char *)m->e.msg.data, "'k'") != NULL);
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_call(e->drv, "tk/x", "admin_only", NULL, NULL,
                                 "svc", HF_ROLE_SERVICE, WAIT, &m),
                     0);
    assert_true(m->e.ok);
    hf_drv_msg_free(m);
    assert_int_equal(hf_drv_call(e->drv, "tk/x", "admin_only", NULL, NULL,
                                 "root", HF_ROLE_ADMIN, WAIT, &m),
                     0);
    assert_true(m->e.ok);
    hf_drv_msg_free(m);
    /* Garbage is refused whole. */
    assert_int_equal(hf_host_submit(e->host, (hf_sink *)e->drv, "\xc1", 1),
                     HF_EBADREQ);
    eng_free(e);
}

static void
mailbox3(struct eng *e)
{
    e->cfg.mailbox_max = 3;
}

static void
test_full_mailbox_answers_overloaded(void **state)
{
    struct eng *e = eng_new(mailbox3);
    hf_drv_msg *m = NULL;
    int ok = 0, over = 0;
    (void)state;

    for (int i = 1; i <= 50; i++) {
        hf_env env = {.op = HF_OP_CALL, .id = (uint64_t)i,
                      .to = {"tcount/busy", 11}, .method = {"incr", 4}};
        hf_drv_add(e->drv, &env, NULL, 0);
    }
    hf_drv_flush(e->drv);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(hf_drv_recv(e->drv, WAIT, &m), 0);
        if (m->e.ok)
            ok++;
        else if (strcmp(m->code, "overloaded") == 0)
            over++;
        hf_drv_msg_free(m);
    }
    assert_int_equal(ok + over, 50);
    assert_true(over > 0);
    assert_int_equal(value_of(e, "tcount/busy", "get"), ok);
    eng_free(e);
}

/* ---- crash safety: a child acknowledges writes, then is SIGKILLed ---- */

static int
crash_child(const char *dir, int fd)
{
    hf_config cfg;
    hf_store st;
    hf_host *h;
    hf_drv *d;
    uint64_t id = 0;
    char args[64];

    hf_config_defaults(&cfg);
    cfg.workers = 2;
    if (hf_lmdb_open(&st, &(struct hf_lmdb_opts){.dir = dir, .nreaders = 4,
                                                 .map_size = 64 << 20}) ||
        hf_host_open(&h, &(struct hf_host_opts){.cfg = &cfg,
                                                .store = st,
                                                .kinds = kinds,
                                                .nkinds = 2}) ||
        hf_drv_open(h, &d))
        return 1;
    for (;;) {
        /* 64 puts in flight at once, to 8 actors; report each ack. */
        for (int i = 0; i < 64; i++) {
            hf_buf a = {0};
            char to[16];
            hf_env env = {.op = HF_OP_CALL, .id = ++id,
                          .method = {"put", 3}};
            snprintf(to, sizeof(to), "tk/c%d", (int)(id % 8));
            env.to = (hf_slice){to, strlen(to)};
            snprintf(args, sizeof(args), "{\"k\":\"k%llu\",\"v\":\"v\"}",
                     (unsigned long long)id);
            hf_json_to_mp(args, strlen(args), &a);
            hf_drv_add(d, &env, a.data, a.len);
            hf_buf_free(&a);
        }
        hf_drv_flush(d);
        for (int got = 0; got < 64;) {
            hf_drv_msg *m;
            if (hf_drv_recv(d, 10000, &m) != 0)
                return 1;
            if (m->e.op == HF_OUT_REPLY && m->e.ok) {
                uint64_t ack = m->e.id;
                if (write(fd, &ack, sizeof(ack)) != sizeof(ack))
                    return 1;
            }
            got++;
            hf_drv_msg_free(m);
        }
    }
}

static void
test_sigkill_loses_no_acknowledged_write(void **state)
{
    struct eng *e = eng_new(NULL);
    int p[2];
    pid_t pid;
    uint64_t *acks = calloc(1000000, sizeof(*acks));
    size_t nacks = 0;
    char fdstr[16];
    (void)state;

    eng_stop(e); /* the child owns the directory */
    assert_int_equal(pipe(p), 0);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        snprintf(fdstr, sizeof(fdstr), "%d", p[1]);
        execl("/proc/self/exe", "test_core", "--crash-child", e->dir, fdstr,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    while (nacks < 3000) {
        ssize_t r = read(p[0], &acks[nacks], sizeof(uint64_t));
        if (r != sizeof(uint64_t))
            fail_msg("child stopped early (read %zd)", r);
        nacks++;
    }
    kill(pid, SIGKILL);
    /* Acks already in the pipe when it died count too. */
    for (;;) {
        ssize_t r = read(p[0], &acks[nacks], sizeof(uint64_t));
        if (r != sizeof(uint64_t))
            break;
        nacks++;
    }
    waitpid(pid, NULL, 0);
    close(p[0]);

    eng_start(e);
    for (size_t i = 0; i < nacks; i++) {
        char to[16], k[32];
        snprintf(to, sizeof(to), "tk/c%d", (int)(acks[i] % 8));
        snprintf(k, sizeof(k), "k%llu", (unsigned long long)acks[i]);
        if (!store_has(e, to, k))
            fail_msg("acknowledged write %s/%s lost", to, k);
    }
    print_message("crash test: %zu acknowledged writes all present\n",
                  nacks);
    free(acks);
    eng_free(e);
}

/* ---- small pure units ---- */

static void
test_addresses_follow_the_grammar(void **state)
{
    size_t kl;
    (void)state;
    assert_int_equal(hf_addr_check("device/ps5-03", 13, &kl), 0);
    assert_int_equal(kl, 6);
    assert_int_equal(hf_addr_check("a/b", 3, NULL), 0);
    assert_int_equal(hf_addr_check("user/kim@x.com:1", 16, NULL), 0);
    assert_int_equal(hf_addr_check("Device/x", 8, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("1dev/x", 6, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("dev", 3, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("dev/", 4, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("/x", 2, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("dev/a b", 7, NULL), HF_EBADREQ);
    assert_int_equal(hf_addr_check("dev/a/b", 7, NULL), HF_EBADREQ);
    {
        char big[200];
        memset(big, 'a', sizeof(big));
        memcpy(big, "k/", 2);
        assert_int_equal(hf_addr_check(big, 2 + 128, NULL), 0);
        assert_int_equal(hf_addr_check(big, 2 + 129, NULL), HF_EBADREQ);
        memset(big, 'a', 33);
        big[33] = '/';
        assert_int_equal(hf_addr_check(big, 35, NULL), HF_EBADREQ);
        assert_int_equal(hf_addr_check(big + 1, 34, NULL), 0);
    }
}

static void
test_error_names_and_http_statuses(void **state)
{
    (void)state;
    assert_string_equal(hf_err_name(HF_ECONFLICT), "conflict");
    assert_int_equal(hf_err_http(HF_ECONFLICT), 409);
    assert_int_equal(hf_err_http(HF_ESTORAGE), 507);
    assert_int_equal(hf_err_from_name("rate_limited"), HF_ERATELIMIT);
    assert_string_equal(hf_err_name(-999), "internal");
}

static void
test_config_flags_override_environment_and_defaults(void **state)
{
    hf_config c;
    hf_lmdb_config sc;
    hf_gateway_config gc;
    hf_optset sets[3] = {hf_config_set(&c), hf_lmdb_config_set(&sc),
                         hf_gateway_config_set(&gc)};
    char *argv[] = {"--workers", "3", "--durability=none", "--data", "/x",
                    "rest"};
    int argi = 0;
    FILE *devnull = fopen("/dev/null", "w");
    (void)state;

    hf_config_defaults(&c);
    hf_lmdb_config_defaults(&sc);
    hf_gateway_config_defaults(&gc);
    assert_string_equal(gc.listen, "127.0.0.1:8080");
    assert_string_equal(sc.data, "./data");
    assert_int_equal(c.log_retain, 10000);
    setenv("HOLDFAST_WORKERS", "5", 1);
    setenv("HOLDFAST_IDLE_MS", "1234", 1);
    assert_int_equal(hf_opts_env(sets, 3, devnull), 0);
    assert_int_equal(c.workers, 5);
    assert_int_equal(c.idle_ms, 1234);
    assert_int_equal(hf_opts_args(sets, 3, 6, argv, &argi, devnull), 0);
    assert_int_equal(argi, 5);
    assert_int_equal(c.workers, 3);
    assert_int_equal(sc.durability, HF_DURABLE_NONE);
    assert_string_equal(sc.data, "/x");
    {
        char *bad[] = {"--workers", "many"};
        argi = 0;
        assert_int_equal(hf_opts_args(sets, 3, 2, bad, &argi, devnull),
                         HF_EBADREQ);
        char *unknown[] = {"--frobnicate", "1"};
        argi = 0;
        assert_int_equal(hf_opts_args(sets, 3, 2, unknown, &argi, devnull),
                         HF_EBADREQ);
    }
    unsetenv("HOLDFAST_WORKERS");
    unsetenv("HOLDFAST_IDLE_MS");
    fclose(devnull);
}

/* HF_OPT_LIST: each use of a flag adds an item; the environment variable
 * gives several at once; an item that does not fit is refused. */
static void
test_config_list_option_repeats(void **state)
{
    struct {
        char list[32];
    } v;
    const struct hf_opt opt[] = {{.name = "hook", .type = HF_OPT_LIST,
                                  .off = 0, .size = sizeof(v.list),
                                  .def = "", .help = ""}};
    hf_optset set = {opt, 1, &v};
    char *argv[] = {"--hook", "a", "--hook=bb", "--hook", "c"};
    char *big[] = {"--hook", "0123456789012345678901234567"};
    const char *it;
    size_t len, pos = 0, n = 0;
    int argi = 0;
    FILE *devnull = fopen("/dev/null", "w");
    (void)state;

    hf_opts_defaults(&set, 1);
    assert_string_equal(v.list, "");
    assert_int_equal(hf_opt_list_next(v.list, &pos, &it, &len), 0);
    setenv("HOLDFAST_HOOK", "x y", 1);
    assert_int_equal(hf_opts_env(&set, 1, devnull), 0);
    unsetenv("HOLDFAST_HOOK");
    assert_int_equal(hf_opts_args(&set, 1, 5, argv, &argi, devnull), 0);
    assert_string_equal(v.list, "x\ny\na\nbb\nc");
    while (hf_opt_list_next(v.list, &pos, &it, &len))
        n++;
    assert_int_equal(n, 5);
    argi = 0;
    assert_int_equal(hf_opts_args(&set, 1, 2, big, &argi, devnull),
                     HF_EBADREQ);
    fclose(devnull);
}

static void
test_json_msgpack_round_trip(void **state)
{
    const char *j = "{\"a\":[1,-2,3.5,true,null,\"x\"],\"b\":{\"c\":\"d\"}}";
    hf_buf b = {0};
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    char *back;
    (void)state;

    assert_int_equal(hf_json_to_mp(j, strlen(j), &b), 0);
    msgpack_zone_init(&z, 256);
    assert_int_equal(msgpack_unpack(b.data, b.len, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    back = hf_mp_to_json(&o);
    assert_string_equal(back, j);
    free(back);
    msgpack_zone_destroy(&z);
    b.len = 0;
    assert_int_equal(hf_json_to_mp("{\"a\":", 5, &b), HF_EBADREQ);
    hf_buf_free(&b);
}

/* The display claims travel in a CALL envelope as "nm" and "pic": packed,
 * read from bytes, kept by hf_env_pos for the worker, and decoded. */
static void
test_envelope_carries_the_display_claims(void **state)
{
    hf_env req = {.op = HF_OP_CALL, .to = {"room/lobby", 10},
                  .method = {"send", 4}, .sub = {"kim", 3},
                  .role = HF_ROLE_USER, .name = {"Kim Minji", 9},
                  .picture = {"https://x/k.png", 15}};
    hf_buf b = {0};
    msgpack_packer pk;
    msgpack_zone z;
    msgpack_object o;
    hf_env got, back;
    hf_env_pos pos;
    size_t off = 0;
    int st;
    (void)state;

    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    assert_int_equal(hf_env_pack_request(&pk, &req, (hf_slice){"\x80", 1}), 0);
    assert_int_equal(hf_env_read(b.data, b.len, &off, NULL, &got, &st), 0);
    assert_int_equal(st, 0);
    assert_true(hf_slice_is(got.name, "Kim Minji"));
    assert_true(hf_slice_is(got.picture, "https://x/k.png"));
    hf_env_pos_save(&pos, &got, b.data);
    assert_int_equal(hf_env_pos_load(&pos, b.data, NULL, &back), 0);
    assert_true(hf_slice_is(back.name, "Kim Minji"));
    assert_true(hf_slice_is(back.picture, "https://x/k.png"));
    assert_true(hf_slice_is(back.sub, "kim"));
    msgpack_zone_init(&z, 256);
    off = 0;
    assert_int_equal(hf_unpack_next(b.data, b.len, &off, &z, &o), 0);
    assert_int_equal(hf_env_decode(&o, &got), 0);
    assert_true(hf_slice_is(got.name, "Kim Minji"));
    assert_true(hf_slice_is(got.picture, "https://x/k.png"));
    msgpack_zone_destroy(&z);
    /* Without claims, neither key is written. */
    b.len = 0;
    req.name = req.picture = (hf_slice){NULL, 0};
    assert_int_equal(hf_env_pack_request(&pk, &req, (hf_slice){0}), 0);
    assert_null(memmem(b.data, b.len, "\xa2nm", 3));
    assert_null(memmem(b.data, b.len, "\xa3pic", 4));
    hf_buf_free(&b);
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0) {
        hf_log_set_level(HF_LOG_ERROR);
        return crash_child(argv[2], atoi(argv[3]));
    }
    hf_log_set_level(HF_LOG_ERROR);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]); /* e.g. "*alarm*" */
    pthread_mutex_init(&gate.mu, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses_follow_the_grammar),
        cmocka_unit_test(test_error_names_and_http_statuses),
        cmocka_unit_test(test_config_flags_override_environment_and_defaults),
        cmocka_unit_test(test_config_list_option_repeats),
        cmocka_unit_test(test_json_msgpack_round_trip),
        cmocka_unit_test(test_envelope_carries_the_display_claims),
        cmocka_unit_test(test_counter_8_threads_100k_each_is_exact),
        cmocka_unit_test(test_per_sender_order_is_kept),
        cmocka_unit_test(test_reply_is_never_seen_before_its_commit_is_durable),
        cmocka_unit_test(test_read_only_call_waits_for_the_writes_it_saw),
        cmocka_unit_test(test_read_your_writes_across_handlers_before_commit),
        cmocka_unit_test(test_list_merges_uncommitted_writes_in_order),
        cmocka_unit_test(
            test_values_stay_valid_across_writes_and_writes_inside_list),
        cmocka_unit_test(test_failed_handler_rolls_back_everything),
        cmocka_unit_test(
            test_idempotent_repeat_returns_stored_reply_without_rerunning),
        cmocka_unit_test(test_event_log_since_and_retention),
        cmocka_unit_test(
            test_history_reads_after_a_seq_with_limit_and_retention),
        cmocka_unit_test(
            test_events_reach_subscribers_once_per_sink_with_presence),
        cmocka_unit_test(test_alarm_is_persisted_fired_and_retried_on_failure),
        cmocka_unit_test(test_alarm_due_while_down_fires_after_restart),
        cmocka_unit_test(test_eviction_and_reactivation_keep_state),
        cmocka_unit_test(test_subscribed_actor_is_not_evicted),
        cmocka_unit_test(test_map_full_grows_and_keeps_every_write),
        cmocka_unit_test(
            test_failed_commit_fails_outputs_resets_actor_and_keeps_serving),
        cmocka_unit_test(test_outbox_delivers_exactly_once_despite_redelivery),
        cmocka_unit_test(
            test_actor_send_is_seen_with_actor_role_and_sender_address),
        cmocka_unit_test(test_bad_requests_get_coded_errors),
        cmocka_unit_test(test_full_mailbox_answers_overloaded),
        cmocka_unit_test(test_sigkill_loses_no_acknowledged_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
