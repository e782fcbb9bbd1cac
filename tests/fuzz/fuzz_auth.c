/*
 * fuzz_auth.c - JWT verification and address matching (transport/auth.h).
 *
 * A fuzzer mutating tokens almost never produces a valid signature, so
 * most of hf_auth_verify (libjwt's parsing, the algorithm gate, the
 * claims) would stay out of reach. Byte 0 of the input therefore picks a
 * mode (byte 0 % 4), and the target signs where needed:
 *
 *   0  the rest is a token, verified as it is;
 *   1  the rest is "HEADER\nCLAIMS" (any bytes): the target encodes both
 *      as base64url and signs them with HMAC-SHA256 under the server's
 *      secret, so header and claims are what the fuzzer explores;
 *   2  as 1, signed with another secret: must be refused;
 *   3  the rest is "ROLE PATTERN\nSUB\nADDRESS" (ROLE one byte of role
 *      bits): hf_auth_allows for a principal with that one acl pattern,
 *      against a plain reference matcher.
 *
 * Properties, beyond no crash and no sanitizer report:
 *  - a refused token leaves the deny-all principal (all zero);
 *  - an accepted one has a subject of 1..HF_AUTH_SUB_MAX bytes, at least
 *    one role bit (a role array may give several), an exp after now (or none), at most HF_AUTH_ACL_MAX
 *    NUL-terminated patterns; signed tokens (mode 1) are accepted exactly
 *    when their header says HS256 and their claims are what auth.h lists,
 *    with the claims' values;
 *  - hf_auth_allows agrees with the reference, and lets a subject reach
 *    its own user/ address (mode 3, and every accepted token).
 *
 * The clock is fixed (NOW_S) so the committed corpus replays the same
 * way whenever it runs; its tokens are minted to expire long after it.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/actor.h"
#include "tests/fuzz/fuzz.h"
#include "transport/auth.h"

#define SECRET "fuzz-secret"
#define OTHER  "fuzz-secret-other"
#define NOW_S  1700000000

static const unsigned all_roles =
    HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE | HF_ROLE_SERVICE;

/* ---- the reference: what auth.h says, written the obvious way ---- */

/* '*' matches any run of bytes; O(plen * n) table, no cleverness. */
static int
ref_glob(const char *pat, size_t plen, const char *s, size_t n)
{
    /* m[j]: pat[0..i) matches s[0..j) */
    unsigned char *m = calloc(n + 1, 1), *prev = calloc(n + 1, 1);
    int r;

    FZ_CHECK(m != NULL && prev != NULL);
    prev[0] = 1;
    for (size_t i = 1; i <= plen; i++) {
        memset(m, 0, n + 1);
        for (size_t j = 0; j <= n; j++) {
            if (pat[i - 1] == '*')
                m[j] = prev[j] || (j > 0 && m[j - 1]);
            else
                m[j] = j > 0 && prev[j - 1] && pat[i - 1] == s[j - 1];
        }
        memcpy(prev, m, n + 1);
    }
    r = prev[n];
    free(m);
    free(prev);
    return r;
}

static int
ref_allows(const hf_principal *p, const char *addr, size_t len)
{
    int hit = p->nacl < 0;
    size_t sl = strlen(p->sub);

    for (int i = 0; i < p->nacl && !hit; i++)
        hit = ref_glob(p->acl[i], strlen(p->acl[i]), addr, len);
    if (!hit)
        return 0;
    if (len >= 5 && memcmp(addr, "user/", 5) == 0 &&
        !(p->role & (HF_ROLE_ADMIN | HF_ROLE_SERVICE)))
        return sl > 0 && sl == len - 5 && memcmp(p->sub, addr + 5, sl) == 0;
    return 1;
}

/* ---- principals ---- */

static int
zero(const hf_principal *p)
{
    static const hf_principal z;
    return memcmp(p, &z, sizeof(z)) == 0;
}

static void
check_accepted(const hf_principal *p)
{
    char addr[5 + HF_AUTH_SUB_MAX + 1];
    size_t sl = strnlen(p->sub, sizeof(p->sub));
    unsigned r = p->role;

    FZ_CHECK(sl > 0 && sl <= HF_AUTH_SUB_MAX);
    FZ_CHECK(r != 0 && (r & ~all_roles) == 0);
    FZ_CHECK(p->exp == 0 || p->exp > NOW_S);
    FZ_CHECK(p->nacl >= -1 && p->nacl <= HF_AUTH_ACL_MAX);
    for (int i = 0; i < p->nacl; i++)
        FZ_CHECK(memchr(p->acl[i], 0, sizeof(p->acl[i])) != NULL);
    /* with no acl, a subject reaches its own user/ address */
    memcpy(addr, "user/", 5);
    memcpy(addr + 5, p->sub, sl);
    if (p->nacl < 0)
        FZ_CHECK(hf_auth_allows(p, addr, 5 + sl) == 0);
    FZ_CHECK((hf_auth_allows(p, addr, 5 + sl) == 0) ==
             ref_allows(p, addr, 5 + sl));
}

static void
verify(const char *tok, size_t n, hf_principal *p, int *rv)
{
    hf_principal strict;
    int rv0 = hf_auth_verify(SECRET, tok, n, NOW_S, 0, &strict);

    *rv = hf_auth_verify(SECRET, tok, n, NOW_S, HF_AUTH_ALLOW_NO_EXP, p);
    FZ_CHECK(*rv == 0 || *rv == HF_EUNAUTH);
    /* Requiring exp only ever refuses more. */
    FZ_CHECK(rv0 != 0 || *rv == 0);
    if (*rv != 0)
        FZ_CHECK(zero(p));
    else
        check_accepted(p);
}

/* ---- signing ---- */

static size_t
b64url(char *out, const unsigned char *in, size_t n)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
    }
    return o;
}

/* header.claims.signature; malloc'd, length in *len. */
static char *
sign(const char *key, const uint8_t *h, size_t hl, const uint8_t *c,
     size_t cl, size_t *len)
{
    char *t = malloc(4 * (hl + cl) / 3 + 64);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t n;

    FZ_CHECK(t != NULL);
    n = b64url(t, h, hl);
    t[n++] = '.';
    n += b64url(t + n, c, cl);
    FZ_CHECK(HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)t, n,
                  mac, &maclen) != NULL);
    t[n++] = '.';
    n += b64url(t + n, mac, maclen);
    *len = n;
    return t;
}

/* ---- what a valid signed token holds (auth.h), read with jansson ---- */

static int
str_claim(json_t *g, const char *name, size_t max, const char **s)
{
    json_t *v = json_object_get(g, name);
    size_t n;

    if (!json_is_string(v))
        return 0;
    *s = json_string_value(v);
    n = json_string_length(v);
    return n > 0 && n <= max && strlen(*s) == n;
}

static int
time_claim(json_t *g, const char *name, int64_t *t)
{
    json_t *v = json_object_get(g, name);

    *t = 0;
    if (v == NULL)
        return 1;
    if (!json_is_integer(v))
        return 0;
    *t = (int64_t)json_integer_value(v);
    return 1;
}

/*
 * Whether header and claims make a token auth.h accepts: 1 and *want, the
 * principal it gives; 0 when it must be refused; -1 when this reference
 * cannot tell. Only for text without NUL bytes (libjwt reads the decoded
 * segments as C strings). Of the header, libjwt 1.10 reads "alg" (case
 * insensitive) and, for any alg but none, "typ", which must then be
 * absent or "JWT" (case insensitive).
 */
static int
valid(const uint8_t *h, size_t hl, const uint8_t *c, size_t cl,
      hf_principal *want)
{
    json_t *hj = json_loadb((const char *)h, hl, 0, NULL);
    json_t *g = json_loadb((const char *)c, cl, 0, NULL);
    json_t *alg = hj ? json_object_get(hj, "alg") : NULL, *acl;
    json_t *typ = hj ? json_object_get(hj, "typ") : NULL;
    json_t *role;
    const char *sub = NULL;
    unsigned bits = 0;
    int64_t exp, nbf;
    int ok = 0;

    memset(want, 0, sizeof(*want));
    if (!json_is_object(hj) || !json_is_string(alg) ||
        strcasecmp(json_string_value(alg), "HS256") != 0 || !json_is_object(g))
        goto done;
    if (typ != NULL && !json_is_string(typ)) {
        ok = -1;
        goto done;
    }
    if (typ != NULL && strcasecmp(json_string_value(typ), "JWT") != 0)
        goto done;
    if (!str_claim(g, "sub", HF_AUTH_SUB_MAX, &sub))
        goto done;
    /* role: absent = user; a name; an array whose known names count. */
    role = json_object_get(g, "role");
    if (role == NULL)
        bits = HF_ROLE_USER;
    else if (json_is_string(role))
        bits = hf_auth_role_bit(json_string_value(role));
    for (size_t i = 0; json_is_array(role) && i < json_array_size(role); i++)
        bits |= hf_auth_role_bit(json_string_value(json_array_get(role, i)));
    if (bits == 0)
        goto done;
    if (!time_claim(g, "exp", &exp) || (json_object_get(g, "exp") && exp <= NOW_S))
        goto done;
    if (!time_claim(g, "nbf", &nbf) || nbf > NOW_S)
        goto done;
    memcpy(want->sub, sub, strlen(sub));
    want->role = bits;
    want->exp = exp;
    want->nacl = -1;
    if ((acl = json_object_get(g, "acl")) != NULL) {
        if (!json_is_array(acl) || json_array_size(acl) > HF_AUTH_ACL_MAX)
            goto done;
        want->nacl = (int)json_array_size(acl);
        for (size_t i = 0; i < json_array_size(acl); i++) {
            json_t *e = json_array_get(acl, i);
            const char *s;
            if (!json_is_string(e))
                goto done;
            s = json_string_value(e);
            if (strlen(s) != json_string_length(e) || strlen(s) > HF_ADDR_MAX)
                goto done;
            memcpy(want->acl[i], s, strlen(s));
        }
    }
    ok = 1;
done:
    json_decref(hj);
    json_decref(g);
    return ok;
}

static void
signed_token(const uint8_t *d, size_t n, int forged)
{
    const uint8_t *nl = memchr(d, '\n', n);
    const uint8_t *h = d, *c;
    size_t hl, cl, tl;
    hf_principal p, want;
    char *tok;
    int rv;

    if (nl == NULL || n > HF_AUTH_TOKEN_MAX)
        return;
    hl = (size_t)(nl - d);
    c = nl + 1;
    cl = n - hl - 1;
    tok = sign(forged ? OTHER : SECRET, h, hl, c, cl, &tl);
    verify(tok, tl, &p, &rv);
    free(tok);
    if (forged) {
        FZ_CHECK(rv != 0);
        return;
    }
    if (tl > HF_AUTH_TOKEN_MAX || hl == 0 || cl == 0 || memchr(d, 0, n))
        return;
    switch (valid(h, hl, c, cl, &want)) {
    case 1:
        if (rv != 0)
            fprintf(stderr, "valid token refused: %.*s\n", (int)n, d);
        FZ_CHECK(rv == 0 && memcmp(&p, &want, sizeof(p)) == 0);
        break;
    case 0:
        if (rv == 0)
            fprintf(stderr, "invalid token accepted: %.*s\n", (int)n, d);
        FZ_CHECK(rv != 0);
        break;
    }
}

static void
acl_match(const uint8_t *d, size_t n)
{
    const uint8_t *e = d + n, *p1, *p2;
    hf_principal p;
    size_t pl, sl;

    if (n < 1)
        return;
    memset(&p, 0, sizeof(p));
    p.role = d[0] & all_roles;
    d++;
    if ((p1 = memchr(d, '\n', (size_t)(e - d))) == NULL ||
        (p2 = memchr(p1 + 1, '\n', (size_t)(e - p1 - 1))) == NULL)
        return;
    pl = (size_t)(p1 - d);
    sl = (size_t)(p2 - p1 - 1);
    if (pl > HF_ADDR_MAX || sl > HF_AUTH_SUB_MAX || memchr(d, 0, pl) ||
        memchr(p1 + 1, 0, sl) || (size_t)(e - p2 - 1) > 512)
        return;
    memcpy(p.acl[0], d, pl);
    memcpy(p.sub, p1 + 1, sl);
    for (p.nacl = -1; p.nacl <= 1; p.nacl++)
        FZ_CHECK((hf_auth_allows(&p, (const char *)p2 + 1,
                                 (size_t)(e - p2 - 1)) == 0) ==
                 ref_allows(&p, (const char *)p2 + 1, (size_t)(e - p2 - 1)));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_principal p;
    int rv;

    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0:
        verify((const char *)data + 1, size - 1, &p, &rv);
        break;
    case 1:
    case 2:
        signed_token(data + 1, size - 1, data[0] % 4 == 2);
        break;
    case 3:
        acl_match(data + 1, size - 1);
        break;
    }
    return 0;
}
