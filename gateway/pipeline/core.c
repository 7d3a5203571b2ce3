/* core.c - the core thread: samples in from the pollers, through the rule
 * engine, into SQLite (batched) and out over MQTT (readings directly, events
 * through the durable outbox); commands in from MQTT, estate-ctl and the
 * console. */
#include "core.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "est_alloc.h"
#include "est_tz.h"
#include "office.h"
#include "reload.h"
#include "unproven.h"
#include "views.h"

/* Samples are ~600 bytes and the ring is touched all round, so its size is
 * resident memory: 2048 (1.2 MB) holds four of the core's batches, about
 * 0.1 s at 20,000 readings/s. A full queue makes the pollers wait. */
#define GW_COMMAND_ACCOUNT_MAX 64 /* bytes of a broker account in P/cmd/by/<account>/<verb> */
#define SAMPLE_QUEUE_CAPACITY 2048
#define SAMPLE_BATCH 512
/* After a small batch the core waits this long before taking the next one,
 * so that a busy site is stored in a few large transactions a second
 * rather than one small commit per poller wake-up. */
#define SAMPLE_GATHER_MS 5
#define SAMPLE_GATHER_BELOW (SAMPLE_BATCH / 8)
#define INBOUND_QUEUE_CAPACITY 64
#define CALL_QUEUE_CAPACITY 64
#define OUTBOX_WINDOW 100      /* QoS 1 messages in flight (DOMAIN: ~100 is the sweet spot) */
#define OUTBOX_PEEK 200
/* A reading that finds the publisher's ring full while connected waits up
 * to this long for room (the broker is behind: Paho pauses 100 ms when its
 * socket buffer is full) before it goes to the outbox. */
#define RING_WAIT_MS 250
#define TICK_MS 200
/* Readings kept until proven delivered: a silent link is given up after
 * 2 x keepalive_s (30 s by default); this is 60 s of a busy site's. */
#define UNPROVEN_MAX 20000
/* A wall clock that moved this much more or less than the monotonic clock
 * between two ticks jumped. */
#define CLOCK_JUMP_MS 30000
#define MAINTENANCE_MS 60000
#define STORE_PROBE_MS 5000    /* degraded mode: try writing again this often */
#define FIRST_CONNECT_WAIT_MS 1000 /* see gw_core_run */
#define PATROL_ANCHOR_EVERY_MS 60000 /* a database anchor at most this often */
#define HEAD_WAIT_MS 3000      /* after connecting, anchoring waits this long for the
                                * retained head to come back from the broker */
#define HELD_EVENTS_MAX 2000   /* events held in memory while storage fails */
#define HELD_BYTES_MAX (4u << 20)
#define REPLAY_MAX 512         /* rule events kept to be stored once space returns */
#define STAGED_MAX 512         /* rule events tracked inside one transaction */
#define STORE_RESERVE_BYTES (1u << 20) /* room kept for a WAL checkpoint on a full disk */
#define CTL_REQUEST_EXPIRY_MS 15000 /* estate-ctl waits 10 s for an answer */
#define COMMAND_ID_WINDOW_MS (10 * 60 * 1000) /* an MQTT request_id runs once within this */
#define COMMAND_ID_KEEP 10000                 /* request ids remembered at most */
/* A retired config and its index maps are kept this long after its last
 * poller stopped: longer than any of its samples can wait in the queue or a
 * console request can read it. */
#define RETIRED_KEEP_MS 60000

/* A command from another thread, answered through a condition variable. */
struct gw_core_call {
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    bool done;
    bool abandoned;            /* the caller gave up; the core frees it */
    char *verb;
    char *args_json;
    char user[64];
    char role[32];
    char *(*fn)(struct gw_core *core); /* set: run this instead of a verb */
    bool reload;               /* a reload (gw_core_reload) instead of a verb */
    struct gw_config *reload_config; /* taken by the core (then NULL) */
    char *reload_refusal;
    char *result;
};

/* Frees a call's own parts (the caller's or, when abandoned, the core's job). */
static void free_call(struct gw_core_call *call)
{
    free(call->result);
    free(call->verb);
    free(call->args_json);
    free(call->reload_refusal);
    gw_config_free(call->reload_config);
    pthread_mutex_destroy(&call->lock);
    pthread_cond_destroy(&call->done_cond);
    free(call);
}

static int64_t default_clock(void) { return est_now_ms(); }

int64_t gw_core_now_ms(const struct gw_core *core) { return core->clock_ms(); }

/* The rule engine's time: the monotonic clock, anchored to the wall clock
 * when the core was created, so the rules' holds and windows measure
 * elapsed time whatever happens to the wall clock. */
static int64_t engine_now_ms(const struct gw_core *core) { return est_mono_ms() + core->engine_base_ms; }

static int64_t engine_time_of(const struct gw_core *core, const struct gw_sample *s)
{
    return s->mono_ms != 0 ? s->mono_ms + core->engine_base_ms : s->ts_ms - core->engine_wall_offset_ms;
}

static int64_t engine_to_wall(const struct gw_core *core, int64_t engine_ms)
{
    return engine_ms == INT64_MIN ? engine_ms : engine_ms + core->engine_wall_offset_ms;
}

/* ---------------------------------------------------------------- */
/* Publishing                                                        */
/* ---------------------------------------------------------------- */

static char *topic_for(const struct gw_core *core, const char *suffix)
{
    size_t len = strlen(core->prefix) + 1 + strlen(suffix) + 1;
    char *topic = malloc(len);
    if (topic != NULL)
        snprintf(topic, len, "%s/%s", core->prefix, suffix);
    return topic;
}

static void notify_listeners(struct gw_core *core, const char *kind, const char *payload)
{
    for (size_t i = 0; i < core->nlisteners; i++)
        core->listeners[i](core->listener_ctx[i], kind, payload);
}

static void drop_oldest_held(struct gw_core *core)
{
    struct gw_held_event *h = &core->held[0];
    core->held_bytes -= strlen(h->topic) + strlen(h->payload);
    free(h->topic);
    free(h->payload);
    memmove(core->held, core->held + 1, (core->nheld - 1) * sizeof *core->held);
    core->nheld--;
}

/* An event neither the outbox nor the broker can take now waits in memory,
 * oldest first, bounded (the oldest go first, counted). */
static est_err hold_event(struct gw_core *core, const char *topic, const char *payload, int qos,
                          bool retain)
{
    size_t bytes = strlen(topic) + strlen(payload);
    while (core->nheld > 0 &&
           (core->nheld >= HELD_EVENTS_MAX || core->held_bytes + bytes > HELD_BYTES_MAX)) {
        drop_oldest_held(core);
        if (core->held_dropped++ == 0)
            gw_error("store: too many events held in memory while storage fails: dropping the "
                     "oldest");
    }
    struct gw_held_event h = {strdup(topic), strdup(payload), qos, retain};
    if (h.topic == NULL || h.payload == NULL) {
        free(h.topic);
        free(h.payload);
        return EST_ERR_NOMEM;
    }
    core->held[core->nheld++] = h;
    core->held_bytes += bytes;
    return EST_OK;
}

/* Held events go to the outbox once the store takes writes again, or
 * straight to the broker while it does not. */
static void release_held_events(struct gw_core *core)
{
    if (core->nheld == 0)
        return;
    size_t done = 0;
    if (!core->store_degraded && gw_store_begin(core->store) == EST_OK) {
        for (; done < core->nheld; done++) {
            const struct gw_held_event *h = &core->held[done];
            struct gw_store_outbox_msg msg = {
                .topic = h->topic, .payload = h->payload, .payload_len = strlen(h->payload),
                .qos = h->qos, .retain = h->retain, .is_event = true,
                .created_ms = gw_core_now_ms(core),
            };
            if (gw_store_outbox_add(core->store, &msg, NULL) != EST_OK)
                break;
        }
        if (gw_store_commit(core->store) != EST_OK)
            done = 0;
    }
    if (done == 0 && gw_mqtt_connected(core->mqtt)) {
        for (; done < core->nheld; done++) {
            const struct gw_held_event *h = &core->held[done];
            if (gw_mqtt_publish(core->mqtt, h->topic, h->payload, strlen(h->payload),
                                h->qos > 0 ? h->qos : 1, h->retain, 0) != EST_OK)
                break;
        }
    }
    for (size_t i = 0; i < done; i++)
        drop_oldest_held(core);
}

est_err gw_core_publish_event(struct gw_core *core, const char *topic_suffix, const char *payload,
                              bool retain)
{
    char *topic = topic_for(core, topic_suffix);
    if (topic == NULL)
        return EST_ERR_NOMEM;
    notify_listeners(core, topic_suffix, payload);
    struct gw_store_outbox_msg msg = {
        .topic = topic, .payload = payload, .payload_len = strlen(payload),
        .qos = core->config->mqtt.qos_events, .retain = retain, .is_event = true,
        .created_ms = gw_core_now_ms(core),
    };
    est_err err = core->store_degraded ? EST_ERR_DB : gw_store_outbox_add(core->store, &msg, NULL);
    if (err != EST_OK) {
        /* The disk refuses: keep it in memory and send it when the broker is up. */
        if (!core->store_degraded)
            gw_error("store: cannot queue event on %s: %s; holding it in memory", topic,
                     gw_store_errmsg(core->store));
        err = hold_event(core, topic, payload, msg.qos, retain);
    }
    free(topic);
    return err;
}

/* ---------------------------------------------------------------- */
/* The gateway's own incidents (storage, patrol-log evidence)        */
/* ---------------------------------------------------------------- */

/* The alert of a gateway incident, as P/alerts carries the rules' alerts. */
static char *gateway_alert_json(const struct gw_core *core, int64_t id, const char *rule,
                                const char *state, const char *text, int64_t ts_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "rule", rule);
    cJSON_AddStringToObject(o, "severity", "critical");
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "subject_type", "gateway");
    cJSON_AddStringToObject(o, "subject", core->config->gateway.id);
    gw_json_add_ts(o, "ts", ts_ms);
    cJSON_AddStringToObject(o, "text", text);
    return gw_json_finish(o);
}

/* {"rule":...}: the detail of a gateway incident's patrol entry. */
static char *gateway_incident_detail(const char *rule, const char *state)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "rule", rule);
    cJSON_AddStringToObject(o, "state", state);
    return gw_json_finish(o);
}

/* Records a gateway incident's transition in the patrol log (the incidents
 * table holds the rules' subjects only) and publishes it on P/alerts. */
static void gateway_incident(struct gw_core *core, const char *rule, const char *state,
                             const char *text)
{
    int64_t now = gw_core_now_ms(core);
    if (!core->store_degraded) {
        char *detail = gateway_incident_detail(rule, state);
        gw_core_patrol(core, "incident", text, 0, 0, "system", detail);
        free(detail);
    }
    char *json = gateway_alert_json(core, 0, rule, state, text, now);
    if (json != NULL)
        gw_core_publish_event(core, "alerts", json, false);
    free(json);
}

/* A critical incident about the gateway itself: published on P/alerts in
 * any case (held in memory while storage fails), in the patrol log when the
 * store takes it. */
static void raise_gateway_incident(struct gw_core *core, const char *rule, const char *text)
{
    gateway_incident(core, rule, "raised", text);
}

/* The storage failure is over: the patrol log records it, and the alert
 * clears. */
static void record_storage_recovered(struct gw_core *core)
{
    int64_t now = gw_core_now_ms(core);
    char text[512];
    snprintf(text, sizeof text, "storage was failing (%.200s) for %lld s; storing resumed",
             core->storage_failure, (long long)((now - core->storage_failing_since_ms) / 1000));
    gateway_incident(core, "storage_failing", "cleared", text);
    core->storage_failing_since_ms = 0;
}

/* Whether the local head may go out on P/patrol/head: only once the head
 * retained there was checked against the local chain (or none came back),
 * and never over one the local chain does not contain. */
static bool may_publish_head(const struct gw_core *core)
{
    if (core->head_conflict || !gw_mqtt_connected(core->mqtt) ||
        gw_mqtt_generation(core->mqtt) != core->head_generation)
        return false;
    return core->head_checked || est_mono_ms() >= core->head_wait_until_ms;
}

/* {"seq":..,"hash":..,"ts":..}: the patrol chain's head as anchored outside. */
static char *patrol_head_json(int64_t seq, const char *hash, int64_t ts_ms)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "seq", (double)seq);
    cJSON_AddStringToObject(o, "hash", hash);
    gw_json_add_ts(o, "ts", ts_ms);
    return gw_json_finish(o);
}

/* Publishes the chain head retained on P/patrol/head, with every entry:
 * cutting entries off the tail later is then visible from the broker. */
static void publish_patrol_head(struct gw_core *core, int64_t seq, const char *hash)
{
    if (seq <= core->head_published_seq || !may_publish_head(core))
        return;
    char *json = patrol_head_json(seq, hash, gw_core_now_ms(core));
    if (json != NULL && gw_core_publish_event(core, "patrol/head", json, true) == EST_OK)
        core->head_published_seq = seq;
    free(json);
}

est_err gw_core_patrol(struct gw_core *core, const char *kind, const char *text, int64_t incident,
                       int64_t workorder, const char *author, const char *detail_json)
{
    struct gw_store_patrol_entry e = {
        .ts_ms = gw_core_now_ms(core), .kind = kind, .text = text, .incident = incident,
        .workorder = workorder, .author = author, .detail_json = detail_json,
    };
    est_err err = gw_store_patrol_append(core->store, &e);
    if (err != EST_OK) {
        gw_error("patrol log: cannot append (%s): %s", kind, gw_store_errmsg(core->store));
        return err;
    }
    char *json = gw_json_finish(gw_view_patrol_entry(core->config, &e));
    if (json == NULL)
        return EST_ERR_NOMEM;
    err = gw_core_publish_event(core, "patrol", json, false);
    free(json);
    publish_patrol_head(core, e.seq, e.hash);
    return err;
}

/* ---------------------------------------------------------------- */
/* The office's host (office.h)                                      */
/* ---------------------------------------------------------------- */

static int64_t host_now_ms(void *ctx) { return gw_core_now_ms(ctx); }

static est_err host_publish_event(void *ctx, const char *topic_suffix, const char *payload,
                                  bool retain)
{
    struct gw_core *core = ctx;
    gw_notify_on_event(core->notify, core->store, topic_suffix, payload, gw_core_now_ms(core));
    return gw_core_publish_event(ctx, topic_suffix, payload, retain);
}

static est_err host_patrol(void *ctx, const char *kind, const char *text, int64_t incident,
                           int64_t workorder, const char *author, const char *detail_json)
{
    return gw_core_patrol(ctx, kind, text, incident, workorder, author, detail_json);
}

static struct gw_config_generation *find_generation(struct gw_core *core, uint32_t generation)
{
    for (size_t i = 0; i < core->nretired; i++)
        if (core->retired[i].generation == generation)
            return &core->retired[i];
    return NULL;
}

/* A poller that kept running across a reload knows its meters by their
 * index in the config it was started on. */
static est_err host_request_valve(void *ctx, uint32_t meter, bool close, const char *who)
{
    struct gw_core *core = ctx;
    size_t bus = core->config->meters[meter].bus;
    struct gw_poller *poller = core->pollers[bus];
    if (poller == NULL)
        return EST_ERR_STATE;
    uint32_t index = meter;
    if (core->poller_generation[bus] != core->generation) {
        const struct gw_config_generation *g = find_generation(core, core->poller_generation[bus]);
        int i = g != NULL && g->config != NULL
                    ? gw_config_meter_index(g->config, core->config->meters[meter].id)
                    : -1;
        if (i < 0)
            return EST_ERR_STATE;
        index = (uint32_t)i;
    }
    return gw_poller_request_valve(poller, index, close, who);
}

static double event_detail(const struct rule_event *e, const char *key)
{
    for (size_t i = 0; i < e->ndetail; i++)
        if (strcmp(e->detail[i].key, key) == 0)
            return e->detail[i].value;
    return 0;
}

/* {"energy_import_kwh":..., ...} of the counters that were read. */
static char *counters_json(const struct gw_last_counters *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    const struct { const char *key; double value; } rows[] = {
        {"energy_import_kwh", c->energy_import_kwh}, {"energy_export_kwh", c->energy_export_kwh},
        {"energy_total_kwh", c->energy_total_kwh},   {"volume_m3", c->volume_m3},
        {"reverse_volume_m3", c->reverse_volume_m3},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (isfinite(rows[i].value))
            cJSON_AddNumberToObject(o, rows[i].key, rows[i].value);
    return gw_json_finish(o);
}

/* A meter incident was stored: the meter's state follows it (offline flag
 * and status; a replacement records the old meter's last counters and the
 * new one's first reading, the sample the rule engine is judging). */
static void host_meter_event(void *ctx, const struct rule_event *e)
{
    struct gw_core *core = ctx;
    struct gw_meter_state *st = &core->meters[e->subject.index];
    const char *id = core->config->meters[e->subject.index].id;
    if (e->rule == RULE_METER_OFFLINE) {
        st->offline = e->transition != RULE_CLEARED;
        gw_store_set_meter_status(core->store, id,
                                  st->offline ? GW_STORE_METER_OFFLINE : GW_STORE_METER_OK);
    } else if (e->rule == RULE_METER_REPLACED && e->transition == RULE_RAISED) {
        char old_serial[24], new_serial[24];
        snprintf(old_serial, sizeof old_serial, "%.0f", event_detail(e, "old_serial"));
        snprintf(new_serial, sizeof new_serial, "%.0f", event_detail(e, "new_serial"));
        char *last = st->has_last ? counters_json(&st->last_counters) : NULL;
        char *first = NULL;
        if (core->feeding != NULL && core->feeding->index == e->subject.index) {
            cJSON *v = gw_payload_values(&core->feeding->reading);
            first = v ? gw_json_finish(v) : NULL;
        }
        struct gw_store_replacement r = {
            .meter_id = id, .ts_ms = e->ts_ms, .old_serial = old_serial,
            .old_last_reading_json = last, .new_serial = new_serial,
            .new_first_reading_json = first,
        };
        gw_store_record_replacement(core->store, &r);
        free(last);
        free(first);
    }
}

static void host_meter_offline_resumed(void *ctx, uint32_t meter)
{
    struct gw_core *core = ctx;
    core->meters[meter].offline = true;
}

static void apply_occupancy(struct gw_core *core, uint32_t unit, bool vacant)
{
    core->unit_vacant[unit] = vacant;
    rule_engine_set_vacant(core->rules, unit, vacant);
}

/* An occupancy change inside a command's transaction waits for its commit
 * (apply_pending_occupancy): a refused command must not leave the rules
 * watching the unit as something it is not. */
static bool host_set_unit_vacant(void *ctx, uint32_t unit, bool vacant)
{
    struct gw_core *core = ctx;
    int8_t pending = core->occupancy_pending[unit];
    bool was_vacant = pending >= 0 ? pending != 0 : core->unit_vacant[unit];
    if (gw_store_in_transaction(core->store)) {
        core->occupancy_pending[unit] = vacant ? 1 : 0;
        core->occupancy_changed = true;
    } else
        apply_occupancy(core, unit, vacant);
    return was_vacant;
}

/* The transaction the occupancy changes were made in committed (they take
 * effect) or not (they are forgotten). */
static void apply_pending_occupancy(struct gw_core *core, bool committed)
{
    if (!core->occupancy_changed)
        return;
    core->occupancy_changed = false;
    for (uint32_t u = 0; u < core->config->nunits; u++) {
        int8_t pending = core->occupancy_pending[u];
        core->occupancy_pending[u] = -1;
        if (pending >= 0 && committed)
            apply_occupancy(core, u, pending != 0);
    }
}

/* The office for config and rules (the current ones, or a reload's). */
static est_err create_office(struct gw_core *core, const struct gw_config *config,
                             struct rule_engine *rules, struct gw_office **out)
{
    struct gw_office_host host = {
        .ctx = core, .store = core->store, .config = config, .rules = rules,
        .now_ms = host_now_ms, .publish_event = host_publish_event, .patrol = host_patrol,
        .request_valve = host_request_valve, .meter_event = host_meter_event,
        .meter_offline_resumed = host_meter_offline_resumed,
        .set_unit_vacant = host_set_unit_vacant,
    };
    return gw_office_create(&host, out);
}

/* Incident transitions queue their notifications in the same transaction. */
static void notify_incident(void *ctx, const struct gw_store_incident *incident,
                            enum rule_transition transition)
{
    struct gw_core *core = ctx;
    gw_notify_on_incident(core->notify, core->store, incident, transition);
}

/* A notification channel that keeps failing is an incident of the
 * gateway's own: alerts may be reaching nobody. */
static void notify_channel_failing(void *ctx, const char *channel, bool failing, const char *text)
{
    (void)channel;
    gateway_incident(ctx, "notify_channel_failing", failing ? "raised" : "cleared", text);
}

static est_err create_notify(struct gw_core *core)
{
    char reason[256] = "";
    struct gw_notify_host host = {.ctx = core, .patrol = host_patrol,
                                  .channel_failing = notify_channel_failing};
    est_err err = gw_notify_create(core->config, &host, &core->notify, reason, sizeof reason);
    if (err != EST_OK)
        gw_error("notify: %s", reason);
    if (err == EST_OK && core->notify != NULL)
        err = gw_office_subscribe_incidents(core->office, notify_incident, core);
    return err;
}

static void keep_for_replay(struct gw_core *core, const struct rule_event *event)
{
    if (core->nreplay >= REPLAY_MAX) {
        if (core->replay_dropped++ == 0)
            gw_error("store: more than %d incident changes wait to be stored: dropping the oldest",
                     REPLAY_MAX);
        memmove(core->replay, core->replay + 1, (REPLAY_MAX - 1) * sizeof *core->replay);
        core->nreplay--;
    }
    core->replay[core->nreplay++] = *event;
}

/* The rule engine's callbacks go to the office. A transition whose records
 * could not be stored is kept (by value: its strings are static) to be
 * handed to the office again once storing works; one inside a transaction
 * is tracked until the transaction's outcome is known (see settle_staged). */
static void on_rule_event(void *ctx, const struct rule_event *engine_event)
{
    struct gw_core *core = ctx;
    struct rule_event wall_event = *engine_event; /* times as the wall clock shows them */
    wall_event.ts_ms = engine_to_wall(core, engine_event->ts_ms);
    wall_event.since_ms = engine_to_wall(core, engine_event->since_ms);
    const struct rule_event *event = &wall_event;
    uint64_t failures = gw_store_write_failures(core->store);
    gw_office_on_rule_event(core->office, event);
    bool failed = gw_store_write_failures(core->store) != failures;
    if (gw_store_in_transaction(core->store) && core->nstaged < STAGED_MAX)
        core->staged[core->nstaged++] = (struct gw_staged_event){*event, failed};
    else if (failed)
        keep_for_replay(core, event);
}

/* The transaction the staged rule events were stored in committed or not.
 * Not: their alerts and patrol entries were rolled back with it, so the
 * office publishes them again now (unstored, held until the broker takes
 * them) and they are stored once space returns. */
static void settle_staged(struct gw_core *core, bool committed)
{
    for (size_t i = 0; i < core->nstaged; i++) {
        const struct gw_staged_event *st = &core->staged[i];
        if (!committed)
            gw_office_on_rule_event(core->office, &st->event);
        if (!committed || st->store_failed)
            keep_for_replay(core, &st->event);
    }
    core->nstaged = 0;
}

/* Storing works again: the kept transitions go to the office once more,
 * in order, in one transaction (alerts go out again, now with their ids). */
static bool replay_rule_events(struct gw_core *core)
{
    if (core->nreplay == 0)
        return true;
    if (gw_store_begin(core->store) != EST_OK)
        return false;
    uint64_t failures = gw_store_write_failures(core->store);
    for (size_t i = 0; i < core->nreplay; i++)
        gw_office_on_rule_event(core->office, &core->replay[i]);
    if (gw_store_write_failures(core->store) != failures) {
        gw_store_rollback(core->store);
        return false;
    }
    if (gw_store_commit(core->store) != EST_OK)
        return false;
    gw_info("store: stored %zu incident changes made while storage was failing", core->nreplay);
    core->nreplay = 0;
    return true;
}

static void on_rule_action(void *ctx, const struct rule_action *action)
{
    gw_office_on_rule_action(((struct gw_core *)ctx)->office, action);
}

void gw_incidents_on_valve_result(struct gw_core *core, const struct gw_sample *result)
{
    gw_office_on_valve_result(core->office, result);
}

/* ---------------------------------------------------------------- */
/* Samples                                                           */
/* ---------------------------------------------------------------- */

static bool has(const struct drv_reading *r, enum drv_quantity q)
{
    return (r->present & (UINT64_C(1) << q)) != 0;
}

/* A value as the rules take it. The decoder gives a float32 register as its
 * shortest decimal (226.1), which is what gets published and stored. The
 * rules get the float32 itself back ((float) of that decimal is exactly the
 * register, by construction): their counter checks work in float32 steps
 * (noise below half a step, "at least one step" of export growth), and the
 * difference of two neighbouring float32 values' decimals is anywhere from
 * a third of a step up (70000.0078125 -> 70000.01, 70000.015625 ->
 * 70000.016), which would shift those verdicts by a step. So the rules see
 * exactly the values they saw before decoding went decimal; integer and
 * scaled registers come as decoded (the double nearest to raw / 10^k, not
 * further than one ulp from the former raw * 10^-k). */
static double rule_value(const struct drv_reading *r, uint64_t float32, enum drv_quantity q)
{
    double v = r->value[q];
    return (float32 & (UINT64_C(1) << q)) ? (double)(float)v : v;
}

static void to_rule_sample(const struct gw_sample *s, uint64_t float32,
                           struct rule_meter_sample *rs)
{
    const struct drv_reading *r = &s->reading;
    memset(rs, 0, sizeof *rs);
    rs->meter = s->index;
    rs->ts_ms = s->ts_ms;
    rs->ok = s->quality != GW_QUALITY_ERROR;
    rs->bad_values = s->bad_values;
    static const struct { enum drv_quantity q; unsigned bit; size_t offset; } map[] = {
        {DRV_Q_ENERGY_IMPORT_KWH, RULE_HAS_IMPORT, offsetof(struct rule_meter_sample, import_kwh)},
        {DRV_Q_ENERGY_EXPORT_KWH, RULE_HAS_EXPORT, offsetof(struct rule_meter_sample, export_kwh)},
        {DRV_Q_POWER_W, RULE_HAS_POWER, offsetof(struct rule_meter_sample, power_w)},
        {DRV_Q_VOLUME_M3, RULE_HAS_VOLUME, offsetof(struct rule_meter_sample, volume_m3)},
        {DRV_Q_REVERSE_VOLUME_M3, RULE_HAS_REVERSE_VOLUME,
         offsetof(struct rule_meter_sample, reverse_volume_m3)},
        {DRV_Q_FLOW_M3H, RULE_HAS_FLOW, offsetof(struct rule_meter_sample, flow_m3h)},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (has(r, map[i].q)) {
            rs->has |= map[i].bit;
            double v = rule_value(r, float32, map[i].q);
            memcpy((char *)rs + map[i].offset, &v, sizeof v);
        }
    }
    if (has(r, DRV_Q_POWER_L1_W) && has(r, DRV_Q_POWER_L2_W) && has(r, DRV_Q_POWER_L3_W)) {
        rs->has |= RULE_HAS_PHASE_POWER;
        rs->phase_power_w[0] = rule_value(r, float32, DRV_Q_POWER_L1_W);
        rs->phase_power_w[1] = rule_value(r, float32, DRV_Q_POWER_L2_W);
        rs->phase_power_w[2] = rule_value(r, float32, DRV_Q_POWER_L3_W);
    }
    if (has(r, DRV_Q_SERIAL)) {
        rs->has |= RULE_HAS_SERIAL;
        rs->serial = (uint32_t)r->value[DRV_Q_SERIAL];
    }
    if (has(r, DRV_Q_VALVE)) {
        rs->has |= RULE_HAS_VALVE;
        rs->valve = (enum rule_valve)(int)r->value[DRV_Q_VALVE];
        rs->valve_fault = has(r, DRV_Q_VALVE_FAULT) && r->value[DRV_Q_VALVE_FAULT] != 0;
    }
    if (has(r, DRV_Q_BATTERY_LOW)) {
        rs->has |= RULE_HAS_BATTERY;
        rs->battery_low = r->value[DRV_Q_BATTERY_LOW] != 0;
    }
}

static struct gw_store_values store_values(const struct drv_reading *r)
{
    struct gw_store_values v;
    gw_store_values_clear(&v);
    if (has(r, DRV_Q_ENERGY_IMPORT_KWH))
        v.energy_import_kwh = r->value[DRV_Q_ENERGY_IMPORT_KWH];
    if (has(r, DRV_Q_ENERGY_EXPORT_KWH))
        v.energy_export_kwh = r->value[DRV_Q_ENERGY_EXPORT_KWH];
    if (has(r, DRV_Q_POWER_W))
        v.power_w = r->value[DRV_Q_POWER_W];
    if (has(r, DRV_Q_VOLUME_M3))
        v.volume_m3 = r->value[DRV_Q_VOLUME_M3];
    if (has(r, DRV_Q_FLOW_M3H))
        v.flow_m3h = r->value[DRV_Q_FLOW_M3H];
    return v;
}

/* "YYYY-MM-DD" of ts in the site's time zone. */
static void local_day(const struct gw_core *core, int64_t ts_ms, char out[16])
{
    est_tz_local_day(core->config->gateway.timezone, ts_ms, out);
}

/* The site's UTC offset at ts_ms, looked up once per minute (offsets
 * change on whole minutes). */
static int site_offset_min(struct gw_core *core, int64_t ts_ms)
{
    int64_t minute = ts_ms >= 0 ? ts_ms / 60000 : (ts_ms - 59999) / 60000;
    if (!core->site_offset_known || minute != core->site_minute) {
        core->site_offset_min = est_tz_offset_min(core->config->gateway.timezone, ts_ms);
        core->site_minute = minute;
        core->site_offset_known = true;
    }
    return core->site_offset_min;
}

/* One meter reading of a batch, as the stages hand it on. */
struct batch_reading {
    const struct gw_sample *sample;
    struct rule_meter_sample rule;  /* the reading as the rules take it */
    char *values_json;              /* NULL: could not be printed (not stored, not sent) */
    char *payload;
    size_t payload_len;
    bool printed_apart;             /* values_json and payload are malloc'd (too large
                                     * for a slot of the batch's text) */
};

/* Room in the batch's text for one reading: its values and its payload. */
#define BATCH_TEXT_PER_READING (GW_PAYLOAD_VALUES_MAX + GW_PAYLOAD_READING_MAX)

/* The samples taken off the queue at once and what the stages make of them.
 * Allocated once (gw_core_run): the text holds every reading's printed
 * values and payload one after the other, so no reading allocates and only
 * the part a batch uses becomes resident. */
struct batch {
    struct gw_sample *items;
    size_t nitems;
    struct batch_reading *readings; /* the meter samples among the items, in order */
    size_t nreadings;
    struct gw_store_reading *rows;  /* the printed readings, for the store */
    size_t nrows;
    char *text;
    size_t text_used;
};

static double value_or_nan(const struct drv_reading *r, enum drv_quantity q)
{
    return has(r, q) ? r->value[q] : NAN;
}

static void remember_counters(struct gw_last_counters *c, const struct drv_reading *r)
{
    c->energy_import_kwh = value_or_nan(r, DRV_Q_ENERGY_IMPORT_KWH);
    c->energy_export_kwh = value_or_nan(r, DRV_Q_ENERGY_EXPORT_KWH);
    c->energy_total_kwh = value_or_nan(r, DRV_Q_ENERGY_TOTAL_KWH);
    c->volume_m3 = value_or_nan(r, DRV_Q_VOLUME_M3);
    c->reverse_volume_m3 = value_or_nan(r, DRV_Q_REVERSE_VOLUME_M3);
}

/* Prints a reading's values object and its payload once, for the store and
 * MQTT alike: into the batch's text, or (values too large for a slot, never
 * for the shipped models) into allocated strings. */
static void print_reading(const struct gw_core *core, struct batch *b, struct batch_reading *r)
{
    const struct gw_sample *s = r->sample;
    char *values = b->text + b->text_used;
    size_t vlen = gw_payload_values_json(&s->reading, values, GW_PAYLOAD_VALUES_MAX);
    char *payload = values + vlen + 1;
    size_t plen = vlen > 0 ? gw_payload_reading_into(core->config, s, values, vlen, payload,
                                                     GW_PAYLOAD_READING_MAX)
                           : 0;
    if (plen > 0) {
        b->text_used += vlen + 1 + plen + 1;
        r->values_json = values;
        r->payload = payload;
        r->payload_len = plen;
        return;
    }
    char *slow_payload = gw_payload_reading(core->config, s);
    cJSON *vo = gw_payload_values(&s->reading);
    char *vtext = vo != NULL ? gw_json_finish(vo) : NULL;
    if (slow_payload == NULL || vtext == NULL) {
        free(slow_payload);
        free(vtext);
        return;
    }
    r->values_json = vtext;
    r->payload = slow_payload;
    r->payload_len = strlen(slow_payload);
    r->printed_apart = true;
}

/* Decode stage: turns each meter sample into what the later stages take,
 * the rule sample and the printed values and payload. Touches no state. */
static void stage_decode(const struct gw_core *core, struct batch *b)
{
    b->nreadings = 0;
    b->text_used = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        const struct gw_sample *s = &b->items[i];
        if (s->item == GW_ITEM_VALVE_RESULT || s->device_type != GW_DEVICE_METER)
            continue;
        struct batch_reading *r = &b->readings[b->nreadings++];
        *r = (struct batch_reading){.sample = s};
        to_rule_sample(s, core->meters[s->index].float32_quantities, &r->rule);
        r->rule.ts_ms = engine_time_of(core, s);
        print_reading(core, b, r);
    }
}

/* Runs the rules on one meter reading and keeps what the core remembers of
 * the meter (the last good counters after the rules, which compare the new
 * reading against the old ones). */
static void judge_meter_reading(struct gw_core *core, const struct batch_reading *r)
{
    const struct gw_sample *s = r->sample;
    struct gw_meter_state *st = &core->meters[s->index];
    st->last_poll_ms = s->ts_ms;
    st->last_quality = s->quality;
    int offset = site_offset_min(core, s->ts_ms);
    if (offset != core->rules_offset_min && rule_engine_set_utc_offset(core->rules, offset) == EST_OK)
        core->rules_offset_min = offset; /* a daylight-saving change */
    core->feeding = s;
    rule_engine_feed_meter(core->rules, &r->rule);
    core->feeding = NULL;
    if (s->quality != GW_QUALITY_ERROR) {
        st->last_good_ms = s->ts_ms;
        remember_counters(&st->last_counters, &s->reading);
        st->has_last = true;
    }
}

/* The day's snapshot: one store call per meter per local day (the store
 * ignores repeats, but asking on every reading costs a statement per
 * reading). */
static void snapshot_if_new_day(struct gw_core *core, const struct gw_sample *s)
{
    struct gw_meter_state *st = &core->meters[s->index];
    int64_t local_ms = s->ts_ms + (int64_t)site_offset_min(core, s->ts_ms) * 60000;
    int64_t day_no = (local_ms >= 0 ? local_ms : local_ms - 86399999) / 86400000 + 1;
    if (st->snapshot_day == day_no)
        return;
    char day[16];
    local_day(core, s->ts_ms, day);
    struct gw_store_values v = store_values(&s->reading);
    if (gw_store_snapshot_if_needed(core->store, st->store_rowid, day, s->ts_ms, &v, NULL) == EST_OK)
        st->snapshot_day = day_no;
}

static void handle_panel_sample(struct gw_core *core, const struct gw_sample *s)
{
    struct gw_panel_state *st = &core->panels[s->index];
    st->last_poll_ms = s->ts_ms;
    struct rule_panel_sample ps = {
        .panel = s->index, .ts_ms = engine_time_of(core, s), .ok = s->quality != GW_QUALITY_ERROR,
        .nzones = s->reading.nzones, .zones = s->reading.zones,
        /* The driver's panel_fault summarises the zones ("any zone in fault"); the
         * zones raise their own incidents, so it must not raise a second one. */
        .panel_fault = false,
    };
    rule_engine_feed_panel(core->rules, &ps);
    bool changed = !st->published || st->last_quality != s->quality ||
                   (s->quality != GW_QUALITY_ERROR &&
                    memcmp(st->zones, s->reading.zones, s->reading.nzones) != 0);
    st->last_quality = s->quality;
    if (!changed)
        return;
    if (s->quality != GW_QUALITY_ERROR)
        memcpy(st->zones, s->reading.zones, s->reading.nzones);
    st->published = true;
    char *payload = gw_payload_panel_state(core->config, s);
    if (payload == NULL)
        return;
    size_t len = strlen(core->config->panels[s->index].id) + sizeof "panels//state";
    char *suffix = malloc(len);
    if (suffix != NULL) {
        snprintf(suffix, len, "panels/%s/state", core->config->panels[s->index].id);
        gw_core_publish_event(core, suffix, payload, true);
        free(suffix);
    }
    free(payload);
}

/* Rules stage: every sample in the order it was polled. The events the rules
 * raise (and panel states) go to the outbox in the batch's transaction. */
static void stage_rules(struct gw_core *core, struct batch *b)
{
    size_t next_reading = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        const struct gw_sample *s = &b->items[i];
        if (s->item == GW_ITEM_VALVE_RESULT)
            gw_incidents_on_valve_result(core, s);
        else if (s->device_type == GW_DEVICE_METER)
            judge_meter_reading(core, &b->readings[next_reading++]);
        else
            handle_panel_sample(core, s);
    }
}

/* Degraded mode: the disk refused the batch, so readings are published
 * without being stored until a probe finds it writable again. */
static void enter_degraded_mode(struct gw_core *core)
{
    /* The batch was rolled back, snapshots taken in it too: ask again. */
    for (size_t i = 0; i < core->config->nmeters; i++)
        core->meters[i].snapshot_day = 0;
    core->store_degraded = true;
    core->next_store_probe_ms = est_mono_ms() + STORE_PROBE_MS;
    gw_error("store: writes failing (%s): publishing without storing until the disk recovers",
             gw_store_errmsg(core->store));
    if (core->storage_failing_since_ms == 0) {
        core->storage_failing_since_ms = gw_core_now_ms(core);
        snprintf(core->storage_failure, sizeof core->storage_failure, "%s",
                 gw_store_errmsg(core->store));
        char text[512];
        snprintf(text, sizeof text,
                 "storage failing (%.200s): readings are not stored, actions are refused, "
                 "events are held in memory until the disk recovers",
                 core->storage_failure);
        raise_gateway_incident(core, "storage_failing", text);
    }
}

/* Store stage: the printed readings and the day's snapshots, then the
 * commit of the batch's transaction (with the rules' events). A failure
 * rolls all of it back and puts the core in degraded mode. */
static void stage_store(struct gw_core *core, struct batch *b, bool in_txn)
{
    if (core->store_degraded) {
        settle_staged(core, false);
        return;
    }
    b->nrows = 0;
    for (size_t i = 0; i < b->nreadings; i++) {
        const struct batch_reading *r = &b->readings[i];
        if (r->values_json == NULL)
            continue;
        const struct gw_sample *s = r->sample;
        if (s->quality == GW_QUALITY_GOOD)
            snapshot_if_new_day(core, s);
        b->rows[b->nrows++] = (struct gw_store_reading){
            .meter_rid = core->meters[s->index].store_rowid, .ts_ms = s->ts_ms,
            .quality = (enum gw_store_quality)s->quality, .reading = &s->reading,
            .values_json = r->values_json,
        };
    }
    est_err err = b->nrows > 0 ? gw_store_add_readings(core->store, b->rows, b->nrows) : EST_OK;
    if (in_txn) {
        if (err == EST_OK)
            err = gw_store_commit(core->store);
        else
            gw_store_rollback(core->store);
    }
    if (err == EST_OK)
        core->readings_stored += b->nrows;
    else
        enter_degraded_mode(core);
    settle_staged(core, err == EST_OK && in_txn);
}

/* Readings sent at QoS 0 (or untagged QoS 1) stay in memory until a later
 * PUBACK proves they reached the broker; if the session ends first (a
 * silent link, a broker gone), they go back to the outbox ahead of newer
 * ones, so a link that stops forwarding loses none of them. */
static void keep_unproven(struct gw_core *core, const char *topic, const struct batch_reading *r,
                          uint64_t generation)
{
    if (core->unproven == NULL)
        return;
    if (gw_unproven_count(core->unproven) == 0)
        core->unproven_generation = generation;
    gw_unproven_add(core->unproven, topic, r->payload, r->payload_len,
                    gw_mqtt_queued_end(core->mqtt));
}

static void requeue_unproven_one(void *ctx, const char *topic, const void *payload, size_t len)
{
    struct gw_core *core = ctx;
    struct gw_store_outbox_msg msg = {
        .topic = topic, .payload = payload, .payload_len = len,
        .qos = core->config->mqtt.qos_readings, .retain = false, .is_event = false,
        .created_ms = gw_core_now_ms(core),
    };
    if (gw_store_outbox_add(core->store, &msg, NULL) == EST_OK)
        core->outbox_has_readings = true;
}

/* Forgets the readings proven delivered; when their session is over, puts
 * the others in the outbox (in one transaction; none must be open). */
static void settle_unproven(struct gw_core *core)
{
    if (core->unproven == NULL || gw_unproven_count(core->unproven) == 0)
        return;
    /* A proof counts only in the session the readings were sent in: the
     * first PUBACK of a new one would also "prove" what the old one lost.
     * Read before the generation: a new session's PUBACKs come after its
     * generation is counted. */
    uint64_t proven = gw_mqtt_proven_upto(core->mqtt);
    bool same_session = gw_mqtt_generation(core->mqtt) == core->unproven_generation;
    if (same_session)
        gw_unproven_forget_upto(core->unproven, proven);
    size_t left = gw_unproven_count(core->unproven);
    if (left == 0 || (same_session && gw_mqtt_connected(core->mqtt)))
        return;
    bool in_txn = gw_store_begin(core->store) == EST_OK;
    gw_unproven_take_all(core->unproven, requeue_unproven_one, core);
    if (in_txn && gw_store_commit(core->store) != EST_OK)
        gw_error("store: cannot queue unconfirmed readings in the outbox: %s",
                 gw_store_errmsg(core->store));
    gw_info("outbox: %zu readings sent before the connection ended were not confirmed; queued "
            "again", left);
}

/* A reading goes straight to the broker when it is up and nothing older
 * waits (waiting a little for room in the publisher's ring). */
static bool send_reading(struct gw_core *core, const char *topic, const struct batch_reading *r)
{
    if (core->outbox_has_readings || !gw_mqtt_connected(core->mqtt))
        return false;
    uint64_t generation = gw_mqtt_generation(core->mqtt);
    if (gw_mqtt_publish_wait(core->mqtt, topic, r->payload, r->payload_len,
                             core->config->mqtt.qos_readings, false, 0, RING_WAIT_MS) != EST_OK)
        return false;
    core->readings_published++;
    keep_unproven(core, topic, r, generation);
    return true;
}

/* Otherwise it goes to the outbox (bounded by the outbox limit). Once one
 * reading went there, the later ones follow it without trying the broker,
 * until drain_outbox has caught up. */
static void queue_reading(struct gw_core *core, const char *topic, const struct batch_reading *r)
{
    struct gw_store_outbox_msg msg = {
        .topic = topic, .payload = r->payload, .payload_len = r->payload_len,
        .qos = core->config->mqtt.qos_readings, .retain = false, .is_event = false,
        .created_ms = gw_core_now_ms(core),
    };
    if (gw_store_outbox_add(core->store, &msg, NULL) == EST_OK)
        core->outbox_has_readings = true;
}

/* Publish stage, after the commit: a reading leaves only once it is stored
 * (or the store is degraded). The readings that go to the outbox share one
 * transaction, opened at the first of them so that no write lock is held
 * while a reading waits for room in the ring. If the daemon dies before
 * this stage, its readings are stored but never sent: readings are QoS 0,
 * and the events went to the outbox with the commit. */
static void stage_publish(struct gw_core *core, const struct batch *b)
{
    bool in_txn = false;
    for (size_t i = 0; i < b->nreadings; i++) {
        const struct batch_reading *r = &b->readings[i];
        if (r->values_json == NULL)
            continue;
        char topic[GW_MQTT_TOPIC_MAX];
        int tlen = snprintf(topic, sizeof topic, "%s/meters/%s/reading", core->prefix,
                            core->config->meters[r->sample->index].id);
        if (tlen <= 0 || (size_t)tlen >= sizeof topic || send_reading(core, topic, r) ||
            core->store_degraded)
            continue;
        if (!in_txn) {
            settle_unproven(core); /* older unconfirmed readings go first */
            in_txn = gw_store_begin(core->store) == EST_OK;
        }
        queue_reading(core, topic, r);
    }
    if (in_txn && gw_store_commit(core->store) != EST_OK)
        gw_error("store: cannot queue readings in the outbox: %s", gw_store_errmsg(core->store));
}

static void release_batch(struct batch *b)
{
    for (size_t i = 0; i < b->nreadings; i++) {
        struct batch_reading *r = &b->readings[i];
        if (r->printed_apart) {
            free(r->values_json);
            free(r->payload);
        }
    }
    b->nreadings = 0;
}

static bool batch_alloc(struct batch *b)
{
    *b = (struct batch){
        .items = malloc(SAMPLE_BATCH * sizeof *b->items),
        .readings = malloc(SAMPLE_BATCH * sizeof *b->readings),
        .rows = malloc(SAMPLE_BATCH * sizeof *b->rows),
        .text = malloc(SAMPLE_BATCH * BATCH_TEXT_PER_READING),
    };
    return b->items != NULL && b->readings != NULL && b->rows != NULL && b->text != NULL;
}

static void batch_free(struct batch *b)
{
    free(b->items);
    free(b->readings);
    free(b->rows);
    free(b->text);
}

/* The data path over one batch: decode -> rules -> store (commit) ->
 * publish. */
static void handle_batch(struct gw_core *core, struct batch *b)
{
    core->samples_handled += b->nitems;
    stage_decode(core, b);
    bool in_txn = !core->store_degraded && gw_store_begin(core->store) == EST_OK;
    stage_rules(core, b);
    stage_store(core, b, in_txn);
    stage_publish(core, b);
    release_batch(b);
}

/* ---------------------------------------------------------------- */
/* Outbox drain                                                      */
/* ---------------------------------------------------------------- */

struct drain_ctx {
    struct gw_core *core;
    size_t sent;
    bool stop;                 /* Paho refused: try again next time */
    bool window_full;          /* OUTBOX_WINDOW messages in flight */
    int64_t handed[OUTBOX_PEEK]; /* QoS 0 rows handed over: delete them */
    size_t nhanded;
};

/* A QoS 0 reading queued while the current connection was up: it went to
 * the outbox because the broker fell behind, not because it was away. */
static bool queued_while_connected(const struct gw_core *core, const struct gw_store_outbox_msg *msg)
{
    return !msg->is_event && msg->qos == 0 && msg->created_ms >= core->connected_since_ms;
}

/* Hands one queued row to Paho. A row that waited through an outage goes at
 * QoS 1 at least, whatever QoS it was queued with (a QoS 0 reading that
 * waited through an outage is worth an acknowledgement), and stays in the
 * outbox until the broker acknowledges it: at-least-once, oldest first. A
 * QoS 0 reading queued while connected goes as it would have gone directly,
 * at QoS 0 without the in-flight window, and leaves the outbox once handed
 * over: so the outbox drains as fast as the broker takes messages and
 * catches up with a high reading rate. */
static bool drain_one(void *ctx, const struct gw_store_outbox_msg *msg)
{
    struct drain_ctx *d = ctx;
    struct gw_core *core = d->core;
    bool as_qos0 = queued_while_connected(core, msg);
    if (!as_qos0 && gw_mqtt_inflight(core->mqtt) >= OUTBOX_WINDOW) {
        d->window_full = true;
        return false;
    }
    int qos = as_qos0 ? 0 : msg->qos > 0 ? msg->qos : 1;
    est_err err = gw_mqtt_publish(core->mqtt, msg->topic, msg->payload, msg->payload_len, qos,
                                  msg->retain, as_qos0 ? 0 : (uint64_t)msg->seq);
    if (err != EST_OK) {
        d->stop = true;
        return false;
    }
    if (as_qos0)
        d->handed[d->nhanded++] = msg->seq;
    core->outbox_sent_upto = (uint64_t)msg->seq;
    core->outbox_published++;
    d->sent++;
    return true;
}

static void delete_handed(struct gw_core *core, const struct drain_ctx *d)
{
    if (d->nhanded == 0)
        return;
    gw_store_begin(core->store);
    for (size_t i = 0; i < d->nhanded; i++)
        gw_store_outbox_delete(core->store, d->handed[i]);
    gw_store_commit(core->store);
}

/* Tells what was dropped during the outage that just ended, once. */
static void report_outage_drops(struct gw_core *core)
{
    if (core->readings_dropped_outage == 0)
        return;
    gw_warn("outbox: %llu readings were dropped while the broker was unreachable (outbox limit "
            "%g MB; %llu since start)",
            (unsigned long long)core->readings_dropped_outage, core->config->mqtt.outbox_limit_mb,
            (unsigned long long)core->readings_dropped);
    core->readings_dropped_outage = 0;
    gw_log_limiter_ok(&core->drop_log);
}

static void drain_outbox(struct gw_core *core)
{
    if (core->store_degraded)
        return;
    uint64_t acked[256];
    size_t nacked;
    bool any_deleted = false;
    while ((nacked = gw_mqtt_take_acked(core->mqtt, acked, 256)) > 0) {
        if (!any_deleted)
            gw_store_begin(core->store);
        any_deleted = true;
        for (size_t i = 0; i < nacked; i++)
            gw_store_outbox_delete(core->store, (int64_t)acked[i]);
    }
    if (any_deleted)
        gw_store_commit(core->store);
    if (!gw_mqtt_connected(core->mqtt))
        return;
    uint64_t generation = gw_mqtt_generation(core->mqtt);
    if (generation != core->outbox_generation) {
        /* New connection: whatever was in flight may be lost; resend from
         * the oldest row still queued (at-least-once). */
        core->outbox_generation = generation;
        core->outbox_sent_upto = 0;
        core->connected_since_ms = gw_core_now_ms(core);
        report_outage_drops(core);
    }
    bool caught_up = false;
    for (int round = 0; round < 20; round++) {
        struct drain_ctx d = {.core = core};
        est_err err = gw_store_outbox_peek(core->store, (int64_t)core->outbox_sent_upto,
                                           OUTBOX_PEEK, drain_one, &d);
        delete_handed(core, &d);
        if (err != EST_OK || d.stop || d.window_full)
            break;
        if (d.sent < OUTBOX_PEEK) {
            caught_up = true; /* the peek ran out of rows: all handed to Paho */
            break;
        }
    }
    /* New readings may go out directly again once every queued one has
     * been handed to Paho on this connection: Paho sends in order on one
     * socket, so a meter's readings stay in order without waiting for the
     * last acknowledgements (waiting for an empty outbox can last forever
     * at a high reading rate: each batch's rows are still unacknowledged
     * when the next batch comes). The rows stay queued until acknowledged
     * and are resent after a reconnection. */
    if (core->outbox_has_readings && caught_up)
        core->outbox_has_readings = false;
}

/* The retained P/status payload while online: the standard fields plus
 * "readings_dropped" (readings the outbox limit dropped since start) once
 * there are any. */
static char *online_payload(struct gw_core *core)
{
    char *base = gw_payload_status_health(true, gw_core_now_ms(core), gw_core_health_word(core));
    if (base == NULL || core->readings_dropped == 0)
        return base;
    cJSON *o = cJSON_Parse(base);
    if (o == NULL)
        return base;
    free(base);
    cJSON_AddNumberToObject(o, "readings_dropped", (double)core->readings_dropped);
    return gw_json_finish(o);
}

static void update_online_payload(struct gw_core *core)
{
    char *online = online_payload(core);
    if (online != NULL) {
        gw_mqtt_set_online_payload(core->mqtt, online);
        free(online);
    }
}

/* The health in P/status changed: the broker gets the new payload now
 * (retained), and every later connection too. */
static void publish_online_payload(struct gw_core *core)
{
    char *online = online_payload(core);
    char *topic = topic_for(core, "status");
    if (online != NULL && topic != NULL) {
        gw_mqtt_set_online_payload(core->mqtt, online);
        if (gw_mqtt_connected(core->mqtt))
            gw_mqtt_publish(core->mqtt, topic, online, strlen(online), 1, true, 0);
    }
    free(online);
    free(topic);
}

/* While the broker is away: keeps the queued readings under the outbox
 * limit, oldest dropped first (events are never dropped), logs it once and
 * then at growing intervals, and puts the count in the next status. */
static void trim_outbox(struct gw_core *core)
{
    uint64_t limit = (uint64_t)(core->config->mqtt.outbox_limit_mb * 1024.0 * 1024.0);
    uint64_t dropped = 0;
    if (gw_store_outbox_trim_readings(core->store, limit, &dropped) == EST_OK && dropped > 0) {
        core->readings_dropped += dropped;
        core->readings_dropped_outage += dropped;
        if (gw_log_limiter_fail(&core->drop_log))
            gw_warn("outbox: broker unreachable and the readings outbox is over %g MB: dropped the "
                    "%llu oldest readings (%llu this outage, %llu since start); events are kept",
                    core->config->mqtt.outbox_limit_mb, (unsigned long long)dropped,
                    (unsigned long long)core->readings_dropped_outage,
                    (unsigned long long)core->readings_dropped);
        update_online_payload(core);
    }
}

/* ---------------------------------------------------------------- */
/* Commands                                                          */
/* ---------------------------------------------------------------- */

/* Ends a command's transaction. The command's result stands only if what it
 * did was stored: when a write failed for want of space (or the commit
 * did), everything is rolled back and the result becomes a refusal saying
 * so, marked "unavailable" (the console answers 503). */
static void finish_command_txn(struct gw_core *core, bool in_txn, uint64_t failures_before,
                               cJSON **result)
{
    bool write_failed = gw_store_write_failures(core->store) != failures_before;
    bool stored = in_txn && !write_failed && gw_store_commit(core->store) == EST_OK;
    if (in_txn && !stored)
        gw_store_rollback(core->store);
    if (stored) {
        settle_staged(core, true);
        apply_pending_occupancy(core, true);
        return;
    }
    settle_staged(core, false);
    apply_pending_occupancy(core, false);
    if (!in_txn && !write_failed && !core->store_degraded)
        return; /* nothing to commit (the store refused to begin for another reason) */
    char why[300];
    snprintf(why, sizeof why, "%s", gw_store_errmsg(core->store));
    const cJSON *request_id = *result ? cJSON_GetObjectItemCaseSensitive(*result, "request_id") : NULL;
    cJSON *args = cJSON_CreateObject();
    if (args != NULL && cJSON_IsString(request_id))
        cJSON_AddStringToObject(args, "request_id", request_id->valuestring);
    cJSON *refused = gw_command_error(args, "not done: the gateway cannot store it (storage failing%s%s); "
                                            "try again later",
                                      why[0] ? ": " : "", why);
    cJSON_Delete(args);
    if (refused != NULL) {
        cJSON_AddTrueToObject(refused, "unavailable");
        cJSON_Delete(*result);
        *result = refused;
    }
    if (!core->store_degraded && (write_failed || in_txn))
        enter_degraded_mode(core);
}

/* An MQTT command only names its user: mqtt.command_roles caps the roles
 * it may claim (every role when unset). */
static bool mqtt_role_allowed(const struct gw_core *core, const char *role)
{
    const char *list = core->config->mqtt.command_roles;
    if (list == NULL)
        return true;
    size_t want = strlen(role);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ", ");
        if (len == want && strncmp(p, role, len) == 0)
            return true;
        p += len;
        p += strspn(p, ", ");
    }
    return false;
}

/* Where a command came: P/cmd/<verb>, or P/cmd/by/<account>/<verb> from a
 * broker account (mqtt.commands_by_account). */
struct command_topic {
    const char *verb;
    char account[GW_COMMAND_ACCOUNT_MAX + 1]; /* "" on P/cmd/<verb> */
};

static void publish_command_result(struct gw_core *core, const struct command_topic *ct,
                                   cJSON *result)
{
    char *json = gw_json_finish(result);
    if (json == NULL)
        return;
    char *suffix = ct->account[0] != '\0'
                       ? est_asprintf("cmd/by/%s/%s/result", ct->account, ct->verb)
                       : est_asprintf("cmd/%s/result", ct->verb);
    if (suffix != NULL)
        gw_core_publish_event(core, suffix, json, false);
    free(suffix);
    free(json);
}

/* Parses P/cmd/<verb> and P/cmd/by/<account>/<verb>; false when the topic
 * is neither. */
static bool parse_command_topic(const struct gw_core *core, const char *topic,
                                struct command_topic *out)
{
    size_t plen = strlen(core->prefix);
    if (strncmp(topic, core->prefix, plen) != 0 || strncmp(topic + plen, "/cmd/", 5) != 0)
        return false;
    const char *rest = topic + plen + 5;
    out->account[0] = '\0';
    if (strncmp(rest, "by/", 3) == 0) {
        const char *account = rest + 3;
        size_t len = strcspn(account, "/");
        if (len == 0 || len > GW_COMMAND_ACCOUNT_MAX || account[len] != '/')
            return false;
        memcpy(out->account, account, len);
        out->account[len] = '\0';
        rest = account + len + 1;
    }
    if (*rest == '\0' || strchr(rest, '/') != NULL)
        return false;
    out->verb = rest;
    return true;
}

/* Who an MQTT command acts as: with mqtt.commands_by_account the broker
 * account of its topic (the broker's ACL proves it), else the user its
 * payload names. NULL with *actor filled, or the refusal. */
static cJSON *mqtt_command_actor(struct gw_core *core, const struct command_topic *ct,
                                 const cJSON *args, struct gw_actor *actor)
{
    const char *user = gw_command_string(args, "user", 63);
    *actor = (struct gw_actor){.user = user ? user : "", .role = NULL, .origin = "mqtt"};
    if (core->config->mqtt.commands_by_account) {
        if (ct->account[0] == '\0')
            return gw_command_error(args, "commands are taken only on %s/cmd/by/<broker account>/%s "
                                    "(mqtt.commands_by_account)", core->prefix, ct->verb);
        if (user != NULL && strcmp(user, ct->account) != 0)
            return gw_command_error(args, "broker account %s acts as gateway user %s, not as %s",
                                    ct->account, ct->account, user);
        actor->user = ct->account;
    }
    actor->role = gw_commands_user_role(core->office, actor->user);
    if (actor->role != NULL && !mqtt_role_allowed(core, actor->role))
        return gw_command_error(args, "role %s may not send commands over MQTT "
                                "(mqtt.command_roles)", actor->role);
    return NULL;
}

/* A retained command would run again at every reconnect of the gateway:
 * it is refused and cleared (an empty retained message on its topic). The
 * broker strips the flag when it delivers a message to a client already
 * subscribed, so a retained command sent while the gateway is connected
 * runs once and is refused and cleared at the next connection. */
static cJSON *refuse_retained(struct gw_core *core, const struct gw_mqtt_inbound *in,
                              const cJSON *args)
{
    bool cleared = gw_mqtt_publish(core->mqtt, in->topic, "", 0, 1, true, 0) == EST_OK;
    gw_warn("mqtt: retained command on %s refused%s", in->topic,
            cleared ? " and cleared" : " (not cleared: not connected)");
    return gw_command_error(args, "retained commands are not run: publish commands without the "
                            "retain flag%s", cleared ? " (the retained one was cleared)" : "");
}

/* Runs the command, or answers a request_id seen within
 * COMMAND_ID_WINDOW_MS with the result it had then (nothing runs again).
 * Successful results are remembered; a refused command may be retried. */
static cJSON *run_once(struct gw_core *core, const char *verb, const cJSON *args,
                       const struct gw_actor *actor)
{
    const char *request_id = gw_command_string(args, "request_id", 64);
    int64_t now = gw_core_now_ms(core);
    char *earlier = NULL;
    if (request_id != NULL)
        gw_store_command_id_result(core->store, actor->user, verb, request_id,
                                   now - COMMAND_ID_WINDOW_MS, &earlier);
    cJSON *result = earlier != NULL ? cJSON_Parse(earlier) : NULL;
    free(earlier);
    if (result != NULL) {
        gw_info("mqtt: %s request %s from %s already ran: answered with its result", verb,
                request_id, actor->user);
        return result;
    }
    result = gw_commands_handle(core->office, verb, args, actor);
    if (request_id == NULL || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok")))
        return result;
    char *text = cJSON_PrintUnformatted(result);
    if (text != NULL &&
        gw_store_command_id_put(core->store, actor->user, verb, request_id, text, now) == EST_OK)
        gw_store_command_id_prune(core->store, now - COMMAND_ID_WINDOW_MS, COMMAND_ID_KEEP);
    free(text);
    return result;
}

static void handle_mqtt_command(struct gw_core *core, const struct gw_mqtt_inbound *in)
{
    struct command_topic ct;
    if (!parse_command_topic(core, in->topic, &ct))
        return;
    if (ct.account[0] != '\0' && !core->config->mqtt.commands_by_account)
        return; /* not subscribed: nothing proves who sent it */
    const char *verb = ct.verb;
    if (strlen(verb) > 32) {
        gw_warn("mqtt: command topic %s: unknown verb", in->topic);
        return;
    }
    if (!in->too_large && in->length == 0)
        return; /* a retained command being cleared: nothing to run or answer */
    uint64_t failures = gw_store_write_failures(core->store);
    bool in_txn = gw_store_begin(core->store) == EST_OK;
    cJSON *result;
    cJSON *args = in->too_large ? NULL : cJSON_ParseWithLength(in->payload, in->length);
    if (in->too_large) {
        result = gw_command_error(NULL, "payload larger than %d bytes", GW_MQTT_COMMAND_MAX);
    } else if (in->retained) {
        result = refuse_retained(core, in, cJSON_IsObject(args) ? args : NULL);
    } else if (args == NULL || !cJSON_IsObject(args)) {
        result = gw_command_error(NULL, "payload is not a JSON object");
    } else {
        struct gw_actor actor;
        result = mqtt_command_actor(core, &ct, args, &actor);
        if (result == NULL)
            result = run_once(core, verb, args, &actor);
    }
    finish_command_txn(core, in_txn, failures, &result);
    if (result != NULL) {
        cJSON *ok = cJSON_GetObjectItemCaseSensitive(result, "ok");
        cJSON *error = cJSON_GetObjectItemCaseSensitive(result, "error");
        bool limited = cJSON_IsString(error) && strncmp(error->valuestring, "rate limited", 12) == 0;
        if (!cJSON_IsTrue(ok) && !limited) { /* the limiter logs refusals itself, sparingly */
            gw_warn("mqtt: command on %s refused: %s", in->topic,
                    cJSON_IsString(error) ? error->valuestring : "?");
        }
        publish_command_result(core, &ct, result);
    }
    cJSON_Delete(args);
}

struct ctl_ctx {
    struct gw_core *core;
};

/* estate-ctl reload: the config is loaded off this thread (the daemon's
 * reload thread); the request is answered when its result comes back. */
static cJSON *take_reload_request(struct gw_core *core, const struct gw_store_ctl_request *req,
                                  bool *answer_later)
{
    for (size_t i = 0; i < core->nreload_waiting; i++)
        if (core->reload_waiting[i] == req->id) {
            *answer_later = true;
            return NULL;
        }
    if (core->on_reload_wanted == NULL)
        return gw_command_error(NULL, "this gateway cannot reload its configuration");
    if (core->nreload_waiting == GW_CORE_RELOAD_WAITERS)
        return gw_command_error(NULL, "too many reload requests are waiting");
    core->reload_waiting[core->nreload_waiting++] = req->id;
    core->on_reload_wanted(core->on_reload_ctx);
    *answer_later = true;
    return NULL;
}

static bool handle_ctl_request(void *ctx, const struct gw_store_ctl_request *req)
{
    struct gw_core *core = ((struct ctl_ctx *)ctx)->core;
    bool expired = gw_core_now_ms(core) - req->created_ms > CTL_REQUEST_EXPIRY_MS;
    bool answer_later = false;
    cJSON *result = NULL;
    if (!expired && strcmp(req->verb, "reload") == 0) {
        result = take_reload_request(core, req, &answer_later);
        if (answer_later)
            return true;
    }
    for (size_t i = 0; expired && i < core->nreload_waiting; i++)
        if (core->reload_waiting[i] == req->id) /* never answered: not waited for any more */
            core->reload_waiting[i] = core->reload_waiting[--core->nreload_waiting];
    cJSON *args = req->args_json ? cJSON_Parse(req->args_json) : cJSON_CreateObject();
    if (result != NULL) {
        /* refused before any loading */
    } else if (expired) {
        /* Queued while the gateway was down: estate-ctl has given up on it. */
        result = gw_command_error(args, "request expired before the gateway could run it");
    } else if (args == NULL || !cJSON_IsObject(args)) {
        result = gw_command_error(NULL, "arguments are not a JSON object");
    } else {
        struct gw_actor actor;
        char name[128];
        result = gw_commands_ctl_actor(core->office, args, &actor, name, sizeof name);
        if (result == NULL)
            result = gw_commands_handle(core->office, req->verb, args, &actor);
    }
    cJSON_Delete(args);
    char *json = gw_json_finish(result);
    gw_store_ctl_finish(core->store, req->id, json ? json : "{\"ok\":false}", gw_core_now_ms(core));
    free(json);
    return true;
}

static void handle_ctl_requests(struct gw_core *core)
{
    struct ctl_ctx ctx = {core};
    if (gw_store_begin(core->store) != EST_OK)
        return;
    gw_store_ctl_take_pending(core->store, handle_ctl_request, &ctx);
    bool committed = gw_store_commit(core->store) == EST_OK;
    settle_staged(core, committed);
    apply_pending_occupancy(core, committed);
}

static void finish_call(struct gw_core_call *call, char *result)
{
    pthread_mutex_lock(&call->lock);
    call->result = result;
    call->done = true;
    bool abandoned = call->abandoned;
    pthread_cond_signal(&call->done_cond);
    pthread_mutex_unlock(&call->lock);
    if (abandoned)
        free_call(call);
}

static char *handle_reload_call(struct gw_core *core, struct gw_core_call *call);

static void handle_calls(struct gw_core *core)
{
    struct gw_core_call *calls[16];
    size_t n = gw_queue_pop_many(core->calls, calls, 16, 0);
    for (size_t i = 0; i < n; i++) {
        struct gw_core_call *call = calls[i];
        if (call->reload) {
            finish_call(call, handle_reload_call(core, call));
            continue;
        }
        if (call->fn != NULL) {
            finish_call(call, call->fn(core));
            continue;
        }
        cJSON *args = cJSON_Parse(call->args_json);
        struct gw_actor actor = {.user = call->user, .role = call->role, .origin = "http"};
        uint64_t failures = gw_store_write_failures(core->store);
        bool in_txn = gw_store_begin(core->store) == EST_OK;
        cJSON *result = args && cJSON_IsObject(args)
                            ? gw_commands_handle(core->office, call->verb, args, &actor)
                            : gw_command_error(NULL, "arguments are not a JSON object");
        finish_command_txn(core, in_txn, failures, &result);
        cJSON_Delete(args);
        finish_call(call, gw_json_finish(result));
    }
}

/* Queues call for the core thread and waits up to timeout_ms for its
 * result; frees call unless the core still holds it. */
static char *submit_call(struct gw_core *core, struct gw_core_call *call, int timeout_ms)
{
    pthread_mutex_init(&call->lock, NULL);
    pthread_cond_init(&call->done_cond, NULL);
    if (gw_queue_push(core->calls, &call, timeout_ms) != EST_OK) {
        free_call(call);
        return NULL;
    }
    int64_t deadline = est_mono_ms() + timeout_ms;
    pthread_mutex_lock(&call->lock);
    while (!call->done && est_mono_ms() < deadline && !atomic_load(&core->stopping)) {
        pthread_mutex_unlock(&call->lock);
        est_sleep_ms(5);
        pthread_mutex_lock(&call->lock);
    }
    if (!call->done) {
        call->abandoned = true; /* the core frees it when it gets to it */
        pthread_mutex_unlock(&call->lock);
        return NULL;
    }
    char *result = call->result;
    call->result = NULL;
    pthread_mutex_unlock(&call->lock);
    free_call(call);
    return result;
}

char *gw_core_call(struct gw_core *core, const char *verb, const char *args_json,
                   const struct gw_actor *actor, int timeout_ms)
{
    struct gw_core_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    call->verb = strdup(verb);
    call->args_json = strdup(args_json ? args_json : "{}");
    snprintf(call->user, sizeof call->user, "%s", actor->user);
    snprintf(call->role, sizeof call->role, "%s", actor->role);
    if (call->verb == NULL || call->args_json == NULL) {
        free(call->verb);
        free(call->args_json);
        free(call);
        return NULL;
    }
    return submit_call(core, call, timeout_ms);
}

char *gw_core_run_on_core(struct gw_core *core, char *(*fn)(struct gw_core *core), int timeout_ms)
{
    struct gw_core_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    call->fn = fn;
    return submit_call(core, call, timeout_ms);
}

est_err gw_core_add_listener(struct gw_core *core, gw_core_listener_fn fn, void *ctx)
{
    if (core->nlisteners >= sizeof core->listeners / sizeof core->listeners[0])
        return EST_ERR_FULL;
    core->listeners[core->nlisteners] = fn;
    core->listener_ctx[core->nlisteners] = ctx;
    core->nlisteners++;
    return EST_OK;
}

/* ---------------------------------------------------------------- */
/* Setup                                                             */
/* ---------------------------------------------------------------- */

struct stored_serials {
    const struct gw_config *config;
    uint32_t *serials;
};

static bool stored_serial(void *ctx, const struct gw_store_meter *m)
{
    struct stored_serials *s = ctx;
    int i = gw_config_meter_index(s->config, m->id);
    if (i >= 0 && m->serial != NULL && !m->removed)
        s->serials[i] = (uint32_t)strtoul(m->serial, NULL, 10);
    return true;
}

/* A rule engine for config c, its units' occupancy unit_vacant. */
static est_err build_rules(struct gw_core *core, const struct gw_config *c, bool *unit_vacant,
                           struct rule_engine **out)
{
    struct rule_meter *meters = calloc(c->nmeters + 1, sizeof *meters);
    uint16_t *zones = calloc(c->npanels + 1, sizeof *zones);
    if (meters == NULL || zones == NULL) {
        free(meters);
        free(zones);
        return EST_ERR_NOMEM;
    }
    /* The inventory's current serial: a replacement detected before a
     * restart must not be detected again after it. */
    uint32_t *serials = calloc(c->nmeters + 1, sizeof *serials);
    if (serials != NULL) {
        struct stored_serials ss = {c, serials};
        for (size_t i = 0; i < c->nmeters; i++)
            serials[i] = c->meters[i].serial ? (uint32_t)strtoul(c->meters[i].serial, NULL, 10) : 0;
        gw_store_meters_list(core->store, stored_serial, &ss);
    }
    core->rules_offset_min = est_tz_offset_min(c->gateway.timezone, est_now_ms());
    for (size_t i = 0; i < c->nmeters; i++) {
        const struct gw_meter_config *m = &c->meters[i];
        struct rule_meter *rm = &meters[i];
        rm->kind = m->kind == DRV_KIND_WATER ? RULE_METER_WATER : RULE_METER_ELECTRICITY;
        rm->category = (enum rule_category)m->category;
        rm->unit = m->unit;
        rm->parent = m->parent;
        rm->rated_power_w = m->rated_power_w > 0 ? m->rated_power_w : m->model->rated_power_w;
        rm->export_expected = m->export_expected;
        rm->has_valve = m->valve;
        rm->resolution = m->model->resolution;
        rm->counter_wrap = m->model->counter_wrap;
        rm->serial = serials ? serials[i] : m->serial ? (uint32_t)strtoul(m->serial, NULL, 10) : 0;
        rm->quiet_start_min = m->quiet_start_min;
        rm->quiet_end_min = m->quiet_end_min;
        rm->utc_offset_min = core->rules_offset_min;
    }
    for (size_t i = 0; i < c->npanels; i++)
        zones[i] = c->panels[i].nzones;
    struct rule_topology topology = {
        .nmeters = c->nmeters, .meters = meters, .nunits = c->nunits,
        .unit_vacant = unit_vacant, .npanels = c->npanels, .panel_zones = zones,
    };
    est_err err = rule_engine_create(&c->rules, &topology, on_rule_event, on_rule_action, core, out);
    free(meters);
    free(zones);
    free(serials);
    return err;
}

/* The meters' row ids without writing (a full disk at start): every meter
 * must already be in the inventory. */
static est_err lookup_inventory(struct gw_core *core, int64_t *rids)
{
    for (size_t i = 0; i < core->config->nmeters; i++) {
        est_err err = gw_store_meter_rowid(core->store, core->config->meters[i].id, &rids[i]);
        if (err != EST_OK)
            return err;
    }
    return EST_OK;
}

static est_err load_state(struct gw_core *core)
{
    const struct gw_config *c = core->config;
    int64_t *rids = calloc(c->nmeters + 1, sizeof *rids);
    if (rids == NULL)
        return EST_ERR_NOMEM;
    uint64_t failures = gw_store_write_failures(core->store);
    est_err err = gw_store_sync_inventory(core->store, c, gw_core_now_ms(core), rids);
    if (err != EST_OK && gw_store_write_failures(core->store) != failures &&
        lookup_inventory(core, rids) == EST_OK) {
        /* The disk is full: start degraded rather than not at all. */
        core->store_degraded = true;
        err = EST_OK;
    }
    if (err != EST_OK) {
        gw_error("store: inventory: %s", gw_store_errmsg(core->store));
        free(rids);
        return err;
    }
    for (size_t i = 0; i < c->nmeters; i++)
        core->meters[i].store_rowid = rids[i];
    free(rids);
    for (size_t i = 0; i < c->nunits; i++) {
        bool vacant = c->units[i].vacant;
        if (gw_store_get_occupancy(core->store, c->units[i].id, &vacant) != EST_OK)
            vacant = c->units[i].vacant;
        core->unit_vacant[i] = vacant;
    }
    return EST_OK;
}

/* Opens the store. A full disk may refuse even that (the WAL index and the
 * migration need room): the reserve file is given up and it is tried again.
 * The reserve is then kept from here on. */
static est_err open_store(struct gw_core *core, char *reason, size_t reason_len)
{
    const char *dir = core->config->gateway.data_dir;
    est_err err = gw_store_open(dir, false, &core->store, reason, reason_len);
    if (err == EST_ERR_FULL || err == EST_ERR_IO || err == EST_ERR_DB) {
        size_t len = strlen(dir) + sizeof "/estate.reserve";
        char *reserve = malloc(len);
        if (reserve != NULL) {
            snprintf(reserve, len, "%s/estate.reserve", dir);
            if (unlink(reserve) == 0) {
                gw_warn("store: cannot open (%s): gave up the reserve file and trying again", reason);
                err = gw_store_open(dir, false, &core->store, reason, reason_len);
            }
            free(reserve);
        }
    }
    if (err == EST_OK)
        gw_store_keep_reserve(core->store, dir, STORE_RESERVE_BYTES);
    return err;
}

/* PRAGMA quick_check at start: damage is logged here and becomes an
 * incident once the office is up (*damage, malloc'd, NULL when sound). */
static void check_damage(struct gw_core *core, char **damage)
{
    if (gw_store_check_integrity(core->store, false, damage) != EST_OK || *damage == NULL)
        return;
    gw_error("store: database damaged: %s; the gateway runs on, but restore %s/%s from a backup "
             "(see docs/reliability.md, \"Damaged storage\")",
             *damage, core->config->gateway.data_dir, GW_STORE_DB_FILE);
}

/* Damage found by a check: a critical incident, once a run. */
static void report_damage(struct gw_core *core, const char *damage)
{
    if (core->damage_reported)
        return;
    core->damage_reported = true;
    char text[512];
    snprintf(text, sizeof text, "database damaged (%.300s): restore from a backup", damage);
    raise_gateway_incident(core, "storage_damaged", text);
}

/* The periodic full check found damage. */
static void take_integrity_result(struct gw_core *core)
{
    char *damage = gw_integrity_take(core->integrity);
    if (damage == NULL)
        return;
    gw_error("store: database damaged (integrity check): %s; the gateway runs on, but restore "
             "%s/%s from a backup (see docs/reliability.md, \"Damaged storage\")",
             damage, core->config->gateway.data_dir, GW_STORE_DB_FILE);
    report_damage(core, damage);
    free(damage);
}

/* What start-up found wrong with the store becomes a critical incident. */
static void report_start_problems(struct gw_core *core, const char *damage)
{
    if (damage != NULL)
        report_damage(core, damage);
    if (core->store_degraded) {
        gw_error("store: writes failing at start (%s): publishing without storing until the "
                 "disk recovers", gw_store_errmsg(core->store));
        core->next_store_probe_ms = est_mono_ms() + STORE_PROBE_MS;
        core->storage_failing_since_ms = gw_core_now_ms(core);
        snprintf(core->storage_failure, sizeof core->storage_failure, "%s",
                 gw_store_errmsg(core->store));
        char text[512];
        snprintf(text, sizeof text,
                 "storage failing at start (%.200s): readings are not stored, actions are "
                 "refused, events are held in memory until the disk recovers",
                 core->storage_failure);
        raise_gateway_incident(core, "storage_failing", text);
    }
}

est_err gw_core_create(struct gw_config *config, struct gw_core **out)
{
    struct gw_core *core = calloc(1, sizeof *core);
    if (core == NULL)
        return EST_ERR_NOMEM;
    core->config = config;
    core->boot_config = config;
    atomic_init(&core->shown_config, config);
    core->clock_ms = default_clock;
    core->engine_base_ms = core->clock_ms() - est_mono_ms();
    core->prefix = strdup(config->mqtt.topic_prefix);
    core->meters = calloc(config->nmeters + 1, sizeof *core->meters);
    core->panels = calloc(config->npanels + 1, sizeof *core->panels);
    core->unit_vacant = calloc(config->nunits + 1, sizeof *core->unit_vacant);
    core->occupancy_pending = malloc(config->nunits + 1);
    if (core->occupancy_pending != NULL)
        memset(core->occupancy_pending, -1, config->nunits + 1);
    core->pollers = calloc(config->nbuses + 1, sizeof *core->pollers);
    core->poller_generation = calloc(config->nbuses + 1, sizeof *core->poller_generation);
    core->held = calloc(HELD_EVENTS_MAX, sizeof *core->held);
    core->staged = calloc(STAGED_MAX, sizeof *core->staged);
    core->replay = calloc(REPLAY_MAX, sizeof *core->replay);
    est_err err = core->prefix && core->meters && core->panels && core->unit_vacant &&
                          core->occupancy_pending && core->pollers && core->poller_generation &&
                          core->held && core->staged && core->replay
                      ? EST_OK
                      : EST_ERR_NOMEM;
    for (size_t i = 0; err == EST_OK && i < config->nmeters; i++)
        core->meters[i].float32_quantities = drv_model_float32_quantities(config->meters[i].model);
    char reason[256] = "";
    if (err == EST_OK) {
        err = open_store(core, reason, sizeof reason);
        if (err != EST_OK)
            gw_error("store: cannot open %s/%s: %s", config->gateway.data_dir, GW_STORE_DB_FILE, reason);
    }
    char *damage = NULL;
    if (err == EST_OK)
        check_damage(core, &damage);
    if (err == EST_OK)
        err = load_state(core);
    if (err == EST_OK)
        err = build_rules(core, core->config, core->unit_vacant, &core->rules);
    if (err == EST_OK)
        err = create_office(core, core->config, core->rules, &core->office);
    if (err == EST_OK)
        err = create_notify(core);
    if (err == EST_OK)
        err = gw_office_restore_incidents(core->office);
    if (err == EST_OK)
        report_start_problems(core, damage);
    free(damage);
    if (err == EST_OK)
        err = gw_queue_create(sizeof(struct gw_sample), SAMPLE_QUEUE_CAPACITY, &core->samples);
    if (err == EST_OK)
        err = gw_queue_create(sizeof(struct gw_mqtt_inbound), INBOUND_QUEUE_CAPACITY, &core->inbound);
    if (err == EST_OK)
        err = gw_queue_create(sizeof(struct gw_core_call *), CALL_QUEUE_CAPACITY, &core->calls);
    char *offline = err == EST_OK ? gw_payload_status(false, gw_core_now_ms(core)) : NULL;
    if (err == EST_OK)
        err = offline ? gw_mqtt_create(&config->mqtt, core->prefix, offline, core->inbound, &core->mqtt)
                      : EST_ERR_NOMEM;
    free(offline);
    if (err == EST_OK) {
        core->unproven = gw_unproven_create(UNPROVEN_MAX);
        err = core->unproven ? EST_OK : EST_ERR_NOMEM;
    }
    if (err != EST_OK) {
        gw_core_destroy(core);
        return err;
    }
    *out = core;
    return EST_OK;
}

/* ---------------------------------------------------------------- */
/* Reload                                                            */
/* ---------------------------------------------------------------- */

/* Samples polled on an older config (a bus that kept polling across a
 * reload) get their index in the current one; those of a meter or panel
 * that is no longer configured are dropped. */
static void translate_samples(struct gw_core *core, struct batch *b)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        struct gw_sample *s = &b->items[i];
        if (s->generation != core->generation) {
            const struct gw_config_generation *g = find_generation(core, s->generation);
            bool panel = s->item == GW_ITEM_SAMPLE && s->device_type == GW_DEVICE_PANEL;
            uint32_t to = GW_RELOAD_GONE;
            if (g != NULL && panel && s->index < g->npanels)
                to = g->panel_map[s->index];
            else if (g != NULL && !panel && s->index < g->nmeters)
                to = g->meter_map[s->index];
            if (to == GW_RELOAD_GONE)
                continue;
            s->index = to;
            s->generation = core->generation;
        }
        if (kept != i)
            b->items[kept] = *s;
        kept++;
    }
    b->nitems = kept;
}

static bool poller_uses(const struct gw_core *core, uint32_t generation)
{
    for (size_t i = 0; i < core->config->nbuses; i++)
        if (core->pollers[i] != NULL && core->poller_generation[i] == generation)
            return true;
    return false;
}

/* Frees the retired configs (never the daemon's own) and their maps once
 * no poller has used them for RETIRED_KEEP_MS. */
static void prune_retired(struct gw_core *core)
{
    int64_t now = est_mono_ms();
    size_t kept = 0;
    for (size_t i = 0; i < core->nretired; i++) {
        struct gw_config_generation *g = &core->retired[i];
        if (poller_uses(core, g->generation))
            g->unused_since_ms = 0;
        else if (g->unused_since_ms == 0)
            g->unused_since_ms = now;
        if (g->unused_since_ms != 0 && now - g->unused_since_ms >= RETIRED_KEEP_MS) {
            if (g->config != core->boot_config)
                gw_config_free(g->config);
            free(g->meter_map);
            free(g->panel_map);
            continue;
        }
        core->retired[kept++] = *g;
    }
    core->nretired = kept;
}

/* The old config becomes a retired generation; older ones now map through
 * it into next. Takes the diff's maps. */
static est_err retire_config(struct gw_core *core, struct gw_config *old,
                             uint32_t old_generation, struct gw_reload_diff *d)
{
    struct gw_config_generation *grown =
        realloc(core->retired, (core->nretired + 1) * sizeof *core->retired);
    if (grown == NULL)
        return EST_ERR_NOMEM;
    core->retired = grown;
    for (size_t i = 0; i < core->nretired; i++) {
        struct gw_config_generation *g = &core->retired[i];
        for (size_t m = 0; m < g->nmeters; m++)
            if (g->meter_map[m] != GW_RELOAD_GONE)
                g->meter_map[m] = d->meter_map[g->meter_map[m]];
        for (size_t p = 0; p < g->npanels; p++)
            if (g->panel_map[p] != GW_RELOAD_GONE)
                g->panel_map[p] = d->panel_map[g->panel_map[p]];
    }
    core->retired[core->nretired++] = (struct gw_config_generation){
        .generation = old_generation, .config = old, .meter_map = d->meter_map,
        .nmeters = old->nmeters, .panel_map = d->panel_map, .npanels = old->npanels,
    };
    d->meter_map = NULL;
    d->panel_map = NULL;
    return EST_OK;
}

/* What the core keeps per meter, panel, unit and bus, laid out for next:
 * everything that can fail is built here, before anything changes. */
struct reload_state {
    struct gw_meter_state *meters;
    struct gw_panel_state *panels;
    bool *unit_vacant;
    int8_t *occupancy_pending;
    struct gw_poller **pollers;
    uint32_t *poller_generation;
    int64_t *rids;
    struct rule_engine *rules;
    struct gw_office *office;
};

static void reload_state_free(struct reload_state *st)
{
    free(st->meters);
    free(st->panels);
    free(st->unit_vacant);
    free(st->occupancy_pending);
    free(st->pollers);
    free(st->poller_generation);
    free(st->rids);
    gw_office_destroy(st->office);
    rule_engine_destroy(st->rules);
}

/* Carries each meter's, panel's and unit's state over by id; new units
 * take the occupancy the database remembers, else the config's. */
static void carry_state(struct gw_core *core, const struct gw_config *next,
                        const struct gw_reload_diff *d, struct reload_state *st)
{
    const struct gw_config *old = core->config;
    for (size_t i = 0; i < old->nmeters; i++)
        if (d->meter_map[i] != GW_RELOAD_GONE)
            st->meters[d->meter_map[i]] = core->meters[i];
    for (size_t j = 0; j < next->nmeters; j++) {
        st->meters[j].float32_quantities = drv_model_float32_quantities(next->meters[j].model);
        st->meters[j].store_rowid = st->rids[j];
    }
    for (size_t i = 0; i < old->npanels; i++)
        if (d->panel_map[i] != GW_RELOAD_GONE)
            st->panels[d->panel_map[i]] = core->panels[i];
    for (size_t j = 0; j < next->nunits; j++) {
        int i = gw_config_unit_index(old, next->units[j].id);
        bool vacant = next->units[j].vacant;
        if (i >= 0)
            vacant = core->unit_vacant[i];
        else if (gw_store_get_occupancy(core->store, next->units[j].id, &vacant) != EST_OK)
            vacant = next->units[j].vacant;
        st->unit_vacant[j] = vacant;
    }
    for (size_t j = 0; j < next->nbuses; j++) {
        size_t i = d->bus_kept[j];
        if (i != GW_RELOAD_NEW_BUS) {
            st->pollers[j] = core->pollers[i];
            st->poller_generation[j] = core->poller_generation[i];
        }
    }
}

/* Builds next's state: the database's inventory brought in line with it
 * (new meters get row ids, removed ones are flagged), a rule engine with
 * its thresholds and an office with its SLAs and users file. NULL, or why
 * not (malloc'd; NULL also when out of memory, see prepare_reload). */
static char *build_reload_state(struct gw_core *core, const struct gw_config *next,
                                const struct gw_reload_diff *d, struct reload_state *st)
{
    *st = (struct reload_state){
        .meters = calloc(next->nmeters + 1, sizeof *st->meters),
        .panels = calloc(next->npanels + 1, sizeof *st->panels),
        .unit_vacant = calloc(next->nunits + 1, sizeof *st->unit_vacant),
        .occupancy_pending = malloc(next->nunits + 1),
        .pollers = calloc(next->nbuses + 1, sizeof *st->pollers),
        .poller_generation = calloc(next->nbuses + 1, sizeof *st->poller_generation),
        .rids = calloc(next->nmeters + 1, sizeof *st->rids),
    };
    if (!st->meters || !st->panels || !st->unit_vacant || !st->occupancy_pending ||
        !st->pollers || !st->poller_generation || !st->rids)
        return strdup("out of memory");
    memset(st->occupancy_pending, -1, next->nunits + 1); /* none: reloads run between commands */
    /* Incident changes waiting to be stored name meters by the old indices. */
    if (core->store_degraded || core->nreplay > 0)
        return strdup("storage is failing: the new inventory cannot be stored; try again once "
                      "it recovers");
    if (gw_store_sync_inventory(core->store, next, gw_core_now_ms(core), st->rids) != EST_OK)
        return est_asprintf("store: cannot record the new inventory: %s",
                            gw_store_errmsg(core->store));
    carry_state(core, next, d, st);
    est_err err = build_rules(core, next, st->unit_vacant, &st->rules);
    if (err != EST_OK)
        return est_asprintf("rules: %s", est_strerror(err));
    err = create_office(core, next, st->rules, &st->office);
    if (err != EST_OK)
        return est_asprintf("office: %s", est_strerror(err));
    return NULL;
}

/* Whether next's state could be built; if not, *why says why (malloc'd or
 * NULL) and st is freed. */
static bool prepare_reload(struct gw_core *core, const struct gw_config *next,
                           const struct gw_reload_diff *d, struct reload_state *st, char **why)
{
    *why = build_reload_state(core, next, d, st);
    bool ready = *why == NULL && st->office != NULL;
    if (!ready)
        reload_state_free(st);
    return ready;
}

/* Stops the pollers of buses that were removed or changed. */
static void stop_replaced_pollers(struct gw_core *core, const struct gw_reload_diff *d,
                                  size_t nnext)
{
    for (size_t i = 0; i < core->config->nbuses; i++) {
        bool kept = false;
        for (size_t j = 0; j < nnext && !kept; j++)
            kept = d->bus_kept[j] == i;
        if (!kept && core->pollers[i] != NULL) {
            gw_poller_stop(core->pollers[i]);
            gw_info("bus %s: stopped (reload)", core->config->buses[i].name);
        }
        core->pollers[i] = NULL;
    }
}

/* From here on nothing is refused: next becomes the running config. */
static void swap_in(struct gw_core *core, struct gw_config *next, struct reload_state *st)
{
    free(core->meters);
    free(core->panels);
    free(core->unit_vacant);
    free(core->occupancy_pending);
    free(core->pollers);
    free(core->poller_generation);
    gw_office_destroy(core->office);
    rule_engine_destroy(core->rules);
    core->config = next;
    atomic_store(&core->shown_config, next);
    core->meters = st->meters;
    core->panels = st->panels;
    core->unit_vacant = st->unit_vacant;
    core->occupancy_pending = st->occupancy_pending;
    core->occupancy_changed = false;
    core->pollers = st->pollers;
    core->poller_generation = st->poller_generation;
    core->rules = st->rules;
    core->office = st->office;
    free(st->rids);
    *st = (struct reload_state){0};
    core->generation++;
}

/* Starts the pollers of new and changed buses; a bus that cannot start is
 * a warning (the reload stands: its config was valid). */
static void start_new_pollers(struct gw_core *core, const struct gw_reload_diff *d, cJSON *warnings)
{
    for (size_t j = 0; j < core->config->nbuses; j++) {
        if (d->bus_kept[j] != GW_RELOAD_NEW_BUS)
            continue;
        core->poller_generation[j] = core->generation;
        est_err err = gw_poller_start(core->config, j, core->samples, core->generation,
                                      &core->pollers[j]);
        if (err == EST_OK) {
            gw_info("bus %s: started (reload)", core->config->buses[j].name);
            continue;
        }
        core->pollers[j] = NULL;
        char *text = est_asprintf("bus %s: cannot start: %s", core->config->buses[j].name,
                                  est_strerror(err));
        gw_error("%s", text ? text : "bus: cannot start");
        if (text != NULL)
            cJSON_AddItemToArray(warnings, cJSON_CreateString(text));
        free(text);
    }
}

static char *reload_refused(struct gw_core *core, const char *why)
{
    core->reloads_refused++;
    gw_error("reload: refused, the running configuration stays: %s", why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "ok");
    cJSON_AddStringToObject(o, "error", why);
    cJSON_AddItemToObject(o, "errors", cJSON_CreateArray());
    return gw_json_finish(o);
}

/* "configuration reloaded: meters added: E-9; buses removed: gw_c" */
static char *changes_text(const cJSON *changes)
{
    char *text = strdup("configuration reloaded");
    const char *sep = ": ";
    const cJSON *c;
    cJSON_ArrayForEach(c, changes) {
        char *longer = text ? est_asprintf("%s%s%s", text, sep, c->valuestring) : NULL;
        free(text);
        text = longer;
        sep = "; ";
    }
    if (text != NULL && cJSON_GetArraySize(changes) == 0) {
        free(text);
        text = strdup("configuration reloaded: nothing changed");
    }
    return text;
}

/* The reload's record: the log, a patrol-log entry, the result. */
static char *reload_applied(struct gw_core *core, cJSON *changes, cJSON *restart, cJSON *warnings)
{
    core->reloads++;
    char *text = changes_text(changes);
    gw_info("reload: %s", text ? text : "configuration reloaded");
    const cJSON *key;
    cJSON_ArrayForEach(key, restart)
        gw_warn("reload: %s changed: it keeps its running value until estate-gw restarts",
                key->valuestring);
    if (text != NULL && gw_store_begin(core->store) == EST_OK) {
        gw_core_patrol(core, "config", text, 0, 0, "system", NULL);
        settle_staged(core, gw_store_commit(core->store) == EST_OK);
    }
    free(text);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddNumberToObject(o, "generation", core->generation);
    cJSON_AddItemToObject(o, "changes", changes);
    cJSON_AddItemToObject(o, "restart_needed", restart);
    cJSON_AddItemToObject(o, "warnings", warnings);
    return gw_json_finish(o);
}

/* Applies next between two batches (see gw_core_reload); takes next. */
static char *apply_reload(struct gw_core *core, struct gw_config *next)
{
    struct gw_config *old = core->config;
    struct gw_reload_diff d;
    if (gw_reload_diff(old, next, &d) != EST_OK) {
        gw_config_free(next);
        return reload_refused(core, "out of memory");
    }
    struct reload_state st;
    char *why = NULL;
    if (d.refusal != NULL || !prepare_reload(core, next, &d, &st, &why)) {
        const char *text = d.refusal ? d.refusal : why ? why : "out of memory";
        char *result = reload_refused(core, text);
        free(why);
        gw_reload_diff_free(&d);
        gw_config_free(next);
        return result;
    }
    stop_replaced_pollers(core, &d, next->nbuses);
    gw_backups_stop(core->backups); /* it reads the config */
    core->backups = NULL;
    swap_in(core, next, &st);
    gw_office_restore_incidents(core->office);
    gw_log_set_level(next->gateway.log_level);
    cJSON *warnings = cJSON_CreateArray();
    start_new_pollers(core, &d, warnings);
    if (gw_backups_start(next, &core->backups) != EST_OK)
        cJSON_AddItemToArray(warnings, cJSON_CreateString("cannot start the daily backup"));
    /* The sender reads the config's channels and routes and subscribes to
     * the office, both replaced: it starts again on the new ones (waiting
     * rows stay in the table; a call in flight is sent again). */
    gw_notify_destroy(core->notify);
    core->notify = NULL;
    if (create_notify(core) != EST_OK)
        cJSON_AddItemToArray(warnings, cJSON_CreateString("notifications cannot start with the new "
                                                          "config: none are sent until a restart"));
    if (retire_config(core, old, core->generation - 1, &d) != EST_OK) {
        /* Out of memory: samples of the kept buses cannot be translated;
         * they restart on the new config instead. */
        for (size_t i = 0; i < core->nretired; i++) {
            for (size_t m = 0; m < core->retired[i].nmeters; m++)
                core->retired[i].meter_map[m] = GW_RELOAD_GONE;
            for (size_t p = 0; p < core->retired[i].npanels; p++)
                core->retired[i].panel_map[p] = GW_RELOAD_GONE;
        }
        for (size_t j = 0; j < next->nbuses; j++)
            if (core->pollers[j] != NULL && core->poller_generation[j] != core->generation) {
                gw_poller_stop(core->pollers[j]);
                core->pollers[j] = NULL;
                d.bus_kept[j] = GW_RELOAD_NEW_BUS;
            } else {
                d.bus_kept[j] = 0;
            }
        start_new_pollers(core, &d, warnings);
        /* old is not freed: a console request may still read it. */
    }
    prune_retired(core);
    char *result = reload_applied(core, d.changes, d.restart_needed, warnings);
    d.changes = d.restart_needed = NULL;
    gw_reload_diff_free(&d);
    return result;
}

/* Answers the estate-ctl reload requests waiting for this result. */
static void answer_reload_waiters(struct gw_core *core, const char *result)
{
    if (core->nreload_waiting == 0 || gw_store_begin(core->store) != EST_OK)
        return;
    for (size_t i = 0; i < core->nreload_waiting; i++)
        gw_store_ctl_finish(core->store, core->reload_waiting[i], result, gw_core_now_ms(core));
    if (gw_store_commit(core->store) == EST_OK)
        core->nreload_waiting = 0;
}

static char *handle_reload_call(struct gw_core *core, struct gw_core_call *call)
{
    char *result;
    if (call->reload_config != NULL) {
        struct gw_config *next = call->reload_config;
        call->reload_config = NULL;
        result = apply_reload(core, next);
    } else {
        core->reloads_refused++;
        result = strdup(call->reload_refusal ? call->reload_refusal : "{\"ok\":false}");
    }
    if (result != NULL)
        answer_reload_waiters(core, result);
    return result;
}

const struct gw_config *gw_core_current_config(struct gw_core *core)
{
    return atomic_load(&core->shown_config);
}

char *gw_core_reload(struct gw_core *core, struct gw_config *next, const char *refusal_json,
                     int timeout_ms)
{
    struct gw_core_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        gw_config_free(next);
        return NULL;
    }
    call->reload = true;
    call->reload_config = next;
    call->reload_refusal = refusal_json ? strdup(refusal_json) : NULL;
    return submit_call(core, call, timeout_ms);
}

/* ---------------------------------------------------------------- */
/* Run                                                               */
/* ---------------------------------------------------------------- */

/* "+2 h", "-1 day 3 min", "+45 s": a clock jump in words. */
static void describe_jump(int64_t delta_ms, char *out, size_t size)
{
    int64_t s = ((delta_ms < 0 ? -delta_ms : delta_ms) + 500) / 1000; /* nearest second */
    int64_t days = s / 86400, hours = s % 86400 / 3600, mins = s % 3600 / 60, secs = s % 60;
    int n = snprintf(out, size, "%c", delta_ms < 0 ? '-' : '+');
    if (days > 0)
        n += snprintf(out + n, size - (size_t)n, "%lld day%s ", (long long)days, days > 1 ? "s" : "");
    if (hours > 0)
        n += snprintf(out + n, size - (size_t)n, "%lld h ", (long long)hours);
    if (mins > 0)
        n += snprintf(out + n, size - (size_t)n, "%lld min ", (long long)mins);
    if (secs > 0 || n == 1)
        n += snprintf(out + n, size - (size_t)n, "%lld s ", (long long)secs);
    if (n > 1 && out[n - 1] == ' ')
        out[n - 1] = '\0';
}

/* Compares how far the wall clock and the monotonic clock went since the
 * last tick: a difference over CLOCK_JUMP_MS is a jump of the wall clock
 * (an operator, NTP stepping, a bad RTC). It is logged and written in the
 * patrol log, and the SLA timers move with it, so they keep measuring
 * elapsed time: no false breaches after a jump forward, none missed after
 * one backwards. */
static void watch_clock(struct gw_core *core, int64_t wall_ms)
{
    int64_t mono_ms = est_mono_ms();
    int64_t delta = core->clock_seen_mono_ms == 0
                        ? 0
                        : (wall_ms - core->clock_seen_wall_ms) - (mono_ms - core->clock_seen_mono_ms);
    core->clock_seen_wall_ms = wall_ms;
    core->clock_seen_mono_ms = mono_ms;
    if (delta <= CLOCK_JUMP_MS && delta >= -CLOCK_JUMP_MS)
        return;
    char words[64], text[128];
    describe_jump(delta, words, sizeof words);
    snprintf(text, sizeof text, "clock moved by %s", words);
    gw_warn("clock: the wall clock moved by %s (%lld ms against the monotonic clock); SLA "
            "timers follow it", words, (long long)delta);
    gw_core_patrol(core, "clock", text, 0, 0, "system", NULL);
    gw_office_clock_moved(core->office, delta, text, wall_ms);
}

static void tick(struct gw_core *core)
{
    int64_t now = gw_core_now_ms(core);
    watch_clock(core, now);
    int64_t engine_now = engine_now_ms(core);
    core->engine_wall_offset_ms = now - engine_now;
    rule_engine_set_wall_offset(core->rules, core->engine_wall_offset_ms);
    bool in_txn = gw_store_begin(core->store) == EST_OK;
    rule_engine_tick(core->rules, engine_now);
    gw_office_tick(core->office, now);
    gw_notify_tick(core->notify, core->store, now);
    bool committed = in_txn && gw_store_commit(core->store) == EST_OK;
    if (in_txn && !committed && !core->store_degraded)
        gw_error("store: tick commit failed: %s", gw_store_errmsg(core->store));
    settle_staged(core, committed);
    handle_ctl_requests(core);
    take_integrity_result(core);
    if (core->nretired > 0)
        prune_retired(core);
    if (!gw_mqtt_connected(core->mqtt))
        trim_outbox(core);
    if (gw_core_health_changed(core))
        publish_online_payload(core);
    if (core->on_tick != NULL)
        core->on_tick(core->on_tick_ctx);
}

/* Publishes the patrol log's chain head (retained on P/patrol/head) when it
 * has not gone out yet on this run, and records it as an anchor in the
 * database at most once a minute. Only when the head moved. */
static void anchor_patrol_head(struct gw_core *core, int64_t now)
{
    int64_t seq = 0;
    char hash[GW_STORE_HASH_LEN];
    if (gw_store_patrol_head(core->store, &seq, hash) != EST_OK || seq == 0)
        return;
    publish_patrol_head(core, seq, hash);
    if (now - core->anchored_ms < PATROL_ANCHOR_EVERY_MS || seq == core->anchored_seq ||
        core->store_degraded)
        return;
    if (gw_store_patrol_anchor(core->store, now, "mqtt", &seq, hash) != EST_OK)
        return;
    core->anchored_seq = seq;
    core->anchored_ms = now;
}

/* The head retained on P/patrol/head came back from the broker: the local
 * chain must hold that entry with that hash. If it does not, entries were
 * cut off or rewritten since it was published (or the database is an older
 * copy): a critical incident, and the local head is never published over it. */
static void check_retained_head(struct gw_core *core, const struct gw_mqtt_inbound *in)
{
    if (in->length == 0 || in->too_large)
        return;
    cJSON *o = cJSON_ParseWithLength(in->payload, in->length);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "hash");
    if (!cJSON_IsNumber(seq) || !cJSON_IsString(hash)) {
        gw_warn("patrol log: the retained head on the broker is not a head: ignored");
        cJSON_Delete(o);
        return;
    }
    int64_t want_seq = (int64_t)seq->valuedouble;
    bool contained = gw_store_patrol_check_anchor(core->store, want_seq, hash->valuestring) == EST_OK;
    core->head_checked = true;
    if (!contained && !core->head_conflict) {
        core->head_conflict = true;
        char text[256];
        snprintf(text, sizeof text,
                 "patrol log: the retained head on the broker (seq %lld, %.16s...) is not in the "
                 "local chain: entries were removed or rewritten; the local head will not be "
                 "published over it",
                 (long long)want_seq, hash->valuestring);
        gw_error("%s", text);
        raise_gateway_incident(core, "patrol_head_mismatch", text);
    } else if (contained && want_seq > core->head_published_seq) {
        core->head_published_seq = want_seq;
    }
    cJSON_Delete(o);
}

/* Degraded mode (disk full): whether the disk accepts writes again. */
static void probe_store(struct gw_core *core)
{
    /* The reserve gives the checkpoint room; the truncated WAL gives writes room. */
    gw_store_make_room(core->store);
    if (gw_store_meta_set(core->store, "last_probe", "1") != EST_OK)
        return;
    core->store_degraded = false;
    if (!replay_rule_events(core)) {
        enter_degraded_mode(core);
        return;
    }
    gw_info("store: writes work again; storing resumed");
    if (gw_store_begin(core->store) == EST_OK) {
        record_storage_recovered(core);
        gw_store_commit(core->store);
    }
    release_held_events(core);
}

static void maintenance(struct gw_core *core)
{
    int64_t now = gw_core_now_ms(core);
    anchor_patrol_head(core, now);
    int64_t older = now - (int64_t)core->config->retention.raw_readings_days * 86400000;
    int64_t cursor = 0;
    size_t deleted = 0;
    for (int i = 0; i < 50; i++) {
        if (gw_store_prune_readings(core->store, older, 2000, &cursor, &deleted) != EST_OK || cursor == 0)
            break;
    }
    gw_store_ctl_prune(core->store, now - 3600000);
    gw_debug("core: %llu samples, %llu published, %llu stored, %llu readings dropped",
             (unsigned long long)core->samples_handled, (unsigned long long)core->readings_published,
             (unsigned long long)core->readings_stored, (unsigned long long)core->readings_dropped);
}

static bool is_head_topic(const struct gw_core *core, const char *topic)
{
    size_t plen = strlen(core->prefix);
    return strncmp(topic, core->prefix, plen) == 0 && strcmp(topic + plen, "/patrol/head") == 0;
}

/* A new broker connection: its retained patrol head is to be checked
 * before the local head goes out again. */
static void watch_connection(struct gw_core *core)
{
    uint64_t generation = gw_mqtt_generation(core->mqtt);
    if (!gw_mqtt_connected(core->mqtt) || generation == core->head_generation)
        return;
    core->head_generation = generation;
    core->head_checked = false;
    core->head_wait_until_ms = est_mono_ms() + HEAD_WAIT_MS;
}

static est_err start_pollers(struct gw_core *core)
{
    for (size_t i = 0; i < core->config->nbuses; i++) {
        est_err err = gw_poller_start(core->config, i, core->samples, core->generation,
                                      &core->pollers[i]);
        core->poller_generation[i] = core->generation;
        if (err != EST_OK) {
            gw_error("bus %s: cannot start: %s", core->config->buses[i].name, est_strerror(err));
            return err;
        }
    }
    return EST_OK;
}

est_err gw_core_run(struct gw_core *core)
{
    update_online_payload(core);
    gw_mqtt_start(core->mqtt);
    /* Give the broker connection a moment before polling starts: readings
     * taken before it is up go to the outbox, and every later reading then
     * queues behind them until the outbox is empty, which at a high poll
     * rate (the outbox path costs several times the direct publish) may
     * never happen. On loopback or a LAN the connection takes milliseconds;
     * a broker that is down only delays the first polls by this much. */
    int64_t connect_deadline = est_mono_ms() + FIRST_CONNECT_WAIT_MS;
    while (!gw_mqtt_connected(core->mqtt) && est_mono_ms() < connect_deadline &&
           !atomic_load(&core->stopping))
        est_sleep_ms(5);
    est_err err = start_pollers(core);
    if (err != EST_OK)
        return err;
    int every_s = core->config->gateway.integrity_check_s;
    if (every_s > 0 &&
        gw_integrity_start(core->config->gateway.data_dir, (int64_t)every_s * 1000,
                           &core->integrity) != EST_OK)
        gw_warn("store: cannot start the periodic integrity check");
    if (gw_backups_start(core->config, &core->backups) != EST_OK)
        gw_warn("store: cannot start the daily backup");
    struct batch b;
    bool have_batch = batch_alloc(&b);
    struct gw_mqtt_inbound *inbound = malloc(sizeof *inbound);
    if (!have_batch || inbound == NULL) {
        batch_free(&b);
        free(inbound);
        return EST_ERR_NOMEM;
    }
    /* Readings left in the outbox by the last run go out before new ones. */
    struct gw_store_outbox_counts queued;
    if (gw_store_outbox_counts(core->store, &queued) == EST_OK && queued.readings > 0) {
        core->outbox_has_readings = true;
        gw_info("outbox: %llu readings and %llu events queued from the last run",
                (unsigned long long)queued.readings, (unsigned long long)queued.events);
    }
    core->next_tick_ms = est_mono_ms();
    core->next_maintenance_ms = est_mono_ms() + 5000;
    gw_info("core: running: %zu meters, %zu fire panels on %zu buses; prefix %s",
            core->config->nmeters, core->config->npanels, core->config->nbuses, core->prefix);
    while (!atomic_load(&core->stopping)) {
        size_t n = b.nitems = gw_queue_pop_many(core->samples, b.items, SAMPLE_BATCH, 20);
        translate_samples(core, &b);
        if (b.nitems > 0)
            handle_batch(core, &b);
        if (n > 0 && n < SAMPLE_GATHER_BELOW)
            est_sleep_ms(SAMPLE_GATHER_MS);
        watch_connection(core);
        while (gw_queue_pop_many(core->inbound, inbound, 1, 0) == 1) {
            if (is_head_topic(core, inbound->topic))
                check_retained_head(core, inbound);
            else
                handle_mqtt_command(core, inbound);
        }
        release_held_events(core);
        handle_calls(core);
        int64_t mono = est_mono_ms();
        if (mono >= core->next_tick_ms) {
            core->next_tick_ms = mono + TICK_MS;
            tick(core);
        }
        if (core->store_degraded && mono >= core->next_store_probe_ms) {
            core->next_store_probe_ms = mono + STORE_PROBE_MS;
            probe_store(core);
        }
        if (mono >= core->next_maintenance_ms) {
            core->next_maintenance_ms = mono + MAINTENANCE_MS;
            maintenance(core);
        }
        gw_mqtt_check_link(core->mqtt);
        settle_unproven(core);
        drain_outbox(core);
    }
    /* Shutdown: stop polling, store what was polled, flush the outbox. */
    for (size_t i = 0; i < core->config->nbuses; i++) {
        gw_poller_stop(core->pollers[i]);
        core->pollers[i] = NULL;
    }
    while ((b.nitems = gw_queue_pop_many(core->samples, b.items, SAMPLE_BATCH, 0)) > 0) {
        translate_samples(core, &b);
        handle_batch(core, &b);
    }
    int64_t deadline = est_mono_ms() + 2000;
    while (gw_mqtt_connected(core->mqtt) && est_mono_ms() < deadline) {
        drain_outbox(core);
        struct gw_store_outbox_counts counts;
        if (gw_store_outbox_counts(core->store, &counts) == EST_OK && counts.events == 0 &&
            counts.readings == 0 && gw_mqtt_inflight(core->mqtt) == 0)
            break;
        est_sleep_ms(10);
    }
    drain_outbox(core); /* delete what was acknowledged meanwhile */
    gw_integrity_stop(core->integrity);
    core->integrity = NULL;
    gw_backups_stop(core->backups);
    core->backups = NULL;
    batch_free(&b);
    free(inbound);
    gw_info("core: stopped after %llu samples", (unsigned long long)core->samples_handled);
    return EST_OK;
}

void gw_core_request_stop(struct gw_core *core) { atomic_store(&core->stopping, true); }

void gw_core_destroy(struct gw_core *core)
{
    if (core == NULL)
        return;
    for (size_t i = 0; core->pollers && i < core->config->nbuses; i++)
        gw_poller_stop(core->pollers[i]);
    if (core->mqtt != NULL) {
        char *offline = gw_payload_status(false, gw_core_now_ms(core));
        gw_mqtt_destroy(core->mqtt, offline, 1000);
        free(offline);
    }
    if (core->calls != NULL) {
        struct gw_core_call *call;
        while (gw_queue_pop_many(core->calls, &call, 1, 0) == 1)
            finish_call(call, NULL);
    }
    gw_integrity_stop(core->integrity);
    gw_backups_stop(core->backups);
    gw_queue_destroy(core->calls);
    gw_queue_destroy(core->inbound);
    gw_queue_destroy(core->samples);
    gw_notify_destroy(core->notify);
    gw_office_destroy(core->office);
    rule_engine_destroy(core->rules);
    gw_store_close(core->store);
    while (core->held != NULL && core->nheld > 0)
        drop_oldest_held(core);
    free(core->held);
    free(core->staged);
    free(core->replay);
    free(core->pollers);
    free(core->poller_generation);
    for (size_t i = 0; i < core->nretired; i++) {
        if (core->retired[i].config != core->boot_config)
            gw_config_free(core->retired[i].config);
        free(core->retired[i].meter_map);
        free(core->retired[i].panel_map);
    }
    free(core->retired);
    if (core->config != core->boot_config)
        gw_config_free(core->config);
    free(core->meters);
    free(core->panels);
    free(core->unit_vacant);
    free(core->occupancy_pending);
    free(core->prefix);
    gw_unproven_destroy(core->unproven);
    free(core);
}
