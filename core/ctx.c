/*
 * ctx.c - the handler context: the API of actor.h.
 *
 * Design notes: a handler's effects are staged in the context (ctx->tw
 * writes, whose keys and values sit in a per-handler arena that never
 * moves, tev events, tsend sends, talarm alarms, tout output records) and
 * touch nothing else until hf__ctx_commit, which moves them, in one go,
 * into the actor's cache and in-memory metadata and into the worker's
 * current batch. hf__ctx_abort simply forgets them. That is what makes a
 * handler one atomic unit without undo logs.
 *
 * Reads see, newest first: this handler's staged writes, the actor's cache
 * (earlier handlers' writes not yet durable), then the store's snapshot.
 * The commit (hf__ctx_commit, hf__ctx_abort) is commit.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/addr.h"
#include "core/env.h"
#include "core/host_int.h"
#include "core/metrics.h"
#include "core/vec.h"


static const msgpack_object nilobj = {.type = MSGPACK_OBJECT_NIL};

struct ablk {
    struct ablk *next;
    size_t used, cap;
    char data[];
};

/* Copies n bytes into the arena; the copy lives until the next handler. */
static const char *
arena_copy(struct hf_ctx *c, const void *p, size_t n)
{
    struct ablk *b = c->arena;
    char *dst;

    if (n == 0)
        return "";
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        b = hf_xmalloc(sizeof(*b) + cap);
        b->used = 0;
        b->cap = cap;
        b->next = c->arena;
        c->arena = b;
    }
    dst = b->data + b->used;
    memcpy(dst, p, n);
    b->used += n;
    return dst;
}

/* Empties the arena for the next handler, keeping one block. */
static void
arena_reset(struct hf_ctx *c)
{
    struct ablk *b = c->arena;
    while (b && b->next) {
        struct ablk *n = b->next;
        b->next = n->next;
        free(n);
    }
    if (b)
        b->used = 0;
}

void
hf__ctx_begin(struct worker *w, struct actor *a, const char *caller,
              unsigned role)
{
    struct hf_ctx *c = &w->ctx;

    c->w = w;
    c->a = a;
    c->caller = caller ? caller : "";
    c->role = role;
    c->cname = c->cpic = (hf_slice){NULL, 0};
    c->meth = NULL;
    c->now = hf_now_ms();
    c->stage.len = 0;
    c->result.len = 0;
    c->has_result = 0;
    c->errmsg[0] = '\0';
    c->tw.len = c->tev.len = c->tsend.len = c->talarm.len = 0;
    c->tout.len = 0;
    c->ntw = c->nev = 0;
    arena_reset(c);
    msgpack_packer_init(&c->pk, &c->stage, hf_buf_mpwrite);
}

void
hf__ctx_free(struct hf_ctx *c)
{
    hf_buf_free(&c->stage);
    hf_buf_free(&c->result);
    hf_buf_free(&c->tw);
    hf_buf_free(&c->tev);
    hf_buf_free(&c->tsend);
    hf_buf_free(&c->talarm);
    hf_buf_free(&c->tout);
    hf_buf_free(&c->tmp);
    while (c->arena) {
        struct ablk *b = c->arena;
        c->arena = b->next;
        free(b);
    }
}

/* Takes the staged object (nil when nothing is staged) into dst. */
static void
take_stage(struct hf_ctx *c, hf_buf *dst)
{
    static const char nil = (char)0xc0;
    if (c->stage.len == 0)
        HF_MUST(hf_buf_append(dst, &nil, 1));
    else
        HF_MUST(hf_buf_append(dst, c->stage.data, c->stage.len));
    c->stage.len = 0;
}

/* ---- who, what, when ---- */

const char *
hf_self(hf_ctx *c)
{
    return c->a->addr;
}

const char *
hf_self_name(hf_ctx *c)
{
    return c->a->addr + c->a->klen + 1;
}

const char *
hf_caller(hf_ctx *c)
{
    return c->caller;
}

unsigned
hf_caller_role(hf_ctx *c)
{
    return c->role;
}

hf_slice
hf_caller_claim(hf_ctx *c, const char *claim)
{
    if (strcmp(claim, "name") == 0)
        return c->cname;
    if (strcmp(claim, "picture") == 0)
        return c->cpic;
    return (hf_slice){NULL, 0};
}

int64_t
hf_now(hf_ctx *c)
{
    return c->now;
}

const struct hf_kind *
hf_self_kind(hf_ctx *c)
{
    return c->a->kind;
}

const struct hf_method *
hf_method_of(hf_ctx *c)
{
    return c->meth;
}

int
hf_worker_index(hf_ctx *c)
{
    return c->w->idx;
}

uint64_t
hf_seq(hf_ctx *c)
{
    return c->a->seq + c->nev;
}

/* ---- state ---- */

/* The newest staged write of (dbi, key), or NULL. Linear: handlers write
 * few keys, and the newest match wins. */
static const struct twrec *
tw_find(struct hf_ctx *c, int dbi, const void *k, size_t kl)
{
    for (uint32_t i = c->ntw; i-- > 0;) {
        const struct twrec *r = tw_at(c, i);
        if (r->dbi == dbi && r->kl == kl && memcmp(r->k, k, kl) == 0)
            return r;
    }
    return NULL;
}

int
hf__ctx_stage_write(struct hf_ctx *c, int dbi, const void *k, size_t kl,
                    const void *v, size_t vl, int tomb)
{
    struct twrec r = {.dbi = dbi, .tomb = tomb, .kl = kl, .vl = vl};

    r.k = arena_copy(c, k, kl);
    r.v = arena_copy(c, v, vl);
    HF_MUST(hf_buf_append(&c->tw, &r, sizeof(r)));
    c->ntw++;
    return 0;
}

/* Reads (dbi, key) through the three layers. */
int
hf__ctx_read(struct hf_ctx *c, int dbi, const void *k, size_t kl,
             hf_slice *val)
{
    struct actor *a = c->a;
    const struct twrec *r;
    hf_centry *e;
    char key[HF_KEYBUF];
    size_t n;

    if ((r = tw_find(c, dbi, k, kl)) != NULL) {
        if (r->tomb)
            return HF_ENOTFOUND;
        val->data = r->v;
        val->len = r->vl;
        return 0;
    }
    if ((e = hf_cache_get(&a->cache, dbi, k, kl)) != NULL) {
        if (e->tomb)
            return HF_ENOTFOUND;
        val->data = e->val;
        val->len = e->vlen;
        return 0;
    }
    if ((n = hf_key_actor(key, a->addr, a->alen, k, kl)) == 0)
        return HF_ETOOLARGE;
    return c->w->host->st.ops->get(c->w->host->st.self, c->w->idx, dbi,
                                   (hf_slice){key, n}, val);
}

int
hf_get(hf_ctx *c, const void *key, size_t klen, hf_slice *val)
{
    if (klen == 0 || klen > HF_USERKEY_MAX)
        return HF_EBADREQ;
    return hf__ctx_read(c, HF_DB_KV, key, klen, val);
}

int
hf_put(hf_ctx *c, const void *key, size_t klen, const void *val,
       size_t vlen)
{
    if (klen == 0 || klen > HF_USERKEY_MAX)
        return hf_fail(c, HF_EBADREQ, "key length %zu out of range", klen);
    if (vlen > (64u << 20))
        return hf_fail(c, HF_ETOOLARGE, "value over 64 MiB");
    return hf__ctx_stage_write(c, HF_DB_KV, key, klen, val, vlen, 0);
}

int
hf_del(hf_ctx *c, const void *key, size_t klen)
{
    if (klen == 0 || klen > HF_USERKEY_MAX)
        return hf_fail(c, HF_EBADREQ, "key length %zu out of range", klen);
    return hf__ctx_stage_write(c, HF_DB_KV, key, klen, NULL, 0, 1);
}

/* ---- hf_list: the store's range merged with the overlay ---- */

struct ov {
    const char *k, *v;
    size_t kl, vl;
    int tomb;
    size_t order; /* later writes win */
};

static int
keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int r = n ? memcmp(a, b, n) : 0;
    if (r != 0)
        return r;
    return (al > bl) - (al < bl);
}

static int
ovcmp(const void *x, const void *y)
{
    const struct ov *a = x, *b = y;
    int r = keycmp(a->k, a->kl, b->k, b->kl);
    if (r != 0)
        return r;
    return (a->order > b->order) - (a->order < b->order);
}

static int
inrange(const char *k, size_t kl, hf_slice lo, hf_slice hi)
{
    if (keycmp(k, kl, lo.data, lo.len) < 0)
        return 0;
    return hi.len == 0 || keycmp(k, kl, hi.data, hi.len) < 0;
}

struct merge {
    struct ov *ov;
    size_t nov, i;
    int reverse;
    size_t limit, count;
    size_t prefix; /* bytes of "addr\0" to strip from store keys */
    hf_scan_fn fn;
    void *arg;
    int stopped;
};

static int
emit1(struct merge *m, const char *k, size_t kl, const char *v, size_t vl)
{
    if (m->fn(m->arg, (hf_slice){k, kl}, (hf_slice){v, vl}) != 0 ||
        (m->limit && ++m->count >= m->limit))
        m->stopped = 1;
    return m->stopped;
}

/* Emits overlay entries that come before key (all when key is NULL). */
static int
emit_overlay_before(struct merge *m, const char *k, size_t kl)
{
    while (!m->stopped && m->i < m->nov) {
        struct ov *o = &m->ov[m->reverse ? m->nov - 1 - m->i : m->i];
        int c = k ? keycmp(o->k, o->kl, k, kl) : -1;
        if (m->reverse && k)
            c = -c;
        if (c >= 0)
            break;
        m->i++;
        if (!o->tomb)
            emit1(m, o->k, o->kl, o->v, o->vl);
    }
    return m->stopped;
}

static int
merge_cb(void *arg, hf_slice key, hf_slice val)
{
    struct merge *m = arg;
    const char *k = (const char *)key.data + m->prefix;
    size_t kl = key.len - m->prefix;

    if (emit_overlay_before(m, k, kl))
        return 1;
    if (m->i < m->nov) {
        struct ov *o = &m->ov[m->reverse ? m->nov - 1 - m->i : m->i];
        if (keycmp(o->k, o->kl, k, kl) == 0) {
            m->i++;
            if (o->tomb)
                return 0;
            return emit1(m, o->k, o->kl, o->v, o->vl);
        }
    }
    return emit1(m, k, kl, val.data, val.len);
}

int
hf_list(hf_ctx *c, hf_slice lo, hf_slice hi, int reverse, size_t limit,
        hf_scan_fn fn, void *arg)
{
    struct actor *a = c->a;
    struct merge m = {.reverse = reverse, .limit = limit, .fn = fn,
                      .arg = arg, .prefix = a->alen + 1};
    size_t n = 0, cap = 0, order = 0, j;
    struct ov *ov = NULL;
    char klo[HF_KEYBUF], khi[HF_KEYBUF];
    size_t llo, lhi;
    int rv;

    if (lo.len > HF_USERKEY_MAX || hi.len > HF_USERKEY_MAX)
        return HF_EBADREQ;
    /* Collect the overlay in range: cache first, then staged writes. */
    for (hf_centry *e = a->cache.oldest; e != NULL; e = e->next) {
        /* A clean entry (batch 0) is what the store's range holds. */
        if (e->batch == 0 || e->dbi != HF_DB_KV ||
            !inrange(e->key, e->klen, lo, hi))
            continue;
        HF_VEC_GROW(ov, n, cap, 16);
        ov[n++] = (struct ov){e->key, e->val, e->klen, e->vlen, e->tomb,
                              order++};
    }
    for (uint32_t i = 0; i < c->ntw; i++) {
        const struct twrec *r = tw_at(c, i);
        if (r->dbi != HF_DB_KV || !inrange(r->k, r->kl, lo, hi))
            continue;
        HF_VEC_GROW(ov, n, cap, 16);
        ov[n++] = (struct ov){r->k, r->v, r->kl, r->vl, r->tomb, order++};
    }
    if (n > 1)
        qsort(ov, n, sizeof(*ov), ovcmp);
    /* Keep the newest of each key: it sorts last among equals. */
    for (size_t i = j = 0; i < n; i++) {
        if (i + 1 < n && keycmp(ov[i].k, ov[i].kl, ov[i + 1].k,
                                ov[i + 1].kl) == 0)
            continue;
        ov[j++] = ov[i];
    }
    m.ov = ov;
    m.nov = n ? j : 0;

    llo = hf_key_actor(klo, a->addr, a->alen, lo.data, lo.len);
    if (hi.len > 0)
        lhi = hf_key_actor(khi, a->addr, a->alen, hi.data, hi.len);
    else
        lhi = hf_key_actor_end(khi, a->addr, a->alen);
    rv = c->w->host->st.ops->scan(c->w->host->st.self, c->w->idx, HF_DB_KV,
                                  (hf_slice){klo, llo}, (hf_slice){khi, lhi},
                                  reverse, merge_cb, &m);
    if (rv == 0)
        emit_overlay_before(&m, NULL, 0);
    free(ov);
    return rv;
}

/* ---- outputs ---- */

msgpack_packer *
hf_pk(hf_ctx *c)
{
    return &c->pk;
}

int
hf_reply(hf_ctx *c)
{
    c->result.len = 0;
    take_stage(c, &c->result);
    c->has_result = 1;
    return 0;
}

int
hf_fail(hf_ctx *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

const char *
hf_errmsg(hf_ctx *c)
{
    return c->errmsg;
}

int
hf_emit(hf_ctx *c, const char *type, uint64_t *seqp)
{
    struct actor *a = c->a;
    uint64_t seq = a->seq + c->nev + 1;
    msgpack_packer pk;
    uint32_t len;

    if (type == NULL || *type == '\0' || strlen(type) > 64)
        return hf_fail(c, HF_EBADREQ, "bad event type");
    /* The log value, kept in tev behind its length; then the live
     * envelope around that copy (both packed by the envelope module). */
    c->tmp.len = 0;
    msgpack_packer_init(&pk, &c->tmp, hf_buf_mpwrite);
    HF_MUST(hf_env_pack_event_value(&pk, (hf_slice){type, strlen(type)},
                                    (hf_slice){c->stage.data, c->stage.len},
                                    c->now));
    c->stage.len = 0;
    len = (uint32_t)c->tmp.len;
    HF_MUST(hf_buf_append(&c->tev, &len, 4));
    HF_MUST(hf_buf_append(&c->tev, c->tmp.data, c->tmp.len));
    c->tmp.len = 0;
    HF_MUST(hf_env_pack_event(&pk, 0, 0, (hf_slice){a->addr, a->alen}, seq,
                              (hf_slice){c->tev.data + c->tev.len - len, len}));
    hf__rec_fanout(&c->tout, a, c->tmp.data, c->tmp.len);
    c->nev++;
    if (seqp)
        *seqp = seq;
    return 0;
}

int
hf_signal(hf_ctx *c, const char *type)
{
    struct actor *a = c->a;
    msgpack_packer pk;
    hf_buf data = {0};

    if (type == NULL || *type == '\0' || strlen(type) > 64)
        return hf_fail(c, HF_EBADREQ, "bad signal type");
    take_stage(c, &data);
    c->tmp.len = 0;
    msgpack_packer_init(&pk, &c->tmp, hf_buf_mpwrite);
    hf_env_pack_signal(&pk, (hf_slice){a->addr, a->alen},
                       (hf_slice){type, strlen(type)},
                       (hf_slice){c->caller, strlen(c->caller)},
                       (hf_slice){data.data, data.len});
    hf_buf_free(&data);
    hf__rec_fanout(&c->tout, a, c->tmp.data, c->tmp.len);
    return 0;
}

static void
put_lstr(hf_buf *b, const void *s, size_t n)
{
    uint32_t l = (uint32_t)n;
    HF_MUST(hf_buf_append(b, &l, 4));
    HF_MUST(hf_buf_append(b, s, n));
}

int
hf_send(hf_ctx *c, const char *to, const char *method)
{
    size_t tl = to ? strlen(to) : 0, kl;
    uint32_t l;

    if (to == NULL || hf_addr_check(to, tl, &kl) != 0)
        return hf_fail(c, HF_EBADREQ, "bad address '%s'", to ? to : "");
    if (hf__kind_find(c->w->host, to, kl) == NULL)
        return hf_fail(c, HF_ENOTFOUND, "no kind for '%s'", to);
    if (method == NULL || *method == '\0' || strlen(method) > 64)
        return hf_fail(c, HF_EBADREQ, "bad method");
    put_lstr(&c->tsend, to, tl);
    put_lstr(&c->tsend, method, strlen(method));
    l = (uint32_t)(c->stage.len ? c->stage.len : 1);
    HF_MUST(hf_buf_append(&c->tsend, &l, 4));
    take_stage(c, &c->tsend);
    return 0;
}

static int
alarm_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= 64;
}

int
hf_alarm_set(hf_ctx *c, const char *name, int64_t at_ms)
{
    if (!alarm_name_ok(name))
        return hf_fail(c, HF_EBADREQ, "bad alarm name");
    if (at_ms < 0)
        at_ms = 0;
    HF_MUST(hf_buf_append(&c->talarm, &at_ms, 8));
    put_lstr(&c->talarm, name, strlen(name));
    return 0;
}

int
hf_alarm_cancel(hf_ctx *c, const char *name)
{
    int64_t cancel = -1;
    if (!alarm_name_ok(name))
        return hf_fail(c, HF_EBADREQ, "bad alarm name");
    HF_MUST(hf_buf_append(&c->talarm, &cancel, 8));
    put_lstr(&c->talarm, name, strlen(name));
    return 0;
}

int
hf_alarm_get(hf_ctx *c, const char *name, int64_t *at_ms)
{
    int found = 0;
    int64_t at = -1;
    size_t nl = name ? strlen(name) : 0;

    for (size_t pos = 0; pos < c->talarm.len;) {
        uint32_t l;
        memcpy(&at, c->talarm.data + pos, 8);
        memcpy(&l, c->talarm.data + pos + 8, 4);
        if (l == nl && memcmp(c->talarm.data + pos + 12, name, nl) == 0)
            found = 1, *at_ms = at;
        pos += 12 + l;
    }
    if (found)
        return *at_ms < 0 ? HF_ENOTFOUND : 0;
    for (struct alarm *al = c->a->alarms; al != NULL; al = al->next)
        if (strcmp(al->name, name) == 0) {
            *at_ms = al->at;
            return 0;
        }
    return HF_ENOTFOUND;
}

/* ---- argument helpers ---- */

const msgpack_object *
hf_arg(const msgpack_object *args, const char *key)
{
    size_t kl = strlen(key);
    if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < args->via.map.size; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &args->via.map.ptr[i].val;
    }
    return NULL;
}

int
hf_arg_str(hf_ctx *c, const msgpack_object *args, const char *key,
           int required, size_t maxlen, const char **s, size_t *len)
{
    const msgpack_object *v = hf_arg(args, key);

    *s = NULL;
    *len = 0;
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return required ? hf_fail(c, HF_EBADREQ, "'%s' is required", key)
                        : 0;
    if (v->type != MSGPACK_OBJECT_STR)
        return hf_fail(c, HF_EBADREQ, "'%s' must be a string", key);
    if (v->via.str.size == 0 || v->via.str.size > maxlen)
        return hf_fail(c, HF_EBADREQ, "'%s' must be 1 to %zu bytes", key,
                       maxlen);
    *s = v->via.str.ptr;
    *len = v->via.str.size;
    return 0;
}

int
hf_arg_int(hf_ctx *c, const msgpack_object *args, const char *key,
           int required, int64_t min, int64_t max, int64_t *out)
{
    const msgpack_object *v = hf_arg(args, key);
    int64_t n;

    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return required ? hf_fail(c, HF_EBADREQ, "'%s' is required", key)
                        : 0;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        n = (int64_t)v->via.u64;
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        n = v->via.i64;
    else if (v->type == MSGPACK_OBJECT_FLOAT64 &&
             v->via.f64 == (double)(int64_t)v->via.f64)
        n = (int64_t)v->via.f64;
    else
        return hf_fail(c, HF_EBADREQ, "'%s' must be an integer", key);
    if (n < min || n > max)
        return hf_fail(c, HF_EBADREQ,
                       "'%s' must be between %lld and %lld", key,
                       (long long)min, (long long)max);
    *out = n;
    return 0;
}

const msgpack_object *
hf__nil(void)
{
    return &nilobj;
}
