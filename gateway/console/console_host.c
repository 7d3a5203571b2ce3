/* console_host.c - the console's only door to the daemon that hosts it:
 * commands, events and the clock, through struct gw_console_host. */
#include "console_internal.h"

char *console_call_command(struct gw_http *http, const char *verb, const char *args_json,
                           const char *user, const char *role, int timeout_ms)
{
    struct gw_actor actor = {.user = user, .role = role, .origin = "http"};
    return http->host.call(http->host.ctx, verb, args_json, &actor, timeout_ms);
}

est_err console_subscribe_events(struct gw_http *http, gw_console_event_fn fn)
{
    return http->host.subscribe(http->host.ctx, fn, http);
}

int64_t console_now_ms(const struct gw_http *http)
{
    return http->host.now_ms(http->host.ctx);
}

const struct gw_config *console_records_config(const struct gw_http *http)
{
    const struct gw_config *config =
        http->host.current_config ? http->host.current_config(http->host.ctx) : NULL;
    return config ? config : http->config;
}

char *console_host_health(const struct gw_http *http, int timeout_ms)
{
    return http->host.health ? http->host.health(http->host.ctx, timeout_ms) : NULL;
}

char *console_host_metrics(const struct gw_http *http, int timeout_ms)
{
    return http->host.metrics ? http->host.metrics(http->host.ctx, timeout_ms) : NULL;
}
