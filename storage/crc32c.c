/*
 * crc32c.c - CRC-32C for the WAL (crc32c.h).
 *
 * Why our own: zlib's crc32 is CRC-32 (another polynomial) and Debian
 * packages no small, well-kept CRC-32C library our build already pulls
 * in; the algorithm is thirty lines. x86-64 CPUs since 2008 compute it in
 * hardware (SSE4.2 crc32, 8 bytes per instruction); elsewhere a 256-entry
 * table built once (reflected polynomial 0x82F63B78) does a byte a step.
 * The choice is made once, on first use, from the CPU's features.
 */
#include <pthread.h>
#include <string.h>

#include "storage/crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int have_hw;

static void
init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t
sw(uint32_t c, const unsigned char *p, size_t n)
{
    while (n--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c, w;

    for (; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
    }
    c = (uint32_t)c64;
    for (; n > 0; n--, p++)
        c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif

uint32_t
hf_crc32c(uint32_t crc, const void *p, size_t n)
{
    uint32_t c = ~crc;

    pthread_once(&once, init);
#if defined(__x86_64__)
    if (have_hw)
        return ~hw(c, p, n);
#endif
    return ~sw(c, p, n);
}
