/* commands.h - the gateway's command verbs, whatever the channel: MQTT
 * P/cmd/<verb>, estate-ctl (through the store's request queue) and the
 * console (through its host's call(), which is gw_core_call). Each part of the office registers its
 * verbs at start-up; gw_commands_handle looks the verb up, checks the
 * actor's role against the one role policy table and runs it. Each verb
 * validates its arguments strictly (types, lengths, known ids), acts on the
 * core thread and returns a result object
 *     {"request_id":..., "ok":true, ...}  or  {"request_id":..., "ok":false, "error":"..."}
 * A refused command changes nothing. */
#ifndef GW_COMMANDS_H
#define GW_COMMANDS_H

#include <cjson/cJSON.h>

#include "office.h"

/* A verb's implementation. */
typedef cJSON *(*gw_command_fn)(struct gw_office *office, const cJSON *args,
                                const struct gw_actor *actor);

/* Adds a verb to the office's registry. has_actions: the role check needs
 * args.action (e.g. "workorder"/"verify"). EST_ERR_FULL when the registry
 * is full, EST_ERR_STATE when the verb is registered already. */
est_err gw_command_register(struct gw_office *office, const char *verb, gw_command_fn handle,
                            bool has_actions);

/* Handles one command. args is the parsed JSON object (NULL when the payload
 * was not a JSON object: the result then says so). Never returns NULL unless
 * out of memory. */
cJSON *gw_commands_handle(struct gw_office *office, const char *verb, const cJSON *args,
                          const struct gw_actor *actor);

/* Whether a role may run a verb/action at all (e.g. "workorder"/"verify").
 * action may be NULL for verbs without actions. */
bool gw_commands_role_allows(const char *role, const char *verb, const char *action);

/* Role of a named user (from the console's users file), or NULL when the
 * user is unknown or disabled: MQTT commands name their user this way. */
const char *gw_commands_user_role(struct gw_office *office, const char *user);
/* Whether the site has console users at all (a users file with entries). */
bool gw_commands_have_users(struct gw_office *office);

/* Who an estate-ctl request acts as, from the Unix account estate-ctl
 * reported (args "unix_uid", "unix_account", "sudo_user") and its --user
 * ("user"): a mapped account (ctl.unix_accounts) is its gateway user and
 * may not name another; root and the gateway's own account may name any
 * gateway user with --user (that user's role applies) and otherwise act as
 * the site administrator (role supervisor); any other account is refused.
 * Takes those members out of args and sets "user" to the one who acts
 * (what the verbs see), fills *actor (the name in name[namelen]) and
 * returns NULL; or returns the refusal. */
cJSON *gw_commands_ctl_actor(struct gw_office *office, cJSON *args, struct gw_actor *actor,
                             char *name, size_t namelen);

/* Helpers for verb implementations in other files. */
cJSON *gw_command_error(const cJSON *args, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cJSON *gw_command_ok(const cJSON *args);
/* A required string member of at most max_len bytes; NULL if missing/wrong. */
const char *gw_command_string(const cJSON *args, const char *name, size_t max_len);

#endif
