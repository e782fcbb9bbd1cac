/*
 * luatest.c - `holdfast test [--kinds DIR] [FILES...]`: runs Lua test
 * files of kinds in-process (the API is in docs/kinds/lua.md).
 *
 * Design notes
 * ------------
 * Each file gets a fresh temporary store (removed afterwards), a host with
 * one worker serving the built-in kinds and those of DIR, and an
 * in-process driver; calls go through hf_host_submit exactly as a
 * gateway's do, so idempotency, roles, the output gate and alarms are the
 * real ones. The test file itself runs in a plain Lua state with the full
 * standard library (it is the developer's code, not a kind's).
 *
 * The clock is the process's test clock (hf_clock_set): it starts at the
 * real time and moves only with t:advance, which then waits until the
 * host is settled: no alarm due or in flight, every message sent between
 * actors delivered (outbox sent = delivered), and the worker past a
 * barrier call queued behind them. t:restart closes and reopens the host
 * on the same store, so every actor reloads from storage.
 */
#include <dirent.h>
#include <ftw.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "client/driver.h"
#include "cmd/luatest.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mp.h"
#include "core/oom.h"
#include "lua/lua.h"
#include "lua/value.h"
#include "storage/lmdb.h"

#define CALL_MS  10000 /* a reply's longest wait */
#define LUA_FAIL "holdfast.test.failure"

struct runner {
    hf_lua *lua;
    hf_config cfg;
    hf_store st;
    hf_host *host;
    hf_drv *drv;
    char dir[512];
    const char *file;
    char src[600]; /* the file's chunk name, "@file" */
    int64_t now;
    hf_buf buf;
    msgpack_zone zone;
};

/* Helpers written in Lua: show a value, deep equality. */
static const char prelude[] =
    "local function show(v, d)\n"
    "  d = d or 0\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  if d > 8 then return '{...}' end\n"
    "  local keys, parts, n = {}, {}, #v\n"
    "  for k in pairs(v) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b)\n"
    "    local ta, tb = type(a), type(b)\n"
    "    if ta ~= tb then return ta < tb end\n"
    "    if ta == 'number' or ta == 'string' then return a < b end\n"
    "    return tostring(a) < tostring(b)\n"
    "  end)\n"
    "  for _, k in ipairs(keys) do\n"
    "    if math.type(k) == 'integer' and k >= 1 and k <= n then\n"
    "      parts[#parts + 1] = show(v[k], d + 1)\n"
    "    elseif type(k) == 'string' and k:match('^[%a_][%w_]*$') then\n"
    "      parts[#parts + 1] = k .. ' = ' .. show(v[k], d + 1)\n"
    "    else\n"
    "      parts[#parts + 1] = '[' .. show(k, d + 1) .. '] = ' ..\n"
    "                          show(v[k], d + 1)\n"
    "    end\n"
    "  end\n"
    "  return '{' .. table.concat(parts, ', ') .. '}'\n"
    "end\n"
    "local function eq(a, b)\n"
    "  if a == b then return true end\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' then return false end\n"
    "  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "return show, eq\n";

/* ---- the host under test ---- */

static int
host_start(struct runner *r)
{
    size_t n;
    const struct hf_kind *const *kinds = hf_lua_kinds(r->lua, &n);

    if (hf_host_open(&r->host, &(struct hf_host_opts){.cfg = &r->cfg,
                                                      .store = r->st,
                                                      .kinds = kinds,
                                                      .nkinds = n}) != 0)
        return -1;
    if (hf_drv_open(r->host, &r->drv) != 0) {
        hf_host_close(r->host);
        r->host = NULL;
        return -1;
    }
    return 0;
}

static void
host_stop(struct runner *r)
{
    hf_host_close(r->host);
    hf_drv_close(r->drv);
    r->host = NULL;
    r->drv = NULL;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(path);
}

static int
store_open(struct runner *r)
{
    const char *tmp = getenv("HF_TEST_TMP");

    if (tmp == NULL && (tmp = getenv("TMPDIR")) == NULL)
        tmp = "/tmp";
    snprintf(r->dir, sizeof(r->dir), "%s/holdfast-test-XXXXXX", tmp);
    if (mkdtemp(r->dir) == NULL)
        return -1;
    if (hf_lmdb_open(&r->st, &(struct hf_lmdb_opts){
                                 .dir = r->dir,
                                 .nreaders = r->cfg.workers + 2,
                                 .durability = HF_DURABLE_NONE,
                                 .map_size = 64u << 20}) != 0) {
        nftw(r->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return -1;
    }
    return 0;
}

static void
store_close(struct runner *r)
{
    r->st.ops->close(r->st.self);
    nftw(r->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- failing a test ---- */

/* Raises a test failure: {[LUA_FAIL] = true, msg = ..., where = ...}. */
static int
fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;

    lua_createtable(L, 0, 3);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, LUA_FAIL);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_setfield(L, -2, "msg");
    return lua_error(L);
}

static struct runner *
runner_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* ---- t:call and friends ---- */

static unsigned
role_bits(lua_State *L, const char *name)
{
    static const char *const names[] = {"user", "admin", "device",
                                        "service", "actor"};
    static const unsigned bits[] = {HF_ROLE_USER, HF_ROLE_ADMIN,
                                    HF_ROLE_DEVICE, HF_ROLE_SERVICE,
                                    HF_ROLE_ACTOR};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return bits[i];
    luaL_error(L, "caller role '%s' is not a role", name);
    return 0;
}

/* Makes the call (arguments 2..5 of t:call) and leaves the reply in
 * *out, or raises a Lua error for a bad call. */
static void
do_call(lua_State *L, struct runner *r, hf_drv_msg **out)
{
    const char *to = luaL_checkstring(L, 2), *m = luaL_checkstring(L, 3);
    const char *sub = "test";
    unsigned role = HF_ROLE_USER;
    msgpack_packer pk;
    char err[200];
    int rv;

    r->buf.len = 0;
    if (!lua_isnoneornil(L, 4)) {
        msgpack_packer_init(&pk, &r->buf, hf_buf_mpwrite);
        if (hf_lua_pack(L, 4, &pk, "args", err, sizeof(err)) != 0)
            luaL_error(L, "%s", err);
    }
    if (lua_istable(L, 5)) {
        lua_getfield(L, 5, "sub");
        sub = lua_isnil(L, -1) ? "" : luaL_checkstring(L, -1);
        lua_getfield(L, 5, "role");
        role = lua_isnil(L, -1) ? 0 : role_bits(L, luaL_checkstring(L, -1));
        lua_pop(L, 2);
    }
    rv = hf_drv_call_mp(r->drv, to, m, r->buf.len ? r->buf.data : NULL,
                        r->buf.len, NULL, sub, role, CALL_MS, out);
    if (rv != 0)
        luaL_error(L, "%s.%s: no reply (%s)", to, m, hf_err_name(rv));
}

/* Pushes the reply's error as {code=, message=}. */
static void
push_error(lua_State *L, const hf_drv_msg *m)
{
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, m->e.code.data, m->e.code.len);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, m->e.msg.data, m->e.msg.len);
    lua_setfield(L, -2, "message");
}

static void
push_result(lua_State *L, const hf_drv_msg *m)
{
    if (m->e.val == NULL || hf_lua_push(L, m->e.val) != 0)
        lua_pushnil(L);
}

static int
t_call(lua_State *L)
{
    struct runner *r = runner_of(L);
    hf_drv_msg *m;

    do_call(L, r, &m);
    if (m->e.ok) {
        push_result(L, m);
        hf_drv_msg_free(m);
        return 1;
    }
    push_error(L, m);
    hf_drv_msg_free(m);
    return lua_error(L);
}

static int
t_call_error(lua_State *L)
{
    struct runner *r = runner_of(L);
    hf_drv_msg *m;

    do_call(L, r, &m);
    if (m->e.ok) {
        lua_pushstring(L, m->json);
        hf_drv_msg_free(m);
        return fail(L, "%s.%s succeeded (%s); an error was expected",
                    lua_tostring(L, 2), lua_tostring(L, 3),
                    lua_tostring(L, -1));
    }
    push_error(L, m);
    hf_drv_msg_free(m);
    return 1;
}

static int
t_events(lua_State *L)
{
    struct runner *r = runner_of(L);
    const char *to = luaL_checkstring(L, 2);
    lua_Integer after = luaL_optinteger(L, 3, 0);
    hf_drv_msg *m;
    int rv;

    rv = hf_drv_history(r->drv, to, (uint64_t)(after < 0 ? 0 : after), 1000,
                        CALL_MS, &m);
    if (rv != 0)
        return luaL_error(L, "events of %s: no reply", to);
    if (!m->e.ok) {
        push_error(L, m);
        hf_drv_msg_free(m);
        return lua_error(L);
    }
    push_result(L, m);
    hf_drv_msg_free(m);
    if (!lua_istable(L, -1))
        return luaL_error(L, "events of %s: not a history reply", to);
    lua_getfield(L, -1, "events");
    return 1;
}

/* Waits until the host is settled (see the design notes), at most about
 * CALL_MS. */
static void
settle(lua_State *L, struct runner *r)
{
    for (int round = 0; round < 1000; round++) {
        hf_drv_msg *m;
        for (int i = 0; i < 1000 && hf_host_alarms_due(r->host); i++)
            usleep(1000);
        if (hf_drv_call_mp(r->drv, "counter/holdfast-test-barrier", "info",
                           NULL, 0, NULL, "test", HF_ROLE_USER, CALL_MS,
                           &m) != 0)
            luaL_error(L, "the host did not settle");
        hf_drv_msg_free(m);
        if (!hf_host_alarms_due(r->host) &&
            HF_GET(outbox_sent) == HF_GET(outbox_delivered))
            return;
        usleep(1000);
    }
    luaL_error(L, "the host did not settle");
}

static int
t_advance(lua_State *L)
{
    struct runner *r = runner_of(L);
    lua_Integer ms = luaL_checkinteger(L, 2);

    if (ms < 0)
        return luaL_error(L, "advance: the clock only moves forward");
    r->now += ms;
    hf_clock_set(r->now);
    hf_host_clock_changed(r->host);
    settle(L, r);
    return 0;
}

static int
t_restart(lua_State *L)
{
    struct runner *r = runner_of(L);

    host_stop(r);
    if (host_start(r) != 0)
        return luaL_error(L, "restart: the host did not start again");
    return 0;
}

static int
t_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)hf_now_ms());
    return 1;
}

static int
t_ok(lua_State *L)
{
    if (lua_toboolean(L, 2))
        return 0;
    return fail(L, "%s", luaL_optstring(L, 3, "not ok"));
}

static int
t_eq(lua_State *L)
{
    lua_settop(L, 3);
    lua_pushvalue(L, lua_upvalueindex(3)); /* eq */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    if (lua_toboolean(L, -1))
        return 0;
    lua_pushvalue(L, lua_upvalueindex(2)); /* show */
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);
    return fail(L, "not equal: %s vs %s", lua_tostring(L, -2),
                lua_tostring(L, -1));
}

static const luaL_Reg t_fns[] = {
    {"call", t_call},       {"call_error", t_call_error},
    {"events", t_events},   {"advance", t_advance},
    {"restart", t_restart}, {"now", t_now},
    {"ok", t_ok},           {"eq", t_eq},
    {NULL, NULL},
};

/* ---- running a file ---- */

/* test(name, fn): collects the tests in the registry's "tests" list. */
static int
g_test(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_getfield(L, LUA_REGISTRYINDEX, "holdfast.tests");
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    return 0;
}

/* The message handler: the error as "message (file:line)", the line being
 * the innermost one of the test file on the stack. */
static int
msgh(lua_State *L)
{
    struct runner *r = runner_of(L);
    lua_Debug ar;
    char where[700] = "";
    const char *msg;

    for (int lv = 1; lua_getstack(L, lv, &ar); lv++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && strcmp(ar.source, r->src) == 0) {
            snprintf(where, sizeof(where), "%s:%d", ar.short_src,
                     ar.currentline);
            break;
        }
    }
    if (lua_istable(L, 1) && lua_getfield(L, 1, LUA_FAIL) != LUA_TNIL) {
        lua_getfield(L, 1, "msg");
    } else if (lua_istable(L, 1) &&
               lua_getfield(L, 1, "code") == LUA_TSTRING) {
        lua_getfield(L, 1, "message");
        lua_pushfstring(L, "%s: %s", lua_tostring(L, -2),
                        lua_tostring(L, -1));
    } else {
        msg = luaL_tolstring(L, 1, NULL);
        /* "file:line: message": the location goes to the end. */
        if (where[0] && strncmp(msg, where, strlen(where)) == 0 &&
            msg[strlen(where)] == ':')
            lua_pushstring(L, msg + strlen(where) + 2);
    }
    if (where[0])
        lua_pushfstring(L, "%s (%s)", lua_tostring(L, -1), where);
    return 1;
}

/* Runs one file's tests; prints a line per test. Adds to the counts;
 * returns 0, or -1 when the file did not load (also counted failed). */
static int
run_file(struct runner *r, const char *file, int *passed, int *failed)
{
    lua_State *L = luaL_newstate();
    int ntests;

    r->file = file;
    snprintf(r->src, sizeof(r->src), "@%s", file);
    luaL_openlibs(L);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "holdfast.tests");
    lua_pushcfunction(L, g_test);
    lua_setglobal(L, "test");
    if (luaL_loadstring(L, prelude) != LUA_OK ||
        lua_pcall(L, 0, 2, 0) != LUA_OK) {
        fprintf(stderr, "holdfast test: the prelude failed\n");
        lua_close(L);
        return -1;
    }
    /* t: a table of methods closing over the runner, show and eq. */
    lua_createtable(L, 0, 8);
    for (const luaL_Reg *f = t_fns; f->name; f++) {
        lua_pushlightuserdata(L, r);
        lua_pushvalue(L, -4); /* show */
        lua_pushvalue(L, -4); /* eq */
        lua_pushcclosure(L, f->func, 3);
        lua_setfield(L, -2, f->name);
    }
    lua_replace(L, 1); /* stack: t, eq */
    lua_settop(L, 1);
    if (luaL_loadfilex(L, file, "t") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        printf("FAIL - %s: %s\n", file, lua_tostring(L, -1));
        (*failed)++;
        lua_close(L);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "holdfast.tests");
    ntests = (int)luaL_len(L, -1);
    for (int i = 1; i <= ntests; i++) {
        const char *name;
        lua_rawgeti(L, 2, i);
        lua_rawgeti(L, -1, 1);
        name = lua_tostring(L, -1);
        lua_pushlightuserdata(L, r);
        lua_pushcclosure(L, msgh, 1);
        lua_rawgeti(L, -3, 2);
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 1, 0, -3) == LUA_OK) {
            printf("ok - %s\n", name);
            (*passed)++;
        } else {
            printf("FAIL - %s: %s\n", name, lua_tostring(L, -1));
            (*failed)++;
        }
        fflush(stdout);
        lua_settop(L, 2);
    }
    lua_close(L);
    return 0;
}

static int
namecmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files DIR/NAME_test.lua, sorted; *n of them. */
static char **
find_tests(const char *dir, size_t *n)
{
    DIR *d = dir[0] ? opendir(dir) : NULL;
    struct dirent *de;
    char **files = NULL;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= 9 || strcmp(de->d_name + l - 9, "_test.lua") != 0)
            continue;
        files = hf_xrealloc(files, (*n + 1) * sizeof(*files));
        files[*n] = hf_xmalloc(strlen(dir) + l + 2);
        sprintf(files[(*n)++], "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (*n > 1)
        qsort(files, *n, sizeof(*files), namecmp);
    return files;
}

int
hf_cmd_test(int argc, char **argv)
{
    struct runner r = {0};
    hf_lua_config lc;
    hf_optset set = hf_lua_config_set(&lc);
    char **found = NULL;
    size_t nfound = 0;
    int argi = 0, passed = 0, failed = 0;

    hf_lua_config_defaults(&lc);
    if (hf_opts_env(&set, 1, stderr) != 0 ||
        hf_opts_args(&set, 1, argc, argv, &argi, stderr) != 0)
        return 2;
    hf_log_set_level(HF_LOG_ERROR); /* not the no-fsync warning */
    if (hf_lua_open(&r.lua, &lc, hf_kinds, hf_nkinds, stderr) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    if (argi == argc) {
        found = find_tests(hf_lua_dir(r.lua), &nfound);
        if (nfound == 0)
            fprintf(stderr, "holdfast test: no *_test.lua in %s\n",
                    hf_lua_dir(r.lua)[0] ? hf_lua_dir(r.lua) : "./kinds");
    }
    hf_config_defaults(&r.cfg);
    r.cfg.workers = 1;
    msgpack_zone_init(&r.zone, 1024);
    for (int i = 0; i < (found ? (int)nfound : argc - argi); i++) {
        const char *file = found ? found[i] : argv[argi + i];
        r.now = hf_now_ms();
        hf_clock_set(r.now);
        if (store_open(&r) != 0 || host_start(&r) != 0) {
            printf("FAIL - %s: cannot start a host\n", file);
            failed++;
            if (r.host == NULL && r.st.ops != NULL)
                store_close(&r);
            hf_clock_set(0);
            continue;
        }
        run_file(&r, file, &passed, &failed);
        host_stop(&r);
        store_close(&r);
        r.st.ops = NULL;
        hf_clock_set(0);
    }
    printf("%d passed, %d failed\n", passed, failed);
    for (size_t i = 0; i < nfound; i++)
        free(found[i]);
    free(found);
    hf_buf_free(&r.buf);
    msgpack_zone_destroy(&r.zone);
    hf_lua_close(r.lua);
    return failed > 0 ? 1 : 0;
}
