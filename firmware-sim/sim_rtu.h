/* sim_rtu.h - estate-sim's Modbus RTU front end: one pseudo-terminal (rtu)
 * or one TCP listener (rtu_over_tcp: RTU frames over TCP, one client at a
 * time, a new one replacing the old) and one thread per endpoint. The pty's
 * slave side is symlinked to the endpoint's `link` path for the gateway to
 * open. A slow fault's reply is sent late while later frames are served.
 * Frames end at the
 * 3.5-character silence (or, for FC01-06/15/16 requests, at their known
 * length); a bad CRC gets no reply; replies go out only after the time the
 * request and reply would take on the wire plus the turnaround. */
#ifndef SIM_RTU_H
#define SIM_RTU_H

#include <stddef.h>

#include "estate.h"
#include "sim_world.h"

struct sim_rtu;

/* Opens the pty, creates the link (replacing an old symlink, never a
 * regular file) and starts the thread. EST_ERR_IO with a message in err. */
est_err sim_rtu_start(struct sim_world *world, size_t endpoint, struct sim_rtu **out, char *err,
                      size_t errlen);

/* Stops the thread, closes the pty and removes the link. NULL is fine. */
void sim_rtu_stop(struct sim_rtu *rtu);

#endif
