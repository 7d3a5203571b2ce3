/* test_rules_electricity.c - reverse_energy, implausible_reading,
 * meter_replaced, meter_offline and vacant_power on electricity meters: each fires on its
 * condition, stays silent on near misses, clears with hysteresis and never
 * fires twice. */
#include "test_rules_fixture.h"

static struct rule_config cfg;
static struct recorder rec;

static int setup(void **state)
{
    (void)state;
    rule_config_defaults(&cfg);
    return 0;
}

/* Feeds one meter a steady consumption every step_ms: import grows with
 * power_w, export stays put. Returns the import reached. */
static double run_steady(struct rule_engine *e, uint32_t meter, int64_t from, int64_t to, int64_t step_ms,
                         double import_kwh, double export_kwh, double power_w)
{
    for (int64_t t = from; t < to; t += step_ms) {
        feed(e, elec_sample(meter, t, import_kwh, export_kwh, power_w));
        rule_engine_tick(e, t);
        import_kwh += power_w / 1000.0 * (double)step_ms / HOUR;
    }
    return import_kwh;
}

/* --- reverse_energy --- */

static void test_export_growth_raises_after_confirmation_and_clears(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 500.0, 100.00, 200));
    feed(e, elec_sample(0, T0 + 10 * SEC, 500.0, 100.01, 200)); /* one step: not yet confirmed */
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    feed(e, elec_sample(0, T0 + 20 * SEC, 500.0, 100.01, 200)); /* confirmed on the second poll */
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_REVERSE_ENERGY);
    assert_string_equal(ev->reason, "export_growth");
    assert_int_equal(ev->severity, RULE_SEV_MAJOR);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_METER);
    assert_int_equal(ev->subject.index, 0);
    assert_int_equal(ev->since_ms, T0 + 20 * SEC);
    struct rule_subject subj = meter_subject(0);
    assert_true(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &subj));

    /* keeps exporting: no second RAISED */
    double exp = 100.01;
    for (int i = 3; i < 10; i++) {
        exp += 0.01;
        feed(e, elec_sample(0, T0 + i * 10 * SEC, 500.0, exp, 200));
    }
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);

    /* stops: clears only after clear_s (300 s) of absence */
    int64_t stop = T0 + 100 * SEC;
    run_steady(e, 0, stop, stop + 290 * SEC, 10 * SEC, 500.0, exp, 200);
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_CLEARED), 0);
    run_steady(e, 0, stop + 290 * SEC, stop + 320 * SEC, 10 * SEC, 500.0, exp, 200);
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_REVERSE_ENERGY, &subj));
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_export_below_one_step_or_expected_is_silent(void **state)
{
    (void)state;
    struct rule_meter meters[2] = { electricity_meter(), electricity_meter() };
    meters[1].export_expected = true; /* solar behind it */
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    for (int i = 0; i < 20; i++) {
        /* meter 0: export grew by less than one resolution step */
        feed(e, elec_sample(0, T0 + i * 10 * SEC, 500.0, i == 0 ? 100.0 : 100.004, 100));
        /* meter 1: exports for real, and power is negative */
        feed(e, elec_sample(1, T0 + i * 10 * SEC, 500.0, 100.0 + i * 0.01, -800));
    }
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

static void test_negative_power_needs_hold_time(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    m.rated_power_w = 1000.0; /* threshold max(10 W, 5 W) = 10 W */
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    /* noise around zero for ten minutes */
    static const double noise[] = { -8.0, 5.0, -9.9, 0.0, 3.0, -2.0 };
    int64_t t = T0;
    for (int i = 0; i < 60; i++, t += 10 * SEC) {
        feed(e, elec_sample(0, t, 500.0, 7.0, noise[i % 6]));
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    /* -50 W for 50 s: below the 60 s hold */
    for (int i = 0; i < 6; i++, t += 10 * SEC)
        feed(e, elec_sample(0, t, 500.0, 7.0, -50.0));
    feed(e, elec_sample(0, t, 500.0, 7.0, 20.0));
    t += 10 * SEC;
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    /* -50 W for 60 s: raised */
    int64_t start = t;
    for (int i = 0; i <= 6; i++, t += 10 * SEC)
        feed(e, elec_sample(0, t, 500.0, 7.0, -50.0));
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_REVERSE_ENERGY);
    assert_string_equal(ev->reason, "negative_power");
    assert_true(detail_of(ev, "power_w") == -50.0);
    assert_int_equal(ev->ts_ms, start + 60 * SEC);
    rule_engine_destroy(e);
}

static void test_negative_power_threshold_scales_with_rating(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter(); /* 10 kW: threshold 50 W */
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    for (int i = 0; i < 60; i++)
        feed(e, elec_sample(0, T0 + i * 10 * SEC, 500.0, 7.0, -40.0));
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

static void test_reversed_ct_on_one_phase(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    for (int i = 0; i <= 7; i++) {
        struct rule_meter_sample s = elec_sample(0, T0 + i * 10 * SEC, 500.0, 7.0, 600.0);
        s.has |= RULE_HAS_PHASE_POWER;
        s.phase_power_w[0] = 500.0;
        s.phase_power_w[1] = 400.0;
        s.phase_power_w[2] = -300.0;
        feed(e, s);
    }
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_REVERSE_ENERGY);
    assert_string_equal(ev->reason, "reversed_ct");
    assert_true(detail_of(ev, "min_phase_power_w") == -300.0);
    rule_engine_destroy(e);
}

static void test_decreasing_import_is_implausible_not_reverse(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 500.0, 7.0, 100));
    feed(e, elec_sample(0, T0 + 10 * SEC, 499.0, 7.0, 100));
    feed(e, elec_sample(0, T0 + 20 * SEC, 498.0, 7.0, 100));
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_IMPLAUSIBLE_READING);
    assert_string_equal(ev->reason, "import_rollback");
    assert_true(detail_of(ev, "previous") == 500.0);
    assert_true(detail_of(ev, "value") == 499.0);
    rule_engine_destroy(e);
}

static void test_export_updates_only_when_doubled(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    double exp = 100.0;
    for (int i = 0; i < 20; i++) { /* 0.2 kWh a minute: 3.8 kWh exported */
        feed(e, elec_sample(0, T0 + i * MIN, 500.0, exp, 50.0));
        exp += 0.2;
    }
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    /* raised at 0.2 kWh, reported from the 1 kWh floor: updated at >= 2 kWh only */
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_UPDATED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_REVERSE_ENERGY);
    assert_int_equal(ev->transition, RULE_UPDATED);
    assert_true(detail_of(ev, "exported_kwh") >= 2.0 - 1e-9);
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    rule_engine_destroy(e);
}

/* --- implausible_reading --- */

static void test_jump_raises_once_then_new_baseline_clears(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 1000.0, 7.0, 1000));
    feed(e, elec_sample(0, T0 + 10 * SEC, 1100.0, 7.0, 1000)); /* 100 kWh in 10 s on a 10 kW meter */
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_IMPLAUSIBLE_READING);
    assert_string_equal(ev->reason, "import_jump");
    assert_true(detail_of(ev, "increase") > 99.0);
    assert_true(detail_of(ev, "allowed") < 0.1);
    /* normal from the new baseline: silent, then cleared after clear_s (3600 s) */
    double imp = run_steady(e, 0, T0 + 20 * SEC, T0 + 3600 * SEC, 10 * SEC, 1100.0, 7.0, 1000);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_CLEARED), 0);
    run_steady(e, 0, T0 + 3600 * SEC, T0 + 3700 * SEC, 10 * SEC, imp, 7.0, 1000);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

static void test_one_odd_sample_is_one_incident(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 1000.0, 7.0, 100));
    feed(e, elec_sample(0, T0 + 10 * SEC, 5000.0, 7.0, 100)); /* decode glitch */
    feed(e, elec_sample(0, T0 + 20 * SEC, 1000.01, 7.0, 100)); /* back: a rollback, same incident */
    run_steady(e, 0, T0 + 30 * SEC, T0 + 2 * HOUR, 10 * SEC, 1000.01, 7.0, 100);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_CLEARED), 1);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

static void test_integer_counter_wrap_is_silent(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    m.counter_wrap = 42949672.96; /* DDS238: 2^32 steps of 0.01 kWh */
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 42949672.90, 42949672.95, 1000));
    feed(e, elec_sample(0, T0 + MIN, 0.10, 42949672.95, 1000));   /* import wrapped */
    feed(e, elec_sample(0, T0 + 2 * MIN, 0.12, 42949672.95, 1000));
    feed(e, elec_sample(0, T0 + 3 * MIN, 0.14, 42949672.95, 1000));
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    /* an export wrap is growth across the wrap: reverse, not implausible */
    feed(e, elec_sample(0, T0 + 4 * MIN, 0.16, 0.01, 1000));
    feed(e, elec_sample(0, T0 + 5 * MIN, 0.18, 0.01, 1000));
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    assert_int_equal(count_events(&rec, RULE_REVERSE_ENERGY, RULE_RAISED), 1);
    assert_true(fabs(detail_of(last_event(&rec, RULE_REVERSE_ENERGY), "exported_kwh") - 0.02) < 1e-6);
    rule_engine_destroy(e);
}

static void test_nan_inf_negative_are_bad_values_and_do_not_propagate(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    feed(e, elec_sample(0, T0, 1000.0, 7.0, 100));
    feed(e, elec_sample(0, T0 + 10 * SEC, NAN, INFINITY, -INFINITY));
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_IMPLAUSIBLE_READING);
    assert_string_equal(ev->reason, "bad_value");
    assert_true(detail_of(ev, "bad_values") == 3.0);
    feed(e, elec_sample(0, T0 + 20 * SEC, -5.0, 7.0, 100)); /* negative counter */
    struct rule_meter_sample flagged = elec_sample(0, T0 + 30 * SEC, 1000.0, 7.0, 100);
    flagged.bad_values = 1; /* the driver could not decode something */
    feed(e, flagged);
    /* the good baseline survived: no jump/rollback from the bad samples */
    run_steady(e, 0, T0 + 40 * SEC, T0 + 2 * HOUR, 10 * SEC, 1000.0, 7.0, 100);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_UPDATED), 0);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_CLEARED), 1);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

static void test_frozen_counter_while_power_flows(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    int64_t t = T0;
    for (; t < T0 + 3590 * SEC; t += 10 * SEC)
        feed(e, elec_sample(0, t, 500.0, 7.0, 2000.0)); /* 2 kW, counter stuck */
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    for (; t <= T0 + 3610 * SEC; t += 10 * SEC)
        feed(e, elec_sample(0, t, 500.0, 7.0, 2000.0));
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_IMPLAUSIBLE_READING);
    assert_string_equal(ev->reason, "import_frozen");
    assert_true(detail_of(ev, "expected") > 1.9);
    /* moves again: absent, cleared after clear_s */
    run_steady(e, 0, t, t + 3700 * SEC, 10 * SEC, 500.0, 7.0, 2000.0);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_CLEARED), 1);
    rule_engine_destroy(e);
}

/* A float32 counter at 70,000 kWh moves in 0.0078 kWh steps: with a 1 kW
 * load it stands still for several polls, with 5 W for hours. Neither is
 * frozen, and the steps are neither jumps nor export. */
static void test_float32_resolution_steps_are_silent(void **state)
{
    (void)state;
    struct rule_meter meters[2] = { electricity_meter(), electricity_meter() };
    meters[0].rated_power_w = 1500.0; /* tight jump bound */
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    double true_import[2] = { 70000.0, 70000.0 };
    const double power[2] = { 1000.0, 5.0 };
    for (int64_t t = T0; t < T0 + 6 * HOUR; t += 10 * SEC) {
        for (uint32_t k = 0; k < 2; k++) {
            feed(e, elec_sample(k, t, (double)(float)true_import[k], (double)(float)65537.3, power[k]));
            true_import[k] += power[k] / 1000.0 * 10.0 / 3600.0;
        }
        rule_engine_tick(e, t);
    }
    assert_int_equal(rec.nevents, 0);
    rule_engine_destroy(e);
}

/* --- meter_replaced --- */

static void test_serial_change_is_replacement_with_rebaseline(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    m.serial = 1234;
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_meter_sample s = elec_sample(0, T0, 12000.0, 3.0, 500);
    s.has |= RULE_HAS_SERIAL;
    s.serial = 1234;
    feed(e, s);
    s.ts_ms += 10 * SEC;
    feed(e, s);
    assert_int_equal(rec.nevents, 0);
    /* new meter: new serial, counters from zero (export too) */
    s = elec_sample(0, T0 + 20 * SEC, 0.5, 0.2, 500);
    s.has |= RULE_HAS_SERIAL;
    s.serial = 5678;
    feed(e, s);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_METER_REPLACED);
    assert_true(detail_of(ev, "old_serial") == 1234.0);
    assert_true(detail_of(ev, "new_serial") == 5678.0);
    assert_string_equal(ev->reason, "serial_changed");
    double imp = 0.5;
    for (int64_t t = T0 + 30 * SEC; t < T0 + 3700 * SEC; t += 10 * SEC) {
        imp += 500.0 / 1000.0 * 10.0 / 3600.0;
        s = elec_sample(0, t, imp, 0.2, 500);
        s.has |= RULE_HAS_SERIAL;
        s.serial = 5678;
        feed(e, s);
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_CLEARED), 1);
    rule_engine_destroy(e);
}

static void test_serial_change_against_last_seen_and_update(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter(); /* inventory serial unknown */
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    const uint32_t serials[] = { 1111, 1111, 2222, 2222, 3333 };
    for (int i = 0; i < 5; i++) {
        struct rule_meter_sample s = elec_sample(0, T0 + i * 10 * SEC, 100.0, 0.0, 0);
        s.has |= RULE_HAS_SERIAL;
        s.serial = serials[i];
        feed(e, s);
    }
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_METER_REPLACED, RULE_UPDATED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_METER_REPLACED);
    assert_true(detail_of(ev, "old_serial") == 2222.0);
    assert_true(detail_of(ev, "new_serial") == 3333.0);
    rule_engine_destroy(e);
}

/* --- meter_offline --- */

static void test_offline_after_failures_clears_on_first_good_poll(void **state)
{
    (void)state;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_meter_sample fail = { .meter = 0, .ok = false };
    feed(e, elec_sample(0, T0, 100.0, 0.0, 0));
    for (int i = 1; i <= 2; i++) {
        fail.ts_ms = T0 + i * 10 * SEC;
        feed(e, fail);
    }
    feed(e, elec_sample(0, T0 + 30 * SEC, 100.0, 0.0, 0)); /* two failures, then good: near miss */
    for (int i = 4; i <= 9; i++) {
        fail.ts_ms = T0 + i * 10 * SEC;
        feed(e, fail);
        rule_engine_tick(e, fail.ts_ms);
    }
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_METER_OFFLINE);
    assert_int_equal(ev->ts_ms, T0 + 60 * SEC); /* the third consecutive failure */
    assert_true(detail_of(ev, "failures") == 3.0);
    assert_int_equal(ev->severity, RULE_SEV_MINOR);
    feed(e, elec_sample(0, T0 + 100 * SEC, 100.0, 0.0, 0));
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_CLEARED), 1);
    assert_int_equal(last_event(&rec, RULE_METER_OFFLINE)->ts_ms, T0 + 100 * SEC);
    assert_int_equal(count_events(&rec, RULE_METER_OFFLINE, RULE_RAISED), 1);
    /* counters resume from the old baseline: nothing implausible */
    assert_int_equal(count_rule(&rec, RULE_IMPLAUSIBLE_READING), 0);
    rule_engine_destroy(e);
}

static void test_disabled_rule_is_silent(void **state)
{
    (void)state;
    cfg.meter_offline.c.enabled = false;
    cfg.reverse_energy.c.enabled = false;
    struct rule_meter m = electricity_meter();
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_meter_sample fail = { .meter = 0, .ok = false, .ts_ms = T0 };
    for (int i = 0; i < 5; i++, fail.ts_ms += SEC)
        feed(e, fail);
    for (int i = 0; i < 20; i++)
        feed(e, elec_sample(0, T0 + 10 * SEC + i * 10 * SEC, 100.0, 1.0 + i * 0.01, -500.0));
    assert_int_equal(count_rule(&rec, RULE_METER_OFFLINE), 0);
    assert_int_equal(count_rule(&rec, RULE_REVERSE_ENERGY), 0);
    rule_engine_destroy(e);
}

/* --- vacant_power --- */

static struct rule_meter unit_meter(void)
{
    struct rule_meter m = electricity_meter();
    m.unit = 0;
    return m;
}

static void test_vacant_power_raises_over_window_and_clears_with_hysteresis(void **state)
{
    (void)state;
    struct rule_meter m = unit_meter();
    bool vacant = true;
    struct rule_engine *e = make_engine(&cfg, &m, 1, &vacant, 1, NULL, 0, &rec);
    int64_t t = T0;
    double kwh = run_steady(e, 0, t, t + 20 * MIN, 10 * SEC, 100.0, 0.0, 6.0); /* standby */
    t += 20 * MIN;
    assert_int_equal(count_rule(&rec, RULE_VACANT_POWER), 0);

    kwh = run_steady(e, 0, t, t + 16 * MIN, 10 * SEC, kwh, 0.0, 200.0); /* lights left on */
    t += 16 * MIN;
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    const struct rule_event *raised = last_event(&rec, RULE_VACANT_POWER);
    assert_int_equal(raised->subject.type, RULE_SUBJECT_METER);
    assert_true(detail_of(raised, "mean_power_w") > 60.0);
    assert_true(detail_of(raised, "mean_power_w") <= 200.0);
    assert_true(rule_engine_condition_active(e, RULE_VACANT_POWER, &(struct rule_subject){ RULE_SUBJECT_METER, 0, -1 }));

    /* Between clear_below_w and threshold_w: neither raised again nor cleared. */
    kwh = run_steady(e, 0, t, t + 45 * MIN, 10 * SEC, kwh, 0.0, 45.0);
    t += 45 * MIN;
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_CLEARED), 0);

    /* Off: absent from the next full window on, cleared clear_s later. */
    run_steady(e, 0, t, t + 45 * MIN, 10 * SEC, kwh, 0.0, 5.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_vacant_power_is_silent_in_occupied_units_and_cleared_by_moving_in(void **state)
{
    (void)state;
    struct rule_meter meters[2] = { unit_meter(), electricity_meter() }; /* the second has no unit */
    bool vacant = false;
    struct rule_engine *e = make_engine(&cfg, meters, 2, &vacant, 1, NULL, 0, &rec);
    run_steady(e, 0, T0, T0 + 40 * MIN, 10 * SEC, 100.0, 0.0, 1500.0);
    assert_int_equal(count_rule(&rec, RULE_VACANT_POWER), 0);

    assert_int_equal(rule_engine_set_vacant(e, 0, true), EST_OK);
    double kwh = run_steady(e, 0, T0 + 40 * MIN, T0 + 60 * MIN, 10 * SEC, 101.0, 0.0, 1500.0);
    run_steady(e, 1, T0 + 40 * MIN, T0 + 60 * MIN, 10 * SEC, 10.0, 0.0, 1500.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    assert_int_equal(last_event(&rec, RULE_VACANT_POWER)->subject.index, 0);

    assert_int_equal(rule_engine_set_vacant(e, 0, false), EST_OK); /* somebody moved in */
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_CLEARED), 1);
    run_steady(e, 0, T0 + 60 * MIN, T0 + 90 * MIN, 10 * SEC, kwh, 0.0, 1500.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_vacant_power_from_the_import_register_alone(void **state)
{
    (void)state;
    struct rule_meter m = unit_meter();
    bool vacant = true;
    struct rule_engine *e = make_engine(&cfg, &m, 1, &vacant, 1, NULL, 0, &rec);
    double kwh = 50.0;
    for (int64_t t = T0; t < T0 + 40 * MIN; t += MIN) {
        struct rule_meter_sample s = { .meter = 0, .ts_ms = t, .ok = true, .has = RULE_HAS_IMPORT,
                                       .import_kwh = kwh };
        feed(e, s);
        rule_engine_tick(e, t);
        kwh += 0.3 / 60.0; /* 300 W */
    }
    assert_int_equal(count_events(&rec, RULE_VACANT_POWER, RULE_RAISED), 1);
    double mean = detail_of(last_event(&rec, RULE_VACANT_POWER), "mean_power_w");
    assert_true(mean > 250.0 && mean < 320.0); /* one register step below the true 300 W */
    rule_engine_destroy(e);
}

static void test_vacant_power_ignores_a_counter_jump(void **state)
{
    (void)state;
    struct rule_meter m = unit_meter();
    bool vacant = true;
    struct rule_engine *e = make_engine(&cfg, &m, 1, &vacant, 1, NULL, 0, &rec);
    double kwh = 50.0;
    for (int64_t t = T0; t < T0 + 40 * MIN; t += MIN) {
        if (t == T0 + 10 * MIN)
            kwh += 5000.0; /* implausible_reading's business, not use */
        struct rule_meter_sample s = { .meter = 0, .ts_ms = t, .ok = true, .has = RULE_HAS_IMPORT,
                                       .import_kwh = kwh };
        feed(e, s);
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_rule(&rec, RULE_VACANT_POWER), 0);
    assert_int_equal(count_events(&rec, RULE_IMPLAUSIBLE_READING, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

/* A vacant flat's standby (6 W) steps a 0.01 kWh import register once in a
 * while: one step inside a 15 s window is not 2.4 kW of use. Power read on
 * only some polls counts where it covers half the window. */
static void test_vacant_power_one_register_step_is_not_use(void **state)
{
    (void)state;
    cfg.vacant_power.window_s = 15;
    struct rule_meter m = unit_meter();
    bool vacant = true;
    struct rule_engine *e = make_engine(&cfg, &m, 1, &vacant, 1, NULL, 0, &rec);
    double kwh = 12.34;
    for (int64_t t = T0; t < T0 + 10 * MIN; t += SEC) {
        if ((t - T0) % (2 * MIN) == 0)
            kwh += 0.01; /* the register steps now and then */
        struct rule_meter_sample s = { .meter = 0, .ts_ms = t, .ok = true, .has = RULE_HAS_IMPORT,
                                       .import_kwh = kwh };
        if ((t - T0) % (5 * SEC) != 0) { /* power on 4 polls of 5 */
            s.has |= RULE_HAS_POWER;
            s.power_w = 6.0;
        }
        feed(e, s);
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_rule(&rec, RULE_VACANT_POWER), 0);
    /* Import alone: the same steps, still no use. */
    for (int64_t t = T0 + 10 * MIN; t < T0 + 20 * MIN; t += SEC) {
        if ((t - T0) % (2 * MIN) == 0)
            kwh += 0.01;
        struct rule_meter_sample s = { .meter = 0, .ts_ms = t, .ok = true, .has = RULE_HAS_IMPORT,
                                       .import_kwh = kwh };
        feed(e, s);
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_rule(&rec, RULE_VACANT_POWER), 0);
    rule_engine_destroy(e);
}

static void test_vacant_power_thresholds_are_checked(void **state)
{
    (void)state;
    cfg.vacant_power.clear_below_w = 100.0;
    cfg.vacant_power.threshold_w = 50.0;
    assert_int_equal(rule_config_check(&cfg), EST_ERR_RANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_export_growth_raises_after_confirmation_and_clears, setup),
        cmocka_unit_test_setup(test_export_below_one_step_or_expected_is_silent, setup),
        cmocka_unit_test_setup(test_negative_power_needs_hold_time, setup),
        cmocka_unit_test_setup(test_negative_power_threshold_scales_with_rating, setup),
        cmocka_unit_test_setup(test_reversed_ct_on_one_phase, setup),
        cmocka_unit_test_setup(test_decreasing_import_is_implausible_not_reverse, setup),
        cmocka_unit_test_setup(test_export_updates_only_when_doubled, setup),
        cmocka_unit_test_setup(test_jump_raises_once_then_new_baseline_clears, setup),
        cmocka_unit_test_setup(test_one_odd_sample_is_one_incident, setup),
        cmocka_unit_test_setup(test_integer_counter_wrap_is_silent, setup),
        cmocka_unit_test_setup(test_nan_inf_negative_are_bad_values_and_do_not_propagate, setup),
        cmocka_unit_test_setup(test_frozen_counter_while_power_flows, setup),
        cmocka_unit_test_setup(test_float32_resolution_steps_are_silent, setup),
        cmocka_unit_test_setup(test_serial_change_is_replacement_with_rebaseline, setup),
        cmocka_unit_test_setup(test_serial_change_against_last_seen_and_update, setup),
        cmocka_unit_test_setup(test_offline_after_failures_clears_on_first_good_poll, setup),
        cmocka_unit_test_setup(test_disabled_rule_is_silent, setup),
        cmocka_unit_test_setup(test_vacant_power_raises_over_window_and_clears_with_hysteresis, setup),
        cmocka_unit_test_setup(test_vacant_power_is_silent_in_occupied_units_and_cleared_by_moving_in, setup),
        cmocka_unit_test_setup(test_vacant_power_from_the_import_register_alone, setup),
        cmocka_unit_test_setup(test_vacant_power_ignores_a_counter_jump, setup),
        cmocka_unit_test_setup(test_vacant_power_one_register_step_is_not_use, setup),
        cmocka_unit_test_setup(test_vacant_power_thresholds_are_checked, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
