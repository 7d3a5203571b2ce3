/* fuzz_plan.c - libFuzzer harness for the read planner: arbitrary device
 * options (function, word order, address base, limits, zones and zone
 * addresses) for every model; a plan that builds must respect the protocol
 * limits, lay its buffer out contiguously and cover every point and zone. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "drivers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Consumes input bytes; past the end it yields zeros. */
struct input {
    const uint8_t *data;
    size_t size;
    size_t at;
};

static unsigned take8(struct input *in) { return in->at < in->size ? in->data[in->at++] : 0; }

static unsigned take16(struct input *in)
{
    unsigned high = take8(in);
    return high << 8 | take8(in);
}

static void check(bool condition)
{
    if (!condition)
        abort();
}

/* True when some request of the plan reads (function, address..+nregs). */
static bool covered(const struct drv_plan *plan, uint8_t function, uint16_t address,
                    unsigned nregs)
{
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *r = drv_plan_request(plan, i);
        if (r->function == function && address >= r->address &&
            (unsigned)address + nregs <= (unsigned)r->address + r->count)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int functions[] = {0, 3, 4, 0, 6, -1};
    struct input in = {data, size, 0};
    const struct drv_model *model = drv_model_at(take8(&in) % drv_model_count());
    struct drv_device_options options;
    drv_device_options_init(&options);
    options.function = functions[take8(&in) % 6];
    options.word_order = (int)(take8(&in) % 6) - 1;
    options.address_base = (int16_t)take16(&in);
    options.max_read_regs = (uint16_t)take16(&in);
    options.slow_every = take8(&in);
    options.nzones = (uint16_t)(take16(&in) % 300);
    uint16_t *zone_addresses = NULL;
    if (take8(&in) & 1) {
        zone_addresses = malloc((options.nzones + 1) * sizeof *zone_addresses);
        if (zone_addresses == NULL)
            return 0;
        for (unsigned z = 0; z < options.nzones; z++)
            zone_addresses[z] = (uint16_t)take16(&in);
        options.zone_addresses = zone_addresses;
    }

    struct drv_plan *plan = NULL;
    est_err err = drv_plan_build(model, &options, &plan);
    check((err == EST_OK) == (plan != NULL));
    if (err == EST_OK) {
        unsigned limit = DRV_MAX_READ_REGS;
        if (model->max_read_regs > 0 && model->max_read_regs < limit)
            limit = model->max_read_regs;
        if (options.max_read_regs > 0 && options.max_read_regs < limit)
            limit = options.max_read_regs;
        size_t offset = 0;
        for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
            const struct drv_request *r = drv_plan_request(plan, i);
            check(r->count >= 1 && r->count <= limit);
            check(r->function == DRV_FC_HOLDING || r->function == DRV_FC_INPUT);
            check((unsigned)r->address + r->count <= 65536u);
            check(r->reg_offset == offset);
            offset += r->count;
        }
        check(offset == drv_plan_register_count(plan));
        for (size_t p = 0; p < model->npoints; p++) {
            uint8_t function;
            uint16_t address;
            drv_point_effective(model, &options, p, &function, &address, NULL);
            check(covered(plan, function, address, drv_type_regs(model->points[p].type)));
        }
        for (uint16_t z = 0; z < drv_plan_zone_count(plan); z++) {
            uint8_t function = options.function == 4 ? DRV_FC_INPUT : DRV_FC_HOLDING;
            check(covered(plan, function, drv_zone_address(model, &options, z), 1));
        }
        drv_plan_free(plan);
    }
    free(zone_addresses);
    return 0;
}
