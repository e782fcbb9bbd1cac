/*
 * ops.c - processing one message: a call (with idempotency keys and the
 * built-in methods), a subscribe or unsubscribe (with the join and leave
 * hooks), a signal, a history read, an alarm firing.
 *
 * Design notes
 * ------------
 * Nothing here sends anything: a handler's effects are staged in the
 * context (ctx.c) and committed into the worker's current batch, and every
 * reply, subscription and history read becomes a held record that the
 * output gate (gate.c) acts on once the batch is released. Even an error
 * reply is held: it may reflect state that is not durable yet.
 *
 * Threads: everything here runs on the owning worker's thread only.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/host_int.h"
#include "core/log.h"
#include "core/metrics.h"

#define ALARM_BACKOFF_MAX (5 * 60 * 1000)

static const struct hf_method *
method_find(struct worker *w, const struct hf_kind *k, hf_slice m)
{
    if (k->lookup != NULL)
        return k->lookup(k, w->idx, m);
    for (size_t i = 0; i < k->nmethods; i++)
        if (hf_slice_is(m, k->methods[i].name))
            return &k->methods[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* processing one message                                              */

/* An error reply, held in the current batch (it may reflect state that
 * is not durable yet, e.g. a conflict with an uncommitted booking). */
static void
reply_err(struct worker *w, hf_sink *sink, const hf_env *e, int err,
          const char *msg)
{
    hf__rec_reply(&hf__cur(w)->held, sink, e->conn, e->id, err, msg,
                  msg ? strlen(msg) : 0);
}

/* An idempotency key belongs to its caller: the stored key is the
 * caller's subject, a NUL, then the client's key, so that bob reusing
 * kim's key runs his own call rather than getting her answer (and his
 * write silently not done). Callers without a subject share one scope:
 * with auth off every caller is the same anonymous principal. A token's
 * subject (at most 128 bytes) with the longest key (HF_IDEMKEY_MAX) fits
 * beside the longest address in a storage key; an actor caller's address
 * with the outbox's short keys too. 0 with *out in buf (IDEMKEY_SCOPED
 * bytes), or -1 when it does not fit. */
#define IDEMKEY_SCOPED (HF_KEY_MAX - HF_ADDR_MAX - 1)

static int
idem_key(char *buf, const char *caller, hf_slice key, hf_slice *out)
{
    size_t cl = strlen(caller);

    if (cl + 1 + key.len > IDEMKEY_SCOPED)
        return -1;
    memcpy(buf, caller, cl);
    buf[cl] = '\0';
    memcpy(buf + cl + 1, key.data, key.len);
    *out = (hf_slice){buf, cl + 1 + key.len};
    return 0;
}

static int
idem_lookup(struct worker *w, struct actor *a, hf_slice key, hf_slice *res)
{
    struct hf_ctx *c = &w->ctx;
    hf_slice v;
    int64_t at;

    if (hf__ctx_read(c, HF_DB_IDEM, key.data, key.len, &v) != 0 ||
        v.len < 10 ||
        hf_mp_check((const char *)v.data + 9, v.len - 9, HF_MP_DEPTH, NULL) !=
            v.len - 9)
        return 0; /* none, or not one stored reply: run the call */
    at = (int64_t)hf_get_be64(v.data);
    if (c->now - at > (int64_t)w->host->cfg.idem_window_s * 1000)
        return 0;
    res->data = (const char *)v.data + 9;
    res->len = v.len - 9;
    (void)a;
    return 1;
}

/* Deletes a delivered outbox entry: a system write outside any handler. */
static void
outbox_done(struct worker *w, struct actor *a, const struct msg *m)
{
    struct batch *b = hf__cur(w);
    HF_MUST(hf_wbatch_del(&b->wb, HF_DB_OUTBOX, m->data + m->alen + m->len,
                       m->auxlen));
    HF_INC(outbox_delivered);
    a->last_batch = b->wb.id;
}

static void
builtin_info(struct worker *w, struct actor *a, msgpack_packer *pk)
{
    (void)w;
    msgpack_pack_map(pk, 3);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, a->seq);
    hf_pack_cstr(pk, "epoch");
    hf_pack_cstr(pk, a->epoch);
    hf_pack_cstr(pk, "subscribers");
    msgpack_pack_uint32(pk, a->nsubs);
}

static void
builtin_presence(struct worker *w, struct actor *a, msgpack_packer *pk)
{
    uint32_t n = 0;

    (void)w;
    for (uint32_t i = 0; i < a->nsubs; i++)
        n += a->subs[i].announce != 0;
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < a->nsubs; i++)
        if (a->subs[i].announce)
            hf_pack_raw(pk,
                        (hf_slice){a->subs[i].who.data, a->subs[i].who.len});
}

static const struct {
    const char *name;
    void (*fn)(struct worker *, struct actor *, msgpack_packer *);
} builtins[] = {
    {"info", builtin_info},
    {"presence", builtin_presence},
};

static void
do_call(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
        const char *caller)
{
    struct hf_ctx *c = &w->ctx;
    const struct hf_method *meth;
    hf_slice stored, ikey = {0}, key = e->key;
    char ikbuf[IDEMKEY_SCOPED];
    int rv, outbox = m->type == M_OUTBOX;

    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (hf_slice_is(e->method, builtins[i].name)) {
            /* A public caller may read counts, not who is here. */
            if ((e->role & HF_ROLE_PUBLIC) && !hf_slice_is(e->method, "info")) {
                reply_err(w, m->sink, e, HF_EUNAUTH,
                          "sign in: presence is not public");
                return;
            }
            msgpack_packer pk;
            w->tmp.len = 0;
            msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
            builtins[i].fn(w, a, &pk);
            hf__rec_reply(&hf__cur(w)->held, m->sink, e->conn, e->id, 0,
                          w->tmp.data, w->tmp.len);
            return;
        }
    }
    if ((meth = method_find(w, a->kind, e->method)) == NULL) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "kind '%s' has no method '%.*s'", a->kind->name,
                 (int)(e->method.len > 64 ? 64 : e->method.len),
                 (const char *)e->method.data);
        reply_err(w, m->sink, e, rv = HF_ENOTFOUND, c->errmsg);
        goto outbox_drop;
    }
    if ((e->role & HF_ROLE_PUBLIC) && !meth->pub) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "sign in: method '%s' is not public", meth->name);
        reply_err(w, m->sink, e, rv = HF_EUNAUTH, c->errmsg);
        goto outbox_drop;
    }
    /* A tokenless public caller only reads, and all of them share one
     * (empty) subject: a key would only let anyone store replies forever
     * (IDEM rows are kept). Its keys are ignored. */
    if (e->role & HF_ROLE_PUBLIC)
        key.len = 0;
    if (meth->roles != HF_ROLE_ANY &&
        (e->role & (meth->roles | HF_ROLE_ADMIN)) == 0) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "method '%s' needs another role", meth->name);
        reply_err(w, m->sink, e, rv = HF_EFORBIDDEN, c->errmsg);
        goto outbox_drop;
    }
    hf__ctx_begin(w, a, caller, e->role);
    c->cname = e->name;
    c->cpic = e->picture;
    if (key.len > HF_IDEMKEY_MAX) {
        reply_err(w, m->sink, e, HF_EBADREQ, "idempotency key too long");
        return;
    }
    if (key.len > 0 && idem_key(ikbuf, caller, key, &ikey) != 0) {
        reply_err(w, m->sink, e, HF_EBADREQ, "idempotency key too long");
        return;
    }
    if (key.len > 0 && idem_lookup(w, a, ikey, &stored)) {
        HF_INC(idem_hits);
        hf__rec_reply(&hf__cur(w)->held, m->sink, e->conn, e->id, 0,
                      stored.data, stored.len);
        if (outbox)
            outbox_done(w, a, m);
        return;
    }
    c->meth = meth;
    rv = meth->fn(c, e->val ? e->val : hf__nil());
    if (rv == 0 && !c->has_result)
        hf_reply(c);
    /* A reply is spliced into an output batch as it is: it must be one
     * whole msgpack object, or it would break the envelopes after it
     * (a kind may splice stored values, and storage may hold anything). */
    if (rv == 0 && hf_mp_check(c->result.data, c->result.len, HF_MP_DEPTH,
                               NULL) != c->result.len) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "method '%s' made a reply that is not one value",
                 meth->name);
        rv = HF_EINTERNAL;
    }
    if (rv == 0) {
        if (key.len > 0) {
            char hdr[9];
            hf_put_be64(hdr, (uint64_t)c->now);
            hdr[8] = 1;
            c->tmp.len = 0;
            HF_MUST(hf_buf_append(&c->tmp, hdr, 9));
            HF_MUST(hf_buf_append(&c->tmp, c->result.data, c->result.len));
            hf__ctx_stage_write(c, HF_DB_IDEM, ikey.data, ikey.len,
                                c->tmp.data, c->tmp.len, 0);
        }
        hf__rec_reply(&c->tout, m->sink, e->conn, e->id, 0, c->result.data,
                      c->result.len);
        hf__ctx_commit(w);
        if (outbox)
            outbox_done(w, a, m);
        return;
    }
    if (rv > 0 || rv <= -HF_ECOUNT_)
        rv = HF_EINTERNAL;
    hf__ctx_abort(w);
    reply_err(w, m->sink, e, rv, c->errmsg[0] ? c->errmsg : NULL);
outbox_drop:
    if (outbox) {
        hf_warn("host", "%s: dropped a message from %.*s: %s", a->addr,
                (int)e->sub.len, (const char *)e->sub.data,
                c->errmsg[0] ? c->errmsg : hf_err_name(rv));
        outbox_done(w, a, m);
    }
}

/* Runs a join/leave hook as its own unit; its result is ignored. */
static void
run_hook(struct worker *w, struct actor *a, const char *caller,
         unsigned role, const msgpack_object *presence, int join)
{
    int rv;

    if ((join && a->kind->join == NULL) || (!join && a->kind->leave == NULL))
        return;
    hf__ctx_begin(w, a, caller, role);
    rv = join ? a->kind->join(&w->ctx, presence ? presence : hf__nil())
              : a->kind->leave(&w->ctx);
    if (rv == 0)
        hf__ctx_commit(w);
    else
        hf__ctx_abort(w);
}

/* Fields of a presence "who" that only the server sets. */
static int
is_reserved_who(const msgpack_object *k)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == 3 &&
           memcmp(k->via.str.ptr, "sub", 3) == 0;
}

static void
do_sub(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
       const char *caller)
{
    struct r_sub rs = {.a = a, .sink = m->sink, .conn = e->conn, .id = e->id,
                       .since = e->since, .has_since = e->has_since,
                       .epoch_ok = 1};
    msgpack_packer pk;
    const msgpack_object *pres = e->val;
    uint32_t extra = 0;

    if (m->sink == NULL)
        return;
    run_hook(w, a, caller, e->role, pres, 1);
    rs.seq_at = a->seq;
    if (e->epoch.len > 0 && a->seq > 0 && !hf_slice_is(e->epoch, a->epoch))
        rs.epoch_ok = 0;
    /* who = {"sub": caller, ...presence fields}. "sub" is the server's:
     * a client's own "sub" field is dropped, or it could pose as another
     * subject (a duplicate key reads as either value, parser by parser). */
    w->tmp.len = 0;
    msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
    rs.announce = pres != NULL && pres->type != MSGPACK_OBJECT_NIL;
    if (pres && pres->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < pres->via.map.size; i++)
            extra += !is_reserved_who(&pres->via.map.ptr[i].key);
    msgpack_pack_map(&pk, 1 + extra);
    hf_pack_cstr(&pk, "sub");
    hf_pack_cstr(&pk, caller);
    for (uint32_t i = 0; extra > 0 && i < pres->via.map.size; i++) {
        if (is_reserved_who(&pres->via.map.ptr[i].key))
            continue;
        msgpack_pack_object(&pk, pres->via.map.ptr[i].key);
        msgpack_pack_object(&pk, pres->via.map.ptr[i].val);
    }
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_SUB, &rs, sizeof(rs), w->tmp.data,
            w->tmp.len, NULL, 0, NULL, 0);
}

static void
do_unsub(struct worker *w, struct actor *a, struct msg *m, const hf_env *e,
         const char *caller)
{
    struct r_unsub ru = {.a = a, .sink = m->sink, .conn = e->conn,
                         .id = e->id};
    if (m->sink == NULL)
        return;
    run_hook(w, a, caller, e->role, NULL, 0);
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_UNSUB, &ru, sizeof(ru), NULL, 0, NULL, 0,
            NULL, 0);
}

static void
do_history(struct worker *w, struct actor *a, struct msg *m, const hf_env *e)
{
    struct r_history rh = {.a = a, .sink = m->sink, .conn = e->conn,
                           .id = e->id, .seq_at = a->seq, .limit = 100};

    if (m->sink == NULL)
        return;
    if (e->has_since && e->since > 0)
        rh.after = (uint64_t)e->since;
    if (e->val && e->val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        rh.limit = e->val->via.u64 == 0    ? 1
                   : e->val->via.u64 > 1000 ? 1000
                                           : (uint32_t)e->val->via.u64;
    hf_sink_ref(m->sink);
    hf__rec(&hf__cur(w)->held, R_HISTORY, &rh, sizeof(rh), NULL, 0, NULL, 0,
            NULL, 0);
}

static void
do_signal(struct worker *w, struct actor *a, const hf_env *e,
          const char *caller)
{
    msgpack_packer pk;
    hf_buf data = {0};

    if (e->val)
        msgpack_packer_init(&pk, &data, hf_buf_mpwrite),
            msgpack_pack_object(&pk, *e->val);
    w->tmp.len = 0;
    msgpack_packer_init(&pk, &w->tmp, hf_buf_mpwrite);
    hf_env_pack_signal(&pk, (hf_slice){a->addr, a->alen}, e->method,
                       (hf_slice){caller, strlen(caller)},
                       (hf_slice){data.data, data.len});
    hf__rec_fanout(&hf__cur(w)->held, a, w->tmp.data, w->tmp.len);
    hf_buf_free(&data);
}

static void
do_alarm(struct worker *w, struct actor *a, struct msg *m)
{
    const char *name = m->data + m->alen;
    struct alarm *al;
    char nbuf[72];
    int rv = 0;

    if (m->auxlen >= sizeof(nbuf))
        return;
    memcpy(nbuf, name, m->auxlen);
    nbuf[m->auxlen] = '\0';
    for (al = a->alarms; al != NULL; al = al->next)
        if (strcmp(al->name, nbuf) == 0)
            break;
    if (al == NULL || al->at != m->at)
        return; /* moved or cancelled since it was queued */
    hf__ctx_begin(w, a, a->addr, 0);
    hf_alarm_cancel(&w->ctx, nbuf);
    if (a->kind->alarm)
        rv = a->kind->alarm(&w->ctx, nbuf);
    HF_INC(alarms_fired);
    if (rv == 0) {
        hf__ctx_commit(w);
        return;
    }
    hf__ctx_abort(w);
    HF_INC(alarms_failed);
    {
        int64_t old = al->at, delay;
        uint32_t shift = al->attempt < 20 ? al->attempt : 20;
        delay = (int64_t)w->host->cfg.alarm_retry_ms << shift;
        if (delay > ALARM_BACKOFF_MAX)
            delay = ALARM_BACKOFF_MAX;
        al->attempt++;
        al->at = hf_now_ms() + delay;
        hf__alarm_write(w, a, al, old);
        hf__batch_touch(hf__cur(w), a);
        a->last_batch = hf__cur(w)->wb.id;
        hf_warn("host", "%s: alarm '%s' failed (%s), retry %u in %lld ms",
                a->addr, nbuf, w->ctx.errmsg[0] ? w->ctx.errmsg : "error",
                al->attempt, (long long)delay);
    }
}

/* The caller's subject as a C string: at most size - 1 bytes, cut at a
 * NUL (what snprintf's "%.*s" makes of it). */
static void
caller_str(char *out, size_t size, hf_slice sub)
{
    size_t n = sub.len < size - 1 ? sub.len : size - 1;
    const char *nul;

    if (n > 0 && (nul = memchr(sub.data, '\0', n)) != NULL)
        n = (size_t)(nul - (const char *)sub.data);
    if (n > 0)
        memcpy(out, sub.data, n);
    out[n] = '\0';
}

/* The envelope of a queued request or outbox message, with its value
 * unpacked into zone (if not NULL). A request carries what hf_host_submit
 * read of it (aux: an hf_env_pos), so only an outbox message is read
 * again. Returns 0, or HF_EBADREQ with e holding what could be read. */
int
hf__msg_env(const struct msg *m, msgpack_zone *zone, hf_env *e)
{
    const char *env = m->data + m->alen;
    size_t off = 0;
    int st;

    if (m->type == M_REQ && m->auxlen == sizeof(hf_env_pos)) {
        hf_env_pos pos;
        memcpy(&pos, env + m->len, sizeof(pos));
        return hf_env_pos_load(&pos, env, zone, e);
    }
    if (hf_env_read(env, m->len, &off, zone, e, &st) != 0) {
        memset(e, 0, sizeof(*e));
        return HF_EBADREQ;
    }
    return st;
}

void
hf__process(struct worker *w, struct actor *a, struct msg *m)
{
    hf_env e;
    char caller[256];

    if (m->type == M_ALARM) {
        do_alarm(w, a, m);
        goto done;
    }
    if (hf__msg_env(m, &w->zone, &e) != 0) {
        /* e holds what could be read, the connection and request id
         * included, so the caller hears why (its pending entry would
         * otherwise wait forever). */
        if (e.op != HF_OP_SIGNAL)
            reply_err(w, m->sink, &e, HF_EBADREQ,
                      "malformed arguments (nested too deep?)");
        goto done;
    }
    caller_str(caller, sizeof(caller), e.sub);
    switch (e.op) {
    case HF_OP_CALL:
        do_call(w, a, m, &e, caller);
        break;
    case HF_OP_SUB:
        do_sub(w, a, m, &e, caller);
        break;
    case HF_OP_UNSUB:
        do_unsub(w, a, m, &e, caller);
        break;
    case HF_OP_SIGNAL:
        do_signal(w, a, &e, caller);
        break;
    case HF_OP_HISTORY:
        do_history(w, a, m, &e);
        break;
    default:
        reply_err(w, m->sink, &e, HF_EBADREQ, "unknown op");
    }
done:
    msgpack_zone_clear(&w->zone);
    a->last_batch = hf__cur(w)->wb.id;
}
