/* bench_modbus.c - the floor under the poll benchmark: libmodbus alone, with
 * the gateway's polling pattern (one thread and one TCP connection per
 * endpoint, each slave read once per interval, polls spread evenly, those
 * due within 10 ms polled in one burst) and
 * nothing else: no decode, rules, store or publish. With DEPTH > 1, as a
 * pipelined bus: those due within WINDOW_MS (default as the gateway's: a
 * twentieth of the interval, 10 to 50 ms, at most a tenth) go out as raw
 * requests in one corked segment, up to DEPTH, and the replies are taken in
 * order. Prints transactions per second and this process's CPU microseconds
 * per transaction over a window. bench_poll.py --modbus-only runs it
 * against the same simulator set-up.
 *
 * usage: bench_modbus BASE_PORT ENDPOINTS METERS INTERVAL_MS SECONDS FUNCTION ADDRESS COUNT
 *        [DEPTH [WINDOW_MS]]
 * Meter i is on endpoint i % ENDPOINTS with slave id i / ENDPOINTS + 1 (as
 * estate-sim --generate lays them out). */
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

struct endpoint_poller {
    pthread_t thread;
    int port;
    int first_slave;
    int slaves;
};

static int interval_ms, function, address, count, depth = 1;
static int64_t window_ns = 10000000; /* the gateway's POLL_EARLY_MS */
static atomic_bool stopping;
static atomic_ullong transactions, failures;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *poll_endpoint(void *arg)
{
    struct endpoint_poller *e = arg;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", e->port);
    if (ctx == NULL || modbus_connect(ctx) != 0) {
        fprintf(stderr, "bench_modbus: port %d: %s\n", e->port, modbus_strerror(errno));
        if (ctx != NULL)
            modbus_free(ctx);
        return NULL;
    }
    uint16_t regs[128];
    uint8_t reply[512];
    int64_t spacing = (int64_t)interval_ms * 1000000 / e->slaves;
    int64_t due = mono_ns();
    int fd = modbus_get_socket(ctx);
    for (int i = 0; !atomic_load(&stopping);) {
        /* As the gateway: polls due within the window go in one burst. */
        if (due > mono_ns() + window_ns)
            sleep_until_ns(due);
        if (depth <= 1) {
            due += spacing;
            modbus_set_slave(ctx, e->first_slave + i);
            i = (i + 1) % e->slaves;
            int n = function == 3 ? modbus_read_registers(ctx, address, count, regs)
                                  : modbus_read_input_registers(ctx, address, count, regs);
            atomic_fetch_add(n == count ? &transactions : &failures, 1);
            continue;
        }
        int sent = 0, on = 1, off = 0;
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
        do {
            uint8_t request[6] = {(uint8_t)(e->first_slave + i), (uint8_t)function,
                                  (uint8_t)(address >> 8), (uint8_t)address,
                                  (uint8_t)(count >> 8), (uint8_t)count};
            modbus_send_raw_request(ctx, request, sizeof request);
            sent++;
            due += spacing;
            i = (i + 1) % e->slaves;
        } while (sent < depth && due <= mono_ns() + window_ns);
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        for (int k = 0; k < sent; k++) {
            int n = modbus_receive_confirmation(ctx, reply);
            atomic_fetch_add(n == 9 + 2 * count ? &transactions : &failures, 1);
        }
    }
    modbus_close(ctx);
    modbus_free(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 9 || argc > 11) {
        fprintf(stderr, "usage: bench_modbus BASE_PORT ENDPOINTS METERS INTERVAL_MS SECONDS "
                        "FUNCTION ADDRESS COUNT [DEPTH [WINDOW_MS]]\n");
        return 2;
    }
    int base_port = atoi(argv[1]), endpoints = atoi(argv[2]), meters = atoi(argv[3]);
    interval_ms = atoi(argv[4]);
    double seconds = atof(argv[5]);
    function = atoi(argv[6]);
    address = atoi(argv[7]);
    count = atoi(argv[8]);
    if (argc >= 10)
        depth = atoi(argv[9]);
    if (depth > 1) { /* the gateway's early window on a pipelined bus */
        int64_t part_ms = interval_ms / 20, tenth_ms = interval_ms / 10;
        int64_t window_ms = part_ms > 50 ? 50 : part_ms > 10 ? part_ms : 10;
        window_ns = (window_ms < tenth_ms ? window_ms : tenth_ms) * 1000000;
    }
    if (argc >= 11)
        window_ns = atoll(argv[10]) * 1000000;
    if (endpoints < 1 || meters < endpoints || interval_ms < 1 || seconds <= 0 ||
        (function != 3 && function != 4) || count < 1 || count > 125 || depth < 1 ||
        window_ns < 0) {
        fprintf(stderr, "bench_modbus: bad arguments\n");
        return 2;
    }
    struct endpoint_poller *pollers = calloc((size_t)endpoints, sizeof *pollers);
    if (pollers == NULL)
        return 1;
    for (int e = 0; e < endpoints; e++) {
        pollers[e].port = base_port + e;
        pollers[e].first_slave = 1;
        pollers[e].slaves = meters / endpoints + (e < meters % endpoints);
        pthread_create(&pollers[e].thread, NULL, poll_endpoint, &pollers[e]);
    }
    /* Warm up for 2 s, then measure the window. */
    sleep_until_ns(mono_ns() + 2000000000LL);
    unsigned long long tx0 = atomic_load(&transactions);
    double cpu0 = cpu_seconds();
    int64_t t0 = mono_ns();
    sleep_until_ns(t0 + (int64_t)(seconds * 1e9));
    unsigned long long tx = atomic_load(&transactions) - tx0;
    double cpu = cpu_seconds() - cpu0;
    double wall = (double)(mono_ns() - t0) / 1e9;
    atomic_store(&stopping, true);
    for (int e = 0; e < endpoints; e++)
        pthread_join(pollers[e].thread, NULL);
    free(pollers);
    printf("{\"transactions\": %llu, \"failures\": %llu, \"seconds\": %.3f, \"tx_per_s\": %.1f, "
           "\"cpu_us_per_tx\": %.2f, \"cpu_percent\": %.1f}\n",
           tx, atomic_load(&failures), wall, (double)tx / wall, tx ? cpu * 1e6 / (double)tx : 0.0,
           100.0 * cpu / wall);
    return 0;
}
