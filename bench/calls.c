/*
 * calls.c - holdfast-bench calls: counter.incr over WebSocket against a
 * running server, pipelined, with an exact verdict (see wsverify.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/err.h"

/* ------------------------------------------------------------------ */
/* calls                                                               */

#define CALLS         "calls"
#define CALLS_CLIENTS 50
#define CALLS_WINDOW  64
#define CALLS_ACTORS  1000

static int
run_calls(const struct wopts *o, const struct target *t, int durability,
          struct hf_bench_result *res)
{
    struct crun r = {.cmd = CALLS,
                     .t = t,
                     .nactors = (uint32_t)o->actors,
                     .window = (uint32_t)o->window,
                     .nconns = (uint32_t)o->clients,
                     .total = o->has_ops ? (uint64_t)o->ops : 0};
    int nthreads = (int)(o->threads < o->clients ? o->threads : o->clients);
    struct caller **cl = NULL;
    struct ctotal tot = {0};
    struct wb_span sp;
    struct name *names;
    int64_t *vals = NULL;
    uint64_t sum = 0;
    char tag[16];
    int ok = 0, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);
    char base[48];

    memset(res, 0, sizeof(*res));
    r.rate = o->rate / nthreads; /* --rate is for all threads together */
    res->scenario = CALLS;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = (int)o->clients;
    res->window = (int)o->window;
    res->url = t->url;
    snprintf(base, sizeof(base), "%.32s/calls", o->kind);
    if ((names = wb_make_names(r.nactors, base, tag, sizeof(tag))) == NULL)
        return HF_BENCH_FAIL;
    r.names = names;
    printf("%s: %lld connections over %d threads to %s (%s), window %lld, "
           "%lld actors %s<i>.%s, ",
           CALLS, o->clients, nthreads, t->url, t->msgpack ? "msgpack" : "JSON",
           o->window, o->actors, base, tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld calls\n", o->ops);
    fflush(stdout);
    if ((cl = wb_callers_new(&r, nthreads)) == NULL ||
        wb_run(&r, cl, nthreads, duration, "ops", &sp) != 0 ||
        wb_ctotal_merge(&tot, cl, nthreads, r.nactors) != 0)
        goto out;
    res->seconds = (double)(sp.t1 - sp.t0) / 1e9;
    res->ok_ops = tot.ok;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->ops = tot.ok + tot.errors + tot.bad_value;
    hf_bench_result_fill(res, tot.lat, &sp.s0.m, &sp.s1.m);

    /* The verdict. */
    ok = wb_callers_ok(&tot, cl, nthreads, "client");
    if ((vals = calloc(r.nactors, sizeof(*vals))) == NULL ||
        wb_read_values(CALLS, t, names, r.nactors, vals) != 0) {
        ok = 0;
    } else {
        ok &= wb_check_actors(names, r.nactors, tot.seen, vals, &sum);
        if (sum != tot.ok) {
            printf("verify: FAIL (sum over actors %" PRIu64
                   " != acknowledged %" PRIu64 ")\n",
                   sum, tot.ok);
            ok = 0;
        }
    }
    res->verified = ok;
    if (ok)
        printf("verify: OK (sum of get over %u actors %" PRIu64
               " == acknowledged increments %" PRIu64
               "; every actor's replies 1..k) [fresh connection]\n",
               r.nactors, sum, tot.ok);
    else
        printf("verify: FAIL [%s]\n", CALLS);
    wb_note_limits(CALLS, &sp.s0, &sp.s1, tot.errs[-HF_ERATELIMIT], res->ops);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    wb_ctotal_free(&tot);
    free(vals);
    wb_free_callers(cl, nthreads);
    free(names);
    return rv;
}

static void
calls_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench calls [flags]\n"
          "\n"
          "C WebSocket connections to a running server, spread over T "
          "threads that each\n"
          "poll() their sockets, call counter.incr on N fresh actors (picked "
          "uniformly).\n"
          "Every connection keeps W calls in flight and sends each refill as "
          "one frame:\n"
          "'\\n'-joined JSON, or concatenated msgpack with --msgpack. "
          "Latency runs from\n"
          "writing the frame to reading the reply; ops/s counts ok replies; "
          "error replies\n"
          "are listed by code.\n"
          "\n"
          "Afterwards every actor is read back through a fresh connection: "
          "the sum of get\n"
          "must equal the acknowledged increments, each actor must hold what "
          "its replies\n"
          "acknowledged, and those replies must have carried 1..k. Else "
          "FAIL, exit 1.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(out, f, n, "");
}

int
hf_bench_calls(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = CALLS, .usage = calls_usage, .run = run_calls};
    struct wopts o = {.clients = CALLS_CLIENTS,
                      .window = CALLS_WINDOW,
                      .threads = wb_ncores(),
                      .actors = CALLS_ACTORS,
                      .url = DEF_URL,
                      .kind = "counter"};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "clients",
         .metavar = "C",
         .type = HF_BF_INT,
         .dst = &o.clients,
         .min = 1,
         .max = MAX_CONNS,
         .help = "WebSocket connections (default 50)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "calls in flight per connection (default 64)"},
        {.name = "actors",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_ACTORS,
         .help = "actors to spread calls over (default 1000)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "calls per second, all connections together (default 0: "
                 "as fast as the window allows)"},
        {.name = "kind",
         .metavar = "NAME",
         .type = HF_BF_STR,
         .dst = &o.kind,
         .help = "the kind called, with incr {} and get -> {value} (default "
                 "counter; lcounter is its Lua twin in examples/kinds)"},
    };
    size_t n = 5;

    wb_span_flags(f, &n, &o, "client threads (default: one per core)",
                  "make N calls in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
