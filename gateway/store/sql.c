/* sql.c - the store's shared helpers for running prepared statements:
 * SQLite result codes as est_err, the recorded error message, and stepping
 * a statement once, to its first row, or through every row. */
#include "store_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one column of a single-integer query (store__query_int). */
enum { QUERY_INT_COL = 0 };

est_err store__map_rc(int rc)
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

est_err store__fail_db(struct gw_store *s, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN)
        s->write_failures++;
    snprintf(s->errmsg, sizeof s->errmsg, "%s", sqlite3_errmsg(s->db));
    return store__map_rc(rc);
}

static est_err vfail(struct gw_store *s, est_err err, const char *fmt, va_list ap)
{
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    return err;
}

est_err store__fail(struct gw_store *s, est_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(s, err, fmt, ap);
    va_end(ap);
    return err;
}

uint64_t gw_store_write_failures(const struct gw_store *store)
{
    return store != NULL ? store->write_failures : 0;
}

const char *gw_store_errmsg(const struct gw_store *store)
{
    return store != NULL ? store->errmsg : "no store";
}

est_err store__exec(struct gw_store *s, sqlite3_stmt *q, int bind_rc)
{
    est_err err = EST_OK;
    if (bind_rc != SQLITE_OK) {
        err = store__fail_db(s, bind_rc);
    } else {
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            err = store__fail_db(s, rc);
    }
    sqlite3_reset(q);
    return err;
}

est_err store__exec_one(struct gw_store *s, sqlite3_stmt *q, int bind_rc, const char *fmt, ...)
{
    est_err err = store__exec(s, q, bind_rc);
    if (err == EST_OK && store__changes(s) == 0) {
        va_list ap;
        va_start(ap, fmt);
        err = vfail(s, EST_ERR_NOTFOUND, fmt, ap);
        va_end(ap);
    }
    return err;
}

est_err store__first_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc, bool *row)
{
    *row = false;
    if (bind_rc != SQLITE_OK)
        return store__fail_db(s, bind_rc);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *row = true;
        return EST_OK;
    }
    est_err err = rc == SQLITE_DONE ? EST_OK : store__fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

est_err store__find_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc, const char *fmt, ...)
{
    bool row;
    est_err err = store__first_row(s, q, bind_rc, &row);
    if (err == EST_OK && !row) {
        va_list ap;
        va_start(ap, fmt);
        err = vfail(s, EST_ERR_NOTFOUND, fmt, ap);
        va_end(ap);
    }
    return err;
}

est_err store__query_int(struct gw_store *s, sqlite3_stmt *q, int bind_rc, int64_t *out)
{
    bool row;
    est_err err = store__first_row(s, q, bind_rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return EST_ERR_NOTFOUND;
    *out = sqlite3_column_int64(q, QUERY_INT_COL);
    sqlite3_reset(q);
    return EST_OK;
}

est_err store__each_row(struct gw_store *s, sqlite3_stmt *q, int bind_rc,
                        bool (*row)(sqlite3_stmt *q, void *arg), void *arg, size_t *nrows)
{
    size_t n = 0;
    est_err err = EST_OK;
    if (bind_rc != SQLITE_OK) {
        err = store__fail_db(s, bind_rc);
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
            err = store__fail_db(s, rc);
    }
    sqlite3_reset(q);
    if (nrows != NULL)
        *nrows = n;
    return err;
}

bool store__dup_col(sqlite3_stmt *q, int i, char **out)
{
    const char *text = store__col_text(q, i);
    *out = NULL;
    if (text == NULL)
        return true;
    *out = strdup(text);
    return *out != NULL;
}
