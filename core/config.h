/*
 * config.h - server configuration: defaults, HOLDFAST_* environment, flags.
 *
 * Every option has one row in a const table (config.c): its flag, its
 * environment variable, its type, its default and its help line. Precedence:
 * flag over environment over default. Not thread-safe: fill it in on the
 * main thread before anything starts; afterwards it is read-only.
 */
#ifndef HF_CORE_CONFIG_H
#define HF_CORE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

enum hf_durability {
    HF_DURABLE_SYNC = 0, /* fsync every group commit (default) */
    HF_DURABLE_NONE = 1  /* no fsync: throwaway benchmarks only */
};

typedef struct hf_config {
    char listen[128];      /* --listen host:port */
    char data[512];        /* --data directory */
    int workers;           /* --workers, 0 = number of cores */
    int gateways;          /* --gateways, 0 = number of cores */
    int durability;        /* --durability sync|none */
    int idle_ms;           /* --idle-ms: evict an idle actor after this */
    int log_retain;        /* --log-retain: events kept per actor */
    int idem_window_s;     /* --idem-window-s: idempotency key lifetime */
    int map_size_mb;       /* --map-size-mb: initial LMDB map size */
    int mailbox_max;       /* --mailbox-max: queued messages per actor */
    int alarm_retry_ms;    /* --alarm-retry-ms: first retry delay */
    int log_level;         /* --log-level debug|info|warn|error|off */
    char jwt_secret[256];  /* --jwt-secret (HS256); empty = auth off */
    int jwt_allow_no_exp;  /* --jwt-allow-no-exp: tokens without exp */
    int frame_max;         /* --frame-max: largest client frame, bytes */
    int rate;              /* --rate: messages per second per connection */
    int rate_burst;        /* --rate-burst: bucket size */
    int outbuf_max;        /* --outbuf-max: bytes queued to a connection */
    int subs_max;          /* --subs-max: subscriptions per connection */
    int body_timeout_s;    /* --body-timeout-s: whole HTTP body within */
    int max_conns;         /* --max-conns: connections per node */
    int heartbeat_s;       /* --heartbeat-s: ping an idle connection */
    int drain_ms;          /* --drain-ms: graceful stop waits this long */
    char web_root[512];    /* --web-root: static files ("" = the source
                            * tree's transport/web, fixed at build time) */
} hf_config;

void hf_config_defaults(hf_config *cfg);

/* Applies HOLDFAST_<OPTION> variables (e.g. HOLDFAST_DATA). Returns 0, or
 * HF_EBADREQ after printing the bad variable to err. */
int hf_config_env(hf_config *cfg, FILE *err);

/* Applies flags from argv[*argi] on ("--name value" or "--name=value"),
 * stopping at the first argument that is not a flag; *argi is left there.
 * A boolean option may stand alone ("--jwt-allow-no-exp") or take true,
 * false, 1 or 0 after '='.
 * Returns 0, or HF_EBADREQ after printing what was wrong to err. */
int hf_config_args(hf_config *cfg, int argc, char **argv, int *argi,
                   FILE *err);

/* Resolves 0 = "number of cores" for workers and gateways. */
void hf_config_finish(hf_config *cfg);

/* Prints one line per option: flag, environment variable, default, help. */
void hf_config_usage(FILE *out);

#endif
