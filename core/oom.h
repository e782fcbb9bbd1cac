/*
 * oom.h - the one out-of-memory policy.
 *
 * Policy. Inside the runtime (core/, storage/, actors/) a failed allocation
 * is not an error to report but the end of the process: hf_oom() logs one
 * line and aborts. A worker that lost a message, a mailbox or half a write
 * batch to a failed malloc could not keep the output gate's promises, and
 * Linux rarely refuses small allocations before the OOM killer acts
 * anyway. So code here never tests an allocation for NULL: it calls the
 * hf_x* wrappers below, which never return NULL, and wraps a call that can
 * fail only for memory (hf_buf_append, hf_wbatch_put) in HF_MUST.
 *
 * One exception, which is not a failure: memory that only makes things
 * faster may be done without. The hash table keeps its buckets and longer
 * chains (htab.h), the store's writer applies a group in order instead of
 * sorted (storage/lmdb.c). hf_buf itself still returns HF_EINTERNAL,
 * because transport/ decides per call what a failure means there
 * (dropping one connection); the runtime wraps its calls in HF_MUST.
 *
 * Threads: everything here is safe from any thread.
 */
#ifndef HF_CORE_OOM_H
#define HF_CORE_OOM_H

#include <stddef.h>

/* Logs "out of memory" and aborts. */
void hf_oom(void) __attribute__((noreturn));

/* malloc, calloc and realloc that never return NULL (a size of 0 still
 * returns a pointer to free). hf_xrealloc keeps realloc's contract. */
void *hf_xmalloc(size_t n);
void *hf_xcalloc(size_t n, size_t size);
void *hf_xrealloc(void *p, size_t n);

/* Gives the heap's free pages back to the system (glibc's malloc_trim;
 * nothing elsewhere). malloc keeps what a thread freed for that thread's
 * arena, and the holes between live blocks stay resident, so a server
 * that frees a lot in bursts (the log's checkpoints) grows its RSS by the
 * largest burst's holes. Takes each arena's lock in turn (0.15-1.3 ms
 * under the engine bench): call it from a background thread, now and
 * then. */
void hf_mem_release(void);

/* For calls that return nonzero only when memory ran out. */
#define HF_MUST(x)                                                           \
    do {                                                                     \
        if ((x) != 0)                                                        \
            hf_oom();                                                        \
    } while (0)

#endif
