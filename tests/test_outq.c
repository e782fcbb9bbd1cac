/*
 * test_outq.c - a connection's output queue stays bounded by what is
 * unsent, however the reader keeps pace (the "Hardening" issue, defect 2:
 * a reader that stays behind without stopping grew the server without
 * bound, because the buffer was only reset once completely drained).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "transport/outq.h"

#define MSG 1000

static void
put(hf_outq *q, char fill)
{
    char m[MSG];
    memset(m, fill, sizeof(m));
    assert_int_equal(hf_buf_append(hf_outq_tail(q), m, sizeof(m)), 0);
}

/* The reader takes a little less than is queued each round and never
 * catches up: 100 MB pass through, the unsent part stays under 64 KB, and
 * so must the memory. */
static void
test_reader_that_never_catches_up_keeps_memory_bounded(void **state)
{
    hf_outq q = {0};
    size_t peak = 0;
    (void)state;

    for (int round = 0; round < 100000; round++) {
        size_t take;
        put(&q, (char)('a' + round % 26));
        take = hf_outq_pending(&q) > 60000 ? MSG : MSG - 1;
        hf_outq_consumed(&q, take);
        assert_true(hf_outq_pending(&q) > 0);
        if (hf_outq_allocated(&q) > peak)
            peak = hf_outq_allocated(&q);
    }
    assert_true(hf_outq_pending(&q) <= 61000);
    /* ~4x the unsent part at most (outq.h), here far less than the
     * 100 MB that went through. */
    assert_true(peak <= 4 * 61000 + 65536);
    hf_outq_free(&q);
}

/* What is unsent comes out whole and in order across compactions. */
static void
test_bytes_come_out_in_order_across_compactions(void **state)
{
    hf_outq q = {0};
    size_t got = 0;
    int sent = 0;
    (void)state;

    for (; sent < 50; sent++)
        put(&q, (char)('a' + sent % 26));
    while (got < 2000 * MSG) {
        size_t n;
        if (sent < 2000) {
            put(&q, (char)('a' + sent % 26));
            sent++;
        }
        n = hf_outq_pending(&q) < 777 ? hf_outq_pending(&q) : 777;
        for (size_t k = 0; k < n; k++)
            assert_int_equal(hf_outq_head(&q)[k],
                             'a' + (int)(((got + k) / MSG) % 26));
        got += n;
        hf_outq_consumed(&q, n);
    }
    assert_int_equal(hf_outq_pending(&q), 0);
    hf_outq_free(&q);
}

/* A queue that empties after a burst gives its memory back. */
static void
test_drained_burst_returns_its_memory(void **state)
{
    hf_outq q = {0};
    (void)state;

    for (int i = 0; i < 2000; i++)
        put(&q, 'x');
    assert_true(hf_outq_allocated(&q) >= 2000 * MSG);
    hf_outq_consumed(&q, hf_outq_pending(&q));
    assert_int_equal(hf_outq_pending(&q), 0);
    assert_true(hf_outq_allocated(&q) <= 262144);
    put(&q, 'y');
    hf_outq_clear(&q);
    assert_int_equal(hf_outq_pending(&q), 0);
    hf_outq_free(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_that_never_catches_up_keeps_memory_bounded),
        cmocka_unit_test(test_bytes_come_out_in_order_across_compactions),
        cmocka_unit_test(test_drained_burst_returns_its_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
