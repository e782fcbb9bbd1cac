/*
 * value.c - Lua values <-> msgpack (see value.h for the rules).
 *
 * Design notes: both directions recurse at most HF_LUA_DEPTH containers
 * deep, so neither the C stack nor the Lua stack can be overflowed by a
 * deep or cyclic value (a cycle is just "too deep"). lua_checkstack is
 * asked before every level, since a conversion can run deep inside a
 * handler's own stack use. Tables are read raw: a kind cannot make the
 * converter run its code through __index or __pairs.
 *
 * The packer's work is bounded too: a value reached twice (a shared
 * subtable or string) is written twice, so a small value in Lua can be
 * huge packed ({x, x} nested 31 deep is 2^31 nodes). Every value visited
 * counts against b->max_nodes (the caller's instruction budget: HF_ETIMEOUT)
 * and every byte written against b->max_bytes (HF_ETOOLARGE), before it is
 * written; a failed write is an error, never a truncated value.
 */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mp.h"
#include "lua/value.h"

/* Where the packer is: one component per open container, for messages;
 * and what it has spent against its bounds. */
struct path {
    const char *root;
    hf_lua_bounds *b;
    size_t bytes; /* an upper bound of what was written */
    int depth;
    struct {
        const char *key; /* map key (not NUL-terminated), or NULL */
        size_t klen;
        lua_Integer idx; /* array index when key is NULL */
    } at[HF_LUA_DEPTH + 1];
};

static int
fail_code(const struct path *p, char *err, size_t errlen, const char *what,
          int code)
{
    size_t n = (size_t)snprintf(err, errlen, "%s", p->root);

    for (int i = 0; i < p->depth && n < errlen; i++) {
        if (p->at[i].key)
            n += (size_t)snprintf(
                err + n, errlen - n, ".%.*s",
                (int)(p->at[i].klen > 40 ? 40 : p->at[i].klen), p->at[i].key);
        else
            n += (size_t)snprintf(err + n, errlen - n, "[%lld]",
                                  (long long)p->at[i].idx);
    }
    if (n < errlen)
        snprintf(err + n, errlen - n, ": %s", what);
    return code;
}

static int
fail(const struct path *p, char *err, size_t errlen, const char *what)
{
    return fail_code(p, err, errlen, what, HF_EBADREQ);
}

/* Charges one value of up to len bytes packed (plus its header) to the
 * bounds: 0, or the error. */
static int
charge(struct path *p, size_t len, char *err, size_t errlen)
{
    if (++p->b->nodes > p->b->max_nodes)
        return fail_code(p, err, errlen,
                         "packing ran past the instruction budget",
                         HF_ETIMEOUT);
    if (len > p->b->max_bytes || p->bytes + len + 9 > p->b->max_bytes)
        return fail_code(p, err, errlen, "too large to store (over 64 MiB)",
                         HF_ETOOLARGE);
    p->bytes += len + 9; /* 9: the longest header or scalar */
    return 0;
}

static int
wrote(const struct path *p, int rv, char *err, size_t errlen)
{
    return rv == 0 ? 0
                   : fail_code(p, err, errlen, "out of memory packing",
                               HF_EINTERNAL);
}

/* What the keys of the table at idx make it: 1 array (keys 1..n, *n
 * set), 2 map (string keys), 0 neither (*bad: a key of the wrong kind, at
 * the stack top... popped: described in why). */
static int
table_shape(lua_State *L, int idx, size_t *n, char *why, size_t wl)
{
    size_t count = 0;
    int ints = 1, strs = 1;
    lua_Integer max = 0;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            ints = 0;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            strs = 0;
            if (k > max)
                max = k;
        } else {
            ints = strs = 0;
        }
        if (!ints && !strs) {
            if (lua_type(L, -1) == LUA_TSTRING)
                snprintf(why, wl,
                         "array items mixed with string keys "
                         "(key '%.40s')",
                         lua_tostring(L, -1));
            else if (lua_type(L, -1) == LUA_TNUMBER)
                snprintf(why, wl, "key %s is not a string",
                         lua_tostring(L, -1));
            else
                snprintf(why, wl, "a %s key is not allowed",
                         luaL_typename(L, -1));
            lua_pop(L, 1);
            return 0;
        }
    }
    *n = count;
    if (count == 0 || (ints && (size_t)max == count))
        return 1;
    if (strs)
        return 2;
    snprintf(why, wl,
             "a sparse array (keys must be 1..n, here %zu keys up to %lld)",
             count, (long long)max);
    return 0;
}

static int
pack(lua_State *L, int idx, msgpack_packer *pk, struct path *p, char *err,
     size_t errlen)
{
    char why[96];
    size_t n, len = 0;
    const char *s = NULL;
    int rv, shape;

    if (lua_type(L, idx) == LUA_TSTRING)
        s = lua_tolstring(L, idx, &len);
    if ((rv = charge(p, len, err, errlen)) != 0)
        return rv;
    switch (lua_type(L, idx)) {
    case LUA_TNONE: /* an argument not given */
    case LUA_TNIL:
        return wrote(p, msgpack_pack_nil(pk), err, errlen);
    case LUA_TBOOLEAN:
        return wrote(p,
                     lua_toboolean(L, idx) ? msgpack_pack_true(pk)
                                           : msgpack_pack_false(pk),
                     err, errlen);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            rv = msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx));
        else
            rv = msgpack_pack_double(pk, (double)lua_tonumber(L, idx));
        return wrote(p, rv, err, errlen);
    case LUA_TSTRING:
        return wrote(p, hf_pack_str(pk, s, len), err, errlen);
    case LUA_TTABLE:
        break;
    default:
        snprintf(why, sizeof(why), "a %s cannot be stored",
                 luaL_typename(L, idx));
        return fail(p, err, errlen, why);
    }
    if (p->depth >= HF_LUA_DEPTH)
        return fail(p, err, errlen,
                    "nested too deep (more than 32 tables; a cycle?)");
    if (!lua_checkstack(L, 4))
        return fail(p, err, errlen, "out of Lua stack");
    idx = lua_absindex(L, idx);
    if ((shape = table_shape(L, idx, &n, why, sizeof(why))) == 0)
        return fail(p, err, errlen, why);
    p->depth++;
    if (shape == 1) {
        if ((rv = wrote(p, msgpack_pack_array(pk, n), err, errlen)) != 0)
            return rv;
        for (size_t i = 1; i <= n; i++) {
            p->at[p->depth - 1].key = NULL;
            p->at[p->depth - 1].idx = (lua_Integer)i;
            lua_rawgeti(L, idx, (lua_Integer)i);
            rv = pack(L, -1, pk, p, err, errlen);
            lua_pop(L, 1);
            if (rv != 0)
                return rv;
        }
    } else {
        if ((rv = wrote(p, msgpack_pack_map(pk, n), err, errlen)) != 0)
            return rv;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            s = lua_tolstring(L, -2, &len); /* a string: no conversion */
            p->at[p->depth - 1].key = s;
            p->at[p->depth - 1].klen = len;
            if ((rv = charge(p, len, err, errlen)) != 0 ||
                (rv = wrote(p, hf_pack_str(pk, s, len), err, errlen)) != 0 ||
                (rv = pack(L, -1, pk, p, err, errlen)) != 0) {
                lua_pop(L, 2);
                return rv;
            }
            lua_pop(L, 1);
        }
    }
    p->depth--;
    return 0;
}

int
hf_lua_pack_bounded(lua_State *L, int idx, msgpack_packer *pk,
                    const char *root, hf_lua_bounds *b, char *err,
                    size_t errlen)
{
    struct path p; /* at[] is filled as it goes: no need to clear it */

    p.root = root;
    p.b = b;
    p.bytes = 0;
    p.depth = 0;
    b->nodes = 0;
    return pack(L, idx, pk, &p, err, errlen);
}

int
hf_lua_pack(lua_State *L, int idx, msgpack_packer *pk, const char *root,
            char *err, size_t errlen)
{
    hf_lua_bounds b = {.max_bytes = HF_LUA_PACK_MAX, .max_nodes = UINT64_MAX};

    return hf_lua_pack_bounded(L, idx, pk, root, &b, err, errlen);
}

/* t[k] = v for the table, key and value on top (pops k and v); a key
 * Lua cannot hold (nil, NaN) drops the entry. Both readers use it. */
static void
map_set(lua_State *L)
{
    if (lua_isnil(L, -2) ||
        (lua_type(L, -2) == LUA_TNUMBER && isnan((double)lua_tonumber(L, -2))))
        lua_pop(L, 2);
    else
        lua_rawset(L, -3);
}

static int
push(lua_State *L, const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        lua_pushnil(L);
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, o->via.boolean);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= (uint64_t)LUA_MAXINTEGER)
            lua_pushinteger(L, (lua_Integer)o->via.u64);
        else
            lua_pushnumber(L, (lua_Number)o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lua_pushinteger(L, (lua_Integer)o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        lua_pushnumber(L, (lua_Number)o->via.f64);
        return 0;
    case MSGPACK_OBJECT_STR:
        lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
        return 0;
    case MSGPACK_OBJECT_BIN:
        lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
        return 0;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        break;
    default:
        return HF_EBADREQ;
    }
    if (depth >= HF_LUA_DEPTH || !lua_checkstack(L, 4))
        return HF_EBADREQ;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object_array *a = &o->via.array;
        lua_createtable(L, (int)(a->size > 1024 ? 1024 : a->size), 0);
        for (uint32_t i = 0; i < a->size; i++) {
            if (push(L, &a->ptr[i], depth + 1) != 0) {
                lua_pop(L, 1);
                return HF_EBADREQ;
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1); /* nil: a hole */
        }
        return 0;
    }
    lua_createtable(L, 0,
                    (int)(o->via.map.size > 1024 ? 1024 : o->via.map.size));
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (push(L, &kv->key, depth + 1) != 0) {
            lua_pop(L, 1);
            return HF_EBADREQ;
        }
        if (push(L, &kv->val, depth + 1) != 0) {
            lua_pop(L, 2);
            return HF_EBADREQ;
        }
        map_set(L);
    }
    return 0;
}

int
hf_lua_push(lua_State *L, const msgpack_object *o)
{
    if (!lua_checkstack(L, 4))
        return HF_EBADREQ;
    return push(L, o, 0);
}

/* Pushes the object at *pp, read with the core's header reader: no
 * zone, nothing built but the Lua value. */
static int
push_mp(lua_State *L, const unsigned char **pp, const unsigned char *end,
        int depth)
{
    hf_mp_hdr h;
    uint64_t n;

    if (hf_mp_read_hdr(pp, end, &h) != 0)
        return HF_EBADREQ;
    switch (h.type) {
    case MSGPACK_OBJECT_NIL:
        lua_pushnil(L);
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, h.n != 0);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (h.n <= (uint64_t)LUA_MAXINTEGER)
            lua_pushinteger(L, (lua_Integer)h.n);
        else
            lua_pushnumber(L, (lua_Number)h.n);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lua_pushinteger(L, (lua_Integer)h.i);
        return 0;
    case MSGPACK_OBJECT_FLOAT32: {
        uint32_t b = hf_get_be32(h.body);
        float f;
        memcpy(&f, &b, 4);
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case MSGPACK_OBJECT_FLOAT64: {
        uint64_t b = hf_get_be64(h.body);
        double d;
        memcpy(&d, &b, 8);
        lua_pushnumber(L, (lua_Number)d);
        return 0;
    }
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        lua_pushlstring(L, h.body, h.len);
        return 0;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        break;
    default:
        return HF_EBADREQ;
    }
    if (depth >= HF_LUA_DEPTH || !lua_checkstack(L, 4))
        return HF_EBADREQ;
    n = h.n;
    if (h.type == MSGPACK_OBJECT_ARRAY) {
        lua_createtable(L, (int)(n > 1024 ? 1024 : n), 0);
        for (uint64_t i = 0; i < n; i++) {
            if (push_mp(L, pp, end, depth + 1) != 0) {
                lua_pop(L, 1);
                return HF_EBADREQ;
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1); /* nil: a hole */
        }
        return 0;
    }
    lua_createtable(L, 0, (int)(n > 1024 ? 1024 : n));
    for (uint64_t i = 0; i < n; i++) {
        if (push_mp(L, pp, end, depth + 1) != 0) {
            lua_pop(L, 1);
            return HF_EBADREQ;
        }
        if (push_mp(L, pp, end, depth + 1) != 0) {
            lua_pop(L, 2);
            return HF_EBADREQ;
        }
        map_set(L);
    }
    return 0;
}

int
hf_lua_push_bytes(lua_State *L, const void *data, size_t len)
{
    const unsigned char *p = data, *end = p + len;

    if (!lua_checkstack(L, 4) || push_mp(L, &p, end, 0) != 0)
        return HF_EBADREQ;
    if (p != end) { /* more than one object */
        lua_pop(L, 1);
        return HF_EBADREQ;
    }
    return 0;
}
