/* cnproto_frame.h - what dlt645.c and cjt188.c share inside drivers/: the
 * frame layout both protocols use (68 <header> C L DATA CS 16), a writer
 * and the resynchronising scanner. Not part of the public API. */
#ifndef CNPROTO_FRAME_H
#define CNPROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnproto.h"

/* Where a protocol's frame differs: header_len bytes from the first 68 up
 * to C (DL/T 645: 68 A0..A5 68 = 8, CJ/T 188: 68 T A0..A6 = 9), and
 * whether the last header byte is a second 68. */
struct cn_layout {
    size_t header_len;
    bool second_start;
    uint8_t data_offset; /* added to DATA bytes on the wire (0x33 or 0) */
};

/* Writes preamble_count FE bytes, header[0..layout->header_len) (header[0]
 * must be 68), C, L, data + offset, CS, 16. */
est_err cn_frame_write(const struct cn_layout *layout, unsigned preamble_count,
                       const uint8_t *header, uint8_t control, const uint8_t *data, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len);

/* Scans buf as described at struct cn_scan. On CN_SCAN_FRAME *start is
 * the offset of the frame's first 68. */
void cn_frame_find(const struct cn_layout *layout, const uint8_t *buf, size_t len, size_t *start,
                   struct cn_scan *scan);

#endif
