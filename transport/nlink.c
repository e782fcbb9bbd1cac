/*
 * nlink.c - see nlink.h.
 *
 * Design note: the sender's invariant is "busy == a send aio is in
 * flight". append starts a send only when none is; the completion
 * callback sends whatever accumulated meanwhile or clears busy. So at most
 * one message per socket is in flight and everything else coalesces.
 */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/oom.h"
#include "transport/nlink.h"

/* Starts sending s->pend. Called with s->mu held and !s->busy. */
static void
kick(hf_nsend *s)
{
    nng_msg *m = s->pend;
    s->pend = NULL;
    s->busy = 1;
    nng_aio_set_msg(s->aio, m);
    nng_send_aio(s->sock, s->aio);
}

static void
sent(void *arg)
{
    hf_nsend *s = arg;
    int rv = nng_aio_result(s->aio);

    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(s->aio));
        if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
            hf_warn("nlink", "send failed: %s", nng_strerror(rv));
    }
    pthread_mutex_lock(&s->mu);
    s->busy = 0;
    if (s->pend != NULL && !s->closed)
        kick(s);
    pthread_mutex_unlock(&s->mu);
}

int
hf_nsend_open(hf_nsend *s, const char *url, int64_t hdr)
{
    int rv;

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->has_hdr = hdr >= 0;
    s->hdr = (uint32_t)(hdr >= 0 ? hdr : 0);
    if ((rv = nng_push0_open(&s->sock)) != 0 ||
        (rv = nng_aio_alloc(&s->aio, sent, s)) != 0 ||
        (rv = nng_dial(s->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        hf_error("nlink", "cannot dial %s: %s", url, nng_strerror(rv));
        return HF_EINTERNAL;
    }
    return 0;
}

int
hf_nsend_append(hf_nsend *s, const void *data, size_t len)
{
    int rv = 0;

    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        rv = HF_EUNAVAIL;
    } else {
        if (s->pend == NULL) {
            if (nng_msg_alloc(&s->pend, 0) != 0)
                rv = HF_EINTERNAL;
            else if (s->has_hdr)
                nng_msg_append_u32(s->pend, s->hdr);
        }
        if (rv == 0 && nng_msg_append(s->pend, data, len) != 0)
            rv = HF_EINTERNAL;
        if (rv == 0 && !s->busy)
            kick(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rv;
}

void
hf_nsend_close(hf_nsend *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    if (s->aio) {
        nng_aio_stop(s->aio);
        nng_aio_free(s->aio);
        s->aio = NULL;
    }
    nng_close(s->sock);
    if (s->pend)
        nng_msg_free(s->pend);
    s->pend = NULL;
    pthread_mutex_destroy(&s->mu);
}

static void
received(void *arg)
{
    hf_nrecv *r = arg;
    int rv = nng_aio_result(r->aio);

    if (rv != 0) {
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            return;
        hf_warn("nlink", "receive failed: %s", nng_strerror(rv));
    } else {
        r->fn(r->arg, nng_aio_get_msg(r->aio));
    }
    nng_recv_aio(r->sock, r->aio);
}

int
hf_nrecv_open(hf_nrecv *r, const char *url,
              void (*fn)(void *arg, nng_msg *m), void *arg)
{
    int rv;

    memset(r, 0, sizeof(*r));
    r->fn = fn;
    r->arg = arg;
    if ((rv = nng_pull0_open(&r->sock)) != 0 ||
        (rv = nng_aio_alloc(&r->aio, received, r)) != 0 ||
        (rv = nng_listen(r->sock, url, NULL, 0)) != 0) {
        hf_error("nlink", "cannot listen at %s: %s", url, nng_strerror(rv));
        return HF_EINTERNAL;
    }
    nng_recv_aio(r->sock, r->aio);
    return 0;
}

void
hf_nrecv_close(hf_nrecv *r)
{
    if (r->aio) {
        nng_aio_stop(r->aio);
        nng_aio_free(r->aio);
        r->aio = NULL;
    }
    nng_close(r->sock);
}

/* ---- the host's end ---- */

struct gwsink {
    hf_sink sink; /* first */
    hf_nsend send; /* over nng, unless direct */
    int direct;
    pthread_mutex_t mu;
    void (*fn)(void *arg, nng_msg *m); /* mu: the direct link's gateway */
    void *arg;                         /* mu */
};

struct hf_nhost {
    hf_host *host;
    hf_nrecv recv;
    int recv_open;
    int direct;            /* no sockets: hf_nhost_submit and attach */
    pthread_rwlock_t drw;  /* direct: submits (read) against stop (write) */
    int accepting;         /* drw: the host still takes batches */
    int n;
    struct gwsink *sinks;
};

static void
sink_deliver(hf_sink *s, hf_buf *out)
{
    struct gwsink *gs = (struct gwsink *)s;
    nng_msg *m;

    if (!gs->direct) {
        hf_nsend_append(&gs->send, out->data, out->len);
        return;
    }
    pthread_mutex_lock(&gs->mu);
    if (gs->fn == NULL) {
        /* dropped: the gateway is gone */
    } else if (nng_msg_alloc(&m, out->len) != 0) {
        hf_oom();
    } else {
        memcpy(nng_msg_body(m), out->data, out->len); /* one allocation */
        gs->fn(gs->arg, m);
    }
    pthread_mutex_unlock(&gs->mu);
}

void
hf_nhost_attach(hf_nhost *n, int g, void (*fn)(void *arg, nng_msg *m),
                void *arg)
{
    pthread_mutex_lock(&n->sinks[g].mu);
    n->sinks[g].fn = fn;
    n->sinks[g].arg = arg;
    pthread_mutex_unlock(&n->sinks[g].mu);
}

void
hf_nhost_detach(hf_nhost *n, int g)
{
    hf_nhost_attach(n, g, NULL, NULL);
}

int
hf_nhost_submit(hf_nhost *n, int g, const void *data, size_t len)
{
    int rv = 0;

    pthread_rwlock_rdlock(&n->drw);
    if (n->accepting &&
        hf_host_submit(n->host, &n->sinks[g].sink, data, len) != 0) {
        hf_warn("nlink", "gateway %d sent a malformed batch", g);
        rv = HF_EBADREQ;
    }
    pthread_rwlock_unlock(&n->drw);
    return rv;
}

static void
from_gateway(void *arg, nng_msg *m)
{
    hf_nhost *n = arg;
    uint32_t g;

    if (nng_msg_trim_u32(m, &g) != 0 || g >= (uint32_t)n->n) {
        hf_warn("nlink", "dropped a batch from an unknown gateway");
    } else if (hf_host_submit(n->host, &n->sinks[g].sink, nng_msg_body(m),
                              nng_msg_len(m)) != 0) {
        hf_warn("nlink", "gateway %u sent a malformed batch", g);
    }
    nng_msg_free(m);
}

int
hf_nhost_open(hf_nhost **out, hf_host *host, const char *base, int ngw)
{
    hf_nhost *n = calloc(1, sizeof(*n));
    char url[256];

    if (n == NULL || (n->sinks = calloc((size_t)ngw, sizeof(*n->sinks))) ==
                         NULL) {
        free(n);
        return HF_EINTERNAL;
    }
    n->host = host;
    n->n = ngw;
    n->direct = base == NULL;
    n->accepting = 1;
    pthread_rwlock_init(&n->drw, NULL);
    for (int i = 0; i < ngw; i++) {
        /* The host holds its own references; ours is dropped at close. */
        hf_sink_init(&n->sinks[i].sink, sink_deliver, NULL);
        pthread_mutex_init(&n->sinks[i].mu, NULL);
        n->sinks[i].direct = n->direct;
    }
    for (int i = 0; !n->direct && i < ngw; i++) {
        snprintf(url, sizeof(url), "%s-gw%d", base, i);
        if (hf_nsend_open(&n->sinks[i].send, url, -1) != 0)
            goto fail;
    }
    if (!n->direct) {
        snprintf(url, sizeof(url), "%s-host", base);
        if (hf_nrecv_open(&n->recv, url, from_gateway, n) != 0)
            goto fail;
        n->recv_open = 1;
    }
    *out = n;
    return 0;
fail:
    hf_nhost_close(n);
    return HF_EINTERNAL;
}

void
hf_nhost_stop_recv(hf_nhost *n)
{
    if (n == NULL)
        return;
    if (n->recv_open) {
        hf_nrecv_close(&n->recv);
        n->recv_open = 0;
    }
    pthread_rwlock_wrlock(&n->drw); /* waits out a submit in progress */
    n->accepting = 0;
    pthread_rwlock_unlock(&n->drw);
}

void
hf_nhost_close(hf_nhost *n)
{
    if (n == NULL)
        return;
    hf_nhost_stop_recv(n);
    for (int i = 0; n->sinks && i < n->n; i++) {
        if (n->sinks[i].send.aio)
            hf_nsend_close(&n->sinks[i].send);
        pthread_mutex_destroy(&n->sinks[i].mu);
    }
    pthread_rwlock_destroy(&n->drw);
    free(n->sinks);
    free(n);
}
