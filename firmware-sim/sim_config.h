/* sim_config.h - estate-sim's configuration: a libconfig file (plus
 * --set overrides applied to the tree before parsing, plus an optional
 * generator of many identical meters for benchmarks) turned into a world
 * and a scripted scenario. Every error reads "FILE:LINE: message". The only
 * file of the simulator that touches libconfig. */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "estate.h"
#include "sim_command.h"
#include "sim_world.h"

/* One scripted step: at at_ms after start, apply action. */
struct sim_scenario_step {
    int64_t at_ms;
    size_t seq;                /* position in the file, keeps equal times in order */
    struct sim_action action;
};

/* Benchmark generator: meters identical meters over ceil(meters/247) or
 * more TCP endpoints "gen0".."genK-1" on consecutive ports from base_port;
 * meter i (0-based) is "M00001"+i on endpoint i % K with slave i / K + 1. */
struct sim_generate {
    unsigned meters;      /* 0 = no generator */
    unsigned endpoints;   /* at least ceil(meters / 247) is used */
    unsigned base_port;
    const char *driver;   /* default "sdm120" */
    const char *host;     /* default "127.0.0.1" */
};

/* The loaded configuration; owns the world until the caller takes it. */
struct sim_setup {
    struct sim_world *world;
    char *control;                    /* "host:port" of the control socket; NULL = none */
    int tick_ms;                      /* physics/scenario tick, default 200 */
    struct sim_scenario_step *scenario; /* sorted by at_ms */
    size_t nscenario, scenario_cap;
    bool scenario_off;             /* sim.scenario = false: run no scripted steps */
};

struct sim_config_errors {
    char **messages;
    size_t count;
    size_t cap;    /* room in messages */
};

/* Loads path (NULL: an empty configuration, e.g. with gen), applies the
 * "PATH=VALUE" overrides to the tree first, then the generator (gen may be
 * NULL; its non-zero fields win over a `generate` group in the file).
 * mono_ms anchors the simulation clock. On failure returns EST_ERR_INVALID
 * with messages in errors (free them with sim_config_errors_free). */
est_err sim_config_load(const char *path, const char *const *overrides, size_t noverrides,
                        const struct sim_generate *gen, int64_t mono_ms, struct sim_setup **out,
                        struct sim_config_errors *errors);
void sim_setup_free(struct sim_setup *setup);
void sim_config_errors_free(struct sim_config_errors *errors);

#endif
