/* test_drivers_scan.c - the pure half of the commissioning scan
 * (drivers/scan.c): the identifying reads cover every meter model's
 * signature points without repeats; answers encoded from a model's table
 * (as a device of that model shows them, in its own or another word order)
 * identify that model and that order; an SDM630 is not taken for an
 * SDM120; all-zero, failed or implausible answers identify nothing; the
 * serial point is found where a model has one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "drivers.h"

struct probes {
    struct drv_scan_probe list[DRV_SCAN_MAX_PROBES];
    struct drv_scan_answer answers[DRV_SCAN_MAX_PROBES];
    size_t n;
};

static double typical_value(enum drv_quantity q)
{
    switch (q) {
    case DRV_Q_VOLTAGE_V:
    case DRV_Q_VOLTAGE_L1_V:
    case DRV_Q_VOLTAGE_L2_V:
    case DRV_Q_VOLTAGE_L3_V:
        return 229.5;
    case DRV_Q_FREQUENCY_HZ:
        return 50.02;
    case DRV_Q_VOLUME_M3:
        return 123.456;
    case DRV_Q_BATTERY_V:
        return 3.6;
    default:
        return 1.0;
    }
}

/* Answers as a device of model shows them (order -1: the model's own), with
 * exception 02 for reads the model has no point at. */
static void answer_as(struct probes *p, const struct drv_model *model, int order)
{
    p->n = drv_scan_probes(p->list, DRV_SCAN_MAX_PROBES);
    for (size_t k = 0; k < p->n; k++) {
        p->answers[k].result = EST_ERR_EXCEPTION;
        memset(p->answers[k].regs, 0, sizeof p->answers[k].regs);
        for (size_t i = 0; i < model->npoints; i++) {
            const struct drv_point *pt = &model->points[i];
            if (pt->function != p->list[k].function || pt->address != p->list[k].address ||
                drv_type_regs(pt->type) != p->list[k].count)
                continue;
            enum drv_word_order o = order >= 0 && drv_type_regs(pt->type) == 2
                                        ? (enum drv_word_order)order
                                        : pt->order;
            drv_encode_value(typical_value(pt->quantity), pt->type, o, pt->scale,
                             p->answers[k].regs);
            p->answers[k].result = EST_OK;
        }
    }
}

static void test_probes_are_distinct_and_cover_the_models(void **state)
{
    (void)state;
    struct drv_scan_probe list[DRV_SCAN_MAX_PROBES];
    size_t n = drv_scan_probes(list, DRV_SCAN_MAX_PROBES);
    assert_true(n >= 6);
    assert_true(n < DRV_SCAN_MAX_PROBES);
    for (size_t i = 0; i < n; i++) {
        assert_true(list[i].count == 1 || list[i].count == 2);
        for (size_t j = i + 1; j < n; j++)
            assert_false(list[i].function == list[j].function &&
                         list[i].address == list[j].address && list[i].count == list[j].count);
    }
    bool fc3 = false, fc4 = false;
    for (size_t i = 0; i < n; i++) {
        fc3 |= list[i].function == DRV_FC_HOLDING;
        fc4 |= list[i].function == DRV_FC_INPUT;
    }
    assert_true(fc3 && fc4);
    assert_int_equal(drv_scan_probes(list, 2), 2);
}

/* The step of a model's volume register: a float32 keeps 123.456 within
 * 1e-3, an integer accumulator (TUF-2000M) counts whole m3 times its scale. */
static double volume_resolution(const struct drv_model *model)
{
    for (size_t i = 0; i < model->npoints; i++) {
        const struct drv_point *p = &model->points[i];
        if (p->quantity == DRV_Q_VOLUME_M3 && p->type != DRV_TYPE_F32)
            return p->scale > 1e-3 ? p->scale : 1e-3;
    }
    return 1e-3;
}

static void test_every_meter_model_identifies_itself(void **state)
{
    (void)state;
    struct probes p;
    for (size_t m = 0; m < drv_model_count(); m++) {
        const struct drv_model *model = drv_model_at(m);
        if (model->kind == DRV_KIND_FIRE_PANEL || model->protocol != DRV_PROTO_MODBUS)
            continue;
        print_message("%s\n", model->name);
        answer_as(&p, model, -1);
        struct drv_scan_match match;
        drv_scan_identify(p.list, p.answers, p.n, &match);
        /* Models that share one register map (SDM630, SDM72) are told
         * apart only by the inventory: each is the match or its alternative. */
        assert_true(drv_scan_match_fits(&match, model));
        assert_int_equal(match.word_order, -1);
        if (model->kind == DRV_KIND_WATER)
            assert_true(fabs(match.volume_m3 - 123.456) < volume_resolution(model));
        else
            assert_true(fabs(match.voltage_v - 229.5) < 1e-3);
    }
}

static void test_a_word_swapped_meter_reports_its_order(void **state)
{
    (void)state;
    struct probes p;
    static const char *const names[] = {"sdm120", "sdm630", "ddsu666", "xintai-water"};
    static const int orders[] = {DRV_ORDER_CDAB, DRV_ORDER_DCBA, DRV_ORDER_BADC, DRV_ORDER_ABCD};
    for (size_t i = 0; i < 4; i++) {
        const struct drv_model *model = drv_model_find(names[i]);
        assert_non_null(model);
        answer_as(&p, model, orders[i]);
        struct drv_scan_match match;
        drv_scan_identify(p.list, p.answers, p.n, &match);
        assert_ptr_equal(match.model, model);
        assert_int_equal(match.word_order, orders[i]);
    }
}

static void test_three_phase_is_not_taken_for_single_phase(void **state)
{
    (void)state;
    struct probes p;
    answer_as(&p, drv_model_find("sdm630"), -1);
    struct drv_scan_match match;
    drv_scan_identify(p.list, p.answers, p.n, &match);
    assert_string_equal(match.model->name, "sdm630");
    answer_as(&p, drv_model_find("sdm120"), -1);
    drv_scan_identify(p.list, p.answers, p.n, &match);
    assert_string_equal(match.model->name, "sdm120");
}

static void test_nothing_plausible_identifies_nothing(void **state)
{
    (void)state;
    struct probes p;
    p.n = drv_scan_probes(p.list, DRV_SCAN_MAX_PROBES);
    struct drv_scan_match match;
    for (size_t k = 0; k < p.n; k++) {
        p.answers[k].result = EST_OK;
        memset(p.answers[k].regs, 0, sizeof p.answers[k].regs);
    }
    drv_scan_identify(p.list, p.answers, p.n, &match);
    assert_null(match.model);
    for (size_t k = 0; k < p.n; k++)
        p.answers[k].result = EST_ERR_PROTOCOL;
    drv_scan_identify(p.list, p.answers, p.n, &match);
    assert_null(match.model);
    /* An SDM120's answers with the voltage read failing. */
    answer_as(&p, drv_model_find("sdm120"), -1);
    for (size_t k = 0; k < p.n; k++)
        if (p.list[k].function == DRV_FC_INPUT && p.list[k].address == 0)
            p.answers[k].result = EST_ERR_TIMEOUT;
    drv_scan_identify(p.list, p.answers, p.n, &match);
    assert_true(match.model == NULL || strcmp(match.model->name, "sdm120") != 0);
}

static void test_serial_point(void **state)
{
    (void)state;
    struct drv_scan_probe probe;
    enum drv_type type;
    enum drv_word_order order;
    assert_true(drv_scan_serial_point(drv_model_find("sdm120"), &probe, &type, &order));
    assert_int_equal(probe.function, DRV_FC_HOLDING);
    assert_int_equal(probe.address, 0xFC00);
    assert_int_equal(probe.count, 2);
    assert_int_equal(type, DRV_TYPE_U32);
    assert_false(drv_scan_serial_point(drv_model_find("notifier-gw"), &probe, &type, &order));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probes_are_distinct_and_cover_the_models),
        cmocka_unit_test(test_every_meter_model_identifies_itself),
        cmocka_unit_test(test_a_word_swapped_meter_reports_its_order),
        cmocka_unit_test(test_three_phase_is_not_taken_for_single_phase),
        cmocka_unit_test(test_nothing_plausible_identifies_nothing),
        cmocka_unit_test(test_serial_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
