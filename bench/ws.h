/*
 * ws.h - what holdfast-bench's scenarios against a running server share
 * (calls.c, booking.c, mix.c, fanout.c, publish.c, devices.c, conns.c,
 * nats.c).
 * Private to holdfast-bench. The machinery is split by job, one section
 * of this header per file:
 *
 *   wsconn.c    the target and its connections: dialing, closing many,
 *               frames out, one poll() pass, actor names, /metrics;
 *   wsread.c    reading the server's messages out of frames;
 *   wscall.c    callers: threads keeping windows of calls in flight;
 *   wsverify.c  reading the actors back and the verdicts;
 *   wssub.c     subscribers holding their actors to every event;
 *   wsrun.c     closed-loop runs (wb_run) and pub/sub runs (wb_publish);
 *   wsmain.c    the common flags, usage text and main (wb_ws_main).
 *
 * Threads: a connection, a caller and a reader belong to one thread; what
 * threads share is a run struct (crun, wb_pub) whose plain fields are
 * written before they start and whose atomics carry the rest. Everything
 * else is for the main thread, unless its comment says otherwise.
 */
#ifndef HF_BENCH_WS_H
#define HF_BENCH_WS_H

#include <jansson.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench.h"
#include "core/buf.h"
#include "client/wsclient.h"

#define DEF_URL       "ws://127.0.0.1:8080"
#define CONNECT_MS    30000
#define POLL_MS       20
#define STALL_S       30 /* calls in flight and no reply for this long */
#define SUB_S         60 /* for every subscriber's sub reply */
#define DRAIN_S       30 /* after publishing, for subscribers to catch up */
#define VERIFY_S      60 /* for reading every actor back */
#define VERIFY_WINDOW 256
#define FRAME_MSGS    256
#define FRAME_BYTES   (32u << 10)
#define PER_SOURCE    16000
#define SLOT_BITS     20
#define MAX_WINDOW    (1 << SLOT_BITS)
#define MAX_CONNS     1000000
#define MAX_ACTORS    1000000
#define MAX_FAN_ACTOR 10000
#define NAME_CAP      64
#define SHOW          5
#define DEFER_MAX     (1u << 22) /* unsettled latency samples per thread */
#define SETTLE_NS     5000000u   /* how often they are retried */
#define SERVICE_NS    200000000u /* read open connections while connecting */
#define CLOSE_MS      10000      /* for the goodbyes of a thread's conns */
#define MAX_FLAGS     16         /* per scenario, its own and the common ones */
#define DEF_DURATION  10.0       /* seconds, without --duration or --ops */

/* Where the server is. */
struct target {
    const char *url;
    char host[256];
    int port;
    char path[1024];
    char headers[2048]; /* "Authorization: Bearer ...\r\n", or empty */
    int msgpack;
    int loopback; /* IPv4 loopback: sources may spread over 127.0.0.x */
    int tls;      /* wss://: HF_WSC_TLS or HF_WSC_TLS_INSECURE, else 0 */
};

/* An actor address, built once, then read-only. */
struct name {
    char s[NAME_CAP];
    size_t len;
};

struct srv {
    int ok; /* /metrics could be read */
    struct hf_bench_mark m;
    uint64_t rate_limited, slow_consumers, frames_out;
};

enum { M_OTHER = 0, M_REPLY, M_EVENT };

/* One server message, as much of it as the benchmarks need. from points
 * into the frame (or into a parser's memory) and is valid during the
 * callback only. */
struct smsg {
    int op;
    int has_id;
    uint64_t id;
    int ok;
    int err; /* a failed reply's code, HF_E* */
    int has_value;
    int64_t value; /* reply result.value */
    int has_seq;
    uint64_t seq; /* event seq, or a sub reply's result.seq */
    int has_ts;
    uint64_t ts;        /* event data.meta.ts: a timestamp the bench sent */
    const char *result; /* an ok JSON reply's result, when read fast */
    size_t result_len;
    const msgpack_object *mresult; /* an ok msgpack reply's result */
    json_t *jresult; /* an ok JSON reply's result, when read slowly */
    const char *from;
    size_t from_len;
};

typedef void (*msg_fn)(void *arg, const struct smsg *m);

struct scanner {
    msgpack_zone zone;
    uint64_t malformed;
    uint64_t presence; /* presence messages seen (and skipped) */
};

/* What a load thread reads with. */
struct reader {
    hf_buf rx;         /* the last message received */
    struct scanner sc; /* its parser */
    uint64_t now;      /* when it was received */
};

#define SM_BITS   16
#define SM_CHUNKS 1024 /* seqs up to 2^26 per actor get latency samples */

/* Written by the publisher thread only; read by any subscriber thread. A
 * zero entry: not known (yet). */
struct seqmap {
    _Atomic(atomic_uint_least64_t *) chunk[SM_CHUNKS];
};

/* One actor's view from the ok replies: count, sum and max of values. */
struct seen {
    uint64_t acks, sum, max;
};

struct caller;
struct cconn;

/* What callers send, when it is not counter.incr, and how its replies
 * count. Called on the caller's thread. */
enum { WR_OK = 0, WR_REFUSED, WR_ERROR };

struct wload {
    /* Appends the call with this id for slot s of connection k to
     * c->frame and returns the index of the actor it addresses (for
     * c->seen). Per-slot data may go in k->sent_aux[s]. */
    uint32_t (*put)(struct caller *c, struct cconn *k, uint32_t s, uint64_t id);
    /* Says how the reply m to slot s counts: WR_OK (c->ok), WR_REFUSED
     * (an answer the workload expects, such as conflict: c->refused), or
     * WR_ERROR (c->errors, by code). */
    int (*reply)(struct caller *c, struct cconn *k, uint32_t s,
                 const struct smsg *m);
};

/* Shared by the main thread and the caller threads: the plain fields are
 * set before the threads start and only read afterwards. */
struct crun {
    const char *cmd;
    const struct wload *wl; /* NULL: counter.incr */
    void *wl_arg;           /* the workload's, read-only while running */
    const struct target *t;
    const struct name *names;
    uint32_t nactors;
    uint32_t window;
    uint32_t nconns;   /* over all caller threads */
    int emit;          /* incr {"emit":true} */
    double rate;       /* calls/s per thread; 0: as fast as the window allows */
    uint64_t total;    /* calls to make; 0: until stop */
    struct seqmap *sm; /* per actor, or NULL */
    atomic_uint_least64_t claimed, done, connected;
    atomic_int go, stop, ready, finished, failed;
};

struct cconn {
    hf_ws *ws;
    uint32_t idx; /* over all caller threads */
    uint64_t seq; /* calls sent */
    uint64_t *sent_id, *sent_ns;
    uint32_t *sent_actor, *sent_aux, *freel, nfree;
    int dead, err, close_code;
};

/* Touched only by its own thread from pthread_create to pthread_join,
 * then read by the main thread. */
struct caller {
    pthread_t thr;
    struct crun *r;
    uint32_t first, n; /* its connections: global index, count */
    struct cconn *conns;
    struct pollfd *pfds;
    uint32_t *pidx;
    hf_buf frame;
    struct reader rd;
    uint64_t rng, t0, sent;
    struct cconn *cur;
    struct seen *seen; /* per actor */
    void *wl_state;    /* the workload's own, per thread */
    uint64_t ok, refused, errors, errs[HF_ECOUNT_];
    uint64_t stray;      /* unknown id, repeated reply */
    uint64_t bad_value;  /* ok reply without a value >= 1 */
    uint64_t lost_calls; /* in flight on a connection that died */
    uint32_t dead;
    int stalled;
    struct hf_bench_lat lat;
};

/* What all callers saw together. */
struct ctotal {
    struct seen *seen; /* per actor */
    struct hf_bench_lat *lat;
    uint64_t ok, refused, errors, errs[HF_ECOUNT_], stray, bad_value,
        lost_calls, malformed;
    uint32_t dead;
    int stalled;
};

/* Every remote scenario's options; each uses its own subset. */
struct wopts {
    long long clients;     /* calls: connections */
    long long subscribers; /* fanout */
    long long publishers;  /* fanout */
    long long window, threads, actors, ops;
    long long slots;       /* booking: per device */
    int tamper;            /* booking: see --tamper */
    int timeslot;          /* booking: the Lua kind timeslot, not device */
    double rate, duration; /* rate: fanout */
    const char *url, *token, *json, *durability, *plot;
    const char *kind;      /* calls: the kind called (incr, get) */
    int msgpack, has_ops, has_duration;
    int insecure; /* --insecure: wss:// without checking the certificate */
};

/* A scenario against a running server, as ws_main runs it. */
struct wscen {
    const char *name;
    void (*usage)(FILE *out, const struct hf_bench_flag *f, size_t n);
    int (*run)(const struct wopts *o, const struct target *t, int durability,
               struct hf_bench_result *res);
    int actor_conns; /* each actor is a connection of its own (devices) */
};

/* ------------------------------------------------------------------ */
/* wsconn.c: connections, frames, the server's counters, helpers      */

/* Set by SIGINT (wb_catch_sigint). */
extern volatile sig_atomic_t wb_interrupted;

void wb_catch_sigint(void);
uint64_t wb_rnd(uint64_t *s);

void wb_sleep_ms(int ms);

/* How many of want sends a rate of rate per second allows now, sent having
 * gone out since t0 (hf_mono_ns); when that is none, lowers *timeout (ms)
 * to the time of the next allowed one. With rate <= 0, all of want. */
uint64_t wb_pace(double rate, uint64_t t0, uint64_t sent, uint64_t want,
                 int *timeout);

int wb_ncores(void);

/* Opens connection idx of total, from 127.0.0.x once total passes
 * PER_SOURCE on an IPv4 loopback target, offering t's subprotocol and
 * headers, or none with bare (a NATS peer). Says nothing: on failure *out
 * is as hf_ws_connect_from left it (hf_ws_http_status may be read), for
 * the caller to close. Returns 0 or an HF_E* code. */
int wb_connect(const struct target *t, uint32_t idx, uint32_t total, int bare,
               hf_ws **out);

/* Says on stderr why connection idx failed with rv, hint following the
 * error's name when rv is HF_EUNAVAIL; closes *out and sets it to NULL. */
void wb_dial_failed(const char *cmd, const struct target *t, uint32_t idx,
                    int rv, const char *hint, hf_ws **out);

/* Opens connection idx of total, saying why on stderr when it fails. */
int wb_dial(const char *cmd, const struct target *t, uint32_t idx,
            uint32_t total, hf_ws **out);

/* Names <base><i>.<tag> (base "kind/name"), tag unique to this run so every
 * actor starts fresh even on a server that has seen earlier runs. */
struct name *wb_make_names(uint32_t n, const char *base, char *tag,
                           size_t tagsize);

/* Where the value of metric name starts in a Prometheus text body (a
 * line "name value"), or NULL when it has no such line. */
const char *wb_metric(const char *text, const char *name);

/* Reads the server's /metrics into *s (s->ok 0 when it could not). */
void wb_scrape(const struct target *t, struct srv *s);

/* Closes n connections together (NULL entries are skipped) and sets the
 * entries to NULL. hf_ws_close alone waits up to 250 ms for each server
 * goodbye in turn, which for thousands of connections takes minutes: so
 * every close frame goes out first, then the goodbyes are awaited with one
 * poll() over all of them, CLOSE_MS at most, and only then is each client
 * freed (at once, for those the server has closed). pfds has room for n. */
void wb_close_all(hf_ws **ws, uint32_t n, struct pollfd *pfds, uint32_t *pidx);

/* Appends one message for op call/sub/get to a frame being built. */
void wb_put_msg(hf_buf *b, int msgpack, const char *op, uint64_t id,
                const struct name *to, const char *method, int emit);

int wb_send_frame(hf_ws *ws, int msgpack, const hf_buf *b);

/* One poll() over the n connections for which live(arg, i) gives an open
 * client (NULL: skip it), then ready(arg, i) for each one readable or
 * holding buffered bytes. pfds and pidx have room for n. Returns how many
 * were polled: 0 when none is open. */
uint32_t wb_poll_pass(uint32_t n, hf_ws *(*live)(void *arg, uint32_t i),
                      void (*ready)(void *arg, uint32_t i), void *arg,
                      struct pollfd *pfds, uint32_t *pidx, int timeout);

/* ------------------------------------------------------------------ */
/* wsread.c: reading the server's messages                            */

/* Reads what ws has for us: at least one message, then more as long as
 * the client holds buffered bytes, passing every message to fn. Returns 0,
 * or -1 when the connection is over: *err its HF_E code, or 0 with *code
 * the close code the server sent. */
int wb_drain(struct reader *rd, hf_ws *ws, msg_fn fn, void *arg, int *err,
             int *code);

/* Calls fn for every message of a frame: JSON lines, or msgpack maps one
 * after another. Unreadable messages are counted in sc->malformed. */
void wb_scan(struct scanner *sc, int binary, const char *data, size_t len,
             msg_fn fn, void *arg);

void wb_reader_init(struct reader *rd);

void wb_reader_fini(struct reader *rd);

/* An ok reply's result as a jansson value (a new reference), whichever
 * way it was read; NULL when there is none. For verdicts, not hot paths. */
json_t *wb_result_json(const struct smsg *m);

/* ------------------------------------------------------------------ */
/* wscall.c: callers keeping windows of calls in flight               */

uint64_t wb_sm_get(struct seqmap *sm, uint64_t seq);

void wb_sm_free(struct seqmap *sm, uint32_t n);

/* Builds nthreads callers over r->nconns connections. */
struct caller **wb_callers_new(struct crun *r, int nthreads);

int wb_ctotal_merge(struct ctotal *t, struct caller **cl, int n,
                    uint32_t nactors);

void wb_ctotal_free(struct ctotal *t);

/* Says which caller connections died and how; returns their number. */
uint32_t wb_report_dead(const char *who, struct caller **cl, int n);

/* Starts the callers' threads; returns how many started. */
int wb_start_callers(struct caller **cl, int n, struct crun *r);

/* Waits until every started caller has connected: 1; or one failed, or
 * Ctrl-C: 0. label prefixes the progress line. */
int wb_await_callers(struct crun *r, int started, const char *label);

void wb_join_callers(struct caller **cl, int started);

void wb_free_callers(struct caller **cl, int n);

/* The last reply any caller read, for "first submit to last reply". */
uint64_t wb_last_reply(struct caller **cl, int n, uint64_t t0);

/* ------------------------------------------------------------------ */
/* wsverify.c: reading the actors back, the verdicts                  */

/* Calls get on every actor through one fresh connection, VERIFY_WINDOW
 * at a time, retrying calls refused with rate_limited, overloaded or
 * timeout. Returns 0 with vals[] filled; otherwise prints why and returns
 * an HF_E* code. */
int wb_read_values(const char *cmd, const struct target *t,
                   const struct name *names, uint32_t n, int64_t *vals);

/* Calls method (no args) on every actor through one fresh connection as
 * wb_read_values does, window calls in flight (fewer for big replies: the
 * server closes a client with more than --outbuf-max queued), passing each ok
 * reply to fn with the actor's index; fn returns 0, or -1 when the reply is not
 * what it should be (which fails the whole read). Returns 0 or an HF_E* code,
 * said on stdout. */
int wb_call_each(const char *cmd, const struct target *t,
                 const struct name *names, uint32_t n, const char *method,
                 uint32_t window,
                 int (*fn)(void *arg, uint32_t a, const struct smsg *m),
                 void *arg);

/* Checks the ok replies of each actor carried 1..k_a once each (count,
 * sum and max: cheap, and it catches lost, repeated and stale values),
 * and that the actor holds k_a. Returns 1 when all match. */
int wb_check_actors(const struct name *names, uint32_t n,
                    const struct seen *seen, const int64_t *vals,
                    uint64_t *sum_out);

/* The lines every remote summary ends with: the server's view and what
 * the error codes mean for the run. */
void wb_note_limits(const char *cmd, const struct srv *s0, const struct srv *s1,
                    uint64_t rate_limited, uint64_t messages);

/* Prints the callers' failures of a run (stalled, connections lost,
 * stray or unreadable replies), who naming them ("client", "device").
 * Returns 1 when there were none. */
int wb_callers_ok(const struct ctotal *tot, struct caller **cl, int n,
                  const char *who);

/* ------------------------------------------------------------------ */
/* wssub.c: subscribers, each holding one actor to every event        */

enum { SUB_NEW = 0, SUB_ASKED, SUB_ON, SUB_DEAD };

/* One subscriber connection, watching one actor. */

struct sub {
    hf_ws *ws;
    uint32_t actor;
    int state;
    int err, close_code; /* SUB_DEAD: why */
    uint64_t start;      /* the seq its sub reply reported */
    uint64_t last;       /* the highest seq received */
    uint64_t got, gaps, late;
    uint64_t bad_want, bad_got; /* the first anomaly, for the report */
};

/* Shared by the main thread and the subscriber threads: the plain fields
 * are set before the threads start; final[] is written by the main thread
 * before it sets final_known. */
struct frun {
    const char *cmd;
    const struct target *t;
    const struct name *names;
    uint32_t nactors, nsubs;
    /* Per actor: send times by seq; NULL when the events carry their
     * own (data.meta.ts). */
    struct seqmap *sm;
    atomic_uint_least64_t *final; /* per actor: the last seq to expect */
    atomic_int final_known, stop, ready, finished, failed;
    atomic_uint_least64_t connected, subscribed, delivered;
};

/* A latency sample whose send time was not known at receipt. */
struct defer {
    uint32_t actor;
    uint64_t seq, ns;
};

/* Touched only by its own thread until joined. */
struct subber {
    pthread_t thr;
    struct frun *r;
    uint32_t first, n;
    struct sub *subs;
    struct pollfd *pfds;
    uint32_t *pidx;
    struct reader rd;
    struct sub *cur;
    uint64_t last_ns, settled_ns;
    struct hf_bench_lat lat;
    struct defer *dq;
    size_t ndq, capdq;
    uint64_t deliveries, reported, unmatched, stray;
    int sub_err;
};

/* What the subscribers saw, summed, and the verdict on their streams. */
struct ftotal {
    struct hf_bench_lat *lat;
    uint64_t deliveries, expected, lost, reordered, unmatched, stray, malformed,
        presence, dead, last_ns;
};

/* Makes nthreads subscriber threads over r->nsubs connections
 * (subscriber i watches actor i mod r->nactors), not started; NULL when
 * out of memory. */
struct subber **wb_subs_new(struct frun *r, int nthreads);

/* Starts the threads of sw, which connect and subscribe, and waits until
 * every subscription is held (with a progress line): 0 with *started =
 * n; or -1 after printing FAIL, every started thread joined, *started 0. */
int wb_subs_start(struct frun *r, struct subber **sw, int n, int *started);

/* Joins the started threads; with stop, tells them to stop first. */
void wb_subs_join(struct frun *r, struct subber **sw, int started, int stop);

void wb_subs_free(struct subber **sw, int n);

/* Sums the joined threads into *ft and prints what each subscriber got
 * wrong (against r->final). Returns 0, or -1 when out of memory. */
int wb_judge_subs(struct frun *r, struct subber **sw, int n, struct ftotal *ft);

/* Prints the subscribers' notes (latency samples unmatched, presence) and
 * their stray or unreadable messages. Returns 1 when lost, reordered,
 * dead, stray and malformed are all zero. */
int wb_subs_ok(const struct ftotal *ft);

/* Fills res's pub/sub figures: deliveries (ops, the latencies) from ft,
 * publishes from tot (ok, errors), published/s over t0..tpub (first
 * publish, last one answered), seconds from t0 to the later of tpub and
 * the last delivery; commits from the server's counters s0..s1. */
void wb_subs_result(struct hf_bench_result *res, const struct ftotal *ft,
                    const struct ctotal *tot, uint64_t t0, uint64_t tpub,
                    const struct srv *s0, const struct srv *s1);

/* ------------------------------------------------------------------ */
/* wsrun.c: closed-loop and pub/sub runs                              */

/* A closed-loop run's span: the server's counters before and after, and
 * first submit to last reply. */
struct wb_span {
    struct srv s0, s1;
    uint64_t t0, t1;
};

/* Starts the n callers of cl (made by wb_callers_new for r), waits until
 * all are connected, then lets them call for duration seconds (0: until
 * r->total calls are made, or Ctrl-C) with a progress line counting
 * answered calls as unit, joins them and fills *sp. Returns 0, or -1
 * after printing FAIL when a connection could not be opened (every
 * started thread is joined either way). */
int wb_run(struct crun *r, struct caller **cl, int n, double duration,
           const char *unit, struct wb_span *sp);

/* The publishing half of a pub/sub run (fanout, devices): the readers run
 * on threads of the scenario's own, already subscribed. */
struct wb_pub {
    struct crun *cr;    /* the publishers' run */
    struct caller **cl; /* its n callers (wb_callers_new) */
    int n;
    double duration;                  /* 0: until cr->total publishes */
    const char *who;                  /* "publishers", for a failure */
    const char *what;                 /* "published", for the progress line */
    const char *rwhat;                /* "delivered" */
    int nreaders;                     /* reader threads started */
    atomic_int *rstop;                /* the readers' flags: stop now, */
    atomic_int *rfinal_known;         /* the final counts are known, */
    atomic_int *rfinished;            /* how many have finished */
    atomic_uint_least64_t *delivered; /* what they received, for progress */
    /* Called once every publish is answered, before rfinal_known is set:
     * fills in what the readers must reach. May be NULL. */
    void (*final)(void *arg);
    void *arg;
    /* Filled in: */
    struct srv s0, s1;
    uint64_t t0, tpub; /* first publish; last publish answered */
    int started;       /* publisher threads started (all joined) */
};

/* Starts the publishers, waits until they are connected, lets them
 * publish for p->duration, tells the readers the final counts and waits
 * (at most DRAIN_S) until every reader thread has finished, with a
 * progress line. The publishers are joined before it returns; the
 * readers are the caller's to join. Returns 0, or -1 after printing FAIL
 * when a publisher could not connect (the readers are then told to
 * stop). */
int wb_publish(struct wb_pub *p);

/* ------------------------------------------------------------------ */
/* wsmain.c: the common flags, usage and main                         */

/* The flags, then what every remote scenario shares, then extra. */
void wb_usage_tail(FILE *out, const struct hf_bench_flag *f, size_t n,
                   const char *extra);

/* Parses the flags (f[0..n) the scenario's own, f sized MAX_FLAGS), runs
 * the scenario once and shows its result. Returns the exit status. */
int wb_ws_main(const struct wscen *sc, struct wopts *o, struct hf_bench_flag *f,
               size_t n, int argc, char **argv);

/* Appends --threads, --duration and --ops to f[*n..] (f sized MAX_FLAGS). */
void wb_span_flags(struct hf_bench_flag *f, size_t *n, struct wopts *o,
                   const char *threads_help, const char *ops_help);

/* --duration, or 0 with --ops, or DEF_DURATION. */
double wb_duration(const struct wopts *o);

#endif
