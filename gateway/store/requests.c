/* requests.c - the estate-ctl -> daemon request queue: estate-ctl submits
 * a request and polls for its result; the daemon takes the pending ones in
 * order, finishes each with a result, and prunes old finished ones. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Columns of a pending request, in the order of enum ctl_col. */
#define CTL_COLS "id, created_ms, verb, args_json"
enum ctl_col { CTL_COL_ID, CTL_COL_CREATED_MS, CTL_COL_VERB, CTL_COL_ARGS_JSON };

/* Columns of S_CTL_RESULT. */
enum result_col { RESULT_COL_STATE, RESULT_COL_RESULT_JSON };

static const struct store__sql requests_sql[] = {
    {S_CTL_INSERT,
     "INSERT INTO ctl_requests(created_ms, verb, args_json) VALUES (?1, ?2, ?3) RETURNING id"},
    {S_CTL_NEXT_PENDING,
     "SELECT " CTL_COLS " FROM ctl_requests"
     " WHERE state = 'pending' AND id > ?1 ORDER BY id LIMIT 1"},
    {S_CTL_FINISH,
     "UPDATE ctl_requests SET state = 'done', result_json = ?2, done_ms = ?3"
     " WHERE id = ?1 AND state = 'pending'"},
    {S_CTL_RESULT, "SELECT state, result_json FROM ctl_requests WHERE id = ?1"},
    {S_CTL_PRUNE, "DELETE FROM ctl_requests WHERE state = 'done' AND done_ms < ?1"},
};
const struct store__sql_table store__requests_sql = STORE__SQL_TABLE(requests_sql);

est_err gw_store_ctl_submit(struct gw_store *store, const char *verb, const char *args_json,
                            int64_t created_ms, int64_t *id)
{
    if (store == NULL || verb == NULL || id == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_CTL_INSERT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, created_ms, &rc);
    store__bind_text(q, 2, verb, &rc);
    store__bind_text(q, 3, args_json, &rc);
    return store__query_int(store, q, rc, id);
}

/* Fetches the next pending request after after_id into owned copies (so the
 * callback may finish it while nothing is being stepped). *found false at
 * the end. */
static est_err ctl_next(struct gw_store *s, int64_t after_id, struct gw_store_ctl_request *req,
                        char **verb, char **args, bool *found)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_CTL_NEXT_PENDING, after_id, &rc);
    est_err err = store__first_row(s, q, rc, found);
    if (err != EST_OK || !*found)
        return err;
    req->id = store__col_int(q, CTL_COL_ID);
    req->created_ms = store__col_int(q, CTL_COL_CREATED_MS);
    if (!store__dup_col(q, CTL_COL_VERB, verb) || !store__dup_col(q, CTL_COL_ARGS_JSON, args))
        err = store__fail(s, EST_ERR_NOMEM, "out of memory");
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
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_CTL_FINISH, id, &rc);
    store__bind_text(q, 2, result_json, &rc);
    store__bind_int(q, 3, done_ms, &rc);
    return store__exec_one(store, q, rc, "no pending request %" PRId64, id);
}

est_err gw_store_ctl_result(struct gw_store *store, int64_t id, bool *done, char **result_json)
{
    if (store == NULL || done == NULL || result_json == NULL)
        return EST_ERR_INVALID;
    *done = false;
    *result_json = NULL;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_CTL_RESULT, id, &rc);
    est_err err = store__find_row(store, q, rc, "no request %" PRId64, id);
    if (err != EST_OK)
        return err;
    const char *state = store__col_text(q, RESULT_COL_STATE);
    *done = state != NULL && strcmp(state, "done") == 0;
    if (*done && !store__dup_col(q, RESULT_COL_RESULT_JSON, result_json))
        err = store__fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}

est_err gw_store_ctl_prune(struct gw_store *store, int64_t done_before_ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_CTL_PRUNE, done_before_ms, &rc);
    return store__exec(store, q, rc);
}
