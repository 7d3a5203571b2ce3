/* office_stub.h - a small host for the office (office.h) in unit tests, in
 * place of the daemon's core: a store, a config, an optional rule engine
 * and a clock the test controls. Events go to the store's outbox under
 * prefix/suffix (as the core queues them), patrol entries to the store's
 * patrol log and out on "patrol"; valve requests, meter events and
 * occupancy changes are counted so tests can see them. Header-only. */
#ifndef OFFICE_STUB_H
#define OFFICE_STUB_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "office.h"

#define OFFICE_STUB_PREFIX "estate/test/gw1"

struct office_stub {
    struct gw_store *store;
    struct gw_config *config;
    struct rule_engine *rules;   /* may be NULL */
    const int64_t *clock_ms;     /* the test's clock */
    struct gw_office *office;
    bool unit_vacant[64];
    int valve_requests;          /* valve writes asked of the host */
    uint32_t last_valve_meter;
    bool last_valve_close;
    int meter_events;            /* meter incidents reported to the host */
    int published;               /* events published */
    char last_topic[128];
};

static inline int64_t office_stub_now(void *ctx)
{
    return *((struct office_stub *)ctx)->clock_ms;
}

static inline est_err office_stub_publish(void *ctx, const char *topic_suffix, const char *payload,
                                   bool retain)
{
    struct office_stub *stub = ctx;
    char topic[256];
    snprintf(topic, sizeof topic, "%s/%s", OFFICE_STUB_PREFIX, topic_suffix);
    struct gw_store_outbox_msg msg = {
        .topic = topic, .payload = payload, .payload_len = strlen(payload),
        .qos = stub->config->mqtt.qos_events, .retain = retain, .is_event = true,
        .created_ms = office_stub_now(stub),
    };
    stub->published++;
    snprintf(stub->last_topic, sizeof stub->last_topic, "%s", topic_suffix);
    return gw_store_outbox_add(stub->store, &msg, NULL);
}

static inline est_err office_stub_patrol(void *ctx, const char *kind, const char *text, int64_t incident,
                                  int64_t workorder, const char *author, const char *detail_json)
{
    struct office_stub *stub = ctx;
    struct gw_store_patrol_entry e = {
        .ts_ms = office_stub_now(stub), .kind = kind, .text = text, .incident = incident,
        .workorder = workorder, .author = author, .detail_json = detail_json,
    };
    est_err err = gw_store_patrol_append(stub->store, &e);
    if (err != EST_OK)
        return err;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)e.seq);
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "text", text);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    err = json ? office_stub_publish(stub, "patrol", json, false) : EST_ERR_NOMEM;
    free(json);
    return err;
}

static inline est_err office_stub_request_valve(void *ctx, uint32_t meter, bool close, const char *who)
{
    struct office_stub *stub = ctx;
    (void)who;
    stub->valve_requests++;
    stub->last_valve_meter = meter;
    stub->last_valve_close = close;
    return EST_OK;
}

static inline void office_stub_meter_event(void *ctx, const struct rule_event *event)
{
    (void)event;
    ((struct office_stub *)ctx)->meter_events++;
}

static inline bool office_stub_set_unit_vacant(void *ctx, uint32_t unit, bool vacant)
{
    struct office_stub *stub = ctx;
    bool was = unit < 64 && stub->unit_vacant[unit];
    if (unit < 64)
        stub->unit_vacant[unit] = vacant;
    if (stub->rules != NULL)
        rule_engine_set_vacant(stub->rules, unit, vacant);
    return was;
}

/* (Re)creates the office over the stub's current store, as a restart would. */
static inline est_err office_stub_start(struct office_stub *stub)
{
    gw_office_destroy(stub->office);
    stub->office = NULL;
    struct gw_office_host host = {
        .ctx = stub, .store = stub->store, .config = stub->config, .rules = stub->rules,
        .now_ms = office_stub_now, .publish_event = office_stub_publish,
        .patrol = office_stub_patrol, .request_valve = office_stub_request_valve,
        .meter_event = office_stub_meter_event, .set_unit_vacant = office_stub_set_unit_vacant,
    };
    return gw_office_create(&host, &stub->office);
}

static inline void office_stub_stop(struct office_stub *stub)
{
    gw_office_destroy(stub->office);
    stub->office = NULL;
}

/* The demo config (etc/demo, gateway.language=en) with its data in dir, a
 * store there with the inventory synced, and the office started: the whole
 * set-up of a test that needs no rule engine. EST_OK or the first error. */
static inline est_err office_stub_open_demo(struct office_stub *stub, const char *dir,
                                     const int64_t *clock_ms)
{
    const char *src = getenv("ESTATE_SOURCE_DIR");
    char path[512], data_dir[256];
    snprintf(path, sizeof path, "%s/etc/demo/estate-gw.conf", src ? src : ESTATE_SOURCE_DIR);
    snprintf(data_dir, sizeof data_dir, "gateway.data_dir=%s", dir);
    const char *overrides[] = {data_dir, "gateway.language=en"};
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(path, overrides, 2, &stub->config, &errors);
    if (err != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return err;
    }
    stub->clock_ms = clock_ms;
    char reason[256];
    err = gw_store_open(dir, false, &stub->store, reason, sizeof reason);
    if (err == EST_OK)
        err = gw_store_sync_inventory(stub->store, stub->config, *clock_ms, NULL);
    if (err == EST_OK)
        err = office_stub_start(stub);
    return err;
}

/* Undoes office_stub_open_demo (and whatever rule engine the test added). */
static inline void office_stub_close_demo(struct office_stub *stub)
{
    office_stub_stop(stub);
    rule_engine_destroy(stub->rules);
    gw_store_close(stub->store);
    gw_config_free(stub->config);
    memset(stub, 0, sizeof *stub);
}

#endif
