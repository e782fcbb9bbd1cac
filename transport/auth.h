/*
 * auth.h - who is calling, and may they reach an address (DESIGN §6).
 *
 * A client proves who it is with a JWT. The server verifies it with what
 * the operator configured (struct hf_auth_opts): an HMAC secret for
 * HS256/384/512 tokens, and/or RSA and EC public keys for RS256/384/512
 * and ES256/384 tokens, from one PEM file or a JWKS document whose "kid"
 * picks the key (transport/jwk.h). The token's header cannot choose how it
 * is verified: the key is found by the algorithm's family (HS: the
 * secret; RS, ES: a public key) and then must allow that algorithm by its
 * own type, so an RSA public key is never used as an HMAC secret; "none"
 * is never accepted. HMAC signatures are compared by libjwt's time-safe
 * jwt_strcmp (the whole length, whatever the first difference).
 *
 * Its claims become an hf_principal:
 *   sub   string, 1..128 bytes              required
 *   role  "user" | "admin" | "device" | "service", or an array of them
 *         (each known one adds its role)    optional: absent = "user";
 *         read from opts.role_claim instead when set, a dotted path
 *         ("app_metadata.role") unless a top-level claim has that name
 *   exp   integer seconds since the epoch   required (unless
 *         HF_AUTH_ALLOW_NO_EXP); expired when exp + leeway <= now
 *   nbf   integer seconds since the epoch   optional; refused while
 *         nbf - leeway > now
 *   iss   string                            must equal opts.issuer when set
 *   aud   string or array of strings        must hold opts.audience when set
 *   acl   array of at most HF_AUTH_ACL_MAX strings (each at most
 *         HF_ADDR_MAX bytes): the address patterns the holder may call or
 *         subscribe                         optional; absent = no restriction
 * Other claims are ignored. A key repeated in the header or the claims
 * refuses the token.
 *
 * With auth off (nothing configured) the gateway uses hf_auth_anonymous(),
 * which may reach everything.
 *
 * Ownership: an hf_principal is a plain value owned by the caller (usually
 * embedded in a connection); it holds no pointers and may be copied with
 * '='. Strings passed in are borrowed for the duration of the call only.
 * An hf_auth is opened and closed by one owner (the gateway).
 *
 * Threads: hf_auth_check, hf_auth_verify and every function below them
 * are safe from any thread at once, also while hf_auth_reload runs on
 * another (a check uses the key set it started with, which lives until
 * the last check using it ends). libjwt, jansson and OpenSSL are
 * thread-safe for these calls.
 */
#ifndef HF_TRANSPORT_AUTH_H
#define HF_TRANSPORT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/actor.h" /* enum hf_role */
#include "core/addr.h"  /* HF_ADDR_MAX */
#include "core/err.h"
#include "transport/jwk.h"

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

/* hf_auth_opts.flags. */
#define HF_AUTH_ALLOW_NO_EXP 1u /* a token without "exp" is accepted */

/* How tokens are verified. Strings may be NULL or "" for "not set"; they
 * are copied by hf_auth_open. */
struct hf_auth_opts {
    const char *secret;     /* HMAC key: HS256/384/512 tokens */
    const char *key_file;   /* PEM public key: RS/ES tokens */
    const char *jwks_file;  /* JWKS: RS/ES tokens, by kid */
    const char *issuer;     /* required "iss" */
    const char *audience;   /* required member of "aud" */
    const char *role_claim; /* where the role is ("" = "role") */
    int leeway_s;           /* clock skew allowed on exp and nbf */
    unsigned flags;         /* HF_AUTH_ALLOW_NO_EXP */
};

typedef struct hf_auth hf_auth;

/* Builds a verifier, reading the key files. 0 and *out, or -1 with why
 * (at most n bytes) naming the file and what is wrong with it. With
 * nothing to verify with (no secret, no key, no JWKS), 0 and *out NULL:
 * auth is off. */
int hf_auth_open(hf_auth **out, const struct hf_auth_opts *o, char *why,
                 size_t n);

/* Re-reads the key files (on SIGHUP). 0: the new keys are in use; -1 with
 * why: a file did not load, and the keys in use stay. Not to be called
 * from two threads at once. */
int hf_auth_reload(hf_auth *a, char *why, size_t n);

/* NULL is fine; no check may be running. */
void hf_auth_close(hf_auth *a);

/*
 * Verifies token (token_len bytes, need not be NUL-terminated) at time
 * now_s (seconds since the epoch; injected so tests control the clock)
 * and fills *p. Returns 0, or HF_EUNAUTH with *why (a static string, may
 * be shown to the client) telling the developer what to fix: the token is
 * empty, too long (HF_AUTH_TOKEN_MAX), not three base64url segments or
 * not JSON inside; it names no algorithm, "none", or one this server has
 * no key for; its kid is unknown; the key's type does not allow its
 * algorithm; the signature does not verify; it is expired, has no exp
 * (without HF_AUTH_ALLOW_NO_EXP) or is not yet valid; its issuer or
 * audience is not the configured one; a key is repeated; or a claim is
 * missing or mistyped as listed at the top of this file. The reason never
 * says where a signature differs.
 *
 * On error *p is set to a principal that may reach nothing (sub "",
 * role 0, nacl 0), so a caller that ignores the result still fails closed.
 * The expiry is checked once, here; a long-lived connection that must end
 * when its token does compares p->exp (the token's own exp) with the
 * clock itself, allowing hf_auth_leeway().
 */
int hf_auth_check(hf_auth *a, const char *token, size_t token_len,
                  int64_t now_s, hf_principal *p, const char **why);

/* The configured leeway, seconds (0 for NULL). */
int hf_auth_leeway(const hf_auth *a);

/*
 * hf_auth_check with only an HMAC secret (NUL-terminated, non-empty), no
 * issuer, audience or leeway, and the given flags; for the tests, the
 * fuzz targets and callers without a verifier. Returns as hf_auth_check;
 * HF_EUNAUTH for a NULL or empty secret.
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
