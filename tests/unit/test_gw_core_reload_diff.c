/* test_gw_core_reload_diff.c - gw_reload_diff: which meters and panels map
 * where, which buses keep polling, what waits for a restart and what is
 * refused, over small configs written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "reload.h"

static char dir[64];

static const char *BUSES =
    "buses = ( { name = \"bus_a\"; type = \"tcp\"; host = \"127.0.0.1\"; port = 1502; },\n"
    "          { name = \"bus_b\"; type = \"tcp\"; host = \"127.0.0.1\"; port = 1503; },\n"
    "          { name = \"bus_c\"; type = \"tcp\"; host = \"127.0.0.1\"; port = 1504; } );\n";

/* meters: a libconfig list body. */
static struct gw_config *load(const char *name, const char *meters, const char *const *sets,
                              size_t nsets)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.conf", dir, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out,
            "gateway = { id = \"gw\"; site = \"unit\"; data_dir = \"%s/data\"; };\n"
            "mqtt = { uri = \"tcp://127.0.0.1:1883\"; };\n%s"
            "units = ( { id = \"1-101\"; building = \"1\"; occupancy = \"vacant\"; } );\n"
            "meters = ( %s );\n"
            "fire_panels = ( { id = \"FP-1\"; bus = \"bus_c\"; slave = 30; driver = \"notifier-gw\";"
            " zones = 3; } );\n"
            "http = { listen = \"\"; };\n",
            dir, BUSES, meters);
    assert_int_equal(fclose(out), 0);
    struct gw_config *config = NULL;
    struct gw_config_errors errors = {0};
    if (gw_config_load(path, sets, nsets, &config, &errors) != EST_OK)
        gw_config_errors_print(&errors, stderr);
    gw_config_errors_free(&errors);
    assert_non_null(config);
    return config;
}

#define E1 "{ id = \"E-1\"; bus = \"bus_a\"; slave = 11; driver = \"sdm120\"; category = \"unit\"; unit = \"1-101\"; }"
#define E2 "{ id = \"E-2\"; bus = \"bus_a\"; slave = 12; driver = \"sdm120\"; category = \"office\"; location = \"o\"; }"
#define E3 "{ id = \"E-3\"; bus = \"bus_b\"; slave = 13; driver = \"sdm120\"; category = \"office\"; location = \"o\"; }"
#define E3_MOVED "{ id = \"E-3\"; bus = \"bus_b\"; slave = 13; driver = \"sdm120\"; category = \"office\"; location = \"moved\"; }"
#define E4 "{ id = \"E-4\"; bus = \"bus_b\"; slave = 14; driver = \"sdm120\"; category = \"office\"; location = \"o\"; }"

static bool has_text(const cJSON *array, const char *text)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, array)
        if (strstr(item->valuestring, text) != NULL)
            return true;
    return false;
}

static void same_config_changes_nothing(void **state)
{
    (void)state;
    struct gw_config *old = load("a", E1 "," E2 "," E3, NULL, 0);
    struct gw_config *next = load("b", E1 "," E2 "," E3, NULL, 0);
    struct gw_reload_diff d;
    assert_int_equal(gw_reload_diff(old, next, &d), EST_OK);
    assert_null(d.refusal);
    assert_int_equal(cJSON_GetArraySize(d.changes), 0);
    assert_int_equal(cJSON_GetArraySize(d.restart_needed), 0);
    for (size_t j = 0; j < next->nbuses; j++)
        assert_int_equal(d.bus_kept[j], j);
    for (uint32_t i = 0; i < old->nmeters; i++)
        assert_int_equal(d.meter_map[i], i);
    assert_int_equal(d.panel_map[0], 0);
    gw_reload_diff_free(&d);
    gw_config_free(old);
    gw_config_free(next);
}

static void threshold_keeps_every_bus(void **state)
{
    (void)state;
    const char *sets[] = {"rules.reverse_energy.min_negative_power_w=99",
                          "workorders.arrive_within_s=60"};
    struct gw_config *old = load("a", E1 "," E2 "," E3, NULL, 0);
    struct gw_config *next = load("b", E1 "," E2 "," E3_MOVED, sets, 2);
    struct gw_reload_diff d;
    assert_int_equal(gw_reload_diff(old, next, &d), EST_OK);
    assert_true(has_text(d.changes, "rules changed"));
    assert_true(has_text(d.changes, "workorders changed"));
    assert_true(has_text(d.changes, "meters changed: E-3")); /* location: not the poller's */
    for (size_t j = 0; j < next->nbuses; j++)
        assert_int_equal(d.bus_kept[j], j);
    gw_reload_diff_free(&d);
    gw_config_free(old);
    gw_config_free(next);
}

static void meters_added_and_removed_restart_their_buses(void **state)
{
    (void)state;
    struct gw_config *old = load("a", E1 "," E2 "," E3, NULL, 0);
    struct gw_config *next = load("b", E4 "," E1 "," E3, NULL, 0); /* E-2 gone, E-4 new */
    struct gw_reload_diff d;
    assert_int_equal(gw_reload_diff(old, next, &d), EST_OK);
    assert_int_equal(d.meter_map[0], 1);              /* E-1 */
    assert_int_equal(d.meter_map[1], GW_RELOAD_GONE); /* E-2 */
    assert_int_equal(d.meter_map[2], 2);              /* E-3 */
    assert_int_equal(d.bus_kept[0], GW_RELOAD_NEW_BUS); /* bus_a lost E-2 */
    assert_int_equal(d.bus_kept[1], GW_RELOAD_NEW_BUS); /* bus_b got E-4 */
    assert_int_equal(d.bus_kept[2], 2);               /* bus_c: the panel only */
    assert_true(has_text(d.changes, "meters added: E-4"));
    assert_true(has_text(d.changes, "meters removed: E-2"));
    assert_true(has_text(d.changes, "buses restarted (settings or devices changed): bus_a, bus_b"));
    gw_reload_diff_free(&d);
    gw_config_free(old);
    gw_config_free(next);
}

static void bus_settings_and_offline_failures_restart(void **state)
{
    (void)state;
    const char *port[] = {"buses.bus_b.port=1600"};
    const char *failures[] = {"rules.meter_offline.failures=7"};
    struct gw_config *old = load("a", E1 "," E3, NULL, 0);
    struct gw_config *moved = load("b", E1 "," E3, port, 1);
    struct gw_config *slower = load("c", E1 "," E3, failures, 1);
    struct gw_reload_diff d;
    assert_int_equal(gw_reload_diff(old, moved, &d), EST_OK);
    assert_int_equal(d.bus_kept[0], 0);
    assert_int_equal(d.bus_kept[1], GW_RELOAD_NEW_BUS);
    gw_reload_diff_free(&d);
    assert_int_equal(gw_reload_diff(old, slower, &d), EST_OK);
    for (size_t j = 0; j < slower->nbuses; j++)
        assert_int_equal(d.bus_kept[j], GW_RELOAD_NEW_BUS); /* the pollers count failures */
    gw_reload_diff_free(&d);
    gw_config_free(old);
    gw_config_free(moved);
    gw_config_free(slower);
}

static void restart_settings_are_named_and_data_dir_refused(void **state)
{
    (void)state;
    const char *uri[] = {"mqtt.uri=tcp://127.0.0.1:1999"};
    char data_dir[128];
    snprintf(data_dir, sizeof data_dir, "gateway.data_dir=%s/elsewhere", dir);
    const char *moved[] = {data_dir};
    struct gw_config *old = load("a", E1, NULL, 0);
    struct gw_config *broker = load("b", E1, uri, 1);
    struct gw_config *elsewhere = load("c", E1, moved, 1);
    struct gw_reload_diff d;
    assert_int_equal(gw_reload_diff(old, broker, &d), EST_OK);
    assert_null(d.refusal);
    assert_true(has_text(d.restart_needed, "mqtt.uri"));
    gw_reload_diff_free(&d);
    assert_int_equal(gw_reload_diff(old, elsewhere, &d), EST_OK);
    assert_non_null(d.refusal);
    assert_non_null(strstr(d.refusal, "gateway.data_dir"));
    gw_reload_diff_free(&d);
    gw_config_free(old);
    gw_config_free(broker);
    gw_config_free(elsewhere);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_gw_reload.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s.conf", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_config_changes_nothing),
        cmocka_unit_test(threshold_keeps_every_bus),
        cmocka_unit_test(meters_added_and_removed_restart_their_buses),
        cmocka_unit_test(bus_settings_and_offline_failures_restart),
        cmocka_unit_test(restart_settings_are_named_and_data_dir_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
