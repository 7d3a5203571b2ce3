/* test_gw_config.c - the configuration loader (gateway/config.c) and the CSV
 * reader (gateway/csv.c): the shipped configs load, each malformed fixture in
 * tests/unit/data/config yields exactly its FILE:LINE: message, --set
 * overrides, and the meters CSV (good, bad rows, overlong field: all or
 * nothing). Fixtures are found through ESTATE_SOURCE_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "csv.h"

static const char *source_dir(void)
{
    const char *dir = getenv("ESTATE_SOURCE_DIR");
    return dir && *dir ? dir : ESTATE_SOURCE_DIR;
}

/* Path of a fixture (static buffer, rewritten on each call). */
static const char *fixture(const char *name)
{
    static char paths[4][1024];
    static unsigned next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/tests/unit/data/config/%s", source_dir(), name);
    return p;
}

static void dump(const struct gw_config_errors *errors)
{
    for (size_t i = 0; i < errors->count; i++)
        print_message("  got: %s\n", errors->messages[i]);
}

/* --- the shipped configs --- */

static void test_demo_config_loads(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/etc/demo/estate-gw.conf", source_dir());
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(path, NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(e, EST_OK);
    assert_int_equal(errors.count, 0);
    assert_int_equal(c->nbuses, 5);
    assert_int_equal(c->nunits, 12);
    assert_int_equal(c->nmeters, 36);
    assert_int_equal(c->npanels, 1);
    assert_string_equal(c->gateway.data_dir, "/tmp/estate-demo/gw");
    assert_int_equal(c->gateway.language, GW_LANG_ZH_CN);
    assert_string_equal(c->gateway.timezone, "Asia/Shanghai");
    assert_string_equal(c->mqtt.uri, "tcp://127.0.0.1:1883");
    assert_string_equal(c->mqtt.topic_prefix, "estate/sunshine-garden/gw1");
    assert_string_equal(c->mqtt.client_id, "estate-gw-gw1");
    assert_string_equal(c->http.listen, "127.0.0.1:8080");
    char users[1100];
    snprintf(users, sizeof users, "%s/etc/demo/users.conf", source_dir());
    assert_string_equal(c->http.users_file, users); /* resolved against the config's directory */

    static const struct { const char *bus; int port; } buses[] = {
        { "gw_a", 15502 }, { "gw_b", 15503 }, { "fire", 15504 },
    };
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(c->buses[i].name, buses[i].bus);
        assert_int_equal(c->buses[i].type, GW_BUS_TCP);
        assert_string_equal(c->buses[i].host, "127.0.0.1");
        assert_int_equal(c->buses[i].port, buses[i].port);
        assert_int_equal(c->buses[i].poll_interval_ms, 1000);
    }
    /* building 3: DL/T 645 and CJ/T 188 lines at 2400 8E1 on the simulator's ptys */
    static const struct { const char *bus; enum drv_protocol protocol; } national[] = {
        { "b3_elec", DRV_PROTO_DLT645 }, { "b3_water", DRV_PROTO_CJT188 },
    };
    for (size_t i = 0; i < 2; i++) {
        const struct gw_bus_config *b = &c->buses[3 + i];
        assert_string_equal(b->name, national[i].bus);
        assert_int_equal(b->type, GW_BUS_RTU);
        assert_int_equal(b->protocol, national[i].protocol);
        assert_int_equal(b->baud, 2400);
        assert_int_equal(b->parity, 'E');
    }
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-3-102")].wire_address[0], 0x02);
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-3-102")].wire_address[1], 0x01);
    assert_int_equal(c->meters[gw_config_meter_index(c, "W-3-202")].wire_address[1], 0x02);
    assert_true(c->units[c->meters[gw_config_meter_index(c, "W-3-202")].unit].vacant);
    assert_true(c->rules.battery_low.open_workorder);
    /* docs/demo-site.md: serial = 20260001 + row (buildings 1 and 2), parents, options */
    for (size_t i = 0; i < 28; i++) {
        char serial[16];
        snprintf(serial, sizeof serial, "%zu", 20260001 + i);
        assert_string_equal(c->meters[i].serial, serial);
    }
    int m = gw_config_meter_index(c, "W-1-102");
    assert_true(m >= 0);
    assert_true(c->meters[m].valve);
    assert_int_equal(c->meters[m].parent, gw_config_meter_index(c, "W-B1"));
    assert_int_equal(c->meters[m].unit, gw_config_unit_index(c, "1-102"));
    assert_true(c->units[c->meters[m].unit].vacant);
    m = gw_config_meter_index(c, "W-GARDEN");
    assert_int_equal(c->meters[m].quiet_start_min, 120);
    assert_int_equal(c->meters[m].quiet_end_min, 300);
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-1-202")].options.word_order,
                     DRV_ORDER_CDAB);
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-2-101")].options.function, 4);
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-1-101")].options.word_order, -1);
    assert_int_equal(c->meters[gw_config_meter_index(c, "E-OFFICE")].category, GW_CAT_OFFICE);

    const struct gw_panel_config *p = &c->panels[0];
    assert_string_equal(p->id, "FP-1");
    assert_int_equal(p->nzones, 8);
    assert_string_equal(p->zones[4].name, "地下车库 温感");
    for (uint16_t z = 0; z < 8; z++)
        assert_int_equal(p->zone_addresses[z], z);
    assert_ptr_equal(p->options.zone_addresses, p->zone_addresses);

    /* demo tuning: everything fires within 120 s */
    assert_int_equal(c->rules.continuous_flow.window_s, 90);
    assert_int_equal(c->rules.continuous_flow.zero_flow_needed_s, 30);
    assert_int_equal(c->rules.reverse_energy.negative_power_hold_s, 10);
    assert_true(c->rules.balance_loss.window_s <= 60);
    assert_int_equal(c->rules.fire_alarm.c.severity, RULE_SEV_CRITICAL);
    assert_int_equal(rule_config_check(&c->rules), EST_OK);
    gw_config_free(c);
    gw_config_errors_free(&errors);
}

static void test_reference_config_loads(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/etc/estate-gw.conf", source_dir());
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(path, NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(e, EST_OK);
    assert_int_equal(c->buses[0].type, GW_BUS_RTU);
    assert_string_equal(c->buses[0].device, "/dev/ttyUSB0");
    assert_int_equal(c->buses[0].parity, 'N');
    assert_true(c->npanels == 1 && c->panels[0].nzones == 6);
    assert_string_equal(c->panels[0].zones[1].name, "3号楼 12层 烟感");
    /* the reference documents the defaults */
    struct rule_config defaults;
    rule_config_defaults(&defaults);
    size_t nparams;
    const struct rule_param *params = rule_params(&nparams);
    for (size_t i = 0; i < nparams; i++) {
        const char *got = (const char *)&c->rules + params[i].offset;
        const char *want = (const char *)&defaults + params[i].offset;
        size_t size = params[i].type == RULE_PARAM_BOOL     ? sizeof(bool)
                      : params[i].type == RULE_PARAM_DOUBLE ? sizeof(double)
                                                            : sizeof(int);
        if (memcmp(got, want, size) != 0)
            fail_msg("etc/estate-gw.conf: rules.%s.%s is not the default", rule_name(params[i].rule),
                     params[i].name);
    }
    assert_int_equal(c->workorders.arrive_within_s, 1200);
    assert_int_equal(c->workorders.nescalation_roles, 1);
    assert_int_equal(c->retention.patrol_days, 730);
    gw_config_free(c);
    gw_config_errors_free(&errors);
}

/* --- malformed fixtures: exactly one message each --- */

struct bad_case {
    const char *file;      /* fixture loaded */
    const char *err_file;  /* fixture the message names (NULL = file) */
    int line;
    const char *message;
};

static const struct bad_case bad_cases[] = {
    { "syntax.conf", NULL, 3, "syntax error" },
    { "include_bad.conf", "bad_part.conf", 3, "syntax error" },
    { "unknown_key.conf", NULL, 4, "mqtt.qos_reading: unknown key" },
    { "wrong_type.conf", NULL, 3, "meters[0].slave: expected an integer" },
    { "out_of_range.conf", NULL, 3, "meters[0].slave: 248 is out of range 1..247" },
    { "unknown_timezone.conf", NULL, 3,
      "gateway.timezone: 'Mars/Olympus_Mons' is not a time zone: not in the time-zone database "
      "/usr/share/zoneinfo (no such zone); use an IANA name (\"Asia/Shanghai\", \"Europe/Berlin\", "
      "\"UTC\") or a fixed offset like \"+08:00\"" },
    { "unknown_bus.conf", NULL, 3, "meters[0].bus: no bus named 'bus_z' in buses" },
    /* an unknown bus with an address: the address check read buses[SIZE_MAX] (fuzz_config) */
    { "unknown_bus_address.conf", NULL, 3, "meters[0].bus: no bus named 'bus_z' in buses" },
    { "duplicate_id.conf", NULL, 4, "duplicate meter id 'W-1' (first defined at {file}:3)" },
    { "duplicate_slave.conf", NULL, 5,
      "meter W-3: slave 7 on bus bus_a is already used by meter W-1 ({file}:3)" },
    { "unknown_driver.conf", NULL, 3,
      "meters[0].driver: unknown driver 'sdm999' (known: adl400, cjt188_cold_water, dds238, "
      "ddsu666, dlt645_1997_1p, dlt645_2007_1p, dtsu666, notifier-gw, sdm120, sdm630, sdm72, tuf2000m, xintai-water)" },
    { "parent_loop.conf", NULL, 3, "meter W-A: parent chain loops: W-A -> W-B -> W-A" },
    { "unknown_unit.conf", NULL, 4, "meters[0].unit: no unit '9-999' in units" },
    { "cn_address_digits.conf", NULL, 7,
      "meters[0].address: expected the meter's address as a string of digits "
      "(\"000012345678\")" },
    { "cn_address_length.conf", NULL, 7, "meter E-1: address '12345' must be 12 digits on a "
      "dlt645 bus" },
    { "cn_duplicate_address.conf", NULL, 8, "meter E-2: address 000000000001 on bus dl is "
      "already used by meter E-1 ({file}:7)" },
    { "cn_modbus_model.conf", NULL, 3,
      "meter E-1: driver 'dlt645_2007_1p' speaks dlt645 but bus bus_b speaks modbus" },
    { "cn_over_tcp.conf", NULL, 3, "bus dl: protocol dlt645 runs on an rtu bus (a serial line) or an "
      "rtu_over_tcp bus (a serial converter in transparent mode)" },
    { "cn_protocol_mismatch.conf", NULL, 7,
      "meter W-1: driver 'dlt645_2007_1p' speaks dlt645 but bus cj speaks cjt188" },
    { "cn_slave_given.conf", NULL, 7,
      "meter E-1: bus dl speaks dlt645: give the meter's address, not slave" },
    { "kind_mismatch.conf", NULL, 3,
      "meter E-1: kind water does not match driver 'sdm120' (electricity)" },
    { "valve_no_control.conf", NULL, 3,
      "meter E-1: valve = true but driver 'sdm120' has no valve control" },
    { "zones_beyond.conf", NULL, 3,
      "fire panel FP-1: zones = 200 but driver 'notifier-gw' lays out 159 zones; give zone 160 "
      "an address in zone_names" },
    { "rtu_no_device.conf", NULL, 3, "bus serial: an rtu bus needs device" },
    { "pipeline_rtu.conf", NULL, 3,
      "bus serial: pipeline_depth applies to tcp buses (a serial line carries one request at a "
      "time)" },
    { "pipeline_paced.conf", NULL, 3,
      "bus conv: pipeline_depth needs request_gap_ms and slave_switch_delay_ms at 0 (requests in "
      "flight cannot be paced)" },
    { "pipeline_too_deep.conf", NULL, 3, "buses[0].pipeline_depth: 33 is out of range 1..32" },
    { "pipeline_rtu_over_tcp.conf", NULL, 3,
      "bus conv: pipeline_depth applies to tcp buses (a serial line carries one request at a "
      "time)" },
    { "rtu_over_tcp_no_host.conf", NULL, 3,
      "bus conv: an rtu_over_tcp bus needs host (the converter)" },
};

/* Copies template to out with "{file}" replaced by file. */
static void expand(char *out, size_t size, const char *template, const char *file)
{
    const char *mark = strstr(template, "{file}");
    if (!mark)
        snprintf(out, size, "%s", template);
    else
        snprintf(out, size, "%.*s%s%s", (int)(mark - template), template, file, mark + 6);
}

/* An RTU-over-TCP bus: host and port of the converter, the serial settings
 * and pacing of an RTU bus. */
static void test_rtu_over_tcp_bus_loads(void **state)
{
    (void)state;
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(fixture("rtu_over_tcp.conf"), NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(e, EST_OK);
    assert_int_equal(c->nbuses, 1);
    assert_int_equal(c->buses[0].type, GW_BUS_RTU_OVER_TCP);
    assert_string_equal(c->buses[0].host, "10.0.0.9");
    assert_int_equal(c->buses[0].port, 8899);
    assert_int_equal(c->buses[0].baud, 4800);
    assert_int_equal(c->buses[0].parity, 'E');
    assert_int_equal(c->buses[0].slave_switch_delay_ms, 200);
    assert_int_equal(c->buses[0].request_gap_ms, 20);
    assert_int_equal(c->buses[0].pipeline_depth, 1);
    assert_int_equal(c->nmeters, 1);
    gw_config_free(c);
}

static void test_bad_fixtures(void **state)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *bc = &bad_cases[i];
        const char *path = fixture(bc->file);
        const char *err_path = fixture(bc->err_file ? bc->err_file : bc->file);
        char message[1024], expected[2048];
        expand(message, sizeof message, bc->message, err_path);
        snprintf(expected, sizeof expected, "%s:%d: %s", err_path, bc->line, message);
        struct gw_config *c = (struct gw_config *)1;
        struct gw_config_errors errors = { 0 };
        est_err e = gw_config_load(path, NULL, 0, &c, &errors);
        print_message("%s\n", bc->file);
        dump(&errors);
        assert_int_equal(e, EST_ERR_INVALID);
        assert_null(c);
        assert_int_equal(errors.count, 1);
        assert_string_equal(errors.messages[0], expected);
        gw_config_errors_free(&errors);
    }
}

static void test_all_errors_reported(void **state)
{
    const char *path = fixture("many_errors.conf");
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load(path, NULL, 0, &c, &errors), EST_ERR_INVALID);
    dump(&errors);
    assert_int_equal(errors.count, 4);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:2: gateway2: unknown section", path);
    assert_string_equal(errors.messages[0], expected);
    snprintf(expected, sizeof expected, "%s:4: retention.patrol_days: 365 is out of range 730..36500",
             path);
    assert_string_equal(errors.messages[3], expected);
    gw_config_errors_free(&errors);
}

static void test_missing_file(void **state)
{
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load("/nonexistent/estate.conf", NULL, 0, &c, &errors),
                     EST_ERR_INVALID);
    assert_int_equal(errors.count, 1);
    assert_string_equal(errors.messages[0],
                        "/nonexistent/estate.conf: cannot read: No such file or directory");
    gw_config_errors_free(&errors);
}

/* --- --set overrides --- */

static void test_set_overrides(void **state)
{
    static const char *const sets[] = {
        "mqtt.uri=tcp://10.0.0.1:1884",        /* creates mqtt and a string */
        "mqtt.qos_readings=1",                 /* created text typed by the key's row */
        "gateway.data_dir=/tmp/gw-override",   /* existing string */
        "buses.bus_a.port=1600",               /* list element by name */
        "buses.[1].baud=19200",                /* ... by index */
        "buses.1.parity=E",                    /* ... by bare index */
        "buses[1].stop_bits=2",                /* ... by name[index] */
        "meters.W-1-101.valve=false",          /* by id, existing bool */
        "meters.E-1-101.serial=42",            /* created */
        "rules.vacant_flow.auto_close_valve=true",
        "rules.meter_offline.failures=5",      /* creates the group */
        "fire_panels.FP-1.zone_names.0.name=entrance",
    };
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(fixture("good.conf"), sets, sizeof sets / sizeof sets[0], &c, &errors);
    dump(&errors);
    assert_int_equal(e, EST_OK);
    assert_string_equal(c->mqtt.uri, "tcp://10.0.0.1:1884");
    assert_int_equal(c->mqtt.qos_readings, 1);
    assert_string_equal(c->gateway.data_dir, "/tmp/gw-override");
    assert_int_equal(c->buses[0].port, 1600);
    assert_int_equal(c->buses[1].baud, 19200);
    assert_int_equal(c->buses[1].parity, 'E');
    assert_int_equal(c->buses[1].stop_bits, 2);
    assert_false(c->meters[gw_config_meter_index(c, "W-1-101")].valve);
    assert_string_equal(c->meters[gw_config_meter_index(c, "E-1-101")].serial, "42");
    assert_true(c->rules.vacant_flow.auto_close_valve);
    assert_int_equal(c->rules.vacant_flow.window_s, 600);
    assert_int_equal(c->rules.meter_offline.failures, 5);
    assert_string_equal(c->panels[0].zones[1].name, "entrance");
    assert_int_equal(c->panels[0].zone_addresses[0], 0);
    assert_int_equal(c->panels[0].zone_addresses[2], 100);
    gw_config_free(c);
    gw_config_errors_free(&errors);
}

static void test_set_errors(void **state)
{
    static const struct { const char *set; const char *message; } cases[] = {
        { "meters.W-9.valve=true", "--set meters.W-9.valve=true: no element 'W-9' in meters" },
        { "mqtt.nosuch=1", "--set mqtt.nosuch=1: mqtt.nosuch: unknown key" },
        { "buses.0.port=abc", "--set buses.0.port=abc: 'abc' is not an integer" },
        { "buses.0.port=70000", "--set buses.0.port=70000: buses[0].port: 70000 is out of range "
                                "1..65535" },
        { "buses.7.port=1", "--set buses.7.port=1: no element '7' in buses" },
        { "gateway.id.x=1", "--set gateway.id.x=1: 'id' is not a group or list" },
        { "buses=1", "--set buses=1: the path names a group or list, not a single setting" },
        { "novalue", "--set novalue: expected PATH=VALUE" },
        { "gateway..id=x", "--set gateway..id=x: malformed path" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw_config *c = NULL;
        struct gw_config_errors errors = { 0 };
        const char *set[] = { cases[i].set };
        assert_int_equal(gw_config_load(fixture("good.conf"), set, 1, &c, &errors), EST_ERR_INVALID);
        dump(&errors);
        assert_int_equal(errors.count, 1);
        assert_string_equal(errors.messages[0], cases[i].message);
        gw_config_errors_free(&errors);
    }
}

/* gateway.timezone: any zone of the system's database, or a fixed offset
 * (the old forms), stored as est_tz names it. */
static void test_timezone_key(void **state)
{
    (void)state;
    static const struct { const char *set, *name; } good[] = {
        { "gateway.timezone=Europe/Berlin", "Europe/Berlin" },
        { "gateway.timezone=America/New_York", "America/New_York" },
        { "gateway.timezone=Asia/Shanghai", "Asia/Shanghai" },
        { "gateway.timezone=Asia/Kolkata", "Asia/Kolkata" },
        { "gateway.timezone=UTC", "UTC" },
        { "gateway.timezone=+08:00", "+08:00" },
        { "gateway.timezone=UTC+8", "+08:00" },
        { "gateway.timezone=GMT+05:30", "+05:30" },
        { "gateway.timezone=-5", "-05:00" },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct gw_config *c = NULL;
        struct gw_config_errors errors = { 0 };
        assert_int_equal(gw_config_load(fixture("good.conf"), &good[i].set, 1, &c, &errors), EST_OK);
        assert_string_equal(c->gateway.timezone, good[i].name);
        gw_config_free(c);
    }
    static const char *const bad[] = { "gateway.timezone=Europe/Atlantis", "gateway.timezone=../etc/passwd",
                                       "gateway.timezone=+15:00", "gateway.timezone=" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct gw_config *c = NULL;
        struct gw_config_errors errors = { 0 };
        assert_int_equal(gw_config_load(fixture("good.conf"), &bad[i], 1, &c, &errors), EST_ERR_INVALID);
        assert_int_equal(errors.count, 1);
        assert_non_null(strstr(errors.messages[0], "is not a time zone"));
        gw_config_errors_free(&errors);
    }
}

static void test_backup_keys(void **state)
{
    (void)state;
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load(fixture("good.conf"), NULL, 0, &c, &errors), EST_OK);
    assert_null(c->gateway.backup_dir);
    assert_int_equal(c->gateway.backup_at_min, 3 * 60 + 30);
    assert_int_equal(c->gateway.backup_keep, 14);
    gw_config_free(c);
    const char *sets[] = { "gateway.backup_dir=/srv/backups", "gateway.backup_at=23:05",
                           "gateway.backup_keep=0" };
    assert_int_equal(gw_config_load(fixture("good.conf"), sets, 3, &c, &errors), EST_OK);
    assert_string_equal(c->gateway.backup_dir, "/srv/backups");
    assert_int_equal(c->gateway.backup_at_min, 23 * 60 + 5);
    assert_int_equal(c->gateway.backup_keep, 0);
    gw_config_free(c);
    static const char *const bad[] = { "gateway.backup_at=24:00", "gateway.backup_at=3:30",
                                       "gateway.backup_at=03:30:00" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = NULL;
        assert_int_equal(gw_config_load(fixture("good.conf"), &bad[i], 1, &c, &errors),
                         EST_ERR_INVALID);
        assert_int_equal(errors.count, 1);
        assert_non_null(strstr(errors.messages[0], "must be \"HH:MM\" (site time)"));
        gw_config_errors_free(&errors);
    }
    const char *too_many[] = { "gateway.backup_keep=4000" };
    assert_int_equal(gw_config_load(fixture("good.conf"), too_many, 1, &c, &errors),
                     EST_ERR_INVALID);
    gw_config_errors_free(&errors);
}

/* --- meters CSV --- */

static void test_csv_in_config(void **state)
{
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(fixture("csv_site.conf"), NULL, 0, &c, &errors);
    dump(&errors);
    assert_int_equal(e, EST_OK);
    assert_int_equal(c->nmeters, 4);
    const struct gw_meter_config *w = &c->meters[gw_config_meter_index(c, "W-1-102")];
    assert_int_equal(w->parent, gw_config_meter_index(c, "W-1"));
    assert_true(w->valve);
    assert_int_equal(w->kind, DRV_KIND_WATER);
    assert_string_equal(w->file, fixture("meters_good.csv"));
    assert_int_equal(w->line, 2);
    const struct gw_meter_config *m = &c->meters[gw_config_meter_index(c, "E-1-102")];
    assert_string_equal(m->location, "Room 102, \"east\" side");
    assert_int_equal(m->options.word_order, DRV_ORDER_CDAB);
    assert_int_equal(m->options.function, 4);
    assert_int_equal(m->poll_interval_ms, 2000);
    assert_true(m->rated_power_w == 8800.0);
    m = &c->meters[gw_config_meter_index(c, "E-LIGHT")];
    assert_string_equal(m->location, "stairwell\nlighting");
    assert_int_equal(m->category, GW_CAT_PUBLIC_LIGHTING);
    assert_int_equal(m->line, 4);
    /* file names are stored once: the CSV's rows share one, as do the
     * entries of the @include'd base.conf */
    assert_ptr_equal(m->file, w->file);
    assert_string_equal(c->meters[gw_config_meter_index(c, "W-1")].file, fixture("csv_site.conf"));
    assert_string_equal(c->units[0].file, fixture("base.conf"));
    assert_ptr_equal(c->units[0].file, c->buses[0].file);
    assert_int_equal(c->nfile_names, 3);
    gw_config_free(c);
    gw_config_errors_free(&errors);
}

static struct gw_config *load_good(void)
{
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load(fixture("good.conf"), NULL, 0, &c, &errors), EST_OK);
    return c;
}

/* A meter without a building of its own takes its unit's (the same string). */
static void test_meter_building_from_unit(void **state)
{
    struct gw_config *c = load_good();
    const struct gw_meter_config *m = &c->meters[gw_config_meter_index(c, "W-1-101")];
    assert_int_equal(m->unit, gw_config_unit_index(c, "1-101"));
    assert_string_equal(m->building, "1");
    assert_true(m->building_from_unit);
    assert_ptr_equal(m->building, c->units[m->unit].building);
    gw_config_clear_meters(c);
    assert_null(c->meters);
    assert_int_equal(c->nmeters, 0);
    assert_string_equal(c->units[0].building, "1");
    gw_config_free(c);
}

/* Meters on DL/T 645 and CJ/T 188 buses: addressed by their printed
 * address (wire bytes low first), buses at 2400 8E1 unless configured;
 * the CSV import takes an address column. */
static void test_national_buses(void **state)
{
    (void)state;
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load(fixture("cn_good.conf"), NULL, 0, &c, &errors), EST_OK);
    assert_int_equal(c->buses[0].protocol, DRV_PROTO_DLT645);
    assert_int_equal(c->buses[0].baud, 2400);
    assert_int_equal(c->buses[0].parity, 'E');
    assert_int_equal(c->buses[1].protocol, DRV_PROTO_CJT188);
    assert_int_equal(c->buses[1].baud, 9600);
    assert_int_equal(c->buses[1].parity, 'N');
    static const uint8_t e1[] = { 0x78, 0x56, 0x34, 0x12, 0x00, 0x00 };
    assert_memory_equal(c->meters[0].wire_address, e1, sizeof e1);
    assert_string_equal(c->meters[0].address, "000012345678");
    assert_int_equal(c->meters[0].slave, 0);
    static const uint8_t w1[] = { 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x10 };
    assert_memory_equal(c->meters[1].wire_address, w1, sizeof w1);
    assert_true(c->meters[1].valve);
    assert_int_equal(gw_config_load_meters_csv(c, fixture("cn_meters.csv"), &errors), EST_OK);
    dump(&errors);
    assert_int_equal(c->nmeters, 4);
    assert_string_equal(c->meters[3].address, "10000000000202");
    assert_int_equal(c->meters[3].wire_address[0], 0x02);
    /* again: the addresses are taken now */
    assert_int_equal(gw_config_load_meters_csv(c, fixture("cn_meters.csv"), &errors),
                     EST_ERR_INVALID);
    assert_int_equal(c->nmeters, 4);
    gw_config_errors_free(&errors);
    gw_config_free(c);
}

static void test_csv_import_appends(void **state)
{
    struct gw_config *c = load_good();
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load_meters_csv(c, fixture("meters_good.csv"), &errors), EST_OK);
    dump(&errors);
    assert_int_equal(c->nmeters, 6);
    assert_int_equal(c->meters[3].parent, 0);
    /* the same rows again: every id is now a duplicate, nothing appended */
    assert_int_equal(gw_config_load_meters_csv(c, fixture("meters_good.csv"), &errors),
                     EST_ERR_INVALID);
    assert_int_equal(c->nmeters, 6);
    assert_true(errors.count >= 3);
    gw_config_errors_free(&errors);
    gw_config_free(c);
}

static void test_csv_bad_rows(void **state)
{
    struct gw_config *c = load_good();
    struct gw_config_errors errors = { 0 };
    const char *csv = fixture("meters_bad.csv");
    assert_int_equal(gw_config_load_meters_csv(c, csv, &errors), EST_ERR_INVALID);
    dump(&errors);
    assert_int_equal(c->nmeters, 3); /* the good row 2 was not appended */
    assert_int_equal(errors.count, 2);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:3: slave: 300 is out of range 1..247", csv);
    assert_string_equal(errors.messages[0], expected);
    snprintf(expected, sizeof expected, "%s:4: bus: no bus named 'bus_q' in buses", csv);
    assert_string_equal(errors.messages[1], expected);
    gw_config_errors_free(&errors);
    gw_config_free(c);
}

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *temp_csv(const char *text, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_gw_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_csv_overlong_field(void **state)
{
    size_t n = 100000;
    char *text = malloc(n + 200);
    assert_non_null(text);
    int head = snprintf(text, 200, "id,bus,slave,driver,category,location\n"
                                   "W-5,bus_a,9,xintai-water,unit,ok\n"
                                   "W-6,bus_a,10,xintai-water,unit,");
    memset(text + head, 'x', n);
    memcpy(text + head + n, "\n", 2);
    const char *csv = temp_csv(text, strlen(text));
    free(text);

    struct gw_config *c = load_good();
    struct gw_config_errors errors = { 0 };
    assert_int_equal(gw_config_load_meters_csv(c, csv, &errors), EST_ERR_INVALID);
    dump(&errors);
    assert_int_equal(c->nmeters, 3);
    assert_int_equal(errors.count, 1);
    char expected[256];
    snprintf(expected, sizeof expected, "%s:3: field too long", csv);
    assert_string_equal(errors.messages[0], expected);
    unlink(csv);
    gw_config_errors_free(&errors);
    gw_config_free(c);
}

static void test_csv_malformed(void **state)
{
    static const struct { const char *text; const char *message; } cases[] = {
        { "id,bus,slave,driver,category\nW-5,bus_a,9,\"xintai-water,unit\n", "2: unterminated quoted field" },
        { "id,bus,slave,driver,category\nW-5,bus_a,9,xin\"tai,unit\n", "2: quote inside an unquoted field" },
        { "id,bus,slave,driver,category\nW-5,bus_a,9\n", "2: 3 fields but the header names 5 columns" },
        { "id,bus,colour\n", "1: unknown column 'colour'" },
        { "", " empty: the first row must name the columns" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *csv = temp_csv(cases[i].text, strlen(cases[i].text));
        struct gw_config *c = load_good();
        struct gw_config_errors errors = { 0 };
        assert_int_equal(gw_config_load_meters_csv(c, csv, &errors), EST_ERR_INVALID);
        dump(&errors);
        char expected[256];
        snprintf(expected, sizeof expected, "%s:%s", csv, cases[i].message);
        assert_true(errors.count >= 1);
        assert_string_equal(errors.messages[0], expected);
        assert_int_equal(c->nmeters, 3);
        unlink(csv);
        gw_config_errors_free(&errors);
        gw_config_free(c);
    }
}

/* --- the CSV reader on its own --- */

static void test_csv_reader(void **state)
{
    static const char data[] = "\xEF\xBB\xBF" "a,\"b\"\"c\",\r\n\r\n\"x\ny\",z\n,";
    struct csv_reader *r;
    struct csv_record rec;
    assert_int_equal(csv_reader_new(data, sizeof data - 1, 16, 8, &r), EST_OK);
    assert_int_equal(csv_reader_next(r, &rec), EST_OK);
    assert_int_equal(rec.line, 1);
    assert_int_equal(rec.nfields, 3);
    assert_string_equal(rec.fields[0], "a");
    assert_string_equal(rec.fields[1], "b\"c");
    assert_string_equal(rec.fields[2], "");
    assert_int_equal(csv_reader_next(r, &rec), EST_OK);
    assert_int_equal(rec.line, 3);
    assert_int_equal(rec.nfields, 2);
    assert_string_equal(rec.fields[0], "x\ny");
    assert_int_equal(csv_reader_next(r, &rec), EST_OK);
    assert_int_equal(rec.line, 5);
    assert_int_equal(rec.nfields, 2);
    assert_int_equal(csv_reader_next(r, &rec), EST_ERR_NOTFOUND);
    csv_reader_free(r);

    static const char wide[] = "1,2,3,4,5\n";
    assert_int_equal(csv_reader_new(wide, sizeof wide - 1, 16, 4, &r), EST_OK);
    assert_int_equal(csv_reader_next(r, &rec), EST_ERR_INVALID);
    assert_string_equal(csv_reader_error(r), "too many fields");
    assert_int_equal(csv_reader_next(r, &rec), EST_ERR_INVALID);
    csv_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_config_loads),
        cmocka_unit_test(test_reference_config_loads),
        cmocka_unit_test(test_bad_fixtures),
        cmocka_unit_test(test_rtu_over_tcp_bus_loads),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_timezone_key),
        cmocka_unit_test(test_backup_keys),
        cmocka_unit_test(test_csv_in_config),
        cmocka_unit_test(test_meter_building_from_unit),
        cmocka_unit_test(test_national_buses),
        cmocka_unit_test(test_csv_import_appends),
        cmocka_unit_test(test_csv_bad_rows),
        cmocka_unit_test(test_csv_overlong_field),
        cmocka_unit_test(test_csv_malformed),
        cmocka_unit_test(test_csv_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
