/*
 * wbatch.c - the write batch encoding (core/storage.h, hf_wbatch_*),
 * shared by the engine and the store.
 *
 * An operation is a fixed header followed by its bytes:
 *   u8 kind, u8 dbi, u16 key length, u32 value length, key, value
 * in host byte order (batches never leave the process).
 */
#include "core/err.h"
#include "core/storage.h"

#define HDR 8

static int
append(hf_wbatch *wb, int kind, int dbi, const void *k, size_t kl,
       const void *v, size_t vl)
{
    unsigned char h[HDR];
    uint16_t k16 = (uint16_t)kl;
    uint32_t v32 = (uint32_t)vl;
    int rv;

    if (kl == 0 || kl > HF_KEY_MAX)
        return HF_ETOOLARGE;
    if (vl > UINT32_MAX / 2)
        return HF_ETOOLARGE;
    if ((rv = hf_buf_reserve(&wb->ops, HDR + kl + vl)) != 0)
        return rv;
    h[0] = (unsigned char)kind;
    h[1] = (unsigned char)dbi;
    memcpy(h + 2, &k16, 2);
    memcpy(h + 4, &v32, 4);
    hf_buf_append(&wb->ops, h, HDR);
    hf_buf_append(&wb->ops, k, kl);
    hf_buf_append(&wb->ops, v, vl);
    wb->nops++;
    return 0;
}

int
hf_wbatch_put(hf_wbatch *wb, int dbi, const void *k, size_t kl,
              const void *v, size_t vl)
{
    return append(wb, HF_WOP_PUT, dbi, k, kl, v, vl);
}

int
hf_wbatch_del(hf_wbatch *wb, int dbi, const void *k, size_t kl)
{
    return append(wb, HF_WOP_DEL, dbi, k, kl, NULL, 0);
}

int
hf_wbatch_next(const hf_wbatch *wb, size_t *pos, hf_wop *op)
{
    const unsigned char *p;
    uint16_t kl;
    uint32_t vl;

    if (*pos > wb->ops.len || wb->ops.len - *pos < HDR)
        return 0;
    p = (const unsigned char *)wb->ops.data + *pos;
    memcpy(&kl, p + 2, 2);
    memcpy(&vl, p + 4, 4);
    /* An operation cut short is the end: append() never writes one, so
     * only a broken batch holds it, and its bytes must not be read. */
    if (wb->ops.len - *pos - HDR < (size_t)kl + vl)
        return 0;
    op->kind = p[0];
    op->dbi = p[1];
    op->key.data = p + HDR;
    op->key.len = kl;
    op->val.data = p + HDR + kl;
    op->val.len = vl;
    *pos += HDR + kl + vl;
    return 1;
}

void
hf_wbatch_reset(hf_wbatch *wb)
{
    wb->ops.len = 0;
    wb->nops = 0;
    wb->nhandlers = 0;
    wb->status = 0;
    wb->next = NULL;
    wb->owner = NULL;
}
