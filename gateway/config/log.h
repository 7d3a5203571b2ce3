/* log.h - the daemon's log: one line per event on stderr, with a level and
 * a UTC timestamp, plus a limiter so a device failing every poll is logged
 * once and then at growing intervals (1st, 2nd, 4th, 8th ... failure).
 * Thread-safe. Libraries (drivers/, rules/) never log; only gateway/ does. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

void gw_log_set_level(enum gw_log_level level);
bool gw_log_enabled(enum gw_log_level level);
void gw_log(enum gw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gw_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)

/* Repeated-failure limiter: one per device (owned by its poller thread). */
struct gw_log_limiter {
    uint64_t failures; /* consecutive failures so far */
};

/* Counts one failure; true when this one should be logged (1, 2, 4, 8, ...). */
bool gw_log_limiter_fail(struct gw_log_limiter *limiter);
/* Resets on success; returns the failure count it ended (0 if none), so the
 * caller can log "answers again after N failures" once. */
uint64_t gw_log_limiter_ok(struct gw_log_limiter *limiter);

#endif
