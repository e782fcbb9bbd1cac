/* room.c - placeholder: the room kind is being written. */
#include "actors/kinds.h"

const struct hf_kind hf_kind_room = {.name = "room"};
