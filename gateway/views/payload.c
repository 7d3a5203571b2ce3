/* payload.c - JSON payloads for readings, panel states and status.
 *
 * A reading's "error" names the first failure of its poll, or, when the
 * meter answered with NaN or Inf, the quantities concerned ("bad value:
 * power_w"); such a reading is "stale".
 *
 * A panel's state: "state" is "alarm", "fault", "supervisory", "pre_alarm"
 * or "normal" from the zones read (the first that applies), and "unknown" when the panel could not be read (quality
 * "error"): then panel_alarm and panel_fault are null and the zones are not
 * listed, because an unreachable panel tells nothing, least of all "no
 * alarm". Each zone shows alarm, fault, disabled, supervisory and
 * pre_alarm (a pre-alarm is shown here, never raised). */
#include "views.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


const char *gw_quality_name(enum gw_quality q)
{
    switch (q) {
    case GW_QUALITY_GOOD: return "good";
    case GW_QUALITY_STALE: return "stale";
    default: return "error";
    }
}

/* Writes |v| with k decimals from its scaled integer m = |v| * 10^k. */
static size_t write_scaled(uint64_t m, int k, bool negative, char *out)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m > 0);
    while (n <= k)
        digits[n++] = '0'; /* 0.0001: the integer part's zero and leading zeros */
    size_t len = 0;
    if (negative)
        out[len++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[len++] = digits[i];
        if (i == k && k > 0)
            out[len++] = '.';
    }
    out[len] = '\0';
    return len;
}

/* Prints v as cJSON does ("%1.15g", checked by reading it back) for the
 * numbers meters deliver, without printf's cost: a value of at most 15
 * significant digits, 1e-4 <= |v| < 1e15, is the decimal with the fewest
 * decimals that reads back as v (the division below is correctly rounded,
 * as strtod is). Returns the length, or 0 where cJSON must print it. */
static size_t format_meter_number(double v, char out[32])
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
                                   1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double a = fabs(v);
    if (v == 0.0 && !signbit(v)) {
        memcpy(out, "0", 2);
        return 1;
    }
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k < (int)(sizeof pow10 / sizeof pow10[0]); k++) {
        double m = floor(a * pow10[k] + 0.5);
        if (m >= 1e15)
            return 0; /* more than 15 significant digits */
        if (m / pow10[k] == a)
            return write_scaled((uint64_t)m, k, v < 0, out);
    }
    return 0;
}

/* The values object; plain_numbers prints meter numbers with
 * format_meter_number (the same text as cJSON's, as raw members). */
static cJSON *values_object(const struct drv_reading *reading, bool plain_numbers)
{
    cJSON *values = cJSON_CreateObject();
    if (values == NULL)
        return NULL;
    for (int q = 0; q < DRV_Q__COUNT; q++) {
        if (!(reading->present & (UINT64_C(1) << q)))
            continue;
        double v = reading->value[q];
        const char *name = drv_quantity_name((enum drv_quantity)q);
        char number[32];
        if (q == DRV_Q_VALVE)
            cJSON_AddStringToObject(values, "valve", drv_valve_state_name((enum drv_valve_state)(int)v));
        else if (!isfinite(v))
            continue;
        else if (plain_numbers && format_meter_number(v, number) > 0)
            cJSON_AddRawToObject(values, name, number);
        else
            cJSON_AddNumberToObject(values, name, v);
    }
    return values;
}

cJSON *gw_payload_values(const struct drv_reading *reading)
{
    return values_object(reading, false);
}

/* "bad value: power_w, voltage_v" for the quantities read as NaN/Inf. */
static void add_bad_values(cJSON *object, uint64_t bad)
{
    char text[256] = "bad value: ";
    size_t used = strlen(text);
    bool first = true;
    for (int q = 0; q < DRV_Q__COUNT; q++) {
        if (!(bad & (UINT64_C(1) << q)))
            continue;
        int n = snprintf(text + used, sizeof text - used, "%s%s", first ? "" : ", ",
                         drv_quantity_name((enum drv_quantity)q));
        if (n < 0 || (size_t)n >= sizeof text - used)
            break;
        used += (size_t)n;
        first = false;
    }
    cJSON_AddStringToObject(object, "error", text);
}

static void add_error(cJSON *object, const struct gw_sample *sample)
{
    if (sample->error == EST_OK && sample->reading.bad != 0) {
        add_bad_values(object, sample->reading.bad);
        return;
    }
    if (sample->error == EST_OK)
        return;
    if (sample->error == EST_ERR_EXCEPTION) {
        char text[48];
        snprintf(text, sizeof text, "Modbus exception 0x%02X", sample->exception);
        cJSON_AddStringToObject(object, "error", text);
    } else {
        cJSON_AddStringToObject(object, "error", est_strerror(sample->error));
    }
}

/* The reading object without its values (they are added by the caller). */
static cJSON *reading_object(const struct gw_config *config, const struct gw_sample *sample)
{
    const struct gw_meter_config *m = &config->meters[sample->index];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "meter", m->id);
    cJSON_AddStringToObject(o, "kind", m->kind == DRV_KIND_WATER ? "water" : "electricity");
    cJSON_AddStringToObject(o, "category", gw_category_name(m->category));
    if (m->unit >= 0)
        cJSON_AddStringToObject(o, "unit", config->units[m->unit].id);
    gw_json_add_ts(o, "ts", sample->ts_ms);
    return o;
}

static void finish_reading_object(cJSON *o, const struct gw_sample *sample)
{
    cJSON_AddStringToObject(o, "quality", gw_quality_name(sample->quality));
    add_error(o, sample);
}

/* Prints into buf; the length, or 0 when it does not fit (or o is NULL). */
static size_t print_into(cJSON *o, char *buf, size_t cap)
{
    if (o == NULL || buf == NULL || cap == 0 || cap > INT_MAX)
        return 0;
    if (!cJSON_PrintPreallocated(o, buf, (int)cap, false))
        return 0;
    return strlen(buf);
}

/* The hot path (one reading per poll of every meter): the values are
 * printed once, for the store and for the payload, which embeds them as
 * raw JSON; both print into the caller's buffers. cJSON's number printing
 * (printf, then sscanf to check) was a quarter of the gateway's CPU per
 * reading, so meter numbers are printed by format_meter_number. */
size_t gw_payload_values_json(const struct drv_reading *reading, char *buf, size_t cap)
{
    cJSON *values = values_object(reading, true);
    size_t len = print_into(values, buf, cap);
    cJSON_Delete(values);
    return len;
}

size_t gw_payload_reading_into(const struct gw_config *config, const struct gw_sample *sample,
                               const char *values_json, size_t values_len, char *buf, size_t cap)
{
    if (values_json == NULL || values_json[values_len] != '\0')
        return 0;
    cJSON *o = reading_object(config, sample);
    if (o != NULL && cJSON_AddRawToObject(o, "values", values_json) == NULL) {
        cJSON_Delete(o);
        return 0;
    }
    if (o != NULL)
        finish_reading_object(o, sample);
    size_t len = print_into(o, buf, cap);
    cJSON_Delete(o);
    return len;
}

char *gw_payload_reading(const struct gw_config *config, const struct gw_sample *sample)
{
    cJSON *o = reading_object(config, sample);
    if (o == NULL)
        return NULL;
    cJSON_AddItemToObject(o, "values", gw_payload_values(&sample->reading));
    finish_reading_object(o, sample);
    return gw_json_finish(o);
}

char *gw_payload_panel_state(const struct gw_config *config, const struct gw_sample *sample)
{
    const struct gw_panel_config *p = &config->panels[sample->index];
    const struct drv_reading *r = &sample->reading;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "panel", p->id);
    gw_json_add_ts(o, "ts", sample->ts_ms);
    cJSON_AddStringToObject(o, "quality", gw_quality_name(sample->quality));
    add_error(o, sample);
    bool known = sample->quality != GW_QUALITY_ERROR &&
                 (r->present & (UINT64_C(1) << DRV_Q_PANEL_ALARM)) &&
                 (r->present & (UINT64_C(1) << DRV_Q_PANEL_FAULT));
    if (!known) {
        cJSON_AddStringToObject(o, "state", "unknown");
        cJSON_AddNullToObject(o, "panel_alarm");
        cJSON_AddNullToObject(o, "panel_fault");
        return gw_json_finish(o);
    }
    bool alarm = r->value[DRV_Q_PANEL_ALARM] != 0, fault = r->value[DRV_Q_PANEL_FAULT] != 0;
    bool supervisory = false, pre_alarm = false;
    for (uint16_t z = 0; z < r->nzones && z < p->nzones; z++) {
        supervisory |= (r->zones[z] & DRV_ZONE_SUPERVISORY) != 0;
        pre_alarm |= (r->zones[z] & DRV_ZONE_PREALARM) != 0;
    }
    cJSON_AddStringToObject(o, "state", alarm         ? "alarm"
                                        : fault       ? "fault"
                                        : supervisory ? "supervisory"
                                        : pre_alarm   ? "pre_alarm"
                                                      : "normal");
    cJSON_AddBoolToObject(o, "panel_alarm", alarm);
    cJSON_AddBoolToObject(o, "panel_fault", fault);
    cJSON *zones = cJSON_AddArrayToObject(o, "zones");
    for (uint16_t z = 0; z < r->nzones && z < p->nzones; z++) {
        cJSON *zone = cJSON_CreateObject();
        uint8_t bits = r->zones[z];
        cJSON_AddNumberToObject(zone, "zone", z + 1);
        if (p->zones != NULL && p->zones[z].name != NULL)
            cJSON_AddStringToObject(zone, "name", p->zones[z].name);
        if (p->zones != NULL && p->zones[z].location != NULL)
            cJSON_AddStringToObject(zone, "location", p->zones[z].location);
        cJSON_AddBoolToObject(zone, "zone_alarm", (bits & DRV_ZONE_ALARM) != 0);
        cJSON_AddBoolToObject(zone, "zone_fault", (bits & DRV_ZONE_FAULT) != 0);
        cJSON_AddBoolToObject(zone, "zone_disabled", (bits & DRV_ZONE_DISABLED) != 0);
        cJSON_AddBoolToObject(zone, "supervisory", (bits & DRV_ZONE_SUPERVISORY) != 0);
        cJSON_AddBoolToObject(zone, "pre_alarm", (bits & DRV_ZONE_PREALARM) != 0);
        if (bits & DRV_ZONE_UNKNOWN)
            cJSON_AddBoolToObject(zone, "unknown", true);
        cJSON_AddItemToArray(zones, zone);
    }
    return gw_json_finish(o);
}

char *gw_payload_status_health(bool online, int64_t ts_ms, const char *health)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "state", online ? "online" : "offline");
    cJSON_AddStringToObject(o, "version", ESTATE_VERSION);
    gw_json_add_ts(o, "ts", ts_ms);
    if (health != NULL)
        cJSON_AddStringToObject(o, "health", health);
    return gw_json_finish(o);
}

char *gw_payload_status(bool online, int64_t ts_ms)
{
    return gw_payload_status_health(online, ts_ms, NULL);
}
