/* integrity.c - the periodic PRAGMA integrity_check of the gateway's
 * database on a read-only connection of its own, in a background thread. */
#include "integrity.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "store.h"

struct gw_integrity {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    char *data_dir;
    int64_t every_ms;
    char *problem;      /* found and not yet taken */
};

/* Waits every_ms or until stopped; true when stopped. */
static bool wait_interval(struct gw_integrity *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(c->every_ms / 1000);
    ts.tv_nsec += (long)(c->every_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    while (!c->stopping && pthread_cond_timedwait(&c->wake, &c->lock, &ts) == 0) {
    }
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return stopping;
}

static void check_once(struct gw_integrity *c)
{
    struct gw_store *store = NULL;
    char reason[256];
    char *problem = NULL;
    if (gw_store_open(c->data_dir, true, &store, reason, sizeof reason) != EST_OK) {
        gw_warn("store: integrity check: cannot open the database read-only: %s", reason);
        return;
    }
    if (gw_store_check_integrity(store, true, &problem) != EST_OK)
        gw_warn("store: integrity check could not run: %s", gw_store_errmsg(store));
    gw_store_close(store);
    if (problem == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    free(c->problem);
    c->problem = problem;
    pthread_mutex_unlock(&c->lock);
}

static void *run(void *arg)
{
    struct gw_integrity *c = arg;
    while (!wait_interval(c))
        check_once(c);
    return NULL;
}

est_err gw_integrity_start(const char *data_dir, int64_t every_ms, struct gw_integrity **out)
{
    struct gw_integrity *c = calloc(1, sizeof *c);
    if (c == NULL)
        return EST_ERR_NOMEM;
    c->data_dir = strdup(data_dir);
    c->every_ms = every_ms > 0 ? every_ms : 3600000;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (c->data_dir == NULL || pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        free(c->data_dir);
        free(c);
        return EST_ERR_NOMEM;
    }
    *out = c;
    return EST_OK;
}

char *gw_integrity_take(struct gw_integrity *c)
{
    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&c->lock);
    char *problem = c->problem;
    c->problem = NULL;
    pthread_mutex_unlock(&c->lock);
    return problem;
}

void gw_integrity_stop(struct gw_integrity *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    free(c->problem);
    free(c->data_dir);
    free(c);
}
