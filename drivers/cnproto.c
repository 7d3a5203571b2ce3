/* cnproto.c - the parts DL/T 645 and CJ/T 188 share: checksum, BCD numbers,
 * meter addresses, and the frame writer and resynchronising scanner behind
 * dlt645_scan and cjt188_scan. Pure functions. */
#include <math.h>
#include <string.h>

#include "cnproto.h"
#include "cnproto_frame.h"

uint8_t cn_checksum(const uint8_t *data, size_t len)
{
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += data[i];
    return (uint8_t)sum;
}

est_err cn_bcd_to_uint(const uint8_t *bytes, size_t nbytes, uint64_t *out)
{
    if (nbytes > 9)
        return EST_ERR_INVALID;
    uint64_t value = 0;
    for (size_t i = nbytes; i-- > 0;) {
        unsigned high = bytes[i] >> 4, low = bytes[i] & 0x0F;
        if (high > 9 || low > 9)
            return EST_ERR_PROTOCOL;
        value = value * 100 + high * 10 + low;
    }
    *out = value;
    return EST_OK;
}

/* 10^n as a double, exact for n <= 22. */
static double power_of_ten(unsigned n)
{
    double p = 1.0;
    while (n-- > 0)
        p *= 10.0;
    return p;
}

est_err cn_bcd_decode(const uint8_t *bytes, size_t nbytes, unsigned decimals, bool sign_bit,
                      double *value)
{
    if (nbytes == 0 || nbytes > 9 || decimals > 18)
        return EST_ERR_INVALID;
    uint8_t copy[9];
    memcpy(copy, bytes, nbytes);
    bool negative = false;
    if (sign_bit) {
        negative = (copy[nbytes - 1] & 0x80) != 0;
        copy[nbytes - 1] &= 0x7F;
    }
    uint64_t digits = 0;
    est_err err = cn_bcd_to_uint(copy, nbytes, &digits);
    if (err != EST_OK)
        return err;
    /* digits < 10^18 may exceed 2^53 only for 8-9 byte numbers, which no
     * meter item uses; below that the division is correctly rounded. */
    double magnitude = (double)digits / power_of_ten(decimals);
    *value = negative && digits != 0 ? -magnitude : magnitude;
    return EST_OK;
}

est_err cn_bcd_encode(double value, size_t nbytes, unsigned decimals, bool sign_bit,
                      uint8_t *bytes)
{
    if (nbytes == 0 || nbytes > 8 || decimals > 15 || !isfinite(value))
        return EST_ERR_INVALID;
    bool negative = value < 0;
    if (negative && !sign_bit)
        return EST_ERR_RANGE;
    double scaled = round(fabs(value) * power_of_ten(decimals));
    double limit = power_of_ten((unsigned)(2 * nbytes));
    if (scaled >= limit)
        return EST_ERR_RANGE;
    uint64_t digits = (uint64_t)scaled;
    for (size_t i = 0; i < nbytes; i++) {
        unsigned pair = (unsigned)(digits % 100);
        digits /= 100;
        bytes[i] = (uint8_t)((pair / 10) << 4 | pair % 10);
    }
    if (sign_bit) {
        if (bytes[nbytes - 1] & 0x80)
            return EST_ERR_RANGE;
        if (negative && scaled != 0)
            bytes[nbytes - 1] |= 0x80;
    }
    return EST_OK;
}

est_err cn_address_parse(const char *digits, size_t nbytes, uint8_t *address)
{
    if (digits == NULL || strlen(digits) != 2 * nbytes)
        return EST_ERR_INVALID;
    for (size_t i = 0; i < 2 * nbytes; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return EST_ERR_INVALID;
    /* The printed number is most significant first; the wire is low byte first. */
    for (size_t i = 0; i < nbytes; i++) {
        const char *pair = digits + 2 * (nbytes - 1 - i);
        address[i] = (uint8_t)((pair[0] - '0') << 4 | (pair[1] - '0'));
    }
    return EST_OK;
}

void cn_address_format(const uint8_t *address, size_t nbytes, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < nbytes; i++) {
        uint8_t b = address[nbytes - 1 - i];
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 0x0F];
    }
    out[2 * nbytes] = '\0';
}

est_err cn_frame_write(const struct cn_layout *layout, unsigned preamble_count,
                       const uint8_t *header, uint8_t control, const uint8_t *data, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len)
{
    if (len > CN_MAX_DATA || preamble_count > CN_MAX_PREAMBLE || (len > 0 && data == NULL))
        return EST_ERR_INVALID;
    size_t total = preamble_count + layout->header_len + 2 + len + 2;
    if (total > cap)
        return EST_ERR_RANGE;
    uint8_t *p = out;
    memset(p, CN_PREAMBLE_BYTE, preamble_count);
    p += preamble_count;
    uint8_t *frame = p;
    memcpy(p, header, layout->header_len);
    p += layout->header_len;
    *p++ = control;
    *p++ = (uint8_t)len;
    for (size_t i = 0; i < len; i++)
        *p++ = (uint8_t)(data[i] + layout->data_offset);
    *p = cn_checksum(frame, (size_t)(p - frame));
    p++;
    *p++ = CN_FRAME_END;
    *out_len = total;
    return EST_OK;
}

enum candidate { CANDIDATE_GOOD, CANDIDATE_INCOMPLETE, CANDIDATE_NO_SYNC, CANDIDATE_BAD_SUM,
                 CANDIDATE_BAD_END };

/* Judges the bytes at p (p[0] == 68) as the start of a frame. */
static enum candidate judge_candidate(const struct cn_layout *layout, const uint8_t *p,
                                      size_t avail, size_t *total)
{
    size_t h = layout->header_len;
    if (layout->second_start) {
        if (avail < h)
            return CANDIDATE_INCOMPLETE;
        if (p[h - 1] != CN_FRAME_START)
            return CANDIDATE_NO_SYNC;
    }
    if (avail < h + 2)
        return CANDIDATE_INCOMPLETE;
    size_t len = p[h + 1];
    *total = h + 2 + len + 2;
    if (avail < *total)
        return CANDIDATE_INCOMPLETE;
    if (cn_checksum(p, h + 2 + len) != p[h + 2 + len])
        return CANDIDATE_BAD_SUM;
    if (p[h + 3 + len] != CN_FRAME_END)
        return CANDIDATE_BAD_END;
    return CANDIDATE_GOOD;
}

void cn_frame_find(const struct cn_layout *layout, const uint8_t *buf, size_t len, size_t *start,
                   struct cn_scan *scan)
{
    memset(scan, 0, sizeof *scan);
    size_t first_incomplete = len;
    unsigned bad_sum_before = 0, bad_end_before = 0; /* before first_incomplete */
    for (size_t p = 0; p < len; p++) {
        if (buf[p] != CN_FRAME_START)
            continue;
        size_t total = 0;
        switch (judge_candidate(layout, buf + p, len - p, &total)) {
        case CANDIDATE_GOOD:
            scan->result = CN_SCAN_FRAME;
            scan->consumed = p + total;
            *start = p;
            return;
        case CANDIDATE_INCOMPLETE:
            if (first_incomplete == len)
                first_incomplete = p;
            break;
        case CANDIDATE_BAD_SUM:
            scan->bad_checksum++;
            if (first_incomplete == len)
                bad_sum_before++;
            break;
        case CANDIDATE_BAD_END:
            scan->bad_end++;
            if (first_incomplete == len)
                bad_end_before++;
            break;
        case CANDIDATE_NO_SYNC:
            break;
        }
    }
    /* No frame: only what lies before a possible start is dropped, and only
     * the rejects in it are reported (the rest is judged again later). */
    scan->result = CN_SCAN_NEED_MORE;
    scan->consumed = first_incomplete;
    scan->bad_checksum = bad_sum_before;
    scan->bad_end = bad_end_before;
}
