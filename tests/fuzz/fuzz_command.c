/* fuzz_command.c - libFuzzer harness for command handling: the JSON a
 * P/cmd/<verb> message, an estate-ctl request or a console action carries,
 * through gw_commands_handle() on a real core (demo config, scratch store,
 * no threads started). Input: byte 0 picks the verb, byte 1 the actor's
 * role, the rest is the payload. Every result must be a JSON object with a
 * boolean "ok", and a refused command must leave the patrol log untouched. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "core.h"
#include "log.h"

static struct gw_core *core;
static struct gw_config *config;
static char data_dir[] = "/tmp/estate-fuzz-command-XXXXXX";

static void teardown(void)
{
    gw_core_destroy(core);
    gw_config_free(config);
    static const char *const files[] = {"estate.db", "estate.db-wal", "estate.db-shm"};
    char path[sizeof data_dir + 32];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, files[i]);
        remove(path);
    }
    remove(data_dir);
}

static const char *const verbs[] = {"occupancy", "valve", "workorder", "patrol-checkin",
                                    "handover", "no-such-verb"};
static const char *const roles[] = {"supervisor", "frontdesk", "engineer", "viewer", "nobody"};

static void setup(void)
{
    const char *root = getenv("ESTATE_SOURCE_DIR");
    static char conf[4096], dir_set[4200];
    snprintf(conf, sizeof conf, "%s/etc/demo/estate-gw.conf", root ? root : ESTATE_SOURCE_DIR);
    if (mkdtemp(data_dir) == NULL)
        abort();
    snprintf(dir_set, sizeof dir_set, "gateway.data_dir=%s", data_dir);
    const char *overrides[] = {dir_set, "http.listen=", "gateway.log_level=error"};
    struct gw_config_errors errors = {0};
    if (gw_config_load(conf, overrides, 3, &config, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        abort();
    }
    gw_log_set_level(GW_LOG_ERROR);
    if (gw_core_create(config, &core) != EST_OK)
        abort();
    atexit(teardown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (core == NULL)
        setup();
    if (size < 2)
        return 0;
    const char *verb = verbs[data[0] % (sizeof verbs / sizeof verbs[0])];
    struct gw_actor actor = {.user = "fuzzer", .role = roles[data[1] % (sizeof roles / sizeof roles[0])],
                             .origin = "mqtt"};
    if (strcmp(actor.role, "nobody") == 0)
        actor.role = NULL;
    cJSON *args = cJSON_ParseWithLength((const char *)data + 2, size - 2);
    int64_t seq_before = 0, seq_after = 0;
    char hash[GW_STORE_HASH_LEN];
    gw_store_patrol_head(core->store, &seq_before, hash);
    gw_store_begin(core->store);
    cJSON *result = gw_commands_handle(core->office, verb, args, &actor);
    gw_store_commit(core->store);
    gw_store_patrol_head(core->store, &seq_after, hash);
    if (result == NULL || !cJSON_IsObject(result))
        abort();
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(result, "ok");
    if (!cJSON_IsBool(ok))
        abort();
    if (cJSON_IsFalse(ok) && seq_after != seq_before)
        abort(); /* a refused command changed the log */
    cJSON_Delete(result);
    cJSON_Delete(args);
    return 0;
}
