/* commands.c - the command verbs' table, the role policy, argument helpers
 * and the verbs that belong to the core itself (occupancy, valve). */
#include "commands.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

#include "incidents.h"
#include "log.h"
#include "workorders.h"
#if __has_include("users.h")
#include "users.h"
#define HAVE_USERS 1
#endif

#define REQUEST_ID_MAX 64

/* Valve actuations asked by people (MQTT, console, estate-ctl): a motorised
 * ball valve takes seconds to move and wears with every stroke, and a flood
 * of open/close commands (a stuck client, a hostile one) must not cycle it.
 * Refused requests say so in their result; nothing is queued for them.
 * A rule's automatic close (vacant_flow) is not limited: it only ever
 * closes, once per incident, and nothing reopens a valve automatically. */
#define VALVE_METER_INTERVAL_MS 30000 /* one actuation per meter per 30 s */
#define VALVE_SITE_PER_MINUTE 10      /* and at most 10 a minute over the site */

/* ---- results ---- */

static void add_request_id(cJSON *result, const cJSON *args)
{
    const cJSON *id = args ? cJSON_GetObjectItemCaseSensitive(args, "request_id") : NULL;
    if (cJSON_IsString(id) && strlen(id->valuestring) <= REQUEST_ID_MAX)
        cJSON_AddStringToObject(result, "request_id", id->valuestring);
    else
        cJSON_AddNullToObject(result, "request_id");
}

cJSON *gw_command_error(const cJSON *args, const char *fmt, ...)
{
    cJSON *result = cJSON_CreateObject();
    if (result == NULL)
        return NULL;
    add_request_id(result, args);
    cJSON_AddFalseToObject(result, "ok");
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(result, "error", message);
    return result;
}

cJSON *gw_command_ok(const cJSON *args)
{
    cJSON *result = cJSON_CreateObject();
    if (result == NULL)
        return NULL;
    add_request_id(result, args);
    cJSON_AddTrueToObject(result, "ok");
    return result;
}

const char *gw_command_string(const cJSON *args, const char *name, size_t max_len)
{
    const cJSON *item = args ? cJSON_GetObjectItemCaseSensitive(args, name) : NULL;
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0' || strlen(item->valuestring) > max_len)
        return NULL;
    return item->valuestring;
}

/* The first member of args not named in allowed (NULL-terminated), or NULL. */
static const char *unknown_argument(const cJSON *args, const char *const *allowed)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, args)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = item->string != NULL && strcmp(item->string, allowed[i]) == 0;
        if (!known)
            return item->string != NULL ? item->string : "?";
    }
    return NULL;
}

/* ---- roles ---- */

/* Which role may do what; "*" = every action of the verb. */
static const struct {
    const char *role;
    const char *verb;
    const char *action;
} role_policy[] = {
    {"supervisor", "*", "*"},
    {"frontdesk", "workorder", "create"},
    {"frontdesk", "workorder", "dispatch"},
    {"frontdesk", "workorder", "cancel"},
    {"frontdesk", "workorder", "note"},
    {"frontdesk", "workorder", "rating"},
    {"frontdesk", "patrol-checkin", "*"},
    {"frontdesk", "handover", "*"},
    {"frontdesk", "occupancy", "*"},
    {"engineer", "workorder", "arrive"},
    {"engineer", "workorder", "complete"},
    {"engineer", "workorder", "note"},
    {"engineer", "patrol-checkin", "*"},
    {"engineer", "handover", "*"},
    {"engineer", "valve", "*"},
    {"system", "*", "*"},
};

bool gw_commands_role_allows(const char *role, const char *verb, const char *action)
{
    if (role == NULL || verb == NULL)
        return false;
    for (size_t i = 0; i < sizeof role_policy / sizeof role_policy[0]; i++) {
        if (strcmp(role_policy[i].role, role) != 0)
            continue;
        if (strcmp(role_policy[i].verb, "*") != 0 && strcmp(role_policy[i].verb, verb) != 0)
            continue;
        if (strcmp(role_policy[i].action, "*") == 0 ||
            (action != NULL && strcmp(role_policy[i].action, action) == 0))
            return true;
    }
    return false;
}

#ifdef HAVE_USERS
/* The users file, reloaded when it changes (core thread only). */
static struct gw_users *users_cache;
static struct timespec users_cache_mtime;

static const struct gw_users *current_users(struct gw_core *core)
{
    char *path = gw_users_path(core->config);
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) {
        free(path);
        return users_cache;
    }
    if (users_cache == NULL || st.st_mtim.tv_sec != users_cache_mtime.tv_sec ||
        st.st_mtim.tv_nsec != users_cache_mtime.tv_nsec) {
        struct gw_users *fresh = NULL;
        if (gw_users_load(path, NULL, NULL, &fresh) == EST_OK) {
            gw_users_free(users_cache);
            users_cache = fresh;
            users_cache_mtime = st.st_mtim;
        }
    }
    free(path);
    return users_cache;
}
#endif

const char *gw_commands_user_role(struct gw_core *core, const char *user)
{
#ifdef HAVE_USERS
    const struct gw_users *users = current_users(core);
    return users != NULL && user != NULL ? gw_users_role(users, user) : NULL;
#else
    (void)core;
    (void)user;
    return NULL;
#endif
}

/* ---- occupancy ---- */

static cJSON *occupancy_command(struct gw_core *core, const cJSON *args, const struct gw_actor *actor)
{
    static const char *const allowed[] = {"request_id", "user", "unit", "occupancy", NULL};
    const char *unknown = unknown_argument(args, allowed);
    if (unknown != NULL)
        return gw_command_error(args, "unknown argument \"%.64s\"", unknown);
    const char *unit = gw_command_string(args, "unit", 64);
    const char *occupancy = gw_command_string(args, "occupancy", 16);
    if (unit == NULL)
        return gw_command_error(args, "\"unit\" must be a unit id");
    if (occupancy == NULL || (strcmp(occupancy, "vacant") != 0 && strcmp(occupancy, "occupied") != 0))
        return gw_command_error(args, "\"occupancy\" must be \"vacant\" or \"occupied\"");
    int index = gw_config_unit_index(core->config, unit);
    if (index < 0)
        return gw_command_error(args, "unknown unit \"%s\"", unit);
    bool vacant = strcmp(occupancy, "vacant") == 0;
    int64_t now = gw_core_now_ms(core);
    if (gw_store_set_occupancy(core->store, unit, vacant, actor->user, now) != EST_OK)
        return gw_command_error(args, "cannot store the change: %s", gw_store_errmsg(core->store));
    bool was_vacant = core->unit_vacant[index];
    core->unit_vacant[index] = vacant;
    rule_engine_set_vacant(core->rules, (uint32_t)index, vacant);
    char text[256];
    bool zh = gw_core_lang_zh(core);
    snprintf(text, sizeof text, zh ? "%s 将 %s 室设为%s（原为%s）" : "%s set unit %s to %s (was %s)",
             actor->user, unit, zh ? (vacant ? "空置" : "入住") : occupancy,
             zh ? (was_vacant ? "空置" : "入住") : (was_vacant ? "vacant" : "occupied"));
    gw_core_patrol(core, "occupancy", text, 0, 0, actor->user, NULL);
    gw_info("occupancy: %s", text);
    cJSON *result = gw_command_ok(args);
    cJSON_AddStringToObject(result, "unit", unit);
    cJSON_AddStringToObject(result, "occupancy", occupancy);
    return result;
}

/* ---- valve ---- */

/* Rate limiter state (core thread only): the last actuation per meter and
 * the times of the last VALVE_SITE_PER_MINUTE actuations, monotonic ms. */
static int64_t *valve_last_ms;     /* nmeters entries, 0 = never */
static size_t valve_nmeters;
static int64_t valve_recent_ms[VALVE_SITE_PER_MINUTE];
static size_t valve_recent_next;   /* oldest entry, overwritten next */

/* 0 when meter may be actuated now, else the seconds to wait; *why says
 * which limit. */
static int valve_wait_s(const struct gw_core *core, size_t meter, int64_t now, const char **why)
{
    if (valve_last_ms == NULL || valve_nmeters != core->config->nmeters) {
        free(valve_last_ms);
        valve_nmeters = core->config->nmeters;
        valve_last_ms = calloc(valve_nmeters + 1, sizeof *valve_last_ms);
        if (valve_last_ms == NULL) {
            *why = "out of memory";
            return 1;
        }
    }
    int64_t last = valve_last_ms[meter];
    if (last != 0 && now - last < VALVE_METER_INTERVAL_MS) {
        *why = "at most one actuation per meter every 30 s";
        return (int)((last + VALVE_METER_INTERVAL_MS - now + 999) / 1000);
    }
    int64_t oldest = valve_recent_ms[valve_recent_next];
    if (oldest != 0 && now - oldest < 60000) {
        *why = "at most 10 valve actuations a minute over the site";
        return (int)((oldest + 60000 - now + 999) / 1000);
    }
    return 0;
}

static void valve_note(size_t meter, int64_t now)
{
    if (valve_last_ms != NULL && meter < valve_nmeters)
        valve_last_ms[meter] = now;
    valve_recent_ms[valve_recent_next] = now;
    valve_recent_next = (valve_recent_next + 1) % VALVE_SITE_PER_MINUTE;
}

static cJSON *valve_command(struct gw_core *core, const cJSON *args, const struct gw_actor *actor)
{
    static const char *const allowed[] = {"request_id", "user", "meter", "action", NULL};
    const char *unknown = unknown_argument(args, allowed);
    if (unknown != NULL)
        return gw_command_error(args, "unknown argument \"%.64s\"", unknown);
    const char *meter = gw_command_string(args, "meter", 64);
    const char *action = gw_command_string(args, "action", 16);
    if (meter == NULL)
        return gw_command_error(args, "\"meter\" must be a meter id");
    if (action == NULL || (strcmp(action, "close") != 0 && strcmp(action, "open") != 0))
        return gw_command_error(args, "\"action\" must be \"close\" or \"open\"");
    int index = gw_config_meter_index(core->config, meter);
    if (index < 0)
        return gw_command_error(args, "unknown meter \"%s\"", meter);
    if (!core->config->meters[index].valve)
        return gw_command_error(args, "meter \"%s\" has no valve", meter);
    int64_t now = est_mono_ms();
    const char *why = NULL;
    int wait_s = valve_wait_s(core, (size_t)index, now, &why);
    if (wait_s > 0) {
        gw_warn("valve %s of meter %s asked by %s (%s): refused, rate limit: %s", action, meter,
                actor->user, actor->origin ? actor->origin : "?", why);
        cJSON *refused = gw_command_error(args, "valve of meter \"%s\" not actuated: rate limit (%s); "
                                          "try again in %d s", meter, why, wait_s);
        if (refused != NULL)
            cJSON_AddNumberToObject(refused, "retry_after_s", wait_s);
        return refused;
    }
    if (gw_incidents_request_valve(core, (uint32_t)index, strcmp(action, "close") == 0, actor->user) !=
        EST_OK)
        return gw_command_error(args, "the bus of meter \"%s\" is busy; try again", meter);
    valve_note((size_t)index, now);
    cJSON *result = gw_command_ok(args);
    cJSON_AddStringToObject(result, "meter", meter);
    cJSON_AddStringToObject(result, "action", action);
    cJSON_AddStringToObject(result, "status", "queued");
    return result;
}

/* ---- dispatch ---- */

typedef cJSON *(*verb_fn)(struct gw_core *, const cJSON *, const struct gw_actor *);

static const struct {
    const char *verb;
    verb_fn handle;
    bool has_actions; /* the role check needs args.action */
} verbs[] = {
    {"occupancy", occupancy_command, false},
    {"valve", valve_command, false},
    {"workorder", gw_workorders_command, true},
    {"patrol-checkin", gw_patrol_checkin_command, false},
    {"handover", gw_handover_command, false},
};

cJSON *gw_commands_handle(struct gw_core *core, const char *verb, const cJSON *args,
                          const struct gw_actor *actor)
{
    if (args == NULL || !cJSON_IsObject(args))
        return gw_command_error(NULL, "payload is not a JSON object");
    const cJSON *request_id = cJSON_GetObjectItemCaseSensitive(args, "request_id");
    if (request_id != NULL && (!cJSON_IsString(request_id) || strlen(request_id->valuestring) > REQUEST_ID_MAX))
        return gw_command_error(NULL, "\"request_id\" must be a string of at most %d bytes", REQUEST_ID_MAX);
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(verbs[i].verb, verb) != 0)
            continue;
        if (actor->role == NULL)
            return gw_command_error(args, "unknown or disabled user \"%s\"", actor->user);
        const char *action = verbs[i].has_actions ? gw_command_string(args, "action", 32) : NULL;
        if (verbs[i].has_actions && action == NULL)
            return gw_command_error(args, "\"action\" is required");
        if (!gw_commands_role_allows(actor->role, verb, action))
            return gw_command_error(args, "role %s may not %s%s%s", actor->role, verb,
                                    action ? " " : "", action ? action : "");
        return verbs[i].handle(core, args, actor);
    }
    return gw_command_error(args, "unknown command \"%.32s\"", verb);
}
