/*
 * test_crash.c - the write-ahead log under crashes (DESIGN §4.5): the real
 * server booking device slots, killed at each named fault point
 * (HOLDFAST_FAULT, storage/wal.h) or by SIGKILL, restarted, and every
 * device read back: 0 acknowledged bookings lost, 0 slots acknowledged
 * to two users. Also a torn and a bit-flipped log tail (recovered), and
 * damage in the middle of the log (refused, then `holdfast recover
 * --truncate-at`). Small scale; scripts/crash.sh runs many cycles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/wsh.h"

#define NDEV 16
#define NSLOT 512
#define NUSER 4
#define INFLIGHT 16
#define FAULT_EXIT 86

/* Every booking acknowledged: acked[d][s] = user + 1, 0 = none. */
static int acked[NDEV][NSLOT];
static int nacked, doubles;

static const char *const flags_fast[] = {
    "--wal-segment-mb", "1", "--checkpoint-mb", "1", "--checkpoint-ms",
    "30", NULL};
static const char *const flags_nockpt[] = {
    "--wal-segment-mb", "1", "--checkpoint-ms", "3600000", NULL};

static void
reset_acks(void)
{
    memset(acked, 0, sizeof(acked));
    nacked = doubles = 0;
}

/* Books random slots until the server goes away or `max` replies came.
 * Returns the number of replies read. */
static int
book(struct srv *s, int max, unsigned seed)
{
    struct cli *c = cli_open_ex(s, 0, NULL, NULL, NULL);
    int dev[INFLIGHT + 1], slot[INFLIGHT + 1], user[INFLIGHT + 1];
    int replies = 0, id = 0;
    json_t *hello;

    /* The server may already be gone (a kill early in a cycle). */
    if (c == NULL)
        return 0;
    if ((hello = cli_next(c, WAIT)) == NULL) {
        cli_close(c);
        return 0;
    }
    json_decref(hello);
    srand(seed);
    while (!c->closed && replies < max) {
        char buf[256];
        json_t *r;

        for (int i = 1; i <= INFLIGHT; i++) {
            dev[i] = rand() % NDEV;
            slot[i] = rand() % NSLOT;
            user[i] = rand() % NUSER;
            snprintf(buf, sizeof(buf),
                     "{\"op\":\"call\",\"id\":%d,\"to\":\"device/d%d\","
                     "\"method\":\"reserve\",\"args\":{\"slot\":\"s%d\","
                     "\"user\":\"u%d\"}}",
                     i, dev[i], slot[i], user[i]);
            /* Not cli_send: the server may die under us. */
            if (hf_ws_send(c->ws, 1, buf, strlen(buf)) != 0) {
                c->closed = 1;
                break;
            }
        }
        (void)id;
        for (int got = 0; !c->closed && got < INFLIGHT &&
                          (r = cli_next(c, WAIT)); ) {
            json_t *jid = json_object_get(r, "id");
            int i = (int)json_integer_value(jid);
            if (jid && i >= 1 && i <= INFLIGHT) {
                got++;
                replies++;
                if (json_is_true(json_object_get(r, "ok"))) {
                    int *a = &acked[dev[i]][slot[i]];
                    if (*a && *a != user[i] + 1)
                        doubles++;
                    if (!*a)
                        nacked++;
                    *a = user[i] + 1;
                }
            }
            json_decref(r);
        }
        if (c->closed)
            break;
    }
    cli_close(c);
    return replies;
}

/* Reads every device back: each acknowledged slot is held by its user. */
static void
verify(struct srv *s)
{
    struct cli *c = cli_open(s, 0);
    int found = 0;

    for (int d = 0; d < NDEV; d++) {
        char buf[160];
        json_t *r, *res, *list;
        size_t i;
        json_t *e;

        snprintf(buf, sizeof(buf),
                 "{\"op\":\"call\",\"id\":%d,\"to\":\"device/d%d\","
                 "\"method\":\"get\"}", d + 1, d);
        r = cli_call(c, d + 1, buf);
        res = result_of(r);
        list = json_object_get(res, "reservations");
        int held[NSLOT] = {0};
        json_array_foreach(list, i, e) {
            int sl = atoi(sget(e, "slot") + 1), u = atoi(sget(e, "user") + 1);
            assert_true(sl >= 0 && sl < NSLOT);
            held[sl] = u + 1;
        }
        for (int sl = 0; sl < NSLOT; sl++) {
            if (acked[d][sl] == 0)
                continue;
            if (held[sl] != acked[d][sl])
                fail_msg("device d%d slot s%d: acknowledged to u%d, held by "
                         "%d after the crash", d, sl, acked[d][sl] - 1,
                         held[sl] - 1);
            found++;
        }
        json_decref(r);
    }
    cli_close(c);
    assert_int_equal(doubles, 0);
    assert_int_equal(found, nacked);
}

/* Reaps a server that exited by itself (a fault point); its status. */
static int
reap(struct srv *s)
{
    int st = 0;

    for (int i = 0; i < 3000; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    fail_msg("the server did not exit at its fault point");
    return -1;
}

static void
with_fault(const char *point, const char *skip)
{
    if (point) {
        setenv("HOLDFAST_FAULT", point, 1);
        setenv("HOLDFAST_FAULT_SKIP", skip, 1);
    } else {
        unsetenv("HOLDFAST_FAULT");
        unsetenv("HOLDFAST_FAULT_SKIP");
    }
}

/* A server on a fresh directory dies at point under booking load; a
 * restart keeps every acknowledged booking. */
static void
crash_at(const char *point, const char *skip)
{
    struct srv s = {0};
    char dir[256];

    reset_acks();
    with_fault(point, skip);
    srv_start(&s, flags_fast);
    with_fault(NULL, NULL);
    snprintf(dir, sizeof(dir), "%s", s.dir);
    book(&s, 1 << 30, 1);
    assert_int_equal(reap(&s), FAULT_EXIT);
    print_message("%s: %d acknowledged bookings before the crash\n", point,
                  nacked);
    srv_start_in(&s, dir, flags_fast);
    verify(&s);
    srv_free(&s);
}

static void
test_fault_after_append_before_sync(void **state)
{
    (void)state;
    crash_at("wal-append", "40");
}

static void
test_fault_after_sync_before_release(void **state)
{
    (void)state;
    crash_at("wal-sync", "40");
}

static void
test_fault_mid_checkpoint(void **state)
{
    (void)state;
    crash_at("ckpt-mid", "2");
}

static void
test_fault_after_checkpoint_before_recycle(void **state)
{
    (void)state;
    crash_at("ckpt-recycle", "2");
}

/* A fresh server (no checkpoints) books `replies` times and is SIGKILLed;
 * its directory into dir (256 bytes). */
static void
booked_then_killed(struct srv *s, char *dir, int replies, unsigned seed)
{
    reset_acks();
    srv_start(s, flags_nockpt);
    snprintf(dir, 256, "%s", s->dir);
    book(s, replies, seed);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* SIGKILL under load, then a crash during the replay, then a restart. */
static void
test_kill_then_crash_during_replay(void **state)
{
    struct srv s = {0};
    char dir[256], log[300];
    (void)state;

    booked_then_killed(&s, dir, 600, 2);
    snprintf(log, sizeof(log), "%s.replay", dir);
    with_fault("replay-mid", "0");
    assert_int_equal(srv_start_refused(dir, log, flags_nockpt), FAULT_EXIT);
    with_fault(NULL, NULL);
    srv_start_in(&s, dir, flags_nockpt);
    verify(&s);
    srv_free(&s);
    unlink(log);
}

/* ---- the log's files, as the test sees them (storage/wal.c) ---- */

#define HDR 24
#define MAGIC 0x31574648u

/* The newest segment holding records, its path, and the offsets of its
 * records (at most max). */
static int
last_segment(const char *dir, char *path, size_t n, long *offs, int max)
{
    char wdir[300], best[300] = "";
    struct dirent *e;
    DIR *d;
    int nrec = 0;

    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    assert_non_null(d = opendir(wdir));
    while ((e = readdir(d)) != NULL) {
        char p[600];
        FILE *f;
        uint32_t magic = 0;
        if (strlen(e->d_name) != 20)
            continue;
        snprintf(p, sizeof(p), "%s/%s", wdir, e->d_name);
        f = fopen(p, "rb");
        if (f && fread(&magic, 4, 1, f) == 1 && magic == MAGIC &&
            strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
        if (f)
            fclose(f);
    }
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(path, n, "%s/%s", wdir, best);
    FILE *f = fopen(path, "rb");
    long off = 0;
    uint64_t prev = 0;
    for (;;) {
        unsigned char h[HDR];
        uint32_t magic, len;
        uint64_t lsn;
        if (fseek(f, off, SEEK_SET) != 0 || fread(h, HDR, 1, f) != 1)
            break;
        memcpy(&magic, h, 4);
        memcpy(&lsn, h + 8, 8);
        memcpy(&len, h + 16, 4);
        if (magic != MAGIC || (prev && lsn != prev + 1))
            break;
        prev = lsn;
        if (nrec < max)
            offs[nrec++] = off;
        off += HDR + len;
    }
    fclose(f);
    offs[nrec < max ? nrec : max - 1] = off; /* the end, after the last */
    return nrec;
}

static void
flip_bit(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Books, stops with SIGKILL; then damage(); then a start must succeed,
 * say "torn tail", and keep every acknowledged booking. */
static void
tail_case(int flip)
{
    struct srv s = {0};
    char dir[256], path[512];
    long offs[4096];
    int n;

    booked_then_killed(&s, dir, 400, 3);
    n = last_segment(dir, path, sizeof(path), offs, 4096);
    assert_true(n >= 2);
    {
        /* A write that never finished: a copy of the last record placed
         * after it with the next LSN, cut short or with a bit flipped. */
        long last = offs[n - 1], end = offs[n];
        size_t len = (size_t)(end - last);
        unsigned char *rec = malloc(len);
        uint64_t lsn;
        int fd = open(path, O_RDWR);
        assert_int_equal(pread(fd, rec, len, last), (ssize_t)len);
        memcpy(&lsn, rec + 8, 8);
        lsn++;
        memcpy(rec + 8, &lsn, 8);
        if (flip)
            rec[len - 1] ^= 1; /* whole, but its CRC no longer matches */
        assert_int_equal(pwrite(fd, rec, flip ? len : len / 2, end),
                         (ssize_t)(flip ? len : len / 2));
        close(fd);
        free(rec);
    }
    srv_start_in(&s, dir, flags_nockpt);
    verify(&s);
    srv_stop(&s);
    {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "grep -q 'torn tail' %s", s.log);
        assert_int_equal(system(cmd), 0);
    }
    srv_start_in(&s, dir, flags_nockpt); /* and again: it stays fixed */
    verify(&s);
    srv_free(&s);
}

static void
test_torn_tail_is_truncated(void **state)
{
    (void)state;
    tail_case(0);
}

static void
test_bit_flipped_tail_is_truncated(void **state)
{
    (void)state;
    tail_case(1);
}

/* A bad record with valid ones after it: the server refuses to start and
 * names the place; recover --truncate-at drops the log from there. */
static void
test_mid_log_damage_is_refused_then_recovered(void **state)
{
    struct srv s = {0};
    char dir[256], path[512], log[300], cmd[1200], at[64];
    long offs[4096];
    const char *seg;
    int n;
    (void)state;

    booked_then_killed(&s, dir, 400, 4);
    n = last_segment(dir, path, sizeof(path), offs, 4096);
    assert_true(n >= 3);
    flip_bit(path, offs[1] + HDR + 2);
    snprintf(log, sizeof(log), "%s.refused", dir);
    assert_true(srv_start_refused(dir, log, flags_nockpt) > 0);
    seg = strrchr(path, '/') + 1;
    snprintf(at, sizeof(at), "%.16s:%ld", seg, offs[1]);
    snprintf(cmd, sizeof(cmd),
             "grep -q 'damaged in the middle' %s && grep -q -- "
             "'--truncate-at %s' %s", log, at, log);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s recover --data %s --truncate-at %s "
             ">>%s 2>&1", HF_HOLDFAST_BIN, dir, at, log);
    assert_int_equal(system(cmd), 0);
    srv_start_in(&s, dir, flags_nockpt);
    /* What was dropped is gone by the operator's choice: check only that
     * the server serves every device again. */
    reset_acks();
    verify(&s);
    srv_free(&s);
    unlink(log);
}

/* `holdfast inspect` offline on a crashed directory: it replays the log,
 * then lists the devices and shows one device's state and events. */
static void
test_inspect_after_a_crash(void **state)
{
    struct srv s = {0};
    char dir[256], cmd[900], out[300];
    json_t *j, *k;
    int d = 0;
    (void)state;

    booked_then_killed(&s, dir, 400, 5);
    snprintf(out, sizeof(out), "%s.json", dir);
    snprintf(cmd, sizeof(cmd), "%s inspect %s >%s 2>/dev/null",
             HF_HOLDFAST_BIN, dir, out);
    assert_int_equal(system(cmd), 0);
    assert_non_null(j = json_load_file(out, JSON_ALLOW_NUL, NULL));
    assert_true(json_is_false(json_object_get(j, "live")));
    k = json_object_get(json_object_get(j, "actors_by_kind"), "device");
    assert_true(json_integer_value(k) > 0);
    assert_true(json_integer_value(json_object_get(
                    json_object_get(j, "wal"), "checkpoint_lsn")) > 0);
    json_decref(j);
    while (d < NDEV - 1 && acked[d][0] == 0 && acked[d][1] == 0)
        d++;
    snprintf(cmd, sizeof(cmd), "%s inspect %s device/d%d >%s 2>/dev/null",
             HF_HOLDFAST_BIN, dir, d, out);
    assert_int_equal(system(cmd), 0);
    /* Values are shown as JSON strings; binary ones (the device's be64
     * reservation counter) hold \u0000, valid JSON that jansson refuses
     * unless told. */
    assert_non_null(j = json_load_file(out, JSON_ALLOW_NUL, NULL));
    assert_true(json_object_size(json_object_get(j, "state")) > 0);
    assert_true(json_array_size(json_object_get(j, "recent_events")) > 0);
    json_decref(j);
    unlink(out);
    srv_start_in(&s, dir, flags_nockpt);
    verify(&s);
    srv_free(&s);
}

/*
 * Cycles on one data directory, every acknowledged booking kept across
 * them: each cycle starts the server, books, and crashes it at a fault
 * point or with SIGKILL at a random moment; every third restart first
 * crashes during the replay (when the log holds anything to replay). HF_CRASH_CYCLES sets the count (3 here;
 * scripts/crash.sh runs 50).
 */
static void
test_crash_cycles(void **state)
{
    static const char *const points[] = {"wal-append", "wal-sync",
                                         "ckpt-mid", "ckpt-recycle", NULL,
                                         NULL};
    static const char *const flags[] = {
        "--wal-segment-mb", "1", "--checkpoint-mb", "1", "--checkpoint-ms",
        "200", NULL};
    const char *env = getenv("HF_CRASH_CYCLES");
    int cycles = env ? atoi(env) : 3, replay_crashes = 0, by_point[6] = {0};
    struct srv s = {0};
    char dir[256], log[300];
    (void)state;

    reset_acks();
    srand(7);
    srv_start(&s, flags);
    snprintf(dir, sizeof(dir), "%s", s.dir);
    snprintf(log, sizeof(log), "%s.cycle", dir);
    srv_stop(&s);
    for (int cy = 0; cy < cycles; cy++) {
        int k = cy % 6;
        char skip[16];
        pid_t killer = 0;

        snprintf(skip, sizeof(skip), "%d", k < 2 ? 5 + rand() % 60
                                                 : rand() % 3);
        with_fault(points[k], skip);
        srv_start_in(&s, dir, flags);
        with_fault(NULL, NULL);
        if (points[k] == NULL && (killer = fork()) == 0) {
            usleep((useconds_t)(50000 + rand() % 1500000));
            kill(s.pid, SIGKILL);
            _exit(0);
        }
        book(&s, 3000, (unsigned)cy + 100);
        if (killer > 0)
            waitpid(killer, NULL, 0);
        else if (waitpid(s.pid, NULL, WNOHANG) == 0)
            kill(s.pid, SIGKILL); /* the point was not reached: kill */
        waitpid(s.pid, NULL, 0);
        s.pid = 0;
        by_point[k]++;
        if (cy % 3 == 0) { /* crash the recovery too (when it has work) */
            with_fault("replay-mid", "0");
            replay_crashes += srv_start_refused(dir, log, flags) ==
                              FAULT_EXIT;
            with_fault(NULL, NULL);
        }
        srv_start_in(&s, dir, flags);
        verify(&s);
        srv_stop(&s);
    }
    print_message("%d cycles: %d acknowledged bookings kept, 0 lost, 0 "
                  "double; %d crashes during a replay\n", cycles, nacked,
                  replay_crashes);
    srv_start_in(&s, dir, flags);
    srv_free(&s);
    unlink(log);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_after_append_before_sync),
        cmocka_unit_test(test_fault_after_sync_before_release),
        cmocka_unit_test(test_fault_mid_checkpoint),
        cmocka_unit_test(test_fault_after_checkpoint_before_recycle),
        cmocka_unit_test(test_kill_then_crash_during_replay),
        cmocka_unit_test(test_torn_tail_is_truncated),
        cmocka_unit_test(test_bit_flipped_tail_is_truncated),
        cmocka_unit_test(test_mid_log_damage_is_refused_then_recovered),
        cmocka_unit_test(test_inspect_after_a_crash),
        cmocka_unit_test(test_crash_cycles),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
