/* est_alloc.h - allocation helpers shared by every part: a growable array
 * (capacity doubling with overflow checks) and printf into a new string. */
#ifndef EST_ALLOC_H
#define EST_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

#include "estate.h"

/* Makes *items (an array of *cap elements of item_size bytes) hold at least
 * need elements: grows to max(need, 2 * cap, 8). On failure (EST_ERR_NOMEM
 * for allocation or size overflow) *items and *cap are unchanged. */
est_err est_vec_reserve(void **items, size_t *cap, size_t need, size_t item_size);

/* est_vec_reserve for a typed pointer: EST_VEC_RESERVE(rows, cap, n + 1). */
#define EST_VEC_RESERVE(items, cap, need)                                                     \
    est_vec_reserve((void **)&(items), &(cap), (need), sizeof *(items))

/* printf into a new malloc'ed string; NULL when out of memory or when the
 * format fails. */
char *est_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *est_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
