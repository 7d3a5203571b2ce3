/* cjt188.c - CJ/T 188-2004 water meter frames: read (901F), valve control
 * (A017) and read-address requests, and checks and decoders for their
 * replies: volumes with unit codes, the meter's clock, the status word.
 * Pure functions (see cnproto.h). */
#include <string.h>

#include "cnproto.h"
#include "cnproto_frame.h"

static const struct cn_layout cjt188_layout = {
    .header_len = 9, /* 68 T A0..A6 */
    .second_start = false,
    .data_offset = 0,
};

#define FUNCTION_MASK 0x3F /* C: D7 direction, D6 abnormal, D5..D0 function */
#define READ_REPLY_LEN 22  /* 901F reply of a water meter (L = 16 hex) */

/* Unit codes. m3 and L are the ones water meters send; the energy and flow
 * codes (unverified, from vendor tables) are not volumes (m3_per_unit 0). */
static const struct cjt188_unit units[] = {
    {0x29, "L", 0.001},
    {0x2C, "m3", 1.0},
    {0x02, "Wh", 0.0},
    {0x05, "kWh", 0.0},
    {0x08, "MWh", 0.0},
    {0x0A, "MWh*100", 0.0},
    {0x01, "J", 0.0},
    {0x0B, "kJ", 0.0},
    {0x0E, "MJ", 0.0},
    {0x11, "GJ", 0.0},
    {0x13, "GJ*100", 0.0},
    {0x14, "W", 0.0},
    {0x17, "kW", 0.0},
    {0x1A, "MW", 0.0},
    {0x32, "L/h", 0.0},
    {0x35, "m3/h", 0.0},
};

void cjt188_options_init(struct cjt188_options *options)
{
    options->preamble_count = 2;
    options->di_order = CJT188_DI_LOW_FIRST;
    options->status_layout = CJT188_STATUS_LOW_BITS;
    options->valve_open_code = 0x55;
    options->valve_close_code = 0x99;
    options->read_address_di = CJT188_DI_READ_ADDRESS;
    options->units = NULL;
    options->nunits = 0;
}

size_t cjt188_unit_count(void)
{
    return sizeof units / sizeof units[0];
}

const struct cjt188_unit *cjt188_unit_at(size_t index)
{
    return index < cjt188_unit_count() ? &units[index] : NULL;
}

const struct cjt188_unit *cjt188_unit_find(const struct cjt188_options *options, uint8_t code)
{
    const struct cjt188_unit *table = units;
    size_t n = cjt188_unit_count();
    if (options != NULL && options->units != NULL) {
        table = options->units;
        n = options->nunits;
    }
    for (size_t i = 0; i < n; i++)
        if (table[i].code == code)
            return &table[i];
    return NULL;
}

static void put_di(const struct cjt188_options *options, uint16_t di, uint8_t out[2])
{
    uint8_t high = (uint8_t)(di >> 8), low = (uint8_t)di;
    out[0] = options->di_order == CJT188_DI_LOW_FIRST ? low : high;
    out[1] = options->di_order == CJT188_DI_LOW_FIRST ? high : low;
}

static bool di_matches(const struct cjt188_options *options, uint16_t di, const uint8_t *bytes)
{
    uint8_t expected[2];
    put_di(options, di, expected);
    return bytes[0] == expected[0] && bytes[1] == expected[1];
}

est_err cjt188_build_frame(const struct cjt188_options *options, uint8_t type,
                           const uint8_t address[CJT188_ADDRESS_LEN], uint8_t control,
                           const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    uint8_t header[9];
    header[0] = CN_FRAME_START;
    header[1] = type;
    memcpy(header + 2, address, CJT188_ADDRESS_LEN);
    return cn_frame_write(&cjt188_layout, options->preamble_count, header, control, data, len,
                          out, cap, out_len);
}

est_err cjt188_build_read(const struct cjt188_options *options, uint8_t type,
                          const uint8_t address[CJT188_ADDRESS_LEN], uint16_t di, uint8_t ser,
                          uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t data[3];
    put_di(options, di, data);
    data[2] = ser;
    return cjt188_build_frame(options, type, address, CJT188_READ, data, sizeof data, out, cap,
                              out_len);
}

est_err cjt188_build_valve(const struct cjt188_options *options, uint8_t type,
                           const uint8_t address[CJT188_ADDRESS_LEN], bool open, uint8_t ser,
                           uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t data[4];
    put_di(options, CJT188_DI_VALVE, data);
    data[2] = ser;
    data[3] = open ? options->valve_open_code : options->valve_close_code;
    return cjt188_build_frame(options, type, address, CJT188_WRITE, data, sizeof data, out, cap,
                              out_len);
}

est_err cjt188_build_read_address(const struct cjt188_options *options, uint8_t type,
                                  uint8_t ser, uint8_t *out, size_t cap, size_t *out_len)
{
    static const uint8_t broadcast[CJT188_ADDRESS_LEN] = {0xAA, 0xAA, 0xAA, 0xAA,
                                                          0xAA, 0xAA, 0xAA};
    uint8_t data[3];
    put_di(options, options->read_address_di, data);
    data[2] = ser;
    return cjt188_build_frame(options, type, broadcast, CJT188_READ_ADDRESS, data, sizeof data,
                              out, cap, out_len);
}

void cjt188_scan(const uint8_t *buf, size_t len, struct cjt188_frame *frame,
                 struct cn_scan *scan)
{
    size_t start = 0;
    cn_frame_find(&cjt188_layout, buf, len, &start, scan);
    if (scan->result != CN_SCAN_FRAME)
        return;
    const uint8_t *p = buf + start;
    frame->type = p[1];
    memcpy(frame->address, p + 2, CJT188_ADDRESS_LEN);
    frame->control = p[9];
    frame->length = p[10];
    memcpy(frame->data, p + 11, frame->length);
}

void cjt188_status_decode(const struct cjt188_options *options, const uint8_t st[2],
                          struct cjt188_status *status)
{
    unsigned valve_bits, battery;
    if (options->status_layout == CJT188_STATUS_HIGH_BITS) {
        valve_bits = (st[0] >> 6) & 0x03;
        battery = st[0] & 0x20;
    } else {
        valve_bits = st[0] & 0x03;
        battery = st[0] & 0x04;
    }
    status->valve = valve_bits == 0   ? CJT188_VALVE_OPEN
                    : valve_bits == 1 ? CJT188_VALVE_CLOSED
                                      : CJT188_VALVE_ABNORMAL;
    status->battery_low = battery != 0;
    status->raw[0] = st[0];
    status->raw[1] = st[1];
}

void cjt188_status_encode(const struct cjt188_options *options, enum cjt188_valve valve,
                          bool battery_low, uint8_t st[2])
{
    unsigned valve_bits = valve == CJT188_VALVE_OPEN ? 0 : valve == CJT188_VALVE_CLOSED ? 1 : 3;
    if (options->status_layout == CJT188_STATUS_HIGH_BITS)
        st[0] = (uint8_t)(valve_bits << 6 | (battery_low ? 0x20 : 0));
    else
        st[0] = (uint8_t)(valve_bits | (battery_low ? 0x04 : 0));
    st[1] = 0;
}

/* Common checks of a reply: direction, function, type, address. */
static bool is_reply_from(const struct cjt188_frame *frame, uint8_t function, uint8_t type,
                          const uint8_t *address)
{
    if (!(frame->control & CN_C_REPLY) || (frame->control & FUNCTION_MASK) != function)
        return false;
    if (type != CJT188_ANY_TYPE && frame->type != type)
        return false;
    return address == NULL || memcmp(frame->address, address, CJT188_ADDRESS_LEN) == 0;
}

/* An abnormal reply carries SER ST0 ST1, or DI SER ST0 ST1 (layouts differ
 * between meters), or less. false when its SER is not ours. */
static bool parse_abnormal(const struct cjt188_options *options,
                           const struct cjt188_frame *frame, uint8_t ser,
                           struct cjt188_abnormal *abnormal)
{
    struct cjt188_abnormal a;
    memset(&a, 0, sizeof a);
    const uint8_t *rest = NULL;
    if (frame->length == 3 || frame->length == 1)
        rest = frame->data;
    else if (frame->length >= 5)
        rest = frame->data + 2;
    if (rest != NULL) {
        a.has_ser = true;
        a.ser = rest[0];
        if (frame->length >= 3) {
            a.has_status = true;
            cjt188_status_decode(options, rest + 1, &a.status);
        }
    }
    if (abnormal != NULL)
        *abnormal = a;
    return !a.has_ser || a.ser == ser;
}

static void decode_volume(const struct cjt188_options *options, const uint8_t *bytes,
                          struct cjt188_volume *volume, est_err *err)
{
    memset(volume, 0, sizeof *volume);
    volume->unit = bytes[4];
    uint64_t digits = 0; /* XXXXXX.XX: hundredths of the unit */
    if (cn_bcd_to_uint(bytes, 4, &digits) != EST_OK) {
        *err = EST_ERR_PROTOCOL;
        return;
    }
    volume->value = (double)digits / 100.0;
    const struct cjt188_unit *unit = cjt188_unit_find(options, volume->unit);
    if (unit == NULL || !(unit->m3_per_unit > 0)) {
        if (*err == EST_OK)
            *err = EST_ERR_NOTFOUND;
        return;
    }
    volume->known = true;
    /* Litres and other decimal fractions are divided, so 1234.56 L gives
     * the double nearest 1.23456 m3. */
    double per_m3 = 1.0 / unit->m3_per_unit;
    if (unit->m3_per_unit < 1.0 && per_m3 == (double)(uint64_t)per_m3)
        volume->m3 = (double)digits / (100.0 * per_m3);
    else
        volume->m3 = volume->value * unit->m3_per_unit;
}

/* One BCD byte in [low, high], or -1. */
static int bcd_field(uint8_t byte, int low, int high)
{
    uint64_t v = 0;
    if (cn_bcd_to_uint(&byte, 1, &v) != EST_OK || (int)v < low || (int)v > high)
        return -1;
    return (int)v;
}

static void decode_time(const uint8_t b[7], struct cjt188_time *t)
{
    memset(t, 0, sizeof *t);
    int second = bcd_field(b[0], 0, 59), minute = bcd_field(b[1], 0, 59);
    int hour = bcd_field(b[2], 0, 23), day = bcd_field(b[3], 1, 31);
    int month = bcd_field(b[4], 1, 12);
    uint64_t year = 0;
    if (second < 0 || minute < 0 || hour < 0 || day < 0 || month < 0 ||
        cn_bcd_to_uint(b + 5, 2, &year) != EST_OK)
        return;
    t->valid = true;
    t->year = (uint16_t)year;
    t->month = (uint8_t)month;
    t->day = (uint8_t)day;
    t->hour = (uint8_t)hour;
    t->minute = (uint8_t)minute;
    t->second = (uint8_t)second;
}

est_err cjt188_parse_read_reply(const struct cjt188_options *options,
                                const struct cjt188_frame *frame, uint8_t type,
                                const uint8_t address[CJT188_ADDRESS_LEN], uint8_t ser,
                                struct cjt188_meter_data *data,
                                struct cjt188_abnormal *abnormal)
{
    memset(data, 0, sizeof *data);
    if (!is_reply_from(frame, CJT188_READ, type, address))
        return EST_ERR_PROTOCOL;
    if (frame->control & CN_C_ABNORMAL)
        return parse_abnormal(options, frame, ser, abnormal) ? EST_ERR_EXCEPTION
                                                             : EST_ERR_PROTOCOL;
    const uint8_t *d = frame->data;
    if (frame->length < READ_REPLY_LEN || !di_matches(options, CJT188_DI_READ_METER, d) ||
        d[2] != ser)
        return EST_ERR_PROTOCOL;
    est_err err = EST_OK;
    data->ser = d[2];
    decode_volume(options, d + 3, &data->current, &err);
    decode_volume(options, d + 8, &data->settlement, &err);
    decode_time(d + 13, &data->time);
    cjt188_status_decode(options, d + 20, &data->status);
    return err;
}

est_err cjt188_parse_valve_reply(const struct cjt188_options *options,
                                 const struct cjt188_frame *frame, uint8_t type,
                                 const uint8_t address[CJT188_ADDRESS_LEN], uint8_t ser,
                                 struct cjt188_status *status, bool *has_status,
                                 struct cjt188_abnormal *abnormal)
{
    memset(status, 0, sizeof *status);
    *has_status = false;
    if (!is_reply_from(frame, CJT188_WRITE, type, address))
        return EST_ERR_PROTOCOL;
    if (frame->control & CN_C_ABNORMAL)
        return parse_abnormal(options, frame, ser, abnormal) ? EST_ERR_EXCEPTION
                                                             : EST_ERR_PROTOCOL;
    const uint8_t *d = frame->data;
    if ((frame->length != 3 && frame->length != 5) || !di_matches(options, CJT188_DI_VALVE, d) ||
        d[2] != ser)
        return EST_ERR_PROTOCOL;
    if (frame->length == 5) {
        cjt188_status_decode(options, d + 3, status);
        *has_status = true;
    }
    return EST_OK;
}

est_err cjt188_parse_address_reply(const struct cjt188_options *options,
                                   const struct cjt188_frame *frame, uint8_t ser, uint8_t *type,
                                   uint8_t address[CJT188_ADDRESS_LEN],
                                   struct cjt188_abnormal *abnormal)
{
    if (!is_reply_from(frame, CJT188_READ_ADDRESS, CJT188_ANY_TYPE, NULL))
        return EST_ERR_PROTOCOL;
    if (frame->control & CN_C_ABNORMAL)
        return parse_abnormal(options, frame, ser, abnormal) ? EST_ERR_EXCEPTION
                                                             : EST_ERR_PROTOCOL;
    if (frame->length < 3 || !di_matches(options, options->read_address_di, frame->data) ||
        frame->data[2] != ser)
        return EST_ERR_PROTOCOL;
    *type = frame->type;
    memcpy(address, frame->address, CJT188_ADDRESS_LEN);
    return EST_OK;
}
