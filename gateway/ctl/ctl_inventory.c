/* ctl_inventory.c - estate-ctl inventory (list, import FILE.csv) and
 * readings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "config.h"

/* ------------------------------------------------------------------ */
/* inventory                                                           */
/* ------------------------------------------------------------------ */

static bool inventory_row(void *ctx, const struct gw_store_meter *m)
{
    cJSON *row = gw_view_meter(m);
    if (row == NULL)
        return false;
    cJSON_AddItemToArray(ctx, row);
    return true;
}

static int verb_inventory_list(struct ctl *c)
{
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    cJSON *rows = cJSON_CreateArray();
    est_err err = gw_store_meters_list(store, inventory_row, rows);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"kind", "kind"}, {"category", "category"}, {"unit/location", "where"},
        {"driver", "driver"}, {"bus", "bus"}, {"slave", "slave"},
        {"address", "address"}, {"serial", "serial"},
        {"status", "status"}, {"last good", "last_good"}, {"value", "value"},
    };
    static const struct gw_table_column csv_cols[] = {
        {"id", "id"}, {"kind", "kind"}, {"category", "category"}, {"unit", "unit"},
        {"building", "building"}, {"location", "location"}, {"driver", "driver"}, {"bus", "bus"},
        {"slave", "slave"}, {"address", "address"}, {"serial", "serial"}, {"parent", "parent"},
        {"installed", "installed"},
        {"status", "status"}, {"last_good", "last_good"}, {"energy_import_kwh", "energy_import_kwh"},
        {"volume_m3", "volume_m3"},
    };
    if (c->csv)
        return ctl_list_done(c, store, err, "inventory", rows, csv_cols, COUNT_OF(csv_cols));
    return ctl_list_done(c, store, err, "inventory", rows, cols, COUNT_OF(cols));
}

/* Copies src over dst atomically (dst.new, fsync, rename). */
static bool replace_file(const char *src, const char *dst)
{
    char *data = NULL;
    size_t len = 0;
    if (csv_read_file(src, 64u << 20, &data, &len) != EST_OK)
        return false;
    size_t plen = strlen(dst) + 5;
    char *tmp = malloc(plen);
    FILE *f = tmp ? (snprintf(tmp, plen, "%s.new", dst), fopen(tmp, "wb")) : NULL;
    bool ok = f != NULL && fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    ok = ok && rename(tmp, dst) == 0;
    if (!ok && tmp != NULL)
        unlink(tmp);
    free(tmp);
    free(data);
    return ok;
}

/* inventory import FILE.csv: the CSV is the complete meter list (the
 * meters_csv format). It is validated against a scratch copy of the config
 * with its meters removed (duplicates, buses, slaves, parents, units; every
 * error as FILE:LINE), then applied to the inventory in one transaction
 * (new meters inserted, descriptive columns and changed serials taken,
 * meters missing from it flagged removed). When the config reads its
 * meters from a CSV, that file is replaced too, so the daemon loads the
 * same list at its next start. */
static int verb_inventory_import(struct ctl *c, const char *csv_path)
{
    struct gw_config *scratch = NULL;
    struct gw_config_errors errors = {0};
    if (gw_config_load(c->config_path, c->common.sets, c->common.nsets, &scratch, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return EST_EXIT_USAGE;
    }
    const char *config_meters_csv = NULL;
    if (scratch->nmeters > 0 && scratch->meters[0].file != NULL &&
        strcmp(scratch->meters[0].file, scratch->path) != 0)
        config_meters_csv = scratch->meters[0].file;
    char *meters_csv_copy = config_meters_csv ? strdup(config_meters_csv) : NULL;
    gw_config_clear_meters(scratch);
    /* An empty but non-NULL list: the loader copies the existing meters
     * with memcpy, which must not be handed NULL even for zero bytes. */
    scratch->meters = calloc(1, sizeof *scratch->meters);
    scratch->nmeters = 0;
    if (scratch->meters == NULL) {
        gw_config_free(scratch);
        free(meters_csv_copy);
        return EST_EXIT_RUNTIME;
    }
    est_err err = gw_config_load_meters_csv(scratch, csv_path, &errors);
    if (err != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        fprintf(stderr, "estate-ctl: %s: nothing imported\n", csv_path);
        gw_config_free(scratch);
        free(meters_csv_copy);
        return EST_EXIT_USAGE;
    }
    int rc = 0;
    struct gw_store *store = ctl_open_store(c, false);
    if (store == NULL) {
        rc = EST_EXIT_RUNTIME;
    } else if (gw_store_sync_inventory(store, scratch, est_now_ms(), NULL) != EST_OK) {
        rc = ctl_store_failure(store, "inventory import");
        store = NULL;
    } else {
        printf("imported %zu meters from %s\n", scratch->nmeters, csv_path);
    }
    gw_store_close(store);
    if (rc == 0 && meters_csv_copy != NULL) {
        if (!replace_file(csv_path, meters_csv_copy)) {
            fprintf(stderr, "estate-ctl: %s: cannot replace it (%s); the daemon will restore the "
                            "old list at its next start\n",
                    meters_csv_copy, strerror(errno));
            rc = EST_EXIT_RUNTIME;
        } else {
            printf("replaced %s (the config's meters_csv)\n", meters_csv_copy);
        }
    } else if (rc == 0) {
        printf("note: %s lists its meters itself; update it to match, or the daemon's next start "
               "restores its list (serials stay)\n",
               c->config_path);
    }
    free(meters_csv_copy);
    gw_config_free(scratch);
    return rc;
}

int ctl_verb_inventory(struct ctl *c)
{
    const char *sub = ctl_positional(c, 0);
    if (sub == NULL) {
        int bad = ctl_leftover_arguments(c);
        return bad ? bad : verb_inventory_list(c);
    }
    if (strcmp(sub, "import") != 0)
        return ctl_usage_error("inventory: unknown subcommand '%s'", sub);
    const char *file = ctl_positional(c, 0);
    if (file == NULL)
        return ctl_usage_error("inventory import needs a CSV file");
    int bad = ctl_leftover_arguments(c);
    return bad ? bad : verb_inventory_import(c, file);
}

/* ------------------------------------------------------------------ */
/* readings                                                            */
/* ------------------------------------------------------------------ */

static const char *quality_name(enum gw_store_quality q)
{
    return q == GW_STORE_GOOD ? "good" : q == GW_STORE_STALE ? "stale" : "error";
}

struct readings_ctx {
    cJSON *rows;
    const char *meter_id;
};

static bool reading_row(void *ctx, const struct gw_store_reading_row *r)
{
    struct readings_ctx *x = ctx;
    cJSON *row = ctl_add_row(x->rows);
    if (row == NULL)
        return false;
    gw_json_add_string_if(row, "meter", r->meter_id ? r->meter_id : x->meter_id);
    gw_json_add_ts_if(row, "ts", r->ts_ms);
    cJSON_AddStringToObject(row, "quality", quality_name(r->quality));
    gw_json_add_number_if(row, "energy_import_kwh", r->values.energy_import_kwh);
    gw_json_add_number_if(row, "energy_export_kwh", r->values.energy_export_kwh);
    gw_json_add_number_if(row, "power_w", r->values.power_w);
    gw_json_add_number_if(row, "volume_m3", r->values.volume_m3);
    gw_json_add_number_if(row, "flow_m3h", r->values.flow_m3h);
    ctl_add_parsed(row, "values", r->values_json);
    return true;
}

int ctl_verb_readings(struct ctl *c)
{
    bool missing = false;
    const char *since_text = ctl_option_value(c, "--since", &missing);
    const char *limit_text = ctl_option_value(c, "--limit", &missing);
    const char *meter = ctl_positional(c, 0);
    if (missing)
        return ctl_usage_error("readings: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    int64_t since_ms = est_now_ms() - 86400000, limit = 100;
    if (since_text != NULL && !ctl_parse_time(since_text, &since_ms))
        return ctl_usage_error("readings: --since '%s' is not an RFC 3339 time or -Nh/-Nd", since_text);
    if (limit_text != NULL && !ctl_parse_int64(limit_text, 1, 1000000, &limit))
        return ctl_usage_error("readings: --limit '%s' must be 1..1000000", limit_text);
    if (meter != NULL && gw_config_meter_index(c->config, meter) < 0)
        return ctl_usage_error("readings: unknown meter '%s'", meter);
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    struct readings_ctx x = {.rows = cJSON_CreateArray(), .meter_id = meter};
    est_err err;
    if (meter == NULL) {
        err = gw_store_readings_latest(store, reading_row, &x);
    } else {
        int64_t rid = 0;
        err = gw_store_meter_rowid(store, meter, &rid);
        if (err == EST_OK)
            err = gw_store_readings_history(store, rid, since_ms, INT64_MAX, (size_t)limit,
                                            reading_row, &x);
    }
    static const struct gw_table_column cols[] = {
        {"meter", "meter"}, {"ts", "ts"}, {"quality", "quality"},
        {"import kWh", "energy_import_kwh"}, {"export kWh", "energy_export_kwh"},
        {"power W", "power_w"}, {"volume m3", "volume_m3"}, {"flow m3/h", "flow_m3h"},
    };
    return ctl_list_done(c, store, err, "readings", x.rows, cols, COUNT_OF(cols));
}
