/* sim_profile.c - deterministic daily usage profiles (power and water flow)
 * for the simulated meters. See sim_profile.h. */
#include "sim_profile.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *const profile_names[SIM_PROFILE__COUNT] = {
    [SIM_PROFILE_MASTER] = "master",
    [SIM_PROFILE_BUILDING] = "building",
    [SIM_PROFILE_UNIT] = "unit",
    [SIM_PROFILE_AMENITY] = "amenity",
    [SIM_PROFILE_LANDSCAPE] = "landscape",
    [SIM_PROFILE_SHOP] = "shop",
    [SIM_PROFILE_PUBLIC_LIGHTING] = "public_lighting",
    [SIM_PROFILE_OFFICE] = "office",
    [SIM_PROFILE_IDLE] = "idle",
};

int sim_profile_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SIM_PROFILE__COUNT; i++)
        if (strcmp(name, profile_names[i]) == 0)
            return i;
    return -1;
}

const char *sim_profile_name(enum sim_profile p)
{
    if ((int)p < 0 || p >= SIM_PROFILE__COUNT)
        return "unknown";
    return profile_names[p];
}

uint64_t sim_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

double sim_noise(uint64_t key, uint64_t bucket)
{
    uint64_t h = sim_mix64(key ^ sim_mix64(bucket));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* Local hour of day in [0, 24). */
static double local_hour(const struct sim_profile_input *in)
{
    int64_t local_s = in->sim_ms / 1000 + (int64_t)in->utc_offset_min * 60;
    int64_t day_s = ((local_s % 86400) + 86400) % 86400;
    return (double)day_s / 3600.0;
}

/* 0 = Monday ... 6 = Sunday, local time. 1970-01-01 was a Thursday. */
static int local_weekday(const struct sim_profile_input *in)
{
    int64_t local_s = in->sim_ms / 1000 + (int64_t)in->utc_offset_min * 60;
    int64_t days = local_s >= 0 ? local_s / 86400 : (local_s - 86399) / 86400;
    return (int)(((days + 3) % 7 + 7) % 7);
}

static bool in_window(double hour, double from, double to)
{
    return from <= to ? (hour >= from && hour < to) : (hour >= from || hour < to);
}

/* Gaussian bump centred on hour c with width w hours. */
static double bump(double hour, double c, double w)
{
    double d = (hour - c) / w;
    return exp(-d * d);
}

/* Multiplicative noise around 1.0 (+-spread), changing every 10 s. */
static double jitter(const struct sim_profile_input *in, uint64_t salt, double spread)
{
    uint64_t bucket = (uint64_t)(in->sim_ms / 10000);
    return 1.0 + spread * (2.0 * sim_noise(in->seed ^ salt, bucket) - 1.0);
}

static double unit_power_w(const struct sim_profile_input *in, double hour)
{
    if (!in->occupied)
        return 6.0 * jitter(in, 1, 0.3);
    double w = 110.0 + 650.0 * bump(hour, 7.5, 1.0) + 350.0 * bump(hour, 12.5, 1.2) +
               1400.0 * bump(hour, 19.8, 1.8);
    /* An appliance (kettle, air conditioner) now and then: 5-minute slots. */
    uint64_t slot = (uint64_t)(in->sim_ms / 300000);
    if (hour >= 6.5 && sim_noise(in->seed ^ 2, slot) < 0.15)
        w += 1200.0 * sim_noise(in->seed ^ 3, slot) + 300.0;
    return w * jitter(in, 4, 0.08);
}

double sim_profile_power_w(enum sim_profile p, const struct sim_profile_input *in)
{
    double hour = local_hour(in);
    bool weekday = local_weekday(in) < 5;
    switch (p) {
    case SIM_PROFILE_UNIT:
        return unit_power_w(in, hour);
    case SIM_PROFILE_PUBLIC_LIGHTING:
        if (in_window(hour, 18.0, 6.0))
            return (in_window(hour, 0.0, 5.0) ? 420.0 : 640.0) * jitter(in, 5, 0.02);
        return 4.0;
    case SIM_PROFILE_OFFICE:
        if (weekday && in_window(hour, 8.5, 18.0))
            return 1900.0 * jitter(in, 6, 0.12);
        return 160.0 * jitter(in, 6, 0.05);
    case SIM_PROFILE_SHOP:
        if (in_window(hour, 8.0, 22.0))
            return 2600.0 * jitter(in, 7, 0.1);
        return 450.0 * jitter(in, 7, 0.05); /* refrigerators */
    case SIM_PROFILE_BUILDING: {
        struct sim_profile_input occ = *in;
        occ.occupied = true;
        return 1500.0 * jitter(in, 8, 0.03) + 12.0 * unit_power_w(&occ, hour);
    }
    case SIM_PROFILE_MASTER: {
        struct sim_profile_input occ = *in;
        occ.occupied = true;
        return 4000.0 * jitter(in, 9, 0.03) + 36.0 * unit_power_w(&occ, hour);
    }
    case SIM_PROFILE_AMENITY: {
        /* A pump: 5 minutes on in every 15, phase set by the device. */
        int64_t phase_ms = (int64_t)(sim_noise(in->seed, 10) * 900000.0);
        int64_t in_cycle = ((in->sim_ms + phase_ms) % 900000 + 900000) % 900000;
        if (in_cycle < 300000)
            return 5500.0 * jitter(in, 11, 0.03);
        return 60.0;
    }
    case SIM_PROFILE_LANDSCAPE:
        return in_window(hour, 2.0, 5.0) ? 1100.0 * jitter(in, 12, 0.03) : 10.0;
    case SIM_PROFILE_IDLE:
    case SIM_PROFILE__COUNT:
        break;
    }
    return 0.0;
}

/* Bursts of use in 2-minute slots: with probability chance a slot holds one
 * draw of [lo, hi) m3/h lasting 20-110 s. */
static double burst_flow(const struct sim_profile_input *in, double chance, double lo, double hi)
{
    int64_t slot = in->sim_ms / 120000;
    int64_t in_slot_s = (in->sim_ms % 120000) / 1000;
    if (sim_noise(in->seed ^ 21, (uint64_t)slot) >= chance)
        return 0.0;
    int64_t start_s = (int64_t)(sim_noise(in->seed ^ 22, (uint64_t)slot) * 10.0);
    int64_t length_s = 20 + (int64_t)(sim_noise(in->seed ^ 23, (uint64_t)slot) * 90.0);
    if (in_slot_s < start_s || in_slot_s >= start_s + length_s)
        return 0.0;
    return lo + (hi - lo) * sim_noise(in->seed ^ 24, (uint64_t)slot);
}

static double unit_chance(double hour)
{
    if (hour < 6.0)
        return 0.03;
    if (hour < 9.0)
        return 0.30;
    if (hour < 18.0)
        return 0.12;
    if (hour < 22.5)
        return 0.32;
    return 0.10;
}

double sim_profile_flow_m3h(enum sim_profile p, const struct sim_profile_input *in)
{
    double hour = local_hour(in);
    switch (p) {
    case SIM_PROFILE_UNIT:
        return in->occupied ? burst_flow(in, unit_chance(hour), 0.2, 0.9) : 0.0;
    case SIM_PROFILE_AMENITY: {
        /* Pool top-up: the first 20 minutes of each hour, 07:00-22:00. */
        if (!in_window(hour, 7.0, 22.0))
            return 0.0;
        double minute = fmod(hour * 60.0, 60.0);
        return minute < 20.0 ? 0.6 : 0.0;
    }
    case SIM_PROFILE_LANDSCAPE:
        return in_window(hour, 2.0, 5.0) ? 1.5 : 0.0; /* irrigation window */
    case SIM_PROFILE_SHOP:
        return in_window(hour, 8.0, 22.0) ? burst_flow(in, 0.10, 0.1, 0.4) : 0.0;
    case SIM_PROFILE_OFFICE:
        return in_window(hour, 8.5, 18.0) ? burst_flow(in, 0.08, 0.1, 0.3) : 0.0;
    case SIM_PROFILE_BUILDING:
        return (0.15 + 1.2 * unit_chance(hour) * 2.0) * jitter(in, 25, 0.2);
    case SIM_PROFILE_MASTER:
        return (0.5 + 4.0 * unit_chance(hour) * 2.0) * jitter(in, 26, 0.2);
    case SIM_PROFILE_PUBLIC_LIGHTING:
    case SIM_PROFILE_IDLE:
    case SIM_PROFILE__COUNT:
        break;
    }
    return 0.0;
}
