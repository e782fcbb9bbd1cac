/*
 * wire.c - the client wire protocol v1: see wire.h.
 *
 * Design notes
 *
 * One decoding path. Every client message becomes msgpack bytes in
 * f->store before it is looked at: a msgpack frame is copied in whole, a
 * JSON line is parsed by jansson and converted (hf_json_to_mp). The bytes
 * are then checked by hf_mp_check (core/mp.h), which walks the msgpack
 * format with a fixed stack, allocates nothing, and refuses any array or
 * map whose count the remaining bytes could not hold. Only then is the
 * top-level map read, by the same header reader, so "id" and "args" come
 * out as slices of bytes already in the store: nothing is unpacked into
 * objects or re-encoded. Once hf_mp_check has accepted an object, every element it announces is
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
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "transport/wire.h"

#define WIRE_DEPTH HF_WIRE_DEPTH

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
field_index(const char *name, size_t len)
{
    for (int i = 0; i < FI_COUNT; i++)
        if (fields[i].len == len && memcmp(fields[i].name, name, len) == 0)
            return i;
    return -1;
}

static const struct opdef *
find_op(const char *name, size_t len)
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
 * Reads one message: the len bytes at p, which hf_mp_check accepted and
 * which sit at offset base in the store. Fills m (already zeroed), slices
 * as offsets; on a problem sets m->err, keeping the op and id when known.
 * The bytes were checked, so no read below can fail.
 */
static void
parse(hf_wire_msg *m, const unsigned char *p, size_t len, size_t base)
{
    struct {
        size_t off, len; /* the value, from p */
        hf_mp_hdr h;     /* its header */
    } v[FI_COUNT];
    const unsigned char *q = p, *end = p + len;
    const struct opdef *od = NULL;
    unsigned have = 0;
    hf_mp_hdr h, kh;

    hf_mp_read_hdr(&q, end, &h);
    if (h.type != MSGPACK_OBJECT_MAP) {
        bad(m, HF_EBADREQ, "message must be an object");
        return;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        const unsigned char *at = q;
        int fi = -1;

        hf_mp_read_hdr(&at, end, &kh);
        if (kh.type == MSGPACK_OBJECT_STR)
            fi = field_index(kh.body, kh.len);
        hf_mp_skip(&q, end);
        at = q;
        hf_mp_skip(&q, end);
        if (fi >= 0) {
            v[fi].off = (size_t)(at - p);
            v[fi].len = (size_t)(q - at);
            hf_mp_read_hdr(&at, end, &v[fi].h);
            if (v[fi].h.type == MSGPACK_OBJECT_NIL)
                have &= ~B(fi);
            else
                have |= B(fi);
        }
    }

    if ((have & B(FI_OP)) && v[FI_OP].h.type == MSGPACK_OBJECT_STR)
        od = find_op(v[FI_OP].h.body, v[FI_OP].h.len);
    m->op = od ? od->op : 0;
    if (have & B(FI_ID)) {
        int k = v[FI_ID].h.type;
        if (k != MSGPACK_OBJECT_STR && k != MSGPACK_OBJECT_POSITIVE_INTEGER &&
            k != MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            bad(m, HF_EBADREQ, fields[FI_ID].mistyped);
            return;
        }
        m->id = at(base + v[FI_ID].off, v[FI_ID].len);
    }
    if (!(have & B(FI_OP))) {
        bad(m, HF_EBADREQ, fields[FI_OP].missing);
        return;
    }
    if (v[FI_OP].h.type != MSGPACK_OBJECT_STR) {
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
            const char *s = v[fi].h.body;
            if (v[fi].h.type != MSGPACK_OBJECT_STR) {
                bad(m, HF_EBADREQ, fd->mistyped);
                return;
            }
            if (memchr(s, 0, v[fi].h.len) != NULL) {
                bad(m, HF_EBADREQ, fd->nul);
                return;
            }
            *slot = at(base + (size_t)(s - (const char *)p), v[fi].h.len);
            break;
        }
        case FK_SINCE:
            if (v[fi].h.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                v[fi].h.n > INT64_MAX) {
                bad(m, HF_EBADREQ, fd->mistyped);
                return;
            }
            m->since = (int64_t)v[fi].h.n;
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
        if ((n = hf_mp_check(p + off, len - off, WIRE_DEPTH, &why)) == 0) {
            /* No way to find where the next message starts. */
            bad(m, HF_EBADREQ,
                why == HF_MP_DEEP ? "nesting too deep" : "invalid msgpack");
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
    if (!hf_json_utf8_valid(s, n)) {
        bad(m, HF_EBADREQ, "invalid UTF-8");
        return 0;
    }
    if (hf_json_to_mp(s, n, &f->store) != 0) {
        f->store.len = start;
        bad(m, HF_EBADREQ, "invalid JSON");
        return 0;
    }
    mlen = hf_mp_check(f->store.data + start, f->store.len - start,
                       WIRE_DEPTH, &why);
    if (mlen == 0 && why == HF_MP_DEEP) {
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
/* output: JSON through hf_json_wr (core/mpjson.h), msgpack into the same */

/* msgpack_packer callback writing through an hf_json_wr, so a message in
 * either format shares the writer's failure flag and cut-back. */
static int
mpwrite(void *data, const char *p, size_t n)
{
    hf_json_wr *w = data;
    hf_json_put(w, p, n);
    return w->fail ? -1 : 0;
}

/* True when raw is exactly one well-formed msgpack object. */
static int
raw_ok(hf_slice raw)
{
    return raw.len > 0 &&
           hf_mp_check(raw.data, raw.len, WIRE_DEPTH, NULL) == raw.len;
}

/* Raw msgpack as JSON. Scalars (every id) are read in place; anything
 * else is unpacked into a zone first. Empty or malformed: null. */
static void
js_raw(hf_json_wr *w, hf_slice raw)
{
    const unsigned char *p = raw.data;
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    msgpack_zone z;
    size_t off = 0;
    hf_mp_hdr h;

    if (!raw_ok(raw)) {
        HF_JSON_PUTS(w, "null");
        return;
    }
    hf_mp_read_hdr(&p, p + raw.len, &h);
    switch (h.type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        hf_json_u64(w, h.n);
        return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        hf_json_i64(w, h.i);
        return;
    case MSGPACK_OBJECT_STR:
        hf_json_str(w, h.body, h.len);
        return;
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT:
        HF_JSON_PUTS(w, "null");
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
        hf_json_mp(w, &o);
    else
        w->fail = 1; /* accepted by hf_mp_check: only memory can fail */
    msgpack_zone_destroy(&z);
}

/* ------------------------------------------------------------------ */
/* message encoder: one description, JSON or msgpack                   */

typedef struct enc {
    hf_json_wr w;
    int json;
    int first; /* JSON: no comma before the next key */
    msgpack_packer pk;
} enc;

static void
map_open(enc *e, size_t nkeys)
{
    if (e->json) {
        HF_JSON_PUTS(&e->w, "{");
        e->first = 1;
    } else {
        msgpack_pack_map(&e->pk, nkeys);
    }
}

static void
map_close(enc *e)
{
    if (e->json)
        HF_JSON_PUTS(&e->w, "}");
    e->first = 0;
}

/* Starts a message of nkeys keys; sep: a JSON message is preceded by
 * '\n' when out already holds one. */
static void
msg_open(enc *e, hf_buf *out, int fmt, int sep, size_t nkeys)
{
    e->w = (hf_json_wr){out, out->len, 0, 0};
    e->json = fmt != HF_WIRE_MSGPACK;
    if (e->json) {
        if (sep && out->len > 0)
            HF_JSON_PUTS(&e->w, "\n");
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
            HF_JSON_PUTS(&e->w, "\"");
        else
            HF_JSON_PUTS(&e->w, ",\"");
        hf_json_put(&e->w, k, strlen(k));
        HF_JSON_PUTS(&e->w, "\":");
        e->first = 0;
    } else {
        hf_pack_cstr(&e->pk, k);
    }
}

static void
v_str(enc *e, const void *s, size_t n)
{
    if (e->json)
        hf_json_str(&e->w, s, n);
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
        hf_json_u64(&e->w, v);
    else
        msgpack_pack_uint64(&e->pk, v);
}

static void
v_i64(enc *e, int64_t v)
{
    if (e->json)
        hf_json_i64(&e->w, v);
    else
        msgpack_pack_int64(&e->pk, v);
}

static void
v_bool(enc *e, int v)
{
    if (e->json) {
        if (v)
            HF_JSON_PUTS(&e->w, "true");
        else
            HF_JSON_PUTS(&e->w, "false");
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
        hf_json_mp(&e->w, o);
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
hf_wire_unsubscribed(hf_buf *out, int fmt, hf_slice from, int err,
                     const char *msg, size_t msglen)
{
    enc e;

    msg_open(&e, out, fmt, 1, 3);
    kv_cstr(&e, "op", "unsubscribed");
    kv_slice(&e, "from", from);
    error_obj(&e, err, msg, msglen);
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
