/* store_internal.h - what the store's own files share and nothing outside
 * gateway/store/ may include: the connection struct, the ids of every
 * prepared statement, and the helpers that bind, step and read them.
 *
 * Each table file owns the SQL of its statements (a store__sql table, next
 * to the column enums its row mappers use); schema.c prepares them all at
 * open. Helpers here keep the first failure: binders leave *rc at the first
 * SQLite error, steppers turn it into an est_err with the message recorded
 * in the store. */
#ifndef GW_STORE_INTERNAL_H
#define GW_STORE_INTERNAL_H

#include "store.h"

#include <math.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <sqlite3.h>

/* Every prepared statement, grouped by the file that holds its SQL. */
enum store__stmt {
    /* schema.c: transactions */
    S_BEGIN,
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    /* inventory.c */
    S_METERS_MARK_REMOVED,
    S_UNITS_MARK_REMOVED,
    S_METER_UPSERT,
    S_UNIT_UPSERT,
    S_METER_ROWID,
    S_METER_SET_STATUS,
    S_METER_SET_SERIAL,
    S_METERS_LIST,
    S_REPLACEMENT_INSERT,
    S_REPLACEMENTS_LIST,
    S_UNIT_GET_OCCUPANCY,
    S_UNIT_SET_OCCUPANCY,
    S_UNITS_LIST,
    /* readings.c */
    S_METER_LAST_GOOD,
    S_READING_INSERT,
    S_READINGS_LATEST,
    S_READINGS_HISTORY,
    S_READINGS_INDEXED_GET,
    S_READINGS_INDEX_TAIL,
    S_READINGS_INDEXED_SET,
    S_PRUNE_SELECT,
    S_PRUNE_DELETE,
    S_SNAPSHOT_INSERT,
    S_SNAPSHOTS_LIST,
    /* incidents.c */
    S_INCIDENT_FIND_OPEN,
    S_INCIDENT_INSERT,
    S_INCIDENT_UPDATE,
    S_INCIDENT_CLEAR,
    S_INCIDENT_CONFIRM,
    S_INCIDENT_DISPUTE,
    S_INCIDENT_ACK,
    S_INCIDENT_STATE,
    S_INCIDENTS_OPEN,
    S_INCIDENT_GET,
    S_INCIDENTS_BETWEEN,
    /* outbox.c */
    S_OUTBOX_INSERT,
    S_OUTBOX_PEEK,
    S_OUTBOX_DELETE,
    S_OUTBOX_TOTALS,
    S_OUTBOX_OLDEST_READINGS,
    S_OUTBOX_DELETE_READINGS_UPTO,
    /* patrol.c */
    S_PATROL_HEAD,
    S_PATROL_INSERT,
    S_PATROL_LIST,
    S_PATROL_HASH_AT,
    S_ANCHOR_INSERT,
    S_ANCHORS_LIST,
    /* workorders.c */
    S_WO_FIND_OPEN_BY_INCIDENT,
    S_WO_INSERT,
    S_WO_UPDATE,
    S_WO_STATE,
    S_WO_HISTORY_INSERT,
    S_WO_GET,
    S_WO_HISTORY,
    S_WO_LIST,
    /* meta.c */
    S_META_GET,
    S_META_SET,
    /* requests.c */
    S_CTL_INSERT,
    S_CTL_NEXT_PENDING,
    S_CTL_FINISH,
    S_CTL_RESULT,
    S_CTL_PRUNE,
    /* command_ids.c */
    S_CMD_ID_GET,
    S_CMD_ID_PUT,
    S_CMD_ID_PRUNE,
    /* notifications.c */
    S_NOTE_INSERT,
    S_NOTE_DUE,
    S_NOTE_DELIVERED,
    S_NOTE_RETRY,
    S_NOTE_PENDING,
    S_NOTE_ON_DUTY,
    S__COUNT
};

/* One statement's SQL; a file's statements are a table of these. */
struct store__sql {
    enum store__stmt id;
    const char *text;
};

struct store__sql_table {
    const struct store__sql *rows;
    size_t n;
};

#define STORE__SQL_TABLE(rows) {(rows), sizeof(rows) / sizeof((rows)[0])}

/* The tables schema.c prepares at open (every id exactly once). */
extern const struct store__sql_table store__transaction_sql;
extern const struct store__sql_table store__inventory_sql;
extern const struct store__sql_table store__readings_sql;
extern const struct store__sql_table store__incidents_sql;
extern const struct store__sql_table store__outbox_sql;
extern const struct store__sql_table store__patrol_sql;
extern const struct store__sql_table store__workorders_sql;
extern const struct store__sql_table store__meta_sql;
extern const struct store__sql_table store__requests_sql;
extern const struct store__sql_table store__command_ids_sql;
extern const struct store__sql_table store__notifications_sql;

struct gw_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S__COUNT];
    EVP_MD_CTX *md;     /* reused for patrol hashes */
    bool readonly;
    char errmsg[512];   /* last failure; longer messages are truncated */
    uint64_t write_failures; /* statements that failed for want of space or I/O */
    char *reserve_path; /* data_dir's reserve file (gw_store_keep_reserve), or NULL */
    size_t reserve_bytes;
    /* WAL checkpoints this connection ran (see store__watch_checkpoints). */
    uint64_t checkpoints;
    int64_t last_checkpoint_ms; /* wall clock, 0 none yet */
    int wal_pages;              /* frames in the WAL after the last commit */
    /* ts_ms of the last good reading written to meters.last_good_ms by this
     * connection, indexed by meter rid (see readings.c). */
    int64_t *last_good_written;
    size_t last_good_cap;
    /* The readings index (see migration_2 in schema.c): rows with rowid <=
     * indexed_upto are in readings_index; the tail up to last_rowid is not
     * yet, and has been waiting since tail_since_ms (monotonic). Reloaded
     * from the database after a rollback. */
    bool index_state_known;
    int64_t indexed_upto;
    int64_t last_rowid;
    int64_t tail_since_ms;
};

/* Read-write connections: replaces SQLite's automatic checkpoint by the
 * same one (PASSIVE once the WAL holds STORE_WAL_CHECKPOINT_PAGES) run by
 * the store itself, which counts them and keeps the time of the last. */
#define STORE_WAL_CHECKPOINT_PAGES 1000 /* SQLite's default autocheckpoint */
void store__watch_checkpoints(struct gw_store *s);

/* Runs a checkpoint of the given mode and, when it completes, counts it. */
int store__checkpoint(struct gw_store *s, int mode);

/* A listing's public callback and its context, as a row adapter receives
 * them through store__each_row (one member per kind of record). */
struct store__listing {
    union {
        gw_store_meter_fn meter;
        gw_store_unit_fn unit;
        gw_store_replacement_fn replacement;
        gw_store_reading_fn reading;
        gw_store_snapshot_fn snapshot;
        gw_store_incident_fn incident;
        gw_store_outbox_fn outbox;
        gw_store_patrol_fn patrol;
        gw_store_notification_fn notification;
    } fn;
    void *ctx;
};

/* ------------------------------------------------------------------ */
/* Errors (sql.c)                                                      */
/* ------------------------------------------------------------------ */

/* The est_err for an SQLite result code. */
est_err store__map_rc(int rc);

/* Records SQLite's message for rc and returns the matching est_err. */
est_err store__fail_db(struct gw_store *s, int rc);

/* Records a message of our own and returns err. */
__attribute__((format(printf, 3, 4))) est_err store__fail(struct gw_store *s, est_err err,
                                                          const char *fmt, ...);

/* ------------------------------------------------------------------ */
/* Binding and columns (inline: they sit on the per-reading path)      */
/* ------------------------------------------------------------------ */

/* A statement ready for binding: reset, bindings cleared, errmsg reset. */
static inline sqlite3_stmt *store__stmt(struct gw_store *s, enum store__stmt id)
{
    sqlite3_stmt *q = s->stmt[id];
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    s->errmsg[0] = '\0';
    return q;
}

/* Binders keep the first failure in *rc so a run of binds needs one check. */
static inline void store__bind_text(sqlite3_stmt *q, int i, const char *v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v != NULL ? sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(q, i);
}

static inline void store__bind_int(sqlite3_stmt *q, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(q, i, v);
}

/* Statement id ready, with v bound to ?1: for statements keyed by one id. */
static inline sqlite3_stmt *store__stmt_int(struct gw_store *s, enum store__stmt id, int64_t v,
                                            int *rc)
{
    sqlite3_stmt *q = store__stmt(s, id);
    store__bind_int(q, 1, v, rc);
    return q;
}

/* 0 means "none" for times and ids. */
static inline void store__bind_opt(sqlite3_stmt *q, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = v != 0 ? sqlite3_bind_int64(q, i, v) : sqlite3_bind_null(q, i);
}

/* NAN (or Inf) means absent. */
static inline void store__bind_real(sqlite3_stmt *q, int i, double v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = isfinite(v) ? sqlite3_bind_double(q, i, v) : sqlite3_bind_null(q, i);
}

/* size_t limit, 0 = no limit (SQLite: negative LIMIT). */
static inline void store__bind_limit(sqlite3_stmt *q, int i, size_t limit, int *rc)
{
    int64_t v = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
    store__bind_int(q, i, v, rc);
}

static inline const char *store__col_text(sqlite3_stmt *q, int i)
{
    return (const char *)sqlite3_column_text(q, i);
}

/* NULL reads as 0 ("none"). */
static inline int64_t store__col_int(sqlite3_stmt *q, int i)
{
    return sqlite3_column_int64(q, i);
}

static inline double store__col_real(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

/* Rows changed by the last statement. */
static inline int64_t store__changes(const struct gw_store *s)
{
    return sqlite3_changes64(s->db);
}

/* ------------------------------------------------------------------ */
/* Stepping (sql.c)                                                    */
/* ------------------------------------------------------------------ */

/* Runs a statement that returns no rows we need, then resets it. */
est_err store__exec(struct gw_store *s, sqlite3_stmt *q, int bind_rc);

/* Steps to the first row. *row says whether there is one; the caller reads
 * columns and then resets q. */
est_err store__first_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc, bool *row);

/* Steps to the first row like store__first_row, but a missing row is
 * EST_ERR_NOTFOUND with the given message. */
__attribute__((format(printf, 4, 5)))
est_err store__find_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc, const char *fmt, ...);

/* Runs a single-integer query (e.g. RETURNING id). EST_ERR_NOTFOUND when it
 * returns no row. */
est_err store__query_int(struct gw_store *s, sqlite3_stmt *q, int bind_rc, int64_t *out);

/* Steps through every row, handing each to row(q, arg) until it returns
 * false; resets q. *nrows (may be NULL) receives the rows handed over. */
est_err store__each_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc,
                        bool (*row)(sqlite3_stmt *q, void *arg), void *arg, size_t *nrows);

/* Runs an UPDATE or DELETE and fails with EST_ERR_NOTFOUND and the given
 * message when it changed no row. */
__attribute__((format(printf, 4, 5)))
est_err store__exec_one(struct gw_store *s, sqlite3_stmt *q, int bind_rc, const char *fmt, ...);

/* malloc'd copy of a text column (NULL stays NULL); false when out of memory. */
bool store__dup_col(sqlite3_stmt *q, int i, char **out);

/* ------------------------------------------------------------------ */
/* Transactions (schema.c)                                             */
/* ------------------------------------------------------------------ */

/* Starts our own transaction, or a savepoint inside the caller's. */
est_err store__tx_begin(struct gw_store *s, bool *began);

/* Ends what store__tx_begin started: commits/releases when err is EST_OK,
 * rolls back otherwise (keeping the first error's message). Returns the
 * outcome. */
est_err store__tx_end(struct gw_store *s, bool began, est_err err);

#endif
