/*
 * actor.h - what an actor kind sees: the kind table and the handler context.
 *
 * A kind is a const table of methods plus optional hooks (alarm, join,
 * leave). Kinds hold no state of their own: everything lives in the
 * actor's keys, read and written through the context, so the engine can
 * evict, reload and reset an actor at will.
 *
 * A handler runs on the worker that owns the actor, one message at a time
 * per actor. Everything it does through the context — writes, events,
 * signals, sends, alarms and its reply — is ONE atomic unit: if it returns
 * an error, all of it is discarded; if it returns 0, all of it goes to the
 * next group commit and its outputs are released only once that commit is
 * durable (the output gate). Meanwhile the actor goes on with its next
 * message and sees its own earlier writes (read-your-writes).
 *
 * Thread affinity: an hf_ctx is valid only inside the handler call it was
 * passed to, on that worker thread. Do not keep it, or anything it returned.
 *
 * Staging: values (reply results, event data, send arguments, signal data)
 * are packed with msgpack onto the context's staging area via hf_pk(); the
 * next call that takes a value (hf_reply, hf_emit, hf_signal, hf_send)
 * consumes exactly one staged object, or nil when nothing was staged.
 */
#ifndef HF_CORE_ACTOR_H
#define HF_CORE_ACTOR_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/storage.h"

typedef struct hf_ctx hf_ctx;

/* Caller roles (DESIGN §6), a bit mask. HF_ROLE_ACTOR is another actor
 * calling through hf_send. An admin passes every role check.
 * HF_ROLE_PUBLIC is a caller without a token that the gateway admitted to
 * an address matching --public: it has no other role and no subject, and
 * may call only the methods marked pub (and the "info" built-in); anything
 * else is refused with HF_EUNAUTH. No token can carry it. */
enum hf_role {
    HF_ROLE_USER    = 1 << 0,
    HF_ROLE_ADMIN   = 1 << 1,
    HF_ROLE_DEVICE  = 1 << 2,
    HF_ROLE_SERVICE = 1 << 3,
    HF_ROLE_ACTOR   = 1 << 4,
    /* Not a role a token names: the gateway adds it when the caller's
     * token carries an acl claim and one of its patterns matched the
     * address called (so the token was minted to reach it). A method
     * listing it lets such callers in whatever their role. */
    HF_ROLE_GRANTED = 1 << 5,
    HF_ROLE_PUBLIC  = 1 << 6,
};
#define HF_ROLE_ANY 0 /* in a method table: no role required */

/* A method: returns 0 (reply = the staged object given to hf_reply, or
 * nil) or a negative HF_E* code (use hf_fail to add a message). */
typedef int (*hf_method_fn)(hf_ctx *c, const msgpack_object *args);

struct hf_method {
    const char *name;
    hf_method_fn fn;
    unsigned roles; /* HF_ROLE_* bits allowed; HF_ROLE_ANY = anyone */
    int pub;        /* 1: a read that HF_ROLE_PUBLIC callers may make too */
};

struct hf_kind {
    const char *name; /* the "kind" of kind/name */
    const struct hf_method *methods;
    size_t nmethods;
    /* Optional. An alarm set with hf_alarm_set is due. Returning an error
     * discards the unit and retries the alarm later with backoff. */
    int (*alarm)(hf_ctx *c, const char *name);
    /* Optional. A subscriber joined (presence = its presence object or
     * nil) or left. Same atomic-unit rules as a method; the result is
     * ignored, an error discards the unit but not the (un)subscription. */
    int (*join)(hf_ctx *c, const msgpack_object *presence);
    int (*leave)(hf_ctx *c);
    /* Optional, for kinds whose methods are known only at run time (Lua
     * kinds, lua/): when set, the host asks it for each call instead of
     * searching methods[]. It runs on the actor's worker (index worker,
     * 0..W-1) just before the call; the method it returns must stay valid
     * until that handler returns. NULL: no such method (not_found). */
    const struct hf_method *(*lookup)(const struct hf_kind *k, int worker,
                                      hf_slice method);
    void *udata; /* the kind's own, for its hooks; the host never reads it */
};

/* ---- who, what, when ---- */
const char *hf_self(hf_ctx *c);      /* "kind/name" */
const char *hf_self_name(hf_ctx *c); /* the name part */
const char *hf_caller(hf_ctx *c);    /* subject ("" when anonymous) */
unsigned hf_caller_role(hf_ctx *c);  /* HF_ROLE_* bits, 0 when none */
int64_t hf_now(hf_ctx *c);           /* ms since the epoch, fixed per call */
const struct hf_kind *hf_self_kind(hf_ctx *c); /* this actor's kind */
/* The method being called (as found in methods[] or returned by lookup),
 * or NULL in an alarm, join or leave hook. */
const struct hf_method *hf_method_of(hf_ctx *c);
/* The index (0..W-1) of the worker running the handler: a kind with
 * per-worker data (one Lua state per worker) finds it with this. */
int hf_worker_index(hf_ctx *c);

/* A display claim of the caller's token: "name" or "picture" (DESIGN
 * §5.7), as the gateway passed it; an empty slice when the token had none,
 * for any other claim, and for callers that are actors or came without a
 * token. For display only: authority is hf_caller and hf_caller_role.
 * Valid until the handler returns. */
hf_slice hf_caller_claim(hf_ctx *c, const char *claim);

/* ---- state: the actor's own keys (at most HF_KEY_MAX - 200 bytes) ---- */

/* 0 and *val, or HF_ENOTFOUND. *val stays valid until the handler
 * returns, whatever else it reads or writes meanwhile. */
int hf_get(hf_ctx *c, const void *key, size_t klen, hf_slice *val);
int hf_put(hf_ctx *c, const void *key, size_t klen, const void *val,
           size_t vlen);
int hf_del(hf_ctx *c, const void *key, size_t klen);

/* Visits the actor's keys with lo <= key < hi (hi.len == 0: no bound),
 * including this and earlier handlers' uncommitted writes, in key order
 * (reverse: descending), at most limit keys (0: no limit). fn returns 0 to
 * go on. The slices are valid during the call only. fn may write (the
 * visit goes on over the keys as they were when it began). */
int hf_list(hf_ctx *c, hf_slice lo, hf_slice hi, int reverse, size_t limit,
            hf_scan_fn fn, void *arg);

/* ---- outputs ---- */
msgpack_packer *hf_pk(hf_ctx *c);

/* Sets the reply result to the staged object. */
int hf_reply(hf_ctx *c);

/* Records an error message; returns err so a handler can
 * "return hf_fail(c, HF_ECONFLICT, "slot %s is held", slot);". */
int hf_fail(hf_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The message of the last hf_fail in this call ("" when none): what an
 * hf_* call that failed said. Valid until the next hf_fail. */
const char *hf_errmsg(hf_ctx *c);

/* Appends an event (data = staged object) to the log and publishes it to
 * subscribers after the commit. *seq (may be NULL) gets its sequence. */
int hf_emit(hf_ctx *c, const char *type, uint64_t *seq);

/* Ephemeral broadcast to subscribers (data = staged object); not logged. */
int hf_signal(hf_ctx *c, const char *type);

/* Durable message to another actor (args = staged object): written to the
 * outbox with this unit, delivered after the commit, at least once, and
 * deduplicated at the receiver, which sees role HF_ROLE_ACTOR and caller =
 * this actor's address. The receiver's reply is discarded. */
int hf_send(hf_ctx *c, const char *to, const char *method);

/* Named alarms: at most one per name; setting it again moves it. Fired at
 * least once at or after at_ms, retried with backoff on failure, kept
 * across restarts. */
int hf_alarm_set(hf_ctx *c, const char *name, int64_t at_ms);
int hf_alarm_cancel(hf_ctx *c, const char *name);
/* 0 and *at_ms, or HF_ENOTFOUND. */
int hf_alarm_get(hf_ctx *c, const char *name, int64_t *at_ms);

/* The actor's current event sequence number (last emitted). */
uint64_t hf_seq(hf_ctx *c);

/* ---- argument helpers: a missing or mistyped field fails the call with
 * HF_EBADREQ and a message naming it. ---- */

/* The value for key in a msgpack map, or NULL. */
const msgpack_object *hf_arg(const msgpack_object *args, const char *key);

/* A string field of 1..maxlen bytes. Optional fields: required = 0 and
 * *s = NULL, *len = 0 when absent. */
int hf_arg_str(hf_ctx *c, const msgpack_object *args, const char *key,
               int required, size_t maxlen, const char **s, size_t *len);

/* An integer field in [min, max]; absent optional: *v untouched. */
int hf_arg_int(hf_ctx *c, const msgpack_object *args, const char *key,
               int required, int64_t min, int64_t max, int64_t *v);

#endif
