/* incident_view.c - an incident as JSON, one builder for every consumer
 * (P/alerts, P/alerts/active/<id>, GET /api/alerts, the live events,
 * estate-ctl incidents, the handover). */
#include "views.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool site_zh(const struct gw_config *config)
{
    return config != NULL && config->gateway.language == GW_LANG_ZH_CN;
}

static const struct gw_meter_config *config_meter(const struct gw_config *config, const char *id)
{
    int i = config != NULL && id != NULL ? gw_config_meter_index(config, id) : -1;
    return i >= 0 ? &config->meters[i] : NULL;
}

static const struct gw_panel_config *config_panel(const struct gw_config *config, const char *id)
{
    int i = config != NULL && id != NULL ? gw_config_panel_index(config, id) : -1;
    return i >= 0 ? &config->panels[i] : NULL;
}

static const char *unit_id(const struct gw_config *config, int unit)
{
    return unit >= 0 && (size_t)unit < config->nunits ? config->units[unit].id : NULL;
}

/* The id of meter index value, or NULL when it is not a meter index. */
static const char *meter_id_of_index(const struct gw_config *config, double value)
{
    if (config == NULL || !isfinite(value) || value < 0 || value != floor(value) ||
        value >= (double)config->nmeters)
        return NULL;
    return config->meters[(size_t)value].id;
}

const char *gw_view_incident_state(const struct gw_store_incident *incident,
                                   enum gw_incident_transition transition)
{
    switch (transition) {
    case GW_INCIDENT_RAISED: return "raised";
    case GW_INCIDENT_UPDATED: return "updated";
    case GW_INCIDENT_CLEARED: return "cleared";
    default: return incident->open ? "active" : "cleared";
    }
}

enum gw_incident_transition gw_view_transition_of(enum rule_transition transition)
{
    switch (transition) {
    case RULE_RAISED: return GW_INCIDENT_RAISED;
    case RULE_UPDATED: return GW_INCIDENT_UPDATED;
    default: return GW_INCIDENT_CLEARED;
    }
}

cJSON *gw_view_incident_detail(const struct gw_config *config, const struct rule_event *event)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        return NULL;
    if (event->reason != NULL)
        gw_json_set_string(d, "reason", event->reason);
    for (size_t i = 0; i < event->ndetail && i < RULE_MAX_DETAIL; i++)
        gw_json_set_number(d, event->detail[i].key, event->detail[i].value);
    gw_view_detail_meter_ids(config, d);
    return d;
}

void gw_view_detail_meter_ids(const struct gw_config *config, cJSON *detail)
{
    const cJSON *meter = cJSON_GetObjectItemCaseSensitive(detail, "meter");
    const char *id = cJSON_IsNumber(meter) ? meter_id_of_index(config, meter->valuedouble) : NULL;
    if (id != NULL)
        gw_json_set_string(detail, "meter", id);
}

/* The stored detail object ({} when none or broken). */
static cJSON *stored_detail(const struct gw_config *config, const char *detail_json)
{
    cJSON *d = gw_json_parse_stored(detail_json);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        d = cJSON_CreateObject();
    }
    gw_view_detail_meter_ids(config, d);
    return d;
}

/* The meter a unit's incident is about: the one its detail names, else the
 * unit's water meter. */
static const char *unit_meter(const struct gw_config *config, const char *unit,
                              const cJSON *detail)
{
    const cJSON *named = cJSON_GetObjectItemCaseSensitive(detail, "meter");
    if (cJSON_IsString(named))
        return named->valuestring;
    int u = config != NULL ? gw_config_unit_index(config, unit) : -1;
    if (u < 0)
        return NULL;
    for (size_t i = 0; i < config->nmeters; i++)
        if (config->meters[i].unit == u && config->meters[i].kind == DRV_KIND_WATER)
            return config->meters[i].id;
    return NULL;
}

void gw_view_incident_location(const struct gw_config *config,
                               const struct gw_store_incident *in, char *out, size_t len)
{
    bool zh = site_zh(config);
    const char *subject = in->subject != NULL ? in->subject : "";
    if (streq(in->subject_type, "meter")) {
        const struct gw_meter_config *m = config_meter(config, subject);
        const char *unit = m != NULL ? unit_id(config, m->unit) : NULL;
        if (m != NULL && m->location != NULL)
            snprintf(out, len, "%s", m->location);
        else if (unit != NULL)
            snprintf(out, len, zh ? "%s 室" : "unit %s", unit);
        else if (m != NULL && m->building != NULL)
            snprintf(out, len, zh ? "%s 号楼" : "building %s", m->building);
        else
            snprintf(out, len, "%s", subject);
    } else if (streq(in->subject_type, "unit")) {
        snprintf(out, len, zh ? "%s 室" : "unit %s", subject);
    } else {
        const struct gw_panel_config *p = config_panel(config, subject);
        bool zone = streq(in->subject_type, "zone") && in->zone >= 0;
        if (zone && p != NULL && p->zones != NULL && in->zone < p->nzones &&
            p->zones[in->zone].name != NULL)
            snprintf(out, len, "%s", p->zones[in->zone].name);
        else if (zone)
            snprintf(out, len, zh ? "%s 第%d防区" : "%s zone %d", subject, in->zone + 1);
        else
            snprintf(out, len, "%s", p != NULL && p->location != NULL ? p->location : subject);
    }
}

/* meter, unit, panel and zone of the subject. */
static void add_subject(cJSON *o, const struct gw_config *config,
                        const struct gw_store_incident *in, const cJSON *detail)
{
    const char *subject = in->subject != NULL ? in->subject : "";
    if (streq(in->subject_type, "meter")) {
        const struct gw_meter_config *m = config_meter(config, subject);
        gw_json_set_string(o, "meter", subject);
        if (m != NULL)
            gw_json_add_string_if(o, "unit", unit_id(config, m->unit));
    } else if (streq(in->subject_type, "unit")) {
        gw_json_add_string_if(o, "meter", unit_meter(config, subject, detail));
        gw_json_set_string(o, "unit", subject);
    } else {
        gw_json_set_string(o, "panel", subject);
    }
    if (in->zone >= 0) /* stored 0-based; shown as the panel counts, from 1 */
        gw_json_set_number(o, "zone", in->zone + 1);
}

cJSON *gw_view_incident(const struct gw_config *config, const struct gw_store_incident *in,
                        enum gw_incident_transition transition)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON *detail = stored_detail(config, in->detail_json);
    gw_json_set_number(o, "id", (double)in->id);
    gw_json_set_string(o, "rule", in->rule);
    gw_json_set_string(o, "severity", in->severity);
    gw_json_set_string(o, "state", gw_view_incident_state(in, transition));
    gw_json_set_string(o, "subject_type", in->subject_type);
    gw_json_set_string(o, "subject", in->subject);
    add_subject(o, config, in, detail);
    char where[256];
    gw_view_incident_location(config, in, where, sizeof where);
    gw_json_set_string(o, "location", where);
    gw_json_add_ts(o, "ts", in->updated_ms > 0 ? in->updated_ms : in->raised_ms);
    gw_json_add_ts(o, "since", in->since_ms);
    gw_json_add_ts_if(o, "raised", in->raised_ms);
    gw_json_add_ts_if(o, "updated", in->updated_ms);
    gw_json_add_ts_if(o, "cleared", in->cleared_ms);
    gw_json_set_string(o, "text", in->text);
    gw_json_set(o, "detail", detail);
    gw_json_add_string_if(o, "confirmed_by", in->confirmed_by);
    gw_json_add_ts_if(o, "confirmed", in->confirmed_ms);
    gw_json_add_string_if(o, "disputed_by", in->disputed_by);
    gw_json_add_ts_if(o, "disputed", in->disputed_ms);
    gw_json_add_string_if(o, "acked_by", in->acked_by);
    gw_json_add_ts_if(o, "acked", in->acked_ms);
    return o;
}
