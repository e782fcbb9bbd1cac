/* outq.c - see outq.h. */
#include <stdlib.h>
#include <string.h>

#include "transport/outq.h"

/* Below this, a written head is not worth a memmove. */
#define COMPACT_MIN 16384
/* A buffer that empties keeps at most this much allocated. */
#define KEEP_MAX 262144

hf_buf *
hf_outq_tail(hf_outq *q)
{
    if (q->q_pos == q->q_buf.len)
        q->q_pos = q->q_buf.len = 0;
    return &q->q_buf;
}

void
hf_outq_consumed(hf_outq *q, size_t n)
{
    size_t left;

    q->q_pos += n;
    left = q->q_buf.len - q->q_pos;
    if (left == 0) {
        if (q->q_buf.cap > KEEP_MAX)
            hf_buf_free(&q->q_buf);
        q->q_buf.len = q->q_pos = 0;
    } else if (q->q_pos >= COMPACT_MIN && q->q_pos >= left) {
        memmove(q->q_buf.data, q->q_buf.data + q->q_pos, left);
        q->q_buf.len = left;
        q->q_pos = 0;
    }
}

void
hf_outq_clear(hf_outq *q)
{
    if (q->q_buf.cap > KEEP_MAX)
        hf_buf_free(&q->q_buf);
    q->q_buf.len = q->q_pos = 0;
}

void
hf_outq_free(hf_outq *q)
{
    hf_buf_free(&q->q_buf);
    q->q_pos = 0;
}
