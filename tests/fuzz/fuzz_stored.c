/*
 * fuzz_stored.c - what the engine reads back from LMDB: a data directory
 * holding arbitrary records, then a host started on it and asked about
 * one actor.
 *
 * Input: byte 0 picks the actor (one of each kind, see actors[]); then
 * records, each "u8 database, u8 key length, key, u16 value length (little
 * endian), value", written in one batch through the store (storage/lmdb.c
 * applies it: gather, sort, last write wins). Keys are whole keys
 * (core/keys.h), so a seed dumped from a real engine (fuzz_mkcorpus runs
 * one) is a valid input.
 *
 * Then hf_host_open, which loads the alarm index and re-queues the outbox
 * (host.c alarm_load_cb, outbox_load_cb); the actor is called with a read
 * method, the same call with an idempotency key (idem_lookup), asked for
 * its history (history_cb) and subscribed from seq 0 with the epoch the
 * records hold, if any (backlog_cb); loading it reads its metadata and
 * alarms (load_meta, meta_alarm_cb) and its kind reads its state. Every
 * input gets a fresh directory under $HF_TEST_TMP (or /tmp); the store is
 * closed and the directory removed after the host closes.
 *
 * Properties: no crash, no sanitizer report, and the host stops cleanly
 * (hf_host_close returns: a hang is a libFuzzer timeout); every request
 * is answered within WAIT_MS; and every output batch the host delivers is
 * a sequence of valid output envelopes whose client messages are valid
 * (fz_gateway_output, fz_check_out).
 *
 * The engine once trusted what it stored and spliced stored bytes into its
 * outputs as they were (an idempotency record's reply, an event record's
 * fields, a room's stored messages): a record that was not what the engine
 * wrote broke the batch it landed in. This target found that
 * (corpus/stored/crash-*); the host now checks each such value at the seam
 * (one whole msgpack object: ops.c, gate.c, env.c hf_env_event_value_ok),
 * so these properties are fatal. HF_FUZZ_STORED_LENIENT=1 only reports
 * them (the first few inputs, and a count at exit), to look past one.
 * HF_FUZZ_VERBOSE=1 prints every output envelope.
 *
 * Slow (a host started and stopped per input): run it for time.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/kinds.h"
#include "core/config.h"
#include "core/err.h"
#include "core/host.h"
#include "core/log.h"
#include "core/mpjson.h"
#include "storage/lmdb.h"
#include "tests/fuzz/fuzz.h"
#include "transport/wire.h"

#define CONN     1
#define NREQ     5
#define WAIT_MS  2000
#define MYWORKER (HF_LMDB_MAX_WORKERS - 1) /* fences no host worker */

/* The actor asked about, per byte 0; the same addresses as mkcorpus.c's
 * engine uses. args: JSON. */
static const struct {
    const char *addr, *method, *args;
} actors[] = {
    {"counter/a", "get", "{}"},
    {"store/s", "list", "{}"},
    {"device/d", "get", "{}"},
    {"room/r", "history", "{\"after\":0}"},
    {"poll/p", "tally", "{}"},
    {"user/u", "list", "{}"},
};

/* The output sink: delivered batches are checked as they arrive. */
static struct {
    hf_sink sink;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int replies;   /* mu: replies to CONN */
    int bad;       /* mu: malformed output batches for this input */
    long bad_inputs; /* inputs that had one (reported at exit) */
    int committed; /* mu: the record batch is done */
    int status;    /* mu: its status */
} col = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int strict;  /* unless HF_FUZZ_STORED_LENIENT=1 */
static int verbose; /* HF_FUZZ_VERBOSE=1: each output envelope */

static void
check_batch(const hf_buf *b)
{
    hf_buf out[2] = {{0}}, http = {0};
    msgpack_zone z;
    size_t off = 0, o2 = 0;
    int n = 0;

    msgpack_zone_init(&z, 4096);
    while (off < b->len) {
        msgpack_object obj;
        hf_env e, r;
        int st;

        if (hf_env_read(b->data, b->len, &o2, &z, &r, &st) != 0 ||
            st != 0) {
            if (strict || verbose)
                fprintf(stderr, "fuzz_stored: envelope %d of a %zu-byte "
                                "output batch is malformed or invalid (at "
                                "%zu)\n",
                        n, b->len, off);
            FZ_CHECK(!strict || !"the host's output batches are valid");
            col.bad++; /* the gateway could read no further either */
            break;
        }
        FZ_CHECK(r.op >= HF_OUT_REPLY && r.op <= HF_OUT_PRESENCE);
        FZ_CHECK(hf_unpack_next(b->data, b->len, &off, &z, &obj) == 0);
        FZ_CHECK(off == o2 && hf_env_decode(&obj, &e) == 0);
        fz_gateway_output(&e, &obj, (hf_slice){"\x01", 1}, out, &http);
        if (e.op == HF_OUT_REPLY && e.has_conn && e.conn == CONN)
            col.replies++;
        if (verbose)
            fprintf(stderr, "fuzz_stored: out op %d c %llu id %llu ok %d "
                            "%.*s\n",
                    e.op, (unsigned long long)e.conn,
                    (unsigned long long)e.id, e.ok, (int)e.code.len,
                    (const char *)e.code.data);
        msgpack_zone_clear(&z);
        n++;
    }
    fz_check_out(&out[HF_WIRE_JSON], HF_WIRE_JSON);
    fz_check_out(&out[HF_WIRE_MSGPACK], HF_WIRE_MSGPACK);
    msgpack_zone_destroy(&z);
    hf_buf_free(&out[0]);
    hf_buf_free(&out[1]);
    hf_buf_free(&http);
}

static void
deliver(hf_sink *s, hf_buf *out)
{
    (void)s;
    pthread_mutex_lock(&col.mu);
    check_batch(out);
    pthread_cond_broadcast(&col.cv);
    pthread_mutex_unlock(&col.mu);
    free(out->data);
    out->data = NULL;
    out->len = out->cap = 0;
}

static void
committed(void *arg, hf_wbatch *wb)
{
    (void)arg;
    pthread_mutex_lock(&col.mu);
    col.committed = 1;
    col.status = wb->status;
    pthread_cond_broadcast(&col.cv);
    pthread_mutex_unlock(&col.mu);
}

/* Waits until *flag reaches want, a malformed batch came (the replies
 * after it cannot be counted) or WAIT_MS pass; returns *flag. */
static int
wait_for(const int *flag, int want)
{
    struct timespec until;
    int v;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&col.mu);
    while (*flag < want && col.bad == 0 &&
           pthread_cond_timedwait(&col.cv, &col.mu, &until) == 0)
        ;
    v = *flag;
    pthread_mutex_unlock(&col.mu);
    return v;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Parses the records into wb; the actor's epoch, when one is among them,
 * into epoch (16 bytes). */
static void
records(const uint8_t *p, size_t n, const char *addr, hf_wbatch *wb,
        char *epoch, int *has_epoch)
{
    size_t alen = strlen(addr);

    while (n >= 2) {
        int dbi = p[0] % HF_DB_COUNT_;
        size_t kl = p[1], vl;
        const uint8_t *k = p + 2, *v;

        if (n < 2 + kl + 2)
            return;
        vl = (size_t)p[2 + kl] | (size_t)p[3 + kl] << 8;
        v = p + 4 + kl;
        if (n - 4 - kl < vl)
            return;
        if (kl > 0)
            FZ_CHECK(hf_wbatch_put(wb, dbi, k, kl, v, vl) == 0);
        if (dbi == HF_DB_META && kl == alen + 6 &&
            memcmp(k, addr, alen) == 0 && k[alen] == '\0' &&
            memcmp(k + alen + 1, "epoch", 5) == 0 && vl == 16) {
            memcpy(epoch, v, 16);
            *has_epoch = 1;
        }
        p += 4 + kl + vl;
        n -= 4 + kl + vl;
    }
}

static void
summary(void)
{
    if (col.bad_inputs > 0)
        fprintf(stderr, "fuzz_stored: %ld inputs made the host deliver a "
                        "malformed output batch or miss a reply (known: see "
                        "the notes at the top of fuzz_stored.c)\n",
                col.bad_inputs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tmp = getenv("HF_TEST_TMP");
    char dir[512], epoch[16];
    hf_config cfg;
    hf_store st;
    hf_host *host = NULL;
    hf_wbatch wb = {.worker = MYWORKER};
    hf_buf req = {0}, argb = {0};
    msgpack_packer pk;
    static int once;
    int a, has_epoch = 0, got;

    if (size < 1)
        return 0;
    if (!once) {
        once = 1;
        strict = getenv("HF_FUZZ_STORED_LENIENT") == NULL;
        verbose = getenv("HF_FUZZ_VERBOSE") != NULL;
        atexit(summary);
    }
    a = data[0] % (int)(sizeof(actors) / sizeof(actors[0]));
    records(data + 1, size - 1, actors[a].addr, &wb, epoch, &has_epoch);

    snprintf(dir, sizeof(dir), "%s/fuzz-stored-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    FZ_CHECK(mkdtemp(dir) != NULL);
    hf_config_defaults(&cfg);
    cfg.workers = 1;
    cfg.log_level = HF_LOG_OFF;
    hf_log_set_level(cfg.log_level);
    FZ_CHECK(hf_lmdb_open(&st, &(struct hf_lmdb_opts){
                                   .dir = dir,
                                   .nreaders = cfg.workers + 2,
                                   .durability = HF_DURABLE_NONE,
                                   .map_size = 4 << 20,
                               }) == 0);

    /* the records, committed before the host starts */
    col.committed = col.replies = col.bad = 0;
    st.ops->set_done(st.self, committed, NULL);
    if (wb.nops > 0) {
        FZ_CHECK(st.ops->submit(st.self, &wb) == 0);
        FZ_CHECK(wait_for(&col.committed, 1) == 1);
    }

    hf_sink_init(&col.sink, deliver, NULL);
    FZ_CHECK(hf_host_open(&host, &(struct hf_host_opts){
                                     .cfg = &cfg,
                                     .store = st,
                                     .kinds = hf_kinds,
                                     .nkinds = hf_nkinds,
                                 }) == 0);

    /* the requests */
    {
        hf_slice to = {actors[a].addr, strlen(actors[a].addr)};
        hf_slice m = {actors[a].method, strlen(actors[a].method)};
        hf_slice args;
        hf_env e = {.conn = CONN, .has_conn = 1, .to = to,
                    .sub = {"fuzz", 4},
                    .role = HF_ROLE_USER | HF_ROLE_ADMIN | HF_ROLE_DEVICE |
                            HF_ROLE_SERVICE};

        FZ_CHECK(hf_json_to_mp(actors[a].args, strlen(actors[a].args),
                               &argb) == 0);
        args = (hf_slice){argb.data, argb.len};
        msgpack_packer_init(&pk, &req, hf_buf_mpwrite);
        e.op = HF_OP_CALL, e.id = 1, e.method = m;
        FZ_CHECK(hf_env_pack_request(&pk, &e, args) == 0);
        e.id = 2, e.key = (hf_slice){"k1", 2};
        FZ_CHECK(hf_env_pack_request(&pk, &e, args) == 0);
        e.op = HF_OP_HISTORY, e.id = 3, e.method = e.key = (hf_slice){0};
        e.has_since = 1, e.since = 0;
        FZ_CHECK(hf_env_pack_request(&pk, &e, (hf_slice){"\x05", 1}) == 0);
        e.op = HF_OP_SUB, e.id = 4;
        if (has_epoch)
            e.epoch = (hf_slice){epoch, 16};
        FZ_CHECK(hf_env_pack_request(&pk, &e, (hf_slice){0}) == 0);
        e.op = HF_OP_UNSUB, e.id = 5, e.has_since = 0,
        e.epoch = (hf_slice){0};
        FZ_CHECK(hf_env_pack_request(&pk, &e, (hf_slice){0}) == 0);
    }
    FZ_CHECK(hf_host_submit(host, &col.sink, req.data, req.len) == 0);
    got = wait_for(&col.replies, NREQ);
    hf_host_close(host); /* a host that hangs here is a libFuzzer timeout */
    if (col.bad > 0 || got != NREQ) {
        if (got != NREQ)
            fprintf(stderr, "fuzz_stored: %d of %d replies in %d ms\n", got,
                    NREQ, WAIT_MS);
        FZ_CHECK(!strict || !"every output batch is valid, every request "
                             "answered");
        if (col.bad_inputs++ < 3) {
            fprintf(stderr, "fuzz_stored: %s for this input:",
                    col.bad ? "a malformed output batch"
                            : "replies missing (swallowed?)");
            for (size_t i = 0; i < size && i < 512; i++)
                fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", data[i]);
            fprintf(stderr, "\n");
        }
    }

    st.ops->close(st.self);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    hf_buf_free(&wb.ops);
    hf_buf_free(&req);
    hf_buf_free(&argb);
    return 0;
}
