/* test_common_alloc.c - est_vec_reserve (growth, contents kept, size
 * overflow refused without touching the array) and est_asprintf /
 * est_vasprintf (long and empty results). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"

static void test_vec_grows_and_keeps_contents(void **state)
{
    (void)state;
    int *items = NULL;
    size_t cap = 0;
    for (size_t n = 0; n < 1000; n++) {
        assert_int_equal(EST_VEC_RESERVE(items, cap, n + 1), EST_OK);
        assert_true(cap >= n + 1);
        items[n] = (int)n * 3;
    }
    for (size_t n = 0; n < 1000; n++)
        assert_int_equal(items[n], (int)n * 3);
    /* growth doubles: 1000 pushes need few reallocations, capacity stays bounded */
    assert_true(cap < 2048);
    size_t before = cap;
    assert_int_equal(EST_VEC_RESERVE(items, cap, 10), EST_OK);
    assert_int_equal(cap, before);
    free(items);
}

static void test_vec_first_reserve_takes_need(void **state)
{
    (void)state;
    char *bytes = NULL;
    size_t cap = 0;
    assert_int_equal(EST_VEC_RESERVE(bytes, cap, 100), EST_OK);
    assert_int_equal(cap, 100);
    assert_int_equal(EST_VEC_RESERVE(bytes, cap, 101), EST_OK);
    assert_int_equal(cap, 200);
    free(bytes);
}

static void test_vec_refuses_overflow(void **state)
{
    (void)state;
    uint64_t *items = NULL;
    size_t cap = 0;
    assert_int_equal(EST_VEC_RESERVE(items, cap, 4), EST_OK);
    uint64_t *kept = items;
    size_t kept_cap = cap;
    assert_int_equal(EST_VEC_RESERVE(items, cap, SIZE_MAX / sizeof *items + 1), EST_ERR_NOMEM);
    assert_int_equal(EST_VEC_RESERVE(items, cap, SIZE_MAX), EST_ERR_NOMEM);
    assert_ptr_equal(items, kept);
    assert_int_equal(cap, kept_cap);
    assert_int_equal(est_vec_reserve((void **)&items, &cap, 1, 0), EST_ERR_INVALID);
    free(items);
}

static char *through_va_list(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = est_vasprintf(fmt, ap);
    va_end(ap);
    return text;
}

static void test_asprintf(void **state)
{
    (void)state;
    char *text = est_asprintf("%s-%d-%.2f", "meter", 42, 1.5);
    assert_string_equal(text, "meter-42-1.50");
    free(text);
    text = est_asprintf("%s", "");
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    text = through_va_list("<%s>%d", big, 7);
    assert_int_equal(strlen(text), sizeof big - 1 + 3);
    assert_int_equal(text[0], '<');
    assert_string_equal(text + sizeof big, ">7");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vec_grows_and_keeps_contents),
        cmocka_unit_test(test_vec_first_reserve_takes_need),
        cmocka_unit_test(test_vec_refuses_overflow),
        cmocka_unit_test(test_asprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
