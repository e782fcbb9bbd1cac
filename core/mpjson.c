/* mpjson.c - see mpjson.h. jansson bounds JSON nesting on input; msgpack-c
 * bounds msgpack nesting when unpacking, so the recursion here is bounded. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"

static void
pack_json(msgpack_packer *pk, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach(j, k, v) {
            hf_pack_cstr(pk, k);
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack_json(pk, v);
        break;
    }
    case JSON_STRING:
        hf_pack_str(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

int
hf_json_to_mp(const char *json, size_t len, hf_buf *out)
{
    json_error_t jerr;
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                           &jerr);
    msgpack_packer pk;

    if (j == NULL)
        return HF_EBADREQ;
    msgpack_packer_init(&pk, out, hf_buf_mpwrite);
    pack_json(&pk, j);
    json_decref(j);
    return 0;
}

/* A string's bytes. msgpack-c leaves ptr NULL for an empty string, which
 * jansson would take for a failure (and strndup may not be given). */
static const char *
str_ptr(const msgpack_object *o)
{
    return o->via.str.ptr != NULL ? o->via.str.ptr : "";
}

/* A non-string map key becomes the string of its JSON text; a map or
 * array key nested in KEY_NEST_MAX others becomes "null", as in
 * transport/wire.c: each level escapes the text inside it again, which
 * doubles it, so 31 levels of keys in keys would make gigabytes of 63
 * bytes. keys counts the container keys around o. */
#define KEY_NEST_MAX 4

static json_t *
to_json(const msgpack_object *o, int keys)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        json_t *s = json_stringn(str_ptr(o), o->via.str.size);
        return s ? s : json_null(); /* invalid UTF-8 */
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            json_array_append_new(a, to_json(&o->via.array.ptr[i], keys));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            json_t *v = to_json(&o->via.map.ptr[i].val, keys);
            if (k->type == MSGPACK_OBJECT_STR) {
                char *ks = strndup(str_ptr(k), k->via.str.size);
                if (ks)
                    json_object_set_new(m, ks, v);
                else
                    json_decref(v);
                free(ks);
            } else {
                int box = k->type == MSGPACK_OBJECT_ARRAY ||
                          k->type == MSGPACK_OBJECT_MAP;
                json_t *kj = box && keys >= KEY_NEST_MAX
                                 ? json_null()
                                 : to_json(k, keys + box);
                char *ks = kj ? json_dumps(kj, JSON_ENCODE_ANY) : NULL;
                if (ks)
                    json_object_set_new(m, ks, v);
                else
                    json_decref(v);
                free(ks);
                json_decref(kj);
            }
        }
        return m;
    }
    default:
        return json_null();
    }
}

char *
hf_mp_to_json(const msgpack_object *o)
{
    json_t *j = to_json(o, 0);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY |
                                    JSON_PRESERVE_ORDER)
                : NULL;
    json_decref(j);
    return s;
}
