/* sim_pdu.c - the pure Modbus request handler of estate-sim (reads from the
 * driver tables, valve and panel writes, exceptions, fault dispositions)
 * and the wire helpers shared by the TCP and RTU front ends. */
#include "sim_pdu.h"

#include "sim_cnserial.h"

#include <math.h>
#include <string.h>

#define PANEL_STATUS_ADDRESS 9499 /* NOTIFIER panel status register (49500) */
#define PANEL_WRITE_RESET 0x0001
#define PANEL_WRITE_SILENCE 0x0002

/* ------------------------------------------------------------- encoding */

static bool is_counter(enum drv_quantity q)
{
    return q == DRV_Q_ENERGY_IMPORT_KWH || q == DRV_Q_ENERGY_EXPORT_KWH ||
           q == DRV_Q_ENERGY_TOTAL_KWH || q == DRV_Q_VOLUME_M3 || q == DRV_Q_REVERSE_VOLUME_M3;
}

/* Integer counters wrap like the real register: at the model's wrap value,
 * or else at the register's range. */
static double wrap_counter(const struct drv_model *model, const struct drv_point *pt, double v)
{
    double wrap = model->counter_wrap;
    if (wrap <= 0.0) {
        if (pt->type == DRV_TYPE_U32 || pt->type == DRV_TYPE_I32)
            wrap = 4294967296.0 * fabs(pt->scale);
        else if (pt->type == DRV_TYPE_U16 || pt->type == DRV_TYPE_I16)
            wrap = 65536.0 * fabs(pt->scale);
    }
    if (wrap <= 0.0 || !isfinite(v) || v < 0.0)
        return v;
    return fmod(v, wrap);
}

/* A status word as the model's file defines it: the valve position and
 * the flags (valve fault, battery low) the device shows now. */
static uint16_t status_word(const struct sim_device *dev, const struct drv_point *pt)
{
    double values[DRV_Q__COUNT];
    memcpy(values, dev->value, sizeof values);
    values[DRV_Q_VALVE] = (double)dev->valve;
    values[DRV_Q_VALVE_FAULT] = dev->valve_fault ? 1.0 : 0.0;
    double state = pt->quantity == DRV_Q_VALVE ? (double)dev->valve : dev->value[pt->quantity];
    return drv_status_encode(pt->status, state, values);
}

static void encode_point(const struct sim_device *dev, size_t i, uint16_t regs[2])
{
    const struct drv_point *pt = &dev->model->points[i];
    const struct sim_point *sp = &dev->points[i];
    if (pt->status != NULL) {
        drv_encode_value(status_word(dev, pt), pt->type, sp->order, 1.0, regs);
        return;
    }
    double v = dev->value[pt->quantity];
    if (is_counter(pt->quantity) && pt->type != DRV_TYPE_F32)
        v = wrap_counter(dev->model, pt, v);
    drv_encode_value(v, pt->type, sp->order, pt->scale != 0.0 ? pt->scale : 1.0, regs);
}

bool sim_device_wire_value(const struct sim_device *dev, size_t i, double *value)
{
    const struct drv_point *pt = &dev->model->points[i];
    if (dev->model->protocol != DRV_PROTO_MODBUS)
        return sim_cn_wire_value(dev, i, value);
    if (pt->status != NULL)
        return false;
    uint16_t words[2] = {0, 0};
    encode_point(dev, i, words);
    *value = drv_decode_value(words, pt->type, dev->points[i].order,
                              pt->scale != 0.0 ? pt->scale : 1.0);
    return true;
}

/* Copies the part of [start, start+n) words that overlaps the request. */
static void copy_overlap(uint16_t *regs, uint16_t address, uint16_t count, uint32_t start,
                         const uint16_t *words, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        uint32_t a = start + k;
        if (a >= address && a < (uint32_t)address + count)
            regs[a - address] = words[k];
    }
}

static uint8_t panel_function(const struct sim_device *dev)
{
    return dev->options.function == DRV_FC_INPUT ? DRV_FC_INPUT : DRV_FC_HOLDING;
}

void sim_device_read_registers(const struct sim_device *dev, uint8_t function, uint16_t address,
                               uint16_t count, uint16_t *regs)
{
    memset(regs, 0, (size_t)count * sizeof *regs);
    uint32_t end = (uint32_t)address + count;
    for (size_t i = 0; i < dev->model->npoints; i++) {
        const struct sim_point *sp = &dev->points[i];
        if (sp->function != function || sp->address >= end ||
            (uint32_t)sp->address + sp->nregs <= address)
            continue;
        uint16_t words[2] = {0, 0};
        encode_point(dev, i, words);
        copy_overlap(regs, address, count, sp->address, words, sp->nregs);
    }
    if (dev->nzones > 0 && function == panel_function(dev)) {
        for (uint16_t z = 0; z < dev->nzones; z++) {
            uint16_t a = dev->zone_wire[z];
            if (a >= address && a < end)
                regs[a - address] = sim_zone_register(dev->model->panel,
                                                    (enum sim_zone_state)dev->zones[z]);
        }
    }
}

/* -------------------------------------------------------------- replies */

static void reply_exception(struct sim_reply *out, uint8_t function, uint8_t code)
{
    out->kind = SIM_REPLY_PDU;
    out->pdu[0] = (uint8_t)(function | 0x80);
    out->pdu[1] = code;
    out->len = 2;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void handle_read(const struct sim_device *dev, const uint8_t *req, size_t len,
                        struct sim_reply *out)
{
    uint8_t function = req[0];
    if (len != 5) {
        reply_exception(out, function, SIM_EX_ILLEGAL_VALUE);
        return;
    }
    uint16_t address = be16(req + 1), count = be16(req + 3);
    if (count < 1 || count > DRV_MAX_READ_REGS) {
        reply_exception(out, function, SIM_EX_ILLEGAL_VALUE);
        return;
    }
    if ((uint32_t)address + count > 65536u) {
        reply_exception(out, function, SIM_EX_ILLEGAL_ADDRESS);
        return;
    }
    uint16_t regs[DRV_MAX_READ_REGS];
    sim_device_read_registers(dev, function, address, count, regs);
    out->kind = SIM_REPLY_PDU;
    out->pdu[0] = function;
    out->pdu[1] = (uint8_t)(count * 2);
    for (uint16_t i = 0; i < count; i++) {
        out->pdu[2 + 2 * i] = (uint8_t)(regs[i] >> 8);
        out->pdu[3 + 2 * i] = (uint8_t)(regs[i] & 0xFF);
    }
    out->len = 2 + (size_t)count * 2;
}

/* One register write; returns 0 or an exception code. */
static uint8_t write_register(struct sim_device *dev, uint16_t address, uint16_t value,
                              int64_t mono_ms)
{
    const struct drv_write *valve = dev->model->valve;
    if (valve != NULL && dev->has_valve &&
        address == (uint16_t)(valve->address + dev->options.address_base))
        return sim_device_valve_write(dev, value, mono_ms) ? 0 : SIM_EX_ILLEGAL_VALUE;
    if (dev->model->kind == DRV_KIND_FIRE_PANEL &&
        address == (uint16_t)(PANEL_STATUS_ADDRESS + dev->options.address_base)) {
        if (value == PANEL_WRITE_RESET)
            sim_device_panel_reset(dev);
        else if (value != PANEL_WRITE_SILENCE)
            return SIM_EX_ILLEGAL_VALUE;
        return 0;
    }
    return SIM_EX_ILLEGAL_ADDRESS;
}

static void handle_write_single(struct sim_device *dev, const uint8_t *req, size_t len,
                                int64_t mono_ms, struct sim_reply *out)
{
    if (len != 5) {
        reply_exception(out, req[0], SIM_EX_ILLEGAL_VALUE);
        return;
    }
    uint8_t ex = write_register(dev, be16(req + 1), be16(req + 3), mono_ms);
    if (ex != 0) {
        reply_exception(out, req[0], ex);
        return;
    }
    out->kind = SIM_REPLY_PDU;
    memcpy(out->pdu, req, 5); /* the echo */
    out->len = 5;
}

static void handle_write_multiple(struct sim_device *dev, const uint8_t *req, size_t len,
                                  int64_t mono_ms, struct sim_reply *out)
{
    if (len < 6) {
        reply_exception(out, req[0], SIM_EX_ILLEGAL_VALUE);
        return;
    }
    uint16_t address = be16(req + 1), count = be16(req + 3);
    uint8_t bytes = req[5];
    if (count < 1 || count > 123 || bytes != count * 2 || len != 6u + bytes) {
        reply_exception(out, req[0], SIM_EX_ILLEGAL_VALUE);
        return;
    }
    if (count != 1) { /* no model has more than one writable register */
        reply_exception(out, req[0], SIM_EX_ILLEGAL_ADDRESS);
        return;
    }
    uint8_t ex = write_register(dev, address, be16(req + 6), mono_ms);
    if (ex != 0) {
        reply_exception(out, req[0], ex);
        return;
    }
    out->kind = SIM_REPLY_PDU;
    memcpy(out->pdu, req, 5); /* function, address, count */
    out->len = 5;
}

/* The device's own answer, before faults. */
static void device_reply(struct sim_device *dev, const uint8_t *req, size_t len, int64_t mono_ms,
                         struct sim_reply *out)
{
    switch (req[0]) {
    case DRV_FC_HOLDING:
    case DRV_FC_INPUT:
        handle_read(dev, req, len, out);
        break;
    case 0x06:
        handle_write_single(dev, req, len, mono_ms, out);
        break;
    case 0x10:
        handle_write_multiple(dev, req, len, mono_ms, out);
        break;
    default:
        reply_exception(out, req[0], SIM_EX_ILLEGAL_FUNCTION);
        break;
    }
}

static void count_reply(struct sim_endpoint *ep, const struct sim_reply *out)
{
    if (out->kind == SIM_REPLY_NONE)
        ep->stats.dropped++;
    else if (out->kind == SIM_REPLY_PDU && out->len > 0 && (out->pdu[0] & 0x80))
        ep->stats.exceptions++;
    else
        ep->stats.replies++;
}

static void broadcast(struct sim_world *world, size_t endpoint, const uint8_t *req, size_t len,
                      int64_t mono_ms)
{
    if (req[0] != 0x06 && req[0] != 0x10)
        return;
    for (unsigned s = 1; s <= SIM_MAX_SLAVE; s++) {
        struct sim_device *dev = sim_world_slave(world, endpoint, s);
        if (dev == NULL || dev->fault == SIM_FAULT_SILENT || dev->fault == SIM_FAULT_EXCEPTION)
            continue;
        struct sim_reply ignored;
        device_reply(dev, req, len, mono_ms, &ignored);
    }
}

/* Applies the device's injected fault to its reply. */
static void apply_fault(const struct sim_device *dev, const uint8_t *req, struct sim_reply *out)
{
    switch (dev->fault) {
    case SIM_FAULT_SLOW:
        out->delay_ms = dev->fault_delay_ms;
        break;
    case SIM_FAULT_GARBAGE:
        out->kind = SIM_REPLY_GARBAGE;
        break;
    case SIM_FAULT_CRC:
        out->kind = SIM_REPLY_CORRUPT;
        break;
    case SIM_FAULT_EXCEPTION:
        reply_exception(out, req[0], dev->fault_code);
        break;
    case SIM_FAULT_SILENT:
        out->kind = SIM_REPLY_NONE;
        out->len = 0;
        break;
    case SIM_FAULT_DUPLICATE:
        out->kind = SIM_REPLY_DUPLICATE;
        out->delay_ms = dev->fault_delay_ms;
        break;
    case SIM_FAULT_BAD_LENGTH:
        out->kind = SIM_REPLY_BAD_LENGTH;
        break;
    case SIM_FAULT_WRONG_UNIT:
        out->kind = SIM_REPLY_WRONG_UNIT;
        break;
    case SIM_FAULT_NONE:
        break;
    }
}

void sim_pdu_handle(struct sim_world *world, size_t endpoint, uint8_t slave, const uint8_t *req,
                    size_t len, int64_t mono_ms, struct sim_reply *out)
{
    out->kind = SIM_REPLY_NONE;
    out->delay_ms = 0;
    out->len = 0;
    if (endpoint >= world->nendpoints)
        return;
    struct sim_endpoint *ep = &world->endpoints[endpoint];
    ep->stats.requests++;
    if (len < 1 || len > SIM_PDU_MAX) {
        ep->stats.bad_frames++;
        return;
    }
    if (slave == 0) {
        broadcast(world, endpoint, req, len, mono_ms);
        ep->stats.dropped++;
        return;
    }
    struct sim_device *dev = sim_world_slave(world, endpoint, slave);
    if (dev == NULL) {
        if (ep->unknown_slave == SIM_UNKNOWN_EXCEPTION)
            reply_exception(out, req[0], SIM_EX_GATEWAY_TARGET);
        count_reply(ep, out);
        return;
    }
    struct sim_device *twin = sim_world_slave_twin(world, endpoint, slave);
    if (twin != NULL && dev->fault == SIM_FAULT_SILENT)
        dev = twin; /* the other one answers alone */
    else if (twin != NULL && twin->fault != SIM_FAULT_SILENT)
        twin->requests++;
    else
        twin = NULL;
    dev->requests++;
    sim_device_valve_tick(dev, mono_ms);
    if (dev->fault != SIM_FAULT_SILENT && dev->fault != SIM_FAULT_EXCEPTION)
        device_reply(dev, req, len, mono_ms, out);
    apply_fault(dev, req, out);
    /* Two devices answering at once: their frames collide on the line. */
    if (twin != NULL && dev != twin && out->kind == SIM_REPLY_PDU)
        out->kind = SIM_REPLY_CORRUPT;
    if (dev->fault_replies_left > 0 && --dev->fault_replies_left == 0)
        sim_device_set_fault(dev, SIM_FAULT_NONE, 0, 0);
    count_reply(ep, out);
}

/* ---------------------------------------------------------- wire helpers */

uint16_t sim_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

int sim_rtu_request_length(const uint8_t *buf, size_t len)
{
    if (len < 2)
        return 0;
    switch (buf[1]) {
    case 0x01: case 0x02: case 0x03: case 0x04: case 0x05: case 0x06:
        return 8; /* slave, function, 2 x 2 bytes, CRC */
    case 0x0F: case 0x10:
        if (len < 7)
            return 0;
        return 9 + buf[6];
    default:
        return -1;
    }
}

unsigned sim_bits_per_char(int data_bits, char parity, int stop_bits)
{
    unsigned bits = 1u + (unsigned)data_bits + (unsigned)stop_bits;
    if (parity == 'E' || parity == 'O')
        bits++;
    return bits;
}

int64_t sim_wire_time_us(size_t nbytes, unsigned bits_per_char, int baud)
{
    if (baud <= 0)
        return 0;
    return (int64_t)nbytes * bits_per_char * 1000000 / baud;
}
