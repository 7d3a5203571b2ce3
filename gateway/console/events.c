/* events.c - live events: the ring the core listener fills, read by the SSE streams. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "console_internal.h"

#define EVENT_PAYLOAD_MAX (256 * 1024)
#define SSE_KEEPALIVE_MS 15000
#define SSE_PEER_CHECK_MS 250         /* how soon a stream sees its client gone */

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

void console_on_core_event(void *ctx, const char *kind, const char *payload)
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
    struct stream_slot *slot;   /* its place in http->streams */
    int fd;                     /* the connection's socket, watched for the client leaving */
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

/* True when the client has closed its end (or the socket failed). */
static bool peer_gone(int fd)
{
    if (fd < 0)
        return false;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits (up to the keep-alive interval) for something to send; NULL when
 * the client left meanwhile. */
static char *wait_for_stream_text(struct sse_stream *stream)
{
    struct gw_http *http = stream->http;
    char *text = NULL;
    pthread_mutex_lock(&http->events_lock);
    while (!text && !atomic_load(&http->stopping)) {
        text = next_event_text(stream);
        if (text)
            break;
        if (peer_gone(stream->fd))
            break;
        int64_t wait = stream->last_send_ms + SSE_KEEPALIVE_MS - est_mono_ms();
        if (wait <= 0) {
            text = strdup(": keep-alive\n\n");
            break;
        }
        if (wait > SSE_PEER_CHECK_MS)
            wait = SSE_PEER_CHECK_MS;
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
            !console_session_still_valid(stream->http, stream->token))
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
    if (stream->slot) {
        pthread_mutex_lock(&stream->http->events_lock);
        memset(stream->slot, 0, sizeof *stream->slot);
        pthread_mutex_unlock(&stream->http->events_lock);
    }
    free(stream->pending);
    free(stream);
}

/* A stream slot for the caller, or NULL with *why when their session, their
 * user or the server has as many streams as it may. */
static struct stream_slot *take_stream_slot(struct gw_http *http, const struct caller *who,
                                            const char **why)
{
    struct stream_slot *free_slot = NULL;
    size_t by_session = 0, by_user = 0;
    pthread_mutex_lock(&http->events_lock);
    for (size_t i = 0; i < SSE_TOTAL; i++) {
        struct stream_slot *s = &http->streams[i];
        if (!s->in_use) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        by_session += strcmp(s->token, who->token) == 0;
        by_user += strcmp(s->user, who->user) == 0;
    }
    *why = by_session >= SSE_PER_SESSION ? "this session has as many live streams as it may"
           : by_user >= SSE_PER_USER     ? "this user has as many live streams as they may"
           : !free_slot                  ? "the server has as many live streams as it may"
                                         : NULL;
    if (!*why) {
        free_slot->in_use = true;
        snprintf(free_slot->token, sizeof free_slot->token, "%s", who->token);
        snprintf(free_slot->user, sizeof free_slot->user, "%s", who->user);
    }
    pthread_mutex_unlock(&http->events_lock);
    return *why ? NULL : free_slot;
}

enum MHD_Result route_events(struct api_request *req)
{
    struct gw_http *http = req->http;
    const char *why = NULL;
    struct stream_slot *slot = take_stream_slot(http, &req->who, &why);
    if (!slot) {
        cJSON *json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "error", why);
        return console_send_json_with(req->conn, MHD_HTTP_TOO_MANY_REQUESTS, json, "Retry-After",
                                      "5");
    }
    struct sse_stream *stream = calloc(1, sizeof *stream);
    if (!stream) {
        pthread_mutex_lock(&http->events_lock);
        memset(slot, 0, sizeof *slot);
        pthread_mutex_unlock(&http->events_lock);
        return MHD_NO;
    }
    stream->http = http;
    stream->slot = slot;
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    stream->fd = fd ? fd->connect_fd : -1;
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
    console_add_common_headers(response, "text/event-stream; charset=utf-8", "no-store");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    return console_queue_response(req->conn, MHD_HTTP_OK, response);
}

void console_events_wake_all(struct gw_http *http)
{
    pthread_mutex_lock(&http->events_lock);
    pthread_cond_broadcast(&http->events_cond);
    pthread_mutex_unlock(&http->events_lock);
}

void console_events_free(struct gw_http *http)
{
    for (size_t i = 0; i < EVENT_RING; i++)
        free(http->events[i].data);
}
