/* mqtt.h - the gateway's MQTT client (Eclipse Paho's synchronous MQTTClient
 * driven by a publisher thread of its own). It connects with a retained Last
 * Will on P/status, reconnects by itself with backoff, subscribes to
 * P/cmd/+ and hands every command to the core through a queue (Paho's
 * threads only enqueue). Publishing never blocks: a message is copied into
 * a bounded queue the publisher thread drains, or refused at once when not
 * connected or the queue is full; QoS 1 messages carry a tag (the outbox
 * sequence) that comes back through gw_mqtt_take_acked() once the broker
 * has them. The module owns its copies; callers keep their buffers. */
#ifndef GW_MQTT_H
#define GW_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"

#define GW_MQTT_TOPIC_MAX 256
#define GW_MQTT_COMMAND_MAX 16384 /* larger commands are refused */

/* One inbound command as queued for the core. */
struct gw_mqtt_inbound {
    char topic[GW_MQTT_TOPIC_MAX];
    size_t length;           /* payload bytes stored */
    bool too_large;          /* the payload exceeded GW_MQTT_COMMAND_MAX or the topic overflowed */
    bool retained;           /* the broker kept it: delivered again at every subscription */
    char payload[GW_MQTT_COMMAND_MAX + 1]; /* NUL-terminated copy */
};

struct gw_mqtt;

/* Creates the client; nothing is sent until gw_mqtt_start. status_topic and
 * the will/online payloads are copied. The password is read from
 * config->password_file (never logged). inbound receives commands. */
est_err gw_mqtt_create(const struct gw_mqtt_config *config, const char *prefix,
                       const char *offline_payload, struct gw_queue *inbound,
                       struct gw_mqtt **out);
/* Starts the publisher thread, which connects at once and (re)connects
 * whenever not connected - at once after a loss, then backing off from
 * 0.5 s to 5 s with jitter. */
est_err gw_mqtt_start(struct gw_mqtt *mqtt);
bool gw_mqtt_connected(const struct gw_mqtt *mqtt);
/* Increments on every successful (re)connection. */
uint64_t gw_mqtt_generation(const struct gw_mqtt *mqtt);
/* Sets what is published retained on P/status at every connection. */
void gw_mqtt_set_online_payload(struct gw_mqtt *mqtt, const char *payload);

/* Queues a message and returns at once (any thread). tag != 0 with
 * qos >= 1: the tag is reported by take_acked when the broker acknowledges;
 * if the connection is lost first, it is not (send it again). EST_ERR_IO
 * when not connected or the queue is full. Messages go out in order. */
est_err gw_mqtt_publish(struct gw_mqtt *mqtt, const char *topic, const void *payload,
                        size_t length, int qos, bool retain, uint64_t tag);
/* As gw_mqtt_publish, but while connected waits up to wait_ms for room when
 * the queue is full (the broker is behind): the publisher gives room back as
 * it sends. */
est_err gw_mqtt_publish_wait(struct gw_mqtt *mqtt, const char *topic, const void *payload,
                             size_t length, int qos, bool retain, uint64_t tag, int wait_ms);
/* Tags acknowledged since the last call (at most max). */
size_t gw_mqtt_take_acked(struct gw_mqtt *mqtt, uint64_t *tags, size_t max);
/* Tagged QoS>=1 messages queued or sent and not yet acknowledged or failed
 * (a connection loss fails them all before the next generation). */
size_t gw_mqtt_inflight(const struct gw_mqtt *mqtt);

/* Publishes offline_payload retained on P/status (when connected), waits up
 * to timeout_ms for queued and in-flight messages, disconnects and frees. */
void gw_mqtt_destroy(struct gw_mqtt *mqtt, const char *offline_payload, int timeout_ms);

/* Silent links. gw_mqtt_queued_end: the ring position just after what
 * has been queued so far; gw_mqtt_proven_upto: everything queued before
 * this position is known to have reached the broker (a later PUBACK came).
 * gw_mqtt_check_link, called often by the core: when nothing sent in this
 * session was acknowledged for 2 x keepalive_s, the session is closed, its
 * unacknowledged tagged messages fail and the generation moves on. */
uint64_t gw_mqtt_queued_end(struct gw_mqtt *m);
uint64_t gw_mqtt_proven_upto(const struct gw_mqtt *m);
void gw_mqtt_check_link(struct gw_mqtt *m);

#endif
