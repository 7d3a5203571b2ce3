/* test_rules_engine.c - the engine's contract around the rules: topology
 * validation, out-of-range and NULL input, hold_s raised from ticks,
 * restore without re-raising (also of a rule that cannot apply to the
 * meter), condition_active, out-of-order samples, many conditions active at
 * once (each event naming its own subject). */
#include <stdlib.h>

#include "test_rules_fixture.h"

static struct rule_config cfg;
static struct recorder rec;

static int setup(void **state)
{
    (void)state;
    rule_config_defaults(&cfg);
    return 0;
}

static est_err create_with(struct rule_meter *meters, size_t n, size_t nunits)
{
    bool vacant[4] = { false };
    struct rule_topology topo = { .nmeters = n, .meters = meters, .nunits = nunits, .unit_vacant = vacant };
    struct rule_engine *e = NULL;
    est_err err = rule_engine_create(&cfg, &topo, NULL, NULL, NULL, &e);
    if (err == EST_OK)
        assert_non_null(e);
    else
        assert_null(e);
    rule_engine_destroy(e);
    return err;
}

static void test_topology_validation(void **state)
{
    (void)state;
    struct rule_meter m[3] = { water_meter(0), water_meter(1), water_meter(-1) };
    assert_int_equal(create_with(m, 3, 2), EST_OK);
    m[0].parent = 1; /* 0 -> 1 -> 2 -> 0 */
    m[1].parent = 2;
    m[2].parent = 0;
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[2].parent = -1; /* a chain is fine */
    assert_int_equal(create_with(m, 3, 2), EST_OK);
    m[2].parent = 2; /* own parent */
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[2].parent = 3; /* out of range */
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[2].parent = -1;
    m[1].unit = 2; /* only units 0 and 1 */
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[1].unit = -2;
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[1].unit = 1;
    m[1].resolution = NAN;
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[1].resolution = 0.001;
    m[2].kind = RULE_METER_ELECTRICITY; /* parent of meter 1, but a different kind */
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[2].kind = RULE_METER_WATER;
    m[2].quiet_start_min = 1440;
    m[2].quiet_end_min = 10;
    assert_int_equal(create_with(m, 3, 2), EST_ERR_INVALID);
    m[2].quiet_start_min = -1;
    m[2].quiet_end_min = -1;
    assert_int_equal(create_with(m, 3, 2), EST_OK);

    struct rule_topology missing = { .nmeters = 2, .meters = NULL };
    struct rule_engine *e = NULL;
    assert_int_equal(rule_engine_create(&cfg, &missing, NULL, NULL, NULL, &e), EST_ERR_INVALID);
    struct rule_topology no_zones = { .npanels = 1, .panel_zones = NULL };
    assert_int_equal(rule_engine_create(&cfg, &no_zones, NULL, NULL, NULL, &e), EST_ERR_INVALID);
    assert_int_equal(rule_engine_create(NULL, &missing, NULL, NULL, NULL, &e), EST_ERR_INVALID);
    assert_int_equal(rule_engine_create(&cfg, &missing, NULL, NULL, NULL, NULL), EST_ERR_INVALID);
    rule_engine_destroy(NULL);
}

static void test_long_parent_loop_is_found(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct rule_meter *m = calloc(N, sizeof *m);
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        m[i] = water_meter(-1);
        m[i].parent = i + 1 < N ? i + 1 : -1;
    }
    assert_int_equal(create_with(m, N, 0), EST_OK);
    m[N - 1].parent = 500;
    assert_int_equal(create_with(m, N, 0), EST_ERR_INVALID);
    free(m);
}

static void test_bad_indices_never_crash(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_meter_sample s = elec_sample(1, T0, 1.0, 0.0, 0.0);
    assert_int_equal(rule_engine_feed_meter(e, &s), EST_ERR_NOTFOUND);
    s.meter = UINT32_MAX;
    assert_int_equal(rule_engine_feed_meter(e, &s), EST_ERR_NOTFOUND);
    assert_int_equal(rule_engine_feed_meter(e, NULL), EST_ERR_INVALID);
    assert_int_equal(rule_engine_feed_meter(NULL, &s), EST_ERR_INVALID);
    assert_int_equal(rule_engine_set_vacant(e, 0, true), EST_ERR_NOTFOUND);
    struct rule_subject far = meter_subject(7);
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &far, T0), EST_ERR_NOTFOUND);
    assert_false(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &far));
    struct rule_subject unit = { RULE_SUBJECT_UNIT, 0, -1 };
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &unit, T0), EST_ERR_INVALID);
    struct rule_subject ok = meter_subject(0);
    assert_int_equal(rule_engine_restore(e, (enum rule_id)42, &ok, T0), EST_ERR_INVALID);
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, NULL, T0), EST_ERR_INVALID);
    rule_engine_tick(NULL, T0);
    assert_int_equal(rec.nevents, 0);
    rule_engine_destroy(e);
}

static void test_hold_time_raises_from_tick(void **state)
{
    (void)state;
    cfg.fire_alarm.c.hold_s = 30;
    const uint16_t zones[1] = { 1 };
    struct rule_engine *e = make_engine(&cfg, NULL, 0, NULL, 0, zones, 1, &rec);
    uint8_t z = 1;
    struct rule_panel_sample s = { .panel = 0, .ts_ms = T0, .ok = true, .nzones = 1, .zones = &z };
    assert_int_equal(rule_engine_feed_panel(e, &s), EST_OK);
    struct rule_subject zone = { RULE_SUBJECT_ZONE, 0, 0 };
    assert_true(rule_engine_condition_active(e, RULE_FIRE_ALARM, &zone)); /* present, in hold */
    rule_engine_tick(e, T0 + 29 * SEC);
    assert_int_equal(rec.nevents, 0);
    rule_engine_tick(e, T0 + 30 * SEC);
    assert_int_equal(count_events(&rec, RULE_FIRE_ALARM, RULE_RAISED), 1);
    assert_int_equal(rec.events[0].since_ms, T0);
    assert_int_equal(rec.events[0].ts_ms, T0 + 30 * SEC);
    rule_engine_tick(e, T0 + 60 * SEC);
    assert_int_equal(rec.nevents, 1);
    rule_engine_destroy(e);
}

static void test_restore_resumes_without_reraising(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    m.rated_power_w = 1000.0;
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_subject subj = meter_subject(0);
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &subj, T0 - HOUR), EST_OK);
    assert_true(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &subj));
    /* no data yet: ticks alone never clear it */
    rule_engine_tick(e, T0 + HOUR);
    assert_true(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &subj));
    /* still running backwards after the restart: no RAISED, no UPDATED */
    int64_t t = T0 + HOUR;
    for (int i = 0; i < 20; i++, t += 10 * SEC) {
        feed(e, elec_sample(0, t, 100.0, 5.0, -200.0));
        rule_engine_tick(e, t);
    }
    assert_int_equal(rec.nevents, 0);
    /* fixed: cleared after clear_s, with the restored since */
    for (int i = 0; i < 40; i++, t += 10 * SEC) {
        feed(e, elec_sample(0, t, 100.0 + i * 0.001, 5.0, 200.0));
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 0);
    assert_int_equal(last_event(&rec, RULE_REVERSE_ENERGY)->since_ms, T0 - HOUR);
    assert_false(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &subj));
    rule_engine_destroy(e);
}

static void test_restore_then_change_updates(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    m.serial = 100;
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_subject subj = meter_subject(0);
    assert_int_equal(rule_engine_restore(e, RULE_METER_REPLACED, &subj, T0 - HOUR), EST_OK);
    assert_int_equal(rule_engine_restore(e, RULE_METER_OFFLINE, &subj, T0 - HOUR), EST_OK);
    struct rule_meter_sample s = elec_sample(0, T0, 1.0, 0.0, 10.0);
    s.has |= RULE_HAS_SERIAL;
    s.serial = 200; /* replaced again */
    feed(e, s);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_RAISED), 0);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_UPDATED), 1);
    assert_true(detail_of(last_event(&rec, RULE_METER_REPLACED), "new_serial") == 200.0);
    /* the good poll cleared the restored offline incident at once */
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_CLEARED), 1);
    rule_engine_destroy(e);
}

static void test_out_of_order_samples_are_ignored_for_counters(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0 + 20 * SEC, 100.02, 0.0, 100));
    feed(e, elec_sample(0, T0 + 10 * SEC, 100.01, 0.0, 100)); /* late */
    feed(e, elec_sample(0, T0 + 20 * SEC, 100.02, 0.0, 100)); /* duplicate */
    feed(e, elec_sample(0, T0 + 30 * SEC, 100.03, 0.0, 100));
    assert_int_equal(rec.nevents, 0);
    rule_engine_destroy(e);
}

static void test_disabled_rule_clears_restored_incident(void **state)
{
    (void)state;
    cfg.balance_loss.c.enabled = false;
    struct rule_meter m = water_meter(-1);
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_subject subj = meter_subject(0);
    assert_int_equal(rule_engine_restore(e, RULE_BALANCE_LOSS, &subj, T0), EST_OK);
    rule_engine_tick(e, T0 + SEC);
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_BALANCE_LOSS, &subj));
    rule_engine_destroy(e);
}

/* Conditions only get their detail while active: hundreds at once (more than
 * the engine starts with room for) keep their own subject and detail,
 * through hold_s and clear_s on the pending list. */
static void test_many_conditions_active_at_once(void **state)
{
    (void)state;
    enum { N = 300 };
    cfg.meter_offline.c.hold_s = 60;
    cfg.meter_offline.c.clear_s = 60;
    static struct rule_meter m[N];
    for (size_t i = 0; i < N; i++) {
        m[i] = i % 2 ? water_meter(-1) : electricity_meter();
        m[i].export_expected = i % 3 == 0; /* meters with fewer conditions in between */
    }
    uint16_t zones[3] = { 2, 0, 3 };
    struct rule_engine *e = make_engine(&cfg, m, N, NULL, 0, zones, 3, &rec);
    for (int k = 0; k < 3; k++) {
        for (uint32_t i = 0; i < N; i++) {
            struct rule_meter_sample s = { .meter = i, .ts_ms = T0 + k * 10 * SEC, .ok = false };
            assert_int_equal(rule_engine_feed_meter(e, &s), EST_OK);
        }
    }
    assert_int_equal(rec.nevents, 0);
    rule_engine_tick(e, T0 + 90 * SEC);
    assert_int_equal(rec.nevents, N);
    bool seen[N] = { false };
    for (size_t i = 0; i < rec.nevents; i++) {
        const struct rule_event *ev = &rec.events[i];
        assert_int_equal(ev->rule, RULE_METER_OFFLINE);
        assert_int_equal(ev->transition, RULE_RAISED);
        assert_int_equal(ev->subject.type, RULE_SUBJECT_METER);
        assert_true(ev->subject.index < N && !seen[ev->subject.index]);
        seen[ev->subject.index] = true;
        assert_int_equal(ev->since_ms, T0 + 20 * SEC);
        assert_string_equal(ev->reason, "poll_failed");
        assert_true(detail_of(ev, "failures") == 3.0);
    }

    /* zones of panels around one without zones */
    uint8_t bits[3] = { 0, 1, 1 };
    struct rule_panel_sample p2 = { .panel = 2, .ts_ms = T0 + 100 * SEC, .ok = true, .nzones = 3, .zones = bits };
    struct rule_panel_sample p0 = { .panel = 0, .ts_ms = T0 + 100 * SEC, .ok = true, .nzones = 2, .zones = bits };
    rec.nevents = 0;
    assert_int_equal(rule_engine_feed_panel(e, &p2), EST_OK);
    assert_int_equal(rule_engine_feed_panel(e, &p0), EST_OK);
    assert_int_equal(rec.nevents, 3);
    int32_t expect_zone[3] = { 1, 2, 1 };
    uint32_t expect_panel[3] = { 2, 2, 0 };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rec.events[i].rule, RULE_FIRE_ALARM);
        assert_int_equal(rec.events[i].subject.type, RULE_SUBJECT_ZONE);
        assert_int_equal(rec.events[i].subject.index, expect_panel[i]);
        assert_int_equal(rec.events[i].subject.zone, expect_zone[i]);
    }

    rec.nevents = 0;
    for (uint32_t i = 0; i < N; i++)
        feed(e, elec_sample(i, T0 + 100 * SEC, 1.0, 0.0, 0.0));
    assert_int_equal(rec.nevents, 0);
    rule_engine_tick(e, T0 + 200 * SEC);
    assert_int_equal(rec.nevents, N);
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < rec.nevents; i++) {
        const struct rule_event *ev = &rec.events[i];
        assert_int_equal(ev->transition, RULE_CLEARED);
        assert_true(ev->subject.index < N && !seen[ev->subject.index]);
        seen[ev->subject.index] = true;
        assert_int_equal(ev->since_ms, T0 + 20 * SEC);
        assert_string_equal(ev->reason, "poll_failed");
    }
    struct rule_subject subj = meter_subject(7);
    assert_false(rule_engine_condition_active(e, RULE_METER_OFFLINE, &subj));
    rule_engine_destroy(e);
}

/* An incident of a rule that can no longer apply to its meter (say the
 * meter became export_expected, or lost its children) is still restored:
 * it stays open, as nothing will evaluate it. */
static void test_restore_rule_that_cannot_apply(void **state)
{
    (void)state;
    struct rule_meter m[3] = { water_meter(-1), electricity_meter(), electricity_meter() };
    m[1].export_expected = true;
    struct rule_engine *e = make_engine(&cfg, m, 3, NULL, 0, NULL, 0, &rec);
    struct rule_subject water = meter_subject(0), solar = meter_subject(1), plain = meter_subject(2);
    assert_false(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &water));
    assert_false(rule_engine_condition_active(e, RULE_BALANCE_LOSS, &plain));
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &water, T0 - HOUR), EST_OK);
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &water, T0 - HOUR), EST_OK); /* same one */
    assert_int_equal(rule_engine_restore(e, RULE_REVERSE_ENERGY, &solar, T0 - HOUR), EST_OK);
    assert_int_equal(rule_engine_restore(e, RULE_BALANCE_LOSS, &plain, T0 - HOUR), EST_OK);
    for (int k = 0; k < 10; k++) {
        feed(e, water_sample(0, T0 + k * MIN, 1.0 + k * 0.01, 0.5));
        feed(e, elec_sample(1, T0 + k * MIN, 10.0, 1.0 + k * 0.01, -500.0));
        feed(e, elec_sample(2, T0 + k * MIN, 10.0 + k * 0.01, 0.0, 600.0));
        rule_engine_tick(e, T0 + k * MIN + SEC);
    }
    assert_int_equal(rec.nevents, 0);
    assert_true(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &water));
    assert_true(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &solar));
    assert_true(rule_engine_condition_active(e, RULE_BALANCE_LOSS, &plain));
    assert_false(rule_engine_condition_active(e, RULE_BALANCE_LOSS, &water));
    rule_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_topology_validation, setup),
        cmocka_unit_test_setup(test_long_parent_loop_is_found, setup),
        cmocka_unit_test_setup(test_bad_indices_never_crash, setup),
        cmocka_unit_test_setup(test_hold_time_raises_from_tick, setup),
        cmocka_unit_test_setup(test_restore_resumes_without_reraising, setup),
        cmocka_unit_test_setup(test_restore_then_change_updates, setup),
        cmocka_unit_test_setup(test_out_of_order_samples_are_ignored_for_counters, setup),
        cmocka_unit_test_setup(test_disabled_rule_clears_restored_incident, setup),
        cmocka_unit_test_setup(test_many_conditions_active_at_once, setup),
        cmocka_unit_test_setup(test_restore_rule_that_cannot_apply, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
