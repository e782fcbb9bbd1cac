/*
 * test_store.c - the store kind (a waiting list), through a real engine
 * (tests/harness.h): every method, event and error, and the day rollover
 * of ticket numbers as pure functions, and around a store's local midnight
 * with the test clock set (hf_clock_set, core/buf.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store.h"
#include "core/actor.h"
#include "core/buf.h"
#include "tests/harness.h"

#define S     "store/gangnam-1"
#define STAFF HF_ROLE_ADMIN
#define GUEST HF_ROLE_USER

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static int
setup(void **state)
{
    *state = th_new(NULL);
    return 0;
}

static int
teardown(void **state)
{
    th_free(*state);
    return 0;
}

/* A call that must succeed; free the reply with hf_drv_msg_free. */
static hf_drv_msg *
ok(struct th_eng *e, const char *sub, unsigned role, const char *method,
   const char *args)
{
    hf_drv_msg *m = th_call(e, sub, role, S, method, args);
    if (!m->e.ok)
        fail_msg("%s(%s) failed: %s: %.*s", method, args ? args : "", m->code,
                 (int)m->e.msg.len, (const char *)m->e.msg.data);
    return m;
}

/* A call that must fail with code and a message containing `part`. */
static void
fails(struct th_eng *e, const char *sub, unsigned role, const char *method,
      const char *args, const char *code, const char *part)
{
    hf_drv_msg *m = th_call(e, sub, role, S, method, args);
    if (m->e.ok)
        fail_msg("%s(%s) succeeded: %s, wanted %s", method, args ? args : "",
                 m->json, code);
    if (strcmp(m->code, code) != 0)
        fail_msg("%s(%s): got %s (%.*s), wanted %s", method, args ? args : "",
                 m->code, (int)m->e.msg.len, (const char *)m->e.msg.data, code);
    if (part) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%.*s", (int)m->e.msg.len,
                 (const char *)m->e.msg.data);
        if (strstr(msg, part) == NULL)
            fail_msg("%s(%s): message '%s' does not mention '%s'", method,
                     args ? args : "", msg, part);
    }
    hf_drv_msg_free(m);
}


static void
str(const msgpack_object *map, const char *name, char *out, size_t cap)
{
    const msgpack_object *v = th_field(map, name);
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    assert_true(v->via.str.size < cap);
    memcpy(out, v->via.str.ptr, v->via.str.size);
    out[v->via.str.size] = '\0';
}

/* Registers a party as guest `sub`; the ticket id goes to ticket. */
static void
reg(struct th_eng *e, const char *sub, const char *name, int party,
    const char *cls, char *ticket)
{
    char args[200];
    hf_drv_msg *m;

    if (cls)
        snprintf(args, sizeof(args),
                 "{\"name\":\"%s\",\"party\":%d,\"class\":\"%s\"}", name, party,
                 cls);
    else
        snprintf(args, sizeof(args), "{\"name\":\"%s\",\"party\":%d}", name,
                 party);
    m = ok(e, sub, GUEST, "register", args);
    str(m->e.val, "ticket", ticket, HF_STORE_ID_MAX);
    hf_drv_msg_free(m);
}

/* {"ticket":"<id>"} plus more JSON (may be ""). */
static const char *
targ(char *buf, size_t cap, const char *ticket, const char *more)
{
    snprintf(buf, cap, "{\"ticket\":\"%s\"%s%s}", ticket, *more ? "," : "",
             more);
    return buf;
}

static hf_drv_msg *
next_event(struct th_eng *e, const char *type)
{
    hf_drv_msg *m = th_event(e, S);
    if (m == NULL)
        fail_msg("no %s event", type);
    if (strcmp(m->type, type) != 0)
        fail_msg("got event %s %s, wanted %s", m->type, m->json, type);
    return m;
}

/* The tickets array of list (with all when all). */
static hf_drv_msg *
list(struct th_eng *e, const char *sub, unsigned role, int all)
{
    return ok(e, sub, role, "list", all ? "{\"all\":true}" : "{}");
}

static const msgpack_object *
tickets(const hf_drv_msg *m)
{
    const msgpack_object *t = th_field(m->e.val, "tickets");
    assert_int_equal(t->type, MSGPACK_OBJECT_ARRAY);
    return t;
}

static uint32_t
today(void)
{
    return hf_store_day(hf_now_ms());
}

/* ------------------------------------------------------------------ */
/* pure: the day and ticket ids                                        */

static void
test_day_is_the_utc_day_of_now(void **state)
{
    (void)state;
    assert_int_equal(hf_store_day(0), 19700101);
    /* 2026-11-21T23:59:59.999Z and one millisecond later. */
    assert_int_equal(hf_store_day(1795305599999LL), 20261121);
    assert_int_equal(hf_store_day(1795305600000LL), 20261122);
    /* 2024-02-29T12:00:00Z, a leap day; 2023-12-31T23:59:59Z. */
    assert_int_equal(hf_store_day(1709208000000LL), 20240229);
    assert_int_equal(hf_store_day(1704067199000LL), 20231231);
    assert_int_equal(hf_store_day(1704067200000LL), 20240101);
}

static void
test_ticket_numbers_restart_the_next_day(void **state)
{
    char a[HF_STORE_ID_MAX], b[HF_STORE_ID_MAX];
    uint32_t d1 = hf_store_day(1795305599999LL);
    uint32_t d2 = hf_store_day(1795305600000LL);
    (void)state;

    /* Never used: 1; same day: next; the day after: 1 again. */
    assert_int_equal(hf_store_next_number(0, 0, d1), 1);
    assert_int_equal(hf_store_next_number(d1, 1, d1), 2);
    assert_int_equal(hf_store_next_number(d1, 41, d1), 42);
    assert_int_equal(hf_store_next_number(d1, 41, d2), 1);
    assert_int_equal(hf_store_next_number(d1, HF_STORE_NUMBER_MAX, d2), 1);
    /* A day's numbers can run out; the next day they are back. */
    assert_int_equal(hf_store_next_number(d1, HF_STORE_NUMBER_MAX, d1), 0);
    /* Number 1 of two days: two different ids. */
    hf_store_ticket_id(a, d1, 1);
    hf_store_ticket_id(b, d2, 1);
    assert_string_equal(a, "20261121-1");
    assert_string_equal(b, "20261122-1");
}

static void
test_ticket_ids_parse_and_reject_garbage(void **state)
{
    static const char *const bad[] = {
        "",           "20261121",    "20261121-",
        "20261121-0", "20261121-07", "2026112-7",
        "20261121x7", "20261121-7a", "20261121-1000000",
        "abcdefgh-1", "20261121--7",
    };
    uint32_t day, no;
    char id[HF_STORE_ID_MAX];
    (void)state;

    assert_int_equal(hf_store_ticket_parse("20261121-7", 10, &day, &no), 0);
    assert_int_equal(day, 20261121);
    assert_int_equal(no, 7);
    assert_int_equal(hf_store_ticket_parse("20261121-999999", 15, &day, &no),
                     0);
    assert_int_equal(no, 999999);
    hf_store_ticket_id(id, 20261231, 123);
    assert_int_equal(hf_store_ticket_parse(id, strlen(id), &day, &no), 0);
    assert_int_equal(day, 20261231);
    assert_int_equal(no, 123);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hf_store_ticket_parse(bad[i], strlen(bad[i]), &day, &no) == 0)
            fail_msg("'%s' parsed as a ticket id", bad[i]);
}

/* ------------------------------------------------------------------ */
/* register and list                                                   */

static void
test_register_many_numbers_and_positions_in_order(void **state)
{
    struct th_eng *e = *state;
    char args[100], want[HF_STORE_ID_MAX];
    hf_drv_msg *m;
    const msgpack_object *t;
    uint32_t day = today();

    for (int i = 1; i <= 30; i++) {
        snprintf(args, sizeof(args), "{\"name\":\"g%d\",\"party\":%d}", i,
                 1 + i % 6);
        m = ok(e, "", GUEST, "register", args);
        hf_store_ticket_id(want, day, (uint32_t)i);
        assert_true(th_is(m->e.val, "ticket", want));
        assert_int_equal(th_num(m->e.val, "number"), i);
        assert_int_equal(th_num(m->e.val, "position"), i);
        assert_int_equal(th_num(m->e.val, "waiting"), i);
        hf_drv_msg_free(m);
    }
    m = list(e, "", GUEST, 0);
    assert_int_equal(th_num(m->e.val, "waiting"), 30);
    assert_int_equal(th_num(m->e.val, "called"), 0);
    assert_int_equal(th_num(m->e.val, "day"), day);
    t = tickets(m);
    assert_int_equal(t->via.array.size, 30);
    for (uint32_t i = 0; i < 30; i++) {
        const msgpack_object *x = &t->via.array.ptr[i];
        snprintf(args, sizeof(args), "g%u", i + 1);
        assert_true(th_is(x, "name", args));
        assert_true(th_is(x, "status", "waiting"));
        assert_int_equal(th_num(x, "position"), i + 1);
        assert_int_equal(th_num(x, "party"), 1 + (i + 1) % 6);
    }
    hf_drv_msg_free(m);
}

static void
test_register_validates_arguments(void **state)
{
    struct th_eng *e = *state;
    char longname[100];

    memset(longname, 'x', 65);
    longname[65] = '\0';
    fails(e, "", GUEST, "register", "{\"party\":2}", "bad_request", "'name'");
    fails(e, "", GUEST, "register", "{\"name\":\"\",\"party\":2}",
          "bad_request", "'name'");
    fails(e, "", GUEST, "register", "{\"name\":7,\"party\":2}", "bad_request",
          "'name'");
    fails(e, "", GUEST, "register", "{\"name\":\"a\\nb\",\"party\":2}",
          "bad_request", "'name'");
    {
        char args[200];
        snprintf(args, sizeof(args), "{\"name\":\"%s\",\"party\":2}", longname);
        fails(e, "", GUEST, "register", args, "bad_request", "'name'");
    }
    fails(e, "", GUEST, "register", "{\"name\":\"Kim\"}", "bad_request",
          "'party'");
    fails(e, "", GUEST, "register", "{\"name\":\"Kim\",\"party\":0}",
          "bad_request", "'party'");
    fails(e, "", GUEST, "register", "{\"name\":\"Kim\",\"party\":101}",
          "bad_request", "'party'");
    fails(e, "", GUEST, "register", "{\"name\":\"Kim\",\"party\":\"2\"}",
          "bad_request", "'party'");
    fails(e, "", GUEST, "register",
          "{\"name\":\"Kim\",\"party\":2,\"phone\":\"call me\"}", "bad_request",
          "'phone'");
    fails(e, "", GUEST, "register",
          "{\"name\":\"Kim\",\"party\":2,\"phone\":12345}", "bad_request",
          "'phone'");
    fails(e, "", GUEST, "register",
          "{\"name\":\"Kim\",\"party\":2,\"class\":\"\"}", "bad_request",
          "'class'");
    fails(e, "", GUEST, "register", "[1,2]", "bad_request", "'name'");
    /* Nothing was registered by any of these. */
    {
        hf_drv_msg *m = list(e, "", GUEST, 1);
        assert_int_equal(tickets(m)->via.array.size, 0);
        hf_drv_msg_free(m);
    }
}

static void
test_register_emits_new_waiting(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX];
    hf_drv_msg *m;

    th_sub(e, 1, S, -1);
    reg(e, "kim", "Kim", 2, NULL, t1);
    m = ok(e, "lee", GUEST, "register",
           "{\"name\":\"Lee\",\"party\":4,\"phone\":\"+82 10-1234-5678\","
           "\"class\":\"terrace\"}");
    hf_drv_msg_free(m);

    m = next_event(e, "new_waiting");
    assert_true(th_is(m->e.val, "ticket", t1));
    assert_true(th_is(m->e.val, "name", "Kim"));
    assert_int_equal(th_num(m->e.val, "party"), 2);
    assert_true(th_is(m->e.val, "class", ""));
    assert_true(th_is(m->e.val, "status", "waiting"));
    assert_int_equal(th_num(m->e.val, "position"), 1);
    assert_int_equal(th_num(m->e.val, "waiting"), 1);
    hf_drv_msg_free(m);

    m = next_event(e, "new_waiting");
    assert_true(th_is(m->e.val, "name", "Lee"));
    assert_int_equal(th_num(m->e.val, "party"), 4);
    assert_true(th_is(m->e.val, "class", "terrace"));
    assert_int_equal(th_num(m->e.val, "position"), 2);
    assert_int_equal(th_num(m->e.val, "waiting"), 2);
    /* Boards are public: no phone number in events. */
    assert_null(hf_arg(m->e.val, "phone"));
    hf_drv_msg_free(m);
}

static void
test_list_shows_phone_to_staff_only(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    hf_drv_msg_free(ok(e, "lee", GUEST, "register",
                       "{\"name\":\"Lee\",\"party\":4,"
                       "\"phone\":\"010-1234-5678\"}"));
    m = list(e, "someone", GUEST, 0);
    assert_null(hf_arg(&tickets(m)->via.array.ptr[0], "phone"));
    hf_drv_msg_free(m);
    m = list(e, "staff", STAFF, 0);
    assert_true(th_is(&tickets(m)->via.array.ptr[0], "phone", "010-1234-5678"));
    hf_drv_msg_free(m);
}

/* ------------------------------------------------------------------ */
/* call, seat, no-show                                                 */

static void
test_call_without_ticket_calls_the_first_waiting(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], t3[HF_STORE_ID_MAX];
    hf_drv_msg *m;
    const msgpack_object *t;

    reg(e, "a", "A", 2, NULL, t1);
    reg(e, "b", "B", 3, NULL, t2);
    reg(e, "c", "C", 4, NULL, t3);
    th_sub(e, 1, S, -1);

    m = ok(e, "staff", STAFF, "call", "{}");
    assert_true(th_is(m->e.val, "ticket", t1));
    assert_true(th_is(m->e.val, "status", "called"));
    assert_true(th_is(m->e.val, "from", "waiting"));
    assert_int_equal(th_num(m->e.val, "waiting"), 2);
    assert_true(th_num(m->e.val, "called_at") > 0);
    hf_drv_msg_free(m);

    m = next_event(e, "status_changed");
    assert_true(th_is(m->e.val, "ticket", t1));
    assert_true(th_is(m->e.val, "name", "A"));
    assert_int_equal(th_num(m->e.val, "party"), 2);
    assert_true(th_is(m->e.val, "status", "called"));
    assert_true(th_is(m->e.val, "from", "waiting"));
    assert_int_equal(th_num(m->e.val, "position"), -1);
    assert_int_equal(th_num(m->e.val, "waiting"), 2);
    hf_drv_msg_free(m);

    /* The board: the called ticket first, then the queue, moved up. */
    m = list(e, "", GUEST, 0);
    t = tickets(m);
    assert_int_equal(t->via.array.size, 3);
    assert_int_equal(th_num(m->e.val, "called"), 1);
    assert_int_equal(th_num(m->e.val, "waiting"), 2);
    assert_true(th_is(&t->via.array.ptr[0], "ticket", t1));
    assert_true(th_is(&t->via.array.ptr[0], "status", "called"));
    assert_int_equal(th_num(&t->via.array.ptr[0], "position"), -1);
    assert_true(th_is(&t->via.array.ptr[1], "ticket", t2));
    assert_int_equal(th_num(&t->via.array.ptr[1], "position"), 1);
    assert_true(th_is(&t->via.array.ptr[2], "ticket", t3));
    assert_int_equal(th_num(&t->via.array.ptr[2], "position"), 2);
    hf_drv_msg_free(m);

    /* The next call takes the next one. */
    m = ok(e, "staff", STAFF, "call", "{}");
    assert_true(th_is(m->e.val, "ticket", t2));
    hf_drv_msg_free(m);
}

static void
test_call_of_a_class_calls_the_first_waiting_of_that_class(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], t3[HF_STORE_ID_MAX];
    hf_drv_msg *m;

    reg(e, "a", "A", 2, "table", t1);
    reg(e, "b", "B", 1, "bar", t2);
    reg(e, "c", "C", 1, "bar", t3);
    m = ok(e, "staff", STAFF, "call", "{\"class\":\"bar\"}");
    assert_true(th_is(m->e.val, "ticket", t2));
    assert_true(th_is(m->e.val, "class", "bar"));
    hf_drv_msg_free(m);
    m = ok(e, "staff", STAFF, "call", "{\"class\":\"bar\"}");
    assert_true(th_is(m->e.val, "ticket", t3));
    hf_drv_msg_free(m);
    fails(e, "staff", STAFF, "call", "{\"class\":\"bar\"}", "not_found", "bar");
    m = ok(e, "staff", STAFF, "call", "{}");
    assert_true(th_is(m->e.val, "ticket", t1));
    hf_drv_msg_free(m);
}

static void
test_call_with_nobody_waiting_is_not_found(void **state)
{
    struct th_eng *e = *state;
    fails(e, "staff", STAFF, "call", "{}", "not_found", "waiting");
    fails(e, "staff", STAFF, "call", NULL, "not_found", "waiting");
}

static void
test_call_a_given_ticket_out_of_order(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], a[80];
    hf_drv_msg *m;

    reg(e, "a", "A", 2, NULL, t1);
    reg(e, "b", "B", 6, NULL, t2);
    m = ok(e, "staff", STAFF, "call", targ(a, sizeof(a), t2, ""));
    assert_true(th_is(m->e.val, "ticket", t2));
    assert_true(th_is(m->e.val, "status", "called"));
    assert_int_equal(th_num(m->e.val, "waiting"), 1);
    hf_drv_msg_free(m);
    /* Calling a called ticket again is not a transition. */
    fails(e, "staff", STAFF, "call", targ(a, sizeof(a), t2, ""), "conflict",
          t2);
    fails(e, "staff", STAFF, "call", "{\"ticket\":\"20200101-1\"}", "not_found",
          "20200101-1");
    fails(e, "staff", STAFF, "call", "{\"ticket\":\"next\"}", "bad_request",
          "'ticket'");
}

static void
test_seat_a_called_ticket(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];
    hf_drv_msg *m;

    reg(e, "a", "A", 2, NULL, t1);
    hf_drv_msg_free(ok(e, "staff", STAFF, "call", "{}"));
    th_sub(e, 1, S, -1);
    m = ok(e, "staff", STAFF, "set_status",
           targ(a, sizeof(a), t1, "\"status\":\"seated\""));
    assert_true(th_is(m->e.val, "status", "seated"));
    assert_true(th_num(m->e.val, "done_at") > 0);
    hf_drv_msg_free(m);
    m = next_event(e, "status_changed");
    assert_true(th_is(m->e.val, "ticket", t1));
    assert_true(th_is(m->e.val, "status", "seated"));
    assert_true(th_is(m->e.val, "from", "called"));
    assert_int_equal(th_num(m->e.val, "waiting"), 0);
    hf_drv_msg_free(m);
    /* Off the board, still in today's full list. */
    m = list(e, "", GUEST, 0);
    assert_int_equal(tickets(m)->via.array.size, 0);
    hf_drv_msg_free(m);
    m = list(e, "", GUEST, 1);
    assert_int_equal(tickets(m)->via.array.size, 1);
    assert_true(th_is(&tickets(m)->via.array.ptr[0], "status", "seated"));
    hf_drv_msg_free(m);
}

static void
test_no_show_a_called_ticket(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];
    hf_drv_msg *m;

    reg(e, "a", "A", 2, NULL, t1);
    hf_drv_msg_free(ok(e, "staff", STAFF, "set_status",
                       targ(a, sizeof(a), t1, "\"status\":\"called\"")));
    th_sub(e, 1, S, -1);
    hf_drv_msg_free(ok(e, "svc", HF_ROLE_SERVICE, "set_status",
                       targ(a, sizeof(a), t1, "\"status\":\"no_show\"")));
    m = next_event(e, "status_changed");
    assert_true(th_is(m->e.val, "status", "no_show"));
    assert_true(th_is(m->e.val, "from", "called"));
    hf_drv_msg_free(m);
}

static void
test_illegal_transitions_conflict(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], a[80];

    reg(e, "a", "A", 2, NULL, t1);
    reg(e, "b", "B", 2, NULL, t2);
    /* waiting -> seated / no_show skip the call. */
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"seated\""), "conflict",
          "waiting");
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"no_show\""), "conflict",
          "waiting");
    /* called -> called. */
    hf_drv_msg_free(ok(e, "s", STAFF, "call", targ(a, sizeof(a), t1, "")));
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"called\""), "conflict",
          "called");
    /* seated is final. */
    hf_drv_msg_free(ok(e, "s", STAFF, "set_status",
                       targ(a, sizeof(a), t1, "\"status\":\"seated\"")));
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"no_show\""), "conflict",
          "seated");
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"cancelled\""), "conflict",
          "seated");
    fails(e, "s", STAFF, "cancel", targ(a, sizeof(a), t1, ""), "conflict",
          "seated");
    /* cancelled is final. */
    hf_drv_msg_free(ok(e, "s", STAFF, "set_status",
                       targ(a, sizeof(a), t2, "\"status\":\"cancelled\"")));
    fails(e, "s", STAFF, "call", targ(a, sizeof(a), t2, ""), "conflict",
          "cancelled");
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t2, "\"status\":\"cancelled\""), "conflict",
          "cancelled");
}

static void
test_set_status_validates_arguments(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];

    reg(e, "a", "A", 2, NULL, t1);
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"waiting\""), "bad_request",
          "'status'");
    fails(e, "s", STAFF, "set_status",
          targ(a, sizeof(a), t1, "\"status\":\"gone\""), "bad_request",
          "'status'");
    fails(e, "s", STAFF, "set_status", targ(a, sizeof(a), t1, ""),
          "bad_request", "'status'");
    fails(e, "s", STAFF, "set_status", "{\"status\":\"called\"}", "bad_request",
          "'ticket'");
    fails(e, "s", STAFF, "set_status", "{\"ticket\":7,\"status\":\"called\"}",
          "bad_request", "'ticket'");
    fails(e, "s", STAFF, "set_status",
          "{\"ticket\":\"20991231-5\",\"status\":\"called\"}", "not_found",
          "20991231-5");
}

static void
test_staff_methods_need_admin_or_service(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];

    reg(e, "a", "A", 2, NULL, t1);
    th_err(e, "a", GUEST, S, "call", "{}", "forbidden");
    th_err(e, "a", GUEST, S, "set_status",
           targ(a, sizeof(a), t1, "\"status\":\"called\""), "forbidden");
    th_err(e, "a", GUEST, S, "move", targ(a, sizeof(a), t1, "\"position\":1"),
           "forbidden");
    th_err(e, "d", HF_ROLE_DEVICE, S, "call", "{}", "forbidden");
    /* A service is staff. */
    hf_drv_msg_free(ok(e, "svc", HF_ROLE_SERVICE, "move",
                       targ(a, sizeof(a), t1, "\"position\":1")));
    hf_drv_msg_free(ok(e, "svc", HF_ROLE_SERVICE, "call", "{}"));
}

/* ------------------------------------------------------------------ */
/* cancel                                                              */

static void
test_guest_cancels_own_ticket(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], a[80];
    hf_drv_msg *m;

    reg(e, "kim", "Kim", 2, NULL, t1);
    reg(e, "lee", "Lee", 2, NULL, t2);
    th_sub(e, 1, S, -1);
    m = ok(e, "kim", GUEST, "cancel", targ(a, sizeof(a), t1, ""));
    assert_true(th_is(m->e.val, "status", "cancelled"));
    hf_drv_msg_free(m);
    m = next_event(e, "status_changed");
    assert_true(th_is(m->e.val, "ticket", t1));
    assert_true(th_is(m->e.val, "status", "cancelled"));
    assert_true(th_is(m->e.val, "from", "waiting"));
    assert_int_equal(th_num(m->e.val, "waiting"), 1);
    hf_drv_msg_free(m);
    /* From called too. */
    hf_drv_msg_free(ok(e, "s", STAFF, "call", "{}"));
    m = ok(e, "lee", GUEST, "cancel", targ(a, sizeof(a), t2, ""));
    assert_true(th_is(m->e.val, "from", "called"));
    hf_drv_msg_free(m);
    m = list(e, "", GUEST, 0);
    assert_int_equal(tickets(m)->via.array.size, 0);
    hf_drv_msg_free(m);
}

static void
test_cancel_by_the_wrong_guest_is_forbidden(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX], a[80];

    reg(e, "kim", "Kim", 2, NULL, t1);
    fails(e, "lee", GUEST, "cancel", targ(a, sizeof(a), t1, ""), "forbidden",
          t1);
    /* An anonymous caller is nobody's guest, even of anonymous tickets. */
    reg(e, "", "Anon", 2, NULL, t2);
    fails(e, "", GUEST, "cancel", targ(a, sizeof(a), t2, ""), "forbidden", t2);
    fails(e, "", GUEST, "cancel", targ(a, sizeof(a), t1, ""), "forbidden", t1);
    /* Still waiting. */
    {
        hf_drv_msg *m = list(e, "", GUEST, 0);
        assert_int_equal(th_num(m->e.val, "waiting"), 2);
        hf_drv_msg_free(m);
    }
}

static void
test_staff_cancels_any_ticket(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];

    reg(e, "kim", "Kim", 2, NULL, t1);
    hf_drv_msg_free(ok(e, "boss", STAFF, "cancel", targ(a, sizeof(a), t1, "")));
    fails(e, "boss", STAFF, "cancel", "{\"ticket\":\"20200101-9\"}",
          "not_found", NULL);
    fails(e, "boss", STAFF, "cancel", "{}", "bad_request", "'ticket'");
}

/* ------------------------------------------------------------------ */
/* move                                                                */

/* Asserts the board's waiting order is want[0..n-1]. */
static void
assert_order(struct th_eng *e, char (*want)[HF_STORE_ID_MAX], size_t n)
{
    hf_drv_msg *m = list(e, "", GUEST, 0);
    const msgpack_object *t = tickets(m);
    size_t k = 0;

    for (uint32_t i = 0; i < t->via.array.size; i++) {
        const msgpack_object *x = &t->via.array.ptr[i];
        if (!th_is(x, "status", "waiting"))
            continue;
        assert_true(k < n);
        if (!th_is(x, "ticket", want[k]))
            fail_msg("position %zu: wanted %s in %s", k + 1, want[k], m->json);
        assert_int_equal(th_num(x, "position"), k + 1);
        k++;
    }
    assert_int_equal(k, n);
    hf_drv_msg_free(m);
}

static void
test_move_reorders_and_emits_order_changed(void **state)
{
    struct th_eng *e = *state;
    char t[4][HF_STORE_ID_MAX], a[80], tmp[HF_STORE_ID_MAX];
    const msgpack_object *o;
    hf_drv_msg *m;

    for (int i = 0; i < 4; i++)
        reg(e, "g", "G", 2, NULL, t[i]);
    th_sub(e, 1, S, -1);
    m = ok(e, "s", STAFF, "move", targ(a, sizeof(a), t[3], "\"position\":1"));
    assert_int_equal(th_num(m->e.val, "position"), 1);
    hf_drv_msg_free(m);
    m = next_event(e, "order_changed");
    assert_true(th_is(m->e.val, "ticket", t[3]));
    assert_int_equal(th_num(m->e.val, "position"), 1);
    assert_int_equal(th_num(m->e.val, "waiting"), 4);
    o = th_field(m->e.val, "order");
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.size, 4);
    {
        const char *want[] = {t[3], t[0], t[1], t[2]};
        for (int i = 0; i < 4; i++) {
            const msgpack_object *x = &o->via.array.ptr[i];
            assert_int_equal(x->type, MSGPACK_OBJECT_STR);
            assert_int_equal(x->via.str.size, strlen(want[i]));
            assert_memory_equal(x->via.str.ptr, want[i], strlen(want[i]));
        }
    }
    hf_drv_msg_free(m);
    /* d a b c -> d b a c */
    hf_drv_msg_free(
        ok(e, "s", STAFF, "move", targ(a, sizeof(a), t[0], "\"position\":3")));
    m = next_event(e, "order_changed");
    hf_drv_msg_free(m);
    memcpy(tmp, t[0], sizeof(tmp));
    memcpy(t[0], t[3], sizeof(tmp));
    memcpy(t[3], t[2], sizeof(tmp));
    memcpy(t[2], tmp, sizeof(tmp));
    /* now t = d b a c */
    assert_order(e, t, 4);
    /* The next call takes the new head. */
    m = ok(e, "s", STAFF, "call", "{}");
    assert_true(th_is(m->e.val, "ticket", t[0]));
    hf_drv_msg_free(m);
}

static void
test_move_past_the_end_moves_to_the_end(void **state)
{
    struct th_eng *e = *state;
    char t[3][HF_STORE_ID_MAX], a[80], tmp[HF_STORE_ID_MAX];
    hf_drv_msg *m;

    for (int i = 0; i < 3; i++)
        reg(e, "g", "G", 2, NULL, t[i]);
    m = ok(e, "s", STAFF, "move", targ(a, sizeof(a), t[0], "\"position\":99"));
    assert_int_equal(th_num(m->e.val, "position"), 3);
    hf_drv_msg_free(m);
    memcpy(tmp, t[0], sizeof(tmp));
    memcpy(t[0], t[1], sizeof(tmp));
    memcpy(t[1], t[2], sizeof(tmp));
    memcpy(t[2], tmp, sizeof(tmp));
    assert_order(e, t, 3);
}

static void
test_move_to_the_same_position_changes_nothing(void **state)
{
    struct th_eng *e = *state;
    char t[2][HF_STORE_ID_MAX], a[80];
    hf_drv_msg *m;

    reg(e, "g", "G", 2, NULL, t[0]);
    reg(e, "g", "G", 2, NULL, t[1]);
    th_sub(e, 1, S, -1);
    m = ok(e, "s", STAFF, "move", targ(a, sizeof(a), t[1], "\"position\":2"));
    assert_int_equal(th_num(m->e.val, "position"), 2);
    hf_drv_msg_free(m);
    assert_true(th_quiet(e, 200));
    assert_order(e, t, 2);
}

static void
test_many_moves_keep_a_consistent_order(void **state)
{
    struct th_eng *e = *state;
    enum { N = 12, MOVES = 60 };
    char t[N][HF_STORE_ID_MAX], a[80], tmp[HF_STORE_ID_MAX];
    unsigned seed = 7;

    for (int i = 0; i < N; i++)
        reg(e, "g", "G", 2, NULL, t[i]);
    /* Alternate moves to the front (halving the head's rank until the
     * queue must be renumbered) with pseudo-random moves, mirrored in a
     * local array. */
    for (int k = 0; k < MOVES; k++) {
        size_t from, to;
        seed = seed * 1103515245u + 12345u;
        from = (seed >> 8) % N;
        to = k % 2 ? 0 : (seed >> 16) % N;
        memcpy(tmp, t[from], sizeof(tmp));
        snprintf(a, sizeof(a), "{\"ticket\":\"%s\",\"position\":%zu}", tmp,
                 to + 1);
        hf_drv_msg_free(ok(e, "s", STAFF, "move", a));
        if (from < to)
            memmove(t[from], t[from + 1], (to - from) * sizeof(t[0]));
        else
            memmove(t[to + 1], t[to], (from - to) * sizeof(t[0]));
        memcpy(t[to], tmp, sizeof(tmp));
    }
    assert_order(e, t, N);
}

static void
test_move_validates_and_needs_a_waiting_ticket(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], a[80];

    reg(e, "g", "G", 2, NULL, t1);
    fails(e, "s", STAFF, "move", targ(a, sizeof(a), t1, ""), "bad_request",
          "'position'");
    fails(e, "s", STAFF, "move", targ(a, sizeof(a), t1, "\"position\":0"),
          "bad_request", "'position'");
    fails(e, "s", STAFF, "move",
          targ(a, sizeof(a), t1, "\"position\":\"first\""), "bad_request",
          "'position'");
    fails(e, "s", STAFF, "move", "{\"ticket\":\"20991231-1\",\"position\":1}",
          "not_found", NULL);
    hf_drv_msg_free(ok(e, "s", STAFF, "call", "{}"));
    fails(e, "s", STAFF, "move", targ(a, sizeof(a), t1, "\"position\":1"),
          "conflict", "not waiting");
}

/* ------------------------------------------------------------------ */
/* durability                                                          */

static void
test_waiting_list_survives_a_restart(void **state)
{
    struct th_eng *e = *state;
    char t[3][HF_STORE_ID_MAX], a[80], want[HF_STORE_ID_MAX];
    hf_drv_msg *m;

    for (int i = 0; i < 3; i++)
        reg(e, "g", "G", 2, NULL, t[i]);
    hf_drv_msg_free(
        ok(e, "s", STAFF, "move", targ(a, sizeof(a), t[2], "\"position\":1")));
    th_restart(e);
    {
        char o[3][HF_STORE_ID_MAX];
        memcpy(o[0], t[2], sizeof(o[0]));
        memcpy(o[1], t[0], sizeof(o[0]));
        memcpy(o[2], t[1], sizeof(o[0]));
        assert_order(e, o, 3);
    }
    /* Numbering goes on where it was. */
    m = ok(e, "g", GUEST, "register", "{\"name\":\"D\",\"party\":1}");
    hf_store_ticket_id(want, today(), 4);
    assert_true(th_is(m->e.val, "ticket", want));
    assert_int_equal(th_num(m->e.val, "position"), 4);
    hf_drv_msg_free(m);
}

/* ------------------------------------------------------------------ */
/* configure: the store's local day                                    */

static int
teardown_clock(void **state)
{
    hf_clock_set(0);
    return teardown(state);
}

/* Stops the engine's clock at t. */
static void
clock_at(int64_t t)
{
    hf_clock_set(t);
}

/* The UTC time of the next local midnight of a store at offset off_min. */
static int64_t
next_local_midnight(int64_t off_min)
{
    int64_t local = hf_now_ms() + off_min * 60000;
    return (local / 86400000 + 1) * 86400000 - off_min * 60000;
}

/* Registers as guest g at store `to`; returns the ticket's number and
 * copies the id to ticket. */
static int64_t
reg_at(struct th_eng *e, const char *to, char *ticket)
{
    hf_drv_msg *m = th_call(e, "g", GUEST, to, "register",
                            "{\"name\":\"G\",\"party\":1}");
    int64_t no;
    if (!m->e.ok)
        fail_msg("register at %s: %s", to, m->json);
    str(m->e.val, "ticket", ticket, HF_STORE_ID_MAX);
    no = th_num(m->e.val, "number");
    hf_drv_msg_free(m);
    return no;
}

static void
test_numbers_restart_at_the_local_midnight(void **state)
{
    struct th_eng *e = *state;
    char t[HF_STORE_ID_MAX], want[HF_STORE_ID_MAX];
    int64_t midnight = next_local_midnight(540); /* Seoul, UTC+09:00 */
    uint32_t before = hf_store_day(midnight + 540 * 60000 - 60000);
    uint32_t after = hf_store_day(midnight + 540 * 60000 + 60000);
    hf_drv_msg *m;

    th_sub(e, 1, S, -1);
    m = ok(e, "staff", STAFF, "configure", "{\"utc_offset_min\":540}");
    assert_int_equal(th_num(m->e.val, "utc_offset_min"), 540);
    hf_drv_msg_free(m);
    th_expect_event(e, S, "configured", "\"utc_offset_min\":540");

    /* A minute before the local midnight: the local day, numbers go on.
     * "store/utc" (never configured) registers at the same moments. */
    clock_at(midnight - 60000);
    assert_int_equal(reg_at(e, S, t), 1);
    hf_store_ticket_id(want, before, 1);
    assert_string_equal(t, want);
    assert_int_equal(reg_at(e, S, t), 2);
    assert_int_equal(reg_at(e, "store/utc", t), 1);
    m = list(e, "g", GUEST, 0);
    assert_int_equal(th_num(m->e.val, "day"), before);
    assert_int_equal(th_num(m->e.val, "utc_offset_min"), 540);
    hf_drv_msg_free(m);

    /* A minute after it: a new day starts at 1 with the new date; the UTC
     * store, whose midnight is nine hours away, goes on counting. */
    clock_at(midnight + 60000);
    assert_int_equal(reg_at(e, S, t), 1);
    hf_store_ticket_id(want, after, 1);
    assert_string_equal(t, want);
    assert_int_equal(reg_at(e, "store/utc", t), 2);
    m = list(e, "g", GUEST, 0);
    assert_int_equal(th_num(m->e.val, "day"), after);
    assert_int_equal(th_num(m->e.val, "waiting"), 3); /* the queue stays */
    hf_drv_msg_free(m);
}

static void
test_a_smaller_offset_never_reuses_a_day(void **state)
{
    struct th_eng *e = *state;
    char t1[HF_STORE_ID_MAX], t2[HF_STORE_ID_MAX];
    int64_t midnight = next_local_midnight(540);

    /* Just after the Seoul midnight, then back to UTC, where it is still
     * the day before: that day's numbers are taken, so the store's day
     * stays where it was and numbering goes on. */
    hf_drv_msg_free(ok(e, "staff", STAFF, "configure",
                       "{\"utc_offset_min\":540}"));
    clock_at(midnight + 60000);
    assert_int_equal(reg_at(e, S, t1), 1);
    hf_drv_msg_free(ok(e, "staff", STAFF, "configure",
                       "{\"utc_offset_min\":0}"));
    assert_int_equal(reg_at(e, S, t2), 2);
    assert_memory_equal(t1, t2, 8); /* the same date */
}

static void
test_configure_validates_and_is_for_staff(void **state)
{
    struct th_eng *e = *state;

    fails(e, "staff", STAFF, "configure", "{}", "bad_request",
          "utc_offset_min");
    fails(e, "staff", STAFF, "configure", "{\"utc_offset_min\":841}",
          "bad_request", "utc_offset_min");
    fails(e, "staff", STAFF, "configure", "{\"utc_offset_min\":-721}",
          "bad_request", "utc_offset_min");
    fails(e, "staff", STAFF, "configure", "{\"utc_offset_min\":\"+9\"}",
          "bad_request", "utc_offset_min");
    fails(e, "kim", GUEST, "configure", "{\"utc_offset_min\":540}",
          "forbidden", NULL);
    hf_drv_msg_free(ok(e, "svc", HF_ROLE_SERVICE, "configure",
                       "{\"utc_offset_min\":-300}"));
    {
        hf_drv_msg *m = list(e, "g", GUEST, 0);
        assert_int_equal(th_int(m, "utc_offset_min"), -300);
        hf_drv_msg_free(m);
    }
}

static void
test_guest_sees_only_their_own_phone(void **state)
{
    struct th_eng *e = *state;
    char t[HF_STORE_ID_MAX], args[100];
    hf_drv_msg *m;
    const msgpack_object *v;

    hf_drv_msg_free(ok(e, "lee", GUEST, "register",
                       "{\"name\":\"Lee\",\"party\":4,"
                       "\"phone\":\"010-1234-5678\"}"));
    hf_drv_msg_free(ok(e, "kim", GUEST, "register",
                       "{\"name\":\"Kim\",\"party\":2,"
                       "\"phone\":\"010-9999-0000\"}"));
    th_sub(e, 1, S, -1);
    m = list(e, "lee", GUEST, 0);
    v = &tickets(m)->via.array.ptr[0];
    assert_true(th_is(v, "phone", "010-1234-5678"));
    assert_null(hf_arg(&tickets(m)->via.array.ptr[1], "phone"));
    str(v, "ticket", t, sizeof(t));
    hf_drv_msg_free(m);
    /* Anonymous callers are nobody's guest. */
    m = list(e, "", GUEST, 0);
    assert_null(hf_arg(&tickets(m)->via.array.ptr[0], "phone"));
    hf_drv_msg_free(m);
    /* Lee's own cancel answers with it; the event, public, does not. */
    m = ok(e, "lee", GUEST, "cancel", targ(args, sizeof(args), t, ""));
    assert_true(th_is(m->e.val, "phone", "010-1234-5678"));
    hf_drv_msg_free(m);
    m = next_event(e, "status_changed");
    assert_null(hf_arg(m->e.val, "phone"));
    hf_drv_msg_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_day_is_the_utc_day_of_now),
        cmocka_unit_test(test_ticket_numbers_restart_the_next_day),
        cmocka_unit_test(test_ticket_ids_parse_and_reject_garbage),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_register_many_numbers_and_positions_in_order),
        T(test_register_validates_arguments),
        T(test_register_emits_new_waiting),
        T(test_list_shows_phone_to_staff_only),
        T(test_call_without_ticket_calls_the_first_waiting),
        T(test_call_of_a_class_calls_the_first_waiting_of_that_class),
        T(test_call_with_nobody_waiting_is_not_found),
        T(test_call_a_given_ticket_out_of_order),
        T(test_seat_a_called_ticket),
        T(test_no_show_a_called_ticket),
        T(test_illegal_transitions_conflict),
        T(test_set_status_validates_arguments),
        T(test_staff_methods_need_admin_or_service),
        T(test_guest_cancels_own_ticket),
        T(test_cancel_by_the_wrong_guest_is_forbidden),
        T(test_staff_cancels_any_ticket),
        T(test_move_reorders_and_emits_order_changed),
        T(test_move_past_the_end_moves_to_the_end),
        T(test_move_to_the_same_position_changes_nothing),
        T(test_many_moves_keep_a_consistent_order),
        T(test_move_validates_and_needs_a_waiting_ticket),
        T(test_waiting_list_survives_a_restart),
        T(test_configure_validates_and_is_for_staff),
        T(test_guest_sees_only_their_own_phone),
#undef T
        cmocka_unit_test_setup_teardown(
            test_numbers_restart_at_the_local_midnight, setup, teardown_clock),
        cmocka_unit_test_setup_teardown(test_a_smaller_offset_never_reuses_a_day,
                                        setup, teardown_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
