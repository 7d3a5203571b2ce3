/* workorder_view.c - a work order with its history as JSON, one builder for
 * P/workorders/<id>, the HTTP API, estate-ctl and the handover; and the
 * deadline rules the record shows (closed, effective deadline, overdue). */
#include "views.h"

#include <string.h>

static bool streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

bool gw_view_workorder_closed(const char *state)
{
    return streq(state, "verified") || streq(state, "cancelled");
}

int64_t gw_view_workorder_resolve_due_ms(const struct gw_store_workorder *wo)
{
    return wo->postponed_until_ms > 0 ? wo->postponed_until_ms : wo->resolve_due_ms;
}

/* Dispatched, not on site by arrive_due. */
bool gw_view_workorder_arrival_breached(const struct gw_store_workorder *wo, int64_t now_ms)
{
    return streq(wo->state, "dispatched") && wo->arrive_due_ms > 0 && wo->on_site_ms == 0 &&
           now_ms >= wo->arrive_due_ms;
}

/* Not completed (open, dispatched, on site) by the effective deadline. */
bool gw_view_workorder_resolution_breached(const struct gw_store_workorder *wo, int64_t now_ms)
{
    int64_t due = gw_view_workorder_resolve_due_ms(wo);
    bool working = streq(wo->state, "open") || streq(wo->state, "dispatched") ||
                   streq(wo->state, "on_site");
    return working && due > 0 && now_ms >= due;
}

bool gw_view_workorder_overdue(const struct gw_store_workorder *wo, int64_t now_ms)
{
    return gw_view_workorder_arrival_breached(wo, now_ms) ||
           gw_view_workorder_resolution_breached(wo, now_ms);
}

cJSON *gw_view_workorder(const struct gw_store_workorder *wo, int64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    gw_json_set_number(o, "id", (double)wo->id);
    if (wo->incident > 0)
        gw_json_set_number(o, "incident", (double)wo->incident);
    gw_json_add_string_if(o, "state", wo->state);
    gw_json_add_string_if(o, "category", wo->category);
    gw_json_add_string_if(o, "unit", wo->unit);
    gw_json_add_string_if(o, "building", wo->building);
    gw_json_set_string(o, "location", wo->location);
    gw_json_add_string_if(o, "where", wo->unit != NULL ? wo->unit : wo->location);
    gw_json_set_string(o, "description", wo->description);
    gw_json_add_string_if(o, "severity", wo->severity);
    gw_json_add_ts_if(o, "opened", wo->opened_ms);
    gw_json_add_ts_if(o, "dispatched", wo->dispatched_ms);
    gw_json_add_ts_if(o, "arrive_due", wo->arrive_due_ms);
    gw_json_add_ts_if(o, "resolve_due", gw_view_workorder_resolve_due_ms(wo));
    gw_json_add_ts_if(o, "postponed_until", wo->postponed_until_ms);
    gw_json_add_ts_if(o, "on_site", wo->on_site_ms);
    gw_json_add_ts_if(o, "completed", wo->completed_ms);
    gw_json_add_ts_if(o, "verified", wo->verified_ms);
    gw_json_add_ts_if(o, "cancelled", wo->cancelled_ms);
    gw_json_set_bool(o, "overdue", gw_view_workorder_overdue(wo, now_ms));
    gw_json_set_bool(o, "escalated", wo->escalated);
    gw_json_add_string_if(o, "assignee", wo->assignee);
    gw_json_add_string_if(o, "verifier", wo->verifier);
    if (wo->rating > 0)
        gw_json_set_number(o, "rating", wo->rating);
    gw_json_add_ts_if(o, "updated", wo->updated_ms);
    return o;
}

cJSON *gw_view_workorder_history(const struct gw_store_wo_history *h)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return NULL;
    gw_json_add_ts_if(e, "ts", h->ts_ms);
    gw_json_set_string(e, "action", h->action);
    gw_json_set(e, "from", h->from_state != NULL ? cJSON_CreateString(h->from_state)
                                                 : cJSON_CreateNull());
    gw_json_set_string(e, "to", h->to_state);
    gw_json_set_string(e, "who", h->who);
    gw_json_set(e, "note", h->note != NULL ? cJSON_CreateString(h->note) : cJSON_CreateNull());
    return e;
}

struct workorder_get_ctx {
    int64_t now_ms;
    cJSON *order;
    cJSON *history;
    bool nomem;
};

static bool order_to_json(void *ctx, const struct gw_store_workorder *wo)
{
    struct workorder_get_ctx *x = ctx;
    x->order = gw_view_workorder(wo, x->now_ms);
    x->history = cJSON_CreateArray();
    if (x->order == NULL || x->history == NULL) {
        x->nomem = true;
        cJSON_Delete(x->history);
        x->history = NULL;
        return false;
    }
    gw_json_set(x->order, "history", x->history);
    return true; /* go on to the history */
}

static bool history_to_json(void *ctx, const struct gw_store_wo_history *h)
{
    struct workorder_get_ctx *x = ctx;
    cJSON *e = x->history != NULL ? gw_view_workorder_history(h) : NULL;
    if (e == NULL || !cJSON_AddItemToArray(x->history, e)) {
        cJSON_Delete(e);
        x->nomem = true;
        return false;
    }
    return true;
}

cJSON *gw_view_workorder_get(struct gw_store *store, int64_t id, int64_t now_ms)
{
    struct workorder_get_ctx x = {.now_ms = now_ms};
    est_err err = gw_store_workorder_get(store, id, order_to_json, history_to_json, &x);
    if (err != EST_OK || x.nomem) {
        cJSON_Delete(x.order);
        return NULL;
    }
    return x.order;
}
