/* test_sim_world.c - estate-sim's physics and events: counters only grow
 * over simulated time, freeze keeps values, replace/jump/reverse, parents
 * sum their children plus the loss, determinism with a seed, profiles. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_sim_fixture.h"

#include "sim_config.h"
#include "sim_pdu.h"
#include "sim_profile.h"

#define HOUR_MS 3600000LL

static const char *const site =
    "sim = { seed = 42; start_time = \"2026-11-27T00:00:00+08:00\"; };\n"
    "endpoints = ( { name = \"a\"; type = \"tcp\"; listen = \"127.0.0.1:0\"; } );\n"
    "devices = (\n"
    "  { id = \"WM\"; endpoint = \"a\"; slave = 1; driver = \"xintai-water\"; category = \"master\"; },\n"
    "  { id = \"WB\"; endpoint = \"a\"; slave = 2; driver = \"xintai-water\"; category = \"building\"; parent = \"WM\"; loss_pct = 0.0; },\n"
    "  { id = \"WU1\"; endpoint = \"a\"; slave = 3; driver = \"xintai-water\"; parent = \"WB\"; volume_m3 = 100.0; },\n"
    "  { id = \"WU2\"; endpoint = \"a\"; slave = 4; driver = \"xintai-water\"; parent = \"WB\"; occupied = false; volume_m3 = 50.0; },\n"
    "  { id = \"WG\"; endpoint = \"a\"; slave = 5; driver = \"xintai-water\"; category = \"landscape\"; parent = \"WM\"; },\n"
    "  { id = \"EU\"; endpoint = \"a\"; slave = 11; driver = \"sdm120\"; import_kwh = 1234.5; },\n"
    "  { id = \"EV\"; endpoint = \"a\"; slave = 12; driver = \"ddsu666\"; occupied = false; },\n"
    "  { id = \"EL\"; endpoint = \"a\"; slave = 13; driver = \"sdm120\"; category = \"public_lighting\"; },\n"
    "  { id = \"EP\"; endpoint = \"a\"; slave = 14; driver = \"sdm630\"; category = \"amenity\"; },\n"
    "  { id = \"EI\"; endpoint = \"a\"; slave = 15; driver = \"dds238\"; category = \"office\"; }\n"
    ");\n";

static int setup_site(void **state)
{
    *state = sim_fixture_load(site, 0);
    return 0;
}

static void apply(void **state, const char *id, const struct sim_event *ev)
{
    char err[200];
    est_err rc = sim_device_apply_event(world_of(state), device(state, id), ev, 0, err, sizeof err);
    if (rc != EST_OK)
        fail_msg("%s: %s", id, err);
}

static void test_initial_counters(void **state)
{
    assert_true(device(state, "EU")->value[DRV_Q_ENERGY_IMPORT_KWH] == 1234.5);
    /* a parent without a configured volume starts at the sum of its children */
    assert_true(device(state, "WB")->volume_m3 == 150.0);
}

static void test_counters_never_decrease(void **state)
{
    struct sim_world *w = world_of(state);
    size_t n = w->ndevices;
    double *last = calloc(n * 3, sizeof *last);
    int64_t t0 = w->last_advance_sim_ms;
    bool moved_water = false, moved_energy = false;
    for (int64_t t = t0; t <= t0 + 48 * HOUR_MS; t += 137000) {
        sim_world_advance(w, t, 0);
        for (size_t i = 0; i < n; i++) {
            const struct sim_device *d = &w->devices[i];
            double now[3] = {d->value[DRV_Q_ENERGY_IMPORT_KWH], d->value[DRV_Q_ENERGY_EXPORT_KWH],
                             d->value[DRV_Q_VOLUME_M3]};
            for (int k = 0; k < 3; k++) {
                if (t > t0 && now[k] < last[i * 3 + k])
                    fail_msg("%s counter %d went from %f to %f", d->id, k, last[i * 3 + k], now[k]);
                if (t > t0 && now[k] > last[i * 3 + k])
                    *(k == 2 ? &moved_water : &moved_energy) = true;
                last[i * 3 + k] = now[k];
            }
        }
    }
    free(last);
    assert_true(moved_water);
    assert_true(moved_energy);
    /* the vacant unit drew no water at all */
    assert_true(device(state, "WU2")->volume_m3 == 50.0);
}

static void test_parent_is_children_plus_loss(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *wm = device(state, "WM"), *wb = device(state, "WB");
    struct sim_device *wu1 = device(state, "WU1"), *wg = device(state, "WG");
    struct sim_event loss = {.type = SIM_EV_LOSS, .pct = 20.0, .quantity = -1};
    apply(state, "WM", &loss);
    struct sim_event leak = {.type = SIM_EV_FLOW, .flow_m3h = 0.5, .quantity = -1};
    apply(state, "WU2", &leak);
    double m0 = wm->volume_m3, b0 = wb->volume_m3, u0 = wu1->volume_m3, g0 = wg->volume_m3;
    double u20 = device(state, "WU2")->volume_m3;
    int64_t t0 = w->last_advance_sim_ms;
    for (int k = 1; k <= 600; k++)
        sim_world_advance(w, t0 + k * 60000LL, 0);
    double children = (wu1->volume_m3 - u0) + (device(state, "WU2")->volume_m3 - u20);
    assert_true(children > 5.0 - 1e-9); /* the vacant unit's 0.5 m3/h for 10 h */
    assert_true(fabs((wb->volume_m3 - b0) - children) < 1e-6); /* building loss 0 % */
    double expect = ((wb->volume_m3 - b0) + (wg->volume_m3 - g0)) * 1.2;
    assert_true(fabs((wm->volume_m3 - m0) - expect) < 1e-6);
    assert_true(fabs(wm->value[DRV_Q_FLOW_M3H] -
                     (wb->value[DRV_Q_FLOW_M3H] + wg->value[DRV_Q_FLOW_M3H]) * 1.2) < 1e-9);
}

static void test_freeze_keeps_values(void **state)
{
    struct sim_world *w = world_of(state);
    sim_clock_freeze(&w->clock, false, 0);
    w->clock.time_scale = 60.0;
    sim_world_advance(w, sim_clock_now(&w->clock, 10000), 10000);
    sim_clock_freeze(&w->clock, true, 10000);
    int64_t frozen_at = sim_clock_now(&w->clock, 10000);
    double before[16][DRV_Q__COUNT];
    for (size_t i = 0; i < w->ndevices; i++)
        memcpy(before[i], w->devices[i].value, sizeof before[i]);
    for (int64_t mono = 10000; mono < 100000; mono += 1000)
        sim_world_advance(w, sim_clock_now(&w->clock, mono), mono);
    for (size_t i = 0; i < w->ndevices; i++)
        assert_memory_equal(before[i], w->devices[i].value, sizeof before[i]);
    sim_clock_freeze(&w->clock, false, 100000);
    assert_int_equal(sim_clock_now(&w->clock, 100000), frozen_at); /* no jump on thaw */
    sim_world_advance(w, sim_clock_now(&w->clock, 200000), 200000);
    assert_true(w->devices[0].value[DRV_Q_VOLUME_M3] >= before[0][DRV_Q_VOLUME_M3]);
}

static void test_replace_jump_reverse(void **state)
{
    struct sim_world *w = world_of(state);
    struct sim_device *eu = device(state, "EU");
    struct sim_event rep = {.type = SIM_EV_REPLACE, .has_serial = true, .serial = 20269999,
                            .quantity = -1};
    apply(state, "EU", &rep);
    assert_int_equal(eu->serial, 20269999);
    assert_true(eu->value[DRV_Q_ENERGY_IMPORT_KWH] == 0.0);
    assert_true(eu->value[DRV_Q_SERIAL] == 20269999.0);

    struct sim_event jump = {.type = SIM_EV_JUMP, .delta = 5000.0, .quantity = -1};
    apply(state, "EU", &jump);
    assert_true(eu->value[DRV_Q_ENERGY_IMPORT_KWH] == 5000.0);

    struct sim_event rev = {.type = SIM_EV_REVERSE, .on = true, .power_w = 800.0, .quantity = -1};
    apply(state, "EU", &rev);
    assert_true(eu->value[DRV_Q_POWER_W] == -800.0);
    assert_true(eu->value[DRV_Q_POWER_FACTOR] < 0);
    double imp = eu->import_kwh, exp0 = eu->export_kwh;
    sim_world_advance(w, w->last_advance_sim_ms + HOUR_MS, 0);
    assert_true(eu->import_kwh == imp);
    assert_true(fabs(eu->export_kwh - exp0 - 0.8) < 1e-6);

    struct sim_event set = {.type = SIM_EV_SET, .quantity = DRV_Q_VOLTAGE_V, .value = 199.0};
    apply(state, "EU", &set);
    assert_true(eu->value[DRV_Q_VOLTAGE_V] == 199.0);
    set.clear = true;
    apply(state, "EU", &set);
    assert_true(eu->value[DRV_Q_VOLTAGE_V] > 215.0);

    char err[200];
    struct sim_event flow = {.type = SIM_EV_FLOW, .flow_m3h = 1.0, .quantity = -1};
    assert_int_not_equal(sim_device_apply_event(w, eu, &flow, 0, err, sizeof err), EST_OK);
    struct sim_event zone = {.type = SIM_EV_ZONE, .zone = 1, .state = SIM_ZONE_ALARM};
    assert_int_not_equal(sim_device_apply_event(w, eu, &zone, 0, err, sizeof err), EST_OK);
}

static void test_deterministic(void **state)
{
    struct sim_setup *other = sim_fixture_load(site, 0);
    struct sim_world *a = world_of(state), *b = other->world;
    for (int64_t t = 1; t <= 24; t++) {
        sim_world_advance(a, a->clock.base_sim_ms + t * HOUR_MS, 0);
        sim_world_advance(b, b->clock.base_sim_ms + t * HOUR_MS, 0);
    }
    for (size_t i = 0; i < a->ndevices; i++)
        assert_memory_equal(a->devices[i].value, b->devices[i].value, sizeof a->devices[i].value);
    sim_setup_free(other);
}

static void test_profiles(void **state)
{
    (void)state;
    /* 2026-11-27 (a Friday) local +08:00 */
    int64_t midnight_utc = 1795708800000LL; /* 2026-11-27T00:00:00+08:00 */
    struct sim_profile_input in = {.seed = 1, .utc_offset_min = 480, .occupied = true};
    in.sim_ms = midnight_utc + 3 * HOUR_MS;
    assert_true(sim_profile_flow_m3h(SIM_PROFILE_LANDSCAPE, &in) > 1.0);
    assert_true(sim_profile_power_w(SIM_PROFILE_PUBLIC_LIGHTING, &in) > 100.0);
    in.sim_ms = midnight_utc + 12 * HOUR_MS;
    assert_true(sim_profile_flow_m3h(SIM_PROFILE_LANDSCAPE, &in) == 0.0);
    assert_true(sim_profile_power_w(SIM_PROFILE_PUBLIC_LIGHTING, &in) < 10.0);
    assert_true(sim_profile_power_w(SIM_PROFILE_OFFICE, &in) > 1000.0);
    in.occupied = false;
    for (int m = 0; m < 24 * 60; m += 7) {
        in.sim_ms = midnight_utc + m * 60000LL;
        assert_true(sim_profile_flow_m3h(SIM_PROFILE_UNIT, &in) == 0.0);
        assert_true(sim_profile_power_w(SIM_PROFILE_UNIT, &in) < 20.0);
    }
    assert_int_equal(sim_profile_from_name("public_lighting"), SIM_PROFILE_PUBLIC_LIGHTING);
    assert_int_equal(sim_profile_from_name("nope"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initial_counters, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_counters_never_decrease, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_parent_is_children_plus_loss, setup_site,
                                        teardown_site),
        cmocka_unit_test_setup_teardown(test_freeze_keeps_values, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_replace_jump_reverse, setup_site, teardown_site),
        cmocka_unit_test_setup_teardown(test_deterministic, setup_site, teardown_site),
        cmocka_unit_test(test_profiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
