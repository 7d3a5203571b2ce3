/* test_sim_cnlink.c - drivers/cnlink.c against the simulated DL/T 645 and
 * CJ/T 188 meters on an in-process pseudo-terminal: a poll reads every
 * item of the model through noise and the echo of the request, a silent
 * meter costs one timeout per poll, a broken checksum is a protocol error,
 * and a CJ/T 188 valve command moves the valve. The same meters behind a
 * serial converter on a loopback TCP port: replies split over segments
 * are found, and a converter that drops the connection or restarts is
 * reconnected to. The read-address broadcast and address probes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "drivers.h"
#include "sim_cnproto.h"

struct responder {
    int master, slave;        /* the slave side stays open: no EIO on the master */
    char slave_path[128];
    bool tcp;                 /* behind a converter on a loopback TCP port */
    atomic_int listen_fd;     /* TCP: the converter's port (-1: down, or a pty) */
    int port;
    atomic_int io;            /* where requests come from: the pty master or the
                               * accepted connection (-1: none yet) */
    atomic_bool drop;         /* TCP: close the connection, as a converter restart does */
    pthread_t thread;
    atomic_bool stop;
    enum drv_protocol protocol;
    struct sim_dlt645_meter dlt;
    struct sim_cjt188_meter cjt;
    pthread_mutex_t lock;
    unsigned requests;
};

/* Noise, then the request echoed back (as an RS-485 adapter without echo
 * suppression does), then the reply. */
static void answer(struct responder *r, const uint8_t *req, size_t n)
{
    uint8_t out[DLT645_FRAME_MAX + CJT188_FRAME_MAX];
    size_t len = 0;
    pthread_mutex_lock(&r->lock);
    r->requests++;
    est_err err = r->protocol == DRV_PROTO_DLT645
                      ? sim_dlt645_handle(&r->dlt, req, n, out, sizeof out, &len)
                      : sim_cjt188_handle(&r->cjt, req, n, out, sizeof out, &len);
    pthread_mutex_unlock(&r->lock);
    if (err != EST_OK || len == 0)
        return;
    static const uint8_t noise[] = {0x00, 0x68, 0x11, 0xFF, 0x16};
    uint8_t all[sizeof noise + 2 * sizeof out];
    memcpy(all, noise, sizeof noise);
    memcpy(all + sizeof noise, req, n);
    memcpy(all + sizeof noise + n, out, len);
    size_t total = sizeof noise + n + len, done = 0;
    int fd = atomic_load(&r->io);
    /* Over TCP the converter sends what it has: here in two segments. */
    size_t segment = r->tcp ? total / 2 + 1 : total;
    while (done < total) {
        size_t want = total - done < segment ? total - done : segment;
        ssize_t w = write(fd, all + done, want);
        if (w > 0) {
            done += (size_t)w;
            if (r->tcp)
                nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return;
        }
    }
}

/* TCP: takes a new connection (it replaces the one before) or closes the
 * current one when asked to. */
static void tend_connection(struct responder *r)
{
    if (!r->tcp)
        return;
    if (atomic_load(&r->drop)) {
        int fd = atomic_exchange(&r->io, -1);
        if (fd >= 0)
            close(fd);
        atomic_store(&r->drop, false);
    }
    int listen_fd = atomic_load(&r->listen_fd);
    if (listen_fd < 0)
        return;
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int old = atomic_exchange(&r->io, fd);
    if (old >= 0)
        close(old);
}

static void *responder_thread(void *arg)
{
    struct responder *r = arg;
    uint8_t buf[1024];
    size_t len = 0;
    while (!atomic_load(&r->stop)) {
        tend_connection(r);
        int fd = atomic_load(&r->io);
        if (fd < 0) {
            nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n == 0 && r->tcp) {
            atomic_store(&r->drop, true); /* the gateway hung up */
            len = 0;
            continue;
        }
        if (n <= 0)
            continue;
        len += (size_t)n;
        struct cn_scan scan;
        if (r->protocol == DRV_PROTO_DLT645) {
            struct dlt645_frame frame;
            dlt645_scan(buf, len, &frame, &scan);
        } else {
            struct cjt188_frame frame;
            cjt188_scan(buf, len, &frame, &scan);
        }
        if (scan.result == CN_SCAN_FRAME)
            answer(r, buf, scan.consumed);
        memmove(buf, buf + scan.consumed, len - scan.consumed);
        len -= scan.consumed;
    }
    return NULL;
}

/* A listening socket on a free loopback port (port 0: any), or -1. */
static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

static struct responder *start_on(enum drv_protocol protocol, bool tcp, struct drv_cnlink **link)
{
    struct responder *r = test_calloc(1, sizeof *r);
    r->protocol = protocol;
    pthread_mutex_init(&r->lock, NULL);
    r->master = r->slave = -1;
    r->tcp = tcp;
    atomic_init(&r->listen_fd, -1);
    atomic_init(&r->drop, false);
    if (tcp) {
        atomic_store(&r->listen_fd, listen_on(0, &r->port));
        assert_true(atomic_load(&r->listen_fd) >= 0);
        atomic_init(&r->io, -1);
    } else {
        assert_int_equal(openpty(&r->master, &r->slave, r->slave_path, NULL, NULL), 0);
        struct termios tio;
        assert_int_equal(tcgetattr(r->master, &tio), 0);
        cfmakeraw(&tio);
        tcsetattr(r->master, TCSANOW, &tio);
        fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);
        atomic_init(&r->io, r->master);
    }
    dlt645_options_init(&r->dlt.options);
    assert_int_equal(cn_address_parse("000012345678", DLT645_ADDRESS_LEN, r->dlt.address), EST_OK);
    r->dlt.energy_import_kwh = 1234.56;
    r->dlt.energy_export_kwh = 7.89;
    r->dlt.voltage_v = 229.7;
    r->dlt.current_a = -1.234;
    r->dlt.power_w = -283.4;
    cjt188_options_init(&r->cjt.options);
    r->cjt.type = CJT188_COLD_WATER;
    assert_int_equal(cn_address_parse("10000000000201", CJT188_ADDRESS_LEN, r->cjt.address), EST_OK);
    r->cjt.volume_m3 = 56.78;
    r->cjt.unit = 0x2C;
    r->cjt.clock = (struct cjt188_time){.valid = true, .year = 2026, .month = 1, .day = 1};
    r->cjt.valve = CJT188_VALVE_OPEN;
    atomic_init(&r->stop, false);
    assert_int_equal(pthread_create(&r->thread, NULL, responder_thread, r), 0);
    struct drv_cnlink_config cc = {.protocol = protocol, .baud = 2400,
                                   .parity = 'E', .data_bits = 8, .stop_bits = 1,
                                   .response_timeout_ms = 300, .turnaround_ms = 1,
                                   .reconnect_max_ms = 400};
    if (tcp) {
        cc.host = "127.0.0.1";
        cc.port = r->port;
    } else {
        cc.device = r->slave_path;
    }
    assert_int_equal(drv_cnlink_open(&cc, link), EST_OK);
    return r;
}

static struct responder *start(enum drv_protocol protocol, struct drv_cnlink **link)
{
    return start_on(protocol, false, link);
}

static void stop(struct responder *r, struct drv_cnlink *link)
{
    drv_cnlink_close(link);
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    int io = atomic_load(&r->io);
    if (io >= 0 && io != r->master)
        close(io);
    if (atomic_load(&r->listen_fd) >= 0)
        close(atomic_load(&r->listen_fd));
    if (r->master >= 0) {
        close(r->master);
        close(r->slave);
    }
    pthread_mutex_destroy(&r->lock);
    test_free(r);
}

static void test_dlt645_poll_through_noise_and_echo(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start(DRV_PROTO_DLT645, &link);
    const struct drv_model *model = drv_model_find("dlt645_2007_1p");
    assert_non_null(model);
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    drv_cnlink_poll(link, model, r->dlt.address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK);
    assert_int_equal(result.attempted, model->npoints);
    assert_int_equal(result.answered, model->npoints);
    assert_float_equal(reading.value[DRV_Q_ENERGY_IMPORT_KWH], 1234.56, 0);
    assert_float_equal(reading.value[DRV_Q_ENERGY_EXPORT_KWH], 7.89, 0);
    assert_float_equal(reading.value[DRV_Q_VOLTAGE_V], 229.7, 0);
    assert_float_equal(reading.value[DRV_Q_CURRENT_A], -1.234, 0);
    assert_float_equal(reading.value[DRV_Q_POWER_W], -283.4, 0);
    /* Not a slow poll: voltage and current are not asked for. */
    drv_cnlink_poll(link, model, r->dlt.address, false, 1, &reading, &result);
    assert_int_equal(result.answered, 3);
    assert_false(reading.present & (UINT64_C(1) << DRV_Q_VOLTAGE_V));
    assert_true(reading.present & (UINT64_C(1) << DRV_Q_POWER_W));
    stop(r, link);
}

static void test_dlt645_silent_and_garbled(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start(DRV_PROTO_DLT645, &link);
    const struct drv_model *model = drv_model_find("dlt645_2007_1p");
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    r->dlt.answer = SIM_CN_SILENT;
    drv_cnlink_poll(link, model, r->dlt.address, true, 2, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_TIMEOUT);
    assert_int_equal(result.attempted, 1); /* one item, then the poll gives up */
    assert_int_equal(result.answered, 0);
    assert_int_equal(reading.present, 0);
    pthread_mutex_lock(&r->lock);
    assert_int_equal(r->requests, 2); /* the retry */
    r->dlt.answer = SIM_CN_BAD_CHECKSUM;
    pthread_mutex_unlock(&r->lock);
    drv_cnlink_poll(link, model, r->dlt.address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_PROTOCOL);
    pthread_mutex_lock(&r->lock);
    r->dlt.answer = SIM_CN_ABNORMAL;
    r->dlt.error_byte = DLT645_ERR_NO_DATA;
    pthread_mutex_unlock(&r->lock);
    drv_cnlink_poll(link, model, r->dlt.address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_EXCEPTION);
    assert_int_equal(result.first_code, DLT645_ERR_NO_DATA);
    assert_int_equal(result.attempted, model->npoints); /* an answer: the rest is asked */
    pthread_mutex_lock(&r->lock);
    r->dlt.answer = SIM_CN_NORMAL;
    pthread_mutex_unlock(&r->lock);
    drv_cnlink_poll(link, model, r->dlt.address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK); /* back in step after the noise */
    stop(r, link);
}

static void test_cjt188_read_and_valve(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start(DRV_PROTO_CJT188, &link);
    const struct drv_model *model = drv_model_find("cjt188_cold_water");
    assert_non_null(model);
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK);
    assert_float_equal(reading.value[DRV_Q_VOLUME_M3], 56.78, 0);
    assert_float_equal(reading.value[DRV_Q_VALVE], DRV_VALVE_OPEN, 0);
    assert_float_equal(reading.value[DRV_Q_VALVE_FAULT], 0, 0);
    assert_float_equal(reading.value[DRV_Q_BATTERY_LOW], 0, 0);
    assert_int_equal(drv_cnlink_valve(link, model, r->cjt.address, false), EST_OK);
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_float_equal(reading.value[DRV_Q_VALVE], DRV_VALVE_CLOSED, 0);
    pthread_mutex_lock(&r->lock);
    r->cjt.valve = CJT188_VALVE_ABNORMAL;
    r->cjt.battery_low = true;
    pthread_mutex_unlock(&r->lock);
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_float_equal(reading.value[DRV_Q_VALVE], DRV_VALVE_UNKNOWN, 0);
    assert_float_equal(reading.value[DRV_Q_VALVE_FAULT], 1, 0);
    assert_float_equal(reading.value[DRV_Q_BATTERY_LOW], 1, 0);
    assert_int_equal(drv_cnlink_valve(link, drv_model_find("dlt645_2007_1p"), r->cjt.address,
                                      false),
                     EST_ERR_NOTFOUND);
    stop(r, link);
}

static void wait_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}, NULL);
}

static void test_dlt645_over_tcp_survives_a_converter_restart(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start_on(DRV_PROTO_DLT645, true, &link);
    const struct drv_model *model = drv_model_find("dlt645_2007_1p");
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    drv_cnlink_poll(link, model, r->dlt.address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK);
    assert_int_equal(result.answered, model->npoints);
    assert_float_equal(reading.value[DRV_Q_ENERGY_IMPORT_KWH], 1234.56, 0);
    assert_float_equal(reading.value[DRV_Q_POWER_W], -283.4, 0);

    /* The converter closes the connection while the bus is idle: the next
     * poll connects again and is answered. */
    atomic_store(&r->drop, true);
    wait_ms(100);
    drv_cnlink_poll(link, model, r->dlt.address, false, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK);
    assert_int_equal(result.answered, 3);

    /* The converter is down (its port closed): polls fail with an I/O
     * error, and once it listens again the link is back within its
     * backoff. */
    close(atomic_exchange(&r->listen_fd, -1));
    atomic_store(&r->drop, true);
    wait_ms(100);
    drv_cnlink_poll(link, model, r->dlt.address, false, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_IO);
    int port = 0;
    int fd = listen_on(r->port, &port);
    assert_true(fd >= 0);
    atomic_store(&r->listen_fd, fd);
    est_err last = EST_ERR_IO;
    for (int i = 0; i < 40 && last != EST_OK; i++) {
        wait_ms(50);
        drv_cnlink_poll(link, model, r->dlt.address, false, 1, &reading, &result);
        last = result.first_error;
    }
    assert_int_equal(last, EST_OK);
    assert_float_equal(reading.value[DRV_Q_ENERGY_EXPORT_KWH], 7.89, 0);
    stop(r, link);
}

static void test_cjt188_over_tcp(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start_on(DRV_PROTO_CJT188, true, &link);
    const struct drv_model *model = drv_model_find("cjt188_cold_water");
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_OK);
    assert_float_equal(reading.value[DRV_Q_VOLUME_M3], 56.78, 0);
    assert_int_equal(drv_cnlink_valve(link, model, r->cjt.address, false), EST_OK);
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_float_equal(reading.value[DRV_Q_VALVE], DRV_VALVE_CLOSED, 0);
    /* A silent meter behind the converter is a timeout, not a broken link. */
    pthread_mutex_lock(&r->lock);
    r->cjt.answer = SIM_CN_SILENT;
    pthread_mutex_unlock(&r->lock);
    drv_cnlink_poll(link, model, r->cjt.address, false, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_TIMEOUT);
    stop(r, link);
}

/* Commissioning: the read-address broadcast and a probe of one address. */
static void test_read_address_and_probe(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct responder *r = start(DRV_PROTO_DLT645, &link);
    uint8_t address[CJT188_ADDRESS_LEN] = {0};
    uint8_t type = 0x77;
    assert_int_equal(drv_cnlink_read_address(link, address, &type), EST_OK);
    assert_memory_equal(address, r->dlt.address, DLT645_ADDRESS_LEN);
    assert_int_equal(type, 0x77); /* DL/T 645 has no type byte */
    assert_int_equal(drv_cnlink_probe(link, NULL, r->dlt.address), EST_OK);
    assert_int_equal(drv_cnlink_probe(link, drv_model_find("dlt645_2007_1p"), r->dlt.address),
                     EST_OK);
    /* A 2007 meter asked as a 1997 one answers abnormally: it is there. */
    assert_int_equal(drv_cnlink_probe(link, drv_model_find("dlt645_1997_1p"), r->dlt.address),
                     EST_ERR_EXCEPTION);
    uint8_t other[DLT645_ADDRESS_LEN] = {0x99, 0, 0, 0, 0, 0};
    assert_int_equal(drv_cnlink_probe(link, NULL, other), EST_ERR_TIMEOUT);
    stop(r, link);

    r = start_on(DRV_PROTO_CJT188, true, &link);
    memset(address, 0, sizeof address);
    assert_int_equal(drv_cnlink_read_address(link, address, &type), EST_OK);
    assert_memory_equal(address, r->cjt.address, CJT188_ADDRESS_LEN);
    assert_int_equal(type, CJT188_COLD_WATER);
    assert_int_equal(drv_cnlink_probe(link, NULL, r->cjt.address), EST_OK);
    pthread_mutex_lock(&r->lock);
    r->cjt.answer = SIM_CN_BAD_CHECKSUM;
    pthread_mutex_unlock(&r->lock);
    assert_int_equal(drv_cnlink_read_address(link, address, &type), EST_ERR_PROTOCOL);
    stop(r, link);
}

static void test_port_that_cannot_open(void **state)
{
    (void)state;
    struct drv_cnlink *link = NULL;
    struct drv_cnlink_config cc = {.protocol = DRV_PROTO_DLT645, .device = "/nonexistent/tty",
                                   .baud = 2400, .parity = 'E', .data_bits = 8, .stop_bits = 1};
    assert_int_equal(drv_cnlink_open(&cc, &link), EST_OK);
    struct drv_reading reading;
    struct drv_cn_poll_result result;
    uint8_t address[DLT645_ADDRESS_LEN] = {0};
    drv_cnlink_poll(link, drv_model_find("dlt645_2007_1p"), address, true, 1, &reading, &result);
    assert_int_equal(result.first_error, EST_ERR_IO);
    drv_cnlink_close(link);
    cc.baud = 2401;
    assert_int_equal(drv_cnlink_open(&cc, &link), EST_ERR_INVALID);
    cc.baud = 2400;
    cc.protocol = DRV_PROTO_MODBUS;
    assert_int_equal(drv_cnlink_open(&cc, &link), EST_ERR_INVALID);
    cc.protocol = DRV_PROTO_DLT645;
    cc.host = "127.0.0.1"; /* a port and a converter at once */
    cc.port = 8899;
    assert_int_equal(drv_cnlink_open(&cc, &link), EST_ERR_INVALID);
    cc.device = NULL;
    cc.port = 0;
    assert_int_equal(drv_cnlink_open(&cc, &link), EST_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlt645_poll_through_noise_and_echo),
        cmocka_unit_test(test_dlt645_silent_and_garbled),
        cmocka_unit_test(test_cjt188_read_and_valve),
        cmocka_unit_test(test_dlt645_over_tcp_survives_a_converter_restart),
        cmocka_unit_test(test_cjt188_over_tcp),
        cmocka_unit_test(test_read_address_and_probe),
        cmocka_unit_test(test_port_that_cannot_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
