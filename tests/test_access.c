/*
 * test_access.c - the real server, let in by what is not a token: public
 * addresses for callers without one (--public), pages of other origins
 * (--cors-origin), and the HTTP rate limit (transport/access.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "transport/auth.h"
#include "tests/wsh.h"

#define SECRET "test-secret-0123456789"

static char *
mint(const char *sub, const char *role)
{
    char *t = hf_auth_mint(SECRET, sub, role, time(NULL) + 600, NULL);
    assert_non_null(t);
    return t;
}

/* One HTTP/1.1 request on its own connection ("Connection: close" is
 * added); the whole response, headers included, into out. Returns the
 * status. */
static int
raw(const struct srv *s, const char *method, const char *path,
    const char *hdrs, const char *body, hf_buf *out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char req[4096];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), n;

    assert_true(fd >= 0);
    sa.sin_port = htons((uint16_t)s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 method, path, s->port, hdrs ? hdrs : "",
                 body ? strlen(body) : 0, body ? body : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    out->len = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        char buf[4096];
        ssize_t r;
        if (poll(&pf, 1, WAIT) <= 0)
            fail_msg("no answer to %s %s", method, path);
        if ((r = read(fd, buf, sizeof(buf))) <= 0)
            break;
        hf_buf_append(out, buf, (size_t)r);
    }
    close(fd);
    hf_buf_append(out, "", 1);
    out->len--;
    assert_true(out->len > 12);
    return atoi(out->data + 9);
}

/* The value of header name (with its colon) in a raw response, or NULL;
 * copied into v. */
static const char *
header(const hf_buf *resp, const char *name, char *v, size_t n)
{
    const char *end = strstr(resp->data, "\r\n\r\n"), *h = resp->data;

    while ((h = strcasestr(h, name)) != NULL && (end == NULL || h < end)) {
        if (h[-1] == '\n') {
            h += strlen(name);
            h += strspn(h, " ");
            snprintf(v, n, "%.*s", (int)strcspn(h, "\r\n"), h);
            return v;
        }
        h++;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* public addresses                                                    */

static void
test_tokenless_board_watches_public_addresses_only(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--public", "store/*",
                           "--public", "poll/lunch", "--public", "user/*",
                           NULL};
    struct srv s;
    struct cli *board, *staff;
    hf_buf b = {0};
    char *svc = mint("front-desk", "service"), q[1200];
    json_t *r, *ev;
    (void)state;

    srv_start(&s, flags);
    board = cli_open(&s, 0); /* no token */
    r = cli_call(board, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"store/gangnam\"}");
    result_of(r);
    json_decref(r);
    r = cli_call(board, 2, "{\"op\":\"call\",\"id\":2,\"to\":\"store/gangnam\","
                           "\"method\":\"list\"}");
    assert_int_equal(json_integer_value(json_object_get(result_of(r),
                                                        "waiting")),
                     0);
    json_decref(r);
    /* Let in: the poll itself answers (it has no options yet). */
    expect_err(board, 3, "{\"op\":\"call\",\"id\":3,\"to\":\"poll/lunch\","
                         "\"method\":\"tally\"}",
               "not_found");
    r = cli_call(board, 4, "{\"op\":\"call\",\"id\":4,\"to\":\"store/gangnam\","
                           "\"method\":\"info\"}");
    result_of(r);
    json_decref(r);
    /* Private addresses, writes, presence and signals need a token. */
    expect_err(board, 5, "{\"op\":\"sub\",\"id\":5,\"to\":\"room/staff\"}",
               "unauthorized");
    expect_err(board, 6, "{\"op\":\"call\",\"id\":6,\"to\":\"poll/dinner\","
                         "\"method\":\"tally\"}",
               "unauthorized");
    expect_err(board, 7, "{\"op\":\"call\",\"id\":7,\"to\":\"store/gangnam\","
                         "\"method\":\"register\",\"args\":{\"name\":\"x\","
                         "\"party\":2}}",
               "unauthorized");
    expect_err(board, 8, "{\"op\":\"call\",\"id\":8,\"to\":\"poll/lunch\","
                         "\"method\":\"vote\",\"args\":{\"option\":\"a\"}}",
               "unauthorized");
    expect_err(board, 9, "{\"op\":\"call\",\"id\":9,\"to\":\"store/gangnam\","
                         "\"method\":\"presence\"}",
               "unauthorized");
    expect_err(board, 10, "{\"op\":\"sub\",\"id\":10,\"to\":\"store/other\","
                          "\"presence\":{\"name\":\"tv\"}}",
               "unauthorized");
    /* An inbox is never public, whatever --public says. */
    expect_err(board, 11, "{\"op\":\"call\",\"id\":11,\"to\":\"user/kim\","
                          "\"method\":\"list\"}",
               "unauthorized");

    /* The board sees what staff does, live. */
    snprintf(q, sizeof(q), "?token=%s", svc);
    staff = cli_open_ex(&s, 0, q, NULL, NULL);
    assert_non_null(staff);
    json_decref(cli_expect(staff, "hello"));
    r = cli_call(staff, 1, "{\"op\":\"call\",\"id\":1,\"to\":\"store/gangnam\","
                           "\"method\":\"register\",\"args\":{\"name\":\"Ann\","
                           "\"party\":2}}");
    result_of(r);
    json_decref(r);
    ev = cli_expect(board, "event");
    assert_string_equal(sget(ev, "from"), "store/gangnam");
    json_decref(ev);

    /* The same over HTTP, without a token. */
    assert_int_equal(http(&s, "POST", "/v1/call/store/gangnam/list", NULL,
                          NULL, &b),
                     200);
    assert_int_equal(http(&s, "GET", "/v1/events/store/gangnam", NULL, NULL,
                          &b),
                     200);
    assert_non_null(strstr(b.data, "\"events\":[{"));
    assert_int_equal(http(&s, "POST", "/v1/call/store/gangnam/register", NULL,
                          "{\"name\":\"Bo\",\"party\":1}", &b),
                     401);
    assert_non_null(strstr(b.data, "not public"));
    assert_int_equal(http(&s, "GET", "/v1/events/room/staff", NULL, NULL, &b),
                     401);
    /* A bad token is refused, never taken for no token. */
    assert_int_equal(http(&s, "POST", "/v1/call/store/gangnam/list",
                          "Authorization: Bearer abc.def.ghi\r\n", NULL, &b),
                     401);
    cli_close(board);
    cli_close(staff);
    hf_buf_free(&b);
    free(svc);
    srv_free(&s);
}

/* A tokenless caller's Idempotency-Key is ignored: every public caller
 * shares one empty subject, so a kept reply would be anyone's, and each
 * new key would store a row for good. The second list answers fresh. */
static void
test_public_callers_keys_are_ignored(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--public", "store/*",
                           NULL};
    struct srv s;
    hf_buf b = {0};
    char *svc = mint("front-desk", "service"), hs[1200];
    (void)state;

    srv_start(&s, flags);
    assert_int_equal(raw(&s, "POST", "/v1/call/store/k/list",
                         "Idempotency-Key: tv-1\r\n", NULL, &b),
                     200);
    assert_non_null(strstr(b.data, "\"waiting\":0"));
    snprintf(hs, sizeof(hs), "Authorization: Bearer %s\r\n", svc);
    assert_int_equal(raw(&s, "POST", "/v1/call/store/k/register", hs,
                         "{\"name\":\"Ann\",\"party\":2}", &b),
                     200);
    assert_int_equal(raw(&s, "POST", "/v1/call/store/k/list",
                         "Idempotency-Key: tv-1\r\n", NULL, &b),
                     200);
    assert_non_null(strstr(b.data, "\"waiting\":1"));
    hf_buf_free(&b);
    free(svc);
    srv_free(&s);
}

/* Without --public, a caller without a token reaches nothing (as before). */
static void
test_without_public_nothing_is_open(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, NULL};
    struct srv s;
    struct cli *c;
    hf_buf b = {0};
    (void)state;

    srv_start(&s, flags);
    c = cli_open(&s, 0);
    expect_err(c, 1, "{\"op\":\"sub\",\"id\":1,\"to\":\"store/gangnam\"}",
               "unauthorized");
    assert_int_equal(http(&s, "POST", "/v1/call/store/gangnam/list", NULL,
                          NULL, &b),
                     401);
    cli_close(c);
    hf_buf_free(&b);
    srv_free(&s);
}

/* ------------------------------------------------------------------ */
/* CORS                                                                */

static void
test_cors_preflight_allow_origin_and_websocket_origin(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--cors-origin",
                           "https://app.example", "--cors-origin",
                           "http://localhost:3000/", NULL};
    struct srv s;
    hf_buf b = {0};
    char v[256], hdr[1200], self[128];
    char *tok = mint("kim", "user");
    struct cli *c;
    int st = 0;
    (void)state;

    srv_start(&s, flags);
    /* A preflight needs no token. */
    assert_int_equal(raw(&s, "OPTIONS", "/v1/call/counter/a/incr",
                         "Origin: https://app.example\r\n"
                         "Access-Control-Request-Method: POST\r\n"
                         "Access-Control-Request-Headers: authorization, "
                         "content-type, idempotency-key\r\n",
                         NULL, &b),
                     204);
    assert_string_equal(header(&b, "access-control-allow-origin:", v,
                               sizeof(v)),
                        "https://app.example");
    assert_non_null(strstr(header(&b, "access-control-allow-headers:", v,
                                  sizeof(v)),
                           "Idempotency-Key"));
    assert_non_null(strstr(header(&b, "access-control-allow-methods:", v,
                                  sizeof(v)),
                           "POST"));
    assert_string_equal(header(&b, "vary:", v, sizeof(v)), "Origin");
    assert_int_equal(raw(&s, "OPTIONS", "/v1/events/counter/a",
                         "Origin: http://localhost:3000\r\n", NULL, &b),
                     204);
    assert_int_equal(raw(&s, "OPTIONS", "/v1/call/counter/a/incr",
                         "Origin: https://evil.example\r\n", NULL, &b),
                     403);
    assert_null(header(&b, "access-control-allow-origin:", v, sizeof(v)));

    /* Answers carry the origin when it is listed, errors included. */
    snprintf(hdr, sizeof(hdr),
             "Origin: https://app.example\r\nAuthorization: Bearer %s\r\n",
             tok);
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/incr", hdr, NULL, &b),
                     200);
    assert_string_equal(header(&b, "access-control-allow-origin:", v,
                               sizeof(v)),
                        "https://app.example");
    assert_int_equal(raw(&s, "GET", "/v1/events/counter/a", hdr, NULL, &b),
                     200);
    assert_non_null(header(&b, "access-control-allow-origin:", v, sizeof(v)));
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/incr",
                         "Origin: https://app.example\r\n", NULL, &b),
                     401);
    assert_non_null(header(&b, "access-control-allow-origin:", v, sizeof(v)));
    snprintf(hdr, sizeof(hdr),
             "Origin: https://evil.example\r\nAuthorization: Bearer %s\r\n",
             tok);
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/incr", hdr, NULL, &b),
                     200);
    assert_null(header(&b, "access-control-allow-origin:", v, sizeof(v)));

    /* WebSocket: another origin is refused at the handshake; a listed
     * one, the server's own and none at all are let in. */
    assert_null(cli_open_ex(&s, 0, NULL, "Origin: https://evil.example\r\n",
                            &st));
    {
        /* An origin too long to read is not taken for none. */
        char lng[400];
        snprintf(lng, sizeof(lng), "Origin: https://%0300d.example\r\n", 0);
        assert_null(cli_open_ex(&s, 0, NULL, lng, &st));
    }
    c = cli_open_ex(&s, 0, NULL, "Origin: https://app.example\r\n", &st);
    assert_non_null(c);
    cli_close(c);
    snprintf(self, sizeof(self), "Origin: http://127.0.0.1:%d\r\n", s.port);
    c = cli_open_ex(&s, 0, NULL, self, &st);
    assert_non_null(c);
    cli_close(c);
    c = cli_open_ex(&s, 0, NULL, NULL, &st);
    assert_non_null(c);
    cli_close(c);
    hf_buf_free(&b);
    free(tok);
    srv_free(&s);
}

static void
test_cors_any_origin_and_none_configured(void **state)
{
    const char *any[] = {"--cors-origin", "*", NULL};
    struct srv s;
    hf_buf b = {0};
    char v[256];
    struct cli *c;
    int st = 0;
    (void)state;

    srv_start(&s, any);
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/get",
                         "Origin: https://anyone.example\r\n", NULL, &b),
                     200);
    assert_string_equal(header(&b, "access-control-allow-origin:", v,
                               sizeof(v)),
                        "*");
    assert_null(header(&b, "vary:", v, sizeof(v)));
    srv_free(&s);

    /* No --cors-origin: no CORS headers, any Origin may open a socket. */
    srv_start(&s, NULL);
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/get",
                         "Origin: https://anyone.example\r\n", NULL, &b),
                     200);
    assert_null(header(&b, "access-control-allow-origin:", v, sizeof(v)));
    c = cli_open_ex(&s, 0, NULL, "Origin: https://anyone.example\r\n", &st);
    assert_non_null(c);
    cli_close(c);
    hf_buf_free(&b);
    srv_free(&s);
}

/* ------------------------------------------------------------------ */
/* the HTTP rate limit                                                 */

static void
test_http_requests_are_rate_limited_per_subject(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--rate", "1",
                           "--rate-burst", "3", "--public", "counter/*",
                           NULL};
    struct srv s;
    hf_buf b = {0};
    char v[64], hk[1200], hb[1200];
    char *kim = mint("kim", "user"), *bob = mint("bob", "user");
    int st = 200, i;
    (void)state;

    srv_start(&s, flags);
    snprintf(hk, sizeof(hk), "Authorization: Bearer %s\r\n", kim);
    snprintf(hb, sizeof(hb), "Authorization: Bearer %s\r\n", bob);
    /* The bucket holds 3 and refills one a second: well before 20
     * requests one is refused, however slow the machine. */
    for (i = 0; i < 20 && st == 200; i++)
        st = raw(&s, "POST", "/v1/call/counter/a/get", hk, NULL, &b);
    assert_int_equal(st, 429);
    assert_true(i >= 3);
    assert_non_null(header(&b, "retry-after:", v, sizeof(v)));
    assert_true(atoi(v) >= 1);
    assert_non_null(strstr(b.data, "rate_limited"));
    /* Another subject has its own bucket. */
    assert_int_equal(raw(&s, "POST", "/v1/call/counter/a/get", hb, NULL, &b),
                     200);
    /* Callers without a token are counted by address, health checks too. */
    for (i = 0, st = 200; i < 20 && st == 200; i++)
        st = raw(&s, "GET", "/healthz", NULL, NULL, &b);
    assert_int_equal(st, 429);
    assert_non_null(header(&b, "retry-after:", v, sizeof(v)));
    hf_buf_free(&b);
    free(kim);
    free(bob);
    srv_free(&s);
}

/* A publish batch pays one token per item, as the same calls would over
 * WebSocket. The bucket holds 20 and refills one a second: a batch of 15
 * passes, and the next batches need 15 each with 5 left, so one of four
 * tries is refused unless each took 10 s. */
static void
test_publish_batches_pay_per_item(void **state)
{
    const char *flags[] = {"--jwt-secret", SECRET, "--rate", "1",
                           "--rate-burst", "20", NULL};
    struct srv s;
    hf_buf b = {0}, body = {0};
    char *svc = mint("backend", "service"), hs[1200], v[64];
    int st = 200, i;
    (void)state;

    srv_start(&s, flags);
    snprintf(hs, sizeof(hs), "Authorization: Bearer %s\r\n", svc);
    hf_buf_append(&body, "[", 1);
    for (i = 0; i < 15; i++) {
        char it[96];
        int n = snprintf(it, sizeof(it),
                         "%s{\"channel\":\"c%d\",\"type\":\"t\"}",
                         i ? "," : "", i);
        hf_buf_append(&body, it, (size_t)n);
    }
    hf_buf_append(&body, "]", 2); /* with its NUL: raw() takes a string */
    assert_int_equal(raw(&s, "POST", "/v1/publish", hs, body.data, &b), 200);
    for (i = 0; i < 4 && st == 200; i++)
        st = raw(&s, "POST", "/v1/publish", hs, body.data, &b);
    assert_int_equal(st, 429);
    assert_non_null(header(&b, "retry-after:", v, sizeof(v)));
    hf_buf_free(&b);
    hf_buf_free(&body);
    free(svc);
    srv_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenless_board_watches_public_addresses_only),
        cmocka_unit_test(test_without_public_nothing_is_open),
        cmocka_unit_test(test_cors_preflight_allow_origin_and_websocket_origin),
        cmocka_unit_test(test_cors_any_origin_and_none_configured),
        cmocka_unit_test(test_http_requests_are_rate_limited_per_subject),
        cmocka_unit_test(test_public_callers_keys_are_ignored),
        cmocka_unit_test(test_publish_batches_pay_per_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
