/* sim_log.h - estate-sim's log: one line per event on stderr, prefixed with
 * the UTC time and the program name. Never called per request. */
#ifndef SIM_LOG_H
#define SIM_LOG_H

void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
