/* test_gw_office_incidents.c - the office's incident part (gateway/office/
 * incidents.c) through office.h only, on a real store and the stub host of
 * office_stub.h; linked with the office library alone (no pipeline, no
 * core). Covers: a raised rule event is stored, published on alerts and
 * alerts/active/<id>, written to the patrol log, reported to the host as a
 * meter event and reaches the work orders through the subscriber list (an
 * order is opened before later subscribers hear of it); a clear empties the
 * retained alert and notes the order; the rule engine's valve action goes
 * to the host; a restart resumes open incidents into the rule engine. */
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
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_office_inc.XXXXXX");
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

static uint32_t meter_index(struct fixture *f, const char *id)
{
    int m = gw_config_meter_index(f->host.config, id);
    assert_true(m >= 0);
    return (uint32_t)m;
}

static struct rule_event reverse_energy(struct fixture *f, enum rule_transition transition)
{
    struct rule_event e = {
        .rule = RULE_REVERSE_ENERGY, .transition = transition,
        .subject = {.type = RULE_SUBJECT_METER, .index = meter_index(f, "E-1-102"), .zone = -1},
        .severity = RULE_SEV_MAJOR, .ts_ms = now_ms, .since_ms = T0_MS,
        .reason = "negative_power", .ndetail = 1, .detail = {{"power_w", -850}},
    };
    return e;
}

struct open_incidents {
    int count;
    int64_t id;
    char rule[48], subject[64], severity[16];
};

static bool count_open(void *ctx, const struct gw_store_incident *in)
{
    struct open_incidents *o = ctx;
    o->count++;
    o->id = in->id;
    snprintf(o->rule, sizeof o->rule, "%s", in->rule);
    snprintf(o->subject, sizeof o->subject, "%s", in->subject);
    snprintf(o->severity, sizeof o->severity, "%s", in->severity);
    return true;
}

struct outbox_search {
    const char *suffix;
    int count;
    char last[4096];
};

static bool find_topic(void *ctx, const struct gw_store_outbox_msg *msg)
{
    struct outbox_search *s = ctx;
    size_t tl = strlen(msg->topic), sl = strlen(s->suffix);
    if (tl >= sl && strcmp(msg->topic + tl - sl, s->suffix) == 0) {
        s->count++;
        size_t n = msg->payload_len < sizeof s->last - 1 ? msg->payload_len : sizeof s->last - 1;
        if (n > 0) /* an empty retained payload (a clear) may have no buffer */
            memcpy(s->last, msg->payload, n);
        s->last[n] = '\0';
    }
    return true;
}

/* How many events went out on topics ending in suffix; *last = the last payload. */
static int published(struct fixture *f, const char *suffix, char *last, size_t len)
{
    struct outbox_search s = {.suffix = suffix};
    assert_int_equal(gw_store_outbox_peek(f->host.store, 0, 0, find_topic, &s), EST_OK);
    if (last != NULL)
        snprintf(last, len, "%s", s.last);
    return s.count;
}

struct patrol_search {
    const char *kind;
    int count;
    int64_t incident;
    char text[512];
};

static bool find_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_search *s = ctx;
    if (strcmp(e->kind, s->kind) == 0) {
        s->count++;
        s->incident = e->incident;
        snprintf(s->text, sizeof s->text, "%s", e->text);
    }
    return true;
}

static struct patrol_search patrol(struct fixture *f, const char *kind)
{
    struct patrol_search s = {.kind = kind};
    assert_int_equal(gw_store_patrol_list(f->host.store, 0, 1000, find_patrol, &s), EST_OK);
    return s;
}

/* A later subscriber: records what it hears and whether the work order of
 * the incident existed by then (the work orders subscribe first). */
struct listener {
    int calls;
    enum rule_transition last;
    int64_t incident;
    bool order_existed;
    struct gw_store *store;
};

static void listen_incidents(void *ctx, const struct gw_store_incident *in,
                             enum rule_transition transition)
{
    struct listener *l = ctx;
    l->calls++;
    l->last = transition;
    l->incident = in->id;
    int64_t order = 0;
    l->order_existed = gw_store_workorder_for_incident(l->store, in->id, &order) == EST_OK && order > 0;
}

/* ---- tests ---- */

static void test_raise_is_stored_published_logged_and_opens_an_order(void **state)
{
    struct fixture *f = *state;
    struct listener l = {.store = f->host.store};
    assert_int_equal(gw_office_subscribe_incidents(f->host.office, listen_incidents, &l), EST_OK);

    struct rule_event e = reverse_energy(f, RULE_RAISED);
    gw_office_on_rule_event(f->host.office, &e);

    struct open_incidents open = {0};
    assert_int_equal(gw_store_incidents_open(f->host.store, count_open, &open), EST_OK);
    assert_int_equal(open.count, 1);
    assert_string_equal(open.rule, "reverse_energy");
    assert_string_equal(open.subject, "E-1-102");
    assert_string_equal(open.severity, "major");

    char payload[4096];
    assert_int_equal(published(f, "/alerts", payload, sizeof payload), 1);
    cJSON *alert = cJSON_Parse(payload);
    assert_non_null(alert);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(alert, "state")->valuestring, "raised");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(alert, "meter")->valuestring, "E-1-102");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(alert, "id")->valuedouble, (int)open.id);
    cJSON_Delete(alert);
    char active[64];
    snprintf(active, sizeof active, "/alerts/active/%lld", (long long)open.id);
    assert_int_equal(published(f, active, payload, sizeof payload), 1);
    /* the retained message is the stored incident (views.h): "active" */
    assert_non_null(strstr(payload, "\"state\":\"active\""));

    struct patrol_search p = patrol(f, "incident");
    assert_int_equal(p.count, 1);
    assert_int_equal(p.incident, open.id);
    assert_int_equal(f->host.meter_events, 1);

    /* the work-order part heard it through its subscription: one open order */
    cJSON *order = gw_view_workorder_get(f->host.store, 1, now_ms);
    assert_non_null(order);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(order, "incident")->valuedouble, (int)open.id);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(order, "state")->valuestring, "open");
    cJSON_Delete(order);
    assert_int_equal(published(f, "/workorders/1", NULL, 0), 1);
    assert_int_equal(patrol(f, "workorder").count, 1);

    /* and the later subscriber after it, with the order already there */
    assert_int_equal(l.calls, 1);
    assert_int_equal(l.last, RULE_RAISED);
    assert_int_equal(l.incident, open.id);
    assert_true(l.order_existed);
}

static void test_clear_empties_the_retained_alert_and_notes_the_order(void **state)
{
    struct fixture *f = *state;
    struct listener l = {.store = f->host.store};
    assert_int_equal(gw_office_subscribe_incidents(f->host.office, listen_incidents, &l), EST_OK);
    struct rule_event e = reverse_energy(f, RULE_RAISED);
    gw_office_on_rule_event(f->host.office, &e);
    now_ms += 60000;
    e = reverse_energy(f, RULE_CLEARED);
    gw_office_on_rule_event(f->host.office, &e);

    struct open_incidents open = {0};
    assert_int_equal(gw_store_incidents_open(f->host.store, count_open, &open), EST_OK);
    assert_int_equal(open.count, 0);
    char payload[4096];
    assert_int_equal(published(f, "/alerts", payload, sizeof payload), 2);
    assert_non_null(strstr(payload, "\"state\":\"cleared\""));
    assert_int_equal(published(f, "/alerts/active/1", payload, sizeof payload), 2);
    assert_string_equal(payload, ""); /* the retained alert is cleared */
    struct patrol_search p = patrol(f, "incident");
    assert_int_equal(p.count, 2);
    assert_non_null(strstr(p.text, " (cleared)"));
    assert_int_equal(l.calls, 2);
    assert_int_equal(l.last, RULE_CLEARED);

    cJSON *order = gw_view_workorder_get(f->host.store, 1, now_ms);
    assert_non_null(order);
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(order, "history");
    const cJSON *last = cJSON_GetArrayItem(history, cJSON_GetArraySize(history) - 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(last, "action")->valuestring,
                        "incident_cleared");
    cJSON_Delete(order);
}

static void test_minor_incident_opens_no_order(void **state)
{
    struct fixture *f = *state;
    struct rule_event e = reverse_energy(f, RULE_RAISED);
    e.severity = RULE_SEV_MINOR;
    gw_office_on_rule_event(f->host.office, &e);
    struct open_incidents open = {0};
    assert_int_equal(gw_store_incidents_open(f->host.store, count_open, &open), EST_OK);
    assert_int_equal(open.count, 1);
    assert_null(gw_view_workorder_get(f->host.store, 1, now_ms));
}

static void test_valve_action_goes_to_the_host(void **state)
{
    struct fixture *f = *state;
    struct rule_action a = {.type = RULE_ACTION_CLOSE_VALVE, .meter = meter_index(f, "W-1-102"),
                            .ts_ms = now_ms};
    gw_office_on_rule_action(f->host.office, &a);
    assert_int_equal(f->host.valve_requests, 1);
    assert_int_equal(f->host.last_valve_meter, a.meter);
    assert_true(f->host.last_valve_close);
    struct patrol_search p = patrol(f, "valve");
    assert_int_equal(p.count, 1);
    assert_string_equal(p.text, "rule:vacant_flow asked to close the valve of water meter W-1-102");

    struct gw_sample result = {.item = GW_ITEM_VALVE_RESULT, .index = a.meter, .error = EST_OK,
                               .valve_close = true};
    snprintf(result.requested_by, sizeof result.requested_by, "rule:vacant_flow");
    gw_office_on_valve_result(f->host.office, &result);
    p = patrol(f, "valve");
    assert_int_equal(p.count, 2);
    assert_string_equal(p.text,
                        "Valve close command for water meter W-1-102 accepted; reading the state back");
}

/* The rule engine's callbacks reach the office through the stub. */
static void forward_event(void *ctx, const struct rule_event *event)
{
    gw_office_on_rule_event(((struct office_stub *)ctx)->office, event);
}

static void forward_action(void *ctx, const struct rule_action *action)
{
    gw_office_on_rule_action(((struct office_stub *)ctx)->office, action);
}

static struct rule_engine *demo_rules(struct office_stub *stub)
{
    const struct gw_config *c = stub->config;
    struct rule_meter *meters = calloc(c->nmeters, sizeof *meters);
    bool *vacant = calloc(c->nunits + 1, sizeof *vacant);
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
    struct rule_topology topo = {.nmeters = c->nmeters, .meters = meters, .nunits = c->nunits,
                                 .unit_vacant = vacant, .npanels = c->npanels, .panel_zones = zones};
    struct rule_engine *engine = NULL;
    assert_int_equal(rule_engine_create(&c->rules, &topo, forward_event, forward_action, stub,
                                        &engine), EST_OK);
    free(meters);
    free(vacant);
    free(zones);
    return engine;
}

static void test_restart_resumes_open_incidents(void **state)
{
    struct fixture *f = *state;
    struct rule_event e = reverse_energy(f, RULE_RAISED);
    gw_office_on_rule_event(f->host.office, &e);

    /* the daemon restarts: a fresh rule engine and office over the same store */
    f->host.rules = demo_rules(&f->host);
    assert_int_equal(office_stub_start(&f->host), EST_OK);
    struct rule_subject s = e.subject;
    assert_false(rule_engine_condition_active(f->host.rules, RULE_REVERSE_ENERGY, &s));
    assert_int_equal(gw_office_restore_incidents(f->host.office), EST_OK);
    assert_true(rule_engine_condition_active(f->host.rules, RULE_REVERSE_ENERGY, &s));
    /* resumed, not raised again: nothing new published or logged */
    assert_int_equal(published(f, "/alerts", NULL, 0), 1);
    assert_int_equal(patrol(f, "incident").count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_raise_is_stored_published_logged_and_opens_an_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_empties_the_retained_alert_and_notes_the_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_minor_incident_opens_no_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valve_action_goes_to_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes_open_incidents, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
