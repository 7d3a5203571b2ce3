/* console_internal.h - what the console's files share: the server state,
 * one request being handled, and each part's functions (server.c,
 * console_host.c, store_pool.c, sessions.c, events.c, routes*.c).
 *
 * Security model, in the order every API request is checked (routes.c):
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
 * changes state. Logins are throttled per (user, client address) and per
 * client address with a growing lockout window, so guessing cannot lock a
 * user out of the other addresses they use; a locked-out login is answered
 * at once with 429 and Retry-After (the server thread never sleeps).
 *
 * Before any of that (server.c): a Host the console does not answer for
 * gets 421; connections are budgeted per address and in all, and a request
 * whose head or body takes too long is cut off; each account's sessions
 * and live streams are capped, so one account cannot push others out.
 *
 * The console never sees the core: the daemon hands it a struct
 * gw_console_host, used only in console_host.c. Functions shared between the files
 * are named console_*, the API's handlers route_*; the rest is static. */
#ifndef GW_CONSOLE_INTERNAL_H
#define GW_CONSOLE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "config.h"
#include "console.h"
#include "store.h"
#include "office.h"

#define BODY_MAX (64 * 1024)          /* larger request bodies get 413 */

#define TOKEN_BYTES 32
#define TOKEN_HEX (2 * TOKEN_BYTES)
#define SESSION_MAX 1024
#define SESSION_COOKIE "estate_session"

#define SESSIONS_PER_USER 32         /* a user's oldest session goes when they open one more */

#define THROTTLE_SLOTS 512            /* per table: (user, address) pairs, addresses */

/* Connection budgets (server.c): past them a new connection is refused,
 * or, when the whole server is full, the oldest connection still waiting
 * for its request head is closed to make room. */
#define CONN_TRACK_MAX 256            /* libmicrohttpd's hard limit */
#define CONN_BUDGET 128               /* connections kept open at once */
#define CONN_PER_ADDRESS 16           /* connections from one address */
#define HEAD_DEADLINE_MS 10000        /* a request's line and headers, whole */
#define BODY_DEADLINE_MS 30000        /* a request's body, whole */

/* Live event streams (events.c): a stream holds a connection for hours. */
#define SSE_PER_SESSION 4
#define SSE_PER_USER 8
#define SSE_TOTAL 48                  /* well below CONN_BUDGET */

#define EVENT_RING 512                /* live events kept for Last-Event-ID resume */

#define STORE_POOL 4                  /* read-only store connections */
#define SEGMENT_MAX 64                /* bytes of one API path segment */
#define SEGMENTS_MAX 5

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

struct session {
    char token[TOKEN_HEX + 1];  /* "" = free slot */
    char user[GW_USERS_NAME_MAX + 1];
    int64_t expires_ms;         /* wall clock */
};

struct throttle_slot {
    char key[GW_USERS_NAME_MAX + INET6_ADDRSTRLEN + 16]; /* "<name>@<address>" or "<address>"; "" = free */
    unsigned failures;
    int64_t last_failure_ms;    /* monotonic */
    int64_t locked_until_ms;    /* monotonic */
};

/* Where a connection is in its request; deadlines apply to HEAD and BODY. */
enum conn_phase { CONN_HEAD, CONN_BODY, CONN_BUSY };

/* One open connection, as server.c tracks it (under conns_lock). */
struct tracked_conn {
    bool in_use;
    int fd;
    char address[INET6_ADDRSTRLEN + 8];
    enum conn_phase phase;
    int64_t phase_since_ms;     /* monotonic */
    bool closing;               /* shut down by the server, not yet closed */
};

/* One open event stream, counted against its session and user. */
struct stream_slot {
    bool in_use;
    char token[TOKEN_HEX + 1];
    char user[GW_USERS_NAME_MAX + 1];
};

struct live_event {
    uint64_t id;
    char name[24];              /* SSE event name: "alert", "workorder", ... */
    char *data;                 /* JSON */
};

struct gw_http {
    struct gw_console_host host; /* the daemon, seen through console_host.c */
    const struct gw_config *config;
    struct MHD_Daemon *daemon;
    char *static_dir;
    atomic_bool stopping;
    atomic_uint_fast64_t request_seq;

    pthread_mutex_t sessions_lock;
    struct session sessions[SESSION_MAX];

    pthread_mutex_t throttle_lock;
    struct throttle_slot throttle_pairs[THROTTLE_SLOTS];     /* "<name>@<address>" */
    struct throttle_slot throttle_addresses[THROTTLE_SLOTS]; /* "<address>" */

    pthread_mutex_t conns_lock;
    struct tracked_conn conns[CONN_TRACK_MAX];
    pthread_t watchdog;
    bool watchdog_started;
    char **hosts;               /* accepted Host names (without port); NULL = any */
    size_t nhosts;

    struct stream_slot streams[SSE_TOTAL]; /* under events_lock */

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
    bool refused;               /* answered before the body (wrong Host) */
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

/* A route's handler: answers the request (the checks above have passed). */
typedef enum MHD_Result (*route_fn)(struct api_request *req);

/* ------------------------------------------------------------------ */
/* console_host.c: the core, seen through a few calls                  */
/* ------------------------------------------------------------------ */

/* Runs verb with args_json (an object) on the core thread as user/role from
 * the console; the result JSON (malloc'd) or NULL when it did not answer
 * within timeout_ms. */
char *console_call_command(struct gw_http *http, const char *verb, const char *args_json,
                           const char *user, const char *role, int timeout_ms);
/* Registers fn(http, ...) for every daemon event; before the daemon runs. */
est_err console_subscribe_events(struct gw_http *http, gw_console_event_fn fn);
/* The daemon's wall clock (replaceable in tests), ms since the epoch. */
int64_t console_now_ms(const struct gw_http *http);
/* The config to show records with now (the host's current one after a
 * reload; the console's own settings stay those of http->config). Take it
 * once per request. */
const struct gw_config *console_records_config(const struct gw_http *http);

/* ------------------------------------------------------------------ */
/* server.c: responses and connection details                          */
/* ------------------------------------------------------------------ */

/* Adds the headers every answer carries, with its type and caching. */
void console_add_common_headers(struct MHD_Response *response, const char *content_type,
                                const char *cache_control);
/* Queues response with status and drops our reference to it. */
enum MHD_Result console_queue_response(struct MHD_Connection *conn, unsigned status,
                                       struct MHD_Response *response);
/* Sends json (consumed) with status, plus one optional extra header. */
enum MHD_Result console_send_json_with(struct MHD_Connection *conn, unsigned status, cJSON *json,
                                       const char *extra_name, const char *extra_value);
enum MHD_Result console_send_json(struct MHD_Connection *conn, unsigned status, cJSON *json);
/* Sends {"error": message} with status. */
enum MHD_Result console_send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));
/* The client's address as text ("?" when unknown). */
void console_client_address(struct MHD_Connection *conn, char *out, size_t size);

/* ------------------------------------------------------------------ */
/* store_pool.c: read-only store connections for the reads             */
/* ------------------------------------------------------------------ */

/* A read-only store connection for this thread's exclusive use until
 * console_store_release(); NULL when the database cannot be opened. */
struct gw_store *console_store_acquire(struct gw_http *http, size_t *slot);
void console_store_release(struct gw_http *http, size_t slot);
void console_store_pool_close(struct gw_http *http);

/* ------------------------------------------------------------------ */
/* sessions.c: sign-in, sessions, throttling                           */
/* ------------------------------------------------------------------ */

/* Fills who from the request's token; false when there is no valid
 * session or its user was disabled or removed since sign-in (the role is
 * looked up again, so a changed role applies at once). */
/* The daemon's health JSON and metrics text (malloc'd; NULL when it did not
 * answer in timeout_ms or gives none), through the host. */
char *console_host_health(const struct gw_http *http, int timeout_ms);
char *console_host_metrics(const struct gw_http *http, int timeout_ms);

/* GET /healthz (anyone) and GET /metrics (as http.metrics allows), outside
 * /api/ (routes_metrics.c). */
enum MHD_Result console_serve_health(struct gw_http *http, struct MHD_Connection *conn,
                                     const char *method);
enum MHD_Result console_serve_metrics(struct gw_http *http, struct MHD_Connection *conn,
                                      const char *method);

bool console_authenticate(struct gw_http *http, struct MHD_Connection *conn, struct caller *who);
bool console_session_still_valid(struct gw_http *http, const char *token);
/* The caller's user, role, expiry and the console language; with_token
 * the session token first. */
cJSON *console_caller_json(const struct api_request *req, bool with_token);
/* POST /api/login and /api/logout. */
enum MHD_Result route_login(struct api_request *req);
enum MHD_Result route_logout(struct api_request *req);

/* ------------------------------------------------------------------ */
/* events.c: the live event ring and its streams                       */
/* ------------------------------------------------------------------ */

/* Core listener (core thread): copies the event into the ring. */
void console_on_core_event(void *ctx, const char *kind, const char *payload);
/* Ends every waiting stream (http->stopping is set). */
void console_events_wake_all(struct gw_http *http);
void console_events_free(struct gw_http *http);
/* GET /api/events. */
enum MHD_Result route_events(struct api_request *req);

/* ------------------------------------------------------------------ */
/* routes.c: the API table and its dispatch                            */
/* ------------------------------------------------------------------ */

/* Answers a request for /api/<path>. */
enum MHD_Result console_handle_api(struct gw_http *http, struct MHD_Connection *conn,
                                   const char *path, const char *method,
                                   const struct request_body *body);
/* The body as a JSON object (a new one when the body is empty); NULL
 * when malformed. */
cJSON *console_parse_body_object(const struct api_request *req);
/* Parses a positive decimal id (at most 15 digits); 0 when malformed. */
int64_t console_parse_id(const char *text);
const char *console_query(const struct api_request *req, const char *name);

/* routes_read.c: GET routes answered from a read-only store. */
enum MHD_Result route_me(struct api_request *req);
enum MHD_Result route_alerts(struct api_request *req);
enum MHD_Result route_workorders(struct api_request *req);
enum MHD_Result route_workorder(struct api_request *req);
enum MHD_Result route_meters(struct api_request *req);
enum MHD_Result route_meter_history(struct api_request *req);
enum MHD_Result route_units(struct api_request *req);
enum MHD_Result route_engineers(struct api_request *req);
enum MHD_Result route_alert_ack(struct api_request *req);
enum MHD_Result route_patrol(struct api_request *req);
enum MHD_Result route_patrol_verify(struct api_request *req);
enum MHD_Result route_handover(struct api_request *req);

/* routes_act.c: POST routes handed to the core as commands. */
enum MHD_Result route_workorder_create(struct api_request *req);
enum MHD_Result route_workorder_action(struct api_request *req);
enum MHD_Result route_occupancy(struct api_request *req);
enum MHD_Result route_valve(struct api_request *req);
enum MHD_Result route_checkin(struct api_request *req);
enum MHD_Result route_handover_post(struct api_request *req);

#endif
