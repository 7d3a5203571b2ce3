/* scan.c - the pure half of the commissioning scan: the reads that tell
 * the meter models apart, derived from the model tables (each model's
 * voltage, frequency, volume and battery points), and the judgement of a
 * device's answers: which model's points all read plausibly, in which
 * word order. No I/O. */
#include "drivers.h"

#include <math.h>
#include <string.h>

struct plausible_range {
    enum drv_quantity quantity;
    double min, max;
};

/* Values a working meter shows; a wrong model or word order reads far off. */
static const struct plausible_range signature_ranges[] = {
    {DRV_Q_VOLTAGE_V, 180.0, 260.0},    {DRV_Q_VOLTAGE_L1_V, 180.0, 260.0},
    {DRV_Q_VOLTAGE_L2_V, 180.0, 260.0}, {DRV_Q_VOLTAGE_L3_V, 180.0, 260.0},
    {DRV_Q_FREQUENCY_HZ, 45.0, 65.0},   {DRV_Q_VOLUME_M3, 0.0, 1e8},
    {DRV_Q_BATTERY_V, 2.0, 15.0},
};

static const struct plausible_range *signature_range(enum drv_quantity q)
{
    for (size_t i = 0; i < sizeof signature_ranges / sizeof signature_ranges[0]; i++)
        if (signature_ranges[i].quantity == q)
            return &signature_ranges[i];
    return NULL;
}

/* A Modbus meter model: the scan probes with Modbus reads only (DL/T 645
 * and CJ/T 188 meters are found by their address, not by a slave id). */
static bool is_meter(const struct drv_model *m)
{
    return m->protocol == DRV_PROTO_MODBUS &&
           (m->kind == DRV_KIND_ELECTRICITY || m->kind == DRV_KIND_WATER);
}

static struct drv_scan_probe probe_of(const struct drv_point *p)
{
    return (struct drv_scan_probe){.function = p->function, .address = p->address,
                                   .count = (uint16_t)drv_type_regs(p->type)};
}

static int find_probe(const struct drv_scan_probe *probes, size_t n, struct drv_scan_probe want)
{
    for (size_t i = 0; i < n; i++)
        if (probes[i].function == want.function && probes[i].address == want.address &&
            probes[i].count == want.count)
            return (int)i;
    return -1;
}

size_t drv_scan_probes(struct drv_scan_probe *probes, size_t max)
{
    size_t n = 0;
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        if (!is_meter(model))
            continue;
        for (size_t i = 0; i < model->npoints; i++) {
            const struct drv_point *p = &model->points[i];
            if (signature_range(p->quantity) == NULL || p->status != NULL)
                continue;
            struct drv_scan_probe probe = probe_of(p);
            if (find_probe(probes, n, probe) < 0 && n < max)
                probes[n++] = probe;
        }
    }
    return n;
}

/* How a model fares in one word order: whether every signature point
 * reads plausibly, and how many do. */
struct model_fit {
    bool all_fit;
    unsigned points;
    double voltage_v, volume_m3;
};

static bool is_voltage(enum drv_quantity q)
{
    return q == DRV_Q_VOLTAGE_V || q == DRV_Q_VOLTAGE_L1_V || q == DRV_Q_VOLTAGE_L2_V ||
           q == DRV_Q_VOLTAGE_L3_V;
}

static struct model_fit fit_model(const struct drv_model *model, int order,
                                  const struct drv_scan_probe *probes,
                                  const struct drv_scan_answer *answers, size_t n)
{
    struct model_fit fit = {.all_fit = true, .voltage_v = NAN, .volume_m3 = NAN};
    unsigned nonzero = 0;
    for (size_t i = 0; i < model->npoints; i++) {
        const struct drv_point *p = &model->points[i];
        const struct plausible_range *range = signature_range(p->quantity);
        if (range == NULL || p->status != NULL)
            continue;
        int k = find_probe(probes, n, probe_of(p));
        if (k < 0 || answers[k].result != EST_OK) {
            fit.all_fit = false;
            continue;
        }
        /* A 16-bit register is big-endian by definition: the order applies
         * to 32-bit values only. */
        enum drv_word_order o = drv_type_regs(p->type) == 2 && order >= 0
                                    ? (enum drv_word_order)order
                                    : p->order;
        double v = drv_decode_value(answers[k].regs, p->type, o, p->scale);
        if (!isfinite(v) || v < range->min || v > range->max) {
            fit.all_fit = false;
            continue;
        }
        fit.points++;
        nonzero += answers[k].regs[0] != 0 || (p->type != DRV_TYPE_U16 &&
                                               p->type != DRV_TYPE_I16 && answers[k].regs[1] != 0);
        if (is_voltage(p->quantity) && isnan(fit.voltage_v))
            fit.voltage_v = v;
        if (p->quantity == DRV_Q_VOLUME_M3)
            fit.volume_m3 = v;
    }
    /* Registers that read all zero fit a counter but prove nothing. */
    if (nonzero == 0)
        fit.all_fit = false;
    return fit;
}

static bool has_32bit_signature(const struct drv_model *model)
{
    for (size_t i = 0; i < model->npoints; i++)
        if (signature_range(model->points[i].quantity) != NULL &&
            drv_type_regs(model->points[i].type) == 2)
            return true;
    return false;
}

/* A model that fits as well as the match: kept once, up to the array's size. */
static void note_alternative(struct drv_scan_match *match, const struct drv_model *model)
{
    if (match->model == NULL || match->model == model)
        return;
    for (size_t i = 0; i < match->nalternatives; i++)
        if (match->alternatives[i] == model)
            return;
    size_t cap = sizeof match->alternatives / sizeof match->alternatives[0];
    if (match->nalternatives < cap)
        match->alternatives[match->nalternatives++] = model;
}

void drv_scan_identify(const struct drv_scan_probe *probes, const struct drv_scan_answer *answers,
                       size_t nprobes, struct drv_scan_match *out)
{
    memset(out, 0, sizeof *out);
    out->word_order = -1;
    out->voltage_v = out->volume_m3 = NAN;
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        if (!is_meter(model))
            continue;
        /* The model's own order first: it wins a tie. */
        int orders[5] = {-1, DRV_ORDER_ABCD, DRV_ORDER_CDAB, DRV_ORDER_BADC, DRV_ORDER_DCBA};
        size_t norders = has_32bit_signature(model) ? 5 : 1;
        for (size_t o = 0; o < norders; o++) {
            struct model_fit fit = fit_model(model, orders[o], probes, answers, nprobes);
            if (!fit.all_fit || fit.points < out->points)
                continue;
            if (fit.points == out->points) {
                note_alternative(out, model);
                continue;
            }
            out->nalternatives = 0;
            out->model = model;
            out->points = fit.points;
            out->voltage_v = fit.voltage_v;
            out->volume_m3 = fit.volume_m3;
            out->word_order = orders[o];
        }
    }
    /* An explicit order that is the model's own is no override. */
    if (out->model != NULL && out->word_order >= 0) {
        for (size_t i = 0; i < out->model->npoints; i++) {
            const struct drv_point *p = &out->model->points[i];
            if (signature_range(p->quantity) != NULL && drv_type_regs(p->type) == 2) {
                if ((int)p->order == out->word_order)
                    out->word_order = -1;
                break;
            }
        }
    }
}

bool drv_scan_match_fits(const struct drv_scan_match *match, const struct drv_model *model)
{
    if (model == NULL || match->model == NULL)
        return false;
    if (match->model == model)
        return true;
    for (size_t i = 0; i < match->nalternatives; i++)
        if (match->alternatives[i] == model)
            return true;
    return false;
}

bool drv_scan_serial_point(const struct drv_model *model, struct drv_scan_probe *probe,
                           enum drv_type *type, enum drv_word_order *order)
{
    for (size_t i = 0; model != NULL && i < model->npoints; i++) {
        const struct drv_point *p = &model->points[i];
        if (p->quantity != DRV_Q_SERIAL)
            continue;
        *probe = probe_of(p);
        *type = p->type;
        *order = p->order;
        return true;
    }
    return false;
}
