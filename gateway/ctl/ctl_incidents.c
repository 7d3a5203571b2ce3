/* ctl_incidents.c - estate-ctl incidents: open ones, or all with --all. */
#include "ctl.h"

static bool incident_row(void *ctx, const struct gw_store_incident *in)
{
    cJSON *row = ctl_add_row(ctx);
    if (row == NULL)
        return false;
    cJSON_AddNumberToObject(row, "id", (double)in->id);
    gw_json_add_string_if(row, "rule", in->rule);
    gw_json_add_string_if(row, "severity", in->severity);
    cJSON_AddStringToObject(row, "state", in->open ? "active" : "cleared"); /* SPEC: state=active */
    gw_json_add_string_if(row, "subject_type", in->subject_type);
    gw_json_add_string_if(row, "subject", in->subject);
    if (in->zone >= 0)
        cJSON_AddNumberToObject(row, "zone", in->zone + 1);
    gw_json_add_ts_if(row, "since", in->since_ms);
    gw_json_add_ts_if(row, "raised", in->raised_ms);
    gw_json_add_ts_if(row, "cleared", in->cleared_ms);
    gw_json_add_string_if(row, "text", in->text);
    gw_json_add_string_if(row, "confirmed_by", in->confirmed_by);
    gw_json_add_string_if(row, "disputed_by", in->disputed_by);
    ctl_add_parsed(row, "detail", in->detail_json);
    return true;
}

int ctl_verb_incidents(struct ctl *c)
{
    bool all = ctl_option_flag(c, "--all");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    cJSON *rows = cJSON_CreateArray();
    est_err err = all ? gw_store_incidents_between(store, 0, INT64_MAX, incident_row, rows)
                      : gw_store_incidents_open(store, incident_row, rows);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"rule", "rule"}, {"severity", "severity"}, {"state", "state"},
        {"subject", "subject"}, {"zone", "zone"}, {"raised", "raised"}, {"cleared", "cleared"},
        {"confirmed by", "confirmed_by"}, {"text", "text"},
    };
    return ctl_list_done(c, store, err, "incidents", rows, cols, COUNT_OF(cols));
}
