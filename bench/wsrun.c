/*
 * wsrun.c - the machinery of holdfast-bench's scenarios against a running
 * server (calls.c, fanout.c, ...): load through its WebSocket endpoint
 * (wire protocol v1, DESIGN §5), with transport/wsclient. See ws.h.
 *
 * Design notes
 * ------------
 * Threads. Each load thread owns a set of connections and multiplexes them
 * with poll(); a connection is touched by its thread only. What threads
 * share is a run struct: plain fields written before they start, atomics
 * for the rest. Connections spread over 127.0.0.x source addresses when
 * there are more than PER_SOURCE of them and the server is on IPv4
 * loopback, so the ephemeral ports of one source never run out.
 *
 * Connecting and closing many. Handshakes are blocking, one at a time per
 * thread, so thousands take a while: the connections already open are
 * read every SERVICE_NS meanwhile, or the server would drop them for not
 * answering its heartbeat. Each thread closes its connections together
 * (wb_close_all) instead of waiting up to 250 ms for each goodbye in turn.
 *
 * Callers (calls, and fanout's publishers). Slot s of a connection's
 * window holds one call in flight; its id is (seq << SLOT_BITS) | s with
 * seq counting the connection's calls from 1, so a reply finds its slot in
 * O(1) and a reply that does not match the call in flight there (unknown
 * id, a second reply) is caught. Whenever replies come back the free slots
 * are refilled with ONE frame ('\n'-joined JSON or concatenated msgpack,
 * at most FRAME_MSGS messages / FRAME_BYTES so the server's frame limits
 * hold). Latency is from writing that frame to reading the reply.
 *
 * Reading. Frames come back carrying several messages. The replies and
 * events the server writes in its usual shape are recognised by an exact
 * prefix match (json_fast): the top-level "id" or "seq" is then where the
 * prefix says, which a scan for a key could not guarantee. Anything else
 * (hello, errors, sub replies, other encoders) goes through jansson or
 * msgpack-c. A connection is drained while the client holds buffered
 * bytes, then left to poll() again: no recv() is spent to learn there is
 * nothing more.
 *
 * Fan-out latency. Subscribers see "seq"; publishers see the value their
 * incr returned, which equals the seq on a fresh counter where every incr
 * emits. The publisher thread records, per actor and seq, when the call
 * was sent (struct seqmap: chunks allocated by that one thread, published
 * with release stores). A subscriber whose event comes in before the
 * publisher has read the matching reply keeps (actor, seq, receipt time)
 * and settles it a little later; latency samples are therefore exact
 * whichever of the two the server writes first.
 *
 * The verdict. The actors are fresh (their names carry a tag unique to
 * the run), so the state to expect is known exactly:
 *   calls: every actor's ok replies carry 1..k_a; get returns k_a, and
 *     the sum over actors equals the acknowledged total - read through a
 *     fresh connection after the run;
 *   fanout: every subscriber got seq start+1..final of its actor once
 *     each, in order (lost and reordered events are counted and shown),
 *     final being what get returns and what the publishers acknowledged;
 *   both: no stray or unreadable message, no connection lost.
 * Error replies (rate_limited, overloaded) are counted by code; a refused
 * call changes nothing, so they do not break the verdict, but
 * rate_limited is called out: it means the server's --rate is too low
 * for a load test.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/mpjson.h"
#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "transport/wsclient.h"

/* ------------------------------------------------------------------ */
/* common                                                              */

volatile sig_atomic_t wb_interrupted;

static void
on_sigint(int sig)
{
    (void)sig;
    wb_interrupted = 1;
}

void
wb_catch_sigint(void)
{
    struct sigaction sa = {.sa_handler = on_sigint};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

void
wb_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

uint64_t
wb_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int
wb_ncores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns 0, or
 * HF_BENCH_USAGE after saying why when even that is below need. */
static int
raise_nofile(const char *cmd, uint64_t need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "holdfast-bench %s: %" PRIu64 " connections need about %" PRIu64
                " file descriptors; the hard limit is %llu (raise it with "
                "ulimit -Hn or LimitNOFILE=)\n",
                cmd, need - 32, need, (unsigned long long)rl.rlim_cur);
        return HF_BENCH_USAGE;
    }
    return 0;
}

/* ws://HOST[:PORT][/PATH] (PATH defaults to /v1/ws). */
static int
parse_url(const char *cmd, const char *url, const char *token, int msgpack,
          struct target *t)
{
    const char *p, *hs, *he;
    size_t hl;

    memset(t, 0, sizeof(*t));
    t->url = url;
    t->msgpack = msgpack;
    t->port = 80;
    if (strncmp(url, "ws://", 5) != 0)
        goto bad;
    p = url + 5;
    if (*p == '[') {
        hs = p + 1;
        if ((he = strchr(hs, ']')) == NULL)
            goto bad;
        p = he + 1;
    } else {
        hs = p;
        he = p + strcspn(p, ":/");
        p = he;
    }
    hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(t->host))
        goto bad;
    memcpy(t->host, hs, hl);
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 ||
            (*end != '\0' && *end != '/'))
            goto bad;
        t->port = (int)port;
        p = end;
    }
    if (*p != '\0' && *p != '/')
        goto bad;
    if (*p == '\0' || strcmp(p, "/") == 0)
        p = "/v1/ws";
    if (strlen(p) >= sizeof(t->path))
        goto bad;
    memcpy(t->path, p, strlen(p) + 1);
    if (token != NULL && (size_t)snprintf(t->headers, sizeof(t->headers),
                                          "Authorization: Bearer %s\r\n",
                                          token) >= sizeof(t->headers)) {
        fprintf(stderr, "holdfast-bench %s: --token too long\n", cmd);
        return HF_BENCH_USAGE;
    }
    t->loopback = strncmp(t->host, "127.", 4) == 0;
    return 0;
bad:
    fprintf(stderr,
            "holdfast-bench %s: --url wants ws://HOST:PORT[/PATH], not '%s' "
            "(wss:// is not supported)\n",
            cmd, url);
    return HF_BENCH_USAGE;
}

/* Opens connection idx of total, saying why on stderr when it fails. */
int
wb_dial(const char *cmd, const struct target *t, uint32_t idx, uint32_t total,
        hf_ws **out)
{
    char src[32];
    const char *sp = NULL;
    int rv;

    if (t->loopback && total > PER_SOURCE) {
        uint32_t nsrc = (total + PER_SOURCE - 1) / PER_SOURCE;
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + idx % nsrc);
        sp = src;
    }
    rv = hf_ws_connect_from(out, sp, t->host, t->port, t->path,
                            t->msgpack ? "holdfast.v1.msgpack"
                                       : "holdfast.v1.json",
                            t->headers[0] ? t->headers : NULL, CONNECT_MS);
    if (rv == 0)
        return 0;
    if (rv == HF_EBADREQ && *out != NULL)
        fprintf(stderr,
                "holdfast-bench %s: connection %u: %s refused the "
                "WebSocket handshake: HTTP %d %s\n",
                cmd, idx, t->url, hf_ws_http_status(*out),
                hf_ws_http_body(*out, NULL));
    else
        fprintf(stderr, "holdfast-bench %s: connection %u to %s: %s%s\n", cmd,
                idx, t->url, hf_err_name(rv),
                rv == HF_EUNAVAIL ? " (is the server running?)" : "");
    hf_ws_close(*out);
    *out = NULL;
    return rv;
}

/* Names kind/<base><i>.<tag>, tag unique to this run so every actor
 * starts fresh even on a server that has seen earlier runs. */
struct name *
wb_make_names(uint32_t n, const char *base, char *tag, size_t tagsize)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t x = hf_mono_ns() ^ ((uint64_t)time(NULL) << 20) ^
                 ((uint64_t)getpid() << 40);
    struct name *v = calloc(n, sizeof(*v));

    if (v == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < tagsize && i < 8; i++) {
        tag[i] = digits[wb_rnd(&x) % 36];
        tag[i + 1] = '\0';
    }
    for (uint32_t i = 0; i < n; i++)
        v[i].len =
            (size_t)snprintf(v[i].s, sizeof(v[i].s), "%s%u.%s", base, i, tag);
    return v;
}

/* ------------------------------------------------------------------ */
/* the server's own counters (GET /metrics)                            */

static uint64_t
metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    }
    return 0;
}

void
wb_scrape(const struct target *t, struct srv *s)
{
    hf_buf body = {0};
    int status = 0;

    memset(s, 0, sizeof(*s));
    s->m.ns = hf_mono_ns();
    if (hf_http_request(t->host, t->port, "GET", "/metrics", NULL, NULL, 0,
                        5000, &status, &body) != 0 ||
        status != 200 || body.data == NULL) {
        hf_buf_free(&body);
        return;
    }
    s->ok = 1;
    s->m.commits = metric(body.data, "holdfast_commits_total");
    s->m.handlers = metric(body.data, "holdfast_commit_handlers_sum");
    s->m.commit_us = metric(body.data, "holdfast_commit_latency_us_sum");
    s->m.commit_n = metric(body.data, "holdfast_commit_latency_us_count");
    s->rate_limited = metric(body.data, "holdfast_rate_limited_total");
    s->slow_consumers = metric(body.data, "holdfast_slow_consumers_total");
    s->frames_out = metric(body.data, "holdfast_frames_out_total");
    hf_buf_free(&body);
}

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

/* Calls fn for every message of a frame: JSON lines, or msgpack maps one
 * after another. Unreadable messages are counted in sc->malformed. */
static void
scan(struct scanner *sc, int binary, const char *data, size_t len, msg_fn fn,
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
        scan(&rd->sc, op == HF_WS_BINARY, rd->rx.data, rd->rx.len, fn, arg);
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

/* Closes n connections together (NULL entries are skipped) and sets the
 * entries to NULL. hf_ws_close alone waits up to 250 ms for each server
 * goodbye in turn, which for thousands of connections takes minutes: so
 * every close frame goes out first, then the goodbyes are awaited with one
 * poll() over all of them, CLOSE_MS at most, and only then is each client
 * freed (at once, for those the server has closed). pfds has room for n. */
void
wb_close_all(hf_ws **ws, uint32_t n, struct pollfd *pfds, uint32_t *pidx)
{
    uint64_t dl = hf_mono_ns() + (uint64_t)CLOSE_MS * 1000000u;
    hf_buf rx = {0};

    for (uint32_t i = 0; i < n; i++)
        if (ws[i] != NULL && hf_ws_send_close(ws[i], 1000, NULL) != 0) {
            hf_ws_close(ws[i]);
            ws[i] = NULL;
        }
    for (;;) {
        uint32_t np = 0;
        for (uint32_t i = 0; i < n; i++)
            if (ws[i] != NULL && hf_ws_fd(ws[i]) >= 0 &&
                pidx[i] != UINT32_MAX) {
                pfds[np] =
                    (struct pollfd){.fd = hf_ws_fd(ws[i]), .events = POLLIN};
                pidx[np++] = i;
            }
        if (np == 0 || hf_mono_ns() > dl || poll(pfds, np, 50) < 0)
            break;
        for (uint32_t j = 0; j < np; j++) {
            uint32_t i = pidx[j];
            int op, code, rv;
            if (pfds[j].revents == 0)
                continue;
            do /* until the close frame, the end, or nothing more */
                rv = hf_ws_recv(ws[i], 0, &op, &rx, &code);
            while (rv == 0 && op != HF_WS_CLOSE);
            if (rv != HF_ETIMEOUT) {
                hf_ws_close(ws[i]);
                ws[i] = NULL;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        hf_ws_close(ws[i]);
        ws[i] = NULL;
    }
    hf_buf_free(&rx);
}

/* Appends one message for op call/sub/get to a frame being built. */
void
wb_put_msg(hf_buf *b, int msgpack, const char *op, uint64_t id,
           const struct name *to, const char *method, int emit)
{
    if (!msgpack) {
        char tmp[NAME_CAP + 160];
        int n = snprintf(
            tmp, sizeof(tmp),
            "%s{\"op\":\"%s\",\"id\":%" PRIu64 ",\"to\":\"%s\"%s%s%s%s}",
            b->len ? "\n" : "", op, id, to->s, method ? ",\"method\":\"" : "",
            method ? method : "", method ? "\"" : "",
            emit ? ",\"args\":{\"emit\":true}" : "");
        hf_buf_append(b, tmp, (size_t)n);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 3 + (method != NULL) + (emit != 0));
    hf_pack_cstr(&pk, "op");
    hf_pack_cstr(&pk, op);
    hf_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    hf_pack_cstr(&pk, "to");
    hf_pack_str(&pk, to->s, to->len);
    if (method) {
        hf_pack_cstr(&pk, "method");
        hf_pack_cstr(&pk, method);
    }
    if (emit) {
        hf_pack_cstr(&pk, "args");
        msgpack_pack_map(&pk, 1);
        hf_pack_cstr(&pk, "emit");
        msgpack_pack_true(&pk);
    }
}

int
wb_send_frame(hf_ws *ws, int msgpack, const hf_buf *b)
{
    return hf_ws_send(ws, msgpack ? HF_WS_BINARY : HF_WS_TEXT, b->data, b->len);
}

/* ------------------------------------------------------------------ */
/* fan-out latency: when each publish was sent, by actor and seq        */

static void
sm_set(struct seqmap *sm, uint64_t seq, uint64_t ns)
{
    uint64_t c = seq >> SM_BITS;
    atomic_uint_least64_t *ch;

    if (c >= SM_CHUNKS)
        return;
    ch = atomic_load_explicit(&sm->chunk[c], memory_order_relaxed);
    if (ch == NULL) {
        if ((ch = calloc((size_t)1 << SM_BITS, sizeof(*ch))) == NULL)
            return;
        atomic_store_explicit(&sm->chunk[c], ch, memory_order_release);
    }
    atomic_store_explicit(&ch[seq & ((1u << SM_BITS) - 1)], ns,
                          memory_order_relaxed);
}

uint64_t
wb_sm_get(struct seqmap *sm, uint64_t seq)
{
    uint64_t c = seq >> SM_BITS;
    atomic_uint_least64_t *ch;

    if (c >= SM_CHUNKS)
        return 0;
    ch = atomic_load_explicit(&sm->chunk[c], memory_order_acquire);
    if (ch == NULL)
        return 0;
    return atomic_load_explicit(&ch[seq & ((1u << SM_BITS) - 1)],
                                memory_order_relaxed);
}

void
wb_sm_free(struct seqmap *sm, uint32_t n)
{
    for (uint32_t a = 0; sm && a < n; a++)
        for (int c = 0; c < SM_CHUNKS; c++)
            free(atomic_load(&sm[a].chunk[c]));
    free(sm);
}

/* ------------------------------------------------------------------ */
/* callers: connections keeping a window of counter.incr in flight     */

static uint32_t
claim(struct crun *r, uint32_t want)
{
    uint64_t old;

    if (want == 0 || atomic_load_explicit(&r->stop, memory_order_relaxed))
        return 0;
    if (r->total == 0)
        return want;
    old = atomic_fetch_add_explicit(&r->claimed, want, memory_order_relaxed);
    if (old >= r->total)
        return 0;
    return r->total - old < want ? (uint32_t)(r->total - old) : want;
}

static int
exhausted(struct crun *r)
{
    return atomic_load_explicit(&r->stop, memory_order_relaxed) ||
           (r->total > 0 && atomic_load_explicit(
                                &r->claimed, memory_order_relaxed) >= r->total);
}

/* How many of want the rate allows now; lowers *timeout to the time of
 * the next allowed call when that is none. */
static uint32_t
pace(struct caller *c, uint32_t want, int *timeout)
{
    double rate = c->r->rate, due;
    uint64_t now, allowed;

    if (rate <= 0 || want == 0)
        return want;
    now = hf_mono_ns();
    allowed = (uint64_t)((double)(now - c->t0) / 1e9 * rate) + 1;
    if (allowed > c->sent)
        return allowed - c->sent < want ? (uint32_t)(allowed - c->sent) : want;
    due = (double)(c->sent + 1) / rate * 1e9 - (double)(now - c->t0);
    if (due / 1e6 < *timeout)
        *timeout = due > 0 ? (int)(due / 1e6) + 1 : 0;
    return 0;
}

static void
conn_dead(struct caller *c, struct cconn *k, int err, int code)
{
    if (k->dead)
        return;
    k->dead = 1;
    k->err = err;
    k->close_code = code;
    c->lost_calls += c->r->window - k->nfree;
    c->dead++;
}

/* Sends the slots just taken, sl[0..n), as one frame, stamping them. */
static int
flush_calls(struct caller *c, struct cconn *k, const uint32_t *sl, uint32_t n)
{
    uint64_t now = hf_mono_ns();
    int rv;

    for (uint32_t i = 0; i < n; i++)
        k->sent_ns[sl[i]] = now;
    rv = wb_send_frame(k->ws, c->r->t->msgpack, &c->frame);
    c->frame.len = 0;
    return rv;
}

/* Takes n free slots (n <= nfree) and sends their calls. */
static int
submit(struct caller *c, struct cconn *k, uint32_t n)
{
    struct crun *r = c->r;
    uint32_t sl[FRAME_MSGS], m = 0;
    int rv;

    c->frame.len = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = k->freel[--k->nfree], a;
        uint64_t id = (++k->seq << SLOT_BITS) | s;
        if (r->wl != NULL) {
            a = r->wl->put(c, k, s, id);
        } else {
            a = r->nactors == 1 ? 0 : (uint32_t)(wb_rnd(&c->rng) % r->nactors);
            wb_put_msg(&c->frame, r->t->msgpack, "call", id, &r->names[a],
                       "incr", r->emit);
        }
        k->sent_id[s] = id;
        k->sent_actor[s] = a;
        sl[m++] = s;
        if (m == FRAME_MSGS || c->frame.len >= FRAME_BYTES || i + 1 == n) {
            if ((rv = flush_calls(c, k, sl, m)) != 0)
                return rv;
            m = 0;
        }
    }
    c->sent += n;
    return 0;
}

static void
on_reply(void *arg, const struct smsg *m)
{
    struct caller *c = arg;
    struct cconn *k = c->cur;
    struct crun *r = c->r;
    uint32_t s = (uint32_t)(m->id & (MAX_WINDOW - 1));

    if (m->op != M_REPLY)
        return; /* hello, pong */
    if (!m->has_id || m->id == 0 || s >= r->window || k->sent_id[s] != m->id) {
        c->stray++;
        return;
    }
    hf_bench_lat_add(&c->lat, c->rd.now - k->sent_ns[s]);
    if (r->wl != NULL) {
        switch (r->wl->reply(c, k, s, m)) {
        case WR_OK:
            c->seen[k->sent_actor[s]].acks++;
            c->ok++;
            break;
        case WR_REFUSED:
            c->refused++;
            break;
        default: {
            int e = m->ok                                ? HF_EBADREQ
                    : m->err < 0 && m->err > -HF_ECOUNT_ ? m->err
                                                         : HF_EINTERNAL;
            c->errors++;
            c->errs[-e]++;
        }
        }
    } else if (m->ok) {
        struct seen *x = &c->seen[k->sent_actor[s]];
        if (!m->has_value || m->value < 1) {
            c->bad_value++;
        } else {
            uint64_t v = (uint64_t)m->value;
            x->acks++;
            x->sum += v;
            if (v > x->max)
                x->max = v;
            c->ok++;
            if (r->sm)
                sm_set(&r->sm[k->sent_actor[s]], v, k->sent_ns[s]);
        }
    } else {
        int e = m->err < 0 && m->err > -HF_ECOUNT_ ? m->err : HF_EINTERNAL;
        c->errors++;
        c->errs[-e]++;
    }
    k->sent_id[s] = 0;
    k->freel[k->nfree++] = s;
}

static void
caller_drain(struct caller *c, struct cconn *k)
{
    int err, code;

    c->cur = k;
    if (wb_drain(&c->rd, k->ws, on_reply, c, &err, &code) != 0)
        conn_dead(c, k, err, code);
}

/* Replies read so far, whatever they said. */
static uint64_t
answered(const struct caller *c)
{
    return c->ok + c->refused + c->errors + c->bad_value + c->stray;
}

static void
caller_loop(struct caller *c)
{
    struct crun *r = c->r;
    uint64_t last = hf_mono_ns();

    for (;;) {
        uint64_t before = answered(c), now;
        uint32_t inflight = 0, np = 0;
        int timeout = POLL_MS, n;

        for (uint32_t i = 0; i < c->n; i++) {
            struct cconn *k = &c->conns[i];
            uint32_t want;
            if (k->dead)
                continue;
            want = claim(r, pace(c, k->nfree, &timeout));
            if (want > 0 && submit(c, k, want) != 0)
                conn_dead(c, k, HF_EUNAVAIL, 0);
            if (k->dead)
                continue;
            inflight += r->window - k->nfree;
            c->pfds[np] =
                (struct pollfd){.fd = hf_ws_fd(k->ws), .events = POLLIN};
            c->pidx[np++] = i;
        }
        if (np == 0 || (inflight == 0 && exhausted(r)))
            break;
        n = poll(c->pfds, np, timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (uint32_t j = 0; j < np; j++) {
            struct cconn *k = &c->conns[c->pidx[j]];
            if (c->pfds[j].revents != 0 || hf_ws_pending(k->ws))
                caller_drain(c, k);
        }
        now = hf_mono_ns();
        if (answered(c) > before) {
            atomic_fetch_add_explicit(&r->done, answered(c) - before,
                                      memory_order_relaxed);
            last = now;
        } else if (inflight == 0) {
            last = now; /* paced, or waiting to stop: not a stall */
        } else if (now - last > (uint64_t)STALL_S * 1000000000u) {
            c->stalled = 1;
            atomic_store(&r->stop, 1);
            break;
        }
    }
}

/* Closes the thread's connections, all together (wb_close_all). */
static void
caller_close(struct caller *c)
{
    hf_ws **v = calloc(c->n ? c->n : 1, sizeof(*v));

    if (v == NULL)
        return; /* caller_free closes them one by one */
    for (uint32_t i = 0; i < c->n; i++) {
        v[i] = c->conns[i].ws;
        c->conns[i].ws = NULL;
    }
    wb_close_all(v, c->n, c->pfds, c->pidx);
    free(v);
}

/* Reads whatever the first upto connections have (hello, pings) while
 * there is nothing to send yet, so that none goes unread for long: the
 * server drops connections that do not answer its heartbeat. */
static void
caller_idle(struct caller *c, uint32_t upto, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < upto; i++) {
        if (c->conns[i].dead)
            continue;
        c->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(c->conns[i].ws), .events = POLLIN};
        c->pidx[np++] = i;
    }
    if (np == 0 || poll(c->pfds, np, timeout) <= 0)
        return;
    for (uint32_t j = 0; j < np; j++)
        if (c->pfds[j].revents != 0)
            caller_drain(c, &c->conns[c->pidx[j]]);
}

static void *
caller_main(void *arg)
{
    struct caller *c = arg;
    struct crun *r = c->r;
    uint64_t serviced = hf_mono_ns(), now;

    for (uint32_t i = 0; i < c->n; i++) {
        if (atomic_load(&r->stop) || atomic_load(&r->failed))
            goto out;
        if (wb_dial(r->cmd, r->t, c->first + i, r->nconns, &c->conns[i].ws) !=
            0) {
            c->connect_err = 1;
            atomic_store(&r->failed, 1);
            goto out;
        }
        atomic_fetch_add(&r->connected, 1);
        if ((now = hf_mono_ns()) - serviced > SERVICE_NS) {
            caller_idle(c, i + 1, 0);
            serviced = now;
        }
    }
    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load(&r->go)) {
        if (atomic_load(&r->stop))
            goto out;
        caller_idle(c, c->n, 1);
    }
    c->t0 = hf_mono_ns();
    caller_loop(c);
out:
    caller_close(c);
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
caller_free(struct caller *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->conns && i < c->n; i++) {
        struct cconn *k = &c->conns[i];
        hf_ws_close(k->ws);
        free(k->sent_id);
        free(k->sent_ns);
        free(k->sent_actor);
        free(k->sent_aux);
        free(k->freel);
    }
    free(c->conns);
    free(c->pfds);
    free(c->pidx);
    free(c->seen);
    hf_buf_free(&c->frame);
    wb_reader_fini(&c->rd);
    free(c);
}

static struct caller *
caller_new(struct crun *r, uint32_t first, uint32_t n, int idx)
{
    struct caller *c = calloc(1, sizeof(*c));
    uint32_t w = r->window;

    if (c == NULL)
        return NULL;
    wb_reader_init(&c->rd);
    c->r = r;
    c->first = first;
    c->n = n;
    c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(idx + 1) ^ hf_mono_ns();
    if (c->rng == 0)
        c->rng = 1;
    c->conns = calloc(n, sizeof(*c->conns));
    c->pfds = calloc(n, sizeof(*c->pfds));
    c->pidx = calloc(n, sizeof(*c->pidx));
    c->seen = calloc(r->nactors, sizeof(*c->seen));
    if (!c->conns || !c->pfds || !c->pidx || !c->seen)
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        struct cconn *k = &c->conns[i];
        k->sent_id = calloc(w, sizeof(*k->sent_id));
        k->sent_ns = calloc(w, sizeof(*k->sent_ns));
        k->idx = first + i;
        k->sent_actor = calloc(w, sizeof(*k->sent_actor));
        k->sent_aux = calloc(w, sizeof(*k->sent_aux));
        k->freel = calloc(w, sizeof(*k->freel));
        if (!k->sent_id || !k->sent_ns || !k->sent_actor || !k->sent_aux ||
            !k->freel)
            goto fail;
        for (uint32_t s = 0; s < w; s++)
            k->freel[s] = w - 1 - s;
        k->nfree = w;
    }
    return c;
fail:
    caller_free(c);
    return NULL;
}

/* Builds nthreads callers over r->nconns connections. */
struct caller **
wb_callers_new(struct crun *r, int nthreads)
{
    struct caller **cl = calloc((size_t)nthreads, sizeof(*cl));
    uint32_t first = 0;

    if (cl == NULL)
        return NULL;
    for (int i = 0; i < nthreads; i++) {
        uint32_t n = r->nconns / (uint32_t)nthreads +
                     ((uint32_t)i < r->nconns % (uint32_t)nthreads);
        if ((cl[i] = caller_new(r, first, n, i)) == NULL) {
            for (int j = 0; j < i; j++)
                caller_free(cl[j]);
            free(cl);
            return NULL;
        }
        first += n;
    }
    return cl;
}

int
wb_ctotal_merge(struct ctotal *t, struct caller **cl, int n, uint32_t nactors)
{
    memset(t, 0, sizeof(*t));
    t->seen = calloc(nactors, sizeof(*t->seen));
    t->lat = calloc(1, sizeof(*t->lat));
    if (t->seen == NULL || t->lat == NULL)
        return -1;
    for (int i = 0; i < n; i++) {
        struct caller *c = cl[i];
        hf_bench_lat_merge(t->lat, &c->lat);
        for (uint32_t a = 0; a < nactors; a++) {
            t->seen[a].acks += c->seen[a].acks;
            t->seen[a].sum += c->seen[a].sum;
            if (c->seen[a].max > t->seen[a].max)
                t->seen[a].max = c->seen[a].max;
        }
        t->ok += c->ok;
        t->refused += c->refused;
        t->errors += c->errors;
        for (int k = 0; k < HF_ECOUNT_; k++)
            t->errs[k] += c->errs[k];
        t->stray += c->stray;
        t->bad_value += c->bad_value;
        t->lost_calls += c->lost_calls;
        t->malformed += c->rd.sc.malformed;
        t->dead += c->dead;
        t->stalled |= c->stalled;
    }
    return 0;
}

void
wb_ctotal_free(struct ctotal *t)
{
    free(t->seen);
    free(t->lat);
}

/* Says which caller connections died and how; returns their number. */
uint32_t
wb_report_dead(const char *who, struct caller **cl, int n)
{
    uint32_t dead = 0;

    for (int i = 0; i < n; i++)
        for (uint32_t j = 0; j < cl[i]->n; j++) {
            struct cconn *k = &cl[i]->conns[j];
            if (!k->dead)
                continue;
            if (dead++ < SHOW) {
                if (k->close_code)
                    printf("verify: FAIL (%s connection %u closed by the "
                           "server with %d%s)\n",
                           who, cl[i]->first + j, k->close_code,
                           k->close_code == 1013
                               ? ": slow consumer (--outbuf-max)"
                           : k->close_code == 1008 ? ": policy"
                           : k->close_code == 1009 ? ": frame too large"
                                                   : "");
                else
                    printf("verify: FAIL (%s connection %u lost: %s)\n", who,
                           cl[i]->first + j, hf_err_name(k->err));
            }
        }
    return dead;
}

/* ------------------------------------------------------------------ */
/* reading the actors back                                             */

static void
on_get(void *arg, const struct smsg *m)
{
    struct getter *g = arg;
    uint64_t a = m->id - 1;

    if (m->op != M_REPLY)
        return;
    if (!m->has_id || m->id == 0 || a >= g->n || g->st[a] != 1) {
        g->bad++;
        return;
    }
    g->inflight--;
    if (m->ok) {
        g->st[a] = 2;
        g->left--;
        if (g->fn(g->arg, (uint32_t)a, m) != 0)
            g->err = HF_EBADREQ;
    } else if (m->err == HF_ERATELIMIT || m->err == HF_EOVERLOADED ||
               m->err == HF_ETIMEOUT) {
        g->st[a] = 0;
        g->backoff = 1;
    } else {
        g->st[a] = 2;
        g->left--;
        g->err = m->err;
    }
}

/* vals[a] = the value get returned. */
static int
got_value(void *arg, uint32_t a, const struct smsg *m)
{
    int64_t *vals = arg;

    if (!m->has_value)
        return -1;
    vals[a] = m->value;
    return 0;
}

int
wb_read_values(const char *cmd, const struct target *t,
               const struct name *names, uint32_t n, int64_t *vals)
{
    return wb_call_each(cmd, t, names, n, "get", VERIFY_WINDOW, got_value,
                        vals);
}

int
wb_call_each(const char *cmd, const struct target *t, const struct name *names,
             uint32_t n, const char *method, uint32_t window,
             int (*fn)(void *arg, uint32_t a, const struct smsg *m), void *arg)
{
    struct getter g = {.fn = fn, .arg = arg, .n = n, .left = n};
    hf_ws *ws = NULL;
    hf_buf frame = {0}, rx = {0};
    uint64_t dl = hf_mono_ns() + (uint64_t)VERIFY_S * 1000000000u;
    uint32_t next = 0;
    int rv, op, code;

    msgpack_zone_init(&g.sc.zone, 4096);
    if ((g.st = calloc(n ? n : 1, 1)) == NULL) {
        rv = HF_EINTERNAL;
        goto out;
    }
    if ((rv = wb_dial(cmd, t, 0, 1, &ws)) != 0)
        goto out;
    while (g.left > 0 && g.err == 0 && g.bad == 0) {
        struct pollfd p = {.fd = hf_ws_fd(ws), .events = POLLIN};
        if (hf_mono_ns() > dl) {
            rv = HF_ETIMEOUT;
            break;
        }
        if (g.backoff) {
            wb_sleep_ms(50);
            g.backoff = 0;
        }
        /* Ask the actors not asked yet, window permitting, going round
         * from where the last pass stopped. */
        frame.len = 0;
        for (uint32_t k = 0;
             k < n && g.inflight < window && frame.len < FRAME_BYTES;
             k++, next = (next + 1) % n) {
            if (g.st[next] != 0)
                continue;
            wb_put_msg(&frame, t->msgpack, "call", (uint64_t)next + 1,
                       &names[next], method, 0);
            g.st[next] = 1;
            g.inflight++;
        }
        if (frame.len > 0 && (rv = wb_send_frame(ws, t->msgpack, &frame)) != 0)
            break;
        if (!hf_ws_pending(ws) && poll(&p, 1, 1000) <= 0)
            continue;
        do {
            rv = hf_ws_recv(ws, 0, &op, &rx, &code);
            if (rv == HF_ETIMEOUT)
                break;
            if (rv == 0 && op == HF_WS_CLOSE)
                rv = HF_EUNAVAIL;
            if (rv != 0)
                goto out;
            scan(&g.sc, op == HF_WS_BINARY, rx.data, rx.len, on_get, &g);
        } while (hf_ws_pending(ws));
        rv = 0;
    }
    if (rv == 0 && g.err != 0)
        rv = g.err;
    if (rv == 0 && (g.bad != 0 || g.sc.malformed != 0))
        rv = HF_EBADREQ;
out:
    if (rv != 0)
        printf("verify: FAIL (reading the actors back through a fresh "
               "connection: %s)\n",
               hf_err_name(rv));
    hf_ws_close(ws);
    hf_buf_free(&frame);
    hf_buf_free(&rx);
    msgpack_zone_destroy(&g.sc.zone);
    free(g.st);
    return rv;
}

/* Checks the ok replies of each actor carried 1..k_a once each (count,
 * sum and max: cheap, and it catches lost, repeated and stale values),
 * and that the actor holds k_a. Returns 1 when all match. */
int
wb_check_actors(const struct name *names, uint32_t n, const struct seen *seen,
                const int64_t *vals, uint64_t *sum_out)
{
    uint64_t bad = 0, sum = 0;

    for (uint32_t a = 0; a < n; a++) {
        uint64_t k = seen[a].acks;
        uint64_t want = k % 2 ? k * ((k + 1) / 2) : (k / 2) * (k + 1);
        sum += (uint64_t)vals[a];
        if (seen[a].max != k || seen[a].sum != want) {
            if (bad++ < SHOW)
                printf("verify: FAIL (%s: %" PRIu64
                       " ok replies whose values are not 1..%" PRIu64
                       ": sum %" PRIu64 ", max %" PRIu64 ")\n",
                       names[a].s, k, k, seen[a].sum, seen[a].max);
        } else if (vals[a] < 0 || (uint64_t)vals[a] != k) {
            if (bad++ < SHOW)
                printf("verify: FAIL (%s holds %" PRId64
                       ", acknowledged %" PRIu64 ")\n",
                       names[a].s, vals[a], k);
        }
    }
    *sum_out = sum;
    if (bad > SHOW)
        printf("verify: FAIL (%" PRIu64 " actors disagree in all)\n", bad);
    return bad == 0;
}

/* The lines every remote summary ends with: the server's view and what
 * the error codes mean for the run. */
void
wb_note_limits(const char *cmd, const struct srv *s0, const struct srv *s1,
               uint64_t rate_limited, uint64_t messages)
{
    if (s0->ok && s1->ok && s1->frames_out > s0->frames_out)
        printf("server: %" PRIu64 " WebSocket frames out, %.1f messages "
               "per frame (server-wide counters)\n",
               s1->frames_out - s0->frames_out,
               (double)messages / (double)(s1->frames_out - s0->frames_out));
    if (rate_limited > 0)
        printf("NOTE: %" PRIu64
               " calls were refused with rate_limited: the server's per-"
               "connection limit\n      throttled this run. Restart it with "
               "e.g. --rate 10000000 --rate-burst 10000000\n      (see "
               "holdfast-bench %s --help).\n",
               rate_limited, cmd);
    if (!s0->ok || !s1->ok)
        printf("note: the server's /metrics could not be read: commits and "
               "batch are unknown\n");
    else if (s1->slow_consumers > s0->slow_consumers)
        printf("NOTE: the server closed %" PRIu64
               " slow consumers (1013) during the run\n",
               s1->slow_consumers - s0->slow_consumers);
}

/* ------------------------------------------------------------------ */
/* running callers                                                     */

int
wb_start_callers(struct caller **cl, int n, struct crun *r)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&cl[i]->thr, NULL, caller_main, cl[i]) != 0) {
            fprintf(stderr, "holdfast-bench %s: cannot start a thread\n",
                    r->cmd);
            atomic_store(&r->stop, 1);
            return i;
        }
    return n;
}

/* Waits until every started caller has connected: 1; or one failed, or
 * Ctrl-C: 0. label prefixes the progress line. */
int
wb_await_callers(struct crun *r, int started, const char *label)
{
    uint64_t next = hf_mono_ns() + 1000000000u;

    while (atomic_load(&r->ready) < started) {
        if (atomic_load(&r->failed) || wb_interrupted ||
            atomic_load(&r->finished) > 0)
            return 0;
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u", label,
                              (uint64_t)atomic_load(&r->connected), r->nconns);
            next += 1000000000u;
        }
    }
    return 1;
}

void
wb_join_callers(struct caller **cl, int started)
{
    for (int i = 0; i < started; i++)
        pthread_join(cl[i]->thr, NULL);
}

void
wb_free_callers(struct caller **cl, int n)
{
    for (int i = 0; cl && i < n; i++)
        caller_free(cl[i]);
    free(cl);
}

/* The last reply any caller read, for "first submit to last reply". */
uint64_t
wb_last_reply(struct caller **cl, int n, uint64_t t0)
{
    uint64_t t = t0;
    for (int i = 0; i < n; i++)
        if (cl[i]->rd.now > t)
            t = cl[i]->rd.now;
    return t;
}

static const char server_note[] =
    "The server limits messages per connection per second (holdfast serve "
    "--rate,\n"
    "default 1000, and --rate-burst, default 2000). A load run needs both "
    "raised,\n"
    "or its calls are refused with rate_limited (counted, and called out in "
    "the\n"
    "summary). For throwaway runs:\n"
    "  holdfast serve --listen 127.0.0.1:8080 --data /tmp/benchdata "
    "--durability none \\\n"
    "      --rate 10000000 --rate-burst 10000000\n"
    "The bench cannot ask the server for its durability: pass the same "
    "--durability\n"
    "here to label the table. commits and batch come from the server's "
    "/metrics.\n"
    "\n"
    "Actors are counter/<base><i>.<tag>, tag new for every run, so they "
    "start at 0\n"
    "even on a server that ran the bench before. The soft RLIMIT_NOFILE is "
    "raised to\n"
    "the hard limit at start; past 16000 connections the sources spread over "
    "127.0.0.x\n"
    "when the server is on loopback.\n";

/* The flags, then what every remote scenario shares, then extra. */
void
wb_usage_tail(FILE *out, const struct hf_bench_flag *f, size_t n,
              const char *extra)
{
    hf_bench_flags_usage(out, f, n);
    fputc('\n', out);
    fputs(server_note, out);
    if (*extra != '\0') {
        fputc('\n', out);
        fputs(extra, out);
    }
    fputs("\n--json FILE writes the result as one JSON object. Exit status: "
          "0 verified,\n1 failed (or Ctrl-C), 2 bad usage.\n",
          out);
}

/* ------------------------------------------------------------------ */
/* the subcommands                                                     */

/* --durability for the remote scenarios: a label. */
static int
remote_durability(const char *cmd, const char *s, int *out)
{
    *out = HF_BENCH_DUR_UNKNOWN;
    if (s == NULL)
        return 0;
    if ((*out = hf_bench_durability(s)) < 0) {
        fprintf(stderr,
                "holdfast-bench %s: --durability wants sync or none, not "
                "'%s'\n",
                cmd, s);
        return HF_BENCH_USAGE;
    }
    return 0;
}

/* Appends the flags every remote scenario takes to f[*n..]. */
static void
common_flags(struct hf_bench_flag *f, size_t *n, struct wopts *o)
{
    const struct hf_bench_flag c[] = {
        {.name = "url",
         .metavar = "URL",
         .type = HF_BF_STR,
         .dst = &o->url,
         .help = "server (default " DEF_URL ", path default /v1/ws)"},
        {.name = "msgpack",
         .metavar = "",
         .type = HF_BF_BOOL,
         .dst = &o->msgpack,
         .help = "speak holdfast.v1.msgpack (default JSON)"},
        {.name = "token",
         .metavar = "JWT",
         .type = HF_BF_STR,
         .dst = &o->token,
         .help = "bearer token, for a server with auth on"},
        {.name = "durability",
         .metavar = "MODE",
         .type = HF_BF_STR,
         .dst = &o->durability,
         .help = "the server's --durability, for the table"},
        {.name = "json",
         .metavar = "FILE",
         .type = HF_BF_STR,
         .dst = &o->json,
         .help = "also write the result as JSON"},
        {.name = "plot",
         .metavar = "FILE.png",
         .type = HF_BF_STR,
         .dst = &o->plot,
         .help = "also draw the latency distribution (gnuplot)"},
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]) && *n < MAX_FLAGS; i++)
        f[(*n)++] = c[i];
}

/* Parses the flags (f[0..n) the scenario's own, f sized MAX_FLAGS), runs
 * the scenario once and shows its result. Returns the exit status. */
int
wb_ws_main(const struct wscen *sc, struct wopts *o, struct hf_bench_flag *f,
           size_t n, int argc, char **argv)
{
    struct hf_bench_result res;
    struct target t;
    int rv, durability, status;

    common_flags(f, &n, o);
    rv = hf_bench_flags(sc->name, f, n, argc, argv);
    if (rv == 1) {
        sc->usage(stdout, f, n);
        return HF_BENCH_OK;
    }
    if (rv != 0)
        return rv;
    if (o->has_ops && o->has_duration) {
        fprintf(stderr,
                "holdfast-bench %s: --ops and --duration exclude each other\n",
                sc->name);
        return HF_BENCH_USAGE;
    }
    if ((rv = remote_durability(sc->name, o->durability, &durability)) != 0 ||
        (rv = parse_url(sc->name, o->url, o->token, o->msgpack, &t)) != 0 ||
        (rv = raise_nofile(
             sc->name, (uint64_t)(o->clients + o->subscribers + o->publishers +
                                  (sc->actor_conns ? o->actors : 0)) +
                           32)) != 0)
        return rv;
    wb_catch_sigint();
    status = sc->run(o, &t, durability, &res);
    if (res.seconds > 0) { /* it ran: there is something to show */
        putchar('\n');
        hf_bench_table(stdout, &res, 1);
    }
    if (o->json && hf_bench_json(o->json, &res, 1, 0) != 0)
        status = HF_BENCH_FAIL;
    if (o->plot && res.seconds > 0 && hf_bench_plot(o->plot, &res, 1) != 0)
        status = HF_BENCH_FAIL;
    if (wb_interrupted) {
        fprintf(stderr, "holdfast-bench %s: interrupted\n", sc->name);
        status = HF_BENCH_FAIL;
    }
    return status;
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

/* ------------------------------------------------------------------ */
/* closed-loop runs: shared by calls, booking and mix                  */

int
wb_run(struct crun *r, struct caller **cl, int n, double duration,
       const char *unit, struct wb_span *sp)
{
    uint64_t next, last_done = 0, last_ns, done;
    int started = wb_start_callers(cl, n, r);

    memset(sp, 0, sizeof(*sp));
    if (started < n || !wb_await_callers(r, started, r->cmd)) {
        atomic_store(&r->stop, 1);
        wb_join_callers(cl, started);
        hf_bench_progress_end();
        printf("FAIL: %s: could not open every connection%s\n", r->cmd,
               wb_interrupted ? " (interrupted)" : "");
        return -1;
    }
    wb_scrape(r->t, &sp->s0);
    sp->t0 = last_ns = hf_mono_ns();
    next = sp->t0 + 1000000000u;
    atomic_store(&r->go, 1);
    while (atomic_load(&r->finished) < started) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - sp->t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r->stop, 1);
        if (now >= next) {
            done = atomic_load(&r->done);
            hf_bench_progress("%s: %5.1fs %10" PRIu64 " %s %9.0f/s", r->cmd,
                              (double)(now - sp->t0) / 1e9, done, unit,
                              (double)(done - last_done) /
                                  ((double)(now - last_ns) / 1e9));
            last_done = done;
            last_ns = now;
            next += 1000000000u;
        }
    }
    wb_join_callers(cl, started);
    sp->t1 = wb_last_reply(cl, started, sp->t0);
    done = atomic_load(&r->done);
    hf_bench_progress("%s: %5.1fs %10" PRIu64 " %s %9.0f/s (all)", r->cmd,
                      (double)(sp->t1 - sp->t0) / 1e9, done, unit,
                      sp->t1 > sp->t0
                          ? (double)done / ((double)(sp->t1 - sp->t0) / 1e9)
                          : 0.0);
    hf_bench_progress_end();
    wb_scrape(r->t, &sp->s1);
    return 0;
}

int
wb_callers_ok(const struct ctotal *tot, struct caller **cl, int n,
              const char *who)
{
    int ok = 1;

    if (tot->stalled) {
        printf("verify: FAIL (%s calls in flight and no reply for %d s)\n", who,
               STALL_S);
        ok = 0;
    }
    if (wb_report_dead(who, cl, n) > 0) {
        printf("verify: FAIL (%u %s connections lost, %" PRIu64
               " calls in flight on them: their outcome is unknown)\n",
               tot->dead, who, tot->lost_calls);
        ok = 0;
    }
    if (tot->stray || tot->bad_value || tot->malformed) {
        printf("verify: FAIL (%s: %" PRIu64 " replies with an unknown or "
               "answered id, %" PRIu64 " ok replies without a value, %" PRIu64
               " unreadable messages)\n",
               who, tot->stray, tot->bad_value, tot->malformed);
        ok = 0;
    }
    return ok;
}

void
wb_span_flags(struct hf_bench_flag *f, size_t *n, struct wopts *o,
              const char *threads_help, const char *ops_help)
{
    const struct hf_bench_flag c[] = {
        {.name = "threads",
         .metavar = "T",
         .type = HF_BF_INT,
         .dst = &o->threads,
         .min = 1,
         .max = 1024,
         .help = threads_help},
        {.name = "duration",
         .metavar = "S",
         .type = HF_BF_DOUBLE,
         .dst = &o->duration,
         .min = 0.1,
         .max = 86400,
         .seen = &o->has_duration,
         .help = "run for S seconds (default 10)"},
        {.name = "ops",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o->ops,
         .min = 1,
         .max = 1e15,
         .seen = &o->has_ops,
         .help = ops_help},
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]) && *n < MAX_FLAGS; i++)
        f[(*n)++] = c[i];
}

double
wb_duration(const struct wopts *o)
{
    return o->has_duration ? o->duration : o->has_ops ? 0 : DEF_DURATION;
}

/* ------------------------------------------------------------------ */
/* pub/sub runs: the publishing half, shared by fanout and devices     */

static void
pub_progress(struct wb_pub *p, uint64_t now, uint64_t *pub0, uint64_t *del0,
             uint64_t *ns0)
{
    uint64_t pub = atomic_load(&p->cr->done), del = atomic_load(p->delivered);
    double dt = (double)(now - *ns0) / 1e9;

    hf_bench_progress("%s: %5.1fs %s %9" PRIu64 " %8.0f/s  %s %11" PRIu64
                      " %10.0f/s",
                      p->cr->cmd, (double)(now - p->t0) / 1e9, p->what, pub,
                      dt > 0 ? (double)(pub - *pub0) / dt : 0.0, p->rwhat, del,
                      dt > 0 ? (double)(del - *del0) / dt : 0.0);
    *pub0 = pub;
    *del0 = del;
    *ns0 = now;
}

int
wb_publish(struct wb_pub *p)
{
    struct crun *r = p->cr;
    uint64_t next, drain_dl = 0, pub0 = 0, del0 = 0, ns0;
    int done = 0;

    p->started = wb_start_callers(p->cl, p->n, r);
    if (p->started < p->n || !wb_await_callers(r, p->started, r->cmd)) {
        atomic_store(&r->stop, 1);
        atomic_store(p->rstop, 1);
        wb_join_callers(p->cl, p->started);
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect the %s\n", r->cmd, p->who);
        return -1;
    }
    wb_scrape(r->t, &p->s0);
    p->t0 = ns0 = hf_mono_ns();
    next = p->t0 + 1000000000u;
    atomic_store(&r->go, 1);
    for (;;) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((p->duration > 0 && (double)(now - p->t0) >= p->duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r->stop, 1);
        if (!done && atomic_load(&r->finished) == p->started) {
            /* Every publish is answered: what the readers must reach is
             * known now. */
            done = 1;
            p->tpub = wb_last_reply(p->cl, p->started, p->t0);
            if (p->final)
                p->final(p->arg);
            atomic_store(p->rfinal_known, 1);
            drain_dl = hf_mono_ns() + (uint64_t)DRAIN_S * 1000000000u;
        }
        if (done && atomic_load(p->rfinished) == p->nreaders)
            break;
        /* Even after Ctrl-C the readers get their DRAIN_S to catch up:
         * cutting them off would report events as lost. */
        if (done && now > drain_dl)
            atomic_store(p->rstop, 1);
        if (now >= next) {
            pub_progress(p, now, &pub0, &del0, &ns0);
            next += 1000000000u;
        }
    }
    wb_join_callers(p->cl, p->started);
    pub_progress(p, hf_mono_ns(), &pub0, &del0, &ns0);
    hf_bench_progress_end();
    wb_scrape(r->t, &p->s1);
    return 0;
}

uint32_t
wb_poll_pass(uint32_t n, hf_ws *(*live)(void *arg, uint32_t i),
             void (*ready)(void *arg, uint32_t i), void *arg,
             struct pollfd *pfds, uint32_t *pidx, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < n; i++) {
        hf_ws *ws = live(arg, i);
        if (ws == NULL)
            continue;
        pfds[np] = (struct pollfd){.fd = hf_ws_fd(ws), .events = POLLIN};
        pidx[np++] = i;
    }
    if (np == 0)
        return 0;
    if (poll(pfds, np, timeout) < 0 && errno != EINTR)
        return np;
    for (uint32_t j = 0; j < np; j++) {
        hf_ws *ws = live(arg, pidx[j]); /* ready() may have closed others */
        if (ws != NULL && (pfds[j].revents != 0 || hf_ws_pending(ws)))
            ready(arg, pidx[j]);
    }
    return np;
}
