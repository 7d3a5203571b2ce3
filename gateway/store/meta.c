/* meta.c - the meta table: a small key/value store for the gateway's own
 * bookkeeping. */
#include "store_internal.h"

/* The one column of S_META_GET. */
enum { META_COL_VALUE = 0 };

static const struct store__sql meta_sql[] = {
    {S_META_GET, "SELECT value FROM meta WHERE key = ?1"},
    {S_META_SET,
     "INSERT INTO meta(key, value) VALUES (?1, ?2)"
     " ON CONFLICT(key) DO UPDATE SET value = excluded.value"},
};
const struct store__sql_table store__meta_sql = STORE__SQL_TABLE(meta_sql);

est_err gw_store_meta_get(struct gw_store *store, const char *key, char **value)
{
    if (store == NULL || key == NULL || value == NULL)
        return EST_ERR_INVALID;
    *value = NULL;
    sqlite3_stmt *q = store__stmt(store, S_META_GET);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, key, &rc);
    est_err err = store__find_row(store, q, rc, "no meta key %s", key);
    if (err != EST_OK)
        return err;
    if (!store__dup_col(q, META_COL_VALUE, value))
        err = store__fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}

est_err gw_store_meta_set(struct gw_store *store, const char *key, const char *value)
{
    if (store == NULL || key == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_META_SET);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, key, &rc);
    store__bind_text(q, 2, value, &rc);
    return store__exec(store, q, rc);
}
