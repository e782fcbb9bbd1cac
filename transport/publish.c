/*
 * publish.c - POST /v1/publish: a backend's "this changed", as channel
 * events (actors/channel.c), one or many per request.
 *
 *   {"channel":NAME, "type":T, "data":D}          -> like /v1/call
 *   [{"channel":…, "type":…, "data":…}, …]        -> 200 {"ok":true,
 *       "results":[{"ok":true,"result":{"seq":N}} | {"ok":false,"error":…}]}
 *
 * Design notes
 * ------------
 * Each item becomes a CALL of `channel/NAME` `publish {type, data}`, with
 * the caller's principal, exactly as /v1/call would send it, so roles, the
 * acl and idempotency are the channel's own rules. An item the gateway can
 * refuse itself (not an object, a bad channel name, no type, the acl) gets
 * its error in place and is not sent; the others travel in one batch to
 * the host, each a pending request whose client id is its index. The
 * answer is written when the last reply is in, results in item order.
 *
 * Idempotency-Key K: a single item uses K; item i of an array uses "K:i",
 * so replaying the same request body answers the same seqs and publishes
 * nothing twice (each channel keeps its own keys, per caller).
 *
 * Threads: the gateway thread of the connection, like the rest of http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/err.h"
#include "core/mp.h"
#include "core/mpjson.h"
#include "core/oom.h"

#include "transport/gw_int.h"

#define PUB_ITEMS_MAX 1000 /* as the messages of one WebSocket frame */
#define CHANNEL       "channel/"

static void
item_err(struct conn *c, uint32_t i, int err, const char *msg)
{
    hf_buf *r = &c->h->pub.res[i];

    r->len = 0;
    hf_wire_http_err(r, err, msg, strlen(msg));
    c->h->pub.left--;
}

/* Checks item i and, when it passes, packs its publish args into *args
 * and its address into addr. Returns 0, or an error with *why. */
static int
item_check(struct conn *c, const msgpack_object *it, char *addr, size_t *alen,
           hf_buf *args, const char **why)
{
    const msgpack_object *ch, *ty, *da;
    msgpack_packer pk;
    int err;

    if (it->type != MSGPACK_OBJECT_MAP)
        return *why = "an item is {channel, type, data}", HF_EBADREQ;
    ch = hf_arg(it, "channel");
    ty = hf_arg(it, "type");
    da = hf_arg(it, "data");
    if (ch == NULL || ch->type != MSGPACK_OBJECT_STR ||
        ch->via.str.size + sizeof(CHANNEL) - 1 > HF_ADDR_MAX)
        return *why = "channel: a name is required", HF_EBADREQ;
    *alen = sizeof(CHANNEL) - 1 + ch->via.str.size;
    memcpy(addr, CHANNEL, sizeof(CHANNEL) - 1);
    memcpy(addr + sizeof(CHANNEL) - 1, ch->via.str.ptr, ch->via.str.size);
    addr[*alen] = '\0';
    if (hf_addr_check(addr, *alen, NULL) != 0)
        return *why = "channel: 1-128 of A-Z a-z 0-9 . _ : @ -", HF_EBADREQ;
    /* The channel checks the type's length and bytes; a missing one is
     * refused here so a batch does not carry it. */
    if (ty == NULL || ty->type != MSGPACK_OBJECT_STR || ty->via.str.size == 0)
        return *why = "type: a non-empty string is required", HF_EBADREQ;
    if ((err = gw_admit(c, (hf_slice){addr, *alen}, why)) != 0)
        return err;
    args->len = 0;
    msgpack_packer_init(&pk, args, hf_buf_mpwrite);
    msgpack_pack_map(&pk, da ? 2 : 1);
    hf_pack_cstr(&pk, "type");
    msgpack_pack_object(&pk, *ty);
    if (da != NULL) {
        hf_pack_cstr(&pk, "data");
        msgpack_pack_object(&pk, *da);
    }
    return 0;
}

/* Writes the answer once every item has its result. Returns as
 * gw_http_respond (0 while results are missing). */
static int
finish(struct conn *c)
{
    struct http_pub *pb = &c->h->pub;
    hf_buf b = {0};
    int rv;

    if (pb->left > 0)
        return 0;
    if (!pb->array) {
        /* One item: exactly the /v1/call answer, status included. */
        return gw_http_respond(c, pb->status0, "application/json",
                               pb->res[0].data, pb->res[0].len);
    }
    HF_MUST(hf_buf_append(&b, "{\"ok\":true,\"results\":[", 22));
    for (uint32_t i = 0; i < pb->n; i++) {
        if (i > 0)
            HF_MUST(hf_buf_append(&b, ",", 1));
        HF_MUST(hf_buf_append(&b, pb->res[i].data, pb->res[i].len));
    }
    HF_MUST(hf_buf_append(&b, "]}", 2));
    rv = gw_http_respond(c, 200, "application/json", b.data, b.len);
    hf_buf_free(&b);
    return rv;
}

int
gw_publish_dispatch(struct gw *gw, struct conn *c)
{
    struct http_pub *pb = &c->h->pub;
    hf_buf body = {0}, args = {0};
    msgpack_zone zone;
    msgpack_object root;
    const msgpack_object *items;
    const char *why;
    char addr[HF_ADDR_MAX + 1], key[sizeof(c->h->idem) + 16];
    size_t alen, off = 0;
    int err, sent = 0;

    if (c->h->body.len == 0)
        return gw_http_error(c, HF_EBADREQ, "a body is required");
    if (hf_json_to_mp(c->h->body.data, c->h->body.len, &body) != 0) {
        c->h->close_after = 1; /* as /v1/call: the stream is in doubt */
        return gw_http_error(c, HF_EBADREQ, "body is not valid JSON");
    }
    if (hf_wire_mp_check(body.data, body.len, HF_WIRE_DEPTH - 1) != body.len) {
        hf_buf_free(&body);
        return gw_http_error(c, HF_EBADREQ, "body nested too deep");
    }
    msgpack_zone_init(&zone, 2048);
    if (hf_unpack_next(body.data, body.len, &off, &zone, &root) != 0) {
        msgpack_zone_destroy(&zone);
        hf_buf_free(&body);
        return gw_http_error(c, HF_EINTERNAL, "cannot read the body");
    }
    pb->array = root.type == MSGPACK_OBJECT_ARRAY;
    items = pb->array ? root.via.array.ptr : &root;
    pb->n = pb->array ? root.via.array.size : 1;
    if (pb->n == 0 || pb->n > PUB_ITEMS_MAX) {
        msgpack_zone_destroy(&zone);
        hf_buf_free(&body);
        return pb->n == 0 ? gw_http_error(c, HF_EBADREQ, "no items")
                          : gw_http_error(c, HF_ETOOLARGE,
                                          "at most 1000 items a request");
    }
    /* The request paid one token; each further item is another call to
     * the host, as it would be over WebSocket. */
    if (pb->n > 1 && gw_http_rate(gw->g, c->wsi, c->authed ? c->who : NULL,
                                  (double)(pb->n - 1),
                                  &c->h->retry_after) != 0) {
        msgpack_zone_destroy(&zone);
        hf_buf_free(&body);
        return gw_http_error(c, HF_ERATELIMIT, "slow down");
    }
    pb->left = pb->n;
    pb->res = hf_xcalloc(pb->n, sizeof(*pb->res));
    for (uint32_t i = 0; i < pb->n; i++) {
        size_t klen = 0;
        if ((err = item_check(c, &items[i], addr, &alen, &args, &why)) != 0) {
            item_err(c, i, err, why);
            if (i == 0)
                pb->status0 = hf_err_http(err);
            continue;
        }
        if (c->h->idem[0] != '\0')
            klen =
                pb->array
                    ? (size_t)snprintf(key, sizeof(key), "%s:%u", c->h->idem, i)
                    : (size_t)snprintf(key, sizeof(key), "%s", c->h->idem);
        gw_forward(gw, c, HF_OP_CALL, (hf_slice){&i, sizeof(i)},
                   (hf_slice){addr, alen}, (hf_slice){"publish", 7},
                   (hf_slice){args.data, args.len}, (hf_slice){key, klen},
                   NULL);
        sent++;
    }
    msgpack_zone_destroy(&zone);
    hf_buf_free(&body);
    hf_buf_free(&args);
    if (sent == 0)
        return finish(c);
    c->h->forwarded = 1;
    gw_send_req(gw);
    return 0;
}

int
gw_publish_reply(struct conn *c, struct pend *p, const hf_env *e)
{
    struct http_pub *pb = &c->h->pub;
    uint32_t i;
    hf_buf *r;

    if (p->idlen != sizeof(i))
        return 0;
    memcpy(&i, p->id, sizeof(i));
    if (i >= pb->n)
        return 0;
    r = &pb->res[i];
    if (e->ok) {
        hf_wire_http_ok(r, e->val);
        if (i == 0)
            pb->status0 = 200;
    } else {
        char code[32];
        int err;
        snprintf(code, sizeof(code), "%.*s", (int)e->code.len,
                 (const char *)e->code.data);
        err = hf_err_from_name(code);
        hf_wire_http_err(r, err, e->msg.data, e->msg.len);
        if (i == 0)
            pb->status0 = hf_err_http(err);
    }
    pb->left--;
    return finish(c);
}
