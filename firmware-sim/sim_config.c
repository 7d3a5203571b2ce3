/* sim_config.c - loads estate-sim's libconfig file into a world and a
 * scenario: --set overrides on the tree, then defaults, parse (unknown keys
 * and bad values are "FILE:LINE: message" errors), cross-checks, and the
 * benchmark generator. See sim_config.h and firmware-sim/README.md. */
#include "sim_config.h"

#include "cnproto.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"
#include "est_override.h"

#define DEFAULT_TICK_MS 200
#define LARGE_SITE_DEVICES 2000
#define LARGE_SITE_TICK_MS 1000
#define DEFAULT_SERIAL_BASE 10000001u

struct loader {
    const char *path;                 /* main file, for settings without a source */
    struct sim_config_errors *errors;
    struct sim_setup *setup;
    struct sim_world *world;
    char **parent_ids;                /* per device: its parent's id, or NULL */
    size_t parent_ids_cap;
    const config_setting_t **where;   /* per device: its setting (for messages) */
    size_t where_cap;
    size_t ndevices;
    bool tick_set;                    /* sim.tick_ms given explicitly */
};

/* ------------------------------------------------------------- messages */

static void add_message(struct sim_config_errors *errors, const char *text)
{
    if (EST_VEC_RESERVE(errors->messages, errors->cap, errors->count + 1) != EST_OK)
        return;
    errors->messages[errors->count] = strdup(text);
    if (errors->messages[errors->count] != NULL)
        errors->count++;
}

static void error_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = est_vasprintf(fmt, ap);
    va_end(ap);
    const char *file = s ? config_setting_source_file(s) : NULL;
    unsigned lineno = s ? config_setting_source_line(s) : 0;
    if (file == NULL)
        file = lineno ? (ld->path ? ld->path : "(config)") : "--set";
    char *line = lineno ? est_asprintf("%s:%u: %s", file, lineno, msg ? msg : "out of memory")
                        : est_asprintf("%s: %s", file, msg ? msg : "out of memory");
    if (line != NULL)
        add_message(ld->errors, line);
    free(line);
    free(msg);
}

void sim_config_errors_free(struct sim_config_errors *errors)
{
    for (size_t i = 0; i < errors->count; i++)
        free(errors->messages[i]);
    free(errors->messages);
    errors->messages = NULL;
    errors->count = errors->cap = 0;
}

/* -------------------------------------------------------------- getters */

static void check_keys(struct loader *ld, const config_setting_t *group,
                       const char *const *allowed)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        bool known = false;
        for (size_t k = 0; name != NULL && allowed[k] != NULL; k++)
            known |= strcmp(name, allowed[k]) == 0;
        if (!known)
            error_at(ld, m, "unknown key \"%s\"", name ? name : "?");
    }
}

/* Each getter: 0 absent, 1 read, -1 bad (already reported). */
static int get_string(struct loader *ld, const config_setting_t *g, const char *key,
                      const char **out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        error_at(ld, s, "%s must be a string", key);
        return -1;
    }
    *out = config_setting_get_string(s);
    return 1;
}

static int get_double(struct loader *ld, const config_setting_t *g, const char *key, double lo,
                      double hi, double *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    if (s == NULL)
        return 0;
    int type = config_setting_type(s);
    double v;
    if (type == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else {
        error_at(ld, s, "%s must be a number", key);
        return -1;
    }
    if (!isfinite(v) || v < lo || v > hi) {
        error_at(ld, s, "%s must be within %g..%g", key, lo, hi);
        return -1;
    }
    *out = v;
    return 1;
}

static int get_int(struct loader *ld, const config_setting_t *g, const char *key, long long lo,
                   long long hi, long long *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    if (s == NULL)
        return 0;
    int type = config_setting_type(s);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
        error_at(ld, s, "%s must be an integer", key);
        return -1;
    }
    long long v = config_setting_get_int64(s);
    if (v < lo || v > hi) {
        error_at(ld, s, "%s must be within %lld..%lld", key, lo, hi);
        return -1;
    }
    *out = v;
    return 1;
}

static int get_bool(struct loader *ld, const config_setting_t *g, const char *key, bool *out)
{
    const config_setting_t *s = config_setting_get_member(g, key);
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        error_at(ld, s, "%s must be true or false", key);
        return -1;
    }
    *out = config_setting_get_bool(s) != 0;
    return 1;
}

static char *dup_or_fail(struct loader *ld, const config_setting_t *s, const char *text)
{
    char *copy = strdup(text ? text : "");
    if (copy == NULL)
        error_at(ld, s, "out of memory");
    return copy;
}

/* "host:port" with a numeric port 0..65535. */
static bool valid_host_port(const char *text)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0')
        return false;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return errno == 0 && *end == '\0' && port >= 0 && port <= 65535;
}

/* ------------------------------------------------------------ overrides */

/* Applies one "PATH=VALUE" (est_override.h); created keys are typed from
 * their text, since the getters check libconfig types. */
static void apply_override(struct loader *ld, config_t *cfg, const char *text)
{
    struct est_override_result result;
    est_err err = est_config_override(cfg, text, EST_OVERRIDE_NEW_INFERRED, NULL, &result);
    if (err != EST_OK) {
        char *line = est_asprintf("--set %s: %s", text,
                                  result.message ? result.message : est_strerror(err));
        if (line != NULL)
            add_message(ld->errors, line);
        free(line);
    }
    free(result.message);
}

/* ------------------------------------------------------------------ sim */

/* Numeric offset at the end of an RFC 3339 time, in minutes; 0 for Z. */
static bool time_offset_min(const char *text, int *out)
{
    size_t n = strlen(text);
    if (n > 0 && (text[n - 1] == 'Z' || text[n - 1] == 'z')) {
        *out = 0;
        return true;
    }
    int h, m;
    if (n < 6 || (text[n - 6] != '+' && text[n - 6] != '-') ||
        sscanf(text + n - 5, "%2d:%2d", &h, &m) != 2)
        return false;
    *out = (h * 60 + m) * (text[n - 6] == '-' ? -1 : 1);
    return true;
}

/* Each line of a model loader's report ("FILE:LINE: message") as an error. */
static void model_errors(struct loader *ld, const char *text)
{
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        char *line = strndup(p, end != NULL ? (size_t)(end - p) : strlen(p));
        if (line != NULL)
            add_message(ld->errors, line);
        free(line);
        p = end != NULL ? end + 1 : NULL;
    }
}

/* sim.models_dir: the site's device models, searched before the shipped
 * ones (a relative path is taken from the config file's directory). */
static void load_site_models(struct loader *ld, const config_setting_t *g)
{
    const char *dir = NULL;
    if (get_string(ld, g, "models_dir", &dir) <= 0)
        return;
    const config_setting_t *s = config_setting_get_member(g, "models_dir");
    const char *file = config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
    const char *slash = file != NULL && dir[0] != '/' ? strrchr(file, '/') : NULL;
    char *path = NULL;
    if (slash != NULL) {
        size_t n = (size_t)(slash - file) + 1 + strlen(dir) + 1;
        if ((path = malloc(n)) != NULL)
            snprintf(path, n, "%.*s/%s", (int)(slash - file), file, dir);
    } else {
        path = strdup(dir);
    }
    char *errors = NULL;
    if (path == NULL || drv_models_add_dir(path, &errors) != EST_OK)
        model_errors(ld, errors != NULL ? errors : "sim.models_dir: out of memory");
    free(errors);
    free(path);
}

static void load_sim(struct loader *ld, const config_setting_t *g, int64_t *start_ms)
{
    static const char *const keys[] = {"seed", "time_scale", "control", "start_time",
                                       "utc_offset_min", "tick_ms", "scenario", "models_dir",
                                       NULL};
    check_keys(ld, g, keys);
    load_site_models(ld, g);
    bool scenario = true;
    if (get_bool(ld, g, "scenario", &scenario) > 0)
        ld->setup->scenario_off = !scenario;
    long long seed = 1, offset = 0, tick = DEFAULT_TICK_MS;
    if (get_int(ld, g, "seed", INT64_MIN, INT64_MAX, &seed) >= 0)
        ld->world->seed = (uint64_t)seed;
    get_double(ld, g, "time_scale", 0.0, 1e6, &ld->world->clock.time_scale);
    if (get_int(ld, g, "tick_ms", 10, 10000, &tick) > 0) {
        ld->setup->tick_ms = (int)tick;
        ld->tick_set = true;
    }
    const char *control = NULL;
    if (get_string(ld, g, "control", &control) > 0) {
        if (control[0] != '\0' && !valid_host_port(control))
            error_at(ld, config_setting_get_member(g, "control"), "control must be host:port");
        else if (control[0] != '\0')
            ld->setup->control = dup_or_fail(ld, g, control);
    }
    const char *start = NULL;
    if (get_string(ld, g, "start_time", &start) > 0) {
        int off = 0;
        if (est_parse_ts(start, start_ms) != EST_OK)
            error_at(ld, config_setting_get_member(g, "start_time"),
                     "start_time must be RFC 3339, e.g. 2026-11-27T08:00:00+08:00");
        else if (time_offset_min(start, &off))
            ld->world->utc_offset_min = off;
    }
    if (get_int(ld, g, "utc_offset_min", -900, 900, &offset) > 0)
        ld->world->utc_offset_min = (int)offset;
}

/* ------------------------------------------------------------ endpoints */

static void load_endpoint(struct loader *ld, const config_setting_t *g)
{
    static const char *const keys[] = {"name", "type", "listen", "link", "baud", "parity",
                                       "data_bits", "stop_bits", "turnaround_ms",
                                       "unknown_slave", "protocol", NULL};
    check_keys(ld, g, keys);
    const char *name = NULL, *type = NULL, *listen = NULL, *link = NULL, *parity = "N",
               *unknown = NULL;
    if (get_string(ld, g, "name", &name) <= 0 || name[0] == '\0') {
        error_at(ld, g, "endpoint needs a name");
        return;
    }
    if (sim_world_endpoint_index(ld->world, name) >= 0) {
        error_at(ld, g, "endpoint \"%s\" defined twice", name);
        return;
    }
    get_string(ld, g, "type", &type);
    struct sim_endpoint *ep = sim_world_add_endpoint(ld->world);
    if (ep == NULL) {
        error_at(ld, g, "out of memory");
        return;
    }
    ep->name = dup_or_fail(ld, g, name);
    if (type == NULL || (strcmp(type, "tcp") != 0 && strcmp(type, "rtu") != 0 &&
                         strcmp(type, "rtu_over_tcp") != 0)) {
        error_at(ld, g, "endpoint %s: type must be \"tcp\", \"rtu\" or \"rtu_over_tcp\"", name);
        return;
    }
    ep->type = strcmp(type, "tcp") == 0   ? SIM_EP_TCP
               : strcmp(type, "rtu") == 0 ? SIM_EP_RTU
                                          : SIM_EP_RTU_OVER_TCP;
    ep->unknown_slave = ep->type == SIM_EP_TCP ? SIM_UNKNOWN_EXCEPTION : SIM_UNKNOWN_SILENT;
    if (get_string(ld, g, "unknown_slave", &unknown) > 0) {
        if (strcmp(unknown, "exception") == 0)
            ep->unknown_slave = SIM_UNKNOWN_EXCEPTION;
        else if (strcmp(unknown, "silent") == 0)
            ep->unknown_slave = SIM_UNKNOWN_SILENT;
        else
            error_at(ld, config_setting_get_member(g, "unknown_slave"),
                     "unknown_slave must be \"exception\" or \"silent\"");
    }
    const char *protocol = NULL;
    if (get_string(ld, g, "protocol", &protocol) > 0) {
        if (strcmp(protocol, "dlt645") == 0)
            ep->protocol = DRV_PROTO_DLT645;
        else if (strcmp(protocol, "cjt188") == 0)
            ep->protocol = DRV_PROTO_CJT188;
        else if (strcmp(protocol, "modbus") != 0)
            error_at(ld, config_setting_get_member(g, "protocol"),
                     "protocol must be \"modbus\", \"dlt645\" or \"cjt188\"");
        if (ep->type == SIM_EP_TCP && ep->protocol != DRV_PROTO_MODBUS)
            error_at(ld, config_setting_get_member(g, "protocol"),
                     "endpoint %s: dlt645 and cjt188 are served on rtu endpoints", name);
    }
    if (ep->type != SIM_EP_RTU) {
        if (get_string(ld, g, "listen", &listen) <= 0 || !valid_host_port(listen))
            error_at(ld, g, "endpoint %s: listen must be \"host:port\"", name);
        else
            ep->listen = dup_or_fail(ld, g, listen);
        if (ep->type == SIM_EP_TCP)
            return;
    } else if (get_string(ld, g, "link", &link) <= 0 || link[0] == '\0') {
        error_at(ld, g, "endpoint %s: rtu needs link (path of the pty symlink)", name);
    } else {
        ep->link = dup_or_fail(ld, g, link);
    }
    long long baud = 9600, data_bits = 8, stop_bits = 1, turnaround = 2;
    get_int(ld, g, "baud", 300, 921600, &baud);
    get_int(ld, g, "data_bits", 7, 8, &data_bits);
    get_int(ld, g, "stop_bits", 1, 2, &stop_bits);
    get_int(ld, g, "turnaround_ms", 0, 10000, &turnaround);
    if (get_string(ld, g, "parity", &parity) > 0 &&
        (strlen(parity) != 1 || strchr("NEO", parity[0]) == NULL))
        error_at(ld, config_setting_get_member(g, "parity"), "parity must be \"N\", \"E\" or \"O\"");
    ep->baud = (int)baud;
    ep->data_bits = (int)data_bits;
    ep->stop_bits = (int)stop_bits;
    ep->turnaround_ms = (int)turnaround;
    ep->parity = parity[0];
}

/* -------------------------------------------------------------- devices */

static const char *const category_names[] = {"master", "building", "unit", "amenity",
                                             "landscape", "shop", "public_lighting", "office",
                                             NULL};

static bool known_category(const char *name)
{
    for (size_t i = 0; category_names[i] != NULL; i++)
        if (strcmp(name, category_names[i]) == 0)
            return true;
    return false;
}

static int word_order_from_name(const char *name)
{
    static const char *const names[] = {"ABCD", "CDAB", "BADC", "DCBA"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static const char *kind_text(enum drv_kind kind)
{
    return kind == DRV_KIND_ELECTRICITY ? "electricity"
           : kind == DRV_KIND_WATER     ? "water"
                                        : "fire_panel";
}

/* A DL/T 645 (12 digits) or CJ/T 188 (14 digits) meter's address. */
static bool load_address(struct loader *ld, const config_setting_t *g, struct sim_device *dev,
                         const struct sim_endpoint *e)
{
    const char *address = NULL;
    size_t nbytes = drv_cn_address_len(e->protocol);
    if (get_string(ld, g, "address", &address) <= 0 || strlen(address) != 2 * nbytes ||
        cn_address_parse(address, nbytes, dev->cn_address) != EST_OK) {
        error_at(ld, g, "device %s: endpoint %s needs address, %zu digits", dev->id, e->name,
                 2 * nbytes);
        return false;
    }
    return true;
}

/* Where and what: id, endpoint, slave, driver, kind. false when unusable. */
static bool load_identity(struct loader *ld, const config_setting_t *g, struct sim_device *dev)
{
    const char *id = NULL, *endpoint = NULL, *driver = NULL, *kind = NULL;
    if (get_string(ld, g, "id", &id) <= 0 || id[0] == '\0') {
        error_at(ld, g, "device needs an id");
        return false;
    }
    dev->id = dup_or_fail(ld, g, id);
    if (dev->id == NULL)
        return false;
    if (sim_world_device_index(ld->world, id) != (int)(dev - ld->world->devices))
        error_at(ld, g, "device \"%s\" defined twice", id);
    int ep = -1;
    if (get_string(ld, g, "endpoint", &endpoint) <= 0 ||
        (ep = sim_world_endpoint_index(ld->world, endpoint)) < 0) {
        error_at(ld, g, "device %s: endpoint must name one of the endpoints", id);
        return false;
    }
    dev->endpoint = (size_t)ep;
    long long slave = 0;
    struct sim_endpoint *e = &ld->world->endpoints[ep];
    int got = get_int(ld, g, "slave", 1, SIM_MAX_SLAVE, &slave);
    if (e->protocol != DRV_PROTO_MODBUS && got == 0) {
        /* Meters there answer by address; the slot only keeps them listed. */
        for (slave = 1; slave <= SIM_MAX_SLAVE && e->slave_device[slave] >= 0; slave++) {
        }
        got = slave <= SIM_MAX_SLAVE ? 1 : 0;
        if (!load_address(ld, g, dev, e))
            return false;
    }
    if (got <= 0) {
        if (got == 0)
            error_at(ld, g, "device %s: slave must be 1..247", id);
        return false;
    }
    dev->slave = (uint8_t)slave;
    get_bool(ld, g, "shares_slave", &dev->shares_slave);
    int32_t index = (int32_t)(dev - ld->world->devices);
    if (e->slave_device[slave] >= 0 && dev->shares_slave && e->slave_twin[slave] < 0)
        e->slave_twin[slave] = index;
    else if (e->slave_device[slave] >= 0)
        error_at(ld, g, "device %s: slave %lld on %s is already %s", id, slave, e->name,
                 ld->world->devices[e->slave_device[slave]].id);
    else
        e->slave_device[slave] = index;
    if (get_string(ld, g, "driver", &driver) <= 0 || (dev->model = drv_model_find(driver)) == NULL) {
        error_at(ld, g, "device %s: driver must name a known model", id);
        return false;
    }
    if (get_string(ld, g, "kind", &kind) > 0 && strcmp(kind, kind_text(dev->model->kind)) != 0) {
        error_at(ld, config_setting_get_member(g, "kind"), "device %s: driver %s is %s, not %s",
                 id, driver, kind_text(dev->model->kind), kind);
        return false;
    }
    return true;
}

static void load_usage(struct loader *ld, const config_setting_t *g, struct sim_device *dev)
{
    const char *category = "unit", *profile = NULL;
    if (get_string(ld, g, "category", &category) > 0 && !known_category(category))
        error_at(ld, config_setting_get_member(g, "category"), "device %s: unknown category %s",
                 dev->id, category);
    int p = sim_profile_from_name(category);
    if (get_string(ld, g, "profile", &profile) > 0 && (p = sim_profile_from_name(profile)) < 0)
        error_at(ld, config_setting_get_member(g, "profile"), "device %s: unknown profile %s",
                 dev->id, profile);
    dev->profile = p >= 0 ? (enum sim_profile)p : SIM_PROFILE_UNIT;
    dev->occupied = true;
    get_bool(ld, g, "occupied", &dev->occupied);
    dev->has_valve = dev->model->valve != NULL;
    bool valve = dev->has_valve;
    if (get_bool(ld, g, "valve", &valve) > 0 && valve && dev->model->valve == NULL)
        error_at(ld, config_setting_get_member(g, "valve"), "device %s: %s has no valve", dev->id,
                 dev->model->name);
    dev->has_valve = valve && dev->model->valve != NULL;
    long long serial = DEFAULT_SERIAL_BASE + (long long)(dev - ld->world->devices);
    get_int(ld, g, "serial", 0, UINT32_MAX, &serial);
    dev->serial = (uint32_t)serial;
    get_double(ld, g, "import_kwh", 0, 1e12, &dev->import_kwh);
    get_double(ld, g, "export_kwh", 0, 1e12, &dev->export_kwh);
    get_double(ld, g, "volume_m3", 0, 1e12, &dev->volume_m3);
    get_double(ld, g, "loss_pct", -100, 1000, &dev->loss_pct);
}

static void load_zone_addresses(struct loader *ld, const config_setting_t *g,
                                struct sim_device *dev)
{
    const config_setting_t *a = config_setting_get_member(g, "zone_addresses");
    if (a == NULL)
        return;
    int n = config_setting_length(a);
    if (!config_setting_is_array(a) || n != dev->options.nzones) {
        error_at(ld, a, "device %s: zone_addresses must be an array of %u integers", dev->id,
                 dev->options.nzones);
        return;
    }
    dev->zone_addresses = calloc((size_t)n, sizeof *dev->zone_addresses);
    if (dev->zone_addresses == NULL)
        return;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(a, (unsigned)i);
        int t = config_setting_type(e);
        long long v = (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) ? config_setting_get_int64(e) : -1;
        if (v < 0 || v > 65535)
            error_at(ld, a, "device %s: zone address %d must be 0..65535", dev->id, i + 1);
        dev->zone_addresses[i] = (uint16_t)v;
    }
    dev->options.zone_addresses = dev->zone_addresses;
}

static void load_options(struct loader *ld, const config_setting_t *g, struct sim_device *dev)
{
    const char *order = NULL;
    if (get_string(ld, g, "word_order", &order) > 0 &&
        (dev->options.word_order = word_order_from_name(order)) < 0)
        error_at(ld, config_setting_get_member(g, "word_order"),
                 "device %s: word_order must be ABCD, CDAB, BADC or DCBA", dev->id);
    long long function = 0, base = 0, zones = 8;
    if (get_int(ld, g, "function", 3, 4, &function) > 0)
        dev->options.function = (int)function;
    if (get_int(ld, g, "address_base", -1000, 1000, &base) > 0)
        dev->options.address_base = (int)base;
    bool panel = dev->model->kind == DRV_KIND_FIRE_PANEL;
    if (panel) {
        long long max = dev->model->panel ? dev->model->panel->max_zones : DRV_MAX_ZONES;
        if (max > DRV_MAX_ZONES)
            max = DRV_MAX_ZONES;
        get_int(ld, g, "zones", 1, max, &zones);
        dev->options.nzones = (uint16_t)zones;
        load_zone_addresses(ld, g, dev);
    } else if (config_setting_get_member(g, "zones") != NULL) {
        error_at(ld, config_setting_get_member(g, "zones"), "device %s: zones is for fire panels",
                 dev->id);
    }
    const struct sim_endpoint *ep = &ld->world->endpoints[dev->endpoint];
    if (dev->model->protocol != ep->protocol)
        error_at(ld, g, "device %s: driver %s does not speak the protocol of endpoint %s",
                 dev->id, dev->model->name, ep->name);
    else if (ep->protocol == DRV_PROTO_MODBUS && config_setting_get_member(g, "address") != NULL)
        error_at(ld, config_setting_get_member(g, "address"),
                 "device %s: address is for devices on a dlt645 or cjt188 endpoint", dev->id);
    if (dev->model->protocol != DRV_PROTO_MODBUS)
        return; /* data items: no register plan */
    struct drv_plan *plan = NULL;
    est_err rc = drv_plan_build(dev->model, &dev->options, &plan);
    if (rc != EST_OK)
        error_at(ld, g, "device %s: options do not fit driver %s (%s)", dev->id, dev->model->name,
                 est_strerror(rc));
    drv_plan_free(plan);
}

static void load_device(struct loader *ld, const config_setting_t *g)
{
    static const char *const keys[] = {
        "id", "endpoint", "slave", "driver", "kind", "category", "profile", "serial", "parent",
        "occupied", "word_order", "function", "address_base", "zones", "zone_addresses",
        "import_kwh", "export_kwh", "volume_m3", "loss_pct", "valve", "unit", "building",
        "location", "shares_slave", "address", NULL};
    check_keys(ld, g, keys);
    struct sim_device *dev = sim_world_add_device(ld->world);
    size_t n = ld->world->ndevices;
    if (dev == NULL || EST_VEC_RESERVE(ld->parent_ids, ld->parent_ids_cap, n) != EST_OK ||
        EST_VEC_RESERVE(ld->where, ld->where_cap, n) != EST_OK) {
        error_at(ld, g, "out of memory");
        return;
    }
    size_t index = ld->world->ndevices - 1;
    ld->parent_ids[index] = NULL;
    ld->where[index] = g;
    ld->ndevices = ld->world->ndevices;
    if (!load_identity(ld, g, dev)) {
        if (dev->id == NULL)
            dev->id = strdup("?");
        if (dev->model == NULL)
            dev->model = drv_model_at(0);
        return;
    }
    load_usage(ld, g, dev);
    load_options(ld, g, dev);
    const char *parent = NULL, *text = NULL;
    if (get_string(ld, g, "parent", &parent) > 0)
        ld->parent_ids[index] = strdup(parent);
    get_string(ld, g, "unit", &text); /* informational, like the gateway's */
    get_string(ld, g, "building", &text);
    get_string(ld, g, "location", &text);
}

static void resolve_parents(struct loader *ld)
{
    for (size_t i = 0; i < ld->ndevices; i++) {
        if (ld->parent_ids == NULL || ld->parent_ids[i] == NULL)
            continue;
        struct sim_device *dev = &ld->world->devices[i];
        int p = sim_world_device_index(ld->world, ld->parent_ids[i]);
        if (p < 0 || (size_t)p == i)
            error_at(ld, ld->where[i], "device %s: parent %s is not another device", dev->id,
                     ld->parent_ids[i]);
        else if (ld->world->devices[p].model->kind != dev->model->kind ||
                 dev->model->kind == DRV_KIND_FIRE_PANEL)
            error_at(ld, ld->where[i], "device %s: parent %s is not a meter of the same kind",
                     dev->id, ld->parent_ids[i]);
        else
            dev->parent = p;
    }
}

/* ------------------------------------------------------------- scenario */

/* A scenario entry as a JSON object, so the control parser reads it. */
static cJSON *entry_to_json(struct loader *ld, const config_setting_t *g)
{
    cJSON *obj = cJSON_CreateObject();
    int n = config_setting_length(g);
    for (int i = 0; obj != NULL && i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        cJSON *v = NULL;
        switch (config_setting_type(m)) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            v = cJSON_CreateNumber((double)config_setting_get_int64(m));
            break;
        case CONFIG_TYPE_FLOAT:
            v = cJSON_CreateNumber(config_setting_get_float(m));
            break;
        case CONFIG_TYPE_BOOL:
            v = cJSON_CreateBool(config_setting_get_bool(m));
            break;
        case CONFIG_TYPE_STRING:
            v = cJSON_CreateString(config_setting_get_string(m));
            break;
        default:
            error_at(ld, m, "scenario: %s must be a number, bool or string", name ? name : "?");
            break;
        }
        if (v != NULL && name != NULL)
            cJSON_AddItemToObject(obj, name, v);
        else
            cJSON_Delete(v);
    }
    return obj;
}

static void load_step(struct loader *ld, const config_setting_t *g)
{
    static const char *const extra[] = {"at_s", NULL};
    double at_s = -1;
    if (get_double(ld, g, "at_s", 0, 1e9, &at_s) <= 0) {
        error_at(ld, g, "scenario step needs at_s (seconds after start)");
        return;
    }
    size_t before = ld->errors->count;
    cJSON *obj = entry_to_json(ld, g);
    struct sim_action action;
    char err[256];
    est_err rc = obj ? sim_action_parse(ld->world, obj, extra, &action, err, sizeof err)
                     : EST_ERR_NOMEM;
    cJSON_Delete(obj);
    if (rc == EST_OK && !action.is_fault)
        rc = sim_device_check_event(&ld->world->devices[action.device], &action.ev, err,
                                    sizeof err);
    if (rc != EST_OK) {
        error_at(ld, g, "scenario: %s", rc == EST_ERR_NOMEM ? "out of memory" : err);
        return;
    }
    if (ld->errors->count != before)
        return;
    struct sim_setup *setup = ld->setup;
    if (EST_VEC_RESERVE(setup->scenario, setup->scenario_cap, setup->nscenario + 1) != EST_OK)
        return;
    struct sim_scenario_step *steps = setup->scenario;
    steps[setup->nscenario].at_ms = (int64_t)llround(at_s * 1000.0);
    steps[setup->nscenario].seq = setup->nscenario;
    steps[setup->nscenario].action = action;
    setup->nscenario++;
}

static int by_time(const void *a, const void *b)
{
    const struct sim_scenario_step *sa = a, *sb = b;
    if (sa->at_ms != sb->at_ms)
        return sa->at_ms < sb->at_ms ? -1 : 1;
    return sa->seq < sb->seq ? -1 : 1; /* keep file order (qsort is not stable) */
}

/* ------------------------------------------------------------ generator */

static void read_generate(struct loader *ld, const config_setting_t *g, struct sim_generate *gen)
{
    static const char *const keys[] = {"meters", "endpoints", "base_port", "driver", "host", NULL};
    check_keys(ld, g, keys);
    long long meters = 0, endpoints = 1, port = 16000;
    get_int(ld, g, "meters", 0, 1000000, &meters);
    get_int(ld, g, "endpoints", 1, 4096, &endpoints);
    get_int(ld, g, "base_port", 1, 65535, &port);
    get_string(ld, g, "driver", &gen->driver);
    get_string(ld, g, "host", &gen->host);
    gen->meters = (unsigned)meters;
    gen->endpoints = (unsigned)endpoints;
    gen->base_port = (unsigned)port;
}

static void generate(struct loader *ld, const struct sim_generate *gen)
{
    const struct drv_model *model = drv_model_find(gen->driver ? gen->driver : "sdm120");
    if (model == NULL || model->kind == DRV_KIND_FIRE_PANEL) {
        error_at(ld, NULL, "generate: driver %s is not a known meter model",
                 gen->driver ? gen->driver : "sdm120");
        return;
    }
    unsigned k = gen->endpoints ? gen->endpoints : 1;
    unsigned need = (gen->meters + SIM_MAX_SLAVE - 1) / SIM_MAX_SLAVE;
    if (k < need)
        k = need;
    if (gen->base_port + k - 1 > 65535) {
        error_at(ld, NULL, "generate: ports %u..%u do not fit", gen->base_port, gen->base_port + k - 1);
        return;
    }
    size_t first_ep = ld->world->nendpoints;
    for (unsigned e = 0; e < k; e++) {
        struct sim_endpoint *ep = sim_world_add_endpoint(ld->world);
        char name[32], listen[300];
        if (ep == NULL)
            return;
        snprintf(name, sizeof name, "gen%u", e);
        snprintf(listen, sizeof listen, "%s:%u", gen->host ? gen->host : "127.0.0.1",
                 gen->base_port + e);
        ep->name = strdup(name);
        ep->listen = strdup(listen);
        ep->type = SIM_EP_TCP;
        ep->unknown_slave = SIM_UNKNOWN_EXCEPTION;
    }
    for (unsigned i = 0; i < gen->meters; i++) {
        struct sim_device *dev = sim_world_add_device(ld->world);
        char id[32];
        if (dev == NULL)
            return;
        snprintf(id, sizeof id, "M%05u", i + 1);
        dev->id = strdup(id);
        dev->endpoint = first_ep + i % k;
        dev->slave = (uint8_t)(i / k + 1);
        dev->model = model;
        dev->profile = SIM_PROFILE_UNIT;
        dev->occupied = i % 5 != 4;
        dev->has_valve = model->valve != NULL;
        dev->serial = 30000001u + i;
        ld->world->endpoints[dev->endpoint].slave_device[dev->slave] =
            (int32_t)(ld->world->ndevices - 1);
    }
}

/* ----------------------------------------------------------------- load */

static void load_list(struct loader *ld, const config_setting_t *root, const char *name,
                      void (*each)(struct loader *, const config_setting_t *))
{
    const config_setting_t *list = config_setting_get_member(root, name);
    if (list == NULL)
        return;
    if (!config_setting_is_list(list)) {
        error_at(ld, list, "%s must be a list ( {...}, {...} )", name);
        return;
    }
    int n = config_setting_length(list);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(e))
            error_at(ld, e, "%s: each entry must be a group { ... }", name);
        else
            each(ld, e);
    }
}

static void load_tree(struct loader *ld, config_t *cfg, const struct sim_generate *cli_gen,
                      int64_t *start_ms)
{
    static const char *const keys[] = {"sim", "endpoints", "devices", "scenario", "generate", NULL};
    const config_setting_t *root = config_root_setting(cfg);
    check_keys(ld, root, keys);
    if (drv_models_shipped_errors() != NULL)
        model_errors(ld, drv_models_shipped_errors());
    const config_setting_t *sim = config_setting_get_member(root, "sim");
    if (sim != NULL && config_setting_is_group(sim))
        load_sim(ld, sim, start_ms);
    else if (sim != NULL)
        error_at(ld, sim, "sim must be a group { ... }");
    load_list(ld, root, "endpoints", load_endpoint);
    load_list(ld, root, "devices", load_device);
    resolve_parents(ld);
    struct sim_generate gen = {0};
    const config_setting_t *g = config_setting_get_member(root, "generate");
    if (g != NULL && config_setting_is_group(g))
        read_generate(ld, g, &gen);
    if (cli_gen != NULL) {
        if (cli_gen->meters)
            gen.meters = cli_gen->meters;
        if (cli_gen->endpoints)
            gen.endpoints = cli_gen->endpoints;
        if (cli_gen->base_port)
            gen.base_port = cli_gen->base_port;
        if (cli_gen->driver)
            gen.driver = cli_gen->driver;
        if (cli_gen->host)
            gen.host = cli_gen->host;
    }
    if (gen.meters > 0) {
        if (gen.base_port == 0)
            gen.base_port = 16000;
        generate(ld, &gen);
    }
    load_list(ld, root, "scenario", load_step);
    if (ld->setup->scenario_off) {
        /* Steps were still checked; tests that drive events themselves turn them off. */
        free(ld->setup->scenario);
        ld->setup->scenario = NULL;
        ld->setup->nscenario = ld->setup->scenario_cap = 0;
    }
}

void sim_setup_free(struct sim_setup *setup)
{
    if (setup == NULL)
        return;
    sim_world_free(setup->world);
    free(setup->control);
    free(setup->scenario);
    free(setup);
}

static bool read_file(struct loader *ld, config_t *cfg, const char *path)
{
    char *dir = strdup(path);
    if (dir != NULL) {
        char *slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            config_set_include_dir(cfg, dir[0] ? dir : "/");
        }
    }
    int ok = config_read_file(cfg, path);
    free(dir);
    if (ok)
        return true;
    char line[700];
    if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
        snprintf(line, sizeof line, "%s: cannot read file", path);
    else
        snprintf(line, sizeof line, "%s:%d: %s",
                 config_error_file(cfg) ? config_error_file(cfg) : path, config_error_line(cfg),
                 config_error_text(cfg));
    add_message(ld->errors, line);
    return false;
}

est_err sim_config_load(const char *path, const char *const *overrides, size_t noverrides,
                        const struct sim_generate *gen, int64_t mono_ms, struct sim_setup **out,
                        struct sim_config_errors *errors)
{
    *out = NULL;
    struct sim_setup *setup = calloc(1, sizeof *setup);
    struct sim_world *world = sim_world_new();
    if (setup == NULL || world == NULL) {
        free(setup);
        sim_world_free(world);
        return EST_ERR_NOMEM;
    }
    setup->world = world;
    setup->tick_ms = DEFAULT_TICK_MS;
    struct loader ld = {.path = path, .errors = errors, .setup = setup, .world = world};
    config_t cfg;
    config_init(&cfg);
    int64_t start_ms = est_now_ms();
    if (path == NULL || read_file(&ld, &cfg, path)) {
        for (size_t i = 0; i < noverrides; i++)
            apply_override(&ld, &cfg, overrides[i]);
        if (errors->count == 0)
            load_tree(&ld, &cfg, gen, &start_ms);
    }
    /* large (generated) sites: tick once a second to keep the simulator light */
    if (!ld.tick_set && world->ndevices > LARGE_SITE_DEVICES)
        setup->tick_ms = LARGE_SITE_TICK_MS;
    if (errors->count == 0 && setup->nscenario > 1)
        qsort(setup->scenario, setup->nscenario, sizeof *setup->scenario, by_time);
    char err[300];
    if (errors->count == 0 && sim_world_finish(world, start_ms, mono_ms, err, sizeof err) != EST_OK)
        error_at(&ld, NULL, "%s", err);
    for (size_t i = 0; i < ld.ndevices && ld.parent_ids != NULL; i++)
        free(ld.parent_ids[i]);
    free(ld.parent_ids);
    free(ld.where);
    config_destroy(&cfg);
    if (errors->count > 0) {
        sim_setup_free(setup);
        return EST_ERR_INVALID;
    }
    *out = setup;
    return EST_OK;
}
