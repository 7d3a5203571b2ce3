/* est_override.h - the one implementation of "--set PATH=VALUE": applies a
 * command-line override to a libconfig tree before the program reads it
 * (estate-gw, estate-ctl and estate-sim all use it).
 *
 * PATH is dot-separated names; a list element is named by its index
 * ("buses.0", "buses[0]") or by the value of its "id" or "name" member
 * ("meters.E-1", "endpoints.gw_a"). Missing groups on the way are created.
 * An existing scalar is set from VALUE typed by its own type; a missing key
 * is created (see est_override_mode). */
#ifndef EST_OVERRIDE_H
#define EST_OVERRIDE_H

#include <libconfig.h>
#include <stdbool.h>

#include "estate.h"

enum est_override_mode {
    /* A created key, and an integer given a fractional number, become
     * strings: the reader types them with its own rules (*created says so). */
    EST_OVERRIDE_NEW_AS_TEXT,
    /* A created key, and an existing non-string scalar whose type does not
     * take VALUE, get the type VALUE reads as: integer, number, true/false,
     * else string. */
    EST_OVERRIDE_NEW_INFERRED,
};

/* The outcome of one override. */
struct est_override_result {
    bool created;  /* a setting was created (its value may be text to type) */
    char *message; /* on failure: what was wrong, malloc'ed (NULL for ENOMEM) */
};

/* Applies text ("PATH=VALUE") to lc. Every setting the override created or
 * changed gets hook as its libconfig hook (may be NULL), so a reader can
 * name the override in its messages. Returns EST_OK, EST_ERR_INVALID with
 * result->message set, or EST_ERR_NOMEM. The caller frees result->message. */
est_err est_config_override(config_t *lc, const char *text, enum est_override_mode mode,
                            void *hook, struct est_override_result *result);

#endif
