/* server.c - the HTTP server: libmicrohttpd daemon, request bodies, responses, static files. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "console_internal.h"
#include "est_alloc.h"
#include "config.h"

#define DRAIN_MAX (1024 * 1024)       /* beyond this an oversize body closes the connection */
#define CONNECTION_TIMEOUT_S 60      /* inactivity of a response being sent */
#define WATCHDOG_INTERVAL_MS 200
#define SLOW_LOG_INTERVAL_MS 10000

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

void console_add_common_headers(struct MHD_Response *response, const char *content_type,
                                const char *cache_control)
{
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(response, "Content-Type", content_type);
    MHD_add_response_header(response, "Cache-Control", cache_control);
}

enum MHD_Result console_queue_response(struct MHD_Connection *conn, unsigned status,
                                       struct MHD_Response *response)
{
    enum MHD_Result ret = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return ret;
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
    console_add_common_headers(response, content_type, "no-store");
    if (extra_name)
        MHD_add_response_header(response, extra_name, extra_value);
    return console_queue_response(conn, status, response);
}

enum MHD_Result console_send_json_with(struct MHD_Connection *conn, unsigned status, cJSON *json,
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

enum MHD_Result console_send_json(struct MHD_Connection *conn, unsigned status, cJSON *json)
{
    return console_send_json_with(conn, status, json, NULL, NULL);
}

enum MHD_Result console_send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                   ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "error", message);
    return console_send_json(conn, status, json);
}

void console_client_address(struct MHD_Connection *conn, char *out, size_t size)
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
        return console_send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
    const char *type = content_type_of(path);
    if (!static_path_safe(path) || !type)
        return console_send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s%s", http->static_dir, path) >= sizeof full)
        return console_send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return console_send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
    }
    struct MHD_Response *response = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!response) {
        close(fd);
        return MHD_NO;
    }
    console_add_common_headers(response, type, "no-cache");
    MHD_add_response_header(response, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'self'");
    return console_queue_response(conn, MHD_HTTP_OK, response);
}

/* ------------------------------------------------------------------ */
/* Connection budgets and request deadlines                            */
/* ------------------------------------------------------------------ */

/* libmicrohttpd's own timeout counts inactivity, so a client trickling a
 * header line now and then would hold its connection for ever. Every
 * connection is tracked here from accept to close: a watchdog closes the
 * ones whose request head or body takes longer than its deadline, and the
 * accept policy keeps one address from taking more than its share. */

static struct tracked_conn *tracked(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

static void set_phase(struct gw_http *http, struct MHD_Connection *conn, enum conn_phase phase)
{
    struct tracked_conn *t = tracked(conn);
    if (!t)
        return;
    pthread_mutex_lock(&http->conns_lock);
    t->phase = phase;
    t->phase_since_ms = est_mono_ms();
    pthread_mutex_unlock(&http->conns_lock);
}

static void address_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    if (getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, size, "?");
}

/* Closes the connection under the server's feet: its thread sees the end of
 * the stream and libmicrohttpd cleans up. Caller holds conns_lock. */
static void close_tracked(struct tracked_conn *t)
{
    shutdown(t->fd, SHUT_RDWR);
    t->closing = true;
}

/* libmicrohttpd's accept policy: refuses an address over its budget; when
 * the server is full, makes room by closing the connection that has waited
 * longest for its request head (an idle keep-alive or a slow client). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addr_len)
{
    struct gw_http *http = cls;
    char address[sizeof http->conns[0].address];
    address_text(addr, addr_len, address, sizeof address);
    bool accept = true;
    size_t open = 0, from_address = 0, tracked_count = 0;
    struct tracked_conn *oldest_waiting = NULL;
    pthread_mutex_lock(&http->conns_lock);
    for (size_t i = 0; i < CONN_TRACK_MAX; i++) {
        struct tracked_conn *t = &http->conns[i];
        if (!t->in_use)
            continue;
        tracked_count++;
        if (t->closing)
            continue;
        open++;
        if (strcmp(t->address, address) == 0)
            from_address++;
        if (t->phase == CONN_HEAD &&
            (!oldest_waiting || t->phase_since_ms < oldest_waiting->phase_since_ms))
            oldest_waiting = t;
    }
    if (tracked_count >= CONN_TRACK_MAX || from_address >= CONN_PER_ADDRESS)
        accept = false;
    else if (open >= CONN_BUDGET && oldest_waiting)
        close_tracked(oldest_waiting);
    else if (open >= CONN_BUDGET)
        accept = false;
    pthread_mutex_unlock(&http->conns_lock);
    return accept ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct gw_http *http = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct tracked_conn *t = *socket_context;
        if (t) {
            pthread_mutex_lock(&http->conns_lock);
            memset(t, 0, sizeof *t);
            pthread_mutex_unlock(&http->conns_lock);
            *socket_context = NULL;
        }
        return;
    }
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char address[sizeof http->conns[0].address];
    console_client_address(conn, address, sizeof address);
    *socket_context = NULL;
    if (!fd)
        return;
    pthread_mutex_lock(&http->conns_lock);
    for (size_t i = 0; i < CONN_TRACK_MAX; i++) {
        struct tracked_conn *t = &http->conns[i];
        if (t->in_use)
            continue;
        *t = (struct tracked_conn){.in_use = true, .fd = fd->connect_fd, .phase = CONN_HEAD,
                                   .phase_since_ms = est_mono_ms()};
        snprintf(t->address, sizeof t->address, "%s", address);
        *socket_context = t;
        break;
    }
    pthread_mutex_unlock(&http->conns_lock);
}

/* Closes connections past their head or body deadline; the number closed. */
static size_t close_late_connections(struct gw_http *http)
{
    int64_t now = est_mono_ms();
    size_t closed = 0;
    pthread_mutex_lock(&http->conns_lock);
    for (size_t i = 0; i < CONN_TRACK_MAX; i++) {
        struct tracked_conn *t = &http->conns[i];
        if (!t->in_use || t->closing || t->phase == CONN_BUSY)
            continue;
        int64_t deadline = t->phase == CONN_HEAD ? HEAD_DEADLINE_MS : BODY_DEADLINE_MS;
        if (now - t->phase_since_ms > deadline) {
            close_tracked(t);
            closed++;
        }
    }
    pthread_mutex_unlock(&http->conns_lock);
    return closed;
}

static void *watchdog_main(void *arg)
{
    struct gw_http *http = arg;
    size_t closed = 0;
    int64_t last_log = 0;
    while (!atomic_load(&http->stopping)) {
        struct timespec pause = {0, WATCHDOG_INTERVAL_MS * 1000000L};
        nanosleep(&pause, NULL);
        closed += close_late_connections(http);
        int64_t now = est_mono_ms();
        if (closed && now - last_log >= SLOW_LOG_INTERVAL_MS) {
            gw_warn("http: closed %zu connection(s) that did not send their request within "
                    "%d s (head) or %d s (body)", closed, HEAD_DEADLINE_MS / 1000,
                    BODY_DEADLINE_MS / 1000);
            closed = 0;
            last_log = now;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Host names                                                          */
/* ------------------------------------------------------------------ */

static bool add_host(struct gw_http *http, const char *name, size_t len)
{
    if (len == 0)
        return true;
    char **grown = realloc(http->hosts, (http->nhosts + 1) * sizeof *grown);
    if (!grown)
        return false;
    http->hosts = grown;
    http->hosts[http->nhosts] = strndup(name, len);
    if (!http->hosts[http->nhosts])
        return false;
    http->nhosts++;
    return true;
}

/* The host part of "host:port" or "[v6]:port" (or of a bare host). */
static void host_part(const char *text, const char **start, size_t *len)
{
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        *start = text + 1;
        *len = close ? (size_t)(close - text - 1) : strlen(text + 1);
        return;
    }
    const char *colon = strchr(text, ':');
    if (colon && strchr(colon + 1, ':'))
        colon = NULL; /* a bare IPv6 address */
    *start = text;
    *len = colon ? (size_t)(colon - text) : strlen(text);
}

/* The names a request's Host may carry: http.hosts, the listen address and
 * the loopback names; none (any Host) when listening on every address
 * without http.hosts. */
static bool load_hosts(struct gw_http *http)
{
    const struct gw_config *config = http->config;
    const char *listen_host;
    size_t listen_len;
    host_part(config->http.listen, &listen_host, &listen_len);
    bool wildcard = listen_len == 0 || (listen_len == 7 && strncmp(listen_host, "0.0.0.0", 7) == 0) ||
                    (listen_len == 2 && strncmp(listen_host, "::", 2) == 0);
    const char *list = config->http.hosts ? config->http.hosts : "";
    if (wildcard && !list[0])
        return true;
    bool ok = add_host(http, "127.0.0.1", 9) && add_host(http, "localhost", 9) &&
              add_host(http, "::1", 3) && (wildcard || add_host(http, listen_host, listen_len));
    for (const char *p = list; ok && *p;) {
        size_t len = strcspn(p, ", \t");
        ok = add_host(http, p, len);
        p += len;
        p += strspn(p, ", \t");
    }
    return ok;
}

/* True when the request's Host names this server (or any Host goes). */
static bool host_allowed(const struct gw_http *http, struct MHD_Connection *conn)
{
    if (http->nhosts == 0)
        return true;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host)
        return false;
    const char *name;
    size_t len;
    host_part(host, &name, &len);
    for (size_t i = 0; i < http->nhosts; i++)
        if (strlen(http->hosts[i]) == len && strncasecmp(http->hosts[i], name, len) == 0)
            return true;
    return false;
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
        set_phase(http, conn, CONN_BODY);
        if (!host_allowed(http, conn)) {
            body->refused = true;
            return console_send_error(conn, MHD_HTTP_MISDIRECTED_REQUEST,
                                      "this server does not answer for that Host");
        }
        return MHD_YES;
    }
    if (body->refused) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool keep = take_upload(body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    set_phase(http, conn, CONN_BUSY);
    if (strncmp(url, "/api/", 5) == 0)
        return console_handle_api(http, conn, url + 5, method, body);
    if (strcmp(url, "/api") == 0)
        return console_handle_api(http, conn, "", method, body);
    if (strcmp(url, "/healthz") == 0)
        return console_serve_health(http, conn, method);
    if (strcmp(url, "/metrics") == 0)
        return console_serve_metrics(http, conn, method);
    return serve_static(http, conn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)code;
    set_phase(cls, conn, CONN_HEAD); /* a kept-alive connection waits for its next request */
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

/* The console's files: http.static_dir, else share/estate-gw/console beside
 * the executable (<exe>/../share/..., as installed; the build tree links it
 * to the source's assets), else the configured install location. */
#define CONSOLE_SUBDIR "share/estate-gw/console"
#define CONSOLE_EXE_LEVELS_SEARCHED 4

static char *console_dir_beside_executable(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int level = 0; level < CONSOLE_EXE_LEVELS_SEARCHED; level++) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = '\0';
        char *candidate = est_asprintf("%s/" CONSOLE_SUBDIR, exe);
        char *index = candidate ? est_asprintf("%s/index.html", candidate) : NULL;
        struct stat st;
        bool found = index != NULL && stat(index, &st) == 0;
        free(index);
        if (found)
            return candidate;
        free(candidate);
    }
    return NULL;
}

static char *pick_static_dir(const struct gw_config *config)
{
    if (config->http.static_dir && config->http.static_dir[0])
        return strdup(config->http.static_dir);
    char *beside = console_dir_beside_executable();
    if (beside != NULL)
        return beside;
    return strdup(ESTATE_CONSOLE_DIR);
}

static void http_free(struct gw_http *http)
{
    console_events_free(http);
    console_store_pool_close(http);
    pthread_mutex_destroy(&http->sessions_lock);
    pthread_mutex_destroy(&http->throttle_lock);
    pthread_mutex_destroy(&http->events_lock);
    pthread_cond_destroy(&http->events_cond);
    pthread_mutex_destroy(&http->pool_lock);
    pthread_cond_destroy(&http->pool_cond);
    pthread_mutex_destroy(&http->conns_lock);
    for (size_t i = 0; i < http->nhosts; i++)
        free(http->hosts[i]);
    free(http->hosts);
    OPENSSL_cleanse(http->sessions, sizeof http->sessions);
    free(http->static_dir);
    free(http);
}

/* The server's state before it listens; NULL when out of memory. */
static struct gw_http *http_create(const struct gw_console_host *host)
{
    struct gw_http *http = calloc(1, sizeof *http);
    if (!http)
        return NULL;
    http->host = *host;
    http->config = host->config;
    http->next_event_id = 1;
    pthread_mutex_init(&http->sessions_lock, NULL);
    pthread_mutex_init(&http->throttle_lock, NULL);
    pthread_mutex_init(&http->events_lock, NULL);
    pthread_cond_init(&http->events_cond, NULL);
    pthread_mutex_init(&http->pool_lock, NULL);
    pthread_cond_init(&http->pool_cond, NULL);
    pthread_mutex_init(&http->conns_lock, NULL);
    http->static_dir = pick_static_dir(host->config);
    if (!http->static_dir || !load_hosts(http)) {
        http_free(http);
        return NULL;
    }
    return http;
}

/* Starts libmicrohttpd on addr (one thread per connection). */
static struct MHD_Daemon *start_daemon(struct gw_http *http, struct sockaddr_storage *addr,
                                       uint16_t port)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, port, on_accept, http, on_request, http, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, http,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONN_TRACK_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONN_PER_ADDRESS,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, http, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, http, MHD_OPTION_END);
}

est_err gw_http_start(const struct gw_console_host *host, struct gw_http **out)
{
    *out = NULL;
    const struct gw_config *config = host->config;
    if (!config->http.listen || !config->http.listen[0])
        return EST_OK;
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    uint16_t port = 0;
    if (parse_listen(config->http.listen, &addr, &addr_len, &port) != EST_OK) {
        gw_error("http: listen address \"%s\" is not HOST:PORT", config->http.listen);
        return EST_ERR_INVALID;
    }
    struct gw_http *http = http_create(host);
    if (!http)
        return EST_ERR_NOMEM;
    gw_users_set_diag(on_users_problem);
    http->daemon = start_daemon(http, &addr, port);
    if (!http->daemon) {
        gw_error("http: cannot listen on %s: %s", config->http.listen, strerror(errno));
        http_free(http);
        return EST_ERR_IO;
    }
    est_err err = console_subscribe_events(http, console_on_core_event);
    if (err) {
        gw_error("http: no listener slot left in the core for live events");
        MHD_stop_daemon(http->daemon);
        http_free(http);
        return err;
    }
    http->watchdog_started = pthread_create(&http->watchdog, NULL, watchdog_main, http) == 0;
    if (!http->watchdog_started)
        gw_warn("http: no watchdog thread: slow requests are not cut off");
    if (http->nhosts == 0)
        gw_warn("http: listening on every address without http.hosts: any Host header is "
                "answered (set http.hosts to the names the console is reached by)");
    if (gw_users_enabled_count(config) == 0)
        gw_warn("http: nobody can sign in yet: add users with estate-ctl user add");
    gw_info("http: console on http://%s/ (files from %s)", config->http.listen, http->static_dir);
    *out = http;
    return EST_OK;
}

void gw_http_stop(struct gw_http *http)
{
    if (!http)
        return;
    atomic_store(&http->stopping, true);
    console_events_wake_all(http);
    if (http->watchdog_started)
        pthread_join(http->watchdog, NULL);
    MHD_stop_daemon(http->daemon);
    http_free(http);
}
