/* buf.c - see buf.h. Growth doubles, so appends are amortised O(1). */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"

int
hf_buf_reserve(hf_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= n)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    if ((p = realloc(b->data, cap)) == NULL)
        return HF_EINTERNAL;
    b->data = p;
    b->cap = cap;
    return 0;
}

int
hf_buf_append(hf_buf *b, const void *p, size_t n)
{
    int rv;

    if (n == 0)
        return 0;
    if ((rv = hf_buf_reserve(b, n)) != 0)
        return rv;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void
hf_buf_free(hf_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int
hf_slice_is(hf_slice s, const char *str)
{
    const char *d = s.data;
    for (size_t i = 0; i < s.len; i++)
        if (str[i] == '\0' || str[i] != d[i])
            return 0;
    return str[s.len] == '\0';
}

/* The test clock: 0, or the fixed time every hf_now_ms returns. */
static _Atomic int64_t fixed_ms;

void
hf_clock_set(int64_t ms)
{
    atomic_store_explicit(&fixed_ms, ms, memory_order_relaxed);
}

int64_t
hf_now_ms(void)
{
    struct timespec ts;
    int64_t fixed = atomic_load_explicit(&fixed_ms, memory_order_relaxed);

    if (fixed != 0)
        return fixed;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
hf_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
