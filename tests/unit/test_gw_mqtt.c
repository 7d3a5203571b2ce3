/* test_gw_mqtt.c - gateway/mqtt.c against the real parts: Eclipse Paho's
 * synchronous client (the library the gateway links) talking to a mosquitto
 * broker this test starts itself on a free loopback port, and a second Paho
 * client (MQTT 5 with retain-as-published, so every message shows the
 * retain flag it was published with) observing the gateway's topics.
 *
 * Covers: publishing refuses at once while nothing is connected (before
 * start, with the broker's port closed) and connects by itself once a
 * broker appears; the connection carries the retained Last Will on
 * P/status (seen when another client takes the gateway's client id over),
 * the subscription to P/cmd/+ and the retained online status; every message
 * arrives exactly once, in order and byte for byte across many wraps of the
 * 2 MB ring and with messages too large for it: a QoS 0 stream (the
 * gateway's readings) and a QoS 1 stream, each checked on its own, as the
 * broker may pass QoS 0 messages ahead of QoS 1 ones waiting for its
 * window (the broker runs with max_queued_messages 0: mosquitto otherwise
 * drops QoS 0 messages for a subscriber 1000 packets behind, which this
 * test's observer may well be); with the broker stalled by SIGSTOP the
 * publisher thread blocks inside Paho, the ring fills and publish refuses
 * without blocking (publish_wait after its wait), and delivery resumes on
 * SIGCONT, publish_wait going on once room comes back; tags come back once
 * the broker acknowledges and not before; killing the broker fails the
 * tags in flight, and a broker restarted on the same port brings a new
 * generation; commands are queued with their size limits; destroy sends
 * what is queued, publishes the offline status and disconnects cleanly
 * (the broker keeps the offline status, not the will).
 *
 * Not covered here: an acknowledgement arriving
 * before MQTTClient_publish returns its token (mqtt.c keeps such tokens in
 * early[] and register_pending matches them). Paho can do that when it
 * lets go of its lock during a large write, but real parts cannot be made
 * to do it on demand, so that path is left to code review. Paho's connect
 * options (clean session, MQTT 3.1.1, window) are no longer read back; the
 * broker's behaviour is checked instead.
 *
 * Needs mosquitto (scripts/deps.sh installs it): found on PATH, in
 * /usr/sbin or /usr/local/sbin, or named by ESTATE_MOSQUITTO. The broker is
 * killed and reaped by the group teardown, by an atexit handler, and by the
 * kernel (PR_SET_PDEATHSIG) if this process dies. Its log stays in the
 * temporary folder printed at the end when a test failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <MQTTClient.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mqtt.h"

#define WILL_PAYLOAD "{\"state\":\"lost\"}"
#define ONLINE_PAYLOAD "{\"state\":\"online\"}"
#define OFFLINE_PAYLOAD "{\"state\":\"offline\"}"
#define RING_BYTES ((size_t)2 << 20) /* mqtt.c's ring */
#define CALL_MAX_US 50000 /* a publish that blocked would wait for the broker: seconds */
#define WAIT_MS 30000     /* generous: a loaded 2-core machine, sanitizers */
#define MAX_MESSAGE (200u << 10)

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- */
/* Brokers                                                           */
/* ---------------------------------------------------------------- */

struct broker {
    int port;
    pid_t pid;            /* 0 = not running */
    char conf[PATH_MAX];
    char log[PATH_MAX];
};

#define MAX_BROKERS 4
static struct broker brokers[MAX_BROKERS]; /* [0] serves every test */
static size_t nbrokers;
static char workdir[64];
static char mosquitto_path[PATH_MAX];
static int given_ports[16];
static size_t ngiven;

static bool find_mosquitto(void)
{
    const char *env = getenv("ESTATE_MOSQUITTO");
    if (env != NULL && *env != '\0') {
        snprintf(mosquitto_path, sizeof mosquitto_path, "%s", env);
        return access(mosquitto_path, X_OK) == 0;
    }
    char dirs[4096];
    const char *path = getenv("PATH");
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin", path ? path : "/usr/bin");
    char *save = NULL;
    for (char *dir = strtok_r(dirs, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        snprintf(mosquitto_path, sizeof mosquitto_path, "%s/mosquitto", dir);
        if (access(mosquitto_path, X_OK) == 0)
            return true;
    }
    return false;
}

/* A free loopback port below the kernel's ephemeral range, as
 * tests/integration/harness.py picks them: a broker restarted on it can
 * always bind it again (an ephemeral port may meanwhile be the local end
 * of the gateway's own reconnection attempt). */
static int free_port(void)
{
    int low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &low) != 1)
            low = 32768;
        fclose(f);
    }
    int base = low - 12000 > 1024 ? low - 12000 : 1024;
    unsigned seed = (unsigned)getpid() ^ (unsigned)now_us();
    for (int attempt = 0; attempt < 200; attempt++) {
        int port = base + (int)(rand_r(&seed) % (unsigned)(low - base));
        bool given = false;
        for (size_t i = 0; i < ngiven; i++)
            given |= given_ports[i] == port;
        if (given)
            continue;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        if (s >= 0)
            close(s);
        if (ok) {
            if (ngiven < sizeof given_ports / sizeof given_ports[0])
                given_ports[ngiven++] = port;
            return port;
        }
    }
    return -1;
}

static bool port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* A broker on a new port, written but not started. */
static struct broker *broker_new(void)
{
    if (nbrokers == MAX_BROKERS)
        return NULL;
    struct broker *b = &brokers[nbrokers];
    b->port = free_port();
    if (b->port < 0)
        return NULL;
    snprintf(b->conf, sizeof b->conf, "%s/mosquitto-%d.conf", workdir, b->port);
    snprintf(b->log, sizeof b->log, "%s/mosquitto-%d.log", workdir, b->port);
    FILE *f = fopen(b->conf, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
               "max_queued_messages 0\n",
            b->port);
    if (geteuid() == 0)
        fprintf(f, "user root\n"); /* else mosquitto drops to its own user */
    fclose(f);
    nbrokers++;
    return b;
}

static void broker_print_log(const struct broker *b)
{
    FILE *f = fopen(b->log, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(stderr, "---- %s\n", b->log);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

/* Starts mosquitto and waits (up to 10 s) until it accepts connections. */
static bool broker_start(struct broker *b)
{
    int log = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0)
        return false;
    char *argv[] = {mosquitto_path, "-c", b->conf, NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls here: the parent has threads. */
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no broker outlives a crashed test */
        if (getppid() != parent)
            _exit(97);
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
        execv(mosquitto_path, argv);
        _exit(98);
    }
    close(log);
    if (pid < 0)
        return false;
    b->pid = pid;
    int64_t deadline = est_mono_ms() + 10000;
    while (est_mono_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            fprintf(stderr, "mosquitto on port %d exited at start\n", b->port);
            broker_print_log(b);
            return false;
        }
        if (port_open(b->port))
            return true;
        est_sleep_ms(10);
    }
    fprintf(stderr, "mosquitto on port %d did not listen within 10 s\n", b->port);
    return false;
}

/* /proc/PID/stat's state letter ('T' = stopped), or '?'. */
static char process_state(pid_t pid)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *paren = strrchr(text, ')'); /* the command may hold spaces */
    return paren != NULL && paren[1] == ' ' ? paren[2] : '?';
}

/* While a broker is stopped, a guard thread resumes it after STALL_MAX_MS
 * whatever the test does: a publish that blocked would then return late
 * and fail its timing check, instead of hanging the test. */
#define STALL_MAX_MS 20000
static struct {
    pthread_t thread;
    bool running;
    atomic_bool armed;
    pid_t pid;
    int64_t deadline_ms;
} guard;

static void *guard_main(void *arg)
{
    while (atomic_load(&guard.armed) && est_mono_ms() < guard.deadline_ms)
        est_sleep_ms(5);
    if (atomic_exchange(&guard.armed, false)) {
        fprintf(stderr, "guard: the broker was stopped for %d ms; resuming it\n", STALL_MAX_MS);
        kill(guard.pid, SIGCONT);
    }
    return NULL;
}

static void guard_disarm(void)
{
    if (!guard.running)
        return;
    atomic_store(&guard.armed, false);
    pthread_join(guard.thread, NULL);
    guard.running = false;
}

/* SIGSTOP, and waits until the kernel has stopped it. */
static bool broker_stop(struct broker *b)
{
    guard_disarm();
    if (b->pid <= 0 || kill(b->pid, SIGSTOP) != 0)
        return false;
    guard.pid = b->pid;
    guard.deadline_ms = est_mono_ms() + STALL_MAX_MS;
    atomic_store(&guard.armed, true);
    guard.running = pthread_create(&guard.thread, NULL, guard_main, NULL) == 0;
    int64_t deadline = est_mono_ms() + 10000;
    while (process_state(b->pid) != 'T' && est_mono_ms() < deadline)
        est_sleep_ms(1);
    return process_state(b->pid) == 'T';
}

static void broker_resume(struct broker *b)
{
    guard_disarm();
    if (b->pid > 0)
        kill(b->pid, SIGCONT);
}

/* SIGKILL (also when stopped) and reap. */
static void broker_kill(struct broker *b)
{
    guard_disarm();
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    kill(b->pid, SIGCONT);
    while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    b->pid = 0;
}

static void kill_all_brokers(void)
{
    for (size_t i = 0; i < nbrokers; i++)
        broker_kill(&brokers[i]);
}

/* ---------------------------------------------------------------- */
/* Messages the test publishes                                       */
/* ---------------------------------------------------------------- */

/* A numbered message: seq, the previous seq of the same stream (0 for the
 * first) and the total length, 8 bytes each in host order, then a pattern
 * that depends on seq and position. A receiver that sees each message name
 * its predecessor, at the right length and with the right bytes, has got
 * every message exactly once, in order, byte for byte. */
#define HEADER 24

static unsigned char pattern_byte(uint64_t seq, size_t i)
{
    return (unsigned char)(seq * 131 + i * 7 + (i >> 8));
}

static void fill_message(unsigned char *p, uint64_t seq, uint64_t prev, size_t length)
{
    uint64_t len = length;
    memcpy(p, &seq, 8);
    memcpy(p + 8, &prev, 8);
    memcpy(p + 16, &len, 8);
    for (size_t i = HEADER; i < length; i++)
        p[i] = pattern_byte(seq, i);
}

/* ---------------------------------------------------------------- */
/* The observer: a second, real Paho client                          */
/* ---------------------------------------------------------------- */

/* Messages on P/s/q0 (published with QoS 0) and P/s/q1 (QoS 1). */
struct stream {
    uint64_t last;  /* seq of the last message received, 0 = none */
    size_t count;
    size_t bytes;
};

struct status_msg {
    char payload[96];
    bool retained;
};

struct collector {
    MQTTClient client;
    char prefix[96];
    size_t prefix_len;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct stream streams[2];
    char error[256];              /* the first broken expectation, "" = none */
    struct status_msg status[32]; /* P/status, in arrival order */
    size_t nstatus;
    size_t other;                 /* messages on any other topic */
    bool lost;
};

static void collector_fail(struct collector *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void collector_fail(struct collector *c, const char *fmt, ...)
{
    if (c->error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

static void collect_stream(struct collector *c, int qos, const MQTTClient_message *msg)
{
    struct stream *s = &c->streams[qos];
    const unsigned char *p = msg->payload;
    size_t length = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (length < HEADER) {
        collector_fail(c, "q%d: a %zu-byte message", qos, length);
        return;
    }
    uint64_t seq, prev, len;
    memcpy(&seq, p, 8);
    memcpy(&prev, p + 8, 8);
    memcpy(&len, p + 16, 8);
    if (prev != s->last)
        collector_fail(c, "q%d: message %llu follows %llu, received %llu", qos,
                       (unsigned long long)seq, (unsigned long long)prev,
                       (unsigned long long)s->last);
    if (len != length)
        collector_fail(c, "q%d: message %llu has %zu bytes of %llu", qos,
                       (unsigned long long)seq, length, (unsigned long long)len);
    if (msg->qos != qos || msg->retained)
        collector_fail(c, "q%d: message %llu came with QoS %d, retained %d", qos,
                       (unsigned long long)seq, msg->qos, msg->retained);
    for (size_t i = HEADER; i < length; i++) {
        if (p[i] != pattern_byte(seq, i)) {
            collector_fail(c, "q%d: message %llu differs at byte %zu", qos,
                           (unsigned long long)seq, i);
            break;
        }
    }
    s->last = seq;
    s->count++;
    s->bytes += length;
}

/* Paho's thread: records, never asserts. */
static int on_collect(void *context, char *topic, int topic_len, MQTTClient_message *msg)
{
    struct collector *c = context;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    pthread_mutex_lock(&c->lock);
    const char *rest = tlen > c->prefix_len && memcmp(topic, c->prefix, c->prefix_len) == 0
                           ? topic + c->prefix_len
                           : "";
    size_t rlen = tlen > c->prefix_len ? tlen - c->prefix_len : 0;
    if (rlen == 7 && memcmp(rest, "/status", 7) == 0) {
        if (c->nstatus < sizeof c->status / sizeof c->status[0]) {
            struct status_msg *s = &c->status[c->nstatus++];
            int n = msg->payloadlen < (int)sizeof s->payload - 1 ? msg->payloadlen
                                                                  : (int)sizeof s->payload - 1;
            memcpy(s->payload, msg->payload, (size_t)(n > 0 ? n : 0));
            s->payload[n > 0 ? n : 0] = '\0';
            s->retained = msg->retained;
        }
    } else if (rlen == 5 && memcmp(rest, "/s/q", 4) == 0 && (rest[4] == '0' || rest[4] == '1')) {
        collect_stream(c, rest[4] - '0', msg);
    } else {
        c->other++;
    }
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

static void on_collector_lost(void *context, char *cause)
{
    struct collector *c = context;
    pthread_mutex_lock(&c->lock);
    c->lost = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

/* Connects to the broker on port and subscribes to prefix/# with QoS 1,
 * retain-as-published, no-local. NULL on failure. */
static struct collector *collector_open(int port, const char *prefix)
{
    static int serial;
    struct collector *c = calloc(1, sizeof *c);
    assert_non_null(c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->changed, &attr);
    pthread_condattr_destroy(&attr);
    snprintf(c->prefix, sizeof c->prefix, "%s", prefix);
    c->prefix_len = strlen(c->prefix);
    char uri[64], id[64], filter[128];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", port);
    snprintf(id, sizeof id, "observer-%d-%d", (int)getpid(), ++serial);
    snprintf(filter, sizeof filter, "%s/#", prefix);
    MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
    create.MQTTVersion = MQTTVERSION_5;
    int rc = MQTTClient_createWithOptions(&c->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                          &create);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    MQTTClient_setCallbacks(c->client, c, on_collector_lost, on_collect, NULL);
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer5;
    opts.keepAliveInterval = 60;
    opts.connectTimeout = 10;
    MQTTResponse r = MQTTClient_connect5(c->client, &opts, NULL, NULL);
    rc = r.reasonCode;
    MQTTResponse_free(r);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    MQTTSubscribe_options sub = MQTTSubscribe_options_initializer;
    sub.retainAsPublished = 1;
    sub.noLocal = 1;
    r = MQTTClient_subscribe5(c->client, filter, 1, &sub, NULL);
    rc = r.reasonCode;
    MQTTResponse_free(r);
    assert_int_equal(rc, 1); /* granted QoS 1 */
    return c;
}

static void collector_close(struct collector *c)
{
    if (c == NULL)
        return;
    MQTTClient_disconnect(c->client, 1000);
    MQTTClient_destroy(&c->client);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Publishes with QoS 1 and waits for the broker's acknowledgement. */
static void collector_publish(struct collector *c, const char *topic, const void *payload,
                              size_t length)
{
    MQTTClient_deliveryToken token = 0;
    MQTTResponse r =
        MQTTClient_publish5(c->client, topic, (int)length, payload, 1, 0, NULL, &token);
    int rc = r.reasonCode;
    MQTTResponse_free(r);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    assert_int_equal(MQTTClient_waitForCompletion(c->client, token, 10000), MQTTCLIENT_SUCCESS);
}

/* Waits (up to timeout_ms) until stream qos has count messages; returns
 * how many it has. */
static size_t collector_wait_count(struct collector *c, int qos, size_t count, int64_t timeout_ms)
{
    int64_t deadline = est_mono_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    while (c->streams[qos].count < count && est_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->changed, &c->lock, &ts);
    }
    size_t got = c->streams[qos].count;
    pthread_mutex_unlock(&c->lock);
    return got;
}

/* Waits until a status message with payload (NULL: any) arrives at index
 * from or later; returns its index, or -1. */
static int collector_wait_status(struct collector *c, const char *payload, size_t from)
{
    int64_t deadline = est_mono_ms() + WAIT_MS;
    int found = -1;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        for (size_t i = from; i < c->nstatus && found < 0; i++)
            if (payload == NULL || strcmp(c->status[i].payload, payload) == 0)
                found = (int)i;
        if (found >= 0 || est_mono_ms() >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->changed, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* The index of a status message with payload received so far, or -1. */
static int collector_find_status(struct collector *c, const char *payload)
{
    int found = -1;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nstatus && found < 0; i++)
        if (strcmp(c->status[i].payload, payload) == 0)
            found = (int)i;
    pthread_mutex_unlock(&c->lock);
    return found;
}

static struct status_msg collector_status(struct collector *c, int index)
{
    pthread_mutex_lock(&c->lock);
    struct status_msg s = c->status[index];
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* Checks the whole stream: no broken expectation, count messages, the
 * last one numbered last. */
static void collector_check(struct collector *c, int qos, size_t count, uint64_t last)
{
    pthread_mutex_lock(&c->lock);
    char error[256];
    snprintf(error, sizeof error, "%s", c->error);
    struct stream s = c->streams[qos];
    pthread_mutex_unlock(&c->lock);
    if (error[0] != '\0')
        fail_msg("observer: %s", error);
    assert_int_equal(s.count, count);
    assert_int_equal(s.last, last);
}

/* ---------------------------------------------------------------- */
/* Fixture                                                           */
/* ---------------------------------------------------------------- */

struct fixture {
    char prefix[64];          /* estate/u<n>/gw: each test its own topics */
    char uri[64];
    char client_id[64];
    char stream_topic[2][96]; /* P/s/q0, P/s/q1 */
    struct gw_mqtt_config config;
    struct gw_queue *inbound;
    struct gw_mqtt *mqtt;
    struct collector *col;    /* on brokers[0], subscribed before the gateway starts */
    struct collector *extra[2];
    uint64_t last[2];         /* last seq published on each stream */
    size_t sent[2];
    unsigned char *buf;
};

static struct broker *main_broker(void) { return &brokers[0]; }

static void gateway_create(struct fixture *f, int port)
{
    snprintf(f->uri, sizeof f->uri, "tcp://127.0.0.1:%d", port);
    assert_int_equal(gw_mqtt_create(&f->config, f->prefix, WILL_PAYLOAD, f->inbound, &f->mqtt),
                     EST_OK);
    gw_mqtt_set_online_payload(f->mqtt, ONLINE_PAYLOAD);
}

static int setup(void **state)
{
    static int serial;
    struct broker *b = main_broker();
    broker_resume(b);
    if (b->pid == 0 && !broker_start(b)) /* a failed test left it dead */
        return -1;
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    serial++;
    snprintf(f->prefix, sizeof f->prefix, "estate/u%d/gw", serial);
    snprintf(f->client_id, sizeof f->client_id, "gw-%d-%d", (int)getpid(), serial);
    snprintf(f->stream_topic[0], sizeof f->stream_topic[0], "%s/s/q0", f->prefix);
    snprintf(f->stream_topic[1], sizeof f->stream_topic[1], "%s/s/q1", f->prefix);
    f->config.uri = f->uri;
    f->config.client_id = f->client_id;
    f->config.keepalive_s = 30;
    f->buf = malloc(MAX_MESSAGE);
    assert_non_null(f->buf);
    assert_int_equal(gw_queue_create(sizeof(struct gw_mqtt_inbound), 8, &f->inbound), EST_OK);
    f->col = collector_open(b->port, f->prefix);
    gateway_create(f, b->port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < nbrokers; i++)
        broker_resume(&brokers[i]); /* after a failed test */
    if (f->mqtt)
        gw_mqtt_destroy(f->mqtt, NULL, 0);
    collector_close(f->col);
    for (size_t i = 0; i < 2; i++)
        collector_close(f->extra[i]);
    for (size_t i = 1; i < nbrokers; i++)
        broker_kill(&brokers[i]);
    gw_queue_destroy(f->inbound);
    free(f->buf);
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    if (!find_mosquitto()) {
        fprintf(stderr, "mosquitto not found on PATH, in /usr/sbin or as ESTATE_MOSQUITTO "
                        "(scripts/deps.sh installs it)\n");
        return -1;
    }
    snprintf(workdir, sizeof workdir, "/tmp/test_gw_mqtt.XXXXXX");
    if (mkdtemp(workdir) == NULL)
        return -1;
    atexit(kill_all_brokers);
    struct broker *b = broker_new();
    return b != NULL && broker_start(b) ? 0 : -1;
}

static int group_teardown(void **state)
{
    kill_all_brokers();
    return 0;
}

static bool wait_connected(struct gw_mqtt *m, bool connected)
{
    int64_t deadline = est_mono_ms() + WAIT_MS;
    while (gw_mqtt_connected(m) != connected && est_mono_ms() < deadline)
        est_sleep_ms(1);
    return gw_mqtt_connected(m) == connected;
}

static bool wait_inflight(struct gw_mqtt *m, size_t n)
{
    int64_t deadline = est_mono_ms() + WAIT_MS;
    while (gw_mqtt_inflight(m) != n && est_mono_ms() < deadline)
        est_sleep_ms(1);
    return gw_mqtt_inflight(m) == n;
}

/* Starts the gateway and waits until the observer has its online status. */
static void start(struct fixture *f)
{
    assert_int_equal(gw_mqtt_start(f->mqtt), EST_OK);
    assert_true(wait_connected(f->mqtt, true));
    assert_true(collector_wait_status(f->col, ONLINE_PAYLOAD, 0) >= 0);
}

/* Publishes the next message of stream qos (length bytes, at least
 * HEADER) on P/s/q<qos>, retrying while the ring is full; counts the
 * refusals. Returns the seq. */
static uint64_t publish_next(struct fixture *f, uint64_t seq, int qos, size_t length,
                             uint64_t tag, size_t *refused)
{
    fill_message(f->buf, seq, f->last[qos], length);
    int64_t deadline = est_mono_ms() + WAIT_MS;
    est_err err;
    while ((err = gw_mqtt_publish(f->mqtt, f->stream_topic[qos], f->buf, length, qos, false,
                                  tag)) == EST_ERR_IO &&
           est_mono_ms() < deadline) {
        (*refused)++;
        est_sleep_ms(1);
    }
    assert_int_equal(err, EST_OK);
    f->last[qos] = seq;
    f->sent[qos]++;
    return seq;
}

/* ---------------------------------------------------------------- */
/* Tests                                                             */
/* ---------------------------------------------------------------- */

/* Publishes on both streams and checks the refusal and its speed. */
static void expect_refused_quickly(struct fixture *f, int64_t *worst_us)
{
    fill_message(f->buf, 1, 0, 100);
    for (int qos = 0; qos < 2; qos++) {
        int64_t t0 = now_us();
        est_err err = gw_mqtt_publish(f->mqtt, f->stream_topic[qos], f->buf, 100, qos, false, 7);
        int64_t took = now_us() - t0;
        assert_int_equal(err, EST_ERR_IO);
        if (took > *worst_us)
            *worst_us = took;
    }
}

/* Nothing to talk to: before start, and while the broker's port is
 * closed, publish refuses at once and counts nothing in flight; once a
 * broker listens there, the gateway connects by itself. */
static void test_refuses_while_not_connected(void **state)
{
    struct fixture *f = *state;
    gw_mqtt_destroy(f->mqtt, NULL, 0);
    f->mqtt = NULL;
    struct broker *later = broker_new();
    assert_non_null(later);
    gateway_create(f, later->port);
    int64_t worst_us = 0;
    expect_refused_quickly(f, &worst_us);
    assert_false(gw_mqtt_connected(f->mqtt));
    assert_int_equal(gw_mqtt_generation(f->mqtt), 0);

    assert_int_equal(gw_mqtt_start(f->mqtt), EST_OK);
    /* The first attempt at once, refused; then the backoff. */
    int64_t until = est_mono_ms() + 400;
    size_t calls = 0;
    while (est_mono_ms() < until) {
        expect_refused_quickly(f, &worst_us);
        calls++;
        est_sleep_ms(1);
    }
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    assert_false(gw_mqtt_connected(f->mqtt));
    assert_int_equal(gw_mqtt_generation(f->mqtt), 0);
    assert_true(worst_us < CALL_MAX_US);
    printf("    (%zu refusals while the port was closed, the slowest in %lld us)\n", calls * 2,
           (long long)worst_us);

    assert_true(broker_start(later));
    f->extra[0] = collector_open(later->port, f->prefix);
    assert_true(wait_connected(f->mqtt, true));
    assert_int_equal(gw_mqtt_generation(f->mqtt), 1);
    int i = collector_wait_status(f->extra[0], ONLINE_PAYLOAD, 0);
    assert_true(i >= 0);
    assert_true(collector_status(f->extra[0], i).retained);
    size_t refused = 0;
    publish_next(f, 1, 1, 100, 5, &refused);
    assert_int_equal(collector_wait_count(f->extra[0], 1, 1, WAIT_MS), 1);
    collector_check(f->extra[0], 1, 1, 1);
    assert_true(wait_inflight(f->mqtt, 0));
    uint64_t tags[4];
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 4), 1);
    assert_int_equal(tags[0], 5);
}

/* Another connection with the gateway's client id. */
struct takeover {
    MQTTClient client;
    atomic_bool lost;  /* the broker dropped it */
};

static void on_takeover_lost(void *context, char *cause)
{
    struct takeover *t = context;
    atomic_store(&t->lost, true);
}

static int on_takeover_message(void *context, char *topic, int len, MQTTClient_message *msg)
{
    MQTTClient_freeMessage(&msg);
    MQTTClient_free(topic);
    return 1;
}

/* Connects (clean session, MQTT 3.1.1) as the gateway; Paho's code. */
static int takeover_connect(struct takeover *t, const struct fixture *f)
{
    atomic_store(&t->lost, false);
    int rc = MQTTClient_create(&t->client, f->uri, f->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        t->client = NULL;
        return rc;
    }
    MQTTClient_setCallbacks(t->client, t, on_takeover_lost, on_takeover_message, NULL);
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    opts.cleansession = 1;
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    opts.connectTimeout = 10;
    return MQTTClient_connect(t->client, &opts);
}

static void takeover_close(struct takeover *t)
{
    if (t->client == NULL)
        return;
    MQTTClient_disconnect(t->client, 0);
    MQTTClient_destroy(&t->client);
}

/* The online status is retained (a late subscriber gets it); the will is
 * on P/status, retained, and the broker publishes it when another client
 * takes the gateway's client id over; the gateway then reconnects (a new
 * generation) and says it is online again. */
static void test_connects_with_will_and_online_status(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_int_equal(gw_mqtt_generation(f->mqtt), 1);
    int online = collector_wait_status(f->col, ONLINE_PAYLOAD, 0);
    assert_true(collector_status(f->col, online).retained);

    f->extra[0] = collector_open(main_broker()->port, f->prefix);
    int late = collector_wait_status(f->extra[0], ONLINE_PAYLOAD, 0);
    assert_int_equal(late, 0);
    assert_true(collector_status(f->extra[0], late).retained);

    struct takeover t;
    int rc = takeover_connect(&t, f);
    int will = collector_wait_status(f->col, WILL_PAYLOAD, (size_t)online + 1);
    /* The gateway takes its id back, which drops this connection. */
    bool back = wait_connected(f->mqtt, true);
    int64_t deadline = est_mono_ms() + WAIT_MS;
    while (gw_mqtt_generation(f->mqtt) < 2 && est_mono_ms() < deadline)
        est_sleep_ms(1);
    int again = will >= 0 ? collector_wait_status(f->col, ONLINE_PAYLOAD, (size_t)will + 1) : -1;
    deadline = est_mono_ms() + WAIT_MS;
    while (!atomic_load(&t.lost) && est_mono_ms() < deadline)
        est_sleep_ms(1);
    bool dropped = atomic_load(&t.lost);
    takeover_close(&t);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    assert_true(will >= 0);
    assert_true(collector_status(f->col, will).retained);
    assert_true(back);
    assert_int_equal(gw_mqtt_generation(f->mqtt), 2);
    assert_true(again >= 0);
    assert_true(collector_status(f->col, again).retained);
    assert_true(dropped);
}

/* 200,000 messages from 24 bytes to twice the ring's inline limit, about
 * 45 MB: the 2 MB ring wraps many times and large messages go through the
 * heap. One in sixteen goes with QoS 1 (through Paho's window of 128),
 * the rest with QoS 0 (the gateway's readings); each stream must arrive
 * exactly once, in order, intact. (More QoS 1 only makes the test slower:
 * the broker falls behind, the socket fills, and Paho's publish then
 * sleeps 100 ms at a time until its pending write is done.) */
static void test_order_and_content_across_wraps(void **state)
{
    struct fixture *f = *state;
    start(f);
    const uint64_t n = 200000;
    uint64_t rng = 12345;
    size_t total = 0, large = 0, refused = 0;
    int64_t t0 = est_mono_ms();
    for (uint64_t seq = 1; seq <= n; seq++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t length = HEADER + (size_t)(rng >> 33) % 300;
        if (seq % 1999 == 0) {
            length = (65u << 10) + (size_t)(rng >> 40) % (75u << 10); /* beyond 64 KB */
            large++;
        }
        total += length;
        publish_next(f, seq, seq % 16 == 0 ? 1 : 0, length, 0, &refused);
    }
    int64_t queued_ms = est_mono_ms() - t0;
    assert_true(total > 10 * RING_BYTES);
    assert_int_equal(collector_wait_count(f->col, 0, f->sent[0], 60000), f->sent[0]);
    assert_int_equal(collector_wait_count(f->col, 1, f->sent[1], 60000), f->sent[1]);
    collector_check(f->col, 0, f->sent[0], f->last[0]);
    collector_check(f->col, 1, f->sent[1], f->last[1]);
    assert_int_equal(f->sent[0] + f->sent[1], n);
    printf("    (%llu messages, %zu over 64 KB, %.1f MB: queued in %lld ms with %zu refusals "
           "while the ring was full, all received after %lld ms)\n",
           (unsigned long long)n, large, (double)total / 1e6, (long long)queued_ms, refused,
           (long long)(est_mono_ms() - t0));
}

/* The broker stalls (SIGSTOP: the connection stays up, the socket buffers
 * fill and the publisher thread blocks inside Paho's publish): publish
 * keeps returning at once, refusing once the ring is full, and
 * publish_wait refuses after its wait; after SIGCONT a publish_wait goes
 * as the publisher gives room back, and everything accepted arrives. */
static void test_full_ring_refuses_without_blocking(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_true(broker_stop(main_broker()));
    const size_t length = 1000;
    uint64_t accepted = 0;
    int64_t worst_us = 0;
    int64_t last_accept_ms = est_mono_ms();
    int64_t deadline = est_mono_ms() + WAIT_MS;
    size_t refusals = 0;
    /* Until publishing has been refused for half a second: the publisher
     * is not draining the ring any more. */
    while (est_mono_ms() - last_accept_ms < 500 && est_mono_ms() < deadline) {
        fill_message(f->buf, accepted + 1, accepted, length);
        int64_t t0 = now_us();
        est_err err = gw_mqtt_publish(f->mqtt, f->stream_topic[0], f->buf, length, 0, false, 0);
        int64_t took = now_us() - t0;
        if (took > worst_us)
            worst_us = took;
        if (err == EST_OK) {
            accepted++;
            last_accept_ms = est_mono_ms();
        } else {
            assert_int_equal(err, EST_ERR_IO);
            refusals++;
            est_sleep_ms(1);
        }
    }
    assert_true(worst_us < CALL_MAX_US);
    /* A message for the heap needs a record in the ring too. */
    int64_t t0 = now_us();
    memset(f->buf, 'x', 100000);
    assert_int_equal(gw_mqtt_publish(f->mqtt, f->stream_topic[1], f->buf, 100000, 1, false, 9),
                     EST_ERR_IO);
    int64_t took = now_us() - t0;
    if (took > worst_us)
        worst_us = took;
    assert_true(est_mono_ms() < deadline);    /* the ring did fill */
    assert_true(accepted >= RING_BYTES / (length + 100)); /* at least the ring's worth */
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    assert_true(gw_mqtt_connected(f->mqtt));  /* a stall is no loss */
    assert_true(worst_us < CALL_MAX_US);
    printf("    (%llu messages accepted, then %zu refusals; the slowest call %lld us)\n",
           (unsigned long long)accepted, refusals, (long long)worst_us);
    fill_message(f->buf, accepted + 1, accepted, length);
    int64_t wait_start = est_mono_ms();
    assert_int_equal(gw_mqtt_publish_wait(f->mqtt, f->stream_topic[0], f->buf, length, 0, false,
                                          0, 200),
                     EST_ERR_IO);
    int64_t waited = est_mono_ms() - wait_start;
    assert_true(waited >= 200 && waited < 2000);
    broker_resume(main_broker());
    assert_int_equal(gw_mqtt_publish_wait(f->mqtt, f->stream_topic[0], f->buf, length, 0, false,
                                          0, WAIT_MS),
                     EST_OK);
    accepted++;
    assert_int_equal(collector_wait_count(f->col, 0, accepted, WAIT_MS), accepted);
    collector_check(f->col, 0, accepted, accepted);
    f->last[0] = accepted;
    f->sent[0] = accepted;
    size_t refused = 0;
    publish_next(f, accepted + 1, 0, length, 0, &refused);
    assert_int_equal(collector_wait_count(f->col, 0, accepted + 1, WAIT_MS), accepted + 1);
    collector_check(f->col, 0, accepted + 1, accepted + 1);
}

/* More tagged messages than Paho's window while the broker is stalled:
 * nothing comes back and all count as in flight; once it runs again each
 * tag comes back exactly once and nothing is left in flight. */
static void test_tags_come_back_once_acknowledged(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_true(broker_stop(main_broker()));
    const uint64_t n = 300;
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= n; seq++)
        publish_next(f, seq, 1, 200, 1000 + seq, &refused);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), n);
    uint64_t tags[8];
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 8), 0);
    broker_resume(main_broker());
    bool seen[301] = {false};
    size_t total = 0;
    int64_t deadline = est_mono_ms() + WAIT_MS;
    while (total < n && est_mono_ms() < deadline) {
        size_t got = gw_mqtt_take_acked(f->mqtt, tags, 7); /* fewer than there are */
        for (size_t i = 0; i < got; i++) {
            assert_true(tags[i] > 1000 && tags[i] <= 1000 + n);
            assert_false(seen[tags[i] - 1000]);
            seen[tags[i] - 1000] = true;
        }
        total += got;
        if (got == 0)
            est_sleep_ms(1);
    }
    assert_int_equal(total, n);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 8), 0);
    assert_int_equal(collector_wait_count(f->col, 1, n, WAIT_MS), n);
    collector_check(f->col, 1, n, n);
}

/* The broker dies (SIGKILL) with tagged messages in flight (it was
 * stalled first, so none is acknowledged; Paho's window holds 128 and the
 * ring the rest): the connection goes, every tag fails and none comes
 * back; a broker restarted on the same port gets a new connection (a new
 * generation, the online status again), and publishing works again. */
static void test_loss_fails_inflight_and_reconnects(void **state)
{
    struct fixture *f = *state;
    start(f);
    struct broker *b = main_broker();
    /* The observer goes first, while the gateway is connected: Paho's
     * MQTTClient_disconnect stops its shared background thread when no
     * client of the process is connected at that moment, and a connect
     * racing with that stop waits its whole timeout (10 s) for a thread
     * that has gone. The gateway is the only Paho client of estate-gw. */
    collector_close(f->col);
    f->col = NULL;
    assert_true(broker_stop(b));
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= 200; seq++)
        publish_next(f, seq, 1, 100, seq, &refused);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 200);
    broker_kill(b);
    assert_true(wait_connected(f->mqtt, false));
    assert_true(wait_inflight(f->mqtt, 0));
    uint64_t tags[256];
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 256), 0);
    assert_int_equal(gw_mqtt_generation(f->mqtt), 1);
    int64_t worst_us = 0;
    expect_refused_quickly(f, &worst_us);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);

    assert_true(broker_start(b));
    f->col = collector_open(b->port, f->prefix);
    assert_true(wait_connected(f->mqtt, true));
    assert_int_equal(gw_mqtt_generation(f->mqtt), 2);
    int online = collector_wait_status(f->col, ONLINE_PAYLOAD, 0);
    assert_true(online >= 0);
    assert_true(collector_status(f->col, online).retained);
    f->last[1] = 0;
    f->sent[1] = 0;
    publish_next(f, 201, 1, 100, 201, &refused);
    assert_int_equal(collector_wait_count(f->col, 1, 1, WAIT_MS), 1);
    collector_check(f->col, 1, 1, 201);
    assert_true(wait_inflight(f->mqtt, 0));
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 256), 1);
    assert_int_equal(tags[0], 201);
}

static bool pop_command(struct fixture *f, struct gw_mqtt_inbound *in)
{
    return gw_queue_pop_many(f->inbound, in, 1, WAIT_MS) == 1;
}

/* Commands published on P/cmd/<verb> reach the inbound queue with their
 * topic and payload; other topics do not; a payload over
 * GW_MQTT_COMMAND_MAX or a topic over GW_MQTT_TOPIC_MAX is flagged. */
static void test_commands_are_queued_with_limits(void **state)
{
    struct fixture *f = *state;
    start(f);
    char topic[512];
    /* Not for the gateway: published first, so they would come first. */
    snprintf(topic, sizeof topic, "%s/cmd/valve/open", f->prefix);
    collector_publish(f->col, topic, "x", 1);
    snprintf(topic, sizeof topic, "%s/commands", f->prefix);
    collector_publish(f->col, topic, "y", 1);

    snprintf(topic, sizeof topic, "%s/cmd/valve", f->prefix);
    collector_publish(f->col, topic, "{\"valve\":\"V1\",\"on\":1}", 21);
    char long_topic[400];
    int n = snprintf(long_topic, sizeof long_topic, "%s/cmd/", f->prefix);
    memset(long_topic + n, 'v', sizeof long_topic - 1 - (size_t)n);
    long_topic[sizeof long_topic - 1] = '\0';
    collector_publish(f->col, long_topic, "12345", 5);
    char *big = malloc(GW_MQTT_COMMAND_MAX + 1);
    assert_non_null(big);
    for (size_t i = 0; i <= GW_MQTT_COMMAND_MAX; i++)
        big[i] = (char)('a' + i % 26);
    snprintf(topic, sizeof topic, "%s/cmd/max", f->prefix);
    collector_publish(f->col, topic, big, GW_MQTT_COMMAND_MAX);
    snprintf(topic, sizeof topic, "%s/cmd/workorder", f->prefix);
    collector_publish(f->col, topic, big, GW_MQTT_COMMAND_MAX + 1);

    struct gw_mqtt_inbound *in = malloc(sizeof *in);
    assert_non_null(in);
    snprintf(topic, sizeof topic, "%s/cmd/valve", f->prefix);
    assert_true(pop_command(f, in));
    assert_string_equal(in->topic, topic);
    assert_int_equal(in->length, 21);
    assert_false(in->too_large);
    assert_string_equal(in->payload, "{\"valve\":\"V1\",\"on\":1}");

    assert_true(pop_command(f, in));
    assert_true(in->too_large);
    assert_int_equal(strlen(in->topic), GW_MQTT_TOPIC_MAX - 1);
    assert_memory_equal(in->topic, long_topic, GW_MQTT_TOPIC_MAX - 1);

    snprintf(topic, sizeof topic, "%s/cmd/max", f->prefix);
    assert_true(pop_command(f, in));
    assert_string_equal(in->topic, topic);
    assert_false(in->too_large);
    assert_int_equal(in->length, GW_MQTT_COMMAND_MAX);
    assert_memory_equal(in->payload, big, GW_MQTT_COMMAND_MAX);
    assert_int_equal(in->payload[GW_MQTT_COMMAND_MAX], '\0');

    snprintf(topic, sizeof topic, "%s/cmd/workorder", f->prefix);
    assert_true(pop_command(f, in));
    assert_string_equal(in->topic, topic);
    assert_true(in->too_large);
    assert_int_equal(in->length, GW_MQTT_COMMAND_MAX);
    assert_memory_equal(in->payload, big, GW_MQTT_COMMAND_MAX);
    assert_int_equal(in->payload[GW_MQTT_COMMAND_MAX], '\0');
    assert_int_equal(gw_queue_length(f->inbound), 0);
    free(big);
    free(in);
}

/* Destroy sends what is queued or in flight, publishes the offline status
 * retained and disconnects cleanly: the broker keeps the offline status,
 * not the will. */
static void test_destroy_publishes_offline_and_disconnects(void **state)
{
    struct fixture *f = *state;
    start(f);
    int online = collector_wait_status(f->col, ONLINE_PAYLOAD, 0);
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= 50; seq++)
        publish_next(f, seq, 1, 5000, seq, &refused);
    int64_t t0 = est_mono_ms();
    gw_mqtt_destroy(f->mqtt, OFFLINE_PAYLOAD, 10000);
    int64_t took = est_mono_ms() - t0;
    f->mqtt = NULL;
    assert_true(took < 10000);
    int offline = collector_wait_status(f->col, OFFLINE_PAYLOAD, (size_t)online + 1);
    assert_true(offline >= 0);
    assert_true(collector_status(f->col, offline).retained);
    assert_int_equal(collector_wait_count(f->col, 1, 50, WAIT_MS), 50);
    collector_check(f->col, 1, 50, 50);

    /* Nothing of the gateway is left at the broker: a client taking its id
     * over finds no connection (taking one over would fire the will), and
     * a new subscriber then gets what the broker retained: the offline
     * status, not the will (which a connection closed without DISCONNECT
     * fires as well). */
    struct takeover t;
    int rc = takeover_connect(&t, f);
    f->extra[0] = collector_open(main_broker()->port, f->prefix);
    int retained = collector_wait_status(f->extra[0], NULL, 0);
    struct status_msg s = {.retained = false};
    if (retained >= 0)
        s = collector_status(f->extra[0], retained);
    takeover_close(&t);
    assert_int_equal(rc, MQTTCLIENT_SUCCESS);
    assert_int_equal(retained, 0);
    assert_string_equal(s.payload, OFFLINE_PAYLOAD);
    assert_true(s.retained);
    assert_int_equal(collector_find_status(f->col, WILL_PAYLOAD), -1);
}

/* An argument runs only the tests whose names match it (cmocka's filter,
 * '*' as a wildcard). */
int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon does */
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refuses_while_not_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connects_with_will_and_online_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_order_and_content_across_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_ring_refuses_without_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_come_back_once_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_fails_inflight_and_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_are_queued_with_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_publishes_offline_and_disconnects, setup,
                                        teardown),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    kill_all_brokers();
    if (workdir[0] != '\0') {
        if (failed == 0) {
            for (size_t i = 0; i < nbrokers; i++) {
                unlink(brokers[i].conf);
                unlink(brokers[i].log);
            }
            rmdir(workdir);
        } else {
            fprintf(stderr, "broker logs kept in %s\n", workdir);
        }
    }
    return failed;
}
