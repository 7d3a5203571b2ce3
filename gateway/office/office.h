/* office.h - the property office's public face: what the daemon's core, the
 * console and estate-ctl may use of gateway/office. The office turns rule
 * transitions into incidents and work orders, runs the command verbs and
 * their role policy, the SLA timers, check-ins and the shift handover.
 *
 * Dependencies point one way: the office knows nothing of the core. The
 * core fills a struct gw_office_host with the few things the office needs
 * from it (the store, the config, the rule engine, a clock, publishing,
 * the patrol log, valve requests, its per-meter and per-unit state) and
 * creates the office from it; then it hands the office rule transitions,
 * valve results, commands and ticks. Everything runs on the core thread.
 *
 * The other office headers hold the parts' own declarations and are
 * reached through this one. */
#ifndef GW_OFFICE_H
#define GW_OFFICE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "estate.h"
#include "rules.h"
#include "views.h"
#include "store.h"

/* Who asks for an action: a signed-in console user, an estate-ctl operator
 * or an MQTT command's named user (its role looked up in the users file). */
struct gw_actor {
    const char *user;   /* never NULL */
    const char *role;   /* "frontdesk", "engineer", "supervisor", "viewer", "system" */
    const char *origin; /* "mqtt", "ctl", "http", "rule" */
};

/* What the office needs from its host (the core, or a test's stub). The
 * pointers must outlive the office; ctx is passed back to every function. */
struct gw_office_host {
    void *ctx;
    struct gw_store *store;
    const struct gw_config *config;
    struct rule_engine *rules; /* NULL: the stored incidents are the truth */

    /* The host's wall clock. */
    int64_t (*now_ms)(void *ctx);
    /* Queues an event on the prefix's topic_suffix ("alerts",
     * "workorders/12"), durably; payload "" clears a retained topic. */
    est_err (*publish_event)(void *ctx, const char *topic_suffix, const char *payload, bool retain);
    /* Appends a patrol-log entry and publishes it. */
    est_err (*patrol)(void *ctx, const char *kind, const char *text, int64_t incident,
                      int64_t workorder, const char *author, const char *detail_json);
    /* Queues a valve write on the meter's bus (may be NULL: no buses). */
    est_err (*request_valve)(void *ctx, uint32_t meter, bool close, const char *who);
    /* A meter incident was stored for event: the host's meter state follows
     * (offline flag and status, a replacement's last and first readings).
     * May be NULL. */
    void (*meter_event)(void *ctx, const struct rule_event *event);
    /* A meter's offline incident was resumed after a restart (may be NULL). */
    void (*meter_offline_resumed)(void *ctx, uint32_t meter);
    /* Sets a unit's occupancy in the host and its rule engine; returns
     * whether the unit was vacant before. */
    bool (*set_unit_vacant)(void *ctx, uint32_t unit, bool vacant);
};

struct gw_office;

/* Creates the office and its parts (commands, incidents, work orders);
 * each part registers its verbs and subscriptions here. */
est_err gw_office_create(const struct gw_office_host *host, struct gw_office **out);
void gw_office_destroy(struct gw_office *office);

/* rule_event_fn / rule_action_fn with ctx = the office. */
void gw_office_on_rule_event(void *office, const struct rule_event *event);
void gw_office_on_rule_action(void *office, const struct rule_action *action);

/* Loads open incidents from the store and restores them into the rule
 * engine so a restart neither repeats nor loses them. */
est_err gw_office_restore_incidents(struct gw_office *office);

/* A valve write finished (GW_ITEM_VALVE_RESULT). */
void gw_office_on_valve_result(struct gw_office *office, const struct gw_sample *result);

/* About once a second with the host's wall clock: SLA timers. */
void gw_office_tick(struct gw_office *office, int64_t now_ms);
/* The host saw its wall clock jump by delta_ms (note says so, for the
 * records): timers that measure elapsed time move with the clock. */
void gw_office_clock_moved(struct gw_office *office, int64_t delta_ms, const char *note,
                           int64_t now_ms);

/* Incident transitions, after the incident is stored, reach every
 * subscriber in the order they subscribed (the work orders first). */
typedef void (*gw_incident_listener_fn)(void *ctx, const struct gw_store_incident *incident,
                                        enum rule_transition transition);
est_err gw_office_subscribe_incidents(struct gw_office *office, gw_incident_listener_fn fn,
                                      void *ctx);

#include "commands.h"
#include "handover.h"
#include "report.h"
#include "users.h"

#endif
