/* test_sim_cnproto.c - the simulated DL/T 645 and CJ/T 188 meters, driven
 * through the gateway's codecs: every request the codecs build is answered
 * with a reply they accept and decode to the meter's state (round trip),
 * and the fault answers (abnormal, silent, bad checksum), unknown items,
 * other addresses, broadcasts, valve commands and refusals behave as the
 * protocols say. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cnproto.h"
#include "sim_cnproto.h"

static void electricity_meter(struct sim_dlt645_meter *m)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(cn_address_parse("000000123456", 6, m->address), EST_OK);
    dlt645_options_init(&m->options);
    m->energy_total_kwh = 1530.25;
    m->energy_import_kwh = 1520.75;
    m->energy_export_kwh = 9.5;
    m->voltage_v = 229.8;
    m->current_a = 4.321;
    m->power_w = 987.6;
    m->power_factor = 0.987;
    m->frequency_hz = 50.01;
    m->meter_number = 123456;
}

/* Reads di from the simulated meter as the gateway would; returns the
 * decoding result, *value the decoded value. */
static est_err gateway_read(const struct sim_dlt645_meter *m, enum dlt645_variant variant,
                            const uint8_t address[6], uint32_t di, double *value,
                            struct dlt645_reply *reply)
{
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.variant = variant;
    uint8_t request[DLT645_FRAME_MAX], answer[DLT645_FRAME_MAX];
    size_t request_len = 0, answer_len = 0;
    assert_int_equal(dlt645_build_read(&options, address, di, request, sizeof request,
                                       &request_len),
                     EST_OK);
    assert_int_equal(sim_dlt645_handle(m, request, request_len, answer, sizeof answer,
                                       &answer_len),
                     EST_OK);
    if (answer_len == 0)
        return EST_ERR_TIMEOUT;
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(answer, answer_len, &frame, &scan);
    if (scan.result != CN_SCAN_FRAME)
        return EST_ERR_PROTOCOL;
    assert_int_equal(scan.consumed, answer_len);
    est_err err = dlt645_parse_read_reply(&options, &frame, address, di, reply);
    if (err != EST_OK)
        return err;
    const struct dlt645_point *point = dlt645_point_find(variant, di);
    assert_non_null(point);
    return dlt645_decode_point(point, reply->value, reply->value_len, value);
}

static void test_dlt645_round_trip(void **state)
{
    (void)state;
    struct sim_dlt645_meter m;
    electricity_meter(&m);
    struct dlt645_reply reply;
    double v = 0;
    const struct {
        uint32_t di;
        double expected;
    } items[] = {
        {0x00000000, 1530.25}, {0x00010000, 1520.75}, {0x00020000, 9.5},
        {0x02010100, 229.8},   {0x02020100, 4.321},   {0x02030000, 987.6},
        {0x02060000, 0.987},   {0x02800002, 50.01},   {0x04000402, 123456},
        {0x04000501, 0},
    };
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        assert_int_equal(gateway_read(&m, DLT645_2007, m.address, items[i].di, &v, &reply),
                         EST_OK);
        assert_true(v == items[i].expected);
    }
    /* Every 2007 item of the table is served. */
    for (size_t i = 0; i < dlt645_point_count(); i++) {
        const struct dlt645_point *p = dlt645_point_at(i);
        if (p->variant == DLT645_2007)
            assert_int_equal(gateway_read(&m, DLT645_2007, m.address, p->di, &v, &reply), EST_OK);
    }
}

static void test_dlt645_reverse_power(void **state)
{
    (void)state;
    struct sim_dlt645_meter m;
    electricity_meter(&m);
    m.power_w = -1234.5;
    m.current_a = -5.123;
    m.status_word_1 = 1u << 2; /* clock battery low */
    struct dlt645_reply reply;
    double v = 0;
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x02030000, &v, &reply), EST_OK);
    assert_true(v == -1234.5);
    /* Negative values travel with the sign bit. */
    assert_true(reply.value[2] & 0x80);
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x02020100, &v, &reply), EST_OK);
    assert_true(v == -5.123);
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x04000501, &v, &reply), EST_OK);
    assert_true((unsigned)v == (DLT645_STATUS1_POWER_REVERSE | 1u << 2));
}

static void test_dlt645_faults(void **state)
{
    (void)state;
    struct sim_dlt645_meter m;
    electricity_meter(&m);
    struct dlt645_reply reply;
    double v = 0;
    /* An item the meter does not have. */
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x02010200, &v, &reply),
                     EST_ERR_EXCEPTION);
    assert_int_equal(reply.error, DLT645_ERR_NO_DATA);
    /* Another meter's address: silence. */
    uint8_t other[6];
    assert_int_equal(cn_address_parse("000000654321", 6, other), EST_OK);
    assert_int_equal(gateway_read(&m, DLT645_2007, other, 0x00010000, &v, &reply),
                     EST_ERR_TIMEOUT);

    m.answer = SIM_CN_ABNORMAL;
    m.error_byte = DLT645_ERR_UNAUTHORIZED;
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x00010000, &v, &reply),
                     EST_ERR_EXCEPTION);
    assert_int_equal(reply.error, DLT645_ERR_UNAUTHORIZED);
    m.answer = SIM_CN_SILENT;
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x00010000, &v, &reply),
                     EST_ERR_TIMEOUT);
    m.answer = SIM_CN_BAD_CHECKSUM;
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x00010000, &v, &reply),
                     EST_ERR_PROTOCOL);

    /* A value the item cannot hold: abnormal, not a wrong number. */
    electricity_meter(&m);
    m.power_w = 123456.0; /* 123.456 kW > XX.XXXX */
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x02030000, &v, &reply),
                     EST_ERR_EXCEPTION);
    assert_int_equal(reply.error, DLT645_ERR_OTHER);
}

static void test_dlt645_stream_and_addresses(void **state)
{
    (void)state;
    struct sim_dlt645_meter m;
    electricity_meter(&m);
    m.options.preamble_count = 2;
    uint8_t answer[DLT645_FRAME_MAX];
    size_t answer_len = 0;
    /* Noise and preamble before the request; a truncated request. */
    static const uint8_t request[] = {0x00, 0x33, 0xFE, 0xFE, 0x68, 0x56, 0x34, 0x12, 0x00, 0x00,
                                      0x00, 0x68, 0x11, 0x04, 0x33, 0x33, 0x34, 0x33, 0x4E, 0x16};
    assert_int_equal(sim_dlt645_handle(&m, request, sizeof request, answer, sizeof answer,
                                       &answer_len),
                     EST_OK);
    assert_int_equal(answer_len, 2 + 20);
    assert_int_equal(answer[0], 0xFE);
    assert_int_equal(answer[2 + 8], 0x91);
    assert_int_equal(sim_dlt645_handle(&m, request, sizeof request - 1, answer, sizeof answer,
                                       &answer_len),
                     EST_ERR_PROTOCOL);
    assert_int_equal(answer_len, 0);
    assert_int_equal(sim_dlt645_handle(&m, request, sizeof request, answer, 10, &answer_len),
                     EST_ERR_RANGE);
    assert_int_equal(answer_len, 0);

    /* Read-address broadcast. */
    struct dlt645_options options;
    dlt645_options_init(&options);
    uint8_t req[DLT645_FRAME_MAX];
    size_t req_len = 0;
    assert_int_equal(dlt645_build_read_address(&options, req, sizeof req, &req_len), EST_OK);
    assert_int_equal(sim_dlt645_handle(&m, req, req_len, answer, sizeof answer, &answer_len),
                     EST_OK);
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(answer, answer_len, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    uint8_t address[6];
    assert_int_equal(dlt645_parse_address_reply(&frame, address), EST_OK);
    assert_memory_equal(address, m.address, 6);
    /* A reading from the broadcast address is not answered. */
    static const uint8_t aa[6] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    struct dlt645_reply reply;
    double v = 0;
    assert_int_equal(gateway_read(&m, DLT645_2007, aa, 0x00010000, &v, &reply), EST_ERR_TIMEOUT);
    /* Replies of other meters on the bus are ignored. */
    assert_int_equal(sim_dlt645_handle(&m, answer, answer_len, req, sizeof req, &req_len),
                     EST_OK);
    assert_int_equal(req_len, 0);
}

static void test_dlt645_1997(void **state)
{
    (void)state;
    struct sim_dlt645_meter m;
    electricity_meter(&m);
    m.options.variant = DLT645_1997;
    struct dlt645_reply reply;
    double v = 0;
    assert_int_equal(gateway_read(&m, DLT645_1997, m.address, 0x9010, &v, &reply), EST_OK);
    assert_true(v == 1520.75);
    assert_int_equal(gateway_read(&m, DLT645_1997, m.address, 0x9020, &v, &reply), EST_OK);
    assert_true(v == 9.5);
    assert_int_equal(gateway_read(&m, DLT645_1997, m.address, 0xB630, &v, &reply), EST_OK);
    assert_true(v == 987.6);
    /* A 2007 request to a 1997 meter: C=11 is no function it knows. */
    assert_int_equal(gateway_read(&m, DLT645_2007, m.address, 0x00010000, &v, &reply),
                     EST_ERR_EXCEPTION);
    assert_int_equal(reply.error, DLT645_ERR_OTHER);
}

static void water_meter(struct sim_cjt188_meter *w)
{
    memset(w, 0, sizeof *w);
    w->type = CJT188_COLD_WATER;
    assert_int_equal(cn_address_parse("78330011223344", 7, w->address), EST_OK);
    cjt188_options_init(&w->options);
    w->volume_m3 = 1234.56;
    w->settlement_volume_m3 = 1200.0;
    w->unit = 0x2C;
    w->clock = (struct cjt188_time){true, 2026, 12, 7, 8, 30, 15};
    w->valve = CJT188_VALVE_OPEN;
}

/* Sends req to the simulated water meter; scans the reply into *frame.
 * false when the meter said nothing. */
static bool exchange(struct sim_cjt188_meter *w, const uint8_t *req, size_t req_len,
                     struct cjt188_frame *frame, struct cn_scan *scan)
{
    uint8_t answer[CJT188_FRAME_MAX];
    size_t answer_len = 0;
    assert_int_equal(sim_cjt188_handle(w, req, req_len, answer, sizeof answer, &answer_len),
                     EST_OK);
    if (answer_len == 0)
        return false;
    cjt188_scan(answer, answer_len, frame, scan);
    return true;
}

static est_err water_read(struct sim_cjt188_meter *w, const struct cjt188_options *options,
                          uint8_t ser, struct cjt188_meter_data *data,
                          struct cjt188_abnormal *abnormal)
{
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_read(options, CJT188_COLD_WATER, w->address,
                                       CJT188_DI_READ_METER, ser, req, sizeof req, &len),
                     EST_OK);
    struct cjt188_frame frame;
    struct cn_scan scan;
    if (!exchange(w, req, len, &frame, &scan))
        return EST_ERR_TIMEOUT;
    if (scan.result != CN_SCAN_FRAME)
        return EST_ERR_PROTOCOL;
    return cjt188_parse_read_reply(options, &frame, CJT188_COLD_WATER, w->address, ser, data,
                                   abnormal);
}

static est_err water_valve(struct sim_cjt188_meter *w, bool open, uint8_t ser,
                           struct cjt188_status *status)
{
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_valve(&w->options, CJT188_COLD_WATER, w->address, open, ser, req,
                                        sizeof req, &len),
                     EST_OK);
    struct cjt188_frame frame;
    struct cn_scan scan;
    if (!exchange(w, req, len, &frame, &scan))
        return EST_ERR_TIMEOUT;
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    bool has_status = false;
    struct cjt188_abnormal abnormal;
    est_err err = cjt188_parse_valve_reply(&w->options, &frame, CJT188_COLD_WATER, w->address,
                                           ser, status, &has_status, &abnormal);
    if (err == EST_ERR_EXCEPTION)
        *status = abnormal.status;
    else if (err == EST_OK)
        assert_true(has_status);
    return err;
}

static void test_cjt188_round_trip(void **state)
{
    (void)state;
    struct sim_cjt188_meter w;
    water_meter(&w);
    struct cjt188_meter_data data;
    assert_int_equal(water_read(&w, &w.options, 0x21, &data, NULL), EST_OK);
    assert_int_equal(data.ser, 0x21);
    assert_true(data.current.m3 == 1234.56);
    assert_true(data.settlement.m3 == 1200.0);
    assert_true(data.time.valid);
    assert_int_equal(data.time.year, 2026);
    assert_int_equal(data.time.second, 15);
    assert_int_equal(data.status.valve, CJT188_VALVE_OPEN);
    assert_false(data.status.battery_low);

    /* A meter reporting in litres, high-bit status, DI sent 90 1F. */
    w.unit = 0x29;
    w.volume_m3 = 1.23456;
    w.settlement_volume_m3 = 1.0; /* 1200 m3 would not fit XXXXXX.XX litres */
    w.options.status_layout = CJT188_STATUS_HIGH_BITS;
    w.options.di_order = CJT188_DI_HIGH_FIRST;
    w.battery_low = true;
    assert_int_equal(water_read(&w, &w.options, 0x22, &data, NULL), EST_OK);
    assert_int_equal(data.current.unit, 0x29);
    assert_true(data.current.value == 1234.56);
    assert_true(data.current.m3 == 1.23456);
    assert_true(data.status.battery_low);
    assert_int_equal(data.status.raw[0], 0x20);
    /* The gateway configured for the other DI order gets no answer it
     * accepts: the meter sees an unknown DI and answers abnormally. */
    struct cjt188_options wrong;
    cjt188_options_init(&wrong);
    struct cjt188_abnormal abnormal;
    assert_int_equal(water_read(&w, &wrong, 0x23, &data, &abnormal), EST_ERR_EXCEPTION);
    assert_int_equal(abnormal.ser, 0x23);
}

static void test_cjt188_valve(void **state)
{
    (void)state;
    struct sim_cjt188_meter w;
    water_meter(&w);
    struct cjt188_status status;
    assert_int_equal(water_valve(&w, false, 0x01, &status), EST_OK);
    assert_int_equal(status.valve, CJT188_VALVE_CLOSED);
    assert_int_equal(w.valve, CJT188_VALVE_CLOSED);
    struct cjt188_meter_data data;
    assert_int_equal(water_read(&w, &w.options, 0x02, &data, NULL), EST_OK);
    assert_int_equal(data.status.valve, CJT188_VALVE_CLOSED);
    assert_int_equal(water_valve(&w, true, 0x03, &status), EST_OK);
    assert_int_equal(w.valve, CJT188_VALVE_OPEN);

    /* Low battery: the command is refused and the valve stays. */
    w.battery_low = true;
    w.refuse_valve_on_low_battery = true;
    assert_int_equal(water_valve(&w, false, 0x04, &status), EST_ERR_EXCEPTION);
    assert_true(status.battery_low);
    assert_int_equal(status.valve, CJT188_VALVE_OPEN);
    assert_int_equal(w.valve, CJT188_VALVE_OPEN);

    /* An unknown valve code is refused too. */
    w.battery_low = false;
    struct cjt188_options gateway = w.options;
    gateway.valve_close_code = 0x98;
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_valve(&gateway, CJT188_COLD_WATER, w.address, false, 0x05, req,
                                        sizeof req, &len),
                     EST_OK);
    struct cjt188_frame frame;
    struct cn_scan scan;
    assert_true(exchange(&w, req, len, &frame, &scan));
    assert_true(frame.control & CN_C_ABNORMAL);
    assert_int_equal(w.valve, CJT188_VALVE_OPEN);
}

static void test_cjt188_faults_and_addresses(void **state)
{
    (void)state;
    struct sim_cjt188_meter w;
    water_meter(&w);
    struct cjt188_meter_data data;
    struct cjt188_abnormal abnormal;
    w.answer = SIM_CN_ABNORMAL;
    w.valve = CJT188_VALVE_ABNORMAL;
    assert_int_equal(water_read(&w, &w.options, 0x09, &data, &abnormal), EST_ERR_EXCEPTION);
    assert_int_equal(abnormal.status.valve, CJT188_VALVE_ABNORMAL);
    w.answer = SIM_CN_SILENT;
    assert_int_equal(water_read(&w, &w.options, 0x09, &data, NULL), EST_ERR_TIMEOUT);
    w.answer = SIM_CN_BAD_CHECKSUM;
    assert_int_equal(water_read(&w, &w.options, 0x09, &data, NULL), EST_ERR_PROTOCOL);

    /* Other type or address: silence; read address broadcast: answered. */
    water_meter(&w);
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    struct cjt188_frame frame;
    struct cn_scan scan;
    assert_int_equal(cjt188_build_read(&w.options, CJT188_HOT_WATER, w.address,
                                       CJT188_DI_READ_METER, 0, req, sizeof req, &len),
                     EST_OK);
    assert_false(exchange(&w, req, len, &frame, &scan));
    uint8_t other[7];
    memcpy(other, w.address, 7);
    other[0] ^= 0x01;
    assert_int_equal(cjt188_build_read(&w.options, CJT188_COLD_WATER, other,
                                       CJT188_DI_READ_METER, 0, req, sizeof req, &len),
                     EST_OK);
    assert_false(exchange(&w, req, len, &frame, &scan));
    assert_int_equal(cjt188_build_read_address(&w.options, CJT188_ANY_TYPE, 0x44, req, sizeof req,
                                               &len),
                     EST_OK);
    assert_true(exchange(&w, req, len, &frame, &scan));
    uint8_t type = 0, address[7];
    assert_int_equal(cjt188_parse_address_reply(&w.options, &frame, 0x44, &type, address, NULL),
                     EST_OK);
    assert_int_equal(type, CJT188_COLD_WATER);
    assert_memory_equal(address, w.address, 7);
    /* A broadcast read of data is not answered. */
    static const uint8_t aa[7] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    assert_int_equal(cjt188_build_read(&w.options, CJT188_COLD_WATER, aa, CJT188_DI_READ_METER, 0,
                                       req, sizeof req, &len),
                     EST_OK);
    assert_false(exchange(&w, req, len, &frame, &scan));
    /* Truncated request. */
    uint8_t out[CJT188_FRAME_MAX];
    assert_int_equal(sim_cjt188_handle(&w, req, len - 1, out, sizeof out, &len),
                     EST_ERR_PROTOCOL);
    /* A unit the meter cannot express: abnormal. */
    w.unit = 0x05;
    assert_int_equal(water_read(&w, &w.options, 0x0A, &data, NULL), EST_ERR_EXCEPTION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlt645_round_trip),
        cmocka_unit_test(test_dlt645_reverse_power),
        cmocka_unit_test(test_dlt645_faults),
        cmocka_unit_test(test_dlt645_stream_and_addresses),
        cmocka_unit_test(test_dlt645_1997),
        cmocka_unit_test(test_cjt188_round_trip),
        cmocka_unit_test(test_cjt188_valve),
        cmocka_unit_test(test_cjt188_faults_and_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
