/* rules.h - the rule engine: a pure library (no I/O, no clock of its own).
 * Samples and ticks go in, incident transitions and actions come out through
 * callbacks. Time always comes from the caller (ts_ms / now_ms), so every
 * rule is replayable from a recorded stream. Holds, windows and rates are
 * measured in that time, so it should advance at the real pace without
 * jumps (a monotonic clock anchored to the wall clock at start): then a
 * wall-clock jump neither fakes nor hides a window. Local-time rules read
 * the wall clock as engine time + rule_engine_set_wall_offset(); event
 * times are engine times (add the same offset to show them).
 *
 * Subjects are indices into the topology the caller gives at creation:
 * meters 0..nmeters-1, units 0..nunits-1, panels 0..npanels-1 (zone 0-based).
 * One condition (rule + subject) is at most one open incident. */
#ifndef RULES_H
#define RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "estate.h"

enum rule_id {
    RULE_REVERSE_ENERGY,
    RULE_VACANT_FLOW,
    RULE_CONTINUOUS_FLOW,
    RULE_FIRE_ALARM,
    RULE_FIRE_FAULT,
    RULE_FIRE_DISABLED,
    RULE_METER_OFFLINE,
    RULE_IMPLAUSIBLE_READING,
    RULE_METER_REPLACED,
    RULE_BALANCE_LOSS,
    RULE_FIRE_SUPERVISORY,
    RULE_VACANT_POWER,
    RULE_BATTERY_LOW,
    RULE__COUNT
};

/* How each rule decides (details in rules/rules_*.c):
 * reverse_energy   export register >= 1 step above its baseline on
 *                  export_confirm_polls polls; power < -max(min_negative_power_w,
 *                  rating x rating_fraction) for negative_power_hold_s; or one
 *                  phase below that with a positive total (reversed CT). Skipped
 *                  on export_expected meters. Never a "total" register; a falling
 *                  import register is implausible_reading instead.
 * vacant_flow      per unit: confirm_reads reads each rising, total beyond
 *                  max(min_increase_m3, resolution); absent after window_s
 *                  without a rise. Valve: closed, checked valve_check_s later;
 *                  while it has not closed (or water still flows) closed again
 *                  up to valve_retries times, each check waiting twice as long
 *                  as the one before; then the incident goes critical with
 *                  valve_failed.
 * continuous_flow  no zero_flow_needed_s stretch without flow (flow_m3h >
 *                  min_flow_m3h or a volume rise) for window_s; not on master or
 *                  building meters; clears once such a stretch is seen.
 * meter_offline    `failures` consecutive failed polls (meters and panels).
 * fire_supervisory a zone's supervisory bit (e.g. a sprinkler valve tampered);
 *                  clears when the zone no longer reports it. Pre-alarms are
 *                  not raised.
 * implausible_reading  NaN/Inf/negative values, a jump beyond rated power (or
 *                  max flow) x interval x jump_margin, a rollback that is not an
 *                  integer wrap, or a counter frozen for freeze_s while power or
 *                  flow predicts >= 3 steps. Events raise at once (no hold) and
 *                  the new value becomes the baseline.
 * meter_replaced   serial differs from the last one seen (initially the
 *                  inventory's); raises at once, re-baselines every counter, and
 *                  clears after clear_s of readings with the new serial. The
 *                  caller should update its inventory serial.
 * balance_loss     per parent and window (aligned to local midnight via
 *                  utc_offset_min, as rule_engine_set_utc_offset moves it
 *                  with daylight saving), from each meter's first reading in a window
 *                  to its first in the next; windows lacking a member's data, or
 *                  with a jump/rollback/replacement inside, are skipped.
 * vacant_power     per electricity meter of a vacant unit: the mean power over
 *                  each window_s (from the power register where it covered
 *                  half the window, else from the import register, taken one
 *                  resolution step low to raise and one step high to clear)
 *                  above threshold_w is present, below clear_below_w absent,
 *                  in between unchanged (hysteresis). Becoming occupied
 *                  clears it at once.
 * battery_low      a meter's battery-low flag (e.g. a CJ/T 188 water meter's
 *                  status bit) set on confirm_reads consecutive good reads;
 *                  clears after clear_s of reads without it (a battery that
 *                  sags only while a valve motor runs does not flap). Reads
 *                  that do not carry the flag say nothing. The caller opens a
 *                  maintenance work order for it when open_workorder says so.
 * UPDATED is sent when severity changes, a new serial appears, or the rule's
 * measure (exported kWh, vacant volume, hours without pause, loss %) doubles. */

enum rule_severity { RULE_SEV_INFO, RULE_SEV_MINOR, RULE_SEV_MAJOR, RULE_SEV_CRITICAL };

/* Settings every rule has. hold_s: how long the condition must persist
 * before raising; clear_s: how long it must be absent before clearing. */
struct rule_common {
    bool enabled;
    enum rule_severity severity;
    int hold_s;
    int clear_s;
};

/* Thresholds; defaults from rule_config_defaults() follow DOMAIN.md. */
struct rule_config {
    struct {
        struct rule_common c;
        double min_negative_power_w;  /* power below -max(this, rating*fraction) */
        double rating_fraction;       /* 0.005 */
        int negative_power_hold_s;    /* 60 */
        int export_confirm_polls;     /* export growth seen on this many polls: 2 */
    } reverse_energy;
    struct {
        struct rule_common c;
        double min_increase_m3;       /* beyond meter resolution */
        int confirm_reads;            /* consecutive increasing reads: 2 */
        int window_s;
        bool auto_close_valve;        /* off by default */
        int valve_check_s;            /* after closing: flow must stop within */
        int valve_retries;            /* closes sent again before escalating: 3 */
    } vacant_flow;
    struct {
        struct rule_common c;
        double min_flow_m3h;          /* below this counts as "no flow" */
        int zero_flow_needed_s;       /* one hour (3600) of zero flow ... */
        int window_s;                 /* ... within this window (86400) */
    } continuous_flow;
    struct { struct rule_common c; } fire_alarm, fire_fault, fire_disabled;
    struct { struct rule_common c; } fire_supervisory; /* a zone reports supervisory */
    struct {
        struct rule_common c;
        int failures;                 /* consecutive failed polls: 3 */
    } meter_offline;
    struct {
        struct rule_common c;
        double jump_margin;           /* allowed = rated power x interval x margin */
        int freeze_s;                 /* counter frozen while power/flow says moving */
        double max_water_flow_m3h;    /* plausibility bound for water meters */
    } implausible_reading;
    struct { struct rule_common c; } meter_replaced;
    struct {
        struct rule_common c;
        double loss_pct;              /* parent exceeds children by more than this */
        double low_flow_m3;           /* below this parent volume per window ... */
        double low_flow_loss_pct;     /* ... use this tolerance */
        int window_s;
    } balance_loss;
    struct {
        struct rule_common c;
        double threshold_w;           /* mean power above this in a vacant unit: 60 */
        double clear_below_w;         /* ... absent again below this: 30 */
        int window_s;                 /* the mean is taken over this: 900 */
    } vacant_power;
    struct {
        struct rule_common c;
        int confirm_reads;            /* consecutive reads with the flag before raising: 2 */
        bool open_workorder;          /* a maintenance work order even below major: true */
    } battery_low;
};

void rule_config_defaults(struct rule_config *config);

/* Checks every parameter against its row's min/max (and cross-checks such
 * as zero_flow_needed_s <= window_s): EST_OK, EST_ERR_RANGE or
 * EST_ERR_INVALID (NULL). rule_engine_create runs the same check. */
est_err rule_config_check(const struct rule_config *config);

/* Config description as rows, for the config loader and documentation:
 * rules.<rule>.<name>. offset is into struct rule_config. */
enum rule_param_type { RULE_PARAM_BOOL, RULE_PARAM_INT, RULE_PARAM_DOUBLE, RULE_PARAM_SEVERITY };
struct rule_param {
    enum rule_id rule;
    const char *name;
    enum rule_param_type type;
    size_t offset;
    double min, max;
    const char *doc;
};
const struct rule_param *rule_params(size_t *count);

const char *rule_name(enum rule_id rule);           /* "reverse_energy" */
int rule_from_name(const char *name);              /* -1 if unknown */
const char *rule_severity_name(enum rule_severity s); /* "info","minor","major","critical" */
int rule_severity_from_name(const char *name);     /* -1 if unknown */

/* --- topology --- */
enum rule_meter_kind { RULE_METER_ELECTRICITY, RULE_METER_WATER };
enum rule_category {
    RULE_CAT_MASTER, RULE_CAT_BUILDING, RULE_CAT_UNIT, RULE_CAT_AMENITY, RULE_CAT_LANDSCAPE,
    RULE_CAT_SHOP, RULE_CAT_PUBLIC_LIGHTING, RULE_CAT_OFFICE
};

struct rule_meter {
    enum rule_meter_kind kind;
    enum rule_category category;
    int unit;                 /* index into units, -1 none */
    int parent;               /* index into meters, -1 none (balance) */
    double rated_power_w;     /* electricity: plausibility bound */
    double max_flow_m3h;      /* water: plausibility bound (0 = rule default) */
    bool export_expected;     /* e.g. a meter with solar behind it */
    bool has_valve;
    double resolution;        /* smallest counter step */
    double counter_wrap;      /* integer counters: wrap value in the counter's unit
                                 (e.g. 2^32 x 0.01 kWh), 0 = none (float32 counter) */
    uint32_t serial;          /* inventory serial, 0 = unknown */
    int quiet_start_min;      /* continuous_flow: daily window (minutes after */
    int quiet_end_min;        /*  local midnight) exempt, e.g. irrigation; -1 none.
                                 Samples inside it are skipped and its time is not
                                 counted: irrigation neither counts as flow nor
                                 breaks a zero-flow stretch spanning the window. */
    int utc_offset_min;       /* for the window above and balance windows, until
                                 rule_engine_set_utc_offset changes it */
};

struct rule_topology {
    size_t nmeters;
    const struct rule_meter *meters;
    size_t nunits;
    const bool *unit_vacant;  /* initial occupancy */
    size_t npanels;
    const uint16_t *panel_zones; /* zones per panel */
};

/* --- input --- */
enum rule_has {
    RULE_HAS_IMPORT = 1u << 0, RULE_HAS_EXPORT = 1u << 1, RULE_HAS_POWER = 1u << 2,
    RULE_HAS_VOLUME = 1u << 3, RULE_HAS_FLOW = 1u << 4, RULE_HAS_SERIAL = 1u << 5,
    RULE_HAS_VALVE = 1u << 6, RULE_HAS_PHASE_POWER = 1u << 7, RULE_HAS_REVERSE_VOLUME = 1u << 8,
    RULE_HAS_BATTERY = 1u << 9,
};

enum rule_valve { RULE_VALVE_UNKNOWN, RULE_VALVE_OPEN, RULE_VALVE_CLOSED, RULE_VALVE_MOVING };

/* One poll of a meter. ok=false: the poll failed (offline counting). */
struct rule_meter_sample {
    uint32_t meter;
    int64_t ts_ms;
    bool ok;
    unsigned has;             /* enum rule_has bits */
    double import_kwh, export_kwh, power_w;
    double phase_power_w[3];
    double volume_m3, reverse_volume_m3, flow_m3h;
    uint32_t serial;
    enum rule_valve valve;
    bool valve_fault;
    bool battery_low;         /* RULE_HAS_BATTERY: the meter says its battery is low */
    unsigned bad_values;      /* NaN/Inf or otherwise undecodable values */
};

/* One poll of a fire panel; zones[] uses the drivers' zone bits
 * (1 alarm, 2 fault, 4 disabled). */
struct rule_panel_sample {
    uint32_t panel;
    int64_t ts_ms;
    bool ok;
    uint16_t nzones;
    const uint8_t *zones;
    bool panel_fault;
};

/* --- output --- */
enum rule_subject_type { RULE_SUBJECT_METER, RULE_SUBJECT_UNIT, RULE_SUBJECT_PANEL, RULE_SUBJECT_ZONE };
struct rule_subject {
    enum rule_subject_type type;
    uint32_t index;           /* meter, unit or panel index */
    int32_t zone;             /* RULE_SUBJECT_ZONE: 0-based zone, else -1 */
};

enum rule_transition { RULE_RAISED, RULE_UPDATED, RULE_CLEARED };

#define RULE_MAX_DETAIL 8
struct rule_detail { const char *key; double value; };

struct rule_event {
    enum rule_id rule;
    enum rule_transition transition;
    struct rule_subject subject;
    enum rule_severity severity;
    int64_t ts_ms;            /* when this transition happened */
    int64_t since_ms;         /* when the condition started */
    const char *reason;       /* short machine word: "export_growth", "negative_power", ... */
    size_t ndetail;
    struct rule_detail detail[RULE_MAX_DETAIL];
};

enum rule_action_type { RULE_ACTION_CLOSE_VALVE };
struct rule_action {
    enum rule_action_type type;
    uint32_t meter;
    int64_t ts_ms;
};

typedef void (*rule_event_fn)(void *ctx, const struct rule_event *event);
typedef void (*rule_action_fn)(void *ctx, const struct rule_action *action);

struct rule_engine;

/* Copies what it needs from config and topology; allocates the per-meter,
 * per-unit and per-zone state here. The detail of conditions (reason,
 * detail, severity) lives in a pool sized by how many conditions are active
 * (present or raised) at once: it starts small and doubles when that number
 * reaches a new high, the only allocation after create (feed and restore
 * then return EST_ERR_NOMEM having changed nothing if it fails; a tick
 * postpones its balance evaluation). EST_ERR_RANGE: a parameter outside its row's bounds;
 * EST_ERR_INVALID: NULL arguments, an index out of range (unit, parent), a
 * parent loop, a parent of another kind, NaN/negative bounds in a meter.
 * Callbacks run synchronously inside feed/tick/set_vacant and must not call
 * back into the engine. Event pointers (reason, detail keys) are static. */
est_err rule_engine_create(const struct rule_config *config, const struct rule_topology *topology,
                           rule_event_fn on_event, rule_action_fn on_action, void *ctx,
                           struct rule_engine **out);
void rule_engine_destroy(struct rule_engine *engine);

/* Restores an open incident after a restart: the condition counts as raised
 * since since_ms, so it is not raised again; it clears after clear_s of
 * observed absence (never from ticks alone), and the first observation just
 * adopts the current detail (until then it has none): UPDATED only for later
 * material changes. A restored vacant_flow does not close the valve again.
 * A meter rule that cannot apply to the meter (its kind, category or
 * children changed) is restored too and stays open, as nothing evaluates it.
 * Returns EST_ERR_INVALID when the subject type does not fit the rule,
 * EST_ERR_NOTFOUND when the index is out of range, EST_ERR_NOMEM. */
est_err rule_engine_restore(struct rule_engine *engine, enum rule_id rule,
                            const struct rule_subject *subject, int64_t since_ms);

est_err rule_engine_feed_meter(struct rule_engine *engine, const struct rule_meter_sample *sample);
est_err rule_engine_feed_panel(struct rule_engine *engine, const struct rule_panel_sample *sample);
/* Time-based evaluation (hold times, windows, balance); call about once a second. */
void rule_engine_tick(struct rule_engine *engine, int64_t now_ms);
/* The site's UTC offset changed (a daylight-saving change): quiet windows
 * and balance windows of every meter use offset_min from the next sample
 * on. The engine has no time zone of its own: the caller, which has one,
 * sets the offset in force before it feeds samples of a new offset. A
 * balance window already passed is not revisited. EST_ERR_RANGE outside
 * -1439..1439. */
est_err rule_engine_set_utc_offset(struct rule_engine *engine, int offset_min);
/* The wall clock minus the engine's time (0 at create). Quiet windows and
 * balance windows are local wall-clock times: they follow the wall clock
 * when it is stepped, while holds and windows keep measuring engine time.
 * A step back restarts the balance windows (no window is judged across it). */
void rule_engine_set_wall_offset(struct rule_engine *engine, int64_t offset_ms);
/* Occupancy changed at run time. Becoming occupied clears an open
 * vacant_flow or vacant_power incident at once (timestamped with the latest time the engine
 * has seen); becoming vacant starts watching afresh. */
est_err rule_engine_set_vacant(struct rule_engine *engine, uint32_t unit, bool vacant);
/* Whether a condition is currently active: raised and not yet cleared, or
 * present in the data (also while still inside hold_s). Used to refuse
 * verifying a work order while the data still show the condition. */
bool rule_engine_condition_active(const struct rule_engine *engine, enum rule_id rule,
                                  const struct rule_subject *subject);

#endif
