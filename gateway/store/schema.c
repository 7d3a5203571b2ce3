/* schema.c - opening and closing the store: the data directory and file
 * modes, pragmas, the schema and its migrations, preparing every table
 * file's statements, and transactions (the caller's, and the store's own
 * with savepoints inside the caller's). Constant schema text (migrations,
 * pragmas) is the only SQL run here directly; everything else goes through
 * the prepared statements. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

/* The one column a PRAGMA query returns. */
enum { PRAGMA_COL_VALUE = 0 };

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

/* The request ids of MQTT commands already run, with their results: a
 * command sent again with the same id (a retry, a replay) is answered
 * from here and not run twice, also across a restart. */
static const char migration_3[] =
    "CREATE TABLE command_ids("
    " user TEXT NOT NULL, verb TEXT NOT NULL, request_id TEXT NOT NULL,"
    " result_json TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (user, verb, request_id)) WITHOUT ROWID;"
    "CREATE INDEX command_ids_created ON command_ids(created_ms);";

/* A DL/T 645 or CJ/T 188 meter's address as printed on it (12 or 14
 * digits, leading zeros kept); NULL for Modbus meters, which have a slave
 * id instead. */
static const char migration_4[] = "ALTER TABLE meters ADD COLUMN address TEXT;";
/* Who acknowledged an incident at the desk, and when. */
static const char migration_5[] =
    "ALTER TABLE incidents ADD COLUMN acked_by TEXT;"
    "ALTER TABLE incidents ADD COLUMN acked_ms INTEGER;";

/* Notifications waiting for their channel (group robot, HTTP, SMTP): one
 * row per cause ("incident:<id>:raised") and channel, written in the
 * transaction that stores the cause, kept once delivered. */
static const char migration_6[] =
    "CREATE TABLE notifications("
    " id INTEGER PRIMARY KEY, cause TEXT NOT NULL, channel TEXT NOT NULL, incident INTEGER,"
    " rule TEXT, severity TEXT, place TEXT, since_ms INTEGER, text TEXT NOT NULL,"
    " recipients TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,"
    " due_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    " delivered_ms INTEGER, UNIQUE (cause, channel));"
    "CREATE INDEX notifications_waiting ON notifications(due_ms, id) WHERE delivered_ms IS NULL;";

static const char *const migrations[] = {migration_1, migration_2, migration_3, migration_4,
                                            migration_5, migration_6};

_Static_assert(sizeof migrations / sizeof migrations[0] == GW_STORE_SCHEMA_VERSION,
               "one migration step per schema version");

/* ------------------------------------------------------------------ */
/* Prepared statements: this file's, and every table file's table      */
/* ------------------------------------------------------------------ */

static const struct store__sql transaction_sql[] = {
    {S_BEGIN, "BEGIN IMMEDIATE"},
    {S_BEGIN_READ, "BEGIN DEFERRED"},
    {S_COMMIT, "COMMIT"},
    {S_ROLLBACK, "ROLLBACK"},
    {S_SAVEPOINT, "SAVEPOINT gw_store"},
    {S_RELEASE, "RELEASE gw_store"},
    {S_ROLLBACK_TO, "ROLLBACK TO gw_store"},
};
const struct store__sql_table store__transaction_sql = STORE__SQL_TABLE(transaction_sql);

/* Every table file's statements, prepared at open. */
static const struct store__sql_table *const sql_tables[] = {
    &store__transaction_sql, &store__inventory_sql, &store__readings_sql,
    &store__incidents_sql,   &store__outbox_sql,    &store__patrol_sql,
    &store__workorders_sql,  &store__meta_sql,      &store__requests_sql,
    &store__command_ids_sql, &store__notifications_sql,
};

/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

est_err store__tx_begin(struct gw_store *s, bool *began)
{
    *began = sqlite3_get_autocommit(s->db) != 0;
    return store__exec(s, store__stmt(s, *began ? S_BEGIN : S_SAVEPOINT), SQLITE_OK);
}

est_err store__tx_end(struct gw_store *s, bool began, est_err err)
{
    if (err == EST_OK) {
        err = store__exec(s, store__stmt(s, began ? S_COMMIT : S_RELEASE), SQLITE_OK);
        if (err == EST_OK)
            return EST_OK;
    }
    char saved[sizeof s->errmsg];
    memcpy(saved, s->errmsg, sizeof saved);
    s->index_state_known = false;
    /* Errors are ignored here: SQLite may already have rolled back. */
    if (began) {
        if (!sqlite3_get_autocommit(s->db))
            store__exec(s, store__stmt(s, S_ROLLBACK), SQLITE_OK);
    } else if (!sqlite3_get_autocommit(s->db)) {
        store__exec(s, store__stmt(s, S_ROLLBACK_TO), SQLITE_OK);
        store__exec(s, store__stmt(s, S_RELEASE), SQLITE_OK);
    }
    memcpy(s->errmsg, saved, sizeof saved);
    return err;
}

est_err gw_store_begin(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (!sqlite3_get_autocommit(store->db))
        return store__fail(store, EST_ERR_STATE, "a transaction is already open");
    return store__exec(store, store__stmt(store, S_BEGIN), SQLITE_OK);
}

est_err gw_store_commit(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (sqlite3_get_autocommit(store->db))
        return store__fail(store, EST_ERR_STATE, "no transaction is open");
    return store__tx_end(store, true, EST_OK);
}

est_err gw_store_rollback(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (sqlite3_get_autocommit(store->db))
        return EST_OK;
    store->index_state_known = false;
    return store__exec(store, store__stmt(store, S_ROLLBACK), SQLITE_OK);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

/* mkdir -p with mode 0700 for every directory it creates. */
static est_err make_dirs(struct gw_store *s, const char *dir)
{
    char *path = strdup(dir);
    if (path == NULL)
        return store__fail(s, EST_ERR_NOMEM, "out of memory");
    est_err err = EST_OK;
    for (char *p = path + 1; err == EST_OK; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            err = store__fail(s, EST_ERR_IO, "%s: cannot create directory: %s", path,
                              strerror(errno));
        if (end)
            break;
        *p = '/';
    }
    struct stat info;
    if (err == EST_OK && (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode)))
        err = store__fail(s, EST_ERR_IO, "%s: not a directory", dir);
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
                               : store__fail(s, EST_ERR_IO, "%s: cannot create: %s", path,
                                             strerror(errno));
    est_err err = EST_OK;
    if (fchmod(fd, 0600) != 0)
        err = store__fail(s, EST_ERR_IO, "%s: cannot set mode 0600: %s", path, strerror(errno));
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
    est_err err = store__fail(s, store__map_rc(rc), "%s", msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

/* Runs a constant PRAGMA up to its one row; the caller reads *q and then
 * finalizes it, whatever the outcome. */
static est_err pragma_row(struct gw_store *s, const char *sql, sqlite3_stmt **q)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(*q);
    return rc == SQLITE_ROW ? EST_OK : store__fail_db(s, rc);
}

static est_err user_version(struct gw_store *s, int *version)
{
    sqlite3_stmt *q = NULL;
    est_err err = pragma_row(s, "PRAGMA user_version", &q);
    if (err == EST_OK)
        *version = sqlite3_column_int(q, PRAGMA_COL_VALUE);
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
        err = store__fail(s, EST_ERR_STATE,
                          "database schema version %d is newer than this program's (%d)", version,
                          GW_STORE_SCHEMA_VERSION);
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
        err = store__fail(s, EST_ERR_STATE,
                          "database schema version %d, this program needs %d (start the daemon "
                          "to migrate)", version, GW_STORE_SCHEMA_VERSION);
    return err;
}

static est_err set_wal(struct gw_store *s)
{
    sqlite3_stmt *q = NULL;
    est_err err = pragma_row(s, "PRAGMA journal_mode = WAL", &q);
    const char *mode = err == EST_OK ? store__col_text(q, PRAGMA_COL_VALUE) : NULL;
    if (err == EST_OK && sqlite3_stricmp(mode != NULL ? mode : "", "wal") != 0)
        err = store__fail(s, EST_ERR_DB, "the file system does not support WAL mode");
    sqlite3_finalize(q);
    return err;
}

static est_err configure(struct gw_store *s)
{
    int rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return store__fail_db(s, rc);
    sqlite3_extended_result_codes(s->db, 1);
    est_err err = exec_script(s, "PRAGMA foreign_keys = ON");
    if (err == EST_OK && !s->readonly)
        err = set_wal(s);
    if (err == EST_OK && !s->readonly)
        err = exec_script(s, "PRAGMA synchronous = NORMAL");
    return err;
}

static est_err prepare_table(struct gw_store *s, const struct store__sql_table *table)
{
    for (size_t i = 0; i < table->n; i++) {
        enum store__stmt id = table->rows[i].id;
        if (s->stmt[id] != NULL)
            return store__fail(s, EST_ERR_DB, "statement %d has two SQL texts", (int)id);
        int rc = sqlite3_prepare_v3(s->db, table->rows[i].text, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[id], NULL);
        if (rc != SQLITE_OK)
            return store__fail(s, store__map_rc(rc), "preparing statement %d: %s", (int)id,
                               sqlite3_errmsg(s->db));
    }
    return EST_OK;
}

static est_err prepare_all(struct gw_store *s)
{
    size_t ntables = sizeof sql_tables / sizeof sql_tables[0];
    for (size_t t = 0; t < ntables; t++) {
        est_err err = prepare_table(s, sql_tables[t]);
        if (err != EST_OK)
            return err;
    }
    for (int i = 0; i < S__COUNT; i++)
        if (s->stmt[i] == NULL)
            return store__fail(s, EST_ERR_DB, "statement %d has no SQL text", i);
    return EST_OK;
}

static void store_free(struct gw_store *s)
{
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    EVP_MD_CTX_free(s->md);
    free(s->last_good_written);
    free(s->reserve_path);
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
        return store__fail(s, EST_ERR_NOTFOUND, "%s: no database (has the daemon run?)", path);
    }
    if (err != EST_OK)
        return err;
    int flags = SQLITE_OPEN_NOMUTEX |
                (s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (s->db == NULL)
            return store__fail(s, EST_ERR_NOMEM, "out of memory");
        return store__fail(s, store__map_rc(rc), "%s: %s", path, sqlite3_errmsg(s->db));
    }
    err = configure(s);
    if (err == EST_OK)
        err = s->readonly ? check_version(s) : migrate(s);
    if (err == EST_OK)
        err = prepare_all(s);
    if (err == EST_OK && (s->md = EVP_MD_CTX_new()) == NULL)
        err = store__fail(s, EST_ERR_NOMEM, "out of memory");
    if (err == EST_OK && !s->readonly) {
        store__watch_checkpoints(s);
        /* What a previous run left in the WAL (busy: a reader, next time). */
        store__checkpoint(s, SQLITE_CHECKPOINT_PASSIVE);
    }
    return err;
}

/* gw_store_open on the database file path (data_dir only read-write). */
static est_err open_path(const char *data_dir, char *path, bool readonly, struct gw_store **out,
                         char *errbuf, size_t errbuf_len)
{
    struct gw_store *s = calloc(1, sizeof *s);
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
    return open_path(data_dir, join_path(data_dir, GW_STORE_DB_FILE), readonly, out, errbuf,
                     errbuf_len);
}

est_err gw_store_open_file(const char *db_path, struct gw_store **out, char *errbuf,
                           size_t errbuf_len)
{
    if (errbuf != NULL && errbuf_len > 0)
        errbuf[0] = '\0';
    if (out == NULL)
        return EST_ERR_INVALID;
    *out = NULL;
    if (db_path == NULL || db_path[0] == '\0') {
        if (errbuf != NULL && errbuf_len > 0)
            snprintf(errbuf, errbuf_len, "no database file");
        return EST_ERR_INVALID;
    }
    return open_path(NULL, strdup(db_path), true, out, errbuf, errbuf_len);
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
