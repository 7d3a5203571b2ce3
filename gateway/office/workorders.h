/* workorders.h - repair work orders with SLA timers and escalation, the
 * patrol check-in and the shift handover (issue 4). Runs on the core
 * thread; storage in store.h, events through gw_core_publish_event and the
 * patrol log through gw_core_patrol. */
#ifndef GW_WORKORDERS_H
#define GW_WORKORDERS_H

#include <cjson/cJSON.h>

#include "core.h"

/* Called by the incident module for every incident transition after the
 * incident is stored: opens one work order for a raised major/critical
 * incident (idempotent), notes updates and clears in its history. */
void gw_workorders_on_incident(struct gw_core *core, const struct gw_store_incident *incident,
                               enum rule_transition transition);

/* SLA timers: called about once a second with the core's wall clock. */
void gw_workorders_tick(struct gw_core *core, int64_t now_ms);

/* Command verbs (see commands.h). */
cJSON *gw_workorders_command(struct gw_core *core, const cJSON *args, const struct gw_actor *actor);
cJSON *gw_patrol_checkin_command(struct gw_core *core, const cJSON *args, const struct gw_actor *actor);
cJSON *gw_handover_command(struct gw_core *core, const cJSON *args, const struct gw_actor *actor);

#endif
