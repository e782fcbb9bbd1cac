/*
 * fuzz_http.c - raw bytes into a real server over loopback TCP: lws's
 * HTTP parser, then the gateway's routing (transport/gateway.c on_http,
 * parse_target, authenticate, the query arguments, Idempotency-Key, the
 * body into hf_json_to_mp, http_dispatch) and, after a WebSocket upgrade,
 * its frames (on_frame, on_message), with the host behind it answering.
 *
 * LLVMFuzzerInitialize starts one server for the whole run, wired as
 * cmd/main.c wires it: an LMDB store in a fresh directory under
 * $HF_TEST_TMP (or /tmp), the host with every actor kind, the nng link
 * and a gateway on 127.0.0.1:0, with auth on (SECRET; the seeds carry
 * tokens minted with it), durability off, and small limits (frame and
 * body 4096 bytes, output buffer 4096, rate burst 50) so the paths that
 * refuse are reachable with short inputs. It is stopped, in main.c's
 * order, and its directory removed, at exit.
 *
 * Each input is written as it is on a new connection (pausing after the
 * head of a WebSocket upgrade until the server answers it), and the answer read
 * until the server closes, nothing more arrives for IDLE_MS, or DEADLINE_MS
 * have passed; then the connection is closed (so an answer still owed
 * meets a connection that is gone, a path of its own). Every HEALTH_EVERY
 * inputs, GET /healthz must answer 200 within HEALTH_MS: a server that
 * hangs or stops accepting is a finding too. Everything else is for the
 * sanitizers, which watch the server's threads as well. With
 * HF_FUZZ_HTTP_SHOW=1 in the environment each answer is printed (to see
 * what a seed reaches).
 *
 * Slow (a connection and a host round trip per input): run it for time,
 * not for a count of inputs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "actors/kinds.h"
#include "core/config.h"
#include "core/host.h"
#include "core/log.h"
#include "storage/lmdb.h"
#include "tests/fuzz/fuzz.h"
#include "transport/auth.h"
#include "transport/gateway.h"
#include "transport/nlink.h"

#define SECRET       "fuzz-secret"
#define NNG_BASE     "inproc://holdfast-fuzz-http"
#define IDLE_MS      50
#define DEADLINE_MS  500
#define HEALTH_EVERY 64
#define HEALTH_MS    5000

/* The server: set up once, by LLVMFuzzerInitialize, on the fuzzing
 * thread; torn down by stop() at exit. */
static struct {
    char dir[512];
    hf_config cfg;
    hf_gateway_config gcfg;
    hf_store st;
    hf_host *host;
    hf_nhost *link;
    hf_gateway *gw;
    int port;
    int show; /* HF_FUZZ_HTTP_SHOW=1: print each answer */
    unsigned long inputs;
} srv;

/*
 * LeakSanitizer's built-in suppressions (read when it starts). OpenSSL
 * keeps an error queue per thread, allocated by the thread's first call
 * (here libjwt's HMAC, from hf_auth_verify on the gateway thread) and
 * freed only by OPENSSL_thread_stop(), which nothing calls before the
 * gateway thread exits: 904 bytes per gateway thread, once, reported at
 * exit. It is libcrypto's memory, not the server's (see
 * /work/notes/fuzz/crashes.md).
 */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:libcrypto.so\n";
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void health(void);
static void warm_up(void);

static void
stop(void)
{
    if (srv.gw == NULL)
        return;
    health(); /* still serving after the last input */
    hf_gateway_drain(srv.gw);
    hf_nhost_stop_recv(srv.link);
    hf_host_close(srv.host);
    hf_gateway_stop(srv.gw);
    hf_nhost_close(srv.link);
    srv.st.ops->close(srv.st.self);
    srv.gw = NULL;
    nftw(srv.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_http: cannot start the server: %s\n", what);
    exit(1);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("HF_TEST_TMP");
    hf_config *cfg = &srv.cfg;
    hf_gateway_config *gc = &srv.gcfg;

    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN); /* a write to a connection the server shut */
    snprintf(srv.dir, sizeof(srv.dir), "%s/fuzz-http-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(srv.dir) == NULL)
        die(srv.dir);
    hf_config_defaults(cfg);
    hf_gateway_config_defaults(gc);
    snprintf(gc->listen, sizeof(gc->listen), "127.0.0.1:0");
    snprintf(gc->jwt_secret, sizeof(gc->jwt_secret), "%s", SECRET);
    /* The committed corpus carries tokens minted without exp. */
    gc->jwt_allow_no_exp = 1;
    cfg->workers = 2;
    gc->gateways = 1;
    gc->frame_max = 4096;
    gc->outbuf_max = 4096;
    gc->rate_burst = 50;
    gc->drain_ms = 200;
    cfg->log_level = HF_LOG_OFF;
    hf_config_finish(cfg);
    hf_log_set_level(cfg->log_level);

    if (hf_lmdb_open(&srv.st, &(struct hf_lmdb_opts){
                                  .dir = srv.dir,
                                  .nreaders = cfg->workers + 2,
                                  .durability = HF_DURABLE_NONE,
                                  .map_size = (size_t)64 << 20,
                              }) != 0)
        die("the store");
    if (hf_host_open(&srv.host, &(struct hf_host_opts){
                                    .cfg = cfg,
                                    .store = srv.st,
                                    .kinds = hf_kinds,
                                    .nkinds = hf_nkinds,
                                }) != 0)
        die("the host");
    if (hf_nhost_open(&srv.link, srv.host, NNG_BASE, gc->gateways) != 0 ||
        hf_gateway_start(&srv.gw, gc, NNG_BASE, NULL) != 0)
        die("the gateway");
    srv.port = hf_gateway_port(srv.gw);
    srv.show = getenv("HF_FUZZ_HTTP_SHOW") != NULL;
    atexit(stop);
    warm_up();
    return 0;
}

static int
dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)srv.port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    FZ_CHECK(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "fuzz_http: connect: %s\n", strerror(errno));
        FZ_CHECK(!"the server accepts connections");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/*
 * Where to stop writing until the server answers: after the head of a
 * WebSocket upgrade request (a client must not send frames before it has
 * the 101; lws closes with 1002 if one does). 0 for no pause.
 */
static size_t
pause_at(const uint8_t *data, size_t size)
{
    const uint8_t *end = memmem(data, size, "\r\n\r\n", 4);
    size_t head;

    if (end == NULL)
        return 0;
    head = (size_t)(end - data) + 4;
    for (size_t i = 0; i + 9 <= head; i++)
        if (strncasecmp((const char *)data + i, "websocket", 9) == 0)
            return head < size ? head : 0;
    return 0;
}

/*
 * Writes data and reads the answer into buf (up to cap bytes, the rest
 * read and dropped) until the server closes, idle_ms pass with nothing
 * new once everything is written, or deadline_ms pass. At pause_at()
 * writing waits for the first bytes of the answer (or idle_ms). Returns
 * the bytes kept.
 */
static size_t
exchange(int fd, const uint8_t *data, size_t size, char *buf, size_t cap,
         int idle_ms, int deadline_ms)
{
    uint64_t start = now_ms(), last = start;
    size_t sent = 0, got = 0, stop = pause_at(data, size);

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t t = now_ms();
        size_t upto = stop > 0 ? stop : size;
        int wait;
        ssize_t n;

        if (t - start >= (uint64_t)deadline_ms)
            break;
        if (sent == upto && stop > 0 && (got > 0 || t - last >= (uint64_t)idle_ms)) {
            stop = 0; /* answered (or not, in time): write the rest */
            continue;
        }
        if (sent == size && t - last >= (uint64_t)idle_ms)
            break;
        if (sent < upto)
            p.events |= POLLOUT;
        wait = deadline_ms - (int)(t - start);
        if (sent == upto && idle_ms - (int)(t - last) < wait)
            wait = idle_ms - (int)(t - last);
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            break;
        if (p.revents & POLLOUT) {
            n = send(fd, data + sent, upto - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n, last = now_ms();
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                sent = size; /* the server shut its end: just read */
                stop = 0;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char drop[4096];
            int keep = got < cap;
            n = recv(fd, keep ? buf + got : drop,
                     keep ? cap - got : sizeof(drop), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break; /* closed */
            if (n > 0) {
                if (keep)
                    got += (size_t)n;
                last = now_ms();
            }
        }
    }
    return got;
}

/* Calls counter/warmup over HTTP until it answers 200 (the gateway's
 * link to the host comes up asynchronously), so that the first inputs
 * do not all time out. */
static void
warm_up(void)
{
    char *tok = hf_auth_mint(SECRET, "fuzz", "user", 0, NULL);
    char req[1024], buf[512];
    uint64_t start = now_ms();
    int n;

    FZ_CHECK(tok != NULL);
    n = snprintf(req, sizeof(req),
                 "POST /v1/call/counter/warmup/get HTTP/1.1\r\nHost: fuzz\r\n"
                 "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                 tok);
    free(tok);
    for (;;) {
        int fd = dial();
        size_t got = exchange(fd, (const uint8_t *)req, (size_t)n, buf,
                              sizeof(buf) - 1, 1000, 1000);
        close(fd);
        buf[got] = '\0';
        if (strncmp(buf, "HTTP/1.1 200", 12) == 0)
            return;
        if (now_ms() - start > 30000)
            die("no answer to a call in 30 s");
    }
}

/* Whether GET /healthz answers 200 within ms. */
static int
healthy(int ms)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n"
                              "Connection: close\r\n\r\n";
    char buf[256];
    int fd = dial();
    size_t n = exchange(fd, (const uint8_t *)req, sizeof(req) - 1, buf,
                        sizeof(buf) - 1, ms, ms);

    close(fd);
    buf[n] = '\0';
    if (strncmp(buf, "HTTP/1.1 200", 12) == 0)
        return 1;
    fprintf(stderr, "fuzz_http: /healthz answered in %d ms: \"%.80s\"\n", ms,
            buf);
    return 0;
}

/* The server must still answer: a second chance with more time tells a
 * loaded machine from a stuck server. HF_FUZZ_HTTP_HOLD=1 stops a stuck
 * one where it is, to attach a debugger. */
static void
health(void)
{
    if (healthy(HEALTH_MS) || healthy(6 * HEALTH_MS))
        return;
    if (getenv("HF_FUZZ_HTTP_HOLD") != NULL) {
        fprintf(stderr, "fuzz_http: server stuck; pid %d held\n",
                (int)getpid());
        for (;;)
            pause();
    }
    FZ_CHECK(!"the server still answers /healthz");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[1 << 16];
    int fd;

    size_t n;

    if (srv.gw == NULL) /* LLVMFuzzerInitialize failed and said so */
        return 0;
    fd = dial();
    n = exchange(fd, data, size, buf, sizeof(buf), IDLE_MS, DEADLINE_MS);
    close(fd);
    if (srv.show) { /* to see what a seed reaches */
        fprintf(stderr, "--- %zu bytes answered:\n", n);
        fwrite(buf, 1, n, stderr);
        fputc('\n', stderr);
    }
    if (++srv.inputs % HEALTH_EVERY == 0)
        health();
    return 0;
}
