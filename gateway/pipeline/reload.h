/* reload.h - what a new configuration changes against the running one:
 * which meters, fire panels and buses stay (matched by id and name), which
 * buses may keep polling without a restart, what needs a restart of the
 * daemon, and the list of changes in words. Pure: two configs in, a diff
 * out; the core applies it (gw_core_reload). */
#ifndef GW_RELOAD_H
#define GW_RELOAD_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define GW_RELOAD_GONE UINT32_MAX /* a map entry whose meter or panel is not in the new config */
#define GW_RELOAD_NEW_BUS SIZE_MAX /* a bus whose poller (re)starts */

struct gw_reload_diff {
    uint32_t *meter_map;   /* old meter index -> new index, or GW_RELOAD_GONE */
    uint32_t *panel_map;   /* old panel index -> new index, or GW_RELOAD_GONE */
    size_t *bus_kept;      /* new bus index -> the old bus whose poller keeps running,
                            * or GW_RELOAD_NEW_BUS */
    cJSON *changes;        /* array of strings: what changed, e.g. "meter E-9 added" */
    cJSON *restart_needed; /* array of strings: settings that keep their running value
                            * until the daemon restarts, e.g. "mqtt.uri" */
    char *refusal;         /* malloc'd: why next cannot replace old at run time, or NULL */
};

/* Compares old (running) with next (loaded and checked). EST_ERR_NOMEM, or
 * EST_OK with *diff filled (free it with gw_reload_diff_free). */
est_err gw_reload_diff(const struct gw_config *old, const struct gw_config *next,
                       struct gw_reload_diff *diff);
void gw_reload_diff_free(struct gw_reload_diff *diff);

#endif
