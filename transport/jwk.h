/*
 * jwk.h - public keys that verify tokens: one PEM file (--jwt-key) or a
 * JWKS document (--jwks), turned into keys libjwt can use.
 *
 * A key set is a list of RSA and EC public keys, each with its kid (the
 * JWKS "kid", "" for a PEM file), the algorithms it may verify (pinned by
 * its type: RSA -> RS256/384/512; EC P-256 -> ES256; EC P-384 -> ES384;
 * narrowed to one by a JWK's "alg"), and the OpenSSL key itself, parsed
 * once. A JWK (RSA n/e, EC crv/x/y) becomes an OpenSSL key through
 * EVP_PKEY_fromdata and is checked (an EC point must lie on its curve;
 * RSA moduli are at least 2048 bits). hf_jwk_verify checks a signature
 * with it (see jwk.c for why not libjwt).
 *
 * A JWKS entry that is not for signatures ("use" other than "sig") or of
 * a type holdfast does not verify (oct, OKP, P-521) is skipped with a
 * warning; an entry that claims a supported type but is malformed (bad
 * base64url, a missing member, a point off the curve) refuses the whole
 * document, as does a document without a usable key or with two keys of
 * one kid: the operator's file is broken and should be fixed, not half
 * used.
 *
 * Ownership: a set is built by one load call and freed with
 * hf_jwk_set_free; the keys it returns live as long as the set. A set is
 * immutable once built, so any number of threads may use it at once.
 */
#ifndef HF_TRANSPORT_JWK_H
#define HF_TRANSPORT_JWK_H

#include <jwt.h>
#include <stddef.h>

#define HF_JWK_KID_MAX 128 /* bytes of a kid */

struct hf_jwk {
    char kid[HF_JWK_KID_MAX + 1]; /* "" for a PEM file's key */
    int rsa;                      /* 1 RSA, 0 EC */
    jwt_alg_t alg;                /* one algorithm, or JWT_ALG_NONE = any
                                     of the type's */
    jwt_alg_t ec_alg;             /* EC: ES256 or ES384 (by curve) */
    size_t sig_len;               /* signature bytes: RSA modulus bytes,
                                     EC 2 x field bytes */
    void *pkey;                   /* EVP_PKEY, read-only once loaded */
};

typedef struct hf_jwk_set hf_jwk_set;

/* Loads a PEM public key ("PUBLIC KEY", or a "CERTIFICATE" whose key is
 * taken) from path. 0 and *out, or -1 with why (at most n bytes) saying
 * what is wrong with the file. */
int hf_jwk_load_pem(hf_jwk_set **out, const char *path, char *why, size_t n);

/* Loads a JWKS document ({"keys": [...]}) from path; as above. */
int hf_jwk_load_jwks(hf_jwk_set **out, const char *path, char *why,
                     size_t n);

/* The key with kid (NUL-terminated), or NULL. kid NULL: the set's only
 * key when it has exactly one, else NULL. */
const struct hf_jwk *hf_jwk_find(const hf_jwk_set *s, const char *kid);

/* Keys in the set. */
size_t hf_jwk_count(const hf_jwk_set *s);

/* May key verify alg? Its type and its own alg decide. */
int hf_jwk_allows(const struct hf_jwk *k, jwt_alg_t alg);

/* Does sig (siglen bytes, as JOSE has it: PKCS#1 v1.5 for RS, raw r||s
 * for ES) sign data (len bytes) under k with alg? 1 or 0. The caller has
 * checked hf_jwk_allows(k, alg). Safe from any thread at once. */
int hf_jwk_verify(const struct hf_jwk *k, jwt_alg_t alg, const void *data,
                  size_t len, const unsigned char *sig, size_t siglen);

/* NULL is fine. */
void hf_jwk_set_free(hf_jwk_set *s);

/* base64url (no padding, '=' refused) of s[0..n) into out (room for
 * n * 3 / 4 + 3 bytes). Returns the decoded length, or -1 when s is not
 * base64url. Shared with auth.c, which decodes token segments. */
long hf_b64url_decode(const char *s, size_t n, unsigned char *out);

#endif
