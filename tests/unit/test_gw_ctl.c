/* test_gw_ctl.c - estate-ctl (gateway/ctl/) run as a program against a
 * store in a temporary directory, with this test playing the daemon's part
 * where a verb goes through the request queue; plus the consumption report
 * (gateway/report.c) on hand-made snapshots.
 * Covers: usage and config errors (exit 2), scan's usage errors, patrol log
 * --csv keeping an entry's detail, patrol verify naming an edited,
 * deleted or inserted entry (exit 1), a work-order action and a refusal
 * through the queue, "gateway not running" (exit 1), an open incident
 * shown as "active" (text and --json), inventory import
 * (all or nothing, FILE:LINE), an inventory export that imports again as
 * it is, DL/T 645 and CJ/T 188 meters imported and listed by address, and
 * report figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "office.h"
#include "office_stub.h"
#include "views.h"
#include "workorders.h"

static int64_t fake_now_ms;

struct fixture {
    char dir[64];
    char conf[PATH_MAX];
    char data_set[128];
    struct gw_config *config;
    struct office_stub host;
};

static char ctl_path[PATH_MAX];

/* ---- running estate-ctl ---- */

struct run {
    int status;        /* exit code, -1 if it did not exit */
    char out[65536];
    char err[8192];
};

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

static pid_t start_ctl(struct fixture *f, const char *const *args, size_t nargs)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char out[128], err[128];
        snprintf(out, sizeof out, "%s/ctl.out", f->dir);
        snprintf(err, sizeof err, "%s/ctl.err", f->dir);
        if (freopen(out, "wb", stdout) == NULL || freopen(err, "wb", stderr) == NULL)
            _exit(99);
        const char *argv[32] = {ctl_path, "-c", f->conf, "--set", f->data_set};
        size_t n = 5;
        for (size_t i = 0; i < nargs && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(ctl_path, (char *const *)argv);
        _exit(98);
    }
    return pid;
}

static void finish_ctl(struct fixture *f, pid_t pid, struct run *r)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    char path[128];
    snprintf(path, sizeof path, "%s/ctl.out", f->dir);
    read_file(path, r->out, sizeof r->out);
    snprintf(path, sizeof path, "%s/ctl.err", f->dir);
    read_file(path, r->err, sizeof r->err);
}

static void run_ctl(struct fixture *f, struct run *r, const char *const *args, size_t nargs)
{
    finish_ctl(f, start_ctl(f, args, nargs), r);
}

#define RUN(f, r, ...)                                                                             \
    do {                                                                                           \
        const char *args_[] = {__VA_ARGS__};                                                       \
        run_ctl(f, r, args_, sizeof args_ / sizeof args_[0]);                                      \
    } while (0)

/* ---- the daemon's part ---- */

static bool answer_request(void *ctx, const struct gw_store_ctl_request *req)
{
    struct office_stub *host = ctx;
    cJSON *args = cJSON_Parse(req->args_json ? req->args_json : "{}");
    struct gw_actor actor;
    char name[128];
    cJSON *result = gw_commands_ctl_actor(host->office, args, &actor, name, sizeof name);
    if (result == NULL)
        result = gw_commands_handle(host->office, req->verb, args, &actor);
    char *json = cJSON_PrintUnformatted(result);
    gw_store_ctl_finish(host->store, req->id, json, fake_now_ms);
    free(json);
    cJSON_Delete(result);
    cJSON_Delete(args);
    return true;
}

/* Serves the request queue until the estate-ctl child exits. */
static void serve_until_exit(struct fixture *f, pid_t pid, struct run *r)
{
    for (int i = 0; i < 200; i++) {
        assert_int_equal(gw_store_ctl_take_pending(f->host.store, answer_request, &f->host), EST_OK);
        int status = 0;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            char path[128];
            snprintf(path, sizeof path, "%s/ctl.out", f->dir);
            read_file(path, r->out, sizeof r->out);
            snprintf(path, sizeof path, "%s/ctl.err", f->dir);
            read_file(path, r->err, sizeof r->err);
            return;
        }
        usleep(50000);
    }
    fail_msg("estate-ctl did not finish");
}

/* ---- setup ---- */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_ctl.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    const char *src = getenv("ESTATE_SOURCE_DIR");
    snprintf(f->conf, sizeof f->conf, "%s/etc/demo/estate-gw.conf", src ? src : ESTATE_SOURCE_DIR);
    snprintf(f->data_set, sizeof f->data_set, "gateway.data_dir=%s", f->dir);
    const char *overrides[] = {f->data_set};
    struct gw_config_errors errors = {0};
    assert_int_equal(gw_config_load(f->conf, overrides, 1, &f->config, &errors), EST_OK);
    fake_now_ms = est_now_ms();
    f->host.config = f->config;
    f->host.clock_ms = &fake_now_ms;
    char err[256];
    assert_int_equal(gw_store_open(f->dir, false, &f->host.store, err, sizeof err), EST_OK);
    assert_int_equal(gw_store_sync_inventory(f->host.store, f->config, fake_now_ms, NULL), EST_OK);
    assert_int_equal(office_stub_start(&f->host), EST_OK);
    gw_workorders_sla_reset(f->host.office);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    office_stub_stop(&f->host);
    gw_store_close(f->host.store);
    gw_config_free(f->config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void append_entries(struct fixture *f, int n)
{
    for (int i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "round %d: all quiet", i + 1);
        assert_int_equal(office_stub_patrol(&f->host, "checkin", text, 0, 0, "zhang", NULL), EST_OK);
    }
}

/* Runs SQL on the database behind the store's back (the store closed). */
static void tamper(struct fixture *f, const char *sql)
{
    assert_int_equal(gw_store_close(f->host.store), EST_OK);
    f->host.store = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, GW_STORE_DB_FILE);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("tamper: %s", msg);
    sqlite3_close(db);
    char err[256];
    assert_int_equal(gw_store_open(f->dir, false, &f->host.store, err, sizeof err), EST_OK);
    assert_int_equal(office_stub_start(&f->host), EST_OK);
}

/* ---- tests ---- */

static void test_usage_and_config_errors(void **state)
{
    struct fixture *f = *state;
    struct run r;
    RUN(f, &r, "--version");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "estate-ctl"));
    RUN(f, &r, "frobnicate");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown verb"));
    RUN(f, &r, "workorder", "abc", "dispatch");
    assert_int_equal(r.status, 2);
    RUN(f, &r, "readings", "--limit", "0");
    assert_int_equal(r.status, 2);
    RUN(f, &r, "--set", "mqtt.qos_events=7", "incidents");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "qos_events"));
    RUN(f, &r, "incidents");
    assert_int_equal(r.status, 0);
}

/* scan's usage errors, and a port that cannot be opened. */
static void test_scan_usage(void **state)
{
    struct fixture *f = *state;
    struct run r;
    RUN(f, &r, "scan");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "exactly one of --bus"));
    RUN(f, &r, "scan", "--bus", "no_such_bus");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no bus named 'no_such_bus'"));
    RUN(f, &r, "scan", "--device", "/dev/null", "--ids", "0-300");
    assert_int_equal(r.status, 2);
    RUN(f, &r, "scan", "--host", "127.0.0.1", "--try-settings");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "serial line"));
    RUN(f, &r, "scan", "--device", "/nonexistent/tty", "--ids", "1-5");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "cannot open /nonexistent/tty"));
    /* DL/T 645 and CJ/T 188 lines */
    RUN(f, &r, "scan", "--device", "/dev/null", "--protocol", "dl645");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--protocol must be modbus, dlt645 or cjt188"));
    RUN(f, &r, "scan", "--device", "/dev/null", "--protocol", "dlt645", "--addresses",
        "000000000101,12345");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "'12345' is not a 12-digit dlt645 address"));
    RUN(f, &r, "scan", "--device", "/dev/null", "--protocol", "cjt188", "--addresses",
        "000000000101");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "is not a 14-digit cjt188 address"));
    RUN(f, &r, "scan", "--device", "/dev/null", "--protocol", "dlt645", "--read-address",
        "--addresses", "000000000101");
    assert_int_equal(r.status, 2);
    RUN(f, &r, "scan", "--bus", "gw_a", "--protocol", "dlt645");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bus gw_a speaks modbus, not dlt645"));
    RUN(f, &r, "scan", "--device", "/dev/null", "--protocol", "dlt645", "--ids", "1-5");
    assert_int_equal(r.status, 2); /* slave ids mean nothing on these lines */
    RUN(f, &r, "scan", "--device", "/nonexistent/tty", "--protocol", "cjt188");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "cannot open /nonexistent/tty"));
}

static void test_patrol_verify_names_tampered_entry(void **state)
{
    struct fixture *f = *state;
    append_entries(f, 5);
    struct run r;
    RUN(f, &r, "patrol", "verify");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "OK: 5 entries"));
    RUN(f, &r, "patrol", "log", "--csv");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "round 3: all quiet"));
    RUN(f, &r, "patrol", "anchor", "--to", "printed");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "seq 5"));

    /* edit */
    tamper(f, "DROP TRIGGER patrol_no_update; UPDATE patrol SET text = 'round 3: nothing' WHERE seq = 3;");
    RUN(f, &r, "patrol", "verify");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "entry 3"));
}

/* patrol log --csv keeps an entry's detail: the object as compact JSON in
 * its column (CSV-quoted), not an empty cell. */
static void test_patrol_log_csv_keeps_detail(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(office_stub_patrol(&f->host, "checkin", "lobby: door open", 0, 0, "zhang",
                                        "{\"reason\":\"door\",\"count\":2}"),
                     EST_OK);
    struct run r;
    RUN(f, &r, "patrol", "log", "--csv");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "lobby: door open"));
    assert_non_null(strstr(r.out, "\"{\"\"reason\"\":\"\"door\"\",\"\"count\"\":2}\""));
    RUN(f, &r, "patrol", "log", "--json");
    assert_int_equal(r.status, 0);
    cJSON *rows = cJSON_Parse(r.out);
    assert_non_null(rows);
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 0), "detail");
    assert_true(cJSON_IsObject(detail));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(detail, "reason")->valuestring, "door");
    cJSON_Delete(rows);
}

static void test_patrol_verify_names_deleted_and_inserted(void **state)
{
    struct fixture *f = *state;
    append_entries(f, 5);
    struct run r;
    tamper(f, "DROP TRIGGER patrol_no_delete; DELETE FROM patrol WHERE seq = 2;");
    RUN(f, &r, "patrol", "verify");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "entry 2"));

    /* an entry slipped in at the end with a made-up chain link */
    tamper(f, "INSERT INTO patrol SELECT seq + 10, ts_ms, kind, 'forged', incident, workorder, author,"
              " detail_json, prev_hash, hash FROM patrol WHERE seq = 5;");
    RUN(f, &r, "patrol", "verify", "--json");
    assert_int_equal(r.status, 1);
    cJSON *v = cJSON_Parse(r.out);
    assert_non_null(v);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(v, "ok")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(v, "first_bad_seq")->valueint, 2);
    cJSON_Delete(v);
}

static void test_workorder_action_through_the_daemon(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = {.rule = "reverse_energy", .subject_type = "meter",
                                   .subject = "E-1-102", .zone = -1, .severity = "major",
                                   .since_ms = fake_now_ms, .raised_ms = fake_now_ms, .text = "backwards"};
    assert_int_equal(gw_store_incident_open(f->host.store, &in, &in.id, NULL), EST_OK);
    in.open = true;
    gw_workorders_on_incident(f->host.office, &in, RULE_RAISED);

    struct run r;
    /* --user names a gateway user of the users file; its role applies. */
    const char *as_viewer[] = {"--user", "viewer", "workorder", "1", "dispatch", "--assignee", "engineer"};
    serve_until_exit(f, start_ctl(f, as_viewer, 7), &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "role viewer may not workorder dispatch"));
    const char *as_nobody[] = {"--user", "nobody-such", "workorder", "1", "dispatch", "--assignee", "engineer"};
    serve_until_exit(f, start_ctl(f, as_nobody, 7), &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unknown or disabled user"));
    cJSON *o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "open");
    cJSON_Delete(o);

    const char *dispatch[] = {"workorder", "1", "dispatch", "--assignee", "engineer", "--user", "frontdesk"};
    serve_until_exit(f, start_ctl(f, dispatch, 7), &r);
    if (r.status != 0)
        fail_msg("dispatch: %s", r.err);
    assert_non_null(strstr(r.out, "dispatched"));
    o = gw_view_workorder_get(f->host.store, 1, fake_now_ms);
    const cJSON *h = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "history"), 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(h, "who")->valuestring, "frontdesk");
    cJSON_Delete(o);

    const char *verify[] = {"workorder", "1", "verify", "--verifier", "Wang"};
    serve_until_exit(f, start_ctl(f, verify, 5), &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "is dispatched"));

    RUN(f, &r, "workorders", "--json");
    assert_int_equal(r.status, 0);
    cJSON *list = cJSON_Parse(r.out);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "assignee")->valuestring,
                        "engineer");
    cJSON_Delete(list);
    RUN(f, &r, "workorder", "1");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "history:"));

    const char *handover[] = {"handover", "--from", "Zhang", "--to", "Zhou"};
    serve_until_exit(f, start_ctl(f, handover, 5), &r);
    assert_int_equal(r.status, 0);
    /* the demo config keeps the default language, zh-CN */
    assert_non_null(strstr(r.out, "Zhang 交班给 Zhou：未关闭事件 1 起"));
}

static void test_gateway_not_running(void **state)
{
    struct fixture *f = *state;
    struct run r;
    RUN(f, &r, "unit", "1-101", "occupancy", "vacant");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "is estate-gw running"));
}

static void test_incident_state_reads_active(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = {.rule = "reverse_energy", .subject_type = "meter",
                                   .subject = "E-1-102", .zone = -1, .severity = "major",
                                   .since_ms = fake_now_ms, .raised_ms = fake_now_ms, .text = "backwards"};
    int64_t open_id = 0, cleared_id = 0;
    assert_int_equal(gw_store_incident_open(f->host.store, &in, &open_id, NULL), EST_OK);
    in.subject = "E-1-101";
    assert_int_equal(gw_store_incident_open(f->host.store, &in, &cleared_id, NULL), EST_OK);
    assert_int_equal(gw_store_incident_clear(f->host.store, cleared_id, fake_now_ms + 1000), EST_OK);

    /* SPEC: an open incident's state is "active" (state=active, alerts/active/<id>) */
    struct run r;
    RUN(f, &r, "incidents", "--all", "--json");
    assert_int_equal(r.status, 0);
    cJSON *rows = cJSON_Parse(r.out);
    assert_int_equal(cJSON_GetArraySize(rows), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *row = cJSON_GetArrayItem(rows, i);
        int64_t id = (int64_t)cJSON_GetObjectItemCaseSensitive(row, "id")->valuedouble;
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(row, "state")->valuestring,
                            id == open_id ? "active" : "cleared");
    }
    cJSON_Delete(rows);
    RUN(f, &r, "incidents");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, " active "));
    assert_null(strstr(r.out, " open "));
}

static void write_text(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
}

static void test_inventory_import(void **state)
{
    struct fixture *f = *state;
    char bad[128], good[128];
    snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
    snprintf(good, sizeof good, "%s/good.csv", f->dir);
    write_text(bad, "id,bus,slave,driver,kind,category,parent,serial\n"
                    "W-MASTER,gw_b,1,xintai-water,water,master,,20260001\n"
                    "W-B1,gw_a,abc,xintai-water,water,building,W-MASTER,20260002\n");
    write_text(good, "id,bus,slave,driver,kind,category,parent,serial\n"
                     "W-MASTER,gw_b,1,xintai-water,water,master,,20260001\n"
                     "W-B1,gw_a,1,xintai-water,water,building,W-MASTER,55550002\n");
    struct run before, r, after;
    RUN(f, &before, "inventory", "--csv");
    assert_int_equal(before.status, 0);
    RUN(f, &r, "inventory", "import", bad);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad.csv:3"));
    RUN(f, &after, "inventory", "--csv");
    assert_string_equal(before.out, after.out);

    RUN(f, &r, "inventory", "import", good);
    if (r.status != 0)
        fail_msg("import: %s", r.err);
    RUN(f, &after, "inventory", "--json");
    assert_non_null(strstr(after.out, "55550002"));
    assert_non_null(strstr(after.out, "\"removed\""));
}

/* What `inventory --csv` prints imports again as it is: the report columns
 * (installed, status, last_good, the last values) are accepted and not
 * applied, and the meter list comes back unchanged. */
static void test_inventory_export_imports_again(void **state)
{
    struct fixture *f = *state;
    char exported[128];
    snprintf(exported, sizeof exported, "%s/exported.csv", f->dir);
    struct run before, r, after;
    RUN(f, &before, "inventory", "--csv");
    assert_int_equal(before.status, 0);
    assert_non_null(strstr(before.out, "installed"));
    assert_non_null(strstr(before.out, "status"));
    write_text(exported, before.out);
    RUN(f, &r, "inventory", "import", exported);
    if (r.status != 0)
        fail_msg("import of the export: %s", r.err);
    RUN(f, &after, "inventory", "--csv");
    assert_int_equal(after.status, 0);
    assert_string_equal(before.out, after.out);
}

/* A site whose unit meters speak DL/T 645 and CJ/T 188: the CSV gives
 * their addresses instead of slave ids, a wrong one is named by FILE:LINE
 * and nothing is imported, and the listing shows the addresses with their
 * leading zeros (table, --json, and an export that imports again). */
static void test_inventory_import_addresses(void **state)
{
    struct fixture *f = *state;
    char conf[160], bad[128], good[128], exported[128];
    snprintf(conf, sizeof conf, "%s/cn.conf", f->dir);
    snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
    snprintf(good, sizeof good, "%s/good.csv", f->dir);
    snprintf(exported, sizeof exported, "%s/exported.csv", f->dir);
    char text[1024];
    snprintf(text, sizeof text,
             "gateway = { id = \"gw1\"; site = \"cn\"; data_dir = \"%s\"; };\n"
             "buses = (\n"
             "  { name = \"mb\"; type = \"rtu\"; device = \"/dev/null\"; },\n"
             "  { name = \"dl\"; type = \"rtu\"; protocol = \"dlt645\";\n"
             "    device = \"/dev/zero\"; },\n"
             "  { name = \"cj\"; type = \"rtu_over_tcp\"; protocol = \"cjt188\";\n"
             "    host = \"127.0.0.1\"; port = 8899; }\n"
             ");\n"
             "meters = (\n"
             "  { id = \"E-M\"; bus = \"mb\"; slave = 1; driver = \"sdm120\";\n"
             "    category = \"master\"; }\n"
             ");\n",
             f->dir);
    write_text(conf, text);
    snprintf(f->conf, sizeof f->conf, "%s", conf);
    write_text(bad, "id,bus,slave,address,driver,kind,category\n"
                    "E-M,mb,1,,sdm120,electricity,master\n"
                    "E-2-101,dl,,0000000101,dlt645_2007_1p,electricity,building\n"
                    "W-2-101,cj,,1000000000020X,cjt188_cold_water,water,building\n"
                    "E-2-102,dl,3,,dlt645_2007_1p,electricity,building\n"
                    "E-2-103,mb,4,000000000103,sdm120,electricity,building\n");
    write_text(good, "id,bus,slave,address,driver,kind,category,parent\n"
                     "E-M,mb,1,,sdm120,electricity,master,\n"
                     "E-2-101,dl,,000000000101,dlt645_2007_1p,electricity,building,E-M\n"
                     "W-2-101,cj,,10000000000201,cjt188_cold_water,water,building,\n");
    struct run before, r, after;
    RUN(f, &before, "inventory", "--csv");
    assert_int_equal(before.status, 0);
    RUN(f, &r, "inventory", "import", bad);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad.csv:3: meter E-2-101: address '0000000101' must be 12 "
                                  "digits on a dlt645 bus"));
    assert_non_null(strstr(r.err, "bad.csv:4: address: expected the meter's address as a "
                                  "string of digits"));
    assert_non_null(strstr(r.err, "bad.csv:5: meter E-2-102: bus dl speaks dlt645: give the "
                                  "meter's address, not slave"));
    assert_non_null(strstr(r.err, "bad.csv:6: meter E-2-103: address is for meters on a dlt645 "
                                  "or cjt188 bus"));
    RUN(f, &after, "inventory", "--csv");
    assert_string_equal(before.out, after.out);

    RUN(f, &r, "inventory", "import", good);
    if (r.status != 0)
        fail_msg("import: %s", r.err);
    RUN(f, &r, "inventory", "--json");
    assert_non_null(strstr(r.out, "\"address\""));
    assert_non_null(strstr(r.out, "\"000000000101\"")); /* a string: the zeros kept */
    assert_non_null(strstr(r.out, "\"10000000000201\""));
    RUN(f, &r, "inventory");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "address"));
    assert_non_null(strstr(r.out, "000000000101"));
    assert_non_null(strstr(r.out, "10000000000201"));
    RUN(f, &before, "inventory", "--csv");
    assert_non_null(strstr(before.out, ",000000000101,"));
    write_text(exported, before.out);
    RUN(f, &r, "inventory", "import", exported);
    if (r.status != 0)
        fail_msg("import of the export: %s", r.err);
    RUN(f, &after, "inventory", "--csv");
    assert_string_equal(before.out, after.out);
}

static void snapshot(struct fixture *f, const char *meter, const char *day, double volume)
{
    int64_t rid = 0;
    assert_int_equal(gw_store_meter_rowid(f->host.store, meter, &rid), EST_OK);
    struct gw_store_values v;
    gw_store_values_clear(&v);
    v.volume_m3 = volume;
    assert_int_equal(gw_store_snapshot_if_needed(f->host.store, rid, day, fake_now_ms, &v, NULL), EST_OK);
}

static const cJSON *find_row(const cJSON *array, const char *key, const char *value)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, array)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, key);
        if (cJSON_IsString(k) && strcmp(k->valuestring, value) == 0)
            return row;
    }
    return NULL;
}

static double number(const cJSON *row, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_report_consumption_and_balance(void **state)
{
    struct fixture *f = *state;
    /* W-B1 feeds the four building-1 unit meters */
    const char *days[] = {"2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"};
    for (int d = 0; d < 4; d++) {
        snapshot(f, "W-B1", days[d], 100 + 10.0 * d);
        snapshot(f, "W-1-101", days[d], 10 + 4.0 * d);
        snapshot(f, "W-1-102", days[d], 20 + 2.0 * d);
        snapshot(f, "W-1-201", days[d], 30 + 2.0 * d);
        snapshot(f, "W-1-202", days[d], 40 + 1.0 * d);
    }
    char err[128];
    cJSON *rep = gw_report_build(f->host.store, f->config, "2026-10-30", "2026-11-01", err, sizeof err);
    assert_non_null(rep);
    const cJSON *m = find_row(cJSON_GetObjectItemCaseSensitive(rep, "meters"), "meter", "W-1-101");
    assert_non_null(m);
    assert_true(number(m, "consumption") > 11.99 && number(m, "consumption") < 12.01);
    const cJSON *u = find_row(cJSON_GetObjectItemCaseSensitive(rep, "units"), "unit", "1-102");
    assert_true(number(u, "water_m3") > 5.99 && number(u, "water_m3") < 6.01);
    const cJSON *b = find_row(cJSON_GetObjectItemCaseSensitive(rep, "buildings"), "building", "1");
    assert_non_null(b);
    assert_true(number(b, "water_m3") > 29.99 && number(b, "water_m3") < 30.01);
    const cJSON *bal = find_row(cJSON_GetObjectItemCaseSensitive(rep, "balance"), "day", "2026-10-30");
    bal = find_row(cJSON_GetObjectItemCaseSensitive(rep, "balance"), "meter", "W-B1");
    assert_non_null(bal);
    assert_true(number(bal, "loss") > 0.99 && number(bal, "loss") < 1.01); /* 10 - 9 */
    assert_true(number(bal, "loss_pct") > 9.9 && number(bal, "loss_pct") < 10.1);
    const cJSON *months = cJSON_GetObjectItemCaseSensitive(rep, "month_end");
    const cJSON *oct = find_row(months, "day", "2026-10-31");
    assert_non_null(oct);
    cJSON_Delete(rep);
    assert_null(gw_report_build(f->host.store, f->config, "2026-11-02", "2026-11-01", err, sizeof err));

    struct run r;
    RUN(f, &r, "report", "--from", "2026-10-30", "--to", "2026-11-01", "--csv");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "meters,W-1-101"));
    RUN(f, &r, "report", "--from", "2026-10-30", "--to", "2026-11-01");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Balance per day"));
}

/* The report's period is made of site days: in Europe/Berlin the day of
 * the autumn change runs from 22:00 to 23:00 UTC the next day (25 hours),
 * which no fixed offset gets right at both ends. */
static void test_report_days_follow_daylight_saving(void **state)
{
    struct fixture *f = *state;
    free(f->config->gateway.timezone);
    f->config->gateway.timezone = strdup("Europe/Berlin");
    assert_non_null(f->config->gateway.timezone);
    static const struct { const char *meter, *since; } outages[] = {
        {"W-1-101", "2026-10-24T21:30:00Z"}, /* 23:30 CEST on the 24th: before */
        {"W-1-102", "2026-10-24T22:30:00Z"}, /* 00:30 CEST on the 25th: in */
        {"W-1-201", "2026-10-25T22:30:00Z"}, /* 23:30 CET on the 25th: in */
        {"W-1-202", "2026-10-25T23:30:00Z"}, /* 00:30 CET on the 26th: after */
    };
    for (size_t i = 0; i < sizeof outages / sizeof outages[0]; i++) {
        int64_t since = 0, id = 0;
        assert_int_equal(est_parse_ts(outages[i].since, &since), EST_OK);
        struct gw_store_incident in = {.rule = "meter_offline", .subject_type = "meter",
                                       .subject = outages[i].meter, .zone = -1, .severity = "major",
                                       .since_ms = since, .raised_ms = since, .text = "offline"};
        assert_int_equal(gw_store_incident_open(f->host.store, &in, &id, NULL), EST_OK);
        assert_int_equal(gw_store_incident_clear(f->host.store, id, since + 10 * 60000), EST_OK);
    }
    char err[128];
    cJSON *rep = gw_report_build(f->host.store, f->config, "2026-10-25", "2026-10-25", err, sizeof err);
    assert_non_null(rep);
    const cJSON *offline = cJSON_GetObjectItemCaseSensitive(rep, "offline");
    assert_int_equal(cJSON_GetArraySize(offline), 2);
    assert_non_null(find_row(offline, "meter", "W-1-102"));
    assert_non_null(find_row(offline, "meter", "W-1-201"));
    cJSON_Delete(rep);
}

int main(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    snprintf(ctl_path, sizeof ctl_path, "%s/../../gateway/estate-ctl", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage_and_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patrol_verify_names_tampered_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patrol_verify_names_deleted_and_inserted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patrol_log_csv_keeps_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workorder_action_through_the_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_not_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incident_state_reads_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_export_imports_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_import_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_consumption_and_balance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_days_follow_daylight_saving, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
