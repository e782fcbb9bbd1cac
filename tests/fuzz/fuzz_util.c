/* fuzz_util.c - see fuzz.h. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/err.h"
#include "tests/fuzz/fuzz.h"
#include "transport/wire.h"

void
fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: property does not hold: %s\n", file, line, what);
    abort();
}

int
fz_slice_eq(hf_slice a, hf_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

int
fz_obj_eq(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return 1;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return a->via.u64 == b->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return a->via.i64 == b->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
    case MSGPACK_OBJECT_STR:
        return fz_slice_eq((hf_slice){a->via.str.ptr, a->via.str.size},
                           (hf_slice){b->via.str.ptr, b->via.str.size});
    case MSGPACK_OBJECT_BIN:
        return fz_slice_eq((hf_slice){a->via.bin.ptr, a->via.bin.size},
                           (hf_slice){b->via.bin.ptr, b->via.bin.size});
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type &&
               fz_slice_eq((hf_slice){a->via.ext.ptr, a->via.ext.size},
                           (hf_slice){b->via.ext.ptr, b->via.ext.size});
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return 0;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!fz_obj_eq(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return 0;
        return 1;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return 0;
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!fz_obj_eq(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !fz_obj_eq(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return 0;
        return 1;
    }
    return 0;
}

/* One JSON text as a client would read it, with jansson. jansson refuses
 * two things RFC 8259 allows: integers beyond 64 bits (so numbers are read
 * as reals) and "\u0000" in an object key (so, in a copy, every \u0000
 * escape becomes \u0001 first: in valid JSON every backslash starts an
 * escape, so a scan that skips each escaped character finds them all). */
static void
check_json(const char *p, size_t n, int object)
{
    json_error_t jerr;
    json_t *j;
    char *t = malloc(n + 1);

    FZ_CHECK(t != NULL);
    FZ_CHECK(memchr(p, '\n', n) == NULL);
    memcpy(t, p, n);
    for (size_t i = 0; i + 1 < n; i++) {
        if (t[i] != '\\')
            continue;
        if (t[i + 1] == 'u' && i + 6 <= n && memcmp(t + i + 2, "0000", 4) == 0)
            t[i + 5] = '1';
        i++;
    }
    j = json_loadb(t, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (j == NULL)
        fprintf(stderr, "bad JSON output (%s): %.*s\n", jerr.text, (int)n, p);
    FZ_CHECK(j != NULL);
    FZ_CHECK(!object || json_is_object(j));
    json_decref(j);
    free(t);
}

void
fz_check_out(const hf_buf *out, int fmt)
{
    const char *p = out->data;
    size_t left = out->len;

    if (fmt == HF_WIRE_JSON) {
        while (left > 0) {
            const char *nl = memchr(p, '\n', left);
            size_t n = nl ? (size_t)(nl - p) : left;
            check_json(p, n, 1);
            p += n;
            left -= n;
            if (nl != NULL) {
                p++, left--;
                FZ_CHECK(left > 0); /* a separator, never a terminator */
            }
        }
        return;
    }
    while (left > 0) {
        unsigned char c = (unsigned char)p[0];
        size_t n = hf_wire_mp_check(p, left, 64);
        FZ_CHECK(n > 0);
        FZ_CHECK((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf);
        p += n;
        left -= n;
    }
}

/* The error code of a reply envelope, as on_reply reads it. */
static int
reply_code(const hf_env *e)
{
    char code[32];

    snprintf(code, sizeof(code), "%.*s", (int)e->code.len,
             (const char *)e->code.data);
    return hf_err_from_name(code);
}

void
fz_gateway_output(const hf_env *e, const msgpack_object *obj,
                  hf_slice client_id, hf_buf out[2], hf_buf *http)
{
    const msgpack_object *at;

    for (int fmt = HF_WIRE_JSON; fmt <= HF_WIRE_MSGPACK; fmt++) {
        hf_buf *b = &out[fmt];
        switch (e->op) {
        case HF_OUT_REPLY:
            if (e->ok)
                hf_wire_reply_ok(b, fmt, client_id, e->val);
            else
                hf_wire_reply_err(b, fmt, client_id, reply_code(e),
                                  e->msg.data, e->msg.len);
            break;
        case HF_OUT_EVENT:
            at = hf_arg(obj, "at");
            hf_wire_event(b, fmt, e->to, e->seq, e->method, e->val,
                          at && at->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                              ? (int64_t)at->via.u64
                              : 0);
            break;
        case HF_OUT_SIGNAL:
            hf_wire_signal(b, fmt, e->to, e->method, e->sub, e->val);
            break;
        case HF_OUT_PRESENCE:
            hf_wire_presence(b, fmt, e->to, e->action, e->val);
            break;
        default: /* the gateway ignores any other op */
            break;
        }
    }
    if (e->op != HF_OUT_REPLY)
        return;
    /* http_reply: an error, a call's result, or a history's value. */
    http->len = 0;
    if (!e->ok) {
        hf_wire_http_err(http, reply_code(e), e->msg.data, e->msg.len);
        check_json(http->data, http->len, 1);
        return;
    }
    hf_wire_http_ok(http, e->val);
    check_json(http->data, http->len, 1);
    http->len = 0;
    if (e->val != NULL) {
        hf_wire_json(http, e->val);
        check_json(http->data, http->len, 0);
    }
}
