/* sim_main.c - estate-sim: simulated meters and fire panels on Modbus TCP
 * and RTU, with a scripted scenario and a JSON control socket. Parses the
 * command line, loads the config, starts the RTU threads and runs the
 * event loop until SIGINT/SIGTERM. Exit codes: 0 ok, 1 runtime failure,
 * 2 bad usage or bad config. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "est_cli.h"
#include "estate.h"
#include "sim_config.h"
#include "sim_log.h"
#include "sim_loop.h"
#include "sim_rtu.h"

struct cli {
    struct est_cli common; /* -c, --set, --help, --version */
    bool check;
    struct sim_generate gen;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: estate-sim -c FILE [--set PATH=VALUE ...] [--check-config]\n"
            "       estate-sim [-c FILE] --generate N [--endpoints K] [--base-port P]\n"
            "                  [--driver NAME] [--set PATH=VALUE ...]\n"
            "\n"
            "Simulated meters and fire panels on Modbus TCP and RTU (pseudo-terminals),\n"
            "with a scripted scenario and a JSON control socket (see firmware-sim/README.md).\n"
            "\n"
            "  -c, --config FILE   the simulator's config (libconfig)\n"
            "  --set PATH=VALUE    override a setting, e.g. sim.control=127.0.0.1:15020,\n"
            "                      endpoints.gw_a.listen=127.0.0.1:16502, sim.time_scale=60\n"
            "  --check-config      validate the config, print OK, exit\n"
            "  --generate N        add N identical meters for benchmarks (ids M00001...)\n"
            "  --endpoints K       spread them over K TCP endpoints (at least ceil(N/247))\n"
            "  --base-port P       first port of the generated endpoints (default 16000)\n"
            "  --driver NAME       model of the generated meters (default sdm120)\n"
            "  -h, --help, -V, --version\n");
}

/* Parses a positive decimal number; false when it is not one. */
static bool parse_unsigned(const char *text, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text ? text : "", &end, 10);
    if (text == NULL || errno != 0 || end == text || *end != '\0' || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* The simulator's own option argv[*i] with its value argv[*i + 1]; false
 * when it is unknown or its value is missing or bad (reported). */
static bool take_own_option(struct cli *cli, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    bool ok;
    if (strcmp(a, "--check-config") == 0) {
        cli->check = true;
        return true;
    } else if (strcmp(a, "--generate") == 0) {
        ok = parse_unsigned(v, 1000000, &cli->gen.meters) && cli->gen.meters > 0;
    } else if (strcmp(a, "--endpoints") == 0) {
        ok = parse_unsigned(v, 4096, &cli->gen.endpoints) && cli->gen.endpoints > 0;
    } else if (strcmp(a, "--base-port") == 0) {
        ok = parse_unsigned(v, 65535, &cli->gen.base_port) && cli->gen.base_port > 0;
    } else if (strcmp(a, "--driver") == 0) {
        cli->gen.driver = v;
        ok = v != NULL;
    } else {
        fprintf(stderr, "estate-sim: unknown option %s (try --help)\n", a);
        return false;
    }
    if (!ok)
        fprintf(stderr, "estate-sim: %s needs a valid value (try --help)\n", a);
    (*i)++;
    return ok;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
    for (int i = 1; i < argc; i++) {
        enum est_cli_take taken = est_cli_take(&cli->common, argc, argv, &i);
        if (taken == EST_CLI_EXIT)
            return cli->common.exit_code;
        if (taken == EST_CLI_NO_VALUE) {
            fprintf(stderr, "estate-sim: %s needs a valid value (try --help)\n", argv[i]);
            return EST_EXIT_USAGE;
        }
        if (taken == EST_CLI_OTHER && !take_own_option(cli, argc, argv, &i))
            return EST_EXIT_USAGE;
    }
    for (size_t k = 0; k < cli->common.nsets; k++) {
        if (strchr(cli->common.sets[k], '=') == NULL) {
            fprintf(stderr, "estate-sim: --set needs a valid value (try --help)\n");
            return EST_EXIT_USAGE;
        }
    }
    if (cli->common.config_path == NULL && cli->gen.meters == 0) {
        fprintf(stderr, "estate-sim: -c FILE is required (try --help)\n");
        return EST_EXIT_USAGE;
    }
    return -1;
}

static int load(const struct cli *cli, struct sim_setup **setup)
{
    struct sim_config_errors errors = {0};
    est_err rc = sim_config_load(cli->common.config_path, cli->common.sets, cli->common.nsets,
                                 cli->gen.meters ? &cli->gen : NULL, est_mono_ms(), setup,
                                 &errors);
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "%s\n", errors.messages[i]);
    sim_config_errors_free(&errors);
    if (rc == EST_OK)
        return -1;
    if (rc == EST_ERR_NOMEM)
        fprintf(stderr, "estate-sim: out of memory\n");
    return EST_EXIT_USAGE;
}

/* Blocks SIGINT/SIGTERM in every thread (the loop reads them from a
 * signalfd) and ignores SIGPIPE. Call before starting threads. */
static void block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int run(struct sim_setup *setup)
{
    struct sim_world *world = setup->world;
    char err[512];
    struct sim_loop *loop = NULL;
    struct sim_rtu **rtus = calloc(world->nendpoints ? world->nendpoints : 1, sizeof *rtus);
    int code = 0;
    if (rtus == NULL || sim_loop_open(setup, &loop, err, sizeof err) != EST_OK) {
        fprintf(stderr, "estate-sim: %s\n", rtus ? err : "out of memory");
        code = 1;
    }
    for (size_t i = 0; code == 0 && i < world->nendpoints; i++) {
        if (world->endpoints[i].type != SIM_EP_TCP &&
            sim_rtu_start(world, i, &rtus[i], err, sizeof err) != EST_OK) {
            fprintf(stderr, "estate-sim: %s\n", err);
            code = 1;
        }
    }
    if (code == 0) {
        sim_log("running %zu devices on %zu endpoints, %zu scenario steps, time scale %g",
                world->ndevices, world->nendpoints, setup->nscenario, world->clock.time_scale);
        if (sim_loop_run(loop) != EST_OK)
            code = 1;
    }
    for (size_t i = 0; rtus != NULL && i < world->nendpoints; i++)
        sim_rtu_stop(rtus[i]);
    free(rtus);
    sim_loop_close(loop);
    if (code == 0)
        sim_log("stopped");
    return code;
}

int main(int argc, char **argv)
{
    struct cli cli = {.common = {.program = "estate-sim", .usage = usage}};
    int code = parse_args(argc, argv, &cli);
    struct sim_setup *setup = NULL;
    if (code < 0)
        code = load(&cli, &setup);
    if (code < 0 && cli.check) {
        printf("OK\n");
        code = 0;
    } else if (code < 0) {
        block_signals();
        code = run(setup);
    }
    sim_setup_free(setup);
    est_cli_free(&cli.common);
    return code;
}
