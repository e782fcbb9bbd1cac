/*
 * mp.h - msgpack, the engine's one codec: reading from bytes without
 * trusting them, and writing the smallest encoding msgpack-c would write.
 *
 * Reading. hf_mp_read_hdr reads one header; hf_mp_skip and hf_mp_check step
 * over one whole object without recursion; hf_mp_read_obj builds one
 * object in a zone as msgpack_unpack would. None of them trusts a length
 * or a count: a string must fit in the bytes left, and an array or map
 * header is refused when the bytes left could not hold that many elements
 * (every element takes a byte at least), so a 5-byte header never makes
 * anyone allocate gigabytes. Nesting is bounded by HF_MP_DEPTH where the
 * caller asks for a bound.
 *
 * Depth counts containers, empty ones included, as msgpack-c does: a bare
 * scalar is depth 0, [] is 1, [[]] is 2.
 *
 * Writing. The hf_mp_put_* functions write one item at p (the caller has
 * made room: each says how much it may need) and return the end; with
 * hf_mp_emit a whole message goes to a packer in one write. hf_pack_* are
 * the same through a msgpack_packer.
 *
 * Pure functions, any thread. Nothing here keeps a pointer to the input.
 */
#ifndef HF_CORE_MP_H
#define HF_CORE_MP_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"

/* msgpack-c's own unpack stack (MSGPACK_EMBED_STACK_SIZE; mp.c checks the
 * two agree): the most containers that can be open at once in anything
 * msgpack_unpack, and hf_mp_read_obj, will read. */
#define HF_MP_DEPTH 32

/* ------------------------------------------------------------------ */
/* reading                                                             */

/* One header, typed as msgpack-c would type the object. */
typedef struct hf_mp_hdr {
    int type;         /* MSGPACK_OBJECT_* */
    uint64_t n;       /* POSITIVE_INTEGER value, BOOLEAN 0/1, ARRAY/MAP
                         count */
    int64_t i;        /* NEGATIVE_INTEGER value */
    const char *body; /* STR, BIN, EXT: the payload; FLOAT32/64: its
                         big-endian bytes */
    size_t len;       /* bytes at body (EXT: without its type byte) */
    int8_t ext;       /* EXT: the extension type */
} hf_mp_hdr;

/* The out-of-line part of hf_mp_read_hdr; call that instead. */
int hf_mp_read_hdr_slow(const unsigned char **pp, const unsigned char *end,
                        hf_mp_hdr *h);

/*
 * Reads the header at *pp and steps over it, and over the payload of a
 * string, binary, extension or float (not over a container's elements).
 * Returns 0, or -1 when the bytes end early or hold the byte msgpack does
 * not define (0xc1); *pp is then unchanged. Signed integers that are not
 * negative are POSITIVE_INTEGER, as in msgpack-c. Inline for the two
 * commonest headers, short strings and small integers.
 */
static inline int
hf_mp_read_hdr(const unsigned char **pp, const unsigned char *end,
               hf_mp_hdr *h)
{
    const unsigned char *p = *pp;

    if (p < end && (*p & 0xe0) == 0xa0) { /* fixstr */
        size_t l = *p & 0x1f;
        if ((size_t)(end - p) - 1 < l)
            return -1;
        h->type = MSGPACK_OBJECT_STR;
        h->len = l;
        h->body = (const char *)p + 1;
        *pp = p + 1 + l;
        return 0;
    }
    if (p < end && *p <= 0x7f) { /* positive fixint */
        h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        h->n = *p;
        *pp = p + 1;
        return 0;
    }
    return hf_mp_read_hdr_slow(pp, end, h);
}

/* Steps *pp over one whole object, however deep it nests (the caller
 * bounds depth elsewhere, or needs no bound: nothing is built). Returns 0,
 * or -1 when the bytes are malformed or end early; *pp is then
 * unspecified. Allocates nothing. */
int hf_mp_skip(const unsigned char **pp, const unsigned char *end);

/* Why hf_mp_check refused. */
enum { HF_MP_OK = 0, HF_MP_BAD, HF_MP_DEEP, HF_MP_NOMEM };

/*
 * Checks that data starts with one complete, well-formed object nested at
 * most max_depth deep (max_depth <= 0: scalars only). Returns the object's
 * length in bytes, or 0 when it is malformed, truncated or too deep; when
 * why is not NULL it gets HF_MP_OK or the reason (HF_MP_NOMEM: a
 * max_depth above 64 needs a stack and malloc failed).
 */
size_t hf_mp_check(const void *data, size_t len, int max_depth, int *why);

/*
 * Reads one whole object at *pp into *o, as msgpack_unpack would build it:
 * containers allocated in z, strings, binaries and extensions pointing into
 * the bytes (which must outlive *o), floats widened to double. depth is the
 * number of containers already open around the object; a container that
 * would be open with HF_MP_DEPTH others is refused. Returns 0, or -1 when
 * the bytes are malformed or too deep or z runs out of memory. Recursive,
 * at most HF_MP_DEPTH frames.
 */
int hf_mp_read_obj(const unsigned char **pp, const unsigned char *end,
                   unsigned depth, msgpack_zone *z, msgpack_object *o);

/* Reads the next object of a batch at *off into zone (hf_mp_read_obj:
 * strings point into buf, containers bounded by the bytes left and by
 * HF_MP_DEPTH) and moves *off past it. Returns 0, or HF_EBADREQ
 * (malformed, truncated or too deep). */
int hf_unpack_next(const void *buf, size_t len, size_t *off,
                   msgpack_zone *zone, msgpack_object *obj);

/* ------------------------------------------------------------------ */
/* writing bytes in place                                              */

static inline char *
hf_mp_put_be(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
    return p + n;
}

/* msgpack_pack_uint64: at most 9 bytes. */
static inline char *
hf_mp_put_u64(char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (char)v;
    } else if (v < 256) {
        *p++ = (char)0xcc;
        *p++ = (char)v;
    } else if (v < 65536) {
        *p++ = (char)0xcd;
        p = hf_mp_put_be(p, v, 2);
    } else if (v < (1ULL << 32)) {
        *p++ = (char)0xce;
        p = hf_mp_put_be(p, v, 4);
    } else {
        *p++ = (char)0xcf;
        p = hf_mp_put_be(p, v, 8);
    }
    return p;
}

/* msgpack_pack_int64: at most 9 bytes. */
static inline char *
hf_mp_put_i64(char *p, int64_t d)
{
    if (d >= 0)
        return hf_mp_put_u64(p, (uint64_t)d);
    if (d >= -32) {
        *p++ = (char)(uint8_t)d;
    } else if (d >= -128) {
        *p++ = (char)0xd0;
        *p++ = (char)(uint8_t)d;
    } else if (d >= -32768) {
        *p++ = (char)0xd1;
        p = hf_mp_put_be(p, (uint64_t)d, 2);
    } else if (d >= -(1LL << 31)) {
        *p++ = (char)0xd2;
        p = hf_mp_put_be(p, (uint64_t)d, 4);
    } else {
        *p++ = (char)0xd3;
        p = hf_mp_put_be(p, (uint64_t)d, 8);
    }
    return p;
}

/* msgpack_pack_map header: at most 5 bytes. */
static inline char *
hf_mp_put_map(char *p, size_t n)
{
    if (n < 16) {
        *p++ = (char)(0x80 | n);
    } else if (n < 65536) {
        *p++ = (char)0xde;
        p = hf_mp_put_be(p, n, 2);
    } else {
        *p++ = (char)0xdf;
        p = hf_mp_put_be(p, n, 4);
    }
    return p;
}

/* msgpack_pack_str + body: at most 5 + l bytes. */
static inline char *
hf_mp_put_str(char *p, const void *s, size_t l)
{
    if (l < 32) {
        *p++ = (char)(0xa0 | l);
    } else if (l < 256) {
        *p++ = (char)0xd9;
        *p++ = (char)l;
    } else if (l < 65536) {
        *p++ = (char)0xda;
        p = hf_mp_put_be(p, l, 2);
    } else {
        *p++ = (char)0xdb;
        p = hf_mp_put_be(p, l, 4);
    }
    if (l)
        memcpy(p, s, l);
    return p + l;
}

/* Bytes as they are (a literal key, or a raw msgpack value). */
static inline char *
hf_mp_put_bytes(char *p, const void *s, size_t l)
{
    if (l)
        memcpy(p, s, l);
    return p + l;
}

/* A raw msgpack value, or nil when raw is empty: at most 1 + len bytes. */
static inline char *
hf_mp_put_raw(char *p, hf_slice raw)
{
    if (raw.len == 0) {
        *p++ = (char)0xc0;
        return p;
    }
    return hf_mp_put_bytes(p, raw.data, raw.len);
}

/*
 * One message's bytes, written in one go: in place into the packer's
 * hf_buf (when its callback is hf_buf_mpwrite), or into a scratch area
 * handed to the packer's callback once. Lives on the caller's stack.
 */
typedef struct hf_mp_emit {
    msgpack_packer *pk;
    hf_buf *b; /* in place, or NULL */
    char *tmp; /* else the scratch area: small or malloc'd */
    char small[256];
} hf_mp_emit;

/* Room for at most max bytes; NULL when memory runs out (nothing to end
 * then). The room stays valid until hf_mp_emit_end; the packer's buffer
 * may move, so nothing may point into it across this call. */
char *hf_mp_emit_begin(hf_mp_emit *em, msgpack_packer *pk, size_t max);

/* Commits the bytes from the room's start up to p. Returns 0 or
 * HF_EINTERNAL (the packer's callback failed). */
int hf_mp_emit_end(hf_mp_emit *em, char *p);

/* ------------------------------------------------------------------ */
/* writing through a packer                                            */

/* msgpack_packer write callback for an hf_buf (data = hf_buf *). */
int hf_buf_mpwrite(void *data, const char *p, size_t n);

/* Packs a msgpack string from a slice / C string. hf_pack_str returns 0,
 * or HF_EINTERNAL when the packer's write failed (out of memory: the
 * output is then incomplete) or len does not fit a msgpack string. */
int hf_pack_str(msgpack_packer *pk, const void *s, size_t len);
void hf_pack_cstr(msgpack_packer *pk, const char *s);

/* Packs a raw msgpack object, or nil when raw is empty. */
void hf_pack_raw(msgpack_packer *pk, hf_slice raw);

/* Packs obj (a decoded msgpack object) back to bytes onto pk. Returns 0 or
 * HF_EINTERNAL. */
int hf_pack_obj(msgpack_packer *pk, const msgpack_object *obj);

#endif
