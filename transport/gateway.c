/*
 * gateway.c - WebSocket and HTTP connections, routed to actors over nng.
 *
 * Design notes
 * ------------
 * Threads. One acceptor thread owns the listening socket; it hands each
 * accepted socket to a gateway thread (round robin) through that thread's
 * locked queue and wakes it with lws_cancel_service(), the only lws call
 * that is safe from another thread. Each gateway thread runs one lws
 * context; everything about its connections (tables, subscriptions,
 * buffers) is touched only by it. nng's receive callback, on an nng thread,
 * likewise only queues the batch and wakes the gateway.
 *
 * Event loop. Each context runs on a libev loop of its own (epoll), through
 * lws's libev support (Debian's libwebsockets-evlib-ev plugin), and the
 * thread runs that loop until drain_queues sees the exit flag. lws's
 * built-in loop polls every descriptor on every wakeup, and each handshake
 * took a few of those wakeups, so connects slowed as connections grew.
 * epoll costs what is ready.
 *
 * Heartbeat. Each gateway thread keeps its WebSocket connections alive
 * itself: one lws timer per context fires every second (a "tick") and
 * walks the connection table. Anything received from a client (a frame,
 * a pong) stamps its conn with the tick; one idle for --heartbeat-s gets
 * a ping (queued like output, written at the next writable), one silent
 * for 2 x --heartbeat-s + 5 s is hung up. lws's own per-connection
 * keepalive (its retry policy) is switched off: in lws 4.1 every re-arm
 * of a connection's timer is an insertion into one sorted list of all of
 * them, O(connections), for every pong, and each new connection is slower
 * than the last. The walk is O(connections) once a second instead, and
 * touches nothing lws keeps. (Figures: the README's *Many connections*.)
 *
 * Descriptors. Every connection is one; the gateway raises the soft
 * RLIMIT_NOFILE to the hard limit before lws sizes its tables by it, says
 * how many connections that allows, and when accept() still runs out it
 * sheds the waiting connection through a descriptor kept in reserve
 * rather than leave it to hang in the backlog (and poll() to report it
 * again at once, forever).
 *
 * The acceptor thread's body is accept.c; the gateway's other files: see
 * gw_int.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"
#include "core/vec.h"
#include "transport/gw_int.h"

/* ------------------------------------------------------------------ */
/* the lws callback                                                    */

/* drain_queues, on closing: every WebSocket says goodbye with 1001. */
static void
close_1001(hf_hnode *n, void *arg)
{
    struct conn *c = hf_htab_entry(n, struct conn, hn);

    (void)arg;
    if (c->kind == C_WS && !c->close_code) {
        c->close_code = 1001;
        gw_want_write(c);
    }
}

static void
drain_queues(struct gw *gw)
{
    int *fds;
    size_t nfds, nin;
    nng_msg **in;
    int draining, closing;

    pthread_mutex_lock(&gw->mu);
    fds = gw->fds;
    nfds = gw->nfds;
    gw->fds = NULL;
    gw->nfds = gw->capfds = 0;
    in = gw->inbox;
    nin = gw->ninbox;
    gw->inbox = NULL;
    gw->ninbox = gw->capinbox = 0;
    draining = gw->draining;
    closing = gw->closing;
    if (gw->exiting)
        ev_break(gw->loop, EVBREAK_ALL);
    pthread_mutex_unlock(&gw->mu);

    for (size_t i = 0; i < nfds; i++) {
        if (draining) {
            close(fds[i]);
            atomic_fetch_sub(&gw->live, 1);
        } else if (lws_adopt_socket_vhost(gw->vh, fds[i]) == NULL) {
            atomic_fetch_sub(&gw->live, 1); /* lws closed it */
        }
    }
    free(fds);
    for (size_t i = 0; i < nin; i++)
        gw_on_batch(gw, in[i]);
    free(in);
    gw->local_draining = draining;
    if (closing && !gw->local_closing) {
        gw->local_closing = 1;
        hf_htab_walk(&gw->conns, close_1001, NULL);
    }
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
         void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct gw *gw = ctx ? lws_context_user(ctx) : NULL;
    struct conn **pss = user, *c = pss ? *pss : NULL;
    struct conn *hc = c && c->kind == C_HTTP ? c : NULL; /* has c->h */
    char uri[1024];

    /* A connection answered and condemned (http_respond): whatever lws
     * still has for it is not served. */
    if (wsi != NULL && gw_http_condemned(wsi) &&
        (reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_HTTP_BODY ||
         reason == LWS_CALLBACK_HTTP_BODY_COMPLETION))
        return -1;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_queues(gw);
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Refuse the upgrade itself, with an HTTP status the client can
         * read, for a wrong path, while draining, for a browser page of
         * an origin --cors-origin does not list, or for a token that is
         * present but bad. (No token at all is allowed: an "auth" message
         * may follow.) Nonzero: lws sends nothing more and goes on. */
        char buf[HF_AUTH_TOKEN_MAX + 1];
        const char *tok;
        hf_principal p;
        int status = 0, any;
        const char *why = NULL;
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/v1/ws") != 0)
            status = 404, why = "the WebSocket endpoint is /v1/ws";
        else if (gw->local_draining)
            status = 503, why = "server is shutting down";
        else if (gw_origin(gw->g, wsi, buf, sizeof(buf), &any) ==
                 GW_ORIGIN_REFUSED)
            status = 403, why = "this page's origin is not allowed "
                                "(--cors-origin)";
        else if (gw->g->auth != NULL &&
                 gw_request_token(wsi, buf, sizeof(buf), &tok) &&
                 hf_auth_check(gw->g->auth, tok, strlen(tok),
                               (int64_t)time(NULL), &p, &why) != 0)
            status = 401;
        if (status == 0)
            return 0;
        return lws_return_http_status(wsi, (unsigned)status, why) ? -1 : 1;
    }

    case LWS_CALLBACK_ESTABLISHED: {
        const struct lws_protocols *pr = lws_get_protocol(wsi);
        const char *why;
        c = gw_conn_new(gw, wsi, C_WS);
        *pss = c;
        c->fmt = (pr && pr->id == 1) ? HF_WIRE_MSGPACK : HF_WIRE_JSON;
        HF_GW_ADD(connections, 1);
        HF_GW_INC(connections_total);
        if (gw_authenticate(gw, c, wsi, 0, &why) != 0) {
            /* A token was given and it is bad: refuse the connection. */
            c->close_code = 1008;
            gw_want_write(c);
            return 0;
        }
        gw_send_hello(c);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c != NULL)
            c->seen = gw->tick;
        return 0;

    case LWS_CALLBACK_RECEIVE: {
        size_t max = (size_t)gw->g->cfg.frame_max;
        if (c == NULL || c->close_code)
            return 0;
        c->seen = gw->tick;
        if (c->rx.len + len > max) {
            c->close_code = 1009;
            c->rx.len = 0;
            gw_want_write(c);
            return 0;
        }
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
            lws_remaining_packet_payload(wsi) == 0 && c->rx.len == 0)
            return gw_on_frame(gw, c, in, len, lws_frame_is_binary(wsi));
        HF_MUST(hf_buf_append(&c->rx, in, len));
        if (lws_is_final_fragment(wsi) &&
            lws_remaining_packet_payload(wsi) == 0) {
            int rv = gw_on_frame(gw, c, c->rx.data, c->rx.len,
                                 lws_frame_is_binary(wsi));
            c->rx.len = 0;
            return rv;
        }
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? gw_write_ws(gw, c) : 0;

    case LWS_CALLBACK_CLOSED:
        if (c != NULL) {
            HF_GW_ADD(connections, -1);
            gw_conn_free(gw, c);
            *pss = NULL;
        }
        return 0;

    case LWS_CALLBACK_HTTP:
        return gw_on_http(gw, wsi, pss, in ? (const char *)in : "/");

    case LWS_CALLBACK_HTTP_BODY:
        /* After an early answer the conn is gone (pss cleared) and lws
         * discards the rest of the body. */
        if (hc == NULL)
            return 0;
        if (hc->h->body.len + len > (size_t)gw->g->cfg.frame_max)
            return gw_http_error(hc, HF_ETOOLARGE, "body too large");
        HF_MUST(hf_buf_append(&hc->h->body, in, len));
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (hc == NULL)
            return 0;
        hc->h->awaiting_body = 0;
        return hc->npend == 0 ? gw_http_dispatch(gw, hc) : 0;

    case LWS_CALLBACK_CLOSED_HTTP:
        if (c != NULL) {
            gw_conn_free(gw, c);
            *pss = NULL;
        }
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        atomic_fetch_sub(&gw->live, 1);
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"holdfast.v1.json", callback, sizeof(struct conn *), 65536, 0, NULL, 0},
    {"holdfast.v1.msgpack", callback, sizeof(struct conn *), 65536, 1, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------------ */
/* threads                                                             */

/* The heartbeat tick, on the gateway thread (see the design notes), for
 * one connection. A stamp is the tick current when something arrived,
 * anywhere in that second: so "idle >= N ticks" means more than N - 1
 * seconds, and the thresholds below are one tick longer than the seconds
 * they stand for. */
static void
tick_one(hf_hnode *n, void *arg)
{
    struct gw *gw = arg;
    struct conn *c = hf_htab_entry(n, struct conn, hn);
    uint32_t hb = (uint32_t)gw->g->cfg.heartbeat_s;
    uint32_t ping_after = hb + 1, hangup_after = 2 * hb + 5 + 1;
    uint32_t idle = gw->tick - c->seen;

    if (c->kind == C_HTTP) {
        gw_body_deadline(gw, c); /* may free c */
        return;
    }
    if (c->hung || c->wsi == NULL)
        return;
    if (gw_expired(c) && c->authed)
        gw_expire(gw, c);
    if (idle >= hangup_after) {
        /* Closed from outside its callbacks: at lws's next turn, as lws's
         * own keepalive did, without a close frame (the peer is not
         * answering; it may not be reading at all). */
        c->hung = 1;
        HF_GW_INC(idle_hangups);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    } else if (idle >= ping_after && gw->tick - c->pinged >= ping_after) {
        c->pinged = gw->tick;
        c->ping_due = 1;
        lws_callback_on_writable(c->wsi);
    }
}

static void
heartbeat(lws_sorted_usec_list_t *sul)
{
    struct gw *gw = lws_container_of(sul, struct gw, hb);

    gw->tick++;
    hf_htab_walk(&gw->conns, tick_one, gw);
    lws_sul_schedule(gw->ctx, 0, &gw->hb, heartbeat, LWS_US_PER_SEC);
}

static void *
gw_main(void *arg)
{
    struct gw *gw = arg;
    int exiting = 0;

    lws_sul_schedule(gw->ctx, 0, &gw->hb, heartbeat, LWS_US_PER_SEC);
    while (!exiting) {
        ev_run(gw->loop, 0); /* until drain_queues sees exiting */
        pthread_mutex_lock(&gw->mu);
        exiting = gw->exiting;
        pthread_mutex_unlock(&gw->mu);
    }
    lws_sul_cancel(&gw->hb);
    /* OpenSSL (libjwt's HMAC) keeps an error state per thread, freed only
     * here. */
    OPENSSL_thread_stop();
    return NULL;
}

/* ------------------------------------------------------------------ */
/* metrics                                                             */

struct hf_gw_metrics hf_gw_metrics;

static void
metrics_write(FILE *out)
{
    hf_metrics_gauge(out, "holdfast_connections", "Open WebSocket connections.",
          HF_GW_GET(connections));
    hf_metrics_counter(out, "holdfast_connections_total", "WebSocket connections.",
            HF_GW_GET(connections_total));
    hf_metrics_counter(out, "holdfast_connections_refused_total",
            "Connections refused: over --max-conns, or out of file "
            "descriptors.",
            HF_GW_GET(connections_refused));
    hf_metrics_counter(out, "holdfast_frames_in_total", "WebSocket frames received.",
            HF_GW_GET(frames_in));
    hf_metrics_counter(out, "holdfast_frames_out_total", "WebSocket frames sent.",
            HF_GW_GET(frames_out));
    hf_metrics_counter(out, "holdfast_messages_in_total", "Client messages received.",
            HF_GW_GET(messages_in));
    hf_metrics_counter(out, "holdfast_bad_messages_total",
            "Client messages refused as malformed.", HF_GW_GET(bad_messages));
    hf_metrics_counter(out, "holdfast_rate_limited_total",
            "Client messages and HTTP requests refused by the rate limit.",
            HF_GW_GET(rate_limited));
    hf_metrics_counter(out, "holdfast_slow_consumers_total",
            "Connections closed for not reading (1013).",
            HF_GW_GET(slow_consumers));
    hf_metrics_counter(out, "holdfast_idle_hangups_total",
            "Connections hung up for not answering the heartbeat.",
            HF_GW_GET(idle_hangups));
    hf_metrics_counter(out, "holdfast_subs_revoked_total",
            "Subscriptions ended because the connection's token changed or "
            "expired.",
            HF_GW_GET(subs_revoked));
    hf_metrics_counter(out, "holdfast_http_body_timeouts_total",
            "HTTP requests answered 408: the body did not arrive in time.",
            HF_GW_GET(http_body_timeouts));
    hf_metrics_counter(out, "holdfast_http_requests_total", "HTTP requests.",
            HF_GW_GET(http_requests));
}

/* ------------------------------------------------------------------ */
/* options                                                             */

#define F(f) offsetof(hf_gateway_config, f)
#define S(f) sizeof(((hf_gateway_config *)0)->f)

const struct hf_opt hf_gateway_config_opts[] = {
    {.name = "listen", .type = HF_OPT_STR, .off = F(listen), .size = S(listen),
     .def = "127.0.0.1:8080", .help = "address and port to serve on"},
    {.name = "gateways", .type = HF_OPT_INT, .off = F(gateways), .min = 0,
     .max = 256, .def = "0", .help = "gateway threads (0 = cores)"},
    {.name = "jwt-secret", .type = HF_OPT_STR, .off = F(jwt_secret),
     .size = S(jwt_secret), .def = "",
     .help = "HS256/384/512 secret; no secret, key or JWKS: auth off"},
    {.name = "jwt-key", .type = HF_OPT_STR, .off = F(jwt_key),
     .size = S(jwt_key), .def = "",
     .help = "PEM public key file: RS256/384/512, ES256/384 tokens"},
    {.name = "jwks", .type = HF_OPT_STR, .off = F(jwks), .size = S(jwks),
     .def = "", .help = "JWKS file: RS/ES tokens by kid; re-read on SIGHUP"},
    {.name = "jwt-issuer", .type = HF_OPT_STR, .off = F(jwt_issuer),
     .size = S(jwt_issuer), .def = "", .help = "tokens must have this iss"},
    {.name = "jwt-audience", .type = HF_OPT_STR, .off = F(jwt_audience),
     .size = S(jwt_audience), .def = "",
     .help = "tokens' aud must hold this"},
    {.name = "jwt-role-claim", .type = HF_OPT_STR, .off = F(jwt_role_claim),
     .size = S(jwt_role_claim), .def = "role",
     .help = "claim holding the role (dotted path for nested ones)"},
    {.name = "jwt-leeway-s", .type = HF_OPT_INT, .off = F(jwt_leeway_s),
     .min = 0, .max = 3600, .def = "30",
     .help = "clock skew allowed on exp and nbf, seconds"},
    {.name = "jwt-allow-no-exp", .type = HF_OPT_BOOL, .off = F(jwt_allow_no_exp),
     .def = "false",
     .help = "accept tokens without an exp claim (valid until revoked)"},
    {.name = "public", .type = HF_OPT_LIST, .off = F(public_),
     .size = S(public_), .def = "",
     .help = "address pattern readable without a token (repeatable)"},
    {.name = "cors-origin", .type = HF_OPT_LIST, .off = F(cors_origin),
     .size = S(cors_origin), .def = "",
     .help = "browser origin allowed to call in, or * (repeatable)"},
    {.name = "frame-max", .type = HF_OPT_INT, .off = F(frame_max), .min = 256,
     .max = 64 << 20, .def = "65536",
     .help = "largest frame a client may send (bytes); larger: close 1009"},
    {.name = "rate", .type = HF_OPT_INT, .off = F(rate), .min = 1,
     .max = INT_MAX, .def = "1000",
     .help = "messages per second per connection (token bucket)"},
    {.name = "rate-burst", .type = HF_OPT_INT, .off = F(rate_burst), .min = 1,
     .max = INT_MAX, .def = "2000", .help = "token bucket size"},
    {.name = "outbuf-max", .type = HF_OPT_INT, .off = F(outbuf_max),
     .min = 4096, .max = INT_MAX, .def = "4194304",
     .help = "bytes queued to one connection; more: close 1013"},
    {.name = "subs-max", .type = HF_OPT_INT, .off = F(subs_max), .min = 1,
     .max = INT_MAX, .def = "1000",
     .help = "subscriptions one connection may hold"},
    {.name = "body-timeout-s", .type = HF_OPT_INT, .off = F(body_timeout_s),
     .min = 1, .max = 3600, .def = "10",
     .help = "an HTTP request body must arrive whole within this (408)"},
    {.name = "max-conns", .type = HF_OPT_INT, .off = F(max_conns), .min = 1,
     .max = INT_MAX, .def = "100000", .help = "connections per node"},
    {.name = "heartbeat-s", .type = HF_OPT_INT, .off = F(heartbeat_s),
     .min = 1, .max = 3600, .def = "25",
     .help = "ping a connection idle this long; drop it at 2x + 5 s"},
    {.name = "drain-ms", .type = HF_OPT_INT, .off = F(drain_ms), .min = 0,
     .max = INT_MAX, .def = "5000",
     .help = "on SIGTERM, wait this long for in-flight replies"},
    {.name = "web-root", .type = HF_OPT_STR, .off = F(web_root),
     .size = S(web_root), .def = "",
     .help = "static files served at / (empty: web/ of the source tree)"},
    {.name = "tls-cert", .type = HF_OPT_STR, .off = F(tls_cert),
     .size = S(tls_cert), .def = "",
     .help = "PEM certificate (chain): serve https:// and wss:// (transport/tls.c)"},
    {.name = "tls-key", .type = HF_OPT_STR, .off = F(tls_key),
     .size = S(tls_key), .def = "", .help = "PEM private key of --tls-cert"},
};
const size_t hf_gateway_config_nopts =
    sizeof(hf_gateway_config_opts) / sizeof(hf_gateway_config_opts[0]);

hf_optset
hf_gateway_config_set(hf_gateway_config *cfg)
{
    return (hf_optset){hf_gateway_config_opts, hf_gateway_config_nopts, cfg};
}

void
hf_gateway_config_defaults(hf_gateway_config *cfg)
{
    hf_optset s = hf_gateway_config_set(cfg);

    memset(cfg, 0, sizeof(*cfg));
    hf_opts_defaults(&s, 1);
}

void
hf_gateway_config_finish(hf_gateway_config *cfg)
{
    if (cfg->gateways == 0)
        cfg->gateways = hf_config_cores();
}

static void
lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    hf_log(level == LLL_ERR ? HF_LOG_ERROR : HF_LOG_WARN, "lws", "%.*s", (int)n,
           line);
}

static int
is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

static int
listen_on(hf_gateway *g)
{
    char host[128];
    const char *colon = strrchr(g->cfg.listen, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int one = 1;

    if (colon == NULL || (size_t)(colon - g->cfg.listen) >= sizeof(host)) {
        hf_error("gateway", "--listen wants host:port, got '%s'",
                 g->cfg.listen);
        return HF_EBADREQ;
    }
    memcpy(host, g->cfg.listen, (size_t)(colon - g->cfg.listen));
    host[colon - g->cfg.listen] = '\0';
    if (g->auth == NULL && !is_loopback(host)) {
        hf_warn("gateway",
                "auth is off (no --jwt-secret, --jwt-key or --jwks): "
                "binding 127.0.0.1 instead of %s",
                host);
        strcpy(host, "127.0.0.1");
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        hf_error("gateway", "bad listen address '%s'", host);
        return HF_EBADREQ;
    }
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    g->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->lfd < 0)
        return HF_EINTERNAL;
    setsockopt(g->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(g->lfd, 4096) != 0) {
        hf_error("gateway", "cannot listen on %s:%s: %s", host, colon + 1,
                 strerror(errno));
        close(g->lfd);
        g->lfd = -1;
        return HF_EUNAVAIL;
    }
    getsockname(g->lfd, (struct sockaddr *)&sa, &sl);
    g->port = ntohs(sa.sin_port);
    hf_info("gateway", "listening on %s://%s:%d (WebSocket /v1/ws)%s",
            g->cfg.tls_cert[0] ? "https" : "http", host, g->port,
            g->auth != NULL ? "" : "; auth is OFF: loopback only");
    return 0;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit (before any lws context
 * exists: lws sizes its descriptor tables by it) and says what it allows. */
static void
raise_nofile(const hf_gateway_config *cfg)
{
    struct rlimit rl;
    rlim_t was;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return;
    if (rl.rlim_cur < (rlim_t)cfg->max_conns + FD_RESERVE)
        hf_warn("gateway",
                "RLIMIT_NOFILE is %llu (hard %llu%s): room for about %llu "
                "connections, fewer than --max-conns %d; raise the hard "
                "limit (ulimit -Hn, LimitNOFILE=) to hold more",
                (unsigned long long)rl.rlim_cur,
                (unsigned long long)rl.rlim_max,
                was < rl.rlim_cur ? ", soft limit raised to it" : "",
                (unsigned long long)(rl.rlim_cur > FD_RESERVE
                                         ? rl.rlim_cur - FD_RESERVE
                                         : 0),
                cfg->max_conns);
    else if (was < rl.rlim_cur)
        hf_info("gateway", "RLIMIT_NOFILE raised from %llu to %llu",
                (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

/* The token verifier and the access rules, from the options. */
static int
open_auth(hf_gateway *g)
{
    const hf_gateway_config *c = &g->cfg;
    char why[512];

    if (hf_auth_open(&g->auth,
                     &(struct hf_auth_opts){
                         .secret = c->jwt_secret,
                         .key_file = c->jwt_key,
                         .jwks_file = c->jwks,
                         .issuer = c->jwt_issuer,
                         .audience = c->jwt_audience,
                         .role_claim = c->jwt_role_claim,
                         .leeway_s = c->jwt_leeway_s,
                         .flags = c->jwt_allow_no_exp ? HF_AUTH_ALLOW_NO_EXP
                                                      : 0,
                     },
                     why, sizeof(why)) != 0 ||
        gw_access_open(g, why, sizeof(why)) != 0) {
        hf_error("gateway", "%s", why);
        return HF_EBADREQ;
    }
    return 0;
}

static int
gw_open(hf_gateway *g, struct gw *gw, int idx, const char *base,
        hf_nhost *direct)
{
    struct lws_context_creation_info info;
    char url[256];

    gw->idx = idx;
    gw->g = g;
    pthread_mutex_init(&gw->mu, NULL);
    msgpack_zone_init(&gw->zone, 8192);
    /* gw->retry stays zero: lws schedules no per-connection keepalive
     * timer when secs_since_valid_hangup is 0 (heartbeat() does it). */

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = gw;
    info.vhost_name = "holdfast";
    info.retry_and_idle_policy = &gw->retry;
    if ((gw->loop = ev_loop_new(EVBACKEND_EPOLL)) == NULL) {
        hf_error("gateway", "cannot create an epoll event loop");
        return HF_EINTERNAL;
    }
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = (void **)&gw->loop;
    if (g->cfg.tls_cert[0] != '\0' && gw_tls_info(gw, &info) != 0)
        return HF_EINTERNAL;
    if ((gw->ctx = lws_create_context(&info)) == NULL) {
        hf_error("gateway", "cannot create the lws context (the libev "
                            "plugin comes with libwebsockets-evlib-ev)");
        return HF_EINTERNAL;
    }
    gw->vh = lws_get_vhost_by_name(gw->ctx, "holdfast");
    if ((gw->direct = direct) != NULL) {
        hf_nhost_attach(direct, idx, gw_from_host, gw);
    } else {
        snprintf(url, sizeof(url), "%s-gw%d", base, idx);
        if (hf_nrecv_open(&gw->recv, url, gw_from_host, gw) != 0)
            return HF_EINTERNAL;
        gw->recv_open = 1;
        snprintf(url, sizeof(url), "%s-host", base);
        if (hf_nsend_open(&gw->send, url, idx) != 0)
            return HF_EINTERNAL;
        gw->send_open = 1;
    }
    if (pthread_create(&gw->thr, NULL, gw_main, gw) != 0)
        return HF_EINTERNAL;
    gw->started = 1;
    return 0;
}

int
hf_gateway_start(hf_gateway **out, const hf_gateway_config *cfg,
                 const char *base, hf_nhost *direct)
{
    hf_gateway *g = hf_xcalloc(1, sizeof(*g));
    int rv;

    g->cfg = *cfg;
    hf_metrics_register(metrics_write);
    g->lfd = -1;
    g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    g->wake[0] = g->wake[1] = -1;
    snprintf(g->web_root, sizeof(g->web_root), "%s",
             cfg->web_root[0] ? cfg->web_root : HF_WEB_ROOT);
    /* Auth off: every role, and no subject (kinds that need one, such as
     * a poll's voter, then ask for it explicitly). */
    hf_auth_anonymous(&g->anon, NULL);
    g->anon.sub[0] = '\0';
    lws_set_log_level(LLL_ERR, lws_log);
    raise_nofile(cfg);
    if ((rv = gw_tls_check(cfg)) != 0 || (rv = open_auth(g)) != 0 ||
        (rv = listen_on(g)) != 0)
        goto fail;
    if (pipe2(g->wake, O_CLOEXEC) != 0) {
        rv = HF_EINTERNAL;
        goto fail;
    }
    g->nw = cfg->gateways;
    g->gws = hf_xcalloc((size_t)g->nw, sizeof(*g->gws));
    for (int i = 0; i < g->nw; i++)
        if ((rv = gw_open(g, &g->gws[i], i, base, direct)) != 0)
            goto fail;
    if (pthread_create(&g->acc, NULL, gw_acceptor, g) != 0) {
        rv = HF_EINTERNAL;
        goto fail;
    }
    g->acc_started = 1;
    *out = g;
    return 0;
fail:
    hf_gateway_stop(g);
    return rv;
}

int
hf_gateway_reload(hf_gateway *g)
{
    char why[512];

    if (g->auth == NULL)
        return 0;
    if (hf_auth_reload(g->auth, why, sizeof(why)) != 0) {
        hf_error("gateway", "keys not reloaded, the old ones stay: %s", why);
        return -1;
    }
    hf_info("gateway", "token keys reloaded");
    return 0;
}

int
hf_gateway_port(const hf_gateway *g)
{
    return g->port;
}

static void
stop_acceptor(hf_gateway *g)
{
    if (g->acc_started) {
        atomic_store(&g->stop_accept, 1);
        if (write(g->wake[1], "x", 1) < 0)
            hf_warn("gateway", "cannot wake the acceptor");
        pthread_join(g->acc, NULL);
        g->acc_started = 0;
    }
    if (g->lfd >= 0) {
        close(g->lfd);
        g->lfd = -1;
    }
}

static void
set_flag(struct gw *gw, int *flag)
{
    pthread_mutex_lock(&gw->mu);
    *flag = 1;
    pthread_mutex_unlock(&gw->mu);
    lws_cancel_service(gw->ctx);
}

void
hf_gateway_drain(hf_gateway *g)
{
    uint64_t deadline;
    int owed = 0, live = 0;

    stop_acceptor(g);
    for (int i = 0; i < g->nw; i++)
        set_flag(&g->gws[i], &g->gws[i].draining);
    deadline = (uint64_t)lws_now_usecs() + (uint64_t)g->cfg.drain_ms * 1000;
    do {
        owed = 0;
        for (int i = 0; i < g->nw; i++)
            owed += atomic_load(&g->gws[i].owed);
        if (owed > 0)
            usleep(5000);
    } while (owed > 0 && (uint64_t)lws_now_usecs() < deadline);
    if (owed > 0)
        hf_warn("gateway", "stopping with %d replies still owed", owed);
    for (int i = 0; i < g->nw; i++)
        set_flag(&g->gws[i], &g->gws[i].closing);
    /* Let the 1001 close frames go out. */
    deadline = (uint64_t)lws_now_usecs() + 1000000;
    do {
        live = (int)HF_GW_GET(connections);
        if (live > 0)
            usleep(5000);
    } while (live > 0 && (uint64_t)lws_now_usecs() < deadline);
}

static void
free_pend(hf_hnode *n, void *arg)
{
    (void)arg;
    free(hf_htab_entry(n, struct pend, hn));
}

void
hf_gateway_stop(hf_gateway *g)
{
    if (g == NULL)
        return;
    stop_acceptor(g);
    for (int i = 0; g->gws && i < g->nw; i++) {
        struct gw *gw = &g->gws[i];
        if (gw->recv_open)
            hf_nrecv_close(&gw->recv);
        gw->recv_open = 0;
        if (gw->direct)
            hf_nhost_detach(gw->direct, i);
        if (gw->started) {
            set_flag(gw, &gw->exiting);
            pthread_join(gw->thr, NULL);
        }
        if (gw->ctx)
            lws_context_destroy(gw->ctx);
        SSL_CTX_free(gw->cctx);
        if (gw->loop)
            ev_loop_destroy(gw->loop);
        if (gw->send_open)
            hf_nsend_close(&gw->send);
        for (size_t j = 0; j < gw->ninbox; j++)
            nng_msg_free(gw->inbox[j]);
        free(gw->inbox);
        for (size_t j = 0; j < gw->nfds; j++)
            close(gw->fds[j]);
        free(gw->fds);
        hf_htab_walk(&gw->pends, free_pend, NULL);
        while (gw->pfree) {
            struct pend *p = gw->pfree;
            gw->pfree = p->free;
            free(p);
        }
        hf_htab_fini(&gw->pends);
        hf_htab_fini(&gw->conns);  /* emptied as lws closed them */
        hf_htab_fini(&gw->topics); /* emptied with their conns */
        free(gw->wbuf);
        hf_buf_free(&gw->req);
        hf_buf_free(&gw->enc[0]);
        hf_buf_free(&gw->enc[1]);
        hf_buf_free(&gw->scratch);
        msgpack_zone_destroy(&gw->zone);
        pthread_mutex_destroy(&gw->mu);
    }
    free(g->gws);
    if (g->wake[0] >= 0)
        close(g->wake[0]);
    if (g->wake[1] >= 0)
        close(g->wake[1]);
    if (g->spare >= 0)
        close(g->spare);
    gw_access_close(g);
    hf_auth_close(g->auth);
    free(g);
}
