/* core.h - the daemon's core: owns the store, the rule engine, incident
 * state and the MQTT outbox, and runs the data path
 *     pollers -> sample queue -> rules -> store -> publish
 * on one thread. Bus threads and Paho callbacks only enqueue.
 *
 * The core is the office's host (office.h): it creates the office with
 * the store, config, rule engine and the callbacks the office needs, and
 * hands it rule transitions, valve results, commands and ticks. The office
 * never sees this header, nor does the console (the daemon gives it a
 * struct gw_console_host built on gw_core_call). The struct is visible to
 * the pipeline and the daemon only. */
#ifndef GW_CORE_H
#define GW_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "backups.h"
#include "integrity.h"
#include "mqtt.h"
#include "notify.h"
#include "office.h"
#include "poller.h"
#include "queue.h"
#include "rules.h"
#include "views.h"
#include "store.h"

/* The counters of a meter's last good reading: kept so a detected
 * replacement can record the old meter's final figures. NAN = not read. */
struct gw_last_counters {
    double energy_import_kwh;
    double energy_export_kwh;
    double energy_total_kwh;
    double volume_m3;
    double reverse_volume_m3;
};

/* What the core knows of each meter between polls. */
struct gw_meter_state {
    int64_t last_poll_ms;
    int64_t last_good_ms;
    enum gw_quality last_quality;
    bool offline;
    bool has_last;                 /* last_counters hold a good reading's */
    struct gw_last_counters last_counters;
    uint32_t last_serial;
    uint64_t float32_quantities;   /* drv_model_float32_quantities of its model */
    int64_t store_rowid;           /* meter key in the store */
    int64_t snapshot_day;          /* local day (days since epoch + 1) whose snapshot is
                                    * stored; 0 = not yet asked this run */
};

struct gw_panel_state {
    int64_t last_poll_ms;
    enum gw_quality last_quality;
    uint8_t zones[DRV_MAX_ZONES];  /* last published zone bits */
    bool published;
};

/* Gets every event the core publishes (alerts, work orders, patrol entries,
 * panel states), on the core thread, for the console's live stream. It must
 * be quick and thread-safe (copy and return). kind is the topic suffix,
 * e.g. "alerts", "workorders/12", "patrol". */
typedef void (*gw_core_listener_fn)(void *ctx, const char *kind, const char *payload);

struct gw_core_call; /* a cross-thread request, see gw_core_call() */

/* An event the outbox could not take (storage failing), held in memory. */
struct gw_held_event {
    char *topic;
    char *payload;
    int qos;
    bool retain;
};

/* A rule event and whether the office could store what it caused. */
struct gw_staged_event {
    struct rule_event event;
    bool store_failed;
};

/* A config the core ran with before a reload, kept while a poller started
 * on it still runs (such a bus was not touched by the reload): its samples'
 * indices go through the maps into the current config. Once no poller has
 * used it for a minute (no sample of it is left in the queue, no console
 * request still reads it) it is freed with its maps. */
struct gw_config_generation {
    uint32_t generation;
    struct gw_config *config;      /* NULL once no poller uses it */
    uint32_t *meter_map;           /* its meter index -> current one, GW_RELOAD_GONE */
    size_t nmeters;
    uint32_t *panel_map;
    size_t npanels;
    int64_t unused_since_ms;       /* monotonic: when it was first seen unused; 0 = in use */
};

#define GW_CORE_RELOAD_WAITERS 8

struct gw_core {
    struct gw_config *config;      /* the current config */
    struct gw_config *boot_config; /* the one gw_core_create got: the daemon owns it (the
                                    * MQTT client and the console keep reading it) */
    uint32_t generation;           /* the current config's number (0 at start, +1 a reload) */
    uint32_t *poller_generation;   /* per bus: the config its poller indexes */
    _Atomic(struct gw_config *) shown_config; /* config, for other threads
                                               * (gw_core_current_config) */
    struct gw_config_generation *retired; /* older configs still referred to */
    size_t nretired;
    int64_t reload_waiting[GW_CORE_RELOAD_WAITERS]; /* estate-ctl reload requests to answer */
    size_t nreload_waiting;
    uint64_t reloads;              /* configs applied since start */
    uint64_t reloads_refused;
    /* Asks whoever loads configs (the daemon's reload thread) to load the
     * file again and hand it to gw_core_reload; called on the core thread
     * for an estate-ctl reload request. NULL: reload is not offered. */
    void (*on_reload_wanted)(void *ctx);
    void *on_reload_ctx;
    struct gw_store *store;
    struct gw_mqtt *mqtt;
    struct rule_engine *rules;
    struct gw_office *office;      /* incidents, work orders, commands */
    struct gw_notify *notify;      /* alerts to robots, HTTP, e-mail; NULL = none configured */
    struct gw_queue *samples;      /* pollers -> core */
    struct gw_queue *inbound;      /* Paho -> core (commands) */
    struct gw_poller **pollers;    /* one per bus */
    char *prefix;                  /* MQTT topic prefix */
    atomic_bool stopping;

    struct gw_meter_state *meters;
    struct gw_panel_state *panels;
    bool *unit_vacant;             /* current occupancy per unit */
    /* The site's UTC offset (gateway.timezone, with daylight saving) for
     * the minute site_minute, and the offset the rules were last given. */
    bool site_offset_known;
    int64_t site_minute;
    int site_offset_min;
    int rules_offset_min;
    int8_t *occupancy_pending;     /* per unit: the occupancy a command set in its open
                                      transaction (applied once it commits), -1 none */
    bool occupancy_changed;        /* some entry of occupancy_pending is set */

    /* outbox drain state */
    uint64_t outbox_sent_upto;     /* highest seq handed to Paho this connection */
    uint64_t outbox_generation;    /* MQTT connection the above belongs to */
    int64_t connected_since_ms;    /* clock_ms when that connection was first seen */
    bool outbox_has_readings;      /* readings waiting: new ones queue behind them */
    uint64_t readings_dropped;     /* dropped past the outbox limit, since start */
    struct gw_unproven *unproven;  /* readings sent but not yet proven delivered */
    uint64_t unproven_generation;  /* MQTT connection they were sent on */
    int64_t clock_seen_wall_ms;    /* clock_ms and est_mono_ms at the last tick */
    int64_t clock_seen_mono_ms;
    int64_t engine_base_ms;        /* the rules' time is est_mono_ms + this (wall at create) */
    int64_t engine_wall_offset_ms; /* clock_ms minus the rules' time, at the last tick */
    uint64_t readings_dropped_outage; /* ... during the current outage (reported on reconnect) */
    struct gw_log_limiter drop_log; /* drop warnings: once, then at growing intervals */

    /* statistics */
    uint64_t samples_handled;
    uint64_t readings_published;
    uint64_t readings_stored;
    uint64_t outbox_published;     /* outbox messages handed to the broker */
    int health_published;          /* 1 + enum gw_health last put in P/status; 0 = none */
    bool store_degraded;           /* writes failing (disk full): publish only */
    int64_t anchored_seq;          /* patrol head last recorded as an anchor */
    int64_t anchored_ms;           /* when */
    int64_t head_published_seq;    /* patrol head last published on P/patrol/head */

    /* Storage failing: what could not be stored waits in memory (bounded). */
    struct gw_held_event *held;    /* events the outbox refused, oldest first */
    size_t nheld;
    size_t held_bytes;
    uint64_t held_dropped;         /* oldest held events dropped past the bound */
    struct gw_staged_event *staged; /* rule events inside the open transaction */
    size_t nstaged;
    struct rule_event *replay;     /* rule events to hand the office again once
                                    * storing works, so they are stored */
    size_t nreplay;
    uint64_t replay_dropped;
    int64_t storage_failing_since_ms; /* 0: storage works */
    char storage_failure[256];     /* why, for the incident */

    /* The patrol head retained on the broker, checked at every connection. */
    uint64_t head_generation;      /* MQTT connection it was asked on */
    int64_t head_wait_until_ms;    /* monotonic: anchoring waits for it until then */
    bool head_checked;             /* it arrived (or none came) on this connection */
    bool head_conflict;            /* it is not in the local chain: never overwrite it */
    struct gw_integrity *integrity; /* the periodic full check (NULL = off) */
    struct gw_backups *backups;     /* the daily backup (NULL = off) */
    bool damage_reported;          /* storage_damaged raised this run */
    int64_t next_tick_ms;
    int64_t next_maintenance_ms;
    int64_t next_store_probe_ms;   /* degraded mode: next write probe (monotonic) */
    int64_t (*clock_ms)(void);     /* wall clock; tests may replace it */
    const struct gw_sample *feeding; /* the sample the rule engine is judging, for
                                      * its callbacks (NULL outside a feed) */

    struct gw_queue *calls;        /* other threads -> core: struct gw_core_call * */
    gw_core_listener_fn listeners[4];
    void *listener_ctx[4];
    size_t nlisteners;
    /* Called on the core thread after every tick (every TICK_MS while the
     * loop runs): the daemon's liveness signal (service manager watchdog).
     * NULL = none. Set before gw_core_run. */
    void (*on_tick)(void *ctx);
    void *on_tick_ctx;
};

est_err gw_core_create(struct gw_config *config, struct gw_core **out);
/* Runs until gw_core_request_stop; then flushes the store and the outbox. */
est_err gw_core_run(struct gw_core *core);
/* Async-signal-safe. */
void gw_core_request_stop(struct gw_core *core);
void gw_core_destroy(struct gw_core *core);

/* --- for the pipeline and the console (core thread only) --- */

/* Queues an event message (QoS events, durable): written to the outbox in
 * the current transaction and sent oldest first. topic_suffix is appended to
 * the prefix ("alerts", "workorders/12"). payload may be "" (clears a
 * retained topic). */
est_err gw_core_publish_event(struct gw_core *core, const char *topic_suffix, const char *payload,
                              bool retain);
/* Appends a patrol-log entry and publishes it on P/patrol. */
est_err gw_core_patrol(struct gw_core *core, const char *kind, const char *text, int64_t incident,
                       int64_t workorder, const char *author, const char *detail_json);
/* Runs a command on the core thread from another thread (the console) and
 * waits up to timeout_ms for it. Returns the result JSON (malloc'd; the
 * caller frees it) or NULL on timeout or shutdown. args_json is an object. */
char *gw_core_call(struct gw_core *core, const char *verb, const char *args_json,
                   const struct gw_actor *actor, int timeout_ms);
/* Registers a listener before gw_core_run (at most 4). */
est_err gw_core_add_listener(struct gw_core *core, gw_core_listener_fn fn, void *ctx);
/* Current wall clock of the core (replaceable in tests). */
int64_t gw_core_now_ms(const struct gw_core *core);

/* Runs fn on the core thread from another thread and waits up to
 * timeout_ms; fn's result (malloc'd; the caller frees it) or NULL on
 * timeout or shutdown. */
char *gw_core_run_on_core(struct gw_core *core, char *(*fn)(struct gw_core *core), int timeout_ms);

/* Reload: from another thread (the daemon's reload thread), hands a new
 * config that loaded and passed every check to the core, which applies it
 * between two batches: rules and thresholds, work-order SLAs, users,
 * routing, units and occupancy defaults, meters, panels and buses. Buses
 * whose settings and devices did not change keep polling; changed and new
 * ones start, removed ones stop. The store, the outbox, the MQTT session,
 * the counters and open incidents stay. The core takes next in any case
 * (applied, or freed when it cannot be applied). With next NULL,
 * refusal_json ({"ok":false,...}) is the answer to give waiting estate-ctl
 * requests instead. Returns the result JSON ({"ok":true,"changes":[...],
 * "restart_needed":[...],"warnings":[...]} or a refusal; malloc'd) or NULL
 * when the core did not answer within timeout_ms. */
char *gw_core_reload(struct gw_core *core, struct gw_config *next, const char *refusal_json,
                     int timeout_ms);
/* The current config, from any thread: after a reload the one it replaced
 * stays valid for at least a minute (read it afresh for each request). */
const struct gw_config *gw_core_current_config(struct gw_core *core);

/* --- health and metrics (metrics.c), core thread only --- */

enum gw_health { GW_HEALTH_OK, GW_HEALTH_DEGRADED, GW_HEALTH_FAILING };
/* "ok", "degraded" or "failing". */
const char *gw_core_health_word(struct gw_core *core);
/* {"status":"ok"|"degraded"|"failing","reasons":[...]} (malloc'd). */
char *gw_core_health_json(struct gw_core *core);
/* Every metric in the Prometheus text format (malloc'd). */
char *gw_core_metrics_text(struct gw_core *core);
/* True when the health differs from what P/status last carried (and
 * remembers it); called from the tick. */
bool gw_core_health_changed(struct gw_core *core);

/* A valve write finished: the office writes it to the patrol log. */
void gw_incidents_on_valve_result(struct gw_core *core, const struct gw_sample *result);

#endif
