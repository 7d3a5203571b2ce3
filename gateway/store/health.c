/* health.c - the store's own health: a reserve file that keeps room for a
 * WAL checkpoint when the disk fills, making room on a full disk, the WAL
 * checkpoints it counts and times, and the quick and full integrity checks. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESERVE_FILE "estate.reserve"
#define INTEGRITY_PROBLEMS_MAX 8   /* rows of integrity_check output kept */

int store__checkpoint(struct gw_store *s, int mode)
{
    int logged = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, mode, &logged, &copied);
    if (rc == SQLITE_OK) {
        s->checkpoints++;
        s->last_checkpoint_ms = est_now_ms();
        s->wal_pages = mode == SQLITE_CHECKPOINT_TRUNCATE ? 0 : logged;
    }
    return rc;
}

/* Called by SQLite after each commit with the frames now in the WAL. A
 * busy checkpoint (a reader in the way) is tried again at the next commit,
 * as SQLite's own automatic checkpoint is. */
static int on_wal_commit(void *ctx, sqlite3 *db, const char *schema, int pages)
{
    (void)db;
    (void)schema;
    struct gw_store *s = ctx;
    s->wal_pages = pages;
    if (pages >= STORE_WAL_CHECKPOINT_PAGES)
        store__checkpoint(s, SQLITE_CHECKPOINT_PASSIVE);
    return SQLITE_OK; /* the commit has happened whatever the checkpoint did */
}

void store__watch_checkpoints(struct gw_store *s)
{
    sqlite3_wal_hook(s->db, on_wal_commit, s);
}

void gw_store_checkpoint_stats(const struct gw_store *store, struct gw_store_checkpoint_stats *out)
{
    memset(out, 0, sizeof *out);
    if (store == NULL)
        return;
    out->checkpoints = store->checkpoints;
    out->last_checkpoint_ms = store->last_checkpoint_ms;
    out->wal_pages = store->wal_pages;
}

bool gw_store_in_transaction(const struct gw_store *store)
{
    return store != NULL && !sqlite3_get_autocommit(store->db);
}

/* Allocates the reserve file as far as space allows (halving down to 64 KiB). */
static void fill_reserve(struct gw_store *s)
{
    int fd = open(s->reserve_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    for (size_t bytes = s->reserve_bytes; bytes >= 65536; bytes /= 2) {
        if (posix_fallocate(fd, 0, (off_t)bytes) == 0)
            break;
        if (ftruncate(fd, 0) != 0)
            break;
    }
    close(fd);
}

/* PRAGMA journal_size_limit takes no bound parameter: the number is printed. */
static void set_journal_limit(struct gw_store *s, size_t bytes)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %zu", bytes);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) == SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW) {
        }
    sqlite3_finalize(q);
}

est_err gw_store_keep_reserve(struct gw_store *store, const char *data_dir, size_t bytes)
{
    if (store == NULL || data_dir == NULL || store->readonly || bytes == 0)
        return EST_ERR_INVALID;
    size_t len = strlen(data_dir) + sizeof "/" RESERVE_FILE;
    free(store->reserve_path);
    store->reserve_path = malloc(len);
    if (store->reserve_path == NULL)
        return EST_ERR_NOMEM;
    snprintf(store->reserve_path, len, "%s/%s", data_dir, RESERVE_FILE);
    store->reserve_bytes = bytes;
    set_journal_limit(store, bytes);
    fill_reserve(store);
    return EST_OK;
}

est_err gw_store_make_room(struct gw_store *store)
{
    if (store == NULL || store->readonly)
        return EST_ERR_INVALID;
    if (store->reserve_path != NULL)
        unlink(store->reserve_path);
    int rc = store__checkpoint(store, SQLITE_CHECKPOINT_TRUNCATE);
    if (store->reserve_path != NULL)
        fill_reserve(store);
    return rc == SQLITE_OK ? EST_OK : store__fail_db(store, rc);
}

est_err gw_store_check_integrity(struct gw_store *store, bool full, char **problem)
{
    if (store == NULL || problem == NULL)
        return EST_ERR_INVALID;
    *problem = NULL;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(store->db, full ? "PRAGMA integrity_check(8)" : "PRAGMA quick_check(8)",
                                -1, &q, NULL);
    if (rc != SQLITE_OK)
        return store__fail_db(store, rc);
    char *text = NULL;
    size_t used = 0;
    int rows = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && rows < INTEGRITY_PROBLEMS_MAX) {
        const char *line = store__col_text(q, 0);
        rows++;
        if (line == NULL || (rows == 1 && strcmp(line, "ok") == 0))
            continue;
        size_t add = strlen(line) + 2;
        char *grown = realloc(text, used + add + 1);
        if (grown == NULL)
            break;
        text = grown;
        used += (size_t)snprintf(text + used, add + 1, "%s%s", used > 0 ? "; " : "", line);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        /* The check itself could not read the file: that is damage too. */
        store__fail_db(store, rc);
        if (text == NULL) {
            size_t len = strlen(store->errmsg) + 1;
            text = malloc(len);
            if (text != NULL)
                memcpy(text, store->errmsg, len);
        }
    }
    sqlite3_finalize(q);
    *problem = text;
    return EST_OK;
}
