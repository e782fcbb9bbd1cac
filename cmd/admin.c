/*
 * admin.c - `holdfast inspect DATA_DIR [ADDRESS]` and `holdfast recover
 * --data DATA_DIR --truncate-at SEGMENT:OFFSET`.
 *
 * inspect prints JSON. Offline (no server holds DATA_DIR/LOCK) it first
 * opens the store as a server would, which replays the write-ahead log
 * and checkpoints it, so LMDB holds every acknowledged write; beside a
 * live server it reads LMDB read-only, which shows the state as of the
 * server's last checkpoint (at most --checkpoint-ms old) and says so.
 * Without an address: actors by kind, and the log's and checkpoint's
 * status. With kind/name: that actor's state (every key and value), its
 * last 20 events and its alarms.
 *
 * recover drops a damaged log from the place the server named (storage/
 * wal.h, hf_wal_truncate_at); it refuses while a server holds the
 * directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/admin.h"
#include "core/addr.h"
#include "core/err.h"
#include "core/mpjson.h"
#include "core/storage.h"
#include "storage/lmdb.h"
#include "storage/wal.h"

#define EVENTS_SHOWN 20

void
hf_cmd_admin_usage(FILE *out)
{
    fprintf(out,
            "       holdfast inspect DATA_DIR [KIND/NAME]   actors, log and "
            "checkpoint status; or one actor's state, events, alarms (JSON)\n"
            "       holdfast recover --data DATA_DIR --truncate-at SEG:OFF   "
            "drop a damaged write-ahead log from there on\n");
}

/* 1 when a server holds dir (its LOCK is taken), 0 when not, -1 error. */
static int
live(const char *dir)
{
    char path[4200];
    int fd, r;

    snprintf(path, sizeof(path), "%s/LOCK", dir);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -1;
    r = flock(fd, LOCK_EX | LOCK_NB) != 0 ? (errno == EWOULDBLOCK ? 1 : -1)
                                           : 0;
    close(fd); /* closing drops the lock if we took it */
    return r;
}

int
hf_cmd_recover(int argc, char **argv)
{
    const char *dir = NULL, *at = NULL;
    unsigned long long seg, off;
    char wdir[4200], *end;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--truncate-at") == 0)
            at = argv[i + 1];
    }
    if (dir == NULL || at == NULL) {
        fprintf(stderr, "usage: holdfast recover --data DATA_DIR "
                        "--truncate-at SEGMENT:OFFSET\n");
        return 2;
    }
    seg = strtoull(at, &end, 16);
    if (*end != ':' || end == at) {
        fprintf(stderr, "recover: --truncate-at wants SEGMENT:OFFSET, as the "
                        "server's error names it\n");
        return 2;
    }
    off = strtoull(end + 1, &end, 10);
    if (*end != '\0') {
        fprintf(stderr, "recover: bad offset in %s\n", at);
        return 2;
    }
    if (live(dir) != 0) {
        fprintf(stderr, "recover: %s is in use by a running server (or its "
                        "LOCK cannot be read): stop it first\n", dir);
        return 1;
    }
    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    if (hf_wal_truncate_at(wdir, seg, off) != 0)
        return 1;
    fprintf(stderr, "recover: the log of %s now ends at segment %016llx "
                    "offset %llu; every record after it is gone\n",
            dir, seg, off);
    return 0;
}

/* ------------------------------------------------------------------ */
/* inspect                                                             */

struct ro {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi kv, log, meta, wal;
    int has_wal;
};

static int
ro_open(struct ro *r, const char *dir)
{
    int rc;

    if ((rc = mdb_env_create(&r->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(r->env, HF_DB_COUNT_ + 1)) != 0 ||
        (rc = mdb_env_open(r->env, dir, MDB_RDONLY, 0640)) != 0 ||
        (rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn)) != 0 ||
        (rc = mdb_dbi_open(r->txn, "kv", 0, &r->kv)) != 0 ||
        (rc = mdb_dbi_open(r->txn, "log", 0, &r->log)) != 0 ||
        (rc = mdb_dbi_open(r->txn, "meta", 0, &r->meta)) != 0) {
        fprintf(stderr, "inspect: %s: %s\n", dir, mdb_strerror(rc));
        return -1;
    }
    r->has_wal = mdb_dbi_open(r->txn, "wal", 0, &r->wal) == 0;
    return 0;
}

static void
ro_close(struct ro *r)
{
    if (r->txn)
        mdb_txn_abort(r->txn);
    if (r->env)
        mdb_env_close(r->env);
}

/* A value: msgpack as JSON, else a string. */
static void
put_value(hf_json_wr *w, const void *p, size_t n)
{
    msgpack_unpacked u;
    size_t off = 0;

    msgpack_unpacked_init(&u);
    if (n > 0 && msgpack_unpack_next(&u, p, n, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == n)
        hf_json_mp(w, &u.data);
    else
        hf_json_str(w, p, n);
    msgpack_unpacked_destroy(&u);
}

static uint64_t
be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Every key of db in [addr\0, addr\1): fn(key suffix, value). */
typedef void visit_fn(hf_json_wr *w, MDB_val *k, MDB_val *v, size_t pre,
                      int *first);

static void
each_of(struct ro *r, MDB_dbi db, const char *addr, int reverse, int max,
        hf_json_wr *w, visit_fn *fn)
{
    size_t al = strlen(addr);
    char lo[600], hi[600];
    MDB_cursor *c;
    MDB_val k, v;
    int rc, first = 1, n = 0;

    memcpy(lo, addr, al);
    lo[al] = '\0';
    memcpy(hi, addr, al);
    hi[al] = '\1';
    if (mdb_cursor_open(r->txn, db, &c) != 0)
        return;
    k.mv_data = reverse ? hi : lo;
    k.mv_size = al + 1;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (reverse)
        rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    for (; rc == 0 && (max == 0 || n < max); n++) {
        if (k.mv_size <= al || memcmp(k.mv_data, lo, al + 1) != 0)
            break;
        fn(w, &k, &v, al + 1, &first);
        rc = mdb_cursor_get(c, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
    }
    mdb_cursor_close(c);
}

static void
visit_kv(hf_json_wr *w, MDB_val *k, MDB_val *v, size_t pre, int *first)
{
    if (!*first)
        HF_JSON_PUTS(w, ",");
    *first = 0;
    hf_json_str(w, (char *)k->mv_data + pre, k->mv_size - pre);
    HF_JSON_PUTS(w, ":");
    put_value(w, v->mv_data, v->mv_size);
}

static void
visit_event(hf_json_wr *w, MDB_val *k, MDB_val *v, size_t pre, int *first)
{
    if (k->mv_size != pre + 8)
        return;
    if (!*first)
        HF_JSON_PUTS(w, ",");
    *first = 0;
    HF_JSON_PUTS(w, "{\"seq\":");
    hf_json_u64(w, be64((unsigned char *)k->mv_data + pre));
    HF_JSON_PUTS(w, ",\"event\":");
    put_value(w, v->mv_data, v->mv_size);
    HF_JSON_PUTS(w, "}");
}

static void
visit_meta(hf_json_wr *w, MDB_val *k, MDB_val *v, size_t pre, int *first)
{
    const char *f = (char *)k->mv_data + pre;
    size_t fl = k->mv_size - pre;
    const unsigned char *p = v->mv_data;

    if (!*first)
        HF_JSON_PUTS(w, ",");
    *first = 0;
    if (fl > 2 && memcmp(f, "a:", 2) == 0 && v->mv_size >= 8) {
        HF_JSON_PUTS(w, "\"alarm ");
        hf_json_put(w, f + 2, fl - 2);
        HF_JSON_PUTS(w, "\":{\"due_ms\":");
        hf_json_u64(w, be64(p));
        HF_JSON_PUTS(w, "}");
    } else if (v->mv_size == 8 && fl != 5) { /* be64 counters: seq, obx */
        hf_json_str(w, f, fl);
        HF_JSON_PUTS(w, ":");
        hf_json_u64(w, be64(p));
    } else {
        hf_json_str(w, f, fl);
        HF_JSON_PUTS(w, ":");
        hf_json_str(w, p, v->mv_size);
    }
}

/* Counts actors by kind over the addresses in kv and meta. */
static void
kinds(struct ro *r, hf_json_wr *w)
{
    MDB_dbi dbs[2] = {r->kv, r->meta};
    char last[2][300] = {"", ""};
    struct { char kind[40]; unsigned long n; } k[64];
    int nk = 0;
    MDB_cursor *c[2];
    MDB_val kk[2], vv[2];
    int ok[2];

    for (int i = 0; i < 2; i++) {
        mdb_cursor_open(r->txn, dbs[i], &c[i]);
        ok[i] = mdb_cursor_get(c[i], &kk[i], &vv[i], MDB_FIRST) == 0;
    }
    /* Both lists sorted by address: merge them, counting each once. */
    for (;;) {
        char a[2][300];
        int pick = -1;
        for (int i = 0; i < 2; i++) {
            size_t n = ok[i] ? strnlen(kk[i].mv_data, kk[i].mv_size) : 0;
            if (!ok[i])
                continue;
            snprintf(a[i], sizeof(a[i]), "%.*s", (int)n,
                     (char *)kk[i].mv_data);
            if (pick < 0 || strcmp(a[i], a[pick]) < 0)
                pick = i;
        }
        if (pick < 0)
            break;
        if (strcmp(a[pick], last[0]) != 0) {
            char *slash = strchr(a[pick], '/');
            size_t kl = slash ? (size_t)(slash - a[pick]) : strlen(a[pick]);
            int j;
            for (j = 0; j < nk; j++)
                if (strlen(k[j].kind) == kl &&
                    memcmp(k[j].kind, a[pick], kl) == 0)
                    break;
            if (j == nk && nk < 64) {
                snprintf(k[nk].kind, sizeof(k[nk].kind), "%.*s", (int)kl,
                         a[pick]);
                k[nk++].n = 0;
            }
            if (j < nk)
                k[j].n++;
            snprintf(last[0], sizeof(last[0]), "%s", a[pick]);
        }
        /* Skip the rest of this address in that database. */
        {
            char hi[301];
            size_t al = strlen(a[pick]);
            memcpy(hi, a[pick], al);
            hi[al] = '\1';
            kk[pick].mv_data = hi;
            kk[pick].mv_size = al + 1;
            ok[pick] = mdb_cursor_get(c[pick], &kk[pick], &vv[pick],
                                      MDB_SET_RANGE) == 0;
        }
    }
    for (int i = 0; i < 2; i++)
        mdb_cursor_close(c[i]);
    HF_JSON_PUTS(w, "{");
    for (int j = 0; j < nk; j++) {
        if (j)
            HF_JSON_PUTS(w, ",");
        hf_json_str(w, k[j].kind, strlen(k[j].kind));
        HF_JSON_PUTS(w, ":");
        hf_json_u64(w, k[j].n);
    }
    HF_JSON_PUTS(w, "}");
}

static void
wal_status(const char *dir, struct ro *r, hf_json_wr *w)
{
    char wdir[4200];
    unsigned long long bytes = 0;
    int nseg = 0;
    uint64_t applied = 0;
    struct dirent *e;
    DIR *d;

    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    if ((d = opendir(wdir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            char p[4500];
            struct stat sb;
            if (strlen(e->d_name) != 20)
                continue;
            snprintf(p, sizeof(p), "%s/%s", wdir, e->d_name);
            if (stat(p, &sb) == 0) {
                nseg++;
                bytes += (unsigned long long)sb.st_size;
            }
        }
        closedir(d);
    }
    if (r->has_wal) {
        MDB_val k = {.mv_size = 7, .mv_data = "applied"}, v;
        if (mdb_get(r->txn, r->wal, &k, &v) == 0 && v.mv_size == 8)
            memcpy(&applied, v.mv_data, 8);
    }
    HF_JSON_PUTS(w, "{\"segments\":");
    hf_json_u64(w, (uint64_t)nseg);
    HF_JSON_PUTS(w, ",\"segment_bytes\":");
    hf_json_u64(w, bytes);
    HF_JSON_PUTS(w, ",\"checkpoint_lsn\":");
    hf_json_u64(w, applied);
    HF_JSON_PUTS(w, "}");
}

int
hf_cmd_inspect(int argc, char **argv)
{
    const char *dir, *addr = NULL;
    struct ro r = {0};
    hf_buf b = {0};
    hf_json_wr w = {&b, 0, 0, 0};
    int lv;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: holdfast inspect DATA_DIR [KIND/NAME]\n");
        return 2;
    }
    dir = argv[1];
    if (argc == 3) {
        addr = argv[2];
        size_t kl;
        if (hf_addr_check(addr, strlen(addr), &kl) != 0) {
            fprintf(stderr, "inspect: %s is not an address (kind/name)\n",
                    addr);
            return 2;
        }
    }
    if ((lv = live(dir)) < 0) {
        fprintf(stderr, "inspect: %s: cannot read its LOCK\n", dir);
        return 1;
    }
    if (lv == 0) {
        /* Offline: replay the log into LMDB first, as a start would. */
        hf_lmdb_config c;
        struct hf_lmdb_opts o;
        hf_store st;
        hf_lmdb_config_defaults(&c);
        snprintf(c.data, sizeof(c.data), "%s", dir);
        o = hf_lmdb_config_opts_of(&c);
        o.map_size = 0;
        if (hf_lmdb_open(&st, &o) != 0)
            return 1;
        st.ops->close(st.self);
    }
    if (ro_open(&r, dir) != 0) {
        ro_close(&r);
        return 1;
    }
    HF_JSON_PUTS(&w, "{\"data\":");
    hf_json_str(&w, dir, strlen(dir));
    if (lv) /* two statements: HF_JSON_PUTS takes the size of a literal */
        HF_JSON_PUTS(&w, ",\"live\":true,\"as_of\":\"the server's last "
                         "checkpoint\"");
    else
        HF_JSON_PUTS(&w, ",\"live\":false");
    if (addr == NULL) {
        HF_JSON_PUTS(&w, ",\"actors_by_kind\":");
        kinds(&r, &w);
        HF_JSON_PUTS(&w, ",\"wal\":");
        wal_status(dir, &r, &w);
    } else {
        HF_JSON_PUTS(&w, ",\"address\":");
        hf_json_str(&w, addr, strlen(addr));
        HF_JSON_PUTS(&w, ",\"state\":{");
        each_of(&r, r.kv, addr, 0, 0, &w, visit_kv);
        HF_JSON_PUTS(&w, "},\"meta\":{");
        each_of(&r, r.meta, addr, 0, 0, &w, visit_meta);
        HF_JSON_PUTS(&w, "},\"recent_events\":[");
        each_of(&r, r.log, addr, 1, EVENTS_SHOWN, &w, visit_event);
        HF_JSON_PUTS(&w, "]");
    }
    HF_JSON_PUTS(&w, "}\n");
    ro_close(&r);
    if (w.fail) {
        fprintf(stderr, "inspect: out of memory\n");
        return 1;
    }
    fwrite(b.data, 1, b.len, stdout);
    hf_buf_free(&b);
    return 0;
}
