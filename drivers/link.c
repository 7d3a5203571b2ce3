/* link.c - one Modbus bus (TCP, RTU on a serial line, or RTU frames over
 * TCP through rtu_tcp.c, which libmodbus cannot do): libmodbus 3.1.6
 * connects and, on RTU, frames; on TCP the MBAP framing is our own, because
 * libmodbus checks neither the unit id nor the MBAP length of a reply: every
 * request carries its own transaction id, a reply is taken only for the
 * transaction id and unit it answers, stray and duplicated frames are
 * skipped, and a length that cannot be true reopens the connection instead
 * of being read past. Also lazy connect, reconnect with exponential backoff
 * and jitter, errno -> est_err mapping, the RTU timing libmodbus leaves to
 * the caller (3.5-character inter-frame silence, slave-switch delay,
 * request gap) and pipelined batches of reads on TCP. Used by exactly one
 * thread; never logs. */
#include "drivers.h"

#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "rtu_tcp.h"

#define DEFAULT_TCP_TIMEOUT_MS 1000
#define DEFAULT_TCP_BYTE_TIMEOUT_MS 500
#define DEFAULT_RECONNECT_MIN_MS 200
#define DEFAULT_RECONNECT_MAX_MS 30000
#define RTU_MAX_FRAME_BYTES 256
#define RTU_FAST_SILENCE_US 1750 /* Modbus over serial line v1.02, 2.5.1.1: above 19200 baud */
#define MBAP_HEADER_BYTES 7
#define MODBUS_EXCEPTION_FLAG 0x80
#define MODBUS_LAST_EXCEPTION 0x0B /* gateway target device failed to respond */
#define MODBUS_FC_WRITE_SINGLE 0x06
/* The MBAP length counts the unit id and the PDU: 2..254 (a PDU is at most
 * 253 bytes, and at least a function code and one byte). */
#define MBAP_LENGTH_MIN 2
#define MBAP_LENGTH_MAX 254
#define TCP_FRAME_MAX (6 + MBAP_LENGTH_MAX)
/* RTU over TCP: what the network and the converter add to the wire time,
 * the least silence that ends a frame (a converter may split a frame into
 * segments some milliseconds apart), and how many timeouts in a row make
 * the connection suspect (a converter that lost it without a reset). */
#define RTU_TCP_NETWORK_MARGIN_US 200000
#define RTU_TCP_MIN_FRAME_GAP_US 50000
#define RTU_TCP_TIMEOUTS_BEFORE_RECONNECT 3

struct drv_link {
    struct drv_link_config config; /* host/device point into the copies below */
    char *host;
    char *device;
    modbus_t *ctx;                 /* NULL while disconnected (TCP, RTU) */
    int fd;                        /* RTU over TCP: the socket, -1 while disconnected */
    int timeouts_in_row;           /* RTU over TCP */
    int64_t response_timeout_us;
    int64_t byte_timeout_us;
    int64_t silence_us;            /* RTU inter-frame gap; 0 on TCP */
    int64_t last_end_us;           /* monotonic end of the last transaction; 0 = none */
    int last_slave;                /* -1 = none yet */
    int64_t retry_at_us;           /* no connect attempt before this */
    int backoff_ms;                /* next backoff before jitter */
    uint32_t jitter_state;         /* xorshift32 */
    uint16_t next_transaction;     /* TCP: the id the next request carries */
    uint64_t transactions;
    uint64_t failures;
    uint64_t stray_frames;         /* TCP replies skipped: no request of ours, or a duplicate */
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint32_t next_random(struct drv_link *link)
{
    uint32_t x = link->jitter_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return link->jitter_state = x;
}

/* One character on the line in microseconds: start + data + parity + stop. */
static int64_t rtu_char_us(const struct drv_link_config *c)
{
    int bits = 1 + c->data_bits + (c->parity == 'N' ? 0 : 1) + c->stop_bits;
    return ((int64_t)bits * 1000000 + c->baud - 1) / c->baud;
}

static void derive_timing(struct drv_link *link)
{
    const struct drv_link_config *c = &link->config;
    if (c->type == DRV_LINK_RTU_OVER_TCP) {
        int64_t char_us = rtu_char_us(c);
        link->response_timeout_us = c->response_timeout_ms > 0
                                        ? (int64_t)c->response_timeout_ms * 1000
                                        : 100000 + 2 * RTU_MAX_FRAME_BYTES * char_us +
                                              RTU_TCP_NETWORK_MARGIN_US;
        int64_t five_chars = 5 * char_us;
        link->byte_timeout_us =
            c->byte_timeout_ms > 0 ? (int64_t)c->byte_timeout_ms * 1000
            : five_chars > RTU_TCP_MIN_FRAME_GAP_US ? five_chars
                                                    : RTU_TCP_MIN_FRAME_GAP_US;
        link->silence_us = c->baud > 19200 ? RTU_FAST_SILENCE_US : (7 * char_us + 1) / 2;
        return;
    }
    if (c->type == DRV_LINK_TCP) {
        link->response_timeout_us =
            (int64_t)(c->response_timeout_ms > 0 ? c->response_timeout_ms
                                                 : DEFAULT_TCP_TIMEOUT_MS) * 1000;
        link->byte_timeout_us =
            (int64_t)(c->byte_timeout_ms > 0 ? c->byte_timeout_ms : DEFAULT_TCP_BYTE_TIMEOUT_MS) *
            1000;
        link->silence_us = 0;
        return;
    }
    int64_t char_us = rtu_char_us(c);
    /* A full 256-byte frame each way, plus 100 ms of slave turnaround. */
    link->response_timeout_us = c->response_timeout_ms > 0
                                    ? (int64_t)c->response_timeout_ms * 1000
                                    : 100000 + 2 * RTU_MAX_FRAME_BYTES * char_us;
    int64_t five_chars = 5 * char_us;
    link->byte_timeout_us = c->byte_timeout_ms > 0 ? (int64_t)c->byte_timeout_ms * 1000
                            : five_chars > 2000    ? five_chars
                                                   : 2000;
    link->silence_us = c->baud > 19200 ? RTU_FAST_SILENCE_US : (7 * char_us + 1) / 2;
}

static bool serial_settings_valid(const struct drv_link_config *c)
{
    return c->baud > 0 && (c->parity == 'N' || c->parity == 'E' || c->parity == 'O') &&
           c->data_bits >= 5 && c->data_bits <= 8 && (c->stop_bits == 1 || c->stop_bits == 2);
}

static bool config_valid(const struct drv_link_config *c)
{
    bool host_ok = c->host != NULL && c->host[0] != '\0' && c->port > 0 && c->port <= 65535;
    if (c->type == DRV_LINK_TCP)
        return host_ok;
    if (c->type == DRV_LINK_RTU_OVER_TCP)
        return host_ok && serial_settings_valid(c);
    if (c->type != DRV_LINK_RTU)
        return false;
    return c->device != NULL && c->device[0] != '\0' && serial_settings_valid(c);
}

/* The link talks to a host (TCP, RTU over TCP) rather than a serial device. */
static bool uses_host(enum drv_link_type type)
{
    return type == DRV_LINK_TCP || type == DRV_LINK_RTU_OVER_TCP;
}

est_err drv_link_open(const struct drv_link_config *config, struct drv_link **out)
{
    if (config == NULL || out == NULL)
        return EST_ERR_INVALID;
    *out = NULL;
    if (!config_valid(config) || config->response_timeout_ms < 0 || config->byte_timeout_ms < 0 ||
        config->slave_switch_delay_ms < 0 || config->request_gap_ms < 0 ||
        config->reconnect_min_ms < 0 || config->reconnect_max_ms < 0)
        return EST_ERR_INVALID;
    struct drv_link *link = calloc(1, sizeof *link);
    if (link == NULL)
        return EST_ERR_NOMEM;
    link->config = *config;
    const char *name = uses_host(config->type) ? config->host : config->device;
    char *copy = strdup(name);
    if (copy == NULL) {
        free(link);
        return EST_ERR_NOMEM;
    }
    link->fd = -1;
    if (uses_host(config->type)) {
        link->host = copy;
        link->config.host = copy;
        link->config.device = NULL;
    } else {
        link->device = copy;
        link->config.device = copy;
        link->config.host = NULL;
    }
    if (link->config.reconnect_min_ms == 0)
        link->config.reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    if (link->config.reconnect_max_ms == 0)
        link->config.reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    if (link->config.reconnect_max_ms < link->config.reconnect_min_ms)
        link->config.reconnect_max_ms = link->config.reconnect_min_ms;
    link->backoff_ms = link->config.reconnect_min_ms;
    link->last_slave = -1;
    link->jitter_state = (uint32_t)mono_us() ^ (uint32_t)(uintptr_t)link ^ 0x9E3779B9u;
    if (link->jitter_state == 0)
        link->jitter_state = 1;
    link->next_transaction = (uint16_t)next_random(link);
    derive_timing(link);
    *out = link;
    return EST_OK;
}

static void disconnect(struct drv_link *link)
{
    if (link->fd >= 0) {
        close(link->fd);
        link->fd = -1;
        link->last_slave = -1;
        link->timeouts_in_row = 0;
    }
    if (link->ctx == NULL)
        return;
    modbus_close(link->ctx);
    modbus_free(link->ctx);
    link->ctx = NULL;
    link->last_slave = -1;
}

void drv_link_close(struct drv_link *link)
{
    if (link == NULL)
        return;
    disconnect(link);
    free(link->host);
    free(link->device);
    free(link);
}

/* Closes the connection and refuses connect attempts for the current
 * backoff (plus up to 25% jitter); the next backoff doubles up to the cap. */
static void fail_connection(struct drv_link *link)
{
    disconnect(link);
    int base = link->backoff_ms;
    int jitter = base >= 4 ? (int)(next_random(link) % (uint32_t)(base / 4)) : 0;
    int64_t delay_ms = (int64_t)base + jitter;
    if (delay_ms > link->config.reconnect_max_ms)
        delay_ms = link->config.reconnect_max_ms;
    link->retry_at_us = mono_us() + delay_ms * 1000;
    link->backoff_ms = base > link->config.reconnect_max_ms / 2 ? link->config.reconnect_max_ms
                                                                : base * 2;
}

static void set_timeout(modbus_t *ctx, int64_t us,
                        int (*setter)(modbus_t *, uint32_t, uint32_t))
{
    setter(ctx, (uint32_t)(us / 1000000), (uint32_t)(us % 1000000));
}

static est_err ensure_connected_rtu_tcp(struct drv_link *link)
{
    if (link->fd >= 0)
        return EST_OK;
    if (link->retry_at_us != 0 && mono_us() < link->retry_at_us)
        return EST_ERR_IO;
    int fd = drv_rtutcp_connect(link->config.host, link->config.port, link->response_timeout_us);
    if (fd < 0) {
        fail_connection(link);
        return EST_ERR_IO;
    }
    link->fd = fd;
    link->retry_at_us = 0;
    link->last_slave = -1;
    link->timeouts_in_row = 0;
    return EST_OK;
}

static est_err ensure_connected(struct drv_link *link)
{
    if (link->config.type == DRV_LINK_RTU_OVER_TCP)
        return ensure_connected_rtu_tcp(link);
    if (link->ctx != NULL)
        return EST_OK;
    if (link->retry_at_us != 0 && mono_us() < link->retry_at_us)
        return EST_ERR_IO;
    const struct drv_link_config *c = &link->config;
    modbus_t *ctx;
    if (c->type == DRV_LINK_TCP) {
        char port[16];
        snprintf(port, sizeof port, "%d", c->port);
        ctx = modbus_new_tcp_pi(c->host, port);
    } else {
        ctx = modbus_new_rtu(c->device, c->baud, c->parity, c->data_bits, c->stop_bits);
    }
    if (ctx == NULL) {
        bool out_of_memory = errno == ENOMEM;
        fail_connection(link);
        return out_of_memory ? EST_ERR_NOMEM : EST_ERR_IO;
    }
    set_timeout(ctx, link->response_timeout_us, modbus_set_response_timeout);
    set_timeout(ctx, link->byte_timeout_us, modbus_set_byte_timeout);
    modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
    if (modbus_connect(ctx) != 0) {
        modbus_free(ctx);
        fail_connection(link);
        return EST_ERR_IO;
    }
    link->ctx = ctx;
    link->retry_at_us = 0;
    link->last_slave = -1;
    return EST_OK;
}

/* Waits out the RTU inter-frame silence, the request gap and the slave
 * switch delay, all counted from the end of the previous transaction. */
static void pace_request(struct drv_link *link, int slave)
{
    if (link->last_end_us == 0)
        return;
    int64_t wait_us = link->silence_us;
    int64_t gap_us = (int64_t)link->config.request_gap_ms * 1000;
    if (gap_us > wait_us)
        wait_us = gap_us;
    int64_t switch_us = (int64_t)link->config.slave_switch_delay_ms * 1000;
    if (link->last_slave >= 0 && slave != link->last_slave && switch_us > wait_us)
        wait_us = switch_us;
    sleep_us(link->last_end_us + wait_us - mono_us());
}

static bool is_exception_errno(int e)
{
    return e > MODBUS_ENOBASE && e <= EMBXGTAR;
}

static bool is_protocol_errno(int e)
{
    return e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC ||
           e == EMBMDATA || e == EMBBADSLAVE;
}

/* Maps a failed libmodbus call's errno and repairs the link for the next
 * request: flush after garbage, reopen after a TCP timeout (a late reply
 * would otherwise be taken as the next answer), backoff after I/O errors. */
static est_err classify_failure(struct drv_link *link, int e, int *exception)
{
    if (is_exception_errno(e)) {
        if (exception != NULL)
            *exception = e - MODBUS_ENOBASE;
        return EST_ERR_EXCEPTION;
    }
    if (is_protocol_errno(e)) {
        modbus_flush(link->ctx);
        return EST_ERR_PROTOCOL;
    }
    if (e == ETIMEDOUT) {
        if (link->config.type == DRV_LINK_TCP)
            disconnect(link); /* reconnect at once: the bus itself is fine */
        else
            modbus_flush(link->ctx);
        return EST_ERR_TIMEOUT;
    }
    fail_connection(link);
    return EST_ERR_IO;
}

/* ---- Modbus TCP framing ---- */

/* One request on a TCP link and what became of it. */
struct tcp_call {
    uint16_t transaction;
    int slave;
    uint8_t function;          /* DRV_FC_HOLDING, DRV_FC_INPUT or MODBUS_FC_WRITE_SINGLE */
    uint16_t address;
    uint16_t count;            /* registers read; 1 for a write */
    uint16_t value;            /* the value written */
    uint16_t *dest;            /* reads */
    bool answered;
    est_err result;
    int exception;
};

/* Holds back (or releases) the socket's small writes so that a batch of
 * requests leaves as one segment. Failure only costs segments: ignored. */
static void cork(int fd, int on)
{
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Waits for the socket to become readable or writable by the deadline. */
static est_err wait_socket(int fd, short events, int64_t deadline_us)
{
    for (;;) {
        int64_t left_us = deadline_us - mono_us();
        if (left_us <= 0)
            return EST_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)((left_us + 999) / 1000));
        if (rc > 0)
            return EST_OK;
        if (rc == 0)
            return EST_ERR_TIMEOUT;
        if (errno != EINTR)
            return EST_ERR_IO;
    }
}

/* Reads exactly n bytes by the deadline (libmodbus leaves the socket
 * non-blocking). EST_ERR_IO when the peer closed or the socket failed. */
static est_err read_exact(int fd, uint8_t *buf, size_t n, int64_t deadline_us)
{
    size_t got = 0;
    while (got < n) {
        est_err err = wait_socket(fd, POLLIN, deadline_us);
        if (err != EST_OK)
            return err;
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            return EST_ERR_IO;
        else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return EST_ERR_IO;
    }
    return EST_OK;
}

static est_err write_all(int fd, const uint8_t *buf, size_t n, int64_t deadline_us)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, buf + done, n - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            est_err err = wait_socket(fd, POLLOUT, deadline_us);
            if (err != EST_OK)
                return err == EST_ERR_TIMEOUT ? EST_ERR_IO : err;
            continue;
        }
        return EST_ERR_IO;
    }
    return EST_OK;
}

/* Throws away whatever arrived while no request was outstanding: late
 * replies, duplicated frames, garbage. false when the peer has closed. */
static bool discard_pending(struct drv_link *link, int fd)
{
    uint8_t junk[256];
    for (;;) {
        ssize_t r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
        if (r > 0) {
            link->stray_frames++;
            continue;
        }
        if (r == 0)
            return false;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
}

static est_err send_call(struct drv_link *link, int fd, struct tcp_call *c)
{
    c->transaction = link->next_transaction++;
    uint16_t word = c->function == MODBUS_FC_WRITE_SINGLE ? c->value : c->count;
    uint8_t frame[MBAP_HEADER_BYTES + 5] = {
        (uint8_t)(c->transaction >> 8), (uint8_t)c->transaction, 0, 0, 0, 6,
        (uint8_t)c->slave, c->function, (uint8_t)(c->address >> 8), (uint8_t)c->address,
        (uint8_t)(word >> 8), (uint8_t)word};
    return write_all(fd, frame, sizeof frame, mono_us() + link->response_timeout_us);
}

/* The PDU length of a normal reply to c: function, byte count and the
 * registers for a read; the echo of address and value for a write. */
static size_t reply_pdu_length(const struct tcp_call *c)
{
    return c->function == MODBUS_FC_WRITE_SINGLE ? 5 : 2 + 2 * (size_t)c->count;
}

#define EXCEPTION_PDU_LENGTH 2

/* Checks a reply PDU (of the length expected) against its request and
 * takes its registers. */
static est_err check_reply(struct tcp_call *c, const uint8_t *pdu, size_t len)
{
    if (pdu[0] == (c->function | MODBUS_EXCEPTION_FLAG)) {
        if (len != EXCEPTION_PDU_LENGTH || pdu[1] == 0 || pdu[1] > MODBUS_LAST_EXCEPTION)
            return EST_ERR_PROTOCOL;
        c->exception = pdu[1];
        return EST_ERR_EXCEPTION;
    }
    if (pdu[0] != c->function || len != reply_pdu_length(c))
        return EST_ERR_PROTOCOL;
    if (c->function == MODBUS_FC_WRITE_SINGLE) {
        uint16_t address = (uint16_t)(pdu[1] << 8 | pdu[2]);
        uint16_t value = (uint16_t)(pdu[3] << 8 | pdu[4]);
        return address == c->address && value == c->value ? EST_OK : EST_ERR_PROTOCOL;
    }
    if (pdu[1] != 2 * c->count)
        return EST_ERR_PROTOCOL;
    for (uint16_t i = 0; i < c->count; i++)
        c->dest[i] = (uint16_t)(pdu[2 + 2 * i] << 8 | pdu[3 + 2 * i]);
    return EST_OK;
}

static struct tcp_call *call_for(struct tcp_call *calls, size_t n, unsigned transaction)
{
    for (size_t i = 0; i < n; i++)
        if (!calls[i].answered && calls[i].transaction == transaction)
            return &calls[i];
    return NULL;
}

/* Takes one frame off the stream. A frame for none of the calls (a stray
 * or duplicated reply) is skipped whole; a frame for a call is checked
 * against it, unit id included. EST_OK while the stream is still in step;
 * otherwise the connection must be reopened: EST_ERR_TIMEOUT (nothing, or
 * not all of a frame, by the deadline), EST_ERR_PROTOCOL (a header no
 * Modbus TCP peer sends, or a length that is not the one the reply must
 * have: never read past), EST_ERR_IO. *current is the call the frame
 * answered, if any. */
static est_err receive_frame(struct drv_link *link, int fd, struct tcp_call *calls, size_t n,
                             int64_t deadline_us, struct tcp_call **current)
{
    *current = NULL;
    uint8_t header[MBAP_HEADER_BYTES];
    est_err err = read_exact(fd, header, sizeof header, deadline_us);
    if (err != EST_OK)
        return err;
    unsigned transaction = (unsigned)header[0] << 8 | header[1];
    unsigned protocol = (unsigned)header[2] << 8 | header[3];
    unsigned length = (unsigned)header[4] << 8 | header[5];
    if (protocol != 0 || length < MBAP_LENGTH_MIN || length > MBAP_LENGTH_MAX)
        return EST_ERR_PROTOCOL;
    size_t pdu_len = length - 1;
    uint8_t pdu[MBAP_LENGTH_MAX];
    int64_t body_deadline = mono_us() + link->byte_timeout_us;
    if (body_deadline > deadline_us)
        body_deadline = deadline_us;
    struct tcp_call *c = call_for(calls, n, transaction);
    if (c == NULL) {
        err = read_exact(fd, pdu, pdu_len, body_deadline);
        if (err == EST_OK)
            link->stray_frames++;
        return err;
    }
    *current = c;
    c->answered = true;
    if (pdu_len != reply_pdu_length(c) && pdu_len != EXCEPTION_PDU_LENGTH) {
        c->result = EST_ERR_PROTOCOL;
        return EST_ERR_PROTOCOL;
    }
    err = read_exact(fd, pdu, pdu_len, body_deadline);
    if (err != EST_OK) {
        c->result = err == EST_ERR_IO ? EST_ERR_IO : EST_ERR_PROTOCOL;
        return err;
    }
    c->result = header[6] != (uint8_t)c->slave ? EST_ERR_PROTOCOL : check_reply(c, pdu, pdu_len);
    return EST_OK;
}

/* After the stream broke off with err: the calls still unanswered that a
 * later call's reply overtook were skipped by the converter (timeout); the
 * first one after the last answer gets err (when no frame decided it); the
 * rest were not answered (EST_ERR_STATE: read them again alone). */
static void settle_unanswered(struct tcp_call *calls, size_t n, est_err err, bool err_taken)
{
    size_t last_answered = n;
    for (size_t i = n; i-- > 0;)
        if (calls[i].answered) {
            last_answered = i;
            break;
        }
    bool given = err_taken;
    for (size_t i = 0; i < n; i++) {
        struct tcp_call *c = &calls[i];
        if (c->answered)
            continue;
        if (last_answered != n && i < last_answered) {
            c->result = EST_ERR_TIMEOUT;
        } else if (!given) {
            c->result = err;
            given = true;
        }
    }
}

/* Sends the calls back to back and takes their replies, matched by
 * transaction id and unit. Each call waits at most one response timeout
 * counted from the previous reply. */
static void tcp_exchange(struct drv_link *link, struct tcp_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        calls[i].answered = false;
        calls[i].result = EST_ERR_STATE;
        calls[i].exception = 0;
    }
    if (link->ctx != NULL && !discard_pending(link, modbus_get_socket(link->ctx)))
        disconnect(link); /* the peer closed while idle: reconnect now */
    est_err err = ensure_connected(link);
    if (err != EST_OK) {
        for (size_t i = 0; i < n; i++)
            calls[i].result = err;
        link->failures += n;
        return;
    }
    int fd = modbus_get_socket(link->ctx);
    size_t nsent = 0;
    if (n > 1)
        cork(fd, 1);
    for (; nsent < n && err == EST_OK; nsent++)
        err = send_call(link, fd, &calls[nsent]);
    if (n > 1)
        cork(fd, 0);
    bool err_taken = false;
    if (err == EST_OK) {
        size_t left = n;
        int64_t deadline_us = mono_us() + link->response_timeout_us;
        while (left > 0) {
            struct tcp_call *current = NULL;
            err = receive_frame(link, fd, calls, n, deadline_us, &current);
            if (current != NULL) {
                left--;
                deadline_us = mono_us() + link->response_timeout_us;
            }
            if (err != EST_OK) {
                err_taken = current != NULL;
                break;
            }
        }
    } else {
        nsent--;
        calls[nsent].answered = true;
        calls[nsent].result = err;
        err_taken = true;
    }
    if (err != EST_OK)
        settle_unanswered(calls, nsent, err, err_taken);
    link->last_end_us = mono_us();
    link->last_slave = calls[n - 1].slave;
    for (size_t i = 0; i < n; i++) {
        if (calls[i].result == EST_ERR_STATE)
            continue;
        link->transactions++;
        if (calls[i].result == EST_OK)
            link->backoff_ms = link->config.reconnect_min_ms;
        else
            link->failures++;
    }
    if (err == EST_ERR_IO)
        fail_connection(link);
    else if (err != EST_OK)
        disconnect(link); /* out of step, or a late reply may follow: start afresh */
}

/* ---- single transactions ---- */

enum link_op { OP_READ_HOLDING, OP_READ_INPUT, OP_WRITE_SINGLE };

static est_err tcp_transact(struct drv_link *link, int slave, enum link_op op, uint16_t address,
                            uint16_t count, uint16_t *dest, uint16_t value, int *exception)
{
    struct tcp_call call = {
        .slave = slave,
        .function = op == OP_READ_HOLDING  ? DRV_FC_HOLDING
                    : op == OP_READ_INPUT ? DRV_FC_INPUT
                                          : MODBUS_FC_WRITE_SINGLE,
        .address = address,
        .count = op == OP_WRITE_SINGLE ? 1 : count,
        .value = value,
        .dest = dest};
    pace_request(link, slave);
    tcp_exchange(link, &call, 1);
    if (exception != NULL)
        *exception = call.exception;
    return call.result;
}

/* One RTU-over-TCP exchange, connected and paced: a stray late reply
 * waiting on the socket is thrown away first; after a garbled reply the
 * rest of it is drained; timeouts in a row reconnect (the converter may
 * have lost the connection), an I/O failure backs off. */
static est_err transact_rtu_tcp(struct drv_link *link, int slave, enum link_op op,
                                uint16_t address, uint16_t count, uint16_t *dest, uint16_t value,
                                int *exception)
{
    uint8_t request[DRV_RTU_REQUEST_BYTES];
    if (op == OP_WRITE_SINGLE)
        drv_rtu_write_request((uint8_t)slave, address, value, request);
    else
        drv_rtu_read_request((uint8_t)slave, op == OP_READ_HOLDING ? DRV_FC_HOLDING : DRV_FC_INPUT,
                             address, count, request);
    if (!drv_rtutcp_discard(link->fd)) {
        fail_connection(link);
        return EST_ERR_IO;
    }
    struct drv_rtutcp_timing timing = {.response_us = link->response_timeout_us,
                                       .frame_gap_us = link->byte_timeout_us};
    int code = 0;
    bool garbled = false;
    est_err err = drv_rtutcp_transact(link->fd, request, &timing,
                                      op == OP_WRITE_SINGLE ? NULL : dest,
                                      op == OP_WRITE_SINGLE ? 0 : count, &code, &garbled);
    if (err == EST_ERR_EXCEPTION && exception != NULL)
        *exception = code;
    if (err == EST_ERR_IO) {
        fail_connection(link);
        return err;
    }
    link->timeouts_in_row = err == EST_ERR_TIMEOUT ? link->timeouts_in_row + 1 : 0;
    if (link->timeouts_in_row >= RTU_TCP_TIMEOUTS_BEFORE_RECONNECT) {
        disconnect(link); /* reconnect at once on the next request */
        return err;
    }
    if (garbled && !drv_rtutcp_drain(link->fd, link->byte_timeout_us, link->response_timeout_us))
        fail_connection(link);
    return err;
}

static est_err transact(struct drv_link *link, int slave, enum link_op op, uint16_t address,
                        uint16_t count, uint16_t *dest, uint16_t value, int *exception)
{
    if (exception != NULL)
        *exception = 0;
    /* RTU ids 1-247 (0 is broadcast: nobody answers); a TCP unit id may be
     * 0 or 255 for the gateway itself. */
    bool slave_ok = link->config.type == DRV_LINK_TCP ? slave >= 0 && slave <= 255
                                                      : slave >= 1 && slave <= 247;
    if (!slave_ok)
        return EST_ERR_INVALID;
    if (link->config.type == DRV_LINK_TCP)
        return tcp_transact(link, slave, op, address, count, dest, value, exception);
    est_err err = ensure_connected(link);
    if (err != EST_OK) {
        link->failures++;
        return err;
    }
    if (link->config.type == DRV_LINK_RTU_OVER_TCP) {
        pace_request(link, slave);
        err = transact_rtu_tcp(link, slave, op, address, count, dest, value, exception);
        link->transactions++;
        link->last_end_us = mono_us();
        link->last_slave = slave;
        if (err == EST_OK)
            link->backoff_ms = link->config.reconnect_min_ms;
        else
            link->failures++;
        return err;
    }
    if (modbus_set_slave(link->ctx, slave) != 0) {
        link->failures++;
        return EST_ERR_INVALID;
    }
    pace_request(link, slave);
    errno = 0;
    int rc;
    switch (op) {
    case OP_READ_HOLDING:
        rc = modbus_read_registers(link->ctx, address, count, dest);
        break;
    case OP_READ_INPUT:
        rc = modbus_read_input_registers(link->ctx, address, count, dest);
        break;
    case OP_WRITE_SINGLE:
    default:
        rc = modbus_write_register(link->ctx, address, value);
        count = 1;
        break;
    }
    int saved_errno = errno;
    link->transactions++;
    link->last_end_us = mono_us();
    link->last_slave = slave;
    if (rc == (int)count) {
        link->backoff_ms = link->config.reconnect_min_ms;
        return EST_OK;
    }
    link->failures++;
    if (rc >= 0) {
        modbus_flush(link->ctx);
        return EST_ERR_PROTOCOL;
    }
    return classify_failure(link, saved_errno, exception);
}

est_err drv_link_read(struct drv_link *link, int slave, uint8_t function, uint16_t address,
                      uint16_t count, uint16_t *dest, int *exception)
{
    if (exception != NULL)
        *exception = 0;
    if (link == NULL || dest == NULL || count == 0 || count > DRV_MAX_READ_REGS ||
        (uint32_t)address + count > 65536u ||
        (function != DRV_FC_HOLDING && function != DRV_FC_INPUT))
        return EST_ERR_INVALID;
    return transact(link, slave, function == DRV_FC_HOLDING ? OP_READ_HOLDING : OP_READ_INPUT,
                    address, count, dest, 0, exception);
}

est_err drv_link_write(struct drv_link *link, int slave, uint16_t address, uint16_t value,
                       int *exception)
{
    if (exception != NULL)
        *exception = 0;
    if (link == NULL)
        return EST_ERR_INVALID;
    return transact(link, slave, OP_WRITE_SINGLE, address, 0, NULL, value, exception);
}

/* ---- pipelined reads (TCP) ---- */

static bool read_valid(const struct drv_link_read *r)
{
    return r->dest != NULL && r->count > 0 && r->count <= DRV_MAX_READ_REGS &&
           (uint32_t)r->address + r->count <= 65536u &&
           (r->function == DRV_FC_HOLDING || r->function == DRV_FC_INPUT) && r->slave >= 0 &&
           r->slave <= 255;
}

/* Sends up to DRV_LINK_MAX_IN_FLIGHT reads, then takes their replies.
 * Reads left at EST_ERR_STATE were not answered. */
static void read_in_flight(struct drv_link *link, struct drv_link_read *reads, size_t n)
{
    struct tcp_call calls[DRV_LINK_MAX_IN_FLIGHT];
    size_t index[DRV_LINK_MAX_IN_FLIGHT];
    size_t ncalls = 0;
    for (size_t i = 0; i < n; i++) {
        struct drv_link_read *r = &reads[i];
        if (!read_valid(r)) {
            r->result = EST_ERR_INVALID;
            continue;
        }
        calls[ncalls] = (struct tcp_call){.slave = r->slave, .function = r->function,
                                          .address = r->address, .count = r->count,
                                          .dest = r->dest};
        index[ncalls++] = i;
    }
    if (ncalls == 0)
        return;
    tcp_exchange(link, calls, ncalls);
    for (size_t k = 0; k < ncalls; k++) {
        reads[index[k]].result = calls[k].result;
        reads[index[k]].exception = calls[k].exception;
    }
}

void drv_link_read_many(struct drv_link *link, struct drv_link_read *reads, size_t n)
{
    if (reads == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        reads[i].result = EST_ERR_STATE;
        reads[i].exception = 0;
    }
    if (link == NULL) {
        for (size_t i = 0; i < n; i++)
            reads[i].result = EST_ERR_INVALID;
        return;
    }
    /* Requests in flight cannot be paced, and a serial line carries one
     * request at a time. */
    bool paced = link->config.request_gap_ms > 0 || link->config.slave_switch_delay_ms > 0;
    if (link->config.type != DRV_LINK_TCP || paced || n == 1) {
        for (size_t i = 0; i < n; i++) {
            struct drv_link_read *r = &reads[i];
            r->result = drv_link_read(link, r->slave, r->function, r->address, r->count, r->dest,
                                      &r->exception);
        }
        return;
    }
    for (size_t start = 0; start < n; start += DRV_LINK_MAX_IN_FLIGHT) {
        size_t chunk = n - start < DRV_LINK_MAX_IN_FLIGHT ? n - start : DRV_LINK_MAX_IN_FLIGHT;
        read_in_flight(link, reads + start, chunk);
        if (reads[start + chunk - 1].result == EST_ERR_STATE)
            return; /* this batch broke off: leave the rest for the caller */
    }
}

void drv_link_stats(const struct drv_link *link, uint64_t *transactions, uint64_t *failures)
{
    if (transactions != NULL)
        *transactions = link != NULL ? link->transactions : 0;
    if (failures != NULL)
        *failures = link != NULL ? link->failures : 0;
}

uint64_t drv_link_stray_frames(const struct drv_link *link)
{
    return link != NULL ? link->stray_frames : 0;
}
