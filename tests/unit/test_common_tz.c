/* test_common_tz.c - est_tz against the system's time-zone database:
 * names and fixed offsets accepted or refused with a reason, offsets on both
 * sides of the daylight-saving changes of Europe/Berlin and America/New_York,
 * days of 23 and 25 hours, skipped and repeated wall times, Asia/Shanghai's
 * constant +08:00, switching zones within one process, and local RFC 3339
 * stamps with their offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "est_tz.h"
#include "estate.h"

#define HOUR_MS INT64_C(3600000)

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    assert_int_equal(est_parse_ts(rfc3339, &ms), EST_OK);
    return ms;
}

static void test_lookup_names_and_offsets(void **state)
{
    (void)state;
    struct est_tz tz;
    char why[256];
    const char *names[] = {"Europe/Berlin", "America/New_York", "Asia/Shanghai", "UTC",
                           "America/Argentina/Buenos_Aires", "Etc/GMT-8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_true(est_tz_lookup(names[i], &tz, why, sizeof why));
        assert_string_equal(tz.name, names[i]);
    }
    const struct { const char *in, *name; } fixed[] = {
        {"+08:00", "+08:00"}, {"UTC+8", "+08:00"}, {"-5", "-05:00"},
        {"GMT+05:30", "+05:30"}, {"+14:00", "+14:00"}, {"-12:00", "-12:00"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        assert_true(est_tz_lookup(fixed[i].in, &tz, why, sizeof why));
        assert_string_equal(tz.name, fixed[i].name);
    }
    assert_false(est_tz_lookup("Mars/Olympus_Mons", &tz, why, sizeof why));
    assert_non_null(strstr(why, "not in the time-zone database"));
    assert_false(est_tz_lookup("zone.tab", &tz, why, sizeof why)); /* a file, not a zone */
    assert_non_null(strstr(why, "not a time-zone file"));
    const char *bad[] = {"", "/etc/passwd", "../../etc/passwd", "Europe/../../etc/passwd",
                         "Europe//Berlin", "Europe/Berlin/", "+15:00", "+08:60", "UTC+", "Berlin Time"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(est_tz_lookup(bad[i], &tz, why, sizeof why));
    assert_false(est_tz_lookup(NULL, &tz, why, sizeof why));
}

static void test_berlin_follows_daylight_saving(void **state)
{
    (void)state;
    const char *z = "Europe/Berlin";
    /* Spring: 02:00 CET becomes 03:00 CEST at 01:00 UTC. */
    assert_int_equal(est_tz_offset_min(z, at("2026-03-29T00:59:59Z")), 60);
    assert_int_equal(est_tz_offset_min(z, at("2026-03-29T01:00:00Z")), 120);
    /* Autumn: 03:00 CEST becomes 02:00 CET at 01:00 UTC. */
    assert_int_equal(est_tz_offset_min(z, at("2026-10-25T00:59:59Z")), 120);
    assert_int_equal(est_tz_offset_min(z, at("2026-10-25T01:00:00Z")), 60);

    struct tm tm;
    est_tz_local(z, at("2026-03-29T01:30:00Z"), &tm);
    assert_int_equal(tm.tm_hour, 3);
    assert_int_equal(tm.tm_min, 30);
    assert_int_equal(tm.tm_isdst, 1);

    /* The day of the spring change has 23 hours, the autumn one 25. */
    int64_t spring = est_tz_day_start_ms(z, "2026-03-29", 0);
    assert_int_equal(spring, at("2026-03-28T23:00:00Z"));
    assert_int_equal(est_tz_day_start_ms(z, "2026-03-29", 1) - spring, 23 * HOUR_MS);
    int64_t autumn = est_tz_day_start_ms(z, "2026-10-25", 0);
    assert_int_equal(autumn, at("2026-10-24T22:00:00Z"));
    assert_int_equal(est_tz_day_start_ms(z, "2026-10-25", 1) - autumn, 25 * HOUR_MS);
    /* Across a month end. */
    assert_int_equal(est_tz_day_start_ms(z, "2026-10-31", 1), at("2026-10-31T23:00:00Z"));

    char day[11];
    est_tz_local_day(z, at("2026-03-28T22:59:59Z"), day);
    assert_string_equal(day, "2026-03-28");
    est_tz_local_day(z, at("2026-03-28T23:00:00Z"), day);
    assert_string_equal(day, "2026-03-29");
    est_tz_local_day(z, at("2026-10-25T22:59:59Z"), day);
    assert_string_equal(day, "2026-10-25");
    est_tz_local_day(z, at("2026-10-25T23:00:00Z"), day);
    assert_string_equal(day, "2026-10-26");

    /* 02:30 on the spring day does not exist: counted after the change;
     * 02:30 on the autumn day happens twice: the first (CEST) one. */
    assert_int_equal(est_tz_utc_ms(z, 2026, 3, 29, 2, 30), at("2026-03-29T01:30:00Z"));
    assert_int_equal(est_tz_utc_ms(z, 2026, 10, 25, 2, 30), at("2026-10-25T00:30:00Z"));
    assert_int_equal(est_tz_utc_ms(z, 2026, 7, 1, 12, 0), at("2026-07-01T10:00:00Z"));
    assert_int_equal(est_tz_utc_ms(z, 2026, 1, 1, 12, 0), at("2026-01-01T11:00:00Z"));
}

static void test_new_york_and_shanghai(void **state)
{
    (void)state;
    const char *ny = "America/New_York";
    assert_int_equal(est_tz_offset_min(ny, at("2026-03-08T06:59:59Z")), -300);
    assert_int_equal(est_tz_offset_min(ny, at("2026-03-08T07:00:00Z")), -240);
    assert_int_equal(est_tz_offset_min(ny, at("2026-11-01T05:59:59Z")), -240);
    assert_int_equal(est_tz_offset_min(ny, at("2026-11-01T06:00:00Z")), -300);
    char day[11];
    est_tz_local_day(ny, at("2026-03-08T04:59:59Z"), day); /* 23:59:59 EST */
    assert_string_equal(day, "2026-03-07");
    assert_int_equal(est_tz_day_start_ms(ny, "2026-03-08", 0), at("2026-03-08T05:00:00Z"));
    assert_int_equal(est_tz_day_start_ms(ny, "2026-03-09", 0), at("2026-03-09T04:00:00Z"));

    const char *sh = "Asia/Shanghai";
    const char *instants[] = {"2026-01-15T12:00:00Z", "2026-03-29T01:00:00Z", "2026-07-01T00:00:00Z",
                              "2026-10-25T01:00:00Z"};
    for (size_t i = 0; i < sizeof instants / sizeof instants[0]; i++)
        assert_int_equal(est_tz_offset_min(sh, at(instants[i])), 480);
    assert_int_equal(est_tz_day_start_ms(sh, "2026-03-29", 0), at("2026-03-28T16:00:00Z"));
    est_tz_local_day(sh, at("2026-03-28T16:00:00Z"), day);
    assert_string_equal(day, "2026-03-29");
}

static void test_fixed_offsets_and_switching(void **state)
{
    (void)state;
    int64_t t = at("2026-07-01T00:00:00Z");
    assert_int_equal(est_tz_offset_min("+08:00", t), 480);
    assert_int_equal(est_tz_offset_min("UTC+8", t), 480);
    assert_int_equal(est_tz_offset_min("GMT+05:30", t), 330);
    assert_int_equal(est_tz_offset_min("-5", t), -300);
    assert_int_equal(est_tz_day_start_ms("+08:00", "2026-07-01", 0), at("2026-06-30T16:00:00Z"));
    /* Alternating zones in one process: each call uses its own. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(est_tz_offset_min("Europe/Berlin", t), 120);
        assert_int_equal(est_tz_offset_min("Asia/Shanghai", t), 480);
        assert_int_equal(est_tz_offset_min("America/New_York", t), -240);
        assert_int_equal(est_tz_offset_min("UTC", t), 0);
    }
    /* A name that is no zone: UTC, never the machine's own zone. */
    assert_int_equal(est_tz_offset_min("Mars/Olympus_Mons", t), 0);
}

static void test_format_local_with_offset(void **state)
{
    (void)state;
    char ts[EST_TZ_TS_LEN];
    est_tz_format_ts("Europe/Berlin", at("2026-03-29T00:30:00Z"), ts);
    assert_string_equal(ts, "2026-03-29T01:30:00+01:00");
    est_tz_format_ts("Europe/Berlin", at("2026-03-29T01:30:00Z"), ts);
    assert_string_equal(ts, "2026-03-29T03:30:00+02:00");
    est_tz_format_ts("America/New_York", at("2026-07-01T12:00:00.999Z"), ts);
    assert_string_equal(ts, "2026-07-01T08:00:00-04:00");
    est_tz_format_ts("Asia/Kolkata", at("2026-07-01T12:00:00Z"), ts);
    assert_string_equal(ts, "2026-07-01T17:30:00+05:30");
    int64_t back = 0;
    assert_int_equal(est_parse_ts(ts, &back), EST_OK);
    assert_int_equal(back, at("2026-07-01T12:00:00Z"));
}

/* A database without the old names (as with tzdata-legacy not installed):
 * the names the config always accepted still work. */
static void test_old_names_without_their_links(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_common_tz.XXXXXX", path[128], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/Asia", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp /usr/share/zoneinfo/Asia/Shanghai '%s/'", path, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(setenv("TZDIR", dir, 1), 0);
    struct est_tz tz;
    char why[256];
    assert_true(est_tz_lookup("PRC", &tz, why, sizeof why));
    assert_string_equal(tz.name, "PRC");
    assert_string_equal(tz.posix, ":Asia/Shanghai");
    assert_true(est_tz_lookup("Asia/Harbin", &tz, why, sizeof why));
    assert_false(est_tz_lookup("Europe/Berlin", &tz, why, sizeof why));
    assert_non_null(strstr(why, dir));
    unsetenv("TZDIR");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_true(est_tz_lookup("Europe/Berlin", &tz, why, sizeof why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_names_and_offsets),
        cmocka_unit_test(test_berlin_follows_daylight_saving),
        cmocka_unit_test(test_new_york_and_shanghai),
        cmocka_unit_test(test_fixed_offsets_and_switching),
        cmocka_unit_test(test_format_local_with_offset),
        cmocka_unit_test(test_old_names_without_their_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
