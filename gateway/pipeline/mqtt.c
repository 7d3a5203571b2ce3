/* mqtt.c - the gateway's MQTT client on Paho's synchronous MQTTClient (a
 * QoS 0 publish costs a third of MQTTAsync's CPU): callers copy messages
 * into a byte ring and return at once; one publisher thread owns the
 * connection (connect, will, TLS, backoff, subscription, online status) and
 * sends whatever the ring holds; Paho's own thread reports acknowledgements
 * and commands through callbacks that only record or enqueue. */
#include "mqtt.h"

#include <MQTTClient.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"

#define ACKED_CAPACITY 4096
/* Messages waiting for the publisher thread: a byte ring, so queueing one
 * costs a copy and no allocation. About 6,000 readings of 250 bytes; a
 * backlog beyond that means the broker or the socket is not keeping up, and
 * the core puts further readings in its outbox instead. */
#define RING_BYTES ((size_t)2 << 20) /* a power of two */
/* A message larger than this is copied to the heap and the ring holds only
 * its header, so any size can be queued; HEAP_BUDGET bounds such copies
 * (one is always accepted, or the outbox could stall on it for ever). */
#define RING_INLINE_MAX ((size_t)64 << 10)
#define HEAP_BUDGET ((size_t)16 << 20)
/* The publisher gives back what it has sent at least this often, so that a
 * producer waiting for room (gw_mqtt_publish_wait) goes on before a whole
 * ring's worth has gone out. */
#define RING_RELEASE_BYTES ((size_t)64 << 10)
/* QoS >= 1 messages handed to Paho and not yet acknowledged. The core keeps
 * at most OUTBOX_WINDOW (100) tagged ones in flight; the rest leaves room
 * for the status, events published directly and QoS 1 readings. Paho's
 * publish sleeps 100 ms when its own window is full, so the publisher
 * thread waits for acknowledgements itself before reaching that limit. */
#define PAHO_WINDOW 128
#define EARLY_MAX 8
/* (Re)connection backoff, run by the publisher thread: the first attempt
 * at once, then 0.5 s doubling to 5 s, plus up to 25% jitter, so a broker
 * back after any outage is found within about 6 s. */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000
#define IDLE_CHECK_MS 1000 /* an idle publisher checks the connection this often */
#define CONNECT_TIMEOUT_S 10

enum record_kind { REC_INLINE = 1, REC_HEAP, REC_SKIP };

/* Header of one queued message in the ring, at an 8-byte aligned offset.
 * REC_INLINE: topic, NUL and payload follow the header. REC_HEAP: they are
 * in heap. REC_SKIP: only size and kind are written (the unused end of the
 * buffer before it wraps). Copied in and out with memcpy. */
struct record {
    uint32_t size;      /* bytes the record takes in the ring, header included */
    uint8_t kind;       /* enum record_kind */
    uint8_t qos;
    uint8_t retain;
    size_t topic_len;   /* without the NUL */
    size_t payload_len;
    uint64_t tag;       /* 0 = untagged (always 0 for QoS 0) */
    char *heap;         /* REC_HEAP: topic, NUL, payload in one allocation */
};

/* A QoS >= 1 message Paho has and has not yet confirmed. */
struct pending {
    int token;          /* Paho's delivery token (the packet id) */
    uint64_t tag;       /* 0 = untagged */
    uint64_t pos;       /* ring position of its record: its PUBACK proves what came before */
};

struct gw_mqtt {
    MQTTClient client;
    const struct gw_mqtt_config *config;
    char *status_topic;
    char *command_filter;
    char *account_command_filter; /* P/cmd/by/+/+ with mqtt.commands_by_account */
    char *head_topic;              /* P/patrol/head: its retained message comes in too */
    char *will_payload;
    char *password;
    struct gw_queue *inbound;
    struct gw_mqtt_inbound *scratch; /* message-arrived buffer (Paho's thread only) */
    pthread_t thread;
    bool thread_started;
    struct gw_log_limiter refused_log; /* publishes Paho refused (publisher thread) */

    pthread_mutex_t lock;  /* guards everything below (atomics are also read without it) */
    pthread_cond_t wake;   /* the publisher thread waits on it */
    pthread_cond_t room;   /* producers waiting for room in the ring wait on it */
    size_t room_waiters;
    atomic_bool connected; /* a session is up: publishes are accepted */
    atomic_uint_fast64_t generation;
    atomic_size_t inflight; /* tagged QoS >= 1 messages queued or sent, not acked or failed */
    bool session;          /* the publisher thread holds a Paho connection */
    bool lost;             /* Paho reported a connection loss (maybe a stale one) */
    bool stop;             /* gw_mqtt_destroy: the publisher thread ends */
    bool idle;             /* the publisher waits for messages: a publish wakes it */
    bool window_wait;      /* the publisher waits for an acknowledgement */
    int disconnect_timeout_ms;
    char *online_payload;
    /* The ring: wpos and rpos count bytes since creation; the publisher
     * reads [rpos, wpos) without the lock, producers write after wpos. */
    char *ring;
    uint64_t wpos;
    uint64_t rpos;
    size_t heap_bytes;     /* payload bytes of queued REC_HEAP records */
    struct pending pending[PAHO_WINDOW];
    size_t npending;
    int early[EARLY_MAX];  /* tokens acknowledged before publish returned them */
    size_t nearly;
    uint64_t acked[ACKED_CAPACITY];
    size_t nacked;
    char last_problem[640]; /* last connect/TLS failure logged */
    /* Silent-link detection (see the section "Proof that the link
     * forwards"): everything queued before proven_pos reached the broker. */
    char *heartbeat_topic;
    atomic_uint_fast64_t proven_pos;
    uint64_t qos0_sent_pos;   /* end of the last QoS 0 record handed to Paho */
    int64_t heartbeat_ms;     /* when the last heartbeat went */
    int64_t waiting_since_ms; /* since when something sent waits for a proof; 0 = nothing */
    bool silent;              /* check_link gave up on the session */
    struct gw_mqtt *next_live; /* under live_lock */
};

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static char *read_secret_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        gw_warn("mqtt: password_file %s can be read by others (mode %03o); make it 0600", path,
                (unsigned)(st.st_mode & 0777));
    return est_read_first_line(path);
}

/* Waits on cond (m->lock held) for at most ms milliseconds. */
static void wait_on(struct gw_mqtt *m, pthread_cond_t *cond, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, &m->lock, &ts);
}

/* Waits on m->wake (lock held) for at most ms milliseconds. */
static void wait_ms(struct gw_mqtt *m, int64_t ms) { wait_on(m, &m->wake, ms); }

/* Gives the bytes before pos back to producers (lock held). */
static void release_ring(struct gw_mqtt *m, uint64_t pos, size_t heap_freed)
{
    m->rpos = pos;
    m->heap_bytes -= heap_freed;
    if (m->room_waiters > 0)
        pthread_cond_broadcast(&m->room);
}

/* ---------------------------------------------------------------- */
/* The ring (lock held unless said otherwise)                        */
/* ---------------------------------------------------------------- */

static bool ring_empty(const struct gw_mqtt *m) { return m->rpos == m->wpos; }

/* Appends one message; false when there is no room. */
static bool ring_put(struct gw_mqtt *m, const char *topic, size_t topic_len, const void *payload,
                     size_t length, int qos, bool retain, uint64_t tag, char *heap)
{
    struct record h = {
        .kind = heap ? REC_HEAP : REC_INLINE, .qos = (uint8_t)qos, .retain = retain,
        .topic_len = topic_len, .payload_len = length, .tag = tag, .heap = heap,
    };
    size_t need = align8(sizeof h + (heap ? 0 : topic_len + 1 + length));
    size_t off = (size_t)(m->wpos & (RING_BYTES - 1));
    size_t skip = RING_BYTES - off < need ? RING_BYTES - off : 0;
    if ((size_t)(m->wpos - m->rpos) + skip + need > RING_BYTES)
        return false;
    if (skip > 0) {
        /* The end of the buffer is too short: mark it skipped (at least 8
         * bytes remain, as every record is a multiple of 8) and wrap. */
        uint32_t size = (uint32_t)skip;
        uint8_t kind = REC_SKIP;
        memcpy(m->ring + off, &size, sizeof size);
        memcpy(m->ring + off + sizeof size, &kind, sizeof kind);
        m->wpos += skip;
        off = 0;
    }
    h.size = (uint32_t)need;
    char *at = m->ring + off;
    memcpy(at, &h, sizeof h);
    if (heap == NULL) {
        memcpy(at + sizeof h, topic, topic_len);
        at[sizeof h + topic_len] = '\0';
        if (length > 0)
            memcpy(at + sizeof h + topic_len + 1, payload, length);
    }
    m->wpos += need;
    return true;
}

/* Reads the record at pos (which the publisher owns). Returns its size;
 * *h is filled unless it is a REC_SKIP. */
static uint32_t ring_peek(const struct gw_mqtt *m, uint64_t pos, struct record *h)
{
    const char *at = m->ring + (size_t)(pos & (RING_BYTES - 1));
    uint32_t size;
    uint8_t kind;
    memcpy(&size, at, sizeof size);
    memcpy(&kind, at + sizeof size, sizeof kind);
    if (kind == REC_SKIP)
        h->kind = REC_SKIP;
    else
        memcpy(h, at, sizeof *h);
    return size;
}

static const char *record_topic(const struct gw_mqtt *m, uint64_t pos, const struct record *h)
{
    return h->kind == REC_HEAP ? h->heap
                               : m->ring + (size_t)(pos & (RING_BYTES - 1)) + sizeof *h;
}

/* One fewer tagged message in flight (not acknowledged: the row stays in
 * the outbox and is sent again after a reconnection). */
static void fail_tag(struct gw_mqtt *m, uint64_t tag)
{
    if (tag != 0)
        atomic_fetch_sub(&m->inflight, 1);
}

/* Drops everything queued (connection lost, or destroy). */
static void ring_purge(struct gw_mqtt *m)
{
    while (m->rpos != m->wpos) {
        struct record h;
        uint32_t size = ring_peek(m, m->rpos, &h);
        if (h.kind != REC_SKIP) {
            fail_tag(m, h.tag);
            if (h.kind == REC_HEAP) {
                m->heap_bytes -= h.payload_len;
                free(h.heap);
            }
        }
        m->rpos += size;
    }
    if (m->room_waiters > 0)
        pthread_cond_broadcast(&m->room); /* they see the loss */
}

/* ---------------------------------------------------------------- */
/* Acknowledgements (lock held)                                      */
/* ---------------------------------------------------------------- */

/* A PUBACK for the record at pos: TCP kept the order, so every record
 * before it reached the broker, QoS 0 ones included. */
static void record_proof(struct gw_mqtt *m, uint64_t pos)
{
    if (pos > atomic_load(&m->proven_pos))
        atomic_store(&m->proven_pos, pos);
    bool waiting = m->npending > 1 || m->qos0_sent_pos > pos;
    m->waiting_since_ms = waiting ? est_mono_ms() : 0;
}

static void acknowledge(struct gw_mqtt *m, uint64_t tag)
{
    if (tag == 0)
        return;
    atomic_fetch_sub(&m->inflight, 1);
    if (m->nacked < ACKED_CAPACITY)
        m->acked[m->nacked++] = tag;
    /* else the row stays queued and goes again after a reconnection */
}

/* Records a QoS >= 1 message Paho accepted. Its acknowledgement may have
 * come already (Paho lets go of its lock while a large write completes):
 * then it is in early[]. Any other early token belongs to no message. */
static void register_pending(struct gw_mqtt *m, int token, uint64_t tag, uint64_t pos)
{
    for (size_t i = 0; i < m->nearly; i++) {
        if (m->early[i] == token) {
            m->nearly = 0;
            acknowledge(m, tag);
            record_proof(m, pos);
            return;
        }
    }
    m->nearly = 0;
    if (m->npending < PAHO_WINDOW) {
        m->pending[m->npending++] = (struct pending){.token = token, .tag = tag, .pos = pos};
        if (m->waiting_since_ms == 0)
            m->waiting_since_ms = est_mono_ms();
        return;
    }
    /* Cannot happen: the publisher waits for room before publishing. */
    fail_tag(m, tag);
}

/* Paho's thread, for every PUBACK (QoS 1) or PUBCOMP (QoS 2). */
static void on_delivered(void *context, MQTTClient_deliveryToken token)
{
    struct gw_mqtt *m = context;
    pthread_mutex_lock(&m->lock);
    size_t i = 0;
    while (i < m->npending && m->pending[i].token != token)
        i++;
    if (i < m->npending) {
        acknowledge(m, m->pending[i].tag);
        record_proof(m, m->pending[i].pos);
        m->pending[i] = m->pending[--m->npending];
        if (m->window_wait)
            pthread_cond_signal(&m->wake);
    } else if (m->nearly < EARLY_MAX) {
        m->early[m->nearly++] = token;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- */
/* Paho callbacks                                                    */
/* ---------------------------------------------------------------- */

/* Clients not yet destroyed. Paho calls connectionLost on a detached
 * thread of its own, which may run after gw_mqtt_destroy: it acts only on
 * a client still listed here, under live_lock. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gw_mqtt *live_clients;

/* It may report a connection that the publisher thread already replaced:
 * the publisher checks. */
static void on_connection_lost(void *context, char *cause)
{
    pthread_mutex_lock(&live_lock);
    for (struct gw_mqtt *m = live_clients; m != NULL; m = m->next_live) {
        if (m == context) {
            pthread_mutex_lock(&m->lock);
            m->lost = true;
            pthread_cond_signal(&m->wake);
            pthread_mutex_unlock(&m->lock);
        }
    }
    pthread_mutex_unlock(&live_lock);
}

static int on_message(void *context, char *topic, int topic_len, MQTTClient_message *message)
{
    struct gw_mqtt *m = context;
    struct gw_mqtt_inbound *in = m->scratch;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = message->payloadlen > 0 ? (size_t)message->payloadlen : 0;
    in->too_large = tlen >= sizeof in->topic || plen > GW_MQTT_COMMAND_MAX;
    if (tlen >= sizeof in->topic)
        tlen = sizeof in->topic - 1;
    memcpy(in->topic, topic, tlen);
    in->topic[tlen] = '\0';
    in->length = plen > GW_MQTT_COMMAND_MAX ? GW_MQTT_COMMAND_MAX : plen;
    if (in->length > 0)
        memcpy(in->payload, message->payload, in->length);
    in->payload[in->length] = '\0';
    in->retained = message->retained != 0;
    if (gw_queue_push(m->inbound, in, 1000) != EST_OK)
        gw_warn("mqtt: command queue full, dropped a message on %s", in->topic);
    MQTTClient_freeMessage(&message);
    MQTTClient_free(topic);
    return 1;
}

/* A connection problem is an error the first time it is seen (after start
 * or since the last successful connection); the same one again while
 * retrying is a warning. Never includes secrets: the URI, Paho's code and
 * its meaning, OpenSSL's error text. */
static void log_connect_problem(struct gw_mqtt *m, const char *text)
{
    pthread_mutex_lock(&m->lock);
    bool repeated = strcmp(m->last_problem, text) == 0;
    if (!repeated)
        snprintf(m->last_problem, sizeof m->last_problem, "%s", text);
    pthread_mutex_unlock(&m->lock);
    gw_log(repeated ? GW_LOG_WARN : GW_LOG_ERROR, "mqtt: %s", text);
}

/* OpenSSL's errors during a TLS connect (bad CA, certificate refused, ...),
 * one line each. */
static int on_tls_error(const char *str, size_t len, void *context)
{
    struct gw_mqtt *m = context;
    while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\r'))
        len--;
    char text[256];
    snprintf(text, sizeof text, "TLS to %s: %.*s", m->config->uri, (int)(len < 200 ? len : 200), str);
    log_connect_problem(m, text);
    return 0;
}

/* A TCP connection to host:port within timeout_ms; -1 when none. */
static int connect_within(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    if (getaddrinfo(host, port, &hints, &found) != 0 || found == NULL)
        return -1;
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int error = 0;
        socklen_t len = sizeof error;
        if (errno != EINPROGRESS || poll(&p, 1, timeout_ms) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd >= 0) {
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

/* Splits "ssl://host:port" (or "ssl://[v6]:port"); false when malformed. */
static bool split_uri(const char *uri, char *host, size_t host_size, char *port, size_t port_size)
{
    const char *start = strstr(uri, "://");
    start = start ? start + 3 : uri;
    const char *colon = strrchr(start, ':');
    if (colon == NULL || colon == start)
        return false;
    const char *h = start;
    size_t len = (size_t)(colon - start);
    if (h[0] == '[' && len >= 2 && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len >= host_size || strlen(colon + 1) >= port_size)
        return false;
    memcpy(host, h, len);
    host[len] = '\0';
    snprintf(port, port_size, "%s", colon + 1);
    return true;
}

/* After a TLS connect failed: a handshake of our own, with the same CA,
 * client certificate and name check, says why (Paho reports only "no
 * connection" for a name mismatch, an unknown CA or an expired
 * certificate). Writes the reason into out, or leaves it empty when the
 * TLS side looks fine. */
static void explain_tls_failure(const struct gw_mqtt_config *c, char *out, size_t size)
{
    out[0] = '\0';
    char host[256], port[16];
    if (!split_uri(c->uri, host, sizeof host, port, sizeof port))
        return;
    int fd = connect_within(host, port, 3000);
    if (fd < 0)
        return; /* nothing listens: Paho's message says enough */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (ctx != NULL) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* finish, then read the verdict */
        if (c->ca_file != NULL)
            SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL);
        if (c->cert_file != NULL && c->key_file != NULL) {
            SSL_CTX_use_certificate_chain_file(ctx, c->cert_file);
            SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM);
        }
        ssl = SSL_new(ctx);
    }
    if (ssl != NULL && SSL_set_fd(ssl, fd) == 1) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, host);
        } else {
            SSL_set_tlsext_host_name(ssl, host);
            X509_VERIFY_PARAM_set1_host(param, host, 0);
        }
        ERR_clear_error();
        int rc = SSL_connect(ssl);
        long verdict = SSL_get_verify_result(ssl);
        X509 *peer = SSL_get1_peer_certificate(ssl);
        if (peer != NULL && verdict != X509_V_OK)
            snprintf(out, size, "the broker's certificate is not accepted for %.100s: %.120s", host,
                     X509_verify_cert_error_string(verdict));
        else if (rc != 1 && ERR_peek_error() != 0)
            snprintf(out, size, "TLS handshake failed: %.200s",
                     ERR_reason_error_string(ERR_peek_error()));
        X509_free(peer);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(fd);
}

static const char *connect_error_text(int rc)
{
    switch (rc) { /* MQTT 3.1.1 CONNACK return codes */
    case 1: return "unacceptable protocol version";
    case 2: return "client identifier rejected";
    case 3: return "server unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    case MQTTCLIENT_FAILURE: return "no connection";
    default: return MQTTClient_strerror(rc);
    }
}

/* ---------------------------------------------------------------- */
/* The publisher thread                                              */
/* ---------------------------------------------------------------- */

/* The retained patrol-log head comes in like a command, for the core to
 * check against its own chain. */
static void subscribe_patrol_head(struct gw_mqtt *m)
{
    int rc = MQTTClient_subscribe(m->client, m->head_topic, 1);
    if (rc != MQTTCLIENT_SUCCESS)
        gw_warn("mqtt: subscribe to %s failed (code %d)", m->head_topic, rc);
}

/* Connects, subscribes to P/cmd/+ and P/patrol/head and publishes the
 * online status. */
static bool open_session(struct gw_mqtt *m)
{
    const struct gw_mqtt_config *c = m->config;
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_willOptions will = MQTTClient_willOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    opts.keepAliveInterval = c->keepalive_s > 0 ? c->keepalive_s : 15;
    opts.cleansession = 1;
    opts.reliable = 0;
    opts.maxInflightMessages = PAHO_WINDOW;
    opts.connectTimeout = CONNECT_TIMEOUT_S;
    /* 3.1.1 only: the default falls back to 3.1 after a failure, and that
     * attempt stops Paho's thread, which takes up to a second. */
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    will.topicName = m->status_topic;
    will.message = m->will_payload;
    will.retained = 1;
    will.qos = 1;
    opts.will = &will;
    opts.username = c->username;
    opts.password = m->password;
    if (strncmp(c->uri, "ssl://", 6) == 0) {
        ssl.trustStore = c->ca_file;
        ssl.keyStore = c->cert_file;
        ssl.privateKey = c->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;                 /* the broker's name must match its certificate */
        /* sslVersion stays DEFAULT: with OpenSSL >= 1.1 Paho negotiates the
         * highest version both sides allow (the system's OpenSSL policy sets
         * the minimum, TLS 1.2 on Debian). */
        ssl.disableDefaultTrustStore = 1; /* trust ca_file only, not the system's CAs */
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = m;
        opts.ssl = &ssl;
    }
    int rc = MQTTClient_connect(m->client, &opts);
    if (rc != MQTTCLIENT_SUCCESS) {
        char why[400] = "";
        if (opts.ssl != NULL && rc == MQTTCLIENT_FAILURE)
            explain_tls_failure(c, why, sizeof why);
        char text[640];
        snprintf(text, sizeof text, "cannot connect to %s (code %d: %s%s%s); retrying", c->uri, rc,
                 connect_error_text(rc), why[0] ? ": " : "", why);
        log_connect_problem(m, text);
        return false;
    }
    rc = MQTTClient_subscribe(m->client, m->command_filter, 1);
    if (rc != MQTTCLIENT_SUCCESS)
        gw_warn("mqtt: subscribe to %s failed (code %d)", m->command_filter, rc);
    if (c->commands_by_account) {
        rc = MQTTClient_subscribe(m->client, m->account_command_filter, 1);
        if (rc != MQTTCLIENT_SUCCESS)
            gw_warn("mqtt: subscribe to %s failed (code %d)", m->account_command_filter, rc);
    }
    subscribe_patrol_head(m);
    if (!MQTTClient_isConnected(m->client)) {
        log_connect_problem(m, "connection lost right after connecting; retrying");
        return false;
    }
    pthread_mutex_lock(&m->lock);
    char *online = strdup(m->online_payload ? m->online_payload : "{\"state\":\"online\"}");
    pthread_mutex_unlock(&m->lock);
    int token = 0;
    rc = online ? MQTTClient_publish(m->client, m->status_topic, (int)strlen(online), online, 1, 1,
                                     &token)
                : MQTTCLIENT_FAILURE;
    free(online);
    pthread_mutex_lock(&m->lock);
    if (rc == MQTTCLIENT_SUCCESS)
        register_pending(m, token, 0, m->rpos);
    m->session = true;
    m->silent = false;
    m->waiting_since_ms = 0;
    m->heartbeat_ms = est_mono_ms();
    atomic_store(&m->connected, true);
    atomic_fetch_add(&m->generation, 1);
    m->last_problem[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    gw_info("mqtt: connected to %s", c->uri);
    return true;
}

/* After a loss (lock held): what was queued or in flight fails; the core
 * sends tagged messages again from its outbox on the next connection. */
static void close_session(struct gw_mqtt *m)
{
    m->session = false;
    m->lost = false;
    atomic_store(&m->connected, false);
    ring_purge(m);
    for (size_t i = 0; i < m->npending; i++)
        fail_tag(m, m->pending[i].tag);
    m->npending = 0;
    m->nearly = 0;
    m->waiting_since_ms = 0;
}

/* ---------------------------------------------------------------- */
/* Proof that the link forwards                                      */
/* ---------------------------------------------------------------- */
/* A path that stops forwarding without a FIN or RST looks connected to
 * TCP and to Paho until Paho's keepalive gives up (up to two keepalive
 * intervals), and QoS 0 readings sent meanwhile vanish. So the publisher
 * follows its QoS 0 traffic with a small QoS 1 heartbeat at most every
 * HEARTBEAT_MS: its PUBACK proves the readings before it arrived
 * (gw_mqtt_proven_upto), and gw_mqtt_check_link closes a session in which
 * nothing sent was acknowledged for 2 x keepalive_s, even while Paho's
 * publish is blocked on a full socket. */
#define HEARTBEAT_MS 500

static void note_qos0_sent(struct gw_mqtt *m, uint64_t end_pos)
{
    pthread_mutex_lock(&m->lock);
    m->qos0_sent_pos = end_pos;
    if (m->waiting_since_ms == 0)
        m->waiting_since_ms = est_mono_ms();
    pthread_mutex_unlock(&m->lock);
}

/* Publisher thread, lock not held. pos: the ring position after what was
 * sent, which the heartbeat's PUBACK proves. */
static void send_heartbeat_if_due(struct gw_mqtt *m, uint64_t pos)
{
    int64_t now = est_mono_ms();
    pthread_mutex_lock(&m->lock);
    bool due = m->qos0_sent_pos > atomic_load(&m->proven_pos) && now - m->heartbeat_ms >= HEARTBEAT_MS &&
               m->npending < PAHO_WINDOW && !m->lost && !m->silent;
    if (due)
        m->heartbeat_ms = now;
    pthread_mutex_unlock(&m->lock);
    if (!due)
        return;
    char payload[32];
    int len = snprintf(payload, sizeof payload, "%lld", (long long)now);
    int token = 0;
    if (MQTTClient_publish(m->client, m->heartbeat_topic, len, payload, 1, 0, &token) ==
        MQTTCLIENT_SUCCESS) {
        pthread_mutex_lock(&m->lock);
        register_pending(m, token, 0, pos);
        pthread_mutex_unlock(&m->lock);
    }
}

void gw_mqtt_check_link(struct gw_mqtt *m)
{
    /* Twice the keepalive, as Paho's own check: a broker that only falls
     * behind for a while (seconds, under a burst) keeps its session; giving
     * it up would send again what it was about to deliver. */
    int timeout_ms = 2 * (m->config->keepalive_s > 0 ? m->config->keepalive_s : 15) * 1000;
    pthread_mutex_lock(&m->lock);
    int64_t since = m->waiting_since_ms;
    bool silent = m->session && !m->silent && since != 0 && est_mono_ms() - since > timeout_ms;
    if (silent)
        m->silent = true;
    pthread_mutex_unlock(&m->lock);
    if (!silent)
        return;
    gw_warn("mqtt: nothing acknowledged by %s for %d s: the link is silent; reconnecting",
            m->config->uri, timeout_ms / 1000);
    /* Closes the socket: a publish blocked on the full socket returns. */
    MQTTClient_disconnect(m->client, 0);
    pthread_mutex_lock(&m->lock);
    m->lost = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
}

uint64_t gw_mqtt_proven_upto(const struct gw_mqtt *m) { return atomic_load(&m->proven_pos); }

uint64_t gw_mqtt_queued_end(struct gw_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t end = m->wpos;
    pthread_mutex_unlock(&m->lock);
    return end;
}

/* Sends what the ring holds (lock held on entry and on return; released
 * while Paho works). Stops early at a connection loss or a stop. */
static void publish_queued(struct gw_mqtt *m)
{
    uint64_t end = m->wpos;
    uint64_t pos = m->rpos;
    uint64_t released = pos;
    size_t heap_freed = 0;
    pthread_mutex_unlock(&m->lock);
    bool broken = false;
    while (pos != end) {
        struct record h;
        uint32_t size = ring_peek(m, pos, &h);
        if (h.kind == REC_SKIP) {
            pos += size;
            continue;
        }
        if (h.qos > 0) {
            pthread_mutex_lock(&m->lock);
            bool go = true;
            if (m->npending >= PAHO_WINDOW) {
                release_ring(m, pos, heap_freed); /* what was sent so far */
                released = pos;
                heap_freed = 0;
                while (m->npending >= PAHO_WINDOW && !m->lost && !m->stop) {
                    m->window_wait = true;
                    wait_ms(m, IDLE_CHECK_MS);
                    m->window_wait = false;
                }
                go = !m->lost && !m->stop;
            }
            pthread_mutex_unlock(&m->lock);
            if (!go)
                break;
        }
        const char *topic = record_topic(m, pos, &h);
        int token = 0;
        int rc = MQTTClient_publish(m->client, topic, (int)h.payload_len, topic + h.topic_len + 1,
                                    h.qos, h.retain, &token);
        if (rc == MQTTCLIENT_SUCCESS && h.qos > 0) {
            pthread_mutex_lock(&m->lock);
            register_pending(m, token, h.tag, pos);
            pthread_mutex_unlock(&m->lock);
        } else if (rc != MQTTCLIENT_SUCCESS) {
            pthread_mutex_lock(&m->lock);
            fail_tag(m, h.tag);
            pthread_mutex_unlock(&m->lock);
            if (rc == MQTTCLIENT_DISCONNECTED || !MQTTClient_isConnected(m->client))
                broken = true;
            else if (gw_log_limiter_fail(&m->refused_log))
                gw_warn("mqtt: publish on %s refused (code %d: %s; %llu so far)", topic, rc,
                        MQTTClient_strerror(rc), (unsigned long long)m->refused_log.failures);
        }
        if (h.kind == REC_HEAP) {
            heap_freed += h.payload_len;
            free(h.heap);
        }
        pos += size;
        if (rc == MQTTCLIENT_SUCCESS && h.qos == 0)
            note_qos0_sent(m, pos);
        if (broken)
            break;
        send_heartbeat_if_due(m, pos);
        if (pos - released >= RING_RELEASE_BYTES) {
            pthread_mutex_lock(&m->lock);
            release_ring(m, pos, heap_freed);
            pthread_mutex_unlock(&m->lock);
            released = pos;
            heap_freed = 0;
        }
    }
    pthread_mutex_lock(&m->lock);
    release_ring(m, pos, heap_freed);
    if (broken)
        m->lost = true;
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static void *publisher_main(void *arg)
{
    struct gw_mqtt *m = arg;
    uint64_t rng = (uint64_t)est_mono_ms() ^ (uint64_t)(uintptr_t)m ^ 0x9e3779b97f4a7c15u;
    int retry_ms = RETRY_MIN_MS;
    int64_t next_attempt_ms = est_mono_ms(); /* the first attempt at once */
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        if (!m->session) {
            int64_t now = est_mono_ms();
            if (now < next_attempt_ms) {
                wait_ms(m, next_attempt_ms - now);
                continue;
            }
            pthread_mutex_unlock(&m->lock);
            if (open_session(m)) {
                retry_ms = RETRY_MIN_MS;
            } else {
                next_attempt_ms = est_mono_ms() + retry_ms +
                                  (int64_t)(next_random(&rng) % (uint64_t)(retry_ms / 4 + 1));
                retry_ms = retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
            }
            pthread_mutex_lock(&m->lock);
            continue;
        }
        if (m->lost) {
            pthread_mutex_unlock(&m->lock);
            bool gone = !MQTTClient_isConnected(m->client);
            pthread_mutex_lock(&m->lock);
            m->lost = false;
            if (gone || m->silent) {
                close_session(m);
                next_attempt_ms = est_mono_ms(); /* reconnect at once, then back off */
                pthread_mutex_unlock(&m->lock);
                gw_warn("mqtt: connection to %s lost; reconnecting", m->config->uri);
                pthread_mutex_lock(&m->lock);
            }
            continue;
        }
        if (ring_empty(m)) {
            m->idle = true;
            wait_ms(m, IDLE_CHECK_MS);
            bool woken = !m->idle;
            m->idle = false;
            if (!woken && ring_empty(m) && !m->lost && !m->stop) {
                uint64_t sent = m->rpos;
                pthread_mutex_unlock(&m->lock);
                send_heartbeat_if_due(m, sent); /* proves the last readings before the pause */
                pthread_mutex_lock(&m->lock);
                /* Quiet: make sure the connection is still there. */
                pthread_mutex_unlock(&m->lock);
                bool gone = !MQTTClient_isConnected(m->client);
                pthread_mutex_lock(&m->lock);
                if (gone)
                    m->lost = true;
            }
            continue;
        }
        publish_queued(m);
    }
    bool session = m->session;
    int timeout_ms = m->disconnect_timeout_ms;
    pthread_mutex_unlock(&m->lock);
    if (session)
        MQTTClient_disconnect(m->client, timeout_ms); /* waits for what is in flight */
    return NULL;
}

/* ---------------------------------------------------------------- */
/* API                                                               */
/* ---------------------------------------------------------------- */

est_err gw_mqtt_create(const struct gw_mqtt_config *config, const char *prefix,
                       const char *offline_payload, struct gw_queue *inbound, struct gw_mqtt **out)
{
    struct gw_mqtt *m = calloc(1, sizeof *m);
    if (m == NULL)
        return EST_ERR_NOMEM;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &attr);
    pthread_cond_init(&m->room, &attr);
    pthread_condattr_destroy(&attr);
    m->config = config;
    m->inbound = inbound;
    m->scratch = malloc(sizeof *m->scratch);
    m->ring = malloc(RING_BYTES);
    size_t plen = strlen(prefix);
    m->status_topic = malloc(plen + sizeof "/status");
    m->command_filter = malloc(plen + sizeof "/cmd/+");
    m->account_command_filter = malloc(plen + sizeof "/cmd/by/+/+");
    m->head_topic = malloc(plen + sizeof "/patrol/head");
    m->heartbeat_topic = malloc(plen + sizeof "/gw/heartbeat");
    m->will_payload = strdup(offline_payload);
    if (m->scratch == NULL || m->ring == NULL || m->status_topic == NULL ||
        m->command_filter == NULL || m->account_command_filter == NULL || m->head_topic == NULL || m->will_payload == NULL ||
        m->heartbeat_topic == NULL) {
        gw_mqtt_destroy(m, NULL, 0);
        return EST_ERR_NOMEM;
    }
    sprintf(m->status_topic, "%s/status", prefix);
    sprintf(m->command_filter, "%s/cmd/+", prefix);
    sprintf(m->account_command_filter, "%s/cmd/by/+/+", prefix);
    sprintf(m->head_topic, "%s/patrol/head", prefix);
    sprintf(m->heartbeat_topic, "%s/gw/heartbeat", prefix);
    if (config->password_file != NULL) {
        m->password = read_secret_file(config->password_file);
        if (m->password == NULL) {
            gw_error("mqtt: cannot read password_file %s", config->password_file);
            gw_mqtt_destroy(m, NULL, 0);
            return EST_ERR_IO;
        }
    }
    int rc = MQTTClient_create(&m->client, config->uri, config->client_id,
                               MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        gw_error("mqtt: cannot create a client for %s (code %d)", config->uri, rc);
        m->client = NULL;
        gw_mqtt_destroy(m, NULL, 0);
        return EST_ERR_INVALID;
    }
    MQTTClient_setCallbacks(m->client, m, on_connection_lost, on_message, on_delivered);
    pthread_mutex_lock(&live_lock);
    m->next_live = live_clients;
    live_clients = m;
    pthread_mutex_unlock(&live_lock);
    *out = m;
    return EST_OK;
}

est_err gw_mqtt_start(struct gw_mqtt *m)
{
    if (m->thread_started)
        return EST_OK;
    if (pthread_create(&m->thread, NULL, publisher_main, m) != 0) {
        gw_error("mqtt: cannot start the publisher thread");
        return EST_ERR_NOMEM;
    }
    m->thread_started = true;
    return EST_OK;
}

bool gw_mqtt_connected(const struct gw_mqtt *m) { return atomic_load(&m->connected); }

uint64_t gw_mqtt_generation(const struct gw_mqtt *m) { return atomic_load(&m->generation); }

void gw_mqtt_set_online_payload(struct gw_mqtt *m, const char *payload)
{
    char *copy = strdup(payload);
    if (copy == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    free(m->online_payload);
    m->online_payload = copy;
    pthread_mutex_unlock(&m->lock);
}

est_err gw_mqtt_publish(struct gw_mqtt *m, const char *topic, const void *payload, size_t length,
                        int qos, bool retain, uint64_t tag)
{
    return gw_mqtt_publish_wait(m, topic, payload, length, qos, retain, tag, 0);
}

est_err gw_mqtt_publish_wait(struct gw_mqtt *m, const char *topic, const void *payload,
                             size_t length, int qos, bool retain, uint64_t tag, int wait_ms)
{
    if (!atomic_load(&m->connected))
        return EST_ERR_IO;
    if (qos < 0 || qos > 2 || length > INT_MAX)
        return EST_ERR_INVALID;
    if (qos == 0)
        tag = 0;
    size_t topic_len = strlen(topic);
    char *heap = NULL;
    if (topic_len + 1 + length > RING_INLINE_MAX) {
        heap = malloc(topic_len + 1 + length);
        if (heap == NULL)
            return EST_ERR_NOMEM;
        memcpy(heap, topic, topic_len + 1);
        if (length > 0)
            memcpy(heap + topic_len + 1, payload, length);
    }
    int64_t deadline = wait_ms > 0 ? est_mono_ms() + wait_ms : 0;
    pthread_mutex_lock(&m->lock);
    bool ok;
    for (;;) {
        bool up = atomic_load(&m->connected) && !m->stop;
        ok = up &&
             (heap == NULL || m->heap_bytes == 0 || m->heap_bytes + length <= HEAP_BUDGET) &&
             ring_put(m, topic, topic_len, payload, length, qos, retain, tag, heap);
        if (ok || !up || deadline == 0)
            break;
        int64_t left = deadline - est_mono_ms();
        if (left <= 0)
            break;
        m->room_waiters++;
        wait_on(m, &m->room, left);
        m->room_waiters--;
    }
    if (ok) {
        if (heap != NULL)
            m->heap_bytes += length;
        if (tag != 0)
            atomic_fetch_add(&m->inflight, 1);
        if (m->idle) { /* one wake-up per burst: the publisher drains all */
            m->idle = false;
            pthread_cond_signal(&m->wake);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        free(heap);
    return ok ? EST_OK : EST_ERR_IO;
}

size_t gw_mqtt_take_acked(struct gw_mqtt *m, uint64_t *tags, size_t max)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->nacked < max ? m->nacked : max;
    memcpy(tags, m->acked, n * sizeof *tags);
    memmove(m->acked, m->acked + n, (m->nacked - n) * sizeof *tags);
    m->nacked -= n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

size_t gw_mqtt_inflight(const struct gw_mqtt *m) { return atomic_load(&m->inflight); }

void gw_mqtt_destroy(struct gw_mqtt *m, const char *offline_payload, int timeout_ms)
{
    if (m == NULL)
        return;
    if (m->thread_started) {
        if (offline_payload != NULL)
            gw_mqtt_publish(m, m->status_topic, offline_payload, strlen(offline_payload), 1, true, 0);
        /* Wait for the queue and every QoS >= 1 message (the offline status
         * among them) to be acknowledged, while connected. */
        int64_t deadline = est_mono_ms() + timeout_ms;
        for (;;) {
            pthread_mutex_lock(&m->lock);
            bool busy = atomic_load(&m->connected) && (!ring_empty(m) || m->npending > 0);
            pthread_mutex_unlock(&m->lock);
            if (!busy || est_mono_ms() >= deadline)
                break;
            est_sleep_ms(5);
        }
        int64_t left = deadline - est_mono_ms();
        pthread_mutex_lock(&m->lock);
        m->stop = true;
        m->disconnect_timeout_ms = left > 100 ? (int)left : 100;
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
    }
    if (m->client != NULL)
        MQTTClient_destroy(&m->client);
    pthread_mutex_lock(&live_lock);
    for (struct gw_mqtt **p = &live_clients; *p != NULL; p = &(*p)->next_live) {
        if (*p == m) {
            *p = m->next_live;
            break;
        }
    }
    pthread_mutex_unlock(&live_lock);
    if (m->ring != NULL)
        ring_purge(m);
    free(m->ring);
    free(m->status_topic);
    free(m->command_filter);
    free(m->account_command_filter);
    free(m->head_topic);
    free(m->heartbeat_topic);
    free(m->will_payload);
    free(m->online_payload);
    if (m->password != NULL) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    free(m->scratch);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->room);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
