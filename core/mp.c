/*
 * mp.c - the msgpack codec (see mp.h).
 *
 * Design notes
 * ------------
 * One header reader serves everything: the envelope reader (env.c), the
 * client wire decoder (wire.c), the structural walks and the object
 * reader here. Its common cases are inline in mp.h; the rest is a table
 * of the formats 0xc0..0xdf.
 *
 * One walk, two bookkeepings. walk() steps over an object keeping, per
 * open container, the elements still owed. With a depth bound it keeps
 * one entry per level (at most the bound, and never more than the bytes
 * left: each open container has taken a byte), so it knows when a level
 * closes and how deep the next container sits. Without a bound it keeps
 * one entry for all levels together: a nested container's elements are
 * added to what the top level still owes, so it needs no stack at all
 * and allocates nothing, however deep the input (env.c reads whole
 * envelopes whose values nest deeper than anything can unpack, so that
 * the request's id and connection still reach the worker, which refuses
 * the value with a reply).
 *
 * The rule both callers rely on: a container whose count is larger than
 * the bytes left is refused at its header. It only ever refuses bytes
 * that would turn out truncated anyway (every element takes a byte at
 * least), so what is accepted is exactly the complete objects; it makes
 * refusing them cheap, and lets hf_mp_read_obj allocate a container's
 * elements before reading them, as msgpack-c does, without trusting a
 * count an attacker wrote.
 */
#include <msgpack/unpack_define.h> /* MSGPACK_EMBED_STACK_SIZE */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mp.h"

_Static_assert(HF_MP_DEPTH == MSGPACK_EMBED_STACK_SIZE,
               "HF_MP_DEPTH is msgpack-c's unpack stack");

/* ------------------------------------------------------------------ */
/* headers                                                             */

/* Formats 0xc0..0xdf (0xc1 is never used). w: bytes of the length (or
 * integer value) field after the type byte; fixed: payload bytes when
 * there is no length field; ext: a one-byte extension type follows the
 * length. Signed integers are typed NEGATIVE_INTEGER here and retyped by
 * their value. */
#define FMT(c) [(c)-0xc0]
static const struct fmtdef {
    unsigned char type, w, fixed, ext;
} fmts[32] = {
    FMT(0xc0) = {MSGPACK_OBJECT_NIL, 0, 0, 0},
    FMT(0xc2) = {MSGPACK_OBJECT_BOOLEAN, 0, 0, 0},
    FMT(0xc3) = {MSGPACK_OBJECT_BOOLEAN, 0, 0, 0},
    FMT(0xc4) = {MSGPACK_OBJECT_BIN, 1, 0, 0},
    FMT(0xc5) = {MSGPACK_OBJECT_BIN, 2, 0, 0},
    FMT(0xc6) = {MSGPACK_OBJECT_BIN, 4, 0, 0},
    FMT(0xc7) = {MSGPACK_OBJECT_EXT, 1, 0, 1},
    FMT(0xc8) = {MSGPACK_OBJECT_EXT, 2, 0, 1},
    FMT(0xc9) = {MSGPACK_OBJECT_EXT, 4, 0, 1},
    FMT(0xca) = {MSGPACK_OBJECT_FLOAT32, 0, 4, 0},
    FMT(0xcb) = {MSGPACK_OBJECT_FLOAT64, 0, 8, 0},
    FMT(0xcc) = {MSGPACK_OBJECT_POSITIVE_INTEGER, 1, 0, 0},
    FMT(0xcd) = {MSGPACK_OBJECT_POSITIVE_INTEGER, 2, 0, 0},
    FMT(0xce) = {MSGPACK_OBJECT_POSITIVE_INTEGER, 4, 0, 0},
    FMT(0xcf) = {MSGPACK_OBJECT_POSITIVE_INTEGER, 8, 0, 0},
    FMT(0xd0) = {MSGPACK_OBJECT_NEGATIVE_INTEGER, 1, 0, 0},
    FMT(0xd1) = {MSGPACK_OBJECT_NEGATIVE_INTEGER, 2, 0, 0},
    FMT(0xd2) = {MSGPACK_OBJECT_NEGATIVE_INTEGER, 4, 0, 0},
    FMT(0xd3) = {MSGPACK_OBJECT_NEGATIVE_INTEGER, 8, 0, 0},
    FMT(0xd4) = {MSGPACK_OBJECT_EXT, 0, 1, 1},
    FMT(0xd5) = {MSGPACK_OBJECT_EXT, 0, 2, 1},
    FMT(0xd6) = {MSGPACK_OBJECT_EXT, 0, 4, 1},
    FMT(0xd7) = {MSGPACK_OBJECT_EXT, 0, 8, 1},
    FMT(0xd8) = {MSGPACK_OBJECT_EXT, 0, 16, 1},
    FMT(0xd9) = {MSGPACK_OBJECT_STR, 1, 0, 0},
    FMT(0xda) = {MSGPACK_OBJECT_STR, 2, 0, 0},
    FMT(0xdb) = {MSGPACK_OBJECT_STR, 4, 0, 0},
    FMT(0xdc) = {MSGPACK_OBJECT_ARRAY, 2, 0, 0},
    FMT(0xdd) = {MSGPACK_OBJECT_ARRAY, 4, 0, 0},
    FMT(0xde) = {MSGPACK_OBJECT_MAP, 2, 0, 0},
    FMT(0xdf) = {MSGPACK_OBJECT_MAP, 4, 0, 0},
};
#undef FMT

int
hf_mp_read_hdr_slow(const unsigned char **pp, const unsigned char *end,
                    hf_mp_hdr *h)
{
    const unsigned char *p = *pp;
    const struct fmtdef *d;
    uint64_t v = 0;
    unsigned c;

    if (p >= end)
        return -1;
    c = *p++;
    if (c <= 0x7f) {
        h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        h->n = c;
    } else if (c <= 0x8f) {
        h->type = MSGPACK_OBJECT_MAP;
        h->n = c & 0x0f;
    } else if (c <= 0x9f) {
        h->type = MSGPACK_OBJECT_ARRAY;
        h->n = c & 0x0f;
    } else if (c <= 0xbf) {
        h->type = MSGPACK_OBJECT_STR;
        h->len = c & 0x1f;
        goto body;
    } else if (c >= 0xe0) {
        h->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        h->i = (int8_t)c;
    } else {
        if (c == 0xc1)
            return -1;
        d = &fmts[c - 0xc0];
        if ((size_t)(end - p) < (size_t)d->w + d->ext)
            return -1;
        for (unsigned i = 0; i < d->w; i++)
            v = v << 8 | *p++;
        h->type = d->type;
        switch (d->type) {
        case MSGPACK_OBJECT_NIL:
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            h->n = c & 1;
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
        case MSGPACK_OBJECT_ARRAY:
        case MSGPACK_OBJECT_MAP:
            h->n = v;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
            int64_t s;
            if (d->w < 8 && (v >> (8 * d->w - 1)) != 0)
                v |= ~0ULL << (8 * d->w); /* sign-extend */
            memcpy(&s, &v, sizeof(s));
            if (s >= 0) {
                h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
                h->n = (uint64_t)s;
            } else {
                h->i = s;
            }
            break;
        }
        default: /* STR, BIN, EXT, FLOAT32/64: a payload follows */
            if (d->ext)
                h->ext = (int8_t)*p++;
            h->len = d->w ? (size_t)v : d->fixed;
            goto body;
        }
    }
    *pp = p;
    return 0;

body:
    if ((size_t)(end - p) < h->len)
        return -1;
    h->body = (const char *)p;
    *pp = p + h->len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* stepping over whole objects                                         */

#define NOLIMIT SIZE_MAX

/* Steps over one object at p (see the notes). Returns its length, or 0
 * with *why set. lim: the depth bound, or NOLIMIT. */
static size_t
walk(const unsigned char *p, size_t len, size_t lim, int *why)
{
    const unsigned char *start = p, *end = p + len;
    uint64_t small[64], *rem = small;
    size_t cap = lim == NOLIMIT ? 1 : lim < len ? lim : len;
    size_t depth = 0, r = 0;
    hf_mp_hdr h;

    *why = HF_MP_BAD;
    if (cap > sizeof small / sizeof small[0] &&
        (rem = malloc(cap * sizeof *rem)) == NULL) {
        *why = HF_MP_NOMEM;
        return 0;
    }
    for (;;) {
        if (hf_mp_read_hdr(&p, end, &h) != 0)
            goto out;
        if (h.type == MSGPACK_OBJECT_ARRAY || h.type == MSGPACK_OBJECT_MAP) {
            uint64_t cnt = h.type == MSGPACK_OBJECT_MAP ? 2 * h.n : h.n;
            if (cnt > (uint64_t)(end - p))
                goto out;
            if (lim != NOLIMIT && depth >= lim) {
                *why = HF_MP_DEEP;
                goto out;
            }
            if (cnt > 0 && depth < cap) {
                rem[depth++] = cnt;
                continue;
            }
            if (cnt > 0) /* no bound: the top entry owes for all levels */
                rem[depth - 1] += cnt;
        }
        while (depth > 0 && --rem[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            r = (size_t)(p - start);
            *why = HF_MP_OK;
            break;
        }
    }
out:
    if (rem != small)
        free(rem);
    return r;
}

int
hf_mp_skip(const unsigned char **pp, const unsigned char *end)
{
    int why;
    size_t n = walk(*pp, (size_t)(end - *pp), NOLIMIT, &why);

    if (n == 0)
        return -1;
    *pp += n;
    return 0;
}

size_t
hf_mp_check(const void *data, size_t len, int max_depth, int *why)
{
    int w = HF_MP_BAD;
    size_t n = 0;

    if (data != NULL)
        n = walk(data, len, max_depth > 0 ? (size_t)max_depth : 0, &w);
    if (why != NULL)
        *why = w;
    return n;
}

/* ------------------------------------------------------------------ */
/* reading objects                                                     */

static uint64_t
get_be(const char *p, int n)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | u[i];
    return v;
}

int
hf_mp_read_obj(const unsigned char **pp, const unsigned char *end,
               unsigned depth, msgpack_zone *z, msgpack_object *o)
{
    hf_mp_hdr h;

    if (hf_mp_read_hdr(pp, end, &h) != 0)
        return -1;
    o->type = (msgpack_object_type)h.type;
    switch (h.type) {
    case MSGPACK_OBJECT_BOOLEAN:
        o->via.boolean = h.n != 0;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        o->via.u64 = h.n;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        o->via.i64 = h.i;
        break;
    case MSGPACK_OBJECT_FLOAT32: {
        uint32_t u = (uint32_t)get_be(h.body, 4);
        float f;
        memcpy(&f, &u, sizeof(f));
        o->via.f64 = f;
        break;
    }
    case MSGPACK_OBJECT_FLOAT64: {
        uint64_t u = get_be(h.body, 8);
        memcpy(&o->via.f64, &u, sizeof(u));
        break;
    }
    case MSGPACK_OBJECT_STR:
        o->via.str.ptr = h.body;
        o->via.str.size = (uint32_t)h.len;
        break;
    case MSGPACK_OBJECT_BIN:
        o->via.bin.ptr = h.body;
        o->via.bin.size = (uint32_t)h.len;
        break;
    case MSGPACK_OBJECT_EXT:
        o->via.ext.type = h.ext;
        o->via.ext.ptr = h.body;
        o->via.ext.size = (uint32_t)h.len;
        break;
    case MSGPACK_OBJECT_ARRAY:
        /* The count cannot exceed the bytes left (see the notes). */
        if (depth >= HF_MP_DEPTH || h.n > (uint64_t)(end - *pp))
            return -1;
        o->via.array.size = (uint32_t)h.n;
        if ((o->via.array.ptr =
                 msgpack_zone_malloc(z, h.n * sizeof(msgpack_object))) == NULL)
            return -1;
        for (uint64_t i = 0; i < h.n; i++)
            if (hf_mp_read_obj(pp, end, depth + 1, z,
                               &o->via.array.ptr[i]) != 0)
                return -1;
        break;
    case MSGPACK_OBJECT_MAP:
        if (depth >= HF_MP_DEPTH || 2 * h.n > (uint64_t)(end - *pp))
            return -1;
        o->via.map.size = (uint32_t)h.n;
        if ((o->via.map.ptr = msgpack_zone_malloc(
                 z, h.n * sizeof(msgpack_object_kv))) == NULL)
            return -1;
        for (uint64_t i = 0; i < h.n; i++)
            if (hf_mp_read_obj(pp, end, depth + 1, z,
                               &o->via.map.ptr[i].key) != 0 ||
                hf_mp_read_obj(pp, end, depth + 1, z,
                               &o->via.map.ptr[i].val) != 0)
                return -1;
        break;
    default: /* nil */
        break;
    }
    return 0;
}

int
hf_unpack_next(const void *buf, size_t len, size_t *off, msgpack_zone *zone,
               msgpack_object *obj)
{
    const unsigned char *p, *end = (const unsigned char *)buf + len;

    /* hf_mp_read_obj, not msgpack_unpack: msgpack-c allocates a
     * container's count x 24 bytes before it reads one element, so a
     * 5-byte header from a damaged record asked for 256 GB (fuzz_stored);
     * ours bounds every count by the bytes that follow, in one pass. */
    if (*off >= len)
        return HF_EBADREQ;
    p = (const unsigned char *)buf + *off;
    if (hf_mp_read_obj(&p, end, 0, zone, obj) != 0)
        return HF_EBADREQ;
    *off = (size_t)(p - (const unsigned char *)buf);
    return 0;
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

char *
hf_mp_emit_begin(hf_mp_emit *em, msgpack_packer *pk, size_t max)
{
    em->pk = pk;
    em->b = NULL;
    em->tmp = NULL;
    if (pk->callback == hf_buf_mpwrite) {
        em->b = pk->data;
        return hf_buf_reserve(em->b, max) == 0 ? em->b->data + em->b->len
                                               : NULL;
    }
    em->tmp = max <= sizeof(em->small) ? em->small : malloc(max);
    return em->tmp;
}

int
hf_mp_emit_end(hf_mp_emit *em, char *p)
{
    int rv = 0;

    if (em->b != NULL) {
        em->b->len = (size_t)(p - em->b->data);
        return 0;
    }
    if (em->pk->callback(em->pk->data, em->tmp, (size_t)(p - em->tmp)) != 0)
        rv = HF_EINTERNAL;
    if (em->tmp != em->small)
        free(em->tmp);
    return rv;
}

int
hf_buf_mpwrite(void *data, const char *p, size_t n)
{
    return hf_buf_append(data, p, n) == 0 ? 0 : -1;
}

int
hf_pack_str(msgpack_packer *pk, const void *s, size_t len)
{
    hf_mp_emit em;
    char *p;

    if (len > UINT32_MAX)
        return HF_EINTERNAL;
    if (pk->callback == hf_buf_mpwrite) {
        if ((p = hf_mp_emit_begin(&em, pk, 5 + len)) == NULL)
            return HF_EINTERNAL;
        return hf_mp_emit_end(&em, hf_mp_put_str(p, s, len));
    }
    if (msgpack_pack_str(pk, len) != 0 ||
        msgpack_pack_str_body(pk, s, len) != 0)
        return HF_EINTERNAL;
    return 0;
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
