/* sim_cjt188.c - a simulated CJ/T 188 water meter: one request frame in,
 * the reply frame out (901F read, valve control, read address, abnormal
 * replies and the fault answers of enum sim_cn_answer). Pure apart from
 * the valve state a valve command changes (see sim_cnproto.h). */
#include <string.h>

#include "sim_cnproto.h"

static bool all_bytes(const uint8_t *bytes, size_t n, uint8_t value)
{
    for (size_t i = 0; i < n; i++)
        if (bytes[i] != value)
            return false;
    return true;
}

/* The two DI bytes in the meter's own order. */
static void put_di(const struct sim_cjt188_meter *meter, uint16_t di, uint8_t out[2])
{
    bool low_first = meter->options.di_order == CJT188_DI_LOW_FIRST;
    out[0] = (uint8_t)(low_first ? di : di >> 8);
    out[1] = (uint8_t)(low_first ? di >> 8 : di);
}

static bool has_di(const struct sim_cjt188_meter *meter, const struct cjt188_frame *frame,
                   uint16_t di)
{
    uint8_t expected[2];
    put_di(meter, di, expected);
    return frame->length >= 3 && frame->data[0] == expected[0] && frame->data[1] == expected[1];
}

static est_err reply(const struct sim_cjt188_meter *meter, uint8_t control, const uint8_t *data,
                     size_t len, uint8_t *out, size_t cap, size_t *reply_len)
{
    return cjt188_build_frame(&meter->options, meter->type, meter->address, control, data, len,
                              out, cap, reply_len);
}

/* Abnormal reply: SER ST0 ST1. */
static est_err send_abnormal(const struct sim_cjt188_meter *meter, uint8_t function, uint8_t ser,
                             uint8_t *out, size_t cap, size_t *reply_len)
{
    uint8_t data[3] = {ser, 0, 0};
    cjt188_status_encode(&meter->options, meter->valve, meter->battery_low, data + 1);
    return reply(meter, (uint8_t)(function | CN_C_REPLY | CN_C_ABNORMAL), data, sizeof data, out,
                 cap, reply_len);
}

/* A volume in m3 as 4 BCD bytes XXXXXX.XX in the meter's unit, then the unit. */
static est_err put_volume(const struct sim_cjt188_meter *meter, double m3, uint8_t out[5])
{
    const struct cjt188_unit *unit = cjt188_unit_find(&meter->options, meter->unit);
    if (unit == NULL || !(unit->m3_per_unit > 0))
        return EST_ERR_INVALID;
    double per_m3 = 1.0 / unit->m3_per_unit;
    double in_unit = unit->m3_per_unit < 1.0 && per_m3 == (double)(uint64_t)per_m3
                         ? m3 * per_m3
                         : m3 / unit->m3_per_unit;
    out[4] = meter->unit;
    return cn_bcd_encode(in_unit, 4, 2, false, out);
}

/* One byte as two BCD digits (0..99). */
static uint8_t bcd_byte(unsigned v)
{
    return (uint8_t)((v / 10 % 10) << 4 | v % 10);
}

static est_err answer_read(const struct sim_cjt188_meter *meter, uint8_t ser, uint8_t *out,
                           size_t cap, size_t *reply_len)
{
    uint8_t data[22];
    put_di(meter, CJT188_DI_READ_METER, data);
    data[2] = ser;
    if (put_volume(meter, meter->volume_m3, data + 3) != EST_OK ||
        put_volume(meter, meter->settlement_volume_m3, data + 8) != EST_OK)
        return send_abnormal(meter, CJT188_READ, ser, out, cap, reply_len);
    const struct cjt188_time *t = &meter->clock;
    data[13] = bcd_byte(t->second);
    data[14] = bcd_byte(t->minute);
    data[15] = bcd_byte(t->hour);
    data[16] = bcd_byte(t->day);
    data[17] = bcd_byte(t->month);
    data[18] = bcd_byte(t->year % 100u);
    data[19] = bcd_byte(t->year / 100u);
    cjt188_status_encode(&meter->options, meter->valve, meter->battery_low, data + 20);
    return reply(meter, CJT188_READ | CN_C_REPLY, data, sizeof data, out, cap, reply_len);
}

static est_err answer_valve(struct sim_cjt188_meter *meter, const struct cjt188_frame *frame,
                            uint8_t *out, size_t cap, size_t *reply_len)
{
    uint8_t ser = frame->data[2];
    uint8_t code = frame->length >= 4 ? frame->data[3] : 0;
    bool open = code == meter->options.valve_open_code;
    bool close = code == meter->options.valve_close_code;
    if (frame->length != 4 || (!open && !close) ||
        (meter->battery_low && meter->refuse_valve_on_low_battery))
        return send_abnormal(meter, CJT188_WRITE, ser, out, cap, reply_len);
    meter->valve = open ? CJT188_VALVE_OPEN : CJT188_VALVE_CLOSED;
    uint8_t data[5];
    put_di(meter, CJT188_DI_VALVE, data);
    data[2] = ser;
    cjt188_status_encode(&meter->options, meter->valve, meter->battery_low, data + 3);
    return reply(meter, CJT188_WRITE | CN_C_REPLY, data, sizeof data, out, cap, reply_len);
}

est_err sim_cjt188_handle(struct sim_cjt188_meter *meter, const uint8_t *req, size_t len,
                          uint8_t *out, size_t cap, size_t *reply_len)
{
    *reply_len = 0;
    struct cjt188_frame frame;
    struct cn_scan scan;
    cjt188_scan(req, len, &frame, &scan);
    if (scan.result != CN_SCAN_FRAME)
        return EST_ERR_PROTOCOL;
    if (frame.control & CN_C_REPLY)
        return EST_OK;
    uint8_t function = frame.control & 0x3F;
    bool read_address = function == CJT188_READ_ADDRESS;
    bool type_ok = frame.type == meter->type || frame.type == CJT188_ANY_TYPE;
    bool address_ok = memcmp(frame.address, meter->address, CJT188_ADDRESS_LEN) == 0 ||
                      (read_address && all_bytes(frame.address, CJT188_ADDRESS_LEN, 0xAA));
    if (!type_ok || !address_ok || meter->answer == SIM_CN_SILENT)
        return EST_OK;
    uint8_t ser = frame.length >= 3 ? frame.data[2] : 0;
    est_err err;
    if (meter->answer == SIM_CN_ABNORMAL)
        err = send_abnormal(meter, function, ser, out, cap, reply_len);
    else if (function == CJT188_READ && has_di(meter, &frame, CJT188_DI_READ_METER))
        err = answer_read(meter, ser, out, cap, reply_len);
    else if (function == CJT188_WRITE && has_di(meter, &frame, CJT188_DI_VALVE))
        err = answer_valve(meter, &frame, out, cap, reply_len);
    else if (read_address && has_di(meter, &frame, meter->options.read_address_di))
        err = reply(meter, CJT188_READ_ADDRESS | CN_C_REPLY, frame.data, 3, out, cap, reply_len);
    else
        err = send_abnormal(meter, function, ser, out, cap, reply_len);
    if (err != EST_OK) {
        *reply_len = 0;
        return err;
    }
    if (meter->answer == SIM_CN_BAD_CHECKSUM)
        out[*reply_len - 2] ^= 0xFF;
    return EST_OK;
}
