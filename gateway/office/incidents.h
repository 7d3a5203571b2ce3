/* incidents.h - turns the rule engine's transitions into incidents: stored
 * (one open incident per rule and subject, resumed after a restart),
 * published on P/alerts and retained on P/alerts/active/<id>, written to the
 * patrol log and handed to the work-order module. Also carries out the rule
 * engine's actions (closing a vacant unit's valve) and records valve
 * results. Core thread only. */
#ifndef GW_INCIDENTS_H
#define GW_INCIDENTS_H

#include "core.h"

/* rule_event_fn / rule_action_fn; ctx is the struct gw_core. */
void gw_incidents_on_rule_event(void *ctx, const struct rule_event *event);
void gw_incidents_on_rule_action(void *ctx, const struct rule_action *action);

/* Loads open incidents from the store and restores them into the rule
 * engine so a restart neither repeats nor loses them. */
est_err gw_incidents_restore(struct gw_core *core);

/* A valve write finished (GW_ITEM_VALVE_RESULT). */
void gw_incidents_on_valve_result(struct gw_core *core, const struct gw_sample *result);

/* Asks the meter's bus to open or close its valve; logs the request. */
est_err gw_incidents_request_valve(struct gw_core *core, uint32_t meter, bool close,
                                   const char *who);

/* Subject of a stored incident back to the rule engine's terms; false when
 * the subject no longer exists in the config. */
bool gw_incidents_subject(const struct gw_core *core, const char *subject_type,
                          const char *subject, int zone, struct rule_subject *out);

#endif
