/* integrity.h - the database's periodic full integrity check, on its own
 * thread and its own read-only connection, so the core never waits for it.
 * The core takes the outcome (gw_integrity_take) and reports damage. */
#ifndef GW_INTEGRITY_H
#define GW_INTEGRITY_H

#include <stdint.h>

#include "estate.h"

struct gw_integrity;

/* Starts checking data_dir's database every every_ms (the first check
 * after one interval: the start-up quick check covers the start). */
est_err gw_integrity_start(const char *data_dir, int64_t every_ms, struct gw_integrity **out);

/* The problem found by the last check since the previous take (malloc'd,
 * the caller frees), or NULL when none was found or no check ran. */
char *gw_integrity_take(struct gw_integrity *checker);

/* Stops the thread (waits for a running check) and frees. NULL is a no-op. */
void gw_integrity_stop(struct gw_integrity *checker);

#endif
