/* texts.c - the words of a notification: what happened, where (building,
 * unit, zone name), since when and the console link, in Chinese or
 * English, short enough for a phone's notification. */
#include "notify_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "est_tz.h"

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* What happened, by rule: { rule, zh, en }. */
static const struct {
    const char *rule, *zh, *en;
} what_words[] = {
    {"fire_alarm", "火警", "Fire alarm"},
    {"fire_fault", "消防故障", "Fire system fault"},
    {"fire_disabled", "消防屏蔽", "Fire zone disabled"},
    {"fire_supervisory", "消防监管", "Fire supervisory signal"},
    {"vacant_flow", "空置房走水", "Water flowing in a vacant unit"},
    {"continuous_flow", "持续走水（疑似漏水）", "Water never stops (leak?)"},
    {"reverse_energy", "电表反转（疑似窃电）", "Meter runs backwards (theft?)"},
    {"meter_offline", "设备离线", "Device offline"},
    {"implausible_reading", "读数异常", "Implausible reading"},
    {"meter_replaced", "表计更换", "Meter replaced"},
    {"balance_loss", "管网漏损", "Pipe loss"},
};

static const struct {
    const char *severity, *zh, *en;
} severity_words[] = {
    {"critical", "紧急", "CRITICAL"},
    {"major", "重要", "MAJOR"},
    {"minor", "一般", "minor"},
    {"info", "提示", "info"},
};

static const char *what_of(const char *rule, bool zh)
{
    for (size_t i = 0; i < sizeof what_words / sizeof what_words[0]; i++)
        if (same(what_words[i].rule, rule))
            return zh ? what_words[i].zh : what_words[i].en;
    return rule != NULL ? rule : "?";
}

static const char *severity_of(const char *severity, bool zh)
{
    for (size_t i = 0; i < sizeof severity_words / sizeof severity_words[0]; i++)
        if (same(severity_words[i].severity, severity))
            return zh ? severity_words[i].zh : severity_words[i].en;
    return severity != NULL ? severity : "?";
}

static const struct gw_meter_config *meter_of(const struct gw_config *c, const char *id)
{
    int i = id != NULL ? gw_config_meter_index(c, id) : -1;
    return i >= 0 ? &c->meters[i] : NULL;
}

static const struct gw_panel_config *panel_of(const struct gw_config *c, const char *id)
{
    int i = id != NULL ? gw_config_panel_index(c, id) : -1;
    return i >= 0 ? &c->panels[i] : NULL;
}

const char *notify_category(const struct gw_config *config, const struct gw_store_incident *inc)
{
    if (same(inc->subject_type, "panel") || same(inc->subject_type, "zone"))
        return "fire";
    if (same(inc->subject_type, "unit"))
        return "unit";
    const struct gw_meter_config *m = meter_of(config, inc->subject);
    return m != NULL ? gw_category_name(m->category) : NULL;
}

const char *notify_building(const struct gw_config *config, const struct gw_store_incident *inc)
{
    if (same(inc->subject_type, "meter")) {
        const struct gw_meter_config *m = meter_of(config, inc->subject);
        return m != NULL ? m->building : NULL;
    }
    if (same(inc->subject_type, "unit")) {
        int u = gw_config_unit_index(config, inc->subject);
        return u >= 0 ? config->units[u].building : NULL;
    }
    return NULL;
}

void notify_place(const struct gw_config *config, const struct gw_store_incident *inc,
                  enum gw_language language, char *out, size_t len)
{
    bool zh = language == GW_LANG_ZH_CN;
    const char *subject = inc->subject != NULL ? inc->subject : "";
    if (same(inc->subject_type, "meter")) {
        const struct gw_meter_config *m = meter_of(config, subject);
        const char *unit = m != NULL && m->unit >= 0 ? config->units[m->unit].id : NULL;
        const char *building = m != NULL ? m->building : NULL;
        char b[96] = "", u[96] = "";
        if (building != NULL)
            snprintf(b, sizeof b, zh ? "%s号楼 " : "building %s, ", building);
        if (unit != NULL)
            snprintf(u, sizeof u, zh ? "%s室 " : "unit %s, ", unit);
        snprintf(out, len, zh ? "%s%s%s%s%s表 %s" : "%s%s%s%s%s meter %s", b, u,
                 m != NULL && m->location != NULL ? m->location : "",
                 m != NULL && m->location != NULL ? (zh ? " " : ", ") : "",
                 m == NULL                   ? ""
                 : m->kind == DRV_KIND_WATER ? (zh ? "水" : "water")
                                             : (zh ? "电" : "electricity"),
                 subject);
    } else if (same(inc->subject_type, "unit")) {
        int u = gw_config_unit_index(config, subject);
        const char *building = u >= 0 ? config->units[u].building : NULL;
        if (building != NULL)
            snprintf(out, len, zh ? "%s号楼 %s室" : "building %s, unit %s", building, subject);
        else
            snprintf(out, len, zh ? "%s室" : "unit %s", subject);
    } else {
        const struct gw_panel_config *p = panel_of(config, subject);
        bool zone = same(inc->subject_type, "zone") && inc->zone >= 0;
        const char *name = zone && p != NULL && p->zones != NULL && inc->zone < p->nzones
                               ? p->zones[inc->zone].name
                               : NULL;
        if (name != NULL)
            snprintf(out, len, zh ? "%s（%s 第%d防区）" : "%s (%s zone %d)", name, subject,
                     inc->zone + 1);
        else if (zone)
            snprintf(out, len, zh ? "%s 第%d防区" : "%s zone %d", subject, inc->zone + 1);
        else
            snprintf(out, len, "%s", p != NULL && p->location != NULL ? p->location : subject);
    }
}

void notify_local_time(const struct gw_config *config, int64_t ms, char *out, size_t len)
{
    if (ms <= 0) {
        snprintf(out, len, "?");
        return;
    }
    struct tm tm;
    est_tz_local(config->gateway.timezone, ms, &tm); /* site time, daylight saving included */
    strftime(out, len, "%m-%d %H:%M", &tm);
}

void gw_notify_format(const struct gw_config *config, const struct gw_store_incident *inc,
                      enum rule_transition transition, enum gw_language language, char *out,
                      size_t len)
{
    bool zh = language == GW_LANG_ZH_CN;
    bool cleared = transition == RULE_CLEARED;
    char place[256], since[32], link[320] = "", detail[600] = "";
    notify_place(config, inc, language, place, sizeof place);
    notify_local_time(config, inc->since_ms > 0 ? inc->since_ms : inc->raised_ms, since,
                      sizeof since);
    if (config->notify.console_url != NULL)
        snprintf(link, sizeof link, zh ? "\n处理：%s/?incident=%lld" : "\nOpen: %s/?incident=%lld",
                 config->notify.console_url, (long long)inc->id);
    /* The stored text is in the site's language: only for readers of it. */
    if (!cleared && inc->text != NULL && inc->text[0] != '\0' &&
        language == config->gateway.language)
        snprintf(detail, sizeof detail, "\n%s", inc->text);
    if (cleared) {
        char until[32];
        notify_local_time(config, inc->cleared_ms, until, sizeof until);
        snprintf(out, len,
                 zh ? "【已恢复】%s\n位置：%s\n%s 至 %s%s" : "[CLEARED] %s\nWhere: %s\n%s to %s%s",
                 what_of(inc->rule, zh), place, since, until, link);
        return;
    }
    snprintf(out, len,
             zh ? "【%s】%s\n位置：%s\n开始：%s%s%s" : "[%s] %s\nWhere: %s\nSince: %s%s%s",
             severity_of(inc->severity, zh), what_of(inc->rule, zh), place, since, detail, link);
}
