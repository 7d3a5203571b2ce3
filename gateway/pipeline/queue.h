/* queue.h - a bounded, thread-safe FIFO of fixed-size items (copy in, copy
 * out), used between the poller threads, the MQTT callbacks and the core
 * thread. Producers never block forever: push waits at most timeout_ms. */
#ifndef GW_QUEUE_H
#define GW_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "estate.h"

struct gw_queue;

est_err gw_queue_create(size_t item_size, size_t capacity, struct gw_queue **out);
void gw_queue_destroy(struct gw_queue *queue);

/* Copies item in. Waits up to timeout_ms for room (0 = don't wait);
 * EST_ERR_FULL when there is none, EST_ERR_STATE after gw_queue_close. */
est_err gw_queue_push(struct gw_queue *queue, const void *item, int timeout_ms);

/* Copies n items in under one lock and one wake-up of the consumer, as many
 * as there is room for, waiting up to timeout_ms for room for the first.
 * *pushed receives how many went in (the first ones). EST_ERR_FULL when
 * fewer than n went in, EST_ERR_STATE after gw_queue_close. */
est_err gw_queue_push_many(struct gw_queue *queue, const void *items, size_t n, int timeout_ms,
                           size_t *pushed);

/* Copies up to max items out into items (an array of item_size slots),
 * waiting up to timeout_ms for the first one. Returns how many. */
size_t gw_queue_pop_many(struct gw_queue *queue, void *items, size_t max, int timeout_ms);

/* Wakes every waiter; later pushes fail. Pops still drain what is left. */
void gw_queue_close(struct gw_queue *queue);

size_t gw_queue_length(struct gw_queue *queue);

#endif
