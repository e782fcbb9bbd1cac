/*
 * auth.h - who is calling, and may they reach an address (DESIGN §6).
 *
 * A client proves who it is with an HS256 JWT signed with the server's
 * secret. Its claims become an hf_principal:
 *   sub   string, 1..128 bytes              required
 *   role  "user" | "admin" | "device" | "service"   required, exactly one
 *   exp   integer seconds since the epoch   required (unless
 *         HF_AUTH_ALLOW_NO_EXP); expired when <= now
 *   nbf   integer seconds since the epoch   optional; refused while > now
 *   acl   array of at most HF_AUTH_ACL_MAX strings (each at most
 *         HF_ADDR_MAX bytes): the address patterns the holder may call or
 *         subscribe                         optional; absent = no restriction
 * Other claims are ignored. A key repeated in the header or the claims
 * refuses the token. A token whose header names any algorithm but
 * HS256 ("none", HS384, HS512, RS256...) is refused whatever its
 * signature, so a token cannot pick its own verification rule.
 *
 * With auth off (no secret configured) the gateway uses
 * hf_auth_anonymous(), which may reach everything.
 *
 * Ownership: an hf_principal is a plain value owned by the caller (usually
 * embedded in a connection); it holds no pointers and may be copied with
 * '='. Strings passed in are borrowed for the duration of the call only.
 *
 * Threads: every function here is safe from any thread at once. There is
 * no global state; hf_auth_verify and hf_auth_mint use libjwt, jansson and
 * OpenSSL, which are thread-safe for these calls.
 */
#ifndef HF_TRANSPORT_AUTH_H
#define HF_TRANSPORT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/actor.h" /* enum hf_role */
#include "core/addr.h"  /* HF_ADDR_MAX */
#include "core/err.h"

#define HF_AUTH_ACL_MAX 32
#define HF_AUTH_SUB_MAX 128 /* bytes in a subject */
/* Display claims passed on to kinds (hf_caller_claim): a longer one, or
 * one that is not a string without control characters, is left out. */
#define HF_AUTH_NAME_MAX    128
#define HF_AUTH_PICTURE_MAX 1024
/* Longest token accepted, in bytes. A token carrying the longest subject
 * and HF_AUTH_ACL_MAX patterns of HF_ADDR_MAX bytes is about 7.4 KiB. */
#define HF_AUTH_TOKEN_MAX 8192

typedef struct hf_principal {
    char sub[HF_AUTH_SUB_MAX + 1]; /* subject ("" = anonymous) */
    unsigned role;                 /* HF_ROLE_* bits (one from a token) */
    int64_t exp;                   /* expiry, s since the epoch; 0 = none */
    int nacl; /* -1 = no acl claim (no pattern restriction), else count */
    char acl[HF_AUTH_ACL_MAX][HF_ADDR_MAX + 1]; /* address patterns */
    char name[HF_AUTH_NAME_MAX + 1];       /* "name" claim, "" = none */
    char picture[HF_AUTH_PICTURE_MAX + 1]; /* "picture" claim, "" = none */
} hf_principal;

/* hf_auth_verify flags. */
#define HF_AUTH_ALLOW_NO_EXP 1u /* a token without "exp" is accepted */

/*
 * Verifies token (token_len bytes, need not be NUL-terminated) against
 * secret (a NUL-terminated, non-empty HMAC key) at time now_s (seconds since
 * the epoch; injected so tests control the clock) and fills *p.
 *
 * Returns 0, or HF_EUNAUTH when: secret is NULL or empty; the token is
 * empty, longer than HF_AUTH_TOKEN_MAX, not three base64url segments, or
 * not JSON inside; the signature does not verify; the algorithm is not
 * HS256; it is expired (exp <= now_s), has no exp and flags lack
 * HF_AUTH_ALLOW_NO_EXP, or is not yet valid (nbf > now_s); a key is
 * repeated; or a claim is missing or mistyped as listed at the top of
 * this file.
 *
 * On error *p is set to a principal that may reach nothing (sub "",
 * role 0, nacl 0), so a caller that ignores the result still fails closed.
 * The expiry is checked once, here; a long-lived connection that must end
 * when its token does compares p->exp with the clock itself.
 */
int hf_auth_verify(const char *secret, const char *token, size_t token_len,
                   int64_t now_s, unsigned flags, hf_principal *p);

/* The principal used when auth is off: subject sub (NULL or "": the string
 * "anonymous"; cut to HF_AUTH_SUB_MAX bytes), every role bit
 * (user|admin|device|service, not actor), no expiry, no acl. */
void hf_auth_anonymous(hf_principal *p, const char *sub);

/*
 * May p call or subscribe to addr (len bytes, need not be NUL-terminated)?
 * Returns 0 or HF_EFORBIDDEN (also for NULL arguments). Both rules must
 * pass:
 * 1. When p->nacl >= 0, addr matches one of p->acl: '*' matches any run of
 *    bytes (none included, '/' included), every other byte matches itself:
 *    "store/gangnam-*" matches "store/gangnam-1" but not "store/gangbuk-1";
 *    "*" matches everything; a pattern of "device/" and a star, every
 *    device. nacl == 0: nothing.
 * 2. "user/{name}" is reachable only when p->sub is non-empty and equals
 *    name, or p has HF_ROLE_ADMIN or HF_ROLE_SERVICE. This holds even when
 *    an acl pattern matches.
 * Matching is O(len * pattern length) in the worst case, never
 * exponential, and allocates nothing, so patterns taken from a token
 * cannot be used to stall a worker.
 */
int hf_auth_allows(const hf_principal *p, const char *addr, size_t len);

/* The bit for a role name: "user", "admin", "device", "service" (exact,
 * lowercase). 0 for anything else, NULL and "actor" included: the actor
 * role is given by the engine, never by a token. */
unsigned hf_auth_role_bit(const char *name);

/*
 * Mints an HS256 token (for tests, the CLI and the bench) signed with
 * secret, with claims sub and role (each omitted when NULL), exp (when
 * exp_s > 0) and acl (when acl != NULL: a NULL-terminated list of patterns;
 * an empty list gives an empty array, which reaches nothing).
 * Returns a malloc'd NUL-terminated string that the caller frees with
 * free(), or NULL (secret NULL or empty, out of memory). Mint does not
 * check the claims: it can make tokens that hf_auth_verify refuses.
 */
char *hf_auth_mint(const char *secret, const char *sub, const char *role,
                   int64_t exp_s, const char *const *acl);

/* hf_auth_mint with more claims: extra_json (may be NULL) is a JSON
 * object whose members are added, e.g. {"name":"Kim","picture":"…"}. */
char *hf_auth_mint_ex(const char *secret, const char *sub, const char *role,
                      int64_t exp_s, const char *const *acl,
                      const char *extra_json);

#endif
