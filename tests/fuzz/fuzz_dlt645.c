/* fuzz_dlt645.c - libFuzzer harness for the DL/T 645 receive path: the
 * input is a byte stream scanned frame by frame as a link would, each
 * frame checked as a read reply (both variants, DI from the stream) and an
 * address reply and its value decoded with every table item. Oracles: a
 * scan never claims more bytes than it was given, what it keeps rescans to
 * nothing new, a frame it returns re-encodes to the very bytes it came
 * from, and BCD decode/encode round-trips. Any crash, sanitizer report or
 * broken oracle is a bug. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
    if (!condition)
        abort();
}

static void check_frame_bytes(const struct dlt645_frame *frame, const uint8_t *end_of_frame,
                              size_t available)
{
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.preamble_count = 0;
    uint8_t again[DLT645_FRAME_MAX];
    size_t len = 0;
    check(dlt645_build_frame(&options, frame->address, frame->control, frame->data,
                             frame->length, again, sizeof again, &len) == EST_OK);
    check(len == 12u + frame->length && len <= available);
    check(memcmp(again, end_of_frame - len, len) == 0);
}

static void check_replies(const struct dlt645_frame *frame)
{
    for (int variant = DLT645_2007; variant <= DLT645_1997; variant++) {
        struct dlt645_options options;
        dlt645_options_init(&options);
        options.variant = (enum dlt645_variant)variant;
        uint32_t di = 0;
        for (size_t i = 0; i < 4 && i < frame->length; i++)
            di |= (uint32_t)frame->data[i] << (8 * i);
        if (variant == DLT645_1997)
            di &= 0xFFFF;
        struct dlt645_reply reply;
        est_err err = dlt645_parse_read_reply(&options, frame, frame->address, di, &reply);
        check(err == EST_OK || err == EST_ERR_EXCEPTION || err == EST_ERR_PROTOCOL);
        if (err != EST_OK)
            continue;
        check(reply.value >= frame->data &&
              reply.value + reply.value_len == frame->data + frame->length);
        for (size_t i = 0; i < dlt645_point_count(); i++) {
            const struct dlt645_point *point = dlt645_point_at(i);
            double value = 0;
            if (dlt645_decode_point(point, reply.value, reply.value_len, &value) == EST_OK)
                check(isfinite(value));
        }
    }
    uint8_t address[DLT645_ADDRESS_LEN];
    est_err err = dlt645_parse_address_reply(frame, address);
    check(err == EST_OK || err == EST_ERR_EXCEPTION || err == EST_ERR_PROTOCOL);
}

static void check_bcd(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t nbytes = 1 + data[0] % 6;
    if (size < 1 + nbytes)
        return;
    unsigned decimals = data[0] / 6 % 5;
    bool sign_bit = data[0] & 0x80;
    double value = 0;
    if (cn_bcd_decode(data + 1, nbytes, decimals, sign_bit, &value) != EST_OK)
        return;
    uint8_t again[6];
    check(cn_bcd_encode(value, nbytes, decimals, sign_bit, again) == EST_OK);
    uint8_t expected[6];
    memcpy(expected, data + 1, nbytes);
    if (value == 0 && sign_bit)
        expected[nbytes - 1] &= 0x7F; /* negative zero comes back positive */
    check(memcmp(again, expected, nbytes) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_bcd(data, size);
    size_t at = 0;
    while (at <= size) {
        struct dlt645_frame frame;
        struct cn_scan scan;
        dlt645_scan(data + at, size - at, &frame, &scan);
        check(scan.consumed <= size - at);
        if (scan.result == CN_SCAN_NEED_MORE) {
            /* What is kept is a possible start and nothing more: rescanning
             * it drops nothing. */
            struct cn_scan again;
            dlt645_scan(data + at + scan.consumed, size - at - scan.consumed, &frame, &again);
            check(again.result == CN_SCAN_NEED_MORE && again.consumed == 0);
            break;
        }
        check(scan.consumed >= 12);
        check_frame_bytes(&frame, data + at + scan.consumed, scan.consumed);
        check_replies(&frame);
        at += scan.consumed;
    }
    return 0;
}
