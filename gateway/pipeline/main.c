/* main.c - estate-gw, the gateway daemon: loads the config, then runs the
 * core (pollers -> rules -> store -> MQTT) and the console until SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "core.h"
#include "drivers.h"
#include "log.h"
#if __has_include("http.h")
#include "http.h"
#define HAVE_HTTP 1
#endif

static struct gw_core *running_core;

static void on_stop_signal(int signo)
{
    (void)signo;
    if (running_core != NULL)
        gw_core_request_stop(running_core);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: estate-gw -c FILE [--set PATH=VALUE]... [--check-config]\n"
            "       estate-gw --check-model FILE\n"
            "Monitoring gateway for residential property management: polls meters and fire\n"
            "panels over Modbus, detects anomalies, publishes over MQTT, keeps SQLite records.\n\n"
            "  -c, --config FILE     configuration file (libconfig)\n"
            "      --set PATH=VALUE  override one setting, e.g. --set mqtt.uri=tcp://127.0.0.1:1883\n"
            "      --check-config    validate the config and every file it names, print OK\n"
            "      --check-model FILE  validate one device model file, print OK\n"
            "  -h, --help            this help\n"
            "  -V, --version         print the version\n\n"
            "Exit status: 0 ok, 1 runtime failure, 2 bad usage or bad config.\n");
}

/* --check-model: 0 and "OK" when the file is a valid model, else 2 and
 * its errors ("FILE:LINE: message"). */
static int check_model(const char *path)
{
    struct drv_model *model = NULL;
    char *errors = NULL;
    est_err err = drv_model_load_file(path, &model, &errors);
    drv_model_free(model);
    if (err == EST_OK) {
        printf("OK\n");
        return 0;
    }
    fputs(errors ? errors : est_strerror(err), stderr);
    if (!errors)
        fputc('\n', stderr);
    free(errors);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},   {"set", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'k'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {"check-model", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *model_path = NULL;
    const char *config_path = NULL;
    bool check_only = false;
    const char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    size_t noverrides = 0;
    if (overrides == NULL)
        return 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 's': overrides[noverrides++] = optarg; break;
        case 'k': check_only = true; break;
        case 'm': model_path = optarg; break;
        case 'h': usage(stdout); free(overrides); return 0;
        case 'V': printf("estate-gw %s\n", ESTATE_VERSION); free(overrides); return 0;
        default: usage(stderr); free(overrides); return 2;
        }
    }
    if (model_path != NULL && config_path == NULL && optind == argc) {
        free(overrides);
        return check_model(model_path);
    }
    if (config_path == NULL || optind != argc) {
        fprintf(stderr, "estate-gw: %s\n", config_path == NULL ? "-c FILE is required" : "unexpected argument");
        usage(stderr);
        free(overrides);
        return 2;
    }
    struct gw_config *config = NULL;
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(config_path, overrides, noverrides, &config, &errors);
    free(overrides);
    if (err != EST_OK) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        if (errors.count == 0)
            fprintf(stderr, "%s: %s\n", config_path, est_strerror(err));
        gw_config_errors_free(&errors);
        return 2;
    }
    if (check_only) {
        printf("OK\n");
        gw_config_free(config);
        return 0;
    }
    gw_log_set_level(config->gateway.log_level);
    umask(077); /* database, outbox and secrets are 0600 */
    signal(SIGPIPE, SIG_IGN);

    struct gw_core *core = NULL;
    if (gw_core_create(config, &core) != EST_OK) {
        gw_error("estate-gw: cannot start");
        gw_config_free(config);
        return 1;
    }
#ifdef HAVE_HTTP
    struct gw_http *http = NULL;
    if (config->http.listen != NULL && config->http.listen[0] != '\0' &&
        gw_http_start(core, &http) != EST_OK) {
        gw_error("http: cannot serve the console on %s", config->http.listen);
        gw_core_destroy(core);
        gw_config_free(config);
        return 1;
    }
#endif
    running_core = core;
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    gw_info("estate-gw %s starting: site %s, gateway %s", ESTATE_VERSION, config->gateway.site,
            config->gateway.id);
    err = gw_core_run(core);
#ifdef HAVE_HTTP
    gw_http_stop(http);
#endif
    running_core = NULL;
    gw_core_destroy(core);
    gw_config_free(config);
    return err == EST_OK ? 0 : 1;
}
