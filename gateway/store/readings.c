/* readings.c - the readings table and the index kept beside it by hand,
 * each meter's last good reading in its inventory row, retention
 * (downsampling old readings), and the daily snapshots. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* Columns after the meter of a stored reading, as inserted and as read back. */
#define READING_VALUE_COLS \
    "quality, energy_import_kwh, energy_export_kwh, power_w, volume_m3, flow_m3h, values_json"
#define READING_COLS "ts_ms, " READING_VALUE_COLS

/* Columns of a listed reading: the meter's rid and id (NULL in history),
 * then READING_COLS. Both listing statements select them in this order. */
enum reading_col {
    READING_COL_METER_RID,
    READING_COL_METER_ID,
    READING_COL_TS_MS,
    READING_COL_QUALITY,
    READING_COL_ENERGY_IMPORT_KWH,
    READING_COL_ENERGY_EXPORT_KWH,
    READING_COL_POWER_W,
    READING_COL_VOLUME_M3,
    READING_COL_FLOW_M3H,
    READING_COL_VALUES_JSON,
};

/* Columns of S_READINGS_INDEXED_GET. */
enum indexed_col { INDEXED_COL_UPTO, INDEXED_COL_LAST_ROWID };

/* The one column of S_PRUNE_SELECT. */
enum { PRUNE_COL_ROWID = 0 };

/* Columns of a listed snapshot, in the order of enum snapshot_col. */
#define SNAPSHOT_COLS \
    "s.meter, m.id, s.day, s.ts_ms, s.energy_import_kwh, s.energy_export_kwh, s.volume_m3"
enum snapshot_col {
    SNAPSHOT_COL_METER_RID,
    SNAPSHOT_COL_METER_ID,
    SNAPSHOT_COL_DAY,
    SNAPSHOT_COL_TS_MS,
    SNAPSHOT_COL_ENERGY_IMPORT_KWH,
    SNAPSHOT_COL_ENERGY_EXPORT_KWH,
    SNAPSHOT_COL_VOLUME_M3,
};

static const struct store__sql readings_sql[] = {
    {S_METER_LAST_GOOD,
     "UPDATE meters SET last_good_ms = ?2, last_values_json = ?3"
     " WHERE rid = ?1 AND (last_good_ms IS NULL OR last_good_ms <= ?2)"},
    {S_READING_INSERT,
     "INSERT INTO readings(meter, " READING_COLS ")"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
    {S_READINGS_LATEST,
     "WITH tail AS MATERIALIZED (SELECT meter, rowid AS row, ts_ms FROM readings"
     "  WHERE rowid > (SELECT upto FROM readings_indexed))"
     " SELECT m.rid, m.id, " READING_COLS " FROM meters m JOIN readings r ON r.rowid ="
     " coalesce((SELECT t.row FROM tail t WHERE t.meter = m.rid"
     "  ORDER BY t.ts_ms DESC, t.row DESC LIMIT 1),"
     " (SELECT i.row FROM readings_index i WHERE i.meter = m.rid"
     "  ORDER BY i.ts_ms DESC, i.row DESC LIMIT 1))"
     " WHERE m.removed = 0 ORDER BY m.id"},
    /* ORDER BY 3 is READING_COL_TS_MS (SQL counts from 1). */
    {S_READINGS_HISTORY,
     "SELECT i.meter, NULL, i.ts_ms, " READING_VALUE_COLS
     " FROM readings_index i JOIN readings r ON r.rowid = i.row"
     " WHERE i.meter = ?1 AND i.ts_ms >= ?2 AND i.ts_ms < ?3"
     " UNION ALL SELECT meter, NULL, ts_ms, " READING_VALUE_COLS " FROM readings"
     " WHERE rowid > (SELECT upto FROM readings_indexed)"
     "  AND meter = ?1 AND ts_ms >= ?2 AND ts_ms < ?3"
     " ORDER BY 3 LIMIT ?4"},
    {S_READINGS_INDEXED_GET,
     "SELECT upto, coalesce((SELECT max(rowid) FROM readings), 0) FROM readings_indexed"},
    {S_READINGS_INDEX_TAIL,
     "INSERT INTO readings_index(meter, ts_ms, row)"
     " SELECT meter, ts_ms, rowid FROM readings WHERE rowid > ?1 AND rowid <= ?2"
     " ORDER BY meter, ts_ms, rowid"},
    {S_READINGS_INDEXED_SET, "UPDATE readings_indexed SET upto = ?1"},
    {S_PRUNE_SELECT,
     "SELECT r.rowid FROM readings r WHERE r.rowid > ?3"
     " AND r.rowid <= (SELECT upto FROM readings_indexed) AND r.ts_ms < ?1 AND EXISTS ("
     " SELECT 1 FROM readings_index p WHERE p.meter = r.meter"
     "  AND p.ts_ms >= r.ts_ms - (r.ts_ms % 3600000) AND p.ts_ms <= r.ts_ms"
     "  AND (p.ts_ms < r.ts_ms OR p.row < r.rowid))"
     " ORDER BY r.rowid LIMIT ?2"},
    {S_PRUNE_DELETE, "DELETE FROM readings WHERE rowid = ?1"},
    {S_SNAPSHOT_INSERT,
     "INSERT INTO snapshots(meter, day, ts_ms, energy_import_kwh, energy_export_kwh,"
     " volume_m3) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(meter, day) DO NOTHING"},
    {S_SNAPSHOTS_LIST,
     "SELECT " SNAPSHOT_COLS " FROM snapshots s JOIN meters m ON m.rid = s.meter"
     " WHERE s.day >= ?1 AND s.day <= ?2 AND (?3 IS NULL OR m.id = ?3)"
     " ORDER BY m.id, s.day"},
};
const struct store__sql_table store__readings_sql = STORE__SQL_TABLE(readings_sql);

/* ------------------------------------------------------------------ */
/* Storing readings                                                    */
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
    sqlite3_stmt *q = store__stmt(s, S_READING_INSERT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, row->meter_rid, &rc);
    store__bind_int(q, 2, row->ts_ms, &rc);
    store__bind_int(q, 3, (int64_t)row->quality, &rc);
    store__bind_real(q, 4, v.energy_import_kwh, &rc);
    store__bind_real(q, 5, v.energy_export_kwh, &rc);
    store__bind_real(q, 6, v.power_w, &rc);
    store__bind_real(q, 7, v.volume_m3, &rc);
    store__bind_real(q, 8, v.flow_m3h, &rc);
    store__bind_text(q, 9, row->values_json, &rc);
    return store__exec(s, q, rc);
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
        return store__fail(s, EST_ERR_NOMEM, "out of memory");
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
        sqlite3_stmt *q = store__stmt(s, S_METER_LAST_GOOD);
        int rc = SQLITE_OK;
        store__bind_int(q, 1, good[i]->meter_rid, &rc);
        store__bind_int(q, 2, good[i]->ts_ms, &rc);
        store__bind_text(q, 3, good[i]->values_json, &rc);
        err = store__exec(s, q, rc);
    }
    free(good);
    return err;
}

/* ------------------------------------------------------------------ */
/* The readings index                                                  */
/* ------------------------------------------------------------------ */

/* Stores readings_indexed.upto. */
static est_err set_indexed_upto(struct gw_store *s, int64_t upto)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_READINGS_INDEXED_SET, upto, &rc);
    return store__exec(s, q, rc);
}

/* Reads the index state (after opening, or after a rollback undid some of
 * what memory said). An upto beyond the last row (rows deleted by hand) is
 * pulled back so that new rows, which reuse those rowids, get indexed. */
static est_err load_index_state(struct gw_store *s)
{
    if (s->index_state_known)
        return EST_OK;
    sqlite3_stmt *q = store__stmt(s, S_READINGS_INDEXED_GET);
    int rc = sqlite3_step(q);
    est_err err = EST_OK;
    if (rc == SQLITE_ROW) {
        s->indexed_upto = store__col_int(q, INDEXED_COL_UPTO);
        s->last_rowid = store__col_int(q, INDEXED_COL_LAST_ROWID);
    } else {
        err = rc == SQLITE_DONE ? store__fail(s, EST_ERR_DB, "readings_indexed has no row")
                                : store__fail_db(s, rc);
    }
    sqlite3_reset(q);
    if (err != EST_OK)
        return err;
    s->tail_since_ms = est_mono_ms();
    if (s->indexed_upto > s->last_rowid) {
        s->indexed_upto = s->last_rowid;
        err = set_indexed_upto(s, s->indexed_upto);
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
    sqlite3_stmt *q = store__stmt(s, S_READINGS_INDEX_TAIL);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, s->indexed_upto, &rc);
    store__bind_int(q, 2, s->last_rowid, &rc);
    est_err err = store__exec(s, q, rc);
    if (err == EST_OK)
        err = set_indexed_upto(s, s->last_rowid);
    if (err == EST_OK)
        s->indexed_upto = s->last_rowid;
    return err;
}

/* load_index_state, then index_tail: every stored reading is indexed. */
static est_err index_all(struct gw_store *s)
{
    est_err err = load_index_state(s);
    if (err == EST_OK)
        err = index_tail(s);
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
    est_err err = store__tx_begin(store, &began);
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
    return store__tx_end(store, began, err);
}

est_err gw_store_index_readings(struct gw_store *store)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    if (store->readonly)
        return store__fail(store, EST_ERR_PERM, "read-only store");
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = index_all(store);
    return store__tx_end(store, began, err);
}

/* ------------------------------------------------------------------ */
/* Listing readings                                                    */
/* ------------------------------------------------------------------ */

/* A row of enum reading_col. */
static struct gw_store_reading_row reading_from_row(sqlite3_stmt *q)
{
    int quality = (int)store__col_int(q, READING_COL_QUALITY);
    return (struct gw_store_reading_row){
        .meter_rid = store__col_int(q, READING_COL_METER_RID),
        .meter_id = store__col_text(q, READING_COL_METER_ID),
        .ts_ms = store__col_int(q, READING_COL_TS_MS),
        .quality = quality >= GW_STORE_GOOD && quality <= GW_STORE_ERROR
                       ? (enum gw_store_quality)quality
                       : GW_STORE_ERROR,
        .values = {
            .energy_import_kwh = store__col_real(q, READING_COL_ENERGY_IMPORT_KWH),
            .energy_export_kwh = store__col_real(q, READING_COL_ENERGY_EXPORT_KWH),
            .power_w = store__col_real(q, READING_COL_POWER_W),
            .volume_m3 = store__col_real(q, READING_COL_VOLUME_M3),
            .flow_m3h = store__col_real(q, READING_COL_FLOW_M3H),
        },
        .values_json = store__col_text(q, READING_COL_VALUES_JSON),
    };
}

static bool reading_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_reading_row r = reading_from_row(q);
    return l->fn.reading(l->ctx, &r);
}

est_err gw_store_readings_latest(struct gw_store *store, gw_store_reading_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct store__listing l = {.fn.reading = fn, .ctx = ctx};
    return store__each_row(store, store__stmt(store, S_READINGS_LATEST), SQLITE_OK, reading_row,
                           &l, NULL);
}

est_err gw_store_readings_history(struct gw_store *store, int64_t meter_rid, int64_t from_ms,
                                  int64_t to_ms, size_t limit, gw_store_reading_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_READINGS_HISTORY);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, meter_rid, &rc);
    store__bind_int(q, 2, from_ms, &rc);
    store__bind_int(q, 3, to_ms, &rc);
    store__bind_limit(q, 4, limit, &rc);
    struct store__listing l = {.fn.reading = fn, .ctx = ctx};
    return store__each_row(store, q, rc, reading_row, &l, NULL);
}

/* ------------------------------------------------------------------ */
/* Daily snapshots                                                     */
/* ------------------------------------------------------------------ */

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
        return store__fail(store, EST_ERR_INVALID, "day must be YYYY-MM-DD");
    sqlite3_stmt *q = store__stmt(store, S_SNAPSHOT_INSERT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, meter_rid, &rc);
    store__bind_text(q, 2, local_day, &rc);
    store__bind_int(q, 3, ts_ms, &rc);
    store__bind_real(q, 4, values->energy_import_kwh, &rc);
    store__bind_real(q, 5, values->energy_export_kwh, &rc);
    store__bind_real(q, 6, values->volume_m3, &rc);
    est_err err = store__exec(store, q, rc);
    if (err == EST_OK && inserted != NULL)
        *inserted = store__changes(store) > 0;
    return err;
}

/* A row of SNAPSHOT_COLS. */
static struct gw_store_snapshot snapshot_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_snapshot){
        .meter_rid = store__col_int(q, SNAPSHOT_COL_METER_RID),
        .meter_id = store__col_text(q, SNAPSHOT_COL_METER_ID),
        .day = store__col_text(q, SNAPSHOT_COL_DAY),
        .ts_ms = store__col_int(q, SNAPSHOT_COL_TS_MS),
        .energy_import_kwh = store__col_real(q, SNAPSHOT_COL_ENERGY_IMPORT_KWH),
        .energy_export_kwh = store__col_real(q, SNAPSHOT_COL_ENERGY_EXPORT_KWH),
        .volume_m3 = store__col_real(q, SNAPSHOT_COL_VOLUME_M3),
    };
}

static bool snapshot_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_snapshot snap = snapshot_from_row(q);
    return l->fn.snapshot(l->ctx, &snap);
}

est_err gw_store_snapshots_list(struct gw_store *store, const char *meter_id,
                                const char *first_day, const char *last_day,
                                gw_store_snapshot_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL || first_day == NULL || last_day == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_SNAPSHOTS_LIST);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, first_day, &rc);
    store__bind_text(q, 2, last_day, &rc);
    store__bind_text(q, 3, meter_id, &rc);
    struct store__listing l = {.fn.snapshot = fn, .ctx = ctx};
    return store__each_row(store, q, rc, snapshot_row, &l, NULL);
}

/* ------------------------------------------------------------------ */
/* Retention                                                           */
/* ------------------------------------------------------------------ */

struct rowid_list {
    int64_t *ids;
    size_t n;
};

static bool collect_rowid(sqlite3_stmt *q, void *arg)
{
    struct rowid_list *list = arg;
    list->ids[list->n++] = store__col_int(q, PRUNE_COL_ROWID);
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
        return store__fail(store, EST_ERR_NOMEM, "out of memory");
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK) {
        free(list.ids);
        return err;
    }
    /* Only indexed rows are looked at: index the tail first. */
    err = index_all(store);
    /* Collect first, then delete: never delete under a running SELECT. */
    sqlite3_stmt *q = store__stmt(store, S_PRUNE_SELECT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, older_than_ms, &rc);
    store__bind_limit(q, 2, max_rows, &rc);
    store__bind_int(q, 3, *resume, &rc);
    if (err == EST_OK)
        err = store__each_row(store, q, rc, collect_rowid, &list, NULL);
    for (size_t i = 0; err == EST_OK && i < list.n; i++) {
        int brc = SQLITE_OK;
        sqlite3_stmt *del = store__stmt_int(store, S_PRUNE_DELETE, list.ids[i], &brc);
        err = store__exec(store, del, brc);
    }
    err = store__tx_end(store, began, err);
    if (err == EST_OK) {
        *resume = list.n == max_rows ? list.ids[list.n - 1] : 0;
        if (deleted != NULL)
            *deleted = list.n;
    }
    free(list.ids);
    return err;
}
