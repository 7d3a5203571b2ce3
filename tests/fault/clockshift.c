/* clockshift.c - an LD_PRELOAD library for the clock-jump fault test: it
 * adds a number of seconds, read from the file named by
 * ESTATE_CLOCKSHIFT_FILE (re-read at most every 50 ms), to the wall clock
 * (CLOCK_REALTIME, gettimeofday, time) of the process it is loaded in. The
 * monotonic clock stays real, as it does when an operator or NTP steps the
 * system clock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void)
{
    static clock_gettime_fn fn;
    if (fn == NULL)
        fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return fn;
}

static int64_t shift_seconds(void)
{
    static _Thread_local int64_t cached, read_at_ms;
    struct timespec mono;
    real_clock_gettime()(CLOCK_MONOTONIC, &mono);
    int64_t now_ms = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
    if (read_at_ms != 0 && now_ms - read_at_ms < 50)
        return cached;
    read_at_ms = now_ms;
    const char *path = getenv("ESTATE_CLOCKSHIFT_FILE");
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    if (f != NULL) {
        long long s = 0;
        if (fscanf(f, "%lld", &s) == 1)
            cached = s;
        fclose(f);
    }
    return cached;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime()(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += shift_seconds();
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
