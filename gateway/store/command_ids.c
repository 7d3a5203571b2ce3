/* command_ids.c - request ids of MQTT commands already run and their
 * results, so that a command sent again with the same id is answered with
 * the first result instead of running twice (also after a restart). */
#include "store_internal.h"

#include <stdlib.h>

static const struct store__sql command_ids_sql[] = {
    {S_CMD_ID_GET,
     "SELECT result_json FROM command_ids"
     " WHERE user = ?1 AND verb = ?2 AND request_id = ?3 AND created_ms >= ?4"},
    {S_CMD_ID_PUT,
     "INSERT OR REPLACE INTO command_ids(user, verb, request_id, result_json, created_ms)"
     " VALUES (?1, ?2, ?3, ?4, ?5)"},
    {S_CMD_ID_PRUNE,
     "DELETE FROM command_ids WHERE created_ms < ?1 OR created_ms <"
     " (SELECT created_ms FROM command_ids ORDER BY created_ms DESC LIMIT 1 OFFSET ?2)"},
};
const struct store__sql_table store__command_ids_sql = STORE__SQL_TABLE(command_ids_sql);

est_err gw_store_command_id_result(struct gw_store *store, const char *user, const char *verb,
                                   const char *request_id, int64_t since_ms, char **result_json)
{
    if (store == NULL || user == NULL || verb == NULL || request_id == NULL || result_json == NULL)
        return EST_ERR_INVALID;
    *result_json = NULL;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt(store, S_CMD_ID_GET);
    store__bind_text(q, 1, user, &rc);
    store__bind_text(q, 2, verb, &rc);
    store__bind_text(q, 3, request_id, &rc);
    store__bind_int(q, 4, since_ms, &rc);
    bool found = false;
    est_err err = store__first_row(store, q, rc, &found);
    if (err != EST_OK || !found)
        return err;
    if (!store__dup_col(q, 0, result_json))
        err = store__fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}

est_err gw_store_command_id_put(struct gw_store *store, const char *user, const char *verb,
                                const char *request_id, const char *result_json, int64_t now_ms)
{
    if (store == NULL || user == NULL || verb == NULL || request_id == NULL || result_json == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt(store, S_CMD_ID_PUT);
    store__bind_text(q, 1, user, &rc);
    store__bind_text(q, 2, verb, &rc);
    store__bind_text(q, 3, request_id, &rc);
    store__bind_text(q, 4, result_json, &rc);
    store__bind_int(q, 5, now_ms, &rc);
    return store__exec(store, q, rc);
}

est_err gw_store_command_id_prune(struct gw_store *store, int64_t before_ms, int64_t keep)
{
    if (store == NULL || keep < 1)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_CMD_ID_PRUNE, before_ms, &rc);
    store__bind_int(q, 2, keep - 1, &rc);
    return store__exec(store, q, rc);
}
