/* handover.h - read-side views of the work-order module (workorders.c) for
 * the console, estate-ctl and tests: the shift-handover summary and the
 * escalation event (a work order's JSON is gw_view_workorder_get, views.h).
 * Declared here because workorders.h is the office's inside and stays small.
 *
 * Escalation event (topic suffix "escalations", QoS events, not retained):
 *   {"workorder":12,"kind":"arrival"|"resolution","ts","due","state",
 *    "category","location","assignee"?,"roles":[...],"contacts":[...]}
 * published once per breach kind (a re-dispatch re-arms "arrival", a
 * postponement re-arms "resolution"). */
#ifndef GW_HANDOVER_H
#define GW_HANDOVER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "office.h"
#include "store.h"

/* What the next shift must follow up, at now_ms:
 * {"ts","open_incidents":[...],"open_workorders":[...],
 *  "overdue_workorders":[ids],"unconfirmed_incidents":[ids],
 *  "meters_offline":[...],"counts":{...}}
 * Unconfirmed = open and neither confirmed nor disputed by a patrol within
 * config->workorders.unconfirmed_after_s of being raised. Reads only.
 * NULL on a store failure or out of memory. Caller frees. */
cJSON *gw_handover_summary(struct gw_office *office, int64_t now_ms);

/* Same, from a store and config directly (estate-ctl's read-only preview). */
cJSON *gw_handover_summary_from(struct gw_store *store, const struct gw_config *config,
                                int64_t now_ms);

/* One line for the patrol log: "A hands over to B: 3 open incidents, ..."
 * (or in Chinese when zh). malloc'd; caller frees. */
char *gw_handover_text(const cJSON *summary, const char *from, const char *to, bool zh);

/* Forces the SLA check on the office's next tick (tests, restarts). */
void gw_workorders_sla_reset(struct gw_office *office);

#endif
