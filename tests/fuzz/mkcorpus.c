/*
 * mkcorpus.c - writes the seed inputs of tests/fuzz/corpus/<target>/.
 *
 *   fuzz_mkcorpus tests/fuzz/corpus
 *
 * Seeds are valid inputs of every shape a target reads (each op, both
 * formats, every envelope, tokens minted by hf_auth_mint...) and the edge
 * cases around them, so the fuzzer starts where the code is and not at
 * random bytes. Each is written under a descriptive name, replacing a file
 * of that name; other files (the regressions, crash-*) are left alone.
 * The committed corpus is this program's output plus those regressions;
 * run it again after changing a seed here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actors/kinds.h"
#include "core/actor.h"
#include "client/driver.h"
#include "core/env.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mpjson.h"
#include "core/storage.h"
#include "storage/lmdb.h"
#include "transport/auth.h"

#define SECRET "fuzz-secret" /* as in the targets */
#define EXP    4102444800    /* 2100-01-01: after the targets' NOW_S */

static const char *root;
static int failed;

static void
put(const char *target, const char *name, const void *p, size_t n)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        failed = 1;
        return;
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n) {
        perror(path);
        failed = 1;
    }
    if (f != NULL)
        fclose(f);
}

static void
puts_(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s));
}

/* The msgpack of a JSON text, appended to b; aborts on bad JSON (a typo
 * here, not an input). */
static void
mp(hf_buf *b, const char *json)
{
    if (hf_json_to_mp(json, strlen(json), b) != 0) {
        fprintf(stderr, "mkcorpus: bad JSON seed: %s\n", json);
        exit(1);
    }
}

static char *
mint(const char *sub, const char *role, int64_t exp, const char *const *acl)
{
    char *t = hf_auth_mint(SECRET, sub, role, exp, acl);
    if (t == NULL) {
        fprintf(stderr, "mkcorpus: cannot mint a token\n");
        exit(1);
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* wire: byte 0 = format (bit 0: msgpack) | limit (bits 1-2), then a frame */

/* Client messages, one per line of a JSON frame. */
static const struct {
    const char *name, *json;
} msgs[] = {
    {"call", "{\"op\":\"call\",\"id\":1,\"to\":\"counter/a\","
             "\"method\":\"incr\",\"args\":{\"by\":2},\"key\":\"k-1\"}"},
    {"call-noargs", "{\"op\":\"call\",\"id\":\"x\",\"to\":\"store/s1\","
                    "\"method\":\"list\"}"},
    {"sub", "{\"op\":\"sub\",\"id\":2,\"to\":\"room/r1\",\"since\":3,"
            "\"epoch\":\"0123456789abcdef\",\"presence\":{\"name\":\"ann\"}}"},
    {"unsub", "{\"op\":\"unsub\",\"id\":3,\"to\":\"room/r1\"}"},
    {"signal", "{\"op\":\"signal\",\"to\":\"room/r1\",\"type\":\"typing\","
               "\"data\":[1,\"two\",3.5,null,true,false]}"},
    {"ping", "{\"op\":\"ping\",\"id\":-7}"},
    {"nulls", "{\"op\":\"call\",\"id\":null,\"to\":\"counter/a\","
              "\"method\":\"get\",\"key\":null,\"args\":null}"},
    {"missing-to", "{\"op\":\"call\",\"id\":4,\"method\":\"get\"}"},
    {"mistyped", "{\"op\":\"sub\",\"id\":5,\"to\":7,\"since\":-1}"},
    {"unknown-op", "{\"op\":\"dance\",\"id\":\"u\"}"},
    {"op-not-string", "{\"op\":1,\"id\":[1]}"},
    {"float-id", "{\"op\":\"ping\",\"id\":1.5}"},
    {"nul-in-to", "{\"op\":\"call\",\"to\":\"counter/a\\u0000b\","
                  "\"method\":\"get\",\"args\":\"v\\u0000\"}"},
    {"not-object", "[\"op\",\"ping\"]"},
    {"big-ints", "{\"op\":\"call\",\"id\":9223372036854775807,\"to\":"
                 "\"counter/a\",\"method\":\"incr\",\"args\":{\"by\":"
                 "-9223372036854775808,\"f\":1e308,\"g\":-0.0,\"h\":5e-324}}"},
    {"strings", "{\"op\":\"signal\",\"to\":\"room/r\",\"type\":\"t\","
                "\"data\":{\"esc\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\","
                "\"uni\":\"\\u00e9\\u4e2d\\ud83d\\ude00\",\"\":\"\"}}"},
    {"long-id", "{\"op\":\"ping\",\"id\":\"0123456789012345678901234567890"
                "12345678901234567890123456789012345678901234567890\"}"},
    {"bad-address", "{\"op\":\"call\",\"id\":1,\"to\":\"Counter/../a\","
                    "\"method\":\"get\"}"},
};

static void
deep(char *out, size_t cap, int depth)
{
    size_t n = 0;

    n += (size_t)snprintf(out + n, cap - n,
                          "{\"op\":\"call\",\"id\":1,\"to\":\"counter/a\","
                          "\"method\":\"m\",\"args\":");
    for (int i = 0; i < depth; i++)
        out[n++] = '[';
    for (int i = 0; i < depth; i++)
        out[n++] = ']';
    out[n++] = '}';
    out[n] = '\0';
}

static void
wire(void)
{
    char name[128], text[4096];
    char *tok = mint("ann", "user", EXP, NULL);
    hf_buf b = {0};

    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        /* JSON frame */
        b.len = 0;
        hf_buf_append(&b, "\x00", 1);
        hf_buf_append(&b, msgs[i].json, strlen(msgs[i].json));
        snprintf(name, sizeof(name), "json-%s", msgs[i].name);
        put("wire", name, b.data, b.len);
        /* msgpack frame */
        b.len = 0;
        hf_buf_append(&b, "\x01", 1);
        mp(&b, msgs[i].json);
        snprintf(name, sizeof(name), "mp-%s", msgs[i].name);
        put("wire", name, b.data, b.len);
    }

    snprintf(text, sizeof(text), "%c{\"op\":\"auth\",\"id\":1,\"token\":\"%s\"}",
             0, tok);
    put("wire", "json-auth", text, strlen(text + 1) + 1);
    b.len = 0;
    hf_buf_append(&b, "\x01", 1);
    mp(&b, text + 1);
    put("wire", "mp-auth", b.data, b.len);

    /* several messages in one frame, blank and CR-ended lines between */
    b.len = 0;
    hf_buf_append(&b, "\x00", 1);
    for (size_t i = 0; i < 6; i++) {
        hf_buf_append(&b, msgs[i].json, strlen(msgs[i].json));
        hf_buf_append(&b, i % 2 ? "\r\n\n  \t\n" : "\n", i % 2 ? 7 : 1);
    }
    put("wire", "json-frame-of-six", b.data, b.len);
    b.data[0] = 2 | 0; /* limit 1: the rest is one "too many" entry */
    put("wire", "json-frame-limit-1", b.data, b.len);
    b.len = 0;
    hf_buf_append(&b, "\x03", 1); /* msgpack, limit 1 */
    for (size_t i = 0; i < 6; i++)
        mp(&b, msgs[i].json);
    put("wire", "mp-frame-limit-1", b.data, b.len);
    b.data[0] = 1;
    put("wire", "mp-frame-of-six", b.data, b.len);

    /* nesting: args 31 deep is the limit (the message map is one more) */
    for (int d = 31; d <= 32; d++) {
        deep(text + 1, sizeof(text) - 1, d);
        text[0] = 0;
        snprintf(name, sizeof(name), "json-args-depth-%d", d);
        put("wire", name, text, strlen(text + 1) + 1);
        b.len = 0;
        hf_buf_append(&b, "\x01", 1);
        mp(&b, text + 1);
        snprintf(name, sizeof(name), "mp-args-depth-%d", d);
        put("wire", name, b.data, b.len);
    }

    /* msgpack shapes JSON cannot make */
    {
        static const unsigned char odd[] = {
            0x01, 0x86,                                /* map of 6 */
            0xd9, 0x02, 'o', 'p', 0xd9, 0x04, 'c', 'a', 'l', 'l', /* str8 */
            0xa2, 'i', 'd', 0xd1, 0xff, 0x00,          /* int16 -256 */
            0xa2, 't', 'o', 0xda, 0x00, 0x09, 'c', 'o', 'u', 'n', 't', 'e',
            'r', '/', 'a',                             /* str16 */
            0xa6, 'm', 'e', 't', 'h', 'o', 'd', 0xa3, 'g', 'e', 't',
            0xa4, 'a', 'r', 'g', 's', 0x93, 0xca, 0x3f, 0x80, 0x00, 0x00,
            0xc4, 0x02, 0x00, 0x01, 0xd4, 0x05, 0x2a,  /* f32, bin, fixext */
            0xa2, 'o', 'p', 0xa4, 'c', 'a', 'l', 'l'}; /* op twice */
        static const unsigned char bin_to[] = {
            0x01, 0x82, 0xa2, 'o', 'p', 0xa5, 'u', 'n', 's', 'u', 'b',
            0xa2, 't', 'o', 0xc4, 0x03, 'a', '/', 'b'};
        static const unsigned char truncated[] = {
            0x01, 0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g', 0x82, 0xa2,
            'o', 'p'};
        static const unsigned char huge[] = {0x01, 0xdd, 0xff, 0xff, 0xff,
                                             0xff, 0xdf, 0x7f, 0xff, 0xff,
                                             0xff};
        static const unsigned char c1[] = {0x01, 0x81, 0xa2, 'o', 'p', 0xc1};
        put("wire", "mp-odd-formats", odd, sizeof(odd));
        put("wire", "mp-bin-field", bin_to, sizeof(bin_to));
        put("wire", "mp-truncated", truncated, sizeof(truncated));
        put("wire", "mp-huge-headers", huge, sizeof(huge));
        put("wire", "mp-never-used-byte", c1, sizeof(c1));
    }
    puts_("wire", "json-bad-utf8", "\x00{\"op\":\"ping\",\"id\":\"\xc3\x28\"}");
    put("wire", "json-nul-byte", "\x00{\"op\":\0\"ping\"}", 15);
    puts_("wire", "json-invalid", "\x00{\"op\":\"ping\",}\n{\"op\"\n]");
    hf_buf_free(&b);
    free(tok);
}

/* ------------------------------------------------------------------ */
/* env: a batch of envelopes */

static void
env(void)
{
    hf_buf b = {0}, all = {0}, args = {0};
    msgpack_packer pk;
    hf_env e;
    static const char *const names[] = {"", "call", "sub", "unsub", "signal",
                                        "history"};

    mp(&args, "{\"by\":2,\"list\":[1,-2,3.5,\"x\",null,true],\"m\":{}}");
    for (int op = HF_OP_CALL; op <= HF_OP_HISTORY; op++) {
        char name[64];
        e = (hf_env){.op = op, .id = 1000 + (uint64_t)op, .conn = 77,
                     .has_conn = 1, .to = {"counter/a", 9},
                     .sub = {"ann", 3}, .role = 1};
        if (op == HF_OP_CALL) {
            e.method = (hf_slice){"incr", 4};
            e.key = (hf_slice){"idem-1", 6};
        }
        if (op == HF_OP_SIGNAL)
            e.method = (hf_slice){"typing", 6};
        if (op == HF_OP_SUB || op == HF_OP_HISTORY) {
            e.since = op == HF_OP_SUB ? 5 : 0;
            e.has_since = 1;
            e.epoch = (hf_slice){"0123456789abcdef", 16};
        }
        b.len = 0;
        msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
        hf_env_pack_request(&pk, &e,
                            op == HF_OP_HISTORY ? (hf_slice){"\x0a", 1}
                            : op == HF_OP_UNSUB ? (hf_slice){0}
                                                : (hf_slice){args.data,
                                                             args.len});
        snprintf(name, sizeof(name), "req-%s", names[op]);
        put("env", name, b.data, b.len);
        hf_buf_append(&all, b.data, b.len);
    }

    b.len = 0;
    msgpack_packer_init(&pk, &b, hf_buf_mpwrite);
    hf_env_pack_reply_ok(&pk, 77, 1001, (hf_slice){args.data, args.len});
    put("env", "out-reply-ok", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    b.len = 0;
    hf_env_pack_reply_err(&pk, 77, 1002, HF_ECONFLICT, "slot taken", 10);
    put("env", "out-reply-err", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    b.len = 0;
    hf_env_pack_signal(&pk, (hf_slice){"room/r", 6}, (hf_slice){"typing", 6},
                       (hf_slice){"ann", 3}, (hf_slice){args.data, args.len});
    put("env", "out-signal", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    b.len = 0;
    hf_env_pack_presence(&pk, (hf_slice){"room/r", 6}, 1,
                         (hf_slice){"\x81\xa4name\xa3" "ann", 10});
    put("env", "out-presence", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    /* an event as the host writes it (backlog form: with "c") */
    b.len = 0;
    mp(&b, "{\"op\":17,\"c\":77,\"from\":\"room/r\",\"seq\":12,\"type\":\"msg\","
           "\"data\":{\"text\":\"hi\"},\"at\":1700000000000}");
    put("env", "out-event", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    b.len = 0;
    /* {"a\0": "\0", "": []}: JSON cannot say it (jansson refuses NUL in
     * a key), so the bytes are written out */
    hf_env_pack_signal(&pk, (hf_slice){"room/r", 6}, (hf_slice){"t", 1},
                       (hf_slice){"", 0},
                       (hf_slice){"\x82\xa2" "a\0\xa1\0\xa0\x90", 8});
    put("env", "out-signal-nul-in-key", b.data, b.len);
    hf_buf_append(&all, b.data, b.len);
    put("env", "batch-of-all", all.data, all.len);

    /* invalid envelopes and malformed bytes */
    b.len = 0;
    mp(&b, "{\"op\":16,\"id\":-1,\"ok\":\"yes\",\"res\":1}");
    put("env", "bad-field-types", b.data, b.len);
    b.len = 0;
    mp(&b, "{\"id\":3,\"to\":\"counter/a\"}");
    mp(&b, "[1,2,3]");
    mp(&b, "{\"op\":300}");
    mp(&b, "{\"op\":1,\"to\":null,\"m\":null,\"since\":-5,\"r\":65536}");
    put("env", "no-op-not-map-range", b.data, b.len);
    put("env", "truncated", all.data, all.len / 2);
    {
        static const unsigned char odd[] = {
            0x84, 0xa2, 'o', 'p', 0xd0, 0x01, /* int8 op */
            0x01, 0x02,                       /* integer key */
            0xa1, 'a', 0xc7, 0x02, 0x05, 'x', 'y', /* ext8 value */
            0xa2, 't', 'o', 0xd9, 0x03, 'a', '/', 'b'};
        static const unsigned char huge[] = {0x81, 0xa1, 'a', 0xdd, 0xff,
                                             0xff, 0xff, 0xff};
        put("env", "odd-formats", odd, sizeof(odd));
        put("env", "huge-array", huge, sizeof(huge));
    }
    {
        /* a value 31 deep, and one 32 deep (msgpack-c's limit) */
        char text[256];
        for (int d = 30; d <= 31; d++) {
            char name[64];
            size_t n = (size_t)snprintf(text, sizeof(text),
                                        "{\"op\":1,\"to\":\"counter/a\","
                                        "\"m\":\"x\",\"a\":");
            for (int i = 0; i < d; i++)
                text[n++] = '[';
            for (int i = 0; i < d; i++)
                text[n++] = ']';
            text[n++] = '}';
            text[n] = '\0';
            b.len = 0;
            mp(&b, text);
            snprintf(name, sizeof(name), "value-depth-%d", d + 1);
            put("env", name, b.data, b.len);
        }
    }
    hf_buf_free(&b);
    hf_buf_free(&all);
    hf_buf_free(&args);
}

/* ------------------------------------------------------------------ */
/* json: JSON text */

static void
json(void)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        {"object", "{\"a\":[1,2.5,\"x\",null,true],\"b\":{\"c\":false}}"},
        {"scalars", "[0,-0,1e308,-1e-308,5e-324,9223372036854775807,"
                    "-9223372036854775808,0.1,1E+2]"},
        {"strings", "[\"\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u0000\","
                    "\"\\u00e9\\u4e2d\\ud83d\\ude00\",\"\xc3\xa9\"]"},
        {"duplicate-keys", "{\"a\":1,\"b\":2,\"a\":3}"},
        {"bare-string", "\"just a string\""},
        {"bare-number", "  42  "},
        {"empties", "[{},[],\"\",{\"\":[]}]"},
        {"too-big-int", "18446744073709551616"},
        {"lone-surrogate", "\"\\ud800\""},
        {"nul-in-key", "{\"a\\u0000b\":1}"},
        {"trailing", "{} {}"},
    };
    char text[2100];

    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        puts_("json", seeds[i].name, seeds[i].text);
    for (int d = 32; d <= 33; d++) {
        char name[64];
        memset(text, '[', (size_t)d);
        memset(text + d, ']', (size_t)d);
        text[2 * d] = '\0';
        snprintf(name, sizeof(name), "depth-%d", d);
        puts_("json", name, text);
    }
    memset(text, '[', 2049);
    text[2049] = '\0';
    puts_("json", "depth-2049-open", text);
}

/* ------------------------------------------------------------------ */
/* auth: byte 0 = mode (0 token, 1 signed, 2 forged, 3 acl match) */

static void
auth_mode0(const char *name, const char *tok)
{
    char buf[HF_AUTH_TOKEN_MAX + 2];
    size_t n = strlen(tok);

    buf[0] = 0;
    memcpy(buf + 1, tok, n);
    put("auth", name, buf, n + 1);
}

static void
auth(void)
{
    static const char *const acl[] = {"store/gangnam-*", "room/*",
                                      "user/ann", NULL};
    static const char *const none[] = {NULL};
    static const char *const star[] = {"*", NULL};
    static const struct {
        const char *name, *header, *claims;
    } signed_seeds[] = {
        {"signed-user", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
         "{\"sub\":\"ann\",\"role\":\"user\"}"},
        {"signed-acl", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
         "{\"sub\":\"bob\",\"role\":\"device\",\"exp\":4102444800,"
         "\"nbf\":1600000000,\"acl\":[\"device/d-*\",\"*\",\"\"]}"},
        {"signed-none", "{\"alg\":\"none\"}",
         "{\"sub\":\"ann\",\"role\":\"admin\"}"},
        {"signed-hs512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
         "{\"sub\":\"ann\",\"role\":\"admin\"}"},
        {"signed-exp-string", "{\"alg\":\"HS256\"}",
         "{\"sub\":\"ann\",\"role\":\"user\",\"exp\":\"4102444800\"}"},
        {"signed-expired", "{\"alg\":\"HS256\"}",
         "{\"sub\":\"ann\",\"role\":\"user\",\"exp\":1}"},
        {"signed-actor-role", "{\"alg\":\"HS256\"}",
         "{\"sub\":\"ann\",\"role\":\"actor\"}"},
        {"signed-acl-not-strings", "{\"alg\":\"HS256\"}",
         "{\"sub\":\"ann\",\"role\":\"user\",\"acl\":[1,null]}"},
        {"signed-not-json", "{\"alg\":\"HS256\"}", "sub=ann"},
        {"signed-lowercase", "{\"alg\":\"hs256\",\"typ\":\"jwt\"}",
         "{\"sub\":\"ann\",\"role\":\"user\"}"},
        {"signed-typ-not-jwt", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
         "{\"sub\":\"ann\",\"role\":\"user\"}"},
    };
    char buf[1024];
    char *t;

    t = mint("ann", "user", EXP, NULL);
    auth_mode0("token-user", t);
    free(t);
    t = mint("root", "admin", 0, NULL);
    auth_mode0("token-admin-no-exp", t);
    free(t);
    t = mint("ann", "user", EXP, acl);
    auth_mode0("token-acl", t);
    free(t);
    t = mint("dev-1", "device", EXP, none);
    auth_mode0("token-acl-empty", t);
    free(t);
    t = mint("svc", "service", EXP, star);
    auth_mode0("token-acl-star", t);
    free(t);
    t = mint("ann", "user", 1000, NULL);
    auth_mode0("token-expired", t);
    free(t);
    t = mint("ann", NULL, EXP, NULL);
    auth_mode0("token-no-role", t);
    free(t);
    t = hf_auth_mint("another-secret", "ann", "user", EXP, NULL);
    auth_mode0("token-other-secret", t);
    free(t);
    auth_mode0("token-junk", "a.b.c");

    for (size_t i = 0; i < sizeof(signed_seeds) / sizeof(signed_seeds[0]);
         i++) {
        int n = snprintf(buf, sizeof(buf), "%c%s\n%s", 1,
                         signed_seeds[i].header, signed_seeds[i].claims);
        put("auth", signed_seeds[i].name, buf, (size_t)n);
    }
    {
        int n = snprintf(buf, sizeof(buf), "%c%s\n%s", 2,
                         signed_seeds[0].header, signed_seeds[0].claims);
        put("auth", "forged-user", buf, (size_t)n);
    }
    /* mode 3: role bits, pattern, subject, address */
    {
        static const struct {
            const char *name;
            unsigned char role;
            const char *rest;
        } m[] = {
            {"acl-prefix", 1, "store/gangnam-*\nann\nstore/gangnam-1"},
            {"acl-miss", 1, "store/gangnam-*\nann\nstore/gangbuk-1"},
            {"acl-stars", 1, "*a*b*c*\nann\nxxaxxbxxcxx"},
            {"acl-user-other", 1, "*\nann\nuser/bob"},
            {"acl-user-admin", 2, "*\nann\nuser/bob"},
            {"acl-backtrack", 1, "*aaaaaaaab\nx\naaaaaaaaaaaaaaaaaaaaaaaaaaa"},
        };
        for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
            int n = snprintf(buf, sizeof(buf), "%c%c%s", 3, m[i].role,
                             m[i].rest);
            put("auth", m[i].name, buf, (size_t)n);
        }
    }
}

/* ------------------------------------------------------------------ */
/* wbatch: an ops buffer */

static void
wbatch(void)
{
    hf_wbatch wb = {0};
    char key[HF_KEY_MAX];

    memset(key, 'k', sizeof(key));
    hf_wbatch_put(&wb, HF_DB_KV, "counter/a\0n", 11, "\x00\x00\x00\x05", 4);
    hf_wbatch_put(&wb, HF_DB_LOG, "room/r\0\0\0\0\0\0\0\0\x01", 15,
                  "\x83\xa4type\xa1m\xa4" "data\xc0\xa2" "at\x01", 19);
    hf_wbatch_del(&wb, HF_DB_META, "counter/a\0seq", 13);
    hf_wbatch_put(&wb, HF_DB_IDEM, "counter/a\0k1", 12, "", 0);
    hf_wbatch_put(&wb, HF_DB_OUTBOX, key, sizeof(key), "v", 1);
    put("wbatch", "mixed", wb.ops.data, wb.ops.len);
    /* a kind and a database the store must refuse, then a good op */
    {
        static const unsigned char bad[] = {
            9, 0, 1, 0, 0, 0, 0, 0, 'k',                 /* kind 9 */
            1, 42, 1, 0, 1, 0, 0, 0, 'k', 'v',           /* dbi 42 */
            2, 0, 0, 0, 0, 0, 0, 0,                      /* empty key */
            1, 0, 1, 0, 0, 0, 0, 0, 'k'};
        put("wbatch", "bad-kind-dbi-key", bad, sizeof(bad));
    }
    hf_buf_free(&wb.ops);
}

/* ------------------------------------------------------------------ */
/* http: bytes on a connection to a real server (auth on, SECRET) */

/* Appends a client WebSocket frame: masked with a zero key, so the
 * payload stays readable (and mutable) in the seed. */
static void
ws_frame(hf_buf *b, int fin, int opcode, const void *p, size_t n)
{
    unsigned char h[8];
    size_t hl = 0;

    h[hl++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    }
    hf_buf_append(b, h, hl);
    hf_buf_append(b, "\0\0\0\0", 4);
    hf_buf_append(b, p, n);
}

static void
ws_text(hf_buf *b, const char *s)
{
    ws_frame(b, 1, 1, s, strlen(s));
}

/* The upgrade request, for protocol proto, with the token in a header
 * (how = 1), in the query (how = 2) or not at all (0). */
static void
ws_upgrade(hf_buf *b, const char *proto, int how, const char *tok)
{
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/ws%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n%s%s%s\r\n",
                     how == 2 ? "?token=" : "", how == 2 ? tok : "", proto,
                     how == 1 ? "Authorization: Bearer " : "",
                     how == 1 ? tok : "", how == 1 ? "\r\n" : "");
    hf_buf_append(b, req, (size_t)n);
}

/* A request; with a body, as JSON with its Content-Length. */
static void
http_req(const char *name, const char *method, const char *path,
         const char *headers, const char *body)
{
    char req[8192];
    int n;

    if (body == NULL)
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", method,
                     path, headers);
    else
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, headers, strlen(body), body);
    put("http", name, req, (size_t)n);
}

static void
http(void)
{
    char *tok = mint("ann", "user", EXP, NULL);
    char *adm = mint("root", "admin", EXP, NULL);
    static const char *const acl[] = {"counter/*", "room/r1", NULL};
    char *lim = mint("dev-1", "device", EXP, acl);
    char hdr[1024], path[1024];
    hf_buf b = {0};

    snprintf(hdr, sizeof(hdr),
             "Authorization: Bearer %s\r\nConnection: close\r\n", tok);
    http_req("health", "GET", "/healthz", "Connection: close\r\n", NULL);
    http_req("metrics", "GET", "/metrics", "Connection: close\r\n", NULL);
    http_req("call", "POST", "/v1/call/counter/a/incr", hdr, "{\"by\":2}");
    http_req("call-no-body", "POST", "/v1/call/counter/a/get", hdr, NULL);
    http_req("call-empty-body", "POST", "/v1/call/counter/a/get", hdr, "");
    http_req("call-get", "GET", "/v1/call/counter/a/get", hdr, NULL);
    http_req("call-bad-json", "POST", "/v1/call/counter/a/incr", hdr,
             "{\"by\":");
    http_req("call-bad-target", "POST", "/v1/call/counter/a", hdr, "{}");
    http_req("call-bad-kind", "POST", "/v1/call/Counter!/a/b/c", hdr, "{}");
    http_req("call-unknown-kind", "POST", "/v1/call/nosuch/a/get", hdr, "{}");
    http_req("call-store", "POST", "/v1/call/store/s1/register", hdr,
             "{\"name\":\"Ann\",\"party\":2}");
    http_req("call-room", "POST", "/v1/call/room/r1/send", hdr,
             "{\"text\":\"hi\",\"type\":\"text\"}");
    snprintf(hdr, sizeof(hdr),
             "Authorization: Bearer %s\r\nIdempotency-Key: k-1\r\n"
             "Connection: close\r\n",
             tok);
    http_req("call-idem", "POST", "/v1/call/counter/a/incr", hdr,
             "{\"by\":1}");
    snprintf(hdr, sizeof(hdr),
             "Authorization: Bearer %s\r\nConnection: close\r\n", adm);
    http_req("call-admin", "POST", "/v1/call/poll/p1/configure", hdr,
             "{\"question\":\"q\",\"options\":[\"a\",\"b\"]}");
    http_req("call-user-other", "POST", "/v1/call/user/bob/list", hdr, "{}");
    snprintf(hdr, sizeof(hdr),
             "Authorization: Bearer %s\r\nConnection: close\r\n", lim);
    http_req("call-acl-miss", "POST", "/v1/call/room/r2/send", hdr, "{}");
    snprintf(path, sizeof(path), "/v1/call/counter/q/incr?token=%s", tok);
    http_req("call-query-token", "POST", path, "Connection: close\r\n",
             "{\"by\":3}");
    http_req("call-no-token", "POST", "/v1/call/counter/a/incr",
             "Connection: close\r\n", "{}");
    http_req("call-bad-token", "POST", "/v1/call/counter/a/incr",
             "Authorization: Bearer a.b.c\r\nConnection: close\r\n", "{}");
    snprintf(hdr, sizeof(hdr),
             "Authorization: Bearer %s\r\nConnection: close\r\n", tok);
    http_req("events", "GET", "/v1/events/counter/a?after=0&limit=5", hdr,
             NULL);
    http_req("events-bad", "GET", "/v1/events/counter?after=x&limit=-1", hdr,
             NULL);
    http_req("static-index", "GET", "/", "Connection: close\r\n", NULL);
    http_req("static-file", "GET", "/chat/index.html",
             "Connection: close\r\n", NULL);
    http_req("static-dotdot", "GET", "/../../etc/passwd",
             "Connection: close\r\n", NULL);
    http_req("static-missing", "GET", "/nosuch.js", "Connection: close\r\n",
             NULL);
    http_req("ws-without-upgrade", "GET", "/v1/ws", "Connection: close\r\n",
             NULL);
    puts_("http", "http10", "GET /healthz HTTP/1.0\r\n\r\n");
    puts_("http", "garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    /* two requests on one connection, the first kept alive */
    snprintf(hdr, sizeof(hdr),
             "POST /v1/call/counter/a/incr HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nContent-Length: 8\r\n\r\n"
             "{\"by\":1}GET /healthz HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n",
             tok);
    puts_("http", "pipelined", hdr);
    snprintf(hdr, sizeof(hdr),
             "POST /v1/call/counter/a/incr HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n"
             "Connection: close\r\n\r\n4\r\n{\"by\r\n4\r\n\":1}\r\n0\r\n\r\n",
             tok);
    puts_("http", "chunked", hdr);

    /* WebSocket: JSON, every op, token in a header */
    ws_upgrade(&b, "holdfast.v1.json", 1, tok);
    ws_text(&b, "{\"op\":\"ping\",\"id\":1}");
    ws_text(&b, "{\"op\":\"call\",\"id\":2,\"to\":\"counter/w\","
                "\"method\":\"incr\",\"args\":{\"by\":1},\"key\":\"k\"}");
    ws_text(&b, "{\"op\":\"sub\",\"id\":3,\"to\":\"room/r1\","
                "\"since\":0,\"presence\":{\"name\":\"ann\"}}\n"
                "{\"op\":\"signal\",\"to\":\"room/r1\",\"type\":\"typing\"}");
    ws_text(&b, "{\"op\":\"unsub\",\"id\":4,\"to\":\"room/r1\"}");
    ws_text(&b, "{\"op\":\"nope\",\"id\":5}\n[1]\n{\"op\":\"call\"}");
    put("http", "ws-json", b.data, b.len);
    ws_frame(&b, 1, 8, "\x03\xe8", 2); /* close 1000 */
    put("http", "ws-json-close", b.data, b.len);

    /* msgpack, token in the query, then auth again by message */
    b.len = 0;
    ws_upgrade(&b, "holdfast.v1.msgpack", 2, tok);
    {
        hf_buf m = {0};
        char am[2048];
        mp(&m, "{\"op\":\"call\",\"id\":\"a\",\"to\":\"counter/w\","
               "\"method\":\"get\"}");
        mp(&m, "{\"op\":\"sub\",\"id\":7,\"to\":\"counter/w\"}");
        ws_frame(&b, 1, 2, m.data, m.len);
        m.len = 0;
        snprintf(am, sizeof(am), "{\"op\":\"auth\",\"id\":8,\"token\":\"%s\"}",
                 adm);
        mp(&m, am);
        ws_frame(&b, 1, 2, m.data, m.len);
        hf_buf_free(&m);
    }
    ws_frame(&b, 1, 9, "hi", 2); /* ping */
    put("http", "ws-msgpack", b.data, b.len);

    /* no token at the upgrade: auth first, by message; fragmented frame */
    b.len = 0;
    ws_upgrade(&b, "holdfast.v1.json", 0, tok);
    ws_text(&b, "{\"op\":\"call\",\"id\":1,\"to\":\"counter/w\","
                "\"method\":\"get\"}");
    snprintf(hdr, sizeof(hdr), "{\"op\":\"auth\",\"id\":2,\"token\":\"%s\"}",
             tok);
    ws_frame(&b, 0, 1, hdr, 10);
    ws_frame(&b, 0, 0, hdr + 10, 10);
    ws_frame(&b, 1, 0, hdr + 20, strlen(hdr + 20));
    ws_text(&b, "{\"op\":\"call\",\"id\":3,\"to\":\"user/ann\","
                "\"method\":\"unread\"}");
    put("http", "ws-auth-by-message", b.data, b.len);

    /* a frame over the limit: close 1009 */
    b.len = 0;
    ws_upgrade(&b, "holdfast.v1.json", 1, tok);
    {
        unsigned char big[] = {0x81, 0x80 | 126, 0x20, 0x00, 0, 0, 0, 0};
        hf_buf_append(&b, big, sizeof(big)); /* announces 8192 bytes */
        hf_buf_append(&b, "{\"op\":\"ping\"}", 13);
    }
    put("http", "ws-too-large", b.data, b.len);

    b.len = 0;
    ws_upgrade(&b, "holdfast.v1.json", 1, "a.b.c");
    put("http", "ws-bad-token", b.data, b.len);
    b.len = 0;
    ws_upgrade(&b, "nosuch.protocol", 0, tok);
    ws_text(&b, "{\"op\":\"ping\"}");
    put("http", "ws-unknown-protocol", b.data, b.len);

    hf_buf_free(&b);
    free(tok);
    free(adm);
    free(lim);
}

/* ------------------------------------------------------------------ */
/* stored: byte 0 = actor, then records (u8 db, u8 key length, key, u16 LE
 * value length, value), dumped from a real engine after a few calls */

/* In fuzz_stored.c's order. */
static const char *const stored_actors[] = {"counter/a", "store/s", "device/d",
                                            "room/r",    "poll/p",  "user/u"};

struct dump {
    hf_buf recs[6]; /* per actor */
    int dbi;
};

static void
record(hf_buf *b, int dbi, const void *k, size_t kl, const void *v, size_t vl)
{
    unsigned char h[2] = {(unsigned char)dbi, (unsigned char)kl};
    unsigned char l[2] = {(unsigned char)vl, (unsigned char)(vl >> 8)};

    if (kl > 255 || vl > 65535)
        return;
    hf_buf_append(b, h, 2);
    hf_buf_append(b, k, kl);
    hf_buf_append(b, l, 2);
    hf_buf_append(b, v, vl);
}

/* Files each key under the actor whose address it starts with (after the
 * 8-byte time of the alarm index). */
static int
dump_cb(void *arg, hf_slice key, hf_slice val)
{
    struct dump *d = arg;
    const char *k = key.data;
    size_t skip = d->dbi == HF_DB_ALARMS ? 8 : 0;

    for (int i = 0; i < 6; i++) {
        size_t al = strlen(stored_actors[i]);
        if (key.len > skip + al && memcmp(k + skip, stored_actors[i], al) == 0 &&
            k[skip + al] == '\0')
            record(&d->recs[i], d->dbi, key.data, key.len, val.data, val.len);
    }
    return 0;
}

static void
call(hf_drv *d, const char *to, const char *m, const char *args,
     const char *key, unsigned role)
{
    hf_drv_msg *r = NULL;

    if (hf_drv_call(d, to, m, args, key, "ann", role, 10000, &r) != 0) {
        fprintf(stderr, "mkcorpus: no reply from %s %s\n", to, m);
        exit(1);
    }
    if (!r->e.ok)
        fprintf(stderr, "mkcorpus: %s %s: %s\n", to, m, r->code);
    hf_drv_msg_free(r);
}

static void
stored(void)
{
    const unsigned all = HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE |
                         HF_ROLE_SERVICE;
    char dir[] = "/tmp/mkcorpus-XXXXXX", args[256], name[64];
    struct dump dump = {0};
    hf_config cfg;
    hf_store st;
    hf_host *host;
    hf_drv *d;

    if (mkdtemp(dir) == NULL) {
        perror(dir);
        exit(1);
    }
    hf_config_defaults(&cfg);
    cfg.workers = 1;
    hf_log_set_level(HF_LOG_ERROR);
    if (hf_lmdb_open(&st, &(struct hf_lmdb_opts){.dir = dir, .nreaders = 3,
                                                 .durability = HF_DURABLE_NONE,
                                                 .map_size = 4 << 20}) != 0 ||
        hf_host_open(&host, &(struct hf_host_opts){.cfg = &cfg,
                                                   .store = st,
                                                   .kinds = hf_kinds,
                                                   .nkinds = hf_nkinds}) != 0 ||
        hf_drv_open(host, &d) != 0) {
        fprintf(stderr, "mkcorpus: cannot start an engine in %s\n", dir);
        exit(1);
    }
    call(d, "counter/a", "incr", "{\"by\":2}", "k1", all);
    call(d, "counter/a", "incr", "{\"by\":3}", NULL, all);
    call(d, "store/s", "register", "{\"name\":\"Ann\",\"party\":2}", "k1",
         all);
    call(d, "store/s", "register", "{\"name\":\"Bo\",\"party\":4}", NULL,
         all);
    call(d, "device/d", "reserve", "{\"slot\":\"2030-01-01T18:00:00+09:00\"}",
         "k1", HF_ROLE_USER);
    call(d, "device/d", "approve", "{\"slot\":\"2030-01-01T18:00:00+09:00\"}",
         NULL, HF_ROLE_ADMIN);
    call(d, "room/r", "send", "{\"body\":\"hi\"}", "k1", all);
    call(d, "room/r", "send", "{\"body\":\"again\"}", NULL, all);
    call(d, "room/r", "read", "{\"upto\":2}", NULL, all);
    snprintf(args, sizeof(args),
             "{\"options\":[\"yes\",\"no\"],\"closes_at\":%lld}",
             (long long)(hf_now_ms() + 3600 * 1000));
    call(d, "poll/p", "configure", args, NULL, HF_ROLE_ADMIN);
    call(d, "poll/p", "vote", "{\"option\":\"yes\"}", "k1", HF_ROLE_USER);
    call(d, "user/u", "notify",
         "{\"title\":\"t\",\"message\":\"m\",\"priority\":\"high\"}", "k1",
         HF_ROLE_SERVICE);
    hf_drv_close(d);
    hf_host_close(host);

    if (st.ops->rd_begin(st.self, 0) != 0) {
        fprintf(stderr, "mkcorpus: cannot read the store\n");
        exit(1);
    }
    for (dump.dbi = 0; dump.dbi < HF_DB_COUNT_; dump.dbi++)
        st.ops->scan(st.self, 0, dump.dbi, (hf_slice){"", 0}, (hf_slice){0},
                     0, dump_cb, &dump);
    st.ops->rd_end(st.self, 0);
    st.ops->close(st.self);
    snprintf(args, sizeof(args), "rm -rf '%s'", dir);
    if (system(args) != 0)
        fprintf(stderr, "mkcorpus: could not remove %s\n", dir);

    /* an undelivered send in the outbox, as device reminders leave them */
    {
        hf_buf env = {0}, v = {0};
        msgpack_packer pk;
        hf_env e = {.op = HF_OP_CALL, .to = {"user/u", 6},
                    .method = {"notify", 6}, .sub = {"device/d", 8},
                    .role = HF_ROLE_ACTOR};
        mp(&v, "{\"title\":\"Reminder\",\"message\":\"soon\","
               "\"priority\":\"high\"}");
        msgpack_packer_init(&pk, &env, hf_buf_mpwrite);
        hf_env_pack_request(&pk, &e, (hf_slice){v.data, v.len});
        record(&dump.recs[5], HF_DB_OUTBOX, "user/u\0\0\0\0\0\0\0\0\x01", 15,
               env.data, env.len);
        hf_buf_free(&env);
        hf_buf_free(&v);
    }
    for (int i = 0; i < 6; i++) {
        hf_buf f = {0};
        unsigned char a = (unsigned char)i;
        hf_buf_append(&f, &a, 1);
        hf_buf_append(&f, dump.recs[i].data, dump.recs[i].len);
        snprintf(name, sizeof(name), "engine-%.*s", (int)strcspn(stored_actors[i], "/"),
                 stored_actors[i]);
        put("stored", name, f.data, f.len);
        hf_buf_free(&f);
        hf_buf_free(&dump.recs[i]);
    }
    put("stored", "empty", "\x03", 1);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_ROOT (tests/fuzz/corpus)\n",
                argv[0]);
        return 2;
    }
    root = argv[1];
    wire();
    env();
    json();
    auth();
    wbatch();
    http();
    stored();
    return failed;
}
