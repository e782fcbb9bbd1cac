/*
 * timer.c - the timer thread: a min-heap of alarms, firing into worker
 * queues.
 *
 * Design notes
 * ------------
 * Workers (and hf_host_open, for persisted alarms) add an entry when an
 * alarm's commit is released; the timer posts an M_ALARM message to the
 * owning worker when it is due. An entry is not cancelled when its alarm
 * moves or goes: the worker checks each firing against the actor's alarm
 * and drops stale ones, so duplicates are harmless.
 *
 * Threads: the heap (h->heap, nheap, capheap) and tstop are guarded by
 * h->tmu; hf__timer_add is safe from any thread. The timer never holds tmu
 * while posting to a worker (lock order: see host.c).
 */
#include <stdlib.h>
#include <time.h>

#include "core/host_int.h"
#include "core/vec.h"

/* ------------------------------------------------------------------ */
/* the timer: a min-heap of alarms, firing into worker queues          */

static void
heap_swap(struct tent **a, struct tent **b)
{
    struct tent *t = *a;
    *a = *b;
    *b = t;
}

void
hf__timer_add(hf_host *h, int64_t at, uint64_t hash, const char *addr,
              size_t alen, const char *name, size_t nlen)
{
    struct tent *t = hf_xmalloc(sizeof(*t) + alen + nlen);
    size_t i;

    t->at = at;
    t->hash = hash;
    t->alen = (uint32_t)alen;
    t->nlen = (uint32_t)nlen;
    memcpy(t->data, addr, alen);
    memcpy(t->data + alen, name, nlen);
    pthread_mutex_lock(&h->tmu);
    HF_VEC_GROW(h->heap, h->nheap, h->capheap, 64);
    i = h->nheap++;
    h->heap[i] = t;
    while (i > 0 && h->heap[(i - 1) / 2]->at > h->heap[i]->at) {
        heap_swap(&h->heap[(i - 1) / 2], &h->heap[i]);
        i = (i - 1) / 2;
    }
    pthread_cond_signal(&h->tcv);
    pthread_mutex_unlock(&h->tmu);
}

static struct tent *
heap_pop(hf_host *h)
{
    struct tent *top = h->heap[0];
    size_t i = 0;

    h->heap[0] = h->heap[--h->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->nheap && h->heap[l]->at < h->heap[m]->at)
            m = l;
        if (r < h->nheap && h->heap[r]->at < h->heap[m]->at)
            m = r;
        if (m == i)
            break;
        heap_swap(&h->heap[i], &h->heap[m]);
        i = m;
    }
    return top;
}

void *
hf__timer_main(void *arg)
{
    hf_host *h = arg;

    pthread_mutex_lock(&h->tmu);
    while (!h->tstop) {
        int64_t now = hf_now_ms();
        if (h->nheap == 0) {
            pthread_cond_wait(&h->tcv, &h->tmu);
        } else if (h->heap[0]->at > now) {
            /* Sleep until the earliest alarm, at most a second, so a
             * wall-clock jump is noticed. */
            struct timespec ts;
            int64_t ms = h->heap[0]->at - now;
            clock_gettime(CLOCK_REALTIME, &ts);
            if (ms > 1000)
                ms = 1000;
            ts.tv_sec += ms / 1000;
            ts.tv_nsec += (ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&h->tcv, &h->tmu, &ts);
        } else {
            struct tent *t = heap_pop(h);
            struct msg *m;
            h->tposting++;
            pthread_mutex_unlock(&h->tmu);
            m = hf__msg_new(M_ALARM, t->hash, t->data, t->alen, NULL, 0,
                            t->data + t->alen, t->nlen);
            m->at = t->at;
            free(t);
            hf__post(h, m);
            pthread_mutex_lock(&h->tmu);
            h->tposting--;
        }
    }
    pthread_mutex_unlock(&h->tmu);
    return NULL;
}

void
hf__timer_fini(hf_host *h)
{
    for (size_t i = 0; i < h->nheap; i++)
        free(h->heap[i]);
    free(h->heap);
    h->heap = NULL;
    h->nheap = h->capheap = 0;
}
