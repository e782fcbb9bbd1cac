/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every WAL record.
 *
 * hf_crc32c(0, p, n) is the standard CRC-32C of n bytes (RFC 3720: the
 * check value of "123456789" is 0xE3069283); passing a previous result
 * as crc continues it over more bytes. Pure and thread-safe. Uses the
 * SSE4.2 crc32 instruction when the CPU has it, else a table.
 */
#ifndef HF_STORAGE_CRC32C_H
#define HF_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t hf_crc32c(uint32_t crc, const void *p, size_t n);

#endif
