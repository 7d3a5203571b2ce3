/* test_gw_store_backup.c - unit tests of gateway/store/backup.c: an online
 * copy is private, self-contained and verifies (integrity, patrol chain,
 * anchors); a tampered copy does not; an existing target is refused; the
 * restore quiesce refuses while another connection is open. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

struct fixture {
    char dir[64];
    char data_dir[96];
    char copy[128];
    struct gw_store *store;
};

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/gwbackup.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data_dir, sizeof f->data_dir, "%s/data", f->dir);
    snprintf(f->copy, sizeof f->copy, "%s/copy.db", f->dir);
    char err[256];
    assert_int_equal(gw_store_open(f->data_dir, false, &f->store, err, sizeof err), EST_OK);
    for (int i = 0; i < 40; i++) {
        char text[32];
        snprintf(text, sizeof text, "round %d", i + 1);
        struct gw_store_patrol_entry e = {.ts_ms = 1000 + i, .kind = "checkin", .text = text,
                                          .author = "patrol-1"};
        assert_int_equal(gw_store_patrol_append(f->store, &e), EST_OK);
    }
    assert_int_equal(gw_store_patrol_anchor(f->store, 5000, "printed", NULL, NULL), EST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gw_store_close(f->store);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void test_copy_is_private_single_file_and_verifies(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(gw_store_backup_to(f->store, f->copy, 1, 0), EST_OK);
    struct stat st;
    assert_int_equal(stat(f->copy, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char partial[160];
    snprintf(partial, sizeof partial, "%s.partial", f->copy);
    assert_int_not_equal(access(partial, F_OK), 0);

    struct gw_store_copy_check check;
    char err[256];
    assert_int_equal(gw_store_verify_copy(f->copy, &check, err, sizeof err), EST_OK);
    assert_true(gw_store_copy_sound(&check));
    assert_int_equal(check.patrol.count, 40);
    assert_int_equal(check.patrol.head_seq, 40);
    assert_int_equal(check.patrol.anchors, 1);
    gw_store_copy_check_free(&check);

    /* No WAL: the copy is the one file. */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->copy);
    assert_int_not_equal(access(wal, F_OK), 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->copy, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "delete");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_existing_target_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(gw_store_backup_to(f->store, f->copy, 0, 0), EST_OK);
    assert_int_equal(gw_store_backup_to(f->store, f->copy, 0, 0), EST_ERR_STATE);
}

static void test_tampered_copy_not_sound(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(gw_store_backup_to(f->store, f->copy, 0, 0), EST_OK);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->copy, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TRIGGER patrol_no_update;"
                                  "UPDATE patrol SET text = 'nothing' WHERE seq = 7",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct gw_store_copy_check check;
    char err[256];
    assert_int_equal(gw_store_verify_copy(f->copy, &check, err, sizeof err), EST_OK);
    assert_false(gw_store_copy_sound(&check));
    assert_int_equal(check.patrol.first_bad_seq, 7);
    gw_store_copy_check_free(&check);
}

static void test_not_a_database_cannot_be_checked(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->copy, "w");
    assert_non_null(fp);
    fputs("not a database at all, just some text that is long enough\n", fp);
    fclose(fp);
    struct gw_store_copy_check check;
    char err[256];
    assert_int_not_equal(gw_store_verify_copy(f->copy, &check, err, sizeof err), EST_OK);
    assert_true(err[0] != '\0');
}

static void test_quiesce_refuses_while_open(void **state)
{
    struct fixture *f = *state;
    char err[256];
    assert_int_equal(gw_store_quiesce_for_restore(f->data_dir, err, sizeof err), EST_ERR_STATE);
    gw_store_close(f->store);
    f->store = NULL;
    assert_int_equal(gw_store_quiesce_for_restore(f->data_dir, err, sizeof err), EST_OK);
    char wal[160];
    snprintf(wal, sizeof wal, "%s/%s-wal", f->data_dir, GW_STORE_DB_FILE);
    assert_int_not_equal(access(wal, F_OK), 0);
    snprintf(wal, sizeof wal, "%s/nothing", f->dir);
    assert_int_equal(gw_store_quiesce_for_restore(wal, err, sizeof err), EST_ERR_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_is_private_single_file_and_verifies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_existing_target_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_copy_not_sound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database_cannot_be_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quiesce_refuses_while_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
