/* test_drivers_rtu.c - the RTU link's own timing over a pseudo-terminal: a
 * raw responder thread on the pty master answers FC03 frames and records
 * when each request arrived, so the test can check the 3.5-character
 * inter-frame silence and the slave-switch delay the link must enforce. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drivers.h"

#define REQUESTS 4

struct responder {
    int master;
    int64_t reply_sent_us[REQUESTS];
    int64_t request_seen_us[REQUESTS];
    uint8_t slave[REQUESTS];
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint16_t modbus_crc(const uint8_t *data, size_t length)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < length; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
    }
    return crc;
}

static bool read_exactly(int fd, uint8_t *buf, size_t length)
{
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(fd, buf + got, length - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* Answers REQUESTS FC03 reads of one register with the value 0x1234. */
static void *respond(void *arg)
{
    struct responder *r = arg;
    for (int i = 0; i < REQUESTS; i++) {
        uint8_t request[8];
        if (!read_exactly(r->master, request, 1))
            return NULL;
        r->request_seen_us[i] = now_us();
        if (!read_exactly(r->master, request + 1, sizeof request - 1))
            return NULL;
        r->slave[i] = request[0];
        uint8_t reply[7] = {request[0], 0x03, 0x02, 0x12, 0x34, 0, 0};
        uint16_t crc = modbus_crc(reply, 5);
        reply[5] = (uint8_t)(crc & 0xFF);
        reply[6] = (uint8_t)(crc >> 8);
        r->reply_sent_us[i] = now_us();
        if (write(r->master, reply, sizeof reply) != (ssize_t)sizeof reply)
            return NULL;
    }
    return NULL;
}

static void test_rtu_pacing(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    const char *device = ptsname(master);
    assert_non_null(device);

    struct drv_link_config config = {.type = DRV_LINK_RTU, .device = device, .baud = 9600,
                                     .parity = 'N', .data_bits = 8, .stop_bits = 1,
                                     .response_timeout_ms = 1000, .slave_switch_delay_ms = 60};
    struct drv_link *link = NULL;
    assert_int_equal(drv_link_open(&config, &link), EST_OK);
    struct responder responder = {.master = master};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, respond, &responder), 0);

    const int slaves[REQUESTS] = {1, 1, 2, 2};
    for (int i = 0; i < REQUESTS; i++) {
        uint16_t value = 0;
        assert_int_equal(drv_link_read(link, slaves[i], DRV_FC_HOLDING, 0x0010, 1, &value, NULL),
                         EST_OK);
        assert_int_equal(value, 0x1234);
    }
    pthread_join(thread, NULL);
    for (int i = 0; i < REQUESTS; i++)
        assert_int_equal(responder.slave[i], slaves[i]);
    /* Same slave: at least 3.5 characters (3.65 ms at 9600 8N1), no more
     * than a generous bound; another slave: the switch delay. */
    int64_t same_slave_gap = responder.request_seen_us[1] - responder.reply_sent_us[0];
    int64_t switch_gap = responder.request_seen_us[2] - responder.reply_sent_us[1];
    int64_t same_again = responder.request_seen_us[3] - responder.reply_sent_us[2];
    assert_true(same_slave_gap >= 3645);
    assert_true(same_slave_gap < 50000);
    assert_true(switch_gap >= 60000);
    assert_true(same_again >= 3645 && same_again < 50000);

    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, REQUESTS);
    assert_int_equal(failures, 0);
    drv_link_close(link);
    close(master);
}

static void test_rtu_timeout(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    struct drv_link_config config = {.type = DRV_LINK_RTU, .device = ptsname(master),
                                     .baud = 19200, .parity = 'E', .data_bits = 8,
                                     .stop_bits = 1, .response_timeout_ms = 50};
    struct drv_link *link = NULL;
    assert_int_equal(drv_link_open(&config, &link), EST_OK);
    uint16_t value;
    /* Nobody answers: a timeout, not an I/O error, and the port stays open. */
    assert_int_equal(drv_link_read(link, 7, DRV_FC_INPUT, 0, 1, &value, NULL), EST_ERR_TIMEOUT);
    assert_int_equal(drv_link_read(link, 7, DRV_FC_INPUT, 0, 1, &value, NULL), EST_ERR_TIMEOUT);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 2);
    assert_int_equal(failures, 2);
    drv_link_close(link);
    close(master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtu_pacing),
        cmocka_unit_test(test_rtu_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
