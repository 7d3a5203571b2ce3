/* ctl_incidents.c - estate-ctl incidents: open ones, or all with --all. */
#include "ctl.h"

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
        {"confirmed by", "confirmed_by"}, {"text", "text"},
    };
    return ctl_list_done(c, store, err, "incidents", x.rows, cols, COUNT_OF(cols));
}
