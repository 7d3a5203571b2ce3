/* rtu_tcp.c - RTU frames over a TCP stream (a serial-to-Ethernet converter
 * in transparent mode): non-blocking socket I/O with poll(), replies found
 * with drv_rtu_find_reply however the converter splits them into
 * segments. See rtu_tcp.h. */
#include "rtu_tcp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAM_BUFFER_BYTES (4 * DRV_RTU_MAX_ADU)

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* poll() for one fd and events, with a timeout in microseconds (rounded up
 * to milliseconds). > 0 ready, 0 timed out, < 0 failed. */
static int wait_fd(int fd, short events, int64_t timeout_us)
{
    if (timeout_us < 0)
        timeout_us = 0;
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    do {
        rc = poll(&p, 1, (int)((timeout_us + 999) / 1000));
    } while (rc < 0 && errno == EINTR);
    if (rc > 0 && (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & POLLIN))
        return -1;
    return rc;
}

static int connect_one(const struct addrinfo *ai, int64_t deadline_us)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline_us - mono_us()) <= 0) {
            int saved = errno ? errno : ETIMEDOUT;
            close(fd);
            errno = saved;
            return -1;
        }
        int error = 0;
        socklen_t len = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
            close(fd);
            errno = error ? error : ECONNREFUSED;
            return -1;
        }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int drv_rtutcp_connect(const char *host, int port, int64_t timeout_us)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    if (getaddrinfo(host, service, &hints, &list) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int64_t deadline = mono_us() + timeout_us;
    int fd = -1;
    for (const struct addrinfo *ai = list; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, deadline);
    freeaddrinfo(list);
    return fd;
}

/* One non-blocking read into buf: > 0 bytes, 0 nothing waiting, -1 the
 * connection closed or failed. */
static ssize_t read_some(int fd, uint8_t *buf, size_t room)
{
    for (;;) {
        ssize_t n = recv(fd, buf, room, 0);
        if (n > 0)
            return n;
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

bool drv_rtutcp_discard(int fd)
{
    uint8_t junk[DRV_RTU_MAX_ADU];
    ssize_t n;
    while ((n = read_some(fd, junk, sizeof junk)) > 0) {
    }
    return n == 0;
}

bool drv_rtutcp_drain(int fd, int64_t quiet_us, int64_t max_us)
{
    int64_t end = mono_us() + max_us;
    for (;;) {
        int64_t left = end - mono_us();
        int rc = wait_fd(fd, POLLIN, left < quiet_us ? left : quiet_us);
        if (rc < 0)
            return false;
        if (rc == 0)
            return true;
        if (!drv_rtutcp_discard(fd))
            return false;
        if (mono_us() >= end)
            return true;
    }
}

static bool send_all(int fd, const uint8_t *data, size_t len, int64_t deadline_us)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(fd, POLLOUT, deadline_us - mono_us()) > 0)
            continue;
        return false;
    }
    return true;
}

/* The scan's verdict on a found frame. */
static est_err reply_result(const struct drv_rtu_scan *scan, const uint8_t *buf, uint16_t *dest,
                            uint16_t count, int *exception, bool *garbled)
{
    switch (scan->found) {
    case DRV_RTU_REPLY:
        if (dest != NULL)
            drv_rtu_reply_registers(buf + scan->start, count, dest);
        return EST_OK;
    case DRV_RTU_EXCEPTION:
        *exception = scan->exception;
        return EST_ERR_EXCEPTION;
    case DRV_RTU_MISMATCH:
    default:
        *garbled = true;
        return EST_ERR_PROTOCOL;
    }
}

est_err drv_rtutcp_transact(int fd, const uint8_t request[DRV_RTU_REQUEST_BYTES],
                            const struct drv_rtutcp_timing *timing, uint16_t *dest,
                            uint16_t count, int *exception, bool *garbled)
{
    *exception = 0;
    *garbled = false;
    int64_t start = mono_us();
    int64_t deadline = start + timing->response_us;
    if (!send_all(fd, request, DRV_RTU_REQUEST_BYTES, deadline))
        return EST_ERR_IO;
    uint8_t buf[STREAM_BUFFER_BYTES];
    size_t len = 0;
    struct drv_rtu_scan scan = {.found = DRV_RTU_NOTHING};
    for (;;) {
        int64_t now = mono_us();
        if (now >= deadline)
            break;
        int64_t wait = deadline - now;
        if (len > 0 && timing->frame_gap_us < wait)
            wait = timing->frame_gap_us;
        int rc = wait_fd(fd, POLLIN, wait);
        if (rc < 0)
            return EST_ERR_IO;
        if (rc == 0) {
            /* Silence after some bytes ends the frame: a reply that never
             * completed or failed its CRC. Only frames of other slaves (a
             * late reply of an earlier request): keep waiting for ours. */
            if (len > 0 && !(scan.other_slave > 0 && scan.bad_crc == 0))
                break;
            continue;
        }
        if (len == sizeof buf) { /* keep the newest bytes: a reply is shorter */
            memmove(buf, buf + len - DRV_RTU_MAX_ADU, DRV_RTU_MAX_ADU);
            len = DRV_RTU_MAX_ADU;
        }
        ssize_t n = read_some(fd, buf + len, sizeof buf - len);
        if (n < 0)
            return EST_ERR_IO;
        len += (size_t)n;
        drv_rtu_find_reply(request, buf, len, &scan);
        if (scan.found != DRV_RTU_NOTHING)
            return reply_result(&scan, buf, dest, count, exception, garbled);
    }
    if (len == 0)
        return EST_ERR_TIMEOUT;
    *garbled = true;
    return EST_ERR_PROTOCOL;
}
