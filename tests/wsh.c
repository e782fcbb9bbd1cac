/* wsh.c - see wsh.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mpjson.h"
#include "tests/wsh.h"

#ifndef HF_HOLDFAST_BIN
#define HF_HOLDFAST_BIN "holdfast"
#endif

/* ------------------------------------------------------------------ */
/* a server process                                                    */

/* Forks "holdfast serve" on s->dir with extra flags (NULL-terminated),
 * its stderr and stdout going to s->log. */
static void
spawn(struct srv *s, const char *const *extra)
{
    char *argv[64];
    int n = 0;

    argv[n++] = HF_HOLDFAST_BIN;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data";
    argv[n++] = s->dir;
    argv[n++] = "--workers";
    argv[n++] = "2";
    argv[n++] = "--gateways";
    argv[n++] = "2";
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    /* The child truncates the log, but maybe not before we first read it:
     * a log left by an earlier server on this path would tell its port. */
    unlink(s->log);
    s->pid = fork();
    if (s->pid == 0) {
        /* Fresh log (it tells the port); stdout there too, so a test's
         * pipe never waits on us; and die with the test process, so a
         * failed assertion leaves no server behind. */
        FILE *lf = freopen(s->log, "w", stderr);
        FILE *of = freopen(s->log, "a", stdout);
        (void)lf;
        (void)of;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], argv);
        _exit(127);
    }
}

/* The port of the "listening on" line in log, or 0 when there is none
 * (yet). */
static int
port_in(const char *log)
{
    char line[512];
    int port = 0;
    FILE *f;

    if ((f = fopen(log, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "listening on http://127.0.0.1:");
        if (p)
            port = atoi(p + strlen("listening on http://127.0.0.1:"));
    }
    fclose(f);
    return port;
}

void
srv_start_log(struct srv *s, const char *dir, const char *log,
              const char *const *extra)
{
    if (dir == NULL) {
        const char *tmp = getenv("HF_TEST_TMP");
        snprintf(s->dir, sizeof(s->dir), "%s/gw-XXXXXX", tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(s->dir));
    } else if (dir != s->dir) {
        snprintf(s->dir, sizeof(s->dir), "%s", dir);
    }
    if (log == NULL)
        snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    else if (log != s->log)
        snprintf(s->log, sizeof(s->log), "%s", log);
    spawn(s, extra);
    s->port = 0;
    for (int i = 0; i < 500 && s->port == 0; i++) {
        usleep(10000);
        s->port = port_in(s->log);
    }
    if (s->port == 0)
        fail_msg("server did not start; see %s", s->log);
}

/* Starts holdfast serve with extra flags (NULL-terminated); the port is
 * read from its "listening on" log line. */
void
srv_start_in(struct srv *s, const char *dir, const char *const *extra)
{
    srv_start_log(s, dir, NULL, extra);
}

int
srv_start_refused(const char *dir, const char *log, const char *const *extra)
{
    struct srv s = {0};
    int st = 0;

    snprintf(s.dir, sizeof(s.dir), "%s", dir);
    snprintf(s.log, sizeof(s.log), "%s", log);
    spawn(&s, extra);
    /* Whichever comes first decides; the bound only catches a server that
     * neither exits nor serves. */
    for (int i = 0; i < 3000; i++) {
        pid_t r = waitpid(s.pid, &st, WNOHANG);
        if (r == s.pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (port_in(s.log) != 0) {
            srv_stop(&s);
            return -1;
        }
        usleep(10000);
    }
    srv_stop(&s);
    fail_msg("the server neither exited nor served; see %s", log);
    return -1;
}

void
srv_start(struct srv *s, const char *const *extra)
{
    srv_start_in(s, NULL, extra);
}

/* Stops with SIGTERM; returns the exit status. */
int
srv_stop(struct srv *s)
{
    int st = 0;
    if (s->pid <= 0)
        return 0;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Stops the server and removes its directory. The server must exit 0:
 * under ASan or TSan a report makes it exit non-zero, and the log is
 * shown. */
void
srv_free(struct srv *s)
{
    char cmd[600];
    int st = srv_stop(s);
    if (st != 0) {
        snprintf(cmd, sizeof(cmd), "tail -50 '%s' >&2", s->log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        fail_msg("the server exited with status %d", st);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", s->dir);
}

/* ------------------------------------------------------------------ */
/* a client: frames split into messages, as JSON objects               */

struct cli *
cli_open_ex(struct srv *s, int msgpack, const char *query, const char *hdrs,
            int *status)
{
    struct cli *c = calloc(1, sizeof(*c));
    char path[1200];
    int rv;

    snprintf(path, sizeof(path), "/v1/ws%s", query ? query : "");
    rv = hf_ws_connect(&c->ws, "127.0.0.1", s->port, path,
                       msgpack ? "holdfast.v1.msgpack" : "holdfast.v1.json",
                       hdrs, WAIT);
    if (status)
        *status = rv;
    if (rv != 0) {
        hf_ws_close(c->ws);
        free(c);
        return NULL;
    }
    c->msgpack = msgpack;
    return c;
}

void
cli_close(struct cli *c)
{
    if (c == NULL)
        return;
    hf_ws_close(c->ws);
    while (c->qh != c->qt)
        json_decref(c->q[c->qh++ % 4096]);
    free(c);
}

void
push(struct cli *c, json_t *j)
{
    c->q[c->qt++ % 4096] = j;
}

/* Reads one frame into the queue. 0, HF_ETIMEOUT, or HF_EUNAVAIL (the
 * connection closed; c->close_code says how). */
int
fill(struct cli *c, int timeout)
{
    hf_buf b = {0};
    int op = 0, code = 0, rv;

    if (c->closed)
        return HF_EUNAVAIL;
    rv = hf_ws_recv(c->ws, timeout, &op, &b, &code);
    if (rv == 0 && op == 8) {
        c->closed = 1;
        c->close_code = code;
        rv = HF_EUNAVAIL;
    } else if (rv == 0 && op == 1) {
        char *line = b.data, *nl;
        for (;;) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (*line) {
                json_t *j = json_loads(line, 0, NULL);
                if (j == NULL)
                    fail_msg("server sent invalid JSON: %s", line);
                push(c, j);
            }
            if (!nl)
                break;
            line = nl + 1;
        }
    } else if (rv == 0 && op == 2) {
        size_t off = 0;
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        while (off < b.len) {
            msgpack_object o;
            msgpack_unpack_return r =
                msgpack_unpack(b.data, b.len, &off, &z, &o);
            char *s;
            if (r != MSGPACK_UNPACK_SUCCESS &&
                r != MSGPACK_UNPACK_EXTRA_BYTES)
                fail_msg("server sent invalid msgpack");
            s = hf_mp_to_json(&o);
            push(c, json_loads(s, 0, NULL));
            free(s);
        }
        msgpack_zone_destroy(&z);
    } else if (rv == HF_EUNAVAIL) {
        c->closed = 1;
    }
    hf_buf_free(&b);
    return rv;
}

/* The next message, or NULL after timeout/close. Caller decrefs. */
json_t *
cli_next(struct cli *c, int timeout)
{
    while (c->qh == c->qt)
        if (fill(c, timeout) != 0)
            return NULL;
    return c->q[c->qh++ % 4096];
}

const char *
sget(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

/* The next message with op, skipping (and dropping) others. */
json_t *
cli_expect(struct cli *c, const char *op)
{
    json_t *j;
    while ((j = cli_next(c, WAIT)) != NULL) {
        if (strcmp(sget(j, "op"), op) == 0)
            return j;
        json_decref(j);
    }
    fail_msg("no '%s' message arrived", op);
    return NULL;
}

void
cli_send(struct cli *c, const char *json)
{
    if (c->msgpack) {
        /* One msgpack map per JSON line, concatenated in one frame. */
        hf_buf b = {0};
        const char *line = json, *nl;
        do {
            nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            assert_int_equal(hf_json_to_mp(line, n, &b), 0);
            line = nl + 1;
        } while (nl != NULL);
        assert_int_equal(hf_ws_send(c->ws, 2, b.data, b.len), 0);
        hf_buf_free(&b);
    } else {
        assert_int_equal(hf_ws_send(c->ws, 1, json, strlen(json)), 0);
    }
}

/* Sends and returns the reply with this id (other messages are kept for
 * later... except replies, which are matched by id). */
json_t *
cli_call(struct cli *c, int id, const char *json)
{
    json_t *j;
    int keep_h = c->qh;
    cli_send(c, json);
    for (;;) {
        for (int i = keep_h; i != c->qt; i++) {
            j = c->q[i % 4096];
            if (strcmp(sget(j, "op"), "reply") == 0 &&
                json_integer_value(json_object_get(j, "id")) == id) {
                /* remove from the queue, keeping order of the rest */
                for (int k = i; k != c->qh; k--)
                    c->q[k % 4096] = c->q[(k - 1) % 4096];
                c->qh++;
                return j;
            }
        }
        if (fill(c, WAIT) != 0)
            fail_msg("no reply to id %d", id);
    }
}

const char *
err_code(json_t *reply)
{
    return sget(json_object_get(reply, "error"), "code");
}

void
expect_err(struct cli *c, int id, const char *json, const char *code)
{
    json_t *r = cli_call(c, id, json);
    if (json_is_true(json_object_get(r, "ok")) || !err_code(r) ||
        strcmp(err_code(r), code) != 0) {
        char *s = json_dumps(r, 0);
        fail_msg("wanted %s for %s, got %s", code, json, s);
    }
    json_decref(r);
}

json_t *
result_of(json_t *reply)
{
    if (!json_is_true(json_object_get(reply, "ok"))) {
        char *s = json_dumps(reply, 0);
        fail_msg("call failed: %s", s);
    }
    return json_object_get(reply, "result");
}

/* The welcome: hello comes first. */
struct cli *
cli_open(struct srv *s, int msgpack)
{
    struct cli *c = cli_open_ex(s, msgpack, NULL, NULL, NULL);
    json_t *h;
    assert_non_null(c);
    h = cli_next(c, WAIT);
    assert_non_null(h);
    assert_string_equal(sget(h, "op"), "hello");
    assert_non_null(strstr(sget(h, "server"), "holdfast/"));
    json_decref(h);
    return c;
}

int
http(struct srv *s, const char *method, const char *path, const char *hdrs,
     const char *body, hf_buf *out)
{
    int status = 0;
    assert_int_equal(hf_http_request("127.0.0.1", s->port, method, path,
                                     hdrs, body, body ? strlen(body) : 0,
                                     WAIT, &status, out),
                     0);
    return status;
}

