/*
 * buf.h - a growable byte buffer, borrowed slices, big-endian integer
 * helpers, and a clock.
 *
 * An hf_buf owns its bytes (data is malloc'd, or NULL when empty). Not
 * thread-safe: one owner at a time; hand it off by moving the struct and
 * zeroing the source (hf_buf_take).
 */
#ifndef HF_CORE_BUF_H
#define HF_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct hf_buf {
    char *data;
    size_t len;
    size_t cap;
} hf_buf;

/* A borrowed run of bytes. Who owns it, and for how long, is said by
 * whatever returned it. */
typedef struct hf_slice {
    const void *data;
    size_t len;
} hf_slice;

/* Makes room for n more bytes. Returns 0 or HF_EINTERNAL (out of memory);
 * on failure the buffer is unchanged. */
int hf_buf_reserve(hf_buf *b, size_t n);
int hf_buf_append(hf_buf *b, const void *p, size_t n);
void hf_buf_free(hf_buf *b);

/* Moves the contents out, leaving b empty. */
static inline hf_buf
hf_buf_take(hf_buf *b)
{
    hf_buf r = *b;
    b->data = NULL;
    b->len = b->cap = 0;
    return r;
}

/* Slice equality with a C string. */
int hf_slice_is(hf_slice s, const char *str);

static inline void
hf_put_be64(void *p, uint64_t v)
{
    unsigned char *c = p;
    for (int i = 7; i >= 0; i--, v >>= 8)
        c[i] = (unsigned char)(v & 0xff);
}

static inline uint64_t
hf_get_be64(const void *p)
{
    const unsigned char *c = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | c[i];
    return v;
}

static inline void
hf_put_be32(void *p, uint32_t v)
{
    unsigned char *c = p;
    c[0] = (unsigned char)(v >> 24);
    c[1] = (unsigned char)(v >> 16);
    c[2] = (unsigned char)(v >> 8);
    c[3] = (unsigned char)v;
}

static inline uint32_t
hf_get_be32(const void *p)
{
    const unsigned char *c = p;
    return ((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) |
           ((uint32_t)c[2] << 8) | c[3];
}

/* Wall-clock milliseconds since the Unix epoch (what handlers see as "now"
 * and what alarms are scheduled in), or the fixed time of hf_clock_set. */
int64_t hf_now_ms(void);

/* A test clock for this process (`holdfast test`): hf_now_ms returns ms
 * from now on (0: the real clock again). Any thread; tell a running host
 * with hf_host_clock_changed so its timer looks again. */
void hf_clock_set(int64_t ms);

/* Monotonic nanoseconds, for measuring durations. */
uint64_t hf_mono_ns(void);

#endif
