/*
 * config.c - the option table and its three sources.
 *
 * Design note: options are data. Adding one is adding a field to hf_config
 * and a row here; parsing, the environment and the usage text follow.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

enum opt_type { OPT_INT, OPT_STR, OPT_BOOL, OPT_DURABILITY, OPT_LOGLEVEL };

struct opt {
    const char *name; /* flag without "--"; env is HOLDFAST_ + upper */
    enum opt_type type;
    size_t off;
    size_t size; /* for OPT_STR */
    int min, max;
    const char *def;
    const char *help;
};

#define F(f) offsetof(hf_config, f)
#define S(f) sizeof(((hf_config *)0)->f)

static const struct opt opts[] = {
    {.name = "listen", .type = OPT_STR, .off = F(listen), .size = S(listen),
     .def = "127.0.0.1:8080", .help = "address and port to serve on"},
    {.name = "data", .type = OPT_STR, .off = F(data), .size = S(data),
     .def = "./data", .help = "data directory (LMDB environment)"},
    {.name = "workers", .type = OPT_INT, .off = F(workers), .min = 0,
     .max = 256, .def = "0", .help = "actor worker threads (0 = cores)"},
    {.name = "gateways", .type = OPT_INT, .off = F(gateways), .min = 0,
     .max = 256, .def = "0", .help = "gateway threads (0 = cores)"},
    {.name = "durability", .type = OPT_DURABILITY, .off = F(durability),
     .def = "sync", .help = "sync (fsync per group commit) or none"},
    {.name = "idle-ms", .type = OPT_INT, .off = F(idle_ms), .min = 1,
     .max = INT_MAX, .def = "60000",
     .help = "evict an actor idle this long with no subscribers"},
    {.name = "log-retain", .type = OPT_INT, .off = F(log_retain), .min = 1,
     .max = INT_MAX, .def = "10000", .help = "events kept per actor"},
    {.name = "idem-window-s", .type = OPT_INT, .off = F(idem_window_s),
     .min = 1, .max = INT_MAX, .def = "86400",
     .help = "how long an idempotency key's reply is kept"},
    {.name = "map-size-mb", .type = OPT_INT, .off = F(map_size_mb),
     .min = 1, .max = INT_MAX, .def = "1024",
     .help = "initial LMDB map size; it grows when full"},
    {.name = "mailbox-max", .type = OPT_INT, .off = F(mailbox_max),
     .min = 1, .max = INT_MAX, .def = "10000",
     .help = "queued messages per actor before 'overloaded'"},
    {.name = "alarm-retry-ms", .type = OPT_INT, .off = F(alarm_retry_ms),
     .min = 1, .max = INT_MAX, .def = "1000",
     .help = "first retry delay of a failed alarm (doubles, max 5 min)"},
    {.name = "log-level", .type = OPT_LOGLEVEL, .off = F(log_level),
     .def = "info", .help = "debug, info, warn, error or off"},
    {.name = "jwt-secret", .type = OPT_STR, .off = F(jwt_secret),
     .size = S(jwt_secret), .def = "",
     .help = "HS256 secret; empty = auth off, loopback only"},
    {.name = "jwt-allow-no-exp", .type = OPT_BOOL, .off = F(jwt_allow_no_exp),
     .def = "false",
     .help = "accept tokens without an exp claim (valid until revoked)"},
    {.name = "frame-max", .type = OPT_INT, .off = F(frame_max), .min = 256,
     .max = 64 << 20, .def = "65536",
     .help = "largest frame a client may send (bytes); larger: close 1009"},
    {.name = "rate", .type = OPT_INT, .off = F(rate), .min = 1,
     .max = INT_MAX, .def = "1000",
     .help = "messages per second per connection (token bucket)"},
    {.name = "rate-burst", .type = OPT_INT, .off = F(rate_burst), .min = 1,
     .max = INT_MAX, .def = "2000", .help = "token bucket size"},
    {.name = "outbuf-max", .type = OPT_INT, .off = F(outbuf_max),
     .min = 4096, .max = INT_MAX, .def = "4194304",
     .help = "bytes queued to one connection; more: close 1013"},
    {.name = "subs-max", .type = OPT_INT, .off = F(subs_max), .min = 1,
     .max = INT_MAX, .def = "1000",
     .help = "subscriptions one connection may hold"},
    {.name = "body-timeout-s", .type = OPT_INT, .off = F(body_timeout_s),
     .min = 1, .max = 3600, .def = "10",
     .help = "an HTTP request body must arrive whole within this (408)"},
    {.name = "max-conns", .type = OPT_INT, .off = F(max_conns), .min = 1,
     .max = INT_MAX, .def = "100000", .help = "connections per node"},
    {.name = "heartbeat-s", .type = OPT_INT, .off = F(heartbeat_s),
     .min = 1, .max = 3600, .def = "25",
     .help = "ping a connection idle this long; drop it at 2x + 5 s"},
    {.name = "drain-ms", .type = OPT_INT, .off = F(drain_ms), .min = 0,
     .max = INT_MAX, .def = "5000",
     .help = "on SIGTERM, wait this long for in-flight replies"},
    {.name = "web-root", .type = OPT_STR, .off = F(web_root),
     .size = S(web_root), .def = "",
     .help = "static files served at / (default: web)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int
set(hf_config *cfg, const struct opt *o, const char *v)
{
    char *p = (char *)cfg + o->off;
    char *end;
    long n;
    int lv;

    switch (o->type) {
    case OPT_INT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || *v == '\0' || *end != '\0' || n < o->min ||
            n > o->max)
            return HF_EBADREQ;
        *(int *)p = (int)n;
        return 0;
    case OPT_STR:
        if (strlen(v) >= o->size)
            return HF_ETOOLARGE;
        strcpy(p, v);
        return 0;
    case OPT_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            *(int *)p = 1;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            *(int *)p = 0;
        else
            return HF_EBADREQ;
        return 0;
    case OPT_DURABILITY:
        if (strcmp(v, "sync") == 0)
            *(int *)p = HF_DURABLE_SYNC;
        else if (strcmp(v, "none") == 0)
            *(int *)p = HF_DURABLE_NONE;
        else
            return HF_EBADREQ;
        return 0;
    case OPT_LOGLEVEL:
        if ((lv = hf_log_parse_level(v)) < 0)
            return HF_EBADREQ;
        *(int *)p = lv;
        return 0;
    }
    return HF_EINTERNAL;
}

void
hf_config_defaults(hf_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        (void)set(cfg, &opts[i], opts[i].def);
}

static void
envname(const struct opt *o, char *out, size_t n)
{
    size_t j = (size_t)snprintf(out, n, "HOLDFAST_");
    for (const char *c = o->name; *c != '\0' && j + 1 < n; c++)
        out[j++] = (*c == '-') ? '_' : (char)(*c - 'a' + 'A') ;
    out[j] = '\0';
}

int
hf_config_env(hf_config *cfg, FILE *err)
{
    char name[64];
    const char *v;

    for (size_t i = 0; i < NOPTS; i++) {
        envname(&opts[i], name, sizeof(name));
        if ((v = getenv(name)) == NULL)
            continue;
        if (set(cfg, &opts[i], v) != 0) {
            fprintf(err, "holdfast: bad value for %s: '%s'\n", name, v);
            return HF_EBADREQ;
        }
    }
    return 0;
}

int
hf_config_args(hf_config *cfg, int argc, char **argv, int *argi, FILE *err)
{
    while (*argi < argc && strncmp(argv[*argi], "--", 2) == 0) {
        const char *a = argv[*argi] + 2, *eq = strchr(a, '='), *v;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const struct opt *o = NULL;

        for (size_t i = 0; i < NOPTS; i++)
            if (strlen(opts[i].name) == nl &&
                strncmp(opts[i].name, a, nl) == 0)
                o = &opts[i];
        if (o == NULL) {
            fprintf(err, "holdfast: unknown option --%.*s\n", (int)nl, a);
            return HF_EBADREQ;
        }
        if (eq != NULL) {
            v = eq + 1;
        } else if (o->type == OPT_BOOL) {
            v = "true"; /* a bare switch */
        } else if (*argi + 1 < argc) {
            v = argv[++*argi];
        } else {
            fprintf(err, "holdfast: --%s needs a value\n", o->name);
            return HF_EBADREQ;
        }
        if (set(cfg, o, v) != 0) {
            fprintf(err, "holdfast: bad value for --%s: '%s'\n", o->name, v);
            return HF_EBADREQ;
        }
        ++*argi;
    }
    return 0;
}

void
hf_config_finish(hf_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (cfg->workers == 0)
        cfg->workers = (int)n;
    if (cfg->gateways == 0)
        cfg->gateways = (int)n;
}

void
hf_config_usage(FILE *out)
{
    char name[64];
    for (size_t i = 0; i < NOPTS; i++) {
        envname(&opts[i], name, sizeof(name));
        fprintf(out, "  --%-15s %-24s %s (default: %s)\n", opts[i].name,
                name, opts[i].help, *opts[i].def ? opts[i].def : "none");
    }
}
