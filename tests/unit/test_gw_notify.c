/* test_gw_notify.c - the notify part without a network: its config
 * (channels, routes, secret files, templates; FILE:LINE errors), the
 * DingTalk signature, http templates, the texts in both languages and the
 * notifications table (one row per cause and channel, due, retried,
 * delivered). Works in a mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "notify_internal.h"
#include "store.h"

struct fixture {
    char dir[64];
    char conf[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/estate-notify-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->conf, sizeof f->conf, "%s/gw.conf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_file(const struct fixture *f, const char *name, const char *text, mode_t mode)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
    assert_int_equal(chmod(path, mode), 0);
}

/* A site with one zone panel and one vacant unit's water meter, plus the
 * notify section given (the channels and routes lists). */
static void write_config(const struct fixture *f, const char *notify)
{
    char text[4096];
    snprintf(text, sizeof text,
             "gateway = { data_dir = \"%s/data\"; language = \"zh-CN\"; };\n"
             "buses = ( { name = \"b\"; type = \"tcp\"; host = \"127.0.0.1\"; } );\n"
             "units = ( { id = \"1-102\"; building = \"1\"; occupancy = \"vacant\"; } );\n"
             "meters = ( { id = \"W-1-102\"; bus = \"b\"; slave = 2; driver = \"xintai-water\";\n"
             "             kind = \"water\"; category = \"unit\"; unit = \"1-102\"; } );\n"
             "fire_panels = ( { id = \"FP-1\"; bus = \"b\"; slave = 1; driver = \"notifier-gw\";\n"
             "                  zones = 2; zone_names = ( { zone = 1; name = \"1号楼 3层 烟感\"; } ); } );\n"
             "notify = {\n%s\n};\n",
             f->dir, notify);
    write_file(f, "gw.conf", text, 0644);
}

static void dump(const struct gw_config_errors *errors)
{
    for (size_t i = 0; i < errors->count; i++)
        print_message("  got: %s\n", errors->messages[i]);
}

/* Loads the config and expects exactly one error, "<conf>:<line>: <message>". */
static void expect_error(const struct fixture *f, int line, const char *message)
{
    struct gw_config *c = NULL;
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(f->conf, NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(err, EST_ERR_INVALID);
    assert_null(c);
    assert_int_equal(errors.count, 1);
    char expected[512];
    snprintf(expected, sizeof expected, "%s:%d: %s", f->conf, line, message);
    assert_string_equal(errors.messages[0], expected);
    gw_config_errors_free(&errors);
}

static struct gw_config *load_ok(const struct fixture *f)
{
    struct gw_config *c = NULL;
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(f->conf, NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(err, EST_OK);
    gw_config_errors_free(&errors);
    return c;
}

#define CHANNELS_HEAD "  channels = (\n" /* line 9 of the file: the first channel on line 10 */

static void test_good_config_loads(void **state)
{
    struct fixture *f = *state;
    write_file(f, "wecom.key", "KEY\n", 0600);
    write_file(f, "sign.secret", "SEC\n", 0600);
    write_config(f, "  console_url = \"https://gw.example\";\n" CHANNELS_HEAD
                    "    { name = \"w\"; type = \"wecom\"; url = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send\"; key_file = \"wecom.key\"; },\n"
                    "    { name = \"d\"; type = \"dingtalk\"; url = \"https://oapi.dingtalk.com/robot/send\"; key_file = \"wecom.key\"; sign_secret_file = \"sign.secret\"; },\n"
                    "    { name = \"sms\"; type = \"http\"; url = \"https://sms.example/send\"; headers = [\"Content-Type: application/json\"];\n"
                    "      body = \"{\\\"to\\\":\\\"{to}\\\",\\\"text\\\":\\\"{text}\\\"}\"; rate_per_min = 0; }\n"
                    "  );\n"
                    "  routes = ( { channel = \"w\"; categories = [\"fire\"]; severities = [\"critical\"]; to = [\"13800000001\"]; quiet_hours = \"22:00-07:00\"; },\n"
                    "             { channel = \"sms\"; rules = [\"vacant_flow\"]; buildings = [\"1\"]; language = \"en\"; cleared = false; } );");
    struct gw_config *c = load_ok(f);
    assert_int_equal(c->notify.nchannels, 3);
    assert_int_equal(c->notify.channels[0].rate_per_min, 20); /* a robot's default: WeCom's limit */
    assert_int_equal(c->notify.channels[2].rate_per_min, 0);
    assert_int_equal(c->notify.nroutes, 2);
    assert_int_equal(c->notify.routes[0].quiet_start_min, 22 * 60);
    assert_int_equal(c->notify.routes[0].quiet_end_min, 7 * 60);
    assert_int_equal(c->notify.routes[1].channel, 2);
    assert_int_equal(c->notify.routes[1].language, GW_LANG_EN);
    assert_false(c->notify.routes[1].cleared);
    assert_int_equal(c->notify.retry_max_s, 300);
    gw_config_free(c);
}

static void test_unknown_channel_type(void **state)
{
    struct fixture *f = *state;
    write_config(f, CHANNELS_HEAD "    { name = \"x\"; type = \"telegram\"; url = \"https://x.example\"; }\n  );");
    expect_error(f, 10, "notify.channels[0].type: 'telegram' is not one of wecom, dingtalk, feishu, http, smtp");
}

static void test_missing_secret_file(void **state)
{
    struct fixture *f = *state;
    write_config(f, CHANNELS_HEAD "    { name = \"w\"; type = \"wecom\"; url = \"https://x.example\"; key_file = \"none.key\"; }\n  );");
    char message[256];
    snprintf(message, sizeof message,
             "notify.channels[0].key_file: cannot use '%s/none.key': No such file or directory", f->dir);
    expect_error(f, 10, message);
}

static void test_world_readable_secret_file(void **state)
{
    struct fixture *f = *state;
    write_file(f, "smtp.password", "pw\n", 0644);
    write_config(f, CHANNELS_HEAD "    { name = \"m\"; type = \"smtp\"; url = \"smtps://mail.example:465\"; from = \"gw@example\";\n"
                    "      password_file = \"smtp.password\"; }\n  );");
    char message[256];
    snprintf(message, sizeof message,
             "notify.channels[0].password_file: '%s/smtp.password' holds secrets but everyone may "
             "read or write it (mode 644): chmod 600 it", f->dir);
    expect_error(f, 11, message);
}

static void test_unknown_placeholder(void **state)
{
    struct fixture *f = *state;
    write_config(f, CHANNELS_HEAD "    { name = \"sms\"; type = \"http\"; url = \"https://sms.example/send\";\n"
                    "      body = \"{\\\"phone\\\":\\\"{to}\\\",\\\"msg\\\":\\\"{message}\\\"}\"; }\n  );");
    expect_error(f, 11, "notify.channels[0].body: unknown placeholder {message} (known: text, "
                        "severity, rule, where, since, link, incident, to, secret)");
}

static void test_route_needs_a_known_channel(void **state)
{
    struct fixture *f = *state;
    write_file(f, "wecom.key", "KEY\n", 0600);
    write_config(f, CHANNELS_HEAD "    { name = \"w\"; type = \"wecom\"; url = \"https://x.example\"; key_file = \"wecom.key\"; }\n  );\n"
                    "  routes = ( { channel = \"v\"; } );");
    expect_error(f, 12, "notify.routes[0].channel: no notify channel is named 'v'");
}

static void test_roster_and_escalation_config(void **state)
{
    struct fixture *f = *state;
    write_file(f, "wecom.key", "KEY\n", 0600);
    write_config(f, "  people = ( { name = \"li.gong\"; mobile = \"13800000003\"; } );\n" CHANNELS_HEAD
                    "    { name = \"w\"; type = \"wecom\"; url = \"https://x.example\"; key_file = \"wecom.key\"; }\n  );\n"
                    "  routes = ( { channel = \"w\"; on_duty = true;\n"
                    "    escalation = ( { after_s = 600; to = [\"139\"]; }, { after_s = 1800; to = [\"137\", \"136\"]; } ); } );");
    struct gw_config *c = load_ok(f);
    assert_int_equal(c->notify.npeople, 1);
    assert_string_equal(c->notify.people[0].mobile, "13800000003");
    assert_true(c->notify.routes[0].on_duty);
    assert_int_equal(c->notify.routes[0].nescalation, 2);
    assert_int_equal(c->notify.routes[0].escalation[1].after_s, 1800);
    assert_int_equal(c->notify.routes[0].escalation[1].nto, 2);
    gw_config_free(c);
    write_config(f, CHANNELS_HEAD
                    "    { name = \"w\"; type = \"wecom\"; url = \"https://x.example\"; key_file = \"wecom.key\"; }\n  );\n"
                    "  routes = ( { channel = \"w\";\n"
                    "    escalation = ( { after_s = 600; to = [\"139\"]; },\n"
                    "                   { after_s = 300; to = [\"137\"]; } ); } );");
    expect_error(f, 14, "notify.routes[0].escalation[1].after_s: 300 must come after the step before (600)");
}

static void test_dingtalk_signature(void **state)
{
    (void)state;
    char sign[128];
    /* base64(HMAC-SHA256("SECtest", "1700000000000\nSECtest")), URL-encoded
     * (the value from Python's hmac, base64 and urllib.parse.quote). */
    assert_true(notify_dingtalk_sign("SECtest", 1700000000000LL, sign, sizeof sign));
    assert_string_equal(sign, "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D");
    assert_false(notify_dingtalk_sign("SECtest", 1700000000000LL, sign, 10));
}

static void test_template_escapes(void **state)
{
    struct fixture *f = *state;
    write_config(f, "");
    struct gw_config *c = load_ok(f);
    struct notify_message m = {.text = "火警 \"A\"\nB & C", .recipients = "138,139",
                               .severity = "critical", .incident = 7};
    struct gw_notify_channel_config cc = {.name = "x"};
    struct notify_channel ch = {.config = &cc, .password = "S3"};
    char *json = notify_fill_template("{\"t\":\"{text}\",\"to\":\"{to}\",\"n\":{incident},\"k\":\"{secret}\",\"x\":\"{other}\"}",
                                      &m, &ch, c, 'j');
    assert_string_equal(json, "{\"t\":\"火警 \\\"A\\\"\\nB & C\",\"to\":\"138,139\",\"n\":7,\"k\":\"S3\",\"x\":\"{other}\"}");
    free(json);
    char *form = notify_fill_template("msg={text}&lvl={severity}", &m, &ch, c, 'u');
    assert_string_equal(form, "msg=%E7%81%AB%E8%AD%A6%20%22A%22%0AB%20%26%20C&lvl=critical");
    free(form);
    gw_config_free(c);
}

static void test_texts(void **state)
{
    struct fixture *f = *state;
    write_config(f, "  console_url = \"https://gw.example\";");
    struct gw_config *c = load_ok(f);
    /* 2026-12-07 03:04 UTC = 11:04 in Asia/Shanghai */
    struct gw_store_incident fire = {.id = 5, .rule = "fire_alarm", .subject_type = "zone",
                                     .subject = "FP-1", .zone = 0, .severity = "critical",
                                     .open = true, .since_ms = 1796612640000LL,
                                     .raised_ms = 1796612640000LL, .text = "火警：1号楼 3层 烟感"};
    char text[1024];
    gw_notify_format(c, &fire, RULE_RAISED, GW_LANG_ZH_CN, text, sizeof text);
    assert_string_equal(text, "【紧急】火警\n位置：1号楼 3层 烟感（FP-1 第1防区）\n开始：12-07 11:04\n"
                              "火警：1号楼 3层 烟感\n处理：https://gw.example/?incident=5");
    gw_notify_format(c, &fire, RULE_RAISED, GW_LANG_EN, text, sizeof text);
    assert_string_equal(text, "[CRITICAL] Fire alarm\nWhere: 1号楼 3层 烟感 (FP-1 zone 1)\n"
                              "Since: 12-07 11:04\nOpen: https://gw.example/?incident=5");
    struct gw_store_incident water = {.id = 6, .rule = "vacant_flow", .subject_type = "unit",
                                      .subject = "1-102", .zone = -1, .severity = "major",
                                      .since_ms = 1796612640000LL, .cleared_ms = 1796613240000LL};
    gw_notify_format(c, &water, RULE_CLEARED, GW_LANG_EN, text, sizeof text);
    assert_string_equal(text, "[CLEARED] Water flowing in a vacant unit\nWhere: building 1, unit 1-102\n"
                              "12-07 11:04 to 12-07 11:14\nOpen: https://gw.example/?incident=6");
    assert_string_equal(notify_category(c, &fire), "fire");
    assert_null(notify_building(c, &fire));
    assert_string_equal(notify_building(c, &water), "1");
    gw_config_free(c);
}

struct seen_rows {
    int64_t ids[8];
    char causes[8][64];
    size_t n;
};

static bool collect(void *ctx, const struct gw_store_notification *n)
{
    struct seen_rows *s = ctx;
    if (s->n < 8) {
        s->ids[s->n] = n->id;
        snprintf(s->causes[s->n], sizeof s->causes[0], "%s/%s", n->cause, n->channel);
        s->n++;
    }
    return true;
}

static void test_notifications_table(void **state)
{
    struct fixture *f = *state;
    char data[128];
    snprintf(data, sizeof data, "%s/data", f->dir);
    struct gw_store *store = NULL;
    assert_int_equal(gw_store_open(data, false, &store, NULL, 0), EST_OK);
    struct gw_store_notification n = {.cause = "incident:1:raised", .channel = "w",
                                      .incident = 1, .text = "t", .created_ms = 1000,
                                      .due_ms = 1000};
    bool added = false;
    assert_int_equal(gw_store_notification_add(store, &n, &added), EST_OK);
    assert_true(added);
    assert_int_equal(gw_store_notification_add(store, &n, &added), EST_OK);
    assert_false(added); /* the same cause and channel again: still one row */
    n.channel = "d";
    n.due_ms = 5000; /* held (quiet hours) */
    assert_int_equal(gw_store_notification_add(store, &n, &added), EST_OK);
    assert_true(added);
    struct seen_rows seen = {0};
    assert_int_equal(gw_store_notifications_due(store, 2000, 10, collect, &seen), EST_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.causes[0], "incident:1:raised/w");
    assert_int_equal(gw_store_notification_retry(store, seen.ids[0], 6000, "HTTP 503"), EST_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_notifications_due(store, 5500, 10, collect, &seen), EST_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.causes[0], "incident:1:raised/d");
    assert_int_equal(gw_store_notification_delivered(store, seen.ids[0], 5500), EST_OK);
    assert_int_equal(gw_store_notification_delivered(store, seen.ids[0], 5600), EST_ERR_NOTFOUND);
    int64_t pending = 0;
    assert_int_equal(gw_store_notifications_pending(store, &pending), EST_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(gw_store_close(store), EST_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_config_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_channel_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_world_readable_secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_placeholder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_needs_a_known_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roster_and_escalation_config, setup, teardown),
        cmocka_unit_test(test_dingtalk_signature),
        cmocka_unit_test_setup_teardown(test_template_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_texts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifications_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
