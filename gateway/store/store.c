/* store.c - the gateway's SQLite storage (see store.h for the contract).
 *
 * Layout of this file: schema migrations, the table of prepared statements,
 * small helpers (errors, binding, stepping, transactions), then one section
 * per concern in the order of store.h.
 *
 * Rules kept throughout: every statement that touches values is in the
 * statements table, prepared once at open and reused with bound parameters;
 * constant schema text (migrations, pragmas) is the only SQL run directly.
 * Every statement is reset as soon as it is done so that no read snapshot
 * stays open and blocks WAL checkpoints. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#define BUSY_TIMEOUT_MS 5000
#define HOUR_MS 3600000
#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define HASH_HEX_CHARS 64

/* ------------------------------------------------------------------ */
/* Schema: migrations[i] takes the schema from version i to i + 1.     */
/* Append new steps; never edit a released one.                       */
/* ------------------------------------------------------------------ */

static const char migration_1[] =
    /* Inventory. rid is the compact integer key readings use. serial is the
     * current device serial; config_serial the one the config last named
     * (so a config change can be told from a run-time replacement). */
    "CREATE TABLE meters("
    " rid INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL,"
    " category TEXT NOT NULL,"
    " unit TEXT, building TEXT, location TEXT, driver TEXT, bus TEXT, slave INTEGER,"
    " serial TEXT, config_serial TEXT, parent TEXT,"
    " valve INTEGER NOT NULL DEFAULT 0,"
    " install_ms INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'ok'"
    "  CHECK (status IN ('ok','offline','damaged','replaced')),"
    " last_good_ms INTEGER, last_values_json TEXT,"
    " removed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE units("
    " id TEXT PRIMARY KEY,"
    " building TEXT,"
    " occupancy TEXT NOT NULL CHECK (occupancy IN ('vacant','occupied')),"
    " occupancy_changed_ms INTEGER, occupancy_by TEXT,"
    " removed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE replacements("
    " id INTEGER PRIMARY KEY,"
    " meter INTEGER NOT NULL REFERENCES meters(rid),"
    " ts_ms INTEGER NOT NULL,"
    " old_serial TEXT, old_last_reading_json TEXT, new_serial TEXT, new_first_reading_json TEXT);"
    "CREATE INDEX replacements_ts ON replacements(ts_ms);"
    /* Readings: no foreign key on purpose (insert speed); meter is a rid. */
    "CREATE TABLE readings("
    " meter INTEGER NOT NULL, ts_ms INTEGER NOT NULL, quality INTEGER NOT NULL,"
    " energy_import_kwh REAL, energy_export_kwh REAL, power_w REAL, volume_m3 REAL,"
    " flow_m3h REAL, values_json TEXT);"
    "CREATE INDEX readings_meter_ts ON readings(meter, ts_ms);"
    "CREATE TABLE snapshots("
    " meter INTEGER NOT NULL REFERENCES meters(rid), day TEXT NOT NULL, ts_ms INTEGER NOT NULL,"
    " energy_import_kwh REAL, energy_export_kwh REAL, volume_m3 REAL,"
    " PRIMARY KEY (meter, day)) WITHOUT ROWID;"
    /* Incidents: the partial unique index makes "one open incident per
     * condition" a database fact (coalesce: NULL zones would be distinct). */
    "CREATE TABLE incidents("
    " id INTEGER PRIMARY KEY,"
    " rule TEXT NOT NULL,"
    " subject_type TEXT NOT NULL CHECK (subject_type IN ('meter','unit','panel','zone')),"
    " subject TEXT NOT NULL, zone INTEGER,"
    " severity TEXT NOT NULL CHECK (severity IN ('info','minor','major','critical')),"
    " state TEXT NOT NULL CHECK (state IN ('open','cleared')),"
    " since_ms INTEGER NOT NULL, raised_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " cleared_ms INTEGER, detail_json TEXT, text TEXT,"
    " confirmed_by TEXT, confirmed_ms INTEGER, disputed_by TEXT, disputed_ms INTEGER);"
    "CREATE UNIQUE INDEX incidents_one_open"
    " ON incidents(rule, subject_type, subject, coalesce(zone, -1)) WHERE state = 'open';"
    "CREATE INDEX incidents_raised ON incidents(raised_ms);"
    /* Outbox with running totals kept by triggers (O(1) counts). */
    "CREATE TABLE outbox("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
    " qos INTEGER NOT NULL CHECK (qos BETWEEN 0 AND 2), retain INTEGER NOT NULL,"
    " is_event INTEGER NOT NULL CHECK (is_event IN (0, 1)), created_ms INTEGER NOT NULL);"
    "CREATE INDEX outbox_kind ON outbox(is_event, seq);"
    "CREATE TABLE outbox_totals("
    " is_event INTEGER PRIMARY KEY, rows INTEGER NOT NULL, bytes INTEGER NOT NULL);"
    "INSERT INTO outbox_totals VALUES (0, 0, 0), (1, 0, 0);"
    "CREATE TRIGGER outbox_totals_add AFTER INSERT ON outbox BEGIN"
    " UPDATE outbox_totals SET rows = rows + 1, bytes = bytes + length(NEW.payload)"
    "  WHERE is_event = NEW.is_event; END;"
    "CREATE TRIGGER outbox_totals_del AFTER DELETE ON outbox BEGIN"
    " UPDATE outbox_totals SET rows = rows - 1, bytes = bytes - length(OLD.payload)"
    "  WHERE is_event = OLD.is_event; END;"
    "CREATE TRIGGER outbox_immutable BEFORE UPDATE ON outbox BEGIN"
    " SELECT RAISE(ABORT, 'outbox messages are immutable'); END;"
    /* Patrol log and its anchors: append-only. */
    "CREATE TABLE patrol("
    " seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,"
    " incident INTEGER, workorder INTEGER, author TEXT NOT NULL, detail_json TEXT,"
    " prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE TRIGGER patrol_no_update BEFORE UPDATE ON patrol BEGIN"
    " SELECT RAISE(ABORT, 'patrol log is append-only'); END;"
    "CREATE TRIGGER patrol_no_delete BEFORE DELETE ON patrol BEGIN"
    " SELECT RAISE(ABORT, 'patrol log is append-only'); END;"
    "CREATE TABLE patrol_anchors("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " hash TEXT NOT NULL, destination TEXT NOT NULL);"
    "CREATE TRIGGER patrol_anchors_no_update BEFORE UPDATE ON patrol_anchors BEGIN"
    " SELECT RAISE(ABORT, 'patrol anchors are append-only'); END;"
    "CREATE TRIGGER patrol_anchors_no_delete BEFORE DELETE ON patrol_anchors BEGIN"
    " SELECT RAISE(ABORT, 'patrol anchors are append-only'); END;"
    /* Work orders: at most one not-closed order per incident. */
    "CREATE TABLE workorders("
    " id INTEGER PRIMARY KEY, incident INTEGER REFERENCES incidents(id),"
    " category TEXT NOT NULL, unit TEXT, building TEXT, location TEXT,"
    " description TEXT NOT NULL, state TEXT NOT NULL, severity TEXT,"
    " opened_ms INTEGER NOT NULL, dispatched_ms INTEGER, arrive_due_ms INTEGER,"
    " resolve_due_ms INTEGER, on_site_ms INTEGER, completed_ms INTEGER, verified_ms INTEGER,"
    " cancelled_ms INTEGER, escalated INTEGER NOT NULL DEFAULT 0, assignee TEXT, verifier TEXT,"
    " rating INTEGER, postponed_until_ms INTEGER, updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX workorders_open_incident ON workorders(incident)"
    " WHERE incident IS NOT NULL AND state NOT IN ('verified', 'cancelled');"
    "CREATE INDEX workorders_state ON workorders(state, id);"
    "CREATE TABLE workorder_history("
    " id INTEGER PRIMARY KEY, workorder INTEGER NOT NULL REFERENCES workorders(id),"
    " ts_ms INTEGER NOT NULL, action TEXT NOT NULL, from_state TEXT, to_state TEXT,"
    " who TEXT, note TEXT);"
    "CREATE INDEX workorder_history_wo ON workorder_history(workorder, id);"
    /* Odds and ends. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    "CREATE TABLE ctl_requests("
    " id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, verb TEXT NOT NULL, args_json TEXT,"
    " state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','done')),"
    " result_json TEXT, done_ms INTEGER);"
    "CREATE INDEX ctl_requests_state ON ctl_requests(state, id);";

/* Readings are appended in time order with no secondary index on the hot
 * path: a (meter, ts_ms) index written row by row costs a random page per
 * reading on a large site. readings_index is that index kept by hand: the
 * rows past readings_indexed.upto (the tail, seconds old) are added in bulk,
 * sorted by meter, so each meter's rows land together; queries add the
 * short tail by scanning it. Deleting a reading deletes its index entry. */
static const char migration_2[] =
    "DROP INDEX readings_meter_ts;"
    "CREATE TABLE readings_index("
    " meter INTEGER NOT NULL, ts_ms INTEGER NOT NULL, row INTEGER NOT NULL,"
    " PRIMARY KEY (meter, ts_ms, row)) WITHOUT ROWID;"
    "INSERT INTO readings_index(meter, ts_ms, row)"
    " SELECT meter, ts_ms, rowid FROM readings ORDER BY meter, ts_ms, rowid;"
    "CREATE TABLE readings_indexed("
    " id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL);"
    "INSERT INTO readings_indexed VALUES (1, coalesce((SELECT max(rowid) FROM readings), 0));"
    "CREATE TRIGGER readings_unindex AFTER DELETE ON readings BEGIN"
    " DELETE FROM readings_index WHERE meter = OLD.meter AND ts_ms = OLD.ts_ms"
    "  AND row = OLD.rowid; END;";

static const char *const migrations[] = {migration_1, migration_2};

_Static_assert(sizeof migrations / sizeof migrations[0] == GW_STORE_SCHEMA_VERSION,
               "one migration step per schema version");

/* ------------------------------------------------------------------ */
/* Prepared statements                                                 */
/* ------------------------------------------------------------------ */

#define INCIDENT_COLS                                                                          \
    "id, rule, subject_type, subject, zone, severity, state, since_ms, raised_ms, updated_ms," \
    " cleared_ms, detail_json, text, confirmed_by, confirmed_ms, disputed_by, disputed_ms"
#define WORKORDER_COLS                                                                       \
    "id, incident, category, unit, building, location, description, state, severity,"        \
    " opened_ms, dispatched_ms, arrive_due_ms, resolve_due_ms, on_site_ms, completed_ms,"    \
    " verified_ms, cancelled_ms, escalated, assignee, verifier, rating, postponed_until_ms," \
    " updated_ms"
#define READING_VALUE_COLS \
    "quality, energy_import_kwh, energy_export_kwh, power_w, volume_m3, flow_m3h, values_json"
#define READING_COLS "ts_ms, " READING_VALUE_COLS
#define PATROL_COLS \
    "seq, ts_ms, kind, text, incident, workorder, author, detail_json, prev_hash, hash"

#define STATEMENTS(X)                                                                           \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                 \
    X(BEGIN_READ, "BEGIN DEFERRED")                                                             \
    X(COMMIT, "COMMIT")                                                                         \
    X(ROLLBACK, "ROLLBACK")                                                                     \
    X(SAVEPOINT, "SAVEPOINT gw_store")                                                          \
    X(RELEASE, "RELEASE gw_store")                                                              \
    X(ROLLBACK_TO, "ROLLBACK TO gw_store")                                                      \
    /* inventory */                                                                             \
    X(METERS_MARK_REMOVED, "UPDATE meters SET removed = 1")                                     \
    X(UNITS_MARK_REMOVED, "UPDATE units SET removed = 1")                                       \
    X(METER_UPSERT,                                                                             \
      "INSERT INTO meters(id, kind, category, unit, building, location, driver, bus, slave,"    \
      " serial, config_serial, parent, valve, install_ms, status, removed)"                     \
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, 'ok', 0)"          \
      " ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, category = excluded.category,"      \
      " unit = excluded.unit, building = excluded.building, location = excluded.location,"      \
      " driver = excluded.driver, bus = excluded.bus, slave = excluded.slave,"                  \
      " serial = CASE WHEN excluded.config_serial IS NOT meters.config_serial"                  \
      "  THEN excluded.config_serial ELSE meters.serial END,"                                   \
      " config_serial = excluded.config_serial, parent = excluded.parent,"                      \
      " valve = excluded.valve, removed = 0"                                                    \
      " RETURNING rid")                                                                         \
    X(UNIT_UPSERT,                                                                              \
      "INSERT INTO units(id, building, occupancy, occupancy_changed_ms, occupancy_by, removed)" \
      " VALUES (?1, ?2, ?3, ?4, 'config', 0)"                                                   \
      " ON CONFLICT(id) DO UPDATE SET building = excluded.building, removed = 0")               \
    X(METER_ROWID, "SELECT rid FROM meters WHERE id = ?1")                                      \
    X(METER_SET_STATUS, "UPDATE meters SET status = ?2 WHERE id = ?1")                          \
    X(METER_SET_SERIAL, "UPDATE meters SET serial = ?2 WHERE id = ?1")                          \
    X(METER_LAST_GOOD,                                                                          \
      "UPDATE meters SET last_good_ms = ?2, last_values_json = ?3"                              \
      " WHERE rid = ?1 AND (last_good_ms IS NULL OR last_good_ms <= ?2)")                       \
    X(METERS_LIST,                                                                              \
      "SELECT rid, id, kind, category, unit, building, location, driver, bus, slave, serial,"   \
      " parent, valve, install_ms, status, last_good_ms, last_values_json, removed"             \
      " FROM meters ORDER BY id")                                                               \
    X(REPLACEMENT_INSERT,                                                                       \
      "INSERT INTO replacements(meter, ts_ms, old_serial, old_last_reading_json, new_serial,"   \
      " new_first_reading_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                               \
    X(REPLACEMENTS_LIST,                                                                        \
      "SELECT m.id, r.ts_ms, r.old_serial, r.old_last_reading_json, r.new_serial,"              \
      " r.new_first_reading_json FROM replacements r JOIN meters m ON m.rid = r.meter"          \
      " WHERE r.ts_ms >= ?1 AND r.ts_ms < ?2 AND (?3 IS NULL OR m.id = ?3)"                     \
      " ORDER BY r.ts_ms, r.id")                                                                \
    /* occupancy */                                                                             \
    X(UNIT_GET_OCCUPANCY, "SELECT occupancy FROM units WHERE id = ?1")                          \
    X(UNIT_SET_OCCUPANCY,                                                                       \
      "UPDATE units SET occupancy = ?2, occupancy_changed_ms = ?3, occupancy_by = ?4"           \
      " WHERE id = ?1")                                                                         \
    X(UNITS_LIST,                                                                               \
      "SELECT id, building, occupancy, occupancy_changed_ms, occupancy_by, removed"             \
      " FROM units ORDER BY id")                                                                \
    /* readings */                                                                              \
    X(READING_INSERT,                                                                           \
      "INSERT INTO readings(meter, " READING_COLS ")"                                           \
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")                                           \
    X(READINGS_LATEST,                                                                          \
      "WITH tail AS MATERIALIZED (SELECT meter, rowid AS row, ts_ms FROM readings"              \
      "  WHERE rowid > (SELECT upto FROM readings_indexed))"                                    \
      " SELECT m.rid, m.id, " READING_COLS " FROM meters m JOIN readings r ON r.rowid ="        \
      " coalesce((SELECT t.row FROM tail t WHERE t.meter = m.rid"                               \
      "  ORDER BY t.ts_ms DESC, t.row DESC LIMIT 1),"                                           \
      " (SELECT i.row FROM readings_index i WHERE i.meter = m.rid"                              \
      "  ORDER BY i.ts_ms DESC, i.row DESC LIMIT 1))"                                           \
      " WHERE m.removed = 0 ORDER BY m.id")                                                     \
    X(READINGS_HISTORY,                                                                         \
      "SELECT i.meter, NULL, i.ts_ms, " READING_VALUE_COLS                                      \
      " FROM readings_index i JOIN readings r ON r.rowid = i.row"                               \
      " WHERE i.meter = ?1 AND i.ts_ms >= ?2 AND i.ts_ms < ?3"                                  \
      " UNION ALL SELECT meter, NULL, ts_ms, " READING_VALUE_COLS " FROM readings"              \
      " WHERE rowid > (SELECT upto FROM readings_indexed)"                                      \
      "  AND meter = ?1 AND ts_ms >= ?2 AND ts_ms < ?3"                                         \
      " ORDER BY 3 LIMIT ?4")                                                                   \
    X(READINGS_INDEXED_GET,                                                                     \
      "SELECT upto, coalesce((SELECT max(rowid) FROM readings), 0) FROM readings_indexed")      \
    X(READINGS_INDEX_TAIL,                                                                      \
      "INSERT INTO readings_index(meter, ts_ms, row)"                                           \
      " SELECT meter, ts_ms, rowid FROM readings WHERE rowid > ?1 AND rowid <= ?2"              \
      " ORDER BY meter, ts_ms, rowid")                                                          \
    X(READINGS_INDEXED_SET, "UPDATE readings_indexed SET upto = ?1")                            \
    X(PRUNE_SELECT,                                                                             \
      "SELECT r.rowid FROM readings r WHERE r.rowid > ?3"                                       \
      " AND r.rowid <= (SELECT upto FROM readings_indexed) AND r.ts_ms < ?1 AND EXISTS ("       \
      " SELECT 1 FROM readings_index p WHERE p.meter = r.meter"                                 \
      "  AND p.ts_ms >= r.ts_ms - (r.ts_ms % 3600000) AND p.ts_ms <= r.ts_ms"                   \
      "  AND (p.ts_ms < r.ts_ms OR p.row < r.rowid))"                                           \
      " ORDER BY r.rowid LIMIT ?2")                                                             \
    X(PRUNE_DELETE, "DELETE FROM readings WHERE rowid = ?1")                                    \
    X(SNAPSHOT_INSERT,                                                                          \
      "INSERT INTO snapshots(meter, day, ts_ms, energy_import_kwh, energy_export_kwh,"          \
      " volume_m3) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(meter, day) DO NOTHING")         \
    X(SNAPSHOTS_LIST,                                                                           \
      "SELECT s.meter, m.id, s.day, s.ts_ms, s.energy_import_kwh, s.energy_export_kwh,"         \
      " s.volume_m3 FROM snapshots s JOIN meters m ON m.rid = s.meter"                          \
      " WHERE s.day >= ?1 AND s.day <= ?2 AND (?3 IS NULL OR m.id = ?3)"                        \
      " ORDER BY m.id, s.day")                                                                  \
    /* incidents */                                                                             \
    X(INCIDENT_FIND_OPEN,                                                                       \
      "SELECT id FROM incidents WHERE state = 'open' AND rule = ?1 AND subject_type = ?2"       \
      " AND subject = ?3 AND coalesce(zone, -1) = coalesce(?4, -1)")                            \
    X(INCIDENT_INSERT,                                                                          \
      "INSERT INTO incidents(rule, subject_type, subject, zone, severity, state, since_ms,"     \
      " raised_ms, updated_ms, detail_json, text)"                                              \
      " VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?7, ?8, ?9) RETURNING id")                  \
    X(INCIDENT_UPDATE,                                                                          \
      "UPDATE incidents SET severity = coalesce(?2, severity),"                                 \
      " detail_json = coalesce(?3, detail_json), text = coalesce(?4, text), updated_ms = ?5"    \
      " WHERE id = ?1 AND state = 'open'")                                                      \
    X(INCIDENT_CLEAR,                                                                           \
      "UPDATE incidents SET state = 'cleared', cleared_ms = ?2, updated_ms = ?2"                \
      " WHERE id = ?1 AND state = 'open'")                                                      \
    X(INCIDENT_CONFIRM,                                                                         \
      "UPDATE incidents SET confirmed_by = ?2, confirmed_ms = ?3 WHERE id = ?1")                \
    X(INCIDENT_DISPUTE,                                                                         \
      "UPDATE incidents SET disputed_by = ?2, disputed_ms = ?3 WHERE id = ?1")                  \
    X(INCIDENT_STATE, "SELECT state FROM incidents WHERE id = ?1")                              \
    X(INCIDENTS_OPEN,                                                                           \
      "SELECT " INCIDENT_COLS " FROM incidents WHERE state = 'open' ORDER BY id")               \
    X(INCIDENT_GET, "SELECT " INCIDENT_COLS " FROM incidents WHERE id = ?1")                    \
    X(INCIDENTS_BETWEEN,                                                                        \
      "SELECT " INCIDENT_COLS " FROM incidents WHERE raised_ms < ?2"                            \
      " AND (cleared_ms IS NULL OR cleared_ms >= ?1) ORDER BY id")                              \
    /* outbox */                                                                                \
    X(OUTBOX_INSERT,                                                                            \
      "INSERT INTO outbox(topic, payload, qos, retain, is_event, created_ms)"                   \
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq")                                         \
    X(OUTBOX_PEEK,                                                                              \
      "SELECT seq, topic, payload, qos, retain, is_event, created_ms FROM outbox"               \
      " WHERE seq > ?1 ORDER BY seq LIMIT ?2")                                                  \
    X(OUTBOX_DELETE, "DELETE FROM outbox WHERE seq = ?1")                                       \
    X(OUTBOX_TOTALS, "SELECT is_event, rows, bytes FROM outbox_totals")                         \
    X(OUTBOX_OLDEST_READINGS,                                                                   \
      "SELECT seq, length(payload) FROM outbox WHERE is_event = 0 ORDER BY seq")                \
    X(OUTBOX_DELETE_READINGS_UPTO, "DELETE FROM outbox WHERE is_event = 0 AND seq <= ?1")       \
    /* patrol log */                                                                            \
    X(PATROL_HEAD, "SELECT seq, hash FROM patrol ORDER BY seq DESC LIMIT 1")                    \
    X(PATROL_INSERT,                                                                            \
      "INSERT INTO patrol(" PATROL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")   \
    X(PATROL_LIST,                                                                              \
      "SELECT " PATROL_COLS " FROM patrol WHERE seq > ?1 ORDER BY seq LIMIT ?2")                \
    X(PATROL_HASH_AT, "SELECT hash FROM patrol WHERE seq = ?1")                                 \
    X(ANCHOR_INSERT,                                                                            \
      "INSERT INTO patrol_anchors(ts_ms, seq, hash, destination) VALUES (?1, ?2, ?3, ?4)")      \
    X(ANCHORS_LIST, "SELECT seq, hash FROM patrol_anchors ORDER BY id")                         \
    /* work orders */                                                                           \
    X(WO_FIND_OPEN_BY_INCIDENT,                                                                 \
      "SELECT id FROM workorders WHERE incident = ?1"                                           \
      " AND state NOT IN ('verified', 'cancelled')")                                            \
    X(WO_INSERT,                                                                                \
      "INSERT INTO workorders(incident, category, unit, building, location, description,"       \
      " state, severity, opened_ms, dispatched_ms, arrive_due_ms, resolve_due_ms, on_site_ms,"  \
      " completed_ms, verified_ms, cancelled_ms, escalated, assignee, verifier, rating,"        \
      " postponed_until_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"  \
      " ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?9) RETURNING id")                    \
    X(WO_UPDATE,                                                                                \
      "UPDATE workorders SET state = ?2, dispatched_ms = ?3, arrive_due_ms = ?4,"               \
      " resolve_due_ms = ?5, on_site_ms = ?6, completed_ms = ?7, verified_ms = ?8,"             \
      " cancelled_ms = ?9, escalated = ?10, assignee = ?11, verifier = ?12, rating = ?13,"      \
      " postponed_until_ms = ?14, updated_ms = ?15, description = ?16, location = ?17"          \
      " WHERE id = ?1 AND (?18 IS NULL OR state = ?18)")                                        \
    X(WO_STATE, "SELECT state FROM workorders WHERE id = ?1")                                   \
    X(WO_HISTORY_INSERT,                                                                        \
      "INSERT INTO workorder_history(workorder, ts_ms, action, from_state, to_state, who,"      \
      " note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")                                             \
    X(WO_GET, "SELECT " WORKORDER_COLS " FROM workorders WHERE id = ?1")                        \
    X(WO_HISTORY,                                                                               \
      "SELECT workorder, ts_ms, action, from_state, to_state, who, note"                        \
      " FROM workorder_history WHERE workorder = ?1 ORDER BY id")                               \
    X(WO_LIST,                                                                                  \
      "SELECT " WORKORDER_COLS " FROM workorders"                                               \
      " WHERE ?1 IS NULL OR instr(?1, ',' || state || ',') > 0 ORDER BY id")                    \
    /* meta and estate-ctl requests */                                                          \
    X(META_GET, "SELECT value FROM meta WHERE key = ?1")                                        \
    X(META_SET,                                                                                 \
      "INSERT INTO meta(key, value) VALUES (?1, ?2)"                                            \
      " ON CONFLICT(key) DO UPDATE SET value = excluded.value")                                 \
    X(CTL_INSERT,                                                                               \
      "INSERT INTO ctl_requests(created_ms, verb, args_json) VALUES (?1, ?2, ?3) RETURNING id") \
    X(CTL_NEXT_PENDING,                                                                         \
      "SELECT id, created_ms, verb, args_json FROM ctl_requests"                                \
      " WHERE state = 'pending' AND id > ?1 ORDER BY id LIMIT 1")                               \
    X(CTL_FINISH,                                                                               \
      "UPDATE ctl_requests SET state = 'done', result_json = ?2, done_ms = ?3"                  \
      " WHERE id = ?1 AND state = 'pending'")                                                   \
    X(CTL_RESULT, "SELECT state, result_json FROM ctl_requests WHERE id = ?1")                  \
    X(CTL_PRUNE, "DELETE FROM ctl_requests WHERE state = 'done' AND done_ms < ?1")

enum stmt_id {
#define X(name, sql) S_##name,
    STATEMENTS(X)
#undef X
    S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
#define X(name, sql) [S_##name] = sql,
    STATEMENTS(X)
#undef X
};

struct gw_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S__COUNT];
    EVP_MD_CTX *md;     /* reused for patrol hashes */
    bool readonly;
    char errmsg[512];   /* last failure; longer messages are truncated */
    /* ts_ms of the last good reading written to meters.last_good_ms by this
     * connection, indexed by meter rid (see update_last_good). */
    int64_t *last_good_written;
    size_t last_good_cap;
    /* The readings index (see migration_2): rows with rowid <= indexed_upto
     * are in readings_index; the tail up to last_rowid is not yet, and has
     * been waiting since tail_since_ms (monotonic). Reloaded from the
     * database after a rollback. */
    bool index_state_known;
    int64_t indexed_upto;
    int64_t last_rowid;
    int64_t tail_since_ms;
};

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

static est_err map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM: return EST_ERR_NOMEM;
    case SQLITE_FULL: return EST_ERR_FULL;
    case SQLITE_CONSTRAINT: return EST_ERR_INVALID;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return EST_ERR_TIMEOUT;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: return EST_ERR_IO;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return EST_ERR_PERM;
    default: return EST_ERR_DB;
    }
}

/* Records SQLite's message for rc and returns the matching est_err. */
static est_err fail_db(struct gw_store *s, int rc)
{
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
    return map_rc(rc);
}

/* Records a message of our own. */
__attribute__((format(printf, 3, 4))) static est_err fail(struct gw_store *s, est_err err,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

const char *gw_store_errmsg(const struct gw_store *store)
{
    return store != NULL ? store->errmsg : "no store";
}

/* ------------------------------------------------------------------ */
/* Binding, stepping, columns                                          */
/* ------------------------------------------------------------------ */

/* A statement ready for binding: reset, bindings cleared, errmsg reset. */
static sqlite3_stmt *st(struct gw_store *s, enum stmt_id id)
{
    sqlite3_stmt *q = s->stmt[id];
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    s->errmsg[0] = '\0';
    return q;
}

/* Binders keep the first failure in *rc so a run of binds needs one check. */
static void bind_text(sqlite3_stmt *q, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v != NULL ? sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(q, i);
}

static void bind_int(sqlite3_stmt *q, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(q, i, v);
}

/* 0 means "none" for times and ids. */
static void bind_opt(sqlite3_stmt *q, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v != 0 ? sqlite3_bind_int64(q, i, v) : sqlite3_bind_null(q, i);
}

/* NAN (or Inf) means absent. */
static void bind_real(sqlite3_stmt *q, int i, double v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = isfinite(v) ? sqlite3_bind_double(q, i, v) : sqlite3_bind_null(q, i);
}

/* size_t limit, 0 = no limit (SQLite: negative LIMIT). */
static void bind_limit(sqlite3_stmt *q, int i, size_t limit, int *rc)
{
    int64_t v = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
    bind_int(q, i, v, rc);
}

/* Runs a statement that returns no rows we need, then resets it. */
static est_err exec_q(struct gw_store *s, sqlite3_stmt *q, int bind_rc)
{
    est_err err = EST_OK;
    if (bind_rc != SQLITE_OK) {
        err = fail_db(s, bind_rc);
    } else {
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            err = fail_db(s, rc);
    }
    sqlite3_reset(q);
    return err;
}

/* Steps to the first row. *row says whether there is one; the caller reads
 * columns and then resets q. */
static est_err first_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc, bool *row)
{
    *row = false;
    if (bind_rc != SQLITE_OK)
        return fail_db(s, bind_rc);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *row = true;
        return EST_OK;
    }
    est_err err = rc == SQLITE_DONE ? EST_OK : fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

/* Runs a single-integer query (e.g. RETURNING id). EST_ERR_NOTFOUND when it
 * returns no row. */
static est_err query_int(struct gw_store *s, sqlite3_stmt *q, int bind_rc, int64_t *out)
{
    bool row;
    est_err err = first_row(s, q, bind_rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return EST_ERR_NOTFOUND;
    *out = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return EST_OK;
}

/* Steps through every row, handing each to row(q, arg) until it returns
 * false; resets q. */
static est_err each_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc,
                        bool (*row)(sqlite3_stmt *q, void *arg), void *arg, size_t *nrows)
{
    size_t n = 0;
    est_err err = EST_OK;
    if (bind_rc != SQLITE_OK) {
        err = fail_db(s, bind_rc);
    } else {
        int rc;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            n++;
            if (!row(q, arg)) {
                rc = SQLITE_DONE;
                break;
            }
        }
        if (rc != SQLITE_DONE)
            err = fail_db(s, rc);
    }
    sqlite3_reset(q);
    if (nrows != NULL)
        *nrows = n;
    return err;
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    return (const char *)sqlite3_column_text(q, i);
}

/* NULL reads as 0 ("none"). */
static int64_t col_int(sqlite3_stmt *q, int i)
{
    return sqlite3_column_int64(q, i);
}

static double col_real(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static int64_t changes(const struct gw_store *s)
{
    return sqlite3_changes64(s->db);
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

/* Starts our own transaction, or a savepoint inside the caller's. */
static est_err tx_begin(struct gw_store *s, bool *began)
{
    *began = sqlite3_get_autocommit(s->db) != 0;
    return exec_q(s, st(s, *began ? S_BEGIN : S_SAVEPOINT), SQLITE_OK);
}

/* Ends what tx_begin started: commits/releases when err is EST_OK, rolls
 * back otherwise (keeping the first error's message). Returns the outcome. */
static est_err tx_end(struct gw_store *s, bool began, est_err err)
{
    if (err == EST_OK) {
        err = exec_q(s, st(s, began ? S_COMMIT : S_RELEASE), SQLITE_OK);
        if (err == EST_OK)
            return EST_OK;
    }
    char saved[sizeof s->errmsg];
    memcpy(saved, s->errmsg, sizeof saved);
    s->index_state_known = false;
    /* Errors are ignored here: SQLite may already have rolled back. */
    if (began) {
        if (!sqlite3_get_autocommit(s->db))
            exec_q(s, st(s, S_ROLLBACK), SQLITE_OK);
    } else if (!sqlite3_get_autocommit(s->db)) {
        exec_q(s, st(s, S_ROLLBACK_TO), SQLITE_OK);
        exec_q(s, st(s, S_RELEASE), SQLITE_OK);
    }
    memcpy(s->errmsg, saved, sizeof saved);
    return err;
}

est_err gw_store_begin(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (!sqlite3_get_autocommit(store->db))
        return fail(store, EST_ERR_STATE, "a transaction is already open");
    return exec_q(store, st(store, S_BEGIN), SQLITE_OK);
}

est_err gw_store_commit(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (sqlite3_get_autocommit(store->db))
        return fail(store, EST_ERR_STATE, "no transaction is open");
    return tx_end(store, true, EST_OK);
}

est_err gw_store_rollback(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (sqlite3_get_autocommit(store->db))
        return EST_OK;
    store->index_state_known = false;
    return exec_q(store, st(store, S_ROLLBACK), SQLITE_OK);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

/* mkdir -p with mode 0700 for every directory it creates. */
static est_err make_dirs(struct gw_store *s, const char *dir)
{
    char *path = strdup(dir);
    if (path == NULL)
        return fail(s, EST_ERR_NOMEM, "out of memory");
    est_err err = EST_OK;
    for (char *p = path + 1; err == EST_OK; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            err = fail(s, EST_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
        if (end)
            break;
        *p = '/';
    }
    struct stat info;
    if (err == EST_OK && (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode)))
        err = fail(s, EST_ERR_IO, "%s: not a directory", dir);
    free(path);
    return err;
}

/* Creates the database file with mode 0600 whatever the umask, so SQLite
 * (which gives -wal and -shm the same mode) never creates it wider. An
 * existing file is left as it is. */
static est_err create_db_file(struct gw_store *s, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? EST_OK
                               : fail(s, EST_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    est_err err = EST_OK;
    if (fchmod(fd, 0600) != 0)
        err = fail(s, EST_ERR_IO, "%s: cannot set mode 0600: %s", path, strerror(errno));
    close(fd);
    return err;
}

/* Runs constant SQL text (schema, pragmas) - never text with values in it. */
static est_err exec_script(struct gw_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return EST_OK;
    est_err err = fail(s, map_rc(rc), "%s", msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

static est_err user_version(struct gw_store *s, int *version)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    est_err err = EST_OK;
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(q, 0);
    else
        err = fail_db(s, rc);
    sqlite3_finalize(q);
    return err;
}

/* Applies the missing migrations in one write transaction (re-reading the
 * version inside it, in case another process migrated first). */
static est_err migrate(struct gw_store *s)
{
    est_err err = exec_script(s, "BEGIN IMMEDIATE");
    if (err != EST_OK)
        return err;
    int version = 0;
    err = user_version(s, &version);
    if (err == EST_OK && version > GW_STORE_SCHEMA_VERSION)
        err = fail(s, EST_ERR_STATE, "database schema version %d is newer than this program's (%d)",
                   version, GW_STORE_SCHEMA_VERSION);
    for (int v = version; err == EST_OK && v < GW_STORE_SCHEMA_VERSION; v++)
        err = exec_script(s, migrations[v]);
    if (err == EST_OK && version < GW_STORE_SCHEMA_VERSION) {
        /* PRAGMA takes no parameters; the number is a compile-time constant. */
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", GW_STORE_SCHEMA_VERSION);
        err = exec_script(s, sql);
    }
    if (err == EST_OK)
        return exec_script(s, "COMMIT");
    char saved[sizeof s->errmsg];
    memcpy(saved, s->errmsg, sizeof saved);
    exec_script(s, "ROLLBACK");
    memcpy(s->errmsg, saved, sizeof saved);
    return err;
}

static est_err check_version(struct gw_store *s)
{
    int version = 0;
    est_err err = user_version(s, &version);
    if (err == EST_OK && version != GW_STORE_SCHEMA_VERSION)
        err = fail(s, EST_ERR_STATE,
                   "database schema version %d, this program needs %d (start the daemon to "
                   "migrate)", version, GW_STORE_SCHEMA_VERSION);
    return err;
}

static est_err set_wal(struct gw_store *s)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    est_err err = EST_OK;
    if (rc != SQLITE_ROW)
        err = fail_db(s, rc);
    else if (sqlite3_stricmp(col_text(q, 0) ? col_text(q, 0) : "", "wal") != 0)
        err = fail(s, EST_ERR_DB, "the file system does not support WAL mode");
    sqlite3_finalize(q);
    return err;
}

static est_err configure(struct gw_store *s)
{
    int rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return fail_db(s, rc);
    sqlite3_extended_result_codes(s->db, 1);
    est_err err = exec_script(s, "PRAGMA foreign_keys = ON");
    if (err == EST_OK && !s->readonly)
        err = set_wal(s);
    if (err == EST_OK && !s->readonly)
        err = exec_script(s, "PRAGMA synchronous = NORMAL");
    return err;
}

static est_err prepare_all(struct gw_store *s)
{
    for (int i = 0; i < S__COUNT; i++) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[i], NULL);
        if (rc != SQLITE_OK)
            return fail(s, map_rc(rc), "preparing statement %d: %s", i, sqlite3_errmsg(s->db));
    }
    return EST_OK;
}

static void store_free(struct gw_store *s)
{
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    EVP_MD_CTX_free(s->md);
    free(s->last_good_written);
    free(s);
}

static char *join_path(const char *dir, const char *file)
{
    size_t len = strlen(dir) + 1 + strlen(file) + 1;
    char *path = malloc(len);
    if (path != NULL)
        snprintf(path, len, "%s/%s", dir, file);
    return path;
}

/* The steps of gw_store_open after the store exists. */
static est_err open_steps(struct gw_store *s, const char *data_dir, const char *path)
{
    est_err err = EST_OK;
    if (!s->readonly) {
        err = make_dirs(s, data_dir);
        if (err == EST_OK)
            err = create_db_file(s, path);
    } else if (access(path, F_OK) != 0) {
        return fail(s, EST_ERR_NOTFOUND, "%s: no database (has the daemon run?)", path);
    }
    if (err != EST_OK)
        return err;
    int flags = SQLITE_OPEN_NOMUTEX |
                (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (s->db == NULL)
            return fail(s, EST_ERR_NOMEM, "out of memory");
        return fail(s, map_rc(rc), "%s: %s", path, sqlite3_errmsg(s->db));
    }
    err = configure(s);
    if (err == EST_OK)
        err = s->readonly ? check_version(s) : migrate(s);
    if (err == EST_OK)
        err = prepare_all(s);
    if (err == EST_OK && (s->md = EVP_MD_CTX_new()) == NULL)
        err = fail(s, EST_ERR_NOMEM, "out of memory");
    return err;
}

est_err gw_store_open(const char *data_dir, bool readonly, struct gw_store **out, char *errbuf,
                      size_t errbuf_len)
{
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    if (out == NULL)
        return EST_ERR_INVALID;
    *out = NULL;
    if (data_dir == NULL || data_dir[0] == '\0') {
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "no data directory");
        return EST_ERR_INVALID;
    }
    struct gw_store *s = calloc(1, sizeof *s);
    char *path = join_path(data_dir, GW_STORE_DB_FILE);
    if (s == NULL || path == NULL) {
        free(s);
        free(path);
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "out of memory");
        return EST_ERR_NOMEM;
    }
    s->readonly = readonly;
    est_err err = open_steps(s, data_dir, path);
    free(path);
    if (err != EST_OK) {
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "%s", s->errmsg);
        store_free(s);
        return err;
    }
    *out = s;
    return EST_OK;
}

est_err gw_store_close(struct gw_store *store)
{
    if (store == NULL)
        return EST_OK;
    est_err err = EST_OK;
    if (!sqlite3_get_autocommit(store->db))
        gw_store_rollback(store);
    if (!store->readonly) {
        /* PASSIVE: copies and syncs what it can without waiting for readers
         * (an estate-ctl may hold one); the last close removes the WAL. */
        int rc = sqlite3_wal_checkpoint_v2(store->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            err = EST_ERR_DB;
        exec_script(store, "PRAGMA optimize");
    }
    store_free(store);
    return err;
}

/* ------------------------------------------------------------------ */
/* Inventory                                                           */
/* ------------------------------------------------------------------ */

static const char *const meter_status_names[] = {
    [GW_STORE_METER_OK] = "ok",
    [GW_STORE_METER_OFFLINE] = "offline",
    [GW_STORE_METER_DAMAGED] = "damaged",
    [GW_STORE_METER_REPLACED] = "replaced",
};

const char *gw_store_meter_status_name(enum gw_store_meter_status status)
{
    if ((unsigned)status >= sizeof meter_status_names / sizeof meter_status_names[0])
        return NULL;
    return meter_status_names[status];
}

/* Same order as enum gw_category (config.h). Kept here rather than calling
 * gw_category_name() so the store does not depend on the config loader. */
static const char *const category_names[] = {
    "master", "building", "unit", "amenity", "landscape", "shop", "public_lighting", "office",
};

static const char *category_name(enum gw_category c)
{
    if ((unsigned)c >= sizeof category_names / sizeof category_names[0])
        return "unknown";
    return category_names[c];
}

static const char *kind_name(enum drv_kind kind)
{
    switch (kind) {
    case DRV_KIND_ELECTRICITY: return "electricity";
    case DRV_KIND_WATER: return "water";
    case DRV_KIND_FIRE_PANEL: return "fire_panel";
    }
    return "unknown";
}

static est_err sync_unit(struct gw_store *s, const struct gw_unit_config *u, int64_t now_ms)
{
    if (u->id == NULL)
        return fail(s, EST_ERR_INVALID, "a unit without an id");
    sqlite3_stmt *q = st(s, S_UNIT_UPSERT);
    int rc = SQLITE_OK;
    bind_text(q, 1, u->id, &rc);
    bind_text(q, 2, u->building, &rc);
    bind_text(q, 3, u->vacant ? "vacant" : "occupied", &rc);
    bind_opt(q, 4, now_ms, &rc);
    return exec_q(s, q, rc);
}

static est_err sync_meter(struct gw_store *s, const struct gw_config *c, size_t i, int64_t now_ms,
                          int64_t *rid)
{
    const struct gw_meter_config *m = &c->meters[i];
    if (m->id == NULL)
        return fail(s, EST_ERR_INVALID, "a meter without an id");
    const struct gw_unit_config *unit =
        m->unit >= 0 && (size_t)m->unit < c->nunits ? &c->units[m->unit] : NULL;
    const char *building = m->building != NULL ? m->building : unit != NULL ? unit->building : NULL;
    sqlite3_stmt *q = st(s, S_METER_UPSERT);
    int rc = SQLITE_OK;
    bind_text(q, 1, m->id, &rc);
    bind_text(q, 2, kind_name(m->kind), &rc);
    bind_text(q, 3, category_name(m->category), &rc);
    bind_text(q, 4, unit != NULL ? unit->id : NULL, &rc);
    bind_text(q, 5, building, &rc);
    bind_text(q, 6, m->location, &rc);
    bind_text(q, 7, m->model != NULL ? m->model->name : NULL, &rc);
    bind_text(q, 8, m->bus < c->nbuses ? c->buses[m->bus].name : NULL, &rc);
    bind_int(q, 9, m->slave, &rc);
    bind_text(q, 10, m->serial, &rc);
    bind_text(q, 11, m->parent >= 0 && (size_t)m->parent < c->nmeters ? c->meters[m->parent].id
                                                                       : m->parent_id, &rc);
    bind_int(q, 12, m->valve ? 1 : 0, &rc);
    bind_int(q, 13, now_ms, &rc);
    int64_t id = 0;
    est_err err = query_int(s, q, rc, &id);
    if (err == EST_OK && rid != NULL)
        *rid = id;
    return err;
}

est_err gw_store_sync_inventory(struct gw_store *store, const struct gw_config *config,
                                int64_t now_ms, int64_t *meter_rids)
{
    if (store == NULL || config == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = exec_q(store, st(store, S_METERS_MARK_REMOVED), SQLITE_OK);
    if (err == EST_OK)
        err = exec_q(store, st(store, S_UNITS_MARK_REMOVED), SQLITE_OK);
    for (size_t i = 0; err == EST_OK && i < config->nunits; i++)
        err = sync_unit(store, &config->units[i], now_ms);
    for (size_t i = 0; err == EST_OK && i < config->nmeters; i++)
        err = sync_meter(store, config, i, now_ms, meter_rids != NULL ? &meter_rids[i] : NULL);
    return tx_end(store, began, err);
}

est_err gw_store_meter_rowid(struct gw_store *store, const char *meter_id, int64_t *rid)
{
    if (store == NULL || meter_id == NULL || rid == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_METER_ROWID);
    int rc = SQLITE_OK;
    bind_text(q, 1, meter_id, &rc);
    est_err err = query_int(store, q, rc, rid);
    if (err == EST_ERR_NOTFOUND)
        fail(store, err, "unknown meter %s", meter_id);
    return err;
}

/* Runs an UPDATE keyed by meter id; EST_ERR_NOTFOUND when no row changed. */
static est_err update_meter(struct gw_store *s, enum stmt_id id, const char *meter_id,
                            const char *value)
{
    sqlite3_stmt *q = st(s, id);
    int rc = SQLITE_OK;
    bind_text(q, 1, meter_id, &rc);
    bind_text(q, 2, value, &rc);
    est_err err = exec_q(s, q, rc);
    if (err == EST_OK && changes(s) == 0)
        err = fail(s, EST_ERR_NOTFOUND, "unknown meter %s", meter_id);
    return err;
}

est_err gw_store_set_meter_status(struct gw_store *store, const char *meter_id,
                                  enum gw_store_meter_status status)
{
    const char *name = gw_store_meter_status_name(status);
    if (store == NULL || meter_id == NULL || name == NULL)
        return EST_ERR_INVALID;
    return update_meter(store, S_METER_SET_STATUS, meter_id, name);
}

est_err gw_store_update_serial(struct gw_store *store, const char *meter_id, const char *serial)
{
    if (store == NULL || meter_id == NULL)
        return EST_ERR_INVALID;
    return update_meter(store, S_METER_SET_SERIAL, meter_id, serial);
}

est_err gw_store_record_replacement(struct gw_store *store, const struct gw_store_replacement *r)
{
    if (store == NULL || r == NULL || r->meter_id == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t rid = 0;
    err = gw_store_meter_rowid(store, r->meter_id, &rid);
    if (err == EST_OK) {
        sqlite3_stmt *q = st(store, S_REPLACEMENT_INSERT);
        int rc = SQLITE_OK;
        bind_int(q, 1, rid, &rc);
        bind_int(q, 2, r->ts_ms, &rc);
        bind_text(q, 3, r->old_serial, &rc);
        bind_text(q, 4, r->old_last_reading_json, &rc);
        bind_text(q, 5, r->new_serial, &rc);
        bind_text(q, 6, r->new_first_reading_json, &rc);
        err = exec_q(store, q, rc);
    }
    if (err == EST_OK)
        err = update_meter(store, S_METER_SET_SERIAL, r->meter_id, r->new_serial);
    return tx_end(store, began, err);
}

struct replacement_cb {
    gw_store_replacement_fn fn;
    void *ctx;
};

static bool replacement_row(sqlite3_stmt *q, void *arg)
{
    const struct replacement_cb *cb = arg;
    struct gw_store_replacement r = {
        .meter_id = col_text(q, 0),
        .ts_ms = col_int(q, 1),
        .old_serial = col_text(q, 2),
        .old_last_reading_json = col_text(q, 3),
        .new_serial = col_text(q, 4),
        .new_first_reading_json = col_text(q, 5),
    };
    return cb->fn(cb->ctx, &r);
}

est_err gw_store_replacements_list(struct gw_store *store, const char *meter_id, int64_t from_ms,
                                   int64_t to_ms, gw_store_replacement_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_REPLACEMENTS_LIST);
    int rc = SQLITE_OK;
    bind_int(q, 1, from_ms, &rc);
    bind_int(q, 2, to_ms, &rc);
    bind_text(q, 3, meter_id, &rc);
    struct replacement_cb cb = {fn, ctx};
    return each_row(store, q, rc, replacement_row, &cb, NULL);
}

struct meter_cb {
    gw_store_meter_fn fn;
    void *ctx;
};

static bool meter_row(sqlite3_stmt *q, void *arg)
{
    const struct meter_cb *cb = arg;
    struct gw_store_meter m = {
        .rid = col_int(q, 0),
        .id = col_text(q, 1),
        .kind = col_text(q, 2),
        .category = col_text(q, 3),
        .unit = col_text(q, 4),
        .building = col_text(q, 5),
        .location = col_text(q, 6),
        .driver = col_text(q, 7),
        .bus = col_text(q, 8),
        .slave = (int)col_int(q, 9),
        .serial = col_text(q, 10),
        .parent = col_text(q, 11),
        .valve = col_int(q, 12) != 0,
        .install_ms = col_int(q, 13),
        .status = col_text(q, 14),
        .last_good_ms = col_int(q, 15),
        .last_values_json = col_text(q, 16),
        .removed = col_int(q, 17) != 0,
    };
    return cb->fn(cb->ctx, &m);
}

est_err gw_store_meters_list(struct gw_store *store, gw_store_meter_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct meter_cb cb = {fn, ctx};
    return each_row(store, st(store, S_METERS_LIST), SQLITE_OK, meter_row, &cb, NULL);
}

/* ------------------------------------------------------------------ */
/* Occupancy                                                           */
/* ------------------------------------------------------------------ */

est_err gw_store_get_occupancy(struct gw_store *store, const char *unit_id, bool *vacant)
{
    if (store == NULL || unit_id == NULL || vacant == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_UNIT_GET_OCCUPANCY);
    int rc = SQLITE_OK;
    bind_text(q, 1, unit_id, &rc);
    bool row;
    est_err err = first_row(store, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return fail(store, EST_ERR_NOTFOUND, "unknown unit %s", unit_id);
    const char *occupancy = col_text(q, 0);
    *vacant = occupancy != NULL && strcmp(occupancy, "vacant") == 0;
    sqlite3_reset(q);
    return EST_OK;
}

est_err gw_store_set_occupancy(struct gw_store *store, const char *unit_id, bool vacant,
                               const char *who, int64_t ts_ms)
{
    if (store == NULL || unit_id == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_UNIT_SET_OCCUPANCY);
    int rc = SQLITE_OK;
    bind_text(q, 1, unit_id, &rc);
    bind_text(q, 2, vacant ? "vacant" : "occupied", &rc);
    bind_opt(q, 3, ts_ms, &rc);
    bind_text(q, 4, who, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = fail(store, EST_ERR_NOTFOUND, "unknown unit %s", unit_id);
    return err;
}

struct unit_cb {
    gw_store_unit_fn fn;
    void *ctx;
};

static bool unit_row(sqlite3_stmt *q, void *arg)
{
    const struct unit_cb *cb = arg;
    const char *occupancy = col_text(q, 2);
    struct gw_store_unit u = {
        .id = col_text(q, 0),
        .building = col_text(q, 1),
        .vacant = occupancy != NULL && strcmp(occupancy, "vacant") == 0,
        .occupancy_changed_ms = col_int(q, 3),
        .occupancy_by = col_text(q, 4),
        .removed = col_int(q, 5) != 0,
    };
    return cb->fn(cb->ctx, &u);
}

est_err gw_store_units_list(struct gw_store *store, gw_store_unit_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct unit_cb cb = {fn, ctx};
    return each_row(store, st(store, S_UNITS_LIST), SQLITE_OK, unit_row, &cb, NULL);
}

/* ------------------------------------------------------------------ */
/* Readings                                                            */
/* ------------------------------------------------------------------ */

void gw_store_values_clear(struct gw_store_values *values)
{
    values->energy_import_kwh = NAN;
    values->energy_export_kwh = NAN;
    values->power_w = NAN;
    values->volume_m3 = NAN;
    values->flow_m3h = NAN;
}

static double quantity(const struct drv_reading *r, enum drv_quantity q)
{
    return (r->present & (UINT64_C(1) << q)) != 0 ? r->value[q] : NAN;
}

static struct gw_store_values reading_values(const struct gw_store_reading *row)
{
    if (row->reading == NULL)
        return row->values;
    const struct drv_reading *r = row->reading;
    return (struct gw_store_values){
        .energy_import_kwh = quantity(r, DRV_Q_ENERGY_IMPORT_KWH),
        .energy_export_kwh = quantity(r, DRV_Q_ENERGY_EXPORT_KWH),
        .power_w = quantity(r, DRV_Q_POWER_W),
        .volume_m3 = quantity(r, DRV_Q_VOLUME_M3),
        .flow_m3h = quantity(r, DRV_Q_FLOW_M3H),
    };
}

static est_err insert_reading(struct gw_store *s, const struct gw_store_reading *row)
{
    struct gw_store_values v = reading_values(row);
    sqlite3_stmt *q = st(s, S_READING_INSERT);
    int rc = SQLITE_OK;
    bind_int(q, 1, row->meter_rid, &rc);
    bind_int(q, 2, row->ts_ms, &rc);
    bind_int(q, 3, (int64_t)row->quality, &rc);
    bind_real(q, 4, v.energy_import_kwh, &rc);
    bind_real(q, 5, v.energy_export_kwh, &rc);
    bind_real(q, 6, v.power_w, &rc);
    bind_real(q, 7, v.volume_m3, &rc);
    bind_real(q, 8, v.flow_m3h, &rc);
    bind_text(q, 9, row->values_json, &rc);
    return exec_q(s, q, rc);
}

/* Orders good readings by meter, then time, then position in the batch. */
static int by_meter_time(const void *a, const void *b)
{
    const struct gw_store_reading *x = *(const struct gw_store_reading *const *)a;
    const struct gw_store_reading *y = *(const struct gw_store_reading *const *)b;
    if (x->meter_rid != y->meter_rid)
        return x->meter_rid < y->meter_rid ? -1 : 1;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Whether the meter's inventory row is due for its last good reading at
 * ts_ms (and, if so, notes it as written): on its first good reading through
 * this connection, then when ts_ms is GW_STORE_LAST_GOOD_EVERY_MS past the
 * one last written. Rewriting a meter's row on every poll costs more than
 * storing the reading itself on a large site (a random page per meter per
 * batch, written again to the WAL and checkpointed). */
static bool last_good_due(struct gw_store *s, int64_t rid, int64_t ts_ms)
{
    if (rid <= 0 || rid > GW_STORE_LAST_GOOD_MAX_RID)
        return true; /* not cached: always written */
    if ((size_t)rid >= s->last_good_cap) {
        size_t cap = s->last_good_cap ? s->last_good_cap : 1024;
        while (cap <= (size_t)rid)
            cap *= 2;
        int64_t *grown = realloc(s->last_good_written, cap * sizeof *grown);
        if (grown == NULL)
            return true;
        memset(grown + s->last_good_cap, 0, (cap - s->last_good_cap) * sizeof *grown);
        s->last_good_written = grown;
        s->last_good_cap = cap;
    }
    int64_t *written = &s->last_good_written[rid];
    if (*written != 0 && ts_ms >= *written && ts_ms - *written < GW_STORE_LAST_GOOD_EVERY_MS)
        return false;
    *written = ts_ms;
    return true;
}

/* One UPDATE per meter that is due: the newest good reading of the batch. */
static est_err update_last_good(struct gw_store *s, const struct gw_store_reading *rows, size_t n)
{
    const struct gw_store_reading **good = malloc(n * sizeof *good);
    if (good == NULL)
        return fail(s, EST_ERR_NOMEM, "out of memory");
    size_t ngood = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].quality == GW_STORE_GOOD)
            good[ngood++] = &rows[i];
    qsort(good, ngood, sizeof *good, by_meter_time);
    est_err err = EST_OK;
    for (size_t i = 0; err == EST_OK && i < ngood; i++) {
        if (i + 1 < ngood && good[i + 1]->meter_rid == good[i]->meter_rid)
            continue;
        if (!last_good_due(s, good[i]->meter_rid, good[i]->ts_ms))
            continue;
        sqlite3_stmt *q = st(s, S_METER_LAST_GOOD);
        int rc = SQLITE_OK;
        bind_int(q, 1, good[i]->meter_rid, &rc);
        bind_int(q, 2, good[i]->ts_ms, &rc);
        bind_text(q, 3, good[i]->values_json, &rc);
        err = exec_q(s, q, rc);
    }
    free(good);
    return err;
}

/* Reads the index state (after opening, or after a rollback undid some of
 * what memory said). An upto beyond the last row (rows deleted by hand) is
 * pulled back so that new rows, which reuse those rowids, get indexed. */
static est_err load_index_state(struct gw_store *s)
{
    if (s->index_state_known)
        return EST_OK;
    sqlite3_stmt *q = st(s, S_READINGS_INDEXED_GET);
    int rc = sqlite3_step(q);
    est_err err = EST_OK;
    if (rc == SQLITE_ROW) {
        s->indexed_upto = sqlite3_column_int64(q, 0);
        s->last_rowid = sqlite3_column_int64(q, 1);
    } else {
        err = rc == SQLITE_DONE ? fail(s, EST_ERR_DB, "readings_indexed has no row") : fail_db(s, rc);
    }
    sqlite3_reset(q);
    if (err != EST_OK)
        return err;
    s->tail_since_ms = est_mono_ms();
    if (s->indexed_upto > s->last_rowid) {
        s->indexed_upto = s->last_rowid;
        sqlite3_stmt *set = st(s, S_READINGS_INDEXED_SET);
        int brc = SQLITE_OK;
        bind_int(set, 1, s->indexed_upto, &brc);
        err = exec_q(s, set, brc);
    }
    s->index_state_known = err == EST_OK;
    return err;
}

/* Adds the tail (rows indexed_upto+1 .. last_rowid) to readings_index,
 * sorted by meter so that each meter's entries go into one place. Runs
 * inside the caller's transaction. */
static est_err index_tail(struct gw_store *s)
{
    if (s->last_rowid <= s->indexed_upto)
        return EST_OK;
    sqlite3_stmt *q = st(s, S_READINGS_INDEX_TAIL);
    int rc = SQLITE_OK;
    bind_int(q, 1, s->indexed_upto, &rc);
    bind_int(q, 2, s->last_rowid, &rc);
    est_err err = exec_q(s, q, rc);
    if (err == EST_OK) {
        sqlite3_stmt *set = st(s, S_READINGS_INDEXED_SET);
        rc = SQLITE_OK;
        bind_int(set, 1, s->last_rowid, &rc);
        err = exec_q(s, set, rc);
    }
    if (err == EST_OK)
        s->indexed_upto = s->last_rowid;
    return err;
}

est_err gw_store_add_readings(struct gw_store *store, const struct gw_store_reading *rows,
                              size_t n)
{
    if (store == NULL || (rows == NULL && n > 0))
        return EST_ERR_INVALID;
    if (n == 0)
        return EST_OK;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = load_index_state(store);
    bool tail_was_empty = store->last_rowid <= store->indexed_upto;
    for (size_t i = 0; err == EST_OK && i < n; i++)
        err = insert_reading(store, &rows[i]);
    if (err == EST_OK) {
        store->last_rowid = sqlite3_last_insert_rowid(store->db);
        int64_t now = est_mono_ms();
        if (tail_was_empty)
            store->tail_since_ms = now;
        if (store->last_rowid - store->indexed_upto >= GW_STORE_INDEX_STEP_ROWS ||
            now - store->tail_since_ms >= GW_STORE_INDEX_STEP_MS)
            err = index_tail(store);
    }
    if (err == EST_OK)
        err = update_last_good(store, rows, n);
    return tx_end(store, began, err);
}

est_err gw_store_index_readings(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (store->readonly)
        return fail(store, EST_ERR_PERM, "read-only store");
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = load_index_state(store);
    if (err == EST_OK)
        err = index_tail(store);
    return tx_end(store, began, err);
}

struct reading_cb {
    gw_store_reading_fn fn;
    void *ctx;
};

static bool reading_row(sqlite3_stmt *q, void *arg)
{
    const struct reading_cb *cb = arg;
    int quality = (int)col_int(q, 3);
    struct gw_store_reading_row r = {
        .meter_rid = col_int(q, 0),
        .meter_id = col_text(q, 1),
        .ts_ms = col_int(q, 2),
        .quality = quality >= GW_STORE_GOOD && quality <= GW_STORE_ERROR
                       ? (enum gw_store_quality)quality
                       : GW_STORE_ERROR,
        .values = {col_real(q, 4), col_real(q, 5), col_real(q, 6), col_real(q, 7), col_real(q, 8)},
        .values_json = col_text(q, 9),
    };
    return cb->fn(cb->ctx, &r);
}

est_err gw_store_readings_latest(struct gw_store *store, gw_store_reading_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct reading_cb cb = {fn, ctx};
    return each_row(store, st(store, S_READINGS_LATEST), SQLITE_OK, reading_row, &cb, NULL);
}

est_err gw_store_readings_history(struct gw_store *store, int64_t meter_rid, int64_t from_ms,
                                  int64_t to_ms, size_t limit, gw_store_reading_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_READINGS_HISTORY);
    int rc = SQLITE_OK;
    bind_int(q, 1, meter_rid, &rc);
    bind_int(q, 2, from_ms, &rc);
    bind_int(q, 3, to_ms, &rc);
    bind_limit(q, 4, limit, &rc);
    struct reading_cb cb = {fn, ctx};
    return each_row(store, q, rc, reading_row, &cb, NULL);
}

/* "YYYY-MM-DD" with digits where digits belong. */
static bool valid_day(const char *day)
{
    if (day == NULL || strlen(day) != 10)
        return false;
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? day[i] != '-' : (day[i] < '0' || day[i] > '9'))
            return false;
    }
    return true;
}

est_err gw_store_snapshot_if_needed(struct gw_store *store, int64_t meter_rid,
                                    const char *local_day, int64_t ts_ms,
                                    const struct gw_store_values *values, bool *inserted)
{
    if (inserted != NULL)
        *inserted = false;
    if (store == NULL || values == NULL)
        return EST_ERR_INVALID;
    if (!valid_day(local_day))
        return fail(store, EST_ERR_INVALID, "day must be YYYY-MM-DD");
    sqlite3_stmt *q = st(store, S_SNAPSHOT_INSERT);
    int rc = SQLITE_OK;
    bind_int(q, 1, meter_rid, &rc);
    bind_text(q, 2, local_day, &rc);
    bind_int(q, 3, ts_ms, &rc);
    bind_real(q, 4, values->energy_import_kwh, &rc);
    bind_real(q, 5, values->energy_export_kwh, &rc);
    bind_real(q, 6, values->volume_m3, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && inserted != NULL)
        *inserted = changes(store) > 0;
    return err;
}

struct snapshot_cb {
    gw_store_snapshot_fn fn;
    void *ctx;
};

static bool snapshot_row(sqlite3_stmt *q, void *arg)
{
    const struct snapshot_cb *cb = arg;
    struct gw_store_snapshot snap = {
        .meter_rid = col_int(q, 0),
        .meter_id = col_text(q, 1),
        .day = col_text(q, 2),
        .ts_ms = col_int(q, 3),
        .energy_import_kwh = col_real(q, 4),
        .energy_export_kwh = col_real(q, 5),
        .volume_m3 = col_real(q, 6),
    };
    return cb->fn(cb->ctx, &snap);
}

est_err gw_store_snapshots_list(struct gw_store *store, const char *meter_id,
                                const char *first_day, const char *last_day,
                                gw_store_snapshot_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL || first_day == NULL || last_day == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_SNAPSHOTS_LIST);
    int rc = SQLITE_OK;
    bind_text(q, 1, first_day, &rc);
    bind_text(q, 2, last_day, &rc);
    bind_text(q, 3, meter_id, &rc);
    struct snapshot_cb cb = {fn, ctx};
    return each_row(store, q, rc, snapshot_row, &cb, NULL);
}

struct rowid_list {
    int64_t *ids;
    size_t n;
};

static bool collect_rowid(sqlite3_stmt *q, void *arg)
{
    struct rowid_list *list = arg;
    list->ids[list->n++] = col_int(q, 0);
    return true;
}

est_err gw_store_prune_readings(struct gw_store *store, int64_t older_than_ms, size_t max_rows,
                                int64_t *resume, size_t *deleted)
{
    if (deleted != NULL)
        *deleted = 0;
    if (store == NULL || resume == NULL || max_rows == 0 || max_rows > SIZE_MAX / sizeof(int64_t))
        return EST_ERR_INVALID;
    struct rowid_list list = {malloc(max_rows * sizeof(int64_t)), 0};
    if (list.ids == NULL)
        return fail(store, EST_ERR_NOMEM, "out of memory");
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK) {
        free(list.ids);
        return err;
    }
    /* Only indexed rows are looked at: index the tail first. */
    err = load_index_state(store);
    if (err == EST_OK)
        err = index_tail(store);
    /* Collect first, then delete: never delete under a running SELECT. */
    sqlite3_stmt *q = st(store, S_PRUNE_SELECT);
    int rc = SQLITE_OK;
    bind_int(q, 1, older_than_ms, &rc);
    bind_limit(q, 2, max_rows, &rc);
    bind_int(q, 3, *resume, &rc);
    if (err == EST_OK)
        err = each_row(store, q, rc, collect_rowid, &list, NULL);
    for (size_t i = 0; err == EST_OK && i < list.n; i++) {
        sqlite3_stmt *del = st(store, S_PRUNE_DELETE);
        int brc = SQLITE_OK;
        bind_int(del, 1, list.ids[i], &brc);
        err = exec_q(store, del, brc);
    }
    err = tx_end(store, began, err);
    if (err == EST_OK) {
        *resume = list.n == max_rows ? list.ids[list.n - 1] : 0;
        if (deleted != NULL)
            *deleted = list.n;
    }
    free(list.ids);
    return err;
}

/* ------------------------------------------------------------------ */
/* Incidents                                                           */
/* ------------------------------------------------------------------ */

static void bind_zone(sqlite3_stmt *q, int i, int zone, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = zone >= 0 ? sqlite3_bind_int(q, i, zone) : sqlite3_bind_null(q, i);
}

/* Looks up the open incident for in's key. EST_ERR_NOTFOUND if none. */
static est_err incident_find_open(struct gw_store *s, const struct gw_store_incident *in,
                                  int64_t *id)
{
    sqlite3_stmt *q = st(s, S_INCIDENT_FIND_OPEN);
    int rc = SQLITE_OK;
    bind_text(q, 1, in->rule, &rc);
    bind_text(q, 2, in->subject_type, &rc);
    bind_text(q, 3, in->subject, &rc);
    bind_zone(q, 4, in->zone, &rc);
    return query_int(s, q, rc, id);
}

static est_err incident_insert(struct gw_store *s, const struct gw_store_incident *in, int64_t *id)
{
    sqlite3_stmt *q = st(s, S_INCIDENT_INSERT);
    int rc = SQLITE_OK;
    bind_text(q, 1, in->rule, &rc);
    bind_text(q, 2, in->subject_type, &rc);
    bind_text(q, 3, in->subject, &rc);
    bind_zone(q, 4, in->zone, &rc);
    bind_text(q, 5, in->severity, &rc);
    bind_int(q, 6, in->since_ms, &rc);
    bind_int(q, 7, in->raised_ms, &rc);
    bind_text(q, 8, in->detail_json, &rc);
    bind_text(q, 9, in->text, &rc);
    return query_int(s, q, rc, id);
}

est_err gw_store_incident_open(struct gw_store *store, const struct gw_store_incident *in,
                               int64_t *id, bool *existing)
{
    if (store == NULL || in == NULL || id == NULL || in->rule == NULL ||
        in->subject_type == NULL || in->subject == NULL || in->severity == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    bool found = false;
    int64_t found_id = 0;
    err = incident_find_open(store, in, &found_id);
    if (err == EST_OK) {
        found = true;
    } else if (err == EST_ERR_NOTFOUND) {
        err = incident_insert(store, in, &found_id);
    }
    err = tx_end(store, began, err);
    if (err == EST_OK) {
        *id = found_id;
        if (existing != NULL)
            *existing = found;
    }
    return err;
}

/* After an UPDATE ... AND state = 'open' changed nothing: why? */
static est_err incident_not_open(struct gw_store *s, int64_t id)
{
    sqlite3_stmt *q = st(s, S_INCIDENT_STATE);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bool row;
    est_err err = first_row(s, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return fail(s, EST_ERR_NOTFOUND, "no incident %" PRId64, id);
    sqlite3_reset(q);
    return fail(s, EST_ERR_STATE, "incident %" PRId64 " is cleared", id);
}

est_err gw_store_incident_update(struct gw_store *store, int64_t id, const char *severity,
                                 const char *detail_json, const char *text, int64_t updated_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_INCIDENT_UPDATE);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bind_text(q, 2, severity, &rc);
    bind_text(q, 3, detail_json, &rc);
    bind_text(q, 4, text, &rc);
    bind_int(q, 5, updated_ms, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = incident_not_open(store, id);
    return err;
}

est_err gw_store_incident_clear(struct gw_store *store, int64_t id, int64_t cleared_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_INCIDENT_CLEAR);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bind_int(q, 2, cleared_ms, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = incident_not_open(store, id);
    return err;
}

est_err gw_store_incident_confirm(struct gw_store *store, int64_t id, bool disputed,
                                  const char *who, int64_t ts_ms)
{
    if (store == NULL || who == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, disputed ? S_INCIDENT_DISPUTE : S_INCIDENT_CONFIRM);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bind_text(q, 2, who, &rc);
    bind_int(q, 3, ts_ms, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = fail(store, EST_ERR_NOTFOUND, "no incident %" PRId64, id);
    return err;
}

struct incident_cb {
    gw_store_incident_fn fn;
    void *ctx;
};

static bool incident_row(sqlite3_stmt *q, void *arg)
{
    const struct incident_cb *cb = arg;
    const char *state = col_text(q, 6);
    struct gw_store_incident inc = {
        .id = col_int(q, 0),
        .rule = col_text(q, 1),
        .subject_type = col_text(q, 2),
        .subject = col_text(q, 3),
        .zone = sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 4),
        .severity = col_text(q, 5),
        .open = state != NULL && strcmp(state, "open") == 0,
        .since_ms = col_int(q, 7),
        .raised_ms = col_int(q, 8),
        .updated_ms = col_int(q, 9),
        .cleared_ms = col_int(q, 10),
        .detail_json = col_text(q, 11),
        .text = col_text(q, 12),
        .confirmed_by = col_text(q, 13),
        .confirmed_ms = col_int(q, 14),
        .disputed_by = col_text(q, 15),
        .disputed_ms = col_int(q, 16),
    };
    return cb->fn(cb->ctx, &inc);
}

est_err gw_store_incidents_open(struct gw_store *store, gw_store_incident_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct incident_cb cb = {fn, ctx};
    return each_row(store, st(store, S_INCIDENTS_OPEN), SQLITE_OK, incident_row, &cb, NULL);
}

est_err gw_store_incident_get(struct gw_store *store, int64_t id, gw_store_incident_fn fn,
                              void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_INCIDENT_GET);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    struct incident_cb cb = {fn, ctx};
    size_t n = 0;
    est_err err = each_row(store, q, rc, incident_row, &cb, &n);
    if (err == EST_OK && n == 0)
        err = fail(store, EST_ERR_NOTFOUND, "no incident %" PRId64, id);
    return err;
}

est_err gw_store_incidents_between(struct gw_store *store, int64_t from_ms, int64_t to_ms,
                                   gw_store_incident_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_INCIDENTS_BETWEEN);
    int rc = SQLITE_OK;
    bind_int(q, 1, from_ms, &rc);
    bind_int(q, 2, to_ms, &rc);
    struct incident_cb cb = {fn, ctx};
    return each_row(store, q, rc, incident_row, &cb, NULL);
}

/* ------------------------------------------------------------------ */
/* Outbox                                                              */
/* ------------------------------------------------------------------ */

est_err gw_store_outbox_add(struct gw_store *store, const struct gw_store_outbox_msg *msg,
                            int64_t *seq)
{
    if (store == NULL || msg == NULL || msg->topic == NULL ||
        (msg->payload == NULL && msg->payload_len > 0) || msg->qos < 0 || msg->qos > 2)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_OUTBOX_INSERT);
    int rc = SQLITE_OK;
    bind_text(q, 1, msg->topic, &rc);
    /* A NULL pointer would bind SQL NULL; an empty payload (a retained
     * clear) must stay an empty blob. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(q, 2, msg->payload != NULL ? msg->payload : "",
                                 msg->payload_len, SQLITE_STATIC);
    bind_int(q, 3, msg->qos, &rc);
    bind_int(q, 4, msg->retain ? 1 : 0, &rc);
    bind_int(q, 5, msg->is_event ? 1 : 0, &rc);
    bind_int(q, 6, msg->created_ms, &rc);
    int64_t id = 0;
    est_err err = query_int(store, q, rc, &id);
    if (err == EST_OK && seq != NULL)
        *seq = id;
    return err;
}

struct outbox_cb {
    gw_store_outbox_fn fn;
    void *ctx;
};

static bool outbox_row(sqlite3_stmt *q, void *arg)
{
    const struct outbox_cb *cb = arg;
    struct gw_store_outbox_msg msg = {
        .seq = col_int(q, 0),
        .topic = col_text(q, 1),
        .payload = sqlite3_column_blob(q, 2),
        .payload_len = (size_t)sqlite3_column_bytes(q, 2),
        .qos = (int)col_int(q, 3),
        .retain = col_int(q, 4) != 0,
        .is_event = col_int(q, 5) != 0,
        .created_ms = col_int(q, 6),
    };
    return cb->fn(cb->ctx, &msg);
}

est_err gw_store_outbox_peek(struct gw_store *store, int64_t after_seq, size_t max,
                             gw_store_outbox_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_OUTBOX_PEEK);
    int rc = SQLITE_OK;
    bind_int(q, 1, after_seq, &rc);
    bind_limit(q, 2, max, &rc);
    struct outbox_cb cb = {fn, ctx};
    return each_row(store, q, rc, outbox_row, &cb, NULL);
}

est_err gw_store_outbox_delete(struct gw_store *store, int64_t seq)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_OUTBOX_DELETE);
    int rc = SQLITE_OK;
    bind_int(q, 1, seq, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = fail(store, EST_ERR_NOTFOUND, "outbox message %" PRId64 " is not queued", seq);
    return err;
}

static bool totals_row(sqlite3_stmt *q, void *arg)
{
    struct gw_store_outbox_counts *c = arg;
    int64_t rows = col_int(q, 1), bytes = col_int(q, 2);
    uint64_t urows = rows > 0 ? (uint64_t)rows : 0, ubytes = bytes > 0 ? (uint64_t)bytes : 0;
    if (col_int(q, 0) != 0) {
        c->events = urows;
        c->event_bytes = ubytes;
    } else {
        c->readings = urows;
        c->reading_bytes = ubytes;
    }
    return true;
}

est_err gw_store_outbox_counts(struct gw_store *store, struct gw_store_outbox_counts *counts)
{
    if (store == NULL || counts == NULL)
        return EST_ERR_INVALID;
    *counts = (struct gw_store_outbox_counts){0};
    return each_row(store, st(store, S_OUTBOX_TOTALS), SQLITE_OK, totals_row, counts, NULL);
}

/* Walks the oldest readings until their bytes cover excess. */
struct trim_scan {
    uint64_t excess;
    uint64_t covered;
    uint64_t rows;
    int64_t last_seq;
};

static bool trim_row(sqlite3_stmt *q, void *arg)
{
    struct trim_scan *t = arg;
    t->last_seq = col_int(q, 0);
    t->covered += (uint64_t)col_int(q, 1);
    t->rows++;
    return t->covered < t->excess;
}

est_err gw_store_outbox_trim_readings(struct gw_store *store, uint64_t limit_bytes,
                                      uint64_t *dropped)
{
    if (dropped != NULL)
        *dropped = 0;
    if (store == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    struct gw_store_outbox_counts counts;
    err = gw_store_outbox_counts(store, &counts);
    struct trim_scan scan = {0};
    if (err == EST_OK && counts.reading_bytes > limit_bytes) {
        scan.excess = counts.reading_bytes - limit_bytes;
        err = each_row(store, st(store, S_OUTBOX_OLDEST_READINGS), SQLITE_OK, trim_row, &scan,
                       NULL);
        if (err == EST_OK && scan.rows > 0) {
            sqlite3_stmt *q = st(store, S_OUTBOX_DELETE_READINGS_UPTO);
            int rc = SQLITE_OK;
            bind_int(q, 1, scan.last_seq, &rc);
            err = exec_q(store, q, rc);
        }
    }
    err = tx_end(store, began, err);
    if (err == EST_OK && dropped != NULL)
        *dropped = scan.rows;
    return err;
}

/* ------------------------------------------------------------------ */
/* Patrol log                                                          */
/* ------------------------------------------------------------------ */

/* A field of the hash input: bytes (text), an integer, or absent. */
struct field {
    enum { F_TEXT, F_INT, F_NULL } type;
    const void *bytes;
    size_t len;
    int64_t value;
};

static struct field f_text(const char *p, size_t len)
{
    return (struct field){.type = F_TEXT, .bytes = p != NULL ? p : "", .len = p != NULL ? len : 0};
}

static struct field f_int(int64_t v) { return (struct field){.type = F_INT, .value = v}; }

static struct field f_opt_int(int64_t v)
{
    return v != 0 ? f_int(v) : (struct field){.type = F_NULL};
}

/* Encodes one field as store.h documents: T<len>:<bytes>, I<len>:<digits>, or N. */
static bool hash_field(EVP_MD_CTX *md, const struct field *f)
{
    if (f->type == F_NULL)
        return EVP_DigestUpdate(md, "N", 1) == 1;
    char digits[24];
    const void *bytes = f->bytes;
    size_t len = f->len;
    if (f->type == F_INT) {
        len = (size_t)snprintf(digits, sizeof digits, "%" PRId64, f->value);
        bytes = digits;
    }
    char head[32];
    int head_len = snprintf(head, sizeof head, "%c%zu:", f->type == F_INT ? 'I' : 'T', len);
    return EVP_DigestUpdate(md, head, (size_t)head_len) == 1 &&
           (len == 0 || EVP_DigestUpdate(md, bytes, len) == 1) &&
           EVP_DigestUpdate(md, ",", 1) == 1;
}

#define PATROL_FIELDS 9

/* SHA-256 over "EGWP1" and the nine fields, as lowercase hex into out. */
static bool hash_fields(EVP_MD_CTX *md, const struct field fields[PATROL_FIELDS],
                        char out[GW_STORE_HASH_LEN])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    bool ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(md, "EGWP1", 5) == 1;
    for (int i = 0; ok && i < PATROL_FIELDS; i++)
        ok = hash_field(md, &fields[i]);
    ok = ok && EVP_DigestFinal_ex(md, digest, &digest_len) == 1 && digest_len == 32;
    if (!ok)
        return false;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[HASH_HEX_CHARS] = '\0';
    return true;
}

/* Fields of an entry given as C strings. */
static void entry_fields(const struct gw_store_patrol_entry *e, struct field f[PATROL_FIELDS])
{
    f[0] = f_text(e->prev_hash, strnlen(e->prev_hash, GW_STORE_HASH_LEN - 1));
    f[1] = f_int(e->seq);
    f[2] = f_int(e->ts_ms);
    f[3] = f_text(e->kind, e->kind != NULL ? strlen(e->kind) : 0);
    f[4] = f_text(e->text, e->text != NULL ? strlen(e->text) : 0);
    f[5] = f_opt_int(e->incident);
    f[6] = f_opt_int(e->workorder);
    f[7] = f_text(e->author, e->author != NULL ? strlen(e->author) : 0);
    f[8] = e->detail_json != NULL ? f_text(e->detail_json, strlen(e->detail_json))
                                  : (struct field){.type = F_NULL};
}

est_err gw_store_patrol_compute_hash(const struct gw_store_patrol_entry *entry,
                                     char out[GW_STORE_HASH_LEN])
{
    if (entry == NULL || out == NULL)
        return EST_ERR_INVALID;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return EST_ERR_NOMEM;
    struct field f[PATROL_FIELDS];
    entry_fields(entry, f);
    bool ok = hash_fields(md, f, out);
    EVP_MD_CTX_free(md);
    return ok ? EST_OK : EST_ERR_INVALID;
}

/* Copies a stored hash column into a buffer (truncating garbage). */
static void copy_hash(char out[GW_STORE_HASH_LEN], const char *text)
{
    snprintf(out, GW_STORE_HASH_LEN, "%s", text != NULL ? text : "");
}

static est_err patrol_head(struct gw_store *s, int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    sqlite3_stmt *q = st(s, S_PATROL_HEAD);
    bool row;
    est_err err = first_row(s, q, SQLITE_OK, &row);
    if (err != EST_OK)
        return err;
    if (!row) {
        *seq = 0;
        copy_hash(hash, GENESIS_HASH);
        return EST_OK;
    }
    *seq = col_int(q, 0);
    copy_hash(hash, col_text(q, 1));
    sqlite3_reset(q);
    return EST_OK;
}

est_err gw_store_patrol_head(struct gw_store *store, int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    if (store == NULL || seq == NULL || hash == NULL)
        return EST_ERR_INVALID;
    return patrol_head(store, seq, hash);
}

static est_err patrol_insert(struct gw_store *s, const struct gw_store_patrol_entry *e)
{
    sqlite3_stmt *q = st(s, S_PATROL_INSERT);
    int rc = SQLITE_OK;
    bind_int(q, 1, e->seq, &rc);
    bind_int(q, 2, e->ts_ms, &rc);
    bind_text(q, 3, e->kind, &rc);
    bind_text(q, 4, e->text, &rc);
    bind_opt(q, 5, e->incident, &rc);
    bind_opt(q, 6, e->workorder, &rc);
    bind_text(q, 7, e->author, &rc);
    bind_text(q, 8, e->detail_json, &rc);
    bind_text(q, 9, e->prev_hash, &rc);
    bind_text(q, 10, e->hash, &rc);
    return exec_q(s, q, rc);
}

est_err gw_store_patrol_append(struct gw_store *store, struct gw_store_patrol_entry *entry)
{
    if (store == NULL || entry == NULL || entry->kind == NULL || entry->text == NULL ||
        entry->author == NULL)
        return EST_ERR_INVALID;
    struct gw_store_patrol_entry e = *entry;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t head_seq = 0;
    err = patrol_head(store, &head_seq, e.prev_hash);
    if (err == EST_OK) {
        e.seq = head_seq + 1;
        struct field f[PATROL_FIELDS];
        entry_fields(&e, f);
        if (!hash_fields(store->md, f, e.hash))
            err = fail(store, EST_ERR_INVALID, "SHA-256 failed");
    }
    if (err == EST_OK)
        err = patrol_insert(store, &e);
    err = tx_end(store, began, err);
    if (err == EST_OK)
        *entry = e;
    return err;
}

struct patrol_cb {
    gw_store_patrol_fn fn;
    void *ctx;
};

static bool patrol_row(sqlite3_stmt *q, void *arg)
{
    const struct patrol_cb *cb = arg;
    struct gw_store_patrol_entry e = {
        .seq = col_int(q, 0),
        .ts_ms = col_int(q, 1),
        .kind = col_text(q, 2),
        .text = col_text(q, 3),
        .incident = col_int(q, 4),
        .workorder = col_int(q, 5),
        .author = col_text(q, 6),
        .detail_json = col_text(q, 7),
    };
    copy_hash(e.prev_hash, col_text(q, 8));
    copy_hash(e.hash, col_text(q, 9));
    return cb->fn(cb->ctx, &e);
}

est_err gw_store_patrol_list(struct gw_store *store, int64_t since_seq, size_t limit,
                             gw_store_patrol_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_PATROL_LIST);
    int rc = SQLITE_OK;
    bind_int(q, 1, since_seq, &rc);
    bind_limit(q, 2, limit, &rc);
    struct patrol_cb cb = {fn, ctx};
    return each_row(store, q, rc, patrol_row, &cb, NULL);
}

/* A stored column as a hash field exactly as stored (embedded NULs and all). */
static struct field col_field(sqlite3_stmt *q, int i, bool integer)
{
    switch (sqlite3_column_type(q, i)) {
    case SQLITE_NULL: return (struct field){.type = F_NULL};
    case SQLITE_INTEGER:
        if (integer)
            return f_int(sqlite3_column_int64(q, i));
        break;
    default: break;
    }
    const char *p = col_text(q, i);
    return f_text(p, (size_t)sqlite3_column_bytes(q, i));
}

static bool stored_hash_is(sqlite3_stmt *q, int i, const char *hash)
{
    const char *stored = col_text(q, i);
    return stored != NULL && sqlite3_column_bytes(q, i) == HASH_HEX_CHARS &&
           memcmp(stored, hash, HASH_HEX_CHARS) == 0;
}

/* Notes a problem at seq unless an earlier one is already known. */
static void verify_note(struct gw_store_patrol_verify *r, int64_t seq, const char *problem)
{
    if (seq < 1)
        seq = 1;
    if (r->first_bad_seq == 0 || seq < r->first_bad_seq) {
        r->first_bad_seq = seq;
        r->problem = problem;
    }
}

/* Checks one row of the walk against the expected seq and previous hash. */
static bool verify_row(struct gw_store *s, sqlite3_stmt *q, int64_t expected,
                       const char prev[GW_STORE_HASH_LEN], struct gw_store_patrol_verify *r)
{
    int64_t seq = col_int(q, 0);
    if (seq > expected) {
        verify_note(r, expected, "entry missing (gap in the sequence)");
        return false;
    }
    if (seq < expected) {
        verify_note(r, seq, "entry with an unexpected sequence number");
        return false;
    }
    if (!stored_hash_is(q, 8, prev)) {
        verify_note(r, seq, "prev_hash does not match the previous entry's hash");
        return false;
    }
    struct field f[PATROL_FIELDS] = {
        col_field(q, 8, false), f_int(seq), col_field(q, 1, true), col_field(q, 2, false),
        col_field(q, 3, false), col_field(q, 4, true), col_field(q, 5, true),
        col_field(q, 6, false), col_field(q, 7, false),
    };
    char computed[GW_STORE_HASH_LEN];
    if (!hash_fields(s->md, f, computed) || !stored_hash_is(q, 9, computed)) {
        verify_note(r, seq, "hash does not match the entry's contents");
        return false;
    }
    return true;
}

/* Walks every entry in seq order (one statement, one snapshot). */
static est_err verify_walk(struct gw_store *s, struct gw_store_patrol_verify *r)
{
    sqlite3_stmt *q = st(s, S_PATROL_LIST);
    int rc = SQLITE_OK;
    bind_int(q, 1, INT64_MIN, &rc);
    bind_limit(q, 2, 0, &rc);
    if (rc != SQLITE_OK) {
        sqlite3_reset(q);
        return fail_db(s, rc);
    }
    char prev[GW_STORE_HASH_LEN];
    copy_hash(prev, GENESIS_HASH);
    int64_t expected = 1;
    bool intact = true;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (intact)
            intact = verify_row(s, q, expected, prev, r);
        r->count++;
        r->head_seq = col_int(q, 0);
        copy_hash(r->head_hash, col_text(q, 9));
        copy_hash(prev, col_text(q, 9));
        expected = r->head_seq + 1;
    }
    est_err err = rc == SQLITE_DONE ? EST_OK : fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

/* Stored hash of entry seq: EST_ERR_NOTFOUND when there is no such entry. */
static est_err patrol_hash_at(struct gw_store *s, int64_t seq, char hash[GW_STORE_HASH_LEN])
{
    sqlite3_stmt *q = st(s, S_PATROL_HASH_AT);
    int rc = SQLITE_OK;
    bind_int(q, 1, seq, &rc);
    bool row;
    est_err err = first_row(s, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return EST_ERR_NOTFOUND;
    copy_hash(hash, col_text(q, 0));
    sqlite3_reset(q);
    return EST_OK;
}

/* Every recorded anchor must still name an entry with the same hash. */
static est_err verify_anchors(struct gw_store *s, struct gw_store_patrol_verify *r)
{
    sqlite3_stmt *q = st(s, S_ANCHORS_LIST);
    int rc;
    est_err err = EST_OK;
    while (err == EST_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t seq = col_int(q, 0);
        char anchored[GW_STORE_HASH_LEN], stored[GW_STORE_HASH_LEN];
        copy_hash(anchored, col_text(q, 1));
        r->anchors++;
        err = patrol_hash_at(s, seq, stored);
        if (err == EST_ERR_NOTFOUND) {
            err = EST_OK;
            verify_note(r, seq > r->head_seq ? r->head_seq + 1 : seq,
                        "anchored entry missing (log truncated)");
        } else if (err == EST_OK && strcmp(anchored, stored) != 0) {
            verify_note(r, seq, "entry differs from its anchor");
        }
    }
    if (err == EST_OK && rc != SQLITE_DONE)
        err = fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

est_err gw_store_patrol_verify(struct gw_store *store, struct gw_store_patrol_verify *result)
{
    if (store == NULL || result == NULL)
        return EST_ERR_INVALID;
    *result = (struct gw_store_patrol_verify){0};
    copy_hash(result->head_hash, GENESIS_HASH);
    /* One read transaction: the walk and the anchors see the same snapshot. */
    bool began = sqlite3_get_autocommit(store->db) != 0;
    est_err err = began ? exec_q(store, st(store, S_BEGIN_READ), SQLITE_OK) : EST_OK;
    if (err != EST_OK)
        return err;
    err = verify_walk(store, result);
    if (err == EST_OK)
        err = verify_anchors(store, result);
    if (began)
        exec_q(store, st(store, S_ROLLBACK), SQLITE_OK);
    return err;
}

est_err gw_store_patrol_check_anchor(struct gw_store *store, int64_t seq, const char *hash)
{
    if (store == NULL || hash == NULL)
        return EST_ERR_INVALID;
    char stored[GW_STORE_HASH_LEN];
    est_err err = patrol_hash_at(store, seq, stored);
    if (err == EST_ERR_NOTFOUND)
        return fail(store, err, "patrol entry %" PRId64 " is missing", seq);
    if (err == EST_OK && strcmp(stored, hash) != 0)
        return fail(store, EST_ERR_STATE, "patrol entry %" PRId64 " differs from the anchor", seq);
    return err;
}

est_err gw_store_patrol_anchor(struct gw_store *store, int64_t ts_ms, const char *destination,
                               int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    if (store == NULL || destination == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t head_seq = 0;
    char head_hash[GW_STORE_HASH_LEN];
    err = patrol_head(store, &head_seq, head_hash);
    if (err == EST_OK && head_seq == 0)
        err = fail(store, EST_ERR_STATE, "the patrol log is empty");
    if (err == EST_OK) {
        sqlite3_stmt *q = st(store, S_ANCHOR_INSERT);
        int rc = SQLITE_OK;
        bind_int(q, 1, ts_ms, &rc);
        bind_int(q, 2, head_seq, &rc);
        bind_text(q, 3, head_hash, &rc);
        bind_text(q, 4, destination, &rc);
        err = exec_q(store, q, rc);
    }
    err = tx_end(store, began, err);
    if (err == EST_OK && seq != NULL)
        *seq = head_seq;
    if (err == EST_OK && hash != NULL)
        copy_hash(hash, head_hash);
    return err;
}

/* ------------------------------------------------------------------ */
/* Work orders                                                         */
/* ------------------------------------------------------------------ */

static est_err wo_history_insert(struct gw_store *s, int64_t workorder,
                                 const struct gw_store_wo_history *h)
{
    sqlite3_stmt *q = st(s, S_WO_HISTORY_INSERT);
    int rc = SQLITE_OK;
    bind_int(q, 1, workorder, &rc);
    bind_int(q, 2, h->ts_ms, &rc);
    bind_text(q, 3, h->action, &rc);
    bind_text(q, 4, h->from_state, &rc);
    bind_text(q, 5, h->to_state, &rc);
    bind_text(q, 6, h->who, &rc);
    bind_text(q, 7, h->note, &rc);
    return exec_q(s, q, rc);
}

static est_err wo_insert(struct gw_store *s, const struct gw_store_workorder *wo, int64_t *id)
{
    sqlite3_stmt *q = st(s, S_WO_INSERT);
    int rc = SQLITE_OK;
    bind_opt(q, 1, wo->incident, &rc);
    bind_text(q, 2, wo->category, &rc);
    bind_text(q, 3, wo->unit, &rc);
    bind_text(q, 4, wo->building, &rc);
    bind_text(q, 5, wo->location, &rc);
    bind_text(q, 6, wo->description, &rc);
    bind_text(q, 7, wo->state != NULL ? wo->state : "open", &rc);
    bind_text(q, 8, wo->severity, &rc);
    bind_int(q, 9, wo->opened_ms, &rc);
    bind_opt(q, 10, wo->dispatched_ms, &rc);
    bind_opt(q, 11, wo->arrive_due_ms, &rc);
    bind_opt(q, 12, wo->resolve_due_ms, &rc);
    bind_opt(q, 13, wo->on_site_ms, &rc);
    bind_opt(q, 14, wo->completed_ms, &rc);
    bind_opt(q, 15, wo->verified_ms, &rc);
    bind_opt(q, 16, wo->cancelled_ms, &rc);
    bind_int(q, 17, wo->escalated ? 1 : 0, &rc);
    bind_text(q, 18, wo->assignee, &rc);
    bind_text(q, 19, wo->verifier, &rc);
    bind_opt(q, 20, wo->rating, &rc);
    bind_opt(q, 21, wo->postponed_until_ms, &rc);
    return query_int(s, q, rc, id);
}

est_err gw_store_workorder_for_incident(struct gw_store *store, int64_t incident, int64_t *id)
{
    if (store == NULL || id == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_WO_FIND_OPEN_BY_INCIDENT);
    int rc = SQLITE_OK;
    bind_int(q, 1, incident, &rc);
    return query_int(store, q, rc, id);
}

est_err gw_store_workorder_create(struct gw_store *store, const struct gw_store_workorder *wo,
                                  const char *who, const char *note, int64_t *id, bool *existing)
{
    if (store == NULL || wo == NULL || id == NULL || wo->category == NULL ||
        wo->description == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t wo_id = 0;
    bool found = false;
    if (wo->incident != 0) {
        err = gw_store_workorder_for_incident(store, wo->incident, &wo_id);
        found = err == EST_OK;
        if (err == EST_ERR_NOTFOUND)
            err = EST_OK;
    }
    if (err == EST_OK && !found) {
        err = wo_insert(store, wo, &wo_id);
        struct gw_store_wo_history h = {
            .ts_ms = wo->opened_ms, .action = "create", .from_state = NULL,
            .to_state = wo->state != NULL ? wo->state : "open", .who = who, .note = note,
        };
        if (err == EST_OK)
            err = wo_history_insert(store, wo_id, &h);
    }
    err = tx_end(store, began, err);
    if (err == EST_OK) {
        *id = wo_id;
        if (existing != NULL)
            *existing = found;
    }
    return err;
}

/* After a guarded UPDATE changed nothing: missing or in another state? */
static est_err wo_not_updated(struct gw_store *s, int64_t id, const char *expected)
{
    sqlite3_stmt *q = st(s, S_WO_STATE);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bool row;
    est_err err = first_row(s, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return fail(s, EST_ERR_NOTFOUND, "no work order %" PRId64, id);
    err = fail(s, EST_ERR_STATE, "work order %" PRId64 " is %s, not %s", id,
               col_text(q, 0) != NULL ? col_text(q, 0) : "?", expected);
    sqlite3_reset(q);
    return err;
}

static est_err wo_update_row(struct gw_store *s, const struct gw_store_workorder *wo,
                             const char *from_state)
{
    sqlite3_stmt *q = st(s, S_WO_UPDATE);
    int rc = SQLITE_OK;
    bind_int(q, 1, wo->id, &rc);
    bind_text(q, 2, wo->state, &rc);
    bind_opt(q, 3, wo->dispatched_ms, &rc);
    bind_opt(q, 4, wo->arrive_due_ms, &rc);
    bind_opt(q, 5, wo->resolve_due_ms, &rc);
    bind_opt(q, 6, wo->on_site_ms, &rc);
    bind_opt(q, 7, wo->completed_ms, &rc);
    bind_opt(q, 8, wo->verified_ms, &rc);
    bind_opt(q, 9, wo->cancelled_ms, &rc);
    bind_int(q, 10, wo->escalated ? 1 : 0, &rc);
    bind_text(q, 11, wo->assignee, &rc);
    bind_text(q, 12, wo->verifier, &rc);
    bind_opt(q, 13, wo->rating, &rc);
    bind_opt(q, 14, wo->postponed_until_ms, &rc);
    bind_int(q, 15, wo->updated_ms, &rc);
    bind_text(q, 16, wo->description, &rc);
    bind_text(q, 17, wo->location, &rc);
    bind_text(q, 18, from_state, &rc);
    est_err err = exec_q(s, q, rc);
    if (err == EST_OK && changes(s) == 0)
        err = wo_not_updated(s, wo->id, from_state != NULL ? from_state : "?");
    return err;
}

est_err gw_store_workorder_update(struct gw_store *store, const struct gw_store_workorder *wo,
                                  const struct gw_store_wo_history *h)
{
    if (store == NULL || wo == NULL || h == NULL || wo->state == NULL ||
        wo->description == NULL || h->action == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = wo_update_row(store, wo, h->from_state);
    if (err == EST_OK) {
        struct gw_store_wo_history rec = *h;
        if (rec.to_state == NULL)
            rec.to_state = wo->state;
        err = wo_history_insert(store, wo->id, &rec);
    }
    return tx_end(store, began, err);
}

struct workorder_cb {
    gw_store_workorder_fn fn;
    gw_store_wo_history_fn history_fn;
    void *ctx;
    bool more;  /* the work-order callback asked to continue */
};

static bool workorder_row(sqlite3_stmt *q, void *arg)
{
    struct workorder_cb *cb = arg;
    struct gw_store_workorder wo = {
        .id = col_int(q, 0),
        .incident = col_int(q, 1),
        .category = col_text(q, 2),
        .unit = col_text(q, 3),
        .building = col_text(q, 4),
        .location = col_text(q, 5),
        .description = col_text(q, 6),
        .state = col_text(q, 7),
        .severity = col_text(q, 8),
        .opened_ms = col_int(q, 9),
        .dispatched_ms = col_int(q, 10),
        .arrive_due_ms = col_int(q, 11),
        .resolve_due_ms = col_int(q, 12),
        .on_site_ms = col_int(q, 13),
        .completed_ms = col_int(q, 14),
        .verified_ms = col_int(q, 15),
        .cancelled_ms = col_int(q, 16),
        .escalated = col_int(q, 17) != 0,
        .assignee = col_text(q, 18),
        .verifier = col_text(q, 19),
        .rating = (int)col_int(q, 20),
        .postponed_until_ms = col_int(q, 21),
        .updated_ms = col_int(q, 22),
    };
    cb->more = cb->fn(cb->ctx, &wo);
    return cb->more;
}

static bool history_row(sqlite3_stmt *q, void *arg)
{
    const struct workorder_cb *cb = arg;
    struct gw_store_wo_history h = {
        .workorder = col_int(q, 0),
        .ts_ms = col_int(q, 1),
        .action = col_text(q, 2),
        .from_state = col_text(q, 3),
        .to_state = col_text(q, 4),
        .who = col_text(q, 5),
        .note = col_text(q, 6),
    };
    return cb->history_fn(cb->ctx, &h);
}

est_err gw_store_workorder_get(struct gw_store *store, int64_t id, gw_store_workorder_fn wo_fn,
                               gw_store_wo_history_fn history_fn, void *ctx)
{
    if (store == NULL || wo_fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_WO_GET);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    struct workorder_cb cb = {wo_fn, history_fn, ctx, false};
    size_t n = 0;
    est_err err = each_row(store, q, rc, workorder_row, &cb, &n);
    if (err == EST_OK && n == 0)
        return fail(store, EST_ERR_NOTFOUND, "no work order %" PRId64, id);
    if (err != EST_OK || history_fn == NULL || !cb.more)
        return err;
    q = st(store, S_WO_HISTORY);
    rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    return each_row(store, q, rc, history_row, &cb, NULL);
}

/* ",a,b," for the instr() filter; NULL with *err set on failure. */
static char *state_filter(struct gw_store *s, const char *const *states, size_t n, est_err *err)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        if (states[i] == NULL || strchr(states[i], ',') != NULL) {
            *err = fail(s, EST_ERR_INVALID, "bad work-order state name");
            return NULL;
        }
        len += strlen(states[i]) + 1;
    }
    char *filter = malloc(len);
    if (filter == NULL) {
        *err = fail(s, EST_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t at = 0;
    filter[at++] = ',';
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(states[i]);
        memcpy(filter + at, states[i], k);
        at += k;
        filter[at++] = ',';
    }
    filter[at] = '\0';
    return filter;
}

est_err gw_store_workorders_list(struct gw_store *store, const char *const *states, size_t nstates,
                                 gw_store_workorder_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL || (states == NULL && nstates > 0))
        return EST_ERR_INVALID;
    est_err err = EST_OK;
    char *filter = NULL;
    if (nstates > 0 && (filter = state_filter(store, states, nstates, &err)) == NULL)
        return err;
    sqlite3_stmt *q = st(store, S_WO_LIST);
    int rc = SQLITE_OK;
    bind_text(q, 1, filter, &rc);
    struct workorder_cb cb = {fn, NULL, ctx, false};
    err = each_row(store, q, rc, workorder_row, &cb, NULL);
    free(filter);
    return err;
}

/* ------------------------------------------------------------------ */
/* Meta and estate-ctl requests                                        */
/* ------------------------------------------------------------------ */

/* malloc'd copy of a text column (NULL stays NULL); false when out of memory. */
static bool dup_col(sqlite3_stmt *q, int i, char **out)
{
    const char *text = col_text(q, i);
    *out = NULL;
    if (text == NULL)
        return true;
    *out = strdup(text);
    return *out != NULL;
}

est_err gw_store_meta_get(struct gw_store *store, const char *key, char **value)
{
    if (store == NULL || key == NULL || value == NULL)
        return EST_ERR_INVALID;
    *value = NULL;
    sqlite3_stmt *q = st(store, S_META_GET);
    int rc = SQLITE_OK;
    bind_text(q, 1, key, &rc);
    bool row;
    est_err err = first_row(store, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return fail(store, EST_ERR_NOTFOUND, "no meta key %s", key);
    if (!dup_col(q, 0, value))
        err = fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}

est_err gw_store_meta_set(struct gw_store *store, const char *key, const char *value)
{
    if (store == NULL || key == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_META_SET);
    int rc = SQLITE_OK;
    bind_text(q, 1, key, &rc);
    bind_text(q, 2, value, &rc);
    return exec_q(store, q, rc);
}

est_err gw_store_ctl_submit(struct gw_store *store, const char *verb, const char *args_json,
                            int64_t created_ms, int64_t *id)
{
    if (store == NULL || verb == NULL || id == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_CTL_INSERT);
    int rc = SQLITE_OK;
    bind_int(q, 1, created_ms, &rc);
    bind_text(q, 2, verb, &rc);
    bind_text(q, 3, args_json, &rc);
    return query_int(store, q, rc, id);
}

/* Fetches the next pending request after after_id into owned copies (so the
 * callback may finish it while nothing is being stepped). *found false at
 * the end. */
static est_err ctl_next(struct gw_store *s, int64_t after_id, struct gw_store_ctl_request *req,
                        char **verb, char **args, bool *found)
{
    sqlite3_stmt *q = st(s, S_CTL_NEXT_PENDING);
    int rc = SQLITE_OK;
    bind_int(q, 1, after_id, &rc);
    est_err err = first_row(s, q, rc, found);
    if (err != EST_OK || !*found)
        return err;
    req->id = col_int(q, 0);
    req->created_ms = col_int(q, 1);
    if (!dup_col(q, 2, verb) || !dup_col(q, 3, args))
        err = fail(s, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    req->verb = *verb;
    req->args_json = *args;
    return err;
}

est_err gw_store_ctl_take_pending(struct gw_store *store, gw_store_ctl_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    int64_t last = 0;
    for (;;) {
        struct gw_store_ctl_request req = {0};
        char *verb = NULL, *args = NULL;
        bool found = false;
        est_err err = ctl_next(store, last, &req, &verb, &args, &found);
        bool more = err == EST_OK && found && fn(ctx, &req);
        last = req.id;
        free(verb);
        free(args);
        if (err != EST_OK || !more)
            return err;
    }
}

est_err gw_store_ctl_finish(struct gw_store *store, int64_t id, const char *result_json,
                            int64_t done_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_CTL_FINISH);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bind_text(q, 2, result_json, &rc);
    bind_int(q, 3, done_ms, &rc);
    est_err err = exec_q(store, q, rc);
    if (err == EST_OK && changes(store) == 0)
        err = fail(store, EST_ERR_NOTFOUND, "no pending request %" PRId64, id);
    return err;
}

est_err gw_store_ctl_result(struct gw_store *store, int64_t id, bool *done, char **result_json)
{
    if (store == NULL || done == NULL || result_json == NULL)
        return EST_ERR_INVALID;
    *done = false;
    *result_json = NULL;
    sqlite3_stmt *q = st(store, S_CTL_RESULT);
    int rc = SQLITE_OK;
    bind_int(q, 1, id, &rc);
    bool row;
    est_err err = first_row(store, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return fail(store, EST_ERR_NOTFOUND, "no request %" PRId64, id);
    const char *state = col_text(q, 0);
    *done = state != NULL && strcmp(state, "done") == 0;
    if (*done && !dup_col(q, 1, result_json))
        err = fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}

est_err gw_store_ctl_prune(struct gw_store *store, int64_t done_before_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = st(store, S_CTL_PRUNE);
    int rc = SQLITE_OK;
    bind_int(q, 1, done_before_ms, &rc);
    return exec_q(store, q, rc);
}
