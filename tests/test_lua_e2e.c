/*
 * test_lua_e2e.c - a Lua kind served by the real binary: over WebSocket
 * and HTTP, across kill -9 (every acknowledged increment is there after
 * the restart), and across SIGHUP (a broken file keeps the old code and
 * is logged as file:line; a removed file is not_found; a file that does
 * not load refuses the start); and `holdfast test` on a passing and a
 * failing test file (its lines and exit status).
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

/* ---- holdfast test ---- */

static void
has(const char *out, const char *frag)
{
    if (strstr(out, frag) == NULL)
        fail_msg("'%s' not in:\n%s", frag, out);
}

/* Runs `holdfast test --kinds dir file` and returns its exit status, with
 * its output in out. */
static int
run_test_cmd(const char *dir, const char *file, char *out, size_t size)
{
    char cmd[1200];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof(cmd), "'%s' test --kinds '%s' %s%s%s 2>&1",
             HF_HOLDFAST_BIN, dir, *file ? "'" : "", file, *file ? "'" : "");
    assert_non_null(p = popen(cmd, "r"));
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char auc_kind[] =
    "return {\n"
    "  _roles = {close = {'admin'}},\n"
    "  open = function(ctx, a)\n"
    "    ctx:set_alarm('close', ctx:now() + 60000, {why = 'time'})\n"
    "  end,\n"
    "  bid = function(ctx, a)\n"
    "    local best = ctx:get('best')\n"
    "    if best and best.amount >= a.amount then\n"
    "      error({code = 'conflict', message = 'too low'})\n"
    "    end\n"
    "    ctx:put('best', {amount = a.amount, who = ctx.caller.sub})\n"
    "    return ctx:emit('bid', {amount = a.amount})\n"
    "  end,\n"
    "  close = function(ctx) return true end,\n"
    "  state = function(ctx) return ctx:get('closed') end,\n"
    "  _alarm = function(ctx, name, data)\n"
    "    ctx:put('closed', data.why)\n"
    "    local b = ctx:get('best')\n"
    "    ctx:send('user/' .. b.who, 'notify',\n"
    "             {title = 'won', message = 'm', priority = 'low'})\n"
    "  end,\n"
    "}\n";

static const char auc_pass[] =
    "test('bids', function(t)\n"
    "  t:call('auc/x', 'open')\n"
    "  t:eq(t:call('auc/x', 'bid', {amount = 5}, {sub = 'kim'}), 1)\n"
    "  local e = t:call_error('auc/x', 'bid', {amount = 4}, {sub = 'bob'})\n"
    "  t:eq(e, {code = 'conflict', message = 'too low'})\n"
    "  t:eq(t:call_error('auc/x', 'close').code, 'forbidden')\n"
    "  t:ok(t:call('auc/x', 'close', nil, {sub = 'a', role = 'admin'}))\n"
    "  local ok, err = pcall(t.call, t, 'auc/x', 'bid', {amount = 1})\n"
    "  t:eq(err.code, 'conflict')\n"
    "  t:eq(#t:events('auc/x', 0), 1)\n"
    "end)\n"
    "test('closes at its time and tells the winner', function(t)\n"
    "  local n = t:now()\n"
    "  t:eq(t:call('auc/x', 'state'), nil)\n"
    "  t:advance(60000)\n"
    "  t:eq(t:now(), n + 60000)\n"
    "  t:eq(t:call('auc/x', 'state'), 'time')\n"
    "  local inbox = t:call('user/kim', 'list', {}, {sub = 'kim'})\n"
    "  t:eq(inbox.items[1].title, 'won')\n"
    "end)\n"
    "test('restart keeps the state', function(t)\n"
    "  t:restart('auc/x')\n"
    "  t:eq(t:call('auc/x', 'state'), 'time')\n"
    "end)\n";

static const char auc_fail[] =
    "test('passes', function(t) t:ok(true) end)\n"
    "test('unequal', function(t)\n"
    "  t:eq({a = {1, 2}}, {a = {1, 3}})\n"
    "end)\n"
    "test('uncaught call error', function(t)\n"
    "  t:call('auc/y', 'nope')\n"
    "end)\n"
    "test('not ok', function(t) t:ok(false, 'it was false') end)\n"
    "test('a call that should fail', function(t)\n"
    "  t:call_error('auc/y', 'open')\n"
    "end)\n";

static void
test_holdfast_test_runner(void **state)
{
    char dir[300], kinds[320], out[8192], file[400], cmd[400];

    (void)state;
    new_dirs(dir, sizeof(dir), kinds, sizeof(kinds));
    put_file(kinds, "auc.lua", auc_kind);
    put_file(kinds, "pass_test.lua", auc_pass);
    put_file(kinds, "fail_test.lua", auc_fail);
    snprintf(file, sizeof(file), "%s/pass_test.lua", kinds);
    if (run_test_cmd(kinds, file, out, sizeof(out)) != 0)
        fail_msg("the passing file failed:\n%s", out);
    assert_string_equal(out, "ok - bids\n"
                             "ok - closes at its time and tells the winner\n"
                             "ok - restart keeps the state\n"
                             "3 passed, 0 failed\n");
    snprintf(file, sizeof(file), "%s/fail_test.lua", kinds);
    assert_int_equal(run_test_cmd(kinds, file, out, sizeof(out)), 1);
    has(out, "ok - passes\n");
    has(out, "FAIL - unequal: not equal: {a = {1, 2}} vs {a = {1, 3}} (");
    has(out, "fail_test.lua:3)\n");
    has(out, "FAIL - uncaught call error: not_found: kind 'auc' has no "
                "method 'nope' (");
    has(out, "fail_test.lua:6)\n");
    has(out, "FAIL - not ok: it was false (");
    has(out, "FAIL - a call that should fail: auc/y.open succeeded (null)");
    assert_non_null(strstr(out, "1 passed, 4 failed\n"));
    assert_string_equal(strstr(out, "1 passed, 4 failed\n"),
                        "1 passed, 4 failed\n");
    /* no FILES: every *_test.lua of the folder */
    assert_int_equal(run_test_cmd(kinds, "", out, sizeof(out)), 1);
    has(out, "4 passed, 4 failed\n");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_survives_kill9),
        cmocka_unit_test(test_sighup_reload),
        cmocka_unit_test(test_holdfast_test_runner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
