/* fuzz_rtu_frame.c - libFuzzer harness for the RTU framing the RTU-over-TCP
 * link trusts with bytes off the network (drivers/rtu_frame.c): a request
 * built from the first bytes, the rest as the received stream, searched as a
 * whole and fed in pieces. Oracles: a frame found lies inside the stream,
 * comes from the request's slave with a good CRC and has the reply's
 * length (an exception's, the read's, or the write's echo). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
    if (!condition)
        abort();
}

static void check_frame(const uint8_t *request, const uint8_t *buf, size_t len,
                        const struct drv_rtu_scan *scan)
{
    if (scan->found == DRV_RTU_NOTHING)
        return;
    check(scan->start < scan->end && scan->end <= len);
    const uint8_t *frame = buf + scan->start;
    size_t n = scan->end - scan->start;
    check(n >= 5 && frame[0] == request[0]);
    uint16_t crc = drv_rtu_crc16(frame, n - 2);
    check(frame[n - 2] == (uint8_t)crc && frame[n - 1] == (uint8_t)(crc >> 8));
    if (scan->found == DRV_RTU_EXCEPTION)
        check(n == 5 && frame[1] == (request[1] | 0x80) && scan->exception == frame[2]);
    if (scan->found == DRV_RTU_REPLY && request[1] != 6) {
        uint16_t count = (uint16_t)(request[4] << 8 | request[5]);
        check(n == 5u + 2u * count);
        uint16_t regs[DRV_MAX_READ_REGS];
        drv_rtu_reply_registers(frame, count, regs);
    }
    if (scan->found == DRV_RTU_REPLY && request[1] == 6)
        check(n == DRV_RTU_REQUEST_BYTES && memcmp(frame, request, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    uint8_t request[DRV_RTU_REQUEST_BYTES];
    uint8_t slave = (uint8_t)(data[0] % 247 + 1);
    uint16_t address = (uint16_t)(data[2] << 8 | data[3]);
    uint16_t count = (uint16_t)(data[4] % DRV_MAX_READ_REGS + 1);
    switch (data[1] % 3) {
    case 0:
        drv_rtu_read_request(slave, DRV_FC_HOLDING, address, count, request);
        break;
    case 1:
        drv_rtu_read_request(slave, DRV_FC_INPUT, address, count, request);
        break;
    default:
        drv_rtu_write_request(slave, address, (uint16_t)(data[4] << 8 | data[5]), request);
        break;
    }
    const uint8_t *stream = data + 6;
    size_t len = size - 6;
    struct drv_rtu_scan whole;
    drv_rtu_find_reply(request, stream, len, &whole);
    check_frame(request, stream, len, &whole);
    /* Fed piece by piece, as the link does with each segment: every
     * answer on the way is a valid one. */
    size_t pieces = len < 600 ? len : 600;
    for (size_t part = 0; part <= pieces; part++) {
        struct drv_rtu_scan prefix;
        drv_rtu_find_reply(request, stream, part, &prefix);
        check_frame(request, stream, part, &prefix);
        if (prefix.found != DRV_RTU_NOTHING)
            break;
    }
    return 0;
}
