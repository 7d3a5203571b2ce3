/* routes_read.c - the API's GET routes, answered from a read-only store connection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"
#include "console_internal.h"
#include "views.h"

#define HISTORY_POINTS_MAX 240        /* history is thinned to this many points */
#define HISTORY_ROWS_MAX 20000
#define PATROL_LIMIT_DEFAULT 200
#define PATROL_LIMIT_MAX 2000

/* ------------------------------------------------------------------ */
/* JSON and query helpers                                              */
/* ------------------------------------------------------------------ */

/* A time query parameter: ms since the epoch or RFC 3339. */
static bool parse_time_param(const char *text, int64_t *ms)
{
    if (!text)
        return false;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (!errno && end != text && *end == '\0' && n >= 0) {
        *ms = n;
        return true;
    }
    return est_parse_ts(text, ms) == EST_OK;
}

/* ------------------------------------------------------------------ */
/* Who is signed in                                                    */
/* ------------------------------------------------------------------ */

/* What the role may do, for the console's buttons. */
static cJSON *permissions_json(const char *role)
{
    static const char *const wo_actions[] = {"create", "dispatch", "arrive",  "complete", "verify",
                                             "cancel", "postpone", "note",    "rating"};
    static const char *const verbs[] = {"occupancy", "valve", "patrol-checkin", "handover"};
    cJSON *json = cJSON_CreateObject();
    cJSON *wo = cJSON_AddObjectToObject(json, "workorder");
    for (size_t i = 0; i < sizeof wo_actions / sizeof wo_actions[0]; i++)
        cJSON_AddBoolToObject(wo, wo_actions[i],
                              gw_commands_role_allows(role, "workorder", wo_actions[i]));
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        cJSON_AddBoolToObject(json, verbs[i], gw_commands_role_allows(role, verbs[i], NULL));
    cJSON_AddBoolToObject(json, "incident", gw_commands_role_allows(role, "incident", "ack"));
    return json;
}

enum MHD_Result route_me(struct api_request *req)
{
    const struct gw_config *config = req->http->config;
    const struct gw_config *records = console_records_config(req->http);
    cJSON *json = console_caller_json(req, false);
    cJSON_AddStringToObject(json, "site", config->gateway.site);
    cJSON_AddStringToObject(json, "gateway", config->gateway.id);
    cJSON_AddStringToObject(json, "version", ESTATE_VERSION);
    /* The site's zone (IANA name or "+08:00"): the console shows site time. */
    cJSON_AddStringToObject(json, "timezone", config->gateway.timezone);
    cJSON_AddNumberToObject(json, "arrive_within_s", records->workorders.arrive_within_s);
    cJSON_AddNumberToObject(json, "resolve_within_s", records->workorders.resolve_within_s);
    gw_json_add_ts_if(json, "now", console_now_ms(req->http));
    cJSON_AddItemToObject(json, "permissions", permissions_json(req->who.role));
    return console_send_json(req->conn, MHD_HTTP_OK, json);
}

/* ------------------------------------------------------------------ */
/* Routes: reads                                                       */
/* ------------------------------------------------------------------ */

/* A read route's body: fills result from a read-only store. Returns an
 * HTTP status; on error *message says why. */
typedef unsigned (*read_fn)(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message);

/* The answer for a store read: 200, or 500 when the database failed. */
static unsigned read_status(est_err err)
{
    return err == EST_OK ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static enum MHD_Result with_store(struct api_request *req, read_fn fn)
{
    size_t slot = 0;
    struct gw_store *store = console_store_acquire(req->http, &slot);
    if (!store)
        return console_send_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "the database is not available");
    cJSON *result = cJSON_CreateObject();
    const char *message = "the database failed";
    unsigned status = fn(req, store, result, &message);
    console_store_release(req->http, slot);
    if (status != MHD_HTTP_OK) {
        cJSON_Delete(result);
        return console_send_error(req->conn, status, "%s", message);
    }
    return console_send_json(req->conn, status, result);
}

struct incident_list {
    const struct gw_config *config;
    cJSON *alerts;
};

static bool collect_incident(void *ctx, const struct gw_store_incident *in)
{
    struct incident_list *list = ctx;
    cJSON *json = gw_view_incident(list->config, in, GW_INCIDENT_STORED);
    if (json)
        cJSON_InsertItemInArray(list->alerts, 0, json); /* newest first */
    return true;
}

static unsigned read_alerts(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    const char *state = console_query(req, "state");
    if (state && strcmp(state, "active") != 0) {
        *message = "state must be \"active\"";
        return MHD_HTTP_BAD_REQUEST;
    }
    struct incident_list list = {console_records_config(req->http),
                                 cJSON_AddArrayToObject(result, "alerts")};
    return read_status(gw_store_incidents_open(store, collect_incident, &list));
}

static const char *const workorder_states[] = {"open",      "dispatched", "on_site",
                                               "completed", "verified",   "cancelled"};

struct id_list {
    int64_t *ids;
    size_t count, cap;
};

static bool collect_workorder_id(void *ctx, const struct gw_store_workorder *wo)
{
    struct id_list *list = ctx;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        int64_t *ids = realloc(list->ids, cap * sizeof *ids);
        if (!ids)
            return false;
        list->ids = ids;
        list->cap = cap;
    }
    list->ids[list->count++] = wo->id;
    return true;
}

/* Parses ?state=a,b (names or "active" = not closed) into states. */
static bool parse_state_filter(const char *text, const char **states, size_t *nstates)
{
    *nstates = 0;
    if (!text || !*text || strcmp(text, "all") == 0)
        return true;
    if (strcmp(text, "active") == 0) {
        for (size_t i = 0; i < 4; i++)
            states[(*nstates)++] = workorder_states[i];
        return true;
    }
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < 6; i++) {
            if (strlen(workorder_states[i]) == len && strncmp(p, workorder_states[i], len) == 0) {
                bool dup = false;
                for (size_t k = 0; k < *nstates; k++)
                    dup |= states[k] == workorder_states[i];
                if (!dup)
                    states[(*nstates)++] = workorder_states[i];
                known = true;
            }
        }
        if (!known)
            return false;
        p += len;
        if (*p == ',')
            p++;
    }
    return *nstates > 0;
}

static unsigned read_workorders(struct api_request *req, struct gw_store *store, cJSON *result,
                                const char **message)
{
    const char *states[6];
    size_t nstates = 0;
    if (!parse_state_filter(console_query(req, "state"), states, &nstates)) {
        *message = "state must be active, all or a comma list of open, dispatched, on_site, "
                   "completed, verified, cancelled";
        return MHD_HTTP_BAD_REQUEST;
    }
    struct id_list list = {0};
    if (gw_store_workorders_list(store, states, nstates, collect_workorder_id, &list) != EST_OK) {
        free(list.ids);
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    cJSON *orders = cJSON_AddArrayToObject(result, "workorders");
    int64_t now = console_now_ms(req->http);
    for (size_t i = list.count; i-- > 0;) { /* newest first */
        cJSON *wo = gw_view_workorder_get(store, list.ids[i], now);
        if (wo)
            cJSON_AddItemToArray(orders, wo);
    }
    free(list.ids);
    gw_json_add_ts_if(result, "now", now);
    return MHD_HTTP_OK;
}

static unsigned read_workorder(struct api_request *req, struct gw_store *store, cJSON *result,
                               const char **message)
{
    int64_t id = console_parse_id(req->seg[1]);
    int64_t now = console_now_ms(req->http);
    cJSON *wo = id ? gw_view_workorder_get(store, id, now) : NULL;
    if (!wo) {
        *message = "no such work order";
        return MHD_HTTP_NOT_FOUND;
    }
    cJSON_AddItemToObject(result, "workorder", wo);
    gw_json_add_ts_if(result, "now", now);
    return MHD_HTTP_OK;
}

static bool collect_meter(void *ctx, const struct gw_store_meter *m)
{
    cJSON *json = gw_view_meter(m);
    if (json)
        cJSON_AddItemToArray(ctx, json);
    return true;
}

static unsigned read_meters(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    cJSON *meters = cJSON_AddArrayToObject(result, "meters");
    gw_json_add_ts_if(result, "now", console_now_ms(req->http));
    return read_status(gw_store_meters_list(store, collect_meter, meters));
}

struct history_ctx {
    cJSON *rows;                /* every good row, thinned afterwards */
    size_t count;
};

static bool collect_history(void *ctx, const struct gw_store_reading_row *row)
{
    struct history_ctx *h = ctx;
    if (row->quality != GW_STORE_GOOD)
        return true;
    cJSON *point = cJSON_CreateObject();
    gw_json_add_ts_if(point, "ts", row->ts_ms);
    gw_json_add_number_if(point, "energy_import_kwh", row->values.energy_import_kwh);
    gw_json_add_number_if(point, "energy_export_kwh", row->values.energy_export_kwh);
    gw_json_add_number_if(point, "power_w", row->values.power_w);
    gw_json_add_number_if(point, "volume_m3", row->values.volume_m3);
    gw_json_add_number_if(point, "flow_m3h", row->values.flow_m3h);
    cJSON_AddItemToArray(h->rows, point);
    h->count++;
    return true;
}

/* Moves every step-th row (and the last) of rows into points. */
static void thin_points(cJSON *rows, size_t count, cJSON *points)
{
    size_t step = count > HISTORY_POINTS_MAX ? (count + HISTORY_POINTS_MAX - 1) / HISTORY_POINTS_MAX
                                             : 1;
    size_t i = 0;
    for (cJSON *row = rows->child; row; row = row->next, i++) {
        if (i % step == 0 || !row->next)
            cJSON_AddItemToArray(points, cJSON_Duplicate(row, true));
    }
}

static unsigned read_meter_history(struct api_request *req, struct gw_store *store,
                                   cJSON *result, const char **message)
{
    int64_t rid = 0, now = console_now_ms(req->http);
    int64_t since = now - 24 * 3600 * 1000LL, until = now + 60000;
    const char *since_text = console_query(req, "since"), *until_text = console_query(req, "until");
    if ((since_text && !parse_time_param(since_text, &since)) ||
        (until_text && !parse_time_param(until_text, &until)) || since >= until) {
        *message = "since/until must be ms since the epoch or RFC 3339, since before until";
        return MHD_HTTP_BAD_REQUEST;
    }
    est_err err = gw_store_meter_rowid(store, req->seg[1], &rid);
    if (err == EST_ERR_NOTFOUND) {
        *message = "no such meter";
        return MHD_HTTP_NOT_FOUND;
    }
    if (err)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    struct history_ctx h = {cJSON_CreateArray(), 0};
    err = gw_store_readings_history(store, rid, since, until, HISTORY_ROWS_MAX, collect_history, &h);
    cJSON_AddStringToObject(result, "meter", req->seg[1]);
    gw_json_add_ts_if(result, "since", since);
    gw_json_add_ts_if(result, "until", until);
    thin_points(h.rows, h.count, cJSON_AddArrayToObject(result, "points"));
    cJSON_Delete(h.rows);
    return read_status(err);
}

static cJSON *unit_json(const struct gw_store_unit *u)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "id", u->id);
    gw_json_add_string_if(json, "building", u->building);
    cJSON_AddStringToObject(json, "occupancy", u->vacant ? "vacant" : "occupied");
    gw_json_add_ts_if(json, "changed", u->occupancy_changed_ms);
    gw_json_add_string_if(json, "changed_by", u->occupancy_by);
    cJSON_AddBoolToObject(json, "removed", u->removed);
    return json;
}

static bool collect_unit(void *ctx, const struct gw_store_unit *u)
{
    cJSON_AddItemToArray(ctx, unit_json(u));
    return true;
}

static unsigned read_units(struct api_request *req, struct gw_store *store, cJSON *result,
                           const char **message)
{
    cJSON *units = cJSON_AddArrayToObject(result, "units");
    return read_status(gw_store_units_list(store, collect_unit, units));
}

struct patrol_ctx {
    const struct gw_config *config;
    cJSON *entries;
    const char *needle;         /* ?q= filter, NULL = all */
};

static bool collect_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_ctx *p = ctx;
    if (p->needle && !strstr(e->text, p->needle) && !strstr(e->author, p->needle) &&
        !strstr(e->kind, p->needle))
        return true;
    cJSON *json = gw_view_patrol_entry(p->config, e);
    if (json)
        cJSON_AddItemToArray(p->entries, json);
    return true;
}

static unsigned read_patrol(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    int64_t since = -1, limit = PATROL_LIMIT_DEFAULT;
    const char *since_text = console_query(req, "since"), *limit_text = console_query(req, "limit");
    if ((since_text &&
         (since = strcmp(since_text, "0") == 0 ? 0 : console_parse_id(since_text)) == 0 &&
         strcmp(since_text, "0") != 0) ||
        (limit_text && ((limit = console_parse_id(limit_text)) == 0 || limit > PATROL_LIMIT_MAX))) {
        *message = "since must be a sequence number, limit 1..2000";
        return MHD_HTTP_BAD_REQUEST;
    }
    int64_t head = 0;
    char head_hash[GW_STORE_HASH_LEN];
    if (gw_store_patrol_head(store, &head, head_hash) != EST_OK)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    if (since < 0) /* the newest entries by default */
        since = head > limit ? head - limit : 0;
    const char *needle = console_query(req, "q");
    struct patrol_ctx p = {console_records_config(req->http), cJSON_AddArrayToObject(result, "entries"),
                           needle && *needle ? needle : NULL};
    cJSON_AddNumberToObject(result, "head", (double)head);
    return read_status(gw_store_patrol_list(store, since, (size_t)limit, collect_patrol, &p));
}

static unsigned read_patrol_verify(struct api_request *req, struct gw_store *store, cJSON *result,
                                   const char **message)
{
    struct gw_store_patrol_verify v;
    memset(&v, 0, sizeof v);
    if (gw_store_patrol_verify(store, &v) != EST_OK)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    cJSON_AddBoolToObject(result, "intact", v.first_bad_seq == 0);
    if (v.first_bad_seq) {
        cJSON_AddNumberToObject(result, "first_bad_seq", (double)v.first_bad_seq);
        gw_json_add_string_if(result, "problem", v.problem);
    }
    cJSON_AddNumberToObject(result, "count", (double)v.count);
    cJSON_AddNumberToObject(result, "head_seq", (double)v.head_seq);
    cJSON_AddStringToObject(result, "head_hash", v.head_hash);
    cJSON_AddNumberToObject(result, "anchors", (double)v.anchors);
    gw_json_add_ts_if(result, "checked", console_now_ms(req->http));
    return MHD_HTTP_OK;
}

static unsigned read_handover(struct api_request *req, struct gw_store *store, cJSON *result,
                              const char **message)
{
    cJSON *summary = gw_handover_summary_from(store, console_records_config(req->http),
                                              console_now_ms(req->http));
    if (!summary)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    cJSON_AddItemToObject(result, "handover", summary);
    return MHD_HTTP_OK;
}

enum MHD_Result route_alerts(struct api_request *req) { return with_store(req, read_alerts); }
enum MHD_Result route_workorders(struct api_request *req) { return with_store(req, read_workorders); }
enum MHD_Result route_workorder(struct api_request *req) { return with_store(req, read_workorder); }
enum MHD_Result route_meters(struct api_request *req) { return with_store(req, read_meters); }
enum MHD_Result route_meter_history(struct api_request *req) { return with_store(req, read_meter_history); }
enum MHD_Result route_units(struct api_request *req) { return with_store(req, read_units); }

/* The engineers a work order may be dispatched to. */
enum MHD_Result route_engineers(struct api_request *req)
{
    cJSON *names = gw_users_names_with_role(req->http->config, "engineer");
    if (names == NULL)
        return console_send_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    return console_send_json(req->conn, MHD_HTTP_OK, names);
}
enum MHD_Result route_patrol(struct api_request *req) { return with_store(req, read_patrol); }
enum MHD_Result route_patrol_verify(struct api_request *req) { return with_store(req, read_patrol_verify); }
enum MHD_Result route_handover(struct api_request *req) { return with_store(req, read_handover); }

