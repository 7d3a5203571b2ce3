/* sim_loop.c - the epoll loop of estate-sim: Modbus TCP endpoints, the
 * control socket, ticks and the scenario. See sim_loop.h. */
#define _GNU_SOURCE /* accept4 */
#include "sim_loop.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "est_alloc.h"
#include "sim_command.h"
#include "sim_log.h"
#include "sim_pdu.h"

#define MBAP_HEADER 7                  /* transaction, protocol, length, unit */
#define MBAP_MAX (MBAP_HEADER + SIM_PDU_MAX)
#define TCP_IN_CAP (4 * MBAP_MAX)      /* pipelined requests buffered per connection */
#define TCP_OUT_CAP (16 * MBAP_MAX)
#define CONTROL_OUT_LIMIT (64u << 20)  /* a control client that never reads is dropped */
#define MAX_EVENTS 256

enum handle_type { H_LISTENER, H_MODBUS, H_CONTROL_LISTENER, H_CONTROL, H_SIGNAL, H_WAKE };

/* Every epoll registration points at one of these (first member). */
struct handle {
    enum handle_type type;
    int fd;
    struct handle *next, *prev; /* connections: the loop's list, for cleanup */
};

struct listener {
    struct handle h;
    size_t endpoint;
};

struct modbus_conn {
    struct handle h;
    size_t endpoint;
    uint32_t events;               /* current epoll interest */
    uint8_t in[TCP_IN_CAP];
    size_t in_len;
    uint8_t out[TCP_OUT_CAP];
    size_t out_len, out_off;
    bool delayed;                  /* a slow reply is waiting in pending */
    int64_t due_ms;
    uint8_t pending[MBAP_MAX];
    size_t pending_len;
    bool pending_twice;            /* the pending reply is sent twice (duplicate fault) */
    struct modbus_conn *next_delayed, *prev_delayed;
};

struct control_conn {
    struct handle h;
    uint32_t events;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
};

struct sim_loop {
    struct sim_setup *setup;
    struct sim_world *world;
    int epfd;
    struct handle signal_h, wake_h;
    struct listener *listeners;
    size_t nlisteners;
    struct handle control_h;
    struct handle *conns;          /* every open connection (modbus and control) */
    struct modbus_conn *delayed;   /* connections with a slow reply pending */
    int64_t start_mono_ms, next_tick_ms;
    size_t next_step;              /* next scenario step to run */
    uint64_t rng;                  /* garbage bytes */
    bool stop;
};

/* ------------------------------------------------------------ sockets */

int sim_listen_tcp(const char *address, const char *what, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(address, ':');
    size_t hl = colon ? (size_t)(colon - address) : 0;
    if (colon == NULL || hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "%s: bad address %s", what, address);
        return -1;
    }
    memcpy(host, address, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s: %s", what, address, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen, "%s: cannot listen on %s: %s", what, address, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char port[16] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, port, sizeof port, NI_NUMERICSERV);
    sim_log("%s listening on %s (port %s)", what, address, port);
    return fd;
}

static bool epoll_add(struct sim_loop *loop, struct handle *h, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, h->fd, &ev) == 0;
}

static void epoll_set(struct sim_loop *loop, struct handle *h, uint32_t *current, uint32_t events)
{
    if (*current == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = h};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) == 0)
        *current = events;
}

static void conn_link(struct sim_loop *loop, struct handle *h)
{
    h->prev = NULL;
    h->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = h;
    loop->conns = h;
}

static void conn_unlink(struct sim_loop *loop, struct handle *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        loop->conns = h->next;
    if (h->next)
        h->next->prev = h->prev;
}

/* ------------------------------------------------------------ modbus */

static void delayed_unlink(struct sim_loop *loop, struct modbus_conn *c)
{
    if (!c->delayed)
        return;
    if (c->prev_delayed)
        c->prev_delayed->next_delayed = c->next_delayed;
    else
        loop->delayed = c->next_delayed;
    if (c->next_delayed)
        c->next_delayed->prev_delayed = c->prev_delayed;
    c->next_delayed = c->prev_delayed = NULL;
    c->delayed = false;
}

static void modbus_close(struct sim_loop *loop, struct modbus_conn *c)
{
    delayed_unlink(loop, c);
    conn_unlink(loop, &c->h);
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, c->h.fd, NULL);
    close(c->h.fd);
    free(c);
}

static uint64_t next_random(struct sim_loop *loop)
{
    loop->rng ^= loop->rng << 13;
    loop->rng ^= loop->rng >> 7;
    loop->rng ^= loop->rng << 17;
    return loop->rng;
}

/* Writes the MBAP frame for reply into dst (room for MBAP_MAX); returns its
 * length, 0 for no reply. */
static size_t build_frame(struct sim_loop *loop, const uint8_t *request,
                          const struct sim_reply *reply, uint8_t *dst)
{
    if (reply->kind == SIM_REPLY_NONE || reply->len == 0)
        return 0;
    size_t n = MBAP_HEADER + reply->len;
    /* bad_length: 6 bytes of padding behind the PDU, counted in the length. */
    size_t padding = 0;
    if (reply->kind == SIM_REPLY_BAD_LENGTH)
        padding = SIM_PDU_MAX - reply->len < 6 ? SIM_PDU_MAX - reply->len : 6;
    if (reply->kind == SIM_REPLY_GARBAGE) {
        for (size_t i = 0; i < n; i++)
            dst[i] = (uint8_t)next_random(loop);
        return n;
    }
    memcpy(dst, request, 2);                   /* transaction id */
    if (reply->kind == SIM_REPLY_CORRUPT)
        dst[0] ^= 0x80;                        /* a wrong transaction id */
    dst[2] = dst[3] = 0;
    size_t mbap_length = reply->len + 1 + padding;
    dst[4] = (uint8_t)(mbap_length >> 8);
    dst[5] = (uint8_t)(mbap_length & 0xFF);
    dst[6] = request[6];                       /* unit id */
    if (reply->kind == SIM_REPLY_WRONG_UNIT)
        dst[6] = (uint8_t)(request[6] + 1);
    memcpy(dst + MBAP_HEADER, reply->pdu, reply->len);
    memset(dst + n, 0, padding);
    return n + padding;
}

static void modbus_flush(struct sim_loop *loop, struct modbus_conn *c, bool *dead)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->h.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        *dead = true;
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    (void)loop;
}

static void queue_output(struct modbus_conn *c, const uint8_t *frame, size_t n)
{
    if (c->out_off > 0 && c->out_len + n > TCP_OUT_CAP) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    memcpy(c->out + c->out_len, frame, n); /* callers check room first */
    c->out_len += n;
}

static size_t out_room(const struct modbus_conn *c)
{
    return TCP_OUT_CAP - (c->out_len - c->out_off);
}

/* Handles the complete frames in c->in; false when the peer broke MBAP. */
static bool modbus_process(struct sim_loop *loop, struct modbus_conn *c, int64_t mono)
{
    size_t off = 0;
    bool ok = true;
    while (!c->delayed && c->in_len - off >= MBAP_HEADER && out_room(c) >= MBAP_MAX) {
        const uint8_t *f = c->in + off;
        size_t len = (size_t)(f[4] << 8 | f[5]);
        if (f[2] != 0 || f[3] != 0 || len < 2 || len > SIM_PDU_MAX + 1) {
            ok = false;
            break;
        }
        if (c->in_len - off < 6 + len)
            break;
        struct sim_reply reply;
        pthread_mutex_lock(&loop->world->lock);
        if (off > 0)
            loop->world->endpoints[c->endpoint].stats.queued++;
        sim_pdu_handle(loop->world, c->endpoint, f[6], f + MBAP_HEADER, len - 1, mono, &reply);
        pthread_mutex_unlock(&loop->world->lock);
        if (reply.delay_ms > 0 && reply.kind != SIM_REPLY_NONE) {
            c->pending_len = build_frame(loop, f, &reply, c->pending);
            c->pending_twice = reply.kind == SIM_REPLY_DUPLICATE;
            c->delayed = true;
            c->due_ms = mono + reply.delay_ms;
            c->next_delayed = loop->delayed;
            c->prev_delayed = NULL;
            if (loop->delayed)
                loop->delayed->prev_delayed = c;
            loop->delayed = c;
        } else {
            uint8_t frame[MBAP_MAX];
            size_t n = build_frame(loop, f, &reply, frame);
            if (n > 0)
                queue_output(c, frame, n);
            if (n > 0 && reply.kind == SIM_REPLY_DUPLICATE && out_room(c) >= n)
                queue_output(c, frame, n);
        }
        off += 6 + len;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return ok;
}

/* Reads while there is room; EPOLLIN interest only while the connection
 * can take more work, EPOLLOUT while output waits. */
static void modbus_update_interest(struct sim_loop *loop, struct modbus_conn *c)
{
    uint32_t want = 0;
    if (!c->delayed && c->in_len < TCP_IN_CAP && out_room(c) >= MBAP_MAX)
        want |= EPOLLIN;
    if (c->out_len > c->out_off)
        want |= EPOLLOUT;
    epoll_set(loop, &c->h, &c->events, want | EPOLLRDHUP);
}

static void modbus_event(struct sim_loop *loop, struct modbus_conn *c, uint32_t events,
                         int64_t mono)
{
    /* Modbus clients never half-close: a FIN means the connection is done. */
    bool dead = (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
    if (!dead && (events & EPOLLIN) && c->in_len < TCP_IN_CAP) {
        ssize_t n = recv(c->h.fd, c->in + c->in_len, TCP_IN_CAP - c->in_len, 0);
        if (n > 0)
            c->in_len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            dead = true;
    }
    if (!dead && !modbus_process(loop, c, mono))
        dead = true;
    if (!dead)
        modbus_flush(loop, c, &dead);
    if (dead) {
        modbus_close(loop, c);
        return;
    }
    modbus_update_interest(loop, c);
}

static void accept_modbus(struct sim_loop *loop, struct listener *l)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct modbus_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->h.type = H_MODBUS;
        c->h.fd = fd;
        c->endpoint = l->endpoint;
        c->events = EPOLLIN | EPOLLRDHUP;
        if (!epoll_add(loop, &c->h, c->events)) {
            close(fd);
            free(c);
            continue;
        }
        conn_link(loop, &c->h);
    }
}

/* Sends slow replies that are due and resumes their connections. */
static void run_delayed(struct sim_loop *loop, int64_t mono)
{
    struct modbus_conn *c = loop->delayed;
    while (c != NULL) {
        struct modbus_conn *next = c->next_delayed;
        if (c->due_ms <= mono) {
            delayed_unlink(loop, c);
            if (c->pending_len > 0 && out_room(c) >= c->pending_len)
                queue_output(c, c->pending, c->pending_len);
            if (c->pending_twice && c->pending_len > 0 && out_room(c) >= c->pending_len)
                queue_output(c, c->pending, c->pending_len);
            c->pending_len = 0;
            c->pending_twice = false;
            modbus_event(loop, c, 0, mono); /* process what queued up meanwhile */
        }
        c = next;
    }
}

/* ------------------------------------------------------------ control */

static void control_close(struct sim_loop *loop, struct control_conn *c)
{
    conn_unlink(loop, &c->h);
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, c->h.fd, NULL);
    close(c->h.fd);
    free(c->in);
    free(c->out);
    free(c);
}

static bool control_append(struct control_conn *c, const char *text, size_t n)
{
    if (c->out_len + n + 1 > CONTROL_OUT_LIMIT ||
        EST_VEC_RESERVE(c->out, c->out_cap, c->out_len + n + 1) != EST_OK)
        return false;
    memcpy(c->out + c->out_len, text, n);
    c->out[c->out_len + n] = '\n';
    c->out_len += n + 1;
    return true;
}

/* Executes every complete line in c->in; false to drop the client. */
static bool control_lines(struct sim_loop *loop, struct control_conn *c, int64_t mono)
{
    size_t start = 0;
    for (size_t i = 0; i < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        size_t len = i - start;
        const char *line = c->in + start;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        start = i + 1;
        if (len == 0)
            continue;
        pthread_mutex_lock(&loop->world->lock);
        char *reply = sim_command_execute(loop->world, line, len, mono);
        pthread_mutex_unlock(&loop->world->lock);
        bool ok = reply != NULL && control_append(c, reply, strlen(reply));
        free(reply);
        if (!ok)
            return false;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    return c->in_len <= SIM_CONTROL_MAX_LINE;
}

static bool control_read(struct control_conn *c)
{
    size_t want = c->in_len + 4096;
    if (want > SIM_CONTROL_MAX_LINE + 8192)
        want = SIM_CONTROL_MAX_LINE + 8192;
    if (EST_VEC_RESERVE(c->in, c->in_cap, want) != EST_OK)
        return false;
    ssize_t n = recv(c->h.fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

static bool control_flush(struct control_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->h.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0)
            c->out_off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        else if (!(n < 0 && errno == EINTR))
            return false;
    }
    c->out_off = c->out_len = 0;
    return true;
}

static void control_event(struct sim_loop *loop, struct control_conn *c, uint32_t events,
                          int64_t mono)
{
    bool ok = (events & EPOLLERR) == 0;
    if (ok && (events & (EPOLLIN | EPOLLHUP)))
        ok = control_read(c) && control_lines(loop, c, mono);
    if (ok)
        ok = control_flush(c);
    if (!ok) {
        control_close(loop, c);
        return;
    }
    epoll_set(loop, &c->h, &c->events, c->out_len > c->out_off ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void accept_control(struct sim_loop *loop)
{
    for (int i = 0; i < 16; i++) {
        int fd = accept4(loop->control_h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct control_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->h.type = H_CONTROL;
        c->h.fd = fd;
        c->events = EPOLLIN;
        if (!epoll_add(loop, &c->h, c->events)) {
            close(fd);
            free(c);
            continue;
        }
        conn_link(loop, &c->h);
    }
}

/* ------------------------------------------------------ tick, scenario */

static void run_scenario(struct sim_loop *loop, int64_t mono)
{
    struct sim_setup *s = loop->setup;
    while (loop->next_step < s->nscenario &&
           s->scenario[loop->next_step].at_ms <= mono - loop->start_mono_ms) {
        const struct sim_scenario_step *step = &s->scenario[loop->next_step++];
        char err[256], what[300];
        sim_action_describe(loop->world, &step->action, what, sizeof what);
        if (sim_action_apply(loop->world, &step->action, mono, err, sizeof err) == EST_OK)
            sim_log("scenario t+%llds: %s", (long long)(step->at_ms / 1000), what);
        else
            sim_log("scenario t+%llds: %s failed: %s", (long long)(step->at_ms / 1000), what, err);
    }
}

static void tick(struct sim_loop *loop, int64_t mono)
{
    pthread_mutex_lock(&loop->world->lock);
    sim_world_advance(loop->world, sim_clock_now(&loop->world->clock, mono), mono);
    run_scenario(loop, mono);
    pthread_mutex_unlock(&loop->world->lock);
    loop->next_tick_ms = mono + loop->setup->tick_ms;
}

static int wait_timeout_ms(const struct sim_loop *loop, int64_t mono)
{
    int64_t due = loop->next_tick_ms;
    for (const struct modbus_conn *c = loop->delayed; c != NULL; c = c->next_delayed)
        if (c->due_ms < due)
            due = c->due_ms;
    int64_t wait = due - mono;
    return wait < 0 ? 0 : (int)wait;
}

/* ------------------------------------------------------------ lifecycle */

static bool add_signal_fd(struct sim_loop *loop)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    loop->signal_h.type = H_SIGNAL;
    loop->signal_h.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    loop->wake_h.type = H_WAKE;
    loop->wake_h.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return loop->signal_h.fd >= 0 && loop->wake_h.fd >= 0 &&
           epoll_add(loop, &loop->signal_h, EPOLLIN) && epoll_add(loop, &loop->wake_h, EPOLLIN);
}

static est_err open_listeners(struct sim_loop *loop, char *err, size_t errlen)
{
    struct sim_world *w = loop->world;
    loop->listeners = calloc(w->nendpoints ? w->nendpoints : 1, sizeof *loop->listeners);
    if (loop->listeners == NULL)
        return EST_ERR_NOMEM;
    for (size_t i = 0; i < w->nendpoints; i++) {
        if (w->endpoints[i].type != SIM_EP_TCP)
            continue;
        char what[300];
        snprintf(what, sizeof what, "endpoint %s", w->endpoints[i].name);
        int fd = sim_listen_tcp(w->endpoints[i].listen, what, err, errlen);
        if (fd < 0)
            return EST_ERR_IO;
        struct listener *l = &loop->listeners[loop->nlisteners++];
        l->h.type = H_LISTENER;
        l->h.fd = fd;
        l->endpoint = i;
        if (!epoll_add(loop, &l->h, EPOLLIN))
            return EST_ERR_IO;
    }
    loop->control_h.type = H_CONTROL_LISTENER;
    loop->control_h.fd = -1;
    if (loop->setup->control != NULL) {
        loop->control_h.fd = sim_listen_tcp(loop->setup->control, "control", err, errlen);
        if (loop->control_h.fd < 0 || !epoll_add(loop, &loop->control_h, EPOLLIN))
            return EST_ERR_IO;
    }
    return EST_OK;
}

est_err sim_loop_open(struct sim_setup *setup, struct sim_loop **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sim_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return EST_ERR_NOMEM;
    loop->setup = setup;
    loop->world = setup->world;
    loop->rng = setup->world->seed * 2654435761u + 88172645463325252ull;
    loop->signal_h.fd = loop->wake_h.fd = loop->control_h.fd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0 || !add_signal_fd(loop)) {
        snprintf(err, errlen, "epoll/signalfd: %s", strerror(errno));
        sim_loop_close(loop);
        return EST_ERR_IO;
    }
    est_err rc = open_listeners(loop, err, errlen);
    if (rc != EST_OK) {
        sim_loop_close(loop);
        return rc;
    }
    *out = loop;
    return EST_OK;
}

static void dispatch(struct sim_loop *loop, struct handle *h, uint32_t events, int64_t mono)
{
    switch (h->type) {
    case H_LISTENER:
        accept_modbus(loop, (struct listener *)h);
        break;
    case H_MODBUS:
        modbus_event(loop, (struct modbus_conn *)h, events, mono);
        break;
    case H_CONTROL_LISTENER:
        accept_control(loop);
        break;
    case H_CONTROL:
        control_event(loop, (struct control_conn *)h, events, mono);
        break;
    case H_SIGNAL: {
        struct signalfd_siginfo si;
        if (read(h->fd, &si, sizeof si) == (ssize_t)sizeof si)
            sim_log("signal %u: stopping", si.ssi_signo);
        loop->stop = true;
        break;
    }
    case H_WAKE:
        loop->stop = true;
        break;
    }
}

est_err sim_loop_run(struct sim_loop *loop)
{
    struct epoll_event events[MAX_EVENTS];
    loop->start_mono_ms = est_mono_ms();
    tick(loop, loop->start_mono_ms);
    while (!loop->stop) {
        int n = epoll_wait(loop->epfd, events, MAX_EVENTS, wait_timeout_ms(loop, est_mono_ms()));
        if (n < 0 && errno != EINTR) {
            sim_log("epoll_wait: %s", strerror(errno));
            return EST_ERR_IO;
        }
        int64_t mono = est_mono_ms();
        for (int i = 0; i < n; i++)
            dispatch(loop, events[i].data.ptr, events[i].events, mono);
        run_delayed(loop, mono);
        if (mono >= loop->next_tick_ms)
            tick(loop, mono);
    }
    return EST_OK;
}

void sim_loop_stop(struct sim_loop *loop)
{
    uint64_t one = 1;
    if (loop != NULL && loop->wake_h.fd >= 0 && write(loop->wake_h.fd, &one, sizeof one) < 0) {
        /* the loop is already being woken */
    }
}

void sim_loop_close(struct sim_loop *loop)
{
    if (loop == NULL)
        return;
    while (loop->conns != NULL) {
        struct handle *h = loop->conns;
        if (h->type == H_MODBUS)
            modbus_close(loop, (struct modbus_conn *)h);
        else
            control_close(loop, (struct control_conn *)h);
    }
    for (size_t i = 0; i < loop->nlisteners; i++)
        close(loop->listeners[i].h.fd);
    free(loop->listeners);
    if (loop->control_h.fd >= 0)
        close(loop->control_h.fd);
    if (loop->signal_h.fd >= 0)
        close(loop->signal_h.fd);
    if (loop->wake_h.fd >= 0)
        close(loop->wake_h.fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free(loop);
}
