/* test_gw_workorders.c - the work-order module (gateway/office/workorders.c)
 * on a real store in a temporary directory and the stub host of
 * office_stub.h (no core, no threads, no MQTT: events land in the store's
 * outbox). Covers every transition, refused
 * transitions (state, role, verification while the condition persists,
 * malformed arguments - which must change nothing), SLA breach and
 * escalation with a controllable clock, a restart in the middle of a
 * lifecycle, patrol check-ins and the shift handover. Texts are checked in
 * English (the fixture sets gateway.language=en) and, in
 * test_texts_follow_language, in Chinese. */
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
#include "workorders.h"

#define T0_MS INT64_C(1790000000000)

static int64_t fake_now_ms;

struct fixture {
    char dir[64];
    struct gw_config *config;
    struct office_stub host;
    struct rule_engine *rules;
};

/* ---- setup ---- */

static struct gw_config *load_demo_config(const char *data_dir)
{
    const char *src = getenv("ESTATE_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/etc/demo/estate-gw.conf", src ? src : ESTATE_SOURCE_DIR);
    char override[128];
    snprintf(override, sizeof override, "gateway.data_dir=%s", data_dir);
    const char *overrides[] = {override, "gateway.language=en"};
    struct gw_config *config = NULL;
    struct gw_config_errors errors = {0};
    if (gw_config_load(path, overrides, 2, &config, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return NULL;
    }
    return config;
}

static void on_rule_event(void *ctx, const struct rule_event *event) { (void)ctx; (void)event; }
static void on_rule_action(void *ctx, const struct rule_action *action) { (void)ctx; (void)action; }

/* A rule engine over the config's topology, reverse_energy raising and
 * clearing on the first sample so the test controls the condition. */
static struct rule_engine *build_rules(struct gw_config *c)
{
    struct rule_meter *meters = calloc(c->nmeters, sizeof *meters);
    bool *vacant = calloc(c->nunits, sizeof *vacant);
    uint16_t *zones = calloc(c->npanels + 1, sizeof *zones);
    for (size_t i = 0; i < c->nmeters; i++) {
        meters[i].kind = c->meters[i].kind == DRV_KIND_WATER ? RULE_METER_WATER : RULE_METER_ELECTRICITY;
        meters[i].category = (enum rule_category)c->meters[i].category;
        meters[i].unit = c->meters[i].unit;
        meters[i].parent = c->meters[i].parent;
        meters[i].rated_power_w = 10000;
        meters[i].resolution = 0.01;
        meters[i].quiet_start_min = meters[i].quiet_end_min = -1;
    }
    for (size_t i = 0; i < c->npanels; i++)
        zones[i] = c->panels[i].nzones;
    struct rule_config rc;
    rule_config_defaults(&rc);
    rc.reverse_energy.c.enabled = true;
    rc.reverse_energy.c.hold_s = 0;
    rc.reverse_energy.c.clear_s = 0;
    rc.reverse_energy.negative_power_hold_s = 0;
    struct rule_topology topo = {.nmeters = c->nmeters, .meters = meters, .nunits = c->nunits,
                                 .unit_vacant = vacant, .npanels = c->npanels, .panel_zones = zones};
    struct rule_engine *engine = NULL;
    assert_int_equal(rule_engine_create(&rc, &topo, on_rule_event, on_rule_action, NULL, &engine), EST_OK);
    free(meters);
    free(vacant);
    free(zones);
    return engine;
}

static void open_store(struct fixture *f)
{
    char err[256];
    assert_int_equal(gw_store_open(f->dir, false, &f->host.store, err, sizeof err), EST_OK);
    assert_int_equal(gw_store_sync_inventory(f->host.store, f->config, fake_now_ms, NULL), EST_OK);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_wo.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->config = load_demo_config(f->dir);
    assert_non_null(f->config);
    f->config->workorders.arrive_within_s = 600;
    f->config->workorders.resolve_within_s = 3600;
    f->config->workorders.unconfirmed_after_s = 600;
    fake_now_ms = T0_MS;
    f->rules = build_rules(f->config);
    f->host.config = f->config;
    f->host.rules = f->rules;
    f->host.clock_ms = &fake_now_ms;
    open_store(f);
    assert_int_equal(office_stub_start(&f->host), EST_OK);
    gw_workorders_sla_reset(f->host.office);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    office_stub_stop(&f->host);
    gw_store_close(f->host.store);
    rule_engine_destroy(f->rules);
    gw_config_free(f->config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static int64_t raise_incident(struct fixture *f, const char *rule, const char *subject_type,
                              const char *subject, const char *severity)
{
    struct gw_store_incident in = {
        .rule = rule, .subject_type = subject_type, .subject = subject, .zone = -1,
        .severity = severity, .since_ms = fake_now_ms, .raised_ms = fake_now_ms,
        .text = "E-1-102 runs backwards",
    };
    int64_t id = 0;
    assert_int_equal(gw_store_incident_open(f->host.store, &in, &id, NULL), EST_OK);
    in.id = id;
    in.open = true;
    gw_workorders_on_incident(f->host.office, &in, RULE_RAISED);
    return id;
}

/* Feeds one power sample to meter E-1-102: negative = running backwards. */
static void feed_power(struct fixture *f, double power_w)
{
    int m = gw_config_meter_index(f->config, "E-1-102");
    assert_true(m >= 0);
    struct rule_meter_sample s = {.meter = (uint32_t)m, .ts_ms = fake_now_ms, .ok = true,
                                  .has = RULE_HAS_POWER, .power_w = power_w};
    assert_int_equal(rule_engine_feed_meter(f->rules, &s), EST_OK);
    rule_engine_tick(f->rules, fake_now_ms);
}

/* Runs a command as role; returns the result (caller frees). */
static cJSON *run(struct fixture *f, const char *verb, const char *json, const char *user,
                  const char *role)
{
    cJSON *args = cJSON_Parse(json);
    struct gw_actor actor = {.user = user, .role = role, .origin = "mqtt"};
    cJSON *result;
    if (strcmp(verb, "workorder") == 0)
        result = gw_workorders_command(f->host.office, args, &actor);
    else if (strcmp(verb, "patrol-checkin") == 0)
        result = gw_patrol_checkin_command(f->host.office, args, &actor);
    else
        result = gw_handover_command(f->host.office, args, &actor);
    cJSON_Delete(args);
    assert_non_null(result);
    return result;
}

static bool result_ok(const cJSON *result)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
}

static const char *result_error(const cJSON *result)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(result, "error");
    return cJSON_IsString(e) ? e->valuestring : "";
}

static void expect_ok(struct fixture *f, const char *verb, const char *json, const char *user,
                      const char *role)
{
    cJSON *r = run(f, verb, json, user, role);
    if (!result_ok(r))
        fail_msg("%s %s refused: %s", verb, json, result_error(r));
    cJSON_Delete(r);
}

/* Expects a refusal whose error contains needle. */
static void expect_refused(struct fixture *f, const char *verb, const char *json, const char *role,
                           const char *needle)
{
    cJSON *r = run(f, verb, json, "tester", role);
    if (result_ok(r))
        fail_msg("%s %s accepted, expected a refusal", verb, json);
    if (strstr(result_error(r), needle) == NULL)
        fail_msg("%s %s: error \"%s\" lacks \"%s\"", verb, json, result_error(r), needle);
    cJSON_Delete(r);
}

static char *order_state(struct fixture *f, int64_t id)
{
    cJSON *o = gw_view_workorder_get(f->host.store, id, fake_now_ms);
    assert_non_null(o);
    char *state = strdup(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring);
    cJSON_Delete(o);
    return state;
}

static void assert_state(struct fixture *f, int64_t id, const char *expected)
{
    char *state = order_state(f, id);
    assert_string_equal(state, expected);
    free(state);
}

static bool count_order(void *ctx, const struct gw_store_workorder *wo)
{
    (void)wo;
    (*(int *)ctx)++;
    return true;
}

static int order_count(struct fixture *f)
{
    int n = 0;
    assert_int_equal(gw_store_workorders_list(f->host.store, NULL, 0, count_order, &n), EST_OK);
    return n;
}

/* Everything a command could change, as one string to compare. */
static char *store_fingerprint(struct fixture *f)
{
    int64_t seq = 0;
    char hash[GW_STORE_HASH_LEN];
    assert_int_equal(gw_store_patrol_head(f->host.store, &seq, hash), EST_OK);
    struct gw_store_outbox_counts counts;
    assert_int_equal(gw_store_outbox_counts(f->host.store, &counts), EST_OK);
    cJSON *all = cJSON_CreateArray();
    for (int64_t id = 1; id <= 10; id++) {
        cJSON *o = gw_view_workorder_get(f->host.store, id, fake_now_ms);
        if (o != NULL)
            cJSON_AddItemToArray(all, o);
    }
    char *orders = cJSON_PrintUnformatted(all);
    cJSON_Delete(all);
    size_t len = strlen(orders) + 200;
    char *out = malloc(len);
    snprintf(out, len, "%lld|%s|%llu|%s", (long long)seq, hash, (unsigned long long)counts.events,
             orders);
    free(orders);
    return out;
}

struct outbox_search {
    const char *topic_suffix;
    int count;
    char last_payload[4096];
};

static bool find_topic(void *ctx, const struct gw_store_outbox_msg *msg)
{
    struct outbox_search *s = ctx;
    size_t tl = strlen(msg->topic), sl = strlen(s->topic_suffix);
    if (tl >= sl && strcmp(msg->topic + tl - sl, s->topic_suffix) == 0) {
        s->count++;
        size_t n = msg->payload_len < sizeof s->last_payload - 1 ? msg->payload_len
                                                                 : sizeof s->last_payload - 1;
        memcpy(s->last_payload, msg->payload, n);
        s->last_payload[n] = '\0';
    }
    return true;
}

static int outbox_count(struct fixture *f, const char *suffix, char **last)
{
    struct outbox_search s = {.topic_suffix = suffix};
    assert_int_equal(gw_store_outbox_peek(f->host.store, 0, 0, find_topic, &s), EST_OK);
    if (last != NULL)
        *last = strdup(s.last_payload);
    return s.count;
}

struct patrol_count {
    const char *kind;
    int count;
};

static bool count_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_count *p = ctx;
    if (p->kind == NULL || strcmp(p->kind, e->kind) == 0)
        p->count++;
    return true;
}

static int patrol_count(struct fixture *f, const char *kind)
{
    struct patrol_count p = {.kind = kind};
    assert_int_equal(gw_store_patrol_list(f->host.store, 0, 0, count_patrol, &p), EST_OK);
    return p.count;
}

static int history_count(struct fixture *f, int64_t id, const char *action)
{
    cJSON *o = gw_view_workorder_get(f->host.store, id, fake_now_ms);
    assert_non_null(o);
    int n = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(o, "history"))
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(h, "action");
        if (action == NULL || strcmp(a->valuestring, action) == 0)
            n++;
    }
    cJSON_Delete(o);
    return n;
}

/* ---- tests ---- */

static void test_major_incident_opens_one_order(void **state)
{
    struct fixture *f = *state;
    int64_t incident = raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    assert_int_equal(order_count(f), 1);
    cJSON *o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "open");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "category")->valuestring, "electricity");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "unit")->valuestring, "1-102");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "incident")->valueint, incident);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "escalated")));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "resolve_due"));
    cJSON_Delete(o);
    assert_int_equal(patrol_count(f, "workorder"), 1);
    assert_int_equal(outbox_count(f, "/workorders/1", NULL), 1);

    /* the same incident again, an update and a minor incident: no new order */
    struct gw_store_incident in = {.id = incident, .rule = "reverse_energy", .subject_type = "meter",
                                   .subject = "E-1-102", .zone = -1, .severity = "major",
                                   .open = true, .text = "still"};
    gw_workorders_on_incident(f->host.office, &in, RULE_RAISED);
    gw_workorders_on_incident(f->host.office, &in, RULE_UPDATED);
    gw_workorders_on_incident(f->host.office, &in, RULE_UPDATED); /* rate-limited */
    raise_incident(f, "meter_offline", "meter", "E-OFFICE", "minor");
    assert_int_equal(order_count(f), 1);
    assert_int_equal(history_count(f, 1, "incident_update"), 1);

    /* water rule on a unit meter and a fire zone: categories by rule */
    raise_incident(f, "vacant_flow", "meter", "W-1-102", "critical");
    assert_int_equal(order_count(f), 2);
    cJSON *w = gw_view_workorder_get(f->host.store, 2, fake_now_ms);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(w, "category")->valuestring, "water");
    cJSON_Delete(w);
}

/* battery_low is minor but maintenance: an order when the rule says so. */
static void test_battery_low_opens_a_maintenance_order(void **state)
{
    struct fixture *f = *state;
    f->config->rules.battery_low.open_workorder = false;
    raise_incident(f, "battery_low", "meter", "W-3-201", "minor");
    assert_int_equal(order_count(f), 0);
    f->config->rules.battery_low.open_workorder = true;
    int64_t incident = raise_incident(f, "battery_low", "meter", "W-3-202", "minor");
    assert_int_equal(order_count(f), 1);
    cJSON *o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    assert_non_null(o);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "incident")->valueint, incident);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "severity")->valuestring, "minor");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "category")->valuestring, "water");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "unit")->valuestring, "3-202");
    cJSON_Delete(o);
    /* other minor incidents still open none */
    raise_incident(f, "meter_offline", "meter", "E-3-101", "minor");
    assert_int_equal(order_count(f), 1);
}

static void test_recurring_condition_links_to_open_order(void **state)
{
    struct fixture *f = *state;
    int64_t first = raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    assert_int_equal(gw_store_incident_clear(f->host.store, first, fake_now_ms + 1000), EST_OK);
    struct gw_store_incident in = {.id = first, .rule = "reverse_energy", .subject_type = "meter",
                                   .subject = "E-1-102", .zone = -1, .severity = "major"};
    gw_workorders_on_incident(f->host.office, &in, RULE_CLEARED);
    assert_int_equal(history_count(f, 1, "incident_cleared"), 1);
    fake_now_ms += 60000;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    assert_int_equal(order_count(f), 1);
    assert_int_equal(history_count(f, 1, "link"), 1);
}

static void test_full_lifecycle(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    feed_power(f, -800);
    expect_ok(f, "workorder", "{\"request_id\":\"a\",\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}",
              "desk", "frontdesk");
    assert_state(f, 1, "dispatched");
    fake_now_ms += 60000;
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"arrive\"}", "li", "engineer");
    assert_state(f, 1, "on_site");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"note\",\"note\":\"meter wired backwards\"}",
              "li", "engineer");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"complete\",\"note\":\"rewired L/N\"}", "li",
              "engineer");
    assert_state(f, 1, "completed");

    /* the meter still runs backwards: verification refused */
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"Wang\"}",
                   "supervisor", "still show the condition");
    assert_state(f, 1, "completed");
    feed_power(f, 500);
    fake_now_ms += 1000;
    feed_power(f, 500);
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"verify\"}", "supervisor", "verifier");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"Wang\"}", "wang",
              "supervisor");
    assert_state(f, 1, "verified");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"rating\",\"rating\":5,\"comment\":\"quick\"}",
              "desk", "frontdesk");

    cJSON *o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "verifier")->valuestring, "Wang");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "assignee")->valuestring, "engineer");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "rating")->valueint, 5);
    const char *expected[] = {"create", "dispatch", "arrive", "note", "complete", "verify", "rating"};
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "history");
    assert_int_equal(cJSON_GetArraySize(h), 7);
    for (int i = 0; i < 7; i++) {
        const cJSON *e = cJSON_GetArrayItem(h, i);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "action")->valuestring, expected[i]);
        assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "ts"));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "who"));
    }
    const cJSON *arrive = cJSON_GetArrayItem(h, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(arrive, "from")->valuestring, "dispatched");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(arrive, "to")->valuestring, "on_site");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(arrive, "who")->valuestring, "li");
    cJSON_Delete(o);
    /* create, dispatch, arrive, complete, verify, rating (not the note) */
    assert_int_equal(patrol_count(f, "workorder"), 6);
    /* closed orders refuse further transitions */
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"cancel\",\"note\":\"x\"}", "supervisor",
                   "is verified");
    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(f->host.store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
}

static void test_refused_transitions_change_nothing(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    char *before = store_fingerprint(f);
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"arrive\"}", "engineer", "is open");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"complete\",\"note\":\"x\"}", "engineer",
                   "is open");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"x\"}",
                   "supervisor", "is open");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"rating\",\"rating\":3}", "supervisor",
                   "is open");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}",
                   "engineer", "role engineer may not dispatch");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"x\"}",
                   "frontdesk", "role frontdesk may not verify");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"note\",\"note\":\"x\"}", "viewer",
                   "role viewer may not");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"postpone\",\"until\":\"2030-01-01T00:00:00Z\"}",
                   "frontdesk", "role frontdesk may not postpone");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"close\",\"note\":\"x\"}", "frontdesk",
                   "may not close");
    /* malformed */
    expect_refused(f, "workorder", "{\"id\":1}", "supervisor", "action");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"explode\"}", "supervisor", "unknown action");
    expect_refused(f, "workorder", "{\"action\":\"arrive\"}", "supervisor", "id is required");
    expect_refused(f, "workorder", "{\"id\":\"1\",\"action\":\"arrive\"}", "supervisor", "id must be");
    expect_refused(f, "workorder", "{\"id\":1.5,\"action\":\"arrive\"}", "supervisor", "id must be");
    expect_refused(f, "workorder", "{\"id\":99,\"action\":\"arrive\"}", "supervisor", "no work order 99");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"dispatch\"}", "supervisor", "assignee");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":7}", "supervisor",
                   "assignee must be a string");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"cancel\"}", "supervisor", "reason");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"note\",\"evil\":1}", "supervisor",
                   "unknown argument 'evil'");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"postpone\",\"until\":\"tomorrow\"}",
                   "supervisor", "RFC 3339");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"postpone\",\"until\":\"2000-01-01T00:00:00Z\"}",
                   "supervisor", "future");
    expect_refused(f, "workorder", "{\"id\":1,\"action\":\"rating\",\"rating\":9}", "supervisor",
                   "rating must be");
    char longnote[2100];
    memset(longnote, 'x', 2050);
    longnote[2050] = '\0';
    char json[2300];
    snprintf(json, sizeof json, "{\"id\":1,\"action\":\"note\",\"note\":\"%s\"}", longnote);
    expect_refused(f, "workorder", json, "supervisor", "too long");
    cJSON *r = gw_workorders_command(f->host.office, NULL, &(struct gw_actor){"x", "supervisor", "mqtt"});
    assert_false(result_ok(r));
    cJSON_Delete(r);
    expect_refused(f, "workorder", "{\"action\":\"create\",\"category\":\"plumbing\",\"description\":\"x\",\"unit\":\"1-101\"}",
                   "frontdesk", "category must be");
    expect_refused(f, "workorder", "{\"action\":\"create\",\"category\":\"water\",\"description\":\"x\",\"unit\":\"9-999\"}",
                   "frontdesk", "unknown unit");
    expect_refused(f, "patrol-checkin", "{\"location\":\"B1\",\"text\":\"ok\",\"incident\":42}",
                   "engineer", "no incident 42");
    expect_refused(f, "patrol-checkin", "{\"text\":\"ok\"}", "engineer", "location");
    expect_refused(f, "patrol-checkin", "{\"location\":\"B1\",\"text\":\"ok\"}", "viewer", "role viewer");
    expect_refused(f, "handover", "{\"from\":\"a\"}", "frontdesk", "to must");
    char *after = store_fingerprint(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_cancel_close_postpone(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    raise_incident(f, "vacant_flow", "meter", "W-1-102", "major");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"cancel\",\"note\":\"false alarm\"}", "desk",
              "frontdesk");
    assert_state(f, 1, "cancelled");
    /* a cancelled order: the incident may open a new one */
    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    /* the assignee is one of the engineers of the users file */
    expect_refused(f, "workorder", "{\"id\":2,\"action\":\"dispatch\",\"assignee\":\"nobody-such\"}",
                   "frontdesk", "nobody-such is not an engineer");
    expect_refused(f, "workorder", "{\"id\":2,\"action\":\"dispatch\",\"assignee\":\"viewer\"}",
                   "frontdesk", "viewer is not an engineer");
    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"arrive\"}", "zhao", "engineer");
    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"complete\",\"note\":\"valve replaced\"}", "zhao",
              "engineer");
    expect_refused(f, "workorder", "{\"id\":2,\"action\":\"cancel\",\"note\":\"x\"}", "frontdesk",
                   "is completed");
    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"close\",\"note\":\"owner refuses access\"}",
              "wang", "supervisor");
    assert_state(f, 2, "cancelled");

    expect_ok(f, "workorder",
              "{\"action\":\"create\",\"category\":\"doors_windows\",\"description\":\"door stuck\","
              "\"location\":\"1号楼大堂 lobby\"}",
              "desk", "frontdesk");
    assert_state(f, 3, "open");
    cJSON *r = run(f, "workorder",
                   "{\"action\":\"create\",\"category\":\"doors_windows\",\"description\":\"door "
                   "still stuck\",\"location\":\"1号楼大堂 lobby\"}",
                   "desk2", "frontdesk");
    assert_true(result_ok(r));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "merged")));
    cJSON_Delete(r);
    assert_int_equal(order_count(f), 3);
    assert_int_equal(history_count(f, 3, "merge"), 1);

    expect_ok(f, "workorder", "{\"id\":3,\"action\":\"postpone\",\"until\":\"2030-10-01T00:00:00Z\",\"note\":\"parts\"}",
              "wang", "supervisor");
    cJSON *o = gw_view_workorder_get(f->host.store, 3, fake_now_ms);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "resolve_due")->valuestring,
                        "2030-10-01T00:00:00.000Z");
    cJSON_Delete(o);
    /* a frontdesk role with postpone rights would still need a supervisor past the deadline */
    assert_int_equal(history_count(f, 3, "postpone"), 1);
}

static void test_sla_escalation(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    int64_t dispatched = fake_now_ms;
    fake_now_ms = dispatched + 599 * 1000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 0);
    fake_now_ms = dispatched + 601 * 1000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 1);
    char *payload = NULL;
    assert_int_equal(outbox_count(f, "/escalations", &payload), 1);
    cJSON *e = cJSON_Parse(payload);
    free(payload);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring, "arrival");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "workorder")->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "roles")), 1);
    cJSON_Delete(e);
    cJSON *o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "escalated")));
    cJSON_Delete(o);
    int patrols = patrol_count(f, "workorder");

    /* once per kind, even when the schedule is forced */
    for (int i = 0; i < 5; i++) {
        fake_now_ms += 20000;
        gw_workorders_sla_reset(f->host.office);
        gw_workorders_tick(f->host.office, fake_now_ms);
    }
    assert_int_equal(history_count(f, 1, "escalate"), 1);
    assert_int_equal(patrol_count(f, "workorder"), patrols);

    /* resolution deadline: one hour after opening */
    fake_now_ms = T0_MS + 3601 * 1000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 2);
    assert_int_equal(outbox_count(f, "/escalations", &payload), 2);
    assert_non_null(strstr(payload, "\"resolution\""));
    free(payload);
    fake_now_ms += 3600 * 1000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 2);

    /* a postponement re-arms the resolution timer */
    char json[160];
    char until[EST_TS_LEN];
    est_format_ts(fake_now_ms + 600000, until);
    snprintf(json, sizeof json, "{\"id\":1,\"action\":\"postpone\",\"until\":\"%s\"}", until);
    expect_ok(f, "workorder", json, "wang", "supervisor");
    fake_now_ms += 300000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 2);
    fake_now_ms += 301000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 3);
}

static void test_sla_tick_is_cheap_but_timely(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    f->config->workorders.arrive_within_s = 3;
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    gw_workorders_tick(f->host.office, fake_now_ms); /* schedules the next check at the deadline */
    for (int s = 1; s <= 4; s++) {
        fake_now_ms += 1000;
        gw_workorders_tick(f->host.office, fake_now_ms);
    }
    assert_int_equal(history_count(f, 1, "escalate"), 1);
}

static void test_restart_mid_lifecycle(void **state)
{
    struct fixture *f = *state;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"arrive\"}", "li", "engineer");
    assert_int_equal(gw_store_close(f->host.store), EST_OK);
    f->host.store = NULL;
    fake_now_ms += 3600 * 1000 * 2;
    open_store(f);
    assert_int_equal(office_stub_start(&f->host), EST_OK); /* the restarted daemon's office */
    gw_workorders_sla_reset(f->host.office);
    assert_state(f, 1, "on_site");
    /* the resolution deadline passed while down: escalated once after restart */
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 1);
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"complete\",\"note\":\"fixed\"}", "li", "engineer");
    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"verify\",\"verifier\":\"Wang\"}", "wang", "supervisor");
    assert_state(f, 1, "verified");
    /* the same incident raised again after the restart does not duplicate */
    assert_int_equal(order_count(f), 1);
    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(f->host.store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
}

struct confirmed {
    char by[64];
    char disputed_by[64];
};

static bool read_confirmation(void *ctx, const struct gw_store_incident *in)
{
    struct confirmed *c = ctx;
    snprintf(c->by, sizeof c->by, "%s", in->confirmed_by ? in->confirmed_by : "");
    snprintf(c->disputed_by, sizeof c->disputed_by, "%s", in->disputed_by ? in->disputed_by : "");
    return false;
}

static void test_checkin_and_handover(void **state)
{
    struct fixture *f = *state;
    int64_t a = raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    int64_t b = raise_incident(f, "vacant_flow", "meter", "W-1-102", "major");
    assert_int_equal(gw_store_set_meter_status(f->host.store, "E-OFFICE", GW_STORE_METER_OFFLINE), EST_OK);
    expect_ok(f, "patrol-checkin", "{\"location\":\"1-102\",\"found\":\"meter display shows -0.8 kW\","
              "\"incident\":1,\"verdict\":\"confirm\"}", "zhang", "engineer");
    expect_ok(f, "patrol-checkin", "{\"location\":\"pump room\",\"text\":\"all normal\"}", "zhang",
              "engineer");
    struct confirmed c = {0};
    assert_int_equal(gw_store_incident_get(f->host.store, a, read_confirmation, &c), EST_OK);
    assert_string_equal(c.by, "zhang");
    assert_int_equal(history_count(f, 1, "confirm"), 1);
    assert_int_equal(patrol_count(f, "checkin"), 2);

    expect_ok(f, "workorder", "{\"id\":2,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk", "frontdesk");
    fake_now_ms += 700 * 1000; /* past arrival (600 s) and unconfirmed (600 s) */
    cJSON *r = run(f, "handover", "{\"from\":\"Zhang\",\"to\":\"Zhou\",\"note\":\"pump noisy\"}",
                   "zhang", "frontdesk");
    assert_true(result_ok(r));
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "handover");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(s, "counts");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(counts, "open_incidents")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(counts, "open_workorders")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(counts, "overdue_workorders")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(counts, "unconfirmed_incidents")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(counts, "meters_offline")->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "unconfirmed_incidents"), 0)->valueint, b);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(r, "text")->valuestring,
                           "Zhang hands over to Zhou: 2 open incidents"));
    cJSON_Delete(r);
    assert_int_equal(patrol_count(f, "handover"), 1);

    expect_ok(f, "patrol-checkin", "{\"location\":\"1-102\",\"found\":\"meter fine\","
              "\"incident\":2,\"verdict\":\"dispute\"}", "zhou", "engineer");
    memset(&c, 0, sizeof c);
    assert_int_equal(gw_store_incident_get(f->host.store, b, read_confirmation, &c), EST_OK);
    assert_string_equal(c.disputed_by, "zhou");
}

/* The last patrol-log text of a kind (caller frees). */
struct last_patrol {
    const char *kind;
    char *text;
};

static bool keep_last_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct last_patrol *p = ctx;
    if (strcmp(p->kind, e->kind) == 0) {
        free(p->text);
        p->text = strdup(e->text);
    }
    return true;
}

static char *last_patrol_text(struct fixture *f, const char *kind)
{
    struct last_patrol p = {.kind = kind};
    assert_int_equal(gw_store_patrol_list(f->host.store, 0, 0, keep_last_patrol, &p), EST_OK);
    assert_non_null(p.text);
    return p.text;
}

static void assert_patrol_has(struct fixture *f, const char *kind, const char *needle)
{
    char *text = last_patrol_text(f, kind);
    if (strstr(text, needle) == NULL)
        fail_msg("%s patrol text \"%s\" lacks \"%s\"", kind, text, needle);
    free(text);
}

/* The last history note of an action on order id (caller frees). */
static char *last_note(struct fixture *f, int64_t id, const char *action)
{
    cJSON *o = gw_view_workorder_get(f->host.store, id, fake_now_ms);
    assert_non_null(o);
    char *note = NULL;
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(o, "history"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(h, "note");
        if (strcmp(cJSON_GetObjectItemCaseSensitive(h, "action")->valuestring, action) == 0 &&
            cJSON_IsString(n)) {
            free(note);
            note = strdup(n->valuestring);
        }
    }
    cJSON_Delete(o);
    assert_non_null(note);
    return note;
}

static void assert_note_has(struct fixture *f, int64_t id, const char *action, const char *needle)
{
    char *note = last_note(f, id, action);
    if (strstr(note, needle) == NULL)
        fail_msg("%s note \"%s\" lacks \"%s\"", action, note, needle);
    free(note);
}

static void test_texts_follow_language(void **state)
{
    struct fixture *f = *state;
    f->config->gateway.language = GW_LANG_ZH_CN;
    raise_incident(f, "reverse_energy", "meter", "E-1-102", "major");
    assert_note_has(f, 1, "create", "自动为事件 #1（reverse_energy）开单");
    assert_patrol_has(f, "workorder", "工单 #1（电，");
    assert_patrol_has(f, "workorder", "system 开单（待派单）");

    expect_ok(f, "workorder", "{\"id\":1,\"action\":\"dispatch\",\"assignee\":\"engineer\"}", "desk",
              "frontdesk");
    assert_note_has(f, 1, "dispatch", "派给 engineer");
    assert_patrol_has(f, "workorder", "desk 派单（待派单 → 已派单）：派给 engineer");
    assert_state(f, 1, "dispatched"); /* machine names stay */

    /* arrival escalation in Chinese, recognised as escalated in either language */
    fake_now_ms += 601 * 1000;
    gw_workorders_tick(f->host.office, fake_now_ms);
    assert_int_equal(history_count(f, 1, "escalate"), 1);
    assert_note_has(f, 1, "escalate", "到场超时（应于 ");
    assert_note_has(f, 1, "escalate", "+08:00 前到场）"); /* site time (Asia/Shanghai) */
    assert_patrol_has(f, "workorder", "system 超时升级：到场超时");
    f->config->gateway.language = GW_LANG_EN;
    gw_workorders_sla_reset(f->host.office);
    gw_workorders_tick(f->host.office, fake_now_ms + 20000);
    assert_int_equal(history_count(f, 1, "escalate"), 1);
    f->config->gateway.language = GW_LANG_ZH_CN;

    expect_ok(f, "patrol-checkin", "{\"location\":\"1-102\",\"found\":\"电表倒转\","
              "\"incident\":1,\"verdict\":\"confirm\"}", "zhang", "engineer");
    assert_patrol_has(f, "checkin", "巡查 zhang 在 1-102 确认事件 #1：电表倒转");
    expect_ok(f, "patrol-checkin", "{\"location\":\"泵房\",\"text\":\"一切正常\"}", "zhang",
              "engineer");
    assert_patrol_has(f, "checkin", "巡查 zhang 在 泵房：一切正常");

    cJSON *r = run(f, "handover", "{\"from\":\"Zhang\",\"to\":\"Zhou\"}", "zhang", "frontdesk");
    assert_true(result_ok(r));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "text")->valuestring,
                        "Zhang 交班给 Zhou：未关闭事件 1 起（0 起未经巡查确认），"
                        "未关闭工单 1 张（超时 1 张），离线表计 0 个");
    cJSON_Delete(r);
    /* the helper writes either language */
    cJSON *summary = gw_handover_summary(f->host.office, fake_now_ms);
    char *text = gw_handover_text(summary, "A", "B", false);
    assert_non_null(strstr(text, "A hands over to B: 1 open incidents"));
    free(text);
    text = gw_handover_text(summary, "A", "B", true);
    assert_non_null(strstr(text, "A 交班给 B：未关闭事件 1 起"));
    free(text);
    cJSON_Delete(summary);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_major_incident_opens_one_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_battery_low_opens_a_maintenance_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recurring_condition_links_to_open_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_transitions_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_close_postpone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sla_escalation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sla_tick_is_cheap_but_timely, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_mid_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkin_and_handover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_texts_follow_language, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
