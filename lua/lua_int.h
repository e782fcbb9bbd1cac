/*
 * lua_int.h - the Lua layer's private types, shared by kinds.c (registry,
 * generations, reload), sandbox.c (a sandboxed state and loading kind
 * files into it) and ctx.c (the ctx bindings and the calls). Not for use
 * outside lua/.
 */
#ifndef HF_LUA_LUA_INT_H
#define HF_LUA_LUA_INT_H

#include <lua.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/addr.h"
#include "core/metrics.h"
#include "lua/lua.h"

#define HF_LUA_WORKERS 256 /* the host's most workers */

/* One kind name, for the registry's whole life (an actor keeps a pointer
 * to its struct hf_kind, so it must not move or go). Its counters are
 * the kind's metrics; any thread, relaxed atomics. */
struct lkind {
    struct hf_kind k; /* k.udata = this */
    struct lkind *next;
    hf_lua *reg;
    char name[HF_KIND_MAX + 1];
    atomic_uint_least64_t calls;
    atomic_uint_least64_t errors[HF_ECOUNT_]; /* index -err */
    atomic_uint_least64_t budget_aborts, memory_aborts;
    hf_hist us; /* handler time, microseconds */
};

/* One kind file as loaded: immutable once in a snapshot. */
struct lsrc {
    struct lkind *lk;
    char *text;
    size_t len;
};

/* One generation of kind files. Reference counted: the registry holds the
 * current one, each worker state the one it loaded. */
struct lsnap {
    atomic_int refs;
    uint64_t gen;
    struct lsrc *srcs;
    size_t n;
};

/* A method of a kind loaded into one state. */
struct lmeth {
    struct hf_method m; /* what the host sees; m.name = name */
    int fref;           /* the function, in the state's registry */
    struct lkd *kd;
    char name[65];
};

/* A kind loaded into one state. */
struct lkd {
    struct lkind *lk;
    struct lmeth *meths;
    size_t nmeths;
    int alarm_ref; /* _alarm, or LUA_NOREF */
};

/* A sandboxed Lua state: one per worker (touched by that worker only),
 * or a scratch one that checks files on the registry's thread. */
struct lstate {
    lua_State *L;
    hf_lua *reg;
    size_t used, cap; /* bytes allocated, cap (0: none) */
    uint64_t budget;  /* instructions per call or load */
    uint64_t steps;   /* counted so far (by the hook) */
    int running;      /* the budget applies */
    int abort;        /* HF_ETIMEOUT / HF_ETOOLARGE: ending the call */
    int refused;      /* the cap refused an allocation in this call */
    uint64_t gen;     /* of snap */
    struct lsnap *snap;
    struct lkd *kds;
    size_t nkds;
    int ctx_mt;  /* registry ref: ctx's metatable */
    int ctx_cur; /* registry ref: the current call's ctx, or none */
    hf_ctx *c;   /* the current call's, or NULL */
    hf_buf buf;  /* scratch for packing */
};

struct hf_lua {
    hf_lua_config cfg;
    char dir[1024]; /* "" when no directory */
    const struct hf_kind *const *builtins;
    size_t nbuiltins;
    pthread_mutex_t mu;           /* snap, lkinds */
    struct lsnap *snap;           /* mu: the current generation */
    atomic_uint_least64_t gen;    /* snap->gen, read without mu */
    struct lkind *lkinds;         /* mu to change; append-only */
    const struct hf_kind **table; /* built-ins + current Lua kinds */
    size_t ntable;
    struct lstate *states[HF_LUA_WORKERS]; /* [i]: worker i's only */
    atomic_uint_least64_t reloads, reload_failures;
};

/* sandbox.c */
/* A new sandboxed state (budget and cap from the registry's options), or
 * NULL when out of memory. */
struct lstate *hf__lua_state_new(hf_lua *reg);
void hf__lua_state_free(struct lstate *s);
/* Compiles and runs one kind file in s (chunk "NAME.lua", text only) and
 * checks what it returned; on success pushes the kind table and returns
 * 0; else writes "NAME.lua:LINE: message" or "NAME.lua: message" to err
 * and returns HF_EBADREQ with nothing pushed. */
int hf__lua_load_kind(struct lstate *s, const char *name, const char *text,
                      size_t len, char *err, size_t errlen);
/* Calls the function below nargs arguments on the stack with the budget
 * on: lua_pcall's status, with s->abort telling a budget or memory end. */
int hf__lua_pcall(struct lstate *s, int nargs, int nres);
/* Instructions left in the running call's budget (UINT64_MAX when none
 * runs). */
uint64_t hf__lua_budget_left(const struct lstate *s);
/* Charges n instructions of C work to the running call's budget; past
 * it, ends the call as the hook does (raises; HF_ETIMEOUT). */
void hf__lua_charge(lua_State *L, struct lstate *s, uint64_t n);
/* Moves s to snap (taking a reference): a fresh lua_State with every kind
 * of the snapshot loaded. Returns 0 or HF_EINTERNAL (out of memory). */
int hf__lua_state_load(struct lstate *s, struct lsnap *snap);
/* Role bits of a role name ("user", "admin", ...), 0 if unknown. */
unsigned hf__lua_role_bits(const char *name);

/* ctx.c */
/* The ctx metatable of a fresh state; stores the ref in s->ctx_mt. */
void hf__lua_ctx_init(struct lstate *s);
/* The method and alarm hooks of every Lua kind. */
int hf__lua_method(hf_ctx *c, const msgpack_object *args);
int hf__lua_alarm(hf_ctx *c, const char *name);

/* kinds.c */
/* Worker widx's state, current with the registry's generation (created
 * or reloaded here), or NULL (logged) when it cannot be. */
struct lstate *hf__lua_worker_state(hf_lua *reg, int widx);
/* The kind lk as loaded in s, or NULL (not in this generation). */
struct lkd *hf__lua_kd(struct lstate *s, const struct lkind *lk);
void hf__lua_snap_unref(struct lsnap *snap);

#endif
