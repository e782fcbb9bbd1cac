/*
 * client.c - holdfast call / holdfast tail (see client.h).
 *
 * Design notes. A session is one WebSocket to /v1/ws plus a cursor into the
 * last frame received, because a server frame may carry several messages
 * ('\n'-separated JSON in a text frame, concatenated msgpack maps in a
 * binary one - DESIGN §5). next_msg() hands them out one by one as a
 * jansson object plus the message's JSON text: for JSON frames the exact
 * bytes the server sent (so tail prints events untouched and call prints the
 * result's own text), for msgpack frames hf_mp_to_json's rendering. The
 * frame's opcode, not the negotiated subprotocol, decides how to parse it.
 *
 * Both commands have one request in flight (id 1), so a reply with id 1 -
 * or an error reply whose id the server could not read (null) - is ours.
 * Anything else the server sends meanwhile (events, presence, pongs) is
 * skipped, except that tail prints the events of its actor.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/client.h"
#include "core/env.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "client/wsclient.h"

#define DEFAULT_URL        "ws://127.0.0.1:8080"
#define DEFAULT_PATH       "/v1/ws"
#define DEFAULT_TIMEOUT_MS 10000
#define PROTO_JSON         "holdfast.v1.json"
#define PROTO_MSGPACK      "holdfast.v1.msgpack"
#define TAIL_TICK_MS       250 /* how often tail looks at the stop flag */

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_FAIL = 2, EXIT_LOST = 3 };

void
hf_cmd_client_usage(FILE *out)
{
    fprintf(out,
            "  call    calls METHOD on the actor ADDRESS (kind/name) and "
            "prints the\n"
            "          result as one line of JSON; ARGS-JSON defaults to "
            "{}\n"
            "  tail    subscribes to ADDRESS and prints every event as one "
            "line of\n"
            "          JSON until interrupted; --since N first replays the "
            "events\n"
            "          after seq N\n"
            "\n"
            "call and tail options:\n"
            "  --url URL      server (default " DEFAULT_URL
            "; path default " DEFAULT_PATH ")\n"
            "  --token T      access token (default: $HOLDFAST_TOKEN)\n"
            "  --key K        call: idempotency key\n"
            "  --msgpack      use the holdfast.v1.msgpack subprotocol\n"
            "  --insecure     wss://: accept any certificate (self-signed;\n"
            "                 a private CA goes in SSL_CERT_FILE instead)\n"
            "  --timeout MS   connect and reply timeout (default %d)\n"
            "\n"
            "exit status: 0 ok, 1 error reply, 2 usage or connection "
            "failure,\n"
            "3 tail's connection ended\n",
            DEFAULT_TIMEOUT_MS);
}

/* The whole text, for call/tail --help and usage errors. */
static void
usage(FILE *out)
{
    fprintf(out, "usage: holdfast call ADDRESS METHOD [ARGS-JSON] [options]\n"
                 "       holdfast tail ADDRESS [--since N] [options]\n\n");
    hf_cmd_client_usage(out);
}

/* ---- arguments ------------------------------------------------------- */

struct opts {
    const char *cmd; /* "call" or "tail", for messages */
    const char *pos[4];
    int npos;
    const char *url, *token, *key;
    int msgpack;
    int insecure; /* --insecure: wss:// without checking the certificate */
    int64_t since;
    int has_since;
    int timeout_ms;
};

static int
parse_int(const char *s, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Returns -1 to go on, or an exit status (help, usage error). */
static int
parse_opts(struct opts *o, int argc, char **argv, int maxpos, int is_call)
{
    int only_pos = 0;
    int64_t n;

    o->url = DEFAULT_URL;
    o->token = getenv("HOLDFAST_TOKEN");
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL, *eq;
        char name[32];
        size_t nlen;

        if (only_pos || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!only_pos && strcmp(a, "--") == 0) {
                only_pos = 1;
                continue;
            }
            if (strcmp(a, "-h") == 0 && !only_pos) {
                usage(stdout);
                return EXIT_OK;
            }
            if (o->npos == maxpos) {
                fprintf(stderr, "holdfast %s: unexpected argument '%s'\n",
                        o->cmd, a);
                goto usage;
            }
            o->pos[o->npos++] = a;
            continue;
        }
        eq = strchr(a, '=');
        nlen = eq != NULL ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name)
            nlen = sizeof name - 1;
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        if (strcmp(name, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(name, "--msgpack") == 0) {
            o->msgpack = 1;
            continue;
        }
        if (strcmp(name, "--insecure") == 0) {
            o->insecure = 1;
            continue;
        }
        if (strcmp(name, "--url") != 0 && strcmp(name, "--token") != 0 &&
            strcmp(name, "--timeout") != 0 &&
            !(is_call && strcmp(name, "--key") == 0) &&
            !(!is_call && strcmp(name, "--since") == 0)) {
            fprintf(stderr, "holdfast %s: unknown option '%s'\n", o->cmd, name);
            goto usage;
        }
        if (eq != NULL)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        if (val == NULL) {
            fprintf(stderr, "holdfast %s: %s needs a value\n", o->cmd, name);
            goto usage;
        }
        if (strcmp(name, "--url") == 0) {
            o->url = val;
        } else if (strcmp(name, "--token") == 0) {
            o->token = val;
        } else if (strcmp(name, "--key") == 0) {
            o->key = val;
        } else if (strcmp(name, "--since") == 0) {
            if (parse_int(val, INT64_MAX, &o->since) != 0) {
                fprintf(stderr,
                        "holdfast %s: --since wants a sequence "
                        "number, not '%s'\n",
                        o->cmd, val);
                goto usage;
            }
            o->has_since = 1;
        } else {
            if (parse_int(val, 24 * 3600 * 1000, &n) != 0 || n == 0) {
                fprintf(stderr,
                        "holdfast %s: --timeout wants milliseconds, "
                        "not '%s'\n",
                        o->cmd, val);
                goto usage;
            }
            o->timeout_ms = (int)n;
        }
    }
    return -1;
usage:
    usage(stderr);
    return EXIT_FAIL;
}

/* ---- the server's address ---------------------------------------------- */

struct target {
    char host[256];
    int port;
    int tls; /* 0, HF_WSC_TLS or HF_WSC_TLS_INSECURE */
    hf_buf path; /* path and query, NUL-terminated */
};

/* Parses ws://host[:port][/path] (http://, and wss:// or https:// for TLS;
 * no scheme means ws) and adds ?token=. Returns 0 or -1 with a message
 * printed. */
static int
parse_url(const struct opts *o, struct target *t)
{
    const char *u = o->url, *p, *hend, *pstart;
    int64_t port = 80;
    char portbuf[8];
    size_t hlen;

    t->tls = 0;
    if (strncmp(u, "ws://", 5) == 0)
        u += 5;
    else if (strncmp(u, "http://", 7) == 0)
        u += 7;
    else if (strncmp(u, "wss://", 6) == 0 || strncmp(u, "https://", 8) == 0) {
        u += u[1] == 's' ? 6 : 8;
        t->tls = o->insecure ? HF_WSC_TLS_INSECURE : HF_WSC_TLS;
        port = 443;
    } else if (strstr(u, "://") != NULL) {
        fprintf(stderr, "holdfast %s: %s: not a ws:// URL\n", o->cmd, o->url);
        return -1;
    }
    pstart = u + strcspn(u, "/?");
    if (*u == '[') { /* [IPv6]:port */
        hend = memchr(u, ']', (size_t)(pstart - u));
        if (hend == NULL)
            goto bad;
        hlen = (size_t)(hend - u - 1);
        u++;
        p = hend + 1;
    } else {
        hend = memchr(u, ':', (size_t)(pstart - u));
        if (hend == NULL)
            hend = pstart;
        hlen = (size_t)(hend - u);
        p = hend;
    }
    if (hlen == 0 || hlen >= sizeof t->host)
        goto bad;
    memcpy(t->host, u, hlen);
    t->host[hlen] = '\0';
    if (p < pstart) {
        size_t plen = (size_t)(pstart - p - 1);
        if (*p != ':' || plen == 0 || plen >= sizeof portbuf)
            goto bad;
        memcpy(portbuf, p + 1, plen);
        portbuf[plen] = '\0';
        if (parse_int(portbuf, 65535, &port) != 0 || port == 0)
            goto bad;
    }
    t->port = (int)port;
    t->path.len = 0;
    if (*pstart == '\0' || strcmp(pstart, "/") == 0)
        pstart = DEFAULT_PATH;
    else if (*pstart == '?') /* ws://h:p?x=1 */
        hf_buf_append(&t->path, DEFAULT_PATH, strlen(DEFAULT_PATH));
    if (hf_buf_append(&t->path, pstart, strlen(pstart)) != 0)
        return -1;
    if (o->token != NULL && *o->token != '\0') {
        static const char hex[] = "0123456789ABCDEF";
        const char *sep = memchr(t->path.data, '?', t->path.len) != NULL
                              ? "&token="
                              : "?token=";
        hf_buf_append(&t->path, sep, strlen(sep));
        for (const unsigned char *c = (const unsigned char *)o->token; *c;
             c++) {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            int plain = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                        (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
                        *c == '.' || *c == '~';
            hf_buf_append(&t->path, plain ? (const char *)c : e, plain ? 1 : 3);
        }
    }
    if (hf_buf_append(&t->path, "", 1) != 0)
        return -1;
    t->path.len--;
    return 0;
bad:
    fprintf(stderr,
            "holdfast %s: cannot read the URL '%s' (want "
            "ws://host:port)\n",
            o->cmd, o->url);
    return -1;
}

/* ---- a session: messages in, messages out -------------------------------- */

struct session {
    const struct opts *o;
    hf_ws *ws;
    int msgpack;  /* the server chose holdfast.v1.msgpack */
    hf_buf frame; /* the last data frame */
    int frame_op; /* its opcode */
    size_t off;   /* where its next message starts */
    char *mptext; /* JSON text of the current msgpack message */
    msgpack_zone zone;
    int close_code;   /* after HF_EUNAVAIL: 0 when no close frame came */
    char reason[128]; /* the close frame's reason */
    int heartbeat_s;  /* from the hello */
};

static int64_t
ms_left(uint64_t dl_ns)
{
    uint64_t now = hf_mono_ns();
    return now >= dl_ns ? 0 : (int64_t)((dl_ns - now) / 1000000u);
}

static int
is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* The next message from the server, waiting at most timeout_ms for a new
 * frame. On 0, *msg is an object the caller releases and raw/rawlen its
 * JSON text, valid until the next call. Returns 0, HF_ETIMEOUT, or
 * HF_EUNAVAIL (the connection ended: s->close_code, s->reason). Messages
 * that are not JSON/msgpack objects are reported on stderr and skipped. */
static int
next_msg(struct session *s, int timeout_ms, json_t **msg, const char **raw,
         size_t *rawlen)
{
    uint64_t dl = hf_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    json_error_t jerr;
    msgpack_object obj;
    int op, code = 0, rv;
    json_t *j;

    for (;;) {
        while (s->off < s->frame.len) {
            const char *p = s->frame.data + s->off, *nl;
            size_t n;

            if (s->frame_op == HF_WS_TEXT) {
                nl = memchr(p, '\n', s->frame.len - s->off);
                n = nl != NULL ? (size_t)(nl - p) : s->frame.len - s->off;
                s->off += n + (nl != NULL);
                if (is_blank(p, n))
                    continue;
                while (n > 0 && p[n - 1] == '\r')
                    n--;
            } else {
                size_t at = s->off;
                msgpack_zone_clear(&s->zone);
                if (hf_unpack_next(s->frame.data, s->frame.len, &s->off,
                                   &s->zone, &obj) != 0) {
                    fprintf(stderr,
                            "holdfast %s: skipping %zu bytes of "
                            "malformed msgpack from the server\n",
                            s->o->cmd, s->frame.len - at);
                    s->off = s->frame.len;
                    continue;
                }
                free(s->mptext);
                if ((s->mptext = hf_mp_to_json(&obj)) == NULL)
                    continue;
                p = s->mptext;
                n = strlen(p);
            }
            j = json_loadb(p, n, 0, &jerr);
            if (j == NULL || !json_is_object(j)) {
                fprintf(stderr,
                        "holdfast %s: skipping an unreadable "
                        "message from the server: %.*s\n",
                        s->o->cmd, (int)(n > 200 ? 200 : n), p);
                json_decref(j);
                continue;
            }
            *msg = j;
            *raw = p;
            *rawlen = n;
            return 0;
        }
        rv = hf_ws_recv(s->ws, (int)ms_left(dl), &op, &s->frame, &code);
        s->off = 0;
        if (rv == HF_ETIMEOUT) {
            s->frame.len = 0;
            return rv;
        }
        if (rv != 0 || op == HF_WS_CLOSE) {
            s->close_code = rv == 0 ? code : 0;
            snprintf(s->reason, sizeof s->reason, "%s",
                     rv == 0 && s->frame.data ? s->frame.data : "");
            s->frame.len = 0;
            return HF_EUNAVAIL;
        }
        s->frame_op = op;
    }
}

static const char *
str_field(json_t *m, const char *key)
{
    const char *v = json_string_value(json_object_get(m, key));
    return v != NULL ? v : "";
}

/* Sends one message: compact JSON text, or its msgpack in a binary frame. */
static int
send_msg(struct session *s, json_t *m)
{
    char *text = json_dumps(m, JSON_COMPACT);
    hf_buf mp = {0};
    int rv = HF_EINTERNAL;

    if (text == NULL)
        return rv;
    if (!s->msgpack)
        rv = hf_ws_send(s->ws, HF_WS_TEXT, text, strlen(text));
    else if (hf_json_to_mp(text, strlen(text), &mp) == 0)
        rv = hf_ws_send(s->ws, HF_WS_BINARY, mp.data, mp.len);
    free(text);
    hf_buf_free(&mp);
    return rv;
}

static void
print_lost(const struct session *s, const char *when)
{
    if (s->close_code != 0)
        fprintf(stderr,
                "holdfast %s: the server closed the connection%s%s (code %d%s"
                "%s)\n",
                s->o->cmd, *when ? " " : "", when, s->close_code,
                s->reason[0] ? ": " : "", s->reason);
    else
        fprintf(stderr, "holdfast %s: the connection was lost%s%s\n", s->o->cmd,
                *when ? " " : "", when);
}

static void
session_end(struct session *s)
{
    hf_ws_close(s->ws);
    s->ws = NULL;
    hf_buf_free(&s->frame);
    free(s->mptext);
    s->mptext = NULL;
    msgpack_zone_destroy(&s->zone);
}

/* Connects and waits for the hello. Returns 0 or an exit status (message
 * printed). */
static int
session_open(struct session *s, const struct opts *o)
{
    struct target t = {0};
    uint64_t dl = hf_mono_ns() + (uint64_t)o->timeout_ms * 1000000u;
    const char *raw, *body;
    size_t rawlen, blen;
    json_t *m;
    int rv;

    memset(s, 0, sizeof *s);
    s->o = o;
    msgpack_zone_init(&s->zone, 4096);
    if (parse_url(o, &t) != 0) {
        hf_buf_free(&t.path);
        return EXIT_FAIL;
    }
    rv = hf_ws_connect_tls(&s->ws, NULL, t.host, t.port, t.tls, t.path.data,
                           o->msgpack ? PROTO_MSGPACK : PROTO_JSON, NULL,
                           o->timeout_ms);
    hf_buf_free(&t.path);
    if (rv == HF_EBADREQ && t.tls && s->ws == NULL) {
        fprintf(stderr,
                "holdfast %s: TLS with %s failed: not a TLS server, or its "
                "certificate is not trusted (SSL_CERT_FILE=ca.pem; "
                "--insecure for a self-signed one)\n",
                o->cmd, o->url);
        return EXIT_FAIL;
    }
    if (rv == HF_EBADREQ) {
        body = hf_ws_http_body(s->ws, &blen);
        if (hf_ws_http_status(s->ws) == 101 || hf_ws_http_status(s->ws) == 0)
            fprintf(stderr,
                    "holdfast %s: %s did not answer as a WebSocket "
                    "server should\n",
                    o->cmd, o->url);
        else
            fprintf(stderr,
                    "holdfast %s: %s refused the connection: HTTP "
                    "%d%s%.*s\n",
                    o->cmd, o->url, hf_ws_http_status(s->ws),
                    blen > 0 ? " " : "", (int)(blen > 300 ? 300 : blen), body);
        return EXIT_FAIL;
    }
    if (rv != 0) {
        fprintf(stderr, "holdfast %s: cannot connect to %s: %s\n", o->cmd,
                o->url,
                rv == HF_ETIMEOUT ? "timed out"
                : rv == HF_EUNAVAIL
                    ? "refused or unreachable (is the server running?)"
                    : hf_err_name(rv));
        return EXIT_FAIL;
    }
    s->msgpack = hf_ws_protocol(s->ws) != NULL &&
                 strcmp(hf_ws_protocol(s->ws), PROTO_MSGPACK) == 0;
    if (o->msgpack && !s->msgpack)
        fprintf(stderr,
                "holdfast %s: the server did not accept msgpack; "
                "using JSON\n",
                o->cmd);
    for (;;) {
        rv = next_msg(s, (int)ms_left(dl), &m, &raw, &rawlen);
        if (rv == HF_ETIMEOUT) {
            fprintf(stderr, "holdfast %s: no hello from %s within %d ms\n",
                    o->cmd, o->url, o->timeout_ms);
            return EXIT_FAIL;
        }
        if (rv != 0) {
            print_lost(s, "before its hello");
            return EXIT_FAIL;
        }
        if (strcmp(str_field(m, "op"), "hello") == 0) {
            json_t *hb = json_object_get(m, "heartbeat");
            s->heartbeat_s = json_is_integer(hb) && json_integer_value(hb) > 0
                                 ? (int)json_integer_value(hb)
                                 : 0;
            json_decref(m);
            return 0;
        }
        json_decref(m);
    }
}

/* Whether m is the reply to our request (id 1, or an error reply whose id
 * the server could not read). */
static int
is_our_reply(json_t *m)
{
    json_t *id = json_object_get(m, "id");

    if (strcmp(str_field(m, "op"), "reply") != 0)
        return 0;
    return (json_is_integer(id) && json_integer_value(id) == 1) ||
           ((id == NULL || json_is_null(id)) &&
            !json_is_true(json_object_get(m, "ok")));
}

static void
print_error(json_t *m)
{
    json_t *e = json_object_get(m, "error");

    fprintf(stderr, "error: %s: %s\n",
            json_is_string(json_object_get(e, "code")) ? str_field(e, "code")
                                                       : "internal",
            str_field(e, "message"));
}

/* A small scanner over JSON text that jansson has already accepted (so it
 * is well-formed), to print values exactly as the server wrote them. */
static const char *
skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

static const char *
skip_value(const char *p, const char *e)
{
    int depth = 0, in_str = 0;

    if (p < e && *p != '"' && *p != '{' && *p != '[') { /* scalar */
        while (p < e && !strchr(",}] \t\r\n", *p))
            p++;
        return p;
    }
    for (; p < e; p++) {
        if (in_str) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = 0;
            else
                continue;
            if (in_str == 0 && depth == 0)
                return p + 1;
            continue;
        }
        if (*p == '"')
            in_str = 1;
        else if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
    }
    return e;
}

/* Finds the text of the top-level member key of a JSON object: 0 with
 * v and vlen set, or -1 (absent, or the key is written with escapes). */
static int
raw_member(const char *s, size_t n, const char *key, const char **v,
           size_t *vlen)
{
    const char *p = s, *e = s + n, *k, *ke;
    size_t klen = strlen(key);

    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return -1;
    p++;
    for (;;) {
        p = skip_ws(p, e);
        if (p >= e || *p != '"')
            return -1;
        k = p + 1;
        ke = skip_value(p, e) - 1; /* the closing quote */
        p = skip_ws(ke + 1, e);
        if (p >= e || *p != ':')
            return -1;
        p = skip_ws(p + 1, e);
        *v = p;
        p = skip_value(p, e);
        if ((size_t)(ke - k) == klen && memcmp(k, key, klen) == 0) {
            *vlen = (size_t)(p - *v);
            return 0;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ',')
            return -1;
        p++;
    }
}

/* ---- call ----------------------------------------------------------- */

int
hf_cmd_call(int argc, char **argv)
{
    struct opts o = {.cmd = "call"};
    struct session s;
    json_error_t jerr;
    json_t *args, *req, *m;
    const char *raw, *v;
    size_t rawlen, vlen;
    uint64_t dl;
    int rv;

    if ((rv = parse_opts(&o, argc, argv, 3, 1)) >= 0)
        return rv;
    if (o.npos < 2) {
        fprintf(stderr, "holdfast call: wants ADDRESS and METHOD\n");
        usage(stderr);
        return EXIT_FAIL;
    }
    args = json_loads(o.npos > 2 ? o.pos[2] : "{}", JSON_DECODE_ANY, &jerr);
    if (args == NULL) {
        fprintf(stderr, "holdfast call: ARGS is not JSON: %s (column %d)\n",
                jerr.text, jerr.column);
        return EXIT_FAIL;
    }
    req = json_pack("{s:s, s:i, s:s, s:s, s:o}", "op", "call", "id", 1, "to",
                    o.pos[0], "method", o.pos[1], "args", args);
    if (req != NULL && o.key != NULL &&
        json_object_set_new(req, "key", json_string(o.key)) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (req == NULL) {
        fprintf(stderr, "holdfast call: ADDRESS, METHOD and --key must be "
                        "UTF-8 text\n");
        return EXIT_FAIL;
    }
    if ((rv = session_open(&s, &o)) != 0) {
        json_decref(req);
        session_end(&s);
        return rv;
    }
    rv = send_msg(&s, req);
    json_decref(req);
    if (rv != 0) {
        fprintf(stderr, "holdfast call: cannot send the call: %s\n",
                hf_err_name(rv));
        session_end(&s);
        return EXIT_FAIL;
    }
    dl = hf_mono_ns() + (uint64_t)o.timeout_ms * 1000000u;
    for (;;) {
        rv = next_msg(&s, (int)ms_left(dl), &m, &raw, &rawlen);
        if (rv == HF_ETIMEOUT) {
            fprintf(stderr, "holdfast call: no reply within %d ms\n",
                    o.timeout_ms);
            rv = EXIT_FAIL;
            break;
        }
        if (rv != 0) {
            print_lost(&s, "before the reply");
            rv = EXIT_FAIL;
            break;
        }
        if (!is_our_reply(m)) {
            json_decref(m);
            continue;
        }
        if (json_is_true(json_object_get(m, "ok"))) {
            if (raw_member(raw, rawlen, "result", &v, &vlen) == 0) {
                fwrite(v, 1, vlen, stdout);
                fputc('\n', stdout);
            } else {
                char *t = json_dumps(json_object_get(m, "result"),
                                     JSON_COMPACT | JSON_ENCODE_ANY);
                printf("%s\n", t != NULL ? t : "null");
                free(t);
            }
            rv = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
        } else {
            print_error(m);
            rv = EXIT_ERROR;
        }
        json_decref(m);
        break;
    }
    session_end(&s);
    return rv;
}

/* ---- tail ----------------------------------------------------------- */

static volatile sig_atomic_t tail_stop;

static void
on_stop(int sig)
{
    tail_stop = sig;
}

int
hf_cmd_tail(int argc, char **argv)
{
    struct opts o = {.cmd = "tail"};
    struct sigaction sa = {.sa_handler = on_stop}, old_int, old_term;
    struct session s;
    sigset_t sigs;
    json_t *req, *m;
    const char *raw;
    size_t rawlen;
    uint64_t dl, next_ping = 0;
    int rv, subscribed = 0, ping_id = 1;

    if ((rv = parse_opts(&o, argc, argv, 1, 0)) >= 0)
        return rv;
    if (o.npos < 1) {
        fprintf(stderr, "holdfast tail: wants ADDRESS\n");
        usage(stderr);
        return EXIT_FAIL;
    }
    req = json_pack("{s:s, s:i, s:s}", "op", "sub", "id", 1, "to", o.pos[0]);
    if (req != NULL && o.has_since &&
        json_object_set_new(req, "since", json_integer(o.since)) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (req == NULL) {
        fprintf(stderr, "holdfast tail: ADDRESS must be UTF-8 text\n");
        return EXIT_FAIL;
    }

    /* Stop cleanly on SIGINT/SIGTERM: the handler only sets a flag, which
     * the receive loop looks at every TAIL_TICK_MS. No SA_RESTART, so a
     * blocked poll() returns at once. */
    tail_stop = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &sigs, NULL);

    if ((rv = session_open(&s, &o)) != 0)
        goto out;
    if (send_msg(&s, req) != 0) {
        fprintf(stderr, "holdfast tail: cannot send the subscription\n");
        rv = EXIT_LOST;
        goto out;
    }
    dl = hf_mono_ns() + (uint64_t)o.timeout_ms * 1000000u;
    if (s.heartbeat_s > 0)
        next_ping = hf_mono_ns() + (uint64_t)s.heartbeat_s * 1000000000u;
    while (!tail_stop) {
        rv = next_msg(&s, TAIL_TICK_MS, &m, &raw, &rawlen);
        if (rv == HF_ETIMEOUT) {
            if (!subscribed && ms_left(dl) == 0) {
                fprintf(stderr,
                        "holdfast tail: no reply to the "
                        "subscription within %d ms\n",
                        o.timeout_ms);
                rv = EXIT_FAIL;
                goto out;
            }
            /* Keep idle connections (and any NAT in between) alive. */
            if (next_ping != 0 && hf_mono_ns() >= next_ping) {
                json_t *p =
                    json_pack("{s:s, s:i}", "op", "ping", "id", ++ping_id);
                if (p != NULL)
                    send_msg(&s, p);
                json_decref(p);
                next_ping += (uint64_t)s.heartbeat_s * 1000000000u;
            }
            continue;
        }
        if (rv != 0) {
            if (tail_stop)
                break;
            print_lost(&s, subscribed ? "" : "before the subscription reply");
            rv = EXIT_LOST;
            goto out;
        }
        if (!subscribed && is_our_reply(m)) {
            if (!json_is_true(json_object_get(m, "ok"))) {
                print_error(m);
                json_decref(m);
                rv = EXIT_ERROR;
                goto out;
            }
            {
                const char *v;
                size_t vlen;
                if (raw_member(raw, rawlen, "result", &v, &vlen) != 0) {
                    v = "null";
                    vlen = 4;
                }
                fprintf(stderr, "holdfast tail: subscribed to %s: %.*s\n",
                        o.pos[0], (int)vlen, v);
            }
            subscribed = 1;
        } else if (strcmp(str_field(m, "op"), "event") == 0 &&
                   strcmp(str_field(m, "from"), o.pos[0]) == 0) {
            fwrite(raw, 1, rawlen, stdout);
            fputc('\n', stdout);
            fflush(stdout);
        }
        json_decref(m);
    }
    rv = EXIT_OK;
out:
    json_decref(req);
    session_end(&s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rv;
}
