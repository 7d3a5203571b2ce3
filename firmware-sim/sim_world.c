/* sim_world.c - the simulated site's state and physics: devices, parents,
 * the simulation clock, counters integrated over simulated time, events,
 * faults and valves. See sim_world.h. */
#include "sim_world.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"

#define Q_BIT(q) (1ull << (q))
#define MAX_STEPS_PER_ADVANCE 120 /* integration steps per device per advance */

/* ---------------------------------------------------------------- names */

static const char *const event_names[SIM_EV__COUNT] = {
    [SIM_EV_REVERSE] = "reverse", [SIM_EV_FLOW] = "flow",   [SIM_EV_ZONE] = "zone",
    [SIM_EV_REPLACE] = "replace", [SIM_EV_JUMP] = "jump",   [SIM_EV_LOSS] = "loss",
    [SIM_EV_SET] = "set",         [SIM_EV_VALVE] = "valve",
};

static const char *const fault_names[] = {
    [SIM_FAULT_NONE] = "none",           [SIM_FAULT_SILENT] = "silent",
    [SIM_FAULT_SLOW] = "slow",           [SIM_FAULT_EXCEPTION] = "exception",
    [SIM_FAULT_GARBAGE] = "garbage",     [SIM_FAULT_CRC] = "crc",
    [SIM_FAULT_DUPLICATE] = "duplicate", [SIM_FAULT_BAD_LENGTH] = "bad_length",
    [SIM_FAULT_WRONG_UNIT] = "wrong_unit",
};

static const char *const zone_names[] = {
    [SIM_ZONE_NORMAL] = "normal",     [SIM_ZONE_ALARM] = "alarm",
    [SIM_ZONE_FAULT] = "fault",       [SIM_ZONE_DISABLED] = "disabled",
    [SIM_ZONE_SUPERVISORY] = "supervisory",
};

static int name_index(const char *const *names, size_t n, const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (names[i] != NULL && strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *sim_event_name(enum sim_event_type t)
{
    return (unsigned)t < SIM_EV__COUNT ? event_names[t] : "unknown";
}

int sim_event_from_name(const char *name)
{
    return name_index(event_names, SIM_EV__COUNT, name);
}

const char *sim_fault_name(enum sim_fault f)
{
    return (unsigned)f <= SIM_FAULT_LAST ? fault_names[f] : "unknown";
}

int sim_fault_from_name(const char *name)
{
    return name_index(fault_names, SIM_FAULT_LAST + 1, name);
}

const char *sim_zone_state_name(enum sim_zone_state s)
{
    return (unsigned)s <= SIM_ZONE_SUPERVISORY ? zone_names[s] : "unknown";
}

int sim_zone_state_from_name(const char *name)
{
    return name_index(zone_names, SIM_ZONE_SUPERVISORY + 1, name);
}

/* The point word the panel model's file gives the zone state (for the
 * NOTIFIER MODBUS-GW: normal 0x0400, alarm 0x0C10, supervisory 0x0C30,
 * fault 0x2400, disabled 0x0200). */
uint16_t sim_zone_register(const struct drv_panel_layout *panel, enum sim_zone_state s)
{
    static const uint8_t bits[] = {
        [SIM_ZONE_NORMAL] = 0,
        [SIM_ZONE_ALARM] = DRV_ZONE_ALARM,
        [SIM_ZONE_FAULT] = DRV_ZONE_FAULT,
        [SIM_ZONE_DISABLED] = DRV_ZONE_DISABLED,
        [SIM_ZONE_SUPERVISORY] = DRV_ZONE_SUPERVISORY,
    };
    return drv_panel_zone_encode(panel, (unsigned)s < sizeof bits ? bits[s] : 0);
}

/* ------------------------------------------------------------- building */

struct sim_world *sim_world_new(void)
{
    struct sim_world *world = calloc(1, sizeof *world);
    if (world == NULL)
        return NULL;
    pthread_mutex_init(&world->lock, NULL);
    world->clock.time_scale = 1.0;
    world->utc_offset_min = 480;
    return world;
}

void sim_world_free(struct sim_world *world)
{
    if (world == NULL)
        return;
    for (size_t i = 0; i < world->nendpoints; i++) {
        free(world->endpoints[i].name);
        free(world->endpoints[i].listen);
        free(world->endpoints[i].link);
    }
    for (size_t i = 0; i < world->ndevices; i++) {
        struct sim_device *dev = &world->devices[i];
        free(dev->id);
        free(dev->zone_addresses);
        free(dev->points);
        free(dev->zones);
        free(dev->zone_wire);
    }
    free(world->endpoints);
    free(world->devices);
    free(world->order);
    pthread_mutex_destroy(&world->lock);
    free(world);
}

/* Appends one zeroed element to an array of *count elements of size bytes
 * with room for *cap; returns it, or NULL when out of memory. */
static void *append_zeroed(void **array, size_t *count, size_t *cap, size_t size)
{
    if (est_vec_reserve(array, cap, *count + 1, size) != EST_OK)
        return NULL;
    char *item = (char *)*array + *count * size;
    memset(item, 0, size);
    (*count)++;
    return item;
}

struct sim_endpoint *sim_world_add_endpoint(struct sim_world *world)
{
    struct sim_endpoint *ep = append_zeroed((void **)&world->endpoints, &world->nendpoints,
                                            &world->endpoints_cap, sizeof *ep);
    if (ep == NULL)
        return NULL;
    for (size_t s = 0; s <= SIM_MAX_SLAVE; s++)
        ep->slave_device[s] = ep->slave_twin[s] = -1;
    ep->baud = 9600;
    ep->parity = 'N';
    ep->data_bits = 8;
    ep->stop_bits = 1;
    ep->turnaround_ms = 2;
    return ep;
}

struct sim_device *sim_world_add_device(struct sim_world *world)
{
    struct sim_device *dev = append_zeroed((void **)&world->devices, &world->ndevices,
                                           &world->devices_cap, sizeof *dev);
    if (dev == NULL)
        return NULL;
    dev->parent = -1;
    dev->options.word_order = -1;
    dev->valve = DRV_VALVE_OPEN;
    dev->valve_target = DRV_VALVE_OPEN;
    dev->loss_pct = 2.0;
    dev->import_kwh = dev->export_kwh = dev->volume_m3 = NAN; /* NAN = not configured */
    dev->reverse_m3 = 0.0;
    return dev;
}

static est_err build_points(struct sim_device *dev)
{
    const struct drv_model *model = dev->model;
    if (model->npoints > 0) {
        dev->points = calloc(model->npoints, sizeof *dev->points);
        if (dev->points == NULL)
            return EST_ERR_NOMEM;
    }
    for (size_t i = 0; i < model->npoints; i++) {
        struct sim_point *p = &dev->points[i];
        drv_point_effective(model, &dev->options, i, &p->function, &p->address, &p->order);
        p->nregs = (uint8_t)drv_type_regs(model->points[i].type);
        if (model->points[i].quantity == DRV_Q_VOLTAGE_L2_V)
            dev->three_phase = true;
    }
    if (model->kind == DRV_KIND_FIRE_PANEL) {
        dev->nzones = dev->options.nzones;
        dev->zones = calloc(dev->nzones ? dev->nzones : 1, 1);
        dev->zone_wire = calloc(dev->nzones ? dev->nzones : 1, sizeof *dev->zone_wire);
        if (dev->zones == NULL || dev->zone_wire == NULL)
            return EST_ERR_NOMEM;
        for (uint16_t z = 0; z < dev->nzones; z++)
            dev->zone_wire[z] = drv_zone_address(model, &dev->options, z);
    }
    return EST_OK;
}

/* Depth of each device above its leaves; detects parent loops. */
static est_err compute_depths(struct sim_world *world, char *err, size_t errlen)
{
    for (size_t i = 0; i < world->ndevices; i++)
        world->devices[i].depth = 0;
    for (size_t i = 0; i < world->ndevices; i++) {
        int p = world->devices[i].parent;
        int d = 1;
        while (p >= 0) {
            if ((size_t)d > world->ndevices) {
                snprintf(err, errlen, "device %s: parent loop", world->devices[i].id);
                return EST_ERR_INVALID;
            }
            if (world->devices[p].depth < d)
                world->devices[p].depth = d;
            p = world->devices[p].parent;
            d++;
        }
    }
    return EST_OK;
}

static const struct sim_world *sort_world; /* qsort context, only during finish */

static int by_depth(const void *a, const void *b)
{
    const struct sim_device *da = &sort_world->devices[*(const size_t *)a];
    const struct sim_device *db = &sort_world->devices[*(const size_t *)b];
    if (da->depth != db->depth)
        return da->depth < db->depth ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static bool has_children(const struct sim_world *world, size_t index)
{
    return world->devices[index].depth > 0;
}

/* Plausible, seed-dependent starting counters for devices the config left unset. */
static void default_counters(struct sim_world *world)
{
    for (size_t k = 0; k < world->ndevices; k++) {
        size_t i = world->order[k];
        struct sim_device *dev = &world->devices[i];
        if (isnan(dev->export_kwh))
            dev->export_kwh = 0.0;
        if (isnan(dev->import_kwh))
            dev->import_kwh = floor(500.0 + 4500.0 * sim_noise(dev->key, 101));
        if (isnan(dev->volume_m3)) {
            if (has_children(world, i)) {
                double sum = 0.0;
                for (size_t c = 0; c < world->ndevices; c++)
                    if (world->devices[c].parent == (int)i)
                        sum += world->devices[c].volume_m3;
                dev->volume_m3 = sum;
            } else {
                dev->volume_m3 = floor(500.0 + 7500.0 * sim_noise(dev->key, 102)) / 10.0;
            }
        }
    }
}

est_err sim_world_finish(struct sim_world *world, int64_t start_sim_ms, int64_t mono_ms,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < world->ndevices; i++) {
        struct sim_device *dev = &world->devices[i];
        struct sim_endpoint *ep = &world->endpoints[dev->endpoint];
        int32_t *twin = &ep->slave_twin[dev->slave];
        if (ep->slave_device[dev->slave] >= 0 && ep->slave_device[dev->slave] != (int32_t)i) {
            if (!dev->shares_slave || (*twin >= 0 && *twin != (int32_t)i)) {
                snprintf(err, errlen, "device %s: slave %u on endpoint %s is already %s", dev->id,
                         dev->slave, ep->name, world->devices[ep->slave_device[dev->slave]].id);
                return EST_ERR_INVALID;
            }
            *twin = (int32_t)i;
        } else {
            ep->slave_device[dev->slave] = (int32_t)i;
        }
        dev->key = sim_mix64(world->seed ^ sim_mix64(i + 1));
        if (build_points(dev) != EST_OK) {
            snprintf(err, errlen, "out of memory");
            return EST_ERR_NOMEM;
        }
    }
    est_err rc = compute_depths(world, err, errlen);
    if (rc != EST_OK)
        return rc;
    world->order = malloc((world->ndevices ? world->ndevices : 1) * sizeof *world->order);
    if (world->order == NULL)
        return EST_ERR_NOMEM;
    for (size_t i = 0; i < world->ndevices; i++)
        world->order[i] = i;
    sort_world = world;
    qsort(world->order, world->ndevices, sizeof *world->order, by_depth);
    sort_world = NULL;
    default_counters(world);
    world->clock.base_sim_ms = start_sim_ms;
    world->clock.base_mono_ms = mono_ms;
    world->last_advance_sim_ms = start_sim_ms;
    sim_world_advance(world, start_sim_ms, mono_ms);
    return EST_OK;
}

/* --------------------------------------------------------------- lookup */

int sim_world_device_index(const struct sim_world *world, const char *id)
{
    if (id == NULL)
        return -1;
    for (size_t i = 0; i < world->ndevices; i++)
        if (strcmp(world->devices[i].id, id) == 0)
            return (int)i;
    return -1;
}

int sim_world_endpoint_index(const struct sim_world *world, const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < world->nendpoints; i++)
        if (strcmp(world->endpoints[i].name, name) == 0)
            return (int)i;
    return -1;
}

struct sim_device *sim_world_slave(struct sim_world *world, size_t endpoint, unsigned slave)
{
    if (endpoint >= world->nendpoints || slave > SIM_MAX_SLAVE)
        return NULL;
    int32_t index = world->endpoints[endpoint].slave_device[slave];
    return index >= 0 ? &world->devices[index] : NULL;
}

struct sim_device *sim_world_slave_twin(struct sim_world *world, size_t endpoint, unsigned slave)
{
    if (endpoint >= world->nendpoints || slave > SIM_MAX_SLAVE)
        return NULL;
    int32_t index = world->endpoints[endpoint].slave_twin[slave];
    return index >= 0 ? &world->devices[index] : NULL;
}

/* ---------------------------------------------------------------- clock */

int64_t sim_clock_now(const struct sim_clock *clock, int64_t mono_ms)
{
    if (clock->frozen)
        return clock->base_sim_ms;
    return clock->base_sim_ms + (int64_t)((double)(mono_ms - clock->base_mono_ms) * clock->time_scale);
}

void sim_clock_freeze(struct sim_clock *clock, bool on, int64_t mono_ms)
{
    if (on == clock->frozen)
        return;
    clock->base_sim_ms = sim_clock_now(clock, mono_ms);
    clock->base_mono_ms = mono_ms;
    clock->frozen = on;
}

/* -------------------------------------------------------------- physics */

static struct sim_profile_input profile_input(const struct sim_world *world,
                                              const struct sim_device *dev, int64_t sim_ms)
{
    struct sim_profile_input in = {.seed = dev->key, .sim_ms = sim_ms,
                                   .utc_offset_min = world->utc_offset_min,
                                   .occupied = dev->occupied};
    return in;
}

/* Active power of a leaf device at sim_ms, W (negative = export). */
static double leaf_power_w(const struct sim_world *world, const struct sim_device *dev,
                           int64_t sim_ms)
{
    if (dev->forced_mask & Q_BIT(DRV_Q_POWER_W))
        return dev->forced[DRV_Q_POWER_W];
    if (dev->reverse)
        return -dev->reverse_w;
    struct sim_profile_input in = profile_input(world, dev, sim_ms);
    return sim_profile_power_w(dev->profile, &in);
}

/* Flow of a leaf water device at sim_ms, m3/h. */
static double leaf_flow_m3h(const struct sim_world *world, const struct sim_device *dev,
                            int64_t sim_ms)
{
    if (dev->valve == DRV_VALVE_CLOSED)
        return 0.0;
    if (dev->forced_mask & Q_BIT(DRV_Q_FLOW_M3H))
        return dev->forced[DRV_Q_FLOW_M3H];
    struct sim_profile_input in = profile_input(world, dev, sim_ms);
    return sim_profile_flow_m3h(dev->profile, &in) + dev->extra_flow_m3h;
}

/* Integrates a leaf over [t0, t1): piecewise constant per simulated second. */
static void integrate_leaf(const struct sim_world *world, struct sim_device *dev, int64_t t0,
                           int64_t t1)
{
    int64_t span = t1 - t0;
    int64_t step = 1000;
    if (span > (int64_t)MAX_STEPS_PER_ADVANCE * 1000)
        step = (span / MAX_STEPS_PER_ADVANCE + 999) / 1000 * 1000;
    bool water = dev->model->kind == DRV_KIND_WATER;
    for (int64_t t = t0; t < t1;) {
        int64_t cell_start = t - (((t % step) + step) % step);
        int64_t end = cell_start + step < t1 ? cell_start + step : t1;
        double hours = (double)(end - t) / 3600000.0;
        if (water) {
            dev->step_volume_m3 += leaf_flow_m3h(world, dev, cell_start) * hours;
        } else {
            double kwh = leaf_power_w(world, dev, cell_start) * hours / 1000.0;
            if (kwh >= 0)
                dev->step_import_kwh += kwh;
            else
                dev->step_export_kwh -= kwh;
        }
        t = end;
    }
}

/* Parent over [t0, t1): its children's steps plus the loss share, plus its
 * own extra flow (a leak between the parent and its children). */
static void integrate_parent(struct sim_device *dev, double child_import, double child_export,
                             double child_volume, int64_t t0, int64_t t1)
{
    double gain = 1.0 + dev->loss_pct / 100.0;
    if (dev->model->kind == DRV_KIND_WATER) {
        if (dev->valve == DRV_VALVE_CLOSED)
            return;
        dev->step_volume_m3 += child_volume * gain +
                               dev->extra_flow_m3h * (double)(t1 - t0) / 3600000.0;
    } else {
        double net = (child_import - child_export) * gain;
        if (net >= 0)
            dev->step_import_kwh += net;
        else
            dev->step_export_kwh -= net;
    }
}

/* Sum of children's current rate (W or m3/h). O(devices); events only. */
static double children_rate(const struct sim_world *world, size_t index, enum drv_quantity q)
{
    double sum = 0.0;
    for (size_t c = 0; c < world->ndevices; c++)
        if (world->devices[c].parent == (int)index)
            sum += world->devices[c].value[q];
    return sum;
}

static double noise_pm(const struct sim_device *dev, uint64_t salt, int64_t sim_ms)
{
    return 2.0 * sim_noise(dev->key ^ salt, (uint64_t)(sim_ms / 10000)) - 1.0;
}

static double profile_pf(enum sim_profile p)
{
    switch (p) {
    case SIM_PROFILE_AMENITY:
    case SIM_PROFILE_LANDSCAPE:
        return 0.84;
    case SIM_PROFILE_PUBLIC_LIGHTING:
        return 0.96;
    default:
        return 0.93;
    }
}

static void refresh_electricity(struct sim_device *dev, double power_w, int64_t sim_ms)
{
    double *v = dev->value;
    double volts = 225.5 + 3.0 * noise_pm(dev, 31, sim_ms);
    double pf = profile_pf(dev->profile) + 0.04 * noise_pm(dev, 32, sim_ms);
    if (fabs(power_w) < 1.0)
        pf = 1.0;
    v[DRV_Q_POWER_W] = power_w;
    v[DRV_Q_VOLTAGE_V] = volts;
    v[DRV_Q_POWER_FACTOR] = power_w < 0 ? -pf : pf;
    v[DRV_Q_CURRENT_A] = fabs(power_w) / (volts * pf);
    v[DRV_Q_FREQUENCY_HZ] = 50.0 + 0.04 * noise_pm(dev, 33, sim_ms);
    double share[3], total = 0.0;
    for (int l = 0; l < 3; l++) {
        share[l] = 1.0 + 0.08 * (2.0 * sim_noise(dev->key ^ 34, (uint64_t)l) - 1.0);
        total += share[l];
    }
    double vsum = 0.0;
    for (int l = 0; l < 3; l++) {
        double pl = power_w * share[l] / total;
        double vl = 225.5 + 3.0 * noise_pm(dev, 35 + (uint64_t)l, sim_ms);
        v[DRV_Q_POWER_L1_W + l] = pl;
        v[DRV_Q_VOLTAGE_L1_V + l] = vl;
        v[DRV_Q_CURRENT_L1_A + l] = fabs(pl) / (vl * pf);
        vsum += vl;
    }
    if (dev->three_phase)
        v[DRV_Q_VOLTAGE_V] = vsum / 3.0; /* the phase average */
    v[DRV_Q_ENERGY_IMPORT_KWH] = dev->import_kwh;
    v[DRV_Q_ENERGY_EXPORT_KWH] = dev->export_kwh;
    v[DRV_Q_ENERGY_TOTAL_KWH] = dev->import_kwh + dev->export_kwh;
}

static void refresh_water(struct sim_device *dev, double flow_m3h)
{
    double *v = dev->value;
    v[DRV_Q_VOLUME_M3] = dev->volume_m3;
    v[DRV_Q_REVERSE_VOLUME_M3] = dev->reverse_m3;
    v[DRV_Q_FLOW_M3H] = flow_m3h;
    v[DRV_Q_VALVE] = (double)dev->valve;
    v[DRV_Q_VALVE_FAULT] = dev->valve_fault ? 1.0 : 0.0;
    v[DRV_Q_BATTERY_V] = 3.6;
    v[DRV_Q_BATTERY_LOW] = 0.0;
}

static void refresh_panel(struct sim_device *dev)
{
    bool alarm = false, fault = false;
    for (uint16_t z = 0; z < dev->nzones; z++) {
        alarm |= dev->zones[z] == SIM_ZONE_ALARM;
        fault |= dev->zones[z] == SIM_ZONE_FAULT;
    }
    dev->value[DRV_Q_PANEL_ALARM] = alarm ? 1.0 : 0.0;
    dev->value[DRV_Q_PANEL_FAULT] = fault ? 1.0 : 0.0;
}

/* Shown values; rate is the device's power (W) or flow (m3/h) now. */
static void refresh_with_rate(struct sim_device *dev, double rate, int64_t sim_ms)
{
    switch (dev->model->kind) {
    case DRV_KIND_ELECTRICITY:
        refresh_electricity(dev, rate, sim_ms);
        break;
    case DRV_KIND_WATER:
        refresh_water(dev, rate);
        break;
    case DRV_KIND_FIRE_PANEL:
        refresh_panel(dev);
        break;
    }
    dev->value[DRV_Q_SERIAL] = (double)dev->serial;
    for (int q = 0; q < DRV_Q__COUNT; q++)
        if (dev->forced_mask & Q_BIT(q))
            dev->value[q] = dev->forced[q];
}

static double parent_rate(const struct sim_world *world, size_t index, double child_sum)
{
    const struct sim_device *dev = &world->devices[index];
    double gain = 1.0 + dev->loss_pct / 100.0;
    if (dev->model->kind == DRV_KIND_WATER) {
        if (dev->valve == DRV_VALVE_CLOSED)
            return 0.0;
        if (dev->forced_mask & Q_BIT(DRV_Q_FLOW_M3H))
            return dev->forced[DRV_Q_FLOW_M3H];
        return child_sum * gain + dev->extra_flow_m3h;
    }
    if (dev->forced_mask & Q_BIT(DRV_Q_POWER_W))
        return dev->forced[DRV_Q_POWER_W];
    if (dev->reverse)
        return -dev->reverse_w;
    return child_sum * gain;
}

static enum drv_quantity rate_quantity(const struct sim_device *dev)
{
    return dev->model->kind == DRV_KIND_WATER ? DRV_Q_FLOW_M3H : DRV_Q_POWER_W;
}

void sim_device_refresh(struct sim_world *world, struct sim_device *dev, int64_t sim_ms)
{
    size_t index = (size_t)(dev - world->devices);
    double rate;
    if (dev->model->kind == DRV_KIND_FIRE_PANEL)
        rate = 0.0;
    else if (has_children(world, index))
        rate = parent_rate(world, index, children_rate(world, index, rate_quantity(dev)));
    else if (dev->model->kind == DRV_KIND_WATER)
        rate = leaf_flow_m3h(world, dev, sim_ms);
    else
        rate = leaf_power_w(world, dev, sim_ms);
    refresh_with_rate(dev, rate, sim_ms);
}

bool sim_device_valve_tick(struct sim_device *dev, int64_t mono_ms)
{
    if (dev->valve != DRV_VALVE_MOVING || mono_ms < dev->valve_done_mono_ms)
        return false;
    dev->valve = dev->valve_target;
    dev->value[DRV_Q_VALVE] = (double)dev->valve;
    return true;
}

/* Children's accumulated steps and rates for one advance, per device. */
struct child_sums {
    double import_kwh, export_kwh, volume_m3, rate;
};

void sim_world_advance(struct sim_world *world, int64_t sim_ms, int64_t mono_ms)
{
    int64_t t0 = world->last_advance_sim_ms;
    int64_t t1 = sim_ms > t0 ? sim_ms : t0;
    struct child_sums *sums = calloc(world->ndevices ? world->ndevices : 1, sizeof *sums);
    for (size_t k = 0; k < world->ndevices; k++) {
        size_t i = world->order[k];
        struct sim_device *dev = &world->devices[i];
        sim_device_valve_tick(dev, mono_ms);
        dev->step_import_kwh = dev->step_export_kwh = dev->step_volume_m3 = 0.0;
        double rate = 0.0;
        if (dev->model->kind == DRV_KIND_FIRE_PANEL) {
            rate = 0.0;
        } else if (has_children(world, i) && sums != NULL) {
            integrate_parent(dev, sums[i].import_kwh, sums[i].export_kwh, sums[i].volume_m3, t0,
                             t1);
            rate = parent_rate(world, i, sums[i].rate);
        } else {
            integrate_leaf(world, dev, t0, t1);
            rate = dev->model->kind == DRV_KIND_WATER ? leaf_flow_m3h(world, dev, t1)
                                                      : leaf_power_w(world, dev, t1);
        }
        dev->import_kwh += dev->step_import_kwh;
        dev->export_kwh += dev->step_export_kwh;
        dev->volume_m3 += dev->step_volume_m3;
        refresh_with_rate(dev, rate, t1);
        if (dev->parent >= 0 && sums != NULL) {
            struct child_sums *ps = &sums[dev->parent];
            ps->import_kwh += dev->step_import_kwh;
            ps->export_kwh += dev->step_export_kwh;
            ps->volume_m3 += dev->step_volume_m3;
            ps->rate += dev->value[rate_quantity(dev)];
        }
    }
    free(sums);
    world->last_advance_sim_ms = t1;
}

/* --------------------------------------------------------------- events */

void sim_device_set_fault(struct sim_device *dev, enum sim_fault fault, uint32_t delay_ms,
                          uint8_t code)
{
    dev->fault = fault;
    dev->fault_delay_ms = fault == SIM_FAULT_SLOW || fault == SIM_FAULT_DUPLICATE ? delay_ms : 0;
    dev->fault_code = fault == SIM_FAULT_EXCEPTION ? (code ? code : 0x04) : 0;
    dev->fault_replies_left = 0;
}

void sim_device_limit_fault(struct sim_device *dev, uint32_t count)
{
    dev->fault_replies_left = dev->fault == SIM_FAULT_NONE ? 0 : count;
}

bool sim_device_valve_write(struct sim_device *dev, uint16_t value, int64_t mono_ms)
{
    const struct drv_write *w = dev->model->valve;
    if (w == NULL)
        return false;
    enum drv_valve_state target;
    if (value == w->open_value)
        target = DRV_VALVE_OPEN;
    else if (value == w->close_value)
        target = DRV_VALVE_CLOSED;
    else
        return false;
    if (dev->valve_fault)
        return true; /* accepted, but the motor does not turn */
    if (dev->valve == target && dev->valve_target == target)
        return true;
    dev->valve = DRV_VALVE_MOVING;
    dev->valve_target = target;
    dev->valve_done_mono_ms = mono_ms + SIM_VALVE_TRAVEL_MS;
    dev->value[DRV_Q_VALVE] = (double)dev->valve;
    return true;
}

void sim_device_panel_reset(struct sim_device *dev)
{
    for (uint16_t z = 0; z < dev->nzones; z++)
        if (dev->zones[z] == SIM_ZONE_ALARM || dev->zones[z] == SIM_ZONE_SUPERVISORY)
            dev->zones[z] = SIM_ZONE_NORMAL;
    refresh_panel(dev);
}

static bool is_counter(int q)
{
    return q == DRV_Q_ENERGY_IMPORT_KWH || q == DRV_Q_ENERGY_EXPORT_KWH ||
           q == DRV_Q_VOLUME_M3 || q == DRV_Q_REVERSE_VOLUME_M3;
}

static double *counter_ref(struct sim_device *dev, int q)
{
    switch (q) {
    case DRV_Q_ENERGY_IMPORT_KWH:
        return &dev->import_kwh;
    case DRV_Q_ENERGY_EXPORT_KWH:
        return &dev->export_kwh;
    case DRV_Q_VOLUME_M3:
        return &dev->volume_m3;
    case DRV_Q_REVERSE_VOLUME_M3:
        return &dev->reverse_m3;
    default:
        return NULL;
    }
}

static int main_counter(const struct sim_device *dev)
{
    return dev->model->kind == DRV_KIND_WATER ? DRV_Q_VOLUME_M3 : DRV_Q_ENERGY_IMPORT_KWH;
}

static est_err need_kind(const struct sim_device *dev, enum drv_kind kind, const char *what,
                         char *err, size_t errlen)
{
    if (dev->model->kind == kind)
        return EST_OK;
    snprintf(err, errlen, "device %s: %s", dev->id, what);
    return EST_ERR_INVALID;
}

static est_err apply_zone(struct sim_device *dev, const struct sim_event *ev, char *err,
                          size_t errlen)
{
    est_err rc = need_kind(dev, DRV_KIND_FIRE_PANEL, "zone events need a fire panel", err, errlen);
    if (rc != EST_OK)
        return rc;
    if (ev->zone < 1 || ev->zone > dev->nzones) {
        snprintf(err, errlen, "device %s: zone %d outside 1..%u", dev->id, ev->zone, dev->nzones);
        return EST_ERR_RANGE;
    }
    dev->zones[ev->zone - 1] = (uint8_t)ev->state;
    return EST_OK;
}

static est_err apply_set(struct sim_device *dev, const struct sim_event *ev, char *err,
                         size_t errlen)
{
    int q = ev->quantity;
    if (q < 0 || q >= DRV_Q__COUNT) {
        snprintf(err, errlen, "device %s: set needs a known quantity", dev->id);
        return EST_ERR_INVALID;
    }
    if (is_counter(q)) {
        if (ev->clear || !isfinite(ev->value)) {
            snprintf(err, errlen, "device %s: a counter needs a finite value", dev->id);
            return EST_ERR_INVALID;
        }
        *counter_ref(dev, q) = ev->value;
        return EST_OK;
    }
    if (ev->clear) {
        dev->forced_mask &= ~Q_BIT(q);
    } else {
        dev->forced_mask |= Q_BIT(q);
        dev->forced[q] = ev->value;
    }
    return EST_OK;
}

static est_err apply_valve(struct sim_device *dev, const struct sim_event *ev, char *err,
                           size_t errlen)
{
    if (dev->model->valve == NULL || !dev->has_valve) {
        snprintf(err, errlen, "device %s has no valve", dev->id);
        return EST_ERR_INVALID;
    }
    if (ev->valve_state == DRV_VALVE_OPEN || ev->valve_state == DRV_VALVE_CLOSED)
        dev->valve = dev->valve_target = (enum drv_valve_state)ev->valve_state;
    if (ev->valve_fault >= 0)
        dev->valve_fault = ev->valve_fault != 0;
    return EST_OK;
}

static est_err apply_counter_event(struct sim_device *dev, const struct sim_event *ev,
                                   char *err, size_t errlen)
{
    if (dev->model->kind == DRV_KIND_FIRE_PANEL) {
        snprintf(err, errlen, "device %s: a fire panel has no counters", dev->id);
        return EST_ERR_INVALID;
    }
    if (ev->type == SIM_EV_REPLACE) {
        if (ev->has_serial)
            dev->serial = ev->serial;
        dev->import_kwh = dev->export_kwh = dev->volume_m3 = dev->reverse_m3 = 0.0;
        return EST_OK;
    }
    int q = ev->quantity >= 0 ? ev->quantity : main_counter(dev);
    double *counter = counter_ref(dev, q);
    if (counter == NULL || !isfinite(ev->delta)) {
        snprintf(err, errlen, "device %s: jump needs a counter and a finite delta", dev->id);
        return EST_ERR_INVALID;
    }
    *counter += ev->delta;
    return EST_OK;
}

est_err sim_device_check_event(const struct sim_device *dev, const struct sim_event *ev,
                               char *err, size_t errlen)
{
    switch (ev->type) {
    case SIM_EV_REVERSE:
        return need_kind(dev, DRV_KIND_ELECTRICITY, "reverse needs an electricity meter", err,
                         errlen);
    case SIM_EV_FLOW:
        if (!isfinite(ev->flow_m3h) || ev->flow_m3h < 0) {
            snprintf(err, errlen, "device %s: flow_m3h must be >= 0", dev->id);
            return EST_ERR_RANGE;
        }
        return need_kind(dev, DRV_KIND_WATER, "flow needs a water meter", err, errlen);
    case SIM_EV_ZONE:
        if (dev->model->kind == DRV_KIND_FIRE_PANEL &&
            (ev->zone < 1 || ev->zone > dev->options.nzones)) {
            snprintf(err, errlen, "device %s: zone %d outside 1..%u", dev->id, ev->zone,
                     dev->options.nzones);
            return EST_ERR_RANGE;
        }
        return need_kind(dev, DRV_KIND_FIRE_PANEL, "zone events need a fire panel", err, errlen);
    case SIM_EV_REPLACE:
    case SIM_EV_JUMP:
        if (dev->model->kind == DRV_KIND_FIRE_PANEL) {
            snprintf(err, errlen, "device %s: a fire panel has no counters", dev->id);
            return EST_ERR_INVALID;
        }
        if (ev->type == SIM_EV_JUMP && ev->quantity >= 0 && !is_counter(ev->quantity)) {
            snprintf(err, errlen, "device %s: jump needs a counter quantity", dev->id);
            return EST_ERR_INVALID;
        }
        return EST_OK;
    case SIM_EV_VALVE:
        if (dev->model->valve == NULL || !dev->has_valve) {
            snprintf(err, errlen, "device %s has no valve", dev->id);
            return EST_ERR_INVALID;
        }
        return EST_OK;
    case SIM_EV_LOSS:
    case SIM_EV_SET:
        return EST_OK;
    case SIM_EV__COUNT:
        break;
    }
    snprintf(err, errlen, "unknown event");
    return EST_ERR_INVALID;
}

est_err sim_device_apply_event(struct sim_world *world, struct sim_device *dev,
                               const struct sim_event *ev, int64_t mono_ms, char *err,
                               size_t errlen)
{
    est_err rc = sim_device_check_event(dev, ev, err, errlen);
    if (rc != EST_OK)
        return rc;
    switch (ev->type) {
    case SIM_EV_REVERSE:
        dev->reverse = ev->on;
        dev->reverse_w = ev->power_w != 0.0 ? fabs(ev->power_w) : 800.0;
        break;
    case SIM_EV_FLOW:
        dev->extra_flow_m3h = ev->flow_m3h;
        break;
    case SIM_EV_ZONE:
        rc = apply_zone(dev, ev, err, errlen);
        break;
    case SIM_EV_REPLACE:
    case SIM_EV_JUMP:
        rc = apply_counter_event(dev, ev, err, errlen);
        break;
    case SIM_EV_LOSS:
        if (!isfinite(ev->pct) || ev->pct < -100.0 || ev->pct > 1000.0) {
            snprintf(err, errlen, "device %s: pct outside -100..1000", dev->id);
            rc = EST_ERR_RANGE;
        } else {
            dev->loss_pct = ev->pct;
        }
        break;
    case SIM_EV_SET:
        rc = apply_set(dev, ev, err, errlen);
        break;
    case SIM_EV_VALVE:
        rc = apply_valve(dev, ev, err, errlen);
        break;
    case SIM_EV__COUNT:
        snprintf(err, errlen, "unknown event");
        rc = EST_ERR_INVALID;
        break;
    }
    if (rc == EST_OK) {
        sim_device_valve_tick(dev, mono_ms);
        sim_device_refresh(world, dev, world->last_advance_sim_ms);
    }
    return rc;
}
