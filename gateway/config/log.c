/* log.c - stderr logging with levels and the repeated-failure limiter. When
 * stderr is the systemd journal (JOURNAL_STREAM names it), lines carry a
 * syslog priority prefix "<N>" and no timestamp: the journal adds its own. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "estate.h"

static atomic_int current_level = GW_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_priorities[] = {3, 4, 6, 7};

static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool stderr_is_journal;

/* JOURNAL_STREAM is "device:inode" of the journal's socket; stderr is the
 * journal only when its own device and inode match (a child that inherited
 * the variable but writes elsewhere keeps plain lines). */
static void detect_journal(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    if (stream == NULL || stream[0] == '\0')
        return;
    unsigned long long dev = 0, ino = 0;
    if (sscanf(stream, "%llu:%llu", &dev, &ino) != 2)
        return;
    struct stat st;
    if (fstat(fileno(stderr), &st) != 0)
        return;
    stderr_is_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void gw_log_set_level(enum gw_log_level level) { atomic_store(&current_level, (int)level); }

bool gw_log_enabled(enum gw_log_level level) { return (int)level <= atomic_load(&current_level); }

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
    if (!gw_log_enabled(level))
        return;
    pthread_once(&journal_once, detect_journal);
    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    /* One fprintf per line keeps lines from different threads whole. */
    if (stderr_is_journal) {
        fprintf(stderr, "<%d>%s %s\n", level_priorities[level], level_names[level], message);
        return;
    }
    char ts[EST_TS_LEN];
    est_format_ts(est_now_ms(), ts);
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
