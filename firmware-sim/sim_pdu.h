/* sim_pdu.h - the simulator's pure Modbus request handler: one request PDU
 * for (endpoint, slave id) in, one reply PDU (or a fault disposition) out,
 * served from the driver tables through drivers.h. Also the wire helpers
 * both front ends share: CRC-16, RTU request lengths, character timing.
 * No I/O, no locks: the caller holds world->lock. */
#ifndef SIM_PDU_H
#define SIM_PDU_H

#include <stddef.h>
#include <stdint.h>

#include "sim_world.h"

#define SIM_PDU_MAX 253 /* function code + data */

/* Modbus exception codes. */
enum {
    SIM_EX_ILLEGAL_FUNCTION = 0x01,
    SIM_EX_ILLEGAL_ADDRESS = 0x02,
    SIM_EX_ILLEGAL_VALUE = 0x03,
    SIM_EX_DEVICE_FAILURE = 0x04,
    SIM_EX_GATEWAY_PATH = 0x0A,
    SIM_EX_GATEWAY_TARGET = 0x0B,
};

enum sim_reply_kind {
    SIM_REPLY_PDU,     /* send pdu[0..len) (a normal or an exception reply) */
    SIM_REPLY_NONE,    /* send nothing */
    SIM_REPLY_GARBAGE, /* send len random bytes instead of a frame */
    SIM_REPLY_CORRUPT, /* send pdu but break the framing (RTU CRC, TCP transaction id) */
    SIM_REPLY_DUPLICATE,  /* send the pdu's frame twice (TCP; once on RTU) */
    SIM_REPLY_BAD_LENGTH, /* TCP: 6 zero bytes behind the PDU, counted in the MBAP length
                           * (the PDU's own byte count disagrees); RTU: as PDU */
    SIM_REPLY_WRONG_UNIT, /* send the pdu from the next unit (slave) id */
};

struct sim_reply {
    enum sim_reply_kind kind;
    uint32_t delay_ms; /* extra delay before replying (slow fault) */
    size_t len;
    uint8_t pdu[SIM_PDU_MAX];
};

/* Handles one request PDU (function code first) addressed to slave on
 * endpoint, at monotonic time mono_ms (valve travel). Slave 0 is a
 * broadcast: writes act on every device of the endpoint, nothing is sent.
 * Updates the endpoint's and the device's request statistics. */
void sim_pdu_handle(struct sim_world *world, size_t endpoint, uint8_t slave, const uint8_t *req,
                    size_t len, int64_t mono_ms, struct sim_reply *out);

/* Fills regs[0..count) with what the device shows for function (3 or 4)
 * from address: table points encoded with drv_encode_value in the device's
 * effective order, zone registers for panels, 0 elsewhere. */
void sim_device_read_registers(const struct sim_device *dev, uint8_t function, uint16_t address,
                               uint16_t count, uint16_t *regs);

/* The value a gateway reads for model point i of dev: its registers
 * encoded as served, decoded back with drv_decode_value. false for points
 * a plain number cannot express (decode hooks). */
bool sim_device_wire_value(const struct sim_device *dev, size_t i, double *value);

/* Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF). On the wire the
 * low byte goes first. */
uint16_t sim_crc16(const uint8_t *data, size_t len);

/* Length of the RTU request frame starting at buf (slave, function, ...,
 * CRC) as far as it can be told from the first len bytes: the full length,
 * 0 when more bytes are needed to tell, -1 for a function whose length is
 * not known (the caller waits for the inter-frame silence). */
int sim_rtu_request_length(const uint8_t *buf, size_t len);

/* Bits one character takes on the wire: start + data + parity + stop. */
unsigned sim_bits_per_char(int data_bits, char parity, int stop_bits);

/* Microseconds that nbytes take on the wire at baud. */
int64_t sim_wire_time_us(size_t nbytes, unsigned bits_per_char, int baud);

#endif
