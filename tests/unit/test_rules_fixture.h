/* test_rules_fixture.h - shared helpers for the rule engine unit tests: an
 * event/action recorder, topology builders and sample constructors. Header
 * only (every test_rules_*.c is its own executable). */
#ifndef TEST_RULES_FIXTURE_H
#define TEST_RULES_FIXTURE_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rules.h"

#define MAX_RECORDED 512
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
/* 2026-01-01T00:00:00Z, a round day boundary in UTC */
#define T0 1767225600000LL

struct recorder {
    struct rule_event events[MAX_RECORDED];
    size_t nevents;
    struct rule_action actions[16];
    size_t nactions;
};

static inline void record_event(void *ctx, const struct rule_event *ev)
{
    struct recorder *r = ctx;
    if (r->nevents < MAX_RECORDED)
        r->events[r->nevents++] = *ev;
}

static inline void record_action(void *ctx, const struct rule_action *action)
{
    struct recorder *r = ctx;
    if (r->nactions < 16)
        r->actions[r->nactions++] = *action;
}

static inline size_t count_events(const struct recorder *r, enum rule_id rule, enum rule_transition t)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nevents; i++)
        if (r->events[i].rule == rule && r->events[i].transition == t)
            n++;
    return n;
}

static inline size_t count_rule(const struct recorder *r, enum rule_id rule)
{
    return count_events(r, rule, RULE_RAISED) + count_events(r, rule, RULE_UPDATED) +
           count_events(r, rule, RULE_CLEARED);
}

static inline const struct rule_event *last_event(const struct recorder *r, enum rule_id rule)
{
    for (size_t i = r->nevents; i-- > 0;)
        if (r->events[i].rule == rule)
            return &r->events[i];
    return NULL;
}

/* The value of a detail key in an event; fails the test when missing. */
static inline double detail_of(const struct rule_event *ev, const char *key)
{
    for (size_t i = 0; i < ev->ndetail; i++)
        if (strcmp(ev->detail[i].key, key) == 0)
            return ev->detail[i].value;
    fail_msg("detail %s missing in %s event", key, rule_name(ev->rule));
    return 0.0;
}

static inline struct rule_meter electricity_meter(void)
{
    struct rule_meter m = {
        .kind = RULE_METER_ELECTRICITY, .category = RULE_CAT_UNIT, .unit = -1, .parent = -1,
        .rated_power_w = 10000.0, .resolution = 0.01, .quiet_start_min = -1, .quiet_end_min = -1,
    };
    return m;
}

static inline struct rule_meter water_meter(int unit)
{
    struct rule_meter m = {
        .kind = RULE_METER_WATER, .category = RULE_CAT_UNIT, .unit = unit, .parent = -1,
        .max_flow_m3h = 5.0, .resolution = 0.001, .has_valve = true, .quiet_start_min = -1,
        .quiet_end_min = -1,
    };
    return m;
}

/* An engine over the given meters, units and panels, recording into rec. */
static inline struct rule_engine *make_engine(const struct rule_config *cfg, const struct rule_meter *meters,
                                              size_t nmeters, const bool *vacant, size_t nunits,
                                              const uint16_t *zones, size_t npanels, struct recorder *rec)
{
    struct rule_topology topo = {
        .nmeters = nmeters, .meters = meters, .nunits = nunits, .unit_vacant = vacant,
        .npanels = npanels, .panel_zones = zones,
    };
    struct rule_engine *e = NULL;
    memset(rec, 0, sizeof *rec);
    assert_int_equal(rule_engine_create(cfg, &topo, record_event, record_action, rec, &e), EST_OK);
    assert_non_null(e);
    return e;
}

static inline struct rule_meter_sample elec_sample(uint32_t meter, int64_t ts, double import_kwh,
                                                   double export_kwh, double power_w)
{
    struct rule_meter_sample s = {
        .meter = meter, .ts_ms = ts, .ok = true,
        .has = RULE_HAS_IMPORT | RULE_HAS_EXPORT | RULE_HAS_POWER,
        .import_kwh = import_kwh, .export_kwh = export_kwh, .power_w = power_w,
    };
    return s;
}

static inline struct rule_meter_sample water_sample(uint32_t meter, int64_t ts, double volume_m3,
                                                    double flow_m3h)
{
    struct rule_meter_sample s = {
        .meter = meter, .ts_ms = ts, .ok = true, .has = RULE_HAS_VOLUME | RULE_HAS_FLOW,
        .volume_m3 = volume_m3, .flow_m3h = flow_m3h, .valve = RULE_VALVE_OPEN,
    };
    return s;
}

static inline void feed(struct rule_engine *e, struct rule_meter_sample s)
{
    assert_int_equal(rule_engine_feed_meter(e, &s), EST_OK);
}

static inline struct rule_subject meter_subject(uint32_t meter)
{
    struct rule_subject s = { RULE_SUBJECT_METER, meter, -1 };
    return s;
}

#endif
