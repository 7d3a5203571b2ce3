/* rules_engine.c - the rule engine's life cycle and public entry points:
 * topology validation, fixed state allocation at create, sample and tick
 * dispatch, occupancy changes, restore and condition lookup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"
#include "rules_internal.h"

/* --- topology validation --- */

static bool finite_non_negative(double v)
{
    return isfinite(v) && v >= 0.0;
}

static bool valid_minute(int minute)
{
    return minute >= -1 && minute < 1440;
}

static bool meter_fields_valid(const struct rule_topology *t, size_t i)
{
    const struct rule_meter *m = &t->meters[i];
    if ((unsigned)m->kind > RULE_METER_WATER || (unsigned)m->category > RULE_CAT_OFFICE)
        return false;
    if (m->unit < -1 || (m->unit >= 0 && (size_t)m->unit >= t->nunits))
        return false;
    if (m->parent < -1 || (m->parent >= 0 && (size_t)m->parent >= t->nmeters) || (size_t)m->parent == i)
        return false;
    if (m->parent >= 0 && t->meters[m->parent].kind != m->kind)
        return false; /* balance compares like with like */
    if (!finite_non_negative(m->rated_power_w) || !finite_non_negative(m->max_flow_m3h) ||
        !finite_non_negative(m->resolution) || !finite_non_negative(m->counter_wrap))
        return false;
    if (!valid_minute(m->quiet_start_min) || !valid_minute(m->quiet_end_min) ||
        (m->quiet_start_min < 0) != (m->quiet_end_min < 0))
        return false;
    return m->utc_offset_min > -1440 && m->utc_offset_min < 1440;
}

/* Walks each parent chain once (0 unseen, 1 on the current walk, 2 known
 * to end at a root). Returns false on a loop. */
static bool parents_acyclic(const struct rule_topology *t)
{
    uint8_t *mark = calloc(t->nmeters ? t->nmeters : 1, 1);
    if (!mark)
        return false;
    bool ok = true;
    for (size_t i = 0; i < t->nmeters && ok; i++) {
        int m = (int)i;
        while (m >= 0 && mark[m] == 0) {
            mark[m] = 1;
            m = t->meters[m].parent;
        }
        if (m >= 0 && mark[m] == 1)
            ok = false;
        for (int k = (int)i; k >= 0 && mark[k] == 1; k = t->meters[k].parent)
            mark[k] = 2;
    }
    free(mark);
    return ok;
}

static est_err topology_check(const struct rule_topology *t)
{
    if ((t->nmeters && !t->meters) || (t->nunits && !t->unit_vacant) || (t->npanels && !t->panel_zones))
        return EST_ERR_INVALID;
    if (t->nmeters > UINT32_MAX / METER_SLOTS || t->nunits > UINT32_MAX || t->npanels > UINT32_MAX)
        return EST_ERR_INVALID;
    for (size_t i = 0; i < t->nmeters; i++)
        if (!meter_fields_valid(t, i))
            return EST_ERR_INVALID;
    return parents_acyclic(t) ? EST_OK : EST_ERR_INVALID;
}

/* --- creation --- */

static void set_rule_tables(struct rule_engine *e)
{
    struct rule_config *c = &e->config;
    e->common[RULE_REVERSE_ENERGY] = &c->reverse_energy.c;
    e->common[RULE_VACANT_FLOW] = &c->vacant_flow.c;
    e->common[RULE_CONTINUOUS_FLOW] = &c->continuous_flow.c;
    e->common[RULE_FIRE_ALARM] = &c->fire_alarm.c;
    e->common[RULE_FIRE_FAULT] = &c->fire_fault.c;
    e->common[RULE_FIRE_DISABLED] = &c->fire_disabled.c;
    e->common[RULE_FIRE_SUPERVISORY] = &c->fire_supervisory.c;
    e->common[RULE_METER_OFFLINE] = &c->meter_offline.c;
    e->common[RULE_IMPLAUSIBLE_READING] = &c->implausible_reading.c;
    e->common[RULE_METER_REPLACED] = &c->meter_replaced.c;
    e->common[RULE_BALANCE_LOSS] = &c->balance_loss.c;
    e->common[RULE_VACANT_POWER] = &c->vacant_power.c;
    e->common[RULE_BATTERY_LOW] = &c->battery_low.c;

    /* Metrics that make an UPDATED when they double (0: never). */
    e->metric_floor[RULE_REVERSE_ENERGY] = 1.0;  /* exported kWh */
    e->metric_floor[RULE_VACANT_FLOW] = 0.05;    /* m3 since the flow began */
    e->metric_floor[RULE_CONTINUOUS_FLOW] = c->continuous_flow.window_s / 3600.0; /* hours */
    e->metric_floor[RULE_BALANCE_LOSS] = c->balance_loss.loss_pct > 0 ? c->balance_loss.loss_pct : 1.0;
    e->metric_floor[RULE_VACANT_POWER] = c->vacant_power.threshold_w > 0 ? c->vacant_power.threshold_w : 1.0; /* mean W */
}

/* Balance groups: every meter with a parent or children gets a balance
 * state; each parent lists its children's, in meter order. */
static est_err build_balance(struct rule_engine *e, const struct rule_topology *t)
{
    uint32_t *nchildren = calloc(e->nmeters ? e->nmeters : 1, sizeof *nchildren);
    if (!nchildren)
        return EST_ERR_NOMEM;
    size_t nmembers = 0, nchildren_all = 0;
    for (size_t i = 0; i < e->nmeters; i++)
        if (t->meters[i].parent >= 0) {
            nchildren[t->meters[i].parent]++;
            nchildren_all++;
        }
    for (size_t i = 0; i < e->nmeters; i++) {
        bool member = t->meters[i].parent >= 0 || nchildren[i] > 0;
        e->meter_states[i].balance = member ? (uint32_t)nmembers++ : NO_BALANCE;
        e->nparents += nchildren[i] > 0;
    }
    e->balance = calloc(nmembers ? nmembers : 1, sizeof *e->balance);
    e->parents = calloc(e->nparents + 1, sizeof *e->parents);
    e->balance_children = calloc(nchildren_all ? nchildren_all : 1, sizeof *e->balance_children);
    if (!e->balance || !e->parents || !e->balance_children) {
        free(nchildren);
        return EST_ERR_NOMEM;
    }
    for (size_t b = 0; b < nmembers; b++)
        rules__balance_state_init(&e->balance[b]);
    size_t p = 0;
    uint32_t start = 0;
    for (size_t i = 0; i < e->nmeters; i++) {
        if (nchildren[i] == 0)
            continue;
        e->parents[p++] = (struct balance_parent){ (uint32_t)i, start, INT64_MIN };
        uint32_t count = nchildren[i];
        nchildren[i] = start; /* from here on: where its next child goes */
        start += count;
    }
    e->parents[p] = (struct balance_parent){ UINT32_MAX, start, INT64_MIN };
    for (size_t i = 0; i < e->nmeters; i++) {
        int parent = t->meters[i].parent;
        if (parent >= 0)
            e->balance_children[nchildren[parent]++] = e->meter_states[i].balance;
    }
    free(nchildren);
    return EST_OK;
}

static const enum rule_id meter_rules[METER_SLOTS] = {
    [SLOT_REVERSE] = RULE_REVERSE_ENERGY, [SLOT_CONTINUOUS] = RULE_CONTINUOUS_FLOW,
    [SLOT_OFFLINE] = RULE_METER_OFFLINE, [SLOT_IMPLAUSIBLE] = RULE_IMPLAUSIBLE_READING,
    [SLOT_REPLACED] = RULE_METER_REPLACED, [SLOT_BALANCE] = RULE_BALANCE_LOSS,
    [SLOT_VACANT_POWER] = RULE_VACANT_POWER,
    [SLOT_BATTERY] = RULE_BATTERY_LOW,
};

/* The slots whose rule can ever evaluate this meter (enabled or not): the
 * meter gets one condition for each, nothing for the others. balance_loss
 * (parents only) is added by the caller. */
static unsigned meter_slots(const struct rule_meter *m)
{
    unsigned slots = 1u << SLOT_OFFLINE | 1u << SLOT_IMPLAUSIBLE | 1u << SLOT_REPLACED |
                     1u << SLOT_BATTERY;
    if (m->kind == RULE_METER_ELECTRICITY && !m->export_expected)
        slots |= 1u << SLOT_REVERSE;
    if (rules__continuous_flow_applies(m))
        slots |= 1u << SLOT_CONTINUOUS;
    if (rules__vacant_power_applies(m))
        slots |= 1u << SLOT_VACANT_POWER;
    return slots;
}

static void init_conds(struct rule_engine *e)
{
    static const enum rule_id zone_rules[ZONE_SLOTS] = {
        [ZONE_SLOT_ALARM] = RULE_FIRE_ALARM, [ZONE_SLOT_FAULT] = RULE_FIRE_FAULT,
        [ZONE_SLOT_DISABLED] = RULE_FIRE_DISABLED, [ZONE_SLOT_SUPERVISORY] = RULE_FIRE_SUPERVISORY,
    };
    for (uint32_t m = 0; m < e->nmeters; m++)
        for (int s = 0; s < METER_SLOTS; s++)
            if (e->meter_states[m].slots & (1u << s))
                rules__cond_init(rules__meter_cond(e, m, (enum meter_slot)s), meter_rules[s]);
    for (uint32_t u = 0; u < e->nunits; u++)
        rules__cond_init(rules__unit_cond(e, u), RULE_VACANT_FLOW);
    for (uint32_t p = 0; p < e->npanels; p++) {
        rules__cond_init(rules__panel_cond(e, p, PANEL_SLOT_FAULT), RULE_FIRE_FAULT);
        rules__cond_init(rules__panel_cond(e, p, PANEL_SLOT_OFFLINE), RULE_METER_OFFLINE);
        for (uint32_t z = 0; z < e->panels[p].nzones; z++)
            for (int s = 0; s < ZONE_SLOTS; s++)
                rules__cond_init(rules__zone_cond(e, p, z, (enum zone_slot)s), zone_rules[s]);
    }
}

/* The pool starts small: it holds only the conditions active at once. */
#define INITIAL_INFOS 256

static est_err allocate_state(struct rule_engine *e, const struct rule_topology *t)
{
    e->nmeters = t->nmeters;
    e->nunits = t->nunits;
    e->npanels = t->npanels;
    e->meter_states = calloc(e->nmeters ? e->nmeters : 1, sizeof *e->meter_states);
    e->units = calloc(e->nunits ? e->nunits : 1, sizeof *e->units);
    e->panels = calloc(e->npanels ? e->npanels : 1, sizeof *e->panels);
    if (!e->meter_states || !e->units || !e->panels)
        return EST_ERR_NOMEM;
    for (size_t i = 0; i < e->nmeters; i++) {
        rules__meter_state_init(&e->meter_states[i], &t->meters[i]);
        e->meter_states[i].slots = (uint8_t)meter_slots(&t->meters[i]);
    }
    for (size_t u = 0; u < e->nunits; u++)
        e->units[u].vacant = t->unit_vacant[u];
    for (size_t p = 0; p < e->npanels; p++) {
        e->panels[p].zone_base = (uint32_t)e->nzones;
        e->panels[p].nzones = t->panel_zones[p];
        e->nzones += t->panel_zones[p];
    }
    est_err err = build_balance(e, t);
    if (err)
        return err;
    for (size_t p = 0; p < e->nparents; p++)
        e->meter_states[e->parents[p].meter].slots |= 1u << SLOT_BALANCE;
    size_t nmeter_conds = 0;
    for (size_t i = 0; i < e->nmeters; i++) {
        struct meter_state *st = &e->meter_states[i];
        st->cond_base = (uint32_t)nmeter_conds;
        nmeter_conds += rules__slot_offset(st->slots, METER_SLOTS);
    }
    e->unit_cond_base = nmeter_conds;
    e->panel_cond_base = e->unit_cond_base + e->nunits;
    e->zone_cond_base = e->panel_cond_base + e->npanels * PANEL_SLOTS;
    e->extra_cond_base = e->zone_cond_base + e->nzones * ZONE_SLOTS;
    e->nconds = e->conds_cap = e->extra_cond_base;
    if (e->nconds >= NOT_PENDING)
        return EST_ERR_INVALID; /* condition indices are 32-bit */
    e->conds = calloc(e->nconds ? e->nconds : 1, sizeof *e->conds);
    if (!e->conds)
        return EST_ERR_NOMEM;
    e->free_info = NO_INFO;
    err = rules__reserve_infos(e, e->nconds < INITIAL_INFOS ? e->nconds : INITIAL_INFOS);
    if (err)
        return err;
    init_conds(e);
    return EST_OK;
}

est_err rule_engine_create(const struct rule_config *config, const struct rule_topology *topology,
                           rule_event_fn on_event, rule_action_fn on_action, void *ctx,
                           struct rule_engine **out)
{
    if (!out)
        return EST_ERR_INVALID;
    *out = NULL;
    if (!config || !topology)
        return EST_ERR_INVALID;
    est_err err = rules__config_check(config);
    if (err)
        return err;
    err = topology_check(topology);
    if (err)
        return err;

    struct rule_engine *e = calloc(1, sizeof *e);
    if (!e)
        return EST_ERR_NOMEM;
    e->config = *config;
    e->on_event = on_event;
    e->on_action = on_action;
    e->ctx = ctx;
    e->now_ms = TIME_NEVER;
    set_rule_tables(e);
    err = allocate_state(e, topology);
    if (err) {
        rule_engine_destroy(e);
        return err;
    }
    *out = e;
    return EST_OK;
}

void rule_engine_destroy(struct rule_engine *engine)
{
    if (!engine)
        return;
    free(engine->meter_states);
    free(engine->units);
    free(engine->panels);
    free(engine->balance);
    free(engine->parents);
    free(engine->balance_children);
    free(engine->conds);
    free(engine->extras);
    rules__free_infos(engine);
    free(engine);
}

/* --- condition lookup --- */

static bool rule_allows_subject(enum rule_id rule, enum rule_subject_type type)
{
    switch (rule) {
    case RULE_VACANT_FLOW: return type == RULE_SUBJECT_UNIT;
    case RULE_FIRE_ALARM:
    case RULE_FIRE_DISABLED:
    case RULE_FIRE_SUPERVISORY: return type == RULE_SUBJECT_ZONE;
    case RULE_FIRE_FAULT: return type == RULE_SUBJECT_ZONE || type == RULE_SUBJECT_PANEL;
    case RULE_METER_OFFLINE: return type == RULE_SUBJECT_METER || type == RULE_SUBJECT_PANEL;
    default: return type == RULE_SUBJECT_METER;
    }
}

static enum meter_slot meter_slot_of(enum rule_id rule)
{
    switch (rule) {
    case RULE_REVERSE_ENERGY: return SLOT_REVERSE;
    case RULE_CONTINUOUS_FLOW: return SLOT_CONTINUOUS;
    case RULE_METER_OFFLINE: return SLOT_OFFLINE;
    case RULE_IMPLAUSIBLE_READING: return SLOT_IMPLAUSIBLE;
    case RULE_METER_REPLACED: return SLOT_REPLACED;
    case RULE_VACANT_POWER: return SLOT_VACANT_POWER;
    case RULE_BATTERY_LOW: return SLOT_BATTERY;
    default: return SLOT_BALANCE;
    }
}

static enum zone_slot zone_slot_of(enum rule_id rule)
{
    switch (rule) {
    case RULE_FIRE_ALARM: return ZONE_SLOT_ALARM;
    case RULE_FIRE_FAULT: return ZONE_SLOT_FAULT;
    case RULE_FIRE_SUPERVISORY: return ZONE_SLOT_SUPERVISORY;
    default: return ZONE_SLOT_DISABLED;
    }
}

/* The restored condition of a meter rule that cannot apply to the meter,
 * or NULL. */
static struct cond *find_extra(struct rule_engine *e, uint32_t meter, enum meter_slot slot)
{
    for (size_t i = 0; i < e->nconds - e->extra_cond_base; i++)
        if (e->extras[i].meter == meter && e->extras[i].slot == (uint32_t)slot)
            return &e->conds[e->extra_cond_base + i];
    return NULL;
}

/* Appends an idle condition for a meter rule that cannot apply to the meter. */
static struct cond *add_extra(struct rule_engine *e, uint32_t meter, enum meter_slot slot, est_err *err)
{
    *err = EST_ERR_NOMEM;
    size_t nextras = e->nconds - e->extra_cond_base;
    if (e->nconds + 1 >= NOT_PENDING)
        return NULL;
    if (e->nconds == e->conds_cap) {
        size_t cap = e->conds_cap + (nextras > 8 ? nextras : 8);
        struct cond *conds = realloc(e->conds, cap * sizeof *conds);
        if (!conds)
            return NULL;
        e->conds = conds;
        e->conds_cap = cap;
    }
    if (EST_VEC_RESERVE(e->extras, e->extras_cap, nextras + 1) != EST_OK)
        return NULL;
    e->extras[nextras] = (struct extra_cond){ meter, (uint32_t)slot };
    struct cond *c = &e->conds[e->nconds++];
    rules__cond_init(c, meter_rules[slot]);
    *err = EST_OK;
    return c;
}

/* The condition for rule + subject, or NULL with *err set. A meter rule
 * that cannot apply to the meter has no condition unless one was restored;
 * with create, restoring makes one. */
static struct cond *find_cond(struct rule_engine *e, enum rule_id rule, const struct rule_subject *s,
                              bool create, est_err *err)
{
    *err = EST_ERR_INVALID;
    if (!s || (unsigned)rule >= RULE__COUNT || !rule_allows_subject(rule, s->type))
        return NULL;
    *err = EST_ERR_NOTFOUND;
    switch (s->type) {
    case RULE_SUBJECT_METER: {
        if (s->index >= e->nmeters)
            return NULL;
        *err = EST_OK;
        enum meter_slot slot = meter_slot_of(rule);
        if (e->meter_states[s->index].slots & (1u << slot))
            return rules__meter_cond(e, s->index, slot);
        struct cond *c = find_extra(e, s->index, slot);
        if (!c && create)
            c = add_extra(e, s->index, slot, err);
        return c;
    }
    case RULE_SUBJECT_UNIT:
        if (s->index >= e->nunits)
            return NULL;
        *err = EST_OK;
        return rules__unit_cond(e, s->index);
    case RULE_SUBJECT_PANEL:
        if (s->index >= e->npanels)
            return NULL;
        *err = EST_OK;
        return rules__panel_cond(e, s->index, rule == RULE_FIRE_FAULT ? PANEL_SLOT_FAULT : PANEL_SLOT_OFFLINE);
    case RULE_SUBJECT_ZONE:
        if (s->index >= e->npanels || s->zone < 0 || (uint32_t)s->zone >= e->panels[s->index].nzones)
            return NULL;
        *err = EST_OK;
        return rules__zone_cond(e, s->index, (uint32_t)s->zone, zone_slot_of(rule));
    }
    *err = EST_ERR_INVALID;
    return NULL;
}

est_err rule_engine_restore(struct rule_engine *engine, enum rule_id rule,
                            const struct rule_subject *subject, int64_t since_ms)
{
    if (!engine)
        return EST_ERR_INVALID;
    est_err err = rules__reserve_infos(engine, 1);
    if (err)
        return err;
    struct cond *c = find_cond(engine, rule, subject, true, &err);
    if (!c)
        return err;
    rules__cond_restore(engine, c, since_ms);
    if (rule == RULE_VACANT_FLOW)
        engine->units[subject->index].valve_handled = 1; /* never re-close after a restart */
    return EST_OK;
}

bool rule_engine_condition_active(const struct rule_engine *engine, enum rule_id rule,
                                  const struct rule_subject *subject)
{
    if (!engine)
        return false;
    est_err err;
    const struct cond *c = find_cond((struct rule_engine *)engine, rule, subject, false, &err);
    return c && (c->raised || c->present);
}

/* --- samples, ticks, occupancy --- */

static void advance_clock(struct rule_engine *e, int64_t ts_ms)
{
    if (e->now_ms == TIME_NEVER || ts_ms > e->now_ms)
        e->now_ms = ts_ms;
}

est_err rule_engine_feed_meter(struct rule_engine *engine, const struct rule_meter_sample *sample)
{
    if (!engine || !sample)
        return EST_ERR_INVALID;
    if (sample->meter >= engine->nmeters)
        return EST_ERR_NOTFOUND;
    /* a meter sample activates at most its own conditions and its unit's */
    if (rules__reserve_infos(engine, METER_SLOTS + 1) != EST_OK)
        return EST_ERR_NOMEM;
    advance_clock(engine, sample->ts_ms);
    return rules__feed_meter(engine, sample);
}

est_err rule_engine_feed_panel(struct rule_engine *engine, const struct rule_panel_sample *sample)
{
    if (!engine || !sample)
        return EST_ERR_INVALID;
    if (sample->panel >= engine->npanels)
        return EST_ERR_NOTFOUND;
    if (sample->ok && sample->nzones > 0 && !sample->zones)
        return EST_ERR_INVALID;
    size_t nzones = sample->nzones < engine->panels[sample->panel].nzones ? sample->nzones
                                                                          : engine->panels[sample->panel].nzones;
    if (rules__reserve_infos(engine, PANEL_SLOTS + ZONE_SLOTS * nzones) != EST_OK)
        return EST_ERR_NOMEM;
    advance_clock(engine, sample->ts_ms);
    return rules__feed_panel(engine, sample);
}

void rule_engine_tick(struct rule_engine *engine, int64_t now_ms)
{
    if (!engine)
        return;
    advance_clock(engine, now_ms);
    /* a balance evaluation may activate each parent's condition; without
     * the memory for that it waits for a later tick */
    if (engine->config.balance_loss.c.enabled && rules__reserve_infos(engine, engine->nparents) == EST_OK)
        rules__balance_tick(engine, now_ms);
    /* backwards: a tick may take the condition off the pending list */
    for (size_t i = engine->npending; i-- > 0;)
        rules__cond_tick(engine, &engine->conds[engine->pending[i]], now_ms);
}

est_err rule_engine_set_utc_offset(struct rule_engine *engine, int offset_min)
{
    if (!engine)
        return EST_ERR_INVALID;
    if (offset_min <= -1440 || offset_min >= 1440)
        return EST_ERR_RANGE;
    for (size_t i = 0; i < engine->nmeters; i++)
        engine->meter_states[i].utc_offset_min = (int16_t)offset_min;
    return EST_OK;
}

void rule_engine_set_wall_offset(struct rule_engine *engine, int64_t offset_ms)
{
    if (engine)
        engine->wall_offset_ms = offset_ms;
}

est_err rule_engine_set_vacant(struct rule_engine *engine, uint32_t unit, bool vacant)
{
    if (!engine)
        return EST_ERR_INVALID;
    if (unit >= engine->nunits)
        return EST_ERR_NOTFOUND;
    if (engine->units[unit].vacant == vacant)
        return EST_OK;
    engine->units[unit].vacant = vacant;
    rules__vacant_changed(engine, unit, vacant);
    rules__vacant_power_changed(engine, unit, vacant);
    return EST_OK;
}
