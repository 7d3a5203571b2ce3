/* test_drivers_plan.c - the read planner (merging, limits, options, zones)
 * and drv_decode round trips: every model's values encoded at their
 * effective addresses, read back through the plan and decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"

static struct drv_plan *build(const char *model_name, const struct drv_device_options *options)
{
    const struct drv_model *model = drv_model_find(model_name);
    assert_non_null(model);
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(model, options, &plan), EST_OK);
    assert_non_null(plan);
    return plan;
}

/* Every request within the limits, and the buffer laid out contiguously. */
static void check_invariants(const struct drv_plan *plan, unsigned max_regs)
{
    size_t offset = 0;
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *r = drv_plan_request(plan, i);
        assert_true(r->count >= 1 && r->count <= max_regs);
        assert_true(r->function == 3 || r->function == 4);
        assert_int_equal(r->reg_offset, offset);
        assert_true((unsigned)r->address + r->count <= 65536u);
        offset += r->count;
    }
    assert_int_equal(drv_plan_register_count(plan), offset);
}

static void test_sdm120_plan(void **state)
{
    (void)state;
    struct drv_plan *plan = build("sdm120", NULL);
    check_invariants(plan, 80);
    size_t fast_fc04 = 0, slow = 0;
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *r = drv_plan_request(plan, i);
        if (r->slow) {
            /* the serial (FC03 0xFC00) and the mode-dependent total (FC04 0x0156) */
            slow++;
            assert_int_equal(r->count, 2);
            assert_true((r->function == DRV_FC_HOLDING && r->address == 0xFC00) ||
                        (r->function == DRV_FC_INPUT && r->address == 0x0156));
        } else {
            fast_fc04++;
            assert_int_equal(r->function, DRV_FC_INPUT);
        }
    }
    assert_int_equal(slow, 2);
    /* every value the rules need comes in one request per poll */
    assert_int_equal(fast_fc04, 1);
    assert_int_equal(drv_plan_slow_every(plan), 60);
    assert_int_equal(drv_plan_zone_count(plan), 0);
    drv_plan_free(plan);

    /* A tighter per-device limit splits into more, smaller requests. */
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.max_read_regs = 10;
    options.slow_every = 5;
    plan = build("sdm120", &options);
    check_invariants(plan, 10);
    assert_true(drv_plan_request_count(plan) > 4);
    assert_int_equal(drv_plan_slow_every(plan), 5);
    drv_plan_free(plan);
}

static void test_ddsu666_one_block(void **state)
{
    (void)state;
    struct drv_plan *plan = build("ddsu666", NULL);
    check_invariants(plan, 125);
    assert_int_equal(drv_plan_request_count(plan), 2);
    const struct drv_request *r = drv_plan_request(plan, 0);
    assert_int_equal(r->function, DRV_FC_HOLDING);
    assert_int_equal(r->address, 0x2000);
    assert_int_equal(r->count, 0x10);
    r = drv_plan_request(plan, 1);
    assert_int_equal(r->address, 0x4000);
    assert_int_equal(r->count, 12);
    drv_plan_free(plan);
}

static void test_function_override(void **state)
{
    (void)state;
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.function = 4;
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        if (model->protocol != DRV_PROTO_MODBUS)
            continue;
        struct drv_plan *plan = NULL;
        assert_int_equal(drv_plan_build(model, &options, &plan), EST_OK);
        for (size_t i = 0; i < drv_plan_request_count(plan); i++)
            assert_int_equal(drv_plan_request(plan, i)->function, DRV_FC_INPUT);
        for (size_t p = 0; p < model->npoints; p++) {
            uint8_t function;
            drv_point_effective(model, &options, p, &function, NULL, NULL);
            assert_int_equal(function, DRV_FC_INPUT);
        }
        drv_plan_free(plan);
    }
}

static void test_word_order_override(void **state)
{
    (void)state;
    const struct drv_model *model = drv_model_find("xintai-water");
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.word_order = DRV_ORDER_CDAB;
    for (size_t p = 0; p < model->npoints; p++) {
        enum drv_word_order order;
        drv_point_effective(model, &options, p, NULL, NULL, &order);
        if (drv_type_regs(model->points[p].type) == 2)
            assert_int_equal(order, DRV_ORDER_CDAB);
        else
            assert_int_equal(order, model->points[p].order); /* 16-bit words untouched */
    }
    drv_device_options_init(&options);
    enum drv_word_order order;
    drv_point_effective(model, &options, 0, NULL, NULL, &order);
    assert_int_equal(order, DRV_ORDER_DCBA);
}

static void test_address_base(void **state)
{
    (void)state;
    const struct drv_model *model = drv_model_find("xintai-water");
    struct drv_device_options options;
    drv_device_options_init(&options);
    for (int base = -1; base <= 1; base += 2) {
        options.address_base = base;
        struct drv_plan *plan = build("xintai-water", &options);
        const struct drv_request *r = drv_plan_request(plan, 0);
        assert_int_equal(r->address, 0x0001 + base);
        assert_int_equal(r->count, 28);
        uint16_t address;
        drv_point_effective(model, &options, 0, NULL, &address, NULL);
        assert_int_equal(address, 0x0001 + base);
        uint16_t valve_address, value;
        assert_int_equal(drv_valve_command(model, &options, false, &valve_address, &value),
                         EST_OK);
        assert_int_equal(valve_address, 0x001C + base);
        assert_int_equal(value, 0x0002);
        drv_plan_free(plan);
    }
    /* Base -1 on sdm120 would put voltage at -1: rejected. */
    options.address_base = -1;
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(drv_model_find("sdm120"), &options, &plan), EST_ERR_INVALID);
    assert_null(plan);
    /* +0x3FF on sdm120 pushes the serial at 0xFC00 past 0xFFFF. */
    options.address_base = 0x3FF;
    assert_int_equal(drv_plan_build(drv_model_find("sdm120"), &options, &plan), EST_ERR_INVALID);
    uint16_t a, v;
    assert_int_equal(drv_valve_command(drv_model_find("sdm120"), NULL, true, &a, &v),
                     EST_ERR_NOTFOUND);
}

static void test_panel_eight_zones(void **state)
{
    (void)state;
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.nzones = 8;
    struct drv_plan *plan = build("notifier-gw", &options);
    assert_int_equal(drv_plan_request_count(plan), 1);
    const struct drv_request *r = drv_plan_request(plan, 0);
    assert_int_equal(r->function, DRV_FC_HOLDING);
    assert_int_equal(r->address, 0);
    assert_int_equal(r->count, 8);
    assert_int_equal(drv_plan_zone_count(plan), 8);
    assert_int_equal(drv_zone_address(drv_model_find("notifier-gw"), &options, 7), 7);
    drv_plan_free(plan);

    /* The full default loop (159 zones) takes two requests. */
    plan = build("notifier-gw", NULL);
    assert_int_equal(drv_plan_zone_count(plan), 159);
    assert_int_equal(drv_plan_request_count(plan), 2);
    check_invariants(plan, 125);
    drv_plan_free(plan);
}

static void test_panel_scattered_zones(void **state)
{
    (void)state;
    /* Loop 1 detectors 0-1, loop 1 modules 200, loop 3 detectors 800-801. */
    static const uint16_t addresses[] = {801, 0, 200, 1, 800};
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.nzones = 5;
    options.zone_addresses = addresses;
    struct drv_plan *plan = build("notifier-gw", &options);
    assert_int_equal(drv_plan_request_count(plan), 3);
    check_invariants(plan, 125);
    assert_int_equal(drv_plan_request(plan, 0)->address, 0);
    assert_int_equal(drv_plan_request(plan, 0)->count, 2);
    assert_int_equal(drv_plan_request(plan, 1)->address, 200);
    assert_int_equal(drv_plan_request(plan, 2)->address, 800);

    /* Zone order is the config's, whatever the plan's order. */
    uint16_t regs[5] = {0};
    regs[0] = 0x0400;                                          /* address 0: normal */
    regs[1] = 0x0200;                                          /* address 1: disabled */
    regs[2] = 0x2400;                                          /* address 200: fault */
    regs[3] = 0x0400;                                          /* address 800 */
    regs[4] = 0x0C10;                                          /* address 801: alarm */
    bool ok[3] = {true, true, true};
    struct drv_reading reading;
    unsigned bad = 99;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, &bad), EST_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(reading.nzones, 5);
    assert_int_equal(reading.zones[0], DRV_ZONE_ALARM);
    assert_int_equal(reading.zones[1], 0);
    assert_int_equal(reading.zones[2], DRV_ZONE_FAULT);
    assert_int_equal(reading.zones[3], DRV_ZONE_DISABLED);
    assert_int_equal(reading.zones[4], 0);
    assert_true(reading.present & (UINT64_C(1) << DRV_Q_PANEL_ALARM));
    assert_float_equal(reading.value[DRV_Q_PANEL_ALARM], 1.0, 0);
    assert_float_equal(reading.value[DRV_Q_PANEL_FAULT], 1.0, 0);

    /* A failed request leaves its zones unknown and drops its alarm. */
    ok[2] = false;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, &bad), EST_OK);
    assert_int_equal(reading.zones[0], DRV_ZONE_UNKNOWN);
    assert_int_equal(reading.zones[4], DRV_ZONE_UNKNOWN);
    assert_float_equal(reading.value[DRV_Q_PANEL_ALARM], 0.0, 0);
    drv_plan_free(plan);
}

static void test_invalid_options(void **state)
{
    (void)state;
    const struct drv_model *panel = drv_model_find("notifier-gw");
    const struct drv_model *meter = drv_model_find("sdm120");
    struct drv_device_options options;
    struct drv_plan *plan = NULL;

    drv_device_options_init(&options);
    options.function = 6;
    assert_int_equal(drv_plan_build(meter, &options, &plan), EST_ERR_INVALID);
    drv_device_options_init(&options);
    options.word_order = 4;
    assert_int_equal(drv_plan_build(meter, &options, &plan), EST_ERR_INVALID);
    drv_device_options_init(&options);
    options.nzones = 3; /* zones on a meter */
    assert_int_equal(drv_plan_build(meter, &options, &plan), EST_ERR_INVALID);
    drv_device_options_init(&options);
    options.nzones = 160; /* beyond the layout's 159 */
    assert_int_equal(drv_plan_build(panel, &options, &plan), EST_ERR_INVALID);
    static uint16_t many[DRV_MAX_ZONES + 1];
    options.zone_addresses = many;
    options.nzones = DRV_MAX_ZONES + 1;
    assert_int_equal(drv_plan_build(panel, &options, &plan), EST_ERR_INVALID);
    options.nzones = DRV_MAX_ZONES; /* explicit addresses may span loops */
    assert_int_equal(drv_plan_build(panel, &options, &plan), EST_OK);
    drv_plan_free(plan);
    drv_device_options_init(&options);
    options.nzones = 8;
    options.address_base = 65530;
    assert_int_equal(drv_plan_build(panel, &options, &plan), EST_ERR_INVALID);
    drv_device_options_init(&options);
    options.max_read_regs = 1; /* a float cannot fit */
    assert_int_equal(drv_plan_build(meter, &options, &plan), EST_ERR_INVALID);
    assert_int_equal(drv_plan_build(NULL, NULL, &plan), EST_ERR_INVALID);
}

/* A plausible value for each quantity (hooks are handled separately). */
static double sample_value(enum drv_quantity q)
{
    switch (q) {
    case DRV_Q_ENERGY_IMPORT_KWH: return 12345.67;
    case DRV_Q_ENERGY_EXPORT_KWH: return 12.34;
    case DRV_Q_ENERGY_TOTAL_KWH: return 12358.01;
    case DRV_Q_POWER_W: return -800.0;
    case DRV_Q_POWER_L1_W: return 1200.5;
    case DRV_Q_POWER_L2_W: return -300.0;
    case DRV_Q_POWER_L3_W: return 10.0;
    case DRV_Q_VOLTAGE_V: case DRV_Q_VOLTAGE_L1_V: return 230.5;
    case DRV_Q_VOLTAGE_L2_V: return 229.9;
    case DRV_Q_VOLTAGE_L3_V: return 231.2;
    case DRV_Q_CURRENT_A: case DRV_Q_CURRENT_L1_A: return 5.25;
    case DRV_Q_CURRENT_L2_A: return 0.123;
    case DRV_Q_CURRENT_L3_A: return 12.5;
    case DRV_Q_POWER_FACTOR: return -0.98;
    case DRV_Q_FREQUENCY_HZ: return 50.02;
    case DRV_Q_VOLUME_M3: return 123.456;
    case DRV_Q_REVERSE_VOLUME_M3: return 0.25;
    case DRV_Q_FLOW_M3H: return 0.545;
    case DRV_Q_BATTERY_V: return 3.6;
    case DRV_Q_SERIAL: return 20260001.0;
    default: return 1.0;
    }
}

/* Index in the regs buffer of (function, wire address), or -1. */
static long buffer_index(const struct drv_plan *plan, uint8_t function, uint16_t address)
{
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *r = drv_plan_request(plan, i);
        if (r->function == function && address >= r->address && address < r->address + r->count)
            return (long)(r->reg_offset + (address - r->address));
    }
    return -1;
}

static void round_trip(const struct drv_model *model, const struct drv_device_options *options)
{
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(model, options, &plan), EST_OK);
    size_t nregs = drv_plan_register_count(plan), nreq = drv_plan_request_count(plan);
    uint16_t *regs = calloc(nregs + 1, sizeof *regs);
    bool *ok = calloc(nreq + 1, sizeof *ok);
    assert_non_null(regs);
    assert_non_null(ok);
    for (size_t i = 0; i < nreq; i++)
        ok[i] = true;
    for (size_t p = 0; p < model->npoints; p++) {
        const struct drv_point *point = &model->points[p];
        uint8_t function;
        uint16_t address;
        enum drv_word_order order;
        drv_point_effective(model, options, p, &function, &address, &order);
        long at = buffer_index(plan, function, address);
        assert_true(at >= 0 && (size_t)at + drv_type_regs(point->type) <= nregs);
        if (point->status != NULL)
            drv_encode_value(0x0001 | 0x0008, point->type, order, 1.0, &regs[at]);
        else
            drv_encode_value(sample_value(point->quantity), point->type, order, point->scale,
                             &regs[at]);
    }
    struct drv_reading reading;
    unsigned bad = 7;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, &bad), EST_OK);
    assert_int_equal(bad, 0);
    for (size_t p = 0; p < model->npoints; p++) {
        const struct drv_point *point = &model->points[p];
        assert_true(reading.present & (UINT64_C(1) << point->quantity));
        if (point->status != NULL) {
            assert_float_equal(reading.value[DRV_Q_VALVE], DRV_VALVE_OPEN, 0);
            assert_float_equal(reading.value[DRV_Q_VALVE_FAULT], 0, 0);
            assert_float_equal(reading.value[DRV_Q_BATTERY_LOW], 1, 0);
            continue;
        }
        /* Exactly the decimal: a float32 gives back the sample value (none
         * has more than 7 digits), an integer register its value rounded to
         * the register's step (12.34 at 0.01; 0.123 A at 0.01 reads 0.12). */
        double expected = sample_value(point->quantity);
        if (point->type != DRV_TYPE_F32) {
            double per_unit = 1.0 / point->scale; /* 100 for 0.01, exact */
            expected = point->scale < 1.0 ? nearbyint(expected * per_unit) / per_unit
                                          : nearbyint(expected / point->scale) * point->scale;
        }
        if (reading.value[point->quantity] != expected)
            fail_msg("%s %s: decoded %.17g, expected %.17g", model->name,
                     drv_quantity_name(point->quantity), reading.value[point->quantity], expected);
    }

    /* Skipped slow requests leave the serial absent; NaN counts as bad. */
    for (size_t i = 0; i < nreq; i++)
        ok[i] = !drv_plan_request(plan, i)->slow;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, &bad), EST_OK);
    assert_false(reading.present & (UINT64_C(1) << DRV_Q_SERIAL));
    for (size_t p = 0; p < model->npoints; p++) {
        const struct drv_point *point = &model->points[p];
        if (point->type != DRV_TYPE_F32 || point->slow)
            continue;
        uint8_t function;
        uint16_t address;
        enum drv_word_order order;
        drv_point_effective(model, options, p, &function, &address, &order);
        drv_encode_value(NAN, point->type, order, point->scale,
                         &regs[buffer_index(plan, function, address)]);
        assert_int_equal(drv_decode(plan, regs, ok, &reading, &bad), EST_OK);
        assert_int_equal(bad, 1);
        assert_false(reading.present & (UINT64_C(1) << point->quantity));
        break;
    }
    free(regs);
    free(ok);
    drv_plan_free(plan);
}

static void test_round_trip_every_model(void **state)
{
    (void)state;
    struct drv_device_options options;
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        if (model->kind == DRV_KIND_FIRE_PANEL || model->protocol != DRV_PROTO_MODBUS)
            continue;
        round_trip(model, NULL);
        for (int order = DRV_ORDER_ABCD; order <= DRV_ORDER_DCBA; order++) {
            drv_device_options_init(&options);
            options.word_order = order;
            options.function = order % 2 ? 4 : 3;
            options.address_base = 1;
            options.max_read_regs = 40;
            round_trip(model, &options);
        }
    }
}

static void test_panel_round_trip(void **state)
{
    (void)state;
    const struct drv_model *model = drv_model_find("notifier-gw");
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.nzones = 8;
    struct drv_plan *plan = build("notifier-gw", &options);
    const uint16_t words[8] = {0x0400, 0x0400, 0x0C10, 0x0400, 0x2400, 0x0400, 0x0600, 0x00FF};
    uint16_t regs[8];
    for (uint16_t z = 0; z < 8; z++)
        regs[buffer_index(plan, 3, drv_zone_address(model, &options, z))] = words[z];
    bool ok[1] = {true};
    struct drv_reading reading;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, NULL), EST_OK);
    assert_int_equal(reading.zones[2], DRV_ZONE_ALARM);
    assert_int_equal(reading.zones[4], DRV_ZONE_FAULT);
    assert_int_equal(reading.zones[6], DRV_ZONE_DISABLED);
    assert_int_equal(reading.zones[7], DRV_ZONE_UNPROGRAMMED);
    assert_int_equal(reading.zones[0], 0);
    assert_float_equal(reading.value[DRV_Q_PANEL_ALARM], 1, 0);
    assert_float_equal(reading.value[DRV_Q_PANEL_FAULT], 1, 0);
    ok[0] = false;
    assert_int_equal(drv_decode(plan, regs, ok, &reading, NULL), EST_OK);
    assert_false(reading.present & (UINT64_C(1) << DRV_Q_PANEL_ALARM));
    assert_int_equal(reading.zones[0], DRV_ZONE_UNKNOWN);
    drv_plan_free(plan);
}

static void test_model_tables(void **state)
{
    (void)state;
    static const char *const names[] = {"sdm120", "sdm630", "ddsu666", "dtsu666",
                                        "dds238", "xintai-water", "notifier-gw"};
    /* The seven first models, plus the ones added as files only (three of
     * them DL/T 645 and CJ/T 188 models, which no plan reads). */
    assert_int_equal(drv_model_count(), 13);
    struct drv_plan *national = NULL;
    assert_int_equal(drv_plan_build(drv_model_find("dlt645_2007_1p"), NULL, &national),
                     EST_ERR_INVALID);
    assert_null(national);
    for (size_t i = 0; i < 7; i++) {
        const struct drv_model *model = drv_model_find(names[i]);
        assert_non_null(model);
        assert_false(model->export_expected);
        assert_true(model->default_baud > 0);
    }
    assert_null(drv_model_find("nope"));
    assert_null(drv_model_at(13));
    const struct drv_model *xintai = drv_model_find("xintai-water");
    assert_non_null(xintai->valve);
    assert_int_equal(xintai->valve->address, 0x001C);
    assert_int_equal(drv_model_find("notifier-gw")->kind, DRV_KIND_FIRE_PANEL);
    /* Valve status: neither bit -> moving, both -> unknown, closed + fault. */
    struct drv_plan *plan = build("xintai-water", NULL);
    uint16_t *regs = calloc(drv_plan_register_count(plan), sizeof *regs);
    bool ok[2] = {true, false};
    struct drv_reading reading;
    long at = buffer_index(plan, 3, 0x001C);
    const uint16_t words[3] = {0x0000, 0x0003, 0x0006};
    const double states[3] = {DRV_VALVE_MOVING, DRV_VALVE_UNKNOWN, DRV_VALVE_CLOSED};
    for (int i = 0; i < 3; i++) {
        regs[at] = words[i];
        drv_decode(plan, regs, ok, &reading, NULL);
        assert_float_equal(reading.value[DRV_Q_VALVE], states[i], 0);
    }
    assert_float_equal(reading.value[DRV_Q_VALVE_FAULT], 1, 0);
    free(regs);
    drv_plan_free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdm120_plan),
        cmocka_unit_test(test_ddsu666_one_block),
        cmocka_unit_test(test_function_override),
        cmocka_unit_test(test_word_order_override),
        cmocka_unit_test(test_address_base),
        cmocka_unit_test(test_panel_eight_zones),
        cmocka_unit_test(test_panel_scattered_zones),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_round_trip_every_model),
        cmocka_unit_test(test_panel_round_trip),
        cmocka_unit_test(test_model_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
