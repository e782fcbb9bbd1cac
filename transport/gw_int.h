/*
 * gw_int.h - the gateway's insides, shared by its files (not a public
 * header: transport/gateway.h is).
 *
 * The gateway is these files around one set of structures:
 *   gateway.c  the lws callback, the heartbeat, threads, accept, lifecycle
 *   conn.c     connections: their table, output queues, WebSocket writes
 *   session.c  what a client asks: auth, ACL, subscriptions, forwarding
 *   relay.c    what the host answers: replies, events, fan-out
 *   http.c     the HTTP endpoints
 *   access.c   CORS origins, public addresses, the token bucket (and the
 *              HTTP buckets' table, shared by the gateway threads)
 *   accept.c   the acceptor thread
 *
 * Threads: everything declared here belongs to one gateway thread (struct
 * gw) and is touched only by it, except the fields of struct gw marked
 * "mu" (locked), struct hf_gateway's "rl_mu" ones and auth (an hf_auth,
 * safe from any thread), and the atomics; see gateway.c's design notes.
 */
#ifndef HF_TRANSPORT_GW_INT_H
#define HF_TRANSPORT_GW_INT_H

#include <ev.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/env.h"
#include "core/htab.h"
#include "transport/auth.h"
#include "transport/gateway.h"
#include "transport/nlink.h"
#include "transport/outq.h"
#include "transport/wire.h"

#ifndef HF_WEB_ROOT
#define HF_WEB_ROOT "web"
#endif

#define MAX_MSGS_PER_FRAME 1000
#define BAD_STREAK_CLOSE   16    /* consecutive bad messages: close 1008 */
#define ID_MAX             64    /* bytes of a client id (msgpack) */
#define FRAME_OUT_MAX      65536 /* target size of one outgoing frame */
#define FD_RESERVE         64    /* descriptors that are not connections */

enum { C_WS = 1, C_HTTP };

/* A request awaiting its reply, keyed by request id. */
struct pend {
    hf_hnode hn;       /* in gw->pends, by rid */
    struct pend *free; /* in gw->pfree */
    uint64_t rid;
    uint64_t conn;
    uint8_t op;
    uint8_t idlen;
    char id[ID_MAX];
    uint16_t alen;
    char addr[HF_ADDR_MAX + 1];
};

/* An actor's local subscribers on this gateway. */
struct topic {
    hf_hnode hn; /* in gw->topics, by the address's hash */
    struct conn **conns;
    uint32_t n, cap;
    size_t alen;
    char addr[];
};

/* A connection's subscription (or one being made), in its conn's subs
 * table keyed by the address's hash: O(1) to find, to add and to drop. */
struct csub {
    hf_hnode hn;
    size_t alen;
    char addr[];
};

/* POST /v1/publish: one result per item, written when none is left. */
struct http_pub {
    hf_buf *res;     /* n JSON answers, in item order */
    uint32_t n;      /* items */
    uint32_t left;   /* results still missing */
    int array;       /* the body was an array (else one object) */
    int status0;     /* HTTP status of item 0 (a single item's answer) */
};

/* An HTTP request being served (struct conn's tail for C_HTTP). */
struct http_req {
    int route;
    hf_buf body;       /* the request's */
    int had_body;      /* it came with a body (Content-Length > 0) */
    int forwarded;     /* sent to the host: the answer comes from there */
    int awaiting_body; /* headers read, body still coming */
    int held;          /* rx flow stopped until the response is out */
    int close_after;   /* the framing cannot be trusted: close after */
    uint32_t started;  /* gw->tick when the headers were complete */
    char target[HF_ADDR_MAX + 1];
    char method[65];
    int retry_after; /* a 429's Retry-After, seconds */
    char idem[1024];
    uint64_t after;
    unsigned limit;
    struct http_pub pub; /* route R_PUBLISH */
};

struct conn {
    hf_hnode hn; /* in gw->conns, by id */
    uint64_t id;
    struct lws *wsi;
    struct gw *gw;
    int kind;
    int fmt;
    int authed; /* who is valid */
    hf_principal *who;
    hf_htab subs; /* struct csub: subscribed or being subscribed */
    uint32_t npend;
    hf_buf rx;   /* a fragmented frame being reassembled */
    hf_outq out; /* queued output */
    double tokens;
    uint64_t tok_ns;
    int bad_streak;
    int close_code;    /* close with this at the next writable */
    uint32_t seen;     /* gw->tick when the client last sent anything */
    uint32_t pinged;   /* gw->tick of the last ping (or of the upgrade) */
    uint8_t hello_due; /* write the hello at the next writable */
    uint8_t ping_due;  /* write a ping at the next writable */
    uint8_t hung;      /* hung up for silence: closing */
    /* C_HTTP only: allocated with the conn, absent from WebSocket ones
     * (which are the many: these bytes would be most of a conn). */
    struct http_req h[];
};

struct gw {
    int idx;
    hf_gateway *g;
    struct lws_context *ctx;
    struct ev_loop *loop; /* lws runs on it (epoll); the thread runs it */
    struct lws_vhost *vh;
    SSL_CTX *cctx; /* with TLS: the client context lws would leak (tls.c) */
    pthread_t thr;
    int started;
    lws_retry_bo_t retry;      /* all zero: no lws keepalive (see above) */
    lws_sorted_usec_list_t hb; /* the heartbeat tick */
    uint32_t tick;             /* heartbeat ticks (seconds) since start */

    pthread_mutex_t mu;
    int *fds; /* mu: accepted sockets to adopt */
    size_t nfds, capfds;
    nng_msg **inbox; /* mu: batches from the host */
    size_t ninbox, capinbox;
    int draining; /* mu */
    int closing;  /* mu */
    int exiting;  /* mu */

    hf_htab conns;  /* struct conn, by id */
    hf_htab topics; /* struct topic, by address hash */
    hf_htab pends;  /* struct pend, by request id */
    struct pend *pfree;
    atomic_int owed; /* pend entries: read by drain on the main thread */
    atomic_int live; /* connections of this gateway */
    uint64_t next_conn, next_rid;
    int local_draining, local_closing;
    hf_buf req;
    hf_nsend send;
    hf_nrecv recv;
    int send_open, recv_open;
    hf_nhost *direct; /* the host in this process, or NULL: nng */
    unsigned char *wbuf;
    size_t wcap;
    msgpack_zone zone;
    hf_buf enc[2];
    hf_buf scratch;   /* write_ws: the hello */
    char errbuf[160]; /* an error message being made */
};

struct hf_gateway {
    hf_gateway_config cfg;
    int nw;
    struct gw *gws;
    int lfd;
    int spare; /* a descriptor in reserve, for shedding on EMFILE */
    uint64_t shed, shed_logged_ns;
    int port;
    pthread_t acc;
    int acc_started;
    int wake[2];
    atomic_int stop_accept;
    unsigned next;
    char web_root[512];
    hf_principal anon; /* shared by every connection when auth is off */
    hf_auth *auth;     /* NULL: auth is off */
    hf_principal pub;  /* callers without a token: --public (access.c) */
    pthread_mutex_t rl_mu;
    hf_htab rl; /* rl_mu: HTTP rate buckets (access.c) */
    int rl_open;
};

/* The gateway's counters (core/metrics.h tells how metrics work); its
 * writer is registered when a gateway starts. */
struct hf_gw_metrics {
    atomic_int_least64_t connections; /* open WebSocket connections */
    atomic_uint_least64_t connections_total;
    atomic_uint_least64_t connections_refused;
    atomic_uint_least64_t frames_in;
    atomic_uint_least64_t frames_out;
    atomic_uint_least64_t messages_in;
    atomic_uint_least64_t bad_messages;
    atomic_uint_least64_t rate_limited;
    atomic_uint_least64_t slow_consumers;     /* closed with 1013 */
    atomic_uint_least64_t idle_hangups;       /* silent past the heartbeat */
    atomic_uint_least64_t subs_revoked;       /* ended by a new or expired token */
    atomic_uint_least64_t http_body_timeouts; /* bodies not whole in time */
    atomic_uint_least64_t http_requests;
};

extern struct hf_gw_metrics hf_gw_metrics;

#define HF_GW_INC(f)                                                         \
    atomic_fetch_add_explicit(&hf_gw_metrics.f, 1, memory_order_relaxed)
#define HF_GW_ADD(f, n)                                                      \
    atomic_fetch_add_explicit(&hf_gw_metrics.f, (n), memory_order_relaxed)
#define HF_GW_GET(f)                                                         \
    atomic_load_explicit(&hf_gw_metrics.f, memory_order_relaxed)

/* conn.c */
struct conn *gw_conn_find(struct gw *gw, uint64_t id);
void gw_want_write(struct conn *c);
void gw_queued(struct conn *c);
void gw_append_encoded(struct conn *c, const hf_buf *enc);
void gw_reply_err(struct conn *c, hf_slice id, int err, const char *msg);
int gw_write_ws(struct gw *gw, struct conn *c);
struct conn *gw_conn_new(struct gw *gw, struct lws *wsi, int kind);
void gw_conn_free(struct gw *gw, struct conn *c);
void gw_send_hello(struct conn *c);

/* session.c */
void gw_send_req(struct gw *gw);
unsigned gw_auth_flags(const hf_gateway_config *cfg);
struct csub *gw_sub_find(struct conn *c, hf_slice addr);
void gw_sub_drop(struct gw *gw, struct conn *c, struct csub *cs);
void gw_sub_forget(struct gw *gw, struct conn *c, hf_slice addr);
void gw_unsub_env(struct gw *gw, struct conn *c, const char *addr, size_t alen);
int gw_expired(const struct conn *c);
void gw_expire(struct gw *gw, struct conn *c);
int gw_admit(struct conn *c, hf_slice addr, const char **why);
void gw_forward(struct gw *gw, struct conn *c, int op, hf_slice id, hf_slice to,
                hf_slice method, hf_slice args, hf_slice key,
                const hf_wire_msg *m);
int gw_on_frame(struct gw *gw, struct conn *c, const void *data, size_t len,
                int binary);
int gw_request_token(struct lws *wsi, char *buf, size_t len, const char **tok);
int gw_authenticate(struct gw *gw, struct conn *c, struct lws *wsi,
                    int required, const char **why);
/* The principal a request of c runs as: its token's, the shared one when
 * auth is off, or the public one (g->pub) while it has no token. */
const hf_principal *gw_principal(const struct conn *c);

/* relay.c */
void gw_topic_del(struct gw *gw, const char *addr, size_t alen, struct conn *c);
struct pend *gw_pend_add(struct gw *gw, struct conn *c, int op, hf_slice id,
                         hf_slice addr);
void gw_on_batch(struct gw *gw, nng_msg *m);
void gw_from_host(void *arg, nng_msg *m);

/* accept.c: the acceptor thread's body (arg: the hf_gateway). */
void *gw_acceptor(void *arg);

/* access.c */
enum { GW_ORIGIN_NONE, GW_ORIGIN_OK, GW_ORIGIN_SAME, GW_ORIGIN_REFUSED };
/* cost tokens (at most burst are ever asked) from a bucket refilled at
 * rate a second, holding at most burst: 1, or 0 with *retry_s (may be
 * NULL) the seconds until there are enough. */
int gw_bucket_take(double *tokens, uint64_t *last_us, uint64_t now_us,
                   int rate, int burst, double cost, int *retry_s);
/* cost tokens from the HTTP bucket of p's subject (of the client's
 * address when p is NULL or has none): 0, or HF_ERATELIMIT with
 * *retry_s. A request costs 1; a publish batch one per item. Any gateway
 * thread. */
int gw_http_rate(hf_gateway *g, struct lws *wsi, const hf_principal *p,
                 double cost, int *retry_s);
/* The request's Origin (into origin, n bytes) against --cors-origin:
 * GW_ORIGIN_NONE when there is no Origin or no list; *any for "*". */
int gw_origin(const hf_gateway *g, struct lws *wsi, char *origin, size_t n,
              int *any);
/* Adds the CORS headers an answer to this request carries (none unless
 * its origin is listed). 0, or -1 when they do not fit. */
int gw_cors_headers(const hf_gateway *g, struct lws *wsi, unsigned char **p,
                    unsigned char *end);
/* Answers a preflight (OPTIONS): 204 for an allowed origin, else 403.
 * Returns as an lws callback. */
int gw_cors_preflight(struct gw *gw, struct lws *wsi);
/* Parses --public into g->pub; sets up the HTTP rate table. 0, or -1 with
 * why. */
int gw_access_open(hf_gateway *g, char *why, size_t n);
void gw_access_close(hf_gateway *g);

/* http.c */
/* Was the connection answered and condemned (see http_respond)? */
int gw_http_condemned(struct lws *wsi);
int gw_http_reply(struct conn *c, struct pend *p, const hf_env *e);
int gw_http_error(struct conn *c, int err, const char *msg);
int gw_http_respond(struct conn *c, int status, const char *ctype,
                    const void *body, size_t len);
int gw_http_dispatch(struct gw *gw, struct conn *c);
int gw_on_http(struct gw *gw, struct lws *wsi, struct conn **pss,
               const char *uri);
void gw_body_deadline(struct gw *gw, struct conn *c);

/* tls.c: 0 when TLS is off or its files load; else HF_EBADREQ, logged. */
int gw_tls_check(const hf_gateway_config *cfg);
/* Fills info's TLS fields for gw's lws context (after gw_tls_check);
 * gw->cctx is the caller's to free after lws_context_destroy. 0, or -1
 * out of memory. */
int gw_tls_info(struct gw *gw, struct lws_context_creation_info *info);

/* publish.c: POST /v1/publish, once the body is whole; each host reply.
 * Both return as gw_http_respond (0 while the answer is not written). */
int gw_publish_dispatch(struct gw *gw, struct conn *c);
int gw_publish_reply(struct conn *c, struct pend *p, const hf_env *e);

#endif
