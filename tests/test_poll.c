/*
 * test_poll.c - the poll kind (actors/poll.c) through a real engine.
 *
 * Replies and events are checked as the JSON a client would see
 * (compact, fields in the order the kind packs them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/actor.h"
#include "core/buf.h"
#include "core/log.h"
#include "tests/harness.h"

#define P       "poll/lunch"
#define USER    HF_ROLE_USER
#define ADMIN   HF_ROLE_ADMIN
#define SERVICE HF_ROLE_SERVICE
#define OPTS    "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"]}"

static void
has(const char *json, const char *frag)
{
    th_has(json, frag);
}

/* A successful call whose result contains frag (NULL: anything). */
static void
ok(struct th_eng *e, const char *sub, unsigned role, const char *method,
   const char *args, const char *frag)
{
    th_ok_has(e, sub, role, P, method, args, frag);
}

/* The next event must be `type` with data containing frag. */
static void
event(struct th_eng *e, const char *type, const char *frag)
{
    th_expect_event(e, P, type, frag);
}

static struct th_eng *
poll_with_sub(void)
{
    struct th_eng *e = th_new(NULL);
    th_sub(e, 1, P, -1);
    return e;
}

static void
configured(struct th_eng *e)
{
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    event(e, "poll_configured", NULL);
}

/* {"options":["1","2",...,"n"]} into buf (room for 2048 bytes). */
static const char *
options_json(char *buf, int n)
{
    size_t len = (size_t)snprintf(buf, 2048, "{\"options\":[");
    for (int i = 1; i <= n; i++)
        len += (size_t)snprintf(buf + len, 2048 - len, "%s\"%d\"",
                                i > 1 ? "," : "", i);
    snprintf(buf + len, 2048 - len, "]}");
    return buf;
}

/* ---- configure ---- */

static void
test_configure_replies_tally_and_emits_poll_configured(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS,
       "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"],\"counts\":[0,0,0],"
       "\"total\":0,\"closed\":false}");
    event(e, "poll_configured",
          "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"]}");
    th_free(e);
}

static void
test_configure_needs_admin(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    th_err(e, "kim", USER, P, "configure", OPTS, "forbidden");
    th_err(e, "svc", SERVICE, P, "configure", OPTS, "forbidden");
    th_err(e, "kim", USER, P, "tally", NULL, "not_found");
    th_free(e);
}

static void
test_configure_validates_options_and_closes_at(void **state)
{
    struct th_eng *e = th_new(NULL);
    static const char *bad[] = {
        NULL,
        "{}",
        "{\"options\":\"a,b\"}",
        "{\"options\":[\"only\"]}",
        "{\"options\":[\"a\",\"\"]}",
        "{\"options\":[\"a\",2]}",
        "{\"options\":[\"a\",\"a\"]}",
        "{\"options\":[\"a\",\"b\"],\"closes_at\":\"soon\"}",
        "{\"options\":[\"a\",\"b\"],\"closes_at\":1000}", /* the past */
    };
    char *json;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        th_err(e, "boss", ADMIN, P, "configure", bad[i], "bad_request");
    /* The error names the field. */
    {
        hf_drv_msg *m =
            th_call(e, "boss", ADMIN, P, "configure", "{\"options\":[\"a\"]}");
        assert_false(m->e.ok);
        assert_non_null(memmem(m->e.msg.data, m->e.msg.len, "'options'", 9));
        hf_drv_msg_free(m);
    }
    /* 200 options is the most, and fine; 201 is not. */
    {
        char args[2048];
        th_err(e, "boss", ADMIN, P, "configure", options_json(args, 201),
               "bad_request");
        json = th_ok(e, "boss", ADMIN, P, "configure", options_json(args, 200));
        has(json, "\"counts\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0");
        has(json, ",\"200\"]");
        free(json);
    }
    th_free(e);
}

static void
test_reconfigure_before_votes_replaces_options(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    ok(e, "boss", ADMIN, "configure", "{\"options\":[\"yes\",\"no\"]}",
       "{\"options\":[\"yes\",\"no\"],\"counts\":[0,0]");
    /* A vote and its withdrawal leave no votes: still reconfigurable. */
    ok(e, "kim", USER, "vote", "{\"option\":\"yes\"}", NULL);
    ok(e, "kim", USER, "unvote", NULL, NULL);
    ok(e, "boss", ADMIN, "configure", OPTS, "\"counts\":[0,0,0]");
    th_free(e);
}

static void
test_reconfigure_after_votes_conflicts(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    th_err(e, "boss", ADMIN, P, "configure", "{\"options\":[\"a\",\"b\"]}",
           "conflict");
    ok(e, "kim", USER, "tally", NULL,
       "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"],\"counts\":[0,1,0]");
    th_free(e);
}

/* ---- vote, unvote, tally ---- */

static void
test_vote_counts_and_emits_vote_update(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"bibimbap\"}",
       "{\"option\":\"bibimbap\",\"counts\":[1,0,0],\"total\":1,"
       "\"leader\":\"bibimbap\",\"leader_changed\":true,\"changed\":true}");
    event(e, "vote_update",
          "{\"option\":\"bibimbap\",\"counts\":[1,0,0],\"total\":1,"
          "\"leader\":\"bibimbap\",\"leader_changed\":true}");
    /* A tie at the top: no leader. */
    ok(e, "lee", USER, "vote", "{\"option\":\"pho\"}", NULL);
    event(e, "vote_update",
          "{\"option\":\"pho\",\"counts\":[1,0,1],\"total\":2,"
          "\"leader\":null,\"leader_changed\":true}");
    ok(e, "anyone", USER, "tally", NULL,
       "{\"options\":[\"bibimbap\",\"ramen\",\"pho\"],\"counts\":[1,0,1],"
       "\"total\":2,\"closed\":false}");
    th_free(e);
}

static void
test_revote_moves_the_vote(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"bibimbap\"}", NULL);
    event(e, "vote_update", "\"counts\":[1,0,0]");
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}",
       "{\"option\":\"ramen\",\"counts\":[0,1,0],\"total\":1,"
       "\"leader\":\"ramen\",\"leader_changed\":true,\"changed\":true}");
    event(e, "vote_update",
          "{\"option\":\"ramen\",\"counts\":[0,1,0],\"total\":1,"
          "\"leader\":\"ramen\",\"leader_changed\":true}");
    th_free(e);
}

static void
test_same_vote_again_is_a_noop_without_event(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"pho\"}", NULL);
    event(e, "vote_update", "\"counts\":[0,0,1]");
    ok(e, "kim", USER, "vote", "{\"option\":\"pho\"}",
       "{\"option\":\"pho\",\"counts\":[0,0,1],\"total\":1,"
       "\"leader\":\"pho\",\"changed\":false}");
    assert_true(th_quiet(e, 200));
    th_free(e);
}

static void
test_unvote_withdraws_the_vote_and_emits_vote_update(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    event(e, "vote_update", NULL);
    ok(e, "kim", USER, "unvote", NULL,
       "{\"option\":\"ramen\",\"counts\":[0,0,0],\"total\":0,"
       "\"leader\":null,\"leader_changed\":true,\"changed\":true,"
       "\"withdrawn\":true}");
    event(e, "vote_update",
          "{\"option\":\"ramen\",\"counts\":[0,0,0],\"total\":0,"
          "\"leader\":null,\"leader_changed\":true,\"withdrawn\":true}");
    th_free(e);
}

static void
test_unvote_without_a_vote_is_a_noop_without_event(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "unvote", "{}",
       "{\"option\":null,\"counts\":[0,0,0],\"total\":0,\"leader\":null,"
       "\"changed\":false}");
    assert_true(th_quiet(e, 200));
    th_free(e);
}

static void
test_vote_validates_option(void **state)
{
    struct th_eng *e = th_new(NULL);
    hf_drv_msg *m;
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    th_err(e, "kim", USER, P, "vote", NULL, "bad_request");
    th_err(e, "kim", USER, P, "vote", "{\"option\":3}", "bad_request");
    th_err(e, "kim", USER, P, "vote", "{\"option\":\"\"}", "bad_request");
    m = th_call(e, "kim", USER, P, "vote", "{\"option\":\"pizza\"}");
    assert_false(m->e.ok);
    assert_string_equal(m->code, "bad_request");
    assert_non_null(memmem(m->e.msg.data, m->e.msg.len, "'option'", 8));
    hf_drv_msg_free(m);
    ok(e, "kim", USER, "tally", NULL, "\"total\":0");
    th_free(e);
}

static void
test_unconfigured_poll_is_not_found(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    th_err(e, "kim", USER, P, "vote", "{\"option\":\"a\"}", "not_found");
    th_err(e, "kim", USER, P, "unvote", NULL, "not_found");
    th_err(e, "kim", USER, P, "tally", NULL, "not_found");
    th_err(e, "boss", ADMIN, P, "close", NULL, "not_found");
    th_free(e);
}

static void
test_anonymous_caller_must_name_a_voter(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    th_err(e, "", USER, P, "vote", "{\"option\":\"pho\"}", "bad_request");
    th_err(e, "", USER, P, "unvote", NULL, "bad_request");
    th_err(e, "", USER, P, "vote", "{\"option\":\"pho\",\"voter\":7}",
           "bad_request");
    ok(e, "", USER, "vote", "{\"option\":\"pho\",\"voter\":\"kiosk-1\"}",
       "\"counts\":[0,0,1]");
    /* The same voter again moves that vote, it does not add one. */
    ok(e, "", USER, "vote", "{\"option\":\"ramen\",\"voter\":\"kiosk-1\"}",
       "\"counts\":[0,1,0],\"total\":1");
    /* And it is the same voter as a caller whose sub is kiosk-1. */
    ok(e, "kiosk-1", USER, "unvote", NULL, "\"total\":0");
    th_free(e);
}

static void
test_voting_as_someone_else_needs_admin_or_service(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    th_err(e, "kim", USER, P, "vote", "{\"option\":\"pho\",\"voter\":\"lee\"}",
           "forbidden");
    th_err(e, "kim", USER, P, "unvote", "{\"voter\":\"lee\"}", "forbidden");
    /* Naming oneself is fine. */
    ok(e, "kim", USER, "vote", "{\"option\":\"pho\",\"voter\":\"kim\"}",
       "\"total\":1");
    ok(e, "svc", SERVICE, "vote", "{\"option\":\"ramen\",\"voter\":\"lee\"}",
       "\"counts\":[0,1,1],\"total\":2");
    ok(e, "boss", ADMIN, "vote", "{\"option\":\"bibimbap\",\"voter\":\"lee\"}",
       "\"counts\":[1,0,1],\"total\":2");
    ok(e, "lee", USER, "tally", NULL, "\"mine\":\"bibimbap\"");
    th_free(e);
}

static void
test_tally_shows_the_callers_own_vote(void **state)
{
    struct th_eng *e = th_new(NULL);
    char *json;
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    ok(e, "kim", USER, "tally", NULL, "\"mine\":\"ramen\"");
    json = th_ok(e, "lee", USER, P, "tally", NULL);
    assert_null(strstr(json, "mine"));
    free(json);
    th_free(e);
}

/* ---- closing ---- */

static void
test_close_emits_poll_closed_and_later_votes_conflict(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    event(e, "vote_update", NULL);
    ok(e, "boss", ADMIN, "close", NULL,
       "\"counts\":[0,1,0],\"total\":1,\"closed\":true,\"closed_at\":");
    event(e, "poll_closed", "{\"counts\":[0,1,0],\"total\":1}");
    th_err(e, "lee", USER, P, "vote", "{\"option\":\"pho\"}", "conflict");
    th_err(e, "kim", USER, P, "vote", "{\"option\":\"pho\"}", "conflict");
    th_err(e, "kim", USER, P, "unvote", NULL, "conflict");
    th_err(e, "boss", ADMIN, P, "close", NULL, "conflict");
    th_err(e, "boss", ADMIN, P, "configure", OPTS, "conflict");
    ok(e, "kim", USER, "tally", NULL, "\"closed\":true");
    th_free(e);
}

static void
test_close_needs_admin(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    th_err(e, "kim", USER, P, "close", NULL, "forbidden");
    ok(e, "kim", USER, "tally", NULL, "\"closed\":false");
    th_free(e);
}

static void
test_closes_at_alarm_closes_the_poll(void **state)
{
    struct th_eng *e = poll_with_sub();
    char args[160];
    hf_drv_msg *m;
    (void)state;
    snprintf(args, sizeof(args),
             "{\"options\":[\"a\",\"b\"],\"closes_at\":%lld}",
             (long long)(hf_now_ms() + 300));
    ok(e, "boss", ADMIN, "configure", args, "\"closes_at\":");
    event(e, "poll_configured", "\"closes_at\":");
    m = th_event(e, P);
    assert_non_null(m);
    assert_string_equal(m->type, "poll_closed");
    has(m->json, "{\"counts\":[0,0],\"total\":0}");
    hf_drv_msg_free(m);
    th_err(e, "lee", USER, P, "vote", "{\"option\":\"a\"}", "conflict");
    ok(e, "kim", USER, "tally", NULL, "\"closed\":true");
    /* The alarm fired once: no second poll_closed. */
    assert_true(th_quiet(e, 300));
    th_free(e);
}

static void
test_close_alarm_survives_a_restart(void **state)
{
    struct th_eng *e = th_new(NULL);
    char args[160];
    hf_drv_msg *m;
    (void)state;
    snprintf(args, sizeof(args),
             "{\"options\":[\"a\",\"b\"],\"closes_at\":%lld}",
             (long long)(hf_now_ms() + 800));
    ok(e, "boss", ADMIN, "configure", args, NULL);
    th_restart(e);
    /* Replay from the start, so a slow restart that let the alarm fire
     * before the subscription still shows the event. */
    th_sub(e, 1, P, 0);
    event(e, "poll_configured", NULL);
    m = th_event(e, P);
    assert_non_null(m);
    assert_string_equal(m->type, "poll_closed");
    hf_drv_msg_free(m);
    th_err(e, "kim", USER, P, "vote", "{\"option\":\"a\"}", "conflict");
    th_free(e);
}

static void
test_close_by_hand_cancels_the_alarm(void **state)
{
    struct th_eng *e = poll_with_sub();
    char args[160];
    (void)state;
    snprintf(args, sizeof(args),
             "{\"options\":[\"a\",\"b\"],\"closes_at\":%lld}",
             (long long)(hf_now_ms() + 700));
    ok(e, "boss", ADMIN, "configure", args, NULL);
    event(e, "poll_configured", NULL);
    ok(e, "boss", ADMIN, "close", NULL, NULL);
    event(e, "poll_closed", NULL);
    assert_true(th_quiet(e, 1000)); /* past closes_at: no second one */
    th_free(e);
}

/* ---- durability ---- */

static void
test_state_survives_restart(void **state)
{
    struct th_eng *e = th_new(NULL);
    (void)state;
    ok(e, "boss", ADMIN, "configure", OPTS, NULL);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    ok(e, "lee", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    ok(e, "park", USER, "vote", "{\"option\":\"pho\"}", NULL);
    th_restart(e);
    ok(e, "kim", USER, "tally", NULL,
       "\"counts\":[0,2,1],\"total\":3,\"closed\":false,\"mine\":\"ramen\"");
    /* The votes themselves survived: a re-vote moves, not adds. */
    ok(e, "kim", USER, "vote", "{\"option\":\"pho\"}",
       "\"counts\":[0,1,2],\"total\":3");
    ok(e, "boss", ADMIN, "close", NULL, NULL);
    th_restart(e);
    ok(e, "kim", USER, "tally", NULL,
       "\"counts\":[0,1,2],\"total\":3,"
       "\"closed\":true");
    th_err(e, "lee", USER, P, "vote", "{\"option\":\"pho\"}", "conflict");
    th_free(e);
}

/* ---- concurrency ---- */

#define NTHREAD 8
#define VOTERS  25 /* per thread; each thread owns its voters */
#define ROUNDS  40
#define NOPT    4

struct voter_thread {
    struct th_eng *e;
    int t;
    int last[VOTERS]; /* option index of each voter's last ballot, or -1 */
    int acked, failed;
};

static void
count_reply(void *arg, const hf_env *env)
{
    struct voter_thread *v = arg;
    if (env->op != HF_OUT_REPLY)
        return;
    if (env->ok)
        v->acked++;
    else
        v->failed++;
}

static void *
voter_main(void *arg)
{
    struct voter_thread *v = arg;
    unsigned seed = (unsigned)v->t * 7919u + 1;
    char names[VOTERS][16];
    hf_drv *d;
    hf_buf a = {0};
    uint64_t id = 0;
    int sent = 0;

    if (hf_drv_open(v->e->host, &d) != 0)
        return NULL;
    for (int i = 0; i < VOTERS; i++) {
        snprintf(names[i], sizeof(names[i]), "v%d", v->t * VOTERS + i);
        v->last[i] = -1;
    }
    for (int r = 0; r < ROUNDS; r++) {
        /* One batch per round: every voter of this thread votes (or,
         * now and then, withdraws); the engine keeps per-sender order. */
        for (int i = 0; i < VOTERS; i++) {
            int opt = (int)(rand_r(&seed) % (NOPT + 1)); /* NOPT: unvote */
            char o[8];
            msgpack_packer pk;
            hf_env env = {.op = HF_OP_CALL,
                          .id = ++id,
                          .to = {P, strlen(P)},
                          .sub = {names[i], strlen(names[i])},
                          .role = HF_ROLE_USER};
            a.len = 0;
            msgpack_packer_init(&pk, &a, hf_buf_mpwrite);
            if (opt == NOPT) {
                env.method = (hf_slice){"unvote", 6};
                msgpack_pack_map(&pk, 0);
                v->last[i] = -1;
            } else {
                snprintf(o, sizeof(o), "o%d", opt);
                env.method = (hf_slice){"vote", 4};
                msgpack_pack_map(&pk, 1);
                msgpack_pack_str(&pk, 6);
                msgpack_pack_str_body(&pk, "option", 6);
                msgpack_pack_str(&pk, strlen(o));
                msgpack_pack_str_body(&pk, o, strlen(o));
                v->last[i] = opt;
            }
            hf_drv_add(d, &env, a.data, a.len);
            sent++;
        }
        hf_drv_flush(d);
        /* Keep a few rounds in flight, then drain. */
        while (v->acked + v->failed < sent - 3 * VOTERS)
            if (hf_drv_poll(d, TH_WAIT, count_reply, v) == 0)
                goto out;
    }
    while (v->acked + v->failed < sent)
        if (hf_drv_poll(d, TH_WAIT, count_reply, v) == 0)
            break;
out:
    hf_buf_free(&a);
    hf_drv_close(d);
    return NULL;
}

static void
test_counts_stay_exact_with_8_threads_voting(void **state)
{
    struct th_eng *e = th_new(NULL);
    pthread_t th[NTHREAD];
    struct voter_thread *v = calloc(NTHREAD, sizeof(*v));
    int64_t want[NOPT] = {0}, total = 0;
    char frag[128];
    (void)state;

    ok(e, "boss", ADMIN, "configure",
       "{\"options\":[\"o0\",\"o1\",\"o2\",\"o3\"]}", NULL);
    for (int t = 0; t < NTHREAD; t++) {
        v[t] = (struct voter_thread){.e = e, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, voter_main, &v[t]), 0);
    }
    for (int t = 0; t < NTHREAD; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(v[t].failed, 0);
        assert_int_equal(v[t].acked, VOTERS * ROUNDS);
        for (int i = 0; i < VOTERS; i++)
            if (v[t].last[i] >= 0)
                want[v[t].last[i]]++, total++;
    }
    snprintf(frag, sizeof(frag),
             "\"counts\":[%lld,%lld,%lld,%lld],\"total\":%lld",
             (long long)want[0], (long long)want[1], (long long)want[2],
             (long long)want[3], (long long)total);
    ok(e, "boss", ADMIN, "tally", NULL, frag);
    /* And the same after a restart, from what is on disk. */
    th_restart(e);
    ok(e, "boss", ADMIN, "tally", NULL, frag);
    free(v);
    th_free(e);
}

/* ---- add_option and the leader ---- */

static void
test_admin_adds_an_option_while_votes_exist(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "kim", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    event(e, "vote_update", NULL);
    ok(e, "boss", ADMIN, "add_option", "{\"option\":\"udon\"}",
       "{\"options\":[\"bibimbap\",\"ramen\",\"pho\",\"udon\"],"
       "\"counts\":[0,1,0,0],\"total\":1,\"closed\":false}");
    event(e, "poll_configured",
          "{\"options\":[\"bibimbap\",\"ramen\",\"pho\",\"udon\"],"
          "\"added\":\"udon\"}");
    /* Existing votes keep their option; the new one takes votes. */
    ok(e, "lee", USER, "vote", "{\"option\":\"udon\"}",
       "\"counts\":[0,1,0,1]");
    event(e, "vote_update", "\"option\":\"udon\"");
    th_restart(e);
    ok(e, "kim", USER, "tally", NULL, "\"mine\":\"ramen\"");
    th_free(e);
}

static void
test_add_option_needs_admin_unless_open_options(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    th_err(e, "kim", USER, P, "add_option", "{\"option\":\"udon\"}",
           "forbidden");
    ok(e, "boss", ADMIN, "configure",
       "{\"options\":[\"a\",\"b\"],\"open_options\":true}", NULL);
    event(e, "poll_configured",
          "{\"options\":[\"a\",\"b\"],\"open_options\":true}");
    ok(e, "kim", USER, "add_option", "{\"option\":\"c\"}",
       "\"options\":[\"a\",\"b\",\"c\"]");
    event(e, "poll_configured", "\"open_options\":true,\"added\":\"c\"");
    th_free(e);
}

static void
test_add_option_errors(void **state)
{
    struct th_eng *e = poll_with_sub();
    char args[2048];
    (void)state;
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":\"x\"}",
           "not_found");
    configured(e);
    th_err(e, "boss", ADMIN, P, "add_option", NULL, "bad_request");
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":\"\"}",
           "bad_request");
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":7}",
           "bad_request");
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":\"ramen\"}",
           "conflict");
    /* Full at 200. */
    ok(e, "boss", ADMIN, "configure", options_json(args, 199), NULL);
    event(e, "poll_configured", NULL);
    ok(e, "boss", ADMIN, "add_option", "{\"option\":\"last\"}", NULL);
    event(e, "poll_configured", "\"added\":\"last\"");
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":\"more\"}",
           "conflict");
    /* Closed. */
    ok(e, "boss", ADMIN, "close", NULL, NULL);
    event(e, "poll_closed", NULL);
    th_err(e, "boss", ADMIN, P, "add_option", "{\"option\":\"late\"}",
           "conflict");
    assert_true(th_quiet(e, 200));
    th_free(e);
}

static void
test_vote_update_announces_a_new_leader(void **state)
{
    struct th_eng *e = poll_with_sub();
    (void)state;
    configured(e);
    ok(e, "a", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    event(e, "vote_update", "\"leader\":\"ramen\",\"leader_changed\":true");
    ok(e, "b", USER, "vote", "{\"option\":\"ramen\"}", NULL);
    /* Still ramen: no leader_changed. */
    event(e, "vote_update", "\"total\":2,\"leader\":\"ramen\"}");
    ok(e, "c", USER, "vote", "{\"option\":\"pho\"}", NULL);
    event(e, "vote_update", "\"total\":3,\"leader\":\"ramen\"}");
    ok(e, "d", USER, "vote", "{\"option\":\"pho\"}", NULL);
    event(e, "vote_update",
          "\"counts\":[0,2,2],\"total\":4,\"leader\":null,"
          "\"leader_changed\":true}");
    ok(e, "e", USER, "vote", "{\"option\":\"pho\"}",
       "\"leader\":\"pho\",\"leader_changed\":true,\"changed\":true");
    event(e, "vote_update", "\"leader\":\"pho\",\"leader_changed\":true}");
    /* A vote moving away gives the lead back to a tie, then to ramen. */
    ok(e, "d", USER, "vote", "{\"option\":\"bibimbap\"}", NULL);
    event(e, "vote_update", "\"counts\":[1,2,2],\"total\":5,\"leader\":null,"
                            "\"leader_changed\":true}");
    ok(e, "e", USER, "unvote", NULL, NULL);
    event(e, "vote_update", "\"leader\":\"ramen\",\"leader_changed\":true,"
                            "\"withdrawn\":true}");
    th_free(e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_configure_replies_tally_and_emits_poll_configured),
        cmocka_unit_test(test_configure_needs_admin),
        cmocka_unit_test(test_configure_validates_options_and_closes_at),
        cmocka_unit_test(test_reconfigure_before_votes_replaces_options),
        cmocka_unit_test(test_reconfigure_after_votes_conflicts),
        cmocka_unit_test(test_vote_counts_and_emits_vote_update),
        cmocka_unit_test(test_revote_moves_the_vote),
        cmocka_unit_test(test_same_vote_again_is_a_noop_without_event),
        cmocka_unit_test(test_unvote_withdraws_the_vote_and_emits_vote_update),
        cmocka_unit_test(test_unvote_without_a_vote_is_a_noop_without_event),
        cmocka_unit_test(test_vote_validates_option),
        cmocka_unit_test(test_unconfigured_poll_is_not_found),
        cmocka_unit_test(test_anonymous_caller_must_name_a_voter),
        cmocka_unit_test(test_voting_as_someone_else_needs_admin_or_service),
        cmocka_unit_test(test_tally_shows_the_callers_own_vote),
        cmocka_unit_test(test_close_emits_poll_closed_and_later_votes_conflict),
        cmocka_unit_test(test_close_needs_admin),
        cmocka_unit_test(test_closes_at_alarm_closes_the_poll),
        cmocka_unit_test(test_close_alarm_survives_a_restart),
        cmocka_unit_test(test_close_by_hand_cancels_the_alarm),
        cmocka_unit_test(test_state_survives_restart),
        cmocka_unit_test(test_counts_stay_exact_with_8_threads_voting),
        cmocka_unit_test(test_admin_adds_an_option_while_votes_exist),
        cmocka_unit_test(test_add_option_needs_admin_unless_open_options),
        cmocka_unit_test(test_add_option_errors),
        cmocka_unit_test(test_vote_update_announces_a_new_leader),
    };
    hf_log_set_level(HF_LOG_ERROR);
    if (argc == 2)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
