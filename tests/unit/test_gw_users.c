/* test_gw_users.c - unit tests for the console's users file (gateway/users.c):
 * hashing and verification, wrong passwords, disabled users, the file round
 * trip (atomic write, mode 0600), malformed lines reported as FILE:LINE and
 * skipped, the shared reloading copy, and the demo users in etc/demo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "users.h"

/* A fresh temporary directory per test. */
struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_users.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/users.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char tmp[160];
    unlink(f->path);
    snprintf(tmp, sizeof tmp, "%s.new", f->path);
    unlink(tmp);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
}

/* Collects diagnostics, one per line. */
struct diag_log {
    char text[4096];
    int count;
};

static void collect_diag(void *ctx, const char *message)
{
    struct diag_log *log = ctx;
    strncat(log->text, message, sizeof log->text - strlen(log->text) - 2);
    strcat(log->text, "\n");
    log->count++;
}

static void test_hash_and_check(void **state)
{
    (void)state;
    char *hash = NULL;
    assert_int_equal(gw_users_hash_password("s3cret!", 0, &hash), EST_OK);
    assert_non_null(hash);
    assert_true(strncmp(hash, "pbkdf2-sha256$120000$", 21) == 0);
    assert_null(strstr(hash, "s3cret"));
    assert_true(gw_users_check_hash(hash, "s3cret!"));
    assert_false(gw_users_check_hash(hash, "s3cret"));
    assert_false(gw_users_check_hash(hash, "S3cret!"));
    assert_false(gw_users_check_hash(hash, ""));

    /* Same password, fresh salt: a different hash that still verifies. */
    char *again = NULL;
    assert_int_equal(gw_users_hash_password("s3cret!", 0, &again), EST_OK);
    assert_string_not_equal(hash, again);
    assert_true(gw_users_check_hash(again, "s3cret!"));
    free(hash);
    free(again);

    /* Too few iterations, empty or multi-line passwords are refused. */
    assert_int_equal(gw_users_hash_password("x", 1000, &hash), EST_ERR_RANGE);
    assert_int_equal(gw_users_hash_password("", 0, &hash), EST_ERR_INVALID);
    assert_int_equal(gw_users_hash_password("a\nb", 0, &hash), EST_ERR_INVALID);
}

static void test_malformed_hashes_never_match(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "plain",
        "md5$120000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$99$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$120000$short$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$120000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "pbkdf2-sha256$120000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(gw_users_check_hash(bad[i], "anything"));
}

static void test_add_verify_disable(void **state)
{
    struct fixture *f = *state;
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(f->path, &users), EST_OK);
    assert_int_equal(gw_users_add(users, "alice", "frontdesk", "pw-alice"), EST_OK);
    assert_int_equal(gw_users_add(users, "bob", "engineer", "pw-bob"), EST_OK);
    assert_int_equal(gw_users_add(users, "alice", "viewer", "x"), EST_ERR_STATE);
    assert_int_equal(gw_users_add(users, "eve", "admin", "x"), EST_ERR_INVALID);
    assert_int_equal(gw_users_add(users, "bad:name", "viewer", "x"), EST_ERR_INVALID);
    assert_int_equal(gw_users_count(users), 2);

    const char *role = NULL;
    assert_true(gw_users_verify(users, "alice", "pw-alice", &role));
    assert_string_equal(role, "frontdesk");
    assert_false(gw_users_verify(users, "alice", "pw-bob", NULL));
    assert_false(gw_users_verify(users, "nobody", "pw-alice", NULL));
    assert_string_equal(gw_users_role(users, "bob"), "engineer");

    assert_int_equal(gw_users_set_enabled(users, "bob", false), EST_OK);
    assert_false(gw_users_verify(users, "bob", "pw-bob", NULL));
    assert_null(gw_users_role(users, "bob"));
    assert_int_equal(gw_users_set_enabled(users, "bob", true), EST_OK);
    assert_true(gw_users_verify(users, "bob", "pw-bob", NULL));

    assert_int_equal(gw_users_set_password(users, "bob", "new-pw"), EST_OK);
    assert_false(gw_users_verify(users, "bob", "pw-bob", NULL));
    assert_true(gw_users_verify(users, "bob", "new-pw", NULL));
    assert_int_equal(gw_users_set_password(users, "carol", "x"), EST_ERR_NOTFOUND);
    assert_int_equal(gw_users_set_enabled(users, "carol", false), EST_ERR_NOTFOUND);
    gw_users_free(users);
}

static void test_file_round_trip(void **state)
{
    struct fixture *f = *state;
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(f->path, &users), EST_OK);
    assert_int_equal(gw_users_add(users, "alice", "supervisor", "pw-alice"), EST_OK);
    assert_int_equal(gw_users_add(users, "v.iewer_1", "viewer", "pw-v"), EST_OK);
    assert_int_equal(gw_users_set_enabled(users, "v.iewer_1", false), EST_OK);
    assert_int_equal(gw_users_save(users), EST_OK);
    gw_users_free(users);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", f->path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */

    FILE *file = fopen(f->path, "r");
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, file);
    text[n] = '\0';
    fclose(file);
    assert_null(strstr(text, "pw-alice"));
    assert_non_null(strstr(text, "alice:supervisor:pbkdf2-sha256$"));
    assert_non_null(strstr(text, ":0\n"));

    struct diag_log log = {0};
    assert_int_equal(gw_users_load(f->path, collect_diag, &log, &users), EST_OK);
    assert_int_equal(log.count, 0);
    assert_int_equal(gw_users_count(users), 2);
    assert_true(gw_users_verify(users, "alice", "pw-alice", NULL));
    assert_false(gw_users_verify(users, "v.iewer_1", "pw-v", NULL)); /* still disabled */
    gw_users_free(users);
}

static void test_save_refuses_non_regular_files(void **state)
{
    struct fixture *f = *state;
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(f->dir, &users), EST_OK); /* a directory */
    assert_int_equal(gw_users_add(users, "alice", "viewer", "pw"), EST_OK);
    assert_int_equal(gw_users_save(users), EST_ERR_INVALID);
    gw_users_free(users);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void test_missing_file_is_empty(void **state)
{
    struct fixture *f = *state;
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_load(f->path, NULL, NULL, &users), EST_OK);
    assert_int_equal(gw_users_count(users), 0);
    assert_false(gw_users_verify(users, "alice", "x", NULL));
    gw_users_free(users);
}

static void test_malformed_lines_skipped(void **state)
{
    struct fixture *f = *state;
    char *hash = NULL;
    assert_int_equal(gw_users_hash_password("good-pw", 0, &hash), EST_OK);
    char text[4096];
    snprintf(text, sizeof text,
             "# comment\n"
             "\n"
             "good:engineer:%s:1\n"           /* line 3 */
             "short:viewer\n"                 /* 4: too few fields */
             "bad name:viewer:%s:1\n"         /* 5: bad name */
             "carol:admin:%s:1\n"             /* 6: unknown role */
             "dave:viewer:not-a-hash:1\n"     /* 7: bad hash */
             "erin:viewer:%s:yes\n"           /* 8: bad enabled */
             "good:viewer:%s:1\n"             /* 9: duplicate */
             "frank:viewer:%s:1:extra\n"      /* 10: too many fields */
             "   # indented comment\n"
             "gina:viewer:%s:0\r\n",          /* 12: fine (CRLF) */
             hash, hash, hash, hash, hash, hash, hash);
    free(hash);
    write_file(f->path, text);

    struct diag_log log = {0};
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_load(f->path, collect_diag, &log, &users), EST_OK);
    assert_int_equal(gw_users_count(users), 2);
    assert_true(gw_users_verify(users, "good", "good-pw", NULL));
    assert_string_equal(gw_users_role(users, "good"), "engineer"); /* the first one wins */
    assert_null(gw_users_role(users, "gina"));                     /* disabled */
    assert_int_equal(log.count, 7);
    for (int line = 4; line <= 10; line++) {
        char where[160];
        snprintf(where, sizeof where, "%s:%d: ", f->path, line);
        assert_non_null(strstr(log.text, where));
    }
    assert_non_null(strstr(log.text, "(line skipped)"));
    assert_null(strstr(log.text, "pbkdf2")); /* hashes are never echoed */
    gw_users_free(users);
}

static void test_long_line_skipped(void **state)
{
    struct fixture *f = *state;
    size_t len = 10000;
    char *text = malloc(len + 64);
    memset(text, 'a', len);
    snprintf(text + len, 64, ":viewer:x:1\n");
    write_file(f->path, text);
    free(text);
    struct diag_log log = {0};
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_load(f->path, collect_diag, &log, &users), EST_OK);
    assert_int_equal(gw_users_count(users), 0);
    assert_int_equal(log.count, 1);
    assert_non_null(strstr(log.text, ":1: line too long"));
    gw_users_free(users);
}

static void test_shared_copy_reloads(void **state)
{
    struct fixture *f = *state;
    struct gw_config config;
    memset(&config, 0, sizeof config);
    config.http.users_file = f->path;

    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(f->path, &users), EST_OK);
    assert_int_equal(gw_users_add(users, "alice", "frontdesk", "pw-alice"), EST_OK);
    assert_int_equal(gw_users_save(users), EST_OK);

    const char *role = NULL;
    assert_true(gw_users_login(&config, "alice", "pw-alice", &role));
    assert_string_equal(role, "frontdesk");
    assert_false(gw_users_login(&config, "alice", "wrong", NULL));
    assert_false(gw_users_login(&config, "nobody", "pw-alice", NULL));
    assert_string_equal(gw_users_role_of(&config, "alice"), "frontdesk");
    assert_int_equal(gw_users_enabled_count(&config), 1);

    /* estate-ctl user disable while the daemon runs: seen at once. */
    assert_int_equal(gw_users_set_enabled(users, "alice", false), EST_OK);
    assert_int_equal(gw_users_save(users), EST_OK);
    assert_null(gw_users_role_of(&config, "alice"));
    assert_false(gw_users_login(&config, "alice", "pw-alice", NULL));
    gw_users_free(users);
}

static void test_default_path(void **state)
{
    (void)state;
    struct gw_config config;
    memset(&config, 0, sizeof config);
    config.gateway.data_dir = "/var/lib/estate-gw";
    char *path = gw_users_path(&config);
    assert_string_equal(path, "/var/lib/estate-gw/users.conf");
    free(path);
    config.http.users_file = "/etc/estate-gw/users.conf";
    path = gw_users_path(&config);
    assert_string_equal(path, "/etc/estate-gw/users.conf");
    free(path);
}

/* The demo users named in the README must sign in with their passwords. */
static void test_demo_users(void **state)
{
    (void)state;
    const char *root = getenv("ESTATE_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/etc/demo/users.conf", root ? root : ESTATE_SOURCE_DIR);
    struct diag_log log = {0};
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_load(path, collect_diag, &log, &users), EST_OK);
    assert_int_equal(log.count, 0);
    static const char *const demo[][2] = {
        {"frontdesk", "front123"}, {"engineer", "eng123"}, {"supervisor", "super123"}, {"viewer", "view123"}};
    for (size_t i = 0; i < 4; i++) {
        const char *role = NULL;
        assert_true(gw_users_verify(users, demo[i][0], demo[i][1], &role));
        assert_string_equal(role, demo[i][0]);
    }
    gw_users_free(users);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_check),
        cmocka_unit_test(test_malformed_hashes_never_match),
        cmocka_unit_test_setup_teardown(test_add_verify_disable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_non_regular_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_lines_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_copy_reloads, setup, teardown),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_demo_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
