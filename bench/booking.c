/*
 * booking.c - holdfast-bench booking: users racing for the slots of
 * devices (device.reserve) over WebSocket, against a running server, with
 * the verdict the product promises: no slot acknowledged to two users, no
 * acknowledged booking lost.
 *
 * Design notes
 * ------------
 * Workload. C connections, each one user ("u<connection>"), keep W
 * reserve calls in flight through the callers of wscall.c (struct wload).
 * Each call picks a device of D and a slot of S uniformly at random, so
 * users collide on slots more and more as the run fills them: the answer
 * is the reservation (a win) or conflict (someone else holds it), both
 * expected. With auth off the caller is anonymous, so the call names its
 * user explicitly; the device kind then stores that user as the holder.
 * Throughput counts wins only ("durable reservations/s"): conflicts are
 * shown apart, as decisions.
 *
 * Every win is remembered by its thread as (device, slot, user): 12 bytes
 * per acknowledged booking. A connection may win the same slot twice
 * (two calls in flight for it): the device answers its holder with the
 * same reservation, which is not a double booking.
 *
 * The verdict, after the run:
 *   double bookings  slots acknowledged to two different users (from the
 *                    wins alone: any such pair is a broken promise);
 *   lost acks        acknowledged wins whose slot, read back through a
 *                    fresh connection (device.get lists every
 *                    reservation), is not held by that user;
 *   phantoms         reservations the device holds that no reply
 *                    acknowledged - possible only for calls whose answer
 *                    was lost with a dead connection, else FAIL.
 * The devices' names carry a tag new to the run, so they start empty.
 *
 * --timeslot runs the same race on the Lua kind timeslot (examples/kinds,
 * served with --kinds): actor d is timeslot/bk<d>.<tag>, a timeline of S
 * units of a minute an hour ahead, and a call books units [j, j + L) for
 * L of 1 or 2, so attempts overlap partly as well as wholly. Each call
 * books for one of TS_USERS users of its connection, drawn at random, so
 * that the kind's per-user limit (3 active bookings) seldom decides and
 * overlaps do. A booking
 * is remembered once per unit it covers, with its id in place of the
 * user (ids are unique per actor, so a unit acknowledged to two bookings
 * is a double booking even for one user), and the read-back (timeslot
 * list, at most TS_SLOTS_MAX bookings per actor in one answer) marks the
 * units each booking holds. The verdicts are the same three.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"

#define BOOKING     "booking"
#define BK_CLIENTS  50
#define BK_WINDOW   16
#define BK_DEVICES  1000
#define BK_SLOTS    1000
#define BK_MAX_DEVS 100000
#define BK_MAX_CELL 100000000ull /* devices x slots */
/* device.get lists every reservation (~200 bytes each; a device of 10,000
 * slots answers with 2 MB): one at a time, so the replies stay under the
 * server's --outbuf-max. */
#define BK_READ_WINDOW 1
#define TS_SLOTS_MAX   100   /* timeslot list's default page */
#define TS_UNIT_MS     60000 /* a unit of the timeline */
#define TS_LEN_SHIFT   24    /* sent_aux = j | L << TS_LEN_SHIFT */
#define TS_USERS       1000  /* users per connection (the per-user limit) */

/* The run's read-only part (crun.wl_arg). */
struct bk {
    uint32_t ndev, nslots;
    const struct name *devs;
    int timeslot;
    long long t0;                /* timeslot: ms of unit 0 */
    const char *unit, *holder;   /* for messages: "slot s", "u" */
};

struct win {
    uint32_t d, j, u;
};

/* Per caller thread (caller.wl_state). */
struct bkthr {
    struct win *v;
    size_t n, cap;
    int oom;
};

static uint32_t
bk_put(struct caller *c, struct cconn *k, uint32_t s, uint64_t id)
{
    const struct bk *b = c->r->wl_arg;
    uint32_t d = (uint32_t)(wb_rnd(&c->rng) % b->ndev);
    uint32_t j = (uint32_t)(wb_rnd(&c->rng) % b->nslots);
    char slot[16], user[16];
    int sl = snprintf(slot, sizeof(slot), "s%u", j);
    int ul = snprintf(user, sizeof(user), "u%u", k->idx);

    k->sent_actor[s] = d;
    k->sent_aux[s] = j;
    if (!c->r->t->msgpack) {
        char tmp[NAME_CAP + 160];
        int n =
            snprintf(tmp, sizeof(tmp),
                     "%s{\"op\":\"call\",\"id\":%" PRIu64
                     ",\"to\":\"%s\",\"method\":\"reserve\",\"args\":{"
                     "\"slot\":\"%s\",\"user\":\"%s\"}}",
                     c->frame.len ? "\n" : "", id, b->devs[d].s, slot, user);
        hf_buf_append(&c->frame, tmp, (size_t)n);
        return d;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->frame, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 5);
    hf_pack_cstr(&pk, "op");
    hf_pack_cstr(&pk, "call");
    hf_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    hf_pack_cstr(&pk, "to");
    hf_pack_str(&pk, b->devs[d].s, b->devs[d].len);
    hf_pack_cstr(&pk, "method");
    hf_pack_cstr(&pk, "reserve");
    hf_pack_cstr(&pk, "args");
    msgpack_pack_map(&pk, 2);
    hf_pack_cstr(&pk, "slot");
    hf_pack_str(&pk, slot, (size_t)sl);
    hf_pack_cstr(&pk, "user");
    hf_pack_str(&pk, user, (size_t)ul);
    return d;
}

/* timeslot.book {start, end, user} of units [j, j + L). */
static uint32_t
ts_put(struct caller *c, struct cconn *k, uint32_t s, uint64_t id)
{
    const struct bk *b = c->r->wl_arg;
    uint32_t d = (uint32_t)(wb_rnd(&c->rng) % b->ndev);
    uint32_t j = (uint32_t)(wb_rnd(&c->rng) % b->nslots);
    uint32_t len = 1 + (uint32_t)(wb_rnd(&c->rng) % 2);
    long long start = b->t0 + (long long)j * TS_UNIT_MS;
    char tmp[NAME_CAP + 200];
    int n;

    if (j + len > b->nslots)
        len = 1;
    k->sent_actor[s] = d;
    k->sent_aux[s] = j | len << TS_LEN_SHIFT;
    n = snprintf(tmp, sizeof(tmp),
                 "%s{\"op\":\"call\",\"id\":%" PRIu64
                 ",\"to\":\"%s\",\"method\":\"book\",\"args\":{"
                 "\"start\":%lld,\"end\":%lld,\"user\":\"u%u\"}}",
                 c->frame.len && !c->r->t->msgpack ? "\n" : "", id,
                 b->devs[d].s, start, start + (long long)len * TS_UNIT_MS,
                 k->idx * TS_USERS + (uint32_t)(wb_rnd(&c->rng) % TS_USERS));
    if (c->r->t->msgpack)
        hf_json_to_mp(tmp, (size_t)n, &c->frame);
    else
        hf_buf_append(&c->frame, tmp, (size_t)n);
    return d;
}

static int
remember(struct bkthr *w, struct win e)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 65536;
        struct win *v = realloc(w->v, cap * sizeof(*v));
        if (v == NULL) {
            w->oom = 1;
            return -1;
        }
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = e;
    return 0;
}

/* A won booking: one win per unit, holder = its id. */
static int
ts_reply(struct caller *c, struct cconn *k, uint32_t s, const struct smsg *m)
{
    uint32_t j = k->sent_aux[s] & ((1u << TS_LEN_SHIFT) - 1);
    uint32_t len = k->sent_aux[s] >> TS_LEN_SHIFT;
    json_t *res;
    json_int_t id;

    if (!m->ok)
        return m->err == HF_ECONFLICT ? WR_REFUSED : WR_ERROR;
    res = wb_result_json(m);
    id = json_integer_value(json_object_get(res, "id"));
    json_decref(res);
    if (id <= 0 || id >= UINT32_MAX)
        return WR_ERROR;
    for (uint32_t x = 0; x < len; x++)
        if (remember(c->wl_state,
                     (struct win){k->sent_actor[s], j + x, (uint32_t)id}))
            break;
    return WR_OK;
}

static const struct wload ts_load = {.put = ts_put, .reply = ts_reply};

static int
bk_reply(struct caller *c, struct cconn *k, uint32_t s, const struct smsg *m)
{
    struct bkthr *w = c->wl_state;

    if (!m->ok)
        return m->err == HF_ECONFLICT ? WR_REFUSED : WR_ERROR;
    remember(w, (struct win){k->sent_actor[s], k->sent_aux[s], k->idx});
    return WR_OK;
}

static const struct wload bk_load = {.put = bk_put, .reply = bk_reply};

/* ------------------------------------------------------------------ */
/* reading the devices back                                            */

/* What device.get says: held[d * S + j] = holder + 1 (0: free). */
struct readback {
    const struct bk *b;
    uint32_t *held;
    uint64_t reservations, dup, foreign;
};

/* "s<j>" with j < max, or -1. */
static long
parse_num(const char *p, size_t n, char prefix, uint32_t max)
{
    unsigned long v = 0;

    if (n < 2 || n > 11 || p[0] != prefix)
        return -1;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v < max ? (long)v : -1;
}

static void
note(struct readback *rb, uint32_t d, const char *slot, size_t sl,
     const char *user, size_t ul)
{
    long j = parse_num(slot, sl, 's', rb->b->nslots);
    long u = parse_num(user, ul, 'u', UINT32_MAX - 1);
    uint32_t *h;

    rb->reservations++;
    if (j < 0 || u < 0) {
        rb->foreign++;
        return;
    }
    h = &rb->held[(uint64_t)d * rb->b->nslots + (uint64_t)j];
    if (*h != 0)
        rb->dup++;
    *h = (uint32_t)u + 1;
}

static int
got_device(void *arg, uint32_t d, const struct smsg *m)
{
    struct readback *rb = arg;

    if (m->mresult != NULL) {
        const msgpack_object *rs = NULL;
        for (uint32_t i = 0; m->mresult->type == MSGPACK_OBJECT_MAP &&
                             i < m->mresult->via.map.size;
             i++) {
            const msgpack_object_kv *kv = &m->mresult->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR &&
                kv->key.via.str.size == 12 &&
                memcmp(kv->key.via.str.ptr, "reservations", 12) == 0)
                rs = &kv->val;
        }
        if (rs == NULL || rs->type != MSGPACK_OBJECT_ARRAY)
            return -1;
        for (uint32_t i = 0; i < rs->via.array.size; i++) {
            const msgpack_object *r = &rs->via.array.ptr[i];
            const msgpack_object *slot = NULL, *user = NULL;
            if (r->type != MSGPACK_OBJECT_MAP)
                return -1;
            for (uint32_t f = 0; f < r->via.map.size; f++) {
                const msgpack_object_kv *kv = &r->via.map.ptr[f];
                if (kv->key.type != MSGPACK_OBJECT_STR ||
                    kv->val.type != MSGPACK_OBJECT_STR)
                    continue;
                if (kv->key.via.str.size == 4 &&
                    memcmp(kv->key.via.str.ptr, "slot", 4) == 0)
                    slot = &kv->val;
                else if (kv->key.via.str.size == 4 &&
                         memcmp(kv->key.via.str.ptr, "user", 4) == 0)
                    user = &kv->val;
            }
            if (slot == NULL || user == NULL)
                return -1;
            note(rb, d, slot->via.str.ptr, slot->via.str.size,
                 user->via.str.ptr, user->via.str.size);
        }
        return 0;
    }

    json_t *doc = NULL, *res = m->jresult, *rs, *r;
    size_t i;
    if (res == NULL && m->result != NULL) {
        json_error_t je;
        /* The result is followed by the message's closing brace. */
        doc = json_loadb(m->result, m->result_len, JSON_DISABLE_EOF_CHECK, &je);
        res = doc;
    }
    if (!json_is_array(rs = json_object_get(res, "reservations"))) {
        json_decref(doc);
        return -1;
    }
    json_array_foreach(rs, i, r)
    {
        json_t *slot = json_object_get(r, "slot"),
               *user = json_object_get(r, "user");
        if (!json_is_string(slot) || !json_is_string(user)) {
            json_decref(doc);
            return -1;
        }
        note(rb, d, json_string_value(slot), json_string_length(slot),
             json_string_value(user), json_string_length(user));
    }
    json_decref(doc);
    return 0;
}

/* timeslot.list: {bookings: [{id, start, end, user}...], more}. Each
 * booking marks the units it covers with its id. */
static int
got_slots(void *arg, uint32_t d, const struct smsg *m)
{
    struct readback *rb = arg;
    const struct bk *b = rb->b;
    json_t *res = wb_result_json(m), *bs, *x;
    size_t i;

    if (!json_is_array(bs = json_object_get(res, "bookings")) ||
        !json_is_false(json_object_get(res, "more"))) {
        json_decref(res);
        return -1;
    }
    json_array_foreach(bs, i, x)
    {
        json_int_t id = json_integer_value(json_object_get(x, "id"));
        long long s0 = json_integer_value(json_object_get(x, "start")) - b->t0;
        long long s1 = json_integer_value(json_object_get(x, "end")) - b->t0;
        const char *user = json_string_value(json_object_get(x, "user"));

        rb->reservations++;
        if (id <= 0 || id >= UINT32_MAX || user == NULL ||
            parse_num(user, strlen(user), 'u', UINT32_MAX - 1) < 0 || s0 < 0 ||
            s1 <= s0 || s0 % TS_UNIT_MS || s1 % TS_UNIT_MS ||
            s1 / TS_UNIT_MS > b->nslots) {
            rb->foreign++;
            continue;
        }
        for (long long j = s0 / TS_UNIT_MS; j < s1 / TS_UNIT_MS; j++) {
            uint32_t *h = &rb->held[(uint64_t)d * b->nslots + (uint64_t)j];
            if (*h != 0)
                rb->dup++;
            *h = (uint32_t)id + 1;
        }
    }
    json_decref(res);
    return 0;
}

/* --tamper, for the test suite: cancels the first acknowledged booking
 * (auth off: every caller is admin) through a connection of its own, so
 * that the read-back must find it lost. Proves the verdict can fail. */
static int
tamper(const struct target *t, const struct bk *b, struct caller **cl, int n)
{
    const struct win *e = NULL;
    hf_ws *ws = NULL;
    hf_buf frame = {0}, rx = {0};
    char tmp[NAME_CAP + 128];
    int rv, op, code, len;

    for (int i = 0; i < n && e == NULL; i++) {
        const struct bkthr *w = cl[i]->wl_state;
        if (w->n > 0)
            e = &w->v[0];
    }
    if (e == NULL)
        return HF_ENOTFOUND;
    if ((rv = wb_dial(BOOKING, t, 0, 1, &ws)) != 0)
        return rv;
    if (b->timeslot)
        len = snprintf(tmp, sizeof(tmp),
                       "{\"op\":\"call\",\"id\":1,\"to\":\"%s\",\"method\":"
                       "\"cancel\",\"args\":{\"id\":%u}}",
                       b->devs[e->d].s, e->u);
    else
        len = snprintf(tmp, sizeof(tmp),
                       "{\"op\":\"call\",\"id\":1,\"to\":\"%s\",\"method\":"
                       "\"cancel\",\"args\":{\"slot\":\"s%u\"}}",
                       b->devs[e->d].s, e->j);
    /* JSON even on a msgpack connection would be refused: convert. */
    if (t->msgpack)
        rv = hf_json_to_mp(tmp, (size_t)len, &frame);
    else
        hf_buf_append(&frame, tmp, (size_t)len);
    if (rv == 0)
        rv = wb_send_frame(ws, t->msgpack, &frame);
    /* The hello comes first; then the reply. */
    while (rv == 0) {
        if ((rv = hf_ws_recv(ws, 10000, &op, &rx, &code)) != 0)
            break;
        if (op == HF_WS_CLOSE) {
            rv = HF_EUNAVAIL;
            break;
        }
        if (rx.len > 0 && (memmem(rx.data, rx.len, "reply", 5) != NULL)) {
            /* What only a success answers with: device's state, the
             * cancelled booking's start. */
            const char *mark = b->timeslot ? "start" : "cancelled";
            if (memmem(rx.data, rx.len, mark, strlen(mark)) == NULL)
                rv = HF_EBADREQ;
            break;
        }
    }
    printf("%s: --tamper: cancelled %s %s%u behind the bench's back "
           "(%s)\n",
           BOOKING, b->devs[e->d].s, b->unit, e->j,
           rv ? hf_err_name(rv) : "ok");
    hf_ws_close(ws);
    hf_buf_free(&frame);
    hf_buf_free(&rx);
    return rv;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

struct bkverdict {
    uint64_t wins, dup_wins, double_bookings, lost_acks, phantoms;
};

/* Checks the wins against each other and against what the devices hold.
 * held is consumed: wins are crossed off it to find the phantoms. */
static void
judge(const struct bk *b, struct caller **cl, int n, uint32_t *held,
      struct bkverdict *v)
{
    uint64_t cells = (uint64_t)b->ndev * b->nslots;
    uint32_t *acked = calloc(cells, sizeof(*acked));
    uint8_t *twice = calloc(cells, 1);

    memset(v, 0, sizeof(*v));
    if (acked == NULL || twice == NULL) {
        free(acked);
        free(twice);
        v->lost_acks = UINT64_MAX;
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct bkthr *w = cl[i]->wl_state;
        for (size_t x = 0; x < w->n; x++) {
            const struct win *e = &w->v[x];
            uint64_t cell = (uint64_t)e->d * b->nslots + e->j;
            v->wins++;
            if (acked[cell] == 0) {
                acked[cell] = e->u + 1;
            } else if (acked[cell] == e->u + 1) {
                v->dup_wins++;
                continue;
            } else if (!twice[cell]) {
                twice[cell] = 1;
                if (v->double_bookings++ < SHOW)
                    printf("verify: FAIL (%s %s%u acknowledged to %s%u "
                           "and to %s%u)\n",
                           b->devs[e->d].s, b->unit, e->j, b->holder,
                           acked[cell] - 1, b->holder, e->u);
            }
            if (held[cell] != e->u + 1) {
                if (v->lost_acks++ >= SHOW)
                    ;
                else if (held[cell] == 0)
                    printf("verify: FAIL (%s %s%u acknowledged to %s%u, "
                           "held by nobody)\n",
                           b->devs[e->d].s, b->unit, e->j, b->holder, e->u);
                else
                    printf("verify: FAIL (%s %s%u acknowledged to %s%u, "
                           "held by %s%u)\n",
                           b->devs[e->d].s, b->unit, e->j, b->holder, e->u,
                           b->holder, held[cell] - 1);
            }
        }
    }
    for (uint64_t cell = 0; cell < cells; cell++)
        if (held[cell] != 0 && acked[cell] == 0)
            v->phantoms++;
    free(acked);
    free(twice);
}

static int
run_booking(const struct wopts *o, const struct target *t, int durability,
            struct hf_bench_result *res)
{
    struct bk b = {.ndev = (uint32_t)o->actors,
                   .nslots = (uint32_t)o->slots,
                   .timeslot = o->timeslot,
                   .t0 = (hf_now_ms() / TS_UNIT_MS + 60) * TS_UNIT_MS,
                   .unit = o->timeslot ? "unit " : "slot s",
                   .holder = o->timeslot ? "booking " : "u"};
    struct crun r = {.cmd = BOOKING,
                     .wl = o->timeslot ? &ts_load : &bk_load,
                     .wl_arg = &b,
                     .t = t,
                     .nactors = b.ndev,
                     .window = (uint32_t)o->window,
                     .nconns = (uint32_t)o->clients,
                     .rate = o->rate,
                     .total = o->has_ops ? (uint64_t)o->ops : 0};
    int nthreads = (int)(o->threads < o->clients ? o->threads : o->clients);
    struct caller **cl = NULL;
    struct bkthr *thr = NULL;
    struct ctotal tot = {0};
    struct readback rb = {.b = &b};
    struct bkverdict v = {0};
    struct wb_span sp;
    struct name *names;
    char tag[16];
    int ok = 0, rv = HF_BENCH_FAIL;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    if ((uint64_t)b.ndev * b.nslots > BK_MAX_CELL) {
        fprintf(stderr,
                "holdfast-bench %s: --devices x --slots is at most %llu\n",
                BOOKING, (unsigned long long)BK_MAX_CELL);
        return HF_BENCH_USAGE;
    }
    if (b.timeslot && b.nslots > TS_SLOTS_MAX) {
        fprintf(stderr,
                "holdfast-bench %s: --slots is at most %d with --timeslot\n",
                BOOKING, TS_SLOTS_MAX);
        return HF_BENCH_USAGE;
    }
    res->scenario = BOOKING;
    res->actors = o->actors;
    res->durability = durability;
    res->clients = (int)o->clients;
    res->window = (int)o->window;
    res->url = t->url;
    res->has_bookings = 1;
    if (r.rate > 0)
        r.rate /= nthreads; /* --rate is for all threads together */
    if ((names = wb_make_names(b.ndev, b.timeslot ? "timeslot/bk" : "device/bk",
                               tag, sizeof(tag))) == NULL)
        return HF_BENCH_FAIL;
    b.devs = names;
    r.names = names;
    printf("%s: %lld users (connections) over %d threads to %s (%s), window "
           "%lld, %u %s/bk<i>.%s x %u %s, ",
           BOOKING, o->clients, nthreads, t->url,
           t->msgpack ? "msgpack" : "JSON", o->window, b.ndev,
           b.timeslot ? "timeslot" : "device", tag, b.nslots,
           b.timeslot ? "units of a minute" : "slots");
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld reservations\n", o->ops);
    fflush(stdout);
    if ((cl = wb_callers_new(&r, nthreads)) == NULL ||
        (thr = calloc((size_t)nthreads, sizeof(*thr))) == NULL)
        goto out;
    for (int i = 0; i < nthreads; i++)
        cl[i]->wl_state = &thr[i];
    if (wb_run(&r, cl, nthreads, duration, "answered", &sp) != 0 ||
        wb_ctotal_merge(&tot, cl, nthreads, r.nactors) != 0)
        goto out;
    res->seconds = (double)(sp.t1 - sp.t0) / 1e9;
    res->ok_ops = tot.ok;
    res->refused = tot.refused;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->ops = tot.ok + tot.refused + tot.errors + tot.bad_value;
    hf_bench_result_fill(res, tot.lat, &sp.s0.m, &sp.s1.m);
    printf("%s: %" PRIu64 " %s acknowledged, %" PRIu64
           " conflicts (%s), %" PRIu64
           " errors; %.0f decisions/s\n",
           BOOKING, tot.ok, b.timeslot ? "bookings" : "reservations",
           tot.refused,
           b.timeslot ? "overlap or the per-user limit" : "slot already held",
           tot.errors,
           res->seconds > 0 ? (double)(tot.ok + tot.refused) / res->seconds
                            : 0.0);

    /* The verdict. */
    ok = wb_callers_ok(&tot, cl, nthreads, "client");
    for (int i = 0; i < nthreads; i++)
        if (thr[i].oom) {
            printf("verify: FAIL (out of memory remembering wins)\n");
            ok = 0;
            break;
        }
    if (o->tamper && tamper(t, &b, cl, nthreads) != 0)
        ok = 0;
    if ((rb.held = calloc((uint64_t)b.ndev * b.nslots, sizeof(*rb.held))) ==
            NULL ||
        wb_call_each(BOOKING, t, names, b.ndev, b.timeslot ? "list" : "get",
                     BK_READ_WINDOW, b.timeslot ? got_slots : got_device,
                     &rb) != 0) {
        ok = 0;
    } else {
        judge(&b, cl, nthreads, rb.held, &v);
        res->double_bookings = v.double_bookings;
        res->lost_acks = v.lost_acks;
        if (rb.dup || rb.foreign) {
            printf("verify: FAIL (devices list %" PRIu64
                   " slots twice and %" PRIu64 " reservations this run did "
                   "not make)\n",
                   rb.dup, rb.foreign);
            ok = 0;
        }
        if (v.double_bookings || v.lost_acks)
            ok = 0;
        if (v.phantoms > 0 && tot.lost_calls == 0) {
            printf("verify: FAIL (%" PRIu64 " slots are held although no "
                   "reply acknowledged them)\n",
                   v.phantoms);
            ok = 0;
        }
        if (b.timeslot)
            printf("%s: %" PRIu64 " doubly booked units, %" PRIu64
                   " lost acknowledged units (%" PRIu64 " units acknowledged; "
                   "the timelines hold %" PRIu64 " bookings)\n",
                   BOOKING, v.double_bookings, v.lost_acks, v.wins,
                   rb.reservations);
        else
            printf("%s: %" PRIu64 " double bookings, %" PRIu64
                   " lost acknowledged bookings (%" PRIu64
                   " acknowledged, %" PRIu64 " of them repeats by the holder; "
                   "the devices hold %" PRIu64 ")\n",
                   BOOKING, v.double_bookings, v.lost_acks, v.wins, v.dup_wins,
                   rb.reservations);
    }
    res->verified = ok;
    hf_bench_extra(
        res, "decisions_per_sec",
        res->seconds > 0 ? (double)(tot.ok + tot.refused) / res->seconds : 0.0);
    if (ok)
        printf("verify: OK (0 double bookings, 0 lost acknowledged "
               "bookings; every slot the devices hold was acknowledged to "
               "its holder) [fresh connection]\n");
    else
        printf("verify: FAIL [%s]\n", BOOKING);
    wb_note_limits(BOOKING, &sp.s0, &sp.s1, tot.errs[-HF_ERATELIMIT], res->ops);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    wb_ctotal_free(&tot);
    free(rb.held);
    for (int i = 0; thr && i < nthreads; i++)
        free(thr[i].v);
    free(thr);
    wb_free_callers(cl, nthreads);
    free(names);
    return rv;
}

static void
booking_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench booking [flags]\n"
          "\n"
          "C users, each its own WebSocket connection (spread over T threads "
          "that poll()\n"
          "their sockets), race for the slots of D fresh devices "
          "device/bk<i>.<tag>: every\n"
          "call is device.reserve {slot, user} on a device and a slot of S "
          "picked at\n"
          "random, W calls in flight per user. The answer is the reservation "
          "(the user won\n"
          "the slot) or conflict (another user holds it). ops/s counts "
          "acknowledged\n"
          "reservations; conflicts are shown apart. Latency runs from writing "
          "a call to\n"
          "reading its answer.\n"
          "\n"
          "Afterwards every device is read back (device.get) through a fresh "
          "connection:\n"
          "0 double bookings (no slot acknowledged to two users) and 0 lost "
          "acknowledged\n"
          "bookings (every acknowledged slot held by its user) are required, "
          "and no slot\n"
          "may be held without an acknowledgement. Else FAIL, exit 1.\n"
          "\n"
          "--timeslot races on the Lua kind timeslot instead (serve with "
          "--kinds\n"
          "examples/kinds): timeslot/bk<i>.<tag> are timelines of S units "
          "of a minute, and\n"
          "a call books 1 or 2 units at random, so attempts overlap partly "
          "or wholly.\n"
          "Read back with timeslot.list, same verdicts.\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(out, f, n, "");
}

int
hf_bench_booking(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = BOOKING, .usage = booking_usage, .run = run_booking};
    struct wopts o = {.clients = BK_CLIENTS,
                      .window = BK_WINDOW,
                      .threads = wb_ncores(),
                      .actors = BK_DEVICES,
                      .slots = BK_SLOTS,
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "clients",
         .metavar = "C",
         .type = HF_BF_INT,
         .dst = &o.clients,
         .min = 1,
         .max = MAX_CONNS,
         .help = "users, one WebSocket connection each (default 50)"},
        {.name = "devices",
         .metavar = "D",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = BK_MAX_DEVS,
         .help = "devices (default 1000)"},
        {.name = "slots",
         .metavar = "S",
         .type = HF_BF_INT,
         .dst = &o.slots,
         .min = 1,
         .max = 1000000,
         .help = "slots per device (default 1000)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "calls in flight per user (default 16)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "calls per second, all users together (default 0: as "
                 "fast as the window allows)"},
        {.name = "tamper",
         .metavar = "",
         .type = HF_BF_BOOL,
         .dst = &o.tamper,
         .help = "for tests: cancel one acknowledged booking before the "
                 "check, which must then FAIL"},
        {.name = "timeslot",
         .metavar = "",
         .type = HF_BF_BOOL,
         .dst = &o.timeslot,
         .help = "race on the Lua kind timeslot (a server started with "
                 "--kinds examples/kinds) for ranges of 1 or 2 units of "
                 "S <= 100: timeslot.book {start, end, user}"},
    };

    size_t n = 7;

    wb_span_flags(f, &n, &o, "client threads (default: one per core)",
                  "make N reserve calls in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
