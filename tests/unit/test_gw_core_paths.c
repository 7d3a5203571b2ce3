/* test_gw_core_paths.c - the daemon's core (gateway/pipeline/core.c)
 * through core.h only, linked with the pipeline library (no daemon, no
 * console), over a small config written here: one bus to a closed loopback
 * port and an MQTT broker nobody runs, so every message stays in the store's
 * outbox. Covers: creation syncs the inventory and starts nothing; events go
 * to the listeners and the outbox with the core's clock; listener slots run
 * out; patrol entries chain and go out on patrol; a call to a core that is
 * not running gives up; a running core answers calls (refusals too), keeps
 * their events in the outbox, and takes a sample fed through its queue
 * through the stages into the store and the outbox; valve results reach the
 * patrol log (called directly and fed through the queue) and a fed panel
 * sample goes out as its retained state; daily snapshots follow the site
 * day of a zone with daylight saving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core.h"
#include "estate.h"
#include "http_client.h"
#include "store.h"

#define CLOCK_MS INT64_C(1790000000000)
#define PREFIX "estate/unit/gwc"

static int64_t fake_clock(void) { return CLOCK_MS; }

struct fixture {
    char dir[64];
    struct gw_config *config;
    struct gw_core *core;
    pthread_t thread;
    bool running;
    est_err run_result;
};

/* ---- set-up ---- */

static void write_config(const char *dir, const char *path, int broker_port)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out,
            "gateway = { id = \"gwc\"; site = \"unit\"; data_dir = \"%s/data\"; language = \"en\"; };\n"
            "mqtt = { uri = \"tcp://127.0.0.1:%d\"; qos_events = 1; qos_readings = 0; };\n"
            "buses = ( { name = \"bus_a\"; type = \"tcp\"; host = \"127.0.0.1\"; port = 1;\n"
            "            timeout_ms = 100; retries = 0; poll_interval_ms = 86400000; } );\n"
            "units = ( { id = \"1-101\"; building = \"1\"; occupancy = \"occupied\"; } );\n"
            "meters = ( { id = \"W-1\"; bus = \"bus_a\"; slave = 1; driver = \"xintai-water\";\n"
            "             category = \"unit\"; unit = \"1-101\"; valve = true; } );\n"
            "fire_panels = ( { id = \"FP-1\"; bus = \"bus_a\"; slave = 30; driver = \"notifier-gw\";\n"
            "                  zones = 3; poll_interval_ms = 86400000; } );\n"
            "http = { listen = \"\"; };\n",
            dir, broker_port);
    assert_int_equal(fclose(out), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_core.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof path, "%s/estate-gw.conf", f->dir);
    int broker_port = http_free_port();
    assert_true(broker_port > 0);
    write_config(f->dir, path, broker_port);
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(path, NULL, 0, &f->config, &errors);
    if (err != EST_OK)
        gw_config_errors_print(&errors, stderr);
    gw_config_errors_free(&errors);
    assert_int_equal(err, EST_OK);
    assert_int_equal(gw_core_create(f->config, &f->core), EST_OK);
    f->core->clock_ms = fake_clock;
    *state = f;
    return 0;
}

static void stop_core(struct fixture *f)
{
    if (!f->running)
        return;
    gw_core_request_stop(f->core);
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    f->running = false;
    assert_int_equal(f->run_result, EST_OK);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    stop_core(f);
    gw_core_destroy(f->core);
    gw_config_free(f->config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void *run_core(void *arg)
{
    struct fixture *f = arg;
    f->run_result = gw_core_run(f->core);
    return NULL;
}

static void start_core(struct fixture *f)
{
    assert_int_equal(pthread_create(&f->thread, NULL, run_core, f), 0);
    f->running = true;
}

/* ---- what the listeners and the outbox saw ---- */

#define SEEN_MAX 32

struct seen_event {
    char kind[64];
    char *payload;
};

struct listener_log {
    struct seen_event events[SEEN_MAX];
    size_t count;
};

static void record_event(void *ctx, const char *kind, const char *payload)
{
    struct listener_log *log = ctx;
    if (log->count == SEEN_MAX)
        return;
    snprintf(log->events[log->count].kind, sizeof log->events[0].kind, "%s", kind);
    log->events[log->count].payload = strdup(payload);
    log->count++;
}

static void listener_log_free(struct listener_log *log)
{
    for (size_t i = 0; i < log->count; i++)
        free(log->events[i].payload);
    log->count = 0;
}

struct queued {
    char topic[128];
    char payload[1024];
    int qos;
    bool retain, is_event;
    int64_t created_ms;
};

struct outbox_copy {
    struct queued msgs[SEEN_MAX];
    size_t count;
};

static bool copy_outbox_msg(void *ctx, const struct gw_store_outbox_msg *msg)
{
    struct outbox_copy *copy = ctx;
    if (copy->count == SEEN_MAX)
        return false;
    struct queued *q = &copy->msgs[copy->count++];
    snprintf(q->topic, sizeof q->topic, "%s", msg->topic);
    snprintf(q->payload, sizeof q->payload, "%.*s", (int)msg->payload_len, (const char *)msg->payload);
    q->qos = msg->qos;
    q->retain = msg->retain;
    q->is_event = msg->is_event;
    q->created_ms = msg->created_ms;
    return true;
}

static void read_outbox(struct fixture *f, struct outbox_copy *copy)
{
    memset(copy, 0, sizeof *copy);
    assert_int_equal(gw_store_outbox_peek(f->core->store, 0, 0, copy_outbox_msg, copy), EST_OK);
}

static const struct queued *find_queued(const struct outbox_copy *copy, const char *topic)
{
    for (size_t i = 0; i < copy->count; i++)
        if (strcmp(copy->msgs[i].topic, topic) == 0)
            return &copy->msgs[i];
    return NULL;
}

/* ---- creation ---- */

static void test_create_syncs_inventory_and_starts_nothing(void **state)
{
    struct fixture *f = *state;
    struct gw_core *core = f->core;
    assert_non_null(core->store);
    assert_string_equal(core->prefix, PREFIX);
    assert_true(core->meters[0].store_rowid > 0);
    int64_t rid = 0;
    assert_int_equal(gw_store_meter_rowid(core->store, "W-1", &rid), EST_OK);
    assert_int_equal(rid, core->meters[0].store_rowid);
    assert_false(core->unit_vacant[0]);          /* "occupied" in the config */
    assert_null(core->pollers[0]);               /* polling starts with gw_core_run */
    assert_false(gw_mqtt_connected(core->mqtt));
    struct gw_store_outbox_counts counts;
    assert_int_equal(gw_store_outbox_counts(core->store, &counts), EST_OK);
    assert_int_equal(counts.events + counts.readings, 0);
}

/* ---- events and the patrol log (core thread functions, called here) ---- */

static void test_published_event_reaches_listeners_and_outbox(void **state)
{
    struct fixture *f = *state;
    struct listener_log first = {0}, second = {0};
    assert_int_equal(gw_core_add_listener(f->core, record_event, &first), EST_OK);
    assert_int_equal(gw_core_add_listener(f->core, record_event, &second), EST_OK);

    assert_int_equal(gw_core_publish_event(f->core, "alerts", "{\"id\":3}", false), EST_OK);
    assert_int_equal(gw_core_publish_event(f->core, "alerts/active/3", "{\"id\":3,\"r\":1}", true),
                     EST_OK);

    assert_int_equal(first.count, 2);
    assert_int_equal(second.count, 2);
    assert_string_equal(first.events[0].kind, "alerts");
    assert_string_equal(first.events[0].payload, "{\"id\":3}");
    assert_string_equal(second.events[1].kind, "alerts/active/3");
    assert_string_equal(second.events[1].payload, "{\"id\":3,\"r\":1}");

    struct outbox_copy copy;
    read_outbox(f, &copy);
    assert_int_equal(copy.count, 2);
    assert_string_equal(copy.msgs[0].topic, PREFIX "/alerts");
    assert_string_equal(copy.msgs[0].payload, "{\"id\":3}");
    assert_false(copy.msgs[0].retain);
    assert_true(copy.msgs[0].is_event);
    assert_int_equal(copy.msgs[0].qos, 1);
    assert_int_equal(copy.msgs[0].created_ms, CLOCK_MS);
    assert_string_equal(copy.msgs[1].topic, PREFIX "/alerts/active/3");
    assert_true(copy.msgs[1].retain);
    struct gw_store_outbox_counts counts;
    assert_int_equal(gw_store_outbox_counts(f->core->store, &counts), EST_OK);
    assert_int_equal(counts.events, 2);
    assert_int_equal(counts.readings, 0);
    listener_log_free(&first);
    listener_log_free(&second);
}

static void test_listener_slots_run_out(void **state)
{
    struct fixture *f = *state;
    struct listener_log log = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(gw_core_add_listener(f->core, record_event, &log), EST_OK);
    assert_int_equal(gw_core_add_listener(f->core, record_event, &log), EST_ERR_FULL);
    assert_int_equal(gw_core_publish_event(f->core, "patrol", "{}", false), EST_OK);
    assert_int_equal(log.count, 4); /* the refused one never hears anything */
    listener_log_free(&log);
}

struct patrol_seen {
    int64_t seq, ts_ms, incident;
    char kind[32], author[32];
    char hash[GW_STORE_HASH_LEN], prev_hash[GW_STORE_HASH_LEN];
};

struct patrol_copy {
    struct patrol_seen entries[8];
    size_t count;
};

static bool copy_patrol_entry(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_copy *copy = ctx;
    if (copy->count == 8)
        return false;
    struct patrol_seen *c = &copy->entries[copy->count++];
    c->seq = e->seq;
    c->ts_ms = e->ts_ms;
    c->incident = e->incident;
    snprintf(c->kind, sizeof c->kind, "%s", e->kind);
    snprintf(c->author, sizeof c->author, "%s", e->author);
    memcpy(c->hash, e->hash, sizeof c->hash);
    memcpy(c->prev_hash, e->prev_hash, sizeof c->prev_hash);
    return true;
}

static void test_patrol_entries_chain_and_go_out(void **state)
{
    struct fixture *f = *state;
    struct listener_log log = {0};
    assert_int_equal(gw_core_add_listener(f->core, record_event, &log), EST_OK);
    assert_int_equal(gw_core_patrol(f->core, "checkin", "round one", 0, 0, "desk", NULL), EST_OK);
    assert_int_equal(gw_core_patrol(f->core, "incident", "leak seen", 7, 0, "eng", "{\"k\":1}"),
                     EST_OK);

    struct patrol_copy copy = {0};
    assert_int_equal(gw_store_patrol_list(f->core->store, 0, 0, copy_patrol_entry, &copy), EST_OK);
    assert_int_equal(copy.count, 2);
    assert_int_equal(copy.entries[0].seq, 1);
    assert_int_equal(copy.entries[1].seq, 2);
    assert_int_equal(copy.entries[0].ts_ms, CLOCK_MS);
    assert_string_equal(copy.entries[1].author, "eng");
    assert_int_equal(copy.entries[1].incident, 7);
    assert_string_equal(copy.entries[1].prev_hash, copy.entries[0].hash); /* the chain */
    struct gw_store_patrol_verify verify;
    assert_int_equal(gw_store_patrol_verify(f->core->store, &verify), EST_OK);
    assert_int_equal(verify.first_bad_seq, 0);
    assert_int_equal(verify.count, 2);

    /* each entry went out on patrol, carrying its place in the chain */
    assert_int_equal(log.count, 2);
    assert_string_equal(log.events[1].kind, "patrol");
    cJSON *json = cJSON_Parse(log.events[1].payload);
    assert_non_null(json);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(json, "seq")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(json, "kind")->valuestring, "incident");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(json, "incident")->valueint, 7);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(json, "hash")->valuestring,
                        copy.entries[1].hash);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(json, "prev_hash")->valuestring,
                        copy.entries[0].hash);
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(json, "detail");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(detail, "k")->valueint, 1);
    cJSON_Delete(json);

    struct outbox_copy queued;
    read_outbox(f, &queued);
    assert_int_equal(queued.count, 2);
    assert_string_equal(queued.msgs[0].topic, PREFIX "/patrol");
    assert_string_equal(queued.msgs[1].payload, log.events[1].payload);
    listener_log_free(&log);
}

/* ---- calls from other threads ---- */

static void test_call_to_a_stopped_core_gives_up(void **state)
{
    struct fixture *f = *state;
    struct gw_actor actor = {.user = "desk", .role = "frontdesk", .origin = "http"};
    int64_t start = est_mono_ms();
    char *result = gw_core_call(f->core, "occupancy", "{\"unit\":\"1-101\",\"occupancy\":\"vacant\"}",
                                &actor, 150);
    assert_null(result);
    assert_true(est_mono_ms() - start >= 150);
    assert_false(f->core->unit_vacant[0]); /* nothing ran; destroy frees the call */
}

static cJSON *call_json(struct fixture *f, const char *verb, const char *args, const char *user,
                        const char *role)
{
    struct gw_actor actor = {.user = user, .role = role, .origin = "http"};
    char *text = gw_core_call(f->core, verb, args, &actor, 20000);
    assert_non_null(text);
    cJSON *json = cJSON_Parse(text);
    free(text);
    assert_non_null(json);
    return json;
}

static bool find_patrol_kind(struct fixture *f, const char *kind, const char *author)
{
    struct patrol_copy copy = {0};
    assert_int_equal(gw_store_patrol_list(f->core->store, 0, 0, copy_patrol_entry, &copy), EST_OK);
    for (size_t i = 0; i < copy.count; i++)
        if (strcmp(copy.entries[i].kind, kind) == 0 && strcmp(copy.entries[i].author, author) == 0)
            return true;
    return false;
}

static void test_running_core_answers_calls_and_keeps_events(void **state)
{
    struct fixture *f = *state;
    start_core(f);
    cJSON *ok = call_json(f, "occupancy", "{\"unit\":\"1-101\",\"occupancy\":\"vacant\"}", "desk",
                          "frontdesk");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ok, "ok")));
    cJSON_Delete(ok);

    cJSON *refused = call_json(f, "occupancy", "{\"unit\":\"1-101\",\"occupancy\":\"occupied\"}",
                               "watcher", "viewer");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(refused, "ok")));
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(refused, "error")->valuestring, "viewer"));
    cJSON_Delete(refused);

    cJSON *bad = call_json(f, "occupancy", "[1]", "desk", "frontdesk");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(bad, "ok")));
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(bad, "error")->valuestring, "JSON object"));
    cJSON_Delete(bad);
    stop_core(f);

    assert_true(f->core->unit_vacant[0]); /* only the first call changed anything */
    bool vacant = false;
    assert_int_equal(gw_store_get_occupancy(f->core->store, "1-101", &vacant), EST_OK);
    assert_true(vacant);
    assert_true(find_patrol_kind(f, "occupancy", "desk"));
    assert_false(find_patrol_kind(f, "occupancy", "watcher"));
    /* no broker: the patrol entry's event waits in the outbox */
    struct outbox_copy queued;
    read_outbox(f, &queued);
    const struct queued *patrol = find_queued(&queued, PREFIX "/patrol");
    assert_non_null(patrol);
    assert_true(patrol->is_event);
    assert_non_null(strstr(patrol->payload, "\"author\":\"desk\""));
}

static void test_valve_result_goes_to_the_patrol_log(void **state)
{
    struct fixture *f = *state;
    struct listener_log log = {0};
    assert_int_equal(gw_core_add_listener(f->core, record_event, &log), EST_OK);
    struct gw_sample done = {.item = GW_ITEM_VALVE_RESULT, .device_type = GW_DEVICE_METER,
                             .index = 0, .ts_ms = CLOCK_MS, .error = EST_OK, .valve_close = true};
    snprintf(done.requested_by, sizeof done.requested_by, "eng");
    gw_incidents_on_valve_result(f->core, &done);
    struct gw_sample failed = done;
    failed.error = EST_ERR_TIMEOUT;
    failed.valve_close = false;
    snprintf(failed.requested_by, sizeof failed.requested_by, "rule");
    gw_incidents_on_valve_result(f->core, &failed);

    assert_int_equal(log.count, 2);
    assert_string_equal(log.events[0].kind, "patrol");
    cJSON *first = cJSON_Parse(log.events[0].payload);
    cJSON *second = cJSON_Parse(log.events[1].payload);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "kind")->valuestring, "valve");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "author")->valuestring, "eng");
    const char *text = cJSON_GetObjectItemCaseSensitive(first, "text")->valuestring;
    assert_non_null(strstr(text, "close"));
    assert_non_null(strstr(text, "W-1"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(second, "author")->valuestring, "rule");
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(second, "text")->valuestring, "failed"));
    cJSON_Delete(first);
    cJSON_Delete(second);
    assert_true(find_patrol_kind(f, "valve", "eng"));
    assert_true(find_patrol_kind(f, "valve", "rule"));
    listener_log_free(&log);
}

struct meter_copy {
    int64_t last_good_ms;
    char values[512];
    bool found;
};

static bool copy_meter(void *ctx, const struct gw_store_meter *m)
{
    struct meter_copy *copy = ctx;
    if (strcmp(m->id, "W-1") != 0)
        return true;
    copy->found = true;
    copy->last_good_ms = m->last_good_ms;
    snprintf(copy->values, sizeof copy->values, "%s", m->last_values_json ? m->last_values_json : "");
    return true;
}

static void test_fed_sample_is_stored_and_queued(void **state)
{
    struct fixture *f = *state;
    start_core(f);
    struct gw_sample sample = {
        .item = GW_ITEM_SAMPLE, .device_type = GW_DEVICE_METER, .index = 0,
        .ts_ms = CLOCK_MS - 1000, .quality = GW_QUALITY_GOOD, .error = EST_OK,
    };
    sample.reading.present = UINT64_C(1) << DRV_Q_VOLUME_M3 | UINT64_C(1) << DRV_Q_FLOW_M3H;
    sample.reading.value[DRV_Q_VOLUME_M3] = 123.25;
    sample.reading.value[DRV_Q_FLOW_M3H] = 0;
    assert_int_equal(gw_queue_push(f->core->samples, &sample, 1000), EST_OK);
    stop_core(f); /* the shutdown handles what is queued */

    assert_true(f->core->readings_stored >= 1);
    struct meter_copy meter = {0};
    assert_int_equal(gw_store_meters_list(f->core->store, copy_meter, &meter), EST_OK);
    assert_true(meter.found);
    assert_int_equal(meter.last_good_ms, CLOCK_MS - 1000);
    assert_non_null(strstr(meter.values, "123.25"));
    /* no broker: the reading waits in the outbox, behind nothing */
    struct outbox_copy queued;
    read_outbox(f, &queued);
    const struct queued *reading = find_queued(&queued, PREFIX "/meters/W-1/reading");
    assert_non_null(reading);
    assert_false(reading->is_event);
    assert_int_equal(reading->qos, 0);
    assert_non_null(strstr(reading->payload, "123.25"));
}

struct snapshot_days {
    char day[4][11];
    int64_t ts_ms[4];
    size_t count;
};

static bool copy_snapshot(void *ctx, const struct gw_store_snapshot *s)
{
    struct snapshot_days *days = ctx;
    if (days->count < 4) {
        snprintf(days->day[days->count], sizeof days->day[0], "%s", s->day);
        days->ts_ms[days->count] = s->ts_ms;
    }
    days->count++;
    return true;
}

/* The day's snapshot is the first reading of each site day: in
 * Europe/Berlin the day of the autumn change has 25 hours, so a reading at
 * 22:59 UTC is still on it (23:59 CET), unlike the day before (00:59 CEST
 * the next day would be at 22:59 UTC). */
static void test_snapshots_follow_the_site_day_across_dst(void **state)
{
    struct fixture *f = *state;
    free(f->config->gateway.timezone);
    f->config->gateway.timezone = strdup("Europe/Berlin");
    assert_non_null(f->config->gateway.timezone);
    start_core(f);
    static const char *const stamps[] = {
        "2026-10-24T21:59:00Z", /* 23:59 CEST on the 24th */
        "2026-10-24T22:01:00Z", /* 00:01 CEST on the 25th */
        "2026-10-25T22:59:00Z", /* 23:59 CET on the 25th */
        "2026-10-25T23:01:00Z", /* 00:01 CET on the 26th */
    };
    int64_t ts[4];
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(est_parse_ts(stamps[i], &ts[i]), EST_OK);
        struct gw_sample sample = {
            .item = GW_ITEM_SAMPLE, .device_type = GW_DEVICE_METER, .index = 0,
            .ts_ms = ts[i], .quality = GW_QUALITY_GOOD, .error = EST_OK,
        };
        sample.reading.present = UINT64_C(1) << DRV_Q_VOLUME_M3 | UINT64_C(1) << DRV_Q_FLOW_M3H;
        sample.reading.value[DRV_Q_VOLUME_M3] = 100.0 + (double)i;
        sample.reading.value[DRV_Q_FLOW_M3H] = 0;
        assert_int_equal(gw_queue_push(f->core->samples, &sample, 1000), EST_OK);
    }
    stop_core(f);
    struct snapshot_days days = {0};
    assert_int_equal(gw_store_snapshots_list(f->core->store, "W-1", "2026-10-01", "2026-10-31",
                                             copy_snapshot, &days), EST_OK);
    assert_int_equal(days.count, 3);
    assert_string_equal(days.day[0], "2026-10-24");
    assert_int_equal(days.ts_ms[0], ts[0]);
    assert_string_equal(days.day[1], "2026-10-25");
    assert_int_equal(days.ts_ms[1], ts[1]);
    assert_string_equal(days.day[2], "2026-10-26");
    assert_int_equal(days.ts_ms[2], ts[3]);
}

static void test_fed_panel_and_valve_result_take_their_stages(void **state)
{
    struct fixture *f = *state;
    start_core(f);
    struct gw_sample panel = {
        .item = GW_ITEM_SAMPLE, .device_type = GW_DEVICE_PANEL, .index = 0,
        .ts_ms = CLOCK_MS - 500, .quality = GW_QUALITY_GOOD, .error = EST_OK,
    };
    panel.reading.nzones = 3;
    panel.reading.zones[1] = DRV_ZONE_ALARM;
    /* a panel read whole: its flags are known (an unread panel is "unknown") */
    panel.reading.present |= (UINT64_C(1) << DRV_Q_PANEL_ALARM) | (UINT64_C(1) << DRV_Q_PANEL_FAULT);
    panel.reading.value[DRV_Q_PANEL_ALARM] = 1;
    struct gw_sample valve = {.item = GW_ITEM_VALVE_RESULT, .device_type = GW_DEVICE_METER,
                              .index = 0, .ts_ms = CLOCK_MS, .error = EST_OK, .valve_close = true};
    snprintf(valve.requested_by, sizeof valve.requested_by, "eng");
    assert_int_equal(gw_queue_push(f->core->samples, &panel, 1000), EST_OK);
    assert_int_equal(gw_queue_push(f->core->samples, &valve, 1000), EST_OK);
    stop_core(f);

    assert_true(find_patrol_kind(f, "valve", "eng"));
    /* the panel's state goes out retained; the poller's own failed poll of
     * the panel may have gone out too, so look for ours among them */
    struct outbox_copy queued;
    read_outbox(f, &queued);
    bool ours = false;
    for (size_t i = 0; i < queued.count; i++) {
        const struct queued *q = &queued.msgs[i];
        if (strcmp(q->topic, PREFIX "/panels/FP-1/state") != 0)
            continue;
        assert_true(q->retain);
        assert_true(q->is_event);
        cJSON *json = cJSON_Parse(q->payload);
        assert_non_null(json);
        const cJSON *zones = cJSON_GetObjectItemCaseSensitive(json, "zones");
        if (cJSON_GetArraySize(zones) == 3) {
            ours = true;
            const cJSON *zone2 = cJSON_GetArrayItem(zones, 1);
            assert_int_equal(cJSON_GetObjectItemCaseSensitive(zone2, "zone")->valueint, 2);
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(zone2, "zone_alarm")));
            assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(zones, 0), "zone_alarm")));
        }
        cJSON_Delete(json);
    }
    assert_true(ours);
    /* and the zone in alarm raised an incident, queued on alerts */
    const struct queued *alert = find_queued(&queued, PREFIX "/alerts");
    assert_non_null(alert);
    assert_true(alert->is_event);
    assert_non_null(strstr(alert->payload, "FP-1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_syncs_inventory_and_starts_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_published_event_reaches_listeners_and_outbox, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_slots_run_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patrol_entries_chain_and_go_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_to_a_stopped_core_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_core_answers_calls_and_keeps_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_valve_result_goes_to_the_patrol_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fed_sample_is_stored_and_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_follow_the_site_day_across_dst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fed_panel_and_valve_result_take_their_stages, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
