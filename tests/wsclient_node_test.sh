#!/usr/bin/env bash
# wsclient_node_test.sh - client/wsclient and `holdfast call|tail`
# (cmd/client.c) against an independent server: Node's `ws` package
# (tests/node/wsclient_server.js).
#
#   tests/wsclient_node_test.sh            (from the repository root or not)
#
# Installs ws and @msgpack/msgpack with npm into a temporary directory,
# starts the server on a free 127.0.0.1 port, builds a check program and a
# tiny call/tail driver from the sources with gcc (ASan+UBSan unless
# HF_WS_TEST_SANITIZE=0), and runs them. Exit status: 0 all passed, 1 a
# check failed, 77 cannot run here (no node/npm/gcc, or npm install failed).
# The server and the temporary directory are removed on every exit.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hf-wsclient.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

skip() { echo "SKIP: $*" >&2; exit 77; }
for tool in node npm gcc pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done

# ---- the server ------------------------------------------------------------
(cd "$TMP" && npm init -y >/dev/null 2>&1 &&
    npm install ws @msgpack/msgpack --no-audit --no-fund --loglevel=error \
        >"$TMP/npm.log" 2>&1) || { cat "$TMP/npm.log" >&2; skip "npm install failed"; }
cp "$ROOT/tests/node/wsclient_server.js" "$TMP/"
node "$TMP/wsclient_server.js" "$TMP/port" 2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
    [ -s "$TMP/port" ] && break
    sleep 0.05
done
[ -s "$TMP/port" ] || { cat "$TMP/server.log" >&2; echo "FAIL: server did not start" >&2; exit 1; }
PORT=$(cat "$TMP/port")
echo "node ws server on 127.0.0.1:$PORT"

# ---- the programs ----------------------------------------------------------
cat >"$TMP/check.c" <<'EOF'
/* Checks of client/wsclient against tests/node/wsclient_server.js. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "client/wsclient.h"

static int failures, port;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "not ok: %s:%d: %s\n", __func__, __LINE__,     \
                    #cond);                                                \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static hf_ws *
open_echo(const char *proto)
{
    hf_ws *c = NULL;
    int rv = hf_ws_connect(&c, "127.0.0.1", port, "/echo", proto, NULL, 3000);
    CHECK(rv == 0 && c != NULL);
    if (rv != 0) {
        hf_ws_close(c); /* the dead client of a refused handshake */
        return NULL;
    }
    return c;
}

/* Receives one message, expecting opcode op. */
static int
recv_msg(hf_ws *c, int op, hf_buf *b)
{
    int got = -1, code = 0, rv = hf_ws_recv(c, 3000, &got, b, &code);
    CHECK(rv == 0);
    CHECK(got == op);
    return rv == 0 && got == op ? 0 : -1;
}

static void
cmd(hf_ws *c, const char *s)
{
    CHECK(hf_ws_send(c, HF_WS_TEXT, s, strlen(s)) == 0);
}

static char *
pattern(size_t n, int seed)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(0x61 + (int)((i * 7 + (size_t)seed) % 26));
    return p;
}

static void
test_handshake_and_echo_sizes(void)
{
    hf_ws *c = open_echo("holdfast.v1.json");
    hf_buf b = {0};
    char *big;
    size_t bign = 3u << 20;

    if (c == NULL)
        return;
    CHECK(hf_ws_http_status(c) == 101);
    CHECK(hf_ws_protocol(c) && strcmp(hf_ws_protocol(c), "holdfast.v1.json") == 0);
    /* 7-bit length; the server's connect ping is answered on the way. */
    cmd(c, "hello");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(b.len == 5 && strcmp(b.data, "hello") == 0);
    cmd(c, "cmd:pongs");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "pongs=hi") == 0);
    /* Empty message. */
    CHECK(hf_ws_send(c, HF_WS_TEXT, "", 0) == 0);
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(b.len == 0 && b.data[0] == '\0');
    /* 16-bit length, both ways. */
    big = pattern(1000, 5);
    CHECK(hf_ws_send(c, HF_WS_BINARY, big, 1000) == 0);
    if (recv_msg(c, HF_WS_BINARY, &b) == 0)
        CHECK(b.len == 1000 && memcmp(b.data, big, 1000) == 0);
    free(big);
    /* 64-bit length, both ways, 3 MiB. */
    big = pattern(bign, 9);
    CHECK(hf_ws_send(c, HF_WS_BINARY, big, bign) == 0);
    if (recv_msg(c, HF_WS_BINARY, &b) == 0)
        CHECK(b.len == bign && memcmp(b.data, big, bign) == 0);
    free(big);
    /* 100 KiB from the server in one frame. */
    cmd(c, "cmd:big");
    big = pattern(100 * 1024, 1);
    if (recv_msg(c, HF_WS_BINARY, &b) == 0)
        CHECK(b.len == 100 * 1024 && memcmp(b.data, big, b.len) == 0);
    free(big);
    /* Several messages of one frame arrive as one message here. */
    cmd(c, "cmd:multi");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "a\nb\nc") == 0);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_fragments_and_interleaved_pings(void)
{
    hf_ws *c = open_echo(NULL);
    hf_buf b = {0};
    char *want;

    if (c == NULL)
        return;
    want = pattern(100 * 1024, 2);
    CHECK(hf_ws_protocol(c) == NULL);
    cmd(c, "cmd:frag");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(b.len == 100 * 1024 && memcmp(b.data, want, b.len) == 0);
    cmd(c, "cmd:pongs");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "pongs=hi,mid0,mid1,mid2") == 0);
    /* Our own fragments, with a ping between them. */
    CHECK(hf_ws_send_frame(c, 0, HF_WS_TEXT, "hel", 3) == 0);
    CHECK(hf_ws_send(c, HF_WS_PING, "p", 1) == 0);
    CHECK(hf_ws_send_frame(c, 0, HF_WS_CONT, "l", 1) == 0);
    CHECK(hf_ws_send_frame(c, 1, HF_WS_CONT, "o", 1) == 0);
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "hello") == 0);
    free(want);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_pipelined_messages_keep_order(void)
{
    hf_ws *c = open_echo(NULL);
    hf_buf b = {0};
    char s[32];
    int bad = 0;

    if (c == NULL)
        return;
    for (int i = 0; i < 2000; i++) {
        snprintf(s, sizeof s, "m%d", i);
        cmd(c, s);
    }
    for (int i = 0; i < 2000 && !bad; i++) {
        snprintf(s, sizeof s, "m%d", i);
        bad = recv_msg(c, HF_WS_TEXT, &b) != 0 || strcmp(b.data, s) != 0;
    }
    CHECK(!bad);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_timeout_keeps_the_connection(void)
{
    hf_ws *c = open_echo(NULL);
    hf_buf b = {0};
    uint64_t t0;
    int op;

    if (c == NULL)
        return;
    cmd(c, "x");
    CHECK(recv_msg(c, HF_WS_TEXT, &b) == 0);
    t0 = hf_mono_ns();
    CHECK(hf_ws_recv(c, 200, &op, &b, NULL) == HF_ETIMEOUT);
    CHECK(hf_mono_ns() - t0 >= 190000000u && hf_mono_ns() - t0 < 1000000000u);
    CHECK(hf_ws_recv(c, 0, &op, &b, NULL) == HF_ETIMEOUT);
    cmd(c, "still");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "still") == 0);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_server_close_and_our_close(void)
{
    hf_ws *c = open_echo(NULL);
    hf_buf b = {0};
    int op = 0, code = 0;

    if (c == NULL)
        return;
    cmd(c, "cmd:close");
    CHECK(hf_ws_recv(c, 3000, &op, &b, &code) == 0);
    CHECK(op == HF_WS_CLOSE && code == 4001 && strcmp(b.data, "bye") == 0);
    CHECK(hf_ws_recv(c, 100, &op, &b, &code) == HF_EUNAVAIL);
    CHECK(hf_ws_send(c, HF_WS_TEXT, "x", 1) == HF_EUNAVAIL);
    hf_ws_close(c);

    /* hf_ws_close says 1000. */
    c = open_echo(NULL);
    if (c == NULL)
        return;
    hf_ws_close(c);
    c = open_echo(NULL);
    if (c == NULL)
        return;
    cmd(c, "cmd:lastclose");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "1000") == 0);
    /* A dropped connection. */
    cmd(c, "cmd:drop");
    CHECK(hf_ws_recv(c, 3000, &op, &b, &code) == HF_EUNAVAIL);
    hf_buf_free(&b);
    hf_ws_close(c);
}

/* Raw sends: the server must act on what we deliberately got wrong. */
static void
expect_server_close(const char *what, int want_code)
{
    hf_buf b = {0};
    int op = 0, code = 0, rv;
    hf_ws *c = open_echo(NULL);

    if (c == NULL)
        return;
    if (strcmp(what, "utf8") == 0)
        CHECK(hf_ws_send(c, HF_WS_TEXT, "ok \xff\xfe", 5) == 0);
    else if (strcmp(what, "oversize") == 0)
        CHECK(hf_ws_send_partial(c, HF_WS_BINARY, 16u << 20, "0123456789", 10) == 0);
    else if (strcmp(what, "unmasked") == 0)
        CHECK(hf_ws_send_raw(c, "\x81\x02hi", 4) == 0);
    else if (strcmp(what, "opcode") == 0)
        CHECK(hf_ws_send(c, 3, "x", 1) == 0);
    /* The connect ping may come first; recv answers it and goes on. */
    rv = hf_ws_recv(c, 3000, &op, &b, &code);
    CHECK(rv == 0 && op == HF_WS_CLOSE);
    if (code != want_code)
        fprintf(stderr, "  %s: close code %d, wanted %d\n", what, code, want_code);
    CHECK(code == want_code);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_raw_sends_reach_the_server(void)
{
    expect_server_close("utf8", 1007);
    expect_server_close("oversize", 1009);
    expect_server_close("unmasked", 1002);
    expect_server_close("opcode", 1002);
}

/* The server misbehaves (raw bytes from it); the client must say so. */
static void
expect_client_error(const char *hex, int want)
{
    char s[128];
    hf_buf b = {0};
    int op = 0, rv, n = 0;
    hf_ws *c = open_echo(NULL);

    if (c == NULL)
        return;
    snprintf(s, sizeof s, "cmd:raw:%s", hex);
    cmd(c, s);
    /* A raw write may overtake nothing: the only frame before it is the
     * connect ping. */
    do
        rv = hf_ws_recv(c, 3000, &op, &b, NULL);
    while (rv == 0 && ++n < 3);
    if (rv != want)
        fprintf(stderr, "  raw %s: got %d, wanted %d\n", hex, rv, want);
    CHECK(rv == want);
    CHECK(hf_ws_recv(c, 0, &op, &b, NULL) == HF_EUNAVAIL);
    hf_buf_free(&b);
    hf_ws_close(c);
}

static void
test_server_protocol_errors_are_values(void)
{
    expect_client_error("8182aabbccdd0000", HF_EBADREQ); /* masked */
    expect_client_error("830178", HF_EBADREQ);           /* opcode 3 */
    expect_client_error("c10178", HF_EBADREQ);           /* RSV1 */
    expect_client_error("0900", HF_EBADREQ);             /* ping, no FIN */
    expect_client_error("897e00c8", HF_EBADREQ);         /* ping, 200 bytes */
    expect_client_error("800178", HF_EBADREQ);           /* stray CONT */
    expect_client_error("880103", HF_EBADREQ);           /* 1-byte close */
    expect_client_error("010178810179", HF_EBADREQ);     /* text, text */
    expect_client_error("827f4000000000000000", HF_ETOOLARGE); /* 2^62 */
    expect_client_error("827fffffffffffffffff", HF_EBADREQ);  /* MSB */
}

static void
test_handshake_failures(void)
{
    hf_ws *c = NULL;
    size_t n = 0;
    const char *body;
    int rv, fd;
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;

    rv = hf_ws_connect(&c, "127.0.0.1", port, "/reject", NULL, NULL, 3000);
    CHECK(rv == HF_EBADREQ && c != NULL);
    CHECK(hf_ws_http_status(c) == 401);
    body = hf_ws_http_body(c, &n);
    CHECK(n > 0 && strstr(body, "unauthorized") != NULL);
    CHECK(hf_ws_send(c, HF_WS_TEXT, "x", 1) == HF_EUNAVAIL);
    CHECK(hf_ws_fd(c) == -1);
    hf_ws_close(c);

    rv = hf_ws_connect(&c, "127.0.0.1", port, "/nowhere", NULL, NULL, 3000);
    CHECK(rv == HF_EBADREQ && hf_ws_http_status(c) == 404);
    hf_ws_close(c);
    rv = hf_ws_connect(&c, "127.0.0.1", port, "/badaccept", NULL, NULL, 3000);
    CHECK(rv == HF_EBADREQ && hf_ws_http_status(c) == 101);
    hf_ws_close(c);
    rv = hf_ws_connect(&c, "127.0.0.1", port, "/badproto", "mine", NULL, 3000);
    CHECK(rv == HF_EBADREQ);
    hf_ws_close(c);
    rv = hf_ws_connect(&c, "localhost", port, "/echo", "a, b", NULL, 3000);
    CHECK(rv == 0 && strcmp(hf_ws_protocol(c), "a") == 0);
    hf_ws_close(c);

    /* Refused: a port nobody listens on. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    rv = hf_ws_connect(&c, "127.0.0.1", ntohs(a.sin_port), "/", NULL, NULL, 3000);
    CHECK(rv == HF_EUNAVAIL && c == NULL);
    CHECK(hf_ws_connect(&c, "no-such-host.invalid", 80, "/", NULL, NULL, 3000) ==
          HF_EUNAVAIL);

    /* Timeout: a listener that never answers the handshake. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    listen(fd, 8);
    alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    uint64_t t0 = hf_mono_ns();
    rv = hf_ws_connect(&c, "127.0.0.1", ntohs(a.sin_port), "/", NULL, NULL, 300);
    CHECK(rv == HF_ETIMEOUT && c == NULL);
    CHECK(hf_mono_ns() - t0 < 1000000000u);
    close(fd);
}

static void
test_connect_from_source_address(void)
{
    hf_ws *c = NULL;
    hf_buf b = {0};
    int rv = hf_ws_connect_from(&c, "127.0.0.2", "127.0.0.1", port, "/echo",
                                NULL, "X-Extra: 1\r\n", 3000);
    CHECK(rv == 0);
    if (rv != 0)
        return;
    cmd(c, "cmd:addr");
    if (recv_msg(c, HF_WS_TEXT, &b) == 0)
        CHECK(strcmp(b.data, "127.0.0.2") == 0);
    hf_buf_free(&b);
    hf_ws_close(c);
}

/* Whatever the server sends, the client returns values and never crashes
 * (this runs under ASan+UBSan). Frames biased towards plausible headers. */
static void
hexcat(char *out, const unsigned char *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    out += strlen(out);
    for (size_t i = 0; i < n; i++) {
        *out++ = hx[p[i] >> 4];
        *out++ = hx[p[i] & 15];
    }
    *out = '\0';
}

static size_t
random_frames(unsigned char *p, size_t cap)
{
    static const unsigned char ops[] = {0x0, 0x1, 0x2, 0x8, 0x9, 0xa, 0x3, 0xb};
    size_t n = 0;
    int frames = 1 + rand() % 4;

    for (int f = 0; f < frames && n + 16 < cap; f++) {
        size_t plen = (size_t)(rand() % 40);
        p[n++] = (unsigned char)((rand() % 4 ? 0x80 : 0) | (rand() % 8 == 0 ? 0x40 : 0) |
                                 ops[rand() % 8]);
        switch (rand() % 6) {
        case 0:
            p[n++] = (unsigned char)(126 | (rand() % 8 == 0 ? 0x80 : 0));
            p[n++] = (unsigned char)(rand() % 2 ? 0 : rand());
            p[n++] = (unsigned char)rand();
            break;
        case 1:
            p[n++] = 127;
            for (int i = 0; i < 8; i++)
                p[n++] = (unsigned char)(rand() % 3 ? 0 : rand());
            break;
        default:
            p[n++] = (unsigned char)(plen | (rand() % 10 == 0 ? 0x80 : 0));
        }
        for (size_t i = 0; i < plen && n < cap; i++)
            p[n++] = (unsigned char)rand();
    }
    return n;
}

static void
test_random_server_bytes_never_crash(void)
{
    unsigned char raw[256];
    char s[1024], path[1100];
    hf_buf b = {0};
    int op, code, rv, st;

    srand(12345);
    for (int it = 0; it < 300; it++) {
        hf_ws *c = open_echo(NULL);
        if (c == NULL)
            return;
        snprintf(s, sizeof s, "cmd:raw:");
        hexcat(s, raw, random_frames(raw, sizeof raw));
        cmd(c, s);
        for (int k = 0; k < 8; k++) {
            rv = hf_ws_recv(c, 20, &op, &b, &code);
            CHECK(rv == 0 || rv == HF_ETIMEOUT || rv == HF_EUNAVAIL ||
                  rv == HF_EBADREQ || rv == HF_ETOOLARGE);
            if (rv == 0)
                CHECK(op == HF_WS_TEXT || op == HF_WS_BINARY || op == HF_WS_CLOSE);
            if (rv != 0 && rv != HF_ETIMEOUT)
                break;
        }
        hf_ws_close(c);
    }
    /* HTTP replies: plausible heads, random bodies and chunk sizes. */
    for (int it = 0; it < 200; it++) {
        static const char *heads[] = {
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n",
            "HTTP/1.1 2",
            "HTTP/1.0 404 x\r\n\r\n",
            "garbage\r\n\r\n",
        };
        const char *h = heads[rand() % 9];
        size_t n = (size_t)(rand() % 24);
        snprintf(path, sizeof path, "/raw?hex=");
        hexcat(path, (const unsigned char *)h, strlen(h));
        for (size_t i = 0; i < n; i++) {
            static const char alpha[] = "0123456789abcdefxyz;\r\n ";
            unsigned char ch = (unsigned char)alpha[rand() % 24];
            hexcat(path, &ch, 1);
        }
        rv = hf_http_request("127.0.0.1", port, "GET", path, NULL, NULL, 0,
                             1000, &st, &b);
        CHECK(rv == 0 || rv == HF_EBADREQ || rv == HF_ETOOLARGE ||
              rv == HF_EUNAVAIL);
    }
    hf_buf_free(&b);
}

static void
test_http_requests(void)
{
    hf_buf b = {0};
    int st = 0;
    char *want;

    CHECK(hf_http_request("127.0.0.1", port, "GET", "/healthz", NULL, NULL, 0,
                          3000, &st, &b) == 0);
    CHECK(st == 200 && strcmp(b.data, "ok\n") == 0);
    CHECK(hf_http_request("127.0.0.1", port, "HEAD", "/healthz", NULL, NULL, 0,
                          3000, &st, &b) == 0);
    CHECK(st == 200 && b.len == 0);
    CHECK(hf_http_request("127.0.0.1", port, "POST", "/echo",
                          "Content-Type: application/json\r\nX-Test: yes\r\n",
                          "{\"a\":1}", 7, 3000, &st, &b) == 0);
    CHECK(st == 201 && strcmp(b.data, "{\"method\":\"POST\",\"len\":7,\"body\":"
                                      "\"{\\\"a\\\":1}\",\"test\":\"yes\","
                                      "\"ctype\":\"application/json\"}") == 0);
    CHECK(hf_http_request("127.0.0.1", port, "POST", "/echo", NULL, "", 0,
                          3000, &st, &b) == 0);
    CHECK(st == 201 && strstr(b.data, "\"len\":0") != NULL);
    want = pattern(200 * 1024, 3);
    CHECK(hf_http_request("127.0.0.1", port, "GET", "/chunked", NULL, NULL, 0,
                          3000, &st, &b) == 0);
    CHECK(st == 200 && b.len == 200 * 1024 && memcmp(b.data, want, b.len) == 0);
    free(want);
    CHECK(hf_http_request("127.0.0.1", port, "GET", "/eof", NULL, NULL, 0,
                          3000, &st, &b) == 0);
    CHECK(st == 200 && strcmp(b.data, "until-eof") == 0);
    CHECK(hf_http_request("127.0.0.1", port, "GET", "/missing", NULL, NULL, 0,
                          3000, &st, NULL) == 0);
    CHECK(st == 404);
    CHECK(hf_http_request("127.0.0.1", 1, "GET", "/", NULL, NULL, 0, 3000, &st,
                          &b) == HF_EUNAVAIL);
    hf_buf_free(&b);
}

int
main(int argc, char **argv)
{
    port = atoi(argv[1]);
    test_handshake_and_echo_sizes();
    test_fragments_and_interleaved_pings();
    test_pipelined_messages_keep_order();
    test_timeout_keeps_the_connection();
    test_server_close_and_our_close();
    test_raw_sends_reach_the_server();
    test_server_protocol_errors_are_values();
    test_handshake_failures();
    test_connect_from_source_address();
    test_http_requests();
    test_random_server_bytes_never_crash();
    (void)argc;
    printf("wsclient checks: %s (%d failures)\n", failures ? "FAILED" : "passed",
           failures);
    return failures ? 1 : 0;
}
EOF

cat >"$TMP/driver.c" <<'EOF'
/* The call/tail subcommands as main.c dispatches them. */
#include <string.h>

#include "cmd/client.h"

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "call") == 0)
        return hf_cmd_call(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "tail") == 0)
        return hf_cmd_tail(argc - 2, argv + 2);
    hf_cmd_client_usage(stderr);
    return 2;
}
EOF

CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -I$ROOT"
if [ "${HF_WS_TEST_SANITIZE:-1}" != 0 ]; then
    CFLAGS="$CFLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
fi
SRCS="$ROOT/client/wsclient.c $ROOT/client/wsio.c $ROOT/client/wshttp.c $ROOT/client/wstls.c $ROOT/core/buf.c $ROOT/core/err.c $ROOT/core/mpjson.c $ROOT/core/env.c $ROOT/core/mp.c $ROOT/core/oom.c $ROOT/core/log.c"
LIBS="$(pkg-config --libs jansson msgpack libssl libcrypto) -lpthread"
# shellcheck disable=SC2086
gcc $CFLAGS -o "$TMP/check" "$TMP/check.c" $SRCS $LIBS || { echo "FAIL: cannot build the check program" >&2; exit 1; }
# shellcheck disable=SC2086
gcc $CFLAGS -o "$TMP/hf" "$TMP/driver.c" "$ROOT/cmd/client.c" $SRCS $LIBS || { echo "FAIL: cannot build the call/tail driver" >&2; exit 1; }

FAILED=0
fail() { echo "not ok: $*" >&2; FAILED=1; }

# ---- the client library ------------------------------------------------------
"$TMP/check" "$PORT" || FAILED=1

# ---- holdfast call / tail ------------------------------------------------------
URL="ws://127.0.0.1:$PORT"
HF="$TMP/hf"

# expect NAME WANT_RC WANT_STDOUT STDERR_GREP -- COMMAND...
expect() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4 rc out
    LAST_OUT=
    shift 5
    out=$("$@" 2>"$TMP/err"); rc=$?
    LAST_OUT=$out
    if [ "$rc" != "$want_rc" ]; then
        fail "$name: exit $rc, wanted $want_rc (stderr: $(cat "$TMP/err"))"
    elif [ -n "$want_out" ] && [ "$out" != "$want_out" ]; then
        fail "$name: stdout '$out', wanted '$want_out'"
    elif [ -n "$want_err" ] && ! grep -q -- "$want_err" "$TMP/err"; then
        fail "$name: stderr lacks '$want_err': $(cat "$TMP/err")"
    else
        echo "ok - $name"
    fi
}

expect "call prints the result as sent" 0 '{"n":1,"pi":0.1}' '' -- \
    "$HF" call counter/a incr --url "$URL" --token sekrit
expect "call takes the token from HOLDFAST_TOKEN" 0 '{"n":2,"pi":0.1}' '' -- \
    env HOLDFAST_TOKEN=sekrit "$HF" call counter/a incr --url="$URL"
expect "call compacts pretty ARGS" 0 '{"x":[1,2,{"y":"z\n"}],"u":"é"}' '' -- \
    "$HF" call counter/a echo '{ "x": [1, 2,
        {"y": "z\n"}], "u": "é" }' --url "$URL" --token sekrit
expect "call sends --key" 0 '"idem-1"' '' -- \
    "$HF" call --key idem-1 counter/a key --url "$URL" --token sekrit
expect "call without --key sends none" 0 'null' '' -- \
    "$HF" call counter/a key --url "$URL" --token sekrit
expect "call default args" 0 '{}' '' -- \
    "$HF" call counter/a echo --url "$URL" --token sekrit
expect "call error reply exits 1" 1 '' 'error: conflict: slot 18:00 is held' -- \
    "$HF" call device/ps5-03 reserve '{"slot":"18:00"}' --url "$URL" --token sekrit
expect "call --msgpack" 0 '{"fmt":"msgpack","to":"device/x"}' '' -- \
    "$HF" call device/x fmt --msgpack --url "$URL" --token sekrit
expect "call --msgpack echoes args" 0 '{"a":[1,-2,true,null,"s"],"b":{}}' '' -- \
    "$HF" call device/x echo '{"a":[1,-2,true,null,"s"],"b":{}}' --msgpack --url "$URL" --token sekrit
expect "call JSON by default" 0 '{"fmt":"json","to":"device/x"}' '' -- \
    "$HF" call device/x fmt --url "$URL" --token sekrit
expect "call refused handshake exits 2" 2 '' 'HTTP 401' -- \
    "$HF" call counter/a incr --url "$URL"
expect "call no server exits 2" 2 '' 'cannot connect' -- \
    "$HF" call counter/a incr --url ws://127.0.0.1:1
expect "call reply timeout exits 2" 2 '' 'no reply within 300 ms' -- \
    "$HF" call counter/a silent --url "$URL" --token sekrit --timeout 300
expect "call bad ARGS exits 2" 2 '' 'not JSON' -- \
    "$HF" call counter/a incr '{x' --url "$URL" --token sekrit
expect "call wss to a plain server fails with a TLS reason" 2 '' 'TLS' -- \
    "$HF" call counter/a incr --url "${URL/ws:/wss:}" --token sekrit
expect "call usage" 2 '' 'usage:' -- "$HF" call counter/a
expect "call --help" 0 '' '' -- "$HF" call --help

want=$(printf '%s\n' \
    '{"op":"event","from":"store/a","seq":2,"type":"tick","data":{"n":2,"r":0.1}}' \
    '{"op":"event","from":"store/a","seq":3,"type":"tick","data":{"n":3,"r":0.1}}' \
    '{"op":"event","from":"store/a","seq":4,"type":"tick","data":{"n":4,"r":0.1}}' \
    '{"op":"event","from":"store/a","seq":5,"type":"tick","data":{"n":5,"r":0.1}}' \
    '{"op":"event","from":"store/a","seq":6,"type":"tick","data":{"n":6,"r":0.1}}')
expect "tail prints missed and live events, exits 3 on close" 3 "$want" \
    'closed the connection (code 1001: going away)' -- \
    "$HF" tail store/a --since 1 --url "$URL" --token sekrit
grep -q 'subscribed to store/a: {"seq":3,"epoch":"e1","recovered":true}' "$TMP/err" ||
    fail "tail reports the sub result on stderr: $(cat "$TMP/err")"
expect "tail --msgpack" 3 '' '' -- \
    "$HF" tail store/b --msgpack --url "$URL" --token sekrit
[ "$(grep -c '"op":"event","from":"store/b","seq":[456],' <<<"$LAST_OUT")" = 3 ] ||
    fail "tail --msgpack prints 3 events: $LAST_OUT"

# SIGINT stops tail with status 0, after output was flushed line by line.
"$HF" tail room/forever --url "$URL" --token sekrit >"$TMP/tail.out" 2>"$TMP/tail.err" &
TAIL_PID=$!
for _ in $(seq 100); do
    [ "$(wc -l <"$TMP/tail.out")" -ge 3 ] && break
    sleep 0.05
done
kill -INT "$TAIL_PID"
wait "$TAIL_PID"; rc=$?
lines=$(wc -l <"$TMP/tail.out")
if [ "$rc" = 0 ] && [ "$lines" -ge 3 ] && ! grep -qv '"from":"room/forever"' "$TMP/tail.out"; then
    echo "ok - tail stops on SIGINT with status 0 ($lines events)"
else
    fail "tail on SIGINT: exit $rc, $lines lines: $(cat "$TMP/tail.out" "$TMP/tail.err")"
fi

if [ "$FAILED" != 0 ]; then
    echo "wsclient_node_test: FAILED" >&2
    [ -s "$TMP/server.log" ] && { echo "server log:" >&2; cat "$TMP/server.log" >&2; }
    exit 1
fi
echo "wsclient_node_test: all passed"
