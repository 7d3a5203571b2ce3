/* sim_loop.h - estate-sim's main event loop: one epoll thread that serves
 * every Modbus TCP endpoint (many listening ports, many connections each,
 * MBAP framing with partial reads and writes), the JSON control socket,
 * the physics tick and the scripted scenario. Slow-reply faults are timers
 * in the loop, never sleeps. No allocation per request. */
#ifndef SIM_LOOP_H
#define SIM_LOOP_H

#include <stddef.h>

#include "estate.h"
#include "sim_config.h"

struct sim_loop;

/* Binds every TCP endpoint and the control socket of setup (which must
 * outlive the loop) and opens the epoll set. On failure returns
 * EST_ERR_IO with a message in err. */
est_err sim_loop_open(struct sim_setup *setup, struct sim_loop **out, char *err, size_t errlen);

/* Runs until SIGINT/SIGTERM arrives (the caller blocks them in every
 * thread first; the loop reads them from a signalfd) or sim_loop_stop(). */
est_err sim_loop_run(struct sim_loop *loop);

/* Asks a running loop to return; safe from any thread. */
void sim_loop_stop(struct sim_loop *loop);

void sim_loop_close(struct sim_loop *loop);

/* Parses "host:port" into a bound, listening, non-blocking socket; logs the
 * actual port (useful with port 0). -1 with a message in err. */
int sim_listen_tcp(const char *address, const char *what, char *err, size_t errlen);

#endif
