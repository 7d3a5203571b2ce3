/* sim_command.h - estate-sim's control protocol: one JSON request in, one
 * JSON reply out (newline-delimited on the control socket), and the event
 * and fault "actions" that both the control interface and the config's
 * scripted scenario apply. Pure apart from the world it is given; the
 * caller holds world->lock. Never crashes on malformed input. */
#ifndef SIM_COMMAND_H
#define SIM_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "sim_world.h"

#define SIM_CONTROL_MAX_LINE 65536 /* longer request lines close the connection */

/* One fault or event for one device. */
struct sim_action {
    size_t device;        /* index into world->devices */
    bool is_fault;
    enum sim_fault fault;
    uint32_t delay_ms;
    uint8_t code;
    uint32_t count;       /* fault: requests it lasts for; 0 = until changed */
    struct sim_event ev;
};

/* Reads an action from a JSON object holding "device" and either "fault"
 * (with "delay_ms", "code") or "event" (with its parameters). Keys other
 * than those and the names in extra_keys (NULL-terminated, may be NULL) are
 * errors. EST_ERR_INVALID / EST_ERR_NOTFOUND with a message in err. */
est_err sim_action_parse(const struct sim_world *world, const cJSON *obj,
                         const char *const *extra_keys, struct sim_action *out, char *err,
                         size_t errlen);

/* Applies a parsed action. */
est_err sim_action_apply(struct sim_world *world, const struct sim_action *action,
                         int64_t mono_ms, char *err, size_t errlen);

/* One-line human description for the log, e.g. "E-1-102 event reverse". */
void sim_action_describe(const struct sim_world *world, const struct sim_action *action,
                         char *out, size_t outlen);

/* Executes one request line (len bytes, need not be NUL-terminated).
 * Returns a malloc'd JSON reply without the trailing newline (the caller
 * frees it); NULL only when out of memory. Requests:
 *   {"cmd":"list"} {"cmd":"get","device":ID} {"cmd":"freeze","on":B}
 *   {"cmd":"fault",...} {"cmd":"event",...} {"cmd":"stats"} {"cmd":"time"}
 *   {"cmd":"ping"} */
char *sim_command_execute(struct sim_world *world, const char *line, size_t len,
                          int64_t mono_ms);

#endif
