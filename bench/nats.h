/*
 * nats.h - what the parts of holdfast-bench fanout --peer nats share
 * (see nats.c for the design): the NATS protocol client (natsconn.c), the
 * subscriber and publisher threads (natsload.c) and the run they share.
 * Private to holdfast-bench.
 *
 * Threads: an nconn, an nsubber and an npubber belong to one thread from
 * pthread_create to pthread_join; what the threads share is struct nrun,
 * whose plain fields are written before they start, final[] by the main
 * thread before it sets final_known, and whose atomics carry the rest.
 */
#ifndef HF_BENCH_NATS_H
#define HF_BENCH_NATS_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bench/ws.h"
#include "core/buf.h"
#include "client/wsclient.h"

#define FANOUT    "fanout"
#define CMD       "fanout --peer nats"
#define NLINE_MAX 4096        /* longest protocol line taken */
#define BODY_MAX  (64u << 20) /* largest MSG payload taken */
#define RING_MAX  4096        /* PINGs in flight per publisher */
#define CONN_CAP  1024        /* the CONNECT line */
#define PUB_CAP   (NAME_CAP + 96)

/* Subscriber states, as in fanout.c. */
enum { S_NEW = 0, S_ASKED, S_ON, S_DEAD };

/* One connection: the client and what its stream holds unparsed.
 * Belongs to one thread. */
struct nconn {
    hf_ws *ws;
    hf_buf acc; /* an incomplete message, carried to the next frame */
    int dead, err, close_code;
};

enum { N_MSG = 1, N_PONG, N_ERR, N_PING, N_INFO, N_OK };

/* One server message. The pointers are into the frame or into acc and
 * valid during the callback only. */
struct nmsg {
    int op;
    const char *subj; /* N_MSG */
    size_t subj_len;
    uint64_t sid;
    const char *data; /* N_MSG: the payload; N_ERR: the text */
    size_t len;
};

/* A thread's reading state. */
struct nreader {
    hf_buf rx;          /* the last frame */
    uint64_t now;       /* when it was read */
    uint64_t malformed; /* streams that broke the protocol */
};

typedef void (*nmsg_fn)(void *arg, struct nconn *k, const struct nmsg *m);

/* Shared by the main thread, the subscriber threads and the publisher
 * thread: plain fields set before the threads start; final[] written by
 * the main thread before it sets final_known. */
struct nrun {
    const struct target *t;
    const struct name *subj; /* per subject: "fan.<a>.<tag>" */
    uint32_t nsubj, nsubs, npubs, window;
    double rate;            /* PUBs/s in all; 0: window-bound */
    uint64_t total;         /* PUBs to make; 0: until pstop */
    char connect[CONN_CAP]; /* "CONNECT {...}\r\n" */
    size_t connect_len;
    uint64_t *final; /* [p * nsubj + a]: PUBs p sent to a */
    atomic_int final_known, stop, ready, finished, failed;
    atomic_uint_least64_t connected, subscribed, delivered;
    atomic_int go, pstop, pready, pfinished, pfailed;
    atomic_uint_least64_t published;
};

/* Its nconn first: wb_nats_close_all walks them by stride. */
struct nsub {
    struct nconn k;
    uint32_t subj;
    int state;
    uint64_t *last; /* per publisher: the highest seq received */
    uint64_t got, gaps, late;
    uint32_t bad_pub; /* the first anomaly, for the report */
    uint64_t bad_want, bad_got;
};

/* Touched only by its own thread until joined. */
struct nsubber {
    pthread_t thr;
    struct nrun *r;
    uint32_t first, n;
    struct nsub *subs;
    uint64_t *lastv; /* n * npubs, the subs' last[] */
    struct pollfd *pfds;
    uint32_t *pidx;
    struct nreader rd;
    uint64_t last_ns;
    struct hf_bench_lat lat;
    uint64_t deliveries, reported, stray, bad_payload, errs[HF_ECOUNT_];
    int sub_err;
};

/* Its nconn first: wb_nats_close_all walks them by stride. */
struct npub {
    struct nconn k;
    uint64_t sent, acked; /* PUBs sent; covered by a PONG */
    uint64_t *ring;       /* per PING in flight: sent when it went out */
    uint32_t rhead, rn;
    uint64_t *seq; /* per subject: PUBs sent to it */
};

/* The publisher thread: touched only by it until joined. */
struct npubber {
    pthread_t thr;
    struct nrun *r;
    struct npub *pubs;
    uint32_t ring_cap;
    struct pollfd *pfds;
    uint32_t *pidx;
    struct nreader rd;
    hf_buf frame;
    uint64_t rng, t0, sent, claimed, acked, last_pong;
    uint64_t stray, errs[HF_ECOUNT_], errors;
    uint32_t dead;
    int stalled;
};

/* ------------------------------------------------------------------ */
/* natsconn.c: the NATS protocol over one WebSocket                    */

/* An -ERR text as the harness's error code (nats-server's wording);
 * HF_EBADREQ for any other. */
int wb_nats_err(const char *s, size_t n);

/* Reads 1..19 decimal digits, p[0..n) and nothing else. Returns 0, or -1
 * when they are not that. */
int wb_nats_dec(const char *p, size_t n, uint64_t *out);

/* Splits a line into at most max space-separated words. Returns their
 * number, or max + 1 when there are more. */
int wb_nats_split(const char *p, size_t n, const char **w, size_t *wl, int max);

/* Marks k dead with why (the first reason sticks). */
void wb_nats_dead(struct nconn *k, int err, int code);

/* Sends p[0..n) in one binary frame; marks k dead when that fails.
 * Returns 0 or an HF_E* code. */
int wb_nats_send(struct nconn *k, const void *p, size_t n);

/* Reads what k has for us: at least one frame, then more as long as the
 * client holds buffered bytes, answering PINGs and passing every other
 * message to fn. Returns 0, or -1 when the connection is over (k->dead
 * set, with why). */
int wb_nats_drain(struct nconn *k, struct nreader *rd, nmsg_fn fn, void *arg);

/* Closes k's client at once and frees its buffer. */
void wb_nats_free(struct nconn *k);

/* Opens connection idx of total, offering no subprotocol, saying why on
 * stderr when it fails. Spreads over 127.0.0.x as wb_dial does. */
int wb_nats_dial(const struct target *t, uint32_t idx, uint32_t total,
                 hf_ws **out);

/* Closes the n connections k[0], k[stride], ... together (wb_close_all).
 * pfds and pidx have room for n. */
void wb_nats_close_all(struct nconn *k, size_t stride, uint32_t n,
                       struct pollfd *pfds, uint32_t *pidx);

/* ------------------------------------------------------------------ */
/* natsload.c: the subscriber and publisher threads                    */

/* Subscribers first..first+n of r, for one thread; NULL when out of
 * memory. Freed by wb_nsubber_free (which takes NULL). */
struct nsubber *wb_nsubber_new(struct nrun *r, uint32_t first, uint32_t n);
void *wb_nsubber_main(void *arg);
void wb_nsubber_free(struct nsubber *w);

/* The publisher thread's state, all r->npubs connections; NULL when out
 * of memory. Freed by wb_npubber_free (which takes NULL). */
struct npubber *wb_npubber_new(struct nrun *r);
void *wb_npubber_main(void *arg);
void wb_npubber_free(struct npubber *c);

#endif
