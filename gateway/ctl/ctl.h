/* ctl.h - private to estate-ctl: the parsed command line, the verb table's
 * entry, each verb group's handlers and the helpers they share
 * (ctl_common.c). */
#ifndef CTL_H
#define CTL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "est_cli.h"
#include "estate.h"
#include "office.h" /* gw_table_column, gw_table_print (report.h) */
#include "store.h"
#include "views.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The parsed command line and the loaded config. */
struct ctl {
    struct est_cli common; /* -c FILE, --set PATH=VALUE, --help, --version */
    const char *config_path;
    bool json, csv;
    const char *user;
    struct gw_config *config;
    int argc;           /* the verb and its arguments */
    char **argv;
    bool *used;         /* argv entries consumed by the verb */
};

/* One verb: its name (argv[0] of the verb), handler and usage lines. */
struct ctl_verb {
    const char *name;
    int (*handler)(struct ctl *c);
    const char *usage;
};

/* Verb handlers: each returns the exit code (EST_EXIT_*). */
int ctl_verb_inventory(struct ctl *c);  /* ctl_inventory.c */
int ctl_verb_readings(struct ctl *c);
int ctl_verb_incidents(struct ctl *c);  /* ctl_incidents.c */
int ctl_verb_incident(struct ctl *c);   /* ctl_incidents.c */
int ctl_verb_workorders(struct ctl *c); /* ctl_workorders.c */
int ctl_verb_workorder(struct ctl *c);
int ctl_verb_handover(struct ctl *c);
int ctl_verb_patrol(struct ctl *c);     /* ctl_patrol.c */
int ctl_verb_report(struct ctl *c);     /* ctl_report.c */
int ctl_verb_unit(struct ctl *c);       /* ctl_units.c */
int ctl_verb_user(struct ctl *c);       /* ctl_users.c */
int ctl_verb_scan(struct ctl *c);       /* ctl_scan.c */
/* scan on a DL/T 645 or CJ/T 188 line (ctl_scan_cn.c), from ctl_verb_scan. */
int ctl_scan_national(struct ctl *c);
/* 0 when the running gateway does not poll bus (config index index), or
 * force; else prints why the scan is refused and returns the exit code. */
int ctl_scan_check_owner(const struct ctl *c, const struct gw_bus_config *bus, size_t index,
                         bool force);
int ctl_verb_backup(struct ctl *c);     /* ctl_backup.c */
int ctl_verb_restore(struct ctl *c);
int ctl_verb_reload(struct ctl *c);     /* ctl_reload.c */

/* Prints "estate-ctl: MESSAGE" and the --help hint; returns EST_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of "--name VALUE" or "--name=VALUE" among the verb's arguments
 * (NULL if absent); marks it used. *missing set when the option is present
 * without a value. */
const char *ctl_option_value(struct ctl *c, const char *name, bool *missing);
/* Whether the flag is among the verb's arguments; marks it used. */
bool ctl_option_flag(struct ctl *c, const char *name);
/* The n-th (0-based) argument after the verb that is not an option. */
const char *ctl_positional(struct ctl *c, int n);
/* After a verb took what it knows: anything left is a usage error. */
int ctl_leftover_arguments(const struct ctl *c);
bool ctl_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out);
/* RFC 3339, or relative to now: "+2h", "+3d", "-24h". */
bool ctl_parse_time(const char *text, int64_t *ms);

void ctl_print_json(const cJSON *item);
/* Rows as JSON (--json), CSV (--csv) or an aligned table. */
void ctl_print_rows(const struct ctl *c, const cJSON *rows, const struct gw_table_column *cols,
                    size_t ncols);

/* A new object appended to the array rows (a listing's row), or NULL when
 * out of memory. */
cJSON *ctl_add_row(cJSON *rows);

/* Adds the JSON text stored for a record (NULL or unparsable: nothing). */
void ctl_add_parsed(cJSON *o, const char *key, const char *json_text);

/* The store in the config's data_dir, or NULL after printing why. */
struct gw_store *ctl_open_store(const struct ctl *c, bool readonly);
/* For a verb that only reads: refuses leftover arguments, then opens the
 * store read-only; NULL with *status the exit code when either fails. */
struct gw_store *ctl_open_for_reading(struct ctl *c, int *status);
/* Prints the store's error about what, closes it; returns EST_EXIT_RUNTIME. */
int ctl_store_failure(struct gw_store *store, const char *what);
/* Queues verb/args for the daemon and waits for its answer. 0 with
 * *result set, or 1 after printing why. */
int ctl_ask_daemon(const struct ctl *c, const char *verb, cJSON *args, cJSON **result);
/* Prints a refusal and returns 1, or 0 when the result is ok. */
int ctl_check_result(const struct ctl *c, const cJSON *result);
/* ctl_ask_daemon, then ctl_check_result; frees args. 0 with *result to
 * print and free, else the exit code (after printing why, *result NULL). */
int ctl_request(const struct ctl *c, const char *verb, cJSON *args, cJSON **result);
/* Prints item as JSON when --json was given; returns whether it did. */
bool ctl_json_out(const struct ctl *c, const cJSON *item);
/* The end of a listing verb: when the store failed (err) prints why and
 * returns EST_EXIT_RUNTIME, else prints rows (ctl_print_rows) and returns 0.
 * Closes the store and frees rows either way. */
int ctl_list_done(const struct ctl *c, struct gw_store *store, est_err err, const char *what,
                  cJSON *rows, const struct gw_table_column *cols, size_t ncols);

#endif
