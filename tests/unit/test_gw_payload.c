/* test_gw_payload.c - unit tests of gateway/payload.c's buffer-printing
 * reading path (gw_payload_values_json, gw_payload_reading_into, with the
 * values embedded raw): its output must be byte for byte what a plain cJSON
 * tree gives (cJSON_PrintUnformatted of gw_payload_values, and a reading
 * object built member by member), for random float32-derived, scaled-integer, integer, huge,
 * tiny and negative numbers, the valve name, non-finite values (left out),
 * strings needing escapes, every quality and error form, and buffers too
 * small (0, never a truncated text). And the numbers as the decoder
 * delivers them print as the meter's decimals ("voltage_v":226.1, 12.34 for
 * raw 1234 x 0.01), for single values, whole SDM120 and Xintai readings
 * decoded from their registers, and random float32 registers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views.h"

/* ---- reference: the cJSON form ---- */

static char *reference_values(const struct drv_reading *r)
{
    return gw_json_finish(gw_payload_values(r));
}

static char *reference_reading(const struct gw_config *config, const struct gw_sample *s)
{
    const struct gw_meter_config *m = &config->meters[s->index];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "meter", m->id);
    cJSON_AddStringToObject(o, "kind", m->kind == DRV_KIND_WATER ? "water" : "electricity");
    cJSON_AddStringToObject(o, "category", gw_category_name(m->category));
    if (m->unit >= 0)
        cJSON_AddStringToObject(o, "unit", config->units[m->unit].id);
    gw_json_add_ts(o, "ts", s->ts_ms);
    cJSON_AddItemToObject(o, "values", gw_payload_values(&s->reading));
    cJSON_AddStringToObject(o, "quality", gw_quality_name(s->quality));
    if (s->error == EST_ERR_EXCEPTION) {
        char text[48];
        snprintf(text, sizeof text, "Modbus exception 0x%02X", s->exception);
        cJSON_AddStringToObject(o, "error", text);
    } else if (s->error != EST_OK) {
        cJSON_AddStringToObject(o, "error", est_strerror(s->error));
    }
    return gw_json_finish(o);
}

/* ---- random values of the kinds decoders produce ---- */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double random_value(void)
{
    uint64_t r = next_u64();
    switch (r % 9) {
    case 0: { /* any float32 bit pattern (finite) */
        uint32_t bits = (uint32_t)(next_u64() >> 32);
        float f;
        memcpy(&f, &bits, sizeof f);
        return isfinite(f) ? (double)f : 1.5;
    }
    case 1: /* a float32 reading in a meter's range */
        return (double)(float)((double)(next_u64() % 100000000) / 1000.0);
    case 2: /* a scaled integer register (x0.01, x0.1, x0.001) */
        return (double)(next_u64() % 4294967296u) * 0.01;
    case 3: return (double)(int64_t)(next_u64() % 200000 - 100000) * 0.1;
    case 4: return (double)(next_u64() % 1000000) * 0.001;
    case 5: /* integers, also beyond int's range */
        return (double)(int64_t)(next_u64() % 20000000000u) - 1e10;
    case 6: { /* any double bit pattern (finite) */
        uint64_t bits = next_u64();
        double d;
        memcpy(&d, &bits, sizeof d);
        return isfinite(d) ? d : -2.25;
    }
    case 7: return (double)(float)(-(double)(next_u64() % 5000000) / 997.0);
    default: return (double)(next_u64() % 1000) * 1e-300;
    }
}

static void random_reading(struct drv_reading *r)
{
    memset(r, 0, sizeof *r);
    r->present = next_u64() & ((UINT64_C(1) << DRV_Q__COUNT) - 1);
    for (int q = 0; q < DRV_Q__COUNT; q++)
        r->value[q] = random_value();
    r->value[DRV_Q_VALVE] = (double)(next_u64() % 4);
}

/* ---- tests ---- */

static void test_values_match_cjson(void **state)
{
    (void)state;
    char buf[GW_PAYLOAD_VALUES_MAX];
    for (int i = 0; i < 20000; i++) {
        struct drv_reading r;
        random_reading(&r);
        size_t n = gw_payload_values_json(&r, buf, sizeof buf);
        char *ref = reference_values(&r);
        assert_non_null(ref);
        assert_int_equal(n, strlen(ref));
        assert_string_equal(buf, ref);
        free(ref);
    }
}

static void test_values_edge_numbers(void **state)
{
    (void)state;
    static const double edge[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 226.0, 226.2f, 49.98f,
                                  12.34, 1e15, 1e16, 1e17, 1e300, -1e300, 5e-324, 2147483647.0,
                                  2147483648.0, -2147483648.0, -2147483649.0, 4294967295.0 * 0.01,
                                  65536.0078125, 1.0 / 3.0, NAN, INFINITY, -INFINITY};
    char buf[GW_PAYLOAD_VALUES_MAX];
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        struct drv_reading r;
        memset(&r, 0, sizeof r);
        r.present = UINT64_C(1) << DRV_Q_POWER_W | UINT64_C(1) << DRV_Q_VOLTAGE_V;
        r.value[DRV_Q_POWER_W] = edge[i];
        r.value[DRV_Q_VOLTAGE_V] = -edge[i];
        gw_payload_values_json(&r, buf, sizeof buf);
        char *ref = reference_values(&r);
        assert_string_equal(buf, ref);
        free(ref);
    }
    /* Nothing present: an empty object, as cJSON prints it. */
    struct drv_reading none;
    memset(&none, 0, sizeof none);
    assert_int_equal(gw_payload_values_json(&none, buf, sizeof buf), 2);
    assert_string_equal(buf, "{}");
}

static void test_reading_matches_cjson(void **state)
{
    (void)state;
    struct gw_unit_config units[2] = {{.id = "3-1201"}, {.id = "u\"\\\b\f\n\r\t\x01\x1f 单元"}};
    struct gw_meter_config meters[3] = {
        {.id = "E-1-101", .kind = DRV_KIND_ELECTRICITY, .category = GW_CAT_UNIT, .unit = 0},
        {.id = "W-MASTER", .kind = DRV_KIND_WATER, .category = GW_CAT_MASTER, .unit = -1},
        {.id = "M\"x\\y", .kind = DRV_KIND_ELECTRICITY, .category = GW_CAT_PUBLIC_LIGHTING,
         .unit = 1},
    };
    struct gw_config config;
    memset(&config, 0, sizeof config);
    config.meters = meters;
    config.nmeters = 3;
    config.units = units;
    config.nunits = 2;
    static const est_err errors[] = {EST_OK, EST_ERR_EXCEPTION, EST_ERR_TIMEOUT, EST_ERR_IO};
    char values[GW_PAYLOAD_VALUES_MAX], buf[GW_PAYLOAD_READING_MAX];
    for (int i = 0; i < 3000; i++) {
        struct gw_sample s;
        memset(&s, 0, sizeof s);
        s.index = (uint32_t)(i % 3);
        s.ts_ms = (int64_t)(next_u64() % 4102444800000u);
        s.quality = (enum gw_quality)(i % 3);
        s.error = errors[(i / 3) % 4];
        s.exception = (int)(next_u64() % 256);
        random_reading(&s.reading);
        size_t vlen = gw_payload_values_json(&s.reading, values, sizeof values);
        size_t n = gw_payload_reading_into(&config, &s, values, vlen, buf, sizeof buf);
        char *ref = reference_reading(&config, &s);
        assert_non_null(ref);
        assert_int_equal(n, strlen(ref));
        assert_string_equal(buf, ref);
        /* gw_payload_reading gives the same text. */
        char *text = gw_payload_reading(&config, &s);
        assert_string_equal(text, ref);
        free(text);
        free(ref);
    }
}

static void test_small_buffers_give_zero(void **state)
{
    (void)state;
    struct drv_reading r;
    memset(&r, 0, sizeof r);
    r.present = UINT64_C(1) << DRV_Q_VOLTAGE_V;
    r.value[DRV_Q_VOLTAGE_V] = 226.2f;
    char buf[64];
    size_t full = gw_payload_values_json(&r, buf, sizeof buf);
    assert_true(full > 0);
    assert_int_equal(gw_payload_values_json(&r, buf, full), 0);   /* no room for the NUL */
    assert_int_equal(gw_payload_values_json(&r, buf, sizeof buf), full);
    assert_int_equal(gw_payload_values_json(&r, buf, 0), 0);
}

/* ---- numbers as decoded ---- */

static uint64_t bit(enum drv_quantity q) { return UINT64_C(1) << q; }

/* A float32 register (ABCD) holding f, decoded with scale. */
static double from_float32(float f, double scale)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t regs[2] = {(uint16_t)(bits >> 16), (uint16_t)bits};
    return drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, scale);
}

static double from_u32(uint32_t raw, double scale)
{
    uint16_t regs[2] = {(uint16_t)(raw >> 16), (uint16_t)raw};
    return drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, scale);
}

static void set(struct drv_reading *r, enum drv_quantity q, double v)
{
    r->present |= bit(q);
    r->value[q] = v;
}

static void test_decoded_numbers_print_as_decimals(void **state)
{
    (void)state;
    struct drv_reading r;
    memset(&r, 0, sizeof r);
    set(&r, DRV_Q_VOLTAGE_V, from_float32(226.1f, 1.0));         /* 226.100006103515625 */
    set(&r, DRV_Q_ENERGY_IMPORT_KWH, from_u32(1234, 0.01));      /* DDS238 x0.01 */
    set(&r, DRV_Q_ENERGY_EXPORT_KWH, from_float32(99999.99f, 1.0)); /* 99999.9921875 */
    set(&r, DRV_Q_ENERGY_TOTAL_KWH, from_u32(UINT32_MAX, 0.01)); /* the last before the wrap */
    set(&r, DRV_Q_POWER_W, from_float32(-0.8f, 1000.0));         /* DDSU666 kW -> W */
    set(&r, DRV_Q_CURRENT_A, from_float32(0.0f, 1.0));
    set(&r, DRV_Q_POWER_FACTOR, from_float32(-0.98f, 1.0));
    set(&r, DRV_Q_FREQUENCY_HZ, from_float32(4998.0f, 0.01));    /* DTSU666 x0.01 */
    set(&r, DRV_Q_VOLTAGE_L1_V, from_float32(2261.0f, 0.1));     /* DTSU666 x0.1 */
    set(&r, DRV_Q_CURRENT_L1_A, from_float32(1e-6f, 1.0));
    set(&r, DRV_Q_VOLUME_M3, from_float32(65536.01f, 1.0));      /* 65536.0078125 */
    set(&r, DRV_Q_FLOW_M3H, from_float32(0.545f, 1.0));
    set(&r, DRV_Q_BATTERY_V, from_float32(NAN, 1.0));            /* never printed */
    set(&r, DRV_Q_REVERSE_VOLUME_M3, from_float32(INFINITY, 1.0));
    set(&r, DRV_Q_SERIAL, from_u32(20260015, 1.0));
    char buf[GW_PAYLOAD_VALUES_MAX];
    size_t n = gw_payload_values_json(&r, buf, sizeof buf);
    const char *want = "{\"energy_import_kwh\":12.34,\"energy_export_kwh\":99999.99,"
                       "\"energy_total_kwh\":42949672.95,\"power_w\":-800,\"voltage_v\":226.1,"
                       "\"current_a\":0,\"power_factor\":-0.98,\"frequency_hz\":49.98,"
                       "\"voltage_l1_v\":226.1,\"current_l1_a\":1e-06,\"volume_m3\":65536.01,"
                       "\"flow_m3h\":0.545,\"serial\":20260015}";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    char *ref = reference_values(&r);
    assert_string_equal(buf, ref);
    free(ref);
}

/* Index in the plan's register buffer of (function, wire address). */
static size_t buffer_index(const struct drv_plan *plan, uint8_t function, uint16_t address)
{
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *q = drv_plan_request(plan, i);
        if (q->function == function && address >= q->address && address < q->address + q->count)
            return q->reg_offset + (size_t)(address - q->address);
    }
    fail_msg("no request reads 0x%04X", address);
    return 0;
}

/* Decodes one poll of a model whose registers hold the given decimals
 * (encoded as the simulator serves them), every request read. */
static void decode_model(const char *name, const double *decimals, uint16_t valve_status,
                         struct drv_reading *out)
{
    const struct drv_model *model = drv_model_find(name);
    assert_non_null(model);
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(model, NULL, &plan), EST_OK);
    uint16_t *regs = calloc(drv_plan_register_count(plan) + 1, sizeof *regs);
    bool *ok = calloc(drv_plan_request_count(plan) + 1, sizeof *ok);
    assert_non_null(regs);
    assert_non_null(ok);
    for (size_t i = 0; i < drv_plan_request_count(plan); i++)
        ok[i] = true;
    for (size_t p = 0; p < model->npoints; p++) {
        const struct drv_point *pt = &model->points[p];
        uint8_t function;
        uint16_t address;
        enum drv_word_order order;
        drv_point_effective(model, NULL, p, &function, &address, &order);
        uint16_t *at = &regs[buffer_index(plan, function, address)];
        if (pt->status != NULL)
            drv_encode_value(valve_status, pt->type, order, 1.0, at);
        else
            drv_encode_value(decimals[pt->quantity], pt->type, order, pt->scale, at);
    }
    unsigned bad = 99;
    assert_int_equal(drv_decode(plan, regs, ok, out, &bad), EST_OK);
    assert_int_equal(bad, 0);
    free(regs);
    free(ok);
    drv_plan_free(plan);
}

/* Whole readings, registers -> decode -> payload, as the core prints them. */
static void test_model_readings_print_as_decimals(void **state)
{
    (void)state;
    struct gw_unit_config units[1] = {{.id = "3-1201"}};
    struct gw_meter_config meters[2] = {
        {.id = "E-3-1201", .kind = DRV_KIND_ELECTRICITY, .category = GW_CAT_UNIT, .unit = 0},
        {.id = "W-3-1201", .kind = DRV_KIND_WATER, .category = GW_CAT_UNIT, .unit = 0},
    };
    struct gw_config config;
    memset(&config, 0, sizeof config);
    config.meters = meters;
    config.nmeters = 2;
    config.units = units;
    config.nunits = 1;
    struct gw_sample s;
    memset(&s, 0, sizeof s);
    s.ts_ms = 1767225600000LL; /* 2026-01-01T00:00:00Z */
    s.quality = GW_QUALITY_GOOD;
    char values[GW_PAYLOAD_VALUES_MAX], payload[GW_PAYLOAD_READING_MAX];

    double sdm120[DRV_Q__COUNT] = {0};
    sdm120[DRV_Q_VOLTAGE_V] = 226.1;
    sdm120[DRV_Q_CURRENT_A] = 5.23;
    sdm120[DRV_Q_POWER_W] = 1182.5;
    sdm120[DRV_Q_POWER_FACTOR] = 0.98;
    sdm120[DRV_Q_FREQUENCY_HZ] = 49.98;
    sdm120[DRV_Q_ENERGY_IMPORT_KWH] = 12345.67;
    sdm120[DRV_Q_ENERGY_EXPORT_KWH] = 0.0;
    sdm120[DRV_Q_ENERGY_TOTAL_KWH] = 12345.67;
    sdm120[DRV_Q_SERIAL] = 20260015;
    decode_model("sdm120", sdm120, 0, &s.reading);
    size_t vlen = gw_payload_values_json(&s.reading, values, sizeof values);
    assert_string_equal(values,
                        "{\"energy_import_kwh\":12345.67,\"energy_export_kwh\":0,"
                        "\"energy_total_kwh\":12345.67,\"power_w\":1182.5,\"voltage_v\":226.1,"
                        "\"current_a\":5.23,\"power_factor\":0.98,\"frequency_hz\":49.98,"
                        "\"serial\":20260015}");
    s.index = 0;
    size_t plen = gw_payload_reading_into(&config, &s, values, vlen, payload, sizeof payload);
    assert_true(plen > 0);
    assert_string_equal(payload,
                        "{\"meter\":\"E-3-1201\",\"kind\":\"electricity\",\"category\":\"unit\","
                        "\"unit\":\"3-1201\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"values\":"
                        "{\"energy_import_kwh\":12345.67,\"energy_export_kwh\":0,"
                        "\"energy_total_kwh\":12345.67,\"power_w\":1182.5,\"voltage_v\":226.1,"
                        "\"current_a\":5.23,\"power_factor\":0.98,\"frequency_hz\":49.98,"
                        "\"serial\":20260015},\"quality\":\"good\"}");

    double xintai[DRV_Q__COUNT] = {0};
    xintai[DRV_Q_VOLUME_M3] = 553.23;
    xintai[DRV_Q_REVERSE_VOLUME_M3] = 0.301;
    xintai[DRV_Q_FLOW_M3H] = 0.545;
    xintai[DRV_Q_BATTERY_V] = 3.4;
    xintai[DRV_Q_SERIAL] = 20260016;
    decode_model("xintai-water", xintai, 0x0001, &s.reading); /* open */
    vlen = gw_payload_values_json(&s.reading, values, sizeof values);
    s.index = 1;
    plen = gw_payload_reading_into(&config, &s, values, vlen, payload, sizeof payload);
    assert_true(plen > 0);
    assert_string_equal(payload,
                        "{\"meter\":\"W-3-1201\",\"kind\":\"water\",\"category\":\"unit\","
                        "\"unit\":\"3-1201\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"values\":"
                        "{\"volume_m3\":553.23,\"reverse_volume_m3\":0.301,\"flow_m3h\":0.545,"
                        "\"valve\":\"open\",\"valve_fault\":0,\"battery_v\":3.4,"
                        "\"battery_low\":0},\"quality\":\"good\"}"); /* no serial point */
}

/* Significant digits of a JSON number's text ("-0.00123e5" -> 3). */
static int significant_digits(const char *number, size_t len)
{
    int digits = 0, pending_zeros = 0;
    bool leading = true;
    for (size_t i = 0; i < len && number[i] != 'e' && number[i] != 'E'; i++) {
        char c = number[i];
        if (c < '0' || c > '9')
            continue;
        if (c == '0' && leading)
            continue;
        leading = false;
        if (c == '0') {
            pending_zeros++;
        } else {
            digits += pending_zeros + 1;
            pending_zeros = 0;
        }
    }
    return digits; /* trailing zeros of an integer are not significant here */
}

/* Any float32 register in a meter's range prints with at most 9
 * significant digits, and the text gives back that very float32; integer
 * registers at 0.01 with at most 10 (4294967295 steps). */
static void test_random_registers_print_short_and_faithful(void **state)
{
    (void)state;
    char buf[GW_PAYLOAD_VALUES_MAX];
    for (int i = 0; i < 50000; i++) {
        uint32_t bits = (uint32_t)(next_u64() >> 32);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f) || fabsf(f) < 1e-12f || fabsf(f) >= 1e22f)
            continue; /* non-finite: left out; outside: kept exactly */
        struct drv_reading r;
        memset(&r, 0, sizeof r);
        set(&r, DRV_Q_POWER_W, from_float32(f, 1.0));
        uint32_t raw = (uint32_t)next_u64();
        set(&r, DRV_Q_ENERGY_IMPORT_KWH, from_u32(raw, 0.01));
        gw_payload_values_json(&r, buf, sizeof buf);
        const char *text = strstr(buf, "\"power_w\":");
        assert_non_null(text);
        text += strlen("\"power_w\":");
        size_t len = strcspn(text, ",}");
        assert_in_range(significant_digits(text, len), 1, 9);
        assert_true(strtof(text, NULL) == f);
        assert_true(strtod(text, NULL) == r.value[DRV_Q_POWER_W]);
        text = strstr(buf, "\"energy_import_kwh\":") + strlen("\"energy_import_kwh\":");
        len = strcspn(text, ",}");
        assert_in_range(significant_digits(text, len), 1, 10);
        char want[32];
        snprintf(want, sizeof want, "%u.%02u", raw / 100, raw % 100);
        assert_true(strtod(text, NULL) == strtod(want, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_match_cjson),
        cmocka_unit_test(test_values_edge_numbers),
        cmocka_unit_test(test_reading_matches_cjson),
        cmocka_unit_test(test_small_buffers_give_zero),
        cmocka_unit_test(test_decoded_numbers_print_as_decimals),
        cmocka_unit_test(test_model_readings_print_as_decimals),
        cmocka_unit_test(test_random_registers_print_short_and_faithful),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
