/* util.c - see util.h. */
#include <stdio.h>
#include <string.h>

#include "actors/util.h"
#include "core/env.h"

int
hf_util_load(hf_ctx *c, const void *key, size_t klen, msgpack_zone *zone,
             msgpack_object *obj)
{
    hf_slice v;
    size_t off = 0;
    int rv;

    if ((rv = hf_get(c, key, klen, &v)) != 0)
        return rv;
    if (v.len == 0)
        return hf_fail(c, HF_EINTERNAL, "cannot load a record");
    if (hf_unpack_next(v.data, v.len, &off, zone, obj) != 0)
        return hf_fail(c, HF_EINTERNAL, "a stored record is corrupt");
    return 0;
}

msgpack_packer *
hf_util_rec_begin(hf_util_rec *r)
{
    r->buf.len = 0;
    msgpack_packer_init(&r->pk, &r->buf, hf_buf_mpwrite);
    return &r->pk;
}

int
hf_util_rec_put(hf_ctx *c, hf_util_rec *r, const void *key, size_t klen)
{
    return hf_put(c, key, klen, r->buf.data, r->buf.len);
}

void
hf_util_rec_free(hf_util_rec *r)
{
    hf_buf_free(&r->buf);
}

static int
skipped(const msgpack_object *k, const char *const *skip, size_t nskip)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return 0;
    for (size_t i = 0; i < nskip; i++)
        if (strlen(skip[i]) == k->via.str.size &&
            memcmp(skip[i], k->via.str.ptr, k->via.str.size) == 0)
            return 1;
    return 0;
}

void
hf_util_pack_map_except(msgpack_packer *pk, const msgpack_object *map,
                        const char *const *skip, size_t nskip, uint32_t extra)
{
    uint32_t n = 0, size = map->type == MSGPACK_OBJECT_MAP
                               ? map->via.map.size
                               : 0;

    for (uint32_t i = 0; i < size; i++)
        if (!skipped(&map->via.map.ptr[i].key, skip, nskip))
            n++;
    msgpack_pack_map(pk, n + extra);
    for (uint32_t i = 0; i < size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (skipped(&kv->key, skip, nskip))
            continue;
        msgpack_pack_object(pk, kv->key);
        msgpack_pack_object(pk, kv->val);
    }
}

int64_t
hf_util_field_int(const msgpack_object *map, const char *field, int64_t dflt)
{
    const msgpack_object *v = hf_arg(map, field);
    if (v == NULL)
        return dflt;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return dflt;
}

int
hf_util_field_bool(const msgpack_object *map, const char *field)
{
    const msgpack_object *v = hf_arg(map, field);
    return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

int
hf_util_field_is(const msgpack_object *map, const char *field, const char *s,
                 size_t n)
{
    const msgpack_object *v = hf_arg(map, field);
    return v != NULL && v->type == MSGPACK_OBJECT_STR &&
           v->via.str.size == n && (n == 0 || memcmp(v->via.str.ptr, s, n) == 0);
}

uint64_t
hf_util_get_u64(hf_ctx *c, const char *key)
{
    hf_slice v;
    if (hf_get(c, key, strlen(key), &v) != 0 || v.len != 8)
        return 0;
    return hf_get_be64(v.data);
}

int
hf_util_put_u64(hf_ctx *c, const char *key, uint64_t v)
{
    char be[8];
    hf_put_be64(be, v);
    return hf_put(c, key, strlen(key), be, 8);
}

size_t
hf_util_key_id(char *out, const char *prefix, uint64_t id)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    hf_put_be64(out + n, id);
    return n + 8;
}

uint64_t
hf_util_key_id_of(hf_slice key, size_t plen)
{
    if (key.len != plen + 8)
        return 0;
    return hf_get_be64((const char *)key.data + plen);
}

int
hf_util_arg_bool(hf_ctx *c, const msgpack_object *args, const char *key,
                 int required, int *v)
{
    const msgpack_object *o = hf_arg(args, key);

    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return required ? hf_fail(c, HF_EBADREQ, "'%s' is required", key)
                        : 0;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return hf_fail(c, HF_EBADREQ, "'%s' must be true or false", key);
    *v = o->via.boolean;
    return 0;
}

int
hf_util_arg_enum(hf_ctx *c, const msgpack_object *args, const char *key,
                 int required, const char *const *names, size_t n, int *idx)
{
    const msgpack_object *o = hf_arg(args, key);
    char list[256];
    size_t used = 0;

    if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
        return required ? hf_fail(c, HF_EBADREQ, "'%s' is required", key)
                        : 0;
    if (o->type == MSGPACK_OBJECT_STR)
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == o->via.str.size &&
                memcmp(names[i], o->via.str.ptr, o->via.str.size) == 0) {
                *idx = (int)i;
                return 0;
            }
    list[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                         i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return hf_fail(c, HF_EBADREQ, "'%s' must be one of %s", key, list);
}

int
hf_util_privileged(hf_ctx *c)
{
    return (hf_caller_role(c) & (HF_ROLE_ADMIN | HF_ROLE_SERVICE)) != 0;
}

/* ---- text and time (added for store and device) ---- */

int
hf_util_arg_text(hf_ctx *c, const msgpack_object *args, const char *key,
                 int required, size_t maxlen, const char **s, size_t *len)
{
    int rv;

    if ((rv = hf_arg_str(c, args, key, required, maxlen, s, len)) != 0)
        return rv;
    for (size_t i = 0; i < *len; i++) {
        unsigned char ch = (unsigned char)(*s)[i];
        if (ch < 0x20 || ch == 0x7f)
            return hf_fail(c, HF_EBADREQ,
                           "'%s' must not contain control characters", key);
    }
    return 0;
}

int
hf_util_field_copy(const msgpack_object *map, const char *field, char *dst,
                   size_t cap)
{
    const msgpack_object *v = hf_arg(map, field);
    size_t n;

    dst[0] = '\0';
    if (v == NULL || v->type != MSGPACK_OBJECT_STR)
        return -1;
    n = v->via.str.size < cap - 1 ? v->via.str.size : cap - 1;
    memcpy(dst, v->via.str.ptr, n);
    dst[n] = '\0';
    return (int)n;
}

/* The civil-date algorithms are Howard Hinnant's well-known public-domain
 * formulas: eras of 400 years, March-based years so leap days fall last. */
int64_t
hf_util_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void
hf_util_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n digits at s[*i]; -1 when they are not all digits. */
static int
digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    if (*i + (size_t)n > len)
        return -1;
    for (int k = 0; k < n; k++, (*i)++) {
        if (s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

static int
days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int
hf_util_iso8601_ms(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec = 0, frac = 0, off = 0;

    if ((y = digits(s, len, &i, 4)) < 0 || i >= len || s[i++] != '-' ||
        (mo = digits(s, len, &i, 2)) < 1 || mo > 12 || i >= len ||
        s[i++] != '-' || (d = digits(s, len, &i, 2)) < 1 ||
        d > days_in_month(y, mo) || i >= len || s[i++] != 'T' ||
        (h = digits(s, len, &i, 2)) < 0 || h > 23 || i >= len ||
        s[i++] != ':' || (mi = digits(s, len, &i, 2)) < 0 || mi > 59)
        return HF_EBADREQ;
    if (i < len && s[i] == ':') {
        i++;
        if ((sec = digits(s, len, &i, 2)) < 0 || sec > 59)
            return HF_EBADREQ;
        if (i < len && (s[i] == '.' || s[i] == ',')) {
            int n = 0;
            for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
                if (n < 3)
                    frac = frac * 10 + (s[i] - '0');
            if (n == 0)
                return HF_EBADREQ;
            for (; n < 3; n++)
                frac *= 10;
        }
    }
    if (i >= len)
        return HF_EBADREQ; /* no zone */
    if (s[i] == 'Z' && i + 1 == len) {
        off = 0;
    } else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i++] == '-' ? -1 : 1, oh, om;
        if ((oh = digits(s, len, &i, 2)) < 0 || oh > 23)
            return HF_EBADREQ;
        if (i < len && s[i] == ':')
            i++;
        if ((om = digits(s, len, &i, 2)) < 0 || om > 59 || i != len)
            return HF_EBADREQ;
        off = sign * (oh * 60 + om);
    } else {
        return HF_EBADREQ;
    }
    *ms = ((hf_util_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
            h * 3600 + mi * 60 + sec - (int64_t)off * 60) *
           1000) +
          frac;
    return 0;
}

void
hf_util_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    hf_pack_cstr(pk, k);
    hf_pack_cstr(pk, v);
}

void
hf_util_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    hf_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

void
hf_util_kv_opt_str(msgpack_packer *pk, const char *k, const char *v)
{
    hf_pack_cstr(pk, k);
    if (*v)
        hf_pack_cstr(pk, v);
    else
        msgpack_pack_nil(pk);
}

void
hf_util_kv_opt_int(msgpack_packer *pk, const char *k, int64_t v)
{
    hf_pack_cstr(pk, k);
    if (v)
        msgpack_pack_int64(pk, v);
    else
        msgpack_pack_nil(pk);
}

int
hf_util_field_enum(const msgpack_object *map, const char *field,
                   const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hf_util_field_is(map, field, names[i], strlen(names[i])))
            return (int)i;
    return -1;
}
