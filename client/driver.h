/*
 * driver.h - an in-process client of the host, for tests and benchmarks.
 *
 * A driver is one sink: requests are queued with hf_drv_add and handed to
 * the host as one batch by hf_drv_flush, exactly as a gateway thread does;
 * outputs (replies, events, signals, presence) are collected and read with
 * hf_drv_poll or hf_drv_recv. No network is involved.
 *
 * Thread affinity: a driver is used by one thread at a time; the host's
 * workers deliver into it concurrently (that part is internally locked).
 */
#ifndef HF_CLIENT_DRIVER_H
#define HF_CLIENT_DRIVER_H

#include "core/env.h"
#include "core/host.h"

typedef struct hf_drv hf_drv;

int hf_drv_open(hf_host *h, hf_drv **out);

/* Drops the driver. The memory goes when the host lets go of its last
 * reference (outstanding replies, subscriptions). NULL is fine. */
void hf_drv_close(hf_drv *d);

/* Queues a request; args is the msgpack of "a" (NULL/0: none). */
int hf_drv_add(hf_drv *d, const hf_env *e, const void *args, size_t alen);

/* Submits everything queued as one batch. */
int hf_drv_flush(hf_drv *d);

/* Waits up to timeout_ms for output, then calls fn for every output
 * envelope received so far (e->val is valid during the call). Returns the
 * number of envelopes, 0 on timeout. */
int hf_drv_poll(hf_drv *d, int timeout_ms,
                void (*fn)(void *arg, const hf_env *e), void *arg);

/* One received output, decoded, with its value rendered as JSON. */
typedef struct hf_drv_msg {
    struct hf_drv_msg *next;
    hf_env e;       /* slices point into this message */
    char *json;     /* e.val as JSON ("null" when absent) */
    char *code;     /* REPLY error code, NUL-terminated, or NULL */
    char *from;     /* EVENT/SIGNAL/PRESENCE "from", or NULL */
    char *type;     /* EVENT/SIGNAL "type", or NULL */
    msgpack_zone zone;
    size_t len;
    char data[];
} hf_drv_msg;

/* The next output, oldest first, waiting up to timeout_ms. Returns 0 and
 * *out (free with hf_drv_msg_free), or HF_ETIMEOUT. */
int hf_drv_recv(hf_drv *d, int timeout_ms, hf_drv_msg **out);
void hf_drv_msg_free(hf_drv_msg *m);

/* Calls synchronously with JSON args (NULL: none). Other outputs that
 * arrive meanwhile stay queued for hf_drv_recv. Returns 0 and the reply
 * (free with hf_drv_msg_free; check m->e.ok), or HF_ETIMEOUT after
 * timeout_ms, or HF_EBADREQ for bad JSON. */
int hf_drv_call(hf_drv *d, const char *to, const char *method,
                const char *args_json, const char *key, const char *sub,
                unsigned role, int timeout_ms, hf_drv_msg **reply);

/* The same with msgpack args (NULL/0: none). */
int hf_drv_call_mp(hf_drv *d, const char *to, const char *method,
                   const void *args, size_t alen, const char *key,
                   const char *sub, unsigned role, int timeout_ms,
                   hf_drv_msg **reply);

/* Subscribes / unsubscribes synchronously (connection id conn). since < 0:
 * no recovery point. */
int hf_drv_sub(hf_drv *d, uint64_t conn, const char *to, int64_t since,
               const char *epoch, const char *presence_json,
               const char *sub, int timeout_ms, hf_drv_msg **reply);
int hf_drv_unsub(hf_drv *d, uint64_t conn, const char *to, int timeout_ms,
                 hf_drv_msg **reply);

/* Reads the event history after `after`, at most limit events (0: the
 * host's default), synchronously. */
int hf_drv_history(hf_drv *d, const char *to, uint64_t after,
                   unsigned limit, int timeout_ms, hf_drv_msg **reply);

#endif
