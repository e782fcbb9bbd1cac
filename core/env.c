/*
 * env.c - envelope encoding and decoding (see env.h).
 *
 * Decoding walks the map once and dispatches on the key through a table;
 * keys not in the table are ignored so newer senders can add fields.
 */
#include <string.h>

#include "core/env.h"
#include "core/err.h"

int
hf_unpack_next(const void *buf, size_t len, size_t *off, msgpack_zone *zone,
               msgpack_object *obj)
{
    msgpack_unpack_return r = msgpack_unpack(buf, len, off, zone, obj);
    return (r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES)
               ? 0
               : HF_EBADREQ;
}

int
hf_slice_is(hf_slice s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && memcmp(s.data, str, n) == 0;
}

void
hf_pack_str(msgpack_packer *pk, const void *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

void
hf_pack_cstr(msgpack_packer *pk, const char *s)
{
    hf_pack_str(pk, s, strlen(s));
}

void
hf_pack_raw(msgpack_packer *pk, hf_slice raw)
{
    if (raw.len == 0)
        msgpack_pack_nil(pk);
    else
        pk->callback(pk->data, raw.data, raw.len);
}

int
hf_pack_obj(msgpack_packer *pk, const msgpack_object *obj)
{
    return msgpack_pack_object(pk, *obj) == 0 ? 0 : HF_EINTERNAL;
}

enum ftype { F_U64, F_STR, F_OBJ, F_BOOL, F_I64 };

struct field {
    const char *name;
    enum ftype type;
    size_t off;     /* into hf_env */
    size_t flagoff; /* has_* flag, or (size_t)-1 */
};

#define O(f) offsetof(hf_env, f)
#define NOFLAG ((size_t)-1)

static const struct field fields[] = {
    {"op", F_I64, 0, NOFLAG}, /* handled specially: int */
    {"id", F_U64, O(id), NOFLAG},
    {"c", F_U64, O(conn), O(has_conn)},
    {"to", F_STR, O(to), NOFLAG},
    {"from", F_STR, O(to), NOFLAG},
    {"m", F_STR, O(method), NOFLAG},
    {"type", F_STR, O(method), NOFLAG},
    {"k", F_STR, O(key), NOFLAG},
    {"s", F_STR, O(sub), NOFLAG},
    {"by", F_STR, O(sub), NOFLAG},
    {"r", F_U64, 0, NOFLAG}, /* role: unsigned, handled specially */
    {"since", F_I64, O(since), O(has_since)},
    {"ep", F_STR, O(epoch), NOFLAG},
    {"ok", F_BOOL, O(ok), NOFLAG},
    {"code", F_STR, O(code), NOFLAG},
    {"msg", F_STR, O(msg), NOFLAG},
    {"action", F_STR, O(action), NOFLAG},
    {"seq", F_U64, O(seq), NOFLAG},
    {"a", F_OBJ, O(val), NOFLAG},
    {"res", F_OBJ, O(val), NOFLAG},
    {"data", F_OBJ, O(val), NOFLAG},
    {"who", F_OBJ, O(val), NOFLAG},
};

static int
getint(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return HF_EBADREQ;
        *v = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    return HF_EBADREQ;
}

int
hf_env_decode(const msgpack_object *obj, hf_env *e)
{
    memset(e, 0, sizeof(*e));
    if (obj->type != MSGPACK_OBJECT_MAP)
        return HF_EBADREQ;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *k = &obj->via.map.ptr[i].key;
        const msgpack_object *v = &obj->via.map.ptr[i].val;
        const struct field *f = NULL;
        char *base = (char *)e;
        int64_t n;

        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++) {
            size_t fl = strlen(fields[j].name);
            if (k->via.str.size == fl &&
                memcmp(k->via.str.ptr, fields[j].name, fl) == 0) {
                f = &fields[j];
                break;
            }
        }
        if (f == NULL)
            continue;
        if (strcmp(f->name, "op") == 0) {
            if (getint(v, &n) != 0 || n < 1 || n > 255)
                return HF_EBADREQ;
            e->op = (int)n;
            continue;
        }
        if (strcmp(f->name, "r") == 0) {
            if (getint(v, &n) != 0 || n < 0 || n > 0xffff)
                return HF_EBADREQ;
            e->role = (unsigned)n;
            continue;
        }
        switch (f->type) {
        case F_U64:
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return HF_EBADREQ;
            memcpy(base + f->off, &v->via.u64, sizeof(uint64_t));
            break;
        case F_I64:
            if (getint(v, &n) != 0)
                return HF_EBADREQ;
            memcpy(base + f->off, &n, sizeof(n));
            break;
        case F_STR: {
            hf_slice s;
            if (v->type == MSGPACK_OBJECT_NIL)
                continue;
            if (v->type != MSGPACK_OBJECT_STR)
                return HF_EBADREQ;
            s.data = v->via.str.ptr;
            s.len = v->via.str.size;
            memcpy(base + f->off, &s, sizeof(s));
            break;
        }
        case F_BOOL:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return HF_EBADREQ;
            e->ok = v->via.boolean;
            break;
        case F_OBJ:
            e->val = v;
            break;
        }
        if (f->flagoff != NOFLAG)
            *(int *)(base + f->flagoff) = 1;
    }
    return e->op == 0 ? HF_EBADREQ : 0;
}

static void
kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    hf_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
kv_str(msgpack_packer *pk, const char *k, hf_slice v)
{
    hf_pack_cstr(pk, k);
    hf_pack_str(pk, v.data, v.len);
}

int
hf_env_pack_request(msgpack_packer *pk, const hf_env *e, hf_slice val_raw)
{
    size_t n = 2; /* op, to */

    n += 1;                    /* id */
    n += e->has_conn;          /* c */
    n += e->method.len > 0;    /* m */
    n += val_raw.len > 0;      /* a */
    n += e->key.len > 0;       /* k */
    n += e->sub.len > 0;       /* s */
    n += e->role != 0;         /* r */
    n += e->has_since;         /* since */
    n += e->epoch.len > 0;     /* ep */
    msgpack_pack_map(pk, n);
    kv_u64(pk, "op", (uint64_t)e->op);
    kv_str(pk, "to", e->to);
    kv_u64(pk, "id", e->id);
    if (e->has_conn)
        kv_u64(pk, "c", e->conn);
    if (e->method.len > 0)
        kv_str(pk, "m", e->method);
    if (val_raw.len > 0) {
        hf_pack_cstr(pk, "a");
        hf_pack_raw(pk, val_raw);
    }
    if (e->key.len > 0)
        kv_str(pk, "k", e->key);
    if (e->sub.len > 0)
        kv_str(pk, "s", e->sub);
    if (e->role != 0)
        kv_u64(pk, "r", e->role);
    if (e->has_since) {
        hf_pack_cstr(pk, "since");
        msgpack_pack_int64(pk, e->since);
    }
    if (e->epoch.len > 0)
        kv_str(pk, "ep", e->epoch);
    return 0;
}

void
hf_env_pack_reply_ok(msgpack_packer *pk, uint64_t conn, uint64_t id,
                     hf_slice res_raw)
{
    msgpack_pack_map(pk, 5);
    kv_u64(pk, "op", HF_OUT_REPLY);
    kv_u64(pk, "c", conn);
    kv_u64(pk, "id", id);
    hf_pack_cstr(pk, "ok");
    msgpack_pack_true(pk);
    hf_pack_cstr(pk, "res");
    hf_pack_raw(pk, res_raw);
}

void
hf_env_pack_reply_err(msgpack_packer *pk, uint64_t conn, uint64_t id,
                      int err, const char *msg, size_t msglen)
{
    msgpack_pack_map(pk, 6);
    kv_u64(pk, "op", HF_OUT_REPLY);
    kv_u64(pk, "c", conn);
    kv_u64(pk, "id", id);
    hf_pack_cstr(pk, "ok");
    msgpack_pack_false(pk);
    hf_pack_cstr(pk, "code");
    hf_pack_cstr(pk, hf_err_name(err));
    hf_pack_cstr(pk, "msg");
    if (msg == NULL || msglen == 0) {
        msg = hf_err_name(err);
        msglen = strlen(msg);
    }
    hf_pack_str(pk, msg, msglen);
}

void
hf_env_pack_signal(msgpack_packer *pk, hf_slice from, hf_slice type,
                   hf_slice by, hf_slice data_raw)
{
    msgpack_pack_map(pk, 5);
    kv_u64(pk, "op", HF_OUT_SIGNAL);
    kv_str(pk, "from", from);
    kv_str(pk, "type", type);
    kv_str(pk, "by", by);
    hf_pack_cstr(pk, "data");
    hf_pack_raw(pk, data_raw);
}

void
hf_env_pack_presence(msgpack_packer *pk, hf_slice from, int join,
                     hf_slice who_raw)
{
    msgpack_pack_map(pk, 4);
    kv_u64(pk, "op", HF_OUT_PRESENCE);
    kv_str(pk, "from", from);
    hf_pack_cstr(pk, "action");
    hf_pack_cstr(pk, join ? "join" : "leave");
    hf_pack_cstr(pk, "who");
    hf_pack_raw(pk, who_raw);
}
