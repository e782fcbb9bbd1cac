/*
 * session.c - what a client asks for: auth, ACL, rate, subscriptions, and
 * the envelopes forwarded to the host.
 *
 * Design notes
 * ------------
 * Requests. A client frame is decoded (transport/wire.c), checked (auth,
 * ACL, address, rate), and each message becomes a host envelope with a
 * gateway-wide request id ("id") and the connection id ("c"). The client's
 * own id, which may be any JSON scalar, waits in the pending table under
 * the request id until the reply comes back. All envelopes produced while
 * handling one lws callback are appended to the nng sender at once; the
 * sender coalesces further while a send is in flight (transport/nlink.c).
 *
 * Subscriptions. A connection's subscriptions are a hash table of its own
 * (struct csub), capped by --subs-max. They follow its principal: an
 * "auth" that changes who it is ends those the new principal may not
 * hold, and the token's expiry (checked once a second by the heartbeat
 * and before every message) ends them all, each with an "unsubscribed"
 * message and a presence leave sent to the host.
 *
 * Without a token. A connection that has not authenticated runs as the
 * gateway's public principal (access.c): it reaches the --public
 * addresses only, may subscribe there without presence and may not
 * signal; the host keeps its calls to the methods kinds mark pub.
 */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"

#include "transport/gw_int.h"

/* ------------------------------------------------------------------ */
/* requests to the host                                                */

void
gw_send_req(struct gw *gw)
{
    if (gw->req.len == 0)
        return;
    if (gw->direct) /* a malformed batch is logged there */
        (void)hf_nhost_submit(gw->direct, gw->idx, gw->req.data, gw->req.len);
    else if (hf_nsend_append(&gw->send, gw->req.data, gw->req.len) != 0)
        hf_warn("gateway", "gateway %d: cannot reach the host", gw->idx);
    gw->req.len = 0;
}

const hf_principal *
gw_principal(const struct conn *c)
{
    return c->authed ? c->who : &c->gw->g->pub;
}

struct csub *
gw_sub_find(struct conn *c, hf_slice addr)
{
    hf_hnode *n = hf_htab_find(&c->subs, hf_addr_hash(addr.data, addr.len));

    for (; n != NULL; n = hf_htab_next(n)) {
        struct csub *cs = hf_htab_entry(n, struct csub, hn);
        if (cs->alen == addr.len && memcmp(cs->addr, addr.data, addr.len) == 0)
            return cs;
    }
    return NULL;
}

/* Records a subscription being made. 0, or HF_ETOOLARGE when the
 * connection already holds --subs-max others. */
static int
sub_note(struct conn *c, hf_slice addr)
{
    struct csub *cs;

    if (gw_sub_find(c, addr) != NULL)
        return 0;
    if (hf_htab_count(&c->subs) >= (uint32_t)c->gw->g->cfg.subs_max)
        return HF_ETOOLARGE;
    cs = hf_xcalloc(1, sizeof(*cs) + addr.len + 1);
    cs->alen = addr.len;
    memcpy(cs->addr, addr.data, addr.len);
    hf_htab_insert(&c->subs, &cs->hn, hf_addr_hash(addr.data, addr.len));
    return 0;
}

/* Drops a subscription: no more local delivery. The host is told by the
 * caller (an unsub request, or unsub_env for one the server ends). */
void
gw_sub_drop(struct gw *gw, struct conn *c, struct csub *cs)
{
    gw_topic_del(gw, cs->addr, cs->alen, c);
    hf_htab_remove(&c->subs, &cs->hn);
    free(cs);
}

void
gw_sub_forget(struct gw *gw, struct conn *c, hf_slice addr)
{
    struct csub *cs = gw_sub_find(c, addr);
    if (cs != NULL)
        gw_sub_drop(gw, c, cs);
}

/* Queues, for the host, the end of c's subscription to addr (no reply
 * expected): its presence leave. Sent with the next send_req. */
void
gw_unsub_env(struct gw *gw, struct conn *c, const char *addr, size_t alen)
{
    hf_env e = {
        .op = HF_OP_UNSUB, .has_conn = 1, .conn = c->id, .to = {addr, alen}};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &gw->req, hf_buf_mpwrite);
    hf_env_pack_request(&pk, &e, (hf_slice){0});
}
/* The server ends subscriptions that c's principal may no longer hold:
 * every one (err set, e.g. an expired token) or those its ACL no longer
 * allows. The client gets an "unsubscribed" message per address, saying
 * why, and may subscribe again (with since) once allowed. */
struct revoke {
    struct gw *gw;
    struct conn *c;
    int all;
    int err;
    const char *why;
};

static void
revoke_one(hf_hnode *n, void *arg)
{
    struct revoke *r = arg;
    struct csub *cs = hf_htab_entry(n, struct csub, hn);
    struct conn *c = r->c;

    if (!r->all && hf_auth_allows(c->who, cs->addr, cs->alen) == 0)
        return;
    HF_GW_INC(subs_revoked);
    if (!c->close_code) {
        hf_wire_unsubscribed(hf_outq_tail(&c->out), c->fmt,
                             (hf_slice){cs->addr, cs->alen}, r->err, r->why,
                             strlen(r->why));
        gw_queued(c);
    }
    gw_unsub_env(r->gw, c, cs->addr, cs->alen);
    gw_sub_drop(r->gw, c, cs);
}

static void
revoke_subs(struct gw *gw, struct conn *c, int all, int err, const char *why)
{
    struct revoke r = {.gw = gw, .c = c, .all = all, .err = err, .why = why};

    hf_htab_walk(&c->subs, revoke_one, &r);
    gw_send_req(gw);
}

/* The token's end, checked once a second (heartbeat) and before each
 * message (gw_admit): what it reached is no longer reachable. */
int
gw_expired(const struct conn *c)
{
    return c->who != NULL && c->who->exp > 0 &&
           c->who->exp <=
               (int64_t)time(NULL) - hf_auth_leeway(c->gw->g->auth);
}

void
gw_expire(struct gw *gw, struct conn *c)
{
    c->authed = 0;
    revoke_subs(gw, c, 1, HF_EUNAUTH, "token expired: send a new auth");
}

/* Checks auth and ACL for a message to addr. 0 or an error code with
 * *why set. */
int
gw_admit(struct conn *c, hf_slice addr, const char **why)
{
    const hf_principal *p = gw_principal(c);

    if (!c->authed && c->who != NULL && gw_expired(c)) {
        *why = "token expired: send a new auth";
        return HF_EUNAUTH;
    }
    if (!c->authed && p->nacl == 0) {
        *why = "authenticate first: an auth message or ?token=";
        return HF_EUNAUTH;
    }
    if (!c->authed) {
        /* A caller without a token reaches the --public addresses. */
        if (hf_addr_check(addr.data, addr.len, NULL) != 0) {
            *why = "bad address: kind/name";
            return HF_EBADREQ;
        }
        if (hf_auth_allows(p, addr.data, addr.len) != 0) {
            *why = "sign in: this address is not public";
            return HF_EUNAUTH;
        }
        return 0;
    }
    if (gw_expired(c)) {
        gw_expire(c->gw, c);
        *why = "token expired";
        return HF_EUNAUTH;
    }
    if (hf_addr_check(addr.data, addr.len, NULL) != 0) {
        *why = "bad address: kind/name";
        return HF_EBADREQ;
    }
    if (hf_auth_allows(p, addr.data, addr.len) != 0) {
        *why = "not allowed for this token";
        return HF_EFORBIDDEN;
    }
    return 0;
}

/* Builds the host envelope for a request and files it as pending. */
void
gw_forward(struct gw *gw, struct conn *c, int op, hf_slice id, hf_slice to,
           hf_slice method, hf_slice args, hf_slice key, const hf_wire_msg *m)
{
    const hf_principal *p = gw_principal(c);
    hf_env e = {.op = op,
                .conn = c->id,
                .has_conn = 1,
                .to = to,
                .method = method,
                .key = key};
    msgpack_packer pk;

    if (op != HF_OP_SIGNAL)
        e.id = gw_pend_add(gw, c, op, id, to)->rid;
    if (p != NULL) {
        e.sub = (hf_slice){p->sub, strlen(p->sub)};
        e.role = p->role;
        /* Display claims, for calls only (DESIGN §5.7). */
        if (op == HF_OP_CALL) {
            e.name = (hf_slice){p->name, strlen(p->name)};
            e.picture = (hf_slice){p->picture, strlen(p->picture)};
        }
        /* gw_admit passed: a token with an acl claim names this address
         * in it (core/actor.h, HF_ROLE_GRANTED). The tokenless public
         * principal has an acl too (the --public patterns) but no token:
         * never granted. */
        if (c->authed && p->nacl > 0)
            e.role |= HF_ROLE_GRANTED;
    }
    if (m != NULL && m->has_since) {
        e.since = m->since;
        e.has_since = 1;
    }
    if (m != NULL && m->epoch.len)
        e.epoch = m->epoch;
    msgpack_packer_init(&pk, &gw->req, hf_buf_mpwrite);
    hf_env_pack_request(&pk, &e, args);
}

static int
take_token(struct conn *c)
{
    const hf_gateway_config *cfg = &c->gw->g->cfg;

    return gw_bucket_take(&c->tokens, &c->tok_ns, (uint64_t)lws_now_usecs(),
                          cfg->rate, cfg->rate_burst, 1, NULL);
}

static void
do_auth(struct conn *c, const hf_wire_msg *m)
{
    hf_auth *auth = c->gw->g->auth;
    const char *why;
    hf_principal p;
    msgpack_zone z;
    msgpack_object res;
    hf_buf b = {0};
    msgpack_packer pk;
    size_t off = 0;

    if (auth == NULL) {
        gw_reply_err(c, m->id, HF_EBADREQ, "auth is off on this server");
        return;
    }
    if (hf_auth_check(auth, m->token.data, m->token.len, (int64_t)time(NULL),
                      &p, &why) != 0) {
        gw_reply_err(c, m->id, HF_EUNAUTH, why);
        return;
    }
    if (c->who == NULL || c->who == &c->gw->g->anon)
        c->who = hf_xcalloc(1, sizeof(*c->who));
    *c->who = p;
    c->authed = 1;
    /* A new principal keeps only what it may reach itself (the old one
     * may have been an admin watching someone's inbox). */
    revoke_subs(c->gw, c, 0, HF_EFORBIDDEN, "not allowed for the new token");
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 2);
    hf_pack_cstr(&pk, "sub");
    hf_pack_cstr(&pk, p.sub);
    hf_pack_cstr(&pk, "exp");
    msgpack_pack_int64(&pk, p.exp);
    msgpack_zone_init(&z, 256);
    hf_unpack_next(b.data, b.len, &off, &z, &res);
    hf_wire_reply_ok(hf_outq_tail(&c->out), c->fmt, m->id, &res);
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    gw_queued(c);
}

/* Handles one decoded client message. Returns nonzero to close. */
static int
on_message(struct gw *gw, struct conn *c, const hf_wire_msg *m)
{
    const char *why = NULL;
    int err;

    HF_GW_INC(messages_in);
    if (m->err != 0) {
        HF_GW_INC(bad_messages);
        gw_reply_err(c, m->id, m->err, m->errmsg);
        if (++c->bad_streak >= BAD_STREAK_CLOSE) {
            c->close_code = 1008;
            gw_want_write(c);
            return 1;
        }
        return 0;
    }
    c->bad_streak = 0;
    if (!take_token(c)) {
        HF_GW_INC(rate_limited);
        if (m->op != HF_W_SIGNAL)
            gw_reply_err(c, m->id, HF_ERATELIMIT, "slow down");
        return 0;
    }
    if (m->id.len > ID_MAX) {
        gw_reply_err(c, (hf_slice){NULL, 0}, HF_EBADREQ, "id too long");
        return 0;
    }
    if (gw->local_draining && m->op != HF_W_PING) {
        gw_reply_err(c, m->id, HF_EUNAVAIL, "server is shutting down");
        return 0;
    }
    switch (m->op) {
    case HF_W_PING:
        hf_wire_pong(hf_outq_tail(&c->out), c->fmt, m->id);
        gw_queued(c);
        return 0;
    case HF_W_AUTH:
        do_auth(c, m);
        return 0;
    default:
        break;
    }
    if ((err = gw_admit(c, m->to, &why)) != 0) {
        gw_reply_err(c, m->id, err, why);
        return 0;
    }
    /* Without a token, a public address may be watched, not written to
     * or announced in. */
    if (!c->authed && (m->op == HF_W_SIGNAL ||
                       (m->op == HF_W_SUB && m->args.len > 0))) {
        if (m->op != HF_W_SIGNAL)
            gw_reply_err(c, m->id, HF_EUNAUTH,
                         "sign in to subscribe with presence");
        return 0;
    }
    switch (m->op) {
    case HF_W_CALL:
        gw_forward(gw, c, HF_OP_CALL, m->id, m->to, m->method, m->args, m->key,
                   NULL);
        break;
    case HF_W_SUB:
        if (sub_note(c, m->to) != 0) {
            snprintf(gw->errbuf, sizeof(gw->errbuf),
                     "too many subscriptions on one connection (--subs-max "
                     "%d)",
                     gw->g->cfg.subs_max);
            gw_reply_err(c, m->id, HF_ETOOLARGE, gw->errbuf);
            break;
        }
        gw_forward(gw, c, HF_OP_SUB, m->id, m->to, (hf_slice){0}, m->args,
                   (hf_slice){0}, m);
        break;
    case HF_W_UNSUB:
        /* Stop delivering at once; the host's reply confirms. */
        gw_sub_forget(gw, c, m->to);
        gw_forward(gw, c, HF_OP_UNSUB, m->id, m->to, (hf_slice){0},
                   (hf_slice){0}, (hf_slice){0}, NULL);
        break;
    case HF_W_SIGNAL:
        gw_forward(gw, c, HF_OP_SIGNAL, m->id, m->to, m->type, m->args,
                   (hf_slice){0}, NULL);
        break;
    }
    return 0;
}

int
gw_on_frame(struct gw *gw, struct conn *c, const void *data, size_t len,
            int binary)
{
    hf_wire_frame f = {0};
    int close = 0;

    HF_GW_INC(frames_in);
    if (hf_wire_decode(&f, binary ? HF_WIRE_MSGPACK : HF_WIRE_JSON, data, len,
                       MAX_MSGS_PER_FRAME) != 0) {
        hf_wire_frame_free(&f);
        return -1;
    }
    for (size_t i = 0; i < f.n && !close; i++)
        close = on_message(gw, c, &f.msgs[i]);
    hf_wire_frame_free(&f);
    gw_send_req(gw);
    return 0;
}

/* The token of a request: ?token= or Authorization: Bearer. */
int
gw_request_token(struct lws *wsi, char *buf, size_t len, const char **tok)
{
    char hdr[HF_AUTH_TOKEN_MAX + 16];
    const char *v;

    if ((v = lws_get_urlarg_by_name(wsi, "token=", buf, (int)len)) != NULL &&
        *v) {
        *tok = v;
        return 1;
    }
    if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
        strncasecmp(hdr, "Bearer ", 7) == 0 && strlen(hdr + 7) < len) {
        strcpy(buf, hdr + 7);
        *tok = buf;
        return 1;
    }
    return 0;
}

/* Authenticates a connection from its request. 0, or HF_EUNAUTH with
 * *why when a token was given and is bad, or none was given, required is
 * set and nothing is public. Without a token c stays unauthenticated: it
 * reaches the public addresses only (gw_admit). */
int
gw_authenticate(struct gw *gw, struct conn *c, struct lws *wsi, int required,
                const char **why)
{
    char buf[HF_AUTH_TOKEN_MAX + 1];
    const char *tok;
    hf_principal p;

    *why = "send a token: Authorization: Bearer or ?token=";
    if (gw->g->auth == NULL) {
        /* Auth off: the shared anonymous principal (read-only; a
         * principal is ~5 KB, too much to copy per connection). */
        c->who = &gw->g->anon;
        c->authed = 1;
        return 0;
    }
    if (!gw_request_token(wsi, buf, sizeof(buf), &tok))
        return required && gw->g->pub.nacl == 0 ? HF_EUNAUTH : 0;
    if (hf_auth_check(gw->g->auth, tok, strlen(tok), (int64_t)time(NULL), &p,
                      why) != 0)
        return HF_EUNAUTH;
    c->who = hf_xcalloc(1, sizeof(*c->who));
    *c->who = p;
    c->authed = 1;
    return 0;
}
