/* est_tz.h - the site's time zone: any IANA name from the system's
 * time-zone database (tzdata, with its daylight-saving rules) or a fixed UTC
 * offset, and local days and times in it. Built on the C library's own
 * time-zone code (TZ, localtime_r, mktime): the process has one current
 * zone, switched on demand under a lock, so use one zone per process (the
 * config's) and never call localtime/mktime directly elsewhere. */
#ifndef EST_TZ_H
#define EST_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define EST_TZ_NAME_MAX 64

/* A zone name checked by est_tz_lookup. */
struct est_tz {
    char name[EST_TZ_NAME_MAX];  /* the IANA name, or a fixed offset as "+08:00" */
    char posix[EST_TZ_NAME_MAX]; /* the TZ value that selects it */
};

/* Accepts a fixed offset in the ISO sense ("+08:00", "-5", "UTC+8",
 * "GMT+05:30": UTC+8 is eight hours ahead, -12:00..+14:00) or a name found
 * in the time-zone database ($TZDIR, else /usr/share/zoneinfo: "Europe/Berlin",
 * "Asia/Shanghai", "UTC"). false with a reason in why otherwise. */
bool est_tz_lookup(const char *zone, struct est_tz *out, char *why, size_t why_len);

/* Local time in zone (a name est_tz_lookup accepts; any other means UTC)
 * at utc_ms: broken down, with tm_gmtoff and tm_isdst of that instant. */
void est_tz_local(const char *zone, int64_t utc_ms, struct tm *out);

/* The zone's offset from UTC in minutes at utc_ms (e.g. +60 or +120 in
 * Europe/Berlin, +480 in Asia/Shanghai). */
int est_tz_offset_min(const char *zone, int64_t utc_ms);

/* The UTC instant of a local wall time (month 1-12; fields out of range
 * are normalised, so day 32 is the next month's first). A time skipped by
 * a daylight-saving change counts as that far after the change; a repeated
 * time means its first occurrence. */
int64_t est_tz_utc_ms(const char *zone, int year, int month, int day, int hour, int minute);

/* "YYYY-MM-DD" of the local day at utc_ms in zone. */
void est_tz_local_day(const char *zone, int64_t utc_ms, char out[11]);

/* The UTC instant of local midnight (the day's first moment) of a day
 * "YYYY-MM-DD" in zone; days_after moves that many local days on. */
int64_t est_tz_day_start_ms(const char *zone, const char *day, int days_after);

/* RFC 3339 local time with its offset, to the second, e.g.
 * "2026-03-29T03:30:00+02:00" (est_parse_ts reads it back). */
#define EST_TZ_TS_LEN 32
void est_tz_format_ts(const char *zone, int64_t utc_ms, char out[EST_TZ_TS_LEN]);

#endif
