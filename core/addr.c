/* addr.c - see addr.h. */
#include "core/addr.h"
#include "core/err.h"

static int
kindch(char c, int first)
{
    if (c >= 'a' && c <= 'z')
        return 1;
    return !first && ((c >= '0' && c <= '9') || c == '_');
}

static int
namech(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '@' || c == '-';
}

int
hf_addr_check(const char *addr, size_t len, size_t *kindlen)
{
    size_t k = 0, i;

    while (k < len && addr[k] != '/') {
        if (k >= HF_KIND_MAX || !kindch(addr[k], k == 0))
            return HF_EBADREQ;
        k++;
    }
    if (k == 0 || k == len)
        return HF_EBADREQ;
    if (len - k - 1 < 1 || len - k - 1 > HF_NAME_MAX)
        return HF_EBADREQ;
    for (i = k + 1; i < len; i++)
        if (!namech(addr[i]))
            return HF_EBADREQ;
    if (kindlen != NULL)
        *kindlen = k;
    return 0;
}

uint64_t
hf_addr_hash(const char *addr, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)addr[i];
        h *= 1099511628211ull;
    }
    return h;
}
