/*
 * log.h - leveled logging, one line per event, to stderr.
 *
 * Format: "2026-11-21T10:00:00.123Z INFO  module: message". Safe from any
 * thread: each line is formatted into a local buffer and written with one
 * write(2), so lines from different threads never interleave.
 */
#ifndef HF_CORE_LOG_H
#define HF_CORE_LOG_H

enum hf_log_level {
    HF_LOG_DEBUG = 0,
    HF_LOG_INFO  = 1,
    HF_LOG_WARN  = 2,
    HF_LOG_ERROR = 3,
    HF_LOG_OFF   = 4
};

/* Sets the minimum level written. Call before starting threads. */
void hf_log_set_level(int level);

/* Parses "debug|info|warn|error|off"; returns the level or -1. */
int hf_log_parse_level(const char *s);

void hf_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hf_debug(mod, ...) hf_log(HF_LOG_DEBUG, mod, __VA_ARGS__)
#define hf_info(mod, ...)  hf_log(HF_LOG_INFO, mod, __VA_ARGS__)
#define hf_warn(mod, ...)  hf_log(HF_LOG_WARN, mod, __VA_ARGS__)
#define hf_error(mod, ...) hf_log(HF_LOG_ERROR, mod, __VA_ARGS__)

#endif
