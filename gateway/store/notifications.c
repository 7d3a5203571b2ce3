/* notifications.c - the notifications table: alerts waiting for their
 * channel (a group robot, an HTTP call, SMTP) until it answers success.
 * One row per cause and channel, so a cause stored twice (a replay, a
 * restart) is still sent once. */
#include "store_internal.h"

#include <inttypes.h>

#define NOTIFICATION_COLS                                                                   \
    "id, cause, channel, incident, rule, severity, place, since_ms, text, recipients,"     \
    " created_ms, due_ms, attempts"
enum {
    NOTE_COL_ID, NOTE_COL_CAUSE, NOTE_COL_CHANNEL, NOTE_COL_INCIDENT, NOTE_COL_RULE,
    NOTE_COL_SEVERITY, NOTE_COL_PLACE, NOTE_COL_SINCE_MS, NOTE_COL_TEXT, NOTE_COL_RECIPIENTS,
    NOTE_COL_CREATED_MS, NOTE_COL_DUE_MS, NOTE_COL_ATTEMPTS,
};

static const struct store__sql notifications_sql[] = {
    {S_NOTE_INSERT,
     "INSERT INTO notifications(cause, channel, incident, rule, severity, place, since_ms, text,"
     " recipients, created_ms, due_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
     " ON CONFLICT(cause, channel) DO NOTHING"},
    {S_NOTE_DUE,
     "SELECT " NOTIFICATION_COLS " FROM notifications"
     " WHERE delivered_ms IS NULL AND due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2"},
    {S_NOTE_DELIVERED,
     "UPDATE notifications SET delivered_ms = ?2, attempts = attempts + 1, last_error = NULL"
     " WHERE id = ?1 AND delivered_ms IS NULL"},
    {S_NOTE_RETRY,
     "UPDATE notifications SET due_ms = ?2, attempts = attempts + 1, last_error = ?3"
     " WHERE id = ?1 AND delivered_ms IS NULL"},
    {S_NOTE_PENDING, "SELECT count(*) FROM notifications WHERE delivered_ms IS NULL"},
    {S_NOTE_ON_DUTY,
     "SELECT json_extract(detail_json, '$.to') FROM patrol WHERE kind = 'handover'"
     " ORDER BY seq DESC LIMIT 1"},
};
const struct store__sql_table store__notifications_sql = STORE__SQL_TABLE(notifications_sql);

est_err gw_store_notification_add(struct gw_store *store, const struct gw_store_notification *n,
                                  bool *added)
{
    if (store == NULL || n == NULL || n->cause == NULL || n->channel == NULL || n->text == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_NOTE_INSERT);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, n->cause, &rc);
    store__bind_text(q, 2, n->channel, &rc);
    store__bind_opt(q, 3, n->incident, &rc);
    store__bind_text(q, 4, n->rule, &rc);
    store__bind_text(q, 5, n->severity, &rc);
    store__bind_text(q, 6, n->place, &rc);
    store__bind_opt(q, 7, n->since_ms, &rc);
    store__bind_text(q, 8, n->text, &rc);
    store__bind_text(q, 9, n->recipients ? n->recipients : "", &rc);
    store__bind_int(q, 10, n->created_ms, &rc);
    store__bind_int(q, 11, n->due_ms, &rc);
    est_err err = store__exec(store, q, rc);
    if (added != NULL)
        *added = err == EST_OK && store__changes(store) > 0;
    return err;
}

static bool notification_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_notification n = {
        .id = store__col_int(q, NOTE_COL_ID),
        .cause = store__col_text(q, NOTE_COL_CAUSE),
        .channel = store__col_text(q, NOTE_COL_CHANNEL),
        .incident = store__col_int(q, NOTE_COL_INCIDENT),
        .rule = store__col_text(q, NOTE_COL_RULE),
        .severity = store__col_text(q, NOTE_COL_SEVERITY),
        .place = store__col_text(q, NOTE_COL_PLACE),
        .since_ms = store__col_int(q, NOTE_COL_SINCE_MS),
        .text = store__col_text(q, NOTE_COL_TEXT),
        .recipients = store__col_text(q, NOTE_COL_RECIPIENTS),
        .created_ms = store__col_int(q, NOTE_COL_CREATED_MS),
        .due_ms = store__col_int(q, NOTE_COL_DUE_MS),
        .attempts = (int)store__col_int(q, NOTE_COL_ATTEMPTS),
    };
    return l->fn.notification(l->ctx, &n);
}

est_err gw_store_notifications_due(struct gw_store *store, int64_t now_ms, size_t max,
                                   gw_store_notification_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_NOTE_DUE);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, now_ms, &rc);
    store__bind_limit(q, 2, max, &rc);
    struct store__listing l = {.fn.notification = fn, .ctx = ctx};
    return store__each_row(store, q, rc, notification_row, &l, NULL);
}

est_err gw_store_notification_delivered(struct gw_store *store, int64_t id, int64_t ms)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_NOTE_DELIVERED);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, id, &rc);
    store__bind_int(q, 2, ms, &rc);
    return store__exec_one(store, q, rc, "notification %" PRId64 " is not waiting", id);
}

est_err gw_store_notification_retry(struct gw_store *store, int64_t id, int64_t due_ms,
                                    const char *error)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_NOTE_RETRY);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, id, &rc);
    store__bind_int(q, 2, due_ms, &rc);
    store__bind_text(q, 3, error, &rc);
    return store__exec_one(store, q, rc, "notification %" PRId64 " is not waiting", id);
}

est_err gw_store_notifications_pending(struct gw_store *store, int64_t *count)
{
    if (store == NULL || count == NULL)
        return EST_ERR_INVALID;
    return store__query_int(store, store__stmt(store, S_NOTE_PENDING), SQLITE_OK, count);
}

est_err gw_store_on_duty(struct gw_store *store, char **name)
{
    if (store == NULL || name == NULL)
        return EST_ERR_INVALID;
    *name = NULL;
    sqlite3_stmt *q = store__stmt(store, S_NOTE_ON_DUTY);
    bool row = false;
    est_err err = store__first_row(store, q, SQLITE_OK, &row);
    if (err == EST_OK && row && !store__dup_col(q, 0, name))
        err = store__fail(store, EST_ERR_NOMEM, "out of memory");
    sqlite3_reset(q);
    return err;
}
