/* ctl_patrol.c - estate-ctl patrol log, verify (against the database's
 * anchors and, with --broker, the head retained on the broker), anchor and
 * checkin. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTClient.h>

#include "ctl.h"

struct patrol_rows {
    const struct gw_config *config;
    cJSON *rows;
};
#define HEAD_WAIT_MS 3000 /* how long to wait for the retained head */

static bool patrol_row(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_rows *x = ctx;
    cJSON *row = gw_view_patrol_entry(x->config, e);
    if (row == NULL)
        return false;
    cJSON_AddItemToArray(x->rows, row);
    return true;
}

static int patrol_log(struct ctl *c)
{
    bool missing = false;
    const char *since_text = ctl_option_value(c, "--since", &missing);
    const char *limit_text = ctl_option_value(c, "--limit", &missing);
    if (missing)
        return ctl_usage_error("patrol log: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    int64_t since = 0, limit = 0;
    if (since_text != NULL && !ctl_parse_int64(since_text, 0, INT64_MAX, &since))
        return ctl_usage_error("patrol log: --since '%s' must be a sequence number", since_text);
    if (limit_text != NULL && !ctl_parse_int64(limit_text, 1, 100000000, &limit))
        return ctl_usage_error("patrol log: --limit '%s' must be a positive number", limit_text);
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    struct patrol_rows x = {c->config, cJSON_CreateArray()};
    est_err err = gw_store_patrol_list(store, since, (size_t)limit, patrol_row, &x);
    static const struct gw_table_column cols[] = {
        {"seq", "seq"}, {"ts", "ts"}, {"kind", "kind"}, {"author", "author"},
        {"incident", "incident"}, {"workorder", "workorder"}, {"text", "text"}, {"hash", "hash12"},
    };
    static const struct gw_table_column csv_cols[] = {
        {"seq", "seq"}, {"ts", "ts"}, {"kind", "kind"}, {"author", "author"},
        {"incident", "incident"}, {"workorder", "workorder"}, {"text", "text"},
        {"detail", "detail"}, {"prev_hash", "prev_hash"}, {"hash", "hash"},
    };
    if (c->csv)
        return ctl_list_done(c, store, err, "patrol log", x.rows, csv_cols, COUNT_OF(csv_cols));
    return ctl_list_done(c, store, err, "patrol log", x.rows, cols, COUNT_OF(cols));
}

/* The patrol head the gateway publishes retained on P/patrol/head. */
struct broker_head {
    bool found;
    int64_t seq;
    char hash[GW_STORE_HASH_LEN];
    char problem[256];   /* why it could not be read ("" when read or absent) */
};

static void parse_head(const char *payload, int len, struct broker_head *head)
{
    cJSON *o = cJSON_ParseWithLength(payload, (size_t)len);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "hash");
    if (cJSON_IsNumber(seq) && cJSON_IsString(hash) && strlen(hash->valuestring) < GW_STORE_HASH_LEN) {
        head->found = true;
        head->seq = (int64_t)seq->valuedouble;
        snprintf(head->hash, sizeof head->hash, "%s", hash->valuestring);
    } else {
        snprintf(head->problem, sizeof head->problem, "the retained head is not a head");
    }
    cJSON_Delete(o);
}

/* Connects to the configured broker and reads the retained P/patrol/head. */
static void read_broker_head(const struct gw_config *config, struct broker_head *head)
{
    const struct gw_mqtt_config *m = &config->mqtt;
    char client_id[64], topic[512];
    snprintf(client_id, sizeof client_id, "estate-ctl-%ld", (long)getpid());
    snprintf(topic, sizeof topic, "%s/patrol/head", m->topic_prefix);
    MQTTClient client = NULL;
    if (MQTTClient_create(&client, m->uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
        MQTTCLIENT_SUCCESS) {
        snprintf(head->problem, sizeof head->problem, "bad broker address %s", m->uri);
        return;
    }
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    opts.cleansession = 1;
    opts.connectTimeout = 5;
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    opts.username = m->username;
    char *password = m->password_file ? est_read_first_line(m->password_file) : NULL;
    opts.password = password;
    if (strncmp(m->uri, "ssl://", 6) == 0) {
        ssl.trustStore = m->ca_file;
        ssl.keyStore = m->cert_file;
        ssl.privateKey = m->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.disableDefaultTrustStore = 1;
        opts.ssl = &ssl;
    }
    int rc = MQTTClient_connect(client, &opts);
    free(password);
    if (rc != MQTTCLIENT_SUCCESS) {
        snprintf(head->problem, sizeof head->problem, "cannot connect to %.200s (code %d)", m->uri, rc);
    } else if ((rc = MQTTClient_subscribe(client, topic, 1)) != MQTTCLIENT_SUCCESS) {
        snprintf(head->problem, sizeof head->problem, "cannot subscribe to %.200s (code %d)", topic, rc);
    } else {
        int64_t deadline = est_mono_ms() + HEAD_WAIT_MS;
        while (!head->found && head->problem[0] == '\0' && est_mono_ms() < deadline) {
            char *got_topic = NULL;
            int got_len = 0;
            MQTTClient_message *msg = NULL;
            rc = MQTTClient_receive(client, &got_topic, &got_len, &msg, 200);
            if (msg != NULL && msg->payloadlen > 0)
                parse_head(msg->payload, msg->payloadlen, head);
            if (msg != NULL)
                MQTTClient_freeMessage(&msg);
            if (got_topic != NULL)
                MQTTClient_free(got_topic);
        }
        MQTTClient_disconnect(client, 500);
    }
    MQTTClient_destroy(&client);
}

/* With --broker: the local chain must hold the retained head. Returns
 * whether it does (true when the broker holds none); *problem says why not. */
static bool check_broker_head(struct ctl *c, struct gw_store *store, struct broker_head *head,
                              const char **problem)
{
    *problem = NULL;
    read_broker_head(c->config, head);
    if (head->problem[0] != '\0') {
        *problem = head->problem;
        return false;
    }
    if (!head->found)
        return true;
    if (gw_store_patrol_check_anchor(store, head->seq, head->hash) == EST_OK)
        return true;
    snprintf(head->problem, sizeof head->problem,
             "the head retained on the broker (seq %" PRId64 ") is not in the local chain: %.160s",
             head->seq, gw_store_errmsg(store));
    *problem = head->problem;
    return false;
}

static int patrol_verify(struct ctl *c)
{
    bool against_broker = ctl_option_flag(c, "--broker");
    int status = 0;
    struct gw_store *store = ctl_open_for_reading(c, &status);
    if (store == NULL)
        return status;
    struct gw_store_patrol_verify v;
    if (gw_store_patrol_verify(store, &v) != EST_OK)
        return ctl_store_failure(store, "patrol verify");
    struct broker_head head = {0};
    const char *broker_problem = NULL;
    bool broker_ok = !against_broker || check_broker_head(c, store, &head, &broker_problem);
    gw_store_close(store);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", v.first_bad_seq == 0);
        cJSON_AddNumberToObject(o, "count", (double)v.count);
        cJSON_AddNumberToObject(o, "head_seq", (double)v.head_seq);
        cJSON_AddStringToObject(o, "head_hash", v.head_hash);
        cJSON_AddNumberToObject(o, "anchors", (double)v.anchors);
        if (v.first_bad_seq != 0) {
            cJSON_AddNumberToObject(o, "first_bad_seq", (double)v.first_bad_seq);
            cJSON_AddStringToObject(o, "problem", v.problem ? v.problem : "broken");
        }
        if (against_broker) {
            cJSON_AddBoolToObject(o, "broker_ok", broker_ok);
            if (head.found)
                cJSON_AddNumberToObject(o, "broker_head_seq", (double)head.seq);
            if (broker_problem != NULL)
                cJSON_AddStringToObject(o, "broker_problem", broker_problem);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(o, "ok",
                                               cJSON_CreateBool(v.first_bad_seq == 0 && broker_ok));
        ctl_print_json(o);
        cJSON_Delete(o);
    } else if (v.first_bad_seq == 0 && broker_ok) {
        printf("OK: %" PRId64 " entries, head %" PRId64 " %s, %" PRId64 " anchors checked%s\n",
               v.count, v.head_seq, v.head_hash, v.anchors,
               !against_broker ? ""
               : head.found    ? ", the broker's retained head is in the chain"
                               : ", the broker retains no head");
    }
    if (v.first_bad_seq != 0) {
        fprintf(stderr, "BROKEN: patrol log entry %" PRId64 ": %s\n", v.first_bad_seq,
                v.problem ? v.problem : "the chain breaks here");
        return EST_EXIT_RUNTIME;
    }
    if (!broker_ok) {
        fprintf(stderr, "BROKEN: %s\n", broker_problem);
        return EST_EXIT_RUNTIME;
    }
    return 0;
}

static int patrol_anchor(struct ctl *c)
{
    bool missing = false;
    const char *to = ctl_option_value(c, "--to", &missing);
    if (missing)
        return ctl_usage_error("patrol anchor: --to needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    struct gw_store *store = ctl_open_store(c, false);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    int64_t seq = 0;
    char hash[GW_STORE_HASH_LEN];
    int64_t now = est_now_ms();
    if (gw_store_patrol_anchor(store, now, to ? to : "printed", &seq, hash) != EST_OK)
        return ctl_store_failure(store, "patrol anchor");
    gw_store_close(store);
    char ts[EST_TS_LEN];
    est_format_ts(now, ts);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "site", c->config->gateway.site);
        cJSON_AddStringToObject(o, "gateway", c->config->gateway.id);
        cJSON_AddNumberToObject(o, "seq", (double)seq);
        cJSON_AddStringToObject(o, "hash", hash);
        cJSON_AddStringToObject(o, "ts", ts);
        ctl_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("patrol log head of %s/%s at %s: seq %" PRId64 " hash %s\n",
               c->config->gateway.site, c->config->gateway.id, ts, seq, hash);
    }
    return 0;
}

static int patrol_checkin(struct ctl *c)
{
    bool missing = false;
    const char *location = ctl_option_value(c, "--location", &missing);
    const char *text = ctl_option_value(c, "--text", &missing);
    const char *incident = ctl_option_value(c, "--incident", &missing);
    const char *verdict = ctl_option_value(c, "--verdict", &missing);
    const char *user = ctl_option_value(c, "--user", &missing);
    if (missing)
        return ctl_usage_error("patrol checkin: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    if (location == NULL || text == NULL)
        return ctl_usage_error("patrol checkin needs --location and --text");
    if (user != NULL)
        c->user = user;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "location", location);
    cJSON_AddStringToObject(args, "text", text);
    if (incident != NULL) {
        int64_t id = 0;
        if (!ctl_parse_int64(incident, 1, INT64_C(1) << 52, &id)) {
            cJSON_Delete(args);
            return ctl_usage_error("patrol checkin: --incident '%s' is not an id", incident);
        }
        cJSON_AddNumberToObject(args, "incident", (double)id);
    }
    if (verdict != NULL)
        cJSON_AddStringToObject(args, "verdict", verdict);
    cJSON *result = NULL;
    int rc = ctl_request(c, "patrol-checkin", args, &result);
    if (rc == 0 && !ctl_json_out(c, result))
        printf("check-in recorded\n");
    cJSON_Delete(result);
    return rc;
}

int ctl_verb_patrol(struct ctl *c)
{
    const char *sub = ctl_positional(c, 0);
    if (sub == NULL)
        return ctl_usage_error("patrol needs log, verify, anchor or checkin");
    if (strcmp(sub, "log") == 0)
        return patrol_log(c);
    if (strcmp(sub, "verify") == 0)
        return patrol_verify(c);
    if (strcmp(sub, "anchor") == 0)
        return patrol_anchor(c);
    if (strcmp(sub, "checkin") == 0)
        return patrol_checkin(c);
    return ctl_usage_error("patrol: unknown subcommand '%s'", sub);
}
