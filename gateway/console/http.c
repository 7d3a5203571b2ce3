/* http.c - the front-desk console server (see http.h): request intake with
 * bounded bodies, sessions, cross-site protection, login throttling, the
 * JSON API routes, Server-Sent Events and static files.
 *
 * Security model, in the order every API request is checked:
 *   1. session: a random 32-byte token (hex) in the estate_session cookie
 *      (HttpOnly, SameSite=Strict) or "Authorization: Bearer"; else 401;
 *   2. route: unknown path 404, known path with another method 405;
 *   3. cross-site: a state-changing request authenticated by the cookie
 *      must carry "X-Requested-With: estate-console" (a header no other
 *      site can send without a CORS preflight, which we never grant) and,
 *      when present, an Origin equal to our own; else 403 (the sign-in:
 *      only the Origin check; Bearer requests: none, no browser sends
 *      the token by itself);
 *   4. body: over 64 KiB 413;
 *   5. role: gw_commands_role_allows() before anything reaches the core;
 *      403 when the role may not;
 *   6. JSON: malformed or not an object 400.
 * Only then is the action handed to the core, so a refused call never
 * changes state. Logins are throttled per user name and per client address
 * with a growing lockout window; a locked-out login is answered at once
 * with 429 and Retry-After (the server thread never sleeps). */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "commands.h"
#include "handover.h"
#include "log.h"
#include "payload.h"
#include "users.h"

#define BODY_MAX (64 * 1024)          /* larger request bodies get 413 */
#define DRAIN_MAX (1024 * 1024)       /* beyond this an oversize body closes the connection */
#define CONNECTION_LIMIT 64
#define PER_IP_CONNECTION_LIMIT 24
#define CONNECTION_TIMEOUT_S 60
#define CORE_CALL_TIMEOUT_MS 5000

#define TOKEN_BYTES 32
#define TOKEN_HEX (2 * TOKEN_BYTES)
#define SESSION_MAX 1024
#define SESSION_COOKIE "estate_session"
#define CSRF_HEADER "X-Requested-With"
#define CSRF_VALUE "estate-console"

#define THROTTLE_SLOTS 256
#define THROTTLE_USER_FREE 5          /* failures per user before lockouts start */
#define THROTTLE_IP_FREE 20           /* failures per address before lockouts start */
#define THROTTLE_MAX_LOCK_MS (15 * 60 * 1000)
#define THROTTLE_FORGET_MS (15 * 60 * 1000)

#define EVENT_RING 512                /* live events kept for Last-Event-ID resume */
#define EVENT_PAYLOAD_MAX (256 * 1024)
#define SSE_KEEPALIVE_MS 15000

#define STORE_POOL 4                  /* read-only store connections */
#define SEGMENT_MAX 64                /* bytes of one API path segment */
#define SEGMENTS_MAX 5
#define HISTORY_POINTS_MAX 240        /* history is thinned to this many points */
#define HISTORY_ROWS_MAX 20000
#define PATROL_LIMIT_DEFAULT 200
#define PATROL_LIMIT_MAX 2000

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct session {
    char token[TOKEN_HEX + 1];  /* "" = free slot */
    char user[GW_USERS_NAME_MAX + 1];
    int64_t expires_ms;         /* wall clock */
};

struct throttle_slot {
    char key[GW_USERS_NAME_MAX + 8]; /* "u:<name>" or "a:<address>"; "" = free */
    unsigned failures;
    int64_t last_failure_ms;    /* monotonic */
    int64_t locked_until_ms;    /* monotonic */
};

struct live_event {
    uint64_t id;
    char name[24];              /* SSE event name: "alert", "workorder", ... */
    char *data;                 /* JSON */
};

struct gw_http {
    struct gw_core *core;
    const struct gw_config *config;
    struct MHD_Daemon *daemon;
    char *static_dir;
    atomic_bool stopping;
    atomic_uint_fast64_t request_seq;

    pthread_mutex_t sessions_lock;
    struct session sessions[SESSION_MAX];

    pthread_mutex_t throttle_lock;
    struct throttle_slot throttle[THROTTLE_SLOTS];

    pthread_mutex_t events_lock;
    pthread_cond_t events_cond;
    struct live_event events[EVENT_RING];
    uint64_t next_event_id;     /* id the next event gets (first is 1) */

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct gw_store *pool[STORE_POOL];
    bool pool_busy[STORE_POOL];
};

/* One request's upload, kept between libmicrohttpd's calls. */
struct request_body {
    char *data;
    size_t len;
    size_t seen;                /* bytes received, kept or not */
    bool too_large;
};

/* Who is calling (copied out of the session table). */
struct caller {
    char token[TOKEN_HEX + 1];
    char user[GW_USERS_NAME_MAX + 1];
    const char *role;           /* static string */
    int64_t expires_ms;
    bool by_cookie;
};

/* One API request being handled. */
struct api_request {
    struct gw_http *http;
    struct MHD_Connection *conn;
    const char *method;
    char seg[SEGMENTS_MAX][SEGMENT_MAX + 1]; /* path after /api/, split on '/' */
    size_t nseg;
    const struct request_body *body;
    struct caller who;
};

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static void add_common_headers(struct MHD_Response *response)
{
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, char *text,
                                  const char *content_type, const char *extra_name,
                                  const char *extra_value)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(text);
        return MHD_NO;
    }
    add_common_headers(response);
    MHD_add_response_header(response, "Content-Type", content_type);
    MHD_add_response_header(response, "Cache-Control", "no-store");
    if (extra_name)
        MHD_add_response_header(response, extra_name, extra_value);
    enum MHD_Result ret = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return ret;
}

/* Sends json (consumed) with status, plus one optional extra header. */
static enum MHD_Result send_json_with(struct MHD_Connection *conn, unsigned status, cJSON *json,
                                      const char *extra_name, const char *extra_value)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text) {
        text = strdup("{\"error\":\"out of memory\"}");
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        if (!text)
            return MHD_NO;
    }
    return queue_text(conn, status, text, "application/json; charset=utf-8", extra_name,
                      extra_value);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, cJSON *json)
{
    return send_json_with(conn, status, json, NULL, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "error", message);
    return send_json(conn, status, json);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */



/* Adds a stored JSON text as a parsed member (null when absent or broken). */
static void add_raw_json(cJSON *obj, const char *name, const char *json_text)
{
    cJSON *value = json_text ? cJSON_Parse(json_text) : NULL;
    cJSON_AddItemToObject(obj, name, value ? value : cJSON_CreateNull());
}

static void add_number_if(cJSON *obj, const char *name, double value)
{
    if (value == value) /* not NAN */
        cJSON_AddNumberToObject(obj, name, value);
}

/* Parses a positive decimal id (at most 15 digits); 0 when malformed. */
static int64_t parse_id(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > 15 || text[0] == '0')
        return 0;
    int64_t id = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return 0;
        id = id * 10 + (text[i] - '0');
    }
    return id;
}

/* A time query parameter: ms since the epoch or RFC 3339. */
static bool parse_time_param(const char *text, int64_t *ms)
{
    if (!text)
        return false;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (!errno && end != text && *end == '\0' && n >= 0) {
        *ms = n;
        return true;
    }
    return est_parse_ts(text, ms) == EST_OK;
}

static const char *query(const struct api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The client's address as text ("?" when unknown). */
static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    snprintf(out, size, "?");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    if (getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, size, "?");
}

static int64_t now_ms(const struct gw_http *http)
{
    return gw_core_now_ms(http->core);
}

/* ------------------------------------------------------------------ */
/* Read-only store pool                                                */
/* ------------------------------------------------------------------ */

/* A read-only store connection for this thread's exclusive use until
 * store_release(); NULL when the database cannot be opened. */
static struct gw_store *store_acquire(struct gw_http *http, size_t *slot)
{
    pthread_mutex_lock(&http->pool_lock);
    for (;;) {
        for (size_t i = 0; i < STORE_POOL; i++) {
            if (http->pool_busy[i])
                continue;
            if (!http->pool[i]) {
                char reason[256];
                if (gw_store_open(http->config->gateway.data_dir, true, &http->pool[i], reason,
                                  sizeof reason) != EST_OK) {
                    pthread_mutex_unlock(&http->pool_lock);
                    gw_warn("http: cannot open the database read-only: %s", reason);
                    return NULL;
                }
            }
            http->pool_busy[i] = true;
            *slot = i;
            pthread_mutex_unlock(&http->pool_lock);
            return http->pool[i];
        }
        pthread_cond_wait(&http->pool_cond, &http->pool_lock);
    }
}

static void store_release(struct gw_http *http, size_t slot)
{
    pthread_mutex_lock(&http->pool_lock);
    http->pool_busy[slot] = false;
    pthread_cond_signal(&http->pool_cond);
    pthread_mutex_unlock(&http->pool_lock);
}

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

/* Fills who from the request's token; false when there is no valid
 * session or its user was disabled or removed since sign-in (the role is
 * looked up again, so a changed role applies at once). */
static bool authenticate(struct gw_http *http, struct MHD_Connection *conn, struct caller *who)
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

static bool session_still_valid(struct gw_http *http, const char *token)
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
/* Live events                                                         */
/* ------------------------------------------------------------------ */

/* The SSE event name for a core event kind; NULL = not streamed.
 * "alerts/active/<id>" mirrors "alerts" for retained MQTT and is skipped. */
static const char *event_name(const char *kind)
{
    if (strcmp(kind, "alerts") == 0)
        return "alert";
    if (strncmp(kind, "workorders/", 11) == 0)
        return "workorder";
    if (strcmp(kind, "patrol") == 0)
        return "patrol";
    if (strncmp(kind, "panels/", 7) == 0)
        return "panel";
    if (strcmp(kind, "escalations") == 0)
        return "escalation";
    return NULL;
}

/* Core listener (core thread): copies the event into the ring. */
static void on_core_event(void *ctx, const char *kind, const char *payload)
{
    struct gw_http *http = ctx;
    const char *name = kind && payload ? event_name(kind) : NULL;
    size_t len = name ? strlen(payload) : 0;
    if (!name || len == 0 || len > EVENT_PAYLOAD_MAX)
        return;
    char *copy = strdup(payload);
    if (!copy)
        return;
    pthread_mutex_lock(&http->events_lock);
    uint64_t id = http->next_event_id++;
    struct live_event *slot = &http->events[id % EVENT_RING];
    free(slot->data);
    slot->id = id;
    snprintf(slot->name, sizeof slot->name, "%s", name);
    slot->data = copy;
    pthread_cond_broadcast(&http->events_cond);
    pthread_mutex_unlock(&http->events_lock);
}

/* One event stream (one connection). */
struct sse_stream {
    struct gw_http *http;
    char token[TOKEN_HEX + 1];  /* the stream ends with its session */
    uint64_t last_id;           /* last event id sent */
    char *pending;              /* formatted text not yet handed out */
    size_t pending_len, pending_off;
    int64_t last_send_ms;       /* monotonic */
};

/* Formats one event as SSE lines ("data:" per line of the payload). */
static char *format_event(uint64_t id, const char *name, const char *data)
{
    size_t lines = 1;
    for (const char *p = data; *p; p++)
        lines += *p == '\n';
    size_t size = strlen(data) + lines * 8 + strlen(name) + 64;
    char *out = malloc(size);
    if (!out)
        return NULL;
    size_t n = (size_t)snprintf(out, size, "id: %" PRIu64 "\nevent: %s\n", id, name);
    const char *line = data;
    for (;;) {
        const char *nl = strchr(line, '\n');
        size_t line_len = nl ? (size_t)(nl - line) : strlen(line);
        n += (size_t)snprintf(out + n, size - n, "data: %.*s\n", (int)line_len, line);
        if (!nl)
            break;
        line = nl + 1;
    }
    snprintf(out + n, size - n, "\n");
    return out;
}

/* Produces the stream's next chunk of text (caller holds events_lock):
 * the next event, a "reset" when events were lost, or NULL (nothing yet). */
static char *next_event_text(struct sse_stream *stream)
{
    struct gw_http *http = stream->http;
    uint64_t newest = http->next_event_id - 1;
    if (stream->last_id >= newest)
        return NULL;
    uint64_t oldest = newest >= EVENT_RING ? newest - EVENT_RING + 1 : 1;
    if (stream->last_id + 1 < oldest) {
        /* The client missed events that left the ring: it reloads. */
        stream->last_id = oldest - 1;
        return format_event(stream->last_id, "reset", "{}");
    }
    const struct live_event *ev = &http->events[(stream->last_id + 1) % EVENT_RING];
    stream->last_id = ev->id;
    return format_event(ev->id, ev->name, ev->data);
}

/* Waits (up to the keep-alive interval) for something to send. */
static char *wait_for_stream_text(struct sse_stream *stream)
{
    struct gw_http *http = stream->http;
    char *text = NULL;
    pthread_mutex_lock(&http->events_lock);
    while (!text && !atomic_load(&http->stopping)) {
        text = next_event_text(stream);
        if (text)
            break;
        int64_t wait = stream->last_send_ms + SSE_KEEPALIVE_MS - est_mono_ms();
        if (wait <= 0) {
            text = strdup(": keep-alive\n\n");
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait / 1000;
        until.tv_nsec += (wait % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&http->events_cond, &http->events_lock, &until);
    }
    pthread_mutex_unlock(&http->events_lock);
    return text;
}

/* libmicrohttpd content reader: blocks this connection's thread. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct sse_stream *stream = cls;
    if (stream->pending_off >= stream->pending_len) {
        free(stream->pending);
        stream->pending = NULL;
        stream->pending_len = stream->pending_off = 0;
        if (atomic_load(&stream->http->stopping) ||
            !session_still_valid(stream->http, stream->token))
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *text = wait_for_stream_text(stream);
        if (!text)
            return MHD_CONTENT_READER_END_OF_STREAM;
        stream->pending = text;
        stream->pending_len = strlen(text);
        stream->last_send_ms = est_mono_ms();
    }
    size_t n = stream->pending_len - stream->pending_off;
    if (n > max)
        n = max;
    memcpy(buf, stream->pending + stream->pending_off, n);
    stream->pending_off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse_stream *stream = cls;
    free(stream->pending);
    free(stream);
}

static enum MHD_Result route_events(struct api_request *req)
{
    struct gw_http *http = req->http;
    struct sse_stream *stream = calloc(1, sizeof *stream);
    if (!stream)
        return MHD_NO;
    stream->http = http;
    snprintf(stream->token, sizeof stream->token, "%s", req->who.token);
    const char *resume = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    pthread_mutex_lock(&http->events_lock);
    uint64_t newest = http->next_event_id - 1;
    pthread_mutex_unlock(&http->events_lock);
    stream->last_id = newest;
    char *end = NULL;
    unsigned long long asked = resume ? strtoull(resume, &end, 10) : 0;
    if (resume && end != resume && *end == '\0' && asked <= newest)
        stream->last_id = asked;
    stream->pending = strdup("retry: 3000\n: estate-gw live events\n\n");
    stream->pending_len = stream->pending ? strlen(stream->pending) : 0;
    stream->last_send_ms = est_mono_ms();
    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, stream, sse_free);
    if (!response) {
        sse_free(stream);
        return MHD_NO;
    }
    add_common_headers(response);
    MHD_add_response_header(response, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(response, "Cache-Control", "no-store");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Actions through the core                                            */
/* ------------------------------------------------------------------ */

/* The body as a JSON object (a new one when the body is empty); NULL
 * when malformed. */
static cJSON *parse_body_object(const struct api_request *req)
{
    if (req->body->len == 0)
        return cJSON_CreateObject();
    cJSON *json = cJSON_ParseWithLength(req->body->data, req->body->len);
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

static void set_member(cJSON *obj, const char *name, cJSON *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    cJSON_AddItemToObject(obj, name, value);
}

/* Runs verb on the core with args (consumed) as the signed-in user and
 * answers: 200 with the result, 409 when the core refused, 503 when it did
 * not answer in time. */
static enum MHD_Result call_core(struct api_request *req, const char *verb, cJSON *args)
{
    struct gw_http *http = req->http;
    char request_id[32];
    snprintf(request_id, sizeof request_id, "http-%" PRIu64,
             (uint64_t)atomic_fetch_add(&http->request_seq, 1) + 1);
    set_member(args, "request_id", cJSON_CreateString(request_id));
    cJSON_DeleteItemFromObjectCaseSensitive(args, "user"); /* the actor is the session's */
    char *text = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    if (!text)
        return send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    struct gw_actor actor = {.user = req->who.user, .role = req->who.role, .origin = "http"};
    char *result_text = gw_core_call(http->core, verb, text, &actor, CORE_CALL_TIMEOUT_MS);
    free(text);
    if (!result_text)
        return send_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the gateway did not answer in time; try again");
    cJSON *result = cJSON_Parse(result_text);
    free(result_text);
    if (!result)
        return send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "bad result from the core");
    bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "ok"));
    return send_json(req->conn, ok ? MHD_HTTP_OK : MHD_HTTP_CONFLICT, result);
}

/* Role check, body parse, then the call. extra (consumed, may be NULL)
 * holds members the route sets itself (ids from the path). */
static enum MHD_Result act(struct api_request *req, const char *verb, const char *action,
                           cJSON *extra)
{
    if (!gw_commands_role_allows(req->who.role, verb, action)) {
        cJSON_Delete(extra);
        return send_error(req->conn, MHD_HTTP_FORBIDDEN, "role %s may not %s%s%s", req->who.role,
                          verb, action ? " " : "", action ? action : "");
    }
    cJSON *args = parse_body_object(req);
    if (!args) {
        cJSON_Delete(extra);
        return send_error(req->conn, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
    }
    if (action)
        set_member(args, "action", cJSON_CreateString(action));
    for (cJSON *item = extra ? extra->child : NULL; item; item = item->next)
        set_member(args, item->string, cJSON_Duplicate(item, true));
    cJSON_Delete(extra);
    return call_core(req, verb, args);
}

/* ------------------------------------------------------------------ */
/* Routes: session                                                     */
/* ------------------------------------------------------------------ */

static enum MHD_Result send_session(struct api_request *req, unsigned status)
{
    struct gw_http *http = req->http;
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "token", req->who.token);
    cJSON_AddStringToObject(json, "user", req->who.user);
    cJSON_AddStringToObject(json, "role", req->who.role);
    gw_json_add_ts_if(json, "expires", req->who.expires_ms);
    cJSON_AddStringToObject(json, "language",
                            http->config->gateway.language == GW_LANG_EN ? "en" : "zh-CN");
    char cookie[TOKEN_HEX + 128];
    snprintf(cookie, sizeof cookie, SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
             req->who.token, http->config->http.session_ttl_s);
    return send_json_with(req->conn, status, json, "Set-Cookie", cookie);
}

/* Frees a sign-in body, wiping the password first. */
static void free_login_body(cJSON *body)
{
    cJSON *password = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (cJSON_IsString(password))
        OPENSSL_cleanse(password->valuestring, strlen(password->valuestring));
    cJSON_Delete(body);
}

static enum MHD_Result route_login(struct api_request *req)
{
    struct gw_http *http = req->http;
    cJSON *body = parse_body_object(req);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(body, "user");
    const cJSON *password = cJSON_GetObjectItemCaseSensitive(body, "password");
    if (!body || !cJSON_IsString(user) || !cJSON_IsString(password) ||
        strlen(user->valuestring) > GW_USERS_NAME_MAX ||
        strlen(password->valuestring) > GW_USERS_PASSWORD_MAX) {
        free_login_body(body);
        return send_error(req->conn, MHD_HTTP_BAD_REQUEST,
                          "expected {\"user\": string, \"password\": string}");
    }
    char address[INET6_ADDRSTRLEN + 8];
    client_address(req->conn, address, sizeof address);
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
        return send_json_with(req->conn, MHD_HTTP_TOO_MANY_REQUESTS, json, "Retry-After", seconds);
    }
    const char *role = NULL;
    bool ok = gw_users_name_valid(user->valuestring) &&
              gw_users_login(http->config, user->valuestring, password->valuestring, &role);
    if (!ok) {
        free_login_body(body);
        throttle_failure(http, name, address);
        gw_warn("http: failed sign-in for user \"%s\" from %s", name, address);
        return send_error(req->conn, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
    }
    throttle_success(http, name);
    bool created = session_create(http, name, &req->who);
    free_login_body(body);
    if (!created)
        return send_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "no random source");
    req->who.role = role;
    gw_info("http: %s (%s) signed in from %s", req->who.user, role, address);
    return send_session(req, MHD_HTTP_OK);
}

static enum MHD_Result route_logout(struct api_request *req)
{
    session_delete(req->http, req->who.token);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddTrueToObject(json, "ok");
    return send_json_with(req->conn, MHD_HTTP_OK, json, "Set-Cookie",
                          SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}

/* What the role may do, for the console's buttons. */
static cJSON *permissions_json(const char *role)
{
    static const char *const wo_actions[] = {"create", "dispatch", "arrive",  "complete", "verify",
                                             "cancel", "postpone", "note",    "rating"};
    static const char *const verbs[] = {"occupancy", "valve", "patrol-checkin", "handover"};
    cJSON *json = cJSON_CreateObject();
    cJSON *wo = cJSON_AddObjectToObject(json, "workorder");
    for (size_t i = 0; i < sizeof wo_actions / sizeof wo_actions[0]; i++)
        cJSON_AddBoolToObject(wo, wo_actions[i],
                              gw_commands_role_allows(role, "workorder", wo_actions[i]));
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        cJSON_AddBoolToObject(json, verbs[i], gw_commands_role_allows(role, verbs[i], NULL));
    return json;
}

static enum MHD_Result route_me(struct api_request *req)
{
    const struct gw_config *config = req->http->config;
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "user", req->who.user);
    cJSON_AddStringToObject(json, "role", req->who.role);
    gw_json_add_ts_if(json, "expires", req->who.expires_ms);
    cJSON_AddStringToObject(json, "language",
                            config->gateway.language == GW_LANG_EN ? "en" : "zh-CN");
    cJSON_AddStringToObject(json, "site", config->gateway.site);
    cJSON_AddStringToObject(json, "gateway", config->gateway.id);
    cJSON_AddStringToObject(json, "version", ESTATE_VERSION);
    cJSON_AddNumberToObject(json, "arrive_within_s", config->workorders.arrive_within_s);
    cJSON_AddNumberToObject(json, "resolve_within_s", config->workorders.resolve_within_s);
    gw_json_add_ts_if(json, "now", now_ms(req->http));
    cJSON_AddItemToObject(json, "permissions", permissions_json(req->who.role));
    return send_json(req->conn, MHD_HTTP_OK, json);
}

/* ------------------------------------------------------------------ */
/* Routes: reads                                                       */
/* ------------------------------------------------------------------ */

/* A read route's body: fills result from a read-only store. Returns an
 * HTTP status; on error *message says why. */
typedef unsigned (*read_fn)(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message);

static enum MHD_Result with_store(struct api_request *req, read_fn fn)
{
    size_t slot = 0;
    struct gw_store *store = store_acquire(req->http, &slot);
    if (!store)
        return send_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the database is not available");
    cJSON *result = cJSON_CreateObject();
    const char *message = "the database failed";
    unsigned status = fn(req, store, result, &message);
    store_release(req->http, slot);
    if (status != MHD_HTTP_OK) {
        cJSON_Delete(result);
        return send_error(req->conn, status, "%s", message);
    }
    return send_json(req->conn, status, result);
}

static cJSON *incident_json(const struct gw_store_incident *in)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "id", (double)in->id);
    cJSON_AddStringToObject(json, "rule", in->rule);
    cJSON_AddStringToObject(json, "severity", in->severity);
    cJSON_AddStringToObject(json, "state", in->open ? "active" : "cleared");
    cJSON_AddStringToObject(json, "subject_type", in->subject_type);
    cJSON_AddStringToObject(json, "subject", in->subject);
    if (strcmp(in->subject_type, "meter") == 0 || strcmp(in->subject_type, "unit") == 0)
        cJSON_AddStringToObject(json, in->subject_type, in->subject);
    else
        cJSON_AddStringToObject(json, "panel", in->subject);
    if (in->zone >= 0)
        cJSON_AddNumberToObject(json, "zone", in->zone);
    gw_json_add_ts_if(json, "since", in->since_ms);
    gw_json_add_ts_if(json, "raised", in->raised_ms);
    gw_json_add_ts_if(json, "updated", in->updated_ms);
    gw_json_add_ts_if(json, "cleared", in->cleared_ms);
    gw_json_add_string_if(json, "text", in->text);
    add_raw_json(json, "detail", in->detail_json);
    gw_json_add_string_if(json, "confirmed_by", in->confirmed_by);
    gw_json_add_ts_if(json, "confirmed", in->confirmed_ms);
    gw_json_add_string_if(json, "disputed_by", in->disputed_by);
    gw_json_add_ts_if(json, "disputed", in->disputed_ms);
    return json;
}

static bool collect_incident(void *ctx, const struct gw_store_incident *in)
{
    cJSON_InsertItemInArray(ctx, 0, incident_json(in)); /* newest first */
    return true;
}

static unsigned read_alerts(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    const char *state = query(req, "state");
    if (state && strcmp(state, "active") != 0) {
        *message = "state must be \"active\"";
        return MHD_HTTP_BAD_REQUEST;
    }
    cJSON *alerts = cJSON_AddArrayToObject(result, "alerts");
    return gw_store_incidents_open(store, collect_incident, alerts) == EST_OK
               ? MHD_HTTP_OK
               : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static const char *const workorder_states[] = {"open",      "dispatched", "on_site",
                                               "completed", "verified",   "cancelled"};

struct id_list {
    int64_t *ids;
    size_t count, cap;
};

static bool collect_workorder_id(void *ctx, const struct gw_store_workorder *wo)
{
    struct id_list *list = ctx;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        int64_t *ids = realloc(list->ids, cap * sizeof *ids);
        if (!ids)
            return false;
        list->ids = ids;
        list->cap = cap;
    }
    list->ids[list->count++] = wo->id;
    return true;
}

/* Parses ?state=a,b (names or "active" = not closed) into states. */
static bool parse_state_filter(const char *text, const char **states, size_t *nstates)
{
    *nstates = 0;
    if (!text || !*text || strcmp(text, "all") == 0)
        return true;
    if (strcmp(text, "active") == 0) {
        for (size_t i = 0; i < 4; i++)
            states[(*nstates)++] = workorder_states[i];
        return true;
    }
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < 6; i++) {
            if (strlen(workorder_states[i]) == len && strncmp(p, workorder_states[i], len) == 0) {
                bool dup = false;
                for (size_t k = 0; k < *nstates; k++)
                    dup |= states[k] == workorder_states[i];
                if (!dup)
                    states[(*nstates)++] = workorder_states[i];
                known = true;
            }
        }
        if (!known)
            return false;
        p += len;
        if (*p == ',')
            p++;
    }
    return *nstates > 0;
}

static unsigned read_workorders(struct api_request *req, struct gw_store *store, cJSON *result,
                                const char **message)
{
    const char *states[6];
    size_t nstates = 0;
    if (!parse_state_filter(query(req, "state"), states, &nstates)) {
        *message = "state must be active, all or a comma list of open, dispatched, on_site, "
                   "completed, verified, cancelled";
        return MHD_HTTP_BAD_REQUEST;
    }
    struct id_list list = {0};
    if (gw_store_workorders_list(store, states, nstates, collect_workorder_id, &list) != EST_OK) {
        free(list.ids);
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    cJSON *orders = cJSON_AddArrayToObject(result, "workorders");
    for (size_t i = list.count; i-- > 0;) { /* newest first */
        cJSON *wo = gw_workorder_json(store, list.ids[i]);
        if (wo)
            cJSON_AddItemToArray(orders, wo);
    }
    free(list.ids);
    gw_json_add_ts_if(result, "now", now_ms(req->http));
    return MHD_HTTP_OK;
}

static unsigned read_workorder(struct api_request *req, struct gw_store *store, cJSON *result,
                               const char **message)
{
    int64_t id = parse_id(req->seg[1]);
    cJSON *wo = id ? gw_workorder_json(store, id) : NULL;
    if (!wo) {
        *message = "no such work order";
        return MHD_HTTP_NOT_FOUND;
    }
    cJSON_AddItemToObject(result, "workorder", wo);
    gw_json_add_ts_if(result, "now", now_ms(req->http));
    return MHD_HTTP_OK;
}

static bool collect_meter(void *ctx, const struct gw_store_meter *m)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "id", m->id);
    gw_json_add_string_if(json, "kind", m->kind);
    gw_json_add_string_if(json, "category", m->category);
    gw_json_add_string_if(json, "unit", m->unit);
    gw_json_add_string_if(json, "building", m->building);
    gw_json_add_string_if(json, "location", m->location);
    gw_json_add_string_if(json, "driver", m->driver);
    gw_json_add_string_if(json, "bus", m->bus);
    cJSON_AddNumberToObject(json, "slave", m->slave);
    gw_json_add_string_if(json, "serial", m->serial);
    gw_json_add_string_if(json, "parent", m->parent);
    cJSON_AddBoolToObject(json, "valve", m->valve);
    gw_json_add_string_if(json, "status", m->status);
    gw_json_add_ts_if(json, "last_good", m->last_good_ms);
    add_raw_json(json, "values", m->last_values_json);
    cJSON_AddBoolToObject(json, "removed", m->removed);
    cJSON_AddItemToArray(ctx, json);
    return true;
}

static unsigned read_meters(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    cJSON *meters = cJSON_AddArrayToObject(result, "meters");
    gw_json_add_ts_if(result, "now", now_ms(req->http));
    return gw_store_meters_list(store, collect_meter, meters) == EST_OK
               ? MHD_HTTP_OK
               : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

struct history_ctx {
    cJSON *rows;                /* every good row, thinned afterwards */
    size_t count;
};

static bool collect_history(void *ctx, const struct gw_store_reading_row *row)
{
    struct history_ctx *h = ctx;
    if (row->quality != GW_STORE_GOOD)
        return true;
    cJSON *point = cJSON_CreateObject();
    gw_json_add_ts_if(point, "ts", row->ts_ms);
    add_number_if(point, "energy_import_kwh", row->values.energy_import_kwh);
    add_number_if(point, "energy_export_kwh", row->values.energy_export_kwh);
    add_number_if(point, "power_w", row->values.power_w);
    add_number_if(point, "volume_m3", row->values.volume_m3);
    add_number_if(point, "flow_m3h", row->values.flow_m3h);
    cJSON_AddItemToArray(h->rows, point);
    h->count++;
    return true;
}

/* Moves every step-th row (and the last) of rows into points. */
static void thin_points(cJSON *rows, size_t count, cJSON *points)
{
    size_t step = count > HISTORY_POINTS_MAX ? (count + HISTORY_POINTS_MAX - 1) / HISTORY_POINTS_MAX
                                             : 1;
    size_t i = 0;
    for (cJSON *row = rows->child; row; row = row->next, i++) {
        if (i % step == 0 || !row->next)
            cJSON_AddItemToArray(points, cJSON_Duplicate(row, true));
    }
}

static unsigned read_meter_history(struct api_request *req, struct gw_store *store,
                                   cJSON *result, const char **message)
{
    int64_t rid = 0, now = now_ms(req->http);
    int64_t since = now - 24 * 3600 * 1000LL, until = now + 60000;
    const char *since_text = query(req, "since"), *until_text = query(req, "until");
    if ((since_text && !parse_time_param(since_text, &since)) ||
        (until_text && !parse_time_param(until_text, &until)) || since >= until) {
        *message = "since/until must be ms since the epoch or RFC 3339, since before until";
        return MHD_HTTP_BAD_REQUEST;
    }
    est_err err = gw_store_meter_rowid(store, req->seg[1], &rid);
    if (err == EST_ERR_NOTFOUND) {
        *message = "no such meter";
        return MHD_HTTP_NOT_FOUND;
    }
    if (err)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    struct history_ctx h = {cJSON_CreateArray(), 0};
    err = gw_store_readings_history(store, rid, since, until, HISTORY_ROWS_MAX, collect_history, &h);
    cJSON_AddStringToObject(result, "meter", req->seg[1]);
    gw_json_add_ts_if(result, "since", since);
    gw_json_add_ts_if(result, "until", until);
    thin_points(h.rows, h.count, cJSON_AddArrayToObject(result, "points"));
    cJSON_Delete(h.rows);
    return err == EST_OK ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static bool collect_unit(void *ctx, const struct gw_store_unit *u)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "id", u->id);
    gw_json_add_string_if(json, "building", u->building);
    cJSON_AddStringToObject(json, "occupancy", u->vacant ? "vacant" : "occupied");
    gw_json_add_ts_if(json, "changed", u->occupancy_changed_ms);
    gw_json_add_string_if(json, "changed_by", u->occupancy_by);
    cJSON_AddBoolToObject(json, "removed", u->removed);
    cJSON_AddItemToArray(ctx, json);
    return true;
}

static unsigned read_units(struct api_request *req, struct gw_store *store, cJSON *result,
                           const char **message)
{
    cJSON *units = cJSON_AddArrayToObject(result, "units");
    return gw_store_units_list(store, collect_unit, units) == EST_OK
               ? MHD_HTTP_OK
               : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

struct patrol_ctx {
    cJSON *entries;
    const char *needle;         /* ?q= filter, NULL = all */
};

static bool collect_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_ctx *p = ctx;
    if (p->needle && !strstr(e->text, p->needle) && !strstr(e->author, p->needle) &&
        !strstr(e->kind, p->needle))
        return true;
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "seq", (double)e->seq);
    gw_json_add_ts_if(json, "ts", e->ts_ms);
    cJSON_AddStringToObject(json, "kind", e->kind);
    cJSON_AddStringToObject(json, "text", e->text);
    if (e->incident)
        cJSON_AddNumberToObject(json, "incident", (double)e->incident);
    if (e->workorder)
        cJSON_AddNumberToObject(json, "workorder", (double)e->workorder);
    cJSON_AddStringToObject(json, "author", e->author);
    if (e->detail_json)
        add_raw_json(json, "detail", e->detail_json);
    cJSON_AddStringToObject(json, "hash", e->hash);
    cJSON_AddStringToObject(json, "prev_hash", e->prev_hash);
    cJSON_AddItemToArray(p->entries, json);
    return true;
}

static unsigned read_patrol(struct api_request *req, struct gw_store *store, cJSON *result,
                            const char **message)
{
    int64_t since = -1, limit = PATROL_LIMIT_DEFAULT;
    const char *since_text = query(req, "since"), *limit_text = query(req, "limit");
    if ((since_text && (since = strcmp(since_text, "0") == 0 ? 0 : parse_id(since_text)) == 0 &&
         strcmp(since_text, "0") != 0) ||
        (limit_text && ((limit = parse_id(limit_text)) == 0 || limit > PATROL_LIMIT_MAX))) {
        *message = "since must be a sequence number, limit 1..2000";
        return MHD_HTTP_BAD_REQUEST;
    }
    int64_t head = 0;
    char head_hash[GW_STORE_HASH_LEN];
    if (gw_store_patrol_head(store, &head, head_hash) != EST_OK)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    if (since < 0) /* the newest entries by default */
        since = head > limit ? head - limit : 0;
    const char *needle = query(req, "q");
    struct patrol_ctx p = {cJSON_AddArrayToObject(result, "entries"),
                           needle && *needle ? needle : NULL};
    cJSON_AddNumberToObject(result, "head", (double)head);
    return gw_store_patrol_list(store, since, (size_t)limit, collect_patrol, &p) == EST_OK
               ? MHD_HTTP_OK
               : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static unsigned read_patrol_verify(struct api_request *req, struct gw_store *store, cJSON *result,
                                   const char **message)
{
    struct gw_store_patrol_verify v;
    memset(&v, 0, sizeof v);
    if (gw_store_patrol_verify(store, &v) != EST_OK)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    cJSON_AddBoolToObject(result, "intact", v.first_bad_seq == 0);
    if (v.first_bad_seq) {
        cJSON_AddNumberToObject(result, "first_bad_seq", (double)v.first_bad_seq);
        gw_json_add_string_if(result, "problem", v.problem);
    }
    cJSON_AddNumberToObject(result, "count", (double)v.count);
    cJSON_AddNumberToObject(result, "head_seq", (double)v.head_seq);
    cJSON_AddStringToObject(result, "head_hash", v.head_hash);
    cJSON_AddNumberToObject(result, "anchors", (double)v.anchors);
    gw_json_add_ts_if(result, "checked", now_ms(req->http));
    return MHD_HTTP_OK;
}

static unsigned read_handover(struct api_request *req, struct gw_store *store, cJSON *result,
                              const char **message)
{
    cJSON *summary = gw_handover_summary_from(store, req->http->config, now_ms(req->http));
    if (!summary)
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    cJSON_AddItemToObject(result, "handover", summary);
    return MHD_HTTP_OK;
}

static enum MHD_Result route_alerts(struct api_request *req) { return with_store(req, read_alerts); }
static enum MHD_Result route_workorders(struct api_request *req) { return with_store(req, read_workorders); }
static enum MHD_Result route_workorder(struct api_request *req) { return with_store(req, read_workorder); }
static enum MHD_Result route_meters(struct api_request *req) { return with_store(req, read_meters); }
static enum MHD_Result route_meter_history(struct api_request *req) { return with_store(req, read_meter_history); }
static enum MHD_Result route_units(struct api_request *req) { return with_store(req, read_units); }
static enum MHD_Result route_patrol(struct api_request *req) { return with_store(req, read_patrol); }
static enum MHD_Result route_patrol_verify(struct api_request *req) { return with_store(req, read_patrol_verify); }
static enum MHD_Result route_handover(struct api_request *req) { return with_store(req, read_handover); }

/* ------------------------------------------------------------------ */
/* Routes: actions                                                     */
/* ------------------------------------------------------------------ */

static const char *const workorder_actions[] = {"dispatch", "arrive", "complete", "verify", "close",
                                                "cancel",   "postpone", "note",   "rating"};

static enum MHD_Result route_workorder_action(struct api_request *req)
{
    int64_t id = parse_id(req->seg[1]);
    const char *action = NULL;
    for (size_t i = 0; i < sizeof workorder_actions / sizeof workorder_actions[0]; i++)
        if (strcmp(req->seg[2], workorder_actions[i]) == 0)
            action = workorder_actions[i];
    if (!id || !action)
        return send_error(req->conn, MHD_HTTP_NOT_FOUND, "no such work order or action");
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "id", (double)id);
    return act(req, "workorder", action, extra);
}

static enum MHD_Result route_workorder_create(struct api_request *req)
{
    return act(req, "workorder", "create", NULL);
}

static enum MHD_Result route_occupancy(struct api_request *req)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "unit", req->seg[1]);
    return act(req, "occupancy", NULL, extra);
}

static enum MHD_Result route_valve(struct api_request *req)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "meter", req->seg[1]);
    return act(req, "valve", NULL, extra);
}

static enum MHD_Result route_checkin(struct api_request *req)
{
    return act(req, "patrol-checkin", NULL, NULL);
}

static enum MHD_Result route_handover_post(struct api_request *req)
{
    return act(req, "handover", NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Routing                                                             */
/* ------------------------------------------------------------------ */

typedef enum MHD_Result (*route_fn)(struct api_request *req);

/* Path patterns are segments after /api/; "*" matches one segment. */
static const struct route {
    const char *method;
    const char *pattern;
    route_fn handle;
    bool anonymous;             /* login only */
} routes[] = {
    {"POST", "login", route_login, true},
    {"POST", "logout", route_logout, false},
    {"GET", "me", route_me, false},
    {"GET", "alerts", route_alerts, false},
    {"GET", "workorders", route_workorders, false},
    {"POST", "workorders", route_workorder_create, false},
    {"GET", "workorders/*", route_workorder, false},
    {"POST", "workorders/*/*", route_workorder_action, false},
    {"GET", "meters", route_meters, false},
    {"GET", "meters/*/history", route_meter_history, false},
    {"POST", "meters/*/valve", route_valve, false},
    {"GET", "units", route_units, false},
    {"POST", "units/*/occupancy", route_occupancy, false},
    {"GET", "patrol", route_patrol, false},
    {"GET", "patrol/verify", route_patrol_verify, false},
    {"POST", "patrol/checkin", route_checkin, false},
    {"GET", "handover", route_handover, false},
    {"POST", "handover", route_handover_post, false},
    {"GET", "events", route_events, false},
};

static bool pattern_matches(const char *pattern, const struct api_request *req)
{
    size_t n = 0;
    const char *p = pattern;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (n >= req->nseg)
            return false;
        bool wildcard = len == 1 && p[0] == '*';
        if (!wildcard && (strlen(req->seg[n]) != len || strncmp(p, req->seg[n], len) != 0))
            return false;
        n++;
        p += len;
        if (*p == '/')
            p++;
    }
    return n == req->nseg;
}

/* Splits the path after "/api/" into segments; false when too many or
 * too long (the route does not exist then). */
static bool split_path(const char *path, struct api_request *req)
{
    req->nseg = 0;
    while (*path) {
        size_t len = strcspn(path, "/");
        if (len == 0 || len > SEGMENT_MAX || req->nseg == SEGMENTS_MAX)
            return false;
        memcpy(req->seg[req->nseg], path, len);
        req->seg[req->nseg][len] = '\0';
        req->nseg++;
        path += len;
        if (*path == '/')
            path++;
    }
    return req->nseg > 0;
}

/* Whether the Origin header, when present, names this server. */
static bool origin_is_ours(struct MHD_Connection *conn)
{
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return true;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host)
        return false;
    const char *rest = strncmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                             : NULL;
    return rest && strcmp(rest, host) == 0;
}

/* Cross-site protection for a state-changing request (see the top). The
 * sign-in itself carries no session, so only its Origin is checked (a
 * foreign page cannot sign a browser in under another account). */
static bool same_site_request(struct MHD_Connection *conn, bool signing_in)
{
    if (signing_in)
        return origin_is_ours(conn);
    const char *marker = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, CSRF_HEADER);
    return marker && strcmp(marker, CSRF_VALUE) == 0 && origin_is_ours(conn);
}

static enum MHD_Result handle_api(struct gw_http *http, struct MHD_Connection *conn,
                                  const char *path, const char *method,
                                  const struct request_body *body)
{
    struct api_request *req = calloc(1, sizeof *req);
    if (!req)
        return MHD_NO;
    req->http = http;
    req->conn = conn;
    req->method = method;
    req->body = body;
    bool splits = split_path(path, req);
    const struct route *match = NULL;
    bool path_known = false;
    for (size_t i = 0; splits && i < sizeof routes / sizeof routes[0]; i++) {
        if (!pattern_matches(routes[i].pattern, req))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            match = &routes[i];
    }
    enum MHD_Result ret;
    bool anonymous = match && match->anonymous;
    bool changes_state = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    if (!anonymous && !authenticate(http, conn, &req->who))
        ret = send_error(conn, MHD_HTTP_UNAUTHORIZED, "sign in first");
    else if (!path_known)
        ret = send_error(conn, MHD_HTTP_NOT_FOUND, "no such route");
    else if (!match)
        ret = send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed on this route");
    else if (changes_state && (anonymous || req->who.by_cookie) && !same_site_request(conn, anonymous))
        ret = send_error(conn, MHD_HTTP_FORBIDDEN,
                         "cross-site request refused (send " CSRF_HEADER ": " CSRF_VALUE ")");
    else if (body->too_large)
        ret = send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %d bytes",
                         BODY_MAX);
    else
        ret = match->handle(req);
    OPENSSL_cleanse(req->who.token, sizeof req->who.token);
    free(req);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Static files                                                        */
/* ------------------------------------------------------------------ */

static const char *content_type_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},     {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},       {".svg", "image/svg+xml"},
        {".png", "image/png"},                     {".ico", "image/x-icon"},
        {".json", "application/json; charset=utf-8"}, {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Only plain names below the console directory: segments of
 * [A-Za-z0-9._-] that do not start with '.'. */
static bool static_path_safe(const char *path)
{
    if (path[0] != '/' || strlen(path) > 200)
        return false;
    bool segment_start = true;
    for (const char *p = path + 1; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (segment_start)
                return false;
            segment_start = true;
            continue;
        }
        if (segment_start && c == '.')
            return false;
        segment_start = false;
        if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static enum MHD_Result serve_static(struct gw_http *http, struct MHD_Connection *conn,
                                    const char *url, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
    const char *type = content_type_of(path);
    if (!static_path_safe(path) || !type)
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s%s", http->static_dir, path) >= sizeof full)
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    }
    struct MHD_Response *response = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!response) {
        close(fd);
        return MHD_NO;
    }
    add_common_headers(response);
    MHD_add_response_header(response, "Content-Type", type);
    MHD_add_response_header(response, "Cache-Control", "no-cache");
    MHD_add_response_header(response, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'self'");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return ret;
}

/* ------------------------------------------------------------------ */
/* libmicrohttpd glue                                                  */
/* ------------------------------------------------------------------ */

/* Keeps up to BODY_MAX bytes of the upload; false when the client sent so
 * much that the connection should be dropped. */
static bool take_upload(struct request_body *body, const char *data, size_t size)
{
    body->seen += size;
    if (body->seen > DRAIN_MAX)
        return false;
    if (body->too_large || body->len + size > BODY_MAX) {
        body->too_large = true;
        free(body->data);
        body->data = NULL;
        body->len = 0;
        return true;
    }
    char *grown = realloc(body->data, body->len + size + 1);
    if (!grown)
        return false;
    memcpy(grown + body->len, data, size);
    body->data = grown;
    body->len += size;
    body->data[body->len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct gw_http *http = cls;
    struct request_body *body = *con_cls;
    if (!body) {
        body = calloc(1, sizeof *body);
        if (!body)
            return MHD_NO;
        const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (length && strtoull(length, NULL, 10) > BODY_MAX)
            body->too_large = true;
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool keep = take_upload(body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    if (strncmp(url, "/api/", 5) == 0)
        return handle_api(http, conn, url + 5, method, body);
    if (strcmp(url, "/api") == 0)
        return handle_api(http, conn, "", method, body);
    return serve_static(http, conn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    struct request_body *body = *con_cls;
    if (body) {
        if (body->data)
            OPENSSL_cleanse(body->data, body->len); /* may hold a password */
        free(body->data);
        free(body);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's log callback: its format strings are its own. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char message[512];
    vsnprintf(message, sizeof message, fmt, ap);
    size_t len = strlen(message);
    while (len > 0 && message[len - 1] == '\n')
        message[--len] = '\0';
    gw_warn("http: %s", message);
}

static void on_users_problem(void *ctx, const char *message)
{
    (void)ctx;
    gw_warn("users: %s", message);
}

/* Resolves "host:port" ("[v6]:port" too) into addr. */
static est_err parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *len,
                            uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return EST_ERR_INVALID;
    char host[256];
    size_t host_len = (size_t)(colon - listen);
    if (listen[0] == '[' && host_len >= 2 && listen[host_len - 1] == ']') {
        listen++;
        host_len -= 2;
    }
    if (host_len >= sizeof host)
        return EST_ERR_INVALID;
    memcpy(host, listen, host_len);
    host[host_len] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *found = NULL;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &found) != 0 || !found)
        return EST_ERR_INVALID;
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    *port = ntohs(found->ai_family == AF_INET6 ? ((struct sockaddr_in6 *)found->ai_addr)->sin6_port
                                               : ((struct sockaddr_in *)found->ai_addr)->sin_port);
    freeaddrinfo(found);
    return EST_OK;
}

/* The console's files: http.static_dir, else the installed console when it
 * exists, else the source tree's. */
static char *pick_static_dir(const struct gw_config *config)
{
    if (config->http.static_dir && config->http.static_dir[0])
        return strdup(config->http.static_dir);
    struct stat st;
    if (stat(ESTATE_CONSOLE_DIR "/index.html", &st) == 0)
        return strdup(ESTATE_CONSOLE_DIR);
    return strdup(ESTATE_CONSOLE_SRC_DIR);
}

static void http_free(struct gw_http *http)
{
    for (size_t i = 0; i < EVENT_RING; i++)
        free(http->events[i].data);
    for (size_t i = 0; i < STORE_POOL; i++)
        gw_store_close(http->pool[i]);
    pthread_mutex_destroy(&http->sessions_lock);
    pthread_mutex_destroy(&http->throttle_lock);
    pthread_mutex_destroy(&http->events_lock);
    pthread_cond_destroy(&http->events_cond);
    pthread_mutex_destroy(&http->pool_lock);
    pthread_cond_destroy(&http->pool_cond);
    OPENSSL_cleanse(http->sessions, sizeof http->sessions);
    free(http->static_dir);
    free(http);
}

est_err gw_http_start(struct gw_core *core, struct gw_http **out)
{
    *out = NULL;
    const struct gw_config *config = core->config;
    if (!config->http.listen || !config->http.listen[0])
        return EST_OK;
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    uint16_t port = 0;
    if (parse_listen(config->http.listen, &addr, &addr_len, &port) != EST_OK) {
        gw_error("http: listen address \"%s\" is not HOST:PORT", config->http.listen);
        return EST_ERR_INVALID;
    }
    struct gw_http *http = calloc(1, sizeof *http);
    if (!http)
        return EST_ERR_NOMEM;
    http->core = core;
    http->config = config;
    http->next_event_id = 1;
    pthread_mutex_init(&http->sessions_lock, NULL);
    pthread_mutex_init(&http->throttle_lock, NULL);
    pthread_mutex_init(&http->events_lock, NULL);
    pthread_cond_init(&http->events_cond, NULL);
    pthread_mutex_init(&http->pool_lock, NULL);
    pthread_cond_init(&http->pool_cond, NULL);
    http->static_dir = pick_static_dir(config);
    if (!http->static_dir) {
        http_free(http);
        return EST_ERR_NOMEM;
    }
    gw_users_set_diag(on_users_problem);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    http->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, http, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, http,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, http, MHD_OPTION_END);
    if (!http->daemon) {
        gw_error("http: cannot listen on %s: %s", config->http.listen, strerror(errno));
        http_free(http);
        return EST_ERR_IO;
    }
    est_err err = gw_core_add_listener(core, on_core_event, http);
    if (err) {
        gw_error("http: no listener slot left in the core for live events");
        MHD_stop_daemon(http->daemon);
        http_free(http);
        return err;
    }
    if (gw_users_enabled_count(config) == 0)
        gw_warn("http: nobody can sign in yet: add users with estate-ctl user add");
    gw_info("http: console on http://%s/ (files from %s)", config->http.listen, http->static_dir);
    core->http = http;
    *out = http;
    return EST_OK;
}

void gw_http_stop(struct gw_http *http)
{
    if (!http)
        return;
    atomic_store(&http->stopping, true);
    pthread_mutex_lock(&http->events_lock);
    pthread_cond_broadcast(&http->events_cond);
    pthread_mutex_unlock(&http->events_lock);
    MHD_stop_daemon(http->daemon);
    if (http->core->http == http)
        http->core->http = NULL;
    http_free(http);
}
