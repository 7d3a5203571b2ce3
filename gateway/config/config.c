/* config.c - loads the gateway configuration (libconfig) into the plain
 * structs of config.h, in three steps:
 *   1. defaults   (set_defaults: every field has a documented value);
 *   2. parse      (table-driven: each section is a table of key rows with
 *                  type, bounds and target offset, so unknown keys, wrong
 *                  types and out-of-range values are rejected uniformly; the
 *                  meters CSV goes through the same meter rows);
 *   3. checks     (references, duplicates, parent loops, files, driver
 *                  options) over list and CSV meters together.
 * --set overrides are applied to the libconfig tree between reading and
 * parsing, so they pass the same checks. Errors are collected, all of them
 * where possible, as "FILE:LINE: message" (an error caused by an override
 * reads "--set PATH=VALUE: message"). Nothing here prints or exits. */
#include "config.h"
#include "cnproto.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv.h"
#include "est_alloc.h"
#include "est_override.h"
#include "est_tz.h"

#define MAX_STRING 1024              /* longest string value accepted */
#define MAX_ID 64                    /* longest id or name */
#define CSV_MAX_BYTES (64u << 20)    /* largest meters CSV */
#define CSV_MAX_FIELD 1024           /* longest CSV field */
#define CSV_MAX_FIELDS 64            /* most fields in a CSV record */

/* Enum fields are written through int pointers by the key tables. */
_Static_assert(sizeof(enum drv_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum gw_category) == sizeof(int), "enum size");
_Static_assert(sizeof(enum gw_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum gw_language) == sizeof(int), "enum size");
_Static_assert(sizeof(enum gw_bus_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rule_severity) == sizeof(int), "enum size");

/* ------------------------------------------------------------------ */
/* Loader state and error collection                                   */
/* ------------------------------------------------------------------ */

/* One --set override; settings it created or changed carry it as their
 * libconfig hook, so messages about them name the override. */
struct override {
    const char *text;  /* "PATH=VALUE" as given */
    char *label;       /* "--set PATH=VALUE" */
    bool created;      /* the value is text to be typed by the key's row */
};

struct loader {
    struct gw_config *cfg;
    struct gw_config_errors *errors;
    size_t nerrors;                /* errors found (a message may be lost to ENOMEM) */
    bool nomem;
    const char *path;              /* the main config file as given */
    char *dir;                     /* its directory: @include and relative paths */
    struct override *overrides;
    size_t noverrides;
    const config_setting_t *zone_names; /* fire panel being parsed: its zone_names */
    const config_setting_t *mqtt;  /* the mqtt and rules sections, for */
    const config_setting_t *rules; /*   messages about several keys */
    struct where *users_file_at;   /* where http.users_file was set; NULL = not set */
};

/* Where a message points: file and line (line 0: no line). raw: file is a
 * name as libconfig recorded it (relative to the include dir). */
struct where {
    const char *file;
    int line;
    bool raw;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The file name shown for a libconfig source name: @include'd files are
 * recorded by the name in the directive, relative to the include dir. */
static char *display_file(const struct loader *L, const char *file)
{
    if (!file)
        return strdup(L->path);
    if (file[0] == '/' || strcmp(file, L->path) == 0 || strcmp(L->dir, ".") == 0)
        return strdup(file);
    return est_asprintf("%s/%s", L->dir, file);
}

static void errors_push(struct gw_config_errors *e, char *msg)
{
    if (EST_VEC_RESERVE(e->messages, e->cap, e->count + 1) != EST_OK) {
        free(msg);
        return;
    }
    e->messages[e->count++] = msg;
}

static void oom(struct loader *L)
{
    if (!L->nomem)
        errors_push(L->errors, dup_or_null("out of memory while loading the configuration"));
    L->nomem = true;
    L->nerrors++;
}

__attribute__((format(printf, 3, 4))) static void errf(struct loader *L, const struct where *w,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = est_vasprintf(fmt, ap);
    va_end(ap);
    char *file = w->raw ? display_file(L, w->file) : NULL;
    const char *shown = w->raw ? file : w->file;
    char *line = NULL;
    if (msg && shown)
        line = w->line > 0 ? est_asprintf("%s:%d: %s", shown, w->line, msg)
                           : est_asprintf("%s: %s", shown, msg);
    free(msg);
    free(file);
    if (!line) {
        oom(L);
        return;
    }
    L->nerrors++;
    errors_push(L->errors, line);
}

/* Where a setting came from: the override that made or changed it, or its
 * file and line (settings without a source inherit their parent's). */
static struct where where_of(const struct loader *L, const config_setting_t *s)
{
    for (const config_setting_t *p = s; p; p = config_setting_parent(p)) {
        const struct override *o = config_setting_get_hook(p);
        if (o)
            return (struct where){ o->label, 0, false };
        if (config_setting_source_file(p))
            return (struct where){ config_setting_source_file(p), config_setting_source_line(p),
                                   true };
    }
    return (struct where){ L->path, 0, false };
}

/* The config's copy of a file name (config->file_names holds each once:
 * thousands of meters share their CSV's), or NULL when out of memory. */
static const char *intern_file(struct loader *L, const char *name)
{
    struct gw_config *c = L->cfg;
    for (size_t i = c->nfile_names; i-- > 0;) /* the latest is the likeliest */
        if (strcmp(c->file_names[i], name) == 0)
            return c->file_names[i];
    if (EST_VEC_RESERVE(c->file_names, c->file_names_cap, c->nfile_names + 1) != EST_OK ||
        !(c->file_names[c->nfile_names] = strdup(name)))
        return NULL;
    return c->file_names[c->nfile_names++];
}

/* File name to store in a struct for a where (the config owns it). */
static const char *where_file(struct loader *L, const struct where *w)
{
    if (!w->raw)
        return intern_file(L, w->file);
    char *shown = display_file(L, w->file);
    const char *name = shown ? intern_file(L, shown) : NULL;
    free(shown);
    return name;
}

/* "ctx.key" or "key" when ctx is empty (CSV rows: the line says where). */
#define KEY_FMT "%s%s%s"
#define KEY_ARGS(ctx, key) (ctx), (ctx)[0] ? "." : "", (key)

/* ------------------------------------------------------------------ */
/* Values and key tables                                               */
/* ------------------------------------------------------------------ */

enum val_type { VAL_INT, VAL_DOUBLE, VAL_BOOL, VAL_STRING };

struct val {
    enum val_type type;
    long long i;
    double d;
    bool b;
    const char *s;
};

enum key_type {
    K_STR,      /* char *, any text */
    K_IDENT,    /* char *, an id: 1-64 letters, digits, '-' or '_' */
    K_PATH,     /* char *, relative to the config file's directory */
    K_FILE,     /* K_PATH that must be a readable file */
    K_DIR,      /* K_PATH that must be a directory */
    K_INT,      /* int within min..max */
    K_U16,      /* uint16_t within min..max */
    K_UINT,     /* unsigned within min..max */
    K_DOUBLE,   /* double within min..max */
    K_BOOL,     /* bool */
    K_ENUM,     /* int: index of the word in names[] */
    K_PARITY,   /* char 'N', 'E' or 'O' */
    K_CUSTOM,   /* apply() checks and stores */
    K_SETTING,  /* setting() takes the libconfig setting (groups, lists) */
};

struct key_row;
typedef bool (*apply_fn)(struct loader *L, const struct key_row *row, const struct val *v,
                         void *target, const struct where *w, const char *ctx);
typedef void (*setting_fn)(struct loader *L, const config_setting_t *s, void *target,
                           const char *ctx);

struct key_row {
    const char *name;
    enum key_type type;
    size_t offset;              /* into the target struct */
    double min, max;            /* K_INT, K_U16, K_UINT, K_DOUBLE */
    const char *const *names;   /* K_ENUM: NULL-terminated words */
    apply_fn apply;             /* K_CUSTOM */
    setting_fn setting;         /* K_SETTING */
};

/* Row initializer: key name, type, offset of the target field. */
#define KEY(n, t, off) .name = (n), .type = (t), .offset = (off)
#define NROWS(rows) (sizeof(rows) / sizeof((rows)[0]))

static const char *type_word(enum key_type t)
{
    switch (t) {
    case K_INT:
    case K_U16:
    case K_UINT:
        return "an integer";
    case K_DOUBLE:
        return "a number";
    case K_BOOL:
        return "true or false";
    default:
        return "a string";
    }
}

/* Text (a CSV cell or a value --set created) typed by the row that takes it;
 * text that does not convert stays a string and fails the row's type check. */
static void val_from_text(const char *text, enum key_type want, struct val *v)
{
    v->type = VAL_STRING;
    v->s = text;
    char *end;
    if (want == K_INT || want == K_U16 || want == K_UINT || want == K_DOUBLE) {
        errno = 0;
        long long i = strtoll(text, &end, 10);
        if (*text && !*end && errno == 0) {
            v->type = VAL_INT;
            v->i = i;
            return;
        }
        if (want == K_DOUBLE) {
            double d = strtod(text, &end);
            if (*text && !*end) {
                v->type = VAL_DOUBLE;
                v->d = d;
            }
        }
    } else if (want == K_BOOL) {
        static const char *const yes[] = { "true", "yes", "1" };
        static const char *const no[] = { "false", "no", "0" };
        for (size_t k = 0; k < 3; k++) {
            if (strcmp(text, yes[k]) == 0 || strcmp(text, no[k]) == 0) {
                v->type = VAL_BOOL;
                v->b = strcmp(text, yes[k]) == 0;
                return;
            }
        }
    }
}

/* A scalar setting as a value; false for groups, lists and arrays. */
static bool val_from_setting(const config_setting_t *s, enum key_type want, struct val *v)
{
    const struct override *o = config_setting_get_hook(s);
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        *v = (struct val){ .type = VAL_INT, .i = config_setting_get_int(s) };
        return true;
    case CONFIG_TYPE_INT64:
        *v = (struct val){ .type = VAL_INT, .i = config_setting_get_int64(s) };
        return true;
    case CONFIG_TYPE_FLOAT:
        *v = (struct val){ .type = VAL_DOUBLE, .d = config_setting_get_float(s) };
        return true;
    case CONFIG_TYPE_BOOL:
        *v = (struct val){ .type = VAL_BOOL, .b = config_setting_get_bool(s) != 0 };
        return true;
    case CONFIG_TYPE_STRING:
        if (o && o->created)
            val_from_text(config_setting_get_string(s), want, v);
        else
            *v = (struct val){ .type = VAL_STRING, .s = config_setting_get_string(s) };
        return true;
    default:
        return false;
    }
}

static bool ident_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* path as given if absolute, else joined to the config file's directory. */
static char *resolve_path(const struct loader *L, const char *path)
{
    if (path[0] == '/' || path[0] == '\0' || strcmp(L->dir, ".") == 0)
        return strdup(path);
    return est_asprintf("%s/%s", L->dir, path);
}

/* Checks a K_FILE/K_DIR path on disk; false with a message when unusable. */
static bool path_usable(struct loader *L, const struct key_row *row, const char *path,
                        const struct where *w, const char *ctx)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        errf(L, w, KEY_FMT ": cannot use '%s': %s", KEY_ARGS(ctx, row->name), path,
             strerror(errno));
        return false;
    }
    if (row->type == K_DIR && !S_ISDIR(st.st_mode)) {
        errf(L, w, KEY_FMT ": '%s' is not a directory", KEY_ARGS(ctx, row->name), path);
        return false;
    }
    if (row->type == K_FILE && (S_ISDIR(st.st_mode) || access(path, R_OK) != 0)) {
        errf(L, w, KEY_FMT ": '%s' is not a readable file", KEY_ARGS(ctx, row->name), path);
        return false;
    }
    return true;
}

static bool type_error(struct loader *L, const struct key_row *row, const struct where *w,
                       const char *ctx)
{
    errf(L, w, KEY_FMT ": expected %s", KEY_ARGS(ctx, row->name), type_word(row->type));
    return false;
}

static bool apply_string(struct loader *L, const struct key_row *row, const struct val *v,
                         void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    if (strlen(v->s) > MAX_STRING) {
        errf(L, w, KEY_FMT ": longer than %d bytes", KEY_ARGS(ctx, row->name), MAX_STRING);
        return false;
    }
    if (row->type == K_IDENT && !ident_ok(v->s)) {
        errf(L, w, KEY_FMT ": '%s' is not a valid id (1-%d letters, digits, '-' or '_')",
             KEY_ARGS(ctx, row->name), v->s, MAX_ID);
        return false;
    }
    bool is_path = row->type == K_PATH || row->type == K_FILE || row->type == K_DIR;
    char *copy = is_path ? resolve_path(L, v->s) : strdup(v->s);
    if (!copy) {
        oom(L);
        return false;
    }
    if ((row->type == K_FILE || row->type == K_DIR) && !path_usable(L, row, copy, w, ctx)) {
        free(copy);
        return false;
    }
    char **slot = (char **)((char *)target + row->offset);
    free(*slot);
    *slot = copy;
    return true;
}

static bool apply_enum(struct loader *L, const struct key_row *row, const struct val *v,
                       void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    for (int k = 0; row->names[k]; k++) {
        if (strcmp(row->names[k], v->s) == 0) {
            *(int *)((char *)target + row->offset) = k;
            return true;
        }
    }
    size_t len = 1;
    for (int k = 0; row->names[k]; k++)
        len += strlen(row->names[k]) + 2;
    char *list = calloc(1, len);
    if (!list) {
        oom(L);
        return false;
    }
    for (int k = 0; row->names[k]; k++) {
        if (k)
            strcat(list, ", ");
        strcat(list, row->names[k]);
    }
    errf(L, w, KEY_FMT ": '%s' is not one of %s", KEY_ARGS(ctx, row->name), v->s, list);
    free(list);
    return false;
}

/* Checks a value against its row and stores it into target. */
static bool apply_value(struct loader *L, const struct key_row *row, const struct val *v,
                        void *target, const struct where *w, const char *ctx)
{
    if (row->apply) /* a typed key with a check of its own after the usual ones */
        return row->apply(L, row, v, target, w, ctx);
    char *field = (char *)target + row->offset;
    switch (row->type) {
    case K_STR:
    case K_IDENT:
    case K_PATH:
    case K_FILE:
    case K_DIR:
        return apply_string(L, row, v, target, w, ctx);
    case K_INT:
    case K_U16:
    case K_UINT:
        if (v->type != VAL_INT)
            return type_error(L, row, w, ctx);
        if ((double)v->i < row->min || (double)v->i > row->max) {
            errf(L, w, KEY_FMT ": %lld is out of range %.0f..%.0f", KEY_ARGS(ctx, row->name), v->i,
                 row->min, row->max);
            return false;
        }
        if (row->type == K_INT)
            *(int *)field = (int)v->i;
        else if (row->type == K_UINT)
            *(unsigned *)field = (unsigned)v->i;
        else
            *(uint16_t *)field = (uint16_t)v->i;
        return true;
    case K_DOUBLE: {
        if (v->type != VAL_INT && v->type != VAL_DOUBLE)
            return type_error(L, row, w, ctx);
        double d = v->type == VAL_INT ? (double)v->i : v->d;
        if (!isfinite(d) || d < row->min || d > row->max) {
            errf(L, w, KEY_FMT ": %g is out of range %g..%g", KEY_ARGS(ctx, row->name), d, row->min,
                 row->max);
            return false;
        }
        *(double *)field = d;
        return true;
    }
    case K_BOOL:
        if (v->type != VAL_BOOL)
            return type_error(L, row, w, ctx);
        *(bool *)field = v->b;
        return true;
    case K_ENUM:
        return apply_enum(L, row, v, target, w, ctx);
    case K_PARITY:
        if (v->type != VAL_STRING)
            return type_error(L, row, w, ctx);
        if (strcmp(v->s, "N") && strcmp(v->s, "E") && strcmp(v->s, "O")) {
            errf(L, w, KEY_FMT ": '%s' is not one of N, E, O", KEY_ARGS(ctx, row->name), v->s);
            return false;
        }
        *field = v->s[0];
        return true;
    case K_CUSTOM:
        return row->apply(L, row, v, target, w, ctx);
    case K_SETTING:
        break;
    }
    return false;
}

static size_t find_row(const struct key_row *rows, size_t nrows, const char *name)
{
    size_t r = 0;
    while (r < nrows && strcmp(rows[r].name, name) != 0)
        r++;
    return r;
}

/* Parses a group setting with a key table; returns the rows seen as bits. */
static uint64_t parse_group(struct loader *L, const config_setting_t *group,
                            const struct key_row *rows, size_t nrows, void *target, const char *ctx)
{
    uint64_t seen = 0;
    if (!config_setting_is_group(group)) {
        struct where w = where_of(L, group);
        errf(L, &w, "%s: expected a group { ... }", ctx);
        return 0;
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        struct where w = where_of(L, s);
        size_t r = find_row(rows, nrows, name);
        if (r == nrows) {
            errf(L, &w, KEY_FMT ": unknown key", KEY_ARGS(ctx, name));
            continue;
        }
        seen |= 1ull << r;
        if (rows[r].type == K_SETTING) {
            rows[r].setting(L, s, target, ctx);
            continue;
        }
        struct val v;
        if (!val_from_setting(s, rows[r].type, &v)) {
            errf(L, &w, KEY_FMT ": expected %s, not a group or list", KEY_ARGS(ctx, name),
                 type_word(rows[r].type));
            continue;
        }
        apply_value(L, &rows[r], &v, target, &w, ctx);
    }
    return seen;
}

static bool was_seen(const struct key_row *rows, size_t nrows, uint64_t seen, const char *name)
{
    size_t r = find_row(rows, nrows, name);
    return r < nrows && (seen & (1ull << r));
}

/* Reports each of the NULL-terminated names not seen; false if any. */
static bool require(struct loader *L, const struct key_row *rows, size_t nrows, uint64_t seen,
                    const char *const *names, const struct where *w, const char *ctx)
{
    bool ok = true;
    for (; *names; names++) {
        if (!was_seen(rows, nrows, seen, *names)) {
            errf(L, w, "%s%smissing key '%s'", ctx, ctx[0] ? ": " : "", *names);
            ok = false;
        }
    }
    return ok;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static const char *const category_names[] = { "master", "building", "unit", "amenity", "landscape",
                                              "shop", "public_lighting", "office", NULL };
static const char *const kind_names[] = { "electricity", "water", NULL };
static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const language_names[] = { "zh-CN", "en", NULL };
static const char *const bus_type_names[] = { "tcp", "rtu", "rtu_over_tcp", NULL };
static const char *const protocol_names[] = { "modbus", "dlt645", "cjt188", NULL }; /* enum drv_protocol */
static const char *const word_order_names[] = { "ABCD", "CDAB", "BADC", "DCBA", NULL };
static const char *const role_names[] = { "frontdesk", "engineer", "supervisor", "viewer", NULL };

const char *gw_category_name(enum gw_category c)
{
    return (unsigned)c < NROWS(category_names) - 1 ? category_names[c] : "unknown";
}

int gw_category_from_name(const char *name)
{
    for (int k = 0; category_names[k]; k++)
        if (strcmp(category_names[k], name) == 0)
            return k;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Custom keys                                                         */
/* ------------------------------------------------------------------ */

/* Any zone of the system's time-zone database ("Europe/Berlin", with its
 * daylight saving) or a fixed offset "+08:00", "-5", "UTC+8", "GMT+05:30"
 * (ISO sense: UTC+8 is eight hours ahead). Stored as est_tz names it. */
static bool apply_timezone(struct loader *L, const struct key_row *row, const struct val *v,
                           void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    struct est_tz tz;
    char why[256];
    if (!est_tz_lookup(v->s, &tz, why, sizeof why)) {
        errf(L, w,
             KEY_FMT ": '%s' is not a time zone: %s; use an IANA name (\"Asia/Shanghai\", "
                     "\"Europe/Berlin\", \"UTC\") or a fixed offset like \"+08:00\"",
             KEY_ARGS(ctx, row->name), v->s, why);
        return false;
    }
    char *name = strdup(tz.name);
    if (name == NULL) {
        oom(L);
        return false;
    }
    char **slot = (char **)((char *)target + row->offset);
    free(*slot);
    *slot = name;
    return true;
}

static bool apply_uri(struct loader *L, const struct key_row *row, const struct val *v,
                      void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    if ((strncmp(v->s, "tcp://", 6) != 0 && strncmp(v->s, "ssl://", 6) != 0) || !v->s[6]) {
        errf(L, w, KEY_FMT ": '%s' must be tcp://HOST:PORT or ssl://HOST:PORT",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    return apply_string(L, row, v, target, w, ctx);
}

static bool apply_topic_prefix(struct loader *L, const struct key_row *row, const struct val *v,
                               void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    size_t n = strlen(v->s);
    if (n == 0 || strpbrk(v->s, "+#") || v->s[0] == '/' || v->s[n - 1] == '/') {
        errf(L, w, KEY_FMT ": '%s' must be a topic without wildcards or a leading/trailing '/'",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    return apply_string(L, row, v, target, w, ctx);
}

/* A file holding a secret (a password, password hashes) must be its
 * owner's alone: false with a message when the group or others may read
 * or write it. A missing file passes (other checks report it). */
static bool file_private(struct loader *L, const char *key, const char *path,
                         const struct where *w)
{
    struct stat st;
    if (path == NULL || stat(path, &st) != 0 || (st.st_mode & 077) == 0)
        return true;
    errf(L, w, "%s: '%s' holds secrets but %s may %s it (mode %03o): chmod 600 it", key, path,
         (st.st_mode & 007) ? "everyone" : "its group", (st.st_mode & 066) ? "read or write" : "open",
         (unsigned)(st.st_mode & 0777));
    return false;
}

/* mqtt.password_file and mqtt.key_file: readable, and private. */
static bool apply_secret_file(struct loader *L, const struct key_row *row, const struct val *v,
                              void *target, const struct where *w, const char *ctx)
{
    if (!apply_string(L, row, v, target, w, ctx))
        return false;
    char key[64];
    snprintf(key, sizeof key, "mqtt.%s", row->name);
    return file_private(L, key, *(char **)((char *)target + row->offset), w);
}

/* mqtt.command_roles: a comma-separated list of console roles. */
static bool apply_command_roles(struct loader *L, const struct key_row *row, const struct val *v,
                                void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    static const char *const roles[] = { "frontdesk", "engineer", "supervisor", "viewer" };
    for (const char *p = v->s; *p;) {
        size_t len = strcspn(p, ", ");
        bool known = len == 0;
        for (size_t k = 0; k < NROWS(roles) && !known; k++)
            known = strlen(roles[k]) == len && strncmp(roles[k], p, len) == 0;
        if (!known) {
            errf(L, w, KEY_FMT ": '%.*s' is not a role (frontdesk, engineer, supervisor, viewer)",
                 KEY_ARGS(ctx, row->name), (int)len, p);
            return false;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return apply_string(L, row, v, target, w, ctx);
}

/* A Unix login or gateway user name: [A-Za-z0-9._-], 1..64 bytes. */
static bool account_name_valid(const char *p, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-'))
            return false;
    return true;
}

/* Whether entry (len bytes, "account:user") maps the same account as an
 * entry of list before it. */
static bool account_listed_before(const char *list, const char *entry, size_t account_len)
{
    for (const char *q = list + strspn(list, ", "); q < entry;) {
        size_t len = strcspn(q, ", ");
        if (strcspn(q, ":") == account_len && strncmp(q, entry, account_len) == 0)
            return true;
        q += len;
        q += strspn(q, ", ");
    }
    return false;
}

/* ctl.unix_accounts: "account:user" pairs, comma-separated, each account once. */
static bool apply_unix_accounts(struct loader *L, const struct key_row *row, const struct val *v,
                                void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    for (const char *p = v->s + strspn(v->s, ", "); *p;) {
        size_t len = strcspn(p, ", ");
        const char *colon = memchr(p, ':', len);
        size_t account_len = colon != NULL ? (size_t)(colon - p) : 0;
        if (colon == NULL || !account_name_valid(p, account_len) ||
            !account_name_valid(colon + 1, len - account_len - 1)) {
            errf(L, w, KEY_FMT ": '%.*s' is not ACCOUNT:USER (names of letters, digits, '.', '_', '-')",
                 KEY_ARGS(ctx, row->name), (int)len, p);
            return false;
        }
        if (account_listed_before(v->s, p, account_len)) {
            errf(L, w, KEY_FMT ": account '%.*s' is mapped twice", KEY_ARGS(ctx, row->name),
                 (int)account_len, p);
            return false;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return apply_string(L, row, v, target, w, ctx);
}

/* Stores the path; its mode is checked once the whole config is read
 * (http.require_private_users_file may come later, or the default path). */
static bool apply_users_file(struct loader *L, const struct key_row *row, const struct val *v,
                             void *target, const struct where *w, const char *ctx)
{
    if (!apply_string(L, row, v, target, w, ctx))
        return false;
    free(L->users_file_at);
    L->users_file_at = malloc(sizeof *L->users_file_at);
    if (L->users_file_at)
        *L->users_file_at = *w;
    return true;
}

static bool apply_listen(struct loader *L, const struct key_row *row, const struct val *v,
                         void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    if (v->s[0]) {
        const char *colon = strrchr(v->s, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == v->s || !colon[1] || *end || port < 1 || port > 65535) {
            errf(L, w, KEY_FMT ": '%s' must be HOST:PORT (port 1..65535), or \"\" to disable",
                 KEY_ARGS(ctx, row->name), v->s);
            return false;
        }
    }
    return apply_string(L, row, v, target, w, ctx);
}

static bool apply_baud(struct loader *L, const struct key_row *row, const struct val *v,
                       void *target, const struct where *w, const char *ctx)
{
    static const long long rates[] = { 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200 };
    if (v->type != VAL_INT)
        return type_error(L, row, w, ctx);
    for (size_t k = 0; k < NROWS(rates); k++) {
        if (rates[k] == v->i) {
            ((struct gw_bus_config *)target)->baud = (int)v->i;
            return true;
        }
    }
    errf(L, w, KEY_FMT ": %lld is not a standard rate (1200, 2400, 4800, 9600, 19200, 38400, "
               "57600, 115200)", KEY_ARGS(ctx, row->name), v->i);
    return false;
}

static bool apply_occupancy(struct loader *L, const struct key_row *row, const struct val *v,
                            void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    bool vacant = strcmp(v->s, "vacant") == 0;
    if (!vacant && strcmp(v->s, "occupied") != 0) {
        errf(L, w, KEY_FMT ": '%s' is not one of vacant, occupied", KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    ((struct gw_unit_config *)target)->vacant = vacant;
    return true;
}

/* Bus by name -> index (size_t at row->offset). */
static bool apply_bus(struct loader *L, const struct key_row *row, const struct val *v,
                      void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    for (size_t b = 0; b < L->cfg->nbuses; b++) {
        if (L->cfg->buses[b].name && strcmp(L->cfg->buses[b].name, v->s) == 0) {
            *(size_t *)((char *)target + row->offset) = b;
            return true;
        }
    }
    errf(L, w, KEY_FMT ": no bus named '%s' in buses", KEY_ARGS(ctx, row->name), v->s);
    return false;
}

static bool apply_driver(struct loader *L, const struct key_row *row, const struct val *v,
                         void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    const struct drv_model *model = drv_model_find(v->s);
    if (!model) {
        size_t len = 1, n = drv_model_count();
        for (size_t k = 0; k < n; k++)
            len += strlen(drv_model_at(k)->name) + 2;
        char *list = calloc(1, len);
        if (!list) {
            oom(L);
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            if (k)
                strcat(list, ", ");
            strcat(list, drv_model_at(k)->name);
        }
        errf(L, w, KEY_FMT ": unknown driver '%s' (known: %s)", KEY_ARGS(ctx, row->name), v->s,
             list);
        free(list);
        return false;
    }
    *(const struct drv_model **)((char *)target + row->offset) = model;
    return true;
}

static bool apply_unit(struct loader *L, const struct key_row *row, const struct val *v,
                       void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    int u = gw_config_unit_index(L->cfg, v->s);
    if (u < 0) {
        errf(L, w, KEY_FMT ": no unit '%s' in units", KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    ((struct gw_meter_config *)target)->unit = u;
    return true;
}

/* A serial is digits fitting a uint32 (what the device reports); given as
 * a string or an integer, stored as its decimal text. */
/* A DL/T 645 or CJ/T 188 address: digits only, kept as text (leading zeros
 * matter); its length is checked against the bus's protocol later. */
static bool apply_meter_address(struct loader *L, const struct key_row *row, const struct val *v,
                                void *target, const struct where *w, const char *ctx)
{
    struct gw_meter_config *m = target;
    if (v->type != VAL_STRING || !v->s[0] || strspn(v->s, "0123456789") != strlen(v->s)) {
        errf(L, w, KEY_FMT ": expected the meter's address as a string of digits "
                   "(\"000012345678\")", KEY_ARGS(ctx, row->name));
        return false;
    }
    char *copy = strdup(v->s);
    if (!copy) {
        oom(L);
        return false;
    }
    free(m->address);
    m->address = copy;
    return true;
}

static bool apply_serial(struct loader *L, const struct key_row *row, const struct val *v,
                         void *target, const struct where *w, const char *ctx)
{
    struct gw_meter_config *m = target;
    char text[24];
    if (v->type == VAL_INT && v->i >= 0 && v->i <= UINT32_MAX) {
        snprintf(text, sizeof text, "%lld", v->i);
    } else if (v->type == VAL_STRING && v->s[0] && strspn(v->s, "0123456789") == strlen(v->s) &&
               strlen(v->s) <= 10 && strtoull(v->s, NULL, 10) <= UINT32_MAX) {
        snprintf(text, sizeof text, "%llu", strtoull(v->s, NULL, 10));
    } else {
        errf(L, w, KEY_FMT ": expected a serial number: digits, at most %lu",
             KEY_ARGS(ctx, row->name), (unsigned long)UINT32_MAX);
        return false;
    }
    char *copy = strdup(text);
    if (!copy) {
        oom(L);
        return false;
    }
    free(m->serial);
    m->serial = copy;
    return true;
}

/* "HH:MM" -> minutes after midnight, or -1. */
static int parse_hhmm(const char *s)
{
    if (!(s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' &&
          s[3] >= '0' && s[3] <= '5' && s[4] >= '0' && s[4] <= '9'))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    return h > 23 ? -1 : h * 60 + (s[3] - '0') * 10 + (s[4] - '0');
}

static bool apply_quiet_window(struct loader *L, const struct key_row *row, const struct val *v,
                               void *target, const struct where *w, const char *ctx)
{
    struct gw_meter_config *m = target;
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    int start = strlen(v->s) == 11 && v->s[5] == '-' ? parse_hhmm(v->s) : -1;
    int end = start >= 0 ? parse_hhmm(v->s + 6) : -1;
    if (start < 0 || end < 0 || start == end) {
        errf(L, w, KEY_FMT ": '%s' must be \"HH:MM-HH:MM\" (local time, start != end)",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    m->quiet_start_min = start;
    m->quiet_end_min = end;
    return true;
}

static bool apply_backup_at(struct loader *L, const struct key_row *row, const struct val *v,
                            void *target, const struct where *w, const char *ctx)
{
    struct gw_gateway_config *g = target;
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    int at = strlen(v->s) == 5 ? parse_hhmm(v->s) : -1;
    if (at < 0) {
        errf(L, w, KEY_FMT ": '%s' must be \"HH:MM\" (site time)", KEY_ARGS(ctx, row->name),
             v->s);
        return false;
    }
    g->backup_at_min = at;
    return true;
}

static bool apply_severity(struct loader *L, const struct key_row *row, const struct val *v,
                           void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    int s = rule_severity_from_name(v->s);
    if (s < 0) {
        errf(L, w, KEY_FMT ": '%s' is not one of info, minor, major, critical",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    *(int *)((char *)target + row->offset) = s;
    return true;
}

/* A list or array of strings -> a malloc'd array of copies. valid: NULL or
 * a NULL-terminated list of accepted words. */
static void parse_string_list(struct loader *L, const config_setting_t *s, const char *ctx,
                              const char *const *valid, char ***out, size_t *nout)
{
    struct where w = where_of(L, s);
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s)) {
        errf(L, &w, "%s: expected a list of strings [ \"...\", ... ]", ctx);
        return;
    }
    size_t n = (size_t)config_setting_length(s);
    char **items = calloc(n ? n : 1, sizeof *items);
    if (!items) {
        oom(L);
        return;
    }
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *text = config_setting_get_string(e);
        struct where ew = where_of(L, e);
        if (!text) {
            errf(L, &ew, "%s[%zu]: expected a string", ctx, i);
            continue;
        }
        bool ok = !valid;
        for (size_t k = 0; valid && valid[k]; k++)
            ok = ok || strcmp(valid[k], text) == 0;
        if (!ok) {
            errf(L, &ew, "%s[%zu]: '%s' is not a role (frontdesk, engineer, supervisor, viewer)",
                 ctx, i, text);
            continue;
        }
        if (!(items[got] = strdup(text))) {
            oom(L);
            break;
        }
        got++;
    }
    for (size_t i = 0; i < *nout; i++)
        free((*out)[i]);
    free(*out);
    *out = items;
    *nout = got;
}

static void setting_escalation(struct loader *L, const config_setting_t *s, void *target,
                               const char *ctx)
{
    struct gw_workorder_config *wo = target;
    struct where w = where_of(L, s);
    if (!config_setting_is_group(s)) {
        errf(L, &w, "%s.escalation: expected a group { roles = [...]; contacts = [...]; }", ctx);
        return;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        if (strcmp(name, "roles") == 0) {
            parse_string_list(L, e, "workorders.escalation.roles", role_names,
                              &wo->escalation_roles, &wo->nescalation_roles);
        } else if (strcmp(name, "contacts") == 0) {
            parse_string_list(L, e, "workorders.escalation.contacts", NULL,
                              &wo->escalation_contacts, &wo->nescalation_contacts);
        } else {
            struct where ew = where_of(L, e);
            errf(L, &ew, "%s.escalation.%s: unknown key", ctx, name);
        }
    }
}

static void setting_zone_names(struct loader *L, const config_setting_t *s, void *target,
                               const char *ctx)
{
    L->zone_names = s; /* handled once the panel's zone count is known */
}

/* ------------------------------------------------------------------ */
/* Section tables                                                      */
/* ------------------------------------------------------------------ */

#define GW(field) offsetof(struct gw_gateway_config, field)
static const struct key_row gateway_rows[] = {
    { KEY("id", K_IDENT, GW(id)) },
    { KEY("site", K_IDENT, GW(site)) },
    { KEY("data_dir", K_PATH, GW(data_dir)) },
    { KEY("models_dir", K_DIR, GW(models_dir)) },
    { KEY("timezone", K_CUSTOM, GW(timezone)), .apply = apply_timezone },
    { KEY("log_level", K_ENUM, GW(log_level)), .names = log_level_names },
    { KEY("language", K_ENUM, GW(language)), .names = language_names },
    { KEY("integrity_check_s", K_INT, GW(integrity_check_s)), .min = 0, .max = 604800 },
    { KEY("backup_dir", K_PATH, GW(backup_dir)) },
    { KEY("backup_at", K_CUSTOM, GW(backup_at_min)), .apply = apply_backup_at },
    { KEY("backup_keep", K_INT, GW(backup_keep)), .min = 0, .max = 3650 },
};

#define MQ(field) offsetof(struct gw_mqtt_config, field)
static const struct key_row mqtt_rows[] = {
    { KEY("uri", K_CUSTOM, MQ(uri)), .apply = apply_uri },
    { KEY("client_id", K_STR, MQ(client_id)) },
    { KEY("username", K_STR, MQ(username)) },
    { KEY("password_file", K_FILE, MQ(password_file)), .apply = apply_secret_file },
    { KEY("ca_file", K_FILE, MQ(ca_file)) },
    { KEY("cert_file", K_FILE, MQ(cert_file)) },
    { KEY("key_file", K_FILE, MQ(key_file)), .apply = apply_secret_file },
    { KEY("topic_prefix", K_CUSTOM, MQ(topic_prefix)), .apply = apply_topic_prefix },
    { KEY("qos_readings", K_INT, MQ(qos_readings)), .min = 0, .max = 2 },
    { KEY("qos_events", K_INT, MQ(qos_events)), .min = 0, .max = 2 },
    { KEY("outbox_limit_mb", K_DOUBLE, MQ(outbox_limit_mb)), .min = 0, .max = 65536 },
    { KEY("keepalive_s", K_INT, MQ(keepalive_s)), .min = 5, .max = 3600 },
    { KEY("command_roles", K_CUSTOM, MQ(command_roles)), .apply = apply_command_roles },
    { KEY("commands_by_account", K_BOOL, MQ(commands_by_account)) },
};

#define BUS(field) offsetof(struct gw_bus_config, field)
static const struct key_row bus_rows[] = {
    { KEY("name", K_IDENT, BUS(name)) },
    { KEY("type", K_ENUM, BUS(type)), .names = bus_type_names },
    { KEY("host", K_STR, BUS(host)) },
    { KEY("port", K_INT, BUS(port)), .min = 1, .max = 65535 },
    { KEY("device", K_STR, BUS(device)) },
    { KEY("baud", K_CUSTOM, BUS(baud)), .apply = apply_baud },
    { KEY("parity", K_PARITY, BUS(parity)) },
    { KEY("data_bits", K_INT, BUS(data_bits)), .min = 7, .max = 8 },
    { KEY("stop_bits", K_INT, BUS(stop_bits)), .min = 1, .max = 2 },
    { KEY("timeout_ms", K_INT, BUS(timeout_ms)), .min = 0, .max = 60000 },
    { KEY("retries", K_INT, BUS(retries)), .min = 0, .max = 10 },
    { KEY("poll_interval_ms", K_INT, BUS(poll_interval_ms)), .min = 100, .max = 86400000 },
    { KEY("slave_switch_delay_ms", K_INT, BUS(slave_switch_delay_ms)), .min = 0, .max = 10000 },
    { KEY("request_gap_ms", K_INT, BUS(request_gap_ms)), .min = 0, .max = 10000 },
    { KEY("pipeline_depth", K_INT, BUS(pipeline_depth)), .min = 1, .max = DRV_LINK_MAX_IN_FLIGHT },
    { KEY("protocol", K_ENUM, BUS(protocol)), .names = protocol_names },
};

#define UNIT(field) offsetof(struct gw_unit_config, field)
static const struct key_row unit_rows[] = {
    { KEY("id", K_IDENT, UNIT(id)) },
    { KEY("building", K_STR, UNIT(building)) },
    { KEY("occupancy", K_CUSTOM, UNIT(vacant)), .apply = apply_occupancy },
};

/* Also the CSV columns. */
#define MET(field) offsetof(struct gw_meter_config, field)
static const struct key_row meter_rows[] = {
    { KEY("id", K_IDENT, MET(id)) },
    { KEY("bus", K_CUSTOM, MET(bus)), .apply = apply_bus },
    { KEY("slave", K_INT, MET(slave)), .min = 1, .max = 247 },
    { KEY("driver", K_CUSTOM, MET(model)), .apply = apply_driver },
    { KEY("kind", K_ENUM, MET(kind)), .names = kind_names },
    { KEY("category", K_ENUM, MET(category)), .names = category_names },
    { KEY("unit", K_CUSTOM, MET(unit)), .apply = apply_unit },
    { KEY("building", K_STR, MET(building)) },
    { KEY("location", K_STR, MET(location)) },
    { KEY("parent", K_IDENT, MET(parent_id)) },
    { KEY("serial", K_CUSTOM, MET(serial)), .apply = apply_serial },
    { KEY("poll_interval_ms", K_INT, MET(poll_interval_ms)), .min = 100, .max = 86400000 },
    { KEY("valve", K_BOOL, MET(valve)) },
    { KEY("word_order", K_ENUM, MET(options.word_order)), .names = word_order_names },
    { KEY("function", K_INT, MET(options.function)), .min = 3, .max = 4 },
    { KEY("address_base", K_INT, MET(options.address_base)), .min = -1, .max = 1 },
    { KEY("max_read_regs", K_U16, MET(options.max_read_regs)), .min = 1, .max = DRV_MAX_READ_REGS },
    { KEY("serial_every", K_UINT, MET(options.slow_every)), .min = 1, .max = 100000 },
    { KEY("rated_power_w", K_DOUBLE, MET(rated_power_w)), .min = 1, .max = 1e7 },
    { KEY("export_expected", K_BOOL, MET(export_expected)) },
    { KEY("quiet_window", K_CUSTOM, 0), .apply = apply_quiet_window },
    { KEY("address", K_CUSTOM, MET(address)), .apply = apply_meter_address },
};

#define PAN(field) offsetof(struct gw_panel_config, field)
static const struct key_row panel_rows[] = {
    { KEY("id", K_IDENT, PAN(id)) },
    { KEY("bus", K_CUSTOM, PAN(bus)), .apply = apply_bus },
    { KEY("slave", K_INT, PAN(slave)), .min = 1, .max = 247 },
    { KEY("driver", K_CUSTOM, PAN(model)), .apply = apply_driver },
    { KEY("zones", K_U16, PAN(nzones)), .min = 1, .max = DRV_MAX_ZONES },
    { KEY("zone_names", K_SETTING, 0), .setting = setting_zone_names },
    { KEY("location", K_STR, PAN(location)) },
    { KEY("poll_interval_ms", K_INT, PAN(poll_interval_ms)), .min = 100, .max = 86400000 },
    { KEY("word_order", K_ENUM, PAN(options.word_order)), .names = word_order_names },
    { KEY("function", K_INT, PAN(options.function)), .min = 3, .max = 4 },
    { KEY("address_base", K_INT, PAN(options.address_base)), .min = -1, .max = 1 },
    { KEY("max_read_regs", K_U16, PAN(options.max_read_regs)), .min = 1, .max = DRV_MAX_READ_REGS },
    { KEY("serial_every", K_UINT, PAN(options.slow_every)), .min = 1, .max = 100000 },
};

/* One zone_names entry before it is copied into the panel. */
struct zone_entry {
    int zone;
    char *name;
    char *location;
    int address;
};
#define ZON(field) offsetof(struct zone_entry, field)
static const struct key_row zone_rows[] = {
    { KEY("zone", K_INT, ZON(zone)), .min = 1, .max = DRV_MAX_ZONES },
    { KEY("name", K_STR, ZON(name)) },
    { KEY("location", K_STR, ZON(location)) },
    { KEY("address", K_INT, ZON(address)), .min = 0, .max = 65535 },
};

#define WO(field) offsetof(struct gw_workorder_config, field)
static const struct key_row workorder_rows[] = {
    { KEY("arrive_within_s", K_INT, WO(arrive_within_s)), .min = 60, .max = 7 * 86400 },
    { KEY("resolve_within_s", K_INT, WO(resolve_within_s)), .min = 600, .max = 366 * 86400 },
    { KEY("unconfirmed_after_s", K_INT, WO(unconfirmed_after_s)), .min = 60, .max = 7 * 86400 },
    { KEY("escalation", K_SETTING, 0), .setting = setting_escalation },
};

static const char *const metrics_access_names[] = { "signed_in", "public", "off", NULL };
_Static_assert(sizeof(enum gw_metrics_access) == sizeof(int), "enum size");

#define HTTP(field) offsetof(struct gw_http_config, field)
static const struct key_row http_rows[] = {
    { KEY("listen", K_CUSTOM, HTTP(listen)), .apply = apply_listen },
    { KEY("users_file", K_PATH, HTTP(users_file)), .apply = apply_users_file }, /* estate-ctl user add may create it */
    { KEY("require_private_users_file", K_BOOL, HTTP(require_private_users_file)) },
    { KEY("static_dir", K_DIR, HTTP(static_dir)) },
    { KEY("session_ttl_s", K_INT, HTTP(session_ttl_s)), .min = 60, .max = 30 * 86400 },
    { KEY("hosts", K_STR, HTTP(hosts)) },
    { KEY("metrics", K_ENUM, HTTP(metrics)), .names = metrics_access_names },
};

#define RET(field) offsetof(struct gw_retention_config, field)
static const struct key_row retention_rows[] = {
    { KEY("raw_readings_days", K_INT, RET(raw_readings_days)), .min = 1, .max = 3650 },
    { KEY("patrol_days", K_INT, RET(patrol_days)), .min = 730, .max = 36500 },
};

#define CTL(field) offsetof(struct gw_ctl_config, field)
static const struct key_row ctl_rows[] = {
    { KEY("unix_accounts", K_CUSTOM, CTL(unix_accounts)), .apply = apply_unix_accounts },
};

/* ------------------------------------------------------------------ */
/* Step 1: defaults                                                    */
/* ------------------------------------------------------------------ */

static bool set_defaults(struct gw_config *c)
{
    c->gateway.id = strdup("gw1");
    c->gateway.site = strdup("site");
    c->gateway.data_dir = strdup("/var/lib/estate-gw");
    c->gateway.timezone = strdup("Asia/Shanghai");
    c->gateway.integrity_check_s = 3600;
    c->gateway.backup_at_min = 3 * 60 + 30;
    c->gateway.backup_keep = 14;
    c->gateway.log_level = GW_LOG_INFO;
    c->gateway.language = GW_LANG_ZH_CN;
    c->mqtt.uri = strdup("tcp://127.0.0.1:1883");
    c->mqtt.qos_readings = 0;
    c->mqtt.qos_events = 1;
    c->mqtt.outbox_limit_mb = 64;
    c->mqtt.keepalive_s = 15;
    rule_config_defaults(&c->rules);
    c->workorders.arrive_within_s = 1200;
    c->workorders.resolve_within_s = 604800;
    c->workorders.unconfirmed_after_s = 3600;
    c->http.listen = strdup("127.0.0.1:8080");
    c->http.session_ttl_s = 43200;
    c->http.metrics = GW_METRICS_SIGNED_IN;
    c->http.require_private_users_file = true;
    c->retention.raw_readings_days = 30;
    c->retention.patrol_days = 730;
    return c->gateway.id && c->gateway.site && c->gateway.data_dir && c->gateway.timezone &&
           c->mqtt.uri && c->http.listen;
}

static void bus_defaults(struct gw_bus_config *b)
{
    memset(b, 0, sizeof *b);
    b->type = GW_BUS_TCP;
    b->port = 502;
    b->baud = 9600;
    b->parity = 'N';
    b->data_bits = 8;
    b->stop_bits = 1;
    b->retries = 1;
    b->poll_interval_ms = 1000;
    b->pipeline_depth = 1;
}

static void meter_defaults(struct gw_meter_config *m)
{
    memset(m, 0, sizeof *m);
    m->bus = SIZE_MAX;
    m->unit = -1;
    m->parent = -1;
    m->quiet_start_min = m->quiet_end_min = -1;
    drv_device_options_init(&m->options);
}

static void panel_defaults(struct gw_panel_config *p)
{
    memset(p, 0, sizeof *p);
    p->bus = SIZE_MAX;
    drv_device_options_init(&p->options);
}

/* ------------------------------------------------------------------ */
/* Step 2: parse                                                       */
/* ------------------------------------------------------------------ */

/* A list section: its length, or -1 (reported) when it is not a list. */
static int list_length(struct loader *L, const config_setting_t *s, const char *name)
{
    if (config_setting_is_list(s) || (config_setting_is_array(s) && config_setting_length(s) == 0))
        return config_setting_length(s);
    struct where w = where_of(L, s);
    errf(L, &w, "%s: expected a list ( { ... }, { ... } )", name);
    return -1;
}

/* Allocates n zeroed elements of size each (at least one). */
static void *alloc_list(struct loader *L, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        oom(L);
    return p;
}

/* Each "FILE:LINE: message" line of a model loader's report as an error. */
static void model_errors(struct loader *L, const char *text)
{
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *line = strndup(p, n);
        if (!line) {
            oom(L);
            return;
        }
        L->nerrors++;
        errors_push(L->errors, line);
        p = end ? end + 1 : NULL;
    }
}

/* The site's models (gateway.models_dir) before any meter names a driver. */
static void load_site_models(struct loader *L)
{
    if (drv_models_shipped_errors())
        model_errors(L, drv_models_shipped_errors());
    if (!L->cfg->gateway.models_dir)
        return;
    char *errors = NULL;
    est_err err = drv_models_add_dir(L->cfg->gateway.models_dir, &errors);
    if (errors)
        model_errors(L, errors);
    else if (err == EST_ERR_NOMEM)
        oom(L);
    free(errors);
}

static void parse_gateway(struct loader *L, const config_setting_t *s)
{
    parse_group(L, s, gateway_rows, NROWS(gateway_rows), &L->cfg->gateway, "gateway");
    load_site_models(L);
}

static void parse_mqtt(struct loader *L, const config_setting_t *s)
{
    L->mqtt = s;
    parse_group(L, s, mqtt_rows, NROWS(mqtt_rows), &L->cfg->mqtt, "mqtt");
}

static void parse_buses(struct loader *L, const config_setting_t *s)
{
    int n = list_length(L, s, "buses");
    if (n < 0 || !(L->cfg->buses = alloc_list(L, (size_t)n, sizeof *L->cfg->buses)))
        return;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_bus_config *b = &L->cfg->buses[L->cfg->nbuses++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "buses[%d]", i);
        bus_defaults(b);
        uint64_t seen = parse_group(L, e, bus_rows, NROWS(bus_rows), b, ctx);
        struct where w = where_of(L, e);
        b->file = where_file(L, &w);
        b->line = w.line;
        if (!b->file)
            oom(L);
        static const char *const required[] = { "name", "type", NULL };
        if (!require(L, bus_rows, NROWS(bus_rows), seen, required, &w, ctx))
            continue;
        if (b->type == GW_BUS_TCP && !b->host)
            errf(L, &w, "bus %s: a tcp bus needs host", b->name);
        if (b->type == GW_BUS_RTU_OVER_TCP && !b->host)
            errf(L, &w, "bus %s: an rtu_over_tcp bus needs host (the converter)", b->name);
        if (b->type == GW_BUS_RTU && !b->device)
            errf(L, &w, "bus %s: an rtu bus needs device", b->name);
        if (b->pipeline_depth > 1 && (b->type == GW_BUS_RTU || b->type == GW_BUS_RTU_OVER_TCP))
            errf(L, &w, "bus %s: pipeline_depth applies to tcp buses (a serial line carries one "
                        "request at a time)", b->name);
        if (b->pipeline_depth > 1 && (b->request_gap_ms > 0 || b->slave_switch_delay_ms > 0))
            errf(L, &w, "bus %s: pipeline_depth needs request_gap_ms and slave_switch_delay_ms "
                        "at 0 (requests in flight cannot be paced)", b->name);
        if (b->protocol != DRV_PROTO_MODBUS) {
            if (b->type == GW_BUS_TCP)
                errf(L, &w, "bus %s: protocol %s runs on an rtu bus (a serial line) or an "
                            "rtu_over_tcp bus (a serial converter in transparent mode)",
                     b->name, protocol_names[b->protocol]);
            /* The national protocols' usual line: 2400 baud, even parity. */
            if (!was_seen(bus_rows, NROWS(bus_rows), seen, "baud"))
                b->baud = 2400;
            if (!was_seen(bus_rows, NROWS(bus_rows), seen, "parity"))
                b->parity = 'E';
        }
    }
}

static void parse_units(struct loader *L, const config_setting_t *s)
{
    int n = list_length(L, s, "units");
    if (n < 0 || !(L->cfg->units = alloc_list(L, (size_t)n, sizeof *L->cfg->units)))
        return;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_unit_config *u = &L->cfg->units[L->cfg->nunits++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "units[%d]", i);
        uint64_t seen = parse_group(L, e, unit_rows, NROWS(unit_rows), u, ctx);
        struct where w = where_of(L, e);
        if (!(u->file = where_file(L, &w)))
            oom(L);
        u->line = w.line;
        static const char *const required[] = { "id", NULL };
        require(L, unit_rows, NROWS(unit_rows), seen, required, &w, ctx);
    }
}

/* Checks one parsed meter (list or CSV) on its own; fills model defaults. */
/* A meter on a DL/T 645 or CJ/T 188 bus: addressed by its printed
 * address, read by a model of the bus's protocol. */
static void national_meter_finish(struct loader *L, struct gw_meter_config *m, uint64_t seen,
                                  const struct where *w)
{
    const struct gw_bus_config *bus = &L->cfg->buses[m->bus];
    const char *protocol = protocol_names[bus->protocol];
    size_t nbytes = drv_cn_address_len(bus->protocol);
    if (was_seen(meter_rows, NROWS(meter_rows), seen, "slave"))
        errf(L, w, "meter %s: bus %s speaks %s: give the meter's address, not slave", m->id,
             bus->name, protocol);
    if (!m->address) {
        if (!was_seen(meter_rows, NROWS(meter_rows), seen, "address")) /* else reported */
            errf(L, w, "meter %s: bus %s speaks %s: the meter needs address (%zu digits)",
                 m->id, bus->name, protocol, 2 * nbytes);
    } else if (strlen(m->address) != 2 * nbytes ||
             cn_address_parse(m->address, nbytes, m->wire_address) != EST_OK)
        errf(L, w, "meter %s: address '%s' must be %zu digits on a %s bus", m->id, m->address,
             2 * nbytes, protocol);
    if (m->model->protocol != bus->protocol)
        errf(L, w, "meter %s: driver '%s' speaks %s but bus %s speaks %s", m->id,
             m->model->name, protocol_names[m->model->protocol], bus->name, protocol);
}

static void meter_finish(struct loader *L, struct gw_meter_config *m, uint64_t seen,
                         const struct where *w, const char *ctx)
{
    static const char *const required[] = { "id", "bus", "slave", "driver", "category", NULL };
    static const char *const national_required[] = { "id", "bus", "driver", "category", NULL };
    bool national = m->bus != SIZE_MAX && L->cfg->buses[m->bus].protocol != DRV_PROTO_MODBUS;
    if (!require(L, meter_rows, NROWS(meter_rows), seen, national ? national_required : required,
                 w, ctx) ||
        !m->model || m->bus == SIZE_MAX) /* an unknown bus was reported where it was named */
        return;
    const struct drv_model *model = m->model;
    if (national) {
        national_meter_finish(L, m, seen, w);
    } else if (model->protocol != DRV_PROTO_MODBUS) {
        errf(L, w, "meter %s: driver '%s' speaks %s but bus %s speaks modbus", m->id,
             model->name, protocol_names[model->protocol], L->cfg->buses[m->bus].name);
        return;
    } else if (m->address) {
        errf(L, w, "meter %s: address is for meters on a dlt645 or cjt188 bus; bus %s speaks "
                   "modbus (use slave)", m->id, L->cfg->buses[m->bus].name);
    }
    if (model->kind == DRV_KIND_FIRE_PANEL) {
        errf(L, w, "meter %s: driver '%s' is a fire panel; list it under fire_panels", m->id,
             model->name);
        return;
    }
    if (!was_seen(meter_rows, NROWS(meter_rows), seen, "kind"))
        m->kind = model->kind;
    else if (m->kind != model->kind)
        errf(L, w, "meter %s: kind %s does not match driver '%s' (%s)", m->id, kind_names[m->kind],
             model->name, kind_names[model->kind]);
    if (!was_seen(meter_rows, NROWS(meter_rows), seen, "export_expected"))
        m->export_expected = model->export_expected;
    if (!m->building && m->unit >= 0 && L->cfg->units[m->unit].building) {
        m->building = L->cfg->units[m->unit].building; /* shared: units outlive meters */
        m->building_from_unit = true;
    }
    if (m->valve && !model->valve)
        errf(L, w, "meter %s: valve = true but driver '%s' has no valve control", m->id,
             model->name);
    if (model->protocol != DRV_PROTO_MODBUS)
        return; /* read by data item, not by a register plan */
    struct drv_plan *plan = NULL;
    est_err e = drv_plan_build(model, &m->options, &plan);
    if (e == EST_ERR_NOMEM)
        oom(L);
    else if (e != EST_OK)
        errf(L, w, "meter %s: driver '%s' cannot read it with these options "
                   "(function, word_order, address_base, max_read_regs): %s",
             m->id, model->name, est_strerror(e));
    drv_plan_free(plan);
}

static void parse_meters(struct loader *L, const config_setting_t *s)
{
    int n = list_length(L, s, "meters");
    if (n < 0 || !(L->cfg->meters = alloc_list(L, (size_t)n, sizeof *L->cfg->meters)))
        return;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_meter_config *m = &L->cfg->meters[L->cfg->nmeters++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "meters[%d]", i);
        meter_defaults(m);
        uint64_t seen = parse_group(L, e, meter_rows, NROWS(meter_rows), m, ctx);
        struct where w = where_of(L, e);
        if (!(m->file = where_file(L, &w)))
            oom(L);
        m->line = w.line;
        meter_finish(L, m, seen, &w, ctx);
    }
}

/* zone_names entries onto the panel's zones; marks zones given an address. */
static void parse_zone_names(struct loader *L, struct gw_panel_config *p, bool *addressed,
                             const char *ctx)
{
    const config_setting_t *s = L->zone_names;
    char lctx[64];
    snprintf(lctx, sizeof lctx, "%s.zone_names", ctx);
    int n = list_length(L, s, lctx);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct zone_entry z = { .zone = 0, .address = -1 };
        char zctx[80];
        snprintf(zctx, sizeof zctx, "%s[%d]", lctx, i);
        uint64_t seen = parse_group(L, e, zone_rows, NROWS(zone_rows), &z, zctx);
        struct where w = where_of(L, e);
        static const char *const required[] = { "zone", NULL };
        if (!require(L, zone_rows, NROWS(zone_rows), seen, required, &w, zctx)) {
        } else if (z.zone < 1 || z.zone > p->nzones) {
            errf(L, &w, "%s.zone: %d is beyond zones = %u", zctx, z.zone, (unsigned)p->nzones);
        } else if (p->zones[z.zone - 1].name || p->zones[z.zone - 1].location ||
                   addressed[z.zone - 1]) {
            errf(L, &w, "%s.zone: zone %d is described twice", zctx, z.zone);
        } else {
            struct gw_zone_config *zc = &p->zones[z.zone - 1];
            zc->name = z.name;
            zc->location = z.location;
            z.name = z.location = NULL;
            if (z.address >= 0) {
                zc->address = p->zone_addresses[z.zone - 1] = (uint16_t)z.address;
                addressed[z.zone - 1] = true;
            }
        }
        free(z.name);
        free(z.location);
    }
}

/* Zones and their wire addresses: the layout's defaults, then zone_names. */
static void panel_zones(struct loader *L, struct gw_panel_config *p, const struct where *w,
                        const char *ctx)
{
    const struct drv_panel_layout *layout = p->model->panel;
    p->zones = alloc_list(L, p->nzones, sizeof *p->zones);
    p->zone_addresses = alloc_list(L, p->nzones, sizeof *p->zone_addresses);
    bool *addressed = alloc_list(L, p->nzones, sizeof *addressed);
    if (!p->zones || !p->zone_addresses || !addressed) {
        free(addressed);
        return;
    }
    struct drv_device_options defaults = p->options;
    defaults.zone_addresses = NULL;
    defaults.nzones = p->nzones < layout->max_zones ? p->nzones : layout->max_zones;
    for (uint16_t z = 0; z < p->nzones && z < layout->max_zones; z++) {
        p->zone_addresses[z] = drv_zone_address(p->model, &defaults, z);
        p->zones[z].address = p->zone_addresses[z];
        addressed[z] = false;
    }
    if (L->zone_names)
        parse_zone_names(L, p, addressed, ctx);
    for (uint16_t z = layout->max_zones; z < p->nzones; z++) {
        if (!addressed[z]) {
            errf(L, w, "fire panel %s: zones = %u but driver '%s' lays out %u zones; "
                       "give zone %u an address in zone_names",
                 p->id, (unsigned)p->nzones, p->model->name, (unsigned)layout->max_zones,
                 (unsigned)z + 1);
            break;
        }
    }
    free(addressed);
    p->options.nzones = p->nzones;
    p->options.zone_addresses = p->zone_addresses;
}

static void panel_finish(struct loader *L, struct gw_panel_config *p, uint64_t seen,
                         const struct where *w, const char *ctx)
{
    static const char *const required[] = { "id", "bus", "slave", "driver", "zones", NULL };
    if (!require(L, panel_rows, NROWS(panel_rows), seen, required, w, ctx) || !p->model ||
        !p->nzones)
        return;
    if (p->model->kind != DRV_KIND_FIRE_PANEL || !p->model->panel) {
        errf(L, w, "fire panel %s: driver '%s' is not a fire panel", p->id, p->model->name);
        return;
    }
    panel_zones(L, p, w, ctx);
    if (!p->zone_addresses)
        return;
    struct drv_plan *plan = NULL;
    est_err e = drv_plan_build(p->model, &p->options, &plan);
    if (e == EST_ERR_NOMEM)
        oom(L);
    else if (e != EST_OK)
        errf(L, w, "fire panel %s: driver '%s' cannot read it with these options: %s", p->id,
             p->model->name, est_strerror(e));
    drv_plan_free(plan);
}

static void parse_panels(struct loader *L, const config_setting_t *s)
{
    int n = list_length(L, s, "fire_panels");
    if (n < 0 || !(L->cfg->panels = alloc_list(L, (size_t)n, sizeof *L->cfg->panels)))
        return;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_panel_config *p = &L->cfg->panels[L->cfg->npanels++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "fire_panels[%d]", i);
        panel_defaults(p);
        L->zone_names = NULL;
        uint64_t seen = parse_group(L, e, panel_rows, NROWS(panel_rows), p, ctx);
        struct where w = where_of(L, e);
        if (!(p->file = where_file(L, &w)))
            oom(L);
        p->line = w.line;
        panel_finish(L, p, seen, &w, ctx);
        L->zone_names = NULL;
    }
}

/* A rule parameter as a key row, so it shares the checks above. */
static struct key_row rule_param_row(const struct rule_param *p)
{
    struct key_row row = { .name = p->name, .offset = p->offset, .min = p->min, .max = p->max };
    switch (p->type) {
    case RULE_PARAM_BOOL:
        row.type = K_BOOL;
        break;
    case RULE_PARAM_INT:
        row.type = K_INT;
        break;
    case RULE_PARAM_DOUBLE:
        row.type = K_DOUBLE;
        break;
    case RULE_PARAM_SEVERITY:
        row.type = K_CUSTOM;
        row.apply = apply_severity;
        break;
    }
    if (row.min >= row.max && row.type != K_CUSTOM) { /* no bounds given */
        row.min = row.type == K_INT ? INT_MIN : -1e300;
        row.max = row.type == K_INT ? INT_MAX : 1e300;
    }
    return row;
}

static void parse_rule(struct loader *L, enum rule_id rule, const config_setting_t *s)
{
    char ctx[64];
    snprintf(ctx, sizeof ctx, "rules.%s", rule_name(rule));
    struct where w = where_of(L, s);
    if (!config_setting_is_group(s)) {
        errf(L, &w, "%s: expected a group { ... }", ctx);
        return;
    }
    size_t nparams;
    const struct rule_param *params = rule_params(&nparams);
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        struct where ew = where_of(L, e);
        size_t k = 0;
        while (k < nparams && !(params[k].rule == rule && strcmp(params[k].name, name) == 0))
            k++;
        if (k == nparams) {
            errf(L, &ew, "%s.%s: unknown key", ctx, name);
            continue;
        }
        struct key_row row = rule_param_row(&params[k]);
        struct val v;
        if (!val_from_setting(e, row.type, &v))
            errf(L, &ew, "%s.%s: expected %s, not a group or list", ctx, name, type_word(row.type));
        else
            apply_value(L, &row, &v, &L->cfg->rules, &ew, ctx);
    }
}

static void parse_rules(struct loader *L, const config_setting_t *s)
{
    L->rules = s;
    struct where w = where_of(L, s);
    if (!config_setting_is_group(s)) {
        errf(L, &w, "rules: expected a group { ... }");
        return;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int rule = rule_from_name(config_setting_name(e));
        if (rule < 0) {
            struct where ew = where_of(L, e);
            errf(L, &ew, "rules.%s: unknown rule", config_setting_name(e));
            continue;
        }
        parse_rule(L, (enum rule_id)rule, e);
    }
}

static void parse_workorders(struct loader *L, const config_setting_t *s)
{
    parse_group(L, s, workorder_rows, NROWS(workorder_rows), &L->cfg->workorders, "workorders");
}

static void parse_http(struct loader *L, const config_setting_t *s)
{
    parse_group(L, s, http_rows, NROWS(http_rows), &L->cfg->http, "http");
}

static void parse_ctl(struct loader *L, const config_setting_t *s)
{
    parse_group(L, s, ctl_rows, NROWS(ctl_rows), &L->cfg->ctl, "ctl");
}

static void parse_retention(struct loader *L, const config_setting_t *s)
{
    parse_group(L, s, retention_rows, NROWS(retention_rows), &L->cfg->retention, "retention");
}

/* ------------------------------------------------------------------ */
/* notify: channels and routes                                         */
/* ------------------------------------------------------------------ */

static const char *const notify_type_names[] = { "wecom", "dingtalk", "feishu", "http", "smtp",
                                                 NULL }; /* enum gw_notify_type */
static const char *const severity_names[] = { "info", "minor", "major", "critical", NULL };
const char *const gw_notify_placeholders[] = { "text", "severity", "rule", "where", "since",
                                               "link", "incident", "to", "secret", NULL };

/* A file holding a secret: readable, and by its owner only. */
static bool apply_notify_secret(struct loader *L, const struct key_row *row, const struct val *v,
                                void *target, const struct where *w, const char *ctx)
{
    if (!apply_string(L, row, v, target, w, ctx))
        return false;
    char key[96];
    snprintf(key, sizeof key, KEY_FMT, KEY_ARGS(ctx, row->name));
    return file_private(L, key, *(char **)((char *)target + row->offset), w);
}

/* Reports each "{name}" in text that is not a placeholder; false if any. */
static bool template_ok(struct loader *L, const char *text, const struct where *w, const char *key)
{
    bool ok = true;
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        size_t len = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
        if (len == 0 || p[1 + len] != '}')
            continue; /* JSON braces, not a placeholder */
        bool known = false;
        for (size_t k = 0; gw_notify_placeholders[k] && !known; k++)
            known = strlen(gw_notify_placeholders[k]) == len &&
                    strncmp(gw_notify_placeholders[k], p + 1, len) == 0;
        if (!known) {
            errf(L, w, "%s: unknown placeholder {%.*s} (known: text, severity, rule, where, since, "
                       "link, incident, to, secret)", key, (int)len, p + 1);
            ok = false;
        }
    }
    return ok;
}

static bool apply_template(struct loader *L, const struct key_row *row, const struct val *v,
                           void *target, const struct where *w, const char *ctx)
{
    if (!apply_string(L, row, v, target, w, ctx))
        return false;
    char key[96];
    snprintf(key, sizeof key, KEY_FMT, KEY_ARGS(ctx, row->name));
    return template_ok(L, v->s, w, key);
}

static bool apply_http_url(struct loader *L, const struct key_row *row, const struct val *v,
                           void *target, const struct where *w, const char *ctx)
{
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    static const char *const schemes[] = { "http://", "https://", "smtp://", "smtps://" };
    bool known = false;
    for (size_t k = 0; k < NROWS(schemes) && !known; k++)
        known = strncmp(v->s, schemes[k], strlen(schemes[k])) == 0 && v->s[strlen(schemes[k])];
    if (!known) {
        errf(L, w, KEY_FMT ": '%s' is not an http://, https://, smtp:// or smtps:// URL",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    return apply_string(L, row, v, target, w, ctx);
}

static void setting_notify_headers(struct loader *L, const config_setting_t *s, void *target,
                                   const char *ctx)
{
    struct gw_notify_channel_config *ch = target;
    char key[96];
    snprintf(key, sizeof key, "%s.headers", ctx);
    parse_string_list(L, s, key, NULL, &ch->headers, &ch->nheaders);
    for (size_t i = 0; i < ch->nheaders; i++) {
        struct where w = where_of(L, config_setting_get_elem(s, (unsigned)i));
        template_ok(L, ch->headers[i], &w, key);
    }
}

static bool apply_route_quiet_hours(struct loader *L, const struct key_row *row,
                                    const struct val *v, void *target, const struct where *w,
                                    const char *ctx)
{
    struct gw_notify_route_config *r = target;
    if (v->type != VAL_STRING)
        return type_error(L, row, w, ctx);
    int start = strlen(v->s) == 11 && v->s[5] == '-' ? parse_hhmm(v->s) : -1;
    int end = start >= 0 ? parse_hhmm(v->s + 6) : -1;
    if (start < 0 || end < 0 || start == end) {
        errf(L, w, KEY_FMT ": '%s' must be \"HH:MM-HH:MM\" (site time, start != end)",
             KEY_ARGS(ctx, row->name), v->s);
        return false;
    }
    r->quiet_start_min = start;
    r->quiet_end_min = end;
    return true;
}

/* A list of words, each one of valid[] (NULL: any). */
static void parse_word_list(struct loader *L, const config_setting_t *s, const char *ctx,
                            const char *const *valid, const char *what, char ***out, size_t *nout)
{
    parse_string_list(L, s, ctx, NULL, out, nout);
    for (size_t i = 0; valid && i < *nout; i++) {
        bool ok = false;
        for (size_t k = 0; valid[k] && !ok; k++)
            ok = strcmp(valid[k], (*out)[i]) == 0;
        if (!ok) {
            struct where w = where_of(L, config_setting_get_elem(s, (unsigned)i));
            errf(L, &w, "%s[%zu]: '%s' is not %s", ctx, i, (*out)[i], what);
        }
    }
}

#define ROUTE_LIST_SETTING(fn, field, valid, what)                                              \
    static void fn(struct loader *L, const config_setting_t *s, void *target, const char *ctx) \
    {                                                                                           \
        struct gw_notify_route_config *r = target;                                              \
        char key[96];                                                                           \
        snprintf(key, sizeof key, "%s.%s", ctx, config_setting_name(s));                        \
        parse_word_list(L, s, key, valid, what, &r->field, &r->n##field);                       \
    }
ROUTE_LIST_SETTING(setting_route_severities, severities, severity_names, "a severity")
ROUTE_LIST_SETTING(setting_route_buildings, buildings, NULL, "")
ROUTE_LIST_SETTING(setting_route_to, to, NULL, "")
static const char *const workorder_event_names[] = { "created", "breached", "return_visit", NULL };
ROUTE_LIST_SETTING(setting_route_workorder_events, workorder_events, workorder_event_names,
                   "a work-order event (created, breached, return_visit)")

static void setting_route_rules(struct loader *L, const config_setting_t *s, void *target,
                                const char *ctx)
{
    struct gw_notify_route_config *r = target;
    char key[96];
    snprintf(key, sizeof key, "%s.rules", ctx);
    parse_string_list(L, s, key, NULL, &r->rules, &r->nrules);
    for (size_t i = 0; i < r->nrules; i++) {
        if (rule_from_name(r->rules[i]) < 0) {
            struct where w = where_of(L, config_setting_get_elem(s, (unsigned)i));
            errf(L, &w, "%s[%zu]: '%s' is not a rule", key, i, r->rules[i]);
        }
    }
}

static void setting_route_categories(struct loader *L, const config_setting_t *s, void *target,
                                     const char *ctx)
{
    struct gw_notify_route_config *r = target;
    char key[96];
    snprintf(key, sizeof key, "%s.categories", ctx);
    parse_string_list(L, s, key, NULL, &r->categories, &r->ncategories);
    for (size_t i = 0; i < r->ncategories; i++) {
        if (strcmp(r->categories[i], "fire") != 0 && gw_category_from_name(r->categories[i]) < 0) {
            struct where w = where_of(L, config_setting_get_elem(s, (unsigned)i));
            errf(L, &w, "%s[%zu]: '%s' is not a meter category or \"fire\"", key, i,
                 r->categories[i]);
        }
    }
}

#define NCH(field) offsetof(struct gw_notify_channel_config, field)
static const struct key_row notify_channel_rows[] = {
    { KEY("name", K_IDENT, NCH(name)) },
    { KEY("type", K_ENUM, NCH(type)), .names = notify_type_names },
    { KEY("url", K_CUSTOM, NCH(url)), .apply = apply_http_url },
    { KEY("key_file", K_FILE, NCH(key_file)), .apply = apply_notify_secret },
    { KEY("sign_secret_file", K_FILE, NCH(sign_secret_file)), .apply = apply_notify_secret },
    { KEY("method", K_IDENT, NCH(method)) },
    { KEY("headers", K_SETTING, 0), .setting = setting_notify_headers },
    { KEY("body", K_STR, NCH(body)), .apply = apply_template },
    { KEY("from", K_STR, NCH(from)) },
    { KEY("username", K_STR, NCH(username)) },
    { KEY("password_file", K_FILE, NCH(password_file)), .apply = apply_notify_secret },
    { KEY("ca_file", K_FILE, NCH(ca_file)) },
    { KEY("tls", K_BOOL, NCH(tls)) },
    { KEY("rate_per_min", K_INT, NCH(rate_per_min)), .min = 0, .max = 6000 },
    { KEY("timeout_ms", K_INT, NCH(timeout_ms)), .min = 100, .max = 120000 },
};

#define NLV(field) offsetof(struct gw_notify_level_config, field)
static void setting_level_to(struct loader *L, const config_setting_t *s, void *target,
                             const char *ctx)
{
    struct gw_notify_level_config *lv = target;
    char key[96];
    snprintf(key, sizeof key, "%s.to", ctx);
    parse_string_list(L, s, key, NULL, &lv->to, &lv->nto);
}

static const struct key_row notify_level_rows[] = {
    { KEY("after_s", K_INT, NLV(after_s)), .min = 5, .max = 7 * 86400 },
    { KEY("to", K_SETTING, 0), .setting = setting_level_to },
};

static void setting_route_escalation(struct loader *L, const config_setting_t *s, void *target,
                                     const char *ctx)
{
    struct gw_notify_route_config *r = target;
    char key[96];
    snprintf(key, sizeof key, "%s.escalation", ctx);
    int count = list_length(L, s, key);
    if (count < 0 || !(r->escalation = alloc_list(L, (size_t)count, sizeof *r->escalation)))
        return;
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_notify_level_config *lv = &r->escalation[r->nescalation++];
        char lctx[112];
        snprintf(lctx, sizeof lctx, "%s[%d]", key, i);
        uint64_t seen = parse_group(L, e, notify_level_rows, NROWS(notify_level_rows), lv, lctx);
        struct where w = where_of(L, e);
        static const char *const required[] = { "after_s", "to", NULL };
        if (!require(L, notify_level_rows, NROWS(notify_level_rows), seen, required, &w, lctx))
            continue;
        if (i > 0 && lv->after_s <= r->escalation[i - 1].after_s)
            errf(L, &w, "%s.after_s: %d must come after the step before (%d)", lctx, lv->after_s,
                 r->escalation[i - 1].after_s);
    }
}

#define NRT(field) offsetof(struct gw_notify_route_config, field)
static const struct key_row notify_route_rows[] = {
    { KEY("channel", K_IDENT, NRT(channel_name)) },
    { KEY("rules", K_SETTING, 0), .setting = setting_route_rules },
    { KEY("severities", K_SETTING, 0), .setting = setting_route_severities },
    { KEY("buildings", K_SETTING, 0), .setting = setting_route_buildings },
    { KEY("categories", K_SETTING, 0), .setting = setting_route_categories },
    { KEY("to", K_SETTING, 0), .setting = setting_route_to },
    { KEY("workorder_events", K_SETTING, 0), .setting = setting_route_workorder_events },
    { KEY("quiet_hours", K_CUSTOM, 0), .apply = apply_route_quiet_hours },
    { KEY("cleared", K_BOOL, NRT(cleared)) },
    { KEY("on_duty", K_BOOL, NRT(on_duty)) },
    { KEY("escalation", K_SETTING, 0), .setting = setting_route_escalation },
    { KEY("language", K_ENUM, NRT(language)), .names = language_names },
};

/* channels and routes: parsed after the group's keys (routes name channels). */
static void setting_parsed_later(struct loader *L, const config_setting_t *s, void *target,
                                 const char *ctx)
{
    (void)L, (void)s, (void)target, (void)ctx;
}

#define NPP(field) offsetof(struct gw_notify_person_config, field)
static const struct key_row notify_person_rows[] = {
    { KEY("name", K_STR, NPP(name)) },
    { KEY("mobile", K_STR, NPP(mobile)) },
    { KEY("email", K_STR, NPP(email)) },
};

static void parse_notify_people(struct loader *L, const config_setting_t *s)
{
    struct gw_notify_config *n = &L->cfg->notify;
    int count = list_length(L, s, "notify.people");
    if (count < 0 || !(n->people = alloc_list(L, (size_t)count, sizeof *n->people)))
        return;
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_notify_person_config *p = &n->people[n->npeople++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "notify.people[%d]", i);
        uint64_t seen = parse_group(L, e, notify_person_rows, NROWS(notify_person_rows), p, ctx);
        struct where w = where_of(L, e);
        static const char *const required[] = { "name", NULL };
        require(L, notify_person_rows, NROWS(notify_person_rows), seen, required, &w, ctx);
    }
}

#define NTF(field) offsetof(struct gw_notify_config, field)
static const struct key_row notify_rows[] = {
    { KEY("console_url", K_CUSTOM, NTF(console_url)), .apply = apply_http_url },
    { KEY("retry_max_s", K_INT, NTF(retry_max_s)), .min = 5, .max = 86400 },
    { KEY("failing_after_s", K_INT, NTF(failing_after_s)), .min = 5, .max = 86400 },
    { KEY("channels", K_SETTING, 0), .setting = setting_parsed_later },
    { KEY("routes", K_SETTING, 0), .setting = setting_parsed_later },
    { KEY("people", K_SETTING, 0), .setting = setting_parsed_later },
};

static void check_notify_channel(struct loader *L, struct gw_notify_channel_config *ch,
                                 uint64_t seen, const struct where *w, const char *ctx)
{
    static const char *const required[] = { "name", "type", "url", NULL };
    if (!require(L, notify_channel_rows, NROWS(notify_channel_rows), seen, required, w, ctx))
        return;
    bool robot = ch->type == GW_NOTIFY_WECOM || ch->type == GW_NOTIFY_DINGTALK ||
                 ch->type == GW_NOTIFY_FEISHU;
    bool smtp_url = strncmp(ch->url, "smtp", 4) == 0;
    if (robot && !ch->key_file)
        errf(L, w, "notify channel %s: a %s robot needs key_file (its key or token)", ch->name,
             notify_type_names[ch->type]);
    if (ch->sign_secret_file && ch->type != GW_NOTIFY_DINGTALK)
        errf(L, w, "notify channel %s: sign_secret_file is for dingtalk robots", ch->name);
    if ((ch->type == GW_NOTIFY_SMTP) != smtp_url)
        errf(L, w, "notify channel %s: %s", ch->name,
             smtp_url ? "an smtp:// URL needs type \"smtp\"" : "an smtp channel needs an smtp:// or smtps:// URL");
    if (ch->type == GW_NOTIFY_SMTP && !ch->from)
        errf(L, w, "notify channel %s: an smtp channel needs from", ch->name);
    if (ch->type != GW_NOTIFY_HTTP && (ch->body || ch->nheaders || ch->method))
        errf(L, w, "notify channel %s: method, headers and body are for http channels", ch->name);
    if (robot && !was_seen(notify_channel_rows, NROWS(notify_channel_rows), seen, "rate_per_min"))
        ch->rate_per_min = 20;
}

static void parse_notify_channels(struct loader *L, const config_setting_t *s)
{
    struct gw_notify_config *n = &L->cfg->notify;
    int count = list_length(L, s, "notify.channels");
    if (count < 0 || !(n->channels = alloc_list(L, (size_t)count, sizeof *n->channels)))
        return;
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_notify_channel_config *ch = &n->channels[n->nchannels++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "notify.channels[%d]", i);
        ch->tls = true;
        ch->timeout_ms = 10000;
        size_t errors_before = L->nerrors;
        uint64_t seen = parse_group(L, e, notify_channel_rows, NROWS(notify_channel_rows), ch, ctx);
        struct where w = where_of(L, e);
        ch->file = where_file(L, &w);
        ch->line = w.line;
        if (L->nerrors == errors_before) /* a key already refused says enough */
            check_notify_channel(L, ch, seen, &w, ctx);
        for (size_t k = 0; ch->name && k + 1 < n->nchannels; k++)
            if (n->channels[k].name && strcmp(n->channels[k].name, ch->name) == 0)
                errf(L, &w, "notify channel %s: defined twice", ch->name);
    }
}

static void parse_notify_routes(struct loader *L, const config_setting_t *s)
{
    struct gw_notify_config *n = &L->cfg->notify;
    int count = list_length(L, s, "notify.routes");
    if (count < 0 || !(n->routes = alloc_list(L, (size_t)count, sizeof *n->routes)))
        return;
    for (int i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct gw_notify_route_config *r = &n->routes[n->nroutes++];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "notify.routes[%d]", i);
        r->quiet_start_min = r->quiet_end_min = -1;
        r->cleared = true;
        r->language = L->cfg->gateway.language;
        uint64_t seen = parse_group(L, e, notify_route_rows, NROWS(notify_route_rows), r, ctx);
        struct where w = where_of(L, e);
        r->file = where_file(L, &w);
        r->line = w.line;
        static const char *const required[] = { "channel", NULL };
        if (!require(L, notify_route_rows, NROWS(notify_route_rows), seen, required, &w, ctx))
            continue;
        size_t k = 0;
        while (k < n->nchannels && !(n->channels[k].name && strcmp(n->channels[k].name, r->channel_name) == 0))
            k++;
        if (k == n->nchannels)
            errf(L, &w, "%s.channel: no notify channel is named '%s'", ctx, r->channel_name);
        r->channel = k;
    }
}

static void parse_notify(struct loader *L, const config_setting_t *s)
{
    static const char *const ctx = "notify";
    L->cfg->notify.retry_max_s = 300;
    L->cfg->notify.failing_after_s = 600;
    parse_group(L, s, notify_rows, NROWS(notify_rows), &L->cfg->notify, ctx);
    const config_setting_t *channels = config_setting_get_member(s, "channels");
    const config_setting_t *routes = config_setting_get_member(s, "routes");
    const config_setting_t *people = config_setting_get_member(s, "people");
    if (people)
        parse_notify_people(L, people);
    if (channels)
        parse_notify_channels(L, channels);
    if (routes)
        parse_notify_routes(L, routes);
}

static void csv_load(struct loader *L, const char *csv_path, struct gw_meter_config **rows,
                     size_t *nrows);
static void free_meter(struct gw_meter_config *m);

static void parse_meters_csv(struct loader *L, const config_setting_t *s)
{
    static const struct key_row row = { KEY("meters_csv", K_PATH, 0) };
    struct where w = where_of(L, s);
    struct val v;
    char *path = NULL;
    if (!val_from_setting(s, K_PATH, &v)) {
        errf(L, &w, "meters_csv: expected a string, not a group or list");
        return;
    }
    if (!apply_string(L, &row, &v, &path, &w, ""))
        return;
    struct gw_meter_config *rows = NULL;
    size_t n = 0;
    csv_load(L, path, &rows, &n);
    free(path);
    struct gw_config *c = L->cfg;
    struct gw_meter_config *all = c->meters;
    if (n && c->nmeters == 0) { /* the usual case: all meters in the CSV */
        free(c->meters);
        c->meters = rows;
        c->nmeters = n;
        return;
    }
    if (n)
        all = realloc(c->meters, (c->nmeters + n) * sizeof *all);
    if (n && !all) {
        oom(L);
        for (size_t i = 0; i < n; i++)
            free_meter(&rows[i]);
    } else if (n) {
        memcpy(all + c->nmeters, rows, n * sizeof *rows);
        c->meters = all;
        c->nmeters += n;
    }
    free(rows);
}

/* Sections in parse order (buses and units before the meters naming them). */
static const struct section {
    const char *name;
    void (*parse)(struct loader *L, const config_setting_t *s);
} sections[] = {
    { "gateway", parse_gateway },   { "mqtt", parse_mqtt },
    { "buses", parse_buses },       { "units", parse_units },
    { "meters", parse_meters },     { "meters_csv", parse_meters_csv },
    { "fire_panels", parse_panels }, { "rules", parse_rules },
    { "workorders", parse_workorders }, { "http", parse_http },
    { "retention", parse_retention }, { "ctl", parse_ctl },
    { "notify", parse_notify },
};

static void parse_root(struct loader *L, const config_setting_t *root)
{
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        size_t k = 0;
        while (k < NROWS(sections) && strcmp(sections[k].name, config_setting_name(s)) != 0)
            k++;
        if (k == NROWS(sections)) {
            struct where w = where_of(L, s);
            errf(L, &w, "%s: unknown section", config_setting_name(s));
        }
    }
    for (size_t k = 0; k < NROWS(sections); k++) {
        const config_setting_t *s = config_setting_get_member(root, sections[k].name);
        if (s)
            sections[k].parse(L, s);
    }
}

/* ------------------------------------------------------------------ */
/* Meters CSV                                                          */
/* ------------------------------------------------------------------ */

/* Columns of `estate-ctl inventory --csv` that describe the meter's state
 * in the database rather than its configuration: accepted so that an export
 * imports as it is, and not applied. A "status" of "removed" drops the row
 * (the meter is not part of the list). */
static const char *const csv_report_columns[] = {
    "installed", "last_good", "energy_import_kwh", "volume_m3", NULL
};
#define CSV_COLUMN_IGNORED SIZE_MAX
#define CSV_COLUMN_STATUS (SIZE_MAX - 1)

static bool csv_report_column(const char *name)
{
    for (const char *const *n = csv_report_columns; *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

/* Maps the header's columns to meter rows (or CSV_COLUMN_IGNORED /
 * CSV_COLUMN_STATUS); false (reported) on errors. */
static bool csv_header(struct loader *L, const struct csv_record *rec, const char *file,
                       size_t *columns)
{
    struct where w = { file, (int)rec->line, false };
    uint64_t seen = 0;
    bool ok = true;
    for (size_t c = 0; c < rec->nfields; c++) {
        size_t r = find_row(meter_rows, NROWS(meter_rows), rec->fields[c]);
        bool status = strcmp(rec->fields[c], "status") == 0;
        if (r == NROWS(meter_rows) && (status || csv_report_column(rec->fields[c]))) {
            for (size_t k = 0; k < c; k++)
                if (strcmp(rec->fields[k], rec->fields[c]) == 0) {
                    errf(L, &w, "column '%s' appears twice", rec->fields[c]);
                    ok = false;
                }
            columns[c] = status ? CSV_COLUMN_STATUS : CSV_COLUMN_IGNORED;
        } else if (r == NROWS(meter_rows)) {
            errf(L, &w, "unknown column '%s'", rec->fields[c]);
            ok = false;
        } else if (seen & (1ull << r)) {
            errf(L, &w, "column '%s' appears twice", rec->fields[c]);
            ok = false;
        } else {
            seen |= 1ull << r;
            columns[c] = r;
        }
    }
    static const char *const required[] = { "id", "bus", "driver", "category", NULL };
    if (!was_seen(meter_rows, NROWS(meter_rows), seen, "slave") &&
        !was_seen(meter_rows, NROWS(meter_rows), seen, "address")) {
        errf(L, &w, "missing column 'slave' (or 'address' for meters on dlt645 and cjt188 "
                    "buses)");
        ok = false;
    }
    for (const char *const *n = required; *n; n++) {
        if (!was_seen(meter_rows, NROWS(meter_rows), seen, *n)) {
            errf(L, &w, "missing column '%s'", *n);
            ok = false;
        }
    }
    return ok;
}

/* An exported row of a meter the inventory lists as removed. */
static bool csv_row_removed(const struct csv_record *rec, const size_t *columns, size_t ncolumns)
{
    for (size_t c = 0; c < ncolumns && c < rec->nfields; c++)
        if (columns[c] == CSV_COLUMN_STATUS && strcmp(rec->fields[c], "removed") == 0)
            return true;
    return false;
}

/* One record -> one meter, checked on its own. false when the record is
 * not a meter of the list (an exported row of a removed meter). */
static bool csv_meter(struct loader *L, const struct csv_record *rec, const char *file,
                      const size_t *columns, size_t ncolumns, struct gw_meter_config *m)
{
    struct where w = { file, (int)rec->line, false };
    meter_defaults(m);
    if (rec->nfields == ncolumns && csv_row_removed(rec, columns, ncolumns))
        return false;
    if (!(m->file = intern_file(L, file)))
        oom(L);
    m->line = (int)rec->line;
    if (rec->nfields != ncolumns) {
        errf(L, &w, "%zu fields but the header names %zu columns", rec->nfields, ncolumns);
        return true;
    }
    uint64_t seen = 0;
    for (size_t c = 0; c < ncolumns; c++) {
        if (!rec->fields[c][0] || columns[c] >= NROWS(meter_rows))
            continue; /* empty cell: key not given; or a report column */
        const struct key_row *row = &meter_rows[columns[c]];
        struct val v;
        val_from_text(rec->fields[c], row->type, &v);
        apply_value(L, row, &v, m, &w, "");
        seen |= 1ull << columns[c];
    }
    meter_finish(L, m, seen, &w, "");
    return true;
}

/* Reads csv_path into *rows (appended, *nrows updated); errors collected. */
static void csv_load(struct loader *L, const char *csv_path, struct gw_meter_config **rows,
                     size_t *nrows)
{
    struct where fw = { csv_path, 0, false };
    char *data = NULL;
    size_t len = 0;
    est_err e = csv_read_file(csv_path, CSV_MAX_BYTES, &data, &len);
    if (e != EST_OK) {
        if (e == EST_ERR_NOMEM)
            oom(L);
        else if (e == EST_ERR_FULL)
            errf(L, &fw, "larger than %u MB", CSV_MAX_BYTES >> 20);
        else
            errf(L, &fw, "cannot read: %s", strerror(errno));
        return;
    }
    struct csv_reader *r = NULL;
    size_t *columns = calloc(CSV_MAX_FIELDS, sizeof *columns);
    if (!columns || csv_reader_new(data, len, CSV_MAX_FIELD, CSV_MAX_FIELDS, &r) != EST_OK) {
        oom(L);
        goto out;
    }
    struct csv_record rec;
    e = csv_reader_next(r, &rec);
    if (e == EST_ERR_NOTFOUND) {
        errf(L, &fw, "empty: the first row must name the columns");
        goto out;
    }
    if (e == EST_OK && !csv_header(L, &rec, csv_path, columns))
        goto out;
    size_t ncolumns = e == EST_OK ? rec.nfields : 0;
    size_t cap = *nrows;
    while (e == EST_OK && (e = csv_reader_next(r, &rec)) == EST_OK) {
        if (EST_VEC_RESERVE(*rows, cap, *nrows + 1) != EST_OK) { /* trimmed below */
            e = EST_ERR_NOMEM;
            break;
        }
        if (csv_meter(L, &rec, csv_path, columns, ncolumns, &(*rows)[*nrows]))
            (*nrows)++;
    }
    if (*nrows > 0 && *nrows < cap) {
        struct gw_meter_config *trimmed = realloc(*rows, *nrows * sizeof *trimmed);
        if (trimmed)
            *rows = trimmed;
    }
    if (e == EST_ERR_INVALID) {
        struct where w = { csv_path, (int)rec.line, false };
        errf(L, &w, "%s", csv_reader_error(r));
    } else if (e == EST_ERR_NOMEM) {
        oom(L);
    }
out:
    csv_reader_free(r);
    free(columns);
    free(data);
}

/* ------------------------------------------------------------------ */
/* Step 3: cross-checks                                                */
/* ------------------------------------------------------------------ */

/* Sort key for duplicate detection: a name or a (bus, slave) pair. */
struct dup_key {
    const char *name;
    size_t bus;
    int slave;
    size_t order;          /* position in definition order */
    const char *what;      /* "meter", "fire panel", ... */
    const char *id;
    const char *file;
    int line;
};

static int dup_key_cmp(const void *a, const void *b)
{
    const struct dup_key *x = a, *y = b;
    int c = x->name && y->name ? strcmp(x->name, y->name) : 0;
    if (c)
        return c;
    if (x->bus != y->bus)
        return x->bus < y->bus ? -1 : 1;
    if (x->slave != y->slave)
        return x->slave < y->slave ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts keys and reports each one equal to an earlier one. by_name: compare
 * names, else (bus, slave). Only keys with order >= first_new are reported. */
static void report_duplicates(struct loader *L, struct dup_key *keys, size_t n, bool by_name,
                              size_t first_new)
{
    qsort(keys, n, sizeof *keys, dup_key_cmp);
    for (size_t i = 1, first = 0; i < n; i++) {
        bool same = by_name ? strcmp(keys[i].name, keys[first].name) == 0
                            : keys[i].bus == keys[first].bus && keys[i].slave == keys[first].slave;
        if (!same) {
            first = i;
            continue;
        }
        if (keys[i].order < first_new)
            continue;
        struct where w = { keys[i].file ? keys[i].file : L->path, keys[i].line, false };
        if (by_name)
            errf(L, &w, "duplicate %s id '%s' (first defined at %s:%d)", keys[i].what,
                 keys[i].name, keys[first].file, keys[first].line);
        else
            errf(L, &w, "%s %s: slave %d on bus %s is already used by %s %s (%s:%d)", keys[i].what,
                 keys[i].id, keys[i].slave, L->cfg->buses[keys[i].bus].name, keys[first].what,
                 keys[first].id, keys[first].file, keys[first].line);
    }
}

/* Duplicate ids among n records of one kind: name_at(records, i) gives
 * record i's id, file and line. */
struct named {
    const char *name;
    const char *file;
    int line;
};

static void check_names(struct loader *L, const char *what, size_t n, const void *records,
                        struct named (*name_at)(const void *records, size_t i))
{
    struct dup_key *keys = alloc_list(L, n, sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; keys && i < n; i++) {
        struct named r = name_at(records, i);
        if (r.name)
            keys[k++] = (struct dup_key){ .name = r.name, .order = i, .what = what,
                                          .file = r.file, .line = r.line };
    }
    if (keys)
        report_duplicates(L, keys, k, true, 0);
    free(keys);
}

static struct named bus_at(const void *records, size_t i)
{
    const struct gw_bus_config *b = (const struct gw_bus_config *)records + i;
    return (struct named){ b->name, b->file, b->line };
}

static struct named unit_at(const void *records, size_t i)
{
    const struct gw_unit_config *u = (const struct gw_unit_config *)records + i;
    return (struct named){ u->id, u->file, u->line };
}

static struct named panel_at(const void *records, size_t i)
{
    const struct gw_panel_config *p = (const struct gw_panel_config *)records + i;
    return (struct named){ p->id, p->file, p->line };
}

/* Two devices (meters or panels) with one slave id on one bus. */
static void check_slaves(struct loader *L, const struct gw_meter_config *meters, size_t nmeters,
                         size_t first_new)
{
    const struct gw_config *c = L->cfg;
    struct dup_key *keys = alloc_list(L, nmeters + c->npanels, sizeof *keys);
    size_t n = 0;
    if (!keys)
        return;
    /* panels first: a new meter clashing with a panel is the one reported */
    for (size_t i = 0; i < c->npanels; i++)
        if (c->panels[i].bus != SIZE_MAX && c->panels[i].slave)
            keys[n++] = (struct dup_key){ .bus = c->panels[i].bus, .slave = c->panels[i].slave,
                                          .order = i, .what = "fire panel", .id = c->panels[i].id,
                                          .file = c->panels[i].file, .line = c->panels[i].line };
    for (size_t i = 0; i < nmeters; i++)
        if (meters[i].bus != SIZE_MAX && meters[i].slave)
            keys[n++] = (struct dup_key){ .bus = meters[i].bus, .slave = meters[i].slave,
                                          .order = c->npanels + i, .what = "meter",
                                          .id = meters[i].id, .file = meters[i].file,
                                          .line = meters[i].line };
    report_duplicates(L, keys, n, false, first_new ? c->npanels + first_new : 0);
    free(keys);
}

/* Index of the meter with this id in meters[0..n-1], or -1. */
static int meter_find(const struct gw_meter_config *meters, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (meters[i].id && strcmp(meters[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* Reports the parent loop through meters[start]: "A -> B -> A". */
static void report_loop(struct loader *L, const struct gw_meter_config *meters, size_t start)
{
    size_t len = strlen(meters[start].id) + 1;
    size_t j = (size_t)meters[start].parent;
    for (; j != start; j = (size_t)meters[j].parent)
        len += strlen(meters[j].id) + 4;
    char *chain = malloc(len + strlen(meters[start].id) + 4);
    if (!chain) {
        oom(L);
        return;
    }
    strcpy(chain, meters[start].id);
    j = start;
    do {
        j = (size_t)meters[j].parent;
        strcat(chain, " -> ");
        strcat(chain, meters[j].id);
    } while (j != start);
    struct where w = { meters[start].file, meters[start].line, false };
    errf(L, &w, "meter %s: parent chain loops: %s", meters[start].id, chain);
    free(chain);
}

/* Resolves parent ids of meters[first_new..] and rejects loops. */
static void check_parents(struct loader *L, struct gw_meter_config *meters, size_t n,
                          size_t first_new)
{
    for (size_t i = first_new; i < n; i++) {
        struct gw_meter_config *m = &meters[i];
        if (!m->parent_id || !m->id)
            continue;
        struct where w = { m->file, m->line, false };
        int p = meter_find(meters, n, m->parent_id);
        if (p < 0)
            errf(L, &w, "meter %s: parent '%s' is not a meter", m->id, m->parent_id);
        else if (meters[p].model && m->model && meters[p].kind != m->kind)
            errf(L, &w, "meter %s: parent %s is a %s meter, not %s", m->id, meters[p].id,
                 kind_names[meters[p].kind], kind_names[m->kind]);
        m->parent = p;
    }
    /* each chain followed at most n steps; 1 = on the current path, 2 = done */
    unsigned char *state = alloc_list(L, n, 1);
    for (size_t i = 0; state && i < n; i++) {
        size_t j = i;
        while (state[j] == 0) {
            state[j] = 1;
            if (meters[j].parent < 0)
                break;
            j = (size_t)meters[j].parent;
        }
        if (state[j] == 1 && meters[j].parent >= 0) /* j is on a loop */
            report_loop(L, meters, j);
        for (j = i; state[j] == 1; j = (size_t)meters[j].parent) {
            state[j] = 2;
            if (meters[j].parent < 0)
                break;
        }
    }
    free(state);
}

/* Two meters with one address on one DL/T 645 or CJ/T 188 bus. Such buses
 * carry tens of meters, so comparing each new meter with the ones before
 * it is cheap. */
static void check_addresses(struct loader *L, const struct gw_meter_config *meters, size_t n,
                            size_t first_new)
{
    for (size_t i = first_new; i < n; i++) {
        if (!meters[i].address || meters[i].bus == SIZE_MAX)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (!meters[j].address || meters[j].bus != meters[i].bus ||
                strcmp(meters[j].address, meters[i].address) != 0)
                continue;
            struct where w = { meters[i].file, meters[i].line, false };
            errf(L, &w, "meter %s: address %s on bus %s is already used by meter %s (%s:%d)",
                 meters[i].id, meters[i].address, L->cfg->buses[meters[i].bus].name,
                 meters[j].id, meters[j].file, meters[j].line);
            break;
        }
    }
}

static void check_meters(struct loader *L, struct gw_meter_config *meters, size_t n,
                         size_t first_new)
{
    struct dup_key *keys = alloc_list(L, n, sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; keys && i < n; i++)
        if (meters[i].id)
            keys[k++] = (struct dup_key){ .name = meters[i].id, .order = i, .what = "meter",
                                          .file = meters[i].file, .line = meters[i].line };
    if (keys)
        report_duplicates(L, keys, k, true, first_new);
    free(keys);
    check_slaves(L, meters, n, first_new);
    check_addresses(L, meters, n, first_new);
    check_parents(L, meters, n, first_new);
}

/* One owner thread per serial port: two rtu buses on one device (the same
 * path, or two paths resolving to the same file) would interleave frames. */
static void check_rtu_ports(struct loader *L)
{
    const struct gw_config *c = L->cfg;
    for (size_t i = 0; i < c->nbuses; i++) {
        const struct gw_bus_config *b = &c->buses[i];
        if (b->type != GW_BUS_RTU || !b->device)
            continue;
        char *real_b = realpath(b->device, NULL);
        for (size_t j = 0; j < i; j++) {
            const struct gw_bus_config *a = &c->buses[j];
            if (a->type != GW_BUS_RTU || !a->device)
                continue;
            char *real_a = real_b ? realpath(a->device, NULL) : NULL;
            bool same = strcmp(a->device, b->device) == 0 || (real_a && strcmp(real_a, real_b) == 0);
            free(real_a);
            if (same) {
                struct where w = { b->file ? b->file : L->path, b->line, false };
                errf(L, &w, "bus %s: device %s is already the port of bus %s (%s:%d); put every "
                     "device on that line on one bus", b->name, b->device, a->name,
                     a->file ? a->file : L->path, a->line);
                break;
            }
        }
        free(real_b);
    }
}

/* The console's users file (http.users_file, else <data_dir>/users.conf)
 * holds password hashes: refused when others may read it, unless the
 * config says it may be shared (the demo's, checked out from git). */
static void check_users_file(struct loader *L)
{
    struct gw_config *c = L->cfg;
    if (!c->http.require_private_users_file)
        return;
    char *fallback = NULL;
    const char *path = c->http.users_file;
    if (!path || !path[0])
        path = fallback = est_asprintf("%s/users.conf", c->gateway.data_dir ? c->gateway.data_dir : ".");
    struct where w = L->users_file_at ? *L->users_file_at : (struct where){ L->path, 0, false };
    file_private(L, "http.users_file", path, &w);
    free(fallback);
}

static void check_all(struct loader *L)
{
    struct gw_config *c = L->cfg;
    check_names(L, "bus", c->nbuses, c->buses, bus_at);
    check_rtu_ports(L);
    check_names(L, "unit", c->nunits, c->units, unit_at);
    check_names(L, "fire panel", c->npanels, c->panels, panel_at);
    check_meters(L, c->meters, c->nmeters, 0);
    if (c->mqtt.uri && strncmp(c->mqtt.uri, "ssl://", 6) == 0 && !c->mqtt.ca_file) {
        struct where w = L->mqtt ? where_of(L, L->mqtt) : (struct where){ L->path, 0, false };
        errf(L, &w, "mqtt.uri: ssl:// needs mqtt.ca_file");
    }
    check_users_file(L);
    struct where rw = L->rules ? where_of(L, L->rules) : (struct where){ L->path, 0, false };
    const struct rule_config *r = &c->rules;
    if (r->continuous_flow.zero_flow_needed_s > r->continuous_flow.window_s)
        errf(L, &rw, "rules.continuous_flow: zero_flow_needed_s (%d) exceeds window_s (%d)",
             r->continuous_flow.zero_flow_needed_s, r->continuous_flow.window_s);
    else if (rule_config_check(r) != EST_OK) /* the rule engine's own checks, as a backstop */
        errf(L, &rw, "rules: the rule engine rejects these settings");
}

/* Derived defaults: MQTT client id and topic prefix from the gateway's. */
static void finish_defaults(struct loader *L)
{
    struct gw_config *c = L->cfg;
    if (!c->mqtt.client_id && !(c->mqtt.client_id = est_asprintf("estate-gw-%s", c->gateway.id)))
        oom(L);
    if (!c->mqtt.topic_prefix &&
        !(c->mqtt.topic_prefix = est_asprintf("estate/%s/%s", c->gateway.site, c->gateway.id)))
        oom(L);
}

/* ------------------------------------------------------------------ */
/* --set overrides                                                     */
/* ------------------------------------------------------------------ */

/* Applies one "PATH=VALUE" to the tree (est_override.h); settings it made
 * or changed carry o as their hook. */
static void apply_override(struct loader *L, config_t *lc, struct override *o)
{
    struct where w = { o->label, 0, false };
    struct est_override_result result;
    est_err err = est_config_override(lc, o->text, EST_OVERRIDE_NEW_AS_TEXT, o, &result);
    o->created = result.created;
    if (err == EST_ERR_NOMEM)
        oom(L);
    else if (err != EST_OK)
        errf(L, &w, "%s", result.message);
    free(result.message);
}

static void apply_overrides(struct loader *L, config_t *lc, const char *const *overrides,
                            size_t n)
{
    if (!n)
        return;
    L->overrides = alloc_list(L, n, sizeof *L->overrides);
    if (!L->overrides)
        return;
    L->noverrides = n;
    for (size_t i = 0; i < n; i++) {
        L->overrides[i].text = overrides[i];
        if (!(L->overrides[i].label = est_asprintf("--set %s", overrides[i]))) {
            oom(L);
            return;
        }
        apply_override(L, lc, &L->overrides[i]);
    }
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    char *d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = '\0';
    }
    return d;
}

static void loader_done(struct loader *L)
{
    for (size_t i = 0; i < L->noverrides; i++)
        free(L->overrides[i].label);
    free(L->overrides);
    free(L->dir);
    free(L->users_file_at);
}

/* Reads the file into lc; false (reported) on I/O or syntax errors. */
static bool read_file(struct loader *L, config_t *lc)
{
    FILE *f = fopen(L->path, "r");
    if (!f) {
        struct where w = { L->path, 0, false };
        errf(L, &w, "cannot read: %s", strerror(errno));
        return false;
    }
    fclose(f);
    config_set_include_dir(lc, L->dir);
    if (config_read_file(lc, L->path))
        return true;
    struct where w = { config_error_file(lc) ? config_error_file(lc) : L->path,
                       config_error_line(lc), config_error_file(lc) != NULL };
    errf(L, &w, "%s", config_error_text(lc) ? config_error_text(lc) : "cannot read");
    return false;
}

est_err gw_config_load(const char *path, const char *const *overrides, size_t noverrides,
                       struct gw_config **out, struct gw_config_errors *errors)
{
    struct loader L = { .errors = errors, .path = path };
    *out = NULL;
    struct gw_config *cfg = calloc(1, sizeof *cfg);
    L.cfg = cfg;
    if (!cfg || !set_defaults(cfg) || !(cfg->path = strdup(path)) || !(L.dir = dir_of(path))) {
        oom(&L);
        gw_config_free(cfg);
        loader_done(&L);
        return EST_ERR_NOMEM;
    }
    config_t lc;
    config_init(&lc);
    if (read_file(&L, &lc)) {
        apply_overrides(&L, &lc, overrides, noverrides);
        parse_root(&L, config_root_setting(&lc));
        finish_defaults(&L);
        check_all(&L);
    }
    config_destroy(&lc);
    loader_done(&L);
    if (L.nerrors) {
        gw_config_free(cfg);
        return L.nomem ? EST_ERR_NOMEM : EST_ERR_INVALID;
    }
    *out = cfg;
    return EST_OK;
}

est_err gw_config_load_meters_csv(struct gw_config *config, const char *csv_path,
                                  struct gw_config_errors *errors)
{
    struct loader L = { .cfg = config, .errors = errors, .path = config->path };
    struct gw_meter_config *rows = NULL, *all = NULL;
    size_t n = 0, total = config->nmeters;
    if (!(L.dir = dir_of(config->path))) {
        oom(&L);
        return EST_ERR_NOMEM;
    }
    csv_load(&L, csv_path, &rows, &n);
    if (!L.nerrors && n) {
        total = config->nmeters + n;
        if (!(all = malloc(total * sizeof *all))) {
            oom(&L);
        } else {
            if (config->nmeters > 0) /* memcpy from NULL is undefined even for 0 bytes */
                memcpy(all, config->meters, config->nmeters * sizeof *all);
            memcpy(all + config->nmeters, rows, n * sizeof *rows);
            check_meters(&L, all, total, config->nmeters);
        }
    }
    loader_done(&L);
    if (L.nerrors) {
        for (size_t i = 0; i < n; i++)
            free_meter(&rows[i]);
        free(rows);
        free(all);
        return L.nomem ? EST_ERR_NOMEM : EST_ERR_INVALID;
    }
    if (all) {
        free(config->meters);
        config->meters = all;
        config->nmeters = total;
    }
    free(rows);
    return EST_OK;
}

static void free_meter(struct gw_meter_config *m)
{
    free(m->id);
    if (!m->building_from_unit)
        free(m->building);
    free(m->location);
    free(m->parent_id);
    free(m->serial);
    free(m->address);
}

void gw_config_clear_meters(struct gw_config *c)
{
    for (size_t i = 0; i < c->nmeters; i++)
        free_meter(&c->meters[i]);
    free(c->meters);
    c->meters = NULL;
    c->nmeters = 0;
}

static void free_strings(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void free_notify(struct gw_notify_config *n)
{
    for (size_t i = 0; i < n->nchannels; i++) {
        struct gw_notify_channel_config *ch = &n->channels[i];
        free(ch->name);
        free(ch->url);
        free(ch->key_file);
        free(ch->sign_secret_file);
        free(ch->method);
        free_strings(ch->headers, ch->nheaders);
        free(ch->body);
        free(ch->from);
        free(ch->username);
        free(ch->password_file);
        free(ch->ca_file);
    }
    free(n->channels);
    for (size_t i = 0; i < n->nroutes; i++) {
        struct gw_notify_route_config *r = &n->routes[i];
        free(r->channel_name);
        free_strings(r->rules, r->nrules);
        free_strings(r->severities, r->nseverities);
        free_strings(r->buildings, r->nbuildings);
        free_strings(r->categories, r->ncategories);
        free_strings(r->to, r->nto);
        free_strings(r->workorder_events, r->nworkorder_events);
        for (size_t k = 0; k < r->nescalation; k++)
            free_strings(r->escalation[k].to, r->escalation[k].nto);
        free(r->escalation);
    }
    free(n->routes);
    for (size_t i = 0; i < n->npeople; i++) {
        free(n->people[i].name);
        free(n->people[i].mobile);
        free(n->people[i].email);
    }
    free(n->people);
    free(n->console_url);
}

void gw_config_free(struct gw_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->gateway.id);
    free(c->gateway.site);
    free(c->gateway.data_dir);
    free(c->gateway.backup_dir);
    free(c->gateway.models_dir);
    free(c->gateway.timezone);
    char **mqtt_strings[] = { &c->mqtt.uri, &c->mqtt.client_id, &c->mqtt.username,
                              &c->mqtt.password_file, &c->mqtt.ca_file, &c->mqtt.cert_file,
                              &c->mqtt.key_file, &c->mqtt.topic_prefix, &c->mqtt.command_roles };
    for (size_t i = 0; i < NROWS(mqtt_strings); i++)
        free(*mqtt_strings[i]);
    for (size_t i = 0; i < c->nbuses; i++) {
        free(c->buses[i].name);
        free(c->buses[i].host);
        free(c->buses[i].device);
    }
    free(c->buses);
    for (size_t i = 0; i < c->nunits; i++) {
        free(c->units[i].id);
        free(c->units[i].building);
    }
    free(c->units);
    for (size_t i = 0; i < c->nmeters; i++)
        free_meter(&c->meters[i]);
    free(c->meters);
    for (size_t i = 0; i < c->npanels; i++) {
        struct gw_panel_config *p = &c->panels[i];
        for (size_t z = 0; p->zones && z < p->nzones; z++) {
            free(p->zones[z].name);
            free(p->zones[z].location);
        }
        free(p->zones);
        free(p->zone_addresses);
        free(p->id);
        free(p->location);
    }
    free(c->panels);
    free_strings(c->file_names, c->nfile_names);
    free_strings(c->workorders.escalation_roles, c->workorders.nescalation_roles);
    free_strings(c->workorders.escalation_contacts, c->workorders.nescalation_contacts);
    free(c->ctl.unix_accounts);
    free(c->http.listen);
    free(c->http.users_file);
    free(c->http.static_dir);
    free(c->http.hosts);
    free_notify(&c->notify);
    free(c);
}

void gw_config_errors_free(struct gw_config_errors *errors)
{
    if (!errors)
        return;
    free_strings(errors->messages, errors->count);
    errors->messages = NULL;
    errors->count = errors->cap = 0;
}

void gw_config_errors_print(const struct gw_config_errors *errors, FILE *out)
{
    for (size_t i = 0; i < errors->count; i++)
        fprintf(out, "%s\n", errors->messages[i]);
}

int gw_config_meter_index(const struct gw_config *config, const char *id)
{
    return meter_find(config->meters, config->nmeters, id);
}

int gw_config_unit_index(const struct gw_config *config, const char *id)
{
    for (size_t i = 0; i < config->nunits; i++)
        if (config->units[i].id && strcmp(config->units[i].id, id) == 0)
            return (int)i;
    return -1;
}

int gw_config_panel_index(const struct gw_config *config, const char *id)
{
    for (size_t i = 0; i < config->npanels; i++)
        if (config->panels[i].id && strcmp(config->panels[i].id, id) == 0)
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Key listing (estate-gw --print-config-keys, the man page's keys)    */
/* ------------------------------------------------------------------ */

/* What a row's value may be, in words for the manual. */
static void print_value_words(FILE *out, const struct key_row *row)
{
    switch (row->type) {
    case K_INT:
    case K_U16:
    case K_UINT:
        if (row->min > INT_MIN || row->max < INT_MAX)
            fprintf(out, "integer %.0f..%.0f", row->min, row->max);
        else
            fputs("integer", out);
        return;
    case K_DOUBLE:
        if (row->min > -1e300 || row->max < 1e300)
            fprintf(out, "number %g..%g", row->min, row->max);
        else
            fputs("number", out);
        return;
    case K_BOOL:
        fputs("true or false", out);
        return;
    case K_ENUM:
        fputs("one of", out);
        for (size_t k = 0; row->names[k]; k++)
            fprintf(out, "%s %s", k ? "," : "", row->names[k]);
        return;
    case K_PARITY:
        fputs("one of N, E, O", out);
        return;
    case K_IDENT:
        fputs("identifier", out);
        return;
    case K_PATH:
        fputs("path (relative to the config file)", out);
        return;
    case K_FILE:
        fputs("readable file (relative to the config file)", out);
        return;
    case K_DIR:
        fputs("directory (relative to the config file)", out);
        return;
    case K_STR:
    case K_CUSTOM:
        fputs("string", out);
        return;
    case K_SETTING:
        fputs("group or list", out);
        return;
    }
}

static void print_rows(FILE *out, const char *prefix, const struct key_row *rows, size_t nrows)
{
    for (size_t r = 0; r < nrows; r++) {
        fprintf(out, "%s.%s\t", prefix, rows[r].name);
        print_value_words(out, &rows[r]);
        fputc('\n', out);
    }
}

void gw_config_print_keys(FILE *out)
{
    print_rows(out, "gateway", gateway_rows, NROWS(gateway_rows));
    print_rows(out, "mqtt", mqtt_rows, NROWS(mqtt_rows));
    print_rows(out, "buses[]", bus_rows, NROWS(bus_rows));
    print_rows(out, "units[]", unit_rows, NROWS(unit_rows));
    print_rows(out, "meters[]", meter_rows, NROWS(meter_rows));
    fputs("meters_csv\tpath (relative to the config file)\n", out);
    print_rows(out, "fire_panels[]", panel_rows, NROWS(panel_rows));
    print_rows(out, "fire_panels[].zone_names[]", zone_rows, NROWS(zone_rows));
    size_t nparams;
    const struct rule_param *params = rule_params(&nparams);
    for (size_t k = 0; k < nparams; k++) {
        struct key_row row = rule_param_row(&params[k]);
        fprintf(out, "rules.%s.%s\t", rule_name(params[k].rule), params[k].name);
        if (params[k].type == RULE_PARAM_SEVERITY)
            fputs("one of info, minor, major, critical", out);
        else
            print_value_words(out, &row);
        fputc('\n', out);
    }
    print_rows(out, "workorders", workorder_rows, NROWS(workorder_rows));
    fputs("workorders.escalation.roles\tlist of frontdesk, engineer, supervisor, viewer\n", out);
    fputs("workorders.escalation.contacts\tlist of strings\n", out);
    print_rows(out, "http", http_rows, NROWS(http_rows));
    print_rows(out, "retention", retention_rows, NROWS(retention_rows));
    print_rows(out, "ctl", ctl_rows, NROWS(ctl_rows));
    print_rows(out, "notify", notify_rows, NROWS(notify_rows));
    print_rows(out, "notify.channels[]", notify_channel_rows, NROWS(notify_channel_rows));
    print_rows(out, "notify.routes[]", notify_route_rows, NROWS(notify_route_rows));
    print_rows(out, "notify.routes[].escalation[]", notify_level_rows, NROWS(notify_level_rows));
    print_rows(out, "notify.people[]", notify_person_rows, NROWS(notify_person_rows));
}

bool gw_config_ctl_account_user(const struct gw_config *config, const char *account, char *out,
                                size_t outlen)
{
    const char *list = config != NULL ? config->ctl.unix_accounts : NULL;
    if (list == NULL || account == NULL || outlen == 0)
        return false;
    size_t want = strlen(account);
    for (const char *p = list + strspn(list, ", "); *p;) {
        size_t len = strcspn(p, ", ");
        const char *colon = memchr(p, ':', len);
        if (colon != NULL && (size_t)(colon - p) == want && strncmp(p, account, want) == 0) {
            size_t ulen = len - want - 1;
            if (ulen >= outlen)
                return false;
            memcpy(out, colon + 1, ulen);
            out[ulen] = '\0';
            return true;
        }
        p += len;
        p += strspn(p, ", ");
    }
    return false;
}
