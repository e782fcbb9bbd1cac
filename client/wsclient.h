/*
 * wsclient.h - a small blocking WebSocket (RFC 6455) and HTTP/1.1 client
 * over plain POSIX sockets.
 *
 * For the CLI (holdfast call / tail), the integration tests and the load
 * benchmarks - not for the server, which uses libwebsockets. It is
 * deliberately raw: payloads are sent exactly as given (a text frame may
 * carry invalid UTF-8, an opcode may be reserved, a frame header may
 * announce more bytes than follow), so tests can hand the gateway
 * malformed input. What it receives it checks strictly, and nothing a
 * server sends can crash it: every length is bounded (HF_WS_MAX_MESSAGE,
 * HF_HTTP_MAX_HEAD, HF_HTTP_MAX_BODY) and every violation is an error
 * value.
 *
 * Timeouts: every timeout_ms is a bound on the whole call; a negative
 * value waits forever, 0 only takes what is already buffered or ready.
 * Sends are bounded by HF_WS_SEND_TIMEOUT_MS (a server that stops reading).
 *
 * Errors (each function lists its own): HF_EUNAVAIL the peer is gone or
 * never answered (refused, reset, closed, name not resolved); HF_ETIMEOUT;
 * HF_EBADREQ the peer broke the protocol (or rejected the handshake);
 * HF_ETOOLARGE over a size bound; HF_EINTERNAL out of memory or an
 * unexpected OS error.
 *
 * Thread-safety: an hf_ws belongs to one thread at a time; different
 * clients are independent. hf_ws_recv writes too (it answers pings), so a
 * caller that sends from one thread and receives on another must lock
 * around both. hf_http_request keeps no state and is safe from any thread.
 * SIGPIPE is never raised (MSG_NOSIGNAL).
 */
#ifndef HF_TRANSPORT_WSCLIENT_H
#define HF_TRANSPORT_WSCLIENT_H

#include <stddef.h>

#include "core/buf.h"

#define HF_WS_MAX_MESSAGE     (64u << 20) /* reassembled message bound */
#define HF_WS_SEND_TIMEOUT_MS 30000
#define HF_HTTP_MAX_HEAD      (64u << 10) /* response status + headers */
#define HF_HTTP_MAX_BODY      (64u << 20)

/* Opcodes (RFC 6455 §5.2). */
enum hf_ws_op {
    HF_WS_CONT = 0x0,
    HF_WS_TEXT = 0x1,
    HF_WS_BINARY = 0x2,
    HF_WS_CLOSE = 0x8,
    HF_WS_PING = 0x9,
    HF_WS_PONG = 0xA,
};

typedef struct hf_ws hf_ws;

/*
 * Connects to host:port (a name or a numeric IPv4/IPv6 address; every
 * address the name resolves to is tried in turn) and performs the
 * WebSocket handshake for path ("/v1/ws?token=..."), offering subprotocol
 * (NULL: none) and adding headers (NULL, or complete header lines each
 * ending in "\r\n", e.g. "Authorization: Bearer x\r\n"). The handshake is
 * verified: status 101, Sec-WebSocket-Accept, and a chosen subprotocol
 * that was offered. timeout_ms bounds connect + handshake. TCP_NODELAY is
 * set.
 *
 * Returns 0 with *out a connected client; HF_EUNAVAIL (refused, reset,
 * unresolvable) or HF_ETIMEOUT with *out NULL; HF_EBADREQ when the server
 * answered but not with a valid upgrade. On HF_EBADREQ *out is ALSO set
 * (when memory allows), to a dead client that only reports what the server
 * said - hf_ws_http_status() (0 if the reply was not even HTTP) and
 * hf_ws_http_body() - and must be freed with hf_ws_close(); hf_ws_send and
 * hf_ws_recv on it return HF_EUNAVAIL. HF_EINTERNAL on OS or memory
 * failure, *out NULL.
 */
/* TLS modes of hf_ws_connect_tls and hf_http_request_tls (client/wstls.h
 * says how the server is verified). */
#define HF_WSC_TLS          1 /* wss:// or https://, certificate checked */
#define HF_WSC_TLS_INSECURE 2 /* the same, nothing checked (--insecure) */

int hf_ws_connect(hf_ws **out, const char *host, int port, const char *path,
                  const char *subprotocol, const char *headers, int timeout_ms);

/* hf_ws_connect, but the socket is first bound to the local address src_ip
 * (numeric; NULL: any), so load tests can spread over 127.0.0.x. Only
 * addresses of src_ip's family are tried. The port is chosen at connect
 * (IP_BIND_ADDRESS_NO_PORT), so many sources do not exhaust ports. */
int hf_ws_connect_from(hf_ws **out, const char *src_ip, const char *host,
                       int port, const char *path, const char *subprotocol,
                       const char *headers, int timeout_ms);

/* hf_ws_connect_from over TLS when tls is HF_WSC_TLS or HF_WSC_TLS_INSECURE
 * (0: plain). A certificate refused, or a server that does not speak TLS:
 * HF_EBADREQ. */
int hf_ws_connect_tls(hf_ws **out, const char *src_ip, const char *host,
                      int port, int tls, const char *path,
                      const char *subprotocol, const char *headers,
                      int timeout_ms);

/* The subprotocol the server chose, or NULL when none. Valid until
 * hf_ws_close. */
const char *hf_ws_protocol(const hf_ws *c);

/* The status of the handshake reply: 101 on a connected client, the
 * rejecting status (401, 403, 404...) on a dead one from HF_EBADREQ. */
int hf_ws_http_status(const hf_ws *c);

/* The body of a rejected handshake reply (read up to its Content-Length,
 * within the connect timeout; NUL-terminated; may be empty). Borrowed:
 * valid until hf_ws_close. *len may be NULL. */
const char *hf_ws_http_body(const hf_ws *c, size_t *len);

/*
 * Sends one complete frame (FIN set) with opcode (any 0..15: 1 text,
 * 2 binary, 8 close with payload = 2-byte big-endian code + reason, 9 ping,
 * 10 pong, or a reserved one for tests), masked with a fresh key as RFC
 * 6455 requires of clients. The payload goes out as given: no UTF-8 check,
 * no size limit, control frames may exceed 125 bytes. Sending a close frame
 * marks the client as closing (hf_ws_close then sends no second one).
 * Returns 0, HF_EUNAVAIL (connection gone), HF_ETIMEOUT (the server stopped
 * reading for HF_WS_SEND_TIMEOUT_MS) or HF_EINTERNAL.
 */
int hf_ws_send(hf_ws *c, int opcode, const void *data, size_t len);

/* One frame with the FIN bit given: sends fragments (fin 0, opcode 1/2,
 * then opcode 0 continuations, the last with fin 1), or a deliberately
 * fragmented control frame. Returns as hf_ws_send. */
int hf_ws_send_frame(hf_ws *c, int fin, int opcode, const void *data,
                     size_t len);

/* A frame (FIN set) whose header announces `announced` payload bytes of
 * which only the first len (<= announced, else HF_EBADREQ) are sent, for
 * oversize-frame tests: the server should act on the header alone. The
 * connection is then out of step; only close it. Returns as hf_ws_send. */
int hf_ws_send_partial(hf_ws *c, int opcode, size_t announced, const void *data,
                       size_t len);

/* Writes bytes to the socket unframed (an unmasked frame, a bad header,
 * garbage). Returns as hf_ws_send. */
int hf_ws_send_raw(hf_ws *c, const void *data, size_t len);

/* Sends a close frame with code and reason (reason may be NULL), as
 * hf_ws_send(c, HF_WS_CLOSE, ...). */
int hf_ws_send_close(hf_ws *c, int code, const char *reason);

/*
 * Receives the next complete message, reassembling fragments and handling
 * control frames that arrive between them: pings are answered with pongs,
 * pongs are dropped. *opcode is set to 1 (text), 2 (binary) or 8 (close).
 * buf's previous contents are replaced (its memory is reused); the payload
 * is NUL-terminated (buf->data[buf->len] == 0) for convenience, and the
 * caller frees buf with hf_buf_free. Text is not checked for UTF-8.
 *
 * For a close frame, *close_code is the code (1005 when the frame had
 * none) and buf holds the reason; the client answers with the same code
 * (unless it already sent a close), and later calls return HF_EUNAVAIL.
 * close_code may be NULL.
 *
 * Returns 0; HF_ETIMEOUT (nothing complete within timeout_ms - a partly
 * received message is kept for the next call); HF_EUNAVAIL (the connection
 * ended without a close frame, or after one); HF_EBADREQ (the server broke
 * the protocol: a masked frame, RSV bits, a bad opcode or fragmentation, a
 * control frame over 125 bytes or fragmented, a 1-byte close payload - the
 * client sends close 1002 and is dead); HF_ETOOLARGE (a message over
 * HF_WS_MAX_MESSAGE - the client sends close 1009 and is dead);
 * HF_EINTERNAL.
 */
int hf_ws_recv(hf_ws *c, int timeout_ms, int *opcode, hf_buf *buf,
               int *close_code);

/* The socket, for poll() by a caller multiplexing many clients (readable
 * means hf_ws_recv may make progress; bytes may also already be buffered,
 * so call hf_ws_recv with timeout 0 until HF_ETIMEOUT). -1 for the
 * dead client of a refused handshake. Do not read or close it. */
int hf_ws_fd(const hf_ws *c);

/* Whether bytes are buffered that hf_ws_recv has not consumed. */
int hf_ws_pending(const hf_ws *c);

/* Sends close 1000 if no close was sent yet, waits briefly (at most
 * 250 ms) for the server to end the connection - so the TIME_WAIT state
 * stays on the server, which matters for load tests - then closes the
 * socket and frees everything. NULL is ok. */
void hf_ws_close(hf_ws *c);

/*
 * One HTTP/1.1 request with "Connection: close": method, path (with query),
 * extra headers (NULL or complete lines ending in "\r\n"), and a body
 * (sent with Content-Length when body is not NULL or body_len > 0;
 * headers should then include Content-Type). Interim 1xx replies are
 * skipped. The response body is read by Content-Length, chunked
 * transfer-encoding or until EOF (none for HEAD, 204 and 304), at most
 * HF_HTTP_MAX_BODY. *status (may be NULL) gets the status; resp_body (may
 * be NULL: body discarded) has its previous contents replaced by the body,
 * NUL-terminated; the caller frees it with hf_buf_free. On an error
 * *status is 0 and resp_body is left as it was.
 * Returns 0 (any HTTP status, including 4xx/5xx), HF_EUNAVAIL, HF_ETIMEOUT,
 * HF_EBADREQ (malformed response), HF_ETOOLARGE, HF_EINTERNAL.
 */
int hf_http_request(const char *host, int port, const char *method,
                    const char *path, const char *headers, const void *body,
                    size_t body_len, int timeout_ms, int *status,
                    hf_buf *resp_body);

/* hf_http_request over TLS (tls as for hf_ws_connect_tls). */
int hf_http_request_tls(const char *host, int port, int tls,
                        const char *method, const char *path,
                        const char *headers, const void *body,
                        size_t body_len, int timeout_ms, int *status,
                        hf_buf *resp_body);

#endif
