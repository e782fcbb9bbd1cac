/*
 * store.h - the store kind's pure helpers: the UTC day and ticket ids.
 *
 * The store kind itself is hf_kind_store (actors/kinds.h). These are
 * exported so the day rollover can be tested without moving the clock:
 * every "which day is it" question in store.c goes through hf_store_day,
 * and every "which number comes next" through hf_store_next_number.
 * Pure functions, any thread.
 */
#ifndef HF_ACTORS_STORE_H
#define HF_ACTORS_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Largest ticket number of one day. */
#define HF_STORE_NUMBER_MAX 999999u

/* Room for a ticket id "YYYYMMDD-N" and its NUL. */
#define HF_STORE_ID_MAX 24

/* The UTC day of a time in ms since the epoch, as the integer YYYYMMDD
 * (20261121). */
uint32_t hf_store_day(int64_t now_ms);

/* The number of the next ticket: last_no + 1 when the counter was last
 * used on `today`, else 1 (a new day starts over; last_day 0 = never).
 * Returns 0 when today's numbers are used up (over HF_STORE_NUMBER_MAX). */
uint32_t hf_store_next_number(uint32_t last_day, uint32_t last_no,
                              uint32_t today);

/* Writes the ticket id "YYYYMMDD-N" into out (HF_STORE_ID_MAX bytes);
 * returns its length. */
size_t hf_store_ticket_id(char *out, uint32_t day, uint32_t no);

/* Parses a ticket id (len bytes): 0 with *day and *no, or -1 when it is
 * not "YYYYMMDD-N" with N in 1..HF_STORE_NUMBER_MAX and no leading 0. */
int hf_store_ticket_parse(const char *s, size_t len, uint32_t *day,
                          uint32_t *no);

#endif
