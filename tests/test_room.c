/*
 * test_room.c - the room kind (actors/room.c) through a real engine.
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

#include "core/actor.h"
#include "core/log.h"
#include "tests/harness.h"

#define R       "room/lobby"
#define USER    HF_ROLE_USER
#define ADMIN   HF_ROLE_ADMIN
#define SERVICE HF_ROLE_SERVICE

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
    th_ok_has(e, sub, role, R, method, args, frag);
}

/* The next event must be `type` with data containing frag. */
static void
event(struct th_eng *e, const char *type, const char *frag)
{
    th_expect_event(e, R, type, frag);
}

static void
say(struct th_eng *e, const char *who, const char *text)
{
    char args[256];
    snprintf(args, sizeof(args), "{\"type\":\"text\",\"body\":\"%s\"}", text);
    ok(e, who, USER, "send", args, NULL);
}

/* The ids of a history page, as "7,6,5", and its more flag. */
static void
page(struct th_eng *e, const char *args, const char *ids, int more)
{
    hf_drv_msg *m = th_call(e, "kim", USER, R, "history", args);
    char what[256];
    snprintf(what, sizeof(what), "history %s", args ? args : "");
    th_expect_ids(m, what, "messages", ids, more);
    hf_drv_msg_free(m);
}

static int64_t
unread_of(struct th_eng *e, const char *who)
{
    hf_drv_msg *m = th_call(e, who, USER, R, "unread", NULL);
    int64_t n;
    if (!m->e.ok)
        fail_msg("unread as %s: %s", who, m->code);
    n = th_int(m, "count");
    hf_drv_msg_free(m);
    return n;
}

/* ---- send ---- */

static void
test_send_replies_id_seq_at_and_emits_the_message(void **state)
{
    struct th_eng *e = th_new(NULL);
    hf_drv_msg *m;
    char frag[128];
    int64_t seq, at;
    (void)state;
    th_sub(e, 1, R, -1);
    m = th_call(e, "kim", USER, R, "send",
                "{\"type\":\"text\",\"body\":\"hello\"}");
    assert_true(m->e.ok);
    assert_int_equal(th_int(m, "id"), 1);
    seq = th_int(m, "seq");
    at = th_int(m, "at");
    assert_true(seq >= 1);
    assert_true(at > 1600000000000);
    hf_drv_msg_free(m);
    m = th_event(e, R);
    assert_non_null(m);
    assert_string_equal(m->type, "message");
    assert_int_equal(m->e.seq, (uint64_t)seq);
    snprintf(frag, sizeof(frag),
             "{\"id\":1,\"seq\":%lld,\"type\":\"text\",\"body\":\"hello\","
             "\"author\":\"kim\",\"at\":%lld}",
             (long long)seq, (long long)at);
    has(m->json, frag);
    hf_drv_msg_free(m);
    /* Ids count up; type defaults to text. */
    ok(e, "lee", USER, "send", "{\"body\":\"hi kim\"}", "{\"id\":2,");
    event(e, "message",
          "\"type\":\"text\",\"body\":\"hi kim\","
          "\"author\":\"lee\"");
    th_free(e);
}

static void
test_send_validates_type_body_and_client_id(void **state)
{
    struct th_eng *e = th_new(NULL);
    char big[4100], args[4200];
    hf_drv_msg *m;
    static const char *bad[] = {
        NULL,
        "{}",
        "{\"type\":\"text\"}",
        "{\"type\":\"video\",\"body\":\"x\"}",
        "{\"type\":3,\"body\":\"x\"}",
        "{\"type\":\"text\",\"body\":\"\"}",
        "{\"type\":\"text\",\"body\":12}",
        "{\"type\":\"text\",\"body\":{\"url\":\"http://x/a.png\"}}",
        "{\"type\":\"image\",\"body\":{\"name\":\"a.png\"}}",
        "{\"type\":\"text\",\"body\":\"x\",\"client_id\":\"\"}",
        "{\"type\":\"text\",\"body\":\"x\",\"client_id\":7}",
        "{\"type\":\"text\",\"body\":\"x\",\"client_id\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123"
        "4\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        th_err(e, "kim", USER, R, "send", bad[i], "bad_request");
    memset(big, 'x', 4001);
    big[4001] = '\0';
    snprintf(args, sizeof(args), "{\"body\":\"%s\"}", big);
    th_err(e, "kim", USER, R, "send", args, "bad_request");
    big[4000] = '\0'; /* 4000 bytes is the most, and fine */
    snprintf(args, sizeof(args), "{\"body\":\"%s\"}", big);
    ok(e, "kim", USER, "send", args, "{\"id\":1,");
    /* The error names the field. */
    m = th_call(e, "kim", USER, R, "send", "{\"type\":\"video\",\"body\":1}");
    assert_non_null(memmem(m->e.msg.data, m->e.msg.len, "'type'", 6));
    hf_drv_msg_free(m);
    /* Images and files take a URL or a map with one. */
    ok(e, "kim", USER, "send",
       "{\"type\":\"image\",\"body\":\"https://cdn.example/cat.png\"}", NULL);
    ok(e, "kim", USER, "send",
       "{\"type\":\"file\",\"body\":{\"url\":\"https://cdn.example/a.pdf\","
       "\"name\":\"a.pdf\",\"size\":1234}}",
       "{\"id\":3,");
    page(e, "{\"after\":1}", "2,3", 0);
    th_free(e);
}

static void
test_system_messages_need_admin_or_service(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    th_sub(e, 1, R, -1);
    th_err(e, "kim", USER, R, "send",
           "{\"type\":\"system\",\"body\":\"kim is admin now\"}", "forbidden");
    ok(e, "bot", SERVICE, "send",
       "{\"type\":\"system\",\"body\":\"room opens at 9\"}", "{\"id\":1,");
    event(e, "message",
          "\"type\":\"system\",\"body\":\"room opens at 9\","
          "\"author\":\"bot\"");
    ok(e, "boss", ADMIN, "send", "{\"type\":\"system\",\"body\":\"hi\"}",
       "{\"id\":2,");
    th_free(e);
}

static void
test_client_id_makes_a_retried_send_post_once(void **state)
{
    struct th_eng *e = th_new(NULL);
    const char *args =
        "{\"type\":\"text\",\"body\":\"once\",\"client_id\":\"c-1\"}";
    char *first, *again;
    (void)state;
    th_sub(e, 1, R, -1);
    first = th_ok(e, "kim", USER, R, "send", args);
    event(e, "message", "\"body\":\"once\",\"author\":\"kim\",\"at\":");
    again = th_ok(e, "kim", USER, R, "send", args);
    assert_string_equal(first, again); /* the same reply */
    assert_true(th_quiet(e, 200));     /* and no second event */
    page(e, NULL, "1", 0);
    /* Another author's client_id is their own. */
    ok(e, "lee", USER, "send", args, "{\"id\":2,");
    event(e, "message", "\"author\":\"lee\",");
    /* It holds across a restart, too. */
    th_restart(e);
    free(again);
    again = th_ok(e, "kim", USER, R, "send", args);
    assert_string_equal(first, again);
    page(e, NULL, "2,1", 0);
    free(first);
    free(again);
    th_free(e);
}

/* ---- history ---- */

static void
seven(struct th_eng *e)
{
    for (int i = 1; i <= 7; i++) {
        char t[16];
        snprintf(t, sizeof(t), "m%d", i);
        say(e, i % 2 ? "kim" : "lee", t);
    }
}

static void
test_history_pages_newest_first_with_before(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    page(e, NULL, "", 0);
    seven(e);
    page(e, "{\"limit\":3}", "7,6,5", 1);
    page(e, "{\"before\":5,\"limit\":3}", "4,3,2", 1);
    page(e, "{\"before\":2,\"limit\":3}", "1", 0);
    page(e, "{\"before\":1}", "", 0);
    page(e, NULL, "7,6,5,4,3,2,1", 0);
    th_free(e);
}

static void
test_history_pages_oldest_first_with_after(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    seven(e);
    page(e, "{\"after\":0,\"limit\":3}", "1,2,3", 1);
    page(e, "{\"after\":3,\"limit\":3}", "4,5,6", 1);
    page(e, "{\"after\":6,\"limit\":3}", "7", 0);
    page(e, "{\"after\":7}", "", 0);
    /* Both: the messages between, oldest first. */
    page(e, "{\"after\":2,\"before\":6}", "3,4,5", 0);
    page(e, "{\"after\":5,\"before\":5}", "", 0);
    /* Pages carry whole messages. */
    json = th_ok(e, "kim", USER, R, "history", "{\"after\":1,\"limit\":1}");
    has(json, "{\"messages\":[{\"id\":2,\"seq\":");
    has(json, "\"type\":\"text\",\"body\":\"m2\",\"author\":\"lee\",\"at\":");
    free(json);
    th_free(e);
}

static void
test_history_limit_defaults_to_50_and_is_at_most_200(void **state)
{
    struct th_eng *e = th_new(NULL);
    hf_drv_msg *m;
    (void)state;
    for (int i = 0; i < 55; i++)
        say(e, "kim", "spam");
    m = th_call(e, "kim", USER, R, "history", NULL);
    assert_true(m->e.ok);
    assert_int_equal(hf_arg(m->e.val, "messages")->via.array.size, 50);
    hf_drv_msg_free(m);
    m = th_call(e, "kim", USER, R, "history", "{\"limit\":200}");
    assert_int_equal(hf_arg(m->e.val, "messages")->via.array.size, 55);
    hf_drv_msg_free(m);
    th_err(e, "kim", USER, R, "history", "{\"limit\":201}", "bad_request");
    th_err(e, "kim", USER, R, "history", "{\"limit\":0}", "bad_request");
    th_err(e, "kim", USER, R, "history", "{\"before\":\"x\"}", "bad_request");
    th_err(e, "kim", USER, R, "history", "{\"before\":0}", "bad_request");
    th_err(e, "kim", USER, R, "history", "{\"after\":-1}", "bad_request");
    th_free(e);
}

/* ---- read receipts and unread counts ---- */

static void
test_read_moves_the_callers_mark_and_emits_read(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    seven(e);
    th_sub(e, 1, R, -1);
    ok(e, "kim", USER, "read", "{\"upto\":3}", "{\"upto\":3}");
    event(e, "read", "{\"user\":\"kim\",\"upto\":3}");
    /* Marks only move forward: an older upto changes nothing. */
    ok(e, "kim", USER, "read", "{\"upto\":2}", "{\"upto\":3}");
    ok(e, "kim", USER, "read", "{\"upto\":3}", "{\"upto\":3}");
    assert_true(th_quiet(e, 200));
    ok(e, "lee", USER, "read", "{\"upto\":7}", "{\"upto\":7}");
    event(e, "read", "{\"user\":\"lee\",\"upto\":7}");
    th_free(e);
}

static void
test_read_errors(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    say(e, "kim", "one");
    th_err(e, "kim", USER, R, "read", NULL, "bad_request");
    th_err(e, "kim", USER, R, "read", "{\"upto\":\"1\"}", "bad_request");
    th_err(e, "kim", USER, R, "read", "{\"upto\":0}", "bad_request");
    th_err(e, "kim", USER, R, "read", "{\"upto\":2}", "not_found");
    th_err(e, "", USER, R, "read", "{\"upto\":1}", "unauthorized");
    th_err(e, "", USER, R, "unread", NULL, "unauthorized");
    th_free(e);
}

static void
test_unread_counts_per_user_without_their_own(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    assert_int_equal(unread_of(e, "kim"), 0);
    say(e, "kim", "1");
    say(e, "kim", "2");
    say(e, "lee", "3");
    say(e, "kim", "4");
    say(e, "lee", "5");
    assert_int_equal(unread_of(e, "kim"), 2);  /* lee's 3 and 5 */
    assert_int_equal(unread_of(e, "lee"), 3);  /* kim's 1, 2 and 4 */
    assert_int_equal(unread_of(e, "park"), 5); /* everything */
    ok(e, "lee", USER, "read", "{\"upto\":2}", NULL);
    assert_int_equal(unread_of(e, "lee"), 1);
    ok(e, "kim", USER, "read", "{\"upto\":5}", NULL);
    assert_int_equal(unread_of(e, "kim"), 0);
    assert_int_equal(unread_of(e, "park"), 5);
    /* A deleted message is not waiting to be read. */
    ok(e, "kim", USER, "delete", "{\"id\":4}", NULL);
    assert_int_equal(unread_of(e, "park"), 4);
    assert_int_equal(unread_of(e, "lee"), 0);
    th_free(e);
}

/* ---- soft delete ---- */

static void
test_author_soft_deletes_and_message_deleted_is_emitted(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    say(e, "kim", "oops");
    say(e, "lee", "keep");
    th_sub(e, 1, R, -1);
    ok(e, "kim", USER, "delete", "{\"id\":1}", "{\"id\":1,\"deleted\":true}");
    event(e, "message_deleted", "{\"id\":1,\"by\":\"kim\",\"at\":");
    json = th_ok(e, "kim", USER, R, "history", "{\"after\":0}");
    has(json, "{\"id\":1,\"seq\":");
    has(json, "\"type\":\"text\",\"author\":\"kim\",\"at\":");
    has(json, "\"body\":\"\",\"deleted\":true,\"deleted_at\":");
    has(json, "\"deleted_by\":\"kim\"}");
    assert_null(strstr(json, "oops"));
    has(json, "\"body\":\"keep\"");
    free(json);
    /* Deleting again changes nothing and says nothing. */
    ok(e, "kim", USER, "delete", "{\"id\":1}", "{\"id\":1,\"deleted\":true}");
    assert_true(th_quiet(e, 200));
    th_free(e);
}

static void
test_admin_may_delete_anyones_message(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    say(e, "kim", "rude");
    th_sub(e, 1, R, -1);
    ok(e, "mod", ADMIN, "delete", "{\"id\":1}", NULL);
    event(e, "message_deleted", "{\"id\":1,\"by\":\"mod\",");
    th_free(e);
}

static void
test_others_may_not_delete_a_message(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    say(e, "kim", "mine");
    th_err(e, "lee", USER, R, "delete", "{\"id\":1}", "forbidden");
    th_err(e, "svc", SERVICE, R, "delete", "{\"id\":1}", "forbidden");
    th_err(e, "", USER, R, "delete", "{\"id\":1}", "forbidden");
    page(e, NULL, "1", 0);
    ok(e, "kim", USER, "history", NULL, "\"body\":\"mine\"");
    th_free(e);
}

static void
test_delete_errors(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    say(e, "kim", "x");
    th_err(e, "kim", USER, R, "delete", NULL, "bad_request");
    th_err(e, "kim", USER, R, "delete", "{\"id\":\"1\"}", "bad_request");
    th_err(e, "kim", USER, R, "delete", "{\"id\":2}", "not_found");
    th_err(e, "mod", ADMIN, R, "delete", "{\"id\":99}", "not_found");
    th_free(e);
}

static void
test_room_survives_restart(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    say(e, "kim", "before");
    ok(e, "lee", USER, "read", "{\"upto\":1}", NULL);
    th_restart(e);
    say(e, "kim", "after");
    page(e, NULL, "2,1", 0);
    assert_int_equal(unread_of(e, "lee"), 1);
    th_free(e);
}

/* ---- author display and delivery states ---- */

static void
test_profile_names_the_authors_messages(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    th_sub(e, 1, R, -1);
    /* No profile, no claims: neither field. */
    say(e, "kim", "before");
    event(e, "message", "\"author\":\"kim\",\"at\":");
    ok(e, "kim", USER, "profile",
       "{\"name\":\"Kim Minji\",\"picture\":\"https://cdn.example/kim.png\"}",
       "{\"user\":\"kim\",\"name\":\"Kim Minji\","
       "\"picture\":\"https://cdn.example/kim.png\"}");
    event(e, "profile",
          "{\"user\":\"kim\",\"name\":\"Kim Minji\","
          "\"picture\":\"https://cdn.example/kim.png\"}");
    say(e, "kim", "after");
    event(e, "message",
          "\"author\":\"kim\",\"name\":\"Kim Minji\","
          "\"picture\":\"https://cdn.example/kim.png\",\"at\":");
    /* A profile without a picture; others keep theirs (none). */
    ok(e, "lee", USER, "profile", "{\"name\":\"Lee\"}",
       "{\"user\":\"lee\",\"name\":\"Lee\",\"picture\":null}");
    event(e, "profile", NULL);
    say(e, "lee", "hi");
    event(e, "message", "\"author\":\"lee\",\"name\":\"Lee\",\"at\":");
    /* History shows each message as it was sent, also after a restart. */
    th_restart(e);
    json = th_ok(e, "kim", USER, R, "history", "{\"after\":0}");
    has(json, "\"body\":\"before\",\"author\":\"kim\",\"at\":");
    has(json, "\"body\":\"after\",\"author\":\"kim\",\"name\":\"Kim Minji\"");
    has(json, "\"body\":\"hi\",\"author\":\"lee\",\"name\":\"Lee\",\"at\":");
    free(json);
    th_free(e);
}

static void
test_profile_errors(void **state)
{
    struct th_eng *e = th_new(NULL);
    char args[2100], big[2002];
    (void)state;
    th_err(e, "kim", USER, R, "profile", NULL, "bad_request");
    th_err(e, "kim", USER, R, "profile", "{\"name\":\"\"}", "bad_request");
    th_err(e, "kim", USER, R, "profile", "{\"name\":3}", "bad_request");
    th_err(e, "kim", USER, R, "profile", "{\"name\":\"a\\u0007b\"}",
           "bad_request");
    th_err(e, "kim", USER, R, "profile",
           "{\"name\":\"12345678901234567890123456789012345678901234567890"
           "123456789012345\"}",
           "bad_request");
    memset(big, 'p', 2001);
    big[2001] = '\0';
    snprintf(args, sizeof(args), "{\"name\":\"K\",\"picture\":\"%s\"}", big);
    th_err(e, "kim", USER, R, "profile", args, "bad_request");
    th_err(e, "", USER, R, "profile", "{\"name\":\"Ghost\"}", "unauthorized");
    th_free(e);
}

static void
test_delivered_moves_its_own_mark_and_emits_delivered(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    seven(e);
    th_sub(e, 1, R, -1);
    ok(e, "lee", USER, "delivered", "{\"upto\":5}", "{\"upto\":5}");
    event(e, "delivered", "{\"user\":\"lee\",\"upto\":5}");
    /* Forward only; and a separate mark from read. */
    ok(e, "lee", USER, "delivered", "{\"upto\":4}", "{\"upto\":5}");
    assert_true(th_quiet(e, 200));
    ok(e, "lee", USER, "read", "{\"upto\":2}", "{\"upto\":2}");
    event(e, "read", "{\"user\":\"lee\",\"upto\":2}");
    ok(e, "lee", USER, "delivered", "{\"upto\":7}", "{\"upto\":7}");
    event(e, "delivered", "{\"user\":\"lee\",\"upto\":7}");
    th_restart(e);
    ok(e, "lee", USER, "delivered", "{\"upto\":6}", "{\"upto\":7}");
    /* Errors as read's. */
    th_err(e, "lee", USER, R, "delivered", NULL, "bad_request");
    th_err(e, "lee", USER, R, "delivered", "{\"upto\":0}", "bad_request");
    th_err(e, "lee", USER, R, "delivered", "{\"upto\":8}", "not_found");
    th_err(e, "", USER, R, "delivered", "{\"upto\":1}", "unauthorized");
    th_free(e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_replies_id_seq_at_and_emits_the_message),
        cmocka_unit_test(test_send_validates_type_body_and_client_id),
        cmocka_unit_test(test_system_messages_need_admin_or_service),
        cmocka_unit_test(test_client_id_makes_a_retried_send_post_once),
        cmocka_unit_test(test_history_pages_newest_first_with_before),
        cmocka_unit_test(test_history_pages_oldest_first_with_after),
        cmocka_unit_test(test_history_limit_defaults_to_50_and_is_at_most_200),
        cmocka_unit_test(test_read_moves_the_callers_mark_and_emits_read),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_unread_counts_per_user_without_their_own),
        cmocka_unit_test(
            test_author_soft_deletes_and_message_deleted_is_emitted),
        cmocka_unit_test(test_admin_may_delete_anyones_message),
        cmocka_unit_test(test_others_may_not_delete_a_message),
        cmocka_unit_test(test_delete_errors),
        cmocka_unit_test(test_room_survives_restart),
        cmocka_unit_test(test_profile_names_the_authors_messages),
        cmocka_unit_test(test_profile_errors),
        cmocka_unit_test(test_delivered_moves_its_own_mark_and_emits_delivered),
    };
    hf_log_set_level(HF_LOG_ERROR);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
