/*
 * test_auth.c - tokens and address rules (transport/auth.h, DESIGN §6).
 *
 * Good tokens come from hf_auth_mint; tokens with odd claims are signed
 * with libjwt directly, and tokens no honest signer makes (alg "none",
 * broken shapes) are put together by hand from base64url pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "transport/auth.h"

#define SECRET "test-secret-0123456789abcdef0123"
#define NOW    INT64_C(1700000000)

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static int
verify(const char *tok, hf_principal *p)
{
    assert_non_null(tok);
    return hf_auth_verify(SECRET, tok, strlen(tok), NOW, HF_AUTH_ALLOW_NO_EXP, p);
}

/* Mints with SECRET and checks the result, so a test reads as one line. */
static int
mint_verify(const char *sub, const char *role, int64_t exp,
            const char *const *acl, hf_principal *p)
{
    char *tok = hf_auth_mint(SECRET, sub, role, exp, acl);
    assert_non_null(tok);
    int rc = verify(tok, p);
    free(tok);
    return rc;
}

/* A token with arbitrary claims (JSON object text), signed by libjwt. */
static char *
sign_claims(const char *claims, jwt_alg_t alg, const char *key)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(
        jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *tok = jwt_encode_str(j);
    assert_non_null(tok);
    jwt_free(j);
    return tok;
}

static int
verify_claims(const char *claims)
{
    hf_principal p;
    char *tok = sign_claims(claims, JWT_ALG_HS256, SECRET);
    int rc = verify(tok, &p);
    free(tok);
    return rc;
}

/* base64url without padding of s, appended to out (out has room). */
static void
b64url_cat(char *out, const char *s)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = (const unsigned char *)s;
    size_t n = strlen(s), o = strlen(out);

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

/* header.payload.sig from JSON texts and a raw signature string. */
static void
craft(char *out, const char *header, const char *payload, const char *sig)
{
    out[0] = '\0';
    b64url_cat(out, header);
    strcat(out, ".");
    b64url_cat(out, payload);
    strcat(out, ".");
    strcat(out, sig);
}

/* A principal for the address rules, built directly. acl: NULL-terminated
 * list, or NULL for no acl claim. */
static void
principal(hf_principal *p, const char *sub, unsigned role,
          const char *const *acl)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->sub, sizeof(p->sub), "%s", sub);
    p->role = role;
    p->nacl = -1;
    if (acl != NULL) {
        p->nacl = 0;
        while (acl[p->nacl] != NULL) {
            snprintf(p->acl[p->nacl], sizeof(p->acl[0]), "%s", acl[p->nacl]);
            p->nacl++;
        }
    }
}

static int
allows(const hf_principal *p, const char *addr)
{
    return hf_auth_allows(p, addr, strlen(addr));
}

/* ------------------------------------------------------------------ */
/* verify: good tokens                                                 */

static void
test_round_trip_with_acl(void **state)
{
    const char *acl[] = {"device/*", "store/gangnam-*", NULL};
    hf_principal p;

    assert_int_equal(mint_verify("kim", "device", NOW + 60, acl, &p), 0);
    assert_string_equal(p.sub, "kim");
    assert_int_equal(p.role, HF_ROLE_DEVICE);
    assert_int_equal(p.exp, NOW + 60);
    assert_int_equal(p.nacl, 2);
    assert_string_equal(p.acl[0], "device/*");
    assert_string_equal(p.acl[1], "store/gangnam-*");
    assert_int_equal(allows(&p, "device/d1"), 0);
    assert_int_equal(allows(&p, "room/r1"), HF_EFORBIDDEN);
}

static void
test_round_trip_without_exp_or_acl(void **state)
{
    hf_principal p;

    assert_int_equal(mint_verify("svc", "service", 0, NULL, &p), 0);
    assert_string_equal(p.sub, "svc");
    assert_int_equal(p.role, HF_ROLE_SERVICE);
    assert_int_equal(p.exp, 0);
    assert_int_equal(p.nacl, -1);
}

static void
test_each_role_name_verifies_to_its_bit(void **state)
{
    static const struct {
        const char *name;
        unsigned bit;
    } cases[] = {
        {"user", HF_ROLE_USER},
        {"admin", HF_ROLE_ADMIN},
        {"device", HF_ROLE_DEVICE},
        {"service", HF_ROLE_SERVICE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hf_principal p;
        assert_int_equal(mint_verify("a", cases[i].name, 0, NULL, &p), 0);
        assert_int_equal(p.role, cases[i].bit);
    }
}

static void
test_not_yet_expired_ok(void **state)
{
    hf_principal p;
    assert_int_equal(mint_verify("kim", "user", NOW + 1, NULL, &p), 0);
    assert_int_equal(p.exp, NOW + 1);
}

static void
test_token_len_bounds_the_token(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    size_t n = strlen(tok);
    char *buf = malloc(n + 8);
    hf_principal p;

    memcpy(buf, tok, n);
    memcpy(buf + n, "GARBAGE!", 8); /* no NUL after the token */
    assert_int_equal(hf_auth_verify(SECRET, buf, n, NOW, HF_AUTH_ALLOW_NO_EXP, &p), 0);
    assert_string_equal(p.sub, "kim");
    /* ...but counting the junk in is another token, and a bad one. */
    assert_int_equal(hf_auth_verify(SECRET, buf, n + 3, NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    free(buf);
    free(tok);
}

static void
test_largest_legal_token_fits(void **state)
{
    char sub[HF_AUTH_SUB_MAX + 1];
    char pats[HF_AUTH_ACL_MAX][HF_ADDR_MAX + 1];
    const char *acl[HF_AUTH_ACL_MAX + 1];
    hf_principal p;

    memset(sub, 's', HF_AUTH_SUB_MAX);
    sub[HF_AUTH_SUB_MAX] = '\0';
    for (int i = 0; i < HF_AUTH_ACL_MAX; i++) {
        memset(pats[i], 'x', HF_ADDR_MAX);
        pats[i][HF_ADDR_MAX] = '\0';
        pats[i][0] = (char)('a' + i % 26);
        acl[i] = pats[i];
    }
    acl[HF_AUTH_ACL_MAX] = NULL;

    char *tok = hf_auth_mint(SECRET, sub, "service", INT64_C(99999999999), acl);
    assert_non_null(tok);
    assert_true(strlen(tok) <= HF_AUTH_TOKEN_MAX);
    assert_int_equal(verify(tok, &p), 0);
    assert_string_equal(p.sub, sub);
    assert_int_equal(p.nacl, HF_AUTH_ACL_MAX);
    assert_string_equal(p.acl[HF_AUTH_ACL_MAX - 1], pats[HF_AUTH_ACL_MAX - 1]);
    free(tok);
}

/* ------------------------------------------------------------------ */
/* verify: refused tokens                                              */

static void
test_wrong_secret_unauthorized(void **state)
{
    char *tok = hf_auth_mint("another-secret", "kim", "admin", 0, NULL);
    hf_principal p;
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    free(tok);
}

static void
test_empty_secret_refused(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    hf_principal p;

    /* libjwt skips the signature check for an empty key. */
    assert_int_equal(hf_auth_verify("", tok, strlen(tok), NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    assert_int_equal(hf_auth_verify(NULL, tok, strlen(tok), NOW, HF_AUTH_ALLOW_NO_EXP, &p),
                     HF_EUNAUTH);
    assert_null(hf_auth_mint("", "kim", "user", 0, NULL));
    assert_null(hf_auth_mint(NULL, "kim", "user", 0, NULL));
    free(tok);
}

static void
test_expired_at_exp_unauthorized(void **state)
{
    hf_principal p;
    assert_int_equal(mint_verify("kim", "user", NOW, NULL, &p), HF_EUNAUTH);
}

static void
test_expired_before_now_unauthorized(void **state)
{
    hf_principal p;
    assert_int_equal(mint_verify("kim", "user", NOW - 1, NULL, &p), HF_EUNAUTH);
    assert_int_equal(mint_verify("kim", "user", 1, NULL, &p), HF_EUNAUTH);
}

static void
test_exp_not_an_integer_unauthorized(void **state)
{
    /* libjwt's own getter would read these as 0, i.e. "no expiry". */
    assert_int_equal(
        verify_claims("{\"sub\":\"kim\",\"role\":\"user\",\"exp\":\"1\"}"),
        HF_EUNAUTH);
    assert_int_equal(
        verify_claims("{\"sub\":\"kim\",\"role\":\"user\",\"exp\":1.5}"),
        HF_EUNAUTH);
    assert_int_equal(
        verify_claims("{\"sub\":\"kim\",\"role\":\"user\",\"exp\":null}"),
        HF_EUNAUTH);
}

static void
test_nbf_in_future_unauthorized(void **state)
{
    char claims[160];

    snprintf(claims, sizeof(claims),
             "{\"sub\":\"kim\",\"role\":\"user\",\"nbf\":%lld}",
             (long long)(NOW + 1));
    assert_int_equal(verify_claims(claims), HF_EUNAUTH);
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"kim\",\"role\":\"user\",\"nbf\":%lld}",
             (long long)NOW);
    assert_int_equal(verify_claims(claims), 0);
}

static void
test_alg_none_refused(void **state)
{
    const char *body = "{\"sub\":\"kim\",\"role\":\"admin\"}";
    char tok[512];
    hf_principal p;

    craft(tok, "{\"alg\":\"none\"}", body, "");
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    craft(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", body, "");
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    craft(tok, "{\"alg\":\"NONE\"}", body, "");
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    /* With a signature-shaped tail, so it reaches libjwt too. */
    craft(tok, "{\"alg\":\"none\"}", body,
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    assert_int_equal(p.role, 0);
}

/* HS384 and HS512 are verified with the same secret (issue 14). */
static void
test_hs384_hs512_signed_with_secret_accepted(void **state)
{
    const char *claims = "{\"sub\":\"kim\",\"role\":\"admin\"}";
    hf_principal p;

    char *tok = sign_claims(claims, JWT_ALG_HS512, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    assert_int_equal(p.role, HF_ROLE_ADMIN);
    free(tok);
    tok = sign_claims(claims, JWT_ALG_HS384, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    free(tok);
    tok = sign_claims(claims, JWT_ALG_HS384, "another-secret");
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    free(tok);
    /* The same claims with HS256 pass: only the algorithm differs. */
    tok = sign_claims(claims, JWT_ALG_HS256, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    free(tok);
}

static void
test_tampered_payload_unauthorized(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    char forged[1024];
    hf_principal p;

    /* Keep kim's header and signature, swap in an admin payload. */
    const char *dot1 = strchr(tok, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    forged[0] = '\0';
    strncat(forged, tok, (size_t)(dot1 - tok) + 1);
    b64url_cat(forged, "{\"role\":\"admin\",\"sub\":\"kim\"}");
    strcat(forged, dot2);
    assert_int_equal(verify(forged, &p), HF_EUNAUTH);
    free(tok);
}

static void
test_garbage_token_unauthorized(void **state)
{
    static const char *bad[] = {
        "garbage",
        "not.a.jwt",
        "....",
        "..",
        "a.b.",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJraW0ifQ.***",
        "eyJhbGciOiJIUzI1NiJ9 .eyJzdWIiOiJraW0ifQ.sig",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJraW0ifQ.x",
        "\xff\xfe.\xfd.\xfc",
    };
    hf_principal p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify(bad[i], &p), HF_EUNAUTH);
}

static void
test_header_or_payload_not_json_unauthorized(void **state)
{
    static const char sig[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    char tok[512];
    hf_principal p;

    craft(tok, "{\"alg\":\"HS256\"}", "not json", sig);
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    craft(tok, "HS256", "{\"sub\":\"kim\",\"role\":\"user\"}", sig);
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    craft(tok, "{\"alg\":\"HS256\"}", "[\"sub\",\"kim\"]", sig);
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
}

static void
test_empty_token_unauthorized(void **state)
{
    hf_principal p;
    assert_int_equal(hf_auth_verify(SECRET, "", 0, NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    assert_int_equal(hf_auth_verify(SECRET, NULL, 0, NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    /* Empty segments: libjwt 1.10 would decode them past a malloc(0). */
    static const char sig[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    char tok[128];
    snprintf(tok, sizeof(tok), "..%s", sig);
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
    snprintf(tok, sizeof(tok), "eyJhbGciOiJIUzI1NiJ9..%s", sig);
    assert_int_equal(verify(tok, &p), HF_EUNAUTH);
}

static void
test_three_dots_unauthorized(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    char buf[1024];
    hf_principal p;

    snprintf(buf, sizeof(buf), "%s.", tok);
    assert_int_equal(verify(buf, &p), HF_EUNAUTH);
    snprintf(buf, sizeof(buf), "%s.AAAA", tok);
    assert_int_equal(verify(buf, &p), HF_EUNAUTH);
    snprintf(buf, sizeof(buf), "a.%s", tok);
    assert_int_equal(verify(buf, &p), HF_EUNAUTH);
    free(tok);
}

static void
test_overlong_token_unauthorized(void **state)
{
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    hf_principal p;

    /* Shaped like a token, so only the length refuses it. */
    memset(big, 'A', n);
    big[100] = '.';
    big[n - 44] = '.';
    big[n] = '\0';
    assert_int_equal(hf_auth_verify(SECRET, big, n, NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    assert_int_equal(
        hf_auth_verify(SECRET, big, HF_AUTH_TOKEN_MAX + 1, NOW, HF_AUTH_ALLOW_NO_EXP, &p),
        HF_EUNAUTH);
    free(big);
}

static void
test_embedded_nul_unauthorized(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    size_t n = strlen(tok);
    char *buf = malloc(n + 2);
    hf_principal p;

    memcpy(buf, tok, n);
    buf[n] = '\0';
    buf[n + 1] = 'A';
    assert_int_equal(hf_auth_verify(SECRET, buf, n + 2, NOW, HF_AUTH_ALLOW_NO_EXP, &p), HF_EUNAUTH);
    free(buf);
    free(tok);
}

static void
test_missing_sub_unauthorized(void **state)
{
    hf_principal p;
    assert_int_equal(mint_verify(NULL, "user", 0, NULL, &p), HF_EUNAUTH);
    assert_int_equal(mint_verify("", "user", 0, NULL, &p), HF_EUNAUTH);
    assert_int_equal(verify_claims("{\"sub\":42,\"role\":\"user\"}"),
                     HF_EUNAUTH);
}

static void
test_sub_longer_than_max_unauthorized(void **state)
{
    char sub[HF_AUTH_SUB_MAX + 2];
    hf_principal p;

    memset(sub, 'k', sizeof(sub) - 1);
    sub[HF_AUTH_SUB_MAX + 1] = '\0';
    assert_int_equal(mint_verify(sub, "user", 0, NULL, &p), HF_EUNAUTH);
    sub[HF_AUTH_SUB_MAX] = '\0';
    assert_int_equal(mint_verify(sub, "user", 0, NULL, &p), 0);
    assert_int_equal(strlen(p.sub), HF_AUTH_SUB_MAX);
}

static void
test_unknown_role_unauthorized(void **state)
{
    static const char *bad[] = {"root", "Admin", "actor", "", "user "};
    hf_principal p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mint_verify("kim", bad[i], 0, NULL, &p), HF_EUNAUTH);
    assert_int_equal(verify_claims("{\"sub\":\"kim\",\"role\":2}"), HF_EUNAUTH);
    assert_int_equal(verify_claims("{\"sub\":\"kim\",\"role\":[\"root\"]}"),
                     HF_EUNAUTH);
    /* No role is a user (issue 14); an array adds each known role. */
    assert_int_equal(mint_verify("kim", NULL, 0, NULL, &p), 0);
    assert_int_equal(p.role, HF_ROLE_USER);
    assert_int_equal(verify_claims("{\"sub\":\"kim\",\"role\":[\"admin\","
                                   "\"x\"]}"),
                     0);
}

static void
test_acl_wrong_type_unauthorized(void **state)
{
    static const char *bad[] = {
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":\"device/*\"}",
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":{\"a\":\"device/*\"}}",
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":[\"device/*\",7]}",
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":[[\"device/*\"]]}",
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":null}",
        "{\"sub\":\"kim\",\"role\":\"user\",\"acl\":true}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify_claims(bad[i]), HF_EUNAUTH);
}

static void
test_acl_too_many_or_too_long_unauthorized(void **state)
{
    const char *acl[HF_AUTH_ACL_MAX + 2];
    char longpat[HF_ADDR_MAX + 2];
    hf_principal p;

    for (int i = 0; i <= HF_AUTH_ACL_MAX; i++)
        acl[i] = "device/*";
    acl[HF_AUTH_ACL_MAX + 1] = NULL;
    assert_int_equal(mint_verify("kim", "user", 0, acl, &p), HF_EUNAUTH);
    acl[HF_AUTH_ACL_MAX] = NULL;
    assert_int_equal(mint_verify("kim", "user", 0, acl, &p), 0);
    assert_int_equal(p.nacl, HF_AUTH_ACL_MAX);

    memset(longpat, 'a', sizeof(longpat) - 1);
    longpat[HF_ADDR_MAX + 1] = '\0';
    const char *one[] = {longpat, NULL};
    assert_int_equal(mint_verify("kim", "user", 0, one, &p), HF_EUNAUTH);
}

static void
test_failed_verify_leaves_principal_reaching_nothing(void **state)
{
    hf_principal p;

    hf_auth_anonymous(&p, "x"); /* p starts out able to do anything */
    assert_int_equal(mint_verify("kim", "admin", NOW - 5, NULL, &p),
                     HF_EUNAUTH);
    assert_string_equal(p.sub, "");
    assert_int_equal(p.role, 0);
    assert_int_equal(p.nacl, 0);
    assert_int_equal(allows(&p, "device/d1"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "user/"), HF_EFORBIDDEN);
}

/* ------------------------------------------------------------------ */
/* allows: acl patterns                                                */

static void
test_acl_exact_match(void **state)
{
    const char *acl[] = {"store/gangnam-1", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(allows(&p, "store/gangnam-1"), 0);
    assert_int_equal(allows(&p, "store/gangnam-10"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "store/gangnam-"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "store/Gangnam-1"), HF_EFORBIDDEN);
}

static void
test_acl_device_star(void **state)
{
    const char *acl[] = {"device/*", NULL};
    hf_principal p;
    principal(&p, "d", HF_ROLE_DEVICE, acl);

    assert_int_equal(allows(&p, "device/d1"), 0);
    assert_int_equal(allows(&p, "device/a.b:c@d-e"), 0);
    assert_int_equal(allows(&p, "device/"), 0); /* '*' may match nothing */
    assert_int_equal(allows(&p, "devices/d1"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "store/device/d1"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "device"), HF_EFORBIDDEN);
}

static void
test_acl_prefix_star_gangnam_not_gangbuk(void **state)
{
    const char *acl[] = {"store/gangnam-*", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(allows(&p, "store/gangnam-1"), 0);
    assert_int_equal(allows(&p, "store/gangnam-main"), 0);
    assert_int_equal(allows(&p, "store/gangbuk-1"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "store/gangnam"), HF_EFORBIDDEN);
}

static void
test_acl_star_matches_everything(void **state)
{
    const char *acl[] = {"*", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_DEVICE, acl);

    assert_int_equal(allows(&p, "device/d1"), 0);
    assert_int_equal(allows(&p, "room/r-1"), 0);
    assert_int_equal(allows(&p, ""), 0);
}

static void
test_acl_star_slash_x(void **state)
{
    const char *acl[] = {"*/x", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(allows(&p, "room/x"), 0);
    assert_int_equal(allows(&p, "device/x"), 0);
    assert_int_equal(allows(&p, "room/xx"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "room/ax"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "x"), HF_EFORBIDDEN);
}

static void
test_acl_star_backtracks(void **state)
{
    const char *acl[] = {"a*b*c", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(allows(&p, "abc"), 0);
    assert_int_equal(allows(&p, "aXbYbZc"), 0);
    assert_int_equal(allows(&p, "abcbc"), 0);
    assert_int_equal(allows(&p, "abcb"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "acb"), HF_EFORBIDDEN);
}

static void
test_acl_any_pattern_suffices(void **state)
{
    const char *acl[] = {"device/*", "room/lobby", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(allows(&p, "device/d9"), 0);
    assert_int_equal(allows(&p, "room/lobby"), 0);
    assert_int_equal(allows(&p, "room/other"), HF_EFORBIDDEN);
}

static void
test_no_acl_claim_allows_everything(void **state)
{
    hf_principal p;
    assert_int_equal(mint_verify("kim", "user", 0, NULL, &p), 0);
    assert_int_equal(p.nacl, -1);
    assert_int_equal(allows(&p, "device/d1"), 0);
    assert_int_equal(allows(&p, "store/gangbuk-1"), 0);
    assert_int_equal(allows(&p, "user/kim"), 0);
}

static void
test_empty_acl_array_allows_nothing(void **state)
{
    const char *acl[] = {NULL};
    hf_principal p;
    assert_int_equal(mint_verify("kim", "admin", 0, acl, &p), 0);
    assert_int_equal(p.nacl, 0);
    assert_int_equal(allows(&p, "device/d1"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, ""), HF_EFORBIDDEN);
}

static void
test_acl_match_respects_len(void **state)
{
    const char *acl[] = {"room/a", NULL};
    hf_principal p;
    principal(&p, "s", HF_ROLE_USER, acl);

    assert_int_equal(hf_auth_allows(&p, "room/abc", 6), 0);
    assert_int_equal(hf_auth_allows(&p, "room/abc", 5), HF_EFORBIDDEN);
    assert_int_equal(hf_auth_allows(NULL, "room/a", 6), HF_EFORBIDDEN);
    assert_int_equal(hf_auth_allows(&p, NULL, 6), HF_EFORBIDDEN);
}

static void
test_adversarial_pattern_is_not_exponential(void **state)
{
    /* A backtracking recursive matcher needs ~C(161,80) steps here. */
    char pat[HF_ADDR_MAX + 1];
    char addr[HF_ADDR_MAX + 1];
    const char *acl[HF_AUTH_ACL_MAX + 1];
    hf_principal p;
    size_t i;

    for (i = 0; i + 2 < HF_ADDR_MAX; i += 2) {
        pat[i] = '*';
        pat[i + 1] = 'a';
    }
    pat[i++] = 'b';
    pat[i] = '\0';
    memset(addr, 'a', HF_ADDR_MAX);
    addr[HF_ADDR_MAX] = '\0';
    for (i = 0; i < HF_AUTH_ACL_MAX; i++)
        acl[i] = pat;
    acl[HF_AUTH_ACL_MAX] = NULL;
    principal(&p, "s", HF_ROLE_USER, acl);

    for (int round = 0; round < 100; round++)
        assert_int_equal(allows(&p, addr), HF_EFORBIDDEN);
    addr[HF_ADDR_MAX - 1] = 'b';
    assert_int_equal(allows(&p, addr), 0);
}

/* ------------------------------------------------------------------ */
/* allows: user isolation                                              */

static void
test_user_reachable_by_own_sub(void **state)
{
    hf_principal p;
    principal(&p, "kim", HF_ROLE_USER, NULL);
    assert_int_equal(allows(&p, "user/kim"), 0);
}

static void
test_user_denied_to_other_sub(void **state)
{
    hf_principal p;
    principal(&p, "lee", HF_ROLE_USER, NULL);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
    principal(&p, "kim", HF_ROLE_USER, NULL);
    assert_int_equal(allows(&p, "user/kimberly"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "user/ki"), HF_EFORBIDDEN);
    principal(&p, "kim", HF_ROLE_DEVICE, NULL);
    assert_int_equal(allows(&p, "user/lee"), HF_EFORBIDDEN);
}

static void
test_user_reachable_by_admin_with_other_sub(void **state)
{
    hf_principal p;
    principal(&p, "boss", HF_ROLE_ADMIN, NULL);
    assert_int_equal(allows(&p, "user/kim"), 0);
}

static void
test_user_reachable_by_service_with_other_sub(void **state)
{
    hf_principal p;
    principal(&p, "billing", HF_ROLE_SERVICE, NULL);
    assert_int_equal(allows(&p, "user/kim"), 0);
}

static void
test_user_denied_to_other_even_with_star_acl(void **state)
{
    const char *star[] = {"*", NULL};
    const char *users[] = {"user/*", NULL};
    hf_principal p;

    principal(&p, "lee", HF_ROLE_USER, star);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "user/lee"), 0);
    principal(&p, "lee", HF_ROLE_USER, users);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
}

static void
test_admin_still_bound_by_acl(void **state)
{
    const char *acl[] = {"device/*", NULL};
    hf_principal p;
    principal(&p, "boss", HF_ROLE_ADMIN, acl);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "device/d1"), 0);
}

static void
test_empty_sub_owns_no_user(void **state)
{
    hf_principal p;
    principal(&p, "", HF_ROLE_USER, NULL);
    assert_int_equal(allows(&p, "user/"), HF_EFORBIDDEN);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
}

static void
test_user_isolation_through_a_token(void **state)
{
    const char *acl[] = {"*", NULL};
    hf_principal p;

    assert_int_equal(mint_verify("lee", "user", NOW + 60, acl, &p), 0);
    assert_int_equal(allows(&p, "user/lee"), 0);
    assert_int_equal(allows(&p, "user/kim"), HF_EFORBIDDEN);
    assert_int_equal(mint_verify("ops", "service", NOW + 60, acl, &p), 0);
    assert_int_equal(allows(&p, "user/kim"), 0);
}

/* ------------------------------------------------------------------ */
/* anonymous and roles                                                 */

static void
test_anonymous_has_all_roles(void **state)
{
    hf_principal p;

    hf_auth_anonymous(&p, NULL);
    assert_string_equal(p.sub, "anonymous");
    assert_int_equal(p.role, HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE |
                                 HF_ROLE_SERVICE);
    assert_int_equal(p.exp, 0);
    assert_int_equal(p.nacl, -1);
    assert_int_equal(allows(&p, "user/kim"), 0);
    assert_int_equal(allows(&p, "device/d1"), 0);

    hf_auth_anonymous(&p, "cli");
    assert_string_equal(p.sub, "cli");
    hf_auth_anonymous(&p, "");
    assert_string_equal(p.sub, "anonymous");
}

static void
test_anonymous_long_sub_is_cut(void **state)
{
    char sub[300];
    hf_principal p;

    memset(sub, 'z', sizeof(sub) - 1);
    sub[sizeof(sub) - 1] = '\0';
    hf_auth_anonymous(&p, sub);
    assert_int_equal(strlen(p.sub), HF_AUTH_SUB_MAX);
}

static void
test_role_bits_mapping(void **state)
{
    assert_int_equal(hf_auth_role_bit("user"), HF_ROLE_USER);
    assert_int_equal(hf_auth_role_bit("admin"), HF_ROLE_ADMIN);
    assert_int_equal(hf_auth_role_bit("device"), HF_ROLE_DEVICE);
    assert_int_equal(hf_auth_role_bit("service"), HF_ROLE_SERVICE);
    assert_int_equal(hf_auth_role_bit("actor"), 0);
    assert_int_equal(hf_auth_role_bit("ADMIN"), 0);
    assert_int_equal(hf_auth_role_bit(""), 0);
    assert_int_equal(hf_auth_role_bit(NULL), 0);
}

/* A token made by hand from its JSON header and claims, signed HS256 with
 * SECRET: libjwt cannot make one with a repeated key. */
/* Appends the base64url of n bytes at src to out (at *pos). */
static void
b64url_put(char *out, size_t *pos, const void *src, size_t n)
{
    unsigned char b64[2048];
    int m = EVP_EncodeBlock(b64, src, (int)n);

    while (m > 0 && b64[m - 1] == '=')
        m--;
    for (int k = 0; k < m; k++)
        out[(*pos)++] = b64[k] == '+' ? '-' : b64[k] == '/' ? '_' : (char)b64[k];
    out[*pos] = '\0';
}

static char *
raw_token(const char *header, const char *claims)
{
    char *out = calloc(1, 4096);
    unsigned char mac[32];
    unsigned int maclen = 0;
    size_t n = 0;

    b64url_put(out, &n, header, strlen(header));
    out[n++] = '.';
    b64url_put(out, &n, claims, strlen(claims));
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)out, n,
         mac, &maclen);
    out[n++] = '.';
    b64url_put(out, &n, mac, maclen);
    return out;
}

static void
test_token_without_exp_refused_unless_allowed(void **state)
{
    char *tok = hf_auth_mint(SECRET, "kim", "user", 0, NULL);
    hf_principal p;
    (void)state;

    assert_int_equal(hf_auth_verify(SECRET, tok, strlen(tok), NOW, 0, &p),
                     HF_EUNAUTH);
    assert_string_equal(p.sub, "");
    assert_int_equal(hf_auth_verify(SECRET, tok, strlen(tok), NOW,
                                    HF_AUTH_ALLOW_NO_EXP, &p),
                     0);
    assert_string_equal(p.sub, "kim");
    free(tok);
}

static void
test_repeated_claim_refused(void **state)
{
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *good = raw_token(hdr, "{\"sub\":\"kim\",\"role\":\"user\","
                                "\"exp\":1800000000}");
    char *dup = raw_token(hdr, "{\"sub\":\"kim\",\"role\":\"user\","
                               "\"exp\":1800000000,\"role\":\"admin\"}");
    char *duphdr = raw_token("{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                             "{\"sub\":\"kim\",\"role\":\"user\","
                             "\"exp\":1800000000}");
    hf_principal p;
    (void)state;

    /* The hand-made signer is right: the same token without the repeat
     * verifies. */
    assert_int_equal(hf_auth_verify(SECRET, good, strlen(good), NOW, 0, &p), 0);
    assert_int_equal(p.role, HF_ROLE_USER);
    assert_int_equal(hf_auth_verify(SECRET, dup, strlen(dup), NOW, 0, &p),
                     HF_EUNAUTH);
    assert_int_equal(p.role, 0);
    assert_int_equal(
        hf_auth_verify(SECRET, duphdr, strlen(duphdr), NOW, 0, &p),
        HF_EUNAUTH);
    free(good);
    free(dup);
    free(duphdr);
}

/* name and picture are display claims: kept when they are sane strings,
 * left out (never refusing the token) otherwise. */
static void
test_display_claims_are_kept_or_left_out(void **state)
{
    hf_principal p;
    char *tok;
    char claims[2200], big[1100];
    (void)state;

    tok = sign_claims("{\"sub\":\"kim\",\"role\":\"user\",\"name\":\"Kim "
                      "Minji\",\"picture\":\"https://cdn.example/kim.png\"}",
                      JWT_ALG_HS256, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    assert_string_equal(p.name, "Kim Minji");
    assert_string_equal(p.picture, "https://cdn.example/kim.png");
    free(tok);
    tok = hf_auth_mint_ex(SECRET, "lee", "user", 0, NULL,
                          "{\"name\":\"Lee\"}");
    assert_int_equal(verify(tok, &p), 0);
    assert_string_equal(p.name, "Lee");
    assert_string_equal(p.picture, "");
    free(tok);
    /* Wrong type, control characters, too long: left out. */
    memset(big, 'x', 1025);
    big[1025] = '\0';
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"kim\",\"role\":\"user\",\"name\":7,"
             "\"picture\":\"%s\"}", big);
    tok = sign_claims(claims, JWT_ALG_HS256, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    assert_string_equal(p.name, "");
    assert_string_equal(p.picture, "");
    free(tok);
    tok = sign_claims("{\"sub\":\"kim\",\"role\":\"user\",\"name\":\"a\\nb\"}",
                      JWT_ALG_HS256, SECRET);
    assert_int_equal(verify(tok, &p), 0);
    assert_string_equal(p.name, "");
    free(tok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_with_acl),
        cmocka_unit_test(test_display_claims_are_kept_or_left_out),
        cmocka_unit_test(test_round_trip_without_exp_or_acl),
        cmocka_unit_test(test_each_role_name_verifies_to_its_bit),
        cmocka_unit_test(test_not_yet_expired_ok),
        cmocka_unit_test(test_token_len_bounds_the_token),
        cmocka_unit_test(test_largest_legal_token_fits),
        cmocka_unit_test(test_wrong_secret_unauthorized),
        cmocka_unit_test(test_empty_secret_refused),
        cmocka_unit_test(test_expired_at_exp_unauthorized),
        cmocka_unit_test(test_expired_before_now_unauthorized),
        cmocka_unit_test(test_exp_not_an_integer_unauthorized),
        cmocka_unit_test(test_nbf_in_future_unauthorized),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_hs384_hs512_signed_with_secret_accepted),
        cmocka_unit_test(test_tampered_payload_unauthorized),
        cmocka_unit_test(test_garbage_token_unauthorized),
        cmocka_unit_test(test_header_or_payload_not_json_unauthorized),
        cmocka_unit_test(test_empty_token_unauthorized),
        cmocka_unit_test(test_token_without_exp_refused_unless_allowed),
        cmocka_unit_test(test_repeated_claim_refused),
        cmocka_unit_test(test_three_dots_unauthorized),
        cmocka_unit_test(test_overlong_token_unauthorized),
        cmocka_unit_test(test_embedded_nul_unauthorized),
        cmocka_unit_test(test_missing_sub_unauthorized),
        cmocka_unit_test(test_sub_longer_than_max_unauthorized),
        cmocka_unit_test(test_unknown_role_unauthorized),
        cmocka_unit_test(test_acl_wrong_type_unauthorized),
        cmocka_unit_test(test_acl_too_many_or_too_long_unauthorized),
        cmocka_unit_test(test_failed_verify_leaves_principal_reaching_nothing),
        cmocka_unit_test(test_acl_exact_match),
        cmocka_unit_test(test_acl_device_star),
        cmocka_unit_test(test_acl_prefix_star_gangnam_not_gangbuk),
        cmocka_unit_test(test_acl_star_matches_everything),
        cmocka_unit_test(test_acl_star_slash_x),
        cmocka_unit_test(test_acl_star_backtracks),
        cmocka_unit_test(test_acl_any_pattern_suffices),
        cmocka_unit_test(test_no_acl_claim_allows_everything),
        cmocka_unit_test(test_empty_acl_array_allows_nothing),
        cmocka_unit_test(test_acl_match_respects_len),
        cmocka_unit_test(test_adversarial_pattern_is_not_exponential),
        cmocka_unit_test(test_user_reachable_by_own_sub),
        cmocka_unit_test(test_user_denied_to_other_sub),
        cmocka_unit_test(test_user_reachable_by_admin_with_other_sub),
        cmocka_unit_test(test_user_reachable_by_service_with_other_sub),
        cmocka_unit_test(test_user_denied_to_other_even_with_star_acl),
        cmocka_unit_test(test_admin_still_bound_by_acl),
        cmocka_unit_test(test_empty_sub_owns_no_user),
        cmocka_unit_test(test_user_isolation_through_a_token),
        cmocka_unit_test(test_anonymous_has_all_roles),
        cmocka_unit_test(test_anonymous_long_sub_is_cut),
        cmocka_unit_test(test_role_bits_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
