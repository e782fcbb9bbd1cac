/*
 * mpjson.c - JSON <-> msgpack (see mpjson.h).
 *
 * Design notes
 * ------------
 * Recursion is bounded on both sides: jansson bounds JSON nesting on
 * input, and every msgpack object rendered here was built by an unpacker
 * that bounds nesting (msgpack-c's stack, or hf_mp_read_obj's HF_MP_DEPTH).
 *
 * The writer is the gateway's hot path (every event to a JSON client), so
 * it copies plain string bytes in runs and only stops at what it must
 * escape or repair. The rules are in mpjson.h; they are the wire
 * protocol's, so every JSON the engine writes -- wire messages, HTTP
 * bodies, the CLI's and the tests' rendering -- comes out of this one
 * writer byte for byte the same.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"

static void
pack_json(msgpack_packer *pk, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach(j, k, v) {
            hf_pack_cstr(pk, k);
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack_json(pk, v);
        break;
    }
    case JSON_STRING:
        hf_pack_str(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

int
hf_json_to_mp(const char *json, size_t len, hf_buf *out)
{
    json_error_t jerr;
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                           &jerr);
    msgpack_packer pk;

    if (j == NULL)
        return HF_EBADREQ;
    msgpack_packer_init(&pk, out, hf_buf_mpwrite);
    pack_json(&pk, j);
    json_decref(j);
    return 0;
}

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

/* Length (1-4) of the well-formed UTF-8 sequence at p, or minus the
 * length of its maximal ill-formed prefix (what one U+FFFD replaces). */
static int
utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    int need;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c == 0xe0)
        need = 2, lo = 0xa0;
    else if (c == 0xed)
        need = 2, hi = 0x9f; /* no surrogates */
    else if (c >= 0xe1 && c <= 0xef)
        need = 2;
    else if (c == 0xf0)
        need = 3, lo = 0x90;
    else if (c == 0xf4)
        need = 3, hi = 0x8f; /* <= U+10FFFF */
    else if (c >= 0xf1 && c <= 0xf3)
        need = 3;
    else
        return -1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n || p[i] < lo || p[i] > hi)
            return -i;
        lo = 0x80, hi = 0xbf;
    }
    return need + 1;
}

int
hf_json_utf8_valid(const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    int l;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((l = utf8_seq(p + i, n - i)) < 0)
            return 0;
        i += (size_t)l;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* msgpack and strings out as JSON                                     */

/* v's digits, after a '-' when neg. */
static void
digits(hf_json_wr *w, uint64_t v, int neg)
{
    char b[24];
    size_t i = sizeof b;

    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg)
        b[--i] = '-';
    hf_json_put(w, b + i, sizeof b - i);
}

void
hf_json_u64(hf_json_wr *w, uint64_t v)
{
    digits(w, v, 0);
}

void
hf_json_i64(hf_json_wr *w, int64_t v)
{
    if (v < 0)
        digits(w, ~(uint64_t)v + 1, 1); /* |v|, INT64_MIN too */
    else
        digits(w, (uint64_t)v, 0);
}

/* prec 17 round-trips a double, 9 a float. A value that prints like an
 * integer gets ".0", so it stays a real when read back. */
static void
js_double(hf_json_wr *w, double d, int prec)
{
    char b[48];
    int n;

    if (!isfinite(d)) {
        HF_JSON_PUTS(w, "null");
        return;
    }
    n = snprintf(b, sizeof b - 2, "%.*g", prec, d);
    if (n < 0 || (size_t)n >= sizeof b - 2) {
        HF_JSON_PUTS(w, "null");
        return;
    }
    for (int i = 0; i < n; i++)
        if (b[i] == ',') /* a locale's decimal comma */
            b[i] = '.';
    if (strpbrk(b, ".e") == NULL) {
        b[n++] = '.';
        b[n++] = '0';
    }
    hf_json_put(w, b, (size_t)n);
}

/* Two-character escapes; other control characters get \u00XX. */
static const char short_esc[128] = {
    ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
    ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't',
};

/* A JSON string: quotes, backslash and control characters escaped,
 * ill-formed UTF-8 replaced by U+FFFD, everything else copied in runs. */
void
hf_json_str(hf_json_wr *w, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = data;
    size_t i = 0, run = 0;

    HF_JSON_PUTS(w, "\"");
    while (i < n) {
        unsigned c = s[i];
        int l = 1;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80 && (l = utf8_seq(s + i, n - i)) > 0) {
            i += (size_t)l;
            continue;
        }
        if (i > run)
            hf_json_put(w, s + run, i - run);
        if (c >= 0x80) {
            HF_JSON_PUTS(w, "\xef\xbf\xbd"); /* U+FFFD */
            i += (size_t)-l;
        } else if (short_esc[c] != 0) {
            char esc[2] = {'\\', short_esc[c]};
            hf_json_put(w, esc, 2);
            i++;
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            hf_json_put(w, esc, 6);
            i++;
        }
        run = i;
    }
    if (i > run)
        hf_json_put(w, s + run, i - run);
    HF_JSON_PUTS(w, "\"");
}

/* A non-string map key: the string of its JSON text. A container key
 * holding a container key is escaped once per level, and each escaping
 * doubles the backslashes of the level inside: 31 levels (a msgpack
 * client may send that many, as a signal's data or a call's args) turned
 * 63 bytes into gigabytes for every JSON subscriber. So a container key
 * inside KEY_NEST_MAX others is written as "null", capping the growth at
 * 2^KEY_NEST_MAX; shallower keys render as they always did. (Found by the
 * envelope fuzz target.) */
#define KEY_NEST_MAX 4

static void
js_key_text(hf_json_wr *w, const msgpack_object *k)
{
    int box = k->type == MSGPACK_OBJECT_ARRAY || k->type == MSGPACK_OBJECT_MAP;
    hf_buf tmp = {0};
    hf_json_wr t = {&tmp, 0, 0, w->keys + box};

    if (box && w->keys >= KEY_NEST_MAX) {
        hf_json_str(w, "null", 4);
        return;
    }

    hf_json_mp(&t, k);
    if (t.fail)
        w->fail = 1;
    else
        hf_json_str(w, tmp.data, tmp.len);
    hf_buf_free(&tmp);
}

void
hf_json_mp(hf_json_wr *w, const msgpack_object *o)
{
    if (o == NULL) {
        HF_JSON_PUTS(w, "null");
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean)
            HF_JSON_PUTS(w, "true");
        else
            HF_JSON_PUTS(w, "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        hf_json_u64(w, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        hf_json_i64(w, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
        js_double(w, o->via.f64, 9);
        break;
    case MSGPACK_OBJECT_FLOAT64:
        js_double(w, o->via.f64, 17);
        break;
    case MSGPACK_OBJECT_STR:
        hf_json_str(w, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        HF_JSON_PUTS(w, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i > 0)
                HF_JSON_PUTS(w, ",");
            hf_json_mp(w, &o->via.array.ptr[i]);
        }
        HF_JSON_PUTS(w, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        HF_JSON_PUTS(w, "{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i > 0)
                HF_JSON_PUTS(w, ",");
            if (kv->key.type == MSGPACK_OBJECT_STR)
                hf_json_str(w, kv->key.via.str.ptr, kv->key.via.str.size);
            else
                js_key_text(w, &kv->key);
            HF_JSON_PUTS(w, ":");
            hf_json_mp(w, &kv->val);
        }
        HF_JSON_PUTS(w, "}");
        break;
    default: /* nil, bin, ext */
        HF_JSON_PUTS(w, "null");
        break;
    }
}

int
hf_mp_to_json_buf(hf_buf *out, const msgpack_object *o)
{
    hf_json_wr w = {out, out->len, 0, 0};

    hf_json_mp(&w, o);
    if (w.fail) {
        out->len = w.start;
        return HF_EINTERNAL;
    }
    return 0;
}

char *
hf_mp_to_json(const msgpack_object *o)
{
    hf_buf b = {0};

    if (hf_mp_to_json_buf(&b, o) != 0 || hf_buf_append(&b, "", 1) != 0) {
        hf_buf_free(&b);
        return NULL;
    }
    return b.data; /* malloc'd by hf_buf */
}
