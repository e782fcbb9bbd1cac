/*
 * auth.c - see auth.h.
 *
 * Design notes. The token is hostile input and libjwt 1.10 trusts it more
 * than it should, so verification is three gates, each failing closed:
 *
 * 1. Shape, checked here before libjwt sees a byte: at most
 *    HF_AUTH_TOKEN_MAX bytes, exactly three base64url segments, header and
 *    payload non-empty and of a decodable length, and a signature of
 *    exactly 43 characters (32 bytes, HMAC-SHA256). libjwt alloca()s the
 *    token's length on the stack, and its base64 decoder writes a byte past
 *    a malloc(0) for an empty segment; neither can happen after this gate.
 * 2. Signature, by jwt_decode() with the secret. libjwt verifies whatever
 *    algorithm the header names (and skips verification entirely for an
 *    empty key, which is why an empty secret is refused up front), so the
 *    algorithm it found is then required to be HS256: "none", HS384, HS512
 *    and the public-key ones are all refused.
 * 3. Claims, by their JSON types. jwt_get_grant_int() reads a string "exp"
 *    as 0, which would make an expiry vanish, so the claims are taken as
 *    one JSON object and every field is checked for its exact type, size
 *    and value. That object is parsed again from the token's own bytes,
 *    refusing a key that appears twice (libjwt keeps the last one, so a
 *    second "role" could otherwise be slipped past a reader that takes
 *    the first). A token without "exp" never ends, so it is refused unless
 *    the caller allows it (HF_AUTH_ALLOW_NO_EXP, --jwt-allow-no-exp).
 *
 * Matching an address against acl patterns is the classic two-pointer
 * wildcard walk: on a mismatch it goes back to just after the last '*' and
 * lets that star swallow one more byte. It never recurses, allocates
 * nothing and is bounded by len * pattern length.
 *
 * Nothing here has state outside its arguments; see auth.h for threads.
 */
#include "transport/auth.h"

#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LEN 43 /* base64url of a 32-byte HMAC-SHA256, no padding */

static const struct {
    const char *name;
    unsigned bit;
} roles[] = {
    {.name = "user", .bit = HF_ROLE_USER},
    {.name = "admin", .bit = HF_ROLE_ADMIN},
    {.name = "device", .bit = HF_ROLE_DEVICE},
    {.name = "service", .bit = HF_ROLE_SERVICE},
};

unsigned
hf_auth_role_bit(const char *name)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(name, roles[i].name) == 0)
            return roles[i].bit;
    return 0;
}

/* A principal that may reach nothing: what a failed verify leaves. */
static void
deny_all(hf_principal *p)
{
    memset(p, 0, sizeof(*p)); /* nacl 0: no pattern matches */
}

void
hf_auth_anonymous(hf_principal *p, const char *sub)
{
    if (p == NULL)
        return;
    memset(p, 0, sizeof(*p));
    if (sub == NULL || sub[0] == '\0')
        sub = "anonymous";
    size_t n = strlen(sub);
    if (n > HF_AUTH_SUB_MAX)
        n = HF_AUTH_SUB_MAX;
    memcpy(p->sub, sub, n);
    p->role = HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE | HF_ROLE_SERVICE;
    p->exp = 0;
    p->nacl = -1;
}

/* ---- verify ---- */

static int
b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Gate 1: the token's shape (see the design notes). */
static int
wellformed(const char *t, size_t n)
{
    size_t seg[3] = {0, 0, 0};
    int k = 0;

    if (n == 0 || n > HF_AUTH_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '.') {
            if (++k > 2)
                return 0;
        } else if (b64url(c)) {
            seg[k]++;
        } else {
            return 0;
        }
    }
    /* A base64 length of 1 mod 4 encodes no whole byte: never valid. */
    return k == 2 && seg[0] > 0 && seg[0] % 4 != 1 && seg[1] > 0 &&
           seg[1] % 4 != 1 && seg[2] == SIG_LEN;
}

/* A string claim; 0 when present and well typed. jansson already refuses
 * "\u0000" (no JSON_ALLOW_NUL), the length check keeps that true should
 * the decoding flags ever change. */
static int
claim_str(json_t *g, const char *name, const char **s, size_t *len)
{
    json_t *v = json_object_get(g, name);
    if (!json_is_string(v))
        return -1;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return strlen(*s) == *len ? 0 : -1;
}

/* An optional integer time claim: 0 (and *present, *t), or -1 when it is
 * there but not an integer. */
static int
claim_time(json_t *g, const char *name, int *present, int64_t *t)
{
    json_t *v = json_object_get(g, name);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return -1;
    *t = (int64_t)json_integer_value(v);
    return 0;
}

/* An optional display claim into dst (cap bytes): copied only when it is
 * a string of 1..cap-1 bytes without control characters; otherwise left
 * "" - a display name is no reason to refuse a login. */
static void
claim_display(json_t *g, const char *name, char *dst, size_t cap)
{
    const char *s;
    size_t n;

    if (claim_str(g, name, &s, &n) != 0 || n == 0 || n >= cap)
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Gate 3: the claims object into *p (already zeroed). 0 or -1. */
static int
claims(json_t *g, int64_t now_s, unsigned flags, hf_principal *p)
{
    const char *s;
    size_t n;
    int present;
    int64_t t;

    if (!json_is_object(g))
        return -1;

    if (claim_str(g, "sub", &s, &n) != 0 || n == 0 || n > HF_AUTH_SUB_MAX)
        return -1;
    memcpy(p->sub, s, n);
    p->sub[n] = '\0';

    if (claim_str(g, "role", &s, &n) != 0)
        return -1;
    p->role = hf_auth_role_bit(s);
    if (p->role == 0)
        return -1;

    if (claim_time(g, "exp", &present, &t) != 0)
        return -1;
    if (!present && !(flags & HF_AUTH_ALLOW_NO_EXP))
        return -1;
    if (present) {
        if (t <= now_s)
            return -1;
        p->exp = t;
    }
    if (claim_time(g, "nbf", &present, &t) != 0 || (present && t > now_s))
        return -1;
    claim_display(g, "name", p->name, sizeof(p->name));
    claim_display(g, "picture", p->picture, sizeof(p->picture));

    json_t *acl = json_object_get(g, "acl");
    if (acl == NULL) {
        p->nacl = -1;
        return 0;
    }
    if (!json_is_array(acl) || json_array_size(acl) > HF_AUTH_ACL_MAX)
        return -1;
    p->nacl = (int)json_array_size(acl);
    for (size_t i = 0; i < json_array_size(acl); i++) {
        json_t *e = json_array_get(acl, i);
        if (!json_is_string(e))
            return -1;
        s = json_string_value(e);
        n = json_string_length(e);
        if (strlen(s) != n || n > HF_ADDR_MAX)
            return -1;
        memcpy(p->acl[i], s, n);
        p->acl[i][n] = '\0';
    }
    return 0;
}

/* Gate 3's input: the segment [s, s + n) of base64url decoded and parsed
 * as JSON that may not repeat a key at any level. libjwt parses with
 * jansson's defaults, where the last of two "role" claims silently wins,
 * so the claims are read from the token's own bytes instead of from
 * libjwt's copy. NULL when it does not decode or parse. */
static json_t *
segment_json(const char *s, size_t n)
{
    unsigned char in[HF_AUTH_TOKEN_MAX + 4], out[HF_AUTH_TOKEN_MAX];
    size_t m = 0;
    int len;

    if (n == 0 || n > HF_AUTH_TOKEN_MAX)
        return NULL;
    in[0] = 0;
    for (size_t i = 0; i < n; i++)
        in[m++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
    while (m % 4 != 0)
        in[m++] = '=';
    len = EVP_DecodeBlock(out, in, (int)m);
    if (len < 0)
        return NULL;
    /* EVP_DecodeBlock counts the padding's zero bytes in. */
    for (size_t i = m; i > 0 && in[i - 1] == '='; i--)
        len--;
    return json_loadb((const char *)out, (size_t)len, JSON_REJECT_DUPLICATES,
                      NULL);
}

int
hf_auth_verify(const char *secret, const char *token, size_t token_len,
               int64_t now_s, unsigned flags, hf_principal *p)
{
    char buf[HF_AUTH_TOKEN_MAX + 1];
    jwt_t *jwt = NULL;
    json_t *g = NULL;
    int rc = HF_EUNAUTH;

    if (p == NULL)
        return HF_EUNAUTH;
    deny_all(p);
    if (secret == NULL || token == NULL)
        return HF_EUNAUTH;
    size_t klen = strlen(secret);
    /* An empty key makes jwt_decode skip the signature check. */
    if (klen == 0 || klen > INT_MAX)
        return HF_EUNAUTH;
    if (!wellformed(token, token_len))
        return HF_EUNAUTH;

    memcpy(buf, token, token_len);
    buf[token_len] = '\0';
    if (jwt_decode(&jwt, buf, (const unsigned char *)secret, (int)klen) != 0)
        goto done;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto done;
    {
        /* Both segments, as sent: a repeated key in either is refused. */
        const char *d1 = memchr(buf, '.', token_len);
        const char *d2 = memchr(d1 + 1, '.', token_len - (size_t)(d1 + 1 - buf));
        json_t *h = segment_json(buf, (size_t)(d1 - buf));
        if (h == NULL)
            goto done;
        json_decref(h);
        g = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    }
    if (claims(g, now_s, flags, p) == 0)
        rc = 0;

done:
    if (rc != 0)
        deny_all(p);
    json_decref(g);
    jwt_free(jwt);
    return rc;
}

/* ---- allows ---- */

/* Bytes before the NUL in a field of cap bytes (all of them if none). */
static size_t
fieldlen(const char *f, size_t cap)
{
    const char *end = memchr(f, '\0', cap);
    return end != NULL ? (size_t)(end - f) : cap;
}

/* Does pattern pat[0..plen) ('*' = any run of bytes) match all of
 * s[0..n)? */
static int
glob(const char *pat, size_t plen, const char *s, size_t n)
{
    size_t pi = 0, si = 0;
    size_t star = SIZE_MAX; /* index of the last '*' seen in pat */
    size_t mark = 0;        /* where in s that star's run ends now */

    while (si < n) {
        if (pi < plen && pat[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < plen && pat[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < plen && pat[pi] == '*')
        pi++;
    return pi == plen;
}

int
hf_auth_allows(const hf_principal *p, const char *addr, size_t len)
{
    static const char user[] = "user/";
    const size_t ulen = sizeof(user) - 1;

    if (p == NULL || (addr == NULL && len > 0))
        return HF_EFORBIDDEN;

    if (p->nacl >= 0) {
        int hit = 0;
        for (int i = 0; i < p->nacl && i < HF_AUTH_ACL_MAX && !hit; i++)
            hit = glob(p->acl[i], fieldlen(p->acl[i], sizeof(p->acl[i])), addr,
                       len);
        if (!hit)
            return HF_EFORBIDDEN;
    }

    if (len >= ulen && memcmp(addr, user, ulen) == 0 &&
        (p->role & (HF_ROLE_ADMIN | HF_ROLE_SERVICE)) == 0) {
        size_t slen = fieldlen(p->sub, sizeof(p->sub));
        if (slen == 0 || slen != len - ulen ||
            memcmp(p->sub, addr + ulen, slen) != 0)
            return HF_EFORBIDDEN;
    }
    return 0;
}

/* ---- mint ---- */

/* {"acl": [...]} as JSON text (malloc'd), or NULL. */
static char *
acl_json(const char *const *acl)
{
    json_t *o = json_object();
    json_t *a = json_array();
    char *s = NULL;

    if (o == NULL || a == NULL)
        goto done;
    for (size_t i = 0; acl[i] != NULL; i++)
        if (json_array_append_new(a, json_string(acl[i])) != 0)
            goto done;
    if (json_object_set(o, "acl", a) != 0)
        goto done;
    s = json_dumps(o, JSON_COMPACT);
done:
    json_decref(a);
    json_decref(o);
    return s;
}

char *
hf_auth_mint(const char *secret, const char *sub, const char *role,
             int64_t exp_s, const char *const *acl)
{
    return hf_auth_mint_ex(secret, sub, role, exp_s, acl, NULL);
}

char *
hf_auth_mint_ex(const char *secret, const char *sub, const char *role,
                int64_t exp_s, const char *const *acl, const char *extra_json)
{
    jwt_t *jwt = NULL;
    char *out = NULL;

    if (secret == NULL || secret[0] == '\0' || strlen(secret) > INT_MAX)
        return NULL;
    if ((int64_t)(long)exp_s != exp_s) /* libjwt takes a long */
        return NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (sub != NULL && jwt_add_grant(jwt, "sub", sub) != 0)
        goto done;
    if (role != NULL && jwt_add_grant(jwt, "role", role) != 0)
        goto done;
    if (exp_s > 0 && jwt_add_grant_int(jwt, "exp", (long)exp_s) != 0)
        goto done;
    if (acl != NULL) {
        char *js = acl_json(acl);
        int rc = js != NULL ? jwt_add_grants_json(jwt, js) : -1;
        free(js);
        if (rc != 0)
            goto done;
    }
    if (extra_json != NULL && jwt_add_grants_json(jwt, extra_json) != 0)
        goto done;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret,
                    (int)strlen(secret)) != 0)
        goto done;
    out = jwt_encode_str(jwt);
done:
    jwt_free(jwt);
    return out;
}
