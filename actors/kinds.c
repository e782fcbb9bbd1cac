/* kinds.c - the registry: one row per kind. */
#include "actors/kinds.h"

const struct hf_kind *const hf_kinds[] = {
    &hf_kind_counter,
};

const size_t hf_nkinds = sizeof(hf_kinds) / sizeof(hf_kinds[0]);
