/*
 * wsh.h - end-to-end test helpers: the real holdfast binary on a free port
 * (srv_*), WebSocket clients that split frames into JSON messages
 * (cli_*), and one-shot HTTP requests. For cmocka tests: failures call
 * fail_msg. Single-threaded use.
 */
#ifndef HF_TESTS_WSH_H
#define HF_TESTS_WSH_H

#include <jansson.h>
#include <sys/types.h>

#include "core/buf.h"
#include "client/wsclient.h"

#define WAIT 10000 /* ms */

struct srv {
    pid_t pid;
    int port;
    char dir[256];
    char log[300];
};

/* Starts "holdfast serve" on 127.0.0.1:0 in a fresh directory (or dir),
 * with extra flags (NULL-terminated list, may be NULL). */
void srv_start(struct srv *s, const char *const *extra);
void srv_start_in(struct srv *s, const char *dir, const char *const *extra);
/* As srv_start_in, with the server's log at log (NULL: DIR/server.log). */
void srv_start_log(struct srv *s, const char *dir, const char *log,
                   const char *const *extra);
/* Starts a server on dir, logging to log, that should refuse to start, and
 * waits until it exits or serves. Returns its exit status, or -1 when it
 * came up and served (it is then stopped). Fails the test if it does
 * neither within 30 s. */
int srv_start_refused(const char *dir, const char *log,
                      const char *const *extra);
/* SIGTERM and wait; returns the exit status (0 when already stopped). */
int srv_stop(struct srv *s);
/* Stops (asserting exit status 0) and removes the directory. */
void srv_free(struct srv *s);

struct cli {
    hf_ws *ws;
    int msgpack;
    json_t *q[4096];
    int qh, qt;
    int closed, close_code;
};

/* Opens /v1/ws (JSON or msgpack) and consumes the hello. */
struct cli *cli_open(struct srv *s, int msgpack);
/* Opens /v1/ws + query with extra header lines; NULL on failure with the
 * hf_ws_connect result in *status. Does not read the hello. */
struct cli *cli_open_ex(struct srv *s, int msgpack, const char *query,
                        const char *hdrs, int *status);
void cli_close(struct cli *c);
/* Sends JSON text; lines become separate messages (msgpack: one map each,
 * concatenated into one frame). */
void cli_send(struct cli *c, const char *json);
/* The next message (caller json_decrefs), or NULL on timeout or close. */
json_t *cli_next(struct cli *c, int timeout);
/* The next message with this op, dropping others; fails the test if none
 * arrives within WAIT ms. */
json_t *cli_expect(struct cli *c, const char *op);
/* Sends json and returns the reply with this integer id (other messages
 * stay queued, in order). */
json_t *cli_call(struct cli *c, int id, const char *json);
/* The result of an ok reply (borrowed); fails the test otherwise. */
json_t *result_of(json_t *reply);
/* The error code of a failed reply, or NULL. */
const char *err_code(json_t *reply);
/* Sends json and asserts the reply to id fails with code. */
void expect_err(struct cli *c, int id, const char *json, const char *code);
/* A string member, or NULL. */
const char *sget(json_t *j, const char *k);
/* One HTTP request; returns the status; body into out (may be NULL). */
int http(struct srv *s, const char *method, const char *path,
         const char *hdrs, const char *body, hf_buf *out);

#endif
