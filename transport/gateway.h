/*
 * gateway.h - the WebSocket + HTTP front door (DESIGN §2, §5, §6).
 *
 * G gateway threads, each one libwebsockets context owning its
 * connections; an acceptor thread owns the listening socket and hands
 * accepted sockets round-robin to the gateway threads (Debian's
 * libwebsockets is built without SMP support, so several contexts cannot
 * share one listener by themselves). Each gateway thread turns client
 * frames into envelopes and sends them to the host over nng in batches;
 * replies and events come back over nng and are written to the
 * connections, several messages per frame under load.
 *
 * Thread-safety: start, drain and stop are called from one thread (main).
 */
#ifndef HF_TRANSPORT_GATEWAY_H
#define HF_TRANSPORT_GATEWAY_H

#include "core/config.h"

typedef struct hf_gateway hf_gateway;

/* Binds cfg->listen (falling back to loopback when auth is off and the
 * address is not a loopback one: the server says so), starts the threads
 * and connects to the host's nng endpoint at "<nng_base>-host".
 * Returns 0, HF_EUNAVAIL (cannot bind) or HF_EINTERNAL. */
int hf_gateway_start(hf_gateway **out, const hf_config *cfg,
                     const char *nng_base);

/* The port actually bound (useful with port 0). */
int hf_gateway_port(const hf_gateway *g);

/* Graceful stop, part one: stop accepting connections and requests, wait
 * up to cfg->drain_ms for replies still owed to clients, then close every
 * connection with 1001. The host keeps running. */
void hf_gateway_drain(hf_gateway *g);

/* Part two: stops the threads and frees everything. NULL is fine. */
void hf_gateway_stop(hf_gateway *g);

#endif
