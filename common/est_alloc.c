/* est_alloc.c - growable arrays and printf into a new string. */
#include "est_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define EST_VEC_MIN_CAP 8

est_err est_vec_reserve(void **items, size_t *cap, size_t need, size_t item_size)
{
    if (item_size == 0)
        return EST_ERR_INVALID;
    if (need <= *cap)
        return EST_OK;
    size_t grown = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
    if (grown < EST_VEC_MIN_CAP)
        grown = EST_VEC_MIN_CAP;
    if (grown < need)
        grown = need;
    if (grown > SIZE_MAX / item_size)
        grown = SIZE_MAX / item_size;
    if (grown < need)
        return EST_ERR_NOMEM;
    void *bigger = realloc(*items, grown * item_size);
    if (bigger == NULL)
        return EST_ERR_NOMEM;
    *items = bigger;
    *cap = grown;
    return EST_OK;
}

char *est_vasprintf(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int len = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (len < 0)
        return NULL;
    char *text = malloc((size_t)len + 1);
    if (text != NULL)
        vsnprintf(text, (size_t)len + 1, fmt, ap);
    return text;
}

char *est_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = est_vasprintf(fmt, ap);
    va_end(ap);
    return text;
}
