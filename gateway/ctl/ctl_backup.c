/* ctl_backup.c - estate-ctl backup [DIR] (an online copy of the database,
 * verified before it is kept) and restore FILE (only while the gateway is
 * stopped, only a copy that verifies). See docs/reliability.md. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "est_tz.h"
#include "est_alloc.h"

#define BACKUP_SUBDIR "backups"
#define BACKUP_PAGES_PER_STEP 256 /* 1 MiB at 4 KiB pages */
#define BACKUP_PAUSE_MS 2
#define COPY_CHUNK 65536

/* "YYYYmmdd-HHMMSS" of now in site time (the config's timezone). */
static void site_stamp(const struct ctl *c, char out[32])
{
    struct tm tm;
    est_tz_local(c->config->gateway.timezone, est_now_ms(), &tm);
    strftime(out, 32, "%Y%m%d-%H%M%S", &tm);
}

/* Prints what the check found; returns whether the copy is sound. */
static bool report_check(const struct ctl *c, const char *path,
                         const struct gw_store_copy_check *check)
{
    bool sound = gw_store_copy_sound(check);
    const struct gw_store_patrol_verify *v = &check->patrol;
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddBoolToObject(o, "ok", sound);
        cJSON_AddStringToObject(o, "integrity",
                                check->integrity_problem ? check->integrity_problem : "ok");
        cJSON *p = cJSON_AddObjectToObject(o, "patrol");
        cJSON_AddBoolToObject(p, "intact", v->first_bad_seq == 0);
        cJSON_AddNumberToObject(p, "entries", (double)v->count);
        cJSON_AddNumberToObject(p, "head_seq", (double)v->head_seq);
        cJSON_AddStringToObject(p, "head_hash", v->head_hash);
        cJSON_AddNumberToObject(p, "anchors", (double)v->anchors);
        if (v->first_bad_seq != 0) {
            cJSON_AddNumberToObject(p, "first_bad_seq", (double)v->first_bad_seq);
            cJSON_AddStringToObject(p, "problem", v->problem ? v->problem : "");
        }
        ctl_print_json(o);
        cJSON_Delete(o);
        return sound;
    }
    printf("%s\n", path);
    printf("  integrity_check: %s\n", check->integrity_problem ? check->integrity_problem : "ok");
    if (v->first_bad_seq == 0)
        printf("  patrol chain: intact, %lld entries, head %lld %s\n", (long long)v->count,
               (long long)v->head_seq, v->head_hash);
    else
        printf("  patrol chain: BROKEN at seq %lld: %s\n", (long long)v->first_bad_seq,
               v->problem ? v->problem : "");
    printf("  archive anchors: %lld checked%s\n", (long long)v->anchors,
           v->anchors > 0 && v->first_bad_seq == 0 ? ", all match" : "");
    return sound;
}

/* Checks the copy at path: 0 when sound, else 1 after printing why. */
static int check_copy(const struct ctl *c, const char *path)
{
    struct gw_store_copy_check check;
    char err[512];
    if (gw_store_verify_copy(path, &check, err, sizeof err) != EST_OK) {
        fprintf(stderr, "estate-ctl: %s cannot be checked: %s\n", path, err);
        return EST_EXIT_RUNTIME;
    }
    bool sound = report_check(c, path, &check);
    gw_store_copy_check_free(&check);
    if (!sound)
        fprintf(stderr, "estate-ctl: %s does not verify\n", path);
    return sound ? 0 : EST_EXIT_RUNTIME;
}

static char *backup_dir(struct ctl *c)
{
    const char *dir = ctl_positional(c, 0);
    if (dir != NULL)
        return strdup(dir);
    if (c->config->gateway.backup_dir != NULL)
        return strdup(c->config->gateway.backup_dir);
    return est_asprintf("%s/%s", c->config->gateway.data_dir, BACKUP_SUBDIR);
}

int ctl_verb_backup(struct ctl *c)
{
    char *dir = backup_dir(c);
    int rc = ctl_leftover_arguments(c);
    if (dir == NULL || rc != 0) {
        free(dir);
        return rc != 0 ? rc : EST_EXIT_RUNTIME;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "estate-ctl: %s: %s\n", dir, strerror(errno));
        free(dir);
        return EST_EXIT_RUNTIME;
    }
    char stamp[32];
    site_stamp(c, stamp);
    char *path = est_asprintf("%s/estate-%s.db", dir, stamp);
    free(dir);
    struct gw_store *store = path ? ctl_open_store(c, true) : NULL;
    if (store == NULL) {
        free(path);
        return EST_EXIT_RUNTIME;
    }
    if (gw_store_backup_to(store, path, BACKUP_PAGES_PER_STEP, BACKUP_PAUSE_MS) != EST_OK) {
        free(path);
        return ctl_store_failure(store, "backup");
    }
    gw_store_close(store);
    rc = check_copy(c, path);
    if (rc != 0) {
        unlink(path);
        fprintf(stderr, "estate-ctl: the copy was deleted\n");
    }
    free(path);
    return rc;
}

/* Copies from into a new file to (mode 0600), fsynced. */
static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY);
    int out = in >= 0 ? open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char *buf = rc == 0 ? malloc(COPY_CHUNK) : NULL;
    if (rc == 0 && buf == NULL)
        rc = -1;
    ssize_t n = 0;
    while (rc == 0 && (n = read(in, buf, COPY_CHUNK)) > 0)
        for (ssize_t done = 0; rc == 0 && done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0)
                rc = -1;
            else
                done += w;
        }
    if (n < 0 || (rc == 0 && fsync(out) != 0))
        rc = -1;
    free(buf);
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

static void remove_side_files(const char *db)
{
    char *wal = est_asprintf("%s-wal", db), *shm = est_asprintf("%s-shm", db);
    if (wal != NULL)
        unlink(wal);
    if (shm != NULL)
        unlink(shm);
    free(wal);
    free(shm);
}

/* Puts file in place of the live database, keeping the replaced one. */
static int put_in_place(const struct ctl *c, const char *file, bool had_live)
{
    const char *data_dir = c->config->gateway.data_dir;
    char stamp[32];
    site_stamp(c, stamp);
    char *live = est_asprintf("%s/%s", data_dir, GW_STORE_DB_FILE);
    char *kept = est_asprintf("%s.before-restore-%s", live ? live : "", stamp);
    char *incoming = est_asprintf("%s.restoring", live ? live : "");
    int rc = live && kept && incoming ? 0 : EST_EXIT_RUNTIME;
    if (rc == 0 && copy_file(file, incoming) != 0) {
        fprintf(stderr, "estate-ctl: cannot copy %s to %s: %s\n", file, incoming, strerror(errno));
        unlink(incoming);
        rc = EST_EXIT_RUNTIME;
    }
    if (rc == 0 && had_live && rename(live, kept) != 0) {
        fprintf(stderr, "estate-ctl: cannot keep %s as %s: %s\n", live, kept, strerror(errno));
        unlink(incoming);
        rc = EST_EXIT_RUNTIME;
    }
    if (rc == 0) {
        remove_side_files(live);
        if (rename(incoming, live) != 0) {
            fprintf(stderr, "estate-ctl: cannot move %s to %s: %s\n", incoming, live,
                    strerror(errno));
            rc = EST_EXIT_RUNTIME;
        }
    }
    if (rc == 0 && !c->json) {
        printf("restored %s to %s\n", file, live);
        if (had_live)
            printf("the replaced database is kept as %s\n", kept);
    }
    free(live);
    free(kept);
    free(incoming);
    return rc;
}

int ctl_verb_restore(struct ctl *c)
{
    const char *file = ctl_positional(c, 0);
    int rc = ctl_leftover_arguments(c);
    if (rc != 0)
        return rc;
    if (file == NULL)
        return ctl_usage_error("restore needs the backup FILE");
    rc = check_copy(c, file);
    if (rc != 0) {
        fprintf(stderr, "estate-ctl: refusing to restore it\n");
        return rc;
    }
    char err[512];
    est_err e = gw_store_quiesce_for_restore(c->config->gateway.data_dir, err, sizeof err);
    if (e != EST_OK && e != EST_ERR_NOTFOUND) {
        fprintf(stderr, "estate-ctl: refusing to restore: %s/%s: %s\n",
                c->config->gateway.data_dir, GW_STORE_DB_FILE, err);
        return EST_EXIT_RUNTIME;
    }
    if (mkdir(c->config->gateway.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "estate-ctl: %s: %s\n", c->config->gateway.data_dir, strerror(errno));
        return EST_EXIT_RUNTIME;
    }
    return put_in_place(c, file, e == EST_OK);
}
