/*
 * fuzz_luaval.c - the Lua value converter (lua/value.h), under a memory
 * cap, both ways.
 *
 * The first byte picks the mode, the rest is its input:
 *  - even: msgpack bytes into Lua (hf_lua_push_bytes, and msgpack-c's
 *    reader then hf_lua_push, which must agree), then back out
 *    (hf_lua_pack). Pushing never leaves the stack unbalanced; when the
 *    value packs again, the bytes are one well-formed object at most 33
 *    levels deep, and pushing and packing those gives the same object
 *    again (maps compared as sets: Lua's table order is its own);
 *  - odd: a little program that builds a Lua value (integers, floats,
 *    strings, tables, keys of every type, holes, cycles, deep nests) and
 *    packs it: either bad_request with a message that starts with the
 *    root's name, or a well-formed object that round-trips as above.
 * Lua errors (the memory cap) end an input quietly: they are the cap
 * working, inside a protected call.
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mp.h"
#include "lua/value.h"
#include "tests/fuzz/fuzz.h"

#define CAP (64u << 20)

struct in {
    const uint8_t *p;
    size_t n;
};

static size_t used;

static void *
capped(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr ? osize : 0;
    void *q;

    (void)ud;
    if (nsize == 0) {
        free(ptr);
        used -= old;
        return NULL;
    }
    if (nsize > old && used + (nsize - old) > CAP)
        return NULL;
    if ((q = realloc(ptr, nsize)) != NULL)
        used = used - old + nsize;
    return q;
}

/* Object equality with maps as sets (each key of a found in b, same
 * size; keys are unique in what the converter writes). */
static int
same(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type == MSGPACK_OBJECT_MAP) {
        if (a->via.map.size != b->via.map.size)
            return 0;
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            uint32_t j = 0;
            for (; j < b->via.map.size; j++)
                if (fz_obj_eq(&a->via.map.ptr[i].key, &b->via.map.ptr[j].key))
                    break;
            if (j == b->via.map.size ||
                !same(&a->via.map.ptr[i].val, &b->via.map.ptr[j].val))
                return 0;
        }
        return 1;
    }
    if (a->type == MSGPACK_OBJECT_ARRAY) {
        if (a->via.array.size != b->via.array.size)
            return 0;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return 0;
        return 1;
    }
    return fz_obj_eq(a, b);
}

/* Packs the value at the top; on success checks the round trip. */
static void
pack_and_check(lua_State *L)
{
    hf_buf b1 = {0}, b2 = {0};
    msgpack_packer pk;
    msgpack_zone z1, z2;
    msgpack_object o1, o2;
    char err[200];
    size_t off = 0;
    int top = lua_gettop(L), rv;

    msgpack_packer_init(&pk, &b1, hf_buf_mpwrite);
    rv = hf_lua_pack(L, -1, &pk, "root", err, sizeof(err));
    FZ_CHECK(lua_gettop(L) == top);
    if (rv != 0) {
        FZ_CHECK(rv == HF_EBADREQ && strncmp(err, "root", 4) == 0);
        hf_buf_free(&b1);
        return;
    }
    FZ_CHECK(hf_mp_check(b1.data, b1.len, HF_LUA_DEPTH + 1, NULL) == b1.len);
    msgpack_zone_init(&z1, 1024);
    msgpack_zone_init(&z2, 1024);
    FZ_CHECK(hf_lua_push_bytes(L, b1.data, b1.len) == 0);
    msgpack_packer_init(&pk, &b2, hf_buf_mpwrite);
    FZ_CHECK(hf_lua_pack(L, -1, &pk, "again", err, sizeof(err)) == 0);
    lua_pop(L, 1);
    FZ_CHECK(hf_unpack_next(b1.data, b1.len, &off, &z1, &o1) == 0);
    off = 0;
    FZ_CHECK(hf_unpack_next(b2.data, b2.len, &off, &z2, &o2) == 0);
    FZ_CHECK(same(&o1, &o2));
    msgpack_zone_destroy(&z1);
    msgpack_zone_destroy(&z2);
    hf_buf_free(&b1);
    hf_buf_free(&b2);
}

/* The bytes read by the core's reader (hf_lua_push_bytes) and by
 * msgpack-c (hf_unpack_next, then hf_lua_push) must give the same value
 * when both take them. */
static int
from_msgpack(lua_State *L)
{
    struct in *in = lua_touserdata(L, 1);
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    int top = lua_gettop(L), rv, rv2 = -1;

    rv = hf_lua_push_bytes(L, in->p, in->n);
    FZ_CHECK(lua_gettop(L) == top + (rv == 0));
    if (rv != 0)
        return 0;
    msgpack_zone_init(&z, 1024);
    if (hf_unpack_next(in->p, in->n, &off, &z, &o) == 0 && off == in->n)
        rv2 = hf_lua_push(L, &o);
    msgpack_zone_destroy(&z);
    if (rv2 == 0) {
        hf_buf a = {0}, b = {0};
        msgpack_packer pa, pb;
        char err[200];
        int ra, rb;
        msgpack_packer_init(&pa, &a, hf_buf_mpwrite);
        msgpack_packer_init(&pb, &b, hf_buf_mpwrite);
        ra = hf_lua_pack(L, -2, &pa, "a", err, sizeof(err));
        rb = hf_lua_pack(L, -1, &pb, "a", err, sizeof(err));
        FZ_CHECK(ra == rb);
        if (ra == 0) {
            msgpack_zone za, zb;
            msgpack_object oa, ob;
            size_t x = 0, y = 0;
            msgpack_zone_init(&za, 1024);
            msgpack_zone_init(&zb, 1024);
            FZ_CHECK(hf_unpack_next(a.data, a.len, &x, &za, &oa) == 0);
            FZ_CHECK(hf_unpack_next(b.data, b.len, &y, &zb, &ob) == 0);
            FZ_CHECK(same(&oa, &ob));
            msgpack_zone_destroy(&za);
            msgpack_zone_destroy(&zb);
        }
        hf_buf_free(&a);
        hf_buf_free(&b);
        lua_pop(L, 1);
    }
    pack_and_check(L);
    return 0;
}

static uint8_t
next(struct in *in)
{
    uint8_t c = in->n ? *in->p : 0;
    if (in->n) {
        in->p++;
        in->n--;
    }
    return c;
}

/* A value by a program: ops on a stack of at most 40 values. */
static int
from_program(lua_State *L)
{
    struct in *in = lua_touserdata(L, 1);
    int base = lua_gettop(L);

    lua_newtable(L);
    while (in->n > 0 && lua_gettop(L) < base + 40) {
        uint8_t op = next(in), a = next(in);
        int top = lua_gettop(L);
        switch (op % 10) {
        case 0:
            lua_pushinteger(L, (lua_Integer)(int8_t)a *
                                   (a & 1 ? LUA_MAXINTEGER / 128 : 1));
            break;
        case 1:
            lua_pushnumber(L, a == 0 ? 0.0 / 0.0 : a == 1 ? 1.0 / 0.0
                                                         : a / 3.0);
            break;
        case 2: {
            char s[8] = {(char)a, 0, (char)0xff, 'x', 'y', 'z', 'w', 'v'};
            lua_pushlstring(L, s, a % 8);
            break;
        }
        case 3:
            lua_newtable(L);
            break;
        case 4: /* t[k] = v for the three on top: t k v */
            if (top - base >= 3 && lua_istable(L, -3) && !lua_isnil(L, -2))
                lua_rawset(L, -3);
            break;
        case 5: /* t[a % 8 + 1] = v */
            if (top - base >= 2 && lua_istable(L, -2))
                lua_rawseti(L, -2, a % 8 + 1);
            break;
        case 6: /* a cycle: t.self = t */
            if (lua_istable(L, -1)) {
                lua_pushvalue(L, -1);
                lua_setfield(L, -2, "self");
            }
            break;
        case 7: /* nest a levels deep */
            for (int i = 0; i < a % 48; i++) {
                lua_createtable(L, 1, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
            }
            break;
        case 8:
            lua_pushboolean(L, a & 1);
            break;
        case 9:
            if (a & 1)
                lua_pushcfunction(L, from_program);
            else
                lua_pushnil(L);
            break;
        }
    }
    lua_settop(L, base + 1);
    pack_and_check(L);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L;
    struct in in = {data + (size > 0), size - (size > 0)};

    if (size == 0)
        return 0;
    used = 0;
    if ((L = lua_newstate(capped, NULL)) == NULL)
        return 0;
    lua_pushcfunction(L, data[0] & 1 ? from_program : from_msgpack);
    lua_pushlightuserdata(L, &in);
    (void)lua_pcall(L, 1, 0, 0);
    lua_close(L);
    return 0;
}
