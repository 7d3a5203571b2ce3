/* test_common_time.c - est_format_ts against a reference (gmtime_r and
 * snprintf for every call, as it was before its per-second cache) over
 * random instants, runs within one second, second and year boundaries,
 * negative times and two threads; and est_parse_ts reading its output back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "estate.h"

static void reference_ts(int64_t ms, char out[EST_TS_LEN])
{
    time_t seconds = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int millis = (int)(ms - (int64_t)seconds * 1000);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    gmtime_r(&seconds, &tm);
    snprintf(out, EST_TS_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)millis % 1000u);
}

static void assert_formats_as_reference(int64_t ms)
{
    char got[EST_TS_LEN], want[EST_TS_LEN];
    memset(got, 'x', sizeof got);
    est_format_ts(ms, got);
    reference_ts(ms, want);
    assert_string_equal(got, want);
}

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_random_instants_and_runs(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        /* 1970 .. 2200, then a run of nearby instants (mostly the same second). */
        int64_t ms = (int64_t)(next_u64() % 7258118400000ull);
        assert_formats_as_reference(ms);
        for (int k = 0; k < 5; k++)
            assert_formats_as_reference(ms + (int64_t)(next_u64() % 1500));
    }
}

static void test_boundaries(void **state)
{
    (void)state;
    static const int64_t edges[] = {
        0, 999, 1000, -1, -999, -1000, -1001,
        1798761599999, 1798761600000,   /* 2026-12-31T23:59:59.999Z / 2027-01-01 */
        951782399999, 951782400000,     /* 2000-02-28T23:59:59.999Z / 02-29 */
        253402300799999,                /* 9999-12-31T23:59:59.999Z */
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        assert_formats_as_reference(edges[i]);
        assert_formats_as_reference(edges[i] + 1);
        assert_formats_as_reference(edges[i] - 1);
    }
    char text[EST_TS_LEN];
    est_format_ts(1798761599999, text);
    assert_string_equal(text, "2026-12-31T23:59:59.999Z");
    est_format_ts(1798761600000, text);
    assert_string_equal(text, "2027-01-01T00:00:00.000Z");
    est_format_ts(-1, text);
    assert_string_equal(text, "1969-12-31T23:59:59.999Z");
}

static void test_parse_reads_it_back(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        int64_t ms = (int64_t)(next_u64() % 4102444800000ull), back = -1;
        char text[EST_TS_LEN];
        est_format_ts(ms, text);
        assert_int_equal(est_parse_ts(text, &back), EST_OK);
        assert_int_equal(back, ms);
    }
}

/* Each thread has its own cache: two threads formatting different seconds
 * at the same time never see each other's text. */
static void *format_many(void *arg)
{
    int64_t base = *(const int64_t *)arg;
    for (int i = 0; i < 50000; i++) {
        int64_t ms = base + (int64_t)(i % 3) * 1000 + i % 1000;
        char got[EST_TS_LEN], want[EST_TS_LEN];
        est_format_ts(ms, got);
        reference_ts(ms, want);
        if (strcmp(got, want) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_threads_keep_their_own_cache(void **state)
{
    (void)state;
    int64_t bases[2] = {1700000000000, 1800000000000};
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, format_many, &bases[t]), 0);
    for (int t = 0; t < 2; t++) {
        void *result = (void *)1;
        assert_int_equal(pthread_join(threads[t], &result), 0);
        assert_null(result);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_instants_and_runs),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_parse_reads_it_back),
        cmocka_unit_test(test_threads_keep_their_own_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
