/* estate.h - the one error type, clock helpers and version shared by every
 * part of estate-gw (drivers, rules, gateway, simulator). No I/O here. */
#ifndef ESTATE_H
#define ESTATE_H

#include <stddef.h>
#include <stdint.h>

#define ESTATE_VERSION "0.1.0"

/* Every library function returns one of these (0 = success). */
typedef enum est_err {
    EST_OK = 0,
    EST_ERR_NOMEM,     /* allocation failed */
    EST_ERR_INVALID,   /* bad argument or malformed input */
    EST_ERR_RANGE,     /* value outside its allowed range */
    EST_ERR_NOTFOUND,  /* unknown id, name or key */
    EST_ERR_IO,        /* connect, read or write failed at the OS level */
    EST_ERR_TIMEOUT,   /* the peer did not answer in time */
    EST_ERR_PROTOCOL,  /* garbage, CRC error, wrong length or id in a reply */
    EST_ERR_EXCEPTION, /* the Modbus slave answered with an exception */
    EST_ERR_STATE,     /* operation not allowed in the current state */
    EST_ERR_PERM,      /* the caller's role may not do this */
    EST_ERR_DB,        /* the database refused or failed */
    EST_ERR_FULL,      /* a bounded queue or disk is full */
    EST_ERR__COUNT
} est_err;

/* Static English text for an error code; never NULL. */
const char *est_strerror(est_err err);

/* Wall-clock time in milliseconds since the Unix epoch (UTC). */
int64_t est_now_ms(void);

/* Monotonic time in milliseconds; only differences mean anything. */
int64_t est_mono_ms(void);

/* Formats ms since the epoch as RFC 3339 UTC with milliseconds,
 * e.g. "2026-11-27T03:32:51.123Z". out must hold EST_TS_LEN bytes. */
#define EST_TS_LEN 32
void est_format_ts(int64_t ms, char out[EST_TS_LEN]);

/* Parses what est_format_ts writes (also without milliseconds, and with a
 * numeric offset). Returns EST_OK and sets *ms, or EST_ERR_INVALID. */
est_err est_parse_ts(const char *text, int64_t *ms);

/* Lower-level sleep helper that restarts after signals. */
void est_sleep_ms(int64_t ms);

/* The first line of a small text file (a secret such as a password file),
 * without its line end: malloc'd, "" for an empty file, NULL when the file
 * cannot be read (errno says why). */
char *est_read_first_line(const char *path);

#endif
