/* ctl_reload.c - estate-ctl reload: asks the running gateway, through the
 * request queue, to load its configuration file again, and prints what
 * changed or, for a refused config, each error as FILE:LINE: message. */
#include <stdio.h>

#include "ctl.h"

static void print_strings(const cJSON *result, const char *key, const char *prefix, FILE *out)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(result, key))
        if (cJSON_IsString(item))
            fprintf(out, "%s%s\n", prefix, item->valuestring);
}

int ctl_verb_reload(struct ctl *c)
{
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    cJSON *args = cJSON_CreateObject();
    cJSON *result = NULL;
    int rc = args ? ctl_ask_daemon(c, "reload", args, &result) : EST_EXIT_RUNTIME;
    cJSON_Delete(args);
    if (rc != 0)
        return rc;
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
    if (c->json) {
        ctl_print_json(result);
    } else if (ok) {
        printf("reloaded\n");
        print_strings(result, "changes", "  ", stdout);
        print_strings(result, "restart_needed", "  needs a restart to take effect: ", stdout);
        print_strings(result, "warnings", "estate-ctl: warning: ", stderr);
    } else {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(result, "error");
        print_strings(result, "errors", "", stderr);
        fprintf(stderr, "estate-ctl: reload refused: %s\n",
                cJSON_IsString(error) ? error->valuestring : "unknown error");
    }
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(result, "errors");
    rc = ok ? 0 : cJSON_GetArraySize(errors) > 0 ? EST_EXIT_USAGE : EST_EXIT_RUNTIME;
    cJSON_Delete(result);
    return rc;
}
