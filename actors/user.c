/*
 * user.c - user/NAME: a user's notification inbox.
 *
 *   notify {title, message, priority?: high|medium|low (medium), type?,
 *           link?, ...}    (service, admin, or an actor) -> {id, unread}
 *   notify_many {users: [name...], ...notify's fields}
 *                  (service, admin) -> {sent}: one notify per user,
 *                  through this actor's outbox
 *   list {unread_only?, type?, limit?, before?}  -> {items, unread, more}
 *   mark_read {id} | {all: true}          -> {marked, unread}
 *   unread {}                             -> {count}
 *
 * Events: notification (the item), notification_read {ids, unread} or
 * {all: true, unread}.
 *
 * Who may call: the gateway already keeps user/NAME to NAME, admins and
 * services (DESIGN §6); inside, list, mark_read and unread check again
 * that the caller is NAME unless it is an admin or a service, so the
 * inbox does not rely on an ACL being configured right. notify is for
 * services, admins and other actors (the device kind sends reminders here
 * through its outbox; the engine deduplicates those deliveries).
 *
 * Design notes. Keys:
 *   "last"        be64: the newest id (ids are 1, 2, ...)
 *   "n:" be64 id  map{id, title, message, priority, type, link, at, read,
 *                     from, read_at?, ...the notifier's extra fields}
 *                     (items stored before links existed have no link)
 *   "unread"      be64: how many items have read == false
 *   "count"       be64: how many items are kept
 * Items sort by id, so list is one reverse range scan. The counters move
 * in the same unit as the items they count, so they are exact. An inbox
 * keeps its newest INBOX_MAX items: notify drops the oldest beyond that.
 *
 * notify_many is a relay: whichever user/ actor it is called on checks
 * the notification once, then writes one send per user to its outbox in
 * the same unit, so every inbox gets it exactly once or, on a bad
 * argument, none does. It never touches its own inbox (unless its own
 * name is in the list, like anyone's). The receivers see the relay's
 * address as `from`, and the service that asked as `by`.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/addr.h"
#include "core/env.h"
#include "core/vec.h"

#define TITLE_MAX     200
#define MESSAGE_MAX   4000
#define TYPE_MAX      64
#define LINK_MAX      2000 /* bytes in a link (a URL or an app route) */
#define MANY_MAX      1000 /* users in one notify_many */
#define EXTRA_MAX     16   /* extra fields a notifier may attach */
#define ITEM_MAX      8192 /* bytes in a packed item */
#define INBOX_MAX     1000 /* items kept per user */
#define LIMIT_DEFAULT 50
#define LIMIT_MAX     200
#define NKEY_LEN      10

static const char *const priorities[] = {"high", "medium", "low"};

/* Fields notify reads itself, and fields the inbox sets: neither kind is
 * copied from the arguments as an extra. */
static const char *const own[] = {"title", "message", "priority", "type",
                                  "link"};
#define NOWN (sizeof(own) / sizeof(own[0]))
static const char *const reserved[] = {"id", "at", "read", "read_at", "from"};

static size_t
nkey(char *out, uint64_t id)
{
    return hf_util_key_id(out, "n:", id);
}

static int
is_one_of(const msgpack_object *k, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k->via.str.size == strlen(names[i]) &&
            memcmp(k->via.str.ptr, names[i], k->via.str.size) == 0)
            return 1;
    return 0;
}

/* list, mark_read and unread: the inbox's user, an admin or a service. */
static int
check_owner(hf_ctx *c)
{
    if (strcmp(hf_caller(c), hf_self_name(c)) == 0 || hf_util_privileged(c))
        return 0;
    return hf_fail(c, HF_EFORBIDDEN, "this inbox belongs to %s",
                   hf_self_name(c));
}

/* Checks the notifier's extra fields: string keys of at most 64 bytes,
 * none reserved, at most EXTRA_MAX. Returns how many there are in *n.
 * skip (may be NULL) names one more field that is not an extra. */
static int
check_extras(hf_ctx *c, const msgpack_object *args, const char *skip,
             uint32_t *n)
{
    *n = 0;
    for (uint32_t i = 0; i < args->via.map.size; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
            k->via.str.size > 64)
            return hf_fail(c, HF_EBADREQ,
                           "field names must be 1 to 64 byte strings");
        if (is_one_of(k, own, NOWN) || (skip && is_one_of(k, &skip, 1)))
            continue;
        if (is_one_of(k, reserved, 5))
            return hf_fail(c, HF_EBADREQ, "'%.*s' is set by the inbox",
                           (int)k->via.str.size, k->via.str.ptr);
        if (++*n > EXTRA_MAX)
            return hf_fail(c, HF_EBADREQ, "at most %d extra fields", EXTRA_MAX);
    }
    return 0;
}

/* Drops the oldest item when the inbox holds more than INBOX_MAX. */
struct oldest {
    uint64_t id;
    int unread;
    msgpack_zone zone;
};

static int
oldest_cb(void *arg, hf_slice key, hf_slice val)
{
    struct oldest *o = arg;
    msgpack_object m;
    size_t off = 0;
    o->id = hf_util_key_id_of(key, 2);
    if (hf_unpack_next(val.data, val.len, &off, &o->zone, &m) == 0)
        o->unread = !hf_util_field_bool(&m, "read");
    return 1;
}

static int
trim(hf_ctx *c, uint64_t *unread, uint64_t *count)
{
    struct oldest o = {0};
    char k[NKEY_LEN];
    int rv;

    if (*count <= INBOX_MAX)
        return 0;
    msgpack_zone_init(&o.zone, 1024);
    rv = hf_list(c, (hf_slice){"n:", 2}, (hf_slice){"n;", 2}, 0, 1, oldest_cb,
                 &o);
    msgpack_zone_destroy(&o.zone);
    if (rv != 0 || o.id == 0)
        return rv;
    if ((rv = hf_del(c, k, nkey(k, o.id))) != 0)
        return rv;
    (*count)--;
    if (o.unread && *unread > 0)
        (*unread)--;
    return 0;
}

/* A notification's own fields, checked: what notify stores and what
 * notify_many checks once before relaying. */
struct note {
    const char *title, *msg, *type, *link;
    size_t tl, ml, yl, ll;
    int prio;
    uint32_t nextra;
};

/* Checks notify's arguments into *n (skip: one more field that is not an
 * extra, or NULL). The priority defaults to medium. */
static int
check_note(hf_ctx *c, const msgpack_object *args, const char *skip,
           struct note *n)
{
    int rv;

    memset(n, 0, sizeof(*n));
    n->prio = 1; /* medium */
    if ((rv = hf_arg_str(c, args, "title", 1, TITLE_MAX, &n->title, &n->tl)) ||
        (rv = hf_arg_str(c, args, "message", 1, MESSAGE_MAX, &n->msg,
                         &n->ml)) ||
        (rv = hf_util_arg_enum(c, args, "priority", 0, priorities, 3,
                               &n->prio)) ||
        (rv = hf_arg_str(c, args, "type", 0, TYPE_MAX, &n->type, &n->yl)) ||
        (rv = hf_util_arg_text(c, args, "link", 0, LINK_MAX, &n->link,
                               &n->ll)) ||
        (rv = check_extras(c, args, skip, &n->nextra)))
        return rv;
    return 0;
}

static void
pack_opt_str(msgpack_packer *pk, const char *k, const char *v, size_t n)
{
    hf_pack_cstr(pk, k);
    if (v)
        hf_pack_str(pk, v, n);
    else
        msgpack_pack_nil(pk);
}

static int
notify(hf_ctx *c, const msgpack_object *args)
{
    struct note n;
    int rv;
    uint64_t id, unread, count;
    char k[NKEY_LEN];
    hf_util_rec r = {0};
    msgpack_packer *pk;

    if ((rv = check_note(c, args, NULL, &n)) != 0)
        return rv;

    id = hf_util_get_u64(c, "last") + 1;
    unread = hf_util_get_u64(c, "unread") + 1;
    count = hf_util_get_u64(c, "count") + 1;
    pk = hf_util_rec_begin(&r);
    msgpack_pack_map(pk, 9 + n.nextra);
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, id);
    hf_pack_cstr(pk, "title");
    hf_pack_str(pk, n.title, n.tl);
    hf_pack_cstr(pk, "message");
    hf_pack_str(pk, n.msg, n.ml);
    hf_pack_cstr(pk, "priority");
    hf_pack_cstr(pk, priorities[n.prio]);
    pack_opt_str(pk, "type", n.type, n.yl);
    pack_opt_str(pk, "link", n.link, n.ll);
    hf_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, hf_now(c));
    hf_pack_cstr(pk, "read");
    msgpack_pack_false(pk);
    hf_pack_cstr(pk, "from");
    hf_pack_cstr(pk, hf_caller(c));
    for (uint32_t i = 0; i < args->via.map.size; i++) {
        const msgpack_object_kv *kv = &args->via.map.ptr[i];
        if (is_one_of(&kv->key, own, NOWN))
            continue;
        msgpack_pack_object(pk, kv->key);
        msgpack_pack_object(pk, kv->val);
    }
    if (r.buf.len > ITEM_MAX) {
        rv = hf_fail(c, HF_EBADREQ, "the notification is over %d bytes",
                     ITEM_MAX);
        goto out;
    }
    if ((rv = hf_util_rec_put(c, &r, k, nkey(k, id))) != 0 ||
        (rv = trim(c, &unread, &count)) != 0 ||
        (rv = hf_util_put_u64(c, "last", id)) != 0 ||
        (rv = hf_util_put_u64(c, "unread", unread)) != 0 ||
        (rv = hf_util_put_u64(c, "count", count)) != 0)
        goto out;
    hf_pack_raw(hf_pk(c), (hf_slice){r.buf.data, r.buf.len});
    if ((rv = hf_emit(c, "notification", NULL)) != 0)
        goto out;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 2);
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, id);
    hf_pack_cstr(pk, "unread");
    msgpack_pack_uint64(pk, unread);
    rv = hf_reply(c);
out:
    hf_util_rec_free(&r);
    return rv;
}

/* notify_many {users, ...}: checks the notification once, then one
 * notify per distinct user through the outbox, all in this unit. */
static int
notify_many(hf_ctx *c, const msgpack_object *args)
{
    static const char *const skip[] = {"users"};
    const msgpack_object *users = hf_arg(args, "users");
    struct note n;
    hf_util_rec one = {0};
    msgpack_packer *pk;
    uint32_t sent = 0;
    int rv;

    if ((rv = check_note(c, args, "users", &n)) != 0)
        return rv;
    if (hf_arg(args, "by") != NULL)
        return hf_fail(c, HF_EBADREQ, "'by' is set by notify_many");
    if (n.nextra >= EXTRA_MAX) /* "by" is one more at the inbox */
        return hf_fail(c, HF_EBADREQ, "at most %d extra fields",
                       EXTRA_MAX - 1);
    if (users == NULL || users->type != MSGPACK_OBJECT_ARRAY ||
        users->via.array.size == 0 || users->via.array.size > MANY_MAX)
        return hf_fail(c, HF_EBADREQ,
                       "'users' must be a list of 1 to %d user names",
                       MANY_MAX);
    /* Every name first: a bad one refuses the whole call, sending none. */
    for (uint32_t i = 0; i < users->via.array.size; i++) {
        const msgpack_object *u = &users->via.array.ptr[i];
        char to[HF_ADDR_MAX + 8];
        size_t kl;
        int len = u->type == MSGPACK_OBJECT_STR && u->via.str.size > 0 &&
                          u->via.str.size <= HF_NAME_MAX
                      ? snprintf(to, sizeof(to), "user/%.*s",
                                 (int)u->via.str.size, u->via.str.ptr)
                      : -1;
        if (len < 0 || hf_addr_check(to, (size_t)len, &kl) != 0)
            return hf_fail(c, HF_EBADREQ,
                           "'users' must hold user names (1 to 128 of A-Z "
                           "a-z 0-9 . _ : @ -)");
    }
    /* What each inbox is sent, packed once. It must fit an item there,
     * with the fields the inbox adds (id, at, read, from = this address,
     * a null type and link): refused here, not dropped there. */
    pk = hf_util_rec_begin(&one);
    hf_util_pack_map_except(pk, args, skip, 1, 1);
    hf_util_kv_str(pk, "by", hf_caller(c));
    if (one.buf.len + 64 + strlen(hf_self(c)) > ITEM_MAX) {
        hf_util_rec_free(&one);
        return hf_fail(c, HF_EBADREQ, "the notification is over %d bytes",
                       ITEM_MAX);
    }
    for (uint32_t i = 0; i < users->via.array.size; i++) {
        const msgpack_object *u = &users->via.array.ptr[i];
        char to[HF_ADDR_MAX + 8];
        int dup = 0;

        for (uint32_t j = 0; j < i && !dup; j++) /* once per user */
            dup = users->via.array.ptr[j].via.str.size == u->via.str.size &&
                  memcmp(users->via.array.ptr[j].via.str.ptr, u->via.str.ptr,
                         u->via.str.size) == 0;
        if (dup)
            continue;
        snprintf(to, sizeof(to), "user/%.*s", (int)u->via.str.size,
                 u->via.str.ptr);
        hf_pack_raw(hf_pk(c), (hf_slice){one.buf.data, one.buf.len});
        if ((rv = hf_send(c, to, "notify")) != 0) {
            hf_util_rec_free(&one);
            return rv;
        }
        sent++;
    }
    hf_util_rec_free(&one);
    msgpack_pack_map(hf_pk(c), 1);
    hf_util_kv_int(hf_pk(c), "sent", sent);
    return hf_reply(c);
}

struct page {
    hf_buf raw; /* the items, concatenated msgpack maps */
    uint32_t n, want;
    int unread_only, more;
    const char *type; /* list {type}: only items of this type */
    size_t tl;
    msgpack_zone zone;
};

static int
page_cb(void *arg, hf_slice key, hf_slice val)
{
    struct page *p = arg;
    (void)key;
    if (p->unread_only || p->type) {
        msgpack_object m;
        size_t off = 0;
        int skip = hf_unpack_next(val.data, val.len, &off, &p->zone, &m) != 0 ||
                   (p->unread_only && hf_util_field_bool(&m, "read")) ||
                   (p->type && !hf_util_field_is(&m, "type", p->type, p->tl));
        msgpack_zone_clear(&p->zone);
        if (skip)
            return 0;
    }
    if (p->n == p->want) {
        p->more = 1;
        return 1;
    }
    if (hf_buf_append(&p->raw, val.data, val.len) != 0)
        return 1;
    p->n++;
    return 0;
}

static int
list(hf_ctx *c, const msgpack_object *args)
{
    int64_t limit = LIMIT_DEFAULT, before = 0;
    struct page p = {0};
    char hi[NKEY_LEN];
    size_t hil = 2;
    msgpack_packer *pk;
    int rv;

    if ((rv = check_owner(c)) ||
        (rv = hf_util_arg_bool(c, args, "unread_only", 0, &p.unread_only)) ||
        (rv = hf_arg_str(c, args, "type", 0, TYPE_MAX, &p.type, &p.tl)) ||
        (rv = hf_arg_int(c, args, "limit", 0, 1, LIMIT_MAX, &limit)) ||
        (rv = hf_arg_int(c, args, "before", 0, 1, INT64_MAX, &before)))
        return rv;
    p.want = (uint32_t)limit;
    if (before > 0)
        hil = nkey(hi, (uint64_t)before);
    else
        memcpy(hi, "n;", 2); /* just past every "n:" key */
    msgpack_zone_init(&p.zone, 1024);
    /* Filtered pages stop at limit + 1 matches, not limit + 1 keys (the
     * inbox is bounded, so a filter scans at most INBOX_MAX items). */
    rv = hf_list(c, (hf_slice){"n:", 2}, (hf_slice){hi, hil}, 1,
                 p.unread_only || p.type ? 0 : (size_t)limit + 1, page_cb, &p);
    msgpack_zone_destroy(&p.zone);
    if (rv == 0) {
        pk = hf_pk(c);
        msgpack_pack_map(pk, 3);
        hf_pack_cstr(pk, "items");
        msgpack_pack_array(pk, p.n);
        if (p.n > 0) /* the stored maps, as they are */
            hf_pack_raw(pk, (hf_slice){p.raw.data, p.raw.len});
        hf_pack_cstr(pk, "unread");
        msgpack_pack_uint64(pk, hf_util_get_u64(c, "unread"));
        hf_pack_cstr(pk, "more");
        if (p.more)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        rv = hf_reply(c);
    }
    hf_buf_free(&p.raw);
    return rv;
}

/* Rewrites item id with read = true. *was_unread tells whether it changed
 * anything. HF_ENOTFOUND (with a message) for an unknown id. */
static int
mark_one(hf_ctx *c, uint64_t id, int *was_unread)
{
    static const char *const replaced[] = {"read", "read_at"};
    char k[NKEY_LEN];
    size_t kl = nkey(k, id);
    msgpack_zone z;
    msgpack_object m;
    hf_util_rec r = {0};
    msgpack_packer *pk;
    int rv;

    *was_unread = 0;
    msgpack_zone_init(&z, 1024);
    rv = hf_util_load(c, k, kl, &z, &m);
    if (rv == HF_ENOTFOUND)
        rv = hf_fail(c, HF_ENOTFOUND, "no notification %llu",
                     (unsigned long long)id);
    if (rv == 0 && !hf_util_field_bool(&m, "read")) {
        *was_unread = 1;
        pk = hf_util_rec_begin(&r);
        hf_util_pack_map_except(pk, &m, replaced, 2, 2);
        hf_pack_cstr(pk, "read");
        msgpack_pack_true(pk);
        hf_pack_cstr(pk, "read_at");
        msgpack_pack_int64(pk, hf_now(c));
        rv = hf_util_rec_put(c, &r, k, kl);
    }
    hf_util_rec_free(&r);
    msgpack_zone_destroy(&z);
    return rv;
}

/* Collects the ids of unread items (at most INBOX_MAX are kept). */
struct ids {
    uint64_t *v;
    size_t n, cap;
    msgpack_zone zone;
};

static int
unread_ids_cb(void *arg, hf_slice key, hf_slice val)
{
    struct ids *s = arg;
    msgpack_object m;
    size_t off = 0;
    int unread = hf_unpack_next(val.data, val.len, &off, &s->zone, &m) == 0 &&
                 !hf_util_field_bool(&m, "read");
    msgpack_zone_clear(&s->zone);
    if (!unread)
        return 0;
    HF_VEC_PUSH(s->v, s->n, s->cap, 64, hf_util_key_id_of(key, 2));
    return 0;
}

static int
mark_all(hf_ctx *c, uint64_t *marked)
{
    struct ids s = {0};
    int rv, changed;

    msgpack_zone_init(&s.zone, 1024);
    /* Ids first, writes after: the scan must not see writes made under
     * it, and staging a write may move what the scan is reading. */
    rv = hf_list(c, (hf_slice){"n:", 2}, (hf_slice){"n;", 2}, 0, 0,
                 unread_ids_cb, &s);
    msgpack_zone_destroy(&s.zone);
    *marked = 0;
    for (size_t i = 0; rv == 0 && i < s.n; i++)
        if ((rv = mark_one(c, s.v[i], &changed)) == 0 && changed)
            (*marked)++;
    free(s.v);
    return rv;
}

static int
mark_read(hf_ctx *c, const msgpack_object *args)
{
    int64_t id = 0;
    int all = 0, changed, rv;
    uint64_t marked = 0, unread;
    msgpack_packer *pk;

    if ((rv = check_owner(c)) ||
        (rv = hf_arg_int(c, args, "id", 0, 1, INT64_MAX, &id)) ||
        (rv = hf_util_arg_bool(c, args, "all", 0, &all)))
        return rv;
    if (hf_arg(args, "all") != NULL && !all)
        return hf_fail(c, HF_EBADREQ, "'all' must be true when given");
    if ((id > 0) == all)
        return hf_fail(c, HF_EBADREQ,
                       all ? "give 'id' or 'all', not both"
                           : "'id' or 'all' is required");
    unread = hf_util_get_u64(c, "unread");
    if (all) {
        rv = mark_all(c, &marked);
    } else {
        rv = mark_one(c, (uint64_t)id, &changed);
        marked = (uint64_t)changed;
    }
    if (rv != 0)
        return rv;
    unread = marked > unread ? 0 : unread - marked;
    if (marked > 0) {
        if ((rv = hf_util_put_u64(c, "unread", unread)) != 0)
            return rv;
        pk = hf_pk(c);
        msgpack_pack_map(pk, 2);
        if (all) {
            hf_pack_cstr(pk, "all");
            msgpack_pack_true(pk);
        } else {
            hf_pack_cstr(pk, "ids");
            msgpack_pack_array(pk, 1);
            msgpack_pack_uint64(pk, (uint64_t)id);
        }
        hf_pack_cstr(pk, "unread");
        msgpack_pack_uint64(pk, unread);
        if ((rv = hf_emit(c, "notification_read", NULL)) != 0)
            return rv;
    }
    pk = hf_pk(c);
    msgpack_pack_map(pk, 2);
    hf_pack_cstr(pk, "marked");
    msgpack_pack_uint64(pk, marked);
    hf_pack_cstr(pk, "unread");
    msgpack_pack_uint64(pk, unread);
    return hf_reply(c);
}

static int
unread_count(hf_ctx *c, const msgpack_object *args)
{
    msgpack_packer *pk;
    int rv;

    (void)args;
    if ((rv = check_owner(c)) != 0)
        return rv;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 1);
    hf_pack_cstr(pk, "count");
    msgpack_pack_uint64(pk, hf_util_get_u64(c, "unread"));
    return hf_reply(c);
}

static const struct hf_method methods[] = {
    {.name = "notify",
     .fn = notify,
     .roles = HF_ROLE_SERVICE | HF_ROLE_ADMIN | HF_ROLE_ACTOR},
    {.name = "list", .fn = list, .roles = HF_ROLE_ANY},
    {.name = "mark_read", .fn = mark_read, .roles = HF_ROLE_ANY},
    {.name = "unread", .fn = unread_count, .roles = HF_ROLE_ANY},
    {.name = "notify_many",
     .fn = notify_many,
     .roles = HF_ROLE_SERVICE | HF_ROLE_ADMIN},
};

const struct hf_kind hf_kind_user = {
    .name = "user",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
};
