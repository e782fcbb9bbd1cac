/*
 * fuzz.h - what the fuzz targets of tests/fuzz share.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput (and, when it needs a
 * set-up, LLVMFuzzerInitialize). It is linked either with libFuzzer (clang,
 * HF_FUZZ=ON: `make fuzz`) or with replay.c, which feeds it the files of a
 * corpus, so every target is also a ctest of its committed corpus in every
 * build.
 *
 * A target checks more than "no crash": FZ_CHECK states a property of the
 * code under test and aborts with the failing line when it does not hold,
 * which libFuzzer reports as a crash like any sanitizer's.
 *
 * Everything here is for one thread (the fuzzing thread).
 */
#ifndef HF_TESTS_FUZZ_H
#define HF_TESTS_FUZZ_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts, naming the property, when c is false. */
#define FZ_CHECK(c)                                                            \
    do {                                                                       \
        if (!(c))                                                              \
            fz_fail(__FILE__, __LINE__, #c);                                   \
    } while (0)

_Noreturn void fz_fail(const char *file, int line, const char *what);

/* Whether two decoded msgpack objects are equal: same types and values,
 * containers element by element (float values compared bit for bit). */
int fz_obj_eq(const msgpack_object *a, const msgpack_object *b);

/* Whether two slices hold the same bytes (both may be empty). */
int fz_slice_eq(hf_slice a, hf_slice b);

/*
 * Checks a connection's worth of server messages as the gateway writes
 * them (what next_chunk() later cuts into frames): for JSON, lines joined
 * by '\n', each one JSON object that jansson accepts (so valid UTF-8, no
 * raw control characters); for msgpack, concatenated well-formed maps.
 * Aborts on the first bad one.
 */
void fz_check_out(const hf_buf *out, int fmt);

/*
 * What the gateway does with one output envelope from the host, minus the
 * connection tables (transport/gateway.c on_output, on_reply, encode_out,
 * http_reply): the reply, event, signal or presence message is encoded for
 * a WebSocket client in both formats (appended to out[HF_WIRE_JSON] and
 * out[HF_WIRE_MSGPACK]) and, for a reply, as an HTTP body (to http, which
 * is emptied first). obj is the envelope as unpacked, e as decoded from
 * it. The client id echoed in replies is client_id (msgpack; may be
 * empty).
 */
void fz_gateway_output(const hf_env *e, const msgpack_object *obj,
                       hf_slice client_id, hf_buf out[2], hf_buf *http);

#endif
