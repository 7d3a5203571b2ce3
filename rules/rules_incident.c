/* rules_incident.c - the incident state machine every rule shares: one
 * condition (rule + subject) raises after hold_s, updates only on material
 * change (severity, metric doubled), clears after clear_s of absence, and is
 * never raised twice while open. */
#include <math.h>
#include <string.h>

#include "rules_internal.h"

static struct cond_info *info_of(struct rule_engine *e, const struct cond *c)
{
    return &e->infos[c - e->conds];
}

void rules__cond_init(struct rule_engine *e, struct cond *c, enum rule_id rule, enum rule_subject_type type,
                      uint32_t index, int32_t zone, enum rule_severity severity)
{
    memset(c, 0, sizeof *c);
    c->present_since_ms = TIME_NEVER;
    c->absent_since_ms = TIME_NEVER;
    c->raised_since_ms = TIME_NEVER;
    c->pending_slot = NOT_PENDING;
    c->rule = (uint8_t)rule;
    c->severity = (uint8_t)severity;
    c->want_severity = (uint8_t)severity;
    struct cond_info *info = info_of(e, c);
    memset(info, 0, sizeof *info);
    info->reason = "";
    info->subject_index = index;
    info->zone = zone;
    info->subject_type = (uint8_t)type;
}

void rules__cond_describe(struct rule_engine *e, struct cond *c, const char *reason, double metric)
{
    struct cond_info *info = info_of(e, c);
    info->reason = reason;
    info->metric = metric;
    info->ndetail = 0;
}

void rules__cond_add_detail(struct rule_engine *e, struct cond *c, const char *key, double value)
{
    struct cond_info *info = info_of(e, c);
    if (info->ndetail < COND_MAX_DETAIL) {
        info->detail[info->ndetail].key = key;
        info->detail[info->ndetail].value = value;
        info->ndetail++;
    }
}

/* Keeps engine->pending listing exactly the conditions a tick can change:
 * present but not raised (hold) or raised but not present (clear). */
static void update_pending(struct rule_engine *e, struct cond *c)
{
    bool waiting = c->present != c->raised;
    if (waiting && c->pending_slot == NOT_PENDING) {
        c->pending_slot = (uint32_t)e->npending;
        e->pending[e->npending++] = (uint32_t)(c - e->conds);
    } else if (!waiting && c->pending_slot != NOT_PENDING) {
        uint32_t last = e->pending[--e->npending];
        e->pending[c->pending_slot] = last;
        e->conds[last].pending_slot = c->pending_slot;
        c->pending_slot = NOT_PENDING;
    }
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
    ev.subject.type = (enum rule_subject_type)info->subject_type;
    ev.subject.index = info->subject_index;
    ev.subject.zone = info->zone;
    ev.severity = (enum rule_severity)c->severity;
    ev.ts_ms = ts_ms;
    ev.since_ms = c->raised_since_ms;
    ev.reason = info->reason;
    ev.ndetail = info->ndetail;
    memcpy(ev.detail, info->detail, sizeof info->detail[0] * info->ndetail);
    e->on_event(e->ctx, &ev);
}

static void raise_incident(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    c->raised = 1;
    c->raised_since_ms = c->present_since_ms;
    c->severity = c->want_severity;
    c->force_update = 0;
    info_of(e, c)->reported_metric = info_of(e, c)->metric;
    emit(e, c, RULE_RAISED, ts_ms);
}

static void clear_incident(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    c->raised = 0;
    emit(e, c, RULE_CLEARED, ts_ms);
    c->raised_since_ms = TIME_NEVER;
    c->want_severity = (uint8_t)e->common[c->rule]->severity;
    c->severity = c->want_severity;
}

/* Material change: severity differs, the rule flagged a new detail, or the
 * metric at least doubled since it was last reported (from a floor). */
static bool changed_materially(struct rule_engine *e, const struct cond *c)
{
    if (c->want_severity != c->severity || c->force_update)
        return true;
    const struct cond_info *info = info_of(e, c);
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
    if (isnan(info->reported_metric) && !c->force_update && c->want_severity == c->severity) {
        /* restored incident: adopt what we see now without announcing it */
        info->reported_metric = info->metric;
        return;
    }
    if (!changed_materially(e, c))
        return;
    c->severity = c->want_severity;
    c->force_update = 0;
    info->reported_metric = info->metric;
    emit(e, c, RULE_UPDATED, ts_ms);
}

static void mark_present(struct cond *c, int64_t ts_ms)
{
    if (!c->present) {
        c->present = 1;
        c->present_since_ms = ts_ms;
    }
    c->absent_since_ms = TIME_NEVER;
}

static void mark_absent(struct cond *c, int64_t ts_ms)
{
    if (c->present || c->absent_since_ms == TIME_NEVER) {
        c->present = 0;
        c->absent_since_ms = ts_ms;
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
        if (now_ms - c->present_since_ms >= (int64_t)common->hold_s * 1000)
            raise_incident(e, c, now_ms);
    } else if (!c->present && c->raised && c->absent_since_ms != TIME_NEVER) {
        if (now_ms - c->absent_since_ms >= (int64_t)common->clear_s * 1000)
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
        mark_present(c, ts_ms);
        if (c->raised)
            rules__cond_refresh(e, c, ts_ms);
        else if (immediate)
            raise_incident(e, c, ts_ms);
        rules__cond_tick(e, c, ts_ms);
        return;
    case OBS_ABSENT:
        if (!c->present && !c->raised && c->absent_since_ms != TIME_NEVER)
            return; /* the common case: nothing going on */
        mark_absent(c, ts_ms);
        rules__cond_tick(e, c, ts_ms);
        return;
    }
}

void rules__cond_clear_now(struct rule_engine *e, struct cond *c, int64_t ts_ms)
{
    c->present = 0;
    c->absent_since_ms = ts_ms;
    if (c->raised)
        clear_incident(e, c, ts_ms);
    update_pending(e, c);
}

void rules__cond_restore(struct rule_engine *e, struct cond *c, int64_t since_ms)
{
    c->raised = 1;
    c->raised_since_ms = since_ms;
    c->present = 0;
    c->present_since_ms = since_ms;
    c->absent_since_ms = TIME_NEVER; /* clears only after absence is observed */
    c->severity = c->want_severity = (uint8_t)e->common[c->rule]->severity;
    c->force_update = 0;
    info_of(e, c)->reported_metric = NAN;
    update_pending(e, c);
}
