/* sim_cnserial.h - what an rtu endpoint of estate-sim that speaks DL/T 645
 * or CJ/T 188 does with the bytes it receives: finds request frames with
 * the codecs' scanners, hands each to the device with that address (its
 * state in the world turned into a sim_dlt645_meter / sim_cjt188_meter),
 * and returns the reply. The pty and the wire timing stay in sim_rtu.c.
 * Call with world->lock held. */
#ifndef SIM_CNSERIAL_H
#define SIM_CNSERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "sim_world.h"

#define SIM_CN_REPLY_MAX 300

/* Looks for the first complete request in buf[0..*len); drops what it
 * used (and noise before it) from buf. Returns the reply length written
 * to out (0: no reply, or no complete request yet: *found says which),
 * *request_bytes the request's size on the wire, *delay_ms a slow
 * device's extra delay. */
size_t sim_cn_serve(struct sim_world *world, size_t endpoint, uint8_t *buf, size_t *len,
                    bool *found, size_t *request_bytes, uint32_t *delay_ms, uint8_t *out,
                    int64_t mono_ms);

/* The value a gateway decodes from what point i of a DL/T 645 or CJ/T 188
 * device shows now (for the control interface's get); false for states. */
bool sim_cn_wire_value(const struct sim_device *dev, size_t i, double *value);

#endif
