/* test_drivers_dlt645.c - the DL/T 645 codec against byte vectors: the
 * request of DOMAIN.md for meter 000000123456, a read log of a real meter
 * (000000000161: 0.26 kWh, 100.1 V), replies built by hand from the
 * standard's frame format (checksums computed separately), negative power
 * and current, abnormal replies, bad checksums, a missing end byte, FE
 * preambles, a frame split in two, noise and bogus headers before a frame,
 * the read-address broadcast, the 1997 variant, BCD and the item table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "cnproto.h"

static const uint8_t meter_123456[6] = {0x56, 0x34, 0x12, 0x00, 0x00, 0x00};

/* Scans buf expecting one frame that ends at its last byte. */
static void scan_whole(const uint8_t *buf, size_t len, struct dlt645_frame *frame)
{
    struct cn_scan scan;
    dlt645_scan(buf, len, frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, len);
}

static void test_request_forward_energy(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.preamble_count = 0;
    uint8_t address[6];
    assert_int_equal(cn_address_parse("000000123456", 6, address), EST_OK);
    assert_memory_equal(address, meter_123456, 6);
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(dlt645_build_read(&options, address, 0x00010000, out, sizeof out, &len),
                     EST_OK);
    /* CS = 68+56+34+12+68+11+04+33+33+34+33 mod 256 = 4E */
    static const uint8_t expected[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68,
                                       0x11, 0x04, 0x33, 0x33, 0x34, 0x33, 0x4E, 0x16};
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(out, expected, sizeof expected);

    options.preamble_count = 4;
    assert_int_equal(dlt645_build_read(&options, address, 0x00010000, out, sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, 4 + sizeof expected);
    static const uint8_t fe[4] = {0xFE, 0xFE, 0xFE, 0xFE};
    assert_memory_equal(out, fe, 4);
    assert_memory_equal(out + 4, expected, sizeof expected);
}

static void test_reply_forward_energy(void **state)
{
    (void)state;
    /* 123456.78 kWh: value 78 56 34 12, each +33 */
    static const uint8_t reply[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x91, 0x08,
                                    0x33, 0x33, 0x34, 0x33, 0xAB, 0x89, 0x67, 0x45, 0xB2, 0x16};
    struct dlt645_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    assert_int_equal(frame.control, 0x91);
    assert_int_equal(frame.length, 8);
    static const uint8_t plain[8] = {0x00, 0x00, 0x01, 0x00, 0x78, 0x56, 0x34, 0x12};
    assert_memory_equal(frame.data, plain, 8);

    struct dlt645_options options;
    dlt645_options_init(&options);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_OK);
    assert_false(r.abnormal);
    assert_int_equal(r.value_len, 4);
    const struct dlt645_point *point = dlt645_point_find(DLT645_2007, 0x00010000);
    assert_non_null(point);
    assert_string_equal(point->quantity, "energy_import_kwh");
    double kwh = 0;
    assert_int_equal(dlt645_decode_point(point, r.value, r.value_len, &kwh), EST_OK);
    assert_true(kwh == 123456.78);
}

static void test_real_meter_log(void **state)
{
    (void)state;
    /* A meter reading tool's log of meter 000000000161. */
    struct dlt645_options options;
    dlt645_options_init(&options);
    uint8_t address[6];
    assert_int_equal(cn_address_parse("000000000161", 6, address), EST_OK);
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    static const uint8_t request[] = {0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x61, 0x01, 0x00, 0x00, 0x00,
                                      0x00, 0x68, 0x11, 0x04, 0x33, 0x33, 0x34, 0x33, 0x14, 0x16};
    assert_int_equal(dlt645_build_read(&options, address, 0x00010000, out, sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, sizeof request);
    assert_memory_equal(out, request, sizeof request);

    static const uint8_t energy[] = {0x68, 0x61, 0x01, 0x00, 0x00, 0x00, 0x00, 0x68, 0x91, 0x08,
                                     0x33, 0x33, 0x34, 0x33, 0x59, 0x33, 0x33, 0x33, 0x8A, 0x16};
    struct dlt645_frame frame;
    scan_whole(energy, sizeof energy, &frame);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, address, 0x00010000, &r), EST_OK);
    double value = 0;
    assert_int_equal(dlt645_decode_point(dlt645_point_find(DLT645_2007, 0x00010000), r.value,
                                         r.value_len, &value),
                     EST_OK);
    assert_true(value == 0.26);

    static const uint8_t volt_request[] = {0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x61, 0x01,
                                           0x00, 0x00, 0x00, 0x00, 0x68, 0x11, 0x04,
                                           0x33, 0x34, 0x34, 0x35, 0x17, 0x16};
    assert_int_equal(dlt645_build_read(&options, address, 0x02010100, out, sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, sizeof volt_request);
    assert_memory_equal(out, volt_request, sizeof volt_request);
    static const uint8_t volts[] = {0x68, 0x61, 0x01, 0x00, 0x00, 0x00, 0x00, 0x68, 0x91,
                                    0x06, 0x33, 0x34, 0x34, 0x35, 0x34, 0x43, 0x10, 0x16};
    scan_whole(volts, sizeof volts, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, address, 0x02010100, &r), EST_OK);
    assert_int_equal(dlt645_decode_point(dlt645_point_find(DLT645_2007, 0x02010100), r.value,
                                         r.value_len, &value),
                     EST_OK);
    assert_true(value == 100.1);
}

static void test_negative_power_and_current(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    /* -1.2345 kW: 45 23 01 with the sign bit in the last byte -> 45 23 81 */
    static const uint8_t power[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x91, 0x07,
                                    0x33, 0x33, 0x36, 0x35, 0x78, 0x56, 0xB4, 0x57, 0x16};
    struct dlt645_frame frame;
    scan_whole(power, sizeof power, &frame);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x02030000, &r),
                     EST_OK);
    const struct dlt645_point *point = dlt645_point_find(DLT645_2007, 0x02030000);
    assert_non_null(point);
    assert_string_equal(point->quantity, "power_w");
    double w = 0;
    assert_int_equal(dlt645_decode_point(point, r.value, r.value_len, &w), EST_OK);
    assert_true(w == -1234.5);

    /* -5.123 A: 23 51 00 -> 23 51 80 */
    static const uint8_t current[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x91, 0x07,
                                      0x33, 0x34, 0x35, 0x35, 0x56, 0x84, 0xB3, 0x62, 0x16};
    scan_whole(current, sizeof current, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x02020100, &r),
                     EST_OK);
    double a = 0;
    assert_int_equal(dlt645_decode_point(dlt645_point_find(DLT645_2007, 0x02020100), r.value,
                                         r.value_len, &a),
                     EST_OK);
    assert_true(a == -5.123);
    /* Asking for the power item with the current frame: DI echo differs. */
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x02030000, &r),
                     EST_ERR_PROTOCOL);
}

static void test_abnormal_reply(void **state)
{
    (void)state;
    /* C = D1, L = 1, error byte 02 (no such data) + 33 */
    static const uint8_t reply[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68,
                                    0xD1, 0x01, 0x35, 0x73, 0x16};
    struct dlt645_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    struct dlt645_options options;
    dlt645_options_init(&options);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_ERR_EXCEPTION);
    assert_true(r.abnormal);
    assert_int_equal(r.error, DLT645_ERR_NO_DATA);
    assert_null(r.value);
}

static void test_wrong_meter_or_direction(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.preamble_count = 0;
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    /* Our own request echoed back (an RS-485 adapter with echo on). */
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x00010000, out, sizeof out, &len),
                     EST_OK);
    struct dlt645_frame frame;
    scan_whole(out, len, &frame);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_ERR_PROTOCOL);
    /* A reply from another meter. */
    static const uint8_t other[6] = {0x57, 0x34, 0x12, 0x00, 0x00, 0x00};
    uint8_t data[8] = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(dlt645_build_frame(&options, other, 0x91, data, sizeof data, out, sizeof out,
                                        &len),
                     EST_OK);
    scan_whole(out, len, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_ERR_PROTOCOL);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, NULL, 0x00010000, &r), EST_OK);
    /* A reply shorter than the DI. */
    assert_int_equal(dlt645_build_frame(&options, meter_123456, 0x91, data, 3, out, sizeof out,
                                        &len),
                     EST_OK);
    scan_whole(out, len, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_ERR_PROTOCOL);
    /* Follow-up flag (C = B1) is reported. */
    assert_int_equal(dlt645_build_frame(&options, meter_123456, 0xB1, data, 6, out, sizeof out,
                                        &len),
                     EST_OK);
    scan_whole(out, len, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x00010000, &r),
                     EST_OK);
    assert_true(r.follows);
    assert_int_equal(r.value_len, 2);
}

static const uint8_t good_reply[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x91, 0x08,
                                     0x33, 0x33, 0x34, 0x33, 0xAB, 0x89, 0x67, 0x45, 0xB2, 0x16};

static void test_bad_checksum(void **state)
{
    (void)state;
    uint8_t buf[sizeof good_reply];
    memcpy(buf, good_reply, sizeof buf);
    buf[18] ^= 0x01;
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.bad_checksum, 1);
    assert_int_equal(scan.bad_end, 0);
    assert_int_equal(scan.consumed, sizeof buf); /* nothing in it can start a frame */

    /* A corrupted data byte breaks the sum just the same. */
    memcpy(buf, good_reply, sizeof buf);
    buf[15] = 0x88;
    dlt645_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.bad_checksum, 1);

    /* A bad frame followed by a good one: the good one is found. */
    uint8_t two[2 * sizeof good_reply];
    memcpy(two, buf, sizeof buf);
    memcpy(two + sizeof buf, good_reply, sizeof good_reply);
    dlt645_scan(two, sizeof two, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof two);
    assert_int_equal(scan.bad_checksum, 1);
    assert_int_equal(frame.data[4], 0x78);
}

static void test_missing_end_byte(void **state)
{
    (void)state;
    uint8_t buf[sizeof good_reply];
    memcpy(buf, good_reply, sizeof buf);
    buf[19] = 0x00;
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.bad_end, 1);
    assert_int_equal(scan.bad_checksum, 0);
    assert_int_equal(scan.consumed, sizeof buf);

    /* Without its last byte the frame is only incomplete: keep it. */
    dlt645_scan(good_reply, sizeof good_reply - 1, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.consumed, 0);
    assert_int_equal(scan.bad_end + scan.bad_checksum, 0);
}

static void test_preamble(void **state)
{
    (void)state;
    uint8_t buf[4 + sizeof good_reply];
    memset(buf, 0xFE, 4);
    memcpy(buf + 4, good_reply, sizeof good_reply);
    struct dlt645_frame frame;
    scan_whole(buf, sizeof buf, &frame);
    assert_int_equal(frame.control, 0x91);

    /* Only preamble so far: dropped, nothing kept. */
    struct cn_scan scan;
    dlt645_scan(buf, 4, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.consumed, 4);
}

static void test_split_in_two_chunks(void **state)
{
    (void)state;
    /* The link's receive buffer as two reads arrive. */
    uint8_t rx[64];
    size_t have = 0;
    static const uint8_t first[] = {0xFE, 0xFE, 0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00};
    memcpy(rx, first, sizeof first);
    have = sizeof first;
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(rx, have, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.consumed, 2); /* the FE bytes */
    memmove(rx, rx + scan.consumed, have - scan.consumed);
    have -= scan.consumed;
    assert_int_equal(rx[0], 0x68);

    memcpy(rx + have, good_reply + 7, sizeof good_reply - 7);
    have += sizeof good_reply - 7;
    dlt645_scan(rx, have, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof good_reply);
    assert_memory_equal(frame.address, meter_123456, 6);

    /* Split at every point: the first part never yields a frame, the whole does. */
    for (size_t cut = 1; cut < sizeof good_reply; cut++) {
        dlt645_scan(good_reply, cut, &frame, &scan);
        assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
        assert_int_equal(scan.consumed, 0);
    }
}

static void test_noise_before_frame(void **state)
{
    (void)state;
    /* Line noise, a stray 68, the tail of someone else's frame. */
    static const uint8_t noise[] = {0x00, 0xFF, 0x68, 0x12, 0x16, 0x68, 0x33, 0xFE, 0xFE};
    uint8_t buf[sizeof noise + sizeof good_reply];
    memcpy(buf, noise, sizeof noise);
    memcpy(buf + sizeof noise, good_reply, sizeof good_reply);
    struct dlt645_frame frame;
    scan_whole(buf, sizeof buf, &frame);
    assert_int_equal(frame.length, 8);

    /* A noise header that claims 255 data bytes would hold the link until
     * a timeout; the complete frame after it is found all the same. */
    static const uint8_t bogus[] = {0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x91, 0xFF};
    uint8_t buf2[sizeof bogus + sizeof good_reply];
    memcpy(buf2, bogus, sizeof bogus);
    memcpy(buf2 + sizeof bogus, good_reply, sizeof good_reply);
    struct cn_scan scan;
    dlt645_scan(buf2, sizeof buf2, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof buf2);
    /* A broken header whose length (8) spans the start of the good frame:
     * its 20 bytes fail the checks, and the good frame inside them is found. */
    static const uint8_t spans[] = {0x68, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x68, 0x91, 0x08};
    uint8_t buf3[sizeof spans + sizeof good_reply];
    memcpy(buf3, spans, sizeof spans);
    memcpy(buf3 + sizeof spans, good_reply, sizeof good_reply);
    dlt645_scan(buf3, sizeof buf3, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof buf3);
    assert_int_equal(scan.bad_checksum + scan.bad_end, 1);
    assert_memory_equal(frame.address, meter_123456, 6);
    /* Alone, the bogus header is kept while it could still be a frame. */
    dlt645_scan(bogus, sizeof bogus, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_NEED_MORE);
    assert_int_equal(scan.consumed, 0);
}

static void test_two_frames_in_a_row(void **state)
{
    (void)state;
    uint8_t buf[2 * sizeof good_reply];
    memcpy(buf, good_reply, sizeof good_reply);
    memcpy(buf + sizeof good_reply, good_reply, sizeof good_reply);
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(buf, sizeof buf, &frame, &scan);
    assert_int_equal(scan.result, CN_SCAN_FRAME);
    assert_int_equal(scan.consumed, sizeof good_reply);
    scan_whole(buf + scan.consumed, sizeof buf - scan.consumed, &frame);
}

static void test_read_address(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(dlt645_build_read_address(&options, out, sizeof out, &len), EST_OK);
    static const uint8_t expected[] = {0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0xAA, 0xAA, 0xAA,
                                       0xAA, 0xAA, 0xAA, 0x68, 0x13, 0x00, 0xDF, 0x16};
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(out, expected, sizeof expected);

    static const uint8_t reply[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x93,
                                    0x06, 0x89, 0x67, 0x45, 0x33, 0x33, 0x33, 0xD3, 0x16};
    struct dlt645_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    uint8_t address[6];
    assert_int_equal(dlt645_parse_address_reply(&frame, address), EST_OK);
    assert_memory_equal(address, meter_123456, 6);
    char text[13];
    cn_address_format(address, 6, text);
    assert_string_equal(text, "000000123456");

    /* A read reply is not an address reply. */
    scan_whole(good_reply, sizeof good_reply, &frame);
    assert_int_equal(dlt645_parse_address_reply(&frame, address), EST_ERR_PROTOCOL);
    options.variant = DLT645_1997;
    assert_int_equal(dlt645_build_read_address(&options, out, sizeof out, &len), EST_ERR_INVALID);
}

static void test_variant_1997(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.variant = DLT645_1997;
    options.preamble_count = 0;
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x9010, out, sizeof out, &len),
                     EST_OK);
    /* C = 01, L = 2, DI 9010 sent 10 90 (+33 each) */
    static const uint8_t request[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68,
                                      0x01, 0x02, 0x43, 0xC3, 0x75, 0x16};
    assert_int_equal(len, sizeof request);
    assert_memory_equal(out, request, sizeof request);
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x00010000, out, sizeof out, &len),
                     EST_ERR_INVALID);

    /* 12.50 kWh: 50 12 00 00 */
    static const uint8_t reply[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68, 0x81, 0x06,
                                    0x43, 0xC3, 0x83, 0x45, 0x33, 0x33, 0x27, 0x16};
    struct dlt645_frame frame;
    scan_whole(reply, sizeof reply, &frame);
    struct dlt645_reply r;
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x9010, &r), EST_OK);
    double kwh = 0;
    assert_int_equal(dlt645_decode_point(dlt645_point_find(DLT645_1997, 0x9010), r.value,
                                         r.value_len, &kwh),
                     EST_OK);
    assert_true(kwh == 12.5);
    /* The same frame read as a 2007 reply is wrong (function 01, not 11). */
    struct dlt645_options v2007;
    dlt645_options_init(&v2007);
    assert_int_equal(dlt645_parse_read_reply(&v2007, &frame, meter_123456, 0x9010, &r),
                     EST_ERR_PROTOCOL);

    static const uint8_t abnormal[] = {0x68, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00, 0x68,
                                       0xC1, 0x01, 0x37, 0x65, 0x16};
    scan_whole(abnormal, sizeof abnormal, &frame);
    assert_int_equal(dlt645_parse_read_reply(&options, &frame, meter_123456, 0x9010, &r),
                     EST_ERR_EXCEPTION);
    assert_int_equal(r.error, 0x04);
}

static void test_bcd(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x78, 0x56, 0x34, 0x12};
    uint64_t n = 0;
    assert_int_equal(cn_bcd_to_uint(b, 4, &n), EST_OK);
    assert_int_equal(n, 12345678);
    double v = 0;
    assert_int_equal(cn_bcd_decode(b, 4, 2, false, &v), EST_OK);
    assert_true(v == 123456.78);
    static const uint8_t bad[] = {0x7A, 0x56};
    assert_int_equal(cn_bcd_decode(bad, 2, 1, false, &v), EST_ERR_PROTOCOL);
    static const uint8_t negative_zero[] = {0x00, 0x80};
    assert_int_equal(cn_bcd_decode(negative_zero, 2, 1, true, &v), EST_OK);
    assert_true(v == 0.0);
    /* Without a sign bit 0x80 is the digit 8. */
    assert_int_equal(cn_bcd_decode(negative_zero, 2, 1, false, &v), EST_OK);
    assert_true(v == 800.0);

    uint8_t out[4];
    assert_int_equal(cn_bcd_encode(226.1, 2, 1, false, out), EST_OK);
    assert_int_equal(out[0], 0x61);
    assert_int_equal(out[1], 0x22);
    assert_int_equal(cn_bcd_encode(-1.2345, 3, 4, true, out), EST_OK);
    static const uint8_t minus[] = {0x45, 0x23, 0x81};
    assert_memory_equal(out, minus, 3);
    assert_int_equal(cn_bcd_encode(-1.0, 3, 4, false, out), EST_ERR_RANGE);
    assert_int_equal(cn_bcd_encode(1000.0, 2, 1, false, out), EST_ERR_RANGE);
    assert_int_equal(cn_bcd_encode(80.0, 3, 4, true, out), EST_ERR_RANGE); /* needs bit 7 */
    assert_int_equal(cn_bcd_encode(79.9999, 3, 4, true, out), EST_OK);

    uint8_t address[6];
    assert_int_equal(cn_address_parse("12345", 6, address), EST_ERR_INVALID);
    assert_int_equal(cn_address_parse("00000012345x", 6, address), EST_ERR_INVALID);
    static const uint8_t aa[6] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    char text[13];
    cn_address_format(aa, 6, text);
    assert_string_equal(text, "AAAAAAAAAAAA");
}

static void test_point_table(void **state)
{
    (void)state;
    /* The formats this project relies on, as DL/T 645-2007 lists them. */
    struct expect {
        uint32_t di;
        uint8_t nbytes, decimals;
        bool sign_bit;
        const char *quantity;
        double scale;
        double sample; /* a value in SPEC units that must survive encode/decode */
    } rows[] = {
        {0x00010000, 4, 2, false, "energy_import_kwh", 1.0, 987654.32},
        {0x00020000, 4, 2, false, "energy_export_kwh", 1.0, 0.01},
        {0x02010100, 2, 1, false, "voltage_v", 1.0, 229.7},
        {0x02020100, 3, 3, true, "current_a", 1.0, -12.345},
        {0x02030000, 3, 4, true, "power_w", 1000.0, -2200.1},
        {0x02800002, 2, 2, false, "frequency_hz", 1.0, 49.98},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct dlt645_point *p = dlt645_point_find(DLT645_2007, rows[i].di);
        assert_non_null(p);
        assert_int_equal(p->encoding, DLT645_BCD);
        assert_int_equal(p->nbytes, rows[i].nbytes);
        assert_int_equal(p->decimals, rows[i].decimals);
        assert_int_equal(p->sign_bit, rows[i].sign_bit);
        assert_string_equal(p->quantity, rows[i].quantity);
        assert_true(p->scale == rows[i].scale);
        uint8_t bytes[8];
        assert_int_equal(dlt645_encode_point(p, rows[i].sample, bytes), EST_OK);
        double back = 0;
        assert_int_equal(dlt645_decode_point(p, bytes, p->nbytes, &back), EST_OK);
        assert_true(back == rows[i].sample);
        assert_int_equal(dlt645_decode_point(p, bytes, p->nbytes + 1u, &back), EST_ERR_PROTOCOL);
    }
    /* 100 kW does not fit XX.XXXX kW. */
    const struct dlt645_point *power = dlt645_point_find(DLT645_2007, 0x02030000);
    uint8_t bytes[3];
    assert_int_equal(dlt645_encode_point(power, 100000.0, bytes), EST_ERR_RANGE);

    /* Run status word 1: bits, low byte first; bit 4 = power reverse. */
    const struct dlt645_point *status = dlt645_point_find(DLT645_2007, 0x04000501);
    assert_non_null(status);
    assert_int_equal(status->encoding, DLT645_WORD);
    static const uint8_t word[] = {0x10, 0x00};
    double bits = 0;
    assert_int_equal(dlt645_decode_point(status, word, 2, &bits), EST_OK);
    assert_true(((unsigned)bits & DLT645_STATUS1_POWER_REVERSE) != 0);
    static const uint8_t high[] = {0x00, 0x01};
    assert_int_equal(dlt645_decode_point(status, high, 2, &bits), EST_OK);
    assert_true(bits == 256.0);

    assert_null(dlt645_point_find(DLT645_2007, 0x12345678));
    assert_null(dlt645_point_find(DLT645_1997, 0x00010000));
    assert_non_null(dlt645_point_find(DLT645_1997, 0x9020));
    for (size_t i = 0; i < dlt645_point_count(); i++)
        assert_non_null(dlt645_point_at(i)->quantity);
    assert_null(dlt645_point_at(dlt645_point_count()));
}

static void test_build_limits(void **state)
{
    (void)state;
    struct dlt645_options options;
    dlt645_options_init(&options);
    uint8_t out[DLT645_FRAME_MAX];
    size_t len = 0;
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x00010000, out, 19, &len),
                     EST_ERR_RANGE);
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x00010000, out, 20, &len),
                     EST_OK);
    options.preamble_count = CN_MAX_PREAMBLE + 1;
    assert_int_equal(dlt645_build_read(&options, meter_123456, 0x00010000, out, sizeof out, &len),
                     EST_ERR_INVALID);
    /* The largest frame fits DLT645_FRAME_MAX and scans back. */
    options.preamble_count = CN_MAX_PREAMBLE;
    uint8_t data[CN_MAX_DATA];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    assert_int_equal(dlt645_build_frame(&options, meter_123456, 0x91, data, sizeof data, out,
                                        sizeof out, &len),
                     EST_OK);
    assert_int_equal(len, DLT645_FRAME_MAX);
    struct dlt645_frame frame;
    scan_whole(out, len, &frame);
    assert_int_equal(frame.length, CN_MAX_DATA);
    assert_memory_equal(frame.data, data, sizeof data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_forward_energy),
        cmocka_unit_test(test_reply_forward_energy),
        cmocka_unit_test(test_real_meter_log),
        cmocka_unit_test(test_negative_power_and_current),
        cmocka_unit_test(test_abnormal_reply),
        cmocka_unit_test(test_wrong_meter_or_direction),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_missing_end_byte),
        cmocka_unit_test(test_preamble),
        cmocka_unit_test(test_split_in_two_chunks),
        cmocka_unit_test(test_noise_before_frame),
        cmocka_unit_test(test_two_frames_in_a_row),
        cmocka_unit_test(test_read_address),
        cmocka_unit_test(test_variant_1997),
        cmocka_unit_test(test_bcd),
        cmocka_unit_test(test_point_table),
        cmocka_unit_test(test_build_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
