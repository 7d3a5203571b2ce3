/* estate.c - error strings and clock helpers shared by every part. */
#include "estate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const error_text[EST_ERR__COUNT] = {
    [EST_OK] = "success",
    [EST_ERR_NOMEM] = "out of memory",
    [EST_ERR_INVALID] = "invalid input",
    [EST_ERR_RANGE] = "value out of range",
    [EST_ERR_NOTFOUND] = "not found",
    [EST_ERR_IO] = "input/output error",
    [EST_ERR_TIMEOUT] = "timed out",
    [EST_ERR_PROTOCOL] = "protocol error",
    [EST_ERR_EXCEPTION] = "Modbus exception",
    [EST_ERR_STATE] = "not allowed in the current state",
    [EST_ERR_PERM] = "permission denied",
    [EST_ERR_DB] = "database error",
    [EST_ERR_FULL] = "full",
};

const char *est_strerror(est_err err)
{
    if ((int)err < 0 || err >= EST_ERR__COUNT || error_text[err] == NULL)
        return "unknown error";
    return error_text[err];
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t est_now_ms(void) { return clock_ms(CLOCK_REALTIME); }

int64_t est_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* "YYYY-MM-DDTHH:MM:SS" of the last second formatted on this thread:
 * readings come many to a second, and gmtime_r plus snprintf was a third of
 * a reading payload's cost. */
#define TS_SECONDS_LEN 19
static _Thread_local int64_t ts_cached_second = INT64_MIN;
static _Thread_local char ts_cached_text[EST_TS_LEN];

void est_format_ts(int64_t ms, char out[EST_TS_LEN])
{
    time_t seconds = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    unsigned millis = (unsigned)(ms - (int64_t)seconds * 1000);
    if ((int64_t)seconds != ts_cached_second) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        gmtime_r(&seconds, &tm);
        /* Years are clamped to four digits so the text always fits. */
        unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u;
        snprintf(ts_cached_text, sizeof ts_cached_text, "%04u-%02u-%02uT%02u:%02u:%02u", year,
                 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
                 (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
                 (unsigned)tm.tm_sec % 100u);
        ts_cached_second = (int64_t)seconds;
    }
    memcpy(out, ts_cached_text, TS_SECONDS_LEN);
    out[TS_SECONDS_LEN] = '.';
    out[TS_SECONDS_LEN + 1] = (char)('0' + millis / 100);
    out[TS_SECONDS_LEN + 2] = (char)('0' + millis / 10 % 10);
    out[TS_SECONDS_LEN + 3] = (char)('0' + millis % 10);
    out[TS_SECONDS_LEN + 4] = 'Z';
    out[TS_SECONDS_LEN + 5] = '\0';
}

est_err est_parse_ts(const char *text, int64_t *ms)
{
    int year, month, day, hour, minute, second, used = 0;
    if (text == NULL ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
               &used) != 6)
        return EST_ERR_INVALID;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return EST_ERR_INVALID;
    const char *rest = text + used;
    int millis = 0;
    if (*rest == '.') {
        rest++;
        int digits = 0;
        while (*rest >= '0' && *rest <= '9') {
            if (digits < 3)
                millis = millis * 10 + (*rest - '0');
            digits++;
            rest++;
        }
        if (digits == 0)
            return EST_ERR_INVALID;
        for (; digits < 3; digits++)
            millis *= 10;
    }
    int offset_min = 0;
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        int oh, om;
        if (sscanf(rest + 1, "%2d:%2d", &oh, &om) != 2)
            return EST_ERR_INVALID;
        offset_min = (oh * 60 + om) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return EST_ERR_INVALID;
    }
    if (*rest != '\0')
        return EST_ERR_INVALID;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day,
                    .tm_hour = hour, .tm_min = minute, .tm_sec = second};
    time_t seconds = timegm(&tm);
    *ms = ((int64_t)seconds - (int64_t)offset_min * 60) * 1000 + millis;
    return EST_OK;
}

void est_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char *est_read_first_line(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    int read_errno = errno;
    bool failed = ferror(f) != 0;
    fclose(f);
    if (n < 0) {
        free(line);
        if (failed) {
            errno = read_errno;
            return NULL;
        }
        return strdup("");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}
