/* decode.c - pure register decoders and encoders: five types in four word
 * orders, with scale. Bytes are assembled explicitly (never through a
 * pointer cast), so the result does not depend on the host's byte order.
 *
 * Decoded numbers are the decimals the meter meant, as doubles: a float32
 * register gives the shortest decimal (at most 9 significant digits) that
 * converts back to the same float32 (226.1, not 226.10000610351562), and a
 * power-of-ten scale is applied to that decimal's digits (raw / 100, not
 * raw * 0.01, which gives 12.340000000000001 for 1234). Both are computed
 * arithmetically (no printf/strtod). Why: the nearest double to a decimal of
 * at most 15 digits prints short, both where the gateway prints meter
 * numbers itself (gateway/payload.c) and where cJSON does ("%1.15g" reads
 * back as the same double at the first try), so rows, MQTT payloads and
 * every consumer see "226.1". The mapping loses nothing: distinct float32 values
 * give distinct decimals in the same order (each decimal lies in its float's
 * rounding interval), and the decimal converts back to the very float32, so
 * drv_encode_value(drv_decode_value(regs)) gives the same registers. */
#include "drivers.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* A scale of 0 would lose every value: treat it as 1 both ways. */
static double effective_scale(double scale) { return scale == 0.0 ? 1.0 : scale; }

/* Powers of ten a double holds exactly (10^22 is the last one), and the
 * doubles nearest to their inverses (as literals: correctly rounded). */
#define POW10_EXACT_MAX 22
static const double pow10_exact[POW10_EXACT_MAX + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const double pow10_inverse[POW10_EXACT_MAX + 1] = {
    1e0,   1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,  1e-8,  1e-9,  1e-10, 1e-11,
    1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22};

/* m * 10^e for |e| <= POW10_EXACT_MAX in one correctly rounded operation:
 * for an integer m with |m| < 2^53 the result is the double nearest to the
 * decimal m * 10^e. */
static double times_pow10(double m, int e)
{
    return e >= 0 ? m * pow10_exact[e] : m / pow10_exact[-e];
}

/* Is scale +-10^k (k in -22..22, as the tables write it: 0.01, 1000.0)?
 * Then *k gets k and *negative the sign. */
static bool decade_scale(double scale, int *k, bool *negative)
{
    double a = fabs(scale);
    *negative = scale < 0.0;
    if (a == 1.0) {
        *k = 0;
        return true;
    }
    const double *table = a > 1.0 ? pow10_exact : pow10_inverse;
    for (int i = 1; i <= POW10_EXACT_MAX; i++)
        if (a == table[i]) {
            *k = a > 1.0 ? i : -i;
            return true;
        }
    return false;
}

/* floor(binary_exponent * log10(2)): 1233 / 4096 is log10(2) to 5e-6, exact
 * in this for every binary exponent from -159 to 159 (checked). A value
 * 2^b <= d < 2^(b+1) then has its decimal exponent at this or one above. */
static int decimal_exponent_guess(int binary_exponent)
{
    int n = binary_exponent * 1233;
    return n >= 0 ? n / 4096 : -((-n + 4095) / 4096);
}

/* d >= 10^e, for d a float32 value and |e| <= 21; exact for e >= -12 (d *
 * 10^-e is then either exactly 1 or farther from 1 than the rounding). */
static bool at_least_pow10(double d, int e)
{
    return e >= 0 ? d >= pow10_exact[e] : d * pow10_exact[-e] >= 1.0;
}

/* Range where float_decimal() works with exact powers of ten (meters stay
 * far inside it); values outside are kept exactly as the float32 says. */
#define FLOAT_DECIMAL_MIN_EXP10 (-12)
#define FLOAT_DECIMAL_MAX_EXP10 21

/* The shortest decimal that converts back to f: *digits * 10^*exp10, with
 * *digits an integer of at most 9 digits, the nearest to f among decimals
 * of that length. false for 0, NaN, Inf and magnitudes outside
 * 10^FLOAT_DECIMAL_MIN_EXP10 .. 10^(FLOAT_DECIMAL_MAX_EXP10 + 1).
 *
 * Rounding f to 6 significant digits already gives the shortest decimal
 * whenever one of 6 digits or fewer converts back: float32's rounding
 * interval (one step, under 1.2e-7 of the value) can hold at most one
 * 6-digit decimal, which is then also the nearest. Above 6 digits the
 * first length that converts back wins (9 always does: FLT_DECIMAL_DIG). */
static bool float_decimal(float f, double *digits, int *exp10)
{
    float af = fabsf(f);
    double d = af;
    if (!(d >= 1e-12 && d < 1e22)) /* also false for NaN */
        return false;
    uint32_t bits;
    memcpy(&bits, &af, sizeof bits);
    int e = decimal_exponent_guess((int)(bits >> 23) - 127); /* normal: d >= 1e-12 */
    if (at_least_pow10(d, e + 1))
        e++;
    if (e < FLOAT_DECIMAL_MIN_EXP10 || e > FLOAT_DECIMAL_MAX_EXP10)
        return false;
    if (d < 16777216.0 && d == (double)(int32_t)d) { /* an integer: itself */
        *digits = d;
        *exp10 = 0;
        return true;
    }
    for (int p = 6; p <= 9; p++) {
        int s = p - 1 - e; /* d * 10^s has p digits before the point */
        double x = times_pow10(d, s);
        int64_t n = (int64_t)(x + 0.5); /* x < 10^9: rounds half up */
        if ((double)n - x == 0.5 && (n & 1))
            n--; /* a tie: to even, as printf rounds */
        double m = (double)n;
        double candidate = times_pow10(m, -s);
        if ((float)candidate == af) {
            *digits = m;
            *exp10 = -s;
            return true;
        }
    }
    return false; /* not reached with correct rounding; keep the float then */
}

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

/* Integer register raw times the scale: raw / 10^-k for a decade scale. */
static double scale_integer(double raw, double scale)
{
    int k;
    bool negative;
    if (!decade_scale(scale, &k, &negative))
        return raw * scale;
    double v = times_pow10(raw, k);
    return negative ? -v : v;
}

/* A float32 register times the scale, from its shortest decimal. */
static double scale_float(float f, double scale)
{
    double digits;
    int exp10, k;
    bool negative;
    if (!float_decimal(f, &digits, &exp10))
        return (double)f * scale; /* 0, non-finite or out of range: as is */
    if (f < 0.0f)
        digits = -digits;
    if (decade_scale(scale, &k, &negative) && exp10 + k >= -POW10_EXACT_MAX &&
        exp10 + k <= POW10_EXACT_MAX) {
        double v = times_pow10(digits, exp10 + k);
        return negative ? -v : v;
    }
    return times_pow10(digits, exp10) * scale;
}

double drv_decode_value(const uint16_t *regs, enum drv_type type, enum drv_word_order order,
                        double scale)
{
    scale = effective_scale(scale);
    switch (type) {
    case DRV_TYPE_U16:
        return scale_integer(assemble16(regs[0], order), scale);
    case DRV_TYPE_I16:
        return scale_integer((int16_t)assemble16(regs[0], order), scale);
    case DRV_TYPE_U32:
        return scale_integer(assemble32(regs, order), scale);
    case DRV_TYPE_I32:
        return scale_integer((int32_t)assemble32(regs, order), scale);
    case DRV_TYPE_F32:
    default: {
        uint32_t bits = assemble32(regs, order);
        float f;
        memcpy(&f, &bits, sizeof f);
        return scale_float(f, scale);
    }
    }
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
    /* The register's raw number, with the arithmetic of the decoder: for a
     * decade scale value * 10^-k (12.34 kWh at 0.01 -> 1234), else / scale. */
    scale = effective_scale(scale);
    int k;
    bool negative;
    double raw = value / scale;
    if (decade_scale(scale, &k, &negative))
        raw = negative ? -times_pow10(value, -k) : times_pow10(value, -k);
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
