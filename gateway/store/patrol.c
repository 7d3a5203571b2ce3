/* patrol.c - the tamper-evident patrol log: the hash chain's encoding
 * (documented in store.h), appending, listing, the head, anchors recorded
 * outside or in the database, and walking the whole chain to verify it. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define HASH_HEX_CHARS 64

/* Columns of a patrol entry, as inserted (?1..?10) and listed, in the order
 * of enum patrol_col. */
#define PATROL_COLS \
    "seq, ts_ms, kind, text, incident, workorder, author, detail_json, prev_hash, hash"
enum patrol_col {
    PATROL_COL_SEQ,
    PATROL_COL_TS_MS,
    PATROL_COL_KIND,
    PATROL_COL_TEXT,
    PATROL_COL_INCIDENT,
    PATROL_COL_WORKORDER,
    PATROL_COL_AUTHOR,
    PATROL_COL_DETAIL_JSON,
    PATROL_COL_PREV_HASH,
    PATROL_COL_HASH,
};

/* Columns of S_PATROL_HEAD and S_ANCHORS_LIST: an entry's seq and hash. */
enum seq_hash_col { SEQ_HASH_COL_SEQ, SEQ_HASH_COL_HASH };

/* The one column of S_PATROL_HASH_AT. */
enum { HASH_AT_COL_HASH = 0 };

static const struct store__sql patrol_sql[] = {
    {S_PATROL_HEAD, "SELECT seq, hash FROM patrol ORDER BY seq DESC LIMIT 1"},
    {S_PATROL_INSERT,
     "INSERT INTO patrol(" PATROL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
    {S_PATROL_LIST, "SELECT " PATROL_COLS " FROM patrol WHERE seq > ?1 ORDER BY seq LIMIT ?2"},
    {S_PATROL_HASH_AT, "SELECT hash FROM patrol WHERE seq = ?1"},
    {S_ANCHOR_INSERT,
     "INSERT INTO patrol_anchors(ts_ms, seq, hash, destination) VALUES (?1, ?2, ?3, ?4)"},
    {S_ANCHORS_LIST, "SELECT seq, hash FROM patrol_anchors ORDER BY id"},
};
const struct store__sql_table store__patrol_sql = STORE__SQL_TABLE(patrol_sql);

/* A field of the hash input: bytes (text), an integer, or absent. */
struct field {
    enum { F_TEXT, F_INT, F_NULL } type;
    const void *bytes;
    size_t len;
    int64_t value;
};

static struct field f_text(const char *p, size_t len)
{
    return (struct field){.type = F_TEXT, .bytes = p != NULL ? p : "", .len = p != NULL ? len : 0};
}

static struct field f_int(int64_t v) { return (struct field){.type = F_INT, .value = v}; }

static struct field f_opt_int(int64_t v)
{
    return v != 0 ? f_int(v) : (struct field){.type = F_NULL};
}

/* Encodes one field as store.h documents: T<len>:<bytes>, I<len>:<digits>, or N. */
static bool hash_field(EVP_MD_CTX *md, const struct field *f)
{
    if (f->type == F_NULL)
        return EVP_DigestUpdate(md, "N", 1) == 1;
    char digits[24];
    const void *bytes = f->bytes;
    size_t len = f->len;
    if (f->type == F_INT) {
        len = (size_t)snprintf(digits, sizeof digits, "%" PRId64, f->value);
        bytes = digits;
    }
    char head[32];
    int head_len = snprintf(head, sizeof head, "%c%zu:", f->type == F_INT ? 'I' : 'T', len);
    return EVP_DigestUpdate(md, head, (size_t)head_len) == 1 &&
           (len == 0 || EVP_DigestUpdate(md, bytes, len) == 1) &&
           EVP_DigestUpdate(md, ",", 1) == 1;
}

#define PATROL_FIELDS 9

/* SHA-256 over "EGWP1" and the nine fields, as lowercase hex into out. */
static bool hash_fields(EVP_MD_CTX *md, const struct field fields[PATROL_FIELDS],
                        char out[GW_STORE_HASH_LEN])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    bool ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(md, "EGWP1", 5) == 1;
    for (int i = 0; ok && i < PATROL_FIELDS; i++)
        ok = hash_field(md, &fields[i]);
    ok = ok && EVP_DigestFinal_ex(md, digest, &digest_len) == 1 && digest_len == 32;
    if (!ok)
        return false;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[HASH_HEX_CHARS] = '\0';
    return true;
}

/* Fields of an entry given as C strings. */
static void entry_fields(const struct gw_store_patrol_entry *e, struct field f[PATROL_FIELDS])
{
    f[0] = f_text(e->prev_hash, strnlen(e->prev_hash, GW_STORE_HASH_LEN - 1));
    f[1] = f_int(e->seq);
    f[2] = f_int(e->ts_ms);
    f[3] = f_text(e->kind, e->kind != NULL ? strlen(e->kind) : 0);
    f[4] = f_text(e->text, e->text != NULL ? strlen(e->text) : 0);
    f[5] = f_opt_int(e->incident);
    f[6] = f_opt_int(e->workorder);
    f[7] = f_text(e->author, e->author != NULL ? strlen(e->author) : 0);
    f[8] = e->detail_json != NULL ? f_text(e->detail_json, strlen(e->detail_json))
                                  : (struct field){.type = F_NULL};
}

est_err gw_store_patrol_compute_hash(const struct gw_store_patrol_entry *entry,
                                     char out[GW_STORE_HASH_LEN])
{
    if (entry == NULL || out == NULL)
        return EST_ERR_INVALID;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return EST_ERR_NOMEM;
    struct field f[PATROL_FIELDS];
    entry_fields(entry, f);
    bool ok = hash_fields(md, f, out);
    EVP_MD_CTX_free(md);
    return ok ? EST_OK : EST_ERR_INVALID;
}

/* Copies a stored hash column into a buffer (truncating garbage). */
static void copy_hash(char out[GW_STORE_HASH_LEN], const char *text)
{
    snprintf(out, GW_STORE_HASH_LEN, "%s", text != NULL ? text : "");
}

static est_err patrol_head(struct gw_store *s, int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    sqlite3_stmt *q = store__stmt(s, S_PATROL_HEAD);
    bool row;
    est_err err = store__first_row(s, q, SQLITE_OK, &row);
    if (err != EST_OK)
        return err;
    if (!row) {
        *seq = 0;
        copy_hash(hash, GENESIS_HASH);
        return EST_OK;
    }
    *seq = store__col_int(q, SEQ_HASH_COL_SEQ);
    copy_hash(hash, store__col_text(q, SEQ_HASH_COL_HASH));
    sqlite3_reset(q);
    return EST_OK;
}

est_err gw_store_patrol_head(struct gw_store *store, int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    if (store == NULL || seq == NULL || hash == NULL)
        return EST_ERR_INVALID;
    return patrol_head(store, seq, hash);
}

static est_err patrol_insert(struct gw_store *s, const struct gw_store_patrol_entry *e)
{
    sqlite3_stmt *q = store__stmt(s, S_PATROL_INSERT);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, e->seq, &rc);
    store__bind_int(q, 2, e->ts_ms, &rc);
    store__bind_text(q, 3, e->kind, &rc);
    store__bind_text(q, 4, e->text, &rc);
    store__bind_opt(q, 5, e->incident, &rc);
    store__bind_opt(q, 6, e->workorder, &rc);
    store__bind_text(q, 7, e->author, &rc);
    store__bind_text(q, 8, e->detail_json, &rc);
    store__bind_text(q, 9, e->prev_hash, &rc);
    store__bind_text(q, 10, e->hash, &rc);
    return store__exec(s, q, rc);
}

est_err gw_store_patrol_append(struct gw_store *store, struct gw_store_patrol_entry *entry)
{
    if (store == NULL || entry == NULL || entry->kind == NULL || entry->text == NULL ||
        entry->author == NULL)
        return EST_ERR_INVALID;
    struct gw_store_patrol_entry e = *entry;
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t head_seq = 0;
    err = patrol_head(store, &head_seq, e.prev_hash);
    if (err == EST_OK) {
        e.seq = head_seq + 1;
        struct field f[PATROL_FIELDS];
        entry_fields(&e, f);
        if (!hash_fields(store->md, f, e.hash))
            err = store__fail(store, EST_ERR_INVALID, "SHA-256 failed");
    }
    if (err == EST_OK)
        err = patrol_insert(store, &e);
    err = store__tx_end(store, began, err);
    if (err == EST_OK)
        *entry = e;
    return err;
}

/* A row of PATROL_COLS. */
static struct gw_store_patrol_entry patrol_from_row(sqlite3_stmt *q)
{
    struct gw_store_patrol_entry e = {
        .seq = store__col_int(q, PATROL_COL_SEQ),
        .ts_ms = store__col_int(q, PATROL_COL_TS_MS),
        .kind = store__col_text(q, PATROL_COL_KIND),
        .text = store__col_text(q, PATROL_COL_TEXT),
        .incident = store__col_int(q, PATROL_COL_INCIDENT),
        .workorder = store__col_int(q, PATROL_COL_WORKORDER),
        .author = store__col_text(q, PATROL_COL_AUTHOR),
        .detail_json = store__col_text(q, PATROL_COL_DETAIL_JSON),
    };
    copy_hash(e.prev_hash, store__col_text(q, PATROL_COL_PREV_HASH));
    copy_hash(e.hash, store__col_text(q, PATROL_COL_HASH));
    return e;
}

static bool patrol_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_patrol_entry e = patrol_from_row(q);
    return l->fn.patrol(l->ctx, &e);
}

est_err gw_store_patrol_list(struct gw_store *store, int64_t since_seq, size_t limit,
                             gw_store_patrol_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_PATROL_LIST);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, since_seq, &rc);
    store__bind_limit(q, 2, limit, &rc);
    struct store__listing l = {.fn.patrol = fn, .ctx = ctx};
    return store__each_row(store, q, rc, patrol_row, &l, NULL);
}

/* A stored column as a hash field exactly as stored (embedded NULs and all). */
static struct field col_field(sqlite3_stmt *q, int i, bool integer)
{
    switch (sqlite3_column_type(q, i)) {
    case SQLITE_NULL: return (struct field){.type = F_NULL};
    case SQLITE_INTEGER:
        if (integer)
            return f_int(sqlite3_column_int64(q, i));
        break;
    default: break;
    }
    const char *p = store__col_text(q, i);
    return f_text(p, (size_t)sqlite3_column_bytes(q, i));
}

static bool stored_hash_is(sqlite3_stmt *q, int i, const char *hash)
{
    const char *stored = store__col_text(q, i);
    return stored != NULL && sqlite3_column_bytes(q, i) == HASH_HEX_CHARS &&
           memcmp(stored, hash, HASH_HEX_CHARS) == 0;
}

/* Notes a problem at seq unless an earlier one is already known. */
static void verify_note(struct gw_store_patrol_verify *r, int64_t seq, const char *problem)
{
    if (seq < 1)
        seq = 1;
    if (r->first_bad_seq == 0 || seq < r->first_bad_seq) {
        r->first_bad_seq = seq;
        r->problem = problem;
    }
}

/* Checks one row of the walk against the expected seq and previous hash. */
static bool verify_row(struct gw_store *s, sqlite3_stmt *q, int64_t expected,
                       const char prev[GW_STORE_HASH_LEN], struct gw_store_patrol_verify *r)
{
    int64_t seq = store__col_int(q, PATROL_COL_SEQ);
    if (seq > expected) {
        verify_note(r, expected, "entry missing (gap in the sequence)");
        return false;
    }
    if (seq < expected) {
        verify_note(r, seq, "entry with an unexpected sequence number");
        return false;
    }
    if (!stored_hash_is(q, PATROL_COL_PREV_HASH, prev)) {
        verify_note(r, seq, "prev_hash does not match the previous entry's hash");
        return false;
    }
    struct field f[PATROL_FIELDS] = {
        col_field(q, PATROL_COL_PREV_HASH, false), f_int(seq),
        col_field(q, PATROL_COL_TS_MS, true),      col_field(q, PATROL_COL_KIND, false),
        col_field(q, PATROL_COL_TEXT, false),      col_field(q, PATROL_COL_INCIDENT, true),
        col_field(q, PATROL_COL_WORKORDER, true),  col_field(q, PATROL_COL_AUTHOR, false),
        col_field(q, PATROL_COL_DETAIL_JSON, false),
    };
    char computed[GW_STORE_HASH_LEN];
    if (!hash_fields(s->md, f, computed) || !stored_hash_is(q, PATROL_COL_HASH, computed)) {
        verify_note(r, seq, "hash does not match the entry's contents");
        return false;
    }
    return true;
}

/* Walks every entry in seq order (one statement, one snapshot). */
static est_err verify_walk(struct gw_store *s, struct gw_store_patrol_verify *r)
{
    sqlite3_stmt *q = store__stmt(s, S_PATROL_LIST);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, INT64_MIN, &rc);
    store__bind_limit(q, 2, 0, &rc);
    if (rc != SQLITE_OK) {
        sqlite3_reset(q);
        return store__fail_db(s, rc);
    }
    char prev[GW_STORE_HASH_LEN];
    copy_hash(prev, GENESIS_HASH);
    int64_t expected = 1;
    bool intact = true;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (intact)
            intact = verify_row(s, q, expected, prev, r);
        r->count++;
        r->head_seq = store__col_int(q, PATROL_COL_SEQ);
        copy_hash(r->head_hash, store__col_text(q, PATROL_COL_HASH));
        copy_hash(prev, store__col_text(q, PATROL_COL_HASH));
        expected = r->head_seq + 1;
    }
    est_err err = rc == SQLITE_DONE ? EST_OK : store__fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

/* Stored hash of entry seq: EST_ERR_NOTFOUND when there is no such entry. */
static est_err patrol_hash_at(struct gw_store *s, int64_t seq, char hash[GW_STORE_HASH_LEN])
{
    int rc = SQLITE_OK;
    sqlite3_stmt *q = store__stmt_int(s, S_PATROL_HASH_AT, seq, &rc);
    bool row;
    est_err err = store__first_row(s, q, rc, &row);
    if (err != EST_OK)
        return err;
    if (!row)
        return EST_ERR_NOTFOUND;
    copy_hash(hash, store__col_text(q, HASH_AT_COL_HASH));
    sqlite3_reset(q);
    return EST_OK;
}

/* Every recorded anchor must still name an entry with the same hash. */
static est_err verify_anchors(struct gw_store *s, struct gw_store_patrol_verify *r)
{
    sqlite3_stmt *q = store__stmt(s, S_ANCHORS_LIST);
    int rc;
    est_err err = EST_OK;
    while (err == EST_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t seq = store__col_int(q, SEQ_HASH_COL_SEQ);
        char anchored[GW_STORE_HASH_LEN], stored[GW_STORE_HASH_LEN];
        copy_hash(anchored, store__col_text(q, SEQ_HASH_COL_HASH));
        r->anchors++;
        err = patrol_hash_at(s, seq, stored);
        if (err == EST_ERR_NOTFOUND) {
            err = EST_OK;
            verify_note(r, seq > r->head_seq ? r->head_seq + 1 : seq,
                        "anchored entry missing (log truncated)");
        } else if (err == EST_OK && strcmp(anchored, stored) != 0) {
            verify_note(r, seq, "entry differs from its anchor");
        }
    }
    if (err == EST_OK && rc != SQLITE_DONE)
        err = store__fail_db(s, rc);
    sqlite3_reset(q);
    return err;
}

est_err gw_store_patrol_verify(struct gw_store *store, struct gw_store_patrol_verify *result)
{
    if (store == NULL || result == NULL)
        return EST_ERR_INVALID;
    *result = (struct gw_store_patrol_verify){0};
    copy_hash(result->head_hash, GENESIS_HASH);
    /* One read transaction: the walk and the anchors see the same snapshot. */
    bool began = sqlite3_get_autocommit(store->db) != 0;
    est_err err = began ? store__exec(store, store__stmt(store, S_BEGIN_READ), SQLITE_OK) : EST_OK;
    if (err != EST_OK)
        return err;
    err = verify_walk(store, result);
    if (err == EST_OK)
        err = verify_anchors(store, result);
    int failed_rc = sqlite3_errcode(store->db) & 0xff;
    if (err != EST_OK && (failed_rc == SQLITE_CORRUPT || failed_rc == SQLITE_NOTADB)) {
        /* Damaged pages: a verdict, not a failure to give one. */
        verify_note(result, result->head_seq + 1,
                    "database damaged: the log cannot be read from here (restore from a backup)");
        err = EST_OK;
    }
    if (began)
        store__exec(store, store__stmt(store, S_ROLLBACK), SQLITE_OK);
    return err;
}

est_err gw_store_patrol_check_anchor(struct gw_store *store, int64_t seq, const char *hash)
{
    if (store == NULL || hash == NULL)
        return EST_ERR_INVALID;
    char stored[GW_STORE_HASH_LEN];
    est_err err = patrol_hash_at(store, seq, stored);
    if (err == EST_ERR_NOTFOUND)
        return store__fail(store, err, "patrol entry %" PRId64 " is missing", seq);
    if (err == EST_OK && strcmp(stored, hash) != 0)
        return store__fail(store, EST_ERR_STATE, "patrol entry %" PRId64 " differs from the anchor",
                           seq);
    return err;
}

est_err gw_store_patrol_anchor(struct gw_store *store, int64_t ts_ms, const char *destination,
                               int64_t *seq, char hash[GW_STORE_HASH_LEN])
{
    if (store == NULL || destination == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t head_seq = 0;
    char head_hash[GW_STORE_HASH_LEN];
    err = patrol_head(store, &head_seq, head_hash);
    if (err == EST_OK && head_seq == 0)
        err = store__fail(store, EST_ERR_STATE, "the patrol log is empty");
    if (err == EST_OK) {
        sqlite3_stmt *q = store__stmt(store, S_ANCHOR_INSERT);
        int rc = SQLITE_OK;
        store__bind_int(q, 1, ts_ms, &rc);
        store__bind_int(q, 2, head_seq, &rc);
        store__bind_text(q, 3, head_hash, &rc);
        store__bind_text(q, 4, destination, &rc);
        err = store__exec(store, q, rc);
    }
    err = store__tx_end(store, began, err);
    if (err == EST_OK && seq != NULL)
        *seq = head_seq;
    if (err == EST_OK && hash != NULL)
        copy_hash(hash, head_hash);
    return err;
}
