/*
 * connsview.c - what a running server says of itself, for holdfast-bench
 * connections (conns.c): its /metrics (the holdfast_connections gauge,
 * resident memory, open descriptors, CPU time) and, given --pid, the same
 * from /proc, which then replaces them (unreadable: -1).
 *
 * Threads: the main thread only; nothing here keeps state.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/connsview.h"
#include "bench/ws.h"
#include "core/buf.h"
#include "core/env.h"

static int
metric(const char *text, const char *name, double *out)
{
    const char *v = wb_metric(text, name);

    if (v == NULL)
        return 0;
    *out = strtod(v, NULL);
    return 1;
}

/* VmRSS of /proc/pid/status, in bytes; -1 if unreadable. */
static int64_t
pid_rss(long long pid)
{
    char path[64], line[256];
    long long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%lld/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* utime + stime of /proc/pid/stat, in seconds; -1 if unreadable. */
static double
pid_cpu(long long pid)
{
    char path[64], buf[1024];
    unsigned long long ut, st;
    const char *p;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After "pid (comm) ": state is field 3, utime 14, stime 15. */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int64_t
pid_fds(long long pid)
{
    char path[64];
    int64_t n = 0;
    DIR *d;
    struct dirent *de;

    snprintf(path, sizeof(path), "/proc/%lld/fd", pid);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

void
wb_conns_look(const struct target *t, long long pid, struct sview *v)
{
    hf_buf body = {0};
    int status = 0;
    double x;

    memset(v, 0, sizeof(*v));
    v->conns = v->rss = v->fds = -1;
    v->cpu = -1;
    if (hf_http_request_tls(t->host, t->port, t->tls, "GET", "/metrics", NULL,
                            NULL, 0, 10000, &status, &body) == 0 &&
        status == 200 && body.data != NULL) {
        v->ok = 1;
        if (metric(body.data, "holdfast_connections", &x))
            v->conns = (int64_t)x;
        if (metric(body.data, "process_resident_memory_bytes", &x))
            v->rss = (int64_t)x;
        if (metric(body.data, "process_open_fds", &x))
            v->fds = (int64_t)x;
        if (metric(body.data, "process_cpu_seconds_total", &x))
            v->cpu = x;
    }
    hf_buf_free(&body);
    if (pid > 0) {
        v->rss = pid_rss(pid);
        v->cpu = pid_cpu(pid);
        v->fds = pid_fds(pid);
    }
    v->ns = hf_mono_ns();
}
