/* bench_heap.h - the heap a benchmark holds, for the memory figures of
 * bench_rules and bench_config (glibc's mallinfo2: small chunks in use plus
 * mmapped ones, malloc's own chunk overhead included). */
#ifndef BENCH_HEAP_H
#define BENCH_HEAP_H

#include <malloc.h>
#include <stddef.h>

/* Bytes of heap in use; 0 where glibc is older than 2.33 or absent. */
static inline size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

#endif
