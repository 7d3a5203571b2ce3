/* console.h - the front-desk console: a libmicrohttpd server on http.listen
 * serving the JSON API of SPEC ("Web console"), Server-Sent Events for live
 * changes and the console's static files.
 *
 * Threads: libmicrohttpd runs one thread per connection. Those threads never
 * touch the core's store: reads go through a small pool of read-only
 * connections of their own (SQLite WAL allows concurrent readers), actions
 * go to the core thread through gw_core_call() with the signed-in user as
 * the actor, and live events arrive through a core listener that copies
 * them into a bounded ring buffer the event streams read from.
 *
 * Lifetime: gw_http_start() after gw_core_create() and before
 * gw_core_run() (it registers the listener); gw_http_stop() after
 * gw_core_run() has returned and before gw_core_destroy(). */
#ifndef GW_CONSOLE_H
#define GW_CONSOLE_H

#include "estate.h"

struct gw_core;
struct gw_http;

/* Starts serving on core->config->http.listen. An empty listen address
 * means the console is off: EST_OK with *out = NULL. Errors: EST_ERR_INVALID
 * (bad address), EST_ERR_IO (cannot bind), EST_ERR_FULL (no listener slot
 * left in the core), EST_ERR_NOMEM. Sets core->http. */
est_err gw_http_start(struct gw_core *core, struct gw_http **out);

/* Ends every event stream, stops the server and frees it. NULL is a no-op. */
void gw_http_stop(struct gw_http *http);

#endif
