/*
 * wstls.c - see wstls.h.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "client/wstls.h"
#include "core/err.h"

static SSL_CTX *ctx_verify, *ctx_insecure;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init(void)
{
    if ((ctx_verify = SSL_CTX_new(TLS_client_method())) != NULL) {
        SSL_CTX_set_default_verify_paths(ctx_verify);
        SSL_CTX_set_verify(ctx_verify, SSL_VERIFY_PEER, NULL);
    }
    if ((ctx_insecure = SSL_CTX_new(TLS_client_method())) != NULL)
        SSL_CTX_set_verify(ctx_insecure, SSL_VERIFY_NONE, NULL);
}

SSL *
hf__tls_new(int fd, const char *host, int insecure)
{
    unsigned char ip[16];
    int is_ip;
    SSL *ssl;

    pthread_once(&once, init);
    if ((ssl = SSL_new(insecure ? ctx_insecure : ctx_verify)) == NULL)
        return NULL;
    is_ip =
        inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (SSL_set_fd(ssl, fd) != 1 ||
        (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) ||
        (!insecure && !is_ip && SSL_set1_host(ssl, host) != 1) ||
        (!insecure && is_ip &&
         X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* What an SSL_* result asks for: HF_TLS_WANT with *ev, or an error. */
static int
want(SSL *ssl, int r, short *ev, int fail)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *ev = POLLIN;
        return HF_TLS_WANT;
    case SSL_ERROR_WANT_WRITE:
        *ev = POLLOUT;
        return HF_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return fail;
    }
}

int
hf__tls_handshake(SSL *ssl, short *ev)
{
    int r = SSL_do_handshake(ssl), rv;

    if (r == 1)
        return 0;
    rv = want(ssl, r, ev, HF_EBADREQ);
    return rv == 0 ? HF_EUNAVAIL : rv;
}

ssize_t
hf__tls_read(SSL *ssl, void *p, size_t n, short *ev)
{
    int r = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);

    return r > 0 ? r : want(ssl, r, ev, HF_EUNAVAIL);
}

ssize_t
hf__tls_write(SSL *ssl, const void *p, size_t n, short *ev)
{
    int r = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n), rv;

    if (r > 0)
        return r;
    rv = want(ssl, r, ev, HF_EUNAVAIL);
    return rv == 0 ? HF_EUNAVAIL : rv;
}
