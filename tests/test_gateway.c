/*
 * test_gateway.c - the server as clients see it: the real holdfast binary
 * on a free port, driven over WebSocket and HTTP with a raw client
 * (client/wsclient.h) that can also send what a good client never would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "transport/auth.h"
#include "client/wsclient.h"
#include "tests/wsh.h"

#define SECRET "test-secret-0123456789"

/* ------------------------------------------------------------------ */
/* tests                                                               */

static void
call_and_reply(int msgpack)
{
    struct srv s;
    struct cli *c;
    json_t *r;

    srv_start(&s, NULL);
    c = cli_open(&s, msgpack);
    r = cli_call(c, 1, "{\"op\":\"call\",\"id\":1,\"to\":\"counter/a\","
                       "\"method\":\"incr\",\"args\":{\"by\":41}}");
    assert_int_equal(json_integer_value(json_object_get(result_of(r),
                                                        "value")),
                     41);
    json_decref(r);
    /* String ids are echoed as they came. */
    cli_send(c, "{\"op\":\"call\",\"id\":\"x-1\",\"to\":\"counter/a\","
                "\"method\":\"incr\"}");
    r = cli_expect(c, "reply");
    assert_string_equal(sget(r, "id"), "x-1");
    assert_int_equal(
        json_integer_value(json_object_get(result_of(r), "value")), 42);
    json_decref(r);
    /* Several messages in one frame, answered in order. */
    cli_send(c, "{\"op\":\"ping\",\"id\":5}\n"
                "{\"op\":\"call\",\"id\":6,\"to\":\"counter/a\","
                "\"method\":\"get\"}");
    r = cli_expect(c, "pong");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 5);
    json_decref(r);
    r = cli_expect(c, "reply");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 6);
    json_decref(r);
    cli_close(c);
    assert_int_equal(srv_stop(&s), 0);
    srv_free(&s);
}

static void
test_ws_call_and_reply_json(void **state)
{
    (void)state;
    call_and_reply(0);
}

static void
test_ws_call_and_reply_msgpack(void **state)
{
    (void)state;
    call_and_reply(1);
}

static void
test_subscriber_gets_events_in_seq_order(void **state)
{
    struct srv s;
    struct cli *w, *sub;
    json_t *r;
    char msg[200];
    (void)state;

    srv_start(&s, NULL);
    sub = cli_open(&s, 0);
    w = cli_open(&s, 1);
    r = cli_call(sub, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"counter/e\"}");
    assert_int_equal(json_integer_value(json_object_get(result_of(r), "seq")),
                     0);
    json_decref(r);
    /* 200 events, pipelined in frames of 20. */
    for (int f = 0; f < 10; f++) {
        hf_buf b = {0};
        for (int i = 0; i < 20; i++) {
            snprintf(msg, sizeof(msg),
                     "%s{\"op\":\"call\",\"id\":%d,\"to\":\"counter/e\","
                     "\"method\":\"incr\",\"args\":{\"emit\":true}}",
                     i ? "\n" : "", f * 20 + i + 10);
            hf_buf_append(&b, msg, strlen(msg));
        }
        hf_buf_append(&b, "", 1);
        cli_send(w, b.data);
        hf_buf_free(&b);
    }
    for (int seq = 1; seq <= 200; seq++) {
        json_t *e = cli_expect(sub, "event");
        assert_string_equal(sget(e, "from"), "counter/e");
        assert_string_equal(sget(e, "type"), "changed");
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), seq);
        assert_int_equal(json_integer_value(json_object_get(
                             json_object_get(e, "data"), "value")),
                         seq);
        json_decref(e);
    }
    cli_close(w);
    cli_close(sub);
    srv_free(&s);
}

static void
incr_n(struct cli *c, const char *to, int n, int id0)
{
    char msg[200];
    for (int i = 0; i < n; i++) {
        json_t *r;
        snprintf(msg, sizeof(msg),
                 "{\"op\":\"call\",\"id\":%d,\"to\":\"%s\",\"method\":"
                 "\"incr\",\"args\":{\"emit\":true}}",
                 id0 + i, to);
        r = cli_call(c, id0 + i, msg);
        result_of(r);
        json_decref(r);
    }
}

static void
test_reconnect_with_since_replays_exactly_the_missed_events(void **state)
{
    struct srv s;
    struct cli *c, *w;
    json_t *r;
    char epoch[40];
    (void)state;

    srv_start(&s, NULL);
    w = cli_open(&s, 0);
    c = cli_open(&s, 0);
    r = cli_call(c, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"counter/r\"}");
    snprintf(epoch, sizeof(epoch), "%s", sget(result_of(r), "epoch"));
    json_decref(r);
    incr_n(w, "counter/r", 3, 100);
    for (int i = 1; i <= 3; i++)
        json_decref(cli_expect(c, "event"));
    cli_close(c); /* drops off */
    incr_n(w, "counter/r", 4, 200); /* seq 4..7 while away */
    c = cli_open(&s, 0);
    {
        char sub[200];
        snprintf(sub, sizeof(sub),
                 "{\"op\":\"sub\",\"id\":2,\"to\":\"counter/r\",\"since\":3,"
                 "\"epoch\":\"%s\"}",
                 epoch);
        r = cli_call(c, 2, sub);
    }
    assert_true(json_is_true(json_object_get(result_of(r), "recovered")));
    assert_int_equal(json_integer_value(json_object_get(result_of(r), "seq")),
                     7);
    json_decref(r);
    for (int seq = 4; seq <= 7; seq++) {
        json_t *e = cli_expect(c, "event");
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), seq);
        json_decref(e);
    }
    incr_n(w, "counter/r", 1, 300);
    r = cli_expect(c, "event");
    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 8);
    json_decref(r);
    cli_close(c);
    cli_close(w);
    srv_free(&s);
}

static void
test_recovered_false_when_history_is_gone(void **state)
{
    const char *flags[] = {"--log-retain", "3", NULL};
    struct srv s;
    struct cli *c;
    json_t *r;
    (void)state;

    srv_start(&s, flags);
    c = cli_open(&s, 0);
    incr_n(c, "counter/g", 10, 1);
    r = cli_call(c, 50,
                 "{\"op\":\"sub\",\"id\":50,\"to\":\"counter/g\",\"since\":2}");
    assert_false(json_is_true(json_object_get(result_of(r), "recovered")));
    assert_int_equal(json_integer_value(json_object_get(result_of(r), "seq")),
                     10);
    json_decref(r);
    r = cli_call(c, 51, "{\"op\":\"sub\",\"id\":51,\"to\":\"counter/g\","
                        "\"since\":8}");
    assert_true(json_is_true(json_object_get(result_of(r), "recovered")));
    json_decref(r);
    cli_close(c);
    srv_free(&s);
}

static void
test_presence_join_and_leave_including_abrupt_disconnect(void **state)
{
    struct srv s;
    struct cli *a, *b;
    json_t *r, *who;
    (void)state;

    srv_start(&s, NULL);
    a = cli_open(&s, 0);
    b = cli_open(&s, 1);
    r = cli_call(a, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"room/lobby\","
                       "\"presence\":{\"name\":\"Kim\"}}");
    result_of(r);
    json_decref(r);
    r = cli_expect(a, "presence"); /* its own join */
    json_decref(r);
    r = cli_call(b, 2, "{\"op\":\"sub\",\"id\":2,\"to\":\"room/lobby\","
                       "\"presence\":{\"name\":\"Lee\"}}");
    json_decref(r);
    r = cli_expect(a, "presence");
    assert_string_equal(sget(r, "action"), "join");
    who = json_object_get(r, "who");
    assert_string_equal(sget(who, "name"), "Lee");
    json_decref(r);
    r = cli_call(a, 3, "{\"op\":\"call\",\"id\":3,\"to\":\"room/lobby\","
                       "\"method\":\"presence\"}");
    assert_int_equal(json_array_size(result_of(r)), 2);
    json_decref(r);
    /* b vanishes without a close frame. */
    shutdown(hf_ws_fd(b->ws), SHUT_RDWR);
    cli_close(b);
    r = cli_expect(a, "presence");
    assert_string_equal(sget(r, "action"), "leave");
    assert_string_equal(sget(json_object_get(r, "who"), "name"), "Lee");
    json_decref(r);
    r = cli_call(a, 4, "{\"op\":\"call\",\"id\":4,\"to\":\"room/lobby\","
                       "\"method\":\"info\"}");
    assert_int_equal(
        json_integer_value(json_object_get(result_of(r), "subscribers")), 1);
    json_decref(r);
    cli_close(a);
    srv_free(&s);
}

static void
test_signal_reaches_subscribers_without_being_logged(void **state)
{
    struct srv s;
    struct cli *a, *b;
    json_t *r;
    (void)state;

    srv_start(&s, NULL);
    a = cli_open(&s, 0);
    b = cli_open(&s, 0);
    json_decref(cli_call(a, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"room/s\"}"));
    cli_send(b, "{\"op\":\"signal\",\"to\":\"room/s\",\"type\":\"typing\","
                "\"data\":{\"on\":true}}");
    r = cli_expect(a, "signal");
    assert_string_equal(sget(r, "type"), "typing");
    assert_string_equal(sget(r, "from"), "room/s");
    assert_true(json_is_true(json_object_get(json_object_get(r, "data"),
                                             "on")));
    json_decref(r);
    r = cli_call(a, 2, "{\"op\":\"call\",\"id\":2,\"to\":\"room/s\","
                       "\"method\":\"info\"}");
    assert_int_equal(json_integer_value(json_object_get(result_of(r), "seq")),
                     0);
    json_decref(r);
    cli_close(a);
    cli_close(b);
    srv_free(&s);
}

static void
test_http_call_with_idempotency_key_runs_once(void **state)
{
    struct srv s;
    hf_buf body = {0};
    json_t *j;
    (void)state;

    srv_start(&s, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            http(&s, "POST", "/v1/call/counter/h/incr",
                 "Content-Type: application/json\r\nIdempotency-Key: k-1\r\n",
                 "{\"by\":7}", &body),
            200);
        assert_string_equal(body.data, "{\"ok\":true,\"result\":{\"value\":7}}");
    }
    assert_int_equal(http(&s, "POST", "/v1/call/counter/h/get", NULL, NULL,
                          &body),
                     200);
    j = json_loads(body.data, 0, NULL);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "result"),
                                           "value")),
        7);
    json_decref(j);
    assert_int_equal(http(&s, "POST", "/v1/call/counter/h/nope", NULL, "{}",
                          &body),
                     404);
    assert_int_equal(http(&s, "POST", "/v1/call/counter/h/incr", NULL,
                          "{not json", &body),
                     400);
    assert_non_null(strstr(body.data, "\"bad_request\""));
    assert_int_equal(http(&s, "POST", "/v1/call/nokind/h/x", NULL, NULL,
                          &body),
                     404);
    hf_buf_free(&body);
    srv_free(&s);
}

static void
test_http_polling_endpoint_returns_history(void **state)
{
    struct srv s;
    struct cli *c;
    hf_buf body = {0};
    json_t *j, *ev;
    (void)state;

    srv_start(&s, NULL);
    c = cli_open(&s, 0);
    incr_n(c, "counter/p", 5, 1);
    assert_int_equal(http(&s, "GET", "/v1/events/counter/p?after=2&limit=2",
                          NULL, NULL, &body),
                     200);
    j = json_loads(body.data, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 5);
    assert_non_null(json_object_get(j, "epoch"));
    ev = json_object_get(j, "events");
    assert_int_equal(json_array_size(ev), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 3);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(ev, 1), "seq")), 4);
    json_decref(j);
    assert_int_equal(http(&s, "GET", "/v1/events/bad", NULL, NULL, &body),
                     400);
    assert_int_equal(http(&s, "GET", "/healthz", NULL, NULL, &body), 200);
    hf_buf_free(&body);
    cli_close(c);
    srv_free(&s);
}

/* Two requests on one keep-alive connection: the second reuses the
 * session lws kept (it once wrote into freed session storage). */
static void
test_http_keep_alive_serves_several_requests(void **state)
{
    struct srv s;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char req[] = "POST /v1/call/counter/ka/incr HTTP/1.1\r\n"
                       "Host: x\r\nContent-Length: 0\r\n\r\n";
    char buf[4096] = "";
    int fd;
    (void)state;

    srv_start(&s, NULL);
    sa.sin_port = htons((uint16_t)s.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 1; i <= 3; i++) {
        size_t got = 0;
        char want[64];
        assert_int_equal(write(fd, req, sizeof(req) - 1),
                         (ssize_t)(sizeof(req) - 1));
        snprintf(want, sizeof(want), "{\"value\":%d}", i);
        while (strstr(buf, want) == NULL || got == 0) {
            ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
            assert_true(n > 0);
            got += (size_t)n;
            buf[got] = '\0';
        }
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        memset(buf, 0, sizeof(buf));
    }
    close(fd);
    srv_free(&s);
}

static void
test_metrics_parse_as_prometheus_text(void **state)
{
    struct srv s;
    struct cli *c;
    hf_buf body = {0};
    char *line, *save = NULL;
    int samples = 0;
    (void)state;

    srv_start(&s, NULL);
    c = cli_open(&s, 0);
    incr_n(c, "counter/m", 3, 1);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, NULL, &body), 200);
    for (line = strtok_r(body.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[200], value[64];
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP ", 7) == 0 ||
                        strncmp(line, "# TYPE ", 7) == 0);
            continue;
        }
        /* name{labels} value  |  name value */
        assert_int_equal(sscanf(line, "%199s %63s", name, value), 2);
        assert_true((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_');
        {
            char *end;
            strtod(value, &end);
            assert_true(*end == '\0' || strcmp(value, "+Inf") == 0);
        }
        samples++;
    }
    assert_true(samples > 30);
    hf_buf_free(&body);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, NULL, &body), 200);
    assert_non_null(strstr(body.data, "holdfast_connections 1"));
    assert_non_null(strstr(body.data, "holdfast_calls_total{outcome=\"ok\"} 3"));
    assert_non_null(strstr(body.data, "holdfast_commit_latency_us_bucket"));
    /* The process collector's names, as dashboards and the bench read them. */
    assert_non_null(strstr(body.data, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(body.data, "\nprocess_open_fds "));
    assert_non_null(strstr(body.data, "\nprocess_cpu_seconds_total "));
    hf_buf_free(&body);
    cli_close(c);
    srv_free(&s);
}

static void
test_bad_input_gets_coded_errors_and_the_connection_stays(void **state)
{
    struct srv s;
    struct cli *c;
    json_t *r;
    (void)state;

    srv_start(&s, NULL);
    c = cli_open(&s, 0);
    /* invalid JSON, no id to echo */
    cli_send(c, "{\"op\":\"call\",");
    r = cli_expect(c, "reply");
    assert_string_equal(err_code(r), "bad_request");
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    expect_err(c, 1, "{\"op\":\"frobnicate\",\"id\":1}", "bad_request");
    expect_err(c, 2, "{\"op\":\"call\",\"id\":2,\"method\":\"get\"}",
               "bad_request");
    expect_err(c, 3, "{\"op\":\"call\",\"id\":3,\"to\":7,\"method\":\"get\"}",
               "bad_request");
    expect_err(c, 4, "{\"op\":\"call\",\"id\":4,\"to\":\"Bad Addr\","
                     "\"method\":\"get\"}",
               "bad_request");
    expect_err(c, 5, "{\"op\":\"call\",\"id\":5,\"to\":\"nokind/x\","
                     "\"method\":\"get\"}",
               "not_found");
    expect_err(c, 6, "{\"op\":\"call\",\"id\":6,\"to\":\"counter/x\","
                     "\"method\":\"nope\"}",
               "not_found");
    expect_err(c, 7, "{\"op\":\"sub\",\"id\":7,\"to\":\"counter/x\","
                     "\"since\":\"yesterday\"}",
               "bad_request");
    cli_send(c, "[1,2,3]"); /* not an object: no id to echo */
    r = cli_expect(c, "reply");
    assert_string_equal(err_code(r), "bad_request");
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    /* invalid UTF-8 in a text frame */
    {
        const char bad[] = "{\"op\":\"call\",\"id\":9,\"to\":\"counter/x\","
                           "\"method\":\"get\",\"args\":{\"k\":\"\xff\xfe\"}}";
        assert_int_equal(hf_ws_send(c->ws, 1, bad, sizeof(bad) - 1), 0);
        r = cli_expect(c, "reply");
        assert_string_equal(err_code(r), "bad_request");
        json_decref(r);
    }
    /* invalid msgpack, and a header claiming 2^31 elements */
    {
        const unsigned char junk[] = {0xc1, 0xc1, 0xc1};
        const unsigned char huge[] = {0xdd, 0x80, 0x00, 0x00, 0x00, 0x01};
        assert_int_equal(hf_ws_send(c->ws, 2, junk, sizeof(junk)), 0);
        r = cli_expect(c, "reply");
        assert_string_equal(err_code(r), "bad_request");
        json_decref(r);
        assert_int_equal(hf_ws_send(c->ws, 2, huge, sizeof(huge)), 0);
        r = cli_expect(c, "reply");
        assert_string_equal(err_code(r), "bad_request");
        json_decref(r);
    }
    /* still alive and well */
    r = cli_call(c, 99, "{\"op\":\"call\",\"id\":99,\"to\":\"counter/x\","
                        "\"method\":\"incr\"}");
    assert_int_equal(
        json_integer_value(json_object_get(result_of(r), "value")), 1);
    json_decref(r);
    cli_close(c);
    assert_int_equal(srv_stop(&s), 0);
    srv_free(&s);
}

static void
test_oversize_frame_is_closed_with_1009(void **state)
{
    const char *flags[] = {"--frame-max", "1024", NULL};
    struct srv s;
    struct cli *c, *other;
    char *big = malloc(4096);
    json_t *r;
    (void)state;

    srv_start(&s, flags);
    other = cli_open(&s, 0);
    c = cli_open(&s, 0);
    memset(big, ' ', 4096);
    memcpy(big, "{\"op\":\"ping\",\"id\":1}", 20);
    assert_int_equal(hf_ws_send(c->ws, 1, big, 4096), 0);
    while ((r = cli_next(c, WAIT)) != NULL)
        json_decref(r);
    assert_int_equal(c->close_code, 1009);
    /* The server and other clients are unaffected. */
    cli_send(other, "{\"op\":\"ping\",\"id\":1}");
    r = cli_expect(other, "pong");
    json_decref(r);
    free(big);
    cli_close(c);
    cli_close(other);
    srv_free(&s);
}

static void
test_garbage_streak_is_closed_with_1008(void **state)
{
    struct srv s;
    struct cli *c;
    json_t *j;
    int errors = 0;
    (void)state;

    srv_start(&s, NULL);
    c = cli_open(&s, 0);
    for (int i = 0; i < 40; i++)
        if (hf_ws_send(c->ws, 1, "garbage", 7) != 0)
            break;
    while ((j = cli_next(c, WAIT)) != NULL) {
        errors++;
        json_decref(j);
    }
    assert_true(errors >= 1);
    assert_int_equal(c->close_code, 1008);
    cli_close(c);
    srv_free(&s);
}

static void
test_auth_rejects_missing_forged_and_expired_tokens(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--jwt-leeway-s", "0", NULL};
    struct srv s;
    struct cli *c;
    char q[1200];
    char *good, *forged, *expired;
    int st = 0;
    json_t *r;
    (void)state;

    srv_start(&s, flags);
    good = hf_auth_mint(SECRET, "kim", "user", time(NULL) + 600, NULL);
    forged = hf_auth_mint("not-the-secret", "kim", "admin", time(NULL) + 600,
                          NULL);
    expired = hf_auth_mint(SECRET, "kim", "user", time(NULL) - 10, NULL);

    /* No token: connected, but nothing is allowed until auth. */
    c = cli_open(&s, 0);
    expect_err(c, 1, "{\"op\":\"call\",\"id\":1,\"to\":\"counter/a\","
                     "\"method\":\"get\"}",
               "unauthorized");
    snprintf(q, sizeof(q), "{\"op\":\"auth\",\"id\":2,\"token\":\"%s\"}",
             forged);
    expect_err(c, 2, q, "unauthorized");
    snprintf(q, sizeof(q), "{\"op\":\"auth\",\"id\":3,\"token\":\"%s\"}",
             expired);
    expect_err(c, 3, q, "unauthorized");
    snprintf(q, sizeof(q), "{\"op\":\"auth\",\"id\":4,\"token\":\"%s\"}",
             good);
    r = cli_call(c, 4, q);
    assert_string_equal(sget(result_of(r), "sub"), "kim");
    json_decref(r);
    r = cli_call(c, 5, "{\"op\":\"call\",\"id\":5,\"to\":\"counter/a\","
                       "\"method\":\"get\"}");
    result_of(r);
    json_decref(r);
    cli_close(c);

    /* A bad token on the URL is refused at the handshake. */
    snprintf(q, sizeof(q), "?token=%s", forged);
    assert_null(cli_open_ex(&s, 0, q, NULL, &st));
    c = NULL;
    /* A good one in the URL or the header works. */
    snprintf(q, sizeof(q), "?token=%s", good);
    c = cli_open_ex(&s, 0, q, NULL, &st);
    assert_non_null(c);
    json_decref(cli_expect(c, "hello"));
    r = cli_call(c, 1, "{\"op\":\"call\",\"id\":1,\"to\":\"counter/a\","
                       "\"method\":\"get\"}");
    result_of(r);
    json_decref(r);
    cli_close(c);
    snprintf(q, sizeof(q), "Authorization: Bearer %s\r\n", good);
    c = cli_open_ex(&s, 0, NULL, q, &st);
    assert_non_null(c);
    cli_close(c);

    /* HTTP needs a token too. */
    {
        hf_buf body = {0};
        assert_int_equal(http(&s, "POST", "/v1/call/counter/a/get", NULL,
                              NULL, &body),
                         401);
        snprintf(q, sizeof(q), "Authorization: Bearer %s\r\n", good);
        assert_int_equal(http(&s, "POST", "/v1/call/counter/a/get", q, NULL,
                              &body),
                         200);
        hf_buf_free(&body);
    }
    free(good);
    free(forged);
    free(expired);
    srv_free(&s);
}

static void
test_acl_and_user_isolation(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, NULL};
    const char *acl[] = {"counter/shop-*", "user/*", NULL};
    struct srv s;
    struct cli *c;
    char q[1200];
    char *tok, *admin;
    (void)state;

    srv_start(&s, flags);
    tok = hf_auth_mint(SECRET, "kim", "user", time(NULL) + 600, acl);
    admin = hf_auth_mint(SECRET, "boss", "admin", time(NULL) + 600, NULL);
    snprintf(q, sizeof(q), "?token=%s", tok);
    c = cli_open_ex(&s, 0, q, NULL, NULL);
    assert_non_null(c);
    json_decref(cli_expect(c, "hello"));
    {
        json_t *r = cli_call(c, 1, "{\"op\":\"call\",\"id\":1,\"to\":"
                                   "\"counter/shop-1\",\"method\":\"get\"}");
        result_of(r);
        json_decref(r);
    }
    expect_err(c, 2, "{\"op\":\"call\",\"id\":2,\"to\":\"counter/other\","
                     "\"method\":\"get\"}",
               "forbidden");
    expect_err(c, 3, "{\"op\":\"sub\",\"id\":3,\"to\":\"counter/other\"}",
               "forbidden");
    /* user/kim is kim's; user/lee is not, though the acl allows user/... */
    expect_err(c, 4, "{\"op\":\"sub\",\"id\":4,\"to\":\"user/lee\"}",
               "forbidden");
    {
        json_t *r = cli_call(c, 5, "{\"op\":\"sub\",\"id\":5,\"to\":"
                                   "\"user/kim\"}");
        result_of(r);
        json_decref(r);
    }
    cli_close(c);
    /* An admin reaches any inbox. */
    snprintf(q, sizeof(q), "?token=%s", admin);
    c = cli_open_ex(&s, 0, q, NULL, NULL);
    assert_non_null(c);
    json_decref(cli_expect(c, "hello"));
    {
        json_t *r = cli_call(c, 1, "{\"op\":\"sub\",\"id\":1,\"to\":"
                                   "\"user/lee\"}");
        result_of(r);
        json_decref(r);
    }
    cli_close(c);
    free(tok);
    free(admin);
    srv_free(&s);
}

static void
test_rate_limit_refuses_the_excess(void **state)
{
    const char *flags[] = {"--rate", "5", "--rate-burst", "5", NULL};
    struct srv s;
    struct cli *c;
    hf_buf b = {0};
    int ok = 0, limited = 0;
    (void)state;

    srv_start(&s, flags);
    c = cli_open(&s, 0);
    for (int i = 1; i <= 30; i++) {
        char m[80];
        snprintf(m, sizeof(m), "%s{\"op\":\"ping\",\"id\":%d}", i > 1 ? "\n" : "",
                 i);
        hf_buf_append(&b, m, strlen(m));
    }
    assert_int_equal(hf_ws_send(c->ws, 1, b.data, b.len), 0);
    for (int i = 0; i < 30; i++) {
        json_t *r = cli_next(c, WAIT);
        assert_non_null(r);
        if (strcmp(sget(r, "op"), "pong") == 0)
            ok++;
        else if (err_code(r) && strcmp(err_code(r), "rate_limited") == 0)
            limited++;
        json_decref(r);
    }
    assert_true(ok >= 5 && ok <= 7);
    assert_int_equal(ok + limited, 30);
    hf_buf_free(&b);
    cli_close(c);
    srv_free(&s);
}

static void
test_slow_consumer_is_cut_off_while_others_keep_receiving(void **state)
{
    const char *flags[] = {"--outbuf-max", "65536", "--rate", "10000000",
                           "--rate-burst", "10000000", NULL};
    struct srv s;
    struct cli *slow, *fast, *w;
    json_t *r;
    int got = 0, rounds = 0;
    (void)state;

    srv_start(&s, flags);
    slow = cli_open(&s, 0);
    fast = cli_open(&s, 0);
    w = cli_open(&s, 1);
    json_decref(cli_call(slow, 1, "{\"op\":\"sub\",\"id\":1,\"to\":"
                                  "\"counter/flood\"}"));
    json_decref(cli_call(fast, 1, "{\"op\":\"sub\",\"id\":1,\"to\":"
                                  "\"counter/flood\"}"));
    /* Publish until the slow reader (which never reads) is cut off; the
     * fast one reads everything. */
    for (rounds = 0; rounds < 400; rounds++) {
        hf_buf b = {0};
        for (int i = 0; i < 250; i++) {
            char m[160];
            snprintf(m, sizeof(m),
                     "%s{\"op\":\"call\",\"id\":%d,\"to\":\"counter/flood\","
                     "\"method\":\"incr\",\"args\":{\"emit\":true}}",
                     i ? "\n" : "", 1000 + rounds * 250 + i);
            hf_buf_append(&b, m, strlen(m));
        }
        hf_buf_append(&b, "", 1);
        cli_send(w, b.data);
        hf_buf_free(&b);
        while (got < (rounds + 1) * 250) {
            r = cli_expect(fast, "event");
            got++;
            json_decref(r);
        }
        while ((r = cli_next(w, 0)) != NULL)
            json_decref(r);
        {
            hf_buf body = {0};
            http(&s, "GET", "/metrics", NULL, NULL, &body);
            int cut = strstr(body.data, "holdfast_slow_consumers_total 1") !=
                      NULL;
            hf_buf_free(&body);
            if (cut)
                break;
        }
    }
    assert_true(rounds < 400);
    /* The slow one finds a 1013 close after what it had buffered. */
    while ((r = cli_next(slow, WAIT)) != NULL)
        json_decref(r);
    assert_int_equal(slow->close_code, 1013);
    /* The fast one keeps going. */
    incr_n(w, "counter/flood", 1, 9);
    r = cli_expect(fast, "event");
    json_decref(r);
    cli_close(slow);
    cli_close(fast);
    cli_close(w);
    srv_free(&s);
}

/* The keepalive: with --heartbeat-s 1 the server pings a connection idle
 * for a second and hangs up one silent for 2 x 1 + 5 s. A client that
 * only answers pings (hf_ws_recv does, as browsers do) stays however long
 * it is idle; one that reads nothing, and so answers nothing, is dropped. */
static void
test_heartbeat_keeps_answering_clients_and_drops_silent_ones(void **state)
{
    static const char *const flags[] = {"--heartbeat-s", "1", NULL};
    struct srv s;
    struct cli *live, *silent;
    hf_buf rx = {0}, body = {0};
    int op = 0, code = 0, rv;
    time_t t0;
    json_t *r;
    (void)state;

    srv_start(&s, flags);
    live = cli_open(&s, 0);
    silent = cli_open(&s, 1);
    t0 = time(NULL);
    while (time(NULL) - t0 < 10) {
        r = cli_next(live, 200); /* answers the pings; nothing else comes */
        assert_null(r);
        assert_false(live->closed);
    }
    /* Reading the silent one now answers its pings too late: it ends. */
    do
        rv = hf_ws_recv(silent->ws, WAIT, &op, &rx, &code);
    while (rv == 0 && op != HF_WS_CLOSE);
    assert_true(rv == HF_EUNAVAIL || (rv == 0 && op == HF_WS_CLOSE));
    silent->closed = 1;
    hf_buf_free(&rx);
    assert_int_equal(http(&s, "GET", "/metrics", NULL, NULL, &body), 200);
    assert_non_null(strstr(body.data, "holdfast_connections 1\n"));
    hf_buf_free(&body);
    /* The live one was idle as long, and still answers. */
    cli_send(live, "{\"op\":\"ping\",\"id\":3}");
    r = cli_expect(live, "pong");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 3);
    json_decref(r);
    cli_close(silent);
    cli_close(live);
    srv_free(&s);
}

static void
test_sigterm_loses_no_acknowledged_write(void **state)
{
    struct srv s;
    struct cli *c;
    int acked = 0, stop_at = 300;
    hf_buf body = {0};
    json_t *j;
    (void)state;

    srv_start(&s, NULL);
    c = cli_open(&s, 0);
    /* Keep 50 increments in flight; stop the server midway. */
    for (int id = 1; id <= 5000 && !c->closed; id++) {
        char m[120];
        json_t *r;
        snprintf(m, sizeof(m),
                 "{\"op\":\"call\",\"id\":%d,\"to\":\"counter/t\","
                 "\"method\":\"incr\"}",
                 id);
        if (hf_ws_send(c->ws, 1, m, strlen(m)) != 0)
            break;
        if (id == stop_at)
            kill(s.pid, SIGTERM);
        if (id < 50)
            continue;
        while ((r = cli_next(c, id > stop_at ? 50 : WAIT)) != NULL) {
            if (strcmp(sget(r, "op"), "reply") == 0 &&
                json_is_true(json_object_get(r, "ok")))
                acked++;
            json_decref(r);
            if (id <= stop_at)
                break;
        }
    }
    while ((j = cli_next(c, 200)) != NULL) {
        if (strcmp(sget(j, "op"), "reply") == 0 &&
            json_is_true(json_object_get(j, "ok")))
            acked++;
        json_decref(j);
    }
    assert_int_equal(c->close_code, 1001);
    cli_close(c);
    assert_int_equal(srv_stop(&s), 0);
    assert_true(acked >= 250);
    srv_start_in(&s, s.dir, NULL);
    assert_int_equal(http(&s, "POST", "/v1/call/counter/t/get", NULL, NULL,
                          &body),
                     200);
    j = json_loads(body.data, 0, NULL);
    assert_true(json_integer_value(json_object_get(
                    json_object_get(j, "result"), "value")) >= acked);
    json_decref(j);
    hf_buf_free(&body);
    srv_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_call_and_reply_json),
        cmocka_unit_test(test_ws_call_and_reply_msgpack),
        cmocka_unit_test(test_subscriber_gets_events_in_seq_order),
        cmocka_unit_test(
            test_reconnect_with_since_replays_exactly_the_missed_events),
        cmocka_unit_test(test_recovered_false_when_history_is_gone),
        cmocka_unit_test(
            test_presence_join_and_leave_including_abrupt_disconnect),
        cmocka_unit_test(test_signal_reaches_subscribers_without_being_logged),
        cmocka_unit_test(test_http_call_with_idempotency_key_runs_once),
        cmocka_unit_test(test_http_polling_endpoint_returns_history),
        cmocka_unit_test(test_http_keep_alive_serves_several_requests),
        cmocka_unit_test(test_metrics_parse_as_prometheus_text),
        cmocka_unit_test(
            test_bad_input_gets_coded_errors_and_the_connection_stays),
        cmocka_unit_test(test_oversize_frame_is_closed_with_1009),
        cmocka_unit_test(test_garbage_streak_is_closed_with_1008),
        cmocka_unit_test(test_auth_rejects_missing_forged_and_expired_tokens),
        cmocka_unit_test(test_acl_and_user_isolation),
        cmocka_unit_test(test_rate_limit_refuses_the_excess),
        cmocka_unit_test(
            test_slow_consumer_is_cut_off_while_others_keep_receiving),
        cmocka_unit_test(
            test_heartbeat_keeps_answering_clients_and_drops_silent_ones),
        cmocka_unit_test(test_sigterm_loses_no_acknowledged_write),
    };
    signal(SIGPIPE, SIG_IGN);
    if (getenv("HF_TEST_FILTER"))
        cmocka_set_test_filter(getenv("HF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
