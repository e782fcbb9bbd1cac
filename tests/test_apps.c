/*
 * test_apps.c - the apps holdfast serves, end to end: the real binary with
 * auth on, every person or machine on its own WebSocket (JSON or msgpack)
 * with its own signed token, each test one app's story told the way its
 * clients live it - a waiting-room board, a console dashboard with its
 * bookings, a chat, a lunch vote, a notification inbox.
 *
 * Design notes. A client here is a "peer": a connection plus what it has
 * received and not yet looked at. Replies are filed by id and everything
 * else (events, presence, signals) queues in arrival order, so a peer can
 * have calls in flight on several connections at once and still read its
 * event stream exactly, event by event, with no message lost to a wait
 * for a reply. Nothing sleeps for correctness: every wait is for a
 * message, bounded by WAIT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/buf.h"
#include "transport/auth.h"
#include "client/wsclient.h"
#include "tests/wsh.h"

#define SECRET "apps-test-secret-7f3a9c21"

/* ------------------------------------------------------------------ */
/* peers: one person or machine, one connection, one token             */

enum via { VIA_QUERY, VIA_HEADER, VIA_FRAME };

struct peer {
    const char *name; /* for failure messages */
    struct cli *c;
    json_t *inbox;   /* non-reply messages, oldest first */
    json_t *replies; /* id (as a decimal string) -> reply */
};

static int next_id = 1;

/* The test's server. Static, not on the test's stack, so that the
 * teardown can still stop it after a failed assertion has jumped out of
 * the test: a server left running would outlive the test binary and hold
 * its output open. */
static struct srv server;

static struct srv *
serve(void)
{
    const char *flags[] = {"--jwt-secret", SECRET, NULL};
    srv_start(&server, flags);
    return &server;
}

static int
stop_leftover_server(void **state)
{
    (void)state;
    if (server.pid > 0) {
        int st = srv_stop(&server);
        fprintf(stderr,
                "stopped the server left by a failed test (status "
                "%d); its data and log: %s\n",
                st, server.dir);
    }
    return 0;
}

/* printf into one of a few rotating buffers: short-lived argument text
 * (the peer plumbing below never uses them, so a buffer stays valid across
 * a call and its wait). */
static const char *
fmt(const char *f, ...)
{
    static char bufs[8][4096];
    static int n;
    char *b = bufs[n++ % 8];
    va_list ap;

    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

/* More claims for the next tokens (a JSON object), NULL for none: the chat
 * test gives Kim a token with "name" and "picture", as an identity
 * provider would. */
static const char *extra_claims;

static char *
token(const char *sub, const char *role, const char *const *acl)
{
    char *t = hf_auth_mint_ex(SECRET, sub, role, time(NULL) + 600, acl,
                              extra_claims);
    assert_non_null(t);
    return t;
}

/* Reads one more message: replies are filed by id, the rest queue. */
static void
pump(struct peer *p)
{
    json_t *j = cli_next(p->c, WAIT);
    const char *op;
    char k[24];

    if (j == NULL)
        fail_msg("%s: nothing arrived (closed: %d, code %d)", p->name,
                 p->c->closed, p->c->close_code);
    op = sget(j, "op");
    if (op != NULL && strcmp(op, "reply") == 0 &&
        json_is_integer(json_object_get(j, "id"))) {
        snprintf(k, sizeof(k), "%lld",
                 (long long)json_integer_value(json_object_get(j, "id")));
        json_object_set_new(p->replies, k, j);
        return;
    }
    json_array_append_new(p->inbox, j);
}

static json_t *
await_reply(struct peer *p, int id)
{
    char k[24];
    json_t *r;

    snprintf(k, sizeof(k), "%d", id);
    while ((r = json_object_get(p->replies, k)) == NULL)
        pump(p);
    json_incref(r);
    json_object_del(p->replies, k);
    return r;
}

/* The next queued message with this op; messages of other ops before it
 * are dropped (a board does not care about its own presence join). */
static json_t *
next_op(struct peer *p, const char *op)
{
    for (;;) {
        while (json_array_size(p->inbox) > 0) {
            json_t *j = json_incref(json_array_get(p->inbox, 0));
            json_array_remove(p->inbox, 0);
            if (strcmp(sget(j, "op"), op) == 0)
                return j;
            json_decref(j);
        }
        pump(p);
    }
}

static void
peer_open(struct peer *p, struct srv *s, const char *name, int msgpack,
          const char *role, const char *const *acl, enum via via)
{
    char *tok = token(name, role, acl);
    char extra[HF_AUTH_TOKEN_MAX + 64];
    json_t *h;
    int st = 0;

    p->name = name;
    p->inbox = json_array();
    p->replies = json_object();
    switch (via) {
    case VIA_QUERY:
        snprintf(extra, sizeof(extra), "?token=%s", tok);
        p->c = cli_open_ex(s, msgpack, extra, NULL, &st);
        break;
    case VIA_HEADER:
        snprintf(extra, sizeof(extra), "Authorization: Bearer %s\r\n", tok);
        p->c = cli_open_ex(s, msgpack, NULL, extra, &st);
        break;
    case VIA_FRAME:
        p->c = cli_open_ex(s, msgpack, NULL, NULL, &st);
        break;
    }
    if (p->c == NULL)
        fail_msg("%s could not connect: %d", name, st);
    h = cli_next(p->c, WAIT);
    assert_non_null(h);
    assert_string_equal(sget(h, "op"), "hello");
    json_decref(h);
    if (via == VIA_FRAME) {
        int id = next_id++;
        json_t *r;
        snprintf(extra, sizeof(extra),
                 "{\"op\":\"auth\",\"id\":%d,\"token\":\"%s\"}", id, tok);
        cli_send(p->c, extra);
        r = await_reply(p, id);
        assert_string_equal(sget(result_of(r), "sub"), name);
        json_decref(r);
    }
    free(tok);
}

/* The connection ends without a close frame: a phone losing its network. */
static void
peer_vanish(struct peer *p)
{
    shutdown(hf_ws_fd(p->c->ws), SHUT_RDWR);
}

static void
peer_close(struct peer *p)
{
    cli_close(p->c);
    json_decref(p->inbox);
    json_decref(p->replies);
    memset(p, 0, sizeof(*p));
}

/* Sends a call without waiting; returns its id. args NULL: {}. */
static int
call_async(struct peer *p, const char *to, const char *method, const char *args,
           const char *key)
{
    int id = next_id++;
    char m[8192];

    snprintf(m, sizeof(m),
             "{\"op\":\"call\",\"id\":%d,\"to\":\"%s\",\"method\":\"%s\","
             "\"args\":%s%s%s%s}",
             id, to, method, args ? args : "{}", key ? ",\"key\":\"" : "",
             key ? key : "", key ? "\"" : "");
    cli_send(p->c, m);
    return id;
}

/* The result of a call that must succeed (a new reference). */
static json_t *
result_or_fail(struct peer *p, json_t *r)
{
    json_t *res;
    if (!json_is_true(json_object_get(r, "ok"))) {
        char *d = json_dumps(r, 0);
        fail_msg("%s: call failed: %s", p->name, d);
    }
    res = json_incref(json_object_get(r, "result"));
    json_decref(r);
    return res;
}

static json_t *
ok(struct peer *p, const char *to, const char *method, const char *args)
{
    return result_or_fail(
        p, await_reply(p, call_async(p, to, method, args, NULL)));
}

static json_t *
ok_key(struct peer *p, const char *to, const char *method, const char *args,
       const char *key)
{
    return result_or_fail(p,
                          await_reply(p, call_async(p, to, method, args, key)));
}

/* Asserts a failed reply with code (and message, when msg is not NULL). */
static void
expect_refusal(struct peer *p, json_t *r, const char *code, const char *msg)
{
    json_t *e = json_object_get(r, "error");
    if (json_is_true(json_object_get(r, "ok")) ||
        strcmp(sget(e, "code") ? sget(e, "code") : "", code) != 0 ||
        (msg && strcmp(sget(e, "message") ? sget(e, "message") : "", msg))) {
        char *d = json_dumps(r, 0);
        fail_msg("%s: wanted %s%s%s, got %s", p->name, code, msg ? ": " : "",
                 msg ? msg : "", d);
    }
    json_decref(r);
}

static void
refused(struct peer *p, const char *to, const char *method, const char *args,
        const char *code, const char *msg)
{
    expect_refusal(p, await_reply(p, call_async(p, to, method, args, NULL)),
                   code, msg);
}

/* sub with extra members (e.g. "\"presence\":{...}"), NULL for none;
 * returns the raw reply. */
static json_t *
sub_reply(struct peer *p, const char *to, const char *extra)
{
    int id = next_id++;
    cli_send(p->c, fmt("{\"op\":\"sub\",\"id\":%d,\"to\":\"%s\"%s%s}", id, to,
                       extra ? "," : "", extra ? extra : ""));
    return await_reply(p, id);
}

static json_t *
subscribe(struct peer *p, const char *to, const char *extra)
{
    return result_or_fail(p, sub_reply(p, to, extra));
}

static json_int_t
iget(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    if (!json_is_integer(v)) {
        char *d = json_dumps(j, 0);
        fail_msg("'%s' is not an integer in %s", k, d);
    }
    return json_integer_value(v);
}

static void
assert_null_member(json_t *j, const char *k)
{
    /* present, and null (absent would be a different answer) */
    assert_non_null(json_object_get(j, k));
    assert_true(json_is_null(json_object_get(j, k)));
}

static void
assert_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *d = json_dumps(got, JSON_SORT_KEYS);
        fail_msg("wanted %s, got %s", want_text, d);
    }
    json_decref(want);
}

/* The next event on p: it must come from `from`, with this seq and type.
 * Returns the whole event (a new reference). */
static json_t *
next_event(struct peer *p, const char *from, json_int_t seq, const char *type)
{
    json_t *e = next_op(p, "event");
    if (strcmp(sget(e, "from"), from) != 0 || iget(e, "seq") != seq ||
        strcmp(sget(e, "type"), type) != 0) {
        char *d = json_dumps(e, 0);
        fail_msg("%s: wanted %s #%lld %s, got %s", p->name, from,
                 (long long)seq, type, d);
    }
    return e;
}

static json_t *
data_of(json_t *event)
{
    return json_object_get(event, "data");
}

/* ------------------------------------------------------------------ */
/* a waiting-room board, kept from events alone (docs/kinds/store.md)  */

struct board {
    json_t *calling; /* views, in call order */
    json_t *queue;   /* views, in queue order */
};

static int
index_of(json_t *list, const char *ticket)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(sget(json_array_get(list, i), "ticket"), ticket) == 0)
            return (int)i;
    return -1;
}

/* A view as the board shows it: the event's data minus the event-only
 * members; positions follow from the queue's order. */
static json_t *
view_of(json_t *data)
{
    json_t *v = json_deep_copy(data);
    json_object_del(v, "waiting");
    json_object_del(v, "from");
    return v;
}

static void
board_apply(struct board *b, json_t *ev)
{
    const char *type = sget(ev, "type");
    json_t *d = data_of(ev);

    assert_null(json_object_get(d, "phone")); /* boards are public */
    if (strcmp(type, "new_waiting") == 0) {
        /* always inserted at the end */
        assert_int_equal(iget(d, "position"), json_array_size(b->queue) + 1);
        json_array_append_new(b->queue, view_of(d));
    } else if (strcmp(type, "status_changed") == 0) {
        const char *t = sget(d, "ticket"), *from = sget(d, "from");
        json_t *list = strcmp(from, "waiting") == 0 ? b->queue : b->calling;
        int i = index_of(list, t);
        assert_true(i >= 0);
        json_array_remove(list, (size_t)i);
        if (strcmp(sget(d, "status"), "called") == 0)
            json_array_append_new(b->calling, view_of(d));
    } else {
        fail_msg("the board cannot show %s", type);
    }
    for (size_t i = 0; i < json_array_size(b->queue); i++)
        json_object_set_new(json_array_get(b->queue, i), "position",
                            json_integer((json_int_t)i + 1));
    assert_int_equal(iget(d, "waiting"), json_array_size(b->queue));
}

/* What `list {}` should say: called tickets, then the queue. */
static json_t *
board_tickets(struct board *b)
{
    json_t *all = json_array();
    json_array_extend(all, b->calling);
    json_array_extend(all, b->queue);
    return all;
}

/* ------------------------------------------------------------------ */
/* 1. store: a waiting-room board                                      */

static void
test_waiting_room_board_updates_live_as_guests_register_and_staff_call(
    void **state)
{
    /* The board in the window: a kiosk login that may only see this
     * chain's stores. */
    const char *board_acl[] = {"store/gangnam-*", NULL};
    const char *S = "store/gangnam-1";
    struct srv *s;
    struct peer board, staff, kim, lee, park, choi;
    struct board model = {json_array(), json_array()};
    json_t *r, *e, *d, *list;
    char kim_t[40], lee_t[40], park_t[40], choi_t[40], epoch[40];
    (void)state;

    s = serve();
    peer_open(&board, s, "board-gangnam-1", 1, "user", board_acl, VIA_QUERY);
    peer_open(&staff, s, "staff-1", 0, "admin", NULL, VIA_HEADER);
    peer_open(&kim, s, "kim", 0, "user", NULL, VIA_FRAME);
    peer_open(&lee, s, "lee", 1, "user", NULL, VIA_QUERY);

    r = subscribe(&board, S, NULL);
    assert_int_equal(iget(r, "seq"), 0);
    assert_true(json_is_true(json_object_get(r, "recovered")));
    json_decref(r);
    /* The kiosk's token reaches nothing beyond its acl. */
    expect_refusal(&board, sub_reply(&board, "store/gangbuk-1", NULL),
                   "forbidden", NULL);

    /* Kim takes a ticket from her phone; a retry with the same key (the
     * phone lost the reply) gets the same ticket, not a second one. */
    r = ok_key(&kim, S, "register",
               "{\"name\":\"Kim\",\"party\":2,\"phone\":\"010-1234-5678\","
               "\"class\":\"table\"}",
               "reg-kim-1");
    assert_int_equal(iget(r, "number"), 1);
    assert_int_equal(iget(r, "position"), 1);
    assert_int_equal(iget(r, "waiting"), 1);
    snprintf(kim_t, sizeof(kim_t), "%s", sget(r, "ticket"));
    assert_non_null(strstr(kim_t, "-1"));
    json_decref(r);
    r = ok_key(&kim, S, "register",
               "{\"name\":\"Kim\",\"party\":2,\"phone\":\"010-1234-5678\","
               "\"class\":\"table\"}",
               "reg-kim-1");
    assert_string_equal(sget(r, "ticket"), kim_t);
    json_decref(r);

    r = ok(&lee, S, "register", "{\"name\":\"Lee\",\"party\":4}");
    assert_int_equal(iget(r, "number"), 2);
    assert_int_equal(iget(r, "position"), 2);
    assert_int_equal(iget(r, "waiting"), 2);
    snprintf(lee_t, sizeof(lee_t), "%s", sget(r, "ticket"));
    json_decref(r);

    /* The board learns everything it shows from the events alone. */
    e = next_event(&board, S, 1, "new_waiting");
    d = data_of(e);
    assert_string_equal(sget(d, "ticket"), kim_t);
    assert_int_equal(iget(d, "number"), 1);
    assert_string_equal(sget(d, "name"), "Kim");
    assert_int_equal(iget(d, "party"), 2);
    assert_string_equal(sget(d, "class"), "table");
    assert_string_equal(sget(d, "status"), "waiting");
    assert_int_equal(iget(d, "position"), 1);
    assert_int_equal(iget(d, "waiting"), 1);
    assert_true(iget(d, "created_at") > 0);
    assert_null_member(d, "called_at");
    assert_null_member(d, "done_at");
    board_apply(&model, e);
    json_decref(e);
    e = next_event(&board, S, 2, "new_waiting");
    d = data_of(e);
    assert_string_equal(sget(d, "ticket"), lee_t);
    assert_string_equal(sget(d, "name"), "Lee");
    assert_int_equal(iget(d, "party"), 4);
    assert_null_member(d, "class");
    assert_int_equal(iget(d, "position"), 2);
    assert_int_equal(iget(d, "waiting"), 2);
    board_apply(&model, e);
    json_decref(e);

    /* Guests cannot run the queue, nor cancel someone else's ticket. */
    refused(&lee, S, "call", "{}", "forbidden",
            "method 'call' needs another role");
    refused(&lee, S, "cancel", fmt("{\"ticket\":\"%s\"}", kim_t), "forbidden",
            fmt("only the guest who registered ticket %s, or staff, may "
                "cancel it",
                kim_t));

    /* Staff calls the next guest: Kim. Staff sees her phone number. */
    r = ok(&staff, S, "call", "{}");
    assert_string_equal(sget(r, "ticket"), kim_t);
    assert_string_equal(sget(r, "status"), "called");
    assert_string_equal(sget(r, "from"), "waiting");
    assert_string_equal(sget(r, "phone"), "010-1234-5678");
    assert_int_equal(iget(r, "waiting"), 1);
    assert_null_member(r, "position");
    json_decref(r);
    e = next_event(&board, S, 3, "status_changed");
    d = data_of(e);
    assert_string_equal(sget(d, "ticket"), kim_t);
    assert_string_equal(sget(d, "status"), "called");
    assert_string_equal(sget(d, "from"), "waiting");
    assert_int_equal(iget(d, "waiting"), 1);
    assert_true(iget(d, "called_at") >= iget(d, "created_at"));
    board_apply(&model, e);
    json_decref(e);

    /* The board's network drops; meanwhile Kim is seated and Park
     * registers. */
    {
        json_t *info = ok(&staff, S, "info", NULL);
        snprintf(epoch, sizeof(epoch), "%s", sget(info, "epoch"));
        json_decref(info);
    }
    peer_vanish(&board);
    peer_close(&board);
    r = ok(&staff, S, "set_status",
           fmt("{\"ticket\":\"%s\",\"status\":\"seated\"}", kim_t));
    assert_string_equal(sget(r, "status"), "seated");
    assert_string_equal(sget(r, "from"), "called");
    assert_true(iget(r, "done_at") > 0);
    json_decref(r);
    peer_open(&park, s, "park", 0, "user", NULL, VIA_HEADER);
    r = ok(&park, S, "register",
           "{\"name\":\"Park\",\"party\":1,\"class\":\"bar\"}");
    assert_int_equal(iget(r, "number"), 3);
    assert_int_equal(iget(r, "position"), 2); /* behind Lee */
    snprintf(park_t, sizeof(park_t), "%s", sget(r, "ticket"));
    json_decref(r);

    /* It comes back with since = the last seq it saw: exactly the two
     * missed events, in order, then live ones. */
    peer_open(&board, s, "board-gangnam-1", 1, "user", board_acl, VIA_QUERY);
    r = subscribe(&board, S, fmt("\"since\":3,\"epoch\":\"%s\"", epoch));
    assert_true(json_is_true(json_object_get(r, "recovered")));
    assert_int_equal(iget(r, "seq"), 5);
    json_decref(r);
    e = next_event(&board, S, 4, "status_changed");
    assert_string_equal(sget(data_of(e), "ticket"), kim_t);
    assert_string_equal(sget(data_of(e), "status"), "seated");
    board_apply(&model, e);
    json_decref(e);
    e = next_event(&board, S, 5, "new_waiting");
    assert_string_equal(sget(data_of(e), "ticket"), park_t);
    board_apply(&model, e);
    json_decref(e);

    /* Lee gives up and cancels her own ticket; the board sees it live
     * (seq 6: nothing was replayed twice). */
    r = ok(&lee, S, "cancel", fmt("{\"ticket\":\"%s\"}", lee_t));
    assert_string_equal(sget(r, "status"), "cancelled");
    json_decref(r);
    e = next_event(&board, S, 6, "status_changed");
    d = data_of(e);
    assert_string_equal(sget(d, "ticket"), lee_t);
    assert_string_equal(sget(d, "status"), "cancelled");
    assert_string_equal(sget(d, "from"), "waiting");
    assert_int_equal(iget(d, "waiting"), 1);
    board_apply(&model, e);
    json_decref(e);
    /* A cancelled ticket is final. */
    refused(&staff, S, "call", fmt("{\"ticket\":\"%s\"}", lee_t), "conflict",
            NULL);

    /* Staff calls Park; Choi registers (with a phone the board must not
     * see). */
    r = ok(&staff, S, "call", "{}");
    assert_string_equal(sget(r, "ticket"), park_t);
    json_decref(r);
    peer_open(&choi, s, "choi", 1, "user", NULL, VIA_FRAME);
    r = ok(&choi, S, "register",
           "{\"name\":\"Choi\",\"party\":3,\"phone\":\"010-9999-0000\"}");
    assert_int_equal(iget(r, "position"), 1);
    assert_int_equal(iget(r, "number"), 4);
    snprintf(choi_t, sizeof(choi_t), "%s", sget(r, "ticket"));
    json_decref(r);
    e = next_event(&board, S, 7, "status_changed");
    assert_string_equal(sget(data_of(e), "ticket"), park_t);
    board_apply(&model, e);
    json_decref(e);
    e = next_event(&board, S, 8, "new_waiting");
    assert_string_equal(sget(data_of(e), "ticket"), choi_t);
    board_apply(&model, e);
    json_decref(e);

    /* What the board built from events is what `list` says. */
    list = ok(&board, S, "list", "{}");
    assert_int_equal(iget(list, "waiting"), 1);
    assert_int_equal(iget(list, "called"), 1);
    {
        json_t *want = board_tickets(&model);
        json_t *got = json_object_get(list, "tickets");
        char day[16];
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_SORT_KEYS);
            char *w = json_dumps(want, JSON_SORT_KEYS);
            fail_msg("list %s\nboard %s", g, w);
        }
        /* Ticket ids are the UTC day and the number. */
        snprintf(day, sizeof(day), "%lld-", (long long)iget(list, "day"));
        assert_int_equal(strncmp(choi_t, day, strlen(day)), 0);
        json_decref(want);
    }
    json_decref(list);
    /* Staff's list is the same board plus phone numbers. */
    list = ok(&staff, S, "list", "{}");
    assert_string_equal(
        sget(json_array_get(json_object_get(list, "tickets"), 1), "phone"),
        "010-9999-0000");
    json_decref(list);
    /* A guest sees her own phone number and nobody else's. */
    list = ok(&choi, S, "list", "{}");
    for (size_t i = 0; i < json_array_size(json_object_get(list, "tickets"));
         i++) {
        json_t *t = json_array_get(json_object_get(list, "tickets"), i);
        if (strcmp(sget(t, "ticket"), choi_t) == 0)
            assert_string_equal(sget(t, "phone"), "010-9999-0000");
        else
            assert_null(json_object_get(t, "phone"));
    }
    json_decref(list);

    /* The store is in Seoul: numbers restart at its midnight. The board
     * hears it and shows times in the store's local time. */
    refused(&kim, S, "configure", "{\"utc_offset_min\":540}", "forbidden",
            NULL);
    refused(&staff, S, "configure", "{\"utc_offset_min\":900}", "bad_request",
            NULL);
    r = ok(&staff, S, "configure", "{\"utc_offset_min\":540}");
    assert_int_equal(iget(r, "utc_offset_min"), 540);
    for (e = next_op(&board, "event");
         strcmp(sget(e, "type"), "configured") != 0;
         e = next_op(&board, "event"))
        json_decref(e);
    assert_json(data_of(e), fmt("{\"utc_offset_min\":540,\"day\":%lld}",
                                (long long)iget(r, "day")));
    json_decref(e);
    list = ok(&board, S, "list", "{}");
    assert_int_equal(iget(list, "utc_offset_min"), 540);
    assert_int_equal(iget(list, "day"), iget(r, "day"));
    json_decref(list);
    json_decref(r);

    peer_close(&board);
    peer_close(&staff);
    peer_close(&kim);
    peer_close(&lee);
    peer_close(&park);
    peer_close(&choi);
    json_decref(model.calling);
    json_decref(model.queue);
    srv_free(s);
}

/* ------------------------------------------------------------------ */
/* 2. device: bookings and live status on a dashboard                  */

static void
test_reservation_client_and_admin_while_a_dashboard_watches_the_device(
    void **state)
{
    const char *dash_acl[] = {"device/*", NULL};
    const char *D = "device/ps5-03";
    struct srv *s;
    struct peer dash, ps5, kim, lee, admin;
    json_t *r, *e, *d, *status, *meta, *kim_resv, *lee_resv, *got;
    (void)state;

    s = serve();
    peer_open(&dash, s, "dash-floor-2", 0, "user", dash_acl, VIA_QUERY);
    peer_open(&ps5, s, "ps5-03", 1, "device", NULL, VIA_HEADER);
    peer_open(&kim, s, "kim", 0, "user", NULL, VIA_FRAME);
    peer_open(&lee, s, "lee", 1, "user", NULL, VIA_QUERY);
    peer_open(&admin, s, "staff-1", 0, "admin", NULL, VIA_HEADER);

    r = subscribe(&dash, D, NULL);
    assert_int_equal(iget(r, "seq"), 0);
    json_decref(r);
    /* Never heard from: offline, nothing booked. */
    r = ok(&dash, D, "get", NULL);
    assert_json(r, "{\"device\":\"ps5-03\",\"status\":\"offline\","
                   "\"meta\":null,\"last_seen\":null,"
                   "\"changed_at\":null,\"heartbeat_timeout_s\":30,"
                   "\"reservations\":[]}");
    /* Kim and Lee watch their own inboxes for news of their bookings. */
    json_decref(subscribe(&kim, "user/kim", NULL));
    json_decref(subscribe(&lee, "user/lee", NULL));
    json_decref(r);

    /* The console boots and reports; a heartbeat of a live device is
     * quiet. Only the device (or an admin) may report. */
    r = ok(&ps5, D, "report",
           "{\"status\":\"online\",\"meta\":{\"fw\":\"9.40\"}}");
    assert_true(json_is_true(json_object_get(r, "changed")));
    assert_int_equal(iget(r, "heartbeat_timeout_s"), 30);
    json_decref(r);
    r = ok(&ps5, D, "heartbeat", NULL);
    assert_false(json_is_true(json_object_get(r, "changed")));
    assert_string_equal(sget(r, "status"), "online");
    json_decref(r);
    refused(&kim, D, "report", "{\"status\":\"fault\"}", "forbidden", NULL);
    e = next_event(&dash, D, 1, "device_online");
    d = data_of(e);
    assert_string_equal(sget(d, "status"), "online");
    assert_string_equal(sget(d, "previous"), "offline");
    assert_json(json_object_get(d, "meta"), "{\"fw\":\"9.40\"}");
    assert_true(iget(d, "last_seen") > 0);
    json_decref(e);

    /* Kim books Saturday evening; Lee is too late. */
    r = ok(&kim, D, "reserve",
           "{\"slot\":\"sat-18:00\",\"note\":\"FIFA night\"}");
    assert_string_equal(sget(r, "user"), "kim");
    assert_string_equal(sget(r, "state"), "pending");
    json_decref(r);
    e = next_event(&dash, D, 2, "reservation_created");
    d = data_of(e);
    assert_string_equal(sget(d, "slot"), "sat-18:00");
    assert_string_equal(sget(d, "user"), "kim");
    assert_string_equal(sget(d, "state"), "pending");
    assert_string_equal(sget(d, "note"), "FIFA night");
    /* A dashboard of many devices files it without the envelope. */
    assert_string_equal(sget(d, "device"), "ps5-03");
    assert_int_equal(iget(d, "reservation_id"), 1);
    assert_null_member(d, "approved_at");
    assert_null_member(d, "remind_at");
    assert_null_member(d, "reminded_at");
    kim_resv = json_incref(d);
    json_decref(e);
    refused(&lee, D, "reserve", "{\"slot\":\"sat-18:00\"}", "conflict",
            "slot sat-18:00 is held");
    refused(&lee, D, "reserve", "{\"slot\":\"sun-10:00\",\"user\":\"kim\"}",
            "forbidden", "you may reserve only for yourself");
    refused(&lee, D, "cancel", "{\"slot\":\"sat-18:00\"}", "forbidden", NULL);
    /* Kim's app retries: the same reservation, no second event. */
    r = ok(&kim, D, "reserve", "{\"slot\":\"sat-18:00\"}");
    if (!json_equal(r, kim_resv))
        fail_msg("a retried reserve must answer the stored reservation");
    json_decref(r);
    /* Lee takes Sunday morning instead. */
    r = ok(&lee, D, "reserve", "{\"slot\":\"sun-10:00\"}");
    json_decref(r);
    e = next_event(&dash, D, 3, "reservation_created");
    lee_resv = json_incref(data_of(e));
    assert_string_equal(sget(lee_resv, "user"), "lee");
    json_decref(e);

    /* Only the admin approves. */
    refused(&kim, D, "approve", "{\"slot\":\"sat-18:00\"}", "forbidden",
            "method 'approve' needs another role");
    r = ok(&admin, D, "approve", "{\"slot\":\"sat-18:00\"}");
    assert_string_equal(sget(r, "state"), "confirmed");
    json_decref(r);
    refused(&admin, D, "approve", "{\"slot\":\"sat-18:00\"}", "conflict", NULL);
    e = next_event(&dash, D, 4, "reservation_approved");
    d = data_of(e);
    assert_string_equal(sget(d, "state"), "confirmed");
    assert_string_equal(sget(d, "user"), "kim");
    assert_true(iget(d, "approved_at") >= iget(d, "created_at"));
    assert_null_member(d, "remind_at"); /* "sat-18:00" names no instant */
    assert_int_equal(iget(d, "reservation_id"), 1);
    json_decref(kim_resv);
    kim_resv = json_incref(d);
    json_decref(e);
    /* Kim hears of it in her inbox, once. */
    e = next_event(&kim, "user/kim", 1, "notification");
    d = data_of(e);
    assert_string_equal(sget(d, "type"), "reservation_approved");
    assert_string_equal(sget(d, "from"), D);
    assert_string_equal(sget(d, "slot"), "sat-18:00");
    assert_int_equal(iget(d, "reservation_id"), 1);
    json_decref(e);

    /* Kim sits down to play. */
    r = ok(&ps5, D, "report",
           "{\"status\":\"in_use\",\"meta\":{\"player\":\"kim\"}}");
    assert_true(json_is_true(json_object_get(r, "changed")));
    json_decref(r);
    e = next_event(&dash, D, 5, "device_in_use");
    d = data_of(e);
    assert_string_equal(sget(d, "previous"), "online");
    status = json_incref(d);
    json_object_del(status, "previous"); /* the status, as `get` has it */
    json_decref(e);

    /* The dashboard's view and `get` agree. */
    got = ok(&dash, D, "get", NULL);
    meta = json_object_get(got, "meta");
    assert_string_equal(sget(got, "status"), "in_use");
    assert_json(meta, "{\"player\":\"kim\"}");
    {
        json_t *want = json_deep_copy(status);
        json_object_set_new(want, "heartbeat_timeout_s", json_integer(30));
        json_object_set_new(want, "reservations",
                            json_pack("[OO]", kim_resv, lee_resv));
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_SORT_KEYS);
            char *w = json_dumps(want, JSON_SORT_KEYS);
            fail_msg("get %s\ndashboard %s", g, w);
        }
        json_decref(want);
    }
    json_decref(got);

    /* Plans change: Kim cancels; the slot is free again at once. */
    r = ok(&kim, D, "cancel", "{\"slot\":\"sat-18:00\"}");
    assert_string_equal(sget(r, "state"), "cancelled");
    assert_string_equal(sget(r, "by"), "kim");
    json_decref(r);
    e = next_event(&dash, D, 6, "reservation_cancelled");
    d = data_of(e);
    assert_string_equal(sget(d, "slot"), "sat-18:00");
    assert_string_equal(sget(d, "state"), "cancelled");
    assert_string_equal(sget(d, "by"), "kim");
    json_decref(e);
    got = ok(&dash, D, "get", NULL);
    assert_int_equal(json_array_size(json_object_get(got, "reservations")), 1);
    if (!json_equal(json_array_get(json_object_get(got, "reservations"), 0),
                    lee_resv))
        fail_msg("get must list Lee's reservation as the dashboard saw it");
    json_decref(got);

    /* The console goes silent: a short timeout set by the admin takes it
     * offline on the heartbeat alarm. */
    r = ok(&admin, D, "configure", "{\"heartbeat_timeout_s\":1}");
    assert_json(r, "{\"heartbeat_timeout_s\":1}");
    json_decref(r);
    e = next_event(&dash, D, 7, "device_offline");
    d = data_of(e);
    assert_string_equal(sget(d, "previous"), "in_use");
    assert_string_equal(sget(d, "reason"), "heartbeat_timeout");
    assert_string_equal(sget(d, "device"), "ps5-03");
    assert_json(json_object_get(d, "meta"), "{\"player\":\"kim\"}");
    json_decref(e);

    /* The admin turns Lee's Sunday down; Lee's inbox says why. Kim's own
     * cancel earlier sent her nothing: her next item is none (checked by
     * the inbox's count). */
    r = ok(&admin, D, "reject",
           "{\"slot\":\"sun-10:00\",\"reason\":\"maintenance\"}");
    assert_int_equal(iget(r, "reservation_id"), 2);
    json_decref(r);
    e = next_event(&lee, "user/lee", 1, "notification");
    d = data_of(e);
    assert_string_equal(sget(d, "type"), "reservation_rejected");
    assert_string_equal(sget(d, "reason"), "maintenance");
    assert_string_equal(sget(d, "device"), "ps5-03");
    assert_int_equal(iget(d, "reservation_id"), 2);
    json_decref(e);
    r = ok(&kim, "user/kim", "unread", NULL);
    assert_json(r, "{\"count\":1}");
    json_decref(r);

    json_decref(status);
    json_decref(kim_resv);
    json_decref(lee_resv);
    peer_close(&dash);
    peer_close(&ps5);
    peer_close(&kim);
    peer_close(&lee);
    peer_close(&admin);
    srv_free(s);
}

/* ------------------------------------------------------------------ */
/* 3. room: a chat between two people                                  */

static void
test_two_chat_users_with_typing_receipts_and_unread_counts(void **state)
{
    const char *R = "room/lobby";
    struct srv *s;
    struct peer kim, lee;
    json_t *r, *e, *d, *first = NULL, *sent[3], *hist;
    (void)state;

    s = serve();
    extra_claims = "{\"name\":\"Kim Minji\","
                   "\"picture\":\"https://cdn.example/kim.png\"}";
    peer_open(&kim, s, "kim", 0, "user", NULL, VIA_FRAME);
    extra_claims = NULL;
    peer_open(&lee, s, "lee", 1, "user", NULL, VIA_QUERY);

    json_decref(subscribe(&kim, R, "\"presence\":{\"name\":\"Kim\"}"));
    e = next_op(&kim, "presence");
    assert_json(e, "{\"op\":\"presence\",\"from\":\"room/lobby\","
                   "\"action\":\"join\",\"who\":{\"sub\":\"kim\","
                   "\"name\":\"Kim\"}}");
    json_decref(e);
    json_decref(subscribe(&lee, R, "\"presence\":{\"name\":\"Lee\"}"));
    e = next_op(&kim, "presence");
    assert_json(e, "{\"op\":\"presence\",\"from\":\"room/lobby\","
                   "\"action\":\"join\",\"who\":{\"sub\":\"lee\","
                   "\"name\":\"Lee\"}}");
    json_decref(e);
    e = next_op(&lee, "presence"); /* Lee's own join */
    assert_string_equal(sget(json_object_get(e, "who"), "sub"), "lee");
    json_decref(e);
    r = ok(&lee, R, "presence", NULL);
    assert_int_equal(json_array_size(r), 2);
    json_decref(r);

    /* Kim starts typing; Lee sees who. */
    cli_send(kim.c, "{\"op\":\"signal\",\"to\":\"room/lobby\","
                    "\"type\":\"typing\",\"data\":{}}");
    e = next_op(&lee, "signal");
    assert_json(e, "{\"op\":\"signal\",\"from\":\"room/lobby\","
                   "\"type\":\"typing\",\"by\":\"kim\",\"data\":{}}");
    json_decref(e);

    /* Three messages; the second is retried with the same client_id (the
     * reply was lost) and posts once. */
    for (int i = 0; i < 3; i++) {
        sent[i] = ok(&kim, R, "send",
                     fmt("{\"type\":\"text\",\"body\":\"msg %d\","
                         "\"client_id\":\"k-%04d\"}",
                         i + 1, i + 1));
        assert_int_equal(iget(sent[i], "id"), i + 1);
        assert_int_equal(iget(sent[i], "seq"), i + 1);
        if (i == 1) {
            r = ok(&kim, R, "send",
                   "{\"type\":\"text\",\"body\":\"msg 2\","
                   "\"client_id\":\"k-0002\"}");
            if (!json_equal(r, sent[1]))
                fail_msg("a retried send must get the first reply");
            json_decref(r);
        }
    }
    for (int i = 0; i < 3; i++) {
        e = next_event(&lee, R, i + 1, "message");
        d = data_of(e);
        assert_int_equal(iget(d, "id"), i + 1);
        assert_int_equal(iget(d, "seq"), i + 1);
        assert_int_equal(iget(d, "at"), iget(sent[i], "at"));
        assert_string_equal(sget(d, "type"), "text");
        assert_string_equal(sget(d, "body"), fmt("msg %d", i + 1));
        assert_string_equal(sget(d, "author"), "kim");
        /* From Kim's token: her name and picture, on every message. */
        assert_string_equal(sget(d, "name"), "Kim Minji");
        assert_string_equal(sget(d, "picture"), "https://cdn.example/kim.png");
        assert_string_equal(sget(d, "client_id"), fmt("k-%04d", i + 1));
        if (i == 0)
            first = json_incref(d);
        json_decref(e);
        /* Kim, subscribed too, sees her own messages in the same order. */
        json_decref(next_event(&kim, R, i + 1, "message"));
    }

    /* Unread counts other people's messages after one's mark. */
    r = ok(&lee, R, "unread", NULL);
    assert_json(r, "{\"count\":3}");
    json_decref(r);
    r = ok(&kim, R, "unread", NULL);
    assert_json(r, "{\"count\":0}");
    json_decref(r);

    /* Lee reads up to the last one: Kim sees the receipt. */
    r = ok(&lee, R, "read", "{\"upto\":3}");
    assert_json(r, "{\"upto\":3}");
    json_decref(r);
    e = next_event(&kim, R, 4, "read");
    assert_json(data_of(e), "{\"user\":\"lee\",\"upto\":3}");
    json_decref(e);
    r = ok(&lee, R, "unread", NULL);
    assert_json(r, "{\"count\":0}");
    json_decref(r);
    /* An older mark changes nothing and says where the mark is. */
    r = ok(&lee, R, "read", "{\"upto\":1}");
    assert_json(r, "{\"upto\":3}");
    json_decref(r);
    refused(&lee, R, "read", "{\"upto\":4}", "not_found", "no message 4");

    /* History: newest first by default; forward from after. Messages are
     * exactly what the events carried. */
    hist = ok(&lee, R, "history", NULL);
    assert_false(json_is_true(json_object_get(hist, "more")));
    {
        json_t *m = json_object_get(hist, "messages");
        assert_int_equal(json_array_size(m), 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(iget(json_array_get(m, (size_t)i), "id"), 3 - i);
        if (!json_equal(json_array_get(m, 2), first))
            fail_msg("history must hold the message as the event had it");
    }
    json_decref(hist);
    hist = ok(&lee, R, "history", "{\"after\":0,\"limit\":2}");
    assert_true(json_is_true(json_object_get(hist, "more")));
    assert_int_equal(
        iget(json_array_get(json_object_get(hist, "messages"), 0), "id"), 1);
    assert_int_equal(
        iget(json_array_get(json_object_get(hist, "messages"), 1), "id"), 2);
    json_decref(hist);

    /* Lee's token has no name: she sets one for this room. */
    r = ok(&lee, R, "profile", "{\"name\":\"Lee Jiwoo\"}");
    json_decref(r);
    e = next_event(&kim, R, 5, "profile");
    assert_json(data_of(e),
                "{\"user\":\"lee\",\"name\":\"Lee Jiwoo\",\"picture\":null}");
    json_decref(e);
    r = ok(&lee, R, "send", "{\"body\":\"msg 4\",\"client_id\":\"l-0001\"}");
    assert_int_equal(iget(r, "id"), 4); /* sent: Lee's phone shows one tick */
    json_decref(r);
    e = next_event(&kim, R, 6, "message");
    d = data_of(e);
    assert_string_equal(sget(d, "author"), "lee");
    assert_string_equal(sget(d, "name"), "Lee Jiwoo");
    assert_null(json_object_get(d, "picture"));
    json_decref(e);
    /* Kim's app has it (delivered), then shows it (read): Lee sees both. */
    r = ok(&kim, R, "delivered", "{\"upto\":4}");
    assert_json(r, "{\"upto\":4}");
    json_decref(r);
    r = ok(&kim, R, "read", "{\"upto\":4}");
    json_decref(r);
    json_decref(next_event(&lee, R, 4, "read"));
    json_decref(next_event(&lee, R, 5, "profile"));
    json_decref(next_event(&lee, R, 6, "message"));
    e = next_event(&lee, R, 7, "delivered");
    assert_json(data_of(e), "{\"user\":\"kim\",\"upto\":4}");
    json_decref(e);
    e = next_event(&lee, R, 8, "read");
    assert_json(data_of(e), "{\"user\":\"kim\",\"upto\":4}");
    json_decref(e);

    /* Lee's phone drops off the network: Kim sees her leave. */
    peer_vanish(&lee);
    peer_close(&lee);
    e = next_op(&kim, "presence");
    assert_json(e, "{\"op\":\"presence\",\"from\":\"room/lobby\","
                   "\"action\":\"leave\",\"who\":{\"sub\":\"lee\","
                   "\"name\":\"Lee\"}}");
    json_decref(e);
    r = ok(&kim, R, "presence", NULL);
    assert_json(r, "[{\"sub\":\"kim\",\"name\":\"Kim\"}]");
    json_decref(r);

    for (int i = 0; i < 3; i++)
        json_decref(sent[i]);
    json_decref(first);
    peer_close(&kim);
    srv_free(s);
}

/* ------------------------------------------------------------------ */
/* 4. poll: a lunch vote with live counts                              */

static void
test_lunch_vote_with_live_counts(void **state)
{
    const char *P = "poll/lunch";
    struct srv *s;
    struct peer admin, board, v[3];
    struct peer *subs[4] = {&board, &v[0], &v[1], &v[2]};
    const char *names[3] = {"kim", "lee", "park"};
    const char *choice[3] = {"bibimbap", "ramen", "ramen"};
    json_t *stream[4][7] = {{0}}; /* per subscriber, by seq */
    json_t *r, *d;
    int ids[3];
    json_int_t totals_seen = 0;
    (void)state;

    s = serve();
    peer_open(&admin, s, "staff-1", 0, "admin", NULL, VIA_HEADER);
    peer_open(&board, s, "lunch-board", 1, "service", NULL, VIA_QUERY);
    for (int i = 0; i < 3; i++)
        peer_open(&v[i], s, names[i], i == 1, "user", NULL,
                  i == 2 ? VIA_FRAME : VIA_QUERY);
    for (int i = 0; i < 4; i++)
        json_decref(subscribe(subs[i], P, NULL));

    /* Nothing to vote on until the admin sets it up. */
    refused(&v[0], P, "vote", "{\"option\":\"ramen\"}", "not_found", NULL);
    refused(&v[0], P, "configure", "{\"options\":[\"a\",\"b\"]}", "forbidden",
            NULL);
    r = ok(&admin, P, "configure",
           "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"]}");
    assert_json(r, "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"],"
                   "\"counts\":[0,0,0],\"total\":0,\"closed\":false}");
    json_decref(r);

    /* Three people vote at once, each from their own phone. */
    for (int i = 0; i < 3; i++)
        ids[i] = call_async(&v[i], P, "vote",
                            fmt("{\"option\":\"%s\"}", choice[i]), NULL);
    for (int i = 0; i < 3; i++) {
        r = result_or_fail(&v[i], await_reply(&v[i], ids[i]));
        assert_string_equal(sget(r, "option"), choice[i]);
        assert_true(json_is_true(json_object_get(r, "changed")));
        json_decref(r);
    }
    /* Kim changes her mind; voting again for the same option is a no-op
     * (no event). */
    r = ok(&v[0], P, "vote", "{\"option\":\"ramen\"}");
    assert_json(r, "{\"option\":\"ramen\",\"counts\":[0,3,0],\"total\":3,"
                   "\"leader\":\"ramen\",\"changed\":true}");
    json_decref(r);
    r = ok(&v[0], P, "vote", "{\"option\":\"ramen\"}");
    assert_false(json_is_true(json_object_get(r, "changed")));
    json_decref(r);
    refused(&v[1], P, "vote", "{\"option\":\"pizza\"}", "bad_request",
            "'option' must be one of the options");
    r = ok(&v[1], P, "tally", NULL);
    assert_json(r, "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"],"
                   "\"counts\":[0,3,0],\"total\":3,\"closed\":false,"
                   "\"mine\":\"ramen\"}");
    json_decref(r);

    /* The admin closes the poll. */
    refused(&v[2], P, "close", NULL, "forbidden", NULL);
    r = ok(&admin, P, "close", NULL);
    assert_true(json_is_true(json_object_get(r, "closed")));
    assert_true(iget(r, "closed_at") > 0);
    json_decref(r);

    /* Every subscriber saw the same stream: configured, three votes in
     * whatever order they landed, the move, the close. */
    for (int k = 0; k < 4; k++) {
        static const char *const types[7] = {
            NULL,          "poll_configured", "vote_update", "vote_update",
            "vote_update", "vote_update",     "poll_closed"};
        for (int seq = 1; seq <= 6; seq++)
            stream[k][seq] = next_event(subs[k], P, seq, types[seq]);
    }
    assert_json(data_of(stream[0][1]),
                "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"]}");
    {
        /* The three concurrent votes: totals climb 1, 2, 3 and the counts
         * move by one vote each time, ending at the tally. */
        json_int_t last[3] = {0, 0, 0};
        for (int seq = 2; seq <= 4; seq++) {
            json_t *counts;
            json_int_t sum = 0, moved = 0;
            d = data_of(stream[0][seq]);
            counts = json_object_get(d, "counts");
            assert_int_equal(iget(d, "total"), seq - 1);
            for (size_t o = 0; o < 3; o++) {
                json_int_t n = json_integer_value(json_array_get(counts, o));
                sum += n;
                moved += n - last[o];
                if (n != last[o])
                    assert_string_equal(
                        sget(d, "option"),
                        json_string_value(json_array_get(
                            json_object_get(data_of(stream[0][1]), "options"),
                            o)));
                last[o] = n;
            }
            assert_int_equal(sum, seq - 1);
            assert_int_equal(moved, 1);
            totals_seen = iget(d, "total");
        }
        assert_int_equal(totals_seen, 3);
        assert_json(json_object_get(data_of(stream[0][4]), "counts"),
                    "[1,2,0]");
    }
    /* Ramen led already (2 to 1): no leader_changed. */
    assert_json(data_of(stream[0][5]),
                "{\"option\":\"ramen\",\"counts\":[0,3,0],\"total\":3,"
                "\"leader\":\"ramen\"}");
    assert_json(data_of(stream[0][6]), "{\"counts\":[0,3,0],\"total\":3}");
    for (int k = 1; k < 4; k++)
        for (int seq = 1; seq <= 6; seq++)
            if (!json_equal(stream[k][seq], stream[0][seq]))
                fail_msg("%s saw a different event #%d", subs[k]->name, seq);

    /* Too late. */
    refused(&v[2], P, "vote", "{\"option\":\"pho\"}", "conflict",
            "the poll is closed");
    refused(&admin, P, "close", NULL, "conflict", NULL);
    r = ok(&board, P, "tally", NULL);
    assert_json(json_object_get(r, "counts"), "[0,3,0]");
    assert_true(json_is_true(json_object_get(r, "closed")));
    json_decref(r);

    for (int k = 0; k < 4; k++)
        for (int seq = 1; seq <= 6; seq++)
            json_decref(stream[k][seq]);

    /* Dinner: anyone may suggest a place; the board announces each new
     * first place from the event alone. */
    {
        const char *Q = "poll/dinner";
        json_t *e;
        json_decref(subscribe(&board, Q, NULL));
        r = ok(&admin, Q, "configure",
               "{\"options\":[\"pizza\",\"sushi\"],\"open_options\":true}");
        json_decref(r);
        e = next_event(&board, Q, 1, "poll_configured");
        assert_json(data_of(e), "{\"options\":[\"pizza\",\"sushi\"],"
                                "\"open_options\":true}");
        json_decref(e);
        r = ok(&v[1], Q, "add_option", "{\"option\":\"tacos\"}");
        assert_json(json_object_get(r, "options"),
                    "[\"pizza\",\"sushi\",\"tacos\"]");
        json_decref(r);
        refused(&v[2], Q, "add_option", "{\"option\":\"tacos\"}", "conflict",
                "the poll has 'tacos' already");
        e = next_event(&board, Q, 2, "poll_configured");
        assert_json(data_of(e), "{\"options\":[\"pizza\",\"sushi\",\"tacos\"],"
                                "\"open_options\":true,\"added\":\"tacos\"}");
        json_decref(e);
        json_decref(ok(&v[0], Q, "vote", "{\"option\":\"tacos\"}"));
        json_decref(ok(&v[1], Q, "vote", "{\"option\":\"pizza\"}"));
        json_decref(ok(&v[2], Q, "vote", "{\"option\":\"pizza\"}"));
        e = next_event(&board, Q, 3, "vote_update");
        assert_json(data_of(e), "{\"option\":\"tacos\",\"counts\":[0,0,1],"
                                "\"total\":1,\"leader\":\"tacos\","
                                "\"leader_changed\":true}");
        json_decref(e);
        e = next_event(&board, Q, 4, "vote_update");
        assert_json(data_of(e), "{\"option\":\"pizza\",\"counts\":[1,0,1],"
                                "\"total\":2,\"leader\":null,"
                                "\"leader_changed\":true}");
        json_decref(e);
        e = next_event(&board, Q, 5, "vote_update");
        assert_json(data_of(e), "{\"option\":\"pizza\",\"counts\":[2,0,1],"
                                "\"total\":3,\"leader\":\"pizza\","
                                "\"leader_changed\":true}");
        json_decref(e);
    }
    peer_close(&admin);
    peer_close(&board);
    for (int i = 0; i < 3; i++)
        peer_close(&v[i]);
    srv_free(s);
}

/* ------------------------------------------------------------------ */
/* 5. user: a notification reaches the user's own connection            */

static void
test_notification_arrives_on_the_users_connection(void **state)
{
    const char *U = "user/kim";
    struct srv *s;
    struct peer kim, lee, admin;
    char *billing = token("billing", "service", NULL);
    char *lee_tok = token("lee", "user", NULL);
    char hdrs[HF_AUTH_TOKEN_MAX + 128], slot[40];
    hf_buf body = {0};
    json_t *r, *e, *d, *j;
    (void)state;

    s = serve();
    peer_open(&kim, s, "kim", 0, "user", NULL, VIA_HEADER);
    peer_open(&lee, s, "lee", 1, "user", NULL, VIA_QUERY);
    peer_open(&admin, s, "staff-1", 0, "admin", NULL, VIA_FRAME);

    r = subscribe(&kim, U, NULL);
    assert_int_equal(iget(r, "seq"), 0);
    json_decref(r);
    /* Kim's inbox is Kim's. */
    expect_refusal(&lee, sub_reply(&lee, U, NULL), "forbidden", NULL);
    refused(&lee, U, "list", NULL, "forbidden", NULL);

    /* The billing backend posts over HTTP with its service token. */
    snprintf(hdrs, sizeof(hdrs),
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             billing);
    assert_int_equal(
        http(s, "POST", "/v1/call/user/kim/notify", hdrs,
             "{\"title\":\"Payment received\",\"message\":\"Thanks! 12,000 "
             "KRW\",\"type\":\"receipt\",\"link\":\"/orders/A-1001\","
             "\"order\":\"A-1001\"}",
             &body),
        200);
    assert_string_equal(body.data,
                        "{\"ok\":true,\"result\":{\"id\":1,\"unread\":1}}");
    /* A user cannot post, not even to her own inbox; no token is 401. */
    snprintf(hdrs, sizeof(hdrs), "Authorization: Bearer %s\r\n", lee_tok);
    assert_int_equal(http(s, "POST", "/v1/call/user/kim/notify", hdrs,
                          "{\"title\":\"hi\",\"message\":\"x\","
                          "\"priority\":\"low\"}",
                          &body),
                     403);
    assert_int_equal(http(s, "POST", "/v1/call/user/kim/notify", NULL,
                          "{\"title\":\"hi\",\"message\":\"x\","
                          "\"priority\":\"low\"}",
                          &body),
                     401);
    refused(&kim, U, "notify",
            "{\"title\":\"hi\",\"message\":\"me\",\"priority\":\"low\"}",
            "forbidden", "method 'notify' needs another role");

    e = next_event(&kim, U, 1, "notification");
    d = data_of(e);
    assert_true(iget(d, "at") > 0);
    json_object_del(d, "at");
    /* No priority given: medium; the link is a field of its own. */
    assert_json(d, "{\"id\":1,\"title\":\"Payment received\","
                   "\"message\":\"Thanks! 12,000 KRW\",\"priority\":\"medium\","
                   "\"type\":\"receipt\",\"link\":\"/orders/A-1001\","
                   "\"read\":false,\"from\":\"billing\","
                   "\"order\":\"A-1001\"}");
    json_decref(e);

    r = ok(&kim, U, "unread", NULL);
    assert_json(r, "{\"count\":1}");
    json_decref(r);
    r = ok(&kim, U, "mark_read", "{\"id\":1}");
    assert_json(r, "{\"marked\":1,\"unread\":0}");
    json_decref(r);
    e = next_event(&kim, U, 2, "notification_read");
    assert_json(data_of(e), "{\"ids\":[1],\"unread\":0}");
    json_decref(e);
    r = ok(&kim, U, "unread", NULL);
    assert_json(r, "{\"count\":0}");
    json_decref(r);
    r = ok(&kim, U, "list", NULL);
    assert_int_equal(iget(r, "unread"), 0);
    assert_false(json_is_true(json_object_get(r, "more")));
    j = json_array_get(json_object_get(r, "items"), 0);
    assert_true(json_is_true(json_object_get(j, "read")));
    assert_true(iget(j, "read_at") > 0);
    json_decref(r);

    /* A device reminder, end to end: Kim books a console for five minutes
     * from now; once approved (less than ten minutes ahead) the device's
     * outbox reminds her at once. */
    {
        time_t at = time(NULL) + 300;
        struct tm tm;
        gmtime_r(&at, &tm);
        strftime(slot, sizeof(slot), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    r = ok(&kim, "device/ps5-03", "reserve", fmt("{\"slot\":\"%s\"}", slot));
    assert_string_equal(sget(r, "state"), "pending");
    json_decref(r);
    r = ok(&admin, "device/ps5-03", "approve", fmt("{\"slot\":\"%s\"}", slot));
    assert_string_equal(sget(r, "state"), "confirmed");
    /* less than ten minutes ahead: due at once (the handler's clock is
     * fixed per call, so exactly the approval time) */
    assert_int_equal(iget(r, "remind_at"), iget(r, "approved_at"));
    assert_null_member(r, "reminded_at");
    json_decref(r);
    /* First the approval itself, then the reminder: both through the
     * device's outbox, in the order the device made them. */
    e = next_event(&kim, U, 3, "notification");
    d = data_of(e);
    json_object_del(d, "at");
    assert_json(d, fmt("{\"id\":2,\"title\":\"Reservation approved\","
                       "\"message\":\"Your reservation of ps5-03 at %s is "
                       "confirmed.\",\"priority\":\"medium\","
                       "\"type\":\"reservation_approved\",\"link\":null,"
                       "\"read\":false,\"from\":\"device/ps5-03\","
                       "\"device\":\"ps5-03\",\"slot\":\"%s\","
                       "\"reservation_id\":1}",
                       slot, slot));
    json_decref(e);
    e = next_event(&kim, U, 4, "notification");
    d = data_of(e);
    json_object_del(d, "at");
    assert_json(d, fmt("{\"id\":3,\"title\":\"Reservation reminder\","
                       "\"message\":\"Your reservation of ps5-03 starts at "
                       "%s.\",\"priority\":\"high\",\"type\":\"reminder\","
                       "\"link\":null,"
                       "\"read\":false,\"from\":\"device/ps5-03\","
                       "\"device\":\"ps5-03\",\"slot\":\"%s\","
                       "\"reservation_id\":1}",
                       slot, slot));
    json_decref(e);
    r = ok(&kim, U, "unread", NULL);
    assert_json(r, "{\"count\":2}");
    json_decref(r);
    /* The device recorded that it reminded her (same atomic unit as the
     * send, so it is there by the time the notification is). */
    r = ok(&kim, "device/ps5-03", "get", NULL);
    assert_true(iget(json_array_get(json_object_get(r, "reservations"), 0),
                     "reminded_at") > 0);
    json_decref(r);

    /* The billing backend tells a list of customers at once: one call,
     * relayed by the inbox it names, one item in each inbox. */
    snprintf(hdrs, sizeof(hdrs),
             "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             billing);
    assert_int_equal(
        http(s, "POST", "/v1/call/user/billing/notify_many", hdrs,
             "{\"users\":[\"kim\",\"lee\"],\"title\":\"New prices\","
             "\"message\":\"From Monday.\",\"type\":\"notice\","
             "\"link\":\"/prices\"}",
             &body),
        200);
    assert_string_equal(body.data, "{\"ok\":true,\"result\":{\"sent\":2}}");
    e = next_event(&kim, U, 5, "notification");
    d = data_of(e);
    json_object_del(d, "at");
    assert_json(d, "{\"id\":4,\"title\":\"New prices\","
                   "\"message\":\"From Monday.\",\"priority\":\"medium\","
                   "\"type\":\"notice\",\"link\":\"/prices\",\"read\":false,"
                   "\"from\":\"user/billing\",\"by\":\"billing\"}");
    json_decref(e);
    r = ok(&lee, "user/lee", "list", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    json_decref(r);
    /* Kim's app shows her receipts only. */
    r = ok(&kim, U, "list", "{\"type\":\"receipt\"}");
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    assert_int_equal(iget(json_array_get(json_object_get(r, "items"), 0), "id"),
                     1);
    json_decref(r);

    hf_buf_free(&body);
    free(billing);
    free(lee_tok);
    peer_close(&kim);
    peer_close(&lee);
    peer_close(&admin);
    srv_free(s);
}

/* Each test stops its server; after a failure the teardown does. */
#define APP_TEST(t) cmocka_unit_test_teardown(t, stop_leftover_server)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        APP_TEST(
            test_waiting_room_board_updates_live_as_guests_register_and_staff_call),
        APP_TEST(
            test_reservation_client_and_admin_while_a_dashboard_watches_the_device),
        APP_TEST(test_two_chat_users_with_typing_receipts_and_unread_counts),
        APP_TEST(test_lunch_vote_with_live_counts),
        APP_TEST(test_notification_arrives_on_the_users_connection),
    };
    signal(SIGPIPE, SIG_IGN);
    if (getenv("HF_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
