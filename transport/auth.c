/*
 * auth.c - see auth.h.
 *
 * Design notes. The token is hostile input and libjwt 1.10 trusts it more
 * than it should, so verification is three gates, each failing closed:
 *
 * 1. Shape, checked here before libjwt sees a byte: at most
 *    HF_AUTH_TOKEN_MAX bytes, exactly three base64url segments, header and
 *    payload non-empty and of a decodable length. libjwt alloca()s the
 *    token's length on the stack, and its base64 decoder writes a byte past
 *    a malloc(0) for an empty segment; neither can happen after this gate.
 * 2. Signature. The header is decoded here first, and its algorithm picks
 *    the key by family (HS: the secret; RS, ES: a public key, by kid from
 *    the JWKS), which must then allow that algorithm by its own type
 *    (transport/jwk.h). The signature's length must be the one its
 *    algorithm and key make. An HS token is then verified by jwt_decode()
 *    with the secret; libjwt verifies whatever algorithm the header names
 *    (and skips verification entirely for an empty key, which never
 *    reaches it), so choosing the key here is what pins the algorithm, and
 *    the algorithm libjwt found must be the one picked. An RS or ES token
 *    is verified with the public key OpenSSL parsed once (hf_jwk_verify:
 *    libjwt 1.10 would parse it from PEM for every token). Either way an
 *    RSA public key is never used as an HMAC secret and "none" never gets
 *    that far.
 * 3. Claims, by their JSON types. jwt_get_grant_int() reads a string "exp"
 *    as 0, which would make an expiry vanish, so the claims are taken as
 *    one JSON object and every field is checked for its exact type, size
 *    and value. That object is parsed again from the token's own bytes,
 *    refusing a key that appears twice (libjwt keeps the last one, so a
 *    second "role" could otherwise be slipped past a reader that takes
 *    the first). A token without "exp" never ends, so it is refused unless
 *    the caller allows it (HF_AUTH_ALLOW_NO_EXP, --jwt-allow-no-exp).
 *
 * Every refusal names what to fix (the algorithm, the kid, the issuer...),
 * never where a signature went wrong: "bad signature" is all it says.
 *
 * Key rotation. The public keys are one immutable generation (struct
 * keys) at a time. A check takes a reference to the current one under a
 * short lock and verifies without it; a reload builds the next generation
 * outside the lock, swaps it in, and the old one is freed by whoever
 * drops its last reference. A reload that fails to read a file changes
 * nothing.
 *
 * Matching an address against acl patterns is the classic two-pointer
 * wildcard walk: on a mismatch it goes back to just after the last '*' and
 * lets that star swallow one more byte. It never recurses, allocates
 * nothing and is bounded by len * pattern length.
 *
 * See auth.h for threads.
 */
#include "transport/auth.h"

#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/oom.h"

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

/* What a verifier checks, strings borrowed ("" = not set). */
struct cfg {
    const char *secret, *key_file, *jwks_file;
    const char *issuer, *audience, *role_claim;
    int leeway_s;
    unsigned flags;
};

/* A generation of public keys: the checks that use it hold a reference,
 * and so does the verifier while it is current. */
struct keys {
    hf_jwk_set *pem, *jwks;
    int refs; /* under hf_auth.mu */
};

struct hf_auth {
    struct cfg c;
    char *strs[6]; /* the copies c points into */
    pthread_mutex_t mu;
    struct keys *cur; /* mu */
};

static int
b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Gate 1: the token's shape (see the design notes); the segments' lengths
 * into seg. */
static int
wellformed(const char *t, size_t n, size_t seg[3])
{
    int k = 0;

    seg[0] = seg[1] = seg[2] = 0;
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
           seg[1] % 4 != 1 && seg[2] > 0;
}

/* The segment [s, s + n) of base64url decoded and parsed as JSON that may
 * not repeat a key at any level. libjwt parses with jansson's defaults,
 * where the last of two "role" claims silently wins, so the claims are
 * read from the token's own bytes instead of from libjwt's copy. NULL
 * with *dup set when a key is repeated. */
static json_t *
segment_json(const char *s, size_t n, int *dup)
{
    unsigned char out[HF_AUTH_TOKEN_MAX];
    json_error_t je;
    json_t *j;
    long len = hf_b64url_decode(s, n, out);

    if (len < 0)
        return NULL;
    j = json_loadb((const char *)out, (size_t)len, JSON_REJECT_DUPLICATES,
                   &je);
    if (j == NULL && json_error_code(&je) == json_error_duplicate_key)
        *dup = 1;
    return j;
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

/* The claim at path: a top-level claim of that very name, else a dotted
 * path through nested objects ("app_metadata.role"). NULL when absent. */
static json_t *
claim_at(json_t *g, const char *path)
{
    char part[256];
    json_t *v = json_object_get(g, path);

    if (v != NULL || strchr(path, '.') == NULL)
        return v;
    for (const char *s = path; g != NULL;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n == 0 || n >= sizeof(part) || !json_is_object(g))
            return NULL;
        memcpy(part, s, n);
        part[n] = '\0';
        g = json_object_get(g, part);
        if (dot == NULL)
            return g;
        s = dot + 1;
    }
    return NULL;
}

/* The role bits from the role claim v: absent = user; a role name; or an
 * array of names (unknown ones ignored, one known at least). 0: refused. */
static unsigned
role_bits(json_t *v)
{
    unsigned bits = 0;

    if (v == NULL)
        return HF_ROLE_USER;
    if (json_is_string(v))
        return hf_auth_role_bit(json_string_value(v));
    if (!json_is_array(v))
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++)
        bits |= hf_auth_role_bit(json_string_value(json_array_get(v, i)));
    return bits;
}

/* Does the aud claim (a string or an array of strings) hold want? */
static int
aud_holds(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++)
        if (json_is_string(json_array_get(aud, i)) &&
            strcmp(json_string_value(json_array_get(aud, i)), want) == 0)
            return 1;
    return 0;
}

/* Gate 3: the claims object into *p (already zeroed). 0, or HF_EUNAUTH
 * with *why. */
static int
claims(const struct cfg *c, json_t *g, int64_t now_s, hf_principal *p,
       const char **why)
{
    const char *s;
    size_t n;

#define REFUSE(msg) return (*why = (msg), HF_EUNAUTH)
    if (!json_is_object(g))
        REFUSE("the token's payload is not a JSON object");

    if (claim_str(g, "sub", &s, &n) != 0 || n == 0 || n > HF_AUTH_SUB_MAX)
        REFUSE("the token needs a \"sub\" claim: a string of 1..128 bytes");
    memcpy(p->sub, s, n);
    p->sub[n] = '\0';

    p->role = role_bits(claim_at(g, c->role_claim[0] ? c->role_claim : "role"));
    if (p->role == 0)
        REFUSE("the role claim (role, or --jwt-role-claim) must be user, "
               "admin, device or service, or an array holding one of them");

    if (c->issuer[0] && (claim_str(g, "iss", &s, &n) != 0 ||
                         strcmp(s, c->issuer) != 0))
        REFUSE("the token's issuer (iss) is not the one this server "
               "accepts (--jwt-issuer)");
    if (c->audience[0] && !aud_holds(json_object_get(g, "aud"), c->audience))
        REFUSE("the token's audience (aud) does not include this server's "
               "(--jwt-audience)");

    int has_exp, has_nbf;
    int64_t exp = 0, nbf = 0;
    if (claim_time(g, "exp", &has_exp, &exp) != 0 ||
        claim_time(g, "nbf", &has_nbf, &nbf) != 0)
        REFUSE("exp and nbf must be integers (seconds since the epoch)");
    if (!has_exp && !(c->flags & HF_AUTH_ALLOW_NO_EXP))
        REFUSE("the token has no exp claim; this server requires one "
               "(unless --jwt-allow-no-exp)");
    if (has_exp && exp <= now_s - c->leeway_s)
        REFUSE("token expired (exp): get a new one");
    if (has_nbf && nbf > now_s + c->leeway_s)
        REFUSE("token not yet valid (nbf is in the future; check the "
               "clocks)");
    p->exp = has_exp ? exp : 0;
    claim_display(g, "name", p->name, sizeof(p->name));
    claim_display(g, "picture", p->picture, sizeof(p->picture));

    json_t *acl = json_object_get(g, "acl");
    if (acl == NULL) {
        p->nacl = -1;
        return 0;
    }
    if (!json_is_array(acl) || json_array_size(acl) > HF_AUTH_ACL_MAX)
        REFUSE("acl must be an array of at most 32 address patterns");
    p->nacl = (int)json_array_size(acl);
    for (size_t i = 0; i < json_array_size(acl); i++) {
        json_t *e = json_array_get(acl, i);
        if (!json_is_string(e))
            REFUSE("acl must be an array of at most 32 address patterns");
        s = json_string_value(e);
        n = json_string_length(e);
        if (strlen(s) != n || n > HF_ADDR_MAX)
            REFUSE("acl must be an array of at most 32 address patterns");
        memcpy(p->acl[i], s, n);
        p->acl[i][n] = '\0';
    }
    return 0;
#undef REFUSE
}

/* base64url characters of a signature of len bytes (no padding). */
static size_t
sig_chars(size_t len)
{
    return (len * 4 + 2) / 3;
}

/* Gate 2's key: what verifies a token of algorithm alg with kid (NULL:
 * none) — the secret (*secret) for HS, else a public key (returned) —
 * and how many bytes its signature has. 0, or HF_EUNAUTH with *why when
 * there is none or it may not verify alg. */
static int
pick_key(const struct cfg *c, const struct keys *k, jwt_alg_t alg,
         const char *kid, const struct hf_jwk **jk, size_t *sig,
         const char **why)
{
    *jk = NULL;
    switch (alg) {
    case JWT_ALG_HS256:
    case JWT_ALG_HS384:
    case JWT_ALG_HS512:
        if (c->secret[0] == '\0')
            return *why = "HS256/384/512 tokens are not accepted here: the "
                          "server verifies RS/ES tokens with its public keys",
                   HF_EUNAUTH;
        *sig = alg == JWT_ALG_HS256 ? 32 : alg == JWT_ALG_HS384 ? 48 : 64;
        return 0;
    case JWT_ALG_RS256:
    case JWT_ALG_RS384:
    case JWT_ALG_RS512:
    case JWT_ALG_ES256:
    case JWT_ALG_ES384:
        break;
    default:
        return *why = "unsupported algorithm: use HS256/384/512, "
                      "RS256/384/512, ES256 or ES384",
               HF_EUNAUTH;
    }
    if (k == NULL || (k->pem == NULL && k->jwks == NULL))
        return *why = "RS/ES tokens are not accepted here: the server "
                      "verifies HS tokens with its secret",
               HF_EUNAUTH;
    if (kid != NULL && k->jwks != NULL)
        *jk = hf_jwk_find(k->jwks, kid);
    else if (k->pem != NULL)
        *jk = hf_jwk_find(k->pem, NULL);
    else
        *jk = hf_jwk_find(k->jwks, NULL);
    if (*jk == NULL)
        return *why = kid != NULL ? "unknown kid: no key of the server's "
                                    "JWKS has the token's kid"
                                  : "the token has no kid, and the server's "
                                    "JWKS holds several keys",
               HF_EUNAUTH;
    if (!hf_jwk_allows(*jk, alg))
        return *why = "wrong algorithm for the key: the key's type (or its "
                      "JWK alg) allows another (RSA: RS256/384/512; P-256: "
                      "ES256; P-384: ES384)",
               HF_EUNAUTH;
    *sig = (*jk)->sig_len;
    return 0;
}

/* The header's alg and kid (NULL when absent), or HF_EUNAUTH with *why.
 * libjwt 1.10 takes a typ only when it is "JWT": said here, by name. */
static int
header(json_t *h, jwt_alg_t *alg, const char **kid, const char **why)
{
    json_t *a = json_object_get(h, "alg"), *k = json_object_get(h, "kid");
    json_t *typ = json_object_get(h, "typ");

    if (!json_is_object(h) || !json_is_string(a))
        return *why = "the token's header names no algorithm (alg)",
               HF_EUNAUTH;
    *alg = jwt_str_alg(json_string_value(a));
    if (*alg == JWT_ALG_NONE)
        return *why = "alg none is never accepted: sign the token",
               HF_EUNAUTH;
    if (typ != NULL && (!json_is_string(typ) ||
                        strcasecmp(json_string_value(typ), "JWT") != 0))
        return *why = "the token's typ must be JWT, or absent", HF_EUNAUTH;
    *kid = json_is_string(k) ? json_string_value(k) : NULL;
    /* A kid only picks a public key: an HS token's is not read. */
    if (k != NULL && *alg != JWT_ALG_HS256 && *alg != JWT_ALG_HS384 &&
        *alg != JWT_ALG_HS512 &&
        (*kid == NULL || json_string_length(k) == 0 ||
         json_string_length(k) > HF_JWK_KID_MAX || strlen(*kid) !=
         json_string_length(k)))
        return *why = "the token's kid must be a string of 1..128 bytes",
               HF_EUNAUTH;
    return 0;
}

static int
verify(const struct cfg *c, const struct keys *k, const char *token,
       size_t token_len, int64_t now_s, hf_principal *p, const char **why)
{
    char buf[HF_AUTH_TOKEN_MAX + 1];
    size_t seg[3], sig = 0;
    jwt_t *jwt = NULL;
    json_t *h = NULL, *g = NULL;
    jwt_alg_t alg = JWT_ALG_INVAL;
    const char *kid = NULL;
    const struct hf_jwk *jk;
    int dup = 0, rc = HF_EUNAUTH;

    *why = "missing token";
    if (token == NULL || token_len == 0)
        return HF_EUNAUTH;
    if (token_len > HF_AUTH_TOKEN_MAX)
        return *why = "token too long (at most 8192 bytes)", HF_EUNAUTH;
    if (!wellformed(token, token_len, seg))
        return *why = "not a JWT: three base64url segments "
                      "(header.payload.signature) are expected",
               HF_EUNAUTH;
    memcpy(buf, token, token_len);
    buf[token_len] = '\0';

    h = segment_json(buf, seg[0], &dup);
    if (h == NULL) {
        *why = dup ? "a header field is repeated"
                   : "the token's header is not base64url-encoded JSON";
        goto done;
    }
    if (header(h, &alg, &kid, why) != 0)
        goto done;
    if (pick_key(c, k, alg, kid, &jk, &sig, why) != 0)
        goto done;
    *why = "bad signature";
    if (seg[2] != sig_chars(sig))
        goto done;
    if (jk == NULL) {
        /* HS: libjwt, with the secret (never empty here: an empty key
         * would make jwt_decode skip the check). */
        size_t klen = strlen(c->secret);
        if (klen == 0 || klen > INT_MAX ||
            jwt_decode(&jwt, buf, (const unsigned char *)c->secret,
                       (int)klen) != 0 ||
            jwt_get_alg(jwt) != alg)
            goto done;
    } else {
        /* RS, ES: the key parsed once (transport/jwk.c tells why). */
        unsigned char raw[HF_AUTH_TOKEN_MAX];
        long rl = hf_b64url_decode(buf + seg[0] + seg[1] + 2, seg[2], raw);
        if (rl < 0 || !hf_jwk_verify(jk, alg, buf, seg[0] + 1 + seg[1], raw,
                                     (size_t)rl))
            goto done;
    }
    g = segment_json(buf + seg[0] + 1, seg[1], &dup);
    if (g == NULL) {
        *why = dup ? "a claim is repeated"
                   : "the token's payload is not base64url-encoded JSON";
        goto done;
    }
    rc = claims(c, g, now_s, p, why);
done:
    json_decref(h);
    json_decref(g);
    jwt_free(jwt);
    return rc;
}

/* A principal that may reach nothing: what a failed verify leaves. */
static void
deny_all(hf_principal *p)
{
    memset(p, 0, sizeof(*p)); /* nacl 0: no pattern matches */
}

int
hf_auth_verify(const char *secret, const char *token, size_t token_len,
               int64_t now_s, unsigned flags, hf_principal *p)
{
    struct cfg c = {.secret = secret, .key_file = "", .jwks_file = "",
                    .issuer = "", .audience = "", .role_claim = "",
                    .flags = flags};
    const char *why;
    int rc;

    if (p == NULL)
        return HF_EUNAUTH;
    deny_all(p);
    if (secret == NULL || secret[0] == '\0')
        return HF_EUNAUTH;
    rc = verify(&c, NULL, token, token_len, now_s, p, &why);
    if (rc != 0)
        deny_all(p);
    return rc;
}

int
hf_auth_check(hf_auth *a, const char *token, size_t token_len, int64_t now_s,
              hf_principal *p, const char **why)
{
    static const char off[] = "auth is off on this server";
    struct keys *k;
    int rc;

    *why = off;
    if (p == NULL)
        return HF_EUNAUTH;
    deny_all(p);
    if (a == NULL)
        return HF_EUNAUTH;
    pthread_mutex_lock(&a->mu);
    k = a->cur;
    k->refs++;
    pthread_mutex_unlock(&a->mu);
    rc = verify(&a->c, k, token, token_len, now_s, p, why);
    pthread_mutex_lock(&a->mu);
    if (--k->refs > 0)
        k = NULL;
    pthread_mutex_unlock(&a->mu);
    if (k != NULL) { /* replaced by a reload while in use: the last user */
        hf_jwk_set_free(k->pem);
        hf_jwk_set_free(k->jwks);
        free(k);
    }
    if (rc != 0)
        deny_all(p);
    return rc;
}

int
hf_auth_leeway(const hf_auth *a)
{
    return a != NULL ? a->c.leeway_s : 0;
}

/* The key files of c, loaded into a new generation (refs 1), or NULL
 * with why. */
static struct keys *
load_keys(const struct cfg *c, char *why, size_t n)
{
    struct keys *k = hf_xcalloc(1, sizeof(*k));

    k->refs = 1;
    if ((c->key_file[0] && hf_jwk_load_pem(&k->pem, c->key_file, why, n)) ||
        (c->jwks_file[0] &&
         hf_jwk_load_jwks(&k->jwks, c->jwks_file, why, n))) {
        hf_jwk_set_free(k->pem);
        hf_jwk_set_free(k->jwks);
        free(k);
        return NULL;
    }
    return k;
}

static const char *
keep(hf_auth *a, int i, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    a->strs[i] = hf_xmalloc(n + 1);
    memcpy(a->strs[i], n ? s : "", n);
    a->strs[i][n] = '\0';
    return a->strs[i];
}

int
hf_auth_open(hf_auth **out, const struct hf_auth_opts *o, char *why,
             size_t n)
{
    hf_auth *a;

    *out = NULL;
    if ((o->secret == NULL || !o->secret[0]) &&
        (o->key_file == NULL || !o->key_file[0]) &&
        (o->jwks_file == NULL || !o->jwks_file[0]))
        return 0;
    if (o->secret != NULL && strlen(o->secret) > INT_MAX) {
        snprintf(why, n, "the JWT secret is too long");
        return -1;
    }
    a = hf_xcalloc(1, sizeof(*a));
    a->c = (struct cfg){
        .secret = keep(a, 0, o->secret),
        .key_file = keep(a, 1, o->key_file),
        .jwks_file = keep(a, 2, o->jwks_file),
        .issuer = keep(a, 3, o->issuer),
        .audience = keep(a, 4, o->audience),
        .role_claim = keep(a, 5, o->role_claim),
        .leeway_s = o->leeway_s < 0 ? 0 : o->leeway_s,
        .flags = o->flags,
    };
    pthread_mutex_init(&a->mu, NULL);
    if ((a->cur = load_keys(&a->c, why, n)) == NULL) {
        hf_auth_close(a);
        return -1;
    }
    *out = a;
    return 0;
}

int
hf_auth_reload(hf_auth *a, char *why, size_t n)
{
    struct keys *k, *old;

    if (a == NULL)
        return 0;
    if ((k = load_keys(&a->c, why, n)) == NULL)
        return -1;
    pthread_mutex_lock(&a->mu);
    old = a->cur;
    a->cur = k;
    if (--old->refs > 0)
        old = NULL; /* the last check using it frees it */
    pthread_mutex_unlock(&a->mu);
    if (old != NULL) {
        hf_jwk_set_free(old->pem);
        hf_jwk_set_free(old->jwks);
        free(old);
    }
    return 0;
}

void
hf_auth_close(hf_auth *a)
{
    if (a == NULL)
        return;
    if (a->cur != NULL) {
        hf_jwk_set_free(a->cur->pem);
        hf_jwk_set_free(a->cur->jwks);
        free(a->cur);
    }
    pthread_mutex_destroy(&a->mu);
    for (int i = 0; i < 6; i++)
        free(a->strs[i]);
    free(a);
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
