/* test_drivers_cjt188.c - the CJ/T 188-2004 codec against byte vectors: a
 * vendor's published read and valve frames (meters 78330011223344 and
 * 78331505900569, checksums recomputed), replies built by hand from the
 * standard's 901F layout (volumes in m3 and litres, clock, status word in
 * both bit layouts), abnormal replies, bad checksums, a missing end byte,
 * FE preambles, frames split in two and noise, the read-address broadcast
 * and the configurable DI byte order and valve codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cnproto.h"

static const uint8_t meter_a[7] = {0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78};
static const uint8_t meter_b[7] = {0x69, 0x05, 0x90, 0x05, 0x15, 0x33, 0x78};

/* 901F reply of meter_a, SER 00: 556677.00 m3 now and on the settlement
 * day, 2015-05-11 22:01:31, ST 21 84 (a vendor's example; its printed
 * checksum did not add up, 13 is the sum). */
static const uint8_t read_reply[] = {
    0x68, 0x10, 0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78, 0x81, 0x16, 0x1F,
    0x90, 0x00, 0x00, 0x77, 0x66, 0x55, 0x2C, 0x00, 0x77, 0x66, 0x55, 0x2C,
    0x31, 0x01, 0x22, 0x11, 0x05, 0x15, 0x20, 0x21, 0x84, 0x13, 0x16};

static void scan_whole(const uint8_t *buf, size_t len, struct cjt188_frame *frame)
{
    struct cn_scan scan;
    cjt188_scan(buf, len, frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, len);
}

static void test_read_request(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.preamble_count = 4;
    uint8_t address[7];
    assert_int_equal(cn_address_parse("78330011223344", 7, address), EST_OK);
    assert_memory_equal(address, meter_a, 7);
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_read(&options, CJT188_COLD_WATER, address,
                                       CJT188_DI_READ_METER, 0x00, out, sizeof out, &len),
                     EST_OK);
    static const uint8_t expected[] = {0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x10, 0x44,
                                       0x33, 0x22, 0x11, 0x00, 0x33, 0x78, 0x01,
                                       0x03, 0x1F, 0x90, 0x00, 0x80, 0x16};
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(out, expected, sizeof expected);

    /* Meters that take DI0 = 90. */
    options.di_order = CJT188_DI_HIGH_FIRST;
    options.preamble_count = 0;
    assert_int_equal(cjt188_build_read(&options, CJT188_COLD_WATER, address,
                                       CJT188_DI_READ_METER, 0x00, out, sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, sizeof expected - 4);
    assert_int_equal(out[11], 0x90);
    assert_int_equal(out[12], 0x1F);
    assert_int_equal(out[14], 0x80); /* the sum does not depend on the order */
}

static void test_read_reply(void **state)
{
    (void)state;
    struct cjt188_frame frame;
    scan_whole(read_reply, sizeof read_reply, &frame);
    assert_int_equal(frame.type, CJT188_COLD_WATER);
    assert_int_equal(frame.length, 22);
    struct cjt188_options options;
    cjt188_options_init(&options);
    struct cjt188_meter_data data;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_OK);
    assert_true(data.current.known);
    assert_int_equal(data.current.unit, 0x2C);
    assert_true(data.current.value == 556677.0);
    assert_true(data.current.m3 == 556677.0);
    assert_true(data.settlement.m3 == 556677.0);
    assert_true(data.time.valid);
    assert_int_equal(data.time.year, 2015);
    assert_int_equal(data.time.month, 5);
    assert_int_equal(data.time.day, 11);
    assert_int_equal(data.time.hour, 22);
    assert_int_equal(data.time.minute, 1);
    assert_int_equal(data.time.second, 31);
    /* ST0 = 21: low bits 01 = closed, D2 clear. */
    assert_int_equal(data.status.valve, CJT188_VALVE_CLOSED);
    assert_false(data.status.battery_low);
    assert_int_equal(data.status.raw[0], 0x21);
    assert_int_equal(data.status.raw[1], 0x84);

    /* The same byte in the high-bit layout: D6-D7 00 = open, D5 battery low. */
    options.status_layout = CJT188_STATUS_HIGH_BITS;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_ANY_TYPE, NULL, 0x00, &data,
                                             NULL),
                     EST_OK);
    assert_int_equal(data.status.valve, CJT188_VALVE_OPEN);
    assert_true(data.status.battery_low);
}

static void test_read_reply_checks(void **state)
{
    (void)state;
    struct cjt188_frame frame;
    scan_whole(read_reply, sizeof read_reply, &frame);
    struct cjt188_options options;
    cjt188_options_init(&options);
    struct cjt188_meter_data data;
    /* Another SER, type, meter, or the other DI order: not our reply. */
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x01,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_HOT_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_b, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    options.di_order = CJT188_DI_HIGH_FIRST;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    cjt188_options_init(&options);
    /* Our request (echo) is not a reply; a short reply is wrong. */
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_read(&options, CJT188_COLD_WATER, meter_a,
                                       CJT188_DI_READ_METER, 0x00, out, sizeof out, &len),
                     EST_OK);
    scan_whole(out + 2, len - 2, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    assert_int_equal(cjt188_build_frame(&options, CJT188_COLD_WATER, meter_a, 0x81,
                                        read_reply + 11, 21, out, sizeof out, &len),
                     EST_OK);
    scan_whole(out, len, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
    /* A bad BCD digit in the volume. */
    uint8_t body[22];
    memcpy(body, read_reply + 11, sizeof body);
    body[4] = 0x7A;
    assert_int_equal(cjt188_build_frame(&options, CJT188_COLD_WATER, meter_a, 0x81, body,
                                        sizeof body, out, sizeof out, &len),
                     EST_OK);
    scan_whole(out, len, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_PROTOCOL);
}

static void test_litres_and_unknown_unit(void **state)
{
    (void)state;
    /* SER 07, 1234.56 L now, 1000.00 L on the settlement day,
     * 2026-12-07 08:30:00, ST 04 00 (open, battery low). */
    static const uint8_t litres[] = {
        0x68, 0x10, 0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78, 0x81, 0x16, 0x1F,
        0x90, 0x07, 0x56, 0x34, 0x12, 0x00, 0x29, 0x00, 0x00, 0x10, 0x00, 0x29,
        0x00, 0x30, 0x08, 0x07, 0x12, 0x26, 0x20, 0x04, 0x00, 0xB3, 0x16};
    struct cjt188_frame frame;
    scan_whole(litres, sizeof litres, &frame);
    struct cjt188_options options;
    cjt188_options_init(&options);
    struct cjt188_meter_data data;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x07,
                                             &data, NULL),
                     EST_OK);
    assert_int_equal(data.ser, 7);
    assert_true(data.current.value == 1234.56);
    assert_true(data.current.m3 == 1.23456);
    assert_true(data.settlement.m3 == 1.0);
    assert_int_equal(data.time.year, 2026);
    assert_int_equal(data.time.month, 12);
    assert_int_equal(data.time.hour, 8);
    assert_int_equal(data.time.minute, 30);
    assert_int_equal(data.status.valve, CJT188_VALVE_OPEN);
    assert_true(data.status.battery_low);

    /* Unit 2B is not in the table: the rest is still decoded. */
    static const uint8_t unknown[] = {
        0x68, 0x10, 0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78, 0x81, 0x16, 0x1F,
        0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x2B, 0x00, 0x01, 0x00, 0x00, 0x2C,
        0x00, 0x00, 0x00, 0x01, 0x01, 0x26, 0x20, 0x00, 0x00, 0xB4, 0x16};
    scan_whole(unknown, sizeof unknown, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_ERR_NOTFOUND);
    assert_false(data.current.known);
    assert_true(data.current.value == 1.0);
    assert_int_equal(data.current.unit, 0x2B);
    assert_true(data.settlement.known);
    assert_true(data.settlement.m3 == 1.0);
    assert_true(data.time.valid);
    assert_int_equal(data.time.year, 2026);

    /* A site whose meters use 2B for decilitres says so in its table. */
    static const struct cjt188_unit site_units[] = {{0x2B, "dL", 0.0001}, {0x2C, "m3", 1.0}};
    options.units = site_units;
    options.nunits = 2;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_OK);
    assert_true(data.current.m3 == 0.0001);
    assert_null(cjt188_unit_find(&options, 0x29));
    assert_non_null(cjt188_unit_find(NULL, 0x29));
    assert_string_equal(cjt188_unit_find(NULL, 0x2C)->name, "m3");
    /* Energy units are known codes but not volumes. */
    assert_true(cjt188_unit_find(NULL, 0x05)->m3_per_unit == 0.0);
    assert_non_null(cjt188_unit_at(cjt188_unit_count() - 1));
    assert_null(cjt188_unit_at(cjt188_unit_count()));
}

static void test_bad_clock_is_not_fatal(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    uint8_t body[22];
    memcpy(body, read_reply + 11, sizeof body);
    body[13 + 4] = 0x13; /* month 13 */
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_frame(&options, CJT188_COLD_WATER, meter_a, 0x81, body,
                                        sizeof body, out, sizeof out, &len),
                     EST_OK);
    struct cjt188_frame frame;
    scan_whole(out + 2, len - 2, &frame);
    struct cjt188_meter_data data;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, NULL),
                     EST_OK);
    assert_false(data.time.valid);
    assert_true(data.current.m3 == 556677.0);
}

static void test_abnormal_reply(void **state)
{
    (void)state;
    /* C = C1, L = 3: SER 00, ST 03 00 (valve abnormal). */
    static const uint8_t abnormal[] = {0x68, 0x10, 0x44, 0x33, 0x22, 0x11, 0x00, 0x33,
                                       0x78, 0xC1, 0x03, 0x00, 0x03, 0x00, 0x94, 0x16};
    struct cjt188_frame frame;
    scan_whole(abnormal, sizeof abnormal, &frame);
    struct cjt188_options options;
    cjt188_options_init(&options);
    struct cjt188_meter_data data;
    struct cjt188_abnormal why;
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, &why),
                     EST_ERR_EXCEPTION);
    assert_true(why.has_ser);
    assert_true(why.has_status);
    assert_int_equal(why.status.valve, CJT188_VALVE_ABNORMAL);
    /* An abnormal reply to another SER is not ours. */
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x05,
                                             &data, &why),
                     EST_ERR_PROTOCOL);
    /* With DI in front (DI SER ST), and with no data at all. */
    static const uint8_t with_di[] = {0x1F, 0x90, 0x00, 0x04, 0x00};
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_frame(&options, CJT188_COLD_WATER, meter_a, 0xC1, with_di,
                                        sizeof with_di, out, sizeof out, &len),
                     EST_OK);
    scan_whole(out + 2, len - 2, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, &why),
                     EST_ERR_EXCEPTION);
    assert_true(why.status.battery_low);
    assert_int_equal(cjt188_build_frame(&options, CJT188_COLD_WATER, meter_a, 0xC1, NULL, 0, out,
                                        sizeof out, &len),
                     EST_OK);
    scan_whole(out + 2, len - 2, &frame);
    assert_int_equal(cjt188_parse_read_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x00,
                                             &data, &why),
                     EST_ERR_EXCEPTION);
    assert_false(why.has_ser);
    assert_false(why.has_status);
}

static void test_valve(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.preamble_count = 4;
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    /* The vendor's open and close frames for meter 78331505900569, SER 01. */
    assert_int_equal(cjt188_build_valve(&options, CJT188_COLD_WATER, meter_b, true, 0x01, out,
                                        sizeof out, &len),
                     EST_OK);
    static const uint8_t open[] = {0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x10, 0x69, 0x05, 0x90, 0x05,
                                   0x15, 0x33, 0x78, 0x04, 0x04, 0x17, 0xA0, 0x01, 0x55, 0x50,
                                   0x16};
    assert_int_equal(len, sizeof open);
    assert_memory_equal(out, open, sizeof open);
    assert_int_equal(cjt188_build_valve(&options, CJT188_COLD_WATER, meter_b, false, 0x01, out,
                                        sizeof out, &len),
                     EST_OK);
    assert_int_equal(out[18], 0x99);
    assert_int_equal(out[19], 0x94);

    /* Its reply: C = 84, L = 5, A017 SER ST (00 00 = open); sum 7C as printed. */
    static const uint8_t reply[] = {0x68, 0x10, 0x69, 0x05, 0x90, 0x05, 0x15, 0x33, 0x78,
                                    0x84, 0x05, 0x17, 0xA0, 0x01, 0x00, 0x00, 0x7C, 0x16};
    struct cjt188_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    struct cjt188_status status;
    bool has_status = false;
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_COLD_WATER, meter_b, 0x01,
                                              &status, &has_status, NULL),
                     EST_OK);
    assert_true(has_status);
    assert_int_equal(status.valve, CJT188_VALVE_OPEN);
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_COLD_WATER, meter_b, 0x02,
                                              &status, &has_status, NULL),
                     EST_ERR_PROTOCOL);
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_COLD_WATER, meter_a, 0x01,
                                              &status, &has_status, NULL),
                     EST_ERR_PROTOCOL);

    /* Without ST. */
    static const uint8_t bare[] = {0x68, 0x10, 0x69, 0x05, 0x90, 0x05, 0x15, 0x33,
                                   0x78, 0x84, 0x03, 0x17, 0xA0, 0x01, 0x7A, 0x16};
    scan_whole(bare, sizeof bare, &frame);
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_COLD_WATER, meter_b, 0x01,
                                              &status, &has_status, NULL),
                     EST_OK);
    assert_false(has_status);

    /* Refused (C = C4): SER 01, ST 04 00 = battery low. */
    static const uint8_t refused[] = {0x68, 0x10, 0x69, 0x05, 0x90, 0x05, 0x15, 0x33,
                                      0x78, 0xC4, 0x03, 0x01, 0x04, 0x00, 0x07, 0x16};
    scan_whole(refused, sizeof refused, &frame);
    struct cjt188_abnormal why;
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_COLD_WATER, meter_b, 0x01,
                                              &status, &has_status, &why),
                     EST_ERR_EXCEPTION);
    assert_true(why.status.battery_low);

    /* A 901F reply is not a valve reply. */
    scan_whole(read_reply, sizeof read_reply, &frame);
    assert_int_equal(cjt188_parse_valve_reply(&options, &frame, CJT188_ANY_TYPE, NULL, 0x00,
                                              &status, &has_status, NULL),
                     EST_ERR_PROTOCOL);

    /* Vendor-specific valve codes. */
    options.valve_open_code = 0x5A;
    assert_int_equal(cjt188_build_valve(&options, CJT188_COLD_WATER, meter_b, true, 0x01, out,
                                        sizeof out, &len),
                     EST_OK);
    assert_int_equal(out[18], 0x5A);
}

static void test_status_layouts(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    const enum cjt188_valve valves[] = {CJT188_VALVE_OPEN, CJT188_VALVE_CLOSED,
                                        CJT188_VALVE_ABNORMAL};
    for (int layout = 0; layout < 2; layout++) {
        options.status_layout = (enum cjt188_status_layout)layout;
        for (size_t v = 0; v < 3; v++)
            for (int battery = 0; battery < 2; battery++) {
                uint8_t st[2];
                cjt188_status_encode(&options, valves[v], battery, st);
                struct cjt188_status status;
                cjt188_status_decode(&options, st, &status);
                assert_int_equal(status.valve, valves[v]);
                assert_int_equal(status.battery_low, battery);
            }
    }
    uint8_t st[2];
    options.status_layout = CJT188_STATUS_LOW_BITS;
    cjt188_status_encode(&options, CJT188_VALVE_CLOSED, true, st);
    assert_int_equal(st[0], 0x05);
    options.status_layout = CJT188_STATUS_HIGH_BITS;
    cjt188_status_encode(&options, CJT188_VALVE_CLOSED, true, st);
    assert_int_equal(st[0], 0x60);
    cjt188_status_encode(&options, CJT188_VALVE_ABNORMAL, false, st);
    assert_int_equal(st[0], 0xC0);
    /* 10 in the valve bits is not defined: abnormal. */
    static const uint8_t two[2] = {0x02, 0x00};
    struct cjt188_status status;
    options.status_layout = CJT188_STATUS_LOW_BITS;
    cjt188_status_decode(&options, two, &status);
    assert_int_equal(status.valve, CJT188_VALVE_ABNORMAL);
}

static void test_read_address(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.preamble_count = 0;
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_read_address(&options, CJT188_COLD_WATER, 0x05, out, sizeof out,
                                               &len),
                     EST_OK);
    static const uint8_t expected[] = {0x68, 0x10, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
                                       0xAA, 0x03, 0x03, 0x0A, 0x81, 0x05, 0xB4, 0x16};
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(out, expected, sizeof expected);

    static const uint8_t reply[] = {0x68, 0x10, 0x44, 0x33, 0x22, 0x11, 0x00, 0x33,
                                    0x78, 0x83, 0x03, 0x0A, 0x81, 0x05, 0xE3, 0x16};
    struct cjt188_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    uint8_t type = 0, address[7];
    assert_int_equal(cjt188_parse_address_reply(&options, &frame, 0x05, &type, address, NULL),
                     EST_OK);
    assert_int_equal(type, CJT188_COLD_WATER);
    assert_memory_equal(address, meter_a, 7);
    char text[15];
    cn_address_format(address, 7, text);
    assert_string_equal(text, "78330011223344");
    assert_int_equal(cjt188_parse_address_reply(&options, &frame, 0x06, &type, address, NULL),
                     EST_ERR_PROTOCOL);
    /* A meter using another DI for it is configured so. */
    options.read_address_di = 0x8104;
    assert_int_equal(cjt188_parse_address_reply(&options, &frame, 0x05, &type, address, NULL),
                     EST_ERR_PROTOCOL);
}

static void test_bad_checksum_and_end(void **state)
{
    (void)state;
    uint8_t buf[sizeof read_reply];
    struct cjt188_frame frame;
    struct cn_scan scan;
    memcpy(buf, read_reply, sizeof buf);
    buf[sizeof buf - 2] ^= 0xFF;
    cjt188_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.bad_checksum, 1);
    assert_int_equal(scan.consumed, sizeof buf);

    memcpy(buf, read_reply, sizeof buf);
    buf[sizeof buf - 1] = 0x17;
    cjt188_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.bad_end, 1);
    assert_int_equal(scan.consumed, sizeof buf);

    /* Missing end byte followed by a good frame: resynchronised. */
    uint8_t two[2 * sizeof read_reply];
    memcpy(two, buf, sizeof buf);
    memcpy(two + sizeof buf, read_reply, sizeof read_reply);
    cjt188_scan(two, sizeof two, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof two);
    assert_int_equal(scan.bad_end, 1);
}

static void test_preamble_split_noise(void **state)
{
    (void)state;
    struct cjt188_frame frame;
    struct cn_scan scan;
    /* Noise (with stray 68s), a preamble, then the frame in two reads. */
    static const uint8_t noise[] = {0x00, 0x68, 0x68, 0x16, 0xFF, 0x55, 0xFE, 0xFE, 0xFE};
    uint8_t rx[128];
    memcpy(rx, noise, sizeof noise);
    size_t have = sizeof noise;
    memcpy(rx + have, read_reply, 10);
    have += 10;
    cjt188_scan(rx, have, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    /* Everything before the first 68 goes; the stray 68s may still be
     * frame starts until enough bytes prove otherwise. */
    assert_int_equal(scan.consumed, 1);
    memmove(rx, rx + scan.consumed, have - scan.consumed);
    have -= scan.consumed;
    memcpy(rx + have, read_reply + 10, sizeof read_reply - 10);
    have += sizeof read_reply - 10;
    cjt188_scan(rx, have, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, have);
    assert_memory_equal(frame.address, meter_a, 7);
    assert_int_equal(frame.data[2], 0x00);

    for (size_t cut = 1; cut < sizeof read_reply; cut++) {
        cjt188_scan(read_reply, cut, &frame, &scan);
        assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
        assert_int_equal(scan.consumed, 0);
    }
}

static void test_build_limits(void **state)
{
    (void)state;
    struct cjt188_options options;
    cjt188_options_init(&options);
    uint8_t out[CJT188_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(cjt188_build_read(&options, CJT188_COLD_WATER, meter_a,
                                       CJT188_DI_READ_METER, 0, out, 17, &len),
                     EST_ERR_RANGE);
    assert_int_equal(cjt188_build_read(&options, CJT188_COLD_WATER, meter_a,
                                       CJT188_DI_READ_METER, 0, out, 18, &len),
                     EST_OK);
    options.preamble_count = CN_MAX_PREAMBLE;
    uint8_t data[CN_MAX_DATA];
    memset(data, 0x68, sizeof data);
    assert_int_equal(cjt188_build_frame(&options, CJT188_GAS, meter_a, 0x81, data, sizeof data,
                                        out, sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, CJT188_FRAME_MAX);
    struct cjt188_frame frame;
    scan_whole(out, len, &frame);
    assert_int_equal(frame.type, CJT188_GAS);
    assert_memory_equal(frame.data, data, sizeof data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_request),
        cmocka_unit_test(test_read_reply),
        cmocka_unit_test(test_read_reply_checks),
        cmocka_unit_test(test_litres_and_unknown_unit),
        cmocka_unit_test(test_bad_clock_is_not_fatal),
        cmocka_unit_test(test_abnormal_reply),
        cmocka_unit_test(test_valve),
        cmocka_unit_test(test_status_layouts),
        cmocka_unit_test(test_read_address),
        cmocka_unit_test(test_bad_checksum_and_end),
        cmocka_unit_test(test_preamble_split_noise),
        cmocka_unit_test(test_build_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
