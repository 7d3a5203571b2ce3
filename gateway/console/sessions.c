/* sessions.c - sign-in, the session table, tokens and cookies, login throttling. */
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "console_internal.h"
#include "config.h"
#include "views.h"

#define THROTTLE_USER_FREE 5          /* failures per user and address before lockouts start */
#define THROTTLE_IP_FREE 20           /* failures per address before lockouts start */
#define THROTTLE_MAX_LOCK_MS (15 * 60 * 1000)
#define THROTTLE_FORGET_MS (15 * 60 * 1000)

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static bool token_well_formed(const char *token)
{
    if (!token || strlen(token) != TOKEN_HEX)
        return false;
    for (size_t i = 0; i < TOKEN_HEX; i++)
        if (!isxdigit((unsigned char)token[i]))
            return false;
    return true;
}

/* Where user's new session goes (caller holds sessions_lock): the user's
 * oldest when they have SESSIONS_PER_USER already, else a free or expired
 * slot, else (the table is full) the oldest session of whoever has the
 * most. One account signing in again and again only replaces its own. */
static struct session *session_slot_for(struct gw_http *http, const char *user, int64_t now)
{
    struct session *free_slot = NULL, *own_oldest = NULL;
    size_t own = 0;
    for (size_t i = 0; i < SESSION_MAX; i++) {
        struct session *s = &http->sessions[i];
        if (s->token[0] == '\0' || s->expires_ms <= now) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (strcmp(s->user, user) == 0) {
            own++;
            if (!own_oldest || s->expires_ms < own_oldest->expires_ms)
                own_oldest = s;
        }
    }
    if (own >= SESSIONS_PER_USER || (!free_slot && own_oldest))
        return own_oldest;
    if (free_slot)
        return free_slot;
    /* Full, and user has none: the heaviest user gives up their oldest. */
    struct session *victim = NULL;
    size_t victim_count = 0;
    for (size_t i = 0; i < SESSION_MAX; i++) {
        struct session *s = &http->sessions[i];
        size_t count = 0;
        for (size_t j = 0; j < SESSION_MAX; j++)
            count += strcmp(http->sessions[j].user, s->user) == 0;
        if (count > victim_count || (count == victim_count && s->expires_ms < victim->expires_ms)) {
            victim = s;
            victim_count = count;
        }
    }
    return victim;
}

/* Creates a session; false when the random source failed. */
static bool session_create(struct gw_http *http, const char *user, struct caller *out)
{
    unsigned char raw[TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    char token[TOKEN_HEX + 1];
    for (size_t i = 0; i < TOKEN_BYTES; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof raw);
    int64_t now = est_now_ms();
    int64_t expires = now + (int64_t)http->config->http.session_ttl_s * 1000;

    pthread_mutex_lock(&http->sessions_lock);
    struct session *slot = session_slot_for(http, user, now);
    snprintf(slot->token, sizeof slot->token, "%s", token);
    snprintf(slot->user, sizeof slot->user, "%s", user);
    slot->expires_ms = expires;
    pthread_mutex_unlock(&http->sessions_lock);

    snprintf(out->token, sizeof out->token, "%s", token);
    snprintf(out->user, sizeof out->user, "%s", user);
    out->expires_ms = expires;
    return true;
}

/* Looks a token up (constant time per slot); copies the session out. */
static bool session_find(struct gw_http *http, const char *token, struct caller *out)
{
    if (!token_well_formed(token))
        return false;
    int64_t now = est_now_ms();
    bool found = false;
    pthread_mutex_lock(&http->sessions_lock);
    for (size_t i = 0; i < SESSION_MAX; i++) {
        struct session *s = &http->sessions[i];
        if (s->token[0] == '\0' || CRYPTO_memcmp(s->token, token, TOKEN_HEX) != 0)
            continue;
        if (s->expires_ms <= now) {
            memset(s, 0, sizeof *s);
            break;
        }
        snprintf(out->token, sizeof out->token, "%s", s->token);
        snprintf(out->user, sizeof out->user, "%s", s->user);
        out->expires_ms = s->expires_ms;
        found = true;
        break;
    }
    pthread_mutex_unlock(&http->sessions_lock);
    return found;
}

static void session_delete(struct gw_http *http, const char *token)
{
    pthread_mutex_lock(&http->sessions_lock);
    for (size_t i = 0; i < SESSION_MAX; i++) {
        struct session *s = &http->sessions[i];
        if (s->token[0] && CRYPTO_memcmp(s->token, token, TOKEN_HEX) == 0)
            memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&http->sessions_lock);
}

/* The bearer token, else the session cookie; NULL when neither. */
static const char *request_token(struct MHD_Connection *conn, bool *by_cookie)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        *by_cookie = false;
        return auth + 7;
    }
    *by_cookie = true;
    return MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, SESSION_COOKIE);
}

bool console_authenticate(struct gw_http *http, struct MHD_Connection *conn, struct caller *who)
{
    bool by_cookie = false;
    const char *token = request_token(conn, &by_cookie);
    if (!session_find(http, token, who))
        return false;
    who->role = gw_users_role_of(http->config, who->user);
    if (!who->role) {
        session_delete(http, who->token);
        return false;
    }
    who->by_cookie = by_cookie;
    return true;
}

bool console_session_still_valid(struct gw_http *http, const char *token)
{
    struct caller who;
    return session_find(http, token, &who);
}

/* ------------------------------------------------------------------ */
/* Login throttling                                                    */
/* ------------------------------------------------------------------ */

/* Two bounded tables: failures per (user, address) pair, so that nobody
 * can lock a user out of the addresses they sign in from, and failures
 * per address, which also count names that are not users. A full table
 * never gives up a locked entry: a new key that finds no room goes
 * unrecorded (its address is still counted), so a flood of junk names
 * cannot flush the count of a user someone is guessing. */

/* The entry for key in table, or NULL; forgets entries long quiet. Caller
 * holds throttle_lock. */
static struct throttle_slot *throttle_find(struct throttle_slot *table, const char *key,
                                           int64_t mono)
{
    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct throttle_slot *t = &table[i];
        if (t->key[0] && mono - t->last_failure_ms > THROTTLE_FORGET_MS &&
            mono >= t->locked_until_ms)
            memset(t, 0, sizeof *t);
        if (t->key[0] && strcmp(t->key, key) == 0)
            return t;
    }
    return NULL;
}

/* A new entry for key: a free slot, else the stalest unlocked one; NULL
 * when every entry is locked. Caller holds throttle_lock. */
static struct throttle_slot *throttle_add(struct throttle_slot *table, const char *key,
                                          int64_t mono)
{
    struct throttle_slot *pick = NULL;
    for (size_t i = 0; i < THROTTLE_SLOTS && (!pick || pick->key[0]); i++) {
        struct throttle_slot *t = &table[i];
        if (!t->key[0])
            pick = t;
        else if (mono >= t->locked_until_ms &&
                 (!pick || t->last_failure_ms < pick->last_failure_ms))
            pick = t;
    }
    if (!pick)
        return NULL;
    memset(pick, 0, sizeof *pick);
    snprintf(pick->key, sizeof pick->key, "%s", key);
    return pick;
}

static void pair_key(const char *user, const char *address, char *out, size_t size)
{
    snprintf(out, size, "%s@%s", user, address);
}

static int64_t slot_wait_ms(const struct throttle_slot *t, int64_t mono)
{
    return t && t->locked_until_ms > mono ? t->locked_until_ms - mono : 0;
}

/* Milliseconds until user may try again from address; 0 = now. */
static int64_t throttle_wait_ms(struct gw_http *http, const char *user, const char *address)
{
    char key[sizeof http->throttle_pairs[0].key];
    pair_key(user, address, key, sizeof key);
    int64_t mono = est_mono_ms();
    pthread_mutex_lock(&http->throttle_lock);
    int64_t pair_wait = slot_wait_ms(throttle_find(http->throttle_pairs, key, mono), mono);
    int64_t address_wait =
        slot_wait_ms(throttle_find(http->throttle_addresses, address, mono), mono);
    pthread_mutex_unlock(&http->throttle_lock);
    return pair_wait > address_wait ? pair_wait : address_wait;
}

/* The lockout after the n-th failure when free failures are allowed:
 * 1 s, 2 s, 4 s ... up to THROTTLE_MAX_LOCK_MS. */
static int64_t lockout_ms(unsigned failures, unsigned free_failures)
{
    if (failures < free_failures)
        return 0;
    unsigned doublings = failures - free_failures;
    if (doublings > 20)
        return THROTTLE_MAX_LOCK_MS;
    int64_t ms = (int64_t)1000 << doublings;
    return ms < THROTTLE_MAX_LOCK_MS ? ms : THROTTLE_MAX_LOCK_MS;
}

static void count_failure(struct throttle_slot *table, const char *key, unsigned free_failures,
                          int64_t mono)
{
    struct throttle_slot *t = throttle_find(table, key, mono);
    if (!t)
        t = throttle_add(table, key, mono);
    if (!t)
        return;
    t->failures++;
    t->last_failure_ms = mono;
    int64_t lock = lockout_ms(t->failures, free_failures);
    if (lock)
        t->locked_until_ms = mono + lock;
}

/* A failed sign-in; the pair is counted only for a name that is a user. */
static void throttle_failure(struct gw_http *http, const char *user, bool is_user,
                             const char *address)
{
    char key[sizeof http->throttle_pairs[0].key];
    pair_key(user, address, key, sizeof key);
    int64_t mono = est_mono_ms();
    pthread_mutex_lock(&http->throttle_lock);
    if (is_user)
        count_failure(http->throttle_pairs, key, THROTTLE_USER_FREE, mono);
    count_failure(http->throttle_addresses, address, THROTTLE_IP_FREE, mono);
    pthread_mutex_unlock(&http->throttle_lock);
}

/* A successful sign-in clears the pair's count (not the address's). */
static void throttle_success(struct gw_http *http, const char *user, const char *address)
{
    char key[sizeof http->throttle_pairs[0].key];
    pair_key(user, address, key, sizeof key);
    pthread_mutex_lock(&http->throttle_lock);
    struct throttle_slot *t = throttle_find(http->throttle_pairs, key, est_mono_ms());
    if (t)
        memset(t, 0, sizeof *t);
    pthread_mutex_unlock(&http->throttle_lock);
}

/* ------------------------------------------------------------------ */
/* Sign-in and sign-out                                                */
/* ------------------------------------------------------------------ */

cJSON *console_caller_json(const struct api_request *req, bool with_token)
{
    cJSON *json = cJSON_CreateObject();
    if (with_token)
        cJSON_AddStringToObject(json, "token", req->who.token);
    cJSON_AddStringToObject(json, "user", req->who.user);
    cJSON_AddStringToObject(json, "role", req->who.role);
    gw_json_add_ts_if(json, "expires", req->who.expires_ms);
    cJSON_AddStringToObject(json, "language",
                            req->http->config->gateway.language == GW_LANG_EN ? "en" : "zh-CN");
    return json;
}

static enum MHD_Result send_session(struct api_request *req, unsigned status)
{
    struct gw_http *http = req->http;
    cJSON *json = console_caller_json(req, true);
    char cookie[TOKEN_HEX + 128];
    snprintf(cookie, sizeof cookie, SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
             req->who.token, http->config->http.session_ttl_s);
    return console_send_json_with(req->conn, status, json, "Set-Cookie", cookie);
}

/* Frees a sign-in body, wiping the password first. */
static void free_login_body(cJSON *body)
{
    cJSON *password = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (cJSON_IsString(password))
        OPENSSL_cleanse(password->valuestring, strlen(password->valuestring));
    cJSON_Delete(body);
}

enum MHD_Result route_login(struct api_request *req)
{
    struct gw_http *http = req->http;
    cJSON *body = console_parse_body_object(req);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(body, "user");
    const cJSON *password = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (!body || !cJSON_IsString(user) || !cJSON_IsString(password) ||
        strlen(user->valuestring) > GW_USERS_NAME_MAX ||
        strlen(password->valuestring) > GW_USERS_PASSWORD_MAX) {
        free_login_body(body);
        return console_send_error(req->conn, MHD_HTTP_BAD_REQUEST,
                                  "expected {\"user\": string, \"password\": string}");
    }
    char address[INET6_ADDRSTRLEN + 8];
    console_client_address(req->conn, address, sizeof address);
    char name[GW_USERS_NAME_MAX + 1]; /* throttling key; "?" for names that cannot exist */
    snprintf(name, sizeof name, "%s", gw_users_name_valid(user->valuestring) ? user->valuestring : "?");
    int64_t wait = throttle_wait_ms(http, name, address);
    if (wait > 0) {
        free_login_body(body);
        char seconds[24];
        snprintf(seconds, sizeof seconds, "%" PRId64, (wait + 999) / 1000);
        cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "error", "too many failed sign-ins; try again later");
        cJSON_AddNumberToObject(json, "retry_after", (double)((wait + 999) / 1000));
        return console_send_json_with(req->conn, MHD_HTTP_TOO_MANY_REQUESTS, json, "Retry-After",
                                      seconds);
    }
    const char *role = NULL;
    bool ok = gw_users_name_valid(user->valuestring) &&
              gw_users_login(http->config, user->valuestring, password->valuestring, &role);
    if (!ok) {
        free_login_body(body);
        throttle_failure(http, name, gw_users_role_of(http->config, name) != NULL, address);
        gw_warn("http: failed sign-in for user \"%s\" from %s", name, address);
        return console_send_error(req->conn, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
    }
    throttle_success(http, name, address);
    bool created = session_create(http, name, &req->who);
    free_login_body(body);
    if (!created)
        return console_send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "no random source");
    req->who.role = role;
    gw_info("http: %s (%s) signed in from %s", req->who.user, role, address);
    return send_session(req, MHD_HTTP_OK);
}

enum MHD_Result route_logout(struct api_request *req)
{
    session_delete(req->http, req->who.token);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddTrueToObject(json, "ok");
    return console_send_json_with(req->conn, MHD_HTTP_OK, json, "Set-Cookie",
                                  SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}
