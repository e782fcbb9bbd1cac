/*
 * wsconn.c - the connections of holdfast-bench's scenarios against a
 * running server (see ws.h): dialing, closing many at once, building and
 * sending frames, one poll() pass over many clients, naming the run's
 * actors and reading the server's /metrics; and the small helpers every
 * remote scenario shares (Ctrl-C, sleeping, a PRNG, the core count).
 *
 * Design notes
 * ------------
 * Sources. Connections spread over 127.0.0.x source addresses when there
 * are more than PER_SOURCE of them and the server is on IPv4 loopback, so
 * the ephemeral ports of one source never run out (wb_connect: every
 * dialer of bench/ goes through it).
 *
 * Closing many. hf_ws_close alone waits up to 250 ms for each goodbye in
 * turn; wb_close_all sends every close frame first and awaits the goodbyes
 * with one poll() over all of them.
 *
 * Threads: a connection is touched by the one thread that owns it; these
 * functions keep no state of their own, except wb_interrupted, written by
 * the SIGINT handler and read by any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "client/wsclient.h"

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

uint64_t
wb_pace(double rate, uint64_t t0, uint64_t sent, uint64_t want, int *timeout)
{
    double due;
    uint64_t now, allowed;

    if (rate <= 0 || want == 0)
        return want;
    now = hf_mono_ns();
    allowed = (uint64_t)((double)(now - t0) / 1e9 * rate) + 1;
    if (allowed > sent)
        return allowed - sent < want ? allowed - sent : want;
    due = (double)(sent + 1) / rate * 1e9 - (double)(now - t0);
    if (due / 1e6 < *timeout)
        *timeout = due > 0 ? (int)(due / 1e6) + 1 : 0;
    return 0;
}

int
wb_ncores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int
wb_connect(const struct target *t, uint32_t idx, uint32_t total, int bare,
           hf_ws **out)
{
    char src[32];
    const char *sp = NULL;

    if (t->loopback && total > PER_SOURCE) {
        uint32_t nsrc = (total + PER_SOURCE - 1) / PER_SOURCE;
        snprintf(src, sizeof(src), "127.0.0.%u", 1 + idx % nsrc);
        sp = src;
    }
    if (bare)
        return hf_ws_connect_tls(out, sp, t->host, t->port, t->tls, t->path,
                                 NULL, NULL, CONNECT_MS);
    return hf_ws_connect_tls(out, sp, t->host, t->port, t->tls, t->path,
                             t->msgpack ? "holdfast.v1.msgpack"
                                        : "holdfast.v1.json",
                             t->headers[0] ? t->headers : NULL, CONNECT_MS);
}

void
wb_dial_failed(const char *cmd, const struct target *t, uint32_t idx, int rv,
               const char *hint, hf_ws **out)
{
    if (rv == HF_EBADREQ && *out != NULL)
        fprintf(stderr,
                "holdfast-bench %s: connection %u: %s refused the "
                "WebSocket handshake: HTTP %d %s\n",
                cmd, idx, t->url, hf_ws_http_status(*out),
                hf_ws_http_body(*out, NULL));
    else
        fprintf(stderr, "holdfast-bench %s: connection %u to %s: %s%s\n", cmd,
                idx, t->url, hf_err_name(rv), rv == HF_EUNAVAIL ? hint : "");
    hf_ws_close(*out);
    *out = NULL;
}

int
wb_dial(const char *cmd, const struct target *t, uint32_t idx, uint32_t total,
        hf_ws **out)
{
    int rv = wb_connect(t, idx, total, 0, out);

    if (rv != 0)
        wb_dial_failed(cmd, t, idx, rv, " (is the server running?)", out);
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

const char *
wb_metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return p + n + 1;
        if ((p = strchr(p, '\n')) != NULL)
            p++;
    }
    return NULL;
}

static uint64_t
metric(const char *text, const char *name)
{
    const char *v = wb_metric(text, name);

    return v != NULL ? strtoull(v, NULL, 10) : 0;
}

void
wb_scrape(const struct target *t, struct srv *s)
{
    hf_buf body = {0};
    int status = 0;

    memset(s, 0, sizeof(*s));
    s->m.ns = hf_mono_ns();
    if (hf_http_request_tls(t->host, t->port, t->tls, "GET", "/metrics", NULL,
                            NULL, 0, 5000, &status, &body) != 0 ||
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
