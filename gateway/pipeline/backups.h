/* backups.h - the daily scheduled backup (gateway.backup_at, backup_dir,
 * backup_keep), on its own thread and its own read-only connection: the
 * copy goes a few pages at a time, so the core never waits for it. */
#ifndef GW_BACKUPS_H
#define GW_BACKUPS_H

#include "config.h"
#include "estate.h"

struct gw_backups;

/* Starts the schedule of config's gateway section (config must outlive it):
 * checked soon after the start, then every 30 s; a day's backup is taken at
 * the first check at or after backup_at when backup_dir holds none of that
 * day taken at or after backup_at. Then only the newest backup_keep copies
 * named estate-YYYYmmdd-HHMMSS.db are kept. backup_keep 0: nothing starts
 * (*out NULL, EST_OK). */
est_err gw_backups_start(const struct gw_config *config, struct gw_backups **out);

/* Stops the thread (waits for a backup being taken) and frees. NULL is a no-op. */
void gw_backups_stop(struct gw_backups *backups);

#endif
