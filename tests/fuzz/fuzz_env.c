/*
 * fuzz_env.c - a batch of envelopes between gateway and host (core/env.h),
 * read the three ways the engine reads one:
 *
 *  1. the gateway's on_batch (transport/gateway.c): hf_unpack_next over
 *     the batch, hf_env_decode on each object, and the output encoded for
 *     clients (fz_gateway_output: replies, events, signals, presence, in
 *     JSON, msgpack and as HTTP bodies), and the value rendered by
 *     hf_mp_to_json, as the driver and the CLI do;
 *  2. the host's hf_host_submit (core/host.c): hf_env_read without a zone,
 *     the map check, the routing checks, hf_env_pos_save; then the
 *     worker's msg_env on the envelope's own copy of its bytes:
 *     hf_env_pos_load with a zone;
 *  3. the host's outbox path: hf_env_read with a zone on that copy.
 *
 * (Client output is made for the first OUTPUTS_MAX valid envelopes of a
 * batch only: the same encoders run for each, and they are most of the
 * cost.)
 *
 * The input is the batch's bytes. Properties, beyond no crash and no
 * sanitizer report:
 *  - hf_env_read agrees with hf_unpack_next + hf_env_decode on every
 *    object (env.c's design notes say it must): the same bytes are
 *    malformed, the same objects are invalid envelopes, they stop at the
 *    same offset, and they leave the same fields, the value included;
 *  - hf_env_pos_load gives back the fields hf_env_read found, and the
 *    outbox reading of the copy gives them too;
 *  - every message the gateway writes is valid (fz_check_out), and no
 *    encoding grows beyond GROWTH_MAX bytes per input byte (escaping is
 *    linear; an encoder that re-escapes its own output is not).
 *
 * msgpack-c's unpacker allocates a container's elements before reading
 * them, trusting the count, so a batch that declares a few billion of them
 * asks for gigabytes. Batches come from the host, not from clients, but
 * the target feeds hf_unpack_next only what hf_env_read (which checks
 * counts against the bytes left) found complete; the agreement property
 * covers the rest.
 */
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "tests/fuzz/fuzz.h"
#include "transport/wire.h"

#define OUTPUTS_MAX 1   /* envelopes per batch whose outputs are made */
#define GROWTH_MAX  256 /* output bytes per input byte, at most */

static int
env_eq(const hf_env *a, const hf_env *b)
{
    return a->op == b->op && a->id == b->id && a->conn == b->conn &&
           a->has_conn == b->has_conn && fz_slice_eq(a->to, b->to) &&
           fz_slice_eq(a->method, b->method) && fz_slice_eq(a->key, b->key) &&
           fz_slice_eq(a->sub, b->sub) && a->role == b->role &&
           a->has_since == b->has_since && a->since == b->since &&
           fz_slice_eq(a->epoch, b->epoch) && a->ok == b->ok &&
           fz_slice_eq(a->code, b->code) && fz_slice_eq(a->msg, b->msg) &&
           fz_slice_eq(a->action, b->action) && a->seq == b->seq;
}

/* The request fields hf_env_pos keeps. */
static int
req_eq(const hf_env *a, const hf_env *b)
{
    return a->op == b->op && a->id == b->id && a->conn == b->conn &&
           a->has_conn == b->has_conn && fz_slice_eq(a->to, b->to) &&
           fz_slice_eq(a->method, b->method) && fz_slice_eq(a->key, b->key) &&
           fz_slice_eq(a->sub, b->sub) && a->role == b->role &&
           a->has_since == b->has_since && a->since == b->since &&
           fz_slice_eq(a->epoch, b->epoch) &&
           fz_slice_eq(a->val_raw, b->val_raw) &&
           fz_slice_eq(a->name, b->name) &&
           fz_slice_eq(a->picture, b->picture);
}

static int
val_eq(const msgpack_object *a, const msgpack_object *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return fz_obj_eq(a, b);
}

/* hf_host_submit's checks, short of the kind table. */
static int
routable(const hf_env *e, int st)
{
    size_t klen;

    if (st != 0 || e->op < HF_OP_CALL || e->op > HF_OP_HISTORY)
        return 0;
    if (hf_addr_check(e->to.data, e->to.len, &klen) != 0)
        return 0;
    return !(e->op == HF_OP_CALL && e->method.len == 0);
}

/* The worker's reading of a queued request: its own copy of the bytes. */
static void
worker_read(const char *env, size_t n, const hf_env *r)
{
    char *copy = malloc(n);
    hf_env_pos pos;
    hf_env l, o;
    msgpack_zone z;
    size_t off = 0;
    int st;

    FZ_CHECK(copy != NULL);
    memcpy(copy, env, n);
    hf_env_pos_save(&pos, r, env);
    msgpack_zone_init(&z, 1024);
    FZ_CHECK(hf_env_pos_load(&pos, copy, &z, &l) == 0);
    /* slices now point into the copy: compare by position */
    {
        hf_env_pos p2;
        hf_env_pos_save(&p2, &l, copy);
        FZ_CHECK(memcmp(&pos, &p2, sizeof(pos)) == 0);
    }
    FZ_CHECK((l.val != NULL) == (r->val_raw.len > 0));
    /* the outbox path reads the copy again, whole */
    FZ_CHECK(hf_env_read(copy, n, &off, &z, &o, &st) == 0 && off == n &&
             st == 0);
    FZ_CHECK(req_eq(&o, &l) && val_eq(o.val, l.val));
    msgpack_zone_destroy(&z);
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    hf_buf out[2] = {{0}}, http = {0};
    msgpack_zone z1, z2;
    size_t off = 0, n = 0;

    msgpack_zone_init(&z1, 4096);
    msgpack_zone_init(&z2, 4096);
    while (off < size) {
        size_t o1 = off, o2 = off;
        msgpack_object obj;
        hf_env e1, e2;
        int r2, st, dec;

        r2 = hf_env_read(buf, size, &o2, &z2, &e2, &st);
        if (r2 != 0) {
            FZ_CHECK(o2 == off);
            /* msgpack-c must refuse it too; asked only when the counts
             * are known to fit the bytes (see above) */
            if (hf_wire_mp_check(buf + off, size - off, 1024) != 0)
                FZ_CHECK(hf_unpack_next(buf, size, &o1, &z1, &obj) != 0);
            break;
        }
        FZ_CHECK(o2 > off && o2 <= size);
        FZ_CHECK(hf_unpack_next(buf, size, &o1, &z1, &obj) == 0);
        FZ_CHECK(o1 == o2);
        dec = hf_env_decode(&obj, &e1);
        FZ_CHECK(dec == st);
        FZ_CHECK(env_eq(&e1, &e2));
        FZ_CHECK(val_eq(e1.val, e2.val));
        if (e2.val_raw.len > 0) {
            /* the raw value is exactly one object, the one decoded */
            msgpack_object v;
            size_t vo = 0;
            FZ_CHECK((const char *)e2.val_raw.data >= buf + off &&
                     (const char *)e2.val_raw.data + e2.val_raw.len <=
                         buf + o2);
            FZ_CHECK(hf_unpack_next(e2.val_raw.data, e2.val_raw.len, &vo, &z1,
                                    &v) == 0 &&
                     vo == e2.val_raw.len);
            FZ_CHECK(e1.val != NULL && fz_obj_eq(&v, e1.val));
        } else {
            FZ_CHECK(e1.val == NULL && e2.val == NULL);
        }

        /* 1. the gateway (the same encoders for each: a few will do), and
         * hf_mp_to_json, which the driver and the CLI use */
        if (dec == 0 && n++ < OUTPUTS_MAX) {
            fz_gateway_output(&e1, &obj, (hf_slice){"\x2a", 1}, out, &http);
            FZ_CHECK(http.len <= GROWTH_MAX * size + 4096);
            if (e1.val != NULL) {
                char *js = hf_mp_to_json(e1.val);
                FZ_CHECK(js != NULL && strlen(js) <= GROWTH_MAX * size + 4096);
                free(js);
            }
        }

        /* 2, 3. the host, for what it would queue */
        if (obj.type == MSGPACK_OBJECT_MAP && routable(&e2, st)) {
            hf_env r;
            size_t ro = off;
            FZ_CHECK(hf_env_read(buf, size, &ro, NULL, &r, &st) == 0 &&
                     ro == o2 && st == 0);
            FZ_CHECK(r.val == NULL && req_eq(&r, &e2));
            worker_read(buf + off, o2 - off, &r);
        }
        msgpack_zone_clear(&z1);
        msgpack_zone_clear(&z2);
        off = o2;
    }
    FZ_CHECK(out[0].len + out[1].len <= GROWTH_MAX * size + 4096);
    fz_check_out(&out[HF_WIRE_JSON], HF_WIRE_JSON);
    fz_check_out(&out[HF_WIRE_MSGPACK], HF_WIRE_MSGPACK);
    msgpack_zone_destroy(&z1);
    msgpack_zone_destroy(&z2);
    hf_buf_free(&out[0]);
    hf_buf_free(&out[1]);
    hf_buf_free(&http);
    return 0;
}
