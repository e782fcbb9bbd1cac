/*
 * test_datadir.c - one data directory, one server: the real holdfast
 * binary started twice on the same --data, as an operator (or a restart
 * script racing a slow stop) would.
 *
 * Two servers on one directory both served and each cached actor state
 * the other overwrote: 1,000 acknowledged increments alternating between
 * them ended at 501. The second must refuse to start, say why and who
 * holds the directory, and leave the first one serving.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "tests/wsh.h"

/* counter/d's value after an HTTP incr or get, asserting a 200. */
static long long
counter(struct srv *s, const char *method)
{
    hf_buf body = {0};
    char path[64];
    json_t *j;
    long long v;

    snprintf(path, sizeof(path), "/v1/call/counter/d/%s", method);
    assert_int_equal(http(s, "POST", path, NULL, NULL, &body), 200);
    j = json_loads(body.data, 0, NULL);
    assert_non_null(j);
    v = json_integer_value(json_object_get(json_object_get(j, "result"),
                                           "value"));
    json_decref(j);
    hf_buf_free(&body);
    return v;
}

/* The whole of a file, NUL-terminated (caller frees). */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
test_second_server_on_a_data_directory_refuses_to_start(void **state)
{
    struct srv a;
    char log2[600], pid[32], *out;
    int st;
    (void)state;

    srv_start(&a, NULL);
    assert_int_equal(counter(&a, "incr"), 1);

    /* Its log goes beside the directory's own server.log, which belongs
     * to the first server. */
    snprintf(log2, sizeof(log2), "%s/second.log", a.dir);
    st = srv_start_refused(a.dir, log2, NULL);
    out = slurp(log2);
    if (st <= 0)
        fail_msg("the second server %s; its log:\n%s",
                 st < 0 ? "started and served" : "exited 0", out);
    /* The message names the directory and the process holding it. */
    snprintf(pid, sizeof(pid), "pid %d", (int)a.pid);
    if (strstr(out, a.dir) == NULL || strstr(out, "in use") == NULL ||
        strstr(out, pid) == NULL)
        fail_msg("the refusal should name %s and %s; the log:\n%s", a.dir,
                 pid, out);
    free(out);

    /* The first server never noticed. */
    assert_int_equal(counter(&a, "incr"), 2);
    assert_int_equal(counter(&a, "get"), 2);

    /* Once it has stopped, the directory is free again, data and all. */
    assert_int_equal(srv_stop(&a), 0);
    srv_start_in(&a, a.dir, NULL);
    assert_int_equal(counter(&a, "get"), 2);
    srv_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_second_server_on_a_data_directory_refuses_to_start),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
