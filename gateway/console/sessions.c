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
#include "log.h"
#include "views.h"

#define THROTTLE_USER_FREE 5          /* failures per user before lockouts start */
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
    struct session *slot = NULL;
    for (size_t i = 0; i < SESSION_MAX; i++) {
        struct session *s = &http->sessions[i];
        if (s->token[0] == '\0' || s->expires_ms <= now) {
            slot = s;
            break;
        }
        if (!slot || s->expires_ms < slot->expires_ms)
            slot = s; /* table full: the session closest to expiry goes */
    }
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

/* The slot for key, created when asked (evicting the stalest). Caller
 * holds throttle_lock. */
static struct throttle_slot *throttle_slot(struct gw_http *http, const char *key, bool create,
                                           int64_t mono)
{
    struct throttle_slot *free_slot = NULL, *stalest = NULL;
    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct throttle_slot *t = &http->throttle[i];
        if (t->key[0] && mono - t->last_failure_ms > THROTTLE_FORGET_MS &&
            mono >= t->locked_until_ms)
            memset(t, 0, sizeof *t); /* forgotten */
        if (t->key[0] && strcmp(t->key, key) == 0)
            return t;
        if (!t->key[0] && !free_slot)
            free_slot = t;
        if (t->key[0] && (!stalest || t->last_failure_ms < stalest->last_failure_ms))
            stalest = t;
    }
    if (!create)
        return NULL;
    struct throttle_slot *t = free_slot ? free_slot : stalest;
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    return t;
}

static void throttle_keys(const char *user, const char *address, char user_key[],
                          char address_key[], size_t size)
{
    snprintf(user_key, size, "u:%s", user);
    snprintf(address_key, size, "a:%s", address);
}

/* Milliseconds until user or address may try again; 0 = now. */
static int64_t throttle_wait_ms(struct gw_http *http, const char *user, const char *address)
{
    char user_key[sizeof http->throttle[0].key], address_key[sizeof http->throttle[0].key];
    throttle_keys(user, address, user_key, address_key, sizeof user_key);
    int64_t mono = est_mono_ms(), wait = 0;
    pthread_mutex_lock(&http->throttle_lock);
    const char *keys[2] = {user_key, address_key};
    for (size_t k = 0; k < 2; k++) {
        struct throttle_slot *t = throttle_slot(http, keys[k], false, mono);
        if (t && t->locked_until_ms - mono > wait)
            wait = t->locked_until_ms - mono;
    }
    pthread_mutex_unlock(&http->throttle_lock);
    return wait;
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

static void throttle_failure(struct gw_http *http, const char *user, const char *address)
{
    char user_key[sizeof http->throttle[0].key], address_key[sizeof http->throttle[0].key];
    throttle_keys(user, address, user_key, address_key, sizeof user_key);
    int64_t mono = est_mono_ms();
    pthread_mutex_lock(&http->throttle_lock);
    const char *keys[2] = {user_key, address_key};
    const unsigned free_failures[2] = {THROTTLE_USER_FREE, THROTTLE_IP_FREE};
    for (size_t k = 0; k < 2; k++) {
        struct throttle_slot *t = throttle_slot(http, keys[k], true, mono);
        t->failures++;
        t->last_failure_ms = mono;
        int64_t lock = lockout_ms(t->failures, free_failures[k]);
        if (lock)
            t->locked_until_ms = mono + lock;
    }
    pthread_mutex_unlock(&http->throttle_lock);
}

/* A successful sign-in clears the user's count (not the address's). */
static void throttle_success(struct gw_http *http, const char *user)
{
    char user_key[sizeof http->throttle[0].key], unused[sizeof http->throttle[0].key];
    throttle_keys(user, "", user_key, unused, sizeof user_key);
    pthread_mutex_lock(&http->throttle_lock);
    struct throttle_slot *t = throttle_slot(http, user_key, false, est_mono_ms());
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
        throttle_failure(http, name, address);
        gw_warn("http: failed sign-in for user \"%s\" from %s", name, address);
        return console_send_error(req->conn, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
    }
    throttle_success(http, name);
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
