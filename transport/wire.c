/*
 * wire.c - the client wire protocol v1: see wire.h.
 *
 * Design notes
 *
 * One decoding path. Every client message becomes msgpack bytes in
 * f->store before it is looked at: a msgpack frame is copied in whole, a
 * JSON line is parsed by jansson and converted (hf_json_to_mp). The bytes
 * are then checked by scan(), which walks the msgpack format with a fixed
 * stack, allocates nothing, and refuses any array or map whose count the
 * remaining bytes could not hold. Only then is the top-level map read, by
 * the same header reader, so "id" and "args" come out as slices of bytes
 * already in the store: nothing is unpacked into objects or re-encoded.
 * Once scan() has accepted an object, every element it announces is
 * really there, so whoever unpacks those bytes later allocates in
 * proportion to their length, never to a count an attacker wrote.
 *
 * Slices and a growing store. A JSON frame appends to f->store line by
 * line, and each append may move it. So while a frame is being decoded a
 * slice's data holds an offset, not a pointer (at(): off + 1, so that
 * NULL still means "unset"), and rebase() turns every offset into a
 * pointer after the last append. Nothing reads a slice between the two;
 * parse() reads the message through the base pointer it is given.
 *
 * Limits. Nesting is bounded by WIRE_DEPTH, which is msgpack-c's own
 * unpack stack: a deeper value could not be unpacked downstream anyway.
 * Depth counts containers, empty ones included (as msgpack-c does): a
 * bare scalar is depth 0, [] is 1, and the message map itself is 1, so
 * args may nest 31 deep. JSON is bounded the same way, on the converted
 * bytes. Message size is the gateway's limit, message count is max_msgs.
 *
 * A frame starts zeroed and keeps its two allocations across decodes
 * (hf_wire_decode only resets n and the store's length), so a connection
 * decodes every frame into the same memory; hf_wire_frame_free releases
 * it. Any fmt other than HF_WIRE_MSGPACK means JSON, the default.
 *
 * Choices the header leaves open. "null" means absent for every field.
 * A field given twice keeps its last value (jansson does this for JSON;
 * msgpack does the same for symmetry). Unknown fields, and fields the op
 * does not use, are ignored. String fields (to, method, ...) must not hold
 * NUL bytes, in either format: they end up as C strings (a JWT, a key)
 * where a NUL would silently cut them. Values (args, data, presence) may.
 * A raw NUL byte in JSON text is always an error.
 *
 * Encoding writes JSON directly (no jansson: the gateway encodes every
 * event), through enc, which also writes the msgpack twin of each message
 * so every message shape is written once. Strings are repaired to valid
 * UTF-8 (U+FFFD for each maximal invalid subsequence). If memory runs out
 * mid-message, the partial message is cut off again: out never holds half
 * a message (there is no way to report it through a void encoder).
 *
 * Non-string map keys. JSON keys are strings, so a msgpack key that is not
 * one is written as the string of its JSON text. A container key holding
 * a container key is escaped once per level, and escaping doubles the
 * backslashes of the level inside: 31 levels (a msgpack client may send
 * that many) would turn 63 bytes into gigabytes. So a container key
 * nested in KEY_NEST_MAX others is written as "null" instead, which caps
 * the growth at 2^KEY_NEST_MAX. (Found by the envelope fuzz target.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "transport/wire.h"

#define WIRE_DEPTH   32 /* = MSGPACK_EMBED_STACK_SIZE */
#define KEY_NEST_MAX 4  /* container map keys inside container keys */

/* ------------------------------------------------------------------ */
/* msgpack headers                                                     */

enum mk {
    MK_BAD = 0, /* 0xc1, or an unassigned table slot */
    MK_NIL,
    MK_BOOL,
    MK_UINT, /* any integer >= 0, whatever its format */
    MK_INT,  /* any integer < 0 */
    MK_F32,
    MK_F64,
    MK_STR,
    MK_BIN,
    MK_EXT,
    MK_ARR,
    MK_MAP,
};

/* Formats 0xc0..0xdf. w: bytes of the length (or integer value) field
 * after the type byte; fixed: payload bytes when there is no length field;
 * ext: a one-byte extension type follows the length. */
#define FMT(c) [(c)-0xc0]
static const struct fmtdef {
    unsigned char kind, w, fixed, ext;
} fmts[32] = {
    FMT(0xc0) = {MK_NIL, 0, 0, 0},  FMT(0xc2) = {MK_BOOL, 0, 0, 0},
    FMT(0xc3) = {MK_BOOL, 0, 0, 0}, FMT(0xc4) = {MK_BIN, 1, 0, 0},
    FMT(0xc5) = {MK_BIN, 2, 0, 0},  FMT(0xc6) = {MK_BIN, 4, 0, 0},
    FMT(0xc7) = {MK_EXT, 1, 0, 1},  FMT(0xc8) = {MK_EXT, 2, 0, 1},
    FMT(0xc9) = {MK_EXT, 4, 0, 1},  FMT(0xca) = {MK_F32, 0, 4, 0},
    FMT(0xcb) = {MK_F64, 0, 8, 0},  FMT(0xcc) = {MK_UINT, 1, 0, 0},
    FMT(0xcd) = {MK_UINT, 2, 0, 0}, FMT(0xce) = {MK_UINT, 4, 0, 0},
    FMT(0xcf) = {MK_UINT, 8, 0, 0}, FMT(0xd0) = {MK_INT, 1, 0, 0},
    FMT(0xd1) = {MK_INT, 2, 0, 0},  FMT(0xd2) = {MK_INT, 4, 0, 0},
    FMT(0xd3) = {MK_INT, 8, 0, 0},  FMT(0xd4) = {MK_EXT, 0, 1, 1},
    FMT(0xd5) = {MK_EXT, 0, 2, 1},  FMT(0xd6) = {MK_EXT, 0, 4, 1},
    FMT(0xd7) = {MK_EXT, 0, 8, 1},  FMT(0xd8) = {MK_EXT, 0, 16, 1},
    FMT(0xd9) = {MK_STR, 1, 0, 0},  FMT(0xda) = {MK_STR, 2, 0, 0},
    FMT(0xdb) = {MK_STR, 4, 0, 0},  FMT(0xdc) = {MK_ARR, 2, 0, 0},
    FMT(0xdd) = {MK_ARR, 4, 0, 0},  FMT(0xde) = {MK_MAP, 2, 0, 0},
    FMT(0xdf) = {MK_MAP, 4, 0, 0},
};
#undef FMT

/* One decoded header. */
typedef struct mhdr {
    int k;      /* MK_* */
    size_t hl;  /* header bytes (type, length/value, ext type) */
    uint64_t n; /* payload bytes (STR BIN EXT F32 F64), count (ARR MAP) */
    uint64_t u; /* UINT value; BOOL value */
    int64_t i;  /* INT value */
} mhdr;

/* Reads the header at p. Returns 0 when len cannot hold it or the type
 * byte is never used; payload bounds are the caller's to check. */
static int
hdr(const unsigned char *p, size_t len, mhdr *h)
{
    const struct fmtdef *d;
    unsigned c;
    uint64_t v = 0;

    memset(h, 0, sizeof *h);
    if (len == 0)
        return 0;
    c = p[0];
    h->hl = 1;
    if (c <= 0x7f) {
        h->k = MK_UINT;
        h->u = c;
    } else if (c <= 0x8f) {
        h->k = MK_MAP;
        h->n = c & 0x0f;
    } else if (c <= 0x9f) {
        h->k = MK_ARR;
        h->n = c & 0x0f;
    } else if (c <= 0xbf) {
        h->k = MK_STR;
        h->n = c & 0x1f;
    } else if (c >= 0xe0) {
        h->k = MK_INT;
        h->i = (int64_t)c - 256;
    } else {
        d = &fmts[c - 0xc0];
        if (d->kind == MK_BAD)
            return 0;
        h->k = d->kind;
        h->hl = 1u + d->w + d->ext;
        if (h->hl > len)
            return 0;
        for (unsigned i = 0; i < d->w; i++)
            v = v << 8 | p[1 + i];
        if (d->kind == MK_BOOL) {
            h->u = c & 1;
        } else if (d->kind == MK_UINT) {
            h->u = v;
        } else if (d->kind == MK_INT) {
            uint64_t sign = (uint64_t)1 << (8 * d->w - 1);
            uint64_t mask = d->w == 8 ? UINT64_MAX : (sign << 1) - 1;
            if (v & sign) {
                uint64_t mag = (~v + 1) & mask; /* 1 .. 2^63 */
                h->i = -(int64_t)(mag - 1) - 1;
            } else {
                h->k = MK_UINT;
                h->u = v;
            }
        } else {
            h->n = d->w ? v : d->fixed;
        }
    }
    return 1;
}

enum { WHY_OK, WHY_BAD, WHY_DEEP, WHY_NOMEM };

/*
 * Walks one object at p. Returns its length, or 0 with *why set. stack
 * holds, per open container, the elements still to come; a container
 * needs at least one byte per element, so it can never be deeper than
 * len, and the stack is sized min(max_depth, len).
 */
static size_t
scan(const unsigned char *p, size_t len, int max_depth, int *why)
{
    uint64_t small[64], *rem = small;
    size_t lim = max_depth > 0 ? (size_t)max_depth : 0;
    size_t cap = lim < len ? lim : len; /* entries in rem */
    size_t depth = 0, off = 0, r = 0;
    mhdr h;

    *why = WHY_BAD;
    if (cap > sizeof small / sizeof small[0] &&
        (rem = malloc(cap * sizeof *rem)) == NULL) {
        *why = WHY_NOMEM;
        return 0;
    }
    for (;;) {
        if (!hdr(p + off, len - off, &h))
            goto out;
        off += h.hl;
        if (h.k == MK_ARR || h.k == MK_MAP) {
            uint64_t cnt = h.k == MK_MAP ? 2 * h.n : h.n;
            if (cnt > len - off)
                goto out;
            if (depth >= lim) {
                *why = WHY_DEEP;
                goto out;
            }
            if (cnt > 0) {
                if (depth >= cap) /* cannot happen: see above */
                    goto out;
                rem[depth++] = cnt;
                continue;
            }
        } else {
            if (h.n > len - off)
                goto out;
            off += (size_t)h.n;
        }
        while (depth > 0 && --rem[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            r = off;
            *why = WHY_OK;
            break;
        }
    }
out:
    if (rem != small)
        free(rem);
    return r;
}

size_t
hf_wire_mp_check(const void *data, size_t len, int max_depth)
{
    int why;

    if (data == NULL)
        return 0;
    return scan(data, len, max_depth, &why);
}

/* Length of the object at p, which scan() has already accepted. */
static size_t
skip(const unsigned char *p, size_t len)
{
    int why;
    return scan(p, len, WIRE_DEPTH, &why);
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

static int
utf8_valid(const unsigned char *p, size_t n)
{
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
/* decoding                                                            */

/* While decoding, a slice holds an offset into f->store (see the notes). */
static hf_slice
at(size_t off, size_t len)
{
    return (hf_slice){(const void *)(uintptr_t)(off + 1), len};
}

static void
rebase(hf_slice *s, const char *base)
{
    if (s->data != NULL)
        s->data = base + ((uintptr_t)s->data - 1);
}

enum {
    FI_OP,
    FI_ID,
    FI_TO,
    FI_METHOD,
    FI_TYPE,
    FI_KEY,
    FI_TOKEN,
    FI_EPOCH,
    FI_SINCE,
    FI_ARGS,
    FI_DATA,
    FI_PRESENCE,
    FI_COUNT
};

enum fkind { FK_OP, FK_ID, FK_STR, FK_SINCE, FK_VAL };

#define SLOT(f) offsetof(hf_wire_msg, f)
#define FIELD(nm, kd, slot, what)                                              \
    {                                                                          \
        nm, sizeof(nm) - 1, kd, slot, "'" nm "' is required",                  \
            "'" nm "' must be " what, "'" nm "' must not contain NUL bytes"    \
    }

/* The client message fields (DESIGN §5). args, data and presence all land
 * in msg->args: each op uses one of them. */
static const struct field {
    const char *name;
    size_t len;
    enum fkind kind;
    size_t slot; /* offsetof the hf_slice in hf_wire_msg */
    const char *missing, *mistyped, *nul;
} fields[FI_COUNT] = {
    [FI_OP] = FIELD("op", FK_OP, 0, "a string"),
    [FI_ID] = FIELD("id", FK_ID, SLOT(id), "a string or integer"),
    [FI_TO] = FIELD("to", FK_STR, SLOT(to), "a string"),
    [FI_METHOD] = FIELD("method", FK_STR, SLOT(method), "a string"),
    [FI_TYPE] = FIELD("type", FK_STR, SLOT(type), "a string"),
    [FI_KEY] = FIELD("key", FK_STR, SLOT(key), "a string"),
    [FI_TOKEN] = FIELD("token", FK_STR, SLOT(token), "a string"),
    [FI_EPOCH] = FIELD("epoch", FK_STR, SLOT(epoch), "a string"),
    [FI_SINCE] = FIELD("since", FK_SINCE, 0, "a non-negative integer"),
    [FI_ARGS] = FIELD("args", FK_VAL, SLOT(args), "a value"),
    [FI_DATA] = FIELD("data", FK_VAL, SLOT(args), "a value"),
    [FI_PRESENCE] = FIELD("presence", FK_VAL, SLOT(args), "a value"),
};
#undef FIELD

/* Every slice of hf_wire_msg, for rebase(). */
static const size_t slots[] = {
    SLOT(id),   SLOT(to),  SLOT(method), SLOT(type),
    SLOT(args), SLOT(key), SLOT(token),  SLOT(epoch),
};
#undef SLOT

#define B(fi) (1u << (fi))
/* Per op: the fields it requires and the fields it reads at all. */
static const struct opdef {
    const char *name;
    int op;
    unsigned need, use;
} ops[] = {
    {"call", HF_W_CALL, B(FI_TO) | B(FI_METHOD),
     B(FI_TO) | B(FI_METHOD) | B(FI_KEY) | B(FI_ARGS)},
    {"sub", HF_W_SUB, B(FI_TO),
     B(FI_TO) | B(FI_SINCE) | B(FI_EPOCH) | B(FI_PRESENCE)},
    {"unsub", HF_W_UNSUB, B(FI_TO), B(FI_TO)},
    {"signal", HF_W_SIGNAL, B(FI_TO) | B(FI_TYPE),
     B(FI_TO) | B(FI_TYPE) | B(FI_DATA)},
    {"ping", HF_W_PING, 0, 0},
    {"auth", HF_W_AUTH, B(FI_TOKEN), B(FI_TOKEN)},
};

static int
field_index(const unsigned char *name, uint64_t len)
{
    for (int i = 0; i < FI_COUNT; i++)
        if (fields[i].len == len && memcmp(fields[i].name, name, len) == 0)
            return i;
    return -1;
}

static const struct opdef *
find_op(const unsigned char *name, uint64_t len)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].name) == len && memcmp(ops[i].name, name, len) == 0)
            return &ops[i];
    return NULL;
}

static void
bad(hf_wire_msg *m, int err, const char *why)
{
    m->err = err;
    m->errmsg = why;
}

/*
 * Reads one message: the len bytes at p, which scan() accepted and which
 * sit at offset base in the store. Fills m (already zeroed), slices as
 * offsets; on a problem sets m->err, keeping the op and id when known.
 */
static void
parse(hf_wire_msg *m, const unsigned char *p, size_t len, size_t base)
{
    struct {
        size_t off, len; /* the value, from p */
        mhdr h;          /* its header */
    } v[FI_COUNT];
    const struct opdef *od = NULL;
    unsigned have = 0;
    size_t pos;
    mhdr h, kh;

    hdr(p, len, &h);
    if (h.k != MK_MAP) {
        bad(m, HF_EBADREQ, "message must be an object");
        return;
    }
    pos = h.hl;
    for (uint64_t i = 0; i < h.n; i++) {
        size_t klen = skip(p + pos, len - pos), vlen;
        int fi = -1;

        hdr(p + pos, len - pos, &kh);
        if (kh.k == MK_STR)
            fi = field_index(p + pos + kh.hl, kh.n);
        pos += klen;
        vlen = skip(p + pos, len - pos);
        if (fi >= 0) {
            v[fi].off = pos;
            v[fi].len = vlen;
            hdr(p + pos, len - pos, &v[fi].h);
            if (v[fi].h.k == MK_NIL)
                have &= ~B(fi);
            else
                have |= B(fi);
        }
        pos += vlen;
    }

    if ((have & B(FI_OP)) && v[FI_OP].h.k == MK_STR)
        od = find_op(p + v[FI_OP].off + v[FI_OP].h.hl, v[FI_OP].h.n);
    m->op = od ? od->op : 0;
    if (have & B(FI_ID)) {
        int k = v[FI_ID].h.k;
        if (k != MK_STR && k != MK_UINT && k != MK_INT) {
            bad(m, HF_EBADREQ, fields[FI_ID].mistyped);
            return;
        }
        m->id = at(base + v[FI_ID].off, v[FI_ID].len);
    }
    if (!(have & B(FI_OP))) {
        bad(m, HF_EBADREQ, fields[FI_OP].missing);
        return;
    }
    if (v[FI_OP].h.k != MK_STR) {
        bad(m, HF_EBADREQ, fields[FI_OP].mistyped);
        return;
    }
    if (od == NULL) {
        bad(m, HF_EBADREQ, "unknown op");
        return;
    }

    for (int fi = 0; fi < FI_COUNT; fi++) {
        const struct field *fd = &fields[fi];
        hf_slice *slot = (hf_slice *)((char *)m + fd->slot);

        if (!(od->use & B(fi)))
            continue;
        if (!(have & B(fi))) {
            if (od->need & B(fi)) {
                bad(m, HF_EBADREQ, fd->missing);
                return;
            }
            continue;
        }
        switch (fd->kind) {
        case FK_STR: {
            const unsigned char *s = p + v[fi].off + v[fi].h.hl;
            if (v[fi].h.k != MK_STR) {
                bad(m, HF_EBADREQ, fd->mistyped);
                return;
            }
            if (memchr(s, 0, (size_t)v[fi].h.n) != NULL) {
                bad(m, HF_EBADREQ, fd->nul);
                return;
            }
            *slot = at(base + v[fi].off + v[fi].h.hl, (size_t)v[fi].h.n);
            break;
        }
        case FK_SINCE:
            if (v[fi].h.k != MK_UINT || v[fi].h.u > INT64_MAX) {
                bad(m, HF_EBADREQ, fd->mistyped);
                return;
            }
            m->since = (int64_t)v[fi].h.u;
            m->has_since = 1;
            break;
        case FK_VAL:
            *slot = at(base + v[fi].off, v[fi].len);
            break;
        default:
            break;
        }
    }
}

/* A new, zeroed entry; NULL when out of memory. */
static hf_wire_msg *
add(hf_wire_frame *f)
{
    hf_wire_msg *m;

    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        if ((m = realloc(f->msgs, cap * sizeof *m)) == NULL)
            return NULL;
        f->msgs = m;
        f->cap = cap;
    }
    m = &f->msgs[f->n++];
    memset(m, 0, sizeof *m);
    return m;
}

static int
too_many(hf_wire_frame *f)
{
    hf_wire_msg *m = add(f);

    if (m == NULL)
        return HF_EINTERNAL;
    bad(m, HF_ETOOLARGE, "too many messages in frame");
    return 0;
}

static int
decode_msgpack(hf_wire_frame *f, const void *data, size_t len, size_t max_msgs)
{
    const unsigned char *p;
    size_t off = 0, n;
    hf_wire_msg *m;
    int why;

    if (hf_buf_append(&f->store, data, len) != 0)
        return HF_EINTERNAL;
    p = (const unsigned char *)f->store.data;
    while (off < len) {
        if (f->n == max_msgs)
            return too_many(f);
        if ((m = add(f)) == NULL)
            return HF_EINTERNAL;
        if ((n = scan(p + off, len - off, WIRE_DEPTH, &why)) == 0) {
            /* No way to find where the next message starts. */
            bad(m, HF_EBADREQ,
                why == WHY_DEEP ? "nesting too deep" : "invalid msgpack");
            break;
        }
        parse(m, p + off, n, off);
        off += n;
    }
    return 0;
}

static int
json_msg(hf_wire_frame *f, hf_wire_msg *m, const char *s, size_t n)
{
    size_t start = f->store.len, mlen;
    int why;

    if (memchr(s, 0, n) != NULL) {
        bad(m, HF_EBADREQ, "NUL byte in JSON");
        return 0;
    }
    if (!utf8_valid((const unsigned char *)s, n)) {
        bad(m, HF_EBADREQ, "invalid UTF-8");
        return 0;
    }
    if (hf_json_to_mp(s, n, &f->store) != 0) {
        f->store.len = start;
        bad(m, HF_EBADREQ, "invalid JSON");
        return 0;
    }
    mlen = scan((const unsigned char *)f->store.data + start,
                f->store.len - start, WIRE_DEPTH, &why);
    if (mlen == 0 && why == WHY_DEEP) {
        f->store.len = start;
        bad(m, HF_EBADREQ, "nesting too deep");
        return 0;
    }
    /* Anything else means the packer lost a write: out of memory. */
    if (mlen == 0 || mlen != f->store.len - start)
        return HF_EINTERNAL;
    parse(m, (const unsigned char *)f->store.data + start, mlen, start);
    return 0;
}

static int
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int
decode_json(hf_wire_frame *f, const char *s, size_t len, size_t max_msgs)
{
    const char *end = s + len;
    int rv;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *a = s, *e = nl ? nl : end;
        hf_wire_msg *m;

        s = nl ? nl + 1 : end;
        while (a < e && is_ws(*a))
            a++;
        while (e > a && is_ws(e[-1]))
            e--;
        if (a == e)
            continue;
        if (f->n == max_msgs)
            return too_many(f);
        if ((m = add(f)) == NULL)
            return HF_EINTERNAL;
        if ((rv = json_msg(f, m, a, (size_t)(e - a))) != 0)
            return rv;
    }
    return 0;
}

int
hf_wire_decode(hf_wire_frame *f, int fmt, const void *data, size_t len,
               size_t max_msgs)
{
    int rv = 0;

    f->n = 0;
    f->store.len = 0;
    if (len == 0 || data == NULL)
        return 0;
    if (fmt == HF_WIRE_MSGPACK)
        rv = decode_msgpack(f, data, len, max_msgs);
    else
        rv = decode_json(f, data, len, max_msgs);
    if (rv != 0) {
        f->n = 0;
        return rv;
    }
    for (size_t i = 0; i < f->n; i++)
        for (size_t j = 0; j < sizeof slots / sizeof slots[0]; j++)
            rebase((hf_slice *)((char *)&f->msgs[i] + slots[j]), f->store.data);
    return 0;
}

void
hf_wire_frame_free(hf_wire_frame *f)
{
    if (f == NULL)
        return;
    free(f->msgs);
    hf_buf_free(&f->store);
    f->msgs = NULL;
    f->n = f->cap = 0;
}

/* ------------------------------------------------------------------ */
/* output: a writer that remembers failure                             */

typedef struct wr {
    hf_buf *b;
    size_t start; /* b->len before this message: where to cut back to */
    int fail;
    int keys; /* container keys being rendered around this text */
} wr;

/* Inline, not hf_buf_append: the encoders put many short pieces. */
static inline void
put(wr *w, const void *p, size_t n)
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

#define PUTS(w, lit) put((w), (lit), sizeof(lit) - 1)

static int
mpwrite(void *data, const char *p, size_t n)
{
    wr *w = data;
    put(w, p, n);
    return w->fail ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* JSON writer                                                         */

static void
js_u64(wr *w, uint64_t v, int neg)
{
    char b[24];
    size_t i = sizeof b;

    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg)
        b[--i] = '-';
    put(w, b + i, sizeof b - i);
}

static void
js_i64(wr *w, int64_t v)
{
    if (v < 0)
        js_u64(w, ~(uint64_t)v + 1, 1); /* |v|, INT64_MIN too */
    else
        js_u64(w, (uint64_t)v, 0);
}

/* prec 17 round-trips a double, 9 a float. A value that prints like an
 * integer gets ".0", so it stays a real when read back. */
static void
js_double(wr *w, double d, int prec)
{
    char b[48];
    int n;

    if (!isfinite(d)) {
        PUTS(w, "null");
        return;
    }
    n = snprintf(b, sizeof b - 2, "%.*g", prec, d);
    if (n < 0 || (size_t)n >= sizeof b - 2) {
        PUTS(w, "null");
        return;
    }
    for (int i = 0; i < n; i++)
        if (b[i] == ',') /* a locale's decimal comma */
            b[i] = '.';
    if (strpbrk(b, ".e") == NULL) {
        b[n++] = '.';
        b[n++] = '0';
    }
    put(w, b, (size_t)n);
}

/* Two-character escapes; other control characters get \u00XX. */
static const char short_esc[128] = {
    ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
    ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't',
};

/* A JSON string: quotes, backslash and control characters escaped,
 * ill-formed UTF-8 replaced by U+FFFD, everything else copied in runs. */
static void
js_str(wr *w, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = data;
    size_t i = 0, run = 0;

    PUTS(w, "\"");
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
            put(w, s + run, i - run);
        if (c >= 0x80) {
            PUTS(w, "\xef\xbf\xbd"); /* U+FFFD */
            i += (size_t)-l;
        } else if (short_esc[c] != 0) {
            char esc[2] = {'\\', short_esc[c]};
            put(w, esc, 2);
            i++;
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, esc, 6);
            i++;
        }
        run = i;
    }
    if (i > run)
        put(w, s + run, i - run);
    PUTS(w, "\"");
}

static void js_obj(wr *w, const msgpack_object *o);

/* A non-string map key: the string of its JSON text; a container key
 * inside KEY_NEST_MAX others, "null" (see the design notes). */
static void
js_key_text(wr *w, const msgpack_object *k)
{
    hf_buf tmp = {0};
    wr t = {&tmp, 0, 0, w->keys};

    if (k->type == MSGPACK_OBJECT_ARRAY || k->type == MSGPACK_OBJECT_MAP) {
        if (w->keys >= KEY_NEST_MAX) {
            PUTS(w, "\"null\"");
            return;
        }
        t.keys++;
    }
    js_obj(&t, k);
    if (t.fail)
        w->fail = 1;
    else
        js_str(w, tmp.data, tmp.len);
    hf_buf_free(&tmp);
}

static void
js_obj(wr *w, const msgpack_object *o)
{
    if (o == NULL) {
        PUTS(w, "null");
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean)
            PUTS(w, "true");
        else
            PUTS(w, "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        js_u64(w, o->via.u64, 0);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        js_i64(w, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
        js_double(w, o->via.f64, 9);
        break;
    case MSGPACK_OBJECT_FLOAT64:
        js_double(w, o->via.f64, 17);
        break;
    case MSGPACK_OBJECT_STR:
        js_str(w, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        PUTS(w, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i > 0)
                PUTS(w, ",");
            js_obj(w, &o->via.array.ptr[i]);
        }
        PUTS(w, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        PUTS(w, "{");
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i > 0)
                PUTS(w, ",");
            if (kv->key.type == MSGPACK_OBJECT_STR)
                js_str(w, kv->key.via.str.ptr, kv->key.via.str.size);
            else
                js_key_text(w, &kv->key);
            PUTS(w, ":");
            js_obj(w, &kv->val);
        }
        PUTS(w, "}");
        break;
    default: /* nil, bin, ext */
        PUTS(w, "null");
        break;
    }
}

/* True when raw is exactly one well-formed msgpack object. */
static int
raw_ok(hf_slice raw)
{
    return raw.len > 0 &&
           hf_wire_mp_check(raw.data, raw.len, WIRE_DEPTH) == raw.len;
}

/* Raw msgpack as JSON. Scalars (every id) are read in place; anything
 * else is unpacked into a zone first. Empty or malformed: null. */
static void
js_raw(wr *w, hf_slice raw)
{
    const unsigned char *p = raw.data;
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    msgpack_zone z;
    size_t off = 0;
    mhdr h;

    if (!raw_ok(raw)) {
        PUTS(w, "null");
        return;
    }
    hdr(p, raw.len, &h);
    switch (h.k) {
    case MK_UINT:
        js_u64(w, h.u, 0);
        return;
    case MK_INT:
        js_i64(w, h.i);
        return;
    case MK_STR:
        js_str(w, p + h.hl, (size_t)h.n);
        return;
    case MK_NIL:
    case MK_BIN:
    case MK_EXT:
        PUTS(w, "null");
        return;
    default:
        break;
    }
    if (!msgpack_zone_init(&z, 1024)) {
        w->fail = 1;
        return;
    }
    if (msgpack_unpack(raw.data, raw.len, &off, &z, &o) ==
        MSGPACK_UNPACK_SUCCESS)
        js_obj(w, &o);
    else
        w->fail = 1; /* accepted by scan(): only memory can fail */
    msgpack_zone_destroy(&z);
}

void
hf_wire_json(hf_buf *out, const msgpack_object *o)
{
    wr w = {out, out->len, 0, 0};

    js_obj(&w, o);
    if (w.fail)
        out->len = w.start;
}

/* ------------------------------------------------------------------ */
/* message encoder: one description, JSON or msgpack                   */

typedef struct enc {
    wr w;
    int json;
    int first; /* JSON: no comma before the next key */
    msgpack_packer pk;
} enc;

static void
map_open(enc *e, size_t nkeys)
{
    if (e->json) {
        PUTS(&e->w, "{");
        e->first = 1;
    } else {
        msgpack_pack_map(&e->pk, nkeys);
    }
}

static void
map_close(enc *e)
{
    if (e->json)
        PUTS(&e->w, "}");
    e->first = 0;
}

/* Starts a message of nkeys keys; sep: a JSON message is preceded by
 * '\n' when out already holds one. */
static void
msg_open(enc *e, hf_buf *out, int fmt, int sep, size_t nkeys)
{
    e->w = (wr){out, out->len, 0, 0};
    e->json = fmt != HF_WIRE_MSGPACK;
    if (e->json) {
        if (sep && out->len > 0)
            PUTS(&e->w, "\n");
    } else {
        msgpack_packer_init(&e->pk, &e->w, mpwrite);
    }
    map_open(e, nkeys);
}

static void
msg_close(enc *e)
{
    map_close(e);
    if (e->w.fail)
        e->w.b->len = e->w.start;
}

static void
key(enc *e, const char *k)
{
    if (e->json) {
        if (e->first)
            PUTS(&e->w, "\"");
        else
            PUTS(&e->w, ",\"");
        put(&e->w, k, strlen(k));
        PUTS(&e->w, "\":");
        e->first = 0;
    } else {
        hf_pack_cstr(&e->pk, k);
    }
}

static void
v_str(enc *e, const void *s, size_t n)
{
    if (e->json)
        js_str(&e->w, s, n);
    else
        hf_pack_str(&e->pk, s, n);
}

static void
v_cstr(enc *e, const char *s)
{
    if (s == NULL)
        s = "";
    v_str(e, s, strlen(s));
}

static void
v_u64(enc *e, uint64_t v)
{
    if (e->json)
        js_u64(&e->w, v, 0);
    else
        msgpack_pack_uint64(&e->pk, v);
}

static void
v_i64(enc *e, int64_t v)
{
    if (e->json)
        js_i64(&e->w, v);
    else
        msgpack_pack_int64(&e->pk, v);
}

static void
v_bool(enc *e, int v)
{
    if (e->json) {
        if (v)
            PUTS(&e->w, "true");
        else
            PUTS(&e->w, "false");
    } else if (v) {
        msgpack_pack_true(&e->pk);
    } else {
        msgpack_pack_false(&e->pk);
    }
}

static void
v_obj(enc *e, const msgpack_object *o)
{
    if (e->json)
        js_obj(&e->w, o);
    else if (o == NULL)
        msgpack_pack_nil(&e->pk);
    else
        msgpack_pack_object(&e->pk, *o);
}

static void
v_raw(enc *e, hf_slice raw)
{
    if (e->json)
        js_raw(&e->w, raw);
    else if (raw_ok(raw))
        hf_pack_raw(&e->pk, raw);
    else
        msgpack_pack_nil(&e->pk);
}

static void
kv_cstr(enc *e, const char *k, const char *v)
{
    key(e, k);
    v_cstr(e, v);
}

static void
kv_slice(enc *e, const char *k, hf_slice v)
{
    key(e, k);
    v_str(e, v.data, v.len);
}

/* {"code":…,"message":…}; an empty message defaults to the code. */
static void
error_obj(enc *e, int err, const char *msg, size_t msglen)
{
    if (msg == NULL || msglen == 0) {
        msg = hf_err_name(err);
        msglen = strlen(msg);
    }
    key(e, "error");
    map_open(e, 2);
    kv_cstr(e, "code", hf_err_name(err));
    key(e, "message");
    v_str(e, msg, msglen);
    map_close(e);
}

void
hf_wire_hello(hf_buf *out, int fmt, const char *server, uint64_t conn,
              int heartbeat_s)
{
    char id[24];
    int n = snprintf(id, sizeof id, "%llu", (unsigned long long)conn);
    enc e;

    msg_open(&e, out, fmt, 1, 4);
    kv_cstr(&e, "op", "hello");
    kv_cstr(&e, "server", server);
    key(&e, "conn");
    v_str(&e, id, (size_t)n);
    key(&e, "heartbeat");
    v_i64(&e, heartbeat_s);
    msg_close(&e);
}

void
hf_wire_reply_ok(hf_buf *out, int fmt, hf_slice id,
                 const msgpack_object *result)
{
    enc e;

    msg_open(&e, out, fmt, 1, 4);
    kv_cstr(&e, "op", "reply");
    key(&e, "id");
    v_raw(&e, id);
    key(&e, "ok");
    v_bool(&e, 1);
    key(&e, "result");
    v_obj(&e, result);
    msg_close(&e);
}

void
hf_wire_reply_err(hf_buf *out, int fmt, hf_slice id, int err, const char *msg,
                  size_t msglen)
{
    enc e;

    msg_open(&e, out, fmt, 1, 4);
    kv_cstr(&e, "op", "reply");
    key(&e, "id");
    v_raw(&e, id);
    key(&e, "ok");
    v_bool(&e, 0);
    error_obj(&e, err, msg, msglen);
    msg_close(&e);
}

void
hf_wire_event(hf_buf *out, int fmt, hf_slice from, uint64_t seq, hf_slice type,
              const msgpack_object *data, int64_t at_ms)
{
    enc e;

    msg_open(&e, out, fmt, 1, 6);
    kv_cstr(&e, "op", "event");
    kv_slice(&e, "from", from);
    key(&e, "seq");
    v_u64(&e, seq);
    kv_slice(&e, "type", type);
    key(&e, "data");
    v_obj(&e, data);
    key(&e, "at");
    v_i64(&e, at_ms);
    msg_close(&e);
}

void
hf_wire_signal(hf_buf *out, int fmt, hf_slice from, hf_slice type, hf_slice by,
               const msgpack_object *data)
{
    enc e;

    msg_open(&e, out, fmt, 1, 5);
    kv_cstr(&e, "op", "signal");
    kv_slice(&e, "from", from);
    kv_slice(&e, "type", type);
    kv_slice(&e, "by", by);
    key(&e, "data");
    v_obj(&e, data);
    msg_close(&e);
}

void
hf_wire_presence(hf_buf *out, int fmt, hf_slice from, hf_slice action,
                 const msgpack_object *who)
{
    enc e;

    msg_open(&e, out, fmt, 1, 4);
    kv_cstr(&e, "op", "presence");
    kv_slice(&e, "from", from);
    kv_slice(&e, "action", action);
    key(&e, "who");
    v_obj(&e, who);
    msg_close(&e);
}

void
hf_wire_pong(hf_buf *out, int fmt, hf_slice id)
{
    enc e;

    msg_open(&e, out, fmt, 1, 2);
    kv_cstr(&e, "op", "pong");
    key(&e, "id");
    v_raw(&e, id);
    msg_close(&e);
}

void
hf_wire_http_ok(hf_buf *out, const msgpack_object *result)
{
    enc e;

    msg_open(&e, out, HF_WIRE_JSON, 0, 2);
    key(&e, "ok");
    v_bool(&e, 1);
    key(&e, "result");
    v_obj(&e, result);
    msg_close(&e);
}

void
hf_wire_http_err(hf_buf *out, int err, const char *msg, size_t msglen)
{
    enc e;

    msg_open(&e, out, HF_WIRE_JSON, 0, 2);
    key(&e, "ok");
    v_bool(&e, 0);
    error_obj(&e, err, msg, msglen);
    msg_close(&e);
}
