/* unproven.c - a FIFO of copied QoS 0 readings not yet proven delivered
 * (see unproven.h), as a ring of entries each with one heap copy. */
#include "unproven.h"

#include <stdlib.h>
#include <string.h>

struct unproven_entry {
    char *topic;     /* topic, NUL, payload in one allocation */
    size_t len;      /* payload bytes */
    uint64_t end_pos;
};

struct gw_unproven {
    struct unproven_entry *entries;
    size_t capacity;
    size_t head;     /* oldest */
    size_t count;
    uint64_t overflowed;
};

struct gw_unproven *gw_unproven_create(size_t max_entries)
{
    struct gw_unproven *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->entries = calloc(max_entries, sizeof *w->entries);
    if (w->entries == NULL) {
        free(w);
        return NULL;
    }
    w->capacity = max_entries;
    return w;
}

static void forget_oldest(struct gw_unproven *w)
{
    free(w->entries[w->head].topic);
    w->entries[w->head].topic = NULL;
    w->head = (w->head + 1) % w->capacity;
    w->count--;
}

void gw_unproven_destroy(struct gw_unproven *w)
{
    if (w == NULL)
        return;
    while (w->count > 0)
        forget_oldest(w);
    free(w->entries);
    free(w);
}

bool gw_unproven_add(struct gw_unproven *w, const char *topic, const void *payload, size_t len,
                     uint64_t end_pos)
{
    size_t tlen = strlen(topic);
    char *copy = malloc(tlen + 1 + len);
    if (copy == NULL)
        return false;
    memcpy(copy, topic, tlen + 1);
    memcpy(copy + tlen + 1, payload, len);
    if (w->count == w->capacity) {
        forget_oldest(w);
        w->overflowed++;
    }
    w->entries[(w->head + w->count) % w->capacity] =
        (struct unproven_entry){.topic = copy, .len = len, .end_pos = end_pos};
    w->count++;
    return true;
}

void gw_unproven_forget_upto(struct gw_unproven *w, uint64_t proven_pos)
{
    while (w->count > 0 && w->entries[w->head].end_pos <= proven_pos)
        forget_oldest(w);
}

size_t gw_unproven_count(const struct gw_unproven *w) { return w->count; }

uint64_t gw_unproven_overflowed(const struct gw_unproven *w) { return w->overflowed; }

void gw_unproven_take_all(struct gw_unproven *w, gw_unproven_fn fn, void *ctx)
{
    while (w->count > 0) {
        const struct unproven_entry *e = &w->entries[w->head];
        fn(ctx, e->topic, e->topic + strlen(e->topic) + 1, e->len);
        forget_oldest(w);
    }
}
