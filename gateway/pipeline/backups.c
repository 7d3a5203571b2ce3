/* backups.c - the daily backup of the gateway's database at backup_at (site
 * time) in a background thread with its own read-only connection, verified
 * like estate-ctl backup, then pruned to the newest backup_keep copies. */
#define _POSIX_C_SOURCE 200809L
#include "backups.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "est_alloc.h"
#include "est_tz.h"
#include "store.h"

#define FIRST_CHECK_MS 2000
#define CHECK_EVERY_MS 30000
#define PAGES_PER_STEP 128
#define PAUSE_MS 5
#define NAME_LEN (sizeof "estate-YYYYmmdd-HHMMSS.db" - 1)

struct gw_backups {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    const struct gw_config *config;
    char *dir;
};

/* Waits ms or until stopped; true when stopped. */
static bool wait_ms(struct gw_backups *b, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->lock);
    while (!b->stopping && pthread_cond_timedwait(&b->wake, &b->lock, &ts) == 0) {
    }
    bool stopping = b->stopping;
    pthread_mutex_unlock(&b->lock);
    return stopping;
}

/* Whether name is a backup's: estate-YYYYmmdd-HHMMSS.db. */
static bool is_backup_name(const char *name)
{
    if (strlen(name) != NAME_LEN || strncmp(name, "estate-", 7) != 0 || name[15] != '-' ||
        strcmp(name + 22, ".db") != 0)
        return false;
    for (size_t i = 7; i < 22; i++)
        if (i != 15 && (name[i] < '0' || name[i] > '9'))
            return false;
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The backup names in dir, sorted oldest first (names sort by time). */
static char **list_backups(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_backup_name(e->d_name))
            continue;
        if (*n == cap) {
            size_t grown_cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, grown_cap * sizeof *names);
            if (grown == NULL)
                break;
            names = grown;
            cap = grown_cap;
        }
        if ((names[*n] = strdup(e->d_name)) != NULL)
            (*n)++;
    }
    closedir(d);
    if (*n > 0)
        qsort(names, *n, sizeof *names, compare_names);
    return names;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Site time now as "YYYYmmdd-HHMMSS" and minutes after midnight. */
static int site_now(const struct gw_config *config, char stamp[32])
{
    struct tm tm;
    est_tz_local(config->gateway.timezone, est_now_ms(), &tm);
    strftime(stamp, 32, "%Y%m%d-%H%M%S", &tm);
    return tm.tm_hour * 60 + tm.tm_min;
}

/* Whether today's backup is due: backup_at has passed and dir holds no
 * backup of today taken at or after it. */
static bool due(const struct gw_backups *b, const char *stamp, int now_min)
{
    int at = b->config->gateway.backup_at_min;
    if (now_min < at)
        return false;
    char first[64];
    snprintf(first, sizeof first, "estate-%.8s-%02d%02d00.db", stamp, at / 60, at % 60);
    char today_end[64];
    snprintf(today_end, sizeof today_end, "estate-%.8s-999999.db", stamp);
    size_t n = 0;
    char **names = list_backups(b->dir, &n);
    bool taken = false;
    for (size_t i = 0; i < n && !taken; i++)
        taken = strcmp(names[i], first) >= 0 && strcmp(names[i], today_end) <= 0;
    free_names(names, n);
    return !taken;
}

/* Deletes all but the newest backup_keep backups. */
static void prune(const struct gw_backups *b)
{
    size_t n = 0;
    char **names = list_backups(b->dir, &n);
    size_t keep = (size_t)b->config->gateway.backup_keep;
    for (size_t i = 0; n > keep && i < n - keep; i++) {
        char *path = est_asprintf("%s/%s", b->dir, names[i]);
        if (path != NULL && unlink(path) == 0)
            gw_info("store: backup %s deleted (backup_keep %zu)", path, keep);
        free(path);
    }
    free_names(names, n);
}

/* Takes, verifies and keeps (or deletes) one backup at path. */
static bool take_backup(struct gw_backups *b, const char *path)
{
    struct gw_store *store = NULL;
    char reason[512];
    if (gw_store_open(b->config->gateway.data_dir, true, &store, reason, sizeof reason) !=
        EST_OK) {
        gw_warn("store: backup: cannot open the database read-only: %s", reason);
        return false;
    }
    est_err err = gw_store_backup_to(store, path, PAGES_PER_STEP, PAUSE_MS);
    if (err != EST_OK)
        gw_warn("store: backup to %s failed: %s", path, gw_store_errmsg(store));
    gw_store_close(store);
    if (err != EST_OK)
        return false;
    struct gw_store_copy_check check;
    err = gw_store_verify_copy(path, &check, reason, sizeof reason);
    bool sound = err == EST_OK && gw_store_copy_sound(&check);
    if (err != EST_OK)
        gw_warn("store: backup %s cannot be checked: %s (deleted)", path, reason);
    else if (!sound)
        gw_warn("store: backup %s does not verify: %s%s (deleted)", path,
                check.integrity_problem ? check.integrity_problem : "patrol chain broken: ",
                check.integrity_problem ? "" : (check.patrol.problem ? check.patrol.problem : ""));
    else
        gw_info("store: backup %s taken: integrity ok, patrol chain intact (%lld entries, "
                "%lld anchors)",
                path, (long long)check.patrol.count, (long long)check.patrol.anchors);
    gw_store_copy_check_free(&check);
    if (!sound)
        unlink(path);
    return sound;
}

static void check_once(struct gw_backups *b)
{
    char stamp[32];
    int now_min = site_now(b->config, stamp);
    if (!due(b, stamp, now_min))
        return;
    if (mkdir(b->dir, 0700) != 0 && errno != EEXIST) {
        gw_warn("store: backup: %s: %s", b->dir, strerror(errno));
        return;
    }
    char *path = est_asprintf("%s/estate-%s.db", b->dir, stamp);
    if (path != NULL && take_backup(b, path))
        prune(b);
    free(path);
}

static void *run(void *arg)
{
    struct gw_backups *b = arg;
    int64_t wait = FIRST_CHECK_MS;
    while (!wait_ms(b, wait)) {
        check_once(b);
        wait = CHECK_EVERY_MS;
    }
    return NULL;
}

est_err gw_backups_start(const struct gw_config *config, struct gw_backups **out)
{
    *out = NULL;
    if (config->gateway.backup_keep <= 0)
        return EST_OK;
    struct gw_backups *b = calloc(1, sizeof *b);
    if (b == NULL)
        return EST_ERR_NOMEM;
    b->config = config;
    b->dir = config->gateway.backup_dir ? strdup(config->gateway.backup_dir)
                                        : est_asprintf("%s/backups", config->gateway.data_dir);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    if (b->dir == NULL || pthread_create(&b->thread, NULL, run, b) != 0) {
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->wake);
        free(b->dir);
        free(b);
        return EST_ERR_NOMEM;
    }
    *out = b;
    return EST_OK;
}

void gw_backups_stop(struct gw_backups *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b->dir);
    free(b);
}
