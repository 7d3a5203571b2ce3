/* console_host.c - the console's only door to the core: commands, events, clock, config. */
#include "console_internal.h"
#include "core.h"

const struct gw_config *console_config(const struct gw_core *core)
{
    return core->config;
}

char *console_call_command(struct gw_http *http, const char *verb, const char *args_json,
                           const char *user, const char *role, int timeout_ms)
{
    struct gw_actor actor = {.user = user, .role = role, .origin = "http"};
    return gw_core_call(http->core, verb, args_json, &actor, timeout_ms);
}

est_err console_subscribe_events(struct gw_http *http, console_event_fn fn)
{
    return gw_core_add_listener(http->core, fn, http);
}

int64_t console_now_ms(const struct gw_http *http)
{
    return gw_core_now_ms(http->core);
}

void console_attach(struct gw_http *http)
{
    http->core->http = http;
}

void console_detach(struct gw_http *http)
{
    if (http->core->http == http)
        http->core->http = NULL;
}
