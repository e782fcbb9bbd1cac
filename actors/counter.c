/*
 * counter.c - counter/NAME: the smallest useful actor, used by the engine
 * benchmark and as a smoke test of a running server.
 *
 *   incr {by?: int, emit?: bool} -> {value}   adds (default 1); with emit,
 *                                              publishes a "changed" event
 *   get {} -> {value}
 *
 * State: one key "v" holding the value as a big-endian int64.
 */
#include "actors/kinds.h"
#include "core/env.h"

static int64_t
load(hf_ctx *c)
{
    hf_slice v;
    if (hf_get(c, "v", 1, &v) != 0 || v.len != 8)
        return 0;
    return (int64_t)hf_get_be64(v.data);
}

static void
pack_value(hf_ctx *c, int64_t n)
{
    msgpack_packer *pk = hf_pk(c);
    msgpack_pack_map(pk, 1);
    hf_pack_cstr(pk, "value");
    msgpack_pack_int64(pk, n);
}

static int
incr(hf_ctx *c, const msgpack_object *args)
{
    int64_t by = 1, n;
    const msgpack_object *emit = hf_arg(args, "emit");
    char be[8];
    int rv;

    if ((rv = hf_arg_int(c, args, "by", 0, -1000000000, 1000000000, &by)))
        return rv;
    n = load(c) + by;
    hf_put_be64(be, (uint64_t)n);
    if ((rv = hf_put(c, "v", 1, be, 8)) != 0)
        return rv;
    if (emit && emit->type == MSGPACK_OBJECT_BOOLEAN && emit->via.boolean) {
        pack_value(c, n);
        if ((rv = hf_emit(c, "changed", NULL)) != 0)
            return rv;
    }
    pack_value(c, n);
    return hf_reply(c);
}

static int
get(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    pack_value(c, load(c));
    return hf_reply(c);
}

static const struct hf_method methods[] = {
    {.name = "incr", .fn = incr, .roles = HF_ROLE_ANY},
    {.name = "get", .fn = get, .roles = HF_ROLE_ANY, .pub = 1},
};

const struct hf_kind hf_kind_counter = {
    .name = "counter",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
};
