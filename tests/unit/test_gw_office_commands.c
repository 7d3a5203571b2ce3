/* test_gw_office_commands.c - the office's command registry and role policy
 * (gateway/office/commands.c) through office.h only, on a real store and
 * the stub host of office_stub.h; linked with the office library alone.
 * Covers: every part's verbs are found in the registry, a verb registered
 * by a test is dispatched to and cannot be registered twice, unknown verbs
 * and users are refused, a role refusal changes nothing (store, host,
 * occupancy, valve), the valve rate limit belongs to one office (a new
 * office starts afresh), and MQTT users' roles come from the users file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "office.h"
#include "office_stub.h"
#include "views.h"

#define T0_MS INT64_C(1790000000000)

static int64_t now_ms;

struct fixture {
    char dir[64];
    struct office_stub host;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_office_cmd.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    now_ms = T0_MS;
    assert_int_equal(office_stub_open_demo(&f->host, f->dir, &now_ms), EST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    office_stub_close_demo(&f->host);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* Runs verb with args (JSON) as user/role; returns the result (caller frees). */
static cJSON *run(struct fixture *f, const char *verb, const char *json, const char *role)
{
    cJSON *args = cJSON_Parse(json);
    assert_non_null(args);
    struct gw_actor actor = {.user = "tester", .role = role, .origin = "mqtt"};
    cJSON *result = gw_commands_handle(f->host.office, verb, args, &actor);
    cJSON_Delete(args);
    assert_non_null(result);
    return result;
}

static bool ok(const cJSON *result)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
}

static const char *error_of(const cJSON *result)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(result, "error");
    return cJSON_IsString(e) ? e->valuestring : "";
}

static void expect_error(struct fixture *f, const char *verb, const char *json, const char *role,
                         const char *expected)
{
    cJSON *r = run(f, verb, json, role);
    assert_false(ok(r));
    assert_string_equal(error_of(r), expected);
    cJSON_Delete(r);
}

/* Everything a command could change, as one string. */
static void fingerprint(struct fixture *f, char *out, size_t len)
{
    int64_t seq = 0;
    char hash[GW_STORE_HASH_LEN];
    assert_int_equal(gw_store_patrol_head(f->host.store, &seq, hash), EST_OK);
    struct gw_store_outbox_counts counts;
    assert_int_equal(gw_store_outbox_counts(f->host.store, &counts), EST_OK);
    bool vacant = false;
    est_err occupancy = gw_store_get_occupancy(f->host.store, "1-102", &vacant);
    cJSON *order = gw_view_workorder_get(f->host.store, 1, now_ms);
    char *order_json = order ? cJSON_PrintUnformatted(order) : NULL;
    cJSON_Delete(order);
    snprintf(out, len, "%lld|%s|%llu|%d:%d|%d|%d|%d|%s", (long long)seq, hash,
             (unsigned long long)counts.events, (int)occupancy, vacant, f->host.unit_vacant[1],
             f->host.valve_requests, f->host.published, order_json ? order_json : "-");
    free(order_json);
}

static int ping_calls;

static cJSON *ping_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
{
    (void)office;
    (void)actor;
    ping_calls++;
    cJSON *result = gw_command_ok(args);
    cJSON_AddStringToObject(result, "pong", "yes");
    return result;
}

/* ---- tests ---- */

static void test_registry_finds_every_part_s_verbs(void **state)
{
    struct fixture *f = *state;
    /* each verb answers for itself (its own argument check), not "unknown command" */
    const char *verbs[] = {"occupancy", "valve", "workorder", "patrol-checkin", "handover"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        bool has_actions = strcmp(verbs[i], "workorder") == 0;
        cJSON *r = run(f, verbs[i], has_actions ? "{\"action\":\"note\",\"bogus\":1}" : "{\"bogus\":1}",
                       "supervisor");
        assert_false(ok(r));
        assert_null(strstr(error_of(r), "unknown command"));
        assert_non_null(strstr(error_of(r), "bogus"));
        cJSON_Delete(r);
    }
    expect_error(f, "nope", "{}", "supervisor", "unknown command \"nope\"");

    /* a verb registered later is dispatched to, under the same role policy */
    ping_calls = 0;
    assert_int_equal(gw_command_register(f->host.office, "ping", ping_command, false), EST_OK);
    assert_int_equal(gw_command_register(f->host.office, "ping", ping_command, false), EST_ERR_STATE);
    cJSON *r = run(f, "ping", "{\"request_id\":\"r1\"}", "supervisor");
    assert_true(ok(r));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "pong")->valuestring, "yes");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "request_id")->valuestring, "r1");
    cJSON_Delete(r);
    assert_int_equal(ping_calls, 1);
    expect_error(f, "ping", "{}", "viewer", "role viewer may not ping");
    assert_int_equal(ping_calls, 1);
}

static void test_occupancy_through_the_registry(void **state)
{
    struct fixture *f = *state;
    cJSON *r = run(f, "occupancy", "{\"unit\":\"1-102\",\"occupancy\":\"vacant\"}", "frontdesk");
    assert_true(ok(r));
    cJSON_Delete(r);
    int unit = gw_config_unit_index(f->host.config, "1-102");
    assert_true(f->host.unit_vacant[unit]);
    bool vacant = false;
    assert_int_equal(gw_store_get_occupancy(f->host.store, "1-102", &vacant), EST_OK);
    assert_true(vacant);
}

static void test_role_refusal_changes_nothing(void **state)
{
    struct fixture *f = *state;
    /* an order to act on */
    cJSON *r = run(f, "workorder", "{\"action\":\"create\",\"category\":\"water\","
                   "\"description\":\"leak\",\"unit\":\"1-101\"}", "frontdesk");
    assert_true(ok(r));
    cJSON_Delete(r);
    char before[8192], after[8192];
    fingerprint(f, before, sizeof before);

    expect_error(f, "occupancy", "{\"unit\":\"1-102\",\"occupancy\":\"vacant\"}", "engineer",
                 "role engineer may not occupancy");
    expect_error(f, "valve", "{\"meter\":\"W-1-102\",\"action\":\"close\"}", "frontdesk",
                 "role frontdesk may not valve");
    expect_error(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"W\"}", "frontdesk",
                 "role frontdesk may not workorder verify");
    expect_error(f, "workorder", "{\"id\":1,\"action\":\"close\",\"note\":\"x\"}", "engineer",
                 "role engineer may not workorder close");
    expect_error(f, "handover", "{\"from\":\"A\",\"to\":\"B\"}", "viewer",
                 "role viewer may not handover");
    expect_error(f, "workorder", "{\"id\":1}", "supervisor", "\"action\" is required");
    struct gw_actor nobody = {.user = "ghost", .role = NULL, .origin = "mqtt"};
    cJSON *args = cJSON_Parse("{\"unit\":\"1-102\",\"occupancy\":\"vacant\"}");
    r = gw_commands_handle(f->host.office, "occupancy", args, &nobody);
    assert_string_equal(error_of(r), "unknown or disabled user \"ghost\"");
    cJSON_Delete(r);
    cJSON_Delete(args);

    fingerprint(f, after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(f->host.valve_requests, 0);
}

static void test_valve_rate_limit_is_the_office_s_own(void **state)
{
    struct fixture *f = *state;
    cJSON *r = run(f, "valve", "{\"meter\":\"W-1-102\",\"action\":\"close\"}", "engineer");
    assert_true(ok(r));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "status")->valuestring, "queued");
    cJSON_Delete(r);
    assert_int_equal(f->host.valve_requests, 1);
    r = run(f, "valve", "{\"meter\":\"W-1-102\",\"action\":\"open\"}", "engineer");
    assert_false(ok(r));
    assert_non_null(strstr(error_of(r), "rate limit (at most one actuation per meter every 30 s)"));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "retry_after_s")));
    cJSON_Delete(r);
    assert_int_equal(f->host.valve_requests, 1);

    /* a new office (another instance, a restart) has its own limiter */
    assert_int_equal(office_stub_start(&f->host), EST_OK);
    r = run(f, "valve", "{\"meter\":\"W-1-102\",\"action\":\"open\"}", "engineer");
    assert_true(ok(r));
    cJSON_Delete(r);
    assert_int_equal(f->host.valve_requests, 2);
    assert_false(f->host.last_valve_close);
}

static void test_user_roles_from_the_users_file(void **state)
{
    struct fixture *f = *state;
    /* the demo config names etc/demo/users.conf, one user per role */
    assert_string_equal(gw_commands_user_role(f->host.office, "engineer"), "engineer");
    assert_string_equal(gw_commands_user_role(f->host.office, "frontdesk"), "frontdesk");
    assert_null(gw_commands_user_role(f->host.office, "nobody"));
    assert_null(gw_commands_user_role(f->host.office, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_finds_every_part_s_verbs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_occupancy_through_the_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_refusal_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valve_rate_limit_is_the_office_s_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_roles_from_the_users_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
