/*
 * wsc_int.h - what the WebSocket/HTTP client's files share (client/):
 * wsio.c (deadlines, the socket and its input buffer, connecting),
 * wshttp.c (HTTP replies and hf_http_request), wsclient.c (WebSocket).
 * Not for use outside them; wsclient.h is the interface.
 *
 * Deadlines are absolute monotonic ns (UINT64_MAX: never). Calls return 0
 * or a negative HF_E* code: HF_ETIMEOUT when the deadline passed,
 * HF_EUNAVAIL for a refused, reset or closed connection.
 */
#ifndef HF_CLIENT_WSC_INT_H
#define HF_CLIENT_WSC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "client/wstls.h"
#include "core/buf.h"

/* A connection and what it received and nobody consumed yet:
 * in.data[pos..in.len). Only a refill (wsc_fill and the calls that read)
 * may move the buffer, so a pointer into it stays valid until then. */
struct stream {
    int fd;
    SSL *ssl; /* wss:// and https:// (wstls.c), else NULL */
    size_t pos;
    hf_buf in;
};

/* ---- wsio.c ---- */
uint64_t wsc_deadline_in(int timeout_ms); /* <0: never */
/* Connects a non-blocking TCP socket (bound to src_ip when not NULL). */
int wsc_tcp_connect(const char *src_ip, const char *host, int port,
                    uint64_t dl, int *out);
/* TLS on s's connected socket: tls is 0 (none), HF_WSC_TLS or
 * HF_WSC_TLS_INSECURE. */
int wsc_tls_start(struct stream *s, const char *host, int tls, uint64_t dl);
int wsc_write_all(struct stream *s, const void *data, size_t len,
                  uint64_t dl);
size_t wsc_avail(const struct stream *s);
const unsigned char *wsc_head(const struct stream *s);
/* Reads at least one more byte, room for want in all. */
int wsc_fill(struct stream *s, size_t want, uint64_t dl);
/* Makes n bytes available. */
int wsc_need(struct stream *s, size_t n, uint64_t dl);
/* Reads until delim appears (*len: the offset just past it); more than
 * max bytes without it: HF_ETOOLARGE; EOF after some bytes: HF_EBADREQ. */
int wsc_until(struct stream *s, const char *delim, size_t dlen, size_t max,
              size_t *len, uint64_t dl);
int wsc_appendf(hf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int wsc_set_buf(hf_buf *b, const void *p, size_t n); /* NUL-terminated */
/* "Host: ..." with IPv6 literals bracketed. */
int wsc_append_host(hf_buf *b, const char *host, int port);

/* ---- wshttp.c ---- */
/* A reply's head (NUL-terminated, status parsed) into h. */
int wsc_read_head(struct stream *s, hf_buf *h, int *status, uint64_t dl);
/* Its body (Content-Length, chunked, or to EOF) into body. */
int wsc_read_body(struct stream *s, const char *h, int status, int is_head,
                  hf_buf *body, uint64_t dl);
/* The value of header name in head h (*vlen bytes), or NULL. */
const char *wsc_header(const char *h, const char *name, size_t *vlen);
/* Does the comma-separated value hold token (case-insensitive)? */
int wsc_has_token(const char *v, size_t vlen, const char *token);
int wsc_nul_terminate(hf_buf *b);

#endif
