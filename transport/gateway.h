/*
 * gateway.h - the WebSocket + HTTP front door (DESIGN §2, §5, §6).
 *
 * G gateway threads, each one libwebsockets context owning its
 * connections; an acceptor thread owns the listening socket and hands
 * accepted sockets round-robin to the gateway threads (Debian's
 * libwebsockets is built without SMP support, so several contexts cannot
 * share one listener by themselves). Each gateway thread turns client
 * frames into envelopes and hands them to the host in batches (directly
 * in one process, over nng otherwise); replies and events come back the
 * same way and are written to the connections, several messages per
 * frame under load.
 *
 * Thread-safety: start, drain and stop are called from one thread (main).
 */
#ifndef HF_TRANSPORT_GATEWAY_H
#define HF_TRANSPORT_GATEWAY_H

#include "core/config.h"

typedef struct hf_gateway hf_gateway;
struct hf_nhost; /* transport/nlink.h */

/* The gateway's options (core/config.h tells how options work). */
typedef struct hf_gateway_config {
    char listen[128];     /* --listen host:port */
    int gateways;         /* --gateways, 0 = number of cores */
    char jwt_secret[256]; /* --jwt-secret (HS256/384/512) */
    char jwt_key[512];    /* --jwt-key: PEM public key (RS, ES) */
    char jwks[512];       /* --jwks: JWKS file (RS, ES by kid) */
    /* Auth is off when none of the three is set. */
    char jwt_issuer[256];     /* --jwt-issuer: required iss */
    char jwt_audience[256];   /* --jwt-audience: required in aud */
    char jwt_role_claim[128]; /* --jwt-role-claim: claim (path) of role */
    int jwt_leeway_s;         /* --jwt-leeway-s: clock skew on exp, nbf */
    int jwt_allow_no_exp; /* --jwt-allow-no-exp: tokens without exp */
    char public_[4096];   /* --public: address patterns open without a
                             token (list, core/config.h) */
    char cors_origin[4096]; /* --cors-origin: origins served (list) */
    int frame_max;        /* --frame-max: largest client frame, bytes */
    int rate;             /* --rate: messages per second per connection */
    int rate_burst;       /* --rate-burst: bucket size */
    int outbuf_max;       /* --outbuf-max: bytes queued to a connection */
    int subs_max;         /* --subs-max: subscriptions per connection */
    int body_timeout_s;   /* --body-timeout-s: whole HTTP body within */
    int max_conns;        /* --max-conns: connections per node */
    int heartbeat_s;      /* --heartbeat-s: ping an idle connection */
    int drain_ms;         /* --drain-ms: graceful stop waits this long */
    char web_root[512];   /* --web-root: static files ("" = web/ of the
                             source tree, HF_WEB_ROOT) */
    char tls_cert[512];   /* --tls-cert: PEM chain; with tls_key, https/wss */
    char tls_key[512];    /* --tls-key: PEM private key */
} hf_gateway_config;

extern const struct hf_opt hf_gateway_config_opts[];
extern const size_t hf_gateway_config_nopts;

/* The gateway's set, over cfg. */
hf_optset hf_gateway_config_set(hf_gateway_config *cfg);
/* Every gateway option at its default. */
void hf_gateway_config_defaults(hf_gateway_config *cfg);
/* Resolves 0 = "number of cores" for gateways. */
void hf_gateway_config_finish(hf_gateway_config *cfg);

/* Binds cfg->listen (falling back to loopback when auth is off and the
 * address is not a loopback one: the server says so), starts the threads
 * and connects to the host: through direct when it is not NULL (a host
 * in this process, opened with base NULL: transport/nlink.h), else to
 * its nng endpoint at "<nng_base>-host". Returns 0, HF_EUNAVAIL (cannot
 * bind), HF_EBADREQ (a key file or an option is unusable: logged with
 * the reason) or HF_EINTERNAL. */
int hf_gateway_start(hf_gateway **out, const hf_gateway_config *cfg,
                     const char *nng_base, struct hf_nhost *direct);

/* Re-reads the --jwt-key and --jwks files (SIGHUP), from the thread
 * that started the gateway. A file that does not load leaves the keys in
 * use and is logged with the reason. 0 or -1. */
int hf_gateway_reload(hf_gateway *g);

/* The port actually bound (useful with port 0). */
int hf_gateway_port(const hf_gateway *g);

/* Graceful stop, part one: stop accepting connections and requests, wait
 * up to cfg->drain_ms for replies still owed to clients, then close every
 * connection with 1001. The host keeps running. */
void hf_gateway_drain(hf_gateway *g);

/* Part two: stops the threads and frees everything. NULL is fine. */
void hf_gateway_stop(hf_gateway *g);

#endif
