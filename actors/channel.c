/*
 * channel.c - channel/NAME: a named stream that a backend publishes to.
 *
 *   publish {type: string, data?: any} -> {seq}
 *
 * A channel holds no state of its own: publishing is hf_emit, so each
 * message is an event in the channel's log like any actor's, delivered
 * live to subscribers after its commit, replayed with `since`, read back
 * with GET /v1/events, and fed to webhooks. It exists for apps whose own
 * database is the source of truth and that only need to say "this
 * changed" (POST /v1/publish is its HTTP shape).
 *
 * Who may publish: services and admins, and any caller the gateway marks
 * HF_ROLE_GRANTED (its token's acl claim matched this address: the token
 * was minted to name the channel). Anyone allowed to subscribe may read.
 */
#include <string.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/mp.h"

/* An event type: what a client switches on, so short and printable. */
#define TYPE_MAX 64

static int
publish(hf_ctx *c, const msgpack_object *args)
{
    const msgpack_object *data = hf_arg(args, "data");
    const char *type;
    size_t tlen;
    char tbuf[TYPE_MAX + 1];
    uint64_t seq;
    msgpack_packer *pk;
    int rv;

    if ((rv = hf_util_arg_text(c, args, "type", 1, TYPE_MAX, &type, &tlen)))
        return rv;
    memcpy(tbuf, type, tlen);
    tbuf[tlen] = '\0';
    pk = hf_pk(c);
    if (data != NULL)
        msgpack_pack_object(pk, *data);
    else
        msgpack_pack_nil(pk);
    if ((rv = hf_emit(c, tbuf, &seq)) != 0)
        return rv;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 1);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, seq);
    return hf_reply(c);
}

static const struct hf_method methods[] = {
    {.name = "publish",
     .fn = publish,
     .roles = HF_ROLE_SERVICE | HF_ROLE_GRANTED},
};

const struct hf_kind hf_kind_channel = {
    .name = "channel",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
};
