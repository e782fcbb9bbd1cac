/* poll.c - placeholder: the poll kind is being written. */
#include "actors/kinds.h"

const struct hf_kind hf_kind_poll = {.name = "poll"};
