/*
 * conn.c - connections of one gateway thread: their table, output queues,
 * and writing WebSocket frames.
 *
 * Design notes
 * ------------
 * Output. Messages for a connection accumulate in its out buffer and are
 * written when lws says it is writable, as many as fit in one frame (JSON
 * joined by '\n', msgpack concatenated). A connection whose buffer passes
 * --outbuf-max is a slow consumer: it is closed with 1013 and can recover
 * with "since".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"

#include "transport/gw_int.h"

/* ------------------------------------------------------------------ */
/* the connection table                                                */

struct conn *
gw_conn_find(struct gw *gw, uint64_t id)
{
    hf_hnode *n = hf_htab_find(&gw->conns, id); /* ids are unique */

    return n != NULL ? hf_htab_entry(n, struct conn, hn) : NULL;
}

/* ------------------------------------------------------------------ */
/* output to a connection                                              */

void
gw_want_write(struct conn *c)
{
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* After appending to c->out: enforce the slow-consumer limit. */
void
gw_queued(struct conn *c)
{
    if (c->close_code)
        return;
    if (hf_outq_pending(&c->out) > (size_t)c->gw->g->cfg.outbuf_max) {
        HF_GW_INC(slow_consumers);
        hf_info("gateway",
                "conn %llu: slow consumer (%zu bytes gw_queued), "
                "closing with 1013",
                (unsigned long long)c->id, hf_outq_pending(&c->out));
        c->close_code = 1013;
        hf_outq_clear(&c->out);
    }
    gw_want_write(c);
}

/* Appends a message encoded alone (no leading '\n') to c->out. */
void
gw_append_encoded(struct conn *c, const hf_buf *enc)
{
    if (c->close_code)
        return;
    hf_buf *b = hf_outq_tail(&c->out);

    if (c->fmt == HF_WIRE_JSON && b->len > 0)
        HF_MUST(hf_buf_append(b, "\n", 1));
    HF_MUST(hf_buf_append(b, enc->data, enc->len));
    gw_queued(c);
}

void
gw_reply_err(struct conn *c, hf_slice id, int err, const char *msg)
{
    if (c->close_code)
        return;
    hf_wire_reply_err(hf_outq_tail(&c->out), c->fmt, id, err, msg,
                      msg ? strlen(msg) : 0);
    gw_queued(c);
}

/* The length of the next frame's worth of c->out: whole messages, up to
 * FRAME_OUT_MAX bytes unless a single message is larger. */
static size_t
next_chunk(struct conn *c)
{
    const char *p = hf_outq_head(&c->out);
    size_t left = hf_outq_pending(&c->out), n = 0;

    if (left <= FRAME_OUT_MAX)
        return left;
    if (c->fmt == HF_WIRE_JSON) {
        const char *nl = memrchr(p, '\n', FRAME_OUT_MAX);
        if (nl != NULL)
            return (size_t)(nl - p);
        nl = memchr(p, '\n', left);
        return nl ? (size_t)(nl - p) : left;
    }
    while (n < left) {
        size_t m = hf_wire_mp_check(p + n, left - n, 64);
        if (m == 0)
            return left;
        if (n > 0 && n + m > FRAME_OUT_MAX)
            break;
        n += m;
    }
    return n;
}

/* One data frame of n bytes, through the gateway's write buffer (lws
 * wants LWS_PRE bytes of room before the payload). 0, or -1 to close. */
static int
put_frame(struct gw *gw, struct conn *c, const void *data, size_t n)
{
    if (gw->wcap < LWS_PRE + n) {
        gw->wcap = LWS_PRE + n;
        gw->wbuf = hf_xrealloc(gw->wbuf, gw->wcap);
    }
    memcpy(gw->wbuf + LWS_PRE, data, n);
    if (lws_write(c->wsi, gw->wbuf + LWS_PRE, n,
                  c->fmt == HF_WIRE_JSON ? LWS_WRITE_TEXT : LWS_WRITE_BINARY) <
        (int)n)
        return -1;
    HF_GW_INC(frames_out);
    return 0;
}

int
gw_write_ws(struct gw *gw, struct conn *c)
{
    size_t n;

    /* A close waits for what was queued before it (nothing more is
     * queued after: the error replies that led to a 1008 reach the
     * client first; a slow consumer's 1013 found its buffer emptied). */
    if (c->close_code && hf_outq_pending(&c->out) == 0) {
        unsigned char reason[] = "bye";
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, reason,
                         3);
        return -1;
    }
    if (c->hello_due) {
        /* Encoded only now, in scratch, so that a connection which never
         * gets anything else never holds an output buffer. First, before
         * whatever was queued meanwhile. */
        c->hello_due = 0;
        gw->scratch.len = 0;
        hf_wire_hello(&gw->scratch, c->fmt, "holdfast/" HF_VERSION, c->id,
                      gw->g->cfg.heartbeat_s);
        if (put_frame(gw, c, gw->scratch.data, gw->scratch.len) != 0)
            return -1;
        if (hf_outq_pending(&c->out) > 0 || c->ping_due || c->close_code)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->ping_due && !c->close_code) {
        /* One write per writable: the output, if any, goes next time. The
         * payload is not empty because lws 4.1 does not report an empty
         * pong (LWS_CALLBACK_RECEIVE_PONG), and the pong is the proof. */
        unsigned char ping[LWS_PRE + 2];
        c->ping_due = 0;
        memcpy(ping + LWS_PRE, "hf", 2);
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 2)
            return -1;
        if (hf_outq_pending(&c->out) > 0)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (hf_outq_pending(&c->out) == 0)
        return 0;
    n = next_chunk(c);
    if (put_frame(gw, c, hf_outq_head(&c->out), n) != 0)
        return -1;
    hf_outq_consumed(&c->out, n);
    if (c->fmt == HF_WIRE_JSON && hf_outq_pending(&c->out) > 0 &&
        hf_outq_head(&c->out)[0] == '\n')
        hf_outq_consumed(&c->out, 1);
    if (hf_outq_pending(&c->out) > 0 || c->close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

struct conn *
gw_conn_new(struct gw *gw, struct lws *wsi, int kind)
{
    struct conn *c = hf_xcalloc(
        1, sizeof(*c) + (kind == C_HTTP ? sizeof(struct http_req) : 0));
    c->id = ++gw->next_conn;
    c->wsi = wsi;
    c->gw = gw;
    c->kind = kind;
    c->tokens = gw->g->cfg.rate_burst;
    c->tok_ns = (uint64_t)lws_now_usecs();
    c->seen = c->pinged = gw->tick;
    hf_htab_insert(&gw->conns, &c->hn, c->id);
    return c;
}
struct gone {
    struct gw *gw;
    struct conn *c;
};

static void
gone_one(hf_hnode *n, void *arg)
{
    struct gone *g = arg;
    struct csub *cs = hf_htab_entry(n, struct csub, hn);

    gw_unsub_env(g->gw, g->c, cs->addr, cs->alen);
    gw_sub_drop(g->gw, g->c, cs);
}

void
gw_conn_free(struct gw *gw, struct conn *c)
{
    struct gone g = {gw, c};

    /* Tell the actors this connection is gone: presence leave. */
    hf_htab_walk(&c->subs, gone_one, &g);
    hf_htab_fini(&c->subs);
    gw_send_req(gw);
    hf_htab_remove(&gw->conns, &c->hn);
    if (c->who != &gw->g->anon)
        free(c->who);
    hf_buf_free(&c->rx);
    hf_outq_free(&c->out);
    if (c->kind == C_HTTP)
        hf_buf_free(&c->h->body);
    if (c->kind == C_HTTP && c->h->pub.res != NULL) {
        for (uint32_t i = 0; i < c->h->pub.n; i++)
            hf_buf_free(&c->h->pub.res[i]);
        free(c->h->pub.res);
    }
    free(c);
}

void
gw_send_hello(struct conn *c)
{
    c->hello_due = 1; /* written by write_ws */
    gw_want_write(c);
}
