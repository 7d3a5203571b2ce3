/* dlt645.c - DL/T 645-2007 and -1997 electricity meter frames: read and
 * read-address requests, reply checks, and the table of common data items
 * with their BCD formats. Pure functions (see cnproto.h). */
#include <math.h>
#include <string.h>

#include "cnproto.h"
#include "cnproto_frame.h"

static const struct cn_layout dlt645_layout = {
    .header_len = 8, /* 68 A0..A5 68 */
    .second_start = true,
    .data_offset = DLT645_DATA_OFFSET,
};

/* Formats from DL/T 645-2007 appendix A (data identifiers) and the 1997
 * table; docs/chinese-meters.md says which were checked against meter
 * logs. SPEC units: kW is scaled to W. */
static const struct dlt645_point points[] = {
    {DLT645_2007, 0x00000000, DLT645_BCD, 4, 2, true, "energy_total_kwh", 1.0},
    {DLT645_2007, 0x00010000, DLT645_BCD, 4, 2, false, "energy_import_kwh", 1.0},
    {DLT645_2007, 0x00020000, DLT645_BCD, 4, 2, false, "energy_export_kwh", 1.0},
    {DLT645_2007, 0x02010100, DLT645_BCD, 2, 1, false, "voltage_v", 1.0},
    {DLT645_2007, 0x02020100, DLT645_BCD, 3, 3, true, "current_a", 1.0},
    {DLT645_2007, 0x02030000, DLT645_BCD, 3, 4, true, "power_w", 1000.0},
    {DLT645_2007, 0x02060000, DLT645_BCD, 2, 3, true, "power_factor", 1.0},
    {DLT645_2007, 0x02800002, DLT645_BCD, 2, 2, false, "frequency_hz", 1.0},
    {DLT645_2007, 0x04000501, DLT645_WORD, 2, 0, false, "status_word_1", 1.0},
    {DLT645_2007, 0x04000402, DLT645_BCD, 6, 0, false, "serial", 1.0},
    {DLT645_1997, 0x9010, DLT645_BCD, 4, 2, false, "energy_import_kwh", 1.0},
    {DLT645_1997, 0x9020, DLT645_BCD, 4, 2, false, "energy_export_kwh", 1.0},
    {DLT645_1997, 0xB611, DLT645_BCD, 2, 0, false, "voltage_v", 1.0},
    {DLT645_1997, 0xB621, DLT645_BCD, 2, 2, false, "current_a", 1.0},
    {DLT645_1997, 0xB630, DLT645_BCD, 3, 4, false, "power_w", 1000.0},
};

void dlt645_options_init(struct dlt645_options *options)
{
    options->variant = DLT645_2007;
    options->preamble_count = 4;
}

static size_t di_length(enum dlt645_variant variant)
{
    return variant == DLT645_1997 ? 2 : 4;
}

static uint8_t read_function(enum dlt645_variant variant)
{
    return variant == DLT645_1997 ? DLT645_1997_READ : DLT645_2007_READ;
}

est_err dlt645_build_frame(const struct dlt645_options *options,
                           const uint8_t address[DLT645_ADDRESS_LEN], uint8_t control,
                           const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    uint8_t header[8];
    header[0] = CN_FRAME_START;
    memcpy(header + 1, address, DLT645_ADDRESS_LEN);
    header[7] = CN_FRAME_START;
    return cn_frame_write(&dlt645_layout, options->preamble_count, header, control, data, len,
                          out, cap, out_len);
}

est_err dlt645_build_read(const struct dlt645_options *options,
                          const uint8_t address[DLT645_ADDRESS_LEN], uint32_t di, uint8_t *out,
                          size_t cap, size_t *out_len)
{
    size_t n = di_length(options->variant);
    if (n == 2 && di > 0xFFFF)
        return EST_ERR_INVALID;
    uint8_t data[4];
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(di >> (8 * i)); /* DI0 first */
    return dlt645_build_frame(options, address, read_function(options->variant), data, n, out,
                              cap, out_len);
}

est_err dlt645_build_read_address(const struct dlt645_options *options, uint8_t *out, size_t cap,
                                  size_t *out_len)
{
    if (options->variant != DLT645_2007)
        return EST_ERR_INVALID; /* 1997 has no read-address request */
    static const uint8_t broadcast[DLT645_ADDRESS_LEN] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    return dlt645_build_frame(options, broadcast, DLT645_2007_READ_ADDRESS, NULL, 0, out, cap,
                              out_len);
}

void dlt645_scan(const uint8_t *buf, size_t len, struct dlt645_frame *frame,
                 struct cn_scan *scan)
{
    size_t start = 0;
    cn_frame_find(&dlt645_layout, buf, len, &start, scan);
    if (scan->result != CN_SCAN_FRAME)
        return;
    const uint8_t *p = buf + start;
    memcpy(frame->address, p + 1, DLT645_ADDRESS_LEN);
    frame->control = p[8];
    frame->length = p[9];
    for (size_t i = 0; i < frame->length; i++)
        frame->data[i] = (uint8_t)(p[10 + i] - DLT645_DATA_OFFSET);
}

/* Direction and function of a reply; the abnormal bit is left to the caller. */
static bool is_reply_to(const struct dlt645_frame *frame, uint8_t function)
{
    return (frame->control & CN_C_REPLY) && (frame->control & 0x1F) == function;
}

est_err dlt645_parse_read_reply(const struct dlt645_options *options,
                                const struct dlt645_frame *frame,
                                const uint8_t address[DLT645_ADDRESS_LEN], uint32_t di,
                                struct dlt645_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    if (!is_reply_to(frame, read_function(options->variant)))
        return EST_ERR_PROTOCOL;
    if (address != NULL && memcmp(frame->address, address, DLT645_ADDRESS_LEN) != 0)
        return EST_ERR_PROTOCOL;
    reply->follows = (frame->control & CN_C_FOLLOWS) != 0;
    if (frame->control & CN_C_ABNORMAL) {
        if (frame->length < 1)
            return EST_ERR_PROTOCOL;
        reply->abnormal = true;
        reply->error = frame->data[0];
        return EST_ERR_EXCEPTION;
    }
    size_t n = di_length(options->variant);
    if (frame->length < n)
        return EST_ERR_PROTOCOL;
    for (size_t i = 0; i < n; i++)
        if (frame->data[i] != (uint8_t)(di >> (8 * i)))
            return EST_ERR_PROTOCOL;
    reply->value = frame->data + n;
    reply->value_len = frame->length - n;
    return EST_OK;
}

est_err dlt645_parse_address_reply(const struct dlt645_frame *frame,
                                   uint8_t address[DLT645_ADDRESS_LEN])
{
    if (!is_reply_to(frame, DLT645_2007_READ_ADDRESS))
        return EST_ERR_PROTOCOL;
    if (frame->control & CN_C_ABNORMAL)
        return EST_ERR_EXCEPTION;
    if (frame->length != DLT645_ADDRESS_LEN)
        return EST_ERR_PROTOCOL;
    memcpy(address, frame->data, DLT645_ADDRESS_LEN);
    return EST_OK;
}

size_t dlt645_point_count(void)
{
    return sizeof points / sizeof points[0];
}

const struct dlt645_point *dlt645_point_at(size_t index)
{
    return index < dlt645_point_count() ? &points[index] : NULL;
}

const struct dlt645_point *dlt645_point_find(enum dlt645_variant variant, uint32_t di)
{
    for (size_t i = 0; i < dlt645_point_count(); i++)
        if (points[i].variant == variant && points[i].di == di)
            return &points[i];
    return NULL;
}

/* k when scale is exactly 10^k (-9 <= k <= 9), else false. */
static bool scale_exponent(double scale, int *k)
{
    double up = 1.0;
    for (int e = 0; e <= 9; e++, up *= 10.0) {
        if (scale == up) {
            *k = e;
            return true;
        }
        if (scale == 1.0 / up) {
            *k = -e;
            return true;
        }
    }
    return false;
}

est_err dlt645_decode_point(const struct dlt645_point *point, const uint8_t *value, size_t len,
                            double *out)
{
    if (len != point->nbytes)
        return EST_ERR_PROTOCOL;
    if (point->encoding == DLT645_WORD) {
        if (len > 4)
            return EST_ERR_INVALID;
        uint32_t word = 0;
        for (size_t i = len; i-- > 0;)
            word = word << 8 | value[i];
        *out = word;
        return EST_OK;
    }
    int k = 0;
    if (!scale_exponent(point->scale, &k)) {
        est_err err = cn_bcd_decode(value, len, point->decimals, point->sign_bit, out);
        if (err == EST_OK)
            *out *= point->scale;
        return err;
    }
    /* Fold the scale into the decimals so the result is the nearest double
     * to the decimal the meter sent (1.2345 kW -> 1234.5 W). */
    int decimals = point->decimals - k;
    if (decimals >= 0)
        return cn_bcd_decode(value, len, (unsigned)decimals, point->sign_bit, out);
    est_err err = cn_bcd_decode(value, len, 0, point->sign_bit, out);
    if (err == EST_OK)
        for (int i = 0; i < -decimals; i++)
            *out *= 10.0;
    return err;
}

est_err dlt645_encode_point(const struct dlt645_point *point, double value, uint8_t *out)
{
    if (point->encoding == DLT645_WORD) {
        if (point->nbytes > 4 || !(value >= 0) || value >= ldexp(1.0, 8 * point->nbytes))
            return EST_ERR_RANGE;
        uint32_t word = (uint32_t)value;
        for (size_t i = 0; i < point->nbytes; i++)
            out[i] = (uint8_t)(word >> (8 * i));
        return EST_OK;
    }
    int k = 0;
    if (!scale_exponent(point->scale, &k))
        return cn_bcd_encode(value / point->scale, point->nbytes, point->decimals,
                             point->sign_bit, out);
    int decimals = point->decimals - k;
    if (decimals >= 0)
        return cn_bcd_encode(value, point->nbytes, (unsigned)decimals, point->sign_bit, out);
    double meter_value = value;
    for (int i = 0; i < -decimals; i++)
        meter_value /= 10.0;
    return cn_bcd_encode(meter_value, point->nbytes, 0, point->sign_bit, out);
}
