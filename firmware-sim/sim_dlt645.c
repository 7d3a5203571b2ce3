/* sim_dlt645.c - a simulated DL/T 645 electricity meter: one request frame
 * in, the reply frame out (read, read-address, abnormal replies and the
 * fault answers of enum sim_cn_answer), values served through the
 * drivers' item table. Pure (see sim_cnproto.h). */
#include <stddef.h>
#include <string.h>

#include "sim_cnproto.h"

/* Meter fields by the quantity name of the item table. */
static const struct {
    const char *quantity;
    size_t offset;
} fields[] = {
    {"energy_total_kwh", offsetof(struct sim_dlt645_meter, energy_total_kwh)},
    {"energy_import_kwh", offsetof(struct sim_dlt645_meter, energy_import_kwh)},
    {"energy_export_kwh", offsetof(struct sim_dlt645_meter, energy_export_kwh)},
    {"voltage_v", offsetof(struct sim_dlt645_meter, voltage_v)},
    {"current_a", offsetof(struct sim_dlt645_meter, current_a)},
    {"power_w", offsetof(struct sim_dlt645_meter, power_w)},
    {"power_factor", offsetof(struct sim_dlt645_meter, power_factor)},
    {"frequency_hz", offsetof(struct sim_dlt645_meter, frequency_hz)},
};

/* The meter's value for an item; false when it has none. */
static bool item_value(const struct sim_dlt645_meter *meter, const struct dlt645_point *point,
                       double *value)
{
    if (strcmp(point->quantity, "status_word_1") == 0) {
        unsigned word = meter->status_word_1 & ~DLT645_STATUS1_POWER_REVERSE;
        if (meter->power_w < 0)
            word |= DLT645_STATUS1_POWER_REVERSE;
        *value = word;
        return true;
    }
    if (strcmp(point->quantity, "serial") == 0) {
        *value = (double)meter->meter_number;
        return true;
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(point->quantity, fields[i].quantity) == 0) {
            *value = *(const double *)((const char *)meter + fields[i].offset);
            return true;
        }
    return false;
}

static bool all_bytes(const uint8_t *bytes, size_t n, uint8_t value)
{
    for (size_t i = 0; i < n; i++)
        if (bytes[i] != value)
            return false;
    return true;
}

static est_err send_abnormal(const struct sim_dlt645_meter *meter, uint8_t function,
                             uint8_t error, uint8_t *out, size_t cap, size_t *reply_len)
{
    return dlt645_build_frame(&meter->options, meter->address,
                              (uint8_t)(function | CN_C_REPLY | CN_C_ABNORMAL), &error, 1, out,
                              cap, reply_len);
}

/* A read of the DI in frame->data. */
static est_err answer_read(const struct sim_dlt645_meter *meter, const struct dlt645_frame *frame,
                           uint8_t function, uint8_t *out, size_t cap, size_t *reply_len)
{
    size_t di_len = meter->options.variant == DLT645_1997 ? 2 : 4;
    if (frame->length != di_len)
        return send_abnormal(meter, function, DLT645_ERR_OTHER, out, cap, reply_len);
    uint32_t di = 0;
    for (size_t i = di_len; i-- > 0;)
        di = di << 8 | frame->data[i];
    const struct dlt645_point *point = dlt645_point_find(meter->options.variant, di);
    double value = 0;
    /* Bit 1 of the error byte: "no such data" (2007), "wrong DI" (1997). */
    if (point == NULL || !item_value(meter, point, &value))
        return send_abnormal(meter, function, DLT645_ERR_NO_DATA, out, cap, reply_len);
    uint8_t data[4 + 8];
    memcpy(data, frame->data, di_len);
    if (point->nbytes > 8 || dlt645_encode_point(point, value, data + di_len) != EST_OK)
        return send_abnormal(meter, function, DLT645_ERR_OTHER, out, cap, reply_len);
    return dlt645_build_frame(&meter->options, meter->address, (uint8_t)(function | CN_C_REPLY),
                              data, di_len + point->nbytes, out, cap, reply_len);
}

est_err sim_dlt645_handle(const struct sim_dlt645_meter *meter, const uint8_t *req, size_t len,
                          uint8_t *out, size_t cap, size_t *reply_len)
{
    *reply_len = 0;
    struct dlt645_frame frame;
    struct cn_scan scan;
    dlt645_scan(req, len, &frame, &scan);
    if (scan.result != CN_SCAN_FRAME)
        return EST_ERR_PROTOCOL;
    if (frame.control & CN_C_REPLY)
        return EST_OK; /* another meter's reply on the bus */
    uint8_t function = frame.control & 0x1F;
    bool read_address = meter->options.variant == DLT645_2007 &&
                        function == DLT645_2007_READ_ADDRESS;
    bool for_me = memcmp(frame.address, meter->address, DLT645_ADDRESS_LEN) == 0 ||
                  (read_address && all_bytes(frame.address, DLT645_ADDRESS_LEN, 0xAA));
    if (!for_me || meter->answer == SIM_CN_SILENT)
        return EST_OK;
    est_err err;
    if (meter->answer == SIM_CN_ABNORMAL)
        err = send_abnormal(meter, function, meter->error_byte, out, cap, reply_len);
    else if (read_address)
        err = dlt645_build_frame(&meter->options, meter->address,
                                 (uint8_t)(function | CN_C_REPLY), meter->address,
                                 DLT645_ADDRESS_LEN, out, cap, reply_len);
    else if (function == (meter->options.variant == DLT645_1997 ? DLT645_1997_READ
                                                                : DLT645_2007_READ))
        err = answer_read(meter, &frame, function, out, cap, reply_len);
    else
        err = send_abnormal(meter, function, DLT645_ERR_OTHER, out, cap, reply_len);
    if (err != EST_OK) {
        *reply_len = 0;
        return err;
    }
    if (meter->answer == SIM_CN_BAD_CHECKSUM)
        out[*reply_len - 2] ^= 0xFF;
    return EST_OK;
}
