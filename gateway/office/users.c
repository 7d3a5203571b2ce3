/* users.c - the console's user accounts (see users.h): parsing and writing
 * the users file, PBKDF2-SHA256 password hashes, and estate-ctl's "user"
 * verb. Passwords and hashes are never printed. */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "est_alloc.h"

#define HASH_SCHEME "pbkdf2-sha256"
#define SALT_BYTES 16
#define DIGEST_BYTES 32
#define MAX_LINE 4096 /* longer lines are malformed */

struct gw_user {
    char *name;
    char *role;
    char *hash; /* encoded, "pbkdf2-sha256$..." */
    bool enabled;
};

struct gw_users {
    char *path;
    struct gw_user *items;
    size_t count;
    size_t cap;
};

static const char *const known_roles[] = {"frontdesk", "engineer", "supervisor", "viewer"};

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

bool gw_users_role_valid(const char *role)
{
    if (!role)
        return false;
    for (size_t i = 0; i < sizeof known_roles / sizeof known_roles[0]; i++)
        if (strcmp(role, known_roles[i]) == 0)
            return true;
    return false;
}

bool gw_users_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > GW_USERS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool password_valid(const char *password)
{
    if (!password)
        return false;
    size_t len = strnlen(password, GW_USERS_PASSWORD_MAX + 1);
    return len > 0 && len <= GW_USERS_PASSWORD_MAX && !strpbrk(password, "\r\n");
}

/* ------------------------------------------------------------------ */
/* Hashes                                                              */
/* ------------------------------------------------------------------ */

/* Decodes exactly want bytes of standard base64 (with padding) from text. */
static bool base64_decode_exact(const char *text, unsigned char *out, size_t want)
{
    size_t len = strlen(text);
    if (len == 0 || len % 4 != 0 || len > 128)
        return false;
    unsigned char buf[128];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    if (n < 0)
        return false;
    size_t padding = (text[len - 1] == '=') + (len > 1 && text[len - 2] == '=');
    if ((size_t)n < padding || (size_t)n - padding != want)
        return false;
    memcpy(out, buf, want);
    return true;
}

static bool pbkdf2(const char *password, const unsigned char *salt, unsigned iterations,
                   unsigned char digest[DIGEST_BYTES])
{
    return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_BYTES, (int)iterations,
                             EVP_sha256(), DIGEST_BYTES, digest) == 1;
}

est_err gw_users_hash_password(const char *password, unsigned iterations, char **out)
{
    *out = NULL;
    if (!password_valid(password))
        return EST_ERR_INVALID;
    if (iterations == 0)
        iterations = GW_USERS_DEFAULT_ITERATIONS;
    if (iterations < GW_USERS_MIN_ITERATIONS || iterations > GW_USERS_MAX_ITERATIONS)
        return EST_ERR_RANGE;
    unsigned char salt[SALT_BYTES], digest[DIGEST_BYTES];
    if (RAND_bytes(salt, sizeof salt) != 1 || !pbkdf2(password, salt, iterations, digest))
        return EST_ERR_IO;
    char salt_b64[4 * ((SALT_BYTES + 2) / 3) + 1], digest_b64[4 * ((DIGEST_BYTES + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)salt_b64, salt, sizeof salt);
    EVP_EncodeBlock((unsigned char *)digest_b64, digest, sizeof digest);
    OPENSSL_cleanse(digest, sizeof digest);
    size_t size = sizeof HASH_SCHEME + 12 + sizeof salt_b64 + sizeof digest_b64 + 4;
    char *text = malloc(size);
    if (!text)
        return EST_ERR_NOMEM;
    snprintf(text, size, "%s$%u$%s$%s", HASH_SCHEME, iterations, salt_b64, digest_b64);
    *out = text;
    return EST_OK;
}

/* Splits an encoded hash into its parts; false when malformed. */
static bool parse_hash(const char *encoded, unsigned *iterations, unsigned char salt[SALT_BYTES],
                       unsigned char digest[DIGEST_BYTES])
{
    char copy[256];
    if (!encoded || strlen(encoded) >= sizeof copy)
        return false;
    strcpy(copy, encoded);
    char *save = NULL;
    char *scheme = strtok_r(copy, "$", &save);
    char *iter_text = strtok_r(NULL, "$", &save);
    char *salt_text = strtok_r(NULL, "$", &save);
    char *digest_text = strtok_r(NULL, "$", &save);
    if (!scheme || !iter_text || !salt_text || !digest_text || strtok_r(NULL, "$", &save))
        return false;
    if (strcmp(scheme, HASH_SCHEME) != 0)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(iter_text, &end, 10);
    if (errno || *end || iter_text[0] < '1' || iter_text[0] > '9' || n < GW_USERS_MIN_ITERATIONS ||
        n > GW_USERS_MAX_ITERATIONS)
        return false;
    *iterations = (unsigned)n;
    return base64_decode_exact(salt_text, salt, SALT_BYTES) &&
           base64_decode_exact(digest_text, digest, DIGEST_BYTES);
}

bool gw_users_check_hash(const char *encoded, const char *password)
{
    unsigned iterations = 0;
    unsigned char salt[SALT_BYTES], want[DIGEST_BYTES], got[DIGEST_BYTES];
    if (!password_valid(password) || !parse_hash(encoded, &iterations, salt, want))
        return false;
    if (!pbkdf2(password, salt, iterations, got))
        return false;
    bool same = CRYPTO_memcmp(got, want, DIGEST_BYTES) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return same;
}

/* ------------------------------------------------------------------ */
/* The set                                                             */
/* ------------------------------------------------------------------ */

static struct gw_user *find_user(const struct gw_users *users, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < users->count; i++)
        if (strcmp(users->items[i].name, name) == 0)
            return &users->items[i];
    return NULL;
}

static void user_clear(struct gw_user *user)
{
    free(user->name);
    free(user->role);
    free(user->hash);
    memset(user, 0, sizeof *user);
}

/* Appends a copy of the fields; EST_ERR_NOMEM. */
static est_err append_user(struct gw_users *users, const char *name, const char *role,
                           const char *hash, bool enabled)
{
    if (EST_VEC_RESERVE(users->items, users->cap, users->count + 1) != EST_OK)
        return EST_ERR_NOMEM;
    struct gw_user user = {strdup(name), strdup(role), strdup(hash), enabled};
    if (!user.name || !user.role || !user.hash) {
        user_clear(&user);
        return EST_ERR_NOMEM;
    }
    users->items[users->count++] = user;
    return EST_OK;
}

est_err gw_users_create(const char *path, struct gw_users **out)
{
    *out = NULL;
    struct gw_users *users = calloc(1, sizeof *users);
    if (!users)
        return EST_ERR_NOMEM;
    users->path = strdup(path ? path : "");
    if (!users->path) {
        free(users);
        return EST_ERR_NOMEM;
    }
    *out = users;
    return EST_OK;
}

void gw_users_free(struct gw_users *users)
{
    if (!users)
        return;
    for (size_t i = 0; i < users->count; i++)
        user_clear(&users->items[i]);
    free(users->items);
    free(users->path);
    free(users);
}

size_t gw_users_count(const struct gw_users *users)
{
    return users ? users->count : 0;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static void diag_report(gw_users_diag_fn diag, void *ctx, const char *path, int line,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void diag_report(gw_users_diag_fn diag, void *ctx, const char *path, int line,
                        const char *fmt, ...)
{
    if (!diag)
        return;
    char what[256], message[PATH_MAX + 320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(message, sizeof message, "%s:%d: %s (line skipped)", path, line, what);
    diag(ctx, message);
}

/* Parses one non-comment line into the set, or reports why it cannot. */
static est_err load_line(struct gw_users *users, char *text, int line, gw_users_diag_fn diag,
                         void *ctx)
{
    char *fields[4];
    size_t nfields = 0;
    char *cursor = text;
    fields[nfields++] = cursor;
    while (nfields < 4) { /* split on the first three colons */
        char *colon = strchr(cursor, ':');
        if (!colon)
            break;
        *colon = '\0';
        cursor = colon + 1;
        fields[nfields++] = cursor;
    }
    if (nfields != 4 || strchr(fields[3], ':')) {
        diag_report(diag, ctx, users->path, line, "expected name:role:hash:enabled");
        return EST_OK;
    }
    const char *name = fields[0], *role = fields[1], *hash = fields[2], *enabled = fields[3];
    unsigned iterations;
    unsigned char salt[SALT_BYTES], digest[DIGEST_BYTES];
    if (!gw_users_name_valid(name))
        diag_report(diag, ctx, users->path, line, "bad user name (1-%d of A-Z a-z 0-9 . _ -)",
                    GW_USERS_NAME_MAX);
    else if (!gw_users_role_valid(role))
        diag_report(diag, ctx, users->path, line,
                    "user %s: unknown role (frontdesk, engineer, supervisor or viewer)", name);
    else if (!parse_hash(hash, &iterations, salt, digest))
        diag_report(diag, ctx, users->path, line, "user %s: malformed password hash", name);
    else if (strcmp(enabled, "1") != 0 && strcmp(enabled, "0") != 0)
        diag_report(diag, ctx, users->path, line, "user %s: enabled must be 1 or 0", name);
    else if (find_user(users, name))
        diag_report(diag, ctx, users->path, line, "user %s: defined twice", name);
    else
        return append_user(users, name, role, hash, enabled[0] == '1');
    return EST_OK;
}

est_err gw_users_load(const char *path, gw_users_diag_fn diag, void *ctx, struct gw_users **out)
{
    *out = NULL;
    struct gw_users *users = NULL;
    est_err err = gw_users_create(path, &users);
    if (err)
        return err;
    FILE *file = fopen(path, "r");
    if (!file) {
        if (errno == ENOENT) {
            *out = users;
            return EST_OK;
        }
        gw_users_free(users);
        return EST_ERR_IO;
    }
    char text[MAX_LINE];
    int line = 0;
    while (!err && fgets(text, sizeof text, file)) {
        line++;
        size_t len = strlen(text);
        if (len == sizeof text - 1 && text[len - 1] != '\n') {
            diag_report(diag, ctx, path, line, "line too long");
            int c;
            while ((c = fgetc(file)) != EOF && c != '\n')
                ;
            continue;
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = '\0';
        const char *start = text + strspn(text, " \t");
        if (*start == '\0' || *start == '#')
            continue;
        err = load_line(users, text, line, diag, ctx);
    }
    if (!err && ferror(file))
        err = EST_ERR_IO;
    fclose(file);
    if (err) {
        gw_users_free(users);
        return err;
    }
    *out = users;
    return EST_OK;
}

/* ------------------------------------------------------------------ */
/* Saving                                                              */
/* ------------------------------------------------------------------ */

static est_err write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return EST_ERR_IO;
        data += n;
        len -= (size_t)n;
    }
    return EST_OK;
}

/* fsyncs the directory holding path so the rename is durable. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

est_err gw_users_save(const struct gw_users *users)
{
    /* The rename would replace whatever is there: refuse anything but a
     * regular file (a device such as /dev/null, a directory, a symlink). */
    struct stat st;
    if (lstat(users->path, &st) == 0 && !S_ISREG(st.st_mode))
        return EST_ERR_INVALID;
    size_t tmp_len = strlen(users->path) + 5;
    char *tmp = malloc(tmp_len);
    if (!tmp)
        return EST_ERR_NOMEM;
    snprintf(tmp, tmp_len, "%s.new", users->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(tmp);
        return EST_ERR_IO;
    }
    static const char header[] = "# estate-gw console users: name:role:hash:enabled\n"
                                 "# managed with estate-ctl user add/passwd/disable/enable\n";
    est_err err = write_all(fd, header, sizeof header - 1);
    for (size_t i = 0; !err && i < users->count; i++) {
        const struct gw_user *u = &users->items[i];
        err = write_all(fd, u->name, strlen(u->name));
        if (!err)
            err = write_all(fd, ":", 1);
        if (!err)
            err = write_all(fd, u->role, strlen(u->role));
        if (!err)
            err = write_all(fd, ":", 1);
        if (!err)
            err = write_all(fd, u->hash, strlen(u->hash));
        if (!err)
            err = write_all(fd, u->enabled ? ":1\n" : ":0\n", 3);
    }
    if (!err && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
        err = EST_ERR_IO;
    if (close(fd) != 0 && !err)
        err = EST_ERR_IO;
    if (!err && rename(tmp, users->path) != 0)
        err = EST_ERR_IO;
    if (err)
        unlink(tmp);
    else
        sync_parent_dir(users->path);
    free(tmp);
    return err;
}

/* ------------------------------------------------------------------ */
/* Queries and changes                                                 */
/* ------------------------------------------------------------------ */

bool gw_users_verify(const struct gw_users *users, const char *name, const char *password,
                     const char **role)
{
    /* A fixed hash for unknown users, so a wrong name costs as much time
     * as a wrong password (the password of this hash is not guessable: it
     * is random and was never kept). */
    static const char decoy[] = HASH_SCHEME "$120000$jmCZ5h2OSx0uJvOrLMefCw==$"
                                            "v3Mx2w0nYhzsQ2Jp7KukP1ZJ8N4v1FhDqmJ1m+Ji3yY=";
    const struct gw_user *user = users ? find_user(users, name) : NULL;
    bool match = gw_users_check_hash(user ? user->hash : decoy, password ? password : "");
    if (!user || !user->enabled || !match)
        return false;
    if (role)
        *role = user->role;
    return true;
}

const char *gw_users_role(const struct gw_users *users, const char *name)
{
    const struct gw_user *user = users ? find_user(users, name) : NULL;
    return user && user->enabled ? user->role : NULL;
}

est_err gw_users_add(struct gw_users *users, const char *name, const char *role,
                     const char *password)
{
    if (!gw_users_name_valid(name) || !gw_users_role_valid(role) || !password_valid(password))
        return EST_ERR_INVALID;
    if (find_user(users, name))
        return EST_ERR_STATE;
    char *hash = NULL;
    est_err err = gw_users_hash_password(password, 0, &hash);
    if (err)
        return err;
    err = append_user(users, name, role, hash, true);
    free(hash);
    return err;
}

est_err gw_users_set_password(struct gw_users *users, const char *name, const char *password)
{
    struct gw_user *user = find_user(users, name);
    if (!user)
        return EST_ERR_NOTFOUND;
    char *hash = NULL;
    est_err err = gw_users_hash_password(password, 0, &hash);
    if (err)
        return err;
    free(user->hash);
    user->hash = hash;
    return EST_OK;
}

est_err gw_users_set_enabled(struct gw_users *users, const char *name, bool enabled)
{
    struct gw_user *user = find_user(users, name);
    if (!user)
        return EST_ERR_NOTFOUND;
    user->enabled = enabled;
    return EST_OK;
}

void gw_users_list(const struct gw_users *users, gw_users_list_fn fn, void *ctx)
{
    for (size_t i = 0; i < users->count; i++) {
        const struct gw_user *u = &users->items[i];
        struct gw_user_info info = {u->name, u->role, u->enabled};
        if (!fn(ctx, &info))
            return;
    }
}

char *gw_users_path(const struct gw_config *config)
{
    /* The config loader already resolved a relative http.users_file
     * against the config file's directory. */
    const char *file = config->http.users_file;
    if (file && *file)
        return strdup(file);
    const char *dir = config->gateway.data_dir ? config->gateway.data_dir : ".";
    size_t len = strlen(dir) + sizeof GW_USERS_DEFAULT_FILE + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s", dir, GW_USERS_DEFAULT_FILE);
    return path;
}

/* ------------------------------------------------------------------ */
/* The daemon's shared copy                                            */
/* ------------------------------------------------------------------ */

/* One copy of the users file per process, reloaded when the file changes
 * (estate-ctl user ... writes it while the daemon runs). */
static struct {
    pthread_mutex_t lock;
    struct gw_users *users;
    struct timespec mtime;
    off_t size;
    ino_t inode;
    bool loaded;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void shared_diag(void *ctx, const char *message)
{
    gw_users_diag_fn diag = *(gw_users_diag_fn *)ctx;
    if (diag)
        diag(NULL, message);
}

static gw_users_diag_fn shared_diag_fn;

void gw_users_set_diag(gw_users_diag_fn diag)
{
    pthread_mutex_lock(&shared.lock);
    shared_diag_fn = diag;
    pthread_mutex_unlock(&shared.lock);
}

/* Reloads the shared copy when the file changed. Caller holds the lock. */
static void shared_refresh(const struct gw_config *config)
{
    char *path = gw_users_path(config);
    if (!path)
        return;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    bool same = shared.loaded && shared.users && strcmp(shared.users->path, path) == 0 &&
                (exists ? (st.st_mtim.tv_sec == shared.mtime.tv_sec &&
                           st.st_mtim.tv_nsec == shared.mtime.tv_nsec &&
                           st.st_size == shared.size && st.st_ino == shared.inode)
                        : shared.size < 0);
    if (!same) {
        struct gw_users *fresh = NULL;
        if (gw_users_load(path, shared_diag, &shared_diag_fn, &fresh) == EST_OK) {
            gw_users_free(shared.users);
            shared.users = fresh;
            shared.loaded = true;
            shared.mtime = exists ? st.st_mtim : (struct timespec){0, 0};
            shared.size = exists ? st.st_size : -1;
            shared.inode = exists ? st.st_ino : 0;
        }
    }
    free(path);
}

/* The static copy of a role name, so it outlives any reload. */
static const char *static_role(const char *role)
{
    for (size_t i = 0; role && i < sizeof known_roles / sizeof known_roles[0]; i++)
        if (strcmp(role, known_roles[i]) == 0)
            return known_roles[i];
    return NULL;
}

const char *gw_users_role_of(const struct gw_config *config, const char *user)
{
    pthread_mutex_lock(&shared.lock);
    shared_refresh(config);
    const char *role = static_role(gw_users_role(shared.users, user));
    pthread_mutex_unlock(&shared.lock);
    return role;
}

bool gw_users_login(const struct gw_config *config, const char *user, const char *password,
                    const char **role)
{
    char *hash = NULL;
    const char *user_role = NULL;
    pthread_mutex_lock(&shared.lock);
    shared_refresh(config);
    const struct gw_user *found = shared.users ? find_user(shared.users, user) : NULL;
    if (found && found->enabled) {
        hash = strdup(found->hash);
        user_role = static_role(found->role);
    }
    pthread_mutex_unlock(&shared.lock);
    /* The slow hash runs outside the lock so logins do not queue. */
    bool match = false;
    if (hash) {
        match = gw_users_check_hash(hash, password ? password : "");
        free(hash);
    } else {
        gw_users_verify(NULL, NULL, password, NULL); /* unknown user: same cost */
    }
    if (!match || !user_role)
        return false;
    if (role)
        *role = user_role;
    return true;
}

size_t gw_users_enabled_count(const struct gw_config *config)
{
    size_t n = 0;
    pthread_mutex_lock(&shared.lock);
    shared_refresh(config);
    for (size_t i = 0; shared.users && i < shared.users->count; i++)
        n += shared.users->items[i].enabled;
    pthread_mutex_unlock(&shared.lock);
    return n;
}

cJSON *gw_users_names_with_role(const struct gw_config *config, const char *role)
{
    cJSON *names = cJSON_CreateArray();
    if (names == NULL)
        return NULL;
    pthread_mutex_lock(&shared.lock);
    shared_refresh(config);
    for (size_t i = 0; shared.users && i < shared.users->count; i++) {
        const struct gw_user *u = &shared.users->items[i];
        if (u->enabled && strcmp(u->role, role) == 0 &&
            !cJSON_AddItemToArray(names, cJSON_CreateString(u->name))) {
            cJSON_Delete(names);
            names = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&shared.lock);
    return names;
}

/* ------------------------------------------------------------------ */
/* estate-ctl user ...                                                 */
/* ------------------------------------------------------------------ */

static void ctl_diag(void *ctx, const char *message)
{
    (void)ctx;
    fprintf(stderr, "%s\n", message);
}

static int ctl_usage(void)
{
    fprintf(stderr, "usage: estate-ctl user add NAME ROLE [--password-file FILE]\n"
                    "       estate-ctl user passwd NAME [--password-file FILE]\n"
                    "       estate-ctl user disable NAME | enable NAME\n"
                    "       estate-ctl user list [--json]\n"
                    "roles: frontdesk, engineer, supervisor, viewer; without --password-file\n"
                    "the password is read from standard input (one line).\n");
    return 2;
}

/* Reads the first line of stream into buf (without its newline). */
static bool read_password_line(FILE *stream, char *buf, size_t size)
{
    if (!fgets(buf, (int)size, stream))
        return false;
    size_t len = strlen(buf);
    if (len == size - 1 && buf[len - 1] != '\n')
        return false; /* too long */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return len > 0;
}

/* The new password from --password-file or stdin (without echo on a tty). */
static bool ctl_read_password(const char *file, char *buf, size_t size)
{
    if (file) {
        FILE *stream = fopen(file, "r");
        if (!stream) {
            fprintf(stderr, "estate-ctl: %s: %s\n", file, strerror(errno));
            return false;
        }
        bool ok = read_password_line(stream, buf, size);
        fclose(stream);
        if (!ok)
            fprintf(stderr, "estate-ctl: %s: no password on the first line (or too long)\n",
                    file);
        return ok;
    }
    struct termios saved;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        struct termios quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "Password: ");
    }
    bool ok = read_password_line(stdin, buf, size);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fprintf(stderr, "\n");
    }
    if (!ok)
        fprintf(stderr, "estate-ctl: no password given on standard input (or too long)\n");
    return ok;
}

static bool ctl_print_user(void *ctx, const struct gw_user_info *user)
{
    cJSON *array = ctx;
    if (array) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "name", user->name);
        cJSON_AddStringToObject(item, "role", user->role);
        cJSON_AddBoolToObject(item, "enabled", user->enabled);
        cJSON_AddItemToArray(array, item);
    } else {
        printf("%-20s %-11s %s\n", user->name, user->role, user->enabled ? "enabled" : "disabled");
    }
    return true;
}

static int ctl_list(const struct gw_users *users, bool json)
{
    if (!json) {
        gw_users_list(users, ctl_print_user, NULL);
        return 0;
    }
    cJSON *array = cJSON_CreateArray();
    gw_users_list(users, ctl_print_user, array);
    char *text = cJSON_PrintUnformatted(array);
    cJSON_Delete(array);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

/* Applies one change (add/passwd/disable/enable) and saves. */
static int ctl_change(struct gw_users *users, const char *cmd, int argc, char **argv)
{
    const char *password_file = NULL;
    const char *positional[2] = {NULL, NULL};
    int npositional = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
            password_file = argv[++i];
        else if (argv[i][0] == '-' || npositional == 2)
            return ctl_usage();
        else
            positional[npositional++] = argv[i];
    }
    bool is_add = strcmp(cmd, "add") == 0, is_passwd = strcmp(cmd, "passwd") == 0;
    if (npositional != (is_add ? 2 : 1) || (password_file && !is_add && !is_passwd))
        return ctl_usage();
    const char *name = positional[0];
    if (!gw_users_name_valid(name)) {
        fprintf(stderr, "estate-ctl: bad user name '%s' (1-%d of A-Z a-z 0-9 . _ -)\n", name,
                GW_USERS_NAME_MAX);
        return 2;
    }
    if (is_add && !gw_users_role_valid(positional[1])) {
        fprintf(stderr, "estate-ctl: unknown role '%s' (frontdesk, engineer, supervisor, viewer)\n",
                positional[1]);
        return 2;
    }
    est_err err;
    if (is_add || is_passwd) {
        if (is_add && find_user(users, name)) { /* before asking for a password */
            fprintf(stderr, "estate-ctl: user %s exists already (%s)\n", name, users->path);
            return 1;
        }
        char password[GW_USERS_PASSWORD_MAX + 2];
        if (!ctl_read_password(password_file, password, sizeof password))
            return 1;
        err = is_add ? gw_users_add(users, name, positional[1], password)
                     : gw_users_set_password(users, name, password);
        OPENSSL_cleanse(password, sizeof password);
    } else {
        err = gw_users_set_enabled(users, name, strcmp(cmd, "enable") == 0);
    }
    if (err == EST_ERR_STATE)
        fprintf(stderr, "estate-ctl: user %s exists already (%s)\n", name, users->path);
    else if (err == EST_ERR_NOTFOUND)
        fprintf(stderr, "estate-ctl: no user %s in %s\n", name, users->path);
    else if (err)
        fprintf(stderr, "estate-ctl: user %s: %s\n", name, est_strerror(err));
    if (err)
        return err == EST_ERR_INVALID ? 2 : 1;
    err = gw_users_save(users);
    if (err == EST_ERR_INVALID) {
        fprintf(stderr, "estate-ctl: %s is not a regular file; not replacing it\n", users->path);
        return 1;
    }
    if (err) {
        fprintf(stderr, "estate-ctl: cannot write %s: %s\n", users->path, strerror(errno));
        return 1;
    }
    return 0;
}

int gw_users_ctl_main(const struct gw_config *config, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "user") == 0) {
        argc--;
        argv++;
    }
    if (argc < 1)
        return ctl_usage();
    const char *cmd = argv[0];
    bool is_list = strcmp(cmd, "list") == 0;
    if (!is_list && strcmp(cmd, "add") != 0 && strcmp(cmd, "passwd") != 0 &&
        strcmp(cmd, "disable") != 0 && strcmp(cmd, "enable") != 0)
        return ctl_usage();
    char *path = gw_users_path(config);
    if (!path)
        return 1;
    struct gw_users *users = NULL;
    est_err err = gw_users_load(path, ctl_diag, NULL, &users);
    if (err) {
        fprintf(stderr, "estate-ctl: cannot read %s: %s\n", path, est_strerror(err));
        free(path);
        return 1;
    }
    free(path);
    int rc;
    if (is_list) {
        bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
        rc = (argc == 1 || json) ? ctl_list(users, json) : ctl_usage();
    } else {
        rc = ctl_change(users, cmd, argc - 1, argv + 1);
    }
    gw_users_free(users);
    return rc;
}
