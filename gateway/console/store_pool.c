/* store_pool.c - a few read-only store connections the console's reads share. */
#include <pthread.h>

#include "console_internal.h"
#include "config.h"

struct gw_store *console_store_acquire(struct gw_http *http, size_t *slot)
{
    pthread_mutex_lock(&http->pool_lock);
    for (;;) {
        for (size_t i = 0; i < STORE_POOL; i++) {
            if (http->pool_busy[i])
                continue;
            if (!http->pool[i]) {
                char reason[256];
                if (gw_store_open(http->config->gateway.data_dir, true, &http->pool[i], reason,
                                  sizeof reason) != EST_OK) {
                    pthread_mutex_unlock(&http->pool_lock);
                    gw_warn("http: cannot open the database read-only: %s", reason);
                    return NULL;
                }
            }
            http->pool_busy[i] = true;
            *slot = i;
            pthread_mutex_unlock(&http->pool_lock);
            return http->pool[i];
        }
        pthread_cond_wait(&http->pool_cond, &http->pool_lock);
    }
}

void console_store_release(struct gw_http *http, size_t slot)
{
    pthread_mutex_lock(&http->pool_lock);
    http->pool_busy[slot] = false;
    pthread_cond_signal(&http->pool_cond);
    pthread_mutex_unlock(&http->pool_lock);
}

void console_store_pool_close(struct gw_http *http)
{
    for (size_t i = 0; i < STORE_POOL; i++)
        gw_store_close(http->pool[i]);
}
