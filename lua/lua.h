/*
 * lua.h - actor kinds written in Lua 5.4: the kind registry, its options
 * and its reload (issue 13; docs/kinds/lua.md is the user's reference).
 *
 * A registry (hf_lua) loads every DIR/NAME.lua (except *_test.lua, which
 * are `holdfast test` files) as kind NAME and hands the host one table of
 * kinds: the built-in C kinds first, then the Lua ones. Each Lua kind is a
 * struct hf_kind whose methods are looked up at run time (hf_kind.lookup)
 * in the worker's own Lua state: one sandboxed lua_State per worker
 * thread, created on the worker's first Lua call, with an instruction
 * budget per call and a memory cap per state.
 *
 * Reload (hf_lua_reload, on SIGHUP) reads every file again into a new
 * generation; a file that fails keeps its previous version. Each worker
 * moves to the new generation before its next Lua message, so messages
 * already running finish on the old code.
 *
 * Thread-safety: hf_lua_open, hf_lua_reload, hf_lua_kinds and
 * hf_lua_close run on one thread (main, or the test runner); the kinds'
 * hooks run on the host's workers. The registry must outlive every host
 * given its kinds.
 */
#ifndef HF_LUA_LUA_H
#define HF_LUA_LUA_H

#include <stdio.h>

#include "core/actor.h"
#include "core/config.h"
#include "core/host.h"

/* ---- options: --kinds, --lua-budget, --lua-memory-mb ---- */
typedef struct hf_lua_config {
    char kinds[1024]; /* --kinds DIR ("" = ./kinds when it exists) */
    int budget;       /* --lua-budget: VM instructions per call */
    int memory_mb;    /* --lua-memory-mb: per worker's Lua state */
} hf_lua_config;

hf_optset hf_lua_config_set(hf_lua_config *cfg);
void hf_lua_config_defaults(hf_lua_config *cfg);

typedef struct hf_lua hf_lua;

/*
 * Loads every kind file of cfg->kinds (none when it is "" and ./kinds does
 * not exist) beside the built-in kinds (borrowed: they must outlive the
 * registry). On a file that does not load — a syntax or run error, no
 * table returned, a bad name, a name taken by a built-in kind — prints
 * "file:line: message" (or "file: message") to err and returns
 * HF_EBADREQ; also HF_ENOTFOUND when an explicit directory is missing.
 */
int hf_lua_open(hf_lua **out, const hf_lua_config *cfg,
                const struct hf_kind *const *builtins, size_t nbuiltins,
                FILE *err);

/* The kinds to serve: built-ins then Lua kinds. Valid until the next
 * reload or close; hf_host_open and hf_host_set_kinds copy it. */
const struct hf_kind *const *hf_lua_kinds(hf_lua *r, size_t *n);

/* The number of Lua kinds loaded, and the directory ("" if none). */
size_t hf_lua_count(const hf_lua *r);
const char *hf_lua_dir(const hf_lua *r);

/*
 * Reads every kind file again and, when h is not NULL, gives the host the
 * new table. A file that fails to load is logged as "file:line: message"
 * and keeps its previous version (a new file that fails is not added); a
 * file removed removes its kind (not_found for new calls). Logs one line
 * for the reload. Returns the number of files that failed.
 */
int hf_lua_reload(hf_lua *r, hf_host *h);

/* Frees the registry and every worker's Lua state. Only after every host
 * using its kinds is closed. NULL is fine. */
void hf_lua_close(hf_lua *r);

#endif
