/* rules_internal.h - engine state shared by the rule engine's source files
 * (incident state machine, meter rules, water rules, fire rules). Not part of
 * the public API: only the rules sources include it. Cross-file functions are named
 * rules__verb. */
#ifndef RULES_INTERNAL_H
#define RULES_INTERNAL_H

#include "rules.h"

/* "No such time": a stretch that has not started or was never observed. */
#define TIME_NEVER INT64_MIN
#define COND_MAX_DETAIL 4
#define NOT_PENDING UINT32_MAX

/* Where a meter's conditions sit in its block of conditions. */
enum meter_slot {
    SLOT_REVERSE, SLOT_CONTINUOUS, SLOT_OFFLINE, SLOT_IMPLAUSIBLE, SLOT_REPLACED, SLOT_BALANCE,
    METER_SLOTS
};
enum panel_slot { PANEL_SLOT_FAULT, PANEL_SLOT_OFFLINE, PANEL_SLOTS };
enum zone_slot { ZONE_SLOT_ALARM, ZONE_SLOT_FAULT, ZONE_SLOT_DISABLED, ZONE_SLOTS };

/* What one evaluation of a rule says about its condition. UNKNOWN (not
 * enough data) leaves the stretch timers as they are. */
enum observation { OBS_UNKNOWN, OBS_ABSENT, OBS_PRESENT };

/* One condition (rule + subject) and its incident: the part every sample
 * touches. What only matters when it is present (reason, detail, metric,
 * subject) lives in struct cond_info at the same index, so the hot array
 * stays small (the benchmark is bound by cache misses). */
struct cond {
    int64_t present_since_ms;  /* start of the current present stretch */
    int64_t absent_since_ms;   /* start of the current absent stretch; TIME_NEVER
                                  while present or never observed absent */
    int64_t raised_since_ms;   /* since_ms of the open incident */
    uint32_t pending_slot;     /* position in engine->pending, NOT_PENDING if absent */
    uint8_t rule;              /* enum rule_id */
    uint8_t present;
    uint8_t raised;
    uint8_t severity;          /* of the open incident */
    uint8_t want_severity;     /* the condition calls for this severity now */
    uint8_t force_update;      /* detail changed in a way the metric cannot show */
};

struct cond_info {
    double metric;             /* size of the condition now (volume, hours, ...) */
    double reported_metric;    /* metric at the last RAISED/UPDATED; NaN = unknown */
    const char *reason;
    struct rule_detail detail[COND_MAX_DETAIL];
    uint32_t subject_index;
    int32_t zone;
    uint8_t subject_type;      /* enum rule_subject_type */
    uint8_t ndetail;
};

/* Per-meter memory between samples. */
struct meter_state {
    int64_t last_ts_ms;        /* last good sample; TIME_NEVER before the first */
    double last_import_kwh, last_export_kwh, last_volume_m3;
    uint32_t last_serial;      /* last serial seen (or inventory), 0 unknown */
    uint32_t failures;         /* consecutive failed polls */
    uint8_t have_import, have_export, have_volume;

    /* reverse_energy */
    double export_growth_kwh;  /* export growth not yet counted as a step */
    double exported_kwh;       /* export counted while the incident is open */
    int export_growth_polls;   /* consecutive polls with growth beyond one step */
    int64_t negative_power_since_ms;
    int64_t reversed_ct_since_ms;
    uint8_t export_confirmed;

    /* implausible_reading: freeze detection over long windows */
    int64_t freeze_ref_ts_ms;  /* when the counter last moved */
    double freeze_expected;    /* counter advance power/flow predicts since then */

    /* vacant_flow */
    double vacant_ref_m3;      /* volume when the current increase began */
    int64_t vacant_last_increase_ms;
    int vacant_increasing_reads;
    int64_t valve_closed_ms;   /* when RULE_ACTION_CLOSE_VALVE went out; TIME_NEVER none */
    uint8_t vacant_present;
    uint8_t valve_checked;

    /* continuous_flow: clock that runs outside the quiet window only */
    int64_t active_ms;
    int64_t zero_start_active_ms;   /* TIME_NEVER while flowing */
    int64_t last_zero_ok_active_ms; /* last moment a long-enough zero stretch was seen */
    uint8_t continuous_started;
    uint8_t continuous_zero_seen;   /* a long-enough zero stretch was seen since start */
    uint8_t last_in_quiet;

    /* balance_loss: counter marks at window starts */
    int64_t window_index;      /* window of window_mark; INT64_MIN none */
    double window_mark;        /* first counter value seen in window_index */
    int64_t done_index;        /* window whose increase is in done_increase */
    double done_increase;
    int64_t evaluated_index;   /* parents: last window evaluated */
    uint8_t window_tainted;    /* a jump/rollback/replacement inside the window */
};

struct unit_state {
    uint8_t vacant;
    uint8_t valve_handled;     /* close command sent (or incident restored) */
    uint8_t valve_failed;      /* valve check failed: incident escalated */
    uint16_t flowing_meters;   /* meters of this unit showing vacant flow */
};

struct panel_state {
    uint32_t failures;
    uint32_t zone_base;        /* index of zone 0 in the zone arrays */
    uint16_t nzones;
};

struct rule_engine {
    struct rule_config config;
    const struct rule_common *common[RULE__COUNT];
    double metric_floor[RULE__COUNT]; /* UPDATED when metric doubles from at least this; 0 never */
    rule_event_fn on_event;
    rule_action_fn on_action;
    void *ctx;
    int64_t now_ms;            /* latest time seen from samples and ticks */

    size_t nmeters, nunits, npanels, nzones;
    struct rule_meter *meters;
    struct meter_state *meter_states;
    struct unit_state *units;
    struct panel_state *panels;
    uint32_t *child_start;     /* children of meter m: child_list[child_start[m]..child_start[m+1]) */
    uint32_t *child_list;
    uint32_t *parent_list;     /* meters with children */
    size_t nparents;

    size_t nconds;
    struct cond *conds;        /* meters, then units, then panels, then zones */
    struct cond_info *infos;   /* same indices as conds */
    uint32_t *pending;         /* conditions waiting for hold_s or clear_s: present != raised */
    size_t npending;
    size_t unit_cond_base, panel_cond_base, zone_cond_base;
};

static inline struct cond *rules__meter_cond(struct rule_engine *e, uint32_t meter, enum meter_slot slot)
{
    return &e->conds[(size_t)meter * METER_SLOTS + slot];
}
static inline struct cond *rules__unit_cond(struct rule_engine *e, uint32_t unit)
{
    return &e->conds[e->unit_cond_base + unit];
}
static inline struct cond *rules__panel_cond(struct rule_engine *e, uint32_t panel, enum panel_slot slot)
{
    return &e->conds[e->panel_cond_base + (size_t)panel * PANEL_SLOTS + slot];
}
static inline struct cond *rules__zone_cond(struct rule_engine *e, uint32_t panel, uint32_t zone,
                                            enum zone_slot slot)
{
    return &e->conds[e->zone_cond_base + ((size_t)e->panels[panel].zone_base + zone) * ZONE_SLOTS + slot];
}

/* --- rules_incident.c: the incident state machine --- */
void rules__cond_init(struct rule_engine *e, struct cond *c, enum rule_id rule, enum rule_subject_type type, uint32_t index,
                      int32_t zone, enum rule_severity severity);
/* Replaces the condition's reason, metric and detail (up to COND_MAX_DETAIL). */
void rules__cond_describe(struct rule_engine *e, struct cond *c, const char *reason, double metric);
void rules__cond_add_detail(struct rule_engine *e, struct cond *c, const char *key, double value);
/* Feeds one evaluation in: starts/ends stretches, raises after hold_s (at
 * once when immediate), updates on material change, clears after clear_s. */
void rules__cond_observe(struct rule_engine *e, struct cond *c, enum observation obs, int64_t ts_ms,
                         bool immediate);
/* Clears an open incident now, whatever clear_s says. */
void rules__cond_clear_now(struct rule_engine *e, struct cond *c, int64_t ts_ms);
/* Emits UPDATED if the open incident's severity or detail changed materially. */
void rules__cond_refresh(struct rule_engine *e, struct cond *c, int64_t ts_ms);
/* Time-driven raise/clear of one condition. */
void rules__cond_tick(struct rule_engine *e, struct cond *c, int64_t now_ms);
void rules__cond_restore(struct rule_engine *e, struct cond *c, int64_t since_ms);

/* --- rules_config.c --- */
est_err rules__config_check(const struct rule_config *config);

/* --- rules_meter.c: offline, meter_replaced, implausible_reading, reverse_energy --- */
void rules__meter_state_init(struct meter_state *s, const struct rule_meter *m);
est_err rules__feed_meter(struct rule_engine *e, const struct rule_meter_sample *sample);

/* --- rules_water.c: vacant_flow, continuous_flow, balance_loss --- */
struct water_input {
    bool have_volume;          /* volume_m3 is a sane reading */
    bool have_increase;        /* increase_m3 is a trusted increase since the last read */
    double volume_m3;
    double increase_m3;        /* 0 when the change is within float noise */
    bool have_flow;
    double flow_m3h;
};

/* Smallest counter step a meter can show: its resolution, or a default. */
static inline double rules__resolution(const struct rule_meter *m)
{
    if (m->resolution > 0.0)
        return m->resolution;
    return m->kind == RULE_METER_WATER ? 0.001 : 0.01;
}
void rules__vacant_flow(struct rule_engine *e, uint32_t meter, const struct rule_meter_sample *s,
                        const struct water_input *in);
void rules__continuous_flow(struct rule_engine *e, uint32_t meter, int64_t ts_ms,
                            const struct water_input *in);
/* Records the balance counter (volume or import) of a meter's good sample. */
void rules__balance_mark(struct rule_engine *e, uint32_t meter, int64_t ts_ms, double value, bool tainted);
void rules__balance_tick(struct rule_engine *e, int64_t now_ms);
/* Occupancy change: resets vacant-flow tracking of the unit's meters. */
void rules__vacant_changed(struct rule_engine *e, uint32_t unit, bool vacant);

/* --- rules_fire.c --- */
est_err rules__feed_panel(struct rule_engine *e, const struct rule_panel_sample *sample);

#endif
