/* ctl_scan_cn.c - estate-ctl scan on a DL/T 645 or CJ/T 188 line (a serial
 * port or a converter in transparent mode): asks the one meter on the line
 * for its address with the read-address broadcast, or confirms a list of
 * addresses (given, or the config's meters on the bus) one by one, names
 * the model that answers each and compares with the config. Prints a
 * table, JSON, or CSV rows for meters_csv. The Modbus scan is ctl_scan.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnproto.h"
#include "ctl.h"
#include "drivers.h"

#define CN_ADDRESS_DIGITS_MAX (2 * CJT188_ADDRESS_LEN)
#define CN_SCAN_ATTEMPTS 2 /* a silent address is asked twice: one lost frame is not absence */

static volatile sig_atomic_t line_scan_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    line_scan_interrupted = 1;
}

/* One address looked at. */
struct cn_target {
    char digits[CN_ADDRESS_DIGITS_MAX + 1];
    uint8_t wire[CJT188_ADDRESS_LEN];
    const struct gw_meter_config *meter; /* the config's meter with this address, or NULL */
    est_err result;                      /* as from drv_cnlink_probe */
    const struct drv_model *model;       /* the model that answered normally, or NULL */
    int type;                            /* CJ/T 188 type byte from read-address; -1 unknown */
};

struct line_scan {
    struct drv_cnlink_config link;
    enum drv_protocol protocol;
    const struct gw_bus_config *bus; /* the config's bus on this line, or NULL */
    size_t bus_index;
    const char *bus_name;
    bool read_address;
    struct cn_target *targets;
    size_t ntargets;
};

static const char *protocol_name(enum drv_protocol p)
{
    return p == DRV_PROTO_DLT645 ? "dlt645" : p == DRV_PROTO_CJT188 ? "cjt188" : "modbus";
}

static bool parse_protocol(const char *text, enum drv_protocol *out)
{
    if (strcmp(text, "modbus") == 0)
        *out = DRV_PROTO_MODBUS; /* only to say that the bus speaks another */
    else if (strcmp(text, "dlt645") == 0)
        *out = DRV_PROTO_DLT645;
    else if (strcmp(text, "cjt188") == 0)
        *out = DRV_PROTO_CJT188;
    else
        return false;
    return true;
}

/* The config's bus with this name, or on the same port or converter. */
static const struct gw_bus_config *find_bus(const struct gw_config *config, const char *name,
                                            const struct drv_cnlink_config *link, size_t *index)
{
    for (size_t i = 0; i < config->nbuses; i++) {
        const struct gw_bus_config *b = &config->buses[i];
        bool same = name != NULL ? strcmp(b->name, name) == 0
                    : link->device != NULL
                        ? b->type == GW_BUS_RTU && b->device && strcmp(b->device, link->device) == 0
                        : b->type == GW_BUS_RTU_OVER_TCP && b->host &&
                              strcmp(b->host, link->host) == 0 && b->port == link->port;
        if (same) {
            *index = i;
            return b;
        }
    }
    return NULL;
}

static const struct gw_meter_config *meter_with_address(const struct ctl *c,
                                                        const struct line_scan *s,
                                                        const char *digits)
{
    for (size_t i = 0; s->bus != NULL && i < c->config->nmeters; i++) {
        const struct gw_meter_config *m = &c->config->meters[i];
        if (m->bus == s->bus_index && m->address && strcmp(m->address, digits) == 0)
            return m;
    }
    return NULL;
}

static bool add_target(struct line_scan *s, const char *digits, size_t len)
{
    size_t nbytes = drv_cn_address_len(s->protocol);
    struct cn_target *t = &s->targets[s->ntargets];
    memset(t, 0, sizeof *t);
    t->type = -1;
    if (len != 2 * nbytes)
        return false;
    memcpy(t->digits, digits, len);
    t->digits[len] = '\0';
    if (strspn(t->digits, "0123456789") != len ||
        cn_address_parse(t->digits, nbytes, t->wire) != EST_OK)
        return false;
    s->ntargets++;
    return true;
}

/* --addresses A,B,...: each 12 (DL/T 645) or 14 (CJ/T 188) digits. */
static int parse_addresses(struct line_scan *s, const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    s->targets = calloc(n, sizeof *s->targets);
    if (s->targets == NULL)
        return EST_EXIT_RUNTIME;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        if (!add_target(s, p, len))
            return ctl_usage_error("scan: --addresses: '%.*s' is not a %zu-digit %s address",
                                   (int)len, p, 2 * drv_cn_address_len(s->protocol),
                                   protocol_name(s->protocol));
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    return 0;
}

/* Without --addresses: the config's meters on the bus. */
static int config_targets(const struct ctl *c, struct line_scan *s)
{
    s->targets = calloc(c->config->nmeters + 1, sizeof *s->targets);
    if (s->targets == NULL)
        return EST_EXIT_RUNTIME;
    for (size_t i = 0; s->bus != NULL && i < c->config->nmeters; i++) {
        const struct gw_meter_config *m = &c->config->meters[i];
        if (m->bus == s->bus_index && m->address)
            add_target(s, m->address, strlen(m->address));
    }
    return 0;
}

/* Fills s from the command line; 0 or the usage error's exit code. */
static int cn_scan_options(struct ctl *c, struct line_scan *s, bool *force)
{
    bool missing = false;
    const char *bus = ctl_option_value(c, "--bus", &missing);
    const char *device = ctl_option_value(c, "--device", &missing);
    const char *host = ctl_option_value(c, "--host", &missing);
    const char *port = ctl_option_value(c, "--port", &missing);
    const char *protocol = ctl_option_value(c, "--protocol", &missing);
    const char *baud = ctl_option_value(c, "--baud", &missing);
    const char *parity = ctl_option_value(c, "--parity", &missing);
    const char *stop_bits = ctl_option_value(c, "--stop-bits", &missing);
    const char *timeout = ctl_option_value(c, "--timeout-ms", &missing);
    const char *bus_name = ctl_option_value(c, "--bus-name", &missing);
    const char *addresses = ctl_option_value(c, "--addresses", &missing);
    (void)ctl_option_flag(c, "--rtu-over-tcp"); /* implied by --host for these protocols */
    s->read_address = ctl_option_flag(c, "--read-address");
    *force = ctl_option_flag(c, "--force-offline-bus");
    if (missing)
        return ctl_usage_error("scan: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    if ((bus != NULL) + (device != NULL) + (host != NULL) != 1)
        return ctl_usage_error("scan: give exactly one of --bus NAME, --device PATH, --host HOST");
    if (protocol && !parse_protocol(protocol, &s->protocol))
        return ctl_usage_error("scan: --protocol must be modbus, dlt645 or cjt188");
    memset(&s->link, 0, sizeof s->link);
    int64_t v = 0;
    if (bus) {
        s->bus = find_bus(c->config, bus, &s->link, &s->bus_index);
        if (s->bus == NULL)
            return ctl_usage_error("scan: no bus named '%s' in the config", bus);
        if (protocol && s->protocol != s->bus->protocol)
            return ctl_usage_error("scan: bus %s speaks %s, not %s", bus,
                                   protocol_name(s->bus->protocol), protocol);
        s->protocol = s->bus->protocol;
        bool tcp = s->bus->type == GW_BUS_RTU_OVER_TCP;
        s->link.device = tcp ? NULL : s->bus->device;
        s->link.host = tcp ? s->bus->host : NULL;
        s->link.port = s->bus->port;
        s->link.baud = s->bus->baud;
        s->link.parity = s->bus->parity;
        s->link.stop_bits = s->bus->stop_bits;
        s->link.data_bits = s->bus->data_bits;
        s->link.response_timeout_ms = s->bus->timeout_ms;
        s->bus_name = s->bus->name;
    } else {
        if (!protocol)
            return ctl_usage_error("scan: --protocol is needed with --device or --host");
        s->link.device = device;
        s->link.host = host;
        s->link.port = 502;
        s->link.baud = 2400;
        s->link.parity = 'E';
        s->link.data_bits = 8;
        s->link.stop_bits = 1;
        if (port) {
            if (!ctl_parse_int64(port, 1, 65535, &v))
                return ctl_usage_error("scan: --port must be 1..65535");
            s->link.port = (int)v;
        }
        s->bus = find_bus(c->config, NULL, &s->link, &s->bus_index);
        if (s->bus != NULL && s->bus->protocol != s->protocol)
            return ctl_usage_error("scan: that line is bus %s of the config, which speaks %s",
                                   s->bus->name, protocol_name(s->bus->protocol));
        s->bus_name = bus_name ? bus_name : s->bus ? s->bus->name : "new_bus";
    }
    s->link.protocol = s->protocol;
    if (baud) {
        if (!ctl_parse_int64(baud, 300, 921600, &v))
            return ctl_usage_error("scan: --baud must be 300..921600");
        s->link.baud = (int)v;
    }
    if (parity) {
        if (strlen(parity) != 1 || strchr("NEO", parity[0]) == NULL)
            return ctl_usage_error("scan: --parity must be N, E or O");
        s->link.parity = parity[0];
    }
    if (stop_bits) {
        if (!ctl_parse_int64(stop_bits, 1, 2, &v))
            return ctl_usage_error("scan: --stop-bits must be 1 or 2");
        s->link.stop_bits = (int)v;
    }
    if (timeout) {
        if (!ctl_parse_int64(timeout, 1, 60000, &v))
            return ctl_usage_error("scan: --timeout-ms must be 1..60000");
        s->link.response_timeout_ms = (int)v;
    }
    s->link.reconnect_max_ms = 1000;
    if (addresses && s->read_address)
        return ctl_usage_error("scan: --read-address finds one meter; --addresses confirms a "
                               "list: give one of them");
    if (addresses)
        return parse_addresses(s, addresses);
    if (s->bus == NULL)
        s->read_address = true; /* nothing to confirm: ask the meter */
    if (s->read_address) {
        s->targets = calloc(1, sizeof *s->targets);
        return s->targets ? 0 : EST_EXIT_RUNTIME;
    }
    return config_targets(c, s);
}

/* ---- probing ---- */

static bool present(est_err e)
{
    return e == EST_OK || e == EST_ERR_EXCEPTION;
}

/* The first model of the line's protocol that reads normally at t. */
static void identify(struct drv_cnlink *link, enum drv_protocol protocol, struct cn_target *t)
{
    if (t->meter != NULL && drv_cnlink_probe(link, t->meter->model, t->wire) == EST_OK) {
        t->model = t->meter->model;
        return;
    }
    for (size_t i = 0; i < drv_model_count(); i++) {
        const struct drv_model *m = drv_model_at(i);
        if (m->protocol == protocol && m != (t->meter ? t->meter->model : NULL) &&
            drv_cnlink_probe(link, m, t->wire) == EST_OK) {
            t->model = m;
            return;
        }
    }
}

static void confirm(const struct ctl *c, struct line_scan *s, struct drv_cnlink *link,
                    struct cn_target *t)
{
    t->meter = meter_with_address(c, s, t->digits);
    t->result = EST_ERR_TIMEOUT;
    for (int a = 0; a < CN_SCAN_ATTEMPTS && t->result == EST_ERR_TIMEOUT; a++)
        t->result = drv_cnlink_probe(link, t->meter ? t->meter->model : NULL, t->wire);
    if (present(t->result))
        identify(link, s->protocol, t);
}

/* The broadcast; fills the one target when a meter answered. */
static est_err read_address(const struct ctl *c, struct line_scan *s, struct drv_cnlink *link)
{
    uint8_t wire[CJT188_ADDRESS_LEN] = {0};
    uint8_t type = 0;
    est_err err = EST_ERR_TIMEOUT;
    for (int a = 0; a < CN_SCAN_ATTEMPTS && err == EST_ERR_TIMEOUT; a++)
        err = drv_cnlink_read_address(link, wire, &type);
    if (err != EST_OK)
        return err;
    char digits[CN_ADDRESS_DIGITS_MAX + 1];
    size_t nbytes = drv_cn_address_len(s->protocol);
    cn_address_format(wire, nbytes, digits);
    if (!add_target(s, digits, strlen(digits)))
        return EST_ERR_PROTOCOL; /* an address that is not BCD digits */
    struct cn_target *t = &s->targets[0];
    t->type = s->protocol == DRV_PROTO_CJT188 ? type : -1;
    t->meter = meter_with_address(c, s, t->digits);
    t->result = EST_OK;
    identify(link, s->protocol, t);
    return EST_OK;
}

/* ---- output ---- */

static const char *answer_text(est_err e)
{
    switch (e) {
    case EST_OK: return "present";
    case EST_ERR_EXCEPTION: return "present (abnormal reply)";
    case EST_ERR_TIMEOUT: return "absent";
    case EST_ERR_PROTOCOL: return "garbled replies";
    default: return "not asked";
    }
}

static void inventory_status(const struct cn_target *t, char *out, size_t len)
{
    if (t->result == EST_ERR_PROTOCOL)
        snprintf(out, len, "garbled (two meters with this address?)");
    else if (!present(t->result))
        snprintf(out, len, t->meter ? "missing (configured, no answer)" : "not found");
    else if (t->meter == NULL)
        snprintf(out, len, "unexpected (not in the config)");
    else if (t->model != NULL && t->model != t->meter->model)
        snprintf(out, len, "model differs (config %s)", t->meter->model->name);
    else
        snprintf(out, len, "ok");
}

static void add_row(const struct line_scan *s, const struct cn_target *t, cJSON *rows)
{
    cJSON *row = ctl_add_row(rows);
    if (row == NULL)
        return;
    char status[96];
    inventory_status(t, status, sizeof status);
    cJSON_AddStringToObject(row, "address", t->digits);
    cJSON_AddStringToObject(row, "protocol", protocol_name(s->protocol));
    if (t->type >= 0) {
        char type[16];
        snprintf(type, sizeof type, "%02X", (unsigned)(t->type & 0xFF));
        cJSON_AddStringToObject(row, "type", type);
    }
    cJSON_AddStringToObject(row, "answer", answer_text(t->result));
    if (t->model)
        cJSON_AddStringToObject(row, "model", t->model->name);
    if (t->meter)
        cJSON_AddStringToObject(row, "config_id", t->meter->id);
    cJSON_AddStringToObject(row, "inventory", status);
}

/* A meters_csv row for a meter that answered: the config's identity for
 * a meter it knows, BUS-ADDRESS and category "unit" for the rest. */
static void add_csv_row(const struct ctl *c, const struct line_scan *s, const struct cn_target *t,
                        cJSON *rows)
{
    const struct drv_model *model = t->model ? t->model : t->meter ? t->meter->model : NULL;
    if (!present(t->result) || model == NULL)
        return;
    cJSON *row = ctl_add_row(rows);
    if (row == NULL)
        return;
    const struct gw_meter_config *m = t->meter;
    char id[96];
    snprintf(id, sizeof id, "%s-%s", s->bus_name, t->digits);
    cJSON_AddStringToObject(row, "id", m ? m->id : id);
    cJSON_AddStringToObject(row, "bus", s->bus_name);
    cJSON_AddStringToObject(row, "address", t->digits);
    cJSON_AddStringToObject(row, "driver", model->name);
    cJSON_AddStringToObject(row, "kind", model->kind == DRV_KIND_WATER ? "water" : "electricity");
    cJSON_AddStringToObject(row, "category", m ? gw_category_name(m->category) : "unit");
    if (m && m->unit >= 0)
        cJSON_AddStringToObject(row, "unit", c->config->units[m->unit].id);
    if (m && m->building && !m->building_from_unit)
        cJSON_AddStringToObject(row, "building", m->building);
    if (m && m->location)
        cJSON_AddStringToObject(row, "location", m->location);
    if (m && m->valve)
        cJSON_AddStringToObject(row, "valve", "true");
}

static void print_results(const struct ctl *c, const struct line_scan *s)
{
    cJSON *rows = cJSON_CreateArray();
    if (rows == NULL)
        return;
    if (c->csv) {
        static const struct gw_table_column cols[] = {
            {"id", "id"},           {"bus", "bus"},           {"address", "address"},
            {"driver", "driver"},   {"kind", "kind"},         {"category", "category"},
            {"unit", "unit"},       {"building", "building"}, {"location", "location"},
            {"valve", "valve"},
        };
        for (size_t i = 0; i < s->ntargets; i++)
            add_csv_row(c, s, &s->targets[i], rows);
        ctl_print_rows(c, rows, cols, COUNT_OF(cols));
    } else if (s->ntargets > 0 || c->json) {
        static const struct gw_table_column cols[] = {
            {"address", "address"}, {"type", "type"},          {"answer", "answer"},
            {"model", "model"},     {"config", "config_id"},   {"inventory", "inventory"},
        };
        for (size_t i = 0; i < s->ntargets; i++)
            add_row(s, &s->targets[i], rows);
        ctl_print_rows(c, rows, cols, COUNT_OF(cols));
    }
    cJSON_Delete(rows);
}

static size_t count_present(const struct line_scan *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntargets; i++)
        n += present(s->targets[i].result);
    return n;
}

int ctl_scan_national(struct ctl *c)
{
    struct line_scan s = {0};
    bool force = false;
    int rc = cn_scan_options(c, &s, &force);
    if (rc == 0 && s.bus != NULL)
        rc = ctl_scan_check_owner(c, s.bus, s.bus_index, force);
    struct drv_cnlink *link = NULL;
    if (rc == 0 && drv_cnlink_open(&s.link, &link) != EST_OK) {
        fprintf(stderr, "estate-ctl: scan: cannot use these link settings\n");
        rc = EST_EXIT_RUNTIME;
    }
    if (rc != 0) {
        free(s.targets);
        return rc;
    }
    int64_t started = est_mono_ms();
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    est_err err = EST_OK;
    size_t asked = 0;
    if (s.read_address) {
        err = read_address(c, &s, link);
    } else {
        /* Ctrl-C: the address under way is finished, the rest not asked. */
        for (; asked < s.ntargets && err != EST_ERR_IO && !line_scan_interrupted; asked++) {
            confirm(c, &s, link, &s.targets[asked]);
            if (s.targets[asked].result == EST_ERR_IO)
                err = EST_ERR_IO;
        }
        s.ntargets = asked;
    }
    sigaction(SIGINT, &old, NULL);
    drv_cnlink_close(link);
    if (err == EST_ERR_IO) {
        fprintf(stderr, "estate-ctl: scan: cannot open %s\n",
                s.link.device ? s.link.device : s.link.host);
        free(s.targets);
        return EST_EXIT_RUNTIME;
    }
    print_results(c, &s);
    FILE *out = c->csv || c->json ? stderr : stdout;
    const char *prefix = c->csv || c->json ? "estate-ctl: scan: " : "";
    double seconds = (double)(est_mono_ms() - started) / 1000.0;
    if (s.read_address && err == EST_ERR_PROTOCOL)
        fprintf(out, "%sgarbled replies to the read-address broadcast: more than one meter on "
                     "the line? (it needs one meter alone; confirm known addresses with "
                     "--addresses)\n", prefix);
    else if (s.read_address && err == EST_ERR_EXCEPTION)
        fprintf(out, "%sa meter refused the read-address broadcast (abnormal reply)\n", prefix);
    else if (s.read_address && err != EST_OK)
        fprintf(out, "%sno meter answered the read-address broadcast in %.1f s\n", prefix,
                seconds);
    else
        fprintf(out, "%s%zu of %zu address(es) answered in %.1f s%s\n", prefix,
                count_present(&s), s.ntargets, seconds,
                line_scan_interrupted ? " (interrupted: the addresses after these were not "
                                        "asked)" : "");
    free(s.targets);
    return line_scan_interrupted ? 130 : 0;
}
