/*
 * http.c - the HTTP endpoints: calls, history polling, health, metrics and
 * static files.
 *
 * Design notes
 * ------------
 * Answers. An HTTP request is answered as soon as its answer exists, with
 * lws_write, not at the next writable callback: while a request waits for
 * the host its connection's reading is held (lws 4.1 would otherwise offer
 * a pipelined next request to its parser again and again, spinning the
 * thread), and lws 4.1 gives a read-held connection no writable callbacks.
 * The hold is lifted just before the answer is written.
 *
 * Framing. A body must come with one plain Content-Length, whole within
 * --body-timeout-s; Transfer-Encoding is refused. A connection whose
 * framing is in doubt, or whose request with a body was answered before it
 * reached an actor (completing it inside lws's loop over its buffer spins
 * lws), is closed after the answer. docs/decisions.md tells why.
 */
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mpjson.h"

#include "transport/gw_int.h"

/* ------------------------------------------------------------------ */
/* outputs from the host                                               */

/*
 * Answers an HTTP request and ends it: the response is written at once
 * (lws buffers what the socket does not take and flushes it itself), the
 * transaction is completed so that a keep-alive connection can carry the
 * next request, and c is freed. Callers must not touch c afterwards.
 *
 * Why at once, rather than at the next HTTP_WRITEABLE as WebSocket output
 * is: while an answer is awaited from the host, the connection must not
 * read (see http_hold), and lws 4.1 gives a read-held h1 connection no
 * writable callbacks either. So the hold is lifted here, just before the
 * write, and the next pipelined request is parsed only after it.
 *
 * A connection whose framing could not be trusted (close_after), or that
 * lws cannot take back for another request, is closed: http_respond
 * returns -1, which a caller inside this connection's own callback
 * returns to lws; from anywhere else (another connection's callback, a
 * timer) lws is asked to kill it, and the connection is marked so that
 * any callback lws makes for it meanwhile (a pipelined request already
 * buffered, more body) closes it instead of being served.
 */
enum { R_NONE, R_CALL, R_EVENTS, R_HEALTH, R_METRICS, R_PUBLISH };

static char http_dead; /* the mark: lws_set_opaque_user_data(wsi, &it) */

int
gw_http_condemned(struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi) == &http_dead;
}

int
gw_http_respond(struct conn *c, int status, const char *ctype, const void *body,
                size_t len)
{
    struct lws *wsi = c->wsi;
    struct conn **pss = lws_wsi_user(wsi);
    size_t need = LWS_PRE + 512 + len;
    unsigned char *buf = malloc(need), *start, *p, *end;
    int close, held = c->h->held;

    /* A request with a body answered before it reached the host is
     * answered from inside lws's own handling of it, which for a
     * pipelined request is a loop over lws's buffer: completing the
     * transaction there leaves that loop spinning in lws 4.1. */
    if (c->h->had_body && !c->h->forwarded)
        c->h->close_after = 1;
    close = c->h->close_after || buf == NULL;

    if (held && !close)
        lws_rx_flow_control(wsi, 1);
    if (buf != NULL) {
        start = p = buf + LWS_PRE;
        end = buf + need;
        char ra[16];
        int ralen = snprintf(ra, sizeof(ra), "%d", c->h->retry_after);
        if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &p,
                                        end) ||
            gw_cors_headers(c->gw->g, wsi, &p, end) ||
            (c->h->retry_after > 0 &&
             lws_add_http_header_by_name(wsi,
                                         (const unsigned char *)"retry-after:",
                                         (const unsigned char *)ra, ralen, &p,
                                         end)) ||
            (c->h->close_after &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                          (const unsigned char *)"close", 5, &p,
                                          end)) ||
            lws_finalize_write_http_header(wsi, start, &p, end)) {
            close = 1;
        } else {
            memcpy(buf + LWS_PRE, body, len);
            if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) !=
                (int)len)
                close = 1;
        }
        free(buf);
    }
    if (pss != NULL && *pss == c)
        *pss = NULL;
    gw_conn_free(c->gw, c);
    if (!close && lws_http_transaction_completed(wsi) == 0)
        return 0;
    lws_set_opaque_user_data(wsi, &http_dead);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return -1;
}

/* The request is whole and its answer must come from the host: stop
 * reading the connection until it is written. A pipelined next request
 * already in lws's buffer would otherwise be offered to lws's parser,
 * which cannot take it before this transaction completes, again and
 * again without ever waiting (a gateway thread at 100% CPU, SIGTERM never
 * completing). http_respond lets it read again. */
static void
http_hold(struct conn *c)
{
    if (!c->h->held && !c->h->awaiting_body) {
        c->h->held = 1;
        lws_rx_flow_control(c->wsi, 0);
    }
}

int
gw_http_reply(struct conn *c, struct pend *p, const hf_env *e)
{
    hf_buf b = {0};
    int err = e->ok ? 0 : HF_EINTERNAL, rv;

    if (c->h->route == R_PUBLISH)
        return gw_publish_reply(c, p, e);
    if (!e->ok) {
        char code[32];
        snprintf(code, sizeof(code), "%.*s", (int)e->code.len,
                 (const char *)e->code.data);
        err = hf_err_from_name(code);
        hf_wire_http_err(&b, err, e->msg.data, e->msg.len);
    } else if (p->op == HF_OP_HISTORY) {
        if (e->val)
            hf_wire_json(&b, e->val);
    } else {
        hf_wire_http_ok(&b, e->val);
    }
    rv =
        gw_http_respond(c, hf_err_http(err), "application/json", b.data, b.len);
    hf_buf_free(&b);
    return rv;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

static int
parse_target(struct conn *c, const char *path, int with_method)
{
    /* kind/name[/method] */
    const char *s1 = strchr(path, '/'), *s2;
    size_t alen;

    if (s1 == NULL)
        return HF_EBADREQ;
    s2 = with_method ? strchr(s1 + 1, '/') : NULL;
    if (with_method && s2 == NULL)
        return HF_EBADREQ;
    alen = with_method ? (size_t)(s2 - path) : strlen(path);
    if (alen > HF_ADDR_MAX || hf_addr_check(path, alen, NULL) != 0)
        return HF_EBADREQ;
    memcpy(c->h->target, path, alen);
    c->h->target[alen] = '\0';
    if (with_method) {
        if (strlen(s2 + 1) == 0 || strlen(s2 + 1) >= sizeof(c->h->method) ||
            strchr(s2 + 1, '/'))
            return HF_EBADREQ;
        strcpy(c->h->method, s2 + 1);
    }
    return 0;
}

/* Answers with an error; returns as http_respond. */
int
gw_http_error(struct conn *c, int err, const char *msg)
{
    hf_buf b = {0};
    int rv;

    hf_wire_http_err(&b, err, msg, strlen(msg));
    rv =
        gw_http_respond(c, hf_err_http(err), "application/json", b.data, b.len);
    hf_buf_free(&b);
    return rv;
}

/* Sends the request an HTTP connection carries, now that it is whole.
 * Returns as http_respond when it is answered at once (0 otherwise). */
int
gw_http_dispatch(struct gw *gw, struct conn *c)
{
    const char *why = NULL;
    hf_slice to = {c->h->target, strlen(c->h->target)};
    hf_buf args = {0};
    int err;

    http_hold(c);
    if (gw->local_draining) {
        return gw_http_error(c, HF_EUNAVAIL, "server is shutting down");
    }
    if (c->h->route == R_PUBLISH)
        return gw_publish_dispatch(gw, c);
    if ((err = gw_admit(c, to, &why)) != 0) {
        return gw_http_error(c, err, why);
    }
    if (c->h->route == R_CALL) {
        if (c->h->body.len > 0 &&
            hf_json_to_mp(c->h->body.data, c->h->body.len, &args) != 0) {
            /* Perhaps not a body at all: lws 4.1 hands a pipelined
             * request's own header bytes over as its body (see
             * docs/decisions.md). The stream cannot be trusted. */
            c->h->close_after = 1;
            return gw_http_error(c, HF_EBADREQ, "body is not valid JSON");
        }
        /* The WebSocket rule (wire.c): arguments nest at most one level
         * less than a message. Deeper ones could not be unpacked by the
         * actor, and once broke the whole batch they travelled in. */
        if (args.len > 0 && hf_wire_mp_check(args.data, args.len,
                                             HF_WIRE_DEPTH - 1) != args.len) {
            hf_buf_free(&args);
            return gw_http_error(c, HF_EBADREQ, "body nested too deep");
        }
        c->h->forwarded = 1;
        gw_forward(gw, c, HF_OP_CALL, (hf_slice){0}, to,
                   (hf_slice){c->h->method, strlen(c->h->method)},
                   (hf_slice){args.data, args.len},
                   (hf_slice){c->h->idem, strlen(c->h->idem)}, NULL);
        hf_buf_free(&args);
    } else {
        hf_wire_msg m = {.has_since = 1, .since = (int64_t)c->h->after};
        char lim[9];
        hf_buf lb = {.data = lim, .cap = sizeof(lim)};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &lb, hf_buf_mpwrite);
        msgpack_pack_uint32(&pk, c->h->limit);
        c->h->forwarded = 1;
        gw_forward(gw, c, HF_OP_HISTORY, (hf_slice){0}, to, (hf_slice){0},
                   (hf_slice){lb.data, c->h->limit ? lb.len : 0}, (hf_slice){0},
                   &m);
    }
    gw_send_req(gw);
    return 0;
}

static int
serve_static(struct gw *gw, struct lws *wsi, const char *uri)
{
    char path[1100];
    const char *mime = "application/octet-stream", *ext;
    struct stat st;
    static const struct {
        const char *ext, *mime;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
    };

    if (strstr(uri, "..") != NULL || uri[0] != '/')
        return lws_return_http_status(wsi, 404, NULL) ? -1 : 0;
    snprintf(path, sizeof(path), "%s%s%s", gw->g->web_root, uri,
             uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (lws_return_http_status(wsi, 404, NULL) ||
            lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    }
    if ((ext = strrchr(path, '.')) != NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcmp(ext, types[i].ext) == 0)
                mime = types[i].mime;
    {
        int n = lws_serve_http_file(wsi, path, mime, NULL, 0);
        if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
            return -1;
    }
    return 0;
}

/* How a request's body is framed. lws joins repeated headers with ' ',
 * so two Content-Lengths read as "2 30" and fail the digits-only rule.
 * Returns 0 with *len (-1: no Content-Length), or an HTTP status with
 * *why: 400 for a Content-Length that is not one plain number or that
 * comes with Transfer-Encoding, 411 for Transfer-Encoding alone (chunked
 * bodies are not accepted: lws does not decode them, and it read the
 * chunks as the next request). Either way the stream after the headers
 * cannot be trusted, and the connection is closed after the answer. */
static int
body_framing(struct lws *wsi, long long *len, const char **why)
{
    char cl[32];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    int te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;

    *len = -1;
    if (te && n > 0)
        return *why = "Content-Length with Transfer-Encoding", 400;
    if (te)
        return *why = "send the body with a Content-Length (chunked "
                      "request bodies are not accepted)",
               411;
    if (n <= 0)
        return 0;
    if (n >= (int)sizeof(cl) ||
        lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) != n ||
        n > 18 || strspn(cl, "0123456789") != (size_t)n)
        return *why = "Content-Length must be one number", 400;
    *len = atoll(cl);
    return 0;
}

int
gw_on_http(struct gw *gw, struct lws *wsi, struct conn **pss, const char *uri)
{
    int post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    struct conn *c;
    char q[64];
    const char *v, *why = NULL;
    long long clen;
    int status;

    HF_GW_INC(http_requests);
    /* A browser's preflight carries no token: answered here (access.c). */
    if (gw->g->cfg.cors_origin[0] &&
        lws_hdr_total_length(wsi, WSI_TOKEN_OPTIONS_URI) > 0)
        return gw_cors_preflight(gw, wsi);
    if (strncmp(uri, "/v1/call/", 9) != 0 && strcmp(uri, "/v1/publish") != 0 &&
        strncmp(uri, "/v1/events/", 11) != 0 && strcmp(uri, "/healthz") != 0 &&
        strcmp(uri, "/metrics") != 0) {
        if (strcmp(uri, "/v1/ws") == 0) {
            return lws_return_http_status(wsi, 400,
                                          "use a WebSocket upgrade here")
                       ? -1
                       : 0;
        }
        return serve_static(gw, wsi, uri);
    }
    c = gw_conn_new(gw, wsi, C_HTTP);
    *pss = c;
    c->h->started = gw->tick;
    if ((status = body_framing(wsi, &clen, &why)) != 0) {
        hf_buf b = {0};
        c->h->close_after = 1;
        hf_wire_http_err(&b, HF_EBADREQ, why, strlen(why));
        status = gw_http_respond(c, status, "application/json", b.data, b.len);
        hf_buf_free(&b);
        return status;
    }
    /* A POST without a length has no body (RFC 9112), but lws then waits
     * for one of 100 MB: answer it, and end the connection. */
    c->h->close_after = post && clen < 0;
    c->h->had_body = c->h->awaiting_body = clen > 0;
    if (strncmp(uri, "/v1/", 4) != 0 &&
        gw_http_rate(gw->g, wsi, NULL, 1, &c->h->retry_after) != 0) {
        return gw_http_error(c, HF_ERATELIMIT, "slow down");
    }
    if (strcmp(uri, "/healthz") == 0) {
        return gw_http_respond(c, 200, "application/json", "{\"ok\":true}", 11);
    }
    if (strcmp(uri, "/metrics") == 0) {
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        if (f != NULL) {
            hf_metrics_write(f);
            fclose(f);
        }
        status = gw_http_respond(c, 200, "text/plain; version=0.0.4",
                                 text ? text : "", tlen);
        free(text);
        return status;
    }
    if (gw_authenticate(gw, c, wsi, 1, &why) != 0) {
        /* A refused token costs its address a request too. */
        if (gw_http_rate(gw->g, wsi, NULL, 1, &c->h->retry_after) != 0)
            return gw_http_error(c, HF_ERATELIMIT, "slow down");
        return gw_http_error(c, HF_EUNAUTH, why);
    }
    if (gw_http_rate(gw->g, wsi, c->authed ? c->who : NULL, 1,
                     &c->h->retry_after) != 0) {
        return gw_http_error(c, HF_ERATELIMIT, "slow down");
    }
    if (strncmp(uri, "/v1/call/", 9) == 0 || strcmp(uri, "/v1/publish") == 0) {
        int klen = lws_hdr_custom_length(wsi, "idempotency-key:", 16);
        if (!post) {
            return gw_http_error(c, HF_EBADREQ, "use POST");
        }
        c->h->route = uri[4] == 'p' ? R_PUBLISH : R_CALL;
        if (c->h->route == R_CALL && parse_target(c, uri + 9, 1) != 0) {
            return gw_http_error(c, HF_EBADREQ,
                                 "use /v1/call/{kind}/{name}/{method}");
        }
        /* The actor refuses a key over its limit, as over WebSocket; one
         * too long even to copy is refused here (it used to be dropped,
         * and a retry then ran twice). */
        c->h->idem[0] = '\0';
        if (klen >= (int)sizeof(c->h->idem)) {
            return gw_http_error(c, HF_EBADREQ, "Idempotency-Key too long");
        }
        if (klen > 0 && lws_hdr_custom_copy(wsi, c->h->idem, sizeof(c->h->idem),
                                            "idempotency-key:", 16) < 0) {
            return gw_http_error(c, HF_EBADREQ, "unreadable Idempotency-Key");
        }
        /* No body: no args. */
        return c->h->awaiting_body ? 0 : gw_http_dispatch(gw, c);
    }
    c->h->route = R_EVENTS;
    if (parse_target(c, uri + 11, 0) != 0) {
        return gw_http_error(c, HF_EBADREQ, "use /v1/events/{kind}/{name}");
    }
    if ((v = lws_get_urlarg_by_name(wsi, "after=", q, sizeof(q))) != NULL)
        c->h->after = strtoull(v, NULL, 10);
    if ((v = lws_get_urlarg_by_name(wsi, "limit=", q, sizeof(q))) != NULL)
        c->h->limit = (unsigned)strtoul(v, NULL, 10);
    return gw_http_dispatch(gw, c);
}

/* A request body must arrive whole within --body-timeout-s of the
 * headers (lws re-arms its own timeout on every byte, so a client
 * trickling one a second would hold its connection slot forever): 408,
 * and the connection is closed. */
void
gw_body_deadline(struct gw *gw, struct conn *c)
{
    static const char why[] = "request body not received in time";
    hf_buf b = {0};

    if (!c->h->awaiting_body ||
        gw->tick - c->h->started <= (uint32_t)gw->g->cfg.body_timeout_s)
        return;
    HF_GW_INC(http_body_timeouts);
    c->h->close_after = 1;
    hf_wire_http_err(&b, HF_ETIMEOUT, why, sizeof(why) - 1);
    (void)gw_http_respond(c, 408, "application/json", b.data, b.len);
    hf_buf_free(&b);
}
