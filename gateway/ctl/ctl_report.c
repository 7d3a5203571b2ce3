/* ctl_report.c - estate-ctl report: consumption, balance, offline and
 * replaced meters over a range of days. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "est_tz.h"
#include "office.h"

int ctl_verb_report(struct ctl *c)
{
    bool missing = false;
    const char *from = ctl_option_value(c, "--from", &missing);
    const char *to = ctl_option_value(c, "--to", &missing);
    if (missing)
        return ctl_usage_error("report: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    char today[11], first_of_month[11];
    est_tz_local_day(c->config->gateway.timezone, est_now_ms(), today);
    snprintf(first_of_month, sizeof first_of_month, "%.8s01", today);
    if (from == NULL)
        from = first_of_month;
    if (to == NULL)
        to = today;
    if (!gw_report_day_valid(from) || !gw_report_day_valid(to))
        return ctl_usage_error("report: days are YYYY-MM-DD");
    if (strcmp(from, to) > 0)
        return ctl_usage_error("report: --from is after --to");
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    char err[256];
    cJSON *report = gw_report_build(store, c->config, from, to, err, sizeof err);
    gw_store_close(store);
    if (report == NULL) {
        fprintf(stderr, "estate-ctl: report: %s\n", err);
        return EST_EXIT_RUNTIME;
    }
    if (c->json)
        ctl_print_json(report);
    else if (c->csv)
        gw_report_print_csv(report, stdout);
    else
        gw_report_print_text(report, stdout);
    cJSON_Delete(report);
    return 0;
}
