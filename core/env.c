/*
 * env.c - envelope encoding and decoding (see env.h).
 *
 * Design notes
 * ------------
 * Envelopes cross every hot path three times (client to host, host to
 * worker, worker to client), so this file avoids msgpack-c's general
 * machinery where it costs the most:
 *
 * Decoding. hf_env_decode walks an unpacked map and dispatches on the key
 * through a table (found by first letter, then length); keys not in the
 * table are ignored so newer senders can add fields. hf_env_read reads an
 * envelope straight from its bytes with a small msgpack reader that builds
 * no objects for the envelope's own fields; only the value ("a", "res"...)
 * is built, when the caller asks, as msgpack_unpack would build it. It
 * must agree with hf_unpack_next + hf_env_decode on every input: the same
 * bytes are malformed (msgpack-c's rules, including its limit of
 * MSGPACK_EMBED_STACK_SIZE open containers), the same maps are invalid
 * envelopes, and an invalid envelope leaves the fields read before the
 * fault, as hf_env_decode does (callers answer with its conn and id).
 *
 * Encoding. msgpack-c's packer makes one callback per header and per body.
 * The envelope packers here compute an upper bound, write the bytes in one
 * go (in place when the packer writes to an hf_buf, else through one
 * callback) and produce exactly the bytes msgpack-c would: the smallest
 * encoding of every header, fields in the same order.
 */
#include <msgpack/unpack_define.h> /* MSGPACK_EMBED_STACK_SIZE */
#include <stdlib.h>
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
    const char *d = s.data;
    for (size_t i = 0; i < s.len; i++)
        if (str[i] == '\0' || str[i] != d[i])
            return 0;
    return str[s.len] == '\0';
}

/* ------------------------------------------------------------------ */
/* writing msgpack                                                     */

static inline char *
put_be(char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
    return p + n;
}

/* msgpack_pack_uint64: at most 9 bytes. */
static char *
put_u64(char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (char)v;
    } else if (v < 256) {
        *p++ = (char)0xcc;
        *p++ = (char)v;
    } else if (v < 65536) {
        *p++ = (char)0xcd;
        p = put_be(p, v, 2);
    } else if (v < (1ULL << 32)) {
        *p++ = (char)0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = (char)0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

/* msgpack_pack_int64: at most 9 bytes. */
static char *
put_i64(char *p, int64_t d)
{
    if (d >= 0)
        return put_u64(p, (uint64_t)d);
    if (d >= -32) {
        *p++ = (char)(uint8_t)d;
    } else if (d >= -128) {
        *p++ = (char)0xd0;
        *p++ = (char)(uint8_t)d;
    } else if (d >= -32768) {
        *p++ = (char)0xd1;
        p = put_be(p, (uint64_t)d, 2);
    } else if (d >= -(1LL << 31)) {
        *p++ = (char)0xd2;
        p = put_be(p, (uint64_t)d, 4);
    } else {
        *p++ = (char)0xd3;
        p = put_be(p, (uint64_t)d, 8);
    }
    return p;
}

/* msgpack_pack_map header: at most 5 bytes. */
static char *
put_map(char *p, size_t n)
{
    if (n < 16) {
        *p++ = (char)(0x80 | n);
    } else if (n < 65536) {
        *p++ = (char)0xde;
        p = put_be(p, n, 2);
    } else {
        *p++ = (char)0xdf;
        p = put_be(p, n, 4);
    }
    return p;
}

/* msgpack_pack_str + body: at most 5 + l bytes. */
static char *
put_str(char *p, const void *s, size_t l)
{
    if (l < 32) {
        *p++ = (char)(0xa0 | l);
    } else if (l < 256) {
        *p++ = (char)0xd9;
        *p++ = (char)l;
    } else if (l < 65536) {
        *p++ = (char)0xda;
        p = put_be(p, l, 2);
    } else {
        *p++ = (char)0xdb;
        p = put_be(p, l, 4);
    }
    if (l)
        memcpy(p, s, l);
    return p + l;
}

/* Bytes as they are (a literal key, or a raw msgpack value). */
static char *
put_bytes(char *p, const void *s, size_t l)
{
    if (l)
        memcpy(p, s, l);
    return p + l;
}

/* hf_pack_raw: the raw value, or nil when empty; at most 1 + l bytes. */
static char *
put_raw(char *p, hf_slice raw)
{
    if (raw.len == 0) {
        *p++ = (char)0xc0;
        return p;
    }
    return put_bytes(p, raw.data, raw.len);
}

#define put_key(p, lit) put_bytes((p), (lit), sizeof(lit) - 1)

/* One envelope's bytes, written in one go: in place into the packer's
 * hf_buf, or into a scratch area handed to the packer's callback once. */
struct emit {
    msgpack_packer *pk;
    hf_buf *b; /* in place, or NULL */
    char *tmp; /* else the scratch area: small or malloc'd */
    char small[256];
};

/* Room for at most max bytes; NULL when memory runs out. */
static char *
emit_begin(struct emit *em, msgpack_packer *pk, size_t max)
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

/* Commits the bytes up to p. Returns 0 or HF_EINTERNAL. */
static int
emit_end(struct emit *em, char *p)
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

void
hf_pack_str(msgpack_packer *pk, const void *s, size_t len)
{
    struct emit em;
    char *p;

    if (pk->callback == hf_buf_mpwrite &&
        (p = emit_begin(&em, pk, 5 + len)) != NULL) {
        emit_end(&em, put_str(p, s, len));
        return;
    }
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

/* ------------------------------------------------------------------ */
/* decoding unpacked maps                                              */

enum ftype { F_OP, F_ROLE, F_U64, F_STR, F_OBJ, F_BOOL, F_I64 };

/* Field indexes; 0 is "none". */
enum fidx {
    FI_OP = 1,
    FI_OK,
    FI_ID,
    FI_C,
    FI_CODE,
    FI_TO,
    FI_TYPE,
    FI_M,
    FI_MSG,
    FI_A,
    FI_ACTION,
    FI_K,
    FI_S,
    FI_SINCE,
    FI_SEQ,
    FI_R,
    FI_RES,
    FI_EP,
    FI_FROM,
    FI_BY,
    FI_DATA,
    FI_WHO,
    FI_COUNT_
};

struct field {
    const char *name;
    uint8_t len;      /* strlen(name) */
    uint8_t type;     /* enum ftype */
    uint8_t next;     /* next field with the same first letter, or 0 */
    uint16_t off;     /* into hf_env */
    uint16_t flagoff; /* has_* flag, or NOFLAG */
};

#define O(f)   offsetof(hf_env, f)
#define NOFLAG 0xffff
#define F(name, type, next, off, flag)                                         \
    {                                                                          \
        name, sizeof(name) - 1, type, next, off, flag                          \
    }

static const struct field fields[FI_COUNT_] = {
    [FI_OP] = F("op", F_OP, FI_OK, 0, NOFLAG),
    [FI_OK] = F("ok", F_BOOL, 0, O(ok), NOFLAG),
    [FI_ID] = F("id", F_U64, 0, O(id), NOFLAG),
    [FI_C] = F("c", F_U64, FI_CODE, O(conn), O(has_conn)),
    [FI_CODE] = F("code", F_STR, 0, O(code), NOFLAG),
    [FI_TO] = F("to", F_STR, FI_TYPE, O(to), NOFLAG),
    [FI_TYPE] = F("type", F_STR, 0, O(method), NOFLAG),
    [FI_M] = F("m", F_STR, FI_MSG, O(method), NOFLAG),
    [FI_MSG] = F("msg", F_STR, 0, O(msg), NOFLAG),
    [FI_A] = F("a", F_OBJ, FI_ACTION, O(val), NOFLAG),
    [FI_ACTION] = F("action", F_STR, 0, O(action), NOFLAG),
    [FI_K] = F("k", F_STR, 0, O(key), NOFLAG),
    [FI_S] = F("s", F_STR, FI_SINCE, O(sub), NOFLAG),
    [FI_SINCE] = F("since", F_I64, FI_SEQ, O(since), O(has_since)),
    [FI_SEQ] = F("seq", F_U64, 0, O(seq), NOFLAG),
    [FI_R] = F("r", F_ROLE, FI_RES, 0, NOFLAG),
    [FI_RES] = F("res", F_OBJ, 0, O(val), NOFLAG),
    [FI_EP] = F("ep", F_STR, 0, O(epoch), NOFLAG),
    [FI_FROM] = F("from", F_STR, 0, O(to), NOFLAG),
    [FI_BY] = F("by", F_STR, 0, O(sub), NOFLAG),
    [FI_DATA] = F("data", F_OBJ, 0, O(val), NOFLAG),
    [FI_WHO] = F("who", F_OBJ, 0, O(val), NOFLAG),
};

/* The first field whose name starts with each letter; the rest follow
 * through field.next. */
static const uint8_t first[128] = {
    ['o'] = FI_OP,   ['i'] = FI_ID,  ['c'] = FI_C,    ['t'] = FI_TO,
    ['m'] = FI_M,    ['a'] = FI_A,   ['k'] = FI_K,    ['s'] = FI_S,
    ['r'] = FI_R,    ['e'] = FI_EP,  ['f'] = FI_FROM, ['b'] = FI_BY,
    ['d'] = FI_DATA, ['w'] = FI_WHO,
};

static const struct field *
field_find(const char *k, size_t n)
{
    unsigned c, i;

    if (n == 0 || (c = (unsigned char)k[0]) >= 128)
        return NULL;
    for (i = first[c]; i != 0; i = fields[i].next) {
        const struct field *f = &fields[i];
        size_t j = 1;
        if (f->len != n)
            continue;
        while (j < n && f->name[j] == k[j])
            j++;
        if (j == n)
            return f;
    }
    return NULL;
}

/* One msgpack header: what msgpack-c would type the object as, and what a
 * field can use of it. */
struct hdr {
    int type;         /* MSGPACK_OBJECT_* */
    uint64_t n;       /* POSITIVE_INTEGER value, BOOLEAN, ARRAY/MAP count */
    int64_t i;        /* NEGATIVE_INTEGER value */
    const char *body; /* STR/BIN/EXT payload (FLOAT32/64: the bytes) */
    size_t len;
};

static int
getint(const struct hdr *v, int64_t *n)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->n > INT64_MAX)
            return HF_EBADREQ;
        *n = (int64_t)v->n;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *n = v->i;
        return 0;
    }
    return HF_EBADREQ;
}

/* Stores one field whose value is not an object field's (F_OBJ). Returns
 * 0 or HF_EBADREQ (the envelope is invalid). */
static int
set_field(hf_env *e, const struct field *f, const struct hdr *v)
{
    char *base = (char *)e;
    int64_t n;

    switch ((enum ftype)f->type) {
    case F_OP:
        if (getint(v, &n) != 0 || n < 1 || n > 255)
            return HF_EBADREQ;
        e->op = (int)n;
        return 0;
    case F_ROLE:
        if (getint(v, &n) != 0 || n < 0 || n > 0xffff)
            return HF_EBADREQ;
        e->role = (unsigned)n;
        return 0;
    case F_U64:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return HF_EBADREQ;
        memcpy(base + f->off, &v->n, sizeof(uint64_t));
        break;
    case F_I64:
        if (getint(v, &n) != 0)
            return HF_EBADREQ;
        memcpy(base + f->off, &n, sizeof(n));
        break;
    case F_STR: {
        hf_slice sl;
        if (v->type == MSGPACK_OBJECT_NIL)
            return 0; /* as if absent */
        if (v->type != MSGPACK_OBJECT_STR)
            return HF_EBADREQ;
        sl = (hf_slice){v->body, v->len};
        memcpy(base + f->off, &sl, sizeof(sl));
        break;
    }
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return HF_EBADREQ;
        e->ok = v->n != 0;
        break;
    case F_OBJ:
        break; /* the caller's */
    }
    if (f->flagoff != NOFLAG)
        *(int *)(base + f->flagoff) = 1;
    return 0;
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
        const struct field *f;
        struct hdr h = {.type = v->type};

        if (k->type != MSGPACK_OBJECT_STR ||
            (f = field_find(k->via.str.ptr, k->via.str.size)) == NULL)
            continue;
        if (f->type == F_OBJ) {
            e->val = v;
            continue;
        }
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            h.n = v->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            h.i = v->via.i64;
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            h.n = v->via.boolean;
            break;
        case MSGPACK_OBJECT_STR:
            h.body = v->via.str.ptr;
            h.len = v->via.str.size;
            break;
        default:
            break;
        }
        if (set_field(e, f, &h) != 0)
            return HF_EBADREQ;
    }
    return e->op == 0 ? HF_EBADREQ : 0;
}

/* ------------------------------------------------------------------ */
/* reading envelopes from bytes                                        */

static uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* rd_hdr for every header but the two commonest: short strings and small
 * integers. */
static int
rd_hdr_slow(const unsigned char **pp, const unsigned char *end, struct hdr *h)
{
    const unsigned char *p = *pp;
    unsigned c;
    int w;

    if (p >= end)
        return -1;
    c = *p++;
    if (c <= 0x7f) {
        h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        h->n = c;
    } else if (c >= 0xe0) {
        h->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        h->i = (int8_t)c;
    } else if (c >= 0xa0 && c <= 0xbf) {
        h->type = MSGPACK_OBJECT_STR;
        h->len = c & 0x1f;
        goto body;
    } else if (c <= 0x8f) {
        h->type = MSGPACK_OBJECT_MAP;
        h->n = c & 0x0f;
    } else if (c <= 0x9f) {
        h->type = MSGPACK_OBJECT_ARRAY;
        h->n = c & 0x0f;
    } else {
        switch (c) {
        case 0xc0:
            h->type = MSGPACK_OBJECT_NIL;
            break;
        case 0xc2:
        case 0xc3:
            h->type = MSGPACK_OBJECT_BOOLEAN;
            h->n = c == 0xc3;
            break;
        case 0xc4: /* bin 8/16/32 */
        case 0xc5:
        case 0xc6:
            w = 1 << (c - 0xc4);
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type = MSGPACK_OBJECT_BIN;
            h->len = get_be(p, w);
            p += w;
            goto body;
        case 0xc7: /* ext 8/16/32: type byte + data */
        case 0xc8:
        case 0xc9:
            w = 1 << (c - 0xc7);
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type = MSGPACK_OBJECT_EXT;
            h->len = get_be(p, w) + 1;
            p += w;
            goto body;
        case 0xca:
        case 0xcb:
            w = c == 0xca ? 4 : 8;
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type =
                c == 0xca ? MSGPACK_OBJECT_FLOAT32 : MSGPACK_OBJECT_FLOAT64;
            h->body = (const char *)p;
            p += w;
            break;
        case 0xcc: /* uint 8/16/32/64 */
        case 0xcd:
        case 0xce:
        case 0xcf:
            w = 1 << (c - 0xcc);
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            h->n = get_be(p, w);
            p += w;
            break;
        case 0xd0: /* int 8/16/32/64 */
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            uint64_t u;
            int64_t v;
            w = 1 << (c - 0xd0);
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            u = get_be(p, w);
            if (w < 8 && (u >> (8 * w - 1)) != 0)
                u |= ~0ULL << (8 * w); /* sign-extend */
            memcpy(&v, &u, sizeof(v));
            if (v >= 0) {
                h->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
                h->n = (uint64_t)v;
            } else {
                h->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
                h->i = v;
            }
            p += w;
            break;
        }
        case 0xd4: /* fixext 1/2/4/8/16: type byte + data */
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            h->type = MSGPACK_OBJECT_EXT;
            h->len = (1u << (c - 0xd4)) + 1;
            goto body;
        case 0xd9: /* str 8/16/32 */
        case 0xda:
        case 0xdb:
            w = 1 << (c - 0xd9);
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type = MSGPACK_OBJECT_STR;
            h->len = get_be(p, w);
            p += w;
            goto body;
        case 0xdc: /* array 16/32 */
        case 0xdd:
        case 0xde: /* map 16/32 */
        case 0xdf:
            w = c & 1 ? 4 : 2;
            if ((size_t)(end - p) < (size_t)w)
                return -1;
            h->type = c <= 0xdd ? MSGPACK_OBJECT_ARRAY : MSGPACK_OBJECT_MAP;
            h->n = get_be(p, w);
            p += w;
            break;
        default: /* 0xc1 */
            return -1;
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

/*
 * Reads the header at *pp and steps over it (and over the payload of a
 * string, binary or extension). Returns 0, or -1 when the bytes end early
 * or hold a byte msgpack does not define. Signed integers that are not
 * negative are POSITIVE_INTEGER, as in msgpack-c.
 */
static inline int
rd_hdr(const unsigned char **pp, const unsigned char *end, struct hdr *h)
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
    return rd_hdr_slow(pp, end, h);
}

/*
 * Steps over the elements of a container whose header h was just read.
 * Iterative and without a depth limit: it only counts the values still
 * owed (every value takes a byte at least, so a count beyond the bytes
 * left cannot be complete), so an envelope whose arguments nest deeper
 * than msgpack-c can unpack is still read whole, and its connection and
 * request id reach the worker, which refuses the value (rd_obj) with a
 * reply instead of losing the batch it came in.
 */
static int
rd_rest(const unsigned char **pp, const unsigned char *end, const struct hdr *h)
{
    uint64_t owed;

    if (h->type != MSGPACK_OBJECT_ARRAY && h->type != MSGPACK_OBJECT_MAP)
        return 0;
    owed = h->type == MSGPACK_OBJECT_MAP ? 2 * h->n : h->n;
    while (owed > 0) {
        struct hdr x;
        if (owed > (uint64_t)(end - *pp) || rd_hdr(pp, end, &x) != 0)
            return -1;
        owed--;
        if (x.type == MSGPACK_OBJECT_ARRAY)
            owed += x.n;
        else if (x.type == MSGPACK_OBJECT_MAP)
            owed += 2 * x.n;
    }
    return 0;
}

/*
 * Reads one whole object into *o, its containers allocated in z, as
 * msgpack_unpack would build it (strings point into the bytes). Returns 0,
 * or -1 when the bytes are malformed or z runs out of memory.
 */
static int
rd_obj(const unsigned char **pp, const unsigned char *end, unsigned depth,
       msgpack_zone *z, msgpack_object *o)
{
    struct hdr h;

    if (rd_hdr(pp, end, &h) != 0)
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
        uint32_t u = (uint32_t)get_be((const unsigned char *)h.body, 4);
        float f;
        memcpy(&f, &u, sizeof(f));
        o->via.f64 = f;
        break;
    }
    case MSGPACK_OBJECT_FLOAT64: {
        uint64_t u = get_be((const unsigned char *)h.body, 8);
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
        o->via.ext.type = (int8_t)h.body[0];
        o->via.ext.ptr = h.body + 1;
        o->via.ext.size = (uint32_t)h.len - 1;
        break;
    case MSGPACK_OBJECT_ARRAY:
        /* Every element takes a byte at least: a count beyond the bytes
         * left cannot be complete. */
        if (depth >= MSGPACK_EMBED_STACK_SIZE || h.n > (uint64_t)(end - *pp))
            return -1;
        o->via.array.size = (uint32_t)h.n;
        if ((o->via.array.ptr =
                 msgpack_zone_malloc(z, h.n * sizeof(msgpack_object))) == NULL)
            return -1;
        for (uint64_t i = 0; i < h.n; i++)
            if (rd_obj(pp, end, depth + 1, z, &o->via.array.ptr[i]) != 0)
                return -1;
        break;
    case MSGPACK_OBJECT_MAP:
        if (depth >= MSGPACK_EMBED_STACK_SIZE ||
            2 * h.n > (uint64_t)(end - *pp))
            return -1;
        o->via.map.size = (uint32_t)h.n;
        if ((o->via.map.ptr = msgpack_zone_malloc(
                 z, h.n * sizeof(msgpack_object_kv))) == NULL)
            return -1;
        for (uint64_t i = 0; i < h.n; i++)
            if (rd_obj(pp, end, depth + 1, z, &o->via.map.ptr[i].key) != 0 ||
                rd_obj(pp, end, depth + 1, z, &o->via.map.ptr[i].val) != 0)
                return -1;
        break;
    default: /* nil */
        break;
    }
    return 0;
}

/* Unpacks the value bytes raw into a new object in zone. */
static int
val_unpack(hf_slice raw, msgpack_zone *zone, const msgpack_object **out)
{
    const unsigned char *p = raw.data;
    msgpack_object *o = msgpack_zone_malloc(zone, sizeof(*o));

    if (o == NULL || rd_obj(&p, p + raw.len, 1, zone, o) != 0)
        return HF_EBADREQ;
    *out = o;
    return 0;
}

/* Reads one whole object inside the envelope map into *h (its header). */
static int
rd_elem(const unsigned char **pp, const unsigned char *end, struct hdr *h)
{
    if (rd_hdr(pp, end, h) != 0)
        return -1;
    return rd_rest(pp, end, h);
}

int
hf_env_read(const void *buf, size_t len, size_t *off, msgpack_zone *zone,
            hf_env *e, int *status)
{
    const unsigned char *start = buf, *p = start + *off, *end = start + len;
    const unsigned char *vp = NULL, *vend = NULL;
    struct hdr h;
    int st = 0;

    memset(e, 0, sizeof(*e));
    *status = HF_EBADREQ;
    if (*off >= len || rd_hdr(&p, end, &h) != 0)
        return HF_EBADREQ;
    if (h.type != MSGPACK_OBJECT_MAP) {
        if (rd_rest(&p, end, &h) != 0)
            return HF_EBADREQ;
        *off = (size_t)(p - start);
        return 0;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        const struct field *f = NULL;
        const unsigned char *at;
        struct hdr v;

        if (p < end && (*p & 0xe0) == 0xa0) { /* a short string key */
            size_t kl = *p & 0x1f;
            if ((size_t)(end - p) - 1 < kl)
                return HF_EBADREQ;
            if (st == 0)
                f = field_find((const char *)p + 1, kl);
            p += 1 + kl;
        } else {
            if (rd_elem(&p, end, &v) != 0)
                return HF_EBADREQ;
            if (st == 0 && v.type == MSGPACK_OBJECT_STR)
                f = field_find(v.body, v.len);
        }
        at = p;
        if (rd_elem(&p, end, &v) != 0)
            return HF_EBADREQ;
        if (f == NULL)
            continue; /* ignored, or past the first fault */
        if (f->type == F_OBJ) {
            vp = at;
            vend = p;
            continue;
        }
        st = set_field(e, f, &v);
    }
    if (vp != NULL) {
        e->val_raw = (hf_slice){vp, (size_t)(vend - vp)};
        if (zone != NULL && val_unpack(e->val_raw, zone, &e->val) != 0)
            return HF_EBADREQ; /* out of memory */
    }
    *off = (size_t)(p - start);
    *status = st != 0 || e->op == 0 ? HF_EBADREQ : 0;
    return 0;
}

void
hf_env_pos_save(hf_env_pos *pos, const hf_env *e, const void *base)
{
    const hf_slice *sl[6] = {&e->to,  &e->method, &e->key,
                             &e->sub, &e->epoch,  &e->val_raw};

    *pos = (hf_env_pos){.op = e->op,
                        .has_conn = e->has_conn,
                        .has_since = e->has_since,
                        .role = e->role,
                        .id = e->id,
                        .conn = e->conn,
                        .since = e->since};
    for (int i = 0; i < 6; i++) {
        pos->len[i] = (uint32_t)sl[i]->len;
        pos->off[i] =
            sl[i]->len
                ? (uint32_t)((const char *)sl[i]->data - (const char *)base)
                : 0;
    }
}

int
hf_env_pos_load(const hf_env_pos *pos, const void *base, msgpack_zone *zone,
                hf_env *e)
{
    hf_slice *sl[6] = {&e->to,  &e->method, &e->key,
                       &e->sub, &e->epoch,  &e->val_raw};

    memset(e, 0, sizeof(*e));
    e->op = pos->op;
    e->has_conn = pos->has_conn;
    e->has_since = pos->has_since;
    e->role = pos->role;
    e->id = pos->id;
    e->conn = pos->conn;
    e->since = pos->since;
    for (int i = 0; i < 6; i++)
        if (pos->len[i] > 0)
            *sl[i] = (hf_slice){(const char *)base + pos->off[i], pos->len[i]};
    if (zone != NULL && e->val_raw.len > 0)
        return val_unpack(e->val_raw, zone, &e->val);
    return 0;
}

/* ------------------------------------------------------------------ */
/* envelopes out                                                       */

int
hf_env_pack_request(msgpack_packer *pk, const hf_env *e, hf_slice val_raw)
{
    size_t n = 2; /* op, to */
    struct emit em;
    char *p;

    n += 1;                 /* id */
    n += e->has_conn;       /* c */
    n += e->method.len > 0; /* m */
    n += val_raw.len > 0;   /* a */
    n += e->key.len > 0;    /* k */
    n += e->sub.len > 0;    /* s */
    n += e->role != 0;      /* r */
    n += e->has_since;      /* since */
    n += e->epoch.len > 0;  /* ep */
    if ((p = emit_begin(&em, pk,
                        128 + e->to.len + e->method.len + val_raw.len +
                            e->key.len + e->sub.len + e->epoch.len)) == NULL)
        return HF_EINTERNAL;
    p = put_map(p, n);
    p = put_key(p, "\xa2op");
    p = put_u64(p, (uint64_t)e->op);
    p = put_key(p, "\xa2to");
    p = put_str(p, e->to.data, e->to.len);
    p = put_key(p, "\xa2id");
    p = put_u64(p, e->id);
    if (e->has_conn) {
        p = put_key(p, "\xa1"
                       "c");
        p = put_u64(p, e->conn);
    }
    if (e->method.len > 0) {
        p = put_key(p, "\xa1m");
        p = put_str(p, e->method.data, e->method.len);
    }
    if (val_raw.len > 0) {
        p = put_key(p, "\xa1"
                       "a");
        p = put_raw(p, val_raw);
    }
    if (e->key.len > 0) {
        p = put_key(p, "\xa1k");
        p = put_str(p, e->key.data, e->key.len);
    }
    if (e->sub.len > 0) {
        p = put_key(p, "\xa1s");
        p = put_str(p, e->sub.data, e->sub.len);
    }
    if (e->role != 0) {
        p = put_key(p, "\xa1r");
        p = put_u64(p, e->role);
    }
    if (e->has_since) {
        p = put_key(p, "\xa5since");
        p = put_i64(p, e->since);
    }
    if (e->epoch.len > 0) {
        p = put_key(p, "\xa2"
                       "ep");
        p = put_str(p, e->epoch.data, e->epoch.len);
    }
    return emit_end(&em, p);
}

void
hf_env_pack_reply_ok(msgpack_packer *pk, uint64_t conn, uint64_t id,
                     hf_slice res_raw)
{
    struct emit em;
    char *p;

    if ((p = emit_begin(&em, pk, 48 + res_raw.len)) == NULL)
        return;
    p = put_map(p, 5);
    p = put_key(p, "\xa2op");
    p = put_u64(p, HF_OUT_REPLY);
    p = put_key(p, "\xa1"
                   "c");
    p = put_u64(p, conn);
    p = put_key(p, "\xa2id");
    p = put_u64(p, id);
    p = put_key(p, "\xa2ok\xc3");
    p = put_key(p, "\xa3res");
    p = put_raw(p, res_raw);
    emit_end(&em, p);
}

void
hf_env_pack_reply_err(msgpack_packer *pk, uint64_t conn, uint64_t id, int err,
                      const char *msg, size_t msglen)
{
    const char *code = hf_err_name(err);
    size_t cl = strlen(code);
    struct emit em;
    char *p;

    if (msg == NULL || msglen == 0) {
        msg = code;
        msglen = cl;
    }
    if ((p = emit_begin(&em, pk, 64 + cl + msglen)) == NULL)
        return;
    p = put_map(p, 6);
    p = put_key(p, "\xa2op");
    p = put_u64(p, HF_OUT_REPLY);
    p = put_key(p, "\xa1"
                   "c");
    p = put_u64(p, conn);
    p = put_key(p, "\xa2id");
    p = put_u64(p, id);
    p = put_key(p, "\xa2ok\xc2");
    p = put_key(p, "\xa4"
                   "code");
    p = put_str(p, code, cl);
    p = put_key(p, "\xa3msg");
    p = put_str(p, msg, msglen);
    emit_end(&em, p);
}

void
hf_env_pack_signal(msgpack_packer *pk, hf_slice from, hf_slice type,
                   hf_slice by, hf_slice data_raw)
{
    struct emit em;
    char *p;

    if ((p = emit_begin(&em, pk,
                        64 + from.len + type.len + by.len + data_raw.len)) ==
        NULL)
        return;
    p = put_map(p, 5);
    p = put_key(p, "\xa2op");
    p = put_u64(p, HF_OUT_SIGNAL);
    p = put_key(p, "\xa4"
                   "from");
    p = put_str(p, from.data, from.len);
    p = put_key(p, "\xa4type");
    p = put_str(p, type.data, type.len);
    p = put_key(p, "\xa2"
                   "by");
    p = put_str(p, by.data, by.len);
    p = put_key(p, "\xa4"
                   "data");
    p = put_raw(p, data_raw);
    emit_end(&em, p);
}

void
hf_env_pack_presence(msgpack_packer *pk, hf_slice from, int join,
                     hf_slice who_raw)
{
    struct emit em;
    char *p;

    if ((p = emit_begin(&em, pk, 64 + from.len + who_raw.len)) == NULL)
        return;
    p = put_map(p, 4);
    p = put_key(p, "\xa2op");
    p = put_u64(p, HF_OUT_PRESENCE);
    p = put_key(p, "\xa4"
                   "from");
    p = put_str(p, from.data, from.len);
    p = put_key(p, "\xa6"
                   "action");
    p = join ? put_str(p, "join", 4) : put_str(p, "leave", 5);
    p = put_key(p, "\xa3who");
    p = put_raw(p, who_raw);
    emit_end(&em, p);
}
