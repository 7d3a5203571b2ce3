/* console.h - the front-desk console: a libmicrohttpd server on http.listen
 * serving the JSON API of SPEC ("Web console"), Server-Sent Events for live
 * changes and the console's static files.
 *
 * Threads: libmicrohttpd runs one thread per connection. Those threads never
 * touch the core's store: reads go through a small pool of read-only
 * connections of their own (SQLite WAL allows concurrent readers), actions
 * go to the core thread through the host's call() with the signed-in user as
 * the actor, and live events arrive through a host subscription that copies
 * them into a bounded ring buffer the event streams read from.
 *
 * Lifetime: gw_http_start() after the host (the core) exists and before it
 * runs (it subscribes to events); gw_http_stop() after the host has stopped
 * running and before it is destroyed. */
#ifndef GW_CONSOLE_H
#define GW_CONSOLE_H

#include <stdint.h>

#include "config.h"
#include "estate.h"
#include "office.h"

struct gw_http;

/* Gets every event the daemon publishes (kind is the topic suffix, e.g.
 * "alerts", "workorders/12"; payload its JSON), on the core thread. */
typedef void (*gw_console_event_fn)(void *ctx, const char *kind, const char *payload);

/* What the console needs from the daemon that hosts it; the daemon fills it
 * (gateway/daemon/main.c) so the console never sees the core. */
struct gw_console_host {
    void *ctx;                        /* passed back to every call below */
    const struct gw_config *config;   /* lives as long as the host */
    /* Runs verb with args_json (an object) on the core thread as actor; the
     * result JSON (malloc'd) or NULL when it did not answer in timeout_ms. */
    char *(*call)(void *ctx, const char *verb, const char *args_json,
                  const struct gw_actor *actor, int timeout_ms);
    /* Registers fn(fn_ctx, ...) for every event; before the daemon runs. */
    est_err (*subscribe)(void *ctx, gw_console_event_fn fn, void *fn_ctx);
    /* The daemon's wall clock (replaceable in tests), ms since the epoch. */
    int64_t (*now_ms)(void *ctx);
    /* The daemon's health, {"status":"ok"|"degraded"|"failing","reasons":[...]}
     * (malloc'd), or NULL when it did not answer in timeout_ms. NULL = none. */
    char *(*health)(void *ctx, int timeout_ms);
    /* Its metrics in the Prometheus text format (malloc'd), or NULL when it
     * did not answer in timeout_ms. NULL = none. */
    char *(*metrics)(void *ctx, int timeout_ms);
    /* The config records are shown with now (meter locations and units,
     * work-order SLAs): a reload replaces it, and a replaced one stays valid
     * for at least a minute. Any thread. NULL = config. */
    const struct gw_config *(*current_config)(void *ctx);
};

/* Starts serving on host->config->http.listen; host is copied. An empty
 * listen address means the console is off: EST_OK with *out = NULL. Errors:
 * EST_ERR_INVALID (bad address), EST_ERR_IO (cannot bind), EST_ERR_FULL (no
 * event listener slot left), EST_ERR_NOMEM. */
est_err gw_http_start(const struct gw_console_host *host, struct gw_http **out);

/* Ends every event stream, stops the server and frees it. NULL is a no-op. */
void gw_http_stop(struct gw_http *http);

#endif
