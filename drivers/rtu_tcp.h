/* rtu_tcp.h - the socket side of the RTU-over-TCP link (private to
 * drivers/): connect, send one request ADU, collect the reply from a TCP
 * stream with the framing of rtu_frame.c, drain what a garbled exchange
 * left behind. link.c owns the pacing, reconnects and statistics. */
#ifndef DRV_RTU_TCP_H
#define DRV_RTU_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers.h"

/* A connected, non-blocking TCP socket to host:port within timeout_us, or
 * -1 (errno set). */
int drv_rtutcp_connect(const char *host, int port, int64_t timeout_us);

/* Throws away bytes already waiting (a late reply to an earlier request).
 * false when the peer closed the connection or it failed. */
bool drv_rtutcp_discard(int fd);

/* Reads and throws away bytes until quiet_us pass without any, at most
 * max_us in all. false when the connection closed or failed. */
bool drv_rtutcp_drain(int fd, int64_t quiet_us, int64_t max_us);

/* Timing of one exchange. */
struct drv_rtutcp_timing {
    int64_t response_us;      /* from the request to the whole reply */
    int64_t frame_gap_us;     /* silence after some bytes that ends a frame */
};

/* Sends request and waits for its reply. EST_OK (a read's registers in
 * dest[0..count)), EST_ERR_EXCEPTION (*exception), EST_ERR_PROTOCOL (a
 * garbled reply, a CRC error, a frame that does not answer the request:
 * *garbled is set, drain before the next request; also when only frames
 * of other slaves came), EST_ERR_TIMEOUT (not a byte), EST_ERR_IO (the
 * connection failed or closed). */
est_err drv_rtutcp_transact(int fd, const uint8_t request[DRV_RTU_REQUEST_BYTES],
                            const struct drv_rtutcp_timing *timing, uint16_t *dest,
                            uint16_t count, int *exception, bool *garbled);

#endif
