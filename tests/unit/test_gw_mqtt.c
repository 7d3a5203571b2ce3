/* test_gw_mqtt.c - unit tests of gateway/mqtt.c against a stub of Paho's
 * synchronous client defined here (the executable's MQTTClient_* functions
 * take precedence over the shared library's): every message arrives once,
 * in order and byte for byte, across many wraps of the ring and with
 * messages too large for it; publishing never blocks and refuses when the
 * queue is full or nothing is connected; tags come back once acknowledged
 * (also when the acknowledgement beats publish's return) and fail on a
 * connection loss, which bumps the generation after the reconnection; the
 * connection carries the will, the subscription and the online status;
 * inbound commands are queued with their size limits; destroy publishes
 * the offline status and disconnects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <MQTTClient.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

/* ---- the stub ---- */

#define MAX_SENT 200000

struct sent {
    uint64_t seq;      /* from the payload's first 8 bytes, or 0 */
    size_t length;
    int qos;
    int retained;
    int token;
    bool status;       /* on P/status */
    char first;        /* the payload's first byte (status messages) */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    void *context;
    MQTTClient_connectionLost *cl;
    MQTTClient_messageArrived *ma;
    MQTTClient_deliveryComplete *dc;
    bool connected;
    bool refuse_connect;
    bool hold_publish;     /* publish waits while set */
    bool ack_in_publish;   /* acknowledge before publish returns */
    int connects;
    int disconnects;
    int subscribes;
    char subscribed[128];
    char will_topic[128];
    char will_message[128];
    int will_qos, will_retained, cleansession, max_inflight, mqtt_version;
    int next_token;
    bool corrupt;          /* a payload did not match its pattern */
    struct sent *sent;
    size_t nsent;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static const char *status_suffix = "/status";

static bool payload_ok(const unsigned char *p, size_t length, uint64_t seq)
{
    for (size_t i = 8; i < length; i++)
        if (p[i] != (unsigned char)(seq * 31 + i))
            return false;
    return true;
}

int MQTTClient_create(MQTTClient *handle, const char *uri, const char *id, int type, void *context)
{
    *handle = &fake;
    return MQTTCLIENT_SUCCESS;
}

int MQTTClient_setCallbacks(MQTTClient handle, void *context, MQTTClient_connectionLost *cl,
                            MQTTClient_messageArrived *ma, MQTTClient_deliveryComplete *dc)
{
    fake.context = context;
    fake.cl = cl;
    fake.ma = ma;
    fake.dc = dc;
    return MQTTCLIENT_SUCCESS;
}

int MQTTClient_connect(MQTTClient handle, MQTTClient_connectOptions *o)
{
    pthread_mutex_lock(&fake.lock);
    int rc = MQTTCLIENT_FAILURE;
    if (!fake.refuse_connect) {
        fake.connected = true;
        fake.connects++;
        snprintf(fake.will_topic, sizeof fake.will_topic, "%s", o->will->topicName);
        snprintf(fake.will_message, sizeof fake.will_message, "%s", o->will->message);
        fake.will_qos = o->will->qos;
        fake.will_retained = o->will->retained;
        fake.cleansession = o->cleansession;
        fake.max_inflight = o->maxInflightMessages;
        fake.mqtt_version = o->MQTTVersion;
        rc = MQTTCLIENT_SUCCESS;
    }
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
    return rc;
}

int MQTTClient_subscribe(MQTTClient handle, const char *topic, int qos)
{
    pthread_mutex_lock(&fake.lock);
    fake.subscribes++;
    snprintf(fake.subscribed, sizeof fake.subscribed, "%s", topic);
    pthread_mutex_unlock(&fake.lock);
    return MQTTCLIENT_SUCCESS;
}

int MQTTClient_isConnected(MQTTClient handle)
{
    pthread_mutex_lock(&fake.lock);
    int c = fake.connected;
    pthread_mutex_unlock(&fake.lock);
    return c;
}

int MQTTClient_publish(MQTTClient handle, const char *topic, int length, const void *payload,
                       int qos, int retained, MQTTClient_deliveryToken *token)
{
    pthread_mutex_lock(&fake.lock);
    while (fake.hold_publish && fake.connected)
        pthread_cond_wait(&fake.changed, &fake.lock);
    if (!fake.connected) {
        pthread_mutex_unlock(&fake.lock);
        return MQTTCLIENT_DISCONNECTED;
    }
    struct sent s = {.length = (size_t)length, .qos = qos, .retained = retained};
    size_t tlen = strlen(topic);
    s.status = tlen >= strlen(status_suffix) &&
               strcmp(topic + tlen - strlen(status_suffix), status_suffix) == 0;
    s.first = length > 0 ? *(const char *)payload : '\0';
    if (!s.status && length >= 8) {
        memcpy(&s.seq, payload, 8);
        if (!payload_ok(payload, (size_t)length, s.seq))
            fake.corrupt = true;
    }
    if (qos > 0) {
        fake.next_token = fake.next_token % 65535 + 1;
        s.token = *token = fake.next_token;
    }
    if (fake.nsent < MAX_SENT)
        fake.sent[fake.nsent++] = s;
    bool ack = fake.ack_in_publish && qos > 0;
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
    if (ack)
        fake.dc(fake.context, s.token);
    return MQTTCLIENT_SUCCESS;
}

int MQTTClient_disconnect(MQTTClient handle, int timeout)
{
    pthread_mutex_lock(&fake.lock);
    fake.connected = false;
    fake.disconnects++;
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
    return MQTTCLIENT_SUCCESS;
}

void MQTTClient_destroy(MQTTClient *handle) { *handle = NULL; }
void MQTTClient_freeMessage(MQTTClient_message **message)
{
    free((*message)->payload);
    free(*message);
    *message = NULL;
}
void MQTTClient_free(void *memory) { free(memory); }
const char *MQTTClient_strerror(int code) { return "stub error"; }

/* Drops the connection as Paho does: connectionLost on another thread. */
static void *lose_thread(void *arg)
{
    fake.cl(fake.context, NULL);
    return NULL;
}

static void fake_lose(void)
{
    pthread_mutex_lock(&fake.lock);
    fake.connected = false;
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
    pthread_t t;
    pthread_create(&t, NULL, lose_thread, NULL);
    pthread_join(t, NULL);
}

static void fake_set(bool *flag, bool value)
{
    pthread_mutex_lock(&fake.lock);
    *flag = value;
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
}

/* Waits up to 10 s for at least n messages; returns how many there are. */
static size_t wait_sent(size_t n)
{
    int64_t deadline = est_mono_ms() + 10000;
    pthread_mutex_lock(&fake.lock);
    while (fake.nsent < n && est_mono_ms() < deadline) {
        pthread_mutex_unlock(&fake.lock);
        est_sleep_ms(1);
        pthread_mutex_lock(&fake.lock);
    }
    size_t got = fake.nsent;
    pthread_mutex_unlock(&fake.lock);
    return got;
}

static bool wait_until(bool (*cond)(struct gw_mqtt *), struct gw_mqtt *m)
{
    int64_t deadline = est_mono_ms() + 10000;
    while (!cond(m) && est_mono_ms() < deadline)
        est_sleep_ms(1);
    return cond(m);
}

static bool is_connected(struct gw_mqtt *m) { return gw_mqtt_connected(m); }
static bool is_disconnected(struct gw_mqtt *m) { return !gw_mqtt_connected(m); }

/* ---- fixture ---- */

struct fixture {
    struct gw_mqtt_config config;
    struct gw_queue *inbound;
    struct gw_mqtt *mqtt;
};

static int setup(void **state)
{
    pthread_mutex_lock(&fake.lock);
    struct sent *sent = fake.sent ? fake.sent : malloc(MAX_SENT * sizeof *fake.sent);
    fake.sent = sent;
    fake.nsent = 0;
    fake.connected = fake.refuse_connect = fake.hold_publish = fake.ack_in_publish = false;
    fake.corrupt = false;
    fake.connects = fake.disconnects = fake.subscribes = 0;
    pthread_mutex_unlock(&fake.lock);
    struct fixture *f = calloc(1, sizeof *f);
    f->config.uri = "tcp://127.0.0.1:1";
    f->config.client_id = "unit";
    f->config.keepalive_s = 30;
    assert_int_equal(gw_queue_create(sizeof(struct gw_mqtt_inbound), 8, &f->inbound), EST_OK);
    assert_int_equal(gw_mqtt_create(&f->config, "estate/t/gw1", "{\"state\":\"offline\"}",
                                    f->inbound, &f->mqtt),
                     EST_OK);
    gw_mqtt_set_online_payload(f->mqtt, "{\"state\":\"online\"}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fake_set(&fake.hold_publish, false); /* after a failed test */
    if (f->mqtt)
        gw_mqtt_destroy(f->mqtt, NULL, 0);
    gw_queue_destroy(f->inbound);
    free(f);
    return 0;
}

static void start(struct fixture *f)
{
    assert_int_equal(gw_mqtt_start(f->mqtt), EST_OK);
    assert_true(wait_until(is_connected, f->mqtt));
}

/* A payload of length bytes numbered seq (see payload_ok). */
static unsigned char *make_payload(uint64_t seq, size_t length)
{
    unsigned char *p = malloc(length < 8 ? 8 : length);
    memcpy(p, &seq, 8);
    for (size_t i = 8; i < length; i++)
        p[i] = (unsigned char)(seq * 31 + i);
    return p;
}

/* Publishes, retrying while the queue is full; counts the refusals. */
static void publish_retrying(struct fixture *f, uint64_t seq, size_t length, int qos, uint64_t tag,
                             size_t *refused)
{
    unsigned char *p = make_payload(seq, length);
    while (gw_mqtt_publish(f->mqtt, "estate/t/gw1/meters/m/reading", p, length, qos, false, tag) !=
           EST_OK) {
        (*refused)++;
        est_sleep_ms(1);
    }
    free(p);
}

/* ---- tests ---- */

static void test_not_connected_refuses(void **state)
{
    struct fixture *f = *state;
    unsigned char *p = make_payload(1, 100);
    assert_int_equal(gw_mqtt_publish(f->mqtt, "t", p, 100, 0, false, 0), EST_ERR_IO);
    assert_int_equal(gw_mqtt_publish(f->mqtt, "t", p, 100, 1, false, 7), EST_ERR_IO);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    free(p);
}

static void test_connects_with_will_subscription_and_status(void **state)
{
    struct fixture *f = *state;
    start(f);
    assert_int_equal(gw_mqtt_generation(f->mqtt), 1);
    assert_true(wait_sent(1) >= 1);
    pthread_mutex_lock(&fake.lock);
    assert_string_equal(fake.will_topic, "estate/t/gw1/status");
    assert_string_equal(fake.will_message, "{\"state\":\"offline\"}");
    assert_int_equal(fake.will_qos, 1);
    assert_int_equal(fake.will_retained, 1);
    assert_int_equal(fake.cleansession, 1);
    assert_true(fake.max_inflight >= 100);
    assert_int_equal(fake.mqtt_version, MQTTVERSION_3_1_1);
    assert_string_equal(fake.subscribed, "estate/t/gw1/cmd/+");
    assert_true(fake.sent[0].status);
    assert_int_equal(fake.sent[0].qos, 1);
    assert_int_equal(fake.sent[0].retained, 1);
    pthread_mutex_unlock(&fake.lock);
}

/* Sizes from 8 bytes to twice the ring's inline limit, 30 MB in all: the
 * 2 MB ring wraps many times and large messages go through the heap. */
static void test_order_and_content_across_wraps(void **state)
{
    struct fixture *f = *state;
    start(f);
    wait_sent(1);
    size_t refused = 0;
    const size_t n = 20000;
    uint64_t rng = 12345;
    size_t total = 0;
    for (uint64_t seq = 1; seq <= n; seq++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t length = 8 + (size_t)(rng >> 33) % 2500;
        if (seq % 997 == 0)
            length = 140 * 1024; /* larger than the inline limit */
        total += length;
        publish_retrying(f, seq, length, 0, 0, &refused);
    }
    assert_true(total > 15u << 20);
    assert_int_equal(wait_sent(n + 1), n + 1);
    pthread_mutex_lock(&fake.lock);
    assert_false(fake.corrupt);
    uint64_t expect = 1;
    for (size_t i = 0; i < fake.nsent; i++) {
        if (fake.sent[i].status)
            continue;
        assert_int_equal(fake.sent[i].seq, expect);
        assert_int_equal(fake.sent[i].qos, 0);
        expect++;
    }
    assert_int_equal(expect, n + 1);
    pthread_mutex_unlock(&fake.lock);
    printf("    (%zu refusals while the ring was full)\n", refused);
}

/* The publisher is stuck in Paho: publish returns at once, with
 * EST_ERR_IO once the ring is full; everything queued goes out after. */
static void test_full_queue_refuses_without_blocking(void **state)
{
    struct fixture *f = *state;
    start(f);
    wait_sent(1);
    fake_set(&fake.hold_publish, true);
    unsigned char *p = make_payload(0, 1000);
    size_t accepted = 0;
    int64_t t0 = est_mono_ms();
    for (uint64_t seq = 1; seq < 100000; seq++) {
        memcpy(p, &seq, 8);
        for (size_t i = 8; i < 1000; i++)
            p[i] = (unsigned char)(seq * 31 + i);
        if (gw_mqtt_publish(f->mqtt, "estate/t/gw1/x", p, 1000, 0, false, 0) != EST_OK)
            break;
        accepted++;
    }
    int64_t took = est_mono_ms() - t0;
    free(p);
    assert_true(accepted > 1000 && accepted < 3000); /* about 2 MB of 1 kB messages */
    assert_true(took < 2000);
    fake_set(&fake.hold_publish, false);
    assert_int_equal(wait_sent(accepted + 1), accepted + 1);
    pthread_mutex_lock(&fake.lock);
    assert_false(fake.corrupt);
    assert_int_equal(fake.sent[fake.nsent - 1].seq, accepted);
    pthread_mutex_unlock(&fake.lock);
}

static int token_of(uint64_t seq)
{
    int token = 0;
    pthread_mutex_lock(&fake.lock);
    for (size_t i = 0; i < fake.nsent; i++)
        if (!fake.sent[i].status && fake.sent[i].seq == seq)
            token = fake.sent[i].token;
    pthread_mutex_unlock(&fake.lock);
    return token;
}

/* More tagged messages than Paho's window: the publisher waits for
 * acknowledgements; every tag comes back once. */
static void test_tags_come_back_once_acknowledged(void **state)
{
    struct fixture *f = *state;
    start(f);
    wait_sent(1);
    const uint64_t n = 300;
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= n; seq++)
        publish_retrying(f, seq, 200, 1, 1000 + seq, &refused);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), n);
    /* Paho's window (128) holds the unacknowledged status and 127 more. */
    assert_int_equal(wait_sent(128), 128);
    est_sleep_ms(100);
    pthread_mutex_lock(&fake.lock);
    assert_int_equal(fake.nsent, 128);
    pthread_mutex_unlock(&fake.lock);
    bool seen[301] = {false};
    uint64_t acked_total = 0;
    for (uint64_t seq = 1; seq <= n; seq++) {
        assert_true(wait_sent(seq + 1) >= seq + 1);
        int token = token_of(seq);
        assert_int_not_equal(token, 0);
        fake.dc(fake.context, token);
        uint64_t tags[64];
        size_t got;
        while ((got = gw_mqtt_take_acked(f->mqtt, tags, 64)) > 0) {
            for (size_t i = 0; i < got; i++) {
                assert_true(tags[i] > 1000 && tags[i] <= 1000 + n);
                assert_false(seen[tags[i] - 1000]);
                seen[tags[i] - 1000] = true;
                acked_total++;
            }
        }
    }
    assert_int_equal(acked_total, n);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    pthread_mutex_lock(&fake.lock);
    assert_true(fake.nsent <= 1 + n);
    pthread_mutex_unlock(&fake.lock);
}

/* Paho may acknowledge before publish returns the token. */
static void test_acknowledged_before_publish_returns(void **state)
{
    struct fixture *f = *state;
    fake_set(&fake.ack_in_publish, true);
    start(f);
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= 500; seq++)
        publish_retrying(f, seq, 50, 1, seq, &refused);
    assert_int_equal(wait_sent(501), 501);
    uint64_t tags[600];
    size_t total = 0;
    int64_t deadline = est_mono_ms() + 5000;
    while (total < 500 && est_mono_ms() < deadline)
        total += gw_mqtt_take_acked(f->mqtt, tags + total, 600 - total);
    assert_int_equal(total, 500);
    for (size_t i = 0; i < total; i++)
        assert_int_equal(tags[i], i + 1);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
}

/* A loss fails what was queued or in flight (no tag comes back), the
 * client reconnects by itself with a new generation and a new status, and
 * publishing works again. */
static void test_loss_fails_inflight_and_reconnects(void **state)
{
    struct fixture *f = *state;
    start(f);
    wait_sent(1);
    fake_set(&fake.hold_publish, true);
    size_t refused = 0;
    for (uint64_t seq = 1; seq <= 50; seq++)
        publish_retrying(f, seq, 100, 1, seq, &refused);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 50);
    fake_set(&fake.refuse_connect, true);
    fake_lose();
    assert_true(wait_until(is_disconnected, f->mqtt));
    int64_t deadline = est_mono_ms() + 5000;
    while (gw_mqtt_inflight(f->mqtt) != 0 && est_mono_ms() < deadline)
        est_sleep_ms(1);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 0);
    uint64_t tags[64];
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 64), 0);
    assert_int_equal(gw_mqtt_generation(f->mqtt), 1);
    unsigned char *p = make_payload(99, 100);
    assert_int_equal(gw_mqtt_publish(f->mqtt, "t", p, 100, 1, false, 99), EST_ERR_IO);
    free(p);
    pthread_mutex_lock(&fake.lock);
    size_t before = fake.nsent;
    fake.hold_publish = false;
    fake.refuse_connect = false;
    pthread_cond_broadcast(&fake.changed);
    pthread_mutex_unlock(&fake.lock);
    assert_true(wait_until(is_connected, f->mqtt));
    assert_int_equal(gw_mqtt_generation(f->mqtt), 2);
    assert_true(wait_sent(before + 1) >= before + 1);
    pthread_mutex_lock(&fake.lock);
    assert_true(fake.sent[fake.nsent - 1].status); /* the online status, first */
    assert_int_equal(fake.connects, 2);
    assert_int_equal(fake.subscribes, 2);
    pthread_mutex_unlock(&fake.lock);
    publish_retrying(f, 7, 100, 1, 7, &refused);
    assert_int_equal(gw_mqtt_inflight(f->mqtt), 1);
    assert_true(wait_sent(before + 2) >= before + 2);
    fake.dc(fake.context, token_of(7));
    assert_int_equal(gw_mqtt_take_acked(f->mqtt, tags, 64), 1);
    assert_int_equal(tags[0], 7);
}

static void deliver(const char *topic, size_t length)
{
    MQTTClient_message *msg = calloc(1, sizeof *msg);
    msg->payloadlen = (int)length;
    msg->payload = malloc(length ? length : 1);
    memset(msg->payload, 'p', length);
    char *t = strdup(topic);
    assert_int_equal(fake.ma(fake.context, t, 0, msg), 1);
}

static void test_commands_are_queued_with_limits(void **state)
{
    struct fixture *f = *state;
    start(f);
    deliver("estate/t/gw1/cmd/valve", 20);
    char long_topic[400];
    memset(long_topic, 'a', sizeof long_topic - 1);
    long_topic[sizeof long_topic - 1] = '\0';
    deliver(long_topic, 5);
    deliver("estate/t/gw1/cmd/workorder", GW_MQTT_COMMAND_MAX + 1);
    struct gw_mqtt_inbound *in = malloc(sizeof *in);
    assert_int_equal(gw_queue_pop_many(f->inbound, in, 1, 0), 1);
    assert_string_equal(in->topic, "estate/t/gw1/cmd/valve");
    assert_int_equal(in->length, 20);
    assert_false(in->too_large);
    assert_int_equal(strlen(in->payload), 20);
    assert_int_equal(gw_queue_pop_many(f->inbound, in, 1, 0), 1);
    assert_true(in->too_large);
    assert_int_equal(strlen(in->topic), GW_MQTT_TOPIC_MAX - 1);
    assert_int_equal(gw_queue_pop_many(f->inbound, in, 1, 0), 1);
    assert_true(in->too_large);
    assert_int_equal(in->length, GW_MQTT_COMMAND_MAX);
    assert_int_equal(in->payload[GW_MQTT_COMMAND_MAX], '\0');
    free(in);
}

static void test_destroy_publishes_offline_and_disconnects(void **state)
{
    struct fixture *f = *state;
    fake_set(&fake.ack_in_publish, true);
    start(f);
    size_t before = wait_sent(1);
    gw_mqtt_destroy(f->mqtt, "{\"state\":\"offline\",\"x\":1}", 1000);
    f->mqtt = NULL;
    pthread_mutex_lock(&fake.lock);
    assert_int_equal(fake.nsent, before + 1);
    struct sent *last = &fake.sent[fake.nsent - 1];
    assert_true(last->status);
    assert_int_equal(last->qos, 1);
    assert_int_equal(last->retained, 1);
    assert_int_equal(fake.disconnects, 1);
    pthread_mutex_unlock(&fake.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_connected_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connects_with_will_subscription_and_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_order_and_content_across_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_refuses_without_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_come_back_once_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acknowledged_before_publish_returns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_fails_inflight_and_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_are_queued_with_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_publishes_offline_and_disconnects, setup,
                                        teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(fake.sent);
    return failed;
}
