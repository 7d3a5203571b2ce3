/* sim_cnserial.c - DL/T 645 and CJ/T 188 requests on an estate-sim rtu
 * endpoint: the world's devices answered through the pure responders of
 * sim_dlt645.c and sim_cjt188.c. See sim_cnserial.h. */
#include "sim_cnserial.h"

#include <string.h>

#include "sim_cnproto.h"

/* The device's fault as the responders know it. */
static enum sim_cn_answer answer_of(const struct sim_device *dev, uint32_t *delay_ms)
{
    switch (dev->fault) {
    case SIM_FAULT_SILENT:
        return SIM_CN_SILENT;
    case SIM_FAULT_EXCEPTION:
        return SIM_CN_ABNORMAL;
    case SIM_FAULT_GARBAGE:
    case SIM_FAULT_CRC:
        return SIM_CN_BAD_CHECKSUM;
    case SIM_FAULT_SLOW:
        *delay_ms = dev->fault_delay_ms;
        return SIM_CN_NORMAL;
    case SIM_FAULT_DUPLICATE:
    case SIM_FAULT_BAD_LENGTH:
    case SIM_FAULT_WRONG_UNIT: /* Modbus TCP framing faults: no meaning here */
    case SIM_FAULT_NONE:
        break;
    }
    return SIM_CN_NORMAL;
}

/* What a DL/T 645 meter shows for a quantity: the current's sign follows
 * the power's, as on a meter running backwards. */
static double dlt645_shown(const struct sim_device *dev, enum drv_quantity q)
{
    const double *v = dev->value;
    if (q == DRV_Q_CURRENT_A && v[DRV_Q_POWER_W] < 0)
        return -v[DRV_Q_CURRENT_A];
    if (q == DRV_Q_ENERGY_TOTAL_KWH)
        return v[DRV_Q_ENERGY_IMPORT_KWH] + v[DRV_Q_ENERGY_EXPORT_KWH];
    return v[q];
}

static size_t serve_dlt645(struct sim_device *dev, const uint8_t *req, size_t n, uint8_t *out,
                           uint32_t *delay_ms)
{
    struct sim_dlt645_meter m;
    memset(&m, 0, sizeof m);
    memcpy(m.address, dev->cn_address, DLT645_ADDRESS_LEN);
    dlt645_options_init(&m.options);
    m.options.variant = dev->model->dlt645_version == 1997 ? DLT645_1997 : DLT645_2007;
    const double *v = dev->value;
    m.energy_import_kwh = v[DRV_Q_ENERGY_IMPORT_KWH];
    m.energy_export_kwh = v[DRV_Q_ENERGY_EXPORT_KWH];
    m.energy_total_kwh = dlt645_shown(dev, DRV_Q_ENERGY_TOTAL_KWH);
    m.voltage_v = v[DRV_Q_VOLTAGE_V];
    m.current_a = dlt645_shown(dev, DRV_Q_CURRENT_A);
    m.power_w = v[DRV_Q_POWER_W];
    m.power_factor = v[DRV_Q_POWER_FACTOR];
    m.frequency_hz = v[DRV_Q_FREQUENCY_HZ];
    m.meter_number = dev->serial;
    m.answer = answer_of(dev, delay_ms);
    m.error_byte = dev->fault_code ? dev->fault_code : DLT645_ERR_OTHER;
    size_t reply_len = 0;
    if (sim_dlt645_handle(&m, req, n, out, SIM_CN_REPLY_MAX, &reply_len) != EST_OK)
        return 0;
    return reply_len;
}

static enum cjt188_valve valve_shown(const struct sim_device *dev)
{
    if (dev->valve_fault)
        return CJT188_VALVE_ABNORMAL;
    /* CJ/T 188 has no "moving": a meter shows where its valve is going. */
    enum drv_valve_state s = dev->valve == DRV_VALVE_MOVING ? dev->valve_target : dev->valve;
    return s == DRV_VALVE_CLOSED ? CJT188_VALVE_CLOSED : CJT188_VALVE_OPEN;
}

static size_t serve_cjt188(struct sim_device *dev, const uint8_t *req, size_t n, uint8_t *out,
                           uint32_t *delay_ms, int64_t mono_ms)
{
    struct sim_cjt188_meter m;
    memset(&m, 0, sizeof m);
    m.type = dev->model->cjt188_meter_type;
    memcpy(m.address, dev->cn_address, CJT188_ADDRESS_LEN);
    cjt188_options_init(&m.options);
    if (dev->model->valve != NULL) {
        m.options.valve_open_code = (uint8_t)dev->model->valve->open_value;
        m.options.valve_close_code = (uint8_t)dev->model->valve->close_value;
    }
    m.volume_m3 = dev->value[DRV_Q_VOLUME_M3];
    m.settlement_volume_m3 = dev->value[DRV_Q_VOLUME_M3];
    m.unit = 0x2C; /* m3 */
    m.clock = (struct cjt188_time){.valid = true, .year = 2026, .month = 1, .day = 1};
    m.valve = valve_shown(dev);
    m.battery_low = dev->value[DRV_Q_BATTERY_LOW] != 0.0;
    m.answer = answer_of(dev, delay_ms);
    enum cjt188_valve before = m.valve;
    size_t reply_len = 0;
    if (sim_cjt188_handle(&m, req, n, out, SIM_CN_REPLY_MAX, &reply_len) != EST_OK)
        return 0;
    if (m.valve != before && dev->model->valve != NULL && m.valve != CJT188_VALVE_ABNORMAL)
        sim_device_valve_write(dev,
                               m.valve == CJT188_VALVE_OPEN ? dev->model->valve->open_value
                                                            : dev->model->valve->close_value,
                               mono_ms);
    return reply_len;
}

/* The reply of the device on the endpoint the request is for. Several
 * devices answer a broadcast (read address) at once: on RS-485 their
 * frames collide, here the bytes of each later reply ORed into the first,
 * which breaks its checksum as a real collision does. */
static size_t dispatch(struct sim_world *world, size_t endpoint, const uint8_t *req, size_t n,
                       uint32_t *delay_ms, uint8_t *out, int64_t mono_ms)
{
    struct sim_endpoint *ep = &world->endpoints[endpoint];
    size_t first = 0;
    uint8_t other[SIM_CN_REPLY_MAX];
    *delay_ms = 0; /* only the answering meter's slow fault delays the answer */
    for (unsigned slot = 1; slot <= SIM_MAX_SLAVE; slot++) {
        if (ep->slave_device[slot] < 0)
            continue;
        struct sim_device *dev = &world->devices[ep->slave_device[slot]];
        if (dev->model->protocol != ep->protocol)
            continue;
        dev->requests++;
        uint8_t *into = first == 0 ? out : other;
        uint32_t delay = 0;
        size_t reply = ep->protocol == DRV_PROTO_DLT645
                           ? serve_dlt645(dev, req, n, into, &delay)
                           : serve_cjt188(dev, req, n, into, &delay, mono_ms);
        if (reply == 0) {
            dev->requests--;
            continue;
        }
        if (first == 0) {
            first = reply;
            *delay_ms = delay;
            continue;
        }
        for (size_t i = 0; i < reply && i < SIM_CN_REPLY_MAX; i++)
            out[i] |= other[i];
        if (reply > first)
            first = reply;
    }
    return first;
}

size_t sim_cn_serve(struct sim_world *world, size_t endpoint, uint8_t *buf, size_t *len,
                    bool *found, size_t *request_bytes, uint32_t *delay_ms, uint8_t *out,
                    int64_t mono_ms)
{
    struct sim_endpoint *ep = &world->endpoints[endpoint];
    struct cn_scan scan;
    if (ep->protocol == DRV_PROTO_DLT645) {
        struct dlt645_frame frame;
        dlt645_scan(buf, *len, &frame, &scan);
    } else {
        struct cjt188_frame frame;
        cjt188_scan(buf, *len, &frame, &scan);
    }
    ep->stats.bad_frames += scan.bad_checksum + scan.bad_end;
    *found = scan.result == CN_SCAN_FRAME;
    *delay_ms = 0;
    *request_bytes = scan.consumed;
    size_t reply = 0;
    if (*found) {
        ep->stats.requests++;
        reply = dispatch(world, endpoint, buf, scan.consumed, delay_ms, out, mono_ms);
        if (reply > 0)
            ep->stats.replies++;
        else
            ep->stats.dropped++;
        ep->stats.rx_bytes += scan.consumed;
        ep->stats.tx_bytes += reply;
    }
    memmove(buf, buf + scan.consumed, *len - scan.consumed);
    *len -= scan.consumed;
    return reply;
}

bool sim_cn_wire_value(const struct sim_device *dev, size_t i, double *value)
{
    const struct drv_point *pt = &dev->model->points[i];
    if (dev->model->protocol == DRV_PROTO_DLT645) {
        if (pt->status != NULL)
            return false;
        struct dlt645_point item = {
            .variant = dev->model->dlt645_version == 1997 ? DLT645_1997 : DLT645_2007,
            .di = pt->di, .encoding = DLT645_BCD, .nbytes = pt->nbytes,
            .decimals = pt->decimals, .sign_bit = pt->sign_bit,
            .quantity = drv_quantity_name(pt->quantity), .scale = pt->scale};
        uint8_t bytes[16];
        return pt->nbytes <= sizeof bytes &&
               dlt645_encode_point(&item, dlt645_shown(dev, pt->quantity), bytes) == EST_OK &&
               dlt645_decode_point(&item, bytes, pt->nbytes, value) == EST_OK;
    }
    switch (pt->field) {
    case DRV_CJT188_CURRENT_VOLUME:
    case DRV_CJT188_SETTLEMENT_VOLUME: {
        uint8_t bytes[4];
        return cn_bcd_encode(dev->value[DRV_Q_VOLUME_M3], 4, 2, false, bytes) == EST_OK &&
               cn_bcd_decode(bytes, 4, 2, false, value) == EST_OK;
    }
    case DRV_CJT188_VALVE_FAULT:
        *value = valve_shown(dev) == CJT188_VALVE_ABNORMAL ? 1.0 : 0.0;
        return true;
    case DRV_CJT188_BATTERY_LOW:
        *value = dev->value[DRV_Q_BATTERY_LOW] != 0.0 ? 1.0 : 0.0;
        return true;
    case DRV_CJT188_VALVE:
        break; /* a state, like a Modbus status word */
    }
    return false;
}
