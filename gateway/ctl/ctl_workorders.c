/* ctl_workorders.c - estate-ctl workorders, workorder ID [ACTION],
 * workorder create and handover. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "office.h"

/* ------------------------------------------------------------------ */
/* workorders / workorder                                              */
/* ------------------------------------------------------------------ */

struct orders_ctx {
    cJSON *rows;
    int64_t now_ms;
};

static bool order_row(void *ctx, const struct gw_store_workorder *wo)
{
    struct orders_ctx *x = ctx;
    cJSON *row = gw_view_workorder(wo, x->now_ms);
    if (row == NULL)
        return false;
    cJSON_AddItemToArray(x->rows, row);
    return true;
}

/* Splits "a,b" into at most max state names (pointers into buf). */
static size_t split_states(char *buf, const char **states, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(buf, ","); tok != NULL && n < max; tok = strtok(NULL, ","))
        states[n++] = tok;
    return n;
}

int ctl_verb_workorders(struct ctl *c)
{
    bool missing = false;
    const char *state = ctl_option_value(c, "--state", &missing);
    bool all = ctl_option_flag(c, "--all");
    if (missing)
        return ctl_usage_error("workorders: --state needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    static const char *const not_closed[] = {"open", "dispatched", "on_site", "completed"};
    const char *states[8];
    size_t nstates = 0;
    char *buf = state ? strdup(state) : NULL;
    if (buf != NULL)
        nstates = split_states(buf, states, COUNT_OF(states));
    else if (!all)
        for (; nstates < COUNT_OF(not_closed); nstates++)
            states[nstates] = not_closed[nstates];
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL) {
        free(buf);
        return EST_EXIT_RUNTIME;
    }
    struct orders_ctx x = {.rows = cJSON_CreateArray(), .now_ms = est_now_ms()};
    est_err err = gw_store_workorders_list(store, states, nstates, order_row, &x);
    free(buf);
    static const struct gw_table_column cols[] = {
        {"id", "id"}, {"state", "state"}, {"category", "category"}, {"unit/location", "where"},
        {"assignee", "assignee"}, {"opened", "opened"}, {"arrive due", "arrive_due"},
        {"resolve due", "resolve_due"}, {"overdue", "overdue"}, {"escalated", "escalated"},
        {"description", "description"},
    };
    return ctl_list_done(c, store, err, "work orders", x.rows, cols, COUNT_OF(cols));
}

static void print_order_text(const cJSON *o)
{
    static const char *const fields[] = {
        "id", "incident", "state", "category", "unit", "building", "location", "description",
        "severity", "assignee", "verifier", "rating", "opened", "dispatched", "arrive_due",
        "resolve_due", "on_site", "completed", "verified", "cancelled", "escalated",
    };
    for (size_t i = 0; i < COUNT_OF(fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i]);
        if (cJSON_IsString(v))
            printf("%-12s %s\n", fields[i], v->valuestring);
        else if (cJSON_IsNumber(v))
            printf("%-12s %.0f\n", fields[i], v->valuedouble);
        else if (cJSON_IsBool(v))
            printf("%-12s %s\n", fields[i], cJSON_IsTrue(v) ? "yes" : "no");
    }
    printf("history:\n");
    static const struct gw_table_column cols[] = {
        {"ts", "ts"}, {"action", "action"}, {"from", "from"}, {"to", "to"}, {"who", "who"},
        {"note", "note"},
    };
    gw_table_print(stdout, cJSON_GetObjectItemCaseSensitive(o, "history"), cols, COUNT_OF(cols),
                   false);
}

static int show_workorder(struct ctl *c, int64_t id)
{
    struct gw_store *store = ctl_open_store(c, true);
    if (store == NULL)
        return EST_EXIT_RUNTIME;
    cJSON *o = gw_view_workorder_get(store, id, est_now_ms());
    gw_store_close(store);
    if (o == NULL) {
        fprintf(stderr, "estate-ctl: no work order %" PRId64 "\n", id);
        return EST_EXIT_RUNTIME;
    }
    if (c->json)
        ctl_print_json(o);
    else
        print_order_text(o);
    cJSON_Delete(o);
    return 0;
}

/* Options of workorder actions: --name VALUE -> args member. */
static int collect_workorder_options(struct ctl *c, cJSON *args)
{
    static const char *const string_options[][2] = {
        {"--note", "note"},         {"--assignee", "assignee"}, {"--verifier", "verifier"},
        {"--category", "category"}, {"--description", "description"}, {"--unit", "unit"},
        {"--location", "location"}, {"--comment", "comment"},
    };
    bool missing = false;
    for (size_t i = 0; i < COUNT_OF(string_options); i++) {
        const char *v = ctl_option_value(c, string_options[i][0], &missing);
        if (v != NULL)
            cJSON_AddStringToObject(args, string_options[i][1], v);
    }
    const char *until = ctl_option_value(c, "--until", &missing);
    const char *rating = ctl_option_value(c, "--rating", &missing);
    const char *user = ctl_option_value(c, "--user", &missing);
    if (missing)
        return ctl_usage_error("workorder: an option needs a value");
    if (user != NULL)
        c->user = user;
    if (until != NULL) {
        int64_t ms = 0;
        if (!ctl_parse_time(until, &ms))
            return ctl_usage_error("workorder: --until '%s' is not an RFC 3339 time or +Nh/+Nd", until);
        char ts[EST_TS_LEN];
        est_format_ts(ms, ts);
        cJSON_AddStringToObject(args, "until", ts);
    }
    if (rating != NULL) {
        int64_t n = 0;
        if (!ctl_parse_int64(rating, 1, 5, &n))
            return ctl_usage_error("workorder: --rating '%s' must be 1..5", rating);
        cJSON_AddNumberToObject(args, "rating", (double)n);
    }
    return ctl_leftover_arguments(c);
}

/* Sends the action in args to the daemon; frees args. */
static int run_workorder_action(struct ctl *c, cJSON *args)
{
    cJSON *result = NULL;
    int rc = ctl_request(c, "workorder", args, &result);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(result, "workorder");
    if (rc == 0 && !ctl_json_out(c, result) && o != NULL)
        print_order_text(o);
    cJSON_Delete(result);
    return rc;
}

int ctl_verb_workorder(struct ctl *c)
{
    const char *first = ctl_positional(c, 0);
    if (first == NULL)
        return ctl_usage_error("workorder needs an id (or create)");
    cJSON *args = cJSON_CreateObject();
    int rc;
    if (strcmp(first, "create") == 0) {
        cJSON_AddStringToObject(args, "action", "create");
        rc = collect_workorder_options(c, args);
    } else {
        int64_t id = 0;
        if (!ctl_parse_int64(first, 1, INT64_C(1) << 52, &id)) {
            cJSON_Delete(args);
            return ctl_usage_error("workorder: '%s' is not a work order id", first);
        }
        const char *action = ctl_positional(c, 0);
        if (action == NULL) {
            cJSON_Delete(args);
            rc = ctl_leftover_arguments(c);
            return rc ? rc : show_workorder(c, id);
        }
        cJSON_AddNumberToObject(args, "id", (double)id);
        cJSON_AddStringToObject(args, "action", action);
        rc = collect_workorder_options(c, args);
    }
    if (rc != 0) {
        cJSON_Delete(args);
        return rc;
    }
    return run_workorder_action(c, args);
}

/* ------------------------------------------------------------------ */
/* handover                                                            */
/* ------------------------------------------------------------------ */

static void print_handover(const struct ctl *c, const cJSON *summary, const char *text)
{
    if (text != NULL)
        printf("%s\n", text);
    struct {
        const char *title;
        const char *key;
        struct gw_table_column cols[6];
        size_t ncols;
    } sections[] = {
        {"open incidents", "open_incidents",
         {{"id", "id"}, {"rule", "rule"}, {"severity", "severity"}, {"subject", "subject"},
          {"raised", "raised"}, {"text", "text"}}, 6},
        {"open work orders", "open_workorders",
         {{"id", "id"}, {"state", "state"}, {"category", "category"}, {"location", "location"},
          {"resolve due", "resolve_due"}, {"overdue", "overdue"}}, 6},
        {"meters offline", "meters_offline",
         {{"id", "id"}, {"status", "status"}, {"location", "location"},
          {"last good", "last_good"}}, 4},
    };
    for (size_t i = 0; i < COUNT_OF(sections); i++) {
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(summary, sections[i].key);
        printf("\n%s (%d):\n", sections[i].title, cJSON_GetArraySize(rows));
        if (cJSON_GetArraySize(rows) > 0)
            gw_table_print(stdout, rows, sections[i].cols, sections[i].ncols, c->csv);
    }
    const cJSON *unconfirmed = cJSON_GetObjectItemCaseSensitive(summary, "unconfirmed_incidents");
    printf("\nincidents no patrol has confirmed:");
    const cJSON *id;
    cJSON_ArrayForEach(id, unconfirmed)
    {
        printf(" #%.0f", id->valuedouble);
    }
    printf("%s\n", cJSON_GetArraySize(unconfirmed) ? "" : " none");
}

int ctl_verb_handover(struct ctl *c)
{
    bool missing = false;
    const char *from = ctl_option_value(c, "--from", &missing);
    const char *to = ctl_option_value(c, "--to", &missing);
    const char *note = ctl_option_value(c, "--note", &missing);
    bool preview = ctl_option_flag(c, "--preview");
    if (missing)
        return ctl_usage_error("handover: an option needs a value");
    int bad = ctl_leftover_arguments(c);
    if (bad)
        return bad;
    if (preview) {
        struct gw_store *store = ctl_open_store(c, true);
        if (store == NULL)
            return EST_EXIT_RUNTIME;
        cJSON *summary = gw_handover_summary_from(store, c->config, est_now_ms());
        if (summary == NULL)
            return ctl_store_failure(store, "handover");
        gw_store_close(store);
        if (c->json)
            ctl_print_json(summary);
        else
            print_handover(c, summary, NULL);
        cJSON_Delete(summary);
        return 0;
    }
    if (from == NULL || to == NULL)
        return ctl_usage_error("handover needs --from and --to (or --preview)");
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "from", from);
    cJSON_AddStringToObject(args, "to", to);
    if (note != NULL)
        cJSON_AddStringToObject(args, "note", note);
    cJSON *result = NULL;
    int rc = ctl_request(c, "handover", args, &result);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(result, "text");
    if (rc == 0 && !ctl_json_out(c, result))
        print_handover(c, cJSON_GetObjectItemCaseSensitive(result, "handover"),
                       cJSON_IsString(text) ? text->valuestring : NULL);
    cJSON_Delete(result);
    return rc;
}
