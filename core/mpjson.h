/*
 * mpjson.h - JSON <-> msgpack: JSON text into msgpack (on jansson), and
 * the one JSON writer: msgpack values and strings out as JSON text.
 *
 * The wire protocol's JSON and msgpack subprotocols share one schema; the
 * engine speaks msgpack inside. Reading goes through jansson; writing is
 * done here by hand (the gateway writes every event a JSON client gets),
 * with these rules:
 *  - strings are escaped per RFC 8259 ('"', '\\' and control characters;
 *    \b \f \n \r \t as such, others as \u00xx), and repaired to valid
 *    UTF-8: each maximal ill-formed subsequence becomes U+FFFD;
 *  - integers are exact (all of uint64 and int64);
 *  - a double is written with 17 significant digits, a float with 9 (both
 *    read back identical), with ".0" added when it would read as an
 *    integer; NaN and infinities become null;
 *  - binary, extension and nil values become null; an empty string is "";
 *  - a map key that is not a string becomes the string of its JSON text
 *    (a map or array key nested in 4 others becomes "null": see mpjson.c);
 *    keys are written as they come (duplicates included), in order.
 *
 * Pure functions, any thread; an hf_json_wr is used by one thread.
 */
#ifndef HF_CORE_MPJSON_H
#define HF_CORE_MPJSON_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"

/* Parses JSON text (any value, not only objects) and appends its msgpack
 * encoding to out. Returns 0 or HF_EBADREQ (invalid JSON or UTF-8). */
int hf_json_to_mp(const char *json, size_t len, hf_buf *out);

/* Renders a msgpack object (NULL: null) as compact JSON. Returns a
 * malloc'd, NUL-terminated string the caller frees, or NULL on memory
 * failure. */
char *hf_mp_to_json(const msgpack_object *o);

/* Appends the same text to out. Returns 0, or HF_EINTERNAL on memory
 * failure (out then holds what it held before). */
int hf_mp_to_json_buf(hf_buf *out, const msgpack_object *o);

/* True when the n bytes at p are well-formed UTF-8. */
int hf_json_utf8_valid(const void *p, size_t n);

/* ------------------------------------------------------------------ */
/* the writer, for building JSON a piece at a time                     */

/* Appends to b and remembers failure: after an append fails nothing more
 * is written and fail is set; the owner then cuts b back to start, so b
 * never keeps half a value. Set it up as {b, b->len, 0}. */
typedef struct hf_json_wr {
    hf_buf *b;
    size_t start; /* b->len before this piece of work: where to cut back */
    int fail;
    int keys;     /* container map keys being rendered around this text */
} hf_json_wr;

/* Raw bytes. Inline, not hf_buf_append: JSON is written in many short
 * pieces. */
static inline void
hf_json_put(hf_json_wr *w, const void *p, size_t n)
{
    hf_buf *b = w->b;

    if (w->fail || n == 0)
        return;
    if (b->cap - b->len < n && hf_buf_reserve(b, n) != 0) {
        w->fail = 1;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

#define HF_JSON_PUTS(w, lit) hf_json_put((w), (lit), sizeof(lit) - 1)

/* A string (the n bytes at s), quoted, escaped and repaired. */
void hf_json_str(hf_json_wr *w, const void *s, size_t n);
void hf_json_u64(hf_json_wr *w, uint64_t v);
void hf_json_i64(hf_json_wr *w, int64_t v);

/* A msgpack object (NULL: null). Recursive: the object must come from an
 * unpacker that bounds nesting (msgpack-c, hf_mp_read_obj). */
void hf_json_mp(hf_json_wr *w, const msgpack_object *o);

#endif
