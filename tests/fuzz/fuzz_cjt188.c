/* fuzz_cjt188.c - libFuzzer harness for the CJ/T 188 receive path: the
 * input's first byte picks the options (DI order, status layout), the rest
 * is a byte stream scanned frame by frame as a link would, each frame
 * checked as a 901F reply, a valve reply and an address reply. Oracles: a
 * scan never claims more bytes than it was given, what it keeps rescans to
 * nothing new, a frame it returns re-encodes to the very bytes it came
 * from, decoded volumes are finite and the status round-trips. Any crash,
 * sanitizer report or broken oracle is a bug. */
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

static void check_frame_bytes(const struct cjt188_frame *frame, const uint8_t *end_of_frame,
                              size_t available)
{
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.preamble_count = 0;
    uint8_t again[CJT188_FRAME_MAX];
    size_t len = 0;
    check(cjt188_build_frame(&options, frame->type, frame->address, frame->control, frame->data,
                             frame->length, again, sizeof again, &len) == EST_OK);
    check(len == 13u + frame->length && len <= available);
    check(memcmp(again, end_of_frame - len, len) == 0);
}

static void check_status(const struct cjt188_options *options, const struct cjt188_status *s)
{
    uint8_t st[2];
    cjt188_status_encode(options, s->valve, s->battery_low, st);
    struct cjt188_status again;
    cjt188_status_decode(options, st, &again);
    check(again.valve == s->valve && again.battery_low == s->battery_low);
}

static void check_volume(const struct cjt188_volume *v)
{
    check(isfinite(v->value) && v->value >= 0);
    check(!v->known || (isfinite(v->m3) && v->m3 >= 0));
}

static void check_replies(const struct cjt188_options *options, const struct cjt188_frame *frame)
{
    uint8_t ser = frame->length >= 3 ? frame->data[2] : 0;
    struct cjt188_meter_data meter;
    struct cjt188_abnormal abnormal;
    est_err err = cjt188_parse_read_reply(options, frame, frame->type, frame->address, ser,
                                          &meter, &abnormal);
    check(err == EST_OK || err == EST_ERR_NOTFOUND || err == EST_ERR_EXCEPTION ||
          err == EST_ERR_PROTOCOL);
    if (err == EST_OK || err == EST_ERR_NOTFOUND) {
        check_volume(&meter.current);
        check_volume(&meter.settlement);
        check(!meter.time.valid || (meter.time.month >= 1 && meter.time.month <= 12));
        check_status(options, &meter.status);
    }
    if (err == EST_ERR_EXCEPTION && abnormal.has_status)
        check_status(options, &abnormal.status);

    struct cjt188_status status;
    bool has_status = false;
    err = cjt188_parse_valve_reply(options, frame, CJT188_ANY_TYPE, NULL, ser, &status,
                                   &has_status, &abnormal);
    check(err == EST_OK || err == EST_ERR_EXCEPTION || err == EST_ERR_PROTOCOL);
    check(err == EST_OK || !has_status);

    uint8_t type = 0, address[CJT188_ADDRESS_LEN];
    err = cjt188_parse_address_reply(options, frame, ser, &type, address, &abnormal);
    check(err == EST_OK || err == EST_ERR_EXCEPTION || err == EST_ERR_PROTOCOL);
    if (err == EST_OK)
        check(type == frame->type && memcmp(address, frame->address, sizeof address) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.di_order = (data[0] & 1) ? CJT188_DI_HIGH_FIRST : CJT188_DI_LOW_FIRST;
    options.status_layout = (data[0] & 2) ? CJT188_STATUS_HIGH_BITS : CJT188_STATUS_LOW_BITS;
    data++;
    size--;
    size_t at = 0;
    while (at <= size) {
        struct cjt188_frame frame;
        struct cn_scan scan;
        cjt188_scan(data + at, size - at, &frame, &scan);
        check(scan.consumed <= size - at);
        if (scan.result == CN_SCAN_NEED_MORE) {
            struct cn_scan again;
            cjt188_scan(data + at + scan.consumed, size - at - scan.consumed, &frame, &again);
            check(again.result == CN_SCAN_NEED_MORE && again.consumed == 0);
            break;
        }
        check(scan.consumed >= 13);
        check_frame_bytes(&frame, data + at + scan.consumed, scan.consumed);
        check_replies(&options, &frame);
        at += scan.consumed;
    }
    return 0;
}
