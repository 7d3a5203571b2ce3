/* office.c - creates the office from its host: copies the host, then lets
 * each part register its verbs and incident subscriptions; frees the parts'
 * state at the end. */
#include "office.h"

#include <stdlib.h>

#include "office_parts.h"
#include "incidents.h"
#include "workorders.h"

est_err gw_office_create(const struct gw_office_host *host, struct gw_office **out)
{
    if (host == NULL || host->store == NULL || host->config == NULL || host->now_ms == NULL ||
        host->publish_event == NULL || host->patrol == NULL || host->set_unit_vacant == NULL)
        return EST_ERR_INVALID;
    struct gw_office *office = calloc(1, sizeof *office);
    if (office == NULL)
        return EST_ERR_NOMEM;
    office->host = *host;
    est_err err = gw_commands_init(office);
    if (err == EST_OK)
        err = gw_workorders_init(office);
    if (err == EST_OK)
        err = gw_incidents_init(office);
    if (err != EST_OK) {
        gw_office_destroy(office);
        return err;
    }
    *out = office;
    return EST_OK;
}

void gw_office_tick(struct gw_office *office, int64_t now_ms)
{
    gw_workorders_tick(office, now_ms);
}

void gw_office_clock_moved(struct gw_office *office, int64_t delta_ms, const char *note,
                           int64_t now_ms)
{
    gw_workorders_clock_moved(office, delta_ms, note, now_ms);
}

void gw_office_destroy(struct gw_office *office)
{
    if (office == NULL)
        return;
    gw_commands_release(office);
    free(office);
}
