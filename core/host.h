/*
 * host.h - the actor host: worker pool, mailboxes, output gate, alarms.
 *
 * The host owns W worker threads and one timer thread. An actor kind/name
 * is owned by worker hf_addr_hash(addr) % W for its whole life; only that
 * thread touches it. Requests arrive as batches of msgpack envelopes
 * (core/env.h) through hf_host_submit; replies and events leave as batches
 * of envelopes handed to a sink.
 *
 * Thread-safety: hf_host_submit and the sink functions are safe from any
 * thread. hf_host_open/hf_host_close are called once each, from one thread.
 */
#ifndef HF_CORE_HOST_H
#define HF_CORE_HOST_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/actor.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/storage.h"

/*
 * A sink receives output batches: concatenated msgpack envelopes (replies,
 * events, signals, presence). It is whoever submitted requests: a gateway
 * thread, or an in-process driver. deliver is called on worker threads,
 * concurrently from several, and must not block; it takes ownership of
 * out->data (free() it when done). Per worker, batches arrive in order.
 *
 * Sinks are reference counted: the host holds a reference for every reply
 * it owes and every subscription it keeps, and release is called (on any
 * thread) when the last one goes. The creator holds the first reference.
 */
typedef struct hf_sink hf_sink;
struct hf_sink {
    void (*deliver)(hf_sink *s, hf_buf *out);
    void (*release)(hf_sink *s);
    atomic_int refs;
};

void hf_sink_init(hf_sink *s, void (*deliver)(hf_sink *, hf_buf *),
                  void (*release)(hf_sink *));
void hf_sink_ref(hf_sink *s);
void hf_sink_unref(hf_sink *s);

typedef struct hf_host hf_host;

struct hf_host_opts {
    const hf_config *cfg;            /* workers, idle_ms, log_retain, ... */
    hf_store store;                  /* opened with cfg->workers + 2 readers */
    const struct hf_kind *const *kinds;
    size_t nkinds;
};

/* Starts the workers and the timer, re-queues undelivered outbox messages
 * and loads persisted alarms (those already due fire at once). The store
 * must stay open until hf_host_close returns. Returns 0, HF_EBADREQ (bad
 * kinds table) or HF_EINTERNAL. */
int hf_host_open(hf_host **out, const struct hf_host_opts *o);

/* Replaces the kinds served (e.g. Lua kinds reloaded): from then on,
 * requests for a kind no longer listed answer not_found, a kind added is
 * served. Actors already active keep the struct hf_kind they were
 * activated with, so a kind that stays must keep its struct (Lua kinds
 * do: one per name for the registry's life) and every struct ever listed
 * must outlive the host. Messages already running are not disturbed.
 * From one thread at a time (like open and close). Returns 0, or
 * HF_EBADREQ (a bad or repeated name: nothing changes). */
int hf_host_set_kinds(hf_host *h, const struct hf_kind *const *kinds,
                      size_t n);

/* For a test clock (hf_clock_set): the timer looks at the time again, so
 * alarms due at the new time fire. Any thread. */
void hf_host_clock_changed(hf_host *h);
/* Whether an armed alarm is due, or being put on its worker's queue:
 * when this is 0, every due alarm is queued (a call submitted after it
 * runs after them). Any thread. */
int hf_host_alarms_due(hf_host *h);

/* Stops accepting requests, lets every worker finish what it has queued,
 * waits until every held output is resolved (its commit durable or
 * failed) and delivered, then stops the threads and frees the host. The
 * store is the caller's to close afterwards. NULL is fine. */
void hf_host_close(hf_host *h);

/*
 * Routes a batch of request envelopes to the owning workers (one lock per
 * worker touched, whatever the batch size). Each reply, and each event of a
 * subscription made here, goes to sink. Envelopes that cannot be routed
 * (bad address, unknown kind, full mailbox, host closing) get an error
 * reply at once. Returns 0, or HF_EBADREQ when the buffer is not a
 * sequence of msgpack maps (nothing from it is submitted).
 * The buffer is the caller's; it is copied.
 */
int hf_host_submit(hf_host *h, hf_sink *sink, const void *buf, size_t len);

/*
 * Ops (core/env.h): CALL runs a method; SUB/UNSUB (un)subscribe connection
 * "c" of the sink, with presence "a" and recovery point "since"/"ep";
 * SIGNAL broadcasts "a" as type "m"; HISTORY replies, once everything the
 * actor had emitted is durable, {seq, epoch, recovered, events: [{seq,
 * type, data, at}...]} with the events after "since" (default 0), at most
 * "a" of them (default 100, at most 1000); recovered is false when the log
 * no longer reaches back to since + 1 (the events start at the oldest kept).
 */

#endif
