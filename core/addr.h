/*
 * addr.h - actor addresses: "kind/name".
 *
 * kind matches ^[a-z][a-z0-9_]{0,31}$ and name ^[A-Za-z0-9._:@-]{1,128}$
 * (DESIGN §3). Anything else is HF_EBADREQ. Pure functions, any thread.
 */
#ifndef HF_CORE_ADDR_H
#define HF_CORE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define HF_KIND_MAX 32
#define HF_NAME_MAX 128
#define HF_ADDR_MAX (HF_KIND_MAX + 1 + HF_NAME_MAX)

/* Checks an address of len bytes (not NUL-terminated necessarily). On
 * success returns 0 and sets *kindlen to the length of the kind part. */
int hf_addr_check(const char *addr, size_t len, size_t *kindlen);

/* 64-bit FNV-1a of the address bytes: the worker that owns an actor is
 * hf_addr_hash(a) % W, stable across restarts and machines. */
uint64_t hf_addr_hash(const char *addr, size_t len);

#endif
