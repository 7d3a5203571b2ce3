/* unproven.h - readings handed to the broker at QoS 0 that no later PUBACK
 * has yet shown to have arrived: kept in memory, oldest first, so that a
 * silent link does not lose them (the core puts them back in the outbox). */
#ifndef GW_UNPROVEN_H
#define GW_UNPROVEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_unproven;

/* At most max_entries readings are kept; beyond that the oldest goes. */
struct gw_unproven *gw_unproven_create(size_t max_entries);
void gw_unproven_destroy(struct gw_unproven *w);

/* end_pos: the publisher ring's position after the reading's record. */
bool gw_unproven_add(struct gw_unproven *w, const char *topic, const void *payload, size_t len,
                     uint64_t end_pos);
/* Forgets every reading whose record ends at or before proven_pos. */
void gw_unproven_forget_upto(struct gw_unproven *w, uint64_t proven_pos);
size_t gw_unproven_count(const struct gw_unproven *w);
/* Readings that were pushed out by max_entries since creation. */
uint64_t gw_unproven_overflowed(const struct gw_unproven *w);

/* Calls fn for each kept reading, oldest first, and then forgets them all. */
typedef void (*gw_unproven_fn)(void *ctx, const char *topic, const void *payload, size_t len);
void gw_unproven_take_all(struct gw_unproven *w, gw_unproven_fn fn, void *ctx);

#endif
