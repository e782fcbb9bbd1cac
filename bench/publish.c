/*
 * publish.c - holdfast-bench publish: backends publishing through
 * POST /v1/publish (transport/publish.c) to channels that a running
 * server delivers to many WebSocket subscribers; throughput, latency,
 * loss and order, next to fanout (the same events made by WebSocket
 * calls).
 *
 * Design notes
 * ------------
 * P publisher threads, each one libcurl easy handle: one keep-alive
 * HTTP connection with one request in flight, as a backend that publishes
 * after its own commits (libcurl rather than client/wsclient.c's
 * hf_http_request, which sends "Connection: close": a connection per
 * request would measure connects). Each request is an array of B items; item j
 * of the run (a counter shared by the publishers) goes to channel j mod C, so
 * every POST spreads over many channels and the channels fill evenly.
 * Every item's data is {"meta":{"ts":T}}, T hf_mono_ns() just before the
 * request is sent: the subscribers (wssub.c) time each event from it.
 *
 * The answer carries each item's seq. Per channel the publishers keep
 * count, sum and max of the seqs acknowledged; afterwards each channel
 * must have had 1..max acknowledged exactly once (count = max, sum =
 * max(max+1)/2: the channels are fresh, named with a tag new to the run),
 * and each subscriber must have received 1..max of its channel once, in
 * order. A request refused with 429 is retried after its Retry-After
 * (nothing of it was published); any other failed request or item fails
 * the run.
 *
 * Threads: a struct pubber is its thread's until joined; struct prun is
 * shared like ws.h's run structs (plain fields set before the threads
 * start, atomics for the rest).
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ws.h"
#include "core/err.h"

#define PUBLISH      "publish"
#define PUB_SUBS     1000
#define PUB_PUBS     4
#define PUB_BATCH    50
#define PUB_CHANNELS 100
#define PUB_ITEMS    1000 /* the server's limit per request */
#define PUB_PATH     "/v1/publish"
#define PUB_PREFIX   "channel/"
#define TIMEOUT_S    60
#define ERRMSG       256

struct prun {
    const char *cmd;
    const struct name *names; /* channel/<i>.<tag> */
    uint32_t nch, batch;
    uint64_t total; /* items to publish; 0: until stop */
    char url[1400];
    struct curl_slist *hdrs;
    int insecure;
    atomic_uint_least64_t claimed, published;
    atomic_int go, stop, ready, finished, failed;
};

/* Touched only by its own thread until joined. */
struct pubber {
    pthread_t thr;
    struct prun *r;
    CURL *h;
    hf_buf body, resp;
    struct seen *seen;       /* per channel: the seqs acknowledged */
    struct hf_bench_lat lat; /* request round trips */
    uint64_t posts, ok, errors, errs[HF_ECOUNT_], rate_limited, last_ns;
    long bad_status; /* the first unexpected HTTP status */
    char errmsg[ERRMSG];
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    return hf_buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* Builds the request for items first..first+n-1 into w->body. */
static void
put_items(struct pubber *w, uint64_t first, uint32_t n, uint64_t ts)
{
    const struct prun *r = w->r;
    char item[NAME_CAP + 96];

    w->body.len = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct name *ch = &r->names[(first + i) % r->nch];
        int len = snprintf(
            item, sizeof(item),
            "%c{\"channel\":\"%s\",\"type\":\"bench\",\"data\":{\"meta\":{"
            "\"ts\":%" PRIu64 "}}}",
            i == 0 ? '[' : ',', ch->s + sizeof(PUB_PREFIX) - 1, ts);
        if (hf_buf_append(&w->body, item, (size_t)len) != 0)
            return;
    }
    hf_buf_append(&w->body, "]", 1);
}

/* Reads the answer to items first..first+n-1. Returns 0, or -1 when it
 * is not {"ok":true,"results":[n results]} (said in w->errmsg). */
static int
take_results(struct pubber *w, uint64_t first, uint32_t n)
{
    json_error_t je;
    json_t *doc = json_loadb(w->resp.data, w->resp.len, 0, &je);
    json_t *res = json_object_get(doc, "results");
    int rv = -1;

    if (!json_is_array(res) || json_array_size(res) != n) {
        snprintf(w->errmsg, sizeof(w->errmsg), "answer not understood: %.*s",
                 (int)(w->resp.len < 160 ? w->resp.len : 160),
                 w->resp.data ? w->resp.data : "");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        json_t *it = json_array_get(res, i);
        json_t *seq = json_object_get(json_object_get(it, "result"), "seq");
        struct seen *s = &w->seen[(first + i) % w->r->nch];
        if (json_is_true(json_object_get(it, "ok")) && json_is_integer(seq) &&
            json_integer_value(seq) > 0) {
            uint64_t v = (uint64_t)json_integer_value(seq);
            w->ok++;
            s->acks++;
            s->sum += v;
            if (v > s->max)
                s->max = v;
        } else {
            const char *code = json_string_value(
                json_object_get(json_object_get(it, "error"), "code"));
            int err = code ? hf_err_from_name(code) : HF_EINTERNAL;
            w->errors++;
            w->errs[err < 0 && -err < HF_ECOUNT_ ? -err : -HF_EINTERNAL]++;
        }
    }
    rv = 0;
out:
    json_decref(doc);
    return rv;
}

/* Sends one request and reads its answer, retrying after a 429. Returns
 * 0, or -1 when the request failed (w->errmsg says why). */
static int
post(struct pubber *w, uint64_t first, uint32_t n)
{
    for (;;) {
        uint64_t t0 = hf_mono_ns();
        curl_off_t retry = 0;
        long status = 0;
        CURLcode cc;

        put_items(w, first, n, t0);
        w->resp.len = 0;
        curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, w->body.data);
        curl_easy_setopt(w->h, CURLOPT_POSTFIELDSIZE, (long)w->body.len);
        if ((cc = curl_easy_perform(w->h)) != CURLE_OK) {
            snprintf(w->errmsg, sizeof(w->errmsg), "%s",
                     curl_easy_strerror(cc));
            return -1;
        }
        w->last_ns = hf_mono_ns();
        w->posts++;
        hf_bench_lat_add(&w->lat, w->last_ns - t0);
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200)
            return take_results(w, first, n);
        if (status != 429) {
            w->bad_status = status;
            snprintf(w->errmsg, sizeof(w->errmsg), "HTTP %ld: %.*s", status,
                     (int)(w->resp.len < 160 ? w->resp.len : 160),
                     w->resp.data ? w->resp.data : "");
            return -1;
        }
        /* Refused whole, before any item was sent to a channel. */
        w->rate_limited++;
        curl_easy_getinfo(w->h, CURLINFO_RETRY_AFTER, &retry);
        if (wb_interrupted) {
            snprintf(w->errmsg, sizeof(w->errmsg),
                     "interrupted while refused with 429");
            return -1;
        }
        wb_sleep_ms(retry > 0 ? (int)(retry > 5 ? 5000 : retry * 1000) : 10);
    }
}

static void *
pubber_main(void *arg)
{
    struct pubber *w = arg;
    struct prun *r = w->r;

    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load(&r->go) && !atomic_load(&r->stop))
        wb_sleep_ms(1);
    while (!atomic_load(&r->stop)) {
        uint64_t first = atomic_fetch_add(&r->claimed, r->batch);
        uint32_t n = r->batch;
        if (r->total > 0) {
            if (first >= r->total)
                break;
            if (r->total - first < n)
                n = (uint32_t)(r->total - first);
        }
        if (post(w, first, n) != 0) {
            atomic_store(&r->failed, 1);
            break;
        }
        atomic_fetch_add_explicit(&r->published, n, memory_order_relaxed);
    }
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static void
pubber_free(struct pubber *w)
{
    if (w == NULL)
        return;
    if (w->h)
        curl_easy_cleanup(w->h);
    hf_buf_free(&w->body);
    hf_buf_free(&w->resp);
    free(w->seen);
    free(w);
}

static struct pubber *
pubber_new(struct prun *r)
{
    struct pubber *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->r = r;
    if ((w->seen = calloc(r->nch, sizeof(*w->seen))) == NULL ||
        (w->h = curl_easy_init()) == NULL) {
        pubber_free(w);
        return NULL;
    }
    curl_easy_setopt(w->h, CURLOPT_URL, r->url);
    curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(w->h, CURLOPT_WRITEDATA, &w->resp);
    curl_easy_setopt(w->h, CURLOPT_TIMEOUT, (long)TIMEOUT_S);
    curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->h, CURLOPT_TCP_NODELAY, 1L);
    if (r->insecure) {
        curl_easy_setopt(w->h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(w->h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return w;
}

/* The request's URL and headers from the target: http(s) for ws(s), the
 * same host, port and token. Returns 0 or -1 (out of memory). */
static int
prun_http(struct prun *r, const struct target *t)
{
    const char *h = t->headers, *e;
    char line[sizeof(t->headers)];

    snprintf(r->url, sizeof(r->url), "%s://%s:%d%s", t->tls ? "https" : "http",
             t->host, t->port, PUB_PATH);
    r->insecure = t->tls == HF_WSC_TLS_INSECURE;
    /* "Expect:" keeps curl from waiting for a 100 Continue on big bodies. */
    if ((r->hdrs = curl_slist_append(NULL, "Content-Type: application/json")) ==
            NULL ||
        curl_slist_append(r->hdrs, "Expect:") == NULL)
        return -1;
    for (; (e = strstr(h, "\r\n")) != NULL; h = e + 2) {
        snprintf(line, sizeof(line), "%.*s", (int)(e - h), h);
        if (e > h && curl_slist_append(r->hdrs, line) == NULL)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void
progress(struct prun *pr, struct frun *fr, uint64_t t0, uint64_t now,
         uint64_t *last)
{
    uint64_t pub = atomic_load(&pr->published);
    uint64_t del = atomic_load(&fr->delivered);
    double dt = (double)(now - last[2]) / 1e9;

    hf_bench_progress("%s: %5.1fs published %9" PRIu64 " %8.0f/s  delivered "
                      "%11" PRIu64 " %10.0f/s",
                      PUBLISH, (double)(now - t0) / 1e9, pub,
                      dt > 0 ? (double)(pub - last[0]) / dt : 0.0, del,
                      dt > 0 ? (double)(del - last[1]) / dt : 0.0);
    last[0] = pub;
    last[1] = del;
    last[2] = now;
}

/* Once every publisher has finished: each channel's final seq, the
 * highest any publisher had acknowledged, for the subscribers to reach. */
static void
set_finals(struct pubber **pw, int npub, struct prun *pr, struct frun *fr)
{
    for (uint32_t c = 0; c < pr->nch; c++) {
        uint64_t max = 0;
        for (int i = 0; i < npub; i++)
            if (pw[i]->seen[c].max > max)
                max = pw[i]->seen[c].max;
        atomic_store(&fr->final[c], max);
    }
}

/* Lets the publishers pw run for duration (0: until pr->total items),
 * then gives the subscribers their final seqs and DRAIN_S to reach
 * them. */
static void
drive(struct prun *pr, struct frun *fr, struct pubber **pw, int npub, int nsubt,
      double duration, uint64_t *t0)
{
    uint64_t last[3], next, drain_dl = 0;
    int done = 0;

    *t0 = last[2] = hf_mono_ns();
    last[0] = last[1] = 0;
    next = *t0 + 1000000000u;
    atomic_store(&pr->go, 1);
    for (;;) {
        uint64_t now;
        wb_sleep_ms(20);
        now = hf_mono_ns();
        if ((duration > 0 && (double)(now - *t0) >= duration * 1e9) ||
            wb_interrupted)
            atomic_store(&pr->stop, 1);
        if (!done && atomic_load(&pr->finished) == npub) {
            /* The publishers are done writing their seen[]: finished is
             * counted after their last write. */
            done = 1;
            set_finals(pw, npub, pr, fr);
            atomic_store(&fr->final_known, 1);
            drain_dl = now + (uint64_t)DRAIN_S * 1000000000u;
        }
        if (done && atomic_load(&fr->finished) == nsubt)
            break;
        if (done && now > drain_dl)
            atomic_store(&fr->stop, 1);
        if (now >= next) {
            progress(pr, fr, *t0, now, last);
            next += 1000000000u;
        }
    }
    progress(pr, fr, *t0, hf_mono_ns(), last);
    hf_bench_progress_end();
}

/* Sums the publishers into *tot (seen per channel); returns 1 when every
 * channel had 1..max acknowledged exactly once and nothing failed. */
static int
judge_pubs(struct pubber **pw, int n, struct prun *pr, struct ctotal *tot,
           struct hf_bench_lat *lat, uint64_t *tpub)
{
    int ok = 1;
    uint32_t shown = 0;

    for (int i = 0; i < n; i++) {
        struct pubber *w = pw[i];
        tot->ok += w->ok;
        tot->errors += w->errors;
        for (int e = 0; e < HF_ECOUNT_; e++)
            tot->errs[e] += w->errs[e];
        hf_bench_lat_merge(lat, &w->lat);
        if (w->last_ns > *tpub)
            *tpub = w->last_ns;
        if (w->errmsg[0] != '\0') {
            printf("verify: FAIL (publisher %d: %s)\n", i, w->errmsg);
            ok = 0;
        }
        for (uint32_t c = 0; c < pr->nch; c++) {
            tot->seen[c].acks += w->seen[c].acks;
            tot->seen[c].sum += w->seen[c].sum;
            if (w->seen[c].max > tot->seen[c].max)
                tot->seen[c].max = w->seen[c].max;
        }
    }
    for (uint32_t c = 0; c < pr->nch; c++) {
        const struct seen *s = &tot->seen[c];
        if (s->acks != s->max || s->sum != s->max * (s->max + 1) / 2) {
            if (shown++ < SHOW)
                printf("verify: FAIL (%s: %" PRIu64 " items acknowledged, "
                       "highest seq %" PRIu64 ", seq sum %" PRIu64 ")\n",
                       pr->names[c].s, s->acks, s->max, s->sum);
            ok = 0;
        }
    }
    if (tot->errors > 0) {
        printf("verify: FAIL (%" PRIu64 " items refused)\n", tot->errors);
        ok = 0;
    }
    return ok;
}

static int
run_publish(const struct wopts *o, const struct target *t, int durability,
            struct hf_bench_result *res)
{
    uint32_t nch = (uint32_t)o->actors, nsubs = (uint32_t)o->subscribers;
    int nthreads =
        (int)(o->threads < o->subscribers ? o->threads : o->subscribers);
    int npub = (int)o->publishers, pstarted = 0, sstarted = 0, ok;
    struct frun fr = {.cmd = PUBLISH, .t = t, .nactors = nch, .nsubs = nsubs};
    struct prun pr = {.cmd = PUBLISH,
                      .nch = nch,
                      .batch = (uint32_t)o->window,
                      .total = o->has_ops ? (uint64_t)o->ops : 0};
    struct subber **sw = NULL;
    struct pubber **pw = NULL;
    struct ctotal tot = {0};
    struct ftotal ft = {0};
    struct hf_bench_lat *plat = NULL;
    struct srv s0, s1;
    struct name *names;
    uint64_t t0 = 0, tpub = 0, rl = 0, posts = 0;
    char tag[16];
    int rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = PUBLISH;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = res->subscribers = (int)o->subscribers;
    res->publishers = npub;
    res->window = (int)o->window; /* the batch, in the fan-out table */
    res->url = t->url;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return HF_BENCH_FAIL;
    if ((names = wb_make_names(nch, PUB_PREFIX "pub", tag, sizeof(tag))) ==
        NULL)
        goto out;
    fr.names = pr.names = names;
    fr.final = calloc(nch, sizeof(*fr.final));
    tot.seen = calloc(nch, sizeof(*tot.seen));
    plat = calloc(1, sizeof(*plat));
    pw = calloc((size_t)npub, sizeof(*pw));
    if (!fr.final || !tot.seen || !plat || !pw || prun_http(&pr, t) != 0)
        goto out;
    for (int i = 0; i < npub; i++)
        if ((pw[i] = pubber_new(&pr)) == NULL)
            goto out;
    printf("%s: %lld subscribers over %d threads, %d HTTP publishers (POST "
           "%s, %lld items each, one request in flight) to %s (%s), %u "
           "channels %spub<i>.%s, ",
           PUBLISH, o->subscribers, nthreads, npub, PUB_PATH, o->window, t->url,
           t->msgpack ? "msgpack" : "JSON", nch, PUB_PREFIX, tag);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld items\n", o->ops);
    fflush(stdout);

    /* Subscribers first, so that each can be held to every event. */
    if ((sw = wb_subs_new(&fr, nthreads)) == NULL ||
        wb_subs_start(&fr, sw, nthreads, &sstarted) != 0)
        goto out;
    for (; pstarted < npub; pstarted++)
        if (pthread_create(&pw[pstarted]->thr, NULL, pubber_main,
                           pw[pstarted]) != 0)
            break;
    if (pstarted < npub) {
        printf("FAIL: %s: could not start the publishers\n", PUBLISH);
        goto out;
    }
    wb_scrape(t, &s0);
    drive(&pr, &fr, pw, npub, sstarted, duration, &t0);
    for (int i = 0; i < pstarted; i++)
        pthread_join(pw[i]->thr, NULL);
    pstarted = 0;
    wb_subs_join(&fr, sw, sstarted, 0);
    sstarted = 0;
    wb_scrape(t, &s1);

    /* The verdict: the channels' seqs, then the subscribers' streams
     * against them. */
    ok = judge_pubs(pw, npub, &pr, &tot, plat, &tpub);
    if (wb_judge_subs(&fr, sw, nthreads, &ft) != 0)
        goto out;
    ok &= wb_subs_ok(&ft);
    for (int i = 0; i < npub; i++) {
        rl += pw[i]->rate_limited;
        posts += pw[i]->posts;
    }
    wb_subs_result(res, &ft, &tot, t0, tpub, &s0, &s1);
    res->verified = ok;
    hf_bench_extra(res, "posts", (double)posts);
    hf_bench_extra(res, "post_p50_us",
                   (double)hf_bench_lat_quantile(plat, 0.5) / 1e3);
    hf_bench_extra(res, "post_p99_us",
                   (double)hf_bench_lat_quantile(plat, 0.99) / 1e3);
    hf_bench_extra(res, "http_429", (double)rl);
    printf("%s: %" PRIu64 " items published in %" PRIu64 " POSTs (round trip "
           "p50 %.1f ms, p99 %.1f ms), %" PRIu64 " deliveries expected, "
           "%" PRIu64 " received; lost %" PRIu64 ", reordered or repeated "
           "%" PRIu64 "\n",
           PUBLISH, tot.ok, posts,
           (double)hf_bench_lat_quantile(plat, 0.5) / 1e6,
           (double)hf_bench_lat_quantile(plat, 0.99) / 1e6, ft.expected,
           ft.deliveries, ft.lost, ft.reordered);
    if (rl > 0)
        printf("note: %" PRIu64 " POSTs were refused with 429 and retried "
               "(holdfast serve --rate/--rate-burst limit HTTP requests "
               "too)\n",
               rl);
    if (ok)
        printf("verify: OK (every channel acknowledged seqs 1..n once each; "
               "every subscriber got every event of its channel once, in seq "
               "order)\n");
    else
        printf("verify: FAIL [%s]\n", PUBLISH);
    wb_note_limits(PUBLISH, &s0, &s1, tot.errs[-HF_ERATELIMIT],
                   ft.deliveries + tot.ok + tot.errors);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    atomic_store(&pr.stop, 1);
    for (int i = 0; i < pstarted; i++)
        pthread_join(pw[i]->thr, NULL);
    wb_subs_join(&fr, sw, sstarted, 1);
    for (int i = 0; pw && i < npub; i++)
        pubber_free(pw[i]);
    free(pw);
    wb_subs_free(sw, nthreads);
    free(ft.lat);
    free(plat);
    free(tot.seen);
    free(fr.final);
    free(names);
    curl_slist_free_all(pr.hdrs);
    curl_global_cleanup();
    return rv;
}

static void
publish_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs(
        "usage: holdfast-bench publish [flags]\n"
        "\n"
        "S subscriber connections over T threads subscribe to C fresh "
        "channels\n"
        "channel/pub<i>.<tag> (subscriber i watches channel i mod C). Once "
        "all hold\n"
        "their subscription, P HTTP publishers (libcurl, one keep-alive "
        "connection and\n"
        "one request in flight each) POST /v1/publish arrays of B items; item "
        "j of the\n"
        "run goes to channel j mod C, its data {\"meta\":{\"ts\":T}} with T "
        "the send time.\n"
        "\n"
        "pub/s counts items acknowledged per second; deliv/s events received "
        "by all\n"
        "subscribers together per second, from the first POST to the last "
        "delivery.\n"
        "Latency runs from the POST's send to a subscriber's read of the "
        "event.\n"
        "\n"
        "Afterwards: each channel must have acknowledged seqs 1..n exactly "
        "once, and\n"
        "every subscriber must have received 1..n of its channel once, in "
        "seq order.\n"
        "Lost, reordered, refused items or failed POSTs are FAIL, exit 1. A "
        "POST refused\n"
        "with 429 is retried after its Retry-After. Without --jwt-secret the "
        "server lets\n"
        "anyone publish; with it, --token must be a service or admin "
        "token.\n"
        "\n"
        "flags:\n",
        out);
    wb_usage_tail(out, f, n,
                  "The fan-out table's window column shows the batch B.\n");
}

int
hf_bench_publish(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = PUBLISH, .usage = publish_usage, .run = run_publish};
    struct wopts o = {.subscribers = PUB_SUBS,
                      .publishers = PUB_PUBS,
                      .actors = PUB_CHANNELS,
                      .window = PUB_BATCH,
                      .threads = wb_ncores(),
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "subscribers",
         .metavar = "S",
         .type = HF_BF_INT,
         .dst = &o.subscribers,
         .min = 1,
         .max = MAX_CONNS,
         .help = "subscriber connections in all (default 1000: 10 per "
                 "channel)"},
        {.name = "publishers",
         .metavar = "P",
         .type = HF_BF_INT,
         .dst = &o.publishers,
         .min = 1,
         .max = 1000,
         .help = "HTTP publisher connections, one thread each (default 4)"},
        {.name = "batch",
         .metavar = "B",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = PUB_ITEMS,
         .help = "items per POST (default 50)"},
        {.name = "channels",
         .metavar = "C",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MAX_FAN_ACTOR,
         .help = "channels published to (default 100)"},
    };
    size_t n = 4;

    wb_span_flags(f, &n, &o, "subscriber threads (default: one per core)",
                  "publish N items in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
