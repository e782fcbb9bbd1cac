/*
 * wal.c - the write-ahead log's files (wal.h).
 *
 * Design notes
 *
 * Record: u32 magic "HFW1", u32 CRC32C of everything after it (the rest
 * of the header and the payload), u64 LSN, u32 payload length, u32 zero,
 * then the payload. Little-endian as the host writes it: the log never
 * leaves the machine that wrote it (a shard transfer will ship records,
 * not files). One record per worker batch keeps a batch whole; a group
 * commit is many records, written with one pwrite and made durable with
 * one fdatasync (or, with --wal-sync dsync, an O_DSYNC write).
 *
 * Segments. A record never spans two segments: when it does not fit, the
 * writer moves to the spare, a segment reserved ahead — created with
 * every byte written (zeros) and synced, its name synced into the
 * directory — so that appending never allocates and a full disk shows
 * when reserving the next spare, not while writing a record. A record
 * larger than a segment gets a segment of its own size. Segments a synced
 * checkpoint has wholly applied go to a pool and are renamed to the next
 * number when a spare is needed, so a busy server writes no new files.
 *
 * Where the log ends. A recycled segment still holds its old records,
 * whose LSNs are lower than any new one; a fresh one holds zeros. So
 * replay reads each segment until a header that is not a record (zeros,
 * garbage, beyond the end) or an old LSN, then goes on with the next
 * segment; the log ends where no next record follows. A record with the
 * right header but a bad CRC is damage: if a valid, newer record follows
 * it (in the same segment or at the start of a later one), the damage is
 * in the middle of the log and replay refuses to guess; otherwise it is
 * the torn tail of a write that crashed before its sync — never
 * acknowledged — and it is zeroed.
 *
 * A failed write leaves the position and LSN where they were, so the
 * records are written again over whatever part reached the file, and
 * their first header is zeroed at once in case it did. A failed fdatasync
 * is different: the kernel may have dropped the pages it could not write
 * and will not say which, so the log stops accepting writes (as
 * PostgreSQL does); a restart replays what is really on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/oom.h"
#include "core/vec.h"
#include "storage/crc32c.h"
#include "storage/wal.h"

#define MOD "wal"
#define MAGIC 0x31574648u /* "HFW1" */
#define POOL_MAX 4        /* recycled segments kept; more are removed */
#define ZERO_CHUNK (1 << 20)

struct seg {
    uint64_t no;
    uint64_t last; /* highest LSN written into it; 0 = none */
    size_t size;
};

struct hf_wal {
    char dir[PATH_MAX - 32];
    size_t seg_size;
    int sync, dsync;
    int dirfd;
    int broken; /* a sync failed: refuse writes (writer thread only) */

    /* Writer thread only. */
    int fd;         /* current segment */
    size_t off;     /* where the next record goes */
    uint64_t next;  /* its LSN */
    int spare_fd;   /* the segment reserved ahead, or -1 */
    size_t spare_size;

    pthread_mutex_t mu; /* segs and pool: the writer and the checkpointer */
    struct seg *segs;   /* in use, oldest first; the last is current */
    size_t nsegs, capsegs;
    struct seg *pool; /* applied, to be recycled */
    size_t npool, cappool;
    uint64_t top;     /* highest segment number in the directory */
};

/* ------------------------------------------------------------------ */
/* Faults                                                              */

static const char *fault_want;
static long fault_skip, fault_hits;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void
fault_init(void)
{
    const char *s = getenv("HOLDFAST_FAULT_SKIP");

    fault_want = getenv("HOLDFAST_FAULT");
    fault_skip = s ? strtol(s, NULL, 10) : 0;
}

void
hf_fault(const char *point)
{
    pthread_once(&fault_once, fault_init);
    if (fault_want == NULL || strcmp(fault_want, point) != 0)
        return;
    if (__atomic_fetch_add(&fault_hits, 1, __ATOMIC_RELAXED) < fault_skip)
        return;
    fprintf(stderr, "holdfast: HOLDFAST_FAULT=%s: exiting here\n", point);
    _exit(86);
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

void
hf_wal_record(hf_buf *out, uint64_t lsn, const void *p, size_t n)
{
    unsigned char h[HF_WAL_HDR] = {0};
    uint32_t magic = MAGIC, len = (uint32_t)n, crc;

    memcpy(h, &magic, 4);
    memcpy(h + 8, &lsn, 8);
    memcpy(h + 16, &len, 4);
    crc = hf_crc32c(0, h + 8, HF_WAL_HDR - 8);
    crc = hf_crc32c(crc, p, n);
    memcpy(h + 4, &crc, 4);
    HF_MUST(hf_buf_append(out, h, HF_WAL_HDR));
    HF_MUST(hf_buf_append(out, p, n));
}

/* What lies at off in a segment of size sz. */
enum rec_kind { REC_OK, REC_END, REC_BAD };

struct rec {
    uint64_t lsn;
    uint32_t len;
};

static enum rec_kind
rec_at(const unsigned char *m, size_t sz, size_t off, struct rec *r)
{
    uint32_t magic, crc, want;

    if (sz - off < HF_WAL_HDR)
        return REC_END;
    memcpy(&magic, m + off, 4);
    if (magic != MAGIC)
        return REC_END;
    memcpy(&crc, m + off + 4, 4);
    memcpy(&r->lsn, m + off + 8, 8);
    memcpy(&r->len, m + off + 16, 4);
    if (r->len > sz - off - HF_WAL_HDR)
        return REC_BAD; /* a length past the end: a torn or damaged header */
    want = hf_crc32c(0, m + off + 8, HF_WAL_HDR - 8);
    want = hf_crc32c(want, m + off + HF_WAL_HDR, r->len);
    return want == crc ? REC_OK : REC_BAD;
}

/* ------------------------------------------------------------------ */
/* Segment files                                                       */

static void
seg_path(char *out, size_t n, const char *dir, uint64_t no)
{
    /* dir is checked to leave room at open; a cut name opens nothing. */
    if ((size_t)snprintf(out, n, "%s/%016llx.wal", dir,
                         (unsigned long long)no) >= n)
        out[0] = '\0';
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The segment numbers in dir, ascending, into *out (caller frees). */
static int
list_segs(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (d == NULL)
        return errno == ENOENT ? 0 : errno;
    while ((e = readdir(d)) != NULL) {
        char *end;
        unsigned long long no;
        if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".wal") != 0)
            continue;
        no = strtoull(e->d_name, &end, 16);
        if (end != e->d_name + 16)
            continue;
        HF_VEC_PUSH(*out, *n, cap, 16, (uint64_t)no);
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* Maps segment no of dir read-only (fix: read-write). */
static int
seg_map(const char *dir, uint64_t no, int fix, unsigned char **m, size_t *sz)
{
    char path[PATH_MAX];
    struct stat sb;
    int fd, rc = 0;

    seg_path(path, sizeof(path), dir, no);
    *m = NULL;
    *sz = 0;
    if ((fd = open(path, (fix ? O_RDWR : O_RDONLY) | O_CLOEXEC)) < 0 ||
        fstat(fd, &sb) != 0) {
        rc = errno;
        hf_error(MOD, "%s: %s", path, strerror(rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    *sz = (size_t)sb.st_size;
    if (*sz > 0) {
        *m = mmap(NULL, *sz, PROT_READ | (fix ? PROT_WRITE : 0), MAP_SHARED,
                  fd, 0);
        if (*m == MAP_FAILED) {
            rc = errno;
            *m = NULL;
            hf_error(MOD, "mmap %s: %s", path, strerror(rc));
        }
    }
    close(fd);
    return rc;
}

static int
sync_dir(int dirfd, const char *dir)
{
    if (fsync(dirfd) != 0) {
        hf_error(MOD, "fsync %s: %s", dir, strerror(errno));
        return errno;
    }
    return 0;
}

/*
 * Drops fd's pages from the page cache. Why: the kernel may cache a file
 * written in large chunks (the zero fill) as large folios, and then
 * writes a whole folio back for each small dirty record: measured here
 * (Linux 6.18, ext4), 1 MiB to the disk for each fdatasync of a 300-byte
 * append, against 4 KiB once the pages are dropped and come back one by
 * one as records are written.
 */
static void
drop_cache(int fd)
{
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

    if (rc != 0)
        hf_debug(MOD, "posix_fadvise: %s", strerror(rc));
}

/* Writes n zero bytes into fd from 0 and syncs. Returns 0 or errno. */
static int
zero_fill(int fd, size_t n)
{
    static const unsigned char zeros[ZERO_CHUNK];
    size_t off = 0;

    while (off < n) {
        size_t k = n - off < ZERO_CHUNK ? n - off : ZERO_CHUNK;
        ssize_t w = pwrite(fd, zeros, k, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : ENOSPC;
        off += (size_t)w;
    }
    if (fdatasync(fd) != 0)
        return errno;
    drop_cache(fd);
    return 0;
}

static int
open_flags(const hf_wal *w)
{
    return O_RDWR | O_CLOEXEC | (w->sync && w->dsync ? O_DSYNC : 0);
}

/* Reserves the spare: a pooled segment renamed to the next number, or a
 * new zero-filled one of at least min bytes. Returns 0 or errno. */
static int
reserve_spare(hf_wal *w, size_t min)
{
    char path[PATH_MAX], from[PATH_MAX];
    uint64_t no = w->top + 1;
    size_t size = min > w->seg_size ? min : w->seg_size;
    int fd = -1, rc;

    seg_path(path, sizeof(path), w->dir, no);
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->npool; i++) {
        if (w->pool[i].size < size)
            continue;
        seg_path(from, sizeof(from), w->dir, w->pool[i].no);
        size = w->pool[i].size;
        w->pool[i] = w->pool[--w->npool];
        pthread_mutex_unlock(&w->mu);
        if (rename(from, path) != 0) {
            rc = errno;
            hf_error(MOD, "rename %s %s: %s", from, path, strerror(rc));
            return rc;
        }
        goto opened;
    }
    pthread_mutex_unlock(&w->mu);
    if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
        rc = errno;
        hf_error(MOD, "create %s: %s", path, strerror(rc));
        return rc;
    }
    if ((rc = zero_fill(fd, size)) != 0) {
        /* Give the space back: a full disk must not keep half a segment. */
        hf_warn(MOD, "cannot reserve segment %s (%zu bytes): %s", path, size,
                strerror(rc));
        close(fd);
        unlink(path);
        return rc;
    }
    close(fd);
opened:
    if ((rc = sync_dir(w->dirfd, w->dir)) != 0)
        return rc;
    if ((fd = open(path, open_flags(w))) < 0) {
        rc = errno;
        hf_error(MOD, "open %s: %s", path, strerror(rc));
        return rc;
    }
    drop_cache(fd); /* a recycled segment's too: see drop_cache */
    w->top = no;
    w->spare_fd = fd;
    w->spare_size = size;
    return 0;
}

/* Moves to the spare (reserving one first if there is none). */
static int
next_segment(hf_wal *w, size_t need)
{
    int rc;

    if (w->spare_fd >= 0 && w->spare_size < need) {
        /* Too small for this record: back to the pool, get a bigger one. */
        pthread_mutex_lock(&w->mu);
        HF_VEC_PUSH(w->pool, w->npool, w->cappool, 4,
                    ((struct seg){w->top, 0, w->spare_size}));
        pthread_mutex_unlock(&w->mu);
        close(w->spare_fd);
        w->spare_fd = -1;
    }
    if (w->spare_fd < 0 && (rc = reserve_spare(w, need)) != 0)
        return rc;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = w->spare_fd;
    w->off = 0;
    pthread_mutex_lock(&w->mu);
    HF_VEC_PUSH(w->segs, w->nsegs, w->capsegs, 8,
                ((struct seg){w->top, 0, w->spare_size}));
    pthread_mutex_unlock(&w->mu);
    w->spare_fd = -1;
    /* Reserve the next one now: a full disk shows here, while this
     * segment still has room, and the next switch retries. */
    if ((rc = reserve_spare(w, w->seg_size)) != 0)
        hf_warn(MOD, "no spare segment reserved yet (%s): writes fail "
                     "with storage_full when this segment is full",
                strerror(rc));
    return 0;
}

int
hf_wal_write(hf_wal *w, const hf_buf *recs, uint64_t first, uint64_t last)
{
    size_t n = recs->len, cur;
    ssize_t wr;
    int rc;

    if (w->broken)
        return HF_EINTERNAL;
    if (first != w->next) {
        hf_error(MOD, "write: LSN %llu, expected %llu",
                 (unsigned long long)first, (unsigned long long)w->next);
        return HF_EINTERNAL;
    }
    pthread_mutex_lock(&w->mu);
    cur = w->nsegs ? w->segs[w->nsegs - 1].size : 0;
    pthread_mutex_unlock(&w->mu);
    if (w->fd < 0 || cur - w->off < n) {
        if ((rc = next_segment(w, n)) != 0)
            return rc == ENOSPC || rc == EDQUOT ? HF_ESTORAGE : HF_EINTERNAL;
    }
    for (size_t done = 0; done < n; done += (size_t)wr) {
        wr = pwrite(w->fd, recs->data + done, n - done,
                    (off_t)(w->off + done));
        if (wr < 0 && errno == EINTR) {
            wr = 0;
            continue;
        }
        if (wr <= 0) {
            static const unsigned char z[HF_WAL_HDR];
            rc = wr < 0 ? errno : EIO;
            hf_error(MOD, "write of %zu bytes at segment %016llx offset "
                          "%zu: %s", n, (unsigned long long)w->top, w->off,
                     strerror(rc));
            if (pwrite(w->fd, z, sizeof(z), (off_t)w->off) < 0)
                w->broken = 1;
            return rc == ENOSPC || rc == EDQUOT ? HF_ESTORAGE : HF_EINTERNAL;
        }
    }
    hf_fault("wal-append");
    if (w->sync && !w->dsync && fdatasync(w->fd) != 0) {
        rc = errno;
        w->broken = 1;
        hf_error(MOD, "fdatasync of segment %016llx: %s; the log refuses "
                      "writes until restarted", (unsigned long long)w->top,
                 strerror(rc));
        return HF_EINTERNAL;
    }
    hf_fault("wal-sync");
    w->off += n;
    w->next = last + 1;
    pthread_mutex_lock(&w->mu);
    w->segs[w->nsegs - 1].last = last;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int
hf_wal_retire(hf_wal *w, uint64_t lsn)
{
    char path[PATH_MAX];
    int n = 0;

    pthread_mutex_lock(&w->mu);
    /* Never the current segment (the last): it is still being written. */
    while (w->nsegs > 1 && w->segs[0].last <= lsn) {
        struct seg sg = w->segs[0];
        memmove(w->segs, w->segs + 1, (w->nsegs - 1) * sizeof(*w->segs));
        w->nsegs--;
        if (w->npool < POOL_MAX && sg.size == w->seg_size) {
            HF_VEC_PUSH(w->pool, w->npool, w->cappool, 4, sg);
        } else {
            seg_path(path, sizeof(path), w->dir, sg.no);
            if (unlink(path) != 0)
                hf_warn(MOD, "unlink %s: %s", path, strerror(errno));
        }
        n++;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

int
hf_wal_segments(hf_wal *w)
{
    int n;

    pthread_mutex_lock(&w->mu);
    n = (int)w->nsegs;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void
hf_wal_close(hf_wal *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    pthread_mutex_destroy(&w->mu);
    free(w->segs);
    free(w->pool);
    free(w);
}

int
hf_wal_open(hf_wal **out, const struct hf_wal_opts *o)
{
    hf_wal *w = hf_xcalloc(1, sizeof(*w));
    uint64_t *nos;
    size_t n;
    int rc;

    *out = NULL;
    snprintf(w->dir, sizeof(w->dir), "%s", o->dir);
    w->seg_size = o->seg_size;
    w->sync = o->sync;
    w->dsync = o->dsync;
    w->next = o->next_lsn;
    w->fd = w->spare_fd = w->dirfd = -1;
    pthread_mutex_init(&w->mu, NULL);
    if (mkdir(w->dir, 0750) != 0 && errno != EEXIST) {
        hf_error(MOD, "mkdir %s: %s", w->dir, strerror(errno));
        hf_wal_close(w);
        return HF_EINTERNAL;
    }
    if ((w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (rc = list_segs(w->dir, &nos, &n)) != 0) {
        hf_error(MOD, "open %s: %s", w->dir, strerror(errno));
        hf_wal_close(w);
        return HF_EINTERNAL;
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat sb;
        seg_path(path, sizeof(path), w->dir, nos[i]);
        if (stat(path, &sb) == 0 && (size_t)sb.st_size == w->seg_size &&
            w->npool < POOL_MAX)
            HF_VEC_PUSH(w->pool, w->npool, w->cappool, 4,
                        ((struct seg){nos[i], 0, w->seg_size}));
        else if (unlink(path) != 0)
            hf_warn(MOD, "unlink %s: %s", path, strerror(errno));
        w->top = nos[i];
    }
    free(nos);
    if ((rc = next_segment(w, 0)) != 0) {
        hf_error(MOD, "cannot reserve a first segment in %s: %s", w->dir,
                 strerror(rc));
        hf_wal_close(w);
        return rc == ENOSPC || rc == EDQUOT ? HF_ESTORAGE : HF_EINTERNAL;
    }
    *out = w;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Replay                                                              */

/* Whether a valid record newer than lsn starts at off in segment i, or at
 * the start of any later segment: then damage before it is mid-log. */
static int
newer_follows(const char *dir, const uint64_t *nos, size_t n, size_t i,
              const unsigned char *m, size_t sz, size_t off, uint64_t lsn)
{
    struct rec r;

    if (off <= sz && rec_at(m, sz, off, &r) == REC_OK && r.lsn > lsn)
        return 1;
    for (size_t j = i + 1; j < n; j++) {
        unsigned char *mj;
        size_t szj;
        int found;
        if (seg_map(dir, nos[j], 0, &mj, &szj) != 0)
            continue;
        found = mj && rec_at(mj, szj, 0, &r) == REC_OK && r.lsn > lsn;
        if (mj)
            munmap(mj, szj);
        if (found)
            return 1;
    }
    return 0;
}

static int
refuse(const char *dir, uint64_t no, size_t off, const char *what)
{
    hf_error(MOD,
             "%s in %s/%016llx.wal at offset %zu, with valid records after "
             "it: the log is damaged in the middle and the server will not "
             "guess. To start anyway, dropping every record from there on "
             "(acknowledged writes among them), run: holdfast recover "
             "--data DATA --truncate-at %016llx:%zu",
             what, dir, (unsigned long long)no, off, (unsigned long long)no,
             off);
    return HF_EINTERNAL;
}

int
hf_wal_replay(const char *dir, uint64_t applied, int fix,
              hf_wal_apply_fn *fn, void *arg, struct hf_wal_replay_info *info)
{
    uint64_t *nos, expect = applied + 1;
    size_t n;
    int rc = 0, ended = 0;

    *info = (struct hf_wal_replay_info){.last = applied};
    if ((rc = list_segs(dir, &nos, &n)) != 0) {
        hf_error(MOD, "list %s: %s", dir, strerror(rc));
        return HF_EINTERNAL;
    }
    for (size_t i = 0; i < n && rc == 0 && !ended; i++) {
        unsigned char *m;
        size_t sz, off = 0;
        struct rec r;

        if (seg_map(dir, nos[i], fix, &m, &sz) != 0) {
            rc = HF_EINTERNAL;
            break;
        }
        while (m && rc == 0) {
            enum rec_kind k = rec_at(m, sz, off, &r);
            if (k == REC_END)
                break; /* zeros or garbage: this segment ends here */
            if (k == REC_BAD) {
                if (newer_follows(dir, nos, n, i, m, sz,
                                  off + HF_WAL_HDR + (size_t)r.len,
                                  expect - 1)) {
                    rc = refuse(dir, nos[i], off, "a record with a bad CRC");
                    break;
                }
                hf_warn(MOD, "torn tail in %s/%016llx.wal at offset %zu "
                             "(a write cut short by a crash, never "
                             "acknowledged): %s", dir,
                        (unsigned long long)nos[i], off,
                        fix ? "truncated" : "ignored");
                if (fix) {
                    memset(m + off, 0, HF_WAL_HDR);
                    if (msync(m, sz, MS_SYNC) != 0)
                        hf_warn(MOD, "msync: %s", strerror(errno));
                }
                info->torn = 1;
                ended = 1;
                break;
            }
            if (r.lsn < expect && info->records > 0)
                break; /* an old record after new ones: recycled space */
            if (r.lsn > expect) {
                rc = refuse(dir, nos[i], off, "a gap in the log sequence");
                break;
            }
            if (r.lsn == expect) {
                if ((rc = fn(arg, r.lsn, m + off + HF_WAL_HDR, r.len)) != 0)
                    break;
                info->records++;
                info->bytes += r.len;
                info->last = expect++;
                hf_fault("replay-mid"); /* applied, not committed */
            }
            off += HF_WAL_HDR + r.len;
        }
        if (m)
            munmap(m, sz);
    }
    free(nos);
    return rc;
}

int
hf_wal_truncate_at(const char *dir, uint64_t seg, uint64_t off)
{
    uint64_t *nos;
    size_t n;
    unsigned char *m;
    size_t sz;
    int rc, found = 0;

    if ((rc = list_segs(dir, &nos, &n)) != 0) {
        hf_error(MOD, "list %s: %s", dir, strerror(rc));
        return HF_EINTERNAL;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        if (nos[i] < seg)
            continue;
        seg_path(path, sizeof(path), dir, nos[i]);
        if (nos[i] > seg) {
            if (unlink(path) != 0)
                rc = errno;
            else
                hf_info(MOD, "removed %s", path);
            continue;
        }
        found = 1;
        if ((rc = seg_map(dir, seg, 1, &m, &sz)) != 0)
            break;
        if (off < sz) {
            memset(m + off, 0, sz - off);
            if (msync(m, sz, MS_SYNC) != 0)
                rc = errno;
            hf_info(MOD, "zeroed %s from offset %llu", path,
                    (unsigned long long)off);
        }
        if (m)
            munmap(m, sz);
    }
    free(nos);
    if (rc != 0 || !found) {
        hf_error(MOD, "truncate %s at %016llx:%llu: %s", dir,
                 (unsigned long long)seg, (unsigned long long)off,
                 rc ? strerror(rc) : "no such segment");
        return HF_EINTERNAL;
    }
    return 0;
}
