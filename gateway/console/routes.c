/* routes.c - the JSON API routes table (method, path pattern, caller, handler) and its dispatch. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "console_internal.h"

#define CSRF_HEADER "X-Requested-With"
#define CSRF_VALUE "estate-console"

/* ------------------------------------------------------------------ */
/* Routing                                                             */
/* ------------------------------------------------------------------ */

/* Who may call a route. What a signed-in caller's role may do is decided
 * per command by gw_commands_role_allows() in the action routes. */
enum route_caller {
    ROUTE_SIGNED_IN,            /* a valid session, else 401 */
    ROUTE_ANYONE,               /* the sign-in only */
};

/* Path patterns are segments after /api/; "*" matches one segment. */
static const struct route {
    const char *method;
    const char *pattern;
    enum route_caller caller;
    route_fn handle;
} routes[] = {
    {"POST", "login",             ROUTE_ANYONE,    route_login},
    {"POST", "logout",            ROUTE_SIGNED_IN, route_logout},
    {"GET",  "me",                ROUTE_SIGNED_IN, route_me},
    {"GET",  "alerts",            ROUTE_SIGNED_IN, route_alerts},
    {"POST", "alerts/*/ack",      ROUTE_SIGNED_IN, route_alert_ack},
    {"GET",  "workorders",        ROUTE_SIGNED_IN, route_workorders},
    {"POST", "workorders",        ROUTE_SIGNED_IN, route_workorder_create},
    {"GET",  "workorders/*",      ROUTE_SIGNED_IN, route_workorder},
    {"POST", "workorders/*/*",    ROUTE_SIGNED_IN, route_workorder_action},
    {"GET",  "meters",            ROUTE_SIGNED_IN, route_meters},
    {"GET",  "meters/*/history",  ROUTE_SIGNED_IN, route_meter_history},
    {"POST", "meters/*/valve",    ROUTE_SIGNED_IN, route_valve},
    {"GET",  "units",             ROUTE_SIGNED_IN, route_units},
    {"GET",  "engineers",         ROUTE_SIGNED_IN, route_engineers},
    {"POST", "units/*/occupancy", ROUTE_SIGNED_IN, route_occupancy},
    {"GET",  "patrol",            ROUTE_SIGNED_IN, route_patrol},
    {"GET",  "patrol/verify",     ROUTE_SIGNED_IN, route_patrol_verify},
    {"POST", "patrol/checkin",    ROUTE_SIGNED_IN, route_checkin},
    {"GET",  "handover",          ROUTE_SIGNED_IN, route_handover},
    {"POST", "handover",          ROUTE_SIGNED_IN, route_handover_post},
    {"GET",  "events",            ROUTE_SIGNED_IN, route_events},
};

static bool pattern_matches(const char *pattern, const struct api_request *req)
{
    size_t n = 0;
    const char *p = pattern;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (n >= req->nseg)
            return false;
        bool wildcard = len == 1 && p[0] == '*';
        if (!wildcard && (strlen(req->seg[n]) != len || strncmp(p, req->seg[n], len) != 0))
            return false;
        n++;
        p += len;
        if (*p == '/')
            p++;
    }
    return n == req->nseg;
}

/* Splits the path after "/api/" into segments; false when too many or
 * too long (the route does not exist then). */
static bool split_path(const char *path, struct api_request *req)
{
    req->nseg = 0;
    while (*path) {
        size_t len = strcspn(path, "/");
        if (len == 0 || len > SEGMENT_MAX || req->nseg == SEGMENTS_MAX)
            return false;
        memcpy(req->seg[req->nseg], path, len);
        req->seg[req->nseg][len] = '\0';
        req->nseg++;
        path += len;
        if (*path == '/')
            path++;
    }
    return req->nseg > 0;
}

/* Whether the Origin header, when present, names this server. */
static bool origin_is_ours(struct MHD_Connection *conn)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return true;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host)
        return false;
    const char *rest = strncmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                             : NULL;
    return rest && strcmp(rest, host) == 0;
}

/* Cross-site protection for a state-changing request (see
 * console_internal.h). The sign-in itself carries no session, so only its
 * Origin is checked (a foreign page cannot sign a browser in under another
 * account). */
static bool same_site_request(struct MHD_Connection *conn, bool signing_in)
{
    if (signing_in)
        return origin_is_ours(conn);
    const char *marker = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, CSRF_HEADER);
    return marker && strcmp(marker, CSRF_VALUE) == 0 && origin_is_ours(conn);
}

/* The route for the request's path and method; NULL when none, with
 * *path_known telling a known path (405) from an unknown one (404). */
static const struct route *find_route(const struct api_request *req, bool *path_known)
{
    const struct route *match = NULL;
    *path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!pattern_matches(routes[i].pattern, req))
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, req->method) == 0)
            match = &routes[i];
    }
    return match;
}

/* Runs the security checks in the order console_internal.h gives, then the
 * route's handler. */
enum MHD_Result console_handle_api(struct gw_http *http, struct MHD_Connection *conn,
                                   const char *path, const char *method,
                                   const struct request_body *body)
{
    struct api_request *req = calloc(1, sizeof *req);
    if (!req)
        return MHD_NO;
    req->http = http;
    req->conn = conn;
    req->method = method;
    req->body = body;
    bool path_known = false;
    const struct route *match = split_path(path, req) ? find_route(req, &path_known) : NULL;
    enum MHD_Result ret;
    bool anonymous = match && match->caller == ROUTE_ANYONE;
    bool changes_state = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    if (!anonymous && !console_authenticate(http, conn, &req->who))
        ret = console_send_error(conn, MHD_HTTP_UNAUTHORIZED, "sign in first");
    else if (!path_known)
        ret = console_send_error(conn, MHD_HTTP_NOT_FOUND, "no such route");
    else if (!match)
        ret = console_send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                 "method not allowed on this route");
    else if (changes_state && (anonymous || req->who.by_cookie) && !same_site_request(conn, anonymous))
        ret = console_send_error(
            conn, MHD_HTTP_FORBIDDEN,
            "cross-site request refused (send " CSRF_HEADER ": " CSRF_VALUE ")");
    else if (body->too_large)
        ret = console_send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                                 "request body larger than %d bytes", BODY_MAX);
    else
        ret = match->handle(req);
    OPENSSL_cleanse(req->who.token, sizeof req->who.token);
    free(req);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Request helpers for the handlers                                    */
/* ------------------------------------------------------------------ */

int64_t console_parse_id(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > 15 || text[0] == '0')
        return 0;
    int64_t id = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return 0;
        id = id * 10 + (text[i] - '0');
    }
    return id;
}

const char *console_query(const struct api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

cJSON *console_parse_body_object(const struct api_request *req)
{
    if (req->body->len == 0)
        return cJSON_CreateObject();
    cJSON *json = cJSON_ParseWithLength(req->body->data, req->body->len);
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

