/* oom.c - see oom.h. */
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/log.h"
#include "core/oom.h"

void
hf_oom(void)
{
    hf_error("oom", "out of memory");
    abort();
}

void *
hf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        hf_oom();
    return p;
}

void *
hf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        hf_oom();
    return p;
}

void *
hf_xrealloc(void *p, size_t n)
{
    if ((p = realloc(p, n ? n : 1)) == NULL)
        hf_oom();
    return p;
}

void
hf_mem_release(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
