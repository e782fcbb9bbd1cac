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
 * SHA-1 and base64 for the handshake are implemented here (a few dozen
 * lines) rather than borrowed from libwebsockets, whose lws_SHA1 is a
 * macro for OpenSSL's SHA1 in some builds.
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

#include "core/err.h"
#include "client/wsclient.h"
#include "client/wstls.h"

#define WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define READ_CHUNK    (64u << 10)
#define CLOSE_WAIT_MS 250

/* ---- deadlines and socket I/O ------------------------------------------ */

static uint64_t
deadline_in(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return hf_mono_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds left for poll(): -1 forever, 0 when passed (rounded up, so
 * a deadline 0.3 ms away still waits). */
static int
remaining_ms(uint64_t dl)
{
    uint64_t now, ms;

    if (dl == UINT64_MAX)
        return -1;
    now = hf_mono_ns();
    if (now >= dl)
        return 0;
    ms = (dl - now + 999999u) / 1000000u;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Waits until fd has events (or an error/hangup, which the following
 * read or write reports). Returns 0, HF_ETIMEOUT or HF_EINTERNAL. */
static int
wait_fd(int fd, short events, uint64_t dl)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    for (;;) {
        n = poll(&p, 1, remaining_ms(dl));
        if (n > 0)
            return 0;
        if (n == 0)
            return HF_ETIMEOUT;
        if (errno != EINTR)
            return HF_EINTERNAL;
    }
}

static int
sock_err(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
    case EADDRNOTAVAIL:
    case ETIMEDOUT:
    case ENOTCONN:
        return HF_EUNAVAIL;
    default:
        return HF_EINTERNAL;
    }
}

/* The received bytes not yet consumed: in.data[pos..in.len). */
struct stream {
    int fd;
    SSL *ssl; /* wss:// and https:// (wstls.c), else NULL */
    size_t pos;
    hf_buf in;
};

/* Starts TLS on a connected socket (tls: HF_WSC_TLS or
 * HF_WSC_TLS_INSECURE; 0 does nothing). */
static int
tls_start(struct stream *s, const char *host, int tls, uint64_t dl)
{
    short ev = 0;
    int rv;

    if (tls == 0)
        return 0;
    if ((s->ssl = hf__tls_new(s->fd, host, tls == HF_WSC_TLS_INSECURE)) ==
        NULL)
        return HF_EINTERNAL;
    while ((rv = hf__tls_handshake(s->ssl, &ev)) == HF_TLS_WANT)
        if ((rv = wait_fd(s->fd, ev, dl)) != 0)
            return rv;
    return rv;
}

static int
write_all(struct stream *s, const void *data, size_t len, uint64_t dl)
{
    const char *p = data;
    int fd = s->fd;
    ssize_t n;
    short ev;
    int rv;

    if (fd < 0)
        return HF_EUNAVAIL;
    while (s->ssl != NULL && len > 0) {
        n = hf__tls_write(s->ssl, p, len, &ev);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n == HF_TLS_WANT) {
            if ((rv = wait_fd(fd, ev, dl)) != 0)
                return rv;
        } else {
            return (int)n;
        }
    }
    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((rv = wait_fd(fd, POLLOUT, dl)) != 0)
                return rv;
        } else {
            return n < 0 ? sock_err(errno) : HF_EUNAVAIL;
        }
    }
    return 0;
}


static size_t
avail(const struct stream *s)
{
    return s->in.len - s->pos;
}

static const unsigned char *
head(const struct stream *s)
{
    return (const unsigned char *)s->in.data + s->pos;
}

/* Reads more bytes (at least one), making room for want bytes in all when
 * that is more than a chunk. Invalidates pointers into the buffer.
 * Returns 0, HF_ETIMEOUT, HF_EUNAVAIL (EOF or reset), HF_EINTERNAL. */
static int
fill(struct stream *s, size_t want, uint64_t dl)
{
    size_t room;
    ssize_t n;
    int rv;

    if (s->fd < 0)
        return HF_EUNAVAIL;
    if (s->pos > 0 && (s->pos == s->in.len || s->pos >= s->in.cap / 2)) {
        memmove(s->in.data, s->in.data + s->pos, s->in.len - s->pos);
        s->in.len -= s->pos;
        s->pos = 0;
    }
    room = READ_CHUNK;
    if (want > avail(s) && want - avail(s) > room)
        room = want - avail(s);
    if (hf_buf_reserve(&s->in, room) != 0)
        return HF_EINTERNAL;
    while (s->ssl != NULL) {
        short ev;
        n = hf__tls_read(s->ssl, s->in.data + s->in.len,
                         s->in.cap - s->in.len, &ev);
        if (n > 0) {
            s->in.len += (size_t)n;
            return 0;
        }
        if (n != HF_TLS_WANT)
            return HF_EUNAVAIL; /* the end, clean or not */
        if ((rv = wait_fd(s->fd, ev, dl)) != 0)
            return rv;
    }
    for (;;) {
        n = recv(s->fd, s->in.data + s->in.len, s->in.cap - s->in.len, 0);
        if (n > 0) {
            s->in.len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return HF_EUNAVAIL;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return sock_err(errno);
        if ((rv = wait_fd(s->fd, POLLIN, dl)) != 0)
            return rv;
    }
}

/* Makes n bytes available. */
static int
need(struct stream *s, size_t n, uint64_t dl)
{
    int rv;

    while (avail(s) < n)
        if ((rv = fill(s, n, dl)) != 0)
            return rv;
    return 0;
}

/* Finds delim (of dlen bytes) in the available bytes, reading until it
 * appears; *len gets the offset just past it. More than max bytes without
 * it: HF_ETOOLARGE. EOF after some bytes: HF_EBADREQ (a truncated reply);
 * EOF before any: HF_EUNAVAIL. */
static int
until(struct stream *s, const char *delim, size_t dlen, size_t max, size_t *len,
      uint64_t dl)
{
    size_t from = 0;
    const char *hit;
    int rv;

    for (;;) {
        if (avail(s) >= dlen) {
            hit = memmem((const char *)head(s) + from, avail(s) - from, delim,
                         dlen);
            if (hit != NULL) {
                *len = (size_t)(hit - (const char *)head(s)) + dlen;
                return 0;
            }
            from = avail(s) - (dlen - 1);
        }
        if (avail(s) > max)
            return HF_ETOOLARGE;
        rv = fill(s, 0, dl);
        if (rv == HF_EUNAVAIL && avail(s) > 0)
            return HF_EBADREQ;
        if (rv != 0)
            return rv;
    }
}

static int appendf(hf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
appendf(hf_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || hf_buf_reserve(b, (size_t)n + 1) != 0)
        return HF_EINTERNAL;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Replaces b's contents with p[0..n), NUL-terminated. */
static int
set_buf(hf_buf *b, const void *p, size_t n)
{
    b->len = 0;
    if (hf_buf_reserve(b, n + 1) != 0)
        return HF_EINTERNAL;
    if (n > 0)
        memcpy(b->data, p, n);
    b->len = n;
    b->data[n] = '\0';
    return 0;
}

/* Connects a non-blocking TCP socket to host:port, optionally bound to
 * src_ip first, trying each resolved address until one answers. */
static int
tcp_connect(const char *src_ip, const char *host, int port, uint64_t dl,
            int *out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL,
                    *src = NULL, *ai;
    char portstr[16];
    int fd = -1, rv = HF_EUNAVAIL, one = 1, e;
    socklen_t elen;

    *out = -1;
    if (host == NULL || port <= 0 || port > 65535)
        return HF_EUNAVAIL;
    if (src_ip != NULL) {
        struct addrinfo sh = {.ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
        if (getaddrinfo(src_ip, NULL, &sh, &src) != 0 || src == NULL)
            return HF_EUNAVAIL;
        hints.ai_family = src->ai_family;
    }
    snprintf(portstr, sizeof portstr, "%d", port);
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        res = NULL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
        if (fd < 0) {
            rv = HF_EINTERNAL;
            continue;
        }
        if (src != NULL) {
            /* Defer the port choice to connect(), which may then reuse a
             * port towards different destinations. Best effort. */
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                       sizeof one);
            if (bind(fd, src->ai_addr, src->ai_addrlen) != 0) {
                rv = sock_err(errno);
                goto next;
            }
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS && errno != EINTR) {
                rv = sock_err(errno);
                goto next;
            }
            if ((rv = wait_fd(fd, POLLOUT, dl)) != 0)
                goto next;
            e = 0;
            elen = sizeof e;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
                e = errno;
            if (e != 0) {
                rv = sock_err(e);
                goto next;
            }
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        *out = fd;
        rv = 0;
        break;
    next:
        close(fd);
        fd = -1;
        if (rv == HF_ETIMEOUT)
            break; /* the deadline is spent: no time for the others */
    }
    if (res != NULL)
        freeaddrinfo(res);
    if (src != NULL)
        freeaddrinfo(src);
    return rv;
}

/* "Host: ..." value, bracketing IPv6 literals. */
static int
append_host(hf_buf *b, const char *host, int port)
{
    return strchr(host, ':') != NULL
               ? appendf(b, "Host: [%s]:%d\r\n", host, port)
               : appendf(b, "Host: %s:%d\r\n", host, port);
}

/* ---- HTTP responses -------------------------------------------------- */

/* The status of "HTTP/1.x SSS ...", or HF_EBADREQ. */
static int
parse_status(const char *h)
{
    if (strncmp(h, "HTTP/1.", 7) != 0 || h[7] < '0' || h[7] > '9' ||
        h[8] != ' ')
        return HF_EBADREQ;
    for (int i = 9; i < 12; i++)
        if (h[i] < '0' || h[i] > '9')
            return HF_EBADREQ;
    if (h[12] != ' ' && h[12] != '\r')
        return HF_EBADREQ;
    return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

/* The value of header name in a NUL-terminated head (the first one, with
 * surrounding blanks trimmed), or NULL. */
static const char *
header(const char *h, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *line = strstr(h, "\r\n"), *end, *v;

    while (line != NULL) {
        line += 2;
        if ((end = strstr(line, "\r\n")) == NULL || end == line)
            return NULL;
        if ((size_t)(end - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            v = line + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            *vlen = (size_t)(end - v);
            return v;
        }
        line = end;
    }
    return NULL;
}

/* Whether a comma-separated header value lists token (any case). */
static int
has_token(const char *v, size_t vlen, const char *token)
{
    size_t tlen = strlen(token), i = 0, s, e;

    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < vlen && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tlen && strncasecmp(v + s, token, tlen) == 0)
            return 1;
    }
    return 0;
}

/* Reads one response head into h (NUL-terminated) and returns its status
 * through *status. */
static int
read_head(struct stream *s, hf_buf *h, int *status, uint64_t dl)
{
    size_t len;
    int rv;

    if ((rv = until(s, "\r\n\r\n", 4, HF_HTTP_MAX_HEAD, &len, dl)) != 0)
        return rv;
    if ((rv = set_buf(h, head(s), len)) != 0)
        return rv;
    s->pos += len;
    if ((rv = parse_status(h->data)) < 0)
        return rv;
    *status = rv;
    return 0;
}

static int
parse_size(const char *p, size_t n, int base, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    int d;

    for (i = 0; i < n; i++) {
        char ch = p[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return HF_ETOOLARGE;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (i == 0)
        return HF_EBADREQ;
    if (v > max)
        return HF_ETOOLARGE;
    *out = v;
    return (int)i;
}

static int
read_chunked(struct stream *s, hf_buf *body, uint64_t dl)
{
    uint64_t size;
    size_t len;
    int rv;

    for (;;) {
        if ((rv = until(s, "\r\n", 2, 4096, &len, dl)) != 0)
            return rv;
        rv = parse_size((const char *)head(s), len - 2, 16,
                        HF_HTTP_MAX_BODY - body->len, &size);
        if (rv < 0)
            return rv;
        s->pos += len;
        if (size == 0)
            break;
        if ((rv = need(s, (size_t)size + 2, dl)) != 0)
            return rv == HF_EUNAVAIL ? HF_EBADREQ : rv;
        if (memcmp(head(s) + size, "\r\n", 2) != 0)
            return HF_EBADREQ;
        if (hf_buf_append(body, head(s), (size_t)size) != 0)
            return HF_EINTERNAL;
        s->pos += (size_t)size + 2;
    }
    /* Trailer fields, up to the empty line. */
    for (;;) {
        if ((rv = until(s, "\r\n", 2, 4096, &len, dl)) != 0)
            return rv;
        s->pos += len;
        if (len == 2)
            return 0;
    }
}

/* Reads the body that follows head h (status, request method) into body. */
static int
read_body(struct stream *s, const char *h, int status, int is_head,
          hf_buf *body, uint64_t dl)
{
    const char *v;
    size_t vlen;
    uint64_t n;
    int rv;

    body->len = 0;
    if (is_head || status < 200 || status == 204 || status == 304)
        return 0;
    if ((v = header(h, "Transfer-Encoding", &vlen)) != NULL &&
        has_token(v, vlen, "chunked"))
        return read_chunked(s, body, dl);
    if ((v = header(h, "Content-Length", &vlen)) != NULL) {
        rv = parse_size(v, vlen, 10, HF_HTTP_MAX_BODY, &n);
        if (rv < 0)
            return rv;
        if ((size_t)rv != vlen)
            return HF_EBADREQ;
        if ((rv = need(s, (size_t)n, dl)) != 0)
            return rv == HF_EUNAVAIL ? HF_EBADREQ : rv;
        if (hf_buf_append(body, head(s), (size_t)n) != 0)
            return HF_EINTERNAL;
        s->pos += (size_t)n;
        return 0;
    }
    for (;;) { /* until EOF */
        if (avail(s) > HF_HTTP_MAX_BODY)
            return HF_ETOOLARGE;
        rv = fill(s, 0, dl);
        if (rv == HF_EUNAVAIL)
            break;
        if (rv != 0)
            return rv;
    }
    if (hf_buf_append(body, head(s), avail(s)) != 0)
        return HF_EINTERNAL;
    s->pos = s->in.len;
    return 0;
}

static int
nul_terminate(hf_buf *b)
{
    if (hf_buf_reserve(b, 1) != 0)
        return HF_EINTERNAL;
    b->data[b->len] = '\0';
    return 0;
}

int
hf_http_request(const char *host, int port, const char *method,
                const char *path, const char *headers, const void *body,
                size_t body_len, int timeout_ms, int *status, hf_buf *resp_body)
{
    return hf_http_request_tls(host, port, 0, method, path, headers, body,
                               body_len, timeout_ms, status, resp_body);
}

int
hf_http_request_tls(const char *host, int port, int tls, const char *method,
                    const char *path, const char *headers, const void *body,
                    size_t body_len, int timeout_ms, int *status,
                    hf_buf *resp_body)
{
    struct stream s = {.fd = -1};
    hf_buf req = {0}, h = {0}, rb = {0};
    uint64_t dl = deadline_in(timeout_ms);
    int st = 0, rv;

    if (status != NULL)
        *status = 0;
    if (method == NULL || path == NULL)
        return HF_EBADREQ;
    if ((rv = tcp_connect(NULL, host, port, dl, &s.fd)) != 0)
        return rv;
    rv = tls_start(&s, host, tls, dl);
    if (rv == 0)
        rv = appendf(&req, "%s %s HTTP/1.1\r\n", method, path);
    if (rv == 0)
        rv = append_host(&req, host, port);
    if (rv == 0)
        rv = appendf(&req, "Connection: close\r\n%s",
                     headers != NULL ? headers : "");
    if (rv == 0 && (body != NULL || body_len > 0))
        rv = appendf(&req, "Content-Length: %zu\r\n", body_len);
    if (rv == 0)
        rv = hf_buf_append(&req, "\r\n", 2);
    if (rv == 0 && body_len > 0)
        rv = hf_buf_append(&req, body, body_len);
    if (rv == 0)
        rv = write_all(&s, req.data, req.len, dl);
    /* Skip interim replies (100 Continue and friends). */
    while (rv == 0) {
        if ((rv = read_head(&s, &h, &st, dl)) != 0 || st >= 200 || st == 101)
            break;
    }
    if (rv == 0)
        rv = read_body(&s, h.data, st, strcmp(method, "HEAD") == 0, &rb, dl);
    if (rv == 0 && status != NULL)
        *status = st;
    if (rv == 0 && resp_body != NULL) {
        hf_buf_free(resp_body);
        *resp_body = hf_buf_take(&rb);
        rv = nul_terminate(resp_body);
    }
    SSL_free(s.ssl);
    close(s.fd);
    hf_buf_free(&s.in);
    hf_buf_free(&req);
    hf_buf_free(&h);
    hf_buf_free(&rb);
    return rv;
}

/* ---- SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept ------------ */

static uint32_t
rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void
sha1_block(uint32_t hs[5], const unsigned char *p)
{
    uint32_t w[80], a = hs[0], b = hs[1], c = hs[2], d = hs[3], e = hs[4];
    uint32_t f, k, t;

    for (int i = 0; i < 16; i++)
        w[i] = hf_get_be32(p + 4 * i);
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    hs[0] += a;
    hs[1] += b;
    hs[2] += c;
    hs[3] += d;
    hs[4] += e;
}

static void
sha1(const void *data, size_t len, unsigned char md[20])
{
    uint32_t hs[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                      0xC3D2E1F0};
    const unsigned char *p = data;
    unsigned char last[128] = {0};
    size_t rest = len % 64, n = len - rest, tail;

    for (size_t i = 0; i < n; i += 64)
        sha1_block(hs, p + i);
    memcpy(last, p + n, rest);
    last[rest] = 0x80;
    tail = rest + 1 + 8 <= 64 ? 64 : 128;
    hf_put_be64(last + tail - 8, (uint64_t)len * 8);
    sha1_block(hs, last);
    if (tail == 128)
        sha1_block(hs, last + 64);
    for (int i = 0; i < 5; i++)
        hf_put_be32(md + 4 * i, hs[i]);
}

/* Standard base64 with padding; out needs 4*ceil(n/3)+1 bytes. */
static void
base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    uint32_t v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = tab[v & 63];
    }
    if (i < n) {
        v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

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
    if ((rv = write_all(&c->s, c->out.data, c->out.len, dl)) != 0)
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
                      deadline_in(HF_WS_SEND_TIMEOUT_MS));
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
                      deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

int
hf_ws_send_raw(hf_ws *c, const void *data, size_t len)
{
    if (c == NULL || c->dead)
        return HF_EUNAVAIL;
    return write_all(&c->s, data, len, deadline_in(HF_WS_SEND_TIMEOUT_MS));
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
    return close_frame(c, code, reason, deadline_in(HF_WS_SEND_TIMEOUT_MS));
}

/* The server broke the protocol (err HF_EBADREQ) or sent too much
 * (HF_ETOOLARGE): say so in a close frame, best effort, and stop. */
static int
fail(hf_ws *c, int err)
{
    if (!c->close_sent)
        close_frame(c, err == HF_ETOOLARGE ? 1009 : 1002, NULL,
                    deadline_in(CLOSE_WAIT_MS));
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

    if (nul_terminate(&c->msg) != 0)
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
    uint64_t dl = deadline_in(timeout_ms), plen;
    const unsigned char *h, *pay;
    size_t hl;
    int fin, op, rv, code;

    if (c == NULL || c->dead)
        return HF_EUNAVAIL;
    for (;;) {
        if (avail(&c->s) < 2)
            goto more;
        h = head(&c->s);
        fin = h[0] & 0x80;
        op = h[0] & 0x0f;
        hl = (h[1] & 0x7f) == 126 ? 4 : (h[1] & 0x7f) == 127 ? 10 : 2;
        if (avail(&c->s) < hl)
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
        if (avail(&c->s) < hl + plen) {
            if ((rv = need(&c->s, hl + (size_t)plen, dl)) != 0)
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
                           deadline_in(HF_WS_SEND_TIMEOUT_MS)) != 0) {
                c->dead = 1;
                return HF_EUNAVAIL;
            }
            continue;
        case HF_WS_PONG:
            continue;
        case HF_WS_CLOSE:
            code = plen >= 2 ? (int)pay[0] << 8 | pay[1] : 1005;
            if (set_buf(buf, pay + (plen >= 2 ? 2 : 0),
                        plen >= 2 ? (size_t)plen - 2 : 0) != 0)
                return HF_EINTERNAL;
            if (!c->close_sent)
                close_frame(c, code, NULL, deadline_in(CLOSE_WAIT_MS));
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
        if ((rv = fill(&c->s, 0, dl)) != 0)
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

    if ((v = header(h, "Upgrade", &vlen)) == NULL ||
        !has_token(v, vlen, "websocket"))
        return HF_EBADREQ;
    if ((v = header(h, "Connection", &vlen)) == NULL ||
        !has_token(v, vlen, "upgrade"))
        return HF_EBADREQ;
    snprintf(src, sizeof src, "%s%s", key, WS_GUID);
    sha1(src, strlen(src), md);
    base64(md, sizeof md, want);
    if ((v = header(h, "Sec-WebSocket-Accept", &vlen)) == NULL ||
        vlen != strlen(want) || memcmp(v, want, vlen) != 0)
        return HF_EBADREQ;
    if ((v = header(h, "Sec-WebSocket-Extensions", &vlen)) != NULL && vlen > 0)
        return HF_EBADREQ; /* none offered, none may be used */
    if ((v = header(h, "Sec-WebSocket-Protocol", &vlen)) == NULL || vlen == 0)
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
    uint64_t dl = deadline_in(timeout_ms);
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
    base64(nonce, sizeof nonce, key);

    if ((rv = tcp_connect(src_ip, host, port, dl, &c->s.fd)) != 0 ||
        (rv = tls_start(&c->s, host, tls, dl)) != 0)
        goto fail;
    rv = appendf(&req, "GET %s HTTP/1.1\r\n", path != NULL ? path : "/");
    if (rv == 0)
        rv = append_host(&req, host, port);
    if (rv == 0)
        rv = appendf(&req,
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                     key);
    if (rv == 0 && subprotocol != NULL)
        rv = appendf(&req, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
    if (rv == 0)
        rv = appendf(&req, "%s\r\n", headers != NULL ? headers : "");
    if (rv == 0)
        rv = write_all(&c->s, req.data, req.len, dl);
    if (rv == 0)
        rv = read_head(&c->s, &h, &c->status, dl);
    if (rv == HF_ETOOLARGE)
        rv = HF_EBADREQ; /* a head over HF_HTTP_MAX_HEAD is no upgrade */
    if (rv == HF_EBADREQ || (rv == 0 && c->status != 101)) {
        /* Rejected: keep what the server said for the caller. */
        if (rv == 0 &&
            read_body(&c->s, h.data, c->status, 0, &c->body, dl) != 0)
            c->body.len = 0;
        nul_terminate(&c->body);
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
        nul_terminate(&c->body);
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
    return c != NULL && (avail(&c->s) > 0 ||
                         (c->s.ssl != NULL && SSL_has_pending(c->s.ssl)));
}

void
hf_ws_close(hf_ws *c)
{
    uint64_t dl = deadline_in(CLOSE_WAIT_MS);

    if (c == NULL)
        return;
    if (c->s.fd >= 0) {
        if (!c->dead && !c->close_sent)
            close_frame(c, 1000, NULL, dl);
        /* Let the server close first (RFC 6455 §7.1.1): read and drop
         * until EOF or the deadline. */
        c->s.pos = c->s.in.len;
        while (fill(&c->s, 0, dl) == 0)
            c->s.pos = c->s.in.len;
    }
    ws_free(c);
}
