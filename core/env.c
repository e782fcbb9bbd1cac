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
 * through a table with precomputed name lengths; keys not in the table are
 * ignored so newer senders can add fields. hf_env_read reads an envelope
 * straight from its bytes with a small msgpack reader that builds no
 * objects for the envelope's own fields (only the value, "a"/"res"/...,
 * is unpacked, and only when the caller asks). It must agree with
 * hf_unpack_next + hf_env_decode on every input: the same bytes are
 * malformed (msgpack-c's rules, including its nesting limit of
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
    hf_buf *b;   /* in place, or NULL */
    char *tmp;   /* else the scratch area: small or malloc'd */
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

struct field {
    const char *name;
    uint8_t len;      /* strlen(name) */
    uint8_t type;     /* enum ftype */
    uint16_t off;     /* into hf_env */
    uint16_t flagoff; /* has_* flag, or NOFLAG */
};

#define O(f)   offsetof(hf_env, f)
#define NOFLAG 0xffff
#define F(name, type, off, flag) {name, sizeof(name) - 1, type, off, flag}

/* Request fields first: they are looked up most. */
static const struct field fields[] = {
    F("op", F_OP, 0, NOFLAG),
    F("to", F_STR, O(to), NOFLAG),
    F("id", F_U64, O(id), NOFLAG),
    F("c", F_U64, O(conn), O(has_conn)),
    F("m", F_STR, O(method), NOFLAG),
    F("a", F_OBJ, O(val), NOFLAG),
    F("k", F_STR, O(key), NOFLAG),
    F("s", F_STR, O(sub), NOFLAG),
    F("r", F_ROLE, 0, NOFLAG),
    F("since", F_I64, O(since), O(has_since)),
    F("ep", F_STR, O(epoch), NOFLAG),
    F("ok", F_BOOL, O(ok), NOFLAG),
    F("res", F_OBJ, O(val), NOFLAG),
    F("code", F_STR, O(code), NOFLAG),
    F("msg", F_STR, O(msg), NOFLAG),
    F("from", F_STR, O(to), NOFLAG),
    F("type", F_STR, O(method), NOFLAG),
    F("by", F_STR, O(sub), NOFLAG),
    F("seq", F_U64, O(seq), NOFLAG),
    F("data", F_OBJ, O(val), NOFLAG),
    F("who", F_OBJ, O(val), NOFLAG),
    F("action", F_STR, O(action), NOFLAG),
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
#define FIELD_MAXLEN 6

static const struct field *
field_find(const char *k, size_t n)
{
    if (n == 0 || n > FIELD_MAXLEN)
        return NULL;
    for (const struct field *f = fields; f < fields + NFIELDS; f++)
        if (f->len == n && f->name[0] == k[0] &&
            memcmp(f->name, k, n) == 0)
            return f;
    return NULL;
}

/* A value as the decoder sees it: what msgpack-c would have typed it as.
 * Only the parts a field can use are filled. */
struct fval {
    int type;        /* MSGPACK_OBJECT_* */
    uint64_t u;      /* POSITIVE_INTEGER */
    int64_t i;       /* NEGATIVE_INTEGER */
    int boolean;     /* BOOLEAN */
    hf_slice str;    /* STR */
    const msgpack_object *obj; /* the object, when decoding objects */
};

static int
getint(const struct fval *v, int64_t *n)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->u > INT64_MAX)
            return HF_EBADREQ;
        *n = (int64_t)v->u;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *n = v->i;
        return 0;
    }
    return HF_EBADREQ;
}

/* Stores one field. Returns 0 or HF_EBADREQ (the envelope is invalid). */
static int
set_field(hf_env *e, const struct field *f, const struct fval *v)
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
        memcpy(base + f->off, &v->u, sizeof(uint64_t));
        break;
    case F_I64:
        if (getint(v, &n) != 0)
            return HF_EBADREQ;
        memcpy(base + f->off, &n, sizeof(n));
        break;
    case F_STR:
        if (v->type == MSGPACK_OBJECT_NIL)
            return 0; /* as if absent */
        if (v->type != MSGPACK_OBJECT_STR)
            return HF_EBADREQ;
        memcpy(base + f->off, &v->str, sizeof(v->str));
        break;
    case F_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return HF_EBADREQ;
        e->ok = v->boolean;
        break;
    case F_OBJ:
        e->val = v->obj;
        break;
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
        struct fval fv;

        if (k->type != MSGPACK_OBJECT_STR ||
            (f = field_find(k->via.str.ptr, k->via.str.size)) == NULL)
            continue;
        fv.type = v->type;
        fv.obj = v;
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            fv.u = v->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            fv.i = v->via.i64;
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            fv.boolean = v->via.boolean;
            break;
        case MSGPACK_OBJECT_STR:
            fv.str = (hf_slice){v->via.str.ptr, v->via.str.size};
            break;
        default:
            break;
        }
        if (set_field(e, f, &fv) != 0)
            return HF_EBADREQ;
    }
    return e->op == 0 ? HF_EBADREQ : 0;
}

/* ------------------------------------------------------------------ */
/* reading envelopes from bytes                                        */

/* One msgpack header read from the bytes. */
struct hdr {
    int type;      /* MSGPACK_OBJECT_*, as msgpack-c would type it */
    uint64_t n;    /* integer value, boolean, or ARRAY/MAP element count */
    int64_t i;     /* NEGATIVE_INTEGER */
    const char *body; /* STR/BIN/EXT payload */
    size_t len;
};

static uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Reads the header at *pp and steps over it (and over the payload of a
 * string, binary or extension). Returns 0, or -1 when the bytes end early
 * or hold a byte msgpack does not define. Signed integers that are not
 * negative are POSITIVE_INTEGER, as in msgpack-c.
 */
static int
rd_hdr(const unsigned char **pp, const unsigned char *end, struct hdr *h)
{
    const unsigned char *p = *pp;
    unsigned c;
    int w;

    h->n = 0;
    h->i = 0;
    h->body = NULL;
    h->len = 0;
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
            h->type = c == 0xca ? MSGPACK_OBJECT_FLOAT32
                                : MSGPACK_OBJECT_FLOAT64;
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

static int rd_skip(const unsigned char **pp, const unsigned char *end,
                   unsigned depth);

/* Steps over the elements of a container whose header h was just read at
 * nesting depth (open containers around it). msgpack-c refuses to open a
 * container with MSGPACK_EMBED_STACK_SIZE others open, even an empty one. */
static int
rd_rest(const unsigned char **pp, const unsigned char *end,
        const struct hdr *h, unsigned depth)
{
    uint64_t n;

    if (h->type != MSGPACK_OBJECT_ARRAY && h->type != MSGPACK_OBJECT_MAP)
        return 0;
    if (depth >= MSGPACK_EMBED_STACK_SIZE)
        return -1;
    n = h->type == MSGPACK_OBJECT_MAP ? 2 * h->n : h->n;
    for (uint64_t i = 0; i < n; i++)
        if (rd_skip(pp, end, depth + 1) != 0)
            return -1;
    return 0;
}

/* Steps over one whole object. */
static int
rd_skip(const unsigned char **pp, const unsigned char *end, unsigned depth)
{
    struct hdr h;
    return rd_hdr(pp, end, &h) == 0 ? rd_rest(pp, end, &h, depth) : -1;
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
        if (rd_rest(&p, end, &h, 0) != 0)
            return HF_EBADREQ;
        *off = (size_t)(p - start);
        return 0;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        const struct field *f = NULL;
        const unsigned char *at;
        struct hdr k, v;
        struct fval fv;

        if (rd_hdr(&p, end, &k) != 0 || rd_rest(&p, end, &k, 1) != 0)
            return HF_EBADREQ;
        if (st == 0 && k.type == MSGPACK_OBJECT_STR)
            f = field_find(k.body, k.len);
        at = p;
        if (rd_hdr(&p, end, &v) != 0 || rd_rest(&p, end, &v, 1) != 0)
            return HF_EBADREQ;
        if (f == NULL)
            continue; /* ignored, or past the first fault */
        if (f->type == F_OBJ) {
            vp = at;
            vend = p;
            continue;
        }
        fv.type = v.type;
        fv.u = v.n;
        fv.i = v.i;
        fv.boolean = (int)v.n;
        fv.str = (hf_slice){v.body, v.len};
        fv.obj = NULL;
        st = set_field(e, f, &fv);
    }
    *off = (size_t)(p - start);
    if (vp != NULL) {
        e->val_raw = (hf_slice){vp, (size_t)(vend - vp)};
        if (zone != NULL) {
            msgpack_object *o = msgpack_zone_malloc(zone, sizeof(*o));
            size_t voff = 0;
            if (o == NULL || msgpack_unpack((const char *)vp,
                                            (size_t)(vend - vp), &voff, zone,
                                            o) != MSGPACK_UNPACK_SUCCESS)
                return HF_EBADREQ; /* out of memory */
            e->val = o;
        }
    }
    *status = st != 0 || e->op == 0 ? HF_EBADREQ : 0;
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

    n += 1;                    /* id */
    n += e->has_conn;          /* c */
    n += e->method.len > 0;    /* m */
    n += val_raw.len > 0;      /* a */
    n += e->key.len > 0;       /* k */
    n += e->sub.len > 0;       /* s */
    n += e->role != 0;         /* r */
    n += e->has_since;         /* since */
    n += e->epoch.len > 0;     /* ep */
    if ((p = emit_begin(&em, pk,
                        128 + e->to.len + e->method.len + val_raw.len +
                            e->key.len + e->sub.len + e->epoch.len)) ==
        NULL)
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
hf_env_pack_reply_err(msgpack_packer *pk, uint64_t conn, uint64_t id,
                      int err, const char *msg, size_t msglen)
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
