/* decode.c - pure register decoders and encoders: five types in four word
 * orders, with scale. Bytes are assembled explicitly (never through a
 * pointer cast), so the result does not depend on the host's byte order. */
#include "drivers.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* A scale of 0 would lose every value: treat it as 1 both ways. */
static double effective_scale(double scale) { return scale == 0.0 ? 1.0 : scale; }

static uint16_t swap_bytes(uint16_t word) { return (uint16_t)((word << 8) | (word >> 8)); }

/* Registers as they came off the wire -> the 32-bit value ABCD (A = MSB). */
static uint32_t assemble32(const uint16_t *regs, enum drv_word_order order)
{
    uint16_t first = regs[0], second = regs[1];
    switch (order) {
    case DRV_ORDER_CDAB:
        return (uint32_t)second << 16 | first;
    case DRV_ORDER_BADC:
        return (uint32_t)swap_bytes(first) << 16 | swap_bytes(second);
    case DRV_ORDER_DCBA:
        return (uint32_t)swap_bytes(second) << 16 | swap_bytes(first);
    case DRV_ORDER_ABCD:
    default:
        return (uint32_t)first << 16 | second;
    }
}

static void spread32(uint32_t value, enum drv_word_order order, uint16_t *regs)
{
    uint16_t high = (uint16_t)(value >> 16), low = (uint16_t)value;
    switch (order) {
    case DRV_ORDER_CDAB:
        regs[0] = low;
        regs[1] = high;
        break;
    case DRV_ORDER_BADC:
        regs[0] = swap_bytes(high);
        regs[1] = swap_bytes(low);
        break;
    case DRV_ORDER_DCBA:
        regs[0] = swap_bytes(low);
        regs[1] = swap_bytes(high);
        break;
    case DRV_ORDER_ABCD:
    default:
        regs[0] = high;
        regs[1] = low;
        break;
    }
}

static uint16_t assemble16(uint16_t reg, enum drv_word_order order)
{
    return order == DRV_ORDER_BADC || order == DRV_ORDER_DCBA ? swap_bytes(reg) : reg;
}

unsigned drv_type_regs(enum drv_type type)
{
    return type == DRV_TYPE_U16 || type == DRV_TYPE_I16 ? 1u : 2u;
}

double drv_decode_value(const uint16_t *regs, enum drv_type type, enum drv_word_order order,
                        double scale)
{
    double raw;
    switch (type) {
    case DRV_TYPE_U16:
        raw = assemble16(regs[0], order);
        break;
    case DRV_TYPE_I16:
        raw = (int16_t)assemble16(regs[0], order);
        break;
    case DRV_TYPE_U32:
        raw = assemble32(regs, order);
        break;
    case DRV_TYPE_I32:
        raw = (int32_t)assemble32(regs, order);
        break;
    case DRV_TYPE_F32:
    default: {
        uint32_t bits = assemble32(regs, order);
        float f;
        memcpy(&f, &bits, sizeof f);
        raw = f;
        break;
    }
    }
    return raw * effective_scale(scale);
}

/* Rounds and clamps to [lo, hi]; NaN becomes 0. */
static double round_clamped(double raw, double lo, double hi)
{
    if (isnan(raw))
        return 0.0;
    raw = nearbyint(raw);
    return raw < lo ? lo : raw > hi ? hi : raw;
}

void drv_encode_value(double value, enum drv_type type, enum drv_word_order order, double scale,
                      uint16_t *regs)
{
    double raw = value / effective_scale(scale);
    switch (type) {
    case DRV_TYPE_U16:
        regs[0] = assemble16((uint16_t)round_clamped(raw, 0, UINT16_MAX), order);
        break;
    case DRV_TYPE_I16: {
        int16_t v = (int16_t)round_clamped(raw, INT16_MIN, INT16_MAX);
        regs[0] = assemble16((uint16_t)v, order);
        break;
    }
    case DRV_TYPE_U32:
        spread32((uint32_t)round_clamped(raw, 0, UINT32_MAX), order, regs);
        break;
    case DRV_TYPE_I32: {
        int32_t v = (int32_t)round_clamped(raw, INT32_MIN, INT32_MAX);
        spread32((uint32_t)v, order, regs);
        break;
    }
    case DRV_TYPE_F32:
    default: {
        /* Out-of-range double -> float conversion is undefined: saturate. */
        float f = raw > FLT_MAX ? INFINITY : raw < -FLT_MAX ? -INFINITY : (float)raw;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        spread32(bits, order, regs);
        break;
    }
    }
}
