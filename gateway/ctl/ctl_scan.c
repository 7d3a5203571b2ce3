/* ctl_scan.c - estate-ctl scan: commissioning a bus. Probes a range of
 * slave ids on one bus (from the config, or given by its device or host),
 * optionally under each usual serial setting, names each answering device
 * by the model signatures of drivers/scan.c, reads its serial, flags ids
 * where two devices seem to answer, compares the result with the config's
 * meters on that bus and prints a table, JSON, or CSV rows for meters_csv.
 * Refuses a bus the running gateway polls (see docs/commissioning.md). A
 * DL/T 645 or CJ/T 188 line goes to ctl_scan_cn.c. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "drivers.h"

#define SCAN_MAX_FOUND 247
#define SCAN_MAX_SETTINGS 12
#define OWNED_READING_AGE_MS (2 * 60 * 1000) /* a reading this fresh: the gateway polls */
#define DUPLICATE_GARBLED_MIN 2              /* garbled replies at one id that flag it */
#define PROBE_TURNAROUND_US 100000           /* a slave's think time, with margin */
#define PROBE_NETWORK_US 100000              /* TCP and converter latency */
#define PROBE_TCP_TIMEOUT_MS 300
#define PROBE_REPLY_BYTES 9                  /* the longest probe reply */

static volatile sig_atomic_t scan_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    scan_interrupted = 1;
}

/* One serial setting tried. */
struct scan_setting {
    int baud;
    char parity;
    int stop_bits;
};

/* One answering slave id. */
struct scan_found {
    int slave;
    struct scan_setting setting;
    struct drv_scan_match match;
    char serial[24];              /* "" = not read */
    unsigned answered, garbled, probes;
    bool duplicate;
};

struct scan {
    struct drv_link_config link;
    const char *bus_name;          /* for the CSV's bus column and the inventory */
    const struct gw_bus_config *bus; /* the config's bus, NULL when none matches */
    size_t bus_index;
    int first_id, last_id;
    bool try_settings;
    int timeout_ms;                /* 0 = derived per setting */
    struct scan_found found[SCAN_MAX_FOUND * SCAN_MAX_SETTINGS];
    size_t nfound;
    struct drv_scan_probe probes[DRV_SCAN_MAX_PROBES];
    size_t nprobes;
    bool tty;
    unsigned ids_done, ids_total;
    int64_t started_ms;
};

/* ---- options ---- */

static bool parse_ids(const char *text, int *first, int *last)
{
    char *end = NULL;
    long a = strtol(text, &end, 10);
    long b = a;
    if (end == text)
        return false;
    if (*end == '-') {
        const char *rest = end + 1;
        b = strtol(rest, &end, 10);
        if (end == rest)
            return false;
    }
    if (*end != '\0' || a < 1 || b > 247 || a > b)
        return false;
    *first = (int)a;
    *last = (int)b;
    return true;
}

static bool parse_parity(const char *text, char *parity)
{
    if (text == NULL)
        return true;
    if (strlen(text) != 1 || strchr("NEO", text[0]) == NULL)
        return false;
    *parity = text[0];
    return true;
}

/* The config's bus on the same port or converter as the link, if any. */
static const struct gw_bus_config *bus_on_same_line(const struct gw_config *config,
                                                    const struct drv_link_config *link,
                                                    size_t *index)
{
    for (size_t i = 0; i < config->nbuses; i++) {
        const struct gw_bus_config *b = &config->buses[i];
        bool same = link->type == DRV_LINK_RTU
                        ? b->type == GW_BUS_RTU && b->device && strcmp(b->device, link->device) == 0
                        : b->type != GW_BUS_RTU && b->host && strcmp(b->host, link->host) == 0 &&
                              b->port == link->port;
        if (same) {
            *index = i;
            return b;
        }
    }
    return NULL;
}

static void link_from_bus(const struct gw_bus_config *b, struct drv_link_config *link)
{
    memset(link, 0, sizeof *link);
    link->type = b->type == GW_BUS_TCP            ? DRV_LINK_TCP
                 : b->type == GW_BUS_RTU_OVER_TCP ? DRV_LINK_RTU_OVER_TCP
                                                  : DRV_LINK_RTU;
    link->host = b->host;
    link->port = b->port;
    link->device = b->device;
    link->baud = b->baud;
    link->parity = b->parity;
    link->data_bits = b->data_bits;
    link->stop_bits = b->stop_bits;
    link->slave_switch_delay_ms = b->slave_switch_delay_ms;
    link->request_gap_ms = b->request_gap_ms;
}

/* Fills s from the command line; 0 or the usage error's exit code. */
static int scan_options(struct ctl *c, struct scan *s, bool *force)
{
    bool missing = false;
    const char *bus = ctl_option_value(c, "--bus", &missing);
    const char *device = ctl_option_value(c, "--device", &missing);
    const char *host = ctl_option_value(c, "--host", &missing);
    const char *port = ctl_option_value(c, "--port", &missing);
    const char *baud = ctl_option_value(c, "--baud", &missing);
    const char *parity = ctl_option_value(c, "--parity", &missing);
    const char *stop_bits = ctl_option_value(c, "--stop-bits", &missing);
    const char *ids = ctl_option_value(c, "--ids", &missing);
    const char *timeout = ctl_option_value(c, "--timeout-ms", &missing);
    const char *bus_name = ctl_option_value(c, "--bus-name", &missing);
    bool rtu_over_tcp = ctl_option_flag(c, "--rtu-over-tcp");
    s->try_settings = ctl_option_flag(c, "--try-settings");
    *force = ctl_option_flag(c, "--force-offline-bus");
    if (missing)
        return ctl_usage_error("scan: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    if ((bus != NULL) + (device != NULL) + (host != NULL) != 1)
        return ctl_usage_error("scan: give exactly one of --bus NAME, --device PATH, --host HOST");
    s->first_id = 1;
    s->last_id = 247;
    if (ids && !parse_ids(ids, &s->first_id, &s->last_id))
        return ctl_usage_error("scan: --ids must be N or N-M within 1-247");
    int64_t v = 0;
    if (timeout) {
        if (!ctl_parse_int64(timeout, 1, 60000, &v))
            return ctl_usage_error("scan: --timeout-ms must be 1..60000");
        s->timeout_ms = (int)v;
    }
    if (bus) {
        for (size_t i = 0; i < c->config->nbuses; i++)
            if (strcmp(c->config->buses[i].name, bus) == 0) {
                s->bus = &c->config->buses[i];
                s->bus_index = i;
            }
        if (s->bus == NULL)
            return ctl_usage_error("scan: no bus named '%s' in the config", bus);
        link_from_bus(s->bus, &s->link);
        s->bus_name = s->bus->name;
    } else {
        memset(&s->link, 0, sizeof s->link);
        s->link.type = device ? DRV_LINK_RTU : rtu_over_tcp ? DRV_LINK_RTU_OVER_TCP : DRV_LINK_TCP;
        s->link.device = device;
        s->link.host = host;
        s->link.port = 502;
        s->link.baud = 9600;
        s->link.parity = 'N';
        s->link.data_bits = 8;
        s->link.stop_bits = 1;
        if (port) {
            if (!ctl_parse_int64(port, 1, 65535, &v))
                return ctl_usage_error("scan: --port must be 1..65535");
            s->link.port = (int)v;
        }
        s->bus = bus_on_same_line(c->config, &s->link, &s->bus_index);
        s->bus_name = bus_name ? bus_name : s->bus ? s->bus->name : "new_bus";
    }
    if (baud) {
        if (!ctl_parse_int64(baud, 300, 921600, &v))
            return ctl_usage_error("scan: --baud must be 300..921600");
        s->link.baud = (int)v;
    }
    if (!parse_parity(parity, &s->link.parity))
        return ctl_usage_error("scan: --parity must be N, E or O");
    if (stop_bits) {
        if (!ctl_parse_int64(stop_bits, 1, 2, &v))
            return ctl_usage_error("scan: --stop-bits must be 1 or 2");
        s->link.stop_bits = (int)v;
    }
    if (s->try_settings && s->link.type == DRV_LINK_TCP)
        return ctl_usage_error("scan: --try-settings needs a serial line (rtu or rtu over tcp)");
    return 0;
}

/* ---- the gateway owns the bus? ---- */

struct freshness {
    const struct gw_config *config;
    size_t bus;
    int64_t newest_ms;
};

static bool note_fresh(void *ctx, const struct gw_store_reading_row *row)
{
    struct freshness *f = ctx;
    for (size_t i = 0; i < f->config->nmeters; i++) {
        const struct gw_meter_config *m = &f->config->meters[i];
        if (m->bus == f->bus && row->meter_id && strcmp(m->id, row->meter_id) == 0 &&
            row->ts_ms > f->newest_ms)
            f->newest_ms = row->ts_ms;
    }
    return true;
}

/* The newest reading of a meter on the config's bus, 0 when none (or no
 * database): a recent one means the running gateway polls the bus. */
static int64_t newest_bus_reading_ms(const struct ctl *c, size_t bus)
{
    struct gw_store *store = NULL;
    char err[256];
    if (gw_store_open(c->config->gateway.data_dir, true, &store, err, sizeof err) != EST_OK)
        return 0;
    struct freshness f = {.config = c->config, .bus = bus};
    (void)gw_store_readings_latest(store, note_fresh, &f);
    gw_store_close(store);
    return f.newest_ms;
}

/* ---- probing ---- */

static int64_t char_us(const struct scan_setting *st)
{
    int bits = 1 + 8 + (st->parity == 'N' ? 0 : 1) + st->stop_bits;
    return ((int64_t)bits * 1000000 + st->baud - 1) / st->baud;
}

/* A probe's timeout: its request and reply on the wire, the slave's
 * turnaround and (over TCP) the network. */
static int probe_timeout_ms(const struct scan *s, const struct scan_setting *st)
{
    if (s->timeout_ms > 0)
        return s->timeout_ms;
    if (s->link.type == DRV_LINK_TCP)
        return PROBE_TCP_TIMEOUT_MS;
    int64_t us = (DRV_RTU_REQUEST_BYTES + PROBE_REPLY_BYTES) * char_us(st) + PROBE_TURNAROUND_US;
    if (s->link.type == DRV_LINK_RTU_OVER_TCP)
        us += PROBE_NETWORK_US;
    return (int)((us + 999) / 1000);
}

static void probe_one(struct drv_link *link, int slave, const struct drv_scan_probe *p,
                      struct drv_scan_answer *a)
{
    int exception = 0;
    a->result = drv_link_read(link, slave, p->function, p->address, p->count, a->regs, &exception);
}

static bool answered(est_err e)
{
    return e == EST_OK || e == EST_ERR_EXCEPTION || e == EST_ERR_PROTOCOL;
}

/* The first probe of the other function than probes[0]'s: a device that
 * ignores one function may answer the other. */
static size_t second_presence_probe(const struct scan *s)
{
    for (size_t i = 1; i < s->nprobes; i++)
        if (s->probes[i].function != s->probes[0].function)
            return i;
    return 0;
}

static void read_serial(struct drv_link *link, struct scan_found *f)
{
    struct drv_scan_probe p;
    enum drv_type type;
    enum drv_word_order order;
    if (!drv_scan_serial_point(f->match.model, &p, &type, &order))
        return;
    if (f->match.word_order >= 0 && drv_type_regs(type) == 2)
        order = (enum drv_word_order)f->match.word_order;
    struct drv_scan_answer a;
    probe_one(link, f->slave, &p, &a);
    if (a.result != EST_OK)
        return;
    double serial = drv_decode_value(a.regs, type, order, 1.0);
    if (isfinite(serial) && serial >= 0)
        snprintf(f->serial, sizeof f->serial, "%.0f", serial);
}

/* Probes one id; true (and *f filled) when something answered. */
static bool probe_id(struct scan *s, struct drv_link *link, int slave,
                     const struct scan_setting *st, struct scan_found *f)
{
    struct drv_scan_answer answers[DRV_SCAN_MAX_PROBES];
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < s->nprobes; i++)
        answers[i].result = EST_ERR_STATE;
    size_t second = second_presence_probe(s);
    probe_one(link, slave, &s->probes[0], &answers[0]);
    if (!answered(answers[0].result) && second > 0)
        probe_one(link, slave, &s->probes[second], &answers[second]);
    if (!answered(answers[0].result) && !answered(answers[second].result))
        return false;
    for (size_t i = 1; i < s->nprobes; i++)
        if (answers[i].result == EST_ERR_STATE)
            probe_one(link, slave, &s->probes[i], &answers[i]);
    f->slave = slave;
    f->setting = *st;
    for (size_t i = 0; i < s->nprobes; i++) {
        f->probes += answers[i].result != EST_ERR_STATE;
        f->answered += answered(answers[i].result);
        f->garbled += answers[i].result == EST_ERR_PROTOCOL;
    }
    f->duplicate = f->garbled >= DUPLICATE_GARBLED_MIN;
    drv_scan_identify(s->probes, answers, s->nprobes, &f->match);
    if (f->match.model != NULL)
        read_serial(link, f);
    return true;
}

static void show_progress(const struct scan *s, const struct scan_setting *st, int slave)
{
    if (!s->tty)
        return;
    int64_t elapsed = est_mono_ms() - s->started_ms;
    double left_s = s->ids_done > 0 ? (double)elapsed / s->ids_done *
                                          (s->ids_total - s->ids_done) / 1000.0
                                    : 0.0;
    printf("\r%u/%u ids (id %d at %d %d%c%d), %zu found, about %.0f s left   ", s->ids_done,
           s->ids_total, slave, st->baud, 8, st->parity, st->stop_bits, s->nfound, left_s);
    fflush(stdout);
}

/* Scans every id under one setting; false when interrupted. */
static bool scan_setting(struct scan *s, const struct scan_setting *st, char *err, size_t errlen)
{
    struct drv_link_config lc = s->link;
    lc.baud = st->baud;
    lc.parity = st->parity;
    lc.stop_bits = st->stop_bits;
    lc.response_timeout_ms = probe_timeout_ms(s, st);
    lc.reconnect_min_ms = 50;
    lc.reconnect_max_ms = 1000;
    struct drv_link *link = NULL;
    if (drv_link_open(&lc, &link) != EST_OK) {
        snprintf(err, errlen, "cannot use these link settings");
        return false;
    }
    bool completed = true;
    uint64_t io_failures = 0;
    for (int slave = s->first_id; slave <= s->last_id; slave++) {
        if (scan_interrupted) {
            completed = false;
            break;
        }
        show_progress(s, st, slave);
        struct scan_found f;
        uint64_t before = 0, after = 0;
        drv_link_stats(link, &before, NULL);
        if (probe_id(s, link, slave, st, &f))
            s->found[s->nfound++] = f;
        drv_link_stats(link, &after, NULL);
        io_failures = after == before ? io_failures + 1 : 0; /* no transaction: link down */
        if (io_failures >= 3) {
            snprintf(err, errlen, "cannot open %s", lc.device ? lc.device : lc.host);
            drv_link_close(link);
            return false;
        }
        s->ids_done++;
    }
    drv_link_close(link);
    return completed;
}

/* ---- the inventory and the output ---- */

static const struct gw_meter_config *config_meter_at(const struct ctl *c, const struct scan *s,
                                                     int slave)
{
    for (size_t i = 0; s->bus != NULL && i < c->config->nmeters; i++) {
        const struct gw_meter_config *m = &c->config->meters[i];
        if (m->bus == s->bus_index && m->slave == slave)
            return m;
    }
    return NULL;
}

static const char *order_name(int order)
{
    static const char *const names[] = {"ABCD", "CDAB", "BADC", "DCBA"};
    return order >= 0 && order < 4 ? names[order] : "";
}

/* How a found device compares with the config's meter at its id. */
static void inventory_status(const struct scan_found *f, const struct gw_meter_config *m,
                             char *out, size_t len)
{
    if (f->duplicate)
        snprintf(out, len, "two devices answer? (%u of %u replies garbled)", f->garbled,
                 f->probes);
    else if (m == NULL)
        snprintf(out, len, "unexpected (not in the config)");
    else if (f->match.model == NULL)
        snprintf(out, len, "model unknown (config %s)", m->model->name);
    else if (!drv_scan_match_fits(&f->match, m->model))
        snprintf(out, len, "model differs (config %s)", m->model->name);
    else if (m->serial && f->serial[0] && strcmp(m->serial, f->serial) != 0)
        snprintf(out, len, "serial changed (config %s)", m->serial);
    else if (f->match.word_order != m->options.word_order && !(f->match.word_order < 0 &&
                                                                m->options.word_order < 0))
        snprintf(out, len, "word order differs (config %s)",
                 m->options.word_order >= 0 ? order_name(m->options.word_order) : "model's");
    else
        snprintf(out, len, "ok");
}

static bool found_at(const struct scan *s, int slave)
{
    for (size_t i = 0; i < s->nfound; i++)
        if (s->found[i].slave == slave)
            return true;
    return false;
}

static void add_found_row(const struct ctl *c, const struct scan *s, const struct scan_found *f,
                          cJSON *rows)
{
    cJSON *row = ctl_add_row(rows);
    if (row == NULL)
        return;
    const struct gw_meter_config *m = config_meter_at(c, s, f->slave);
    char setting[32], status[128];
    snprintf(setting, sizeof setting, "%d 8%c%d", f->setting.baud, f->setting.parity,
             f->setting.stop_bits);
    inventory_status(f, m, status, sizeof status);
    cJSON_AddNumberToObject(row, "slave", f->slave);
    if (s->link.type != DRV_LINK_TCP)
        cJSON_AddStringToObject(row, "setting", setting);
    if (f->match.model) {
        cJSON_AddStringToObject(row, "model", f->match.model->name);
        cJSON *alternatives = cJSON_AddArrayToObject(row, "alternatives");
        for (size_t i = 0; alternatives && i < f->match.nalternatives; i++)
            cJSON_AddItemToArray(alternatives,
                                 cJSON_CreateString(f->match.alternatives[i]->name));
        cJSON_AddStringToObject(row, "description", f->match.model->description);
    }
    const char *order = order_name(f->match.word_order);
    cJSON_AddStringToObject(row, "word_order", f->match.model && !order[0] ? "model's" : order);
    gw_json_add_number_if(row, "voltage_v", f->match.voltage_v);
    gw_json_add_number_if(row, "volume_m3", f->match.volume_m3);
    if (f->serial[0])
        cJSON_AddStringToObject(row, "serial", f->serial);
    if (m)
        cJSON_AddStringToObject(row, "config_id", m->id);
    cJSON_AddStringToObject(row, "inventory", status);
    cJSON_AddBoolToObject(row, "duplicate", f->duplicate);
}

static void add_missing_rows(const struct ctl *c, const struct scan *s, cJSON *rows)
{
    for (size_t i = 0; s->bus != NULL && i < c->config->nmeters; i++) {
        const struct gw_meter_config *m = &c->config->meters[i];
        if (m->bus != s->bus_index || m->slave < s->first_id || m->slave > s->last_id ||
            found_at(s, m->slave))
            continue;
        cJSON *row = ctl_add_row(rows);
        if (row == NULL)
            return;
        cJSON_AddNumberToObject(row, "slave", m->slave);
        cJSON_AddStringToObject(row, "config_id", m->id);
        cJSON_AddStringToObject(row, "inventory", "missing (configured, no answer)");
        cJSON_AddBoolToObject(row, "duplicate", false);
    }
}

/* One meters_csv row per identified device: the config's identity for a
 * meter it knows, a new id and category "building" for the rest. */
static void add_csv_row(const struct ctl *c, const struct scan *s, const struct scan_found *f,
                        cJSON *rows)
{
    if (f->match.model == NULL || f->duplicate)
        return;
    const struct gw_meter_config *m = config_meter_at(c, s, f->slave);
    cJSON *row = ctl_add_row(rows);
    if (row == NULL)
        return;
    char id[80];
    snprintf(id, sizeof id, "%s-%d", s->bus_name, f->slave);
    cJSON_AddStringToObject(row, "id", m ? m->id : id);
    cJSON_AddStringToObject(row, "bus", s->bus_name);
    cJSON_AddNumberToObject(row, "slave", f->slave);
    cJSON_AddStringToObject(row, "driver", f->match.model->name);
    cJSON_AddStringToObject(row, "kind",
                            f->match.model->kind == DRV_KIND_WATER ? "water" : "electricity");
    cJSON_AddStringToObject(row, "category", m ? gw_category_name(m->category) : "building");
    if (m && m->unit >= 0)
        cJSON_AddStringToObject(row, "unit", c->config->units[m->unit].id);
    if (m && m->building && !m->building_from_unit)
        cJSON_AddStringToObject(row, "building", m->building);
    if (m && m->location)
        cJSON_AddStringToObject(row, "location", m->location);
    if (f->serial[0])
        cJSON_AddStringToObject(row, "serial", f->serial);
    cJSON_AddStringToObject(row, "word_order", order_name(f->match.word_order));
}

static void print_results(const struct ctl *c, const struct scan *s)
{
    cJSON *rows = cJSON_CreateArray();
    if (rows == NULL)
        return;
    if (c->csv) {
        static const struct gw_table_column cols[] = {
            {"id", "id"},           {"bus", "bus"},           {"slave", "slave"},
            {"driver", "driver"},   {"kind", "kind"},         {"category", "category"},
            {"unit", "unit"},       {"building", "building"}, {"location", "location"},
            {"serial", "serial"},   {"word_order", "word_order"},
        };
        for (size_t i = 0; i < s->nfound; i++)
            add_csv_row(c, s, &s->found[i], rows);
        ctl_print_rows(c, rows, cols, COUNT_OF(cols));
        cJSON_Delete(rows);
        return;
    }
    for (size_t i = 0; i < s->nfound; i++)
        add_found_row(c, s, &s->found[i], rows);
    add_missing_rows(c, s, rows);
    static const struct gw_table_column cols[] = {
        {"slave", "slave"},         {"setting", "setting"},     {"model", "model"},
        {"word order", "word_order"}, {"voltage", "voltage_v"}, {"volume", "volume_m3"},
        {"serial", "serial"},       {"config", "config_id"},    {"inventory", "inventory"},
    };
    ctl_print_rows(c, rows, cols, COUNT_OF(cols));
    cJSON_Delete(rows);
}

static size_t settings_to_try(const struct scan *s, struct scan_setting *out)
{
    if (!s->try_settings) {
        out[0] = (struct scan_setting){s->link.baud, s->link.parity, s->link.stop_bits};
        return 1;
    }
    static const int bauds[] = {9600, 19200, 4800, 2400};
    static const struct {
        char parity;
        int stop_bits;
    } framings[] = {{'N', 1}, {'E', 1}, {'N', 2}};
    size_t n = 0;
    for (size_t b = 0; b < COUNT_OF(bauds); b++)
        for (size_t f = 0; f < COUNT_OF(framings); f++)
            out[n++] = (struct scan_setting){bauds[b], framings[f].parity, framings[f].stop_bits};
    return n;
}

int ctl_scan_check_owner(const struct ctl *c, const struct gw_bus_config *bus, size_t index,
                         bool force)
{
    if (force)
        return 0;
    int64_t newest = newest_bus_reading_ms(c, index);
    if (newest > 0 && est_now_ms() - newest < OWNED_READING_AGE_MS) {
        fprintf(stderr,
                "estate-ctl: bus %s is polled by the running gateway (a reading %lld s ago): "
                "stop estate-gw, or remove the bus from the config and restart it, then scan "
                "with --device/--host (--force-offline-bus once the gateway no longer has "
                "it)\n",
                bus->name, (long long)((est_now_ms() - newest) / 1000));
        return EST_EXIT_RUNTIME;
    }
    return 0;
}

/* A DL/T 645 or CJ/T 188 line: --protocol says so, or the bus does. */
static bool scan_is_national(struct ctl *c)
{
    bool missing = false;
    const char *protocol = ctl_option_value(c, "--protocol", &missing);
    if (protocol != NULL && strcmp(protocol, "modbus") != 0)
        return true;
    const char *bus = ctl_option_value(c, "--bus", &missing);
    for (size_t i = 0; bus != NULL && i < c->config->nbuses; i++)
        if (strcmp(c->config->buses[i].name, bus) == 0)
            return c->config->buses[i].protocol != DRV_PROTO_MODBUS;
    return false;
}

int ctl_verb_scan(struct ctl *c)
{
    if (scan_is_national(c))
        return ctl_scan_national(c);
    struct scan *s = calloc(1, sizeof *s);
    if (s == NULL)
        return EST_EXIT_RUNTIME;
    bool force = false;
    int rc = scan_options(c, s, &force);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if (s->bus != NULL && (rc = ctl_scan_check_owner(c, s->bus, s->bus_index, force)) != 0) {
        free(s);
        return rc;
    }
    s->nprobes = drv_scan_probes(s->probes, DRV_SCAN_MAX_PROBES);
    s->tty = isatty(STDOUT_FILENO) && !c->csv && !c->json;
    struct scan_setting settings[SCAN_MAX_SETTINGS];
    size_t nsettings = settings_to_try(s, settings);
    s->ids_total = (unsigned)(nsettings * (size_t)(s->last_id - s->first_id + 1));
    s->started_ms = est_mono_ms();
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    char err[256] = "";
    bool interrupted = false;
    for (size_t i = 0; i < nsettings && !interrupted; i++) {
        if (!scan_setting(s, &settings[i], err, sizeof err)) {
            interrupted = scan_interrupted != 0;
            if (!interrupted)
                break;
        }
    }
    sigaction(SIGINT, &old, NULL);
    if (s->tty)
        printf("\r%*s\r", 78, "");
    if (err[0] && !interrupted) {
        fprintf(stderr, "estate-ctl: scan: %s\n", err);
        free(s);
        return EST_EXIT_RUNTIME;
    }
    print_results(c, s);
    if (!c->csv && !c->json)
        printf("%zu device(s) answered in %.1f s%s\n", s->nfound,
               (double)(est_mono_ms() - s->started_ms) / 1000.0,
               interrupted ? " (interrupted: ids after the last probed were not scanned)" : "");
    else
        fprintf(stderr, "estate-ctl: scan: %zu device(s) answered in %.1f s%s\n", s->nfound,
                (double)(est_mono_ms() - s->started_ms) / 1000.0,
                interrupted ? " (interrupted)" : "");
    free(s);
    return interrupted ? 130 : 0;
}
