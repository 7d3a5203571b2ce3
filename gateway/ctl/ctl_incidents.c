/* ctl_incidents.c - estate-ctl incidents: open ones, or all with --all;
 * estate-ctl incident ID ack: the desk acknowledges an alert. */
#include "ctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct incident_rows {
    const struct gw_config *config;
    cJSON *rows;
};

static bool incident_row(void *ctx, const struct gw_store_incident *in)
{
    struct incident_rows *x = ctx;
    cJSON *row = gw_view_incident(x->config, in, GW_INCIDENT_STORED);
    if (row == NULL)
        return false;
    cJSON_AddItemToArray(x->rows, row);
    return true;
}

int ctl_verb_incidents(struct ctl *c)
{
    bool all = ctl_option_flag(c, "--all");
    int status = 0;
    struct gw_store *store = ctl_open_for_reading(c, &status);
    if (store == NULL)
        return status;
    struct incident_rows x = {c->config, cJSON_CreateArray()};
    est_err err = all ? gw_store_incidents_between(store, 0, INT64_MAX, incident_row, &x)
                      : gw_store_incidents_open(store, incident_row, &x);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"rule", "rule"}, {"severity", "severity"}, {"state", "state"},
        {"subject", "subject"}, {"zone", "zone"}, {"raised", "raised"}, {"cleared", "cleared"},
        {"confirmed by", "confirmed_by"}, {"acked by", "acked_by"}, {"text", "text"},
    };
    return ctl_list_done(c, store, err, "incidents", x.rows, cols, COUNT_OF(cols));
}

int ctl_verb_incident(struct ctl *c)
{
    const char *id_text = ctl_positional(c, 0);
    const char *action = ctl_positional(c, 0);
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    int64_t id = 0;
    if (id_text == NULL || !ctl_parse_int64(id_text, 1, INT64_C(1) << 52, &id) || action == NULL ||
        strcmp(action, "ack") != 0)
        return ctl_usage_error("usage: incident ID ack");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "id", (double)id);
    cJSON_AddStringToObject(args, "action", "ack");
    cJSON *result = NULL;
    int rc = ctl_request(c, "incident", args, &result);
    if (rc == 0 && !ctl_json_out(c, result))
        printf("incident %" PRId64 " acknowledged\n", id);
    cJSON_Delete(result);
    return rc;
}
