/* rtu_frame.c - Modbus RTU framing without I/O: CRC-16, request ADUs, and
 * finding the reply to a request in a byte stream that may hold garbage,
 * stray frames of other slaves or only part of the reply so far. Used by
 * the RTU-over-TCP link and the commissioning scan. */
#include "drivers.h"

#include <string.h>

#define EXCEPTION_FLAG 0x80
#define FC_WRITE_SINGLE 6
#define EXCEPTION_FRAME_BYTES 5 /* slave, function | 0x80, code, CRC */
#define READ_REPLY_OVERHEAD 5   /* slave, function, byte count, CRC */

uint16_t drv_rtu_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static void put_crc(uint8_t *frame, size_t len)
{
    uint16_t crc = drv_rtu_crc16(frame, len);
    frame[len] = (uint8_t)(crc & 0xFF);
    frame[len + 1] = (uint8_t)(crc >> 8);
}

static void build_request(uint8_t slave, uint8_t function, uint16_t first, uint16_t second,
                          uint8_t *out)
{
    out[0] = slave;
    out[1] = function;
    out[2] = (uint8_t)(first >> 8);
    out[3] = (uint8_t)first;
    out[4] = (uint8_t)(second >> 8);
    out[5] = (uint8_t)second;
    put_crc(out, 6);
}

void drv_rtu_read_request(uint8_t slave, uint8_t function, uint16_t address, uint16_t count,
                          uint8_t out[DRV_RTU_REQUEST_BYTES])
{
    build_request(slave, function, address, count, out);
}

void drv_rtu_write_request(uint8_t slave, uint16_t address, uint16_t value,
                           uint8_t out[DRV_RTU_REQUEST_BYTES])
{
    build_request(slave, FC_WRITE_SINGLE, address, value, out);
}

static bool crc_matches(const uint8_t *frame, size_t len)
{
    uint16_t crc = drv_rtu_crc16(frame, len - 2);
    return frame[len - 2] == (uint8_t)(crc & 0xFF) && frame[len - 1] == (uint8_t)(crc >> 8);
}

/* Length of a reply frame (FC03/04/06 or an exception) starting at p, as
 * far as avail bytes tell: > 0 the length, 0 more bytes needed, -1 not the
 * start of a reply. */
static int reply_length(const uint8_t *p, size_t avail)
{
    if (avail < 2)
        return 0;
    if (p[0] == 0 || p[0] > 247)
        return -1;
    uint8_t function = p[1] & (uint8_t)~EXCEPTION_FLAG;
    if (function != DRV_FC_HOLDING && function != DRV_FC_INPUT && function != FC_WRITE_SINGLE)
        return -1;
    if (p[1] & EXCEPTION_FLAG)
        return EXCEPTION_FRAME_BYTES;
    if (function == FC_WRITE_SINGLE)
        return DRV_RTU_REQUEST_BYTES;
    if (avail < 3)
        return 0;
    if (p[2] == 0 || p[2] % 2 != 0 || p[2] > 2 * DRV_MAX_READ_REGS)
        return -1;
    return READ_REPLY_OVERHEAD + p[2];
}

/* A well-formed frame from the request's slave: does it answer it? */
static enum drv_rtu_found judge_frame(const uint8_t *request, const uint8_t *frame, size_t len,
                                      int *exception)
{
    uint8_t function = request[1];
    if (frame[1] == (function | EXCEPTION_FLAG)) {
        *exception = frame[2];
        return DRV_RTU_EXCEPTION;
    }
    if (frame[1] != function)
        return DRV_RTU_MISMATCH;
    if (function == FC_WRITE_SINGLE)
        return memcmp(frame, request, DRV_RTU_REQUEST_BYTES) == 0 ? DRV_RTU_REPLY
                                                                  : DRV_RTU_MISMATCH;
    unsigned count = (unsigned)request[4] << 8 | request[5];
    return frame[2] == 2 * count && len == READ_REPLY_OVERHEAD + 2 * count ? DRV_RTU_REPLY
                                                                           : DRV_RTU_MISMATCH;
}

void drv_rtu_find_reply(const uint8_t request[DRV_RTU_REQUEST_BYTES], const uint8_t *buf,
                        size_t len, struct drv_rtu_scan *out)
{
    memset(out, 0, sizeof *out);
    out->found = DRV_RTU_NOTHING;
    size_t i = 0;
    while (i < len) {
        int need = reply_length(buf + i, len - i);
        if (need <= 0 || (size_t)need > len - i) {
            i++; /* not a frame start, or not all here yet: a later start may be */
            continue;
        }
        const uint8_t *frame = buf + i;
        if (!crc_matches(frame, (size_t)need)) {
            out->bad_crc++;
            i++;
            continue;
        }
        if (frame[0] != request[0]) {
            out->other_slave++;
            i += (size_t)need;
            continue;
        }
        out->found = judge_frame(request, frame, (size_t)need, &out->exception);
        out->start = i;
        out->end = i + (size_t)need;
        return;
    }
}

void drv_rtu_reply_registers(const uint8_t *frame, uint16_t count, uint16_t *dest)
{
    for (uint16_t i = 0; i < count; i++)
        dest[i] = (uint16_t)(frame[3 + 2 * i] << 8 | frame[4 + 2 * i]);
}
