/* notify.h - alerts that reach a person: incident transitions routed
 * (notify.routes) to group robots (WeCom, DingTalk, Feishu), templated
 * HTTP calls and SMTP e-mail (notify.channels).
 *
 * Durable: each message is a row in the store's notifications table,
 * added in the transaction that stores its cause, one row per cause and
 * channel. A sender thread of its own makes the calls (libcurl); the host's
 * thread, which owns the store connection, hands it the due rows and
 * records what it answered (delivered, or retry later with backoff), so
 * only the host writes the database. Several alerts due for one robot go
 * as one message, and a robot never gets more than its rate_per_min. A
 * route may also mention whoever is on duty (the last shift handover's
 * "to", found in notify.people) and escalate unacknowledged incidents. */
#ifndef GW_NOTIFY_H
#define GW_NOTIFY_H

#include <stdint.h>

#include "config.h"
#include "estate.h"
#include "rules.h"
#include "store.h"

struct gw_notify;

/* What notify needs from its host: the patrol log, where each escalation
 * step is recorded (appends an entry and publishes it). */
struct gw_notify_host {
    void *ctx;
    est_err (*patrol)(void *ctx, const char *kind, const char *text, int64_t incident,
                      int64_t workorder, const char *author, const char *detail_json);
    /* A channel failed for notify.failing_after_s (failing true) or answers
     * again: the host raises or clears an incident of its own. May be NULL. */
    void (*channel_failing)(void *ctx, const char *channel, bool failing, const char *text);
};

/* Reads the channels' secret files and starts the sender thread. With no
 * channel configured *out is NULL and EST_OK is returned: every other call
 * takes NULL as "nothing to do". errbuf says what failed (never a secret). */
est_err gw_notify_create(const struct gw_config *config, const struct gw_notify_host *host,
                         struct gw_notify **out, char *errbuf, size_t errbuf_len);
/* Stops the sender: a call in flight is given up (within about a second:
 * libcurl's progress callback), its rows stay undelivered and are sent on
 * the next start. */
void gw_notify_destroy(struct gw_notify *notify);

/* An incident was stored (raised or cleared): queues a row for every
 * channel a route sends it to, on store (inside the caller's transaction).
 * Quiet hours delay all but critical incidents to their end. */
void gw_notify_on_incident(struct gw_notify *notify, struct gw_store *store,
                           const struct gw_store_incident *incident,
                           enum rule_transition transition);

/* An event the office published (topic_suffix "workorders/<id>" with the
 * work order, "escalations" with an SLA breach): routes with
 * workorder_events queue "created" (first seen open), "breached" and
 * "return_visit" (completed, waiting for the return visit) on store, in
 * the caller's transaction. Anything else is ignored. */
void gw_notify_on_event(struct gw_notify *notify, struct gw_store *store, const char *topic_suffix,
                        const char *payload, int64_t now_ms);

/* On the host's thread, often (every tick): records the sender's answers,
 * queues the escalation steps that fell due (open major or critical
 * incidents nobody acknowledged: no patrol check-in confirmed or disputed
 * them) and hands the sender the rows due at now_ms. */
void gw_notify_tick(struct gw_notify *notify, struct gw_store *store, int64_t now_ms);

/* The channels failing for notify.failing_after_s or longer (since the
 * first failure after their last success, on this run): up to max names
 * into names (valid until the next tick); returns how many there are. */
size_t gw_notify_failing_channels(const struct gw_notify *notify, const char **names, size_t max);

/* The text of an incident's message in a language, into out (the same
 * text gw_notify_on_incident queues; tests and previews). */
void gw_notify_format(const struct gw_config *config, const struct gw_store_incident *incident,
                      enum rule_transition transition, enum gw_language language, char *out,
                      size_t len);

#endif
