/*
 * access.c - who may come in from where, and how often: CORS origins,
 * public (tokenless) addresses, and the token bucket that limits
 * WebSocket messages and HTTP requests.
 *
 * Design notes
 * ------------
 * Origins. With --cors-origin set, a browser request is served to the
 * listed origins (or any, with "*") and to the server's own origin (an
 * Origin whose host:port is the request's Host: the demo pages it serves
 * itself). Preflights (OPTIONS) are answered here without a token, since
 * browsers never send one with them. A WebSocket handshake from another
 * origin is refused with 403: browsers send Origin on every handshake and
 * apply no CORS to WebSockets, so the check is the server's. A request
 * without Origin is not a browser's (or is same-origin) and is not
 * checked: a non-browser client could send any Origin anyway.
 *
 * Public addresses. The --public patterns become one principal shared by
 * every caller without a token: no subject, role HF_ROLE_PUBLIC alone, and
 * the patterns as its acl, so hf_auth_allows() decides what it reaches
 * with the very rules of a token's acl (the user/{name} rule included: an
 * inbox is never public). The host then lets it call only methods a kind
 * marks pub (core/actor.h).
 *
 * Rate. One token bucket (bucket_take) serves both transports. A
 * WebSocket connection has its own; HTTP requests, which have no
 * connection worth the name, share one per subject (per client address
 * when anonymous) across every gateway thread, in a table behind one
 * short lock. The table forgets buckets that have refilled (they are the
 * same as new ones), so its size follows the callers of the last
 * --rate-burst / --rate seconds; past RL_MAX such callers, newcomers are
 * told to retry in a second rather than let the table grow without end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
#include "core/oom.h"

#include "transport/gw_int.h"

#define RL_MAX 65536 /* HTTP callers tracked at once */

/* ------------------------------------------------------------------ */
/* the token bucket                                                    */

int
gw_bucket_take(double *tokens, uint64_t *last_us, uint64_t now_us, int rate,
               int burst, double cost, int *retry_s)
{
    if (cost > burst) /* else it could never be paid */
        cost = burst;
    /* Only forward: another thread may have stamped a later time. */
    if (now_us > *last_us) {
        *tokens += (double)(now_us - *last_us) * rate / 1e6;
        *last_us = now_us;
    }
    if (*tokens > burst)
        *tokens = burst;
    if (*tokens >= cost) {
        *tokens -= cost;
        return 1;
    }
    if (retry_s != NULL) {
        double s = (cost - *tokens) / rate;
        *retry_s = s < 1.0 ? 1 : (int)s + (s > (int)s);
    }
    return 0;
}

struct rl_ent {
    hf_hnode hn;
    double tokens;
    uint64_t last_us;
    size_t klen;
    char key[];
};

struct prune {
    hf_htab *t;
    uint64_t now_us;
    int rate, burst;
};

static void
prune_one(hf_hnode *n, void *arg)
{
    struct prune *pr = arg;
    struct rl_ent *e = hf_htab_entry(n, struct rl_ent, hn);

    uint64_t dt = pr->now_us > e->last_us ? pr->now_us - e->last_us : 0;

    if (e->tokens + (double)dt * pr->rate / 1e6 >= pr->burst) {
        hf_htab_remove(pr->t, n);
        free(e);
    }
}

int
gw_http_rate(hf_gateway *g, struct lws *wsi, const hf_principal *p,
             double cost, int *retry_s)
{
    char key[HF_AUTH_SUB_MAX + 64];
    size_t klen;
    uint64_t now = (uint64_t)lws_now_usecs(), h;
    struct rl_ent *e = NULL;
    int ok;

    if (p != NULL && p->sub[0] != '\0') {
        klen = (size_t)snprintf(key, sizeof(key), "s:%s", p->sub);
    } else {
        key[0] = 'a';
        key[1] = ':';
        if (lws_get_peer_simple(wsi, key + 2, sizeof(key) - 2) == NULL)
            key[2] = '\0';
        klen = strlen(key);
    }
    h = hf_addr_hash(key, klen);
    pthread_mutex_lock(&g->rl_mu);
    for (hf_hnode *n = hf_htab_find(&g->rl, h); n && !e; n = hf_htab_next(n)) {
        struct rl_ent *x = hf_htab_entry(n, struct rl_ent, hn);
        if (x->klen == klen && memcmp(x->key, key, klen) == 0)
            e = x;
    }
    if (e == NULL && hf_htab_count(&g->rl) >= RL_MAX) {
        struct prune pr = {&g->rl, now, g->cfg.rate, g->cfg.rate_burst};
        hf_htab_walk(&g->rl, prune_one, &pr);
    }
    if (e == NULL && hf_htab_count(&g->rl) >= RL_MAX) {
        pthread_mutex_unlock(&g->rl_mu);
        HF_GW_INC(rate_limited);
        *retry_s = 1;
        return HF_ERATELIMIT;
    }
    if (e == NULL) {
        e = hf_xcalloc(1, sizeof(*e) + klen);
        e->tokens = g->cfg.rate_burst;
        e->last_us = now;
        e->klen = klen;
        memcpy(e->key, key, klen);
        hf_htab_insert(&g->rl, &e->hn, h);
    }
    ok = gw_bucket_take(&e->tokens, &e->last_us, now, g->cfg.rate,
                        g->cfg.rate_burst, cost, retry_s);
    pthread_mutex_unlock(&g->rl_mu);
    if (!ok)
        HF_GW_INC(rate_limited);
    return ok ? 0 : HF_ERATELIMIT;
}

/* ------------------------------------------------------------------ */
/* origins                                                             */

/* Is origin (NUL-terminated) one of the --cors-origin list? */
static int
origin_listed(const hf_gateway *g, const char *origin, int *any)
{
    const char *it;
    size_t pos = 0, n, olen = strlen(origin);

    while (hf_opt_list_next(g->cfg.cors_origin, &pos, &it, &n)) {
        if (n == 1 && it[0] == '*')
            return *any = 1;
        /* Origins are compared as browsers send them, but without a
         * trailing slash an operator may have typed. */
        if (it[n - 1] == '/')
            n--;
        if (n == olen && strncasecmp(it, origin, n) == 0)
            return 1;
    }
    return 0;
}

int
gw_origin(const hf_gateway *g, struct lws *wsi, char *origin, size_t n,
          int *any)
{
    char host[256];
    const char *auth;

    *any = 0;
    origin[0] = '\0';
    if (g->cfg.cors_origin[0] == '\0' ||
        lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return GW_ORIGIN_NONE;
    /* One too long to copy is no listed one (and must not pass as none). */
    if (lws_hdr_copy(wsi, origin, (int)n, WSI_TOKEN_ORIGIN) <= 0) {
        origin[0] = '\0';
        return GW_ORIGIN_REFUSED;
    }
    if (origin_listed(g, origin, any))
        return GW_ORIGIN_OK;
    /* The server's own pages: Origin "scheme://" + the request's Host. */
    auth = strstr(origin, "://");
    if (auth != NULL &&
        lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) > 0 &&
        strcasecmp(auth + 3, host) == 0)
        return GW_ORIGIN_SAME;
    return GW_ORIGIN_REFUSED;
}

int
gw_cors_headers(const hf_gateway *g, struct lws *wsi, unsigned char **p,
                unsigned char *end)
{
    char origin[256];
    int any, o = gw_origin(g, wsi, origin, sizeof(origin), &any);
    static const char expose[] = "Retry-After";

    if (o != GW_ORIGIN_OK)
        return 0;
    if (any) {
        origin[0] = '*';
        origin[1] = '\0';
    }
    if (lws_add_http_header_by_name(
            wsi, (const unsigned char *)"access-control-allow-origin:",
            (const unsigned char *)origin, (int)strlen(origin), p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"access-control-expose-headers:",
            (const unsigned char *)expose, (int)sizeof(expose) - 1, p, end))
        return -1;
    /* A cache must not hand one origin's answer to another. */
    if (!any && lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"vary:",
                    (const unsigned char *)"Origin", 6, p, end))
        return -1;
    return 0;
}

int
gw_cors_preflight(struct gw *gw, struct lws *wsi)
{
    static const char methods[] = "GET, POST, OPTIONS";
    static const char headers[] =
        "Authorization, Content-Type, Idempotency-Key";
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof(buf);
    char origin[256];
    int any, o = gw_origin(gw->g, wsi, origin, sizeof(origin), &any);
    int ok = o == GW_ORIGIN_OK || o == GW_ORIGIN_SAME;

    if (lws_add_http_header_status(wsi, ok ? 204 : 403, &p, end) ||
        gw_cors_headers(gw->g, wsi, &p, end) ||
        (ok && (lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"access-control-allow-methods:",
                    (const unsigned char *)methods, sizeof(methods) - 1, &p,
                    end) ||
                lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"access-control-allow-headers:",
                    (const unsigned char *)headers, sizeof(headers) - 1, &p,
                    end) ||
                lws_add_http_header_by_name(
                    wsi, (const unsigned char *)"access-control-max-age:",
                    (const unsigned char *)"600", 3, &p, end))) ||
        lws_add_http_header_content_length(wsi, 0, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* setting up                                                          */

int
gw_access_open(hf_gateway *g, char *why, size_t n)
{
    const char *it;
    size_t pos = 0, len;
    hf_principal *p = &g->pub;

    memset(p, 0, sizeof(*p)); /* nacl 0: nothing is public */
    p->role = HF_ROLE_PUBLIC;
    while (hf_opt_list_next(g->cfg.public_, &pos, &it, &len)) {
        if (p->nacl == HF_AUTH_ACL_MAX || len > HF_ADDR_MAX) {
            snprintf(why, n, "--public: at most %d patterns of %d bytes",
                     HF_AUTH_ACL_MAX, HF_ADDR_MAX);
            return -1;
        }
        memcpy(p->acl[p->nacl], it, len);
        p->acl[p->nacl++][len] = '\0';
    }
    if (p->nacl > 0 && g->auth == NULL)
        hf_warn("gateway", "--public has no effect with auth off: "
                           "everything is reachable without a token");
    pthread_mutex_init(&g->rl_mu, NULL);
    g->rl_open = 1;
    return 0;
}

static void
free_ent(hf_hnode *n, void *arg)
{
    (void)arg;
    free(hf_htab_entry(n, struct rl_ent, hn));
}

void
gw_access_close(hf_gateway *g)
{
    if (!g->rl_open)
        return;
    hf_htab_walk(&g->rl, free_ent, NULL);
    hf_htab_fini(&g->rl);
    pthread_mutex_destroy(&g->rl_mu);
    g->rl_open = 0;
}
