/*
 * kinds.c - the Lua kind registry: reading the kinds directory into
 * generations, the kinds table the host serves, reload, the run-time
 * method lookup, each worker's state, and the kinds' metrics.
 *
 * Design notes
 * ------------
 * A generation (struct lsnap) is the text of every kind file that loaded,
 * checked first in a scratch sandboxed state on the registry's thread. It
 * is immutable and reference counted. The registry holds the current one
 * (under mu) and publishes its number in gen; a worker compares gen with
 * its state's before each Lua message and, when they differ, builds a
 * fresh lua_State from the current generation (hf__lua_state_load). So a
 * message already running finishes on the code it started with, and no
 * lock is taken on the way of a call.
 *
 * A kind name keeps one struct lkind (its struct hf_kind and counters)
 * for the registry's life: actors hold a pointer to their kind, and a
 * kind removed and added again must be the same kind. The host's table
 * lists only the kinds of the current generation, so a removed kind is
 * not_found for new calls; an actor of it still active finds no methods.
 *
 * Threads: open, reload, kinds and close on one thread; the lookup and
 * worker states on the workers; the metrics writer on any thread (it
 * takes mu). Lock order: the metrics registry's lock, then wmu, then mu.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/addr.h"
#include "core/log.h"
#include "core/oom.h"
#include "lua/lua_int.h"

#define FILE_MAX (4u << 20) /* bytes of one kind file */

/* ---- options ---- */

#define F(f) offsetof(hf_lua_config, f)

static const struct hf_opt lua_opts[] = {
    {.name = "kinds",
     .type = HF_OPT_STR,
     .off = F(kinds),
     .size = sizeof(((hf_lua_config *)0)->kinds),
     .def = "",
     .help = "folder of Lua kinds, NAME.lua each (default ./kinds if it "
             "exists)"},
    {.name = "lua-budget",
     .type = HF_OPT_INT,
     .off = F(budget),
     .min = 1000,
     .max = 2000000000,
     .def = "10000000",
     .help = "Lua instructions one call may run before 'timeout'"},
    {.name = "lua-memory-mb",
     .type = HF_OPT_INT,
     .off = F(memory_mb),
     .min = 1,
     .max = 65536,
     .def = "64",
     .help = "memory of each worker's Lua state before 'too_large'"},
};

hf_optset
hf_lua_config_set(hf_lua_config *cfg)
{
    return (hf_optset){lua_opts, sizeof(lua_opts) / sizeof(lua_opts[0]),
                       cfg};
}

void
hf_lua_config_defaults(hf_lua_config *cfg)
{
    hf_optset s = hf_lua_config_set(cfg);

    memset(cfg, 0, sizeof(*cfg));
    hf_opts_defaults(&s, 1);
}

/* ---- metrics ---- */

static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static hf_lua *wreg; /* wmu: the registry whose kinds /metrics shows */

static void
write_metrics(FILE *out)
{
    char labels[64];

    pthread_mutex_lock(&wmu);
    if (wreg == NULL)
        goto done;
    pthread_mutex_lock(&wreg->mu);
    hf_metrics_counter(out, "holdfast_lua_reloads_total",
                       "Reloads of the Lua kinds (SIGHUP).",
                       atomic_load(&wreg->reloads));
    hf_metrics_counter(out, "holdfast_lua_reload_failures_total",
                       "Kind files that failed to load on a reload.",
                       atomic_load(&wreg->reload_failures));
    fprintf(out, "# HELP holdfast_lua_calls_total Lua kind method calls.\n"
                 "# TYPE holdfast_lua_calls_total counter\n");
    for (struct lkind *k = wreg->lkinds; k; k = k->next)
        fprintf(out, "holdfast_lua_calls_total{kind=\"%s\"} %" PRIu64 "\n",
                k->name, (uint64_t)atomic_load(&k->calls));
    fprintf(out, "# HELP holdfast_lua_errors_total Lua kind calls that "
                 "failed, by code.\n"
                 "# TYPE holdfast_lua_errors_total counter\n");
    for (struct lkind *k = wreg->lkinds; k; k = k->next)
        for (int e = 1; e < HF_ECOUNT_; e++) {
            uint64_t v = atomic_load(&k->errors[e]);
            if (v > 0)
                fprintf(out,
                        "holdfast_lua_errors_total{kind=\"%s\",code=\"%s\"} "
                        "%" PRIu64 "\n",
                        k->name, hf_err_name(-e), v);
        }
    fprintf(out, "# HELP holdfast_lua_aborts_total Lua calls ended by the "
                 "instruction budget or the memory cap.\n"
                 "# TYPE holdfast_lua_aborts_total counter\n");
    for (struct lkind *k = wreg->lkinds; k; k = k->next)
        fprintf(out,
                "holdfast_lua_aborts_total{kind=\"%s\",reason=\"budget\"} "
                "%" PRIu64 "\n"
                "holdfast_lua_aborts_total{kind=\"%s\",reason=\"memory\"} "
                "%" PRIu64 "\n",
                k->name, (uint64_t)atomic_load(&k->budget_aborts), k->name,
                (uint64_t)atomic_load(&k->memory_aborts));
    fprintf(out, "# HELP holdfast_lua_handler_us Lua handler run time, "
                 "microseconds.\n"
                 "# TYPE holdfast_lua_handler_us histogram\n");
    for (struct lkind *k = wreg->lkinds; k; k = k->next) {
        snprintf(labels, sizeof(labels), "kind=\"%s\"", k->name);
        hf_metrics_hist_series(out, "holdfast_lua_handler_us", labels,
                               &k->us);
    }
    pthread_mutex_unlock(&wreg->mu);
done:
    pthread_mutex_unlock(&wmu);
}

/* ---- generations ---- */

void
hf__lua_snap_unref(struct lsnap *snap)
{
    if (snap == NULL || atomic_fetch_sub(&snap->refs, 1) != 1)
        return;
    for (size_t i = 0; i < snap->n; i++)
        free(snap->srcs[i].text);
    free(snap->srcs);
    free(snap);
}

static const struct hf_method *
lookup(const struct hf_kind *k, int widx, hf_slice method)
{
    struct lkind *lk = k->udata;
    struct lstate *s = hf__lua_worker_state(lk->reg, widx);
    struct lkd *kd;

    if (s == NULL || (kd = hf__lua_kd(s, lk)) == NULL)
        return NULL;
    for (size_t i = 0; i < kd->nmeths; i++)
        if (hf_slice_is(method, kd->meths[i].name))
            return &kd->meths[i].m;
    return NULL;
}

/* The kind named name, created if new; under mu. */
static struct lkind *
lkind_get(hf_lua *r, const char *name)
{
    struct lkind *k, **pp = &r->lkinds;

    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0)
            return *pp;
    k = hf_xcalloc(1, sizeof(*k));
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->reg = r;
    k->k.name = k->name;
    k->k.lookup = lookup;
    k->k.alarm = hf__lua_alarm;
    k->k.udata = k;
    *pp = k; /* appended: the writer walks the list in order */
    return k;
}

struct lkd *
hf__lua_kd(struct lstate *s, const struct lkind *lk)
{
    for (size_t i = 0; i < s->nkds; i++)
        if (s->kds[i].lk == lk)
            return &s->kds[i];
    return NULL;
}

struct lstate *
hf__lua_worker_state(hf_lua *r, int widx)
{
    struct lstate *s;
    struct lsnap *snap;
    int rv;

    if (widx < 0 || widx >= HF_LUA_WORKERS)
        return NULL;
    if ((s = r->states[widx]) == NULL &&
        (s = r->states[widx] = hf__lua_state_new(r)) == NULL) {
        hf_error("lua", "worker %d: cannot create a Lua state", widx);
        return NULL;
    }
    if (s->gen == atomic_load(&r->gen) && s->L != NULL)
        return s;
    pthread_mutex_lock(&r->mu);
    snap = r->snap;
    atomic_fetch_add(&snap->refs, 1);
    pthread_mutex_unlock(&r->mu);
    rv = hf__lua_state_load(s, snap);
    hf__lua_snap_unref(snap);
    if (rv != 0) {
        hf_error("lua", "worker %d: cannot load the kinds (out of memory)",
                 widx);
        return NULL;
    }
    return s;
}

/* ---- reading the directory ---- */

static int
namecmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The kind names of dir's NAME.lua files (not NAME_test.lua), sorted;
 * *n of them. NULL with *n = 0 when none or unreadable. */
static char **
list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t cap = 0;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= 4 ||
            strcmp(de->d_name + l - 4, ".lua") != 0 ||
            (l > 9 && strcmp(de->d_name + l - 9, "_test.lua") == 0))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            names = hf_xrealloc(names, cap * sizeof(*names));
        }
        names[*n] = hf_xmalloc(l - 3);
        memcpy(names[*n], de->d_name, l - 4);
        names[(*n)++][l - 4] = '\0';
    }
    closedir(d);
    if (*n > 1)
        qsort(names, *n, sizeof(*names), namecmp);
    return names;
}

static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf = hf_xmalloc(FILE_MAX + 1);
    n = fread(buf, 1, FILE_MAX + 1, f);
    fclose(f);
    if (n > FILE_MAX) {
        snprintf(err, errlen, "larger than %u bytes", FILE_MAX);
        free(buf);
        return NULL;
    }
    *len = n;
    return hf_xrealloc(buf, n + 1);
}

static int
builtin_named(const hf_lua *r, const char *name)
{
    for (size_t i = 0; i < r->nbuiltins; i++)
        if (strcmp(r->builtins[i]->name, name) == 0)
            return 1;
    return 0;
}

/* Checks one file; 0 and its text, or -1 with "file[:line]: message" in
 * err (file with the directory). */
static int
check_file(hf_lua *r, struct lstate *scratch, const char *name,
           char **text, size_t *len, char *err, size_t errlen)
{
    char path[1300], probe[HF_KIND_MAX + 8], why[400];
    size_t pl = strlen(name);

    snprintf(path, sizeof(path), "%s/%s.lua", r->dir, name);
    *text = NULL;
    if (pl > HF_KIND_MAX ||
        hf_addr_check(probe, (size_t)snprintf(probe, sizeof(probe), "%s/x",
                                              name),
                      NULL) != 0) {
        snprintf(err, errlen,
                 "%s: '%s' is not a valid kind name (a-z first, then a-z, "
                 "0-9 or _, at most 32)",
                 path, name);
        return -1;
    }
    if (builtin_named(r, name)) {
        snprintf(err, errlen,
                 "%s: '%s' is a built-in kind; name the file otherwise",
                 path, name);
        return -1;
    }
    if ((*text = read_file(path, len, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    if (hf__lua_load_kind(scratch, name, *text, *len, why, sizeof(why)) !=
        0) {
        /* why is "NAME.lua:LINE: message": put the directory back. */
        snprintf(err, errlen, "%s/%s", r->dir, why);
        free(*text);
        *text = NULL;
        return -1;
    }
    lua_pop(scratch->L, 1);
    return 0;
}

/* The previous version of kind name in the current generation, or NULL. */
static const struct lsrc *
previous(const hf_lua *r, const char *name)
{
    for (size_t i = 0; r->snap && i < r->snap->n; i++)
        if (strcmp(r->snap->srcs[i].lk->name, name) == 0)
            return &r->snap->srcs[i];
    return NULL;
}

/* Reads the directory into a new generation. At start-up (err != NULL)
 * any failure is printed and fails it all (NULL); on reload a failure is
 * logged and the kind keeps its previous version. *failed counts them. */
static struct lsnap *
read_generation(hf_lua *r, FILE *err, int *failed)
{
    struct lsnap *snap = hf_xcalloc(1, sizeof(*snap));
    struct lstate *scratch = hf__lua_state_new(r);
    size_t n = 0;
    char **names = r->dir[0] ? list_dir(r->dir, &n) : NULL;

    *failed = 0;
    atomic_init(&snap->refs, 1);
    snap->srcs = hf_xcalloc(n ? n : 1, sizeof(*snap->srcs));
    for (size_t i = 0; i < n; i++) {
        char msg[2600], *text = NULL;
        size_t len = 0;
        const struct lsrc *old;

        if (scratch == NULL) {
            snprintf(msg, sizeof(msg), "%s/%s.lua: out of memory", r->dir,
                     names[i]);
        } else if (check_file(r, scratch, names[i], &text, &len, msg,
                              sizeof(msg)) == 0) {
            pthread_mutex_lock(&r->mu);
            snap->srcs[snap->n].lk = lkind_get(r, names[i]);
            pthread_mutex_unlock(&r->mu);
            snap->srcs[snap->n].text = text;
            snap->srcs[snap->n++].len = len;
            continue;
        }
        (*failed)++;
        if (err) {
            fprintf(err, "%s\n", msg);
            continue;
        }
        hf_error("lua", "%s", msg);
        if ((old = previous(r, names[i])) != NULL) {
            struct lsrc *s = &snap->srcs[snap->n++];
            *s = *old;
            s->text = hf_xmalloc(old->len + 1);
            memcpy(s->text, old->text, old->len + 1);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    hf__lua_state_free(scratch);
    if (err && *failed) {
        hf__lua_snap_unref(snap);
        return NULL;
    }
    return snap;
}

/* Makes snap current and rebuilds the table: built-ins, then its kinds. */
static void
publish(hf_lua *r, struct lsnap *snap)
{
    struct lsnap *old;

    pthread_mutex_lock(&r->mu);
    old = r->snap;
    snap->gen = old ? old->gen + 1 : 1;
    r->snap = snap;
    atomic_store(&r->gen, snap->gen);
    pthread_mutex_unlock(&r->mu);
    hf__lua_snap_unref(old);
    free(r->table);
    r->ntable = r->nbuiltins + snap->n;
    r->table = hf_xcalloc(r->ntable ? r->ntable : 1, sizeof(*r->table));
    for (size_t i = 0; i < r->nbuiltins; i++)
        r->table[i] = r->builtins[i];
    for (size_t i = 0; i < snap->n; i++)
        r->table[r->nbuiltins + i] = &snap->srcs[i].lk->k;
}

/* ---- the registry ---- */

int
hf_lua_open(hf_lua **out, const hf_lua_config *cfg,
            const struct hf_kind *const *builtins, size_t nbuiltins,
            FILE *err)
{
    hf_lua *r = hf_xcalloc(1, sizeof(*r));
    struct lsnap *snap;
    struct stat sb;
    int failed;

    *out = NULL;
    r->cfg = *cfg;
    r->builtins = builtins;
    r->nbuiltins = nbuiltins;
    pthread_mutex_init(&r->mu, NULL);
    if (cfg->kinds[0] != '\0') {
        if (stat(cfg->kinds, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(err, "%s: not a folder of kinds\n", cfg->kinds);
            hf_lua_close(r);
            return HF_ENOTFOUND;
        }
        snprintf(r->dir, sizeof(r->dir), "%s", cfg->kinds);
    } else if (stat("kinds", &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(r->dir, sizeof(r->dir), "kinds");
    }
    /* Trailing slashes would double in messages. */
    for (size_t l = strlen(r->dir); l > 1 && r->dir[l - 1] == '/'; l--)
        r->dir[l - 1] = '\0';
    if ((snap = read_generation(r, err, &failed)) == NULL) {
        hf_lua_close(r);
        return HF_EBADREQ;
    }
    publish(r, snap);
    pthread_mutex_lock(&wmu);
    wreg = r;
    pthread_mutex_unlock(&wmu);
    hf_metrics_register(write_metrics);
    *out = r;
    return 0;
}

const struct hf_kind *const *
hf_lua_kinds(hf_lua *r, size_t *n)
{
    *n = r->ntable;
    return r->table;
}

size_t
hf_lua_count(const hf_lua *r)
{
    return r->ntable - r->nbuiltins;
}

const char *
hf_lua_dir(const hf_lua *r)
{
    return r->dir;
}

int
hf_lua_reload(hf_lua *r, hf_host *h)
{
    size_t before = hf_lua_count(r);
    struct lsnap *snap;
    int failed;

    snap = read_generation(r, NULL, &failed);
    publish(r, snap);
    atomic_fetch_add(&r->reloads, 1);
    atomic_fetch_add(&r->reload_failures, (uint64_t)failed);
    if (h != NULL && hf_host_set_kinds(h, hf_lua_kinds(r, &(size_t){0}),
                                       r->ntable) != 0)
        hf_error("lua", "reload: the host refused the kinds table");
    hf_info("lua",
            "reloaded %s: %zu kinds (%zu before), %d failed and kept their "
            "previous version",
            r->dir[0] ? r->dir : "(no folder)", hf_lua_count(r), before,
            failed);
    return failed;
}

void
hf_lua_close(hf_lua *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&wmu);
    if (wreg == r)
        wreg = NULL;
    pthread_mutex_unlock(&wmu);
    for (int i = 0; i < HF_LUA_WORKERS; i++)
        hf__lua_state_free(r->states[i]);
    hf__lua_snap_unref(r->snap);
    while (r->lkinds) {
        struct lkind *k = r->lkinds;
        r->lkinds = k->next;
        free(k);
    }
    free(r->table);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
