/* ctl_common.c - what every estate-ctl verb uses: its arguments (options,
 * positionals, times), output (JSON or table) and the store and daemon. */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define DAEMON_WAIT_MS 10000
#define DAEMON_POLL_MS 100

/* ------------------------------------------------------------------ */
/* Command-line helpers                                                */
/* ------------------------------------------------------------------ */

int ctl_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "estate-ctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see estate-ctl --help)\n");
    va_end(ap);
    return EST_EXIT_USAGE;
}

/* The value of "--name VALUE" or "--name=VALUE" among the verb's
 * arguments (NULL if absent); marks it used. *missing set when the option
 * is present without a value. */
const char *ctl_option_value(struct ctl *c, const char *name, bool *missing)
{
    size_t len = strlen(name);
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (strncmp(a, name, len) != 0)
            continue;
        if (a[len] == '=') {
            c->used[i] = true;
            return a + len + 1;
        }
        if (a[len] == '\0') {
            c->used[i] = true;
            if (i + 1 >= c->argc) {
                *missing = true;
                return NULL;
            }
            c->used[i + 1] = true;
            return c->argv[i + 1];
        }
    }
    return NULL;
}

bool ctl_option_flag(struct ctl *c, const char *name)
{
    for (int i = 1; i < c->argc; i++)
        if (strcmp(c->argv[i], name) == 0) {
            c->used[i] = true;
            return true;
        }
    return false;
}

/* The n-th (0-based) argument after the verb that is not an option. */
const char *ctl_positional(struct ctl *c, int n)
{
    for (int i = 1; i < c->argc; i++) {
        if (c->used[i] || (c->argv[i][0] == '-' && c->argv[i][1] == '-'))
            continue;
        if (n-- == 0) {
            c->used[i] = true;
            return c->argv[i];
        }
    }
    return NULL;
}

/* After a verb took what it knows: anything left is a usage error. */
int ctl_leftover_arguments(const struct ctl *c)
{
    for (int i = 1; i < c->argc; i++)
        if (!c->used[i])
            return ctl_usage_error("unexpected argument '%s'", c->argv[i]);
    return 0;
}

bool ctl_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (text == NULL || *text == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* RFC 3339, or relative to now: "+2h", "+3d", "-24h". */
bool ctl_parse_time(const char *text, int64_t *ms)
{
    if (text == NULL)
        return false;
    if ((text[0] == '+' || text[0] == '-') && strlen(text) >= 3) {
        size_t len = strlen(text);
        char unit = text[len - 1];
        int64_t scale = unit == 'm' ? 60000 : unit == 'h' ? 3600000 : unit == 'd' ? 86400000 : 0;
        char digits[24];
        if (scale == 0 || len - 2 >= sizeof digits)
            return false;
        memcpy(digits, text + 1, len - 2);
        digits[len - 2] = '\0';
        int64_t n = 0;
        if (!ctl_parse_int64(digits, 0, 100000, &n))
            return false;
        *ms = est_now_ms() + (text[0] == '+' ? 1 : -1) * n * scale;
        return true;
    }
    return est_parse_ts(text, ms) == EST_OK;
}

/* Who is asking: the Unix account (the daemon maps it to a gateway user,
 * ctl.unix_accounts), the sudo caller behind root, and --user. */
static void add_caller(const struct ctl *c, cJSON *args)
{
    uid_t uid = getuid();
    const struct passwd *pw = getpwuid(uid);
    cJSON_DeleteItemFromObjectCaseSensitive(args, "user");
    cJSON_AddNumberToObject(args, "unix_uid", (double)uid);
    if (pw != NULL && pw->pw_name != NULL)
        cJSON_AddStringToObject(args, "unix_account", pw->pw_name);
    const char *sudo_user = getenv("SUDO_USER");
    if (uid == 0 && sudo_user != NULL && *sudo_user != '\0')
        cJSON_AddStringToObject(args, "sudo_user", sudo_user);
    if (c->user != NULL)
        cJSON_AddStringToObject(args, "user", c->user);
}

/* ------------------------------------------------------------------ */
/* Output helpers                                                      */
/* ------------------------------------------------------------------ */

void ctl_print_json(const cJSON *item)
{
    char *s = cJSON_Print(item);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

/* Rows as JSON (--json), CSV (--csv) or an aligned table. */
void ctl_print_rows(const struct ctl *c, const cJSON *rows, const struct gw_table_column *cols,
                       size_t ncols)
{
    if (c->json)
        ctl_print_json(rows);
    else
        gw_table_print(stdout, rows, cols, ncols, c->csv);
}



/* ------------------------------------------------------------------ */
/* Store access                                                        */
/* ------------------------------------------------------------------ */

struct gw_store *ctl_open_store(const struct ctl *c, bool readonly)
{
    struct gw_store *store = NULL;
    char err[512];
    est_err e = gw_store_open(c->config->gateway.data_dir, readonly, &store, err, sizeof err);
    if (e == EST_ERR_NOTFOUND)
        fprintf(stderr, "estate-ctl: no database in %s (has estate-gw run with this config?)\n",
                c->config->gateway.data_dir);
    else if (e != EST_OK)
        fprintf(stderr, "estate-ctl: %s/%s: %s\n", c->config->gateway.data_dir, GW_STORE_DB_FILE, err);
    return store;
}

struct gw_store *ctl_open_for_reading(struct ctl *c, int *status)
{
    *status = ctl_leftover_arguments(c);
    if (*status != 0)
        return NULL;
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        *status = EST_EXIT_RUNTIME;
    return store;
}

int ctl_store_failure(struct gw_store *store, const char *what)
{
    fprintf(stderr, "estate-ctl: %s: %s\n", what, gw_store_errmsg(store));
    gw_store_close(store);
    return EST_EXIT_RUNTIME;
}

/* Queues verb/args for the daemon and waits for its answer. 0 with
 * *result set, or 1 after printing why. */
int ctl_ask_daemon(const struct ctl *c, const char *verb, cJSON *args, cJSON **result)
{
    *result = NULL;
    add_caller(c, args);
    char *json = cJSON_PrintUnformatted(args);
    struct gw_store *store = json ? ctl_open_store(c, false) : NULL;
    if (store == NULL) {
        free(json);
        return EST_EXIT_RUNTIME;
    }
    int64_t id = 0;
    est_err err = gw_store_ctl_submit(store, verb, json, est_now_ms(), &id);
    free(json);
    if (err != EST_OK)
        return ctl_store_failure(store, "cannot queue the request");
    bool done = false;
    char *answer = NULL;
    for (int waited = 0; waited <= DAEMON_WAIT_MS && !done; waited += DAEMON_POLL_MS) {
        if (gw_store_ctl_result(store, id, &done, &answer) != EST_OK)
            return ctl_store_failure(store, "cannot read the answer");
        if (!done)
            est_sleep_ms(DAEMON_POLL_MS);
    }
    gw_store_close(store);
    if (!done) {
        fprintf(stderr, "estate-ctl: the gateway did not answer within %d s: is estate-gw running "
                        "with %s?\n",
                DAEMON_WAIT_MS / 1000, c->config_path);
        return EST_EXIT_RUNTIME;
    }
    *result = answer ? cJSON_Parse(answer) : NULL;
    free(answer);
    if (*result == NULL) {
        fprintf(stderr, "estate-ctl: the gateway's answer is not JSON\n");
        return EST_EXIT_RUNTIME;
    }
    return 0;
}

/* Prints a refusal and returns 1, or 0 when the result is ok. */
int ctl_check_result(const struct ctl *c, const cJSON *result)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok")))
        return 0;
    if (c->json)
        ctl_print_json(result);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(result, "error");
    fprintf(stderr, "estate-ctl: refused: %s\n", cJSON_IsString(e) ? e->valuestring : "unknown error");
    return EST_EXIT_RUNTIME;
}

int ctl_request(const struct ctl *c, const char *verb, cJSON *args, cJSON **result)
{
    int rc = ctl_ask_daemon(c, verb, args, result);
    cJSON_Delete(args);
    if (rc == 0)
        rc = ctl_check_result(c, *result);
    if (rc != 0) {
        cJSON_Delete(*result);
        *result = NULL;
    }
    return rc;
}

bool ctl_json_out(const struct ctl *c, const cJSON *item)
{
    if (c->json)
        ctl_print_json(item);
    return c->json;
}

int ctl_list_done(const struct ctl *c, struct gw_store *store, est_err err, const char *what,
                  cJSON *rows, const struct gw_table_column *cols, size_t ncols)
{
    if (err != EST_OK) {
        cJSON_Delete(rows);
        return ctl_store_failure(store, what);
    }
    gw_store_close(store);
    ctl_print_rows(c, rows, cols, ncols);
    cJSON_Delete(rows);
    return 0;
}

cJSON *ctl_add_row(cJSON *rows)
{
    cJSON *row = cJSON_CreateObject();
    if (row != NULL && !cJSON_AddItemToArray(rows, row)) {
        cJSON_Delete(row);
        row = NULL;
    }
    return row;
}

void ctl_add_parsed(cJSON *o, const char *key, const char *json_text)
{
    cJSON *value = json_text != NULL ? cJSON_Parse(json_text) : NULL;
    if (value != NULL)
        cJSON_AddItemToObject(o, key, value);
}
