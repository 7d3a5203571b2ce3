/* report.c - consumption reports from the store's midnight snapshots
 * (per meter, unit, building and category), master-vs-sub-meter balance per
 * day, month-end readings, meters offline or replaced in the period; and
 * the table/CSV printer estate-ctl uses. See report.h for the contract. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "est_alloc.h"
#include "est_tz.h"

#define END_SEARCH_DAYS 7   /* how far past the period to look for the closing snapshot */
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Days                                                                */
/* ------------------------------------------------------------------ */

bool gw_report_day_valid(const char *t)
{
    if (t == NULL || strlen(t) != 10 || t[4] != '-' || t[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (t[i] < '0' || t[i] > '9'))
            return false;
    int month = (t[5] - '0') * 10 + (t[6] - '0');
    int day = (t[8] - '0') * 10 + (t[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* The calendar day days after a valid day (calendar arithmetic in UTC). */
static void day_add(const char *day, int days, char out[11])
{
    struct tm tm = {0};
    tm.tm_year = atoi(day) - 1900;
    tm.tm_mon = atoi(day + 5) - 1;
    tm.tm_mday = atoi(day + 8) + days;
    time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* ------------------------------------------------------------------ */
/* Snapshots in memory                                                 */
/* ------------------------------------------------------------------ */

struct snap {
    char *meter;
    char day[11];
    double import_kwh, volume_m3;
};

struct snaps {
    struct snap *items;
    size_t count, cap;
    bool nomem;
};

static bool collect_snapshot(void *ctx, const struct gw_store_snapshot *s)
{
    struct snaps *list = ctx;
    if (EST_VEC_RESERVE(list->items, list->cap, list->count + 1) != EST_OK) {
        list->nomem = true;
        return false;
    }
    struct snap *out = &list->items[list->count];
    out->meter = strdup(s->meter_id ? s->meter_id : "");
    if (out->meter == NULL) {
        list->nomem = true;
        return false;
    }
    snprintf(out->day, sizeof out->day, "%.10s", s->day ? s->day : "");
    out->import_kwh = s->energy_import_kwh;
    out->volume_m3 = s->volume_m3;
    list->count++;
    return true;
}

/* Latest readings, kept as pseudo-snapshots for a period that ends today. */
struct latest_ctx {
    struct snaps *list;
    const char *timezone;
};

static bool collect_latest(void *ctx, const struct gw_store_reading_row *r)
{
    struct latest_ctx *x = ctx;
    if (r->quality != GW_STORE_GOOD || r->meter_id == NULL)
        return true;
    char day[11];
    est_tz_local_day(x->timezone, r->ts_ms, day);
    struct gw_store_snapshot s = {.meter_id = r->meter_id, .day = day, .ts_ms = r->ts_ms,
                                  .energy_import_kwh = r->values.energy_import_kwh,
                                  .energy_export_kwh = r->values.energy_export_kwh,
                                  .volume_m3 = r->values.volume_m3};
    return collect_snapshot(x->list, &s);
}

static void snaps_free(struct snaps *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].meter);
    free(list->items);
}

static double snap_value(const struct snap *s, bool water)
{
    return water ? s->volume_m3 : s->import_kwh;
}

/* The meter's snapshot of exactly day, or NULL. */
static const struct snap *snap_on(const struct snaps *list, const char *meter, const char *day)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->items[i].meter, meter) == 0 && strcmp(list->items[i].day, day) == 0)
            return &list->items[i];
    return NULL;
}

/* The first (or, last=true, the last) of the meter's snapshots with
 * first_day <= day <= last_day that has a value. */
static const struct snap *snap_find(const struct snaps *list, const char *meter, const char *first_day,
                                    const char *last_day, bool water, bool last)
{
    const struct snap *found = NULL;
    for (size_t i = 0; i < list->count; i++) {
        const struct snap *s = &list->items[i];
        if (strcmp(s->meter, meter) != 0 || strcmp(s->day, first_day) < 0 ||
            strcmp(s->day, last_day) > 0 || isnan(snap_value(s, water)))
            continue;
        if (found == NULL || last)
            found = s;
        if (!last)
            break;
    }
    return found;
}

/* ------------------------------------------------------------------ */
/* Per-meter consumption                                               */
/* ------------------------------------------------------------------ */

static double json_value(const char *json, const char *key)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double out = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(o);
    return out;
}

/* Replacements of one meter in the period: the old device's last and the
 * new device's first counter value (sums over several replacements). */
struct replacement_sum {
    const char *key;
    int count;
    double gap; /* sum of (new_first - old_last): subtracted from end - start */
    bool unknown;
};

static bool add_replacement(void *ctx, const struct gw_store_replacement *r)
{
    struct replacement_sum *s = ctx;
    double old_last = json_value(r->old_last_reading_json, s->key);
    double new_first = json_value(r->new_first_reading_json, s->key);
    s->count++;
    if (isnan(old_last) || isnan(new_first))
        s->unknown = true;
    else
        s->gap += new_first - old_last;
    return true;
}

struct period {
    const char *from_day, *to_day;
    char after_day[11];     /* to_day + 1 */
    char search_end[11];    /* after_day + END_SEARCH_DAYS */
    int64_t from_ms, end_ms;
};

/* One meter's row; *consumption NAN when unknown. */
static cJSON *meter_consumption(struct gw_store *store, const struct gw_config *config,
                                const struct snaps *snaps, const struct snaps *latest,
                                const struct period *p,
                                const struct gw_meter_config *m, double *consumption)
{
    bool water = m->kind == DRV_KIND_WATER;
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return NULL;
    cJSON_AddStringToObject(row, "meter", m->id);
    cJSON_AddStringToObject(row, "kind", water ? "water" : "electricity");
    cJSON_AddStringToObject(row, "category", gw_category_name(m->category));
    if (m->unit >= 0)
        cJSON_AddStringToObject(row, "unit", config->units[m->unit].id);
    const char *building = m->building ? m->building
                                       : m->unit >= 0 ? config->units[m->unit].building : NULL;
    if (building != NULL)
        cJSON_AddStringToObject(row, "building", building);
    cJSON_AddStringToObject(row, "quantity", water ? "m3" : "kWh");
    *consumption = NAN;
    const struct snap *start = snap_find(snaps, m->id, p->from_day, p->to_day, water, false);
    const struct snap *end = snap_find(snaps, m->id, p->after_day, p->search_end, water, false);
    bool partial = false;
    if (start != NULL && end == NULL) {
        char next[11];
        day_add(start->day, 1, next);
        end = snap_find(snaps, m->id, next, p->to_day, water, true);
        if (end == NULL) /* the period runs until now: count up to the latest reading */
            end = snap_find(latest, m->id, start->day, p->to_day, water, true);
        partial = true;
    }
    if (start == NULL || end == NULL) {
        cJSON_AddBoolToObject(row, "partial", true);
        cJSON_AddBoolToObject(row, "replaced", false);
        return row;
    }
    struct replacement_sum rep = {.key = water ? "volume_m3" : "energy_import_kwh"};
    gw_store_replacements_list(store, m->id, p->from_ms, p->end_ms, add_replacement, &rep);
    double start_v = snap_value(start, water), end_v = snap_value(end, water);
    cJSON_AddStringToObject(row, "start_day", start->day);
    cJSON_AddNumberToObject(row, "start", start_v);
    cJSON_AddStringToObject(row, "end_day", end->day);
    cJSON_AddNumberToObject(row, "end", end_v);
    double used = end_v - start_v - rep.gap;
    if (!rep.unknown && used >= 0)
        *consumption = used;
    if (!isnan(*consumption))
        cJSON_AddNumberToObject(row, "consumption", round(*consumption * 1000) / 1000);
    else
        cJSON_AddStringToObject(row, "note", rep.count ? "replaced; readings unknown"
                                                       : "counter went back");
    cJSON_AddBoolToObject(row, "partial", partial);
    cJSON_AddBoolToObject(row, "replaced", rep.count > 0);
    return row;
}

/* ------------------------------------------------------------------ */
/* Aggregation                                                         */
/* ------------------------------------------------------------------ */

/* Adds value to row[key_name == name].<kwh|m3> in array, creating the row. */
static void add_to_group(cJSON *array, const char *key_name, const char *name, bool water,
                         double value)
{
    if (name == NULL || isnan(value))
        return;
    cJSON *row = NULL, *it;
    cJSON_ArrayForEach(it, array)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, key_name);
        if (cJSON_IsString(k) && strcmp(k->valuestring, name) == 0) {
            row = it;
            break;
        }
    }
    if (row == NULL) {
        row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, key_name, name);
        cJSON_AddNumberToObject(row, "electricity_kwh", 0);
        cJSON_AddNumberToObject(row, "water_m3", 0);
        cJSON_AddItemToArray(array, row);
    }
    cJSON *field = cJSON_GetObjectItemCaseSensitive(row, water ? "water_m3" : "electricity_kwh");
    cJSON_SetNumberValue(field, round((field->valuedouble + value) * 1000) / 1000);
}

static bool building_has_meter(const struct gw_config *config, const char *building, bool water)
{
    for (size_t i = 0; i < config->nmeters; i++) {
        const struct gw_meter_config *m = &config->meters[i];
        if (m->category == GW_CAT_BUILDING && (m->kind == DRV_KIND_WATER) == water &&
            m->building != NULL && strcmp(m->building, building) == 0)
            return true;
    }
    return false;
}

/* Unit, building and category totals from the meter rows. A building's
 * total is its building meter when it has one for the kind, else the sum
 * of its unit meters. */
static void aggregate(const struct gw_config *config, const double *used, cJSON *units,
                      cJSON *buildings, cJSON *categories)
{
    for (size_t i = 0; i < config->nmeters; i++) {
        const struct gw_meter_config *m = &config->meters[i];
        bool water = m->kind == DRV_KIND_WATER;
        add_to_group(categories, "category", gw_category_name(m->category), water, used[i]);
        const char *unit = m->unit >= 0 ? config->units[m->unit].id : NULL;
        const char *building = m->building ? m->building
                                           : m->unit >= 0 ? config->units[m->unit].building : NULL;
        if (unit != NULL && m->category == GW_CAT_UNIT)
            add_to_group(units, "unit", unit, water, used[i]);
        if (building == NULL)
            continue;
        bool has_meter = building_has_meter(config, building, water);
        if ((has_meter && m->category == GW_CAT_BUILDING) ||
            (!has_meter && m->category == GW_CAT_UNIT))
            add_to_group(buildings, "building", building, water, used[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Balance per day                                                     */
/* ------------------------------------------------------------------ */

static double day_delta(const struct snaps *snaps, const char *meter, const char *day,
                        const char *next, bool water)
{
    const struct snap *a = snap_on(snaps, meter, day), *b = snap_on(snaps, meter, next);
    if (a == NULL || b == NULL)
        return NAN;
    double d = snap_value(b, water) - snap_value(a, water);
    return d >= 0 ? d : NAN;
}

static void balance_for_parent(const struct gw_config *config, const struct snaps *snaps,
                               const struct period *p, size_t parent, cJSON *out)
{
    const struct gw_meter_config *pm = &config->meters[parent];
    bool water = pm->kind == DRV_KIND_WATER;
    char day[11], next[11];
    snprintf(day, sizeof day, "%s", p->from_day);
    while (strcmp(day, p->to_day) <= 0) {
        day_add(day, 1, next);
        if (snap_on(snaps, pm->id, day) == NULL) { /* nothing recorded that day */
            snprintf(day, sizeof day, "%s", next);
            continue;
        }
        double parent_used = day_delta(snaps, pm->id, day, next, water);
        double children = 0;
        size_t nchildren = 0;
        for (size_t i = 0; i < config->nmeters; i++) {
            if (config->meters[i].parent != (int)parent)
                continue;
            children += day_delta(snaps, config->meters[i].id, day, next, water);
            nchildren++;
        }
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "day", day);
        cJSON_AddStringToObject(row, "meter", pm->id);
        cJSON_AddStringToObject(row, "quantity", water ? "m3" : "kWh");
        cJSON_AddNumberToObject(row, "children_count", (double)nchildren);
        if (!isnan(parent_used) && !isnan(children)) {
            double loss = parent_used - children;
            cJSON_AddNumberToObject(row, "parent", round(parent_used * 1000) / 1000);
            cJSON_AddNumberToObject(row, "children", round(children * 1000) / 1000);
            cJSON_AddNumberToObject(row, "loss", round(loss * 1000) / 1000);
            if (parent_used > 0)
                cJSON_AddNumberToObject(row, "loss_pct", round(loss / parent_used * 1000) / 10);
        } else {
            cJSON_AddStringToObject(row, "note", "a snapshot is missing (or the day is not over)");
        }
        cJSON_AddItemToArray(out, row);
        snprintf(day, sizeof day, "%s", next);
    }
}

static cJSON *balance(const struct gw_config *config, const struct snaps *snaps,
                      const struct period *p)
{
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; out != NULL && i < config->nmeters; i++) {
        bool is_parent = false;
        for (size_t j = 0; j < config->nmeters && !is_parent; j++)
            is_parent = config->meters[j].parent == (int)i;
        if (is_parent)
            balance_for_parent(config, snaps, p, i, out);
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* Month end, offline, replaced                                        */
/* ------------------------------------------------------------------ */

static void add_month_end(cJSON *out, const char *meter, const struct snap *last, bool water)
{
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return;
    char month[8];
    snprintf(month, sizeof month, "%.7s", last->day);
    cJSON_AddStringToObject(row, "month", month);
    cJSON_AddStringToObject(row, "meter", meter);
    cJSON_AddStringToObject(row, "day", last->day);
    if (!isnan(snap_value(last, water)))
        cJSON_AddNumberToObject(row, "value", snap_value(last, water));
    cJSON_AddStringToObject(row, "quantity", water ? "m3" : "kWh");
    cJSON_AddItemToArray(out, row);
}

/* The last snapshot of each month in the period, per meter (the store
 * lists snapshots by meter, then day). */
static cJSON *month_end(const struct gw_config *config, const struct snaps *snaps,
                        const struct period *p)
{
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; out != NULL && i < config->nmeters; i++) {
        const struct gw_meter_config *m = &config->meters[i];
        bool water = m->kind == DRV_KIND_WATER;
        const struct snap *last = NULL;
        for (size_t k = 0; k < snaps->count; k++) {
            const struct snap *s = &snaps->items[k];
            if (strcmp(s->meter, m->id) != 0 || strcmp(s->day, p->from_day) < 0 ||
                strcmp(s->day, p->to_day) > 0)
                continue;
            if (last != NULL && strncmp(s->day, last->day, 7) != 0)
                add_month_end(out, m->id, last, water);
            last = s;
        }
        if (last != NULL)
            add_month_end(out, m->id, last, water);
    }
    return out;
}

static bool add_offline(void *ctx, const struct gw_store_incident *in)
{
    if (in->rule == NULL || strcmp(in->rule, "meter_offline") != 0)
        return true;
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    cJSON_AddStringToObject(row, "meter", in->subject ? in->subject : "");
    char ts[EST_TS_LEN];
    est_format_ts(in->since_ms, ts);
    cJSON_AddStringToObject(row, "since", ts);
    if (in->cleared_ms > 0) {
        est_format_ts(in->cleared_ms, ts);
        cJSON_AddStringToObject(row, "until", ts);
    }
    cJSON_AddItemToArray(ctx, row);
    return true;
}

static bool add_replaced(void *ctx, const struct gw_store_replacement *r)
{
    cJSON *row = cJSON_CreateObject();
    if (row == NULL)
        return false;
    cJSON_AddStringToObject(row, "meter", r->meter_id ? r->meter_id : "");
    char ts[EST_TS_LEN];
    est_format_ts(r->ts_ms, ts);
    cJSON_AddStringToObject(row, "ts", ts);
    cJSON_AddStringToObject(row, "old_serial", r->old_serial ? r->old_serial : "");
    cJSON_AddStringToObject(row, "new_serial", r->new_serial ? r->new_serial : "");
    cJSON_AddItemToArray(ctx, row);
    return true;
}

/* ------------------------------------------------------------------ */
/* Build                                                               */
/* ------------------------------------------------------------------ */

cJSON *gw_report_build(struct gw_store *store, const struct gw_config *config, const char *from_day,
                       const char *to_day, char *errbuf, size_t errlen)
{
    if (!gw_report_day_valid(from_day) || !gw_report_day_valid(to_day) ||
        strcmp(from_day, to_day) > 0) {
        snprintf(errbuf, errlen, "the period must be two days YYYY-MM-DD, from <= to");
        return NULL;
    }
    const char *zone = config->gateway.timezone;
    struct period p = {.from_day = from_day, .to_day = to_day};
    day_add(to_day, 1, p.after_day);
    day_add(p.after_day, END_SEARCH_DAYS, p.search_end);
    p.from_ms = est_tz_day_start_ms(zone, from_day, 0);
    p.end_ms = est_tz_day_start_ms(zone, p.after_day, 0);

    struct snaps snaps = {0}, latest = {0};
    struct latest_ctx latest_ctx = {&latest, zone};
    est_err err = gw_store_snapshots_list(store, NULL, from_day, p.search_end, collect_snapshot, &snaps);
    if (err == EST_OK)
        err = gw_store_readings_latest(store, collect_latest, &latest_ctx);
    double *used = calloc(config->nmeters + 1, sizeof *used);
    cJSON *report = cJSON_CreateObject();
    if (err != EST_OK || snaps.nomem || latest.nomem || used == NULL || report == NULL) {
        snprintf(errbuf, errlen, "cannot read snapshots: %s",
                 err != EST_OK ? gw_store_errmsg(store) : "out of memory");
        snaps_free(&snaps);
        snaps_free(&latest);
        free(used);
        cJSON_Delete(report);
        return NULL;
    }
    cJSON_AddStringToObject(report, "from", from_day);
    cJSON_AddStringToObject(report, "to", to_day);
    cJSON *meters = cJSON_AddArrayToObject(report, "meters");
    for (size_t i = 0; i < config->nmeters; i++)
        cJSON_AddItemToArray(meters, meter_consumption(store, config, &snaps, &latest, &p, &config->meters[i],
                                                       &used[i]));
    aggregate(config, used, cJSON_AddArrayToObject(report, "units"),
              cJSON_AddArrayToObject(report, "buildings"),
              cJSON_AddArrayToObject(report, "categories"));
    cJSON_AddItemToObject(report, "balance", balance(config, &snaps, &p));
    cJSON_AddItemToObject(report, "month_end", month_end(config, &snaps, &p));
    cJSON *offline = cJSON_AddArrayToObject(report, "offline");
    cJSON *replaced = cJSON_AddArrayToObject(report, "replaced");
    if (gw_store_incidents_between(store, p.from_ms, p.end_ms, add_offline, offline) != EST_OK ||
        gw_store_replacements_list(store, NULL, p.from_ms, p.end_ms, add_replaced, replaced) !=
            EST_OK) {
        snprintf(errbuf, errlen, "cannot read incidents: %s", gw_store_errmsg(store));
        cJSON_Delete(report);
        report = NULL;
    }
    snaps_free(&snaps);
    snaps_free(&latest);
    free(used);
    return report;
}

/* ------------------------------------------------------------------ */
/* Printing                                                            */
/* ------------------------------------------------------------------ */

static const struct {
    const char *title;
    const char *key;
    struct gw_table_column cols[8];
    size_t ncols;
} report_sections[] = {
    {"Consumption per meter", "meters",
     {{"meter", "meter"}, {"category", "category"}, {"unit", "unit"}, {"start", "start"},
      {"end", "end"}, {"used", "consumption"}, {"", "quantity"}, {"partial", "partial"}}, 8},
    {"Per unit", "units", {{"unit", "unit"}, {"kWh", "electricity_kwh"}, {"m3", "water_m3"}}, 3},
    {"Per building", "buildings",
     {{"building", "building"}, {"kWh", "electricity_kwh"}, {"m3", "water_m3"}}, 3},
    {"Per category", "categories",
     {{"category", "category"}, {"kWh", "electricity_kwh"}, {"m3", "water_m3"}}, 3},
    {"Balance per day (parent vs children)", "balance",
     {{"day", "day"}, {"meter", "meter"}, {"parent", "parent"}, {"children", "children"},
      {"loss", "loss"}, {"loss %", "loss_pct"}, {"", "quantity"}, {"note", "note"}}, 8},
    {"Month end", "month_end",
     {{"month", "month"}, {"meter", "meter"}, {"day", "day"}, {"value", "value"},
      {"", "quantity"}}, 5},
    {"Meters offline in the period", "offline",
     {{"meter", "meter"}, {"since", "since"}, {"until", "until"}}, 3},
    {"Meters replaced in the period", "replaced",
     {{"meter", "meter"}, {"ts", "ts"}, {"old serial", "old_serial"}, {"new serial", "new_serial"}}, 4},
};

void gw_report_print_text(const cJSON *report, FILE *out)
{
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(report, "from");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(report, "to");
    fprintf(out, "Consumption report %s .. %s\n", cJSON_IsString(from) ? from->valuestring : "",
            cJSON_IsString(to) ? to->valuestring : "");
    for (size_t i = 0; i < COUNT_OF(report_sections); i++) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(report, report_sections[i].key);
        fprintf(out, "\n%s:\n", report_sections[i].title);
        if (cJSON_GetArraySize(rows) == 0)
            fprintf(out, "  (none)\n");
        else
            gw_table_print(out, rows, report_sections[i].cols, report_sections[i].ncols, false);
    }
}

void gw_report_print_csv(const cJSON *report, FILE *out)
{
    for (size_t i = 0; i < COUNT_OF(report_sections); i++) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(report, report_sections[i].key);
        struct gw_table_column cols[9] = {{"section", "__section"}};
        size_t n = 1;
        for (size_t k = 0; k < report_sections[i].ncols; k++, n++) {
            cols[n] = report_sections[i].cols[k];
            if (cols[n].header[0] == '\0')
                cols[n].header = cols[n].key;
        }
        cJSON *copy = cJSON_Duplicate(rows, true);
        cJSON *row;
        cJSON_ArrayForEach(row, copy)
        {
            cJSON_AddStringToObject(row, "__section", report_sections[i].key);
        }
        if (i > 0)
            fputc('\n', out);
        gw_table_print(out, copy, cols, n, true);
        cJSON_Delete(copy);
    }
}

/* Display width of UTF-8 text: East Asian characters take two columns. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        w += *p >= 0xE0 ? 2 : 1;
    }
    return w;
}

/* A cell's text, malloc'd: objects and arrays as compact JSON. */
static char *cell_text(const cJSON *row, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    char buf[64];
    if (cJSON_IsString(v))
        return strdup(v->valuestring);
    if (cJSON_IsBool(v))
        return strdup(cJSON_IsTrue(v) ? "yes" : "no");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, sizeof buf, "%.0f", d);
        else
            snprintf(buf, sizeof buf, "%.3f", d);
        return strdup(buf);
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v))
        return cJSON_PrintUnformatted(v);
    return strdup("");
}

static void print_csv_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Pads to width; text cells keep their line (newlines shown as spaces). */
static void print_padded(FILE *out, const char *s, size_t width, bool last)
{
    for (const char *p = s; *p; p++)
        fputc(*p == '\n' || *p == '\r' ? ' ' : *p, out);
    if (last)
        return;
    for (size_t w = display_width(s); w < width + 2; w++)
        fputc(' ', out);
}

void gw_table_print(FILE *out, const cJSON *rows, const struct gw_table_column *columns,
                    size_t ncolumns, bool csv)
{
    size_t nrows = (size_t)cJSON_GetArraySize(rows);
    size_t *width = calloc(ncolumns + 1, sizeof *width);
    char **cells = calloc(nrows * ncolumns + 1, sizeof *cells);
    if (width == NULL || cells == NULL) {
        free(width);
        free(cells);
        return;
    }
    for (size_t c = 0; c < ncolumns; c++)
        width[c] = display_width(columns[c].header);
    size_t r = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        for (size_t c = 0; c < ncolumns; c++) {
            char *text = cell_text(row, columns[c].key);
            cells[r * ncolumns + c] = text;
            if (text != NULL && display_width(text) > width[c])
                width[c] = display_width(text);
        }
        r++;
    }
    for (size_t i = 0; i <= nrows; i++) {
        for (size_t c = 0; c < ncolumns; c++) {
            const char *text = i == 0 ? columns[c].header : cells[(i - 1) * ncolumns + c];
            if (text == NULL)
                text = "";
            if (csv) {
                if (c > 0)
                    fputc(',', out);
                print_csv_field(out, text);
            } else {
                print_padded(out, text, width[c], c + 1 == ncolumns);
            }
        }
        fputs(csv ? "\r\n" : "\n", out);
    }
    for (size_t i = 0; i < nrows * ncolumns; i++)
        free(cells[i]);
    free(cells);
    free(width);
}
