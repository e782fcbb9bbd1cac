/*
 * nats.c - holdfast-bench fanout --peer nats: the fanout workload against
 * a nats-server WebSocket listener, so that holdfast's fan-out can be set
 * beside a well-known broker's, measured by the same client.
 *
 * Design notes
 * ------------
 * Same client, same numbers. The connections are client/wsclient's
 * hf_ws, offering no subprotocol (nats-server ignores the header and
 * accepts the upgrade on any path, so the --url's default /v1/ws does as
 * well as /), read by poll() loops shaped like wscall.c's; the latency
 * histograms, the result row, its table and its JSON keys are the
 * harness's (bench.h). Only the wire protocol differs: the NATS text
 * protocol (INFO, CONNECT, PING/PONG, SUB, PUB, MSG, +OK/-ERR) in binary
 * WebSocket frames (natsconn.c). nats-server may cut the stream anywhere
 * between frames, so every connection keeps the unparsed tail of its
 * stream (struct nconn) and a MSG is handed on only when its payload is
 * whole.
 *
 * The workload is holdfast fanout's: S subscribers spread over T threads,
 * subscriber i on subject fan.<i mod A>.<tag> (the tag is new for every
 * run, so runs sharing a server do not see each other's messages); then P
 * publisher connections on one thread publish to subjects picked at
 * random, R messages/s in all or as fast as the window allows.
 *
 * Subscriptions are confirmed before the first publish: a subscriber
 * sends CONNECT, SUB and PING in one frame, and nats-server handles a
 * connection's input in order, so its PONG means the subscription is in
 * place. Publishing starts when every subscriber has its PONG.
 *
 * The window. NATS acknowledges nothing per message (we connect with
 * verbose:false, so there is no +OK either), so a publisher ends every
 * frame of PUBs with a PING: the PONG that answers it says the server has
 * taken every PUB before it and handed it to the subscribers' outbound
 * queues (not that they have read it). --window W bounds the PUBs sent
 * and not yet covered by a PONG, per publisher - the counterpart of
 * holdfast's calls in flight awaiting their reply - and "published" counts
 * the PUBs a PONG covered. --rate paces the publisher thread on top, as
 * in holdfast fanout. Unlike holdfast's publishes (durable incr calls
 * whose events leave after the fsync with --durability sync), NATS core
 * keeps nothing on disk: the row is labelled durability none.
 *
 * The payload is "<publisher> <seq> <ns>": the publisher's index, its
 * sequence number on that subject (1, 2, ... per publisher and subject)
 * and hf_mono_ns() when the frame was built, just before it is sent.
 * Latency is a subscriber's read of the frame holding the MSG minus that
 * timestamp (one process, one monotonic clock: no matching needed).
 *
 * The verdict. Per subscriber and publisher, seqs must come as 1..k with
 * k the number of PUBs that publisher sent to the subscriber's subject
 * (known once publishing is over and every PONG is in): a seq beyond the
 * next one counts the skipped ones as lost, a seq at or below the last one
 * counts as reordered (late or repeated), and whatever is missing at the
 * end is lost - the meanings holdfast fanout gives them. Any -ERR, stray
 * or unreadable message, lost connection or stalled publisher fails the
 * run as well.
 *
 * Files. natsconn.c speaks the protocol, natsload.c runs the subscriber
 * and publisher threads, and this file drives the run and judges it;
 * nats.h holds what they share.
 *
 * Threads: as in wscall.c, a connection belongs to one thread. What they
 * share is struct nrun: plain fields written before the threads start,
 * final[] written by the main thread before it sets final_known, and
 * atomics for the rest.
 *
 * Running it. nats-server (Debian 12 ships 2.9.10) serves WebSocket only
 * when its config file has a websocket block; without TLS:
 *
 *     websocket { listen: "127.0.0.1:8443"  no_tls: true }
 *
 * then: holdfast-bench fanout --peer nats --url ws://127.0.0.1:8443
 * (bench/compare does all of it). The entry point is called by fanout.c.
 * A NATS message here is smaller than a holdfast event (a MSG line and a
 * short payload against a JSON event with its envelope); nothing adjusts
 * for that.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/nats.h"
#include "core/err.h"

/* ------------------------------------------------------------------ */
/* the verdict                                                         */

struct ntotal {
    struct hf_bench_lat *lat;
    uint64_t deliveries, expected, lost, reordered, stray, bad_payload,
        malformed, errors, errs[HF_ECOUNT_], dead, last_ns;
};

static void
judge(const struct nrun *r, struct nsubber **sw, int n, struct ntotal *nt)
{
    uint64_t shown = 0;

    for (int i = 0; i < n; i++) {
        const struct nsubber *w = sw[i];
        hf_bench_lat_merge(nt->lat, &w->lat);
        nt->deliveries += w->deliveries;
        nt->stray += w->stray;
        nt->bad_payload += w->bad_payload;
        nt->malformed += w->rd.malformed;
        for (int e = 1; e < HF_ECOUNT_; e++) {
            nt->errs[e] += w->errs[e];
            nt->errors += w->errs[e];
        }
        if (w->last_ns > nt->last_ns)
            nt->last_ns = w->last_ns;
        for (uint32_t j = 0; j < w->n; j++) {
            const struct nsub *s = &w->subs[j];
            const char *subj = r->subj[s->subj].s;
            uint64_t tail = 0;
            for (uint32_t p = 0; p < r->npubs; p++) {
                uint64_t fin = r->final[(size_t)p * r->nsubj + s->subj];
                nt->expected += fin;
                tail += s->last[p] < fin ? fin - s->last[p] : 0;
            }
            nt->lost += s->gaps + tail;
            nt->reordered += s->late;
            if (s->state == S_DEAD && shown++ < SHOW) {
                if (s->k.close_code)
                    printf("verify: FAIL (subscriber %u of %s closed by the "
                           "server with %d after %" PRIu64 " messages)\n",
                           w->first + j, subj, s->k.close_code, s->got);
                else
                    printf("verify: FAIL (subscriber %u of %s lost its "
                           "connection after %" PRIu64 " messages: %s)\n",
                           w->first + j, subj, s->got, hf_err_name(s->k.err));
            }
            nt->dead += s->state == S_DEAD;
            if (s->gaps + s->late > 0 && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: from publisher %u "
                       "expected seq %" PRIu64 ", got %" PRIu64
                       " first; %" PRIu64 " missing, %" PRIu64
                       " late or repeated)\n",
                       w->first + j, subj, s->bad_pub, s->bad_want, s->bad_got,
                       s->gaps, s->late);
            if (tail > 0 && s->state != S_DEAD && shown++ < SHOW)
                printf("verify: FAIL (subscriber %u of %s: %" PRIu64
                       " messages never came)\n",
                       w->first + j, subj, tail);
        }
    }
    if (shown > SHOW)
        printf("verify: FAIL (%" PRIu64 " subscriber problems in all)\n",
               shown);
}

static void
progress(const struct nrun *r, uint64_t t0, uint64_t now, uint64_t *pub0,
         uint64_t *del0, uint64_t *ns0)
{
    uint64_t pub = atomic_load(&r->published), del = atomic_load(&r->delivered);
    double dt = (double)(now - *ns0) / 1e9;

    hf_bench_progress("%s: %5.1fs published %9" PRIu64 " %8.0f/s  delivered "
                      "%11" PRIu64 " %10.0f/s",
                      CMD, (double)(now - t0) / 1e9, pub,
                      dt > 0 ? (double)(pub - *pub0) / dt : 0.0, del,
                      dt > 0 ? (double)(del - *del0) / dt : 0.0);
    *pub0 = pub;
    *del0 = del;
    *ns0 = now;
}

/* The CONNECT line: no +OK per message, no echo, no headers. A token
 * (--token) goes in auth_token; it must need no JSON escaping. */
static int
make_connect(struct nrun *r, const char *token)
{
    int n;

    if (token != NULL && token[strcspn(token, "\"\\\r\n")] != '\0') {
        fprintf(stderr,
                "holdfast-bench %s: --token may not hold quotes, "
                "backslashes or line breaks\n",
                CMD);
        return HF_BENCH_USAGE;
    }
    n = snprintf(r->connect, sizeof(r->connect),
                 "CONNECT {\"verbose\":false,\"pedantic\":false,"
                 "\"tls_required\":false,\"name\":\"holdfast-bench\","
                 "\"lang\":\"c\",\"version\":\"%s\",\"protocol\":1,"
                 "\"echo\":false,\"headers\":false,\"no_responders\":false"
                 "%s%s%s}\r\n",
                 HF_VERSION, token ? ",\"auth_token\":\"" : "",
                 token ? token : "", token ? "\"" : "");
    if (n < 0 || (size_t)n >= sizeof(r->connect)) {
        fprintf(stderr, "holdfast-bench %s: --token too long\n", CMD);
        return HF_BENCH_USAGE;
    }
    r->connect_len = (size_t)n;
    return 0;
}

/* Subjects fan.<a>.<tag>, tag new for every run. */
static struct name *
make_subjects(uint32_t n, char *tag, size_t tagsize)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    uint64_t x = hf_mono_ns() ^ ((uint64_t)time(NULL) << 20) ^
                 ((uint64_t)getpid() << 40);
    struct name *v = calloc(n, sizeof(*v));

    if (v == NULL)
        return NULL;
    for (size_t i = 0; i + 1 < tagsize && i < 8; i++, x /= 36) {
        tag[i] = digits[x % 36];
        tag[i + 1] = '\0';
    }
    for (uint32_t i = 0; i < n; i++)
        v[i].len =
            (size_t)snprintf(v[i].s, sizeof(v[i].s), "fan.%u.%s", i, tag);
    return v;
}

/* Runs the fanout workload against nats-server at t (see the notes at
 * the top). Called by fanout.c for --peer nats, on the main thread, with
 * the flags parsed. Returns the exit status; res is always filled. */
int
hf_bench_nats_fanout(const struct wopts *o, const struct target *t,
                     int durability, struct hf_bench_result *res)
{
    uint32_t nsubj = (uint32_t)o->actors, nsubs = (uint32_t)o->subscribers,
             npubs = (uint32_t)o->publishers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    struct nrun r = {.t = t,
                     .nsubj = nsubj,
                     .nsubs = nsubs,
                     .npubs = npubs,
                     .window = (uint32_t)o->window,
                     .rate = o->rate,
                     .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct nsubber **sw = NULL;
    struct npubber *pc = NULL;
    struct ntotal nt = {0};
    struct name *subj = NULL;
    uint64_t t0 = 0, tpub = 0, next, drain_dl = 0, pub0 = 0, del0 = 0, ns0;
    char tag[16];
    int sstarted = 0, pstarted = 0, pjoined = 0, ok, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = FANOUT;
    res->actors = o->actors;
    res->durability = HF_DURABLE_NONE; /* NATS core keeps nothing */
    res->clients = res->subscribers = (int)o->subscribers;
    res->publishers = (int)o->publishers;
    res->window = (int)o->window;
    res->url = t->url;
    if (o->msgpack) {
        fprintf(stderr,
                "holdfast-bench %s: --msgpack is holdfast's; NATS "
                "speaks its own text protocol\n",
                CMD);
        return HF_BENCH_USAGE;
    }
    if ((rv = make_connect(&r, o->token)) != 0)
        return rv;
    rv = HF_BENCH_FAIL;
    if ((subj = make_subjects(nsubj, tag, sizeof(tag))) == NULL)
        return HF_BENCH_FAIL;
    r.subj = subj;
    r.final = calloc((size_t)npubs * nsubj, sizeof(*r.final));
    sw = calloc((size_t)nthreads, sizeof(*sw));
    if ((nt.lat = calloc(1, sizeof(*nt.lat))) == NULL || r.final == NULL ||
        sw == NULL)
        goto out;
    printf("%s: %u subscribers over %d threads, %u publishers (window %u, ",
           CMD, nsubs, nthreads, npubs, r.window);
    if (o->rate > 0)
        printf("%.0f PUBs/s in all", o->rate);
    else
        printf("as fast as the window allows");
    printf(") to nats-server at %s, %u subjects fan.<i>.%s, ", t->url, nsubj,
           tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld publishes\n", o->ops);
    if (durability == HF_DURABLE_SYNC)
        printf("note: --durability sync ignored: NATS core pub/sub keeps "
               "nothing on disk (the row says none)\n");
    fflush(stdout);

    /* Subscribers first, every subscription confirmed. */
    for (uint32_t i = 0, first = 0; i < (uint32_t)nthreads; i++) {
        uint32_t n =
            nsubs / (uint32_t)nthreads + (i < nsubs % (uint32_t)nthreads);
        if ((sw[i] = wb_nsubber_new(&r, first, n)) == NULL)
            goto out;
        first += n;
    }
    for (; sstarted < nthreads; sstarted++)
        if (pthread_create(&sw[sstarted]->thr, NULL, wb_nsubber_main,
                           sw[sstarted]) != 0)
            break;
    next = hf_mono_ns() + 1000000000u;
    while (atomic_load(&r.ready) < sstarted && sstarted == nthreads &&
           !atomic_load(&r.failed) && !wb_interrupted) {
        wb_sleep_ms(5);
        if (hf_mono_ns() >= next) {
            hf_bench_progress("%s: connecting %" PRIu64 "/%u, subscribed "
                              "%" PRIu64,
                              CMD, (uint64_t)atomic_load(&r.connected), nsubs,
                              (uint64_t)atomic_load(&r.subscribed));
            next += 1000000000u;
        }
    }
    if (atomic_load(&r.ready) < nthreads) {
        int err = 0;
        atomic_store(&r.stop, 1);
        for (int i = 0; i < sstarted; i++)
            pthread_join(sw[i]->thr, NULL);
        sstarted = 0;
        for (int i = 0; i < nthreads; i++)
            if (sw[i] && sw[i]->sub_err)
                err = sw[i]->sub_err;
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect and subscribe every subscriber "
               "(%" PRIu64 " connected, %" PRIu64 " subscribed%s%s)%s\n",
               CMD, (uint64_t)atomic_load(&r.connected),
               (uint64_t)atomic_load(&r.subscribed), err ? ": " : "",
               err ? hf_err_name(err) : "",
               wb_interrupted ? " (interrupted)" : "");
        goto out;
    }

    /* Then the publishers, on one thread. */
    if ((pc = wb_npubber_new(&r)) == NULL)
        goto out;
    if (pthread_create(&pc->thr, NULL, wb_npubber_main, pc) != 0)
        goto out;
    pstarted = 1;
    while (!atomic_load(&r.pready) && !atomic_load(&r.pfinished) &&
           !wb_interrupted)
        wb_sleep_ms(5);
    if (!atomic_load(&r.pready)) {
        atomic_store(&r.pstop, 1);
        hf_bench_progress_end();
        printf("FAIL: %s: could not connect the publishers\n", CMD);
        goto out;
    }
    t0 = ns0 = hf_mono_ns();
    next = t0 + 1000000000u;
    atomic_store(&r.go, 1);
    for (;;) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&r.pstop, 1);
        if (!pjoined && atomic_load(&r.pfinished)) {
            /* Every PUB is covered by a PONG (or its connection is
             * gone): what each publisher sent to each subject is what
             * the subscribers must reach. */
            pthread_join(pc->thr, NULL);
            pjoined = 1;
            tpub = pc->last_pong;
            for (uint32_t p = 0; p < npubs; p++)
                memcpy(&r.final[(size_t)p * nsubj], pc->pubs[p].seq,
                       nsubj * sizeof(uint64_t));
            atomic_store(&r.final_known, 1);
            drain_dl = hf_mono_ns() + (uint64_t)DRAIN_S * 1000000000u;
        }
        if (pjoined && atomic_load(&r.finished) == sstarted)
            break;
        /* Even after Ctrl-C the subscribers get DRAIN_S to catch up. */
        if (pjoined && now > drain_dl)
            atomic_store(&r.stop, 1);
        if (now >= next) {
            progress(&r, t0, now, &pub0, &del0, &ns0);
            next += 1000000000u;
        }
    }
    for (int i = 0; i < sstarted; i++)
        pthread_join(sw[i]->thr, NULL);
    sstarted = 0;
    progress(&r, t0, hf_mono_ns(), &pub0, &del0, &ns0);
    hf_bench_progress_end();
    judge(&r, sw, nthreads, &nt);

    res->ops = res->ok_ops = nt.deliveries;
    res->seconds = (double)((nt.last_ns > tpub ? nt.last_ns : tpub) - t0) / 1e9;
    res->published = pc->acked;
    res->publish_per_sec =
        tpub > t0 ? (double)pc->acked / ((double)(tpub - t0) / 1e9) : 0;
    res->errors = pc->errors + nt.errors;
    for (int e = 1; e < HF_ECOUNT_; e++)
        res->errs[e] = pc->errs[e] + nt.errs[e];
    res->lost = nt.lost;
    res->reordered = nt.reordered;
    {
        struct hf_bench_mark none = {0};
        hf_bench_result_fill(res, nt.lat, &none, &none);
    }

    /* The verdict. */
    ok = nt.lost == 0 && nt.reordered == 0 && nt.dead == 0;
    if (nt.stray || nt.malformed || nt.bad_payload) {
        printf("verify: FAIL (subscribers: %" PRIu64 " stray messages, %" PRIu64
               " with an unreadable payload, %" PRIu64 " broken streams)\n",
               nt.stray, nt.bad_payload, nt.malformed);
        ok = 0;
    }
    if (res->errors > 0) {
        printf("verify: FAIL (%" PRIu64 " -ERR from nats-server)\n",
               res->errors);
        ok = 0;
    }
    if (pc->stalled) {
        printf("verify: FAIL (PINGs in flight and no PONG for %d s)\n",
               STALL_S);
        ok = 0;
    }
    if (pc->dead > 0) {
        uint64_t unacked = 0;
        for (uint32_t p = 0; p < npubs; p++) {
            const struct npub *pb = &pc->pubs[p];
            unacked += pb->sent - pb->acked;
            if (!pb->k.dead || p >= SHOW)
                continue;
            if (pb->k.close_code)
                printf("verify: FAIL (publisher %u closed by the server with "
                       "%d)\n",
                       p, pb->k.close_code);
            else
                printf("verify: FAIL (publisher %u lost its connection: "
                       "%s)\n",
                       p, hf_err_name(pb->k.err));
        }
        printf("verify: FAIL (%u publisher connections lost, %" PRIu64
               " PUBs not covered by a PONG)\n",
               pc->dead, unacked);
        ok = 0;
    }
    if (pc->stray || pc->rd.malformed) {
        printf("verify: FAIL (publishers: %" PRIu64 " stray messages, %" PRIu64
               " broken streams)\n",
               pc->stray, pc->rd.malformed);
        ok = 0;
    }
    res->verified = ok;
    printf("%s: %" PRIu64 " messages published, %" PRIu64
           " deliveries expected, %" PRIu64 " received; lost %" PRIu64
           ", reordered or repeated %" PRIu64 "\n",
           CMD, pc->acked, nt.expected, nt.deliveries, nt.lost, nt.reordered);
    if (ok)
        printf("verify: OK (every subscriber got every message of its "
               "subject once, in order per publisher; %" PRIu64
               " PUBs, all covered by a PONG)\n",
               pc->acked);
    else
        printf("verify: FAIL [%s]\n", CMD);
    printf("note: published = PUBs answered by a PONG (the server took "
           "them); NATS core persists nothing, holdfast's publishes are "
           "calls committed with its --durability\n");
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    if (rv != HF_BENCH_OK) {
        atomic_store(&r.pstop, 1);
        atomic_store(&r.stop, 1);
    }
    if (pstarted && !pjoined)
        pthread_join(pc->thr, NULL);
    for (int i = 0; i < sstarted; i++)
        pthread_join(sw[i]->thr, NULL);
    wb_npubber_free(pc);
    for (int i = 0; sw && i < nthreads; i++)
        wb_nsubber_free(sw[i]);
    free(sw);
    free(nt.lat);
    free(r.final);
    free(subj);
    return rv;
}
