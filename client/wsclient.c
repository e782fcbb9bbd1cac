/*
 * wsclient.c - see wsclient.h.
 *
 * Design notes. Everything runs on one non-blocking socket driven by
 * poll() against an absolute deadline (monotonic ns; UINT64_MAX is
 * "never"), so a timeout bounds a whole call however many reads it takes.
 * Received bytes accumulate in one input buffer (struct stream): parsers
 * look at in.data[pos..len) and consume by advancing pos, and only a
 * refill may move the buffer - so a pointer into it is valid until the
 * next refill, which is why a frame is handled completely (payload copied
 * out, pong sent) before reading on.
 *
 * Nothing received is trusted: a frame header is validated before waiting
 * for its payload (so a header announcing 2^62 bytes fails at once instead
 * of buffering), a reassembled message is bounded by HF_WS_MAX_MESSAGE,
 * and HTTP heads and bodies by HF_HTTP_MAX_HEAD / HF_HTTP_MAX_BODY.
 *
 * Sending is the opposite: raw on purpose. Whatever opcode, FIN bit,
 * payload or announced length the caller asks for goes out, so tests can
 * exercise the server's checks. Only the masking is always right (a
 * server must reject unmasked frames - hf_ws_send_raw is the way around).
 *
 * The socket and its buffer are wsio.c, HTTP replies wshttp.c (shared
 * through wsc_int.h); SHA-1 and base64 for the handshake are OpenSSL's.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/err.h"
#include "client/wsclient.h"
#include "client/wsc_int.h"
#include "client/wstls.h"

#define WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CLOSE_WAIT_MS 250

/* ---- WebSocket ----------------------------------------------------------- */

struct hf_ws {
    struct stream s;
    int status;     /* handshake reply status */
    char *proto;    /* the chosen subprotocol, or NULL */
    hf_buf body;    /* body of a rejected handshake */
    int dead;       /* no more frames: failed, or a close was received */
    int close_sent; /* a close frame went out */
    int msg_op;     /* opcode of the message being reassembled, 0: none */
    hf_buf msg;     /* its payload so far */
    hf_buf out;     /* the frame being sent */
    uint64_t rng;   /* splitmix64 state for masking keys */
};

/* splitmix64: masking keys need to be unpredictable to intermediaries, not
 * cryptographic (the seed is). */
static uint64_t
next_rand(hf_ws *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int
send_frame(hf_ws *c, int b0, size_t announced, const void *data, size_t len,
           uint64_t dl)
{
    unsigned char *p, key[4];
    const unsigned char *d = data;
    size_t hl;
    int rv;

    if (c->dead || c->s.fd < 0)
        return HF_EUNAVAIL;
    c->out.len = 0;
    if (hf_buf_reserve(&c->out, 14 + len) != 0)
        return HF_EINTERNAL;
    p = (unsigned char *)c->out.data;
    p[0] = (unsigned char)b0;
    if (announced < 126) {
        p[1] = (unsigned char)(0x80 | announced);
        hl = 2;
    } else if (announced <= 0xffff) {
        p[1] = 0x80 | 126;
        p[2] = (unsigned char)(announced >> 8);
        p[3] = (unsigned char)announced;
        hl = 4;
    } else {
        p[1] = 0x80 | 127;
        hf_put_be64(p + 2, (uint64_t)announced);
        hl = 10;
    }
    hf_put_be32(key, (uint32_t)next_rand(c));
    memcpy(p + hl, key, 4);
    hl += 4;
    for (size_t i = 0; i < len; i++)
        p[hl + i] = d[i] ^ key[i & 3];
    c->out.len = hl + len;
    /* A failed write leaves the client usable for hf_ws_recv: the server
     * may have said why it hung up in a close frame still to be read. */
    if ((rv = wsc_write_all(&c->s, c->out.data, c->out.len, dl)) != 0)
        return rv;
    if ((b0 & 0x0f) == HF_WS_CLOSE)
        c->close_sent = 1;
    return 0;
}

int
hf_ws_send_frame(hf_ws *c, int fin, int opcode, const void *data, size_t len)
{
    if (c == NULL)
        return HF_EUNAVAIL;
    return send_frame(c, (fin ? 0x80 : 0) | (opcode & 0x0f), len, data, len,
                      wsc_deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

int
hf_ws_send(hf_ws *c, int opcode, const void *data, size_t len)
{
    return hf_ws_send_frame(c, 1, opcode, data, len);
}

int
hf_ws_send_partial(hf_ws *c, int opcode, size_t announced, const void *data,
                   size_t len)
{
    if (c == NULL)
        return HF_EUNAVAIL;
    if (len > announced)
        return HF_EBADREQ;
    return send_frame(c, 0x80 | (opcode & 0x0f), announced, data, len,
                      wsc_deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

int
hf_ws_send_raw(hf_ws *c, const void *data, size_t len)
{
    if (c == NULL || c->dead)
        return HF_EUNAVAIL;
    return wsc_write_all(&c->s, data, len, wsc_deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

static int
close_frame(hf_ws *c, int code, const char *reason, uint64_t dl)
{
    unsigned char p[125];
    size_t rlen = reason != NULL ? strlen(reason) : 0;

    if (rlen > sizeof p - 2)
        rlen = sizeof p - 2;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    if (rlen > 0)
        memcpy(p + 2, reason, rlen);
    /* 1005 "no status" must not be sent: answer such a close empty. */
    return send_frame(c, 0x80 | HF_WS_CLOSE, code == 1005 ? 0 : rlen + 2, p,
                      code == 1005 ? 0 : rlen + 2, dl);
}

int
hf_ws_send_close(hf_ws *c, int code, const char *reason)
{
    if (c == NULL)
        return HF_EUNAVAIL;
    return close_frame(c, code, reason, wsc_deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

/* The server broke the protocol (err HF_EBADREQ) or sent too much
 * (HF_ETOOLARGE): say so in a close frame, best effort, and stop. */
static int
fail(hf_ws *c, int err)
{
    if (!c->close_sent)
        close_frame(c, err == HF_ETOOLARGE ? 1009 : 1002, NULL,
                    wsc_deadline_in(CLOSE_WAIT_MS));
    c->dead = 1;
    c->msg_op = 0;
    c->msg.len = 0;
    return err;
}

/* Hands the finished message to the caller: swapping buffers gives the
 * caller ours without a copy and recycles theirs. */
static int
deliver(hf_ws *c, hf_buf *buf)
{
    hf_buf t;

    if (wsc_nul_terminate(&c->msg) != 0)
        return HF_EINTERNAL;
    t = *buf;
    *buf = c->msg;
    c->msg = t;
    c->msg.len = 0;
    return 0;
}

int
hf_ws_recv(hf_ws *c, int timeout_ms, int *opcode, hf_buf *buf, int *close_code)
{
    uint64_t dl = wsc_deadline_in(timeout_ms), plen;
    const unsigned char *h, *pay;
    size_t hl;
    int fin, op, rv, code;

    if (c == NULL || c->dead)
        return HF_EUNAVAIL;
    for (;;) {
        if (wsc_avail(&c->s) < 2)
            goto more;
        h = wsc_head(&c->s);
        fin = h[0] & 0x80;
        op = h[0] & 0x0f;
        hl = (h[1] & 0x7f) == 126 ? 4 : (h[1] & 0x7f) == 127 ? 10 : 2;
        if (wsc_avail(&c->s) < hl)
            goto more;
        plen = hl == 2   ? (uint64_t)(h[1] & 0x7f)
               : hl == 4 ? (uint64_t)h[2] << 8 | h[3]
                         : hf_get_be64(h + 2);
        /* Judge the header before waiting for its payload. */
        if ((h[0] & 0x70) != 0 || (h[1] & 0x80) != 0 || (plen >> 63) != 0)
            return fail(c, HF_EBADREQ);
        if (op >= 8) {
            if ((op != HF_WS_CLOSE && op != HF_WS_PING && op != HF_WS_PONG) ||
                !fin || plen > 125 || (op == HF_WS_CLOSE && plen == 1))
                return fail(c, HF_EBADREQ);
        } else {
            if (op > HF_WS_BINARY || (op == HF_WS_CONT) != (c->msg_op != 0))
                return fail(c, HF_EBADREQ);
            if (plen > HF_WS_MAX_MESSAGE - c->msg.len)
                return fail(c, HF_ETOOLARGE);
        }
        if (wsc_avail(&c->s) < hl + plen) {
            if ((rv = wsc_need(&c->s, hl + (size_t)plen, dl)) != 0)
                goto ioerr;
            continue; /* the buffer may have moved: parse again */
        }
        pay = h + hl;
        c->s.pos += hl + (size_t)plen;
        switch (op) {
        case HF_WS_PING:
            if (!c->close_sent &&
                send_frame(c, 0x80 | HF_WS_PONG, (size_t)plen, pay,
                           (size_t)plen,
                           wsc_deadline_in(HF_WS_SEND_TIMEOUT_MS)) != 0) {
                c->dead = 1;
                return HF_EUNAVAIL;
            }
            continue;
        case HF_WS_PONG:
            continue;
        case HF_WS_CLOSE:
            code = plen >= 2 ? (int)pay[0] << 8 | pay[1] : 1005;
            if (wsc_set_buf(buf, pay + (plen >= 2 ? 2 : 0),
                        plen >= 2 ? (size_t)plen - 2 : 0) != 0)
                return HF_EINTERNAL;
            if (!c->close_sent)
                close_frame(c, code, NULL, wsc_deadline_in(CLOSE_WAIT_MS));
            c->dead = 1;
            *opcode = HF_WS_CLOSE;
            if (close_code != NULL)
                *close_code = code;
            return 0;
        default:
            if (op != HF_WS_CONT)
                c->msg_op = op;
            if (hf_buf_append(&c->msg, pay, (size_t)plen) != 0)
                return HF_EINTERNAL;
            if (!fin)
                continue;
            if (deliver(c, buf) != 0)
                return HF_EINTERNAL;
            *opcode = c->msg_op;
            c->msg_op = 0;
            return 0;
        }
    more:
        if ((rv = wsc_fill(&c->s, 0, dl)) != 0)
            goto ioerr;
    }
ioerr:
    if (rv != HF_ETIMEOUT)
        c->dead = 1;
    return rv == HF_ETIMEOUT ? rv : rv == HF_EINTERNAL ? rv : HF_EUNAVAIL;
}

/* Frees a client without any goodbye. */
static void
ws_free(hf_ws *c)
{
    SSL_free(c->s.ssl);
    if (c->s.fd >= 0)
        close(c->s.fd);
    hf_buf_free(&c->s.in);
    hf_buf_free(&c->body);
    hf_buf_free(&c->msg);
    hf_buf_free(&c->out);
    free(c->proto);
    free(c);
}

/* Checks a 101 reply against our key and offer; sets c->proto. */
static int
check_upgrade(hf_ws *c, const char *h, const char *key, const char *offer)
{
    char src[96], want[32];
    unsigned char md[20];
    const char *v;
    size_t vlen, i, s;

    if ((v = wsc_header(h, "Upgrade", &vlen)) == NULL ||
        !wsc_has_token(v, vlen, "websocket"))
        return HF_EBADREQ;
    if ((v = wsc_header(h, "Connection", &vlen)) == NULL ||
        !wsc_has_token(v, vlen, "upgrade"))
        return HF_EBADREQ;
    snprintf(src, sizeof src, "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)src, strlen(src), md);
    EVP_EncodeBlock((unsigned char *)want, md, sizeof md);
    if ((v = wsc_header(h, "Sec-WebSocket-Accept", &vlen)) == NULL ||
        vlen != strlen(want) || memcmp(v, want, vlen) != 0)
        return HF_EBADREQ;
    if ((v = wsc_header(h, "Sec-WebSocket-Extensions", &vlen)) != NULL && vlen > 0)
        return HF_EBADREQ; /* none offered, none may be used */
    if ((v = wsc_header(h, "Sec-WebSocket-Protocol", &vlen)) == NULL || vlen == 0)
        return 0;
    /* The choice must be one of the comma-separated offers. */
    if (offer == NULL || vlen > 256)
        return HF_EBADREQ;
    for (i = 0; offer[i] != '\0';) {
        while (offer[i] == ' ' || offer[i] == ',')
            i++;
        for (s = i; offer[i] != '\0' && offer[i] != ',' && offer[i] != ' ';)
            i++;
        if (i - s == vlen && memcmp(offer + s, v, vlen) == 0) {
            if ((c->proto = strndup(v, vlen)) == NULL)
                return HF_EINTERNAL;
            return 0;
        }
    }
    return HF_EBADREQ;
}

int
hf_ws_connect_from(hf_ws **out, const char *src_ip, const char *host, int port,
                   const char *path, const char *subprotocol,
                   const char *headers, int timeout_ms)
{
    return hf_ws_connect_tls(out, src_ip, host, port, 0, path, subprotocol,
                             headers, timeout_ms);
}

int
hf_ws_connect_tls(hf_ws **out, const char *src_ip, const char *host, int port,
                  int tls, const char *path, const char *subprotocol,
                  const char *headers, int timeout_ms)
{
    uint64_t dl = wsc_deadline_in(timeout_ms);
    unsigned char nonce[16];
    char key[32];
    hf_buf req = {0}, h = {0};
    hf_ws *c;
    int rv;

    *out = NULL;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return HF_EINTERNAL;
    c->s.fd = -1;
    if (getrandom(&c->rng, sizeof c->rng, 0) != sizeof c->rng)
        c->rng = hf_mono_ns() ^ (uint64_t)(uintptr_t)c;
    for (int i = 0; i < 16; i += 8)
        hf_put_be64(nonce + i, next_rand(c));
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);

    if ((rv = wsc_tcp_connect(src_ip, host, port, dl, &c->s.fd)) != 0 ||
        (rv = wsc_tls_start(&c->s, host, tls, dl)) != 0)
        goto fail;
    rv = wsc_appendf(&req, "GET %s HTTP/1.1\r\n", path != NULL ? path : "/");
    if (rv == 0)
        rv = wsc_append_host(&req, host, port);
    if (rv == 0)
        rv = wsc_appendf(&req,
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                     key);
    if (rv == 0 && subprotocol != NULL)
        rv = wsc_appendf(&req, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
    if (rv == 0)
        rv = wsc_appendf(&req, "%s\r\n", headers != NULL ? headers : "");
    if (rv == 0)
        rv = wsc_write_all(&c->s, req.data, req.len, dl);
    if (rv == 0)
        rv = wsc_read_head(&c->s, &h, &c->status, dl);
    if (rv == HF_ETOOLARGE)
        rv = HF_EBADREQ; /* a head over HF_HTTP_MAX_HEAD is no upgrade */
    if (rv == HF_EBADREQ || (rv == 0 && c->status != 101)) {
        /* Rejected: keep what the server said for the caller. */
        if (rv == 0 &&
            wsc_read_body(&c->s, h.data, c->status, 0, &c->body, dl) != 0)
            c->body.len = 0;
        wsc_nul_terminate(&c->body);
        close(c->s.fd);
        c->s.fd = -1;
        c->dead = 1;
        *out = c;
        c = NULL;
        rv = HF_EBADREQ;
        goto fail;
    }
    if (rv == 0 &&
        (rv = check_upgrade(c, h.data, key, subprotocol)) == HF_EBADREQ) {
        close(c->s.fd);
        c->s.fd = -1;
        c->dead = 1;
        wsc_nul_terminate(&c->body);
        *out = c;
        c = NULL;
        goto fail;
    }
    if (rv == 0) {
        *out = c;
        c = NULL;
    }
fail:
    if (c != NULL)
        ws_free(c);
    hf_buf_free(&req);
    hf_buf_free(&h);
    return rv;
}

int
hf_ws_connect(hf_ws **out, const char *host, int port, const char *path,
              const char *subprotocol, const char *headers, int timeout_ms)
{
    return hf_ws_connect_from(out, NULL, host, port, path, subprotocol, headers,
                              timeout_ms);
}

const char *
hf_ws_protocol(const hf_ws *c)
{
    return c != NULL ? c->proto : NULL;
}

int
hf_ws_http_status(const hf_ws *c)
{
    return c != NULL ? c->status : 0;
}

const char *
hf_ws_http_body(const hf_ws *c, size_t *len)
{
    if (len != NULL)
        *len = c != NULL ? c->body.len : 0;
    return c != NULL && c->body.data != NULL ? c->body.data : "";
}

int
hf_ws_fd(const hf_ws *c)
{
    return c != NULL ? c->s.fd : -1;
}

int
hf_ws_pending(const hf_ws *c)
{
    return c != NULL && (wsc_avail(&c->s) > 0 ||
                         (c->s.ssl != NULL && SSL_has_pending(c->s.ssl)));
}

void
hf_ws_close(hf_ws *c)
{
    uint64_t dl = wsc_deadline_in(CLOSE_WAIT_MS);

    if (c == NULL)
        return;
    if (c->s.fd >= 0) {
        if (!c->dead && !c->close_sent)
            close_frame(c, 1000, NULL, dl);
        /* Let the server close first (RFC 6455 §7.1.1): read and drop
         * until EOF or the deadline. */
        c->s.pos = c->s.in.len;
        while (wsc_fill(&c->s, 0, dl) == 0)
            c->s.pos = c->s.in.len;
    }
    ws_free(c);
}
