/* fuzz_decode.c - libFuzzer harness for the decoders: arbitrary register
 * contents and request outcomes decoded through every model's plan (with
 * fuzzed options), plus the encode(decode(x)) == x oracle for every type and
 * word order. Any crash, sanitizer report or broken oracle is a bug. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
    if (!condition)
        abort();
}

/* Raw words must survive a decode/encode round trip (scale 1, no NaN). */
static void check_round_trips(const uint16_t regs[2])
{
    for (int type = DRV_TYPE_U16; type <= DRV_TYPE_F32; type++)
        for (int order = DRV_ORDER_ABCD; order <= DRV_ORDER_DCBA; order++) {
            double value = drv_decode_value(regs, (enum drv_type)type,
                                            (enum drv_word_order)order, 1.0);
            if (isnan(value))
                continue;
            uint16_t again[2] = {0, 0};
            drv_encode_value(value, (enum drv_type)type, (enum drv_word_order)order, 1.0,
                             again);
            check(again[0] == regs[0]);
            check(drv_type_regs((enum drv_type)type) == 1 || again[1] == regs[1]);
        }
}

static void decode_model(const struct drv_model *model, const struct drv_device_options *options,
                         const uint8_t *data, size_t size)
{
    struct drv_plan *plan = NULL;
    if (drv_plan_build(model, options, &plan) != EST_OK)
        return;
    size_t nregs = drv_plan_register_count(plan), nreq = drv_plan_request_count(plan);
    uint16_t *regs = calloc(nregs + 1, sizeof *regs);
    bool *ok = calloc(nreq + 1, sizeof *ok);
    if (regs != NULL && ok != NULL) {
        /* Request outcomes from the first byte's bits, registers from the rest. */
        for (size_t i = 0; i < nreq; i++)
            ok[i] = size == 0 || ((data[0] >> (i % 8)) & 1) || i >= 8;
        for (size_t i = 0; i < nregs && size > 1; i++) {
            size_t at = 1 + (2 * i) % (size - 1);
            regs[i] = (uint16_t)(data[at] << 8 | data[1 + (at % (size - 1))]);
        }
        struct drv_reading reading;
        unsigned bad = 0;
        check(drv_decode(plan, regs, ok, &reading, &bad) == EST_OK);
        check(reading.nzones == drv_plan_zone_count(plan));
        for (int q = 0; q < DRV_Q__COUNT; q++)
            if (reading.present & (UINT64_C(1) << q))
                check(isfinite(reading.value[q]));
        check(bad <= model->npoints);
    }
    free(regs);
    free(ok);
    drv_plan_free(plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4) {
        uint16_t regs[2] = {(uint16_t)(data[0] << 8 | data[1]), (uint16_t)(data[2] << 8 | data[3])};
        check_round_trips(regs);
    }
    struct drv_device_options options;
    drv_device_options_init(&options);
    if (size >= 3) {
        options.function = (int[]){0, 3, 4}[data[0] % 3];
        options.word_order = (int)(data[1] % 5) - 1;
        options.address_base = (int)(data[2] % 5) - 2;
        options.nzones = (uint16_t)(data[2] % 160);
    }
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        struct drv_device_options device = options;
        if (model->panel == NULL)
            device.nzones = 0;
        decode_model(model, &device, data, size);
    }
    return 0;
}
