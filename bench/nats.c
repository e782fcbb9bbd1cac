/*
 * nats.c - holdfast-bench fanout --peer nats: the fanout workload against
 * a nats-server WebSocket listener, so that holdfast's fan-out can be set
 * beside a well-known broker's, measured by the same client.
 *
 * Design notes
 * ------------
 * Same client, same numbers. The connections are transport/wsclient's
 * hf_ws, offering no subprotocol (nats-server ignores the header and
 * accepts the upgrade on any path, so the --url's default /v1/ws does as
 * well as /), read by poll() loops shaped like wsrun.c's; the latency
 * histograms, the result row, its table and its JSON keys are the
 * harness's (bench.h). Only the wire protocol differs: the NATS text
 * protocol (INFO, CONNECT, PING/PONG, SUB, PUB, MSG, +OK/-ERR) in binary
 * WebSocket frames. nats-server may cut the stream anywhere between
 * frames, so every connection keeps the unparsed tail of its stream
 * (struct nconn) and a MSG is handed on only when its payload is whole.
 *
 * The workload is holdfast fanout's: S subscribers spread over T threads,
 * subscriber i on subject fan.<i mod A>.<tag> (the tag is new for every
 * run, so runs sharing a server do not see each other's messages); then P
 * publisher connections on one thread publish to subjects picked at
 * random, R messages/s in all or as fast as the window allows.
 *
 * Subscriptions are confirmed before the first publish: a subscriber
 * sends CONNECT, SUB and PING in one frame, and nats-server handles a
 * connection's input in order, so its PONG means the subscription is in
 * place. Publishing starts when every subscriber has its PONG.
 *
 * The window. NATS acknowledges nothing per message (we connect with
 * verbose:false, so there is no +OK either), so a publisher ends every
 * frame of PUBs with a PING: the PONG that answers it says the server has
 * taken every PUB before it and handed it to the subscribers' outbound
 * queues (not that they have read it). --window W bounds the PUBs sent
 * and not yet covered by a PONG, per publisher - the counterpart of
 * holdfast's calls in flight awaiting their reply - and "published" counts
 * the PUBs a PONG covered. --rate paces the publisher thread on top, as
 * in holdfast fanout. Unlike holdfast's publishes (durable incr calls
 * whose events leave after the fsync with --durability sync), NATS core
 * keeps nothing on disk: the row is labelled durability none.
 *
 * The payload is "<publisher> <seq> <ns>": the publisher's index, its
 * sequence number on that subject (1, 2, ... per publisher and subject)
 * and hf_mono_ns() when the frame was built, just before it is sent.
 * Latency is a subscriber's read of the frame holding the MSG minus that
 * timestamp (one process, one monotonic clock: no matching needed).
 *
 * The verdict. Per subscriber and publisher, seqs must come as 1..k with
 * k the number of PUBs that publisher sent to the subscriber's subject
 * (known once publishing is over and every PONG is in): a seq beyond the
 * next one counts the skipped ones as lost, a seq at or below the last one
 * counts as reordered (late or repeated), and whatever is missing at the
 * end is lost - the meanings holdfast fanout gives them. Any -ERR, stray
 * or unreadable message, lost connection or stalled publisher fails the
 * run as well.
 *
 * Threads: as in wsrun.c, a connection belongs to one thread. What they
 * share is struct nrun: plain fields written before the threads start,
 * final[] written by the main thread before it sets final_known, and
 * atomics for the rest.
 *
 * Running it. nats-server (Debian 12 ships 2.9.10) serves WebSocket only
 * when its config file has a websocket block; without TLS:
 *
 *     websocket { listen: "127.0.0.1:8443"  no_tls: true }
 *
 * then: holdfast-bench fanout --peer nats --url ws://127.0.0.1:8443
 * (bench/compare does all of it). The entry point is called by fanout.c.
 * A NATS message here is smaller than a holdfast event (a MSG line and a
 * short payload against a JSON event with its envelope); nothing adjusts
 * for that.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/err.h"

#define FANOUT    "fanout"
#define CMD       "fanout --peer nats"
#define NLINE_MAX 4096        /* longest protocol line taken */
#define BODY_MAX  (64u << 20) /* largest MSG payload taken */
#define RING_MAX  4096        /* PINGs in flight per publisher */
#define CONN_CAP  1024        /* the CONNECT line */
#define PUB_CAP   (NAME_CAP + 96)

/* Subscriber states, as in fanout.c. */
enum { S_NEW = 0, S_ASKED, S_ON, S_DEAD };

/* ------------------------------------------------------------------ */
/* the NATS protocol over one WebSocket                                */

/* One connection: the client and what its stream holds unparsed.
 * Belongs to one thread. */
struct nconn {
    hf_ws *ws;
    hf_buf acc; /* an incomplete message, carried to the next frame */
    int dead, err, close_code;
};

enum { N_MSG = 1, N_PONG, N_ERR, N_PING, N_INFO, N_OK };

/* One server message. The pointers are into the frame or into acc and
 * valid during the callback only. */
struct nmsg {
    int op;
    const char *subj; /* N_MSG */
    size_t subj_len;
    uint64_t sid;
    const char *data; /* N_MSG: the payload; N_ERR: the text */
    size_t len;
};

/* A thread's reading state. */
struct nreader {
    hf_buf rx;          /* the last frame */
    uint64_t now;       /* when it was read */
    uint64_t malformed; /* streams that broke the protocol */
};

typedef void (*nmsg_fn)(void *arg, struct nconn *k, const struct nmsg *m);

static const struct {
    const char *word;
    int op;
} verbs[] = {
    {"MSG", N_MSG},  {"PONG", N_PONG}, {"PING", N_PING},
    {"-ERR", N_ERR}, {"INFO", N_INFO}, {"+OK", N_OK},
};

/* -ERR texts (nats-server's wording) as the harness's error codes, for
 * the errors line under the table. Anything else counts as bad_request. */
static const struct {
    const char *text;
    int err;
} nats_errs[] = {
    {"Authorization Violation", HF_EUNAUTH},
    {"Authentication Timeout", HF_ETIMEOUT},
    {"Permissions Violation", HF_EFORBIDDEN},
    {"Maximum Payload", HF_ETOOLARGE},
    {"Maximum Connections", HF_EOVERLOADED},
    {"Slow Consumer", HF_EOVERLOADED},
    {"Stale Connection", HF_ETIMEOUT},
};

static int
err_code(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(nats_errs) / sizeof(nats_errs[0]); i++)
        if (memmem(s, n, nats_errs[i].text, strlen(nats_errs[i].text)))
            return nats_errs[i].err;
    return HF_EBADREQ;
}

static int
read_dec(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Splits a line into at most max space-separated words. Returns their
 * number, or max + 1 when there are more. */
static int
split(const char *p, size_t n, const char **w, size_t *wl, int max)
{
    int k = 0;

    for (size_t i = 0; i < n;) {
        size_t s;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (k == max)
            return max + 1;
        for (s = i; i < n && p[i] != ' ' && p[i] != '\t';)
            i++;
        w[k] = p + s;
        wl[k++] = i - s;
    }
    return k;
}

static void
conn_dead(struct nconn *k, int err, int code)
{
    if (k->dead)
        return;
    k->dead = 1;
    k->err = err;
    k->close_code = code;
}

static int
send_text(struct nconn *k, const void *p, size_t n)
{
    int rv = hf_ws_send(k->ws, HF_WS_BINARY, p, n);

    if (rv != 0)
        conn_dead(k, rv, 0);
    return rv;
}

/* Parses the complete messages in p[0..n), answering PINGs and passing
 * the rest to fn. Returns the bytes used (the rest is an incomplete
 * message), or -1 when the stream breaks the protocol. */
static long
parse(struct nconn *k, const char *p, size_t n, nmsg_fn fn, void *arg)
{
    size_t at = 0;

    while (at < n) {
        const char *line = p + at, *nl, *w[5];
        size_t ll, wl[5], vl, need;
        uint64_t body;
        struct nmsg m = {0};
        int nw;

        nl = memchr(line, '\n', n - at);
        if (nl == NULL)
            return n - at > NLINE_MAX ? -1 : (long)at;
        ll = (size_t)(nl - line);
        if (ll == 0 || line[ll - 1] != '\r' || ll > NLINE_MAX)
            return -1;
        ll--; /* without the \r */
        for (vl = 0; vl < ll && line[vl] != ' ' && line[vl] != '\t';)
            vl++;
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
            if (strlen(verbs[i].word) == vl &&
                memcmp(verbs[i].word, line, vl) == 0)
                m.op = verbs[i].op;
        need = ll + 2;
        switch (m.op) {
        case N_MSG: /* MSG <subject> <sid> [reply-to] <#bytes> */
            nw = split(line + vl, ll - vl, w, wl, 4);
            if (nw < 3 || nw > 4 || read_dec(w[1], wl[1], &m.sid) != 0 ||
                read_dec(w[nw - 1], wl[nw - 1], &body) != 0 || body > BODY_MAX)
                return -1;
            m.len = (size_t)body;
            if (n - at < need + m.len + 2)
                return (long)at; /* the payload is still coming */
            if (line[need + m.len] != '\r' || line[need + m.len + 1] != '\n')
                return -1;
            m.subj = w[0];
            m.subj_len = wl[0];
            m.data = line + need;
            need += m.len + 2;
            break;
        case N_PING:
            if (send_text(k, "PONG\r\n", 6) != 0)
                return (long)n; /* dead: nothing more matters */
            at += need;
            continue;
        case N_ERR:
            m.data = line + vl;
            m.len = ll - vl;
            break;
        case N_PONG:
        case N_INFO:
        case N_OK:
            break;
        default:
            return -1;
        }
        fn(arg, k, &m);
        at += need;
    }
    return (long)at;
}

/* Reads what k has for us: at least one frame, then more as long as the
 * client holds buffered bytes. Returns 0, or -1 when the connection is
 * over (k->dead set, with why). */
static int
nconn_drain(struct nconn *k, struct nreader *rd, nmsg_fn fn, void *arg)
{
    int op, rv, code;

    do {
        long used;
        code = 0;
        rv = hf_ws_recv(k->ws, 0, &op, &rd->rx, &code);
        if (rv == HF_ETIMEOUT)
            return 0;
        if (rv != 0 || op == HF_WS_CLOSE) {
            conn_dead(k, rv, rv != 0 ? 0 : code);
            return -1;
        }
        rd->now = hf_mono_ns();
        if (k->acc.len == 0) {
            used = parse(k, rd->rx.data, rd->rx.len, fn, arg);
            if (used >= 0 && (size_t)used < rd->rx.len &&
                hf_buf_append(&k->acc, rd->rx.data + used,
                              rd->rx.len - (size_t)used) != 0)
                used = -1;
        } else {
            if (hf_buf_append(&k->acc, rd->rx.data, rd->rx.len) != 0)
                used = -1;
            else if ((used = parse(k, k->acc.data, k->acc.len, fn, arg)) >= 0) {
                memmove(k->acc.data, k->acc.data + used,
                        k->acc.len - (size_t)used);
                k->acc.len -= (size_t)used;
            }
        }
        if (used < 0) {
            rd->malformed++;
            conn_dead(k, HF_EBADREQ, 0);
            return -1;
        }
        if (k->dead)
            return -1;
    } while (hf_ws_pending(k->ws));
    return 0;
}

static void
nconn_free(struct nconn *k)
{
    hf_ws_close(k->ws);
    k->ws = NULL;
    hf_buf_free(&k->acc);
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

/* Shared by the main thread, the subscriber threads and the publisher
 * thread: plain fields set before the threads start; final[] written by
 * the main thread before it sets final_known. */
struct nrun {
    const struct target *t;
    const struct name *subj; /* per subject: "fan.<a>.<tag>" */
    uint32_t nsubj, nsubs, npubs, window;
    double rate;            /* PUBs/s in all; 0: window-bound */
    uint64_t total;         /* PUBs to make; 0: until pstop */
    char connect[CONN_CAP]; /* "CONNECT {...}\r\n" */
    size_t connect_len;
    uint64_t *final; /* [p * nsubj + a]: PUBs p sent to a */
    atomic_int final_known, stop, ready, finished, failed;
    atomic_uint_least64_t connected, subscribed, delivered;
    atomic_int go, pstop, pready, pfinished, pfailed;
    atomic_uint_least64_t published;
};

/* Opens connection idx of total, offering no subprotocol, saying why on
 * stderr when it fails. Spreads over 127.0.0.x as wb_dial does. */
static int
dial(const struct target *t, uint32_t idx, uint32_t total, hf_ws **out)
{
    char src[32];
    const char *sp = NULL;
    int rv;

    if (t->loopback && total > PER_SOURCE) {
        uint32_t nsrc = (total + PER_SOURCE - 1) / PER_SOURCE;
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + idx % nsrc);
        sp = src;
    }
    rv = hf_ws_connect_from(out, sp, t->host, t->port, t->path, NULL, NULL,
                            CONNECT_MS);
    if (rv == 0)
        return 0;
    if (rv == HF_EBADREQ && *out != NULL)
        fprintf(stderr,
                "holdfast-bench %s: connection %u: %s refused the WebSocket "
                "handshake: HTTP %d %s\n",
                CMD, idx, t->url, hf_ws_http_status(*out),
                hf_ws_http_body(*out, NULL));
    else
        fprintf(stderr, "holdfast-bench %s: connection %u to %s: %s%s\n", CMD,
                idx, t->url, hf_err_name(rv),
                rv == HF_EUNAVAIL ? " (is nats-server running with a "
                                    "websocket listener there?)"
                                  : "");
    hf_ws_close(*out);
    *out = NULL;
    return rv;
}

/* Closes n connections together (wb_close_all). */
static void
close_all(struct nconn *k, size_t stride, uint32_t n, struct pollfd *pfds,
          uint32_t *pidx)
{
    hf_ws **v = calloc(n ? n : 1, sizeof(*v));

    if (v == NULL)
        return; /* the _free functions close them one by one */
    for (uint32_t i = 0; i < n; i++) {
        struct nconn *c = (struct nconn *)((char *)k + i * stride);
        v[i] = c->ws;
        c->ws = NULL;
    }
    wb_close_all(v, n, pfds, pidx);
    free(v);
}

/* ------------------------------------------------------------------ */
/* subscribers                                                         */

/* Its nconn first: close_all walks them by stride. */
struct nsub {
    struct nconn k;
    uint32_t subj;
    int state;
    uint64_t *last; /* per publisher: the highest seq received */
    uint64_t got, gaps, late;
    uint32_t bad_pub; /* the first anomaly, for the report */
    uint64_t bad_want, bad_got;
};

/* Touched only by its own thread until joined. */
struct nsubber {
    pthread_t thr;
    struct nrun *r;
    uint32_t first, n;
    struct nsub *subs;
    uint64_t *lastv; /* n * npubs, the subs' last[] */
    struct pollfd *pfds;
    uint32_t *pidx;
    struct nreader rd;
    uint64_t last_ns;
    struct hf_bench_lat lat;
    uint64_t deliveries, reported, stray, bad_payload, errs[HF_ECOUNT_];
    int connect_err, sub_err;
};

static void
on_sub_msg(void *arg, struct nconn *k, const struct nmsg *m)
{
    struct nsubber *w = arg;
    struct nsub *s = (struct nsub *)k;
    const struct name *sj = &w->r->subj[s->subj];
    const char *wd[4];
    size_t wl[4];
    uint64_t p, seq, ts, *last;

    switch (m->op) {
    case N_PONG:
        if (s->state != S_ASKED) {
            w->stray++;
            return;
        }
        s->state = S_ON;
        atomic_fetch_add_explicit(&w->r->subscribed, 1, memory_order_relaxed);
        return;
    case N_ERR: {
        int e = err_code(m->data, m->len);
        w->errs[-e]++;
        w->sub_err = e;
        return;
    }
    case N_MSG:
        break;
    default:
        return; /* INFO, +OK */
    }
    if (s->state != S_ON || m->sid != 1 || m->subj_len != sj->len ||
        memcmp(m->subj, sj->s, sj->len) != 0) {
        w->stray++;
        return;
    }
    if (split(m->data, m->len, wd, wl, 3) != 3 ||
        read_dec(wd[0], wl[0], &p) != 0 || p >= w->r->npubs ||
        read_dec(wd[1], wl[1], &seq) != 0 || read_dec(wd[2], wl[2], &ts) != 0) {
        w->bad_payload++;
        return;
    }
    w->deliveries++;
    s->got++;
    last = &s->last[p];
    if (seq == *last + 1) {
        *last = seq;
    } else if (seq > *last + 1) {
        if (s->gaps == 0 && s->late == 0)
            s->bad_pub = (uint32_t)p, s->bad_want = *last + 1, s->bad_got = seq;
        s->gaps += seq - *last - 1;
        *last = seq;
    } else {
        if (s->gaps == 0 && s->late == 0)
            s->bad_pub = (uint32_t)p, s->bad_want = *last + 1, s->bad_got = seq;
        s->late++;
        return;
    }
    hf_bench_lat_add(&w->lat, w->rd.now > ts ? w->rd.now - ts : 0);
}

static void
sub_drain(struct nsubber *w, struct nsub *s)
{
    if (nconn_drain(&s->k, &w->rd, on_sub_msg, w) != 0)
        s->state = S_DEAD;
    w->last_ns = w->rd.now;
}

/* One poll() over the live subscribers and a drain of those readable.
 * Returns how many are live. */
static uint32_t
sub_pass(struct nsubber *w, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < w->n; i++) {
        struct nsub *s = &w->subs[i];
        if (s->state == S_DEAD || s->k.ws == NULL)
            continue;
        w->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(s->k.ws), .events = POLLIN};
        w->pidx[np++] = i;
    }
    if (np == 0)
        return 0;
    if (poll(w->pfds, np, timeout) < 0 && errno != EINTR)
        return np;
    for (uint32_t j = 0; j < np; j++) {
        struct nsub *s = &w->subs[w->pidx[j]];
        if (w->pfds[j].revents != 0 || hf_ws_pending(s->k.ws))
            sub_drain(w, s);
    }
    return np;
}

/* Whether every live subscriber has every PUB sent to its subject. */
static int
caught_up(const struct nsubber *w)
{
    const struct nrun *r = w->r;

    for (uint32_t i = 0; i < w->n; i++) {
        const struct nsub *s = &w->subs[i];
        if (s->state != S_ON)
            continue;
        for (uint32_t p = 0; p < r->npubs; p++)
            if (s->last[p] < r->final[(size_t)p * r->nsubj + s->subj])
                return 0;
    }
    return 1;
}

static void *
nsubber_main(void *arg)
{
    struct nsubber *w = arg;
    struct nrun *r = w->r;
    uint64_t dl, serviced = hf_mono_ns();

    /* Connect, CONNECT + SUB + PING in one frame; the PONG confirms the
     * subscription. Those open are read now and then while the rest
     * connect, so that none leaves a server PING unanswered for long. */
    for (uint32_t i = 0; i < w->n; i++) {
        struct nsub *s = &w->subs[i];
        char tmp[CONN_CAP + NAME_CAP + 32];
        int len;
        uint64_t now;
        if (atomic_load(&r->failed) || atomic_load(&r->stop))
            goto out;
        if (dial(r->t, w->first + i, r->nsubs, &s->k.ws) != 0) {
            w->connect_err = 1;
            atomic_store(&r->failed, 1);
            goto out;
        }
        atomic_fetch_add(&r->connected, 1);
        len = snprintf(tmp, sizeof(tmp), "%sSUB %s 1\r\nPING\r\n", r->connect,
                       r->subj[s->subj].s);
        if (send_text(&s->k, tmp, (size_t)len) != 0)
            s->state = S_DEAD;
        else
            s->state = S_ASKED;
        if ((now = hf_mono_ns()) - serviced > SERVICE_NS) {
            sub_pass(w, 0);
            serviced = now;
        }
    }
    dl = hf_mono_ns() + (uint64_t)SUB_S * 1000000000u;
    for (;;) {
        uint32_t on = 0, dead = 0;
        for (uint32_t i = 0; i < w->n; i++) {
            on += w->subs[i].state == S_ON;
            dead += w->subs[i].state == S_DEAD;
        }
        if (on == w->n)
            break;
        if (dead > 0 || w->sub_err || hf_mono_ns() > dl ||
            atomic_load(&r->failed) || atomic_load(&r->stop)) {
            if (!w->sub_err)
                w->sub_err = dead > 0 ? HF_EUNAVAIL : HF_ETIMEOUT;
            atomic_store(&r->failed, 1);
            goto out;
        }
        sub_pass(w, POLL_MS);
    }
    atomic_fetch_add(&r->ready, 1);
    for (;;) {
        if (atomic_load(&r->stop))
            break;
        if (atomic_load(&r->final_known) && caught_up(w))
            break;
        if (sub_pass(w, POLL_MS) == 0)
            break;
        atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                                  memory_order_relaxed);
        w->reported = w->deliveries;
    }
    atomic_fetch_add_explicit(&r->delivered, w->deliveries - w->reported,
                              memory_order_relaxed);
    w->reported = w->deliveries;
out:
    close_all(&w->subs[0].k, sizeof(struct nsub), w->n, w->pfds, w->pidx);
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
nsubber_free(struct nsubber *w)
{
    if (w == NULL)
        return;
    for (uint32_t i = 0; w->subs && i < w->n; i++)
        nconn_free(&w->subs[i].k);
    free(w->subs);
    free(w->lastv);
    free(w->pfds);
    free(w->pidx);
    hf_buf_free(&w->rd.rx);
    free(w);
}

static struct nsubber *
nsubber_new(struct nrun *r, uint32_t first, uint32_t n)
{
    struct nsubber *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->r = r;
    w->first = first;
    w->n = n;
    w->subs = calloc(n, sizeof(*w->subs));
    w->lastv = calloc((size_t)n * r->npubs, sizeof(*w->lastv));
    w->pfds = calloc(n, sizeof(*w->pfds));
    w->pidx = calloc(n, sizeof(*w->pidx));
    if (!w->subs || !w->lastv || !w->pfds || !w->pidx) {
        nsubber_free(w);
        return NULL;
    }
    /* Subscriber i is on subject i mod A, as fanout.c spreads them. */
    for (uint32_t i = 0; i < n; i++) {
        w->subs[i].subj = (first + i) % r->nsubj;
        w->subs[i].last = &w->lastv[(size_t)i * r->npubs];
    }
    return w;
}

/* ------------------------------------------------------------------ */
/* publishers                                                          */

/* Its nconn first: close_all walks them by stride. */
struct npub {
    struct nconn k;
    uint64_t sent, acked; /* PUBs sent; covered by a PONG */
    uint64_t *ring;       /* per PING in flight: sent when it went out */
    uint32_t rhead, rn;
    uint64_t *seq; /* per subject: PUBs sent to it */
};

/* The publisher thread: touched only by it until joined. */
struct npubber {
    pthread_t thr;
    struct nrun *r;
    struct npub *pubs;
    uint32_t ring_cap;
    struct pollfd *pfds;
    uint32_t *pidx;
    struct nreader rd;
    hf_buf frame;
    uint64_t rng, t0, sent, claimed, acked, last_pong;
    uint64_t stray, errs[HF_ECOUNT_], errors;
    uint32_t dead;
    int stalled, connect_err;
};

static void
on_pub_msg(void *arg, struct nconn *k, const struct nmsg *m)
{
    struct npubber *c = arg;
    struct npub *pb = (struct npub *)k;

    if (m->op == N_ERR) {
        int e = err_code(m->data, m->len);
        c->errs[-e]++;
        c->errors++;
        return;
    }
    if (m->op != N_PONG) {
        if (m->op == N_MSG)
            c->stray++; /* a publisher subscribes to nothing */
        return;
    }
    if (pb->rn == 0) {
        c->stray++;
        return;
    }
    {
        uint64_t upto = pb->ring[pb->rhead];
        pb->rhead = (pb->rhead + 1) % c->ring_cap;
        pb->rn--;
        if (upto > pb->acked) {
            c->acked += upto - pb->acked;
            atomic_fetch_add_explicit(&c->r->published, upto - pb->acked,
                                      memory_order_relaxed);
            pb->acked = upto;
        }
        c->last_pong = c->rd.now;
    }
}

static void
ring_push(struct npubber *c, struct npub *pb)
{
    pb->ring[(pb->rhead + pb->rn) % c->ring_cap] = pb->sent;
    pb->rn++;
}

/* How many of want the rate allows now; lowers *timeout to the time of
 * the next allowed PUB when that is none (wsrun.c's pace). */
static uint64_t
pace(const struct npubber *c, uint64_t want, int *timeout)
{
    double rate = c->r->rate, due;
    uint64_t now, allowed;

    if (rate <= 0 || want == 0)
        return want;
    now = hf_mono_ns();
    allowed = (uint64_t)((double)(now - c->t0) / 1e9 * rate) + 1;
    if (allowed > c->sent)
        return allowed - c->sent < want ? allowed - c->sent : want;
    due = (double)(c->sent + 1) / rate * 1e9 - (double)(now - c->t0);
    if (due / 1e6 < *timeout)
        *timeout = due > 0 ? (int)(due / 1e6) + 1 : 0;
    return 0;
}

static uint64_t
claim(struct npubber *c, uint64_t want)
{
    const struct nrun *r = c->r;

    if (want == 0 || atomic_load_explicit(&c->r->pstop, memory_order_relaxed))
        return 0;
    if (r->total > 0 && r->total - c->claimed < want)
        want = r->total - c->claimed;
    c->claimed += want;
    return want;
}

static int
exhausted(const struct npubber *c)
{
    return atomic_load_explicit(&c->r->pstop, memory_order_relaxed) ||
           (c->r->total > 0 && c->claimed >= c->r->total);
}

/* Sends n PUBs from publisher p, in frames of at most FRAME_MSGS
 * messages (well under nats-server's limits: a PUB line is under PUB_CAP
 * bytes), each ending with the PING that will cover it. */
static int
publish(struct npubber *c, uint32_t p, uint64_t n)
{
    struct nrun *r = c->r;
    struct npub *pb = &c->pubs[p];

    while (n > 0) {
        uint64_t now = hf_mono_ns(), m = 0;
        c->frame.len = 0;
        while (m < n && m < FRAME_MSGS) {
            char tmp[PUB_CAP], pl[64];
            uint32_t a =
                r->nsubj == 1 ? 0 : (uint32_t)(wb_rnd(&c->rng) % r->nsubj);
            int pn = snprintf(pl, sizeof(pl), "%u %" PRIu64 " %" PRIu64, p,
                              ++pb->seq[a], now);
            int tn = snprintf(tmp, sizeof(tmp), "PUB %s %d\r\n%s\r\n",
                              r->subj[a].s, pn, pl);
            if (hf_buf_append(&c->frame, tmp, (size_t)tn) != 0)
                return HF_EINTERNAL;
            m++;
        }
        if (hf_buf_append(&c->frame, "PING\r\n", 6) != 0)
            return HF_EINTERNAL;
        pb->sent += m;
        c->sent += m;
        ring_push(c, pb);
        if (send_text(&pb->k, c->frame.data, c->frame.len) != 0)
            return pb->k.err;
        n -= m;
    }
    return 0;
}

static void
pub_dead(struct npubber *c, struct npub *pb, int err)
{
    if (!pb->k.dead)
        conn_dead(&pb->k, err, 0);
    c->dead++;
}

static void
pub_drain(struct npubber *c, struct npub *pb)
{
    if (nconn_drain(&pb->k, &c->rd, on_pub_msg, c) != 0)
        c->dead++;
}

/* One poll() over the live publishers (the first upto), draining those
 * readable. Returns how many are live. */
static uint32_t
pub_poll(struct npubber *c, uint32_t upto, int timeout)
{
    uint32_t np = 0;

    for (uint32_t i = 0; i < upto; i++) {
        if (c->pubs[i].k.dead)
            continue;
        c->pfds[np] =
            (struct pollfd){.fd = hf_ws_fd(c->pubs[i].k.ws), .events = POLLIN};
        c->pidx[np++] = i;
    }
    if (np == 0)
        return 0;
    if (poll(c->pfds, np, timeout) < 0 && errno != EINTR)
        return np;
    for (uint32_t j = 0; j < np; j++) {
        struct npub *pb = &c->pubs[c->pidx[j]];
        if (c->pfds[j].revents != 0 || hf_ws_pending(pb->k.ws))
            pub_drain(c, pb);
    }
    return np;
}

static void
pub_loop(struct npubber *c)
{
    struct nrun *r = c->r;
    uint64_t last = hf_mono_ns();

    for (;;) {
        uint64_t before = c->acked, inflight = 0, now;
        int timeout = POLL_MS;

        for (uint32_t i = 0; i < r->npubs; i++) {
            struct npub *pb = &c->pubs[i];
            uint64_t room, frames, want;
            int rv;
            if (pb->k.dead)
                continue;
            /* The window, and room in the ring for the PINGs: one per
             * FRAME_MSGS PUBs at most. */
            room = r->window - (pb->sent - pb->acked);
            frames = c->ring_cap - pb->rn;
            if (room > frames * FRAME_MSGS)
                room = frames * FRAME_MSGS;
            want = claim(c, pace(c, room, &timeout));
            if (want > 0 && (rv = publish(c, i, want)) != 0)
                pub_dead(c, pb, rv);
            if (!pb->k.dead)
                inflight += pb->rn;
        }
        if (inflight == 0 && exhausted(c))
            break;
        if (pub_poll(c, r->npubs, timeout) == 0)
            break;
        now = hf_mono_ns();
        if (c->acked > before || inflight == 0) {
            last = now; /* progress, or paced: not a stall */
        } else if (now - last > (uint64_t)STALL_S * 1000000000u) {
            c->stalled = 1;
            break;
        }
    }
}

static void *
npubber_main(void *arg)
{
    struct npubber *c = arg;
    struct nrun *r = c->r;
    uint64_t dl;

    for (uint32_t i = 0; i < r->npubs; i++) {
        struct npub *pb = &c->pubs[i];
        char tmp[CONN_CAP + 16];
        int len;
        if (atomic_load(&r->pstop) || atomic_load(&r->pfailed))
            goto out;
        if (dial(r->t, r->nsubs + i, r->nsubs + r->npubs, &pb->k.ws) != 0) {
            c->connect_err = 1;
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        len = snprintf(tmp, sizeof(tmp), "%sPING\r\n", r->connect);
        ring_push(c, pb); /* a PING covering no PUB: the handshake */
        if (send_text(&pb->k, tmp, (size_t)len) != 0) {
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        pub_poll(c, i + 1, 0);
    }
    /* Ready when every CONNECT has its PONG: the server took it. */
    dl = hf_mono_ns() + (uint64_t)CONNECT_MS * 1000000u;
    for (;;) {
        uint32_t waiting = 0, dead = 0;
        for (uint32_t i = 0; i < r->npubs; i++) {
            waiting += c->pubs[i].rn > 0;
            dead += c->pubs[i].k.dead;
        }
        if (waiting == 0)
            break;
        if (dead > 0 || c->errors > 0 || hf_mono_ns() > dl ||
            atomic_load(&r->pstop)) {
            atomic_store(&r->pfailed, 1);
            goto out;
        }
        pub_poll(c, r->npubs, POLL_MS);
    }
    atomic_store(&r->pready, 1);
    while (!atomic_load(&r->go)) {
        if (atomic_load(&r->pstop))
            goto out;
        pub_poll(c, r->npubs, 1);
    }
    c->t0 = c->last_pong = hf_mono_ns();
    pub_loop(c);
out:
    close_all(&c->pubs[0].k, sizeof(struct npub), r->npubs, c->pfds, c->pidx);
    atomic_store(&r->pfinished, 1);
    return NULL;
}

static void
npubber_free(struct npubber *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->pubs && i < c->r->npubs; i++) {
        nconn_free(&c->pubs[i].k);
        free(c->pubs[i].ring);
        free(c->pubs[i].seq);
    }
    free(c->pubs);
    free(c->pfds);
    free(c->pidx);
    hf_buf_free(&c->rd.rx);
    hf_buf_free(&c->frame);
    free(c);
}

static struct npubber *
npubber_new(struct nrun *r)
{
    struct npubber *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->r = r;
    c->rng = hf_mono_ns() | 1;
    c->ring_cap = r->window < RING_MAX ? r->window + 1 : RING_MAX;
    c->pubs = calloc(r->npubs, sizeof(*c->pubs));
    c->pfds = calloc(r->npubs, sizeof(*c->pfds));
    c->pidx = calloc(r->npubs, sizeof(*c->pidx));
    if (!c->pubs || !c->pfds || !c->pidx)
        goto fail;
    for (uint32_t i = 0; i < r->npubs; i++) {
        c->pubs[i].ring = calloc(c->ring_cap, sizeof(uint64_t));
        c->pubs[i].seq = calloc(r->nsubj, sizeof(uint64_t));
        if (!c->pubs[i].ring || !c->pubs[i].seq)
            goto fail;
    }
    return c;
fail:
    npubber_free(c);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the verdict                                                         */

struct ntotal {
    struct hf_bench_lat *lat;
    uint64_t deliveries, expected, lost, reordered, stray, bad_payload,
        malformed, errors, errs[HF_ECOUNT_], dead, last_ns;
};

static void
judge(const struct nrun *r, struct nsubber **sw, int n, struct ntotal *nt)
{
    uint64_t shown = 0;

    for (int i = 0; i < n; i++) {
        const struct nsubber *w = sw[i];
        hf_bench_lat_merge(nt->lat, &w->lat);
        nt->deliveries += w->deliveries;
        nt->stray += w->stray;
        nt->bad_payload += w->bad_payload;
        nt->malformed += w->rd.malformed;
        for (int e = 1; e < HF_ECOUNT_; e++) {
            nt->errs[e] += w->errs[e];
            nt->errors += w->errs[e];
        }
        if (w->last_ns > nt->last_ns)
            nt->last_ns = w->last_ns;
        for (uint32_t j = 0; j < w->n; j++) {
            const struct nsub *s = &w->subs[j];
            const char *subj = r->subj[s->subj].s;
            uint64_t tail = 0;
            for (uint32_t p = 0; p < r->npubs; p++) {
                uint64_t fin = r->final[(size_t)p * r->nsubj + s->subj];
                nt->expected += fin;
                tail += s->last[p] < fin ? fin - s->last[p] : 0;
            }
            nt->lost += s->gaps + tail;
            nt->reordered += s->late;
            if (s->state == S_DEAD && shown++ < SHOW) {
                if (s->k.close_code)
                    printf("verify: FAIL (subscriber %u of %s closed by the "
                           "server with %d after %" PRIu64 " messages)\n",
                           w->first + j, subj, s->k.close_code, s->got);
                else
                    printf("verify: FAIL (subscriber %u of %s lost its "
                           "connection after %" PRIu64 " messages: %s)\n",
                           w->first + j, subj, s->got, hf_err_name(s->k.err));
            }
            nt->dead += s->state == S_DEAD;
            if (s->gaps + s->late > 0 && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: from publisher %u "
                       "expected seq %" PRIu64 ", got %" PRIu64
                       " first; %" PRIu64 " missing, %" PRIu64
                       " late or repeated)\n",
                       w->first + j, subj, s->bad_pub, s->bad_want, s->bad_got,
                       s->gaps, s->late);
            if (tail > 0 && s->state != S_DEAD && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: %" PRIu64
                       " messages never came)\n",
                       w->first + j, subj, tail);
        }
    }
    if (shown > SHOW)
        printf("verify: FAIL (%" PRIu64 " subscriber problems in all)\n",
               shown);
}

static void
progress(const struct nrun *r, uint64_t t0, uint64_t now, uint64_t *pub0,
         uint64_t *del0, uint64_t *ns0)
{
    uint64_t pub = atomic_load(&r->published), del = atomic_load(&r->delivered);
    double dt = (double)(now - *ns0) / 1e9;

    hf_bench_progress("%s: %5.1fs published %9" PRIu64 " %8.0f/s  delivered "
                      "%11" PRIu64 " %10.0f/s",
                      CMD, (double)(now - t0) / 1e9, pub,
                      dt > 0 ? (double)(pub - *pub0) / dt : 0.0, del,
                      dt > 0 ? (double)(del - *del0) / dt : 0.0);
    *pub0 = pub;
    *del0 = del;
    *ns0 = now;
}

/* The CONNECT line: no +OK per message, no echo, no headers. A token
 * (--token) goes in auth_token; it must need no JSON escaping. */
static int
make_connect(struct nrun *r, const char *token)
{
    int n;

    if (token != NULL && token[strcspn(token, "\"\\\r\n")] != '\0') {
        fprintf(stderr,
                "holdfast-bench %s: --token may not hold quotes, "
                "backslashes or line breaks\n",
                CMD);
        return HF_BENCH_USAGE;
    }
    n = snprintf(r->connect, sizeof(r->connect),
                 "CONNECT {\"verbose\":false,\"pedantic\":false,"
                 "\"tls_required\":false,\"name\":\"holdfast-bench\","
                 "\"lang\":\"c\",\"version\":\"%s\",\"protocol\":1,"
                 "\"echo\":false,\"headers\":false,\"no_responders\":false"
                 "%s%s%s}\r\n",
                 HF_VERSION, token ? ",\"auth_token\":\"" : "",
                 token ? token : "", token ? "\"" : "");
    if (n < 0 || (size_t)n >= sizeof(r->connect)) {
        fprintf(stderr, "holdfast-bench %s: --token too long\n", CMD);
        return HF_BENCH_USAGE;
    }
    r->connect_len = (size_t)n;
    return 0;
}

/* Subjects fan.<a>.<tag>, tag new for every run. */
static struct name *
make_subjects(uint32_t n, char *tag, size_t tagsize)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t x = hf_mono_ns() ^ ((uint64_t)time(NULL) << 20) ^
                 ((uint64_t)getpid() << 40);
    struct name *v = calloc(n, sizeof(*v));

    if (v == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < tagsize && i < 8; i++, x /= 36) {
        tag[i] = digits[x % 36];
        tag[i + 1] = '\0';
    }
    for (uint32_t i = 0; i < n; i++)
        v[i].len =
            (size_t)snprintf(v[i].s, sizeof(v[i].s), "fan.%u.%s", i, tag);
    return v;
}

/* Runs the fanout workload against nats-server at t (see the notes at
 * the top). Called by fanout.c for --peer nats, on the main thread, with
 * the flags parsed. Returns the exit status; res is always filled. */
int
hf_bench_nats_fanout(const struct wopts *o, const struct target *t,
                     int durability, struct hf_bench_result *res)
{
    uint32_t nsubj = (uint32_t)o->actors, nsubs = (uint32_t)o->subscribers,
             npubs = (uint32_t)o->publishers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    struct nrun r = {.t = t,
                     .nsubj = nsubj,
                     .nsubs = nsubs,
                     .npubs = npubs,
                     .window = (uint32_t)o->window,
                     .rate = o->rate,
                     .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct nsubber **sw = NULL;
    struct npubber *pc = NULL;
    struct ntotal nt = {0};
    struct name *subj = NULL;
    uint64_t t0 = 0, tpub = 0, next, drain_dl = 0, pub0 = 0, del0 = 0, ns0;
    char tag[16];
    int sstarted = 0, pstarted = 0, pjoined = 0, ok, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = FANOUT;
    res->actors = o->actors;
    res->durability = HF_DURABLE_NONE; /* NATS core keeps nothing */
    res->clients = res->subscribers = (int)o->subscribers;
    res->publishers = (int)o->publishers;
    res->window = (int)o->window;
    res->url = t->url;
    if (o->msgpack) {
        fprintf(stderr,
                "holdfast-bench %s: --msgpack is holdfast's; NATS "
                "speaks its own text protocol\n",
                CMD);
        return HF_BENCH_USAGE;
    }
    if ((rv = make_connect(&r, o->token)) != 0)
        return rv;
    rv = HF_BENCH_FAIL;
    if ((subj = make_subjects(nsubj, tag, sizeof(tag))) == NULL)
        return HF_BENCH_FAIL;
    r.subj = subj;
    r.final = calloc((size_t)npubs * nsubj, sizeof(*r.final));
    sw = calloc((size_t)nthreads, sizeof(*sw));
    if ((nt.lat = calloc(1, sizeof(*nt.lat))) == NULL || r.final == NULL ||
        sw == NULL)
        goto out;
    printf("%s: %u subscribers over %d threads, %u publishers (window %u, ",
           CMD, nsubs, nthreads, npubs, r.window);
    if (o->rate > 0)
        printf("%.0f PUBs/s in all", o->rate);
    else
        printf("as fast as the window allows");
    printf(") to nats-server at %s, %u subjects fan.<i>.%s, ", t->url, nsubj,
           tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld publishes\n", o->ops);
    if (durability == HF_DURABLE_SYNC)
        printf("note: --durability sync ignored: NATS core pub/sub keeps "
               "nothing on disk (the row says none)\n");
    fflush(stdout);

    /* Subscribers first, every subscription confirmed. */
    for (uint32_t i = 0, first = 0; i < (uint32_t)nthreads; i++) {
        uint32_t n =
            nsubs / (uint32_t)nthreads + (i < nsubs % (uint32_t)nthreads);
        if ((sw[i] = nsubber_new(&r, first, n)) == NULL)
            goto out;
        first += n;
    }
    for (; sstarted < nthreads; sstarted++)
        if (pthread_create(&sw[sstarted]->thr, NULL, nsubber_main,
                           sw[sstarted]) != 0)
            break;
    next = hf_mono_ns() + 1000000000u;
    while (atomic_load(&r.ready) < sstarted && sstarted == nthreads &&
           !atomic_load(&r.failed) && !wb_interrupted) {
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u, subscribed "
                              "%" PRIu64,
                              CMD, (uint64_t)atomic_load(&r.connected), nsubs,
                              (uint64_t)atomic_load(&r.subscribed));
            next += 1000000000u;
        }
    }
    if (atomic_load(&r.ready) < nthreads) {
        int err = 0;
        atomic_store(&r.stop, 1);
        for (int i = 0; i < sstarted; i++)
            pthread_join(sw[i]->thr, NULL);
        sstarted = 0;
        for (int i = 0; i < nthreads; i++)
            if (sw[i] && sw[i]->sub_err)
                err = sw[i]->sub_err;
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect and subscribe every subscriber "
               "(%" PRIu64 " connected, %" PRIu64 " subscribed%s%s)%s\n",
               CMD, (uint64_t)atomic_load(&r.connected),
               (uint64_t)atomic_load(&r.subscribed), err ? ": " : "",
               err ? hf_err_name(err) : "",
               wb_interrupted ? " (interrupted)" : "");
        goto out;
    }

    /* Then the publishers, on one thread. */
    if ((pc = npubber_new(&r)) == NULL)
        goto out;
    if (pthread_create(&pc->thr, NULL, npubber_main, pc) != 0)
        goto out;
    pstarted = 1;
    while (!atomic_load(&r.pready) && !atomic_load(&r.pfinished) &&
           !wb_interrupted)
        wb_sleep_ms(5);
    if (!atomic_load(&r.pready)) {
        atomic_store(&r.pstop, 1);
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect the publishers\n", CMD);
        goto out;
    }
    t0 = ns0 = hf_mono_ns();
    next = t0 + 1000000000u;
    atomic_store(&r.go, 1);
    for (;;) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r.pstop, 1);
        if (!pjoined && atomic_load(&r.pfinished)) {
            /* Every PUB is covered by a PONG (or its connection is
             * gone): what each publisher sent to each subject is what
             * the subscribers must reach. */
            pthread_join(pc->thr, NULL);
            pjoined = 1;
            tpub = pc->last_pong;
            for (uint32_t p = 0; p < npubs; p++)
                memcpy(&r.final[(size_t)p * nsubj], pc->pubs[p].seq,
                       nsubj * sizeof(uint64_t));
            atomic_store(&r.final_known, 1);
            drain_dl = hf_mono_ns() + (uint64_t)DRAIN_S * 1000000000u;
        }
        if (pjoined && atomic_load(&r.finished) == sstarted)
            break;
        /* Even after Ctrl-C the subscribers get DRAIN_S to catch up. */
        if (pjoined && now > drain_dl)
            atomic_store(&r.stop, 1);
        if (now >= next) {
            progress(&r, t0, now, &pub0, &del0, &ns0);
            next += 1000000000u;
        }
    }
    for (int i = 0; i < sstarted; i++)
        pthread_join(sw[i]->thr, NULL);
    sstarted = 0;
    progress(&r, t0, hf_mono_ns(), &pub0, &del0, &ns0);
    hf_bench_progress_end();
    judge(&r, sw, nthreads, &nt);

    res->ops = res->ok_ops = nt.deliveries;
    res->seconds = (double)((nt.last_ns > tpub ? nt.last_ns : tpub) - t0) / 1e9;
    res->published = pc->acked;
    res->publish_per_sec =
        tpub > t0 ? (double)pc->acked / ((double)(tpub - t0) / 1e9) : 0;
    res->errors = pc->errors + nt.errors;
    for (int e = 1; e < HF_ECOUNT_; e++)
        res->errs[e] = pc->errs[e] + nt.errs[e];
    res->lost = nt.lost;
    res->reordered = nt.reordered;
    {
        struct hf_bench_mark none = {0};
        hf_bench_result_fill(res, nt.lat, &none, &none);
    }

    /* The verdict. */
    ok = nt.lost == 0 && nt.reordered == 0 && nt.dead == 0;
    if (nt.stray || nt.malformed || nt.bad_payload) {
        printf("verify: FAIL (subscribers: %" PRIu64 " stray messages, %" PRIu64
               " with an unreadable payload, %" PRIu64 " broken streams)\n",
               nt.stray, nt.bad_payload, nt.malformed);
        ok = 0;
    }
    if (res->errors > 0) {
        printf("verify: FAIL (%" PRIu64 " -ERR from nats-server)\n",
               res->errors);
        ok = 0;
    }
    if (pc->stalled) {
        printf("verify: FAIL (PINGs in flight and no PONG for %d s)\n",
               STALL_S);
        ok = 0;
    }
    if (pc->dead > 0) {
        uint64_t unacked = 0;
        for (uint32_t p = 0; p < npubs; p++) {
            const struct npub *pb = &pc->pubs[p];
            unacked += pb->sent - pb->acked;
            if (!pb->k.dead || p >= SHOW)
                continue;
            if (pb->k.close_code)
                printf("verify: FAIL (publisher %u closed by the server with "
                       "%d)\n",
                       p, pb->k.close_code);
            else
                printf("verify: FAIL (publisher %u lost its connection: "
                       "%s)\n",
                       p, hf_err_name(pb->k.err));
        }
        printf("verify: FAIL (%u publisher connections lost, %" PRIu64
               " PUBs not covered by a PONG)\n",
               pc->dead, unacked);
        ok = 0;
    }
    if (pc->stray || pc->rd.malformed) {
        printf("verify: FAIL (publishers: %" PRIu64 " stray messages, %" PRIu64
               " broken streams)\n",
               pc->stray, pc->rd.malformed);
        ok = 0;
    }
    res->verified = ok;
    printf("%s: %" PRIu64 " messages published, %" PRIu64
           " deliveries expected, %" PRIu64 " received; lost %" PRIu64
           ", reordered or repeated %" PRIu64 "\n",
           CMD, pc->acked, nt.expected, nt.deliveries, nt.lost, nt.reordered);
    if (ok)
        printf("verify: OK (every subscriber got every message of its "
               "subject once, in order per publisher; %" PRIu64
               " PUBs, all covered by a PONG)\n",
               pc->acked);
    else
        printf("verify: FAIL [%s]\n", CMD);
    printf("note: published = PUBs answered by a PONG (the server took "
           "them); NATS core persists nothing, holdfast's publishes are "
           "calls committed with its --durability\n");
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    if (rv != HF_BENCH_OK) {
        atomic_store(&r.pstop, 1);
        atomic_store(&r.stop, 1);
    }
    if (pstarted && !pjoined)
        pthread_join(pc->thr, NULL);
    for (int i = 0; i < sstarted; i++)
        pthread_join(sw[i]->thr, NULL);
    npubber_free(pc);
    for (int i = 0; sw && i < nthreads; i++)
        nsubber_free(sw[i]);
    free(sw);
    free(nt.lat);
    free(r.final);
    free(subj);
    return rv;
}
