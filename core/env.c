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
 * envelope straight from its bytes with mp.h's reader, building no
 * objects for the envelope's own fields; only the value ("a", "res"...)
 * is built, when the caller asks, as msgpack_unpack would build it. It
 * must agree with hf_unpack_next + hf_env_decode on every input: the same
 * bytes are malformed (msgpack-c's rules, including its limit of
 * MSGPACK_EMBED_STACK_SIZE open containers), the same maps are invalid
 * envelopes, and an invalid envelope leaves the fields read before the
 * fault, as hf_env_decode does (callers answer with its conn and id).
 *
 * Encoding. msgpack-c's packer makes one callback per header and per body.
 * The envelope packers here compute an upper bound, write the bytes in one
 * go with hf_mp_emit (in place when the packer writes to an hf_buf, else
 * through one callback) and produce exactly the bytes msgpack-c would: the smallest
 * encoding of every header, fields in the same order.
 */
#include <stdlib.h>
#include <string.h>

#include "core/env.h"
#include "core/err.h"

/* A literal: a key with its header, or a key and its value. */
#define put_key(p, lit) hf_mp_put_bytes((p), (lit), sizeof(lit) - 1)

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
    FI_NM,
    FI_PIC,
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
    [FI_NM] = F("nm", F_STR, 0, O(name), NOFLAG),
    [FI_PIC] = F("pic", F_STR, 0, O(picture), NOFLAG),
};

/* The first field whose name starts with each letter; the rest follow
 * through field.next. */
static const uint8_t first[128] = {
    ['o'] = FI_OP,   ['i'] = FI_ID,  ['c'] = FI_C,    ['t'] = FI_TO,
    ['m'] = FI_M,    ['a'] = FI_A,   ['k'] = FI_K,    ['s'] = FI_S,
    ['r'] = FI_R,    ['e'] = FI_EP,  ['f'] = FI_FROM, ['b'] = FI_BY,
    ['d'] = FI_DATA, ['w'] = FI_WHO, ['n'] = FI_NM,   ['p'] = FI_PIC,
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

static int
getint(const hf_mp_hdr *v, int64_t *n)
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
set_field(hf_env *e, const struct field *f, const hf_mp_hdr *v)
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
        hf_mp_hdr h = {.type = v->type};

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

/* Unpacks the value bytes raw into a new object in zone. */
static int
val_unpack(hf_slice raw, msgpack_zone *zone, const msgpack_object **out)
{
    const unsigned char *p = raw.data;
    msgpack_object *o = msgpack_zone_malloc(zone, sizeof(*o));

    /* The value sits inside the envelope's map: one container is open. */
    if (o == NULL || hf_mp_read_obj(&p, p + raw.len, 1, zone, o) != 0)
        return HF_EBADREQ;
    *out = o;
    return 0;
}

/* Steps over one whole object inside the envelope map, however deep it
 * nests (see hf_mp_skip: the worker refuses a value too deep to unpack,
 * with a reply), leaving its header in *h. */
static int
rd_elem(const unsigned char **pp, const unsigned char *end, hf_mp_hdr *h)
{
    const unsigned char *at = *pp;

    if (hf_mp_read_hdr(pp, end, h) != 0)
        return -1;
    if (h->type != MSGPACK_OBJECT_ARRAY && h->type != MSGPACK_OBJECT_MAP)
        return 0;
    *pp = at;
    return hf_mp_skip(pp, end);
}

int
hf_env_read(const void *buf, size_t len, size_t *off, msgpack_zone *zone,
            hf_env *e, int *status)
{
    const unsigned char *start = buf, *p = start + *off, *end = start + len;
    const unsigned char *vp = NULL, *vend = NULL;
    hf_mp_hdr h;
    int st = 0;

    memset(e, 0, sizeof(*e));
    *status = HF_EBADREQ;
    if (*off >= len || hf_mp_read_hdr(&p, end, &h) != 0)
        return HF_EBADREQ;
    if (h.type != MSGPACK_OBJECT_MAP) {
        p = start + *off;
        if (hf_mp_skip(&p, end) != 0)
            return HF_EBADREQ;
        *off = (size_t)(p - start);
        return 0;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        const struct field *f = NULL;
        const unsigned char *at;
        hf_mp_hdr v;

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
    const hf_slice *sl[8] = {&e->to,  &e->method, &e->key,  &e->sub,
                             &e->epoch, &e->val_raw, &e->name, &e->picture};

    *pos = (hf_env_pos){.op = e->op,
                        .has_conn = e->has_conn,
                        .has_since = e->has_since,
                        .role = e->role,
                        .id = e->id,
                        .conn = e->conn,
                        .since = e->since};
    for (int i = 0; i < 8; i++) {
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
    hf_slice *sl[8] = {&e->to,    &e->method,  &e->key,  &e->sub,
                       &e->epoch, &e->val_raw, &e->name, &e->picture};

    memset(e, 0, sizeof(*e));
    e->op = pos->op;
    e->has_conn = pos->has_conn;
    e->has_since = pos->has_since;
    e->role = pos->role;
    e->id = pos->id;
    e->conn = pos->conn;
    e->since = pos->since;
    for (int i = 0; i < 8; i++)
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
    hf_mp_emit em;
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
    n += e->name.len > 0;   /* nm */
    n += e->picture.len > 0; /* pic */
    if ((p = hf_mp_emit_begin(&em, pk,
                        128 + e->to.len + e->method.len + val_raw.len +
                            e->key.len + e->sub.len + e->epoch.len +
                            e->name.len + e->picture.len)) == NULL)
        return HF_EINTERNAL;
    p = hf_mp_put_map(p, n);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, (uint64_t)e->op);
    p = put_key(p, "\xa2to");
    p = hf_mp_put_str(p, e->to.data, e->to.len);
    p = put_key(p, "\xa2id");
    p = hf_mp_put_u64(p, e->id);
    if (e->has_conn) {
        p = put_key(p, "\xa1"
                       "c");
        p = hf_mp_put_u64(p, e->conn);
    }
    if (e->method.len > 0) {
        p = put_key(p, "\xa1m");
        p = hf_mp_put_str(p, e->method.data, e->method.len);
    }
    if (val_raw.len > 0) {
        p = put_key(p, "\xa1"
                       "a");
        p = hf_mp_put_raw(p, val_raw);
    }
    if (e->key.len > 0) {
        p = put_key(p, "\xa1k");
        p = hf_mp_put_str(p, e->key.data, e->key.len);
    }
    if (e->sub.len > 0) {
        p = put_key(p, "\xa1s");
        p = hf_mp_put_str(p, e->sub.data, e->sub.len);
    }
    if (e->role != 0) {
        p = put_key(p, "\xa1r");
        p = hf_mp_put_u64(p, e->role);
    }
    if (e->has_since) {
        p = put_key(p, "\xa5since");
        p = hf_mp_put_i64(p, e->since);
    }
    if (e->epoch.len > 0) {
        p = put_key(p, "\xa2"
                       "ep");
        p = hf_mp_put_str(p, e->epoch.data, e->epoch.len);
    }
    if (e->name.len > 0) {
        p = put_key(p, "\xa2nm");
        p = hf_mp_put_str(p, e->name.data, e->name.len);
    }
    if (e->picture.len > 0) {
        p = put_key(p, "\xa3pic");
        p = hf_mp_put_str(p, e->picture.data, e->picture.len);
    }
    return hf_mp_emit_end(&em, p);
}

void
hf_env_pack_reply_ok(msgpack_packer *pk, uint64_t conn, uint64_t id,
                     hf_slice res_raw)
{
    hf_mp_emit em;
    char *p;

    if ((p = hf_mp_emit_begin(&em, pk, 48 + res_raw.len)) == NULL)
        return;
    p = hf_mp_put_map(p, 5);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, HF_OUT_REPLY);
    p = put_key(p, "\xa1"
                   "c");
    p = hf_mp_put_u64(p, conn);
    p = put_key(p, "\xa2id");
    p = hf_mp_put_u64(p, id);
    p = put_key(p, "\xa2ok\xc3");
    p = put_key(p, "\xa3res");
    p = hf_mp_put_raw(p, res_raw);
    hf_mp_emit_end(&em, p);
}

void
hf_env_pack_reply_err(msgpack_packer *pk, uint64_t conn, uint64_t id, int err,
                      const char *msg, size_t msglen)
{
    const char *code = hf_err_name(err);
    size_t cl = strlen(code);
    hf_mp_emit em;
    char *p;

    if (msg == NULL || msglen == 0) {
        msg = code;
        msglen = cl;
    }
    if ((p = hf_mp_emit_begin(&em, pk, 64 + cl + msglen)) == NULL)
        return;
    p = hf_mp_put_map(p, 6);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, HF_OUT_REPLY);
    p = put_key(p, "\xa1"
                   "c");
    p = hf_mp_put_u64(p, conn);
    p = put_key(p, "\xa2id");
    p = hf_mp_put_u64(p, id);
    p = put_key(p, "\xa2ok\xc2");
    p = put_key(p, "\xa4"
                   "code");
    p = hf_mp_put_str(p, code, cl);
    p = put_key(p, "\xa3msg");
    p = hf_mp_put_str(p, msg, msglen);
    hf_mp_emit_end(&em, p);
}

void
hf_env_pack_signal(msgpack_packer *pk, hf_slice from, hf_slice type,
                   hf_slice by, hf_slice data_raw)
{
    hf_mp_emit em;
    char *p;

    if ((p = hf_mp_emit_begin(&em, pk,
                        64 + from.len + type.len + by.len + data_raw.len)) ==
        NULL)
        return;
    p = hf_mp_put_map(p, 5);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, HF_OUT_SIGNAL);
    p = put_key(p, "\xa4"
                   "from");
    p = hf_mp_put_str(p, from.data, from.len);
    p = put_key(p, "\xa4type");
    p = hf_mp_put_str(p, type.data, type.len);
    p = put_key(p, "\xa2"
                   "by");
    p = hf_mp_put_str(p, by.data, by.len);
    p = put_key(p, "\xa4"
                   "data");
    p = hf_mp_put_raw(p, data_raw);
    hf_mp_emit_end(&em, p);
}

void
hf_env_pack_presence(msgpack_packer *pk, hf_slice from, int join,
                     hf_slice who_raw)
{
    hf_mp_emit em;
    char *p;

    if ((p = hf_mp_emit_begin(&em, pk, 64 + from.len + who_raw.len)) == NULL)
        return;
    p = hf_mp_put_map(p, 4);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, HF_OUT_PRESENCE);
    p = put_key(p, "\xa4"
                   "from");
    p = hf_mp_put_str(p, from.data, from.len);
    p = put_key(p, "\xa6"
                   "action");
    p = join ? hf_mp_put_str(p, "join", 4) : hf_mp_put_str(p, "leave", 5);
    p = put_key(p, "\xa3who");
    p = hf_mp_put_raw(p, who_raw);
    hf_mp_emit_end(&em, p);
}

int
hf_env_pack_event_value(msgpack_packer *pk, hf_slice type, hf_slice data_raw,
                        int64_t at)
{
    hf_mp_emit em;
    char *p;

    if ((p = hf_mp_emit_begin(&em, pk, 32 + type.len + data_raw.len)) ==
        NULL)
        return HF_EINTERNAL;
    p = hf_mp_put_map(p, 3);
    p = put_key(p, "\xa4type");
    p = hf_mp_put_str(p, type.data, type.len);
    p = put_key(p, "\xa4"
                   "data");
    p = hf_mp_put_raw(p, data_raw);
    p = put_key(p, "\xa2"
                   "at");
    p = hf_mp_put_i64(p, at);
    return hf_mp_emit_end(&em, p);
}

int
hf_env_event_value_ok(hf_slice value)
{
    /* A map of three, and nothing but that one object: a record that is
     * not what the engine wrote (corruption, an old format) must not be
     * spliced into an output batch, where it would swallow or break the
     * envelopes after it. */
    return value.len >= 1 && *(const unsigned char *)value.data == 0x83 &&
           hf_mp_check(value.data, value.len, HF_MP_DEPTH, NULL) == value.len;
}

int
hf_env_pack_event(msgpack_packer *pk, int has_conn, uint64_t conn,
                  hf_slice from, uint64_t seq, hf_slice value)
{
    hf_mp_emit em;
    char *p;

    if (!hf_env_event_value_ok(value))
        return HF_EBADREQ;
    if ((p = hf_mp_emit_begin(&em, pk, 48 + from.len + value.len)) == NULL)
        return HF_EINTERNAL;
    p = hf_mp_put_map(p, has_conn ? 7 : 6);
    p = put_key(p, "\xa2op");
    p = hf_mp_put_u64(p, HF_OUT_EVENT);
    if (has_conn) {
        p = put_key(p, "\xa1"
                       "c");
        p = hf_mp_put_u64(p, conn);
    }
    p = put_key(p, "\xa4"
                   "from");
    p = hf_mp_put_str(p, from.data, from.len);
    p = put_key(p, "\xa3seq");
    p = hf_mp_put_u64(p, seq);
    /* The value's three fields, without its map header. */
    p = hf_mp_put_bytes(p, (const char *)value.data + 1, value.len - 1);
    return hf_mp_emit_end(&em, p);
}
