/*
 * test_lua_examples.c - the example Lua kinds (examples/kinds) end to end:
 * the real binary serving them with --kinds and auth on, each person on
 * their own WebSocket or HTTP request with their own signed token.
 *
 *   - users racing for overlapping ranges of one timeslot, many attempts
 *     in flight at once over several WebSocket connections and HTTP
 *     requests from threads: exactly one booking is acknowledged, every
 *     other attempt is a conflict, and the resource holds exactly that
 *     booking, read back over HTTP;
 *   - a dm between two users: the participants read and write over
 *     WebSocket and HTTP, a third user and an admin are forbidden, and a
 *     token's acl keeps the conversation's events to its participants;
 *   - an auction closing on its real alarm a few seconds after it opens,
 *     its winner told through the user/ inbox by a send.
 *
 * The rules themselves are tested in-process by the kinds' own test files
 * (NAME_test.lua beside each kind; ctest lua_examples runs them). Nothing here sleeps
 * for correctness: every wait is for a message, bounded by WAIT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "transport/auth.h"
#include "tests/wsh.h"

#ifndef HF_KINDS_DIR
#define HF_KINDS_DIR "examples/kinds"
#endif

#define SECRET "lua-examples-secret-51c0d2"
#define MIN    60000LL

/* Static, so the teardown can stop it after a failed assertion. */
static struct srv server;

static int
start_server(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--kinds", HF_KINDS_DIR,
                           NULL};
    (void)state;
    srv_start(&server, flags);
    return 0;
}

static int
stop_server(void **state)
{
    (void)state;
    if (server.pid > 0)
        srv_free(&server);
    memset(&server, 0, sizeof(server));
    return 0;
}

static char *
token(const char *sub, const char *role, const char *const *acl)
{
    char *t = hf_auth_mint(SECRET, sub, role, time(NULL) + 600, acl);
    assert_non_null(t);
    return t;
}

/* A WebSocket connection as sub (hello consumed). */
static struct cli *
connect_as(const char *sub, const char *role, const char *const *acl)
{
    char *tok = token(sub, role, acl);
    char q[HF_AUTH_TOKEN_MAX + 16];
    struct cli *c;
    json_t *h;
    int st = 0;

    snprintf(q, sizeof(q), "?token=%s", tok);
    free(tok);
    if ((c = cli_open_ex(&server, 0, q, NULL, &st)) == NULL)
        fail_msg("%s could not connect: %d", sub, st);
    assert_non_null(h = cli_next(c, WAIT));
    assert_string_equal(sget(h, "op"), "hello");
    json_decref(h);
    return c;
}

/* An HTTP call as sub: POST /v1/call/ADDR/METHOD with a JSON body.
 * Returns the status; the parsed answer in *out (caller decrefs). */
static int
http_call(const char *sub, const char *role, const char *addr,
          const char *method, const char *body, json_t **out)
{
    char *tok = token(sub, role, NULL);
    char hdrs[HF_AUTH_TOKEN_MAX + 64], path[512];
    hf_buf b = {0};
    json_error_t je;
    int st;

    snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\n", tok);
    free(tok);
    snprintf(path, sizeof(path), "/v1/call/%s/%s", addr, method);
    st = http(&server, "POST", path, hdrs, body, &b);
    *out = json_loadb(b.data, b.len, 0, &je);
    if (*out == NULL)
        fail_msg("%s %s: not JSON (%d): %.*s", addr, method, st, (int)b.len,
                 (char *)b.data);
    hf_buf_free(&b);
    return st;
}

static json_t *
ws_ok(struct cli *c, int id, const char *to, const char *method,
      const char *args)
{
    char m[2048];
    json_t *r, *res;

    snprintf(m, sizeof(m),
             "{\"op\":\"call\",\"id\":%d,\"to\":\"%s\",\"method\":\"%s\","
             "\"args\":%s}",
             id, to, method, args);
    r = cli_call(c, id, m);
    res = json_incref(result_of(r));
    json_decref(r);
    return res;
}

/* Subscribes c to `to`, which must succeed. */
static void
sub_ok(struct cli *c, int id, const char *to)
{
    char m[256];
    json_t *r;

    snprintf(m, sizeof(m), "{\"op\":\"sub\",\"id\":%d,\"to\":\"%s\"}", id,
             to);
    r = cli_call(c, id, m);
    result_of(r);
    json_decref(r);
}

static void
ws_err(struct cli *c, int id, const char *to, const char *method,
       const char *args, const char *code)
{
    char m[2048];

    snprintf(m, sizeof(m),
             "{\"op\":\"call\",\"id\":%d,\"to\":\"%s\",\"method\":\"%s\","
             "\"args\":%s}",
             id, to, method, args);
    expect_err(c, id, m, code);
}

/* ------------------------------------------------------------------ */
/* timeslot                                                            */

#define RACERS        6  /* users, one connection each */
#define ATTEMPTS      25 /* booking attempts in flight per user */
#define HTTP_RACERS   4  /* more users, one thread of HTTP calls each */
#define HTTP_ATTEMPTS 5  /* one after the other, per thread */

/* An HTTP racer: its calls' statuses, for the main thread to check (a
 * thread must not fail a cmocka test). */
struct hracer {
    pthread_t th;
    char hdrs[HF_AUTH_TOKEN_MAX + 64];
    long long t0;
    int idx, status[HTTP_ATTEMPTS];
    json_int_t id; /* of the booking won, if any */
};

static void *
http_race(void *arg)
{
    struct hracer *h = arg;

    for (int k = 0; k < HTTP_ATTEMPTS; k++) {
        long long s = h->t0 + ((h->idx * HTTP_ATTEMPTS + k) * 7 % 150) * MIN;
        char body[96];
        hf_buf out = {0};
        int n = snprintf(body, sizeof(body), "{\"start\":%lld,\"end\":%lld}",
                         s, s + 200 * MIN);
        if (hf_http_request("127.0.0.1", server.port, "POST",
                            "/v1/call/timeslot/arena/book", h->hdrs, body,
                            (size_t)n, WAIT, &h->status[k], &out) != 0)
            h->status[k] = -1;
        if (h->status[k] == 200) {
            json_error_t je;
            json_t *r = json_loadb(out.data, out.len, 0, &je);
            h->id = json_integer_value(
                json_object_get(json_object_get(r, "result"), "id"));
            json_decref(r);
        }
        hf_buf_free(&out);
    }
    return NULL;
}

/* Every attempt is [T0 + i min, T0 + (i + 200) min) for some i < 150:
 * all of them cover [T0 + 150 min, T0 + 200 min), so any two overlap and
 * exactly one may win. */
static void
test_timeslot_race_one_winner(void **state)
{
    static const char *users[RACERS] = {"ana", "ben", "cho",
                                        "dev", "eli", "fox"};
    static const char *husers[HTTP_RACERS] = {"hana", "ivan", "jo", "kai"};
    struct hracer hr[HTTP_RACERS];
    struct cli *c[RACERS];
    long long t0 = ((long long)time(NULL) * 1000 / MIN + 60) * MIN;
    int won = 0, conflicts = 0, win_user = -1;
    json_int_t win_id = -1;
    json_t *r, *bs;
    (void)state;

    for (int u = 0; u < RACERS; u++)
        c[u] = connect_as(users[u], "user", NULL);
    /* All attempts leave before any answer is read: one frame per user,
     * ATTEMPTS calls each. */
    for (int u = 0; u < RACERS; u++) {
        char frame[ATTEMPTS * 200];
        size_t n = 0;
        for (int k = 0; k < ATTEMPTS; k++) {
            long long s = t0 + (long long)(k * RACERS + u) * MIN;
            n += (size_t)snprintf(
                frame + n, sizeof(frame) - n,
                "%s{\"op\":\"call\",\"id\":%d,\"to\":\"timeslot/arena\","
                "\"method\":\"book\",\"args\":{\"start\":%lld,\"end\":%lld}}",
                k ? "\n" : "", k + 1, s, s + 200 * MIN);
        }
        cli_send(c[u], frame);
    }
    /* Meanwhile, over HTTP. */
    for (int h = 0; h < HTTP_RACERS; h++) {
        char *tok = token(husers[h], "user", NULL);
        memset(&hr[h], 0, sizeof(hr[h]));
        hr[h].idx = h;
        hr[h].t0 = t0;
        snprintf(hr[h].hdrs, sizeof(hr[h].hdrs),
                 "Authorization: Bearer %s\r\n", tok);
        free(tok);
        assert_int_equal(pthread_create(&hr[h].th, NULL, http_race, &hr[h]),
                         0);
    }
    for (int u = 0; u < RACERS; u++) {
        for (int got = 0; got < ATTEMPTS;) {
            json_t *m = cli_next(c[u], WAIT);
            if (m == NULL)
                fail_msg("%s: %d of %d answers", users[u], got, ATTEMPTS);
            if (strcmp(sget(m, "op"), "reply") != 0) {
                json_decref(m);
                continue;
            }
            got++;
            if (json_is_true(json_object_get(m, "ok"))) {
                json_t *b = json_object_get(m, "result");
                won++;
                win_user = u;
                win_id = json_integer_value(json_object_get(b, "id"));
                assert_string_equal(sget(b, "user"), users[u]);
            } else {
                const char *code = err_code(m);
                if (code == NULL || strcmp(code, "conflict") != 0) {
                    char *d = json_dumps(m, 0);
                    fail_msg("%s: wanted conflict, got %s", users[u], d);
                }
                conflicts++;
            }
            json_decref(m);
        }
    }
    for (int h = 0; h < HTTP_RACERS; h++) {
        pthread_join(hr[h].th, NULL);
        for (int k = 0; k < HTTP_ATTEMPTS; k++) {
            if (hr[h].status[k] == 200) {
                won++;
                win_user = -1 - h;
                win_id = hr[h].id;
            } else if (hr[h].status[k] == 409) {
                conflicts++;
            } else {
                fail_msg("%s: HTTP status %d", husers[h], hr[h].status[k]);
            }
        }
    }
    assert_int_equal(won, 1);
    assert_int_equal(conflicts,
                     RACERS * ATTEMPTS + HTTP_RACERS * HTTP_ATTEMPTS - 1);

    /* Read back over HTTP by someone else: exactly the one booking. */
    assert_int_equal(http_call("gus", "user", "timeslot/arena", "list", "{}", &r),
                     200);
    bs = json_object_get(json_object_get(r, "result"), "bookings");
    assert_int_equal(json_array_size(bs), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(bs, 0), "id")),
        win_id);
    assert_string_equal(sget(json_array_get(bs, 0), "user"),
                        win_user >= 0 ? users[win_user]
                                      : husers[-1 - win_user]);
    json_decref(r);

    /* A loser trying again over HTTP: 409 conflict; a range next to it is
     * free. */
    int loser = win_user == 0 ? 1 : 0;
    char body[128];
    snprintf(body, sizeof(body), "{\"start\":%lld,\"end\":%lld}",
             t0 + 150 * MIN, t0 + 151 * MIN);
    assert_int_equal(
        http_call(users[loser], "user", "timeslot/arena", "book", body, &r),
        409);
    assert_string_equal(sget(json_object_get(r, "error"), "code"),
                        "conflict");
    json_decref(r);
    snprintf(body, sizeof(body), "{\"start\":%lld,\"end\":%lld}",
             t0 + 400 * MIN, t0 + 401 * MIN);
    assert_int_equal(
        http_call(users[loser], "user", "timeslot/arena", "book", body, &r),
        200);
    json_decref(r);

    /* Only an admin configures. */
    assert_int_equal(http_call("ana", "user", "timeslot/arena", "configure",
                               "{\"per_user\":5}", &r),
                     403);
    json_decref(r);
    assert_int_equal(http_call("ops", "admin", "timeslot/arena", "configure",
                               "{\"per_user\":5}", &r),
                     200);
    json_decref(r);
    for (int u = 0; u < RACERS; u++)
        cli_close(c[u]);
}

/* ------------------------------------------------------------------ */
/* dm                                                                  */

static void
test_dm_third_user_forbidden(void **state)
{
    const char *bob_acl[] = {"dm/alice.bob", "user/bob", NULL};
    const char *eve_acl[] = {"timeslot/*", NULL};
    struct cli *alice = connect_as("alice", "user", NULL);
    struct cli *bob = connect_as("bob", "user", bob_acl);
    struct cli *eve = connect_as("eve", "user", NULL);
    struct cli *eve2 = connect_as("eve", "user", eve_acl);
    json_t *r, *m;
    (void)state;

    r = ws_ok(alice, 1, "dm/alice.bob", "open",
              "{\"participants\":[\"alice\",\"bob\"]}");
    json_decref(r);

    /* bob, whose acl names the conversation, subscribes; eve's acl does
     * not name it, so her sub is forbidden at the gateway. */
    sub_ok(bob, 2, "dm/alice.bob");
    expect_err(eve2, 3, "{\"op\":\"sub\",\"id\":3,\"to\":\"dm/alice.bob\"}",
               "forbidden");

    r = ws_ok(alice, 4, "dm/alice.bob", "send", "{\"text\":\"the bike?\"}");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
    /* bob's event tells him a message came, without its text. */
    m = cli_expect(bob, "event");
    assert_string_equal(sget(m, "type"), "message");
    assert_string_equal(sget(json_object_get(m, "data"), "from"), "alice");
    assert_null(json_object_get(json_object_get(m, "data"), "text"));
    json_decref(m);

    /* bob reads it over HTTP and answers over WebSocket. */
    assert_int_equal(
        http_call("bob", "user", "dm/alice.bob", "history", "{}", &r), 200);
    m = json_array_get(
        json_object_get(json_object_get(r, "result"), "messages"), 0);
    assert_string_equal(sget(m, "text"), "the bike?");
    json_decref(r);
    r = ws_ok(bob, 5, "dm/alice.bob", "mark_read", "{\"id\":1}");
    json_decref(r);
    r = ws_ok(bob, 6, "dm/alice.bob", "send", "{\"text\":\"still here\"}");
    json_decref(r);

    /* A third user, over WebSocket and HTTP, and an admin: forbidden. */
    ws_err(eve, 7, "dm/alice.bob", "history", "{}", "forbidden");
    ws_err(eve, 8, "dm/alice.bob", "send", "{\"text\":\"hi\"}", "forbidden");
    ws_err(eve, 9, "dm/alice.bob", "mark_read", "{\"id\":1}", "forbidden");
    ws_err(eve, 10, "dm/alice.bob", "open",
           "{\"participants\":[\"alice\",\"eve\"]}", "forbidden");
    assert_int_equal(
        http_call("eve", "user", "dm/alice.bob", "history", "{}", &r), 403);
    assert_string_equal(sget(json_object_get(r, "error"), "code"),
                        "forbidden");
    json_decref(r);
    assert_int_equal(
        http_call("root", "admin", "dm/alice.bob", "history", "{}", &r), 403);
    json_decref(r);

    /* alice sees both messages, hers read by bob. */
    r = ws_ok(alice, 11, "dm/alice.bob", "history", "{}");
    m = json_object_get(r, "messages");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(
        sget(json_object_get(json_array_get(m, 0), "status"), "bob"), "read");
    assert_string_equal(sget(json_array_get(m, 1), "text"), "still here");
    json_decref(r);

    cli_close(alice);
    cli_close(bob);
    cli_close(eve);
    cli_close(eve2);
}

/* ------------------------------------------------------------------ */
/* auction                                                             */

static void
test_auction_closes_and_tells_the_winner(void **state)
{
    struct cli *ann = connect_as("ann", "user", NULL);
    struct cli *ben = connect_as("ben", "user", NULL);
    char body[160];
    json_t *r, *e;
    (void)state;

    /* ben watches his inbox, ann the auction. */
    sub_ok(ben, 1, "user/ben");
    sub_ok(ann, 2, "auction/lamp");

    /* It ends 3 s after it opens: the bids, on open connections, take
     * milliseconds. */
    snprintf(body, sizeof(body),
             "{\"item\":\"lamp\",\"ends_at\":%lld,\"start\":5}",
             (long long)time(NULL) * 1000 + 3000);
    assert_int_equal(http_call("sam", "user", "auction/lamp", "open", body, &r),
                     200);
    json_decref(r);
    json_decref(ws_ok(ann, 3, "auction/lamp", "bid", "{\"amount\":5}"));
    json_decref(ws_ok(ben, 4, "auction/lamp", "bid", "{\"amount\":6}"));
    ws_err(ann, 5, "auction/lamp", "bid", "{\"amount\":6}", "conflict");

    /* The alarm closes it: ann sees closed, ben's inbox gets the news. */
    for (;;) {
        assert_non_null(e = cli_expect(ann, "event"));
        if (strcmp(sget(e, "type"), "closed") == 0)
            break;
        json_decref(e);
    }
    assert_string_equal(sget(json_object_get(e, "data"), "winner"), "ben");
    json_decref(e);
    e = cli_expect(ben, "event");
    assert_string_equal(sget(e, "from"), "user/ben");
    assert_string_equal(sget(json_object_get(e, "data"), "type"),
                        "auction_won");
    assert_string_equal(sget(json_object_get(e, "data"), "from"),
                        "auction/lamp");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(e, "data"), "amount")),
        6);
    json_decref(e);
    ws_err(ann, 6, "auction/lamp", "bid", "{\"amount\":100}", "conflict");
    cli_close(ann);
    cli_close(ben);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timeslot_race_one_winner,
                                        start_server, stop_server),
        cmocka_unit_test_setup_teardown(test_dm_third_user_forbidden,
                                        start_server, stop_server),
        cmocka_unit_test_setup_teardown(
            test_auction_closes_and_tells_the_winner, start_server,
            stop_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
