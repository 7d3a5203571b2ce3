/* reload.c - the difference between the running configuration and a new
 * one: meter and panel index maps by id, the buses whose pollers may keep
 * running (same settings, same devices polled the same way), the settings
 * that wait for a restart and the changes in words. */
#include "reload.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"

/* At most this many ids are named per kind of change; the rest are counted. */
#define NAMED_MAX 20

static bool same_text(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool same_bus(const struct gw_bus_config *a, const struct gw_bus_config *b)
{
    return same_text(a->name, b->name) && a->type == b->type && same_text(a->host, b->host) &&
           a->port == b->port && same_text(a->device, b->device) && a->baud == b->baud &&
           a->parity == b->parity && a->data_bits == b->data_bits &&
           a->stop_bits == b->stop_bits && a->timeout_ms == b->timeout_ms &&
           a->retries == b->retries && a->poll_interval_ms == b->poll_interval_ms &&
           a->slave_switch_delay_ms == b->slave_switch_delay_ms &&
           a->request_gap_ms == b->request_gap_ms && a->pipeline_depth == b->pipeline_depth &&
           a->protocol == b->protocol;
}

static bool same_options(const struct drv_device_options *a, const struct drv_device_options *b)
{
    if (a->function != b->function || a->word_order != b->word_order ||
        a->address_base != b->address_base || a->max_read_regs != b->max_read_regs ||
        a->slow_every != b->slow_every || a->nzones != b->nzones)
        return false;
    if (a->zone_addresses == NULL || b->zone_addresses == NULL)
        return a->zone_addresses == b->zone_addresses;
    return memcmp(a->zone_addresses, b->zone_addresses, a->nzones * sizeof *a->zone_addresses) == 0;
}

/* Whether the poller polls the two meters the same way (what else a meter
 * has, unit, category, parent, location, does not reach the poller). */
static bool same_polled_meter(const struct gw_meter_config *a, const struct gw_meter_config *b)
{
    return same_text(a->id, b->id) && a->model == b->model && a->slave == b->slave &&
           a->poll_interval_ms == b->poll_interval_ms && a->valve == b->valve &&
           same_text(a->address, b->address) &&
           memcmp(a->wire_address, b->wire_address, sizeof a->wire_address) == 0 &&
           same_options(&a->options, &b->options);
}

static bool same_polled_panel(const struct gw_panel_config *a, const struct gw_panel_config *b)
{
    return same_text(a->id, b->id) && a->model == b->model && a->slave == b->slave &&
           a->poll_interval_ms == b->poll_interval_ms && a->nzones == b->nzones &&
           same_options(&a->options, &b->options);
}

/* The devices of old bus ob and new bus nb, in config order, are polled
 * alike (a poller keeps its devices' indices into its own config). */
static bool same_devices(const struct gw_config *old, size_t ob, const struct gw_config *next,
                         size_t nb)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < old->nmeters && old->meters[i].bus != ob)
            i++;
        while (j < next->nmeters && next->meters[j].bus != nb)
            j++;
        if (i == old->nmeters || j == next->nmeters)
            break;
        if (!same_polled_meter(&old->meters[i++], &next->meters[j++]))
            return false;
    }
    if (i != old->nmeters || j != next->nmeters)
        return false;
    i = j = 0;
    for (;;) {
        while (i < old->npanels && old->panels[i].bus != ob)
            i++;
        while (j < next->npanels && next->panels[j].bus != nb)
            j++;
        if (i == old->npanels || j == next->npanels)
            break;
        if (!same_polled_panel(&old->panels[i++], &next->panels[j++]))
            return false;
    }
    return i == old->npanels && j == next->npanels;
}

static int bus_index(const struct gw_config *c, const char *name)
{
    for (size_t i = 0; i < c->nbuses; i++)
        if (strcmp(c->buses[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* "meters added: E-9, E-10" (at most NAMED_MAX named, "and N more"). */
struct id_list {
    const char *what;
    char *text;
    size_t count;
};

static void list_add(struct id_list *l, const char *id)
{
    l->count++;
    if (l->count > NAMED_MAX)
        return;
    char *grown = l->text ? est_asprintf("%s, %s", l->text, id) : est_asprintf("%s: %s", l->what, id);
    if (grown != NULL) {
        free(l->text);
        l->text = grown;
    }
}

static void list_finish(struct id_list *l, cJSON *changes)
{
    if (l->count == 0)
        return;
    char *line = l->count > NAMED_MAX
                     ? est_asprintf("%s and %zu more", l->text, l->count - NAMED_MAX)
                     : NULL;
    cJSON_AddItemToArray(changes, cJSON_CreateString(line ? line : l->text ? l->text : l->what));
    free(line);
    free(l->text);
    l->text = NULL;
}

static void note(cJSON *array, const char *text)
{
    cJSON_AddItemToArray(array, cJSON_CreateString(text));
}

static void map_meters(const struct gw_config *old, const struct gw_config *next,
                       struct gw_reload_diff *d)
{
    struct id_list added = {.what = "meters added"}, removed = {.what = "meters removed"},
                   changed = {.what = "meters changed"};
    for (size_t i = 0; i < old->nmeters; i++) {
        int j = gw_config_meter_index(next, old->meters[i].id);
        d->meter_map[i] = j < 0 ? GW_RELOAD_GONE : (uint32_t)j;
        if (j < 0) {
            list_add(&removed, old->meters[i].id);
            continue;
        }
        const struct gw_meter_config *a = &old->meters[i], *b = &next->meters[j];
        bool same_unit = (a->unit < 0 && b->unit < 0) ||
                         (a->unit >= 0 && b->unit >= 0 &&
                          strcmp(old->units[a->unit].id, next->units[b->unit].id) == 0);
        if (!same_polled_meter(a, b) || !same_unit || a->category != b->category ||
            a->kind != b->kind || !same_text(a->parent_id, b->parent_id) ||
            !same_text(a->serial, b->serial) || !same_text(a->location, b->location) ||
            !same_text(a->building, b->building) || a->rated_power_w != b->rated_power_w ||
            strcmp(old->buses[a->bus].name, next->buses[b->bus].name) != 0)
            list_add(&changed, a->id);
    }
    for (size_t j = 0; j < next->nmeters; j++)
        if (gw_config_meter_index(old, next->meters[j].id) < 0)
            list_add(&added, next->meters[j].id);
    list_finish(&added, d->changes);
    list_finish(&removed, d->changes);
    list_finish(&changed, d->changes);
}

static void map_panels(const struct gw_config *old, const struct gw_config *next,
                       struct gw_reload_diff *d)
{
    struct id_list added = {.what = "fire panels added"}, removed = {.what = "fire panels removed"};
    for (size_t i = 0; i < old->npanels; i++) {
        int j = gw_config_panel_index(next, old->panels[i].id);
        d->panel_map[i] = j < 0 ? GW_RELOAD_GONE : (uint32_t)j;
        if (j < 0)
            list_add(&removed, old->panels[i].id);
    }
    for (size_t j = 0; j < next->npanels; j++)
        if (gw_config_panel_index(old, next->panels[j].id) < 0)
            list_add(&added, next->panels[j].id);
    list_finish(&added, d->changes);
    list_finish(&removed, d->changes);
}

static void compare_units(const struct gw_config *old, const struct gw_config *next, cJSON *changes)
{
    struct id_list added = {.what = "units added"}, removed = {.what = "units removed"};
    for (size_t i = 0; i < old->nunits; i++)
        if (gw_config_unit_index(next, old->units[i].id) < 0)
            list_add(&removed, old->units[i].id);
    for (size_t j = 0; j < next->nunits; j++)
        if (gw_config_unit_index(old, next->units[j].id) < 0)
            list_add(&added, next->units[j].id);
    list_finish(&added, changes);
    list_finish(&removed, changes);
}

static void compare_buses(const struct gw_config *old, const struct gw_config *next,
                          struct gw_reload_diff *d)
{
    struct id_list added = {.what = "buses added"}, removed = {.what = "buses removed"},
                   restarted = {.what = "buses restarted (settings or devices changed)"};
    bool same_offline = old->rules.meter_offline.failures == next->rules.meter_offline.failures;
    for (size_t j = 0; j < next->nbuses; j++) {
        int i = bus_index(old, next->buses[j].name);
        d->bus_kept[j] = GW_RELOAD_NEW_BUS;
        if (i < 0) {
            list_add(&added, next->buses[j].name);
        } else if (same_offline && same_bus(&old->buses[i], &next->buses[j]) &&
                   same_devices(old, (size_t)i, next, j)) {
            d->bus_kept[j] = (size_t)i;
        } else {
            list_add(&restarted, next->buses[j].name);
        }
    }
    for (size_t i = 0; i < old->nbuses; i++)
        if (bus_index(next, old->buses[i].name) < 0)
            list_add(&removed, old->buses[i].name);
    list_finish(&added, d->changes);
    list_finish(&removed, d->changes);
    list_finish(&restarted, d->changes);
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!same_text(a[i], b[i]))
            return false;
    return true;
}

static bool same_workorders(const struct gw_workorder_config *a, const struct gw_workorder_config *b)
{
    return a->arrive_within_s == b->arrive_within_s && a->resolve_within_s == b->resolve_within_s &&
           a->unconfirmed_after_s == b->unconfirmed_after_s &&
           same_list(a->escalation_roles, a->nescalation_roles, b->escalation_roles,
                     b->nescalation_roles) &&
           same_list(a->escalation_contacts, a->nescalation_contacts, b->escalation_contacts,
                     b->nescalation_contacts);
}

/* Settings the daemon reads once at start (the MQTT client, the console's
 * listener, the topic prefix): they keep their running value. */
static void compare_restart_only(const struct gw_config *old, const struct gw_config *next,
                                 cJSON *restart)
{
    const struct gw_mqtt_config *a = &old->mqtt, *b = &next->mqtt;
    const struct { const char *key; bool same; } rows[] = {
        {"gateway.id", same_text(old->gateway.id, next->gateway.id)},
        {"gateway.site", same_text(old->gateway.site, next->gateway.site)},
        {"gateway.integrity_check_s",
         old->gateway.integrity_check_s == next->gateway.integrity_check_s},
        {"mqtt.uri", same_text(a->uri, b->uri)},
        {"mqtt.client_id", same_text(a->client_id, b->client_id)},
        {"mqtt.username", same_text(a->username, b->username)},
        {"mqtt.password_file", same_text(a->password_file, b->password_file)},
        {"mqtt.ca_file", same_text(a->ca_file, b->ca_file)},
        {"mqtt.cert_file", same_text(a->cert_file, b->cert_file)},
        {"mqtt.key_file", same_text(a->key_file, b->key_file)},
        {"mqtt.topic_prefix", same_text(a->topic_prefix, b->topic_prefix)},
        {"mqtt.keepalive_s", a->keepalive_s == b->keepalive_s},
        {"http.listen", same_text(old->http.listen, next->http.listen)},
        {"http.users_file", same_text(old->http.users_file, next->http.users_file)},
        {"http.static_dir", same_text(old->http.static_dir, next->http.static_dir)},
        {"http.hosts", same_text(old->http.hosts, next->http.hosts)},
        {"http.session_ttl_s", old->http.session_ttl_s == next->http.session_ttl_s},
        {"http.metrics", old->http.metrics == next->http.metrics},
        {"http.require_private_users_file",
         old->http.require_private_users_file == next->http.require_private_users_file},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!rows[i].same)
            note(restart, rows[i].key);
}

static void compare_settings(const struct gw_config *old, const struct gw_config *next, cJSON *changes)
{
    if (memcmp(&old->rules, &next->rules, sizeof old->rules) != 0)
        note(changes, "rules changed");
    if (!same_workorders(&old->workorders, &next->workorders))
        note(changes, "workorders changed");
    if (!same_text(old->gateway.timezone, next->gateway.timezone))
        note(changes, "gateway.timezone changed");
    if (old->gateway.language != next->gateway.language)
        note(changes, "gateway.language changed");
    if (old->gateway.backup_at_min != next->gateway.backup_at_min ||
        old->gateway.backup_keep != next->gateway.backup_keep ||
        !same_text(old->gateway.backup_dir, next->gateway.backup_dir))
        note(changes, "daily backup settings changed");
    if (old->mqtt.qos_readings != next->mqtt.qos_readings ||
        old->mqtt.qos_events != next->mqtt.qos_events ||
        old->mqtt.outbox_limit_mb != next->mqtt.outbox_limit_mb ||
        !same_text(old->mqtt.command_roles, next->mqtt.command_roles))
        note(changes, "mqtt QoS, outbox limit or command roles changed");
    if (old->retention.raw_readings_days != next->retention.raw_readings_days ||
        old->retention.patrol_days != next->retention.patrol_days)
        note(changes, "retention changed");
}

est_err gw_reload_diff(const struct gw_config *old, const struct gw_config *next,
                       struct gw_reload_diff *d)
{
    *d = (struct gw_reload_diff){
        .meter_map = malloc((old->nmeters + 1) * sizeof *d->meter_map),
        .panel_map = malloc((old->npanels + 1) * sizeof *d->panel_map),
        .bus_kept = malloc((next->nbuses + 1) * sizeof *d->bus_kept),
        .changes = cJSON_CreateArray(),
        .restart_needed = cJSON_CreateArray(),
    };
    if (d->meter_map == NULL || d->panel_map == NULL || d->bus_kept == NULL ||
        d->changes == NULL || d->restart_needed == NULL) {
        gw_reload_diff_free(d);
        return EST_ERR_NOMEM;
    }
    if (!same_text(old->gateway.data_dir, next->gateway.data_dir)) {
        d->refusal = est_asprintf("gateway.data_dir changed (%s -> %s): the database cannot move "
                                  "while the gateway runs; restart it instead",
                                  old->gateway.data_dir, next->gateway.data_dir);
        return d->refusal ? EST_OK : EST_ERR_NOMEM;
    }
    compare_buses(old, next, d);
    map_meters(old, next, d);
    map_panels(old, next, d);
    compare_units(old, next, d->changes);
    compare_settings(old, next, d->changes);
    compare_restart_only(old, next, d->restart_needed);
    return EST_OK;
}

void gw_reload_diff_free(struct gw_reload_diff *d)
{
    free(d->meter_map);
    free(d->panel_map);
    free(d->bus_kept);
    cJSON_Delete(d->changes);
    cJSON_Delete(d->restart_needed);
    free(d->refusal);
    *d = (struct gw_reload_diff){0};
}
