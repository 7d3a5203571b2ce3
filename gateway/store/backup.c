/* backup.c - copies the live database with SQLite's online backup API a few
 * pages at a time (writers carry on), checks a copy (integrity and the
 * patrol chain with its anchors) and takes the database offline before a
 * restore. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

#define PARTIAL_SUFFIX ".partial"

static void set_errbuf(char *errbuf, size_t len, const char *text)
{
    if (errbuf != NULL && len > 0)
        snprintf(errbuf, len, "%s", text);
}

/* fsync of a file or directory by name. */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -1;
    int rc = sync_path(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    return rc;
}

/* Runs the backup steps from the store's open read snapshot into dst. */
static int copy_pages(struct gw_store *s, sqlite3 *dst, int pages_per_step, int pause_ms)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
    if (b == NULL)
        return sqlite3_errcode(dst);
    int rc;
    do {
        rc = sqlite3_backup_step(b, pages_per_step > 0 ? pages_per_step : -1);
        if ((rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && pause_ms > 0)
            est_sleep_ms(pause_ms);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    int finish = sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? finish : rc;
}

/* The copy in partial, as one self-contained file (no WAL). */
static est_err write_partial(struct gw_store *s, const char *partial, int pages_per_step,
                             int pause_ms)
{
    int fd = open(partial, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return store__fail(s, EST_ERR_IO, "%s: %s", partial, strerror(errno));
    close(fd);
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(partial, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = copy_pages(s, dst, pages_per_step, pause_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    est_err err = EST_OK;
    if (rc != SQLITE_OK)
        err = store__fail(s, store__map_rc(rc), "%s: %s", partial,
                          dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    sqlite3_close(dst);
    if (err == EST_OK && sync_path(partial, O_RDONLY) != 0)
        err = store__fail(s, EST_ERR_IO, "%s: fsync: %s", partial, strerror(errno));
    return err;
}

est_err gw_store_backup_to(struct gw_store *store, const char *path, int pages_per_step,
                           int pause_ms)
{
    if (store == NULL || path == NULL || path[0] == '\0')
        return EST_ERR_INVALID;
    if (!sqlite3_get_autocommit(store->db))
        return store__fail(store, EST_ERR_STATE, "a transaction is open");
    if (access(path, F_OK) == 0)
        return store__fail(store, EST_ERR_STATE, "%s already exists", path);
    size_t len = strlen(path) + sizeof PARTIAL_SUFFIX;
    char *partial = malloc(len);
    if (partial == NULL)
        return store__fail(store, EST_ERR_NOMEM, "out of memory");
    snprintf(partial, len, "%s%s", path, PARTIAL_SUFFIX);
    unlink(partial); /* left by a backup that was killed */
    /* One snapshot for the whole copy: other connections' commits then do
     * not restart it, and in WAL mode they are not blocked by it. */
    int rc = sqlite3_exec(store->db, "BEGIN; SELECT count(*) FROM sqlite_schema;", NULL, NULL,
                          NULL);
    est_err err = rc == SQLITE_OK ? write_partial(store, partial, pages_per_step, pause_ms)
                                  : store__fail_db(store, rc);
    if (!sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    if (err == EST_OK && rename(partial, path) != 0)
        err = store__fail(store, EST_ERR_IO, "%s: %s", path, strerror(errno));
    if (err == EST_OK)
        sync_parent_dir(path);
    else
        unlink(partial);
    free(partial);
    return err;
}

est_err gw_store_verify_copy(const char *path, struct gw_store_copy_check *check, char *errbuf,
                             size_t errbuf_len)
{
    if (check == NULL)
        return EST_ERR_INVALID;
    memset(check, 0, sizeof *check);
    struct gw_store *copy = NULL;
    est_err err = gw_store_open_file(path, &copy, errbuf, errbuf_len);
    if (err != EST_OK)
        return err;
    err = gw_store_check_integrity(copy, true, &check->integrity_problem);
    if (err == EST_OK)
        err = gw_store_patrol_verify(copy, &check->patrol);
    if (err != EST_OK)
        set_errbuf(errbuf, errbuf_len, copy->errmsg);
    gw_store_close(copy);
    return err;
}

bool gw_store_copy_sound(const struct gw_store_copy_check *check)
{
    return check->integrity_problem == NULL && check->patrol.first_bad_seq == 0;
}

void gw_store_copy_check_free(struct gw_store_copy_check *check)
{
    if (check != NULL) {
        free(check->integrity_problem);
        check->integrity_problem = NULL;
    }
}

est_err gw_store_quiesce_for_restore(const char *data_dir, char *errbuf, size_t errbuf_len)
{
    size_t len = strlen(data_dir) + sizeof "/" GW_STORE_DB_FILE;
    char *path = malloc(len);
    if (path == NULL)
        return EST_ERR_NOMEM;
    snprintf(path, len, "%s/%s", data_dir, GW_STORE_DB_FILE);
    est_err err = EST_OK;
    sqlite3 *db = NULL;
    if (access(path, F_OK) != 0) {
        set_errbuf(errbuf, errbuf_len, "no database");
        err = EST_ERR_NOTFOUND;
    } else if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
               SQLITE_OK) {
        set_errbuf(errbuf, errbuf_len, db ? sqlite3_errmsg(db) : "out of memory");
        err = EST_ERR_DB;
    } else {
        /* No busy timeout: any other connection makes the switch fail at once. */
        sqlite3_stmt *q = NULL;
        int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = DELETE", -1, &q, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(q);
        const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
        if (rc == SQLITE_ROW && mode != NULL && strcmp(mode, "delete") == 0) {
            err = EST_OK;
        } else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_ROW) {
            set_errbuf(errbuf, errbuf_len,
                       "the database is open in another process (is estate-gw running?)");
            err = EST_ERR_STATE;
        } else {
            set_errbuf(errbuf, errbuf_len, sqlite3_errmsg(db));
            err = EST_ERR_DB;
        }
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    free(path);
    return err;
}
