/*
 * keys.h - how actor data is laid out in the store's databases.
 *
 * Every key but the alarm index starts with the actor address and a NUL
 * (addresses never contain NUL), so one actor's keys are one contiguous
 * range: [addr "\0", addr "\1"). Integers are big-endian so ranges sort.
 *
 *   KV     addr \0 userkey
 *   LOG    addr \0 be64 seq        value: map{type, data, at}
 *   META   addr \0 "seq" | "epoch" | "obx" | "a:" name
 *   ALARMS be64 at_ms addr \0 name
 *   IDEM   addr \0 caller \0 key   value: be64 stored_ms, u8 ok, reply
 *          (the caller part is built by the host: core/ops.c idem_key)
 *   OUTBOX addr \0 be64 id         value: request envelope
 *   FEED   be64 endpoint addr \0 be64 seq   value: empty
 *
 * Pure functions, any thread. Each writes into out (at least
 * HF_KEY_MAX + 16 bytes) and returns the key length, or 0 if too long.
 */
#ifndef HF_CORE_KEYS_H
#define HF_CORE_KEYS_H

#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "core/storage.h"

#define HF_KEYBUF (HF_KEY_MAX + 16)

static inline size_t
hf_key_actor(char *out, const char *addr, size_t alen, const void *sfx,
             size_t slen)
{
    if (alen + 1 + slen > HF_KEY_MAX)
        return 0;
    memcpy(out, addr, alen);
    out[alen] = '\0';
    if (slen)
        memcpy(out + alen + 1, sfx, slen);
    return alen + 1 + slen;
}

static inline size_t
hf_key_seq(char *out, const char *addr, size_t alen, uint64_t n)
{
    char be[8];
    hf_put_be64(be, n);
    return hf_key_actor(out, addr, alen, be, 8);
}

/* The end (exclusive) of an actor's range: addr "\1". */
static inline size_t
hf_key_actor_end(char *out, const char *addr, size_t alen)
{
    memcpy(out, addr, alen);
    out[alen] = '\1';
    return alen + 1;
}

static inline size_t
hf_key_alarm(char *out, int64_t at, const char *addr, size_t alen,
             const char *name, size_t nlen)
{
    if (8 + alen + 1 + nlen > HF_KEY_MAX)
        return 0;
    hf_put_be64(out, (uint64_t)at);
    memcpy(out + 8, addr, alen);
    out[8 + alen] = '\0';
    memcpy(out + 9 + alen, name, nlen);
    return 9 + alen + nlen;
}

/* A webhook feed row: endpoint id, then the event's actor and seq, so an
 * endpoint's rows are one range and an actor's rows sort by seq. */
static inline size_t
hf_key_feed(char *out, uint64_t ep, const char *addr, size_t alen,
            uint64_t seq)
{
    size_t n;

    if (8 + alen + 1 + 8 > HF_KEY_MAX)
        return 0;
    hf_put_be64(out, ep);
    n = hf_key_seq(out + 8, addr, alen, seq);
    return n ? 8 + n : 0;
}

#endif
