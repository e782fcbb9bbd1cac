/*
 * tls.c - checks --tls-cert and --tls-key before the gateway starts.
 *
 * libwebsockets loads the certificate and key itself (one OpenSSL context
 * per gateway thread, serving https:// and wss:// on the listening port),
 * but when they are missing or wrong it only logs at a level holdfast
 * keeps quiet and fails later, per thread. So the files are loaded here
 * first with OpenSSL, and a problem stops the start with one clear line.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "transport/gw_int.h"

static int
refuse(const char *what, const char *path, const char *why)
{
    hf_error("gateway", "TLS: %s %s: %s; not starting", what, path, why);
    return HF_EBADREQ;
}

static const char *
ssl_why(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();

    ERR_clear_error();
    if (e == 0)
        return "unreadable";
    ERR_error_string_n(e, buf, n);
    return buf;
}

/*
 * Why a client context: lws 4.1 gives every TLS vhost one for outgoing
 * connections, loading the system's CA store into it, and does not free
 * it when the context is destroyed (with OpenSSL 3 the store's
 * certificates stay reachable from nothing: ASan reports it). The gateway
 * makes no client connections, so it hands lws an empty one
 * (provided_client_ssl_ctx, which lws never frees) and frees it itself.
 */
int
gw_tls_info(struct gw *gw, struct lws_context_creation_info *info)
{
    const hf_gateway_config *cfg = &gw->g->cfg;

    if ((gw->cctx = SSL_CTX_new(TLS_client_method())) == NULL)
        return -1;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = cfg->tls_cert;
    info->ssl_private_key_filepath = cfg->tls_key;
    info->provided_client_ssl_ctx = gw->cctx;
    return 0;
}

int
gw_tls_check(const hf_gateway_config *cfg)
{
    const char *cert = cfg->tls_cert, *key = cfg->tls_key;
    char why[256];
    SSL_CTX *ctx;
    FILE *f;
    int rv = 0;

    if (cert[0] == '\0' && key[0] == '\0')
        return 0;
    if (cert[0] == '\0' || key[0] == '\0') {
        hf_error("gateway", "TLS needs both --tls-cert and --tls-key");
        return HF_EBADREQ;
    }
    if ((f = fopen(cert, "r")) == NULL)
        return refuse("certificate", cert, strerror(errno));
    fclose(f);
    if ((f = fopen(key, "r")) == NULL)
        return refuse("key", key, strerror(errno));
    fclose(f);
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
        return HF_EINTERNAL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rv = refuse("certificate", cert, ssl_why(why, sizeof(why)));
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rv = refuse("key", key,
                    ERR_GET_REASON(ERR_peek_error()) ==
                            X509_R_KEY_VALUES_MISMATCH
                        ? (ERR_clear_error(), "does not match the certificate")
                        : ssl_why(why, sizeof(why)));
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rv = refuse("key", key, "does not match the certificate");
    SSL_CTX_free(ctx);
    return rv;
}
