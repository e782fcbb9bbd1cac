/*
 * fuzz_json.c - JSON text into msgpack (core/mpjson.h hf_json_to_mp), the
 * converter every JSON client message and every HTTP body goes through.
 *
 * The input is the JSON text. Properties, beyond no crash and no sanitizer
 * report:
 *  - on success exactly one well-formed msgpack object is appended to what
 *    the buffer held; on failure the buffer is unchanged;
 *  - msgpack-c can unpack it exactly when it nests no deeper than
 *    hf_wire_mp_check allows at depth 32 (wire.c's WIRE_DEPTH claims the
 *    two limits are the same);
 *  - it round-trips: rendered back to JSON by the wire encoder
 *    (hf_wire_json) or by hf_mp_to_json, and converted again, it gives the
 *    same msgpack bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mpjson.h"
#include "tests/fuzz/fuzz.h"
#include "transport/wire.h"

/* text converts to exactly want (len bytes). */
static void
same_again(const char *text, size_t n, const char *want, size_t len)
{
    hf_buf b = {0};

    if (hf_json_to_mp(text, n, &b) != 0)
        fprintf(stderr, "cannot read back: %.*s\n", (int)n, text);
    FZ_CHECK(b.len == len && memcmp(b.data, want, len) == 0);
    hf_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_buf out = {0}, js = {0};
    msgpack_zone z;
    msgpack_object obj;
    const char *mp;
    size_t len, off = 0;
    char *s;
    int rv, unpacked;

    FZ_CHECK(hf_buf_append(&out, "X", 1) == 0);
    rv = hf_json_to_mp((const char *)data, size, &out);
    if (rv != 0) {
        FZ_CHECK(rv == HF_EBADREQ && out.len == 1 && out.data[0] == 'X');
        hf_buf_free(&out);
        return 0;
    }
    FZ_CHECK(out.data[0] == 'X');
    mp = out.data + 1;
    len = out.len - 1;
    FZ_CHECK(hf_wire_mp_check(mp, len, 4096) == len);

    msgpack_zone_init(&z, 1024);
    unpacked = msgpack_unpack(mp, len, &off, &z, &obj) == MSGPACK_UNPACK_SUCCESS;
    FZ_CHECK(unpacked == (hf_wire_mp_check(mp, len, 32) == len));
    if (unpacked) {
        FZ_CHECK(off == len);
        hf_wire_json(&js, &obj);
        FZ_CHECK(js.len > 0);
        same_again(js.data, js.len, mp, len);
        if ((s = hf_mp_to_json(&obj)) != NULL) {
            same_again(s, strlen(s), mp, len);
            free(s);
        }
    }
    msgpack_zone_destroy(&z);
    hf_buf_free(&js);
    hf_buf_free(&out);
    return 0;
}
