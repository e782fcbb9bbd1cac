/*
 * vec.h - growable arrays kept in their owner's own fields: a pointer v, a
 * count n and a capacity cap (any integer types), all zero when empty.
 *
 * HF_VEC_GROW(v, n, cap, first) makes room for one more element: when the
 * array is full it doubles cap (the first time to `first`) and reallocates
 * v. HF_VEC_PUSH(v, n, cap, first, x) then appends x. Out of memory aborts
 * (core/oom.h). The array moves when it grows: pointers into it are valid
 * until the next push. The owner frees v.
 *
 * Threads: none of its own; the owner serializes every use of one array.
 */
#ifndef HF_CORE_VEC_H
#define HF_CORE_VEC_H

#include <stddef.h>

#include "core/oom.h"

#define HF_VEC_GROW(v, n, cap, first)                                        \
    do {                                                                     \
        if ((n) == (cap)) {                                                  \
            (cap) = (cap) ? (cap) * 2 : (first);                             \
            (v) = hf_xrealloc((v), (size_t)(cap) * sizeof(*(v)));            \
        }                                                                    \
    } while (0)

#define HF_VEC_PUSH(v, n, cap, first, x)                                     \
    do {                                                                     \
        HF_VEC_GROW(v, n, cap, first);                                       \
        (v)[(n)++] = (x);                                                    \
    } while (0)

#endif
