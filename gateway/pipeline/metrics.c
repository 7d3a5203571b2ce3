/* metrics.c - the daemon's health (ok, degraded, failing, with reasons) and
 * its metrics in the Prometheus text format, gathered on the core thread
 * from the core, the store, the pollers' statistics and the process. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core.h"
#include "est_alloc.h"

/* ------------------------------------------------------------------ */
/* Health                                                              */
/* ------------------------------------------------------------------ */

/* How the devices of one bus answered at their last poll. */
struct bus_answers {
    size_t polled;      /* devices polled at least once */
    size_t failing;     /* of those, the last poll got no answer */
};

static void count_bus_answers(const struct gw_core *core, struct bus_answers *buses)
{
    const struct gw_config *c = core->config;
    for (size_t i = 0; i < c->nmeters; i++) {
        const struct gw_meter_state *m = &core->meters[i];
        if (m->last_poll_ms == 0)
            continue;
        buses[c->meters[i].bus].polled++;
        buses[c->meters[i].bus].failing += m->last_quality == GW_QUALITY_ERROR;
    }
    for (size_t i = 0; i < c->npanels; i++) {
        const struct gw_panel_state *p = &core->panels[i];
        if (p->last_poll_ms == 0)
            continue;
        buses[c->panels[i].bus].polled++;
        buses[c->panels[i].bus].failing += p->last_quality == GW_QUALITY_ERROR;
    }
}

static bool outbox_above_half(struct gw_core *core)
{
    struct gw_store_outbox_counts counts;
    if (gw_store_outbox_counts(core->store, &counts) != EST_OK)
        return false;
    double limit = core->config->mqtt.outbox_limit_mb * 1024.0 * 1024.0;
    return (double)counts.reading_bytes > limit / 2;
}

/* The health, with a reason for each problem added to reasons (may be
 * NULL: the word only). */
static enum gw_health assess(struct gw_core *core, cJSON *reasons)
{
    enum gw_health health = GW_HEALTH_OK;
    const struct gw_config *c = core->config;
#define PROBLEM(level, ...)                                                                 \
    do {                                                                                    \
        if (health < (level))                                                               \
            health = (level);                                                               \
        if (reasons != NULL) {                                                              \
            char *text_ = est_asprintf(__VA_ARGS__);                                        \
            if (text_ != NULL)                                                              \
                cJSON_AddItemToArray(reasons, cJSON_CreateString(text_));                   \
            free(text_);                                                                    \
        }                                                                                   \
    } while (0)

    if (core->store_degraded)
        PROBLEM(GW_HEALTH_FAILING, "store not writable: %s",
                core->storage_failure[0] ? core->storage_failure : "writes failing");
    else if (core->storage_failing_since_ms != 0)
        PROBLEM(GW_HEALTH_DEGRADED, "storage_failing: %s", core->storage_failure);

    struct bus_answers *buses = calloc(c->nbuses ? c->nbuses : 1, sizeof *buses);
    if (buses != NULL) {
        count_bus_answers(core, buses);
        size_t polled = 0, silent = 0;
        for (size_t b = 0; b < c->nbuses; b++) {
            if (buses[b].polled == 0)
                continue;
            polled++;
            if (buses[b].failing == buses[b].polled) {
                silent++;
                PROBLEM(GW_HEALTH_DEGRADED, "bus %s: no device answers", c->buses[b].name);
            } else if (buses[b].failing > 0) {
                PROBLEM(GW_HEALTH_DEGRADED, "bus %s: %zu of %zu devices not answering",
                        c->buses[b].name, buses[b].failing, buses[b].polled);
            }
        }
        if (polled > 0 && silent == polled)
            PROBLEM(GW_HEALTH_FAILING, "no bus answering");
        free(buses);
    }
    if (!gw_mqtt_connected(core->mqtt))
        PROBLEM(GW_HEALTH_DEGRADED, "mqtt disconnected");
    const char *failing[8];
    size_t nfailing = gw_notify_failing_channels(core->notify, failing, 8);
    for (size_t i = 0; i < nfailing && i < 8; i++)
        PROBLEM(GW_HEALTH_DEGRADED, "notify channel %s failing for %d s or more", failing[i],
                c->notify.failing_after_s);
    if (outbox_above_half(core))
        PROBLEM(GW_HEALTH_DEGRADED, "outbox above half its limit (%.2f MB)",
                c->mqtt.outbox_limit_mb);
#undef PROBLEM
    return health;
}

static const char *health_word(enum gw_health health)
{
    return health == GW_HEALTH_FAILING ? "failing" : health == GW_HEALTH_DEGRADED ? "degraded" : "ok";
}

const char *gw_core_health_word(struct gw_core *core)
{
    return health_word(assess(core, NULL));
}

char *gw_core_health_json(struct gw_core *core)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *reasons = cJSON_CreateArray();
    if (o == NULL || reasons == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(reasons);
        return NULL;
    }
    enum gw_health health = assess(core, reasons);
    cJSON_AddStringToObject(o, "status", health_word(health));
    cJSON_AddItemToObject(o, "reasons", reasons);
    return gw_json_finish(o);
}

bool gw_core_health_changed(struct gw_core *core)
{
    int health = 1 + (int)assess(core, NULL);
    if (health == core->health_published)
        return false;
    core->health_published = health;
    return true;
}

/* ------------------------------------------------------------------ */
/* Prometheus text                                                     */
/* ------------------------------------------------------------------ */

/* A growing text buffer; failed stays set after the first failed append. */
struct text {
    char *data;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || est_vec_reserve((void **)&t->data, &t->cap, t->len + (size_t)n + 1, 1) != EST_OK) {
        t->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A label value with \, " and newline escaped as the format asks. */
static void put_label_value(struct text *t, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\')
            put(t, "\\\\");
        else if (*c == '"')
            put(t, "\\\"");
        else if (*c == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *c);
    }
}

static void put_family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} number */
static void put_labelled(struct text *t, const char *name, const char *label, const char *value,
                         double number)
{
    put(t, "%s{%s=\"", name, label);
    put_label_value(t, value);
    put(t, "\"} %.17g\n", number);
}

static void put_bus_metrics(struct text *t, const struct gw_core *core)
{
    const struct gw_config *c = core->config;
    struct gw_poller_stats *stats = calloc(c->nbuses ? c->nbuses : 1, sizeof *stats);
    if (stats == NULL) {
        t->failed = true;
        return;
    }
    for (size_t b = 0; b < c->nbuses; b++)
        if (core->pollers != NULL && core->pollers[b] != NULL)
            gw_poller_get_stats(core->pollers[b], &stats[b]);
    put_family(t, "estate_bus_polls_total", "counter", "Device polls made on the bus.");
    for (size_t b = 0; b < c->nbuses; b++)
        put_labelled(t, "estate_bus_polls_total", "bus", c->buses[b].name, (double)stats[b].polls);
    put_family(t, "estate_bus_errors_total", "counter", "Device polls that got no answer.");
    for (size_t b = 0; b < c->nbuses; b++)
        put_labelled(t, "estate_bus_errors_total", "bus", c->buses[b].name,
                     (double)stats[b].failed_polls);
    put_family(t, "estate_bus_timeouts_total", "counter", "Failed device polls that timed out.");
    for (size_t b = 0; b < c->nbuses; b++)
        put_labelled(t, "estate_bus_timeouts_total", "bus", c->buses[b].name,
                     (double)stats[b].timeout_polls);
    put_family(t, "estate_bus_poll_duration_seconds", "histogram",
               "Time one device poll took, retries included.");
    for (size_t b = 0; b < c->nbuses; b++) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= GW_POLL_LATENCY_BUCKETS; i++) {
            cumulative += stats[b].latency_counts[i];
            put(t, "estate_bus_poll_duration_seconds_bucket{bus=\"");
            put_label_value(t, c->buses[b].name);
            if (i < GW_POLL_LATENCY_BUCKETS)
                put(t, "\",le=\"%g\"} %llu\n", gw_poll_latency_bounds_s[i],
                    (unsigned long long)cumulative);
            else
                put(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        put_labelled(t, "estate_bus_poll_duration_seconds_sum", "bus", c->buses[b].name,
                     stats[b].latency_sum_s);
        put_labelled(t, "estate_bus_poll_duration_seconds_count", "bus", c->buses[b].name,
                     (double)cumulative);
    }
    free(stats);
}

/* Counts per name (a rule, a work-order state). */
struct name_count {
    char *name;
    uint64_t count;
};
struct name_counts {
    struct name_count *items;
    size_t n, cap;
};

static bool count_name(struct name_counts *nc, const char *name)
{
    for (size_t i = 0; i < nc->n; i++)
        if (strcmp(nc->items[i].name, name) == 0) {
            nc->items[i].count++;
            return true;
        }
    char *copy = strdup(name);
    if (copy == NULL || EST_VEC_RESERVE(nc->items, nc->cap, nc->n + 1) != EST_OK) {
        free(copy);
        return false;
    }
    nc->items[nc->n++] = (struct name_count){copy, 1};
    return true;
}

static void put_name_counts(struct text *t, const char *metric, const char *label,
                            struct name_counts *nc)
{
    for (size_t i = 0; i < nc->n; i++) {
        put_labelled(t, metric, label, nc->items[i].name, (double)nc->items[i].count);
        free(nc->items[i].name);
    }
    free(nc->items);
}

static bool count_incident(void *ctx, const struct gw_store_incident *in)
{
    return count_name(ctx, in->rule ? in->rule : "");
}

static void put_incident_metrics(struct text *t, struct gw_core *core)
{
    struct name_counts rules = {0};
    gw_store_incidents_open(core->store, count_incident, &rules);
    put_family(t, "estate_incidents_open", "gauge", "Open incidents per rule.");
    put_name_counts(t, "estate_incidents_open", "rule", &rules);
}

struct workorder_counts {
    struct name_counts states;
    uint64_t breached;             /* an SLA was breached */
};

static bool count_workorder(void *ctx, const struct gw_store_workorder *wo)
{
    struct workorder_counts *wc = ctx;
    wc->breached += wo->escalated;
    return count_name(&wc->states, wo->state ? wo->state : "");
}

static void put_workorder_metrics(struct text *t, struct gw_core *core)
{
    struct workorder_counts wc = {0};
    gw_store_workorders_list(core->store, NULL, 0, count_workorder, &wc);
    put_family(t, "estate_workorders", "gauge", "Work orders per state.");
    put_name_counts(t, "estate_workorders", "state", &wc.states);
    put_family(t, "estate_workorders_sla_breached", "gauge", "Work orders that breached an SLA.");
    put(t, "estate_workorders_sla_breached %llu\n", (unsigned long long)wc.breached);
}

static bool take_oldest(void *ctx, const struct gw_store_outbox_msg *msg)
{
    *(int64_t *)ctx = msg->created_ms;
    return false;
}

static void put_outbox_metrics(struct text *t, struct gw_core *core)
{
    struct gw_store_outbox_counts counts = {0};
    gw_store_outbox_counts(core->store, &counts);
    int64_t oldest_ms = 0;
    gw_store_outbox_peek(core->store, 0, 1, take_oldest, &oldest_ms);
    int64_t now = gw_core_now_ms(core);
    double age_s = oldest_ms > 0 && now > oldest_ms ? (double)(now - oldest_ms) / 1000.0 : 0.0;
    put_family(t, "estate_outbox_messages", "gauge", "Messages waiting in the outbox.");
    put(t, "estate_outbox_messages{kind=\"event\"} %llu\n", (unsigned long long)counts.events);
    put(t, "estate_outbox_messages{kind=\"reading\"} %llu\n", (unsigned long long)counts.readings);
    put_family(t, "estate_outbox_bytes", "gauge", "Payload bytes waiting in the outbox.");
    put(t, "estate_outbox_bytes{kind=\"event\"} %llu\n", (unsigned long long)counts.event_bytes);
    put(t, "estate_outbox_bytes{kind=\"reading\"} %llu\n", (unsigned long long)counts.reading_bytes);
    put_family(t, "estate_outbox_limit_bytes", "gauge", "Readings' bytes the outbox keeps offline.");
    put(t, "estate_outbox_limit_bytes %.17g\n", core->config->mqtt.outbox_limit_mb * 1024.0 * 1024.0);
    put_family(t, "estate_outbox_oldest_age_seconds", "gauge",
               "Age of the oldest message in the outbox (0 when empty).");
    put(t, "estate_outbox_oldest_age_seconds %.3f\n", age_s);
    put_family(t, "estate_readings_dropped_total", "counter",
               "Readings dropped past the outbox limit since start.");
    put(t, "estate_readings_dropped_total %llu\n", (unsigned long long)core->readings_dropped);
}

static void put_mqtt_metrics(struct text *t, struct gw_core *core)
{
    put_family(t, "estate_mqtt_connected", "gauge", "1 while connected to the broker.");
    put(t, "estate_mqtt_connected %d\n", gw_mqtt_connected(core->mqtt) ? 1 : 0);
    put_family(t, "estate_mqtt_messages_published_total", "counter",
               "Messages handed to the broker (readings and outbox messages).");
    put(t, "estate_mqtt_messages_published_total %llu\n",
        (unsigned long long)(core->readings_published + core->outbox_published));
}

static double file_size(const char *dir, const char *name)
{
    char *path = est_asprintf("%s/%s", dir, name);
    struct stat st;
    double size = path != NULL && stat(path, &st) == 0 ? (double)st.st_size : 0.0;
    free(path);
    return size;
}

static void put_store_metrics(struct text *t, struct gw_core *core)
{
    const char *dir = core->config->gateway.data_dir;
    put_family(t, "estate_sqlite_file_bytes", "gauge", "Size of the SQLite database files.");
    put(t, "estate_sqlite_file_bytes{file=\"db\"} %.17g\n", file_size(dir, GW_STORE_DB_FILE));
    put(t, "estate_sqlite_file_bytes{file=\"wal\"} %.17g\n", file_size(dir, GW_STORE_DB_FILE "-wal"));
    struct gw_store_checkpoint_stats ck;
    gw_store_checkpoint_stats(core->store, &ck);
    put_family(t, "estate_sqlite_wal_pages", "gauge", "Pages in the SQLite WAL after the last commit.");
    put(t, "estate_sqlite_wal_pages %d\n", ck.wal_pages);
    put_family(t, "estate_sqlite_checkpoints_total", "counter",
               "WAL checkpoints completed since start (at open, every 1000 WAL pages, disk full).");
    put(t, "estate_sqlite_checkpoints_total %llu\n", (unsigned long long)ck.checkpoints);
    put_family(t, "estate_sqlite_last_checkpoint_timestamp_seconds", "gauge",
               "Unix time of the last completed WAL checkpoint (0 none since start).");
    put(t, "estate_sqlite_last_checkpoint_timestamp_seconds %.3f\n", ck.last_checkpoint_ms / 1000.0);
    put_family(t, "estate_storage_failing", "gauge", "1 while writes to the store fail.");
    put(t, "estate_storage_failing %d\n", core->store_degraded || core->storage_failing_since_ms != 0);
    put_family(t, "estate_health", "gauge", "0 ok, 1 degraded, 2 failing.");
    put(t, "estate_health %d\n", (int)assess(core, NULL));
}

static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f == NULL)
        return 0.0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0.0;
}

static void put_process_metrics(struct text *t)
{
    struct rusage ru;
    double cpu = 0.0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    put_family(t, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    put(t, "process_cpu_seconds_total %.6f\n", cpu);
    put_family(t, "process_resident_memory_bytes", "gauge", "Resident memory size.");
    put(t, "process_resident_memory_bytes %.17g\n", resident_bytes());
}

char *gw_core_metrics_text(struct gw_core *core)
{
    struct text t = {0};
    put_bus_metrics(&t, core);
    put_incident_metrics(&t, core);
    put_outbox_metrics(&t, core);
    put_mqtt_metrics(&t, core);
    put_workorder_metrics(&t, core);
    put_store_metrics(&t, core);
    put_process_metrics(&t);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}
