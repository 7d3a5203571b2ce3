/* test_sim_pdu.c - estate-sim's pure request handler: reads serve the driver
 * tables (decoded back with drv_decode_value), exceptions, valve and panel
 * writes, fault dispositions, broadcast, and the RTU wire helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_sim_fixture.h"

#include "sim_command.h"
#include "sim_config.h"
#include "sim_pdu.h"

static const char *const site =
    "sim = { seed = 7; start_time = \"2026-11-27T08:00:00+08:00\"; };\n"
    "endpoints = ( { name = \"a\"; type = \"tcp\"; listen = \"127.0.0.1:0\"; },\n"
    "  { name = \"r\"; type = \"rtu\"; link = \"/tmp/estate-sim-test/rtu\"; } );\n"
    "devices = (\n"
    "  { id = \"E1\"; endpoint = \"a\"; slave = 1; driver = \"sdm120\"; serial = 20260015; },\n"
    "  { id = \"E2\"; endpoint = \"a\"; slave = 2; driver = \"sdm120\"; word_order = \"CDAB\"; },\n"
    "  { id = \"E3\"; endpoint = \"a\"; slave = 3; driver = \"ddsu666\"; function = 4; },\n"
    "  { id = \"E4\"; endpoint = \"a\"; slave = 4; driver = \"dds238\"; },\n"
    "  { id = \"W1\"; endpoint = \"a\"; slave = 5; driver = \"xintai-water\"; occupied = false; },\n"
    "  { id = \"FP\"; endpoint = \"a\"; slave = 6; driver = \"notifier-gw\"; zones = 8; },\n"
    "  { id = \"E5\"; endpoint = \"a\"; slave = 7; driver = \"dtsu666\"; category = \"building\"; },\n"
    "  { id = \"R1\"; endpoint = \"r\"; slave = 1; driver = \"sdm120\"; }\n"
    ");\n";

static int setup_site(void **state)
{
    *state = sim_fixture_load(site, 1000);
    return 0;
}

static void request(struct sim_world *w, size_t ep, uint8_t slave, const uint8_t *pdu,
                    size_t len, int64_t mono, struct sim_reply *out)
{
    sim_pdu_handle(w, ep, slave, pdu, len, mono, out);
}

static void read_regs(struct sim_world *w, uint8_t slave, uint8_t fc, uint16_t addr,
                      uint16_t count, uint16_t *regs)
{
    uint8_t pdu[5] = {fc, (uint8_t)(addr >> 8), (uint8_t)addr, (uint8_t)(count >> 8),
                      (uint8_t)count};
    struct sim_reply r;
    request(w, 0, slave, pdu, 5, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.pdu[0], fc);
    assert_int_equal(r.pdu[1], count * 2);
    assert_int_equal(r.len, 2 + count * 2);
    for (uint16_t i = 0; i < count; i++)
        regs[i] = (uint16_t)(r.pdu[2 + 2 * i] << 8 | r.pdu[3 + 2 * i]);
}

static void expect_exception(struct sim_world *w, size_t ep, uint8_t slave, const uint8_t *pdu,
                             size_t len, uint8_t code)
{
    struct sim_reply r;
    request(w, ep, slave, pdu, len, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.len, 2);
    assert_int_equal(r.pdu[0], pdu[0] | 0x80);
    assert_int_equal(r.pdu[1], code);
}

/* Every table point of dev, read over the wire at its effective address,
 * decodes to the value the device shows (within float32 precision). */
static void check_points(void **state, const char *id)
{
    struct sim_device *dev = device(state, id);
    struct sim_world *w = world_of(state);
    for (size_t i = 0; i < dev->model->npoints; i++) {
        const struct drv_point *pt = &dev->model->points[i];
        if (pt->status != NULL)
            continue;
        uint8_t fc;
        uint16_t addr;
        enum drv_word_order order;
        drv_point_effective(dev->model, &dev->options, i, &fc, &addr, &order);
        uint16_t regs[2];
        read_regs(w, dev->slave, fc, addr, (uint16_t)drv_type_regs(pt->type), regs);
        double got = drv_decode_value(regs, pt->type, order, pt->scale);
        double want = dev->value[pt->quantity];
        double wire;
        assert_true(sim_device_wire_value(dev, i, &wire));
        assert_true(got == wire);
        double tol = pt->type == DRV_TYPE_F32 ? 1e-6 * (want < 0 ? -want : want) + 1e-6
                                              : pt->scale;
        if (!(got >= want - tol && got <= want + tol))
            fail_msg("%s %s: wire %f, device %f", id, drv_quantity_name(pt->quantity), got, want);
    }
}

static void test_reads_serve_tables(void **state)
{
    check_points(state, "E1");
    check_points(state, "E2");
    check_points(state, "E3");
    check_points(state, "E4");
    check_points(state, "W1");
    check_points(state, "E5");
    assert_int_equal(device(state, "E1")->value[DRV_Q_SERIAL], 20260015);
}

static void test_word_order_override(void **state)
{
    struct sim_device *dev = device(state, "E2");
    uint16_t regs[2];
    read_regs(world_of(state), dev->slave, 4, 0x0000, 2, regs); /* voltage, CDAB */
    double cdab = drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_CDAB, 1.0);
    double abcd = drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0);
    assert_true(cdab > 215 && cdab < 235);
    assert_false(abcd > 215 && abcd < 235);
}

static void test_function_override_and_zero_fill(void **state)
{
    struct sim_device *dev = device(state, "E3"); /* ddsu666 forced to FC04 */
    uint16_t regs[16];
    read_regs(world_of(state), dev->slave, 3, 0x2000, 16, regs);
    for (int i = 0; i < 16; i++)
        assert_int_equal(regs[i], 0);
    read_regs(world_of(state), dev->slave, 4, 0x2000, 2, regs);
    assert_true(drv_decode_value(regs, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0) > 200);
    /* partial overlap: the second word of the voltage alone */
    uint16_t all[2], tail[1];
    read_regs(world_of(state), dev->slave, 4, 0x2000, 2, all);
    read_regs(world_of(state), dev->slave, 4, 0x2001, 1, tail);
    assert_int_equal(all[1], tail[0]);
    /* holes read as 0, the full 125 registers are allowed */
    uint16_t big[125];
    read_regs(world_of(state), device(state, "E1")->slave, 4, 0x0100, 125, big);
}

static void test_exceptions(void **state)
{
    struct sim_world *w = world_of(state);
    const uint8_t bad_fc[] = {0x2B, 0x0E, 0x01, 0x00};
    expect_exception(w, 0, 1, bad_fc, sizeof bad_fc, SIM_EX_ILLEGAL_FUNCTION);
    const uint8_t zero[] = {0x03, 0x00, 0x00, 0x00, 0x00};
    expect_exception(w, 0, 1, zero, sizeof zero, SIM_EX_ILLEGAL_VALUE);
    const uint8_t too_many[] = {0x04, 0x00, 0x00, 0x00, 126};
    expect_exception(w, 0, 1, too_many, sizeof too_many, SIM_EX_ILLEGAL_VALUE);
    const uint8_t past_end[] = {0x04, 0xFF, 0xFF, 0x00, 0x02};
    expect_exception(w, 0, 1, past_end, sizeof past_end, SIM_EX_ILLEGAL_ADDRESS);
    const uint8_t short_read[] = {0x03, 0x00};
    expect_exception(w, 0, 1, short_read, sizeof short_read, SIM_EX_ILLEGAL_VALUE);
    const uint8_t write_unknown[] = {0x06, 0x00, 0x10, 0x00, 0x01};
    expect_exception(w, 0, 1, write_unknown, sizeof write_unknown, SIM_EX_ILLEGAL_ADDRESS);
    const uint8_t valve_bad_value[] = {0x06, 0x00, 0x1C, 0x00, 0x07};
    expect_exception(w, 0, 5, valve_bad_value, sizeof valve_bad_value, SIM_EX_ILLEGAL_VALUE);
    const uint8_t read[] = {0x03, 0x00, 0x00, 0x00, 0x02};
    expect_exception(w, 0, 99, read, sizeof read, SIM_EX_GATEWAY_TARGET);
    struct sim_reply r;
    request(w, 1, 99, read, sizeof read, 1000, &r); /* rtu: an absent slave is silent */
    assert_int_equal(r.kind, SIM_REPLY_NONE);
    assert_true(w->endpoints[0].stats.exceptions >= 8);
}

static void test_valve_closes_and_flow_stops(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *dev = device(state, "W1");
    struct sim_event ev = {.type = SIM_EV_FLOW, .flow_m3h = 0.3, .quantity = -1};
    char err[128];
    assert_int_equal(sim_device_apply_event(w, dev, &ev, 1000, err, sizeof err), EST_OK);
    int64_t t = w->last_advance_sim_ms + 60000;
    sim_world_advance(w, t, 1000);
    assert_true(dev->value[DRV_Q_FLOW_M3H] > 0.29);
    double before = dev->volume_m3;

    const uint8_t close[] = {0x06, 0x00, 0x1C, 0x00, 0x02};
    struct sim_reply r;
    request(w, 0, dev->slave, close, sizeof close, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_memory_equal(r.pdu, close, sizeof close);
    assert_int_equal(dev->valve, DRV_VALVE_MOVING);
    uint16_t status;
    read_regs(w, dev->slave, 3, 0x001C, 1, &status);
    assert_int_equal(status & 0x03, 0); /* neither open nor closed while moving */

    sim_world_advance(w, t + 3000, 1000 + SIM_VALVE_TRAVEL_MS);
    assert_int_equal(dev->valve, DRV_VALVE_CLOSED);
    read_regs(w, dev->slave, 3, 0x001C, 1, &status);
    assert_int_equal(status & 0x03, 0x02);
    double closed_at = dev->volume_m3;
    assert_true(closed_at >= before);
    sim_world_advance(w, t + 3600000, 5000);
    assert_true(dev->value[DRV_Q_FLOW_M3H] == 0.0);
    assert_true(dev->volume_m3 == closed_at);

    const uint8_t open[] = {0x06, 0x00, 0x1C, 0x00, 0x01};
    request(w, 0, dev->slave, open, sizeof open, 6000, &r);
    sim_world_advance(w, t + 3660000, 6000 + SIM_VALVE_TRAVEL_MS);
    assert_int_equal(dev->valve, DRV_VALVE_OPEN);
    assert_true(dev->value[DRV_Q_FLOW_M3H] > 0.29);
}

static void test_write_multiple_and_broadcast(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *dev = device(state, "W1");
    const uint8_t close16[] = {0x10, 0x00, 0x1C, 0x00, 0x01, 0x02, 0x00, 0x02};
    struct sim_reply r;
    request(w, 0, dev->slave, close16, sizeof close16, 100000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.len, 5);
    assert_int_equal(dev->valve_target, DRV_VALVE_CLOSED);
    const uint8_t open[] = {0x06, 0x00, 0x1C, 0x00, 0x01};
    request(w, 0, 0, open, sizeof open, 100000, &r); /* broadcast */
    assert_int_equal(r.kind, SIM_REPLY_NONE);
    assert_int_equal(dev->valve_target, DRV_VALVE_OPEN);
}

static void test_faults(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *dev = device(state, "E1");
    const uint8_t read[] = {0x04, 0x00, 0x00, 0x00, 0x02};
    struct sim_reply r;
    sim_device_set_fault(dev, SIM_FAULT_SILENT, 0, 0);
    request(w, 0, 1, read, sizeof read, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_NONE);
    sim_device_set_fault(dev, SIM_FAULT_EXCEPTION, 0, 0x0B);
    expect_exception(w, 0, 1, read, sizeof read, 0x0B);
    sim_device_set_fault(dev, SIM_FAULT_SLOW, 300, 0);
    request(w, 0, 1, read, sizeof read, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.delay_ms, 300);
    sim_device_set_fault(dev, SIM_FAULT_GARBAGE, 0, 0);
    request(w, 0, 1, read, sizeof read, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_GARBAGE);
    assert_int_equal(r.len, 6);
    sim_device_set_fault(dev, SIM_FAULT_CRC, 0, 0);
    request(w, 0, 1, read, sizeof read, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_CORRUPT);
    sim_device_set_fault(dev, SIM_FAULT_NONE, 0, 0);
    request(w, 0, 1, read, sizeof read, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.delay_ms, 0);
}

static void test_integer_counter_wraps(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *dev = device(state, "E4"); /* dds238: u32 x 0.01 kWh */
    struct sim_event ev = {.type = SIM_EV_SET, .quantity = DRV_Q_ENERGY_IMPORT_KWH,
                           .value = 42949672.96 + 5.0};
    char err[128];
    assert_int_equal(sim_device_apply_event(w, dev, &ev, 1000, err, sizeof err), EST_OK);
    uint16_t regs[2];
    read_regs(w, dev->slave, 3, 0x000A, 2, regs);
    double v = drv_decode_value(regs, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01);
    assert_true(v > 4.99 && v < 5.01);
}

static void test_panel_zones(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *dev = device(state, "FP");
    char err[128];
    const enum sim_zone_state states[] = {SIM_ZONE_ALARM, SIM_ZONE_FAULT, SIM_ZONE_DISABLED,
                                          SIM_ZONE_SUPERVISORY};
    const uint8_t bits[] = {DRV_ZONE_ALARM, DRV_ZONE_FAULT, DRV_ZONE_DISABLED,
                            DRV_ZONE_SUPERVISORY};
    for (int i = 0; i < 4; i++) {
        struct sim_event ev = {.type = SIM_EV_ZONE, .zone = 3 + i, .state = states[i]};
        assert_int_equal(sim_device_apply_event(w, dev, &ev, 1000, err, sizeof err), EST_OK);
    }
    uint16_t regs[8];
    read_regs(w, dev->slave, 3, drv_zone_address(dev->model, &dev->options, 0), 8, regs);
    assert_int_equal(drv_notifier_zone_decode(regs[0]), 0);
    for (int i = 0; i < 4; i++)
        assert_true(drv_notifier_zone_decode(regs[2 + i]) & bits[i]);
    struct sim_event bad = {.type = SIM_EV_ZONE, .zone = 9, .state = SIM_ZONE_ALARM};
    assert_int_not_equal(sim_device_apply_event(w, dev, &bad, 1000, err, sizeof err), EST_OK);
    /* panel reset (status register write 1) clears alarms, keeps faults */
    const uint8_t reset[] = {0x06, 0x25, 0x1B, 0x00, 0x01};
    struct sim_reply r;
    request(w, 0, dev->slave, reset, sizeof reset, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(dev->zones[2], SIM_ZONE_NORMAL);
    assert_int_equal(dev->zones[3], SIM_ZONE_FAULT);
}

static void test_crc_and_lengths(void **state)
{
    (void)state;
    const uint8_t frame[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
    assert_int_equal(sim_crc16(frame, sizeof frame), 0xCDC5); /* wire: C5 CD */
    const uint8_t fc16[] = {0x01, 0x10, 0x00, 0x1C, 0x00, 0x01, 0x02};
    assert_int_equal(sim_rtu_request_length(frame, 1), 0);
    assert_int_equal(sim_rtu_request_length(frame, 2), 8);
    assert_int_equal(sim_rtu_request_length(fc16, 6), 0);
    assert_int_equal(sim_rtu_request_length(fc16, 7), 11);
    const uint8_t odd[] = {0x01, 0x2B};
    assert_int_equal(sim_rtu_request_length(odd, 2), -1);
    assert_int_equal(sim_bits_per_char(8, 'N', 1), 10);
    assert_int_equal(sim_bits_per_char(8, 'E', 1), 11);
    assert_int_equal(sim_bits_per_char(8, 'N', 2), 11);
    assert_int_equal(sim_wire_time_us(8, 10, 9600), 8333);
}

/* Two devices set to one slave id on purpose (shares_slave): both answer
 * and their replies collide; with one silent the other answers alone. The
 * endpoint is an rtu_over_tcp one (RTU frames on a TCP listener). A second
 * device on an id without shares_slave stays a config error. */
static const char *const shared_site =
    "sim = { seed = 7; };\n"
    "endpoints = ( { name = \"c\"; type = \"rtu_over_tcp\"; listen = \"127.0.0.1:0\";\n"
    "                baud = 19200; } );\n"
    "devices = (\n"
    "  { id = \"A\"; endpoint = \"c\"; slave = 3; driver = \"sdm120\"; },\n"
    "  { id = \"B\"; endpoint = \"c\"; slave = 3; driver = \"dds238\"; shares_slave = true; }\n"
    ");\n";

static void test_shared_slave_replies_collide(void **state)
{
    (void)state;
    struct sim_setup *setup = sim_fixture_load(shared_site, 1000);
    struct sim_world *w = setup->world;
    assert_int_equal(w->endpoints[0].type, SIM_EP_RTU_OVER_TCP);
    assert_int_equal(w->endpoints[0].baud, 19200);
    static const uint8_t read_voltage[5] = {DRV_FC_INPUT, 0, 0, 0, 2};
    struct sim_reply r;
    request(w, 0, 3, read_voltage, sizeof read_voltage, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_CORRUPT);
    int a = sim_world_device_index(w, "A"), b = sim_world_device_index(w, "B");
    assert_int_equal(w->devices[a].requests, 1);
    assert_int_equal(w->devices[b].requests, 1);
    sim_device_set_fault(&w->devices[a], SIM_FAULT_SILENT, 0, 0);
    static const uint8_t read_dds238_voltage[5] = {DRV_FC_HOLDING, 0, 0x0C, 0, 1};
    request(w, 0, 3, read_dds238_voltage, sizeof read_dds238_voltage, 1000, &r);
    assert_int_equal(r.kind, SIM_REPLY_PDU);
    assert_int_equal(r.pdu[0], DRV_FC_HOLDING);
    assert_int_equal(w->devices[b].requests, 2);
    sim_setup_free(setup);

    char path[] = "/tmp/test_sim_shared_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text =
        "endpoints = ( { name = \"c\"; type = \"tcp\"; listen = \"127.0.0.1:0\"; } );\n"
        "devices = ( { id = \"A\"; endpoint = \"c\"; slave = 3; driver = \"sdm120\"; },\n"
        "  { id = \"B\"; endpoint = \"c\"; slave = 3; driver = \"sdm120\"; } );\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sim_config_errors errors = {0};
    setup = NULL;
    assert_int_equal(sim_config_load(path, NULL, 0, NULL, 1000, &setup, &errors),
                     EST_ERR_INVALID);
    unlink(path);
    assert_true(errors.count >= 1);
    assert_non_null(strstr(errors.messages[0], "slave 3 on c is already A"));
    sim_config_errors_free(&errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_slave_replies_collide),
        cmocka_unit_test_setup_teardown(test_reads_serve_tables, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_word_order_override, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_function_override_and_zero_fill, setup_site,
                                        teardown_site),
        cmocka_unit_test_setup_teardown(test_exceptions, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_valve_closes_and_flow_stops, setup_site,
                                        teardown_site),
        cmocka_unit_test_setup_teardown(test_write_multiple_and_broadcast, setup_site,
                                        teardown_site),
        cmocka_unit_test_setup_teardown(test_faults, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_integer_counter_wraps, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_panel_zones, setup_site, teardown_site),
        cmocka_unit_test(test_crc_and_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
