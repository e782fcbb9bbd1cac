/*
 * natsconn.c - the NATS text protocol (INFO, CONNECT, PING/PONG, SUB, PUB,
 * MSG, +OK/-ERR) over one WebSocket, in binary frames, for holdfast-bench
 * fanout --peer nats (see nats.c, nats.h).
 *
 * Design notes
 * ------------
 * nats-server may cut the stream anywhere between frames, so every
 * connection keeps the unparsed tail of its stream (struct nconn) and a
 * MSG is handed on only when its payload is whole. PINGs are answered
 * here; every other message goes to the caller's callback, its pointers
 * valid during the callback only. -ERR texts become the harness's error
 * codes for the errors line under the table.
 *
 * Threads: an nconn and an nreader belong to one thread; the tables here
 * are const.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench/nats.h"
#include "core/env.h"
#include "core/err.h"

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

int
wb_nats_err(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(nats_errs) / sizeof(nats_errs[0]); i++)
        if (memmem(s, n, nats_errs[i].text, strlen(nats_errs[i].text)))
            return nats_errs[i].err;
    return HF_EBADREQ;
}

int
wb_nats_dec(const char *p, size_t n, uint64_t *out)
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
int
wb_nats_split(const char *p, size_t n, const char **w, size_t *wl, int max)
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

void
wb_nats_dead(struct nconn *k, int err, int code)
{
    if (k->dead)
        return;
    k->dead = 1;
    k->err = err;
    k->close_code = code;
}

int
wb_nats_send(struct nconn *k, const void *p, size_t n)
{
    int rv = hf_ws_send(k->ws, HF_WS_BINARY, p, n);

    if (rv != 0)
        wb_nats_dead(k, rv, 0);
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
            nw = wb_nats_split(line + vl, ll - vl, w, wl, 4);
            if (nw < 3 || nw > 4 || wb_nats_dec(w[1], wl[1], &m.sid) != 0 ||
                wb_nats_dec(w[nw - 1], wl[nw - 1], &body) != 0 ||
                body > BODY_MAX)
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
            if (wb_nats_send(k, "PONG\r\n", 6) != 0)
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
int
wb_nats_drain(struct nconn *k, struct nreader *rd, nmsg_fn fn, void *arg)
{
    int op, rv, code;

    do {
        long used;
        code = 0;
        rv = hf_ws_recv(k->ws, 0, &op, &rd->rx, &code);
        if (rv == HF_ETIMEOUT)
            return 0;
        if (rv != 0 || op == HF_WS_CLOSE) {
            wb_nats_dead(k, rv, rv != 0 ? 0 : code);
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
            wb_nats_dead(k, HF_EBADREQ, 0);
            return -1;
        }
        if (k->dead)
            return -1;
    } while (hf_ws_pending(k->ws));
    return 0;
}

void
wb_nats_free(struct nconn *k)
{
    hf_ws_close(k->ws);
    k->ws = NULL;
    hf_buf_free(&k->acc);
}

/* Opens connection idx of total, offering no subprotocol, saying why on
 * stderr when it fails. Spreads over 127.0.0.x as wb_dial does. */
int
wb_nats_dial(const struct target *t, uint32_t idx, uint32_t total, hf_ws **out)
{
    int rv = wb_connect(t, idx, total, 1, out);

    if (rv != 0)
        wb_dial_failed(CMD, t, idx, rv,
                       " (is nats-server running with a websocket listener "
                       "there?)",
                       out);
    return rv;
}

/* Closes n connections together (wb_close_all). */
void
wb_nats_close_all(struct nconn *k, size_t stride, uint32_t n,
                  struct pollfd *pfds, uint32_t *pidx)
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
