/* json.c - the JSON helpers every part uses: set-or-replace setters (so no
 * object carries a key twice), RFC 3339 times, stored JSON texts. */
#include "views.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gw_json_set(cJSON *object, const char *key, cJSON *value)
{
    if (value == NULL)
        return;
    if (object == NULL || key == NULL) {
        cJSON_Delete(value);
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(object, key) != NULL) {
        if (!cJSON_ReplaceItemInObjectCaseSensitive(object, key, value))
            cJSON_Delete(value);
        return;
    }
    if (!cJSON_AddItemToObject(object, key, value))
        cJSON_Delete(value);
}

void gw_json_set_string(cJSON *object, const char *key, const char *value)
{
    gw_json_set(object, key, cJSON_CreateString(value != NULL ? value : ""));
}

void gw_json_set_number(cJSON *object, const char *key, double value)
{
    gw_json_set(object, key, cJSON_CreateNumber(value));
}

void gw_json_set_bool(cJSON *object, const char *key, bool value)
{
    gw_json_set(object, key, cJSON_CreateBool(value));
}

void gw_json_add_ts(cJSON *object, const char *key, int64_t ts_ms)
{
    char ts[EST_TS_LEN];
    est_format_ts(ts_ms, ts);
    gw_json_set_string(object, key, ts);
}

void gw_json_add_ts_if(cJSON *object, const char *key, int64_t ts_ms)
{
    if (ts_ms > 0)
        gw_json_add_ts(object, key, ts_ms);
}

void gw_json_add_string_if(cJSON *object, const char *key, const char *value)
{
    if (value != NULL)
        gw_json_set_string(object, key, value);
}

void gw_json_add_number_if(cJSON *object, const char *key, double value)
{
    if (isfinite(value))
        gw_json_set_number(object, key, value);
}

cJSON *gw_json_parse_stored(const char *json_text)
{
    return json_text != NULL ? cJSON_Parse(json_text) : NULL;
}

char *gw_json_finish(cJSON *object)
{
    if (object == NULL)
        return NULL;
    char *text = cJSON_PrintUnformatted(object);
    cJSON_Delete(object);
    return text;
}

bool gw_json_has_duplicate_keys(const cJSON *item)
{
    if (item == NULL)
        return false;
    for (const cJSON *a = item->child; a != NULL; a = a->next) {
        if (cJSON_IsObject(item) && a->string != NULL)
            for (const cJSON *b = a->next; b != NULL; b = b->next)
                if (b->string != NULL && strcmp(a->string, b->string) == 0)
                    return true;
        if (gw_json_has_duplicate_keys(a))
            return true;
    }
    return false;
}
