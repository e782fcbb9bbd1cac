/* device.c - placeholder: the device kind is being written. */
#include "actors/kinds.h"

const struct hf_kind hf_kind_device = {.name = "device"};
