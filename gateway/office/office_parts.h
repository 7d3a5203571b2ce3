/* office_parts.h - the inside of struct gw_office, shared by the office's
 * own files only (never included outside gateway/office): the host it was
 * created from, the command registry, the incident subscribers and each
 * part's state (valve rate limiter, users cache, SLA schedule), plus short
 * forms of the host's functions. */
#ifndef GW_OFFICE_PARTS_H
#define GW_OFFICE_PARTS_H

#include <time.h>

#include "office.h"

#define GW_OFFICE_MAX_VERBS 16
#define GW_OFFICE_MAX_INCIDENT_LISTENERS 4
#define GW_VALVE_SITE_PER_MINUTE 10 /* valve actuations a minute over the site */

/* One verb of the registry (commands.c). */
struct gw_command_entry {
    const char *verb;
    gw_command_fn handle;
    bool has_actions; /* the role check needs args.action */
};

/* Valve actuations asked by people, monotonic ms (commands.c): the last
 * actuation per meter and the times of the last GW_VALVE_SITE_PER_MINUTE. */
struct gw_valve_limiter {
    int64_t *last_ms; /* nmeters entries, 0 = never */
    size_t nmeters;
    int64_t recent_ms[GW_VALVE_SITE_PER_MINUTE];
    size_t recent_next; /* oldest entry, overwritten next */
};

/* Commands per account (commands.c): a token bucket per user name, so a
 * stuck or hostile client cannot write hundreds of permanent records a
 * second. A small table: the least recently used bucket gives way. */
#define GW_COMMAND_BUCKETS 64
struct gw_command_bucket {
    char user[64];      /* "" = free */
    double tokens;
    int64_t last_ms;    /* monotonic */
    uint64_t refused;   /* commands refused in a row (logged at 1, 2, 4, ...) */
};

/* The users file, reloaded when it changes (commands.c). */
struct gw_users_cache {
    struct gw_users *users;
    struct timespec mtime;
};

/* When the SLA scan must run next (workorders.c); next_scan_ms 0 = at the
 * next tick. Every change to an order resets it. */
struct gw_sla_schedule {
    int64_t next_scan_ms;
    int64_t last_scan_ms;
};

struct gw_incident_listener {
    gw_incident_listener_fn fn;
    void *ctx;
};

struct gw_office {
    struct gw_office_host host;
    struct gw_command_entry verbs[GW_OFFICE_MAX_VERBS];
    size_t nverbs;
    struct gw_incident_listener incident_listeners[GW_OFFICE_MAX_INCIDENT_LISTENERS];
    size_t nincident_listeners;
    struct gw_valve_limiter valve;
    struct gw_command_bucket buckets[GW_COMMAND_BUCKETS];
    struct gw_users_cache users;
    struct gw_sla_schedule sla;
};

/* Start-up and release of each part (office.c calls them). */
est_err gw_commands_init(struct gw_office *office);
void gw_commands_release(struct gw_office *office);
est_err gw_workorders_init(struct gw_office *office);

static inline int64_t gw_office_now_ms(const struct gw_office *office)
{
    return office->host.now_ms(office->host.ctx);
}

static inline bool gw_office_lang_zh(const struct gw_office *office)
{
    return office->host.config->gateway.language == GW_LANG_ZH_CN;
}

static inline est_err gw_office_publish(struct gw_office *office, const char *topic_suffix,
                                        const char *payload, bool retain)
{
    return office->host.publish_event(office->host.ctx, topic_suffix, payload, retain);
}

static inline est_err gw_office_patrol(struct gw_office *office, const char *kind,
                                       const char *text, int64_t incident, int64_t workorder,
                                       const char *author, const char *detail_json)
{
    return office->host.patrol(office->host.ctx, kind, text, incident, workorder, author,
                               detail_json);
}

static inline const char *gw_office_meter_id(const struct gw_office *office, uint32_t meter)
{
    const struct gw_config *c = office->host.config;
    return meter < c->nmeters ? c->meters[meter].id : "?";
}

#endif
