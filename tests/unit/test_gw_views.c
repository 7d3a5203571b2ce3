/* test_gw_views.c - unit tests of gateway/views: the one JSON builder per
 * record kind (incident, work order with history, patrol entry, meter with
 * its last reading) and the JSON helpers. Incidents: a fire zone is 1-based
 * in every form; the stored state is "active"/"cleared" and a transition
 * "raised"/"updated"/"cleared", the only key in which the forms differ; a
 * unit's incident (vacant_flow) names its unit once; a meter in the detail
 * is the meter's id, not its index in the config. No record carries a key
 * twice (checked by walking the JSON, a checker that is itself tested). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "views.h"

#define T0 1765000000000LL /* 2025-12-06T05:46:40Z */

struct fixture {
    char dir[64];
    struct gw_config *config;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_views.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    const char *src = getenv("ESTATE_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/etc/demo/estate-gw.conf", src ? src : ESTATE_SOURCE_DIR);
    char override[128];
    snprintf(override, sizeof override, "gateway.data_dir=%s", f->dir);
    const char *overrides[] = {override, "gateway.language=en"};
    struct gw_config_errors errors = {0};
    if (gw_config_load(path, overrides, 2, &f->config, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        fail_msg("cannot load %s", path);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gw_config_free(f->config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static const char *string_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double number_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static int meter_index(const struct gw_config *c, const char *id)
{
    int i = gw_config_meter_index(c, id);
    assert_true(i >= 0);
    return i;
}

/* How many members named key o holds (cJSON_GetObjectItem finds the first). */
static int members_named(const cJSON *o, const char *key)
{
    int n = 0;
    for (const cJSON *m = o->child; m != NULL; m = m->next)
        n += m->string != NULL && strcmp(m->string, key) == 0;
    return n;
}

static void assert_no_duplicate_keys(const cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (gw_json_has_duplicate_keys(o))
        fail_msg("a key appears twice in %s", text ? text : "?");
    free(text);
}

static struct gw_store_incident fire_zone_incident(void)
{
    return (struct gw_store_incident){
        .id = 7, .rule = "fire_alarm", .subject_type = "zone", .subject = "FP-1", .zone = 2,
        .severity = "critical", .open = true, .since_ms = T0, .raised_ms = T0 + 5,
        .updated_ms = T0 + 5, .detail_json = NULL, .text = "Fire alarm",
    };
}

/* vacant_flow as stored today: detail "meter" is the meter's index. */
static struct gw_store_incident vacant_flow_incident(const struct gw_config *c, char *detail,
                                                     size_t len)
{
    snprintf(detail, len, "{\"volume_m3\":0.5,\"meter\":%d,\"valve_failed\":0}",
             meter_index(c, "W-1-102"));
    return (struct gw_store_incident){
        .id = 9, .rule = "vacant_flow", .subject_type = "unit", .subject = "1-102", .zone = -1,
        .severity = "major", .open = true, .since_ms = T0, .raised_ms = T0 + 10,
        .updated_ms = T0 + 20, .detail_json = detail, .text = "Water flowing in vacant unit 1-102",
    };
}

/* ---- JSON helpers ---- */

static void duplicate_checker_finds_repeated_keys(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "unit", "1-102");
    cJSON_AddStringToObject(o, "meter", "W-1-102");
    assert_false(gw_json_has_duplicate_keys(o));
    cJSON *list = cJSON_AddArrayToObject(o, "list");
    cJSON *inner = cJSON_CreateObject();
    cJSON_AddNumberToObject(inner, "a", 1);
    cJSON_AddNumberToObject(inner, "b", 2);
    cJSON_AddItemToArray(list, inner);
    assert_false(gw_json_has_duplicate_keys(o));
    cJSON_AddNumberToObject(inner, "a", 3); /* nested, in an array */
    assert_true(gw_json_has_duplicate_keys(o));
    cJSON_Delete(o);

    cJSON *top = cJSON_CreateObject();
    cJSON_AddStringToObject(top, "unit", "1-102");
    cJSON_AddStringToObject(top, "unit", "1-102"); /* what cJSON_Add* does */
    assert_true(gw_json_has_duplicate_keys(top));
    cJSON_Delete(top);

    cJSON *array = cJSON_CreateArray(); /* array items have no names */
    cJSON_AddItemToArray(array, cJSON_CreateNumber(1));
    cJSON_AddItemToArray(array, cJSON_CreateNumber(1));
    assert_false(gw_json_has_duplicate_keys(array));
    cJSON_Delete(array);
}

static void setters_replace(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    gw_json_set_string(o, "unit", "1-101");
    gw_json_set_string(o, "unit", "1-102");
    gw_json_add_string_if(o, "unit", "1-201");
    gw_json_add_string_if(o, "unit", NULL);
    gw_json_set_number(o, "zone", 1);
    gw_json_set_number(o, "zone", 2);
    gw_json_add_ts(o, "ts", T0);
    gw_json_add_ts_if(o, "ts", T0 + 1);
    gw_json_add_ts_if(o, "ts", 0);
    gw_json_add_number_if(o, "n", NAN);
    gw_json_set_bool(o, "b", true);
    gw_json_set_bool(o, "b", false);
    assert_int_equal(members_named(o, "unit"), 1);
    assert_string_equal(string_of(o, "unit"), "1-201");
    assert_int_equal(members_named(o, "zone"), 1);
    assert_int_equal((int)number_of(o, "zone"), 2);
    assert_string_equal(string_of(o, "ts"), "2025-12-06T05:46:40.001Z");
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "n"));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "b")));
    assert_no_duplicate_keys(o);
    gw_json_set(NULL, "x", cJSON_CreateNumber(1)); /* freed, no leak under ASan */
    gw_json_set(o, "x", NULL);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "x"));
    cJSON_Delete(o);
}

/* ---- incidents ---- */

/* P/alerts counted zones from 1, GET /api/alerts from 0: 1 everywhere. */
static void fire_zone_is_one_based_in_every_form(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = fire_zone_incident();
    const enum gw_incident_transition forms[] = {GW_INCIDENT_STORED, GW_INCIDENT_RAISED,
                                                 GW_INCIDENT_UPDATED, GW_INCIDENT_CLEARED};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        cJSON *o = gw_view_incident(f->config, &in, forms[i]);
        assert_non_null(o);
        assert_int_equal((int)number_of(o, "zone"), 3);
        assert_string_equal(string_of(o, "panel"), "FP-1");
        assert_null(cJSON_GetObjectItemCaseSensitive(o, "meter"));
        assert_no_duplicate_keys(o);
        cJSON_Delete(o);
    }
    /* A zone without a configured name is named by its 1-based number. */
    int p = gw_config_panel_index(f->config, "FP-1");
    assert_true(p >= 0);
    char *saved = f->config->panels[p].zones[2].name;
    f->config->panels[p].zones[2].name = NULL;
    char where[128];
    gw_view_incident_location(f->config, &in, where, sizeof where);
    f->config->panels[p].zones[2].name = saved;
    assert_string_equal(where, "FP-1 zone 3");
    if (saved != NULL) {
        gw_view_incident_location(f->config, &in, where, sizeof where);
        assert_string_equal(where, saved);
    }
}

/* estate-ctl said "open", the API "active": "active" (SPEC). */
static void incident_state_names(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = fire_zone_incident();
    assert_string_equal(gw_view_incident_state(&in, GW_INCIDENT_STORED), "active");
    assert_string_equal(gw_view_incident_state(&in, GW_INCIDENT_RAISED), "raised");
    assert_string_equal(gw_view_incident_state(&in, GW_INCIDENT_UPDATED), "updated");
    assert_string_equal(gw_view_incident_state(&in, GW_INCIDENT_CLEARED), "cleared");
    cJSON *o = gw_view_incident(f->config, &in, GW_INCIDENT_STORED);
    assert_string_equal(string_of(o, "state"), "active");
    cJSON_Delete(o);
    in.open = false;
    in.cleared_ms = in.updated_ms = T0 + 60000;
    assert_string_equal(gw_view_incident_state(&in, GW_INCIDENT_STORED), "cleared");
    o = gw_view_incident(f->config, &in, GW_INCIDENT_STORED);
    assert_string_equal(string_of(o, "state"), "cleared");
    assert_string_equal(string_of(o, "cleared"), "2025-12-06T05:47:40.000Z");
    assert_string_equal(string_of(o, "ts"), "2025-12-06T05:47:40.000Z");
    cJSON_Delete(o);
    assert_int_equal(gw_view_transition_of(RULE_RAISED), GW_INCIDENT_RAISED);
    assert_int_equal(gw_view_transition_of(RULE_UPDATED), GW_INCIDENT_UPDATED);
    assert_int_equal(gw_view_transition_of(RULE_CLEARED), GW_INCIDENT_CLEARED);
}

/* The stored and the transition forms differ in "state" only. */
static void incident_forms_differ_only_in_state(void **state)
{
    struct fixture *f = *state;
    char detail[128];
    struct gw_store_incident ins[] = {fire_zone_incident(),
                                      vacant_flow_incident(f->config, detail, sizeof detail)};
    for (size_t k = 0; k < 2; k++) {
        cJSON *stored = gw_view_incident(f->config, &ins[k], GW_INCIDENT_STORED);
        cJSON *raised = gw_view_incident(f->config, &ins[k], GW_INCIDENT_RAISED);
        assert_int_equal(cJSON_GetArraySize(stored), cJSON_GetArraySize(raised));
        for (cJSON *m = stored->child; m != NULL; m = m->next) {
            cJSON *other = cJSON_GetObjectItemCaseSensitive(raised, m->string);
            assert_non_null(other);
            if (strcmp(m->string, "state") != 0 && !cJSON_Compare(m, other, true))
                fail_msg("%s differs between the stored and the raised form", m->string);
        }
        /* Every SPEC field of P/alerts, and the API's. */
        static const char *const keys[] = {"id", "rule", "severity", "state", "subject_type",
                                           "subject", "location", "ts", "since", "raised",
                                           "updated", "text", "detail"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (cJSON_GetObjectItemCaseSensitive(stored, keys[i]) == NULL)
                fail_msg("incident without \"%s\"", keys[i]);
        assert_string_equal(string_of(stored, "ts"), k == 0 ? "2025-12-06T05:46:40.005Z"
                                                            : "2025-12-06T05:46:40.020Z");
        cJSON_Delete(stored);
        cJSON_Delete(raised);
    }
}

/* vacant_flow: "unit" came twice (the meter's unit, then the subject). */
static void vacant_flow_names_its_unit_once(void **state)
{
    struct fixture *f = *state;
    char detail[128];
    struct gw_store_incident in = vacant_flow_incident(f->config, detail, sizeof detail);
    for (int t = GW_INCIDENT_STORED; t <= GW_INCIDENT_CLEARED; t++) {
        cJSON *o = gw_view_incident(f->config, &in, (enum gw_incident_transition)t);
        assert_int_equal(members_named(o, "unit"), 1);
        assert_string_equal(string_of(o, "unit"), "1-102");
        assert_string_equal(string_of(o, "meter"), "W-1-102");
        assert_string_equal(string_of(o, "location"), "unit 1-102");
        assert_no_duplicate_keys(o);
        cJSON_Delete(o);
    }
}

/* detail.meter held the meter's index in the config ("meter":4). */
static void detail_meter_is_the_meter_id(void **state)
{
    struct fixture *f = *state;
    char detail[128];
    struct gw_store_incident in = vacant_flow_incident(f->config, detail, sizeof detail);
    cJSON *o = gw_view_incident(f->config, &in, GW_INCIDENT_STORED);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "detail");
    assert_true(cJSON_IsObject(d));
    assert_string_equal(string_of(d, "meter"), "W-1-102");
    assert_true(number_of(d, "volume_m3") == 0.5);
    assert_true(number_of(d, "valve_failed") == 0);
    cJSON_Delete(o);

    /* What is stored from now on names the meter too. */
    struct rule_event e = {
        .rule = RULE_VACANT_FLOW, .transition = RULE_RAISED,
        .subject = {.type = RULE_SUBJECT_UNIT, .index = 1, .zone = -1},
        .ts_ms = T0, .since_ms = T0, .reason = "vacant_flow", .ndetail = 3,
        .detail = {{"volume_m3", 0.5}, {"meter", meter_index(f->config, "W-1-102")},
                   {"valve_failed", 1}},
    };
    cJSON *built = gw_view_incident_detail(f->config, &e);
    assert_string_equal(string_of(built, "reason"), "vacant_flow");
    assert_string_equal(string_of(built, "meter"), "W-1-102");
    assert_true(number_of(built, "valve_failed") == 1);
    assert_no_duplicate_keys(built);
    char *text = gw_json_finish(built);
    in.detail_json = text;
    o = gw_view_incident(f->config, &in, GW_INCIDENT_RAISED);
    assert_string_equal(string_of(cJSON_GetObjectItemCaseSensitive(o, "detail"), "meter"),
                        "W-1-102");
    assert_string_equal(string_of(o, "meter"), "W-1-102");
    cJSON_Delete(o);
    free(text);

    /* A number that is no meter index stays what it is. */
    in.detail_json = "{\"meter\":99999}";
    o = gw_view_incident(f->config, &in, GW_INCIDENT_STORED);
    assert_int_equal((int)number_of(cJSON_GetObjectItemCaseSensitive(o, "detail"), "meter"), 99999);
    cJSON_Delete(o);
}

static void incident_of_a_meter(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = {
        .id = 3, .rule = "reverse_energy", .subject_type = "meter", .subject = "E-1-201",
        .zone = -1, .severity = "major", .open = true, .since_ms = T0, .raised_ms = T0,
        .updated_ms = T0, .detail_json = "not json", .text = NULL,
        .confirmed_by = "li", .confirmed_ms = T0 + 1000,
    };
    cJSON *o = gw_view_incident(f->config, &in, GW_INCIDENT_STORED);
    assert_string_equal(string_of(o, "meter"), "E-1-201");
    assert_string_equal(string_of(o, "unit"), "1-201");
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "zone"));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "panel"));
    assert_string_equal(string_of(o, "text"), "");
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "detail")));
    assert_string_equal(string_of(o, "confirmed_by"), "li");
    assert_string_equal(string_of(o, "confirmed"), "2025-12-06T05:46:41.000Z");
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "cleared"));
    assert_no_duplicate_keys(o);
    cJSON_Delete(o);
}

/* ---- work orders ---- */

static struct gw_store_workorder sample_order(void)
{
    return (struct gw_store_workorder){
        .id = 12, .incident = 9, .category = "water", .unit = "1-102", .building = "1",
        .location = NULL, .description = "leak", .state = "dispatched", .severity = "major",
        .opened_ms = T0, .dispatched_ms = T0 + 1000, .arrive_due_ms = T0 + 61000,
        .resolve_due_ms = T0 + 3600000, .assignee = "wang", .updated_ms = T0 + 1000,
    };
}

static void workorder_record(void **state)
{
    (void)state;
    struct gw_store_workorder wo = sample_order();
    cJSON *o = gw_view_workorder(&wo, T0 + 2000);
    assert_int_equal((int)number_of(o, "id"), 12);
    assert_int_equal((int)number_of(o, "incident"), 9);
    assert_string_equal(string_of(o, "location"), "");
    assert_string_equal(string_of(o, "where"), "1-102");
    assert_string_equal(string_of(o, "arrive_due"), "2025-12-06T05:47:41.000Z");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "overdue")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "escalated")));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "rating"));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "history"));
    assert_no_duplicate_keys(o);
    cJSON_Delete(o);
    o = gw_view_workorder(&wo, T0 + 61000); /* not on site by arrive_due */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "overdue")));
    cJSON_Delete(o);
    wo.state = "completed";
    assert_false(gw_view_workorder_overdue(&wo, T0 + 9999999));
    wo.state = "on_site";
    wo.postponed_until_ms = T0 + 7200000;
    assert_int_equal(gw_view_workorder_resolve_due_ms(&wo), T0 + 7200000);
    assert_false(gw_view_workorder_overdue(&wo, T0 + 3600000));
    assert_true(gw_view_workorder_overdue(&wo, T0 + 7200000));
    assert_true(gw_view_workorder_closed("verified"));
    assert_true(gw_view_workorder_closed("cancelled"));
    assert_false(gw_view_workorder_closed("completed"));
}

static void workorder_with_history_from_the_store(void **state)
{
    struct fixture *f = *state;
    struct gw_store *store = NULL;
    char err[256];
    assert_int_equal(gw_store_open(f->dir, false, &store, err, sizeof err), EST_OK);
    struct gw_store_workorder wo = sample_order();
    wo.state = "open";
    wo.location = "kitchen";
    wo.unit = NULL;
    wo.incident = 0; /* no incident row to refer to */
    int64_t id = 0;
    assert_int_equal(gw_store_workorder_create(store, &wo, "alice", NULL, &id, NULL), EST_OK);
    struct gw_store_workorder next = wo;
    next.id = id;
    next.state = "dispatched";
    next.updated_ms = T0 + 5000;
    struct gw_store_wo_history h = {.workorder = id, .ts_ms = T0 + 5000, .action = "dispatch",
                                    .from_state = "open", .to_state = "dispatched",
                                    .who = "bob", .note = "go"};
    assert_int_equal(gw_store_workorder_update(store, &next, &h), EST_OK);

    cJSON *o = gw_view_workorder_get(store, id, T0 + 6000);
    assert_non_null(o);
    assert_string_equal(string_of(o, "state"), "dispatched");
    assert_string_equal(string_of(o, "where"), "kitchen");
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(o, "history");
    assert_int_equal(cJSON_GetArraySize(history), 2);
    const cJSON *first = cJSON_GetArrayItem(history, 0), *second = cJSON_GetArrayItem(history, 1);
    assert_string_equal(string_of(first, "action"), "create");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(first, "from")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(first, "note")));
    assert_string_equal(string_of(first, "who"), "alice");
    assert_string_equal(string_of(second, "from"), "open");
    assert_string_equal(string_of(second, "to"), "dispatched");
    assert_string_equal(string_of(second, "note"), "go");
    assert_no_duplicate_keys(o);
    cJSON_Delete(o);
    assert_null(gw_view_workorder_get(store, id + 100, T0));
    gw_store_close(store);
}

/* ---- patrol entries ---- */

static void patrol_entry_record(void **state)
{
    struct fixture *f = *state;
    char detail[96];
    snprintf(detail, sizeof detail, "{\"volume_m3\":0.5,\"meter\":%d}",
             meter_index(f->config, "W-1-102"));
    struct gw_store_patrol_entry e = {
        .seq = 5, .ts_ms = T0, .kind = "incident", .text = "Water flowing", .incident = 9,
        .workorder = 0, .author = "system", .detail_json = detail,
    };
    snprintf(e.hash, sizeof e.hash, "%s", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(e.prev_hash, sizeof e.prev_hash, "%064d", 0);
    cJSON *o = gw_view_patrol_entry(f->config, &e);
    assert_int_equal((int)number_of(o, "seq"), 5);
    assert_string_equal(string_of(o, "ts"), "2025-12-06T05:46:40.000Z");
    assert_int_equal((int)number_of(o, "incident"), 9);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "workorder"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "detail");
    assert_true(cJSON_IsObject(d));
    assert_string_equal(string_of(d, "meter"), "W-1-102");
    assert_string_equal(string_of(o, "hash12"), "0123456789ab");
    assert_string_equal(string_of(o, "hash"), e.hash);
    assert_string_equal(string_of(o, "prev_hash"), e.prev_hash);
    assert_no_duplicate_keys(o);
    cJSON_Delete(o);
    e.detail_json = NULL;
    e.kind = "checkin";
    o = gw_view_patrol_entry(NULL, &e);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "detail"));
    cJSON_Delete(o);
}

/* ---- meters ---- */

static void meter_record(void **state)
{
    (void)state;
    struct gw_store_meter m = {
        .rid = 1, .id = "W-1-101", .kind = "water", .category = "unit", .unit = "1-101",
        .building = "1", .driver = "xintai-water", .bus = "gw_a", .slave = 2, .serial = "1001",
        .valve = true, .install_ms = T0, .status = "ok", .last_good_ms = T0 + 1000,
        .last_values_json = "{\"volume_m3\":12.5,\"flow_m3h\":0}",
    };
    cJSON *o = gw_view_meter(&m);
    assert_string_equal(string_of(o, "id"), "W-1-101");
    assert_string_equal(string_of(o, "where"), "1-101");
    assert_string_equal(string_of(o, "status"), "ok");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "removed")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "valve")));
    assert_string_equal(string_of(o, "value"), "12.500 m3");
    assert_true(number_of(o, "volume_m3") == 12.5);
    assert_true(number_of(cJSON_GetObjectItemCaseSensitive(o, "values"), "flow_m3h") == 0);
    assert_string_equal(string_of(o, "installed"), "2025-12-06T05:46:40.000Z");
    assert_no_duplicate_keys(o);
    cJSON_Delete(o);
    m.removed = true;
    m.last_values_json = NULL;
    m.unit = NULL;
    m.location = "pump room";
    o = gw_view_meter(&m);
    assert_string_equal(string_of(o, "status"), "removed");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "removed")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "values")));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "value"));
    assert_string_equal(string_of(o, "where"), "pump room");
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duplicate_checker_finds_repeated_keys),
        cmocka_unit_test(setters_replace),
        cmocka_unit_test_setup_teardown(fire_zone_is_one_based_in_every_form, setup, teardown),
        cmocka_unit_test_setup_teardown(incident_state_names, setup, teardown),
        cmocka_unit_test_setup_teardown(incident_forms_differ_only_in_state, setup, teardown),
        cmocka_unit_test_setup_teardown(vacant_flow_names_its_unit_once, setup, teardown),
        cmocka_unit_test_setup_teardown(detail_meter_is_the_meter_id, setup, teardown),
        cmocka_unit_test_setup_teardown(incident_of_a_meter, setup, teardown),
        cmocka_unit_test(workorder_record),
        cmocka_unit_test_setup_teardown(workorder_with_history_from_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(patrol_entry_record, setup, teardown),
        cmocka_unit_test(meter_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
