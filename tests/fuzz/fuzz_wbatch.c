/*
 * fuzz_wbatch.c - the write-batch decoder (core/storage.h hf_wbatch_next)
 * over an arbitrary ops buffer, as the store's writer walks every batch.
 *
 * The input is the ops buffer, in a block of exactly its size. Properties,
 * beyond no crash and no sanitizer report:
 *  - iteration ends, every operation it returns lies inside the buffer
 *    (header, key and value) and follows the one before;
 *  - the operations a batch can hold (a known kind and database, a key of
 *    1..HF_KEY_MAX bytes), appended to a new batch with hf_wbatch_put and
 *    hf_wbatch_del, come back out of it unchanged and counted in nops.
 */
#include <stdlib.h>
#include <string.h>

#include "core/storage.h"
#include "tests/fuzz/fuzz.h"

#define HDR 8 /* store.c: u8 kind, u8 dbi, u16 key length, u32 value length */

static int
holdable(const hf_wop *op)
{
    return (op->kind == HF_WOP_PUT || op->kind == HF_WOP_DEL) &&
           op->dbi >= 0 && op->dbi < HF_DB_COUNT_ && op->key.len > 0 &&
           op->key.len <= HF_KEY_MAX &&
           (op->kind == HF_WOP_PUT || op->val.len == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_wbatch wb = {0}, again = {0};
    const char *base, *end;
    size_t pos = 0, last = 0, n = 0, kept = 0;
    hf_wop op;

    /* exactly the input's size: a read past the end is a sanitizer report */
    wb.ops.data = malloc(size > 0 ? size : 1);
    FZ_CHECK(wb.ops.data != NULL);
    memcpy(wb.ops.data, data, size);
    wb.ops.len = wb.ops.cap = size;
    base = wb.ops.data;
    end = base + size;

    while (hf_wbatch_next(&wb, &pos, &op)) {
        const char *k = op.key.data, *v = op.val.data;
        FZ_CHECK(++n <= size / HDR);
        FZ_CHECK(pos > last && pos <= size);
        FZ_CHECK(k == base + last + HDR && k + op.key.len <= end);
        FZ_CHECK(v == k + op.key.len && v + op.val.len <= end);
        FZ_CHECK(base + pos == v + op.val.len);
        last = pos;
        if (!holdable(&op))
            continue;
        if (op.kind == HF_WOP_PUT)
            FZ_CHECK(hf_wbatch_put(&again, op.dbi, k, op.key.len, v,
                                   op.val.len) == 0);
        else
            FZ_CHECK(hf_wbatch_del(&again, op.dbi, k, op.key.len) == 0);
        kept++;
    }

    /* what was kept comes back in order, byte for byte */
    FZ_CHECK(again.nops == kept);
    pos = last = 0;
    n = 0;
    while (hf_wbatch_next(&again, &pos, &op)) {
        hf_wop w;
        do {
            FZ_CHECK(hf_wbatch_next(&wb, &last, &w));
        } while (!holdable(&w));
        FZ_CHECK(op.kind == w.kind && op.dbi == w.dbi &&
                 fz_slice_eq(op.key, w.key) && fz_slice_eq(op.val, w.val));
        n++;
    }
    FZ_CHECK(n == kept && pos == again.ops.len);

    hf_wbatch_reset(&again);
    pos = 0;
    FZ_CHECK(again.nops == 0 && !hf_wbatch_next(&again, &pos, &op));
    hf_buf_free(&again.ops);
    hf_buf_free(&wb.ops);
    return 0;
}
