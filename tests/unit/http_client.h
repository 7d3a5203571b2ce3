/* http_client.h - a tiny HTTP/1.0 client over plain loopback sockets for the
 * console's unit tests: one request per connection, the whole answer read
 * until the server closes, plus a free-port finder and a raw connection for
 * event streams. Header-only. */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct http_answer {
    int status;                  /* 0 when no answer */
    char *head;                  /* status line and headers */
    char *body;                  /* after the blank line */
};

static inline void http_answer_free(struct http_answer *a)
{
    free(a->head);
    free(a->body);
    memset(a, 0, sizeof *a);
}

/* A loopback port nobody listens on right now (0 when none). */
static inline int http_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A connection to 127.0.0.1:port whose reads give up after timeout_ms; -1 on failure. */
static inline int http_connect(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline bool http_send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends method path with extra_headers (each ending "\r\n", may be NULL)
 * and body (may be NULL). */
static inline bool http_send_request(int fd, const char *method, const char *path,
                                     const char *extra_headers, const char *body)
{
    size_t body_len = body ? strlen(body) : 0;
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n", method,
                     path, extra_headers ? extra_headers : "", body_len);
    if (n < 0 || (size_t)n >= sizeof head)
        return false;
    return http_send_all(fd, head, (size_t)n) && (body_len == 0 || http_send_all(fd, body, body_len));
}

/* Reads until the server closes (or the read times out): the whole answer. */
static inline char *http_read_all(int fd)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* One request, the answer split into status, head and body. */
static inline struct http_answer http_request(int port, const char *method, const char *path,
                                              const char *extra_headers, const char *body)
{
    struct http_answer a = {0};
    int fd = http_connect(port, 10000);
    if (fd < 0)
        return a;
    if (http_send_request(fd, method, path, extra_headers, body)) {
        char *all = http_read_all(fd);
        char *split = strstr(all, "\r\n\r\n");
        if (split && sscanf(all, "HTTP/1.%*d %d", &a.status) == 1) {
            a.body = strdup(split + 4);
            *split = '\0';
            a.head = all;
            all = NULL;
        }
        free(all);
    }
    close(fd);
    return a;
}

/* Reads from a stream until text has arrived (true) or a read times out. */
static inline bool http_read_until(int fd, const char *text, char **seen)
{
    size_t len = *seen ? strlen(*seen) : 0, cap = len + 4096;
    char *buf = realloc(*seen, cap);
    buf[len] = '\0';
    bool found = strstr(buf, text) != NULL;
    while (!found) {
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        found = strstr(buf, text) != NULL;
    }
    *seen = buf;
    return found;
}

#endif
