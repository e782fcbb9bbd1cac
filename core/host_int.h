/*
 * host_int.h - the host's private types and functions, shared by the
 * host's files (host.c lists them) and ctx.c (the handler API). Not for
 * use outside core/.
 *
 * Thread affinity: a worker's fields marked "mu" are guarded by w->mu; all
 * others, and every actor and batch the worker owns, are touched only by
 * the worker's own thread.
 */
#ifndef HF_CORE_HOST_INT_H
#define HF_CORE_HOST_INT_H

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/cache.h"
#include "core/env.h"
#include "core/host.h"
#include "core/htab.h"
#include "core/keys.h"
#include "core/oom.h"

#define HF_USERKEY_MAX (HF_KEY_MAX - 200)
#define HF_IDEMKEY_MAX 200

/* ---- messages on a worker's queue ---- */
enum mtype { M_REQ = 1, M_OUTBOX, M_ALARM };

/* data = address (alen) + envelope (len) + aux (auxlen). aux is, for
 * M_REQ, where each field lies in the envelope (an hf_env_pos, filled by
 * hf_host_submit so the worker need not read it again); for M_OUTBOX the
 * outbox key; for M_ALARM the alarm name. */
struct msg {
    struct msg *next;
    int type;
    hf_sink *sink; /* M_REQ: reply-to, a reference; else NULL */
    int64_t at;    /* M_ALARM: the due time it was set for */
    uint64_t hash;
    uint32_t alen, len, auxlen;
    char data[];
};

/* ---- actors ---- */
struct alarm {
    struct alarm *next;
    int64_t at;
    uint32_t attempt;
    char name[];
};

struct subscr {
    hf_sink *sink; /* a reference */
    uint64_t conn;
    hf_buf who;   /* presence object, msgpack */
    int announce; /* subscribed with presence: joins and leaves are told */
};

struct sinkcount {
    hf_sink *sink;
    uint32_t n;
};

struct actor {
    hf_hnode hn;                 /* in the worker's table, by tab_hash */
    struct actor *lprev, *lnext; /* LRU list, least recent first */
    struct actor *rnext;         /* run queue */
    int queued;                  /* on the run queue */
    struct msg *mhead, *mtail;   /* mailbox */
    uint32_t nmsg;
    const struct hf_kind *kind;
    uint64_t hash;
    uint64_t seq;     /* last event sequence number (incl. uncommitted) */
    uint64_t obx;     /* last outbox id */
    char epoch[17];   /* 16 hex digits */
    int epoch_saved;  /* epoch is in LMDB (or in a batch on its way) */
    uint8_t feedm;    /* host->feed's match: 0 not asked yet, 1 no, 2 yes */
    struct alarm *alarms;
    hf_cache cache;
    uint64_t last_batch;  /* newest batch holding anything of this actor */
    uint64_t write_batch; /* newest batch holding its writes */
    uint64_t used_ns;
    struct subscr *subs;
    uint32_t nsubs, capsubs;
    struct sinkcount *sinks;
    uint32_t nsinks, capsinks;
    size_t alen, klen; /* address length, kind length */
    char addr[];       /* "kind/name", NUL-terminated */
};

/* ---- batches: what one worker produced in one pass ---- */
struct batch {
    hf_wbatch wb;         /* first member: the store sees only this */
    struct batch *pnext;  /* the worker's pending list */
    int resolved;         /* its commit is durable or failed */
    int submitted;        /* went to the store (it had writes) */
    hf_buf held;          /* held output records, see host.c */
    struct actor **acts;  /* actors whose writes it carries */
    uint32_t nacts, capacts;
};

/* ---- the handler context ---- */
struct hf_ctx {
    struct worker *w;
    struct actor *a;
    const char *caller;
    unsigned role;
    hf_slice cname, cpic; /* the caller's name and picture claims */
    const struct hf_method *meth; /* the method called; NULL in hooks */
    int64_t now;
    hf_buf stage;
    msgpack_packer pk;
    hf_buf result;   /* staged reply result */
    int has_result;
    char errmsg[256];
    hf_buf tw;       /* writes: struct twrec[ntw] */
    uint32_t ntw;
    struct ablk *arena; /* staged keys and values; blocks never move */
    hf_buf tev;      /* events: u32 len, stored log value */
    uint32_t nev;
    hf_buf tsend;    /* sends: u32 len + to, u32 len + method, u32 + args */
    hf_buf talarm;   /* alarms: i64 at (-1: cancel), u32 len + name */
    hf_buf tout;     /* held output records, appended to the batch */
    hf_buf tmp;
};

/* A staged write (ctx.c stages, commit.c commits). Keys and values live
 * in the context's arena, whose blocks never move, so a value returned by hf_get stays valid while the
 * handler writes other keys or scans with hf_list. */
struct twrec {
    int dbi, tomb;
    const char *k, *v;
    size_t kl, vl;
};

static inline struct twrec *
tw_at(const struct hf_ctx *c, uint32_t i)
{
    return (struct twrec *)c->tw.data + i;
}


struct out {
    hf_sink *sink; /* a reference */
    hf_buf buf;
};

struct worker {
    hf_host *host;
    int idx;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct msg *qhead, *qtail; /* mu */
    hf_wbatch *dhead, *dtail;  /* mu: batches back from the store */
    int stopping;              /* mu */

    hf_htab actors; /* struct actor, by hf__tab_hash(addr hash) */
    struct actor *rhead, *rtail; /* run queue */
    struct actor *lhead, *ltail; /* LRU */
    struct batch *cur;           /* being filled this pass */
    struct batch *phead, *ptail; /* sealed, awaiting release, in order */
    struct batch *pool; /* idle batches for reuse (gate.c pool_put) */
    uint32_t npool;
    uint64_t nextid;
    uint64_t gen;
    uint64_t released; /* id of the newest released batch */
    struct out *outs;
    uint32_t nouts, capouts;
    msgpack_zone zone;
    struct hf_ctx ctx;
    hf_buf tmp;
    uint64_t now_ns;
    uint64_t next_evict_ns;
};

struct tent {
    int64_t at;
    uint64_t hash;
    uint32_t alen, nlen;
    char data[]; /* addr, name */
};

/* The kinds served: replaced whole by hf_host_set_kinds, never changed in
 * place. A replaced table is kept (on retired) until the host closes,
 * since a reader on any thread may still hold it. */
struct kindset {
    struct kindset *retired;
    size_t n;
    const struct hf_kind *k[];
};

struct hf_host {
    hf_config cfg;
    hf_store st;
    _Atomic(struct kindset *) kinds; /* readers: acquire; hf_host_set_kinds */
    struct worker *w;
    int nw;
    atomic_int closing;
    const struct hf_feed *feed; /* NULL: no feed rows are written */

    pthread_t tthr;
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    int tstop;           /* tmu */
    int tposting;        /* tmu: an alarm popped, not yet on its queue */
    struct tent **heap;  /* tmu: min-heap by at */
    size_t nheap, capheap;
};

/* ---- held output records (batch->held, ctx->tout) ----
 * A record is a header, a fixed struct and up to three variable parts. */
enum rtype {
    R_REPLY = 1,
    R_FANOUT,
    R_SUB,
    R_UNSUB,
    R_OUTBOX,
    R_ALARM,
    R_HISTORY
};

struct rhdr {
    uint32_t type;
    uint32_t len; /* bytes after the header */
};
struct r_reply { /* + result msgpack (ok) or message text (error) */
    hf_sink *sink; /* a reference, or NULL: nobody to tell */
    uint64_t conn, id;
    int32_t err;
};
struct r_fanout { /* + output envelope */
    struct actor *a;
};
struct r_sub { /* + who (presence msgpack) */
    struct actor *a;
    hf_sink *sink; /* a reference, passed on to the subscription */
    uint64_t conn, id, seq_at;
    int64_t since;
    int32_t has_since, epoch_ok, announce;
};
struct r_unsub {
    struct actor *a;
    hf_sink *sink; /* a reference */
    uint64_t conn, id;
};
struct r_history {
    struct actor *a;
    hf_sink *sink; /* a reference */
    uint64_t conn, id, after, seq_at;
    uint32_t limit;
};
struct r_outbox { /* + target address + request envelope + outbox key */
    uint64_t hash;
    uint32_t alen, envlen, keylen;
};
struct r_alarm { /* + address + name */
    int64_t at;
    uint64_t hash;
    uint32_t alen, nlen;
};

/* ---- what the host's files share (see host.c for the map) ---- */

/* host.c */
const struct hf_kind *hf__kind_find(hf_host *h, const char *addr,
                                    size_t klen);

/* queue.c: any thread, except where said */
struct msg *hf__msg_new(int type, uint64_t hash, const void *addr,
                        size_t alen, const void *env, size_t len,
                        const void *aux, size_t auxlen);
void hf__msg_free(struct msg *m);
void hf__push_msgs(struct worker *w, struct msg *head, struct msg *tail);
/* Queues m on its owning worker. */
void hf__post(hf_host *h, struct msg *m);
/* The store's done callback, on the writer thread. */
void hf__on_done(void *arg, hf_wbatch *wb);

/* timer.c: hf__timer_add from any thread */
void hf__timer_add(hf_host *h, int64_t at, uint64_t hash, const char *addr,
                   size_t alen, const char *name, size_t nlen);
void *hf__timer_main(void *arg);
/* Frees the heap; the timer thread must be stopped (or never started). */
void hf__timer_fini(hf_host *h);

/* table.c: the owning worker's thread */
/* An actor's key in its worker's table. The low bits of an address hash
 * pick the worker (hash % W), so they are much alike within one worker;
 * the table's buckets use the bits above them. */
static inline uint64_t
hf__tab_hash(uint64_t hash)
{
    return hash >> 8;
}
struct actor *hf__actor_get(struct worker *w, const char *addr, size_t alen,
                            uint64_t hash);
void hf__actor_free(struct worker *w, struct actor *a);
void hf__touch(struct worker *w, struct actor *a);
void hf__evict_idle(struct worker *w);
void hf__actors_reset(struct worker *w, uint64_t since);

/* gate.c: the owning worker's thread */
void hf__rec(hf_buf *dst, int type, const void *fixed, size_t flen,
             const void *v1, size_t l1, const void *v2, size_t l2,
             const void *v3, size_t l3);
void hf__rec_fanout(hf_buf *dst, struct actor *a, const void *env,
                    size_t len);
void hf__rec_reply(hf_buf *dst, hf_sink *sink, uint64_t conn, uint64_t id,
                   int err, const void *data, size_t len);
struct batch *hf__cur(struct worker *w);
void hf__seal(struct worker *w);
void hf__release_ready(struct worker *w);
void hf__commit_failed(struct worker *w, struct batch *failed);
hf_buf *hf__out_for(struct worker *w, hf_sink *s);
void hf__flush_outs(struct worker *w);

/* ops.c: the owning worker's thread */
void hf__process(struct worker *w, struct actor *a, struct msg *m);
int hf__msg_env(const struct msg *m, msgpack_zone *zone, hf_env *e);

/* worker.c */
void *hf__worker_main(void *arg);

/* ctx.c, for host.c */
void hf__ctx_begin(struct worker *w, struct actor *a, const char *caller,
                   unsigned role);
void hf__ctx_commit(struct worker *w);
void hf__ctx_abort(struct worker *w);
void hf__ctx_free(struct hf_ctx *c);
int hf__ctx_read(struct hf_ctx *c, int dbi, const void *k, size_t kl,
                 hf_slice *val);
int hf__ctx_stage_write(struct hf_ctx *c, int dbi, const void *k, size_t kl,
                        const void *v, size_t vl, int tomb);
const msgpack_object *hf__nil(void);
void hf__alarm_write(struct worker *w, struct actor *a, struct alarm *al,
                     int64_t old_at);
void hf__batch_touch(struct batch *b, struct actor *a);

#endif
