/* incidents.c - the incidents table: opening one idempotently per
 * condition, updating and clearing it, patrol confirmations and disputes,
 * the desk's acknowledgement,
 * and the listings (open, one, active in a period). */
#include "store_internal.h"

#include <inttypes.h>
#include <string.h>

/* Columns of a listed incident, in the order of enum incident_col. */
#define INCIDENT_COLS                                                                          \
    "id, rule, subject_type, subject, zone, severity, state, since_ms, raised_ms, updated_ms," \
    " cleared_ms, detail_json, text, confirmed_by, confirmed_ms, disputed_by, disputed_ms," \
    " acked_by, acked_ms"
enum incident_col {
    INCIDENT_COL_ID,
    INCIDENT_COL_RULE,
    INCIDENT_COL_SUBJECT_TYPE,
    INCIDENT_COL_SUBJECT,
    INCIDENT_COL_ZONE,
    INCIDENT_COL_SEVERITY,
    INCIDENT_COL_STATE,
    INCIDENT_COL_SINCE_MS,
    INCIDENT_COL_RAISED_MS,
    INCIDENT_COL_UPDATED_MS,
    INCIDENT_COL_CLEARED_MS,
    INCIDENT_COL_DETAIL_JSON,
    INCIDENT_COL_TEXT,
    INCIDENT_COL_CONFIRMED_BY,
    INCIDENT_COL_CONFIRMED_MS,
    INCIDENT_COL_DISPUTED_BY,
    INCIDENT_COL_DISPUTED_MS,
    INCIDENT_COL_ACKED_BY,
    INCIDENT_COL_ACKED_MS,
};

/* An incident's key (rule, subject_type, subject, zone) is bound to ?1..?4
 * by S_INCIDENT_FIND_OPEN and S_INCIDENT_INSERT alike. */
static const struct store__sql incidents_sql[] = {
    {S_INCIDENT_FIND_OPEN,
     "SELECT id FROM incidents WHERE state = 'open' AND rule = ?1 AND subject_type = ?2"
     " AND subject = ?3 AND coalesce(zone, -1) = coalesce(?4, -1)"},
    {S_INCIDENT_INSERT,
     "INSERT INTO incidents(rule, subject_type, subject, zone, severity, state, since_ms,"
     " raised_ms, updated_ms, detail_json, text)"
     " VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?7, ?8, ?9) RETURNING id"},
    {S_INCIDENT_UPDATE,
     "UPDATE incidents SET severity = coalesce(?2, severity),"
     " detail_json = coalesce(?3, detail_json), text = coalesce(?4, text), updated_ms = ?5"
     " WHERE id = ?1 AND state = 'open'"},
    {S_INCIDENT_CLEAR,
     "UPDATE incidents SET state = 'cleared', cleared_ms = ?2, updated_ms = ?2"
     " WHERE id = ?1 AND state = 'open'"},
    {S_INCIDENT_CONFIRM,
     "UPDATE incidents SET confirmed_by = ?2, confirmed_ms = ?3 WHERE id = ?1"},
    {S_INCIDENT_DISPUTE,
     "UPDATE incidents SET disputed_by = ?2, disputed_ms = ?3 WHERE id = ?1"},
    {S_INCIDENT_ACK,
     "UPDATE incidents SET acked_by = ?2, acked_ms = ?3 WHERE id = ?1 AND acked_by IS NULL"},
    {S_INCIDENT_STATE, "SELECT state FROM incidents WHERE id = ?1"},
    {S_INCIDENTS_OPEN,
     "SELECT " INCIDENT_COLS " FROM incidents WHERE state = 'open' ORDER BY id"},
    {S_INCIDENT_GET, "SELECT " INCIDENT_COLS " FROM incidents WHERE id = ?1"},
    {S_INCIDENTS_BETWEEN,
     "SELECT " INCIDENT_COLS " FROM incidents WHERE raised_ms < ?2"
     " AND (cleared_ms IS NULL OR cleared_ms >= ?1) ORDER BY id"},
};
const struct store__sql_table store__incidents_sql = STORE__SQL_TABLE(incidents_sql);

/* A zone of -1 (none) is stored as NULL. */
static void bind_zone(sqlite3_stmt *q, int i, int zone, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = zone >= 0 ? sqlite3_bind_int(q, i, zone) : sqlite3_bind_null(q, i);
}

/* The statement id ready, with in's key bound to ?1..?4. */
static sqlite3_stmt *incident_key_stmt(struct gw_store *s, enum store__stmt id,
                                       const struct gw_store_incident *in, int *rc)
{
    sqlite3_stmt *q = store__stmt(s, id);
    store__bind_text(q, 1, in->rule, rc);
    store__bind_text(q, 2, in->subject_type, rc);
    store__bind_text(q, 3, in->subject, rc);
    bind_zone(q, 4, in->zone, rc);
    return q;
}

/* Looks up the open incident for in's key. EST_ERR_NOTFOUND if none. */
static est_err incident_find_open(struct gw_store *s, const struct gw_store_incident *in,
                                  int64_t *id)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = incident_key_stmt(s, S_INCIDENT_FIND_OPEN, in, &rc);
    return store__query_int(s, q, rc, id);
}

static est_err incident_insert(struct gw_store *s, const struct gw_store_incident *in, int64_t *id)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = incident_key_stmt(s, S_INCIDENT_INSERT, in, &rc);
    store__bind_text(q, 5, in->severity, &rc);
    store__bind_int(q, 6, in->since_ms, &rc);
    store__bind_int(q, 7, in->raised_ms, &rc);
    store__bind_text(q, 8, in->detail_json, &rc);
    store__bind_text(q, 9, in->text, &rc);
    return store__query_int(s, q, rc, id);
}

est_err gw_store_incident_open(struct gw_store *store, const struct gw_store_incident *in,
                               int64_t *id, bool *existing)
{
    if (store == NULL || in == NULL || id == NULL || in->rule == NULL ||
        in->subject_type == NULL || in->subject == NULL || in->severity == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
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
    err = store__tx_end(store, began, err);
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
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_INCIDENT_STATE, id, &rc);
    est_err err = store__find_row(s, q, rc, "no incident %" PRId64, id);
    if (err != EST_OK)
        return err;
    sqlite3_reset(q);
    return store__fail(s, EST_ERR_STATE, "incident %" PRId64 " is cleared", id);
}

/* Runs an UPDATE guarded by state = 'open'; explains a miss. */
static est_err update_open(struct gw_store *s, sqlite3_stmt *q, int bind_rc, int64_t id)
{
    est_err err = store__exec(s, q, bind_rc);
    if (err == EST_OK && store__changes(s) == 0)
        err = incident_not_open(s, id);
    return err;
}

est_err gw_store_incident_update(struct gw_store *store, int64_t id, const char *severity,
                                 const char *detail_json, const char *text, int64_t updated_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_INCIDENT_UPDATE, id, &rc);
    store__bind_text(q, 2, severity, &rc);
    store__bind_text(q, 3, detail_json, &rc);
    store__bind_text(q, 4, text, &rc);
    store__bind_int(q, 5, updated_ms, &rc);
    return update_open(store, q, rc, id);
}

est_err gw_store_incident_clear(struct gw_store *store, int64_t id, int64_t cleared_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_INCIDENT_CLEAR, id, &rc);
    store__bind_int(q, 2, cleared_ms, &rc);
    return update_open(store, q, rc, id);
}

est_err gw_store_incident_confirm(struct gw_store *store, int64_t id, bool disputed,
                                  const char *who, int64_t ts_ms)
{
    if (store == NULL || who == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, disputed ? S_INCIDENT_DISPUTE : S_INCIDENT_CONFIRM);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, id, &rc);
    store__bind_text(q, 2, who, &rc);
    store__bind_int(q, 3, ts_ms, &rc);
    return store__exec_one(store, q, rc, "no incident %" PRId64, id);
}

est_err gw_store_incident_ack(struct gw_store *store, int64_t id, const char *who, int64_t ts_ms)
{
    if (store == NULL || who == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_INCIDENT_ACK);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, id, &rc);
    store__bind_text(q, 2, who, &rc);
    store__bind_int(q, 3, ts_ms, &rc);
    return store__exec_one(store, q, rc, "no incident %" PRId64 " without an acknowledgement", id);
}

/* A row of INCIDENT_COLS. */
static struct gw_store_incident incident_from_row(sqlite3_stmt *q)
{
    const char *state = store__col_text(q, INCIDENT_COL_STATE);
    bool no_zone = sqlite3_column_type(q, INCIDENT_COL_ZONE) == SQLITE_NULL;
    return (struct gw_store_incident){
        .id = store__col_int(q, INCIDENT_COL_ID),
        .rule = store__col_text(q, INCIDENT_COL_RULE),
        .subject_type = store__col_text(q, INCIDENT_COL_SUBJECT_TYPE),
        .subject = store__col_text(q, INCIDENT_COL_SUBJECT),
        .zone = no_zone ? -1 : sqlite3_column_int(q, INCIDENT_COL_ZONE),
        .severity = store__col_text(q, INCIDENT_COL_SEVERITY),
        .open = state != NULL && strcmp(state, "open") == 0,
        .since_ms = store__col_int(q, INCIDENT_COL_SINCE_MS),
        .raised_ms = store__col_int(q, INCIDENT_COL_RAISED_MS),
        .updated_ms = store__col_int(q, INCIDENT_COL_UPDATED_MS),
        .cleared_ms = store__col_int(q, INCIDENT_COL_CLEARED_MS),
        .detail_json = store__col_text(q, INCIDENT_COL_DETAIL_JSON),
        .text = store__col_text(q, INCIDENT_COL_TEXT),
        .confirmed_by = store__col_text(q, INCIDENT_COL_CONFIRMED_BY),
        .confirmed_ms = store__col_int(q, INCIDENT_COL_CONFIRMED_MS),
        .disputed_by = store__col_text(q, INCIDENT_COL_DISPUTED_BY),
        .disputed_ms = store__col_int(q, INCIDENT_COL_DISPUTED_MS),
        .acked_by = store__col_text(q, INCIDENT_COL_ACKED_BY),
        .acked_ms = store__col_int(q, INCIDENT_COL_ACKED_MS),
    };
}

static bool incident_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_incident inc = incident_from_row(q);
    return l->fn.incident(l->ctx, &inc);
}

est_err gw_store_incidents_open(struct gw_store *store, gw_store_incident_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct store__listing l = {.fn.incident = fn, .ctx = ctx};
    return store__each_row(store, store__stmt(store, S_INCIDENTS_OPEN), SQLITE_OK, incident_row,
                           &l, NULL);
}

est_err gw_store_incident_get(struct gw_store *store, int64_t id, gw_store_incident_fn fn,
                              void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_INCIDENT_GET, id, &rc);
    struct store__listing l = {.fn.incident = fn, .ctx = ctx};
    size_t n = 0;
    est_err err = store__each_row(store, q, rc, incident_row, &l, &n);
    if (err == EST_OK && n == 0)
        err = store__fail(store, EST_ERR_NOTFOUND, "no incident %" PRId64, id);
    return err;
}

est_err gw_store_incidents_between(struct gw_store *store, int64_t from_ms, int64_t to_ms,
                                   gw_store_incident_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_INCIDENTS_BETWEEN);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, from_ms, &rc);
    store__bind_int(q, 2, to_ms, &rc);
    struct store__listing l = {.fn.incident = fn, .ctx = ctx};
    return store__each_row(store, q, rc, incident_row, &l, NULL);
}
