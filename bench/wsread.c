/*
 * wsread.c - reading a running server's messages for holdfast-bench
 * (see ws.h): a frame split into its messages, each read into a struct
 * smsg (JSON or msgpack) and handed to a callback.
 *
 * Design notes
 * ------------
 * Frames come back carrying several messages. The replies and events the
 * server writes in its usual shape are recognised by an exact prefix
 * match (json_fast): the top-level "id" or "seq" is then where the prefix
 * says, which a scan for a key could not guarantee. Anything else (hello,
 * errors, sub replies, other encoders) goes through jansson or msgpack-c.
 * A connection is drained while the client holds buffered bytes, then
 * left to poll() again: no recv() is spent to learn there is nothing more.
 *
 * Threads: a struct reader (and its scanner) belongs to one thread, like
 * the connections it reads; a struct smsg and what it points to are valid
 * during the callback only.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ws.h"
#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "client/wsclient.h"

/* ------------------------------------------------------------------ */
/* reading server messages                                             */

/* Reads 1..19 decimal digits. */
static int
read_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    int n = 0;

    while (p < end && *p >= '0' && *p <= '9' && n < 19) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        n++;
    }
    if (n == 0 || (p < end && *p >= '0' && *p <= '9'))
        return -1;
    *pp = p;
    *out = v;
    return 0;
}

static int
eat(const char **pp, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0)
        return 0;
    *pp += n;
    return 1;
}

#define EAT(pp, end, lit) eat(pp, end, lit, sizeof(lit) - 1)

/* The two shapes that make up nearly all the traffic, exactly as
 * transport/wire.c writes them:
 *   {"op":"reply","id":N,"ok":true,"result":{"value":V}}
 *   {"op":"event","from":"ADDR","seq":N,...
 * and any other op named first ({"op":"presence",...), which the
 * benchmarks skip. Returns 1 with m filled, 0 to take the slow way. */
static int
json_fast(struct scanner *sc, const char *p, const char *end, struct smsg *m)
{
    uint64_t u;
    int neg;

    if (EAT(&p, end, "{\"op\":\"presence\"")) {
        sc->presence++;
        return 1; /* M_OTHER */
    }
    if ((size_t)(end - p) > 13 && memcmp(p, "{\"op\":\"", 7) == 0 &&
        memcmp(p + 7, "reply\"", 6) != 0 && memcmp(p + 7, "event\"", 6) != 0)
        return 1; /* hello, pong, signal: M_OTHER */

    if (EAT(&p, end, "{\"op\":\"reply\",\"id\":")) {
        if (read_u64(&p, end, &m->id) != 0)
            return 0;
        if (EAT(&p, end, ",\"ok\":false,\"error\":{\"code\":\"")) {
            char code[32];
            size_t n = 0;
            while (p < end && *p != '"' && n + 1 < sizeof(code))
                code[n++] = *p++;
            if (p == end || *p != '"')
                return 0;
            code[n] = '\0';
            m->op = M_REPLY;
            m->has_id = 1;
            m->err = hf_err_from_name(code);
            return 1;
        }
        if (!EAT(&p, end, ",\"ok\":true,\"result\":"))
            return 0;
        if (!EAT(&p, end, "{\"value\":")) {
            /* Another result: the callers' workloads only need to know
             * it was ok. A sub reply ({"seq":...) goes the slow way. */
            if ((size_t)(end - p) < 7 || memcmp(p, "{\"seq\":", 7) == 0)
                return 0;
            m->op = M_REPLY;
            m->has_id = m->ok = 1;
            m->result = p;
            m->result_len = (size_t)(end - p);
            return 1;
        }
        neg = EAT(&p, end, "-");
        if (read_u64(&p, end, &u) != 0 || u > INT64_MAX ||
            !EAT(&p, end, "}}") || p != end)
            return 0;
        m->op = M_REPLY;
        m->has_id = m->ok = m->has_value = 1;
        m->value = neg ? -(int64_t)u : (int64_t)u;
        return 1;
    }
    if (EAT(&p, end, "{\"op\":\"event\",\"from\":\"")) {
        const char *f = p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p == end || *p != '"')
            return 0;
        m->from = f;
        m->from_len = (size_t)(p - f);
        p++;
        if (!EAT(&p, end, ",\"seq\":") || read_u64(&p, end, &m->seq) != 0 ||
            p == end || (*p != ',' && *p != '}'))
            return 0;
        m->op = M_EVENT;
        m->has_seq = 1;
        /* A timestamp the benchmark put in a device's meta. */
        {
            static const char k[] = "\"meta\":{\"ts\":";
            const char *q = memmem(p, (size_t)(end - p), k, sizeof(k) - 1);
            if (q != NULL) {
                q += sizeof(k) - 1;
                m->has_ts = read_u64(&q, end, &m->ts) == 0;
            }
        }
        return 1;
    }
    return 0;
}

static int
json_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* Any message, through jansson. *keep gets the parsed document (m->from
 * points into it), to be freed by the caller. 0, or -1 when it is not a
 * readable message. */
static int
json_slow(const char *p, size_t n, struct smsg *m, json_t **keep)
{
    json_error_t je;
    json_t *o = json_loadb(p, n, 0, &je), *v;
    const char *op;

    *keep = o;
    if (o == NULL || (op = json_string_value(json_object_get(o, "op"))) == NULL)
        return -1;
    if (strcmp(op, "reply") == 0) {
        json_t *res = json_object_get(o, "result");
        m->op = M_REPLY;
        m->has_id = json_u64(json_object_get(o, "id"), &m->id);
        if (!json_is_boolean(v = json_object_get(o, "ok")))
            return -1;
        m->ok = json_is_true(v);
        if (!m->ok) {
            const char *code = json_string_value(
                json_object_get(json_object_get(o, "error"), "code"));
            m->err = code ? hf_err_from_name(code) : HF_EINTERNAL;
            return 0;
        }
        m->jresult = res;
        if (json_is_integer(v = json_object_get(res, "value"))) {
            m->has_value = 1;
            m->value = (int64_t)json_integer_value(v);
        }
        m->has_seq = json_u64(json_object_get(res, "seq"), &m->seq);
    } else if (strcmp(op, "event") == 0) {
        v = json_object_get(o, "from");
        m->op = M_EVENT;
        if (!json_is_string(v) ||
            !(m->has_seq = json_u64(json_object_get(o, "seq"), &m->seq)))
            return -1;
        m->from = json_string_value(v);
        m->from_len = json_string_length(v);
        m->has_ts = json_u64(
            json_object_get(json_object_get(json_object_get(o, "data"), "meta"),
                            "ts"),
            &m->ts);
    }
    return 0;
}

static const msgpack_object *
mp_get(const msgpack_object *o, const char *key)
{
    size_t kl = strlen(key);

    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

static int
mp_u64(const msgpack_object *o, uint64_t *out)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return 0;
    *out = o->via.u64;
    return 1;
}

static int
mp_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static int
mp_msg(const msgpack_object *o, struct smsg *m)
{
    const msgpack_object *op = mp_get(o, "op"), *v;

    if (op == NULL || op->type != MSGPACK_OBJECT_STR)
        return -1;
    if (mp_is(op, "reply")) {
        const msgpack_object *res = mp_get(o, "result");
        m->op = M_REPLY;
        m->has_id = mp_u64(mp_get(o, "id"), &m->id);
        if ((v = mp_get(o, "ok")) == NULL || v->type != MSGPACK_OBJECT_BOOLEAN)
            return -1;
        m->ok = v->via.boolean;
        if (!m->ok) {
            char code[32] = "";
            v = mp_get(mp_get(o, "error"), "code");
            if (v != NULL && v->type == MSGPACK_OBJECT_STR &&
                v->via.str.size < sizeof(code))
                memcpy(code, v->via.str.ptr, v->via.str.size);
            m->err = hf_err_from_name(code);
            return 0;
        }
        m->mresult = res;
        v = mp_get(res, "value");
        if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->via.u64 <= INT64_MAX) {
            m->has_value = 1;
            m->value = (int64_t)v->via.u64;
        } else if (v != NULL && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            m->has_value = 1;
            m->value = v->via.i64;
        }
        m->has_seq = mp_u64(mp_get(res, "seq"), &m->seq);
    } else if (mp_is(op, "event")) {
        v = mp_get(o, "from");
        m->op = M_EVENT;
        if (v == NULL || v->type != MSGPACK_OBJECT_STR ||
            !(m->has_seq = mp_u64(mp_get(o, "seq"), &m->seq)))
            return -1;
        m->from = v->via.str.ptr;
        m->from_len = v->via.str.size;
        m->has_ts =
            mp_u64(mp_get(mp_get(mp_get(o, "data"), "meta"), "ts"), &m->ts);
    }
    return 0;
}

void
wb_scan(struct scanner *sc, int binary, const char *data, size_t len, msg_fn fn,
        void *arg)
{
    if (!binary) {
        const char *p = data, *end = data + len;
        for (;;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl : end;
            if (e > p) {
                struct smsg m = {0};
                json_t *keep = NULL;
                if (json_fast(sc, p, e, &m) ||
                    json_slow(p, (size_t)(e - p), &m, &keep) == 0)
                    fn(arg, &m);
                else
                    sc->malformed++;
                json_decref(keep);
            }
            if (nl == NULL)
                break;
            p = nl + 1;
        }
        return;
    }
    for (size_t off = 0; off < len;) {
        struct smsg m = {0};
        msgpack_object o;
        if (hf_unpack_next(data, len, &off, &sc->zone, &o) != 0) {
            sc->malformed++;
            break;
        }
        if (mp_is(mp_get(&o, "op"), "presence"))
            sc->presence++;
        else if (mp_msg(&o, &m) == 0)
            fn(arg, &m);
        else
            sc->malformed++;
        msgpack_zone_clear(&sc->zone);
    }
}

/* Reads what ws has for us: at least one message, then more as long as
 * the client holds buffered bytes, passing every message to fn. Returns 0,
 * or -1 when the connection is over: *err its HF_E code, or 0 with *code
 * the close code the server sent. */
int
wb_drain(struct reader *rd, hf_ws *ws, msg_fn fn, void *arg, int *err,
         int *code)
{
    int op, rv;

    do {
        *code = 0;
        rv = hf_ws_recv(ws, 0, &op, &rd->rx, code);
        if (rv == HF_ETIMEOUT)
            return 0;
        if (rv != 0 || op == HF_WS_CLOSE) {
            *err = rv;
            if (rv != 0)
                *code = 0;
            return -1;
        }
        rd->now = hf_mono_ns();
        wb_scan(&rd->sc, op == HF_WS_BINARY, rd->rx.data, rd->rx.len, fn, arg);
    } while (hf_ws_pending(ws));
    return 0;
}

void
wb_reader_init(struct reader *rd)
{
    msgpack_zone_init(&rd->sc.zone, 4096);
}

void
wb_reader_fini(struct reader *rd)
{
    hf_buf_free(&rd->rx);
    msgpack_zone_destroy(&rd->sc.zone);
}

json_t *
wb_result_json(const struct smsg *m)
{
    json_error_t je;

    if (!m->ok)
        return NULL;
    if (m->jresult != NULL)
        return json_incref(m->jresult);
    if (m->result != NULL) /* followed by the message's closing brace */
        return json_loadb(m->result, m->result_len, JSON_DISABLE_EOF_CHECK,
                          &je);
    if (m->mresult != NULL) {
        char *s = hf_mp_to_json(m->mresult);
        json_t *o = s ? json_loads(s, 0, &je) : NULL;
        free(s);
        return o;
    }
    return NULL;
}
