/*
 * test_device.c - the device kind (reservations and live status), through
 * a real engine (tests/harness.h): every method, event and error; two
 * users racing for the same slots; heartbeat timeouts; reminders through
 * the outbox to user/<holder>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/actor.h"
#include "core/buf.h"
#include "client/driver.h"
#include "core/env.h"
#include "core/metrics.h"
#include "core/mpjson.h"
#include "tests/harness.h"

#define D      "device/ps5-03"
#define ADMIN  HF_ROLE_ADMIN
#define USER   HF_ROLE_USER
#define DEV    HF_ROLE_DEVICE
#define MIN_MS (60 * 1000)

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

static hf_drv_msg *
ok_to(struct th_eng *e, const char *sub, unsigned role, const char *to,
      const char *method, const char *args)
{
    hf_drv_msg *m = th_call(e, sub, role, to, method, args);
    if (!m->e.ok)
        fail_msg("%s.%s(%s) failed: %s: %.*s", to, method, args ? args : "",
                 m->code, (int)m->e.msg.len, (const char *)m->e.msg.data);
    return m;
}

static hf_drv_msg *
ok(struct th_eng *e, const char *sub, unsigned role, const char *method,
   const char *args)
{
    return ok_to(e, sub, role, D, method, args);
}

/* A call that must fail with code and a message containing `part`. */
static void
fails(struct th_eng *e, const char *sub, unsigned role, const char *method,
      const char *args, const char *code, const char *part)
{
    hf_drv_msg *m = th_call(e, sub, role, D, method, args);
    char msg[300];

    if (m->e.ok)
        fail_msg("%s(%s) succeeded: %s, wanted %s", method, args ? args : "",
                 m->json, code);
    snprintf(msg, sizeof(msg), "%.*s", (int)m->e.msg.len,
             (const char *)m->e.msg.data);
    if (strcmp(m->code, code) != 0)
        fail_msg("%s(%s): got %s (%s), wanted %s", method, args ? args : "",
                 m->code, msg, code);
    if (part && strstr(msg, part) == NULL)
        fail_msg("%s(%s): message '%s' does not mention '%s'", method,
                 args ? args : "", msg, part);
    hf_drv_msg_free(m);
}

static hf_drv_msg *
next_event(struct th_eng *e, const char *type)
{
    hf_drv_msg *m = th_event(e, D);
    if (m == NULL)
        fail_msg("no %s event", type);
    if (strcmp(m->type, type) != 0)
        fail_msg("got event %s %s, wanted %s", m->type, m->json, type);
    return m;
}

static void
reserve(struct th_eng *e, const char *user, const char *slot)
{
    char a[200];
    snprintf(a, sizeof(a), "{\"slot\":\"%s\",\"user\":\"%s\"}", slot, user);
    hf_drv_msg_free(ok(e, user, USER, "reserve", a));
}

static void
slot_call(struct th_eng *e, const char *sub, unsigned role, const char *method,
          const char *slot)
{
    char a[200];
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", slot);
    hf_drv_msg_free(ok(e, sub, role, method, a));
}

/* The reservation of slot in get's answer (NULL if none). m = get's
 * reply, kept by the caller. */
static const msgpack_object *
find_resv(const hf_drv_msg *m, const char *slot)
{
    const msgpack_object *r = th_field(m->e.val, "reservations");
    assert_int_equal(r->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < r->via.array.size; i++)
        if (th_is(&r->via.array.ptr[i], "slot", slot))
            return &r->via.array.ptr[i];
    return NULL;
}

/* An ISO-8601 time: ms since the epoch shown in the zone offset_min
 * minutes east of UTC ("Z" for 0). */
static void
iso(char *out, size_t cap, int64_t ms, int offset_min)
{
    time_t s = (time_t)((ms + (int64_t)offset_min * 60000) / 1000);
    struct tm tm;
    char base[40];

    gmtime_r(&s, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (offset_min == 0)
        snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
    else
        snprintf(out, cap, "%s.%03d%c%02d:%02d", base, (int)(ms % 1000),
                 offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
                 abs(offset_min) % 60);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls get until slot's reservation has reminded_at, up to ms. */
static int64_t
wait_reminded(struct th_eng *e, const char *slot, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        hf_drv_msg *m = ok(e, "admin", ADMIN, "get", NULL);
        const msgpack_object *r = find_resv(m, slot);
        int64_t at = r ? th_num(r, "reminded_at") : -1;
        hf_drv_msg_free(m);
        if (at > 0)
            return at;
        sleep_ms(50);
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* pure: ISO-8601                                                      */

static void
test_iso8601_times_parse_with_a_zone_only(void **state)
{
    static const char *const bad[] = {
        "18:00",
        "2026-11-21",
        "2026-11-21T18:00:00", /* no zone: names no instant */
        "2026-11-21 18:00:00Z",
        "2026-02-29T18:00:00Z", /* not a leap year */
        "2026-13-01T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21T18:60:00Z",
        "2026-11-21T18:00:00.Z",
        "2026-11-21T18:00:00+9",
        "2026-11-21T18:00:00Zjunk",
        "2026-11-21T18:00:00+09:00x",
    };
    int64_t ms;
    (void)state;

    assert_int_equal(hf_util_iso8601_ms("2026-11-21T18:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 1795284000000LL);
    assert_int_equal(hf_util_iso8601_ms("2026-11-21T18:00Z", 17, &ms), 0);
    assert_int_equal(ms, 1795284000000LL);
    assert_int_equal(hf_util_iso8601_ms("2026-11-22T03:00:00+09:00", 25, &ms),
                     0);
    assert_int_equal(ms, 1795284000000LL);
    assert_int_equal(hf_util_iso8601_ms("2026-11-21T13:00:00-0500", 24, &ms),
                     0);
    assert_int_equal(ms, 1795284000000LL);
    assert_int_equal(hf_util_iso8601_ms("2026-11-21T18:00:00.25Z", 23, &ms), 0);
    assert_int_equal(ms, 1795284000250LL);
    assert_int_equal(hf_util_iso8601_ms("2024-02-29T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 1709164800000LL);
    assert_int_equal(hf_util_iso8601_ms("1970-01-01T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hf_util_iso8601_ms(bad[i], strlen(bad[i]), &ms) == 0)
            fail_msg("'%s' parsed as a time", bad[i]);
}

/* ------------------------------------------------------------------ */
/* reservations                                                        */

static void
test_reserve_creates_a_pending_reservation(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    th_sub(e, 1, D, -1);
    m = ok(e, "kim", USER, "reserve",
           "{\"slot\":\"2026-11-21T18:00:00Z\",\"user\":\"kim\","
           "\"note\":\"FIFA night\"}");
    assert_true(th_is(m->e.val, "slot", "2026-11-21T18:00:00Z"));
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "state", "pending"));
    assert_true(th_is(m->e.val, "note", "FIFA night"));
    assert_true(th_num(m->e.val, "created_at") > 0);
    hf_drv_msg_free(m);
    m = next_event(e, "reservation_created");
    assert_true(th_is(m->e.val, "slot", "2026-11-21T18:00:00Z"));
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "state", "pending"));
    hf_drv_msg_free(m);
}

static void
test_reserve_same_slot_twice_same_user_gets_the_same_answer(void **state)
{
    struct th_eng *e = *state;
    const char *a = "{\"slot\":\"18:00\",\"user\":\"kim\",\"note\":\"n\"}";
    hf_drv_msg *m1, *m2;

    th_sub(e, 1, D, -1);
    m1 = ok(e, "kim", USER, "reserve", a);
    hf_drv_msg_free(next_event(e, "reservation_created"));
    m2 = ok(e, "kim", USER, "reserve", a);
    assert_string_equal(m1->json, m2->json);
    hf_drv_msg_free(m2);
    /* Another note changes nothing either. */
    m2 = ok(e, "kim", USER, "reserve", "{\"slot\":\"18:00\"}");
    assert_string_equal(m1->json, m2->json);
    hf_drv_msg_free(m2);
    hf_drv_msg_free(m1);
    assert_true(th_quiet(e, 200));
}

static void
test_reserve_slot_held_by_another_user_conflicts(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    reserve(e, "kim", "18:00");
    fails(e, "lee", USER, "reserve", "{\"slot\":\"18:00\",\"user\":\"lee\"}",
          "conflict", "slot 18:00 is held");
    /* Not even an admin can book a held slot for someone else. */
    fails(e, "boss", ADMIN, "reserve", "{\"slot\":\"18:00\",\"user\":\"lee\"}",
          "conflict", "slot 18:00 is held");
    m = ok(e, "boss", ADMIN, "get", NULL);
    assert_true(th_is(find_resv(m, "18:00"), "user", "kim"));
    hf_drv_msg_free(m);
}

static void
test_reserve_without_user_reserves_for_the_caller(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m = ok(e, "kim", USER, "reserve", "{\"slot\":\"19:00\"}");
    assert_true(th_is(m->e.val, "user", "kim"));
    hf_drv_msg_free(m);
    /* Anonymous and no user: nobody to hold it. */
    fails(e, "", USER, "reserve", "{\"slot\":\"20:00\"}", "bad_request",
          "'user'");
}

static void
test_user_may_reserve_only_for_itself(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    fails(e, "kim", USER, "reserve", "{\"slot\":\"18:00\",\"user\":\"lee\"}",
          "forbidden", NULL);
    fails(e, "dev", DEV, "reserve", "{\"slot\":\"18:00\",\"user\":\"lee\"}",
          "forbidden", NULL);
    m = ok(e, "boss", ADMIN, "reserve",
           "{\"slot\":\"18:00\",\"user\":\"lee\"}");
    assert_true(th_is(m->e.val, "user", "lee"));
    hf_drv_msg_free(m);
    m = ok(e, "backend", HF_ROLE_SERVICE, "reserve",
           "{\"slot\":\"19:00\",\"user\":\"park\"}");
    assert_true(th_is(m->e.val, "user", "park"));
    hf_drv_msg_free(m);
}

static void
test_reserve_validates_arguments(void **state)
{
    struct th_eng *e = *state;
    char a[400], big[300];

    fails(e, "kim", USER, "reserve", "{}", "bad_request", "'slot'");
    fails(e, "kim", USER, "reserve", "{\"slot\":18}", "bad_request", "'slot'");
    fails(e, "kim", USER, "reserve", "{\"slot\":\"\"}", "bad_request",
          "'slot'");
    fails(e, "kim", USER, "reserve", "{\"slot\":\"a\\tb\"}", "bad_request",
          "'slot'");
    memset(big, 's', 61);
    big[61] = '\0';
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", big);
    fails(e, "kim", USER, "reserve", a, "bad_request", "'slot'");
    memset(big, 'n', 257);
    big[257] = '\0';
    snprintf(a, sizeof(a), "{\"slot\":\"x\",\"note\":\"%s\"}", big);
    fails(e, "kim", USER, "reserve", a, "bad_request", "'note'");
    fails(e, "boss", ADMIN, "reserve", "{\"slot\":\"x\",\"user\":\"kim lee\"}",
          "bad_request", "'user'");
    fails(e, "boss", ADMIN, "reserve", "{\"slot\":\"x\",\"user\":5}",
          "bad_request", "'user'");
    {
        hf_drv_msg *m = ok(e, "boss", ADMIN, "get", NULL);
        assert_int_equal(th_field(m->e.val, "reservations")->via.array.size, 0);
        hf_drv_msg_free(m);
    }
}

/* Two users, two drivers, two threads: for each of N slots both threads
 * meet at a barrier and fire reserve for that slot at once; the replies
 * are read after the last round, so every request is in flight. */
enum { RACE_N = 120 };

struct racer {
    hf_drv *d;
    const char *user;
    pthread_barrier_t *go;
    int ok[RACE_N], conflict[RACE_N];
    int other, got;
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    hf_buf args[RACE_N];
    hf_drv_msg *m;

    for (int i = 0; i < RACE_N; i++) {
        char json[100];
        snprintf(json, sizeof(json), "{\"slot\":\"s%03d\",\"user\":\"%s\"}", i,
                 r->user);
        args[i] = (hf_buf){0};
        if (hf_json_to_mp(json, strlen(json), &args[i]) != 0)
            return NULL;
    }
    for (int i = 0; i < RACE_N; i++) {
        hf_env env = {.op = HF_OP_CALL, .id = (uint64_t)i + 1, .has_conn = 1};
        env.to = (hf_slice){D, strlen(D)};
        env.method = (hf_slice){"reserve", 7};
        env.sub = (hf_slice){r->user, strlen(r->user)};
        env.role = USER;
        pthread_barrier_wait(r->go);
        hf_drv_add(r->d, &env, args[i].data, args[i].len);
        hf_drv_flush(r->d);
    }
    for (int i = 0; i < RACE_N; i++)
        hf_buf_free(&args[i]);
    while (r->got < RACE_N && hf_drv_recv(r->d, TH_WAIT, &m) == 0) {
        if (m->e.op == HF_OUT_REPLY && m->e.id >= 1 && m->e.id <= RACE_N) {
            int i = (int)m->e.id - 1;
            if (m->e.ok)
                r->ok[i]++;
            else if (strcmp(m->code, "conflict") == 0)
                r->conflict[i]++;
            else
                r->other++;
            r->got++;
        }
        hf_drv_msg_free(m);
    }
    return NULL;
}

static void
assert_holders(struct th_eng *e, const struct racer *a, const struct racer *b)
{
    hf_drv_msg *m = ok(e, "boss", ADMIN, "get", NULL);
    assert_int_equal(th_field(m->e.val, "reservations")->via.array.size,
                     RACE_N);
    for (int i = 0; i < RACE_N; i++) {
        char slot[16];
        const msgpack_object *r;
        snprintf(slot, sizeof(slot), "s%03d", i);
        r = find_resv(m, slot);
        assert_non_null(r);
        assert_true(th_is(r, "user", a->ok[i] ? a->user : b->user));
    }
    hf_drv_msg_free(m);
}

static void
test_two_users_racing_for_one_slot_exactly_one_wins(void **state)
{
    struct th_eng *e = *state;
    static struct racer a, b;
    pthread_barrier_t go;
    pthread_t ta, tb;
    hf_drv *d2;
    int wins_a = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(hf_drv_open(e->host, &d2), 0);
    pthread_barrier_init(&go, NULL, 2);
    a = (struct racer){.d = e->drv, .user = "alice", .go = &go};
    b = (struct racer){.d = d2, .user = "bob", .go = &go};
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&go);
    hf_drv_close(d2);

    assert_int_equal(a.got, RACE_N);
    assert_int_equal(b.got, RACE_N);
    assert_int_equal(a.other + b.other, 0);
    for (int i = 0; i < RACE_N; i++) {
        /* Exactly one winner per slot; the loser was told conflict. */
        assert_int_equal(a.ok[i] + b.ok[i], 1);
        assert_int_equal(a.conflict[i] + b.conflict[i], 1);
        wins_a += a.ok[i];
    }
    print_message("alice won %d of %d slots, bob %d\n", wins_a, RACE_N,
                  RACE_N - wins_a);
    assert_holders(e, &a, &b);
    /* Acknowledged bookings survive a restart, with the same holders. */
    th_restart(e);
    assert_holders(e, &a, &b);
    fails(e, "mallory", USER, "reserve", "{\"slot\":\"s000\"}", "conflict",
          "held");
}

static void
test_approve_confirms_and_emits(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    reserve(e, "kim", "18:00");
    th_sub(e, 1, D, -1);
    m = ok(e, "boss", ADMIN, "approve", "{\"slot\":\"18:00\"}");
    assert_true(th_is(m->e.val, "state", "confirmed"));
    assert_true(th_num(m->e.val, "approved_at") > 0);
    /* "18:00" is no ISO-8601 time: no reminder. */
    assert_int_equal(th_num(m->e.val, "remind_at"), -1);
    hf_drv_msg_free(m);
    m = next_event(e, "reservation_approved");
    assert_true(th_is(m->e.val, "slot", "18:00"));
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "state", "confirmed"));
    hf_drv_msg_free(m);
    /* The holder reserving again gets the confirmed reservation. */
    m = ok(e, "kim", USER, "reserve", "{\"slot\":\"18:00\"}");
    assert_true(th_is(m->e.val, "state", "confirmed"));
    hf_drv_msg_free(m);
}

static void
test_approve_errors(void **state)
{
    struct th_eng *e = *state;

    reserve(e, "kim", "18:00");
    th_err(e, "kim", USER, D, "approve", "{\"slot\":\"18:00\"}", "forbidden");
    th_err(e, "svc", HF_ROLE_SERVICE, D, "approve", "{\"slot\":\"18:00\"}",
           "forbidden");
    fails(e, "boss", ADMIN, "approve", "{\"slot\":\"19:00\"}", "not_found",
          "19:00");
    fails(e, "boss", ADMIN, "approve", "{}", "bad_request", "'slot'");
    slot_call(e, "boss", ADMIN, "approve", "18:00");
    fails(e, "boss", ADMIN, "approve", "{\"slot\":\"18:00\"}", "conflict",
          "already confirmed");
}

static void
test_reject_frees_the_slot(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    reserve(e, "kim", "18:00");
    th_sub(e, 1, D, -1);
    m = ok(e, "boss", ADMIN, "reject",
           "{\"slot\":\"18:00\",\"reason\":\"maintenance\"}");
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "reason", "maintenance"));
    hf_drv_msg_free(m);
    m = next_event(e, "reservation_rejected");
    assert_true(th_is(m->e.val, "slot", "18:00"));
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "state", "rejected"));
    assert_true(th_is(m->e.val, "reason", "maintenance"));
    hf_drv_msg_free(m);
    /* Free again: another user takes it. */
    reserve(e, "lee", "18:00");
    /* A confirmed slot can be rejected too. */
    slot_call(e, "boss", ADMIN, "approve", "18:00");
    slot_call(e, "boss", ADMIN, "reject", "18:00");
    fails(e, "boss", ADMIN, "reject", "{\"slot\":\"18:00\"}", "not_found",
          NULL);
    th_err(e, "kim", USER, D, "reject", "{\"slot\":\"18:00\"}", "forbidden");
    fails(e, "boss", ADMIN, "reject", "{\"slot\":\"x\",\"reason\":3}",
          "bad_request", "'reason'");
}

static void
test_cancel_by_the_holder_frees_the_slot(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    reserve(e, "kim", "18:00");
    slot_call(e, "boss", ADMIN, "approve", "18:00");
    th_sub(e, 1, D, -1);
    slot_call(e, "kim", USER, "cancel", "18:00");
    m = next_event(e, "reservation_cancelled");
    assert_true(th_is(m->e.val, "slot", "18:00"));
    assert_true(th_is(m->e.val, "user", "kim"));
    assert_true(th_is(m->e.val, "state", "cancelled"));
    assert_true(th_is(m->e.val, "by", "kim"));
    hf_drv_msg_free(m);
    reserve(e, "lee", "18:00");
}

static void
test_cancel_by_another_user_is_forbidden(void **state)
{
    struct th_eng *e = *state;

    reserve(e, "kim", "18:00");
    fails(e, "lee", USER, "cancel", "{\"slot\":\"18:00\"}", "forbidden",
          "18:00");
    fails(e, "svc", HF_ROLE_SERVICE, "cancel", "{\"slot\":\"18:00\"}",
          "forbidden", NULL);
    fails(e, "lee", USER, "cancel", "{\"slot\":\"19:00\"}", "not_found",
          "19:00");
    fails(e, "lee", USER, "cancel", "{}", "bad_request", "'slot'");
    /* An admin may. */
    slot_call(e, "boss", ADMIN, "cancel", "18:00");
}

/* ------------------------------------------------------------------ */
/* status                                                              */

static void
test_get_of_a_new_device(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m = ok(e, "anyone", USER, "get", NULL);

    assert_true(th_is(m->e.val, "status", "offline"));
    assert_int_equal(th_num(m->e.val, "last_seen"), -1);
    assert_int_equal(th_num(m->e.val, "heartbeat_timeout_s"), 30);
    assert_int_equal(th_field(m->e.val, "meta")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(th_field(m->e.val, "reservations")->via.array.size, 0);
    hf_drv_msg_free(m);
}

static void
test_get_lists_reservations_by_slot(void **state)
{
    struct th_eng *e = *state;
    const msgpack_object *r;
    hf_drv_msg *m;

    reserve(e, "kim", "c");
    reserve(e, "lee", "a");
    reserve(e, "park", "b");
    slot_call(e, "boss", ADMIN, "approve", "b");
    m = ok(e, "anyone", USER, "get", NULL);
    r = th_field(m->e.val, "reservations");
    assert_int_equal(r->via.array.size, 3);
    assert_true(th_is(&r->via.array.ptr[0], "slot", "a"));
    assert_true(th_is(&r->via.array.ptr[0], "user", "lee"));
    assert_true(th_is(&r->via.array.ptr[0], "state", "pending"));
    assert_true(th_is(&r->via.array.ptr[1], "slot", "b"));
    assert_true(th_is(&r->via.array.ptr[1], "state", "confirmed"));
    assert_true(th_is(&r->via.array.ptr[2], "slot", "c"));
    assert_true(th_num(&r->via.array.ptr[2], "created_at") > 0);
    assert_true(th_is(&r->via.array.ptr[2], "note", ""));
    hf_drv_msg_free(m);
}

/* get {limit, after} pages the reservations in slot order. */
static void
test_get_pages_reservations(void **state)
{
    struct th_eng *e = *state;
    static const char *const slots[] = {"s1", "s2", "s3", "s4", "s5"};
    const msgpack_object *r;
    hf_drv_msg *m;

    for (size_t i = 0; i < 5; i++)
        reserve(e, "kim", slots[i]);
    m = ok(e, "anyone", USER, "get", "{\"limit\":2}");
    r = th_field(m->e.val, "reservations");
    assert_int_equal(r->via.array.size, 2);
    assert_true(th_is(&r->via.array.ptr[0], "slot", "s1"));
    assert_true(th_is(&r->via.array.ptr[1], "slot", "s2"));
    assert_true(th_field(m->e.val, "more")->via.boolean);
    assert_true(th_is(m->e.val, "status", "offline"));
    hf_drv_msg_free(m);
    m = ok(e, "anyone", USER, "get", "{\"limit\":2,\"after\":\"s2\"}");
    r = th_field(m->e.val, "reservations");
    assert_int_equal(r->via.array.size, 2);
    assert_true(th_is(&r->via.array.ptr[0], "slot", "s3"));
    assert_true(th_is(&r->via.array.ptr[1], "slot", "s4"));
    assert_true(th_field(m->e.val, "more")->via.boolean);
    hf_drv_msg_free(m);
    m = ok(e, "anyone", USER, "get", "{\"limit\":2,\"after\":\"s4\"}");
    r = th_field(m->e.val, "reservations");
    assert_int_equal(r->via.array.size, 1);
    assert_true(th_is(&r->via.array.ptr[0], "slot", "s5"));
    assert_false(th_field(m->e.val, "more")->via.boolean);
    hf_drv_msg_free(m);
    /* after alone: the rest, and no more field (as without paging) */
    m = ok(e, "anyone", USER, "get", "{\"after\":\"s3\"}");
    assert_int_equal(th_field(m->e.val, "reservations")->via.array.size, 2);
    assert_null(hf_arg(m->e.val, "more"));
    hf_drv_msg_free(m);
    /* bad paging arguments are named */
    th_err(e, "anyone", USER, D, "get", "{\"limit\":0}", "bad_request");
    th_err(e, "anyone", USER, D, "get", "{\"limit\":1001}", "bad_request");
}

static void
test_status_events_only_when_the_status_changes(void **state)
{
    struct th_eng *e = *state;
    static const char *const steps[][2] = {
        {"in_use", "device_in_use"},   {"available", "device_available"},
        {"fault", "device_fault"},     {"online", "device_online"},
        {"offline", "device_offline"},
    };
    const char *prev = "offline";
    hf_drv_msg *m;
    char a[100];

    th_sub(e, 1, D, -1);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        snprintf(a, sizeof(a), "{\"status\":\"%s\"}", steps[i][0]);
        m = ok(e, "ps5", DEV, "report", a);
        assert_true(th_field(m->e.val, "changed")->via.boolean);
        hf_drv_msg_free(m);
        m = next_event(e, steps[i][1]);
        assert_true(th_is(m->e.val, "status", steps[i][0]));
        assert_true(th_is(m->e.val, "previous", prev));
        assert_true(th_num(m->e.val, "last_seen") > 0);
        hf_drv_msg_free(m);
        /* The same status again: no event. */
        m = ok(e, "ps5", DEV, "report", a);
        assert_false(th_field(m->e.val, "changed")->via.boolean);
        hf_drv_msg_free(m);
        assert_true(th_quiet(e, 100));
        prev = steps[i][0];
    }
}

static void
test_report_keeps_meta_and_validates(void **state)
{
    struct th_eng *e = *state;
    char *big = malloc(5000), *a = malloc(5100);
    hf_drv_msg *m;

    m = ok(e, "ps5", DEV, "report",
           "{\"status\":\"in_use\",\"meta\":{\"player\":\"kim\",\"game\":"
           "\"fifa\"}}");
    hf_drv_msg_free(m);
    /* Without meta, the last one stays. */
    hf_drv_msg_free(ok(e, "ps5", DEV, "report", "{\"status\":\"in_use\"}"));
    m = ok(e, "x", USER, "get", NULL);
    assert_true(th_is(m->e.val, "status", "in_use"));
    assert_true(th_is(th_field(m->e.val, "meta"), "player", "kim"));
    assert_true(th_is(th_field(m->e.val, "meta"), "game", "fifa"));
    hf_drv_msg_free(m);

    th_err(e, "kim", USER, D, "report", "{\"status\":\"online\"}", "forbidden");
    th_err(e, "kim", USER, D, "heartbeat", NULL, "forbidden");
    fails(e, "ps5", DEV, "report", "{\"status\":\"busy\"}", "bad_request",
          "'status'");
    fails(e, "ps5", DEV, "report", "{}", "bad_request", "'status'");
    memset(big, 'm', 4999);
    big[4999] = '\0';
    snprintf(a, 5100, "{\"status\":\"online\",\"meta\":\"%s\"}", big);
    fails(e, "ps5", DEV, "report", a, "bad_request", "'meta'");
    free(big);
    free(a);
}

static void
test_heartbeat_brings_an_offline_device_online(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    th_sub(e, 1, D, -1);
    m = ok(e, "ps5", DEV, "heartbeat", NULL);
    assert_true(th_is(m->e.val, "status", "online"));
    hf_drv_msg_free(m);
    m = next_event(e, "device_online");
    assert_true(th_is(m->e.val, "previous", "offline"));
    hf_drv_msg_free(m);
    /* Alive and well: heartbeats change nothing. */
    hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL));
    assert_true(th_quiet(e, 100));
    /* A heartbeat keeps a busy device busy. */
    hf_drv_msg_free(ok(e, "ps5", DEV, "report", "{\"status\":\"in_use\"}"));
    hf_drv_msg_free(next_event(e, "device_in_use"));
    m = ok(e, "ps5", DEV, "heartbeat", NULL);
    assert_true(th_is(m->e.val, "status", "in_use"));
    hf_drv_msg_free(m);
    assert_true(th_quiet(e, 100));
}

static void
test_heartbeat_timeout_marks_the_device_offline(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;
    int64_t t0;

    hf_drv_msg_free(
        ok(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":1}"));
    th_sub(e, 1, D, -1);
    t0 = hf_now_ms();
    hf_drv_msg_free(ok(e, "ps5", DEV, "report", "{\"status\":\"in_use\"}"));
    hf_drv_msg_free(next_event(e, "device_in_use"));
    m = next_event(e, "device_offline");
    assert_true(hf_now_ms() - t0 >= 900);
    assert_true(th_is(m->e.val, "status", "offline"));
    assert_true(th_is(m->e.val, "previous", "in_use"));
    assert_true(th_is(m->e.val, "reason", "heartbeat_timeout"));
    hf_drv_msg_free(m);
    m = ok(e, "x", USER, "get", NULL);
    assert_true(th_is(m->e.val, "status", "offline"));
    assert_true(th_num(m->e.val, "last_seen") >= t0);
    hf_drv_msg_free(m);
    /* And a heartbeat brings it back. */
    hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL));
    hf_drv_msg_free(next_event(e, "device_online"));
}

static void
test_heartbeats_keep_the_device_online(void **state)
{
    struct th_eng *e = *state;

    hf_drv_msg_free(
        ok(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":1}"));
    th_sub(e, 1, D, -1);
    hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL));
    hf_drv_msg_free(next_event(e, "device_online"));
    /* 1.2 s of heartbeats 300 ms apart outlive the 1 s timeout. */
    for (int i = 0; i < 4; i++) {
        sleep_ms(300);
        hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL));
    }
    assert_true(th_quiet(e, 100));
    /* Silence: offline. */
    hf_drv_msg_free(next_event(e, "device_offline"));
}

static void
test_configure_validates_and_needs_admin(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    th_err(e, "ps5", DEV, D, "configure", "{\"heartbeat_timeout_s\":5}",
           "forbidden");
    th_err(e, "kim", USER, D, "configure", "{\"heartbeat_timeout_s\":5}",
           "forbidden");
    fails(e, "boss", ADMIN, "configure", "{}", "bad_request",
          "'heartbeat_timeout_s'");
    fails(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":0}",
          "bad_request", "'heartbeat_timeout_s'");
    fails(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":\"5\"}",
          "bad_request", "'heartbeat_timeout_s'");
    m = ok(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":90}");
    assert_int_equal(th_num(m->e.val, "heartbeat_timeout_s"), 90);
    hf_drv_msg_free(m);
    m = ok(e, "x", USER, "get", NULL);
    assert_int_equal(th_num(m->e.val, "heartbeat_timeout_s"), 90);
    hf_drv_msg_free(m);
}

static void
test_shorter_timeout_applies_to_a_live_device_at_once(void **state)
{
    struct th_eng *e = *state;

    th_sub(e, 1, D, -1);
    hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL)); /* 30 s */
    hf_drv_msg_free(next_event(e, "device_online"));
    hf_drv_msg_free(
        ok(e, "boss", ADMIN, "configure", "{\"heartbeat_timeout_s\":1}"));
    hf_drv_msg_free(next_event(e, "device_offline"));
}

/* ------------------------------------------------------------------ */
/* reminders                                                           */

static void
test_reminder_time_follows_the_slot(void **state)
{
    struct th_eng *e = *state;
    int64_t now = hf_now_ms(), t = now + 60 * MIN_MS;
    char s1[64], s2[64], s3[64], a[120];
    hf_drv_msg *m;

    t -= t % 1000;
    iso(s1, sizeof(s1), t, 0);                /* in an hour, UTC */
    iso(s2, sizeof(s2), t, 540);              /* the same instant at +09:00 */
    iso(s3, sizeof(s3), now - 5 * MIN_MS, 0); /* already started */
    reserve(e, "kim", s1);
    reserve(e, "lee", s2);
    reserve(e, "park", s3);
    reserve(e, "choi", "2026-11-21T18:00:00"); /* no zone */
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", s1);
    m = ok(e, "boss", ADMIN, "approve", a);
    assert_int_equal(th_num(m->e.val, "remind_at"), t - 10 * MIN_MS);
    hf_drv_msg_free(m);
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", s2);
    m = ok(e, "boss", ADMIN, "approve", a);
    assert_int_equal(th_num(m->e.val, "remind_at"), t - 10 * MIN_MS);
    hf_drv_msg_free(m);
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", s3);
    m = ok(e, "boss", ADMIN, "approve", a);
    assert_int_equal(th_num(m->e.val, "remind_at"), -1);
    hf_drv_msg_free(m);
    m = ok(e, "boss", ADMIN, "approve", "{\"slot\":\"2026-11-21T18:00:00\"}");
    assert_int_equal(th_num(m->e.val, "remind_at"), -1);
    hf_drv_msg_free(m);
}

/* The user kind is written separately. Until it lands, notify to
 * user/<holder> is not_found and the engine drops the outbox message with
 * a warning: the inbox half of the next test is then skipped (said so on
 * stdout) and only the sending side is checked. */
static int
user_kind_ready(void)
{
    return hf_kind_user.nmethods > 0;
}

/* The inbox of user/<u>: waits up to ms for `want` unread items. */
static int64_t
inbox_unread(struct th_eng *e, const char *u, int64_t want, int ms)
{
    char to[64];
    int64_t n = -1;
    snprintf(to, sizeof(to), "user/%s", u);
    for (int waited = 0; waited <= ms; waited += 50) {
        hf_drv_msg *m = ok_to(e, u, TH_ALL_ROLES, to, "unread", NULL);
        n = th_num(m->e.val, "count");
        hf_drv_msg_free(m);
        if (n >= want)
            break;
        sleep_ms(50);
    }
    return n;
}

/* Waits up to ms for the outbox to have sent at least want messages since
 * sent0; returns how many it has. */
static uint64_t
wait_sent(uint64_t sent0, uint64_t want, int ms)
{
    for (int waited = 0; waited < ms && HF_GET(outbox_sent) - sent0 < want;
         waited += 50)
        sleep_ms(50);
    return HF_GET(outbox_sent) - sent0;
}

static void
test_reminder_reaches_the_user_inbox_exactly_once(void **state)
{
    struct th_eng *e = *state;
    int64_t t = hf_now_ms() + 10 * MIN_MS + 800, at;
    uint64_t sent0 = HF_GET(outbox_sent);
    char slot[64], a[120];
    hf_drv_msg *m;

    iso(slot, sizeof(slot), t, 0);
    reserve(e, "alice", slot);
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", slot);
    m = ok(e, "boss", ADMIN, "approve", a);
    assert_int_equal(th_num(m->e.val, "remind_at"), t - 10 * MIN_MS);
    hf_drv_msg_free(m);
    /* The approval's own notice goes out at once; the reminder not before
     * its time (checked only while it is surely not yet due, so a slow
     * machine does not fail it). */
    sleep_ms(200);
    if (hf_now_ms() < t - 10 * MIN_MS - 50)
        assert_true(HF_GET(outbox_sent) - sent0 <= 1);
    at = wait_reminded(e, slot, TH_WAIT);
    assert_true(at >= t - 10 * MIN_MS);
    assert_int_equal(wait_sent(sent0, 2, TH_WAIT), 2);
    sleep_ms(300);
    assert_int_equal(HF_GET(outbox_sent) - sent0, 2);
    /* A restart sends nothing again. */
    th_restart(e);
    sleep_ms(300);
    assert_int_equal(HF_GET(outbox_sent) - sent0, 2);
    assert_int_equal(wait_reminded(e, slot, 0), at);

    if (!user_kind_ready()) {
        print_message("NOTE: user kind not implemented yet: inbox check of "
                      "%s skipped (expected to pass once it lands)\n",
                      __func__);
        return;
    }
    /* The approval notice, then the reminder: one each. */
    assert_int_equal(inbox_unread(e, "alice", 2, TH_WAIT), 2);
    sleep_ms(300);
    assert_int_equal(inbox_unread(e, "alice", 2, 0), 2);
    m = ok_to(e, "alice", TH_ALL_ROLES, "user/alice", "list", NULL);
    {
        const msgpack_object *items = th_field(m->e.val, "items"), *it;
        assert_int_equal(items->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(items->via.array.size, 2);
        assert_true(th_is(&items->via.array.ptr[1], "type",
                          "reservation_approved"));
        it = &items->via.array.ptr[0];
        assert_true(th_is(it, "type", "reminder"));
        assert_true(th_is(it, "priority", "high"));
        assert_true(th_is(it, "title", "Reservation reminder"));
        assert_int_equal(th_field(it, "message")->type, MSGPACK_OBJECT_STR);
    }
    hf_drv_msg_free(m);
}

static void
test_reminder_at_once_when_approved_within_ten_minutes(void **state)
{
    struct th_eng *e = *state;
    int64_t now = hf_now_ms(), t = now + 5 * MIN_MS;
    uint64_t sent0 = HF_GET(outbox_sent);
    char slot[64], a[120];
    hf_drv_msg *m;

    iso(slot, sizeof(slot), t, -300); /* -05:00 */
    reserve(e, "bob", slot);
    snprintf(a, sizeof(a), "{\"slot\":\"%s\"}", slot);
    m = ok(e, "boss", ADMIN, "approve", a);
    assert_true(th_num(m->e.val, "remind_at") >= now);
    assert_true(th_num(m->e.val, "remind_at") < t - 4 * MIN_MS);
    hf_drv_msg_free(m);
    assert_true(wait_reminded(e, slot, TH_WAIT) > 0);
    /* The approval notice and the reminder. */
    assert_int_equal(wait_sent(sent0, 2, TH_WAIT), 2);
    sleep_ms(200);
    assert_int_equal(HF_GET(outbox_sent) - sent0, 2);
    if (user_kind_ready())
        assert_int_equal(inbox_unread(e, "bob", 2, TH_WAIT), 2);
}

static void
test_cancel_and_reject_remove_the_reminder(void **state)
{
    struct th_eng *e = *state;
    int64_t t = hf_now_ms() + 10 * MIN_MS + 500;
    uint64_t sent0 = HF_GET(outbox_sent), fired0 = HF_GET(alarms_fired);
    char s1[64], s2[64];

    iso(s1, sizeof(s1), t, 0);
    iso(s2, sizeof(s2), t, 60);
    reserve(e, "kim", s1);
    reserve(e, "lee", s2);
    slot_call(e, "boss", ADMIN, "approve", s1);
    slot_call(e, "boss", ADMIN, "approve", s2);
    slot_call(e, "kim", USER, "cancel", s1);
    slot_call(e, "boss", ADMIN, "reject", s2);
    sleep_ms(1000);
    assert_int_equal(HF_GET(alarms_fired) - fired0, 0);
    /* Two approval notices and lee's rejection; no reminder, and nothing
     * for kim's own cancel. */
    assert_int_equal(HF_GET(outbox_sent) - sent0, 3);
}

/* The inbox item of u whose "slot" is slot (NULL if none); m = list's
 * reply, kept by the caller. */
static const msgpack_object *
inbox_item(const hf_drv_msg *m, const char *slot)
{
    const msgpack_object *items = th_field(m->e.val, "items");
    assert_int_equal(items->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < items->via.array.size; i++)
        if (th_is(&items->via.array.ptr[i], "slot", slot))
            return &items->via.array.ptr[i];
    return NULL;
}

static void
test_holder_hears_of_approval_rejection_and_admin_cancel(void **state)
{
    struct th_eng *e = *state;
    uint64_t sent0 = HF_GET(outbox_sent);
    const msgpack_object *it;
    hf_drv_msg *m;

    reserve(e, "kim", "mon-am");
    reserve(e, "kim", "tue-am");
    reserve(e, "kim", "wed-am");
    reserve(e, "kim", "thu-am");
    slot_call(e, "boss", ADMIN, "approve", "mon-am");
    hf_drv_msg_free(ok(e, "boss", ADMIN, "reject",
                       "{\"slot\":\"tue-am\",\"reason\":\"maintenance\"}"));
    slot_call(e, "boss", ADMIN, "cancel", "wed-am");
    slot_call(e, "kim", USER, "cancel", "thu-am"); /* her own: no notice */

    assert_int_equal(inbox_unread(e, "kim", 3, TH_WAIT), 3);
    m = ok_to(e, "kim", USER, "user/kim", "list", NULL);
    it = inbox_item(m, "mon-am");
    assert_non_null(it);
    assert_true(th_is(it, "type", "reservation_approved"));
    assert_true(th_is(it, "device", "ps5-03"));
    assert_true(th_is(it, "from", D));
    assert_int_equal(th_num(it, "reservation_id"), 1);
    it = inbox_item(m, "tue-am");
    assert_non_null(it);
    assert_true(th_is(it, "type", "reservation_rejected"));
    assert_true(th_is(it, "reason", "maintenance"));
    assert_int_equal(th_num(it, "reservation_id"), 2);
    it = inbox_item(m, "wed-am");
    assert_non_null(it);
    assert_true(th_is(it, "type", "reservation_cancelled"));
    assert_true(th_is(it, "by", "boss"));
    assert_null(inbox_item(m, "thu-am"));
    hf_drv_msg_free(m);

    /* Exactly once: three sends, and a restart (which re-queues whatever
     * the outbox still holds) posts nothing twice. */
    assert_int_equal(wait_sent(sent0, 3, TH_WAIT), 3);
    th_restart(e);
    sleep_ms(300);
    assert_int_equal(HF_GET(outbox_sent) - sent0, 3);
    assert_int_equal(inbox_unread(e, "kim", 4, 0), 3);
}

static void
test_a_failed_change_notifies_nobody(void **state)
{
    struct th_eng *e = *state;
    uint64_t sent0 = HF_GET(outbox_sent);

    reserve(e, "kim", "mon-am");
    slot_call(e, "boss", ADMIN, "approve", "mon-am");
    /* Approving again is a conflict: its unit, notice included, is gone. */
    fails(e, "boss", ADMIN, "approve", "{\"slot\":\"mon-am\"}", "conflict",
          NULL);
    fails(e, "lee", USER, "cancel", "{\"slot\":\"mon-am\"}", "forbidden",
          NULL);
    assert_int_equal(wait_sent(sent0, 1, TH_WAIT), 1);
    sleep_ms(300);
    assert_int_equal(HF_GET(outbox_sent) - sent0, 1);
    assert_int_equal(inbox_unread(e, "kim", 2, 0), 1);
}

static void
test_events_carry_the_device_and_a_stable_reservation_id(void **state)
{
    struct th_eng *e = *state;
    hf_drv_msg *m;

    th_sub(e, 1, D, -1);
    reserve(e, "kim", "mon-am");
    reserve(e, "lee", "tue-am");
    m = next_event(e, "reservation_created");
    assert_true(th_is(m->e.val, "device", "ps5-03"));
    assert_int_equal(th_num(m->e.val, "reservation_id"), 1);
    hf_drv_msg_free(m);
    m = next_event(e, "reservation_created");
    assert_int_equal(th_num(m->e.val, "reservation_id"), 2);
    hf_drv_msg_free(m);

    /* The id stays with the reservation through approve and cancel, in
     * replies, events and get. */
    m = ok(e, "boss", ADMIN, "approve", "{\"slot\":\"mon-am\"}");
    assert_int_equal(th_num(m->e.val, "reservation_id"), 1);
    hf_drv_msg_free(m);
    m = next_event(e, "reservation_approved");
    assert_int_equal(th_num(m->e.val, "reservation_id"), 1);
    assert_true(th_is(m->e.val, "device", "ps5-03"));
    hf_drv_msg_free(m);
    th_restart(e);
    th_sub(e, 1, D, -1);
    m = ok(e, "x", USER, "get", NULL);
    assert_int_equal(th_num(find_resv(m, "tue-am"), "reservation_id"), 2);
    assert_true(th_is(find_resv(m, "tue-am"), "device", "ps5-03"));
    hf_drv_msg_free(m);
    slot_call(e, "lee", USER, "cancel", "tue-am");
    m = next_event(e, "reservation_cancelled");
    assert_int_equal(th_num(m->e.val, "reservation_id"), 2);
    hf_drv_msg_free(m);
    /* A new reservation of a freed slot is a new reservation. */
    reserve(e, "kim", "tue-am");
    m = next_event(e, "reservation_created");
    assert_int_equal(th_num(m->e.val, "reservation_id"), 3);
    hf_drv_msg_free(m);

    /* Status events name the device too. */
    hf_drv_msg_free(ok(e, "ps5", DEV, "heartbeat", NULL));
    m = next_event(e, "device_online");
    assert_true(th_is(m->e.val, "device", "ps5-03"));
    hf_drv_msg_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso8601_times_parse_with_a_zone_only),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_reserve_creates_a_pending_reservation),
        T(test_holder_hears_of_approval_rejection_and_admin_cancel),
        T(test_a_failed_change_notifies_nobody),
        T(test_events_carry_the_device_and_a_stable_reservation_id),
        T(test_reserve_same_slot_twice_same_user_gets_the_same_answer),
        T(test_reserve_slot_held_by_another_user_conflicts),
        T(test_reserve_without_user_reserves_for_the_caller),
        T(test_user_may_reserve_only_for_itself),
        T(test_reserve_validates_arguments),
        T(test_two_users_racing_for_one_slot_exactly_one_wins),
        T(test_approve_confirms_and_emits),
        T(test_approve_errors),
        T(test_reject_frees_the_slot),
        T(test_cancel_by_the_holder_frees_the_slot),
        T(test_cancel_by_another_user_is_forbidden),
        T(test_get_of_a_new_device),
        T(test_get_lists_reservations_by_slot),
        T(test_get_pages_reservations),
        T(test_status_events_only_when_the_status_changes),
        T(test_report_keeps_meta_and_validates),
        T(test_heartbeat_brings_an_offline_device_online),
        T(test_heartbeat_timeout_marks_the_device_offline),
        T(test_heartbeats_keep_the_device_online),
        T(test_configure_validates_and_needs_admin),
        T(test_shorter_timeout_applies_to_a_live_device_at_once),
        T(test_reminder_time_follows_the_slot),
        T(test_reminder_reaches_the_user_inbox_exactly_once),
        T(test_reminder_at_once_when_approved_within_ten_minutes),
        T(test_cancel_and_reject_remove_the_reminder),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
