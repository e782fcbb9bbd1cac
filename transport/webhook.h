/*
 * webhook.h - webhooks out: every matching event, after its commit, POSTed
 * as JSON to each configured endpoint, at least once and in seq order per
 * actor (DESIGN §5.8).
 *
 * The host writes a feed row per endpoint for each matching event in the
 * event's own commit (core/host.h struct hf_feed); one delivery thread
 * reads an endpoint's rows in key order, POSTs them in batches through a
 * libcurl multi handle and deletes them once the endpoint answered 2xx.
 * The rows are the delivery progress, so a restart or a down endpoint
 * resumes where it stopped.
 *
 * Each POST body is [{from, seq, type, data, at, id}, ...] (an id per
 * event, stable across retries, for the receiver to deduplicate), with
 *   X-Holdfast-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with
 *                         --webhook-secret>   (absent without a secret)
 *   X-Holdfast-Delivery:  <16 hex digits, the same for the same body>
 * An event the log no longer holds (--log-retain) is replaced by
 * {type:"gap", from, after, id}: events of `from` after seq `after` were
 * missed, resync it.
 *
 * Threads: config and lifecycle functions on the main thread; the match
 * function in the feed is safe from any thread; everything else runs on
 * the delivery thread.
 */
#ifndef HF_TRANSPORT_WEBHOOK_H
#define HF_TRANSPORT_WEBHOOK_H

#include "core/config.h"
#include "core/host.h"
#include "core/storage.h"

typedef struct hf_webhook_config {
    char urls[8192];  /* --webhook, repeatable */
    char match[8192]; /* --webhook-match, repeatable; empty: every actor */
    char secret[512]; /* --webhook-secret */
    int batch;        /* --webhook-batch: events per POST at most */
    int timeout_ms;   /* --webhook-timeout-ms: one attempt */
    int retry_max_ms; /* --webhook-retry-max-ms: backoff cap */
} hf_webhook_config;

hf_optset hf_webhook_config_set(hf_webhook_config *cfg);
void hf_webhook_config_defaults(hf_webhook_config *cfg);

typedef struct hf_webhooks hf_webhooks;

/*
 * Checks cfg and prepares delivery over store, reading with reader rd (one
 * no other thread uses). *out is NULL when no --webhook is configured.
 * Returns 0, or HF_EBADREQ with the reason logged (a URL that is not
 * http:// or https://, more than 32 patterns, a pattern that is not an
 * address pattern, patterns without a URL).
 */
int hf_webhooks_new(hf_webhooks **out, const hf_webhook_config *cfg,
                    hf_store store, int rd);

/* What the host writes rows for (pass it in hf_host_opts.feed). Valid
 * until hf_webhooks_free. */
const struct hf_feed *hf_webhooks_feed(const hf_webhooks *wh);

/* Starts the delivery thread. 0 or HF_EINTERNAL. */
int hf_webhooks_start(hf_webhooks *wh);

/* Stops delivering (a POST in flight is abandoned: its rows stay and are
 * sent again after a restart), waits for its feed trimming to commit and
 * frees everything. Call after hf_host_close and before the store closes.
 * NULL is fine. */
void hf_webhooks_free(hf_webhooks *wh);

#endif
