/*
 * wsrun.c - the runs of holdfast-bench's scenarios against a running
 * server (see ws.h), load through its WebSocket endpoint (wire protocol
 * v1, DESIGN §5): wb_run drives a closed-loop run of callers (calls,
 * booking, mix) and wb_publish the publishing half of a pub/sub run
 * (fanout, devices), each with a progress line once a second.
 *
 * Design notes
 * ------------
 * A run starts the callers' threads (wscall.c), waits until every one is
 * connected, reads the server's /metrics, then sets go; it stops them at
 * the end of --duration, after --ops calls, or on Ctrl-C, joins them and
 * reads /metrics again. A pub/sub run then gives the scenario's reader
 * threads, told the final counts, DRAIN_S to catch up, even after Ctrl-C:
 * cutting them off would report events as lost.
 *
 * Threads: called from the main thread; the threads they start share
 * only the run structs (struct crun, struct wb_pub) and their atomics.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "bench/ws.h"
#include "core/env.h"

/* ------------------------------------------------------------------ */
/* closed-loop runs: shared by calls, booking and mix                  */

int
wb_run(struct crun *r, struct caller **cl, int n, double duration,
       const char *unit, struct wb_span *sp)
{
    uint64_t next, last_done = 0, last_ns, done;
    int started = wb_start_callers(cl, n, r);

    memset(sp, 0, sizeof(*sp));
    if (started < n || !wb_await_callers(r, started, r->cmd)) {
        atomic_store(&r->stop, 1);
        wb_join_callers(cl, started);
        hf_bench_progress_end();
        printf("FAIL: %s: could not open every connection%s\n", r->cmd,
               wb_interrupted ? " (interrupted)" : "");
        return -1;
    }
    wb_scrape(r->t, &sp->s0);
    sp->t0 = last_ns = hf_mono_ns();
    next = sp->t0 + 1000000000u;
    atomic_store(&r->go, 1);
    while (atomic_load(&r->finished) < started) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - sp->t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r->stop, 1);
        if (now >= next) {
            done = atomic_load(&r->done);
            hf_bench_progress("%s: %5.1fs %10" PRIu64 " %s %9.0f/s", r->cmd,
                              (double)(now - sp->t0) / 1e9, done, unit,
                              (double)(done - last_done) /
                                  ((double)(now - last_ns) / 1e9));
            last_done = done;
            last_ns = now;
            next += 1000000000u;
        }
    }
    wb_join_callers(cl, started);
    sp->t1 = wb_last_reply(cl, started, sp->t0);
    done = atomic_load(&r->done);
    hf_bench_progress("%s: %5.1fs %10" PRIu64 " %s %9.0f/s (all)", r->cmd,
                      (double)(sp->t1 - sp->t0) / 1e9, done, unit,
                      sp->t1 > sp->t0
                          ? (double)done / ((double)(sp->t1 - sp->t0) / 1e9)
                          : 0.0);
    hf_bench_progress_end();
    wb_scrape(r->t, &sp->s1);
    return 0;
}

/* ------------------------------------------------------------------ */
/* pub/sub runs: the publishing half, shared by fanout and devices     */

static void
pub_progress(struct wb_pub *p, uint64_t now, uint64_t *pub0, uint64_t *del0,
             uint64_t *ns0)
{
    uint64_t pub = atomic_load(&p->cr->done), del = atomic_load(p->delivered);
    double dt = (double)(now - *ns0) / 1e9;

    hf_bench_progress("%s: %5.1fs %s %9" PRIu64 " %8.0f/s  %s %11" PRIu64
                      " %10.0f/s",
                      p->cr->cmd, (double)(now - p->t0) / 1e9, p->what, pub,
                      dt > 0 ? (double)(pub - *pub0) / dt : 0.0, p->rwhat, del,
                      dt > 0 ? (double)(del - *del0) / dt : 0.0);
    *pub0 = pub;
    *del0 = del;
    *ns0 = now;
}

int
wb_publish(struct wb_pub *p)
{
    struct crun *r = p->cr;
    uint64_t next, drain_dl = 0, pub0 = 0, del0 = 0, ns0;
    int done = 0;

    p->started = wb_start_callers(p->cl, p->n, r);
    if (p->started < p->n || !wb_await_callers(r, p->started, r->cmd)) {
        atomic_store(&r->stop, 1);
        atomic_store(p->rstop, 1);
        wb_join_callers(p->cl, p->started);
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect the %s\n", r->cmd, p->who);
        return -1;
    }
    wb_scrape(r->t, &p->s0);
    p->t0 = ns0 = hf_mono_ns();
    next = p->t0 + 1000000000u;
    atomic_store(&r->go, 1);
    for (;;) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((p->duration > 0 && (double)(now - p->t0) >= p->duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r->stop, 1);
        if (!done && atomic_load(&r->finished) == p->started) {
            /* Every publish is answered: what the readers must reach is
             * known now. */
            done = 1;
            p->tpub = wb_last_reply(p->cl, p->started, p->t0);
            if (p->final)
                p->final(p->arg);
            atomic_store(p->rfinal_known, 1);
            drain_dl = hf_mono_ns() + (uint64_t)DRAIN_S * 1000000000u;
        }
        if (done && atomic_load(p->rfinished) == p->nreaders)
            break;
        /* Even after Ctrl-C the readers get their DRAIN_S to catch up:
         * cutting them off would report events as lost. */
        if (done && now > drain_dl)
            atomic_store(p->rstop, 1);
        if (now >= next) {
            pub_progress(p, now, &pub0, &del0, &ns0);
            next += 1000000000u;
        }
    }
    wb_join_callers(p->cl, p->started);
    pub_progress(p, hf_mono_ns(), &pub0, &del0, &ns0);
    hf_bench_progress_end();
    wb_scrape(r->t, &p->s1);
    return 0;
}
