/* rules_fire.c - fire panel samples: fire_alarm, fire_fault,
 * fire_disabled and fire_supervisory per zone, fire_fault for the panel
 * itself, and meter_offline for a panel that stops answering. Pre-alarms
 * are shown in the panel state, never raised. */
#include "rules_internal.h"

#define ZONE_BIT_ALARM 1u
#define ZONE_BIT_FAULT 2u
#define ZONE_BIT_DISABLED 4u
#define ZONE_BIT_SUPERVISORY 8u

static void observe_flag(struct rule_engine *e, struct cond *c, bool enabled, bool on, const char *reason,
                         int64_t ts_ms)
{
    if (!enabled)
        return;
    if (on)
        rules__cond_describe(e, c, reason, 0.0);
    rules__cond_observe(e, c, on ? OBS_PRESENT : OBS_ABSENT, ts_ms, false);
}

static void panel_failed(struct rule_engine *e, uint32_t panel, int64_t ts_ms)
{
    struct panel_state *p = &e->panels[panel];
    p->failures++;
    if (!e->config.meter_offline.c.enabled || p->failures < (uint32_t)e->config.meter_offline.failures)
        return;
    struct cond *c = rules__panel_cond(e, panel, PANEL_SLOT_OFFLINE);
    rules__cond_describe(e, c, "poll_failed", 0.0);
    rules__cond_add_detail(e, c, "failures", p->failures);
    rules__cond_observe(e, c, OBS_PRESENT, ts_ms, false);
}

/* A failed poll changes no fire state: only the offline count. Zones the
 * panel reports beyond its configured count are ignored. */
est_err rules__feed_panel(struct rule_engine *e, const struct rule_panel_sample *s)
{
    struct panel_state *p = &e->panels[s->panel];
    if (!s->ok) {
        panel_failed(e, s->panel, s->ts_ms);
        return EST_OK;
    }
    p->failures = 0;
    if (e->config.meter_offline.c.enabled)
        rules__cond_observe(e, rules__panel_cond(e, s->panel, PANEL_SLOT_OFFLINE), OBS_ABSENT, s->ts_ms, false);

    const struct rule_config *cfg = &e->config;
    observe_flag(e, rules__panel_cond(e, s->panel, PANEL_SLOT_FAULT), cfg->fire_fault.c.enabled,
                 s->panel_fault, "panel_fault", s->ts_ms);
    uint32_t nzones = s->nzones < p->nzones ? s->nzones : p->nzones;
    for (uint32_t z = 0; z < nzones; z++) {
        uint8_t bits = s->zones[z];
        observe_flag(e, rules__zone_cond(e, s->panel, z, ZONE_SLOT_ALARM), cfg->fire_alarm.c.enabled,
                     bits & ZONE_BIT_ALARM, "zone_alarm", s->ts_ms);
        observe_flag(e, rules__zone_cond(e, s->panel, z, ZONE_SLOT_FAULT), cfg->fire_fault.c.enabled,
                     bits & ZONE_BIT_FAULT, "zone_fault", s->ts_ms);
        observe_flag(e, rules__zone_cond(e, s->panel, z, ZONE_SLOT_DISABLED), cfg->fire_disabled.c.enabled,
                     bits & ZONE_BIT_DISABLED, "zone_disabled", s->ts_ms);
        observe_flag(e, rules__zone_cond(e, s->panel, z, ZONE_SLOT_SUPERVISORY),
                     cfg->fire_supervisory.c.enabled, bits & ZONE_BIT_SUPERVISORY, "supervisory",
                     s->ts_ms);
    }
    return EST_OK;
}
