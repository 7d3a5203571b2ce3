/* sim_rtu.c - Modbus RTU on a pseudo-terminal or on a TCP listener (RTU
 * over TCP, as through a converter in transparent mode), one thread per
 * endpoint, with wire-accurate reply timing. See sim_rtu.h. */
#include "sim_rtu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim_cnserial.h"
#include "sim_log.h"
#include "sim_loop.h"
#include "sim_pdu.h"

#define RTU_MAX_FRAME 256
#define RTU_BUF (4 * RTU_MAX_FRAME)
#define IDLE_POLL_MS 200 /* how often an idle thread looks at the stop flag */

struct sim_rtu {
    struct sim_world *world;
    size_t endpoint;
    int master, slave;        /* pty sides; slave kept open so the master never sees EIO */
    int listen_fd;            /* rtu_over_tcp: the listener, -1 for a pty */
    int io;                   /* where frames come and go: the pty master or the
                               * accepted connection; -1 while none is connected */
    char *link;
    char slave_path[PATH_MAX];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    unsigned bits_per_char;
    int baud;
    int64_t t35_us;           /* inter-frame silence */
    int turnaround_ms;
    bool national;            /* DL/T 645 or CJ/T 188 instead of Modbus */
    uint64_t rng;
    uint8_t buf[RTU_BUF];
    size_t len;
    int64_t first_byte_us;    /* arrival of the current frame's first byte */
    int64_t last_byte_us;     /* arrival of the latest byte */
    /* A slow fault's reply waits here while later frames are served, as a
     * late slave answers while the master has moved on. */
    uint8_t late[RTU_MAX_FRAME + SIM_CN_REPLY_MAX]; /* either protocol's reply */
    size_t late_len;          /* 0 = none */
    int64_t late_due_us;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t due_us)
{
    struct timespec ts = {.tv_sec = due_us / 1000000, .tv_nsec = (due_us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void write_all(struct sim_rtu *rtu, const uint8_t *data, size_t n)
{
    size_t done = 0;
    while (done < n && !atomic_load(&rtu->stop) && rtu->io >= 0) {
        ssize_t w = rtu->listen_fd >= 0 ? send(rtu->io, data + done, n - done, MSG_NOSIGNAL)
                                        : write(rtu->io, data + done, n - done);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = rtu->io, .events = POLLOUT};
            poll(&p, 1, IDLE_POLL_MS);
        } else {
            return;
        }
    }
}

static uint64_t next_random(struct sim_rtu *rtu)
{
    rtu->rng ^= rtu->rng << 13;
    rtu->rng ^= rtu->rng >> 7;
    rtu->rng ^= rtu->rng << 17;
    return rtu->rng;
}

/* Turns a reply into the RTU frame in dst; returns its length (0 = none). */
static size_t build_frame(struct sim_rtu *rtu, uint8_t slave, const struct sim_reply *reply,
                          uint8_t *dst)
{
    if (reply->kind == SIM_REPLY_NONE || reply->len == 0)
        return 0;
    size_t n = reply->len + 3;
    if (reply->kind == SIM_REPLY_GARBAGE) {
        for (size_t i = 0; i < n; i++)
            dst[i] = (uint8_t)next_random(rtu);
        return n;
    }
    dst[0] = reply->kind == SIM_REPLY_WRONG_UNIT ? (uint8_t)(slave % 247 + 1) : slave;
    memcpy(dst + 1, reply->pdu, reply->len);
    uint16_t crc = sim_crc16(dst, reply->len + 1);
    if (reply->kind == SIM_REPLY_CORRUPT)
        crc ^= 0xA5A5;
    dst[reply->len + 1] = (uint8_t)(crc & 0xFF);
    dst[reply->len + 2] = (uint8_t)(crc >> 8);
    return n;
}

/* Writes the waiting late reply once it is due (or, with wait, after
 * waiting for it). */
static void send_late_reply(struct sim_rtu *rtu, bool wait)
{
    if (rtu->late_len == 0 || (!wait && mono_us() < rtu->late_due_us))
        return;
    sleep_until_us(rtu->late_due_us);
    write_all(rtu, rtu->late, rtu->late_len);
    rtu->late_len = 0;
}

/* Keeps a slow fault's reply until due_us (after the late one already
 * waiting goes out) so the frames that follow are served on time. */
static void hold_late_reply(struct sim_rtu *rtu, const uint8_t *reply, size_t n, int64_t due_us)
{
    send_late_reply(rtu, true); /* one late reply at a time */
    if (n > sizeof rtu->late)
        return;
    memcpy(rtu->late, reply, n);
    rtu->late_len = n;
    rtu->late_due_us = due_us;
}

static void count_bad_frame(struct sim_rtu *rtu)
{
    pthread_mutex_lock(&rtu->world->lock);
    rtu->world->endpoints[rtu->endpoint].stats.bad_frames++;
    pthread_mutex_unlock(&rtu->world->lock);
}

/* One complete frame: check the CRC, handle, wait the wire time, reply. */
static void serve_frame(struct sim_rtu *rtu, const uint8_t *frame, size_t n, int64_t arrived_us)
{
    if (n < 4 || n > RTU_MAX_FRAME ||
        sim_crc16(frame, n - 2) != (uint16_t)(frame[n - 2] | frame[n - 1] << 8)) {
        count_bad_frame(rtu);
        return;
    }
    struct sim_reply reply;
    uint8_t out[RTU_MAX_FRAME + 8];
    pthread_mutex_lock(&rtu->world->lock);
    sim_pdu_handle(rtu->world, rtu->endpoint, frame[0], frame + 1, n - 3, est_mono_ms(), &reply);
    size_t m = build_frame(rtu, frame[0], &reply, out);
    struct sim_endpoint_stats *stats = &rtu->world->endpoints[rtu->endpoint].stats;
    stats->rx_bytes += n;
    stats->tx_bytes += m;
    pthread_mutex_unlock(&rtu->world->lock);
    if (m == 0)
        return;
    int64_t due = arrived_us + sim_wire_time_us(n + m, rtu->bits_per_char, rtu->baud) +
                  (int64_t)rtu->turnaround_ms * 1000 + (int64_t)reply.delay_ms * 1000;
    if (reply.delay_ms > 0) {
        hold_late_reply(rtu, out, m, due);
        return;
    }
    sleep_until_us(due);
    write_all(rtu, out, m);
}

/* Serves every frame whose length is known from its header; leaves a
 * partial or unknown-length frame in the buffer for the silence. */
static void serve_by_length(struct sim_rtu *rtu)
{
    while (rtu->len >= 2) {
        int need = sim_rtu_request_length(rtu->buf, rtu->len);
        if (need <= 0 || (size_t)need > rtu->len)
            return;
        uint16_t crc = sim_crc16(rtu->buf, (size_t)need - 2);
        if (crc != (uint16_t)(rtu->buf[need - 2] | rtu->buf[need - 1] << 8))
            return; /* not a frame after all: wait for the silence */
        uint8_t frame[RTU_MAX_FRAME];
        memcpy(frame, rtu->buf, (size_t)need);
        memmove(rtu->buf, rtu->buf + need, rtu->len - (size_t)need);
        rtu->len -= (size_t)need;
        serve_frame(rtu, frame, (size_t)need, rtu->first_byte_us);
        rtu->first_byte_us = mono_us();
    }
}

/* rtu_over_tcp: takes a new client; it replaces the one before (a
 * converter in transparent mode serves one master). */
static void accept_client(struct sim_rtu *rtu)
{
    int fd = accept(rtu->listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (rtu->io >= 0)
        close(rtu->io);
    rtu->io = fd;
    rtu->len = 0;
    rtu->late_len = 0;
}

static void drop_client(struct sim_rtu *rtu)
{
    close(rtu->io);
    rtu->io = -1;
    rtu->len = 0;
    rtu->late_len = 0;
}

static int poll_timeout_ms(const struct sim_rtu *rtu)
{
    int64_t timeout_us = rtu->len == 0 ? IDLE_POLL_MS * 1000 : rtu->t35_us;
    if (rtu->late_len > 0) {
        int64_t until_late = rtu->late_due_us - mono_us();
        if (until_late < timeout_us)
            timeout_us = until_late > 0 ? until_late : 0;
    }
    return (int)((timeout_us + 999) / 1000);
}

/* A DL/T 645 or CJ/T 188 endpoint: frames delimit themselves, so every
 * complete request in the buffer is served as soon as it is there. */
static void serve_national(struct sim_rtu *rtu)
{
    for (;;) {
        uint8_t out[SIM_CN_REPLY_MAX];
        bool found = false;
        size_t request_bytes = 0;
        uint32_t delay_ms = 0;
        pthread_mutex_lock(&rtu->world->lock);
        size_t m = sim_cn_serve(rtu->world, rtu->endpoint, rtu->buf, &rtu->len, &found,
                                &request_bytes, &delay_ms, out, est_mono_ms());
        pthread_mutex_unlock(&rtu->world->lock);
        if (!found)
            return;
        if (m > 0) {
            int64_t due = rtu->first_byte_us +
                          sim_wire_time_us(request_bytes + m, rtu->bits_per_char, rtu->baud) +
                          (int64_t)rtu->turnaround_ms * 1000 + (int64_t)delay_ms * 1000;
            if (delay_ms > 0) {
                hold_late_reply(rtu, out, m, due);
            } else {
                sleep_until_us(due);
                write_all(rtu, out, m);
            }
        }
        rtu->first_byte_us = mono_us();
    }
}

static void *rtu_thread(void *arg)
{
    struct sim_rtu *rtu = arg;
    while (!atomic_load(&rtu->stop)) {
        struct pollfd p[2] = {{.fd = rtu->io, .events = POLLIN},
                              {.fd = rtu->listen_fd, .events = POLLIN}};
        int r = poll(p, rtu->listen_fd >= 0 ? 2 : 1, poll_timeout_ms(rtu));
        if (r < 0 && errno != EINTR)
            break;
        send_late_reply(rtu, false);
        if (r > 0 && rtu->listen_fd >= 0 && (p[1].revents & POLLIN))
            accept_client(rtu);
        if (r > 0 && rtu->io >= 0 && p[0].fd == rtu->io && (p[0].revents & POLLIN)) {
            if (rtu->len == RTU_BUF)
                rtu->len = 0; /* a stream with no silence and no frame: resync */
            ssize_t n = read(rtu->io, rtu->buf + rtu->len, RTU_BUF - rtu->len);
            if (n > 0) {
                if (rtu->len == 0)
                    rtu->first_byte_us = mono_us();
                rtu->len += (size_t)n;
                rtu->last_byte_us = mono_us();
                if (rtu->national)
                    serve_national(rtu);
                else
                    serve_by_length(rtu);
            } else if (rtu->listen_fd >= 0 && (n == 0 || (errno != EAGAIN && errno != EINTR))) {
                drop_client(rtu);
            }
            continue;
        }
        if (r > 0 && p[0].fd >= 0 && (p[0].revents & (POLLHUP | POLLERR))) {
            if (rtu->listen_fd >= 0 && p[0].fd == rtu->io)
                drop_client(rtu);
            else
                est_sleep_ms(10);
            continue;
        }
        if (rtu->len > 0 && mono_us() - rtu->last_byte_us < rtu->t35_us) {
            /* the frame goes on */
        } else if (rtu->len > 0 && rtu->national) {
            rtu->len = 0; /* a partial frame followed by silence: noise */
        } else if (rtu->len > 0) {
            /* the silence ends the frame */
            serve_frame(rtu, rtu->buf, rtu->len, rtu->first_byte_us);
            rtu->len = 0;
        }
    }
    return NULL;
}

/* Points link at the pty slave; replaces only an existing symlink. */
static bool make_link(const char *link, const char *target, char *err, size_t errlen)
{
    char *dir = strdup(link);
    if (dir == NULL)
        return false;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
    free(dir);
    struct stat st;
    if (lstat(link, &st) == 0) {
        if (!S_ISLNK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a symlink", link);
            return false;
        }
        unlink(link);
    }
    if (symlink(target, link) != 0) {
        snprintf(err, errlen, "symlink %s -> %s: %s", link, target, strerror(errno));
        return false;
    }
    return true;
}

static bool open_pty(struct sim_rtu *rtu, const struct sim_endpoint *ep, char *err, size_t errlen)
{
    if (openpty(&rtu->master, &rtu->slave, rtu->slave_path, NULL, NULL) != 0) {
        snprintf(err, errlen, "endpoint %s: openpty: %s", ep->name, strerror(errno));
        return false;
    }
    struct termios tio;
    if (tcgetattr(rtu->slave, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(rtu->slave, TCSANOW, &tio);
    }
    if (tcgetattr(rtu->master, &tio) == 0) {
        cfmakeraw(&tio);
        tcsetattr(rtu->master, TCSANOW, &tio);
    }
    fcntl(rtu->master, F_SETFL, fcntl(rtu->master, F_GETFL) | O_NONBLOCK);
    fcntl(rtu->master, F_SETFD, FD_CLOEXEC);
    fcntl(rtu->slave, F_SETFD, FD_CLOEXEC);
    return true;
}

est_err sim_rtu_start(struct sim_world *world, size_t endpoint, struct sim_rtu **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    const struct sim_endpoint *ep = &world->endpoints[endpoint];
    struct sim_rtu *rtu = calloc(1, sizeof *rtu);
    if (rtu == NULL)
        return EST_ERR_NOMEM;
    rtu->world = world;
    rtu->endpoint = endpoint;
    rtu->master = rtu->slave = rtu->listen_fd = rtu->io = -1;
    rtu->baud = ep->baud;
    rtu->bits_per_char = sim_bits_per_char(ep->data_bits, ep->parity, ep->stop_bits);
    /* 3.5 characters; the spec fixes 1.75 ms above 19200 baud */
    rtu->t35_us = ep->baud > 19200 ? 1750 : sim_wire_time_us(7, rtu->bits_per_char, ep->baud) / 2;
    rtu->turnaround_ms = ep->turnaround_ms;
    rtu->national = ep->protocol != DRV_PROTO_MODBUS;
    rtu->rng = world->seed * 6364136223846793005ull + endpoint + 1442695040888963407ull;
    atomic_init(&rtu->stop, false);
    if (ep->type == SIM_EP_RTU_OVER_TCP) {
        char what[128];
        snprintf(what, sizeof what, "endpoint %s (rtu_over_tcp)", ep->name);
        rtu->listen_fd = sim_listen_tcp(ep->listen, what, err, errlen);
        if (rtu->listen_fd < 0) {
            sim_rtu_stop(rtu);
            return EST_ERR_IO;
        }
    } else {
        rtu->link = strdup(ep->link);
        if (rtu->link == NULL || !open_pty(rtu, ep, err, errlen) ||
            !make_link(rtu->link, rtu->slave_path, err, errlen)) {
            sim_rtu_stop(rtu);
            return EST_ERR_IO;
        }
        rtu->io = rtu->master;
    }
    if (pthread_create(&rtu->thread, NULL, rtu_thread, rtu) != 0) {
        snprintf(err, errlen, "endpoint %s: cannot start thread", ep->name);
        sim_rtu_stop(rtu);
        return EST_ERR_IO;
    }
    rtu->started = true;
    const char *protocol = ep->protocol == DRV_PROTO_DLT645   ? " dlt645"
                           : ep->protocol == DRV_PROTO_CJT188 ? " cjt188"
                                                              : "";
    if (rtu->listen_fd >= 0)
        sim_log("endpoint %s: rtu%s over tcp %d %d%c%d on %s", ep->name, protocol, ep->baud,
                ep->data_bits, ep->parity, ep->stop_bits, ep->listen);
    else
        sim_log("endpoint %s: rtu%s %d %d%c%d on %s -> %s", ep->name, protocol, ep->baud,
                ep->data_bits, ep->parity, ep->stop_bits, rtu->link, rtu->slave_path);
    *out = rtu;
    return EST_OK;
}

void sim_rtu_stop(struct sim_rtu *rtu)
{
    if (rtu == NULL)
        return;
    atomic_store(&rtu->stop, true);
    if (rtu->started)
        pthread_join(rtu->thread, NULL);
    if (rtu->link != NULL) {
        char target[PATH_MAX];
        ssize_t n = readlink(rtu->link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, rtu->slave_path) == 0)
                unlink(rtu->link);
        }
    }
    if (rtu->listen_fd >= 0) {
        if (rtu->io >= 0)
            close(rtu->io);
        close(rtu->listen_fd);
    }
    if (rtu->master >= 0)
        close(rtu->master);
    if (rtu->slave >= 0)
        close(rtu->slave);
    free(rtu->link);
    free(rtu);
}
