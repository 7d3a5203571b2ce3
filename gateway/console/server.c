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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "console_internal.h"
#include "est_alloc.h"
#include "log.h"

#define DRAIN_MAX (1024 * 1024)       /* beyond this an oversize body closes the connection */
#define CONNECTION_LIMIT 64
#define PER_IP_CONNECTION_LIMIT 24
#define CONNECTION_TIMEOUT_S 60

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
        return console_handle_api(http, conn, url + 5, method, body);
    if (strcmp(url, "/api") == 0)
        return console_handle_api(http, conn, "", method, body);
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
    http->static_dir = pick_static_dir(host->config);
    if (!http->static_dir) {
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
        flags, port, NULL, NULL, on_request, http, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, http,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
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
    MHD_stop_daemon(http->daemon);
    http_free(http);
}
