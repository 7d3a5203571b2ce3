/* main.c - estate-gw, the gateway daemon: loads the config, then runs the
 * core (pollers -> rules -> store -> MQTT) and the console until SIGTERM.
 * SIGHUP and estate-ctl reload load the config again on a thread of their
 * own and hand it to the core, which applies it or keeps the running one.
 * Under systemd (Type=notify) it reports READY=1 once the core ticks,
 * RELOADING=1 while a reload runs, and WATCHDOG=1 from the core's ticks,
 * so a stuck core loop gets restarted. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef ESTATE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "console.h"
#include "core.h"
#include "drivers.h"
#include "est_cli.h"

static struct gw_core *running_core;

/* The reload thread: woken by SIGHUP (sem_post is async-signal-safe) and by
 * the core for estate-ctl reload. */
#define RELOAD_ANSWER_MS 30000
struct reloader {
    struct gw_core *core;
    const char *config_path;
    const char *const *sets;  /* the daemon's --set overrides, applied again */
    size_t nsets;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
};
static sem_t reload_wakeup;

/* The console's view of the core (struct gw_console_host). */
static char *console_call(void *ctx, const char *verb, const char *args_json,
                          const struct gw_actor *actor, int timeout_ms)
{
    return gw_core_call(ctx, verb, args_json, actor, timeout_ms);
}

static est_err console_subscribe(void *ctx, gw_console_event_fn fn, void *fn_ctx)
{
    return gw_core_add_listener(ctx, fn, fn_ctx);
}

static int64_t console_now(void *ctx)
{
    return gw_core_now_ms(ctx);
}

static char *console_health(void *ctx, int timeout_ms)
{
    return gw_core_run_on_core(ctx, gw_core_health_json, timeout_ms);
}

static char *console_metrics(void *ctx, int timeout_ms)
{
    return gw_core_run_on_core(ctx, gw_core_metrics_text, timeout_ms);
}

static const struct gw_config *console_current_config(void *ctx)
{
    return gw_core_current_config(ctx);
}

/* The service manager's view of the daemon: ready after the first tick,
 * then a watchdog ping at a third of the watchdog interval. */
struct service_notify {
    bool ready_sent;
    uint64_t watchdog_usec; /* 0 = no watchdog asked for */
    int64_t next_ping_ms;
};

static void notify_init(struct service_notify *notify)
{
    *notify = (struct service_notify){0};
#ifdef ESTATE_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0)
        notify->watchdog_usec = usec;
#endif
}

static void notify_on_tick(void *ctx)
{
#ifdef ESTATE_HAVE_SYSTEMD
    struct service_notify *notify = ctx;
    if (!notify->ready_sent) {
        notify->ready_sent = true;
        sd_notify(0, "READY=1\nSTATUS=running");
    }
    if (notify->watchdog_usec == 0)
        return;
    int64_t now = est_mono_ms();
    if (now < notify->next_ping_ms)
        return;
    notify->next_ping_ms = now + (int64_t)(notify->watchdog_usec / 3000);
    sd_notify(0, "WATCHDOG=1");
#else
    (void)ctx;
#endif
}

static void notify_stopping(void)
{
#ifdef ESTATE_HAVE_SYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
}

/* {"ok":false,"error":...,"errors":["FILE:LINE: message",...]} */
static char *refusal_json(const char *path, const struct gw_config_errors *errors)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "ok");
    char error[512];
    snprintf(error, sizeof error, "%s does not load (%zu error%s): the running configuration stays",
             path, errors->count, errors->count == 1 ? "" : "s");
    cJSON_AddStringToObject(o, "error", error);
    cJSON *list = cJSON_AddArrayToObject(o, "errors");
    for (size_t i = 0; i < errors->count; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(errors->messages[i]));
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return json;
}

/* Loads and checks the config file again (off the core thread) and hands it
 * to the core; a config that does not load is refused with its errors. */
static void reload_once(struct reloader *r)
{
#ifdef ESTATE_HAVE_SYSTEMD
    sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
#endif
    gw_info("reload: loading %s", r->config_path);
    struct gw_config *next = NULL;
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(r->config_path, r->sets, r->nsets, &next, &errors);
    char *refusal = NULL;
    if (err != EST_OK) {
        for (size_t i = 0; i < errors.count; i++)
            gw_error("reload: %s", errors.messages[i]);
        if (errors.count == 0)
            gw_error("reload: %s: %s", r->config_path, est_strerror(err));
        refusal = refusal_json(r->config_path, &errors);
        gw_error("reload: refused, the running configuration stays");
    }
    gw_config_errors_free(&errors);
    char *result = gw_core_reload(r->core, next, refusal ? refusal : "{\"ok\":false}",
                                  RELOAD_ANSWER_MS);
    if (result == NULL && !atomic_load(&r->stopping))
        gw_error("reload: the core did not answer within %d s", RELOAD_ANSWER_MS / 1000);
    free(result);
    free(refusal);
#ifdef ESTATE_HAVE_SYSTEMD
    sd_notify(0, "READY=1\nSTATUS=running");
#endif
}

static void *reload_thread(void *arg)
{
    struct reloader *r = arg;
    for (;;) {
        while (sem_wait(&reload_wakeup) != 0)
            ; /* EINTR */
        if (atomic_load(&r->stopping))
            return NULL;
        while (sem_trywait(&reload_wakeup) == 0)
            ; /* requests made while one was waiting: one reload serves them */
        reload_once(r);
    }
}

static void wake_reloader(void *ctx)
{
    (void)ctx;
    sem_post(&reload_wakeup);
}

static void on_reload_signal(int signo)
{
    (void)signo;
    sem_post(&reload_wakeup);
}

static void reloader_stop(struct reloader *r)
{
    if (!r->started)
        return;
    atomic_store(&r->stopping, true);
    sem_post(&reload_wakeup);
    pthread_join(r->thread, NULL);
}

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
            "      --print-config-keys  list every configuration key and its values\n"
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

/* Reads the command line into cli; returns -1 to go on, else the exit code
 * (--check-model FILE alone is checked here). */
static int parse_args(int argc, char **argv, struct est_cli *cli, bool *check_only)
{
    const char *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        enum est_cli_take taken = est_cli_take(cli, argc, argv, &i);
        if (taken == EST_CLI_EXIT)
            return cli->exit_code;
        if (taken == EST_CLI_TAKEN)
            continue;
        if (taken == EST_CLI_NO_VALUE)
            fprintf(stderr, "estate-gw: %s needs a value\n", argv[i]);
        else if (strcmp(argv[i], "--check-config") == 0) {
            *check_only = true;
            continue;
        } else if (strcmp(argv[i], "--print-config-keys") == 0) {
            gw_config_print_keys(stdout);
            return 0;
        } else if (strcmp(argv[i], "--check-model") == 0 && i + 1 < argc) {
            model_path = argv[++i];
            continue;
        } else if (argv[i][0] == '-')
            fprintf(stderr, "estate-gw: unknown option '%s'\n", argv[i]);
        else
            fprintf(stderr, "estate-gw: unexpected argument\n");
        usage(stderr);
        return EST_EXIT_USAGE;
    }
    if (model_path != NULL && cli->config_path == NULL && cli->nsets == 0 && !*check_only)
        return check_model(model_path);
    if (cli->config_path == NULL) {
        fprintf(stderr, "estate-gw: -c FILE is required\n");
        usage(stderr);
        return EST_EXIT_USAGE;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct est_cli cli = {.program = "estate-gw", .usage = usage};
    bool check_only = false;
    int code = parse_args(argc, argv, &cli, &check_only);
    if (code >= 0) {
        est_cli_free(&cli);
        return code;
    }
    const char *config_path = cli.config_path;
    struct gw_config *config = NULL;
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(config_path, cli.sets, cli.nsets, &config, &errors);
    if (err != EST_OK) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        if (errors.count == 0)
            fprintf(stderr, "%s: %s\n", config_path, est_strerror(err));
        gw_config_errors_free(&errors);
        est_cli_free(&cli);
        return 2;
    }
    if (check_only) {
        printf("OK\n");
        gw_config_free(config);
        est_cli_free(&cli);
        return 0;
    }
    /* SIGHUP reloads; until the reload thread runs it only wakes it up. */
    sem_init(&reload_wakeup, 0, 0);
    struct sigaction hup = {0};
    hup.sa_handler = on_reload_signal;
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, NULL);
    gw_log_set_level(config->gateway.log_level);
    umask(077); /* database, outbox and secrets are 0600 */
    signal(SIGPIPE, SIG_IGN);

    struct gw_core *core = NULL;
    if (gw_core_create(config, &core) != EST_OK) {
        gw_error("estate-gw: cannot start");
        gw_config_free(config);
        est_cli_free(&cli);
        return 1;
    }
    struct gw_http *http = NULL;
    const struct gw_console_host console_host = {
        .ctx = core, .config = config, .call = console_call,
        .subscribe = console_subscribe, .now_ms = console_now,
        .health = console_health, .metrics = console_metrics,
        .current_config = console_current_config};
    if (config->http.listen != NULL && config->http.listen[0] != '\0' &&
        gw_http_start(&console_host, &http) != EST_OK) {
        gw_error("http: cannot serve the console on %s", config->http.listen);
        gw_core_destroy(core);
        gw_config_free(config);
        est_cli_free(&cli);
        return 1;
    }
    running_core = core;
    struct service_notify notify;
    notify_init(&notify);
    core->on_tick = notify_on_tick;
    core->on_tick_ctx = &notify;
    struct reloader reloader = {.core = core, .config_path = config_path, .sets = cli.sets,
                                .nsets = cli.nsets};
    reloader.started = pthread_create(&reloader.thread, NULL, reload_thread, &reloader) == 0;
    if (reloader.started) {
        core->on_reload_wanted = wake_reloader;
        core->on_reload_ctx = &reloader;
    } else {
        gw_warn("reload: cannot start the reload thread: SIGHUP and estate-ctl reload are ignored");
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    gw_info("estate-gw %s starting: site %s, gateway %s", ESTATE_VERSION, config->gateway.site,
            config->gateway.id);
    err = gw_core_run(core);
    notify_stopping();
    reloader_stop(&reloader);
    gw_http_stop(http);
    running_core = NULL;
    gw_core_destroy(core);
    gw_config_free(config);
    est_cli_free(&cli);
    return err == EST_OK ? 0 : 1;
}
