/*
 * wsmain.c - the flags and the main of holdfast-bench's scenarios against
 * a running server (see ws.h): the flags they all take (--url, --msgpack,
 * --token, --durability, --json, --plot) and those most take (--threads,
 * --duration, --ops), the usage text they share, the --url parser, and
 * wb_ws_main, which runs one scenario and shows its result.
 *
 * Threads: the main thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/ws.h"
#include "core/err.h"

/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns 0, or
 * HF_BENCH_USAGE after saying why when even that is below need. */
static int
raise_nofile(const char *cmd, uint64_t need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "holdfast-bench %s: %" PRIu64 " connections need about %" PRIu64
                " file descriptors; the hard limit is %llu (raise it with "
                "ulimit -Hn or LimitNOFILE=)\n",
                cmd, need - 32, need, (unsigned long long)rl.rlim_cur);
        return HF_BENCH_USAGE;
    }
    return 0;
}

/* ws://HOST[:PORT][/PATH] or wss:// (PATH defaults to /v1/ws). */
static int
parse_url(const char *cmd, const char *url, const char *token, int msgpack,
          int insecure, struct target *t)
{
    const char *p, *hs, *he;
    size_t hl;

    memset(t, 0, sizeof(*t));
    t->url = url;
    t->msgpack = msgpack;
    t->port = 80;
    if (strncmp(url, "wss://", 6) == 0) {
        t->tls = insecure ? HF_WSC_TLS_INSECURE : HF_WSC_TLS;
        t->port = 443;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else {
        goto bad;
    }
    if (*p == '[') {
        hs = p + 1;
        if ((he = strchr(hs, ']')) == NULL)
            goto bad;
        p = he + 1;
    } else {
        hs = p;
        he = p + strcspn(p, ":/");
        p = he;
    }
    hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(t->host))
        goto bad;
    memcpy(t->host, hs, hl);
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 ||
            (*end != '\0' && *end != '/'))
            goto bad;
        t->port = (int)port;
        p = end;
    }
    if (*p != '\0' && *p != '/')
        goto bad;
    if (*p == '\0' || strcmp(p, "/") == 0)
        p = "/v1/ws";
    if (strlen(p) >= sizeof(t->path))
        goto bad;
    memcpy(t->path, p, strlen(p) + 1);
    if (token != NULL && (size_t)snprintf(t->headers, sizeof(t->headers),
                                          "Authorization: Bearer %s\r\n",
                                          token) >= sizeof(t->headers)) {
        fprintf(stderr, "holdfast-bench %s: --token too long\n", cmd);
        return HF_BENCH_USAGE;
    }
    t->loopback = strncmp(t->host, "127.", 4) == 0;
    return 0;
bad:
    fprintf(stderr,
            "holdfast-bench %s: --url wants ws://HOST:PORT[/PATH] or "
            "wss://..., not '%s'\n",
            cmd, url);
    return HF_BENCH_USAGE;
}

static const char server_note[] =
    "The server limits messages per connection per second (holdfast serve "
    "--rate,\n"
    "default 1000, and --rate-burst, default 2000). A load run needs both "
    "raised,\n"
    "or its calls are refused with rate_limited (counted, and called out in "
    "the\n"
    "summary). For throwaway runs:\n"
    "  holdfast serve --listen 127.0.0.1:8080 --data /tmp/benchdata "
    "--durability none \\\n"
    "      --rate 10000000 --rate-burst 10000000\n"
    "The bench cannot ask the server for its durability: pass the same "
    "--durability\n"
    "here to label the table. commits and batch come from the server's "
    "/metrics.\n"
    "\n"
    "Actors are counter/<base><i>.<tag>, tag new for every run, so they "
    "start at 0\n"
    "even on a server that ran the bench before. The soft RLIMIT_NOFILE is "
    "raised to\n"
    "the hard limit at start; past 16000 connections the sources spread over "
    "127.0.0.x\n"
    "when the server is on loopback.\n";

/* The flags, then what every remote scenario shares, then extra. */
void
wb_usage_tail(FILE *out, const struct hf_bench_flag *f, size_t n,
              const char *extra)
{
    hf_bench_flags_usage(out, f, n);
    fputc('\n', out);
    fputs(server_note, out);
    if (*extra != '\0') {
        fputc('\n', out);
        fputs(extra, out);
    }
    fputs("\n--json FILE writes the result as one JSON object. Exit status: "
          "0 verified,\n1 failed (or Ctrl-C), 2 bad usage.\n",
          out);
}

/* ------------------------------------------------------------------ */
/* the subcommands                                                     */

/* --durability for the remote scenarios: a label. */
static int
remote_durability(const char *cmd, const char *s, int *out)
{
    *out = HF_BENCH_DUR_UNKNOWN;
    if (s == NULL)
        return 0;
    if ((*out = hf_bench_durability(s)) < 0) {
        fprintf(stderr,
                "holdfast-bench %s: --durability wants sync or none, not "
                "'%s'\n",
                cmd, s);
        return HF_BENCH_USAGE;
    }
    return 0;
}

/* Appends the flags every remote scenario takes to f[*n..]. */
static void
common_flags(struct hf_bench_flag *f, size_t *n, struct wopts *o)
{
    const struct hf_bench_flag c[] = {
        {.name = "url",
         .metavar = "URL",
         .type = HF_BF_STR,
         .dst = &o->url,
         .help = "server (default " DEF_URL ", path default /v1/ws)"},
        {.name = "msgpack",
         .metavar = "",
         .type = HF_BF_BOOL,
         .dst = &o->msgpack,
         .help = "speak holdfast.v1.msgpack (default JSON)"},
        {.name = "insecure",
         .metavar = "",
         .type = HF_BF_BOOL,
         .dst = &o->insecure,
         .help = "wss://: accept any certificate (self-signed)"},
        {.name = "token",
         .metavar = "JWT",
         .type = HF_BF_STR,
         .dst = &o->token,
         .help = "bearer token, for a server with auth on"},
        {.name = "durability",
         .metavar = "MODE",
         .type = HF_BF_STR,
         .dst = &o->durability,
         .help = "the server's --durability, for the table"},
        {.name = "json",
         .metavar = "FILE",
         .type = HF_BF_STR,
         .dst = &o->json,
         .help = "also write the result as JSON"},
        {.name = "plot",
         .metavar = "FILE.png",
         .type = HF_BF_STR,
         .dst = &o->plot,
         .help = "also draw the latency distribution (gnuplot)"},
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]) && *n < MAX_FLAGS; i++)
        f[(*n)++] = c[i];
}

/* Parses the flags (f[0..n) the scenario's own, f sized MAX_FLAGS), runs
 * the scenario once and shows its result. Returns the exit status. */
int
wb_ws_main(const struct wscen *sc, struct wopts *o, struct hf_bench_flag *f,
           size_t n, int argc, char **argv)
{
    struct hf_bench_result res;
    struct target t;
    int rv, durability, status;

    common_flags(f, &n, o);
    rv = hf_bench_flags(sc->name, f, n, argc, argv);
    if (rv == 1) {
        sc->usage(stdout, f, n);
        return HF_BENCH_OK;
    }
    if (rv != 0)
        return rv;
    if (o->has_ops && o->has_duration) {
        fprintf(stderr,
                "holdfast-bench %s: --ops and --duration exclude each other\n",
                sc->name);
        return HF_BENCH_USAGE;
    }
    if ((rv = remote_durability(sc->name, o->durability, &durability)) != 0 ||
        (rv = parse_url(sc->name, o->url, o->token, o->msgpack, o->insecure,
                        &t)) != 0 ||
        (rv = raise_nofile(
             sc->name, (uint64_t)(o->clients + o->subscribers + o->publishers +
                                  (sc->actor_conns ? o->actors : 0)) +
                           32)) != 0)
        return rv;
    wb_catch_sigint();
    status = sc->run(o, &t, durability, &res);
    if (res.seconds > 0) { /* it ran: there is something to show */
        putchar('\n');
        hf_bench_table(stdout, &res, 1);
    }
    if (o->json && hf_bench_json(o->json, &res, 1, 0) != 0)
        status = HF_BENCH_FAIL;
    if (o->plot && res.seconds > 0 && hf_bench_plot(o->plot, &res, 1) != 0)
        status = HF_BENCH_FAIL;
    if (wb_interrupted) {
        fprintf(stderr, "holdfast-bench %s: interrupted\n", sc->name);
        status = HF_BENCH_FAIL;
    }
    return status;
}

void
wb_span_flags(struct hf_bench_flag *f, size_t *n, struct wopts *o,
              const char *threads_help, const char *ops_help)
{
    const struct hf_bench_flag c[] = {
        {.name = "threads",
         .metavar = "T",
         .type = HF_BF_INT,
         .dst = &o->threads,
         .min = 1,
         .max = 1024,
         .help = threads_help},
        {.name = "duration",
         .metavar = "S",
         .type = HF_BF_DOUBLE,
         .dst = &o->duration,
         .min = 0.1,
         .max = 86400,
         .seen = &o->has_duration,
         .help = "run for S seconds (default 10)"},
        {.name = "ops",
         .metavar = "N",
         .type = HF_BF_INT,
         .dst = &o->ops,
         .min = 1,
         .max = 1e15,
         .seen = &o->has_ops,
         .help = ops_help},
    };

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]) && *n < MAX_FLAGS; i++)
        f[(*n)++] = c[i];
}

double
wb_duration(const struct wopts *o)
{
    return o->has_duration ? o->duration : o->has_ops ? 0 : DEF_DURATION;
}
