/* patrol_view.c - a patrol-log entry as JSON, one builder for P/patrol,
 * GET /api/patrol, the live events and estate-ctl patrol log. */
#include "views.h"

#include <stdio.h>
#include <string.h>

cJSON *gw_view_patrol_entry(const struct gw_config *config, const struct gw_store_patrol_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    gw_json_set_number(o, "seq", (double)e->seq);
    gw_json_add_ts(o, "ts", e->ts_ms);
    gw_json_set_string(o, "kind", e->kind);
    gw_json_set_string(o, "text", e->text);
    if (e->incident > 0)
        gw_json_set_number(o, "incident", (double)e->incident);
    if (e->workorder > 0)
        gw_json_set_number(o, "workorder", (double)e->workorder);
    gw_json_set_string(o, "author", e->author);
    cJSON *detail = gw_json_parse_stored(e->detail_json);
    if (cJSON_IsObject(detail)) {
        if (e->kind != NULL && strcmp(e->kind, "incident") == 0)
            gw_view_detail_meter_ids(config, detail);
        gw_json_set(o, "detail", detail);
    }
    else
        cJSON_Delete(detail);
    gw_json_set_string(o, "hash", e->hash);
    gw_json_set_string(o, "prev_hash", e->prev_hash);
    char short_hash[13];
    snprintf(short_hash, sizeof short_hash, "%.12s", e->hash);
    gw_json_set_string(o, "hash12", short_hash);
    return o;
}
