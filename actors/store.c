/*
 * store.c - store/NAME: the waiting list of a restaurant or a shop.
 *
 *   register {name, party, phone?, class?} -> {ticket, number, position,
 *                                              waiting}             anyone
 *   call {ticket?, class?}        the ticket, or the first waiting one
 *                                 (of that class)                   staff
 *   set_status {ticket, status: called|seated|no_show|cancelled}    staff
 *   move {ticket, position}       reorders the waiting queue        staff
 *   cancel {ticket}               the guest who registered, or staff
 *   list {all?}                   called + waiting (+ today's finished)
 *   configure {utc_offset_min}    the store's time zone             staff
 * Staff is an admin or a service. Events: new_waiting, status_changed,
 * order_changed, configured. docs/kinds/store.md is the reference.
 *
 * Design notes.
 *
 * Tickets are "YYYYMMDD-N": N counts from 1 every day of the store's
 * local time (UTC + the configured offset) and the date keeps ids unique
 * for ever. The day comes from store_today() (hf_store_day of the shifted
 * clock) and the next number from hf_store_next_number (store.h) and
 * nowhere else, so the rollover is tested as a pure function. The day
 * never goes back (a smaller offset could name yesterday again, whose
 * numbers are taken): register keeps the counter's day until the local
 * day passes it. A ticket moves
 *     waiting -> called -> seated | no_show,    waiting | called -> cancelled
 * and in no other way (conflict otherwise); the table `legal` says so.
 *
 * Keys:
 *   "cfg"                  {utc_offset_min}; absent = UTC
 *   "n"                    counter: be32 day (YYYYMMDD), be32 last number
 *   "t:YYYYMMDD-NNNNNN"    ticket record, a msgpack map; the number is
 *                          zero-padded so one day's tickets sort by number
 *   "w:" be64 rank         the waiting queue in order; value = ticket id
 *   "c:" be64 at, id       called tickets in the order they were called
 * A waiting ticket has exactly one "w:" entry, a called one exactly one
 * "c:" entry, a finished one neither: the board (list) is two range scans.
 * Positions are never stored. A waiting ticket's position is its index in
 * the "w:" range + 1, so when one ticket leaves, everyone behind it moves
 * up without a write. A new ticket gets the last rank + GAP; a move takes
 * the midpoint between its new neighbours and renumbers the whole queue
 * only when they leave no room.
 *
 * Tickets stay, whatever the day, until they are finished. Finished
 * tickets of earlier days are deleted by the first registration of a new
 * day; the event log keeps their story.
 *
 * Scans collect into memory and the writes come after. (hf_list itself
 * allows writing during a visit, which goes on over the keys as they were
 * when it began: core/actor.h.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "actors/store.h"
#include "actors/util.h"
#include "core/env.h"
#include "core/vec.h"

#define NAME_MAX_ 64
#define PHONE_MAX 32
#define CLASS_MAX 32
#define BY_MAX    255
#define PARTY_MAX 100
/* UTC-12:00 .. UTC+14:00, the offsets in use on Earth. */
#define OFFSET_MIN_LO (-12 * 60)
#define OFFSET_MIN_HI (14 * 60)
#define GAP       ((uint64_t)1 << 20)

enum status { ST_WAITING, ST_CALLED, ST_SEATED, ST_NO_SHOW, ST_CANCELLED };

static const char *const status_names[] = {
    [ST_WAITING] = "waiting",     [ST_CALLED] = "called",
    [ST_SEATED] = "seated",       [ST_NO_SHOW] = "no_show",
    [ST_CANCELLED] = "cancelled",
};
#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

#define B(s) (1u << (s))
static const unsigned legal[NSTATUS] = {
    [ST_WAITING] = B(ST_CALLED) | B(ST_CANCELLED),
    [ST_CALLED] = B(ST_SEATED) | B(ST_NO_SHOW) | B(ST_CANCELLED),
};

/* What set_status accepts, in status order from ST_CALLED. */
static const char *const settable[] = {"called", "seated", "no_show",
                                       "cancelled"};

struct ticket {
    char id[HF_STORE_ID_MAX];
    uint32_t day, no;
    int status;
    int64_t party, created_at, called_at, done_at;
    char name[NAME_MAX_ + 1];
    char phone[PHONE_MAX + 1];
    char cls[CLASS_MAX + 1];
    char by[BY_MAX + 1]; /* the registering caller's sub, "" if anonymous */
};

/* ---- pure helpers (store.h) ---- */

uint32_t
hf_store_day(int64_t now_ms)
{
    int64_t days =
        now_ms >= 0 ? now_ms / 86400000 : -((-now_ms + 86399999) / 86400000);
    int64_t y;
    unsigned m, d;

    hf_util_civil_from_days(days, &y, &m, &d);
    return (uint32_t)(y * 10000 + m * 100 + d);
}

uint32_t
hf_store_next_number(uint32_t last_day, uint32_t last_no, uint32_t today)
{
    if (last_day != today)
        return 1;
    return last_no >= HF_STORE_NUMBER_MAX ? 0 : last_no + 1;
}

size_t
hf_store_ticket_id(char *out, uint32_t day, uint32_t no)
{
    int n =
        snprintf(out, HF_STORE_ID_MAX, "%08u-%u", (unsigned)day, (unsigned)no);
    return n > 0 ? (size_t)n : 0;
}

int
hf_store_ticket_parse(const char *s, size_t len, uint32_t *day, uint32_t *no)
{
    uint32_t d = 0, n = 0;
    size_t i;

    if (len < 10 || len > 15 || s[8] != '-' || s[9] == '0')
        return -1;
    for (i = 0; i < len; i++) {
        if (i == 8)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (i < 8)
            d = d * 10 + (uint32_t)(s[i] - '0');
        else
            n = n * 10 + (uint32_t)(s[i] - '0');
    }
    if (n > HF_STORE_NUMBER_MAX)
        return -1;
    *day = d;
    *no = n;
    return 0;
}

/* ---- the store's day ---- */

/* The configured offset from UTC in minutes (0 when never configured). */
static int64_t
utc_offset_min(hf_ctx *c)
{
    msgpack_zone z;
    msgpack_object o;
    int64_t off = 0;

    if (!msgpack_zone_init(&z, 64))
        return 0;
    if (hf_util_load(c, "cfg", 3, &z, &o) == 0)
        off = hf_util_field_int(&o, "utc_offset_min", 0);
    msgpack_zone_destroy(&z);
    return off;
}

/* Today as YYYYMMDD in the store's local time: the one place a handler
 * asks which day it is. */
static uint32_t
store_today(hf_ctx *c)
{
    return hf_store_day(hf_now(c) + utc_offset_min(c) * 60000);
}

/* ---- records ---- */

static size_t
tkey(char *out, size_t cap, uint32_t day, uint32_t no)
{
    int n = snprintf(out, cap, "t:%08u-%06u", (unsigned)day, (unsigned)no);
    return n > 0 ? (size_t)n : 0;
}

/* Decodes a stored ticket; the bytes need not outlive the call. */
static int
decode(hf_slice v, struct ticket *t)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    int rv = HF_EINTERNAL;

    if (!msgpack_zone_init(&z, 512))
        return HF_EINTERNAL;
    memset(t, 0, sizeof(*t));
    if (hf_unpack_next(v.data, v.len, &off, &z, &o) == 0 &&
        o.type == MSGPACK_OBJECT_MAP &&
        (t->status = hf_util_field_enum(&o, "status", status_names, NSTATUS)) >=
            0) {
        hf_util_field_copy(&o, "ticket", t->id, sizeof(t->id));
        hf_util_field_copy(&o, "name", t->name, sizeof(t->name));
        hf_util_field_copy(&o, "phone", t->phone, sizeof(t->phone));
        hf_util_field_copy(&o, "class", t->cls, sizeof(t->cls));
        hf_util_field_copy(&o, "by", t->by, sizeof(t->by));
        t->day = (uint32_t)hf_util_field_int(&o, "day", 0);
        t->no = (uint32_t)hf_util_field_int(&o, "number", 0);
        t->party = hf_util_field_int(&o, "party", 0);
        t->created_at = hf_util_field_int(&o, "created_at", 0);
        t->called_at = hf_util_field_int(&o, "called_at", 0);
        t->done_at = hf_util_field_int(&o, "done_at", 0);
        rv = 0;
    }
    msgpack_zone_destroy(&z);
    return rv;
}

static int
save(hf_ctx *c, const struct ticket *t)
{
    hf_util_rec r = {0};
    msgpack_packer *pk = hf_util_rec_begin(&r);
    char key[32];
    int rv;

    msgpack_pack_map(pk, 12);
    hf_util_kv_str(pk, "ticket", t->id);
    hf_util_kv_int(pk, "day", t->day);
    hf_util_kv_int(pk, "number", t->no);
    hf_util_kv_str(pk, "name", t->name);
    hf_util_kv_int(pk, "party", t->party);
    hf_util_kv_opt_str(pk, "phone", t->phone);
    hf_util_kv_opt_str(pk, "class", t->cls);
    hf_util_kv_str(pk, "status", status_names[t->status]);
    hf_util_kv_str(pk, "by", t->by);
    hf_util_kv_int(pk, "created_at", t->created_at);
    hf_util_kv_opt_int(pk, "called_at", t->called_at);
    hf_util_kv_opt_int(pk, "done_at", t->done_at);
    rv = hf_util_rec_put(c, &r, key, tkey(key, sizeof(key), t->day, t->no));
    hf_util_rec_free(&r);
    return rv;
}

/* Loads the ticket named by args.ticket: bad_request when malformed,
 * not_found when unknown. */
static int
load_arg(hf_ctx *c, const msgpack_object *args, struct ticket *t)
{
    const char *s;
    size_t sl;
    uint32_t day, no;
    char key[32];
    hf_slice v;
    int rv;

    if ((rv = hf_arg_str(c, args, "ticket", 1, HF_STORE_ID_MAX - 1, &s, &sl)) !=
        0)
        return rv;
    if (hf_store_ticket_parse(s, sl, &day, &no) != 0)
        return hf_fail(c, HF_EBADREQ,
                       "'ticket' must be a ticket id such as 20261121-7");
    if (hf_get(c, key, tkey(key, sizeof(key), day, no), &v) != 0)
        return hf_fail(c, HF_ENOTFOUND, "no ticket %.*s", (int)sl, s);
    if (decode(v, t) != 0)
        return hf_fail(c, HF_EINTERNAL, "ticket %.*s is corrupt", (int)sl, s);
    return 0;
}

/* ---- the waiting queue and the called list ---- */

struct qent {
    uint64_t rank; /* "w:" rank, or "c:" time */
    char id[HF_STORE_ID_MAX];
};

struct queue {
    struct qent *v;
    size_t n, cap;
};

static void
queue_free(struct queue *q)
{
    free(q->v);
    q->v = NULL;
    q->n = q->cap = 0;
}

static int
queue_cb(void *arg, hf_slice key, hf_slice val)
{
    struct queue *q = arg;
    struct qent *e;
    size_t n;

    if (key.len < 10)
        return 0;
    HF_VEC_GROW(q->v, q->n, q->cap, 32);
    e = &q->v[q->n++];
    e->rank = hf_get_be64((const char *)key.data + 2);
    n = val.len < sizeof(e->id) - 1 ? val.len : sizeof(e->id) - 1;
    memcpy(e->id, val.data, n);
    e->id[n] = '\0';
    return 0;
}

/* Loads the "w:" (which = 'w') or "c:" range in order. */
static int
queue_load(hf_ctx *c, char which, struct queue *q)
{
    char lo[2] = {which, ':'}, hi[2] = {which, ':' + 1};
    int rv =
        hf_list(c, (hf_slice){lo, 2}, (hf_slice){hi, 2}, 0, 0, queue_cb, q);
    return rv != 0 ? hf_fail(c, HF_EINTERNAL, "cannot read the queue") : 0;
}

static size_t
qkey(char *out, char which, uint64_t rank, const char *id)
{
    size_t n = 10;
    out[0] = which;
    out[1] = ':';
    hf_put_be64(out + 2, rank);
    if (id) {
        memcpy(out + 10, id, strlen(id));
        n += strlen(id);
    }
    return n;
}

static int
queue_find(const struct queue *q, const char *id)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].id, id) == 0)
            return (int)i;
    return -1;
}

static int
queue_put(hf_ctx *c, uint64_t rank, const char *id)
{
    char k[16];
    return hf_put(c, k, qkey(k, 'w', rank, NULL), id, strlen(id));
}

static int
queue_del(hf_ctx *c, uint64_t rank)
{
    char k[16];
    return hf_del(c, k, qkey(k, 'w', rank, NULL));
}

/* ---- views ---- */

/* Packs the public view of a ticket as a map with `extra` more pairs to
 * come. position 0 = not waiting (nil). The phone number goes only where
 * sees_phone allows: events and lists are shown on boards. */
static void
pack_view(msgpack_packer *pk, const struct ticket *t, size_t position,
          int with_phone, uint32_t extra)
{
    int phone = with_phone && t->phone[0];

    msgpack_pack_map(pk, 10 + (uint32_t)phone + extra);
    hf_util_kv_str(pk, "ticket", t->id);
    hf_util_kv_int(pk, "number", t->no);
    hf_util_kv_str(pk, "name", t->name);
    hf_util_kv_int(pk, "party", t->party);
    hf_util_kv_opt_str(pk, "class", t->cls);
    hf_util_kv_str(pk, "status", status_names[t->status]);
    hf_util_kv_opt_int(pk, "position", (int64_t)position);
    hf_util_kv_int(pk, "created_at", t->created_at);
    hf_util_kv_opt_int(pk, "called_at", t->called_at);
    hf_util_kv_opt_int(pk, "done_at", t->done_at);
    if (phone)
        hf_util_kv_str(pk, "phone", t->phone);
}

/* Whether the caller may see t's phone number: staff, and the guest who
 * registered it (a signed-in one: anonymous callers are nobody's guest). */
static int
sees_phone(hf_ctx *c, const struct ticket *t)
{
    const char *who = hf_caller(c);
    return hf_util_privileged(c) || (who[0] != '\0' && strcmp(who, t->by) == 0);
}

/* Packs [id, ...] of the waiting queue. */
static void
pack_order(msgpack_packer *pk, const struct queue *q)
{
    msgpack_pack_array(pk, (uint32_t)q->n);
    for (size_t i = 0; i < q->n; i++)
        hf_pack_cstr(pk, q->v[i].id);
}

/* ---- status changes ---- */

/* Moves t to status `to`, keeping the indexes, and emits status_changed
 * with the new number of waiting tickets; the reply is the same view. */
static int
transition(hf_ctx *c, struct ticket *t, int to)
{
    struct queue q = {0};
    int from = t->status, i, rv;
    char k[16 + HF_STORE_ID_MAX];

    if (!(legal[from] & B(to)))
        return hf_fail(c, HF_ECONFLICT, "ticket %s is %s and cannot become %s",
                       t->id, status_names[from], status_names[to]);
    if ((rv = queue_load(c, 'w', &q)) != 0)
        return rv;
    if (from == ST_WAITING && (i = queue_find(&q, t->id)) >= 0) {
        rv = queue_del(c, q.v[i].rank);
        memmove(&q.v[i], &q.v[i + 1], (q.n - (size_t)i - 1) * sizeof(*q.v));
        q.n--;
    } else if (from == ST_CALLED) {
        rv = hf_del(c, k, qkey(k, 'c', (uint64_t)t->called_at, t->id));
    }
    t->status = to;
    if (to == ST_CALLED) {
        t->called_at = hf_now(c);
        if (rv == 0)
            rv = hf_put(c, k, qkey(k, 'c', (uint64_t)t->called_at, t->id),
                        t->id, strlen(t->id));
    } else {
        t->done_at = hf_now(c);
    }
    if (rv == 0)
        rv = save(c, t);
    if (rv == 0) {
        pack_view(hf_pk(c), t, 0, 0, 2);
        hf_util_kv_str(hf_pk(c), "from", status_names[from]);
        hf_util_kv_int(hf_pk(c), "waiting", (int64_t)q.n);
        rv = hf_emit(c, "status_changed", NULL);
    }
    if (rv == 0) {
        pack_view(hf_pk(c), t, 0, sees_phone(c, t), 2);
        hf_util_kv_str(hf_pk(c), "from", status_names[from]);
        hf_util_kv_int(hf_pk(c), "waiting", (int64_t)q.n);
        rv = hf_reply(c);
    }
    queue_free(&q);
    return rv;
}

/* ---- day rollover ---- */

struct prune {
    hf_buf keys; /* u16 length + key, one after another */
};

static int
prune_cb(void *arg, hf_slice key, hf_slice val)
{
    struct prune *p = arg;
    struct ticket t;
    uint16_t n = (uint16_t)key.len;

    if (decode(val, &t) != 0 || t.status == ST_WAITING || t.status == ST_CALLED)
        return 0;
    return hf_buf_append(&p->keys, &n, 2) != 0 ||
           hf_buf_append(&p->keys, key.data, key.len) != 0;
}

/* Deletes the finished tickets of days before today. */
static int
prune(hf_ctx *c, uint32_t today)
{
    struct prune p = {0};
    char hi[32];
    int rv = hf_list(c, (hf_slice){"t:", 2},
                     (hf_slice){hi, tkey(hi, sizeof(hi), today, 0)}, 0, 0,
                     prune_cb, &p);

    for (size_t pos = 0; rv == 0 && pos < p.keys.len;) {
        uint16_t n;
        memcpy(&n, p.keys.data + pos, 2);
        rv = hf_del(c, p.keys.data + pos + 2, n);
        pos += 2 + (size_t)n;
    }
    hf_buf_free(&p.keys);
    return rv;
}

/* ---- methods ---- */

static int
check_phone(hf_ctx *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-(). ", s[i]) || s[i] == '\0')
            return hf_fail(c, HF_EBADREQ,
                           "'phone' must be a phone number (digits, spaces "
                           "and + - ( ) .)");
    return 0;
}

static void
copy(char *dst, size_t cap, const char *s, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static int
do_register(hf_ctx *c, const msgpack_object *args)
{
    struct ticket t = {0};
    struct queue q = {0};
    const char *name, *phone, *cls;
    size_t nl, pl, cl;
    uint32_t today, last_day = 0, last_no = 0;
    char cnt[8];
    hf_slice v;
    int rv;

    if ((rv = hf_util_arg_text(c, args, "name", 1, NAME_MAX_, &name, &nl)) ||
        (rv = hf_arg_int(c, args, "party", 1, 1, PARTY_MAX, &t.party)) ||
        (rv = hf_util_arg_text(c, args, "phone", 0, PHONE_MAX, &phone, &pl)) ||
        (rv = check_phone(c, phone, pl)) ||
        (rv = hf_util_arg_text(c, args, "class", 0, CLASS_MAX, &cls, &cl)))
        return rv;
    today = store_today(c);
    if (hf_get(c, "n", 1, &v) == 0 && v.len == 8) {
        last_day = hf_get_be32(v.data);
        last_no = hf_get_be32((const char *)v.data + 4);
    }
    if (today < last_day) /* the offset moved back: that day goes on */
        today = last_day;
    if ((t.no = hf_store_next_number(last_day, last_no, today)) == 0)
        return hf_fail(c, HF_ECONFLICT, "no ticket numbers left today");
    if (last_day != today && last_day != 0 && (rv = prune(c, today)) != 0)
        return rv;
    hf_put_be32(cnt, today);
    hf_put_be32(cnt + 4, t.no);
    if ((rv = hf_put(c, "n", 1, cnt, 8)) != 0)
        return rv;

    t.day = today;
    hf_store_ticket_id(t.id, t.day, t.no);
    t.status = ST_WAITING;
    t.created_at = hf_now(c);
    copy(t.name, sizeof(t.name), name, nl);
    copy(t.phone, sizeof(t.phone), phone ? phone : "", pl);
    copy(t.cls, sizeof(t.cls), cls ? cls : "", cl);
    copy(t.by, sizeof(t.by), hf_caller(c), strlen(hf_caller(c)));

    if ((rv = queue_load(c, 'w', &q)) == 0 && (rv = save(c, &t)) == 0)
        rv = queue_put(c, q.n ? q.v[q.n - 1].rank + GAP : GAP, t.id);
    if (rv == 0) {
        pack_view(hf_pk(c), &t, q.n + 1, 0, 1);
        hf_util_kv_int(hf_pk(c), "waiting", (int64_t)q.n + 1);
        rv = hf_emit(c, "new_waiting", NULL);
    }
    if (rv == 0) {
        msgpack_packer *pk = hf_pk(c);
        msgpack_pack_map(pk, 4);
        hf_util_kv_str(pk, "ticket", t.id);
        hf_util_kv_int(pk, "number", t.no);
        hf_util_kv_int(pk, "position", (int64_t)q.n + 1);
        hf_util_kv_int(pk, "waiting", (int64_t)q.n + 1);
        rv = hf_reply(c);
    }
    queue_free(&q);
    return rv;
}

static int
do_call(hf_ctx *c, const msgpack_object *args)
{
    struct ticket t;
    struct queue q = {0};
    const char *cls;
    size_t cl;
    int rv;
    const msgpack_object *ta = hf_arg(args, "ticket");

    if (ta != NULL && ta->type != MSGPACK_OBJECT_NIL) {
        if ((rv = load_arg(c, args, &t)) != 0)
            return rv;
        return transition(c, &t, ST_CALLED);
    }
    if ((rv = hf_util_arg_text(c, args, "class", 0, CLASS_MAX, &cls, &cl)) ||
        (rv = queue_load(c, 'w', &q)))
        return rv;
    rv = cls ? hf_fail(c, HF_ENOTFOUND, "no ticket of class %.*s is waiting",
                       (int)cl, cls)
             : hf_fail(c, HF_ENOTFOUND, "no ticket is waiting");
    for (size_t i = 0; i < q.n; i++) {
        uint32_t day, no;
        char key[32];
        hf_slice v;

        if (hf_store_ticket_parse(q.v[i].id, strlen(q.v[i].id), &day, &no) ||
            hf_get(c, key, tkey(key, sizeof(key), day, no), &v) ||
            decode(v, &t))
            continue;
        if (cls == NULL ||
            (strlen(t.cls) == cl && memcmp(t.cls, cls, cl) == 0)) {
            rv = transition(c, &t, ST_CALLED);
            break;
        }
    }
    queue_free(&q);
    return rv;
}

static int
do_set_status(hf_ctx *c, const msgpack_object *args)
{
    struct ticket t;
    int idx = -1, rv;

    if ((rv = hf_util_arg_enum(c, args, "status", 1, settable,
                               sizeof(settable) / sizeof(settable[0]), &idx)) ||
        (rv = load_arg(c, args, &t)))
        return rv;
    return transition(c, &t, ST_CALLED + idx);
}

static int
do_cancel(hf_ctx *c, const msgpack_object *args)
{
    struct ticket t;
    const char *who = hf_caller(c);
    int rv;

    if ((rv = load_arg(c, args, &t)) != 0)
        return rv;
    if (!hf_util_privileged(c) && (who[0] == '\0' || strcmp(who, t.by) != 0))
        return hf_fail(c, HF_EFORBIDDEN,
                       "only the guest who registered ticket %s, or staff, "
                       "may cancel it",
                       t.id);
    return transition(c, &t, ST_CANCELLED);
}

/* Renumbers the whole queue GAP apart, in its (new) order. */
static int
renumber(hf_ctx *c, struct queue *q)
{
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < q->n; i++)
        if (q->v[i].rank != (i + 1) * GAP)
            rv = queue_del(c, q->v[i].rank);
    for (size_t i = 0; rv == 0 && i < q->n; i++)
        if (q->v[i].rank != (i + 1) * GAP) {
            q->v[i].rank = (i + 1) * GAP;
            rv = queue_put(c, q->v[i].rank, q->v[i].id);
        }
    return rv;
}

static int
do_move(hf_ctx *c, const msgpack_object *args)
{
    struct ticket t;
    struct queue q = {0};
    struct qent e;
    int64_t position;
    size_t to;
    int from, rv;

    if ((rv = hf_arg_int(c, args, "position", 1, 1, HF_STORE_NUMBER_MAX,
                         &position)) ||
        (rv = load_arg(c, args, &t)))
        return rv;
    if (t.status != ST_WAITING)
        return hf_fail(c, HF_ECONFLICT, "ticket %s is %s, not waiting", t.id,
                       status_names[t.status]);
    if ((rv = queue_load(c, 'w', &q)) != 0)
        return rv;
    if ((from = queue_find(&q, t.id)) < 0) {
        queue_free(&q);
        return hf_fail(c, HF_EINTERNAL, "ticket %s is not in the queue", t.id);
    }
    /* A position past the end means the end. */
    to = (size_t)position > q.n ? q.n - 1 : (size_t)position - 1;
    if (to != (size_t)from) {
        uint64_t lo, hi, old;
        e = q.v[from];
        old = e.rank;
        memmove(&q.v[from], &q.v[from + 1],
                (q.n - (size_t)from - 1) * sizeof(*q.v));
        memmove(&q.v[to + 1], &q.v[to], (q.n - to - 1) * sizeof(*q.v));
        q.v[to] = e;
        lo = to > 0 ? q.v[to - 1].rank : 0;
        hi = to + 1 < q.n ? q.v[to + 1].rank : lo + 2 * GAP;
        if (hi - lo >= 2) {
            q.v[to].rank = lo + (hi - lo) / 2;
            if ((rv = queue_del(c, old)) == 0)
                rv = queue_put(c, q.v[to].rank, e.id);
        } else {
            /* No room between the neighbours. */
            q.v[to].rank = old;
            rv = renumber(c, &q);
        }
        if (rv == 0) {
            msgpack_packer *pk = hf_pk(c);
            msgpack_pack_map(pk, 4);
            hf_util_kv_str(pk, "ticket", t.id);
            hf_util_kv_int(pk, "position", (int64_t)to + 1);
            hf_util_kv_int(pk, "waiting", (int64_t)q.n);
            hf_pack_cstr(pk, "order");
            pack_order(pk, &q);
            rv = hf_emit(c, "order_changed", NULL);
        }
    }
    if (rv == 0) {
        msgpack_packer *pk = hf_pk(c);
        msgpack_pack_map(pk, 4);
        hf_util_kv_str(pk, "ticket", t.id);
        hf_util_kv_int(pk, "position", (int64_t)to + 1);
        hf_util_kv_int(pk, "waiting", (int64_t)q.n);
        hf_pack_cstr(pk, "order");
        pack_order(pk, &q);
        rv = hf_reply(c);
    }
    queue_free(&q);
    return rv;
}

/* ---- list ---- */

struct board {
    struct ticket *v;
    size_t n, cap;
};

static void
board_add(struct board *b, const struct ticket *t)
{
    HF_VEC_PUSH(b->v, b->n, b->cap, 32, *t);
}

/* Adds the tickets of a "w:"/"c:" range, in its order. */
static void
board_add_queue(hf_ctx *c, struct board *b, const struct queue *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct ticket t;
        uint32_t day, no;
        char key[32];
        hf_slice v;

        if (hf_store_ticket_parse(q->v[i].id, strlen(q->v[i].id), &day, &no) ||
            hf_get(c, key, tkey(key, sizeof(key), day, no), &v) ||
            decode(v, &t))
            continue; /* an index entry without its ticket: skip it */
        board_add(b, &t);
    }
}

static int
finished_cb(void *arg, hf_slice key, hf_slice val)
{
    struct ticket t;
    (void)key;
    if (decode(val, &t) != 0 || t.status == ST_WAITING || t.status == ST_CALLED)
        return 0;
    board_add(arg, &t);
    return 0;
}

static int
do_list(hf_ctx *c, const msgpack_object *args)
{
    struct queue called = {0}, waiting = {0};
    struct board b = {0};
    int all = 0, rv;
    uint32_t day = store_today(c);
    size_t nc;
    msgpack_packer *pk;

    if ((rv = hf_util_arg_bool(c, args, "all", 0, &all)) ||
        (rv = queue_load(c, 'c', &called)) ||
        (rv = queue_load(c, 'w', &waiting)))
        goto out;
    board_add_queue(c, &b, &called);
    nc = b.n;
    board_add_queue(c, &b, &waiting);
    if (all) {
        char lo[32], hi[32];
        rv = hf_list(c, (hf_slice){lo, tkey(lo, sizeof(lo), day, 0)},
                     (hf_slice){hi, tkey(hi, sizeof(hi), day + 1, 0)}, 0, 0,
                     finished_cb, &b);
        if (rv != 0) {
            rv = hf_fail(c, HF_EINTERNAL, "cannot list tickets");
            goto out;
        }
    }
    pk = hf_pk(c);
    msgpack_pack_map(pk, 5);
    hf_util_kv_int(pk, "day", day);
    hf_util_kv_int(pk, "utc_offset_min", utc_offset_min(c));
    hf_util_kv_int(pk, "waiting", (int64_t)waiting.n);
    hf_util_kv_int(pk, "called", (int64_t)called.n);
    hf_pack_cstr(pk, "tickets");
    msgpack_pack_array(pk, (uint32_t)b.n);
    for (size_t i = 0, pos = 0; i < b.n; i++) {
        if (b.v[i].status == ST_WAITING && i >= nc)
            pos++;
        pack_view(pk, &b.v[i], b.v[i].status == ST_WAITING ? pos : 0,
                  sees_phone(c, &b.v[i]), 0);
    }
    rv = hf_reply(c);
out:
    free(b.v);
    queue_free(&called);
    queue_free(&waiting);
    return rv;
}

/* configure {utc_offset_min}: the store's time zone, so numbers start
 * again at its local midnight. Emits configured {utc_offset_min, day} for
 * boards that show local times. */
static int
do_configure(hf_ctx *c, const msgpack_object *args)
{
    hf_util_rec r = {0};
    msgpack_packer *pk;
    int64_t off = 0;
    uint32_t day;
    int rv;

    if ((rv = hf_arg_int(c, args, "utc_offset_min", 1, OFFSET_MIN_LO,
                         OFFSET_MIN_HI, &off)) != 0)
        return rv;
    pk = hf_util_rec_begin(&r);
    msgpack_pack_map(pk, 1);
    hf_util_kv_int(pk, "utc_offset_min", off);
    rv = hf_util_rec_put(c, &r, "cfg", 3);
    hf_util_rec_free(&r);
    if (rv != 0)
        return rv;
    day = store_today(c);
    for (int i = 0; i < 2; i++) {
        pk = hf_pk(c);
        msgpack_pack_map(pk, 2);
        hf_util_kv_int(pk, "utc_offset_min", off);
        hf_util_kv_int(pk, "day", day);
        if ((rv = i == 0 ? hf_emit(c, "configured", NULL) : hf_reply(c)) != 0)
            return rv;
    }
    return 0;
}

#define STAFF (HF_ROLE_ADMIN | HF_ROLE_SERVICE)

static const struct hf_method methods[] = {
    {.name = "register", .fn = do_register, .roles = HF_ROLE_ANY},
    {.name = "call", .fn = do_call, .roles = STAFF},
    {.name = "set_status", .fn = do_set_status, .roles = STAFF},
    {.name = "move", .fn = do_move, .roles = STAFF},
    {.name = "cancel", .fn = do_cancel, .roles = HF_ROLE_ANY},
    {.name = "list", .fn = do_list, .roles = HF_ROLE_ANY, .pub = 1},
    {.name = "configure", .fn = do_configure, .roles = STAFF},
};

const struct hf_kind hf_kind_store = {
    .name = "store",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
};
