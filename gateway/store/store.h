/* store.h - the gateway's SQLite storage: meter inventory and occupancy,
 * readings and daily snapshots, incidents, the durable MQTT outbox, the
 * tamper-evident patrol log, work orders, a small key/value table and the
 * estate-ctl -> daemon request queue.
 *
 * Ownership and threads: a struct gw_store is one SQLite connection owned by
 * exactly one thread (the daemon's core thread; estate-ctl opens its own).
 * Every statement is prepared once at open and reused; values only ever
 * reach SQL as bound parameters. Nothing here logs: every function returns an
 * est_err and gw_store_errmsg() gives the reason (SQLite's own message where
 * SQLite failed).
 *
 * Transactions: every function that writes more than one row runs in its
 * own transaction, or - when the caller already opened one with
 * gw_store_begin() - in a savepoint inside it, so a caller can make several
 * calls atomic (e.g. open an incident and append its patrol entry).
 *
 * Conventions: times are ms since the Unix epoch (UTC) in fields named *_ms;
 * a time of 0 means "none" and is stored as NULL. Row ids (incidents, work
 * orders, patrol seq, outbox seq) start at 1, so 0 means "none" too. Strings
 * handed to callbacks are borrowed: valid only during the callback. A
 * callback returns true to continue, false to stop early (the listing
 * function then still returns EST_OK). A callback may call other gw_store
 * functions that read, but must not call the listing function that is
 * calling it nor write to the table being listed (collect ids, act after the
 * listing returns) - gw_store_ctl_take_pending() is the one exception.
 *
 * Files: the store owns the database file and every table in it, and no
 * other part of the gateway sees SQL. schema.c opens and closes it (pragmas,
 * schema migrations, preparing the statements) and runs transactions;
 * sql.c holds the helpers that bind and step statements; each table or
 * concern has its own file with its SQL, named result columns and row
 * mappers: inventory.c (meters, units, occupancy, replacements), readings.c
 * (readings and their index, retention, daily snapshots), incidents.c,
 * outbox.c, patrol.c (the hash chain, anchors, verification), workorders.c
 * (work orders and their history), requests.c (the estate-ctl request
 * queue), meta.c (key/value) and backup.c (online copies, checking a copy,
 * taking the database offline for a restore). store_internal.h is shared by
 * those files only. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "drivers.h"
#include "estate.h"

/* Schema version this build writes (PRAGMA user_version). */
#define GW_STORE_SCHEMA_VERSION 6

/* File name of the database inside data_dir. */
#define GW_STORE_DB_FILE "estate.db"

/* Size of a buffer holding a SHA-256 hex digest and its NUL. */
#define GW_STORE_HASH_LEN 65

struct gw_store;

/* ------------------------------------------------------------------ */
/* Open, close, transactions                                           */
/* ------------------------------------------------------------------ */

/* Opens (creating when needed) data_dir/estate.db.
 * Read-write: creates data_dir (and parents) with mode 0700 and the database
 * file with mode 0600, sets WAL, synchronous=NORMAL, foreign keys and a
 * 5000 ms busy timeout, and applies pending schema migrations in one
 * transaction. Read-only: opens an existing database without changing it;
 * its schema must be current (EST_ERR_STATE otherwise).
 * On failure *out is NULL and, when errbuf is not NULL, errbuf receives a
 * NUL-terminated reason (truncated to errbuf_len). Errors: EST_ERR_INVALID,
 * EST_ERR_IO (directory or file), EST_ERR_NOTFOUND (read-only, no database),
 * EST_ERR_STATE (schema newer than this build, or outdated when read-only),
 * EST_ERR_DB, EST_ERR_NOMEM. */
est_err gw_store_open(const char *data_dir, bool readonly, struct gw_store **out, char *errbuf,
                      size_t errbuf_len);

/* Checkpoints the WAL into the database (read-write), finalizes every
 * statement and closes. Rolls back a transaction left open. NULL is a no-op.
 * Returns EST_ERR_DB when the checkpoint failed; the store is freed anyway. */
est_err gw_store_close(struct gw_store *store);

/* The reason for the last failure on this store ("" if none). Valid until
 * the next call on the store. */
const char *gw_store_errmsg(const struct gw_store *store);

/* How many statements on this store failed for want of space or an I/O
 * error (SQLITE_FULL, SQLITE_IOERR, SQLITE_CANTOPEN) since it was opened:
 * compare before and after a piece of work to tell whether it was stored. */
uint64_t gw_store_write_failures(const struct gw_store *store);

/* Whether a transaction opened with gw_store_begin() is open. */
bool gw_store_in_transaction(const struct gw_store *store);

/* Keeps a reserve file of bytes in data_dir (creating it now as far as
 * space allows), so that a full disk still leaves room to checkpoint the
 * WAL: gw_store_make_room() gives it up, checkpoints and takes back what is
 * left. Also limits the WAL file kept after a checkpoint to that size. */
est_err gw_store_keep_reserve(struct gw_store *store, const char *data_dir, size_t bytes);

/* Disk full: releases the reserve, checkpoints the WAL into the database
 * and truncates it, then re-creates the reserve with the space left. EST_OK
 * when the checkpoint completed. */
est_err gw_store_make_room(struct gw_store *store);

/* WAL checkpoints of a read-write store since it was opened: the one at
 * open (the WAL a previous run left), SQLite's automatic ones (PASSIVE once
 * the WAL holds 1000 pages, run and counted by the store) and
 * gw_store_make_room's. A read-only store runs none. */
struct gw_store_checkpoint_stats {
    uint64_t checkpoints;       /* completed */
    int64_t last_checkpoint_ms; /* wall clock of the last completed one, 0 none */
    int wal_pages;              /* frames in the WAL after the last commit */
};
void gw_store_checkpoint_stats(const struct gw_store *store, struct gw_store_checkpoint_stats *out);

/* PRAGMA quick_check (full=false) or integrity_check (full=true). *problem
 * is NULL when the database is sound, else a malloc'd description (the first
 * problems SQLite reports) the caller frees. */
est_err gw_store_check_integrity(struct gw_store *store, bool full, char **problem);

/* Opens the database file db_path read-only (e.g. a backup copy, see
 * gw_store_verify_copy); errors as gw_store_open read-only. */
est_err gw_store_open_file(const char *db_path, struct gw_store **out, char *errbuf,
                           size_t errbuf_len);

/* Starts a write transaction (BEGIN IMMEDIATE) for batching several calls.
 * EST_ERR_STATE if one is already open. */
est_err gw_store_begin(struct gw_store *store);
/* Commits it; on failure it is rolled back and the error returned. */
est_err gw_store_commit(struct gw_store *store);
/* Rolls it back; a no-op when none is open. */
est_err gw_store_rollback(struct gw_store *store);

/* ------------------------------------------------------------------ */
/* Inventory: meters, units, replacements                              */
/* ------------------------------------------------------------------ */

enum gw_store_meter_status {
    GW_STORE_METER_OK,
    GW_STORE_METER_OFFLINE,
    GW_STORE_METER_DAMAGED,
    GW_STORE_METER_REPLACED,
};

/* "ok", "offline", "damaged", "replaced"; NULL for a bad value. */
const char *gw_store_meter_status_name(enum gw_store_meter_status status);

/* Brings meters and units in line with the config in one transaction:
 * - a meter or unit new to the database is inserted (install_ms = now_ms);
 * - an existing one gets the config's descriptive columns (kind, category,
 *   unit, building, location, driver, bus, slave, parent, valve);
 * - serial: the config's serial is taken when the meter is new or when the
 *   config's serial changed since the last sync; otherwise the database's
 *   (which may have been updated at run time by a detected replacement) wins;
 * - occupancy is taken from the config ONLY for units not yet in the
 *   database: changes made at run time persist and win;
 * - meters and units no longer in the config are flagged removed (their
 *   history stays); ones back in the config are un-flagged.
 * meter_rids, when not NULL, receives config->nmeters row ids in config
 * order, for gw_store_add_readings(). */
est_err gw_store_sync_inventory(struct gw_store *store, const struct gw_config *config,
                                int64_t now_ms, int64_t *meter_rids);

/* Row id of meter id (the integer key readings and snapshots use).
 * EST_ERR_NOTFOUND if unknown. Callers cache it (see sync_inventory). */
est_err gw_store_meter_rowid(struct gw_store *store, const char *meter_id, int64_t *rid);

/* Sets a meter's status. EST_ERR_NOTFOUND if the meter is unknown. */
est_err gw_store_set_meter_status(struct gw_store *store, const char *meter_id,
                                  enum gw_store_meter_status status);

/* Sets a meter's inventory serial (a manual correction; a detected
 * replacement uses gw_store_record_replacement). serial NULL = unknown. */
est_err gw_store_update_serial(struct gw_store *store, const char *meter_id, const char *serial);

/* One meter replacement: the old device's serial and last reading, the new
 * one's serial and first reading (readings as JSON objects, may be NULL). */
struct gw_store_replacement {
    const char *meter_id;
    int64_t ts_ms;                      /* when the replacement was detected */
    const char *old_serial;             /* NULL = unknown */
    const char *old_last_reading_json;
    const char *new_serial;             /* becomes the meter's serial */
    const char *new_first_reading_json;
};

/* Records a replacement and sets the meter's serial to new_serial, in one
 * transaction. EST_ERR_NOTFOUND if the meter is unknown. */
est_err gw_store_record_replacement(struct gw_store *store, const struct gw_store_replacement *r);

/* Replacement history between from_ms (inclusive) and to_ms (exclusive),
 * oldest first; meter_id NULL = every meter. */
typedef bool (*gw_store_replacement_fn)(void *ctx, const struct gw_store_replacement *r);
est_err gw_store_replacements_list(struct gw_store *store, const char *meter_id, int64_t from_ms,
                                   int64_t to_ms, gw_store_replacement_fn fn, void *ctx);

/* A meter row as listed (strings borrowed; NULL when absent). */
struct gw_store_meter {
    int64_t rid;                        /* row id (readings' key) */
    const char *id;
    const char *kind;                   /* "electricity" | "water" */
    const char *category;               /* "master", "unit", ... */
    const char *unit;                   /* unit id */
    const char *building;
    const char *location;
    const char *driver;                 /* model name, e.g. "sdm120" */
    const char *bus;                    /* bus name */
    int slave;                          /* Modbus; 0 on a DL/T 645 / CJ/T 188 bus */
    const char *address;                /* DL/T 645 / CJ/T 188: 12 / 14 digits; NULL on Modbus */
    const char *serial;
    const char *parent;                 /* upstream meter id */
    bool valve;
    int64_t install_ms;                 /* first seen by the gateway */
    const char *status;                 /* gw_store_meter_status_name() */
    int64_t last_good_ms;               /* 0 = never */
    const char *last_values_json;       /* values of the last good reading */
    bool removed;                       /* no longer in the config */
};

/* Every meter, by id. */
typedef bool (*gw_store_meter_fn)(void *ctx, const struct gw_store_meter *meter);
est_err gw_store_meters_list(struct gw_store *store, gw_store_meter_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Occupancy                                                           */
/* ------------------------------------------------------------------ */

/* A unit row as listed (strings borrowed). */
struct gw_store_unit {
    const char *id;                     /* "3-1201" */
    const char *building;
    bool vacant;
    int64_t occupancy_changed_ms;       /* last change (0 = never) */
    const char *occupancy_by;           /* who changed it ("config" at seeding) */
    bool removed;                       /* no longer in the config */
};

/* EST_ERR_NOTFOUND if the unit is unknown. */
est_err gw_store_get_occupancy(struct gw_store *store, const char *unit_id, bool *vacant);
/* Persists a run-time change. EST_ERR_NOTFOUND if the unit is unknown. */
est_err gw_store_set_occupancy(struct gw_store *store, const char *unit_id, bool vacant,
                               const char *who, int64_t ts_ms);
/* Every unit, by id. */
typedef bool (*gw_store_unit_fn)(void *ctx, const struct gw_store_unit *unit);
est_err gw_store_units_list(struct gw_store *store, gw_store_unit_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Readings and snapshots                                              */
/* ------------------------------------------------------------------ */

enum gw_store_quality { GW_STORE_GOOD = 0, GW_STORE_STALE = 1, GW_STORE_ERROR = 2 };

/* The columns kept for queries; NAN = absent (stored as NULL). */
struct gw_store_values {
    double energy_import_kwh;
    double energy_export_kwh;
    double power_w;
    double volume_m3;
    double flow_m3h;
};

/* Sets every value to NAN (absent). */
void gw_store_values_clear(struct gw_store_values *values);

/* One reading to store. */
struct gw_store_reading {
    int64_t meter_rid;                  /* from sync_inventory / meter_rowid */
    int64_t ts_ms;
    enum gw_store_quality quality;
    const struct drv_reading *reading;  /* when not NULL the columns come from it */
    struct gw_store_values values;      /* used when reading is NULL */
    const char *values_json;            /* every quantity as JSON, NULL = none */
};

/* Inserts n readings in one transaction and, for each meter with a good
 * reading in the batch, sets its last_good_ms / last_values_json to the
 * newest good one (one UPDATE per meter, never moving backwards in time).
 * To keep the cost per reading low on large sites, a meter's row is
 * rewritten on its first good reading through this store handle and then
 * only once its newest good reading is GW_STORE_LAST_GOOD_EVERY_MS newer
 * than the one last written: last_good_ms / last_values_json may lag the
 * newest reading by up to that much (the readings table has every one;
 * gw_store_readings_latest() is exact). */
#define GW_STORE_LAST_GOOD_EVERY_MS 10000
#define GW_STORE_LAST_GOOD_MAX_RID 4000000 /* larger rids are written every time */
est_err gw_store_add_readings(struct gw_store *store, const struct gw_store_reading *rows,
                              size_t n);

/* Readings are appended without a per-row index; gw_store_add_readings
 * indexes the newest ones by meter in bulk, once GW_STORE_INDEX_STEP_ROWS
 * are waiting or the oldest waiting one was stored GW_STORE_INDEX_STEP_MS
 * ago (queries see every reading either way). gw_store_index_readings does
 * it now, for whatever is waiting. */
#define GW_STORE_INDEX_STEP_ROWS 32768
#define GW_STORE_INDEX_STEP_MS 60000
est_err gw_store_index_readings(struct gw_store *store);

/* A stored reading (strings borrowed). */
struct gw_store_reading_row {
    int64_t meter_rid;
    const char *meter_id;               /* NULL in history listings */
    int64_t ts_ms;
    enum gw_store_quality quality;
    struct gw_store_values values;      /* NAN = absent */
    const char *values_json;
};
typedef bool (*gw_store_reading_fn)(void *ctx, const struct gw_store_reading_row *row);

/* The newest reading of each meter still in the inventory, by meter id. */
est_err gw_store_readings_latest(struct gw_store *store, gw_store_reading_fn fn, void *ctx);

/* One meter's readings with from_ms <= ts_ms < to_ms, oldest first, at most
 * limit rows (0 = no limit). */
est_err gw_store_readings_history(struct gw_store *store, int64_t meter_rid, int64_t from_ms,
                                  int64_t to_ms, size_t limit, gw_store_reading_fn fn, void *ctx);

/* Stores the midnight snapshot: the first reading of local_day
 * ("YYYY-MM-DD" in the site's time zone) for the meter. Later calls for the
 * same meter and day change nothing. *inserted (may be NULL) says whether
 * this call stored it. EST_ERR_INVALID for a malformed day. */
est_err gw_store_snapshot_if_needed(struct gw_store *store, int64_t meter_rid,
                                    const char *local_day, int64_t ts_ms,
                                    const struct gw_store_values *values, bool *inserted);

/* A daily snapshot (strings borrowed). Only the counters are kept. */
struct gw_store_snapshot {
    int64_t meter_rid;
    const char *meter_id;
    const char *day;                    /* "YYYY-MM-DD" local */
    int64_t ts_ms;                      /* the reading it was taken from */
    double energy_import_kwh;           /* NAN = absent */
    double energy_export_kwh;
    double volume_m3;
};
/* Snapshots with first_day <= day <= last_day, by meter id then day;
 * meter_id NULL = every meter. */
typedef bool (*gw_store_snapshot_fn)(void *ctx, const struct gw_store_snapshot *snapshot);
est_err gw_store_snapshots_list(struct gw_store *store, const char *meter_id,
                                const char *first_day, const char *last_day,
                                gw_store_snapshot_fn fn, void *ctx);

/* Retention: downsamples raw readings older than older_than_ms to one per
 * meter per UTC hour (the earliest of the hour is kept), deleting at most
 * max_rows in one short transaction per call, so the writer lock is never
 * held long. *resume is a cursor: set it to 0 to start a pass, pass it back
 * unchanged to continue; the pass is complete when it comes back 0.
 * *deleted (may be NULL) receives the rows deleted by this call.
 * Snapshots are never touched. */
est_err gw_store_prune_readings(struct gw_store *store, int64_t older_than_ms, size_t max_rows,
                                int64_t *resume, size_t *deleted);

/* ------------------------------------------------------------------ */
/* Incidents                                                           */
/* ------------------------------------------------------------------ */

/* An incident. As input to gw_store_incident_open: rule, subject_type,
 * subject, zone, severity, since_ms, raised_ms, detail_json, text. As
 * output (strings borrowed) every field is filled. */
struct gw_store_incident {
    int64_t id;
    const char *rule;                   /* rule_name(): "reverse_energy", ... */
    const char *subject_type;           /* "meter" | "unit" | "panel" | "zone" */
    const char *subject;                /* meter, unit or panel id */
    int zone;                           /* 0-based panel zone, -1 = none */
    const char *severity;               /* "info" | "minor" | "major" | "critical" */
    bool open;                          /* false once cleared */
    int64_t since_ms;                   /* when the condition started */
    int64_t raised_ms;                  /* when the incident was raised */
    int64_t updated_ms;                 /* last change */
    int64_t cleared_ms;                 /* 0 while open */
    const char *detail_json;            /* JSON object, NULL = none */
    const char *text;                   /* human text in the site's language */
    const char *confirmed_by;           /* patrol confirmation on site, NULL = none */
    int64_t confirmed_ms;
    const char *disputed_by;            /* patrol dispute, NULL = none */
    int64_t disputed_ms;
    const char *acked_by;               /* who acknowledged it, NULL = nobody yet */
    int64_t acked_ms;
};
typedef bool (*gw_store_incident_fn)(void *ctx, const struct gw_store_incident *incident);

/* Opens an incident, idempotently: at most one incident per (rule,
 * subject_type, subject, zone) is open - a unique index guarantees it even
 * across crashes. If one is open already, *id is its id and *existing is
 * true and nothing changes; otherwise a new one is inserted (updated_ms =
 * raised_ms). existing may be NULL. */
est_err gw_store_incident_open(struct gw_store *store, const struct gw_store_incident *in,
                               int64_t *id, bool *existing);

/* Updates an open incident; a NULL severity, detail_json or text keeps the
 * stored one. EST_ERR_NOTFOUND (no such id) or EST_ERR_STATE (cleared). */
est_err gw_store_incident_update(struct gw_store *store, int64_t id, const char *severity,
                                 const char *detail_json, const char *text, int64_t updated_ms);

/* Clears an open incident. Errors as for update. */
est_err gw_store_incident_clear(struct gw_store *store, int64_t id, int64_t cleared_ms);

/* Records a patrol's on-site confirmation (disputed=false) or dispute
 * (disputed=true) of an incident, open or cleared. EST_ERR_NOTFOUND. */
est_err gw_store_incident_confirm(struct gw_store *store, int64_t id, bool disputed,
                                  const char *who, int64_t ts_ms);

/* Records who acknowledged the incident and when; only the first
 * acknowledgement counts: EST_ERR_NOTFOUND when there is no such incident
 * or it was acknowledged already. */
est_err gw_store_incident_ack(struct gw_store *store, int64_t id, const char *who, int64_t ts_ms);

/* Every open incident, oldest first. */
est_err gw_store_incidents_open(struct gw_store *store, gw_store_incident_fn fn, void *ctx);

/* One incident; EST_ERR_NOTFOUND if there is none. */
est_err gw_store_incident_get(struct gw_store *store, int64_t id, gw_store_incident_fn fn,
                              void *ctx);

/* Every incident active at some time in [from_ms, to_ms): raised before
 * to_ms and not cleared before from_ms. Oldest first. */
est_err gw_store_incidents_between(struct gw_store *store, int64_t from_ms, int64_t to_ms,
                                   gw_store_incident_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Outbox: the durable MQTT queue                                      */
/* ------------------------------------------------------------------ */

/* One queued message. payload is bytes (not NUL-terminated). */
struct gw_store_outbox_msg {
    int64_t seq;                        /* output; increases, never reused */
    const char *topic;
    const void *payload;
    size_t payload_len;
    int qos;                            /* 0..2 */
    bool retain;
    bool is_event;                      /* events are never dropped by trim */
    int64_t created_ms;
};

/* Queues a message; *seq (may be NULL) gets its sequence number. For many
 * messages wrap the calls in gw_store_begin/commit. */
est_err gw_store_outbox_add(struct gw_store *store, const struct gw_store_outbox_msg *msg,
                            int64_t *seq);

/* Up to max messages (0 = no limit) with seq > after_seq, oldest first. */
typedef bool (*gw_store_outbox_fn)(void *ctx, const struct gw_store_outbox_msg *msg);
est_err gw_store_outbox_peek(struct gw_store *store, int64_t after_seq, size_t max,
                             gw_store_outbox_fn fn, void *ctx);

/* Removes a delivered message (EST_ERR_NOTFOUND if it is not queued). */
est_err gw_store_outbox_delete(struct gw_store *store, int64_t seq);

/* What the outbox holds (kept by triggers, so this is O(1)). */
struct gw_store_outbox_counts {
    uint64_t events;                    /* queued events */
    uint64_t readings;                  /* queued readings */
    uint64_t event_bytes;               /* payload bytes of the events */
    uint64_t reading_bytes;             /* payload bytes of the readings */
};
est_err gw_store_outbox_counts(struct gw_store *store, struct gw_store_outbox_counts *counts);

/* Drops the oldest readings (never events) until the readings' payload
 * bytes are at most limit_bytes, in one transaction. *dropped (may be NULL)
 * receives the number of readings dropped. */
est_err gw_store_outbox_trim_readings(struct gw_store *store, uint64_t limit_bytes,
                                      uint64_t *dropped);

/* ------------------------------------------------------------------ */
/* Patrol log: append-only, hash-chained                               */
/* ------------------------------------------------------------------ */

/* The hash chain, for an external auditor.
 *
 * Entries have seq 1, 2, 3, ... without gaps. Entry n stores prev_hash =
 * hash of entry n-1 (for entry 1: 64 '0' characters) and
 * hash = lowercase hex SHA-256 of this byte string:
 *
 *   "EGWP1" F(prev_hash) F(seq) F(ts_ms) F(kind) F(text) F(incident)
 *           F(workorder) F(author) F(detail_json)
 *
 * where each field F is encoded as
 *   text     'T' <len> ':' <bytes> ','   (len = byte count in decimal, no
 *                                          leading zeros; bytes as stored, UTF-8)
 *   integer  'I' <len> ':' <digits> ','   (digits = the value in decimal,
 *                                          '-' first if negative)
 *   absent   'N'                          (incident, workorder, detail_json
 *                                          when NULL)
 * Every field carries its type and length, so no field can bleed into the
 * next. Example (Python):
 *   def F(v): return b'N' if v is None else (b'I' + enc(str(v)) if
 *       isinstance(v, int) else b'T' + enc(v))
 *   def enc(s): b = s.encode(); return str(len(b)).encode() + b':' + b + b','
 *   sha256(b'EGWP1' + b''.join(F(v) for v in (prev_hash, seq, ts_ms, kind,
 *       text, incident, workorder, author, detail_json))).hexdigest()
 *
 * The database refuses UPDATE and DELETE on the log (triggers). The head
 * (seq, hash) can be anchored outside; gw_store_patrol_verify() also checks
 * the anchors recorded here, so cutting off the tail is detected too. */

/* One entry. For append the caller fills ts_ms, kind, text, incident,
 * workorder, author and detail_json; append fills seq, prev_hash and hash.
 * Listed entries have every field (strings borrowed). */
struct gw_store_patrol_entry {
    int64_t seq;
    int64_t ts_ms;
    const char *kind;                   /* "incident", "workorder", "checkin",
                                           "handover", "occupancy", "valve",
                                           "system", ... */
    const char *text;                   /* human text */
    int64_t incident;                   /* related incident id, 0 = none */
    int64_t workorder;                  /* related work order id, 0 = none */
    const char *author;                 /* user name, or "system" */
    const char *detail_json;            /* NULL = none */
    char prev_hash[GW_STORE_HASH_LEN];
    char hash[GW_STORE_HASH_LEN];
};

/* Computes the hash of an entry from its fields and prev_hash (as described
 * above) into out. Pure; for auditors and tests. */
est_err gw_store_patrol_compute_hash(const struct gw_store_patrol_entry *entry,
                                     char out[GW_STORE_HASH_LEN]);

/* Appends an entry (seq = last + 1, chained to the last hash). Atomic with
 * other writes when the caller wraps both in gw_store_begin/commit.
 * EST_ERR_INVALID when kind, text or author is NULL. */
est_err gw_store_patrol_append(struct gw_store *store, struct gw_store_patrol_entry *entry);

/* Up to limit entries (0 = no limit) with seq > since_seq, in order. */
typedef bool (*gw_store_patrol_fn)(void *ctx, const struct gw_store_patrol_entry *entry);
est_err gw_store_patrol_list(struct gw_store *store, int64_t since_seq, size_t limit,
                             gw_store_patrol_fn fn, void *ctx);

/* The last entry's seq and hash; seq 0 and the genesis hash (64 '0') when
 * the log is empty. */
est_err gw_store_patrol_head(struct gw_store *store, int64_t *seq, char hash[GW_STORE_HASH_LEN]);

/* Outcome of a chain verification. */
struct gw_store_patrol_verify {
    int64_t first_bad_seq;              /* 0 = intact; else the first entry at fault
                                           (for a gap: the first missing seq) */
    const char *problem;                /* static text for first_bad_seq, NULL if intact */
    int64_t count;                      /* entries present */
    int64_t head_seq;                   /* last entry present, 0 if empty */
    char head_hash[GW_STORE_HASH_LEN];  /* its stored hash */
    int64_t anchors;                    /* anchors checked */
};

/* Walks the whole chain: seq contiguity from 1 (a deleted entry is a gap),
 * each prev_hash against the previous entry's hash (an inserted or
 * reordered entry breaks the link), each hash recomputed (an edited entry),
 * then every recorded anchor against the entry it names (a truncated or
 * rewritten tail). Returns EST_OK whenever the walk itself worked, with
 * result->first_bad_seq = 0 when the log is intact. */
est_err gw_store_patrol_verify(struct gw_store *store, struct gw_store_patrol_verify *result);

/* Checks an anchor kept outside (e.g. printed): EST_OK when entry seq exists
 * and its stored hash is hash; EST_ERR_NOTFOUND when it is missing;
 * EST_ERR_STATE when it differs. */
est_err gw_store_patrol_check_anchor(struct gw_store *store, int64_t seq, const char *hash);

/* Records the current head as exported to destination (e.g. "printed",
 * "mqtt", a file name) at ts_ms; *seq and hash (each may be NULL) receive
 * the anchored head. EST_ERR_STATE when the log is empty. */
est_err gw_store_patrol_anchor(struct gw_store *store, int64_t ts_ms, const char *destination,
                               int64_t *seq, char hash[GW_STORE_HASH_LEN]);

/* ------------------------------------------------------------------ */
/* Work orders                                                         */
/* ------------------------------------------------------------------ */

/* A work order. State names follow SPEC (open, dispatched, on_site,
 * completed, verified, cancelled); verified and cancelled are closed. The
 * store does not judge transitions (the work-order module does). Times 0 =
 * not yet; strings borrowed when listed. */
struct gw_store_workorder {
    int64_t id;
    int64_t incident;                   /* source incident, 0 = manual */
    const char *category;               /* "water", "electricity", "fire", ... */
    const char *unit;                   /* unit id, NULL = none */
    const char *building;
    const char *location;
    const char *description;
    const char *state;
    const char *severity;               /* incident severity, NULL = none */
    int64_t opened_ms;
    int64_t dispatched_ms;
    int64_t arrive_due_ms;              /* dispatched_ms + arrive_within_s */
    int64_t resolve_due_ms;             /* opened_ms + resolve_within_s */
    int64_t on_site_ms;
    int64_t completed_ms;
    int64_t verified_ms;
    int64_t cancelled_ms;
    bool escalated;                     /* an SLA was breached */
    const char *assignee;
    const char *verifier;
    int rating;                         /* return-visit rating 1..5, 0 = none */
    int64_t postponed_until_ms;
    int64_t updated_ms;
};

/* One history record of a work order. */
struct gw_store_wo_history {
    int64_t workorder;
    int64_t ts_ms;
    const char *action;                 /* "create", "dispatch", "arrive", ... */
    const char *from_state;             /* NULL at creation */
    const char *to_state;
    const char *who;
    const char *note;                   /* NULL = none */
};

typedef bool (*gw_store_workorder_fn)(void *ctx, const struct gw_store_workorder *wo);
typedef bool (*gw_store_wo_history_fn)(void *ctx, const struct gw_store_wo_history *h);

/* Creates a work order with a "create" history record by who, in one
 * transaction. Idempotent per incident: when wo->incident is set and a work
 * order for it is not yet closed, *id is that one, *existing (may be NULL)
 * is true and nothing changes. wo->id is ignored; updated_ms = opened_ms. */
est_err gw_store_workorder_create(struct gw_store *store, const struct gw_store_workorder *wo,
                                  const char *who, const char *note, int64_t *id, bool *existing);

/* Writes the mutable fields of wo (state, every time, escalated, assignee,
 * verifier, rating, postponed_until_ms, updated_ms, description, location,
 * and severity unless NULL)
 * and appends the history record h, in one transaction - but only when the
 * stored state still equals h->from_state (or h->from_state is NULL):
 * EST_ERR_STATE otherwise, EST_ERR_NOTFOUND when there is no such order. */
est_err gw_store_workorder_update(struct gw_store *store, const struct gw_store_workorder *wo,
                                  const struct gw_store_wo_history *h);

/* The open (not verified or cancelled) work order of an incident, or
 * EST_ERR_NOTFOUND. */
est_err gw_store_workorder_for_incident(struct gw_store *store, int64_t incident, int64_t *id);

/* One work order through wo_fn, then its history (oldest first) through
 * history_fn (may be NULL). EST_ERR_NOTFOUND if there is none. */
est_err gw_store_workorder_get(struct gw_store *store, int64_t id, gw_store_workorder_fn wo_fn,
                               gw_store_wo_history_fn history_fn, void *ctx);

/* Work orders in any of the nstates states (nstates 0 = all), oldest
 * first. State names may not contain ','. */
est_err gw_store_workorders_list(struct gw_store *store, const char *const *states, size_t nstates,
                                 gw_store_workorder_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Meta key/value                                                      */
/* ------------------------------------------------------------------ */

/* *value is a malloc'd copy the caller frees; EST_ERR_NOTFOUND if unset. */
est_err gw_store_meta_get(struct gw_store *store, const char *key, char **value);
/* Inserts or replaces. */
est_err gw_store_meta_set(struct gw_store *store, const char *key, const char *value);

/* ------------------------------------------------------------------ */
/* estate-ctl -> daemon requests                                       */
/* ------------------------------------------------------------------ */

/* A pending request (strings borrowed). */
struct gw_store_ctl_request {
    int64_t id;
    int64_t created_ms;
    const char *verb;                   /* "occupancy", "workorder", ... */
    const char *args_json;              /* JSON object, NULL = none */
};

/* estate-ctl: queues a request; *id receives its id for polling. */
est_err gw_store_ctl_submit(struct gw_store *store, const char *verb, const char *args_json,
                            int64_t created_ms, int64_t *id);

/* Daemon: every pending request, oldest first. The callback typically
 * handles it and calls gw_store_ctl_finish(). */
typedef bool (*gw_store_ctl_fn)(void *ctx, const struct gw_store_ctl_request *request);
est_err gw_store_ctl_take_pending(struct gw_store *store, gw_store_ctl_fn fn, void *ctx);

/* Daemon: marks a request done with its result (a JSON object).
 * EST_ERR_NOTFOUND when no such request is pending. */
est_err gw_store_ctl_finish(struct gw_store *store, int64_t id, const char *result_json,
                            int64_t done_ms);

/* estate-ctl: polls a request. *done says whether it is finished; when it
 * is, *result_json is a malloc'd copy (or NULL) the caller frees.
 * EST_ERR_NOTFOUND if there is no such request. */
est_err gw_store_ctl_result(struct gw_store *store, int64_t id, bool *done, char **result_json);

/* Deletes finished requests done before done_before_ms. */
est_err gw_store_ctl_prune(struct gw_store *store, int64_t done_before_ms);

/* ------------------------------------------------------------------ */
/* Command request ids already run (MQTT)                              */
/* ------------------------------------------------------------------ */

/* The result stored for (user, verb, request_id) at or after since_ms:
 * *result_json a malloc'd copy the caller frees, NULL when none. */
est_err gw_store_command_id_result(struct gw_store *store, const char *user, const char *verb,
                                   const char *request_id, int64_t since_ms, char **result_json);
/* Records the result of a command run now (replacing an older one). */
est_err gw_store_command_id_put(struct gw_store *store, const char *user, const char *verb,
                                const char *request_id, const char *result_json, int64_t now_ms);
/* Forgets ids recorded before before_ms and keeps at most keep of the
 * newest. */
est_err gw_store_command_id_prune(struct gw_store *store, int64_t before_ms, int64_t keep);

/* ------------------------------------------------------------------ */
/* Backups (backup.c)                                                  */
/* ------------------------------------------------------------------ */

/* Copies the database to path with SQLite's online backup API while other
 * connections (the daemon) keep writing: one read snapshot for the whole
 * copy, pages_per_step pages at a time with pause_ms between steps, so a
 * writer is never held up. The copy is written to "<path>.partial" (mode
 * 0600), switched to a single file (journal_mode DELETE), fsynced and
 * renamed to path. EST_ERR_STATE when path exists; on failure nothing is
 * left behind. */
est_err gw_store_backup_to(struct gw_store *store, const char *path, int pages_per_step,
                           int pause_ms);

/* ------------------------------------------------------------------ */
/* Notifications (alerts waiting for a robot, HTTP or SMTP channel)    */
/* ------------------------------------------------------------------ */

struct gw_store_notification {
    int64_t id;
    const char *cause;      /* what caused it, e.g. "incident:12:raised"; unique per channel */
    const char *channel;    /* notify channel name */
    int64_t incident;       /* 0 = none */
    const char *rule, *severity, *place; /* may be NULL */
    int64_t since_ms;       /* 0 = unknown */
    const char *text;       /* the message, in its recipients' language */
    const char *recipients; /* comma-separated mobiles, addresses or numbers; "" none */
    int64_t created_ms;
    int64_t due_ms;         /* not sent before (quiet hours, retry backoff) */
    int attempts;
};
typedef bool (*gw_store_notification_fn)(void *ctx, const struct gw_store_notification *n);

/* Queues a notification; a second one with the same cause and channel is
 * ignored (*added false). added may be NULL. */
est_err gw_store_notification_add(struct gw_store *store, const struct gw_store_notification *n,
                                  bool *added);
/* The undelivered notifications due at now_ms, oldest due first, at most max. */
est_err gw_store_notifications_due(struct gw_store *store, int64_t now_ms, size_t max,
                                   gw_store_notification_fn fn, void *ctx);
/* The channel answered success. */
est_err gw_store_notification_delivered(struct gw_store *store, int64_t id, int64_t ms);
/* The channel failed: try again at due_ms; error is recorded (no secrets in it). */
est_err gw_store_notification_retry(struct gw_store *store, int64_t id, int64_t due_ms,
                                    const char *error);
/* How many are not delivered yet. */
est_err gw_store_notifications_pending(struct gw_store *store, int64_t *count);
/* Who is on duty: the "to" of the last shift handover in the patrol log;
 * *name NULL when there was none. Caller frees. */
est_err gw_store_on_duty(struct gw_store *store, char **name);

/* What gw_store_verify_copy found in a copy. */
struct gw_store_copy_check {
    char *integrity_problem;               /* NULL = integrity_check ok; else malloc'd */
    struct gw_store_patrol_verify patrol;  /* chain and anchors (first_bad_seq 0 = intact) */
};

/* Opens the copy at path read-only and runs PRAGMA integrity_check and the
 * patrol chain verification (with its anchors). EST_OK when the checks ran
 * (see gw_store_copy_sound for the verdict); otherwise errbuf says why the
 * copy could not be checked (not a database, outdated schema...). */
est_err gw_store_verify_copy(const char *path, struct gw_store_copy_check *check, char *errbuf,
                             size_t errbuf_len);
bool gw_store_copy_sound(const struct gw_store_copy_check *check);
void gw_store_copy_check_free(struct gw_store_copy_check *check);

/* Before a restore: takes data_dir's database out of WAL mode (folding the
 * WAL into it and removing -wal/-shm), which SQLite allows only when no
 * other connection has it open. EST_ERR_STATE when one has (the daemon is
 * running, or another estate-ctl reads it); EST_ERR_NOTFOUND when there is
 * no database. */
est_err gw_store_quiesce_for_restore(const char *data_dir, char *errbuf, size_t errbuf_len);

#endif
