/* link.c - one Modbus bus (TCP, or RTU on a serial line) over libmodbus
 * 3.1.6, or RTU frames over TCP (rtu_tcp.c, which libmodbus cannot do):
 * lazy connect, reconnect with exponential backoff and jitter, errno
 * -> est_err mapping, and the RTU timing libmodbus leaves to the caller
 * (3.5-character inter-frame silence, slave-switch delay, request gap);
 * on TCP, pipelined batches of reads. Used by exactly one thread; never logs. */
#include "drivers.h"

#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
/* Room for the largest frame libmodbus receives (260 bytes), with margin. */
#define REPLY_BUFFER_BYTES 512
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
    uint64_t transactions;
    uint64_t failures;
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

enum link_op { OP_READ_HOLDING, OP_READ_INPUT, OP_WRITE_SINGLE };

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

/* Holds back (or releases) the socket's small writes so that a batch of
 * requests leaves as one segment. Failure only costs segments: ignored. */
static void cork(modbus_t *ctx, int on)
{
    int fd = modbus_get_socket(ctx);
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Checks one reply against its request. modbus_send_raw_request sends
 * transaction id 0, so every reply must carry 0; with the protocol id, the
 * MBAP length, the unit id, the function and the byte count, a reply that
 * belongs to another request (or is garbage) does not pass. */
static est_err parse_reply(const uint8_t *rsp, int len, struct drv_link_read *r)
{
    if (len < MBAP_HEADER_BYTES + 2)
        return EST_ERR_PROTOCOL;
    unsigned transaction = (unsigned)rsp[0] << 8 | rsp[1];
    unsigned protocol = (unsigned)rsp[2] << 8 | rsp[3];
    unsigned mbap_length = (unsigned)rsp[4] << 8 | rsp[5];
    if (transaction != 0 || protocol != 0 || mbap_length != (unsigned)len - 6 ||
        rsp[6] != (uint8_t)r->slave)
        return EST_ERR_PROTOCOL;
    uint8_t function = rsp[7];
    if (function == (r->function | MODBUS_EXCEPTION_FLAG)) {
        if (len != MBAP_HEADER_BYTES + 2 || rsp[8] == 0 || rsp[8] > MODBUS_LAST_EXCEPTION)
            return EST_ERR_PROTOCOL;
        r->exception = rsp[8];
        return EST_ERR_EXCEPTION;
    }
    if (function != r->function || rsp[8] != 2 * r->count ||
        len != MBAP_HEADER_BYTES + 2 + 2 * r->count)
        return EST_ERR_PROTOCOL;
    for (uint16_t i = 0; i < r->count; i++)
        r->dest[i] = (uint16_t)(rsp[9 + 2 * i] << 8 | rsp[10 + 2 * i]);
    return EST_OK;
}

/* A reply that is not read k's, with a well-formed header, from the unit
 * and function of a later read: the device of read k never answered (a
 * converter skips a silent device and answers the next request). */
static bool reply_of_later_read(const uint8_t *rsp, int len, const struct drv_link_read *reads,
                                const size_t *sent, size_t k, size_t nsent)
{
    if (len < MBAP_HEADER_BYTES + 2 || rsp[0] != 0 || rsp[1] != 0 || rsp[2] != 0 || rsp[3] != 0 ||
        ((unsigned)rsp[4] << 8 | rsp[5]) != (unsigned)len - 6)
        return false;
    for (size_t j = k + 1; j < nsent; j++) {
        const struct drv_link_read *later = &reads[sent[j]];
        if (rsp[6] == (uint8_t)later->slave &&
            (rsp[7] & ~MODBUS_EXCEPTION_FLAG) == later->function)
            return true;
    }
    return false;
}

/* Sends up to DRV_LINK_MAX_IN_FLIGHT reads, then takes their replies in
 * order. Reads left at EST_ERR_STATE were not answered. */
static void read_in_flight(struct drv_link *link, struct drv_link_read *reads, size_t n)
{
    est_err err = ensure_connected(link);
    if (err != EST_OK) {
        for (size_t i = 0; i < n; i++)
            reads[i].result = err;
        link->failures += n;
        return;
    }
    size_t sent[DRV_LINK_MAX_IN_FLIGHT];
    size_t nsent = 0;
    cork(link->ctx, 1);
    for (size_t i = 0; i < n; i++) {
        struct drv_link_read *r = &reads[i];
        if (!read_valid(r)) {
            r->result = EST_ERR_INVALID;
            continue;
        }
        uint8_t request[6] = {(uint8_t)r->slave, r->function,
                              (uint8_t)(r->address >> 8), (uint8_t)r->address,
                              (uint8_t)(r->count >> 8), (uint8_t)r->count};
        errno = 0;
        if (modbus_send_raw_request(link->ctx, request, sizeof request) < 0) {
            link->transactions++;
            link->failures++;
            r->result = classify_failure(link, errno, &r->exception);
            if (link->ctx != NULL)
                disconnect(link);
            return;
        }
        sent[nsent++] = i;
    }
    cork(link->ctx, 0);
    uint8_t rsp[REPLY_BUFFER_BYTES];
    for (size_t k = 0; k < nsent; k++) {
        struct drv_link_read *r = &reads[sent[k]];
        errno = 0;
        int len = modbus_receive_confirmation(link->ctx, rsp);
        int saved_errno = errno;
        link->transactions++;
        link->last_end_us = mono_us();
        link->last_slave = r->slave;
        r->result = len < 0 ? classify_failure(link, saved_errno, &r->exception)
                            : parse_reply(rsp, len, r);
        if (r->result == EST_ERR_PROTOCOL && len > 0 &&
            reply_of_later_read(rsp, len, reads, sent, k, nsent))
            r->result = EST_ERR_TIMEOUT;
        if (r->result == EST_OK) {
            link->backoff_ms = link->config.reconnect_min_ms;
            continue;
        }
        link->failures++;
        if (r->result == EST_ERR_EXCEPTION)
            continue;
        /* Out of step with the replies still to come: start afresh. */
        if (link->ctx != NULL)
            disconnect(link);
        return;
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
