/* incidents.h - turns the rule engine's transitions into incidents: stored
 * (one open incident per rule and subject, resumed after a restart),
 * published on P/alerts and retained on P/alerts/active/<id>, written to the
 * patrol log and handed to the incident subscribers (the work orders).
 * Also carries out the rule engine's actions (closing a vacant unit's
 * valve) and records valve results. The public entry points are in
 * office.h; these are for the office's other parts. Core thread only. */
#ifndef GW_INCIDENTS_H
#define GW_INCIDENTS_H

#include "office.h"

/* Registers the "incident" verb (action "ack": the desk acknowledges an
 * alert, who and when in the patrol log, seen by every console). */
est_err gw_incidents_init(struct gw_office *office);

/* Asks the meter's bus to open or close its valve; logs the request. */
est_err gw_incidents_request_valve(struct gw_office *office, uint32_t meter, bool close,
                                   const char *who);

/* Subject of a stored incident back to the rule engine's terms; false when
 * the subject no longer exists in the config. */
bool gw_incidents_subject(const struct gw_config *config, const char *subject_type,
                          const char *subject, int zone, struct rule_subject *out);

#endif
