/*
 * fanout.c - holdfast-bench fanout: publishers emit events that a running
 * server delivers to many WebSocket subscribers; latency, loss and order
 * (see wscall.c, wssub.c and wsverify.c for the design notes).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/err.h"

#define FANOUT     "fanout"
#define FAN_SUBS   1000
#define FAN_PUBS   2
#define FAN_WINDOW 32

/* ------------------------------------------------------------------ */
/* fanout: the run                                                     */

/* What fan_final needs: once every publish is answered, the actors are
 * final, and what they hold is what the subscribers must reach. */
struct fanfin {
    struct frun *fr;
    struct caller **cl;
    int64_t *vals; /* NULL when the actors could not be read back */
};

static void
fan_final(void *arg)
{
    struct fanfin *ff = arg;
    struct frun *fr = ff->fr;

    if ((ff->vals = calloc(fr->nactors, sizeof(*ff->vals))) != NULL &&
        wb_read_values(FANOUT, fr->t, fr->names, fr->nactors, ff->vals) != 0) {
        free(ff->vals);
        ff->vals = NULL;
    }
    for (uint32_t a = 0; a < fr->nactors; a++)
        atomic_store(&fr->final[a], ff->vals && ff->vals[a] > 0
                                        ? (uint64_t)ff->vals[a]
                                        : ff->cl[0]->seen[a].max);
}

static int
run_fanout(const struct wopts *o, const struct target *t, int durability,
           struct hf_bench_result *res)
{
    uint32_t nactors = (uint32_t)o->actors, nsubs = (uint32_t)o->subscribers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    struct frun fr = {
        .cmd = FANOUT, .t = t, .nactors = nactors, .nsubs = nsubs};
    struct crun cr = {.cmd = FANOUT,
                      .t = t,
                      .nactors = nactors,
                      .window = (uint32_t)o->window,
                      .nconns = (uint32_t)o->publishers,
                      .emit = 1,
                      .rate = o->rate,
                      .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct subber **sw = NULL;
    struct caller **cl = NULL;
    struct ctotal tot = {0};
    struct ftotal ft = {0};
    struct wb_pub pub = {0};
    struct fanfin ff = {.fr = &fr};
    struct name *names;
    uint64_t sum, t0, tpub;
    char tag[16];
    int sstarted = 0, sjoined = 0, ok = 0, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = FANOUT;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = res->subscribers = (int)o->subscribers;
    res->publishers = (int)o->publishers;
    res->window = (int)o->window;
    res->url = t->url;
    if ((names = wb_make_names(nactors, "counter/fan", tag, sizeof(tag))) ==
        NULL)
        return HF_BENCH_FAIL;
    fr.names = cr.names = names;
    fr.sm = cr.sm = calloc(nactors, sizeof(*fr.sm));
    fr.final = calloc(nactors, sizeof(*fr.final));
    if (fr.sm == NULL || fr.final == NULL)
        goto out;
    printf("%s: %lld subscribers over %d threads, %lld publishers (window "
           "%lld, ",
           FANOUT, o->subscribers, nthreads, o->publishers, o->window);
    if (o->rate > 0)
        printf("%.0f calls/s in all", o->rate);
    else
        printf("as fast as the window allows");
    printf(") to %s (%s), %lld actors counter/fan<i>.%s, ", t->url,
           t->msgpack ? "msgpack" : "JSON", o->actors, tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld publishes\n", o->ops);
    fflush(stdout);

    /* Subscribers first: every one must hold its subscription before the
     * first publish, so that it can be held to every event. */
    if ((sw = wb_subs_new(&fr, nthreads)) == NULL ||
        wb_subs_start(&fr, sw, nthreads, &sstarted) != 0)
        goto out;

    /* Then the publishers. */
    if ((cl = wb_callers_new(&cr, 1)) == NULL)
        goto out;
    ff.cl = cl;
    pub = (struct wb_pub){.cr = &cr,
                          .cl = cl,
                          .n = 1,
                          .duration = duration,
                          .who = "publishers",
                          .what = "published",
                          .rwhat = "delivered",
                          .nreaders = sstarted,
                          .rstop = &fr.stop,
                          .rfinal_known = &fr.final_known,
                          .rfinished = &fr.finished,
                          .delivered = &fr.delivered,
                          .final = fan_final,
                          .arg = &ff};
    if (wb_publish(&pub) != 0)
        goto out;
    wb_subs_join(&fr, sw, sstarted, 0);
    sjoined = 1;
    t0 = pub.t0;
    tpub = pub.tpub;
    if (wb_ctotal_merge(&tot, cl, pub.started, nactors) != 0 ||
        wb_judge_subs(&fr, sw, sstarted, &ft) != 0)
        goto out;

    wb_subs_result(res, &ft, &tot, t0, tpub, &pub.s0, &pub.s1);

    /* The verdict. */
    ok = wb_subs_ok(&ft);
    if (!wb_callers_ok(&tot, cl, pub.started, "publisher"))
        ok = 0;
    if (ff.vals == NULL)
        ok = 0;
    else
        ok &= wb_check_actors(names, nactors, tot.seen, ff.vals, &sum);
    res->verified = ok;
    printf("%s: %" PRIu64 " events published, %" PRIu64
           " deliveries expected, %" PRIu64 " received; lost %" PRIu64
           ", reordered or repeated %" PRIu64 "\n",
           FANOUT, tot.ok, ft.expected, ft.deliveries, ft.lost, ft.reordered);
    if (ok)
        printf("verify: OK (every subscriber got every event of its actor "
               "once, in seq order; actors hold the %" PRIu64
               " acknowledged publishes)\n",
               tot.ok);
    else
        printf("verify: FAIL [%s]\n", FANOUT);
    wb_note_limits(FANOUT, &pub.s0, &pub.s1, tot.errs[-HF_ERATELIMIT],
                   ft.deliveries + tot.ok + tot.errors);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    if (!sjoined)
        wb_subs_join(&fr, sw, sstarted, 1);
    wb_ctotal_free(&tot);
    free(ft.lat);
    free(ff.vals);
    wb_free_callers(cl, 1);
    wb_subs_free(sw, nthreads);
    wb_sm_free(fr.sm, nactors);
    free(fr.final);
    free(names);
    return rv;
}

/* --peer: run the workload against another system instead (nats:
 * bench/nats.c). Set by the flag parser and read by run_peer, both on
 * the main thread. */
static const char *fan_peer;

int hf_bench_nats_fanout(const struct wopts *o, const struct target *t,
                         int durability, struct hf_bench_result *res);

static int
run_peer(const struct wopts *o, const struct target *t, int durability,
         struct hf_bench_result *res)
{
    if (fan_peer == NULL)
        return run_fanout(o, t, durability, res);
    memset(res, 0, sizeof(*res));
    if (strcmp(fan_peer, "nats") == 0)
        return hf_bench_nats_fanout(o, t, durability, res);
    fprintf(stderr, "holdfast-bench %s: --peer wants nats, not '%s'\n", FANOUT,
            fan_peer);
    return HF_BENCH_USAGE;
}

static void
fanout_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench fanout [flags]\n"
          "\n"
          "S subscriber connections, spread over T threads that each poll() "
          "their sockets,\n"
          "subscribe to A fresh actors counter/fan<i>.<tag> (subscriber i "
          "watches actor\n"
          "i mod A). Once all hold their subscription, P publisher "
          "connections (one\n"
          "thread) call incr {\"emit\":true} on the actors, R calls/s in "
          "all, or as fast\n"
          "as a window of W calls per publisher allows. Each incr emits one "
          "event, which\n"
          "the server delivers to every subscriber of that actor.\n"
          "\n"
          "deliv/s counts events received by all subscribers together per "
          "second, from\n"
          "the first publish to the last delivery. Latency runs from the "
          "publisher's\n"
          "write of a call to a subscriber's read of its event (matched by "
          "seq, which is\n"
          "the value incr returns on a fresh counter).\n"
          "\n"
          "Afterwards: every subscriber must have received every event of "
          "its actor,\n"
          "once, in seq order, up to what the actor holds (read through a "
          "fresh\n"
          "connection), and the actors must hold exactly the acknowledged "
          "publishes.\n"
          "Lost and reordered events are counted and shown; either is FAIL, "
          "exit 1.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(
        out, f, n,
        "A subscriber with more than --outbuf-max queued is closed by "
        "the server (1013);\nthat is reported, and it fails the "
        "run.\n"
        "\n--peer nats --url ws://HOST:PORT runs the same workload against a "
        "nats-server\nwebsocket listener (subjects for actors, NATS text "
        "protocol; see bench/nats.c).\n");
}

int
hf_bench_fanout(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = FANOUT, .usage = fanout_usage, .run = run_peer};
    struct wopts o = {.subscribers = FAN_SUBS,
                      .publishers = FAN_PUBS,
                      .actors = 1,
                      .window = FAN_WINDOW,
                      .threads = wb_ncores(),
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "subscribers",
         .metavar = "S",
         .type = HF_BF_INT,
         .dst = &o.subscribers,
         .min = 1,
         .max = MAX_CONNS,
         .help = "subscriber connections (default 1000)"},
        {.name = "publishers",
         .metavar = "P",
         .type = HF_BF_INT,
         .dst = &o.publishers,
         .min = 1,
         .max = 10000,
         .help = "publisher connections (default 2)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "publishes per second, all publishers together "
                 "(default 0: as fast as the window allows)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "publishes in flight per publisher (default 32)"},
        {.name = "actors",
         .metavar = "A",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_FAN_ACTOR,
         .help = "actors published to (default 1)"},
        {.name = "peer",
         .metavar = "NAME",
         .type = HF_BF_STR,
         .dst = &fan_peer,
         .help = "nats: the same workload against nats-server instead"},
    };
    size_t n = 6;

    wb_span_flags(f, &n, &o, "subscriber threads (default: one per core)",
                  "make N publishes in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
