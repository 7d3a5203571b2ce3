/* ctl_main.c - estate-ctl, the operator's command line (SPEC "Programs").
 *
 *   estate-ctl -c FILE [--set PATH=VALUE]... [--json] [--csv] [--user U] VERB ...
 *
 * Read-only verbs (inventory, readings, incidents, workorders, workorder
 * <id>, patrol log/verify, report, handover --preview) open the database
 * read-only. Verbs that change state while the daemon runs (workorder
 * actions, unit occupancy, handover, patrol checkin) are queued for the
 * daemon through the store's request table and answered by its core thread
 * within 10 s (actor: --user, else $SUDO_USER, else $USER; role supervisor;
 * origin "ctl"). Two verbs write the database directly because they touch
 * nothing the daemon caches: "patrol anchor" (records the exported head)
 * and "inventory import" (validated all or nothing, one transaction).
 *
 * Exit status: 0 success, 2 bad usage or bad config/input file, 1 runtime
 * failure (database, refused command, gateway not running, broken chain). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "csv.h"
#include "estate.h"
#include "handover.h"
#include "payload.h"
#include "report.h"
#include "store.h"
#if __has_include("users.h")
#include "users.h"
#define HAVE_USERS_CTL 1
#endif

#define EXIT_USAGE 2
#define EXIT_RUNTIME 1
#define DAEMON_WAIT_MS 10000
#define DAEMON_POLL_MS 100
#define MAX_SETS 64
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char usage_text[] =
    "usage: estate-ctl -c FILE [--set PATH=VALUE]... [--json] [--csv] [--user USER] VERB ...\n"
    "verbs:\n"
    "  inventory [--csv]                      meters with status and last good reading\n"
    "  inventory import FILE.csv              replace the meter list (validated, all or nothing)\n"
    "  readings [METER] [--since TS] [--limit N]\n"
    "  incidents [--all]\n"
    "  workorders [--state S[,S...]] [--all]\n"
    "  workorder ID                           one work order with its history\n"
    "  workorder ID ACTION [--note T] [--assignee A] [--verifier V] [--until TS|+Nh|+Nd]\n"
    "                      [--rating N]       ACTION: dispatch arrive complete verify cancel\n"
    "                                         close postpone note rating\n"
    "  workorder create --category C --description D (--unit U | --location L)\n"
    "  patrol log [--since SEQ] [--limit N] [--csv]\n"
    "  patrol verify                          check the hash chain (exit 1 when broken)\n"
    "  patrol anchor [--to DESTINATION]       print and record the chain head\n"
    "  patrol checkin --location L --text T [--incident ID [--verdict confirm|dispute]]\n"
    "  handover --from A --to B [--note T] [--preview]\n"
    "  report [--from DAY] [--to DAY] [--csv]  consumption, balance, offline/replaced meters\n"
    "  unit ID occupancy vacant|occupied\n"
    "  user add|passwd|disable|enable|list ...\n"
    "options: --json machine output, --csv CSV where supported, --help, --version\n"
    "exit: 0 ok, 2 bad usage or config, 1 failure\n";

/* The parsed command line and the loaded config. */
struct ctl {
    const char *config_path;
    const char *sets[MAX_SETS];
    size_t nsets;
    bool json, csv;
    const char *user;
    struct gw_config *config;
    int argc;           /* the verb and its arguments */
    char **argv;
    bool *used;         /* argv entries consumed by the verb */
};

/* ------------------------------------------------------------------ */
/* Command-line helpers                                                */
/* ------------------------------------------------------------------ */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "estate-ctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see estate-ctl --help)\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* The value of "--name VALUE" or "--name=VALUE" among the verb's
 * arguments (NULL if absent); marks it used. *missing set when the option
 * is present without a value. */
static const char *option_value(struct ctl *c, const char *name, bool *missing)
{
    size_t len = strlen(name);
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (strncmp(a, name, len) != 0)
            continue;
        if (a[len] == '=') {
            c->used[i] = true;
            return a + len + 1;
        }
        if (a[len] == '\0') {
            c->used[i] = true;
            if (i + 1 >= c->argc) {
                *missing = true;
                return NULL;
            }
            c->used[i + 1] = true;
            return c->argv[i + 1];
        }
    }
    return NULL;
}

static bool option_flag(struct ctl *c, const char *name)
{
    for (int i = 1; i < c->argc; i++)
        if (strcmp(c->argv[i], name) == 0) {
            c->used[i] = true;
            return true;
        }
    return false;
}

/* The n-th (0-based) argument after the verb that is not an option. */
static const char *positional(struct ctl *c, int n)
{
    for (int i = 1; i < c->argc; i++) {
        if (c->used[i] || (c->argv[i][0] == '-' && c->argv[i][1] == '-'))
            continue;
        if (n-- == 0) {
            c->used[i] = true;
            return c->argv[i];
        }
    }
    return NULL;
}

/* After a verb took what it knows: anything left is a usage error. */
static int leftover_arguments(const struct ctl *c)
{
    for (int i = 1; i < c->argc; i++)
        if (!c->used[i])
            return usage_error("unexpected argument '%s'", c->argv[i]);
    return 0;
}

static bool parse_int64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (text == NULL || *text == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* RFC 3339, or relative to now: "+2h", "+3d", "-24h". */
static bool parse_time(const char *text, int64_t *ms)
{
    if (text == NULL)
        return false;
    if ((text[0] == '+' || text[0] == '-') && strlen(text) >= 3) {
        size_t len = strlen(text);
        char unit = text[len - 1];
        int64_t scale = unit == 'm' ? 60000 : unit == 'h' ? 3600000 : unit == 'd' ? 86400000 : 0;
        char digits[24];
        if (scale == 0 || len - 2 >= sizeof digits)
            return false;
        memcpy(digits, text + 1, len - 2);
        digits[len - 2] = '\0';
        int64_t n = 0;
        if (!parse_int64(digits, 0, 100000, &n))
            return false;
        *ms = est_now_ms() + (text[0] == '+' ? 1 : -1) * n * scale;
        return true;
    }
    return est_parse_ts(text, ms) == EST_OK;
}

static const char *actor_name(const struct ctl *c)
{
    if (c->user != NULL)
        return c->user;
    const char *u = getenv("SUDO_USER");
    if (u == NULL || *u == '\0')
        u = getenv("USER");
    return u != NULL && *u != '\0' ? u : "operator";
}

/* ------------------------------------------------------------------ */
/* Output helpers                                                      */
/* ------------------------------------------------------------------ */

static void print_json(const cJSON *item)
{
    char *s = cJSON_Print(item);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

/* Rows as JSON (--json), CSV (--csv) or an aligned table. */
static void print_rows(const struct ctl *c, const cJSON *rows, const struct gw_table_column *cols,
                       size_t ncols)
{
    if (c->json)
        print_json(rows);
    else
        gw_table_print(stdout, rows, cols, ncols, c->csv);
}



static void add_num(cJSON *o, const char *key, double value)
{
    if (value == value) /* not NAN */
        cJSON_AddNumberToObject(o, key, value);
}

/* ------------------------------------------------------------------ */
/* Store access                                                        */
/* ------------------------------------------------------------------ */

static struct gw_store *open_store(const struct ctl *c, bool readonly)
{
    struct gw_store *store = NULL;
    char err[512];
    est_err e = gw_store_open(c->config->gateway.data_dir, readonly, &store, err, sizeof err);
    if (e == EST_ERR_NOTFOUND)
        fprintf(stderr, "estate-ctl: no database in %s (has estate-gw run with this config?)\n",
                c->config->gateway.data_dir);
    else if (e != EST_OK)
        fprintf(stderr, "estate-ctl: %s/%s: %s\n", c->config->gateway.data_dir, GW_STORE_DB_FILE, err);
    return store;
}

static int store_failure(struct gw_store *store, const char *what)
{
    fprintf(stderr, "estate-ctl: %s: %s\n", what, gw_store_errmsg(store));
    gw_store_close(store);
    return EXIT_RUNTIME;
}

/* Queues verb/args for the daemon and waits for its answer. 0 with
 * *result set, or 1 after printing why. */
static int ask_daemon(const struct ctl *c, const char *verb, cJSON *args, cJSON **result)
{
    *result = NULL;
    cJSON_AddStringToObject(args, "user", actor_name(c));
    char *json = cJSON_PrintUnformatted(args);
    struct gw_store *store = json ? open_store(c, false) : NULL;
    if (store == NULL) {
        free(json);
        return EXIT_RUNTIME;
    }
    int64_t id = 0;
    est_err err = gw_store_ctl_submit(store, verb, json, est_now_ms(), &id);
    free(json);
    if (err != EST_OK)
        return store_failure(store, "cannot queue the request");
    bool done = false;
    char *answer = NULL;
    for (int waited = 0; waited <= DAEMON_WAIT_MS && !done; waited += DAEMON_POLL_MS) {
        if (gw_store_ctl_result(store, id, &done, &answer) != EST_OK)
            return store_failure(store, "cannot read the answer");
        if (!done)
            est_sleep_ms(DAEMON_POLL_MS);
    }
    gw_store_close(store);
    if (!done) {
        fprintf(stderr, "estate-ctl: the gateway did not answer within %d s: is estate-gw running "
                        "with %s?\n",
                DAEMON_WAIT_MS / 1000, c->config_path);
        return EXIT_RUNTIME;
    }
    *result = answer ? cJSON_Parse(answer) : NULL;
    free(answer);
    if (*result == NULL) {
        fprintf(stderr, "estate-ctl: the gateway's answer is not JSON\n");
        return EXIT_RUNTIME;
    }
    return 0;
}

/* Prints a refusal and returns 1, or 0 when the result is ok. */
static int check_result(const struct ctl *c, const cJSON *result)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok")))
        return 0;
    if (c->json)
        print_json(result);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(result, "error");
    fprintf(stderr, "estate-ctl: refused: %s\n", cJSON_IsString(e) ? e->valuestring : "unknown error");
    return EXIT_RUNTIME;
}

/* ------------------------------------------------------------------ */
/* inventory                                                           */
/* ------------------------------------------------------------------ */

/* The value that says most about a meter: import kWh or volume m3. */
static void add_key_value(cJSON *row, const char *kind, const char *values_json)
{
    cJSON *values = values_json ? cJSON_Parse(values_json) : NULL;
    const char *key = kind && strcmp(kind, "water") == 0 ? "volume_m3" : "energy_import_kwh";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(values, key);
    if (cJSON_IsNumber(v)) {
        char text[64];
        snprintf(text, sizeof text, "%.3f %s", v->valuedouble,
                 strcmp(key, "volume_m3") == 0 ? "m3" : "kWh");
        cJSON_AddStringToObject(row, "value", text);
        cJSON_AddNumberToObject(row, key, v->valuedouble);
    }
    cJSON_Delete(values);
}

static bool inventory_row(void *ctx, const struct gw_store_meter *m)
{
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    gw_json_add_string_if(row, "id", m->id);
    gw_json_add_string_if(row, "kind", m->kind);
    gw_json_add_string_if(row, "category", m->category);
    gw_json_add_string_if(row, "unit", m->unit);
    gw_json_add_string_if(row, "building", m->building);
    gw_json_add_string_if(row, "location", m->location);
    gw_json_add_string_if(row, "where", m->unit ? m->unit : m->location ? m->location : m->building);
    gw_json_add_string_if(row, "driver", m->driver);
    gw_json_add_string_if(row, "bus", m->bus);
    cJSON_AddNumberToObject(row, "slave", m->slave);
    gw_json_add_string_if(row, "serial", m->serial);
    gw_json_add_string_if(row, "parent", m->parent);
    gw_json_add_ts_if(row, "installed", m->install_ms);
    gw_json_add_string_if(row, "status", m->removed ? "removed" : m->status);
    gw_json_add_ts_if(row, "last_good", m->last_good_ms);
    add_key_value(row, m->kind, m->last_values_json);
    cJSON_AddItemToArray(ctx, row);
    return true;
}

static int verb_inventory_list(struct ctl *c)
{
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    cJSON *rows = cJSON_CreateArray();
    if (gw_store_meters_list(store, inventory_row, rows) != EST_OK) {
        cJSON_Delete(rows);
        return store_failure(store, "inventory");
    }
    gw_store_close(store);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"kind", "kind"}, {"category", "category"}, {"unit/location", "where"},
        {"driver", "driver"}, {"bus", "bus"}, {"slave", "slave"}, {"serial", "serial"},
        {"status", "status"}, {"last good", "last_good"}, {"value", "value"},
    };
    static const struct gw_table_column csv_cols[] = {
        {"id", "id"}, {"kind", "kind"}, {"category", "category"}, {"unit", "unit"},
        {"building", "building"}, {"location", "location"}, {"driver", "driver"}, {"bus", "bus"},
        {"slave", "slave"}, {"serial", "serial"}, {"parent", "parent"}, {"installed", "installed"},
        {"status", "status"}, {"last_good", "last_good"}, {"energy_import_kwh", "energy_import_kwh"},
        {"volume_m3", "volume_m3"},
    };
    if (c->csv)
        print_rows(c, rows, csv_cols, COUNT_OF(csv_cols));
    else
        print_rows(c, rows, cols, COUNT_OF(cols));
    cJSON_Delete(rows);
    return 0;
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
    if (gw_config_load(c->config_path, c->sets, c->nsets, &scratch, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return EXIT_USAGE;
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
        return EXIT_RUNTIME;
    }
    est_err err = gw_config_load_meters_csv(scratch, csv_path, &errors);
    if (err != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        fprintf(stderr, "estate-ctl: %s: nothing imported\n", csv_path);
        gw_config_free(scratch);
        free(meters_csv_copy);
        return EXIT_USAGE;
    }
    int rc = 0;
    struct gw_store *store = open_store(c, false);
    if (store == NULL) {
        rc = EXIT_RUNTIME;
    } else if (gw_store_sync_inventory(store, scratch, est_now_ms(), NULL) != EST_OK) {
        rc = store_failure(store, "inventory import");
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
            rc = EXIT_RUNTIME;
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

static int verb_inventory(struct ctl *c)
{
    const char *sub = positional(c, 0);
    if (sub == NULL) {
        int bad = leftover_arguments(c);
        return bad ? bad : verb_inventory_list(c);
    }
    if (strcmp(sub, "import") != 0)
        return usage_error("inventory: unknown subcommand '%s'", sub);
    const char *file = positional(c, 0);
    if (file == NULL)
        return usage_error("inventory import needs a CSV file");
    int bad = leftover_arguments(c);
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
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    gw_json_add_string_if(row, "meter", r->meter_id ? r->meter_id : x->meter_id);
    gw_json_add_ts_if(row, "ts", r->ts_ms);
    cJSON_AddStringToObject(row, "quality", quality_name(r->quality));
    add_num(row, "energy_import_kwh", r->values.energy_import_kwh);
    add_num(row, "energy_export_kwh", r->values.energy_export_kwh);
    add_num(row, "power_w", r->values.power_w);
    add_num(row, "volume_m3", r->values.volume_m3);
    add_num(row, "flow_m3h", r->values.flow_m3h);
    if (r->values_json != NULL) {
        cJSON *values = cJSON_Parse(r->values_json);
        if (values != NULL)
            cJSON_AddItemToObject(row, "values", values);
    }
    cJSON_AddItemToArray(x->rows, row);
    return true;
}

static int verb_readings(struct ctl *c)
{
    bool missing = false;
    const char *since_text = option_value(c, "--since", &missing);
    const char *limit_text = option_value(c, "--limit", &missing);
    const char *meter = positional(c, 0);
    if (missing)
        return usage_error("readings: an option needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    int64_t since_ms = est_now_ms() - 86400000, limit = 100;
    if (since_text != NULL && !parse_time(since_text, &since_ms))
        return usage_error("readings: --since '%s' is not an RFC 3339 time or -Nh/-Nd", since_text);
    if (limit_text != NULL && !parse_int64(limit_text, 1, 1000000, &limit))
        return usage_error("readings: --limit '%s' must be 1..1000000", limit_text);
    if (meter != NULL && gw_config_meter_index(c->config, meter) < 0)
        return usage_error("readings: unknown meter '%s'", meter);
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
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
    if (err != EST_OK) {
        cJSON_Delete(x.rows);
        return store_failure(store, "readings");
    }
    gw_store_close(store);
    static const struct gw_table_column cols[] = {
        {"meter", "meter"}, {"ts", "ts"}, {"quality", "quality"},
        {"import kWh", "energy_import_kwh"}, {"export kWh", "energy_export_kwh"},
        {"power W", "power_w"}, {"volume m3", "volume_m3"}, {"flow m3/h", "flow_m3h"},
    };
    print_rows(c, x.rows, cols, COUNT_OF(cols));
    cJSON_Delete(x.rows);
    return 0;
}

/* ------------------------------------------------------------------ */
/* incidents                                                           */
/* ------------------------------------------------------------------ */

static bool incident_row(void *ctx, const struct gw_store_incident *in)
{
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    cJSON_AddNumberToObject(row, "id", (double)in->id);
    gw_json_add_string_if(row, "rule", in->rule);
    gw_json_add_string_if(row, "severity", in->severity);
    cJSON_AddStringToObject(row, "state", in->open ? "active" : "cleared"); /* SPEC: state=active */
    gw_json_add_string_if(row, "subject_type", in->subject_type);
    gw_json_add_string_if(row, "subject", in->subject);
    if (in->zone >= 0)
        cJSON_AddNumberToObject(row, "zone", in->zone + 1);
    gw_json_add_ts_if(row, "since", in->since_ms);
    gw_json_add_ts_if(row, "raised", in->raised_ms);
    gw_json_add_ts_if(row, "cleared", in->cleared_ms);
    gw_json_add_string_if(row, "text", in->text);
    gw_json_add_string_if(row, "confirmed_by", in->confirmed_by);
    gw_json_add_string_if(row, "disputed_by", in->disputed_by);
    if (in->detail_json != NULL) {
        cJSON *detail = cJSON_Parse(in->detail_json);
        if (detail != NULL)
            cJSON_AddItemToObject(row, "detail", detail);
    }
    cJSON_AddItemToArray(ctx, row);
    return true;
}

static int verb_incidents(struct ctl *c)
{
    bool all = option_flag(c, "--all");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    cJSON *rows = cJSON_CreateArray();
    est_err err = all ? gw_store_incidents_between(store, 0, INT64_MAX, incident_row, rows)
                      : gw_store_incidents_open(store, incident_row, rows);
    if (err != EST_OK) {
        cJSON_Delete(rows);
        return store_failure(store, "incidents");
    }
    gw_store_close(store);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"rule", "rule"}, {"severity", "severity"}, {"state", "state"},
        {"subject", "subject"}, {"zone", "zone"}, {"raised", "raised"}, {"cleared", "cleared"},
        {"confirmed by", "confirmed_by"}, {"text", "text"},
    };
    print_rows(c, rows, cols, COUNT_OF(cols));
    cJSON_Delete(rows);
    return 0;
}

/* ------------------------------------------------------------------ */
/* workorders / workorder                                              */
/* ------------------------------------------------------------------ */

struct orders_ctx {
    cJSON *rows;
    int64_t now_ms;
};

static bool order_row(void *ctx, const struct gw_store_workorder *wo)
{
    struct orders_ctx *x = ctx;
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    cJSON_AddNumberToObject(row, "id", (double)wo->id);
    if (wo->incident > 0)
        cJSON_AddNumberToObject(row, "incident", (double)wo->incident);
    gw_json_add_string_if(row, "state", wo->state);
    gw_json_add_string_if(row, "category", wo->category);
    gw_json_add_string_if(row, "unit", wo->unit);
    gw_json_add_string_if(row, "location", wo->location);
    gw_json_add_string_if(row, "where", wo->unit ? wo->unit : wo->location);
    gw_json_add_string_if(row, "severity", wo->severity);
    gw_json_add_string_if(row, "assignee", wo->assignee);
    gw_json_add_ts_if(row, "opened", wo->opened_ms);
    if (!gw_workorder_state_closed(wo->state) && strcmp(wo->state, "completed") != 0) {
        if (strcmp(wo->state, "dispatched") == 0)
            gw_json_add_ts_if(row, "arrive_due", wo->arrive_due_ms);
        gw_json_add_ts_if(row, "resolve_due", gw_workorder_resolve_due_ms(wo));
    }
    cJSON_AddBoolToObject(row, "overdue", gw_workorder_overdue(wo, x->now_ms));
    cJSON_AddBoolToObject(row, "escalated", wo->escalated);
    gw_json_add_string_if(row, "description", wo->description);
    cJSON_AddItemToArray(x->rows, row);
    return true;
}

/* Splits "a,b" into at most max state names (pointers into buf). */
static size_t split_states(char *buf, const char **states, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(buf, ","); tok != NULL && n < max; tok = strtok(NULL, ","))
        states[n++] = tok;
    return n;
}

static int verb_workorders(struct ctl *c)
{
    bool missing = false;
    const char *state = option_value(c, "--state", &missing);
    bool all = option_flag(c, "--all");
    if (missing)
        return usage_error("workorders: --state needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    static const char *const not_closed[] = {"open", "dispatched", "on_site", "completed"};
    const char *states[8];
    size_t nstates = 0;
    char *buf = state ? strdup(state) : NULL;
    if (buf != NULL)
        nstates = split_states(buf, states, COUNT_OF(states));
    else if (!all)
        for (; nstates < COUNT_OF(not_closed); nstates++)
            states[nstates] = not_closed[nstates];
    struct gw_store *store = open_store(c, true);
    if (store == NULL) {
        free(buf);
        return EXIT_RUNTIME;
    }
    struct orders_ctx x = {.rows = cJSON_CreateArray(), .now_ms = est_now_ms()};
    est_err err = gw_store_workorders_list(store, states, nstates, order_row, &x);
    free(buf);
    if (err != EST_OK) {
        cJSON_Delete(x.rows);
        return store_failure(store, "work orders");
    }
    gw_store_close(store);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"state", "state"}, {"category", "category"}, {"unit/location", "where"},
        {"assignee", "assignee"}, {"opened", "opened"}, {"arrive due", "arrive_due"},
        {"resolve due", "resolve_due"}, {"overdue", "overdue"}, {"escalated", "escalated"},
        {"description", "description"},
    };
    print_rows(c, x.rows, cols, COUNT_OF(cols));
    cJSON_Delete(x.rows);
    return 0;
}

static void print_order_text(const cJSON *o)
{
    static const char *const fields[] = {
        "id", "incident", "state", "category", "unit", "building", "location", "description",
        "severity", "assignee", "verifier", "rating", "opened", "dispatched", "arrive_due",
        "resolve_due", "on_site", "completed", "verified", "cancelled", "escalated",
    };
    for (size_t i = 0; i < COUNT_OF(fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i]);
        if (cJSON_IsString(v))
            printf("%-12s %s\n", fields[i], v->valuestring);
        else if (cJSON_IsNumber(v))
            printf("%-12s %.0f\n", fields[i], v->valuedouble);
        else if (cJSON_IsBool(v))
            printf("%-12s %s\n", fields[i], cJSON_IsTrue(v) ? "yes" : "no");
    }
    printf("history:\n");
    static const struct gw_table_column cols[] = {
        {"ts", "ts"}, {"action", "action"}, {"from", "from"}, {"to", "to"}, {"who", "who"},
        {"note", "note"},
    };
    gw_table_print(stdout, cJSON_GetObjectItemCaseSensitive(o, "history"), cols, COUNT_OF(cols),
                   false);
}

static int show_workorder(struct ctl *c, int64_t id)
{
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    cJSON *o = gw_workorder_json(store, id);
    gw_store_close(store);
    if (o == NULL) {
        fprintf(stderr, "estate-ctl: no work order %" PRId64 "\n", id);
        return EXIT_RUNTIME;
    }
    if (c->json)
        print_json(o);
    else
        print_order_text(o);
    cJSON_Delete(o);
    return 0;
}

/* Options of workorder actions: --name VALUE -> args member. */
static int collect_workorder_options(struct ctl *c, cJSON *args)
{
    static const char *const string_options[][2] = {
        {"--note", "note"},         {"--assignee", "assignee"}, {"--verifier", "verifier"},
        {"--category", "category"}, {"--description", "description"}, {"--unit", "unit"},
        {"--location", "location"}, {"--comment", "comment"},
    };
    bool missing = false;
    for (size_t i = 0; i < COUNT_OF(string_options); i++) {
        const char *v = option_value(c, string_options[i][0], &missing);
        if (v != NULL)
            cJSON_AddStringToObject(args, string_options[i][1], v);
    }
    const char *until = option_value(c, "--until", &missing);
    const char *rating = option_value(c, "--rating", &missing);
    const char *user = option_value(c, "--user", &missing);
    if (missing)
        return usage_error("workorder: an option needs a value");
    if (user != NULL)
        c->user = user;
    if (until != NULL) {
        int64_t ms = 0;
        if (!parse_time(until, &ms))
            return usage_error("workorder: --until '%s' is not an RFC 3339 time or +Nh/+Nd", until);
        char ts[EST_TS_LEN];
        est_format_ts(ms, ts);
        cJSON_AddStringToObject(args, "until", ts);
    }
    if (rating != NULL) {
        int64_t n = 0;
        if (!parse_int64(rating, 1, 5, &n))
            return usage_error("workorder: --rating '%s' must be 1..5", rating);
        cJSON_AddNumberToObject(args, "rating", (double)n);
    }
    return leftover_arguments(c);
}

static int run_workorder_action(struct ctl *c, cJSON *args)
{
    cJSON *result = NULL;
    int rc = ask_daemon(c, "workorder", args, &result);
    if (rc == 0)
        rc = check_result(c, result);
    if (rc == 0) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(result, "workorder");
        if (c->json)
            print_json(result);
        else if (o != NULL)
            print_order_text(o);
    }
    cJSON_Delete(result);
    return rc;
}

static int verb_workorder(struct ctl *c)
{
    const char *first = positional(c, 0);
    if (first == NULL)
        return usage_error("workorder needs an id (or create)");
    cJSON *args = cJSON_CreateObject();
    int rc;
    if (strcmp(first, "create") == 0) {
        cJSON_AddStringToObject(args, "action", "create");
        rc = collect_workorder_options(c, args);
    } else {
        int64_t id = 0;
        if (!parse_int64(first, 1, INT64_C(1) << 52, &id)) {
            cJSON_Delete(args);
            return usage_error("workorder: '%s' is not a work order id", first);
        }
        const char *action = positional(c, 0);
        if (action == NULL) {
            cJSON_Delete(args);
            rc = leftover_arguments(c);
            return rc ? rc : show_workorder(c, id);
        }
        cJSON_AddNumberToObject(args, "id", (double)id);
        cJSON_AddStringToObject(args, "action", action);
        rc = collect_workorder_options(c, args);
    }
    if (rc == 0)
        rc = run_workorder_action(c, args);
    cJSON_Delete(args);
    return rc;
}

/* ------------------------------------------------------------------ */
/* patrol                                                              */
/* ------------------------------------------------------------------ */

static bool patrol_row(void *ctx, const struct gw_store_patrol_entry *e)
{
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    cJSON_AddNumberToObject(row, "seq", (double)e->seq);
    gw_json_add_ts_if(row, "ts", e->ts_ms);
    gw_json_add_string_if(row, "kind", e->kind);
    gw_json_add_string_if(row, "author", e->author);
    if (e->incident > 0)
        cJSON_AddNumberToObject(row, "incident", (double)e->incident);
    if (e->workorder > 0)
        cJSON_AddNumberToObject(row, "workorder", (double)e->workorder);
    gw_json_add_string_if(row, "text", e->text);
    gw_json_add_string_if(row, "detail", e->detail_json);
    cJSON_AddStringToObject(row, "prev_hash", e->prev_hash);
    cJSON_AddStringToObject(row, "hash", e->hash);
    char short_hash[13];
    snprintf(short_hash, sizeof short_hash, "%.12s", e->hash);
    cJSON_AddStringToObject(row, "hash12", short_hash);
    cJSON_AddItemToArray(ctx, row);
    return true;
}

static int patrol_log(struct ctl *c)
{
    bool missing = false;
    const char *since_text = option_value(c, "--since", &missing);
    const char *limit_text = option_value(c, "--limit", &missing);
    if (missing)
        return usage_error("patrol log: an option needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    int64_t since = 0, limit = 0;
    if (since_text != NULL && !parse_int64(since_text, 0, INT64_MAX, &since))
        return usage_error("patrol log: --since '%s' must be a sequence number", since_text);
    if (limit_text != NULL && !parse_int64(limit_text, 1, 100000000, &limit))
        return usage_error("patrol log: --limit '%s' must be a positive number", limit_text);
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    cJSON *rows = cJSON_CreateArray();
    if (gw_store_patrol_list(store, since, (size_t)limit, patrol_row, rows) != EST_OK) {
        cJSON_Delete(rows);
        return store_failure(store, "patrol log");
    }
    gw_store_close(store);
    static const struct gw_table_column cols[] = {
        {"seq", "seq"}, {"ts", "ts"}, {"kind", "kind"}, {"author", "author"},
        {"incident", "incident"}, {"workorder", "workorder"}, {"text", "text"}, {"hash", "hash12"},
    };
    static const struct gw_table_column csv_cols[] = {
        {"seq", "seq"}, {"ts", "ts"}, {"kind", "kind"}, {"author", "author"},
        {"incident", "incident"}, {"workorder", "workorder"}, {"text", "text"},
        {"detail", "detail"}, {"prev_hash", "prev_hash"}, {"hash", "hash"},
    };
    if (c->csv)
        print_rows(c, rows, csv_cols, COUNT_OF(csv_cols));
    else
        print_rows(c, rows, cols, COUNT_OF(cols));
    cJSON_Delete(rows);
    return 0;
}

static int patrol_verify(struct ctl *c)
{
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    struct gw_store_patrol_verify v;
    if (gw_store_patrol_verify(store, &v) != EST_OK)
        return store_failure(store, "patrol verify");
    gw_store_close(store);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", v.first_bad_seq == 0);
        cJSON_AddNumberToObject(o, "count", (double)v.count);
        cJSON_AddNumberToObject(o, "head_seq", (double)v.head_seq);
        cJSON_AddStringToObject(o, "head_hash", v.head_hash);
        cJSON_AddNumberToObject(o, "anchors", (double)v.anchors);
        if (v.first_bad_seq != 0) {
            cJSON_AddNumberToObject(o, "first_bad_seq", (double)v.first_bad_seq);
            cJSON_AddStringToObject(o, "problem", v.problem ? v.problem : "broken");
        }
        print_json(o);
        cJSON_Delete(o);
    } else if (v.first_bad_seq == 0) {
        printf("OK: %" PRId64 " entries, head %" PRId64 " %s, %" PRId64 " anchors checked\n",
               v.count, v.head_seq, v.head_hash, v.anchors);
    }
    if (v.first_bad_seq != 0) {
        fprintf(stderr, "BROKEN: patrol log entry %" PRId64 ": %s\n", v.first_bad_seq,
                v.problem ? v.problem : "the chain breaks here");
        return EXIT_RUNTIME;
    }
    return 0;
}

static int patrol_anchor(struct ctl *c)
{
    bool missing = false;
    const char *to = option_value(c, "--to", &missing);
    if (missing)
        return usage_error("patrol anchor: --to needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    struct gw_store *store = open_store(c, false);
    if (store == NULL)
        return EXIT_RUNTIME;
    int64_t seq = 0;
    char hash[GW_STORE_HASH_LEN];
    int64_t now = est_now_ms();
    if (gw_store_patrol_anchor(store, now, to ? to : "printed", &seq, hash) != EST_OK)
        return store_failure(store, "patrol anchor");
    gw_store_close(store);
    char ts[EST_TS_LEN];
    est_format_ts(now, ts);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "site", c->config->gateway.site);
        cJSON_AddStringToObject(o, "gateway", c->config->gateway.id);
        cJSON_AddNumberToObject(o, "seq", (double)seq);
        cJSON_AddStringToObject(o, "hash", hash);
        cJSON_AddStringToObject(o, "ts", ts);
        print_json(o);
        cJSON_Delete(o);
    } else {
        printf("patrol log head of %s/%s at %s: seq %" PRId64 " hash %s\n",
               c->config->gateway.site, c->config->gateway.id, ts, seq, hash);
    }
    return 0;
}

static int patrol_checkin(struct ctl *c)
{
    bool missing = false;
    const char *location = option_value(c, "--location", &missing);
    const char *text = option_value(c, "--text", &missing);
    const char *incident = option_value(c, "--incident", &missing);
    const char *verdict = option_value(c, "--verdict", &missing);
    const char *user = option_value(c, "--user", &missing);
    if (missing)
        return usage_error("patrol checkin: an option needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    if (location == NULL || text == NULL)
        return usage_error("patrol checkin needs --location and --text");
    if (user != NULL)
        c->user = user;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "location", location);
    cJSON_AddStringToObject(args, "text", text);
    if (incident != NULL) {
        int64_t id = 0;
        if (!parse_int64(incident, 1, INT64_C(1) << 52, &id)) {
            cJSON_Delete(args);
            return usage_error("patrol checkin: --incident '%s' is not an id", incident);
        }
        cJSON_AddNumberToObject(args, "incident", (double)id);
    }
    if (verdict != NULL)
        cJSON_AddStringToObject(args, "verdict", verdict);
    cJSON *result = NULL;
    int rc = ask_daemon(c, "patrol-checkin", args, &result);
    cJSON_Delete(args);
    if (rc == 0)
        rc = check_result(c, result);
    if (rc == 0) {
        if (c->json)
            print_json(result);
        else
            printf("check-in recorded\n");
    }
    cJSON_Delete(result);
    return rc;
}

static int verb_patrol(struct ctl *c)
{
    const char *sub = positional(c, 0);
    if (sub == NULL)
        return usage_error("patrol needs log, verify, anchor or checkin");
    if (strcmp(sub, "log") == 0)
        return patrol_log(c);
    if (strcmp(sub, "verify") == 0)
        return patrol_verify(c);
    if (strcmp(sub, "anchor") == 0)
        return patrol_anchor(c);
    if (strcmp(sub, "checkin") == 0)
        return patrol_checkin(c);
    return usage_error("patrol: unknown subcommand '%s'", sub);
}

/* ------------------------------------------------------------------ */
/* handover                                                            */
/* ------------------------------------------------------------------ */

static void print_handover(const struct ctl *c, const cJSON *summary, const char *text)
{
    if (text != NULL)
        printf("%s\n", text);
    struct {
        const char *title;
        const char *key;
        struct gw_table_column cols[6];
        size_t ncols;
    } sections[] = {
        {"open incidents", "open_incidents",
         {{"id", "id"}, {"rule", "rule"}, {"severity", "severity"}, {"subject", "subject"},
          {"raised", "raised"}, {"text", "text"}}, 6},
        {"open work orders", "open_workorders",
         {{"id", "id"}, {"state", "state"}, {"category", "category"}, {"location", "location"},
          {"resolve due", "resolve_due"}, {"overdue", "overdue"}}, 6},
        {"meters offline", "meters_offline",
         {{"id", "id"}, {"status", "status"}, {"location", "location"},
          {"last good", "last_good"}}, 4},
    };
    for (size_t i = 0; i < COUNT_OF(sections); i++) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(summary, sections[i].key);
        printf("\n%s (%d):\n", sections[i].title, cJSON_GetArraySize(rows));
        if (cJSON_GetArraySize(rows) > 0)
            gw_table_print(stdout, rows, sections[i].cols, sections[i].ncols, c->csv);
    }
    const cJSON *unconfirmed = cJSON_GetObjectItemCaseSensitive(summary, "unconfirmed_incidents");
    printf("\nincidents no patrol has confirmed:");
    const cJSON *id;
    cJSON_ArrayForEach(id, unconfirmed)
    {
        printf(" #%.0f", id->valuedouble);
    }
    printf("%s\n", cJSON_GetArraySize(unconfirmed) ? "" : " none");
}

static int verb_handover(struct ctl *c)
{
    bool missing = false;
    const char *from = option_value(c, "--from", &missing);
    const char *to = option_value(c, "--to", &missing);
    const char *note = option_value(c, "--note", &missing);
    bool preview = option_flag(c, "--preview");
    if (missing)
        return usage_error("handover: an option needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    if (preview) {
        struct gw_store *store = open_store(c, true);
        if (store == NULL)
            return EXIT_RUNTIME;
        cJSON *summary = gw_handover_summary_from(store, c->config, est_now_ms());
        if (summary == NULL)
            return store_failure(store, "handover");
        gw_store_close(store);
        if (c->json)
            print_json(summary);
        else
            print_handover(c, summary, NULL);
        cJSON_Delete(summary);
        return 0;
    }
    if (from == NULL || to == NULL)
        return usage_error("handover needs --from and --to (or --preview)");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "from", from);
    cJSON_AddStringToObject(args, "to", to);
    if (note != NULL)
        cJSON_AddStringToObject(args, "note", note);
    cJSON *result = NULL;
    int rc = ask_daemon(c, "handover", args, &result);
    cJSON_Delete(args);
    if (rc == 0)
        rc = check_result(c, result);
    if (rc == 0) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(result, "text");
        if (c->json)
            print_json(result);
        else
            print_handover(c, cJSON_GetObjectItemCaseSensitive(result, "handover"),
                           cJSON_IsString(text) ? text->valuestring : NULL);
    }
    cJSON_Delete(result);
    return rc;
}

/* ------------------------------------------------------------------ */
/* report                                                              */
/* ------------------------------------------------------------------ */

static int verb_report(struct ctl *c)
{
    bool missing = false;
    const char *from = option_value(c, "--from", &missing);
    const char *to = option_value(c, "--to", &missing);
    if (missing)
        return usage_error("report: an option needs a value");
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    char today[11], first_of_month[11];
    gw_report_local_day(est_now_ms(), c->config->gateway.utc_offset_min, today);
    snprintf(first_of_month, sizeof first_of_month, "%.8s01", today);
    if (from == NULL)
        from = first_of_month;
    if (to == NULL)
        to = today;
    if (!gw_report_day_valid(from) || !gw_report_day_valid(to))
        return usage_error("report: days are YYYY-MM-DD");
    if (strcmp(from, to) > 0)
        return usage_error("report: --from is after --to");
    struct gw_store *store = open_store(c, true);
    if (store == NULL)
        return EXIT_RUNTIME;
    char err[256];
    cJSON *report = gw_report_build(store, c->config, from, to, err, sizeof err);
    gw_store_close(store);
    if (report == NULL) {
        fprintf(stderr, "estate-ctl: report: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (c->json)
        print_json(report);
    else if (c->csv)
        gw_report_print_csv(report, stdout);
    else
        gw_report_print_text(report, stdout);
    cJSON_Delete(report);
    return 0;
}

/* ------------------------------------------------------------------ */
/* unit occupancy, user                                                */
/* ------------------------------------------------------------------ */

static int verb_unit(struct ctl *c)
{
    const char *unit = positional(c, 0);
    const char *what = positional(c, 0);
    const char *value = positional(c, 0);
    int bad = leftover_arguments(c);
    if (bad)
        return bad;
    if (unit == NULL || what == NULL || strcmp(what, "occupancy") != 0 || value == NULL ||
        (strcmp(value, "vacant") != 0 && strcmp(value, "occupied") != 0))
        return usage_error("usage: unit ID occupancy vacant|occupied");
    if (gw_config_unit_index(c->config, unit) < 0)
        return usage_error("unknown unit '%s'", unit);
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "unit", unit);
    cJSON_AddStringToObject(args, "occupancy", value);
    cJSON *result = NULL;
    int rc = ask_daemon(c, "occupancy", args, &result);
    cJSON_Delete(args);
    if (rc == 0)
        rc = check_result(c, result);
    if (rc == 0) {
        if (c->json)
            print_json(result);
        else
            printf("unit %s is now %s\n", unit, value);
    }
    cJSON_Delete(result);
    return rc;
}

static int verb_user(struct ctl *c)
{
#ifdef HAVE_USERS_CTL
    return gw_users_ctl_main(c->config, c->argc, c->argv);
#else
    (void)c;
    fprintf(stderr, "estate-ctl: user management is not built in\n");
    return EXIT_RUNTIME;
#endif
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* Splits argv into global options and the verb's arguments. Returns -1 to
 * go on, else the exit code. */
static int parse_global(int argc, char **argv, struct ctl *c)
{
    c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
    if (c->argv == NULL)
        return EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool takes_value = strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
                           strcmp(a, "--set") == 0 || (c->argc == 0 && strcmp(a, "--user") == 0);
        if (takes_value && i + 1 >= argc)
            return usage_error("%s needs a value", a);
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("estate-ctl %s\n", ESTATE_VERSION);
            return 0;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            c->config_path = argv[++i];
        } else if (strcmp(a, "--set") == 0) {
            if (c->nsets == MAX_SETS)
                return usage_error("too many --set options");
            c->sets[c->nsets++] = argv[++i];
        } else if (strncmp(a, "--set=", 6) == 0 && c->nsets < MAX_SETS) {
            c->sets[c->nsets++] = a + 6;
        } else if (strcmp(a, "--json") == 0) {
            c->json = true;
        } else if (strcmp(a, "--csv") == 0) {
            c->csv = true;
        } else if (c->argc == 0 && strcmp(a, "--user") == 0) {
            c->user = argv[++i];
        } else if (c->argc == 0 && a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            c->argv[c->argc++] = argv[i];
        }
    }
    return -1;
}

static int load_config(struct ctl *c)
{
    if (c->config_path == NULL)
        c->config_path = "/etc/estate-gw/estate-gw.conf";
    struct gw_config_errors errors = {0};
    if (gw_config_load(c->config_path, c->sets, c->nsets, &c->config, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return EXIT_USAGE;
    }
    return 0;
}

static int run_verb(struct ctl *c)
{
    static const struct {
        const char *name;
        int (*fn)(struct ctl *);
    } verbs[] = {
        {"inventory", verb_inventory}, {"readings", verb_readings},   {"incidents", verb_incidents},
        {"workorders", verb_workorders}, {"workorder", verb_workorder}, {"patrol", verb_patrol},
        {"handover", verb_handover},   {"report", verb_report},       {"unit", verb_unit},
        {"user", verb_user},
    };
    for (size_t i = 0; i < COUNT_OF(verbs); i++)
        if (strcmp(c->argv[0], verbs[i].name) == 0)
            return verbs[i].fn(c);
    return usage_error("unknown verb '%s'", c->argv[0]);
}

int main(int argc, char **argv)
{
    struct ctl c = {0};
    int rc = parse_global(argc, argv, &c);
    if (rc < 0 && c.argc == 0)
        rc = usage_error("no verb given");
    if (rc < 0)
        rc = load_config(&c);
    if (rc == 0 && c.config != NULL) {
        c.used = calloc((size_t)c.argc + 1, sizeof *c.used);
        rc = c.used ? run_verb(&c) : EXIT_RUNTIME;
    }
    gw_config_free(c.config);
    free(c.used);
    free(c.argv);
    return rc;
}
