/* test_drivers_decode.c - the pure decoders and encoders against datasheet
 * byte vectors: every type in every word order, scaling, sign and wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
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
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0), 226.0, 1e-9);
}

static void test_xintai_flow_dcba(void **state)
{
    (void)state;
    uint16_t regs[2] = {0x1E85, 0x0B3F}; /* float 0x3F0B851E on the wire little-endian */
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0), 0.545, 1e-6);
}

static void test_float_all_orders(void **state)
{
    (void)state;
    /* 226.0 = 0x43620000; 0.545 = 0x3F0B851E, laid out per word order. */
    uint16_t regs[2];
    wire_bytes(regs, 0x00, 0x00, 0x43, 0x62);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_CDAB, 1.0), 226.0, 1e-9);
    wire_bytes(regs, 0x62, 0x43, 0x00, 0x00);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_BADC, 1.0), 226.0, 1e-9);
    wire_bytes(regs, 0x85, 0x1E, 0x3F, 0x0B);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_CDAB, 1.0), 0.545, 1e-6);
    wire_bytes(regs, 0x0B, 0x3F, 0x1E, 0x85);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_BADC, 1.0), 0.545, 1e-6);
    wire_bytes(regs, 0x3F, 0x0B, 0x85, 0x1E);
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0), 0.545, 1e-6);
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
    assert_float_equal(drv_decode_value(&reg, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.1), 230.5, 1e-9);
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
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01),
                       42949672.95, 1e-6);
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
    assert_float_equal(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1000.0), -800.0,
                       1e-3);
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
        cmocka_unit_test(test_nan_and_inf_decode),
        cmocka_unit_test(test_notifier_zone_decode),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
