/* user.c - placeholder: the user kind is being written. */
#include "actors/kinds.h"

const struct hf_kind hf_kind_user = {.name = "user"};
