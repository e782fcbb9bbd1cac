/*
 * outq.h - the bytes queued for one client connection.
 *
 * Messages are appended at the tail as they are produced and written from
 * the head as the socket takes them. What matters is the memory: a reader
 * that stays behind without ever catching up must not make the queue grow
 * by everything ever sent to it (the buffer used to be reset only when it
 * emptied completely). So the written head is dropped as soon as it is at
 * least as large as what is still unsent (a memmove of at most the unsent
 * part, amortised over as many written bytes), and a buffer that empties
 * after a burst gives its memory back. With at most P bytes unsent, the
 * buffer therefore never holds more than about 2P, and its allocation
 * about 4P; the gateway bounds P with --outbuf-max.
 *
 * Threads: none of its own; a queue belongs to its connection's gateway
 * thread.
 */
#ifndef HF_TRANSPORT_OUTQ_H
#define HF_TRANSPORT_OUTQ_H

#include <stddef.h>

#include "core/buf.h"

typedef struct hf_outq {
    hf_buf q_buf; /* [q_pos, q_buf.len) is unsent */
    size_t q_pos;
} hf_outq;

/* Bytes queued and not yet written. */
static inline size_t
hf_outq_pending(const hf_outq *q)
{
    return q->q_buf.len - q->q_pos;
}

/* The first unsent byte (valid until the next call that changes q). */
static inline const char *
hf_outq_head(const hf_outq *q)
{
    return q->q_buf.data + q->q_pos;
}

/* The buffer to append to with the wire encoders (which take an hf_buf);
 * valid until the next call that changes q. */
hf_buf *hf_outq_tail(hf_outq *q);

/* n bytes from the head were written. */
void hf_outq_consumed(hf_outq *q, size_t n);

/* Drops everything queued (a connection being cut off). */
void hf_outq_clear(hf_outq *q);

/* Bytes allocated: what the queue costs, for metrics and tests. */
static inline size_t
hf_outq_allocated(const hf_outq *q)
{
    return q->q_buf.cap;
}

void hf_outq_free(hf_outq *q);

#endif
