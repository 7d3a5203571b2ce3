/* test_rules_water.c - vacant_flow (with valve close and read-back),
 * continuous_flow (with the irrigation quiet window, also across a
 * daylight-saving change), balance_loss and a battery meter's battery_low: each
 * fires on its condition, stays silent on near misses, clears with
 * hysteresis and never fires twice. */
#include "test_rules_fixture.h"

static struct rule_config cfg;
static struct recorder rec;

static int setup(void **state)
{
    (void)state;
    rule_config_defaults(&cfg);
    return 0;
}

static struct rule_subject unit_subject(uint32_t unit)
{
    struct rule_subject s = { RULE_SUBJECT_UNIT, unit, -1 };
    return s;
}

/* Feeds volume readings every step_ms rising by rise_m3 each time, with
 * a tick after each; returns the volume reached. */
static double run_water(struct rule_engine *e, uint32_t meter, int64_t from, int64_t to, int64_t step_ms,
                        double volume_m3, double rise_m3)
{
    for (int64_t t = from; t < to; t += step_ms) {
        feed(e, water_sample(meter, t, volume_m3, rise_m3 > 0 ? rise_m3 * HOUR / step_ms : 0.0));
        rule_engine_tick(e, t);
        volume_m3 += rise_m3;
    }
    return volume_m3;
}

/* --- vacant_flow --- */

static void test_vacant_flow_raises_on_two_increasing_reads(void **state)
{
    (void)state;
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    feed(e, water_sample(0, T0, 10.000, 0));
    feed(e, water_sample(0, T0 + 10 * SEC, 10.002, 0.7));
    assert_int_equal(count_rule(&rec, RULE_VACANT_FLOW), 0);
    feed(e, water_sample(0, T0 + 20 * SEC, 10.004, 0.7));
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_VACANT_FLOW);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_UNIT);
    assert_int_equal(ev->subject.index, 0);
    assert_int_equal(ev->severity, RULE_SEV_MAJOR);
    assert_true(fabs(detail_of(ev, "volume_m3") - 0.004) < 1e-9);
    assert_true(detail_of(ev, "meter") == 0.0);
    assert_true(detail_of(ev, "valve_failed") == 0.0);
    assert_int_equal(rec.nactions, 0); /* auto_close_valve is off by default */
    struct rule_subject u = unit_subject(0);
    assert_true(rule_engine_condition_active(e, RULE_VACANT_FLOW, &u));

    /* keeps flowing: one incident; volume doubling updates it */
    double v = run_water(e, 0, T0 + 30 * SEC, T0 + 10 * MIN, 10 * SEC, 10.006, 0.002);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 1);
    assert_true(count_events(&rec, RULE_VACANT_FLOW, RULE_UPDATED) >= 1);
    /* stops: absent after window_s (600 s) without increase, cleared clear_s (300 s) later */
    int64_t stop = T0 + 10 * MIN;
    run_water(e, 0, stop, stop + 890 * SEC, 10 * SEC, v, 0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_CLEARED), 0);
    run_water(e, 0, stop + 890 * SEC, stop + 920 * SEC, 10 * SEC, v, 0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_VACANT_FLOW, &u));
    rule_engine_destroy(e);
}

static void test_vacant_flow_near_misses(void **state)
{
    (void)state;
    cfg.vacant_flow.min_increase_m3 = 0.005;
    struct rule_meter meters[4] = { water_meter(0), water_meter(1), water_meter(-1), water_meter(2) };
    bool vacant[3] = { true, false, true };
    struct rule_engine *e = make_engine(&cfg, meters, 4, vacant, 3, NULL, 0, &rec);
    /* meter 0: one single step, then nothing for an hour */
    feed(e, water_sample(0, T0, 5.000, 0));
    feed(e, water_sample(0, T0 + 10 * SEC, 5.001, 0));
    run_water(e, 0, T0 + 20 * SEC, T0 + HOUR, 10 * SEC, 5.001, 0);
    /* meter 0 again: two rising reads but only 0.004 m3 in total (< 0.005) */
    run_water(e, 0, T0 + HOUR, T0 + HOUR + 30 * SEC, 10 * SEC, 5.001, 0.002);
    /* meter 1: occupied unit, normal use all day */
    run_water(e, 1, T0, T0 + 2 * HOUR, 10 * SEC, 100.0, 0.01);
    /* meter 2: no unit at all */
    run_water(e, 2, T0, T0 + HOUR, 10 * SEC, 100.0, 0.01);
    assert_int_equal(count_rule(&rec, RULE_VACANT_FLOW), 0);
    rule_engine_destroy(e);
}

static void test_occupancy_change_clears_and_rearms(void **state)
{
    (void)state;
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    double v = run_water(e, 0, T0, T0 + MIN, 10 * SEC, 1.0, 0.002);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 1);
    assert_int_equal(rule_engine_set_vacant(e, 0, false), EST_OK); /* tenant moved in */
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_CLEARED), 1);
    assert_int_equal(last_event(&rec, RULE_VACANT_FLOW)->ts_ms, T0 + 50 * SEC);
    v = run_water(e, 0, T0 + MIN, T0 + HOUR, 10 * SEC, v, 0.002); /* normal use */
    assert_int_equal(count_rule(&rec, RULE_VACANT_FLOW), 2);
    assert_int_equal(rule_engine_set_vacant(e, 0, true), EST_OK); /* moved out, tap still running */
    run_water(e, 0, T0 + HOUR, T0 + HOUR + MIN, 10 * SEC, v, 0.002);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 2);
    assert_int_equal(rule_engine_set_vacant(e, 5, true), EST_ERR_NOTFOUND);
    rule_engine_destroy(e);
}

/* Runs a vacant unit's meter with auto_close_valve until the valve check:
 * the valve answers with valve_after and the volume rises by rise_after. */
static void run_valve_scenario(struct rule_engine *e, enum rule_valve valve_after, bool fault_after,
                               double rise_after)
{
    double v = run_water(e, 0, T0, T0 + 30 * SEC, 10 * SEC, 1.0, 0.002);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 1);
    assert_int_equal(rec.nactions, 1);
    assert_int_equal(rec.actions[0].type, RULE_ACTION_CLOSE_VALVE);
    assert_int_equal(rec.actions[0].meter, 0);
    for (int64_t t = T0 + 30 * SEC; t <= T0 + 30 * SEC + 2 * MIN; t += 10 * SEC) {
        struct rule_meter_sample s = water_sample(0, t, v, rise_after > 0 ? 0.5 : 0.0);
        s.has |= RULE_HAS_VALVE;
        s.valve = t < T0 + 60 * SEC ? RULE_VALVE_MOVING : valve_after;
        s.valve_fault = t >= T0 + 60 * SEC && fault_after;
        feed(e, s);
        rule_engine_tick(e, t);
        v += rise_after;
    }
    assert_int_equal(rec.nactions, 1); /* closed once per incident */
}

static void test_valve_closes_and_stops_flow(void **state)
{
    (void)state;
    cfg.vacant_flow.auto_close_valve = true;
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    run_valve_scenario(e, RULE_VALVE_CLOSED, false, 0.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_UPDATED), 0);
    assert_int_equal(last_event(&rec, RULE_VACANT_FLOW)->severity, RULE_SEV_MAJOR);
    rule_engine_destroy(e);
}

static void test_valve_fault_escalates_to_critical(void **state)
{
    (void)state;
    cfg.vacant_flow.auto_close_valve = true;
    cfg.vacant_flow.valve_retries = 0; /* the first failed check escalates */
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    run_valve_scenario(e, RULE_VALVE_OPEN, true, 0.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_UPDATED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_VACANT_FLOW);
    assert_int_equal(ev->transition, RULE_UPDATED);
    assert_int_equal(ev->severity, RULE_SEV_CRITICAL);
    assert_true(detail_of(ev, "valve_failed") == 1.0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_flow_not_stopping_escalates(void **state)
{
    (void)state;
    cfg.vacant_flow.auto_close_valve = true;
    cfg.vacant_flow.valve_retries = 0; /* the first failed check escalates */
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    run_valve_scenario(e, RULE_VALVE_CLOSED, false, 0.002); /* reports closed, water still runs */
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_UPDATED) >= 1, 1);
    bool critical = false;
    for (size_t i = 0; i < rec.nevents; i++)
        if (rec.events[i].rule == RULE_VACANT_FLOW && rec.events[i].transition == RULE_UPDATED &&
            rec.events[i].severity == RULE_SEV_CRITICAL)
            critical = true;
    assert_true(critical);
    rule_engine_destroy(e);
}

/* A valve that acknowledges every close but never moves: closed again
 * valve_retries (3) times, each check waiting twice as long, then critical. */
static void test_unmoved_valve_is_closed_again_then_escalates(void **state)
{
    (void)state;
    cfg.vacant_flow.auto_close_valve = true;
    assert_int_equal(cfg.vacant_flow.valve_retries, 3); /* the default */
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    double v = run_water(e, 0, T0, T0 + 30 * SEC, 10 * SEC, 1.0, 0.002);
    assert_int_equal(rec.nactions, 1);
    int64_t action_ts[8] = {rec.actions[0].ts_ms};
    bool critical_early = false;
    for (int64_t t = T0 + 30 * SEC; t <= T0 + 30 * SEC + 20 * MIN; t += 10 * SEC) {
        struct rule_meter_sample s = water_sample(0, t, v, 0.5);
        s.has |= RULE_HAS_VALVE;
        s.valve = RULE_VALVE_OPEN;
        size_t before = rec.nactions;
        feed(e, s);
        rule_engine_tick(e, t);
        if (rec.nactions > before && rec.nactions <= 8)
            action_ts[rec.nactions - 1] = rec.actions[rec.nactions - 1].ts_ms;
        if (rec.nactions < 4 && last_event(&rec, RULE_VACANT_FLOW)->severity == RULE_SEV_CRITICAL)
            critical_early = true;
        v += 0.002;
    }
    assert_false(critical_early);
    assert_int_equal(rec.nactions, 4); /* the close and 3 more */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(rec.actions[i].type, RULE_ACTION_CLOSE_VALVE);
    /* Checks after 60 s, 120 s, 240 s (the next read at or after). */
    assert_true(action_ts[1] - action_ts[0] >= 60 * SEC && action_ts[1] - action_ts[0] < 70 * SEC);
    assert_true(action_ts[2] - action_ts[1] >= 120 * SEC && action_ts[2] - action_ts[1] < 130 * SEC);
    assert_true(action_ts[3] - action_ts[2] >= 240 * SEC && action_ts[3] - action_ts[2] < 250 * SEC);
    const struct rule_event *ev = last_event(&rec, RULE_VACANT_FLOW);
    assert_int_equal(ev->transition, RULE_UPDATED);
    assert_int_equal(ev->severity, RULE_SEV_CRITICAL);
    assert_true(detail_of(ev, "valve_failed") == 1.0);
    assert_true(detail_of(ev, "valve_closes") == 4.0);
    assert_true(ev->ts_ms - action_ts[3] >= 480 * SEC);
    rule_engine_destroy(e);
}

static void test_restored_vacant_flow_is_not_raised_or_closed_again(void **state)
{
    (void)state;
    cfg.vacant_flow.auto_close_valve = true;
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { true };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    struct rule_subject u = unit_subject(0);
    assert_int_equal(rule_engine_restore(e, RULE_VACANT_FLOW, &u, T0 - HOUR), EST_OK);
    assert_true(rule_engine_condition_active(e, RULE_VACANT_FLOW, &u));
    double v = run_water(e, 0, T0, T0 + 5 * MIN, 10 * SEC, 1.0, 0.002);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_RAISED), 0);
    assert_int_equal(rec.nactions, 0);
    run_water(e, 0, T0 + 5 * MIN, T0 + HOUR, 10 * SEC, v, 0);
    assert_int_equal(count_events(&rec, RULE_VACANT_FLOW, RULE_CLEARED), 1);
    assert_int_equal(last_event(&rec, RULE_VACANT_FLOW)->since_ms, T0 - HOUR);
    rule_engine_destroy(e);
}

/* --- continuous_flow --- */

static void test_leak_without_zero_hour_in_a_day(void **state)
{
    (void)state;
    struct rule_meter m = water_meter(-1);
    m.category = RULE_CAT_AMENITY;
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    /* a 5 L/h drip, read every 10 minutes */
    double v = run_water(e, 0, T0, T0 + 24 * HOUR - 10 * MIN, 10 * MIN, 50.0, 0.005 / 6);
    assert_int_equal(count_rule(&rec, RULE_CONTINUOUS_FLOW), 0);
    v = run_water(e, 0, T0 + 24 * HOUR - 10 * MIN, T0 + 25 * HOUR, 10 * MIN, v, 0.005 / 6);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_CONTINUOUS_FLOW);
    assert_int_equal(ev->ts_ms, T0 + 24 * HOUR);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_METER);
    assert_string_equal(ev->reason, "no_zero_flow");
    assert_true(detail_of(ev, "hours_without_pause") >= 24.0);
    /* repaired: an hour of zero flow clears it */
    int64_t fixed = T0 + 25 * HOUR; /* this read still shows the last drip */
    run_water(e, 0, fixed, fixed + 60 * MIN, 10 * MIN, v, 0);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_CLEARED), 0);
    run_water(e, 0, fixed + 60 * MIN, fixed + 80 * MIN, 10 * MIN, v, 0);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

/* After a restart the engine has not yet watched a whole window: a leak that
 * keeps flowing must stay open, not clear for lack of evidence and be raised
 * again under a new incident once the window has passed. */
static void test_restored_leak_stays_open_while_water_flows(void **state)
{
    (void)state;
    struct rule_meter m = water_meter(-1);
    m.category = RULE_CAT_AMENITY;
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_subject meter = {RULE_SUBJECT_METER, 0, -1};
    assert_int_equal(rule_engine_restore(e, RULE_CONTINUOUS_FLOW, &meter, T0 - 30 * HOUR), EST_OK);
    /* 30 hours of the same drip: more than the window, never a pause */
    double v = run_water(e, 0, T0, T0 + 30 * HOUR, 10 * MIN, 50.0, 0.005 / 6);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_CLEARED), 0);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 0);
    assert_true(rule_engine_condition_active(e, RULE_CONTINUOUS_FLOW, &meter));
    /* repaired: an hour of zero flow clears it, once */
    run_water(e, 0, T0 + 30 * HOUR, T0 + 31 * HOUR + 20 * MIN, 10 * MIN, v, 0);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_CLEARED), 1);
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 0);
    rule_engine_destroy(e);
}

/* Local (UTC+8) minute of day. */
static int local_minute(int64_t t)
{
    return (int)(((t / MIN) + 480) % 1440);
}

/* Flow everywhere except [01:00, 02:00) and [05:00, 05:30) local; the
 * irrigation runs 02:00-05:00. Without the window no stretch reaches an
 * hour; with it, 01:05-02:00 and 05:00-05:25 join up across the window. */
static bool irrigation_site_flows(int64_t t)
{
    int minute = local_minute(t);
    return !((minute >= 60 && minute < 120) || (minute >= 300 && minute < 330));
}

static void test_irrigation_in_quiet_window_is_silent(void **state)
{
    (void)state;
    struct rule_meter meters[2] = { water_meter(-1), water_meter(-1) };
    meters[0].category = meters[1].category = RULE_CAT_LANDSCAPE;
    meters[0].quiet_start_min = 120; /* 02:00 */
    meters[0].quiet_end_min = 300;   /* 05:00 */
    meters[0].utc_offset_min = meters[1].utc_offset_min = 480;
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    double v = 10.0;
    for (int64_t t = T0; t < T0 + 3 * 24 * HOUR; t += 5 * MIN) {
        bool flows = irrigation_site_flows(t);
        feed(e, water_sample(0, t, v, flows ? 0.3 : 0.0));
        feed(e, water_sample(1, t, v, flows ? 0.3 : 0.0));
        rule_engine_tick(e, t);
        if (flows)
            v += 0.025;
    }
    /* the exempt meter's zero stretch spans the window */
    struct rule_subject exempt = meter_subject(0);
    assert_false(rule_engine_condition_active(e, RULE_CONTINUOUS_FLOW, &exempt));
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 1);
    assert_int_equal(last_event(&rec, RULE_CONTINUOUS_FLOW)->subject.index, 1);
    rule_engine_destroy(e);
}

/* The irrigation site of the test above in Europe/Berlin, whose offset
 * goes from +60 to +120 on the second night (daylight saving): the window follows
 * the local clock only when the caller moves the engine's offset. */
static size_t irrigation_raises_across_dst(bool move_offset)
{
    struct rule_meter meter = water_meter(-1);
    meter.category = RULE_CAT_LANDSCAPE;
    meter.quiet_start_min = 120; /* 02:00 */
    meter.quiet_end_min = 300;   /* 05:00 */
    meter.utc_offset_min = 60;
    struct rule_engine *e = make_engine(&cfg, &meter, 1, NULL, 0, NULL, 0, &rec);
    const int64_t change = T0 + 25 * HOUR; /* 02:00 local becomes 03:00, as in March */
    double v = 10.0;
    for (int64_t t = T0; t < T0 + 4 * 24 * HOUR; t += 5 * MIN) {
        int offset = t < change ? 60 : 120;
        if (move_offset)
            assert_int_equal(rule_engine_set_utc_offset(e, offset), EST_OK);
        int minute = (int)(((t / MIN) + offset) % 1440);
        bool flows = !((minute >= 60 && minute < 120) || (minute >= 300 && minute < 330));
        feed(e, water_sample(0, t, v, flows ? 0.3 : 0.0));
        rule_engine_tick(e, t);
        if (flows)
            v += 0.025;
    }
    assert_int_equal(rule_engine_set_utc_offset(e, 1440), EST_ERR_RANGE);
    assert_int_equal(rule_engine_set_utc_offset(NULL, 0), EST_ERR_INVALID);
    rule_engine_destroy(e);
    return count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED);
}

static void test_quiet_window_follows_daylight_saving(void **state)
{
    (void)state;
    assert_int_equal(irrigation_raises_across_dst(true), 0);
    /* An offset kept from the start puts the window an hour early. */
    assert_int_equal(irrigation_raises_across_dst(false), 1);
}

/* The same site with an engine clock 5 h behind the wall clock (a
 * monotonic clock after the wall clock was stepped): the quiet window is
 * local wall-clock time, so it still covers the irrigation. */
static void test_quiet_window_follows_the_wall_offset(void **state)
{
    (void)state;
    const int64_t behind = 5 * HOUR;
    struct rule_meter meters[2] = { water_meter(-1), water_meter(-1) };
    meters[0].category = meters[1].category = RULE_CAT_LANDSCAPE;
    meters[0].quiet_start_min = 120;
    meters[0].quiet_end_min = 300;
    meters[0].utc_offset_min = meters[1].utc_offset_min = 480;
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    rule_engine_set_wall_offset(e, behind);
    double v = 10.0;
    for (int64_t t = T0; t < T0 + 3 * 24 * HOUR; t += 5 * MIN) {
        bool flows = irrigation_site_flows(t); /* t: the wall clock */
        feed(e, water_sample(0, t - behind, v, flows ? 0.3 : 0.0));
        feed(e, water_sample(1, t - behind, v, flows ? 0.3 : 0.0));
        rule_engine_tick(e, t - behind);
        if (flows)
            v += 0.025;
    }
    struct rule_subject exempt = meter_subject(0);
    assert_false(rule_engine_condition_active(e, RULE_CONTINUOUS_FLOW, &exempt));
    assert_int_equal(count_events(&rec, RULE_CONTINUOUS_FLOW, RULE_RAISED), 1);
    assert_int_equal(last_event(&rec, RULE_CONTINUOUS_FLOW)->subject.index, 1);
    rule_engine_destroy(e);
}

static void test_household_pattern_and_master_meters_are_silent(void **state)
{
    (void)state;
    struct rule_meter meters[2] = { water_meter(-1), water_meter(-1) };
    meters[1].category = RULE_CAT_MASTER; /* never stops, but it is the whole site */
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    double v0 = 1.0, v1 = 1000.0;
    for (int64_t t = T0; t < T0 + 4 * 24 * HOUR; t += 10 * MIN) {
        int hour = (int)((t / HOUR) % 24);
        bool in_use = hour >= 6 && hour < 23; /* nobody uses water 23:00-06:00 */
        feed(e, water_sample(0, t, v0, in_use ? 0.05 : 0.0));
        feed(e, water_sample(1, t, v1, 2.0));
        rule_engine_tick(e, t);
        v0 += in_use ? 0.008 : 0.0;
        v1 += 0.33;
    }
    assert_int_equal(count_rule(&rec, RULE_CONTINUOUS_FLOW), 0);
    rule_engine_destroy(e);
}

/* --- balance_loss --- */

/* Parent 0 with children 1 and 2, water, polled every 5 minutes; per hour
 * the parent rises parent_m3 and each child child_m3[i]. */
static void run_balance(struct rule_engine *e, int64_t from, int hours, double parent_m3,
                        const double child_m3[2], double volume[3], bool child2_online)
{
    const int64_t step = 5 * MIN;
    for (int64_t t = from; t < from + hours * HOUR; t += step) {
        feed(e, water_sample(0, t, volume[0], 0));
        feed(e, water_sample(1, t, volume[1], 0));
        if (child2_online)
            feed(e, water_sample(2, t, volume[2], 0));
        rule_engine_tick(e, t + 1 * SEC);
        volume[0] += parent_m3 * step / HOUR;
        volume[1] += child_m3[0] * step / HOUR;
        volume[2] += child_m3[1] * step / HOUR;
    }
}

static struct rule_engine *balance_engine(void)
{
    static struct rule_meter meters[3];
    meters[0] = water_meter(-1);
    meters[0].category = RULE_CAT_BUILDING;
    meters[0].max_flow_m3h = 100.0;
    meters[1] = water_meter(-1);
    meters[2] = water_meter(-1);
    meters[1].parent = meters[2].parent = 0;
    meters[1].max_flow_m3h = meters[2].max_flow_m3h = 100.0;
    cfg.balance_loss.window_s = 3600;
    cfg.balance_loss.c.clear_s = 3600;
    cfg.continuous_flow.c.enabled = false;
    return make_engine(&cfg, meters, 3, NULL, 0, NULL, 0, &rec);
}

static void test_balance_loss_raises_and_clears(void **state)
{
    (void)state;
    struct rule_engine *e = balance_engine();
    double volume[3] = { 100.0, 40.0, 50.0 };
    const double leaky[2] = { 4.0, 4.5 }, tight[2] = { 5.0, 4.9 };
    run_balance(e, T0, 2, 10.0, tight, volume, true); /* 1% loss */
    assert_int_equal(count_rule(&rec, RULE_BALANCE_LOSS), 0);
    run_balance(e, T0 + 2 * HOUR, 3, 10.0, leaky, volume, true); /* 15% loss */
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_BALANCE_LOSS);
    assert_int_equal(ev->subject.index, 0);
    assert_true(fabs(detail_of(ev, "loss_pct") - 15.0) < 0.5);
    assert_true(fabs(detail_of(ev, "parent") - 10.0) < 0.01);
    assert_true(detail_of(ev, "tolerance_pct") == 8.0);
    /* evaluated at the boundary, once the window's data is complete */
    assert_true(ev->ts_ms >= T0 + 3 * HOUR && ev->ts_ms < T0 + 3 * HOUR + 10 * MIN);
    run_balance(e, T0 + 5 * HOUR, 3, 10.0, tight, volume, true);
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_CLEARED), 1);
    rule_engine_destroy(e);
}

static void test_balance_near_misses_and_low_flow_tolerance(void **state)
{
    (void)state;
    struct rule_engine *e = balance_engine();
    double volume[3] = { 100.0, 40.0, 50.0 };
    const double five_pct[2] = { 4.5, 5.0 };
    run_balance(e, T0, 4, 10.0, five_pct, volume, true);
    /* low flow: 16% loss of 0.5 m3/h is within the 20% low-flow tolerance */
    const double low[2] = { 0.2, 0.22 };
    run_balance(e, T0 + 4 * HOUR, 4, 0.5, low, volume, true);
    assert_int_equal(count_rule(&rec, RULE_BALANCE_LOSS), 0);
    /* the same 16% at 5 m3/h is a loss */
    const double high[2] = { 2.0, 2.2 };
    run_balance(e, T0 + 8 * HOUR, 2, 5.0, high, volume, true);
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_balance_skips_windows_with_missing_child(void **state)
{
    (void)state;
    struct rule_engine *e = balance_engine();
    double volume[3] = { 100.0, 40.0, 50.0 };
    const double leaky[2] = { 4.0, 4.5 };
    run_balance(e, T0, 4, 10.0, leaky, volume, false); /* child 2 never answers */
    assert_int_equal(count_rule(&rec, RULE_BALANCE_LOSS), 0);
    rule_engine_destroy(e);
}

static void test_balance_ignores_the_partial_first_window(void **state)
{
    (void)state;
    struct rule_engine *e = balance_engine();
    double volume[3] = { 100.0, 40.0, 50.0 };
    const double tight[2] = { 5.0, 4.9 };
    /* The engine starts 50 minutes into a window; the children answer first
     * 8 minutes after the parent: their first window's increases cover
     * different stretches and would look like an 80% loss. */
    feed(e, water_sample(0, T0 + 50 * MIN, volume[0], 0));
    volume[0] += 10.0 * 8 / 60;
    volume[1] += 5.0 * 8 / 60;
    volume[2] += 4.9 * 8 / 60;
    feed(e, water_sample(1, T0 + 58 * MIN, volume[1], 0));
    feed(e, water_sample(2, T0 + 58 * MIN, volume[2], 0));
    volume[0] += 10.0 * 2 / 60;
    volume[1] += 5.0 * 2 / 60;
    volume[2] += 4.9 * 2 / 60;
    run_balance(e, T0 + HOUR, 3, 10.0, tight, volume, true); /* 1% loss from then on */
    assert_int_equal(count_rule(&rec, RULE_BALANCE_LOSS), 0);
    rule_engine_destroy(e);
}

/* The wall clock set back a day: the balance windows (local wall-clock
 * time) start afresh instead of waiting a day for the windows already seen. */
static void test_balance_resumes_after_the_wall_clock_is_set_back(void **state)
{
    (void)state;
    struct rule_engine *e = balance_engine();
    double volume[3] = { 100.0, 40.0, 50.0 };
    const double leaky[2] = { 4.0, 4.5 }, tight[2] = { 5.0, 4.9 };
    run_balance(e, T0, 2, 10.0, tight, volume, true);
    rule_engine_set_wall_offset(e, -24 * HOUR);
    run_balance(e, T0 + 2 * HOUR, 4, 10.0, leaky, volume, true); /* 15% loss */
    assert_int_equal(count_events(&rec, RULE_BALANCE_LOSS, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_BALANCE_LOSS);
    assert_true(fabs(detail_of(ev, "loss_pct") - 15.0) < 0.5);
    rule_engine_destroy(e);
}

/* --- battery_low --- */

/* A water meter's read with its battery flag (and a still volume). */
static struct rule_meter_sample battery_sample(uint32_t meter, int64_t ts, bool low)
{
    struct rule_meter_sample s = water_sample(meter, ts, 56.78, 0);
    s.has |= RULE_HAS_BATTERY;
    s.battery_low = low;
    return s;
}

static void test_battery_low_raises_minor_and_clears_with_hysteresis(void **state)
{
    (void)state;
    cfg.battery_low.c.clear_s = 60;
    struct rule_meter m = water_meter(0);
    bool vacant[1] = { false };
    struct rule_engine *e = make_engine(&cfg, &m, 1, vacant, 1, NULL, 0, &rec);
    struct rule_subject subject = meter_subject(0);
    feed(e, battery_sample(0, T0, false));
    feed(e, battery_sample(0, T0 + 10 * SEC, true));
    assert_int_equal(count_rule(&rec, RULE_BATTERY_LOW), 0); /* one read is not enough */
    feed(e, battery_sample(0, T0 + 20 * SEC, true));
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_RAISED), 1);
    const struct rule_event *ev = last_event(&rec, RULE_BATTERY_LOW);
    assert_int_equal(ev->subject.type, RULE_SUBJECT_METER);
    assert_int_equal(ev->subject.index, 0);
    assert_int_equal(ev->severity, RULE_SEV_MINOR);
    assert_string_equal(ev->reason, "battery_low");
    assert_true(rule_engine_condition_active(e, RULE_BATTERY_LOW, &subject));

    /* the flag flickers (the motor's load) and stays: one incident, no clear */
    for (int i = 3; i < 30; i++) {
        feed(e, battery_sample(0, T0 + i * 10 * SEC, i % 4 != 0));
        rule_engine_tick(e, T0 + i * 10 * SEC);
    }
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_RAISED), 1);
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_CLEARED), 0);

    /* battery changed: the flag stays away for clear_s, then it clears once */
    int64_t fixed = T0 + 300 * SEC;
    for (int64_t t = fixed; t < fixed + 50 * SEC; t += 10 * SEC) {
        feed(e, battery_sample(0, t, false));
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_CLEARED), 0);
    for (int64_t t = fixed + 50 * SEC; t <= fixed + 70 * SEC; t += 10 * SEC) {
        feed(e, battery_sample(0, t, false));
        rule_engine_tick(e, t);
    }
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_CLEARED), 1);
    assert_false(rule_engine_condition_active(e, RULE_BATTERY_LOW, &subject));
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_RAISED), 1);
    rule_engine_destroy(e);
}

static void test_battery_low_needs_the_flag_on_good_reads(void **state)
{
    (void)state;
    cfg.battery_low.confirm_reads = 3;
    struct rule_meter meters[2] = { water_meter(-1), water_meter(-1) };
    struct rule_engine *e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    /* meter 0: low, low, a read without the flag, low, low: never 3 in a row */
    const bool pattern[] = { true, true, false, true, true, false, true };
    for (size_t i = 0; i < sizeof pattern / sizeof pattern[0]; i++)
        feed(e, battery_sample(0, T0 + (int64_t)i * 10 * SEC, pattern[i]));
    /* meter 1: low twice, a failed poll and a read that does not carry the
     * flag in between (no evidence either way), then low once more: raised */
    feed(e, battery_sample(1, T0, true));
    feed(e, battery_sample(1, T0 + 10 * SEC, true));
    struct rule_meter_sample failed = battery_sample(1, T0 + 20 * SEC, true);
    failed.ok = false;
    feed(e, failed);
    feed(e, water_sample(1, T0 + 30 * SEC, 56.78, 0));
    assert_int_equal(count_rule(&rec, RULE_BATTERY_LOW), 0);
    feed(e, battery_sample(1, T0 + 40 * SEC, true));
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_RAISED), 1);
    assert_int_equal(last_event(&rec, RULE_BATTERY_LOW)->subject.index, 1);

    /* disabled: nothing */
    rule_engine_destroy(e);
    cfg.battery_low.c.enabled = false;
    e = make_engine(&cfg, meters, 2, NULL, 0, NULL, 0, &rec);
    for (int i = 0; i < 10; i++)
        feed(e, battery_sample(0, T0 + i * 10 * SEC, true));
    assert_int_equal(count_rule(&rec, RULE_BATTERY_LOW), 0);
    rule_engine_destroy(e);
}

static void test_restored_battery_low_is_not_raised_again(void **state)
{
    (void)state;
    cfg.battery_low.c.clear_s = 0;
    struct rule_meter m = water_meter(-1);
    struct rule_engine *e = make_engine(&cfg, &m, 1, NULL, 0, NULL, 0, &rec);
    struct rule_subject subject = meter_subject(0);
    assert_int_equal(rule_engine_restore(e, RULE_BATTERY_LOW, &subject, T0 - HOUR), EST_OK);
    for (int i = 0; i < 5; i++)
        feed(e, battery_sample(0, T0 + i * 10 * SEC, true));
    assert_int_equal(count_rule(&rec, RULE_BATTERY_LOW), 0);
    feed(e, battery_sample(0, T0 + 60 * SEC, false));
    rule_engine_tick(e, T0 + 61 * SEC);
    assert_int_equal(count_events(&rec, RULE_BATTERY_LOW, RULE_CLEARED), 1);
    rule_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_vacant_flow_raises_on_two_increasing_reads, setup),
        cmocka_unit_test_setup(test_vacant_flow_near_misses, setup),
        cmocka_unit_test_setup(test_occupancy_change_clears_and_rearms, setup),
        cmocka_unit_test_setup(test_valve_closes_and_stops_flow, setup),
        cmocka_unit_test_setup(test_valve_fault_escalates_to_critical, setup),
        cmocka_unit_test_setup(test_unmoved_valve_is_closed_again_then_escalates, setup),
        cmocka_unit_test_setup(test_flow_not_stopping_escalates, setup),
        cmocka_unit_test_setup(test_restored_vacant_flow_is_not_raised_or_closed_again, setup),
        cmocka_unit_test_setup(test_leak_without_zero_hour_in_a_day, setup),
        cmocka_unit_test_setup(test_restored_leak_stays_open_while_water_flows, setup),
        cmocka_unit_test_setup(test_irrigation_in_quiet_window_is_silent, setup),
        cmocka_unit_test_setup(test_quiet_window_follows_daylight_saving, setup),
        cmocka_unit_test_setup(test_quiet_window_follows_the_wall_offset, setup),
        cmocka_unit_test_setup(test_household_pattern_and_master_meters_are_silent, setup),
        cmocka_unit_test_setup(test_balance_loss_raises_and_clears, setup),
        cmocka_unit_test_setup(test_balance_near_misses_and_low_flow_tolerance, setup),
        cmocka_unit_test_setup(test_balance_skips_windows_with_missing_child, setup),
        cmocka_unit_test_setup(test_balance_ignores_the_partial_first_window, setup),
        cmocka_unit_test_setup(test_balance_resumes_after_the_wall_clock_is_set_back, setup),
        cmocka_unit_test_setup(test_battery_low_raises_minor_and_clears_with_hysteresis, setup),
        cmocka_unit_test_setup(test_battery_low_needs_the_flag_on_good_reads, setup),
        cmocka_unit_test_setup(test_restored_battery_low_is_not_raised_again, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
