/*
 * wshttp.c - HTTP replies for the client (see wsc_int.h) and
 * hf_http_request (wsclient.h). Nothing received is trusted: heads and
 * bodies are bounded by HF_HTTP_MAX_HEAD / HF_HTTP_MAX_BODY.
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
const char *
wsc_header(const char *h, const char *name, size_t *vlen)
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
int
wsc_has_token(const char *v, size_t vlen, const char *token)
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
int
wsc_read_head(struct stream *s, hf_buf *h, int *status, uint64_t dl)
{
    size_t len;
    int rv;

    if ((rv = wsc_until(s, "\r\n\r\n", 4, HF_HTTP_MAX_HEAD, &len, dl)) != 0)
        return rv;
    if ((rv = wsc_set_buf(h, wsc_head(s), len)) != 0)
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
        if ((rv = wsc_until(s, "\r\n", 2, 4096, &len, dl)) != 0)
            return rv;
        rv = parse_size((const char *)wsc_head(s), len - 2, 16,
                        HF_HTTP_MAX_BODY - body->len, &size);
        if (rv < 0)
            return rv;
        s->pos += len;
        if (size == 0)
            break;
        if ((rv = wsc_need(s, (size_t)size + 2, dl)) != 0)
            return rv == HF_EUNAVAIL ? HF_EBADREQ : rv;
        if (memcmp(wsc_head(s) + size, "\r\n", 2) != 0)
            return HF_EBADREQ;
        if (hf_buf_append(body, wsc_head(s), (size_t)size) != 0)
            return HF_EINTERNAL;
        s->pos += (size_t)size + 2;
    }
    /* Trailer fields, up to the empty line. */
    for (;;) {
        if ((rv = wsc_until(s, "\r\n", 2, 4096, &len, dl)) != 0)
            return rv;
        s->pos += len;
        if (len == 2)
            return 0;
    }
}

/* Reads the body that follows head h (status, request method) into body. */
int
wsc_read_body(struct stream *s, const char *h, int status, int is_head,
          hf_buf *body, uint64_t dl)
{
    const char *v;
    size_t vlen;
    uint64_t n;
    int rv;

    body->len = 0;
    if (is_head || status < 200 || status == 204 || status == 304)
        return 0;
    if ((v = wsc_header(h, "Transfer-Encoding", &vlen)) != NULL &&
        wsc_has_token(v, vlen, "chunked"))
        return read_chunked(s, body, dl);
    if ((v = wsc_header(h, "Content-Length", &vlen)) != NULL) {
        rv = parse_size(v, vlen, 10, HF_HTTP_MAX_BODY, &n);
        if (rv < 0)
            return rv;
        if ((size_t)rv != vlen)
            return HF_EBADREQ;
        if ((rv = wsc_need(s, (size_t)n, dl)) != 0)
            return rv == HF_EUNAVAIL ? HF_EBADREQ : rv;
        if (hf_buf_append(body, wsc_head(s), (size_t)n) != 0)
            return HF_EINTERNAL;
        s->pos += (size_t)n;
        return 0;
    }
    for (;;) { /* until EOF */
        if (wsc_avail(s) > HF_HTTP_MAX_BODY)
            return HF_ETOOLARGE;
        rv = wsc_fill(s, 0, dl);
        if (rv == HF_EUNAVAIL)
            break;
        if (rv != 0)
            return rv;
    }
    if (hf_buf_append(body, wsc_head(s), wsc_avail(s)) != 0)
        return HF_EINTERNAL;
    s->pos = s->in.len;
    return 0;
}

int
wsc_nul_terminate(hf_buf *b)
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
    uint64_t dl = wsc_deadline_in(timeout_ms);
    int st = 0, rv;

    if (status != NULL)
        *status = 0;
    if (method == NULL || path == NULL)
        return HF_EBADREQ;
    if ((rv = wsc_tcp_connect(NULL, host, port, dl, &s.fd)) != 0)
        return rv;
    rv = wsc_tls_start(&s, host, tls, dl);
    if (rv == 0)
        rv = wsc_appendf(&req, "%s %s HTTP/1.1\r\n", method, path);
    if (rv == 0)
        rv = wsc_append_host(&req, host, port);
    if (rv == 0)
        rv = wsc_appendf(&req, "Connection: close\r\n%s",
                     headers != NULL ? headers : "");
    if (rv == 0 && (body != NULL || body_len > 0))
        rv = wsc_appendf(&req, "Content-Length: %zu\r\n", body_len);
    if (rv == 0)
        rv = hf_buf_append(&req, "\r\n", 2);
    if (rv == 0 && body_len > 0)
        rv = hf_buf_append(&req, body, body_len);
    if (rv == 0)
        rv = wsc_write_all(&s, req.data, req.len, dl);
    /* Skip interim replies (100 Continue and friends). */
    while (rv == 0) {
        if ((rv = wsc_read_head(&s, &h, &st, dl)) != 0 || st >= 200 || st == 101)
            break;
    }
    if (rv == 0)
        rv = wsc_read_body(&s, h.data, st, strcmp(method, "HEAD") == 0, &rb, dl);
    if (rv == 0 && status != NULL)
        *status = st;
    if (rv == 0 && resp_body != NULL) {
        hf_buf_free(resp_body);
        *resp_body = hf_buf_take(&rb);
        rv = wsc_nul_terminate(resp_body);
    }
    SSL_free(s.ssl);
    close(s.fd);
    hf_buf_free(&s.in);
    hf_buf_free(&req);
    hf_buf_free(&h);
    hf_buf_free(&rb);
    return rv;
}
