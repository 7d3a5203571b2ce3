/* workorders.c - repair work orders: opened automatically for
 * major/critical incidents (and battery_low ones, maintenance, when
 * rules.battery_low.open_workorder says so), moved through their lifecycle by the "workorder"
 * command, watched by SLA timers that escalate breaches; plus the
 * "patrol-checkin" and "handover" commands and the read-side views declared
 * in handover.h.
 *
 * Lifecycle (SPEC "Work orders"):
 *     open -> dispatched -> on_site -> completed -> verified
 *     cancel: open/dispatched/on_site -> cancelled
 *     close (forced, supervisor): any state not closed -> cancelled
 *     dispatch again while dispatched = reassign (re-arms the arrival SLA)
 *     postpone, note, rating: history only, the state stays
 * The actions are one table (transitions[]: from-states, to-state, the
 * argument required, the role) applied by apply_transition; hooks say what
 * a row cannot (the data check before verify, the postponement's limits,
 * the arrival deadline a dispatch arms).
 * Every change appends a history record (who, when, note) through
 * gw_store_workorder_update - which refuses it when the stored state moved
 * meanwhile - a patrol-log entry for transitions, and republishes the order
 * retained on P/workorders/<id>.
 *
 * Human texts (patrol log, history notes, escalations, check-ins, the
 * handover line) follow gateway.language; machine fields (JSON keys, action
 * and state names) never change. Command errors stay English (API clients).
 *
 * Runs on the core thread only. Writes go in one transaction of our own
 * when none is open, otherwise inside the caller's (the core wraps command
 * handling in one); validation always happens before the first write, so a
 * refused command changes nothing. */
#include "workorders.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "est_alloc.h"
#include "est_tz.h"
#include "handover.h"
#include "config.h"
#include "office_parts.h"
#include "views.h"

#define WO_SHORT_MAX 256        /* names, locations, categories */
#define WO_TEXT_MAX 2000        /* notes and descriptions */
#define WO_SCAN_INTERVAL_MS 10000 /* SLA rescan at least this often */
#define WO_UPDATE_NOTE_GAP_MS (15 * 60000) /* incident-update notes at most this often */
#define WO_FILTER_OPEN_STATES 3

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const open_states[WO_FILTER_OPEN_STATES] = {"open", "dispatched", "on_site"};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static bool streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------ */
/* Human texts (gateway.language)                                      */
/* ------------------------------------------------------------------ */

/* Human words for machine names. The names themselves stay in JSON and in
 * the history's action/from/to fields; English texts use them as they are. */
static const struct {
    const char *name;
    const char *zh;
} human_words[] = {
    /* actions */
    {"create", "开单"}, {"dispatch", "派单"}, {"arrive", "到场"}, {"complete", "完工"},
    {"verify", "验收"}, {"cancel", "取消"}, {"close", "强制关闭"}, {"postpone", "延期"},
    {"note", "备注"}, {"rating", "回访评分"}, {"escalate", "超时升级"}, {"link", "关联"},
    {"merge", "合并"}, {"confirm", "确认"}, {"dispute", "否认"},
    {"incident_update", "事件更新"}, {"incident_cleared", "事件恢复"},
    /* states */
    {"open", "待派单"}, {"dispatched", "已派单"}, {"on_site", "已到场"},
    {"completed", "已完工"}, {"verified", "已验收"}, {"cancelled", "已取消"},
    /* categories */
    {"water", "水"}, {"electricity", "电"}, {"doors_windows", "门窗"},
    {"public_facilities", "公共设施"}, {"fire", "消防"}, {"other", "其他"},
    /* severities */
    {"info", "提示"}, {"minor", "一般"}, {"major", "重要"}, {"critical", "紧急"},
};

/* The human word for a machine name: the name itself in English (or when
 * there is no translation), "" for NULL. */
static const char *human_word(const char *name, bool zh)
{
    if (name == NULL)
        return "";
    for (size_t i = 0; zh && i < COUNT_OF(human_words); i++)
        if (strcmp(name, human_words[i].name) == 0)
            return human_words[i].zh;
    return name;
}

/* An optional note appended to a text: ": note" / "：note", or nothing. */
static const char *note_sep(const char *note, bool zh)
{
    return note == NULL ? "" : (zh ? "：" : ": ");
}

/* ------------------------------------------------------------------ */
/* An owned copy of a work order (the store's strings are borrowed)     */
/* ------------------------------------------------------------------ */

struct wo_copy {
    struct gw_store_workorder wo; /* every string malloc'd (or NULL) */
    bool nomem;
};

static void wo_copy_release(struct wo_copy *c)
{
    struct gw_store_workorder *wo = &c->wo;
    free((char *)wo->category);
    free((char *)wo->unit);
    free((char *)wo->building);
    free((char *)wo->location);
    free((char *)wo->description);
    free((char *)wo->state);
    free((char *)wo->severity);
    free((char *)wo->assignee);
    free((char *)wo->verifier);
    memset(c, 0, sizeof *c);
}

static char *dup_tracked(const char *s, bool *nomem)
{
    char *d = dup_or_null(s);
    if (s != NULL && d == NULL)
        *nomem = true;
    return d;
}

static void wo_copy_fill(struct wo_copy *c, const struct gw_store_workorder *wo)
{
    c->wo = *wo;
    c->wo.category = dup_tracked(wo->category, &c->nomem);
    c->wo.unit = dup_tracked(wo->unit, &c->nomem);
    c->wo.building = dup_tracked(wo->building, &c->nomem);
    c->wo.location = dup_tracked(wo->location, &c->nomem);
    c->wo.description = dup_tracked(wo->description, &c->nomem);
    c->wo.state = dup_tracked(wo->state, &c->nomem);
    c->wo.severity = dup_tracked(wo->severity, &c->nomem);
    c->wo.assignee = dup_tracked(wo->assignee, &c->nomem);
    c->wo.verifier = dup_tracked(wo->verifier, &c->nomem);
}

static bool copy_one_workorder(void *ctx, const struct gw_store_workorder *wo)
{
    wo_copy_fill(ctx, wo);
    return true; /* one row; true lets the store go on to the history */
}

/* Loads order id into *c. EST_ERR_NOTFOUND, EST_ERR_NOMEM, store errors. */
static est_err wo_load(struct gw_store *store, int64_t id, struct wo_copy *c)
{
    memset(c, 0, sizeof *c);
    est_err err = gw_store_workorder_get(store, id, copy_one_workorder, NULL, c);
    if (err != EST_OK)
        return err;
    if (c->nomem) {
        wo_copy_release(c);
        return EST_ERR_NOMEM;
    }
    return EST_OK;
}

/* Replaces one owned string field. */
static bool wo_set_string(const char **field, const char *value)
{
    char *copy = dup_or_null(value);
    if (value != NULL && copy == NULL)
        return false;
    free((char *)*field);
    *field = copy;
    return true;
}

/* A growable list of copies (listing callbacks may not write). */
struct wo_list {
    struct wo_copy *items;
    size_t count, cap;
    bool nomem;
};

static bool collect_workorder(void *ctx, const struct gw_store_workorder *wo)
{
    struct wo_list *list = ctx;
    if (EST_VEC_RESERVE(list->items, list->cap, list->count + 1) != EST_OK) {
        list->nomem = true;
        return false;
    }
    struct wo_copy *c = &list->items[list->count++];
    memset(c, 0, sizeof *c);
    wo_copy_fill(c, wo);
    if (c->nomem)
        list->nomem = true;
    return true;
}

static void wo_list_release(struct wo_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        wo_copy_release(&list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static est_err wo_list_open(struct gw_store *store, struct wo_list *list)
{
    memset(list, 0, sizeof *list);
    est_err err = gw_store_workorders_list(store, open_states, WO_FILTER_OPEN_STATES,
                                           collect_workorder, list);
    if (err == EST_OK && list->nomem)
        err = EST_ERR_NOMEM;
    if (err != EST_OK)
        wo_list_release(list);
    return err;
}

/* ------------------------------------------------------------------ */
/* JSON view                                                           */
/* ------------------------------------------------------------------ */

/* Republishes the order retained on P/workorders/<id>. */
static est_err publish_workorder(struct gw_office *office, int64_t id)
{
    char *payload = gw_json_finish(
        gw_view_workorder_get(office->host.store, id, gw_office_now_ms(office)));
    char topic[48];
    snprintf(topic, sizeof topic, "workorders/%" PRId64, id);
    est_err err = payload ? gw_office_publish(office, topic, payload, true) : EST_ERR_NOMEM;
    free(payload);
    return err;
}

/* ------------------------------------------------------------------ */
/* SLA schedule (struct gw_sla_schedule in the office)                  */
/* ------------------------------------------------------------------ */

void gw_workorders_sla_reset(struct gw_office *office)
{
    office->sla.next_scan_ms = 0;
}

/* ------------------------------------------------------------------ */
/* Transactions and recording a change                                 */
/* ------------------------------------------------------------------ */

/* Begins our own transaction unless the caller has one open. */
static bool txn_begin(struct gw_office *office)
{
    return gw_store_begin(office->host.store) == EST_OK;
}

static est_err txn_end(struct gw_office *office, bool own, est_err err)
{
    if (!own)
        return err;
    if (err != EST_OK) {
        gw_store_rollback(office->host.store);
        return err;
    }
    return gw_store_commit(office->host.store);
}

/* One change to record: the history record and, for transitions and
 * escalations, the patrol-log entry. */
struct wo_change {
    const char *action;
    const char *from_state;
    const char *note;  /* may be NULL */
    const char *who;
    int64_t now_ms;
    bool patrol;       /* append a patrol-log entry */
};

static char *patrol_text(const struct gw_store_workorder *wo, const struct wo_change *ch, bool zh)
{
    const char *where = wo->unit ? wo->unit : (wo->location ? wo->location : "");
    const char *category = human_word(wo->category, zh);
    const char *sep = note_sep(ch->note, zh), *note = ch->note ? ch->note : "";
    const char *from = ch->from_state ? human_word(ch->from_state, zh) : "new";
    const char *to = human_word(wo->state, zh);
    if (zh && streq(ch->from_state, wo->state))
        return est_asprintf("工单 #%" PRId64 "（%s，%s）：%s %s%s%s", wo->id, category, where,
                            ch->who, human_word(ch->action, zh), sep, note);
    if (zh && ch->from_state == NULL)
        return est_asprintf("工单 #%" PRId64 "（%s，%s）：%s %s（%s）%s%s", wo->id, category,
                            where, ch->who, human_word(ch->action, zh), to, sep, note);
    if (zh)
        return est_asprintf("工单 #%" PRId64 "（%s，%s）：%s %s（%s → %s）%s%s", wo->id, category,
                            where, ch->who, human_word(ch->action, zh), from, to, sep, note);
    if (streq(ch->from_state, wo->state))
        return est_asprintf("Work order #%" PRId64 " (%s, %s): %s by %s%s%s", wo->id, category,
                            where, ch->action, ch->who, sep, note);
    return est_asprintf("Work order #%" PRId64 " (%s, %s): %s -> %s by %s%s%s", wo->id, category,
                        where, from, to, ch->who, sep, note);
}

static char *patrol_detail(const struct gw_store_workorder *wo, const struct wo_change *ch)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        return NULL;
    cJSON_AddStringToObject(d, "action", ch->action);
    if (ch->from_state)
        cJSON_AddStringToObject(d, "from", ch->from_state);
    cJSON_AddStringToObject(d, "to", wo->state);
    if (ch->note)
        cJSON_AddStringToObject(d, "note", ch->note);
    char *s = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    return s;
}

static est_err append_patrol(struct gw_office *office, const struct gw_store_workorder *wo,
                             const struct wo_change *ch)
{
    char *text = patrol_text(wo, ch, gw_office_lang_zh(office));
    char *detail = patrol_detail(wo, ch);
    est_err err = EST_ERR_NOMEM;
    if (text != NULL)
        err = gw_office_patrol(office, "workorder", text, wo->incident, wo->id, ch->who, detail);
    free(text);
    free(detail);
    return err;
}

/* Writes wo (already changed by the caller) with its history record, the
 * patrol entry and the retained publication, atomically when we can. */
static est_err wo_record_change(struct gw_office *office, struct gw_store_workorder *wo,
                                const struct wo_change *ch)
{
    wo->updated_ms = ch->now_ms;
    struct gw_store_wo_history h = {
        .workorder = wo->id, .ts_ms = ch->now_ms, .action = ch->action,
        .from_state = ch->from_state, .to_state = wo->state, .who = ch->who, .note = ch->note,
    };
    bool own = txn_begin(office);
    est_err err = gw_store_workorder_update(office->host.store, wo, &h);
    if (err == EST_OK && ch->patrol)
        err = append_patrol(office, wo, ch);
    if (err == EST_OK)
        err = publish_workorder(office, wo->id);
    err = txn_end(office, own, err);
    if (err != EST_OK)
        gw_error("work order %" PRId64 ": cannot record %s: %s", wo->id, ch->action,
                 err == EST_ERR_DB ? gw_store_errmsg(office->host.store) : est_strerror(err));
    gw_workorders_sla_reset(office);
    return err;
}

/* A history-only note on an order (state unchanged, no patrol entry). */
static est_err wo_add_note(struct gw_office *office, int64_t id, const char *action, const char *who,
                           const char *note, int64_t now_ms)
{
    struct wo_copy c;
    est_err err = wo_load(office->host.store, id, &c);
    if (err != EST_OK)
        return err;
    struct wo_change ch = {.action = action, .from_state = c.wo.state, .note = note, .who = who,
                           .now_ms = now_ms, .patrol = false};
    err = wo_record_change(office, &c.wo, &ch);
    wo_copy_release(&c);
    return err;
}

/* ------------------------------------------------------------------ */
/* Incidents -> work orders                                            */
/* ------------------------------------------------------------------ */

/* An owned copy of the incident fields this module needs. */
struct incident_copy {
    bool found;
    char *rule, *subject_type, *subject, *severity;
    int zone;
    bool open;
};

static bool copy_incident(void *ctx, const struct gw_store_incident *in)
{
    struct incident_copy *c = ctx;
    c->found = true;
    c->rule = dup_or_null(in->rule);
    c->subject_type = dup_or_null(in->subject_type);
    c->subject = dup_or_null(in->subject);
    c->severity = dup_or_null(in->severity);
    c->zone = in->zone;
    c->open = in->open;
    return false;
}

static void incident_copy_release(struct incident_copy *c)
{
    free(c->rule);
    free(c->subject_type);
    free(c->subject);
    free(c->severity);
    memset(c, 0, sizeof *c);
}

static est_err incident_load(struct gw_store *store, int64_t id, struct incident_copy *c)
{
    memset(c, 0, sizeof *c);
    est_err err = gw_store_incident_get(store, id, copy_incident, c);
    if (err == EST_OK && !c->found)
        err = EST_ERR_NOTFOUND;
    return err;
}

static bool same_condition(const struct incident_copy *a, const struct gw_store_incident *b)
{
    return streq(a->rule, b->rule) && streq(a->subject_type, b->subject_type) &&
           streq(a->subject, b->subject) && a->zone == b->zone;
}

/* The open work order handling an incident: its own, or one opened for an
 * earlier incident of the same condition (a recurrence links to it rather
 * than opening another). 0 when none. */
static int64_t order_for_incident(struct gw_office *office, const struct gw_store_incident *in)
{
    int64_t id = 0;
    if (gw_store_workorder_for_incident(office->host.store, in->id, &id) == EST_OK)
        return id;
    struct wo_list list;
    if (wo_list_open(office->host.store, &list) != EST_OK)
        return 0;
    id = 0;
    for (size_t i = 0; i < list.count && id == 0; i++) {
        const struct gw_store_workorder *wo = &list.items[i].wo;
        struct incident_copy prev;
        if (wo->incident <= 0 || incident_load(office->host.store, wo->incident, &prev) != EST_OK)
            continue;
        if (same_condition(&prev, in))
            id = wo->id;
        incident_copy_release(&prev);
    }
    wo_list_release(&list);
    return id;
}

static const char *category_for_kind(enum drv_kind kind)
{
    return kind == DRV_KIND_WATER ? "water" : "electricity";
}

/* Work-order category for an incident: by rule, or by the meter's kind. */
static const char *incident_category(const struct gw_config *config,
                                     const struct gw_store_incident *in)
{
    if (streq(in->rule, "vacant_flow") || streq(in->rule, "continuous_flow") ||
        streq(in->rule, "balance_loss"))
        return "water";
    if (streq(in->rule, "reverse_energy") || streq(in->rule, "vacant_power"))
        return "electricity";
    if (in->rule != NULL && strncmp(in->rule, "fire_", 5) == 0)
        return "fire";
    if (streq(in->subject_type, "meter")) {
        int m = gw_config_meter_index(config, in->subject);
        if (m >= 0)
            return category_for_kind(config->meters[m].kind);
    }
    if (streq(in->subject_type, "panel") || streq(in->subject_type, "zone"))
        return "fire";
    return "public_facilities";
}

/* Where an incident's work is: unit, building and a location text. */
struct wo_place {
    const char *unit;
    const char *building;
    const char *location;
};

static struct wo_place meter_place(const struct gw_config *config, const struct gw_meter_config *m)
{
    struct wo_place p = {0};
    if (m->unit >= 0 && (size_t)m->unit < config->nunits) {
        p.unit = config->units[m->unit].id;
        p.building = config->units[m->unit].building;
    }
    if (m->building != NULL)
        p.building = m->building;
    p.location = m->location ? m->location : (p.unit ? p.unit : m->id);
    return p;
}

static struct wo_place panel_place(const struct gw_config *config, const struct gw_panel_config *pc,
                                   int zone)
{
    struct wo_place p = {.location = pc->location ? pc->location : pc->id};
    if (zone >= 0 && zone < pc->nzones) {
        const struct gw_zone_config *z = &pc->zones[zone];
        if (z->location != NULL)
            p.location = z->location;
        else if (z->name != NULL)
            p.location = z->name;
    }
    return p;
}

static struct wo_place incident_place(const struct gw_config *config,
                                      const struct gw_store_incident *in)
{
    struct wo_place p = {.location = in->subject ? in->subject : ""};
    if (streq(in->subject_type, "meter")) {
        int m = gw_config_meter_index(config, in->subject);
        if (m >= 0)
            p = meter_place(config, &config->meters[m]);
    } else if (streq(in->subject_type, "unit")) {
        int u = gw_config_unit_index(config, in->subject);
        if (u >= 0) {
            p.unit = config->units[u].id;
            p.building = config->units[u].building;
            p.location = p.unit;
        }
    } else if (streq(in->subject_type, "panel") || streq(in->subject_type, "zone")) {
        int pi = gw_config_panel_index(config, in->subject);
        if (pi >= 0)
            p = panel_place(config, &config->panels[pi], in->zone);
    }
    return p;
}

/* Major and critical incidents open an order; so does a battery_low one
 * when rules.battery_low.open_workorder says so (maintenance, whatever its
 * severity). */
static bool incident_opens_order(const struct gw_office *office, const struct gw_store_incident *in)
{
    if (streq(in->severity, "major") || streq(in->severity, "critical"))
        return true;
    return streq(in->rule, "battery_low") && office->host.config->rules.battery_low.open_workorder;
}

/* Opens the order for a raised (or newly major) incident, or links the
 * recurrence to the condition's open order. */
static void open_for_incident(struct gw_office *office, const struct gw_store_incident *in,
                              int64_t now_ms)
{
    int64_t linked = order_for_incident(office, in);
    if (linked > 0) {
        if (gw_store_workorder_for_incident(office->host.store, in->id, &(int64_t){0}) == EST_OK)
            return; /* its own order exists already */
        char *note = gw_office_lang_zh(office)
                         ? est_asprintf("同一异常再次出现（事件 #%" PRId64 "）：%s", in->id,
                                        in->text ? in->text : "")
                         : est_asprintf("condition recurred as incident #%" PRId64 ": %s", in->id,
                                        in->text ? in->text : "");
        if (note != NULL)
            wo_add_note(office, linked, "link", "system", note, now_ms);
        free(note);
        return;
    }
    const struct gw_workorder_config *wc = &office->host.config->workorders;
    struct wo_place place = incident_place(office->host.config, in);
    struct gw_store_workorder wo = {
        .incident = in->id, .category = incident_category(office->host.config, in),
        .unit = place.unit, .building = place.building, .location = place.location,
        .description = in->text ? in->text : in->rule, .state = "open", .severity = in->severity,
        .opened_ms = now_ms, .resolve_due_ms = now_ms + (int64_t)wc->resolve_within_s * 1000,
    };
    char *note = gw_office_lang_zh(office)
                     ? est_asprintf("自动为事件 #%" PRId64 "（%s）开单", in->id,
                                    in->rule ? in->rule : "?")
                     : est_asprintf("opened automatically for incident #%" PRId64 " (%s)", in->id,
                                    in->rule ? in->rule : "?");
    bool own = txn_begin(office);
    int64_t id = 0;
    bool existing = false;
    est_err err = gw_store_workorder_create(office->host.store, &wo, "system", note, &id, &existing);
    if (err == EST_OK && !existing) {
        wo.id = id;
        struct wo_change ch = {.action = "create", .from_state = NULL, .note = note,
                               .who = "system", .now_ms = now_ms, .patrol = true};
        err = append_patrol(office, &wo, &ch);
        if (err == EST_OK)
            err = publish_workorder(office, id);
    }
    err = txn_end(office, own, err);
    if (err != EST_OK)
        gw_error("incident %" PRId64 ": cannot open a work order: %s", in->id,
                 err == EST_ERR_DB ? gw_store_errmsg(office->host.store) : est_strerror(err));
    free(note);
    gw_workorders_sla_reset(office);
}

/* Whether the order's last history record is an incident-update note made
 * within the gap (so updates never flood the history). */
struct last_history {
    char *action;
    int64_t ts_ms;
};

static bool remember_last_history(void *ctx, const struct gw_store_wo_history *h)
{
    struct last_history *last = ctx;
    free(last->action);
    last->action = dup_or_null(h->action);
    last->ts_ms = h->ts_ms;
    return true;
}

static bool ignore_workorder(void *ctx, const struct gw_store_workorder *wo)
{
    (void)ctx;
    (void)wo;
    return true;
}

static bool recently_noted_update(struct gw_store *store, int64_t id, int64_t now_ms)
{
    struct last_history last = {0};
    gw_store_workorder_get(store, id, ignore_workorder, remember_last_history, &last);
    bool recent = streq(last.action, "incident_update") && now_ms - last.ts_ms < WO_UPDATE_NOTE_GAP_MS;
    free(last.action);
    return recent;
}

static char *incident_note(const struct gw_store_incident *in, bool cleared, bool zh)
{
    const char *severity = human_word(in->severity ? in->severity : "?", zh);
    const char *text = in->text ? in->text : "";
    if (cleared)
        return zh ? est_asprintf("事件 #%" PRId64 " 已恢复：数据不再显示该异常", in->id)
                  : est_asprintf("incident #%" PRId64 " cleared: the data no longer show the condition",
                                 in->id);
    return zh ? est_asprintf("事件 #%" PRId64 " 更新（%s）：%s", in->id, severity, text)
              : est_asprintf("incident #%" PRId64 " updated (%s): %s", in->id, severity, text);
}

static void note_incident_change(struct gw_office *office, int64_t order,
                                 const struct gw_store_incident *in, bool cleared, int64_t now_ms)
{
    if (!cleared && recently_noted_update(office->host.store, order, now_ms))
        return;
    char *note = incident_note(in, cleared, gw_office_lang_zh(office));
    if (note != NULL)
        wo_add_note(office, order, cleared ? "incident_cleared" : "incident_update", "system", note,
                    now_ms);
    free(note);
}

static int severity_rank(const char *severity)
{
    static const char *const order[] = {"info", "minor", "major", "critical"};
    for (int i = 0; i < 4; i++)
        if (streq(severity, order[i]))
            return i;
    return -1;
}

/* An incident that got worse (a valve that would not close) makes its order
 * as severe, with the incident's new text as its description. */
static void raise_order_severity(struct gw_office *office, int64_t order,
                                 const struct gw_store_incident *in, int64_t now_ms)
{
    struct wo_copy c;
    if (in->severity == NULL || wo_load(office->host.store, order, &c) != EST_OK)
        return;
    if (severity_rank(in->severity) > severity_rank(c.wo.severity)) {
        char *old_severity = (char *)c.wo.severity, *old_description = (char *)c.wo.description;
        c.wo.severity = in->severity;
        if (in->text != NULL)
            c.wo.description = in->text;
        char *note = incident_note(in, false, gw_office_lang_zh(office));
        struct wo_change ch = {.action = "severity", .from_state = c.wo.state, .note = note,
                               .who = "system", .now_ms = now_ms, .patrol = false};
        wo_record_change(office, &c.wo, &ch);
        free(note);
        c.wo.severity = old_severity;
        c.wo.description = old_description;
    }
    wo_copy_release(&c);
}

void gw_workorders_on_incident(void *ctx, const struct gw_store_incident *incident,
                               enum rule_transition transition)
{
    struct gw_office *office = ctx;
    if (office == NULL || incident == NULL || incident->id <= 0)
        return;
    int64_t now_ms = gw_office_now_ms(office);
    int64_t order = 0;
    switch (transition) {
    case RULE_RAISED:
        if (incident_opens_order(office, incident))
            open_for_incident(office, incident, now_ms);
        break;
    case RULE_UPDATED:
        order = order_for_incident(office, incident);
        if (order > 0)
            raise_order_severity(office, order, incident, now_ms);
        if (order > 0)
            note_incident_change(office, order, incident, false, now_ms);
        else if (incident->open && incident_opens_order(office, incident))
            open_for_incident(office, incident, now_ms);
        break;
    case RULE_CLEARED:
        order = order_for_incident(office, incident);
        if (order > 0)
            note_incident_change(office, order, incident, true, now_ms);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* SLA timers and escalation                                           */
/* ------------------------------------------------------------------ */

/* The escalation note of each breach kind. Its opening words tell the kind
 * when the history is read back - in either language, since the language
 * may have changed since the note was written. */
static const struct {
    const char *kind;
    const char *en; /* "arrival overdue (due T)" */
    const char *zh; /* "到场超时（应于 T 前到场）" */
} escalation_notes[] = {
    {"arrival", "arrival overdue", "到场超时"},
    {"resolution", "resolution overdue", "完成超时"},
};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The kind an escalation note is about, or NULL. */
static const char *escalation_kind(const char *note)
{
    for (size_t i = 0; note != NULL && i < COUNT_OF(escalation_notes); i++)
        if (starts_with(note, escalation_notes[i].kind) || starts_with(note, escalation_notes[i].zh))
            return escalation_notes[i].kind;
    return NULL;
}

/* The due time in site time with its offset (daylight saving included). */
static char *escalation_note(const struct gw_office *office, const char *kind, int64_t due_ms, bool zh)
{
    char due[EST_TZ_TS_LEN];
    est_tz_format_ts(office->host.config->gateway.timezone, due_ms, due);
    size_t i = streq(kind, "arrival") ? 0 : 1;
    if (zh)
        return est_asprintf("%s（应于 %s 前%s）", escalation_notes[i].zh, due,
                            i == 0 ? "到场" : "完成");
    return est_asprintf("%s (due %s)", escalation_notes[i].en, due);
}

/* Which breach kinds are already escalated, read from the history: an
 * "escalate" record's note names the kind; a later dispatch re-arms
 * arrival, a later postponement re-arms resolution. */
struct escalation_state {
    bool arrival;
    bool resolution;
};

static bool scan_escalations(void *ctx, const struct gw_store_wo_history *h)
{
    struct escalation_state *s = ctx;
    if (streq(h->action, "escalate")) {
        const char *kind = escalation_kind(h->note);
        if (streq(kind, "arrival"))
            s->arrival = true;
        else if (streq(kind, "resolution"))
            s->resolution = true;
    } else if (streq(h->action, "dispatch")) {
        s->arrival = false;
    } else if (streq(h->action, "postpone")) {
        s->resolution = false;
    }
    return true;
}

static cJSON *string_array(char *const *items, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a != NULL && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

static est_err publish_escalation(struct gw_office *office, const struct gw_store_workorder *wo,
                                  const char *kind, int64_t due_ms, int64_t now_ms)
{
    const struct gw_workorder_config *wc = &office->host.config->workorders;
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return EST_ERR_NOMEM;
    cJSON_AddNumberToObject(e, "workorder", (double)wo->id);
    cJSON_AddStringToObject(e, "kind", kind);
    gw_json_add_ts_if(e, "ts", now_ms);
    gw_json_add_ts_if(e, "due", due_ms);
    gw_json_add_string_if(e, "state", wo->state);
    gw_json_add_string_if(e, "category", wo->category);
    gw_json_add_string_if(e, "location", wo->location);
    gw_json_add_string_if(e, "assignee", wo->assignee);
    cJSON_AddItemToObject(e, "roles", string_array(wc->escalation_roles, wc->nescalation_roles));
    cJSON_AddItemToObject(e, "contacts",
                          string_array(wc->escalation_contacts, wc->nescalation_contacts));
    char *payload = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    est_err err = payload ? gw_office_publish(office, "escalations", payload, false) : EST_ERR_NOMEM;
    free(payload);
    return err;
}

static void escalate(struct gw_office *office, struct gw_store_workorder *wo, const char *kind,
                     int64_t due_ms, int64_t now_ms)
{
    char *note = escalation_note(office, kind, due_ms, gw_office_lang_zh(office));
    if (note == NULL)
        return;
    wo->escalated = true;
    struct wo_change ch = {.action = "escalate", .from_state = wo->state, .note = note,
                           .who = "system", .now_ms = now_ms, .patrol = true};
    bool own = txn_begin(office);
    est_err err = wo_record_change(office, wo, &ch);
    if (err == EST_OK)
        err = publish_escalation(office, wo, kind, due_ms, now_ms);
    txn_end(office, own, err);
    gw_warn("work order %" PRId64 ": %s", wo->id, note);
    free(note);
}

/* Escalates the breaches of one order not escalated yet. */
static void check_breaches(struct gw_office *office, struct gw_store_workorder *wo, int64_t now_ms)
{
    bool arrival = gw_view_workorder_arrival_breached(wo, now_ms);
    bool resolution = gw_view_workorder_resolution_breached(wo, now_ms);
    if (!arrival && !resolution)
        return;
    struct escalation_state done = {0};
    if (gw_store_workorder_get(office->host.store, wo->id, ignore_workorder, scan_escalations, &done) !=
        EST_OK)
        return;
    if (arrival && !done.arrival)
        escalate(office, wo, "arrival", wo->arrive_due_ms, now_ms);
    if (resolution && !done.resolution)
        escalate(office, wo, "resolution", gw_view_workorder_resolve_due_ms(wo), now_ms);
}

/* The earliest deadline after now_ms among the order's running timers. */
static int64_t next_deadline(const struct gw_store_workorder *wo, int64_t now_ms, int64_t best)
{
    int64_t dues[2] = {streq(wo->state, "dispatched") ? wo->arrive_due_ms : 0,
                       gw_view_workorder_resolve_due_ms(wo)};
    for (size_t i = 0; i < 2; i++)
        if (dues[i] > now_ms && dues[i] < best)
            best = dues[i];
    return best;
}

void gw_workorders_tick(struct gw_office *office, int64_t now_ms)
{
    struct gw_sla_schedule *sla = &office->sla;
    if (now_ms >= sla->last_scan_ms && now_ms < sla->next_scan_ms)
        return;
    sla->last_scan_ms = now_ms;
    sla->next_scan_ms = now_ms + WO_SCAN_INTERVAL_MS;
    struct wo_list list;
    if (wo_list_open(office->host.store, &list) != EST_OK)
        return;
    int64_t next = now_ms + WO_SCAN_INTERVAL_MS;
    for (size_t i = 0; i < list.count; i++) {
        check_breaches(office, &list.items[i].wo, now_ms);
        next = next_deadline(&list.items[i].wo, now_ms, next);
    }
    wo_list_release(&list);
    sla->last_scan_ms = now_ms;
    sla->next_scan_ms = next;
}

/* The wall clock moved by delta_ms (the core compares it with the
 * monotonic clock): the running SLA timers move with it, so a breach comes
 * after the same elapsed time as without the jump, and the due times shown
 * stay right in the new clock. Each moved order notes it in its history. */
void gw_workorders_clock_moved(struct gw_office *office, int64_t delta_ms, const char *note,
                               int64_t now_ms)
{
    struct wo_list list;
    if (wo_list_open(office->host.store, &list) != EST_OK)
        return;
    for (size_t i = 0; i < list.count; i++) {
        struct gw_store_workorder wo = list.items[i].wo;
        bool arrival_running = streq(wo.state, "dispatched") && wo.arrive_due_ms > 0 &&
                               wo.on_site_ms == 0;
        if (arrival_running)
            wo.arrive_due_ms += delta_ms;
        if (wo.resolve_due_ms > 0)
            wo.resolve_due_ms += delta_ms;
        if (wo.postponed_until_ms > 0)
            wo.postponed_until_ms += delta_ms;
        wo.updated_ms = now_ms;
        struct gw_store_wo_history h = {
            .workorder = wo.id, .ts_ms = now_ms, .action = "clock", .from_state = wo.state,
            .to_state = wo.state, .who = "system", .note = note,
        };
        if (gw_store_workorder_update(office->host.store, &wo, &h) != EST_OK)
            gw_warn("workorders: cannot move the SLA timers of order %lld",
                    (long long)wo.id);
    }
    wo_list_release(&list);
    gw_workorders_sla_reset(office);
}

/* ------------------------------------------------------------------ */
/* Argument validation                                                 */
/* ------------------------------------------------------------------ */

/* An optional string member: absent -> *out NULL, true; present with the
 * right type and length -> *out, true; otherwise false and *why is set. */
static bool optional_string(const cJSON *args, const char *name, size_t max_len, const char **out,
                            const char **why)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(args, name);
    *out = NULL;
    if (item == NULL || cJSON_IsNull(item))
        return true;
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        *why = "must be a string";
        return false;
    }
    size_t len = strlen(item->valuestring);
    if (len > max_len) {
        *why = "is too long";
        return false;
    }
    *out = item->valuestring;
    return true;
}

/* A positive integer member (a JSON number without fraction). */
static bool integer_arg(const cJSON *args, const char *name, int64_t min, int64_t max,
                        int64_t *out, bool *present)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(args, name);
    *present = item != NULL && !cJSON_IsNull(item);
    if (!*present)
        return true;
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (v != (double)(int64_t)v || v < (double)min || v > (double)max)
        return false;
    *out = (int64_t)v;
    return true;
}

/* Rejects members not in the allowed list. NULL if all are known. */
static const char *unknown_member(const cJSON *args, const char *const *allowed, size_t n)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, args)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = item->string != NULL && strcmp(item->string, allowed[i]) == 0;
        if (!known)
            return item->string ? item->string : "?";
    }
    return NULL;
}

static bool role_is(const struct gw_actor *actor, const char *role)
{
    return streq(actor->role, role);
}

/* Everything a work-order action needs, validated. */
struct wo_args {
    const char *action;
    int64_t id;
    const char *note;
    const char *assignee;
    const char *verifier;
    int64_t until_ms;
    int64_t rating;
    const char *category;
    const char *description;
    const char *unit;
    const char *location;
};

static const char *const workorder_members[] = {
    "request_id", "id", "action", "user", "note", "comment", "assignee", "verifier",
    "until", "rating", "category", "description", "unit", "location",
};

static const char *const known_actions[] = {
    "create", "dispatch", "arrive", "complete", "verify", "cancel",
    "close", "postpone", "note", "rating",
};

static const char *const known_categories[] = {
    "water", "electricity", "doors_windows", "public_facilities", "fire", "other",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (streq(s, list[i]))
            return true;
    return false;
}

/* Parses and checks the arguments' syntax; NULL or an error message
 * (static or in errbuf). */
static const char *parse_workorder_args(const cJSON *args, struct wo_args *a, char *errbuf,
                                        size_t errlen)
{
    memset(a, 0, sizeof *a);
    const char *bad = unknown_member(args, workorder_members, COUNT_OF(workorder_members));
    if (bad != NULL) {
        snprintf(errbuf, errlen, "unknown argument '%.64s'", bad);
        return errbuf;
    }
    const char *why = NULL;
    if (!optional_string(args, "action", 32, &a->action, &why) || a->action == NULL)
        return "action must be a string naming the action";
    if (!in_list(a->action, known_actions, COUNT_OF(known_actions))) {
        snprintf(errbuf, errlen, "unknown action '%.32s' (known: create, dispatch, arrive, "
                                 "complete, verify, cancel, close, postpone, note, rating)",
                 a->action);
        return errbuf;
    }
    struct {
        const char *name;
        size_t max;
        const char **out;
    } strings[] = {
        {"note", WO_TEXT_MAX, &a->note},         {"assignee", WO_SHORT_MAX, &a->assignee},
        {"verifier", WO_SHORT_MAX, &a->verifier}, {"category", WO_SHORT_MAX, &a->category},
        {"description", WO_TEXT_MAX, &a->description}, {"unit", WO_SHORT_MAX, &a->unit},
        {"location", WO_SHORT_MAX, &a->location},
    };
    for (size_t i = 0; i < COUNT_OF(strings); i++)
        if (!optional_string(args, strings[i].name, strings[i].max, strings[i].out, &why)) {
            snprintf(errbuf, errlen, "%s %s (at most %zu bytes)", strings[i].name, why,
                     strings[i].max);
            return errbuf;
        }
    const char *comment = NULL;
    if (!optional_string(args, "comment", WO_TEXT_MAX, &comment, &why))
        return "comment must be a string of at most 2000 bytes";
    if (a->note == NULL)
        a->note = comment;
    const char *user = NULL;
    if (!optional_string(args, "user", WO_SHORT_MAX, &user, &why))
        return "user must be a string of at most 256 bytes";
    const char *until = NULL;
    if (!optional_string(args, "until", 64, &until, &why))
        return "until must be an RFC 3339 time";
    if (until != NULL && est_parse_ts(until, &a->until_ms) != EST_OK)
        return "until must be an RFC 3339 time";
    bool present = false;
    if (!integer_arg(args, "rating", 1, 5, &a->rating, &present))
        return "rating must be an integer from 1 to 5";
    if (!integer_arg(args, "id", 1, INT64_C(1) << 52, &a->id, &present))
        return "id must be a positive integer";
    if (!present && !streq(a->action, "create"))
        return "id is required";
    return NULL;
}

/* A non-empty text (not only spaces). */
static bool has_text(const char *s)
{
    if (s == NULL)
        return false;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Actions                                                             */
/* ------------------------------------------------------------------ */

struct wo_action_ctx {
    struct gw_office *office;
    const struct gw_actor *actor;
    const struct wo_args *args;
    int64_t now_ms;
    char *errbuf;
    size_t errlen;
};

static const char *state_error(struct wo_action_ctx *x, const struct gw_store_workorder *wo,
                               const char *needs)
{
    snprintf(x->errbuf, x->errlen, "work order %" PRId64 " is %s; %s needs %s", wo->id, wo->state,
             x->args->action, needs);
    return x->errbuf;
}

/* Whether the data still show the condition of the order's incident. */
static bool condition_persists(struct gw_office *office, int64_t incident_id)
{
    struct incident_copy in;
    if (incident_id <= 0 || incident_load(office->host.store, incident_id, &in) != EST_OK)
        return false;
    bool active = in.open; /* without a rule engine the stored incident is the truth */
    int rule = rule_from_name(in.rule);
    if (office->host.rules != NULL && rule >= 0) {
        struct rule_subject subject = {.zone = -1};
        int index = -1;
        if (streq(in.subject_type, "meter")) {
            subject.type = RULE_SUBJECT_METER;
            index = gw_config_meter_index(office->host.config, in.subject);
        } else if (streq(in.subject_type, "unit")) {
            subject.type = RULE_SUBJECT_UNIT;
            index = gw_config_unit_index(office->host.config, in.subject);
        } else if (streq(in.subject_type, "panel") || streq(in.subject_type, "zone")) {
            subject.type = streq(in.subject_type, "zone") ? RULE_SUBJECT_ZONE : RULE_SUBJECT_PANEL;
            subject.zone = subject.type == RULE_SUBJECT_ZONE ? in.zone : -1;
            index = gw_config_panel_index(office->host.config, in.subject);
        }
        if (index >= 0) {
            subject.index = (uint32_t)index;
            active = rule_engine_condition_active(office->host.rules, (enum rule_id)rule, &subject);
        }
    }
    incident_copy_release(&in);
    return active;
}

/* ---- the transition table ---- */

/* The argument an action requires; it is also what the action stores on
 * the order (the note goes to the history only). */
enum wo_field {
    WO_FIELD_NONE,
    WO_FIELD_ASSIGNEE,
    WO_FIELD_VERIFIER,
    WO_FIELD_NOTE,
    WO_FIELD_UNTIL,
    WO_FIELD_RATING,
};

#define WO_NO_STAMP SIZE_MAX

/* What a table row cannot say: a check after the table's own (NULL =
 * accepted, otherwise the refusal), and changes besides the table's. */
typedef const char *(*wo_check_fn)(struct wo_action_ctx *x, const struct gw_store_workorder *wo);
typedef void (*wo_apply_fn)(struct wo_action_ctx *x, struct gw_store_workorder *wo);

/* One action: the states it starts from (NULL-terminated; NULL = any), how
 * a refusal names them, the state it leads to (NULL = the state stays),
 * the argument it requires and the refusal without it, the role it needs
 * besides the verb's policy ("system" always may), the time it stamps, and
 * whether it writes a patrol-log entry. Checked in this order: state,
 * role, argument, check hook. */
struct wo_transition {
    const char *action;
    const char *const *from;
    const char *needs;
    const char *to;
    enum wo_field field;
    const char *missing;
    const char *role;
    const char *role_refusal;
    size_t stamp; /* offsetof an int64_t in struct gw_store_workorder, or WO_NO_STAMP */
    bool patrol;
    wo_check_fn check;
    wo_apply_fn apply;
};

/* A verification is refused while the data still show the condition. */
static const char *check_condition_cleared(struct wo_action_ctx *x,
                                           const struct gw_store_workorder *wo)
{
    if (!condition_persists(x->office, wo->incident))
        return NULL;
    snprintf(x->errbuf, x->errlen,
             "work order %" PRId64 " cannot be verified: the data still show the condition "
             "of incident #%" PRId64,
             wo->id, wo->incident);
    return x->errbuf;
}

static const char *check_postpone_until(struct wo_action_ctx *x, const struct gw_store_workorder *wo)
{
    if (x->args->until_ms <= x->now_ms)
        return "until must be in the future";
    if (x->args->until_ms > wo->resolve_due_ms && !role_is(x->actor, "supervisor") &&
        !role_is(x->actor, "system"))
        return "postponing past the resolution deadline needs a supervisor";
    return NULL;
}

/* The assignee is one of the site's engineers (an enabled user of the users
 * file with role engineer), so a dispatch to nobody is refused. A site
 * without console users has no roster: any name goes. */
static const char *check_assignee(struct wo_action_ctx *x, const struct gw_store_workorder *wo)
{
    (void)wo;
    if (!gw_commands_have_users(x->office))
        return NULL;
    const char *role = gw_commands_user_role(x->office, x->args->assignee);
    if (role != NULL && strcmp(role, "engineer") == 0)
        return NULL;
    snprintf(x->errbuf, x->errlen, "%s is not an engineer of the users file (estate-ctl user list)",
             x->args->assignee);
    return x->errbuf;
}

/* A (re)dispatch arms the arrival SLA and forgets an earlier arrival. */
static void apply_dispatch(struct wo_action_ctx *x, struct gw_store_workorder *wo)
{
    wo->arrive_due_ms =
        x->now_ms + (int64_t)x->office->host.config->workorders.arrive_within_s * 1000;
    wo->on_site_ms = 0;
}

static const char *const from_open_or_dispatched[] = {"open", "dispatched", NULL};
static const char *const from_dispatched[] = {"dispatched", NULL};
static const char *const from_on_site[] = {"on_site", NULL};
static const char *const from_completed[] = {"completed", NULL};
static const char *const from_not_done[] = {"open", "dispatched", "on_site", NULL};
static const char *const from_not_closed[] = {"open", "dispatched", "on_site", "completed", NULL};
static const char *const from_done[] = {"completed", "verified", NULL};

#define STAMP(field) offsetof(struct gw_store_workorder, field)

static const struct wo_transition transitions[] = {
    {"dispatch", from_open_or_dispatched, "open or dispatched", "dispatched", WO_FIELD_ASSIGNEE,
     "dispatch needs an assignee", NULL, NULL, STAMP(dispatched_ms), true, check_assignee,
     apply_dispatch},
    {"arrive", from_dispatched, "dispatched", "on_site", WO_FIELD_NONE, NULL, NULL, NULL,
     STAMP(on_site_ms), true, NULL, NULL},
    {"complete", from_on_site, "on_site", "completed", WO_FIELD_NOTE,
     "complete needs a note on the work done", NULL, NULL, STAMP(completed_ms), true, NULL, NULL},
    {"verify", from_completed, "completed", "verified", WO_FIELD_VERIFIER,
     "verify needs the verifier's name", NULL, NULL, STAMP(verified_ms), true,
     check_condition_cleared, NULL},
    {"cancel", from_not_done, "open, dispatched or on_site", "cancelled", WO_FIELD_NOTE,
     "cancel needs a reason (note)", NULL, NULL, STAMP(cancelled_ms), true, NULL, NULL},
    {"close", from_not_closed, "a state that is not closed", "cancelled", WO_FIELD_NOTE,
     "close needs a reason (note)", "supervisor", "a forced close needs a supervisor",
     STAMP(cancelled_ms), true, NULL, NULL},
    {"postpone", from_not_done, "open, dispatched or on_site", NULL, WO_FIELD_UNTIL,
     "postpone needs until (an RFC 3339 time)", NULL, NULL, WO_NO_STAMP, true,
     check_postpone_until, NULL},
    {"note", NULL, NULL, NULL, WO_FIELD_NOTE, "note needs a note", NULL, NULL, WO_NO_STAMP, false,
     NULL, NULL},
    {"rating", from_done, "completed or verified", NULL, WO_FIELD_RATING,
     "rating needs rating (an integer from 1 to 5)", NULL, NULL, WO_NO_STAMP, true, NULL, NULL},
};

static const struct wo_transition *find_transition(const char *action)
{
    for (size_t i = 0; i < COUNT_OF(transitions); i++)
        if (streq(action, transitions[i].action))
            return &transitions[i];
    return NULL;
}

static bool starts_from(const struct wo_transition *t, const char *state)
{
    if (t->from == NULL)
        return true;
    for (size_t i = 0; t->from[i] != NULL; i++)
        if (streq(state, t->from[i]))
            return true;
    return false;
}

static bool field_given(const struct wo_args *a, enum wo_field field)
{
    switch (field) {
    case WO_FIELD_ASSIGNEE: return has_text(a->assignee);
    case WO_FIELD_VERIFIER: return has_text(a->verifier);
    case WO_FIELD_NOTE: return has_text(a->note);
    case WO_FIELD_UNTIL: return a->until_ms > 0;
    case WO_FIELD_RATING: return a->rating >= 1 && a->rating <= 5;
    case WO_FIELD_NONE: break;
    }
    return true;
}

/* Stores the required argument on the order; false when out of memory. */
static bool store_field(struct gw_store_workorder *wo, const struct wo_args *a, enum wo_field field)
{
    switch (field) {
    case WO_FIELD_ASSIGNEE: return wo_set_string(&wo->assignee, a->assignee);
    case WO_FIELD_VERIFIER: return wo_set_string(&wo->verifier, a->verifier);
    case WO_FIELD_UNTIL: wo->postponed_until_ms = a->until_ms; break;
    case WO_FIELD_RATING: wo->rating = (int)a->rating; break;
    case WO_FIELD_NOTE:
    case WO_FIELD_NONE: break;
    }
    return true;
}

/* Checks an action against its row, then changes *wo and fills the change
 * record. NULL = accepted; otherwise the refusal (nothing is written). */
static const char *apply_transition(struct wo_action_ctx *x, const struct wo_transition *t,
                                    struct gw_store_workorder *wo, struct wo_change *ch)
{
    if (t == NULL)
        return "unknown action";
    if (!starts_from(t, wo->state))
        return state_error(x, wo, t->needs);
    if (t->role != NULL && !role_is(x->actor, t->role) && !role_is(x->actor, "system"))
        return t->role_refusal;
    if (!field_given(x->args, t->field))
        return t->missing;
    const char *refusal = t->check != NULL ? t->check(x, wo) : NULL;
    if (refusal != NULL)
        return refusal;
    if (!store_field(wo, x->args, t->field) || (t->to != NULL && !wo_set_string(&wo->state, t->to)))
        return "out of memory";
    if (t->stamp != WO_NO_STAMP)
        memcpy((char *)wo + t->stamp, &x->now_ms, sizeof x->now_ms);
    if (t->apply != NULL)
        t->apply(x, wo);
    ch->patrol = t->patrol;
    return NULL;
}

/* The default history note of an action when the caller gave none. */
static char *default_note(const struct gw_office *office, const struct wo_args *a,
                          const struct gw_store_workorder *wo, bool zh)
{
    const char *sep = note_sep(a->note, zh), *note = a->note ? a->note : "";
    if (streq(a->action, "dispatch"))
        return est_asprintf(zh ? "派给 %s%s%s" : "to %s%s%s", wo->assignee, sep, note);
    if (streq(a->action, "verify"))
        return est_asprintf(zh ? "由 %s 验收%s%s" : "verified by %s%s%s", wo->verifier, sep, note);
    if (streq(a->action, "postpone")) {
        char until[EST_TZ_TS_LEN];
        est_tz_format_ts(office->host.config->gateway.timezone, wo->postponed_until_ms, until);
        return est_asprintf(zh ? "延期至 %s%s%s" : "until %s%s%s", until, sep, note);
    }
    if (streq(a->action, "rating"))
        return est_asprintf(zh ? "回访 %d/5%s%s" : "return visit %d/5%s%s", wo->rating, sep, note);
    return dup_or_null(a->note);
}

static cJSON *result_with_order(struct gw_office *office, const cJSON *args, int64_t id)
{
    cJSON *result = gw_command_ok(args);
    cJSON *order = gw_view_workorder_get(office->host.store, id, gw_office_now_ms(office));
    if (result != NULL && order != NULL)
        cJSON_AddItemToObject(result, "workorder", order);
    else
        cJSON_Delete(order);
    return result;
}

static cJSON *run_action(struct gw_office *office, const cJSON *args, const struct wo_args *a,
                         const struct gw_actor *actor)
{
    struct wo_copy c;
    est_err err = wo_load(office->host.store, a->id, &c);
    if (err == EST_ERR_NOTFOUND)
        return gw_command_error(args, "no work order %" PRId64, a->id);
    if (err != EST_OK)
        return gw_command_error(args, "cannot read work order %" PRId64 ": %s", a->id,
                                est_strerror(err));
    char errbuf[320];
    struct wo_action_ctx x = {.office = office, .actor = actor, .args = a,
                              .now_ms = gw_office_now_ms(office), .errbuf = errbuf,
                              .errlen = sizeof errbuf};
    char *from_state = dup_or_null(c.wo.state);
    struct wo_change ch = {.action = a->action, .from_state = from_state, .who = actor->user,
                           .now_ms = x.now_ms};
    const char *refusal = from_state ? apply_transition(&x, find_transition(a->action), &c.wo, &ch)
                                     : "out of memory";
    cJSON *result;
    if (refusal != NULL) {
        result = gw_command_error(args, "%s", refusal);
    } else {
        char *note = default_note(office, a, &c.wo, gw_office_lang_zh(office));
        ch.note = note;
        err = wo_record_change(office, &c.wo, &ch);
        free(note);
        if (err == EST_ERR_STATE)
            result = gw_command_error(args, "work order %" PRId64 " changed meanwhile; try again",
                                      a->id);
        else if (err != EST_OK)
            result = gw_command_error(args, "cannot record the change: %s", est_strerror(err));
        else
            result = result_with_order(office, args, a->id);
    }
    free(from_state);
    wo_copy_release(&c);
    return result;
}

/* A manual work order; a duplicate report (same category and the same unit,
 * or the same location, still open) merges into the existing order. */
struct duplicate_search {
    const struct wo_args *a;
    int64_t found;
};

static bool find_duplicate(void *ctx, const struct gw_store_workorder *wo)
{
    struct duplicate_search *s = ctx;
    if (!streq(wo->category, s->a->category))
        return true;
    bool same_place = s->a->unit ? streq(wo->unit, s->a->unit)
                                 : (wo->unit == NULL && streq(wo->location, s->a->location));
    if (same_place)
        s->found = wo->id;
    return s->found == 0;
}

static cJSON *run_create(struct gw_office *office, const cJSON *args, const struct wo_args *a,
                         const struct gw_actor *actor)
{
    if (!in_list(a->category, known_categories, COUNT_OF(known_categories)))
        return gw_command_error(args, "category must be one of water, electricity, "
                                      "doors_windows, public_facilities, fire, other");
    if (!has_text(a->description))
        return gw_command_error(args, "create needs a description");
    const char *building = NULL;
    if (a->unit != NULL) {
        int u = gw_config_unit_index(office->host.config, a->unit);
        if (u < 0)
            return gw_command_error(args, "unknown unit '%s'", a->unit);
        building = office->host.config->units[u].building;
    } else if (!has_text(a->location)) {
        return gw_command_error(args, "create needs a unit or a location");
    }
    int64_t now_ms = gw_office_now_ms(office);
    struct duplicate_search dup = {.a = a};
    if (gw_store_workorders_list(office->host.store, open_states, WO_FILTER_OPEN_STATES, find_duplicate,
                                 &dup) == EST_OK &&
        dup.found > 0) {
        char *note = est_asprintf(gw_office_lang_zh(office) ? "重复报修已合并（报修人 %s）：%s"
                                                        : "duplicate report merged (reported by %s): %s",
                                  actor->user, a->description);
        est_err err = note ? wo_add_note(office, dup.found, "merge", actor->user, note, now_ms)
                           : EST_ERR_NOMEM;
        free(note);
        if (err != EST_OK)
            return gw_command_error(args, "cannot merge the report: %s", est_strerror(err));
        cJSON *result = result_with_order(office, args, dup.found);
        cJSON_AddBoolToObject(result, "merged", true);
        return result;
    }
    struct gw_store_workorder wo = {
        .category = a->category, .unit = a->unit, .building = building,
        .location = a->location ? a->location : a->unit, .description = a->description,
        .state = "open", .opened_ms = now_ms,
        .resolve_due_ms = now_ms + (int64_t)office->host.config->workorders.resolve_within_s * 1000,
    };
    bool own = txn_begin(office);
    int64_t id = 0;
    est_err err = gw_store_workorder_create(office->host.store, &wo, actor->user, a->note, &id, NULL);
    if (err == EST_OK) {
        wo.id = id;
        struct wo_change ch = {.action = "create", .note = a->description, .who = actor->user,
                               .now_ms = now_ms, .patrol = true};
        err = append_patrol(office, &wo, &ch);
    }
    if (err == EST_OK)
        err = publish_workorder(office, id);
    err = txn_end(office, own, err);
    gw_workorders_sla_reset(office);
    if (err != EST_OK)
        return gw_command_error(args, "cannot create the work order: %s", est_strerror(err));
    return result_with_order(office, args, id);
}

static cJSON *role_refusal(const cJSON *args, const struct gw_actor *actor, const char *verb,
                           const char *action)
{
    if (actor->role == NULL)
        return gw_command_error(args, "user '%s' is not known or is disabled", actor->user);
    if (role_is(actor, "system") || gw_commands_role_allows(actor->role, verb, action))
        return NULL;
    return gw_command_error(args, "role %s may not %s", actor->role, action ? action : verb);
}

cJSON *gw_workorders_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
{
    if (args == NULL || !cJSON_IsObject(args))
        return gw_command_error(args, "arguments must be a JSON object");
    struct wo_args a;
    char errbuf[160];
    const char *bad = parse_workorder_args(args, &a, errbuf, sizeof errbuf);
    if (bad != NULL)
        return gw_command_error(args, "%s", bad);
    cJSON *refused = role_refusal(args, actor, "workorder", a.action);
    if (refused != NULL)
        return refused;
    if (streq(a.action, "create"))
        return run_create(office, args, &a, actor);
    return run_action(office, args, &a, actor);
}

/* ------------------------------------------------------------------ */
/* Patrol check-in                                                     */
/* ------------------------------------------------------------------ */

static const char *const checkin_members[] = {
    "request_id", "user", "location", "text", "found", "incident", "verdict",
};

/* Whether the incident a check-in names exists. */
static bool incident_exists(void *ctx, const struct gw_store_incident *in)
{
    *(bool *)ctx = in != NULL;
    return false;
}

static char *checkin_text(const char *user, const char *location, const char *found,
                          int64_t incident, bool disputed, bool zh)
{
    if (incident > 0 && zh)
        return est_asprintf("巡查 %s 在 %s %s事件 #%" PRId64 "：%s", user, location,
                            disputed ? "否认" : "确认", incident, found);
    if (incident > 0)
        return est_asprintf("Patrol %s at %s %s incident #%" PRId64 ": %s", user, location,
                            disputed ? "disputes" : "confirms", incident, found);
    return est_asprintf(zh ? "巡查 %s 在 %s：%s" : "Patrol %s at %s: %s", user, location, found);
}

static cJSON *record_checkin(struct gw_office *office, const cJSON *args, const struct gw_actor *actor,
                             const char *location, const char *found, int64_t incident,
                             bool disputed)
{
    int64_t now_ms = gw_office_now_ms(office);
    char *text = checkin_text(actor->user, location, found, incident, disputed,
                              gw_office_lang_zh(office));
    cJSON *detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "location", location);
    cJSON_AddStringToObject(detail, "found", found);
    if (incident > 0)
        cJSON_AddStringToObject(detail, "verdict", disputed ? "dispute" : "confirm");
    char *detail_json = cJSON_PrintUnformatted(detail);
    cJSON_Delete(detail);
    int64_t order = 0;
    bool own = txn_begin(office);
    est_err err = text && detail_json ? EST_OK : EST_ERR_NOMEM;
    if (err == EST_OK && incident > 0)
        err = gw_store_incident_confirm(office->host.store, incident, disputed, actor->user, now_ms);
    if (err == EST_OK && incident > 0 &&
        gw_store_workorder_for_incident(office->host.store, incident, &order) == EST_OK)
        err = wo_add_note(office, order, disputed ? "dispute" : "confirm", actor->user, text, now_ms);
    if (err == EST_OK)
        err = gw_office_patrol(office, "checkin", text, incident, order, actor->user, detail_json);
    err = txn_end(office, own, err);
    free(text);
    free(detail_json);
    if (err != EST_OK)
        return gw_command_error(args, "cannot record the check-in: %s", est_strerror(err));
    cJSON *result = gw_command_ok(args);
    if (order > 0)
        cJSON_AddNumberToObject(result, "workorder", (double)order);
    return result;
}

cJSON *gw_patrol_checkin_command(struct gw_office *office, const cJSON *args,
                                 const struct gw_actor *actor)
{
    if (args == NULL || !cJSON_IsObject(args))
        return gw_command_error(args, "arguments must be a JSON object");
    const char *bad = unknown_member(args, checkin_members, COUNT_OF(checkin_members));
    if (bad != NULL)
        return gw_command_error(args, "unknown argument '%.64s'", bad);
    cJSON *refused = role_refusal(args, actor, "patrol-checkin", NULL);
    if (refused != NULL)
        return refused;
    const char *why = NULL, *location = NULL, *text = NULL, *found = NULL, *verdict = NULL;
    const char *user = NULL;
    if (!optional_string(args, "location", WO_SHORT_MAX, &location, &why) || !has_text(location))
        return gw_command_error(args, "location must be a string of at most 256 bytes");
    if (!optional_string(args, "text", WO_TEXT_MAX, &text, &why) ||
        !optional_string(args, "found", WO_TEXT_MAX, &found, &why))
        return gw_command_error(args, "text/found must be a string of at most 2000 bytes");
    if (!optional_string(args, "user", WO_SHORT_MAX, &user, &why))
        return gw_command_error(args, "user must be a string of at most 256 bytes");
    if (!optional_string(args, "verdict", 16, &verdict, &why) ||
        (verdict != NULL && !streq(verdict, "confirm") && !streq(verdict, "dispute")))
        return gw_command_error(args, "verdict must be \"confirm\" or \"dispute\"");
    const char *what = found ? found : text;
    if (!has_text(what))
        return gw_command_error(args, "a check-in needs text (what was found)");
    int64_t incident = 0;
    bool present = false;
    if (!integer_arg(args, "incident", 1, INT64_C(1) << 52, &incident, &present))
        return gw_command_error(args, "incident must be a positive integer");
    if (verdict != NULL && !present)
        return gw_command_error(args, "a verdict needs the incident it is about");
    if (present) {
        bool exists = false;
        if (gw_store_incident_get(office->host.store, incident, incident_exists, &exists) != EST_OK ||
            !exists)
            return gw_command_error(args, "no incident %" PRId64, incident);
    }
    return record_checkin(office, args, actor, location, what, incident, streq(verdict, "dispute"));
}

/* ------------------------------------------------------------------ */
/* Shift handover                                                      */
/* ------------------------------------------------------------------ */

struct handover_ctx {
    const struct gw_config *config;
    int64_t now_ms;
    cJSON *incidents, *unconfirmed, *orders, *overdue, *offline;
};

static bool add_open_incident(void *ctx, const struct gw_store_incident *in)
{
    struct handover_ctx *h = ctx;
    cJSON *o = gw_view_incident(h->config, in, GW_INCIDENT_STORED);
    if (o == NULL)
        return false;
    cJSON_AddItemToArray(h->incidents, o);
    int64_t after_ms = (int64_t)h->config->workorders.unconfirmed_after_s * 1000;
    if (in->confirmed_ms == 0 && in->disputed_ms == 0 && h->now_ms - in->raised_ms >= after_ms)
        cJSON_AddItemToArray(h->unconfirmed, cJSON_CreateNumber((double)in->id));
    return true;
}

static bool add_open_order(void *ctx, const struct gw_store_workorder *wo)
{
    struct handover_ctx *h = ctx;
    cJSON *o = gw_view_workorder(wo, h->now_ms);
    if (o == NULL)
        return false;
    cJSON_AddItemToArray(h->orders, o);
    if (gw_view_workorder_overdue(wo, h->now_ms))
        cJSON_AddItemToArray(h->overdue, cJSON_CreateNumber((double)wo->id));
    return true;
}

static bool add_offline_meter(void *ctx, const struct gw_store_meter *m)
{
    struct handover_ctx *h = ctx;
    if (m->removed || (!streq(m->status, "offline") && !streq(m->status, "damaged")))
        return true;
    cJSON *o = gw_view_meter(m);
    if (o == NULL)
        return false;
    cJSON_AddItemToArray(h->offline, o);
    return true;
}

static void add_count(cJSON *counts, const char *name, const cJSON *array)
{
    cJSON_AddNumberToObject(counts, name, cJSON_GetArraySize(array));
}

cJSON *gw_handover_summary_from(struct gw_store *store, const struct gw_config *config,
                                int64_t now_ms)
{
    cJSON *s = cJSON_CreateObject();
    if (s == NULL)
        return NULL;
    gw_json_add_ts_if(s, "ts", now_ms);
    struct handover_ctx h = {
        .config = config, .now_ms = now_ms,
        .incidents = cJSON_AddArrayToObject(s, "open_incidents"),
        .orders = cJSON_AddArrayToObject(s, "open_workorders"),
        .overdue = cJSON_AddArrayToObject(s, "overdue_workorders"),
        .unconfirmed = cJSON_AddArrayToObject(s, "unconfirmed_incidents"),
        .offline = cJSON_AddArrayToObject(s, "meters_offline"),
    };
    static const char *const not_closed[] = {"open", "dispatched", "on_site", "completed"};
    if (h.incidents == NULL || h.orders == NULL || h.overdue == NULL || h.unconfirmed == NULL ||
        h.offline == NULL || gw_store_incidents_open(store, add_open_incident, &h) != EST_OK ||
        gw_store_workorders_list(store, not_closed, COUNT_OF(not_closed), add_open_order, &h) !=
            EST_OK ||
        gw_store_meters_list(store, add_offline_meter, &h) != EST_OK) {
        cJSON_Delete(s);
        return NULL;
    }
    cJSON *counts = cJSON_AddObjectToObject(s, "counts");
    add_count(counts, "open_incidents", h.incidents);
    add_count(counts, "open_workorders", h.orders);
    add_count(counts, "overdue_workorders", h.overdue);
    add_count(counts, "unconfirmed_incidents", h.unconfirmed);
    add_count(counts, "meters_offline", h.offline);
    return s;
}

cJSON *gw_handover_summary(struct gw_office *office, int64_t now_ms)
{
    return gw_handover_summary_from(office->host.store, office->host.config, now_ms);
}

static int count_of(const cJSON *summary, const char *name)
{
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(summary, "counts");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, name);
    return cJSON_IsNumber(n) ? n->valueint : 0;
}

char *gw_handover_text(const cJSON *summary, const char *from, const char *to, bool zh)
{
    return est_asprintf(zh ? "%s 交班给 %s：未关闭事件 %d 起（%d 起未经巡查确认），"
                             "未关闭工单 %d 张（超时 %d 张），离线表计 %d 个"
                           : "%s hands over to %s: %d open incidents (%d not confirmed by a patrol), "
                             "%d open work orders (%d overdue), %d meters offline",
                        from, to, count_of(summary, "open_incidents"),
                        count_of(summary, "unconfirmed_incidents"),
                        count_of(summary, "open_workorders"),
                        count_of(summary, "overdue_workorders"),
                        count_of(summary, "meters_offline"));
}

static const char *const handover_members[] = {"request_id", "user", "from", "to", "note"};

cJSON *gw_handover_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
{
    if (args == NULL || !cJSON_IsObject(args))
        return gw_command_error(args, "arguments must be a JSON object");
    const char *bad = unknown_member(args, handover_members, COUNT_OF(handover_members));
    if (bad != NULL)
        return gw_command_error(args, "unknown argument '%.64s'", bad);
    cJSON *refused = role_refusal(args, actor, "handover", NULL);
    if (refused != NULL)
        return refused;
    const char *why = NULL, *from = NULL, *to = NULL, *note = NULL, *user = NULL;
    if (!optional_string(args, "from", WO_SHORT_MAX, &from, &why) || !has_text(from))
        return gw_command_error(args, "from must name who hands over (at most 256 bytes)");
    if (!optional_string(args, "to", WO_SHORT_MAX, &to, &why) || !has_text(to))
        return gw_command_error(args, "to must name who takes over (at most 256 bytes)");
    if (!optional_string(args, "note", WO_TEXT_MAX, &note, &why))
        return gw_command_error(args, "note must be a string of at most 2000 bytes");
    if (!optional_string(args, "user", WO_SHORT_MAX, &user, &why))
        return gw_command_error(args, "user must be a string of at most 256 bytes");
    int64_t now_ms = gw_office_now_ms(office);
    cJSON *summary = gw_handover_summary(office, now_ms);
    if (summary == NULL)
        return gw_command_error(args, "cannot read the store for the handover");
    cJSON_AddStringToObject(summary, "from", from);
    cJSON_AddStringToObject(summary, "to", to);
    if (note != NULL)
        cJSON_AddStringToObject(summary, "note", note);
    char *text = gw_handover_text(summary, from, to, gw_office_lang_zh(office));
    char *detail = cJSON_PrintUnformatted(summary);
    est_err err = text && detail ? gw_office_patrol(office, "handover", text, 0, 0, actor->user, detail)
                                 : EST_ERR_NOMEM;
    cJSON *result;
    if (err != EST_OK) {
        result = gw_command_error(args, "cannot record the handover: %s", est_strerror(err));
        cJSON_Delete(summary);
    } else {
        result = gw_command_ok(args);
        cJSON_AddStringToObject(result, "text", text);
        cJSON_AddItemToObject(result, "handover", summary);
    }
    free(text);
    free(detail);
    return result;
}

/* ------------------------------------------------------------------ */
/* Start-up                                                            */
/* ------------------------------------------------------------------ */

est_err gw_workorders_init(struct gw_office *office)
{
    est_err err = gw_office_subscribe_incidents(office, gw_workorders_on_incident, office);
    if (err == EST_OK)
        err = gw_command_register(office, "workorder", gw_workorders_command, true);
    if (err == EST_OK)
        err = gw_command_register(office, "patrol-checkin", gw_patrol_checkin_command, false);
    if (err == EST_OK)
        err = gw_command_register(office, "handover", gw_handover_command, false);
    return err;
}
