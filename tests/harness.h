/*
 * harness.h - a real engine for tests of actor kinds: an LMDB store in a
 * fresh directory, a host serving the kinds of actors/kinds.h, and an
 * in-process driver to call it. Single-threaded use from the test.
 */
#ifndef HF_TESTS_HARNESS_H
#define HF_TESTS_HARNESS_H

#include <msgpack.h>

#include "core/config.h"
#include "storage/lmdb.h"
#include "client/driver.h"
#include "core/host.h"
#include "core/storage.h"

#define TH_WAIT 10000 /* ms: generous, machines are shared */

/* Every role bit: what a caller has when auth is off. */
#define TH_ALL_ROLES                                                         \
    (HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE | HF_ROLE_SERVICE)

struct th_eng {
    char dir[256];
    hf_config cfg;
    hf_lmdb_config store;
    hf_store st;
    hf_host *host;
    hf_drv *drv;
    int open;
    const struct hf_kind *const *kinds; /* NULL: the built-in ones */
    size_t nkinds;
};

/* Opens an engine; tweak (may be NULL) adjusts the config first. */
struct th_eng *th_new(void (*tweak)(hf_config *));
/* The same, serving these kinds (e.g. with Lua ones) instead. */
struct th_eng *th_new_kinds(void (*tweak)(hf_config *),
                            const struct hf_kind *const *kinds, size_t n);
/* Closes and reopens it on the same data directory (a restart). */
void th_restart(struct th_eng *e);
void th_free(struct th_eng *e);

/* A synchronous call as (sub, role) with JSON args (NULL: none). Fails
 * the test if no reply comes. Free the reply with hf_drv_msg_free. */
hf_drv_msg *th_call(struct th_eng *e, const char *sub, unsigned role,
                    const char *to, const char *method, const char *args);

/* As th_call, asserting success; returns the result as JSON (malloc'd,
 * caller frees). */
char *th_ok(struct th_eng *e, const char *sub, unsigned role, const char *to,
            const char *method, const char *args);

/* As th_call, asserting failure with this error code. */
void th_err(struct th_eng *e, const char *sub, unsigned role, const char *to,
            const char *method, const char *args, const char *code);

/* An integer field of a reply's result map (fails the test if absent). */
int64_t th_int(const hf_drv_msg *m, const char *field);

/* Subscribes connection conn of the driver (since < 0: none). */
void th_sub(struct th_eng *e, uint64_t conn, const char *to, int64_t since);

/* The next event from `from`, skipping presence and signals, within
 * TH_WAIT ms; NULL if none. Free with hf_drv_msg_free. */
hf_drv_msg *th_event(struct th_eng *e, const char *from);

/* Fails the test unless json contains frag. */
void th_has(const char *json, const char *frag);

/* th_ok, then th_has on the result unless frag is NULL. */
void th_ok_has(struct th_eng *e, const char *sub, unsigned role,
               const char *to, const char *method, const char *args,
               const char *frag);

/* The next event from `from` must be `type`, its JSON containing frag
 * (NULL: anything). */
void th_expect_event(struct th_eng *e, const char *from, const char *type,
                     const char *frag);

/* A field of a result map; fails the test when absent. */
const msgpack_object *th_field(const msgpack_object *map, const char *name);
/* A non-negative integer field; -1 when nil. */
int64_t th_num(const msgpack_object *map, const char *name);
/* Whether a string field equals s ("" matches nil). */
int th_is(const msgpack_object *map, const char *name, const char *s);

/* Checks a paged reply: the "id"s of the maps in array field `array` of
 * m's result, joined as "7,6,5", must equal ids, and its "more" flag must
 * equal more. what names the call in failure messages. */
void th_expect_ids(const hf_drv_msg *m, const char *what, const char *array,
                   const char *ids, int more);

/* Waits up to ms for no further event; returns 1 when none came. */
int th_quiet(struct th_eng *e, int ms);

#endif
