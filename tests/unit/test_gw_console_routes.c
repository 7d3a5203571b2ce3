/* test_gw_console_routes.c - the console's HTTP API (gateway/console/)
 * through console.h only: started with gw_http_start on a free loopback
 * port over the stub host of console_stub.h (no core, no pipeline), a small
 * config and users file written here and a store made with gw_store_open,
 * and spoken to with the plain-socket client of http_client.h. Covers:
 * starting (console off, port taken, no listener slot in the host),
 * sign-in (a wrong password, the lockout after repeated failures), 401
 * without a session, 404 and 405, a role refusal and a malformed body that
 * never reach the host's call(),
 * an action that reaches call() as the signed-in user with origin "http"
 * (and the host's refusal or silence as 409 and 503), the cross-site check
 * on cookie sessions, 413 for a large body, sign-out, a role changed in the
 * users file applying at once, the alert and meter reads from the store
 * with the host's clock, and events delivered through the subscribed
 * function arriving on the SSE stream (resumed after Last-Event-ID; the
 * stream ends with its session, and with the server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "console.h"
#include "console_stub.h"
#include "estate.h"
#include "http_client.h"
#include "store.h"
#include "users.h"

#define CLOCK_MS INT64_C(1790000000000)
#define DESK_PASSWORD "desk-password-1"
#define ENG_PASSWORD "eng-password-1"

struct fixture {
    char dir[64];
    int port;
    struct gw_config *config;
    struct console_stub stub;
    struct gw_http *http;
    int64_t incident_id;
};

/* ---- set-up ---- */

static void write_users(const char *path)
{
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(path, &users), EST_OK);
    assert_int_equal(gw_users_add(users, "desk", "frontdesk", DESK_PASSWORD), EST_OK);
    assert_int_equal(gw_users_add(users, "eng", "engineer", ENG_PASSWORD), EST_OK);
    assert_int_equal(gw_users_save(users), EST_OK);
    gw_users_free(users);
}

static void write_config(const struct fixture *f, const char *path)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out,
            "gateway = { id = \"gwu\"; site = \"unit\"; data_dir = \"%s/data\"; language = \"en\";\n"
            "            timezone = \"Europe/Berlin\"; };\n"
            "buses = ( { name = \"bus_a\"; type = \"tcp\"; host = \"127.0.0.1\"; port = 1; } );\n"
            "units = ( { id = \"1-101\"; building = \"1\"; occupancy = \"occupied\"; } );\n"
            "meters = ( { id = \"W-1\"; bus = \"bus_a\"; slave = 1; driver = \"xintai-water\";\n"
            "             category = \"unit\"; unit = \"1-101\"; valve = true; } );\n"
            "http = { listen = \"127.0.0.1:%d\"; users_file = \"%s/users.conf\"; };\n",
            f->dir, f->port, f->dir);
    assert_int_equal(fclose(out), 0);
}

/* The store the console reads: the inventory and one open incident. */
static void fill_store(struct fixture *f)
{
    struct gw_store *store = NULL;
    char reason[256];
    assert_int_equal(gw_store_open(f->config->gateway.data_dir, false, &store, reason, sizeof reason),
                     EST_OK);
    assert_int_equal(gw_store_sync_inventory(store, f->config, CLOCK_MS, NULL), EST_OK);
    struct gw_store_incident in = {
        .rule = "leak", .subject_type = "meter", .subject = "W-1", .zone = -1,
        .severity = "major", .since_ms = CLOCK_MS - 60000, .raised_ms = CLOCK_MS - 30000,
        .text = "continuous flow on W-1",
    };
    assert_int_equal(gw_store_incident_open(store, &in, &f->incident_id, NULL), EST_OK);
    assert_int_equal(gw_store_close(store), EST_OK);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_gw_console.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->port = http_free_port();
    assert_true(f->port > 0);
    char path[128];
    snprintf(path, sizeof path, "%s/users.conf", f->dir);
    write_users(path);
    snprintf(path, sizeof path, "%s/estate-gw.conf", f->dir);
    write_config(f, path);
    struct gw_config_errors errors = {0};
    est_err err = gw_config_load(path, NULL, 0, &f->config, &errors);
    if (err != EST_OK)
        gw_config_errors_print(&errors, stderr);
    gw_config_errors_free(&errors);
    assert_int_equal(err, EST_OK);
    fill_store(f);
    console_stub_init(&f->stub, CLOCK_MS);
    struct gw_console_host host = console_stub_host(&f->stub, f->config);
    assert_int_equal(gw_http_start(&host, &f->http), EST_OK);
    assert_non_null(f->http);
    assert_int_equal(f->stub.subscriptions, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gw_http_stop(f->http);
    console_stub_destroy(&f->stub);
    gw_config_free(f->config);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static cJSON *parse_body(const struct http_answer *a)
{
    assert_non_null(a->body);
    cJSON *json = cJSON_Parse(a->body);
    if (!json)
        fail_msg("not JSON: %s", a->body);
    return json;
}

static const char *string_of(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Signs in and returns the "Authorization: Bearer ..." header line. */
static char *sign_in(struct fixture *f, const char *user, const char *password)
{
    char body[128];
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, password);
    struct http_answer a = http_request(f->port, "POST", "/api/login", NULL, body);
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    const char *token = string_of(json, "token");
    assert_non_null(token);
    assert_int_equal(strlen(token), 64);
    char *header = malloc(128);
    snprintf(header, 128, "Authorization: Bearer %s\r\n", token);
    cJSON_Delete(json);
    http_answer_free(&a);
    return header;
}

/* ---- starting ---- */

/* The fixture's config file again with one --set style override. */
static struct gw_config *config_with(const struct fixture *f, const char *override)
{
    char path[128];
    snprintf(path, sizeof path, "%s/estate-gw.conf", f->dir);
    struct gw_config *config = NULL;
    struct gw_config_errors errors = {0};
    const char *overrides[] = {override};
    est_err err = gw_config_load(path, overrides, 1, &config, &errors);
    if (err != EST_OK)
        gw_config_errors_print(&errors, stderr);
    gw_config_errors_free(&errors);
    assert_int_equal(err, EST_OK);
    return config;
}

static void test_start_refusals(void **state)
{
    struct fixture *f = *state;
    struct console_stub stub;
    console_stub_init(&stub, CLOCK_MS);
    struct gw_http *http = (struct gw_http *)&stub; /* must be replaced by NULL */

    /* an empty listen address: the console is off, nothing subscribed */
    struct gw_config *off = config_with(f, "http.listen=");
    struct gw_console_host host = console_stub_host(&stub, off);
    assert_int_equal(gw_http_start(&host, &http), EST_OK);
    assert_null(http);
    assert_int_equal(stub.subscriptions, 0);
    gw_config_free(off);

    /* the fixture's console holds the port */
    host.config = f->config;
    http = (struct gw_http *)&stub;
    assert_int_equal(gw_http_start(&host, &http), EST_ERR_IO);
    assert_null(http);

    /* no listener slot left in the host: refused, and the port is free again */
    char listen[64];
    snprintf(listen, sizeof listen, "http.listen=127.0.0.1:%d", http_free_port());
    struct gw_config *other = config_with(f, listen);
    host.config = other;
    stub.subscribe_result = EST_ERR_FULL;
    assert_int_equal(gw_http_start(&host, &http), EST_ERR_FULL);
    assert_null(http);
    stub.subscribe_result = EST_OK;
    assert_int_equal(gw_http_start(&host, &http), EST_OK);
    assert_non_null(http);
    assert_int_equal(stub.subscriptions, 1);
    gw_http_stop(http);
    gw_config_free(other);
    console_stub_destroy(&stub);
}

/* ---- sign-in and the order of the checks ---- */

static void test_sign_in_gives_a_session_and_a_cookie(void **state)
{
    struct fixture *f = *state;
    struct http_answer a = http_request(f->port, "POST", "/api/login", NULL,
                                        "{\"user\":\"desk\",\"password\":\"" DESK_PASSWORD "\"}");
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    assert_string_equal(string_of(json, "user"), "desk");
    assert_string_equal(string_of(json, "role"), "frontdesk");
    assert_string_equal(string_of(json, "language"), "en");
    const char *token = string_of(json, "token");
    assert_non_null(token);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "estate_session=%s;", token);
    assert_non_null(strstr(a.head, cookie));
    assert_non_null(strstr(a.head, "HttpOnly"));
    cJSON_Delete(json);
    http_answer_free(&a);

    /* The session works: /api/me answers as desk with the host's clock. */
    char header[128];
    snprintf(header, sizeof header, "Cookie: estate_session=%.64s\r\n", strchr(cookie, '=') + 1);
    a = http_request(f->port, "GET", "/api/me", header, NULL);
    assert_int_equal(a.status, 200);
    json = parse_body(&a);
    assert_string_equal(string_of(json, "user"), "desk");
    assert_string_equal(string_of(json, "site"), "unit");
    assert_string_equal(string_of(json, "timezone"), "Europe/Berlin"); /* the console shows site time */
    char now[EST_TS_LEN];
    est_format_ts(CLOCK_MS, now);
    assert_string_equal(string_of(json, "now"), now);
    cJSON_Delete(json);
    http_answer_free(&a);
}

static void test_wrong_password_is_refused(void **state)
{
    struct fixture *f = *state;
    struct http_answer a = http_request(f->port, "POST", "/api/login", NULL,
                                        "{\"user\":\"eng\",\"password\":\"" DESK_PASSWORD "\"}");
    assert_int_equal(a.status, 401);
    assert_null(strstr(a.head, "estate_session="));
    http_answer_free(&a);
    a = http_request(f->port, "POST", "/api/login", NULL, "{\"user\":\"eng\"}");
    assert_int_equal(a.status, 400);
    http_answer_free(&a);
}

static void test_repeated_failures_lock_the_user_out(void **state)
{
    struct fixture *f = *state;
    const char *wrong = "{\"user\":\"desk\",\"password\":\"not-the-password\"}";
    for (int i = 0; i < 5; i++) {
        struct http_answer a = http_request(f->port, "POST", "/api/login", NULL, wrong);
        assert_int_equal(a.status, 401);
        http_answer_free(&a);
    }
    /* locked out now, even with the right password, answered at once */
    struct http_answer a = http_request(f->port, "POST", "/api/login", NULL,
                                        "{\"user\":\"desk\",\"password\":\"" DESK_PASSWORD "\"}");
    assert_int_equal(a.status, 429);
    assert_non_null(strstr(a.head, "Retry-After: "));
    assert_null(strstr(a.head, "estate_session="));
    http_answer_free(&a);
    /* another user is not locked out by desk's failures */
    char *auth = sign_in(f, "eng", ENG_PASSWORD);
    free(auth);
}

static void test_no_session_is_401(void **state)
{
    struct fixture *f = *state;
    struct http_answer a = http_request(f->port, "GET", "/api/alerts", NULL, NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
    /* a well-formed token nobody was given */
    a = http_request(f->port, "GET", "/api/alerts",
                     "Authorization: Bearer "
                     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\r\n",
                     NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
    /* unknown routes are not revealed before sign-in either */
    a = http_request(f->port, "GET", "/api/no-such-route", NULL, NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
}

static void test_unknown_route_404_wrong_method_405(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    struct http_answer a = http_request(f->port, "GET", "/api/no-such-route", auth, NULL);
    assert_int_equal(a.status, 404);
    http_answer_free(&a);
    a = http_request(f->port, "GET", "/api/alerts/1/2/3/4/5/6", auth, NULL);
    assert_int_equal(a.status, 404);
    http_answer_free(&a);
    a = http_request(f->port, "DELETE", "/api/alerts", auth, NULL);
    assert_int_equal(a.status, 405);
    http_answer_free(&a);
    a = http_request(f->port, "GET", "/api/patrol/checkin", auth, NULL);
    assert_int_equal(a.status, 405);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(auth);
}

/* ---- actions ---- */

static void test_role_refusal_never_reaches_the_host(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD); /* frontdesk may not work valves */
    struct http_answer a = http_request(f->port, "POST", "/api/meters/W-1/valve", auth,
                                        "{\"close\":true}");
    assert_int_equal(a.status, 403);
    cJSON *json = parse_body(&a);
    assert_non_null(strstr(string_of(json, "error"), "frontdesk"));
    cJSON_Delete(json);
    http_answer_free(&a);
    a = http_request(f->port, "POST", "/api/workorders/3/complete", auth, "{}");
    assert_int_equal(a.status, 403);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(auth);
}

static void test_malformed_body_is_400_without_a_call(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    static const char *const bodies[] = {"{not json", "[1,2]", "\"text\"", "{\"a\":"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct http_answer a = http_request(f->port, "POST", "/api/workorders", auth, bodies[i]);
        assert_int_equal(a.status, 400);
        http_answer_free(&a);
    }
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(auth);
}

static void test_action_reaches_the_host_as_the_signed_in_user(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "eng", ENG_PASSWORD);
    console_stub_answer(&f->stub, "{\"ok\":true,\"id\":42}");
    struct http_answer a = http_request(f->port, "POST", "/api/meters/W-1/valve", auth,
                                        "{\"close\":true,\"user\":\"mallory\"}");
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "ok")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(json, "id")->valueint, 42);
    cJSON_Delete(json);
    http_answer_free(&a);

    assert_int_equal(console_stub_calls(&f->stub), 1);
    assert_string_equal(f->stub.verb, "valve");
    assert_string_equal(f->stub.user, "eng");
    assert_string_equal(f->stub.role, "engineer");
    assert_string_equal(f->stub.origin, "http");
    assert_true(f->stub.timeout_ms > 0);
    cJSON *args = cJSON_Parse(f->stub.args);
    assert_non_null(args);
    assert_string_equal(string_of(args, "meter"), "W-1");             /* from the path */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "close")));
    assert_null(cJSON_GetObjectItemCaseSensitive(args, "user"));      /* the actor is the session's */
    assert_non_null(string_of(args, "request_id"));
    assert_int_equal(strncmp(string_of(args, "request_id"), "http-", 5), 0);
    cJSON_Delete(args);
    free(auth);
}

static void test_work_order_action_carries_id_and_action(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    struct http_answer a = http_request(f->port, "POST", "/api/workorders/17/dispatch", auth,
                                        "{\"to\":\"eng\",\"action\":\"close\",\"id\":99}");
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 1);
    assert_string_equal(f->stub.verb, "workorder");
    assert_string_equal(f->stub.user, "desk");
    cJSON *args = cJSON_Parse(f->stub.args);
    assert_string_equal(string_of(args, "action"), "dispatch"); /* the path wins over the body */
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(args, "id")->valueint, 17);
    assert_string_equal(string_of(args, "to"), "eng");
    cJSON_Delete(args);
    free(auth);
}

static void test_host_refusal_is_409_and_silence_503(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    console_stub_answer(&f->stub, "{\"ok\":false,\"error\":\"no such unit\"}");
    struct http_answer a = http_request(f->port, "POST", "/api/units/9-999/occupancy", auth,
                                        "{\"occupancy\":\"vacant\"}");
    assert_int_equal(a.status, 409);
    cJSON *json = parse_body(&a);
    assert_string_equal(string_of(json, "error"), "no such unit");
    cJSON_Delete(json);
    http_answer_free(&a);

    console_stub_answer(&f->stub, NULL); /* the core did not answer in time */
    a = http_request(f->port, "POST", "/api/handover", auth, "{}");
    assert_int_equal(a.status, 503);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 2);
    assert_string_equal(f->stub.verb, "handover");
    free(auth);
}

/* ---- cross-site protection, sizes, sign-out, changed accounts ---- */

/* Signs in and returns the "Cookie: estate_session=..." header line. */
static char *sign_in_cookie(struct fixture *f, const char *user, const char *password)
{
    char *bearer = sign_in(f, user, password);
    char *header = malloc(128);
    snprintf(header, 128, "Cookie: estate_session=%.64s\r\n", bearer + strlen("Authorization: Bearer "));
    free(bearer);
    return header;
}

static void test_cookie_post_needs_the_console_marker(void **state)
{
    struct fixture *f = *state;
    char *cookie = sign_in_cookie(f, "desk", DESK_PASSWORD);
    struct http_answer a = http_request(f->port, "POST", "/api/workorders", cookie, "{}");
    assert_int_equal(a.status, 403);
    http_answer_free(&a);
    char headers[256];
    snprintf(headers, sizeof headers, "%sX-Requested-With: estate-console\r\nOrigin: http://evil.example\r\n",
             cookie);
    a = http_request(f->port, "POST", "/api/workorders", headers, "{}");
    assert_int_equal(a.status, 403);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);

    snprintf(headers, sizeof headers, "%sX-Requested-With: estate-console\r\n", cookie);
    a = http_request(f->port, "POST", "/api/workorders", headers, "{}");
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 1);
    assert_string_equal(f->stub.user, "desk");

    /* a sign-in from another site's page is refused too */
    a = http_request(f->port, "POST", "/api/login", "Origin: http://evil.example\r\n",
                     "{\"user\":\"desk\",\"password\":\"" DESK_PASSWORD "\"}");
    assert_int_equal(a.status, 403);
    assert_null(strstr(a.head, "estate_session="));
    http_answer_free(&a);
    free(cookie);
}

static void test_oversized_body_is_413_without_a_call(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    size_t size = 70 * 1024;
    char *body = malloc(size + 1);
    memset(body, ' ', size);
    body[0] = '{';
    body[size - 1] = '}';
    body[size] = '\0';
    struct http_answer a = http_request(f->port, "POST", "/api/handover", auth, body);
    assert_int_equal(a.status, 413);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(body);
    free(auth);
}

static void test_sign_out_ends_the_session(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "eng", ENG_PASSWORD);
    struct http_answer a = http_request(f->port, "GET", "/api/me", auth, NULL);
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
    a = http_request(f->port, "POST", "/api/logout", auth, NULL);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "Max-Age=0"));
    http_answer_free(&a);
    a = http_request(f->port, "GET", "/api/me", auth, NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
    free(auth);
}

static void test_changed_role_applies_at_once(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    /* desk becomes a viewer, eng is disabled, in a rewritten users file */
    char path[128];
    snprintf(path, sizeof path, "%s/users.conf", f->dir);
    struct gw_users *users = NULL;
    assert_int_equal(gw_users_create(path, &users), EST_OK);
    assert_int_equal(gw_users_add(users, "desk", "viewer", DESK_PASSWORD), EST_OK);
    assert_int_equal(gw_users_add(users, "eng", "engineer", ENG_PASSWORD), EST_OK);
    assert_int_equal(gw_users_set_enabled(users, "eng", false), EST_OK);
    char *eng = sign_in(f, "eng", ENG_PASSWORD); /* before the change is saved */
    assert_int_equal(gw_users_save(users), EST_OK);
    gw_users_free(users);

    struct http_answer a = http_request(f->port, "GET", "/api/me", auth, NULL);
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    assert_string_equal(string_of(json, "role"), "viewer");
    cJSON_Delete(json);
    http_answer_free(&a);
    a = http_request(f->port, "POST", "/api/workorders", auth, "{}");
    assert_int_equal(a.status, 403);
    http_answer_free(&a);
    a = http_request(f->port, "GET", "/api/me", eng, NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(eng);
    free(auth);
}

/* ---- reads from the store ---- */

static void test_alerts_come_from_the_store(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    struct http_answer a = http_request(f->port, "GET", "/api/alerts", auth, NULL);
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(json, "alerts");
    assert_int_equal(cJSON_GetArraySize(alerts), 1);
    const cJSON *alert = cJSON_GetArrayItem(alerts, 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(alert, "id")->valueint, f->incident_id);
    assert_string_equal(string_of(alert, "rule"), "leak");
    assert_string_equal(string_of(alert, "meter"), "W-1");
    assert_string_equal(string_of(alert, "state"), "active");
    assert_string_equal(string_of(alert, "severity"), "major");
    assert_string_equal(string_of(alert, "text"), "continuous flow on W-1");
    cJSON_Delete(json);
    http_answer_free(&a);

    a = http_request(f->port, "GET", "/api/alerts?state=cleared", auth, NULL);
    assert_int_equal(a.status, 400);
    http_answer_free(&a);
    assert_int_equal(console_stub_calls(&f->stub), 0);
    free(auth);
}

static void test_meters_come_from_the_store_with_the_host_clock(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "eng", ENG_PASSWORD);
    struct http_answer a = http_request(f->port, "GET", "/api/meters", auth, NULL);
    assert_int_equal(a.status, 200);
    cJSON *json = parse_body(&a);
    const cJSON *meters = cJSON_GetObjectItemCaseSensitive(json, "meters");
    assert_int_equal(cJSON_GetArraySize(meters), 1);
    const cJSON *meter = cJSON_GetArrayItem(meters, 0);
    assert_string_equal(string_of(meter, "id"), "W-1");
    assert_string_equal(string_of(meter, "unit"), "1-101");
    assert_string_equal(string_of(meter, "bus"), "bus_a");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meter, "valve")));
    char now[EST_TS_LEN];
    est_format_ts(CLOCK_MS, now);
    assert_string_equal(string_of(json, "now"), now);
    cJSON_Delete(json);
    http_answer_free(&a);

    /* the clock is the host's: moving it moves the answer */
    pthread_mutex_lock(&f->stub.lock);
    f->stub.clock_ms = CLOCK_MS + 3600000;
    pthread_mutex_unlock(&f->stub.lock);
    a = http_request(f->port, "GET", "/api/meters", auth, NULL);
    json = parse_body(&a);
    est_format_ts(CLOCK_MS + 3600000, now);
    assert_string_equal(string_of(json, "now"), now);
    cJSON_Delete(json);
    http_answer_free(&a);
    free(auth);
}

/* ---- live events ---- */

static void test_injected_event_arrives_on_the_stream(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    int fd = http_connect(f->port, 5000);
    assert_true(fd >= 0);
    assert_true(http_send_request(fd, "GET", "/api/events", auth, NULL));
    char *seen = NULL;
    /* the stream's opening lines: the route has run and the stream waits */
    assert_true(http_read_until(fd, "live events", &seen));
    assert_non_null(strstr(seen, " 200 "));
    assert_non_null(strstr(seen, "text/event-stream"));

    console_stub_inject(&f->stub, "alerts/active/5", "{\"skipped\":true}"); /* not streamed */
    console_stub_inject(&f->stub, "alerts", "{\"id\":5,\"state\":\"active\"}");
    console_stub_inject(&f->stub, "workorders/8", "{\"id\":8,\n\"state\":\"open\"}");
    if (!http_read_until(fd, "\"state\":\"open\"}", &seen))
        fail_msg("stream so far: %s", seen);
    assert_non_null(strstr(seen, "id: 1\nevent: alert\ndata: {\"id\":5,\"state\":\"active\"}\n\n"));
    assert_non_null(strstr(seen, "id: 2\nevent: workorder\ndata: {\"id\":8,\ndata: \"state\":\"open\"}"));
    assert_null(strstr(seen, "skipped"));
    free(seen);
    close(fd);
    free(auth);
}

static void test_stream_resumes_after_last_event_id(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    console_stub_inject(&f->stub, "alerts", "{\"n\":1}");
    console_stub_inject(&f->stub, "patrol", "{\"n\":2}");
    console_stub_inject(&f->stub, "escalations", "{\"n\":3}");
    char headers[256];
    snprintf(headers, sizeof headers, "%sLast-Event-ID: 1\r\n", auth);
    int fd = http_connect(f->port, 5000);
    assert_true(fd >= 0);
    assert_true(http_send_request(fd, "GET", "/api/events", headers, NULL));
    char *seen = NULL;
    if (!http_read_until(fd, "{\"n\":3}", &seen))
        fail_msg("stream so far: %s", seen);
    assert_null(strstr(seen, "{\"n\":1}"));
    assert_non_null(strstr(seen, "id: 2\nevent: patrol\ndata: {\"n\":2}\n\n"));
    assert_non_null(strstr(seen, "id: 3\nevent: escalation\ndata: {\"n\":3}\n\n"));
    free(seen);
    close(fd);
    free(auth);
}

static void test_stream_ends_with_its_session(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    int fd = http_connect(f->port, 10000);
    assert_true(fd >= 0);
    assert_true(http_send_request(fd, "GET", "/api/events", auth, NULL));
    char *seen = NULL;
    assert_true(http_read_until(fd, "live events", &seen));
    struct http_answer a = http_request(f->port, "POST", "/api/logout", auth, NULL);
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
    console_stub_inject(&f->stub, "alerts", "{\"after\":\"logout\"}"); /* wakes the stream */
    /* the server closes the stream: reading reaches the end, not the timeout */
    int64_t start = est_mono_ms();
    assert_false(http_read_until(fd, "never sent", &seen));
    assert_true(est_mono_ms() - start < 9000);
    free(seen);
    close(fd);
    free(auth);
}

static void test_stop_ends_an_open_stream(void **state)
{
    struct fixture *f = *state;
    char *auth = sign_in(f, "desk", DESK_PASSWORD);
    int fd = http_connect(f->port, 10000);
    assert_true(fd >= 0);
    assert_true(http_send_request(fd, "GET", "/api/events", auth, NULL));
    char *seen = NULL;
    assert_true(http_read_until(fd, "live events", &seen));
    int64_t start = est_mono_ms();
    gw_http_stop(f->http); /* the client keeps its end open */
    f->http = NULL;
    assert_true(est_mono_ms() - start < 5000);
    assert_false(http_read_until(fd, "never sent", &seen));
    free(seen);
    close(fd);
    free(auth);
}

static void test_event_stream_needs_a_session(void **state)
{
    struct fixture *f = *state;
    struct http_answer a = http_request(f->port, "GET", "/api/events", NULL, NULL);
    assert_int_equal(a.status, 401);
    http_answer_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_in_gives_a_session_and_a_cookie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_failures_lock_the_user_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_session_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_route_404_wrong_method_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_refusal_never_reaches_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_body_is_400_without_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_reaches_the_host_as_the_signed_in_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_order_action_carries_id_and_action, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_host_refusal_is_409_and_silence_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_post_needs_the_console_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_body_is_413_without_a_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_out_ends_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_role_applies_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_come_from_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meters_come_from_the_store_with_the_host_clock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_injected_event_arrives_on_the_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_resumes_after_last_event_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_ends_with_its_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_ends_an_open_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_stream_needs_a_session, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
