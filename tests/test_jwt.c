/*
 * test_jwt.c - tokens the apps people run already have: HS256/384/512,
 * RS256/384/512 and ES256/384 from a PEM key or a JWKS document, issuer,
 * audience, leeway, the role claim (transport/auth.h, transport/jwk.h);
 * and, against the real server, a JWKS re-read on SIGHUP.
 *
 * Every key is made here with OpenSSL and every token signed here with
 * libjwt from the private key; a JWKS is written from the public key's
 * numbers (n, e; x, y), as an identity provider publishes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "transport/auth.h"
#include "wsh.h"

#define NOW INT64_C(1700000000)

/* ------------------------------------------------------------------ */
/* keys, JWKS documents and tokens                                     */

struct key {
    EVP_PKEY *pk;
    char *priv; /* PEM, for libjwt to sign with */
    char *pub;  /* PEM */
    char kid[32];
    json_t *jwk;
};

static char dir[256];

static char *
pem_of(EVP_PKEY *pk, int priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_non_null(b);
    assert_true(priv ? PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL,
                                                NULL)
                     : PEM_write_bio_PUBKEY(b, pk));
    n = BIO_get_mem_data(b, &data);
    out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static json_t *
b64url_json(const unsigned char *p, size_t n)
{
    char *out = malloc(n * 4 / 3 + 8);
    int m = EVP_EncodeBlock((unsigned char *)out, p, (int)n);

    while (m > 0 && out[m - 1] == '=')
        m--;
    out[m] = '\0';
    for (int i = 0; i < m; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    json_t *s = json_string(out);
    free(out);
    return s;
}

/* A BIGNUM parameter as base64url, padded to pad bytes (0: as is). */
static json_t *
bn_json(EVP_PKEY *pk, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    assert_true(EVP_PKEY_get_bn_param(pk, param, &bn));
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url_json(buf, (size_t)n);
}

/* type: "RSA" (2048 bits), "RSA1024", "P-256" or "P-384". */
static void
key_new(struct key *k, const char *type, const char *kid)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    if (strncmp(type, "RSA", 3) == 0)
        k->pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
                                  (size_t)(type[3] ? 1024 : 2048));
    else
        k->pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", type);
    assert_non_null(k->pk);
    k->priv = pem_of(k->pk, 1);
    k->pub = pem_of(k->pk, 0);
    k->jwk = json_object();
    json_object_set_new(k->jwk, "kid", json_string(kid));
    json_object_set_new(k->jwk, "use", json_string("sig"));
    if (strncmp(type, "RSA", 3) == 0) {
        json_object_set_new(k->jwk, "kty", json_string("RSA"));
        json_object_set_new(k->jwk, "n", bn_json(k->pk, OSSL_PKEY_PARAM_RSA_N, 0));
        json_object_set_new(k->jwk, "e", bn_json(k->pk, OSSL_PKEY_PARAM_RSA_E, 0));
    } else {
        int f = strcmp(type, "P-256") == 0 ? 32 : 48;
        json_object_set_new(k->jwk, "kty", json_string("EC"));
        json_object_set_new(k->jwk, "crv", json_string(type));
        json_object_set_new(k->jwk, "x", bn_json(k->pk, OSSL_PKEY_PARAM_EC_PUB_X, f));
        json_object_set_new(k->jwk, "y", bn_json(k->pk, OSSL_PKEY_PARAM_EC_PUB_Y, f));
    }
}

static void
key_free(struct key *k)
{
    EVP_PKEY_free(k->pk);
    free(k->priv);
    free(k->pub);
    json_decref(k->jwk);
}

/* Writes text to dir/name; returns the path (static buffer per slot). */
static const char *
put_file(const char *name, const char *text)
{
    static char paths[4][300];
    static int slot;
    char *p = paths[slot++ % 4];
    FILE *f;

    snprintf(p, 300, "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A JWKS of the keys (NULL-terminated) written to dir/name. */
static const char *
put_jwks(const char *name, struct key **keys)
{
    json_t *doc = json_object(), *arr = json_array();
    char *text;
    const char *p;

    for (size_t i = 0; keys[i] != NULL; i++)
        json_array_append(arr, keys[i]->jwk);
    json_object_set_new(doc, "keys", arr);
    text = json_dumps(doc, JSON_COMPACT);
    p = put_file(name, text);
    free(text);
    json_decref(doc);
    return p;
}

/* A token of claims (JSON text) signed by k with alg; kid in the header
 * unless NULL. k NULL: HS alg with the secret. */
static char *
sign(const struct key *k, const char *secret, jwt_alg_t alg, const char *kid,
     const char *claims)
{
    jwt_t *j = NULL;
    const char *key = k ? k->priv : secret;
    char *tok;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    if (kid != NULL)
        assert_int_equal(jwt_add_header(j, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key,
                                 (int)strlen(key)),
                     0);
    tok = jwt_encode_str(j);
    assert_non_null(tok);
    jwt_free(j);
    return tok;
}

#define CLAIMS "{\"sub\":\"kim\",\"role\":\"admin\",\"exp\":1700000600}"

/* Checks tok with a; want 0, or HF_EUNAUTH with a reason holding frag. */
static void
check(hf_auth *a, const char *tok, const char *frag)
{
    hf_principal p;
    const char *why = NULL;
    int rc = hf_auth_check(a, tok, strlen(tok), NOW, &p, &why);

    if (frag == NULL) {
        if (rc != 0)
            fail_msg("refused: %s", why);
        return;
    }
    assert_int_equal(rc, HF_EUNAUTH);
    assert_int_equal(p.role, 0);
    if (strstr(why, frag) == NULL)
        fail_msg("reason '%s' lacks '%s'", why, frag);
}

/* check() on a token signed here, which it frees. */
static void
check_signed(hf_auth *a, char *tok, const char *frag)
{
    check(a, tok, frag);
    free(tok);
}

static hf_auth *
open_auth(const struct hf_auth_opts *o)
{
    hf_auth *a = NULL;
    char why[256];

    if (hf_auth_open(&a, o, why, sizeof(why)) != 0)
        fail_msg("hf_auth_open: %s", why);
    assert_non_null(a);
    return a;
}

static int
setup(void **state)
{
    const char *tmp = getenv("HF_TEST_TMP");
    (void)state;
    snprintf(dir, sizeof(dir), "%s/jwt-XXXXXX", tmp ? tmp : "/tmp");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* public keys                                                         */

static void
test_rs256_384_512_from_a_pem_key(void **state)
{
    struct key r, e;
    hf_auth *a;
    hf_principal p;
    const char *why;
    (void)state;

    key_new(&r, "RSA", "r");
    key_new(&e, "P-256", "e");
    a = open_auth(&(struct hf_auth_opts){
        .key_file = put_file("rsa.pem", r.pub)});
    char *tok = sign(&r, NULL, JWT_ALG_RS256, NULL, CLAIMS);
    assert_int_equal(hf_auth_check(a, tok, strlen(tok), NOW, &p, &why), 0);
    assert_string_equal(p.sub, "kim");
    assert_int_equal(p.role, HF_ROLE_ADMIN);
    assert_int_equal(p.exp, 1700000600);
    free(tok);
    check_signed(a, sign(&r, NULL, JWT_ALG_RS384, NULL, CLAIMS), NULL);
    check_signed(a, sign(&r, NULL, JWT_ALG_RS512, "any-kid", CLAIMS), NULL);
    /* Another key's signature, an EC token, an HS token: all refused. */
    check_signed(a, sign(&e, NULL, JWT_ALG_ES256, NULL, CLAIMS),
                 "wrong algorithm");
    check_signed(a, sign(NULL, "a-secret", JWT_ALG_HS256, NULL, CLAIMS),
                 "HS256/384/512 tokens are not accepted");
    hf_auth_close(a);
    key_free(&r);
    key_free(&e);
}

static void
test_es256_es384_from_a_pem_key(void **state)
{
    struct key e256, e384, other;
    hf_auth *a, *b;
    (void)state;

    key_new(&e256, "P-256", "a");
    key_new(&e384, "P-384", "b");
    key_new(&other, "P-256", "c");
    a = open_auth(&(struct hf_auth_opts){
        .key_file = put_file("p256.pem", e256.pub)});
    b = open_auth(&(struct hf_auth_opts){
        .key_file = put_file("p384.pem", e384.pub)});
    check_signed(a, sign(&e256, NULL, JWT_ALG_ES256, NULL, CLAIMS), NULL);
    check_signed(b, sign(&e384, NULL, JWT_ALG_ES384, NULL, CLAIMS), NULL);
    /* The curve pins the algorithm. */
    check_signed(b, sign(&e384, NULL, JWT_ALG_ES256, NULL, CLAIMS),
                 "wrong algorithm");
    check_signed(a, sign(&other, NULL, JWT_ALG_ES256, NULL, CLAIMS),
                 "bad signature");
    hf_auth_close(a);
    hf_auth_close(b);
    key_free(&e256);
    key_free(&e384);
    key_free(&other);
}

static void
test_jwks_kid_picks_the_key(void **state)
{
    struct key r, e, e3, stranger;
    hf_auth *a;
    (void)state;

    key_new(&r, "RSA", "r1");
    key_new(&e, "P-256", "e1");
    key_new(&e3, "P-384", "e2");
    key_new(&stranger, "RSA", "r1");
    a = open_auth(&(struct hf_auth_opts){
        .jwks_file = put_jwks("keys.json", (struct key *[]){&r, &e, &e3, NULL})});
    check_signed(a, sign(&r, NULL, JWT_ALG_RS256, "r1", CLAIMS), NULL);
    check_signed(a, sign(&e, NULL, JWT_ALG_ES256, "e1", CLAIMS), NULL);
    check_signed(a, sign(&e3, NULL, JWT_ALG_ES384, "e2", CLAIMS), NULL);
    check_signed(a, sign(&r, NULL, JWT_ALG_RS256, "r9", CLAIMS),
                 "unknown kid");
    check_signed(a, sign(&r, NULL, JWT_ALG_RS256, NULL, CLAIMS), "no kid");
    /* r1's token claiming to be e1's: RS256 with an EC key. */
    check_signed(a, sign(&r, NULL, JWT_ALG_RS256, "e1", CLAIMS),
                 "wrong algorithm");
    /* Someone else's key under a known kid. */
    check_signed(a, sign(&stranger, NULL, JWT_ALG_RS256, "r1", CLAIMS),
                 "bad signature");
    hf_auth_close(a);

    /* A JWK's own "alg" narrows its key further; one key needs no kid. */
    json_object_set_new(r.jwk, "alg", json_string("RS384"));
    a = open_auth(&(struct hf_auth_opts){
        .jwks_file = put_jwks("one.json", (struct key *[]){&r, NULL})});
    check_signed(a, sign(&r, NULL, JWT_ALG_RS384, NULL, CLAIMS), NULL);
    check_signed(a, sign(&r, NULL, JWT_ALG_RS256, "r1", CLAIMS),
                 "wrong algorithm");
    hf_auth_close(a);
    key_free(&r);
    key_free(&e);
    key_free(&e3);
    key_free(&stranger);
}

/* The classic confusion: the RSA public key's PEM used as an HMAC secret
 * on an HS256 token. The key is never a secret here, with or without
 * --jwt-secret. */
static void
test_hs_token_never_checked_with_the_public_key(void **state)
{
    struct key r;
    hf_auth *a, *b;
    (void)state;

    key_new(&r, "RSA", "r1");
    const char *pem = put_file("confuse.pem", r.pub);
    a = open_auth(&(struct hf_auth_opts){.key_file = pem});
    b = open_auth(&(struct hf_auth_opts){.key_file = pem, .secret = "s3"});
    check_signed(a, sign(NULL, r.pub, JWT_ALG_HS256, NULL, CLAIMS),
                 "HS256/384/512 tokens are not accepted");
    check_signed(b, sign(NULL, r.pub, JWT_ALG_HS256, NULL, CLAIMS),
                 "bad signature");
    check_signed(b, sign(NULL, "s3", JWT_ALG_HS512, NULL, CLAIMS), NULL);
    check_signed(b, sign(&r, NULL, JWT_ALG_RS256, NULL, CLAIMS), NULL);
    hf_auth_close(a);
    hf_auth_close(b);
    key_free(&r);
}

/* ------------------------------------------------------------------ */
/* every bad token says what to fix                                    */

static char *
b64(const char *s)
{
    json_t *j = b64url_json((const unsigned char *)s, strlen(s));
    char *out = strdup(json_string_value(j));
    json_decref(j);
    return out;
}

/* header.payload.sig from JSON texts (sig taken as is). */
static char *
craft(const char *hdr, const char *body, const char *sig)
{
    char *h = b64(hdr), *b = b64(body);
    char *out = malloc(strlen(h) + strlen(b) + strlen(sig) + 3);
    sprintf(out, "%s.%s.%s", h, b, sig);
    free(h);
    free(b);
    return out;
}

static void
test_bad_tokens_each_say_why(void **state)
{
    struct key r;
    hf_auth *a;
    char *tok, big[HF_AUTH_TOKEN_MAX + 2];
    (void)state;

    key_new(&r, "RSA", "r1");
    a = open_auth(&(struct hf_auth_opts){
        .secret = "s3",
        .jwks_file = put_jwks("bad.json", (struct key *[]){&r, NULL}),
        .issuer = "https://id.example",
        .audience = "holdfast"});
#define GOOD "\"sub\":\"kim\",\"iss\":\"https://id.example\",\"aud\":\"holdfast\""
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":1700000600}"),
                 NULL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    check(a, big, "too long");
    check(a, "abc.def", "three base64url segments");
    check(a, "ab!c.def.ghi", "three base64url segments");
    check(a, "e30.e30.", "three base64url segments");
    check_signed(a, craft("not json", "{}", "AAAA"), "header is not");
    check_signed(a, craft("{\"typ\":\"JWT\"}", "{}", "AAAA"),
                 "names no algorithm");
    check_signed(a, craft("{\"alg\":\"none\"}", "{" GOOD "}", "AAAA"),
                 "alg none");
    check_signed(a, craft("{\"alg\":\"PS256\"}", "{" GOOD "}", "AAAA"),
                 "unsupported algorithm");
    check_signed(a, craft("{\"alg\":\"HS256\",\"alg\":\"RS256\"}", "{}", "AAAA"),
                 "header field is repeated");
    check_signed(a, craft("{\"alg\":\"RS256\",\"kid\":\"zz\"}", "{}", "AAAA"),
                 "unknown kid");
    /* A signature of the right size that is not the right one. */
    tok = sign(NULL, "s3", JWT_ALG_HS256, NULL, "{" GOOD ",\"exp\":1700000600}");
    tok[strlen(tok) - 10] = tok[strlen(tok) - 10] == 'A' ? 'B' : 'A';
    check_signed(a, tok, "bad signature");
    check_signed(a, sign(NULL, "other", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":1700000600}"),
                 "bad signature");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":1600000000}"),
                 "expired");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":1700000600,\"nbf\":1700000500}"),
                 "not yet valid");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL, "{" GOOD "}"),
                 "no exp");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{\"sub\":\"kim\",\"iss\":\"https://evil.example\","
                         "\"aud\":\"holdfast\",\"exp\":1700000600}"),
                 "issuer");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{\"sub\":\"kim\",\"iss\":\"https://id.example\","
                         "\"aud\":[\"billing\"],\"exp\":1700000600}"),
                 "audience");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{\"iss\":\"https://id.example\",\"aud\":\"holdfast\","
                         "\"exp\":1700000600}"),
                 "sub");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":\"1700000600\"}"),
                 "integers");
    check_signed(a, sign(NULL, "s3", JWT_ALG_HS256, NULL,
                         "{" GOOD ",\"exp\":1700000600,\"role\":\"root\"}"),
                 "role claim");
    hf_auth_close(a);
    key_free(&r);
#undef GOOD
}

/* ------------------------------------------------------------------ */
/* claims                                                              */

static void
test_issuer_audience_and_leeway(void **state)
{
    hf_auth *a, *strict;
    (void)state;

    a = open_auth(&(struct hf_auth_opts){.secret = "s3",
                                         .issuer = "https://id.example",
                                         .audience = "holdfast",
                                         .leeway_s = 30});
    strict = open_auth(&(struct hf_auth_opts){.secret = "s3"});
#define T(claims) sign(NULL, "s3", JWT_ALG_HS256, NULL, claims)
#define IA "\"sub\":\"kim\",\"iss\":\"https://id.example\","
    check_signed(a, T("{" IA "\"aud\":\"holdfast\",\"exp\":1700000600}"), NULL);
    check_signed(a, T("{" IA "\"aud\":[\"api\",\"holdfast\"],\"exp\":1700000600}"),
                 NULL);
    check_signed(a, T("{" IA "\"exp\":1700000600}"), "audience");
    check_signed(a, T("{\"sub\":\"kim\",\"aud\":\"holdfast\",\"exp\":1700000600}"),
                 "issuer");
    /* Within the leeway either side of the clock. */
    check_signed(a, T("{" IA "\"aud\":\"holdfast\",\"exp\":1699999990}"), NULL);
    check_signed(a, T("{" IA "\"aud\":\"holdfast\",\"exp\":1699999969}"),
                 "expired");
    check_signed(a, T("{" IA "\"aud\":\"holdfast\",\"exp\":1700000600,"
                      "\"nbf\":1700000020}"),
                 NULL);
    check_signed(a, T("{" IA "\"aud\":\"holdfast\",\"exp\":1700000600,"
                      "\"nbf\":1700000031}"),
                 "not yet valid");
    /* Without an issuer or audience configured, neither is checked;
     * without leeway, the second after exp is too late. */
    check_signed(strict, T("{\"sub\":\"kim\",\"iss\":\"x\",\"aud\":\"y\","
                           "\"exp\":1700000001}"),
                 NULL);
    check_signed(strict, T("{\"sub\":\"kim\",\"exp\":1700000000}"), "expired");
    hf_auth_close(a);
    hf_auth_close(strict);
}

static void
test_role_claim_from_a_dotted_path(void **state)
{
    hf_principal p;
    const char *why;
    hf_auth *a, *b, *c;
    char *tok;
    (void)state;

    a = open_auth(&(struct hf_auth_opts){.secret = "s3",
                                         .role_claim = "app_metadata.role",
                                         .flags = HF_AUTH_ALLOW_NO_EXP});
    b = open_auth(&(struct hf_auth_opts){.secret = "s3",
                                         .role_claim = "https://app.io/role",
                                         .flags = HF_AUTH_ALLOW_NO_EXP});
    c = open_auth(&(struct hf_auth_opts){.secret = "s3",
                                         .role_claim = "realm_access.roles",
                                         .flags = HF_AUTH_ALLOW_NO_EXP});
    tok = T("{\"sub\":\"kim\",\"app_metadata\":{\"role\":\"service\"}}");
    assert_int_equal(hf_auth_check(a, tok, strlen(tok), NOW, &p, &why), 0);
    assert_int_equal(p.role, HF_ROLE_SERVICE);
    free(tok);
    /* Absent: a user. The plain "role" claim is not read any more. */
    tok = T("{\"sub\":\"kim\",\"role\":\"admin\"}");
    assert_int_equal(hf_auth_check(a, tok, strlen(tok), NOW, &p, &why), 0);
    assert_int_equal(p.role, HF_ROLE_USER);
    free(tok);
    check_signed(a, T("{\"sub\":\"kim\",\"app_metadata\":{\"role\":\"boss\"}}"),
                 "role claim");
    /* A claim whose own name has dots is found whole first. */
    tok = T("{\"sub\":\"kim\",\"https://app.io/role\":\"device\"}");
    assert_int_equal(hf_auth_check(b, tok, strlen(tok), NOW, &p, &why), 0);
    assert_int_equal(p.role, HF_ROLE_DEVICE);
    free(tok);
    /* An array of roles: the known ones count. */
    tok = T("{\"sub\":\"kim\",\"realm_access\":{\"roles\":[\"offline\","
            "\"admin\"]}}");
    assert_int_equal(hf_auth_check(c, tok, strlen(tok), NOW, &p, &why), 0);
    assert_int_equal(p.role, HF_ROLE_ADMIN);
    free(tok);
    hf_auth_close(a);
    hf_auth_close(b);
    hf_auth_close(c);
#undef T
#undef IA
}

/* ------------------------------------------------------------------ */
/* broken key files, and reloading                                     */

static void
refused(const struct hf_auth_opts *o, const char *frag)
{
    hf_auth *a = NULL;
    char why[512];

    assert_int_equal(hf_auth_open(&a, o, why, sizeof(why)), -1);
    assert_null(a);
    if (strstr(why, frag) == NULL)
        fail_msg("reason '%s' lacks '%s'", why, frag);
}

static void
test_key_files_that_do_not_parse_are_refused(void **state)
{
    struct key r, weak;
    char *text;
    (void)state;

    key_new(&r, "RSA", "r1");
    key_new(&weak, "RSA1024", "w");
#define JWKS(name, text) (&(struct hf_auth_opts){.jwks_file = put_file(name, text)})
    refused(JWKS("a.json", "{\"keys\": ["), "is not JSON");
    refused(JWKS("b.json", "[1,2]"), "\"keys\" array");
    refused(JWKS("c.json", "{\"keys\":[]}"), "no RSA or EC");
    refused(JWKS("d.json", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}"),
            "no RSA or EC");
    refused(JWKS("e.json", "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\","
                           "\"n\":\"!!!\",\"e\":\"AQAB\"}]}"),
            "not base64url");
    refused(JWKS("f.json", "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\","
                           "\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAA"
                           "AAAAAAAAAAAAAAAAAAAAE\",\"y\":\"AAAAAAAAAAAAAAAAAAAA"
                           "AAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}"),
            "point");
    refused(JWKS("g.json", "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\"}]}"),
            "members missing");
    refused(JWKS("h.json", "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\","
                           "\"alg\":\"HS999\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}"),
            "unknown \"alg\"");
    refused(&(struct hf_auth_opts){
                .jwks_file = put_jwks("i.json", (struct key *[]){&r, &r, NULL})},
            "two keys with one kid");
    refused(&(struct hf_auth_opts){
                .jwks_file = put_jwks("j.json", (struct key *[]){&weak, NULL})},
            "2048 bits");
    refused(&(struct hf_auth_opts){.jwks_file = "/nonexistent/jwks.json"},
            "is not JSON");
    refused(&(struct hf_auth_opts){.key_file = put_file("k.pem", "hello\n")},
            "no PEM public key");
    text = json_dumps(r.jwk, 0); /* a JWK, not a JWKS */
    refused(JWKS("l.json", text), "\"keys\" array");
    free(text);
#undef JWKS
    key_free(&r);
    key_free(&weak);
}

static void
test_reload_swaps_keys_and_keeps_the_old_on_failure(void **state)
{
    struct key k1, k2;
    hf_auth *a;
    char why[512];
    const char *path;
    (void)state;

    key_new(&k1, "RSA", "k1");
    key_new(&k2, "P-256", "k2");
    path = put_jwks("rot.json", (struct key *[]){&k1, NULL});
    a = open_auth(&(struct hf_auth_opts){.jwks_file = path});
    check_signed(a, sign(&k1, NULL, JWT_ALG_RS256, "k1", CLAIMS), NULL);
    check_signed(a, sign(&k2, NULL, JWT_ALG_ES256, "k2", CLAIMS), "unknown kid");
    put_jwks("rot.json", (struct key *[]){&k2, NULL});
    assert_int_equal(hf_auth_reload(a, why, sizeof(why)), 0);
    check_signed(a, sign(&k2, NULL, JWT_ALG_ES256, "k2", CLAIMS), NULL);
    check_signed(a, sign(&k1, NULL, JWT_ALG_RS256, "k1", CLAIMS), "unknown kid");
    put_file("rot.json", "{\"keys\":[{\"kty\":");
    assert_int_equal(hf_auth_reload(a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "is not JSON"));
    check_signed(a, sign(&k2, NULL, JWT_ALG_ES256, "k2", CLAIMS), NULL);
    hf_auth_close(a);
    key_free(&k1);
    key_free(&k2);
}

/* Checks from several threads while the keys are reloaded under them:
 * every check holds the generation it started with (TSan, ASan). */
struct hammer {
    hf_auth *a;
    const char *tok[2];
    int bad;
};

static void *
hammer(void *arg)
{
    struct hammer *h = arg;
    hf_principal p;
    const char *why;

    for (int i = 0; i < 200; i++)
        for (int t = 0; t < 2; t++)
            if (hf_auth_check(h->a, h->tok[t], strlen(h->tok[t]), NOW, &p,
                              &why) != 0)
                h->bad++;
    return NULL;
}

static void
test_checks_run_alongside_reloads(void **state)
{
    struct key r, e;
    struct hammer h[3];
    pthread_t th[3];
    hf_auth *a;
    char why[256];
    (void)state;

    key_new(&r, "RSA", "r1");
    key_new(&e, "P-256", "e1");
    a = open_auth(&(struct hf_auth_opts){
        .jwks_file = put_jwks("hammer.json", (struct key *[]){&r, &e, NULL})});
    char *t1 = sign(&r, NULL, JWT_ALG_RS256, "r1", CLAIMS);
    char *t2 = sign(&e, NULL, JWT_ALG_ES256, "e1", CLAIMS);
    for (int i = 0; i < 3; i++) {
        h[i] = (struct hammer){.a = a, .tok = {t1, t2}};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
    }
    for (int i = 0; i < 20; i++)
        assert_int_equal(hf_auth_reload(a, why, sizeof(why)), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].bad, 0);
    }
    hf_auth_close(a);
    free(t1);
    free(t2);
    key_free(&r);
    key_free(&e);
}

/* ------------------------------------------------------------------ */
/* the real server                                                     */

/* The HTTP status of a call made with tok (and its body into out). */
static int
call_with(struct srv *s, const char *tok, hf_buf *out)
{
    char hdr[HF_AUTH_TOKEN_MAX + 64];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
    return http(s, "POST", "/v1/call/counter/a/get", hdr, NULL, out);
}

/* Does the server's log hold frag (yet)? Waits up to WAIT ms. */
static int
log_has(const struct srv *s, const char *frag)
{
    for (int i = 0; i < WAIT / 20; i++) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "grep -qF '%s' '%s'", frag, s->log);
        if (system(cmd) == 0)
            return 1;
        usleep(20000);
    }
    return 0;
}

static void
test_server_rereads_its_jwks_on_sighup(void **state)
{
    struct key k1, k2;
    struct srv s;
    hf_buf body = {0};
    char *t1, *t2, log[280];
    int64_t exp = (int64_t)time(NULL) + 600;
    char claims[128];
    const char *path;
    (void)state;

    key_new(&k1, "RSA", "k1");
    key_new(&k2, "P-256", "k2");
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"kim\",\"exp\":%lld}", (long long)exp);
    t1 = sign(&k1, NULL, JWT_ALG_RS256, "k1", claims);
    t2 = sign(&k2, NULL, JWT_ALG_ES256, "k2", claims);

    /* A JWKS that does not parse: the server does not start. */
    path = put_file("srv.json", "{\"keys\":");
    snprintf(log, sizeof(log), "%s/refused.log", dir);
    {
        const char *flags[] = {"--jwks", path, NULL};
        struct srv r = {0};
        char data[300];
        snprintf(data, sizeof(data), "%s/refused-data", dir);
        assert_int_equal(mkdir(data, 0700), 0);
        assert_true(srv_start_refused(data, log, flags) > 0);
        snprintf(r.log, sizeof(r.log), "%s", log);
        assert_true(log_has(&r, "is not JSON"));
    }

    path = put_jwks("srv.json", (struct key *[]){&k1, NULL});
    const char *flags[] = {"--jwks", path, NULL};
    srv_start(&s, flags);
    assert_int_equal(call_with(&s, t1, &body), 200);
    assert_int_equal(call_with(&s, t2, &body), 401);
    assert_non_null(strstr(body.data, "unknown kid"));

    /* Rotated: after SIGHUP the new key verifies, the old one no more. */
    put_jwks("srv.json", (struct key *[]){&k2, NULL});
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    assert_true(log_has(&s, "token keys reloaded"));
    assert_int_equal(call_with(&s, t2, &body), 200);
    assert_int_equal(call_with(&s, t1, &body), 401);

    /* Broken: the keys in use stay, and the log says why. */
    put_file("srv.json", "{\"keys\":[{\"kty\":\"RSA\"}]}");
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    assert_true(log_has(&s, "keys not reloaded, the old ones stay"));
    assert_int_equal(call_with(&s, t2, &body), 200);
    srv_free(&s);
    hf_buf_free(&body);
    free(t1);
    free(t2);
    key_free(&k1);
    key_free(&k2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256_384_512_from_a_pem_key),
        cmocka_unit_test(test_es256_es384_from_a_pem_key),
        cmocka_unit_test(test_jwks_kid_picks_the_key),
        cmocka_unit_test(test_hs_token_never_checked_with_the_public_key),
        cmocka_unit_test(test_bad_tokens_each_say_why),
        cmocka_unit_test(test_issuer_audience_and_leeway),
        cmocka_unit_test(test_role_claim_from_a_dotted_path),
        cmocka_unit_test(test_key_files_that_do_not_parse_are_refused),
        cmocka_unit_test(test_reload_swaps_keys_and_keeps_the_old_on_failure),
        cmocka_unit_test(test_checks_run_alongside_reloads),
        cmocka_unit_test(test_server_rereads_its_jwks_on_sighup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
