/* users.h - the console's user accounts: a small text file, one user a line
 *
 *     name:role:hash:enabled
 *
 * where role is frontdesk, engineer, supervisor or viewer, enabled is 1 or 0
 * and hash is a salted slow hash
 *
 *     pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64
 *
 * (OpenSSL PKCS5_PBKDF2_HMAC with SHA-256, a random 16-byte salt and at
 * least GW_USERS_MIN_ITERATIONS rounds; compared in constant time). Blank
 * lines and lines starting with '#' are ignored. The file is written
 * atomically (FILE.new, fsync, rename) with mode 0600.
 *
 * Ownership and threads: a struct gw_users is a plain in-memory copy owned
 * by its caller; it is not thread-safe (the console guards its copy with a
 * mutex). Nothing here logs: problems in the file go to the caller's
 * diagnostic callback as "FILE:LINE: message"; secrets never do. */
#ifndef GW_USERS_H
#define GW_USERS_H

#include <stdbool.h>

#include <cjson/cJSON.h>
#include <stddef.h>

#include "config.h"
#include "estate.h"

#define GW_USERS_DEFAULT_ITERATIONS 120000
#define GW_USERS_MIN_ITERATIONS 100000
#define GW_USERS_MAX_ITERATIONS 10000000
#define GW_USERS_NAME_MAX 64      /* bytes of a user name */
#define GW_USERS_PASSWORD_MAX 1024 /* bytes of a password */
#define GW_USERS_DEFAULT_FILE "users.conf" /* in data_dir when http.users_file is unset */

struct gw_users;

/* Receives one problem found while loading, e.g.
 * "/etc/estate-gw/users.conf:7: unknown role 'admin' (line skipped)". */
typedef void (*gw_users_diag_fn)(void *ctx, const char *message);

/* One user as listed (strings borrowed for the callback's duration). */
struct gw_user_info {
    const char *name;
    const char *role;
    bool enabled;
};
typedef bool (*gw_users_list_fn)(void *ctx, const struct gw_user_info *user);

/* The users file of a config: http.users_file (the config loader resolves
 * a relative one against the config file's directory) or
 * data_dir/users.conf. Malloc'd; NULL
 * when out of memory. */
char *gw_users_path(const struct gw_config *config);

/* Creates an empty set bound to path (nothing is read or written). */
est_err gw_users_create(const char *path, struct gw_users **out);

/* Loads path. A missing file gives an empty set (EST_OK). Malformed lines
 * (wrong field count, bad name, unknown role, bad hash, duplicate name) are
 * reported through diag (may be NULL) and skipped; the rest load. EST_ERR_IO
 * when the file exists but cannot be read. */
est_err gw_users_load(const char *path, gw_users_diag_fn diag, void *ctx, struct gw_users **out);

void gw_users_free(struct gw_users *users);

/* Writes the set to its path atomically with mode 0600. EST_ERR_INVALID
 * when the path exists but is not a regular file (never replaced). */
est_err gw_users_save(const struct gw_users *users);

size_t gw_users_count(const struct gw_users *users);

/* Checks a password. True only when the user exists, is enabled and the
 * password matches; *role (may be NULL) then points at the user's role
 * (valid until the set changes). Takes the same time for unknown users. */
bool gw_users_verify(const struct gw_users *users, const char *name, const char *password,
                     const char **role);

/* The role of an enabled user, NULL when unknown or disabled (for MQTT
 * commands and console sessions naming a user). */
const char *gw_users_role(const struct gw_users *users, const char *name);

/* Adds a user with a fresh hash of password. EST_ERR_INVALID for a bad
 * name, role or password; EST_ERR_STATE when the name exists. */
est_err gw_users_add(struct gw_users *users, const char *name, const char *role,
                     const char *password);

/* Replaces a user's password. EST_ERR_NOTFOUND, EST_ERR_INVALID. */
est_err gw_users_set_password(struct gw_users *users, const char *name, const char *password);

/* Enables or disables a user. EST_ERR_NOTFOUND. */
est_err gw_users_set_enabled(struct gw_users *users, const char *name, bool enabled);

/* Every user in file order. */
void gw_users_list(const struct gw_users *users, gw_users_list_fn fn, void *ctx);

/* Whether role is one of frontdesk, engineer, supervisor, viewer. */
bool gw_users_role_valid(const char *role);

/* Whether name is 1..GW_USERS_NAME_MAX of [A-Za-z0-9._-]. */
bool gw_users_name_valid(const char *name);

/* Hashes password with a random salt into a malloc'd
 * "pbkdf2-sha256$..." string (*out). iterations 0 = the default. */
est_err gw_users_hash_password(const char *password, unsigned iterations, char **out);

/* Checks password against an encoded hash in constant time. False for a
 * malformed hash too. */
bool gw_users_check_hash(const char *encoded, const char *password);

/* --- the daemon's shared copy (thread-safe) ---
 * One process-wide copy of the config's users file, reloaded whenever the
 * file changes on disk, so estate-ctl user add/passwd/disable take effect
 * without a restart. */

/* Where problems found while (re)loading go (e.g. the daemon's log). */
void gw_users_set_diag(gw_users_diag_fn diag);

/* Role of an enabled user as a static string, NULL when unknown or
 * disabled (MQTT commands naming a user; console sessions). */
const char *gw_users_role_of(const struct gw_config *config, const char *user);

/* Checks a console sign-in; true and *role (a static string) when the user
 * is enabled and the password matches. The slow hash runs outside the
 * lock; unknown users cost the same time. */
bool gw_users_login(const struct gw_config *config, const char *user, const char *password,
                    const char **role);

/* Names of the enabled users with this role, as a JSON array (the console's
 * list of engineers to dispatch to); NULL when out of memory. */
cJSON *gw_users_names_with_role(const struct gw_config *config, const char *role);

/* Enabled users in the file (0 means nobody can sign in). */
size_t gw_users_enabled_count(const struct gw_config *config);

/* estate-ctl's "user" verb. argv may start with "user"; then
 *   add NAME ROLE [--password-file FILE]   (else the password is read from stdin)
 *   passwd NAME [--password-file FILE]
 *   disable NAME | enable NAME
 *   list [--json]
 * Returns 0 on success, 2 on bad usage, 1 on failure; messages on stderr. */
int gw_users_ctl_main(const struct gw_config *config, int argc, char **argv);

#endif
