/*
 * mix.c - holdfast-bench mix: a blend of the five kinds the way a small
 * business's apps use them - a waiting room, bookable devices, chat, a
 * lunch vote and notification inboxes - against a running server, with
 * an exact check of each kind's state afterwards.
 *
 * Design notes
 * ------------
 * C connections (one user each, "u<connection>") keep W calls in flight
 * through the callers of wscall.c. Each call is drawn from this table
 * (weights in percent):
 *
 *   store/mx<i>   register {name, party}          10   write
 *   device/mx<i>  reserve {slot, user}            15   write, may conflict
 *   device/mx<i>  heartbeat                        5   write
 *   room/mx<i>    send {body, client_id}          20   write
 *   room/mx<i>    history {limit: 20}             10   read
 *   poll/mx<i>    vote {option, voter}            10   write (re-votes move)
 *   poll/mx<i>    tally                            5   read
 *   user/mx<i>    notify {title, message, ...}    10   write
 *   user/mx<i>    list {limit: 10}                10   read
 *   device/mx<i>  report {status}                  5   write
 *
 * with N actors of each kind (--actors) picked uniformly. Polls are
 * configured (options a, b, c) before the run starts. With auth off every
 * caller has every role, so staff, admin and service methods need no
 * tokens; names (guests, voters, holders) are passed explicitly.
 *
 * The verdict, read back through a fresh connection after the run:
 *   store   waiting (list) == registrations acknowledged;
 *   device  no slot acknowledged to two users; every acknowledged slot
 *           held by its user; as many reservations as distinct slots won;
 *   room    the acknowledged message ids of a room are exactly 1..k and
 *           the newest message in history is k;
 *   poll    tally total == distinct voters with an acknowledged vote;
 *   user    acknowledged notification ids are exactly 1..k and the
 *           newest item in the inbox is k.
 * Only conflict (a slot already held) is an expected refusal; any other
 * error reply fails the run.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/ws.h"
#include "core/env.h"
#include "core/err.h"

#define MIX         "mix"
#define MX_CLIENTS  50
#define MX_WINDOW   8
#define MX_ACTORS   20
#define MX_SLOTS    200 /* per device */
#define MX_MAX_ACTS 10000
#define MX_MAX_CONN 100000

enum { K_STORE = 0, K_DEVICE, K_ROOM, K_POLL, K_USER, K_COUNT };

static const char *const kind_names[K_COUNT] = {"store", "device", "room",
                                                "poll", "user"};

enum {
    O_REGISTER = 0,
    O_RESERVE,
    O_HEARTBEAT,
    O_SEND,
    O_HISTORY,
    O_VOTE,
    O_TALLY,
    O_NOTIFY,
    O_LIST,
    O_REPORT,
    O_COUNT
};

static const struct op {
    const char *label; /* kind.method, for the per-op table */
    int kind;
    const char *method;
    int weight;
} ops[O_COUNT] = {
    [O_REGISTER] = {"store.register", K_STORE, "register", 10},
    [O_RESERVE] = {"device.reserve", K_DEVICE, "reserve", 15},
    [O_HEARTBEAT] = {"device.heartbeat", K_DEVICE, "heartbeat", 5},
    [O_SEND] = {"room.send", K_ROOM, "send", 20},
    [O_HISTORY] = {"room.history", K_ROOM, "history", 10},
    [O_VOTE] = {"poll.vote", K_POLL, "vote", 10},
    [O_TALLY] = {"poll.tally", K_POLL, "tally", 5},
    [O_NOTIFY] = {"user.notify", K_USER, "notify", 10},
    [O_LIST] = {"user.list", K_USER, "list", 10},
    [O_REPORT] = {"device.report", K_DEVICE, "report", 5},
};

/* Read-only while running (crun.wl_arg). */
struct mx {
    uint32_t nact, nslots, nconns;
    const struct name *names[K_COUNT];
    uint8_t pick[100]; /* percent -> op */
};

/* What one thread saw acknowledged. */
struct win {
    uint32_t d, j, u;
};

struct mxthr {
    uint64_t done[O_COUNT], refused[O_COUNT], failed[O_COUNT];
    struct hf_bench_lat *lat;   /* per op */
    uint64_t *regs;             /* per store */
    uint64_t *rsum, *rmax, *rn; /* per room: ids acknowledged */
    uint64_t *usum, *umax, *un; /* per user inbox */
    uint8_t *voted;             /* [poll * nconns + conn] */
    struct win *wins;
    size_t nwins, capwins;
    uint64_t bad; /* ok replies without what they promise */
    int oom;
};

/* ------------------------------------------------------------------ */
/* building calls                                                      */

/* One argument of a call. */
struct arg {
    const char *key;
    const char *s; /* a string, or NULL for the integer i */
    int64_t i;
};

static void
put_call(hf_buf *b, int msgpack, uint64_t id, const struct name *to,
         const char *method, const struct arg *a, int n)
{
    if (!msgpack) {
        char tmp[512];
        int len = snprintf(tmp, sizeof(tmp),
                           "%s{\"op\":\"call\",\"id\":%" PRIu64
                           ",\"to\":\"%s\",\"method\":\"%s\"",
                           b->len ? "\n" : "", id, to->s, method);
        for (int k = 0; k < n; k++) {
            const char *pre = k == 0 ? ",\"args\":{" : ",";
            if (a[k].s)
                len += snprintf(tmp + len, sizeof(tmp) - (size_t)len,
                                "%s\"%s\":\"%s\"", pre, a[k].key, a[k].s);
            else
                len += snprintf(tmp + len, sizeof(tmp) - (size_t)len,
                                "%s\"%s\":%" PRId64, pre, a[k].key, a[k].i);
        }
        len +=
            snprintf(tmp + len, sizeof(tmp) - (size_t)len, "%s}", n ? "}" : "");
        hf_buf_append(b, tmp, (size_t)len);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, n ? 5 : 4);
    hf_pack_cstr(&pk, "op");
    hf_pack_cstr(&pk, "call");
    hf_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    hf_pack_cstr(&pk, "to");
    hf_pack_str(&pk, to->s, to->len);
    hf_pack_cstr(&pk, "method");
    hf_pack_cstr(&pk, method);
    if (n == 0)
        return;
    hf_pack_cstr(&pk, "args");
    msgpack_pack_map(&pk, (size_t)n);
    for (int k = 0; k < n; k++) {
        hf_pack_cstr(&pk, a[k].key);
        if (a[k].s)
            hf_pack_cstr(&pk, a[k].s);
        else
            msgpack_pack_int64(&pk, a[k].i);
    }
}

/* The actor index is kind * nact + i; sent_aux[s] packs the op (low 4
 * bits) and, for reserve, the slot. */
static uint32_t
mx_put(struct caller *c, struct cconn *k, uint32_t s, uint64_t id)
{
    const struct mx *x = c->r->wl_arg;
    int op = x->pick[wb_rnd(&c->rng) % 100];
    int kind = ops[op].kind;
    uint32_t i = (uint32_t)(wb_rnd(&c->rng) % x->nact), j = 0;
    char user[16], s1[32], s2[48];
    struct arg a[4];
    int n = 0;

    snprintf(user, sizeof(user), "u%u", k->idx);
    switch (op) {
    case O_REGISTER:
        a[n++] = (struct arg){"name", user, 0};
        a[n++] = (struct arg){"party", NULL, 1 + (int64_t)(k->seq % 6)};
        break;
    case O_RESERVE:
        j = (uint32_t)(wb_rnd(&c->rng) % x->nslots);
        snprintf(s1, sizeof(s1), "s%u", j);
        a[n++] = (struct arg){"slot", s1, 0};
        a[n++] = (struct arg){"user", user, 0};
        break;
    case O_REPORT:
        a[n++] = (struct arg){"status", k->seq % 2 ? "in_use" : "available", 0};
        break;
    case O_SEND:
        snprintf(s1, sizeof(s1), "hello %" PRIu64, k->seq);
        snprintf(s2, sizeof(s2), "%s-%" PRIu64, user, k->seq);
        a[n++] = (struct arg){"body", s1, 0};
        a[n++] = (struct arg){"client_id", s2, 0};
        break;
    case O_HISTORY:
        a[n++] = (struct arg){"limit", NULL, 20};
        break;
    case O_VOTE:
        a[n++] = (struct arg){
            "option", (const char *[]){"a", "b", "c"}[wb_rnd(&c->rng) % 3], 0};
        a[n++] = (struct arg){"voter", user, 0};
        break;
    case O_NOTIFY:
        snprintf(s1, sizeof(s1), "from %s", user);
        a[n++] = (struct arg){"title", "Order ready", 0};
        a[n++] = (struct arg){"message", s1, 0};
        a[n++] = (struct arg){"priority", "low", 0};
        break;
    case O_LIST:
        a[n++] = (struct arg){"limit", NULL, 10};
        break;
    default: /* heartbeat, tally: no args */
        break;
    }
    put_call(&c->frame, c->r->t->msgpack, id, &x->names[kind][i],
             ops[op].method, a, n);
    k->sent_aux[s] = (uint32_t)op | j << 4;
    return (uint32_t)kind * x->nact + i;
}

/* result.id of an ok reply (room.send, user.notify), or 0. */
static uint64_t
result_id(const struct smsg *m)
{
    static const char k[] = "{\"id\":";
    uint64_t v = 0;

    if (m->result != NULL && m->result_len > sizeof(k) &&
        memcmp(m->result, k, sizeof(k) - 1) == 0) {
        for (size_t p = sizeof(k) - 1;
             p < m->result_len && m->result[p] >= '0' && m->result[p] <= '9';
             p++)
            v = v * 10 + (uint64_t)(m->result[p] - '0');
        return v;
    }
    json_t *o = wb_result_json(m);
    json_t *id = json_object_get(o, "id");
    if (json_is_integer(id) && json_integer_value(id) > 0)
        v = (uint64_t)json_integer_value(id);
    json_decref(o);
    return v;
}

static int
mx_reply(struct caller *c, struct cconn *k, uint32_t s, const struct smsg *m)
{
    const struct mx *x = c->r->wl_arg;
    struct mxthr *w = c->wl_state;
    int op = (int)(k->sent_aux[s] & 15);
    uint32_t a = k->sent_actor[s] % x->nact, j = k->sent_aux[s] >> 4;
    uint64_t id;

    hf_bench_lat_add(&w->lat[op], c->rd.now - k->sent_ns[s]);
    if (!m->ok) {
        if (op == O_RESERVE && m->err == HF_ECONFLICT) {
            w->refused[op]++;
            return WR_REFUSED;
        }
        w->failed[op]++;
        return WR_ERROR;
    }
    w->done[op]++;
    switch (op) {
    case O_REGISTER:
        w->regs[a]++;
        break;
    case O_RESERVE:
        if (w->nwins == w->capwins) {
            size_t cap = w->capwins ? w->capwins * 2 : 4096;
            struct win *v = realloc(w->wins, cap * sizeof(*v));
            if (v == NULL) {
                w->oom = 1;
                break;
            }
            w->wins = v;
            w->capwins = cap;
        }
        w->wins[w->nwins++] = (struct win){a, j, k->idx};
        break;
    case O_SEND:
    case O_NOTIFY:
        if ((id = result_id(m)) == 0) {
            w->bad++;
            break;
        }
        if (op == O_SEND) {
            w->rn[a]++, w->rsum[a] += id;
            if (id > w->rmax[a])
                w->rmax[a] = id;
        } else {
            w->un[a]++, w->usum[a] += id;
            if (id > w->umax[a])
                w->umax[a] = id;
        }
        break;
    case O_VOTE:
        w->voted[(uint64_t)a * x->nconns + k->idx] = 1;
        break;
    default:
        break;
    }
    return WR_OK;
}

static const struct wload mx_load = {.put = mx_put, .reply = mx_reply};

/* ------------------------------------------------------------------ */
/* reading back                                                        */

struct rb {
    const struct mx *x;
    int kind;
    int64_t *num;   /* per actor: waiting, total, or the newest id */
    uint32_t *held; /* device: [d * nslots + j] = holder + 1 */
    uint64_t *nres; /* device: reservations per device */
    uint64_t foreign;
};

static int
got_state(void *arg, uint32_t a, const struct smsg *m)
{
    struct rb *r = arg;
    json_t *o = wb_result_json(m), *v, *e;
    size_t i;
    int rv = 0;

    if (o == NULL)
        return -1;
    switch (r->kind) {
    case K_STORE:
        v = json_object_get(o, "waiting");
        rv = json_is_integer(v) ? (r->num[a] = json_integer_value(v), 0) : -1;
        break;
    case K_POLL:
        v = json_object_get(o, "total");
        rv = json_is_integer(v) ? (r->num[a] = json_integer_value(v), 0) : -1;
        break;
    case K_ROOM:
    case K_USER:
        /* history (oldest first) or list (newest first): the largest id */
        v = json_object_get(o, r->kind == K_ROOM ? "messages" : "items");
        if (!json_is_array(v)) {
            rv = -1;
            break;
        }
        r->num[a] = 0;
        json_array_foreach(v, i, e)
        {
            json_t *id = json_object_get(e, "id");
            if (json_is_integer(id) && json_integer_value(id) > r->num[a])
                r->num[a] = json_integer_value(id);
        }
        break;
    case K_DEVICE:
        v = json_object_get(o, "reservations");
        if (!json_is_array(v)) {
            rv = -1;
            break;
        }
        json_array_foreach(v, i, e)
        {
            const char *slot = json_string_value(json_object_get(e, "slot"));
            const char *user = json_string_value(json_object_get(e, "user"));
            char *end;
            unsigned long j, u;
            if (slot == NULL || user == NULL || slot[0] != 's' ||
                user[0] != 'u') {
                r->foreign++;
                continue;
            }
            j = strtoul(slot + 1, &end, 10);
            u = *end == '\0' ? strtoul(user + 1, &end, 10) : 0;
            if (*end != '\0' || j >= r->x->nslots || u >= r->x->nconns) {
                r->foreign++;
                continue;
            }
            r->held[(uint64_t)a * r->x->nslots + j] = (uint32_t)u + 1;
            r->nres[a]++;
        }
        break;
    }
    json_decref(o);
    return rv;
}

static uint64_t
tri(uint64_t k)
{
    return k % 2 ? k * ((k + 1) / 2) : (k / 2) * (k + 1);
}

/* Reads every actor back and checks it against what the threads saw
 * acknowledged. Returns the number of disagreements (printed, up to
 * SHOW per kind), or -1 when the state could not be read. */
static int64_t
judge(const struct target *t, const struct mx *x, struct caller **cl, int n)
{
    uint32_t na = x->nact;
    uint64_t *sum = calloc(na * 3, sizeof(uint64_t));
    int64_t *num = calloc(na, sizeof(int64_t));
    uint32_t *held = calloc((uint64_t)na * x->nslots, sizeof(uint32_t));
    uint32_t *acked = calloc((uint64_t)na * x->nslots, sizeof(uint32_t));
    uint64_t *nres = calloc(na, sizeof(uint64_t));
    uint8_t *voted = calloc((uint64_t)na * x->nconns, 1);
    int64_t bad = 0, shown;
    struct rb r = {.x = x, .num = num, .held = held, .nres = nres};

    if (!sum || !num || !held || !acked || !nres || !voted) {
        bad = -1;
        goto out;
    }
    for (int kind = 0; kind < K_COUNT && bad >= 0; kind++) {
        static const char *const read_method[K_COUNT] = {
            "list", "get", "history", "tally", "list"};
        r.kind = kind;
        memset(sum, 0, na * 3 * sizeof(uint64_t));
        /* One read in flight: a store's list grows with the run (every
         * registration stays waiting) and must stay under the server's
         * --outbuf-max. */
        if (wb_call_each(MIX, t, x->names[kind], na, read_method[kind], 1,
                         got_state, &r) != 0 ||
            r.foreign > 0) {
            if (r.foreign)
                printf("verify: FAIL (%" PRIu64 " reservations this run did "
                       "not make)\n",
                       r.foreign);
            bad = -1;
            break;
        }
        shown = 0;
        for (int i = 0; i < n; i++) {
            const struct mxthr *w = cl[i]->wl_state;
            for (uint32_t a = 0; a < na; a++) {
                if (kind == K_STORE)
                    sum[a] += w->regs[a];
                else if (kind == K_ROOM || kind == K_USER) {
                    const uint64_t *cn = kind == K_ROOM ? w->rn : w->un;
                    const uint64_t *cs = kind == K_ROOM ? w->rsum : w->usum;
                    const uint64_t *cm = kind == K_ROOM ? w->rmax : w->umax;
                    sum[a] += cn[a];
                    sum[na + a] += cs[a];
                    if (cm[a] > sum[2 * na + a])
                        sum[2 * na + a] = cm[a];
                }
            }
            if (kind == K_POLL)
                for (uint64_t v = 0; v < (uint64_t)na * x->nconns; v++)
                    voted[v] |= w->voted[v];
            if (kind == K_DEVICE)
                for (size_t e = 0; e < w->nwins; e++) {
                    const struct win *q = &w->wins[e];
                    uint64_t cell = (uint64_t)q->d * x->nslots + q->j;
                    if (acked[cell] != 0 && acked[cell] != q->u + 1) {
                        if (shown++ < SHOW)
                            printf("verify: FAIL (%s slot s%u acknowledged "
                                   "to u%u and u%u)\n",
                                   x->names[K_DEVICE][q->d].s, q->j,
                                   acked[cell] - 1, q->u);
                        bad++;
                    }
                    acked[cell] = q->u + 1;
                    if (held[cell] != q->u + 1) {
                        if (shown++ < SHOW)
                            printf("verify: FAIL (%s slot s%u acknowledged "
                                   "to u%u is not held by it)\n",
                                   x->names[K_DEVICE][q->d].s, q->j, q->u);
                        bad++;
                    }
                }
        }
        for (uint32_t a = 0; a < na; a++) {
            const char *nm = x->names[kind][a].s;
            if (kind == K_STORE && (uint64_t)num[a] != sum[a]) {
                if (shown++ < SHOW)
                    printf("verify: FAIL (%s: %" PRId64 " waiting, %" PRIu64
                           " registrations acknowledged)\n",
                           nm, num[a], sum[a]);
                bad++;
            } else if ((kind == K_ROOM || kind == K_USER) &&
                       (sum[2 * na + a] != sum[a] ||
                        sum[na + a] != tri(sum[a]) ||
                        (uint64_t)num[a] != sum[a])) {
                if (shown++ < SHOW)
                    printf("verify: FAIL (%s: %" PRIu64
                           " acknowledged with ids up to %" PRIu64
                           ", the newest it holds is %" PRId64 ")\n",
                           nm, sum[a], sum[2 * na + a], num[a]);
                bad++;
            } else if (kind == K_POLL) {
                uint64_t voters = 0;
                for (uint32_t u = 0; u < x->nconns; u++)
                    voters += voted[(uint64_t)a * x->nconns + u];
                if ((uint64_t)num[a] != voters) {
                    if (shown++ < SHOW)
                        printf("verify: FAIL (%s: total %" PRId64 ", %" PRIu64
                               " voters acknowledged)\n",
                               nm, num[a], voters);
                    bad++;
                }
            } else if (kind == K_DEVICE) {
                uint64_t won = 0;
                for (uint32_t j = 0; j < x->nslots; j++)
                    won += acked[(uint64_t)a * x->nslots + j] != 0;
                if (won != nres[a]) {
                    if (shown++ < SHOW)
                        printf("verify: FAIL (%s holds %" PRIu64
                               " reservations, %" PRIu64
                               " slots acknowledged)\n",
                               nm, nres[a], won);
                    bad++;
                }
            }
        }
    }
out:
    free(sum);
    free(num);
    free(held);
    free(acked);
    free(nres);
    free(voted);
    return bad;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void
mxthr_free(struct mxthr *w)
{
    free(w->lat);
    free(w->regs);
    free(w->rsum);
    free(w->rmax);
    free(w->rn);
    free(w->usum);
    free(w->umax);
    free(w->un);
    free(w->voted);
    free(w->wins);
}

static int
mxthr_init(struct mxthr *w, const struct mx *x)
{
    uint32_t na = x->nact;

    w->lat = calloc(O_COUNT, sizeof(*w->lat));
    w->regs = calloc(na, sizeof(uint64_t));
    w->rsum = calloc(na, sizeof(uint64_t));
    w->rmax = calloc(na, sizeof(uint64_t));
    w->rn = calloc(na, sizeof(uint64_t));
    w->usum = calloc(na, sizeof(uint64_t));
    w->umax = calloc(na, sizeof(uint64_t));
    w->un = calloc(na, sizeof(uint64_t));
    w->voted = calloc((uint64_t)na * x->nconns, 1);
    return w->lat && w->regs && w->rsum && w->rmax && w->rn && w->usum &&
                   w->umax && w->un && w->voted
               ? 0
               : -1;
}

/* Counts the answers to configure_polls' calls. */
struct cfgd {
    uint32_t answered;
    int err;
};

static void
on_configured(void *arg, const struct smsg *m)
{
    struct cfgd *c = arg;

    if (m->op != M_REPLY)
        return;
    c->answered++;
    if (!m->ok && c->err == 0)
        c->err = m->err ? m->err : HF_EINTERNAL;
}

/* Configures every poll with options a, b, c (admin: auth is off). */
static int
configure_polls(const struct target *t, const struct mx *x)
{
    struct reader rd = {0};
    struct cfgd cd = {0};
    hf_ws *ws = NULL;
    hf_buf frame = {0};
    uint64_t dl = hf_mono_ns() + (uint64_t)VERIFY_S * 1000000000u;
    int rv, err, code;

    wb_reader_init(&rd);
    if ((rv = wb_dial(MIX, t, 0, 1, &ws)) != 0)
        goto out;
    for (uint32_t a = 0; a < x->nact; a++) {
        if (!t->msgpack) {
            char tmp[NAME_CAP + 160];
            int n =
                snprintf(tmp, sizeof(tmp),
                         "%s{\"op\":\"call\",\"id\":%u,\"to\":\"%s\","
                         "\"method\":\"configure\",\"args\":{\"options\":"
                         "[\"a\",\"b\",\"c\"]}}",
                         frame.len ? "\n" : "", a + 1, x->names[K_POLL][a].s);
            hf_buf_append(&frame, tmp, (size_t)n);
        } else {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &frame, hf_buf_mpwrite);
            msgpack_pack_map(&pk, 5);
            hf_pack_cstr(&pk, "op");
            hf_pack_cstr(&pk, "call");
            hf_pack_cstr(&pk, "id");
            msgpack_pack_uint32(&pk, a + 1);
            hf_pack_cstr(&pk, "to");
            hf_pack_str(&pk, x->names[K_POLL][a].s, x->names[K_POLL][a].len);
            hf_pack_cstr(&pk, "method");
            hf_pack_cstr(&pk, "configure");
            hf_pack_cstr(&pk, "args");
            msgpack_pack_map(&pk, 1);
            hf_pack_cstr(&pk, "options");
            msgpack_pack_array(&pk, 3);
            hf_pack_cstr(&pk, "a");
            hf_pack_cstr(&pk, "b");
            hf_pack_cstr(&pk, "c");
        }
        if ((a + 1) % 64 == 0 || a + 1 == x->nact) {
            if ((rv = wb_send_frame(ws, t->msgpack, &frame)) != 0)
                goto out;
            frame.len = 0;
        }
    }
    while (cd.answered < x->nact && cd.err == 0) {
        struct pollfd p = {.fd = hf_ws_fd(ws), .events = POLLIN};
        if (hf_mono_ns() > dl) {
            rv = HF_ETIMEOUT;
            goto out;
        }
        if (!hf_ws_pending(ws) && poll(&p, 1, 1000) <= 0)
            continue;
        if (wb_drain(&rd, ws, on_configured, &cd, &err, &code) != 0) {
            rv = err ? err : HF_EUNAVAIL;
            goto out;
        }
    }
    rv = cd.err;
out:
    if (rv != 0)
        printf("FAIL: %s: configuring the polls: %s\n", MIX, hf_err_name(rv));
    hf_ws_close(ws);
    hf_buf_free(&frame);
    wb_reader_fini(&rd);
    return rv;
}

static int
run_mix(const struct wopts *o, const struct target *t, int durability,
        struct hf_bench_result *res)
{
    struct mx x = {.nact = (uint32_t)o->actors,
                   .nslots = (uint32_t)o->slots,
                   .nconns = (uint32_t)o->clients};
    struct crun r = {.cmd = MIX,
                     .wl = &mx_load,
                     .wl_arg = &x,
                     .t = t,
                     .nactors = x.nact * K_COUNT,
                     .window = (uint32_t)o->window,
                     .nconns = (uint32_t)o->clients,
                     .rate = o->rate,
                     .total = o->has_ops ? (uint64_t)o->ops : 0};
    int nthreads = (int)(o->threads < o->clients ? o->threads : o->clients);
    struct caller **cl = NULL;
    struct mxthr *thr = NULL;
    struct ctotal tot = {0};
    struct wb_span sp;
    struct name *names[K_COUNT] = {0};
    char tag[16] = "", tk[16];
    int ok = 0, rv = HF_BENCH_FAIL, w = 0;
    int64_t bad;
    double duration = wb_duration(o);

    memset(res, 0, sizeof(*res));
    res->scenario = MIX;
    res->actors = o->actors * K_COUNT;
    res->durability = durability;
    res->clients = (int)o->clients;
    res->window = (int)o->window;
    res->url = t->url;
    if (r.rate > 0)
        r.rate /= nthreads;
    for (int op = 0; op < O_COUNT; op++)
        for (int k = 0; k < ops[op].weight && w < 100; k++)
            x.pick[w++] = (uint8_t)op;
    for (int k = 0; k < K_COUNT; k++) {
        char base[32];
        snprintf(base, sizeof(base), "%s/mx", kind_names[k]);
        if ((names[k] = wb_make_names(x.nact, base, tk, sizeof(tk))) == NULL)
            goto out;
        if (k == 0)
            memcpy(tag, tk, sizeof(tag));
        x.names[k] = names[k];
    }
    printf("%s: %lld users (connections) over %d threads to %s (%s), window "
           "%lld, %u each of store, device, room, poll, user (<kind>/mx<i>."
           "<tag>), ",
           MIX, o->clients, nthreads, t->url, t->msgpack ? "msgpack" : "JSON",
           o->window, x.nact);
    if (duration > 0)
        printf("%.1f s\n", duration);
    else
        printf("%lld calls\n", o->ops);
    fflush(stdout);
    if (configure_polls(t, &x) != 0)
        goto out;
    if ((cl = wb_callers_new(&r, nthreads)) == NULL ||
        (thr = calloc((size_t)nthreads, sizeof(*thr))) == NULL)
        goto out;
    for (int i = 0; i < nthreads; i++) {
        if (mxthr_init(&thr[i], &x) != 0)
            goto out;
        cl[i]->wl_state = &thr[i];
    }
    if (wb_run(&r, cl, nthreads, duration, "calls", &sp) != 0 ||
        wb_ctotal_merge(&tot, cl, nthreads, r.nactors) != 0)
        goto out;
    res->seconds = (double)(sp.t1 - sp.t0) / 1e9;
    res->ok_ops = tot.ok;
    res->refused = tot.refused;
    res->errors = tot.errors;
    memcpy(res->errs, tot.errs, sizeof(res->errs));
    res->ops = tot.ok + tot.refused + tot.errors + tot.bad_value;
    hf_bench_result_fill(res, tot.lat, &sp.s0.m, &sp.s1.m);

    /* Per operation. */
    printf("\n%-17s %9s %9s %8s %8s %8s\n", "operation", "ok", "refused",
           "errors", "p50_us", "p99_us");
    for (int op = 0; op < O_COUNT; op++) {
        uint64_t done = 0, refused = 0, failed = 0;
        struct hf_bench_lat *lat = calloc(1, sizeof(*lat));
        if (lat == NULL)
            goto out;
        for (int i = 0; i < nthreads; i++) {
            done += thr[i].done[op];
            refused += thr[i].refused[op];
            failed += thr[i].failed[op];
            hf_bench_lat_merge(lat, &thr[i].lat[op]);
        }
        printf("%-17s %9" PRIu64 " %9" PRIu64 " %8" PRIu64 " %8.1f %8.1f\n",
               ops[op].label, done, refused, failed,
               (double)hf_bench_lat_quantile(lat, 0.50) / 1e3,
               (double)hf_bench_lat_quantile(lat, 0.99) / 1e3);
        free(lat);
    }
    putchar('\n');

    ok = wb_callers_ok(&tot, cl, nthreads, "client");
    if (tot.errors) {
        printf("verify: FAIL (%" PRIu64 " error replies)\n", tot.errors);
        ok = 0;
    }
    for (int i = 0; i < nthreads; i++)
        if (thr[i].bad || thr[i].oom) {
            printf("verify: FAIL (ok replies without an id, or out of "
                   "memory)\n");
            ok = 0;
            break;
        }
    if (ok) {
        bad = judge(t, &x, cl, nthreads);
        if (bad != 0) {
            if (bad > 0)
                printf("verify: FAIL (%" PRId64 " disagreements in all)\n",
                       bad);
            ok = 0;
        }
    }
    res->verified = ok;
    if (ok)
        printf("verify: OK (every store holds its registrations, no slot "
               "acknowledged twice or lost, rooms and inboxes hold ids 1..k "
               "of k acknowledged, poll totals = voters) [fresh "
               "connection]\n");
    else
        printf("verify: FAIL [%s]\n", MIX);
    wb_note_limits(MIX, &sp.s0, &sp.s1, tot.errs[-HF_ERATELIMIT], res->ops);
    fflush(stdout);
    rv = ok ? HF_BENCH_OK : HF_BENCH_FAIL;
out:
    wb_ctotal_free(&tot);
    for (int i = 0; thr && i < nthreads; i++)
        mxthr_free(&thr[i]);
    free(thr);
    wb_free_callers(cl, nthreads);
    for (int k = 0; k < K_COUNT; k++)
        free(names[k]);
    return rv;
}

static void
mix_usage(FILE *out, const struct hf_bench_flag *f, size_t n)
{
    fputs("usage: holdfast-bench mix [flags]\n"
          "\n"
          "C users, one WebSocket connection each, keep W calls in flight on "
          "N fresh actors\nof each kind: store.register 10%, device.reserve "
          "15%, device.heartbeat 5%,\ndevice.report 5%, room.send 20%, "
          "room.history 10%, poll.vote 10%, poll.tally 5%,\nuser.notify 10%, "
          "user.list 10%. Latency and counts are shown per operation;\n"
          "ops/s counts ok replies, conflicts (a slot already held) are "
          "shown apart.\n"
          "\n"
          "Afterwards every actor is read back through a fresh connection "
          "and must hold\nexactly what was acknowledged (see bench/mix.c); "
          "any other error reply also\nfails the run (exit 1).\n"
          "\n"
          "flags:\n",
          out);
    wb_usage_tail(out, f, n, "");
}

int
hf_bench_mix(int argc, char **argv)
{
    static const struct wscen sc = {
        .name = MIX, .usage = mix_usage, .run = run_mix};
    struct wopts o = {.clients = MX_CLIENTS,
                      .window = MX_WINDOW,
                      .threads = wb_ncores(),
                      .actors = MX_ACTORS,
                      .slots = MX_SLOTS,
                      .url = DEF_URL};
    struct hf_bench_flag f[MAX_FLAGS] = {
        {.name = "clients",
         .metavar = "C",
         .type = HF_BF_INT,
         .dst = &o.clients,
         .min = 1,
         .max = MX_MAX_CONN,
         .help = "users, one connection each (default 50)"},
        {.name = "actors",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o.actors,
         .min = 1,
         .max = MX_MAX_ACTS,
         .help = "actors of each kind (default 20)"},
        {.name = "slots",
         .metavar = "S",
         .type = HF_BF_INT,
         .dst = &o.slots,
         .min = 1,
         .max = 100000,
         .help = "slots per device (default 200)"},
        {.name = "window",
         .metavar = "W",
         .type = HF_BF_INT,
         .dst = &o.window,
         .min = 1,
         .max = MAX_WINDOW,
         .help = "calls in flight per user (default 8)"},
        {.name = "rate",
         .metavar = "R",
         .type = HF_BF_DOUBLE,
         .dst = &o.rate,
         .min = 0,
         .max = 1e9,
         .help = "calls per second in all (default 0: as fast as the "
                 "window allows)"},
    };
    size_t n = 5;

    wb_span_flags(f, &n, &o, "client threads (default: one per core)",
                  "make N calls in all instead");
    return wb_ws_main(&sc, &o, f, n, argc, argv);
}
