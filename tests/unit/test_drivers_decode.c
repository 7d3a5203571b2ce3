/* test_drivers_decode.c - the pure decoders and encoders against datasheet
 * byte vectors: every type in every word order, scaling, sign and wrap; the
 * decimals they deliver (the shortest that gives back a float32 register,
 * raw / 10^k for scaled integers) compared exactly, and checked against a
 * printf/strtof reference on random float32 values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"

/* Two registers from four wire bytes b0 b1 b2 b3 (b0 first on the wire). */
static void wire_bytes(uint16_t regs[2], uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
    regs[0] = (uint16_t)(b0 << 8 | b1);
    regs[1] = (uint16_t)(b2 << 8 | b3);
}

static void test_sdm120_voltage_abcd(void **state)
{
    (void)state;
    uint16_t regs[2];
    wire_bytes(regs, 0x43, 0x62, 0x00, 0x00); /* SDM120 datasheet: 226.0 V */
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0) == 226.0);
    wire_bytes(regs, 0x43, 0x62, 0x19, 0x9A); /* 226.1f = 226.100006103515625 */
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0) == 226.1);
}

static void test_xintai_flow_dcba(void **state)
{
    (void)state;
    uint16_t regs[2] = {0x1E85, 0x0B3F}; /* float 0x3F0B851E on the wire little-endian */
    /* The protocol document's example is 0x3F0B851E = 0.544999957..., one
     * float32 step below 0.545f (0x3F0B851F): its shortest decimal is
     * 0.54499996, since 0.545 would give back the other float32. */
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0) == 0.54499996);
    regs[0] = 0x1F85; /* 0x3F0B851F = 0.545000017...: 0.545 */
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0) == 0.545);
}

static void test_float_all_orders(void **state)
{
    (void)state;
    /* 226.0 = 0x43620000; 0.54499996 = 0x3F0B851E, laid out per word order. */
    uint16_t regs[2];
    wire_bytes(regs, 0x00, 0x00, 0x43, 0x62);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_CDAB, 1.0) == 226.0);
    wire_bytes(regs, 0x62, 0x43, 0x00, 0x00);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_BADC, 1.0) == 226.0);
    wire_bytes(regs, 0x85, 0x1E, 0x3F, 0x0B);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_CDAB, 1.0) == 0.54499996);
    wire_bytes(regs, 0x0B, 0x3F, 0x1E, 0x85);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_BADC, 1.0) == 0.54499996);
    wire_bytes(regs, 0x3F, 0x0B, 0x85, 0x1E);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0) == 0.54499996);
}

static void test_u32_orders(void **state)
{
    (void)state;
    uint16_t regs[2];
    const uint32_t expected = 0x11223344u;
    wire_bytes(regs, 0x11, 0x22, 0x33, 0x44);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 1.0), expected, 0);
    wire_bytes(regs, 0x33, 0x44, 0x11, 0x22);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_CDAB, 1.0), expected, 0);
    wire_bytes(regs, 0x22, 0x11, 0x44, 0x33);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_BADC, 1.0), expected, 0);
    wire_bytes(regs, 0x44, 0x33, 0x22, 0x11);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_DCBA, 1.0), expected, 0);
}

static void test_sixteen_bit(void **state)
{
    (void)state;
    uint16_t reg = 0xFF38; /* -200 as int16 */
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_I16, DRV_ORDER_ABCD, 1.0), -200.0, 0);
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_U16, DRV_ORDER_ABCD, 1.0), 65336.0, 0);
    reg = 0x38FF; /* byte-swapped orders swap the bytes of a single word */
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_I16, DRV_ORDER_BADC, 1.0), -200.0, 0);
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_I16, DRV_ORDER_DCBA, 1.0), -200.0, 0);
    reg = 0xFF38;
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_I16, DRV_ORDER_CDAB, 1.0), -200.0, 0);
    reg = 2305; /* DDS238 voltage x0.1 */
    assert_true(drv_decode_value(&reg, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.1) == 230.5);
    reg = 2261; /* 2261 * 0.1 is 226.10000000000002; 2261 / 10 is 226.1 */
    assert_true(drv_decode_value(&reg, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.1) == 226.1);
    reg = 1234; /* DDS238 current x0.01: 1234 * 0.01 is 12.340000000000001 */
    assert_true(drv_decode_value(&reg, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.01) == 12.34);
}

static void test_i32_and_u32_wrap(void **state)
{
    (void)state;
    uint16_t regs[2] = {0xFFFF, 0xFFFE};
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_I32, DRV_ORDER_ABCD, 1.0), -2.0, 0);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 1.0), 4294967294.0,
                       0);
    /* DDS238 counter x0.01 kWh: the largest value before the wrap, then 0. */
    regs[0] = 0xFFFF;
    regs[1] = 0xFFFF;
    assert_true(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01) == 42949672.95);
    const struct drv_model *dds238 = drv_model_find("dds238");
    assert_non_null(dds238);
    assert_float_equal(dds238->counter_wrap, 4294967296.0 * 0.01, 1e-6);
    /* Encoding past the range clamps instead of wrapping. */
    drv_encode_value(42949672.97, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01, regs);
    assert_int_equal(regs[0], 0xFFFF);
    assert_int_equal(regs[1], 0xFFFF);
    drv_encode_value(-5, DRV_TYPE_U32, DRV_ORDER_ABCD, 1.0, regs);
    assert_int_equal(regs[0], 0);
    assert_int_equal(regs[1], 0);
    drv_encode_value(-40000, DRV_TYPE_I16, DRV_ORDER_ABCD, 1.0, regs);
    assert_int_equal(regs[0], 0x8000);
}

static void test_scale(void **state)
{
    (void)state;
    uint16_t regs[2];
    wire_bytes(regs, 0xBF, 0x4C, 0xCC, 0xCD); /* -0.8 kW (DDSU666) */
    /* (double)-0.8f * 1000 would be -800.0000119; the decimal -0.8 x 1000 is -800 */
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1000.0) == -800.0);
    drv_encode_value(-800.0, DRV_TYPE_F32, DRV_ORDER_ABCD, 1000.0, regs);
    assert_int_equal(regs[0], 0xBF4C);
    assert_int_equal(regs[1], 0xCCCD);
    drv_encode_value(230.46, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.1, regs); /* rounds to 2305 */
    assert_int_equal(regs[0], 2305);
}

static void test_encode_round_trip_every_type_and_order(void **state)
{
    (void)state;
    const double values[] = {0.0, 1.0, -1.0, 123.0, -32768.0, 65535.0, 20260001.0};
    for (int type = DRV_TYPE_U16; type <= DRV_TYPE_F32; type++)
        for (int order = DRV_ORDER_ABCD; order <= DRV_ORDER_DCBA; order++)
            for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                double v = values[i];
                bool fits = (type == DRV_TYPE_U16 && v >= 0 && v <= 65535) ||
                            (type == DRV_TYPE_I16 && v >= -32768 && v <= 32767) ||
                            (type == DRV_TYPE_U32 && v >= 0) || type == DRV_TYPE_I32 ||
                            (type == DRV_TYPE_F32 && fabs(v) < 16777216.0);
                if (!fits)
                    continue;
                uint16_t regs[2] = {0, 0};
                drv_encode_value(v, (enum drv_type)type, (enum drv_word_order)order, 1.0, regs);
                assert_float_equal(drv_decode_value(regs, (enum drv_type)type,
                                                    (enum drv_word_order)order, 1.0),
                                   v, 0);
            }
}

/* A float32 register's words (ABCD). */
static void float_regs(float f, uint16_t regs[2])
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    regs[0] = (uint16_t)(bits >> 16);
    regs[1] = (uint16_t)bits;
}

static double decode_float(float f, double scale)
{
    uint16_t regs[2];
    float_regs(f, regs);
    return drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, scale);
}

/* Decimals the meters mean, through their float32 registers and back. */
static void test_float32_decodes_to_the_meters_decimal(void **state)
{
    (void)state;
    static const double decimals[] = {
        226.1, 229.9, 231.2, 49.98, 50.02, 0.98, -0.98, 5.25, 0.123, 12345.67, 12.34,
        99999.99,   /* a big float32 counter: the float is 99999.9921875 */
        65536.01,   /* float32 steps of 0.0078 kWh: the float is 65536.0078125 */
        123.456, 0.545, 3.6, 0.001, 1e-6, 2e-12, 7e20, 16777215.0, 16777216.0,
        -1200.5, -0.8, 1.0, -1.0, 9.9e21, -9.9e21,
    };
    for (size_t i = 0; i < sizeof decimals / sizeof decimals[0]; i++) {
        double got = decode_float((float)decimals[i], 1.0);
        if (got != decimals[i])
            fail_msg("%.17g decoded as %.17g", decimals[i], got);
    }
    /* Scaled floats: the scale applies to the decimal's digits. */
    assert_true(decode_float(2261.0f, 0.1) == 226.1);      /* DTSU666 voltage x0.1 */
    assert_true(decode_float(5123.0f, 0.001) == 5.123);    /* DTSU666 current x0.001 */
    assert_true(decode_float(4998.0f, 0.01) == 49.98);     /* DTSU666 frequency x0.01 */
    assert_true(decode_float(-12005.0f, 0.1) == -1200.5);  /* DTSU666 power x0.1 W */
    assert_true(decode_float(1.2345f, 1000.0) == 1234.5);  /* DDSU666 kW -> W */
    assert_true(decode_float(226.1f, -1.0) == -226.1);     /* a negative scale */
    /* Not a power of ten: the decimal times the scale. */
    assert_true(decode_float(226.1f, 0.5) == 226.1 * 0.5);
    /* Zero keeps its sign; integers stay integers. */
    double z = decode_float(-0.0f, 1.0);
    assert_true(z == 0.0 && signbit(z));
    assert_true(decode_float(0.0f, 0.01) == 0.0);
    assert_true(decode_float(-200.0f, 1.0) == -200.0);
    /* Out of the decimal range: kept exactly (subnormal, FLT_MAX). */
    assert_true(decode_float(1e-40f, 1.0) == (double)1e-40f);
    assert_true(decode_float(FLT_MAX, 1.0) == (double)FLT_MAX);
    /* Negative integers with a scale. */
    uint16_t reg = 0xFB2E; /* -1234 */
    assert_true(drv_decode_value(&reg, DRV_TYPE_I16, DRV_ORDER_ABCD, 0.01) == -12.34);
    uint16_t regs[2] = {0x0001, 0x0000}; /* 65536 x 1000 */
    assert_true(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 1000.0) == 65536000.0);
}

/* The reference: the shortest "%.{p}g" (p = 1..9) that strtof gives back as
 * f, i.e. printf's nearest decimal of that length (ties to even). */
static double reference_decimal(float f, int *digits)
{
    char text[32];
    for (*digits = 1; *digits <= 9; (*digits)++) {
        snprintf(text, sizeof text, "%.*g", *digits, (double)f);
        if (strtof(text, NULL) == f)
            break;
    }
    return strtod(text, NULL);
}

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* Random float32 registers (any bit pattern, and meter-range magnitudes):
 * the decoded double converts back to the same float32 (so encoding it
 * gives the same registers, and the rules can have the float32 back), it
 * is the reference decimal, and "%1.15g" (cJSON's first try) prints it so
 * that it parses back to the same double. */
static void test_float32_shortest_decimal_against_printf(void **state)
{
    (void)state;
    float lo = 1e-3f, hi = 1e8f;
    uint32_t lo_bits, hi_bits;
    memcpy(&lo_bits, &lo, sizeof lo_bits);
    memcpy(&hi_bits, &hi, sizeof hi_bits);
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = next_u32();
        if (i % 2 == 1)
            bits = (lo_bits + bits % (hi_bits - lo_bits)) | (i % 4 == 1 ? 0x80000000u : 0);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f))
            continue;
        double got = decode_float(f, 1.0);
        assert_true((float)got == f);
        uint16_t regs[2], again[2];
        float_regs(f, regs);
        drv_encode_value(got, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0, again);
        assert_memory_equal(regs, again, sizeof regs);
        double a = fabs((double)f);
        if (a < 1e-12 || a >= 1e22)
            continue; /* kept exactly */
        char text[32];
        snprintf(text, sizeof text, "%1.15g", got);
        assert_true(strtod(text, NULL) == got);
        int digits;
        double want = reference_decimal(f, &digits);
        if (got != want)
            fail_msg("%a: decoded %.17g, shortest decimal %.*g", (double)f, got, digits, want);
    }
}

/* Scaled integers: raw / 10^k is the double nearest to the decimal, for
 * every raw a DDS238 register can hold near its wrap and the common ones. */
static void test_scaled_integers_are_nearest_doubles(void **state)
{
    (void)state;
    char text[40];
    for (uint32_t raw = 0; raw < 200000; raw += 7) {
        uint16_t regs[2] = {(uint16_t)(raw >> 16), (uint16_t)raw};
        double got = drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01);
        snprintf(text, sizeof text, "%u.%02u", raw / 100, raw % 100);
        assert_true(got == strtod(text, NULL));
        got = drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.001);
        snprintf(text, sizeof text, "%u.%03u", raw / 1000, raw % 1000);
        assert_true(got == strtod(text, NULL));
        /* and back to the same registers */
        uint16_t again[2];
        drv_encode_value(got, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.001, again);
        assert_memory_equal(regs, again, sizeof regs);
    }
}

/* The quantities read from float32 registers at scale 1 (the rules get
 * these back as float32 values). */
static void test_float32_quantities(void **state)
{
    (void)state;
    const uint64_t one = 1;
    uint64_t sdm120 = drv_model_float32_quantities(drv_model_find("sdm120"));
    assert_true(sdm120 & (one << DRV_Q_VOLTAGE_V));
    assert_true(sdm120 & (one << DRV_Q_ENERGY_IMPORT_KWH));
    assert_true(sdm120 & (one << DRV_Q_ENERGY_EXPORT_KWH));
    assert_true(sdm120 & (one << DRV_Q_POWER_W));
    assert_false(sdm120 & (one << DRV_Q_SERIAL)); /* uint32 */
    uint64_t ddsu666 = drv_model_float32_quantities(drv_model_find("ddsu666"));
    assert_true(ddsu666 & (one << DRV_Q_ENERGY_IMPORT_KWH));
    assert_false(ddsu666 & (one << DRV_Q_POWER_W)); /* kW x 1000 */
    uint64_t xintai = drv_model_float32_quantities(drv_model_find("xintai-water"));
    assert_true(xintai & (one << DRV_Q_VOLUME_M3));
    assert_true(xintai & (one << DRV_Q_FLOW_M3H));
    assert_false(xintai & (one << DRV_Q_VALVE)); /* the status hook */
    assert_int_equal(drv_model_float32_quantities(drv_model_find("dds238")), 0);
    assert_int_equal(drv_model_float32_quantities(NULL), 0);
}

static void test_nan_and_inf_decode(void **state)
{
    (void)state;
    uint16_t regs[2] = {0x7FC0, 0x0000};
    assert_true(isnan(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0)));
    regs[0] = 0x7F80;
    assert_true(isinf(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0)));
    assert_int_equal(drv_type_regs(DRV_TYPE_I16), 1);
    assert_int_equal(drv_type_regs(DRV_TYPE_F32), 2);
}

static void test_notifier_zone_decode(void **state)
{
    (void)state;
    assert_int_equal(drv_notifier_zone_decode(0x0810), DRV_ZONE_ALARM);
    assert_int_equal(drv_notifier_zone_decode(0x0C14), DRV_ZONE_ALARM); /* CO, enabled */
    assert_int_equal(drv_notifier_zone_decode(0x0830), DRV_ZONE_SUPERVISORY);
    assert_int_equal(drv_notifier_zone_decode(0x0840), DRV_ZONE_SUPERVISORY);
    assert_int_equal(drv_notifier_zone_decode(0x0871), 0); /* non-fire activation */
    assert_int_equal(drv_notifier_zone_decode(0x2400), DRV_ZONE_FAULT);
    assert_int_equal(drv_notifier_zone_decode(0x0200), DRV_ZONE_DISABLED);
    assert_int_equal(drv_notifier_zone_decode(0x0010), 0); /* event type without active */
    assert_int_equal(drv_notifier_zone_decode(0x00FF), DRV_ZONE_UNPROGRAMMED);
    assert_int_equal(drv_notifier_zone_decode(0x0400), 0);
    assert_int_equal(drv_notifier_zone_decode(0x2A10), DRV_ZONE_ALARM | DRV_ZONE_FAULT |
                                                           DRV_ZONE_DISABLED);
}

static void test_names(void **state)
{
    (void)state;
    for (int q = 0; q < DRV_Q__COUNT; q++) {
        const char *name = drv_quantity_name((enum drv_quantity)q);
        assert_non_null(name);
        assert_int_equal(drv_quantity_from_name(name), q);
    }
    assert_string_equal(drv_quantity_name(DRV_Q_ENERGY_TOTAL_KWH), "energy_total_kwh");
    assert_string_equal(drv_quantity_name(DRV_Q_FLOW_M3H), "flow_m3h");
    assert_string_equal(drv_quantity_name(DRV_Q__COUNT), "unknown");
    assert_int_equal(drv_quantity_from_name("nope"), -1);
    assert_int_equal(drv_quantity_from_name(NULL), -1);
    assert_string_equal(drv_valve_state_name(DRV_VALVE_OPEN), "open");
    assert_string_equal(drv_valve_state_name(DRV_VALVE_CLOSED), "closed");
    assert_string_equal(drv_valve_state_name(DRV_VALVE_MOVING), "moving");
    assert_string_equal(drv_valve_state_name(DRV_VALVE_UNKNOWN), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdm120_voltage_abcd),
        cmocka_unit_test(test_xintai_flow_dcba),
        cmocka_unit_test(test_float_all_orders),
        cmocka_unit_test(test_u32_orders),
        cmocka_unit_test(test_sixteen_bit),
        cmocka_unit_test(test_i32_and_u32_wrap),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_encode_round_trip_every_type_and_order),
        cmocka_unit_test(test_float32_decodes_to_the_meters_decimal),
        cmocka_unit_test(test_float32_shortest_decimal_against_printf),
        cmocka_unit_test(test_scaled_integers_are_nearest_doubles),
        cmocka_unit_test(test_float32_quantities),
        cmocka_unit_test(test_nan_and_inf_decode),
        cmocka_unit_test(test_notifier_zone_decode),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
