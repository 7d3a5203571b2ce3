/* log.c - stderr logging with levels and the repeated-failure limiter. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "estate.h"

static atomic_int current_level = GW_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void gw_log_set_level(enum gw_log_level level) { atomic_store(&current_level, (int)level); }

bool gw_log_enabled(enum gw_log_level level) { return (int)level <= atomic_load(&current_level); }

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
    if (!gw_log_enabled(level))
        return;
    char ts[EST_TS_LEN];
    est_format_ts(est_now_ms(), ts);
    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    /* One fprintf per line keeps lines from different threads whole. */
    fprintf(stderr, "%s %s %s\n", ts, level_names[level], message);
}

bool gw_log_limiter_fail(struct gw_log_limiter *limiter)
{
    limiter->failures++;
    return (limiter->failures & (limiter->failures - 1)) == 0;
}

uint64_t gw_log_limiter_ok(struct gw_log_limiter *limiter)
{
    uint64_t ended = limiter->failures;
    limiter->failures = 0;
    return ended;
}
