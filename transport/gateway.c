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
 * built-in loop polls every descriptor on every wakeup: at 19,000 idle
 * connections poll() was most of the gateway's remaining CPU, and each
 * handshake took a few of those wakeups, so connects slowed to a few
 * hundred a second as connections grew. epoll costs what is ready.
 *
 * Requests. A client frame is decoded (transport/wire.c), checked (auth,
 * ACL, address, rate), and each message becomes a host envelope with a
 * gateway-wide request id ("id") and the connection id ("c"). The client's
 * own id, which may be any JSON scalar, waits in the pending table under
 * the request id until the reply comes back. All envelopes produced while
 * handling one lws callback are appended to the nng sender at once; the
 * sender coalesces further while a send is in flight (transport/nlink.c).
 *
 * Fan-out. The host sends an event once per gateway that has subscribers
 * of the actor; the gateway writes it to each local subscriber, encoding
 * it once per format. A connection joins an actor's local subscriber list
 * when the host's reply to its "sub" arrives: that reply precedes every
 * event the subscription should see on the same ordered stream, and the
 * backlog events (addressed to the connection alone) follow it.
 *
 * Output. Messages for a connection accumulate in its out buffer and are
 * written when lws says it is writable, as many as fit in one frame (JSON
 * joined by '\n', msgpack concatenated). A connection whose buffer passes
 * --outbuf-max is a slow consumer: it is closed with 1013 and can recover
 * with "since".
 *
 * Heartbeat. Each gateway thread keeps its WebSocket connections alive
 * itself: one lws timer per context fires every second (a "tick") and
 * walks the connection table. Anything received from a client (a frame,
 * a pong) stamps its conn with the tick; one idle for --heartbeat-s gets
 * a ping (queued like output, written at the next writable), one silent
 * for 2 x --heartbeat-s + 5 s is hung up. lws's own per-connection
 * keepalive (its retry policy) is switched off: in lws 4.1 every re-arm
 * of a connection's timer is an insertion into one sorted list of all of
 * them, O(connections), which at 19,000 idle connections took 92% of a
 * core for the pongs alone and made each new connection slower than the
 * last. The walk is O(connections) once a second instead, and touches
 * nothing lws keeps.
 *
 * Descriptors. Every connection is one; the gateway raises the soft
 * RLIMIT_NOFILE to the hard limit before lws sizes its tables by it, says
 * how many connections that allows, and when accept() still runs out it
 * sheds the waiting connection through a descriptor kept in reserve
 * rather than leave it to hang in the backlog (and poll() to report it
 * again at once, forever).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/err.h"
#include "core/htab.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mpjson.h"
#include "transport/auth.h"
#include "transport/gateway.h"
#include "transport/nlink.h"
#include "transport/outq.h"
#include "transport/wire.h"

#ifndef HF_WEB_ROOT
#define HF_WEB_ROOT "transport/web"
#endif

#define MAX_MSGS_PER_FRAME 1000
#define BAD_STREAK_CLOSE   16    /* consecutive bad messages: close 1008 */
#define ID_MAX             64    /* bytes of a client id (msgpack) */
#define FRAME_OUT_MAX      65536 /* target size of one outgoing frame */
#define FD_RESERVE         64    /* descriptors that are not connections */

enum { C_WS = 1, C_HTTP };

/* A request awaiting its reply, keyed by request id. */
struct pend {
    struct pend *next;
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
    struct topic *next;
    uint64_t hash;
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
    char idem[1024];
    uint64_t after;
    unsigned limit;
};

struct conn {
    struct conn *hnext;
    uint64_t id;
    struct lws *wsi;
    struct gw *gw;
    int kind;
    int fmt;
    int authed;       /* who is valid */
    hf_principal *who;
    hf_htab subs;     /* struct csub: subscribed or being subscribed */
    uint32_t npend;
    hf_buf rx;        /* a fragmented frame being reassembled */
    hf_outq out;      /* queued output */
    double tokens;
    uint64_t tok_ns;
    int bad_streak;
    int close_code;   /* close with this at the next writable */
    uint32_t seen;    /* gw->tick when the client last sent anything */
    uint32_t pinged;  /* gw->tick of the last ping (or of the upgrade) */
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
    pthread_t thr;
    int started;
    lws_retry_bo_t retry;   /* all zero: no lws keepalive (see above) */
    lws_sorted_usec_list_t hb; /* the heartbeat tick */
    uint32_t tick;          /* heartbeat ticks (seconds) since start */

    pthread_mutex_t mu;
    int *fds;          /* mu: accepted sockets to adopt */
    size_t nfds, capfds;
    nng_msg **inbox;   /* mu: batches from the host */
    size_t ninbox, capinbox;
    int draining;      /* mu */
    int closing;       /* mu */
    int exiting;       /* mu */

    struct conn **ctab;
    uint32_t cmask, nconns;
    struct topic **ttab;
    uint32_t tmask, ntopics;
    struct pend **ptab;
    uint32_t pmask, npend;
    struct pend *pfree;
    atomic_int owed; /* pend entries: read by drain on the main thread */
    atomic_int live; /* connections of this gateway */
    uint64_t next_conn, next_rid;
    int local_draining, local_closing;
    hf_buf req;
    hf_nsend send;
    hf_nrecv recv;
    int send_open, recv_open;
    unsigned char *wbuf;
    size_t wcap;
    msgpack_zone zone;
    hf_buf enc[2];
    hf_buf scratch; /* write_ws: the hello */
    char errbuf[160]; /* an error message being made */
};

struct hf_gateway {
    hf_config cfg;
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
};

static void conn_free(struct gw *gw, struct conn *c);

/* ------------------------------------------------------------------ */
/* small tables                                                        */

static void *
xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (p == NULL) {
        hf_error("gateway", "out of memory");
        abort();
    }
    return p;
}

static void
conn_insert(struct gw *gw, struct conn *c)
{
    if (gw->nconns >= gw->cmask) {
        uint32_t ns = gw->cmask ? (gw->cmask + 1) * 2 : 1024;
        struct conn **nt = xcalloc(ns, sizeof(*nt));
        for (uint32_t i = 0; gw->cmask && i <= gw->cmask; i++) {
            struct conn *x = gw->ctab[i], *nx;
            for (; x; x = nx) {
                nx = x->hnext;
                x->hnext = nt[x->id & (ns - 1)];
                nt[x->id & (ns - 1)] = x;
            }
        }
        free(gw->ctab);
        gw->ctab = nt;
        gw->cmask = ns - 1;
    }
    c->hnext = gw->ctab[c->id & gw->cmask];
    gw->ctab[c->id & gw->cmask] = c;
    gw->nconns++;
}

static struct conn *
conn_find(struct gw *gw, uint64_t id)
{
    if (gw->cmask == 0)
        return NULL;
    for (struct conn *c = gw->ctab[id & gw->cmask]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static void
conn_remove(struct gw *gw, struct conn *c)
{
    struct conn **pp = &gw->ctab[c->id & gw->cmask];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = c->hnext;
        gw->nconns--;
    }
}

static struct topic *
topic_find(struct gw *gw, const char *addr, size_t alen, uint64_t h)
{
    if (gw->tmask == 0)
        return NULL;
    for (struct topic *t = gw->ttab[h & gw->tmask]; t; t = t->next)
        if (t->hash == h && t->alen == alen && memcmp(t->addr, addr, alen) == 0)
            return t;
    return NULL;
}

static void
topic_add(struct gw *gw, const char *addr, size_t alen, struct conn *c)
{
    uint64_t h = hf_addr_hash(addr, alen);
    struct topic *t = topic_find(gw, addr, alen, h);

    if (t == NULL) {
        if (gw->ntopics >= gw->tmask) {
            uint32_t ns = gw->tmask ? (gw->tmask + 1) * 2 : 1024;
            struct topic **nt = xcalloc(ns, sizeof(*nt));
            for (uint32_t i = 0; gw->tmask && i <= gw->tmask; i++) {
                struct topic *x = gw->ttab[i], *nx;
                for (; x; x = nx) {
                    nx = x->next;
                    x->next = nt[x->hash & (ns - 1)];
                    nt[x->hash & (ns - 1)] = x;
                }
            }
            free(gw->ttab);
            gw->ttab = nt;
            gw->tmask = ns - 1;
        }
        t = xcalloc(1, sizeof(*t) + alen + 1);
        t->hash = h;
        t->alen = alen;
        memcpy(t->addr, addr, alen);
        t->next = gw->ttab[h & gw->tmask];
        gw->ttab[h & gw->tmask] = t;
        gw->ntopics++;
    }
    for (uint32_t i = 0; i < t->n; i++)
        if (t->conns[i] == c)
            return;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->conns = realloc(t->conns, t->cap * sizeof(*t->conns));
        if (t->conns == NULL)
            abort();
    }
    t->conns[t->n++] = c;
}

static void
topic_del(struct gw *gw, const char *addr, size_t alen, struct conn *c)
{
    uint64_t h = hf_addr_hash(addr, alen);
    struct topic *t = topic_find(gw, addr, alen, h), **pp;

    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->conns[i] == c) {
            t->conns[i] = t->conns[--t->n];
            break;
        }
    if (t->n > 0)
        return;
    pp = &gw->ttab[h & gw->tmask];
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    gw->ntopics--;
    free(t->conns);
    free(t);
}

static struct pend *
pend_add(struct gw *gw, struct conn *c, int op, hf_slice id, hf_slice addr)
{
    struct pend *p = gw->pfree;

    if (gw->npend >= gw->pmask) {
        uint32_t ns = gw->pmask ? (gw->pmask + 1) * 2 : 1024;
        struct pend **nt = xcalloc(ns, sizeof(*nt));
        for (uint32_t i = 0; gw->pmask && i <= gw->pmask; i++) {
            struct pend *x = gw->ptab[i], *nx;
            for (; x; x = nx) {
                nx = x->next;
                x->next = nt[x->rid & (ns - 1)];
                nt[x->rid & (ns - 1)] = x;
            }
        }
        free(gw->ptab);
        gw->ptab = nt;
        gw->pmask = ns - 1;
    }
    if (p != NULL)
        gw->pfree = p->next;
    else
        p = xcalloc(1, sizeof(*p));
    p->rid = ++gw->next_rid;
    p->conn = c->id;
    p->op = (uint8_t)op;
    p->idlen = (uint8_t)id.len;
    if (id.len)
        memcpy(p->id, id.data, id.len);
    p->alen = (uint16_t)addr.len;
    if (addr.len)
        memcpy(p->addr, addr.data, addr.len);
    p->addr[addr.len] = '\0';
    p->next = gw->ptab[p->rid & gw->pmask];
    gw->ptab[p->rid & gw->pmask] = p;
    gw->npend++;
    c->npend++;
    atomic_fetch_add(&gw->owed, 1);
    return p;
}

static struct pend *
pend_take(struct gw *gw, uint64_t rid)
{
    struct pend **pp;

    if (gw->pmask == 0)
        return NULL;
    for (pp = &gw->ptab[rid & gw->pmask]; *pp; pp = &(*pp)->next)
        if ((*pp)->rid == rid) {
            struct pend *p = *pp;
            *pp = p->next;
            gw->npend--;
            atomic_fetch_sub(&gw->owed, 1);
            return p;
        }
    return NULL;
}

static void
pend_free(struct gw *gw, struct pend *p)
{
    p->next = gw->pfree;
    gw->pfree = p;
}

/* ------------------------------------------------------------------ */
/* output to a connection                                              */

static void
want_write(struct conn *c)
{
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* After appending to c->out: enforce the slow-consumer limit. */
static void
queued(struct conn *c)
{
    if (c->close_code)
        return;
    if (hf_outq_pending(&c->out) > (size_t)c->gw->g->cfg.outbuf_max) {
        HF_INC(slow_consumers);
        hf_info("gateway", "conn %llu: slow consumer (%zu bytes queued), "
                           "closing with 1013",
                (unsigned long long)c->id, hf_outq_pending(&c->out));
        c->close_code = 1013;
        hf_outq_clear(&c->out);
    }
    want_write(c);
}

/* Appends a message encoded alone (no leading '\n') to c->out. */
static void
append_encoded(struct conn *c, const hf_buf *enc)
{
    if (c->close_code)
        return;
    hf_buf *b = hf_outq_tail(&c->out);

    if (c->fmt == HF_WIRE_JSON && b->len > 0)
        hf_buf_append(b, "\n", 1);
    hf_buf_append(b, enc->data, enc->len);
    queued(c);
}

static void
reply_err(struct conn *c, hf_slice id, int err, const char *msg)
{
    if (c->close_code)
        return;
    hf_wire_reply_err(hf_outq_tail(&c->out), c->fmt, id, err, msg,
                      msg ? strlen(msg) : 0);
    queued(c);
}

/* The length of the next frame's worth of c->out: whole messages, up to
 * FRAME_OUT_MAX bytes unless a single message is larger. */
static size_t
next_chunk(struct conn *c)
{
    const char *p = hf_outq_head(&c->out);
    size_t left = hf_outq_pending(&c->out), n = 0;

    if (left <= FRAME_OUT_MAX)
        return left;
    if (c->fmt == HF_WIRE_JSON) {
        const char *nl = memrchr(p, '\n', FRAME_OUT_MAX);
        if (nl != NULL)
            return (size_t)(nl - p);
        nl = memchr(p, '\n', left);
        return nl ? (size_t)(nl - p) : left;
    }
    while (n < left) {
        size_t m = hf_wire_mp_check(p + n, left - n, 64);
        if (m == 0)
            return left;
        if (n > 0 && n + m > FRAME_OUT_MAX)
            break;
        n += m;
    }
    return n;
}

/* One data frame of n bytes, through the gateway's write buffer (lws
 * wants LWS_PRE bytes of room before the payload). 0, or -1 to close. */
static int
put_frame(struct gw *gw, struct conn *c, const void *data, size_t n)
{
    if (gw->wcap < LWS_PRE + n) {
        gw->wcap = LWS_PRE + n;
        if ((gw->wbuf = realloc(gw->wbuf, gw->wcap)) == NULL)
            abort();
    }
    memcpy(gw->wbuf + LWS_PRE, data, n);
    if (lws_write(c->wsi, gw->wbuf + LWS_PRE, n,
                  c->fmt == HF_WIRE_JSON ? LWS_WRITE_TEXT
                                         : LWS_WRITE_BINARY) < (int)n)
        return -1;
    HF_INC(frames_out);
    return 0;
}

static int
write_ws(struct gw *gw, struct conn *c)
{
    size_t n;

    /* A close waits for what was queued before it (nothing more is
     * queued after: the error replies that led to a 1008 reach the
     * client first; a slow consumer's 1013 found its buffer emptied). */
    if (c->close_code && hf_outq_pending(&c->out) == 0) {
        unsigned char reason[] = "bye";
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         reason, 3);
        return -1;
    }
    if (c->hello_due) {
        /* Encoded only now, in scratch, so that a connection which never
         * gets anything else never holds an output buffer. First, before
         * whatever was queued meanwhile. */
        c->hello_due = 0;
        gw->scratch.len = 0;
        hf_wire_hello(&gw->scratch, c->fmt, "holdfast/" HF_VERSION, c->id,
                      gw->g->cfg.heartbeat_s);
        if (put_frame(gw, c, gw->scratch.data, gw->scratch.len) != 0)
            return -1;
        if (hf_outq_pending(&c->out) > 0 || c->ping_due || c->close_code)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->ping_due && !c->close_code) {
        /* One write per writable: the output, if any, goes next time. The
         * payload is not empty because lws 4.1 does not report an empty
         * pong (LWS_CALLBACK_RECEIVE_PONG), and the pong is the proof. */
        unsigned char ping[LWS_PRE + 2];
        c->ping_due = 0;
        memcpy(ping + LWS_PRE, "hf", 2);
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 2)
            return -1;
        if (hf_outq_pending(&c->out) > 0)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (hf_outq_pending(&c->out) == 0)
        return 0;
    n = next_chunk(c);
    if (put_frame(gw, c, hf_outq_head(&c->out), n) != 0)
        return -1;
    hf_outq_consumed(&c->out, n);
    if (c->fmt == HF_WIRE_JSON && hf_outq_pending(&c->out) > 0 &&
        hf_outq_head(&c->out)[0] == '\n')
        hf_outq_consumed(&c->out, 1);
    if (hf_outq_pending(&c->out) > 0 || c->close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ------------------------------------------------------------------ */
/* requests to the host                                                */

static void
send_req(struct gw *gw)
{
    if (gw->req.len == 0)
        return;
    if (hf_nsend_append(&gw->send, gw->req.data, gw->req.len) != 0)
        hf_warn("gateway", "gateway %d: cannot reach the host", gw->idx);
    gw->req.len = 0;
}

static const hf_principal *
principal(struct conn *c)
{
    return c->who;
}

static unsigned
auth_flags(const hf_config *cfg)
{
    return cfg->jwt_allow_no_exp ? HF_AUTH_ALLOW_NO_EXP : 0;
}

static struct csub *
sub_find(struct conn *c, hf_slice addr)
{
    hf_hnode *n = hf_htab_find(&c->subs, hf_addr_hash(addr.data, addr.len));

    for (; n != NULL; n = hf_htab_next(n)) {
        struct csub *cs = hf_htab_entry(n, struct csub, hn);
        if (cs->alen == addr.len && memcmp(cs->addr, addr.data, addr.len) == 0)
            return cs;
    }
    return NULL;
}

/* Records a subscription being made. 0, or HF_ETOOLARGE when the
 * connection already holds --subs-max others. */
static int
sub_note(struct conn *c, hf_slice addr)
{
    struct csub *cs;

    if (sub_find(c, addr) != NULL)
        return 0;
    if (hf_htab_count(&c->subs) >= (uint32_t)c->gw->g->cfg.subs_max)
        return HF_ETOOLARGE;
    cs = xcalloc(1, sizeof(*cs) + addr.len + 1);
    cs->alen = addr.len;
    memcpy(cs->addr, addr.data, addr.len);
    hf_htab_insert(&c->subs, &cs->hn, hf_addr_hash(addr.data, addr.len));
    return 0;
}

/* Drops a subscription: no more local delivery. The host is told by the
 * caller (an unsub request, or unsub_env for one the server ends). */
static void
sub_drop(struct gw *gw, struct conn *c, struct csub *cs)
{
    topic_del(gw, cs->addr, cs->alen, c);
    hf_htab_remove(&c->subs, &cs->hn);
    free(cs);
}

static void
sub_forget(struct gw *gw, struct conn *c, hf_slice addr)
{
    struct csub *cs = sub_find(c, addr);
    if (cs != NULL)
        sub_drop(gw, c, cs);
}

/* Queues, for the host, the end of c's subscription to addr (no reply
 * expected): its presence leave. Sent with the next send_req. */
static void
unsub_env(struct gw *gw, struct conn *c, const char *addr, size_t alen)
{
    hf_env e = {.op = HF_OP_UNSUB, .has_conn = 1, .conn = c->id,
                .to = {addr, alen}};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &gw->req, hf_buf_mpwrite);
    hf_env_pack_request(&pk, &e, (hf_slice){0});
}

/* The server ends subscriptions that c's principal may no longer hold:
 * every one (err set, e.g. an expired token) or those its ACL no longer
 * allows. The client gets an "unsubscribed" message per address, saying
 * why, and may subscribe again (with since) once allowed. */
struct revoke {
    struct gw *gw;
    struct conn *c;
    int all;
    int err;
    const char *why;
};

static void
revoke_one(hf_hnode *n, void *arg)
{
    struct revoke *r = arg;
    struct csub *cs = hf_htab_entry(n, struct csub, hn);
    struct conn *c = r->c;

    if (!r->all && hf_auth_allows(c->who, cs->addr, cs->alen) == 0)
        return;
    HF_INC(subs_revoked);
    if (!c->close_code) {
        hf_wire_unsubscribed(hf_outq_tail(&c->out), c->fmt,
                             (hf_slice){cs->addr, cs->alen}, r->err, r->why,
                             strlen(r->why));
        queued(c);
    }
    unsub_env(r->gw, c, cs->addr, cs->alen);
    sub_drop(r->gw, c, cs);
}

static void
revoke_subs(struct gw *gw, struct conn *c, int all, int err, const char *why)
{
    struct revoke r = {.gw = gw, .c = c, .all = all, .err = err, .why = why};

    hf_htab_walk(&c->subs, revoke_one, &r);
    send_req(gw);
}

/* The token's end, checked once a second (heartbeat) and before each
 * message (admit): what it reached is no longer reachable. */
static int
expired(const struct conn *c)
{
    return c->who != NULL && c->who->exp > 0 &&
           c->who->exp <= (int64_t)time(NULL);
}

static void
expire(struct gw *gw, struct conn *c)
{
    c->authed = 0;
    revoke_subs(gw, c, 1, HF_EUNAUTH, "token expired: send a new auth");
}

/* Checks auth and ACL for a message to addr. 0 or an error code with
 * *why set. */
static int
admit(struct conn *c, hf_slice addr, const char **why)
{
    const hf_principal *p = principal(c);

    if (!c->authed || p == NULL) {
        *why = "authenticate first: an auth message or ?token=";
        return HF_EUNAUTH;
    }
    if (expired(c)) {
        expire(c->gw, c);
        *why = "token expired";
        return HF_EUNAUTH;
    }
    if (hf_addr_check(addr.data, addr.len, NULL) != 0) {
        *why = "bad address: kind/name";
        return HF_EBADREQ;
    }
    if (hf_auth_allows(p, addr.data, addr.len) != 0) {
        *why = "not allowed for this token";
        return HF_EFORBIDDEN;
    }
    return 0;
}

/* Builds the host envelope for a request and files it as pending. */
static void
forward(struct gw *gw, struct conn *c, int op, hf_slice id, hf_slice to,
        hf_slice method, hf_slice args, hf_slice key, const hf_wire_msg *m)
{
    const hf_principal *p = principal(c);
    hf_env e = {.op = op, .conn = c->id, .has_conn = 1, .to = to,
                .method = method, .key = key};
    msgpack_packer pk;

    if (op != HF_OP_SIGNAL)
        e.id = pend_add(gw, c, op, id, to)->rid;
    if (p != NULL) {
        e.sub = (hf_slice){p->sub, strlen(p->sub)};
        e.role = p->role;
    }
    if (m != NULL && m->has_since) {
        e.since = m->since;
        e.has_since = 1;
    }
    if (m != NULL && m->epoch.len)
        e.epoch = m->epoch;
    msgpack_packer_init(&pk, &gw->req, hf_buf_mpwrite);
    hf_env_pack_request(&pk, &e, args);
}

static int
take_token(struct conn *c)
{
    const hf_config *cfg = &c->gw->g->cfg;
    uint64_t now = (uint64_t)lws_now_usecs();

    c->tokens += (double)(now - c->tok_ns) * cfg->rate / 1e6;
    if (c->tokens > cfg->rate_burst)
        c->tokens = cfg->rate_burst;
    c->tok_ns = now;
    if (c->tokens < 1.0)
        return 0;
    c->tokens -= 1.0;
    return 1;
}

static void
do_auth(struct conn *c, const hf_wire_msg *m)
{
    const hf_config *cfg = &c->gw->g->cfg;
    hf_principal p;
    msgpack_zone z;
    msgpack_object res;
    hf_buf b = {0};
    msgpack_packer pk;
    size_t off = 0;

    if (cfg->jwt_secret[0] == '\0') {
        reply_err(c, m->id, HF_EBADREQ, "auth is off on this server");
        return;
    }
    if (hf_auth_verify(cfg->jwt_secret, m->token.data, m->token.len,
                       (int64_t)time(NULL), auth_flags(cfg), &p) != 0) {
        reply_err(c, m->id, HF_EUNAUTH, "invalid or expired token");
        return;
    }
    if (c->who == NULL || c->who == &c->gw->g->anon)
        c->who = xcalloc(1, sizeof(*c->who));
    *c->who = p;
    c->authed = 1;
    /* A new principal keeps only what it may reach itself (the old one
     * may have been an admin watching someone's inbox). */
    revoke_subs(c->gw, c, 0, HF_EFORBIDDEN, "not allowed for the new token");
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 2);
    hf_pack_cstr(&pk, "sub");
    hf_pack_cstr(&pk, p.sub);
    hf_pack_cstr(&pk, "exp");
    msgpack_pack_int64(&pk, p.exp);
    msgpack_zone_init(&z, 256);
    hf_unpack_next(b.data, b.len, &off, &z, &res);
    hf_wire_reply_ok(hf_outq_tail(&c->out), c->fmt, m->id, &res);
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    queued(c);
}

/* Handles one decoded client message. Returns nonzero to close. */
static int
on_message(struct gw *gw, struct conn *c, const hf_wire_msg *m)
{
    const char *why = NULL;
    int err;

    HF_INC(messages_in);
    if (m->err != 0) {
        HF_INC(bad_messages);
        reply_err(c, m->id, m->err, m->errmsg);
        if (++c->bad_streak >= BAD_STREAK_CLOSE) {
            c->close_code = 1008;
            want_write(c);
            return 1;
        }
        return 0;
    }
    c->bad_streak = 0;
    if (!take_token(c)) {
        HF_INC(rate_limited);
        if (m->op != HF_W_SIGNAL)
            reply_err(c, m->id, HF_ERATELIMIT, "slow down");
        return 0;
    }
    if (m->id.len > ID_MAX) {
        reply_err(c, (hf_slice){NULL, 0}, HF_EBADREQ, "id too long");
        return 0;
    }
    if (gw->local_draining && m->op != HF_W_PING) {
        reply_err(c, m->id, HF_EUNAVAIL, "server is shutting down");
        return 0;
    }
    switch (m->op) {
    case HF_W_PING:
        hf_wire_pong(hf_outq_tail(&c->out), c->fmt, m->id);
        queued(c);
        return 0;
    case HF_W_AUTH:
        do_auth(c, m);
        return 0;
    default:
        break;
    }
    if ((err = admit(c, m->to, &why)) != 0) {
        reply_err(c, m->id, err, why);
        return 0;
    }
    switch (m->op) {
    case HF_W_CALL:
        forward(gw, c, HF_OP_CALL, m->id, m->to, m->method, m->args, m->key,
                NULL);
        break;
    case HF_W_SUB:
        if (sub_note(c, m->to) != 0) {
            snprintf(gw->errbuf, sizeof(gw->errbuf),
                     "too many subscriptions on one connection (--subs-max "
                     "%d)",
                     gw->g->cfg.subs_max);
            reply_err(c, m->id, HF_ETOOLARGE, gw->errbuf);
            break;
        }
        forward(gw, c, HF_OP_SUB, m->id, m->to, (hf_slice){0}, m->args,
                (hf_slice){0}, m);
        break;
    case HF_W_UNSUB:
        /* Stop delivering at once; the host's reply confirms. */
        sub_forget(gw, c, m->to);
        forward(gw, c, HF_OP_UNSUB, m->id, m->to, (hf_slice){0},
                (hf_slice){0}, (hf_slice){0}, NULL);
        break;
    case HF_W_SIGNAL:
        forward(gw, c, HF_OP_SIGNAL, m->id, m->to, m->type, m->args,
                (hf_slice){0}, NULL);
        break;
    }
    return 0;
}

static int
on_frame(struct gw *gw, struct conn *c, const void *data, size_t len,
         int binary)
{
    hf_wire_frame f = {0};
    int close = 0;

    HF_INC(frames_in);
    if (hf_wire_decode(&f, binary ? HF_WIRE_MSGPACK : HF_WIRE_JSON, data, len,
                       MAX_MSGS_PER_FRAME) != 0) {
        hf_wire_frame_free(&f);
        return -1;
    }
    for (size_t i = 0; i < f.n && !close; i++)
        close = on_message(gw, c, &f.msgs[i]);
    hf_wire_frame_free(&f);
    send_req(gw);
    return 0;
}

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
static char http_dead; /* the mark: lws_set_opaque_user_data(wsi, &it) */

static int
http_respond(struct conn *c, int status, const char *ctype, const void *body,
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
        if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &p,
                                        end) ||
            (c->h->close_after &&
             lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                          (const unsigned char *)"close", 5,
                                          &p, end)) ||
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
    conn_free(c->gw, c);
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

static int
http_reply(struct conn *c, struct pend *p, const hf_env *e)
{
    hf_buf b = {0};
    int err = e->ok ? 0 : HF_EINTERNAL, rv;

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
    rv = http_respond(c, hf_err_http(err), "application/json", b.data, b.len);
    hf_buf_free(&b);
    return rv;
}

static void
on_reply(struct gw *gw, const hf_env *e)
{
    struct pend *p = pend_take(gw, e->id);
    struct conn *c;

    if (p == NULL)
        return;
    c = conn_find(gw, p->conn);
    if (c == NULL) {
        pend_free(gw, p);
        return;
    }
    c->npend--;
    if (c->kind == C_HTTP) {
        (void)http_reply(c, p, e); /* a close is asked of lws */
        pend_free(gw, p);
        return;
    }
    if (p->op == HF_OP_SUB) {
        hf_slice a = {p->addr, p->alen};
        if (e->ok && sub_find(c, a) != NULL)
            topic_add(gw, p->addr, p->alen, c);
        else if (!e->ok)
            sub_forget(gw, c, a);
    }
    if (!c->close_code) {
        hf_slice id = {p->id, p->idlen};
        hf_buf *b = hf_outq_tail(&c->out);
        if (e->ok) {
            hf_wire_reply_ok(b, c->fmt, id, e->val);
        } else {
            char code[32];
            snprintf(code, sizeof(code), "%.*s", (int)e->code.len,
                     (const char *)e->code.data);
            hf_wire_reply_err(b, c->fmt, id, hf_err_from_name(code),
                              e->msg.data, e->msg.len);
        }
        queued(c);
    }
    pend_free(gw, p);
}

/* Encodes an output envelope for format fmt into gw->enc[fmt] (once). */
static const hf_buf *
encode_out(struct gw *gw, const hf_env *e, const msgpack_object *obj,
           int fmt, int *done)
{
    hf_buf *b = &gw->enc[fmt];
    const msgpack_object *at;

    if (done[fmt])
        return b;
    done[fmt] = 1;
    b->len = 0;
    switch (e->op) {
    case HF_OUT_EVENT:
        at = hf_arg(obj, "at");
        hf_wire_event(b, fmt, e->to, e->seq, e->method, e->val,
                      at && at->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                          ? (int64_t)at->via.u64
                          : 0);
        break;
    case HF_OUT_SIGNAL:
        hf_wire_signal(b, fmt, e->to, e->method, e->sub, e->val);
        break;
    case HF_OUT_PRESENCE:
        hf_wire_presence(b, fmt, e->to, e->action, e->val);
        break;
    }
    return b;
}

static void
on_output(struct gw *gw, const hf_env *e, const msgpack_object *obj)
{
    int done[2] = {0, 0};

    if (e->op == HF_OUT_REPLY) {
        on_reply(gw, e);
        return;
    }
    if (e->op == HF_OUT_EVENT && e->has_conn) { /* backlog: this conn */
        struct conn *c = conn_find(gw, e->conn);
        if (c != NULL && c->kind == C_WS)
            append_encoded(c, encode_out(gw, e, obj, c->fmt, done));
        return;
    }
    {
        struct topic *t = topic_find(gw, e->to.data, e->to.len,
                                     hf_addr_hash(e->to.data, e->to.len));
        for (uint32_t i = 0; t && i < t->n; i++)
            append_encoded(t->conns[i],
                           encode_out(gw, e, obj, t->conns[i]->fmt, done));
    }
}

static void
on_batch(struct gw *gw, nng_msg *m)
{
    const char *buf = nng_msg_body(m);
    size_t len = nng_msg_len(m), off = 0;
    msgpack_object obj;
    hf_env e;

    while (off < len && hf_unpack_next(buf, len, &off, &gw->zone, &obj) == 0) {
        if (hf_env_decode(&obj, &e) == 0)
            on_output(gw, &e, &obj);
        msgpack_zone_clear(&gw->zone);
    }
    nng_msg_free(m);
}

/* nng thread: queue the batch and wake the gateway thread. */
static void
from_host(void *arg, nng_msg *m)
{
    struct gw *gw = arg;

    pthread_mutex_lock(&gw->mu);
    if (gw->ninbox == gw->capinbox) {
        gw->capinbox = gw->capinbox ? gw->capinbox * 2 : 64;
        gw->inbox = realloc(gw->inbox, gw->capinbox * sizeof(*gw->inbox));
        if (gw->inbox == NULL)
            abort();
    }
    gw->inbox[gw->ninbox++] = m;
    pthread_mutex_unlock(&gw->mu);
    lws_cancel_service(gw->ctx);
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

static struct conn *
conn_new(struct gw *gw, struct lws *wsi, int kind)
{
    struct conn *c = xcalloc(1, sizeof(*c) + (kind == C_HTTP
                                                  ? sizeof(struct http_req)
                                                  : 0));
    c->id = ++gw->next_conn;
    c->wsi = wsi;
    c->gw = gw;
    c->kind = kind;
    c->tokens = gw->g->cfg.rate_burst;
    c->tok_ns = (uint64_t)lws_now_usecs();
    c->seen = c->pinged = gw->tick;
    conn_insert(gw, c);
    return c;
}

struct gone {
    struct gw *gw;
    struct conn *c;
};

static void
gone_one(hf_hnode *n, void *arg)
{
    struct gone *g = arg;
    struct csub *cs = hf_htab_entry(n, struct csub, hn);

    unsub_env(g->gw, g->c, cs->addr, cs->alen);
    sub_drop(g->gw, g->c, cs);
}

static void
conn_free(struct gw *gw, struct conn *c)
{
    struct gone g = {gw, c};

    /* Tell the actors this connection is gone: presence leave. */
    hf_htab_walk(&c->subs, gone_one, &g);
    hf_htab_fini(&c->subs);
    send_req(gw);
    conn_remove(gw, c);
    if (c->who != &gw->g->anon)
        free(c->who);
    hf_buf_free(&c->rx);
    hf_outq_free(&c->out);
    if (c->kind == C_HTTP)
        hf_buf_free(&c->h->body);
    free(c);
}

/* The token of a request: ?token= or Authorization: Bearer. */
static int
request_token(struct lws *wsi, char *buf, size_t len, const char **tok)
{
    char hdr[2048];
    const char *v;

    if ((v = lws_get_urlarg_by_name(wsi, "token=", buf, (int)len)) != NULL &&
        *v) {
        *tok = v;
        return 1;
    }
    if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) >
            7 &&
        strncasecmp(hdr, "Bearer ", 7) == 0 && strlen(hdr + 7) < len) {
        strcpy(buf, hdr + 7);
        *tok = buf;
        return 1;
    }
    return 0;
}

/* Authenticates a connection from its request. 0, or HF_EUNAUTH when a
 * token was given and is bad (or none was given for HTTP with auth on). */
static int
authenticate(struct gw *gw, struct conn *c, struct lws *wsi, int required)
{
    const hf_config *cfg = &gw->g->cfg;
    char buf[2048];
    const char *tok;
    hf_principal p;

    if (cfg->jwt_secret[0] == '\0') {
        /* Auth off: the shared anonymous principal (read-only; a
         * principal is ~5 KB, too much to copy per connection). */
        c->who = &gw->g->anon;
        c->authed = 1;
        return 0;
    }
    if (!request_token(wsi, buf, sizeof(buf), &tok))
        return required ? HF_EUNAUTH : 0;
    if (hf_auth_verify(cfg->jwt_secret, tok, strlen(tok),
                       (int64_t)time(NULL), auth_flags(cfg), &p) != 0)
        return HF_EUNAUTH;
    c->who = xcalloc(1, sizeof(*c->who));
    *c->who = p;
    c->authed = 1;
    return 0;
}

static void
send_hello(struct conn *c)
{
    c->hello_due = 1; /* written by write_ws */
    want_write(c);
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

enum { R_NONE, R_CALL, R_EVENTS, R_HEALTH, R_METRICS };

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
static int
http_error(struct conn *c, int err, const char *msg)
{
    hf_buf b = {0};
    int rv;

    hf_wire_http_err(&b, err, msg, strlen(msg));
    rv = http_respond(c, hf_err_http(err), "application/json", b.data, b.len);
    hf_buf_free(&b);
    return rv;
}

/* Sends the request an HTTP connection carries, now that it is whole.
 * Returns as http_respond when it is answered at once (0 otherwise). */
static int
http_dispatch(struct gw *gw, struct conn *c)
{
    const char *why = NULL;
    hf_slice to = {c->h->target, strlen(c->h->target)};
    hf_buf args = {0};
    int err;

    http_hold(c);
    if (gw->local_draining) {
        return http_error(c, HF_EUNAVAIL, "server is shutting down");
    }
    if ((err = admit(c, to, &why)) != 0) {
        return http_error(c, err, why);
    }
    if (c->h->route == R_CALL) {
        if (c->h->body.len > 0 &&
            hf_json_to_mp(c->h->body.data, c->h->body.len, &args) != 0) {
            /* Perhaps not a body at all: lws 4.1 hands a pipelined
             * request's own header bytes over as its body (see
             * docs/decisions.md). The stream cannot be trusted. */
            c->h->close_after = 1;
            return http_error(c, HF_EBADREQ, "body is not valid JSON");
        }
        /* The WebSocket rule (wire.c): arguments nest at most one level
         * less than a message. Deeper ones could not be unpacked by the
         * actor, and once broke the whole batch they travelled in. */
        if (args.len > 0 &&
            hf_wire_mp_check(args.data, args.len, HF_WIRE_DEPTH - 1) !=
                args.len) {
            hf_buf_free(&args);
            return http_error(c, HF_EBADREQ, "body nested too deep");
        }
        c->h->forwarded = 1;
        forward(gw, c, HF_OP_CALL, (hf_slice){0}, to,
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
        forward(gw, c, HF_OP_HISTORY, (hf_slice){0}, to, (hf_slice){0},
                (hf_slice){lb.data, c->h->limit ? lb.len : 0}, (hf_slice){0},
                &m);
    }
    send_req(gw);
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
    if (n >= (int)sizeof(cl) || lws_hdr_copy(wsi, cl, sizeof(cl),
                                             WSI_TOKEN_HTTP_CONTENT_LENGTH) != n ||
        n > 18 || strspn(cl, "0123456789") != (size_t)n)
        return *why = "Content-Length must be one number", 400;
    *len = atoll(cl);
    return 0;
}

static int
on_http(struct gw *gw, struct lws *wsi, struct conn **pss, const char *uri)
{
    int post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
    struct conn *c;
    char q[64];
    const char *v, *why = NULL;
    long long clen;
    int status;

    HF_INC(http_requests);
    if (strncmp(uri, "/v1/call/", 9) != 0 &&
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
    c = conn_new(gw, wsi, C_HTTP);
    *pss = c;
    c->h->started = gw->tick;
    if ((status = body_framing(wsi, &clen, &why)) != 0) {
        hf_buf b = {0};
        c->h->close_after = 1;
        hf_wire_http_err(&b, HF_EBADREQ, why, strlen(why));
        status = http_respond(c, status, "application/json", b.data, b.len);
        hf_buf_free(&b);
        return status;
    }
    /* A POST without a length has no body (RFC 9112), but lws then waits
     * for one of 100 MB: answer it, and end the connection. */
    c->h->close_after = post && clen < 0;
    c->h->had_body = c->h->awaiting_body = clen > 0;
    if (strcmp(uri, "/healthz") == 0) {
        return http_respond(c, 200, "application/json", "{\"ok\":true}", 11);
    }
    if (strcmp(uri, "/metrics") == 0) {
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        if (f != NULL) {
            hf_metrics_write(f);
            fclose(f);
        }
        status = http_respond(c, 200, "text/plain; version=0.0.4",
                              text ? text : "", tlen);
        free(text);
        return status;
    }
    if (authenticate(gw, c, wsi, 1) != 0) {
        return http_error(c, HF_EUNAUTH, "missing, invalid or expired token");
    }
    if (strncmp(uri, "/v1/call/", 9) == 0) {
        int klen = lws_hdr_custom_length(wsi, "idempotency-key:", 16);
        if (!post) {
            return http_error(c, HF_EBADREQ, "use POST");
        }
        c->h->route = R_CALL;
        if (parse_target(c, uri + 9, 1) != 0) {
            return http_error(c, HF_EBADREQ, "use /v1/call/{kind}/{name}/{method}");
        }
        /* The actor refuses a key over its limit, as over WebSocket; one
         * too long even to copy is refused here (it used to be dropped,
         * and a retry then ran twice). */
        c->h->idem[0] = '\0';
        if (klen >= (int)sizeof(c->h->idem)) {
            return http_error(c, HF_EBADREQ, "Idempotency-Key too long");
        }
        if (klen > 0 && lws_hdr_custom_copy(wsi, c->h->idem,
                                            sizeof(c->h->idem),
                                            "idempotency-key:", 16) < 0) {
            return http_error(c, HF_EBADREQ, "unreadable Idempotency-Key");
        }
        /* No body: no args. */
        return c->h->awaiting_body ? 0 : http_dispatch(gw, c);
    }
    c->h->route = R_EVENTS;
    if (parse_target(c, uri + 11, 0) != 0) {
        return http_error(c, HF_EBADREQ, "use /v1/events/{kind}/{name}");
    }
    if ((v = lws_get_urlarg_by_name(wsi, "after=", q, sizeof(q))) != NULL)
        c->h->after = strtoull(v, NULL, 10);
    if ((v = lws_get_urlarg_by_name(wsi, "limit=", q, sizeof(q))) != NULL)
        c->h->limit = (unsigned)strtoul(v, NULL, 10);
    return http_dispatch(gw, c);
}

/* ------------------------------------------------------------------ */
/* the lws callback                                                    */

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
        on_batch(gw, in[i]);
    free(in);
    gw->local_draining = draining;
    if (closing && !gw->local_closing) {
        gw->local_closing = 1;
        for (uint32_t i = 0; gw->cmask && i <= gw->cmask; i++)
            for (struct conn *c = gw->ctab[i]; c; c = c->hnext)
                if (c->kind == C_WS && !c->close_code) {
                    c->close_code = 1001;
                    want_write(c);
                }
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
    if (wsi != NULL && lws_get_opaque_user_data(wsi) == &http_dead &&
        (reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_HTTP_BODY ||
         reason == LWS_CALLBACK_HTTP_BODY_COMPLETION))
        return -1;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_queues(gw);
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Refuse the upgrade itself, with an HTTP status the client can
         * read, for a wrong path, while draining, or for a token that is
         * present but bad. (No token at all is allowed: an "auth" message
         * may follow.) Nonzero: lws sends nothing more and goes on. */
        char buf[2048];
        const char *tok;
        hf_principal p;
        const hf_config *cfg = &gw->g->cfg;
        int status = 0;
        const char *why = NULL;
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/v1/ws") != 0)
            status = 404, why = "the WebSocket endpoint is /v1/ws";
        else if (gw->local_draining)
            status = 503, why = "server is shutting down";
        else if (cfg->jwt_secret[0] &&
                 request_token(wsi, buf, sizeof(buf), &tok) &&
                 hf_auth_verify(cfg->jwt_secret, tok, strlen(tok),
                                (int64_t)time(NULL), auth_flags(cfg),
                                &p) != 0)
            status = 401, why = "invalid or expired token";
        if (status == 0)
            return 0;
        return lws_return_http_status(wsi, (unsigned)status, why) ? -1 : 1;
    }

    case LWS_CALLBACK_ESTABLISHED: {
        const struct lws_protocols *pr = lws_get_protocol(wsi);
        c = conn_new(gw, wsi, C_WS);
        *pss = c;
        c->fmt = (pr && pr->id == 1) ? HF_WIRE_MSGPACK : HF_WIRE_JSON;
        HF_ADD(connections, 1);
        HF_INC(connections_total);
        if (authenticate(gw, c, wsi, 0) != 0) {
            /* A token was given and it is bad: refuse the connection. */
            c->close_code = 1008;
            want_write(c);
            return 0;
        }
        send_hello(c);
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
            want_write(c);
            return 0;
        }
        if (lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
            lws_remaining_packet_payload(wsi) == 0 && c->rx.len == 0)
            return on_frame(gw, c, in, len, lws_frame_is_binary(wsi));
        hf_buf_append(&c->rx, in, len);
        if (lws_is_final_fragment(wsi) &&
            lws_remaining_packet_payload(wsi) == 0) {
            int rv = on_frame(gw, c, c->rx.data, c->rx.len,
                              lws_frame_is_binary(wsi));
            c->rx.len = 0;
            return rv;
        }
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? write_ws(gw, c) : 0;

    case LWS_CALLBACK_CLOSED:
        if (c != NULL) {
            HF_ADD(connections, -1);
            conn_free(gw, c);
            *pss = NULL;
        }
        return 0;

    case LWS_CALLBACK_HTTP:
        return on_http(gw, wsi, pss, in ? (const char *)in : "/");

    case LWS_CALLBACK_HTTP_BODY:
        /* After an early answer the conn is gone (pss cleared) and lws
         * discards the rest of the body. */
        if (hc == NULL)
            return 0;
        if (hc->h->body.len + len > (size_t)gw->g->cfg.frame_max)
            return http_error(hc, HF_ETOOLARGE, "body too large");
        hf_buf_append(&hc->h->body, in, len);
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (hc == NULL)
            return 0;
        hc->h->awaiting_body = 0;
        return hc->npend == 0 ? http_dispatch(gw, hc) : 0;

    case LWS_CALLBACK_CLOSED_HTTP:
        if (c != NULL) {
            conn_free(gw, c);
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
    {"holdfast.v1.msgpack", callback, sizeof(struct conn *), 65536, 1, NULL,
     0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------------ */
/* threads                                                             */

/* The heartbeat tick, on the gateway thread (see the design notes). A
 * stamp is the tick current when something arrived, anywhere in that
 * second: so "idle >= N ticks" means more than N - 1 seconds, and the
 * thresholds below are one tick longer than the seconds they stand for. */
/* A request body must arrive whole within --body-timeout-s of the
 * headers (lws re-arms its own timeout on every byte, so a client
 * trickling one a second would hold its connection slot forever): 408,
 * and the connection is closed. */
static void
body_deadline(struct gw *gw, struct conn *c)
{
    static const char why[] = "request body not received in time";
    hf_buf b = {0};

    if (!c->h->awaiting_body ||
        gw->tick - c->h->started <= (uint32_t)gw->g->cfg.body_timeout_s)
        return;
    HF_INC(http_body_timeouts);
    c->h->close_after = 1;
    hf_wire_http_err(&b, HF_ETIMEOUT, why, sizeof(why) - 1);
    (void)http_respond(c, 408, "application/json", b.data, b.len);
    hf_buf_free(&b);
}

static void
heartbeat(lws_sorted_usec_list_t *sul)
{
    struct gw *gw = lws_container_of(sul, struct gw, hb);
    uint32_t hb = (uint32_t)gw->g->cfg.heartbeat_s;
    uint32_t ping_after = hb + 1, hangup_after = 2 * hb + 5 + 1;

    gw->tick++;
    for (uint32_t i = 0; gw->cmask && i <= gw->cmask; i++)
        for (struct conn *c = gw->ctab[i], *next; c; c = next) {
            uint32_t idle = gw->tick - c->seen;
            next = c->hnext;
            if (c->kind == C_HTTP) {
                body_deadline(gw, c);
                continue;
            }
            if (c->hung || c->wsi == NULL)
                continue;
            if (expired(c) && c->authed)
                expire(gw, c);
            if (idle >= hangup_after) {
                /* Closed from outside its callbacks: at lws's next turn,
                 * as lws's own keepalive did, without a close frame (the
                 * peer is not answering; it may not be reading at all). */
                c->hung = 1;
                HF_INC(idle_hangups);
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
                                LWS_TO_KILL_ASYNC);
            } else if (idle >= ping_after &&
                       gw->tick - c->pinged >= ping_after) {
                c->pinged = gw->tick;
                c->ping_due = 1;
                lws_callback_on_writable(c->wsi);
            }
        }
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
    return NULL;
}

/* accept() failed for want of descriptors: the connection waiting in the
 * backlog is taken with the reserve descriptor and closed at once, so its
 * client is refused now rather than left to time out, and the listening
 * socket stops being readable. Logged at most every 10 s. */
static void
shed(hf_gateway *g, int err)
{
    uint64_t now = (uint64_t)lws_now_usecs() * 1000u;
    struct rlimit rl = {0};
    int fd;

    if (g->spare >= 0) {
        close(g->spare);
        g->spare = -1;
    }
    fd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        g->shed++;
        HF_INC(connections_refused);
    }
    g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (g->shed_logged_ns == 0 || now - g->shed_logged_ns >= 10000000000u) {
        getrlimit(RLIMIT_NOFILE, &rl);
        hf_warn("gateway",
                "accept: %s (RLIMIT_NOFILE %llu): refusing new connections "
                "until some close (%llu refused so far)",
                strerror(err), (unsigned long long)rl.rlim_cur,
                (unsigned long long)g->shed);
        g->shed_logged_ns = now;
    }
    if (fd < 0)
        usleep(10000); /* not even the reserve helped: do not spin */
}

static void *
acceptor(void *arg)
{
    hf_gateway *g = arg;
    struct pollfd pf[2] = {{.fd = g->lfd, .events = POLLIN},
                           {.fd = g->wake[0], .events = POLLIN}};

    while (!atomic_load(&g->stop_accept)) {
        int fd, one = 1, live = 0;
        struct gw *gw;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        fd = accept4(g->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                shed(g, errno);
            continue;
        }
        for (int i = 0; i < g->nw; i++)
            live += atomic_load(&g->gws[i].live);
        if (live >= g->cfg.max_conns) {
            HF_INC(connections_refused);
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        gw = &g->gws[g->next++ % (unsigned)g->nw];
        atomic_fetch_add(&gw->live, 1);
        pthread_mutex_lock(&gw->mu);
        if (gw->nfds == gw->capfds) {
            gw->capfds = gw->capfds ? gw->capfds * 2 : 64;
            gw->fds = realloc(gw->fds, gw->capfds * sizeof(*gw->fds));
            if (gw->fds == NULL)
                abort();
        }
        gw->fds[gw->nfds++] = fd;
        pthread_mutex_unlock(&gw->mu);
        lws_cancel_service(gw->ctx);
    }
    return NULL;
}

static void
lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    hf_log(level == LLL_ERR ? HF_LOG_ERROR : HF_LOG_WARN, "lws", "%.*s",
           (int)n, line);
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
    if (g->cfg.jwt_secret[0] == '\0' && !is_loopback(host)) {
        hf_warn("gateway", "auth is off (no --jwt-secret): binding 127.0.0.1 "
                           "instead of %s",
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
    hf_info("gateway", "listening on http://%s:%d (WebSocket /v1/ws)%s",
            host, g->port,
            g->cfg.jwt_secret[0] ? "" : "; auth is OFF: loopback only");
    return 0;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit (before any lws context
 * exists: lws sizes its descriptor tables by it) and says what it allows. */
static void
raise_nofile(const hf_config *cfg)
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

static int
gw_open(hf_gateway *g, struct gw *gw, int idx, const char *base)
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
    if ((gw->ctx = lws_create_context(&info)) == NULL) {
        hf_error("gateway", "cannot create the lws context (the libev "
                            "plugin comes with libwebsockets-evlib-ev)");
        return HF_EINTERNAL;
    }
    gw->vh = lws_get_vhost_by_name(gw->ctx, "holdfast");
    snprintf(url, sizeof(url), "%s-gw%d", base, idx);
    if (hf_nrecv_open(&gw->recv, url, from_host, gw) != 0)
        return HF_EINTERNAL;
    gw->recv_open = 1;
    snprintf(url, sizeof(url), "%s-host", base);
    if (hf_nsend_open(&gw->send, url, idx) != 0)
        return HF_EINTERNAL;
    gw->send_open = 1;
    if (pthread_create(&gw->thr, NULL, gw_main, gw) != 0)
        return HF_EINTERNAL;
    gw->started = 1;
    return 0;
}

int
hf_gateway_start(hf_gateway **out, const hf_config *cfg, const char *base)
{
    hf_gateway *g = xcalloc(1, sizeof(*g));
    int rv;

    g->cfg = *cfg;
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
    if ((rv = listen_on(g)) != 0)
        goto fail;
    if (pipe2(g->wake, O_CLOEXEC) != 0) {
        rv = HF_EINTERNAL;
        goto fail;
    }
    g->nw = cfg->gateways;
    g->gws = xcalloc((size_t)g->nw, sizeof(*g->gws));
    for (int i = 0; i < g->nw; i++)
        if ((rv = gw_open(g, &g->gws[i], i, base)) != 0)
            goto fail;
    if (pthread_create(&g->acc, NULL, acceptor, g) != 0) {
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
        live = (int)HF_GET(connections);
        if (live > 0)
            usleep(5000);
    } while (live > 0 && (uint64_t)lws_now_usecs() < deadline);
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
        if (gw->started) {
            set_flag(gw, &gw->exiting);
            pthread_join(gw->thr, NULL);
        }
        if (gw->ctx)
            lws_context_destroy(gw->ctx);
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
        for (uint32_t j = 0; gw->pmask && j <= gw->pmask; j++)
            while (gw->ptab[j]) {
                struct pend *p = gw->ptab[j];
                gw->ptab[j] = p->next;
                free(p);
            }
        while (gw->pfree) {
            struct pend *p = gw->pfree;
            gw->pfree = p->next;
            free(p);
        }
        free(gw->ptab);
        free(gw->ctab);
        free(gw->ttab);
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
    free(g);
}
