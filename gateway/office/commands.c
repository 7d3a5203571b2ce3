/* commands.c - the command registry, the role policy, argument helpers
 * and the verbs that act on the site itself (occupancy, valve). */
#include "commands.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "incidents.h"
#include "config.h"
#include "office_parts.h"
#include "users.h"

#define REQUEST_ID_MAX 64

/* Valve actuations asked by people (MQTT, console, estate-ctl): a motorised
 * ball valve takes seconds to move and wears with every stroke, and a flood
 * of open/close commands (a stuck client, a hostile one) must not cycle it.
 * Refused requests say so in their result; nothing is queued for them.
 * A rule's automatic close (vacant_flow) is not limited: it only ever
 * closes, once per incident, and nothing reopens a valve automatically. */
#define VALVE_METER_INTERVAL_MS 30000 /* one actuation per meter per 30 s */
/* and at most GW_VALVE_SITE_PER_MINUTE (10) a minute over the site */

/* Commands from people over MQTT and the console, per account: a burst of
 * COMMAND_BURST, then COMMAND_RATE a second. estate-ctl (run by the
 * operator on the machine) and the rules are not limited. */
#define COMMAND_BURST 30.0
#define COMMAND_RATE 2.0

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
    {"frontdesk", "incident", "ack"},
    {"engineer", "workorder", "arrive"},
    {"engineer", "workorder", "complete"},
    {"engineer", "workorder", "note"},
    {"engineer", "patrol-checkin", "*"},
    {"engineer", "handover", "*"},
    {"engineer", "valve", "*"},
    {"engineer", "incident", "ack"},
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

/* The users file, reloaded when it changes (core thread only). */
static const struct gw_users *current_users(struct gw_office *office)
{
    struct gw_users_cache *cache = &office->users;
    char *path = gw_users_path(office->host.config);
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) {
        free(path);
        return cache->users;
    }
    if (cache->users == NULL || st.st_mtim.tv_sec != cache->mtime.tv_sec ||
        st.st_mtim.tv_nsec != cache->mtime.tv_nsec) {
        struct gw_users *fresh = NULL;
        if (gw_users_load(path, NULL, NULL, &fresh) == EST_OK) {
            gw_users_free(cache->users);
            cache->users = fresh;
            cache->mtime = st.st_mtim;
        }
    }
    free(path);
    return cache->users;
}

bool gw_commands_have_users(struct gw_office *office)
{
    return gw_users_count(current_users(office)) > 0;
}

const char *gw_commands_user_role(struct gw_office *office, const char *user)
{
    const struct gw_users *users = current_users(office);
    return users != NULL && user != NULL ? gw_users_role(users, user) : NULL;
}

/* ---- who runs estate-ctl ---- */

static void actor_as_user(struct gw_office *office, const char *user, struct gw_actor *actor,
                          char *name, size_t namelen)
{
    snprintf(name, namelen, "%s", user);
    actor->user = name;
    actor->role = gw_commands_user_role(office, name); /* NULL: refused as unknown */
}

/* Decides who acts; see gw_commands_ctl_actor. */
static cJSON *resolve_ctl_actor(struct gw_office *office, const cJSON *args, struct gw_actor *actor,
                                char *name, size_t namelen)
{
    const struct gw_config *config = office->host.config;
    const cJSON *uid_item = cJSON_GetObjectItemCaseSensitive(args, "unix_uid");
    double uid = cJSON_IsNumber(uid_item) ? uid_item->valuedouble : -1.0;
    const char *account = gw_command_string(args, "unix_account", 64);
    const char *sudo_user = gw_command_string(args, "sudo_user", 64);
    const char *requested = gw_command_string(args, "user", 63);
    bool trusted = uid == 0.0 || uid == (double)geteuid(); /* they own the database anyway */
    char mapped[GW_USERS_NAME_MAX + 1];
    *actor = (struct gw_actor){.user = "", .role = NULL, .origin = "ctl"};

    if (account != NULL && gw_config_ctl_account_user(config, account, mapped, sizeof mapped)) {
        if (requested != NULL && strcmp(requested, mapped) != 0)
            return gw_command_error(args, "Unix account %s acts as gateway user %s "
                                    "(ctl.unix_accounts), not as %s", account, mapped, requested);
        actor_as_user(office, mapped, actor, name, namelen);
        return NULL;
    }
    if (!trusted)
        return gw_command_error(args, "Unix account %s is not mapped to a gateway user "
                                "(ctl.unix_accounts in the gateway's config)",
                                account != NULL ? account : "(unknown)");
    if (requested != NULL) {
        actor_as_user(office, requested, actor, name, namelen);
        return NULL;
    }
    if (sudo_user != NULL && gw_config_ctl_account_user(config, sudo_user, mapped, sizeof mapped)) {
        actor_as_user(office, mapped, actor, name, namelen);
        return NULL;
    }
    snprintf(name, namelen, "%s", sudo_user != NULL ? sudo_user : account != NULL ? account : "root");
    actor->user = name;
    actor->role = "supervisor"; /* the site's administrator, as the console's supervisor */
    return NULL;
}

cJSON *gw_commands_ctl_actor(struct gw_office *office, cJSON *args, struct gw_actor *actor,
                             char *name, size_t namelen)
{
    cJSON *refused = resolve_ctl_actor(office, args, actor, name, namelen);
    if (refused != NULL)
        return refused;
    static const char *const caller_members[] = {"unix_uid", "unix_account", "sudo_user", "user"};
    for (size_t i = 0; i < sizeof caller_members / sizeof caller_members[0]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(args, caller_members[i]);
    if (cJSON_AddStringToObject(args, "user", actor->user) == NULL)
        return gw_command_error(args, "out of memory");
    return NULL;
}

/* ---- occupancy ---- */

static cJSON *occupancy_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
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
    int index = gw_config_unit_index(office->host.config, unit);
    if (index < 0)
        return gw_command_error(args, "unknown unit \"%s\"", unit);
    bool vacant = strcmp(occupancy, "vacant") == 0;
    int64_t now = gw_office_now_ms(office);
    if (gw_store_set_occupancy(office->host.store, unit, vacant, actor->user, now) != EST_OK)
        return gw_command_error(args, "cannot store the change: %s", gw_store_errmsg(office->host.store));
    bool was_vacant = office->host.set_unit_vacant(office->host.ctx, (uint32_t)index, vacant);
    char text[256];
    bool zh = gw_office_lang_zh(office);
    snprintf(text, sizeof text, zh ? "%s 将 %s 室设为%s（原为%s）" : "%s set unit %s to %s (was %s)",
             actor->user, unit, zh ? (vacant ? "空置" : "入住") : occupancy,
             zh ? (was_vacant ? "空置" : "入住") : (was_vacant ? "vacant" : "occupied"));
    gw_office_patrol(office, "occupancy", text, 0, 0, actor->user, NULL);
    gw_info("occupancy: %s", text);
    cJSON *result = gw_command_ok(args);
    cJSON_AddStringToObject(result, "unit", unit);
    cJSON_AddStringToObject(result, "occupancy", occupancy);
    return result;
}

/* ---- valve ---- */

/* 0 when meter may be actuated now, else the seconds to wait; *why says
 * which limit. */
static int valve_wait_s(struct gw_valve_limiter *limiter, size_t nmeters, size_t meter, int64_t now,
                        const char **why)
{
    if (limiter->last_ms == NULL || limiter->nmeters != nmeters) {
        free(limiter->last_ms);
        limiter->nmeters = nmeters;
        limiter->last_ms = calloc(nmeters + 1, sizeof *limiter->last_ms);
        if (limiter->last_ms == NULL) {
            *why = "out of memory";
            return 1;
        }
    }
    int64_t last = limiter->last_ms[meter];
    if (last != 0 && now - last < VALVE_METER_INTERVAL_MS) {
        *why = "at most one actuation per meter every 30 s";
        return (int)((last + VALVE_METER_INTERVAL_MS - now + 999) / 1000);
    }
    int64_t oldest = limiter->recent_ms[limiter->recent_next];
    if (oldest != 0 && now - oldest < 60000) {
        *why = "at most 10 valve actuations a minute over the site";
        return (int)((oldest + 60000 - now + 999) / 1000);
    }
    return 0;
}

static void valve_note(struct gw_valve_limiter *limiter, size_t meter, int64_t now)
{
    if (limiter->last_ms != NULL && meter < limiter->nmeters)
        limiter->last_ms[meter] = now;
    limiter->recent_ms[limiter->recent_next] = now;
    limiter->recent_next = (limiter->recent_next + 1) % GW_VALVE_SITE_PER_MINUTE;
}

static cJSON *valve_command(struct gw_office *office, const cJSON *args, const struct gw_actor *actor)
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
    int index = gw_config_meter_index(office->host.config, meter);
    if (index < 0)
        return gw_command_error(args, "unknown meter \"%s\"", meter);
    if (!office->host.config->meters[index].valve)
        return gw_command_error(args, "meter \"%s\" has no valve", meter);
    int64_t now = est_mono_ms();
    const char *why = NULL;
    int wait_s = valve_wait_s(&office->valve, office->host.config->nmeters, (size_t)index, now,
                              &why);
    if (wait_s > 0) {
        gw_warn("valve %s of meter %s asked by %s (%s): refused, rate limit: %s", action, meter,
                actor->user, actor->origin ? actor->origin : "?", why);
        cJSON *refused = gw_command_error(args, "valve of meter \"%s\" not actuated: rate limit (%s); "
                                          "try again in %d s", meter, why, wait_s);
        if (refused != NULL)
            cJSON_AddNumberToObject(refused, "retry_after_s", wait_s);
        return refused;
    }
    if (gw_incidents_request_valve(office, (uint32_t)index, strcmp(action, "close") == 0, actor->user) !=
        EST_OK)
        return gw_command_error(args, "the bus of meter \"%s\" is busy; try again", meter);
    valve_note(&office->valve, (size_t)index, now);
    cJSON *result = gw_command_ok(args);
    cJSON_AddStringToObject(result, "meter", meter);
    cJSON_AddStringToObject(result, "action", action);
    cJSON_AddStringToObject(result, "status", "queued");
    return result;
}

/* ---- per-account rate limit ---- */

static bool origin_limited(const struct gw_actor *actor)
{
    return actor->origin != NULL && (strcmp(actor->origin, "mqtt") == 0 ||
                                     strcmp(actor->origin, "http") == 0);
}

/* The user's bucket, taking the least recently used one when new. */
static struct gw_command_bucket *bucket_of(struct gw_office *office, const char *user, int64_t now)
{
    struct gw_command_bucket *pick = NULL;
    for (size_t i = 0; i < GW_COMMAND_BUCKETS; i++) {
        struct gw_command_bucket *b = &office->buckets[i];
        if (b->user[0] && strcmp(b->user, user) == 0)
            return b;
        if (!pick || (pick->user[0] && (!b->user[0] || b->last_ms < pick->last_ms)))
            pick = b;
    }
    snprintf(pick->user, sizeof pick->user, "%s", user);
    pick->tokens = COMMAND_BURST;
    pick->last_ms = now;
    return pick;
}

/* Takes one command from the actor's bucket; false when it is empty. */
static bool take_command_token(struct gw_office *office, const struct gw_actor *actor)
{
    if (!origin_limited(actor))
        return true;
    int64_t now = est_mono_ms();
    struct gw_command_bucket *b = bucket_of(office, actor->user, now);
    b->tokens += (double)(now - b->last_ms) * COMMAND_RATE / 1000.0;
    if (b->tokens > COMMAND_BURST)
        b->tokens = COMMAND_BURST;
    b->last_ms = now;
    if (b->tokens < 1.0) {
        b->refused++;
        if ((b->refused & (b->refused - 1)) == 0)
            gw_warn("commands from %s (%s): %llu refused in a row, rate limited", actor->user,
                    actor->origin, (unsigned long long)b->refused);
        return false;
    }
    b->refused = 0;
    b->tokens -= 1.0;
    return true;
}

/* ---- the registry ---- */

est_err gw_command_register(struct gw_office *office, const char *verb, gw_command_fn handle,
                            bool has_actions)
{
    for (size_t i = 0; i < office->nverbs; i++)
        if (strcmp(office->verbs[i].verb, verb) == 0)
            return EST_ERR_STATE;
    if (office->nverbs >= GW_OFFICE_MAX_VERBS)
        return EST_ERR_FULL;
    office->verbs[office->nverbs++] = (struct gw_command_entry){verb, handle, has_actions};
    return EST_OK;
}

est_err gw_commands_init(struct gw_office *office)
{
    est_err err = gw_command_register(office, "occupancy", occupancy_command, false);
    if (err == EST_OK)
        err = gw_command_register(office, "valve", valve_command, false);
    return err;
}

void gw_commands_release(struct gw_office *office)
{
    gw_users_free(office->users.users);
    office->users.users = NULL;
    free(office->valve.last_ms);
    office->valve.last_ms = NULL;
}

static const struct gw_command_entry *find_verb(const struct gw_office *office, const char *verb)
{
    for (size_t i = 0; i < office->nverbs; i++)
        if (strcmp(office->verbs[i].verb, verb) == 0)
            return &office->verbs[i];
    return NULL;
}

cJSON *gw_commands_handle(struct gw_office *office, const char *verb, const cJSON *args,
                          const struct gw_actor *actor)
{
    if (args == NULL || !cJSON_IsObject(args))
        return gw_command_error(NULL, "payload is not a JSON object");
    const cJSON *request_id = cJSON_GetObjectItemCaseSensitive(args, "request_id");
    if (request_id != NULL && (!cJSON_IsString(request_id) || strlen(request_id->valuestring) > REQUEST_ID_MAX))
        return gw_command_error(NULL, "\"request_id\" must be a string of at most %d bytes", REQUEST_ID_MAX);
    const struct gw_command_entry *entry = find_verb(office, verb);
    if (entry == NULL)
        return gw_command_error(args, "unknown command \"%.32s\"", verb);
    if (actor->role == NULL)
        return gw_command_error(args, "unknown or disabled user \"%s\"", actor->user);
    const char *action = entry->has_actions ? gw_command_string(args, "action", 32) : NULL;
    if (entry->has_actions && action == NULL)
        return gw_command_error(args, "\"action\" is required");
    if (!gw_commands_role_allows(actor->role, verb, action))
        return gw_command_error(args, "role %s may not %s%s%s", actor->role, verb,
                                action ? " " : "", action ? action : "");
    if (!take_command_token(office, actor)) {
        cJSON *refused = gw_command_error(args, "rate limited: at most %.0f commands at once, then "
                                          "%.0f a second, per account", COMMAND_BURST, COMMAND_RATE);
        if (refused != NULL)
            cJSON_AddNumberToObject(refused, "retry_after_s", 1);
        return refused;
    }
    return entry->handle(office, args, actor);
}
