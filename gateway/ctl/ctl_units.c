/* ctl_units.c - estate-ctl unit ID occupancy vacant|occupied. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

int ctl_verb_unit(struct ctl *c)
{
    const char *unit = ctl_positional(c, 0);
    const char *what = ctl_positional(c, 0);
    const char *value = ctl_positional(c, 0);
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    if (unit == NULL || what == NULL || strcmp(what, "occupancy") != 0 || value == NULL ||
        (strcmp(value, "vacant") != 0 && strcmp(value, "occupied") != 0))
        return ctl_usage_error("usage: unit ID occupancy vacant|occupied");
    if (gw_config_unit_index(c->config, unit) < 0)
        return ctl_usage_error("unknown unit '%s'", unit);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "unit", unit);
    cJSON_AddStringToObject(args, "occupancy", value);
    cJSON *result = NULL;
    int rc = ctl_request(c, "occupancy", args, &result);
    if (rc == 0 && !ctl_json_out(c, result))
        printf("unit %s is now %s\n", unit, value);
    cJSON_Delete(result);
    return rc;
}
