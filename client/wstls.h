/*
 * wstls.h - TLS for wsclient (wss:// and https://), over OpenSSL, on the
 * client's non-blocking socket. Internal to client/.
 *
 * Each call does one step and never waits: it returns >= 0 when done, or
 * HF_TLS_WANT with *ev set to POLLIN or POLLOUT for the caller to poll
 * before calling again (OpenSSL may need to read in order to write, and
 * the reverse), or another negative HF_E* code.
 *
 * Verification: the system's trust store (OpenSSL honours SSL_CERT_FILE
 * and SSL_CERT_DIR, which is how a private CA is given), the peer's name
 * or IP checked against host; HF_WSC_TLS_INSECURE checks nothing (for a
 * self-signed server in development). Thread-safety: the two shared
 * contexts are made once (pthread_once); an SSL belongs to its client.
 */
#ifndef HF_CLIENT_WSTLS_H
#define HF_CLIENT_WSTLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

#define HF_TLS_WANT (-1000)

/* A TLS client on fd for host, or NULL (logged to nothing: the caller
 * reports HF_EINTERNAL). */
SSL *hf__tls_new(int fd, const char *host, int insecure);

/* The handshake step: 0 done, HF_TLS_WANT, or HF_EBADREQ (the peer's
 * certificate was refused or it does not speak TLS) / HF_EUNAVAIL. */
int hf__tls_handshake(SSL *ssl, short *ev);

/* Bytes read (> 0), 0 at a clean end, HF_TLS_WANT, HF_EUNAVAIL. */
ssize_t hf__tls_read(SSL *ssl, void *p, size_t n, short *ev);

/* Bytes written (> 0), HF_TLS_WANT, HF_EUNAVAIL. */
ssize_t hf__tls_write(SSL *ssl, const void *p, size_t n, short *ev);

#endif
