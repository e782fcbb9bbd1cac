/* harness.c - see harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "core/actor.h"
#include "core/env.h"
#include "storage/lmdb.h"
#include "tests/harness.h"

static void
start(struct th_eng *e)
{
    struct hf_lmdb_opts o = hf_lmdb_config_opts_of(&e->store);

    o.dir = e->dir;
    o.nreaders = e->cfg.workers + 2;
    assert_int_equal(hf_lmdb_open(&e->st, &o), 0);
    assert_int_equal(hf_host_open(&e->host,
                                  &(struct hf_host_opts){.cfg = &e->cfg,
                                                         .store = e->st,
                                                         .kinds = e->kinds ? e->kinds : hf_kinds,
                                                         .nkinds = e->kinds ? e->nkinds : hf_nkinds}),
                     0);
    assert_int_equal(hf_drv_open(e->host, &e->drv), 0);
    e->open = 1;
}

static void
stop(struct th_eng *e)
{
    if (!e->open)
        return;
    hf_drv_close(e->drv);
    hf_host_close(e->host);
    e->st.ops->close(e->st.self);
    e->open = 0;
}

struct th_eng *
th_new(void (*tweak)(hf_config *))
{
    return th_new_kinds(tweak, NULL, 0);
}

struct th_eng *
th_new_kinds(void (*tweak)(hf_config *), const struct hf_kind *const *kinds,
             size_t n)
{
    struct th_eng *e = calloc(1, sizeof(*e));
    const char *tmp = getenv("HF_TEST_TMP");

    e->kinds = kinds;
    e->nkinds = n;
    snprintf(e->dir, sizeof(e->dir), "%s/kind-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(e->dir));
    hf_config_defaults(&e->cfg);
    e->cfg.workers = 2;
    e->cfg.alarm_retry_ms = 20;
    hf_lmdb_config_defaults(&e->store);
    e->store.map_size_mb = 64;
    e->store.wal_segment_mb = 1; /* small files: tests write little */
    if (tweak)
        tweak(&e->cfg);
    start(e);
    return e;
}

void
th_restart(struct th_eng *e)
{
    stop(e);
    start(e);
}

void
th_free(struct th_eng *e)
{
    char cmd[300];
    stop(e);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
    free(e);
}

hf_drv_msg *
th_call(struct th_eng *e, const char *sub, unsigned role, const char *to,
        const char *method, const char *args)
{
    hf_drv_msg *m = NULL;
    int rv = hf_drv_call(e->drv, to, method, args, NULL, sub, role, TH_WAIT,
                         &m);
    if (rv != 0)
        fail_msg("%s.%s(%s): no reply (%d)", to, method, args ? args : "",
                 rv);
    return m;
}

char *
th_ok(struct th_eng *e, const char *sub, unsigned role, const char *to,
      const char *method, const char *args)
{
    hf_drv_msg *m = th_call(e, sub, role, to, method, args);
    char *json;
    if (!m->e.ok)
        fail_msg("%s.%s(%s) failed: %s: %.*s", to, method,
                 args ? args : "", m->code, (int)m->e.msg.len,
                 (const char *)m->e.msg.data);
    json = strdup(m->json);
    hf_drv_msg_free(m);
    return json;
}

void
th_err(struct th_eng *e, const char *sub, unsigned role, const char *to,
       const char *method, const char *args, const char *code)
{
    hf_drv_msg *m = th_call(e, sub, role, to, method, args);
    if (m->e.ok)
        fail_msg("%s.%s(%s) succeeded (%s), wanted %s", to, method,
                 args ? args : "", m->json, code);
    if (strcmp(m->code, code) != 0)
        fail_msg("%s.%s(%s): got %s (%.*s), wanted %s", to, method,
                 args ? args : "", m->code, (int)m->e.msg.len,
                 (const char *)m->e.msg.data, code);
    hf_drv_msg_free(m);
}

int64_t
th_int(const hf_drv_msg *m, const char *field)
{
    const msgpack_object *v = hf_arg(m->e.val, field);
    if (v == NULL)
        fail_msg("no field '%s' in %s", field, m->json);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    fail_msg("field '%s' is not an integer in %s", field, m->json);
    return 0;
}

void
th_sub(struct th_eng *e, uint64_t conn, const char *to, int64_t since)
{
    hf_drv_msg *m = NULL;
    assert_int_equal(hf_drv_sub(e->drv, conn, to, since, NULL, NULL, "t",
                                TH_WAIT, &m),
                     0);
    assert_true(m->e.ok);
    hf_drv_msg_free(m);
}

hf_drv_msg *
th_event(struct th_eng *e, const char *from)
{
    hf_drv_msg *m = NULL;
    while (hf_drv_recv(e->drv, TH_WAIT, &m) == 0) {
        if (m->e.op == HF_OUT_EVENT && m->from && strcmp(m->from, from) == 0)
            return m;
        hf_drv_msg_free(m);
    }
    return NULL;
}

int
th_quiet(struct th_eng *e, int ms)
{
    hf_drv_msg *m = NULL;
    while (hf_drv_recv(e->drv, ms, &m) == 0) {
        int ev = m->e.op == HF_OUT_EVENT;
        hf_drv_msg_free(m);
        if (ev)
            return 0;
    }
    return 1;
}

void
th_has(const char *json, const char *frag)
{
    if (strstr(json, frag) == NULL)
        fail_msg("%s\n  lacks %s", json, frag);
}

void
th_ok_has(struct th_eng *e, const char *sub, unsigned role, const char *to,
          const char *method, const char *args, const char *frag)
{
    char *json = th_ok(e, sub, role, to, method, args);
    if (frag)
        th_has(json, frag);
    free(json);
}

void
th_expect_event(struct th_eng *e, const char *from, const char *type,
                const char *frag)
{
    hf_drv_msg *m = th_event(e, from);
    if (m == NULL)
        fail_msg("no %s event", type);
    if (strcmp(m->type, type) != 0)
        fail_msg("got event %s %s, wanted %s", m->type, m->json, type);
    if (frag)
        th_has(m->json, frag);
    hf_drv_msg_free(m);
}

const msgpack_object *
th_field(const msgpack_object *map, const char *name)
{
    const msgpack_object *v = hf_arg(map, name);
    if (v == NULL)
        fail_msg("no field '%s'", name);
    return v;
}

int64_t
th_num(const msgpack_object *map, const char *name)
{
    const msgpack_object *v = th_field(map, name);
    if (v->type == MSGPACK_OBJECT_NIL)
        return -1;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    fail_msg("field '%s' is not a non-negative integer", name);
    return 0;
}

int
th_is(const msgpack_object *map, const char *name, const char *s)
{
    const msgpack_object *v = th_field(map, name);
    if (v->type == MSGPACK_OBJECT_NIL)
        return *s == '\0';
    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(s) &&
           memcmp(v->via.str.ptr, s, v->via.str.size) == 0;
}

void
th_expect_ids(const hf_drv_msg *m, const char *what, const char *array,
              const char *ids, int more)
{
    const msgpack_object *arr, *mo;
    char got[512] = "";
    size_t n = 0;

    if (!m->e.ok)
        fail_msg("%s: %s", what, m->code);
    arr = hf_arg(m->e.val, array);
    mo = hf_arg(m->e.val, "more");
    assert_non_null(arr);
    assert_int_equal(arr->type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *id = hf_arg(&arr->via.array.ptr[i], "id");
        assert_non_null(id);
        n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%llu", i ? "," : "",
                              (unsigned long long)id->via.u64);
    }
    if (strcmp(got, ids) != 0)
        fail_msg("%s: ids %s, wanted %s", what, got, ids);
    assert_non_null(mo);
    assert_int_equal(mo->via.boolean, more);
}
