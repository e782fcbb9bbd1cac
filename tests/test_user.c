/*
 * test_user.c - the user kind (actors/user.c), a notification inbox,
 * through a real engine.
 *
 * Replies and events are checked as the JSON a client would see
 * (compact, fields in the order the kind packs them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/actor.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/mpjson.h"
#include "tests/harness.h"

#define U       "user/kim"
#define USER    HF_ROLE_USER
#define ADMIN   HF_ROLE_ADMIN
#define SERVICE HF_ROLE_SERVICE
#define DEVICE  HF_ROLE_DEVICE
#define ACTOR   HF_ROLE_ACTOR

static void
has(const char *json, const char *frag)
{
    th_has(json, frag);
}

/* A successful call whose result contains frag (NULL: anything). */
static void
ok(struct th_eng *e, const char *sub, unsigned role, const char *method,
   const char *args, const char *frag)
{
    th_ok_has(e, sub, role, U, method, args, frag);
}

/* The next event must be `type` with data containing frag. */
static void
event(struct th_eng *e, const char *type, const char *frag)
{
    th_expect_event(e, U, type, frag);
}

/* n notifications titled "n1".."nN" from a service. */
static void
notify_n(struct th_eng *e, int n)
{
    for (int i = 1; i <= n; i++) {
        char args[160];
        snprintf(args, sizeof(args),
                 "{\"title\":\"n%d\",\"message\":\"body\",\"priority\":"
                 "\"low\"}",
                 i);
        ok(e, "svc", SERVICE, "notify", args, NULL);
    }
}

/* The ids a list call returns, as "5,4", and its more flag. */
static void
listed(struct th_eng *e, const char *args, const char *ids, int more)
{
    hf_drv_msg *m = th_call(e, "kim", USER, U, "list", args);
    char what[256];
    snprintf(what, sizeof(what), "list %s", args ? args : "");
    th_expect_ids(m, what, "items", ids, more);
    hf_drv_msg_free(m);
}

static int64_t
unread_of(struct th_eng *e)
{
    hf_drv_msg *m = th_call(e, "kim", USER, U, "unread", NULL);
    int64_t n;
    if (!m->e.ok)
        fail_msg("unread: %s", m->code);
    n = th_int(m, "count");
    hf_drv_msg_free(m);
    return n;
}

/* ---- notify ---- */

static void
test_notify_stores_the_item_and_emits_notification(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    th_sub(e, 1, U, -1);
    ok(e, "billing", SERVICE, "notify",
       "{\"title\":\"Paid\",\"message\":\"Thanks!\",\"priority\":\"medium\","
       "\"type\":\"receipt\"}",
       "{\"id\":1,\"unread\":1}");
    event(e, "notification",
          "{\"id\":1,\"title\":\"Paid\",\"message\":\"Thanks!\","
          "\"priority\":\"medium\",\"type\":\"receipt\",\"link\":null,"
          "\"at\":");
    json = th_ok(e, "kim", USER, U, "list", NULL);
    has(json, "{\"items\":[{\"id\":1,\"title\":\"Paid\",\"message\":"
              "\"Thanks!\",\"priority\":\"medium\",\"type\":\"receipt\","
              "\"link\":null,\"at\":");
    has(json, "\"read\":false,\"from\":\"billing\"}]");
    free(json);
    /* type is optional. */
    ok(e, "boss", ADMIN, "notify",
       "{\"title\":\"Hi\",\"message\":\"x\",\"priority\":\"low\"}",
       "{\"id\":2,\"unread\":2}");
    event(e, "notification", "\"priority\":\"low\",\"type\":null,");
    th_free(e);
}

static void
test_notify_validates_priority_and_fields(void **state)
{
    struct th_eng *e = th_new(NULL);
    char big[300], args[400], extras[1024];
    hf_drv_msg *m;
    size_t n;
    static const char *bad[] = {
        NULL,
        "{\"message\":\"m\",\"priority\":\"high\"}",
        "{\"title\":\"t\",\"priority\":\"high\"}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"urgent\"}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"HIGH\"}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":1}",
        "{\"title\":\"\",\"message\":\"m\",\"priority\":\"high\"}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"high\","
        "\"type\":\"\"}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"high\","
        "\"id\":5}",
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"high\","
        "\"read\":true}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        th_err(e, "svc", SERVICE, U, "notify", bad[i], "bad_request");
    /* The error names the field and the choices. */
    m = th_call(e, "svc", SERVICE, U, "notify",
                "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"urgent\"}");
    assert_false(m->e.ok);
    assert_non_null(memmem(m->e.msg.data, m->e.msg.len,
                           "'priority' must be one of high, medium, low", 43));
    hf_drv_msg_free(m);
    memset(big, 't', 201);
    big[201] = '\0';
    snprintf(args, sizeof(args),
             "{\"title\":\"%s\",\"message\":\"m\",\"priority\":\"high\"}", big);
    th_err(e, "svc", SERVICE, U, "notify", args, "bad_request");
    /* At most 16 extra fields. */
    n = (size_t)snprintf(extras, sizeof(extras),
                         "{\"title\":\"t\",\"message\":\"m\",\"priority\":"
                         "\"high\"");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(extras + n, sizeof(extras) - n, ",\"x%d\":%d", i,
                              i);
    snprintf(extras + n, sizeof(extras) - n, "}");
    th_err(e, "svc", SERVICE, U, "notify", extras, "bad_request");
    assert_int_equal(unread_of(e), 0);
    for (const char *p = "high\0medium\0low\0"; *p; p += strlen(p) + 1) {
        snprintf(args, sizeof(args),
                 "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"%s\"}", p);
        ok(e, "svc", SERVICE, "notify", args, NULL);
    }
    assert_int_equal(unread_of(e), 3);
    th_free(e);
}

static void
test_notify_is_forbidden_for_a_plain_user(void **state)
{
    struct th_eng *e = th_new(NULL);
    const char *args =
        "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"high\"}";
    (void)state;
    th_err(e, "lee", USER, U, "notify", args, "forbidden");
    th_err(e, "kim", USER, U, "notify", args, "forbidden"); /* even its own */
    th_err(e, "ps5-03", DEVICE, U, "notify", args, "forbidden");
    ok(e, "svc", SERVICE, "notify", args, NULL);
    ok(e, "boss", ADMIN, "notify", args, NULL);
    ok(e, "device/ps5-03", ACTOR, "notify", args, NULL);
    assert_int_equal(unread_of(e), 3);
    th_free(e);
}

/* What the device kind sends ten minutes before a confirmed slot: through
 * its outbox, role actor, caller = its address, an "ob:" idempotency key
 * that the engine uses to deliver it once however often it is retried. */
static void
test_device_reminder_through_the_outbox_is_stored_once(void **state)
{
    struct th_eng *e = th_new(NULL);
    const char *args =
        "{\"title\":\"Reservation reminder\",\"message\":\"Your "
        "reservation of ps5-03 starts at 2026-11-21T18:00:00Z.\","
        "\"priority\":\"high\",\"type\":\"reminder\",\"device\":"
        "\"ps5-03\",\"slot\":\"2026-11-21T18:00:00Z\"}";
    hf_drv_msg *m = NULL;
    char *json;
    (void)state;
    th_sub(e, 1, U, -1);
    for (int i = 0; i < 2; i++) { /* a redelivery */
        assert_int_equal(hf_drv_call(e->drv, U, "notify", args,
                                     "ob:device/ps5-03:1", "device/ps5-03",
                                     ACTOR, TH_WAIT, &m),
                         0);
        assert_true(m->e.ok);
        assert_int_equal(th_int(m, "id"), 1);
        hf_drv_msg_free(m);
    }
    event(e, "notification", "\"priority\":\"high\",\"type\":\"reminder\"");
    assert_true(th_quiet(e, 200));
    json = th_ok(e, "kim", USER, U, "list", NULL);
    has(json, "\"read\":false,\"from\":\"device/ps5-03\",\"device\":"
              "\"ps5-03\",\"slot\":\"2026-11-21T18:00:00Z\"}");
    free(json);
    assert_int_equal(unread_of(e), 1);
    th_free(e);
}

/* The whole path with the real device kind: a slot five minutes ahead,
 * approved, is inside the ten-minute window, so the reminder goes out at
 * once through the device's outbox and lands in kim's inbox. */
static void
test_device_reminder_reaches_the_inbox_end_to_end(void **state)
{
    struct th_eng *e = th_new(NULL);
    time_t t = (time_t)(hf_now_ms() / 1000) + 300;
    struct tm tm;
    char slot[32], args[128];
    hf_drv_msg *m;
    int64_t n = 0;
    (void)state;
    gmtime_r(&t, &tm);
    strftime(slot, sizeof(slot), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(args, sizeof(args), "{\"slot\":\"%s\",\"user\":\"kim\"}", slot);
    free(th_ok(e, "kim", USER, "device/ps5-03", "reserve", args));
    snprintf(args, sizeof(args), "{\"slot\":\"%s\"}", slot);
    free(th_ok(e, "boss", ADMIN, "device/ps5-03", "approve", args));
    /* The approval's notice, then the reminder. */
    for (int i = 0; i < 500 && (n = unread_of(e)) < 2; i++)
        usleep(10000);
    assert_int_equal(n, 2);
    m = th_call(e, "kim", USER, U, "list", NULL);
    assert_true(m->e.ok);
    has(m->json, "\"priority\":\"high\",\"type\":\"reminder\",");
    has(m->json, "\"type\":\"reservation_approved\",");
    has(m->json, "\"from\":\"device/ps5-03\",");
    has(m->json, slot);
    hf_drv_msg_free(m);
    th_free(e);
}

/* ---- list ---- */

static void
test_list_is_newest_first_with_limit_and_before(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    listed(e, NULL, "", 0);
    notify_n(e, 5);
    listed(e, NULL, "5,4,3,2,1", 0);
    listed(e, "{\"limit\":2}", "5,4", 1);
    listed(e, "{\"limit\":2,\"before\":4}", "3,2", 1);
    listed(e, "{\"limit\":2,\"before\":2}", "1", 0);
    th_err(e, "kim", USER, U, "list", "{\"limit\":0}", "bad_request");
    th_err(e, "kim", USER, U, "list", "{\"limit\":201}", "bad_request");
    th_err(e, "kim", USER, U, "list", "{\"unread_only\":1}", "bad_request");
    th_err(e, "kim", USER, U, "list", "{\"before\":\"x\"}", "bad_request");
    th_free(e);
}

static void
test_list_unread_only(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    notify_n(e, 5);
    ok(e, "kim", USER, "mark_read", "{\"id\":4}", NULL);
    ok(e, "kim", USER, "mark_read", "{\"id\":2}", NULL);
    listed(e, "{\"unread_only\":true}", "5,3,1", 0);
    listed(e, "{\"unread_only\":true,\"limit\":2}", "5,3", 1);
    listed(e, "{\"unread_only\":false}", "5,4,3,2,1", 0);
    ok(e, "kim", USER, "list", "{\"unread_only\":true}", "\"unread\":3");
    th_free(e);
}

/* ---- mark_read, unread ---- */

static void
test_mark_read_one_emits_notification_read(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    notify_n(e, 3);
    th_sub(e, 1, U, -1);
    ok(e, "kim", USER, "mark_read", "{\"id\":2}",
       "{\"marked\":1,\"unread\":2}");
    event(e, "notification_read", "{\"ids\":[2],\"unread\":2}");
    json = th_ok(e, "kim", USER, U, "list", "{\"before\":3,\"limit\":1}");
    has(json, "\"id\":2,");
    has(json, "\"read\":true,\"read_at\":");
    free(json);
    /* Again: nothing changes, nothing is said. */
    ok(e, "kim", USER, "mark_read", "{\"id\":2}",
       "{\"marked\":0,\"unread\":2}");
    assert_true(th_quiet(e, 200));
    assert_int_equal(unread_of(e), 2);
    th_free(e);
}

static void
test_mark_read_all_emits_notification_read_all(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    notify_n(e, 4);
    ok(e, "kim", USER, "mark_read", "{\"id\":3}", NULL);
    th_sub(e, 1, U, -1);
    ok(e, "kim", USER, "mark_read", "{\"all\":true}",
       "{\"marked\":3,\"unread\":0}");
    event(e, "notification_read", "{\"all\":true,\"unread\":0}");
    assert_int_equal(unread_of(e), 0);
    listed(e, "{\"unread_only\":true}", "", 0);
    ok(e, "kim", USER, "mark_read", "{\"all\":true}",
       "{\"marked\":0,\"unread\":0}");
    assert_true(th_quiet(e, 200));
    /* New items count again. */
    notify_n(e, 1);
    assert_int_equal(unread_of(e), 1);
    th_free(e);
}

static void
test_mark_read_errors(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    notify_n(e, 1);
    th_err(e, "kim", USER, U, "mark_read", NULL, "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{}", "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{\"id\":\"1\"}", "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{\"all\":false}", "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{\"all\":\"yes\"}", "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{\"id\":1,\"all\":true}",
           "bad_request");
    th_err(e, "kim", USER, U, "mark_read", "{\"id\":2}", "not_found");
    assert_int_equal(unread_of(e), 1);
    th_free(e);
}

static void
test_unread_counts_unread_items(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    assert_int_equal(unread_of(e), 0);
    notify_n(e, 3);
    assert_int_equal(unread_of(e), 3);
    ok(e, "kim", USER, "mark_read", "{\"id\":1}", NULL);
    assert_int_equal(unread_of(e), 2);
    th_restart(e);
    assert_int_equal(unread_of(e), 2);
    listed(e, NULL, "3,2,1", 0);
    th_free(e);
}

static void
test_another_user_may_not_read_the_inbox(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    notify_n(e, 1);
    th_err(e, "lee", USER, U, "list", NULL, "forbidden");
    th_err(e, "lee", USER, U, "unread", NULL, "forbidden");
    th_err(e, "lee", USER, U, "mark_read", "{\"id\":1}", "forbidden");
    th_err(e, "", USER, U, "list", NULL, "forbidden");
    th_err(e, "device/ps5-03", ACTOR, U, "list", NULL, "forbidden");
    /* Admins and services may. */
    ok(e, "boss", ADMIN, "list", NULL, "\"id\":1");
    ok(e, "svc", SERVICE, "unread", NULL, "{\"count\":1}");
    ok(e, "svc", SERVICE, "mark_read", "{\"id\":1}", "\"marked\":1");
    th_free(e);
}

/* ---- retention ---- */

static void
test_inbox_keeps_the_newest_1000(void **state)
{
    struct th_eng *e = th_new(NULL);
    const char *json = "{\"title\":\"t\",\"message\":\"m\",\"priority\":"
                       "\"low\"}";
    hf_buf args = {0};
    hf_drv_msg *m;
    int n = 1005, got = 0;
    (void)state;
    assert_int_equal(hf_json_to_mp(json, strlen(json), &args), 0);
    for (int i = 1; i <= n; i++) {
        hf_env env = {.op = HF_OP_CALL,
                      .id = (uint64_t)i,
                      .to = {U, strlen(U)},
                      .method = {"notify", 6},
                      .sub = {"svc", 3},
                      .role = SERVICE};
        assert_int_equal(hf_drv_add(e->drv, &env, args.data, args.len), 0);
    }
    assert_int_equal(hf_drv_flush(e->drv), 0);
    while (got < n && hf_drv_recv(e->drv, TH_WAIT, &m) == 0) {
        if (m->e.op == HF_OUT_REPLY) {
            assert_true(m->e.ok);
            got++;
        }
        hf_drv_msg_free(m);
    }
    assert_int_equal(got, n);
    hf_buf_free(&args);
    assert_int_equal(unread_of(e), 1000);
    listed(e, "{\"before\":8}", "7,6", 0); /* 1..5 are gone */
    ok(e, "kim", USER, "mark_read", "{\"all\":true}", "{\"marked\":1000,");
    th_err(e, "kim", USER, U, "mark_read", "{\"id\":5}", "not_found");
    th_free(e);
}

/* ---- priority, link, type filter, notify_many ---- */

static void
test_priority_defaults_to_medium(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    th_sub(e, 1, U, -1);
    ok(e, "svc", SERVICE, "notify", "{\"title\":\"t\",\"message\":\"m\"}",
       "{\"id\":1,\"unread\":1}");
    event(e, "notification", "\"priority\":\"medium\",");
    th_free(e);
}

static void
test_link_is_a_field_of_its_own(void **state)
{
    struct th_eng *e = th_new(NULL);
    char args[2200], big[2002];
    (void)state;
    th_sub(e, 1, U, -1);
    ok(e, "svc", SERVICE, "notify",
       "{\"title\":\"t\",\"message\":\"m\",\"link\":\"/orders/A-1001\"}",
       NULL);
    event(e, "notification", "\"type\":null,\"link\":\"/orders/A-1001\",");
    /* Not a string, empty, too long or with control characters: refused. */
    th_err(e, "svc", SERVICE, U, "notify",
           "{\"title\":\"t\",\"message\":\"m\",\"link\":5}", "bad_request");
    th_err(e, "svc", SERVICE, U, "notify",
           "{\"title\":\"t\",\"message\":\"m\",\"link\":\"\"}", "bad_request");
    th_err(e, "svc", SERVICE, U, "notify",
           "{\"title\":\"t\",\"message\":\"m\",\"link\":\"a\\nb\"}",
           "bad_request");
    memset(big, 'l', 2001);
    big[2001] = '\0';
    snprintf(args, sizeof(args),
             "{\"title\":\"t\",\"message\":\"m\",\"link\":\"%s\"}", big);
    th_err(e, "svc", SERVICE, U, "notify", args, "bad_request");
    ok(e, "kim", USER, "list", NULL, "\"link\":\"/orders/A-1001\"");
    th_free(e);
}

static void
test_list_filters_by_type(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    for (int i = 1; i <= 6; i++)
        ok(e, "svc", SERVICE, "notify",
           i % 2 ? "{\"title\":\"t\",\"message\":\"m\",\"type\":\"receipt\"}"
                 : "{\"title\":\"t\",\"message\":\"m\",\"type\":\"chat\"}",
           NULL);
    ok(e, "svc", SERVICE, "notify", "{\"title\":\"t\",\"message\":\"m\"}",
       NULL);
    listed(e, "{\"type\":\"receipt\"}", "5,3,1", 0);
    listed(e, "{\"type\":\"chat\",\"limit\":2}", "6,4", 1);
    listed(e, "{\"type\":\"chat\",\"limit\":2,\"before\":4}", "2", 0);
    ok(e, "kim", USER, "mark_read", "{\"id\":5}", NULL);
    listed(e, "{\"type\":\"receipt\",\"unread_only\":true}", "3,1", 0);
    listed(e, "{\"type\":\"none\"}", "", 0);
    th_err(e, "kim", USER, U, "list", "{\"type\":\"\"}", "bad_request");
    th_err(e, "kim", USER, U, "list", "{\"type\":3}", "bad_request");
    th_free(e);
}

/* The unread count of user/<u>, waiting up to TH_WAIT for want. */
static int64_t
unread_of_user(struct th_eng *e, const char *u, int64_t want)
{
    char to[64];
    int64_t n = -1;
    snprintf(to, sizeof(to), "user/%s", u);
    for (int waited = 0; waited <= TH_WAIT; waited += 10) {
        hf_drv_msg *m = th_call(e, u, USER, to, "unread", NULL);
        n = th_int(m, "count");
        hf_drv_msg_free(m);
        if (n >= want)
            break;
        usleep(10000);
    }
    return n;
}

static void
test_notify_many_reaches_each_user_once(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    th_sub(e, 1, "user/lee", -1);
    ok(e, "ops", SERVICE, "notify_many",
       "{\"users\":[\"kim\",\"lee\",\"park\",\"lee\"],\"title\":\"Closing "
       "early\",\"message\":\"We close at 20:00 today.\",\"link\":\"/hours\","
       "\"type\":\"notice\",\"store\":\"gangnam-1\"}",
       "{\"sent\":3}");
    th_expect_event(e, "user/lee", "notification",
                    "\"title\":\"Closing early\",\"message\":\"We close at "
                    "20:00 today.\",\"priority\":\"medium\",\"type\":\"notice\","
                    "\"link\":\"/hours\",");
    assert_int_equal(unread_of_user(e, "kim", 1), 1);
    assert_int_equal(unread_of_user(e, "lee", 1), 1);
    assert_int_equal(unread_of_user(e, "park", 1), 1);
    /* Relayed by user/kim (the actor it was called on): the inbox shows the
     * relay as from and the service as by; extras pass through. */
    json = th_ok(e, "park", USER, "user/park", "list", NULL);
    has(json, "\"from\":\"user/kim\"");
    has(json, "\"by\":\"ops\"");
    has(json, "\"store\":\"gangnam-1\"");
    free(json);
    /* Exactly once, also across a restart; the relay's own inbox got only
     * its own copy. */
    th_restart(e);
    usleep(200000);
    assert_int_equal(unread_of_user(e, "lee", 2), 1);
    assert_int_equal(unread_of_user(e, "kim", 2), 1);
    th_free(e);
}

static void
test_notify_many_refuses_bad_input_and_sends_none(void **state)
{
    struct th_eng *e = th_new(NULL);
    char args[20000];
    size_t n;
    static const char *bad[] = {
        NULL,
        "{\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":[],\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":\"kim\",\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":[\"kim\",7],\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":[\"kim\",\"no/slash\"],\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":[\"kim\",\"\"],\"title\":\"t\",\"message\":\"m\"}",
        "{\"users\":[\"kim\"],\"message\":\"m\"}",
        "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\","
        "\"priority\":\"urgent\"}",
        "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\",\"by\":\"me\"}",
        "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\",\"read\":true}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        th_err(e, "ops", SERVICE, U, "notify_many", bad[i], "bad_request");
    /* Bounded per call: 1,000 users, not 1,001. */
    n = (size_t)snprintf(args, sizeof(args), "{\"users\":[");
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(args + n, sizeof(args) - n, "%s\"u%d\"",
                              i ? "," : "", i);
    snprintf(args + n, sizeof(args) - n, "],\"title\":\"t\",\"message\":\"m\"}");
    th_err(e, "ops", SERVICE, U, "notify_many", args, "bad_request");
    /* It must fit each inbox with the "by" the relay adds: 15 extras at
     * most, and an item of at most 8 KiB. */
    n = (size_t)snprintf(args, sizeof(args),
                         "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\"");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(args + n, sizeof(args) - n, ",\"x%d\":%d", i, i);
    snprintf(args + n, sizeof(args) - n, "}");
    th_err(e, "ops", SERVICE, U, "notify_many", args, "bad_request");
    n = (size_t)snprintf(args, sizeof(args),
                         "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\","
                         "\"blob\":\"");
    memset(args + n, 'b', 8150);
    snprintf(args + n + 8150, sizeof(args) - n - 8150, "\"}");
    th_err(e, "ops", SERVICE, U, "notify_many", args, "bad_request");
    /* Services and admins only. */
    th_err(e, "kim", USER, U, "notify_many",
           "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\"}",
           "forbidden");
    th_err(e, "ps5", DEVICE, U, "notify_many",
           "{\"users\":[\"kim\"],\"title\":\"t\",\"message\":\"m\"}",
           "forbidden");
    usleep(200000);
    assert_int_equal(unread_of_user(e, "kim", 0), 0);
    th_free(e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_stores_the_item_and_emits_notification),
        cmocka_unit_test(test_notify_validates_priority_and_fields),
        cmocka_unit_test(test_notify_is_forbidden_for_a_plain_user),
        cmocka_unit_test(
            test_device_reminder_through_the_outbox_is_stored_once),
        cmocka_unit_test(test_device_reminder_reaches_the_inbox_end_to_end),
        cmocka_unit_test(test_list_is_newest_first_with_limit_and_before),
        cmocka_unit_test(test_list_unread_only),
        cmocka_unit_test(test_mark_read_one_emits_notification_read),
        cmocka_unit_test(test_mark_read_all_emits_notification_read_all),
        cmocka_unit_test(test_mark_read_errors),
        cmocka_unit_test(test_unread_counts_unread_items),
        cmocka_unit_test(test_another_user_may_not_read_the_inbox),
        cmocka_unit_test(test_inbox_keeps_the_newest_1000),
        cmocka_unit_test(test_priority_defaults_to_medium),
        cmocka_unit_test(test_link_is_a_field_of_its_own),
        cmocka_unit_test(test_list_filters_by_type),
        cmocka_unit_test(test_notify_many_reaches_each_user_once),
        cmocka_unit_test(test_notify_many_refuses_bad_input_and_sends_none),
    };
    hf_log_set_level(HF_LOG_ERROR);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
