/*
 * jwk.c - see jwk.h.
 *
 * Design notes. Every key, whatever file it came from, goes through one
 * path (add_key): an OpenSSL EVP_PKEY is checked for what holdfast
 * verifies with it and kept. The algorithms a key may verify are fixed
 * here, by its type, so no token can ask for an RSA public key to be used
 * as an HMAC secret.
 *
 * Signatures are checked here with that EVP_PKEY (EVP_DigestVerify), not
 * by libjwt: libjwt 1.10 takes RS and ES keys only as PEM text and parses
 * it again for every token, which through OpenSSL 3's decoders cost about
 * 1 ms of a gateway thread per RS256 token and 2 ms per ES256 one (against
 * 19 us for HS256). Parsed once, a verification is the public-key
 * operation alone. The one conversion JOSE needs is an ES signature's raw
 * r||s into the DER ECDSA-Sig-Value OpenSSL verifies.
 */
#include "transport/jwk.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/oom.h"
#include "core/vec.h"

#define RSA_MIN_BITS 2048

struct hf_jwk_set {
    struct hf_jwk *keys;
    size_t n, cap;
};

static int
fail(char *why, size_t n, const char *fmt, const char *arg)
{
    snprintf(why, n, fmt, arg);
    return -1;
}

long
hf_b64url_decode(const char *s, size_t n, unsigned char *out)
{
    unsigned char *in;
    size_t m = 0;
    int len;

    if (n % 4 == 1)
        return -1; /* encodes no whole byte */
    in = hf_xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                   (c >= '0' && c <= '9'))) {
            free(in);
            return -1;
        }
        in[m++] = c;
    }
    while (m % 4 != 0)
        in[m++] = '=';
    len = m > 0 ? EVP_DecodeBlock(out, in, (int)m) : 0;
    /* EVP_DecodeBlock counts the padding's zero bytes in. */
    for (size_t i = m; len >= 0 && i > 0 && in[i - 1] == '='; i--)
        len--;
    free(in);
    return len;
}

/* The curve's name as JOSE spells it, from OpenSSL's group name. */
static const char *
curve_of(EVP_PKEY *pk, int *bits)
{
    char g[64];

    *bits = EVP_PKEY_get_bits(pk);
    if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g,
                                        sizeof(g), NULL))
        return NULL;
    if (strcmp(g, "prime256v1") == 0 || strcmp(g, "P-256") == 0)
        return "P-256";
    if (strcmp(g, "secp384r1") == 0 || strcmp(g, "P-384") == 0)
        return "P-384";
    return NULL;
}

/* Checks pk for what holdfast verifies with it and appends it to s.
 * Takes pk's reference either way. */
static int
add_key(hf_jwk_set *s, const char *kid, EVP_PKEY *pk, jwt_alg_t alg,
        char *why, size_t n)
{
    struct hf_jwk k = {.alg = alg};
    EVP_PKEY_CTX *cx = NULL;
    int rv = -1, bits;

    snprintf(k.kid, sizeof(k.kid), "%s", kid);
    if (EVP_PKEY_is_a(pk, "RSA")) {
        k.rsa = 1;
        if (EVP_PKEY_get_bits(pk) < RSA_MIN_BITS) {
            fail(why, n, "key '%s': RSA keys under 2048 bits are refused",
                 kid);
            goto done;
        }
        k.sig_len = (size_t)EVP_PKEY_get_size(pk);
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        const char *crv = curve_of(pk, &bits);
        if (crv == NULL) {
            fail(why, n, "key '%s': EC keys must be on P-256 or P-384", kid);
            goto done;
        }
        k.ec_alg = bits == 256 ? JWT_ALG_ES256 : JWT_ALG_ES384;
        k.sig_len = 2 * (size_t)(bits / 8);
    } else {
        fail(why, n, "key '%s': only RSA and EC public keys verify tokens",
             kid);
        goto done;
    }
    if (alg != JWT_ALG_NONE && !hf_jwk_allows(&k, alg)) {
        fail(why, n, "key '%s': its \"alg\" does not fit its type", kid);
        goto done;
    }
    cx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (cx == NULL || EVP_PKEY_public_check(cx) != 1) {
        fail(why, n, "key '%s': not a valid public key", kid);
        goto done;
    }
    k.pkey = pk;
    pk = NULL; /* the set's now */
    HF_VEC_PUSH(s->keys, s->n, s->cap, 4, k);
    rv = 0;
done:
    EVP_PKEY_CTX_free(cx);
    EVP_PKEY_free(pk);
    return rv;
}

int
hf_jwk_load_pem(hf_jwk_set **out, const char *path, char *why, size_t n)
{
    hf_jwk_set *s = hf_xcalloc(1, sizeof(*s));
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *pk = NULL;
    X509 *x = NULL;

    *out = NULL;
    if (b == NULL) {
        hf_jwk_set_free(s);
        return fail(why, n, "cannot read %s", path);
    }
    pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    if (pk == NULL) {
        (void)BIO_reset(b);
        if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
            pk = X509_get_pubkey(x);
    }
    X509_free(x);
    BIO_free(b);
    if (pk == NULL) {
        hf_jwk_set_free(s);
        return fail(why, n,
                    "%s holds no PEM public key (BEGIN PUBLIC KEY) or "
                    "certificate",
                    path);
    }
    if (add_key(s, "", pk, JWT_ALG_NONE, why, n) != 0) {
        hf_jwk_set_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* A base64url member of a JWK as a big-endian number, into a malloc'd
 * buffer; NULL when missing or malformed. */
static unsigned char *
member(json_t *k, const char *name, size_t *len)
{
    json_t *v = json_object_get(k, name);
    const char *s;
    unsigned char *out;
    long m;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    s = json_string_value(v);
    out = hf_xmalloc(json_string_length(v) * 3 / 4 + 3);
    m = hf_b64url_decode(s, json_string_length(v), out);
    if (m <= 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)m;
    return out;
}

/* A key from fromdata parameters of type name ("RSA" or "EC"). */
static EVP_PKEY *
from_params(const char *name, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *cx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    EVP_PKEY *pk = NULL;

    if (params == NULL || cx == NULL || EVP_PKEY_fromdata_init(cx) != 1 ||
        EVP_PKEY_fromdata(cx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(cx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *
rsa_jwk(json_t *k)
{
    size_t nl = 0, el = 0;
    unsigned char *nb = member(k, "n", &nl), *eb = member(k, "e", &el);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn = NULL, *be = NULL;
    EVP_PKEY *pk = NULL;

    if (nb != NULL && eb != NULL && bld != NULL &&
        (bn = BN_bin2bn(nb, (int)nl, NULL)) != NULL &&
        (be = BN_bin2bn(eb, (int)el, NULL)) != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pk = from_params("RSA", bld);
    BN_free(bn);
    BN_free(be);
    OSSL_PARAM_BLD_free(bld);
    free(nb);
    free(eb);
    return pk;
}

/* An EC JWK on crv (already known to be P-256 or P-384). */
static EVP_PKEY *
ec_jwk(json_t *k, const char *crv)
{
    size_t flen = strcmp(crv, "P-256") == 0 ? 32 : 48, xl = 0, yl = 0;
    unsigned char *x = member(k, "x", &xl), *y = member(k, "y", &yl);
    unsigned char pt[1 + 2 * 48];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;

    /* The uncompressed point: 0x04 || x || y, each exactly field bytes. */
    if (x != NULL && y != NULL && bld != NULL && xl == flen && yl == flen) {
        pt[0] = 0x04;
        memcpy(pt + 1, x, flen);
        memcpy(pt + 1 + flen, y, flen);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            crv, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                             1 + 2 * flen))
            pk = from_params("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pk;
}

/* One entry of "keys": 0 added, 1 skipped (not for holdfast), -1 broken. */
static int
jwks_entry(hf_jwk_set *s, json_t *k, size_t i, char *why, size_t n)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *alg = json_string_value(json_object_get(k, "alg"));
    const char *crv = json_string_value(json_object_get(k, "crv"));
    char name[HF_JWK_KID_MAX + 32];
    jwt_alg_t a = JWT_ALG_NONE;
    EVP_PKEY *pk;

    snprintf(name, sizeof(name), "#%zu", i);
    if (!json_is_object(k) || kty == NULL)
        return fail(why, n, "key %s: not an object with a \"kty\"", name);
    if (kid != NULL) {
        if (strlen(kid) == 0 || strlen(kid) > HF_JWK_KID_MAX)
            return fail(why, n, "key %s: \"kid\" must be 1..128 bytes", name);
        snprintf(name, sizeof(name), "%s", kid);
    }
    if (hf_jwk_find(s, kid != NULL ? kid : "") != NULL)
        return fail(why, n, "key '%s': two keys with one kid", name);
    if ((use != NULL && strcmp(use, "sig") != 0) ||
        (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0) ||
        (strcmp(kty, "EC") == 0 && crv != NULL &&
         strcmp(crv, "P-256") != 0 && strcmp(crv, "P-384") != 0)) {
        hf_warn("auth", "JWKS key '%s' skipped: not an RSA, P-256 or P-384 "
                        "signing key",
                name);
        return 1;
    }
    if (alg != NULL) {
        a = jwt_str_alg(alg);
        if (a == JWT_ALG_INVAL || a == JWT_ALG_NONE)
            return fail(why, n, "key '%s': unknown \"alg\"", name);
    }
    if (strcmp(kty, "RSA") == 0)
        pk = rsa_jwk(k);
    else if (crv == NULL)
        return fail(why, n, "key '%s': an EC key needs \"crv\"", name);
    else
        pk = ec_jwk(k, crv);
    if (pk == NULL)
        return fail(why, n,
                    "key '%s': members missing or not base64url (RSA: n, e; "
                    "EC: x, y of the curve's size), or not a point of the "
                    "curve",
                    name);
    return add_key(s, kid != NULL ? kid : "", pk, a, why, n);
}

int
hf_jwk_load_jwks(hf_jwk_set **out, const char *path, char *why, size_t n)
{
    hf_jwk_set *s = hf_xcalloc(1, sizeof(*s));
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *keys;
    int rv = -1;

    *out = NULL;
    if (doc == NULL) {
        char line[64];
        snprintf(line, sizeof(line), "%d", je.line);
        snprintf(why, n, "%s is not JSON (line %s: %s)", path, line, je.text);
        goto done;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        fail(why, n, "%s: a JWKS is an object with a \"keys\" array", path);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(keys); i++)
        if (jwks_entry(s, json_array_get(keys, i), i, why, n) < 0)
            goto done;
    if (s->n == 0) {
        fail(why, n, "%s has no RSA or EC (P-256, P-384) signing key", path);
        goto done;
    }
    rv = 0;
    *out = s;
    s = NULL;
done:
    json_decref(doc);
    hf_jwk_set_free(s);
    return rv;
}

const struct hf_jwk *
hf_jwk_find(const hf_jwk_set *s, const char *kid)
{
    if (s == NULL)
        return NULL;
    if (kid == NULL)
        return s->n == 1 ? &s->keys[0] : NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].kid, kid) == 0)
            return &s->keys[i];
    return NULL;
}

size_t
hf_jwk_count(const hf_jwk_set *s)
{
    return s != NULL ? s->n : 0;
}

int
hf_jwk_allows(const struct hf_jwk *k, jwt_alg_t alg)
{
    int fits = k->rsa ? (alg == JWT_ALG_RS256 || alg == JWT_ALG_RS384 ||
                         alg == JWT_ALG_RS512)
                      : alg == k->ec_alg;
    return fits && (k->alg == JWT_ALG_NONE || k->alg == alg);
}

int
hf_jwk_verify(const struct hf_jwk *k, jwt_alg_t alg, const void *data,
              size_t len, const unsigned char *sig, size_t siglen)
{
    const EVP_MD *md = alg == JWT_ALG_RS256 || alg == JWT_ALG_ES256
                           ? EVP_sha256()
                       : alg == JWT_ALG_RS384 || alg == JWT_ALG_ES384
                           ? EVP_sha384()
                           : EVP_sha512();
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    int ok = 0, dlen;

    if (mc == NULL || siglen != k->sig_len)
        goto done;
    if (!k->rsa) {
        /* JOSE: r || s, each the field's size; OpenSSL: DER. */
        size_t h = siglen / 2;
        BIGNUM *r = BN_bin2bn(sig, (int)h, NULL);
        BIGNUM *sv = BN_bin2bn(sig + h, (int)h, NULL);
        if ((es = ECDSA_SIG_new()) == NULL || r == NULL || sv == NULL ||
            !ECDSA_SIG_set0(es, r, sv)) {
            BN_free(r);
            BN_free(sv);
            goto done;
        }
        if ((dlen = i2d_ECDSA_SIG(es, &der)) <= 0)
            goto done;
        sig = der;
        siglen = (size_t)dlen;
    }
    ok = EVP_DigestVerifyInit(mc, NULL, md, NULL, k->pkey) == 1 &&
         EVP_DigestVerify(mc, sig, siglen, data, len) == 1;
done:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(mc);
    return ok;
}

void
hf_jwk_set_free(hf_jwk_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        EVP_PKEY_free(s->keys[i].pkey);
    free(s->keys);
    free(s);
}
