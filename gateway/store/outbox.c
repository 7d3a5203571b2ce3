/* outbox.c - the durable MQTT queue: queueing, peeking and deleting
 * messages, the running totals the schema's triggers keep, and trimming
 * the oldest readings (never events) to a byte budget. */
#include "store_internal.h"

#include <inttypes.h>

/* Columns of a peeked message, in the order of enum outbox_col. */
#define OUTBOX_COLS "seq, topic, payload, qos, retain, is_event, created_ms"
enum outbox_col {
    OUTBOX_COL_SEQ,
    OUTBOX_COL_TOPIC,
    OUTBOX_COL_PAYLOAD,
    OUTBOX_COL_QOS,
    OUTBOX_COL_RETAIN,
    OUTBOX_COL_IS_EVENT,
    OUTBOX_COL_CREATED_MS,
};

/* Columns of S_OUTBOX_TOTALS. */
enum totals_col { TOTALS_COL_IS_EVENT, TOTALS_COL_ROWS, TOTALS_COL_BYTES };

/* Columns of S_OUTBOX_OLDEST_READINGS. */
enum oldest_col { OLDEST_COL_SEQ, OLDEST_COL_BYTES };

static const struct store__sql outbox_sql[] = {
    {S_OUTBOX_INSERT,
     "INSERT INTO outbox(topic, payload, qos, retain, is_event, created_ms)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq"},
    {S_OUTBOX_PEEK, "SELECT " OUTBOX_COLS " FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
    {S_OUTBOX_DELETE, "DELETE FROM outbox WHERE seq = ?1"},
    {S_OUTBOX_TOTALS, "SELECT is_event, rows, bytes FROM outbox_totals"},
    {S_OUTBOX_OLDEST_READINGS,
     "SELECT seq, length(payload) FROM outbox WHERE is_event = 0 ORDER BY seq"},
    {S_OUTBOX_DELETE_READINGS_UPTO, "DELETE FROM outbox WHERE is_event = 0 AND seq <= ?1"},
};
const struct store__sql_table store__outbox_sql = STORE__SQL_TABLE(outbox_sql);

est_err gw_store_outbox_add(struct gw_store *store, const struct gw_store_outbox_msg *msg,
                            int64_t *seq)
{
    if (store == NULL || msg == NULL || msg->topic == NULL ||
        (msg->payload == NULL && msg->payload_len > 0) || msg->qos < 0 || msg->qos > 2)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_OUTBOX_INSERT);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, msg->topic, &rc);
    /* A NULL pointer would bind SQL NULL; an empty payload (a retained
     * clear) must stay an empty blob. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(q, 2, msg->payload != NULL ? msg->payload : "",
                                 msg->payload_len, SQLITE_STATIC);
    store__bind_int(q, 3, msg->qos, &rc);
    store__bind_int(q, 4, msg->retain ? 1 : 0, &rc);
    store__bind_int(q, 5, msg->is_event ? 1 : 0, &rc);
    store__bind_int(q, 6, msg->created_ms, &rc);
    int64_t id = 0;
    est_err err = store__query_int(store, q, rc, &id);
    if (err == EST_OK && seq != NULL)
        *seq = id;
    return err;
}

/* A row of OUTBOX_COLS. */
static struct gw_store_outbox_msg outbox_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_outbox_msg){
        .seq = store__col_int(q, OUTBOX_COL_SEQ),
        .topic = store__col_text(q, OUTBOX_COL_TOPIC),
        .payload = sqlite3_column_blob(q, OUTBOX_COL_PAYLOAD),
        .payload_len = (size_t)sqlite3_column_bytes(q, OUTBOX_COL_PAYLOAD),
        .qos = (int)store__col_int(q, OUTBOX_COL_QOS),
        .retain = store__col_int(q, OUTBOX_COL_RETAIN) != 0,
        .is_event = store__col_int(q, OUTBOX_COL_IS_EVENT) != 0,
        .created_ms = store__col_int(q, OUTBOX_COL_CREATED_MS),
    };
}

static bool outbox_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_outbox_msg msg = outbox_from_row(q);
    return l->fn.outbox(l->ctx, &msg);
}

est_err gw_store_outbox_peek(struct gw_store *store, int64_t after_seq, size_t max,
                             gw_store_outbox_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_OUTBOX_PEEK);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, after_seq, &rc);
    store__bind_limit(q, 2, max, &rc);
    struct store__listing l = {.fn.outbox = fn, .ctx = ctx};
    return store__each_row(store, q, rc, outbox_row, &l, NULL);
}

est_err gw_store_outbox_delete(struct gw_store *store, int64_t seq)
{
    if (store == NULL)
        return EST_ERR_INVALID;
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(store, S_OUTBOX_DELETE, seq, &rc);
    return store__exec_one(store, q, rc, "outbox message %" PRId64 " is not queued", seq);
}

static bool totals_row(sqlite3_stmt *q, void *arg)
{
    struct gw_store_outbox_counts *c = arg;
    int64_t rows = store__col_int(q, TOTALS_COL_ROWS), bytes = store__col_int(q, TOTALS_COL_BYTES);
    uint64_t urows = rows > 0 ? (uint64_t)rows : 0, ubytes = bytes > 0 ? (uint64_t)bytes : 0;
    if (store__col_int(q, TOTALS_COL_IS_EVENT) != 0) {
        c->events = urows;
        c->event_bytes = ubytes;
    } else {
        c->readings = urows;
        c->reading_bytes = ubytes;
    }
    return true;
}

est_err gw_store_outbox_counts(struct gw_store *store, struct gw_store_outbox_counts *counts)
{
    if (store == NULL || counts == NULL)
        return EST_ERR_INVALID;
    *counts = (struct gw_store_outbox_counts){0};
    return store__each_row(store, store__stmt(store, S_OUTBOX_TOTALS), SQLITE_OK, totals_row,
                           counts, NULL);
}

/* Walks the oldest readings until their bytes cover excess. */
struct trim_scan {
    uint64_t excess;
    uint64_t covered;
    uint64_t rows;
    int64_t last_seq;
};

static bool trim_row(sqlite3_stmt *q, void *arg)
{
    struct trim_scan *t = arg;
    t->last_seq = store__col_int(q, OLDEST_COL_SEQ);
    t->covered += (uint64_t)store__col_int(q, OLDEST_COL_BYTES);
    t->rows++;
    return t->covered < t->excess;
}

est_err gw_store_outbox_trim_readings(struct gw_store *store, uint64_t limit_bytes,
                                      uint64_t *dropped)
{
    if (dropped != NULL)
        *dropped = 0;
    if (store == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    struct gw_store_outbox_counts counts;
    err = gw_store_outbox_counts(store, &counts);
    struct trim_scan scan = {0};
    if (err == EST_OK && counts.reading_bytes > limit_bytes) {
        scan.excess = counts.reading_bytes - limit_bytes;
        err = store__each_row(store, store__stmt(store, S_OUTBOX_OLDEST_READINGS), SQLITE_OK,
                              trim_row, &scan, NULL);
        if (err == EST_OK && scan.rows > 0) {
            int rc = SQLITE_OK;
            sqlite3_stmt *q =
                store__stmt_int(store, S_OUTBOX_DELETE_READINGS_UPTO, scan.last_seq, &rc);
            err = store__exec(store, q, rc);
        }
    }
    err = store__tx_end(store, began, err);
    if (err == EST_OK && dropped != NULL)
        *dropped = scan.rows;
    return err;
}
