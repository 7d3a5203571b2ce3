/* rules_water.c - the water rules: vacant_flow (with the valve close and
 * read-back check), continuous_flow (leak: no zero-flow hour in a day, with
 * a quiet window for irrigation) and balance_loss (parent vs children per
 * window, evaluated at window boundaries from rule_engine_tick). */
#include <math.h>

#include "rules_internal.h"

#define MS_PER_MIN 60000LL
#define MS_PER_DAY (1440LL * MS_PER_MIN)

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

/* --- vacant_flow --- */

/* Tracks one vacant unit's meter: ABSENT when it has not increased for
 * window_s, PENDING while increases are not yet confirmed, PRESENT once
 * confirm_reads reads each rose and the total exceeds max(min_increase_m3,
 * resolution). Returns the volume since the increase began in *volume_m3. */
enum vacant_evidence { VACANT_UNKNOWN, VACANT_ABSENT, VACANT_PENDING, VACANT_PRESENT };

static enum vacant_evidence vacant_evidence(const struct rule_engine *e, struct meter_state *m,
                                            int64_t ts_ms, const struct water_input *in, double *volume_m3)
{
    struct water_state *st = &m->water;
    *volume_m3 = 0.0;
    if (!in->have_increase) { /* first read, or a jump/rollback: restart from here */
        st->vacant_increasing_reads = 0;
        st->vacant_last_increase_ms = TIME_NEVER;
        return VACANT_UNKNOWN;
    }
    if (in->increase_m3 > 0.0) {
        if (st->vacant_increasing_reads == 0)
            st->vacant_ref_m3 = in->volume_m3 - in->increase_m3;
        st->vacant_increasing_reads++;
        st->vacant_last_increase_ms = ts_ms;
    } else if (st->vacant_last_increase_ms != TIME_NEVER &&
               ts_ms - st->vacant_last_increase_ms > (int64_t)e->config.vacant_flow.window_s * 1000) {
        st->vacant_increasing_reads = 0;
        st->vacant_last_increase_ms = TIME_NEVER;
    }
    if (st->vacant_increasing_reads == 0)
        return VACANT_ABSENT;
    *volume_m3 = in->volume_m3 - st->vacant_ref_m3;
    double threshold = fmax(e->config.vacant_flow.min_increase_m3, m->resolution);
    if (st->vacant_increasing_reads >= e->config.vacant_flow.confirm_reads && *volume_m3 > threshold)
        return VACANT_PRESENT;
    return VACANT_PENDING;
}

static void set_meter_flowing(struct unit_state *u, struct water_state *st, bool flowing)
{
    if (flowing && !st->vacant_present)
        u->flowing_meters++;
    else if (!flowing && st->vacant_present)
        u->flowing_meters--;
    st->vacant_present = flowing;
}

static void describe_vacant(struct rule_engine *e, struct cond *c, uint32_t meter,
                            const struct unit_state *u, double volume_m3)
{
    rules__cond_describe(e, c, "vacant_flow", volume_m3);
    rules__cond_add_detail(e, c, "volume_m3", volume_m3);
    rules__cond_add_detail(e, c, "meter", meter);
    rules__cond_add_detail(e, c, "valve_failed", u->valve_failed);
    if (e->meter_states[meter].water.valve_closes > 0)
        rules__cond_add_detail(e, c, "valve_closes", e->meter_states[meter].water.valve_closes);
    rules__cond_want_severity(e, c, u->valve_failed ? RULE_SEV_CRITICAL : e->config.vacant_flow.c.severity);
}

static void send_close(struct rule_engine *e, uint32_t id, struct water_state *st, int64_t ts_ms)
{
    st->valve_closed_ms = ts_ms;
    st->valve_checked = 0;
    if (st->valve_closes < UINT8_MAX)
        st->valve_closes++;
    if (e->on_action) {
        struct rule_action action = { .type = RULE_ACTION_CLOSE_VALVE, .meter = id, .ts_ms = ts_ms };
        e->on_action(e->ctx, &action);
    }
}

/* How long after the n-th close (1-based) the valve is checked:
 * valve_check_s, doubled for every close sent before it. */
static int64_t check_after_ms(const struct rule_engine *e, unsigned closes)
{
    int64_t ms = (int64_t)e->config.vacant_flow.valve_check_s * 1000;
    for (unsigned i = 1; i < closes && i < 16; i++)
        ms *= 2;
    return ms;
}

/* With auto_close_valve: close the flowing meter's valve once per incident,
 * then check it on the first read valve_check_s later: a valve that reports
 * a fault, is not closed, or lets water still flow is closed again, up to
 * valve_retries times with the wait doubling each time; after that the
 * incident goes critical with valve_failed. */
static void check_valve(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                        const struct water_input *in, struct cond *c, double volume_m3)
{
    const struct meter_state *m = &e->meter_states[id];
    struct water_state *st = &e->meter_states[id].water;
    struct unit_state *u = &e->units[m->unit];
    if (!e->config.vacant_flow.auto_close_valve || !m->has_valve || !c->raised)
        return;
    if (!u->valve_handled) {
        if (!st->vacant_present)
            return;
        u->valve_handled = 1;
        st->valve_closes = 0;
        send_close(e, id, st, s->ts_ms);
        return;
    }
    if (st->valve_closed_ms == TIME_NEVER || st->valve_checked ||
        s->ts_ms - st->valve_closed_ms < check_after_ms(e, st->valve_closes))
        return;
    st->valve_checked = 1;
    bool not_closed = (s->has & RULE_HAS_VALVE) && s->valve != RULE_VALVE_CLOSED;
    bool still_flowing = (in->have_flow && in->flow_m3h > e->config.continuous_flow.min_flow_m3h) ||
                         (in->have_increase && in->increase_m3 > 0.0);
    if (!s->valve_fault && !not_closed && !still_flowing)
        return;
    if (st->valve_closes <= (unsigned)e->config.vacant_flow.valve_retries) {
        send_close(e, id, st, s->ts_ms); /* it acknowledged but did not move: again */
        return;
    }
    u->valve_failed = 1;
    describe_vacant(e, c, id, u, volume_m3);
    rules__cond_refresh(e, c, s->ts_ms);
}

static void reset_unit_valve(struct rule_engine *e, uint32_t unit)
{
    e->units[unit].valve_handled = 0;
    e->units[unit].valve_failed = 0;
}

void rules__vacant_flow(struct rule_engine *e, uint32_t id, const struct rule_meter_sample *s,
                        const struct water_input *in)
{
    struct meter_state *m = &e->meter_states[id];
    if (m->unit < 0)
        return; /* no unit, no occupancy: never vacant flow */
    struct unit_state *u = &e->units[m->unit];
    struct cond *c = rules__unit_cond(e, (uint32_t)m->unit);
    if (!u->vacant) {
        if (c->raised) /* restored while the unit is now occupied */
            rules__cond_clear_now(e, c, s->ts_ms);
        return;
    }
    if (!in->have_volume)
        return;
    if (!c->raised && !c->present && u->flowing_meters == 0 && u->valve_handled)
        reset_unit_valve(e, (uint32_t)m->unit); /* the last incident is over */

    double volume_m3;
    enum vacant_evidence ev = vacant_evidence(e, m, s->ts_ms, in, &volume_m3);
    if (ev == VACANT_UNKNOWN)
        return;
    set_meter_flowing(u, &m->water, ev == VACANT_PRESENT);
    if (ev == VACANT_PRESENT) {
        describe_vacant(e, c, id, u, volume_m3);
        rules__cond_observe(e, c, OBS_PRESENT, s->ts_ms, false);
    } else if (ev == VACANT_ABSENT && u->flowing_meters == 0) {
        rules__cond_observe(e, c, OBS_ABSENT, s->ts_ms, false);
    }
    check_valve(e, id, s, in, c, volume_m3);
}

void rules__vacant_changed(struct rule_engine *e, uint32_t unit, bool vacant)
{
    for (size_t i = 0; i < e->nmeters; i++) {
        if (e->meter_states[i].unit != (int)unit || e->meter_states[i].kind != RULE_METER_WATER)
            continue; /* vacant_flow watches water meters only */
        struct water_state *st = &e->meter_states[i].water;
        st->vacant_present = 0;
        st->vacant_increasing_reads = 0;
        st->vacant_last_increase_ms = TIME_NEVER;
        st->valve_closed_ms = TIME_NEVER;
        st->valve_checked = 0;
        st->valve_closes = 0;
    }
    e->units[unit].flowing_meters = 0;
    reset_unit_valve(e, unit);
    if (!vacant) {
        int64_t ts = e->now_ms == TIME_NEVER ? 0 : e->now_ms;
        rules__cond_clear_now(e, rules__unit_cond(e, unit), ts);
    }
}

/* --- continuous_flow --- */

static int64_t local_ms_of_day(const struct meter_state *m, int64_t wall_ms)
{
    return floor_mod(wall_ms + (int64_t)m->utc_offset_min * MS_PER_MIN, MS_PER_DAY);
}

/* Inside [quiet_start, quiet_end) local time; the window may wrap midnight. */
static bool in_quiet_window(const struct meter_state *m, int64_t wall_ms)
{
    if (m->quiet_start_min < 0 || m->quiet_start_min == m->quiet_end_min)
        return false;
    int64_t minute = local_ms_of_day(m, wall_ms) / MS_PER_MIN;
    if (m->quiet_start_min < m->quiet_end_min)
        return minute >= m->quiet_start_min && minute < m->quiet_end_min;
    return minute >= m->quiet_start_min || minute < m->quiet_end_min;
}

static int64_t ms_since_quiet_end(const struct meter_state *m, int64_t wall_ms)
{
    return floor_mod(local_ms_of_day(m, wall_ms) - (int64_t)m->quiet_end_min * MS_PER_MIN, MS_PER_DAY);
}

/* Advances the meter's active clock: time outside the quiet window only. */
static void advance_active_clock(struct meter_state *m, int64_t ts_ms, int64_t wall_ms)
{
    struct water_state *st = &m->water;
    if (m->last_ts_ms == TIME_NEVER)
        return;
    int64_t dt = ts_ms - m->last_ts_ms;
    if (st->last_in_quiet) {
        int64_t since_end = ms_since_quiet_end(m, wall_ms);
        dt = since_end < dt ? since_end : dt;
    }
    st->active_ms += dt;
}

/* Leak: no stretch of zero_flow_needed_s without flow in the last window_s
 * of active time. Flow is flow_m3h above min_flow_m3h or any volume
 * increase between two reads. Samples inside the meter's quiet window
 * (irrigation) are skipped and its time is not counted: they neither count
 * as flow nor break a zero stretch that spans the window; the volume the
 * first read after the window shows is the window's, so only its flow_m3h
 * counts. */
void rules__continuous_flow(struct rule_engine *e, uint32_t id, int64_t ts_ms, const struct water_input *in)
{
    struct meter_state *m = &e->meter_states[id];
    struct water_state *st = &m->water;
    if (!(m->slots & (1u << SLOT_CONTINUOUS))) /* rules__continuous_flow_applies() */
        return;
    int64_t wall_ms = ts_ms + e->wall_offset_ms;
    if (in_quiet_window(m, wall_ms)) {
        st->last_in_quiet = 1;
        return;
    }
    advance_active_clock(m, ts_ms, wall_ms);
    /* the volume read right after the window was mostly used inside it */
    bool moved = in->have_increase && in->increase_m3 > 0.0 && !st->last_in_quiet;
    st->last_in_quiet = 0;
    if (!in->have_flow && !in->have_increase)
        return;
    bool flowing = moved || (in->have_flow && in->flow_m3h > e->config.continuous_flow.min_flow_m3h);
    if (!st->continuous_started) {
        st->continuous_started = 1;
        st->last_zero_ok_active_ms = st->active_ms;
    }
    if (flowing) {
        st->zero_start_active_ms = TIME_NEVER;
    } else {
        if (st->zero_start_active_ms == TIME_NEVER)
            st->zero_start_active_ms = st->active_ms;
        if (st->active_ms - st->zero_start_active_ms >= (int64_t)e->config.continuous_flow.zero_flow_needed_s * 1000) {
            st->last_zero_ok_active_ms = st->active_ms;
            st->continuous_zero_seen = 1;
        }
    }

    int64_t without_pause_ms = st->active_ms - st->last_zero_ok_active_ms;
    struct cond *c = rules__meter_cond(e, id, SLOT_CONTINUOUS);
    if (without_pause_ms >= (int64_t)e->config.continuous_flow.window_s * 1000) {
        double hours = (double)without_pause_ms / 3600000.0;
        rules__cond_describe(e, c, "no_zero_flow", hours);
        rules__cond_add_detail(e, c, "hours_without_pause", hours);
        if (in->have_flow)
            rules__cond_add_detail(e, c, "flow_m3h", in->flow_m3h);
        rules__cond_observe(e, c, OBS_PRESENT, ts_ms, false);
    } else if (st->continuous_zero_seen) {
        rules__cond_observe(e, c, OBS_ABSENT, ts_ms, false);
    }
    /* else: watched for less than window_s without a pause (e.g. just after
     * a restart): neither a leak nor proof there is none */
}

/* --- balance_loss --- */

/* Balance windows are aligned to local midnight of the wall clock. */
static int64_t balance_window(const struct rule_engine *e, uint32_t id, int64_t ts_ms)
{
    int64_t local = ts_ms + e->wall_offset_ms + (int64_t)e->meter_states[id].utc_offset_min * MS_PER_MIN;
    return floor_div(local, (int64_t)e->config.balance_loss.window_s * 1000);
}

/* The first counter value in each window is its mark; when a meter's first
 * sample of window w+1 arrives, its increase over window w is done. A window
 * with a replacement, jump or rollback inside, without a sample in the
 * next window, or the first one after start, has no increase. */
void rules__balance_state_init(struct balance_state *b)
{
    b->window_index = INT64_MIN;
    b->window_mark = 0.0;
    b->done_index = INT64_MIN;
    b->done_increase = 0.0;
    b->window_tainted = 0;
}

void rules__balance_mark(struct rule_engine *e, uint32_t id, int64_t ts_ms, double value, bool tainted)
{
    struct balance_state *st = &e->balance[e->meter_states[id].balance];
    int64_t w = balance_window(e, id, ts_ms);
    if (w == st->window_index) {
        st->window_tainted |= tainted;
        return;
    }
    if (w < st->window_index) /* the wall clock was set back: start afresh */
        rules__balance_state_init(st);
    bool first = st->window_index == INT64_MIN;
    bool consecutive = !first && w == st->window_index + 1;
    if (consecutive && !st->window_tainted && !tainted && value >= st->window_mark) {
        st->done_index = st->window_index;
        st->done_increase = value - st->window_mark;
    } else {
        st->done_index = INT64_MIN;
    }
    st->window_index = w;
    st->window_mark = value;
    /* The window the engine starts in is partial (each meter's first sample
     * comes at a different moment of it): never judge it. */
    st->window_tainted = first;
}

static bool window_complete(const struct rule_engine *e, const struct balance_parent *p, int64_t k)
{
    if (e->balance[e->meter_states[p->meter].balance].done_index != k)
        return false;
    for (uint32_t i = p->child_start; i < p[1].child_start; i++)
        if (e->balance[e->balance_children[i]].done_index != k)
            return false;
    return true;
}

static void evaluate_balance(struct rule_engine *e, const struct balance_parent *p, int64_t now_ms)
{
    const struct rule_config *cfg = &e->config;
    double parent_inc = e->balance[e->meter_states[p->meter].balance].done_increase;
    double children = 0.0;
    for (uint32_t i = p->child_start; i < p[1].child_start; i++)
        children += e->balance[e->balance_children[i]].done_increase;
    double loss_pct = parent_inc > 0.0 ? (parent_inc - children) / parent_inc * 100.0 : 0.0;
    double tolerance = parent_inc < cfg->balance_loss.low_flow_m3 ? cfg->balance_loss.low_flow_loss_pct
                                                                  : cfg->balance_loss.loss_pct;
    struct cond *c = rules__meter_cond(e, p->meter, SLOT_BALANCE);
    if (parent_inc > 0.0 && loss_pct > tolerance) {
        rules__cond_describe(e, c, "loss", loss_pct);
        rules__cond_add_detail(e, c, "loss_pct", loss_pct);
        rules__cond_add_detail(e, c, "parent", parent_inc);
        rules__cond_add_detail(e, c, "children", children);
        rules__cond_add_detail(e, c, "tolerance_pct", tolerance);
        rules__cond_observe(e, c, OBS_PRESENT, now_ms, false);
    } else {
        rules__cond_observe(e, c, OBS_ABSENT, now_ms, false);
    }
}

void rules__balance_tick(struct rule_engine *e, int64_t now_ms)
{
    for (size_t i = 0; i < e->nparents; i++) {
        struct balance_parent *p = &e->parents[i];
        int64_t k = balance_window(e, p->meter, now_ms) - 1;
        if (p->evaluated_index > k) /* the wall clock was set back */
            p->evaluated_index = INT64_MIN;
        if (p->evaluated_index >= k || !window_complete(e, p, k))
            continue;
        p->evaluated_index = k;
        evaluate_balance(e, p, now_ms);
    }
}
