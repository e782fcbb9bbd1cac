/*
 * relay.c - what the host sends back: replies matched to their requests,
 * events and signals fanned out to local subscribers.
 *
 * Design notes
 * ------------
 * Fan-out. The host sends an event once per gateway that has subscribers
 * of the actor; the gateway writes it to each local subscriber, encoding
 * it once per format. A connection joins an actor's local subscriber list
 * when the host's reply to its "sub" arrives: that reply precedes every
 * event the subscription should see on the same ordered stream, and the
 * backlog events (addressed to the connection alone) follow it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"
#include "core/vec.h"

#include "transport/gw_int.h"

static struct topic *
topic_find(struct gw *gw, const char *addr, size_t alen, uint64_t h)
{
    for (hf_hnode *n = hf_htab_find(&gw->topics, h); n; n = hf_htab_next(n)) {
        struct topic *t = hf_htab_entry(n, struct topic, hn);
        if (t->alen == alen && memcmp(t->addr, addr, alen) == 0)
            return t;
    }
    return NULL;
}

static void
topic_add(struct gw *gw, const char *addr, size_t alen, struct conn *c)
{
    uint64_t h = hf_addr_hash(addr, alen);
    struct topic *t = topic_find(gw, addr, alen, h);

    if (t == NULL) {
        t = hf_xcalloc(1, sizeof(*t) + alen + 1);
        t->alen = alen;
        memcpy(t->addr, addr, alen);
        hf_htab_insert(&gw->topics, &t->hn, h);
    }
    for (uint32_t i = 0; i < t->n; i++)
        if (t->conns[i] == c)
            return;
    HF_VEC_PUSH(t->conns, t->n, t->cap, 4, c);
}

void
gw_topic_del(struct gw *gw, const char *addr, size_t alen, struct conn *c)
{
    struct topic *t = topic_find(gw, addr, alen, hf_addr_hash(addr, alen));

    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->conns[i] == c) {
            t->conns[i] = t->conns[--t->n];
            break;
        }
    if (t->n > 0)
        return;
    hf_htab_remove(&gw->topics, &t->hn);
    free(t->conns);
    free(t);
}

struct pend *
gw_pend_add(struct gw *gw, struct conn *c, int op, hf_slice id, hf_slice addr)
{
    struct pend *p = gw->pfree;

    if (p != NULL)
        gw->pfree = p->free;
    else
        p = hf_xcalloc(1, sizeof(*p));
    p->rid = ++gw->next_rid;
    p->conn = c->id;
    p->op = (uint8_t)op;
    p->idlen = (uint8_t)id.len;
    if (id.len)
        memcpy(p->id, id.data, id.len);
    p->alen = (uint16_t)addr.len;
    if (addr.len)
        memcpy(p->addr, addr.data, addr.len);
    p->addr[addr.len] = '\0';
    hf_htab_insert(&gw->pends, &p->hn, p->rid);
    c->npend++;
    atomic_fetch_add(&gw->owed, 1);
    return p;
}

static struct pend *
pend_take(struct gw *gw, uint64_t rid)
{
    hf_hnode *n = hf_htab_find(&gw->pends, rid); /* rids are unique */
    struct pend *p;

    if (n == NULL)
        return NULL;
    p = hf_htab_entry(n, struct pend, hn);
    hf_htab_remove(&gw->pends, &p->hn);
    atomic_fetch_sub(&gw->owed, 1);
    return p;
}

static void
pend_free(struct gw *gw, struct pend *p)
{
    p->free = gw->pfree;
    gw->pfree = p;
}

static void
on_reply(struct gw *gw, const hf_env *e)
{
    struct pend *p = pend_take(gw, e->id);
    struct conn *c;

    if (p == NULL)
        return;
    c = gw_conn_find(gw, p->conn);
    if (c == NULL) {
        pend_free(gw, p);
        return;
    }
    c->npend--;
    if (c->kind == C_HTTP) {
        (void)gw_http_reply(c, p, e); /* a close is asked of lws */
        pend_free(gw, p);
        return;
    }
    if (p->op == HF_OP_SUB) {
        hf_slice a = {p->addr, p->alen};
        if (e->ok && gw_sub_find(c, a) != NULL)
            topic_add(gw, p->addr, p->alen, c);
        else if (!e->ok)
            gw_sub_forget(gw, c, a);
    }
    if (!c->close_code) {
        hf_slice id = {p->id, p->idlen};
        hf_buf *b = hf_outq_tail(&c->out);
        if (e->ok) {
            hf_wire_reply_ok(b, c->fmt, id, e->val);
        } else {
            char code[32];
            snprintf(code, sizeof(code), "%.*s", (int)e->code.len,
                     (const char *)e->code.data);
            hf_wire_reply_err(b, c->fmt, id, hf_err_from_name(code),
                              e->msg.data, e->msg.len);
        }
        gw_queued(c);
    }
    pend_free(gw, p);
}

/* Encodes an output envelope for format fmt into gw->enc[fmt] (once). */
static const hf_buf *
encode_out(struct gw *gw, const hf_env *e, const msgpack_object *obj, int fmt,
           int *done)
{
    hf_buf *b = &gw->enc[fmt];
    const msgpack_object *at;

    if (done[fmt])
        return b;
    done[fmt] = 1;
    b->len = 0;
    switch (e->op) {
    case HF_OUT_EVENT:
        at = hf_arg(obj, "at");
        hf_wire_event(b, fmt, e->to, e->seq, e->method, e->val,
                      at && at->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                          ? (int64_t)at->via.u64
                          : 0);
        break;
    case HF_OUT_SIGNAL:
        hf_wire_signal(b, fmt, e->to, e->method, e->sub, e->val);
        break;
    case HF_OUT_PRESENCE:
        hf_wire_presence(b, fmt, e->to, e->action, e->val);
        break;
    }
    return b;
}

static void
on_output(struct gw *gw, const hf_env *e, const msgpack_object *obj)
{
    int done[2] = {0, 0};

    if (e->op == HF_OUT_REPLY) {
        on_reply(gw, e);
        return;
    }
    if (e->op == HF_OUT_EVENT && e->has_conn) { /* backlog: this conn */
        struct conn *c = gw_conn_find(gw, e->conn);
        if (c != NULL && c->kind == C_WS)
            gw_append_encoded(c, encode_out(gw, e, obj, c->fmt, done));
        return;
    }
    {
        struct topic *t = topic_find(gw, e->to.data, e->to.len,
                                     hf_addr_hash(e->to.data, e->to.len));
        for (uint32_t i = 0; t && i < t->n; i++)
            gw_append_encoded(t->conns[i],
                              encode_out(gw, e, obj, t->conns[i]->fmt, done));
    }
}

void
gw_on_batch(struct gw *gw, nng_msg *m)
{
    const char *buf = nng_msg_body(m);
    size_t len = nng_msg_len(m), off = 0;
    msgpack_object obj;
    hf_env e;

    /* One envelope that cannot be read is stepped over, so the others of
     * the batch (replies and events for other connections) still go out;
     * only bytes that cannot even be framed end the batch. */
    while (off < len) {
        size_t at = off;
        if (hf_unpack_next(buf, len, &off, &gw->zone, &obj) == 0) {
            if (hf_env_decode(&obj, &e) == 0)
                on_output(gw, &e, &obj);
        } else {
            const unsigned char *p = (const unsigned char *)buf + at;
            if (hf_mp_skip(&p, (const unsigned char *)buf + len) != 0) {
                hf_warn("gateway", "gateway %d: a host batch ends in %zu "
                                   "unreadable bytes",
                        gw->idx, len - at);
                break;
            }
            hf_warn("gateway", "gateway %d: skipped an unreadable output",
                    gw->idx);
            off = (size_t)(p - (const unsigned char *)buf);
        }
        msgpack_zone_clear(&gw->zone);
    }
    nng_msg_free(m);
}

/* nng thread: queue the batch and wake the gateway thread. */
void
gw_from_host(void *arg, nng_msg *m)
{
    struct gw *gw = arg;

    pthread_mutex_lock(&gw->mu);
    HF_VEC_PUSH(gw->inbox, gw->ninbox, gw->capinbox, 64, m);
    pthread_mutex_unlock(&gw->mu);
    lws_cancel_service(gw->ctx);
}
