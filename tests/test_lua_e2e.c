/*
 * test_lua_e2e.c - a Lua kind served by the real binary: over WebSocket
 * and HTTP, across kill -9 (every acknowledged increment is there after
 * the restart), and across SIGHUP (a broken file keeps the old code and
 * is logged as file:line; a removed file is not_found; a file that does
 * not load refuses the start).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/wsh.h"

#define ACTORS 8

static const char counter[] =
    "return {\n"
    "  incr = function(ctx, args)\n"
    "    local n = (ctx:get('v') or 0) + (args.by or 1)\n"
    "    ctx:put('v', n)\n"
    "    return {value = n}\n"
    "  end,\n"
    "  get = function(ctx) return {value = ctx:get('v') or 0} end,\n"
    "  ver = function() return 1 end,\n"
    "}\n";

static void
put_file(const char *dir, const char *name, const char *text)
{
    char p[600];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_non_null(f = fopen(p, "w"));
    fputs(text, f);
    fclose(f);
}

/* A fresh folder: kinds/ inside for the kind files; returns it in dir. */
static void
new_dirs(char *dir, size_t n, char *kinds, size_t kn)
{
    const char *tmp = getenv("HF_TEST_TMP");
    char cmd[1000];

    snprintf(dir, n, "%s/luae2e-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(kinds, kn, "%s/kinds", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' '%s/data'", kinds, dir);
    assert_int_equal(system(cmd), 0);
}

static int64_t
value_of(struct cli *c, int id, const char *addr)
{
    char msg[200];
    json_t *r;
    int64_t v;

    snprintf(msg, sizeof(msg),
             "{\"id\":%d,\"op\":\"call\",\"to\":\"%s\",\"method\":\"get\"}",
             id, addr);
    r = cli_call(c, id, msg);
    v = (int64_t)json_integer_value(json_object_get(result_of(r), "value"));
    json_decref(r);
    return v;
}

static void
test_counter_survives_kill9(void **state)
{
    char dir[300], kinds[320], data[320], msg[400];
    const char *extra[] = {"--kinds", kinds, NULL};
    int64_t sent[ACTORS] = {0}, acked[ACTORS] = {0};
    struct srv s = {0};
    struct cli *c;
    hf_buf body = {0};
    int id = 0, st;

    (void)state;
    new_dirs(dir, sizeof(dir), kinds, sizeof(kinds));
    put_file(kinds, "lcount.lua", counter);
    snprintf(data, sizeof(data), "%s/data", dir);
    srv_start_in(&s, data, extra);
    /* HTTP works too */
    assert_int_equal(http(&s, "POST", "/v1/call/lcount/h/incr", NULL,
                          "{\"by\":2}", &body), 200);
    assert_non_null(strstr(body.data, "\"value\":2"));
    hf_buf_free(&body);
    c = cli_open(&s, 0);
    /* Rounds of 40 pipelined increments; SIGKILL while one is in flight. */
    for (int round = 0; round < 12; round++) {
        hf_buf frame = {0};
        int first = id + 1, want;
        for (int i = 0; i < 40; i++) {
            int a = (id + i) % ACTORS;
            int n = snprintf(msg, sizeof(msg),
                             "%s{\"id\":%d,\"op\":\"call\",\"to\":"
                             "\"lcount/a%d\",\"method\":\"incr\"}",
                             i ? "\n" : "", id + i + 1, a);
            assert_int_equal(hf_buf_append(&frame, msg, (size_t)n), 0);
            sent[a]++;
        }
        assert_int_equal(hf_buf_append(&frame, "", 1), 0);
        cli_send(c, frame.data);
        hf_buf_free(&frame);
        id += 40;
        if (round == 11) {
            usleep(2000);
            kill(s.pid, SIGKILL);
            waitpid(s.pid, &st, 0);
            s.pid = 0;
        }
        /* Count what was acknowledged: all of it, or until the close. */
        want = round == 11 ? -1 : 40;
        for (int got = 0; want < 0 || got < want;) {
            json_t *r = cli_next(c, want < 0 ? 2000 : WAIT);
            json_t *jid;
            if (r == NULL)
                break;
            jid = json_object_get(r, "id");
            if (jid && json_is_integer(jid) && json_is_true(json_object_get(r, "ok"))) {
                int k = (int)json_integer_value(jid);
                if (k >= first && k < first + 40) {
                    acked[(k - 1) % ACTORS]++;
                    got++;
                }
            }
            json_decref(r);
        }
    }
    cli_close(c);
    /* Restart on the same data: every acknowledged increment is there. */
    srv_start_in(&s, data, extra);
    c = cli_open(&s, 0);
    for (int a = 0; a < ACTORS; a++) {
        char addr[32];
        int64_t v;
        snprintf(addr, sizeof(addr), "lcount/a%d", a);
        v = value_of(c, 100000 + a, addr);
        if (v < acked[a] || v > sent[a])
            fail_msg("%s: %lld after restart; %lld acknowledged, %lld sent",
                     addr, (long long)v, (long long)acked[a],
                     (long long)sent[a]);
    }
    cli_close(c);
    {
        int64_t ta = 0, ts = 0;
        for (int a = 0; a < ACTORS; a++)
            ta += acked[a], ts += sent[a];
        printf("kill -9: %lld of %lld increments acknowledged, all there\n",
               (long long)ta, (long long)ts);
    }
    assert_int_equal(srv_stop(&s), 0);
    snprintf(msg, sizeof(msg), "rm -rf '%s'", dir);
    assert_int_equal(system(msg), 0);
}

/* Waits until the server's log has `count` lines containing frag. */
static void
wait_log(const struct srv *s, const char *frag, int count)
{
    char line[2048];

    for (int i = 0; i < WAIT / 20; i++) {
        FILE *f = fopen(s->log, "r");
        int n = 0;
        while (f && fgets(line, sizeof(line), f))
            n += strstr(line, frag) != NULL;
        if (f)
            fclose(f);
        if (n >= count)
            return;
        usleep(20000);
    }
    fail_msg("'%s' not logged %d times in %s", frag, count, s->log);
}

static void
test_sighup_reload(void **state)
{
    char dir[300], kinds[320], data[320], p[400], log[400], cmd[600];
    const char *extra[] = {"--kinds", kinds, NULL};
    struct srv s = {0};
    struct cli *c;
    json_t *r;

    (void)state;
    new_dirs(dir, sizeof(dir), kinds, sizeof(kinds));
    put_file(kinds, "lcount.lua", counter);
    snprintf(data, sizeof(data), "%s/data", dir);
    srv_start_in(&s, data, extra);
    c = cli_open(&s, 0);
    r = cli_call(c, 1, "{\"id\":1,\"op\":\"call\",\"to\":\"lcount/x\","
                       "\"method\":\"ver\"}");
    assert_int_equal(json_integer_value(result_of(r)), 1);
    json_decref(r);
    /* a broken file: logged as file:line, the old code goes on */
    put_file(kinds, "lcount.lua", "return {\n  ver = function() return 2\n}\n");
    kill(s.pid, SIGHUP);
    wait_log(&s, "reloaded", 1);
    wait_log(&s, "/lcount.lua:3:", 1);
    r = cli_call(c, 2, "{\"id\":2,\"op\":\"call\",\"to\":\"lcount/x\","
                       "\"method\":\"ver\"}");
    assert_int_equal(json_integer_value(result_of(r)), 1);
    json_decref(r);
    /* fixed: the new code */
    put_file(kinds, "lcount.lua", "return {ver = function() return 3 end}\n");
    kill(s.pid, SIGHUP);
    wait_log(&s, "reloaded", 2);
    r = cli_call(c, 3, "{\"id\":3,\"op\":\"call\",\"to\":\"lcount/x\","
                       "\"method\":\"ver\"}");
    assert_int_equal(json_integer_value(result_of(r)), 3);
    json_decref(r);
    /* removed: not_found for new calls */
    snprintf(p, sizeof(p), "%s/lcount.lua", kinds);
    assert_int_equal(unlink(p), 0);
    kill(s.pid, SIGHUP);
    wait_log(&s, "reloaded", 3);
    expect_err(c, 4,
               "{\"id\":4,\"op\":\"call\",\"to\":\"lcount/y\","
               "\"method\":\"ver\"}",
               "not_found");
    cli_close(c);
    assert_int_equal(srv_stop(&s), 0);
    /* a file that does not load refuses the start, naming file:line */
    put_file(kinds, "bad.lua", "return {\n  f = function( end\n}\n");
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    assert_int_equal(srv_start_refused(data, log, extra), 1);
    snprintf(cmd, sizeof(cmd), "grep -q '/bad.lua:2: ' '%s'", log);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_survives_kill9),
        cmocka_unit_test(test_sighup_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
