/*
 * test_channel.c - the channel kind (actors/channel.c): publish as an
 * event in the channel's log, and who may publish, through a real engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/log.h"
#include "tests/harness.h"

#define CH "channel/orders"

static void
test_publish_logs_an_event_and_answers_its_seq(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;

    th_sub(e, 1, CH, -1);
    th_ok_has(e, "api", HF_ROLE_SERVICE, CH, "publish",
              "{\"type\":\"order.paid\",\"data\":{\"id\":7}}", "{\"seq\":1}");
    th_expect_event(e, CH, "order.paid", "{\"id\":7}");
    th_ok_has(e, "api", HF_ROLE_SERVICE, CH, "publish",
              "{\"type\":\"order.shipped\"}", "{\"seq\":2}");
    th_expect_event(e, CH, "order.shipped", NULL);
    th_free(e);
}

static void
test_subscriber_with_since_gets_the_missed_publishes(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;

    for (int i = 0; i < 3; i++)
        th_ok_has(e, "api", HF_ROLE_SERVICE, CH, "publish",
                  "{\"type\":\"tick\",\"data\":1}", NULL);
    th_restart(e); /* durable, and the seq goes on after a restart */
    th_sub(e, 2, CH, 1);
    for (uint64_t want = 2; want <= 3; want++) {
        hf_drv_msg *m = th_event(e, CH);
        assert_non_null(m);
        assert_int_equal(m->e.seq, want);
        hf_drv_msg_free(m);
    }
    th_ok_has(e, "api", HF_ROLE_SERVICE, CH, "publish", "{\"type\":\"tick\"}",
              "{\"seq\":4}");
    th_free(e);
}

static void
test_who_may_publish(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;

    th_ok_has(e, "ops", HF_ROLE_ADMIN, CH, "publish", "{\"type\":\"a\"}",
              "{\"seq\":1}");
    th_err(e, "kim", HF_ROLE_USER, CH, "publish", "{\"type\":\"a\"}",
           "forbidden");
    th_err(e, "dev", HF_ROLE_DEVICE, CH, "publish", "{\"type\":\"a\"}",
           "forbidden");
    /* a token whose acl names the channel (the gateway's mark) */
    th_ok_has(e, "kim", HF_ROLE_USER | HF_ROLE_GRANTED, CH, "publish",
              "{\"type\":\"a\"}", "{\"seq\":2}");
    th_free(e);
}

static void
test_publish_checks_its_type(void **state)
{
    struct th_eng *e = th_new(NULL);
    char args[200];
    (void)state;

    th_err(e, "api", HF_ROLE_SERVICE, CH, "publish", "{\"data\":1}",
           "bad_request");
    th_err(e, "api", HF_ROLE_SERVICE, CH, "publish", "{\"type\":\"\"}",
           "bad_request");
    th_err(e, "api", HF_ROLE_SERVICE, CH, "publish", "{\"type\":7}",
           "bad_request");
    th_err(e, "api", HF_ROLE_SERVICE, CH, "publish", "{\"type\":\"a\\nb\"}",
           "bad_request");
    snprintf(args, sizeof(args), "{\"type\":\"%065d\"}", 0);
    th_err(e, "api", HF_ROLE_SERVICE, CH, "publish", args, "bad_request");
    snprintf(args, sizeof(args), "{\"type\":\"%064d\"}", 0);
    th_ok_has(e, "api", HF_ROLE_SERVICE, CH, "publish", args, "{\"seq\":1}");
    th_free(e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_logs_an_event_and_answers_its_seq),
        cmocka_unit_test(test_subscriber_with_since_gets_the_missed_publishes),
        cmocka_unit_test(test_who_may_publish),
        cmocka_unit_test(test_publish_checks_its_type),
    };
    hf_log_set_level(HF_LOG_ERROR);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
