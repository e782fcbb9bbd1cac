/*
 * poll.c - poll/NAME: a live vote with exact counts.
 *
 *   configure {options: [2..200 strings], closes_at?: ms,
 *              open_options?: bool}  (admin)
 *                               -> tally; conflict once votes exist or
 *                                  the poll is closed
 *   add_option {option}         (admin, or anyone when open_options)
 *                               -> tally; while the poll is open
 *   vote {option, voter?}       -> {option, counts, total, changed}
 *   unvote {voter?}             -> {option, counts, total, changed}
 *   tally {}                    -> {options, counts, total, closed,
 *                                   closes_at?, closed_at?, mine?}
 *   close {}                    (admin) -> tally; conflict when closed
 *
 * Events: poll_configured {options, closes_at?, open_options?, added?},
 * vote_update {option, counts, total, leader, leader_changed?,
 * withdrawn?}, poll_closed {counts, total}.
 *
 * Design notes. State is three kinds of key:
 *   "cfg"        map{options: [str], closes_at?: ms, closed: bool,
 *                    closed_at?: ms, open_options?: true}
 *   "cnt"        map{counts: [n per option], total}
 *   "v:" voter   map{option: index, at: ms}   one per voter
 * The invariant: cnt.counts[i] is the number of "v:" keys whose option is
 * i, and total is their sum. Every handler that touches a vote rewrites
 * the vote key and "cnt" in the same unit, and the engine runs one
 * message at a time per actor, so the invariant holds whatever the
 * concurrency outside. Votes store the option's index: once a vote
 * exists options are only ever appended (add_option), never replaced or
 * reordered, so indexes stay meaningful.
 *
 * The leader is the option with strictly the most votes (none when there
 * are no votes or the top is tied), computed from the counts each time:
 * a vote_update says leader_changed when it moved, so a board announces
 * a new first place without recomputing.
 *
 * A poll is closed when its flag is set (by close or the "close" alarm)
 * or, between closes_at and the alarm actually firing, by the clock: the
 * alarm is at-least-once and may run late, so every check also compares
 * closes_at with now.
 */
#include <string.h>

#include "actors/kinds.h"
#include "actors/util.h"
#include "core/env.h"

#define OPT_MIN   2
#define OPT_MAX   200
#define OPT_LEN   200 /* bytes in an option */
#define VOTER_LEN 128 /* bytes in an explicit voter name */
#define ALARM     "close"

struct poll {
    msgpack_zone zone;
    msgpack_object cfg;
    const msgpack_object *options; /* array of strings, inside cfg */
    uint32_t nopt;
    int64_t closes_at; /* 0: none */
    int64_t closed_at; /* 0: not closed by flag */
    int closed;        /* the flag */
    int open_options;  /* anyone may add_option */
    uint64_t counts[OPT_MAX];
    uint64_t total;
};

static void
poll_init(struct poll *p)
{
    memset(p, 0, sizeof(*p));
    msgpack_zone_init(&p->zone, 1024);
}

static void
poll_fini(struct poll *p)
{
    msgpack_zone_destroy(&p->zone);
}

/* Loads "cfg" and "cnt". HF_ENOTFOUND (with a message) when the poll has
 * not been configured. */
static int
poll_load(hf_ctx *c, struct poll *p)
{
    msgpack_object cnt;
    const msgpack_object *counts;
    int rv;

    rv = hf_util_load(c, "cfg", 3, &p->zone, &p->cfg);
    if (rv == HF_ENOTFOUND)
        return hf_fail(c, HF_ENOTFOUND, "poll %s is not configured",
                       hf_self_name(c));
    if (rv != 0)
        return rv;
    p->options = hf_arg(&p->cfg, "options");
    if (p->options == NULL || p->options->type != MSGPACK_OBJECT_ARRAY ||
        p->options->via.array.size > OPT_MAX)
        return hf_fail(c, HF_EINTERNAL, "poll config is corrupt");
    p->nopt = p->options->via.array.size;
    p->closes_at = hf_util_field_int(&p->cfg, "closes_at", 0);
    p->closed_at = hf_util_field_int(&p->cfg, "closed_at", 0);
    p->closed = hf_util_field_bool(&p->cfg, "closed");
    p->open_options = hf_util_field_bool(&p->cfg, "open_options");
    if ((rv = hf_util_load(c, "cnt", 3, &p->zone, &cnt)) != 0)
        return rv == HF_ENOTFOUND
                   ? hf_fail(c, HF_EINTERNAL, "poll counts are missing")
                   : rv;
    counts = hf_arg(&cnt, "counts");
    if (counts == NULL || counts->type != MSGPACK_OBJECT_ARRAY ||
        counts->via.array.size != p->nopt)
        return hf_fail(c, HF_EINTERNAL, "poll counts are corrupt");
    for (uint32_t i = 0; i < p->nopt; i++) {
        const msgpack_object *n = &counts->via.array.ptr[i];
        p->counts[i] =
            n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? n->via.u64 : 0;
    }
    p->total = (uint64_t)hf_util_field_int(&cnt, "total", 0);
    return 0;
}

static int
poll_closed(hf_ctx *c, const struct poll *p)
{
    return p->closed || (p->closes_at > 0 && hf_now(c) >= p->closes_at);
}

static void
pack_counts(msgpack_packer *pk, const struct poll *p)
{
    hf_pack_cstr(pk, "counts");
    msgpack_pack_array(pk, p->nopt);
    for (uint32_t i = 0; i < p->nopt; i++)
        msgpack_pack_uint64(pk, p->counts[i]);
    hf_pack_cstr(pk, "total");
    msgpack_pack_uint64(pk, p->total);
}

static void
pack_option(msgpack_packer *pk, const struct poll *p, int idx)
{
    hf_pack_cstr(pk, "option");
    if (idx < 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_object(pk, p->options->via.array.ptr[idx]);
}

static int
save_counts(hf_ctx *c, const struct poll *p)
{
    hf_util_rec r = {0};
    msgpack_packer *pk = hf_util_rec_begin(&r);
    int rv;

    msgpack_pack_map(pk, 2);
    pack_counts(pk, p);
    rv = hf_util_rec_put(c, &r, "cnt", 3);
    hf_util_rec_free(&r);
    return rv;
}

/* Writes "cfg" from p (options, closes_at, closed, closed_at). */
static int
save_cfg(hf_ctx *c, const struct poll *p)
{
    hf_util_rec r = {0};
    msgpack_packer *pk = hf_util_rec_begin(&r);
    int rv;

    msgpack_pack_map(pk, 2 + (p->closes_at > 0) + (p->closed_at > 0) +
                             (p->open_options != 0));
    hf_pack_cstr(pk, "options");
    msgpack_pack_object(pk, *p->options);
    hf_pack_cstr(pk, "closed");
    if (p->closed)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    if (p->closes_at > 0) {
        hf_pack_cstr(pk, "closes_at");
        msgpack_pack_int64(pk, p->closes_at);
    }
    if (p->closed_at > 0) {
        hf_pack_cstr(pk, "closed_at");
        msgpack_pack_int64(pk, p->closed_at);
    }
    if (p->open_options) {
        hf_pack_cstr(pk, "open_options");
        msgpack_pack_true(pk);
    }
    rv = hf_util_rec_put(c, &r, "cfg", 3);
    hf_util_rec_free(&r);
    return rv;
}

/* The voter key "v:" voter of the caller, or of the explicit voter
 * argument: required when the caller is anonymous, reserved to admins and
 * services when it names someone other than the caller. */
static int
voter_key(hf_ctx *c, const msgpack_object *args, char *key, size_t *klen)
{
    const char *sub = hf_caller(c), *v;
    size_t sl = strlen(sub), vl;
    int rv;

    if ((rv = hf_arg_str(c, args, "voter", 0, VOTER_LEN, &v, &vl)) != 0)
        return rv;
    if (v == NULL) {
        if (sl == 0)
            return hf_fail(c, HF_EBADREQ,
                           "'voter' is required for an anonymous caller");
        v = sub, vl = sl;
    } else if (sl > 0 && (vl != sl || memcmp(v, sub, sl) != 0) &&
               !hf_util_privileged(c)) {
        return hf_fail(c, HF_EFORBIDDEN,
                       "only admins and services may vote as another voter");
    }
    if (2 + vl > HF_UTIL_KEY_MAX)
        return hf_fail(c, HF_EBADREQ, "voter name too long");
    memcpy(key, "v:", 2);
    memcpy(key + 2, v, vl);
    *klen = 2 + vl;
    return 0;
}

/* The option index of the vote at key, or -1 when there is none. */
static int
vote_of(hf_ctx *c, struct poll *p, const char *key, size_t klen)
{
    msgpack_object v;
    int64_t idx;

    if (hf_util_load(c, key, klen, &p->zone, &v) != 0)
        return -1;
    idx = hf_util_field_int(&v, "option", -1);
    return idx >= 0 && idx < (int64_t)p->nopt ? (int)idx : -1;
}

static int
pack_tally(hf_ctx *c, struct poll *p, int mine)
{
    msgpack_packer *pk = hf_pk(c);
    int closed = poll_closed(c, p);

    msgpack_pack_map(pk,
                     4 + (p->closes_at > 0) + (p->closed_at > 0) + (mine >= 0));
    hf_pack_cstr(pk, "options");
    msgpack_pack_object(pk, *p->options);
    pack_counts(pk, p);
    hf_pack_cstr(pk, "closed");
    if (closed)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    if (p->closes_at > 0) {
        hf_pack_cstr(pk, "closes_at");
        msgpack_pack_int64(pk, p->closes_at);
    }
    if (p->closed_at > 0) {
        hf_pack_cstr(pk, "closed_at");
        msgpack_pack_int64(pk, p->closed_at);
    }
    if (mine >= 0) {
        hf_pack_cstr(pk, "mine");
        msgpack_pack_object(pk, p->options->via.array.ptr[mine]);
    }
    return hf_reply(c);
}

/* Checks the options argument: 2..20 distinct strings of 1..200 bytes. */
static int
check_options(hf_ctx *c, const msgpack_object *o)
{
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return hf_fail(c, HF_EBADREQ, "'options' is required");
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < OPT_MIN ||
        o->via.array.size > OPT_MAX)
        return hf_fail(c, HF_EBADREQ,
                       "'options' must be a list of %d to %d strings", OPT_MIN,
                       OPT_MAX);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *s = &o->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_STR || s->via.str.size == 0 ||
            s->via.str.size > OPT_LEN)
            return hf_fail(c, HF_EBADREQ,
                           "'options' must hold strings of 1 to %d bytes",
                           OPT_LEN);
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *t = &o->via.array.ptr[j];
            if (t->via.str.size == s->via.str.size &&
                memcmp(t->via.str.ptr, s->via.str.ptr, s->via.str.size) == 0)
                return hf_fail(c, HF_EBADREQ, "'options' has '%.*s' twice",
                               (int)s->via.str.size, s->via.str.ptr);
        }
    }
    return 0;
}

/* Emits poll_configured {options[, closes_at][, open_options: true]
 * [, added]}: added is the option add_option appended (NULL: none). */
static int
emit_configured(hf_ctx *c, const struct poll *p, const msgpack_object *added)
{
    msgpack_packer *pk = hf_pk(c);
    msgpack_pack_map(pk, 1 + (p->closes_at > 0) + (p->open_options != 0) +
                             (added != NULL));
    hf_pack_cstr(pk, "options");
    msgpack_pack_object(pk, *p->options);
    if (p->closes_at > 0) {
        hf_pack_cstr(pk, "closes_at");
        msgpack_pack_int64(pk, p->closes_at);
    }
    if (p->open_options) {
        hf_pack_cstr(pk, "open_options");
        msgpack_pack_true(pk);
    }
    if (added != NULL) {
        hf_pack_cstr(pk, "added");
        msgpack_pack_object(pk, *added);
    }
    return hf_emit(c, "poll_configured", NULL);
}

static int
configure(hf_ctx *c, const msgpack_object *args)
{
    const msgpack_object *options = hf_arg(args, "options");
    struct poll p;
    int64_t closes_at = 0;
    int open_options = 0, rv;

    if ((rv = check_options(c, options)) != 0 ||
        (rv = hf_arg_int(c, args, "closes_at", 0, 1, INT64_MAX, &closes_at)) !=
            0 ||
        (rv = hf_util_arg_bool(c, args, "open_options", 0, &open_options)) !=
            0)
        return rv;
    if (closes_at > 0 && closes_at <= hf_now(c))
        return hf_fail(c, HF_EBADREQ, "'closes_at' must be in the future");
    poll_init(&p);
    rv = poll_load(c, &p);
    if (rv == 0 && poll_closed(c, &p))
        rv = hf_fail(c, HF_ECONFLICT, "the poll is closed");
    else if (rv == 0 && p.total > 0)
        rv = hf_fail(c, HF_ECONFLICT,
                     "the poll has votes; its options cannot change");
    else if (rv == 0 || rv == HF_ENOTFOUND)
        rv = 0;
    if (rv != 0)
        goto out;
    memset(p.counts, 0, sizeof(p.counts));
    p.options = options;
    p.nopt = options->via.array.size;
    p.total = 0;
    p.closes_at = closes_at;
    p.closed = 0;
    p.closed_at = 0;
    p.open_options = open_options;
    if ((rv = save_cfg(c, &p)) != 0 || (rv = save_counts(c, &p)) != 0)
        goto out;
    rv = closes_at > 0 ? hf_alarm_set(c, ALARM, closes_at)
                       : hf_alarm_cancel(c, ALARM);
    if (rv != 0 || (rv = emit_configured(c, &p, NULL)) != 0)
        goto out;
    rv = pack_tally(c, &p, -1);
out:
    poll_fini(&p);
    return rv;
}

/* The index of the option with strictly the most votes, or -1 when there
 * are no votes or the top is shared. */
static int
leader_of(const struct poll *p)
{
    int best = -1, tied = 0;
    for (uint32_t i = 0; i < p->nopt; i++) {
        if (p->counts[i] == 0)
            continue;
        if (best < 0 || p->counts[i] > p->counts[best])
            best = (int)i, tied = 0;
        else if (p->counts[i] == p->counts[best])
            tied = 1;
    }
    return tied ? -1 : best;
}

/* Packs {option, counts, total, leader[, leader_changed][, changed]
 * [, withdrawn]} to the staging area; the same map is the vote_update
 * event's data and the reply. was = the leader before the ballot. */
static void
pack_update(hf_ctx *c, const struct poll *p, int idx, int was, int changed,
            int withdrawn)
{
    msgpack_packer *pk = hf_pk(c);
    int leader = leader_of(p);

    msgpack_pack_map(pk, 4 + (leader != was) + (changed >= 0) +
                             (withdrawn != 0));
    pack_option(pk, p, idx);
    pack_counts(pk, p);
    hf_pack_cstr(pk, "leader");
    if (leader < 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_object(pk, p->options->via.array.ptr[leader]);
    if (leader != was) {
        hf_pack_cstr(pk, "leader_changed");
        msgpack_pack_true(pk);
    }
    if (changed >= 0) {
        hf_pack_cstr(pk, "changed");
        if (changed)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    if (withdrawn) {
        hf_pack_cstr(pk, "withdrawn");
        msgpack_pack_true(pk);
    }
}

/* Common start of vote and unvote: the poll, open, and the voter's key. */
static int
begin_ballot(hf_ctx *c, const msgpack_object *args, struct poll *p, char *key,
             size_t *klen)
{
    int rv;
    if ((rv = poll_load(c, p)) != 0)
        return rv;
    if (poll_closed(c, p))
        return hf_fail(c, HF_ECONFLICT, "the poll is closed");
    return voter_key(c, args, key, klen);
}

static int
vote(hf_ctx *c, const msgpack_object *args)
{
    struct poll p;
    char key[HF_UTIL_KEY_MAX];
    size_t klen, ol;
    const char *opt;
    int rv, idx = -1, old, was;
    hf_util_rec r = {0};
    msgpack_packer *pk;

    if ((rv = hf_arg_str(c, args, "option", 1, OPT_LEN, &opt, &ol)) != 0)
        return rv;
    poll_init(&p);
    if ((rv = begin_ballot(c, args, &p, key, &klen)) != 0)
        goto out;
    was = leader_of(&p);
    for (uint32_t i = 0; i < p.nopt; i++) {
        const msgpack_object *s = &p.options->via.array.ptr[i];
        if (s->via.str.size == ol && memcmp(s->via.str.ptr, opt, ol) == 0)
            idx = (int)i;
    }
    if (idx < 0) {
        rv = hf_fail(c, HF_EBADREQ, "'option' must be one of the options");
        goto out;
    }
    old = vote_of(c, &p, key, klen);
    if (old == idx) { /* the same vote again: nothing changes */
        pack_update(c, &p, idx, was, 0, 0);
        rv = hf_reply(c);
        goto out;
    }
    if (old >= 0)
        p.counts[old]--;
    else
        p.total++;
    p.counts[idx]++;
    pk = hf_util_rec_begin(&r);
    msgpack_pack_map(pk, 2);
    hf_pack_cstr(pk, "option");
    msgpack_pack_int(pk, idx);
    hf_pack_cstr(pk, "at");
    msgpack_pack_int64(pk, hf_now(c));
    if ((rv = hf_util_rec_put(c, &r, key, klen)) != 0 ||
        (rv = save_counts(c, &p)) != 0)
        goto out;
    pack_update(c, &p, idx, was, -1, 0);
    if ((rv = hf_emit(c, "vote_update", NULL)) != 0)
        goto out;
    pack_update(c, &p, idx, was, 1, 0);
    rv = hf_reply(c);
out:
    hf_util_rec_free(&r);
    poll_fini(&p);
    return rv;
}

static int
unvote(hf_ctx *c, const msgpack_object *args)
{
    struct poll p;
    char key[HF_UTIL_KEY_MAX];
    size_t klen;
    int rv, old, was;

    poll_init(&p);
    if ((rv = begin_ballot(c, args, &p, key, &klen)) != 0)
        goto out;
    was = leader_of(&p);
    if ((old = vote_of(c, &p, key, klen)) < 0) { /* no vote: nothing to do */
        pack_update(c, &p, -1, was, 0, 0);
        rv = hf_reply(c);
        goto out;
    }
    p.counts[old]--;
    p.total--;
    if ((rv = hf_del(c, key, klen)) != 0 || (rv = save_counts(c, &p)) != 0)
        goto out;
    pack_update(c, &p, old, was, -1, 1);
    if ((rv = hf_emit(c, "vote_update", NULL)) != 0)
        goto out;
    pack_update(c, &p, old, was, 1, 1);
    rv = hf_reply(c);
out:
    poll_fini(&p);
    return rv;
}

/* add_option {option}: appends an option to an open poll, votes or not
 * (indexes of the existing options stay as they are). Admins may; anyone
 * may when the poll was configured with open_options. */
static int
add_option(hf_ctx *c, const msgpack_object *args)
{
    const msgpack_object *o = hf_arg(args, "option");
    msgpack_object *grown, arr;
    struct poll p;
    const char *opt;
    size_t ol;
    int rv;

    if ((rv = hf_arg_str(c, args, "option", 1, OPT_LEN, &opt, &ol)) != 0)
        return rv;
    poll_init(&p);
    if ((rv = poll_load(c, &p)) != 0)
        goto out;
    if (!p.open_options && !(hf_caller_role(c) & HF_ROLE_ADMIN)) {
        rv = hf_fail(c, HF_EFORBIDDEN,
                     "only an admin may add options to this poll");
        goto out;
    }
    if (poll_closed(c, &p)) {
        rv = hf_fail(c, HF_ECONFLICT, "the poll is closed");
        goto out;
    }
    if (p.nopt >= OPT_MAX) {
        rv = hf_fail(c, HF_ECONFLICT, "the poll has %d options, the most",
                     OPT_MAX);
        goto out;
    }
    for (uint32_t i = 0; i < p.nopt; i++) {
        const msgpack_object *s = &p.options->via.array.ptr[i];
        if (s->via.str.size == ol && memcmp(s->via.str.ptr, opt, ol) == 0) {
            rv = hf_fail(c, HF_ECONFLICT, "the poll has '%.*s' already",
                         (int)ol, opt);
            goto out;
        }
    }
    /* The options plus one, in the poll's zone (freed with it). */
    grown = msgpack_zone_malloc(&p.zone, sizeof(*grown) * (p.nopt + 1));
    if (grown == NULL) {
        rv = hf_fail(c, HF_EINTERNAL, "out of memory");
        goto out;
    }
    if (p.nopt > 0)
        memcpy(grown, p.options->via.array.ptr, sizeof(*grown) * p.nopt);
    grown[p.nopt] = *o;
    arr.type = MSGPACK_OBJECT_ARRAY;
    arr.via.array.size = p.nopt + 1;
    arr.via.array.ptr = grown;
    p.options = &arr;
    p.counts[p.nopt++] = 0;
    if ((rv = save_cfg(c, &p)) != 0 || (rv = save_counts(c, &p)) != 0 ||
        (rv = emit_configured(c, &p, o)) != 0)
        goto out;
    rv = pack_tally(c, &p, -1);
out:
    poll_fini(&p);
    return rv;
}

static int
tally(hf_ctx *c, const msgpack_object *args)
{
    struct poll p;
    const char *sub = hf_caller(c);
    char key[HF_UTIL_KEY_MAX];
    size_t sl = strlen(sub);
    int rv, mine = -1;

    (void)args;
    poll_init(&p);
    if ((rv = poll_load(c, &p)) == 0) {
        if (sl > 0 && 2 + sl <= sizeof(key)) {
            memcpy(key, "v:", 2);
            memcpy(key + 2, sub, sl);
            mine = vote_of(c, &p, key, 2 + sl);
        }
        rv = pack_tally(c, &p, mine);
    }
    poll_fini(&p);
    return rv;
}

/* Sets the closed flag and emits poll_closed. */
static int
close_now(hf_ctx *c, struct poll *p)
{
    msgpack_packer *pk;
    int rv;

    p->closed = 1;
    p->closed_at = hf_now(c);
    if ((rv = save_cfg(c, p)) != 0)
        return rv;
    pk = hf_pk(c);
    msgpack_pack_map(pk, 2);
    pack_counts(pk, p);
    return hf_emit(c, "poll_closed", NULL);
}

static int
close_poll(hf_ctx *c, const msgpack_object *args)
{
    struct poll p;
    int rv;

    (void)args;
    poll_init(&p);
    if ((rv = poll_load(c, &p)) != 0)
        goto out;
    if (p.closed) {
        rv = hf_fail(c, HF_ECONFLICT, "the poll is already closed");
        goto out;
    }
    if ((rv = hf_alarm_cancel(c, ALARM)) != 0 || (rv = close_now(c, &p)) != 0)
        goto out;
    rv = pack_tally(c, &p, -1);
out:
    poll_fini(&p);
    return rv;
}

/* The "close" alarm: closes the poll at closes_at. At least once, so a
 * repeat (or a poll already closed by hand) does nothing. */
static int
on_alarm(hf_ctx *c, const char *name)
{
    struct poll p;
    int rv = 0;

    if (strcmp(name, ALARM) != 0)
        return 0;
    poll_init(&p);
    if (poll_load(c, &p) != 0 || p.closed || p.closes_at == 0)
        goto out; /* unconfigured, closed, or no longer timed */
    if (hf_now(c) < p.closes_at)
        rv = hf_alarm_set(c, ALARM, p.closes_at); /* early: re-arm */
    else
        rv = close_now(c, &p);
out:
    poll_fini(&p);
    return rv;
}

static const struct hf_method methods[] = {
    {.name = "configure", .fn = configure, .roles = HF_ROLE_ADMIN},
    {.name = "vote", .fn = vote, .roles = HF_ROLE_ANY},
    {.name = "unvote", .fn = unvote, .roles = HF_ROLE_ANY},
    {.name = "tally", .fn = tally, .roles = HF_ROLE_ANY, .pub = 1},
    {.name = "close", .fn = close_poll, .roles = HF_ROLE_ADMIN},
    {.name = "add_option", .fn = add_option, .roles = HF_ROLE_ANY},
};

const struct hf_kind hf_kind_poll = {
    .name = "poll",
    .methods = methods,
    .nmethods = sizeof(methods) / sizeof(methods[0]),
    .alarm = on_alarm,
};
