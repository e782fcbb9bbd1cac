/*
 * queue.c - messages, and the worker queues they cross threads on.
 *
 * Design notes
 * ------------
 * A request is read once, by hf_host_submit (to route it and to refuse
 * what is malformed): its message keeps the envelope's bytes and, as aux,
 * where each field lies in them (hf_env_pos), so the worker only unpacks
 * the value. One malloc per message, freed after its handler.
 *
 * A worker's queue and its list of batches back from the store are guarded
 * by the worker's mu and taken whole by the worker at the start of a pass;
 * a push wakes the worker only when both were empty.
 *
 * Threads: hf__push_msgs and hf__post from any thread (the gateway's, other
 * workers', the timer's); hf__on_done on the store's writer thread. A
 * message belongs to whoever holds it: the pusher until pushed, then the
 * worker.
 */
#include <stdlib.h>

#include "core/host_int.h"

/* ------------------------------------------------------------------ */
/* worker queues                                                       */

void
hf__push_msgs(struct worker *w, struct msg *head, struct msg *tail)
{
    int wake;
    pthread_mutex_lock(&w->mu);
    wake = w->qhead == NULL && w->dhead == NULL;
    if (w->qtail)
        w->qtail->next = head;
    else
        w->qhead = head;
    w->qtail = tail;
    /* Signal before unlocking: once the lock is dropped the worker may
     * finish, and the host may destroy the condition variable. */
    if (wake)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The store's done callback, on the writer thread. */
void
hf__on_done(void *arg, hf_wbatch *wb)
{
    hf_host *h = arg;
    struct worker *w = &h->w[wb->worker];
    int wake;

    wb->next = NULL;
    pthread_mutex_lock(&w->mu);
    wake = w->qhead == NULL && w->dhead == NULL;
    if (w->dtail)
        w->dtail->next = wb;
    else
        w->dhead = wb;
    w->dtail = wb;
    if (wake) /* under the lock: see push_msgs */
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

struct msg *
hf__msg_new(int type, uint64_t hash, const void *addr, size_t alen,
            const void *env, size_t len, const void *aux, size_t auxlen)
{
    struct msg *m = hf_xmalloc(sizeof(*m) + alen + len + auxlen);
    m->next = NULL;
    m->type = type;
    m->sink = NULL;
    m->at = 0;
    m->hash = hash;
    m->alen = (uint32_t)alen;
    m->len = (uint32_t)len;
    m->auxlen = (uint32_t)auxlen;
    memcpy(m->data, addr, alen);
    if (len)
        memcpy(m->data + alen, env, len);
    if (auxlen)
        memcpy(m->data + alen + len, aux, auxlen);
    return m;
}

void
hf__msg_free(struct msg *m)
{
    if (m->sink)
        hf_sink_unref(m->sink);
    free(m);
}

void
hf__post(hf_host *h, struct msg *m)
{
    hf__push_msgs(&h->w[m->hash % (uint64_t)h->nw], m, m);
}
