/*
 * room.c - room/NAME: a chat room with history, read receipts and soft
 * deletes. Typing indicators are the protocol's signal op and presence
 * comes from subscriptions; neither passes through this kind.
 *
 *   send {type?: text|image|file|system, body, client_id?} -> {id, seq, at}
 *   history {before?, after?, limit?}    -> {messages, more}
 *   read {upto}                          -> {upto}
 *   delivered {upto}                     -> {upto}
 *   unread {}                            -> {count[, capped]}
 *   delete {id}                          -> {id, deleted}
 *   profile {name, picture?}             -> {user, name, picture}
 *
 * Events: message (the stored message), message_deleted {id, by, at},
 * read {user, upto}, delivered {user, upto}, profile {user, name,
 * picture}.
 *
 * Design notes. Keys:
 *   "last"                   be64: the newest message id (ids are 1, 2, ...)
 *   "m:" be64 id             map{id, seq, type, body, author, name?,
 *                                picture?, at, client_id?, deleted?,
 *                                deleted_at?, deleted_by?}
 *   "c:" author \0 client_id be64 id: the client_id index, per author
 *   "r:" user                be64: the user's read mark
 *   "d:" user                be64: the user's delivered mark
 *   "p:" user                map{name, picture?}: the user's profile here
 * Message keys sort by id, so a history page is one range scan of "m:"
 * and its stored values go out as they are. The stored map is exactly the
 * "message" event's data, seq included: the seq is known before the emit
 * (hf_seq + 1) because nothing else emits in between.
 *
 * A client_id makes send idempotent for its author, forever: a retry
 * finds the index, returns the first send's reply and posts nothing.
 * Indexing per author keeps one user's ids from colliding with another's.
 *
 * A message carries its author's display name and picture as they were
 * when it was sent: the profile set in this room, else the token's name
 * and picture claims (hf_caller_claim), else neither. History shows
 * what was said under which name; a profile event lets clients relabel.
 */
#include <string.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/env.h"

#define BODY_MAX        4000 /* bytes in a body (packed size for maps) */
#define CLIENT_ID_MAX   64
#define LIMIT_DEFAULT   50
#define LIMIT_MAX       200
#define UNREAD_SCAN_MAX 10000 /* messages unread looks at, at most */
#define NAME_MAX_       64    /* bytes in a display name */
#define PICTURE_MAX     2000  /* bytes in a picture reference (a URL) */

enum { T_TEXT, T_IMAGE, T_FILE, T_SYSTEM };
static const char *const types[] = {"text", "image", "file", "system"};

/* "m:" be64 id */
#define MKEY_LEN 10
static size_t
mkey(char *out, uint64_t id)
{
    return hf_util_key_id(out, "m:", id);
}

/* "<p>:" user (the caller), p = 'r' (read mark), 'd' (delivered mark)
 * or 'p' (profile). HF_EUNAUTH for an anonymous caller: receipts and
 * profiles belong to someone. */
static int
ukey(hf_ctx *c, char p, char *out, size_t *len)
{
    const char *sub = hf_caller(c);
    size_t sl = strlen(sub);

    if (sl == 0)
        return hf_fail(c, HF_EUNAUTH, "%s need a signed-in caller",
                       p == 'p' ? "profiles" : "receipts");
    if (2 + sl > HF_UTIL_KEY_MAX)
        return hf_fail(c, HF_EBADREQ, "caller subject too long");
    out[0] = p;
    out[1] = ':';
    memcpy(out + 2, sub, sl);
    *len = 2 + sl;
    return 0;
}

static int
rkey(hf_ctx *c, char *out, size_t *len)
{
    return ukey(c, 'r', out, len);
}

/* The caller's display name and picture (either may be NULL): the room
 * profile, else the token's claims. *z holds the profile's strings. */
static void
author_display(hf_ctx *c, msgpack_zone *z, hf_slice *name, hf_slice *pic)
{
    char pk[HF_UTIL_KEY_MAX];
    size_t pkl = 0;
    msgpack_object p;
    const msgpack_object *v;

    *name = (hf_slice){NULL, 0};
    *pic = (hf_slice){NULL, 0};
    /* Anonymous callers have no profile (and ukey would refuse them). */
    if (hf_caller(c)[0] != '\0' && ukey(c, 'p', pk, &pkl) == 0) {
        if (hf_util_load(c, pk, pkl, z, &p) == 0) {
            if ((v = hf_arg(&p, "name")) && v->type == MSGPACK_OBJECT_STR)
                *name = (hf_slice){v->via.str.ptr, v->via.str.size};
            if ((v = hf_arg(&p, "picture")) && v->type == MSGPACK_OBJECT_STR)
                *pic = (hf_slice){v->via.str.ptr, v->via.str.size};
            return;
        }
    }
    *name = hf_caller_claim(c, "name");
    *pic = hf_caller_claim(c, "picture");
}

/* Checks body for a message type: a string for every type; for image and
 * file also a map with a string "url" (name, size, mime... as the client
 * likes), at most BODY_MAX bytes packed. */
static int
check_body(hf_ctx *c, const msgpack_object *args, int type)
{
    const msgpack_object *b = hf_arg(args, "body");
    const char *s;
    size_t n;

    if (b != NULL && b->type == MSGPACK_OBJECT_MAP &&
        (type == T_IMAGE || type == T_FILE)) {
        hf_util_rec r = {0};
        size_t packed;
        int rv = hf_arg_str(c, b, "url", 1, BODY_MAX, &s, &n);
        if (rv != 0)
            return hf_fail(c, HF_EBADREQ,
                           "'body' must be a string or a map with a 'url' "
                           "string");
        msgpack_pack_object(hf_util_rec_begin(&r), *b);
        packed = r.buf.len;
        hf_util_rec_free(&r);
        if (packed > BODY_MAX)
            return hf_fail(c, HF_EBADREQ, "'body' must be at most %d bytes",
                           BODY_MAX);
        return 0;
    }
    return hf_arg_str(c, args, "body", 1, BODY_MAX, &s, &n);
}

/* The client_id index key of the caller's client_id (cl bytes). */
static int
ckey(hf_ctx *c, const char *cid, size_t cl, char *out, size_t *len)
{
    const char *sub = hf_caller(c);
    size_t sl = strlen(sub);

    if (2 + sl + 1 + cl > HF_UTIL_KEY_MAX)
        return hf_fail(c, HF_EBADREQ,
                       "caller subject too long for a client_id");
    memcpy(out, "c:", 2);
    memcpy(out + 2, sub, sl);
    out[2 + sl] = '\0';
    memcpy(out + 3 + sl, cid, cl);
    *len = 3 + sl + cl;
    return 0;
}

static int
reply_sent(hf_ctx *c, uint64_t id, uint64_t seq, int64_t at)
{
    msgpack_packer *pk = hf_pk(c);
    msgpack_pack_map(pk, 3);
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, id);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, seq);
    hf_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, at);
    return hf_reply(c);
}

/* A retried send: the first send's reply, or HF_ENOTFOUND to post. */
static int
resend(hf_ctx *c, const char *key, size_t klen)
{
    hf_slice v;
    msgpack_zone z;
    msgpack_object m;
    char mk[MKEY_LEN];
    int rv;

    if (hf_get(c, key, klen, &v) != 0 || v.len != 8)
        return HF_ENOTFOUND;
    msgpack_zone_init(&z, 512);
    rv = hf_util_load(c, mk, mkey(mk, hf_get_be64(v.data)), &z, &m);
    if (rv == 0)
        rv = reply_sent(c, (uint64_t)hf_util_field_int(&m, "id", 0),
                        (uint64_t)hf_util_field_int(&m, "seq", 0),
                        hf_util_field_int(&m, "at", 0));
    msgpack_zone_destroy(&z);
    return rv;
}

static int
send_msg(hf_ctx *c, const msgpack_object *args)
{
    int type = T_TEXT, rv;
    const char *cid, *author = hf_caller(c);
    size_t cl, ckl = 0;
    char ck[HF_UTIL_KEY_MAX], mk[MKEY_LEN], be[8];
    uint64_t id, seq, got;
    int64_t now = hf_now(c);
    hf_util_rec r = {0};
    msgpack_packer *pk;
    msgpack_zone z;
    hf_slice name, pic;

    if ((rv = hf_util_arg_enum(c, args, "type", 0, types, 4, &type)) != 0 ||
        (rv = check_body(c, args, type)) != 0 ||
        (rv = hf_arg_str(c, args, "client_id", 0, CLIENT_ID_MAX, &cid, &cl)) !=
            0)
        return rv;
    if (type == T_SYSTEM && !hf_util_privileged(c))
        return hf_fail(c, HF_EFORBIDDEN,
                       "system messages are for admins and services");
    if (cid != NULL) {
        if ((rv = ckey(c, cid, cl, ck, &ckl)) != 0)
            return rv;
        if ((rv = resend(c, ck, ckl)) != HF_ENOTFOUND)
            return rv;
    }

    id = hf_util_get_u64(c, "last") + 1;
    seq = hf_seq(c) + 1;
    msgpack_zone_init(&z, 256);
    author_display(c, &z, &name, &pic);
    pk = hf_util_rec_begin(&r);
    msgpack_pack_map(pk, 6 + (name.len > 0) + (pic.len > 0) + (cid != NULL));
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, id);
    hf_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, seq);
    hf_pack_cstr(pk, "type");
    hf_pack_cstr(pk, types[type]);
    hf_pack_cstr(pk, "body");
    msgpack_pack_object(pk, *hf_arg(args, "body"));
    hf_pack_cstr(pk, "author");
    hf_pack_cstr(pk, author);
    if (name.len > 0) {
        hf_pack_cstr(pk, "name");
        hf_pack_str(pk, name.data, name.len);
    }
    if (pic.len > 0) {
        hf_pack_cstr(pk, "picture");
        hf_pack_str(pk, pic.data, pic.len);
    }
    hf_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, now);
    if (cid != NULL) {
        hf_pack_cstr(pk, "client_id");
        hf_pack_str(pk, cid, cl);
    }
    if ((rv = hf_util_rec_put(c, &r, mk, mkey(mk, id))) != 0 ||
        (rv = hf_util_put_u64(c, "last", id)) != 0)
        goto out;
    if (cid != NULL) {
        hf_put_be64(be, id);
        if ((rv = hf_put(c, ck, ckl, be, 8)) != 0)
            goto out;
    }
    hf_pack_raw(hf_pk(c), (hf_slice){r.buf.data, r.buf.len});
    if ((rv = hf_emit(c, "message", &got)) != 0)
        goto out;
    if (got != seq) { /* the stored seq would lie: refuse the unit */
        rv = hf_fail(c, HF_EINTERNAL, "event seq %llu, expected %llu",
                     (unsigned long long)got, (unsigned long long)seq);
        goto out;
    }
    rv = reply_sent(c, id, seq, now);
out:
    hf_util_rec_free(&r);
    msgpack_zone_destroy(&z);
    return rv;
}

struct page {
    hf_buf raw; /* the messages, concatenated msgpack maps */
    uint32_t n, want;
    int more;
};

static int
page_cb(void *arg, hf_slice key, hf_slice val)
{
    struct page *p = arg;
    (void)key;
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
history(hf_ctx *c, const msgpack_object *args)
{
    int64_t before = 0, after = -1, limit = LIMIT_DEFAULT;
    char lo[MKEY_LEN], hi[MKEY_LEN];
    size_t lol, hil;
    struct page p = {0};
    msgpack_packer *pk;
    int rv;

    if ((rv = hf_arg_int(c, args, "before", 0, 1, INT64_MAX, &before)) ||
        (rv = hf_arg_int(c, args, "after", 0, 0, INT64_MAX - 1, &after)) ||
        (rv = hf_arg_int(c, args, "limit", 0, 1, LIMIT_MAX, &limit)))
        return rv;
    p.want = (uint32_t)limit;
    lol = mkey(lo, after >= 0 ? (uint64_t)after + 1 : 0);
    if (before > 0)
        hil = mkey(hi, (uint64_t)before);
    else
        memcpy(hi, "m;", 2), hil = 2; /* just past every "m:" key */
    /* Newest first unless paging forward from `after`. */
    if (before > 0 && after >= 0 && after + 1 >= before)
        rv = 0; /* an empty range */
    else
        rv = hf_list(c, (hf_slice){lo, lol}, (hf_slice){hi, hil}, after < 0,
                     (size_t)limit + 1, page_cb, &p);
    if (rv == 0) {
        pk = hf_pk(c);
        msgpack_pack_map(pk, 2);
        hf_pack_cstr(pk, "messages");
        msgpack_pack_array(pk, p.n);
        if (p.n > 0) /* the stored maps, as they are */
            hf_pack_raw(pk, (hf_slice){p.raw.data, p.raw.len});
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

/* read {upto} and delivered {upto}: moves the caller's mark of that kind
 * ('r' or 'd') forward and emits an event named `type`. */
static int
move_mark(hf_ctx *c, const msgpack_object *args, char which, const char *type)
{
    char rk[HF_UTIL_KEY_MAX], be[8];
    size_t rkl = 0;
    int64_t upto;
    uint64_t mark, last;
    hf_slice v;
    msgpack_packer *pk;
    int rv;

    if ((rv = hf_arg_int(c, args, "upto", 1, 1, INT64_MAX, &upto)) != 0 ||
        (rv = ukey(c, which, rk, &rkl)) != 0)
        return rv;
    last = hf_util_get_u64(c, "last");
    if ((uint64_t)upto > last)
        return hf_fail(c, HF_ENOTFOUND, "no message %lld", (long long)upto);
    mark = hf_get(c, rk, rkl, &v) == 0 && v.len == 8 ? hf_get_be64(v.data) : 0;
    if ((uint64_t)upto > mark) { /* marks only move forward */
        mark = (uint64_t)upto;
        hf_put_be64(be, mark);
        if ((rv = hf_put(c, rk, rkl, be, 8)) != 0)
            return rv;
        pk = hf_pk(c);
        msgpack_pack_map(pk, 2);
        hf_pack_cstr(pk, "user");
        hf_pack_cstr(pk, hf_caller(c));
        hf_pack_cstr(pk, "upto");
        msgpack_pack_uint64(pk, mark);
        if ((rv = hf_emit(c, type, NULL)) != 0)
            return rv;
    }
    pk = hf_pk(c);
    msgpack_pack_map(pk, 1);
    hf_pack_cstr(pk, "upto");
    msgpack_pack_uint64(pk, mark);
    return hf_reply(c);
}

static int
read_mark(hf_ctx *c, const msgpack_object *args)
{
    return move_mark(c, args, 'r', "read");
}

/* delivered {upto}: the client has the messages up to upto (on screen or
 * not); senders show "delivered" until a read mark passes them. */
static int
delivered_mark(hf_ctx *c, const msgpack_object *args)
{
    return move_mark(c, args, 'd', "delivered");
}

/* profile {name, picture?}: how the caller appears in this room's new
 * messages; emits profile {user, name, picture} so clients can relabel. */
static int
set_profile(hf_ctx *c, const msgpack_object *args)
{
    const char *name, *pic;
    size_t nl, pl, kl = 0;
    char k[HF_UTIL_KEY_MAX];
    hf_util_rec r = {0};
    msgpack_packer *pk;
    int rv;

    if ((rv = ukey(c, 'p', k, &kl)) != 0 ||
        (rv = hf_util_arg_text(c, args, "name", 1, NAME_MAX_, &name, &nl)) ||
        (rv = hf_util_arg_text(c, args, "picture", 0, PICTURE_MAX, &pic, &pl)))
        return rv;
    pk = hf_util_rec_begin(&r);
    msgpack_pack_map(pk, 1 + (pic != NULL));
    hf_pack_cstr(pk, "name");
    hf_pack_str(pk, name, nl);
    if (pic != NULL) {
        hf_pack_cstr(pk, "picture");
        hf_pack_str(pk, pic, pl);
    }
    rv = hf_util_rec_put(c, &r, k, kl);
    hf_util_rec_free(&r);
    for (int i = 0; rv == 0 && i < 2; i++) {
        pk = hf_pk(c);
        msgpack_pack_map(pk, 3);
        hf_util_kv_str(pk, "user", hf_caller(c));
        hf_pack_cstr(pk, "name");
        hf_pack_str(pk, name, nl);
        hf_pack_cstr(pk, "picture");
        if (pic != NULL)
            hf_pack_str(pk, pic, pl);
        else
            msgpack_pack_nil(pk);
        rv = i == 0 ? hf_emit(c, "profile", NULL) : hf_reply(c);
    }
    return rv;
}

struct count {
    const char *me;
    size_t mel;
    uint32_t count, seen;
    msgpack_zone zone;
};

static int
count_cb(void *arg, hf_slice key, hf_slice val)
{
    struct count *n = arg;
    msgpack_object m;
    size_t off = 0;
    (void)key;
    n->seen++;
    if (hf_unpack_next(val.data, val.len, &off, &n->zone, &m) == 0 &&
        !hf_util_field_is(&m, "author", n->me, n->mel) &&
        !hf_util_field_bool(&m, "deleted"))
        n->count++;
    msgpack_zone_clear(&n->zone);
    return 0;
}

static int
unread(hf_ctx *c, const msgpack_object *args)
{
    char rk[HF_UTIL_KEY_MAX], lo[MKEY_LEN];
    size_t rkl = 0;
    hf_slice v;
    uint64_t mark;
    struct count n = {.me = hf_caller(c)};
    msgpack_packer *pk;
    int rv;

    (void)args;
    if ((rv = rkey(c, rk, &rkl)) != 0)
        return rv;
    mark = hf_get(c, rk, rkl, &v) == 0 && v.len == 8 ? hf_get_be64(v.data) : 0;
    n.mel = strlen(n.me);
    msgpack_zone_init(&n.zone, 1024);
    rv = hf_list(c, (hf_slice){lo, mkey(lo, mark + 1)}, (hf_slice){"m;", 2}, 0,
                 UNREAD_SCAN_MAX, count_cb, &n);
    msgpack_zone_destroy(&n.zone);
    if (rv != 0)
        return rv;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 1 + (n.seen >= UNREAD_SCAN_MAX));
    hf_pack_cstr(pk, "count");
    msgpack_pack_uint32(pk, n.count);
    if (n.seen >= UNREAD_SCAN_MAX) {
        hf_pack_cstr(pk, "capped");
        msgpack_pack_true(pk);
    }
    return hf_reply(c);
}

static int
reply_deleted(hf_ctx *c, uint64_t id)
{
    msgpack_packer *pk = hf_pk(c);
    msgpack_pack_map(pk, 2);
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, id);
    hf_pack_cstr(pk, "deleted");
    msgpack_pack_true(pk);
    return hf_reply(c);
}

static int
delete_msg(hf_ctx *c, const msgpack_object *args)
{
    static const char *const replaced[] = {"body", "deleted", "deleted_at",
                                           "deleted_by"};
    const char *me = hf_caller(c);
    int64_t id;
    char mk[MKEY_LEN];
    size_t mkl;
    msgpack_zone z;
    msgpack_object m;
    hf_util_rec r = {0};
    msgpack_packer *pk;
    int rv;

    if ((rv = hf_arg_int(c, args, "id", 1, 1, INT64_MAX, &id)) != 0)
        return rv;
    mkl = mkey(mk, (uint64_t)id);
    msgpack_zone_init(&z, 1024);
    if ((rv = hf_util_load(c, mk, mkl, &z, &m)) != 0) {
        if (rv == HF_ENOTFOUND)
            rv = hf_fail(c, HF_ENOTFOUND, "no message %lld", (long long)id);
        goto out;
    }
    if ((hf_caller_role(c) & HF_ROLE_ADMIN) == 0 &&
        (*me == '\0' || !hf_util_field_is(&m, "author", me, strlen(me)))) {
        rv = hf_fail(c, HF_EFORBIDDEN,
                     "only the author or an admin may delete a message");
        goto out;
    }
    if (hf_util_field_bool(&m, "deleted")) { /* already: nothing changes */
        rv = reply_deleted(c, (uint64_t)id);
        goto out;
    }
    pk = hf_util_rec_begin(&r);
    hf_util_pack_map_except(pk, &m, replaced, 4, 4);
    hf_pack_cstr(pk, "body");
    hf_pack_cstr(pk, "");
    hf_pack_cstr(pk, "deleted");
    msgpack_pack_true(pk);
    hf_pack_cstr(pk, "deleted_at");
    msgpack_pack_int64(pk, hf_now(c));
    hf_pack_cstr(pk, "deleted_by");
    hf_pack_cstr(pk, me);
    if ((rv = hf_util_rec_put(c, &r, mk, mkl)) != 0)
        goto out;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 3);
    hf_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, (uint64_t)id);
    hf_pack_cstr(pk, "by");
    hf_pack_cstr(pk, me);
    hf_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, hf_now(c));
    if ((rv = hf_emit(c, "message_deleted", NULL)) != 0)
        goto out;
    rv = reply_deleted(c, (uint64_t)id);
out:
    hf_util_rec_free(&r);
    msgpack_zone_destroy(&z);
    return rv;
}

static const struct hf_method methods[] = {
    {.name = "send", .fn = send_msg, .roles = HF_ROLE_ANY},
    {.name = "history", .fn = history, .roles = HF_ROLE_ANY, .pub = 1},
    {.name = "read", .fn = read_mark, .roles = HF_ROLE_ANY},
    {.name = "unread", .fn = unread, .roles = HF_ROLE_ANY},
    {.name = "delete", .fn = delete_msg, .roles = HF_ROLE_ANY},
    {.name = "delivered", .fn = delivered_mark, .roles = HF_ROLE_ANY},
    {.name = "profile", .fn = set_profile, .roles = HF_ROLE_ANY},
};

const struct hf_kind hf_kind_room = {
    .name = "room",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
};
