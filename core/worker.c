/*
 * worker.c - the worker thread: it sleeps until something is queued, then
 * makes one pass over everything queued at once.
 *
 * Design notes
 * ------------
 * A worker pass. The worker takes everything queued at once and then:
 *   1. begins a read snapshot (after taking the store's done notices, so
 *      the snapshot includes every commit it is about to learn of);
 *   2. marks the returned batches resolved and releases, in order, every
 *      resolved batch at the head of its pending list (the output gate);
 *   3. files new messages into actor mailboxes, activating actors;
 *   4. runs actors from the run queue, each handler staging its effects in
 *      the context and committing them into the current batch;
 *   5. seals the batch: to the store when it holds writes, else straight
 *      onto the pending list; then releases what has become releasable;
 *   6. ends the snapshot and hands each sink its output buffer.
 * An actor runs at most RUN_BUDGET messages per turn, so one busy actor
 * does not starve the others on its worker.
 *
 * Stopping. Once told to stop, the worker keeps passing until nothing is
 * queued, running or held: every held output is resolved and delivered.
 *
 * Threads: hf__worker_main is the worker's thread; everything else here
 * runs on it. Only the queue fields marked mu are shared (queue.c).
 */
#include <errno.h>
#include <time.h>

#include "core/env.h"
#include "core/host_int.h"
#include "core/log.h"
#include "core/metrics.h"

#define RUN_BUDGET         64   /* messages per actor turn */
#define BATCH_MAX_HANDLERS 4096 /* seal early past this */

static void
runq_append(struct worker *w, struct actor *a)
{
    a->rnext = NULL;
    if (w->rtail)
        w->rtail->rnext = a;
    else
        w->rhead = a;
    w->rtail = a;
}

/* Files a message into its actor's mailbox. */
static void
dispatch(struct worker *w, struct msg *m)
{
    struct actor *a = hf__actor_get(w, m->data, m->alen, m->hash);

    if (a == NULL) {
        hf_warn("host", "dropped a message for unknown actor '%.*s'",
                (int)m->alen, m->data);
        hf__msg_free(m);
        return;
    }
    if (m->type == M_REQ && a->nmsg >= (uint32_t)w->host->cfg.mailbox_max) {
        hf_env e;
        hf__msg_env(m, NULL, &e);
        if (e.op != HF_OP_SIGNAL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, hf__out_for(w, m->sink), hf_buf_mpwrite);
            hf_env_pack_reply_err(&pk, e.conn, e.id, HF_EOVERLOADED,
                                  "mailbox full", 12);
            HF_INC(calls[-HF_EOVERLOADED]);
        }
        HF_INC(overloaded);
        hf__msg_free(m);
        return;
    }
    m->next = NULL;
    if (a->mtail)
        a->mtail->next = m;
    else
        a->mhead = m;
    a->mtail = m;
    a->nmsg++;
    HF_ADD(mailbox_depth, 1);
    hf__touch(w, a);
    if (!a->queued) {
        a->queued = 1;
        runq_append(w, a);
    }
}

static void
run(struct worker *w)
{
    struct actor *a;

    while ((a = w->rhead) != NULL) {
        w->rhead = a->rnext;
        if (w->rhead == NULL)
            w->rtail = NULL;
        for (int n = 0; n < RUN_BUDGET && a->mhead != NULL; n++) {
            struct msg *m = a->mhead;
            a->mhead = m->next;
            if (a->mhead == NULL)
                a->mtail = NULL;
            a->nmsg--;
            HF_ADD(mailbox_depth, -1);
            hf__process(w, a, m);
            hf__msg_free(m);
        }
        if (a->mhead != NULL)
            runq_append(w, a);
        else
            a->queued = 0;
        if (w->cur && w->cur->wb.nhandlers >= BATCH_MAX_HANDLERS)
            hf__seal(w);
    }
}

static void
pass(struct worker *w, struct msg *q, hf_wbatch *d)
{
    const hf_store *st = &w->host->st;

    w->now_ns = hf_mono_ns();
    if (st->ops->rd_begin(st->self, w->idx) != 0)
        hf_error("host", "worker %d: cannot begin a read snapshot", w->idx);
    while (d != NULL) {
        struct batch *b = d->owner;
        d = d->next;
        b->resolved = 1;
        if (b->wb.status != 0 && b->wb.gen == w->gen)
            hf__commit_failed(w, b);
    }
    hf__release_ready(w);
    while (q != NULL) {
        struct msg *m = q;
        q = q->next;
        dispatch(w, m);
    }
    run(w);
    hf__seal(w);
    hf__release_ready(w);
    st->ops->rd_end(st->self, w->idx);
    hf__flush_outs(w);
    if (w->now_ns >= w->next_evict_ns) {
        hf__evict_idle(w);
        w->next_evict_ns = w->now_ns + 250000000u;
    }
}

void *
hf__worker_main(void *arg)
{
    struct worker *w = arg;

    for (;;) {
        struct msg *q;
        hf_wbatch *d;
        int stop;

        pthread_mutex_lock(&w->mu);
        while (w->qhead == NULL && w->dhead == NULL &&
               !(w->stopping && w->phead == NULL)) {
            struct timespec ts;
            if (hf_htab_count(&w->actors) == 0) {
                pthread_cond_wait(&w->cv, &w->mu);
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
                break;
        }
        q = w->qhead;
        d = w->dhead;
        w->qhead = w->qtail = NULL;
        w->dhead = w->dtail = NULL;
        stop = w->stopping;
        pthread_mutex_unlock(&w->mu);

        pass(w, q, d);
        if (stop && q == NULL && d == NULL && w->phead == NULL &&
            w->rhead == NULL)
            break;
    }
    return NULL;
}
