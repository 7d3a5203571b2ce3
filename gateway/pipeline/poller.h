/* poller.h - one thread per bus. It owns the bus's Modbus link and polls
 * each device on the bus when due (a heap ordered by due time), decodes the
 * registers through the device's read plan and pushes a gw_sample to the
 * core queue. A failing device gets one attempt per poll and is polled less
 * often (doubling up to a cap) until it answers, so it never delays its bus
 * neighbours beyond one timeout. Valve writes are queued to the bus thread so
 * requests on one bus never interleave. */
#ifndef GW_POLLER_H
#define GW_POLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"

struct gw_poller;

/* Starts the thread for config->buses[bus]. config and samples must outlive
 * the poller. Its samples carry generation (the core's number for config:
 * their index is into config's meters or panels, see gw_core_reload). */
est_err gw_poller_start(const struct gw_config *config, size_t bus, struct gw_queue *samples,
                        uint32_t generation, struct gw_poller **out);
/* Stops the thread (finishes the current request first) and frees it. */
void gw_poller_stop(struct gw_poller *poller);

/* Queues a valve write for meter (which must be on this bus); the result
 * comes back as a GW_ITEM_VALVE_RESULT item, followed by a fresh sample. */
est_err gw_poller_request_valve(struct gw_poller *poller, uint32_t meter, bool close,
                                const char *requested_by);

/* Upper bounds (seconds) of the poll latency histogram's buckets; one more
 * bucket past the last takes the rest. */
#define GW_POLL_LATENCY_BUCKETS 9
extern const double gw_poll_latency_bounds_s[GW_POLL_LATENCY_BUCKETS];

struct gw_poller_stats {
    uint64_t polls;
    uint64_t failed_polls;
    uint64_t timeout_polls;        /* polls whose first failed request timed out */
    uint64_t transactions;
    uint64_t failed_transactions;
    uint64_t latency_counts[GW_POLL_LATENCY_BUCKETS + 1]; /* polls per bucket (not cumulative) */
    double latency_sum_s;          /* time every poll took, summed */
};
void gw_poller_get_stats(struct gw_poller *poller, struct gw_poller_stats *stats);

#endif
