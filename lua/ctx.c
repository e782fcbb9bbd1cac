/*
 * ctx.c - a Lua kind's calls: the ctx object its handlers get, and the
 * method and alarm hooks that run them in the worker's state.
 *
 * Design notes
 * ------------
 * Everything that can allocate runs inside one protected call (entry):
 * making ctx, converting the arguments, the handler, converting its
 * result. So a memory error or the budget's error always lands in our
 * lua_pcall, never in an unprotected spot, and nothing C-owned is held
 * across a Lua error (scratch lives in the state: s->buf).
 *
 * The ctx functions act on the context of the call running now (s->c).
 * A ctx kept by the kind past its call is refused, so one actor's ctx
 * cannot write another actor's keys later.
 *
 * Errors: error{code = "...", message = "..."} replies with that code;
 * any other error is internal, with the message (chunk names are
 * "NAME.lua", so no server path shows; hexadecimal addresses are blanked).
 * The handler's unit is discarded by the host in every error case.
 *
 * Alarm data lives in the actor's keys under "\0a:" + name, a prefix the
 * ctx functions refuse and ctx:list never shows.
 */
#include <lauxlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/keys.h"
#include "core/log.h"
#include "core/mp.h"
#include "core/oom.h"
#include "lua/lua_int.h"
#include "lua/value.h"

#define KEY_MAX    (HF_KEY_MAX - 200) /* the core's user key bound */
#define ALARM_PFX  "\0a:"
#define ALARM_PFXL 3

static struct lstate *
state_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Raises error{code=, message=}, as a kind's own coded error. */
static int
raise_code(lua_State *L, int code, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, hf_err_name(code));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    return lua_error(L);
}

/* The running call's context; refuses a ctx from another call. */
static hf_ctx *
check_ctx(lua_State *L, struct lstate *s)
{
    int same;

    if (s->c == NULL)
        luaL_error(L, "ctx used outside a call");
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_cur);
    same = lua_rawequal(L, 1, -1);
    lua_pop(L, 1);
    if (!same)
        luaL_error(L, "not the ctx of this call (call ctx:fn(...))");
    return s->c;
}

/* After a failed hf_* call: its code and message, as a coded error. */
static int
raise_ctx(lua_State *L, hf_ctx *c, int rv, const char *what)
{
    char msg[320];

    snprintf(msg, sizeof(msg), "%s: %s", what,
             hf_errmsg(c)[0] ? hf_errmsg(c) : hf_err_name(rv));
    return raise_code(L, rv, msg);
}

static const char *
check_key(lua_State *L, int idx, size_t *len)
{
    const char *k;

    if (lua_type(L, idx) != LUA_TSTRING)
        raise_code(L, HF_EBADREQ, "a key must be a string");
    k = lua_tolstring(L, idx, len);
    if (*len == 0 || *len > KEY_MAX)
        raise_code(L, HF_EBADREQ, "a key must be 1 to 824 bytes");
    if (k[0] == '\0')
        raise_code(L, HF_EBADREQ,
                   "keys starting with a NUL byte are "
                   "reserved");
    return k;
}

/* Packs the value at idx into s->buf with the packer's bounds: the nodes
 * visited are charged to the call's budget (raising its end past it). */
static int
pack_buf(lua_State *L, struct lstate *s, int idx, const char *root,
         char *err, size_t errlen)
{
    hf_lua_bounds b = {.max_bytes = HF_LUA_PACK_MAX,
                       .max_nodes = hf__lua_budget_left(s)};
    msgpack_packer pk;
    int rv;

    s->buf.len = 0;
    msgpack_packer_init(&pk, &s->buf, hf_buf_mpwrite);
    rv = hf_lua_pack_bounded(L, idx, &pk, root, &b, err, errlen);
    hf__lua_charge(L, s, b.nodes);
    return rv;
}

/* Packs the value at idx into s->buf; a coded error when it cannot,
 * naming it root (or, when key is not NULL, "value for 'key'"). */
static hf_slice
pack_arg(lua_State *L, struct lstate *s, int idx, const char *root,
         const char *key)
{
    char err[200], name[80];
    int rv;

    if ((rv = pack_buf(L, s, idx, root, err, sizeof(err))) != 0) {
        if (key != NULL && rv == HF_EBADREQ) { /* rare: format it now */
            snprintf(name, sizeof(name), "value for '%.40s'", key);
            pack_buf(L, s, idx, name, err, sizeof(err));
        }
        raise_code(L, rv, err);
    }
    return (hf_slice){s->buf.data, s->buf.len};
}

/* ---- ctx functions ---- */

static int
c_get(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    size_t kl;
    const char *k = check_key(L, 2, &kl);
    hf_slice v;
    int rv = hf_get(c, k, kl, &v);

    if (rv == HF_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rv != 0)
        return raise_code(L, rv, "cannot read the key");
    if (hf_lua_push_bytes(L, v.data, v.len) != 0)
        return raise_code(L, HF_EINTERNAL,
                          "the stored value is not one "
                          "a Lua kind wrote");
    return 1;
}

static int
c_del(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    size_t kl;
    const char *k = check_key(L, 2, &kl);
    int rv = hf_del(c, k, kl);

    if (rv != 0)
        return raise_ctx(L, c, rv, "cannot delete the key");
    return 0;
}

static int
c_put(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    size_t kl;
    const char *k = check_key(L, 2, &kl);
    hf_slice v;
    int rv;

    if (lua_isnoneornil(L, 3))
        return c_del(L); /* put(k, nil) deletes */
    v = pack_arg(L, s, 3, "value", k);
    if ((rv = hf_put(c, k, kl, v.data, v.len)) != 0)
        return raise_ctx(L, c, rv, "cannot write the key");
    return 0;
}

struct listcb {
    hf_buf *out;
    size_t n;
};

static int
list_cb(void *arg, hf_slice key, hf_slice val)
{
    struct listcb *l = arg;
    uint32_t kl = (uint32_t)key.len, vl = (uint32_t)val.len;

    if (key.len == 0 || ((const char *)key.data)[0] == '\0')
        return 0; /* reserved keys (alarm data) */
    HF_MUST(hf_buf_append(l->out, &kl, 4));
    HF_MUST(hf_buf_append(l->out, key.data, key.len));
    HF_MUST(hf_buf_append(l->out, &vl, 4));
    HF_MUST(hf_buf_append(l->out, val.data, val.len));
    l->n++;
    return 0;
}

/* The first key after every key that starts with p (p's successor), in
 * out; 0 when there is none (p is all 0xff bytes): no upper bound. */
static size_t
prefix_end(const char *p, size_t n, char *out)
{
    while (n > 0 && (unsigned char)p[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    memcpy(out, p, n);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return n;
}

static int
c_list(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    size_t pl = 0, al = 0, hl;
    const char *p = "", *after = NULL;
    char hi[KEY_MAX + 1], lo[KEY_MAX + 2];
    lua_Integer limit = 0;
    struct listcb cb = {.out = &s->buf};
    hf_slice lov;
    int rv;

    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TSTRING)
            return raise_code(L, HF_EBADREQ, "list: prefix must be a string");
        p = lua_tolstring(L, 2, &pl);
        if (pl > KEY_MAX)
            return raise_code(L, HF_EBADREQ, "list: prefix too long");
    }
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "limit") != LUA_TNIL &&
            (!lua_isinteger(L, -1) || (limit = lua_tointeger(L, -1)) < 1))
            return raise_code(L, HF_EBADREQ,
                              "list: limit must be a "
                              "positive integer");
        if (lua_getfield(L, 3, "after") != LUA_TNIL) {
            if (lua_type(L, -1) != LUA_TSTRING ||
                (after = lua_tolstring(L, -1, &al), al > KEY_MAX))
                return raise_code(L, HF_EBADREQ, "list: after must be a key");
        }
    } else if (!lua_isnoneornil(L, 3)) {
        return raise_code(L, HF_EBADREQ, "list: options must be a table");
    }
    lov = (hf_slice){p, pl};
    if (after != NULL &&
        (al > pl ? memcmp(after, p, pl) >= 0 : memcmp(after, p, al) > 0)) {
        memcpy(lo, after, al); /* the first key after `after` */
        lo[al] = '\0';
        lov = (hf_slice){lo, al + 1};
    }
    if (lov.len == 0)
        lov = (hf_slice){"\x01", 1}; /* past the reserved keys */
    hl = prefix_end(p, pl, hi);
    s->buf.len = 0;
    rv = hf_list(c, lov, (hf_slice){hi, hl}, 0, (size_t)limit, list_cb, &cb);
    if (rv != 0)
        return raise_code(L, rv, "list: cannot read the keys");
    lua_createtable(L, (int)(cb.n > 4096 ? 4096 : cb.n), 0);
    for (size_t pos = 0, i = 1; i <= cb.n; i++) {
        uint32_t kl, vl;
        memcpy(&kl, s->buf.data + pos, 4);
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, s->buf.data + pos + 4, kl);
        lua_setfield(L, -2, "key");
        pos += 4 + kl;
        memcpy(&vl, s->buf.data + pos, 4);
        if (hf_lua_push_bytes(L, s->buf.data + pos + 4, vl) != 0)
            lua_pushnil(L);
        lua_setfield(L, -2, "value");
        pos += 4 + vl;
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    return 1;
}

static const char *
check_str(lua_State *L, int idx, const char *what)
{
    char msg[80];

    if (lua_type(L, idx) != LUA_TSTRING) {
        snprintf(msg, sizeof(msg), "%s must be a string", what);
        raise_code(L, HF_EBADREQ, msg);
    }
    return lua_tostring(L, idx);
}

static int
c_emit(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    const char *type = check_str(L, 2, "emit: the event type");
    hf_slice v = pack_arg(L, s, 3, "event data", NULL);
    uint64_t seq;
    int rv;

    hf_pack_raw(hf_pk(c), v);
    if ((rv = hf_emit(c, type, &seq)) != 0)
        return raise_code(L, rv, "emit: bad event type (1 to 64 bytes)");
    lua_pushinteger(L, (lua_Integer)seq);
    return 1;
}

static int
c_signal(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    const char *type = check_str(L, 2, "signal: the type");
    hf_slice v = pack_arg(L, s, 3, "signal data", NULL);
    int rv;

    hf_pack_raw(hf_pk(c), v);
    if ((rv = hf_signal(c, type)) != 0)
        return raise_code(L, rv, "signal: bad type (1 to 64 bytes)");
    return 0;
}

static int
c_send(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    const char *to = check_str(L, 2, "send: the address");
    const char *m = check_str(L, 3, "send: the method");
    hf_slice v = pack_arg(L, s, 4, "send arguments", NULL);
    int rv;

    hf_pack_raw(hf_pk(c), v);
    if ((rv = hf_send(c, to, m)) != 0) {
        return raise_ctx(L, c, rv, "send");
    }
    return 0;
}

/* The alarm's data key, "\0a:" + name, in out; its length. */
static size_t
alarm_key(char *out, const char *name, size_t nl)
{
    memcpy(out, ALARM_PFX, ALARM_PFXL);
    memcpy(out + ALARM_PFXL, name, nl);
    return ALARM_PFXL + nl;
}

static int
c_set_alarm(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    const char *name = check_str(L, 2, "set_alarm: the name");
    size_t nl = strlen(name), kl;
    char key[ALARM_PFXL + 65];
    int isint, rv;
    lua_Integer at = lua_tointegerx(L, 3, &isint);

    if (!isint)
        return raise_code(L, HF_EBADREQ,
                          "set_alarm: at_ms must be an "
                          "integer (ms since the epoch)");
    if ((rv = hf_alarm_set(c, name, (int64_t)at)) != 0)
        return raise_code(L, rv, "set_alarm: a name is 1 to 64 bytes");
    kl = alarm_key(key, name, nl);
    if (lua_isnoneornil(L, 4)) {
        rv = hf_del(c, key, kl);
    } else {
        hf_slice v = pack_arg(L, s, 4, "alarm data", NULL);
        rv = hf_put(c, key, kl, v.data, v.len);
    }
    if (rv != 0)
        return raise_code(L, rv, "set_alarm: cannot keep the data");
    return 0;
}

static int
c_cancel_alarm(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);
    const char *name = check_str(L, 2, "cancel_alarm: the name");
    char key[ALARM_PFXL + 65];
    int rv;

    if ((rv = hf_alarm_cancel(c, name)) != 0)
        return raise_code(L, rv, "cancel_alarm: a name is 1 to 64 bytes");
    hf_del(c, key, alarm_key(key, name, strlen(name)));
    return 0;
}

static int
c_now(lua_State *L)
{
    struct lstate *s = state_of(L);
    hf_ctx *c = check_ctx(L, s);

    lua_pushinteger(L, (lua_Integer)hf_now(c));
    return 1;
}

static const luaL_Reg ctx_fns[] = {
    {"get", c_get},
    {"put", c_put},
    {"del", c_del},
    {"list", c_list},
    {"emit", c_emit},
    {"signal", c_signal},
    {"send", c_send},
    {"set_alarm", c_set_alarm},
    {"cancel_alarm", c_cancel_alarm},
    {"now", c_now},
    {NULL, NULL},
};

static const char *
role_name(unsigned bits)
{
    if (bits & HF_ROLE_ADMIN)
        return "admin";
    if (bits & HF_ROLE_SERVICE)
        return "service";
    if (bits & HF_ROLE_DEVICE)
        return "device";
    if (bits & HF_ROLE_USER)
        return "user";
    if (bits & HF_ROLE_ACTOR)
        return "actor";
    return NULL;
}

/* The ctx fields, made on first use and kept in the ctx (most handlers
 * read none of address, name and caller, and a call should not pay for
 * them). ctx's metatable sends a miss to the table of ctx functions
 * (a plain lookup, no C call), whose own metatable sends a miss here; so
 * the table indexed is that one, and the ctx is the current call's. */
static int
ctx_field(lua_State *L)
{
    struct lstate *s = state_of(L);
    const char *k, *who, *role;
    hf_ctx *c = s->c;

    if (c == NULL || lua_type(L, 2) != LUA_TSTRING)
        return 0;
    k = lua_tostring(L, 2);
    if (strcmp(k, "address") == 0) {
        lua_pushstring(L, hf_self(c));
    } else if (strcmp(k, "name") == 0) {
        lua_pushstring(L, hf_self_name(c));
    } else if (strcmp(k, "caller") == 0) {
        lua_createtable(L, 0, 2);
        if ((who = hf_caller(c))[0] != '\0') {
            lua_pushstring(L, who);
            lua_setfield(L, -2, "sub");
        }
        if ((role = role_name(hf_caller_role(c))) != NULL) {
            lua_pushstring(L, role);
            lua_setfield(L, -2, "role");
        }
    } else {
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_cur); /* keep it there */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return 1;
}

void
hf__lua_ctx_init(struct lstate *s)
{
    lua_State *L = s->L;

    lua_createtable(L, 0, 2); /* ctx's metatable */
    luaL_newlib(L, ctx_fns);
    lua_createtable(L, 0, 2); /* the functions' metatable */
    lua_pushcfunction(L, ctx_field);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    s->ctx_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    s->ctx_cur = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- running a handler ---- */

struct call {
    struct lstate *s;
    hf_ctx *c;
    int fref;
    const msgpack_object *args; /* a method's */
    const char *alarm;          /* an alarm's name */
    hf_slice data;              /* its data (len 0: nil) */
    int code;                   /* after a failure: the reply's */
    char msg[256];
};

/* A fresh ctx for the call: an empty table, its fields made on use. */
static void
push_ctx(lua_State *L, struct lstate *s)
{
    lua_createtable(L, 0, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_mt);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->ctx_cur);
}

/* The protected part of a call: ctx, arguments, handler, result. */
static int
entry(lua_State *L)
{
    struct call *k = lua_touserdata(L, 1);
    struct lstate *s = k->s;
    char err[200];
    int rv;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->fref);
    push_ctx(L, s);
    s->c = k->c;
    if (k->alarm == NULL) {
        if (k->args->type == MSGPACK_OBJECT_NIL)
            lua_newtable(L);
        else if (hf_lua_push(L, k->args) != 0)
            return raise_code(L, HF_EBADREQ,
                              "arguments nested too deep or of an "
                              "unsupported type");
        lua_call(L, 2, 1);
    } else {
        lua_pushstring(L, k->alarm);
        if (k->data.len == 0 ||
            hf_lua_push_bytes(L, k->data.data, k->data.len) != 0)
            lua_pushnil(L);
        lua_call(L, 3, 1);
    }
    if ((rv = pack_buf(L, s, -1, "result", err, sizeof(err))) != 0)
        return raise_code(L, rv, err);
    return 0;
}

/* Blanks hexadecimal addresses ("table: 0x55d1c0a3b2f0") in a message. */
static void
scrub(char *m)
{
    for (char *p = m; (p = strstr(p, "0x")) != NULL;) {
        char *q = p + 2;
        while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))
            q++;
        if (q - p >= 8) {
            memmove(p + 3, q, strlen(q) + 1);
            p[2] = '?';
        }
        p += 2;
    }
}

/* Reads the error object (argument 2) into the call: protected too. */
static int
errinfo(lua_State *L)
{
    struct call *k = lua_touserdata(L, 1);
    const char *m = NULL;

    k->code = HF_EINTERNAL;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "code");
        if (lua_rawget(L, 2) == LUA_TSTRING) {
            const char *name = lua_tostring(L, -1);
            k->code = hf_err_from_name(name);
            if (k->code == HF_EINTERNAL && strcmp(name, "internal") != 0) {
                snprintf(k->msg, sizeof(k->msg),
                         "error code '%.40s' is not a protocol code", name);
                return 0;
            }
        }
        lua_pushliteral(L, "message");
        lua_rawget(L, 2);
        if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            m = lua_tostring(L, -1);
        else
            m = hf_err_name(k->code);
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        m = lua_tostring(L, 2);
    } else {
        snprintf(k->msg, sizeof(k->msg), "error with a %s value",
                 luaL_typename(L, 2));
        return 0;
    }
    snprintf(k->msg, sizeof(k->msg), "%s", m);
    if (k->code == HF_EINTERNAL)
        scrub(k->msg);
    return 0;
}

/* Runs one call in s; the hf_* return code. */
static int
run(struct lstate *s, struct lkind *lk, struct call *k)
{
    lua_State *L = s->L;
    uint64_t t0 = hf_mono_ns();
    int st, rv = 0;

    atomic_fetch_add_explicit(&lk->calls, 1, memory_order_relaxed);
    lua_settop(L, 0);
    lua_pushcfunction(L, entry);
    lua_pushlightuserdata(L, k);
    st = hf__lua_pcall(s, 1, 0);
    s->c = NULL;
    if (st == LUA_OK) {
        if (k->alarm == NULL) {
            hf_pack_raw(hf_pk(k->c), (hf_slice){s->buf.data, s->buf.len});
            hf_reply(k->c);
        }
    } else if (s->abort == HF_ETIMEOUT) {
        atomic_fetch_add_explicit(&lk->budget_aborts, 1, memory_order_relaxed);
        rv = hf_fail(k->c, HF_ETIMEOUT,
                     "the handler ran past its "
                     "instruction budget");
    } else if (s->abort == HF_ETOOLARGE) {
        atomic_fetch_add_explicit(&lk->memory_aborts, 1, memory_order_relaxed);
        rv = hf_fail(k->c, HF_ETOOLARGE, "the handler ran out of memory");
    } else {
        lua_pushcfunction(L, errinfo);
        lua_insert(L, -2);
        lua_pushlightuserdata(L, k);
        lua_insert(L, -2);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            k->code = HF_EINTERNAL;
            snprintf(k->msg, sizeof(k->msg), "error (unreadable)");
        }
        rv = hf_fail(k->c, k->code, "%s", k->msg);
    }
    lua_settop(L, 0);
    if (s->abort != 0)
        lua_gc(L, LUA_GCCOLLECT);
    if (rv != 0 && rv > -HF_ECOUNT_)
        atomic_fetch_add_explicit(&lk->errors[-rv], 1, memory_order_relaxed);
    hf_hist_add(&lk->us, (hf_mono_ns() - t0) / 1000);
    return rv;
}

int
hf__lua_method(hf_ctx *c, const msgpack_object *args)
{
    const struct lmeth *m =
        (const struct lmeth *)(const void *)((const char *)hf_method_of(c) -
                                             offsetof(struct lmeth, m));
    struct lkind *lk = m->kd->lk;
    struct call k = {.c = c, .fref = m->fref, .args = args};

    /* The lookup just before made this worker's state current. */
    k.s = lk->reg->states[hf_worker_index(c)];
    return run(k.s, lk, &k);
}

int
hf__lua_alarm(hf_ctx *c, const char *name)
{
    struct lkind *lk = hf_self_kind(c)->udata;
    struct lstate *s = hf__lua_worker_state(lk->reg, hf_worker_index(c));
    struct lkd *kd = s ? hf__lua_kd(s, lk) : NULL;
    struct call k = {.s = s, .c = c, .alarm = name};
    char key[ALARM_PFXL + 65];
    size_t kl = alarm_key(key, name, strlen(name));

    if (kd == NULL)
        return hf_fail(c, HF_ENOTFOUND, "kind '%s' is not loaded", lk->name);
    if (hf_get(c, key, kl, &k.data) == 0)
        hf_del(c, key, kl); /* the slice stays valid for the call */
    if (kd->alarm_ref == LUA_NOREF)
        return 0;
    k.fref = kd->alarm_ref;
    return run(s, lk, &k);
}
