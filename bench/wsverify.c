/*
 * wsverify.c - the verdicts of holdfast-bench's scenarios against a
 * running server (see ws.h): reading every actor back through a fresh
 * connection, checking what the callers were told against it, and the
 * lines every remote summary ends with.
 *
 * Design notes
 * ------------
 * The actors are fresh (their names carry a tag unique to the run), so
 * the state to expect is known exactly:
 *   calls: every actor's ok replies carry 1..k_a; get returns k_a, and
 *     the sum over actors equals the acknowledged total - read through a
 *     fresh connection after the run;
 *   fanout: every subscriber got seq start+1..final of its actor once
 *     each, in order (lost and reordered events are counted and shown),
 *     final being what get returns and what the publishers acknowledged;
 *   both: no stray or unreadable message, no connection lost.
 * Error replies (rate_limited, overloaded) are counted by code; a refused
 * call changes nothing, so they do not break the verdict, but
 * rate_limited is called out: it means the server's --rate is too low
 * for a load test.
 *
 * Threads: the main thread only, after the load threads are joined.
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ws.h"
#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "client/wsclient.h"

/* One read-back (wb_call_each): which actors are asked and answered. */
struct getter {
    struct scanner sc;
    uint8_t *st; /* per actor: 0 to ask, 1 asked, 2 answered */
    int (*fn)(void *arg, uint32_t a, const struct smsg *m);
    void *arg;
    uint32_t n, inflight, left;
    int err;      /* a refusal that retrying cannot cure */
    int backoff;  /* a refusal that it can: pause before asking again */
    uint64_t bad; /* stray or unreadable replies */
};

/* ------------------------------------------------------------------ */
/* reading the actors back                                             */

static void
on_get(void *arg, const struct smsg *m)
{
    struct getter *g = arg;
    uint64_t a = m->id - 1;

    if (m->op != M_REPLY)
        return;
    if (!m->has_id || m->id == 0 || a >= g->n || g->st[a] != 1) {
        g->bad++;
        return;
    }
    g->inflight--;
    if (m->ok) {
        g->st[a] = 2;
        g->left--;
        if (g->fn(g->arg, (uint32_t)a, m) != 0)
            g->err = HF_EBADREQ;
    } else if (m->err == HF_ERATELIMIT || m->err == HF_EOVERLOADED ||
               m->err == HF_ETIMEOUT) {
        g->st[a] = 0;
        g->backoff = 1;
    } else {
        g->st[a] = 2;
        g->left--;
        g->err = m->err;
    }
}

/* vals[a] = the value get returned. */
static int
got_value(void *arg, uint32_t a, const struct smsg *m)
{
    int64_t *vals = arg;

    if (!m->has_value)
        return -1;
    vals[a] = m->value;
    return 0;
}

int
wb_read_values(const char *cmd, const struct target *t,
               const struct name *names, uint32_t n, int64_t *vals)
{
    return wb_call_each(cmd, t, names, n, "get", VERIFY_WINDOW, got_value,
                        vals);
}

int
wb_call_each(const char *cmd, const struct target *t, const struct name *names,
             uint32_t n, const char *method, uint32_t window,
             int (*fn)(void *arg, uint32_t a, const struct smsg *m), void *arg)
{
    struct getter g = {.fn = fn, .arg = arg, .n = n, .left = n};
    hf_ws *ws = NULL;
    hf_buf frame = {0}, rx = {0};
    uint64_t dl = hf_mono_ns() + (uint64_t)VERIFY_S * 1000000000u;
    uint32_t next = 0;
    int rv, op, code;

    msgpack_zone_init(&g.sc.zone, 4096);
    if ((g.st = calloc(n ? n : 1, 1)) == NULL) {
        rv = HF_EINTERNAL;
        goto out;
    }
    if ((rv = wb_dial(cmd, t, 0, 1, &ws)) != 0)
        goto out;
    while (g.left > 0 && g.err == 0 && g.bad == 0) {
        struct pollfd p = {.fd = hf_ws_fd(ws), .events = POLLIN};
        if (hf_mono_ns() > dl) {
            rv = HF_ETIMEOUT;
            break;
        }
        if (g.backoff) {
            wb_sleep_ms(50);
            g.backoff = 0;
        }
        /* Ask the actors not asked yet, window permitting, going round
         * from where the last pass stopped. */
        frame.len = 0;
        for (uint32_t k = 0;
             k < n && g.inflight < window && frame.len < FRAME_BYTES;
             k++, next = (next + 1) % n) {
            if (g.st[next] != 0)
                continue;
            wb_put_msg(&frame, t->msgpack, "call", (uint64_t)next + 1,
                       &names[next], method, 0);
            g.st[next] = 1;
            g.inflight++;
        }
        if (frame.len > 0 && (rv = wb_send_frame(ws, t->msgpack, &frame)) != 0)
            break;
        if (!hf_ws_pending(ws) && poll(&p, 1, 1000) <= 0)
            continue;
        do {
            rv = hf_ws_recv(ws, 0, &op, &rx, &code);
            if (rv == HF_ETIMEOUT)
                break;
            if (rv == 0 && op == HF_WS_CLOSE)
                rv = HF_EUNAVAIL;
            if (rv != 0)
                goto out;
            wb_scan(&g.sc, op == HF_WS_BINARY, rx.data, rx.len, on_get, &g);
        } while (hf_ws_pending(ws));
        rv = 0;
    }
    if (rv == 0 && g.err != 0)
        rv = g.err;
    if (rv == 0 && (g.bad != 0 || g.sc.malformed != 0))
        rv = HF_EBADREQ;
out:
    if (rv != 0)
        printf("verify: FAIL (reading the actors back through a fresh "
               "connection: %s)\n",
               hf_err_name(rv));
    hf_ws_close(ws);
    hf_buf_free(&frame);
    hf_buf_free(&rx);
    msgpack_zone_destroy(&g.sc.zone);
    free(g.st);
    return rv;
}

/* Checks the ok replies of each actor carried 1..k_a once each (count,
 * sum and max: cheap, and it catches lost, repeated and stale values),
 * and that the actor holds k_a. Returns 1 when all match. */
int
wb_check_actors(const struct name *names, uint32_t n, const struct seen *seen,
                const int64_t *vals, uint64_t *sum_out)
{
    uint64_t bad = 0, sum = 0;

    for (uint32_t a = 0; a < n; a++) {
        uint64_t k = seen[a].acks;
        uint64_t want = k % 2 ? k * ((k + 1) / 2) : (k / 2) * (k + 1);
        sum += (uint64_t)vals[a];
        if (seen[a].max != k || seen[a].sum != want) {
            if (bad++ < SHOW)
                printf("verify: FAIL (%s: %" PRIu64
                       " ok replies whose values are not 1..%" PRIu64
                       ": sum %" PRIu64 ", max %" PRIu64 ")\n",
                       names[a].s, k, k, seen[a].sum, seen[a].max);
        } else if (vals[a] < 0 || (uint64_t)vals[a] != k) {
            if (bad++ < SHOW)
                printf("verify: FAIL (%s holds %" PRId64
                       ", acknowledged %" PRIu64 ")\n",
                       names[a].s, vals[a], k);
        }
    }
    *sum_out = sum;
    if (bad > SHOW)
        printf("verify: FAIL (%" PRIu64 " actors disagree in all)\n", bad);
    return bad == 0;
}

/* The lines every remote summary ends with: the server's view and what
 * the error codes mean for the run. */
void
wb_note_limits(const char *cmd, const struct srv *s0, const struct srv *s1,
               uint64_t rate_limited, uint64_t messages)
{
    if (s0->ok && s1->ok && s1->frames_out > s0->frames_out)
        printf("server: %" PRIu64 " WebSocket frames out, %.1f messages "
               "per frame (server-wide counters)\n",
               s1->frames_out - s0->frames_out,
               (double)messages / (double)(s1->frames_out - s0->frames_out));
    if (rate_limited > 0)
        printf("NOTE: %" PRIu64
               " calls were refused with rate_limited: the server's per-"
               "connection limit\n      throttled this run. Restart it with "
               "e.g. --rate 10000000 --rate-burst 10000000\n      (see "
               "holdfast-bench %s --help).\n",
               rate_limited, cmd);
    if (!s0->ok || !s1->ok)
        printf("note: the server's /metrics could not be read: commits and "
               "batch are unknown\n");
    else if (s1->slow_consumers > s0->slow_consumers)
        printf("NOTE: the server closed %" PRIu64
               " slow consumers (1013) during the run\n",
               s1->slow_consumers - s0->slow_consumers);
}

int
wb_callers_ok(const struct ctotal *tot, struct caller **cl, int n,
              const char *who)
{
    int ok = 1;

    if (tot->stalled) {
        printf("verify: FAIL (%s calls in flight and no reply for %d s)\n", who,
               STALL_S);
        ok = 0;
    }
    if (wb_report_dead(who, cl, n) > 0) {
        printf("verify: FAIL (%u %s connections lost, %" PRIu64
               " calls in flight on them: their outcome is unknown)\n",
               tot->dead, who, tot->lost_calls);
        ok = 0;
    }
    if (tot->stray || tot->bad_value || tot->malformed) {
        printf("verify: FAIL (%s: %" PRIu64 " replies with an unknown or "
               "answered id, %" PRIu64 " ok replies without a value, %" PRIu64
               " unreadable messages)\n",
               who, tot->stray, tot->bad_value, tot->malformed);
        ok = 0;
    }
    return ok;
}
