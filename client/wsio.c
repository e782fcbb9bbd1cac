/*
 * wsio.c - the client's socket (see wsc_int.h): one non-blocking socket
 * driven by poll() against an absolute deadline, so a timeout bounds a
 * whole call however many reads it takes, and one input buffer that
 * parsers consume by advancing pos.
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
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "client/wsclient.h"
#include "client/wsc_int.h"

#define READ_CHUNK (64u << 10)

/* ---- deadlines and socket I/O ------------------------------------------ */

uint64_t
wsc_deadline_in(int timeout_ms)
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

/* Starts TLS on a connected socket (tls: HF_WSC_TLS or
 * HF_WSC_TLS_INSECURE; 0 does nothing). */
int
wsc_tls_start(struct stream *s, const char *host, int tls, uint64_t dl)
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

int
wsc_write_all(struct stream *s, const void *data, size_t len, uint64_t dl)
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


size_t
wsc_avail(const struct stream *s)
{
    return s->in.len - s->pos;
}

const unsigned char *
wsc_head(const struct stream *s)
{
    return (const unsigned char *)s->in.data + s->pos;
}

/* Reads more bytes (at least one), making room for want bytes in all when
 * that is more than a chunk. Invalidates pointers into the buffer.
 * Returns 0, HF_ETIMEOUT, HF_EUNAVAIL (EOF or reset), HF_EINTERNAL. */
int
wsc_fill(struct stream *s, size_t want, uint64_t dl)
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
    if (want > wsc_avail(s) && want - wsc_avail(s) > room)
        room = want - wsc_avail(s);
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
int
wsc_need(struct stream *s, size_t n, uint64_t dl)
{
    int rv;

    while (wsc_avail(s) < n)
        if ((rv = wsc_fill(s, n, dl)) != 0)
            return rv;
    return 0;
}

/* Finds delim (of dlen bytes) in the available bytes, reading until it
 * appears; *len gets the offset just past it. More than max bytes without
 * it: HF_ETOOLARGE. EOF after some bytes: HF_EBADREQ (a truncated reply);
 * EOF before any: HF_EUNAVAIL. */
int
wsc_until(struct stream *s, const char *delim, size_t dlen, size_t max, size_t *len,
      uint64_t dl)
{
    size_t from = 0;
    const char *hit;
    int rv;

    for (;;) {
        if (wsc_avail(s) >= dlen) {
            hit = memmem((const char *)wsc_head(s) + from, wsc_avail(s) - from, delim,
                         dlen);
            if (hit != NULL) {
                *len = (size_t)(hit - (const char *)wsc_head(s)) + dlen;
                return 0;
            }
            from = wsc_avail(s) - (dlen - 1);
        }
        if (wsc_avail(s) > max)
            return HF_ETOOLARGE;
        rv = wsc_fill(s, 0, dl);
        if (rv == HF_EUNAVAIL && wsc_avail(s) > 0)
            return HF_EBADREQ;
        if (rv != 0)
            return rv;
    }
}

int
wsc_appendf(hf_buf *b, const char *fmt, ...)
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
int
wsc_set_buf(hf_buf *b, const void *p, size_t n)
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
int
wsc_tcp_connect(const char *src_ip, const char *host, int port, uint64_t dl,
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
int
wsc_append_host(hf_buf *b, const char *host, int port)
{
    return strchr(host, ':') != NULL
               ? wsc_appendf(b, "Host: [%s]:%d\r\n", host, port)
               : wsc_appendf(b, "Host: %s:%d\r\n", host, port);
}
