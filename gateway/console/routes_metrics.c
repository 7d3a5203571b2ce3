/* routes_metrics.c - GET /healthz (no session: for load balancers and
 * service checks) and GET /metrics (Prometheus text, as http.metrics says). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "console_internal.h"

#define HEALTH_TIMEOUT_MS 2000 /* a core that does not answer in this is failing */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static bool is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, char *text,
                                 const char *content_type)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(text);
        return MHD_NO;
    }
    console_add_common_headers(response, content_type, "no-store");
    return console_queue_response(conn, status, response);
}

/* 200 for ok and degraded, 503 for failing or a core that does not answer. */
enum MHD_Result console_serve_health(struct gw_http *http, struct MHD_Connection *conn,
                                     const char *method)
{
    if (!is_get(method))
        return console_send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    char *health = console_host_health(http, HEALTH_TIMEOUT_MS);
    cJSON *json = health ? cJSON_Parse(health) : NULL;
    free(health);
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(json, "status");
    if (!cJSON_IsString(status)) {
        cJSON_Delete(json);
        json = cJSON_CreateObject();
        if (!json)
            return MHD_NO;
        cJSON_AddStringToObject(json, "status", "failing");
        cJSON *reasons = cJSON_AddArrayToObject(json, "reasons");
        cJSON_AddItemToArray(reasons, cJSON_CreateString("core not answering"));
        return console_send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, json);
    }
    bool failing = strcmp(status->valuestring, "failing") == 0;
    return console_send_json(conn, failing ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, json);
}

enum MHD_Result console_serve_metrics(struct gw_http *http, struct MHD_Connection *conn,
                                      const char *method)
{
    enum gw_metrics_access access = http->config->http.metrics;
    if (access == GW_METRICS_OFF)
        return console_send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    if (!is_get(method))
        return console_send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    if (access == GW_METRICS_SIGNED_IN) {
        struct caller who = {0};
        bool signed_in = console_authenticate(http, conn, &who);
        OPENSSL_cleanse(who.token, sizeof who.token);
        if (!signed_in)
            return console_send_error(conn, MHD_HTTP_UNAUTHORIZED, "sign in first");
    }
    char *text = console_host_metrics(http, HEALTH_TIMEOUT_MS);
    if (!text)
        return console_send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the core did not answer");
    return send_text(conn, MHD_HTTP_OK, text, METRICS_CONTENT_TYPE);
}
