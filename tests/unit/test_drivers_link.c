/* test_drivers_link.c - the Modbus TCP link against a tiny libmodbus server
 * thread on 127.0.0.1 (ephemeral port): reads, writes, exception mapping,
 * reconnect after a timeout, and fast failure during connect backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers.h"

/* Magic addresses the test server answers specially (libmodbus style). */
#define ADDR_GATEWAY_TARGET 0x0BAD /* exception 0x0B */
#define ADDR_SLOW 0x0510           /* replies after SLOW_REPLY_MS */
#define SLOW_REPLY_MS 250

struct test_server {
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_socket;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int connections;
};

/* A port nobody listens on right now: bind port 0, read it back, close. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(s, (struct sockaddr *)&addr, &len), 0);
    close(s);
    return ntohs(addr.sin_port);
}

static void *serve(void *arg)
{
    struct test_server *server = arg;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    int header = modbus_get_header_length(server->ctx);
    while (!atomic_load(&server->stop)) {
        int listen_socket = server->listen_socket;
        int client = modbus_tcp_accept(server->ctx, &listen_socket);
        if (client < 0)
            break;
        atomic_fetch_add(&server->connections, 1);
        for (;;) {
            int length = modbus_receive(server->ctx, query);
            if (length < 0)
                break;
            if (length == 0)
                continue;
            int address = query[header + 1] << 8 | query[header + 2];
            if (address == ADDR_GATEWAY_TARGET) {
                modbus_reply_exception(server->ctx, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
                continue;
            }
            if (address == ADDR_SLOW)
                usleep(SLOW_REPLY_MS * 1000);
            modbus_reply(server->ctx, query, length, server->map);
        }
        close(client);
    }
    return NULL;
}

static int server_setup(void **state)
{
    struct test_server *server = calloc(1, sizeof *server);
    assert_non_null(server);
    server->port = free_port();
    server->ctx = modbus_new_tcp("127.0.0.1", server->port);
    server->map = modbus_mapping_new(0, 0, 0x1000, 0x1000);
    assert_non_null(server->ctx);
    assert_non_null(server->map);
    for (int i = 0; i < 0x1000; i++) {
        server->map->tab_registers[i] = (uint16_t)(0x3000 + i);
        server->map->tab_input_registers[i] = (uint16_t)(0x4000 + i);
    }
    server->listen_socket = modbus_tcp_listen(server->ctx, 4);
    assert_true(server->listen_socket >= 0);
    assert_int_equal(pthread_create(&server->thread, NULL, serve, server), 0);
    *state = server;
    return 0;
}

static int server_teardown(void **state)
{
    struct test_server *server = *state;
    atomic_store(&server->stop, true);
    /* Wake a blocking accept (or end a session) by shutting the sockets. */
    shutdown(server->listen_socket, SHUT_RDWR);
    int s = modbus_get_socket(server->ctx);
    if (s >= 0)
        shutdown(s, SHUT_RDWR);
    pthread_join(server->thread, NULL);
    close(server->listen_socket);
    modbus_mapping_free(server->map);
    modbus_free(server->ctx);
    free(server);
    return 0;
}

static struct drv_link *open_tcp(int port, int timeout_ms, int reconnect_min_ms)
{
    struct drv_link_config config = {.type = DRV_LINK_TCP, .host = "127.0.0.1", .port = port,
                                     .response_timeout_ms = timeout_ms,
                                     .reconnect_min_ms = reconnect_min_ms,
                                     .reconnect_max_ms = reconnect_min_ms * 4};
    struct drv_link *link = NULL;
    assert_int_equal(drv_link_open(&config, &link), EST_OK);
    return link;
}

static void test_read_and_write(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    uint16_t regs[125];
    int exception = -1;
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0x0010, 4, regs, &exception), EST_OK);
    assert_int_equal(exception, 0);
    assert_int_equal(regs[0], 0x3010);
    assert_int_equal(regs[3], 0x3013);
    assert_int_equal(drv_link_read(link, 2, DRV_FC_INPUT, 0x0000, 125, regs, NULL), EST_OK);
    assert_int_equal(regs[124], 0x4000 + 124);
    assert_int_equal(drv_link_write(link, 1, 0x001C, 0x0002, &exception), EST_OK);
    assert_int_equal(server->map->tab_registers[0x1C], 0x0002);
    assert_int_equal(drv_link_read(link, 1, 5, 0, 1, regs, NULL), EST_ERR_INVALID);
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0, 126, regs, NULL),
                     EST_ERR_INVALID);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 3);
    assert_int_equal(failures, 0);
    drv_link_close(link);
}

static void test_exception_code(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    uint16_t regs[2];
    int exception = 0;
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, ADDR_GATEWAY_TARGET, 2, regs,
                                   &exception),
                     EST_ERR_EXCEPTION);
    assert_int_equal(exception, 0x0B);
    /* Out of the server's map: illegal data address. */
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0x2000, 2, regs, &exception),
                     EST_ERR_EXCEPTION);
    assert_int_equal(exception, 0x02);
    /* An exception is an answer: the connection stays usable. */
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0, 2, regs, &exception), EST_OK);
    assert_int_equal(exception, 0);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 3);
    assert_int_equal(failures, 2);
    drv_link_close(link);
}

static void test_timeout_then_reconnect(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 100, 100);
    uint16_t regs[2];
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, ADDR_SLOW, 2, regs, NULL),
                     EST_ERR_TIMEOUT);
    usleep((SLOW_REPLY_MS + 100) * 1000); /* the late reply goes to the old connection */
    int before = atomic_load(&server->connections);
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0x0001, 2, regs, NULL), EST_OK);
    assert_int_equal(regs[0], 0x3001);
    assert_int_equal(atomic_load(&server->connections), before + 1);
    drv_link_close(link);
}

static void test_refused_then_backoff(void **state)
{
    (void)state;
    struct drv_link *link = open_tcp(free_port(), 200, 2000);
    uint16_t regs[2];
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0, 2, regs, NULL), EST_ERR_IO);
    int64_t start = est_mono_ms();
    for (int i = 0; i < 100; i++)
        assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0, 2, regs, NULL), EST_ERR_IO);
    assert_true(est_mono_ms() - start < 50);
    assert_int_equal(drv_link_write(link, 1, 0, 1, NULL), EST_ERR_IO);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 0);
    assert_int_equal(failures, 102);
    drv_link_close(link);
}

static void test_invalid_config(void **state)
{
    (void)state;
    struct drv_link *link = NULL;
    struct drv_link_config config = {.type = DRV_LINK_TCP, .host = "127.0.0.1", .port = 0};
    assert_int_equal(drv_link_open(&config, &link), EST_ERR_INVALID);
    config = (struct drv_link_config){.type = DRV_LINK_RTU, .device = "/dev/null", .baud = 9600,
                                      .parity = 'X', .data_bits = 8, .stop_bits = 1};
    assert_int_equal(drv_link_open(&config, &link), EST_ERR_INVALID);
    /* A missing serial device fails at first use, with backoff. */
    config.parity = 'E';
    config.device = "/nonexistent/ttyUSB9";
    assert_int_equal(drv_link_open(&config, &link), EST_OK);
    uint16_t regs[1];
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0, 1, regs, NULL), EST_ERR_IO);
    drv_link_close(link);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_and_write, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_exception_code, server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_reconnect, server_setup,
                                        server_teardown),
        cmocka_unit_test(test_refused_then_backoff),
        cmocka_unit_test(test_invalid_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
