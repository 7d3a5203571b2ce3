/* queue.c - bounded ring buffer guarded by one mutex and two conditions. */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    size_t item_size;
    size_t capacity;
    size_t head;   /* next item to pop */
    size_t length;
    size_t push_waiters;   /* producers waiting for room */
    bool closed;
    unsigned char *items;
};

est_err gw_queue_create(size_t item_size, size_t capacity, struct gw_queue **out)
{
    if (item_size == 0 || capacity == 0)
        return EST_ERR_INVALID;
    struct gw_queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return EST_ERR_NOMEM;
    q->items = calloc(capacity, item_size);
    if (q->items == NULL) {
        free(q);
        return EST_ERR_NOMEM;
    }
    q->item_size = item_size;
    q->capacity = capacity;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_empty, &attr);
    pthread_cond_init(&q->not_full, &attr);
    pthread_condattr_destroy(&attr);
    *out = q;
    return EST_OK;
}

void gw_queue_destroy(struct gw_queue *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->items);
    free(q);
}

static struct timespec deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

est_err gw_queue_push(struct gw_queue *q, const void *item, int timeout_ms)
{
    size_t pushed = 0;
    return gw_queue_push_many(q, item, 1, timeout_ms, &pushed);
}

est_err gw_queue_push_many(struct gw_queue *q, const void *items, size_t n, int timeout_ms,
                           size_t *pushed)
{
    *pushed = 0;
    if (n == 0)
        return EST_OK;
    struct timespec deadline = deadline_after(timeout_ms);
    pthread_mutex_lock(&q->lock);
    while (!q->closed && q->length == q->capacity) {
        int rc = 0;
        if (timeout_ms > 0) {
            q->push_waiters++;
            rc = pthread_cond_timedwait(&q->not_full, &q->lock, &deadline);
            q->push_waiters--;
        }
        if ((timeout_ms <= 0 || rc == ETIMEDOUT) && q->length == q->capacity) {
            pthread_mutex_unlock(&q->lock);
            return EST_ERR_FULL;
        }
    }
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        return EST_ERR_STATE;
    }
    size_t room = q->capacity - q->length;
    size_t take = n < room ? n : room;
    for (size_t i = 0; i < take; i++) {
        size_t tail = (q->head + q->length) % q->capacity;
        memcpy(q->items + tail * q->item_size, (const unsigned char *)items + i * q->item_size,
               q->item_size);
        q->length++;
    }
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    *pushed = take;
    return take == n ? EST_OK : EST_ERR_FULL;
}

size_t gw_queue_pop_many(struct gw_queue *q, void *items, size_t max, int timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    pthread_mutex_lock(&q->lock);
    while (q->length == 0 && !q->closed && timeout_ms > 0) {
        if (pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline) == ETIMEDOUT)
            break;
    }
    size_t n = q->length < max ? q->length : max;
    for (size_t i = 0; i < n; i++) {
        memcpy((unsigned char *)items + i * q->item_size, q->items + q->head * q->item_size,
               q->item_size);
        q->head = (q->head + 1) % q->capacity;
    }
    q->length -= n;
    /* Wake as many waiting producers as there are freed slots (each one
     * takes at least one), not all of them for every pop. */
    if (n > 0 && q->push_waiters > 0) {
        if (n >= q->push_waiters)
            pthread_cond_broadcast(&q->not_full);
        else
            for (size_t i = 0; i < n; i++)
                pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

void gw_queue_close(struct gw_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

size_t gw_queue_length(struct gw_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->length;
    pthread_mutex_unlock(&q->lock);
    return n;
}
