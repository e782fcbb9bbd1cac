/*
 * kinds.h - the table of actor kinds this build serves.
 *
 * Each kind lives in its own file as a const struct hf_kind (core/actor.h).
 * The table is read-only and safe to read from any thread.
 */
#ifndef HF_ACTORS_KINDS_H
#define HF_ACTORS_KINDS_H

#include <stddef.h>

#include "core/actor.h"

extern const struct hf_kind hf_kind_counter;
extern const struct hf_kind hf_kind_store;
extern const struct hf_kind hf_kind_device;
extern const struct hf_kind hf_kind_room;
extern const struct hf_kind hf_kind_poll;
extern const struct hf_kind hf_kind_user;
extern const struct hf_kind hf_kind_channel;

extern const struct hf_kind *const hf_kinds[];
extern const size_t hf_nkinds;

#endif
