/* test_drivers_rtu_tcp.c - RTU framing (drivers/rtu_frame.c) and the
 * RTU-over-TCP link: CRC and request ADUs; finding a reply in a stream with
 * garbage before it, frames of other slaves, a failed CRC, a frame split
 * byte by byte, exceptions and replies that do not answer the request; and
 * the link against a raw responder thread on 127.0.0.1 that splits replies
 * over several segments, sends garbage first, breaks the CRC, answers as
 * another slave, stays silent or leaves a frame half sent: every fault is
 * the right error, and the next read on the same link succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drivers.h"

/* ---- pure framing ---- */

/* A read reply frame of count registers (value base + i) from slave. */
static size_t make_read_reply(uint8_t slave, uint8_t function, uint16_t count, uint16_t base,
                              uint8_t *out)
{
    out[0] = slave;
    out[1] = function;
    out[2] = (uint8_t)(2 * count);
    for (uint16_t i = 0; i < count; i++) {
        out[3 + 2 * i] = (uint8_t)((base + i) >> 8);
        out[4 + 2 * i] = (uint8_t)(base + i);
    }
    size_t n = 3 + 2u * count;
    uint16_t crc = drv_rtu_crc16(out, n);
    out[n] = (uint8_t)(crc & 0xFF);
    out[n + 1] = (uint8_t)(crc >> 8);
    return n + 2;
}

static void test_crc_and_request(void **state)
{
    (void)state;
    uint8_t req[DRV_RTU_REQUEST_BYTES];
    drv_rtu_read_request(1, DRV_FC_HOLDING, 0, 10, req);
    static const uint8_t expected[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD};
    assert_memory_equal(req, expected, sizeof expected);
    drv_rtu_write_request(0x11, 0x0001, 0x0003, req);
    static const uint8_t write_expected[] = {0x11, 0x06, 0x00, 0x01, 0x00, 0x03, 0x9A, 0x9B};
    assert_memory_equal(req, write_expected, sizeof write_expected);
}

static void test_reply_split_byte_by_byte(void **state)
{
    (void)state;
    uint8_t req[DRV_RTU_REQUEST_BYTES], buf[64];
    drv_rtu_read_request(7, DRV_FC_INPUT, 0x30, 2, req);
    size_t n = make_read_reply(7, DRV_FC_INPUT, 2, 0x4361, buf);
    struct drv_rtu_scan scan;
    for (size_t len = 0; len < n; len++) {
        drv_rtu_find_reply(req, buf, len, &scan);
        assert_int_equal(scan.found, DRV_RTU_NOTHING);
    }
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_REPLY);
    assert_int_equal(scan.start, 0);
    assert_int_equal(scan.end, n);
    uint16_t regs[2];
    drv_rtu_reply_registers(buf + scan.start, 2, regs);
    assert_int_equal(regs[0], 0x4361);
    assert_int_equal(regs[1], 0x4362);
}

static void test_garbage_before_the_reply(void **state)
{
    (void)state;
    uint8_t req[DRV_RTU_REQUEST_BYTES], buf[64];
    drv_rtu_read_request(7, DRV_FC_HOLDING, 0, 1, req);
    /* Noise that even starts like a reply from slave 7 with a long count. */
    static const uint8_t noise[] = {0xFF, 0x00, 0x07, 0x03, 0x40, 0x13, 0x07};
    memcpy(buf, noise, sizeof noise);
    size_t n = sizeof noise + make_read_reply(7, DRV_FC_HOLDING, 1, 0xBEEF, buf + sizeof noise);
    struct drv_rtu_scan scan;
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_REPLY);
    assert_int_equal(scan.start, sizeof noise);
    uint16_t reg;
    drv_rtu_reply_registers(buf + scan.start, 1, &reg);
    assert_int_equal(reg, 0xBEEF);
}

static void test_crc_error_and_wrong_slave(void **state)
{
    (void)state;
    uint8_t req[DRV_RTU_REQUEST_BYTES], buf[64];
    drv_rtu_read_request(7, DRV_FC_HOLDING, 0, 1, req);
    size_t n = make_read_reply(7, DRV_FC_HOLDING, 1, 1, buf);
    buf[n - 1] ^= 0x5A;
    struct drv_rtu_scan scan;
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_NOTHING);
    assert_true(scan.bad_crc >= 1);

    /* A well-formed reply from slave 8 is skipped; slave 7's after it counts. */
    n = make_read_reply(8, DRV_FC_HOLDING, 1, 1, buf);
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_NOTHING);
    assert_int_equal(scan.other_slave, 1);
    size_t m = make_read_reply(7, DRV_FC_HOLDING, 1, 2, buf + n);
    drv_rtu_find_reply(req, buf, n + m, &scan);
    assert_int_equal(scan.found, DRV_RTU_REPLY);
    assert_int_equal(scan.start, n);
    assert_int_equal(scan.other_slave, 1);
}

static void test_exception_and_mismatch(void **state)
{
    (void)state;
    uint8_t req[DRV_RTU_REQUEST_BYTES], buf[64];
    drv_rtu_read_request(9, DRV_FC_INPUT, 0, 2, req);
    buf[0] = 9;
    buf[1] = DRV_FC_INPUT | 0x80;
    buf[2] = 0x02;
    uint16_t crc = drv_rtu_crc16(buf, 3);
    buf[3] = (uint8_t)crc;
    buf[4] = (uint8_t)(crc >> 8);
    struct drv_rtu_scan scan;
    drv_rtu_find_reply(req, buf, 5, &scan);
    assert_int_equal(scan.found, DRV_RTU_EXCEPTION);
    assert_int_equal(scan.exception, 0x02);

    /* One register where two were asked; another function. */
    size_t n = make_read_reply(9, DRV_FC_INPUT, 1, 0, buf);
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_MISMATCH);
    n = make_read_reply(9, DRV_FC_HOLDING, 2, 0, buf);
    drv_rtu_find_reply(req, buf, n, &scan);
    assert_int_equal(scan.found, DRV_RTU_MISMATCH);

    /* A write's echo must repeat the request. */
    uint8_t write[DRV_RTU_REQUEST_BYTES], echo[DRV_RTU_REQUEST_BYTES];
    drv_rtu_write_request(9, 0x10, 0x55, write);
    drv_rtu_find_reply(write, write, sizeof write, &scan);
    assert_int_equal(scan.found, DRV_RTU_REPLY);
    drv_rtu_write_request(9, 0x10, 0x56, echo);
    drv_rtu_find_reply(write, echo, sizeof echo, &scan);
    assert_int_equal(scan.found, DRV_RTU_MISMATCH);
}

/* ---- the link against a raw responder ---- */

/* Addresses the responder treats specially. */
#define ADDR_NORMAL 0x0100
#define ADDR_SPLIT 0x0200   /* reply in 4 segments, 15 ms apart */
#define ADDR_GARBAGE 0x0300 /* 6 bytes of noise, then the reply */
#define ADDR_BAD_CRC 0x0400
#define ADDR_OTHER 0x0500   /* a well-formed reply, from slave + 1 */
#define ADDR_SILENT 0x0600
#define ADDR_EXCEPTION 0x0700
#define ADDR_HALF 0x0800    /* half the reply, the rest when the link gave up on it */
#define TIMEOUT_MS 200
#define HALF_REST_DELAY_MS 120 /* after the frame gap: the link gave up on it */

struct responder {
    int listen_fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int requests;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void send_bytes(int fd, const uint8_t *data, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        data += w;
        n -= (size_t)w;
    }
}

static bool read_request(struct responder *r, int fd, uint8_t *req)
{
    size_t got = 0;
    while (got < DRV_RTU_REQUEST_BYTES && !atomic_load(&r->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, req + got, DRV_RTU_REQUEST_BYTES - got, 0);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return got == DRV_RTU_REQUEST_BYTES;
}

static void answer(int fd, const uint8_t *req)
{
    uint8_t slave = req[0], function = req[1];
    uint16_t address = (uint16_t)(req[2] << 8 | req[3]);
    uint16_t count = (uint16_t)(req[4] << 8 | req[5]);
    uint8_t out[300];
    size_t n = make_read_reply(slave, function, count, address, out);
    switch (address) {
    case ADDR_SPLIT: {
        size_t piece = (n + 3) / 4;
        for (size_t at = 0; at < n; at += piece) {
            send_bytes(fd, out + at, n - at < piece ? n - at : piece);
            sleep_ms(15);
        }
        return;
    }
    case ADDR_GARBAGE: {
        static const uint8_t noise[] = {0x00, 0xFF, 0x13, 0x37, 0x03, 0x99};
        send_bytes(fd, noise, sizeof noise);
        send_bytes(fd, out, n);
        return;
    }
    case ADDR_BAD_CRC:
        out[n - 2] ^= 0xA5;
        break;
    case ADDR_OTHER:
        n = make_read_reply((uint8_t)(slave + 1), function, count, address, out);
        break;
    case ADDR_SILENT:
        return;
    case ADDR_EXCEPTION: {
        uint8_t ex[5] = {slave, (uint8_t)(function | 0x80), 0x02, 0, 0};
        uint16_t crc = drv_rtu_crc16(ex, 3);
        ex[3] = (uint8_t)crc;
        ex[4] = (uint8_t)(crc >> 8);
        send_bytes(fd, ex, sizeof ex);
        return;
    }
    case ADDR_HALF:
        send_bytes(fd, out, n / 2);
        sleep_ms(HALF_REST_DELAY_MS);
        send_bytes(fd, out + n / 2, n - n / 2);
        return;
    default:
        break;
    }
    send_bytes(fd, out, n);
}

static void *responder_main(void *arg)
{
    struct responder *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        uint8_t req[DRV_RTU_REQUEST_BYTES];
        while (read_request(r, fd, req)) {
            atomic_fetch_add(&r->requests, 1);
            answer(fd, req);
        }
        close(fd);
    }
    return NULL;
}

static int responder_setup(void **state)
{
    struct responder *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->listen_fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    atomic_init(&r->stop, false);
    atomic_init(&r->requests, 0);
    assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r), 0);
    *state = r;
    return 0;
}

static int responder_teardown(void **state)
{
    struct responder *r = *state;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
    free(r);
    return 0;
}

static struct drv_link *open_link(const struct responder *r)
{
    struct drv_link_config c = {.type = DRV_LINK_RTU_OVER_TCP, .host = "127.0.0.1",
                                .port = r->port, .baud = 9600, .parity = 'N', .data_bits = 8,
                                .stop_bits = 1, .response_timeout_ms = TIMEOUT_MS};
    struct drv_link *link = NULL;
    assert_int_equal(drv_link_open(&c, &link), EST_OK);
    return link;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A normal read right after a fault: the link is back in step. */
static void assert_next_read_good(struct drv_link *link)
{
    uint16_t regs[3] = {0};
    int exception = -1;
    assert_int_equal(drv_link_read(link, 5, DRV_FC_HOLDING, ADDR_NORMAL, 3, regs, &exception),
                     EST_OK);
    assert_int_equal(exception, 0);
    assert_int_equal(regs[0], ADDR_NORMAL);
    assert_int_equal(regs[2], ADDR_NORMAL + 2);
}

static void test_link_reads_and_split_replies(void **state)
{
    struct drv_link *link = open_link(*state);
    assert_next_read_good(link);
    uint16_t regs[40] = {0};
    int exception = -1;
    assert_int_equal(drv_link_read(link, 5, DRV_FC_INPUT, ADDR_SPLIT, 40, regs, &exception),
                     EST_OK);
    for (int i = 0; i < 40; i++)
        assert_int_equal(regs[i], ADDR_SPLIT + i);
    assert_int_equal(drv_link_read(link, 5, DRV_FC_HOLDING, ADDR_GARBAGE, 2, regs, &exception),
                     EST_OK);
    assert_int_equal(regs[1], ADDR_GARBAGE + 1);
    assert_int_equal(drv_link_read(link, 5, DRV_FC_HOLDING, ADDR_EXCEPTION, 2, regs, &exception),
                     EST_ERR_EXCEPTION);
    assert_int_equal(exception, 0x02);
    assert_next_read_good(link);
    drv_link_close(link);
}

static void test_link_faults_then_back_in_step(void **state)
{
    struct responder *r = *state;
    struct drv_link *link = open_link(r);
    uint16_t regs[4];
    int exception;
    static const struct {
        uint16_t address;
        est_err expected;
    } faults[] = {
        {ADDR_BAD_CRC, EST_ERR_PROTOCOL},
        {ADDR_OTHER, EST_ERR_PROTOCOL},
        {ADDR_SILENT, EST_ERR_TIMEOUT},
        {ADDR_HALF, EST_ERR_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        print_message("fault at 0x%04x\n", faults[i].address);
        int64_t t0 = now_ms();
        assert_int_equal(drv_link_read(link, 5, DRV_FC_HOLDING, faults[i].address, 4, regs,
                                       &exception),
                         faults[i].expected);
        /* Never much beyond the timeout plus a drain. */
        assert_true(now_ms() - t0 < 3 * TIMEOUT_MS + 200);
        assert_next_read_good(link);
    }
    uint64_t transactions = 0, failures = 0;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 8);
    assert_int_equal(failures, 4);
    drv_link_close(link);
}

/* A silent slave answered by nobody three times in a row: the link
 * reconnects (a converter may have lost the connection) and goes on. */
static void test_link_reconnects_after_timeouts(void **state)
{
    struct responder *r = *state;
    struct drv_link *link = open_link(r);
    uint16_t regs[1];
    for (int i = 0; i < 4; i++)
        assert_int_equal(drv_link_read(link, 5, DRV_FC_HOLDING, ADDR_SILENT, 1, regs, NULL),
                         EST_ERR_TIMEOUT);
    assert_next_read_good(link);
    assert_int_equal(atomic_load(&r->requests), 5);
    drv_link_close(link);
}

static void test_link_refused_slave_ids(void **state)
{
    struct drv_link *link = open_link(*state);
    uint16_t regs[1];
    assert_int_equal(drv_link_read(link, 0, DRV_FC_HOLDING, 0, 1, regs, NULL), EST_ERR_INVALID);
    assert_int_equal(drv_link_read(link, 248, DRV_FC_HOLDING, 0, 1, regs, NULL), EST_ERR_INVALID);
    drv_link_close(link);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_and_request),
        cmocka_unit_test(test_reply_split_byte_by_byte),
        cmocka_unit_test(test_garbage_before_the_reply),
        cmocka_unit_test(test_crc_error_and_wrong_slave),
        cmocka_unit_test(test_exception_and_mismatch),
        cmocka_unit_test_setup_teardown(test_link_reads_and_split_replies, responder_setup,
                                        responder_teardown),
        cmocka_unit_test_setup_teardown(test_link_faults_then_back_in_step, responder_setup,
                                        responder_teardown),
        cmocka_unit_test_setup_teardown(test_link_reconnects_after_timeouts, responder_setup,
                                        responder_teardown),
        cmocka_unit_test_setup_teardown(test_link_refused_slave_ids, responder_setup,
                                        responder_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
