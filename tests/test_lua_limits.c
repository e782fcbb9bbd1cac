/*
 * test_lua_limits.c - the Lua limits where the work runs in C, out of the
 * count hook's sight: packing a value (shared subtables and strings),
 * table.move and the pattern functions; and a kind file whose table
 * would run its code while the loader reads it. Each kind is served by a
 * real host (harness.c) with the budget and the cap armed, so a limit
 * that does not hold shows as a wrong reply, a crash, or the watchdog
 * (alarm) ending a hang, never a suite that waits forever.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "core/err.h"
#include "core/mp.h"
#include "lua/lua.h"
#include "lua/value.h"
#include "tests/harness.h"

#define ALL TH_ALL_ROLES
#define WATCHDOG_S 300 /* a limit that does not hold hangs: end the test */

struct kdir {
    char path[256];
};

static void
kdir_put(struct kdir *d, const char *file, const char *text)
{
    char p[400];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", d->path, file);
    assert_non_null(f = fopen(p, "w"));
    fputs(text, f);
    fclose(f);
}

static void
kdir_new(struct kdir *d, const char *file, const char *text)
{
    const char *tmp = getenv("HF_TEST_TMP");

    snprintf(d->path, sizeof(d->path), "%s/lua-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(d->path));
    kdir_put(d, file, text);
}

static void
kdir_free(struct kdir *d)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
}

/* hf_lua_open over d; its status, the log in log (NUL-terminated). */
static int
open_over(struct kdir *d, hf_lua **r, char *log, size_t loglen)
{
    hf_lua_config c;
    FILE *err = fmemopen(log, loglen, "w");
    int rv;

    hf_lua_config_defaults(&c);
    snprintf(c.kinds, sizeof(c.kinds), "%s", d->path);
    c.budget = 1000000;
    c.memory_mb = 64;
    rv = hf_lua_open(r, &c, hf_kinds, hf_nkinds, err);
    fclose(err);
    return rv;
}

struct fix {
    struct kdir d;
    hf_lua *lua;
    struct th_eng *e;
};

static void
fix_open(struct fix *f, const char *file, const char *text)
{
    char log[2048];
    size_t n;
    const struct hf_kind *const *k;

    kdir_new(&f->d, file, text);
    assert_int_equal(open_over(&f->d, &f->lua, log, sizeof(log)), 0);
    k = hf_lua_kinds(f->lua, &n);
    f->e = th_new_kinds(NULL, k, n);
}

static void
fix_close(struct fix *f)
{
    th_free(f->e);
    hf_lua_close(f->lua);
    kdir_free(&f->d);
}

/* The message as a C string (a static copy: one at a time). */
static const char *
msg_of(hf_slice s)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "%.*s", (int)s.len, (const char *)s.data);
    return buf;
}

/* Calls method of to, which must fail with code (and, unless frag is
 * NULL, a reply holding frag); then `ok` must still be served. */
static void
refused(struct fix *f, const char *to, const char *method, const char *code,
        const char *frag)
{
    hf_drv_msg *m = th_call(f->e, "t", ALL, to, method, NULL);

    if (m->e.ok)
        fail_msg("%s succeeded: %s", method, m->json);
    if (strcmp(m->code, code) != 0)
        fail_msg("%s: %s, not %s (%s)", method, m->code, code, m->json);
    if (frag && (m->e.msg.len == 0 ||
                 strstr(msg_of(m->e.msg), frag) == NULL))
        fail_msg("%s: message '%s' lacks '%s'", method, msg_of(m->e.msg),
                 frag);
    hf_drv_msg_free(m);
    th_ok_has(f->e, "t", ALL, to, "ok", NULL, "true");
}

/* ---- packing: bytes and nodes bounded, a failed write an error ---- */

static const char pack_kind[] =
    "local function shared()\n"
    "  local s = string.rep('x', 1 << 24) local t = {}\n"
    "  for i = 1, 100000 do t[i] = s end\n"
    "  return t\n"
    "end\n"
    "local function doubled()\n"
    "  local x = {} for i = 1, 31 do x = {x, x} end return x\n"
    "end\n"
    "return {\n"
    "  shared = shared,\n"
    "  shared_map = function() return {a = shared()} end,\n"
    "  doubled = doubled,\n"
    "  put_shared = function(ctx) ctx:put('k', shared()) end,\n"
    "  emit_doubled = function(ctx) ctx:emit('e', doubled()) end,\n"
    "  caught = function(ctx)\n"
    "    return pcall(function() ctx:emit('e', doubled()) end)\n"
    "  end,\n"
    "  ok = function() return true end,\n"
    "}\n";

static int
failing_write(void *data, const char *p, size_t n)
{
    (void)data, (void)p, (void)n;
    return -1;
}

static void
test_pack_bounded(void **state)
{
    struct fix f;
    msgpack_packer pk;
    char err[200];
    lua_State *L;

    (void)state;
    fix_open(&f, "pk.lua", pack_kind);
    refused(&f, "pk/a", "shared", "too_large", NULL);
    refused(&f, "pk/a", "shared_map", "too_large", NULL);
    refused(&f, "pk/a", "put_shared", "too_large", NULL);
    refused(&f, "pk/a", "doubled", "timeout", NULL);
    refused(&f, "pk/a", "emit_doubled", "timeout", NULL);
    refused(&f, "pk/a", "caught", "timeout", NULL); /* pcall cannot keep it */
    fix_close(&f);

    /* A write that fails is an error, not a shorter value. */
    msgpack_packer_init(&pk, NULL, failing_write);
    assert_int_not_equal(hf_pack_str(&pk, "abc", 3), 0);
    assert_non_null(L = luaL_newstate());
    lua_pushliteral(L, "a string");
    assert_int_equal(hf_lua_pack(L, -1, &pk, "v", err, sizeof(err)),
                     HF_EINTERNAL);
    lua_close(L);
}

/* ---- C library loops charged to the budget ---- */

static const char cloop_kind[] =
    "local big = string.rep('a', 100000)\n"
    "local bad = '.-.-.-.-x'\n"
    "return {\n"
    "  move = function()\n"
    "    table.move({}, 1, math.maxinteger // 2, 1, {})\n"
    "  end,\n"
    "  move_ends = function()\n"
    "    table.move({}, math.mininteger, math.maxinteger, 1, {})\n"
    "  end,\n"
    "  move_caught = function()\n"
    "    return pcall(table.move, {}, 1, math.maxinteger // 2, 1, {})\n"
    "  end,\n"
    "  move_small = function()\n"
    "    return #table.move({1, 2, 3}, 1, 3, 1, {9})\n"
    "  end,\n"
    "  find = function() return string.find(big, bad) end,\n"
    "  method = function() return big:find(bad) end,\n"
    "  match = function() return big:match(bad) end,\n"
    "  gmatch = function() for w in big:gmatch(bad) do end end,\n"
    "  gsub = function() return (big:gsub(bad, '')) end,\n"
    "  plain = function() return big:find(bad, 1, true) == nil end,\n"
    "  literal = function() return big:find('aaa') end,\n"
    "  set = function() return big:find('[*+-?]') == nil end,\n"
    "  small = function()\n"
    "    return ('hello world'):match('(%w+) (%w+)')\n"
    "  end,\n"
    "  ok = function() return true end,\n"
    "}\n";

static void
test_c_loops_budgeted(void **state)
{
    static const char *const bt[] = {"find", "method", "match", "gmatch",
                                     "gsub"};
    struct fix f;

    (void)state;
    fix_open(&f, "cl.lua", cloop_kind);
    refused(&f, "cl/a", "move", "timeout", NULL);
    refused(&f, "cl/a", "move_ends", "timeout", NULL);
    refused(&f, "cl/a", "move_caught", "timeout", NULL);
    th_ok_has(f.e, "t", ALL, "cl/a", "move_small", NULL, "3");
    for (size_t i = 0; i < sizeof(bt) / sizeof(bt[0]); i++)
        refused(&f, "cl/a", bt[i], "internal", "limit of 1e9");
    th_ok_has(f.e, "t", ALL, "cl/a", "plain", NULL, "true");
    th_ok_has(f.e, "t", ALL, "cl/a", "literal", NULL, "1");
    th_ok_has(f.e, "t", ALL, "cl/a", "set", NULL, "true");
    th_ok_has(f.e, "t", ALL, "cl/a", "small", NULL, "\"hello\"");
    fix_close(&f);
}

/* ---- a kind table read raw, and refused with a metatable ---- */

static const char *const mt_files[] = {
    "return setmetatable({}, {__index = function() error('x') end})\n",
    "return setmetatable({}, {__index = function() while true do end end})\n",
    "return setmetatable({f = function() return 1 end},\n"
    "                    {__pairs = function() error('x') end})\n",
    "return {f = function() return 1 end,\n"
    "        _roles = setmetatable({},\n"
    "          {__index = function() while true do end end})}\n",
};

static void
test_kind_table_read_safely(void **state)
{
    struct kdir d;
    hf_lua *r;
    struct th_eng *e;
    char log[2048];
    size_t n;
    const struct hf_kind *const *k;

    (void)state;
    /* refused at start, with the file named */
    for (size_t i = 0; i < 3; i++) {
        r = NULL;
        kdir_new(&d, "mt.lua", mt_files[i]);
        assert_int_equal(open_over(&d, &r, log, sizeof(log)), HF_EBADREQ);
        assert_null(r);
        th_has(log, "/mt.lua: the returned table has a metatable");
        kdir_free(&d);
    }
    /* _roles with a metatable: read raw, so f simply has no roles */
    kdir_new(&d, "mt.lua", mt_files[3]);
    assert_int_equal(open_over(&d, &r, log, sizeof(log)), 0);
    hf_lua_close(r);
    kdir_free(&d);

    /* on reload: the old version is kept, the server goes on */
    kdir_new(&d, "v.lua", "return {ver = function() return 1 end}\n");
    assert_int_equal(open_over(&d, &r, log, sizeof(log)), 0);
    k = hf_lua_kinds(r, &n);
    e = th_new_kinds(NULL, k, n);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "1");
    for (size_t i = 0; i < 3; i++) {
        kdir_put(&d, "v.lua", mt_files[i]);
        assert_int_equal(hf_lua_reload(r, e->host), 1);
        th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "1");
    }
    kdir_put(&d, "v.lua", "return {ver = function() return 2 end}\n");
    assert_int_equal(hf_lua_reload(r, e->host), 0);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "2");
    th_free(e);
    hf_lua_close(r);
    kdir_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_bounded),
        cmocka_unit_test(test_c_loops_budgeted),
        cmocka_unit_test(test_kind_table_read_safely),
    };

    alarm(WATCHDOG_S); /* SIGALRM's default: the test fails, loudly */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
