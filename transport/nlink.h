/*
 * nlink.h - batches of envelopes over nng, between gateways and the host.
 *
 * Every nng message carries a batch, never a single envelope: nng moves
 * about 30,000 messages/s per socket here whatever their size (DESIGN §2),
 * so a sender appends to a pending message while the previous send is in
 * flight and sends everything accumulated the moment it completes. That is
 * natural batching: no timer, no waiting when idle.
 *
 * In one process the direct link (hf_nhost_open with base NULL) replaces
 * the sockets: no nng thread on the path (DESIGN §2.3).
 *
 * Topology over nng (the URLs may as well be tcp:// for a cluster):
 *   gateway g --push--> host pull "<base>-host"   body: u32 g, envelopes
 *   host --push per gateway--> gateway g pull "<base>-gw<g>"
 *
 * Thread-safety: hf_nsend_append is safe from any thread. Receive
 * callbacks run on nng's threads and must not block (queue and wake).
 */
#ifndef HF_TRANSPORT_NLINK_H
#define HF_TRANSPORT_NLINK_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/host.h"

/* A coalescing sender on one push socket. */
typedef struct hf_nsend {
    nng_socket sock;
    nng_aio *aio;
    pthread_mutex_t mu;
    nng_msg *pend; /* mu: what accumulates while a send is in flight */
    int busy;      /* mu: a send is in flight */
    int closed;    /* mu */
    uint32_t hdr;  /* prefix every message with this u32 (if has_hdr) */
    int has_hdr;
} hf_nsend;

/* Opens a push socket dialing url. hdr < 0: no prefix. */
int hf_nsend_open(hf_nsend *s, const char *url, int64_t hdr);
/* Appends bytes to the next message (one envelope or several). Returns 0,
 * or HF_EUNAVAIL once closed. */
int hf_nsend_append(hf_nsend *s, const void *data, size_t len);
void hf_nsend_close(hf_nsend *s);

/* A receive loop on a pull socket listening at url: fn gets each message
 * (and must free it with nng_msg_free). */
typedef struct hf_nrecv {
    nng_socket sock;
    nng_aio *aio;
    void (*fn)(void *arg, nng_msg *m);
    void *arg;
} hf_nrecv;

int hf_nrecv_open(hf_nrecv *r, const char *url,
                  void (*fn)(void *arg, nng_msg *m), void *arg);
void hf_nrecv_close(hf_nrecv *r);

/* The host's end: receives gateway batches and submits them, each with
 * the sink that sends outputs back to that gateway. */
typedef struct hf_nhost hf_nhost;

/* base NULL: the gateways are in this process and use the direct calls
 * below instead of sockets (one server: no nng hop, DESIGN §2). */
int hf_nhost_open(hf_nhost **out, hf_host *host, const char *base,
                  int ngateways);

/* The direct link. Gateway g's batches go to the host through
 * hf_nhost_submit (from the gateway's thread: the host copies what it
 * keeps; errors about the batch may be delivered back at once, on the
 * caller's thread). The host's outputs for gateway g go to fn(arg, m),
 * as from its receive socket, once attached; after detach they are
 * dropped, as a closed socket would drop them. fn runs on the host's
 * worker threads and must not block (queue and wake). */
void hf_nhost_attach(hf_nhost *n, int g, void (*fn)(void *arg, nng_msg *m),
                     void *arg);
void hf_nhost_detach(hf_nhost *n, int g);
/* 0 when handed to the host or dropped because it stopped receiving;
 * HF_EBADREQ for a malformed batch (logged). */
int hf_nhost_submit(hf_nhost *n, int g, const void *data, size_t len);
/* Stops receiving. Call before hf_host_close. */
void hf_nhost_stop_recv(hf_nhost *n);
/* Frees everything; call after hf_host_close (the host holds references
 * to the gateway sinks until then). NULL is fine. */
void hf_nhost_close(hf_nhost *n);

#endif
