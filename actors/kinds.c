/* kinds.c - the registry: one row per kind. */
#include "actors/kinds.h"

const struct hf_kind *const hf_kinds[] = {
    &hf_kind_counter, &hf_kind_store, &hf_kind_device,
    &hf_kind_room,    &hf_kind_poll,  &hf_kind_user,
    &hf_kind_channel,
};

const size_t hf_nkinds = sizeof(hf_kinds) / sizeof(hf_kinds[0]);
