/* rules_internal.h - engine state shared by the rule engine's source files
 * (incident state machine, meter rules, water rules, fire rules). Not part of
 * the public API: only the rules sources include it. Cross-file functions are named
 * rules__verb. */
#ifndef RULES_INTERNAL_H
#define RULES_INTERNAL_H

#include <assert.h>

#include "rules.h"

/* "No such time": a stretch that has not started or was never observed. */
#define TIME_NEVER INT64_MIN
#define COND_MAX_DETAIL 4
#define NOT_PENDING UINT32_MAX

/* Where a meter's conditions sit in its block of conditions. */
enum meter_slot {
    SLOT_REVERSE, SLOT_CONTINUOUS, SLOT_OFFLINE, SLOT_IMPLAUSIBLE, SLOT_REPLACED, SLOT_BALANCE,
    SLOT_VACANT_POWER, SLOT_BATTERY, METER_SLOTS
};
enum panel_slot { PANEL_SLOT_FAULT, PANEL_SLOT_OFFLINE, PANEL_SLOTS };
enum zone_slot { ZONE_SLOT_ALARM, ZONE_SLOT_FAULT, ZONE_SLOT_DISABLED, ZONE_SLOT_SUPERVISORY,
                 ZONE_SLOTS };

/* What one evaluation of a rule says about its condition. UNKNOWN (not
 * enough data) leaves the stretch timers as they are. */
enum observation { OBS_UNKNOWN, OBS_ABSENT, OBS_PRESENT };

#define NO_INFO UINT32_MAX

/* One condition (rule + subject) and its incident: the part every sample
 * touches, 16 bytes. An idle condition (neither present nor raised) needs
 * nothing more. While active (present, raised or both) it also owns a
 * struct cond_info from the engine's pool: what only matters then (reason,
 * detail, metric, severity, raise time, place in the pending list). Most
 * conditions are idle most of the time, so the pool stays small; the
 * subject is not stored: it follows from the condition's index. */
struct cond {
    int64_t since_ms;          /* present: start of the present stretch; not present: start
                                  of the absent stretch, TIME_NEVER if never observed absent */
    uint32_t info;             /* index into engine->infos while active, NO_INFO while idle */
    uint8_t rule;              /* enum rule_id */
    uint8_t present;
    uint8_t raised;
};

struct cond_info {
    int64_t raised_since_ms;   /* since_ms of the open incident; TIME_NEVER while not raised */
    double metric;             /* size of the condition now (volume, hours, ...) */
    double reported_metric;    /* metric at the last RAISED/UPDATED; NaN = unknown */
    const char *reason;
    struct rule_detail detail[COND_MAX_DETAIL];
    uint32_t cond;             /* the owner's index in conds; while free: the next free info */
    uint32_t pending_slot;     /* position in engine->pending, NOT_PENDING if absent */
    uint8_t severity;          /* of the open incident */
    uint8_t want_severity;     /* the condition calls for this severity now */
    uint8_t force_update;      /* detail changed in a way the metric cannot show */
    uint8_t ndetail;
};

/* A condition restored for a meter rule that cannot apply to the meter (the
 * configuration changed since it was raised): kept after the fixed
 * conditions so the incident stays open as before. */
struct extra_cond {
    uint32_t meter;
    uint32_t slot;             /* enum meter_slot */
};

#define NO_BALANCE UINT32_MAX

/* reverse_energy state of an electricity meter. */
struct elec_state {
    double export_growth_kwh;  /* export growth not yet counted as a step */
    double exported_kwh;       /* export counted while the incident is open */
    int64_t negative_power_since_ms;
    int64_t reversed_ct_since_ms;
    int export_growth_polls;   /* consecutive polls with growth beyond one step */
    uint8_t export_confirmed;

    /* vacant_power: the current averaging window */
    int64_t vacant_window_start_ms; /* TIME_NEVER: no window (unit occupied, or no data yet) */
    int64_t vacant_last_ts_ms;
    int64_t vacant_power_ms;        /* time of the window the power register covered */
    double vacant_energy_wh;        /* integrated from the power register over that time */
    double vacant_import_ref_kwh;   /* import register at the window start */
    double vacant_last_power_w;
    uint8_t vacant_last_has_power;  /* the last read had power */
    uint8_t vacant_import_usable;   /* the import register rose trustworthily throughout */
};

/* vacant_flow and continuous_flow state of a water meter. */
struct water_state {
    /* vacant_flow */
    double vacant_ref_m3;      /* volume when the current increase began */
    int64_t vacant_last_increase_ms;
    int64_t valve_closed_ms;   /* when RULE_ACTION_CLOSE_VALVE went out; TIME_NEVER none */
    int vacant_increasing_reads;
    uint8_t vacant_present;
    uint8_t valve_checked;
    uint8_t valve_closes;      /* close commands sent for the current incident */

    /* continuous_flow: clock that runs outside the quiet window only */
    uint8_t continuous_started;
    uint8_t continuous_zero_seen;   /* a long-enough zero stretch was seen since start */
    uint8_t last_in_quiet;
    int64_t active_ms;
    int64_t zero_start_active_ms;   /* TIME_NEVER while flowing */
    int64_t last_zero_ok_active_ms; /* last moment a long-enough zero stretch was seen */
};

/* One meter: what the rules need of its struct rule_meter (narrowed), then
 * its memory between samples. Only the state of its kind's rules. */
struct meter_state {
    double rated;              /* electricity: rated_power_w; water: max_flow_m3h (0 = none
                                  or the rule's default) */
    double resolution;         /* smallest counter step: rules__resolution() of the meter */
    double counter_wrap;       /* integer counters: wrap value, 0 = none (float32) */
    int32_t unit;              /* index into units, -1 none */
    uint32_t balance;          /* index into engine->balance, NO_BALANCE outside balance groups */
    uint32_t cond_base;        /* its conditions: one per applicable slot, from here */
    int16_t quiet_start_min;   /* continuous_flow exemption window, -1 none */
    int16_t quiet_end_min;
    int16_t utc_offset_min;
    uint8_t kind;              /* enum rule_meter_kind */
    uint8_t has_valve;
    uint8_t slots;             /* bit (1 << enum meter_slot) for each applicable slot */
    uint8_t have_import, have_export, have_volume;

    int64_t last_ts_ms;        /* last good sample; TIME_NEVER before the first */
    double last_import_kwh, last_export_kwh, last_volume_m3;
    uint32_t last_serial;      /* last serial seen (or inventory), 0 unknown */
    uint32_t failures;         /* consecutive failed polls */
    uint32_t battery_low_reads; /* consecutive good reads with the battery-low flag */

    /* implausible_reading: freeze detection over long windows */
    int64_t freeze_ref_ts_ms;  /* when the counter last moved */
    double freeze_expected;    /* counter advance power/flow predicts since then */

    union {
        struct elec_state elec;   /* kind RULE_METER_ELECTRICITY */
        struct water_state water; /* kind RULE_METER_WATER */
    };
};

/* balance_loss: counter marks at window starts, for meters with a parent
 * or children. */
struct balance_state {
    int64_t window_index;      /* window of window_mark; INT64_MIN none */
    double window_mark;        /* first counter value seen in window_index */
    int64_t done_index;        /* window whose increase is in done_increase */
    double done_increase;
    uint8_t window_tainted;    /* a jump/rollback/replacement inside the window */
};

/* A meter with children. Its children's balance states are
 * balance_children[child_start .. the next parent's child_start). */
struct balance_parent {
    uint32_t meter;
    uint32_t child_start;
    int64_t evaluated_index;   /* last window evaluated */
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
    int64_t wall_offset_ms;    /* wall clock minus engine time, for local-time rules */

    size_t nmeters, nunits, npanels, nzones;
    struct meter_state *meter_states;
    struct unit_state *units;
    struct panel_state *panels;
    struct balance_state *balance;      /* members of balance groups, in meter order */
    struct balance_parent *parents;     /* nparents + 1 (the last only ends the children) */
    uint32_t *balance_children;         /* balance indices, grouped by parent */
    size_t nparents;

    size_t nconds;             /* fixed conditions, then restored extras */
    size_t conds_cap;
    struct cond *conds;        /* meters (applicable slots), units, panels, zones, extras */
    size_t unit_cond_base, panel_cond_base, zone_cond_base, extra_cond_base;
    struct extra_cond *extras; /* nconds - extra_cond_base entries */
    size_t extras_cap;

    struct cond_info *infos;   /* pool of ninfos; the free ones chained from free_info */
    size_t ninfos, nfree;
    uint32_t free_info;
    uint32_t *pending;         /* ninfos entries; conditions waiting for hold_s or
                                  clear_s: present != raised (always active) */
    size_t npending;
};

/* How many of the slots below `slot` the meter has: its condition's offset. */
static inline unsigned rules__slot_offset(unsigned slots, enum meter_slot slot)
{
    static const uint8_t ones[16] = { 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4 };
    unsigned below = slots & ((1u << slot) - 1u);
    return ones[below & 15u] + ones[(below >> 4) & 15u];
}

/* A meter's condition for an applicable slot (rules only evaluate those). */
static inline struct cond *rules__meter_cond(struct rule_engine *e, uint32_t meter, enum meter_slot slot)
{
    const struct meter_state *st = &e->meter_states[meter];
    assert(st->slots & (1u << slot));
    return &e->conds[st->cond_base + rules__slot_offset(st->slots, slot)];
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
void rules__cond_init(struct cond *c, enum rule_id rule);
/* Makes sure n more conditions can become active without allocating (each
 * entry point reserves for what it may activate before changing anything):
 * EST_OK or EST_ERR_NOMEM. */
est_err rules__reserve_infos(struct rule_engine *e, size_t n);
void rules__free_infos(struct rule_engine *e);
/* Replaces the condition's reason, metric and detail (up to COND_MAX_DETAIL).
 * Describing makes the condition active (it is about to be observed present). */
void rules__cond_describe(struct rule_engine *e, struct cond *c, const char *reason, double metric);
void rules__cond_add_detail(struct rule_engine *e, struct cond *c, const char *key, double value);
/* After a describe: the severity the condition calls for now. */
void rules__cond_want_severity(struct rule_engine *e, struct cond *c, enum rule_severity severity);
/* After a describe of a raised condition: announce the new detail even if
 * the metric has not changed. */
void rules__cond_force_update(struct rule_engine *e, struct cond *c);
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
/* Everything but the slots, cond_base and balance index. */
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
/* Leak detection watches consumption meters, not master or building meters. */
static inline bool rules__continuous_flow_applies(const struct rule_meter *m)
{
    return m->kind == RULE_METER_WATER && m->category != RULE_CAT_MASTER && m->category != RULE_CAT_BUILDING;
}
void rules__balance_state_init(struct balance_state *b);
void rules__vacant_flow(struct rule_engine *e, uint32_t meter, const struct rule_meter_sample *s,
                        const struct water_input *in);
void rules__continuous_flow(struct rule_engine *e, uint32_t meter, int64_t ts_ms,
                            const struct water_input *in);
/* Records the balance counter (volume or import) of a meter's good sample. */
void rules__balance_mark(struct rule_engine *e, uint32_t meter, int64_t ts_ms, double value, bool tainted);
void rules__balance_tick(struct rule_engine *e, int64_t now_ms);
/* Occupancy change: resets vacant-flow tracking of the unit's meters. */
void rules__vacant_changed(struct rule_engine *e, uint32_t unit, bool vacant);

/* --- rules_meter.c: vacant_power --- */
/* Whether the vacant_power rule can evaluate this meter. */
static inline bool rules__vacant_power_applies(const struct rule_meter *m)
{
    return m->kind == RULE_METER_ELECTRICITY && m->unit >= 0;
}
/* Occupancy change: restarts the unit's electricity meters' windows and,
 * when the unit became occupied, clears their open incidents. */
void rules__vacant_power_changed(struct rule_engine *e, uint32_t unit, bool vacant);

/* --- rules_fire.c --- */
est_err rules__feed_panel(struct rule_engine *e, const struct rule_panel_sample *sample);

#endif
