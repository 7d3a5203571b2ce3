/* sim_log.c - one-line event log on stderr (see sim_log.h). */
#include "sim_log.h"

#include <stdarg.h>
#include <stdio.h>

#include "estate.h"

void sim_log(const char *fmt, ...)
{
    char ts[EST_TS_LEN], msg[1024];
    est_format_ts(est_now_ms(), ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one fprintf per line so lines from different threads do not mix */
    fprintf(stderr, "%s estate-sim: %s\n", ts, msg);
}
