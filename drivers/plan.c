/* plan.c - the read planner and the poll decoder: applies a device's options
 * to its model, merges points (or panel zones) into the fewest requests the
 * limits allow, lays every request's registers out in one buffer, and turns
 * that buffer back into a drv_reading. */
#include "drivers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SLOW_EVERY 60u

/* One thing to read: a model point or a panel zone, after the options. */
struct plan_item {
    size_t source;             /* point index, or zone index when is_zone */
    bool is_zone;
    bool slow;
    uint8_t function;
    uint16_t address;
    uint8_t nregs;
    enum drv_word_order order;
    size_t request;            /* index of the request that reads it */
    size_t reg_index;          /* its first register in the regs buffer */
};

struct drv_plan {
    const struct drv_model *model;
    unsigned slow_every;
    uint16_t nzones;
    size_t nitems;
    struct plan_item *items;   /* sorted by (function, slow, address) */
    size_t nrequests;
    struct drv_request *requests;
    size_t nregs;
};

void drv_device_options_init(struct drv_device_options *options)
{
    memset(options, 0, sizeof *options);
    options->word_order = -1;
}

static const struct drv_device_options *options_or_default(const struct drv_device_options *o,
                                                           struct drv_device_options *storage)
{
    if (o != NULL)
        return o;
    drv_device_options_init(storage);
    return storage;
}

void drv_point_effective(const struct drv_model *model, const struct drv_device_options *options,
                         size_t point_index, uint8_t *function, uint16_t *address,
                         enum drv_word_order *order)
{
    struct drv_device_options defaults;
    options = options_or_default(options, &defaults);
    const struct drv_point *point = &model->points[point_index];
    if (function != NULL)
        *function = options->function == 3 || options->function == 4 ? (uint8_t)options->function
                                                                      : point->function;
    if (address != NULL)
        *address = (uint16_t)((long)point->address + options->address_base);
    if (order != NULL) {
        bool override = options->word_order >= DRV_ORDER_ABCD &&
                        options->word_order <= DRV_ORDER_DCBA && drv_type_regs(point->type) == 2;
        *order = override ? (enum drv_word_order)options->word_order : point->order;
    }
}

uint16_t drv_zone_address(const struct drv_model *model, const struct drv_device_options *options,
                          uint16_t zone)
{
    struct drv_device_options defaults;
    options = options_or_default(options, &defaults);
    if (options->zone_addresses != NULL && zone < options->nzones)
        return options->zone_addresses[zone];
    uint16_t first = model->panel != NULL ? model->panel->first_point_address : 0;
    return (uint16_t)((long)first + zone + options->address_base);
}

est_err drv_valve_command(const struct drv_model *model, const struct drv_device_options *options,
                          bool open, uint16_t *address, uint16_t *value)
{
    struct drv_device_options defaults;
    options = options_or_default(options, &defaults);
    if (model == NULL || model->valve == NULL)
        return EST_ERR_NOTFOUND;
    long wire = (long)model->valve->address + options->address_base;
    if (wire < 0 || wire > UINT16_MAX)
        return EST_ERR_RANGE;
    *address = (uint16_t)wire;
    *value = open ? model->valve->open_value : model->valve->close_value;
    return EST_OK;
}

static int compare_items(const void *a, const void *b)
{
    const struct plan_item *x = a, *y = b;
    if (x->function != y->function)
        return x->function < y->function ? -1 : 1;
    if (x->slow != y->slow)
        return x->slow ? 1 : -1;
    if (x->address != y->address)
        return x->address < y->address ? -1 : 1;
    if (x->is_zone != y->is_zone)
        return x->is_zone ? 1 : -1;
    return x->source < y->source ? -1 : x->source > y->source;
}

static bool options_valid(const struct drv_model *model, const struct drv_device_options *o)
{
    if (o->function != 0 && o->function != 3 && o->function != 4)
        return false;
    if (o->word_order < -1 || o->word_order > DRV_ORDER_DCBA)
        return false;
    if (o->address_base < -65535 || o->address_base > 65535)
        return false;
    if (model->panel == NULL)
        return o->nzones == 0 && o->zone_addresses == NULL;
    if (o->nzones > DRV_MAX_ZONES)
        return false;
    if (o->zone_addresses == NULL && o->nzones > model->panel->max_zones)
        return false;
    if (o->zone_addresses != NULL && o->nzones == 0)
        return false;
    return true;
}

/* Fills items[] from the model's points and the panel's zones; false when
 * an address leaves 0..65535 after the options. */
static bool collect_items(const struct drv_model *model, const struct drv_device_options *o,
                          uint16_t nzones, struct plan_item *items)
{
    size_t n = 0;
    for (size_t i = 0; i < model->npoints; i++, n++) {
        const struct drv_point *point = &model->points[i];
        long wire = (long)point->address + o->address_base;
        unsigned nregs = drv_type_regs(point->type);
        if (wire < 0 || wire + (long)nregs - 1 > UINT16_MAX)
            return false;
        struct plan_item *item = &items[n];
        item->source = i;
        item->is_zone = false;
        item->slow = point->slow;
        item->nregs = (uint8_t)nregs;
        drv_point_effective(model, o, i, &item->function, &item->address, &item->order);
    }
    for (uint16_t z = 0; z < nzones; z++, n++) {
        if (o->zone_addresses == NULL) {
            long wire = (long)model->panel->first_point_address + z + o->address_base;
            if (wire < 0 || wire > UINT16_MAX)
                return false;
        }
        struct plan_item *item = &items[n];
        item->source = z;
        item->is_zone = true;
        item->slow = false;
        item->nregs = 1;
        item->function = o->function == 4 ? DRV_FC_INPUT : DRV_FC_HOLDING;
        item->address = drv_zone_address(model, o, z);
        item->order = DRV_ORDER_ABCD;
    }
    return true;
}

/* Merges the sorted items into requests of at most max_regs registers,
 * reading through holes of at most max_gap registers. requests[] has room
 * for one request per item. Returns the number of requests. */
static size_t merge_items(struct plan_item *items, size_t nitems, unsigned max_regs,
                          unsigned max_gap, struct drv_request *requests, size_t *total_regs)
{
    size_t nrequests = 0, offset = 0;
    struct drv_request *open = NULL;
    for (size_t i = 0; i < nitems; i++) {
        struct plan_item *item = &items[i];
        unsigned item_end = (unsigned)item->address + item->nregs; /* one past, up to 65536 */
        if (open != NULL && open->function == item->function && open->slow == item->slow) {
            unsigned open_end = (unsigned)open->address + open->count;
            unsigned hole = item->address > open_end ? item->address - open_end : 0;
            unsigned new_end = item_end > open_end ? item_end : open_end;
            if (hole <= max_gap && new_end - open->address <= max_regs) {
                open->count = (uint16_t)(new_end - open->address);
            } else {
                open = NULL;
            }
        } else {
            open = NULL;
        }
        if (open == NULL) {
            if (nrequests > 0)
                offset += requests[nrequests - 1].count;
            open = &requests[nrequests++];
            open->function = item->function;
            open->address = item->address;
            open->count = item->nregs;
            open->slow = item->slow;
            open->reg_offset = offset;
        }
        item->request = (size_t)(open - requests);
        item->reg_index = open->reg_offset + (item->address - open->address);
    }
    *total_regs = nrequests > 0 ? offset + requests[nrequests - 1].count : 0;
    return nrequests;
}

est_err drv_plan_build(const struct drv_model *model, const struct drv_device_options *options,
                       struct drv_plan **out)
{
    if (model == NULL || out == NULL)
        return EST_ERR_INVALID;
    *out = NULL;
    if (model->protocol != DRV_PROTO_MODBUS)
        return EST_ERR_INVALID; /* data items, read by drv_cnlink_poll */
    struct drv_device_options defaults;
    options = options_or_default(options, &defaults);
    if (!options_valid(model, options))
        return EST_ERR_INVALID;

    unsigned max_regs = DRV_MAX_READ_REGS;
    if (model->max_read_regs > 0 && model->max_read_regs < max_regs)
        max_regs = model->max_read_regs;
    if (options->max_read_regs > 0 && options->max_read_regs < max_regs)
        max_regs = options->max_read_regs;
    uint16_t nzones = 0;
    if (model->panel != NULL) {
        nzones = options->nzones;
        if (nzones == 0)
            nzones = model->panel->max_zones < DRV_MAX_ZONES ? model->panel->max_zones
                                                             : DRV_MAX_ZONES;
    }
    for (size_t i = 0; i < model->npoints; i++)
        if (drv_type_regs(model->points[i].type) > max_regs)
            return EST_ERR_INVALID;

    struct drv_plan *plan = calloc(1, sizeof *plan);
    size_t nitems = model->npoints + nzones;
    if (plan == NULL)
        return EST_ERR_NOMEM;
    plan->model = model;
    plan->nzones = nzones;
    plan->slow_every = options->slow_every > 0 ? options->slow_every
                       : model->slow_every > 0 ? model->slow_every
                                               : DEFAULT_SLOW_EVERY;
    plan->nitems = nitems;
    plan->items = calloc(nitems > 0 ? nitems : 1, sizeof *plan->items);
    plan->requests = calloc(nitems > 0 ? nitems : 1, sizeof *plan->requests);
    if (plan->items == NULL || plan->requests == NULL) {
        drv_plan_free(plan);
        return EST_ERR_NOMEM;
    }
    if (!collect_items(model, options, nzones, plan->items)) {
        drv_plan_free(plan);
        return EST_ERR_INVALID;
    }
    qsort(plan->items, nitems, sizeof *plan->items, compare_items);
    plan->nrequests = merge_items(plan->items, nitems, max_regs, model->max_gap_regs,
                                  plan->requests, &plan->nregs);
    *out = plan;
    return EST_OK;
}

void drv_plan_free(struct drv_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->items);
    free(plan->requests);
    free(plan);
}

size_t drv_plan_request_count(const struct drv_plan *plan) { return plan->nrequests; }

const struct drv_request *drv_plan_request(const struct drv_plan *plan, size_t index)
{
    return index < plan->nrequests ? &plan->requests[index] : NULL;
}

size_t drv_plan_register_count(const struct drv_plan *plan) { return plan->nregs; }

const struct drv_model *drv_plan_model(const struct drv_plan *plan) { return plan->model; }

uint16_t drv_plan_zone_count(const struct drv_plan *plan) { return plan->nzones; }

unsigned drv_plan_slow_every(const struct drv_plan *plan) { return plan->slow_every; }

static void set_value(struct drv_reading *out, enum drv_quantity q, double value)
{
    out->present |= UINT64_C(1) << q;
    out->value[q] = value;
}

/* A status word: the point's quantity from the first matching state, and
 * one 0/1 quantity per flag. */
static void decode_status(const struct drv_status_word *word, enum drv_quantity quantity,
                          uint16_t raw, struct drv_reading *out)
{
    for (size_t i = 0; i < word->nstates; i++) {
        if ((raw & word->states[i].mask) == word->states[i].value) {
            set_value(out, quantity, word->states[i].result);
            break;
        }
    }
    for (size_t i = 0; i < word->nflags; i++)
        set_value(out, word->flags[i].quantity, (raw & word->flags[i].mask) ? 1.0 : 0.0);
}

est_err drv_decode(const struct drv_plan *plan, const uint16_t *regs, const bool *request_ok,
                   struct drv_reading *out, unsigned *bad_values)
{
    if (plan == NULL || out == NULL || (plan->nregs > 0 && (regs == NULL || request_ok == NULL)))
        return EST_ERR_INVALID;
    unsigned bad = 0;
    out->present = 0;
    out->bad = 0;
    for (size_t q = 0; q < DRV_Q__COUNT; q++)
        out->value[q] = 0.0;
    out->nzones = plan->nzones;
    memset(out->zones, 0, sizeof out->zones);

    const struct drv_model *model = plan->model;
    bool any_zone_read = false, alarm = false, fault = false;
    for (size_t i = 0; i < plan->nitems; i++) {
        const struct plan_item *item = &plan->items[i];
        bool ok = request_ok[item->request];
        if (item->is_zone) {
            uint8_t bits = DRV_ZONE_UNKNOWN;
            if (ok) {
                bits = drv_panel_zone_decode(model->panel, regs[item->reg_index]);
                any_zone_read = true;
                alarm |= (bits & DRV_ZONE_ALARM) != 0;
                fault |= (bits & DRV_ZONE_FAULT) != 0;
            }
            out->zones[item->source] = bits;
            continue;
        }
        if (!ok)
            continue;
        const struct drv_point *point = &model->points[item->source];
        if (point->status != NULL) {
            decode_status(point->status, point->quantity, regs[item->reg_index], out);
            continue;
        }
        double value = drv_decode_value(&regs[item->reg_index], point->type, item->order,
                                        point->scale);
        if (!isfinite(value)) {
            bad++;
            out->bad |= UINT64_C(1) << point->quantity;
            continue;
        }
        set_value(out, point->quantity, value);
    }
    if (any_zone_read) {
        set_value(out, DRV_Q_PANEL_ALARM, alarm ? 1.0 : 0.0);
        set_value(out, DRV_Q_PANEL_FAULT, fault ? 1.0 : 0.0);
    }
    if (bad_values != NULL)
        *bad_values = bad;
    return EST_OK;
}
