/* meter_view.c - a meter of the inventory with its last good reading as
 * JSON, one builder for GET /api/meters and estate-ctl inventory. */
#include "views.h"

#include <stdio.h>
#include <string.h>

/* "value" (the key figure as text: import kWh or volume m3) and the same
 * number under its own key, from the last reading's values. */
static void add_key_value(cJSON *o, const char *kind, const cJSON *values)
{
    bool water = kind != NULL && strcmp(kind, "water") == 0;
    const char *key = water ? "volume_m3" : "energy_import_kwh";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(values, key);
    if (!cJSON_IsNumber(v))
        return;
    char text[64];
    snprintf(text, sizeof text, "%.3f %s", v->valuedouble, water ? "m3" : "kWh");
    gw_json_set_string(o, "value", text);
    gw_json_set_number(o, key, v->valuedouble);
}

cJSON *gw_view_meter(const struct gw_store_meter *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    gw_json_set_string(o, "id", m->id);
    gw_json_add_string_if(o, "kind", m->kind);
    gw_json_add_string_if(o, "category", m->category);
    gw_json_add_string_if(o, "unit", m->unit);
    gw_json_add_string_if(o, "building", m->building);
    gw_json_add_string_if(o, "location", m->location);
    gw_json_add_string_if(o, "where", m->unit != NULL       ? m->unit
                                      : m->location != NULL ? m->location
                                                            : m->building);
    gw_json_add_string_if(o, "driver", m->driver);
    gw_json_add_string_if(o, "bus", m->bus);
    if (m->address != NULL)
        gw_json_set_string(o, "address", m->address); /* DL/T 645, CJ/T 188: no slave id */
    else
        gw_json_set_number(o, "slave", m->slave);
    gw_json_add_string_if(o, "serial", m->serial);
    gw_json_add_string_if(o, "parent", m->parent);
    gw_json_set_bool(o, "valve", m->valve);
    gw_json_add_ts_if(o, "installed", m->install_ms);
    gw_json_add_string_if(o, "status", m->removed ? "removed" : m->status);
    gw_json_set_bool(o, "removed", m->removed);
    gw_json_add_ts_if(o, "last_good", m->last_good_ms);
    cJSON *values = gw_json_parse_stored(m->last_values_json);
    if (!cJSON_IsObject(values)) {
        cJSON_Delete(values);
        values = cJSON_CreateNull();
    }
    add_key_value(o, m->kind, values);
    gw_json_set(o, "values", values);
    return o;
}
