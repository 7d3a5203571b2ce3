/* bench_rules.c - rule engine throughput and memory: a synthetic site of
 * 10,000 meters (mixed electricity and water, single and three phase, units
 * some vacant, parent meters for balance, fire panels) with every rule
 * enabled, polled round after round; prints samples evaluated per second on
 * one core and the heap the engine holds (glibc mallinfo2 deltas, so every
 * allocation counts, malloc's own chunk overhead included) right after
 * rule_engine_create and at the end of the run.
 * Usage: bench_rules [meters] [rounds]. A figure, not a pass/fail test. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_heap.h"
#include "rules.h"

#define T0_MS 1767225600000LL
#define POLL_MS 10000LL
#define PANELS 20
#define ZONES 64
#define SAMPLES_PER_TICK 1000 /* 10,000 meters every 10 s: one tick per 1,000 samples */

struct counters {
    uint64_t raised, updated, cleared, actions;
    uint64_t raised_by_rule[RULE__COUNT];
};

/* Per-meter synthetic physics. */
struct sim_meter {
    double import_kwh, export_kwh, volume_m3;
    double base_w;
    uint8_t misbehaves;   /* 1 runs backwards, 2 vacant flow */
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double rng_unit(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1p-53;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_event(void *ctx, const struct rule_event *ev)
{
    struct counters *c = ctx;
    if (ev->transition == RULE_RAISED) {
        c->raised++;
        c->raised_by_rule[ev->rule]++;
    } else if (ev->transition == RULE_UPDATED) {
        c->updated++;
    } else {
        c->cleared++;
    }
}

static void on_action(void *ctx, const struct rule_action *action)
{
    (void)action;
    ((struct counters *)ctx)->actions++;
}

/* Blocks of 100 meters: meter 0 of a block is the building meter, the rest
 * are unit meters under it. Three blocks in five are electricity. */
static bool block_is_water(size_t i)
{
    return (i / 100) % 5 >= 3;
}

static void build_site(size_t n, struct rule_meter *meters, bool *vacant, struct sim_meter *sim)
{
    for (size_t i = 0; i < n; i++) {
        bool building = i % 100 == 0;
        struct rule_meter *m = &meters[i];
        memset(m, 0, sizeof *m);
        m->kind = block_is_water(i) ? RULE_METER_WATER : RULE_METER_ELECTRICITY;
        m->category = building ? RULE_CAT_BUILDING : (i % 37 == 0 ? RULE_CAT_LANDSCAPE : RULE_CAT_UNIT);
        m->unit = building ? -1 : (int)i;
        m->parent = building ? -1 : (int)(i - i % 100);
        m->rated_power_w = building ? 500000.0 : 12000.0;
        m->max_flow_m3h = building ? 200.0 : 5.0;
        m->export_expected = i % 20 == 1;
        m->has_valve = m->kind == RULE_METER_WATER;
        m->resolution = m->kind == RULE_METER_WATER ? 0.001 : 0.01;
        m->counter_wrap = i % 11 == 0 ? 42949672.96 : 0.0;
        m->serial = (uint32_t)(100000 + i);
        m->quiet_start_min = m->category == RULE_CAT_LANDSCAPE ? 120 : -1;
        m->quiet_end_min = m->category == RULE_CAT_LANDSCAPE ? 300 : -1;
        m->utc_offset_min = 480;
        vacant[i] = i % 5 == 0;
        sim[i].import_kwh = 1000.0 + rng_unit() * 60000.0;
        sim[i].export_kwh = 3.0;
        sim[i].volume_m3 = 10.0 + rng_unit() * 500.0;
        sim[i].base_w = building ? 40000.0 : 100.0 + rng_unit() * 2000.0;
        sim[i].misbehaves = i % 97 == 3 ? 1 : (i % 89 == 5 && vacant[i] ? 2 : 0);
    }
}

/* One poll of meter i in round r. */
static void make_sample(size_t i, int round, const struct rule_meter *m, struct sim_meter *s,
                        struct rule_meter_sample *out)
{
    memset(out, 0, sizeof *out);
    out->meter = (uint32_t)i;
    out->ts_ms = T0_MS + round * POLL_MS + (int64_t)(i % 1000) * 5;
    out->ok = rng_unit() > 0.001;
    out->has = RULE_HAS_SERIAL;
    out->serial = m->serial;
    double dt_h = POLL_MS / 3600000.0;
    if (m->kind == RULE_METER_ELECTRICITY) {
        double power = s->base_w * (0.5 + rng_unit());
        if (s->misbehaves == 1 && round >= 20)
            power = -300.0;
        if (power > 0)
            s->import_kwh += power / 1000.0 * dt_h;
        else
            s->export_kwh += -power / 1000.0 * dt_h;
        out->has |= RULE_HAS_IMPORT | RULE_HAS_EXPORT | RULE_HAS_POWER;
        out->import_kwh = (double)(float)s->import_kwh; /* float32 registers */
        out->export_kwh = (double)(float)s->export_kwh;
        out->power_w = power;
        if (i % 4 == 0) {
            out->has |= RULE_HAS_PHASE_POWER;
            out->phase_power_w[0] = out->phase_power_w[1] = out->phase_power_w[2] = power / 3.0;
        }
    } else {
        bool in_use = m->category == RULE_CAT_BUILDING || (rng_unit() < 0.3 && !(i % 5 == 0)) ||
                      (s->misbehaves == 2 && round >= 30);
        double flow = in_use ? (m->category == RULE_CAT_BUILDING ? 20.0 : 0.6) : 0.0;
        s->volume_m3 += flow * dt_h;
        out->has |= RULE_HAS_VOLUME | RULE_HAS_FLOW | RULE_HAS_VALVE;
        out->volume_m3 = (double)(float)s->volume_m3;
        out->flow_m3h = flow;
        out->valve = RULE_VALVE_OPEN;
    }
}

int main(int argc, char **argv)
{
    size_t nmeters = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    int rounds = argc > 2 ? atoi(argv[2]) : 300;
    if (nmeters < 100 || rounds < 1) {
        fprintf(stderr, "usage: %s [meters >= 100] [rounds >= 1]\n", argv[0]);
        return 2;
    }
    struct rule_meter *meters = calloc(nmeters, sizeof *meters);
    bool *vacant = calloc(nmeters, sizeof *vacant);
    struct sim_meter *sim = calloc(nmeters, sizeof *sim);
    struct rule_meter_sample *batch = calloc(nmeters, sizeof *batch);
    if (!meters || !vacant || !sim || !batch)
        return 1;
    build_site(nmeters, meters, vacant, sim);

    struct rule_config cfg;
    rule_config_defaults(&cfg);
    cfg.vacant_flow.auto_close_valve = true;
    cfg.balance_loss.window_s = 600; /* several balance windows within the run */
    uint16_t zones[PANELS];
    for (int p = 0; p < PANELS; p++)
        zones[p] = ZONES;
    struct rule_topology topo = {
        .nmeters = nmeters, .meters = meters, .nunits = nmeters, .unit_vacant = vacant,
        .npanels = PANELS, .panel_zones = zones,
    };
    struct counters counters = { 0 };
    struct rule_engine *engine = NULL;
    size_t heap_before = heap_in_use();
    est_err err = rule_engine_create(&cfg, &topo, on_event, on_action, &counters, &engine);
    if (err) {
        fprintf(stderr, "bench_rules: rule_engine_create: %s\n", est_strerror(err));
        return 1;
    }
    size_t engine_bytes_created = heap_in_use() - heap_before;

    uint8_t zone_bits[ZONES] = { 0 };
    uint64_t samples = 0, ticks = 0;
    double busy_s = 0.0;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < nmeters; i++) /* untimed: synthesising the poll */
            make_sample(i, r, &meters[i], &sim[i], &batch[i]);
        zone_bits[r % ZONES] = (r / ZONES) % 2 ? 1 : 0;
        int64_t round_ts = T0_MS + r * POLL_MS;

        double start = now_s();
        for (size_t i = 0; i < nmeters; i++) {
            rule_engine_feed_meter(engine, &batch[i]);
            if (++samples % SAMPLES_PER_TICK == 0) {
                rule_engine_tick(engine, batch[i].ts_ms);
                ticks++;
            }
        }
        for (uint32_t p = 0; p < PANELS; p++) {
            struct rule_panel_sample ps = { .panel = p, .ts_ms = round_ts, .ok = true, .nzones = ZONES,
                                            .zones = zone_bits };
            rule_engine_feed_panel(engine, &ps);
        }
        busy_s += now_s() - start;
    }
    size_t engine_bytes_run = heap_in_use() - heap_before;
    rule_engine_destroy(engine);

    size_t water = 0;
    for (size_t i = 0; i < nmeters; i++)
        water += meters[i].kind == RULE_METER_WATER;
    printf("bench_rules: %zu meters (%zu electricity, %zu water), %zu units (1 in 5 vacant), "
           "%d panels x %d zones, every rule enabled\n",
           nmeters, nmeters - water, water, nmeters, PANELS, ZONES);
    printf("  %" PRIu64 " meter samples + %d panel samples + %" PRIu64 " ticks in %.3f s\n", samples,
           rounds * PANELS, ticks, busy_s);
    printf("  %.2f million samples/s on one core, %.1f ns/sample (target >= 2 million/s)\n",
           samples / busy_s / 1e6, busy_s * 1e9 / samples);
    printf("  events: %" PRIu64 " raised, %" PRIu64 " updated, %" PRIu64 " cleared; %" PRIu64
           " valve actions\n",
           counters.raised, counters.updated, counters.cleared, counters.actions);
    printf("  engine heap: %.2f MB after create (%.0f bytes/meter), %.2f MB at the end of the run\n",
           engine_bytes_created / 1e6, (double)engine_bytes_created / nmeters, engine_bytes_run / 1e6);
    printf("  raised by rule:");
    for (int r = 0; r < RULE__COUNT; r++)
        printf(" %s %" PRIu64, rule_name((enum rule_id)r), counters.raised_by_rule[r]);
    printf("\n");
    printf("  run: %s %zu %d   (build with -DCMAKE_BUILD_TYPE=Release)\n", argv[0], nmeters, rounds);
    free(meters);
    free(vacant);
    free(sim);
    free(batch);
    return 0;
}
