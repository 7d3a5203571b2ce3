/* test_gw_payload.c - unit tests of gateway/payload.c's buffer-printing
 * reading path (gw_payload_values_json, gw_payload_reading_into, with the
 * values embedded raw): its output must be byte for byte what a plain cJSON
 * tree gives (cJSON_PrintUnformatted of gw_payload_values, and a reading
 * object built member by member), for random float32-derived, scaled-integer, integer, huge,
 * tiny and negative numbers, the valve name, non-finite values (left out),
 * strings needing escapes, every quality and error form, and buffers too
 * small (0, never a truncated text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_match_cjson),
        cmocka_unit_test(test_values_edge_numbers),
        cmocka_unit_test(test_reading_matches_cjson),
        cmocka_unit_test(test_small_buffers_give_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
