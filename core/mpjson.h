/*
 * mpjson.h - JSON <-> msgpack, on jansson.
 *
 * The wire protocol's JSON and msgpack subprotocols share one schema; the
 * engine speaks msgpack inside. Pure functions, any thread.
 */
#ifndef HF_CORE_MPJSON_H
#define HF_CORE_MPJSON_H

#include <msgpack.h>

#include "core/buf.h"

/* Parses JSON text (any value, not only objects) and appends its msgpack
 * encoding to out. Returns 0 or HF_EBADREQ (invalid JSON or UTF-8). */
int hf_json_to_mp(const char *json, size_t len, hf_buf *out);

/* Renders a msgpack object as compact JSON. Returns a malloc'd,
 * NUL-terminated string the caller frees, or NULL on memory failure.
 * Binary and extension values become null; non-string map keys are
 * rendered as their JSON text (a map or array key nested in 4 others as
 * "null", as transport/wire.h's hf_wire_json does, and for the same
 * reason). */
char *hf_mp_to_json(const msgpack_object *o);

#endif
