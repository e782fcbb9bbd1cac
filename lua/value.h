/*
 * value.h - Lua values <-> msgpack, the one seam where they are converted
 * (kinds' arguments, results, stored values, event data; the test runner;
 * the fuzz target).
 *
 * Rules (docs/decisions.md, "Lua values"):
 *   nil, booleans, strings (bytes as they are: NUL and invalid UTF-8 kept;
 *   JSON output shows invalid sequences as U+FFFD) map to themselves;
 *   integers stay 64-bit integers and floats stay floats (NaN and the
 *   infinities too: JSON output writes them as null);
 *   a table whose keys are exactly 1..n is an array; a table whose keys are
 *   all strings is a map; the empty table is an empty array;
 *   anything else (a sparse array, a non-string key, a function, userdata,
 *   nesting deeper than HF_LUA_DEPTH, e.g. a cycle) is refused, naming
 *   where.
 * From msgpack: an unsigned integer above 2^63-1 becomes a float; binary
 * becomes a string; nil inside an array leaves a hole; a map key that is
 * not a string is kept as its Lua value (nil and NaN keys are dropped);
 * extension types are refused.
 *
 * Thread-safety: none of its own; use a lua_State from one thread.
 */
#ifndef HF_LUA_VALUE_H
#define HF_LUA_VALUE_H

#include <lua.h>
#include <msgpack.h>
#include <stdint.h>

#include "core/buf.h"

/* Containers nested at most this deep, like the wire (HF_MP_DEPTH). */
#define HF_LUA_DEPTH 32

/* The most bytes one packed value may take: the largest value hf_put
 * stores. */
#define HF_LUA_PACK_MAX ((size_t)64 << 20)

/* What one packing may spend. A value reached through several references
 * is packed (and counted) once per reference. */
typedef struct hf_lua_bounds {
    size_t max_bytes;   /* of output */
    uint64_t max_nodes; /* values visited (keys and values) */
    uint64_t nodes;     /* out: visited */
} hf_lua_bounds;

/*
 * Packs the Lua value at idx onto pk. root names the value in messages
 * ("result", "value for 'k'"). Returns 0, or with a message in err:
 * HF_EBADREQ (e.g. "result.items[2]: a function cannot be stored"),
 * HF_ETOOLARGE (past b->max_bytes), HF_ETIMEOUT (past b->max_nodes) or
 * HF_EINTERNAL (a write to pk failed); pk may then hold part of the
 * value, so pack into a scratch buffer. Uses raw access (no metamethods).
 * May raise a Lua memory error (needs stack space). hf_lua_pack bounds
 * the bytes by HF_LUA_PACK_MAX and the nodes not at all.
 */
int hf_lua_pack_bounded(lua_State *L, int idx, msgpack_packer *pk,
                        const char *root, hf_lua_bounds *b, char *err,
                        size_t errlen);
int hf_lua_pack(lua_State *L, int idx, msgpack_packer *pk, const char *root,
                char *err, size_t errlen);

/* Pushes the Lua value of o. Returns 0, or HF_EBADREQ (nothing pushed)
 * for an extension type or nesting deeper than HF_LUA_DEPTH. May raise a
 * Lua memory error. */
int hf_lua_push(lua_State *L, const msgpack_object *o);

/* Pushes the value of the msgpack bytes (exactly one object), read with
 * the core's reader (core/mp.h), same rules. Returns 0, or HF_EBADREQ
 * (nothing pushed). May raise a Lua memory error. */
int hf_lua_push_bytes(lua_State *L, const void *data, size_t len);

#endif
