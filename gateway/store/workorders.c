/* workorders.c - the work orders table and each order's history: creating
 * one (idempotently per incident), guarded updates that append a history
 * record, and the listings. The store does not judge state transitions;
 * the office's work-order module does. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Columns of a listed work order, in the order of enum workorder_col. */
#define WORKORDER_COLS                                                                       \
    "id, incident, category, unit, building, location, description, state, severity,"        \
    " opened_ms, dispatched_ms, arrive_due_ms, resolve_due_ms, on_site_ms, completed_ms,"    \
    " verified_ms, cancelled_ms, escalated, assignee, verifier, rating, postponed_until_ms," \
    " updated_ms"
enum workorder_col {
    WO_COL_ID,
    WO_COL_INCIDENT,
    WO_COL_CATEGORY,
    WO_COL_UNIT,
    WO_COL_BUILDING,
    WO_COL_LOCATION,
    WO_COL_DESCRIPTION,
    WO_COL_STATE,
    WO_COL_SEVERITY,
    WO_COL_OPENED_MS,
    WO_COL_DISPATCHED_MS,
    WO_COL_ARRIVE_DUE_MS,
    WO_COL_RESOLVE_DUE_MS,
    WO_COL_ON_SITE_MS,
    WO_COL_COMPLETED_MS,
    WO_COL_VERIFIED_MS,
    WO_COL_CANCELLED_MS,
    WO_COL_ESCALATED,
    WO_COL_ASSIGNEE,
    WO_COL_VERIFIER,
    WO_COL_RATING,
    WO_COL_POSTPONED_UNTIL_MS,
    WO_COL_UPDATED_MS,
};

/* Columns of a listed history record, in the order of enum history_col. */
#define HISTORY_COLS "workorder, ts_ms, action, from_state, to_state, who, note"
enum history_col {
    HISTORY_COL_WORKORDER,
    HISTORY_COL_TS_MS,
    HISTORY_COL_ACTION,
    HISTORY_COL_FROM_STATE,
    HISTORY_COL_TO_STATE,
    HISTORY_COL_WHO,
    HISTORY_COL_NOTE,
};

/* The one column of S_WO_STATE. */
enum { WO_STATE_COL_STATE = 0 };

/* S_WO_INSERT binds the progress fields (dispatched_ms .. postponed_until_ms)
 * to ?10..?21 and S_WO_UPDATE to ?3..?14, in the same order: see
 * bind_progress(). */
static const struct store__sql workorders_sql[] = {
    {S_WO_FIND_OPEN_BY_INCIDENT,
     "SELECT id FROM workorders WHERE incident = ?1"
     " AND state NOT IN ('verified', 'cancelled')"},
    {S_WO_INSERT,
     "INSERT INTO workorders(incident, category, unit, building, location, description,"
     " state, severity, opened_ms, dispatched_ms, arrive_due_ms, resolve_due_ms, on_site_ms,"
     " completed_ms, verified_ms, cancelled_ms, escalated, assignee, verifier, rating,"
     " postponed_until_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
     " ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?9) RETURNING id"},
    {S_WO_UPDATE,
     "UPDATE workorders SET state = ?2, dispatched_ms = ?3, arrive_due_ms = ?4,"
     " resolve_due_ms = ?5, on_site_ms = ?6, completed_ms = ?7, verified_ms = ?8,"
     " cancelled_ms = ?9, escalated = ?10, assignee = ?11, verifier = ?12, rating = ?13,"
     " postponed_until_ms = ?14, updated_ms = ?15, description = ?16, location = ?17,"
     " severity = COALESCE(?19, severity)"
     " WHERE id = ?1 AND (?18 IS NULL OR state = ?18)"},
    {S_WO_STATE, "SELECT state FROM workorders WHERE id = ?1"},
    {S_WO_HISTORY_INSERT,
     "INSERT INTO workorder_history(workorder, ts_ms, action, from_state, to_state, who,"
     " note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    {S_WO_GET, "SELECT " WORKORDER_COLS " FROM workorders WHERE id = ?1"},
    {S_WO_HISTORY,
     "SELECT " HISTORY_COLS " FROM workorder_history WHERE workorder = ?1 ORDER BY id"},
    {S_WO_LIST,
     "SELECT " WORKORDER_COLS " FROM workorders"
     " WHERE ?1 IS NULL OR instr(?1, ',' || state || ',') > 0 ORDER BY id"},
};
const struct store__sql_table store__workorders_sql = STORE__SQL_TABLE(workorders_sql);

static est_err wo_history_insert(struct gw_store *s, int64_t workorder,
                                 const struct gw_store_wo_history *h)
{
    sqlite3_stmt *q = store__stmt(s, S_WO_HISTORY_INSERT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, workorder, &rc);
    store__bind_int(q, 2, h->ts_ms, &rc);
    store__bind_text(q, 3, h->action, &rc);
    store__bind_text(q, 4, h->from_state, &rc);
    store__bind_text(q, 5, h->to_state, &rc);
    store__bind_text(q, 6, h->who, &rc);
    store__bind_text(q, 7, h->note, &rc);
    return store__exec(s, q, rc);
}

/* Binds what changes as an order progresses, dispatched_ms through
 * postponed_until_ms, to ?first onwards. */
static void bind_progress(sqlite3_stmt *q, int first, const struct gw_store_workorder *wo,
                          int *rc)
{
    store__bind_opt(q, first, wo->dispatched_ms, rc);
    store__bind_opt(q, first + 1, wo->arrive_due_ms, rc);
    store__bind_opt(q, first + 2, wo->resolve_due_ms, rc);
    store__bind_opt(q, first + 3, wo->on_site_ms, rc);
    store__bind_opt(q, first + 4, wo->completed_ms, rc);
    store__bind_opt(q, first + 5, wo->verified_ms, rc);
    store__bind_opt(q, first + 6, wo->cancelled_ms, rc);
    store__bind_int(q, first + 7, wo->escalated ? 1 : 0, rc);
    store__bind_text(q, first + 8, wo->assignee, rc);
    store__bind_text(q, first + 9, wo->verifier, rc);
    store__bind_opt(q, first + 10, wo->rating, rc);
    store__bind_opt(q, first + 11, wo->postponed_until_ms, rc);
}

static est_err wo_insert(struct gw_store *s, const struct gw_store_workorder *wo, int64_t *id)
{
    sqlite3_stmt *q = store__stmt(s, S_WO_INSERT);
    int rc = SQLITE_OK;
    store__bind_opt(q, 1, wo->incident, &rc);
    store__bind_text(q, 2, wo->category, &rc);
    store__bind_text(q, 3, wo->unit, &rc);
    store__bind_text(q, 4, wo->building, &rc);
    store__bind_text(q, 5, wo->location, &rc);
    store__bind_text(q, 6, wo->description, &rc);
    store__bind_text(q, 7, wo->state != NULL ? wo->state : "open", &rc);
    store__bind_text(q, 8, wo->severity, &rc);
    store__bind_int(q, 9, wo->opened_ms, &rc);
    bind_progress(q, 10, wo, &rc);
    return store__query_int(s, q, rc, id);
}

est_err gw_store_workorder_for_incident(struct gw_store *store, int64_t incident, int64_t *id)
{
    if (store == NULL || id == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_WO_FIND_OPEN_BY_INCIDENT, incident, &rc);
    return store__query_int(store, q, rc, id);
}

est_err gw_store_workorder_create(struct gw_store *store, const struct gw_store_workorder *wo,
                                  const char *who, const char *note, int64_t *id, bool *existing)
{
    if (store == NULL || wo == NULL || id == NULL || wo->category == NULL ||
        wo->description == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
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
    err = store__tx_end(store, began, err);
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
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_WO_STATE, id, &rc);
    est_err err = store__find_row(s, q, rc, "no work order %" PRId64, id);
    if (err != EST_OK)
        return err;
    const char *state = store__col_text(q, WO_STATE_COL_STATE);
    err = store__fail(s, EST_ERR_STATE, "work order %" PRId64 " is %s, not %s", id,
                      state != NULL ? state : "?", expected);
    sqlite3_reset(q);
    return err;
}

static est_err wo_update_row(struct gw_store *s, const struct gw_store_workorder *wo,
                             const char *from_state)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_WO_UPDATE, wo->id, &rc);
    store__bind_text(q, 2, wo->state, &rc);
    bind_progress(q, 3, wo, &rc);
    store__bind_int(q, 15, wo->updated_ms, &rc);
    store__bind_text(q, 16, wo->description, &rc);
    store__bind_text(q, 17, wo->location, &rc);
    store__bind_text(q, 18, from_state, &rc);
    store__bind_text(q, 19, wo->severity, &rc);
    est_err err = store__exec(s, q, rc);
    if (err == EST_OK && store__changes(s) == 0)
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
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = wo_update_row(store, wo, h->from_state);
    if (err == EST_OK) {
        struct gw_store_wo_history rec = *h;
        if (rec.to_state == NULL)
            rec.to_state = wo->state;
        err = wo_history_insert(store, wo->id, &rec);
    }
    return store__tx_end(store, began, err);
}

struct workorder_cb {
    gw_store_workorder_fn fn;
    gw_store_wo_history_fn history_fn;
    void *ctx;
    bool more;  /* the work-order callback asked to continue */
};

/* A row of WORKORDER_COLS. */
static struct gw_store_workorder workorder_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_workorder){
        .id = store__col_int(q, WO_COL_ID),
        .incident = store__col_int(q, WO_COL_INCIDENT),
        .category = store__col_text(q, WO_COL_CATEGORY),
        .unit = store__col_text(q, WO_COL_UNIT),
        .building = store__col_text(q, WO_COL_BUILDING),
        .location = store__col_text(q, WO_COL_LOCATION),
        .description = store__col_text(q, WO_COL_DESCRIPTION),
        .state = store__col_text(q, WO_COL_STATE),
        .severity = store__col_text(q, WO_COL_SEVERITY),
        .opened_ms = store__col_int(q, WO_COL_OPENED_MS),
        .dispatched_ms = store__col_int(q, WO_COL_DISPATCHED_MS),
        .arrive_due_ms = store__col_int(q, WO_COL_ARRIVE_DUE_MS),
        .resolve_due_ms = store__col_int(q, WO_COL_RESOLVE_DUE_MS),
        .on_site_ms = store__col_int(q, WO_COL_ON_SITE_MS),
        .completed_ms = store__col_int(q, WO_COL_COMPLETED_MS),
        .verified_ms = store__col_int(q, WO_COL_VERIFIED_MS),
        .cancelled_ms = store__col_int(q, WO_COL_CANCELLED_MS),
        .escalated = store__col_int(q, WO_COL_ESCALATED) != 0,
        .assignee = store__col_text(q, WO_COL_ASSIGNEE),
        .verifier = store__col_text(q, WO_COL_VERIFIER),
        .rating = (int)store__col_int(q, WO_COL_RATING),
        .postponed_until_ms = store__col_int(q, WO_COL_POSTPONED_UNTIL_MS),
        .updated_ms = store__col_int(q, WO_COL_UPDATED_MS),
    };
}

/* A row of HISTORY_COLS. */
static struct gw_store_wo_history history_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_wo_history){
        .workorder = store__col_int(q, HISTORY_COL_WORKORDER),
        .ts_ms = store__col_int(q, HISTORY_COL_TS_MS),
        .action = store__col_text(q, HISTORY_COL_ACTION),
        .from_state = store__col_text(q, HISTORY_COL_FROM_STATE),
        .to_state = store__col_text(q, HISTORY_COL_TO_STATE),
        .who = store__col_text(q, HISTORY_COL_WHO),
        .note = store__col_text(q, HISTORY_COL_NOTE),
    };
}

static bool workorder_row(sqlite3_stmt *q, void *arg)
{
    struct workorder_cb *cb = arg;
    struct gw_store_workorder wo = workorder_from_row(q);
    cb->more = cb->fn(cb->ctx, &wo);
    return cb->more;
}

static bool history_row(sqlite3_stmt *q, void *arg)
{
    const struct workorder_cb *cb = arg;
    struct gw_store_wo_history h = history_from_row(q);
    return cb->history_fn(cb->ctx, &h);
}

est_err gw_store_workorder_get(struct gw_store *store, int64_t id, gw_store_workorder_fn wo_fn,
                               gw_store_wo_history_fn history_fn, void *ctx)
{
    if (store == NULL || wo_fn == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_WO_GET, id, &rc);
    struct workorder_cb cb = {wo_fn, history_fn, ctx, false};
    size_t n = 0;
    est_err err = store__each_row(store, q, rc, workorder_row, &cb, &n);
    if (err == EST_OK && n == 0)
        return store__fail(store, EST_ERR_NOTFOUND, "no work order %" PRId64, id);
    if (err != EST_OK || history_fn == NULL || !cb.more)
        return err;
    rc = SQLITE_OK;
    q = store__stmt_int(store, S_WO_HISTORY, id, &rc);
    return store__each_row(store, q, rc, history_row, &cb, NULL);
}

/* ",a,b," for the instr() filter; NULL with *err set on failure. */
static char *state_filter(struct gw_store *s, const char *const *states, size_t n, est_err *err)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        if (states[i] == NULL || strchr(states[i], ',') != NULL) {
            *err = store__fail(s, EST_ERR_INVALID, "bad work-order state name");
            return NULL;
        }
        len += strlen(states[i]) + 1;
    }
    char *filter = malloc(len);
    if (filter == NULL) {
        *err = store__fail(s, EST_ERR_NOMEM, "out of memory");
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
    sqlite3_stmt *q = store__stmt(store, S_WO_LIST);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, filter, &rc);
    struct workorder_cb cb = {fn, NULL, ctx, false};
    err = store__each_row(store, q, rc, workorder_row, &cb, NULL);
    free(filter);
    return err;
}
