/* store.c - placeholder: the store kind is being written. */
#include "actors/kinds.h"

const struct hf_kind hf_kind_store = {.name = "store"};
