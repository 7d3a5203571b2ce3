/* test_rules_fire.c - fire_alarm, fire_fault, fire_disabled and
 * fire_supervisory per zone,
 * panel-level fire_fault, panel offline, and failed polls that must change
 * no fire state. */
#include "test_rules_fixture.h"

static struct rule_config cfg;
static struct recorder rec;

static int setup(void **state)
{
    (void)state;
    rule_config_defaults(&cfg);
    return 0;
}

static void feed_panel(struct rule_engine *e, uint32_t panel, int64_t ts, const uint8_t *zones, uint16_t n,
                       bool panel_fault)
{
    struct rule_panel_sample s = {
        .panel = panel, .ts_ms = ts, .ok = true, .nzones = n, .zones = zones, .panel_fault = panel_fault,
    };
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_OK);
}

static void fail_panel(struct rule_engine *e, uint32_t panel, int64_t ts)
{
    struct rule_panel_sample s = { .panel = panel, .ts_ms = ts, .ok = false };
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_OK);
}

static void test_zone_alarm_raises_once_and_clears(void **state)
{
    (void)state;
    const uint16_t zones[2] = { 4, 2 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 2, &rec);
    uint8_t z1[2] = { 0, 0 };
    feed_panel(e, 1, T0, z1, 2, false);
    z1[1] = 1; /* zone 1 of panel 1 in alarm */
    for (int i = 1; i <= 5; i++)
        feed_panel(e, 1, T0 + i * SEC, z1, 2, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_FIRE_ALARM);
    assert_int_equal(ev->severity, RULE_SEV_CRITICAL);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_ZONE);
    assert_int_equal(ev->subject.index, 1);
    assert_int_equal(ev->subject.zone, 1);
    assert_int_equal(ev->ts_ms, T0 + SEC);
    assert_string_equal(ev->reason, "zone_alarm");
    struct rule_subject zone = { RULE_SUBJECT_ZONE, 1, 1 };
    struct rule_subject other = { RULE_SUBJECT_ZONE, 1, 0 };
    assert_true(rule_engine_condition_active(e, RULE_FIRE_ALARM, &zone));
    assert_false(rule_engine_condition_active(e, RULE_FIRE_ALARM, &other));
    z1[1] = 0; /* panel reset */
    feed_panel(e, 1, T0 + 10 * SEC, z1, 2, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_FIRE_ALARM, &zone));
    assert_int_equal(count_rule(&rec, RULE_FIRE_FAULT) + count_rule(&rec, RULE_FIRE_DISABLED), 0);
    rule_engine_destroy(e);
}

static void test_fault_clears_with_hysteresis_and_disabled_zone(void **state)
{
    (void)state;
    const uint16_t zones[1] = { 3 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z[3] = { 2, 4, 0 };
    feed_panel(e, 0, T0, z, 3, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_FAULT, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_FIRE_DISABLED, RULE_RAISED), 1);
    assert_int_equal(last_event(&rec, RULE_FIRE_FAULT)->severity, RULE_SEV_MAJOR);
    assert_int_equal(last_event(&rec, RULE_FIRE_DISABLED)->severity, RULE_SEV_MINOR);
    assert_int_equal(last_event(&rec, RULE_FIRE_DISABLED)->subject.zone, 1);
    /* an intermittent fault: gone for 30 s, back: the same incident */
    z[0] = 0;
    for (int i = 1; i <= 3; i++)
        feed_panel(e, 0, T0 + i * 10 * SEC, z, 3, false);
    z[0] = 2;
    feed_panel(e, 0, T0 + 40 * SEC, z, 3, false);
    z[0] = 0;
    for (int i = 5; i <= 10; i++) {
        feed_panel(e, 0, T0 + i * 10 * SEC, z, 3, false);
        rule_engine_tick(e, T0 + i * 10 * SEC);
    }
    assert_int_equal(count_events(&rec, RULE_FIRE_FAULT, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_FIRE_FAULT, RULE_CLEARED), 0); /* 50 s absent < 60 s */
    rule_engine_tick(e, T0 + 110 * SEC);
    assert_int_equal(count_events(&rec, RULE_FIRE_FAULT, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_FIRE_DISABLED, RULE_CLEARED), 0);
    rule_engine_destroy(e);
}

static void test_panel_fault_is_its_own_subject(void **state)
{
    (void)state;
    const uint16_t zones[1] = { 2 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z[2] = { 0, 0 };
    feed_panel(e, 0, T0, z, 2, true);
    assert_int_equal(count_events(&rec, RULE_FIRE_FAULT, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_FIRE_FAULT);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_PANEL);
    assert_int_equal(ev->subject.zone, -1);
    assert_string_equal(ev->reason, "panel_fault");
    struct rule_subject panel = { RULE_SUBJECT_PANEL, 0, -1 };
    assert_true(rule_engine_condition_active(e, RULE_FIRE_FAULT, &panel));
    rule_engine_destroy(e);
}

static void test_failed_poll_changes_nothing_but_offline(void **state)
{
    (void)state;
    const uint16_t zones[1] = { 2 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z[2] = { 1, 0 };
    feed_panel(e, 0, T0, z, 2, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_RAISED), 1);
    for (int i = 1; i <= 5; i++) {
        fail_panel(e, 0, T0 + i * SEC);
        rule_engine_tick(e, T0 + i * SEC);
    }
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_CLEARED), 0);
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_METER_OFFLINE);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_PANEL);
    assert_int_equal(ev->ts_ms, T0 + 3 * SEC);
    feed_panel(e, 0, T0 + 10 * SEC, z, 2, false);
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_bad_panel_input(void **state)
{
    (void)state;
    const uint16_t zones[1] = { 2 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z[4] = { 1, 1, 1, 1 };
    struct rule_panel_sample s = { .panel = 3, .ts_ms = T0, .ok = true, .nzones = 2, .zones = z };
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_ERR_NOTFOUND);
    s.panel = 0;
    s.zones = NULL;
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_ERR_INVALID);
    assert_int_equal(rule_engine_feed_panel(e, NULL), EST_ERR_INVALID);
    /* more zones than configured: the extra ones are ignored */
    s.zones = z;
    s.nzones = 4;
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_OK);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_RAISED), 2);
    struct rule_subject beyond = { RULE_SUBJECT_ZONE, 0, 2 };
    assert_false(rule_engine_condition_active(e, RULE_FIRE_ALARM, &beyond));
    assert_int_equal(rule_engine_restore(e, RULE_FIRE_ALARM, &beyond, T0), EST_ERR_NOTFOUND);
    rule_engine_destroy(e);
}

static void test_supervisory_zone_raises_fire_supervisory(void **state)
{
    (void)state;
    const uint16_t zones[1] = { 3 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z[3] = { 0, 0, 0 };
    feed_panel(e, 0, T0, z, 3, false);
    z[2] = 8; /* zone 2: supervisory (a sprinkler valve tampered) */
    for (int i = 1; i <= 4; i++)
        feed_panel(e, 0, T0 + i * SEC, z, 3, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_SUPERVISORY, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_FIRE_SUPERVISORY);
    assert_int_equal(ev->severity, RULE_SEV_MAJOR);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_ZONE);
    assert_int_equal(ev->subject.zone, 2);
    assert_string_equal(ev->reason, "supervisory");
    assert_string_equal(rule_name(RULE_FIRE_SUPERVISORY), "fire_supervisory");
    struct rule_subject zone = { RULE_SUBJECT_ZONE, 0, 2 };
    assert_true(rule_engine_condition_active(e, RULE_FIRE_SUPERVISORY, &zone));
    /* Supervisory is neither an alarm nor a fault. */
    assert_int_equal(count_rule(&rec, RULE_FIRE_ALARM) + count_rule(&rec, RULE_FIRE_FAULT), 0);
    z[2] = 0;
    feed_panel(e, 0, T0 + 10 * SEC, z, 3, false);
    assert_int_equal(count_events(&rec, RULE_FIRE_SUPERVISORY, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_FIRE_SUPERVISORY, &zone));
    rule_engine_destroy(e);

    /* Disabled by config: nothing. */
    cfg.fire_supervisory.c.enabled = false;
    e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    z[1] = 8;
    for (int i = 0; i < 3; i++)
        feed_panel(e, 0, T0 + i * SEC, z, 3, false);
    assert_int_equal(count_rule(&rec, RULE_FIRE_SUPERVISORY), 0);
    rule_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_zone_alarm_raises_once_and_clears, setup),
        cmocka_unit_test_setup(test_fault_clears_with_hysteresis_and_disabled_zone, setup),
        cmocka_unit_test_setup(test_panel_fault_is_its_own_subject, setup),
        cmocka_unit_test_setup(test_failed_poll_changes_nothing_but_offline, setup),
        cmocka_unit_test_setup(test_bad_panel_input, setup),
        cmocka_unit_test_setup(test_supervisory_zone_raises_fire_supervisory, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
