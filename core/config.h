/*
 * config.h - configuration: the option machinery every layer uses, and the
 * core's own options.
 *
 * Options are data. Each layer owns a struct of its settings and a const
 * table describing them (struct hf_opt: flag, type, place in the struct,
 * bounds, default, help line): core has hf_config (this file), storage has
 * hf_lmdb_config (storage/lmdb.h), the gateway hf_gateway_config
 * (transport/gateway.h). main() hands every layer's table to one parser as
 * option sets, so `holdfast serve --help` lists them all and every flag is
 * also a HOLDFAST_* environment variable (flag over environment over
 * default). A layer adds an option by adding a field and a row.
 *
 * Not thread-safe: settings are filled in on the main thread before
 * anything starts; afterwards they are read-only.
 */
#ifndef HF_CORE_CONFIG_H
#define HF_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum hf_opt_type {
    HF_OPT_INT,  /* int in [min, max] */
    HF_OPT_STR,  /* char[size], NUL-terminated */
    HF_OPT_BOOL, /* int 0/1; "--flag" alone means true */
    HF_OPT_ENUM, /* int: the index of the value in names */
    HF_OPT_LIST  /* char[size]: a repeatable flag; each use adds one item
                  * (items are kept one per line; the environment
                  * variable gives several, separated by whitespace) */
};

struct hf_opt {
    const char *name; /* flag without "--"; env is HOLDFAST_ + upper */
    enum hf_opt_type type;
    size_t off;               /* offset in the layer's struct */
    size_t size;              /* HF_OPT_STR: bytes of the field */
    int min, max;             /* HF_OPT_INT */
    const char *const *names; /* HF_OPT_ENUM: NULL-terminated values */
    const char *def;
    const char *help;
};

/* One layer's table and the struct it fills. */
typedef struct hf_optset {
    const struct hf_opt *opts;
    size_t n;
    void *base;
} hf_optset;

/* Sets every option to its default. */
void hf_opts_defaults(const hf_optset *sets, size_t nsets);
/* Applies HOLDFAST_<OPTION> variables. 0, or HF_EBADREQ after printing
 * the bad variable to err. */
int hf_opts_env(const hf_optset *sets, size_t nsets, FILE *err);
/* Applies flags from argv[*argi] on ("--name value", "--name=value", or a
 * boolean alone), stopping at the first argument that is not a flag; *argi
 * is left there. 0, or HF_EBADREQ after printing what was wrong to err. */
int hf_opts_args(const hf_optset *sets, size_t nsets, int argc, char **argv,
                 int *argi, FILE *err);
/* The items of an HF_OPT_LIST field: call with *pos = 0; returns 1 with
 * the next item at *item (len bytes, not NUL-terminated), 0 at the end. */
int hf_opt_list_next(const char *list, size_t *pos, const char **item,
                     size_t *len);

/* One line per option: flag, environment variable, default, help. */
void hf_opts_usage(const hf_optset *sets, size_t nsets, FILE *out);

/* ---- the core's options ---- */

typedef struct hf_config {
    int workers;        /* --workers, 0 = number of cores */
    int idle_ms;        /* --idle-ms: evict an idle actor after this */
    int log_retain;     /* --log-retain: events kept per actor */
    int idem_window_s;  /* --idem-window-s: idempotency key lifetime */
    int mailbox_max;    /* --mailbox-max: queued messages per actor */
    int alarm_retry_ms; /* --alarm-retry-ms: first retry delay */
    int log_level;      /* --log-level debug|info|warn|error|off */
} hf_config;

extern const struct hf_opt hf_config_opts[];
extern const size_t hf_config_nopts;

/* The core's set, over cfg. */
hf_optset hf_config_set(hf_config *cfg);
/* Every core option at its default. */
void hf_config_defaults(hf_config *cfg);
/* Resolves 0 = "number of cores" for workers. */
void hf_config_finish(hf_config *cfg);
/* The number of cores (at least 1), for the layers' own 0 = cores. */
int hf_config_cores(void);

#endif
