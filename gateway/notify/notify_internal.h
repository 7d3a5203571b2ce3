/* notify_internal.h - what the notify part's files share: a channel's
 * ready-to-use settings (secrets loaded), one message to send and the
 * channel's answer. Nothing outside gateway/notify/ includes it. */
#ifndef GW_NOTIFY_INTERNAL_H
#define GW_NOTIFY_INTERNAL_H

#include "notify.h"

#include "est_alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* A channel with its secrets read (never logged). */
struct notify_channel {
    const struct gw_notify_channel_config *config;
    char *key;         /* robot key / token; NULL none */
    char *sign_secret; /* dingtalk signing; NULL none */
    char *password;    /* smtp password, http {secret}; NULL none */
    /* Rate limit and slow-down, on the host's thread only. */
    int64_t *sent_ms; /* ring of the last rate_per_min sends */
    size_t sent_next;
    int64_t paused_until_ms;
    /* Failing: since the first failure after the last success (0: not
     * failing); reported once it lasted notify.failing_after_s. */
    int64_t failing_since_ms;
    bool failing_reported;
    char last_error[200];
    struct gw_log_limiter log; /* failures logged 1st, 2nd, 4th, 8th ... */
};

/* One message for one channel: one row, or several rows' texts joined. */
struct notify_message {
    size_t channel;
    int64_t *ids; /* the rows it carries */
    size_t nids;
    char *text;
    char *recipients; /* comma-separated */
    char *subject;    /* smtp subject line */
    /* The first row's fields, for an http channel's placeholders. */
    char *rule, *severity, *place;
    int64_t incident, since_ms;
    int attempts; /* the fewest of its rows' attempts so far */
};

/* What the channel answered. */
enum notify_outcome { NOTIFY_DELIVERED, NOTIFY_FAILED, NOTIFY_RATE_LIMITED };

/* Sends msg on ch (blocking, at most the channel's timeout; given up at
 * once when *abandon becomes true). error gets a short reason on failure
 * (no secrets). now_ms signs DingTalk calls. */
enum notify_outcome notify_send(const struct notify_channel *ch, const struct notify_message *msg,
                                const struct gw_config *config, int64_t now_ms,
                                const atomic_bool *abandon, char *error, size_t error_len);

/* Placeholder substitution for http templates; escape: 'j' JSON string,
 * 'u' URL form, 0 none. Returns a malloc'd string or NULL. */
char *notify_fill_template(const char *tmpl, const struct notify_message *msg,
                           const struct notify_channel *ch, const struct gw_config *config,
                           char escape);

/* The DingTalk signature of timestamp_ms with secret, URL-encoded, into out;
 * false if it did not fit or OpenSSL failed. */
bool notify_dingtalk_sign(const char *secret, int64_t timestamp_ms, char *out, size_t len);

/* Site-local "MM-DD HH:MM" of ms into out. */
void notify_local_time(const struct gw_config *config, int64_t ms, char *out, size_t len);

/* The incident's place in words in a language (building, unit, zone name). */
void notify_place(const struct gw_config *config, const struct gw_store_incident *incident,
                  enum gw_language language, char *out, size_t len);

/* Routing keys of an incident: the meter category (or "fire", "unit") and
 * the building (NULL when it has none). */
const char *notify_category(const struct gw_config *config, const struct gw_store_incident *inc);
const char *notify_building(const struct gw_config *config, const struct gw_store_incident *inc);

#endif
