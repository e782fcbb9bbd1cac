/*
 * driver.c - see driver.h.
 *
 * Design note: the sink side (deliver, on worker threads) only links the
 * batch onto a locked list; all decoding happens on the driver's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "client/driver.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "core/oom.h"

struct node {
    struct node *next;
    hf_buf b;
};

struct hf_drv {
    hf_sink sink; /* first: deliver/release get it back as the driver */
    hf_host *host;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct node *head, *tail; /* mu */
    hf_buf req;
    hf_drv_msg *qhead, *qtail;
    uint64_t nextid;
};

static void
deliver(hf_sink *s, hf_buf *out)
{
    hf_drv *d = (hf_drv *)s;
    struct node *n = hf_xmalloc(sizeof(*n));

    n->next = NULL;
    n->b = hf_buf_take(out);
    pthread_mutex_lock(&d->mu);
    if (d->tail)
        d->tail->next = n;
    else
        d->head = n;
    d->tail = n;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void
release(hf_sink *s)
{
    hf_drv *d = (hf_drv *)s;
    while (d->head) {
        struct node *n = d->head;
        d->head = n->next;
        hf_buf_free(&n->b);
        free(n);
    }
    while (d->qhead) {
        hf_drv_msg *m = d->qhead;
        d->qhead = m->next;
        hf_drv_msg_free(m);
    }
    hf_buf_free(&d->req);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int
hf_drv_open(hf_host *h, hf_drv **out)
{
    hf_drv *d = hf_xcalloc(1, sizeof(*d));
    hf_sink_init(&d->sink, deliver, release);
    d->host = h;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    *out = d;
    return 0;
}

void
hf_drv_close(hf_drv *d)
{
    if (d != NULL)
        hf_sink_unref(&d->sink);
}

int
hf_drv_add(hf_drv *d, const hf_env *e, const void *args, size_t alen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->req, hf_buf_mpwrite);
    return hf_env_pack_request(&pk, e, (hf_slice){args, args ? alen : 0});
}

int
hf_drv_flush(hf_drv *d)
{
    int rv;
    if (d->req.len == 0)
        return 0;
    rv = hf_host_submit(d->host, &d->sink, d->req.data, d->req.len);
    d->req.len = 0;
    return rv;
}

/* Takes the delivered batches, waiting up to timeout_ms for the first. */
static struct node *
take(hf_drv *d, int timeout_ms)
{
    struct node *n;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&d->mu);
    while (d->head == NULL && timeout_ms > 0)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
            break;
    n = d->head;
    d->head = d->tail = NULL;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int
hf_drv_poll(hf_drv *d, int timeout_ms,
            void (*fn)(void *arg, const hf_env *e), void *arg)
{
    struct node *n = take(d, timeout_ms);
    msgpack_zone zone;
    int count = 0;

    msgpack_zone_init(&zone, 8192);
    while (n != NULL) {
        struct node *next = n->next;
        size_t off = 0;
        hf_env e;
        int st;

        while (off < n->b.len && hf_env_read(n->b.data, n->b.len, &off,
                                             &zone, &e, &st) == 0) {
            if (st == 0) {
                fn(arg, &e);
                count++;
            }
            msgpack_zone_clear(&zone);
        }
        hf_buf_free(&n->b);
        free(n);
        n = next;
    }
    msgpack_zone_destroy(&zone);
    return count;
}

static char *
slice_dup(hf_slice s)
{
    return s.data ? strndup(s.data, s.len) : NULL;
}

/* Decodes one batch into messages on the driver's queue. */
static void
enqueue(hf_drv *d, hf_buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        size_t start = off, len;
        hf_drv_msg *m;
        hf_env e;
        int st;

        if (hf_env_read(b->data, b->len, &off, NULL, &e, &st) != 0)
            return;
        if (st != 0)
            continue;
        len = off - start;
        m = hf_xcalloc(1, sizeof(*m) + len);
        memcpy(m->data, b->data + start, len);
        m->len = len;
        msgpack_zone_init(&m->zone, 1024);
        start = 0;
        if (hf_env_read(m->data, len, &start, &m->zone, &m->e, &st) != 0 ||
            st != 0) {
            hf_drv_msg_free(m);
            continue;
        }
        m->json = m->e.val ? hf_mp_to_json(m->e.val) : strdup("null");
        if (m->e.code.len)
            m->code = slice_dup(m->e.code);
        if (m->e.op != HF_OUT_REPLY) {
            m->from = slice_dup(m->e.to);
            m->type = slice_dup(m->e.method);
        }
        if (d->qtail)
            d->qtail->next = m;
        else
            d->qhead = m;
        d->qtail = m;
    }
}

static void
fill(hf_drv *d, int timeout_ms)
{
    struct node *n = take(d, timeout_ms);
    while (n != NULL) {
        struct node *next = n->next;
        enqueue(d, &n->b);
        hf_buf_free(&n->b);
        free(n);
        n = next;
    }
}

static int
remaining_ms(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 +
              (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

static struct timespec
deadline_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

int
hf_drv_recv(hf_drv *d, int timeout_ms, hf_drv_msg **out)
{
    struct timespec dl = deadline_in(timeout_ms);
    hf_drv_msg *m;

    while (d->qhead == NULL) {
        int left = remaining_ms(&dl);
        fill(d, left);
        if (d->qhead == NULL && left == 0)
            return HF_ETIMEOUT;
    }
    m = d->qhead;
    d->qhead = m->next;
    if (d->qhead == NULL)
        d->qtail = NULL;
    m->next = NULL;
    *out = m;
    return 0;
}

void
hf_drv_msg_free(hf_drv_msg *m)
{
    if (m == NULL)
        return;
    free(m->json);
    free(m->code);
    free(m->from);
    free(m->type);
    msgpack_zone_destroy(&m->zone);
    free(m);
}

/* Waits for the reply with this id, leaving everything else queued. */
static int
wait_reply(hf_drv *d, uint64_t conn, uint64_t id, int timeout_ms,
           hf_drv_msg **out)
{
    struct timespec dl = deadline_in(timeout_ms);

    for (;;) {
        hf_drv_msg **pp = &d->qhead, *prev = NULL;
        for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
            hf_drv_msg *m = *pp;
            if (m->e.op == HF_OUT_REPLY && m->e.id == id &&
                m->e.conn == conn) {
                *pp = m->next;
                if (d->qtail == m)
                    d->qtail = prev;
                m->next = NULL;
                *out = m;
                return 0;
            }
        }
        int left = remaining_ms(&dl);
        if (left == 0)
            return HF_ETIMEOUT;
        fill(d, left);
    }
}

int
hf_drv_call_mp(hf_drv *d, const char *to, const char *method,
               const void *args, size_t alen, const char *key,
               const char *sub, unsigned role, int timeout_ms,
               hf_drv_msg **reply)
{
    hf_env e = {.op = HF_OP_CALL, .id = ++d->nextid, .has_conn = 1};
    int rv;

    e.to = (hf_slice){to, strlen(to)};
    e.method = (hf_slice){method, strlen(method)};
    if (key)
        e.key = (hf_slice){key, strlen(key)};
    if (sub)
        e.sub = (hf_slice){sub, strlen(sub)};
    e.role = role;
    hf_drv_add(d, &e, args, alen);
    if ((rv = hf_drv_flush(d)) != 0)
        return rv;
    return wait_reply(d, 0, e.id, timeout_ms, reply);
}

int
hf_drv_call(hf_drv *d, const char *to, const char *method,
            const char *args_json, const char *key, const char *sub,
            unsigned role, int timeout_ms, hf_drv_msg **reply)
{
    hf_buf args = {0};
    int rv;

    if (args_json &&
        hf_json_to_mp(args_json, strlen(args_json), &args) != 0)
        return HF_EBADREQ;
    rv = hf_drv_call_mp(d, to, method, args.data, args.len, key, sub, role,
                        timeout_ms, reply);
    hf_buf_free(&args);
    return rv;
}

int
hf_drv_sub(hf_drv *d, uint64_t conn, const char *to, int64_t since,
           const char *epoch, const char *presence_json, const char *sub,
           int timeout_ms, hf_drv_msg **reply)
{
    hf_env e = {.op = HF_OP_SUB, .id = ++d->nextid, .conn = conn,
                .has_conn = 1};
    hf_buf pres = {0};
    int rv;

    if (presence_json &&
        hf_json_to_mp(presence_json, strlen(presence_json), &pres) != 0)
        return HF_EBADREQ;
    e.to = (hf_slice){to, strlen(to)};
    if (since >= 0) {
        e.since = since;
        e.has_since = 1;
    }
    if (epoch)
        e.epoch = (hf_slice){epoch, strlen(epoch)};
    if (sub)
        e.sub = (hf_slice){sub, strlen(sub)};
    hf_drv_add(d, &e, pres.data, pres.len);
    hf_buf_free(&pres);
    if ((rv = hf_drv_flush(d)) != 0)
        return rv;
    return wait_reply(d, conn, e.id, timeout_ms, reply);
}

int
hf_drv_unsub(hf_drv *d, uint64_t conn, const char *to, int timeout_ms,
             hf_drv_msg **reply)
{
    hf_env e = {.op = HF_OP_UNSUB, .id = ++d->nextid, .conn = conn,
                .has_conn = 1};
    int rv;

    e.to = (hf_slice){to, strlen(to)};
    hf_drv_add(d, &e, NULL, 0);
    if ((rv = hf_drv_flush(d)) != 0)
        return rv;
    return wait_reply(d, conn, e.id, timeout_ms, reply);
}

int
hf_drv_history(hf_drv *d, const char *to, uint64_t after, unsigned limit,
               int timeout_ms, hf_drv_msg **reply)
{
    hf_env e = {.op = HF_OP_HISTORY, .id = ++d->nextid, .has_conn = 1,
                .since = (int64_t)after, .has_since = 1};
    char lim[9];
    msgpack_packer pk;
    hf_buf b = {.data = lim, .cap = sizeof(lim)};
    int rv;

    e.to = (hf_slice){to, strlen(to)};
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    msgpack_pack_uint32(&pk, limit);
    hf_drv_add(d, &e, limit ? b.data : NULL, limit ? b.len : 0);
    if ((rv = hf_drv_flush(d)) != 0)
        return rv;
    return wait_reply(d, 0, e.id, timeout_ms, reply);
}
