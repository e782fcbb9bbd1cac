/*
 * webhook.c - webhooks out (webhook.h): the feed's reader and its HTTP
 * deliveries.
 *
 * Design notes
 * ------------
 * The feed. For each endpoint E (id: a hash of its URL) and each matching
 * event (addr, seq), the host puts the row  be64 E | addr \0 | be64 seq
 * in HF_DB_FEED in the same commit as the event (core/ctx.c). So a row
 * exists exactly when its event is durable, an endpoint's rows are one
 * key range, and an actor's rows sort by seq. Rows are deleted once the
 * endpoint answered 2xx for them: the rows left are the progress, nothing
 * else is stored, and a restart resumes from them.
 *
 * One thread, one curl multi handle. Per endpoint at most one POST is in
 * flight. A batch is read from a cursor (the last key sent), in key
 * order, so the endpoint sees each actor's events in seq order; reading
 * on from the cursor rather than from the start of the range is what
 * keeps one busy actor from starving the others. A batch is sent until
 * it is acknowledged (the same body, so the same X-Holdfast-Delivery),
 * with exponential backoff capped at --webhook-retry-max-ms; then its
 * rows are deleted in a write batch of our own, and the next batch is
 * read only after that commit (else the rows could be read again). The
 * thread reads LMDB with its own reader, ended before any waiting, and
 * writes only through the store's writer: actors and clients never wait
 * for an endpoint, whatever it does.
 *
 * At least once: a crash after a 2xx and before the deletion commits
 * sends the batch again; a receiver deduplicates on each event's id
 * (addr:seq:epoch), which never changes.
 *
 * Gaps: when an event's log row is gone (the log keeps --log-retain events
 * per actor) the run of missing rows of that actor becomes one item
 * {type:"gap", from, after}: the receiver must resync that actor.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp.h"
#include "core/mpjson.h"
#include "core/oom.h"
#include "transport/auth.h"
#include "transport/webhook.h"

#define MOD "webhook"

/* The writer slot of our trimming batches: beyond the host's workers
 * (at most 256), within what the store accepts. */
#define TRIM_WORKER  1000
#define IDLE_POLL_MS 20  /* how often an idle endpoint looks for rows */
#define RETRY_MIN_MS 250 /* the first retry; doubles up to the cap */

enum { EP_IDLE, EP_SENDING, EP_WAITING, EP_TRIMMING };

struct ep {
    struct hf_webhooks *wh;
    uint64_t id;
    char *url;
    CURL *easy;
    struct curl_slist *hdrs;
    int state;
    hf_buf body; /* the batch being delivered */
    hf_buf keys; /* its feed keys: u16 length, bytes */
    uint32_t nkeys, nevents;
    char cursor[HF_KEYBUF]; /* resume after this key (0 bytes: start) */
    size_t clen;
    uint64_t next_ms;    /* EP_WAITING / EP_IDLE: not before this */
    uint32_t backoff_ms; /* 0 while the endpoint is up */
    int down;            /* logged as down */
    atomic_llong oldest; /* at of the oldest event unacknowledged, 0 none */
    hf_wbatch wb;        /* the trimming batch */
    atomic_int trimmed;  /* set by the store's writer: wb is back */
};

struct hf_webhooks {
    hf_webhook_config cfg;
    hf_store st;
    int rd;
    struct ep *eps;
    size_t n;
    uint64_t *ids;
    struct hf_feed feed;
    hf_principal match; /* the patterns, as an acl */
    CURLM *multi;
    pthread_t thr;
    int started;
    atomic_int stop;
    uint64_t gen; /* of our trimming batches (fencing) */
    msgpack_zone zone;
};

/* ------------------------------------------------------------------ */
/* options                                                             */

#define F(f) offsetof(hf_webhook_config, f)
#define S(f) sizeof(((hf_webhook_config *)0)->f)

static const struct hf_opt opts[] = {
    {.name = "webhook",
     .type = HF_OPT_LIST,
     .off = F(urls),
     .size = S(urls),
     .def = "",
     .help = "POST matching events to this URL (repeatable)"},
    {.name = "webhook-match",
     .type = HF_OPT_LIST,
     .off = F(match),
     .size = S(match),
     .def = "",
     .help = "actors whose events go to the webhooks, e.g. 'channel/*' "
             "(repeatable; none: every actor)"},
    {.name = "webhook-secret",
     .type = HF_OPT_STR,
     .off = F(secret),
     .size = S(secret),
     .def = "",
     .help = "HMAC-SHA256 key of X-Holdfast-Signature"},
    {.name = "webhook-batch",
     .type = HF_OPT_INT,
     .off = F(batch),
     .min = 1,
     .max = 1000,
     .def = "100",
     .help = "events per webhook POST at most"},
    {.name = "webhook-timeout-ms",
     .type = HF_OPT_INT,
     .off = F(timeout_ms),
     .min = 100,
     .max = 600000,
     .def = "5000",
     .help = "one webhook POST's time limit"},
    {.name = "webhook-retry-max-ms",
     .type = HF_OPT_INT,
     .off = F(retry_max_ms),
     .min = 250,
     .max = 3600000,
     .def = "60000",
     .help = "cap of the webhook retry backoff (it doubles from 250 ms)"},
};

hf_optset
hf_webhook_config_set(hf_webhook_config *cfg)
{
    return (hf_optset){opts, sizeof(opts) / sizeof(opts[0]), cfg};
}

void
hf_webhook_config_defaults(hf_webhook_config *cfg)
{
    hf_optset s = hf_webhook_config_set(cfg);

    memset(cfg, 0, sizeof(*cfg));
    hf_opts_defaults(&s, 1);
}

/* ------------------------------------------------------------------ */
/* metrics                                                             */

static struct {
    atomic_uint_least64_t delivered; /* events acknowledged */
    atomic_uint_least64_t failures;  /* attempts that failed */
    atomic_uint_least64_t gaps;      /* gap items sent */
    atomic_int down;                 /* endpoints down now */
    _Atomic(hf_webhooks *) live;     /* for the lag gauge */
} wm;

static void
metrics_write(FILE *out)
{
    hf_webhooks *wh = atomic_load(&wm.live);
    int64_t lag = 0, now = hf_now_ms();

    for (size_t i = 0; wh != NULL && i < wh->n; i++) {
        int64_t o = atomic_load(&wh->eps[i].oldest);
        if (o > 0 && now - o > lag)
            lag = now - o;
    }
    hf_metrics_counter(out, "holdfast_webhook_delivered_total",
                       "Events acknowledged by webhook endpoints.",
                       atomic_load(&wm.delivered));
    hf_metrics_counter(out, "holdfast_webhook_failures_total",
                       "Webhook POSTs that failed (retried).",
                       atomic_load(&wm.failures));
    hf_metrics_counter(out, "holdfast_webhook_gaps_total",
                       "Gap items sent: events trimmed before delivery.",
                       atomic_load(&wm.gaps));
    hf_metrics_gauge(out, "holdfast_webhook_endpoints_down",
                     "Webhook endpoints failing now.", atomic_load(&wm.down));
    hf_metrics_gauge(out, "holdfast_webhook_lag_ms",
                     "Age of the oldest event not yet acknowledged.", lag);
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static int
feed_match(void *arg, const char *addr, size_t len)
{
    const hf_webhooks *wh = arg;
    return hf_auth_allows(&wh->match, addr, len) == 0;
}

static int
setup_match(hf_webhooks *wh)
{
    const char *it;
    size_t len, pos = 0;

    hf_auth_anonymous(&wh->match, NULL);
    wh->match.role = HF_ROLE_SERVICE; /* user/{name} too */
    wh->match.nacl = -1;              /* no pattern: every actor */
    while (hf_opt_list_next(wh->cfg.match, &pos, &it, &len)) {
        if (wh->match.nacl < 0)
            wh->match.nacl = 0;
        if (wh->match.nacl == HF_AUTH_ACL_MAX || len > HF_ADDR_MAX) {
            hf_error(MOD,
                     "--webhook-match: at most %d patterns of at most "
                     "%d bytes",
                     HF_AUTH_ACL_MAX, HF_ADDR_MAX);
            return HF_EBADREQ;
        }
        memcpy(wh->match.acl[wh->match.nacl], it, len);
        wh->match.acl[wh->match.nacl++][len] = '\0';
    }
    return 0;
}

int
hf_webhooks_new(hf_webhooks **out, const hf_webhook_config *cfg, hf_store store,
                int rd)
{
    hf_webhooks *wh;
    const char *it;
    size_t len, pos = 0, n = 0;

    *out = NULL;
    while (hf_opt_list_next(cfg->urls, &pos, &it, &len))
        n++;
    if (n == 0) {
        if (cfg->match[0] != '\0' || cfg->secret[0] != '\0') {
            hf_error(MOD, "--webhook-match or --webhook-secret without "
                          "--webhook URL");
            return HF_EBADREQ;
        }
        return 0;
    }
    wh = hf_xcalloc(1, sizeof(*wh));
    wh->cfg = *cfg;
    wh->st = store;
    wh->rd = rd;
    wh->n = n;
    wh->eps = hf_xcalloc(n, sizeof(*wh->eps));
    wh->ids = hf_xcalloc(n, sizeof(*wh->ids));
    msgpack_zone_init(&wh->zone, 4096);
    if (setup_match(wh) != 0)
        goto fail;
    pos = 0;
    for (size_t i = 0; hf_opt_list_next(cfg->urls, &pos, &it, &len); i++) {
        struct ep *e = &wh->eps[i];
        e->wh = wh;
        e->url = hf_xcalloc(1, len + 1);
        memcpy(e->url, it, len);
        if (strncmp(e->url, "http://", 7) != 0 &&
            strncmp(e->url, "https://", 8) != 0) {
            hf_error(MOD, "--webhook %s: use an http:// or https:// URL",
                     e->url);
            goto fail;
        }
        /* The top bit is clear so that id + 1 (the range's end) exists. */
        e->id = hf_addr_hash(e->url, len) >> 1;
        for (size_t j = 0; j < i; j++)
            if (wh->ids[j] == e->id) {
                hf_error(MOD, "--webhook %s given twice", e->url);
                goto fail;
            }
        wh->ids[i] = e->id;
        e->wb.worker = TRIM_WORKER;
        e->wb.done = NULL;
    }
    if (cfg->secret[0] == '\0')
        hf_warn(MOD, "no --webhook-secret: deliveries are not signed");
    wh->feed = (struct hf_feed){
        .match = feed_match, .arg = wh, .ids = wh->ids, .nids = n};
    *out = wh;
    return 0;
fail:
    hf_webhooks_free(wh);
    return HF_EBADREQ;
}

const struct hf_feed *
hf_webhooks_feed(const hf_webhooks *wh)
{
    return wh ? &wh->feed : NULL;
}

/* ------------------------------------------------------------------ */
/* reading a batch                                                     */

struct scan {
    struct ep *e;
    uint32_t max;
};

static int
scan_row(void *arg, hf_slice key, hf_slice val)
{
    struct scan *sc = arg;
    struct ep *e = sc->e;
    uint16_t kl = (uint16_t)key.len;

    (void)val;
    HF_MUST(hf_buf_append(&e->keys, &kl, 2));
    HF_MUST(hf_buf_append(&e->keys, key.data, key.len));
    return ++e->nkeys >= sc->max;
}

/* Lists up to --webhook-batch rows after the cursor (wrapping to the
 * range's start once) into e->keys. */
static void
read_rows(hf_webhooks *wh, struct ep *e)
{
    char lo[HF_KEYBUF + 1], hi[8];
    struct scan sc = {e, (uint32_t)wh->cfg.batch};
    size_t ll;

    e->keys.len = 0;
    e->nkeys = 0;
    hf_put_be64(hi, e->id + 1);
    for (int pass = 0; pass < 2 && e->nkeys == 0; pass++) {
        if (pass == 0 && e->clen > 0) {
            memcpy(lo, e->cursor, e->clen);
            lo[e->clen] = '\0'; /* the first key after the cursor */
            ll = e->clen + 1;
        } else if (pass == 0 || e->clen > 0) {
            hf_put_be64(lo, e->id);
            ll = 8;
            e->clen = 0;
        } else {
            break;
        }
        wh->st.ops->scan(wh->st.self, wh->rd, HF_DB_FEED, (hf_slice){lo, ll},
                         (hf_slice){hi, 8}, 0, scan_row, &sc);
    }
}

/* A feed key's actor and seq. 0, or -1 for a key we did not write. */
static int
parse_key(const char *k, size_t kl, hf_slice *addr, uint64_t *seq)
{
    const char *nul;

    if (kl < 8 + 1 + 1 + 8)
        return -1;
    nul = memchr(k + 8, '\0', kl - 8);
    if (nul == NULL || (size_t)(k + kl - nul) != 9)
        return -1;
    *addr = (hf_slice){k + 8, (size_t)(nul - (k + 8))};
    *seq = hf_get_be64(nul + 1);
    return 0;
}

static void
put_id(hf_json_wr *w, hf_slice addr, const char *what, uint64_t n,
       hf_slice epoch)
{
    char tail[64];
    int tl = snprintf(tail, sizeof(tail), ":%s%llu:%.*s", what,
                      (unsigned long long)n, (int)epoch.len,
                      (const char *)epoch.data);
    hf_buf idb = {0};

    HF_MUST(hf_buf_append(&idb, addr.data, addr.len));
    HF_MUST(hf_buf_append(&idb, tail, (size_t)tl));
    HF_JSON_PUTS(w, ",\"id\":");
    hf_json_str(w, idb.data, idb.len);
    hf_buf_free(&idb);
}

/* Renders one event (the log row's {type, data, at}) as an item. */
static void
put_event(hf_webhooks *wh, hf_json_wr *w, hf_slice addr, uint64_t seq,
          hf_slice ev, hf_slice epoch, int64_t *oldest)
{
    msgpack_object o, *ty = NULL, *da = NULL, *at = NULL;
    size_t off = 0;

    msgpack_zone_clear(&wh->zone);
    if (hf_unpack_next(ev.data, ev.len, &off, &wh->zone, &o) == 0) {
        ty = (msgpack_object *)hf_arg(&o, "type");
        da = (msgpack_object *)hf_arg(&o, "data");
        at = (msgpack_object *)hf_arg(&o, "at");
    }
    HF_JSON_PUTS(w, "{\"from\":");
    hf_json_str(w, addr.data, addr.len);
    HF_JSON_PUTS(w, ",\"seq\":");
    hf_json_u64(w, seq);
    HF_JSON_PUTS(w, ",\"type\":");
    hf_json_mp(w, ty);
    HF_JSON_PUTS(w, ",\"data\":");
    hf_json_mp(w, da);
    HF_JSON_PUTS(w, ",\"at\":");
    hf_json_mp(w, at);
    if (at != NULL && at->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        (*oldest == 0 || (int64_t)at->via.u64 < *oldest))
        *oldest = (int64_t)at->via.u64;
    put_id(w, addr, "", seq, epoch);
    HF_JSON_PUTS(w, "}");
}

/* Reads the next batch into e->body. Returns the number of items. */
static uint32_t
build(hf_webhooks *wh, struct ep *e)
{
    const struct hf_store_ops *ops = wh->st.ops;
    hf_json_wr w = {&e->body, 0, 0, 0};
    char k[HF_KEYBUF], last[HF_ADDR_MAX + 1] = "", epoch[17] = "";
    size_t llen = 0, elen = 0;
    uint64_t gap_next = 0; /* a gap of `last` runs up to here */
    int64_t oldest = 0;
    uint32_t items = 0;

    e->body.len = 0;
    e->nevents = 0;
    if (ops->rd_begin(wh->st.self, wh->rd) != 0)
        return 0;
    read_rows(wh, e);
    HF_JSON_PUTS(&w, "[");
    for (size_t pos = 0; pos < e->keys.len;) {
        uint16_t kl;
        hf_slice addr, ev;
        uint64_t seq;
        size_t n;

        memcpy(&kl, e->keys.data + pos, 2);
        pos += 2;
        memcpy(e->cursor, e->keys.data + pos, kl);
        e->clen = kl;
        pos += kl;
        if (parse_key(e->cursor, kl, &addr, &seq) != 0)
            continue; /* not ours: deleted with the batch */
        if (addr.len != llen || memcmp(addr.data, last, llen) != 0) {
            hf_slice v;
            memcpy(last, addr.data, addr.len);
            llen = addr.len;
            n = hf_key_actor(k, addr.data, addr.len, "epoch", 5);
            elen = ops->get(wh->st.self, wh->rd, HF_DB_META, (hf_slice){k, n},
                            &v) == 0 &&
                           v.len < sizeof(epoch)
                       ? v.len
                       : 0;
            if (elen)
                memcpy(epoch, v.data, elen);
            gap_next = 0;
        }
        if (items > 0)
            HF_JSON_PUTS(&w, ",");
        n = hf_key_seq(k, addr.data, addr.len, seq);
        if (ops->get(wh->st.self, wh->rd, HF_DB_LOG, (hf_slice){k, n}, &ev) ==
            0) {
            put_event(wh, &w, addr, seq, ev, (hf_slice){epoch, elen}, &oldest);
            e->nevents++;
            items++;
            continue;
        }
        if (gap_next == seq) { /* the same run of trimmed events */
            gap_next = seq + 1;
            if (items > 0)
                e->body.len--; /* the comma */
            continue;
        }
        gap_next = seq + 1;
        HF_JSON_PUTS(&w, "{\"type\":\"gap\",\"from\":");
        hf_json_str(&w, addr.data, addr.len);
        HF_JSON_PUTS(&w, ",\"after\":");
        hf_json_u64(&w, seq - 1);
        put_id(&w, addr, "gap", seq - 1, (hf_slice){epoch, elen});
        HF_JSON_PUTS(&w, "}");
        atomic_fetch_add(&wm.gaps, 1);
        items++;
    }
    HF_JSON_PUTS(&w, "]");
    ops->rd_end(wh->st.self, wh->rd);
    if (w.fail)
        hf_oom();
    atomic_store(&e->oldest, e->nkeys ? (oldest ? oldest : hf_now_ms()) : 0);
    return e->nkeys;
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void
send_batch(hf_webhooks *wh, struct ep *e)
{
    char sig[32 + 2 * EVP_MAX_MD_SIZE], dlv[64];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    curl_slist_free_all(e->hdrs);
    e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    e->hdrs = curl_slist_append(e->hdrs, "Expect:"); /* no 100-continue */
    snprintf(dlv, sizeof(dlv), "X-Holdfast-Delivery: %016llx",
             (unsigned long long)hf_addr_hash(e->body.data, e->body.len));
    e->hdrs = curl_slist_append(e->hdrs, dlv);
    if (wh->cfg.secret[0] != '\0' &&
        HMAC(EVP_sha256(), wh->cfg.secret, (int)strlen(wh->cfg.secret),
             (const unsigned char *)e->body.data, e->body.len, md,
             &mdlen) != NULL) {
        int n = snprintf(sig, sizeof(sig), "X-Holdfast-Signature: sha256=");
        for (unsigned i = 0; i < mdlen; i++)
            n += snprintf(sig + n, sizeof(sig) - (size_t)n, "%02x", md[i]);
        e->hdrs = curl_slist_append(e->hdrs, sig);
    }
    if (e->hdrs == NULL)
        hf_oom();
    if (e->easy == NULL && (e->easy = curl_easy_init()) == NULL)
        hf_oom();
    curl_easy_setopt(e->easy, CURLOPT_URL, e->url);
    curl_easy_setopt(e->easy, CURLOPT_POSTFIELDS, e->body.data);
    curl_easy_setopt(e->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)e->body.len);
    curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, e->hdrs);
    curl_easy_setopt(e->easy, CURLOPT_USERAGENT, "holdfast/" HF_VERSION);
    curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long)wh->cfg.timeout_ms);
    curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e->easy, CURLOPT_PRIVATE, e);
    if (curl_multi_add_handle(wh->multi, e->easy) != CURLM_OK)
        hf_oom();
    e->state = EP_SENDING;
}

/* The store's writer thread: our trimming batch is back. */
static void
trimmed(void *arg, hf_wbatch *wb)
{
    struct ep *e = arg;

    (void)wb;
    atomic_store(&e->trimmed, 1);
    curl_multi_wakeup(e->wh->multi); /* safe from any thread */
}

static void
acked(hf_webhooks *wh, struct ep *e)
{
    atomic_fetch_add(&wm.delivered, e->nevents);
    if (e->down) {
        hf_info(MOD, "%s is up again", e->url);
        e->down = 0;
        atomic_fetch_sub(&wm.down, 1);
    }
    e->backoff_ms = 0;
    hf_wbatch_reset(&e->wb);
    e->wb.gen = ++wh->gen;
    e->wb.done = trimmed;
    e->wb.done_arg = e;
    for (size_t pos = 0; pos < e->keys.len;) {
        uint16_t kl;
        memcpy(&kl, e->keys.data + pos, 2);
        HF_MUST(hf_wbatch_del(&e->wb, HF_DB_FEED, e->keys.data + pos + 2, kl));
        pos += 2 + (size_t)kl;
    }
    atomic_store(&e->trimmed, 0);
    if (wh->st.ops->submit(wh->st.self, &e->wb) != 0) {
        e->state = EP_IDLE; /* the store is closing: we are stopping */
        return;
    }
    e->state = EP_TRIMMING;
}

static void
failed(hf_webhooks *wh, struct ep *e, const char *why)
{
    atomic_fetch_add(&wm.failures, 1);
    if (!e->down) {
        hf_warn(MOD,
                "%s is down (%s): retrying with backoff, events are "
                "kept",
                e->url, why);
        e->down = 1;
        atomic_fetch_add(&wm.down, 1);
    }
    e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : RETRY_MIN_MS;
    if (e->backoff_ms > (uint32_t)wh->cfg.retry_max_ms)
        e->backoff_ms = (uint32_t)wh->cfg.retry_max_ms;
    e->next_ms = (uint64_t)hf_now_ms() + e->backoff_ms;
    e->state = EP_WAITING;
}

static void
finished(hf_webhooks *wh)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(wh->multi, &left)) != NULL) {
        struct ep *e = NULL;
        long code = 0;
        char why[64];

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(wh->multi, m->easy_handle);
        if (m->data.result == CURLE_OK && code >= 200 && code < 300) {
            acked(wh, e);
            continue;
        }
        if (m->data.result != CURLE_OK)
            snprintf(why, sizeof(why), "%s",
                     curl_easy_strerror(m->data.result));
        else
            snprintf(why, sizeof(why), "HTTP %ld", code);
        failed(wh, e, why);
    }
}

/* One round over the endpoints; returns how long to wait at most. */
static int
step(hf_webhooks *wh)
{
    uint64_t now = (uint64_t)hf_now_ms();
    int wait = 1000;

    for (size_t i = 0; i < wh->n; i++) {
        struct ep *e = &wh->eps[i];
        if (e->state == EP_TRIMMING && atomic_load(&e->trimmed)) {
            if (e->wb.status != 0)
                hf_warn(MOD,
                        "%s: delivered rows not deleted (%s): they "
                        "will be sent again",
                        e->url, hf_err_name(e->wb.status));
            e->state = EP_IDLE;
            e->next_ms = 0;
        }
        if (e->state == EP_WAITING && now >= e->next_ms)
            send_batch(wh, e);
        else if (e->state == EP_IDLE && now >= e->next_ms) {
            if (build(wh, e) > 0)
                send_batch(wh, e);
            else
                e->next_ms = now + IDLE_POLL_MS;
        }
        if ((e->state == EP_IDLE || e->state == EP_WAITING) &&
            e->next_ms > now && (int)(e->next_ms - now) < wait)
            wait = (int)(e->next_ms - now);
        if (e->state == EP_IDLE && e->next_ms <= now)
            wait = 0;
    }
    return wait;
}

static void *
run(void *arg)
{
    hf_webhooks *wh = arg;
    int running;

    while (!atomic_load(&wh->stop)) {
        int wait = step(wh);
        curl_multi_perform(wh->multi, &running);
        finished(wh);
        curl_multi_poll(wh->multi, NULL, 0, wait, NULL);
    }
    return NULL;
}

int
hf_webhooks_start(hf_webhooks *wh)
{
    if ((wh->multi = curl_multi_init()) == NULL)
        return HF_EINTERNAL;
    atomic_store(&wm.live, wh);
    hf_metrics_register(metrics_write);
    if (pthread_create(&wh->thr, NULL, run, wh) != 0)
        return HF_EINTERNAL;
    wh->started = 1;
    for (size_t i = 0; i < wh->n; i++)
        hf_info(MOD, "delivering to %s", wh->eps[i].url);
    return 0;
}

void
hf_webhooks_free(hf_webhooks *wh)
{
    if (wh == NULL)
        return;
    if (wh->started) {
        atomic_store(&wh->stop, 1);
        curl_multi_wakeup(wh->multi);
        pthread_join(wh->thr, NULL);
    }
    atomic_store(&wm.live, NULL);
    for (size_t i = 0; i < wh->n; i++) {
        struct ep *e = &wh->eps[i];
        /* A trimming batch the store still holds comes back before the
         * store closes; wait for it, since it is ours to free. */
        while (e->state == EP_TRIMMING && !atomic_load(&e->trimmed))
            curl_multi_poll(wh->multi, NULL, 0, 10, NULL);
        if (e->easy != NULL) {
            if (e->state == EP_SENDING)
                curl_multi_remove_handle(wh->multi, e->easy);
            curl_easy_cleanup(e->easy);
        }
        curl_slist_free_all(e->hdrs);
        hf_buf_free(&e->body);
        hf_buf_free(&e->keys);
        hf_buf_free(&e->wb.ops);
        free(e->url);
    }
    if (wh->multi != NULL)
        curl_multi_cleanup(wh->multi);
    msgpack_zone_destroy(&wh->zone);
    free(wh->eps);
    free(wh->ids);
    free(wh);
}
