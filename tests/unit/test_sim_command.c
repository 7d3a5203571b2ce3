/* test_sim_command.c - estate-sim's control protocol (every reply is JSON,
 * malformed input never crashes), the config loader's FILE:LINE errors,
 * --set overrides and the benchmark generator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim_command.h"
#include "sim_config.h"

static const char *const site =
    "sim = { seed = 3; control = \"127.0.0.1:15020\"; };\n"
    "endpoints = ( { name = \"a\"; type = \"tcp\"; listen = \"127.0.0.1:15502\"; } );\n"
    "devices = (\n"
    "  { id = \"E1\"; endpoint = \"a\"; slave = 1; driver = \"sdm120\"; serial = 20260015; },\n"
    "  { id = \"W1\"; endpoint = \"a\"; slave = 2; driver = \"xintai-water\"; },\n"
    "  { id = \"FP\"; endpoint = \"a\"; slave = 3; driver = \"notifier-gw\"; zones = 8; }\n"
    ");\n"
    "scenario = ( { at_s = 10; device = \"W1\"; event = \"flow\"; flow_m3h = 0.3; },\n"
    "  { at_s = 5; device = \"E1\"; fault = \"slow\"; delay_ms = 300; } );\n";

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_sim_command_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads text; returns the setup or NULL, with the errors in *errors. */
static struct sim_setup *load(const char *text, const char *const *sets, size_t nsets,
                              struct sim_config_errors *errors, char **path_out)
{
    char *path = write_temp(text);
    struct sim_setup *setup = NULL;
    sim_config_load(path, sets, nsets, NULL, 0, &setup, errors);
    if (path_out != NULL)
        *path_out = path;
    else {
        unlink(path);
        free(path);
    }
    return setup;
}

static int setup_site(void **state)
{
    struct sim_config_errors errors = {0};
    *state = load(site, NULL, 0, &errors, NULL);
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "%s\n", errors.messages[i]);
    sim_config_errors_free(&errors);
    return *state == NULL ? -1 : 0;
}

static int teardown_site(void **state)
{
    sim_setup_free(*state);
    return 0;
}

/* Runs one request; returns the parsed reply (caller deletes). */
static cJSON *exec(void **state, const char *line)
{
    struct sim_setup *setup = *state;
    char *text = sim_command_execute(setup->world, line, strlen(line), 0);
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    cJSON *reply = cJSON_Parse(text);
    free(text);
    assert_non_null(reply);
    assert_non_null(cJSON_GetObjectItem(reply, "ok"));
    return reply;
}

static bool is_ok(void **state, const char *line)
{
    cJSON *reply = exec(state, line);
    bool ok = cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"));
    if (!ok)
        assert_true(cJSON_IsString(cJSON_GetObjectItem(reply, "error")));
    cJSON_Delete(reply);
    return ok;
}

static void test_malformed_requests(void **state)
{
    const char *bad[] = {
        "", "{", "}", "null", "42", "\"list\"", "[1,2]", "{\"cmd\":1}", "{\"cmd\":null}",
        "{\"cmd\":\"nope\"}", "{\"cmd\":\"get\"}", "{\"cmd\":\"get\",\"device\":7}",
        "{\"cmd\":\"get\",\"device\":\"ZZ\"}", "{\"cmd\":\"freeze\",\"on\":\"yes\"}",
        "{\"cmd\":\"fault\",\"device\":\"E1\"}", "{\"cmd\":\"fault\",\"device\":\"E1\",\"fault\":3}",
        "{\"cmd\":\"fault\",\"device\":\"E1\",\"fault\":\"slow\",\"delay_ms\":-5}",
        "{\"cmd\":\"fault\",\"device\":\"E1\",\"fault\":\"exception\",\"code\":1e300}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"flow\",\"flow_m3h\":1}",
        "{\"cmd\":\"event\",\"device\":\"W1\",\"event\":\"flow\",\"flow_m3h\":-1}",
        "{\"cmd\":\"event\",\"device\":\"W1\",\"event\":\"flow\"}",
        "{\"cmd\":\"event\",\"device\":\"FP\",\"event\":\"zone\",\"zone\":99,\"state\":\"alarm\"}",
        "{\"cmd\":\"event\",\"device\":\"FP\",\"event\":\"zone\",\"zone\":1,\"state\":\"burning\"}",
        "{\"cmd\":\"event\",\"device\":\"FP\",\"event\":\"zone\",\"zone\":1.5,\"state\":\"alarm\"}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"set\",\"quantity\":\"bogus\",\"value\":1}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"set\",\"quantity\":\"power_w\"}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"jump\"}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"replace\",\"serial\":-2}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"explode\"}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"reverse\",\"extra\":1}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"valve\",\"state\":\"closed\"}",
        "{\"cmd\":\"event\",\"device\":\"E1\",\"fault\":\"silent\"}",
        "{\"cmd\":\"fault\",\"device\":\"E1\",\"event\":\"reverse\"}",
        "{\"cmd\":\"get\",\"device\":\"E1\"", "\xff\xfe\x00garbage",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (is_ok(state, bad[i]))
            fail_msg("accepted: %s", bad[i]);
    /* deep nesting and long strings are just errors */
    char *deep = malloc(20001);
    memset(deep, '[', 20000);
    deep[20000] = '\0';
    assert_false(is_ok(state, deep));
    free(deep);
    /* random bytes */
    srand(1);
    char junk[256];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand() % 255);
        for (size_t i = 0; i < n; i++)
            junk[i] = (char)(rand() % 256 ? rand() % 256 : 1);
        junk[n] = '\0';
        struct sim_setup *setup = *state;
        free(sim_command_execute(setup->world, junk, n, 0));
    }
}

static void test_commands(void **state)
{
    assert_true(is_ok(state, "{\"cmd\":\"ping\"}"));
    cJSON *list = exec(state, "{\"cmd\":\"list\"}");
    cJSON *devices = cJSON_GetObjectItem(list, "devices");
    assert_int_equal(cJSON_GetArraySize(devices), 3);
    cJSON *first = cJSON_GetArrayItem(devices, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "E1");
    assert_string_equal(cJSON_GetObjectItem(first, "endpoint")->valuestring, "a");
    assert_int_equal(cJSON_GetObjectItem(first, "slave")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(first, "driver")->valuestring, "sdm120");
    cJSON_Delete(list);

    assert_true(is_ok(state, "{\"cmd\":\"freeze\",\"on\":true}"));
    assert_true(is_ok(state, "{\"cmd\":\"event\",\"device\":\"E1\",\"event\":\"set\","
                             "\"quantity\":\"power_w\",\"value\":-123.5}"));
    cJSON *get = exec(state, "{\"cmd\":\"get\",\"device\":\"E1\"}");
    cJSON *values = cJSON_GetObjectItem(get, "values");
    assert_true(cJSON_GetObjectItem(values, "power_w")->valuedouble == -123.5);
    assert_int_equal(cJSON_GetObjectItem(get, "serial")->valuedouble, 20260015);
    cJSON_Delete(get);

    assert_true(is_ok(state, "{\"cmd\":\"event\",\"device\":\"W1\",\"event\":\"valve\","
                             "\"state\":\"closed\"}"));
    get = exec(state, "{\"cmd\":\"get\",\"device\":\"W1\"}");
    assert_string_equal(cJSON_GetObjectItem(get, "valve")->valuestring, "closed");
    cJSON_Delete(get);

    assert_true(is_ok(state, "{\"cmd\":\"event\",\"device\":\"FP\",\"event\":\"zone\","
                             "\"zone\":3,\"state\":\"alarm\"}"));
    get = exec(state, "{\"cmd\":\"get\",\"device\":\"FP\"}");
    cJSON *zones = cJSON_GetObjectItem(get, "zones");
    assert_int_equal(cJSON_GetArraySize(zones), 8);
    assert_int_equal(cJSON_GetArrayItem(zones, 2)->valueint & DRV_ZONE_ALARM, DRV_ZONE_ALARM);
    assert_int_equal(cJSON_GetArrayItem(zones, 0)->valueint, 0);
    cJSON_Delete(get);

    assert_true(is_ok(state, "{\"cmd\":\"fault\",\"device\":\"E1\",\"fault\":\"exception\","
                             "\"code\":11}"));
    struct sim_setup *setup = *state;
    assert_int_equal(setup->world->devices[0].fault, SIM_FAULT_EXCEPTION);
    assert_int_equal(setup->world->devices[0].fault_code, 11);
    cJSON *stats = exec(state, "{\"cmd\":\"stats\"}");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(stats, "endpoints")), 1);
    cJSON_Delete(stats);
}

static void test_scenario_sorted(void **state)
{
    struct sim_setup *setup = *state;
    assert_int_equal(setup->nscenario, 2);
    assert_int_equal(setup->scenario[0].at_ms, 5000);
    assert_true(setup->scenario[0].action.is_fault);
    assert_int_equal(setup->scenario[0].action.delay_ms, 300);
    assert_int_equal(setup->scenario[1].at_ms, 10000);
    assert_int_equal(setup->scenario[1].action.ev.type, SIM_EV_FLOW);
    assert_string_equal(setup->control, "127.0.0.1:15020");
}

static bool has_message(const struct sim_config_errors *errors, const char *needle)
{
    for (size_t i = 0; i < errors->count; i++)
        if (strstr(errors->messages[i], needle) != NULL)
            return true;
    return false;
}

static void test_config_errors(void **state)
{
    (void)state;
    const char *text =
        "sim = { seed = 1; bogus = 2; };\n"
        "endpoints = ( { name = \"a\"; type = \"tcp\"; listen = \"127.0.0.1:15502\"; } );\n"
        "devices = (\n"
        "  { id = \"E1\"; endpoint = \"a\"; slave = 1; driver = \"sdm120\"; colour = \"red\"; },\n"
        "  { id = \"E2\"; endpoint = \"a\"; slave = 1; driver = \"sdm120\"; },\n"
        "  { id = \"W1\"; endpoint = \"a\"; slave = 2; driver = \"nope\"; }\n"
        ");\n"
        "scenario = ( { at_s = 1; device = \"E1\"; event = \"flow\"; flow_m3h = 1.0; } );\n";
    struct sim_config_errors errors = {0};
    char *path = NULL;
    struct sim_setup *setup = load(text, NULL, 0, &errors, &path);
    assert_null(setup);
    char expect[512];
    snprintf(expect, sizeof expect, "%s:1: unknown key \"bogus\"", path);
    assert_true(has_message(&errors, expect));
    snprintf(expect, sizeof expect, "%s:4: unknown key \"colour\"", path);
    assert_true(has_message(&errors, expect));
    snprintf(expect, sizeof expect, "%s:5: device E2: slave 1 on a is already E1", path);
    assert_true(has_message(&errors, expect));
    snprintf(expect, sizeof expect, "%s:6:", path);
    assert_true(has_message(&errors, expect));
    assert_true(has_message(&errors, "flow needs a water meter"));
    sim_config_errors_free(&errors);
    unlink(path);
    free(path);
}

static void test_overrides(void **state)
{
    (void)state;
    const char *sets[] = {"sim.control=127.0.0.1:25020", "endpoints.a.listen=127.0.0.1:25502",
                          "sim.time_scale=60", "sim.seed=99", "devices.E1.serial=123"};
    struct sim_config_errors errors = {0};
    struct sim_setup *setup = load(site, sets, 5, &errors, NULL);
    assert_non_null(setup);
    assert_string_equal(setup->control, "127.0.0.1:25020");
    assert_string_equal(setup->world->endpoints[0].listen, "127.0.0.1:25502");
    assert_true(setup->world->clock.time_scale == 60.0);
    assert_int_equal(setup->world->seed, 99);
    assert_int_equal(setup->world->devices[0].serial, 123);
    sim_setup_free(setup);
    const char *bad[] = {"endpoints.zz.listen=127.0.0.1:1"};
    setup = load(site, bad, 1, &errors, NULL);
    assert_null(setup);
    assert_true(has_message(&errors, "--set"));
    sim_config_errors_free(&errors);
}

static void test_generator(void **state)
{
    (void)state;
    struct sim_generate gen = {.meters = 1000, .endpoints = 2, .base_port = 17000};
    struct sim_setup *setup = NULL;
    struct sim_config_errors errors = {0};
    assert_int_equal(sim_config_load(NULL, NULL, 0, &gen, 0, &setup, &errors), EST_OK);
    struct sim_world *w = setup->world;
    assert_int_equal(w->ndevices, 1000);
    assert_int_equal(w->nendpoints, 5); /* ceil(1000 / 247) */
    assert_string_equal(w->endpoints[4].listen, "127.0.0.1:17004");
    assert_string_equal(w->devices[999].id, "M01000");
    assert_int_equal(w->devices[999].endpoint, 999 % 5);
    assert_int_equal(w->devices[999].slave, 999 / 5 + 1);
    assert_non_null(sim_world_slave(w, 4, 200));
    sim_setup_free(setup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_requests, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_commands, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_scenario_sorted, setup_site, teardown_site),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_generator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
