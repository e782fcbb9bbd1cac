/*
 * device.c - device/NAME: a bookable device (a console, a room, a
 * machine) with conflict-free reservations and live status.
 *
 *   reserve {slot, user?, note?}  -> the reservation            anyone
 *   approve {slot} / reject {slot, reason?}                     admin
 *   cancel {slot}                 the holder or an admin
 *   report {status, meta?} / heartbeat {}                       device
 *   configure {heartbeat_timeout_s}                             admin
 *   get {limit?, after?}          status and the reservations   anyone
 * Events: reservation_created|approved|rejected|cancelled and
 * device_<status> when the status changes, each carrying `device` (and a
 * reservation's stable `reservation_id`). The holder hears of an
 * approval, a rejection and an admin's cancel in their inbox.
 * docs/kinds/device.md is the reference.
 *
 * Design notes.
 *
 * A slot is held by at most one user: "r:<slot>" exists or it does not,
 * and the actor runs one message at a time, so reserve is a plain
 * read-then-write with no race left to lose. The same user reserving the
 * same slot gets the stored reservation back, unchanged and without an
 * event; anyone else gets conflict. Reject and cancel delete the record,
 * which frees the slot. The reservation's reply is released only after
 * its commit is durable (the engine's output gate), so an acknowledged
 * booking survives a crash.
 *
 * Keys:
 *   "cfg"       be64 heartbeat timeout in seconds (absent: 30)
 *   "rid"       be64: the last reservation id (ids are 1, 2, ...)
 *   "st"        status: {status, meta, last_seen, changed_at}
 *   "r:<slot>"  reservation: {id, slot, user, state, note, created_at,
 *               approved_at, remind_at, reminded_at}; a range scan of
 *               "r:" is the list, sorted by slot name. Records stored
 *               before ids existed have none (reservation_id null).
 * Alarms:
 *   "hb"        last_seen + timeout while the device is not offline:
 *               every heartbeat or report moves it; when it fires the
 *               device goes offline (device_offline).
 *   "r:<slot>"  the reminder of a confirmed slot whose name is an
 *               ISO-8601 time with a zone: ten minutes before it, or at
 *               once when approved later than that but before the slot
 *               starts (a slot already started gets none). Reject and
 *               cancel remove it. When it fires, one notify goes to
 *               user/<holder> through the outbox, in the same unit as
 *               the "reminded_at" mark, so an alarm fired twice (alarms
 *               are at least once) sends once; the receiver deduplicates
 *               outbox redeliveries.
 * Notices: approve, reject and an admin's cancel send user/<holder> a
 * notify through the outbox in the same unit as the change itself, so a
 * change that commits notifies exactly once and one that fails, never.
 * Alarm names are at most 64 bytes, hence slots of at most 60.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/addr.h"
#include "core/env.h"
#include "core/log.h"

#define SLOT_MAX          60
#define GET_LIMIT_MAX     1000 /* get {limit} */
#define NOTE_MAX          256
#define REASON_MAX        256
#define META_MAX          4096
#define TIMEOUT_DEFAULT_S 30
#define TIMEOUT_MAX_S     86400
#define REMIND_BEFORE_MS  (10 * 60 * 1000)

enum dstatus { D_ONLINE, D_OFFLINE, D_IN_USE, D_AVAILABLE, D_FAULT };

static const char *const status_names[] = {
    [D_ONLINE] = "online",       [D_OFFLINE] = "offline", [D_IN_USE] = "in_use",
    [D_AVAILABLE] = "available", [D_FAULT] = "fault",
};
static const char *const status_events[] = {
    [D_ONLINE] = "device_online", [D_OFFLINE] = "device_offline",
    [D_IN_USE] = "device_in_use", [D_AVAILABLE] = "device_available",
    [D_FAULT] = "device_fault",
};
#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

/* Stored states are pending and confirmed; rejected and cancelled are
 * only ever shown, in the event and reply that delete a reservation. */
enum rstate { R_PENDING, R_CONFIRMED, R_REJECTED, R_CANCELLED };
static const char *const state_names[] = {[R_PENDING] = "pending",
                                          [R_CONFIRMED] = "confirmed",
                                          [R_REJECTED] = "rejected",
                                          [R_CANCELLED] = "cancelled"};

struct resv {
    uint64_t id; /* 0: stored before reservations had ids */
    char slot[SLOT_MAX + 1];
    char user[HF_NAME_MAX + 1];
    char note[NOTE_MAX + 1];
    int state;
    int64_t created_at, approved_at, remind_at, reminded_at;
};

struct dstate {
    int status;
    int64_t last_seen, changed_at;
    hf_buf meta; /* msgpack of meta, empty = nil */
};

/* ---- configuration ---- */

static int64_t
timeout_s(hf_ctx *c)
{
    uint64_t v = hf_util_get_u64(c, "cfg");
    return v ? (int64_t)v : TIMEOUT_DEFAULT_S;
}

/* ---- status ---- */

static void
dstate_free(struct dstate *s)
{
    hf_buf_free(&s->meta);
}

/* Loads the status; a device never heard of is offline. */
static int
dstate_load(hf_ctx *c, struct dstate *s)
{
    msgpack_zone z;
    msgpack_object o;
    const msgpack_object *meta;
    int rv;

    memset(s, 0, sizeof(*s));
    s->status = D_OFFLINE;
    if (!msgpack_zone_init(&z, 512))
        return hf_fail(c, HF_EINTERNAL, "out of memory");
    rv = hf_util_load(c, "st", 2, &z, &o);
    if (rv == HF_ENOTFOUND) {
        rv = 0;
    } else if (rv == 0) {
        int st = hf_util_field_enum(&o, "status", status_names, NSTATUS);
        s->status = st >= 0 ? st : D_OFFLINE;
        s->last_seen = hf_util_field_int(&o, "last_seen", 0);
        s->changed_at = hf_util_field_int(&o, "changed_at", 0);
        if ((meta = hf_arg(&o, "meta")) != NULL &&
            meta->type != MSGPACK_OBJECT_NIL) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &s->meta, hf_buf_mpwrite);
            hf_pack_obj(&pk, meta);
        }
    }
    msgpack_zone_destroy(&z);
    return rv;
}

static int
dstate_save(hf_ctx *c, const struct dstate *s)
{
    hf_util_rec r = {0};
    msgpack_packer *pk = hf_util_rec_begin(&r);
    int rv;

    msgpack_pack_map(pk, 4);
    hf_util_kv_str(pk, "status", status_names[s->status]);
    hf_pack_cstr(pk, "meta");
    hf_pack_raw(pk, (hf_slice){s->meta.data, s->meta.len});
    hf_util_kv_opt_int(pk, "last_seen", s->last_seen);
    hf_util_kv_opt_int(pk, "changed_at", s->changed_at);
    rv = hf_util_rec_put(c, &r, "st", 2);
    hf_util_rec_free(&r);
    return rv;
}

/* The status fields and the device's name, as a map with `extra` more
 * pairs to come. */
static void
pack_status(msgpack_packer *pk, const char *device, const struct dstate *s,
            uint32_t extra)
{
    msgpack_pack_map(pk, 5 + extra);
    hf_util_kv_str(pk, "device", device);
    hf_util_kv_str(pk, "status", status_names[s->status]);
    hf_pack_cstr(pk, "meta");
    hf_pack_raw(pk, (hf_slice){s->meta.data, s->meta.len});
    hf_util_kv_opt_int(pk, "last_seen", s->last_seen);
    hf_util_kv_opt_int(pk, "changed_at", s->changed_at);
}

/* Emits device_<status> for a change from `prev` (reason may be NULL). */
static int
emit_status(hf_ctx *c, const struct dstate *s, int prev, const char *reason)
{
    msgpack_packer *pk = hf_pk(c);
    pack_status(pk, hf_self_name(c), s, reason ? 2 : 1);
    hf_util_kv_str(pk, "previous", status_names[prev]);
    if (reason)
        hf_util_kv_str(pk, "reason", reason);
    return hf_emit(c, status_events[s->status], NULL);
}

/* Sets the heartbeat deadline, or drops it for an offline device. */
static int
arm_heartbeat(hf_ctx *c, const struct dstate *s)
{
    if (s->status == D_OFFLINE)
        return hf_alarm_cancel(c, "hb");
    return hf_alarm_set(c, "hb", s->last_seen + timeout_s(c) * 1000);
}

/* ---- reservations ---- */

static size_t
rkey(char *out, size_t cap, const char *slot)
{
    int n = snprintf(out, cap, "r:%s", slot);
    return n > 0 ? (size_t)n : 0;
}

static int
resv_decode(const msgpack_object *o, struct resv *r)
{
    memset(r, 0, sizeof(*r));
    if (o->type != MSGPACK_OBJECT_MAP ||
        (r->state = hf_util_field_enum(o, "state", state_names, 2)) < 0)
        return HF_EINTERNAL;
    r->id = (uint64_t)hf_util_field_int(o, "id", 0);
    hf_util_field_copy(o, "slot", r->slot, sizeof(r->slot));
    hf_util_field_copy(o, "user", r->user, sizeof(r->user));
    hf_util_field_copy(o, "note", r->note, sizeof(r->note));
    r->created_at = hf_util_field_int(o, "created_at", 0);
    r->approved_at = hf_util_field_int(o, "approved_at", 0);
    r->remind_at = hf_util_field_int(o, "remind_at", 0);
    r->reminded_at = hf_util_field_int(o, "reminded_at", 0);
    return 0;
}

/* 0 and *r, HF_ENOTFOUND (no message), or HF_EINTERNAL. */
static int
resv_load(hf_ctx *c, const char *slot, struct resv *r)
{
    msgpack_zone z;
    msgpack_object o;
    char key[SLOT_MAX + 8];
    int rv;

    if (!msgpack_zone_init(&z, 512))
        return hf_fail(c, HF_EINTERNAL, "out of memory");
    rv = hf_util_load(c, key, rkey(key, sizeof(key), slot), &z, &o);
    if (rv == 0 && resv_decode(&o, r) != 0)
        rv = hf_fail(c, HF_EINTERNAL, "reservation %s is corrupt", slot);
    msgpack_zone_destroy(&z);
    return rv;
}

static int
resv_save(hf_ctx *c, const struct resv *r)
{
    hf_util_rec rec = {0};
    msgpack_packer *pk = hf_util_rec_begin(&rec);
    char key[SLOT_MAX + 8];
    int rv;

    msgpack_pack_map(pk, 9);
    hf_util_kv_opt_int(pk, "id", (int64_t)r->id);
    hf_util_kv_str(pk, "slot", r->slot);
    hf_util_kv_str(pk, "user", r->user);
    hf_util_kv_str(pk, "state", state_names[r->state]);
    hf_util_kv_opt_str(pk, "note", r->note);
    hf_util_kv_opt_int(pk, "created_at", r->created_at);
    hf_util_kv_opt_int(pk, "approved_at", r->approved_at);
    hf_util_kv_opt_int(pk, "remind_at", r->remind_at);
    hf_util_kv_opt_int(pk, "reminded_at", r->reminded_at);
    rv = hf_util_rec_put(c, &rec, key, rkey(key, sizeof(key), r->slot));
    hf_util_rec_free(&rec);
    return rv;
}

/* Deletes a reservation and its reminder, and marks *r as ending in
 * state `end` (for the event). */
static int
resv_del(hf_ctx *c, struct resv *r, int end)
{
    char key[SLOT_MAX + 8];
    int rv = hf_del(c, key, rkey(key, sizeof(key), r->slot));
    if (rv == 0)
        rv = hf_alarm_cancel(c, key); /* the alarm has the key's name */
    r->state = end;
    r->remind_at = 0;
    return rv;
}

/* The reservation as clients see it: a map with `extra` more pairs. It
 * names the device and the reservation, so a dashboard watching many
 * devices can file what it receives without the envelope's `from`. */
static void
pack_resv(msgpack_packer *pk, const char *device, const struct resv *r,
          uint32_t extra)
{
    msgpack_pack_map(pk, 10 + extra);
    hf_util_kv_opt_int(pk, "reservation_id", (int64_t)r->id);
    hf_util_kv_str(pk, "device", device);
    hf_util_kv_str(pk, "slot", r->slot);
    hf_util_kv_str(pk, "user", r->user);
    hf_util_kv_str(pk, "state", state_names[r->state]);
    hf_util_kv_opt_str(pk, "note", r->note);
    hf_util_kv_opt_int(pk, "created_at", r->created_at);
    hf_util_kv_opt_int(pk, "approved_at", r->approved_at);
    hf_util_kv_opt_int(pk, "remind_at", r->remind_at);
    hf_util_kv_opt_int(pk, "reminded_at", r->reminded_at);
}

/* Emits `type` with the reservation (+ one string field when k is set)
 * and replies the same. */
static int
emit_resv(hf_ctx *c, const char *type, const struct resv *r, const char *k,
          const char *v)
{
    int rv;
    for (int i = 0; i < 2; i++) {
        pack_resv(hf_pk(c), hf_self_name(c), r, k ? 1 : 0);
        if (k)
            hf_util_kv_opt_str(hf_pk(c), k, v);
        if ((rv = i == 0 ? hf_emit(c, type, NULL) : hf_reply(c)) != 0)
            return rv;
    }
    return 0;
}

/* The slot argument, NUL-terminated into slot[SLOT_MAX + 1]. */
static int
arg_slot(hf_ctx *c, const msgpack_object *args, char *slot)
{
    const char *s;
    size_t n;
    int rv = hf_util_arg_text(c, args, "slot", 1, SLOT_MAX, &s, &n);
    if (rv == 0) {
        memcpy(slot, s, n);
        slot[n] = '\0';
    }
    return rv;
}

static int
load_slot(hf_ctx *c, const msgpack_object *args, struct resv *r)
{
    char slot[SLOT_MAX + 1];
    int rv;

    if ((rv = arg_slot(c, args, slot)) != 0)
        return rv;
    if ((rv = resv_load(c, slot, r)) == HF_ENOTFOUND)
        return hf_fail(c, HF_ENOTFOUND, "no reservation for slot %s", slot);
    return rv;
}

/* When to remind the holder of a confirmed slot, or -1 for never: ten
 * minutes before an ISO-8601 slot, at once when that has passed but the
 * slot has not started, never for a slot that has started or is no
 * time. */
static int64_t
remind_time(const char *slot, int64_t now)
{
    int64_t t;
    if (hf_util_iso8601_ms(slot, strlen(slot), &t) != 0 || t <= now)
        return -1;
    return t - REMIND_BEFORE_MS > now ? t - REMIND_BEFORE_MS : now;
}

/* ---- notices to the holder ---- */

/* Sends user/<holder> one notify about r through the outbox: `type` names
 * what happened, k/v (k may be NULL) one more field, such as a reason.
 * It is part of the caller's unit, so it goes out exactly when the change
 * it tells of commits. A server without the user kind cannot take it
 * (hf_send refuses at once): that is logged, and the change stands. */
static int
notify_holder(hf_ctx *c, const struct resv *r, const char *type,
              const char *title, const char *message, const char *priority,
              const char *k, const char *v)
{
    char to[HF_ADDR_MAX + 8];
    msgpack_packer *pk = hf_pk(c);
    int rv;

    snprintf(to, sizeof(to), "user/%s", r->user);
    msgpack_pack_map(pk, 6 + (r->id != 0) + (k != NULL));
    hf_util_kv_str(pk, "title", title);
    hf_util_kv_str(pk, "message", message);
    hf_util_kv_str(pk, "priority", priority);
    hf_util_kv_str(pk, "type", type);
    hf_util_kv_str(pk, "device", hf_self_name(c));
    hf_util_kv_str(pk, "slot", r->slot);
    if (r->id != 0)
        hf_util_kv_int(pk, "reservation_id", (int64_t)r->id);
    if (k != NULL)
        hf_util_kv_str(pk, k, v);
    if ((rv = hf_send(c, to, "notify")) != 0)
        hf_warn("device", "%s: %s for %s to %s not sent: %s", hf_self(c), type,
                r->slot, to, hf_err_name(rv));
    return rv;
}

/* ---- methods ---- */

static int
do_reserve(hf_ctx *c, const msgpack_object *args)
{
    struct resv r = {0};
    char slot[SLOT_MAX + 1], addr[HF_ADDR_MAX + 8];
    const char *user, *note;
    size_t ul, nl, kl;
    int rv;

    if ((rv = arg_slot(c, args, slot)) ||
        (rv = hf_arg_str(c, args, "user", 0, HF_NAME_MAX, &user, &ul)) ||
        (rv = hf_util_arg_text(c, args, "note", 0, NOTE_MAX, &note, &nl)))
        return rv;
    if (user == NULL) {
        user = hf_caller(c);
        if ((ul = strlen(user)) == 0)
            return hf_fail(c, HF_EBADREQ, "'user' is required");
    }
    /* The holder gets reminders at user/<holder>: it must be a name. */
    snprintf(addr, sizeof(addr), "user/%.*s", (int)ul, user);
    if (hf_addr_check(addr, strlen(addr), &kl) != 0)
        return hf_fail(c, HF_EBADREQ,
                       "'user' must be 1 to 128 of A-Z a-z 0-9 . _ : @ -");
    if (!hf_util_privileged(c) &&
        (strlen(hf_caller(c)) != ul || memcmp(user, hf_caller(c), ul) != 0))
        return hf_fail(c, HF_EFORBIDDEN, "you may reserve only for yourself");

    rv = resv_load(c, slot, &r);
    if (rv == 0) {
        if (strlen(r.user) != ul || memcmp(r.user, user, ul) != 0)
            return hf_fail(c, HF_ECONFLICT, "slot %s is held", slot);
        /* the same answer, no new event */
        pack_resv(hf_pk(c), hf_self_name(c), &r, 0);
        return hf_reply(c);
    }
    if (rv != HF_ENOTFOUND)
        return rv;
    memset(&r, 0, sizeof(r));
    memcpy(r.slot, slot, strlen(slot) + 1);
    memcpy(r.user, user, ul);
    if (note)
        memcpy(r.note, note, nl);
    r.state = R_PENDING;
    r.created_at = hf_now(c);
    r.id = hf_util_get_u64(c, "rid") + 1;
    if ((rv = hf_util_put_u64(c, "rid", r.id)) != 0 ||
        (rv = resv_save(c, &r)) != 0)
        return rv;
    return emit_resv(c, "reservation_created", &r, NULL, NULL);
}

static int
do_approve(hf_ctx *c, const msgpack_object *args)
{
    struct resv r;
    char name[SLOT_MAX + 8], msg[SLOT_MAX + HF_NAME_MAX + 64];
    int64_t at;
    int rv;

    if ((rv = load_slot(c, args, &r)) != 0)
        return rv;
    if (r.state == R_CONFIRMED)
        return hf_fail(c, HF_ECONFLICT, "slot %s is already confirmed", r.slot);
    r.state = R_CONFIRMED;
    r.approved_at = hf_now(c);
    if ((at = remind_time(r.slot, hf_now(c))) >= 0) {
        r.remind_at = at;
        rkey(name, sizeof(name), r.slot); /* the alarm is named as the key */
        if ((rv = hf_alarm_set(c, name, at)) != 0)
            return rv;
    }
    if ((rv = resv_save(c, &r)) != 0 ||
        (rv = emit_resv(c, "reservation_approved", &r, NULL, NULL)) != 0)
        return rv;
    snprintf(msg, sizeof(msg), "Your reservation of %s at %s is confirmed.",
             hf_self_name(c), r.slot);
    notify_holder(c, &r, "reservation_approved", "Reservation approved", msg,
                  "medium", NULL, NULL);
    return 0;
}

static int
do_reject(hf_ctx *c, const msgpack_object *args)
{
    struct resv r;
    const char *reason;
    size_t rl;
    char rbuf[REASON_MAX + 1] = "", msg[SLOT_MAX + HF_NAME_MAX + 64];
    int rv;

    if ((rv = hf_util_arg_text(c, args, "reason", 0, REASON_MAX, &reason,
                               &rl)) ||
        (rv = load_slot(c, args, &r)) || (rv = resv_del(c, &r, R_REJECTED)))
        return rv;
    if (reason) {
        memcpy(rbuf, reason, rl);
        rbuf[rl] = '\0';
    }
    if ((rv = emit_resv(c, "reservation_rejected", &r, "reason", rbuf)) != 0)
        return rv;
    snprintf(msg, sizeof(msg), "Your reservation of %s at %s was declined.",
             hf_self_name(c), r.slot);
    notify_holder(c, &r, "reservation_rejected", "Reservation declined", msg,
                  "high", reason ? "reason" : NULL, rbuf);
    return 0;
}

static int
do_cancel(hf_ctx *c, const msgpack_object *args)
{
    struct resv r;
    char msg[SLOT_MAX + HF_NAME_MAX + 64];
    int rv;

    if ((rv = load_slot(c, args, &r)) != 0)
        return rv;
    if (!(hf_caller_role(c) & HF_ROLE_ADMIN) &&
        strcmp(r.user, hf_caller(c)) != 0)
        return hf_fail(c, HF_EFORBIDDEN,
                       "only the holder of slot %s or an admin may cancel it",
                       r.slot);
    if ((rv = resv_del(c, &r, R_CANCELLED)) != 0 ||
        (rv = emit_resv(c, "reservation_cancelled", &r, "by", hf_caller(c))) !=
            0)
        return rv;
    /* The holder knows of their own cancel; someone else's is news. */
    if (strcmp(r.user, hf_caller(c)) != 0) {
        snprintf(msg, sizeof(msg), "Your reservation of %s at %s was cancelled.",
                 hf_self_name(c), r.slot);
        notify_holder(c, &r, "reservation_cancelled", "Reservation cancelled",
                      msg, "high", "by", hf_caller(c));
    }
    return 0;
}

/* Records that the device was seen now in status `st` (meta, when not
 * NULL, replaces the stored one), emits a change, and replies. */
static int
seen(hf_ctx *c, int st, const msgpack_object *meta)
{
    struct dstate s;
    int prev, rv;

    if ((rv = dstate_load(c, &s)) != 0)
        return rv;
    prev = s.status;
    s.status = st < 0 ? (prev == D_OFFLINE ? D_ONLINE : prev) : st;
    s.last_seen = hf_now(c);
    if (s.status != prev)
        s.changed_at = hf_now(c);
    if (meta) {
        msgpack_packer pk;
        s.meta.len = 0;
        msgpack_packer_init(&pk, &s.meta, hf_buf_mpwrite);
        hf_pack_obj(&pk, meta);
    }
    if ((rv = dstate_save(c, &s)) == 0 && (rv = arm_heartbeat(c, &s)) == 0 &&
        s.status != prev)
        rv = emit_status(c, &s, prev, NULL);
    if (rv == 0) {
        pack_status(hf_pk(c), hf_self_name(c), &s, 2);
        hf_pack_cstr(hf_pk(c), "changed");
        if (s.status != prev)
            msgpack_pack_true(hf_pk(c));
        else
            msgpack_pack_false(hf_pk(c));
        hf_pack_cstr(hf_pk(c), "heartbeat_timeout_s");
        msgpack_pack_int64(hf_pk(c), timeout_s(c));
        rv = hf_reply(c);
    }
    dstate_free(&s);
    return rv;
}

static int
do_report(hf_ctx *c, const msgpack_object *args)
{
    const msgpack_object *meta = hf_arg(args, "meta");
    int st = -1, rv;

    if ((rv = hf_util_arg_enum(c, args, "status", 1, status_names, NSTATUS,
                               &st)) != 0)
        return rv;
    if (meta && meta->type == MSGPACK_OBJECT_NIL)
        meta = NULL;
    if (meta) {
        hf_buf b = {0};
        msgpack_packer pk;
        size_t len;
        msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
        hf_pack_obj(&pk, meta);
        len = b.len;
        hf_buf_free(&b);
        if (len > META_MAX)
            return hf_fail(c, HF_EBADREQ, "'meta' must be at most %d bytes",
                           META_MAX);
    }
    return seen(c, st, meta);
}

static int
do_heartbeat(hf_ctx *c, const msgpack_object *args)
{
    (void)args;
    return seen(c, -1, NULL);
}

static int
do_configure(hf_ctx *c, const msgpack_object *args)
{
    struct dstate s;
    int64_t t = 0;
    int rv;

    if ((rv = hf_arg_int(c, args, "heartbeat_timeout_s", 1, 1, TIMEOUT_MAX_S,
                         &t)) ||
        (rv = hf_util_put_u64(c, "cfg", (uint64_t)t)) ||
        (rv = dstate_load(c, &s)))
        return rv;
    /* A live device's deadline follows the new timeout at once. */
    if (s.status != D_OFFLINE && s.last_seen)
        rv = hf_alarm_set(c, "hb", s.last_seen + t * 1000);
    dstate_free(&s);
    if (rv == 0) {
        msgpack_pack_map(hf_pk(c), 1);
        hf_pack_cstr(hf_pk(c), "heartbeat_timeout_s");
        msgpack_pack_int64(hf_pk(c), t);
        rv = hf_reply(c);
    }
    return rv;
}

struct rlist {
    const char *device;
    hf_buf packed; /* packed reservation views, one after another */
    uint32_t n;
    uint32_t want; /* get {limit}: this many, then say more; 0: all */
    int more;
    int bad;
};

static int
rlist_cb(void *arg, hf_slice key, hf_slice val)
{
    struct rlist *l = arg;
    msgpack_zone z;
    msgpack_object o;
    struct resv r;
    size_t off = 0;
    (void)key;

    if (l->want > 0 && l->n == l->want) {
        l->more = 1; /* the one past the page (hf_list's limit ends here) */
        return 0;
    }
    if (!msgpack_zone_init(&z, 512))
        return l->bad = 1;
    if (hf_unpack_next(val.data, val.len, &off, &z, &o) == 0 &&
        resv_decode(&o, &r) == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &l->packed, hf_buf_mpwrite);
        pack_resv(&pk, l->device, &r, 0);
        l->n++;
    }
    msgpack_zone_destroy(&z);
    return 0;
}

/* get {after?, limit?}: without limit every reservation (a device has
 * few); with it at most limit, from the first slot after `after`, and
 * more: true when the list goes on - a client pages with the last slot
 * it got as the next `after`. */
static int
do_get(hf_ctx *c, const msgpack_object *args)
{
    struct dstate s;
    struct rlist l = {.device = hf_self_name(c)};
    msgpack_packer *pk = hf_pk(c);
    char lo[SLOT_MAX + 8] = "r:";
    size_t lol = 2, al = 0;
    const char *after = NULL;
    int64_t limit = 0;
    int rv;

    if ((rv = hf_util_arg_text(c, args, "after", 0, SLOT_MAX, &after, &al)) !=
            0 ||
        (rv = hf_arg_int(c, args, "limit", 0, 1, GET_LIMIT_MAX, &limit)) != 0)
        return rv;
    if (after != NULL) { /* the first key past r:<after> */
        memcpy(lo + 2, after, al);
        lo[2 + al] = '\0';
        lol = 2 + al + 1;
    }
    l.want = (uint32_t)limit;
    if ((rv = dstate_load(c, &s)) != 0)
        return rv;
    rv = hf_list(c, (hf_slice){lo, lol}, (hf_slice){"r;", 2}, 0,
                 l.want ? (size_t)l.want + 1 : 0, rlist_cb, &l);
    if (rv != 0 || l.bad) {
        rv = hf_fail(c, HF_EINTERNAL, "cannot list reservations");
    } else {
        pack_status(pk, hf_self_name(c), &s, l.want ? 3 : 2);
        hf_pack_cstr(pk, "heartbeat_timeout_s");
        msgpack_pack_int64(pk, timeout_s(c));
        hf_pack_cstr(pk, "reservations");
        msgpack_pack_array(pk, l.n);
        if (l.packed.len)
            hf_pack_raw(pk, (hf_slice){l.packed.data, l.packed.len});
        if (l.want) {
            hf_pack_cstr(pk, "more");
            if (l.more)
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
        }
        rv = hf_reply(c);
    }
    hf_buf_free(&l.packed);
    dstate_free(&s);
    return rv;
}

/* ---- alarms ---- */

/* The heartbeat deadline passed: offline, unless a heartbeat came in
 * since (then the alarm was moved and this one is stale) or the timeout
 * grew. */
static int
heartbeat_due(hf_ctx *c)
{
    struct dstate s;
    int64_t due;
    int prev, rv;

    if ((rv = dstate_load(c, &s)) != 0)
        return rv;
    due = s.last_seen + timeout_s(c) * 1000;
    if (s.status == D_OFFLINE) {
        rv = 0;
    } else if (due > hf_now(c)) {
        rv = hf_alarm_set(c, "hb", due);
    } else {
        prev = s.status;
        s.status = D_OFFLINE;
        s.changed_at = hf_now(c);
        if ((rv = dstate_save(c, &s)) == 0)
            rv = emit_status(c, &s, prev, "heartbeat_timeout");
    }
    dstate_free(&s);
    return rv;
}

/* A reminder is due: one notify to user/<holder>, once. */
static int
reminder_due(hf_ctx *c, const char *slot)
{
    struct resv r;
    char msg[SLOT_MAX + HF_NAME_MAX + 64];
    int rv;

    if ((rv = resv_load(c, slot, &r)) == HF_ENOTFOUND)
        return 0; /* cancelled or rejected meanwhile */
    if (rv != 0 || r.state != R_CONFIRMED || r.reminded_at)
        return rv;
    snprintf(msg, sizeof(msg), "Your reservation of %s starts at %s.",
             hf_self_name(c), r.slot);
    /* Not deliverable now or ever (no user kind): retrying would not help,
     * and a reminder is not worth blocking the alarm for. */
    if (notify_holder(c, &r, "reminder", "Reservation reminder", msg, "high",
                      NULL, NULL) != 0)
        return 0;
    r.reminded_at = hf_now(c);
    return resv_save(c, &r);
}

static int
on_alarm(hf_ctx *c, const char *name)
{
    if (strcmp(name, "hb") == 0)
        return heartbeat_due(c);
    if (strncmp(name, "r:", 2) == 0)
        return reminder_due(c, name + 2);
    return 0;
}

static const struct hf_method methods[] = {
    {.name = "reserve", .fn = do_reserve, .roles = HF_ROLE_ANY},
    {.name = "approve", .fn = do_approve, .roles = HF_ROLE_ADMIN},
    {.name = "reject", .fn = do_reject, .roles = HF_ROLE_ADMIN},
    {.name = "cancel", .fn = do_cancel, .roles = HF_ROLE_ANY},
    {.name = "report", .fn = do_report, .roles = HF_ROLE_DEVICE},
    {.name = "heartbeat", .fn = do_heartbeat, .roles = HF_ROLE_DEVICE},
    {.name = "configure", .fn = do_configure, .roles = HF_ROLE_ADMIN},
    {.name = "get", .fn = do_get, .roles = HF_ROLE_ANY, .pub = 1},
};

const struct hf_kind hf_kind_device = {
    .name = "device",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
    .alarm = on_alarm,
};
