/* bench_payload.c - the cost of one reading's JSON on the core thread's hot
 * path (gateway/core.c): registers as a meter serves them -> drv_decode ->
 * gw_payload_values_json (the values object, printed once for the payload
 * and the store) -> gw_payload_reading_into (the whole reading payload).
 * Two typical readings: an Eastron SDM120 (float32 ABCD: voltage, current,
 * power, power factor, frequency, import/export energy) and a Kaifeng Xintai
 * water meter (float32 DCBA volumes, flow, battery; the valve status word).
 * The registers of 256 slightly different readings per model are encoded
 * once with drv_encode_value from decimal values a meter shows (226.1 V,
 * 12345.67 kWh, ...), the way estate-sim serves them, then decoded and
 * printed round after round. Prints CPU ns per reading for each stage and
 * the payload size. Usage: bench_payload [rounds] [sdm120|xintai] (both by
 * default; one alone, e.g. under valgrind --tool=callgrind for instruction
 * counts). A figure, not a pass/fail test; use a Release build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "views.h"

#define READINGS 256
#define MAX_REGS 256

struct model_bench {
    const char *label;
    const char *model_name;
    const struct drv_model *model;
    struct drv_plan *plan;
    size_t nregs, nreq;
    uint16_t regs[READINGS][MAX_REGS];
    bool ok[DRV_MAX_READ_REGS];
    struct drv_reading readings[READINGS];
    uint32_t meter_index;
};

static uint64_t rng = 0x9E3779B97F4A7C15u;

static unsigned next_below(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A decimal as the meter displays it: an integer count of `step`s (the
 * division gives the double nearest to that decimal). */
static double decimal(unsigned lo, unsigned span, double per)
{
    return (double)(lo + next_below(span)) / per;
}

/* Typical values of one poll, with the digits real meters show. */
static double typical_value(enum drv_quantity q)
{
    switch (q) {
    case DRV_Q_VOLTAGE_V: return decimal(2180, 240, 10.0);          /* 218.0-241.9 V */
    case DRV_Q_CURRENT_A: return decimal(0, 3000, 100.0);           /* 0-29.99 A */
    case DRV_Q_POWER_W: return decimal(0, 60000, 10.0);             /* 0-5999.9 W */
    case DRV_Q_POWER_FACTOR: return decimal(800, 200, 1000.0);      /* 0.8-0.999 */
    case DRV_Q_FREQUENCY_HZ: return decimal(4990, 20, 100.0);       /* 49.9-50.09 Hz */
    case DRV_Q_ENERGY_IMPORT_KWH: return decimal(100000, 5000000, 100.0); /* 1000-51000 kWh */
    case DRV_Q_ENERGY_EXPORT_KWH: return 0.0;
    case DRV_Q_ENERGY_TOTAL_KWH: return decimal(100000, 5000000, 100.0);
    case DRV_Q_VOLUME_M3: return decimal(100000, 900000, 1000.0);   /* 100-1000 m3 */
    case DRV_Q_REVERSE_VOLUME_M3: return decimal(0, 500, 1000.0);
    case DRV_Q_FLOW_M3H: return decimal(0, 3000, 1000.0);           /* 0-2.999 m3/h */
    case DRV_Q_BATTERY_V: return decimal(330, 30, 100.0);           /* 3.3-3.59 V */
    case DRV_Q_SERIAL: return 20260000.0 + next_below(10000);
    default: return 1.0;
    }
}

/* Index in the plan's register buffer of (function, wire address), or -1. */
static long buffer_index(const struct drv_plan *plan, uint8_t function, uint16_t address)
{
    for (size_t i = 0; i < drv_plan_request_count(plan); i++) {
        const struct drv_request *r = drv_plan_request(plan, i);
        if (r->function == function && address >= r->address && address < r->address + r->count)
            return (long)(r->reg_offset + (address - r->address));
    }
    return -1;
}

static int setup(struct model_bench *b)
{
    b->model = drv_model_find(b->model_name);
    if (b->model == NULL || drv_plan_build(b->model, NULL, &b->plan) != EST_OK)
        return -1;
    b->nregs = drv_plan_register_count(b->plan);
    b->nreq = drv_plan_request_count(b->plan);
    if (b->nregs > MAX_REGS || b->nreq > DRV_MAX_READ_REGS)
        return -1;
    /* A fast poll: every request but the slow ones (total energy, serial). */
    for (size_t i = 0; i < b->nreq; i++)
        b->ok[i] = !drv_plan_request(b->plan, i)->slow;
    for (size_t n = 0; n < READINGS; n++) {
        memset(b->regs[n], 0, sizeof b->regs[n]);
        for (size_t p = 0; p < b->model->npoints; p++) {
            const struct drv_point *pt = &b->model->points[p];
            uint8_t function;
            uint16_t address;
            enum drv_word_order order;
            drv_point_effective(b->model, NULL, p, &function, &address, &order);
            long at = buffer_index(b->plan, function, address);
            if (at < 0)
                return -1;
            if (pt->status != NULL)
                drv_encode_value(0x0001, pt->type, order, 1.0, &b->regs[n][at]); /* open */
            else
                drv_encode_value(typical_value(pt->quantity), pt->type, order, pt->scale,
                                 &b->regs[n][at]);
        }
    }
    return 0;
}

/* The process's CPU time (one thread): on a machine shared with other
 * builds, wall time would count the time the bench waits for a core. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile size_t sink;

static void run(struct model_bench *b, const struct gw_config *config, int rounds)
{
    char values[GW_PAYLOAD_VALUES_MAX], payload[GW_PAYLOAD_READING_MAX];
    struct gw_sample sample;
    memset(&sample, 0, sizeof sample);
    sample.index = b->meter_index;
    sample.ts_ms = 1767225600000LL;
    sample.quality = GW_QUALITY_GOOD;
    size_t total = (size_t)rounds * READINGS;

    double t0 = now_s();
    for (int r = 0; r < rounds; r++)
        for (size_t n = 0; n < READINGS; n++) {
            drv_decode(b->plan, b->regs[n], b->ok, &b->readings[n], NULL);
            sink += b->readings[n].present;
        }
    double t1 = now_s();
    size_t vbytes = 0;
    for (int r = 0; r < rounds; r++)
        for (size_t n = 0; n < READINGS; n++)
            vbytes += gw_payload_values_json(&b->readings[n], values, sizeof values);
    double t2 = now_s();
    size_t pbytes = 0;
    for (int r = 0; r < rounds; r++)
        for (size_t n = 0; n < READINGS; n++) {
            sample.ts_ms += 1000; /* the reading's values go in as values_json */
            size_t vlen = gw_payload_values_json(&b->readings[n], values, sizeof values);
            pbytes += gw_payload_reading_into(config, &sample, values, vlen, payload,
                                              sizeof payload);
        }
    double t3 = now_s();
    sink += vbytes + pbytes;

    printf("%-7s decode %7.1f ns | values json %7.1f ns (%5.1f B) | values + reading %7.1f ns "
           "(%5.1f B) per reading\n",
           b->label, (t1 - t0) * 1e9 / (double)total, (t2 - t1) * 1e9 / (double)total,
           (double)vbytes / (double)total, (t3 - t2) * 1e9 / (double)total,
           (double)pbytes / (double)total);
    gw_payload_values_json(&b->readings[0], values, sizeof values);
    gw_payload_reading_into(config, &sample, values, strlen(values), payload, sizeof payload);
    printf("        e.g. %s\n", payload);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 400;
    const char *only = argc > 2 ? argv[2] : NULL;
    if (rounds < 1 || argc > 3 ||
        (only != NULL && strcmp(only, "sdm120") != 0 && strcmp(only, "xintai") != 0)) {
        fprintf(stderr, "usage: %s [rounds >= 1] [sdm120|xintai]\n", argv[0]);
        return 2;
    }
    static struct model_bench sdm120 = {.label = "sdm120", .model_name = "sdm120",
                                        .meter_index = 0};
    static struct model_bench xintai = {.label = "xintai", .model_name = "xintai-water",
                                        .meter_index = 1};
    if (setup(&sdm120) != 0 || setup(&xintai) != 0) {
        fprintf(stderr, "bench_payload: cannot build the models' plans\n");
        return 1;
    }
    struct gw_unit_config units[1] = {{.id = "3-1201"}};
    struct gw_meter_config meters[2] = {
        {.id = "E-3-1201", .kind = DRV_KIND_ELECTRICITY, .category = GW_CAT_UNIT, .unit = 0},
        {.id = "W-3-1201", .kind = DRV_KIND_WATER, .category = GW_CAT_UNIT, .unit = 0},
    };
    struct gw_config config;
    memset(&config, 0, sizeof config);
    config.meters = meters;
    config.nmeters = 2;
    config.units = units;
    config.nunits = 1;

    printf("bench_payload: %d rounds x %d readings per model\n", rounds, READINGS);
    if (only == NULL || strcmp(only, "sdm120") == 0)
        run(&sdm120, &config, rounds);
    if (only == NULL || strcmp(only, "xintai") == 0)
        run(&xintai, &config, rounds);
    drv_plan_free(sdm120.plan);
    drv_plan_free(xintai.plan);
    return 0;
}
