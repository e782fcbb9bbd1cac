/*
 * sandbox.c - a sandboxed Lua state, and loading kind files into it.
 *
 * Design notes
 * ------------
 * What a kind can reach. The state's globals (LUA_RIDX_GLOBALS, so every
 * chunk's _ENV) are an empty table whose protected metatable reads from a
 * base table nothing else can reach and refuses every assignment: a kind
 * file cannot leave anything behind for another actor, or another kind.
 * The base holds the safe base functions, and string, table, math, utf8
 * and os (time and clock only) as read-only proxies of the real libraries.
 * Not there: io, debug, package, require, load, loadstring, dofile,
 * loadfile, rawset (it would write a proxy), collectgarbage, coroutine,
 * string.dump (removed from the real string table too, since strings
 * index it through their metatable, which is protected). Kind files are
 * loaded as text only.
 *
 * Ending a runaway call. A count hook runs every HOOK_EVERY instructions
 * while a call (or a file's top level) runs; past the budget it raises an
 * error and marks the state aborted (HF_ETIMEOUT). The allocator refuses
 * to grow past the cap; Lua then collects and tries again, and raises a
 * memory error when that fails too (HF_ETOOLARGE). The kind cannot catch
 * either for good: pcall and xpcall are wrapped to raise them again, and
 * the hook keeps raising until the call is over. The C stack is bounded
 * by Lua itself (LUAI_MAXCCALLS: "C stack overflow") and by the value
 * converter's depth limit.
 *
 * setmetatable refuses a metatable with __gc: a finalizer would run later,
 * inside some other actor's call.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "lua/lua_int.h"

#define HOOK_EVERY 1000 /* instructions between two looks at the budget */

static struct lstate *
state_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static void *
lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lstate *s = ud;
    size_t old = ptr ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old && s->cap > 0 && s->used + (nsize - old) > s->cap) {
        s->refused = 1;
        return NULL; /* Lua collects, tries again, then raises */
    }
    if ((p = realloc(ptr, nsize)) == NULL)
        return NULL;
    s->used = s->used - old + nsize;
    return p;
}

static void
hook(lua_State *L, lua_Debug *ar)
{
    struct lstate *s = state_of(L);

    (void)ar;
    if (!s->running)
        return;
    s->steps += HOOK_EVERY;
    if (s->abort == 0 && s->steps > s->budget)
        s->abort = HF_ETIMEOUT;
    if (s->abort == HF_ETIMEOUT)
        luaL_error(L, "instruction budget exceeded");
    else if (s->abort != 0)
        luaL_error(L, "memory limit exceeded");
}

uint64_t
hf__lua_budget_left(const struct lstate *s)
{
    if (!s->running)
        return UINT64_MAX;
    return s->steps < s->budget ? s->budget - s->steps : 0;
}

void
hf__lua_charge(lua_State *L, struct lstate *s, uint64_t n)
{
    if (!s->running)
        return;
    if (n > hf__lua_budget_left(s)) {
        s->steps = s->budget + 1;
        if (s->abort == 0)
            s->abort = HF_ETIMEOUT;
        luaL_error(L, "instruction budget exceeded");
    }
    s->steps += n;
}

/* Whether a failed call (status st, error object at the top) ran out of
 * memory: Lua's own LUA_ERRMEM, or the auxiliary library's buffers, which
 * raise a plain "not enough memory" when the allocator refuses. */
static int
out_of_memory(lua_State *L, struct lstate *s, int st)
{
    const char *m;

    if (st == LUA_ERRMEM)
        return 1;
    return s->refused && lua_type(L, -1) == LUA_TSTRING &&
           (m = lua_tostring(L, -1)) != NULL &&
           strcmp(m, "not enough memory") == 0;
}

int
hf__lua_pcall(struct lstate *s, int nargs, int nres)
{
    int st;

    s->steps = 0;
    s->abort = 0;
    s->refused = 0;
    s->running = 1;
    st = lua_pcall(s->L, nargs, nres, 0);
    s->running = 0;
    if (st != LUA_OK && s->abort == 0 && out_of_memory(s->L, s, st))
        s->abort = HF_ETOOLARGE;
    return st;
}

/* ---- the base functions that change ---- */

/* After a protected call inside the kind: a budget or memory end goes on
 * up, whatever the kind's pcall wanted. */
static void
rethrow_abort(lua_State *L, int status)
{
    struct lstate *s = state_of(L);

    if (status != LUA_OK && s->running && s->abort == 0 &&
        out_of_memory(L, s, status))
        s->abort = HF_ETOOLARGE;
    if (s->abort != 0)
        lua_error(L);
}

static int
sb_pcall(lua_State *L)
{
    int st;

    luaL_checkany(L, 1);
    st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    rethrow_abort(L, st);
    lua_pushboolean(L, st == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int
sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L), st;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1); /* room for the status */
    lua_pushvalue(L, 1);   /* the function */
    lua_rotate(L, 3, 2);   /* under its arguments */
    st = lua_pcall(L, n - 2, LUA_MULTRET, 2);
    rethrow_abort(L, st);
    lua_pushboolean(L, st == LUA_OK);
    lua_replace(L, 3);
    return lua_gettop(L) - 2;
}

/* table.move(a1, f, e, t [,a2]): its loop runs in C, where the hook does
 * not count, so its e - f + 1 steps are charged before it runs. */
static int
sb_table_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);

    if (e >= f) /* the difference, without overflow; +1 may wrap: cap */
        hf__lua_charge(L, state_of(L),
                       (lua_Unsigned)e - (lua_Unsigned)f == LUA_MAXUNSIGNED
                           ? LUA_MAXUNSIGNED
                           : (lua_Unsigned)e - (lua_Unsigned)f + 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* The pattern functions backtrack in C, also out of the hook's sight: a
 * pattern with q repetition items can take about n^(q+1) steps over n
 * bytes ("(.-)" items nest their retries). So a pattern with q >= 1 such
 * items over n bytes is refused when n^(q+1) > PATTERN_WORK. Counted
 * conservatively: every unescaped * + - ? outside a set, and every %b. */
#define PATTERN_WORK 1000000000.0

static int
pattern_repeats(const char *p, size_t len)
{
    int q = 0;

    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%') {
            if (i + 1 < len && p[i + 1] == 'b')
                q++;
            i++;
        } else if (p[i] == '[') { /* a set: to its closing ] */
            i++;
            if (i < len && p[i] == '^')
                i++;
            if (i < len && p[i] == ']') /* a leading ] is a member */
                i++;
            for (; i < len && p[i] != ']'; i++)
                if (p[i] == '%')
                    i++;
        } else if (p[i] == '*' || p[i] == '+' || p[i] == '-' ||
                   p[i] == '?') {
            q++;
        }
    }
    return q;
}

static int
sb_pattern(lua_State *L)
{
    const char *what = lua_tostring(L, lua_upvalueindex(2));
    size_t n, pl;
    const char *pat;
    double work = 1;
    int q;

    luaL_checklstring(L, 1, &n);
    pat = luaL_checklstring(L, 2, &pl);
    if (strcmp(what, "find") == 0 && lua_toboolean(L, 4))
        q = 0; /* plain */
    else
        q = pattern_repeats(pat, pl);
    for (int i = 0; q > 0 && i <= q && work <= PATTERN_WORK; i++)
        work *= (double)n;
    if (q > 0 && work > PATTERN_WORK)
        return luaL_error(L,
                          "string.%s: a pattern with %d repetition items "
                          "over %I bytes may backtrack n^%d times, past the "
                          "limit of 1e9 (shorten the subject or the "
                          "pattern, or use a plain find)",
                          what, q, (lua_Integer)n, q + 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Replaces lib[name] (the table at the top) by fn with the old function
 * and name as its upvalues. */
static void
wrap(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getfield(L, -1, name);
    lua_pushstring(L, name);
    lua_pushcclosure(L, fn, 2);
    lua_setfield(L, -2, name);
}

static int
sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc is not allowed");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* print: a debug line in the server's log. */
static int
sb_print(lua_State *L)
{
    luaL_Buffer b;
    int n = lua_gettop(L);

    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    hf_debug("lua", "print: %s", lua_tostring(L, -1));
    return 0;
}

static int
sb_readonly(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L,
                          "assignment to '%s': globals and libraries "
                          "are read-only",
                          lua_tostring(L, 2));
    return luaL_error(L, "globals and libraries are read-only");
}

/* Pushes a read-only proxy of the table at the top (which it pops). */
static void
proxy(lua_State *L)
{
    lua_newtable(L);          /* the proxy */
    lua_createtable(L, 0, 3); /* its metatable */
    lua_rotate(L, -3, -1);    /* proxy, mt, lib */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sb_readonly);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

static const char *const base_keep[] = {
    "assert",   "error",  "ipairs",       "next",     "pairs",
    "rawequal", "rawget", "rawlen",       "select",   "tonumber",
    "tostring", "type",   "getmetatable", "_VERSION", NULL};

static int
setup(lua_State *L)
{
    int g, base;

    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    g = lua_gettop(L);
    lua_newtable(L);
    base = lua_gettop(L);
    for (int i = 0; base_keep[i]; i++) {
        lua_getfield(L, g, base_keep[i]);
        lua_setfield(L, base, base_keep[i]);
    }
    lua_pushcfunction(L, sb_pcall);
    lua_setfield(L, base, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setfield(L, base, "xpcall");
    lua_pushcfunction(L, sb_print);
    lua_setfield(L, base, "print");
    lua_getfield(L, g, "setmetatable");
    lua_pushcclosure(L, sb_setmetatable, 1);
    lua_setfield(L, base, "setmetatable");

    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    wrap(L, "find", sb_pattern);
    wrap(L, "match", sb_pattern);
    wrap(L, "gmatch", sb_pattern);
    wrap(L, "gsub", sb_pattern);
    proxy(L);
    lua_setfield(L, base, "string");
    lua_pushliteral(L, ""); /* protect the strings' metatable */
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    wrap(L, "move", sb_table_move);
    proxy(L);
    lua_setfield(L, base, "table");
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    proxy(L);
    lua_setfield(L, base, "math");
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    proxy(L);
    lua_setfield(L, base, "utf8");
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_createtable(L, 0, 2);
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    proxy(L);
    lua_setfield(L, base, "os");
    lua_pop(L, 1); /* the real os */

    /* The globals: a read-only proxy of base, like the libraries. */
    lua_pushvalue(L, base);
    proxy(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, base, "_G");
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_settop(L, 0);
    hf__lua_ctx_init(state_of(L));
    return 0;
}

static int
panic(lua_State *L)
{
    hf_error("lua", "unprotected Lua error: %s", lua_tostring(L, -1));
    abort();
}

/* A fresh lua_State for s, sandboxed; NULL when out of memory. */
static lua_State *
new_lua(struct lstate *s)
{
    lua_State *L;

    s->used = 0;
    if ((L = lua_newstate(lalloc, s)) == NULL)
        return NULL;
    lua_atpanic(L, panic);
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    s->L = L;
    lua_pushcfunction(L, setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_close(L);
        s->L = NULL;
        return NULL;
    }
    lua_gc(L, LUA_GCGEN, 0, 0); /* generational: short-lived call garbage */
    return L;
}

struct lstate *
hf__lua_state_new(hf_lua *reg)
{
    struct lstate *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->reg = reg;
    s->cap = (size_t)reg->cfg.memory_mb << 20;
    s->budget = (uint64_t)reg->cfg.budget;
    if (new_lua(s) == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static void
kds_free(struct lstate *s)
{
    for (size_t i = 0; i < s->nkds; i++)
        free(s->kds[i].meths);
    free(s->kds);
    s->kds = NULL;
    s->nkds = 0;
}

void
hf__lua_state_free(struct lstate *s)
{
    if (s == NULL)
        return;
    if (s->L)
        lua_close(s->L);
    kds_free(s);
    hf__lua_snap_unref(s->snap);
    hf_buf_free(&s->buf);
    free(s);
}

/* ---- loading a kind file ---- */

unsigned
hf__lua_role_bits(const char *name)
{
    static const struct {
        const char *name;
        unsigned bits;
    } roles[] = {{"user", HF_ROLE_USER},
                 {"admin", HF_ROLE_ADMIN},
                 {"device", HF_ROLE_DEVICE},
                 {"service", HF_ROLE_SERVICE},
                 {"actor", HF_ROLE_ACTOR}};

    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(name, roles[i].name) == 0)
            return roles[i].bits;
    return 0;
}

/* Pushes t[name] read raw (the kind's table is data: no metamethod of
 * the kind runs while it is read); returns its type. */
static int
rawfield(lua_State *L, int t, const char *name)
{
    lua_pushstring(L, name);
    return lua_rawget(L, t);
}

/* The roles of method `name` from the _roles table at index roles (0:
 * none): 0 and *bits, or -1 with err written. */
static int
method_roles(lua_State *L, int roles, const char *name, unsigned *bits,
             char *err, size_t errlen)
{
    *bits = HF_ROLE_ANY;
    if (roles == 0 || rawfield(L, roles, name) == LUA_TNIL) {
        lua_pop(L, roles != 0);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "_roles.%s must be a list of role names", name);
        lua_pop(L, 1);
        return -1;
    }
    *bits = HF_ROLE_ADMIN; /* an empty list: admins only */
    for (lua_Integer i = 1;; i++) {
        unsigned b;
        if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
            lua_pop(L, 1);
            break;
        }
        if (lua_type(L, -1) != LUA_TSTRING ||
            (b = hf__lua_role_bits(lua_tostring(L, -1))) == 0) {
            snprintf(err, errlen,
                     "_roles.%s: '%s' is not a role (user, admin, device, "
                     "service, actor)",
                     name,
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                    : luaL_typename(L, -1));
            lua_pop(L, 2);
            return -1;
        }
        *bits |= b;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* Checks the kind table at the top and, when kd is not NULL, fills it
 * (methods with function refs). 0, or -1 with err written. */
static int
read_kind(struct lstate *s, struct lkd *kd, char *err, size_t errlen)
{
    lua_State *L = s->L;
    int t = lua_gettop(L), roles = 0;
    size_t n = 0;

    if (lua_getmetatable(L, t)) {
        snprintf(err, errlen,
                 "the returned table has a metatable (a kind must be a "
                 "plain table)");
        return lua_settop(L, t), -1;
    }
    if (rawfield(L, t, "_roles") == LUA_TTABLE) {
        roles = lua_gettop(L);
    } else if (!lua_isnil(L, -1)) {
        snprintf(err, errlen, "_roles must be a table");
        return lua_settop(L, t), -1;
    }
    if (rawfield(L, t, "_alarm") != LUA_TNIL && !lua_isfunction(L, -1)) {
        snprintf(err, errlen, "_alarm must be a function");
        return lua_settop(L, t), -1;
    }
    if (kd)
        kd->alarm_ref = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF)
                                         : luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    /* Count the methods, then read them. */
    for (int pass = 0; pass < 2; pass++) {
        size_t i = 0;
        if (pass == 1 && kd) {
            kd->meths = calloc(n ? n : 1, sizeof(*kd->meths));
            if (kd->meths == NULL)
                return lua_settop(L, t), -1;
        }
        lua_pushnil(L);
        while (lua_next(L, t) != 0) {
            const char *name;
            size_t nl;
            unsigned bits;
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isfunction(L, -1) ||
                (name = lua_tolstring(L, -2, &nl))[0] == '_') {
                lua_pop(L, 1);
                continue;
            }
            if (pass == 0) {
                if (nl > 64 || nl == 0 || strlen(name) != nl) {
                    snprintf(err, errlen, "method name '%.64s' is too long",
                             name);
                    return lua_settop(L, t), -1;
                }
                if (strcmp(name, "info") == 0 ||
                    strcmp(name, "presence") == 0) {
                    snprintf(err, errlen,
                             "'%s' is a built-in method of every kind", name);
                    return lua_settop(L, t), -1;
                }
                if (method_roles(L, roles, name, &bits, err, errlen) != 0)
                    return lua_settop(L, t), -1;
                n++;
                lua_pop(L, 1);
                continue;
            }
            if (kd == NULL) {
                lua_pop(L, 1);
                continue;
            }
            method_roles(L, roles, name, &bits, err, errlen);
            memcpy(kd->meths[i].name, name, nl + 1);
            kd->meths[i].m.name = kd->meths[i].name;
            kd->meths[i].m.fn = hf__lua_method;
            kd->meths[i].m.roles = bits;
            kd->meths[i].kd = kd;
            kd->meths[i].fref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops */
            i++;
        }
        if (pass == 1 && kd)
            kd->nmeths = i;
    }
    /* Every _roles entry must name a method. */
    if (roles != 0) {
        lua_pushnil(L);
        while (lua_next(L, roles) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING ||
                (lua_pushvalue(L, -1), lua_rawget(L, t)) != LUA_TFUNCTION) {
                snprintf(err, errlen, "_roles names '%s', not a method",
                         lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                        : "?");
                return lua_settop(L, t), -1;
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, t);
    return 0;
}

struct readk {
    struct lstate *s;
    struct lkd *kd;
    char *err;
    size_t errlen;
    int rv;
};

/* read_kind, protected (its allocations may raise): the kind table, then
 * the struct readk. */
static int
read_kind_entry(lua_State *L)
{
    struct readk *r = lua_touserdata(L, 2);

    lua_settop(L, 1);
    r->rv = read_kind(r->s, r->kd, r->err, r->errlen);
    return 0;
}

static int
load_kind(struct lstate *s, const char *name, const char *text, size_t len,
          struct lkd *kd, char *err, size_t errlen)
{
    lua_State *L = s->L;
    char chunk[HF_KIND_MAX + 8], why[200];
    int st;

    snprintf(chunk, sizeof(chunk), "=%s.lua", name);
    if ((st = luaL_loadbufferx(L, text, len, chunk, "t")) == LUA_OK)
        st = hf__lua_pcall(s, 0, 1);
    if (st != LUA_OK) {
        if (s->abort == HF_ETIMEOUT)
            snprintf(err, errlen,
                     "%s.lua: the top level ran past the "
                     "instruction budget",
                     name);
        else if (s->abort == HF_ETOOLARGE)
            snprintf(err, errlen, "%s.lua: out of memory (--lua-memory-mb)",
                     name);
        else
            snprintf(err, errlen, "%s",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                    : "error (not a string)");
        lua_pop(L, 1);
        return HF_EBADREQ;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen,
                 "%s.lua: must return a table of methods, "
                 "not a %s",
                 name, luaL_typename(L, -1));
        lua_pop(L, 1);
        return HF_EBADREQ;
    }
    /* Read with the budget armed and protected: a reading error or
     * runaway must refuse the file, not abort or hang the thread. */
    struct readk r = {s, kd, why, sizeof(why), -1};
    lua_pushcfunction(L, read_kind_entry);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, &r);
    if ((st = hf__lua_pcall(s, 2, 0)) != LUA_OK) {
        snprintf(why, sizeof(why), "reading the kind table: %s",
                 s->abort == HF_ETIMEOUT ? "past the instruction budget"
                 : s->abort == HF_ETOOLARGE || st == LUA_ERRMEM
                     ? "out of memory (--lua-memory-mb)"
                 : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                  : "error");
        lua_pop(L, 1);
    }
    if (st != LUA_OK || r.rv != 0) {
        snprintf(err, errlen, "%s.lua: %s", name, why);
        lua_pop(L, 1);
        return HF_EBADREQ;
    }
    return 0;
}

int
hf__lua_load_kind(struct lstate *s, const char *name, const char *text,
                  size_t len, char *err, size_t errlen)
{
    return load_kind(s, name, text, len, NULL, err, errlen);
}

int
hf__lua_state_load(struct lstate *s, struct lsnap *snap)
{
    struct lkd *kds;
    size_t n = 0;
    char err[300];

    /* The old state goes first: the cap counts one state's bytes. */
    if (s->L)
        lua_close(s->L);
    s->L = NULL;
    kds_free(s);
    hf__lua_snap_unref(s->snap);
    s->snap = NULL;
    s->gen = 0;
    if ((kds = calloc(snap->n ? snap->n : 1, sizeof(*kds))) == NULL)
        return HF_EINTERNAL;
    if (new_lua(s) == NULL) {
        free(kds);
        return HF_EINTERNAL;
    }
    for (size_t i = 0; i < snap->n; i++) {
        const struct lsrc *src = &snap->srcs[i];
        struct lkd *kd = &kds[n];
        kd->lk = src->lk;
        if (load_kind(s, src->lk->name, src->text, src->len, kd, err,
                      sizeof(err)) != 0) {
            free(kd->meths);
            memset(kd, 0, sizeof(*kd));
            hf_error("lua", "%s (kind not served by this worker)", err);
            continue;
        }
        lua_pop(s->L, 1);
        n++;
    }
    s->kds = kds;
    s->nkds = n;
    atomic_fetch_add(&snap->refs, 1);
    s->snap = snap;
    s->gen = snap->gen;
    return 0;
}
