/* test_drivers_link.c - the Modbus TCP link against a tiny libmodbus server
 * thread on 127.0.0.1 (ephemeral port): reads, writes, exception mapping,
 * reconnect after a timeout, and fast failure during connect backoff; and
 * pipelined batches (drv_link_read_many): requests really in flight
 * together, replies matched by transaction id, exceptions, a silent or slow
 * device, a reply from the wrong unit, invalid reads, batches larger than
 * DRV_LINK_MAX_IN_FLIGHT, and the one-at-a-time fallback of a paced link;
 * and the TCP framing on both paths: a duplicated reply, a stray frame
 * before the reply, a reply whose MBAP length lies, a wrong unit id. */
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drivers.h"

/* Magic addresses the test server answers specially (libmodbus style). */
#define ADDR_GATEWAY_TARGET 0x0BAD /* exception 0x0B */
#define ADDR_SLOW 0x0510           /* replies after SLOW_REPLY_MS */
#define SLOW_REPLY_MS 250
#define ADDR_SILENT 0x0DEA     /* never replies */
#define ADDR_WRONG_UNIT 0x0E01 /* replies as unit id + 1 */
#define ADDR_DUPLICATE 0x0D00  /* replies twice */
#define ADDR_LYING_LENGTH 0x0E10 /* 6 bytes of padding behind the PDU, in the MBAP length */
#define ADDR_STRAY_FIRST 0x0E20  /* a frame with another transaction id, then the reply */

struct test_server {
    modbus_t *ctx;
    modbus_mapping_t *map;
    int listen_socket;
    int port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int connections;
    atomic_int requests;
    atomic_int queued;     /* requests that were already waiting when the one before was read */
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

/* Sends the reply to a read (FC03/FC04) by hand: transaction id xor
 * tid_flip, extra_length zero bytes behind the PDU (counted in the MBAP
 * length, not in the byte count), registers from the map (plus
 * value_offset). */
static void send_raw_reply(struct test_server *server, int client, const uint8_t *query,
                           unsigned tid_flip, unsigned extra_length, uint16_t value_offset)
{
    int header = modbus_get_header_length(server->ctx);
    uint8_t function = query[header];
    int address = query[header + 1] << 8 | query[header + 2];
    int count = query[header + 3] << 8 | query[header + 4];
    const uint16_t *table = function == 3 ? server->map->tab_registers
                                          : server->map->tab_input_registers;
    uint8_t frame[MODBUS_TCP_MAX_ADU_LENGTH];
    unsigned length = 3 + 2 * (unsigned)count + extra_length;
    unsigned tid = ((unsigned)query[0] << 8 | query[1]) ^ tid_flip;
    frame[0] = (uint8_t)(tid >> 8);
    frame[1] = (uint8_t)tid;
    frame[2] = frame[3] = 0;
    frame[4] = (uint8_t)(length >> 8);
    frame[5] = (uint8_t)length;
    frame[6] = query[6];
    frame[7] = function;
    frame[8] = (uint8_t)(2 * count);
    for (int i = 0; i < count; i++) {
        uint16_t v = (uint16_t)(table[address + i] + value_offset);
        frame[9 + 2 * i] = (uint8_t)(v >> 8);
        frame[10 + 2 * i] = (uint8_t)v;
    }
    size_t n = 9 + 2 * (size_t)count;
    memset(frame + n, 0, extra_length);
    assert_true(send(client, frame, n + extra_length, MSG_NOSIGNAL) > 0);
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
            atomic_fetch_add(&server->requests, 1);
            int waiting = 0;
            if (ioctl(client, FIONREAD, &waiting) == 0 && waiting > 0)
                atomic_fetch_add(&server->queued, 1);
            int address = query[header + 1] << 8 | query[header + 2];
            if (address == ADDR_SILENT)
                continue;
            if (address == ADDR_WRONG_UNIT)
                query[header - 1]++;
            if (address == ADDR_GATEWAY_TARGET) {
                modbus_reply_exception(server->ctx, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
                continue;
            }
            if (address == ADDR_SLOW)
                usleep(SLOW_REPLY_MS * 1000);
            if (address == ADDR_LYING_LENGTH) {
                send_raw_reply(server, client, query, 0, 6, 0);
                continue;
            }
            if (address == ADDR_STRAY_FIRST)
                send_raw_reply(server, client, query, 0x5A5A, 0, 0x0111);
            modbus_reply(server->ctx, query, length, server->map);
            if (address == ADDR_DUPLICATE)
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

static struct drv_link *open_tcp_paced(int port, int timeout_ms, int reconnect_min_ms,
                                       int request_gap_ms)
{
    struct drv_link_config config = {.type = DRV_LINK_TCP, .host = "127.0.0.1", .port = port,
                                     .response_timeout_ms = timeout_ms,
                                     .reconnect_min_ms = reconnect_min_ms,
                                     .reconnect_max_ms = reconnect_min_ms * 4,
                                     .request_gap_ms = request_gap_ms};
    struct drv_link *link = NULL;
    assert_int_equal(drv_link_open(&config, &link), EST_OK);
    return link;
}

static struct drv_link *open_tcp(int port, int timeout_ms, int reconnect_min_ms)
{
    return open_tcp_paced(port, timeout_ms, reconnect_min_ms, 0);
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

/* ---- pipelined batches ---- */

#define BATCH_REGS 125

/* Read i of a test batch: slave, function, address and count all vary. */
static struct drv_link_read batch_read(size_t i, uint16_t (*regs)[BATCH_REGS])
{
    return (struct drv_link_read){
        .slave = (int)(1 + i % 7),
        .function = i % 2 ? DRV_FC_INPUT : DRV_FC_HOLDING,
        .address = (uint16_t)(0x0100 + 3 * i),
        .count = (uint16_t)(1 + (i * 37) % BATCH_REGS),
        .dest = regs[i]};
}

/* n batch reads; read odd (if < n) reads 2 registers at address instead. */
static void fill_batch(struct drv_link_read *reads, uint16_t (*regs)[BATCH_REGS], size_t n,
                       size_t odd, uint16_t address)
{
    for (size_t i = 0; i < n; i++)
        reads[i] = batch_read(i, regs);
    if (odd < n) {
        reads[odd].address = address;
        reads[odd].count = 2;
    }
}

/* What the test server holds at a read's registers. */
static void assert_batch_read_ok(const struct drv_link_read *r)
{
    assert_int_equal(r->result, EST_OK);
    uint16_t base = r->function == DRV_FC_HOLDING ? 0x3000 : 0x4000;
    for (uint16_t k = 0; k < r->count; k++)
        assert_int_equal(r->dest[k], base + r->address + k);
}

static void test_pipelined_reads_in_flight_together(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    enum { N = 20 };
    static uint16_t regs[N][BATCH_REGS];
    struct drv_link_read reads[N];
    fill_batch(reads, regs, N, 5, ADDR_GATEWAY_TARGET); /* an exception is an answer */
    drv_link_read_many(link, reads, N);
    for (size_t i = 0; i < N; i++) {
        if (i == 5)
            continue;
        assert_batch_read_ok(&reads[i]);
    }
    assert_int_equal(reads[5].result, EST_ERR_EXCEPTION);
    assert_int_equal(reads[5].exception, 0x0B);
    /* The requests left as one segment: the server found the later ones
     * already waiting. */
    assert_int_equal(atomic_load(&server->requests), N);
    assert_true(atomic_load(&server->queued) >= N - 2);
    assert_int_equal(atomic_load(&server->connections), 1);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, N);
    assert_int_equal(failures, 1);
    /* The connection is still in step. */
    uint16_t one[2];
    assert_int_equal(drv_link_read(link, 3, DRV_FC_HOLDING, 0x0042, 2, one, NULL), EST_OK);
    assert_int_equal(one[1], 0x3043);
    drv_link_close(link);
}

static void test_pipelined_silent_device_leaves_rest_unanswered(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 150, 100);
    static uint16_t regs[6][BATCH_REGS];
    struct drv_link_read reads[6];
    fill_batch(reads, regs, 6, 2, ADDR_SILENT);
    int64_t start = est_mono_ms();
    drv_link_read_many(link, reads, 6);
    assert_true(est_mono_ms() - start < 1000);
    assert_batch_read_ok(&reads[0]);
    assert_batch_read_ok(&reads[1]);
    /* The server skipped it and answered read 3: no reply of its own. */
    assert_int_equal(reads[2].result, EST_ERR_TIMEOUT);
    /* The replies after it carry their own transaction ids: taken. */
    for (size_t i = 3; i < 6; i++)
        assert_batch_read_ok(&reads[i]);
    /* After the timeout the connection is reopened (a late reply would be
     * skipped anyway, but the converter may still be busy with it). */
    int before = atomic_load(&server->connections);
    for (size_t i = 3; i < 6; i++) {
        struct drv_link_read *r = &reads[i];
        r->result = drv_link_read(link, r->slave, r->function, r->address, r->count, r->dest,
                                  &r->exception);
        assert_batch_read_ok(r);
    }
    assert_int_equal(atomic_load(&server->connections), before + 1);
    drv_link_close(link);
}

static void test_pipelined_slow_reply_delays_the_rest(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 1000, 100);
    static uint16_t regs[4][BATCH_REGS];
    struct drv_link_read reads[4];
    fill_batch(reads, regs, 4, 1, ADDR_SLOW);
    drv_link_read_many(link, reads, 4);
    assert_batch_read_ok(&reads[0]);
    assert_int_equal(reads[1].result, EST_OK);
    assert_int_equal(reads[1].dest[0], 0x4000 + ADDR_SLOW);
    assert_batch_read_ok(&reads[2]);
    assert_batch_read_ok(&reads[3]);
    assert_int_equal(atomic_load(&server->connections), 1);
    drv_link_close(link);
}

static void test_pipelined_wrong_unit_is_refused(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    static uint16_t regs[5][BATCH_REGS];
    struct drv_link_read reads[5];
    fill_batch(reads, regs, 5, 1, ADDR_WRONG_UNIT);
    regs[1][0] = 0xFFFF;
    drv_link_read_many(link, reads, 5);
    assert_batch_read_ok(&reads[0]);
    assert_int_equal(reads[1].result, EST_ERR_PROTOCOL);
    assert_int_equal(regs[1][0], 0xFFFF); /* nothing copied from a reply not its own */
    /* The frame was whole and the stream stays in step. */
    for (size_t i = 2; i < 5; i++)
        assert_batch_read_ok(&reads[i]);
    drv_link_read_many(link, reads + 2, 3);
    for (size_t i = 2; i < 5; i++)
        assert_batch_read_ok(&reads[i]);
    assert_int_equal(atomic_load(&server->connections), 1);
    drv_link_close(link);
}

static void test_duplicated_reply_is_skipped(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    uint16_t regs[4];
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, ADDR_DUPLICATE, 2, regs, NULL),
                     EST_OK);
    assert_int_equal(regs[0], 0x3000 + ADDR_DUPLICATE);
    /* The second copy is not taken for the next replies. */
    for (uint16_t i = 0; i < 5; i++) {
        assert_int_equal(drv_link_read(link, 1, DRV_FC_INPUT, 0x0100 + i, 4, regs, NULL), EST_OK);
        assert_int_equal(regs[0], 0x4100 + i);
        assert_int_equal(regs[3], 0x4103 + i);
    }
    /* In a batch too. */
    static uint16_t batch_regs[6][BATCH_REGS];
    struct drv_link_read reads[6];
    fill_batch(reads, batch_regs, 6, 2, ADDR_DUPLICATE);
    drv_link_read_many(link, reads, 6);
    for (size_t i = 0; i < 6; i++)
        assert_batch_read_ok(&reads[i]);
    drv_link_read_many(link, reads, 6);
    for (size_t i = 0; i < 6; i++)
        assert_batch_read_ok(&reads[i]);
    assert_int_equal(atomic_load(&server->connections), 1);
    assert_true(drv_link_stray_frames(link) >= 2);
    drv_link_close(link);
}

static void test_stray_frame_before_reply_is_skipped(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    uint16_t regs[2];
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, ADDR_STRAY_FIRST, 2, regs, NULL),
                     EST_OK);
    assert_int_equal(regs[0], 0x3000 + ADDR_STRAY_FIRST); /* not the stray's 0x0111 more */
    assert_int_equal(drv_link_stray_frames(link), 1);
    assert_int_equal(atomic_load(&server->connections), 1);
    drv_link_close(link);
}

static void test_lying_length_is_not_read_past(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 1000, 100);
    uint16_t regs[2] = {0xFFFF, 0xFFFF};
    int64_t start = est_mono_ms();
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, ADDR_LYING_LENGTH, 2, regs, NULL),
                     EST_ERR_PROTOCOL);
    /* Refused on the header: no waiting for bytes that never come. */
    assert_true(est_mono_ms() - start < 500);
    assert_int_equal(regs[0], 0xFFFF);
    /* The stream is reopened, and the next read is good. */
    assert_int_equal(drv_link_read(link, 1, DRV_FC_HOLDING, 0x0020, 2, regs, NULL), EST_OK);
    assert_int_equal(regs[1], 0x3021);
    assert_int_equal(atomic_load(&server->connections), 2);
    /* In a batch: the lying read fails, the ones after it are left to read
     * again alone (never taken from the bytes behind the lie). */
    static uint16_t batch_regs[5][BATCH_REGS];
    struct drv_link_read reads[5];
    fill_batch(reads, batch_regs, 5, 1, ADDR_LYING_LENGTH);
    drv_link_read_many(link, reads, 5);
    assert_batch_read_ok(&reads[0]);
    assert_int_equal(reads[1].result, EST_ERR_PROTOCOL);
    for (size_t i = 2; i < 5; i++)
        assert_int_equal(reads[i].result, EST_ERR_STATE);
    drv_link_read_many(link, reads + 2, 3);
    for (size_t i = 2; i < 5; i++)
        assert_batch_read_ok(&reads[i]);
    drv_link_close(link);
}

static void test_wrong_unit_single_read_is_refused(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    uint16_t regs[2] = {0xFFFF, 0xFFFF};
    assert_int_equal(drv_link_read(link, 7, DRV_FC_HOLDING, ADDR_WRONG_UNIT, 2, regs, NULL),
                     EST_ERR_PROTOCOL);
    assert_int_equal(regs[0], 0xFFFF);
    assert_int_equal(drv_link_read(link, 7, DRV_FC_HOLDING, 0x0001, 2, regs, NULL), EST_OK);
    assert_int_equal(regs[0], 0x3001);
    assert_int_equal(atomic_load(&server->connections), 1);
    drv_link_close(link);
}

static void test_pipelined_invalid_and_large_batches(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp(server->port, 500, 100);
    enum { N = DRV_LINK_MAX_IN_FLIGHT * 2 + 5 };
    static uint16_t regs[N][BATCH_REGS];
    static struct drv_link_read reads[N];
    fill_batch(reads, regs, N, N, 0);
    reads[7].count = 0;       /* invalid: never sent */
    reads[40].function = 5;   /* invalid: never sent */
    drv_link_read_many(link, reads, N);
    for (size_t i = 0; i < N; i++) {
        if (i == 7 || i == 40)
            assert_int_equal(reads[i].result, EST_ERR_INVALID);
        else
            assert_batch_read_ok(&reads[i]);
    }
    assert_int_equal(atomic_load(&server->requests), N - 2);
    assert_int_equal(atomic_load(&server->connections), 1);
    drv_link_close(link);
}

static void test_paced_link_reads_one_at_a_time(void **state)
{
    struct test_server *server = *state;
    struct drv_link *link = open_tcp_paced(server->port, 500, 100, 20);
    static uint16_t regs[5][BATCH_REGS];
    struct drv_link_read reads[5];
    fill_batch(reads, regs, 5, 5, 0);
    int64_t start = est_mono_ms();
    drv_link_read_many(link, reads, 5);
    assert_true(est_mono_ms() - start >= 4 * 20); /* the gaps were kept */
    for (size_t i = 0; i < 5; i++)
        assert_batch_read_ok(&reads[i]);
    assert_int_equal(atomic_load(&server->queued), 0);
    drv_link_close(link);
}

static void test_pipelined_refused_link(void **state)
{
    (void)state;
    struct drv_link *link = open_tcp(free_port(), 200, 2000);
    static uint16_t regs[3][BATCH_REGS];
    struct drv_link_read reads[3];
    fill_batch(reads, regs, 3, 3, 0);
    drv_link_read_many(link, reads, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(reads[i].result, EST_ERR_IO);
    uint64_t transactions, failures;
    drv_link_stats(link, &transactions, &failures);
    assert_int_equal(transactions, 0);
    assert_int_equal(failures, 3);
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
        cmocka_unit_test_setup_teardown(test_pipelined_reads_in_flight_together, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_silent_device_leaves_rest_unanswered,
                                        server_setup, server_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_slow_reply_delays_the_rest, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_wrong_unit_is_refused, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_duplicated_reply_is_skipped, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_stray_frame_before_reply_is_skipped, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_lying_length_is_not_read_past, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_unit_single_read_is_refused, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_invalid_and_large_batches, server_setup,
                                        server_teardown),
        cmocka_unit_test_setup_teardown(test_paced_link_reads_one_at_a_time, server_setup,
                                        server_teardown),
        cmocka_unit_test(test_pipelined_refused_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
