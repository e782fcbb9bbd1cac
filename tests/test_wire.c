/*
 * test_wire.c - the wire protocol (transport/wire.h): decoding client
 * frames in both formats, the msgpack checker, and every encoder's exact
 * output. Values are compared as JSON text (hf_wire_json), which keeps the
 * expectations readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "transport/wire.h"

#define MAXMSGS 64

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static int
decode_n(hf_wire_frame *f, int fmt, const void *p, size_t n)
{
    return hf_wire_decode(f, fmt, p, n, MAXMSGS);
}

static int
decode_json(hf_wire_frame *f, const char *s)
{
    return decode_n(f, HF_WIRE_JSON, s, strlen(s));
}

/* Appends the msgpack of a JSON text to b. */
static void
mp_append(hf_buf *b, const char *json)
{
    assert_int_equal(hf_json_to_mp(json, strlen(json), b), 0);
}

static void
assert_slice(hf_slice s, const char *want)
{
    assert_non_null(s.data);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.data, want, s.len);
}

/* A msgpack value as JSON text, for comparing. */
static void
assert_raw_json(hf_slice raw, const char *want)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    hf_buf out = {0};

    assert_true(raw.len > 0);
    assert_int_equal(hf_wire_mp_check(raw.data, raw.len, 64), raw.len);
    assert_true(msgpack_zone_init(&z, 1024));
    assert_int_equal(msgpack_unpack(raw.data, raw.len, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    hf_wire_json(&out, &o);
    assert_int_equal(hf_buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, want);
    hf_buf_free(&out);
    msgpack_zone_destroy(&z);
}

static void
assert_err(const hf_wire_msg *m, int err, const char *why)
{
    assert_int_equal(m->err, err);
    assert_non_null(m->errmsg);
    assert_string_equal(m->errmsg, why);
}

/* Decodes a one-message JSON frame and checks it failed with why. */
static void
assert_json_fails(const char *json, const char *why)
{
    hf_wire_frame f = {0};

    assert_int_equal(decode_json(&f, json), 0);
    assert_int_equal(f.n, 1);
    assert_err(&f.msgs[0], HF_EBADREQ, why);
    hf_wire_frame_free(&f);
}

/* out as a NUL-terminated string (appends a NUL after len). */
static const char *
text(hf_buf *out)
{
    assert_int_equal(hf_buf_reserve(out, 1), 0);
    out->data[out->len] = '\0';
    return out->data;
}

static hf_slice
sl(const char *s)
{
    return (hf_slice){s, strlen(s)};
}

/* Parses JSON into an object living in z (backing bytes in b). */
static msgpack_object
obj_of(msgpack_zone *z, hf_buf *b, const char *json)
{
    msgpack_object o;
    size_t off = 0;

    b->len = 0;
    mp_append(b, json);
    assert_int_equal(msgpack_unpack(b->data, b->len, &off, z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    return o;
}

/* The value under key k of a decoded msgpack map, or NULL. */
static const msgpack_object *
map_get(const msgpack_object *m, const char *k)
{
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == strlen(k) &&
            memcmp(kv->key.via.str.ptr, k, strlen(k)) == 0)
            return &kv->val;
    }
    return NULL;
}

static void
assert_obj_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

/* An object as JSON text into a static buffer (one at a time). */
static const char *
obj_json(const msgpack_object *o)
{
    static hf_buf b;
    b.len = 0;
    hf_wire_json(&b, o);
    return text(&b);
}

/* ------------------------------------------------------------------ */
/* decoding JSON: each op                                              */

static void
test_json_call_decodes_all_fields(void **state)
{
    hf_wire_frame f = {0};
    const hf_wire_msg *m;

    assert_int_equal(
        decode_json(&f, "{\"op\":\"call\",\"id\":7,\"to\":\"device/ps5-03\","
                        "\"method\":\"reserve\",\"args\":{\"slot\":\"18:00\","
                        "\"n\":[1,2.5,null,true]},\"key\":\"idem-1\"}"),
        0);
    assert_int_equal(f.n, 1);
    m = &f.msgs[0];
    assert_int_equal(m->err, 0);
    assert_null(m->errmsg);
    assert_int_equal(m->op, HF_W_CALL);
    assert_raw_json(m->id, "7");
    assert_slice(m->to, "device/ps5-03");
    assert_slice(m->method, "reserve");
    assert_slice(m->key, "idem-1");
    assert_raw_json(m->args, "{\"slot\":\"18:00\",\"n\":[1,2.5,null,true]}");
    assert_int_equal(m->has_since, 0);
    assert_int_equal(m->type.len, 0);
    assert_int_equal(m->token.len, 0);
    hf_wire_frame_free(&f);
}

static void
test_json_sub_decodes_all_fields(void **state)
{
    hf_wire_frame f = {0};
    const hf_wire_msg *m;

    assert_int_equal(
        decode_json(&f, "{\"op\":\"sub\",\"id\":8,\"to\":\"store/gangnam-1\","
                        "\"since\":120,\"epoch\":\"ep-9\","
                        "\"presence\":{\"name\":\"Kim\"}}"),
        0);
    assert_int_equal(f.n, 1);
    m = &f.msgs[0];
    assert_int_equal(m->err, 0);
    assert_int_equal(m->op, HF_W_SUB);
    assert_raw_json(m->id, "8");
    assert_slice(m->to, "store/gangnam-1");
    assert_int_equal(m->has_since, 1);
    assert_int_equal(m->since, 120);
    assert_slice(m->epoch, "ep-9");
    assert_raw_json(m->args, "{\"name\":\"Kim\"}");
    hf_wire_frame_free(&f);
}

static void
test_json_unsub_decodes_all_fields(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(
        decode_json(&f,
                    "{\"op\":\"unsub\",\"id\":9,\"to\":\"store/gangnam-1\"}"),
        0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].op, HF_W_UNSUB);
    assert_raw_json(f.msgs[0].id, "9");
    assert_slice(f.msgs[0].to, "store/gangnam-1");
    hf_wire_frame_free(&f);
}

static void
test_json_signal_decodes_all_fields(void **state)
{
    hf_wire_frame f = {0};
    const hf_wire_msg *m;

    assert_int_equal(decode_json(&f, "{\"op\":\"signal\",\"to\":\"room/lobby\","
                                     "\"type\":\"typing\",\"data\":{}}"),
                     0);
    assert_int_equal(f.n, 1);
    m = &f.msgs[0];
    assert_int_equal(m->err, 0);
    assert_int_equal(m->op, HF_W_SIGNAL);
    assert_int_equal(m->id.len, 0); /* no id: absent */
    assert_slice(m->to, "room/lobby");
    assert_slice(m->type, "typing");
    assert_raw_json(m->args, "{}");
    hf_wire_frame_free(&f);
}

static void
test_json_ping_decodes(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(decode_json(&f, "{\"op\":\"ping\",\"id\":10}"), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].op, HF_W_PING);
    assert_raw_json(f.msgs[0].id, "10");
    hf_wire_frame_free(&f);
}

static void
test_json_auth_decodes(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(
        decode_json(&f, "{\"op\":\"auth\",\"id\":1,\"token\":\"aaa.bbb.ccc\"}"),
        0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].op, HF_W_AUTH);
    assert_raw_json(f.msgs[0].id, "1");
    assert_slice(f.msgs[0].token, "aaa.bbb.ccc");
    hf_wire_frame_free(&f);
}

static void
test_json_null_fields_are_absent(void **state)
{
    hf_wire_frame f = {0};
    const hf_wire_msg *m;

    assert_int_equal(
        decode_json(&f, "{\"op\":\"sub\",\"id\":null,\"to\":\"a/b\","
                        "\"since\":null,\"epoch\":null,\"presence\":null}"),
        0);
    m = &f.msgs[0];
    assert_int_equal(m->err, 0);
    assert_int_equal(m->id.len, 0);
    assert_null(m->id.data);
    assert_int_equal(m->has_since, 0);
    assert_int_equal(m->epoch.len, 0);
    assert_int_equal(m->args.len, 0);
    hf_wire_frame_free(&f);
}

static void
test_fields_the_op_does_not_use_are_ignored(void **state)
{
    hf_wire_frame f = {0};
    const hf_wire_msg *m;

    /* ping reads no "to"; call reads "args", not "data"; extra keys. */
    assert_int_equal(
        decode_json(&f, "{\"op\":\"ping\",\"to\":5,\"x\":[1]}\n"
                        "{\"op\":\"call\",\"to\":\"a/b\",\"method\":\"m\","
                        "\"data\":{\"d\":1},\"token\":7}"),
        0);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].to.len, 0);
    m = &f.msgs[1];
    assert_int_equal(m->err, 0);
    assert_int_equal(m->args.len, 0);
    assert_int_equal(m->token.len, 0);
    hf_wire_frame_free(&f);
}

/* ------------------------------------------------------------------ */
/* decoding JSON: frames and bad input                                 */

static void
test_json_frame_with_several_messages_and_blank_lines(void **state)
{
    hf_wire_frame f = {0};
    const char *s = "\n{\"op\":\"ping\",\"id\":1}\r\n\n   \t\n"
                    "  {\"op\":\"ping\",\"id\":2}  \r\n"
                    "{\"op\":\"unsub\",\"id\":3,\"to\":\"a/b\"}\n\n";

    assert_int_equal(decode_json(&f, s), 0);
    assert_int_equal(f.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(f.msgs[i].err, 0);
    assert_raw_json(f.msgs[0].id, "1");
    assert_raw_json(f.msgs[1].id, "2");
    assert_raw_json(f.msgs[2].id, "3");
    assert_int_equal(f.msgs[2].op, HF_W_UNSUB);
    hf_wire_frame_free(&f);
}

static void
test_json_empty_frame_has_no_messages(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(decode_json(&f, ""), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(decode_json(&f, "\n \r\n\t\n"), 0);
    assert_int_equal(f.n, 0);
    hf_wire_frame_free(&f);
}

static void
test_json_bad_line_does_not_affect_others(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(decode_json(&f, "{\"op\":\"ping\",\"id\":1}\n"
                                     "{\"op\":\"ping\",\"id\":\n"
                                     "{\"op\":\"ping\",\"id\":3}"),
                     0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.msgs[0].err, 0);
    assert_raw_json(f.msgs[0].id, "1");
    assert_err(&f.msgs[1], HF_EBADREQ, "invalid JSON");
    assert_int_equal(f.msgs[1].op, 0);
    assert_int_equal(f.msgs[2].err, 0);
    assert_raw_json(f.msgs[2].id, "3");
    hf_wire_frame_free(&f);
}

static void
test_json_invalid_json_is_error(void **state)
{
    assert_json_fails("{\"op\":\"ping\"", "invalid JSON");
    assert_json_fails("{op:\"ping\"}", "invalid JSON");
    assert_json_fails("{\"op\":\"ping\",}", "invalid JSON");
    assert_json_fails("nul", "invalid JSON");
    /* a message is exactly one value */
    assert_json_fails("{\"op\":\"ping\"} {\"op\":\"ping\"}", "invalid JSON");
    assert_json_fails("{\"op\":\"ping\"}x", "invalid JSON");
    /* lone surrogate escape; integer beyond int64 */
    assert_json_fails("{\"op\":\"ping\",\"id\":\"\\ud800\"}", "invalid JSON");
    assert_json_fails("{\"op\":\"ping\",\"id\":99999999999999999999}",
                      "invalid JSON");
}

static void
test_json_invalid_utf8_inside_string_is_error(void **state)
{
    assert_json_fails("{\"op\":\"call\",\"to\":\"a\xff\",\"method\":\"m\"}",
                      "invalid UTF-8");
    /* overlong '/', an encoded surrogate, a truncated sequence */
    assert_json_fails("{\"op\":\"ping\",\"id\":\"\xc0\xaf\"}", "invalid UTF-8");
    assert_json_fails("{\"op\":\"ping\",\"id\":\"\xed\xa0\x80\"}",
                      "invalid UTF-8");
    assert_json_fails("{\"op\":\"ping\",\"id\":\"\xe2\x82\"}", "invalid UTF-8");
}

static void
test_json_invalid_utf8_outside_string_is_error(void **state)
{
    assert_json_fails("{\"op\":\"ping\"}\xc3", "invalid UTF-8");
    assert_json_fails("\xfe{\"op\":\"ping\"}", "invalid UTF-8");
}

static void
test_json_valid_utf8_is_accepted(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(
        decode_json(&f, "{\"op\":\"signal\",\"to\":\"room/\xed\x95\x9c\","
                        "\"type\":\"\xf0\x9f\x98\x80\"}"),
        0);
    assert_int_equal(f.msgs[0].err, 0);
    assert_slice(f.msgs[0].to, "room/\xed\x95\x9c");
    assert_slice(f.msgs[0].type, "\xf0\x9f\x98\x80");
    hf_wire_frame_free(&f);
}

static void
test_json_nul_byte_is_error(void **state)
{
    static const char s[] =
        "{\"op\":\"ping\",\"id\":\"a\0b\"}\n{\"op\":\"ping\"}";
    hf_wire_frame f = {0};

    assert_int_equal(decode_n(&f, HF_WIRE_JSON, s, sizeof s - 1), 0);
    assert_int_equal(f.n, 2);
    assert_err(&f.msgs[0], HF_EBADREQ, "NUL byte in JSON");
    assert_int_equal(f.msgs[1].err, 0);
    hf_wire_frame_free(&f);
}

static void
test_nul_in_string_field_is_error_but_allowed_in_values(void **state)
{
    hf_wire_frame f = {0};

    assert_json_fails("{\"op\":\"auth\",\"token\":\"good\\u0000junk\"}",
                      "'token' must not contain NUL bytes");
    assert_int_equal(
        decode_json(&f, "{\"op\":\"call\",\"to\":\"a/b\",\"method\":\"m\","
                        "\"args\":{\"s\":\"x\\u0000y\"}}"),
        0);
    assert_int_equal(f.msgs[0].err, 0);
    assert_raw_json(f.msgs[0].args, "{\"s\":\"x\\u0000y\"}");
    hf_wire_frame_free(&f);
}

static void
test_non_object_message_is_error(void **state)
{
    static const unsigned char mp[] = {0x93, 1,    2,   3,   0x81, 0xa2, 'o',
                                       'p',  0xa4, 'p', 'i', 'n',  'g'};
    hf_wire_frame f = {0};

    assert_json_fails("[1,2]", "message must be an object");
    assert_json_fails("\"ping\"", "message must be an object");
    assert_json_fails("42", "message must be an object");
    assert_json_fails("null", "message must be an object");
    /* msgpack: a well-formed non-map still lets the next message through */
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, mp, sizeof mp), 0);
    assert_int_equal(f.n, 2);
    assert_err(&f.msgs[0], HF_EBADREQ, "message must be an object");
    assert_int_equal(f.msgs[1].err, 0);
    assert_int_equal(f.msgs[1].op, HF_W_PING);
    hf_wire_frame_free(&f);
}

static void
test_missing_fields_name_the_field(void **state)
{
    static const struct {
        const char *json, *why;
        int op;
    } cases[] = {
        {"{\"id\":3}", "'op' is required", 0},
        {"{\"op\":null}", "'op' is required", 0},
        {"{\"op\":\"call\",\"method\":\"m\"}", "'to' is required", HF_W_CALL},
        {"{\"op\":\"call\",\"to\":\"a/b\"}", "'method' is required", HF_W_CALL},
        {"{\"op\":\"call\",\"to\":null,\"method\":\"m\"}", "'to' is required",
         HF_W_CALL},
        {"{\"op\":\"sub\",\"since\":1}", "'to' is required", HF_W_SUB},
        {"{\"op\":\"unsub\"}", "'to' is required", HF_W_UNSUB},
        {"{\"op\":\"signal\",\"to\":\"a/b\"}", "'type' is required",
         HF_W_SIGNAL},
        {"{\"op\":\"signal\",\"type\":\"t\"}", "'to' is required", HF_W_SIGNAL},
        {"{\"op\":\"auth\"}", "'token' is required", HF_W_AUTH},
    };
    hf_wire_frame f = {0};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(decode_json(&f, cases[i].json), 0);
        assert_int_equal(f.n, 1);
        assert_err(&f.msgs[0], HF_EBADREQ, cases[i].why);
        assert_int_equal(f.msgs[0].op, cases[i].op);
    }
    hf_wire_frame_free(&f);
}

static void
test_mistyped_fields_name_the_field(void **state)
{
    static const struct {
        const char *json, *why;
    } cases[] = {
        {"{\"op\":5}", "'op' must be a string"},
        {"{\"op\":[\"call\"]}", "'op' must be a string"},
        {"{\"op\":\"call\",\"to\":5,\"method\":\"m\"}",
         "'to' must be a string"},
        {"{\"op\":\"call\",\"to\":\"a/b\",\"method\":[]}",
         "'method' must be a string"},
        {"{\"op\":\"call\",\"to\":\"a/b\",\"method\":\"m\",\"key\":1}",
         "'key' must be a string"},
        {"{\"op\":\"signal\",\"to\":\"a/b\",\"type\":{}}",
         "'type' must be a string"},
        {"{\"op\":\"auth\",\"token\":true}", "'token' must be a string"},
        {"{\"op\":\"sub\",\"to\":\"a/b\",\"epoch\":1.5}",
         "'epoch' must be a string"},
        {"{\"op\":\"sub\",\"to\":\"a/b\",\"since\":-1}",
         "'since' must be a non-negative integer"},
        {"{\"op\":\"sub\",\"to\":\"a/b\",\"since\":1.5}",
         "'since' must be a non-negative integer"},
        {"{\"op\":\"sub\",\"to\":\"a/b\",\"since\":\"3\"}",
         "'since' must be a non-negative integer"},
        {"{\"op\":\"ping\",\"id\":1.5}", "'id' must be a string or integer"},
        {"{\"op\":\"ping\",\"id\":[1]}", "'id' must be a string or integer"},
        {"{\"op\":\"ping\",\"id\":{}}", "'id' must be a string or integer"},
        {"{\"op\":\"ping\",\"id\":true}", "'id' must be a string or integer"},
    };
    hf_wire_frame f = {0};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(decode_json(&f, cases[i].json), 0);
        assert_int_equal(f.n, 1);
        assert_err(&f.msgs[0], HF_EBADREQ, cases[i].why);
    }
    hf_wire_frame_free(&f);
}

static void
test_bad_field_keeps_op_and_id(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(
        decode_json(&f, "{\"id\":\"r-4\",\"op\":\"call\",\"to\":5}"), 0);
    assert_err(&f.msgs[0], HF_EBADREQ, "'to' must be a string");
    assert_int_equal(f.msgs[0].op, HF_W_CALL);
    assert_raw_json(f.msgs[0].id, "\"r-4\"");
    hf_wire_frame_free(&f);
}

static void
test_unknown_op_echoes_id(void **state)
{
    hf_wire_frame f = {0};

    assert_int_equal(decode_json(&f, "{\"op\":\"dance\",\"id\":\"x-1\"}\n"
                                     "{\"id\":42,\"op\":\"\"}"),
                     0);
    assert_int_equal(f.n, 2);
    assert_err(&f.msgs[0], HF_EBADREQ, "unknown op");
    assert_int_equal(f.msgs[0].op, 0);
    assert_raw_json(f.msgs[0].id, "\"x-1\"");
    assert_err(&f.msgs[1], HF_EBADREQ, "unknown op");
    assert_raw_json(f.msgs[1].id, "42");
    hf_wire_frame_free(&f);
}

/* ------------------------------------------------------------------ */
/* decoding msgpack                                                    */

static void
test_msgpack_frame_with_three_maps(void **state)
{
    hf_wire_frame f = {0};
    hf_buf b = {0};

    mp_append(&b, "{\"op\":\"call\",\"id\":7,\"to\":\"device/ps5-03\","
                  "\"method\":\"reserve\",\"args\":{\"slot\":\"18:00\"},"
                  "\"key\":\"idem-1\"}");
    mp_append(&b, "{\"op\":\"sub\",\"id\":\"s\",\"to\":\"store/g\","
                  "\"since\":4294967296,\"presence\":[1]}");
    mp_append(&b, "{\"op\":\"ping\",\"id\":-3}");
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, b.data, b.len), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].op, HF_W_CALL);
    assert_raw_json(f.msgs[0].id, "7");
    assert_slice(f.msgs[0].to, "device/ps5-03");
    assert_slice(f.msgs[0].method, "reserve");
    assert_slice(f.msgs[0].key, "idem-1");
    assert_raw_json(f.msgs[0].args, "{\"slot\":\"18:00\"}");
    assert_int_equal(f.msgs[1].err, 0);
    assert_int_equal(f.msgs[1].op, HF_W_SUB);
    assert_raw_json(f.msgs[1].id, "\"s\"");
    assert_int_equal(f.msgs[1].since, 4294967296LL);
    assert_raw_json(f.msgs[1].args, "[1]");
    assert_int_equal(f.msgs[2].err, 0);
    assert_int_equal(f.msgs[2].op, HF_W_PING);
    assert_raw_json(f.msgs[2].id, "-3");
    /* the slices point into the frame's own copy, not the input */
    memset(b.data, 0, b.len);
    assert_slice(f.msgs[0].to, "device/ps5-03");
    hf_buf_free(&b);
    hf_wire_frame_free(&f);
}

static void
test_msgpack_signed_formats_and_duplicates(void **state)
{
    /* {"op":"sub","to":"a","since":int8(5),"to":"b"}: since in a signed
     * format is still a non-negative integer; the last "to" wins. */
    static const unsigned char mp[] = {
        0x84, 0xa2, 'o', 'p', 0xa3, 's', 'u',  'b', 0xa2, 't', 'o', 0xa1, 'a',
        0xa5, 's',  'i', 'n', 'c',  'e', 0xd0, 5,   0xa2, 't', 'o', 0xa1, 'b'};
    hf_wire_frame f = {0};

    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, mp, sizeof mp), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[0].since, 5);
    assert_slice(f.msgs[0].to, "b");
    hf_wire_frame_free(&f);
}

static void
test_msgpack_string_field_as_bin_is_mistyped(void **state)
{
    static const unsigned char mp[] = {0x82, 0xa2, 'o', 'p',  0xa4, 'a',
                                       'u',  't',  'h', 0xa5, 't',  'o',
                                       'k',  'e',  'n', 0xc4, 1,    'x'};
    hf_wire_frame f = {0};

    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, mp, sizeof mp), 0);
    assert_err(&f.msgs[0], HF_EBADREQ, "'token' must be a string");
    hf_wire_frame_free(&f);
}

static void
test_msgpack_truncated_reports_one_error_and_stops(void **state)
{
    hf_wire_frame f = {0};
    hf_buf b = {0};

    mp_append(&b, "{\"op\":\"ping\",\"id\":1}");
    mp_append(&b, "{\"op\":\"call\",\"id\":2,\"to\":\"a/b\",\"method\":\"m\"}");
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, b.data, b.len - 3), 0);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.msgs[0].err, 0);
    assert_err(&f.msgs[1], HF_EBADREQ, "invalid msgpack");
    assert_int_equal(f.msgs[1].id.len, 0);

    /* a bad byte first: one error entry, the good map after it is lost */
    b.len = 0;
    assert_int_equal(hf_buf_append(&b, "\xc1", 1), 0);
    mp_append(&b, "{\"op\":\"ping\",\"id\":1}");
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, b.data, b.len), 0);
    assert_int_equal(f.n, 1);
    assert_err(&f.msgs[0], HF_EBADREQ, "invalid msgpack");
    hf_buf_free(&b);
    hf_wire_frame_free(&f);
}

static void
test_msgpack_huge_array_header_is_rejected_without_allocating(void **state)
{
    /* array32 claiming 2^31 elements, in a 10-byte frame. Unpacking it
     * would ask for 64 GiB; under ASan that aborts, so passing here means
     * nothing tried. */
    static const unsigned char arr[10] = {0xdd, 0x80, 0, 0, 0, 1, 1, 1, 1, 1};
    /* the same inside a call's args, and a map32 of 2^31 pairs */
    static const unsigned char nested[] = {
        0x84, 0xa2, 'o',  'p', 0xa4, 'c',  'a', 'l', 'l', 0xa2, 't', 'o',
        0xa1, 'a',  0xa6, 'm', 'e',  't',  'h', 'o', 'd', 0xa1, 'm', 0xa4,
        'a',  'r',  'g',  's', 0xdd, 0x80, 0,   0,   0,   1,    1,   1};
    static const unsigned char map[10] = {0xdf, 0x80, 0, 0, 0, 1, 1, 1, 1, 1};
    hf_wire_frame f = {0};

    assert_int_equal(hf_wire_mp_check(arr, sizeof arr, 32), 0);
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, arr, sizeof arr), 0);
    assert_int_equal(f.n, 1);
    assert_err(&f.msgs[0], HF_EBADREQ, "invalid msgpack");
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, nested, sizeof nested), 0);
    assert_int_equal(f.n, 1);
    assert_err(&f.msgs[0], HF_EBADREQ, "invalid msgpack");
    assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, map, sizeof map), 0);
    assert_int_equal(f.n, 1);
    assert_err(&f.msgs[0], HF_EBADREQ, "invalid msgpack");
    hf_wire_frame_free(&f);
}

/* A call whose args nest `levels` arrays around 1, in fmt. */
static void
nested_call(hf_buf *b, int fmt, int levels)
{
    b->len = 0;
    if (fmt == HF_WIRE_JSON) {
        const char *head = "{\"op\":\"call\",\"to\":\"a/b\",\"method\":\"m\","
                           "\"args\":";
        assert_int_equal(hf_buf_append(b, head, strlen(head)), 0);
        for (int i = 0; i < levels; i++)
            assert_int_equal(hf_buf_append(b, "[", 1), 0);
        assert_int_equal(hf_buf_append(b, "1", 1), 0);
        for (int i = 0; i < levels; i++)
            assert_int_equal(hf_buf_append(b, "]", 1), 0);
        assert_int_equal(hf_buf_append(b, "}", 1), 0);
    } else {
        static const unsigned char head[] = {
            0x84, 0xa2, 'o',  'p',  0xa4, 'c', 'a', 'l', 'l', 0xa2,
            't',  'o',  0xa1, 'a',  0xa6, 'm', 'e', 't', 'h', 'o',
            'd',  0xa1, 'm',  0xa4, 'a',  'r', 'g', 's'};
        assert_int_equal(hf_buf_append(b, head, sizeof head), 0);
        for (int i = 0; i < levels; i++)
            assert_int_equal(hf_buf_append(b, "\x91", 1), 0);
        assert_int_equal(hf_buf_append(b, "\x01", 1), 0);
    }
}

static void
test_nesting_deeper_than_the_limit_is_rejected(void **state)
{
    hf_wire_frame f = {0};
    hf_buf b = {0};

    for (int fmt = HF_WIRE_JSON; fmt <= HF_WIRE_MSGPACK; fmt++) {
        /* the message map is one level: args may nest 31 more */
        nested_call(&b, fmt, 31);
        assert_int_equal(decode_n(&f, fmt, b.data, b.len), 0);
        assert_int_equal(f.n, 1);
        assert_int_equal(f.msgs[0].err, 0);
        nested_call(&b, fmt, 32);
        assert_int_equal(decode_n(&f, fmt, b.data, b.len), 0);
        assert_int_equal(f.n, 1);
        assert_err(&f.msgs[0], HF_EBADREQ, "nesting too deep");
        nested_call(&b, fmt, 5000);
        assert_int_equal(decode_n(&f, fmt, b.data, b.len), 0);
        assert_int_equal(f.n, 1);
        assert_int_equal(f.msgs[0].err, HF_EBADREQ);
    }
    hf_buf_free(&b);
    hf_wire_frame_free(&f);
}

static void
test_max_msgs_exceeded_gives_too_large_entry(void **state)
{
    hf_wire_frame f = {0};
    hf_buf b = {0};
    const char *js = "{\"op\":\"ping\",\"id\":1}\n{\"op\":\"ping\",\"id\":2}\n"
                     "{\"op\":\"ping\",\"id\":3}\n\n";

    assert_int_equal(hf_wire_decode(&f, HF_WIRE_JSON, js, strlen(js), 3), 0);
    assert_int_equal(f.n, 3); /* exactly max: no extra entry */
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_JSON, js, strlen(js), 2), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.msgs[0].err, 0);
    assert_int_equal(f.msgs[1].err, 0);
    assert_err(&f.msgs[2], HF_ETOOLARGE, "too many messages in frame");
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_JSON, js, strlen(js), 0), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.msgs[0].err, HF_ETOOLARGE);

    for (int i = 0; i < 5; i++)
        mp_append(&b, "{\"op\":\"ping\"}");
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_MSGPACK, b.data, b.len, 5), 0);
    assert_int_equal(f.n, 5);
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_MSGPACK, b.data, b.len, 4), 0);
    assert_int_equal(f.n, 5);
    assert_int_equal(f.msgs[3].err, 0);
    assert_err(&f.msgs[4], HF_ETOOLARGE, "too many messages in frame");
    hf_buf_free(&b);
    hf_wire_frame_free(&f);
}

static void
test_slices_stay_valid_while_the_store_grows(void **state)
{
    hf_wire_frame f = {0};
    hf_buf in = {0};
    char line[2200], big[2000];

    /* 200 lines of ~2 kB: the store is reallocated many times over */
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof line,
                         "{\"op\":\"call\",\"id\":%d,\"to\":\"kind/n%d\","
                         "\"method\":\"m\",\"args\":\"%s\"}\n",
                         i, i, big);
        assert_int_equal(hf_buf_append(&in, line, (size_t)n), 0);
    }
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_JSON, in.data, in.len, 500), 0);
    assert_int_equal(f.n, 200);
    for (int i = 0; i < 200; i++) {
        char want[32];
        const hf_wire_msg *m = &f.msgs[i];
        assert_int_equal(m->err, 0);
        snprintf(want, sizeof want, "kind/n%d", i);
        assert_slice(m->to, want);
        snprintf(want, sizeof want, "%d", i);
        assert_raw_json(m->id, want);
        assert_true(m->args.len > sizeof big);
        assert_true((const char *)m->args.data >= f.store.data &&
                    (const char *)m->args.data + m->args.len <=
                        f.store.data + f.store.len);
    }
    /* reusing the frame resets it */
    assert_int_equal(decode_json(&f, "{\"op\":\"ping\",\"id\":\"again\"}"), 0);
    assert_int_equal(f.n, 1);
    assert_raw_json(f.msgs[0].id, "\"again\"");
    hf_buf_free(&in);
    hf_wire_frame_free(&f);
    hf_wire_frame_free(&f); /* twice is harmless */
    hf_wire_frame_free(NULL);
}

/* ------------------------------------------------------------------ */
/* ids round-trip                                                      */

static void
test_ids_round_trip_through_json_replies(void **state)
{
    static const char *ids[] = {"\"req-1\"", "7", "9007199254740993", "-5",
                                "\"\xea\xb0\x80\""};
    hf_wire_frame f = {0};
    hf_buf out = {0};
    char in[128], want[256];

    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        snprintf(in, sizeof in, "{\"op\":\"ping\",\"id\":%s}", ids[i]);
        assert_int_equal(decode_json(&f, in), 0);
        assert_int_equal(f.msgs[0].err, 0);

        out.len = 0;
        hf_wire_reply_ok(&out, HF_WIRE_JSON, f.msgs[0].id, NULL);
        snprintf(want, sizeof want,
                 "{\"op\":\"reply\",\"id\":%s,\"ok\":true,\"result\":null}",
                 ids[i]);
        assert_string_equal(text(&out), want);

        out.len = 0;
        hf_wire_reply_err(&out, HF_WIRE_JSON, f.msgs[0].id, HF_ENOTFOUND, "no",
                          2);
        snprintf(want, sizeof want,
                 "{\"op\":\"reply\",\"id\":%s,\"ok\":false,\"error\":"
                 "{\"code\":\"not_found\",\"message\":\"no\"}}",
                 ids[i]);
        assert_string_equal(text(&out), want);

        out.len = 0;
        hf_wire_pong(&out, HF_WIRE_JSON, f.msgs[0].id);
        snprintf(want, sizeof want, "{\"op\":\"pong\",\"id\":%s}", ids[i]);
        assert_string_equal(text(&out), want);
    }
    hf_buf_free(&out);
    hf_wire_frame_free(&f);
}

static void
test_ids_round_trip_through_msgpack_replies(void **state)
{
    static const char *ids[] = {"\"req-1\"", "7", "9007199254740993", "-5"};
    hf_wire_frame f = {0};
    hf_buf in = {0}, out = {0};
    char json[128];

    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        msgpack_zone z;
        msgpack_object o;
        size_t off = 0;

        snprintf(json, sizeof json, "{\"op\":\"ping\",\"id\":%s}", ids[i]);
        in.len = 0;
        mp_append(&in, json);
        assert_int_equal(decode_n(&f, HF_WIRE_MSGPACK, in.data, in.len), 0);
        assert_int_equal(f.msgs[0].err, 0);

        out.len = 0;
        hf_wire_reply_ok(&out, HF_WIRE_MSGPACK, f.msgs[0].id, NULL);
        hf_wire_reply_err(&out, HF_WIRE_MSGPACK, f.msgs[0].id, HF_ECONFLICT,
                          "held", 4);
        hf_wire_pong(&out, HF_WIRE_MSGPACK, f.msgs[0].id);
        assert_true(msgpack_zone_init(&z, 1024));
        for (int k = 0; k < 3; k++) {
            assert_int_equal(hf_unpack_next(out.data, out.len, &off, &z, &o),
                             0);
            assert_string_equal(obj_json(map_get(&o, "id")), ids[i]);
        }
        assert_int_equal(off, out.len);
        msgpack_zone_destroy(&z);
    }
    hf_buf_free(&in);
    hf_buf_free(&out);
    hf_wire_frame_free(&f);
}

/* ------------------------------------------------------------------ */
/* encoders: exact JSON                                                */

static void
test_hello_json_text(void **state)
{
    hf_buf out = {0};

    hf_wire_hello(&out, HF_WIRE_JSON, "holdfast/0.1.0", UINT64_MAX, 25);
    assert_string_equal(text(&out),
                        "{\"op\":\"hello\",\"server\":\"holdfast/0.1.0\","
                        "\"conn\":\"18446744073709551615\",\"heartbeat\":25}");
    hf_buf_free(&out);
}

static void
test_reply_ok_json_text(void **state)
{
    msgpack_zone z;
    hf_buf b = {0}, out = {0};
    msgpack_object o;

    assert_true(msgpack_zone_init(&z, 1024));
    o = obj_of(&z, &b, "{\"held\":true,\"slot\":\"18:00\",\"n\":[1,-2]}");
    hf_wire_reply_ok(&out, HF_WIRE_JSON, sl("\x07"), &o);
    assert_string_equal(text(&out),
                        "{\"op\":\"reply\",\"id\":7,\"ok\":true,\"result\":"
                        "{\"held\":true,\"slot\":\"18:00\",\"n\":[1,-2]}}");
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_reply_err_json_text(void **state)
{
    hf_buf out = {0};
    const char *msg = "slot 18:00 is held";

    hf_wire_reply_err(&out, HF_WIRE_JSON, sl("\x07"), HF_ECONFLICT, msg,
                      strlen(msg));
    assert_string_equal(text(&out),
                        "{\"op\":\"reply\",\"id\":7,\"ok\":false,\"error\":"
                        "{\"code\":\"conflict\",\"message\":"
                        "\"slot 18:00 is held\"}}");
    /* no id: null; no message: the code */
    out.len = 0;
    hf_wire_reply_err(&out, HF_WIRE_JSON, (hf_slice){0}, HF_ERATELIMIT, NULL,
                      0);
    assert_string_equal(text(&out),
                        "{\"op\":\"reply\",\"id\":null,\"ok\":false,\"error\":"
                        "{\"code\":\"rate_limited\",\"message\":"
                        "\"rate_limited\"}}");
    hf_buf_free(&out);
}

static void
test_event_json_text(void **state)
{
    msgpack_zone z;
    hf_buf b = {0}, out = {0};
    msgpack_object o;

    assert_true(msgpack_zone_init(&z, 1024));
    o = obj_of(&z, &b, "{\"n\":1}");
    hf_wire_event(&out, HF_WIRE_JSON, sl("store/gangnam-1"), 136,
                  sl("new_waiting"), &o, 1700000000123LL);
    assert_string_equal(text(&out),
                        "{\"op\":\"event\",\"from\":\"store/gangnam-1\","
                        "\"seq\":136,\"type\":\"new_waiting\",\"data\":"
                        "{\"n\":1},\"at\":1700000000123}");
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_signal_json_text(void **state)
{
    msgpack_zone z;
    hf_buf b = {0}, out = {0};
    msgpack_object o;

    assert_true(msgpack_zone_init(&z, 1024));
    o = obj_of(&z, &b, "{}");
    hf_wire_signal(&out, HF_WIRE_JSON, sl("room/lobby"), sl("typing"), sl("u1"),
                   &o);
    assert_string_equal(text(&out),
                        "{\"op\":\"signal\",\"from\":\"room/lobby\","
                        "\"type\":\"typing\",\"by\":\"u1\",\"data\":{}}");
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_presence_json_text(void **state)
{
    msgpack_zone z;
    hf_buf b = {0}, out = {0};
    msgpack_object o;

    assert_true(msgpack_zone_init(&z, 1024));
    o = obj_of(&z, &b, "{\"sub\":\"u1\",\"name\":\"Kim\"}");
    hf_wire_presence(&out, HF_WIRE_JSON, sl("room/lobby"), sl("join"), &o);
    assert_string_equal(text(&out),
                        "{\"op\":\"presence\",\"from\":\"room/lobby\","
                        "\"action\":\"join\",\"who\":"
                        "{\"sub\":\"u1\",\"name\":\"Kim\"}}");
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_pong_json_text(void **state)
{
    hf_buf out = {0};

    hf_wire_pong(&out, HF_WIRE_JSON, sl("\x0a"));
    assert_string_equal(text(&out), "{\"op\":\"pong\",\"id\":10}");
    out.len = 0;
    hf_wire_pong(&out, HF_WIRE_JSON, (hf_slice){0});
    assert_string_equal(text(&out), "{\"op\":\"pong\",\"id\":null}");
    hf_buf_free(&out);
}

static void
test_http_bodies_json_text(void **state)
{
    msgpack_zone z;
    hf_buf b = {0}, out = {0};
    msgpack_object o;

    assert_true(msgpack_zone_init(&z, 1024));
    o = obj_of(&z, &b, "{\"seq\":3}");
    hf_wire_http_ok(&out, &o);
    assert_string_equal(text(&out), "{\"ok\":true,\"result\":{\"seq\":3}}");
    /* never a leading '\n', even after other bytes */
    out.len = 0;
    hf_wire_http_err(&out, HF_EFORBIDDEN, "nope", 4);
    assert_string_equal(text(&out), "{\"ok\":false,\"error\":{\"code\":"
                                    "\"forbidden\",\"message\":\"nope\"}}");
    hf_wire_http_ok(&out, NULL);
    assert_string_equal(text(&out),
                        "{\"ok\":false,\"error\":{\"code\":\"forbidden\","
                        "\"message\":\"nope\"}}{\"ok\":true,\"result\":null}");
    msgpack_zone_destroy(&z);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_json_messages_in_one_buffer_are_separated_by_newline(void **state)
{
    hf_buf out = {0};
    hf_wire_frame f = {0};

    hf_wire_pong(&out, HF_WIRE_JSON, sl("\x01"));
    hf_wire_pong(&out, HF_WIRE_JSON, sl("\x02"));
    hf_wire_reply_err(&out, HF_WIRE_JSON, sl("\x03"), HF_ETIMEOUT, "t", 1);
    assert_string_equal(text(&out),
                        "{\"op\":\"pong\",\"id\":1}\n"
                        "{\"op\":\"pong\",\"id\":2}\n"
                        "{\"op\":\"reply\",\"id\":3,\"ok\":false,\"error\":"
                        "{\"code\":\"timeout\",\"message\":\"t\"}}");
    /* and the server's own batch is a valid client-style frame */
    assert_int_equal(decode_n(&f, HF_WIRE_JSON, out.data, out.len), 0);
    assert_int_equal(f.n, 3);
    hf_buf_free(&out);
    hf_wire_frame_free(&f);
}

/* ------------------------------------------------------------------ */
/* hf_wire_json                                                        */

static void
test_json_escaping(void **state)
{
    static const char s[] =
        "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f"
        "\xff|\xe2\x82|\xed\xa0\x80|\xf0\x9f\x98\x80|\xed\x95\x9c";
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};

    o.via.str.ptr = s;
    o.via.str.size = sizeof s - 1;
    assert_string_equal(obj_json(&o),
                        "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f"
                        "\xef\xbf\xbd|\xef\xbf\xbd|"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
                        "\xf0\x9f\x98\x80|\xed\x95\x9c\"");
    /* an invalid sequence cut by the end of the string */
    o.via.str.ptr = "ab\xf0\x9f";
    o.via.str.size = 4;
    assert_string_equal(obj_json(&o), "\"ab\xef\xbf\xbd\"");
    /* slices given to encoders are repaired too */
    {
        hf_buf out = {0};
        hf_wire_signal(&out, HF_WIRE_JSON, sl("room/\x80"), sl("t\""),
                       sl("u\n"), NULL);
        assert_string_equal(
            text(&out), "{\"op\":\"signal\",\"from\":\"room/\xef\xbf\xbd\","
                        "\"type\":\"t\\\"\",\"by\":\"u\\n\",\"data\":null}");
        hf_buf_free(&out);
    }
}

static void
test_json_numbers_are_exact(void **state)
{
    msgpack_object o;

    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = UINT64_MAX;
    assert_string_equal(obj_json(&o), "18446744073709551615");
    o.via.u64 = 0;
    assert_string_equal(obj_json(&o), "0");
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o.via.i64 = INT64_MIN;
    assert_string_equal(obj_json(&o), "-9223372036854775808");
    o.via.i64 = -1;
    assert_string_equal(obj_json(&o), "-1");
    o.type = MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = 0.1;
    assert_string_equal(obj_json(&o), "0.10000000000000001");
    o.via.f64 = 1.0;
    assert_string_equal(obj_json(&o), "1.0");
    o.via.f64 = -2.5e-300;
    assert_string_equal(obj_json(&o), "-2.5e-300");
    o.via.f64 = 1e300;
    assert_string_equal(obj_json(&o), "1.0000000000000001e+300");
    o.via.f64 = NAN;
    assert_string_equal(obj_json(&o), "null");
    o.via.f64 = INFINITY;
    assert_string_equal(obj_json(&o), "null");
    o.via.f64 = -INFINITY;
    assert_string_equal(obj_json(&o), "null");
    o.type = MSGPACK_OBJECT_FLOAT32;
    o.via.f64 = (double)0.1f;
    assert_string_equal(obj_json(&o), "0.100000001");
    o.via.f64 = 0.5;
    assert_string_equal(obj_json(&o), "0.5");
    o.type = MSGPACK_OBJECT_BOOLEAN;
    o.via.boolean = false;
    assert_string_equal(obj_json(&o), "false");
    o.type = MSGPACK_OBJECT_NIL;
    assert_string_equal(obj_json(&o), "null");
    assert_string_equal(obj_json(NULL), "null");
}

static void
test_json_doubles_read_back_identical(void **state)
{
    static const double ds[] = {0.1,
                                1.0 / 3,
                                1e-320,
                                123456789.123456789,
                                -0.0,
                                5e-324,
                                1.7976931348623157e308};
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};

    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        o.via.f64 = ds[i];
        assert_true(strtod(obj_json(&o), NULL) == ds[i]);
    }
}

/* {{...{"k":1}:1}...:1}: depth maps, each the key of the one around it. */
static void
unpack_nested_keys(int depth, unsigned char *b, msgpack_zone *z,
                   msgpack_object *o)
{
    size_t n = 0, off = 0;

    for (int i = 0; i < depth; i++)
        b[n++] = 0x81;
    b[n++] = 0xa1, b[n++] = 'k', b[n++] = 0x01;
    for (int i = 1; i < depth; i++)
        b[n++] = 0x01;
    assert_true(msgpack_zone_init(z, 4096));
    assert_int_equal(msgpack_unpack((const char *)b, n, &off, z, o),
                     MSGPACK_UNPACK_SUCCESS);
}

static void
test_nested_container_keys_stop_growing(void **state)
{
    unsigned char b[128];
    msgpack_zone z;
    msgpack_object o;
    hf_buf out = {0};
    char *s;

    (void)state;
    /* shallow: the key is the string of its JSON text */
    unpack_nested_keys(2, b, &z, &o);
    hf_wire_json(&out, &o);
    assert_int_equal(hf_buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, "{\"{\\\"k\\\":1}\":1}");
    msgpack_zone_destroy(&z);
    /* 31 deep (a client may send that): each level would double the
     * escaping inside it; past 4 container keys the key is "null" */
    unpack_nested_keys(31, b, &z, &o);
    out.len = 0;
    hf_wire_json(&out, &o);
    assert_true(out.len < 200);
    assert_non_null(memmem(out.data, out.len, "null", 4));
    s = hf_mp_to_json(&o);
    assert_non_null(s);
    assert_true(strlen(s) < 200);
    free(s);
    msgpack_zone_destroy(&z);
    hf_buf_free(&out);
}

static void
test_mp_to_json_keeps_empty_strings(void **state)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    char *s;

    (void)state;
    /* msgpack-c unpacks "" with a NULL pointer */
    assert_true(msgpack_zone_init(&z, 256));
    assert_int_equal(msgpack_unpack("\x81\xa0\xa0", 3, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    s = hf_mp_to_json(&o);
    assert_string_equal(s, "{\"\":\"\"}");
    free(s);
    msgpack_zone_destroy(&z);
}

static void
test_mp_to_json_writes_nan_as_null(void **state)
{
    msgpack_zone z;
    msgpack_object o;
    size_t off = 0;
    char *s;

    (void)state;
    /* [1, NaN, 2]: jansson has no NaN; the element keeps its place */
    assert_true(msgpack_zone_init(&z, 256));
    assert_int_equal(msgpack_unpack("\x93\x01\xcb\x7f\xf8\0\0\0\0\0\0\x02",
                                    12, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    s = hf_mp_to_json(&o);
    assert_string_equal(s, "[1,null,2]");
    free(s);
    msgpack_zone_destroy(&z);
}

static void
test_json_bin_ext_and_non_string_keys(void **state)
{
    msgpack_object_kv kv[4];
    msgpack_object items[2], m = {.type = MSGPACK_OBJECT_MAP};

    kv[0].key.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv[0].key.via.u64 = 1;
    kv[0].val.type = MSGPACK_OBJECT_BIN;
    kv[0].val.via.bin.ptr = "\x00\x01";
    kv[0].val.via.bin.size = 2;
    kv[1].key.type = MSGPACK_OBJECT_BOOLEAN;
    kv[1].key.via.boolean = true;
    kv[1].val.type = MSGPACK_OBJECT_EXT;
    kv[1].val.via.ext.type = 1;
    kv[1].val.via.ext.ptr = "x";
    kv[1].val.via.ext.size = 1;
    items[0].type = MSGPACK_OBJECT_STR;
    items[0].via.str.ptr = "q\"";
    items[0].via.str.size = 2;
    items[1].type = MSGPACK_OBJECT_NIL;
    kv[2].key.type = MSGPACK_OBJECT_ARRAY;
    kv[2].key.via.array.ptr = items;
    kv[2].key.via.array.size = 2;
    kv[2].val.type = MSGPACK_OBJECT_NIL;
    kv[3].key.type = MSGPACK_OBJECT_STR;
    kv[3].key.via.str.ptr = "k";
    kv[3].key.via.str.size = 1;
    kv[3].val.type = MSGPACK_OBJECT_ARRAY;
    kv[3].val.via.array.ptr = items;
    kv[3].val.via.array.size = 2;
    m.via.map.ptr = kv;
    m.via.map.size = 4;
    assert_string_equal(obj_json(&m), "{\"1\":null,\"true\":null,"
                                      "\"[\\\"q\\\\\\\"\\\",null]\":null,"
                                      "\"k\":[\"q\\\"\",null]}");
}

/* ------------------------------------------------------------------ */
/* msgpack encoders                                                    */

static void
test_msgpack_encoders_decode_back(void **state)
{
    msgpack_zone z, vz;
    hf_buf b = {0}, out = {0};
    msgpack_object data, o;
    size_t off = 0;
    const char *msg = "slot is held";

    assert_true(msgpack_zone_init(&vz, 1024));
    data = obj_of(&vz, &b, "{\"n\":[1,2.5,\"x\"]}");
    hf_wire_hello(&out, HF_WIRE_MSGPACK, "holdfast/0.1.0", 42, 25);
    hf_wire_reply_ok(&out, HF_WIRE_MSGPACK, sl("\xa1r"), &data);
    hf_wire_reply_err(&out, HF_WIRE_MSGPACK, (hf_slice){0}, HF_ECONFLICT, msg,
                      strlen(msg));
    hf_wire_event(&out, HF_WIRE_MSGPACK, sl("store/g"), 136, sl("t"), &data,
                  -7);
    hf_wire_signal(&out, HF_WIRE_MSGPACK, sl("room/l"), sl("typing"), sl("u1"),
                   NULL);
    hf_wire_presence(&out, HF_WIRE_MSGPACK, sl("room/l"), sl("leave"), &data);
    hf_wire_pong(&out, HF_WIRE_MSGPACK, sl("\x0a"));
    assert_true(out.data[0] != '\n');
    assert_true(msgpack_zone_init(&z, 4096));

#define NEXT()                                                                 \
    assert_int_equal(hf_unpack_next(out.data, out.len, &off, &z, &o), 0)
    NEXT();
    assert_string_equal(obj_json(&o),
                        "{\"op\":\"hello\",\"server\":\"holdfast/0.1.0\","
                        "\"conn\":\"42\",\"heartbeat\":25}");
    NEXT();
    assert_string_equal(obj_json(&o),
                        "{\"op\":\"reply\",\"id\":\"r\",\"ok\":true,"
                        "\"result\":{\"n\":[1,2.5,\"x\"]}}");
    NEXT();
    assert_obj_str(map_get(&o, "op"), "reply");
    assert_int_equal(map_get(&o, "id")->type, MSGPACK_OBJECT_NIL);
    assert_obj_str(map_get(map_get(&o, "error"), "code"), "conflict");
    assert_obj_str(map_get(map_get(&o, "error"), "message"), msg);
    assert_false(map_get(&o, "ok")->via.boolean);
    NEXT();
    assert_string_equal(obj_json(&o),
                        "{\"op\":\"event\",\"from\":\"store/g\",\"seq\":136,"
                        "\"type\":\"t\",\"data\":{\"n\":[1,2.5,\"x\"]},"
                        "\"at\":-7}");
    NEXT();
    assert_string_equal(obj_json(&o),
                        "{\"op\":\"signal\",\"from\":\"room/l\",\"type\":"
                        "\"typing\",\"by\":\"u1\",\"data\":null}");
    NEXT();
    assert_string_equal(obj_json(&o),
                        "{\"op\":\"presence\",\"from\":\"room/l\",\"action\":"
                        "\"leave\",\"who\":{\"n\":[1,2.5,\"x\"]}}");
    NEXT();
    assert_string_equal(obj_json(&o), "{\"op\":\"pong\",\"id\":10}");
#undef NEXT
    assert_int_equal(off, out.len);
    msgpack_zone_destroy(&z);
    msgpack_zone_destroy(&vz);
    hf_buf_free(&b);
    hf_buf_free(&out);
}

static void
test_malformed_raw_id_is_encoded_as_null(void **state)
{
    hf_buf out = {0};

    hf_wire_pong(&out, HF_WIRE_JSON, sl("\xdd\x80"));
    assert_string_equal(text(&out), "{\"op\":\"pong\",\"id\":null}");
    out.len = 0;
    hf_wire_pong(&out, HF_WIRE_MSGPACK, (hf_slice){"\x01\x02", 2});
    assert_int_equal(out.len, 13);
    assert_memory_equal(out.data, "\x82\xa2op\xa4pong\xa2id\xc0", 13);
    hf_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* event envelopes (core/env.h)                                        */

/* The log value as core/ctx.c hf_emit packed it before hf_env_pack_*. */
static void
old_event_value(hf_buf *b, const char *type, hf_slice data, int64_t at)
{
    static const char nil = (char)0xc0;
    msgpack_packer pk;

    msgpack_packer_init(&pk, b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, 3);
    hf_pack_cstr(&pk, "type");
    hf_pack_cstr(&pk, type);
    hf_pack_cstr(&pk, "data");
    if (data.len == 0)
        assert_int_equal(hf_buf_append(b, &nil, 1), 0);
    else
        assert_int_equal(hf_buf_append(b, data.data, data.len), 0);
    hf_pack_cstr(&pk, "at");
    msgpack_pack_int64(&pk, at);
}

/* The live envelope as hf_emit packed it (map of 6), or the backlog's as
 * core/host.c pack_backlog_event did (map of 7, with "c"). */
static void
old_event(hf_buf *b, int has_conn, uint64_t conn, hf_slice from,
          uint64_t seq, hf_slice stored)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, b, hf_buf_mpwrite);
    msgpack_pack_map(&pk, has_conn ? 7 : 6);
    hf_pack_cstr(&pk, "op");
    msgpack_pack_uint64(&pk, HF_OUT_EVENT);
    if (has_conn) {
        hf_pack_cstr(&pk, "c");
        msgpack_pack_uint64(&pk, conn);
    }
    hf_pack_cstr(&pk, "from");
    hf_pack_str(&pk, from.data, from.len);
    hf_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    pk.callback(pk.data, (const char *)stored.data + 1, stored.len - 1);
}

static int
sbuf_write(void *data, const char *p, size_t n)
{
    return msgpack_sbuffer_write(data, p, n);
}

/* hf_env_pack_event writes exactly want's bytes, onto an hf_buf (viabuf)
 * or a msgpack_sbuffer. */
static void
assert_event_packs(int viabuf, int has_conn, uint64_t conn, hf_slice from,
                   uint64_t seq, hf_slice val, const hf_buf *want)
{
    hf_buf b = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    if (viabuf)
        msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    else
        msgpack_packer_init(&pk, &sb, sbuf_write);
    assert_int_equal(hf_env_pack_event(&pk, has_conn, conn, from, seq, val),
                     0);
    assert_int_equal(viabuf ? b.len : sb.size, want->len);
    assert_memory_equal(viabuf ? b.data : sb.data, want->data, want->len);
    msgpack_sbuffer_destroy(&sb);
    hf_buf_free(&b);
}

static void
test_event_envelopes_are_the_bytes_ctx_and_host_packed(void **state)
{
    static const char longaddr[] =
        "room/a-room-name-long-enough-to-need-a-str8-header";
    const char *types[] = {"msg", "a-type-of-exactly-thirty-two-by",
                           "a-type-with-thirty-three-bytes-xx"};
    const char *datas[] = {NULL, "{\"text\":\"hi\"}", "[1,2,3]", "\"\"",
                           "-1.5"};
    const int64_t ats[] = {0, 1, -1, 127, 128, 65536, -40, 1700000000123LL,
                           INT64_MIN, INT64_MAX};
    const uint64_t seqs[] = {1, 127, 128, 255, 256, 65535, 65536,
                             UINT64_MAX};
    const hf_slice froms[] = {sl("counter/c1"),
                              {longaddr, sizeof longaddr - 1}};
    (void)state;

    for (size_t t = 0; t < 3; t++)
        for (size_t d = 0; d < 5; d++)
            for (size_t i = 0; i < sizeof ats / sizeof ats[0]; i++) {
                hf_buf data = {0}, want = {0}, got = {0};
                msgpack_packer pk;
                hf_slice val;

                if (datas[d] != NULL)
                    mp_append(&data, datas[d]);
                old_event_value(&want, types[t],
                                (hf_slice){data.data, data.len}, ats[i]);
                msgpack_packer_init(&pk, &got, hf_buf_mpwrite);
                assert_int_equal(
                    hf_env_pack_event_value(
                        &pk, (hf_slice){types[t], strlen(types[t])},
                        (hf_slice){data.data, data.len}, ats[i]),
                    0);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, want.len);
                val = (hf_slice){want.data, want.len};
                assert_true(hf_env_event_value_ok(val));

                for (size_t f = 0; f < 2; f++)
                    for (size_t q = 0; q < sizeof seqs / sizeof seqs[0];
                         q++)
                        for (int c = 0; c < 2; c++) {
                            uint64_t conn = c ? 1ULL << 40 | q : 0;
                            hf_buf w = {0};

                            old_event(&w, c, conn, froms[f], seqs[q], val);
                            /* In place into an hf_buf, and through a
                             * packer that is not one. */
                            for (int viabuf = 0; viabuf < 2; viabuf++)
                                assert_event_packs(viabuf, c, conn, froms[f],
                                                   seqs[q], val, &w);
                            hf_buf_free(&w);
                        }
                hf_buf_free(&data);
                hf_buf_free(&want);
                hf_buf_free(&got);
            }
}

static void
test_event_envelope_needs_a_stored_event_value(void **state)
{
    hf_buf out = {0};
    msgpack_packer pk;
    (void)state;

    msgpack_packer_init(&pk, &out, hf_buf_mpwrite);
    assert_false(hf_env_event_value_ok((hf_slice){NULL, 0}));
    assert_false(hf_env_event_value_ok(sl("\x82\xa1x\x01\xa1y\x02")));
    assert_int_equal(hf_env_pack_event(&pk, 0, 0, sl("c/x"), 1, sl("\x90")),
                     HF_EBADREQ);
    assert_int_equal(hf_env_pack_event(&pk, 0, 0, sl("c/x"), 1,
                                       (hf_slice){NULL, 0}),
                     HF_EBADREQ);
    assert_int_equal(out.len, 0);
    hf_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* hf_wire_mp_check                                                    */

static void
test_mp_check_accepts_every_type_and_rejects_every_prefix(void **state)
{
    static const struct {
        const char *what;
        const char *b;
        size_t n;
    } cases[] = {
#define C(what, lit) {what, lit, sizeof(lit) - 1}
        C("positive fixint", "\x05"),
        C("negative fixint", "\xe0"),
        C("nil", "\xc0"),
        C("false", "\xc2"),
        C("true", "\xc3"),
        C("uint8", "\xcc\xff"),
        C("uint16", "\xcd\xff\xff"),
        C("uint32", "\xce\xff\xff\xff\xff"),
        C("uint64", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
        C("int8", "\xd0\x80"),
        C("int16", "\xd1\x80\x00"),
        C("int32", "\xd2\x80\x00\x00\x00"),
        C("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
        C("float32", "\xca\x3f\x80\x00\x00"),
        C("float64", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        C("fixstr", "\xa3"
                    "abc"),
        C("str8", "\xd9\x03"
                  "abc"),
        C("str16", "\xda\x00\x03"
                   "abc"),
        C("str32", "\xdb\x00\x00\x00\x03"
                   "abc"),
        C("bin8", "\xc4\x02"
                  "ab"),
        C("bin16", "\xc5\x00\x02"
                   "ab"),
        C("bin32", "\xc6\x00\x00\x00\x02"
                   "ab"),
        C("fixext1", "\xd4\x01"
                     "a"),
        C("fixext2", "\xd5\x01"
                     "ab"),
        C("fixext4", "\xd6\x01"
                     "abcd"),
        C("fixext8", "\xd7\x01"
                     "abcdefgh"),
        C("fixext16", "\xd8\x01"
                      "abcdefghijklmnop"),
        C("ext8", "\xc7\x02\x01"
                  "ab"),
        C("ext16", "\xc8\x00\x02\x01"
                   "ab"),
        C("ext32", "\xc9\x00\x00\x00\x02\x01"
                   "ab"),
        C("fixarray", "\x92\x01\xa1x"),
        C("array16", "\xdc\x00\x02\x01\x02"),
        C("array32", "\xdd\x00\x00\x00\x02\x01\x02"),
        C("fixmap", "\x81\xa1k\x91\xc0"),
        C("map16", "\xde\x00\x01\x01\x02"),
        C("map32", "\xdf\x00\x00\x00\x01\x01\x02"),
#undef C
    };
    char buf[64];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].n;
        assert_int_equal(hf_wire_mp_check(cases[i].b, n, 4), n);
        /* trailing bytes are not part of the object */
        memcpy(buf, cases[i].b, n);
        buf[n] = '\x07';
        assert_int_equal(hf_wire_mp_check(buf, n + 1, 4), n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(hf_wire_mp_check(cases[i].b, k, 4), 0);
    }
    /* empty containers */
    assert_int_equal(hf_wire_mp_check("\x90", 1, 4), 1);
    assert_int_equal(hf_wire_mp_check("\x80", 1, 4), 1);
    assert_int_equal(hf_wire_mp_check("\xdd\x00\x00\x00\x00", 5, 4), 5);
}

static void
test_mp_check_rejects_malformed(void **state)
{
    /* the never-used type byte */
    assert_int_equal(hf_wire_mp_check("\xc1", 1, 4), 0);
    assert_int_equal(hf_wire_mp_check("\x91\xc1", 2, 4), 0);
    /* counts the bytes left could not hold */
    assert_int_equal(hf_wire_mp_check("\x93\x01\x02", 3, 4), 0);
    assert_int_equal(hf_wire_mp_check("\x82\x01\x02\x03", 4, 4), 0);
    assert_int_equal(hf_wire_mp_check("\xdf\xff\xff\xff\xff\x01\x01", 7, 4), 0);
    /* a length past the end */
    assert_int_equal(hf_wire_mp_check("\xdb\xff\xff\xff\xff"
                                      "ab",
                                      7, 4),
                     0);
    assert_int_equal(hf_wire_mp_check("\xc9\xff\xff\xff\xff\x01", 6, 4), 0);
    assert_int_equal(hf_wire_mp_check("", 0, 4), 0);
    assert_int_equal(hf_wire_mp_check(NULL, 0, 4), 0);
}

static void
test_mp_check_bounds_depth(void **state)
{
    char deep[200];

    assert_int_equal(hf_wire_mp_check("\x91\x91\x01", 3, 2), 3);
    assert_int_equal(hf_wire_mp_check("\x91\x91\x01", 3, 1), 0);
    assert_int_equal(hf_wire_mp_check("\x91\x90", 2, 1), 0); /* empty counts */
    assert_int_equal(hf_wire_mp_check("\x01", 1, 0), 1);
    assert_int_equal(hf_wire_mp_check("\x90", 1, 0), 0);
    /* deeper than the built-in stack: a large max_depth still works */
    memset(deep, '\x91', sizeof deep - 1);
    deep[sizeof deep - 1] = '\x01';
    assert_int_equal(hf_wire_mp_check(deep, sizeof deep, 1000), sizeof deep);
    assert_int_equal(hf_wire_mp_check(deep, sizeof deep, 199), sizeof deep);
    assert_int_equal(hf_wire_mp_check(deep, sizeof deep, 198), 0);
}

/* ------------------------------------------------------------------ */
/* fuzz-ish                                                            */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Everything a decoded frame promises: bounded entries, slices inside
 * the store, values that are well-formed msgpack, encodable ids. */
static void
check_frame(const hf_wire_frame *f, size_t max_msgs, hf_buf *out)
{
    static const size_t slots[] = {
        offsetof(hf_wire_msg, id),     offsetof(hf_wire_msg, to),
        offsetof(hf_wire_msg, method), offsetof(hf_wire_msg, type),
        offsetof(hf_wire_msg, args),   offsetof(hf_wire_msg, key),
        offsetof(hf_wire_msg, token),  offsetof(hf_wire_msg, epoch)};

    assert_true(f->n <= max_msgs + 1);
    for (size_t i = 0; i < f->n; i++) {
        const hf_wire_msg *m = &f->msgs[i];
        assert_true(m->op >= 0 && m->op <= HF_W_AUTH);
        if (m->err != 0)
            assert_non_null(m->errmsg);
        else
            assert_true(m->op != 0);
        for (size_t j = 0; j < sizeof slots / sizeof slots[0]; j++) {
            const hf_slice *s = (const hf_slice *)((const char *)m + slots[j]);
            if (s->data == NULL) {
                assert_int_equal(s->len, 0);
                continue;
            }
            assert_true((const char *)s->data >= f->store.data);
            assert_true((const char *)s->data + s->len <=
                        f->store.data + f->store.len);
        }
        if (m->args.len > 0)
            assert_int_equal(hf_wire_mp_check(m->args.data, m->args.len, 32),
                             m->args.len);
        out->len = 0;
        hf_wire_reply_err(out, HF_WIRE_JSON, m->id, m->err, m->errmsg,
                          m->errmsg ? strlen(m->errmsg) : 0);
        hf_wire_pong(out, HF_WIRE_MSGPACK, m->id);
    }
}

#define FUZZ_N 20000

static void
test_fuzz_random_bytes_never_crash(void **state)
{
    hf_wire_frame f = {0};
    hf_buf out = {0};
    unsigned char b[96];

    rng = 12345;
    for (int i = 0; i < FUZZ_N; i++) {
        size_t n = rnd() % sizeof b;
        for (size_t k = 0; k < n; k++)
            b[k] = (unsigned char)rnd();
        for (int fmt = HF_WIRE_JSON; fmt <= HF_WIRE_MSGPACK; fmt++) {
            assert_int_equal(hf_wire_decode(&f, fmt, b, n, 8), 0);
            check_frame(&f, 8, &out);
        }
        assert_true(hf_wire_mp_check(b, n, 32) <= n);
    }
    hf_buf_free(&out);
    hf_wire_frame_free(&f);
}

static void
mutate(unsigned char *b, size_t *n, size_t cap, const char *alphabet,
       size_t nalpha)
{
    int ops = 1 + (int)(rnd() % 4);

    for (int i = 0; i<ops && * n> 0; i++) {
        size_t at = rnd() % *n;
        switch (rnd() % 5) {
        case 0: /* random byte */
            b[at] = (unsigned char)rnd();
            break;
        case 1: /* a byte that matters to the format */
            b[at] = (unsigned char)alphabet[rnd() % nalpha];
            break;
        case 2: /* truncate */
            *n = at;
            break;
        case 3: /* delete one byte */
            memmove(b + at, b + at + 1, *n - at - 1);
            (*n)--;
            break;
        default: /* duplicate a run */
        {
            size_t len = 1 + rnd() % 8;
            if (at + len > *n)
                len = *n - at;
            if (*n + len <= cap) {
                memmove(b + at + len, b + at, *n - at);
                *n += len;
            }
        }
        }
    }
}

static void
test_fuzz_mutated_frames_never_crash(void **state)
{
    static const char *seed_json =
        "{\"op\":\"call\",\"id\":7,\"to\":\"device/ps5-03\",\"method\":"
        "\"reserve\",\"args\":{\"slot\":\"18:00\",\"a\":[1,-2,3.5,null,"
        "true,{\"x\":\"\\u00e9\\n\"}]},\"key\":\"idem-1\"}\n"
        "{\"op\":\"sub\",\"id\":\"s\",\"to\":\"store/g\",\"since\":120,"
        "\"epoch\":\"e\",\"presence\":{\"name\":\"Kim\"}}\r\n\n"
        "{\"op\":\"signal\",\"to\":\"room/lobby\",\"type\":\"typing\","
        "\"data\":{}}\n{\"op\":\"ping\",\"id\":10}\n"
        "{\"op\":\"auth\",\"id\":1,\"token\":\"a.b.c\"}";
    static const char json_alpha[] = "{}[]\":,\\ \n\r0123456789-.eEtrufalsn"
                                     "\xc3\xa9\xff\x80";
    static const char mp_alpha[] = "\x00\x7f\x80\x8f\x90\x9f\xa0\xbf\xc0\xc1"
                                   "\xc4\xc7\xca\xcb\xcf\xd3\xd4\xd8\xd9\xdb"
                                   "\xdc\xdd\xde\xdf\xe0\xff";
    hf_wire_frame f = {0};
    hf_buf out = {0}, mp = {0};
    unsigned char b[1024];
    size_t n;
    const char *line = seed_json;

    /* the msgpack seed: the same messages, concatenated */
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 1)
            assert_int_equal(hf_json_to_mp(line, len, &mp), 0);
        line += len + (nl != NULL);
    }
    assert_int_equal(hf_wire_decode(&f, HF_WIRE_MSGPACK, mp.data, mp.len, 8),
                     0);
    assert_int_equal(f.n, 5);
    assert_int_equal(decode_json(&f, seed_json), 0);
    assert_int_equal(f.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(f.msgs[i].err, 0);

    rng = 67890;
    for (int i = 0; i < FUZZ_N; i++) {
        int fmt = i & 1 ? HF_WIRE_MSGPACK : HF_WIRE_JSON;
        n = fmt ? mp.len : strlen(seed_json);
        memcpy(b, fmt ? (const void *)mp.data : (const void *)seed_json, n);
        if (fmt)
            mutate(b, &n, sizeof b, mp_alpha, sizeof mp_alpha - 1);
        else
            mutate(b, &n, sizeof b, json_alpha, sizeof json_alpha - 1);
        assert_int_equal(hf_wire_decode(&f, fmt, b, n, 4), 0);
        check_frame(&f, 4, &out);
    }
    /* No time limit here: a decoder gone quadratic shows in the fuzz
     * targets' exec rates and in the suite's own timeout; a machine busy
     * with other work must not fail a correctness test. */
    hf_buf_free(&mp);
    hf_buf_free(&out);
    hf_wire_frame_free(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_call_decodes_all_fields),
        cmocka_unit_test(test_json_sub_decodes_all_fields),
        cmocka_unit_test(test_json_unsub_decodes_all_fields),
        cmocka_unit_test(test_json_signal_decodes_all_fields),
        cmocka_unit_test(test_json_ping_decodes),
        cmocka_unit_test(test_json_auth_decodes),
        cmocka_unit_test(test_json_null_fields_are_absent),
        cmocka_unit_test(test_fields_the_op_does_not_use_are_ignored),
        cmocka_unit_test(test_json_frame_with_several_messages_and_blank_lines),
        cmocka_unit_test(test_json_empty_frame_has_no_messages),
        cmocka_unit_test(test_json_bad_line_does_not_affect_others),
        cmocka_unit_test(test_json_invalid_json_is_error),
        cmocka_unit_test(test_json_invalid_utf8_inside_string_is_error),
        cmocka_unit_test(test_json_invalid_utf8_outside_string_is_error),
        cmocka_unit_test(test_json_valid_utf8_is_accepted),
        cmocka_unit_test(test_json_nul_byte_is_error),
        cmocka_unit_test(
            test_nul_in_string_field_is_error_but_allowed_in_values),
        cmocka_unit_test(test_non_object_message_is_error),
        cmocka_unit_test(test_missing_fields_name_the_field),
        cmocka_unit_test(test_mistyped_fields_name_the_field),
        cmocka_unit_test(test_bad_field_keeps_op_and_id),
        cmocka_unit_test(test_unknown_op_echoes_id),
        cmocka_unit_test(test_msgpack_frame_with_three_maps),
        cmocka_unit_test(test_msgpack_signed_formats_and_duplicates),
        cmocka_unit_test(test_msgpack_string_field_as_bin_is_mistyped),
        cmocka_unit_test(test_msgpack_truncated_reports_one_error_and_stops),
        cmocka_unit_test(
            test_msgpack_huge_array_header_is_rejected_without_allocating),
        cmocka_unit_test(test_nesting_deeper_than_the_limit_is_rejected),
        cmocka_unit_test(test_max_msgs_exceeded_gives_too_large_entry),
        cmocka_unit_test(test_slices_stay_valid_while_the_store_grows),
        cmocka_unit_test(test_ids_round_trip_through_json_replies),
        cmocka_unit_test(test_ids_round_trip_through_msgpack_replies),
        cmocka_unit_test(test_hello_json_text),
        cmocka_unit_test(test_reply_ok_json_text),
        cmocka_unit_test(test_reply_err_json_text),
        cmocka_unit_test(test_event_json_text),
        cmocka_unit_test(test_signal_json_text),
        cmocka_unit_test(test_presence_json_text),
        cmocka_unit_test(test_pong_json_text),
        cmocka_unit_test(test_http_bodies_json_text),
        cmocka_unit_test(
            test_json_messages_in_one_buffer_are_separated_by_newline),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_numbers_are_exact),
        cmocka_unit_test(test_json_doubles_read_back_identical),
        cmocka_unit_test(test_json_bin_ext_and_non_string_keys),
        cmocka_unit_test(test_nested_container_keys_stop_growing),
        cmocka_unit_test(test_mp_to_json_keeps_empty_strings),
        cmocka_unit_test(test_mp_to_json_writes_nan_as_null),
        cmocka_unit_test(test_msgpack_encoders_decode_back),
        cmocka_unit_test(test_malformed_raw_id_is_encoded_as_null),
        cmocka_unit_test(
            test_mp_check_accepts_every_type_and_rejects_every_prefix),
        cmocka_unit_test(test_mp_check_rejects_malformed),
        cmocka_unit_test(test_mp_check_bounds_depth),
        cmocka_unit_test(test_event_envelopes_are_the_bytes_ctx_and_host_packed),
        cmocka_unit_test(test_event_envelope_needs_a_stored_event_value),
        cmocka_unit_test(test_fuzz_random_bytes_never_crash),
        cmocka_unit_test(test_fuzz_mutated_frames_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
