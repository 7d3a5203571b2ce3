/* est_tz.c - the site's time zone over the C library's time-zone code:
 * names checked against the time-zone database files, fixed offsets turned
 * into POSIX TZ values, one current zone for the process (TZ) switched
 * under a lock before each conversion. */
#include "est_tz.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZIF_MAGIC "TZif"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;
static char tz_current[EST_TZ_NAME_MAX + 1] = "";   /* the zone name TZ is set for */
static bool tz_set;

/* "+08:00", "-5", "UTC+8", "GMT+05:30" -> minutes east of UTC. */
static bool fixed_offset(const char *tz, int *offset_min)
{
    const char *p = tz;
    if (strncmp(p, "UTC", 3) == 0 || strncmp(p, "GMT", 3) == 0)
        p += 3;
    if (*p != '+' && *p != '-')
        return false;
    int sign = *p++ == '-' ? -1 : 1;
    int hours = 0, minutes = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 2) {
        hours = hours * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0)
        return false;
    if (*p == ':') {
        p++;
        if (!(p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9'))
            return false;
        minutes = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
    }
    int total = sign * (hours * 60 + minutes);
    if (*p || total < -12 * 60 || total > 14 * 60)
        return false;
    *offset_min = total;
    return true;
}

/* A database name: letters, digits and "_+-" in '/'-separated parts, none
 * empty or starting with '.', so it names a file under the database. */
static bool plausible_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= EST_TZ_NAME_MAX)
        return false;
    bool part_start = true;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (ch == '/') {
            if (part_start)
                return false;
            part_start = true;
            continue;
        }
        if (part_start && (ch == '.' || ch == '-'))
            return false;
        part_start = false;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '-' || ch == '.'))
            return false;
    }
    return !part_start;
}

/* Whether dir/name is a compiled zone (a TZif file); errno-based reason in why. */
static bool zone_file(const char *name, char *why, size_t why_len)
{
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = ZONEINFO_DIR;
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *path = malloc(len);
    if (path == NULL) {
        snprintf(why, why_len, "out of memory");
        return false;
    }
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool ok = f != NULL && fread(magic, 1, sizeof magic, f) == sizeof magic &&
              memcmp(magic, TZIF_MAGIC, sizeof magic) == 0;
    if (f == NULL)
        snprintf(why, why_len, "not in the time-zone database %s (%s)", dir,
                 errno == ENOENT ? "no such zone" : strerror(errno));
    else if (!ok)
        snprintf(why, why_len, "%s is not a time-zone file", path);
    if (f != NULL)
        fclose(f);
    free(path);
    return ok;
}

/* Names the configuration accepted before zones came from the database:
 * should a database lack one (newer Debian moves old links to
 * tzdata-legacy), it still means what it meant. */
static const struct {
    const char *name, *zone;
} legacy_names[] = {
    {"UTC", "Etc/UTC"}, {"Etc/UTC", "UTC"}, {"GMT", "Etc/GMT"},
    {"PRC", "Asia/Shanghai"}, {"Asia/Chongqing", "Asia/Shanghai"}, {"Asia/Harbin", "Asia/Shanghai"},
    {"Asia/Kuala_Lumpur", "Asia/Singapore"},
};

static const char *legacy_alias(const char *name)
{
    for (size_t i = 0; i < sizeof legacy_names / sizeof legacy_names[0]; i++)
        if (strcmp(legacy_names[i].name, name) == 0)
            return legacy_names[i].zone;
    return NULL;
}

bool est_tz_lookup(const char *zone, struct est_tz *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (why_len > 0)
        why[0] = '\0';
    int offset = 0;
    if (zone != NULL && fixed_offset(zone, &offset)) {
        int a = offset < 0 ? -offset : offset;
        char sign = offset < 0 ? '-' : '+';
        snprintf(out->name, sizeof out->name, "%c%02d:%02d", sign, a / 60, a % 60);
        /* POSIX counts west as positive: eight hours ahead is "-08:00". */
        snprintf(out->posix, sizeof out->posix, "<%c%02d%02d>%c%02d:%02d", sign, a / 60, a % 60,
                 offset < 0 ? '+' : '-', a / 60, a % 60);
        return true;
    }
    if (zone == NULL || !plausible_name(zone)) {
        snprintf(why, why_len, "not a time-zone name (like \"Asia/Shanghai\") or offset (like \"+08:00\")");
        return false;
    }
    const char *file = zone;
    if (!zone_file(zone, why, why_len)) {
        file = legacy_alias(zone);
        if (file == NULL || !zone_file(file, why, why_len))
            return false;
    }
    snprintf(out->name, sizeof out->name, "%s", zone);
    snprintf(out->posix, sizeof out->posix, ":%s", file);
    return true;
}

/* Makes zone the C library's current one; called with tz_lock held. */
static void use_zone(const char *zone)
{
    const char *name = zone != NULL ? zone : "";
    if (tz_set && strcmp(tz_current, name) == 0)
        return;
    struct est_tz tz;
    char why[8];
    if (!est_tz_lookup(name, &tz, why, sizeof why))
        snprintf(tz.posix, sizeof tz.posix, "UTC0");
    setenv("TZ", tz.posix, 1);
    tzset();
    snprintf(tz_current, sizeof tz_current, "%s", name);
    tz_set = true;
}

static time_t to_time(int64_t utc_ms)
{
    int64_t s = utc_ms / 1000;
    if (utc_ms % 1000 < 0)
        s--;
    return (time_t)s;
}

void est_tz_local(const char *zone, int64_t utc_ms, struct tm *out)
{
    time_t t = to_time(utc_ms);
    pthread_mutex_lock(&tz_lock);
    use_zone(zone);
    if (localtime_r(&t, out) == NULL) {
        memset(out, 0, sizeof *out);
        out->tm_year = 70;
        out->tm_mday = 1;
    }
    pthread_mutex_unlock(&tz_lock);
}

int est_tz_offset_min(const char *zone, int64_t utc_ms)
{
    struct tm tm;
    est_tz_local(zone, utc_ms, &tm);
    return (int)(tm.tm_gmtoff / 60);
}

/* mktime of a wall time with tm_isdst as given; true when the result
 * shows that same wall time (so it exists with that daylight-saving flag). */
static bool wall_time(struct tm want, int isdst, time_t *out)
{
    struct tm tm = want;
    tm.tm_isdst = isdst;
    *out = mktime(&tm);
    return *out != (time_t)-1 && tm.tm_hour == want.tm_hour && tm.tm_min == want.tm_min &&
           tm.tm_mday == want.tm_mday && tm.tm_isdst == isdst;
}

int64_t est_tz_utc_ms(const char *zone, int year, int month, int day, int hour, int minute)
{
    struct tm want = {0};
    want.tm_year = year - 1900;
    want.tm_mon = month - 1;
    want.tm_mday = day;
    want.tm_hour = hour;
    want.tm_min = minute;
    want.tm_isdst = -1;
    pthread_mutex_lock(&tz_lock);
    use_zone(zone);
    struct tm norm = want;
    time_t any = mktime(&norm); /* normalises day 32 and the like */
    norm.tm_hour = hour;
    norm.tm_min = minute;
    time_t standard, summer;
    bool has_standard = wall_time(norm, 0, &standard), has_summer = wall_time(norm, 1, &summer);
    pthread_mutex_unlock(&tz_lock);
    if (has_standard && has_summer) /* repeated: the first occurrence */
        return (int64_t)(standard < summer ? standard : summer) * 1000;
    if (has_standard)
        return (int64_t)standard * 1000;
    if (has_summer)
        return (int64_t)summer * 1000;
    return (int64_t)any * 1000; /* skipped: mktime moves it past the change */
}

void est_tz_format_ts(const char *zone, int64_t utc_ms, char out[EST_TZ_TS_LEN])
{
    struct tm tm;
    est_tz_local(zone, utc_ms, &tm);
    char stamp[EST_TZ_TS_LEN];
    if (strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        stamp[0] = '\0';
    long off = tm.tm_gmtoff / 60;
    long a = off < 0 ? -off : off;
    snprintf(out, EST_TZ_TS_LEN, "%.20s%c%02ld:%02ld", stamp, off < 0 ? '-' : '+', a / 60 % 100,
             a % 60);
}

void est_tz_local_day(const char *zone, int64_t utc_ms, char out[11])
{
    struct tm tm;
    est_tz_local(zone, utc_ms, &tm);
    if (strftime(out, 11, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 11, "0000-00-00");
}

int64_t est_tz_day_start_ms(const char *zone, const char *day, int days_after)
{
    int year = atoi(day), month = atoi(day + 5), mday = atoi(day + 8);
    return est_tz_utc_ms(zone, year, month, mday + days_after, 0, 0);
}
