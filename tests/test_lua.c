/*
 * test_lua.c - Lua kinds (lua/): the ctx binding, values, errors and
 * rollback, the sandbox and its limits, roles, loading and reload, and
 * (`holdfast test` itself is in test_lua_e2e.c). Each kind here is a
 * file written into a temporary folder and served by a real host
 * (harness.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "core/metrics.h"
#include "core/mp.h"
#include "lua/lua.h"
#include "lua/value.h"
#include "tests/harness.h"

#define ALL TH_ALL_ROLES

/* ---- a folder of kind files ---- */

struct kdir {
    char path[256];
};

static void
kdir_new(struct kdir *d)
{
    const char *tmp = getenv("HF_TEST_TMP");

    snprintf(d->path, sizeof(d->path), "%s/lua-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(d->path));
}

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
kdir_rm(struct kdir *d, const char *file)
{
    char p[400];

    snprintf(p, sizeof(p), "%s/%s", d->path, file);
    assert_int_equal(unlink(p), 0);
}

static void
kdir_free(struct kdir *d)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
}

/* A registry over d with small limits, so the limit tests are quick. */
static hf_lua *
lua_over(struct kdir *d, int budget, int memory_mb)
{
    hf_lua_config c;
    hf_lua *r;

    hf_lua_config_defaults(&c);
    snprintf(c.kinds, sizeof(c.kinds), "%s", d->path);
    if (budget)
        c.budget = budget;
    if (memory_mb)
        c.memory_mb = memory_mb;
    assert_int_equal(hf_lua_open(&r, &c, hf_kinds, hf_nkinds, stderr), 0);
    return r;
}

struct fix {
    struct kdir d;
    hf_lua *lua;
    struct th_eng *e;
};

static void
fix_open(struct fix *f, const char *file, const char *text, int budget,
         int memory_mb)
{
    size_t n;
    const struct hf_kind *const *k;

    kdir_new(&f->d);
    kdir_put(&f->d, file, text);
    f->lua = lua_over(&f->d, budget, memory_mb);
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

/* ---- every ctx function ---- */

static const char ctx_kind[] =
    "return {\n"
    "  put = function(ctx, a) ctx:put(a.k, a.v) return true end,\n"
    "  get = function(ctx, a) return ctx:get(a.k) end,\n"
    "  del = function(ctx, a) ctx:del(a.k) return true end,\n"
    "  list = function(ctx, a)\n"
    "    local out = {}\n"
    "    for _, kv in ipairs(ctx:list(a.prefix, a.opts)) do\n"
    "      out[#out + 1] = kv.key .. '=' .. tostring(kv.value)\n"
    "    end\n"
    "    return table.concat(out, ',')\n"
    "  end,\n"
    "  emit = function(ctx, a) return ctx:emit(a.type, a.data) end,\n"
    "  signal = function(ctx, a) ctx:signal('typing', {who = a.who}) end,\n"
    "  send = function(ctx, a)\n"
    "    ctx:send('user/' .. a.to, 'notify',\n"
    "             {title = a.title, message = 'm', priority = 'low'})\n"
    "  end,\n"
    "  alarm = function(ctx, a)\n"
    "    ctx:set_alarm(a.name, ctx:now() + (a.after or 0), a.data)\n"
    "  end,\n"
    "  cancel = function(ctx, a) ctx:cancel_alarm(a.name) end,\n"
    "  now = function(ctx) return ctx:now() end,\n"
    "  who = function(ctx)\n"
    "    return {address = ctx.address, name = ctx.name,\n"
    "            sub = ctx.caller.sub, role = ctx.caller.role}\n"
    "  end,\n"
    "  _alarm = function(ctx, name, data)\n"
    "    ctx:put('fired:' .. name, data or 'nodata')\n"
    "  end,\n"
    "}\n";

/* Calls `get k` until its result (JSON) is want, for up to TH_WAIT ms. */
static void
wait_for(struct th_eng *e, const char *to, const char *args,
         const char *want)
{
    for (int i = 0; i < TH_WAIT / 10; i++) {
        char *j = th_ok(e, "t", ALL, to, "get", args);
        int same = strcmp(j, want) == 0;
        free(j);
        if (same)
            return;
        usleep(10000);
    }
    fail_msg("%s get %s never became %s", to, args, want);
}

static void
test_ctx_get_put_del_list(void **state)
{
    struct fix f;

    (void)state;
    fix_open(&f, "kv.lua", ctx_kind, 0, 0);
    th_ok_has(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"x\"}", "null");
    free(th_ok(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"a:1\",\"v\":1}"));
    free(th_ok(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"a:2\",\"v\":2}"));
    free(th_ok(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"a:3\",\"v\":3}"));
    free(th_ok(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"b:1\",\"v\":9}"));
    th_ok_has(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"a:2\"}", "2");
    th_ok_has(f.e, "t", ALL, "kv/a", "list", "{\"prefix\":\"a:\"}",
              "\"a:1=1,a:2=2,a:3=3\"");
    th_ok_has(f.e, "t", ALL, "kv/a", "list",
              "{\"prefix\":\"a:\",\"opts\":{\"limit\":2}}", "\"a:1=1,a:2=2\"");
    th_ok_has(f.e, "t", ALL, "kv/a", "list",
              "{\"prefix\":\"a:\",\"opts\":{\"after\":\"a:1\"}}",
              "\"a:2=2,a:3=3\"");
    th_ok_has(f.e, "t", ALL, "kv/a", "list", "{}",
              "\"a:1=1,a:2=2,a:3=3,b:1=9\"");
    free(th_ok(f.e, "t", ALL, "kv/a", "del", "{\"k\":\"a:2\"}"));
    th_ok_has(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"a:2\"}", "null");
    th_ok_has(f.e, "t", ALL, "kv/a", "list", "{\"prefix\":\"a\"}",
              "\"a:1=1,a:3=3\"");
    /* put(k, nil) deletes; bad keys are bad requests */
    free(th_ok(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"a:1\"}"));
    th_ok_has(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"a:1\"}", "null");
    th_err(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"\"}", "bad_request");
    th_err(f.e, "t", ALL, "kv/a", "get", "{\"k\":5}", "bad_request");
    th_err(f.e, "t", ALL, "kv/a", "put", "{\"k\":\"\\u0000a:x\",\"v\":1}",
           "bad_request");
    /* the state survives a restart */
    th_restart(f.e);
    th_ok_has(f.e, "t", ALL, "kv/a", "get", "{\"k\":\"b:1\"}", "9");
    fix_close(&f);
}

static void
test_ctx_emit_signal_who_now(void **state)
{
    struct fix f;
    hf_drv_msg *m;
    char *j;
    int64_t before = hf_now_ms();

    (void)state;
    fix_open(&f, "kv.lua", ctx_kind, 0, 0);
    th_sub(f.e, 7, "kv/b", -1);
    th_ok_has(f.e, "t", ALL, "kv/b", "emit",
              "{\"type\":\"hello\",\"data\":{\"n\":1}}", "1");
    th_expect_event(f.e, "kv/b", "hello", "{\"n\":1}");
    th_ok_has(f.e, "t", ALL, "kv/b", "emit", "{\"type\":\"again\"}", "2");
    th_expect_event(f.e, "kv/b", "again", "null");
    th_err(f.e, "t", ALL, "kv/b", "emit", "{\"type\":\"\"}", "bad_request");
    free(th_ok(f.e, "t", ALL, "kv/b", "signal", "{\"who\":\"kim\"}"));
    for (;;) {
        assert_int_equal(hf_drv_recv(f.e->drv, TH_WAIT, &m), 0);
        if (m->e.op == HF_OUT_SIGNAL) {
            assert_string_equal(m->type, "typing");
            th_has(m->json, "\"kim\"");
            hf_drv_msg_free(m);
            break;
        }
        hf_drv_msg_free(m);
    }
    j = th_ok(f.e, "kim", HF_ROLE_USER, "kv/b", "who", NULL);
    th_has(j, "\"address\":\"kv/b\"");
    th_has(j, "\"name\":\"b\"");
    th_has(j, "\"sub\":\"kim\"");
    th_has(j, "\"role\":\"user\"");
    free(j);
    j = th_ok(f.e, "", 0, "kv/b", "who", NULL);
    assert_null(strstr(j, "\"sub\""));
    assert_null(strstr(j, "\"role\""));
    free(j);
    j = th_ok(f.e, "t", ALL, "kv/b", "now", NULL);
    assert_true(strtoll(j, NULL, 10) >= before);
    free(j);
    fix_close(&f);
}

static void
test_ctx_send_and_alarms(void **state)
{
    struct fix f;

    (void)state;
    fix_open(&f, "kv.lua", ctx_kind, 0, 0);
    free(th_ok(f.e, "t", ALL, "kv/c", "send", "{\"to\":\"kim\",\"title\":\"hi\"}"));
    for (int i = 0;; i++) {
        char *j = th_ok(f.e, "kim", HF_ROLE_USER, "user/kim", "list", "{}");
        int got = strstr(j, "\"hi\"") != NULL;
        free(j);
        if (got)
            break;
        assert_true(i < TH_WAIT / 10);
        usleep(10000);
    }
    th_err(f.e, "t", ALL, "kv/c", "send", "{\"to\":\"bad name\"}",
           "bad_request");
    /* an alarm with data, one without, one cancelled */
    free(th_ok(f.e, "t", ALL, "kv/c", "alarm",
          "{\"name\":\"one\",\"data\":{\"x\":[1,2]}}"));
    free(th_ok(f.e, "t", ALL, "kv/c", "alarm", "{\"name\":\"two\"}"));
    free(th_ok(f.e, "t", ALL, "kv/c", "alarm",
          "{\"name\":\"three\",\"after\":600000,\"data\":1}"));
    free(th_ok(f.e, "t", ALL, "kv/c", "cancel", "{\"name\":\"three\"}"));
    wait_for(f.e, "kv/c", "{\"k\":\"fired:one\"}", "{\"x\":[1,2]}");
    wait_for(f.e, "kv/c", "{\"k\":\"fired:two\"}", "\"nodata\"");
    /* the data keys are not the kind's to see */
    th_ok_has(f.e, "t", ALL, "kv/c", "list", "{}", "\"fired:one=");
    {
        char *j = th_ok(f.e, "t", ALL, "kv/c", "list", "{}");
        assert_null(strstr(j, "a:three"));
        assert_null(strstr(j, "a:one"));
        free(j);
    }
    th_err(f.e, "t", ALL, "kv/c", "alarm", "{\"name\":\"\"}", "bad_request");
    fix_close(&f);
}

/* ---- values ---- */

static const char val_kind[] =
    "return {\n"
    "  echo = function(ctx, a) return a end,\n"
    "  keep = function(ctx, a) ctx:put('v', a.v) return ctx:get('v') end,\n"
    "  make = function(ctx, a)\n"
    "    local v = ({\n"
    "      int = function() return {math.maxinteger, math.mininteger, 0, -1} end,\n"
    "      float = function() return {1.5, 2.0, -0.0} end,\n"
    "      nan = function() return {0/0, 1/0, -1/0} end,\n"
    "      empty = function() return {} end,\n"
    "      nested = function() return {a = {b = {c = {1, {d = 'x'}}}}} end,\n"
    "      bytes = function() return 'a\\0b\\255\\254' end,\n"
    "      sparse = function() return {items = {1, nil, 3}} end,\n"
    "      mixed = function() return {1, 2, x = 3} end,\n"
    "      fn = function() return {a = {print}} end,\n"
    "      cycle = function() local t = {} t.t = t return t end,\n"
    "      numkey = function() return {[1.5] = 1} end,\n"
    "    })[a.what]()\n"
    "    ctx:put('v', v)\n"
    "    local back = ctx:get('v')\n"
    "    return v\n"
    "  end,\n"
    "  roundtrip = function(ctx)\n"
    "    local vals = {math.maxinteger, math.mininteger, 1.0, 0.5,\n"
    "                  'a\\0b\\255', {}, {1, {2, {3}}}, {k = {j = true}}}\n"
    "    for i, v in ipairs(vals) do\n"
    "      ctx:put('r' .. i, v)\n"
    "      local b = ctx:get('r' .. i)\n"
    "      if type(v) ~= 'table' and (b ~= v or math.type(b) ~= math.type(v))\n"
    "      then error('value ' .. i .. ' changed') end\n"
    "    end\n"
    "    local n = ctx:get('r1') + 0\n"
    "    if math.type(n) ~= 'integer' then error('not an integer') end\n"
    "    local x = 0/0\n"
    "    ctx:put('nan', x)\n"
    "    local y = ctx:get('nan')\n"
    "    if y == y then error('NaN came back as a number') end\n"
    "    ctx:put('inf', 1/0)\n"
    "    if ctx:get('inf') ~= 1/0 then error('inf changed') end\n"
    "    return true\n"
    "  end,\n"
    "}\n";

static hf_drv_msg *
make(struct th_eng *e, const char *what)
{
    char args[64];

    snprintf(args, sizeof(args), "{\"what\":\"%s\"}", what);
    return th_call(e, "t", ALL, "val/a", "make", args);
}

static void
expect_bad(struct th_eng *e, const char *what, const char *frag)
{
    hf_drv_msg *m = make(e, what);

    assert_false(m->e.ok);
    assert_string_equal(m->code, "bad_request");
    if (memmem(m->e.msg.data, m->e.msg.len, frag, strlen(frag)) == NULL)
        fail_msg("%s: '%s' not in '%.*s'", what, frag, (int)m->e.msg.len,
                 (const char *)m->e.msg.data);
    hf_drv_msg_free(m);
}

static void
test_values_round_trip(void **state)
{
    struct fix f;
    hf_drv_msg *m;
    const msgpack_object *o;

    (void)state;
    fix_open(&f, "val.lua", val_kind, 0, 0);
    th_ok_has(f.e, "t", ALL, "val/a", "roundtrip", NULL, "true");
    /* 64-bit integers, both ends */
    m = make(f.e, "int");
    assert_true(m->e.ok);
    o = m->e.val;
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o->via.array.ptr[0].via.u64, (uint64_t)INT64_MAX);
    assert_int_equal(o->via.array.ptr[1].via.i64, INT64_MIN);
    hf_drv_msg_free(m);
    /* floats stay floats, 2.0 included */
    m = make(f.e, "float");
    o = m->e.val;
    for (int i = 0; i < 3; i++)
        assert_int_equal(o->via.array.ptr[i].type, MSGPACK_OBJECT_FLOAT64);
    hf_drv_msg_free(m);
    /* NaN and the infinities: floats in msgpack, null in JSON */
    m = make(f.e, "nan");
    o = m->e.val;
    assert_true(isnan(o->via.array.ptr[0].via.f64));
    assert_true(isinf(o->via.array.ptr[1].via.f64));
    assert_string_equal(m->json, "[null,null,null]");
    hf_drv_msg_free(m);
    /* the empty table is an empty array */
    m = make(f.e, "empty");
    assert_string_equal(m->json, "[]");
    hf_drv_msg_free(m);
    m = make(f.e, "nested");
    assert_string_equal(m->json, "{\"a\":{\"b\":{\"c\":[1,{\"d\":\"x\"}]}}}");
    hf_drv_msg_free(m);
    /* bytes as they are: NUL and invalid UTF-8 (JSON shows U+FFFD) */
    m = make(f.e, "bytes");
    assert_int_equal(m->e.val->type, MSGPACK_OBJECT_STR);
    assert_int_equal(m->e.val->via.str.size, 5);
    assert_memory_equal(m->e.val->via.str.ptr, "a\0b\xff\xfe", 5);
    hf_drv_msg_free(m);
    /* what cannot be encoded names where */
    expect_bad(f.e, "sparse", "value for 'v'.items: a sparse array");
    expect_bad(f.e, "mixed", "array items mixed with string keys (key 'x')");
    expect_bad(f.e, "fn", "value for 'v'.a[1]: a function cannot be stored");
    expect_bad(f.e, "cycle", "nested too deep");
    expect_bad(f.e, "numkey", "key 1.5 is not a string");
    /* arguments come back as they went */
    th_ok_has(f.e, "t", ALL, "val/a", "echo",
              "{\"a\":[1,2.5,\"x\",true,null],\"b\":{}}", "\"a\":[1,2.5,\"x\",true]");
    th_ok_has(f.e, "t", ALL, "val/a", "echo", NULL, "[]");
    th_ok_has(f.e, "t", ALL, "val/a", "keep", "{\"v\":-9223372036854775808}",
              "-9223372036854775808");
    fix_close(&f);
}

/* The converter alone, in a plain state: depth bounds both ways. */
static void
test_values_depth_bounded(void **state)
{
    lua_State *L = luaL_newstate();
    hf_buf b = {0};
    msgpack_packer pk;
    char err[200];

    (void)state;
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    /* 32 tables deep is fine, 33 is not */
    for (int depth = 32; depth <= 33; depth++) {
        lua_newtable(L);
        for (int i = 1; i < depth; i++) {
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, 1);
            lua_remove(L, -2);
        }
        b.len = 0;
        assert_int_equal(hf_lua_pack(L, -1, &pk, "v", err, sizeof(err)),
                         depth == 32 ? 0 : HF_EBADREQ);
        lua_pop(L, 1);
    }
    /* 40 arrays deep in msgpack is refused, nothing pushed */
    b.len = 0;
    for (int i = 0; i < 40; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    assert_int_equal(hf_lua_push_bytes(L, b.data, b.len), HF_EBADREQ);
    assert_int_equal(lua_gettop(L), 0);
    hf_buf_free(&b);
    lua_close(L);
}

/* ---- errors and rollback ---- */

static const char err_kind[] =
    "return {\n"
    "  coded = function(ctx) error({code = 'conflict', message = 'taken'}) end,\n"
    "  nomsg = function(ctx) error({code = 'forbidden'}) end,\n"
    "  badcode = function(ctx) error({code = 'nonsense'}) end,\n"
    "  plain = function(ctx) error('boom') end,\n"
    "  runtime = function(ctx) local t = nil; return t.x end,\n"
    "  addr = function(ctx) error('see ' .. tostring({})) end,\n"
    "  write_then_fail = function(ctx)\n"
    "    ctx:put('k', 1)\n"
    "    ctx:emit('e', 1)\n"
    "    ctx:set_alarm('x', ctx:now())\n"
    "    ctx:send('user/kim', 'notify', {title = 'no'})\n"
    "    error({code = 'conflict', message = 'changed my mind'})\n"
    "  end,\n"
    "  write_then_crash = function(ctx) ctx:put('k', 2) ctx:emit('e') local x = nil + 1 end,\n"
    "  write_then_spin = function(ctx) ctx:put('k', 3) ctx:emit('e') while true do end end,\n"
    "  get = function(ctx) return ctx:get('k') end,\n"
    "  caught = function(ctx)\n"
    "    local ok, e = pcall(function() error({code = 'conflict'}) end)\n"
    "    return {ok = ok, code = e.code}\n"
    "  end,\n"
    "}\n";

static void
expect_err(struct th_eng *e, const char *method, const char *code,
           const char *msg)
{
    hf_drv_msg *m = th_call(e, "t", ALL, "err/a", method, NULL);

    assert_false(m->e.ok);
    if (strcmp(m->code, code) != 0)
        fail_msg("%s: %s (%.*s), not %s", method, m->code, (int)m->e.msg.len,
                 (const char *)m->e.msg.data, code);
    if (msg != NULL)
        assert_true(m->e.msg.len == strlen(msg) &&
                    memcmp(m->e.msg.data, msg, m->e.msg.len) == 0);
    /* never a server path */
    assert_null(memchr(m->e.msg.data, '/', m->e.msg.len));
    hf_drv_msg_free(m);
}

static void
test_errors_coded_and_internal(void **state)
{
    struct fix f;
    hf_drv_msg *m;

    (void)state;
    fix_open(&f, "err.lua", err_kind, 0, 0);
    expect_err(f.e, "coded", "conflict", "taken");
    expect_err(f.e, "nomsg", "forbidden", "forbidden");
    expect_err(f.e, "badcode", "internal",
               "error code 'nonsense' is not a protocol code");
    expect_err(f.e, "plain", "internal", "err.lua:5: boom");
    expect_err(f.e, "runtime", "internal", NULL);
    m = th_call(f.e, "t", ALL, "err/a", "addr", NULL);
    assert_string_equal(m->code, "internal");
    assert_non_null(memmem(m->e.msg.data, m->e.msg.len, "table: 0x?", 10));
    hf_drv_msg_free(m);
    th_ok_has(f.e, "t", ALL, "err/a", "caught", NULL, "\"code\":\"conflict\"");
    fix_close(&f);
}

static void
test_rollback_after_writes_and_emits(void **state)
{
    struct fix f;
    hf_drv_msg *m;

    (void)state;
    fix_open(&f, "err.lua", err_kind, 200000, 0);
    th_sub(f.e, 3, "err/a", -1);
    expect_err(f.e, "write_then_fail", "conflict", "changed my mind");
    expect_err(f.e, "write_then_crash", "internal", NULL);
    expect_err(f.e, "write_then_spin", "timeout", NULL);
    th_ok_has(f.e, "t", ALL, "err/a", "get", NULL, "null");
    assert_true(th_quiet(f.e, 300)); /* no event leaked */
    assert_int_equal(hf_drv_history(f.e->drv, "err/a", 0, 0, TH_WAIT, &m), 0);
    th_has(m->json, "\"seq\":0");
    hf_drv_msg_free(m);
    /* nothing was sent to kim */
    th_ok_has(f.e, "kim", HF_ROLE_USER, "user/kim", "list", "{}",
              "\"items\":[]");
    fix_close(&f);
}

/* ---- the sandbox ---- */

static const char esc_kind[] =
    "return {\n"
    "  os_execute = function() return os.execute('true') end,\n"
    "  os_exit = function() return os.exit(1) end,\n"
    "  os_getenv = function() return os.getenv('HOME') end,\n"
    "  io_open = function() return io.open('/etc/passwd') end,\n"
    "  require = function() return require('os') end,\n"
    "  load = function() return load('return 1')() end,\n"
    "  loadstring = function() return loadstring('return 1')() end,\n"
    "  dofile = function() return dofile('/etc/passwd') end,\n"
    "  loadfile = function() return loadfile('/etc/passwd') end,\n"
    "  dump = function() return string.dump(print) end,\n"
    "  dump_method = function() return (''):dump() end,\n"
    "  debug = function() return debug.getinfo(1) end,\n"
    "  package = function() return package.loaded end,\n"
    "  global = function() x = 1 end,\n"
    "  global_g = function() _G.x = 1 end,\n"
    "  lib_write = function() string.upper = nil end,\n"
    "  lib_rawset = function() rawset(string, 'upper', nil) end,\n"
    "  string_mt = function() getmetatable('').__index.upper = nil end,\n"
    "  setmetatable_lib = function() setmetatable(string, {}) end,\n"
    "  setmetatable_g = function() setmetatable(_G, {}) end,\n"
    "  gc_meta = function() setmetatable({}, {__gc = function() end}) end,\n"
    "  collectgarbage = function() collectgarbage() end,\n"
    "  coroutine = function() return coroutine.create(print) end,\n"
    "  ok = function() return {upper = string.upper('a'),\n"
    "                          dump = string.dump == nil,\n"
    "                          x = x == nil} end,\n"
    "}\n";

static void
test_sandbox_escapes_refused(void **state)
{
    static const char *const escapes[] = {
        "os_execute", "os_exit",      "os_getenv", "io_open",
        "require",    "load",         "loadstring", "dofile",
        "loadfile",   "dump",         "dump_method", "debug",
        "package",    "global",       "global_g",  "lib_write",
        "lib_rawset", "string_mt",    "setmetatable_lib", "setmetatable_g",
        "gc_meta",    "collectgarbage", "coroutine"};
    struct fix f;

    (void)state;
    fix_open(&f, "esc.lua", esc_kind, 0, 0);
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        hf_drv_msg *m = th_call(f.e, "t", ALL, "esc/a", escapes[i], NULL);
        if (m->e.ok)
            fail_msg("escape '%s' was not refused: %s", escapes[i], m->json);
        assert_string_equal(m->code, "internal");
        hf_drv_msg_free(m);
        /* the next call is served, and nothing changed */
        th_ok_has(f.e, "t", ALL, "esc/a", "ok", NULL,
                  "\"upper\":\"A\"");
        th_ok_has(f.e, "t", ALL, "esc/a", "ok", NULL, "\"dump\":true");
        th_ok_has(f.e, "t", ALL, "esc/a", "ok", NULL, "\"x\":true");
    }
    fix_close(&f);
}

static const char global_file[] = "x = 1\nreturn {}\n";

static void
test_sandbox_file_cannot_set_globals(void **state)
{
    struct kdir d;
    hf_lua_config c;
    hf_lua *r;
    char buf[2048] = "";
    FILE *err = fmemopen(buf, sizeof(buf), "w");

    (void)state;
    kdir_new(&d);
    kdir_put(&d, "g.lua", global_file);
    hf_lua_config_defaults(&c);
    snprintf(c.kinds, sizeof(c.kinds), "%s", d.path);
    assert_int_equal(hf_lua_open(&r, &c, hf_kinds, hf_nkinds, err),
                     HF_EBADREQ);
    fclose(err);
    assert_non_null(strstr(buf, "/g.lua:1: assignment to 'x'"));
    kdir_free(&d);
}

/* ---- limits: budget, memory, recursion ---- */

static const char lim_kind[] =
    "local function deep(n) return deep(n + 1) + 1 end\n"
    "local function cdeep(s) return (s:gsub('.', cdeep)) end\n"
    "return {\n"
    "  spin = function() while true do end end,\n"
    "  spin_pcall = function()\n"
    "    while true do pcall(function() while true do end end) end\n"
    "  end,\n"
    "  spin_xpcall = function()\n"
    "    while true do xpcall(function() while true do end end, print) end\n"
    "  end,\n"
    "  bomb = function()\n"
    "    local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end\n"
    "  end,\n"
    "  bomb_pcall = function()\n"
    "    local ok = pcall(function() local s = string.rep('x', 1 << 30) end)\n"
    "    return ok\n"
    "  end,\n"
    "  big_rep = function() return #string.rep('x', 1 << 30) end,\n"
    "  recurse = function() return deep(1) end,\n"
    "  crecurse = function() return cdeep('xx') end,\n"
    "  deep_result = function()\n"
    "    local t = {} for i = 1, 100 do t = {t} end return t\n"
    "  end,\n"
    "  ok = function(ctx) ctx:put('n', (ctx:get('n') or 0) + 1) return ctx:get('n') end,\n"
    "}\n";

static void
test_limits_refused_and_next_served(void **state)
{
    static const struct {
        const char *method, *code;
    } cases[] = {
        {"spin", "timeout"},      {"spin_pcall", "timeout"},
        {"spin_xpcall", "timeout"}, {"bomb", "too_large"},
        {"bomb_pcall", "too_large"}, {"big_rep", "too_large"},
        {"recurse", NULL},        {"crecurse", "internal"},
        {"deep_result", "bad_request"},
    };
    struct fix f;
    char want[16], buf[65536];
    FILE *out;

    (void)state;
    fix_open(&f, "lim.lua", lim_kind, 1000000, 16);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hf_drv_msg *m = th_call(f.e, "t", ALL, "lim/a", cases[i].method,
                                NULL);
        if (m->e.ok)
            fail_msg("%s succeeded: %s", cases[i].method, m->json);
        if (cases[i].code) /* recursion: stack overflow or memory */
            assert_string_equal(m->code, cases[i].code);
        hf_drv_msg_free(m);
        snprintf(want, sizeof(want), "%zu", i + 1);
        th_ok_has(f.e, "t", ALL, "lim/a", "ok", NULL, want);
    }
    /* the kind's metrics count the aborts */
    out = fmemopen(buf, sizeof(buf), "w");
    hf_metrics_write(out);
    fclose(out);
    th_has(buf, "holdfast_lua_aborts_total{kind=\"lim\",reason=\"budget\"} 3");
    th_has(buf, "holdfast_lua_errors_total{kind=\"lim\",code=\"timeout\"} 3");
    th_has(buf, "holdfast_lua_calls_total{kind=\"lim\"}");
    th_has(buf, "holdfast_lua_handler_us_count{kind=\"lim\"}");
    fix_close(&f);
}

/* ---- roles ---- */

static const char role_kind[] =
    "return {\n"
    "  _roles = {admin_only = {'admin'}, staff = {'service', 'device'},\n"
    "            nobody = {}},\n"
    "  admin_only = function() return 1 end,\n"
    "  staff = function() return 2 end,\n"
    "  nobody = function() return 3 end,\n"
    "  anyone = function() return 4 end,\n"
    "}\n";

static void
test_roles_checked(void **state)
{
    struct fix f;

    (void)state;
    fix_open(&f, "role.lua", role_kind, 0, 0);
    th_err(f.e, "u", HF_ROLE_USER, "role/a", "admin_only", NULL, "forbidden");
    free(th_ok(f.e, "a", HF_ROLE_ADMIN, "role/a", "admin_only", NULL));
    th_err(f.e, "u", HF_ROLE_USER, "role/a", "staff", NULL, "forbidden");
    free(th_ok(f.e, "s", HF_ROLE_SERVICE, "role/a", "staff", NULL));
    free(th_ok(f.e, "d", HF_ROLE_DEVICE, "role/a", "staff", NULL));
    th_err(f.e, "s", HF_ROLE_SERVICE, "role/a", "nobody", NULL, "forbidden");
    free(th_ok(f.e, "a", HF_ROLE_ADMIN, "role/a", "nobody", NULL));
    free(th_ok(f.e, "", 0, "role/a", "anyone", NULL));
    th_err(f.e, "u", HF_ROLE_USER, "role/a", "missing", NULL, "not_found");
    fix_close(&f);
}

/* ---- loading and reload ---- */

static void
expect_refused(const char *file, const char *text, const char *frag)
{
    struct kdir d;
    hf_lua_config c;
    hf_lua *r = NULL;
    char buf[2048] = "";
    FILE *err = fmemopen(buf, sizeof(buf), "w");

    kdir_new(&d);
    kdir_put(&d, file, text);
    hf_lua_config_defaults(&c);
    snprintf(c.kinds, sizeof(c.kinds), "%s", d.path);
    assert_int_equal(hf_lua_open(&r, &c, hf_kinds, hf_nkinds, err),
                     HF_EBADREQ);
    fclose(err);
    if (strstr(buf, frag) == NULL)
        fail_msg("%s: '%s' not in '%s'", file, frag, buf);
    assert_null(r);
    kdir_free(&d);
}

static void
test_load_errors_refuse_start(void **state)
{
    (void)state;
    expect_refused("syn.lua", "return {\n  f = function( end\n}\n",
                   "/syn.lua:2: ");
    expect_refused("run.lua", "local x = nil\nreturn x.y\n",
                   "/run.lua:2: attempt to index");
    expect_refused("num.lua", "return 5\n", "/num.lua: must return a table");
    expect_refused("counter.lua", "return {}\n",
                   "'counter' is a built-in kind");
    expect_refused("Bad.lua", "return {}\n", "not a valid kind name");
    expect_refused("r.lua", "return {_roles = {f = {'boss'}}, f = print}\n",
                   "'boss' is not a role");
    expect_refused("r2.lua", "return {_roles = {g = {'user'}}}\n",
                   "_roles names 'g', not a method");
    expect_refused("b.lua", "return {info = function() end}\n",
                   "built-in method");
    expect_refused("t.lua", "while true do end\n", "instruction budget");
}

static void
test_reload_swaps_keeps_and_removes(void **state)
{
    struct kdir d;
    hf_lua *r;
    struct th_eng *e;
    size_t n;
    const struct hf_kind *const *k;

    (void)state;
    kdir_new(&d);
    kdir_put(&d, "v.lua", "return {ver = function() return 1 end}\n");
    kdir_put(&d, "v_test.lua", "this is a test file, not a kind\n");
    r = lua_over(&d, 0, 0);
    assert_int_equal(hf_lua_count(r), 1);
    k = hf_lua_kinds(r, &n);
    e = th_new_kinds(NULL, k, n);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "1");
    /* a new version is served */
    kdir_put(&d, "v.lua", "return {ver = function() return 2 end}\n");
    assert_int_equal(hf_lua_reload(r, e->host), 0);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "2");
    /* a broken one keeps the old code */
    kdir_put(&d, "v.lua", "return {ver = function() return 3 end\n");
    assert_int_equal(hf_lua_reload(r, e->host), 1);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "2");
    /* a kind added is served; a kind removed is not_found */
    kdir_put(&d, "w.lua", "return {hi = function() return 'w' end}\n");
    assert_int_equal(hf_lua_reload(r, e->host), 1);
    th_ok_has(e, "t", ALL, "w/a", "hi", NULL, "\"w\"");
    kdir_rm(&d, "v.lua");
    assert_int_equal(hf_lua_reload(r, e->host), 0);
    th_err(e, "t", ALL, "v/b", "ver", NULL, "not_found");
    th_err(e, "t", ALL, "v/a", "ver", NULL, "not_found"); /* still active */
    th_ok_has(e, "t", ALL, "w/a", "hi", NULL, "\"w\"");
    /* and back again */
    kdir_put(&d, "v.lua", "return {ver = function() return 4 end}\n");
    assert_int_equal(hf_lua_reload(r, e->host), 0);
    th_ok_has(e, "t", ALL, "v/a", "ver", NULL, "4");
    th_free(e);
    hf_lua_close(r);
    kdir_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_get_put_del_list),
        cmocka_unit_test(test_ctx_emit_signal_who_now),
        cmocka_unit_test(test_ctx_send_and_alarms),
        cmocka_unit_test(test_values_round_trip),
        cmocka_unit_test(test_values_depth_bounded),
        cmocka_unit_test(test_errors_coded_and_internal),
        cmocka_unit_test(test_rollback_after_writes_and_emits),
        cmocka_unit_test(test_sandbox_escapes_refused),
        cmocka_unit_test(test_sandbox_file_cannot_set_globals),
        cmocka_unit_test(test_limits_refused_and_next_served),
        cmocka_unit_test(test_roles_checked),
        cmocka_unit_test(test_load_errors_refuse_start),
        cmocka_unit_test(test_reload_swaps_keeps_and_removes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
