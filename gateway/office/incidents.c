/* incidents.c - rule transitions -> stored incidents, alerts on MQTT, patrol
 * entries and the incident subscribers (work orders); valve actions and
 * their results. */
#include "incidents.h"

#include <inttypes.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "est_alloc.h"
#include "office_parts.h"
#include "views.h"

#define TEXT_MAX 512

static const char *subject_type_name(enum rule_subject_type t)
{
    switch (t) {
    case RULE_SUBJECT_METER: return "meter";
    case RULE_SUBJECT_UNIT: return "unit";
    case RULE_SUBJECT_PANEL: return "panel";
    default: return "zone";
    }
}

static const char *subject_id(const struct gw_office *office, const struct rule_subject *s)
{
    const struct gw_config *c = office->host.config;
    switch (s->type) {
    case RULE_SUBJECT_METER: return s->index < c->nmeters ? c->meters[s->index].id : "?";
    case RULE_SUBJECT_UNIT: return s->index < c->nunits ? c->units[s->index].id : "?";
    default: return s->index < c->npanels ? c->panels[s->index].id : "?";
    }
}

bool gw_incidents_subject(const struct gw_config *config, const char *subject_type,
                          const char *subject, int zone, struct rule_subject *out)
{
    const struct gw_config *c = config;
    int index = -1;
    out->zone = -1;
    if (strcmp(subject_type, "meter") == 0) {
        out->type = RULE_SUBJECT_METER;
        index = gw_config_meter_index(c, subject);
    } else if (strcmp(subject_type, "unit") == 0) {
        out->type = RULE_SUBJECT_UNIT;
        index = gw_config_unit_index(c, subject);
    } else if (strcmp(subject_type, "panel") == 0 || strcmp(subject_type, "zone") == 0) {
        out->type = strcmp(subject_type, "panel") == 0 ? RULE_SUBJECT_PANEL : RULE_SUBJECT_ZONE;
        index = gw_config_panel_index(c, subject);
        if (out->type == RULE_SUBJECT_ZONE) {
            if (index < 0 || zone < 0 || zone >= c->panels[index].nzones)
                return false;
            out->zone = zone;
        }
    }
    if (index < 0)
        return false;
    out->index = (uint32_t)index;
    return true;
}

static double detail_value(const struct rule_event *e, const char *key, double fallback)
{
    for (size_t i = 0; i < e->ndetail; i++)
        if (strcmp(e->detail[i].key, key) == 0)
            return e->detail[i].value;
    return fallback;
}

static void format_text(const struct gw_office *office, const struct rule_event *e, const char *subject,
                        const char *where, char *out, size_t len)
{
    bool zh = gw_office_lang_zh(office);
    switch (e->rule) {
    case RULE_REVERSE_ENERGY:
        snprintf(out, len, zh ? "电表 %s（%s）反转：疑似窃电，请现场核查并上报"
                              : "Electricity meter %s (%s) runs backwards: suspected theft, check on site and report",
                 subject, where);
        break;
    case RULE_VACANT_FLOW:
        if (detail_value(e, "valve_failed", 0) != 0)
            snprintf(out, len, zh ? "空置房 %s 水表在走水：阀门关闭失败（已发送 %.0f 次关阀指令仍未关闭），请立即到场手动关断供水"
                                  : "Water flowing in vacant unit %s: the valve failed to close (%.0f close "
                                    "commands sent, still not closed); shut off the supply on site now",
                     subject, detail_value(e, "valve_closes", 1));
        else
            snprintf(out, len, zh ? "空置房 %s 水表在走水：有漏水风险，请关阀并核查"
                                  : "Water flowing in vacant unit %s: flood risk, close the valve and check",
                     subject);
        break;
    case RULE_CONTINUOUS_FLOW:
        snprintf(out, len, zh ? "水表 %s（%s）持续走水不停：疑似漏水"
                              : "Water meter %s (%s) never stops: suspected leak",
                 subject, where);
        break;
    case RULE_FIRE_ALARM:
        snprintf(out, len, zh ? "火警：%s" : "Fire alarm: %s", where);
        break;
    case RULE_FIRE_FAULT:
        snprintf(out, len, zh ? "消防故障：%s" : "Fire system fault: %s", where);
        break;
    case RULE_FIRE_DISABLED:
        snprintf(out, len, zh ? "消防屏蔽：%s" : "Fire zone disabled: %s", where);
        break;
    case RULE_FIRE_SUPERVISORY:
        snprintf(out, len, zh ? "消防监管：%s" : "Fire supervisory: %s", where);
        break;
    case RULE_METER_OFFLINE:
        if (e->subject.type == RULE_SUBJECT_PANEL)
            snprintf(out, len, zh ? "消防主机 %s（%s）通信中断：连续无应答"
                                  : "Fire panel %s (%s) unreachable: no answer",
                     subject, where);
        else
            snprintf(out, len, zh ? "表计 %s（%s）离线：连续无应答" : "Meter %s (%s) offline: no answer",
                     subject, where);
        break;
    case RULE_IMPLAUSIBLE_READING:
        snprintf(out, len, zh ? "表计 %s（%s）读数异常（%s）" : "Meter %s (%s) implausible reading (%s)",
                 subject, where, e->reason ? e->reason : "?");
        break;
    case RULE_METER_REPLACED:
        snprintf(out, len, zh ? "表计 %s（%s）已更换：表号 %.0f → %.0f" : "Meter %s (%s) replaced: serial %.0f -> %.0f",
                 subject, where, detail_value(e, "old_serial", 0), detail_value(e, "new_serial", 0));
        break;
    case RULE_BATTERY_LOW:
        snprintf(out, len, zh ? "表计 %s（%s）电池电量低：请安排更换电池（低电量时阀门可能拒绝动作）"
                              : "Meter %s (%s) battery low: schedule a battery change (a valve may refuse to "
                                "move on a low battery)",
                 subject, where);
        break;
    case RULE_BALANCE_LOSS:
        snprintf(out, len, zh ? "总表 %s（%s）比分表合计多 %.1f%%：疑似管网漏损"
                              : "Meter %s (%s) exceeds the sum of its sub-meters by %.1f%%: suspected pipe loss",
                 subject, where, detail_value(e, "loss_pct", 0));
        break;
    case RULE_VACANT_POWER:
        snprintf(out, len, zh ? "空置房电表 %s（%s）在用电：平均 %.0f W（门限 %.0f W），请核查灯具电器是否关闭、有无人员入住"
                              : "Electricity used in a vacant unit, meter %s (%s): %.0f W on average (threshold "
                                "%.0f W); check lights and appliances are off and nobody is staying",
                 subject, where, detail_value(e, "mean_power_w", 0), detail_value(e, "threshold_w", 0));
        break;
    default:
        snprintf(out, len, "%s %s", rule_name(e->rule), subject);
        break;
    }
    if (e->transition == RULE_CLEARED) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s", zh ? "（已恢复）" : " (cleared)");
    }
}

/* P/alerts gets the transition, the retained P/alerts/active/<id> the
 * stored incident (emptied once it cleared). Both from the one view. */
static void publish_alert(struct gw_office *office, const struct gw_store_incident *inc,
                          enum gw_incident_transition transition)
{
    const struct gw_config *config = office->host.config;
    char *payload = gw_json_finish(gw_view_incident(config, inc, transition));
    if (payload == NULL)
        return;
    gw_office_publish(office, "alerts", payload, false);
    free(payload);
    char suffix[64];
    snprintf(suffix, sizeof suffix, "alerts/active/%lld", (long long)inc->id);
    char *stored = inc->open ? gw_json_finish(gw_view_incident(config, inc, GW_INCIDENT_STORED)) : NULL;
    if (!inc->open || stored != NULL)
        gw_office_publish(office, suffix, stored != NULL ? stored : "", true);
    free(stored);
}

/* Copies the stored incident (strings borrowed only during the callback). */
struct incident_copy {
    struct gw_store_incident inc;
    char rule[48], subject_type[16], subject[128], severity[16], text[TEXT_MAX];
    char *detail_json, *confirmed_by, *disputed_by, *acked_by;
    bool found;
};

static bool copy_incident(void *ctx, const struct gw_store_incident *in)
{
    struct incident_copy *c = ctx;
    c->inc = *in;
    snprintf(c->rule, sizeof c->rule, "%s", in->rule);
    snprintf(c->subject_type, sizeof c->subject_type, "%s", in->subject_type);
    snprintf(c->subject, sizeof c->subject, "%s", in->subject);
    snprintf(c->severity, sizeof c->severity, "%s", in->severity);
    snprintf(c->text, sizeof c->text, "%s", in->text ? in->text : "");
    c->detail_json = in->detail_json ? strdup(in->detail_json) : NULL;
    c->confirmed_by = in->confirmed_by ? strdup(in->confirmed_by) : NULL;
    c->disputed_by = in->disputed_by ? strdup(in->disputed_by) : NULL;
    c->acked_by = in->acked_by ? strdup(in->acked_by) : NULL;
    c->inc.rule = c->rule;
    c->inc.subject_type = c->subject_type;
    c->inc.subject = c->subject;
    c->inc.severity = c->severity;
    c->inc.text = c->text;
    c->inc.detail_json = c->detail_json;
    c->inc.confirmed_by = c->confirmed_by;
    c->inc.disputed_by = c->disputed_by;
    c->inc.acked_by = c->acked_by;
    c->found = true;
    return false;
}

static void free_incident_copy(struct incident_copy *c)
{
    free(c->detail_json);
    free(c->confirmed_by);
    free(c->disputed_by);
    free(c->acked_by);
}

/* ---- acknowledging an alert at the desk ---- */

static const char *const incident_members[] = {"request_id", "id", "action", "user"};

static bool valid_incident_id(const cJSON *args, int64_t *id)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(args, "id");
    if (!cJSON_IsNumber(item) || item->valuedouble < 1 || item->valuedouble > 9007199254740992.0 ||
        item->valuedouble != (double)(int64_t)item->valuedouble)
        return false;
    *id = (int64_t)item->valuedouble;
    return true;
}

/* Stores the acknowledgement, writes it to the patrol log and publishes the
 * incident again (P/alerts "updated" with acked_by, and the retained copy),
 * so every console shows who acknowledged it. */
static est_err record_ack(struct gw_office *office, struct incident_copy *c, const char *who,
                          int64_t now_ms)
{
    bool zh = gw_office_lang_zh(office);
    char *text = est_asprintf(zh ? "%s 确认告警 #%" PRId64 "：%s" : "%s acknowledged alert #%" PRId64 ": %s",
                              who, c->inc.id, c->inc.text);
    if (text == NULL)
        return EST_ERR_NOMEM;
    bool own = gw_store_begin(office->host.store) == EST_OK;
    est_err err = gw_store_incident_ack(office->host.store, c->inc.id, who, now_ms);
    if (err == EST_OK)
        err = gw_office_patrol(office, "ack", text, c->inc.id, 0, who, NULL);
    if (own)
        err = err == EST_OK ? gw_store_commit(office->host.store)
                            : (gw_store_rollback(office->host.store), err);
    free(text);
    if (err != EST_OK)
        return err;
    c->inc.acked_ms = now_ms;
    free(c->acked_by);
    c->acked_by = strdup(who);
    c->inc.acked_by = c->acked_by;
    publish_alert(office, &c->inc, GW_INCIDENT_UPDATED);
    return EST_OK;
}

/* incident {"id", "action":"ack"}: the desk has seen the open alert. Only
 * the first acknowledgement counts. */
static cJSON *incident_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, args)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof incident_members / sizeof incident_members[0] && !known; i++)
            known = item->string != NULL && strcmp(item->string, incident_members[i]) == 0;
        if (!known)
            return gw_command_error(args, "unknown argument '%.64s'", item->string ? item->string : "?");
    }
    const char *action = gw_command_string(args, "action", 32);
    if (action == NULL || strcmp(action, "ack") != 0)
        return gw_command_error(args, "\"action\" must be \"ack\"");
    int64_t id = 0;
    if (!valid_incident_id(args, &id))
        return gw_command_error(args, "\"id\" must be an incident number");
    struct incident_copy c = {0};
    est_err err = gw_store_incident_get(office->host.store, id, copy_incident, &c);
    if (err != EST_OK || !c.found) {
        free_incident_copy(&c);
        return gw_command_error(args, "no incident %" PRId64, id);
    }
    cJSON *result;
    if (!c.inc.open) {
        result = gw_command_error(args, "incident %" PRId64 " has cleared: nothing to acknowledge", id);
    } else if (c.inc.acked_by != NULL) {
        result = gw_command_error(args, "incident %" PRId64 " was acknowledged already by %s", id,
                                  c.inc.acked_by);
    } else if ((err = record_ack(office, &c, actor->user, gw_office_now_ms(office))) != EST_OK) {
        result = gw_command_error(args, "cannot record the acknowledgement: %s", est_strerror(err));
    } else {
        result = gw_command_ok(args);
        cJSON_AddItemToObject(result, "incident",
                              gw_view_incident(office->host.config, &c.inc, GW_INCIDENT_STORED));
    }
    free_incident_copy(&c);
    return result;
}

est_err gw_incidents_init(struct gw_office *office)
{
    return gw_command_register(office, "incident", incident_command, true);
}

est_err gw_office_subscribe_incidents(struct gw_office *office, gw_incident_listener_fn fn,
                                      void *ctx)
{
    if (office->nincident_listeners >= GW_OFFICE_MAX_INCIDENT_LISTENERS)
        return EST_ERR_FULL;
    office->incident_listeners[office->nincident_listeners++] =
        (struct gw_incident_listener){fn, ctx};
    return EST_OK;
}

static void notify_subscribers(struct gw_office *office, const struct gw_store_incident *incident,
                               enum rule_transition transition)
{
    for (size_t i = 0; i < office->nincident_listeners; i++)
        office->incident_listeners[i].fn(office->incident_listeners[i].ctx, incident, transition);
}

void gw_office_on_rule_event(void *ctx, const struct rule_event *e)
{
    struct gw_office *office = ctx;
    const struct gw_config *config = office->host.config;
    const char *subject = subject_id(office, &e->subject);
    char *detail_json = gw_json_finish(gw_view_incident_detail(config, e));
    char where[192], text[TEXT_MAX] = "";
    struct gw_store_incident key = {
        .rule = rule_name(e->rule), .subject_type = subject_type_name(e->subject.type),
        .subject = subject, .zone = e->subject.type == RULE_SUBJECT_ZONE ? e->subject.zone : -1,
        .severity = rule_severity_name(e->severity), .since_ms = e->since_ms,
        .raised_ms = e->ts_ms, .detail_json = detail_json, .text = text,
    };
    gw_view_incident_location(config, &key, where, sizeof where);
    format_text(office, e, subject, where, text, sizeof text);

    int64_t id = 0;
    bool existing = false;
    est_err err = gw_store_incident_open(office->host.store, &key, &id, &existing);
    if (err != EST_OK) {
        gw_error("incident %s %s: cannot store: %s; publishing the alert without an id", key.rule,
                 subject, gw_store_errmsg(office->host.store));
        /* Disk full (degraded mode): nothing can be stored, but the alert
         * must still reach the broker (id 0: no incident row backs it). */
        struct gw_store_incident unstored = key;
        unstored.open = e->transition != RULE_CLEARED;
        unstored.updated_ms = e->ts_ms;
        if (e->transition == RULE_CLEARED)
            unstored.cleared_ms = e->ts_ms;
        char *payload = gw_json_finish(
            gw_view_incident(config, &unstored, gw_view_transition_of(e->transition)));
        if (payload != NULL)
            gw_office_publish(office, "alerts", payload, false);
        free(payload);
        free(detail_json);
        return;
    }
    enum gw_incident_transition transition = GW_INCIDENT_RAISED;
    if (e->transition == RULE_UPDATED && !existing) {
        transition = GW_INCIDENT_RAISED; /* resumed condition whose incident was lost: raise it again */
    } else if (e->transition == RULE_UPDATED || (e->transition == RULE_RAISED && existing)) {
        transition = GW_INCIDENT_UPDATED;
        gw_store_incident_update(office->host.store, id, key.severity, detail_json, text, e->ts_ms);
    } else if (e->transition == RULE_CLEARED) {
        transition = GW_INCIDENT_CLEARED;
        gw_store_incident_clear(office->host.store, id, e->ts_ms);
    }
    struct incident_copy stored = {0};
    gw_store_incident_get(office->host.store, id, copy_incident, &stored);
    if (stored.found) {
        const char *patrol_detail = detail_json;
        if (e->transition == RULE_CLEARED && stored.text[0] != '\0') {
            /* Describe the clear by what was raised: the event of an incident
             * resumed after a restart carries no reason or detail of its own
             * (e.g. "implausible reading ()", "exceeds ... by 0.0%"). */
            bool zh = gw_office_lang_zh(office);
            snprintf(text, sizeof text, "%.480s%s", stored.text, zh ? "（已恢复）" : " (cleared)");
            if (stored.detail_json != NULL)
                patrol_detail = stored.detail_json;
        }
        publish_alert(office, &stored.inc, transition);
        gw_info("incident %lld %s: %s", (long long)id, gw_view_incident_state(&stored.inc, transition),
                text);
        if (e->transition != RULE_UPDATED || e->severity >= RULE_SEV_MAJOR)
            gw_office_patrol(office, "incident", text, id, 0, "system", patrol_detail);
        if (e->subject.type == RULE_SUBJECT_METER && office->host.meter_event != NULL)
            office->host.meter_event(office->host.ctx, e);
        notify_subscribers(office, &stored.inc, e->transition);
    }
    free_incident_copy(&stored);
    free(detail_json);
}

est_err gw_incidents_request_valve(struct gw_office *office, uint32_t meter, bool close, const char *who)
{
    if (meter >= office->host.config->nmeters || !office->host.config->meters[meter].valve)
        return EST_ERR_NOTFOUND;
    const struct gw_meter_config *m = &office->host.config->meters[meter];
    /* No bus while the host is not running (start-up, shutdown, tests). */
    est_err err = office->host.request_valve != NULL
                      ? office->host.request_valve(office->host.ctx, meter, close, who)
                      : EST_ERR_STATE;
    if (err != EST_OK) {
        gw_warn("valve %s of meter %s asked by %s: cannot be queued: %s", close ? "close" : "open",
                m->id, who, est_strerror(err));
        return err;
    }
    char text[TEXT_MAX];
    bool zh = gw_office_lang_zh(office);
    snprintf(text, sizeof text, zh ? "%s 请求%s水表 %s 的阀门" : "%s asked to %s the valve of water meter %s",
             who, zh ? (close ? "关闭" : "打开") : (close ? "close" : "open"), m->id);
    gw_office_patrol(office, "valve", text, 0, 0, who, NULL);
    return EST_OK;
}

void gw_office_on_rule_action(void *ctx, const struct rule_action *action)
{
    struct gw_office *office = ctx;
    if (action->type == RULE_ACTION_CLOSE_VALVE)
        gw_incidents_request_valve(office, action->meter, true, "rule:vacant_flow");
}

void gw_office_on_valve_result(struct gw_office *office, const struct gw_sample *r)
{
    const char *id = gw_office_meter_id(office, r->index);
    bool zh = gw_office_lang_zh(office);
    char text[TEXT_MAX];
    if (r->error == EST_OK)
        snprintf(text, sizeof text, zh ? "水表 %s 阀门%s指令已执行，等待状态回读"
                                       : "Valve %s command for water meter %s accepted; reading the state back",
                 zh ? id : (r->valve_close ? "close" : "open"), zh ? (r->valve_close ? "关闭" : "打开") : id);
    else
        snprintf(text, sizeof text, zh ? "水表 %s 阀门%s指令失败：%s" : "Valve %s command for water meter %s failed: %s",
                 zh ? id : (r->valve_close ? "close" : "open"), zh ? (r->valve_close ? "关闭" : "打开") : id,
                 est_strerror(r->error));
    gw_office_patrol(office, "valve", text, 0, 0, r->requested_by, NULL);
}

struct restore_ctx {
    struct gw_office *office;
    size_t restored;
    size_t dropped;
};

static bool restore_one(void *ctx, const struct gw_store_incident *inc)
{
    struct restore_ctx *r = ctx;
    int rule = rule_from_name(inc->rule);
    struct rule_subject s;
    if (rule < 0 || !gw_incidents_subject(r->office->host.config, inc->subject_type, inc->subject, inc->zone, &s) ||
        rule_engine_restore(r->office->host.rules, (enum rule_id)rule, &s, inc->since_ms) != EST_OK) {
        /* Its meter or rule is gone from the config: nothing will clear it. */
        gw_warn("incident %lld (%s %s) cannot be resumed: its subject is no longer configured",
                (long long)inc->id, inc->rule, inc->subject);
        r->dropped++;
        return true;
    }
    if (s.type == RULE_SUBJECT_METER && rule == RULE_METER_OFFLINE)
        if (r->office->host.meter_offline_resumed != NULL)
            r->office->host.meter_offline_resumed(r->office->host.ctx, s.index);
    r->restored++;
    return true;
}

est_err gw_office_restore_incidents(struct gw_office *office)
{
    struct restore_ctx ctx = {office, 0, 0};
    est_err err = gw_store_incidents_open(office->host.store, restore_one, &ctx);
    if (err != EST_OK)
        gw_error("store: cannot load open incidents: %s", gw_store_errmsg(office->host.store));
    else if (ctx.restored > 0)
        gw_info("resumed %zu open incidents", ctx.restored);
    return err;
}
