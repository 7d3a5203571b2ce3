/* mqtt.c - Paho MQTTAsync wrapper: connect with will and TLS, reconnect,
 * command subscription into a queue, tagged QoS 1 publishes. */
#include "mqtt.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define ACKED_CAPACITY 4096
#define PAHO_MAX_BUFFERED 4096 /* see gw_mqtt_create */
/* (Re)connection backoff, ours rather than Paho's automatic reconnect
 * (whose intervals drift well past its configured maximum): the first
 * attempt at once, then 0.5 s doubling to 5 s, plus up to 25% jitter, so a
 * broker back after any outage is found within about 6 s. */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000

struct gw_mqtt {
    MQTTAsync client;
    const struct gw_mqtt_config *config;
    char *status_topic;
    char *command_filter;
    char *will_payload;
    char *online_payload;
    char *password;
    struct gw_queue *inbound;
    atomic_bool connected;
    atomic_bool connecting;
    atomic_uint_fast64_t generation;
    atomic_size_t inflight;
    int64_t next_attempt_ms;
    atomic_int retry_ms;           /* next backoff; reset by on_connected (Paho's thread) */
    pthread_mutex_t lock;          /* guards acked[] and online_payload */
    uint64_t acked[ACKED_CAPACITY];
    size_t nacked;
    struct gw_mqtt_inbound *scratch; /* message-arrived buffer (Paho thread only) */
    char last_problem[256];        /* last connect/TLS failure logged (under lock) */
};

/* One fewer message in flight; never below zero (the count is reset on
 * every new connection, and a failure of an old message may come later). */
static void inflight_done(struct gw_mqtt *m)
{
    size_t n = atomic_load(&m->inflight);
    while (n > 0 && !atomic_compare_exchange_weak(&m->inflight, &n, n - 1)) {
    }
}

/* Context of one tagged publish. */
struct publish_context {
    struct gw_mqtt *mqtt;
    uint64_t tag;
};

static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        gw_warn("mqtt: password_file %s can be read by others (mode %03o); make it 0600", path,
                (unsigned)(st.st_mode & 0777));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n < 0) {
        free(line);
        return strdup("");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

static void publish_status(struct gw_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    char *payload = strdup(m->online_payload ? m->online_payload : "{\"state\":\"online\"}");
    pthread_mutex_unlock(&m->lock);
    if (payload == NULL)
        return;
    gw_mqtt_publish(m, m->status_topic, payload, strlen(payload), 1, true, 0);
    free(payload);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData *response)
{
    struct gw_mqtt *m = context;
    gw_warn("mqtt: subscribe to %s failed (code %d)", m->command_filter, response ? response->code : 0);
}

static void on_connected(void *context, char *cause)
{
    struct gw_mqtt *m = context;
    atomic_store(&m->connected, true);
    atomic_store(&m->connecting, false);
    atomic_fetch_add(&m->generation, 1);
    atomic_store(&m->inflight, 0);
    m->retry_ms = RETRY_MIN_MS;
    pthread_mutex_lock(&m->lock);
    m->last_problem[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    gw_info("mqtt: connected to %s", m->config->uri);
    MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
    opts.onFailure = on_subscribe_failure;
    opts.context = m;
    MQTTAsync_subscribe(m->client, m->command_filter, 1, &opts);
    publish_status(m);
}

static void on_connection_lost(void *context, char *cause)
{
    struct gw_mqtt *m = context;
    atomic_store(&m->connected, false);
    gw_warn("mqtt: connection to %s lost%s%s; reconnecting", m->config->uri, cause ? ": " : "",
            cause ? cause : "");
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *message)
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
    if (gw_queue_push(m->inbound, in, 1000) != EST_OK)
        gw_warn("mqtt: command queue full, dropped a message on %s", in->topic);
    MQTTAsync_freeMessage(&message);
    MQTTAsync_free(topic);
    return 1;
}

/* A connection problem is an error the first time it is seen (after start
 * or since the last successful connection); the same one again while
 * retrying is a warning. Never includes secrets: the URI, Paho's code and
 * message, OpenSSL's error text. */
static void log_connect_problem(struct gw_mqtt *m, const char *text)
{
    pthread_mutex_lock(&m->lock);
    bool repeated = strcmp(m->last_problem, text) == 0;
    if (!repeated)
        snprintf(m->last_problem, sizeof m->last_problem, "%s", text);
    pthread_mutex_unlock(&m->lock);
    gw_log(repeated ? GW_LOG_WARN : GW_LOG_ERROR, "mqtt: %s", text);
}

static void on_connect_failure(void *context, MQTTAsync_failureData *response)
{
    struct gw_mqtt *m = context;
    atomic_store(&m->connecting, false);
    char text[256];
    snprintf(text, sizeof text, "cannot connect to %s (code %d%s%s); retrying", m->config->uri,
             response ? response->code : 0, response && response->message ? ": " : "",
             response && response->message ? response->message : "");
    log_connect_problem(m, text);
}

/* OpenSSL's errors during a TLS connect (bad CA, certificate refused, ...),
 * one line each, from Paho's thread. */
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

static void on_publish_success(void *context, MQTTAsync_successData *response)
{
    struct publish_context *pc = context;
    struct gw_mqtt *m = pc->mqtt;
    inflight_done(m);
    pthread_mutex_lock(&m->lock);
    if (m->nacked < ACKED_CAPACITY)
        m->acked[m->nacked++] = pc->tag;
    pthread_mutex_unlock(&m->lock);
    free(pc);
}

static void on_publish_failure(void *context, MQTTAsync_failureData *response)
{
    struct publish_context *pc = context;
    inflight_done(pc->mqtt);
    /* Not acknowledged: the row stays in the outbox and is sent again. */
    free(pc);
}

static est_err connect_now(struct gw_mqtt *m)
{
    const struct gw_mqtt_config *c = m->config;
    MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    opts.keepAliveInterval = c->keepalive_s > 0 ? c->keepalive_s : 30;
    opts.cleansession = 1;
    opts.maxInflight = 1024;
    opts.automaticReconnect = 0; /* gw_mqtt_poll reconnects, with jitter */
    opts.connectTimeout = 10;
    opts.onFailure = on_connect_failure;
    opts.context = m;
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
    atomic_store(&m->connecting, true);
    int rc = MQTTAsync_connect(m->client, &opts);
    if (rc != MQTTASYNC_SUCCESS) {
        atomic_store(&m->connecting, false);
        gw_warn("mqtt: connect to %s refused at once (code %d)", c->uri, rc);
        return EST_ERR_IO;
    }
    return EST_OK;
}

est_err gw_mqtt_create(const struct gw_mqtt_config *config, const char *prefix,
                       const char *offline_payload, struct gw_queue *inbound, struct gw_mqtt **out)
{
    struct gw_mqtt *m = calloc(1, sizeof *m);
    if (m == NULL)
        return EST_ERR_NOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->config = config;
    m->inbound = inbound;
    m->retry_ms = RETRY_MIN_MS;
    m->scratch = malloc(sizeof *m->scratch);
    size_t plen = strlen(prefix);
    m->status_topic = malloc(plen + sizeof "/status");
    m->command_filter = malloc(plen + sizeof "/cmd/+");
    m->will_payload = strdup(offline_payload);
    if (m->scratch == NULL || m->status_topic == NULL || m->command_filter == NULL ||
        m->will_payload == NULL) {
        gw_mqtt_destroy(m, NULL, 0);
        return EST_ERR_NOMEM;
    }
    sprintf(m->status_topic, "%s/status", prefix);
    sprintf(m->command_filter, "%s/cmd/+", prefix);
    if (config->password_file != NULL) {
        m->password = read_secret_file(config->password_file);
        if (m->password == NULL) {
            gw_error("mqtt: cannot read password_file %s", config->password_file);
            gw_mqtt_destroy(m, NULL, 0);
            return EST_ERR_IO;
        }
    }
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
    create.sendWhileDisconnected = 0;
    /* Paho refuses a publish while this many wait for its send thread, even
     * when connected (default 100). The core hands over readings in batches
     * of up to 512, so allow a few batches; a backlog beyond that means the
     * broker or the socket is not keeping up and the readings go to the
     * outbox instead. */
    create.maxBufferedMessages = PAHO_MAX_BUFFERED;
    int rc = MQTTAsync_createWithOptions(&m->client, config->uri, config->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &create);
    if (rc != MQTTASYNC_SUCCESS) {
        gw_error("mqtt: cannot create a client for %s (code %d)", config->uri, rc);
        m->client = NULL;
        gw_mqtt_destroy(m, NULL, 0);
        return EST_ERR_INVALID;
    }
    MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(m->client, m, on_connected);
    *out = m;
    return EST_OK;
}

est_err gw_mqtt_start(struct gw_mqtt *m)
{
    m->next_attempt_ms = est_mono_ms() + m->retry_ms;
    return connect_now(m);
}

void gw_mqtt_poll(struct gw_mqtt *m)
{
    /* Both the first connection and every reconnection after a loss: the
     * attempt due first after a loss is immediate (next_attempt_ms lies in
     * the past), later ones back off. */
    if (atomic_load(&m->connected) || atomic_load(&m->connecting) || MQTTAsync_isConnected(m->client))
        return;
    int64_t now = est_mono_ms();
    if (now < m->next_attempt_ms)
        return;
    int retry = atomic_load(&m->retry_ms);
    m->next_attempt_ms = now + retry + (rand() % (retry / 4 + 1));
    atomic_store(&m->retry_ms, retry * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry * 2);
    connect_now(m);
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
    if (!atomic_load(&m->connected))
        return EST_ERR_IO;
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)length;
    msg.qos = qos;
    msg.retained = retain;
    MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
    struct publish_context *pc = NULL;
    if (qos > 0 && tag != 0) {
        pc = malloc(sizeof *pc);
        if (pc == NULL)
            return EST_ERR_NOMEM;
        pc->mqtt = m;
        pc->tag = tag;
        opts.onSuccess = on_publish_success;
        opts.onFailure = on_publish_failure;
        opts.context = pc;
        atomic_fetch_add(&m->inflight, 1);
    }
    int rc = MQTTAsync_sendMessage(m->client, topic, &msg, &opts);
    if (rc != MQTTASYNC_SUCCESS) {
        if (pc != NULL) {
            inflight_done(m);
            free(pc);
        }
        return EST_ERR_IO;
    }
    return EST_OK;
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
    if (m->client != NULL) {
        if (offline_payload != NULL && atomic_load(&m->connected)) {
            gw_mqtt_publish(m, m->status_topic, offline_payload, strlen(offline_payload), 1, true, 0);
        }
        int64_t deadline = est_mono_ms() + timeout_ms;
        while (atomic_load(&m->connected) && gw_mqtt_inflight(m) > 0 && est_mono_ms() < deadline)
            est_sleep_ms(10);
        if (MQTTAsync_isConnected(m->client)) {
            MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer;
            opts.timeout = timeout_ms > 0 ? timeout_ms : 100;
            MQTTAsync_disconnect(m->client, &opts);
            /* Disconnect is asynchronous; give it its timeout to flush. */
            int64_t until = est_mono_ms() + opts.timeout;
            while (MQTTAsync_isConnected(m->client) && est_mono_ms() < until)
                est_sleep_ms(10);
        }
        MQTTAsync_destroy(&m->client);
    }
    free(m->status_topic);
    free(m->command_filter);
    free(m->will_payload);
    free(m->online_payload);
    if (m->password != NULL) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    free(m->scratch);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
