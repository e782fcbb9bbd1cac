/*
 * util.h - small helpers shared by the actor kinds: stored records as
 * msgpack maps, big-endian id keys, typed argument checks, roles.
 *
 * Everything here runs inside a handler, on the worker that owns the
 * actor, through the hf_ctx it was given (core/actor.h); nothing keeps
 * state between calls. Names are hf_util_*.
 */
#ifndef HF_ACTORS_UTIL_H
#define HF_ACTORS_UTIL_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "core/actor.h"
#include "core/buf.h"

/* The longest key a kind may use (core/actor.h). */
#define HF_UTIL_KEY_MAX (HF_KEY_MAX - 200)

/* ---- stored records ---- */

/* Loads the msgpack value at key into *obj, unpacked into zone. *obj's
 * strings point into the value hf_get returned, which stays valid until
 * the handler returns whatever it writes meanwhile (core/actor.h), so *obj
 * is valid while the handler runs and the zone lives; do not keep it (or
 * the zone's objects) across handlers. Returns 0, HF_ENOTFOUND, or
 * HF_EINTERNAL (not msgpack). */
int hf_util_load(hf_ctx *c, const void *key, size_t klen, msgpack_zone *zone,
                 msgpack_object *obj);

/* A record being packed: hf_util_rec_begin empties it and returns a packer
 * writing into it; hf_util_rec_put stores it at a key. Reusable; free with
 * hf_util_rec_free (a zeroed or freed record is fine to free again). The
 * struct must not move between begin and put (the packer points at it). */
typedef struct hf_util_rec {
    hf_buf buf;
    msgpack_packer pk;
} hf_util_rec;

msgpack_packer *hf_util_rec_begin(hf_util_rec *r);
int hf_util_rec_put(hf_ctx *c, hf_util_rec *r, const void *key, size_t klen);
void hf_util_rec_free(hf_util_rec *r);

/* Packs the map `map` without the fields named in skip (nskip names), as
 * a map header announcing `extra` more pairs, which the caller packs next.
 * Use it to rewrite a stored record with some fields replaced. */
void hf_util_pack_map_except(msgpack_packer *pk, const msgpack_object *map,
                             const char *const *skip, size_t nskip,
                             uint32_t extra);

/* A field of a decoded map as an integer (dflt when absent or not an
 * integer) or a boolean (0 when absent or not a boolean). */
int64_t hf_util_field_int(const msgpack_object *map, const char *field,
                          int64_t dflt);
int hf_util_field_bool(const msgpack_object *map, const char *field);

/* Whether a field of a decoded map is the string s (n bytes). */
int hf_util_field_is(const msgpack_object *map, const char *field,
                     const char *s, size_t n);

/* ---- counters and id keys ---- */

/* The big-endian uint64 stored at key (a C string), or 0 when absent. */
uint64_t hf_util_get_u64(hf_ctx *c, const char *key);
int hf_util_put_u64(hf_ctx *c, const char *key, uint64_t v);

/* Writes prefix (a C string) followed by id as 8 big-endian bytes into out
 * (room for strlen(prefix) + 8) and returns the length, so ids sort. */
size_t hf_util_key_id(char *out, const char *prefix, uint64_t id);

/* The id of a key made by hf_util_key_id with a plen-byte prefix, or 0
 * when the key is not plen + 8 bytes long. */
uint64_t hf_util_key_id_of(hf_slice key, size_t plen);

/* ---- arguments (fail with HF_EBADREQ naming the field) ---- */

/* A boolean field. Absent (or nil) and optional: *v untouched. */
int hf_util_arg_bool(hf_ctx *c, const msgpack_object *args, const char *key,
                     int required, int *v);

/* A string field that must be one of names[0..n-1]; *idx gets its index.
 * Absent and optional: *idx untouched. */
int hf_util_arg_enum(hf_ctx *c, const msgpack_object *args, const char *key,
                     int required, const char *const *names, size_t n,
                     int *idx);

/* ---- callers ---- */

/* Whether the caller is an admin or a service (trusted backends). */
int hf_util_privileged(hf_ctx *c);

/* ---- text and time (added for store and device) ---- */

/* A string field of 1..maxlen bytes with no control characters (bytes
 * below 0x20 and 0x7f), as hf_arg_str otherwise: for names, notes and
 * slots that end up on boards and in keys. */
int hf_util_arg_text(hf_ctx *c, const msgpack_object *args, const char *key,
                     int required, size_t maxlen, const char **s, size_t *len);

/* Copies a string field of a decoded map into dst (cap > 0 bytes, always
 * NUL-terminated, cut at cap - 1 bytes). Returns the copied length, or -1
 * with dst = "" when the field is absent or not a string. */
int hf_util_field_copy(const msgpack_object *map, const char *field, char *dst,
                       size_t cap);

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12, d 1..31),
 * and back. Pure, any thread. */
int64_t hf_util_days_from_civil(int64_t y, unsigned m, unsigned d);
void hf_util_civil_from_days(int64_t days, int64_t *y, unsigned *m,
                             unsigned *d);

/* Parses an ISO-8601 (RFC 3339) date-time with an explicit zone,
 * "YYYY-MM-DDTHH:MM[:SS[.fraction]]" then "Z" or "+HH:MM" / "-HH:MM" /
 * "+HHMM", into milliseconds since the epoch (fraction cut to ms). A
 * time without a zone is not accepted: it names no instant. Returns 0,
 * or HF_EBADREQ when s (len bytes) is not such a time. Pure, any thread. */
int hf_util_iso8601_ms(const char *s, size_t len, int64_t *ms);

/* The index in names[0..n-1] of a string field of a decoded map, or -1
 * when it is absent, not a string or none of them (hf_util_arg_enum's
 * counterpart for stored records). */
int hf_util_field_enum(const msgpack_object *map, const char *field,
                       const char *const *names, size_t n);

/* Packs one map pair "k": v. The _opt forms pack nil for "" / 0, for
 * fields that are not set yet (a time, an optional name). */
void hf_util_kv_str(msgpack_packer *pk, const char *k, const char *v);
void hf_util_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void hf_util_kv_opt_str(msgpack_packer *pk, const char *k, const char *v);
void hf_util_kv_opt_int(msgpack_packer *pk, const char *k, int64_t v);

#endif
