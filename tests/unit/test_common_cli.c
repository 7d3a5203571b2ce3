/* test_common_cli.c - est_cli_take: -c and --set in their short, long and
 * "=" spellings, order of --set kept, a missing value, help and version
 * (exit 0) and arguments it leaves to the program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "est_cli.h"

static int usage_calls;
static void count_usage(FILE *out)
{
    (void)out;
    usage_calls++;
}

/* Offers every argument; returns how many were left to the program. */
static int walk(struct est_cli *cli, int argc, char **argv, enum est_cli_take *last)
{
    int others = 0;
    *last = EST_CLI_TAKEN;
    for (int i = 1; i < argc; i++) {
        *last = est_cli_take(cli, argc, argv, &i);
        if (*last == EST_CLI_OTHER)
            others++;
        else if (*last != EST_CLI_TAKEN)
            break;
    }
    return others;
}

static void test_config_and_sets(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--set", "a.b=1", "-c", "one.conf", "--json", "--set=c=2",
                    "--config=two.conf", "verb", "-cthree.conf", "--set", "d.e=x y"};
    struct est_cli cli = {.program = "prog", .usage = count_usage};
    enum est_cli_take last;
    assert_int_equal(walk(&cli, 12, argv, &last), 2); /* --json, verb */
    assert_int_equal(last, EST_CLI_TAKEN);
    assert_string_equal(cli.config_path, "three.conf");
    assert_int_equal(cli.nsets, 3);
    assert_string_equal(cli.sets[0], "a.b=1");
    assert_string_equal(cli.sets[1], "c=2");
    assert_string_equal(cli.sets[2], "d.e=x y");
    est_cli_free(&cli);
    assert_null(cli.sets);
}

static void test_missing_value(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--set"};
    struct est_cli cli = {.program = "prog", .usage = count_usage};
    enum est_cli_take last;
    walk(&cli, 2, argv, &last);
    assert_int_equal(last, EST_CLI_NO_VALUE);
    char *argv2[] = {"prog", "-c"};
    walk(&cli, 2, argv2, &last);
    assert_int_equal(last, EST_CLI_NO_VALUE);
    assert_null(cli.config_path);
    est_cli_free(&cli);
}

static void test_help_and_version(void **state)
{
    (void)state;
    const char *spellings[] = {"-h", "--help", "-V", "--version"};
    for (size_t k = 0; k < 4; k++) {
        char *argv[] = {"prog", (char *)spellings[k], "--set", "a=1"};
        struct est_cli cli = {.program = "prog", .usage = count_usage, .exit_code = -1};
        usage_calls = 0;
        enum est_cli_take last;
        walk(&cli, 4, argv, &last);
        assert_int_equal(last, EST_CLI_EXIT);
        assert_int_equal(cli.exit_code, EST_EXIT_OK);
        assert_int_equal(cli.nsets, 0); /* stops there */
        assert_int_equal(usage_calls, k < 2 ? 1 : 0);
        est_cli_free(&cli);
    }
}

static void test_leaves_lookalikes(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--settings", "--configure", "--csv", "-x"};
    struct est_cli cli = {.program = "prog", .usage = count_usage};
    enum est_cli_take last;
    assert_int_equal(walk(&cli, 5, argv, &last), 4);
    assert_null(cli.config_path);
    assert_int_equal(cli.nsets, 0);
    est_cli_free(&cli);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_sets),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_leaves_lookalikes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
