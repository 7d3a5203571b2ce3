/* test_common_override.c - est_config_override on a libconfig tree read
 * from text: paths by name, index and id/name member, created groups and
 * keys, typing in both modes, the hook, and each error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "est_override.h"

static const char tree_text[] =
    "gateway = { id = \"gw1\"; port = 5; ratio = 1.5; on = true; };\n"
    "buses = ( { id = \"bus-a\"; port = 502; }, { name = \"bus-b\"; port = 503; } );\n";

static int setup_tree(void **state)
{
    config_t *lc = malloc(sizeof *lc);
    assert_non_null(lc);
    config_init(lc);
    assert_int_equal(config_read_string(lc, tree_text), CONFIG_TRUE);
    *state = lc;
    return 0;
}

static int free_tree(void **state)
{
    config_destroy(*state);
    free(*state);
    return 0;
}

/* Applies text; returns its error and the message (freed at the next call). */
static est_err apply(config_t *lc, const char *text, enum est_override_mode mode,
                     const char **message)
{
    static char *last;
    free(last);
    struct est_override_result r;
    static int hook;
    est_err err = est_config_override(lc, text, mode, &hook, &r);
    last = r.message;
    *message = last ? last : "";
    return err;
}

static void test_paths_and_types(void **state)
{
    config_t *lc = *state;
    const char *m;
    int i = 0;
    const char *s = NULL;
    assert_int_equal(apply(lc, "gateway.port=7", EST_OVERRIDE_NEW_AS_TEXT, &m), EST_OK);
    assert_true(config_lookup_int(lc, "gateway.port", &i));
    assert_int_equal(i, 7);
    assert_int_equal(apply(lc, "buses[1].port=600", EST_OVERRIDE_NEW_AS_TEXT, &m), EST_OK);
    assert_int_equal(apply(lc, "buses.bus-a.port=601", EST_OVERRIDE_NEW_AS_TEXT, &m), EST_OK);
    assert_int_equal(apply(lc, "buses.bus-b.port=602", EST_OVERRIDE_NEW_INFERRED, &m), EST_OK);
    assert_true(config_lookup_int(lc, "buses.[0].port", &i));
    assert_int_equal(i, 601);
    assert_true(config_lookup_int(lc, "buses.[1].port", &i));
    assert_int_equal(i, 602);
    /* a created key is text in NEW_AS_TEXT mode, typed in NEW_INFERRED mode */
    assert_int_equal(apply(lc, "mqtt.tls.port=8883", EST_OVERRIDE_NEW_AS_TEXT, &m), EST_OK);
    assert_true(config_lookup_string(lc, "mqtt.tls.port", &s));
    assert_string_equal(s, "8883");
    assert_int_equal(apply(lc, "sim.scale=60", EST_OVERRIDE_NEW_INFERRED, &m), EST_OK);
    assert_true(config_lookup_int(lc, "sim.scale", &i));
    assert_int_equal(i, 60);
    double d = 0;
    assert_int_equal(apply(lc, "sim.factor=0.5", EST_OVERRIDE_NEW_INFERRED, &m), EST_OK);
    assert_true(config_lookup_float(lc, "sim.factor", &d));
    assert_true(d == 0.5);
    /* an integer given a fraction: text to type in one mode, a float in the other */
    assert_int_equal(apply(lc, "gateway.port=0.25", EST_OVERRIDE_NEW_AS_TEXT, &m), EST_OK);
    assert_true(config_lookup_string(lc, "gateway.port", &s));
    assert_string_equal(s, "0.25");
    assert_int_equal(apply(lc, "buses.0.port=2.5", EST_OVERRIDE_NEW_INFERRED, &m), EST_OK);
    assert_true(config_lookup_float(lc, "buses.[0].port", &d));
    assert_true(d == 2.5);
}

static void test_hook_and_created(void **state)
{
    config_t *lc = *state;
    int hook;
    struct est_override_result r;
    assert_int_equal(est_config_override(lc, "gateway.on=false", EST_OVERRIDE_NEW_AS_TEXT, &hook, &r),
                     EST_OK);
    assert_false(r.created);
    config_setting_t *on = config_lookup(lc, "gateway.on");
    assert_ptr_equal(config_setting_get_hook(on), &hook);
    assert_false(config_setting_get_bool(on));
    assert_int_equal(est_config_override(lc, "gateway.extra=x", EST_OVERRIDE_NEW_AS_TEXT, &hook, &r),
                     EST_OK);
    assert_true(r.created);
    assert_ptr_equal(config_setting_get_hook(config_lookup(lc, "gateway.extra")), &hook);
    assert_null(r.message);
}

static void test_errors(void **state)
{
    config_t *lc = *state;
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"novalue", "expected PATH=VALUE"},
        {"=x", "expected PATH=VALUE"},
        {"gateway..id=x", "malformed path"},
        {"gateway.port=abc", "'abc' is not an integer"},
        {"gateway.port=99999999999", "'99999999999' is not an integer"},
        {"gateway.ratio=fast", "'fast' is not a number"},
        {"gateway.on=yes", "'yes' is not true or false"},
        {"buses=1", "the path names a group or list, not a single setting"},
        {"buses.7.port=1", "no element '7' in buses"},
        {"buses.bus-z.port=1", "no element 'bus-z' in buses"},
        {"gateway[0]=1", "'[0]': 'gateway' is a group, not a list"},
        {"gateway.id.x=1", "'id' is not a group or list"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *m;
        assert_int_equal(apply(lc, cases[k].text, EST_OVERRIDE_NEW_AS_TEXT, &m), EST_ERR_INVALID);
        assert_string_equal(m, cases[k].message);
    }
    int i = 0;
    assert_true(config_lookup_int(lc, "gateway.port", &i));
    assert_int_equal(i, 5);
    /* in NEW_INFERRED mode a value the old type refuses replaces it */
    const char *m;
    const char *s = NULL;
    assert_int_equal(apply(lc, "gateway.port=abc", EST_OVERRIDE_NEW_INFERRED, &m), EST_OK);
    assert_true(config_lookup_string(lc, "gateway.port", &s));
    assert_string_equal(s, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paths_and_types, setup_tree, free_tree),
        cmocka_unit_test_setup_teardown(test_hook_and_created, setup_tree, free_tree),
        cmocka_unit_test_setup_teardown(test_errors, setup_tree, free_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
