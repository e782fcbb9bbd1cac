/*
 * env.h - envelopes: the messages between gateways and the actor host.
 *
 * An envelope is a msgpack map with short string keys. Requests go to the
 * host, outputs come back; both travel in batches (concatenated maps).
 *
 *   key    request ops                 output ops
 *   op     CALL SUB UNSUB SIGNAL HISTORY  REPLY EVENT SIGNAL PRESENCE
 *   id     client's id (echoed)         id (REPLY)
 *   c      connection id in the sink    c (REPLY; EVENT when unicast)
 *   to     "kind/name"                  from
 *   m      method (CALL), type (SIGNAL) type (EVENT, SIGNAL)
 *   a      args / signal data / presence  res (REPLY ok), data, who
 *   k      idempotency key (CALL)       ok, code, msg (REPLY)
 *   s, r   caller subject and role bits seq, at (EVENT), by (SIGNAL)
 *   nm, pic  the token's name and picture
 *          claims, when it has them (CALL)
 *   since, ep  SUB recovery point;      action "join"|"leave" (PRESENCE)
 *          HISTORY: events after since,
 *          "a" = max count (integer)
 *
 * Pure functions, any thread.
 */
#ifndef HF_CORE_ENV_H
#define HF_CORE_ENV_H

#include <msgpack.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mp.h"

enum hf_op {
    HF_OP_CALL       = 1,
    HF_OP_SUB        = 2,
    HF_OP_UNSUB      = 3,
    HF_OP_SIGNAL     = 4,
    HF_OP_HISTORY    = 5, /* events after "since", at most "a"... see host.h */
    HF_OUT_REPLY     = 16,
    HF_OUT_EVENT     = 17,
    HF_OUT_SIGNAL    = 18,
    HF_OUT_PRESENCE  = 19,
};

typedef struct hf_env {
    int op;
    uint64_t id;
    uint64_t conn;
    int has_conn;
    hf_slice to;      /* "to" (requests) or "from" (outputs) */
    hf_slice method;  /* "m" (CALL) or "type" */
    hf_slice key;     /* "k" */
    hf_slice sub;     /* "s" (requests) or "by" (SIGNAL output) */
    hf_slice name;    /* "nm": the caller's name claim (requests) */
    hf_slice picture; /* "pic": the caller's picture claim (requests) */
    unsigned role;    /* "r" */
    int64_t since;    /* "since", valid when has_since */
    int has_since;
    hf_slice epoch;   /* "ep" */
    int ok;           /* REPLY */
    hf_slice code;    /* REPLY error code name */
    hf_slice msg;     /* REPLY error message */
    hf_slice action;  /* PRESENCE */
    uint64_t seq;     /* EVENT */
    const msgpack_object *val; /* "a", "res", "data" or "who"; NULL if absent */
    hf_slice val_raw; /* the same value as msgpack bytes; set by hf_env_read
                         only (empty when absent) */
} hf_env;

/* Decodes a map into *e (zeroed first). Slices point into obj's storage.
 * Returns 0 or HF_EBADREQ (not a map, wrong field type, no or unknown op). */
int hf_env_decode(const msgpack_object *obj, hf_env *e);

/* Reads the next object of a batch at *off as an envelope, with the outcome
 * of hf_unpack_next followed by hf_env_decode, but without unpacking the
 * envelope into objects. Returns HF_EBADREQ when the bytes at *off are not
 * one complete msgpack object (malformed or truncated; *off is then
 * unchanged). Otherwise returns 0 with *off past the object and *status 0
 * for a valid envelope, or HF_EBADREQ for an object that is not one (not a
 * map, a field of the wrong type, no op); e then holds the fields read
 * before the fault, as hf_env_decode leaves them. Slices point into buf.
 * The value ("a", "res", "data" or "who") is always in e->val_raw; e->val
 * is set only when zone is non-NULL (the value is unpacked there, and
 * HF_EBADREQ is returned if that runs out of memory). Any thread. */
int hf_env_read(const void *buf, size_t len, size_t *off, msgpack_zone *zone,
                hf_env *e, int *status);

/* A request envelope as hf_env_read found it, its slices kept as offsets
 * from the envelope's first byte: stored next to a copy of the bytes, it
 * turns back into the hf_env without reading them again (the host keeps
 * one in each queued request). Plain data: copy it with memcpy. */
typedef struct hf_env_pos {
    int op, has_conn, has_since;
    unsigned role;
    uint64_t id, conn;
    int64_t since;
    uint32_t off[8], len[8]; /* to, method, key, sub, epoch, val_raw, name,
                                picture */
} hf_env_pos;

/* Records e's request fields; base is the envelope's first byte. */
void hf_env_pos_save(hf_env_pos *pos, const hf_env *e, const void *base);

/* Rebuilds the request fields of the envelope whose bytes start at base
 * (the other fields are zero). With zone non-NULL the value is unpacked
 * there into e->val. Returns 0, or HF_EBADREQ when that runs out of
 * memory. */
int hf_env_pos_load(const hf_env_pos *pos, const void *base,
                    msgpack_zone *zone, hf_env *e);

/* Packs a request envelope from e's request fields; val_raw, when
 * non-empty, is the msgpack of "a" (e->val is ignored). */
int hf_env_pack_request(msgpack_packer *pk, const hf_env *e,
                        hf_slice val_raw);

/* Output envelopes. raw values are msgpack bytes (empty slice: nil). */
void hf_env_pack_reply_ok(msgpack_packer *pk, uint64_t conn, uint64_t id,
                          hf_slice res_raw);
void hf_env_pack_reply_err(msgpack_packer *pk, uint64_t conn, uint64_t id,
                           int err, const char *msg, size_t msglen);
void hf_env_pack_signal(msgpack_packer *pk, hf_slice from, hf_slice type,
                        hf_slice by, hf_slice data_raw);
void hf_env_pack_presence(msgpack_packer *pk, hf_slice from, int join,
                          hf_slice who_raw);

/*
 * Events. An event is stored (in the actor's log) as its value,
 * map{type, data, at}, and sent as an EVENT envelope whose last three
 * fields are that value's: {op, [c,] from, seq, type, data, at}.
 *
 * hf_env_pack_event_value packs the stored value; data_raw is the msgpack
 * of "data" (empty: nil), at is the event's time in Unix milliseconds.
 *
 * hf_env_event_value_ok tells whether stored bytes are such a value (they
 * start with the header of a map of three), which hf_env_pack_event
 * needs.
 *
 * hf_env_pack_event packs the envelope around a stored value, with "c"
 * when has_conn (sent to that connection only: a subscriber's backlog).
 * value must not point into the packer's own buffer (it may move).
 *
 * Both return 0, HF_EINTERNAL (out of memory: nothing is packed), or, for
 * hf_env_pack_event, HF_EBADREQ when value is not a stored event value.
 */
int hf_env_pack_event_value(msgpack_packer *pk, hf_slice type,
                            hf_slice data_raw, int64_t at);
int hf_env_event_value_ok(hf_slice value);
int hf_env_pack_event(msgpack_packer *pk, int has_conn, uint64_t conn,
                      hf_slice from, uint64_t seq, hf_slice value);

#endif
