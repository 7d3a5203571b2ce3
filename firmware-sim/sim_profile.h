/* sim_profile.h - pure daily usage profiles for estate-sim: how much power
 * an electricity meter of a given profile draws, and how much water a water
 * meter's consumer takes, at a given local time of day. Deterministic: the
 * "noise" is a hash of (seed, device, time bucket), so the same seed and the
 * same simulated time always give the same numbers. No state, no I/O. */
#ifndef SIM_PROFILE_H
#define SIM_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

/* Usage patterns; by default a device uses the one named like its category. */
enum sim_profile {
    SIM_PROFILE_MASTER,
    SIM_PROFILE_BUILDING,
    SIM_PROFILE_UNIT,
    SIM_PROFILE_AMENITY,
    SIM_PROFILE_LANDSCAPE,
    SIM_PROFILE_SHOP,
    SIM_PROFILE_PUBLIC_LIGHTING,
    SIM_PROFILE_OFFICE,
    SIM_PROFILE_IDLE, /* draws nothing (besides injected events) */
    SIM_PROFILE__COUNT
};

/* "master", "building", "unit", "amenity", "landscape", "shop",
 * "public_lighting", "office", "idle"; -1 when unknown. */
int sim_profile_from_name(const char *name);
const char *sim_profile_name(enum sim_profile p);

/* Everything a profile needs to know about the moment and the device. */
struct sim_profile_input {
    uint64_t seed;       /* world seed mixed with the device index */
    int64_t sim_ms;      /* simulated time, ms since the Unix epoch (UTC) */
    int utc_offset_min;  /* local time = UTC + this */
    bool occupied;       /* unit profiles: someone lives there */
};

/* Active power in W (>= 0) drawn by a consumer of this profile. */
double sim_profile_power_w(enum sim_profile p, const struct sim_profile_input *in);

/* Water flow in m3/h (>= 0) drawn by a consumer of this profile. */
double sim_profile_flow_m3h(enum sim_profile p, const struct sim_profile_input *in);

/* Deterministic uniform number in [0, 1) from a key and a bucket. */
double sim_noise(uint64_t key, uint64_t bucket);

/* splitmix64 step: mixes a 64-bit value; used to derive per-device keys. */
uint64_t sim_mix64(uint64_t x);

#endif
