/*
 * calls.c - holdfast-bench calls: counter.incr over WebSocket against a
 * running server, pipelined, with an exact verdict (see wsrun.c).
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
    struct srv s0, s1;
    struct name *names;
    int64_t *vals = NULL;
    uint64_t t0, t1, next, last_done = 0, last_ns, sum = 0;
    char tag[16], label[32];
    int started = 0, ok = 0, rv = HF_BENCH_FAIL;
    double duration = o->has_duration ? o->duration
                      : o->has_ops    ? 0
                                      : DEF_DURATION;

    memset(res, 0, sizeof(*res));
    res->scenario = CALLS;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = (int)o->clients;
    res->window = (int)o->window;
    res->url = t->url;
    if ((names = wb_make_names(r.nactors, "counter/calls", tag, sizeof(tag))) ==
        NULL)
        return HF_BENCH_FAIL;
    r.names = names;
    snprintf(label, sizeof(label), "%s", CALLS);
    printf("%s: %lld connections over %d threads to %s (%s), window %lld, "
           "%lld actors counter/calls<i>.%s, ",
           CALLS, o->clients, nthreads, t->url, t->msgpack ? "msgpack" : "JSON",
           o->window, o->actors, tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld calls\n", o->ops);
    fflush(stdout);
    if ((cl = wb_callers_new(&r, nthreads)) == NULL)
        goto out;
    started = wb_start_callers(cl, nthreads, &r);
    if (started < nthreads || !wb_await_callers(&r, started, label)) {
        atomic_store(&r.stop, 1);
        wb_join_callers(cl, started);
        hf_bench_progress_end();
        printf("FAIL: %s: could not open every connection%s\n", CALLS,
               wb_interrupted ? " (interrupted)" : "");
        goto out;
    }
    wb_scrape(t, &s0);
    t0 = hf_mono_ns();
    next = t0 + 1000000000u;
    last_ns = t0;
    atomic_store(&r.go, 1);
    while (atomic_load(&r.finished) < started) {
        uint64_t now, done;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r.stop, 1);
        if (now >= next) {
            done = atomic_load(&r.done);
            hf_bench_progress("%s: %5.1fs %10" PRIu64 " ops %9.0f ops/s", label,
                              (double)(now - t0) / 1e9, done,
                              (double)(done - last_done) /
                                  ((double)(now - last_ns) / 1e9));
            last_done = done;
            last_ns = now;
            next += 1000000000u;
        }
    }
    wb_join_callers(cl, started);
    t1 = wb_last_reply(cl, started, t0);
    {
        uint64_t done = atomic_load(&r.done);
        hf_bench_progress("%s: %5.1fs %10" PRIu64 " ops %9.0f ops/s (all)",
                          label, (double)(t1 - t0) / 1e9, done,
                          t1 > t0 ? (double)done / ((double)(t1 - t0) / 1e9)
                                  : 0.0);
        hf_bench_progress_end();
    }
    wb_scrape(t, &s1);
    if (wb_ctotal_merge(&tot, cl, started, r.nactors) != 0)
        goto out;
    res->seconds = (double)(t1 - t0) / 1e9;
    res->ok_ops = tot.ok;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->ops = tot.ok + tot.errors + tot.bad_value;
    hf_bench_result_fill(res, tot.lat, &s0.m, &s1.m);

    /* The verdict. */
    ok = 1;
    if (tot.stalled) {
        printf("verify: FAIL (calls in flight and no reply for %d s)\n",
               STALL_S);
        ok = 0;
    }
    if (wb_report_dead("client", cl, started) > 0) {
        printf("verify: FAIL (%u connections lost, %" PRIu64
               " calls in flight on them: their outcome is unknown)\n",
               tot.dead, tot.lost_calls);
        ok = 0;
    }
    if (tot.stray || tot.bad_value || tot.malformed) {
        printf("verify: FAIL (%" PRIu64 " replies with an unknown or "
               "answered id, %" PRIu64 " ok replies without a value, %" PRIu64
               " unreadable messages)\n",
               tot.stray, tot.bad_value, tot.malformed);
        ok = 0;
    }
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
    wb_note_limits(CALLS, &s0, &s1, tot.errs[-HF_ERATELIMIT], res->ops);
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
                      .url = DEF_URL};
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
        {.name = "threads",
         .metavar = "T",
         .type = HF_BF_INT,
         .dst = &o.threads,
         .min = 1,
         .max = 1024,
         .help = "client threads (default: one per core)"},
        {.name = "actors",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_ACTORS,
         .help = "actors to spread calls over (default 1000)"},
        {.name = "duration",
         .metavar = "S",
         .type = HF_BF_DOUBLE,
         .dst = &o.duration,
         .min = 0.1,
         .max = 86400,
         .seen = &o.has_duration,
         .help = "run for S seconds (default 10)"},
        {.name = "ops",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.ops,
         .min = 1,
         .max = 1e15,
         .seen = &o.has_ops,
         .help = "make N calls in all instead"},
    };

    return wb_ws_main(&sc, &o, f, 6, argc, argv);
}
