/*
 * config.c - the option machinery and the core's table (see config.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"

static const char *const log_levels[] = {"debug", "info", "warn",
                                         "error", "off",  NULL};

#define F(f) offsetof(hf_config, f)

const struct hf_opt hf_config_opts[] = {
    {.name = "workers",
     .type = HF_OPT_INT,
     .off = F(workers),
     .min = 0,
     .max = 256,
     .def = "0",
     .help = "actor worker threads (0 = cores)"},
    {.name = "idle-ms",
     .type = HF_OPT_INT,
     .off = F(idle_ms),
     .min = 1,
     .max = INT_MAX,
     .def = "60000",
     .help = "evict an actor idle this long with no subscribers"},
    {.name = "log-retain",
     .type = HF_OPT_INT,
     .off = F(log_retain),
     .min = 1,
     .max = INT_MAX,
     .def = "10000",
     .help = "events kept per actor"},
    {.name = "idem-window-s",
     .type = HF_OPT_INT,
     .off = F(idem_window_s),
     .min = 1,
     .max = INT_MAX,
     .def = "86400",
     .help = "how long an idempotency key's reply is kept"},
    {.name = "mailbox-max",
     .type = HF_OPT_INT,
     .off = F(mailbox_max),
     .min = 1,
     .max = INT_MAX,
     .def = "10000",
     .help = "queued messages per actor before 'overloaded'"},
    {.name = "alarm-retry-ms",
     .type = HF_OPT_INT,
     .off = F(alarm_retry_ms),
     .min = 1,
     .max = INT_MAX,
     .def = "1000",
     .help = "first retry delay of a failed alarm (doubles, max 5 min)"},
    {.name = "log-level",
     .type = HF_OPT_ENUM,
     .off = F(log_level),
     .names = log_levels,
     .def = "info",
     .help = "debug, info, warn, error or off"},
};
const size_t hf_config_nopts =
    sizeof(hf_config_opts) / sizeof(hf_config_opts[0]);

static int
set(void *base, const struct hf_opt *o, const char *v)
{
    char *p = (char *)base + o->off;
    char *end;
    long n;

    switch (o->type) {
    case HF_OPT_INT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || *v == '\0' || *end != '\0' || n < o->min ||
            n > o->max)
            return HF_EBADREQ;
        *(int *)p = (int)n;
        return 0;
    case HF_OPT_STR:
        if (strlen(v) >= o->size)
            return HF_ETOOLARGE;
        strcpy(p, v);
        return 0;
    case HF_OPT_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            *(int *)p = 1;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            *(int *)p = 0;
        else
            return HF_EBADREQ;
        return 0;
    case HF_OPT_LIST: {
        size_t have, add = strlen(v);
        if (add == 0) { /* the default: an empty list */
            p[0] = '\0';
            return 0;
        }
        have = strnlen(p, o->size);
        if (have + 1 + add >= o->size)
            return HF_ETOOLARGE;
        if (have > 0)
            p[have++] = '\n';
        for (size_t i = 0; i <= add; i++) /* whitespace separates items */
            p[have + i] = (v[i] == ' ' || v[i] == '\t') ? '\n' : v[i];
        return 0;
    }
    case HF_OPT_ENUM:
        for (int i = 0; o->names[i] != NULL; i++)
            if (strcmp(v, o->names[i]) == 0) {
                *(int *)p = i;
                return 0;
            }
        return HF_EBADREQ;
    }
    return HF_EINTERNAL;
}

void
hf_opts_defaults(const hf_optset *sets, size_t nsets)
{
    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            const struct hf_opt *o = &sets[s].opts[i];
            /* A list appends: start it empty, whatever the memory held. */
            if (o->type == HF_OPT_LIST)
                ((char *)sets[s].base + o->off)[0] = '\0';
            (void)set(sets[s].base, o, o->def);
        }
}

static void
envname(const struct hf_opt *o, char *out, size_t n)
{
    size_t j = (size_t)snprintf(out, n, "HOLDFAST_");
    for (const char *c = o->name; *c != '\0' && j + 1 < n; c++)
        out[j++] = (*c == '-') ? '_' : (char)(*c - 'a' + 'A');
    out[j] = '\0';
}

int
hf_opts_env(const hf_optset *sets, size_t nsets, FILE *err)
{
    char name[64];
    const char *v;

    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            envname(&sets[s].opts[i], name, sizeof(name));
            if ((v = getenv(name)) == NULL)
                continue;
            if (set(sets[s].base, &sets[s].opts[i], v) != 0) {
                fprintf(err, "holdfast: bad value for %s: '%s'\n", name, v);
                return HF_EBADREQ;
            }
        }
    return 0;
}

int
hf_opts_args(const hf_optset *sets, size_t nsets, int argc, char **argv,
             int *argi, FILE *err)
{
    while (*argi < argc && strncmp(argv[*argi], "--", 2) == 0) {
        const char *a = argv[*argi] + 2, *eq = strchr(a, '='), *v;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const struct hf_opt *o = NULL;
        void *base = NULL;

        for (size_t s = 0; s < nsets; s++)
            for (size_t i = 0; i < sets[s].n; i++)
                if (strlen(sets[s].opts[i].name) == nl &&
                    strncmp(sets[s].opts[i].name, a, nl) == 0) {
                    o = &sets[s].opts[i];
                    base = sets[s].base;
                }
        if (o == NULL) {
            fprintf(err, "holdfast: unknown option --%.*s\n", (int)nl, a);
            return HF_EBADREQ;
        }
        if (eq != NULL) {
            v = eq + 1;
        } else if (o->type == HF_OPT_BOOL) {
            v = "true"; /* a bare switch */
        } else if (*argi + 1 < argc) {
            v = argv[++*argi];
        } else {
            fprintf(err, "holdfast: --%s needs a value\n", o->name);
            return HF_EBADREQ;
        }
        if (set(base, o, v) != 0) {
            fprintf(err, "holdfast: bad value for --%s: '%s'\n", o->name, v);
            return HF_EBADREQ;
        }
        ++*argi;
    }
    return 0;
}

int
hf_opt_list_next(const char *list, size_t *pos, const char **item,
                 size_t *len)
{
    const char *s = list + *pos, *e;

    while (*s == '\n')
        s++;
    if (*s == '\0')
        return 0;
    e = strchr(s, '\n');
    if (e == NULL)
        e = s + strlen(s);
    *item = s;
    *len = (size_t)(e - s);
    *pos = (size_t)(e - list);
    return 1;
}

void
hf_opts_usage(const hf_optset *sets, size_t nsets, FILE *out)
{
    char name[64];

    for (size_t s = 0; s < nsets; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            const struct hf_opt *o = &sets[s].opts[i];
            envname(o, name, sizeof(name));
            fprintf(out, "  --%-15s %-24s %s (default: %s)\n", o->name, name,
                    o->help, *o->def ? o->def : "none");
        }
}

hf_optset
hf_config_set(hf_config *cfg)
{
    return (hf_optset){hf_config_opts, hf_config_nopts, cfg};
}

void
hf_config_defaults(hf_config *cfg)
{
    hf_optset s = hf_config_set(cfg);

    memset(cfg, 0, sizeof(*cfg));
    hf_opts_defaults(&s, 1);
}

int
hf_config_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

void
hf_config_finish(hf_config *cfg)
{
    if (cfg->workers == 0)
        cfg->workers = hf_config_cores();
}
