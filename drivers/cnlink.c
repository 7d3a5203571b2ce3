/* cnlink.c - one RS-485 bus of DL/T 645 electricity meters or CJ/T 188
 * water meters: the serial port (termios, 2400 8E1 usual) or the TCP
 * connection to a serial converter in transparent mode, wake-up preamble,
 * one request at a time with a response timeout and a turnaround pause,
 * the codecs' scanner to find the reply among noise and echoes, and the
 * model's points decoded into a drv_reading; the read-address broadcast
 * and address probes for commissioning. Used by exactly one thread; never
 * logs. */
#include "drivers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cnproto.h"
#include "rtu_tcp.h"

#define RX_BUFFER_BYTES 1024
#define DEFAULT_TURNAROUND_MS 20
#define DEFAULT_RECONNECT_MAX_MS 5000
#define RECONNECT_MIN_MS 200
/* The slowest meters take up to 500 ms before they answer; the reply
 * itself is short (under 64 characters for the items read here). */
#define METER_LATENCY_MS 500
#define REPLY_CHARS 64
#define DLT645_DEFAULT_PREAMBLE 4
#define CJT188_DEFAULT_PREAMBLE 2
/* Over TCP: the network and the converter's own buffering. */
#define CONVERTER_LATENCY_MS 200
#define CONNECT_TIMEOUT_MS 1000
/* A converter can lose a connection without resetting it: after this many
 * timeouts in a row the link connects again. */
#define TIMEOUTS_BEFORE_RECONNECT 3

struct drv_cnlink {
    struct drv_cnlink_config config; /* device and host point at the copies below */
    char *device;                    /* NULL over TCP */
    char *host;                      /* NULL on a serial port */
    int fd;                          /* -1 while closed */
    unsigned timeouts_in_a_row;      /* TCP: see TIMEOUTS_BEFORE_RECONNECT */
    int64_t response_timeout_ms;
    int64_t retry_at_ms;             /* no open attempt before this */
    int backoff_ms;
    int64_t last_end_ms;             /* end of the last transaction; 0 = none */
    uint8_t rx[RX_BUFFER_BYTES];
    size_t rx_len;
    uint8_t ser;                     /* CJ/T 188 sequence byte */
    uint64_t transactions, failures;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

size_t drv_cn_address_len(enum drv_protocol protocol)
{
    return protocol == DRV_PROTO_DLT645 ? DLT645_ADDRESS_LEN
           : protocol == DRV_PROTO_CJT188 ? CJT188_ADDRESS_LEN
                                          : 0;
}

static bool speed_of(int baud, speed_t *out)
{
    static const struct { int baud; speed_t speed; } speeds[] = {
        {300, B300},     {600, B600},     {1200, B1200},   {2400, B2400},
        {4800, B4800},   {9600, B9600},   {19200, B19200}, {38400, B38400},
        {57600, B57600}, {115200, B115200},
    };
    for (size_t i = 0; i < sizeof speeds / sizeof speeds[0]; i++)
        if (speeds[i].baud == baud) {
            *out = speeds[i].speed;
            return true;
        }
    return false;
}

static bool over_tcp(const struct drv_cnlink *link)
{
    return link->host != NULL;
}

static bool config_valid(const struct drv_cnlink_config *c)
{
    speed_t speed;
    bool serial = c->device != NULL && c->device[0] != '\0' && c->host == NULL;
    bool tcp = c->host != NULL && c->host[0] != '\0' && c->device == NULL && c->port > 0 &&
               c->port <= 65535;
    return (c->protocol == DRV_PROTO_DLT645 || c->protocol == DRV_PROTO_CJT188) &&
           (serial || tcp) && speed_of(c->baud, &speed) &&
           (c->parity == 'N' || c->parity == 'E' || c->parity == 'O') && c->data_bits >= 5 &&
           c->data_bits <= 8 && (c->stop_bits == 1 || c->stop_bits == 2) &&
           c->response_timeout_ms >= 0 && c->turnaround_ms >= 0 &&
           c->preamble_count <= CN_MAX_PREAMBLE && c->reconnect_max_ms >= 0;
}

est_err drv_cnlink_open(const struct drv_cnlink_config *config, struct drv_cnlink **out)
{
    if (config == NULL || out == NULL)
        return EST_ERR_INVALID;
    *out = NULL;
    if (!config_valid(config))
        return EST_ERR_INVALID;
    struct drv_cnlink *link = calloc(1, sizeof *link);
    if (link == NULL)
        return EST_ERR_NOMEM;
    link->device = config->device ? strdup(config->device) : NULL;
    link->host = config->host ? strdup(config->host) : NULL;
    if (link->device == NULL && link->host == NULL) {
        free(link);
        return EST_ERR_NOMEM;
    }
    link->config = *config;
    link->config.device = link->device;
    link->config.host = link->host;
    if (link->config.turnaround_ms == 0)
        link->config.turnaround_ms = DEFAULT_TURNAROUND_MS;
    if (link->config.reconnect_max_ms == 0)
        link->config.reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    if (link->config.preamble_count == 0)
        link->config.preamble_count = config->protocol == DRV_PROTO_DLT645
                                          ? DLT645_DEFAULT_PREAMBLE
                                          : CJT188_DEFAULT_PREAMBLE;
    int bits = 1 + config->data_bits + (config->parity == 'N' ? 0 : 1) + config->stop_bits;
    int64_t char_us = ((int64_t)bits * 1000000 + config->baud - 1) / config->baud;
    link->response_timeout_ms = config->response_timeout_ms > 0
                                    ? config->response_timeout_ms
                                    : METER_LATENCY_MS + (REPLY_CHARS * char_us + 999) / 1000 +
                                          (config->host ? CONVERTER_LATENCY_MS : 0);
    link->fd = -1;
    link->backoff_ms = RECONNECT_MIN_MS;
    *out = link;
    return EST_OK;
}

static void close_port(struct drv_cnlink *link)
{
    if (link->fd >= 0)
        close(link->fd);
    link->fd = -1;
    link->rx_len = 0;
}

void drv_cnlink_close(struct drv_cnlink *link)
{
    if (link == NULL)
        return;
    close_port(link);
    free(link->device);
    free(link->host);
    free(link);
}

/* Closes the port and refuses to reopen it for the current backoff. */
static void fail_port(struct drv_cnlink *link)
{
    close_port(link);
    link->retry_at_ms = mono_ms() + link->backoff_ms;
    link->backoff_ms = link->backoff_ms > link->config.reconnect_max_ms / 2
                           ? link->config.reconnect_max_ms
                           : link->backoff_ms * 2;
}

/* glibc's tcsetattr reads the settings back and says EINVAL when PARENB
 * did not take. A pseudo-terminal (a simulator's line) carries bytes, not
 * bits, and may keep its own parity flag: the line is usable when parity
 * is all that differs. UNIX98 pty slaves have majors 136-143. */
static bool pty_without_parity(int fd, const struct termios *wanted)
{
    struct stat st;
    struct termios now;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) < 136 ||
        major(st.st_rdev) > 143 || tcgetattr(fd, &now) != 0)
        return false;
    tcflag_t parity = PARENB | PARODD;
    return (now.c_cflag & ~parity) == (wanted->c_cflag & ~parity);
}

static bool set_line(int fd, const struct drv_cnlink_config *c)
{
    struct termios t;
    speed_t speed;
    if (tcgetattr(fd, &t) != 0 || !speed_of(c->baud, &speed))
        return false;
    cfmakeraw(&t);
    cfsetispeed(&t, speed);
    cfsetospeed(&t, speed);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cflag |= c->data_bits == 5 ? CS5 : c->data_bits == 6 ? CS6 : c->data_bits == 7 ? CS7 : CS8;
    if (c->parity != 'N')
        t.c_cflag |= PARENB | (c->parity == 'O' ? PARODD : 0);
    if (c->stop_bits == 2)
        t.c_cflag |= CSTOPB;
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) == 0)
        return true;
    return errno == EINVAL && pty_without_parity(fd, &t);
}

static est_err ensure_open(struct drv_cnlink *link)
{
    if (link->fd >= 0)
        return EST_OK;
    if (mono_ms() < link->retry_at_ms)
        return EST_ERR_IO;
    if (over_tcp(link)) {
        int fd = drv_rtutcp_connect(link->host, link->config.port,
                                    (int64_t)CONNECT_TIMEOUT_MS * 1000);
        if (fd < 0) {
            fail_port(link);
            return EST_ERR_IO;
        }
        link->fd = fd;
        link->backoff_ms = RECONNECT_MIN_MS;
        link->timeouts_in_a_row = 0;
        return EST_OK;
    }
    int fd = open(link->device, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fail_port(link);
        return EST_ERR_IO;
    }
    if (!set_line(fd, &link->config)) {
        close(fd);
        fail_port(link);
        return EST_ERR_IO;
    }
    link->fd = fd;
    link->backoff_ms = RECONNECT_MIN_MS;
    return EST_OK;
}

static est_err write_all(struct drv_cnlink *link, const uint8_t *data, size_t len, int64_t deadline)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = over_tcp(link) ? send(link->fd, data + done, len - done, MSG_NOSIGNAL)
                                   : write(link->fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return EST_ERR_IO;
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return EST_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = link->fd, .events = POLLOUT};
        poll(&pfd, 1, (int)left);
    }
    return EST_OK;
}

static bool scan_one(struct drv_cnlink *link, size_t *consumed, struct dlt645_frame *dlt,
                     struct cjt188_frame *cjt, unsigned *bad)
{
    struct cn_scan scan;
    if (link->config.protocol == DRV_PROTO_DLT645)
        dlt645_scan(link->rx, link->rx_len, dlt, &scan);
    else
        cjt188_scan(link->rx, link->rx_len, cjt, &scan);
    *consumed = scan.consumed;
    *bad += scan.bad_checksum + scan.bad_end;
    return scan.result == CN_SCAN_FRAME;
}

static void drop_rx(struct drv_cnlink *link, size_t n)
{
    if (n > link->rx_len)
        n = link->rx_len;
    memmove(link->rx, link->rx + n, link->rx_len - n);
    link->rx_len -= n;
}

/* Throws away what arrived before the request (a late reply); false when
 * the TCP connection turns out to be closed. */
static bool flush_input(struct drv_cnlink *link)
{
    if (over_tcp(link))
        return drv_rtutcp_discard(link->fd);
    tcflush(link->fd, TCIFLUSH);
    return true;
}

/* Sends one request and waits for the frame check accepts. EST_ERR_TIMEOUT
 * when nothing came, EST_ERR_PROTOCOL when only garbled or foreign frames
 * did; otherwise what check said. */
static est_err transact(struct drv_cnlink *link, const uint8_t *req, size_t req_len,
                        est_err (*check)(void *ctx, const void *frame), void *ctx)
{
    est_err err = ensure_open(link);
    if (err != EST_OK)
        return err;
    if (link->last_end_ms > 0)
        sleep_ms(link->last_end_ms + link->config.turnaround_ms - mono_ms());
    if (!flush_input(link)) {
        /* The converter closed the connection while the bus was idle
         * (restarted, or timed the connection out): connect again now. */
        close_port(link);
        err = ensure_open(link);
        if (err != EST_OK)
            return err;
    }
    link->transactions++;
    link->rx_len = 0;
    int64_t start = mono_ms();
    err = write_all(link, req, req_len, start + link->response_timeout_ms);
    if (err == EST_ERR_IO) {
        fail_port(link);
        link->failures++;
        return err;
    }
    int64_t deadline = mono_ms() + link->response_timeout_ms;
    bool saw_garbage = false;
    unsigned bad = 0;
    struct dlt645_frame dlt;
    struct cjt188_frame cjt;
    while (err == EST_OK) {
        size_t consumed = 0;
        while (scan_one(link, &consumed, &dlt, &cjt, &bad)) {
            drop_rx(link, consumed);
            est_err verdict = check(ctx, link->config.protocol == DRV_PROTO_DLT645
                                             ? (const void *)&dlt
                                             : (const void *)&cjt);
            if (verdict != EST_ERR_PROTOCOL) {
                link->last_end_ms = mono_ms();
                link->timeouts_in_a_row = 0;
                if (verdict != EST_OK && verdict != EST_ERR_NOTFOUND)
                    link->failures++;
                return verdict;
            }
            saw_garbage = true;
        }
        drop_rx(link, consumed);
        if (link->rx_len == sizeof link->rx)
            link->rx_len = 0; /* a buffer of noise: start again */
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            err = EST_ERR_TIMEOUT;
            break;
        }
        struct pollfd pfd = {.fd = link->fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno != EINTR) {
            err = EST_ERR_IO;
            break;
        }
        if (ready <= 0)
            continue;
        ssize_t n = read(link->fd, link->rx + link->rx_len, sizeof link->rx - link->rx_len);
        if (n > 0)
            link->rx_len += (size_t)n;
        else if (n == 0 && over_tcp(link))
            err = EST_ERR_IO; /* the converter closed the connection */
        else if (!over_tcp(link) && (n == 0 || (errno != EAGAIN && errno != EINTR)) &&
                 (pfd.revents & POLLHUP) != 0)
            sleep_ms(5); /* a pty whose other end is closed: wait out the timeout */
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            err = EST_ERR_IO;
    }
    link->failures++;
    link->last_end_ms = mono_ms();
    if (err == EST_ERR_IO) {
        fail_port(link);
        return err;
    }
    link->rx_len = 0;
    if (saw_garbage || bad > 0) {
        link->timeouts_in_a_row = 0;
        return EST_ERR_PROTOCOL;
    }
    if (over_tcp(link) && ++link->timeouts_in_a_row >= TIMEOUTS_BEFORE_RECONNECT) {
        link->timeouts_in_a_row = 0;
        close_port(link); /* connect again on the next request, without backoff */
    }
    return EST_ERR_TIMEOUT;
}

/* ---- DL/T 645 ---- */

struct dlt645_wait {
    const struct dlt645_options *options;
    const uint8_t *address;
    uint32_t di;
    struct dlt645_reply reply;
    uint8_t value[CN_MAX_DATA];
};

static est_err dlt645_check(void *ctx, const void *frame)
{
    struct dlt645_wait *w = ctx;
    est_err err = dlt645_parse_read_reply(w->options, frame, w->address, w->di, &w->reply);
    if (err == EST_OK) {
        /* The reply points into the scanner's frame: keep a copy. */
        memcpy(w->value, w->reply.value, w->reply.value_len);
        w->reply.value = w->value;
    }
    return err;
}

/* The status word's state and flags, as drv_decode does for Modbus. */
static void apply_status(const struct drv_point *pt, uint16_t raw, struct drv_reading *out)
{
    const struct drv_status_word *w = pt->status;
    for (size_t i = 0; i < w->nstates; i++)
        if ((raw & w->states[i].mask) == w->states[i].value) {
            out->value[pt->quantity] = w->states[i].result;
            out->present |= 1ull << pt->quantity;
            break;
        }
    for (size_t i = 0; i < w->nflags; i++) {
        out->value[w->flags[i].quantity] = (raw & w->flags[i].mask) != 0 ? 1.0 : 0.0;
        out->present |= 1ull << w->flags[i].quantity;
    }
}

static est_err dlt645_read_point(struct drv_cnlink *link, const struct drv_model *model,
                                 const struct drv_point *pt, const uint8_t *address,
                                 struct drv_reading *out, int *code)
{
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.variant = model->dlt645_version == 1997 ? DLT645_1997 : DLT645_2007;
    options.preamble_count = link->config.preamble_count;
    uint8_t req[DLT645_FRAME_MAX];
    size_t len = 0;
    est_err err = dlt645_build_read(&options, address, pt->di, req, sizeof req, &len);
    if (err != EST_OK)
        return err;
    struct dlt645_wait w = {.options = &options, .address = address, .di = pt->di};
    err = transact(link, req, len, dlt645_check, &w);
    if (err == EST_ERR_EXCEPTION)
        *code = w.reply.error;
    if (err != EST_OK)
        return err;
    struct dlt645_point item = {
        .variant = options.variant, .di = pt->di,
        .encoding = pt->status != NULL ? DLT645_WORD : DLT645_BCD, .nbytes = pt->nbytes,
        .decimals = pt->decimals, .sign_bit = pt->sign_bit,
        .quantity = drv_quantity_name(pt->quantity), .scale = pt->scale};
    double value = 0;
    err = dlt645_decode_point(&item, w.reply.value, w.reply.value_len, &value);
    if (err != EST_OK)
        return err;
    if (pt->status != NULL) {
        apply_status(pt, (uint16_t)value, out);
    } else {
        out->value[pt->quantity] = value;
        out->present |= 1ull << pt->quantity;
    }
    return EST_OK;
}

/* ---- CJ/T 188 ---- */

static void cjt188_options_for(const struct drv_cnlink *link, const struct drv_model *model,
                               struct cjt188_options *options)
{
    cjt188_options_init(options);
    options->preamble_count = link->config.preamble_count;
    if (model->valve != NULL) {
        options->valve_open_code = (uint8_t)model->valve->open_value;
        options->valve_close_code = (uint8_t)model->valve->close_value;
    }
}

struct cjt188_wait {
    const struct cjt188_options *options;
    uint8_t type;
    const uint8_t *address;
    uint8_t ser;
    struct cjt188_meter_data data;
    struct cjt188_abnormal abnormal;
    struct cjt188_status status;
    bool has_status;
};

static est_err cjt188_read_check(void *ctx, const void *frame)
{
    struct cjt188_wait *w = ctx;
    return cjt188_parse_read_reply(w->options, frame, w->type, w->address, w->ser, &w->data,
                                   &w->abnormal);
}

static est_err cjt188_valve_check(void *ctx, const void *frame)
{
    struct cjt188_wait *w = ctx;
    return cjt188_parse_valve_reply(w->options, frame, w->type, w->address, w->ser, &w->status,
                                    &w->has_status, &w->abnormal);
}

static void set_value(struct drv_reading *out, enum drv_quantity q, double v)
{
    out->value[q] = v;
    out->present |= 1ull << q;
}

static void cjt188_fill(const struct drv_point *pt, const struct cjt188_meter_data *d,
                        const struct cjt188_status *st, bool volumes, struct drv_reading *out)
{
    switch (pt->field) {
    case DRV_CJT188_CURRENT_VOLUME:
        if (volumes && d->current.known)
            set_value(out, pt->quantity, d->current.m3);
        break;
    case DRV_CJT188_SETTLEMENT_VOLUME:
        if (volumes && d->settlement.known)
            set_value(out, pt->quantity, d->settlement.m3);
        break;
    case DRV_CJT188_VALVE:
        set_value(out, pt->quantity,
                  st->valve == CJT188_VALVE_OPEN     ? DRV_VALVE_OPEN
                  : st->valve == CJT188_VALVE_CLOSED ? DRV_VALVE_CLOSED
                                                     : DRV_VALVE_UNKNOWN);
        break;
    case DRV_CJT188_VALVE_FAULT:
        set_value(out, pt->quantity, st->valve == CJT188_VALVE_ABNORMAL ? 1.0 : 0.0);
        break;
    case DRV_CJT188_BATTERY_LOW:
        set_value(out, pt->quantity, st->battery_low ? 1.0 : 0.0);
        break;
    }
}

static est_err cjt188_read(struct drv_cnlink *link, const struct drv_model *model,
                           const uint8_t *address, bool slow_poll, struct drv_reading *out)
{
    struct cjt188_options options;
    cjt188_options_for(link, model, &options);
    struct cjt188_wait w = {.options = &options, .type = model->cjt188_meter_type,
                            .address = address, .ser = link->ser++};
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    est_err err = cjt188_build_read(&options, w.type, address, CJT188_DI_READ_METER, w.ser, req,
                                    sizeof req, &len);
    if (err != EST_OK)
        return err;
    err = transact(link, req, len, cjt188_read_check, &w);
    bool volumes = err == EST_OK || err == EST_ERR_NOTFOUND;
    const struct cjt188_status *st = volumes ? &w.data.status
                                     : err == EST_ERR_EXCEPTION && w.abnormal.has_status
                                         ? &w.abnormal.status
                                         : NULL;
    for (size_t i = 0; st != NULL && i < model->npoints; i++)
        if (!model->points[i].slow || slow_poll)
            cjt188_fill(&model->points[i], &w.data, st, volumes, out);
    return err == EST_ERR_NOTFOUND ? EST_OK : err;
}

/* ---- polls and commands ---- */

static void tally(struct drv_cn_poll_result *r, est_err err, int code)
{
    r->attempted++;
    if (err == EST_OK) {
        r->answered++;
    } else if (r->first_error == EST_OK) {
        r->first_error = err;
        r->first_code = code;
    }
}

void drv_cnlink_poll(struct drv_cnlink *link, const struct drv_model *model,
                     const uint8_t *address, bool slow_poll, int attempts,
                     struct drv_reading *out, struct drv_cn_poll_result *result)
{
    memset(result, 0, sizeof *result);
    out->present = 0;
    out->nzones = 0;
    if (attempts < 1)
        attempts = 1;
    if (model->protocol == DRV_PROTO_CJT188) {
        est_err err = EST_ERR_IO;
        for (int a = 0; a < attempts && err != EST_OK && err != EST_ERR_EXCEPTION; a++)
            err = cjt188_read(link, model, address, slow_poll, out);
        tally(result, err, 0);
        return;
    }
    for (size_t i = 0; i < model->npoints; i++) {
        const struct drv_point *pt = &model->points[i];
        if (pt->slow && !slow_poll)
            continue;
        est_err err = EST_ERR_IO;
        int code = 0;
        for (int a = 0; a < attempts && err != EST_OK && err != EST_ERR_EXCEPTION; a++)
            err = dlt645_read_point(link, model, pt, address, out, &code);
        tally(result, err, code);
        /* A meter that does not answer at all costs one timeout per poll. */
        if (err != EST_OK && err != EST_ERR_EXCEPTION && result->answered == 0)
            return;
    }
}

est_err drv_cnlink_valve(struct drv_cnlink *link, const struct drv_model *model,
                         const uint8_t *address, bool open)
{
    if (model->protocol != DRV_PROTO_CJT188 || model->valve == NULL)
        return EST_ERR_NOTFOUND;
    struct cjt188_options options;
    cjt188_options_for(link, model, &options);
    struct cjt188_wait w = {.options = &options, .type = model->cjt188_meter_type,
                            .address = address, .ser = link->ser++};
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    est_err err = cjt188_build_valve(&options, w.type, address, open, w.ser, req, sizeof req, &len);
    if (err != EST_OK)
        return err;
    return transact(link, req, len, cjt188_valve_check, &w);
}

/* ---- commissioning ---- */

struct address_wait {
    const struct cjt188_options *options; /* CJ/T 188 */
    uint8_t ser;
    uint8_t address[CJT188_ADDRESS_LEN];
    uint8_t type;
    struct cjt188_abnormal abnormal;
};

static est_err dlt645_address_check(void *ctx, const void *frame)
{
    struct address_wait *w = ctx;
    return dlt645_parse_address_reply(frame, w->address);
}

static est_err cjt188_address_check(void *ctx, const void *frame)
{
    struct address_wait *w = ctx;
    return cjt188_parse_address_reply(w->options, frame, w->ser, &w->type, w->address,
                                      &w->abnormal);
}

est_err drv_cnlink_read_address(struct drv_cnlink *link, uint8_t *address, uint8_t *type)
{
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    struct address_wait w = {.ser = link->ser++};
    est_err err;
    if (link->config.protocol == DRV_PROTO_DLT645) {
        struct dlt645_options options;
        dlt645_options_init(&options);
        options.preamble_count = link->config.preamble_count;
        err = dlt645_build_read_address(&options, req, sizeof req, &len);
        if (err == EST_OK)
            err = transact(link, req, len, dlt645_address_check, &w);
    } else {
        struct cjt188_options options;
        cjt188_options_init(&options);
        options.preamble_count = link->config.preamble_count;
        w.options = &options;
        err = cjt188_build_read_address(&options, CJT188_ANY_TYPE, w.ser, req, sizeof req, &len);
        if (err == EST_OK)
            err = transact(link, req, len, cjt188_address_check, &w);
        if (err == EST_OK)
            *type = w.type;
    }
    if (err == EST_OK)
        memcpy(address, w.address, drv_cn_address_len(link->config.protocol));
    return err;
}

/* One DL/T 645 read of di from address, its value thrown away. */
static est_err dlt645_probe_di(struct drv_cnlink *link, enum dlt645_variant variant,
                               const uint8_t *address, uint32_t di)
{
    struct dlt645_options options;
    dlt645_options_init(&options);
    options.variant = variant;
    options.preamble_count = link->config.preamble_count;
    uint8_t req[DLT645_FRAME_MAX];
    size_t len = 0;
    est_err err = dlt645_build_read(&options, address, di, req, sizeof req, &len);
    if (err != EST_OK)
        return err;
    struct dlt645_wait w = {.options = &options, .address = address, .di = di};
    return transact(link, req, len, dlt645_check, &w);
}

est_err drv_cnlink_probe(struct drv_cnlink *link, const struct drv_model *model,
                         const uint8_t *address)
{
    if (link->config.protocol == DRV_PROTO_DLT645) {
        if (model != NULL && model->npoints > 0)
            return dlt645_probe_di(link, model->dlt645_version == 1997 ? DLT645_1997 : DLT645_2007,
                                   address, model->points[0].di);
        est_err err = dlt645_probe_di(link, DLT645_2007, address, 0x00010000);
        return err == EST_ERR_TIMEOUT ? dlt645_probe_di(link, DLT645_1997, address, 0x9010) : err;
    }
    struct cjt188_options options;
    cjt188_options_init(&options);
    options.preamble_count = link->config.preamble_count;
    struct cjt188_wait w = {.options = &options,
                            .type = model != NULL ? model->cjt188_meter_type : CJT188_ANY_TYPE,
                            .address = address, .ser = link->ser++};
    uint8_t req[CJT188_FRAME_MAX];
    size_t len = 0;
    est_err err = cjt188_build_read(&options, w.type, address, CJT188_DI_READ_METER, w.ser, req,
                                    sizeof req, &len);
    if (err != EST_OK)
        return err;
    err = transact(link, req, len, cjt188_read_check, &w);
    return err == EST_ERR_NOTFOUND ? EST_OK : err; /* an unknown unit byte: it answered */
}

void drv_cnlink_stats(const struct drv_cnlink *link, uint64_t *transactions, uint64_t *failures)
{
    *transactions = link->transactions;
    *failures = link->failures;
}
