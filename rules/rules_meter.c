/* rules_meter.c - one meter sample through the rules that look at a single
 * meter: meter_offline, meter_replaced, implausible_reading (bad values,
 * jumps, rollbacks, frozen counters), battery_low, reverse_energy and vacant_power; then hands water
 * data to the water rules and counter marks to balance_loss. */
#include <math.h>
#include <string.h>

#include "rules_internal.h"

#define MS_PER_HOUR 3600000.0

/* Float noise bound: below half a float32 step at this magnitude (so one
 * real float32 step, e.g. 0.0078 at 70,000 kWh, always counts as a move)
 * and below half a resolution step (integer counters are exact). */
static double noise_tolerance(const struct meter_state *m, double value)
{
    return fmin(fabs(value) * 0x1p-24, 0.5 * m->resolution) + 1e-9;
}

/* The smallest step a counter can show at this magnitude: its resolution,
 * or for float32 counters the float step when that is coarser. Integer
 * counters (counter_wrap > 0) always step by their resolution. */
static double counter_step(const struct meter_state *m, double value)
{
    double resolution = m->resolution;
    if (m->counter_wrap > 0.0)
        return resolution;
    return fmax(resolution, fabs(value) * 0x1p-23);
}

void rules__meter_state_init(struct meter_state *s, const struct rule_meter *m)
{
    memset(s, 0, sizeof *s);
    s->kind = (uint8_t)m->kind;
    s->rated = m->kind == RULE_METER_ELECTRICITY ? m->rated_power_w : m->max_flow_m3h;
    s->resolution = rules__resolution(m);
    s->counter_wrap = m->counter_wrap;
    s->unit = m->unit;
    s->balance = NO_BALANCE;
    s->quiet_start_min = (int16_t)m->quiet_start_min; /* checked: -1..1439 */
    s->quiet_end_min = (int16_t)m->quiet_end_min;
    s->utc_offset_min = (int16_t)m->utc_offset_min; /* checked: -1439..1439 */
    s->has_valve = m->has_valve;
    s->last_ts_ms = TIME_NEVER;
    s->last_serial = m->serial;
    s->freeze_ref_ts_ms = TIME_NEVER;
    if (m->kind == RULE_METER_ELECTRICITY) {
        s->elec.negative_power_since_ms = TIME_NEVER;
        s->elec.reversed_ct_since_ms = TIME_NEVER;
        s->elec.vacant_window_start_ms = TIME_NEVER;
    } else {
        s->water.vacant_last_increase_ms = TIME_NEVER;
        s->water.valve_closed_ms = TIME_NEVER;
        s->water.zero_start_active_ms = TIME_NEVER;
        s->water.last_zero_ok_active_ms = TIME_NEVER;
    }
}

/* --- sample hygiene --- */

/* Drops NaN/Inf values and negative counters from the sample (clearing
 * their RULE_HAS bits) so they never reach a comparison; returns how many
 * values were bad, including those the driver already flagged. */
static unsigned sanitize(struct rule_meter_sample *s)
{
    unsigned bad = s->bad_values;
    struct { unsigned bit; double *value; bool counter; } fields[] = {
        { RULE_HAS_IMPORT, &s->import_kwh, true }, { RULE_HAS_EXPORT, &s->export_kwh, true },
        { RULE_HAS_VOLUME, &s->volume_m3, true }, { RULE_HAS_REVERSE_VOLUME, &s->reverse_volume_m3, true },
        { RULE_HAS_POWER, &s->power_w, false }, { RULE_HAS_FLOW, &s->flow_m3h, false },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!(s->has & fields[i].bit))
            continue;
        double v = *fields[i].value;
        if (!isfinite(v) || (fields[i].counter && v < 0.0)) {
            s->has &= ~fields[i].bit;
            bad++;
        }
    }
    if ((s->has & RULE_HAS_PHASE_POWER) &&
        !(isfinite(s->phase_power_w[0]) && isfinite(s->phase_power_w[1]) && isfinite(s->phase_power_w[2]))) {
        s->has &= ~RULE_HAS_PHASE_POWER;
        bad++;
    }
    return bad;
}

/* --- meter_offline --- */

static void poll_failed(struct rule_engine *e, uint32_t id, int64_t ts_ms)
{
    struct meter_state *st = &e->meter_states[id];
    st->failures++;
    if (!e->config.meter_offline.c.enabled || st->failures < (uint32_t)e->config.meter_offline.failures)
        return;
    struct cond *c = rules__meter_cond(e, id, SLOT_OFFLINE);
    rules__cond_describe(e, c, "poll_failed", 0.0);
    rules__cond_add_detail(e, c, "failures", st->failures);
    rules__cond_observe(e, c, OBS_PRESENT, ts_ms, false);
}

static void poll_succeeded(struct rule_engine *e, uint32_t id, int64_t ts_ms)
{
    e->meter_states[id].failures = 0;
    if (e->config.meter_offline.c.enabled)
        rules__cond_observe(e, rules__meter_cond(e, id, SLOT_OFFLINE), OBS_ABSENT, ts_ms, false);
}

/* --- battery_low --- */

/* The battery-low flag on confirm_reads consecutive good reads raises; a
 * read without it ends the stretch (clear_s of such reads clears), and
 * while the incident is open one read with the flag is present again. A
 * read that does not carry the flag is no evidence either way. */
static void observe_battery(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s)
{
    struct meter_state *st = &e->meter_states[id];
    if (!(s->has & RULE_HAS_BATTERY))
        return;
    struct cond *c = rules__meter_cond(e, id, SLOT_BATTERY);
    if (!s->battery_low) {
        st->battery_low_reads = 0;
        rules__cond_observe(e, c, OBS_ABSENT, s->ts_ms, false);
        return;
    }
    if (st->battery_low_reads < UINT32_MAX)
        st->battery_low_reads++;
    if (st->battery_low_reads < (uint32_t)e->config.battery_low.confirm_reads && !c->raised)
        return;
    rules__cond_describe(e, c, "battery_low", 0.0);
    rules__cond_add_detail(e, c, "reads", st->battery_low_reads);
    rules__cond_observe(e, c, OBS_PRESENT, s->ts_ms, false);
}

/* --- meter_replaced --- */

/* Forgets every counter baseline: the next sample starts afresh. */
static void rebaseline(struct rule_engine *e, struct meter_state *st)
{
    st->have_import = st->have_export = st->have_volume = 0;
    st->freeze_ref_ts_ms = TIME_NEVER;
    st->freeze_expected = 0.0;
    if (st->kind == RULE_METER_ELECTRICITY) {
        st->elec.export_growth_kwh = 0.0;
        st->elec.export_growth_polls = 0;
        st->elec.export_confirmed = 0;
    } else {
        st->water.vacant_increasing_reads = 0;
        st->water.vacant_last_increase_ms = TIME_NEVER;
    }
    if (st->balance != NO_BALANCE)
        e->balance[st->balance].window_tainted = 1;
}

/* Compares the serial with the last one seen (initially the inventory's).
 * Returns true when the meter was replaced (counters re-baselined). */
static bool check_serial(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s)
{
    struct meter_state *st = &e->meter_states[id];
    if (!(s->has & RULE_HAS_SERIAL) || s->serial == 0)
        return false;
    struct cond *c = rules__meter_cond(e, id, SLOT_REPLACED);
    bool enabled = e->config.meter_replaced.c.enabled;
    if (st->last_serial == 0 || st->last_serial == s->serial) {
        st->last_serial = s->serial;
        if (enabled)
            rules__cond_observe(e, c, OBS_ABSENT, s->ts_ms, false);
        return false;
    }
    if (enabled) {
        rules__cond_describe(e, c, "serial_changed", 0.0);
        rules__cond_add_detail(e, c, "old_serial", st->last_serial);
        rules__cond_add_detail(e, c, "new_serial", s->serial);
        if (c->raised)
            rules__cond_force_update(e, c);
        rules__cond_observe(e, c, OBS_PRESENT, s->ts_ms, true);
    }
    st->last_serial = s->serial;
    rebaseline(e, st);
    return true;
}

/* --- implausible_reading --- */

enum counter_kind { COUNTER_IMPORT, COUNTER_EXPORT, COUNTER_VOLUME, COUNTERS };
enum verdict { VERDICT_NONE, VERDICT_FIRST, VERDICT_OK, VERDICT_JUMP, VERDICT_ROLLBACK };

struct counter_check {
    enum verdict verdict;
    double value;
    double previous;
    double increase;           /* trusted when verdict is VERDICT_OK; 0 within float noise */
    double allowed;
};

static const char *const jump_reasons[COUNTERS] = { "import_jump", "export_jump", "volume_jump" };
static const char *const rollback_reasons[COUNTERS] = { "import_rollback", "export_rollback",
                                                        "volume_rollback" };
static const char *const frozen_reasons[COUNTERS] = { "import_frozen", "export_frozen", "volume_frozen" };

/* Most a counter can advance in dt: rated power (or max flow) x interval x
 * margin, plus two steps of slack for resolution and float rounding. */
static double allowed_increase(const struct rule_engine *e, const struct meter_state *m, double value,
                               double dt_h)
{
    double margin = e->config.implausible_reading.jump_margin;
    double rate;
    if (m->kind == RULE_METER_ELECTRICITY) {
        if (m->rated <= 0.0) /* rated power unknown */
            return INFINITY;
        rate = m->rated / 1000.0;
    } else {
        rate = m->rated > 0.0 ? m->rated : e->config.implausible_reading.max_water_flow_m3h;
    }
    return rate * dt_h * margin + 2.0 * counter_step(m, value);
}

/* Judges one counter reading against the previous one. A decrease that
 * matches an integer wrap (previous in the top tenth, new in the bottom
 * tenth of counter_wrap) is an ordinary increase across the wrap. */
static void check_counter(struct counter_check *out, const struct meter_state *m, bool have_previous,
                          double previous, double value, double allowed)
{
    out->value = value;
    out->previous = previous;
    out->increase = 0.0;
    out->allowed = allowed;
    if (!have_previous) {
        out->verdict = VERDICT_FIRST;
        return;
    }
    double tol = noise_tolerance(m, previous);
    double wrap = m->counter_wrap;
    double diff = value - previous;
    if (diff < -tol) {
        if (wrap > 0.0 && previous >= 0.9 * wrap && value <= 0.1 * wrap) {
            diff = value + wrap - previous;
        } else {
            out->verdict = VERDICT_ROLLBACK;
            return;
        }
    }
    if (fabs(diff) <= tol)
        diff = 0.0;
    out->increase = diff;
    out->verdict = diff > allowed ? VERDICT_JUMP : VERDICT_OK;
}

/* Frozen counter: it has not moved since freeze_ref_ts while power or flow
 * predicts at least three steps (resolution or float32 step, whichever is
 * larger) over at least freeze_s. Long windows keep float32 counters at
 * large magnitudes, which move in coarse steps, from looking frozen. */
static bool counter_frozen(const struct rule_engine *e, struct meter_state *st,
                           const struct counter_check *chk, bool have_rate, double rate_per_h,
                           double dt_h, int64_t ts_ms)
{
    if (chk->verdict != VERDICT_OK || chk->increase > 0.0 || st->freeze_ref_ts_ms == TIME_NEVER) {
        st->freeze_ref_ts_ms = ts_ms;
        st->freeze_expected = 0.0;
        return false;
    }
    if (have_rate && rate_per_h > 0.0)
        st->freeze_expected += rate_per_h * dt_h;
    double step = counter_step(st, chk->value);
    return ts_ms - st->freeze_ref_ts_ms >= (int64_t)e->config.implausible_reading.freeze_s * 1000 &&
           st->freeze_expected >= 3.0 * step;
}

/* The first counter with a jump or rollback, or -1. */
static int odd_counter(const struct counter_check chk[COUNTERS])
{
    for (int k = 0; k < COUNTERS; k++)
        if (chk[k].verdict == VERDICT_JUMP || chk[k].verdict == VERDICT_ROLLBACK)
            return k;
    return -1;
}

static void observe_implausible(struct rule_engine *e, uint32_t id, int64_t ts_ms, unsigned bad,
                                const struct counter_check chk[COUNTERS], int frozen_counter)
{
    struct cond *c = rules__meter_cond(e, id, SLOT_IMPLAUSIBLE);
    int odd = odd_counter(chk);
    if (bad > 0) {
        rules__cond_describe(e, c, "bad_value", 0.0);
        rules__cond_add_detail(e, c, "bad_values", bad);
    } else if (odd >= 0 && chk[odd].verdict == VERDICT_JUMP) {
        rules__cond_describe(e, c, jump_reasons[odd], 0.0);
        rules__cond_add_detail(e, c, "previous", chk[odd].previous);
        rules__cond_add_detail(e, c, "value", chk[odd].value);
        rules__cond_add_detail(e, c, "increase", chk[odd].increase);
        rules__cond_add_detail(e, c, "allowed", chk[odd].allowed);
    } else if (odd >= 0) {
        rules__cond_describe(e, c, rollback_reasons[odd], 0.0);
        rules__cond_add_detail(e, c, "previous", chk[odd].previous);
        rules__cond_add_detail(e, c, "value", chk[odd].value);
    } else if (frozen_counter >= 0) {
        const struct meter_state *st = &e->meter_states[id];
        rules__cond_describe(e, c, frozen_reasons[frozen_counter], 0.0);
        rules__cond_add_detail(e, c, "frozen_s", (double)(ts_ms - st->freeze_ref_ts_ms) / 1000.0);
        rules__cond_add_detail(e, c, "expected", st->freeze_expected);
        rules__cond_add_detail(e, c, "value", chk[frozen_counter].value);
        rules__cond_observe(e, c, OBS_PRESENT, ts_ms, false);
        return;
    } else {
        rules__cond_observe(e, c, OBS_ABSENT, ts_ms, false);
        return;
    }
    rules__cond_observe(e, c, OBS_PRESENT, ts_ms, true); /* an event: no hold */
}

/* Checks every counter in the sample; fills chk[] for the other rules.
 * Returns the counter found frozen, or -1. */
static int check_counters(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                          double dt_h, struct counter_check chk[COUNTERS])
{
    struct meter_state *st = &e->meter_states[id];
    const struct meter_state *m = st;
    static const unsigned bits[COUNTERS] = { RULE_HAS_IMPORT, RULE_HAS_EXPORT, RULE_HAS_VOLUME };
    const double values[COUNTERS] = { s->import_kwh, s->export_kwh, s->volume_m3 };
    const double previous[COUNTERS] = { st->last_import_kwh, st->last_export_kwh, st->last_volume_m3 };
    const bool have[COUNTERS] = { st->have_import, st->have_export, st->have_volume };
    for (int k = 0; k < COUNTERS; k++) {
        memset(&chk[k], 0, sizeof chk[k]);
        if (s->has & bits[k])
            check_counter(&chk[k], m, have[k], previous[k], values[k], allowed_increase(e, m, values[k], dt_h));
    }
    /* freeze: import against positive power, volume against flow */
    bool water = m->kind == RULE_METER_WATER;
    int k = water ? COUNTER_VOLUME : COUNTER_IMPORT;
    if (chk[k].verdict == VERDICT_NONE)
        return -1;
    bool have_rate = (s->has & (water ? RULE_HAS_FLOW : RULE_HAS_POWER)) != 0;
    double rate = water ? s->flow_m3h : s->power_w / 1000.0;
    return counter_frozen(e, st, &chk[k], have_rate, rate, dt_h, s->ts_ms) ? k : -1;
}

/* --- reverse_energy --- */

/* Evidence from one source, ordered so the strongest wins. */
enum evidence { EVIDENCE_NONE, EVIDENCE_ABSENT, EVIDENCE_PENDING, EVIDENCE_PRESENT };

/* Export register growth on a meter that should never export: growth of at
 * least one step (resolution or float32 step) over the baseline, seen on
 * export_confirm_polls consecutive polls. While confirmed, every further
 * step keeps it present. Growth is summed from wrap-aware increases. */
static enum evidence export_growth(const struct rule_engine *e, struct meter_state *m,
                                   const struct counter_check *chk, bool incident_open)
{
    struct elec_state *st = &m->elec;
    if (chk->verdict == VERDICT_NONE)
        return EVIDENCE_NONE;
    if (chk->verdict != VERDICT_OK) { /* first value, or a jump/rollback: start over */
        st->export_growth_kwh = 0.0;
        st->export_growth_polls = 0;
        st->export_confirmed = 0;
        return EVIDENCE_NONE;
    }
    st->export_growth_kwh += chk->increase;
    double step = counter_step(m, chk->value) * (1.0 - 1e-6);
    if (st->export_confirmed) {
        if (st->export_growth_kwh >= step) {
            st->exported_kwh += st->export_growth_kwh;
            st->export_growth_kwh = 0.0;
            return EVIDENCE_PRESENT;
        }
        st->export_confirmed = 0;
        st->export_growth_polls = 0;
        return EVIDENCE_ABSENT;
    }
    if (st->export_growth_kwh < step) {
        st->export_growth_polls = 0;
        return EVIDENCE_ABSENT;
    }
    if (++st->export_growth_polls < e->config.reverse_energy.export_confirm_polls)
        return EVIDENCE_PENDING;
    st->export_confirmed = 1;
    st->exported_kwh = (incident_open ? st->exported_kwh : 0.0) + st->export_growth_kwh;
    st->export_growth_kwh = 0.0;
    return EVIDENCE_PRESENT;
}

/* A condition that must hold for negative_power_hold_s. */
static enum evidence held(const struct rule_engine *e, int64_t *since_ms, bool now_true, int64_t ts_ms)
{
    if (!now_true) {
        *since_ms = TIME_NEVER;
        return EVIDENCE_ABSENT;
    }
    if (*since_ms == TIME_NEVER)
        *since_ms = ts_ms;
    bool long_enough = ts_ms - *since_ms >= (int64_t)e->config.reverse_energy.negative_power_hold_s * 1000;
    return long_enough ? EVIDENCE_PRESENT : EVIDENCE_PENDING;
}

static double min_phase_power(const struct rule_meter_sample *s)
{
    return fmin(s->phase_power_w[0], fmin(s->phase_power_w[1], s->phase_power_w[2]));
}

static void observe_reverse(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                            const struct counter_check *export_chk)
{
    struct meter_state *m = &e->meter_states[id];
    struct elec_state *st = &m->elec;
    double threshold = fmax(e->config.reverse_energy.min_negative_power_w,
                            m->rated * e->config.reverse_energy.rating_fraction); /* rated power */

    struct cond *c = rules__meter_cond(e, id, SLOT_REVERSE);
    enum evidence exported = export_growth(e, m, export_chk, c->raised);
    enum evidence negative = EVIDENCE_NONE, reversed_ct = EVIDENCE_NONE;
    if (s->has & RULE_HAS_POWER)
        negative = held(e, &st->negative_power_since_ms, s->power_w < -threshold, s->ts_ms);
    if (s->has & RULE_HAS_PHASE_POWER) {
        double total = (s->has & RULE_HAS_POWER)
                           ? s->power_w
                           : s->phase_power_w[0] + s->phase_power_w[1] + s->phase_power_w[2];
        reversed_ct = held(e, &st->reversed_ct_since_ms, total > 0.0 && min_phase_power(s) < -threshold,
                           s->ts_ms);
    }

    enum evidence strongest = exported > negative ? exported : negative;
    strongest = reversed_ct > strongest ? reversed_ct : strongest;
    if (strongest == EVIDENCE_PRESENT) {
        double exported_kwh = st->export_confirmed ? st->exported_kwh : 0.0;
        const char *reason = exported == EVIDENCE_PRESENT   ? "export_growth"
                             : negative == EVIDENCE_PRESENT ? "negative_power"
                                                            : "reversed_ct";
        rules__cond_describe(e, c, reason, exported_kwh);
        rules__cond_add_detail(e, c, "exported_kwh", exported_kwh);
        if (s->has & RULE_HAS_POWER)
            rules__cond_add_detail(e, c, "power_w", s->power_w);
        if (s->has & RULE_HAS_PHASE_POWER)
            rules__cond_add_detail(e, c, "min_phase_power_w", min_phase_power(s));
        rules__cond_add_detail(e, c, "threshold_w", -threshold);
        rules__cond_observe(e, c, OBS_PRESENT, s->ts_ms, false);
    } else if (strongest == EVIDENCE_ABSENT) {
        rules__cond_observe(e, c, OBS_ABSENT, s->ts_ms, false);
    }
}

/* --- vacant_power --- */

static void start_vacant_window(struct elec_state *st, const struct rule_meter_sample *s)
{
    st->vacant_window_start_ms = s->ts_ms;
    st->vacant_last_ts_ms = s->ts_ms;
    st->vacant_energy_wh = 0.0;
    st->vacant_power_ms = 0;
    st->vacant_last_has_power = (s->has & RULE_HAS_POWER) != 0;
    st->vacant_last_power_w = st->vacant_last_has_power ? fmax(s->power_w, 0.0) : 0.0;
    st->vacant_import_usable = (s->has & RULE_HAS_IMPORT) != 0;
    st->vacant_import_ref_kwh = st->vacant_import_usable ? s->import_kwh : 0.0;
}

/* The mean power of a finished window, as bounds: [low_w, high_w]. */
struct power_bounds {
    double low_w, high_w;
};

/* Adds one sample to the window. Once the window is window_s long it
 * returns true with the bounds of its mean power and starts the next:
 * from the power register where it covered at least half the window
 * (time-weighted between reads that both had power), else from the import
 * register, whose resolution makes the bounds one step wide each way (a
 * vacant flat's standby steps the register now and then: one step in a
 * short window is no use). false while the window is shorter, or when
 * neither register measured it. */
static bool vacant_window_done(const struct rule_engine *e, const struct meter_state *m,
                               struct elec_state *st, const struct rule_meter_sample *s,
                               const struct counter_check *import, struct power_bounds *out)
{
    bool has_power = (s->has & RULE_HAS_POWER) != 0;
    double power_w = has_power ? fmax(s->power_w, 0.0) : 0.0; /* export is reverse_energy's */
    if (has_power && st->vacant_last_has_power) {
        int64_t dt_ms = s->ts_ms - st->vacant_last_ts_ms;
        st->vacant_energy_wh += 0.5 * (st->vacant_last_power_w + power_w) * (double)dt_ms / MS_PER_HOUR;
        st->vacant_power_ms += dt_ms;
    }
    st->vacant_last_has_power = has_power;
    st->vacant_last_power_w = power_w;
    if (import->verdict != VERDICT_OK)
        st->vacant_import_usable = 0; /* a jump or rollback says nothing about use */
    st->vacant_last_ts_ms = s->ts_ms;

    int64_t length_ms = s->ts_ms - st->vacant_window_start_ms;
    if (length_ms < (int64_t)e->config.vacant_power.window_s * 1000)
        return false;
    bool known = true;
    if (st->vacant_power_ms > 0 && 2 * st->vacant_power_ms >= length_ms) {
        double mean_w = st->vacant_energy_wh / ((double)st->vacant_power_ms / MS_PER_HOUR);
        *out = (struct power_bounds){mean_w, mean_w};
    } else if (st->vacant_import_usable && (s->has & RULE_HAS_IMPORT)) {
        double hours = (double)length_ms / MS_PER_HOUR;
        double increase_kwh = s->import_kwh - st->vacant_import_ref_kwh;
        *out = (struct power_bounds){fmax(increase_kwh - m->resolution, 0.0) * 1000.0 / hours,
                                     (increase_kwh + m->resolution) * 1000.0 / hours};
    } else {
        known = false;
    }
    start_vacant_window(st, s);
    return known;
}

/* Electricity use in a vacant unit: lights or appliances left on, or
 * somebody staying there. */
static void observe_vacant_power(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                                 const struct counter_check *import)
{
    struct meter_state *m = &e->meter_states[id];
    struct elec_state *st = &m->elec;
    struct cond *c = rules__meter_cond(e, id, SLOT_VACANT_POWER);
    if (!e->units[m->unit].vacant) {
        if (c->raised) /* restored while the unit is now occupied */
            rules__cond_clear_now(e, c, s->ts_ms);
        st->vacant_window_start_ms = TIME_NEVER;
        return;
    }
    if (st->vacant_window_start_ms == TIME_NEVER) {
        start_vacant_window(st, s);
        return;
    }
    struct power_bounds mean;
    if (!vacant_window_done(e, m, st, s, import, &mean))
        return;
    if (mean.low_w > e->config.vacant_power.threshold_w) {
        rules__cond_describe(e, c, "vacant_power", mean.low_w);
        rules__cond_add_detail(e, c, "mean_power_w", mean.low_w);
        rules__cond_add_detail(e, c, "threshold_w", e->config.vacant_power.threshold_w);
        rules__cond_add_detail(e, c, "window_s", e->config.vacant_power.window_s);
        rules__cond_observe(e, c, OBS_PRESENT, s->ts_ms, false);
    } else if (mean.high_w < e->config.vacant_power.clear_below_w) {
        rules__cond_observe(e, c, OBS_ABSENT, s->ts_ms, false);
    }
}

void rules__vacant_power_changed(struct rule_engine *e, uint32_t unit, bool vacant)
{
    for (uint32_t i = 0; i < e->nmeters; i++) {
        struct meter_state *m = &e->meter_states[i];
        if (m->unit != (int)unit || !(m->slots & (1u << SLOT_VACANT_POWER)))
            continue;
        m->elec.vacant_window_start_ms = TIME_NEVER;
        if (!vacant) {
            int64_t ts = e->now_ms == TIME_NEVER ? 0 : e->now_ms;
            rules__cond_clear_now(e, rules__meter_cond(e, i, SLOT_VACANT_POWER), ts);
        }
    }
}

/* --- the sample pipeline --- */

static void feed_water_rules(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                             const struct counter_check *volume)
{
    struct water_input in = {
        .have_volume = volume->verdict != VERDICT_NONE,
        .have_increase = volume->verdict == VERDICT_OK,
        .volume_m3 = volume->value,
        .increase_m3 = volume->verdict == VERDICT_OK ? volume->increase : 0.0,
        .have_flow = (s->has & RULE_HAS_FLOW) != 0,
        .flow_m3h = s->flow_m3h,
    };
    if (e->config.vacant_flow.c.enabled)
        rules__vacant_flow(e, id, s, &in);
    if (e->config.continuous_flow.c.enabled)
        rules__continuous_flow(e, id, s->ts_ms, &in);
}

static void store_baselines(struct meter_state *st, const struct rule_meter_sample *s)
{
    st->last_ts_ms = s->ts_ms;
    if (s->has & RULE_HAS_IMPORT) {
        st->last_import_kwh = s->import_kwh;
        st->have_import = 1;
    }
    if (s->has & RULE_HAS_EXPORT) {
        st->last_export_kwh = s->export_kwh;
        st->have_export = 1;
    }
    if (s->has & RULE_HAS_VOLUME) {
        st->last_volume_m3 = s->volume_m3;
        st->have_volume = 1;
    }
}

est_err rules__feed_meter(struct rule_engine *e, const struct rule_meter_sample *sample)
{
    uint32_t id = sample->meter;
    struct meter_state *st = &e->meter_states[id];
    const struct meter_state *m = st;
    if (!sample->ok) {
        poll_failed(e, id, sample->ts_ms);
        return EST_OK;
    }
    poll_succeeded(e, id, sample->ts_ms);

    struct rule_meter_sample s = *sample;
    unsigned bad = sanitize(&s);
    bool replaced = check_serial(e, id, &s);
    if (st->last_ts_ms != TIME_NEVER && s.ts_ms <= st->last_ts_ms)
        return EST_OK; /* stale or out of order: counters cannot be judged */

    double dt_h = st->last_ts_ms == TIME_NEVER ? 0.0 : (double)(s.ts_ms - st->last_ts_ms) / MS_PER_HOUR;
    struct counter_check chk[COUNTERS];
    int frozen = check_counters(e, id, &s, dt_h, chk);
    if (e->config.implausible_reading.c.enabled)
        observe_implausible(e, id, s.ts_ms, bad, chk, frozen);
    if (e->config.battery_low.c.enabled)
        observe_battery(e, id, &s);

    if (m->kind == RULE_METER_ELECTRICITY) {
        if (e->config.reverse_energy.c.enabled && (m->slots & (1u << SLOT_REVERSE))) /* not export_expected */
            observe_reverse(e, id, &s, &chk[COUNTER_EXPORT]);
        if (e->config.vacant_power.c.enabled && (m->slots & (1u << SLOT_VACANT_POWER)))
            observe_vacant_power(e, id, &s, &chk[COUNTER_IMPORT]);
    } else {
        feed_water_rules(e, id, &s, &chk[COUNTER_VOLUME]);
    }

    if (e->config.balance_loss.c.enabled && m->balance != NO_BALANCE) {
        const struct counter_check *b = &chk[m->kind == RULE_METER_WATER ? COUNTER_VOLUME : COUNTER_IMPORT];
        if (b->verdict != VERDICT_NONE)
            rules__balance_mark(e, id, s.ts_ms, b->value,
                                replaced || b->verdict == VERDICT_JUMP || b->verdict == VERDICT_ROLLBACK);
    }
    store_baselines(st, &s);
    return EST_OK;
}
