/* log.c - see log.h. The level is read racily on purpose: it is set once
 * before threads start, and an atomic keeps TSan and the compiler honest. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static atomic_int minlevel = HF_LOG_INFO;
static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void
hf_log_set_level(int level)
{
    atomic_store(&minlevel, level);
}

int
hf_log_parse_level(const char *s)
{
    static const char *words[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    return -1;
}

void
hf_log(int level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    int r;

    if (level < atomic_load_explicit(&minlevel, memory_order_relaxed) ||
        level < HF_LOG_DEBUG || level > HF_LOG_ERROR)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ",
                 ts.tv_nsec / 1000000, names[level], module);
    n += (r > 0) ? (size_t)r : 0;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n += (r > 0) ? (size_t)r : 0;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}
