/*
 * fuzz_wire.c - a client's WebSocket frame into the wire decoder
 * (transport/wire.h), and what the gateway does with each decoded message
 * that needs no connection (transport/gateway.c on_frame, on_message,
 * admit, forward, do_auth), then the host's reply to it back out.
 *
 * Input: byte 0 chooses the format (bit 0 set: a binary frame, msgpack;
 * else a text frame, JSON) and the message limit (bits 1-2: the gateway's
 * 1000, or 1, 3, 64); the rest is the frame's payload.
 *
 * Properties checked, beyond no crash and no sanitizer report:
 *  - every message is either an error (with a message, and no op when the
 *    op is unknown) or has an op and the fields that op requires; string
 *    fields hold no NUL; every slice lies inside the frame's store; id and
 *    args are each exactly one well-formed msgpack object, id a scalar;
 *  - decoding the same frame into a reused frame gives the same messages;
 *  - the request envelope forward() builds reads back, as hf_host_submit
 *    and the worker read it (hf_env_read, hf_env_pos_save/load), with the
 *    fields that went in;
 *  - every message the gateway would write back (error replies, pong,
 *    auth reply, and a reply, event, signal and presence carrying the
 *    message's args, through on_batch's decoding) is valid in both
 *    formats (fz_check_out), and grows at most linearly with the frame.
 */
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "tests/fuzz/fuzz.h"
#include "transport/auth.h"
#include "transport/wire.h"

#define ID_MAX           64 /* gateway.c: bytes of a client id */
#define BAD_STREAK_CLOSE 16 /* gateway.c: bad messages in a row: close */
#define OUTPUTS_MAX      8  /* messages per frame whose outputs are made */
#define SECRET "fuzz-secret"
#define NOW_S  1700000000

static const size_t max_msgs[4] = {1000, 1, 3, 64};

static int
inside(hf_slice s, const hf_wire_frame *f)
{
    const char *p = s.data, *b = f->store.data;
    if (s.len == 0)
        return 1;
    return p != NULL && p >= b && p + s.len <= b + f->store.len;
}

static int
one_object(hf_slice s)
{
    return hf_wire_mp_check(s.data, s.len, 64) == s.len;
}

static int
has_nul(hf_slice s)
{
    return s.len > 0 && memchr(s.data, 0, s.len) != NULL;
}

static void
check_msg(const hf_wire_frame *f, const hf_wire_msg *m)
{
    const hf_slice *all[] = {&m->id,   &m->to,  &m->method, &m->type,
                             &m->args, &m->key, &m->token,  &m->epoch};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        FZ_CHECK(inside(*all[i], f));
    if (m->id.len > 0) {
        unsigned char c = *(const unsigned char *)m->id.data;
        FZ_CHECK(one_object(m->id));
        /* a string or an integer: never a container, nil or float */
        FZ_CHECK(!((c >= 0x80 && c <= 0x9f) || c == 0xc0 || c == 0xca ||
                   c == 0xcb || (c >= 0xdc && c <= 0xdf)));
    }
    if (m->err != 0) {
        FZ_CHECK(m->errmsg != NULL && m->errmsg[0] != '\0');
        FZ_CHECK(m->err == HF_EBADREQ || m->err == HF_ETOOLARGE);
        return;
    }
    FZ_CHECK(m->op >= HF_W_CALL && m->op <= HF_W_AUTH);
    FZ_CHECK(m->args.len == 0 || one_object(m->args));
    FZ_CHECK(!has_nul(m->to) && !has_nul(m->method) && !has_nul(m->type) &&
             !has_nul(m->key) && !has_nul(m->token) && !has_nul(m->epoch));
    FZ_CHECK(!m->has_since || m->since >= 0);
    switch (m->op) {
    case HF_W_CALL:
        FZ_CHECK(m->to.data != NULL && m->method.data != NULL);
        break;
    case HF_W_SUB:
    case HF_W_UNSUB:
        FZ_CHECK(m->to.data != NULL);
        break;
    case HF_W_SIGNAL:
        FZ_CHECK(m->to.data != NULL && m->type.data != NULL);
        break;
    case HF_W_AUTH:
        FZ_CHECK(m->token.data != NULL);
        break;
    }
}

static int
same_msg(const hf_wire_msg *a, const hf_wire_msg *b)
{
    return a->op == b->op && a->err == b->err && a->errmsg == b->errmsg &&
           fz_slice_eq(a->id, b->id) && fz_slice_eq(a->to, b->to) &&
           fz_slice_eq(a->method, b->method) && fz_slice_eq(a->type, b->type) &&
           fz_slice_eq(a->args, b->args) && fz_slice_eq(a->key, b->key) &&
           fz_slice_eq(a->token, b->token) && fz_slice_eq(a->epoch, b->epoch) &&
           a->has_since == b->has_since && a->since == b->since;
}

/* do_auth: verify, then reply {sub, exp}. */
static void
auth(const hf_wire_msg *m, hf_buf out[2])
{
    hf_principal p;
    msgpack_zone z;
    msgpack_object res;
    msgpack_packer pk;
    hf_buf b = {0};
    size_t off = 0;

    if (hf_auth_verify(SECRET, m->token.data, m->token.len, NOW_S, 0, &p) != 0) {
        for (int fmt = 0; fmt < 2; fmt++)
            hf_wire_reply_err(&out[fmt], fmt, m->id, HF_EUNAUTH,
                              "invalid or expired token", 24);
        return;
    }
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 2);
    hf_pack_cstr(&pk, "sub");
    hf_pack_cstr(&pk, p.sub);
    hf_pack_cstr(&pk, "exp");
    msgpack_pack_int64(&pk, p.exp);
    msgpack_zone_init(&z, 256);
    FZ_CHECK(hf_unpack_next(b.data, b.len, &off, &z, &res) == 0);
    for (int fmt = 0; fmt < 2; fmt++)
        hf_wire_reply_ok(&out[fmt], fmt, m->id, &res);
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
}

/* The envelope forward() builds, read back as the host reads it. */
static void
request(const hf_wire_msg *m, int op, hf_slice method, hf_slice args,
        hf_slice key, const hf_principal *p, uint64_t rid, hf_buf *req)
{
    hf_env e = {.op = op, .conn = 7, .has_conn = 1, .to = m->to,
                .method = method, .key = key,
                .sub = {p->sub, strlen(p->sub)}, .role = p->role};
    hf_env r, l;
    hf_env_pos pos;
    msgpack_packer pk;
    msgpack_zone z;
    size_t start = req->len, off = start;
    int st;

    if (op != HF_OP_SIGNAL)
        e.id = rid;
    if (op == HF_OP_SUB) {
        e.since = m->since;
        e.has_since = m->has_since;
        e.epoch = m->epoch;
    }
    msgpack_packer_init(&pk, req, hf_buf_mpwrite);
    FZ_CHECK(hf_env_pack_request(&pk, &e, args) == 0);

    FZ_CHECK(hf_env_read(req->data, req->len, &off, NULL, &r, &st) == 0);
    FZ_CHECK(st == 0 && off == req->len);
    FZ_CHECK(r.op == e.op && r.id == e.id && r.conn == e.conn &&
             r.has_conn == 1 && r.role == e.role &&
             r.has_since == e.has_since && r.since == e.since);
    FZ_CHECK(fz_slice_eq(r.to, e.to) && fz_slice_eq(r.method, e.method) &&
             fz_slice_eq(r.key, e.key) && fz_slice_eq(r.sub, e.sub) &&
             fz_slice_eq(r.epoch, e.epoch) && fz_slice_eq(r.val_raw, args));

    /* The worker's view: the fields saved by position, the value unpacked. */
    hf_env_pos_save(&pos, &r, req->data + start);
    msgpack_zone_init(&z, 1024);
    FZ_CHECK(hf_env_pos_load(&pos, req->data + start, &z, &l) == 0);
    FZ_CHECK(l.op == r.op && l.id == r.id && fz_slice_eq(l.to, r.to) &&
             fz_slice_eq(l.val_raw, r.val_raw));
    FZ_CHECK((l.val != NULL) == (args.len > 0));
    msgpack_zone_destroy(&z);
}

/* The host's outputs for a request carrying args, through on_batch. */
static void
outputs(const hf_wire_msg *m, uint64_t rid, hf_slice args, hf_buf out[2])
{
    hf_buf batch = {0}, http = {0};
    msgpack_packer pk;
    msgpack_zone z;
    msgpack_object obj;
    size_t off = 0;
    int n = 0;
    hf_env e;

    msgpack_packer_init(&pk, &batch, hf_buf_mpwrite);
    hf_env_pack_reply_ok(&pk, 7, rid, args);
    hf_env_pack_reply_err(&pk, 7, rid, HF_ECONFLICT, m->method.data,
                          m->method.len);
    /* an event as the host packs one (see host.c pack_backlog_event) */
    msgpack_pack_map(&pk, 6);
    hf_pack_cstr(&pk, "op");
    msgpack_pack_uint64(&pk, HF_OUT_EVENT);
    hf_pack_cstr(&pk, "from");
    hf_pack_str(&pk, m->to.data, m->to.len);
    hf_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, rid);
    hf_pack_cstr(&pk, "type");
    hf_pack_str(&pk, m->type.data, m->type.len);
    hf_pack_cstr(&pk, "data");
    hf_pack_raw(&pk, args);
    hf_pack_cstr(&pk, "at");
    msgpack_pack_uint64(&pk, (uint64_t)NOW_S * 1000);
    hf_env_pack_signal(&pk, m->to, m->type, m->key, args);
    hf_env_pack_presence(&pk, m->to, (int)(rid & 1), args);

    msgpack_zone_init(&z, 4096);
    while (off < batch.len &&
           hf_unpack_next(batch.data, batch.len, &off, &z, &obj) == 0) {
        FZ_CHECK(hf_env_decode(&obj, &e) == 0);
        fz_gateway_output(&e, &obj, m->id, out, &http);
        msgpack_zone_clear(&z);
        n++;
    }
    FZ_CHECK(n == 5 && off == batch.len);
    msgpack_zone_destroy(&z);
    hf_buf_free(&batch);
    hf_buf_free(&http);
}

/* on_message, for a connection with auth off (the anonymous principal). */
static void
message(const hf_wire_msg *m, const hf_principal *anon, uint64_t rid,
        hf_buf out[2], hf_buf *req)
{
    if (m->err != 0) {
        for (int fmt = 0; fmt < 2; fmt++)
            hf_wire_reply_err(&out[fmt], fmt, m->id, m->err, m->errmsg,
                              strlen(m->errmsg));
        return;
    }
    if (m->id.len > ID_MAX) {
        for (int fmt = 0; fmt < 2; fmt++)
            hf_wire_reply_err(&out[fmt], fmt, (hf_slice){NULL, 0},
                              HF_EBADREQ, "id too long", 11);
        return;
    }
    switch (m->op) {
    case HF_W_PING:
        for (int fmt = 0; fmt < 2; fmt++)
            hf_wire_pong(&out[fmt], fmt, m->id);
        return;
    case HF_W_AUTH:
        auth(m, out);
        return;
    }
    /* admit */
    if (hf_addr_check(m->to.data, m->to.len, NULL) != 0 ||
        hf_auth_allows(anon, m->to.data, m->to.len) != 0) {
        for (int fmt = 0; fmt < 2; fmt++)
            hf_wire_reply_err(&out[fmt], fmt, m->id, HF_EBADREQ,
                              "bad address: kind/name", 22);
        return;
    }
    FZ_CHECK(m->to.len <= HF_ADDR_MAX);
    switch (m->op) {
    case HF_W_CALL:
        request(m, HF_OP_CALL, m->method, m->args, m->key, anon, rid, req);
        break;
    case HF_W_SUB:
        request(m, HF_OP_SUB, (hf_slice){0}, m->args, (hf_slice){0}, anon,
                rid, req);
        break;
    case HF_W_UNSUB:
        request(m, HF_OP_UNSUB, (hf_slice){0}, (hf_slice){0}, (hf_slice){0},
                anon, rid, req);
        break;
    case HF_W_SIGNAL:
        request(m, HF_OP_SIGNAL, m->type, m->args, (hf_slice){0}, anon, rid,
                req);
        break;
    }
    /* The same encoders for every message: a few per frame are enough. */
    if (rid <= OUTPUTS_MAX)
        outputs(m, rid, m->args, out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hf_wire_frame again; /* reused across inputs, as it may be */
    hf_wire_frame f = {0};
    hf_buf out[2] = {{0}}, req = {0};
    hf_principal anon;
    size_t lim;
    int fmt;

    if (size < 1)
        return 0;
    fmt = data[0] & 1 ? HF_WIRE_MSGPACK : HF_WIRE_JSON;
    lim = max_msgs[(data[0] >> 1) & 3];
    data++, size--;

    if (hf_wire_decode(&f, fmt, data, size, lim) != 0) {
        hf_wire_frame_free(&f);
        return 0; /* out of memory: the gateway closes the connection */
    }
    FZ_CHECK(f.n <= lim + 1);
    FZ_CHECK(hf_wire_decode(&again, fmt, data, size, lim) == 0);
    FZ_CHECK(again.n == f.n);
    for (size_t i = 0; i < f.n; i++) {
        check_msg(&f, &f.msgs[i]);
        FZ_CHECK(same_msg(&f.msgs[i], &again.msgs[i]));
        /* only the last message may be the "too many" one */
        FZ_CHECK(f.msgs[i].err != HF_ETOOLARGE || i == lim);
    }

    hf_auth_anonymous(&anon, NULL);
    anon.sub[0] = '\0'; /* as hf_gateway_start sets it */
    for (size_t i = 0, bad = 0; i < f.n && bad < BAD_STREAK_CLOSE; i++) {
        message(&f.msgs[i], &anon, i + 1, out, &req);
        bad = f.msgs[i].err != 0 ? bad + 1 : 0; /* on_message closes */
    }
    /* escaping is linear; the fixed parts of a reply are a few hundred
     * bytes per message */
    FZ_CHECK(out[0].len + out[1].len <= 256 * size + 1024 * (f.n + 1));
    fz_check_out(&out[HF_WIRE_JSON], HF_WIRE_JSON);
    fz_check_out(&out[HF_WIRE_MSGPACK], HF_WIRE_MSGPACK);

    hf_wire_frame_free(&f);
    hf_buf_free(&out[0]);
    hf_buf_free(&out[1]);
    hf_buf_free(&req);
    return 0;
}
