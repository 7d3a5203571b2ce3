/* workorders.h - repair work orders with SLA timers and escalation, the
 * patrol check-in and the shift handover. Runs on the core thread; storage
 * in store.h, events and the patrol log through the office's host. At
 * start-up (gw_workorders_init, office_parts.h) the part subscribes to
 * incident transitions and registers its verbs. */
#ifndef GW_WORKORDERS_H
#define GW_WORKORDERS_H

#include <cjson/cJSON.h>

#include "office.h"

/* An incident transition after the incident is stored (a subscriber, see
 * gw_office_subscribe_incidents; ctx is the office): opens one work order
 * for a raised major/critical incident (idempotent), notes updates and
 * clears in its history. */
void gw_workorders_on_incident(void *office, const struct gw_store_incident *incident,
                               enum rule_transition transition);

/* SLA timers: called about once a second with the host's wall clock. */
void gw_workorders_tick(struct gw_office *office, int64_t now_ms);
/* The wall clock jumped by delta_ms: running SLA timers move with it. */
void gw_workorders_clock_moved(struct gw_office *office, int64_t delta_ms, const char *note,
                               int64_t now_ms);

/* Command verbs (see commands.h). */
cJSON *gw_workorders_command(struct gw_office *office, const cJSON *args,
                             const struct gw_actor *actor);
cJSON *gw_patrol_checkin_command(struct gw_office *office, const cJSON *args,
                                 const struct gw_actor *actor);
cJSON *gw_handover_command(struct gw_office *office, const cJSON *args,
                           const struct gw_actor *actor);

#endif
