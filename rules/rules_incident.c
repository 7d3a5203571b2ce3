/* rules_incident.c - the incident state machine every rule shares: one
 * condition (rule + subject) raises after hold_s, updates only on material
 * change (severity, metric doubled), clears after clear_s of absence, and is
 * never raised twice while open. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"
#include "rules_internal.h"

#define INFOS_MIN_CAP 64

/* --- the pool of cond_info --- */

static struct cond_info *info_of(struct rule_engine *e, const struct cond *c)
{
    assert(c->info != NO_INFO);
    return &e->infos[c->info];
}

est_err rules__reserve_infos(struct rule_engine *e, size_t n)
{
    if (e->nfree >= n)
        return EST_OK;
    size_t need = e->ninfos + (n - e->nfree);
    if (need < INFOS_MIN_CAP)
        need = INFOS_MIN_CAP;
    if (need >= NO_INFO)
        return EST_ERR_NOMEM;
    /* infos and pending have ninfos elements each; both grow to cap (the
     * larger infos stay if pending cannot follow: harmless) */
    size_t cap = e->ninfos, pending_cap = e->ninfos;
    if (EST_VEC_RESERVE(e->infos, cap, need) != EST_OK || cap >= NO_INFO ||
        EST_VEC_RESERVE(e->pending, pending_cap, cap) != EST_OK)
        return EST_ERR_NOMEM;
    for (size_t i = cap; i-- > e->ninfos;) {
        e->infos[i].cond = e->free_info;
        e->free_info = (uint32_t)i;
    }
    e->nfree += cap - e->ninfos;
    e->ninfos = cap;
    return EST_OK;
}

void rules__free_infos(struct rule_engine *e)
{
    free(e->infos);
    free(e->pending);
}

/* Makes the condition active: gives it a cond_info (room was reserved). */
static struct cond_info *acquire_info(struct rule_engine *e, struct cond *c)
{
    if (c->info != NO_INFO)
        return &e->infos[c->info];
    assert(e->nfree > 0);
    uint32_t i = e->free_info;
    struct cond_info *info = &e->infos[i];
    e->free_info = info->cond;
    e->nfree--;
    memset(info, 0, sizeof *info);
    info->raised_since_ms = TIME_NEVER;
    info->reason = "";
    info->cond = (uint32_t)(c - e->conds);
    info->pending_slot = NOT_PENDING;
    info->severity = info->want_severity = (uint8_t)e->common[c->rule]->severity;
    c->info = i;
    return info;
}

/* An idle condition gives its cond_info back. Nothing of it is needed
 * again: the next activation describes the condition afresh, and an idle
 * condition's severity is always its rule's. */
static void release_info(struct rule_engine *e, struct cond *c)
{
    struct cond_info *info = info_of(e, c);
    assert(info->pending_slot == NOT_PENDING);
    info->cond = e->free_info;
    e->free_info = c->info;
    e->nfree++;
    c->info = NO_INFO;
}

/* The subject of condition i, from where it sits in engine->conds. */
static struct rule_subject subject_of(const struct rule_engine *e, size_t i)
{
    struct rule_subject s = { RULE_SUBJECT_METER, 0, -1 };
    if (i >= e->extra_cond_base) {
        s.index = e->extras[i - e->extra_cond_base].meter;
    } else if (i >= e->zone_cond_base) {
        size_t zone = (i - e->zone_cond_base) / ZONE_SLOTS;
        size_t lo = 0, hi = e->npanels; /* the last panel whose zones start at or before zone */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->panels[mid].zone_base <= zone)
                lo = mid;
            else
                hi = mid;
        }
        s.type = RULE_SUBJECT_ZONE;
        s.index = (uint32_t)lo;
        s.zone = (int32_t)(zone - e->panels[lo].zone_base);
    } else if (i >= e->panel_cond_base) {
        s.type = RULE_SUBJECT_PANEL;
        s.index = (uint32_t)((i - e->panel_cond_base) / PANEL_SLOTS);
    } else if (i >= e->unit_cond_base) {
        s.type = RULE_SUBJECT_UNIT;
        s.index = (uint32_t)(i - e->unit_cond_base);
    } else {
        size_t lo = 0, hi = e->nmeters; /* the last meter whose conditions start at or before i */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (e->meter_states[mid].cond_base <= i)
                lo = mid;
            else
                hi = mid;
        }
        s.index = (uint32_t)lo;
    }
    return s;
}

/* --- conditions --- */

void rules__cond_init(struct cond *c, enum rule_id rule)
{
    memset(c, 0, sizeof *c);
    c->since_ms = TIME_NEVER;
    c->info = NO_INFO;
    c->rule = (uint8_t)rule;
}

void rules__cond_describe(struct rule_engine *e, struct cond *c, const char *reason, double metric)
{
    struct cond_info *info = acquire_info(e, c);
    info->reason = reason;
    info->metric = metric;
    info->ndetail = 0;
}

void rules__cond_add_detail(struct rule_engine *e, struct cond *c, const char *key, double value)
{
    struct cond_info *info = acquire_info(e, c);
    if (info->ndetail < COND_MAX_DETAIL) {
        info->detail[info->ndetail].key = key;
        info->detail[info->ndetail].value = value;
        info->ndetail++;
    }
}

void rules__cond_want_severity(struct rule_engine *e, struct cond *c, enum rule_severity severity)
{
    acquire_info(e, c)->want_severity = (uint8_t)severity;
}

void rules__cond_force_update(struct rule_engine *e, struct cond *c)
{
    acquire_info(e, c)->force_update = 1;
}

/* Keeps engine->pending listing exactly the conditions a tick can change:
 * present but not raised (hold) or raised but not present (clear). */
static void update_pending(struct rule_engine *e, struct cond *c)
{
    if (c->info == NO_INFO)
        return; /* idle: neither waiting nor holding anything */
    struct cond_info *info = info_of(e, c);
    bool waiting = c->present != c->raised;
    if (waiting && info->pending_slot == NOT_PENDING) {
        info->pending_slot = (uint32_t)e->npending;
        e->pending[e->npending++] = (uint32_t)(c - e->conds);
    } else if (!waiting && info->pending_slot != NOT_PENDING) {
        uint32_t last = e->pending[--e->npending];
        e->pending[info->pending_slot] = last;
        info_of(e, &e->conds[last])->pending_slot = info->pending_slot;
        info->pending_slot = NOT_PENDING;
    }
    if (!c->present && !c->raised)
        release_info(e, c);
}

static void emit(struct rule_engine *e, const struct cond *c, enum rule_transition transition,
                 int64_t ts_ms)
{
    if (!e->on_event)
        return;
    const struct cond_info *info = info_of(e, c);
    struct rule_event ev;
    memset(&ev, 0, sizeof ev);
    ev.rule = (enum rule_id)c->rule;
    ev.transition = transition;
    ev.subject = subject_of(e, (size_t)(c - e->conds));
    ev.severity = (enum rule_severity)info->severity;
    ev.ts_ms = ts_ms;
    ev.since_ms = info->raised_since_ms;
    ev.reason = info->reason;
    ev.ndetail = info->ndetail;
    memcpy(ev.detail, info->detail, sizeof info->detail[0] * info->ndetail);
    e->on_event(e->ctx, &ev);
}

static void raise_incident(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    struct cond_info *info = acquire_info(e, c);
    c->raised = 1;
    info->raised_since_ms = c->since_ms; /* present: the start of the present stretch */
    info->severity = info->want_severity;
    info->force_update = 0;
    info->reported_metric = info->metric;
    emit(e, c, RULE_RAISED, ts_ms);
}

static void clear_incident(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    struct cond_info *info = info_of(e, c);
    c->raised = 0;
    emit(e, c, RULE_CLEARED, ts_ms);
    info->raised_since_ms = TIME_NEVER;
    info->want_severity = (uint8_t)e->common[c->rule]->severity;
    info->severity = info->want_severity;
}

/* Material change: severity differs, the rule flagged a new detail, or the
 * metric at least doubled since it was last reported (from a floor). */
static bool changed_materially(struct rule_engine *e, const struct cond *c)
{
    const struct cond_info *info = info_of(e, c);
    if (info->want_severity != info->severity || info->force_update)
        return true;
    double floor = e->metric_floor[c->rule];
    if (floor <= 0.0 || isnan(info->reported_metric))
        return false;
    double base = fabs(info->reported_metric) > floor ? fabs(info->reported_metric) : floor;
    return fabs(info->metric) >= 2.0 * base;
}

void rules__cond_refresh(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    if (!c->raised)
        return;
    struct cond_info *info = info_of(e, c);
    if (isnan(info->reported_metric) && !info->force_update && info->want_severity == info->severity) {
        /* restored incident: adopt what we see now without announcing it */
        info->reported_metric = info->metric;
        return;
    }
    if (!changed_materially(e, c))
        return;
    info->severity = info->want_severity;
    info->force_update = 0;
    info->reported_metric = info->metric;
    emit(e, c, RULE_UPDATED, ts_ms);
}

static void mark_present(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    acquire_info(e, c); /* normally done by the describe before */
    if (!c->present) {
        c->present = 1;
        c->since_ms = ts_ms;
    }
}

static void mark_absent(struct cond *c, int64_t ts_ms)
{
    if (c->present || c->since_ms == TIME_NEVER) {
        c->present = 0;
        c->since_ms = ts_ms;
    }
}

void rules__cond_tick(struct rule_engine *e, struct cond *c, int64_t now_ms)
{
    const struct rule_common *common = e->common[c->rule];
    if (!common->enabled) { /* e.g. restored, then the rule was switched off */
        if (c->raised)
            clear_incident(e, c, now_ms);
        update_pending(e, c);
        return;
    }
    if (c->present && !c->raised) {
        if (now_ms - c->since_ms >= (int64_t)common->hold_s * 1000)
            raise_incident(e, c, now_ms);
    } else if (!c->present && c->raised && c->since_ms != TIME_NEVER) {
        if (now_ms - c->since_ms >= (int64_t)common->clear_s * 1000)
            clear_incident(e, c, now_ms);
    }
    update_pending(e, c);
}

void rules__cond_observe(struct rule_engine *e, struct cond *c, enum observation obs, int64_t ts_ms,
                         bool immediate)
{
    switch (obs) {
    case OBS_UNKNOWN:
        return;
    case OBS_PRESENT:
        mark_present(e, c, ts_ms);
        if (c->raised)
            rules__cond_refresh(e, c, ts_ms);
        else if (immediate)
            raise_incident(e, c, ts_ms);
        rules__cond_tick(e, c, ts_ms);
        return;
    case OBS_ABSENT:
        if (!c->present && !c->raised && c->since_ms != TIME_NEVER)
            return; /* the common case: nothing going on */
        mark_absent(c, ts_ms);
        rules__cond_tick(e, c, ts_ms);
        return;
    }
}

void rules__cond_clear_now(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    c->present = 0;
    c->since_ms = ts_ms;
    if (c->raised)
        clear_incident(e, c, ts_ms);
    update_pending(e, c);
}

void rules__cond_restore(struct rule_engine *e, struct cond *c, int64_t since_ms)
{
    struct cond_info *info = acquire_info(e, c);
    c->raised = 1;
    info->raised_since_ms = since_ms;
    c->present = 0;
    c->since_ms = TIME_NEVER; /* clears only after absence is observed */
    info->severity = info->want_severity = (uint8_t)e->common[c->rule]->severity;
    info->force_update = 0;
    info->reported_metric = NAN;
    update_pending(e, c);
}
