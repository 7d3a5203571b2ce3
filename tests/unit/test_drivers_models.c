/* test_drivers_models.c - device model files: every shipped file loads, the
 * loader's errors (FILE:LINE: message) for broken ones, site directories
 * shadowing shipped models, and datasheet register vectors for the models
 * added as files (SDM72D-M-2, ADL400, TUF-2000M) decoded through the plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers.h"

static const char *const shipped_names[] = {"adl400", "cjt188_cold_water", "dds238",
                                            "ddsu666", "dlt645_1997_1p", "dlt645_2007_1p",
                                            "dtsu666", "notifier-gw", "sdm120", "sdm630",
                                            "sdm72", "tuf2000m", "xintai-water"};
#define NSHIPPED (sizeof shipped_names / sizeof shipped_names[0])

/* A model's text with the identity every test file shares. */
#define IDENTITY "name = \"t\"; vendor = \"V\"; model = \"M\"; description = \"d\";\n" \
                 "kind = \"electricity\"; protocol = \"modbus\";\n"

/* Parses text and returns its errors (NULL when it loaded). */
static char *parse_errors(const char *text)
{
    struct drv_model *model = NULL;
    char *errors = NULL;
    est_err err = drv_model_parse(text, strlen(text), "t.conf", &model, &errors);
    if (err == EST_OK) {
        assert_non_null(model);
        assert_null(errors);
        drv_model_free(model);
        return NULL;
    }
    assert_null(model);
    assert_non_null(errors);
    return errors;
}

static void assert_error(const char *text, const char *expected)
{
    char *errors = parse_errors(text);
    assert_non_null(errors);
    if (strstr(errors, expected) == NULL)
        fail_msg("expected \"%s\" in:\n%s", expected, errors);
    free(errors);
}

static void test_every_shipped_model_loads(void **state)
{
    (void)state;
    assert_null(drv_models_shipped_errors());
    assert_non_null(drv_models_shipped_dir());
    assert_int_equal(drv_model_count(), NSHIPPED);
    for (size_t i = 0; i < NSHIPPED; i++) {
        const struct drv_model *m = drv_model_find(shipped_names[i]);
        assert_non_null(m);
        assert_string_equal(m->name, shipped_names[i]);
        assert_non_null(m->vendor);
        assert_non_null(m->file);
        /* The registry's copy is the file's, re-read here. */
        struct drv_model *again = NULL;
        char *errors = NULL;
        assert_int_equal(drv_model_load_file(m->file, &again, &errors), EST_OK);
        assert_null(errors);
        assert_int_equal(again->npoints, m->npoints);
        for (size_t p = 0; p < m->npoints; p++) {
            assert_int_equal(again->points[p].quantity, m->points[p].quantity);
            assert_int_equal(again->points[p].address, m->points[p].address);
        }
        drv_model_free(again);
    }
}

static void test_serial_point_only_where_the_model_has_one(void **state)
{
    (void)state;
    static const char *const with[] = {"sdm120", "sdm630", "sdm72"};
    /* DDS238-2 and Xintai datasheets give no serial number register */
    static const char *const without[] = {"ddsu666", "dtsu666", "adl400", "tuf2000m", "dds238",
                                          "xintai-water"};
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++) {
        const struct drv_model *m = drv_model_find(with[i]);
        const struct drv_point *last = &m->points[m->npoints - 1];
        assert_int_equal(last->quantity, DRV_Q_SERIAL);
        assert_true(last->slow);
        assert_int_equal(m->slow_every, 60);
    }
    for (size_t i = 0; i < sizeof without / sizeof without[0]; i++) {
        const struct drv_model *m = drv_model_find(without[i]);
        for (size_t p = 0; p < m->npoints; p++)
            assert_int_not_equal(m->points[p].quantity, DRV_Q_SERIAL);
    }
}

static void test_valid_minimal_model(void **state)
{
    (void)state;
    const char *text = IDENTITY
        "points = ( { quantity = \"voltage_v\"; function = 3; address = 10; type = \"uint16\";"
        " scale = 0.1; } );\n";
    struct drv_model *m = NULL;
    assert_int_equal(drv_model_parse(text, strlen(text), "t.conf", &m, NULL), EST_OK);
    assert_int_equal(m->npoints, 1);
    assert_int_equal(m->max_read_regs, DRV_MAX_READ_REGS);
    assert_int_equal(m->default_baud, 9600);
    assert_int_equal(m->points[0].order, DRV_ORDER_ABCD);
    assert_float_equal(m->points[0].scale, 0.1, 0);
    drv_model_free(m);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    assert_error(IDENTITY "points = (\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 0; type = \"float64\"; }\n);\n",
                 "t.conf:4: voltage_v: type 'float64' is not one of uint16, int16, uint32, int32, "
                 "float32");
    assert_error(IDENTITY "points = (\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 0; type = \"float32\"; },\n"
                 "  { quantity = \"current_a\"; function = 3; address = 1; type = \"uint16\"; }\n);\n",
                 "t.conf:5: current_a overlaps voltage_v (line 4) at register 0x0001");
    assert_error(IDENTITY "points = (\n"
                 "  { quantity = \"volts\"; function = 3; address = 0; type = \"uint16\"; }\n);\n",
                 "t.conf:4: point: 'volts' is not a quantity name");
    assert_error(IDENTITY "limits = { max_read_registers = 1; };\npoints = (\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 0; type = \"float32\"; }\n);\n",
                 "t.conf:5: voltage_v: reading 2 registers is over the model's max_read_registers 1");
    assert_error(IDENTITY "limits = {\n  max_read_registers = 200;\n};\n"
                 "points = ( { quantity = \"voltage_v\"; function = 3; address = 0; type = \"uint16\"; } );\n",
                 "t.conf:4: limits: max_read_registers 200 is over the Modbus limit of 125");
    assert_error(IDENTITY "points = ( { quantity = \"valve\"; function = 3; address = 0; type = \"uint16\"; } );\n"
                 "actions = {\n  valve_open = { address = 0; value = 1; };\n"
                 "  valve_close = { address = 0; value = 2; read_back = \"valve\"; };\n};\n",
                 "t.conf:5: valve_open: an action needs read_back");
    assert_error(IDENTITY "points = ( { quantity = \"voltage_v\"; function = 3; address = 0; type = \"uint16\"; } );\n"
                 "actions = {\n  valve_open = { address = 0; value = 1; read_back = \"valve\"; };\n"
                 "  valve_close = { address = 0; value = 2; read_back = \"valve\"; };\n};\n",
                 "t.conf:5: valve_open: read_back valve is not read by any point");
    assert_error(IDENTITY "points = ( { quantity = \"voltage_v\"; function = 5; address = 0; type = \"uint16\"; } );\n",
                 "t.conf:3: voltage_v: function 5 is outside 3..4");
    assert_error(IDENTITY "points = ( );\n", "a meter model needs at least one point");
    assert_error("name = \"t\";\n", "t.conf:1: model file: vendor is missing");
    assert_error(IDENTITY "protocol2 = 1;\npoints = ( { quantity = \"voltage_v\"; function = 3;"
                 " address = 0; type = \"uint16\"; } );\n",
                 "t.conf:3: model file: unknown key 'protocol2'");
    assert_error("name = \"t\";\nvendor = ;\n", "t.conf:2: syntax error");
    assert_error(IDENTITY "points = (\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 0; type = \"uint16\"; },\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 4; type = \"uint16\"; }\n);\n",
                 "t.conf:5: quantity voltage_v is already read (line 4)");
    assert_error(IDENTITY "points = (\n"
                 "  { quantity = \"voltage_v\"; function = 3; address = 0; type = \"uint16\"; every_n_polls = 10; },\n"
                 "  { quantity = \"current_a\"; function = 3; address = 4; type = \"uint16\"; every_n_polls = 20; }\n);\n",
                 "t.conf:5: current_a: every_n_polls 20 differs from 10 (line 4)");
    assert_error(IDENTITY "points = ( { quantity = \"valve\"; function = 3; address = 0;"
                 " type = \"uint16\"; status = \"nope\"; } );\n",
                 "t.conf:3: valve: no status word named 'nope'");
}

static void test_every_error_is_reported(void **state)
{
    (void)state;
    char *errors = parse_errors(IDENTITY "points = (\n"
                                "  { quantity = \"volts\"; function = 3; address = 0; type = \"uint16\"; },\n"
                                "  { quantity = \"current_a\"; function = 3; address = 0; type = \"x\"; }\n);\n");
    assert_non_null(errors);
    assert_non_null(strstr(errors, "t.conf:4: point: 'volts'"));
    assert_non_null(strstr(errors, "t.conf:5: current_a: type 'x'"));
    free(errors);
}

static void test_fire_panel_rules_are_data(void **state)
{
    (void)state;
    const char *text = "name = \"p\"; vendor = \"V\"; model = \"M\"; description = \"d\";\n"
                       "kind = \"fire_panel\"; protocol = \"modbus\";\n"
                       "fire_panel = { first_address = 100; max_zones = 8; point_bits = (\n"
                       "  { mask = 0x0001; value = 0x0001; state = \"alarm\"; },\n"
                       "  { mask = 0x0002; value = 0x0002; state = \"fault\"; },\n"
                       "  { mask = 0x8000; value = 0x8000; state = \"unprogrammed\"; } ); };\n";
    struct drv_model *m = NULL;
    assert_int_equal(drv_model_parse(text, strlen(text), "p.conf", &m, NULL), EST_OK);
    assert_int_equal(m->panel->first_point_address, 100);
    assert_int_equal(drv_panel_zone_decode(m->panel, 0x0003), DRV_ZONE_ALARM | DRV_ZONE_FAULT);
    assert_int_equal(drv_panel_zone_decode(m->panel, 0x8001), DRV_ZONE_UNPROGRAMMED);
    assert_int_equal(drv_panel_zone_decode(m->panel, 0x0000), 0);
    assert_int_equal(drv_panel_zone_encode(m->panel, DRV_ZONE_FAULT), 0x0002);
    drv_model_free(m);
    /* The shipped NOTIFIER rules give back what they encode. */
    const struct drv_model *notifier = drv_model_find("notifier-gw");
    static const uint8_t states[] = {DRV_ZONE_ALARM, DRV_ZONE_FAULT, DRV_ZONE_DISABLED,
                                     DRV_ZONE_SUPERVISORY, DRV_ZONE_UNPROGRAMMED,
                                     DRV_ZONE_ALARM | DRV_ZONE_FAULT};
    for (size_t i = 0; i < sizeof states; i++)
        assert_int_equal(drv_panel_zone_decode(notifier->panel,
                                               drv_panel_zone_encode(notifier->panel, states[i])),
                         states[i]);
    /* What estate-sim serves: the NOTIFIER words with bit 10 (enabled). */
    assert_int_equal(drv_panel_zone_encode(notifier->panel, 0), 0x0400);
    assert_int_equal(drv_panel_zone_encode(notifier->panel, DRV_ZONE_ALARM), 0x0C10);
    assert_int_equal(drv_panel_zone_encode(notifier->panel, DRV_ZONE_SUPERVISORY), 0x0C30);
    assert_int_equal(drv_panel_zone_encode(notifier->panel, DRV_ZONE_FAULT), 0x2400);
    assert_int_equal(drv_panel_zone_encode(notifier->panel, DRV_ZONE_DISABLED), 0x0200);
    assert_int_equal(drv_panel_zone_encode(notifier->panel, DRV_ZONE_UNPROGRAMMED), 0x00FF);
}

static void test_status_word_encode_decode(void **state)
{
    (void)state;
    const struct drv_model *xintai = drv_model_find("xintai-water");
    const struct drv_point *valve = NULL;
    for (size_t i = 0; i < xintai->npoints; i++)
        if (xintai->points[i].status != NULL)
            valve = &xintai->points[i];
    assert_non_null(valve);
    assert_int_equal(valve->quantity, DRV_Q_VALVE);
    assert_int_equal(xintai->valve->read_back, DRV_Q_VALVE);
    double values[DRV_Q__COUNT] = {0};
    assert_int_equal(drv_status_encode(valve->status, DRV_VALVE_OPEN, values), 0x0001);
    assert_int_equal(drv_status_encode(valve->status, DRV_VALVE_CLOSED, values), 0x0002);
    assert_int_equal(drv_status_encode(valve->status, DRV_VALVE_MOVING, values), 0x0000);
    values[DRV_Q_VALVE_FAULT] = 1.0;
    values[DRV_Q_BATTERY_LOW] = 1.0;
    assert_int_equal(drv_status_encode(valve->status, DRV_VALVE_CLOSED, values), 0x000E);
}

/* --- site directories --- */

static char *make_dir(void)
{
    char *dir = strdup("/tmp/test_drivers_models_XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
    free(dir);
}

static const char *const site_sdm120 =
    "name = \"sdm120\"; vendor = \"Site\"; model = \"SDM120 rewired\"; description = \"site\";\n"
    "kind = \"electricity\"; protocol = \"modbus\";\n"
    "points = ( { quantity = \"voltage_v\"; function = 3; address = 7; type = \"uint16\"; } );\n";

static const char *const site_new =
    "name = \"site-meter\"; vendor = \"Site\"; model = \"X\"; description = \"site\";\n"
    "kind = \"water\"; protocol = \"modbus\";\n"
    "points = ( { quantity = \"volume_m3\"; function = 3; address = 0; type = \"uint32\";"
    " scale = 0.001; } );\n";

static void test_broken_site_dir_adds_nothing(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "good.conf", site_new);
    write_file(dir, "bad.conf", IDENTITY "points = ( { quantity = \"x\"; } );\n");
    char *errors = NULL;
    assert_int_equal(drv_models_add_dir(dir, &errors), EST_ERR_INVALID);
    assert_non_null(errors);
    assert_non_null(strstr(errors, "/bad.conf:3: point: 'x' is not a quantity name"));
    free(errors);
    assert_null(drv_model_find("site-meter"));
    assert_int_equal(drv_model_count(), NSHIPPED);
    assert_int_equal(drv_models_add_dir("/nonexistent/models", &errors), EST_ERR_INVALID);
    assert_non_null(strstr(errors, "/nonexistent/models:1: cannot open the models directory"));
    free(errors);
    remove_dir(dir);
}

#define NATIONAL(kind, protocol) "name = \"t\"; vendor = \"V\"; model = \"M\"; " \
    "description = \"d\";\nkind = \"" kind "\"; protocol = \"" protocol "\";\n"

/* DL/T 645 and CJ/T 188 models: data items and 901F fields, not registers. */
static void test_national_models(void **state)
{
    (void)state;
    const struct drv_model *dl = drv_model_find("dlt645_2007_1p");
    assert_non_null(dl);
    assert_int_equal(dl->protocol, DRV_PROTO_DLT645);
    assert_int_equal(dl->dlt645_version, 2007);
    assert_int_equal(dl->default_baud, 2400);
    assert_int_equal(dl->default_parity, 'E');
    const struct drv_point *power = NULL;
    for (size_t i = 0; i < dl->npoints; i++)
        if (dl->points[i].quantity == DRV_Q_POWER_W)
            power = &dl->points[i];
    assert_non_null(power);
    assert_int_equal(power->di, 0x02030000);
    assert_int_equal(power->nbytes, 3);
    assert_int_equal(power->decimals, 4);
    assert_true(power->sign_bit);
    assert_false(power->slow);
    assert_int_equal(dl->slow_every, 10);
    const struct drv_model *cj = drv_model_find("cjt188_cold_water");
    assert_non_null(cj);
    assert_int_equal(cj->protocol, DRV_PROTO_CJT188);
    assert_int_equal(cj->cjt188_meter_type, 0x10);
    assert_non_null(cj->valve);
    assert_int_equal(cj->valve->open_value, 0x55);
    assert_int_equal(cj->valve->close_value, 0x99);
    assert_int_equal(cj->valve->read_back, DRV_Q_VALVE);
    assert_int_equal(drv_model_find("dlt645_1997_1p")->dlt645_version, 1997);

    assert_error(NATIONAL("electricity", "dlt645")
                 "points = ({ quantity = \"power_w\"; di = 0x02030000; digits = 5; });\n",
                 "t.conf:3: power_w: digits must be even");
    assert_error(NATIONAL("electricity", "dlt645")
                 "points = ({ quantity = \"power_w\"; function = 3; di = 1; digits = 4; });\n",
                 "t.conf:3: point: unknown key 'function'");
    assert_error(NATIONAL("water", "cjt188")
                 "points = ({ quantity = \"volume_m3\"; field = \"flow\"; });\n",
                 "t.conf:3: volume_m3: field");
    assert_error(NATIONAL("water", "cjt188")
                 "points = ({ quantity = \"valve\"; field = \"valve\"; });\n"
                 "actions = { valve_open = { address = 1; value = 0x55; read_back = \"valve\"; };\n"
                 "  valve_close = { value = 0x99; read_back = \"valve\"; }; };\n",
                 "valve_open: a CJ/T 188 valve command has no register address");
    assert_error(NATIONAL("electricity", "dlt645") "dlt645_version = 2001;\n"
                 "points = ({ quantity = \"power_w\"; di = 1; digits = 4; });\n",
                 "dlt645_version is 2007 or 1997");
    assert_error(IDENTITY "cjt188_meter_type = 0x10;\n"
                 "points = ({ quantity = \"power_w\"; function = 3; address = 0; type = \"uint16\"; });\n",
                 "cjt188_meter_type is for protocol \"cjt188\" only");
    assert_null(parse_errors(NATIONAL("electricity", "dlt645") "dlt645_version = 1997;\n"
                             "points = ({ quantity = \"energy_import_kwh\"; di = 0x9010; "
                             "digits = 8; decimals = 2; });\n"));
}

/* Runs last: the registry keeps site directories for the process. */
static void test_site_dir_comes_first(void **state)
{
    (void)state;
    const struct drv_model *shipped = drv_model_find("sdm120");
    char *dir = make_dir();
    write_file(dir, "sdm120.conf", site_sdm120);
    write_file(dir, "site-meter.conf", site_new);
    write_file(dir, "notes.txt", "not a model");
    char *errors = NULL;
    assert_int_equal(drv_models_add_dir(dir, &errors), EST_OK);
    assert_null(errors);
    assert_int_equal(drv_models_add_dir(dir, &errors), EST_OK); /* once only */
    const struct drv_model *site = drv_model_find("sdm120");
    assert_ptr_not_equal(site, shipped);
    assert_string_equal(site->vendor, "Site");
    assert_non_null(drv_model_find("site-meter"));
    assert_int_equal(drv_model_count(), NSHIPPED + 1);
    assert_string_equal(shipped->vendor, "Eastron"); /* still valid */
    remove_dir(dir);
}

/* --- datasheet vectors --- */

struct wire_register {
    uint8_t function;
    uint16_t address;
    uint16_t value;
};

/* Serves a model's plan from the registers given (others read 0), decodes
 * every request as read, slow ones included. */
static void decode_registers(const char *model_name, const struct wire_register *wire, size_t n,
                             struct drv_reading *out)
{
    const struct drv_model *model = drv_model_find(model_name);
    assert_non_null(model);
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(model, NULL, &plan), EST_OK);
    size_t nregs = drv_plan_register_count(plan), nreq = drv_plan_request_count(plan);
    uint16_t *regs = calloc(nregs + 1, sizeof *regs);
    bool *ok = calloc(nreq + 1, sizeof *ok);
    assert_non_null(regs);
    assert_non_null(ok);
    size_t served = 0;
    for (size_t r = 0; r < nreq; r++) {
        const struct drv_request *req = drv_plan_request(plan, r);
        assert_true(req->count <= model->max_read_regs);
        ok[r] = true;
        for (size_t k = 0; k < n; k++) {
            if (wire[k].function == req->function && wire[k].address >= req->address &&
                wire[k].address < req->address + req->count) {
                regs[req->reg_offset + (wire[k].address - req->address)] = wire[k].value;
                served++;
            }
        }
    }
    assert_int_equal(served, n); /* every datasheet register is in some request */
    unsigned bad = 9;
    assert_int_equal(drv_decode(plan, regs, ok, out, &bad), EST_OK);
    assert_int_equal(bad, 0);
    free(regs);
    free(ok);
    drv_plan_free(plan);
}

static void assert_value(const struct drv_reading *r, enum drv_quantity q, double expected)
{
    if (!(r->present & (UINT64_C(1) << q)))
        fail_msg("%s absent", drv_quantity_name(q));
    if (r->value[q] != expected)
        fail_msg("%s: %.17g, expected %.17g", drv_quantity_name(q), r->value[q], expected);
}

/* SDM72D-M-2: float32 ABCD in input registers (230.1 V = 0x4366199A). */
static void test_sdm72_datasheet_vector(void **state)
{
    (void)state;
    static const struct wire_register wire[] = {
        {4, 0x0000, 0x4366}, {4, 0x0001, 0x199A}, /* L1 230.1 V */
        {4, 0x0002, 0x4365}, {4, 0x0003, 0x999A}, /* L2 229.6 V */
        {4, 0x0004, 0x4367}, {4, 0x0005, 0x3333}, /* L3 231.2 V */
        {4, 0x0006, 0x4120}, {4, 0x0007, 0x0000}, /* I1 10 A */
        {4, 0x000C, 0x4510}, {4, 0x000D, 0x0000}, /* P1 2304 W */
        {4, 0x0034, 0x45D8}, {4, 0x0035, 0x0000}, /* total 6912 W */
        {4, 0x0046, 0x4248}, {4, 0x0047, 0x0000}, /* 50 Hz */
        {4, 0x0048, 0x449A}, {4, 0x0049, 0x5000}, /* import 1234.5 kWh */
        {4, 0x004A, 0x3F80}, {4, 0x004B, 0x0000}, /* export 1 kWh */
        {3, 0xFC00, 0x00BC}, {3, 0xFC01, 0x614E}, /* serial 12345678 */
    };
    struct drv_reading r;
    decode_registers("sdm72", wire, sizeof wire / sizeof wire[0], &r);
    assert_value(&r, DRV_Q_VOLTAGE_L1_V, 230.1);
    assert_value(&r, DRV_Q_VOLTAGE_L2_V, 229.6);
    assert_value(&r, DRV_Q_VOLTAGE_L3_V, 231.2);
    assert_value(&r, DRV_Q_CURRENT_L1_A, 10.0);
    assert_value(&r, DRV_Q_POWER_L1_W, 2304.0);
    assert_value(&r, DRV_Q_POWER_W, 6912.0);
    assert_value(&r, DRV_Q_FREQUENCY_HZ, 50.0);
    assert_value(&r, DRV_Q_ENERGY_IMPORT_KWH, 1234.5);
    assert_value(&r, DRV_Q_ENERGY_EXPORT_KWH, 1.0);
    assert_value(&r, DRV_Q_SERIAL, 12345678.0);
    /* 30 parameters per request at most. */
    assert_int_equal(drv_model_find("sdm72")->max_read_regs, 60);
}

/* ADL400: big-endian integers in holding registers; energy in 0.01 kWh,
 * voltage 0.1 V, current 0.01 A, power int32 W (negative = export). */
static void test_adl400_datasheet_vector(void **state)
{
    (void)state;
    static const struct wire_register wire[] = {
        {3, 0x0000, 0x0001}, {3, 0x0001, 0xE240}, /* total 1234.56 kWh */
        {3, 0x000A, 0x0001}, {3, 0x000B, 0xD4C0}, /* import 1200.00 kWh */
        {3, 0x0014, 0x0000}, {3, 0x0015, 0x0D80}, /* export 34.56 kWh */
        {3, 0x0061, 2201},   {3, 0x0062, 2199},   {3, 0x0063, 2305}, /* V */
        {3, 0x0064, 1600},   {3, 0x0065, 1000},   {3, 0x0066, 500},  /* A */
        {3, 0x0077, 5002},                                          /* 50.02 Hz */
        {3, 0x0164, 0x0000}, {3, 0x0165, 0x0E60}, /* Pa 3680 W */
        {3, 0x0166, 0xFFFF}, {3, 0x0167, 0xF1A0}, /* Pb -3680 W */
        {3, 0x0168, 0x0000}, {3, 0x0169, 0x01F4}, /* Pc 500 W */
        {3, 0x016A, 0x0000}, {3, 0x016B, 0x01F4}, /* total 500 W */
    };
    struct drv_reading r;
    decode_registers("adl400", wire, sizeof wire / sizeof wire[0], &r);
    assert_value(&r, DRV_Q_ENERGY_TOTAL_KWH, 1234.56);
    assert_value(&r, DRV_Q_ENERGY_IMPORT_KWH, 1200.0);
    assert_value(&r, DRV_Q_ENERGY_EXPORT_KWH, 34.56);
    assert_value(&r, DRV_Q_VOLTAGE_L1_V, 220.1);
    assert_value(&r, DRV_Q_VOLTAGE_L2_V, 219.9);
    assert_value(&r, DRV_Q_VOLTAGE_L3_V, 230.5);
    assert_value(&r, DRV_Q_CURRENT_L1_A, 16.0);
    assert_value(&r, DRV_Q_CURRENT_L2_A, 10.0);
    assert_value(&r, DRV_Q_CURRENT_L3_A, 5.0);
    assert_value(&r, DRV_Q_FREQUENCY_HZ, 50.02);
    assert_value(&r, DRV_Q_POWER_L1_W, 3680.0);
    assert_value(&r, DRV_Q_POWER_L2_W, -3680.0);
    assert_value(&r, DRV_Q_POWER_L3_W, 500.0);
    assert_value(&r, DRV_Q_POWER_W, 500.0);
    assert_float_equal(drv_model_find("adl400")->counter_wrap, 4294967296.0 * 0.01, 0);
}

/* TUF-2000M: REG1-2 flow REAL4 byte-swapped (BADC), REG9-10 and REG13-14
 * accumulators LONG low word first (CDAB); wire = REG - 1. */
static void test_tuf2000m_datasheet_vector(void **state)
{
    (void)state;
    static const struct wire_register wire[] = {
        {3, 0x0000, 0x9D3F}, {3, 0x0001, 0xB6F3}, /* REG1-2: 1.234 m3/h = 0x3F9DF3B6 */
        {3, 0x0008, 0x1170}, {3, 0x0009, 0x0001}, /* REG9-10: 70000 m3 */
        {3, 0x000A, 0x3F00}, {3, 0x000B, 0x0000}, /* REG11-12: fraction, not read as such */
        {3, 0x000C, 0x0005}, {3, 0x000D, 0x0000}, /* REG13-14: 5 m3 */
    };
    struct drv_reading r;
    decode_registers("tuf2000m", wire, sizeof wire / sizeof wire[0], &r);
    assert_value(&r, DRV_Q_FLOW_M3H, 1.234);
    assert_value(&r, DRV_Q_VOLUME_M3, 70000.0);
    assert_value(&r, DRV_Q_REVERSE_VOLUME_M3, 5.0);
    const struct drv_model *m = drv_model_find("tuf2000m");
    assert_int_equal(m->kind, DRV_KIND_WATER);
    assert_null(m->valve);
    /* One request covers REG1..REG14. */
    struct drv_plan *plan = NULL;
    assert_int_equal(drv_plan_build(m, NULL, &plan), EST_OK);
    assert_int_equal(drv_plan_request_count(plan), 1);
    assert_int_equal(drv_plan_request(plan, 0)->count, 14);
    drv_plan_free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shipped_model_loads),
        cmocka_unit_test(test_serial_point_only_where_the_model_has_one),
        cmocka_unit_test(test_valid_minimal_model),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_every_error_is_reported),
        cmocka_unit_test(test_fire_panel_rules_are_data),
        cmocka_unit_test(test_status_word_encode_decode),
        cmocka_unit_test(test_sdm72_datasheet_vector),
        cmocka_unit_test(test_adl400_datasheet_vector),
        cmocka_unit_test(test_tuf2000m_datasheet_vector),
        cmocka_unit_test(test_national_models),
        cmocka_unit_test(test_broken_site_dir_adds_nothing),
        cmocka_unit_test(test_site_dir_comes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
