/* views.h - the views part's one public header: every record the gateway
 * shows, as JSON built in one place, for MQTT, the HTTP API, the console's
 * live events, estate-ctl --json and the shift handover alike. Readings,
 * panel states and the status message (payload.c), incidents, work orders
 * with their history, patrol-log entries and meters with their last reading
 * (one builder per record kind), and the JSON helpers every part uses.
 *
 * Pure: config and store structs in, a new cJSON tree (or a malloc'd UTF-8
 * string) out, which the caller owns and frees. Nothing here logs, locks or
 * keeps state; gw_view_workorder_get is the only one that reads the store.
 *
 * Keys: every setter below replaces a key already present instead of adding
 * it a second time, so no object built here carries a key twice.
 * Times are RFC 3339 UTC with milliseconds; a time of 0 ("not yet") is left
 * out unless a record's comment says otherwise. Meters, units and panels are
 * named by their configured ids, never by an index; panel zones are 1-based,
 * as the panel shows them. */
#ifndef GW_VIEWS_H
#define GW_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "rules.h"
#include "sample.h"
#include "store.h"

/* ------------------------------------------------------------------ */
/* JSON helpers                                                        */
/* ------------------------------------------------------------------ */

/* Sets object[key] = value, replacing a member of that name if there is
 * one; takes ownership of value (freed when object is NULL). A NULL value
 * (a failed allocation) changes nothing. */
void gw_json_set(cJSON *object, const char *key, cJSON *value);

/* Typed forms of gw_json_set. A NULL string sets "" (see _if below). */
void gw_json_set_string(cJSON *object, const char *key, const char *value);
void gw_json_set_number(cJSON *object, const char *key, double value);
void gw_json_set_bool(cJSON *object, const char *key, bool value);

/* Sets "key": RFC 3339 (also for 0: the epoch). */
void gw_json_add_ts(cJSON *object, const char *key, int64_t ts_ms);

/* Sets "key": RFC 3339 only when ts_ms > 0 (0 means "not yet"). */
void gw_json_add_ts_if(cJSON *object, const char *key, int64_t ts_ms);

/* Sets "key": value only when value is not NULL. */
void gw_json_add_string_if(cJSON *object, const char *key, const char *value);

/* Sets "key": value only when value is a finite number (NAN = absent). */
void gw_json_add_number_if(cJSON *object, const char *key, double value);

/* Parses json_text (a stored JSON text); NULL when it is NULL or broken. */
cJSON *gw_json_parse_stored(const char *json_text);

/* Prints compactly and frees the object. NULL on allocation failure. */
char *gw_json_finish(cJSON *object);

/* Whether any object in the tree (item itself or nested at any depth)
 * holds two members of the same name. For tests and checks. */
bool gw_json_has_duplicate_keys(const cJSON *item);

/* ------------------------------------------------------------------ */
/* Readings, panel states, status (payload.c)                          */
/* ------------------------------------------------------------------ */

/* {"meter","kind","category","unit"?,"ts","values":{...},"quality"[,"error"]} */
char *gw_payload_reading(const struct gw_config *config, const struct gw_sample *sample);

/* values object of a reading (numbers; valve as its name). */
cJSON *gw_payload_values(const struct drv_reading *reading);

/* The hot path's forms of the two above, the same JSON printed into the
 * caller's buffers so the values are printed once for the payload and the
 * store. gw_payload_values_json prints the values object into buf and
 * returns its length (0 when cap is too small: cJSON wants some slack);
 * gw_payload_reading_into prints the reading payload around values_json
 * (NUL-terminated, from the former) and returns its length (0 when cap is
 * too small). The sizes below hold every model shipped. */
#define GW_PAYLOAD_VALUES_MAX 2048
#define GW_PAYLOAD_READING_MAX 3072
size_t gw_payload_values_json(const struct drv_reading *reading, char *buf, size_t cap);
size_t gw_payload_reading_into(const struct gw_config *config, const struct gw_sample *sample,
                               const char *values_json, size_t values_len, char *buf, size_t cap);

/* {"panel","ts","quality","error"?,"state":"alarm"|"fault"|"supervisory"|"pre_alarm"|"normal"|"unknown",
 *  "panel_alarm","panel_fault","zones":[{"zone","name","zone_alarm","zone_fault","zone_disabled",
 *  "supervisory","pre_alarm","unknown"?}...]}; state "unknown" (the panel could not be read):
 *  panel_alarm and panel_fault null, no zones. */
char *gw_payload_panel_state(const struct gw_config *config, const struct gw_sample *sample);

/* {"state":"online"|"offline","version","ts"} */
char *gw_payload_status(bool online, int64_t ts_ms);
/* The same with "health" ("ok" | "degraded" | "failing"); health NULL = none. */
char *gw_payload_status_health(bool online, int64_t ts_ms, const char *health);

/* ------------------------------------------------------------------ */
/* Incidents                                                           */
/* ------------------------------------------------------------------ */

/* An incident has a stored state and, when it is announced, a transition.
 * Both travel in the one key "state", so every form of an incident carries
 * the same keys and values except that one:
 *
 *   stored form (GW_INCIDENT_STORED): "state" is the incident's state,
 *     "active" while it is open, "cleared" once it cleared. Used by
 *     GET /api/alerts, estate-ctl incidents, the handover and the retained
 *     P/alerts/active/<id>.
 *   transition form (RAISED, UPDATED, CLEARED): "state" names what just
 *     happened, "raised" | "updated" | "cleared" (SPEC's P/alerts). Used by
 *     P/alerts and the console's "alert" live event, which mirrors it.
 *
 * "ts" is the time of the incident's last change (updated_ms, which the
 * store sets on raise, update, confirmation and clear), so a transition
 * built from the incident as stored after it carries the transition's time.
 *
 * {"id","rule","severity","state","subject_type","subject",
 *  "meter"?,"unit"?,"panel"?,"zone"? (1-based),"location","ts","since",
 *  "raised","updated"?,"cleared"?,"text","detail":{...},
 *  "confirmed_by"?,"confirmed"?,"disputed_by"?,"disputed"?}
 * meter: the subject meter, or for a unit's incident the meter the rule
 * names in its detail (else the unit's water meter); unit: the subject
 * unit or the subject meter's unit; panel: a panel or zone's panel.
 * location: the meter's location, "unit X", "building X", the zone's name
 * or "<panel> zone N", or the panel's location, in the site's language.
 * detail: the stored detail object ({} when none); a "meter" in it is the
 * meter's id (a row stored before views kept the meter's index in the
 * config: it is shown as the id of that index in today's config). */
enum gw_incident_transition {
    GW_INCIDENT_STORED,
    GW_INCIDENT_RAISED,
    GW_INCIDENT_UPDATED,
    GW_INCIDENT_CLEARED,
};

/* The "state" value: "active"/"cleared" for STORED (by incident->open),
 * else "raised"/"updated"/"cleared". */
const char *gw_view_incident_state(const struct gw_store_incident *incident,
                                   enum gw_incident_transition transition);

/* The transition form for a rule engine transition. */
enum gw_incident_transition gw_view_transition_of(enum rule_transition transition);

/* The incident record described above. NULL when out of memory. */
cJSON *gw_view_incident(const struct gw_config *config, const struct gw_store_incident *incident,
                        enum gw_incident_transition transition);

/* The detail object to store with an incident raised or updated by event:
 * {"reason"?, <detail key>: number ...}, with "meter" as the meter's id.
 * NULL when out of memory. */
cJSON *gw_view_incident_detail(const struct gw_config *config, const struct rule_event *event);

/* Replaces a "meter" index in an incident's detail object (how rows stored
 * before views named it) by that meter's id; anything else stays. */
void gw_view_detail_meter_ids(const struct gw_config *config, cJSON *detail);

/* The incident's place in words, as in "location" above, into out. */
void gw_view_incident_location(const struct gw_config *config,
                               const struct gw_store_incident *incident, char *out, size_t len);

/* ------------------------------------------------------------------ */
/* Work orders                                                         */
/* ------------------------------------------------------------------ */

/* Work-order rules the records show (the work-order module decides by the
 * same ones): closed states, the effective deadline, overdue. */
bool gw_view_workorder_closed(const char *state);            /* verified, cancelled */
int64_t gw_view_workorder_resolve_due_ms(const struct gw_store_workorder *wo);
bool gw_view_workorder_overdue(const struct gw_store_workorder *wo, int64_t now_ms);
/* The two ways to be overdue (escalated each on its own): dispatched and
 * not on site by arrive_due; not completed by the effective deadline. */
bool gw_view_workorder_arrival_breached(const struct gw_store_workorder *wo, int64_t now_ms);
bool gw_view_workorder_resolution_breached(const struct gw_store_workorder *wo, int64_t now_ms);

/* A work order as retained on P/workorders/<id>, listed by GET
 * /api/workorders and estate-ctl workorders, shown by estate-ctl workorder
 * <id> and the handover:
 * {"id","incident"?,"state","category","unit"?,"building"?,"location",
 *  "where"?,"description","severity"?,"opened","dispatched"?,"arrive_due"?,
 *  "resolve_due"?,"postponed_until"?,"on_site"?,"completed"?,"verified"?,
 *  "cancelled"?,"overdue","escalated","assignee"?,"verifier"?,"rating"?,
 *  "updated"} - and "history" in gw_view_workorder_get's form.
 * location and description are "" when none; where is the unit, else the
 * location; resolve_due is the postponement when there is one; overdue is
 * as of now_ms (for a retained message: when it was published). */
cJSON *gw_view_workorder(const struct gw_store_workorder *wo, int64_t now_ms);

/* One history record: {"ts","action","from"|null,"to","who","note"|null}. */
cJSON *gw_view_workorder_history(const struct gw_store_wo_history *h);

/* The work order id with "history":[...] oldest first, read from store.
 * NULL when there is no such order (or on a store failure or out of
 * memory). */
cJSON *gw_view_workorder_get(struct gw_store *store, int64_t id, int64_t now_ms);

/* ------------------------------------------------------------------ */
/* Patrol log                                                          */
/* ------------------------------------------------------------------ */

/* A patrol-log entry, as on P/patrol, GET /api/patrol and estate-ctl
 * patrol log: {"seq","ts","kind","text","incident"?,"workorder"?,"author",
 * "detail"?:{...},"hash","prev_hash","hash12"} - detail is the stored
 * detail object (left out when none or broken; an incident entry's "meter"
 * index shown as the meter's id when config is not NULL); hash12 is the
 * first 12 characters of hash (estate-ctl's table). The chain is over the
 * stored text (store.h), not over this JSON. */
cJSON *gw_view_patrol_entry(const struct gw_config *config, const struct gw_store_patrol_entry *e);

/* ------------------------------------------------------------------ */
/* Meters                                                              */
/* ------------------------------------------------------------------ */

/* A meter with its last good reading, as in GET /api/meters and estate-ctl
 * inventory: {"id","kind"?,"category"?,"unit"?,"building"?,"location"?,
 * "where"?,"driver"?,"bus"?,"slave","serial"?,"parent"?,"valve",
 * "installed"?,"status","removed","last_good"?,"values":{...}|null,
 * "value"?,"energy_import_kwh"?|"volume_m3"?}
 * where: unit, else location, else building; status: "removed" for a
 * meter no longer in the config, else the store's status; values: the last
 * good reading's values (null when none); value: its key figure as text
 * ("12.345 kWh", "3.210 m3") with the number under its own key. */
cJSON *gw_view_meter(const struct gw_store_meter *m);

#endif
