/*
 * wire.h - the client wire protocol v1 (DESIGN §5): decoding client frames
 * and encoding server messages, in JSON or msgpack.
 *
 * One WebSocket frame may carry several messages: JSON messages separated
 * by '\n' in a text frame, msgpack maps concatenated in a binary frame.
 * Inside the server every value (args, data, presence, ids) is msgpack; a
 * JSON frame is converted on the way in and out.
 *
 * Robustness: decoding never trusts a length or count in the input. A
 * msgpack array or map header is accepted only when the bytes that remain
 * could hold that many elements (hf_wire_mp_check), so a 5-byte header
 * cannot make the server allocate gigabytes. Bad input becomes a per-message
 * error, never a crash.
 *
 * Pure functions, any thread; an hf_wire_frame is used by one thread.
 */
#ifndef HF_TRANSPORT_WIRE_H
#define HF_TRANSPORT_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum hf_wire_fmt { HF_WIRE_JSON = 0, HF_WIRE_MSGPACK = 1 };

enum hf_wire_op {
    HF_W_CALL = 1,
    HF_W_SUB,
    HF_W_UNSUB,
    HF_W_SIGNAL,
    HF_W_PING,
    HF_W_AUTH,
};

/* One client message. Slices point into the frame's storage and stay
 * valid until hf_wire_frame_free. Values are msgpack bytes (an empty
 * slice: absent). */
typedef struct hf_wire_msg {
    int op;              /* HF_W_*, or 0 when err != 0 and op unknown */
    int err;             /* 0, or HF_E* code: this message is unusable */
    const char *errmsg;  /* when err: a static string naming the problem */
    hf_slice id;         /* msgpack of the client's "id" (a scalar) */
    hf_slice to;         /* "to": address text (not yet validated) */
    hf_slice method;     /* "method" (call) */
    hf_slice type;       /* "type" (signal) */
    hf_slice args;       /* msgpack: call "args", signal "data", sub
                            "presence" */
    hf_slice key;        /* "key" (call idempotency key) */
    hf_slice token;      /* "token" (auth) */
    hf_slice epoch;      /* "epoch" (sub) */
    int64_t since;       /* "since" (sub), valid when has_since */
    int has_since;
} hf_wire_msg;

typedef struct hf_wire_frame {
    hf_wire_msg *msgs;
    size_t n;
    hf_buf store; /* private: backing bytes for the slices */
    size_t cap;   /* private */
} hf_wire_frame;

/*
 * Decodes a frame of len bytes in fmt. At most max_msgs messages are
 * decoded; the rest of the frame is then one more message with err
 * HF_ETOOLARGE. Every message is decoded independently: one bad message
 * (invalid JSON or msgpack, wrong field type, missing field, unknown op)
 * yields an entry with err set and, when it could be read, its id, and the
 * others are still usable. Required fields: call: to, method; sub, unsub:
 * to; signal: to, type; auth: token; ping: none. Types: id a string or
 * integer (or absent); to, method, type, key, token, epoch strings; since a
 * non-negative integer; args/data/presence any value.
 * Returns 0, or HF_EINTERNAL on memory failure. f is reset first.
 */
int hf_wire_decode(hf_wire_frame *f, int fmt, const void *data, size_t len,
                   size_t max_msgs);
void hf_wire_frame_free(hf_wire_frame *f);

/*
 * Checks that data holds at least one complete, well-formed msgpack
 * object, nested at most max_depth deep, whose every array/map count could
 * fit in the bytes that remain. Returns the object's length in bytes, or
 * 0 when it is malformed, truncated or too deep.
 */
size_t hf_wire_mp_check(const void *data, size_t len, int max_depth);

/*
 * Encoders: each appends exactly one message to out, in fmt, preceded by
 * '\n' when fmt is JSON and out is not empty (so a buffer holds one frame's
 * worth of messages). id is the msgpack the client sent (empty: null).
 * Values given as msgpack_object may be NULL (encoded as null).
 */
void hf_wire_hello(hf_buf *out, int fmt, const char *server, uint64_t conn,
                   int heartbeat_s);
void hf_wire_reply_ok(hf_buf *out, int fmt, hf_slice id,
                      const msgpack_object *result);
void hf_wire_reply_err(hf_buf *out, int fmt, hf_slice id, int err,
                       const char *msg, size_t msglen);
void hf_wire_event(hf_buf *out, int fmt, hf_slice from, uint64_t seq,
                   hf_slice type, const msgpack_object *data, int64_t at);
void hf_wire_signal(hf_buf *out, int fmt, hf_slice from, hf_slice type,
                    hf_slice by, const msgpack_object *data);
void hf_wire_presence(hf_buf *out, int fmt, hf_slice from, hf_slice action,
                      const msgpack_object *who);
void hf_wire_pong(hf_buf *out, int fmt, hf_slice id);

/* HTTP bodies (always JSON, no leading '\n'):
 *   {"ok":true,"result":...}  /  {"ok":false,"error":{"code","message"}} */
void hf_wire_http_ok(hf_buf *out, const msgpack_object *result);
void hf_wire_http_err(hf_buf *out, int err, const char *msg, size_t msglen);

/* Appends a msgpack object as compact JSON (strings escaped per RFC 8259;
 * binary and ext values become null; non-string map keys are written as
 * strings of their JSON text, except that a map or array key nested in 4
 * others becomes the string "null": each level escapes the one inside
 * again, which would double its size per level). */
void hf_wire_json(hf_buf *out, const msgpack_object *o);

#endif
