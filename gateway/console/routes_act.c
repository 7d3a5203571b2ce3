/* routes_act.c - the API's POST routes: role check, body, then the command on the core. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"
#include "console_internal.h"

#define CORE_CALL_TIMEOUT_MS 5000

/* ------------------------------------------------------------------ */
/* Actions through the core                                            */
/* ------------------------------------------------------------------ */

static void set_member(cJSON *obj, const char *name, cJSON *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    cJSON_AddItemToObject(obj, name, value);
}

/* Runs verb on the core with args (consumed) as the signed-in user and
 * answers: 200 with the result, 409 when the core refused, 503 when it did
 * not answer in time or could not store what was asked ("unavailable"). */
static enum MHD_Result call_core(struct api_request *req, const char *verb, cJSON *args)
{
    struct gw_http *http = req->http;
    char request_id[32];
    snprintf(request_id, sizeof request_id, "http-%" PRIu64,
             (uint64_t)atomic_fetch_add(&http->request_seq, 1) + 1);
    set_member(args, "request_id", cJSON_CreateString(request_id));
    cJSON_DeleteItemFromObjectCaseSensitive(args, "user"); /* the actor is the session's */
    char *text = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    if (!text)
        return console_send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    char *result_text = console_call_command(http, verb, text, req->who.user, req->who.role,
                                             CORE_CALL_TIMEOUT_MS);
    free(text);
    if (!result_text)
        return console_send_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "the gateway did not answer in time; try again");
    cJSON *result = cJSON_Parse(result_text);
    free(result_text);
    if (!result)
        return console_send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "bad result from the core");
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
    bool unavailable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "unavailable"));
    return console_send_json(req->conn, ok            ? MHD_HTTP_OK
                                        : unavailable ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                      : MHD_HTTP_CONFLICT,
                             result);
}

/* Role check, body parse, then the call. extra (consumed, may be NULL)
 * holds members the route sets itself (ids from the path). */
static enum MHD_Result act(struct api_request *req, const char *verb, const char *action,
                           cJSON *extra)
{
    if (!gw_commands_role_allows(req->who.role, verb, action)) {
        cJSON_Delete(extra);
        return console_send_error(req->conn, MHD_HTTP_FORBIDDEN, "role %s may not %s%s%s",
                                  req->who.role, verb, action ? " " : "", action ? action : "");
    }
    cJSON *args = console_parse_body_object(req);
    if (!args) {
        cJSON_Delete(extra);
        return console_send_error(req->conn, MHD_HTTP_BAD_REQUEST,
                                  "the body must be a JSON object");
    }
    if (action)
        set_member(args, "action", cJSON_CreateString(action));
    for (cJSON *item = extra ? extra->child : NULL; item; item = item->next)
        set_member(args, item->string, cJSON_Duplicate(item, true));
    cJSON_Delete(extra);
    return call_core(req, verb, args);
}

/* ------------------------------------------------------------------ */
/* Routes: actions                                                     */
/* ------------------------------------------------------------------ */

static const char *const workorder_actions[] = {"dispatch", "arrive", "complete", "verify", "close",
                                                "cancel",   "postpone", "note",   "rating"};

enum MHD_Result route_workorder_action(struct api_request *req)
{
    int64_t id = console_parse_id(req->seg[1]);
    const char *action = NULL;
    for (size_t i = 0; i < sizeof workorder_actions / sizeof workorder_actions[0]; i++)
        if (strcmp(req->seg[2], workorder_actions[i]) == 0)
            action = workorder_actions[i];
    if (!id || !action)
        return console_send_error(req->conn, MHD_HTTP_NOT_FOUND, "no such work order or action");
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "id", (double)id);
    return act(req, "workorder", action, extra);
}

enum MHD_Result route_alert_ack(struct api_request *req)
{
    int64_t id = console_parse_id(req->seg[1]);
    if (!id)
        return console_send_error(req->conn, MHD_HTTP_NOT_FOUND, "no such alert");
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "id", (double)id);
    return act(req, "incident", "ack", extra);
}

enum MHD_Result route_workorder_create(struct api_request *req)
{
    return act(req, "workorder", "create", NULL);
}

enum MHD_Result route_occupancy(struct api_request *req)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "unit", req->seg[1]);
    return act(req, "occupancy", NULL, extra);
}

enum MHD_Result route_valve(struct api_request *req)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "meter", req->seg[1]);
    return act(req, "valve", NULL, extra);
}

enum MHD_Result route_checkin(struct api_request *req)
{
    return act(req, "patrol-checkin", NULL, NULL);
}

enum MHD_Result route_handover_post(struct api_request *req)
{
    return act(req, "handover", NULL, NULL);
}

