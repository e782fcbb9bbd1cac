/*
 * commit.c - a handler's unit becomes part of the worker's current batch
 * (hf__ctx_commit) or is forgotten (hf__ctx_abort).
 *
 * What the handler staged in its context (ctx.c) moves in one go: writes
 * into the actor's cache and the batch's write batch, events into the log
 * (and, for actors a webhook follows, the feed), sends into the outbox,
 * alarms into the actor's list and the timer, outputs into the batch's
 * held records, released by the output gate (gate.c) once durable.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/host_int.h"
#include "core/metrics.h"
#include "core/vec.h"

static struct alarm *
alarm_find(struct actor *a, const char *name, size_t nl, struct alarm ***pp)
{
    struct alarm **p = &a->alarms;
    for (; *p != NULL; p = &(*p)->next)
        if (strlen((*p)->name) == nl && memcmp((*p)->name, name, nl) == 0)
            break;
    if (pp)
        *pp = p;
    return *p;
}

void
hf__alarm_write(struct worker *w, struct actor *a, struct alarm *al,
                int64_t old_at)
{
    struct batch *b = hf__cur(w);
    char key[HF_KEYBUF], mk[HF_KEYBUF], v[12];
    size_t nl = strlen(al->name), n;
    char mname[80];
    struct r_alarm ra = {.at = al->at, .hash = a->hash,
                         .alen = (uint32_t)a->alen, .nlen = (uint32_t)nl};

    if (old_at >= 0) {
        n = hf_key_alarm(key, old_at, a->addr, a->alen, al->name, nl);
        HF_MUST(hf_wbatch_del(&b->wb, HF_DB_ALARMS, key, n));
    }
    n = hf_key_alarm(key, al->at, a->addr, a->alen, al->name, nl);
    HF_MUST(hf_wbatch_put(&b->wb, HF_DB_ALARMS, key, n, "", 0));
    snprintf(mname, sizeof(mname), "a:%s", al->name);
    n = hf_key_actor(mk, a->addr, a->alen, mname, strlen(mname));
    hf_put_be64(v, (uint64_t)al->at);
    hf_put_be32(v + 8, al->attempt);
    HF_MUST(hf_wbatch_put(&b->wb, HF_DB_META, mk, n, v, sizeof(v)));
    hf__rec(&b->held, R_ALARM, &ra, sizeof(ra), a->addr, a->alen, al->name,
            nl, NULL, 0);
}

static void
commit_alarms(struct worker *w, struct actor *a, const hf_buf *ta)
{
    struct batch *b = hf__cur(w);

    for (size_t pos = 0; pos < ta->len;) {
        int64_t at;
        uint32_t nl;
        const char *name;
        struct alarm **pp, *al;
        char key[HF_KEYBUF], mname[80];
        size_t n;

        memcpy(&at, ta->data + pos, 8);
        memcpy(&nl, ta->data + pos + 8, 4);
        name = ta->data + pos + 12;
        pos += 12 + nl;
        al = alarm_find(a, name, nl, &pp);
        if (at >= 0) {
            int64_t old_at = al ? al->at : -1;
            if (al == NULL) {
                al = hf_xcalloc(1, sizeof(*al) + nl + 1);
                memcpy(al->name, name, nl);
                *pp = al;
            }
            al->at = at;
            al->attempt = 0;
            hf__alarm_write(w, a, al, old_at);
        } else if (al != NULL) {
            n = hf_key_alarm(key, al->at, a->addr, a->alen, al->name, nl);
            HF_MUST(hf_wbatch_del(&b->wb, HF_DB_ALARMS, key, n));
            snprintf(mname, sizeof(mname), "a:%s", al->name);
            n = hf_key_actor(key, a->addr, a->alen, mname, strlen(mname));
            HF_MUST(hf_wbatch_del(&b->wb, HF_DB_META, key, n));
            *pp = al->next;
            free(al);
        }
    }
}

/* Whether the actor's events go to the feed (struct hf_feed). */
static int
feeds(struct worker *w, struct actor *a)
{
    const struct hf_feed *f = w->host->feed;

    if (f == NULL)
        return 0;
    if (a->feedm == 0)
        a->feedm = f->match(f->arg, a->addr, a->alen) ? 2 : 1;
    return a->feedm == 2;
}

static void
commit_events(struct worker *w, struct actor *a, struct hf_ctx *c)
{
    struct batch *b = hf__cur(w);
    uint64_t retain = (uint64_t)w->host->cfg.log_retain;
    const struct hf_feed *feed = feeds(w, a) ? w->host->feed : NULL;
    char key[HF_KEYBUF], v[8];
    size_t n;

    for (size_t pos = 0; pos < c->tev.len;) {
        uint32_t len;
        memcpy(&len, c->tev.data + pos, 4);
        a->seq++;
        n = hf_key_seq(key, a->addr, a->alen, a->seq);
        HF_MUST(hf_wbatch_put(&b->wb, HF_DB_LOG, key, n, c->tev.data + pos + 4,
                           len));
        if (a->seq > retain) {
            n = hf_key_seq(key, a->addr, a->alen, a->seq - retain);
            HF_MUST(hf_wbatch_del(&b->wb, HF_DB_LOG, key, n));
        }
        for (size_t i = 0; feed != NULL && i < feed->nids; i++) {
            n = hf_key_feed(key, feed->ids[i], a->addr, a->alen, a->seq);
            HF_MUST(hf_wbatch_put(&b->wb, HF_DB_FEED, key, n, "", 0));
        }
        pos += 4 + len;
    }
    HF_ADD(events, c->nev);
    n = hf_key_actor(key, a->addr, a->alen, "seq", 3);
    hf_put_be64(v, a->seq);
    HF_MUST(hf_wbatch_put(&b->wb, HF_DB_META, key, n, v, 8));
    if (!a->epoch_saved) {
        n = hf_key_actor(key, a->addr, a->alen, "epoch", 5);
        HF_MUST(hf_wbatch_put(&b->wb, HF_DB_META, key, n, a->epoch, 16));
        a->epoch_saved = 1;
    }
}

static void
commit_sends(struct worker *w, struct actor *a, struct hf_ctx *c)
{
    struct batch *b = hf__cur(w);
    char key[HF_KEYBUF], v[8], idem[HF_ADDR_MAX + 32];
    size_t n;
    msgpack_packer pk;

    for (size_t pos = 0; pos < c->tsend.len;) {
        const char *to, *m, *args;
        uint32_t tl, ml, al;
        hf_env e = {0};
        struct r_outbox ro;
        size_t kl;

        memcpy(&tl, c->tsend.data + pos, 4);
        to = c->tsend.data + pos + 4;
        pos += 4 + tl;
        memcpy(&ml, c->tsend.data + pos, 4);
        m = c->tsend.data + pos + 4;
        pos += 4 + ml;
        memcpy(&al, c->tsend.data + pos, 4);
        args = c->tsend.data + pos + 4;
        pos += 4 + al;

        a->obx++;
        kl = hf_key_seq(key, a->addr, a->alen, a->obx);
        e.op = HF_OP_CALL;
        e.to = (hf_slice){to, tl};
        e.method = (hf_slice){m, ml};
        e.key = (hf_slice){idem, (size_t)snprintf(idem, sizeof(idem),
                                                  "ob:%s:%llu", a->addr,
                                                  (unsigned long long)a->obx)};
        e.sub = (hf_slice){a->addr, a->alen};
        e.role = HF_ROLE_ACTOR;
        c->tmp.len = 0;
        msgpack_packer_init(&pk, &c->tmp, hf_buf_mpwrite);
        hf_env_pack_request(&pk, &e, (hf_slice){args, al});
        HF_MUST(hf_wbatch_put(&b->wb, HF_DB_OUTBOX, key, kl, c->tmp.data,
                           c->tmp.len));
        ro = (struct r_outbox){.hash = hf_addr_hash(to, tl), .alen = tl,
                               .envlen = (uint32_t)c->tmp.len,
                               .keylen = (uint32_t)kl};
        hf__rec(&b->held, R_OUTBOX, &ro, sizeof(ro), to, tl, c->tmp.data,
                c->tmp.len, key, kl);
        HF_INC(outbox_sent);
    }
    n = hf_key_actor(key, a->addr, a->alen, "obx", 3);
    hf_put_be64(v, a->obx);
    HF_MUST(hf_wbatch_put(&b->wb, HF_DB_META, key, n, v, 8));
}

/* Registers that batch b carries writes of actor a (for pruning). */
void
hf__batch_touch(struct batch *b, struct actor *a)
{
    if (a->write_batch == b->wb.id)
        return;
    a->write_batch = b->wb.id;
    HF_VEC_PUSH(b->acts, b->nacts, b->capacts, 16, a);
}

void
hf__ctx_commit(struct worker *w)
{
    struct hf_ctx *c = &w->ctx;
    struct actor *a = c->a;
    struct batch *b = hf__cur(w);
    char key[HF_KEYBUF];
    size_t n;

    for (uint32_t i = 0; i < c->ntw; i++) {
        const struct twrec *r = tw_at(c, i);
        n = hf_key_actor(key, a->addr, a->alen, r->k, r->kl);
        if (r->tomb)
            HF_MUST(hf_wbatch_del(&b->wb, r->dbi, key, n));
        else
            HF_MUST(hf_wbatch_put(&b->wb, r->dbi, key, n, r->v, r->vl));
        hf_cache_set(&a->cache, r->dbi, r->k, r->kl, r->v, r->vl, r->tomb,
                     b->wb.id);
    }
    if (c->tev.len > 0)
        commit_events(w, a, c);
    if (c->tsend.len > 0)
        commit_sends(w, a, c);
    if (c->talarm.len > 0)
        commit_alarms(w, a, &c->talarm);
    if (c->tw.len > 0 || c->tev.len > 0 || c->tsend.len > 0 ||
        c->talarm.len > 0)
        hf__batch_touch(b, a);
    HF_MUST(hf_buf_append(&b->held, c->tout.data, c->tout.len));
    b->wb.nhandlers++;
    a->last_batch = b->wb.id;
}

void
hf__ctx_abort(struct worker *w)
{
    struct hf_ctx *c = &w->ctx;
    /* Nothing staged has touched the actor, the cache or the batch; the
     * sink references taken by staged records must be returned. */
    for (size_t pos = 0; pos < c->tout.len;) {
        struct rhdr h;
        memcpy(&h, c->tout.data + pos, sizeof(h));
        if (h.type == R_REPLY) {
            struct r_reply rr;
            memcpy(&rr, c->tout.data + pos + sizeof(h), sizeof(rr));
            if (rr.sink)
                hf_sink_unref(rr.sink);
        }
        pos += sizeof(h) + h.len;
    }
    c->tout.len = 0;
}
