/* notify.c - routing incidents to channels, the notifications' life in the
 * store (queued, handed to the sender, delivered or retried with backoff)
 * and the sender thread that makes the calls. */
#include "notify_internal.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "est_tz.h"

#define DUE_MAX        64   /* rows looked at per tick */
#define BATCH_TEXT_MAX 1800 /* WeCom takes 2048 bytes of text; leave room */
/* A robot that says it is rate limited rests a minute (WeCom counts per
 * minute), or retry_max_s when that is shorter. */
#define RATE_LIMITED_PAUSE_MS 60000
#define TEXT_MAX              1024

struct result {
    struct notify_message msg;
    enum notify_outcome outcome;
    char error[200];
};

struct gw_notify {
    const struct gw_config *config;
    struct gw_notify_host host;
    bool escalates; /* some route has escalation steps */
    int64_t escalation_checked_ms;
    struct notify_channel *channels;
    size_t nchannels;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    atomic_bool abandon; /* shutting down: calls in flight give up */
    /* Handed to the sender (busy until it posts the results back). */
    bool busy;
    struct result *work;
    size_t nwork;
    bool answered;
};

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The word for event: created, breached, or otherwise. */
static const char *streq_or(const char *event, const char *a, const char *a_word, const char *b,
                            const char *b_word, const char *other_word)
{
    return same(event, a) ? a_word : same(event, b) ? b_word : other_word;
}

/* ---------------------------------------------------------------- */
/* Secrets                                                           */
/* ---------------------------------------------------------------- */

/* The file's first line (trailing whitespace cut), or NULL with errbuf. */
static char *read_secret(const char *path, const char *channel, char *errbuf, size_t len)
{
    FILE *f = fopen(path, "r");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(errbuf, len, "notify channel %s: %s: %s", channel, path,
                 f == NULL ? strerror(errno) : "readable by others (chmod 600 it)");
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    char line[4096];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (got == NULL) {
        snprintf(errbuf, len, "notify channel %s: %s is empty", channel, path);
        return NULL;
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    return strdup(line);
}

static est_err load_channel(struct notify_channel *ch, const struct gw_notify_channel_config *c,
                            char *errbuf, size_t len)
{
    ch->config = c;
    if (c->key_file != NULL && (ch->key = read_secret(c->key_file, c->name, errbuf, len)) == NULL)
        return EST_ERR_INVALID;
    if (c->sign_secret_file != NULL &&
        (ch->sign_secret = read_secret(c->sign_secret_file, c->name, errbuf, len)) == NULL)
        return EST_ERR_INVALID;
    if (c->password_file != NULL &&
        (ch->password = read_secret(c->password_file, c->name, errbuf, len)) == NULL)
        return EST_ERR_INVALID;
    if (c->rate_per_min > 0 &&
        (ch->sent_ms = calloc((size_t)c->rate_per_min, sizeof *ch->sent_ms)) == NULL)
        return EST_ERR_NOMEM;
    return EST_OK;
}

static void free_secret(char *s)
{
    if (s != NULL)
        memset(s, 0, strlen(s));
    free(s);
}

/* ---------------------------------------------------------------- */
/* Messages                                                          */
/* ---------------------------------------------------------------- */

static void message_free(struct notify_message *m)
{
    free(m->ids);
    free(m->text);
    free(m->recipients);
    free(m->subject);
    free(m->rule);
    free(m->severity);
    free(m->place);
    memset(m, 0, sizeof *m);
}

static void results_free(struct result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        message_free(&r[i].msg);
    free(r);
}

/* ---------------------------------------------------------------- */
/* The sender thread                                                 */
/* ---------------------------------------------------------------- */

static void *sender_main(void *arg)
{
    struct gw_notify *n = arg;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        while (!n->stop && !(n->busy && !n->answered))
            pthread_cond_wait(&n->wake, &n->lock);
        if (n->stop)
            break;
        struct result *work = n->work;
        size_t nwork = n->nwork;
        pthread_mutex_unlock(&n->lock);
        for (size_t i = 0; i < nwork; i++) {
            struct result *r = &work[i];
            r->outcome = notify_send(&n->channels[r->msg.channel], &r->msg, n->config, est_now_ms(),
                                     &n->abandon, r->error, sizeof r->error);
        }
        pthread_mutex_lock(&n->lock);
        n->answered = true;
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

est_err gw_notify_create(const struct gw_config *config, const struct gw_notify_host *host,
                         struct gw_notify **out, char *errbuf, size_t errbuf_len)
{
    *out = NULL;
    if (config->notify.nchannels == 0)
        return EST_OK;
    struct gw_notify *n = calloc(1, sizeof *n);
    if (n == NULL)
        return EST_ERR_NOMEM;
    n->config = config;
    if (host != NULL)
        n->host = *host;
    for (size_t i = 0; i < config->notify.nroutes; i++)
        n->escalates = n->escalates || config->notify.routes[i].nescalation > 0;
    n->nchannels = config->notify.nchannels;
    n->channels = calloc(n->nchannels, sizeof *n->channels);
    atomic_init(&n->abandon, false);
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->wake, NULL);
    est_err err = n->channels != NULL ? EST_OK : EST_ERR_NOMEM;
    for (size_t i = 0; err == EST_OK && i < n->nchannels; i++)
        err = load_channel(&n->channels[i], &config->notify.channels[i], errbuf, errbuf_len);
    if (err == EST_OK && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errbuf, errbuf_len, "libcurl cannot start");
        err = EST_ERR_STATE;
    }
    if (err == EST_OK) {
        n->thread_started = pthread_create(&n->thread, NULL, sender_main, n) == 0;
        if (!n->thread_started) {
            snprintf(errbuf, errbuf_len, "cannot start the notification sender");
            err = EST_ERR_STATE;
        }
    }
    if (err != EST_OK) {
        if (err == EST_ERR_NOMEM)
            snprintf(errbuf, errbuf_len, "out of memory");
        gw_notify_destroy(n);
        return err;
    }
    *out = n;
    return EST_OK;
}

void gw_notify_destroy(struct gw_notify *n)
{
    if (n == NULL)
        return;
    if (n->thread_started) {
        atomic_store(&n->abandon, true);
        pthread_mutex_lock(&n->lock);
        n->stop = true;
        pthread_cond_signal(&n->wake);
        pthread_mutex_unlock(&n->lock);
        pthread_join(n->thread, NULL);
        curl_global_cleanup();
    }
    results_free(n->work, n->nwork);
    for (size_t i = 0; n->channels != NULL && i < n->nchannels; i++) {
        free_secret(n->channels[i].key);
        free_secret(n->channels[i].sign_secret);
        free_secret(n->channels[i].password);
        free(n->channels[i].sent_ms);
    }
    free(n->channels);
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

/* ---------------------------------------------------------------- */
/* Routing                                                           */
/* ---------------------------------------------------------------- */

static bool listed(char *const *list, size_t n, const char *value)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (same(list[i], value))
            return true;
    return false;
}

static bool route_matches(const struct gw_config *config, const struct gw_notify_route_config *r,
                          const struct gw_store_incident *inc, enum rule_transition transition)
{
    if (r->nworkorder_events > 0 || transition == RULE_UPDATED ||
        (transition == RULE_CLEARED && !r->cleared))
        return false;
    return listed(r->rules, r->nrules, inc->rule) &&
           listed(r->severities, r->nseverities, inc->severity) &&
           listed(r->buildings, r->nbuildings, notify_building(config, inc)) &&
           listed(r->categories, r->ncategories, notify_category(config, inc));
}

/* When a message at ms may go: at once, or at the end of the route's quiet
 * hours (site time) for all but critical incidents. */
static int64_t due_after_quiet_hours(const struct gw_config *config,
                                     const struct gw_notify_route_config *r,
                                     const struct gw_store_incident *inc, int64_t ms)
{
    if (r->quiet_start_min < 0 || same(inc->severity, "critical"))
        return ms;
    int64_t day_ms = 86400000;
    int64_t local = ms + (int64_t)est_tz_offset_min(config->gateway.timezone, ms) * 60000;
    int64_t into_day = ((local % day_ms) + day_ms) % day_ms;
    int64_t minute = into_day / 60000;
    int64_t start = r->quiet_start_min, end = r->quiet_end_min;
    bool quiet = start < end ? minute >= start && minute < end : minute >= start || minute < end;
    if (!quiet)
        return ms;
    int64_t end_ms = end * 60000;
    int64_t wait = end_ms > into_day ? end_ms - into_day : day_ms - into_day + end_ms;
    return ms + wait;
}

/* Appends one recipient to list (comma-separated, no repeats). */
static void add_recipient(char *list, size_t len, const char *one)
{
    if (one == NULL || one[0] == '\0' || strchr(one, ',') != NULL)
        return;
    size_t used = strlen(list);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == strlen(one) && strncmp(p, one, n) == 0)
            return;
        p += n;
        p += *p == ',';
    }
    if (used + strlen(one) + 2 <= len)
        snprintf(list + used, len - used, "%s%s", used ? "," : "", one);
}

static void add_recipients(char *list, size_t len, char *const *to, size_t n)
{
    for (size_t i = 0; i < n; i++)
        add_recipient(list, len, to[i]);
}

/* The on-duty person's mobile, or e-mail for an smtp channel; NULL none. */
static const char *on_duty_address(const struct gw_notify *n, const char *on_duty,
                                   const struct gw_notify_channel_config *channel)
{
    const struct gw_notify_config *nc = &n->config->notify;
    for (size_t i = 0; on_duty != NULL && i < nc->npeople; i++)
        if (same(nc->people[i].name, on_duty))
            return channel->type == GW_NOTIFY_SMTP ? nc->people[i].email : nc->people[i].mobile;
    return NULL;
}

static bool wants_on_duty(const struct gw_notify *n)
{
    for (size_t i = 0; i < n->config->notify.nroutes; i++)
        if (n->config->notify.routes[i].on_duty)
            return true;
    return false;
}

void gw_notify_on_incident(struct gw_notify *n, struct gw_store *store,
                           const struct gw_store_incident *inc, enum rule_transition transition)
{
    if (n == NULL || inc->id <= 0)
        return;
    const struct gw_notify_config *nc = &n->config->notify;
    const char *kind = transition == RULE_CLEARED ? "cleared" : "raised";
    int64_t at =
        transition == RULE_CLEARED && inc->cleared_ms > 0 ? inc->cleared_ms : inc->updated_ms;
    char *on_duty = NULL;
    if (transition != RULE_UPDATED && wants_on_duty(n) &&
        gw_store_on_duty(store, &on_duty) != EST_OK)
        gw_warn("notify: cannot tell who is on duty: %s", gw_store_errmsg(store));
    for (size_t c = 0; c < n->nchannels; c++) {
        const struct gw_notify_route_config *first = NULL;
        char recipients[1024] = "";
        int64_t due = INT64_MAX;
        for (size_t i = 0; i < nc->nroutes; i++) {
            const struct gw_notify_route_config *r = &nc->routes[i];
            if (r->channel != c || !route_matches(n->config, r, inc, transition))
                continue;
            first = first != NULL ? first : r;
            add_recipients(recipients, sizeof recipients, r->to, r->nto);
            if (r->on_duty)
                add_recipient(recipients, sizeof recipients,
                              on_duty_address(n, on_duty, n->channels[c].config));
            int64_t d = due_after_quiet_hours(n->config, r, inc, at);
            due = d < due ? d : due;
        }
        if (first == NULL)
            continue;
        char cause[64], text[TEXT_MAX], place[256];
        snprintf(cause, sizeof cause, "incident:%lld:%s", (long long)inc->id, kind);
        gw_notify_format(n->config, inc, transition, first->language, text, sizeof text);
        notify_place(n->config, inc, first->language, place, sizeof place);
        struct gw_store_notification row = {
            .cause = cause,
            .channel = n->channels[c].config->name,
            .incident = inc->id,
            .rule = inc->rule,
            .severity = inc->severity,
            .place = place,
            .since_ms = inc->since_ms,
            .text = text,
            .recipients = recipients,
            .created_ms = at,
            .due_ms = due,
        };
        bool added = false;
        if (gw_store_notification_add(store, &row, &added) != EST_OK)
            gw_error("notify: incident %lld for channel %s cannot be queued: %s",
                     (long long)inc->id, row.channel, gw_store_errmsg(store));
        else if (added && due > at)
            gw_info("notify: incident %lld for channel %s held until quiet hours end",
                    (long long)inc->id, row.channel);
    }
    free(on_duty);
}

/* ---------------------------------------------------------------- */
/* Escalation                                                        */
/* ---------------------------------------------------------------- */

#define ESCALATION_CHECK_MS 1000
#define ESCALATION_MAX      64 /* open incidents looked at per check */

/* An open incident waiting for acknowledgement (copied out of the listing). */
struct unacknowledged {
    struct gw_store_incident inc;
    char rule[48], subject_type[16], subject[128], severity[16], text[512];
};

struct unacknowledged_list {
    struct unacknowledged *items;
    size_t n;
};

static bool take_unacknowledged(void *ctx, const struct gw_store_incident *in)
{
    struct unacknowledged_list *l = ctx;
    bool serious = same(in->severity, "major") || same(in->severity, "critical");
    if (!serious || !in->open || in->confirmed_by != NULL || in->disputed_by != NULL ||
        in->acked_by != NULL) /* acknowledged at the desk, or seen on site: nobody to wake */
        return true;
    struct unacknowledged *u = &l->items[l->n++];
    u->inc = *in;
    snprintf(u->rule, sizeof u->rule, "%s", in->rule);
    snprintf(u->subject_type, sizeof u->subject_type, "%s", in->subject_type);
    snprintf(u->subject, sizeof u->subject, "%s", in->subject);
    snprintf(u->severity, sizeof u->severity, "%s", in->severity);
    snprintf(u->text, sizeof u->text, "%s", in->text != NULL ? in->text : "");
    u->inc.rule = u->rule;
    u->inc.subject_type = u->subject_type;
    u->inc.subject = u->subject;
    u->inc.severity = u->severity;
    u->inc.text = u->text;
    u->inc.detail_json = u->inc.confirmed_by = u->inc.disputed_by = u->inc.acked_by = NULL;
    return l->n < ESCALATION_MAX;
}

/* Queues step (0-based) of route r for the incident, once; records it in
 * the patrol log when it is new. */
static void escalate(struct gw_notify *n, struct gw_store *store,
                     const struct gw_notify_route_config *r, size_t step,
                     const struct gw_store_incident *inc, int64_t now)
{
    const struct gw_notify_level_config *lv = &r->escalation[step];
    const struct gw_notify_channel_config *channel = n->channels[r->channel].config;
    bool zh = r->language == GW_LANG_ZH_CN;
    char cause[96], body[TEXT_MAX], text[TEXT_MAX + 96], recipients[1024] = "", place[256];
    snprintf(cause, sizeof cause, "incident:%lld:escalation:%zu", (long long)inc->id, step + 1);
    add_recipients(recipients, sizeof recipients, lv->to, lv->nto);
    gw_notify_format(n->config, inc, RULE_RAISED, r->language, body, sizeof body);
    int minutes = (int)((now - inc->raised_ms) / 60000);
    snprintf(text, sizeof text,
             zh ? "【升级·第%zu级】%d 分钟无人确认\n%s"
                : "[ESCALATED, step %zu] not acknowledged for %d min\n%s",
             step + 1, minutes, body);
    notify_place(n->config, inc, r->language, place, sizeof place);
    struct gw_store_notification row = {
        .cause = cause,
        .channel = channel->name,
        .incident = inc->id,
        .rule = inc->rule,
        .severity = inc->severity,
        .place = place,
        .since_ms = inc->since_ms,
        .text = text,
        .recipients = recipients,
        .created_ms = now,
        .due_ms = due_after_quiet_hours(n->config, r, inc, now),
    };
    bool added = false;
    if (gw_store_notification_add(store, &row, &added) != EST_OK) {
        gw_error("notify: escalation of incident %lld cannot be queued: %s", (long long)inc->id,
                 gw_store_errmsg(store));
        return;
    }
    if (!added)
        return;
    char entry[512];
    snprintf(entry, sizeof entry,
             n->config->gateway.language == GW_LANG_ZH_CN
                 ? "事件 #%lld 已 %d 分钟无人确认：升级第%zu级，通知 %s（%s）"
                 : "Incident #%lld not acknowledged for %d min: escalated to step %zu, %s (%s)",
             (long long)inc->id, minutes, step + 1, recipients, channel->name);
    gw_info("notify: %s", entry);
    if (n->host.patrol != NULL)
        n->host.patrol(n->host.ctx, "escalation", entry, inc->id, 0, "system", NULL);
}

static void check_escalations(struct gw_notify *n, struct gw_store *store, int64_t now)
{
    struct unacknowledged_list l = {calloc(ESCALATION_MAX, sizeof *l.items), 0};
    if (l.items == NULL)
        return;
    if (gw_store_incidents_open(store, take_unacknowledged, &l) != EST_OK)
        gw_error("notify: cannot read the open incidents: %s", gw_store_errmsg(store));
    const struct gw_notify_config *nc = &n->config->notify;
    for (size_t i = 0; i < l.n; i++) {
        const struct gw_store_incident *inc = &l.items[i].inc;
        for (size_t k = 0; k < nc->nroutes; k++) {
            const struct gw_notify_route_config *r = &nc->routes[k];
            if (r->nescalation == 0 || !route_matches(n->config, r, inc, RULE_RAISED))
                continue;
            for (size_t step = 0; step < r->nescalation; step++)
                if (now - inc->raised_ms >= (int64_t)r->escalation[step].after_s * 1000)
                    escalate(n, store, r, step, inc, now);
        }
    }
    free(l.items);
}

/* ---------------------------------------------------------------- */
/* Dispatch                                                          */
/* ---------------------------------------------------------------- */

static size_t channel_index(const struct gw_notify *n, const char *name)
{
    for (size_t i = 0; i < n->nchannels; i++)
        if (same(n->channels[i].config->name, name))
            return i;
    return n->nchannels;
}

/* Whether the channel may take one more message at now (rate, pause). */
static bool channel_may_send(const struct notify_channel *ch, int64_t now)
{
    if (now < ch->paused_until_ms)
        return false;
    if (ch->sent_ms == NULL)
        return true;
    int64_t oldest = ch->sent_ms[ch->sent_next]; /* the send rate_per_min sends ago */
    return oldest == 0 || now - oldest >= 60000;
}

static void channel_sent(struct notify_channel *ch, int64_t now)
{
    if (ch->sent_ms == NULL)
        return;
    ch->sent_ms[ch->sent_next] = now;
    ch->sent_next = (ch->sent_next + 1) % (size_t)ch->config->rate_per_min;
}

struct due_rows {
    struct gw_notify *notify;
    struct result *out;
    size_t nout;
    int64_t now;
    int64_t unknown[DUE_MAX]; /* rows of channels no longer configured */
    size_t nunknown;
};

static bool is_robot(const struct gw_notify_channel_config *c)
{
    return c->type == GW_NOTIFY_WECOM || c->type == GW_NOTIFY_DINGTALK ||
           c->type == GW_NOTIFY_FEISHU;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Adds row to a robot's message already going out (same recipients, room
 * left), or starts a new message. */
static bool take_due_row(void *ctx, const struct gw_store_notification *row)
{
    struct due_rows *d = ctx;
    struct gw_notify *n = d->notify;
    size_t c = channel_index(n, row->channel);
    if (c == n->nchannels) {
        if (d->nunknown < DUE_MAX)
            d->unknown[d->nunknown++] = row->id;
        return true;
    }
    bool robot = is_robot(n->channels[c].config);
    for (size_t i = 0; robot && i < d->nout; i++) {
        struct notify_message *m = &d->out[i].msg;
        if (m->channel != c || !same(m->recipients, row->recipients) ||
            strlen(m->text) + strlen(row->text) + 2 > BATCH_TEXT_MAX)
            continue;
        char *joined = est_asprintf("%s\n\n%s", m->text, row->text);
        int64_t *ids = realloc(m->ids, (m->nids + 1) * sizeof *ids);
        if (ids != NULL)
            m->ids = ids;
        if (joined == NULL || ids == NULL) {
            free(joined);
            return true;
        }
        free(m->text);
        m->text = joined;
        m->attempts = row->attempts < m->attempts ? row->attempts : m->attempts;
        m->ids[m->nids++] = row->id;
        return true;
    }
    if (!channel_may_send(&n->channels[c], d->now))
        return true; /* waits: batched with what comes due later */
    struct result *r = &d->out[d->nout];
    struct notify_message *m = &r->msg;
    m->channel = c;
    m->ids = malloc(sizeof *m->ids);
    m->text = strdup(row->text);
    m->recipients = strdup(row->recipients != NULL ? row->recipients : "");
    m->rule = dup_or_null(row->rule);
    m->severity = dup_or_null(row->severity);
    m->place = dup_or_null(row->place);
    m->incident = row->incident;
    m->since_ms = row->since_ms;
    m->attempts = row->attempts;
    size_t line = strcspn(row->text, "\n");
    m->subject = strndup(row->text, line);
    if (m->ids == NULL || m->text == NULL || m->recipients == NULL || m->subject == NULL) {
        message_free(m);
        return true;
    }
    m->ids[m->nids++] = row->id;
    channel_sent(&n->channels[c], d->now);
    d->nout++;
    return true;
}

/* The wait before attempt number attempts + 1: 1 s doubling to retry_max_s. */
static int64_t backoff_ms(const struct gw_config *config, int attempts)
{
    int64_t wait = 1000;
    for (int i = 0; i < attempts && wait < (int64_t)config->notify.retry_max_s * 1000; i++)
        wait *= 2;
    int64_t cap = (int64_t)config->notify.retry_max_s * 1000;
    return wait < cap ? wait : cap;
}

/* A channel started failing for good (failing true) or answers again:
 * logged, in the patrol log, and an incident of the host's. */
static void record_channel_state(struct gw_notify *n, const struct notify_channel *ch, int64_t now,
                                 bool failing)
{
    bool zh = n->config->gateway.language == GW_LANG_ZH_CN;
    int minutes = (int)((now - ch->failing_since_ms) / 60000);
    char text[400];
    if (failing)
        snprintf(text, sizeof text,
                 zh ? "通知渠道 %s 已连续失败 %d 分钟：%s"
                    : "Notify channel %s failing for %d min: %s",
                 ch->config->name, minutes, ch->last_error);
    else
        snprintf(text, sizeof text,
                 zh ? "通知渠道 %s 已恢复（失败 %d 分钟）"
                    : "Notify channel %s answers again (failed for %d min)",
                 ch->config->name, minutes);
    if (failing)
        gw_error("notify: %s", text);
    else
        gw_info("notify: %s", text);
    if (n->host.patrol != NULL)
        n->host.patrol(n->host.ctx, "notify", text, 0, 0, "system", NULL);
    if (n->host.channel_failing != NULL)
        n->host.channel_failing(n->host.ctx, ch->config->name, failing, text);
}

static void watch_failing_channels(struct gw_notify *n, int64_t now)
{
    int64_t after = (int64_t)n->config->notify.failing_after_s * 1000;
    for (size_t i = 0; i < n->nchannels; i++) {
        struct notify_channel *ch = &n->channels[i];
        if (ch->failing_since_ms != 0 && !ch->failing_reported &&
            now - ch->failing_since_ms >= after) {
            ch->failing_reported = true;
            record_channel_state(n, ch, now, true);
        }
    }
}

size_t gw_notify_failing_channels(const struct gw_notify *n, const char **names, size_t max)
{
    size_t count = 0;
    for (size_t i = 0; n != NULL && i < n->nchannels; i++) {
        if (!n->channels[i].failing_reported)
            continue;
        if (count < max)
            names[count] = n->channels[i].config->name;
        count++;
    }
    return count;
}

static void record_results(struct gw_notify *n, struct gw_store *store, struct result *results,
                           size_t nresults, int64_t now)
{
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        struct notify_channel *ch = &n->channels[r->msg.channel];
        const char *name = ch->config->name;
        if (r->outcome == NOTIFY_DELIVERED) {
            if (ch->failing_reported)
                record_channel_state(n, ch, now, false);
            ch->failing_since_ms = 0;
            ch->failing_reported = false;
            gw_log_limiter_ok(&ch->log);
            for (size_t k = 0; k < r->msg.nids; k++)
                gw_store_notification_delivered(store, r->msg.ids[k], now);
            gw_info("notify: %zu alert%s delivered on channel %s", r->msg.nids,
                    r->msg.nids == 1 ? "" : "s", name);
            continue;
        }
        if (ch->failing_since_ms == 0)
            ch->failing_since_ms = now;
        snprintf(ch->last_error, sizeof ch->last_error, "%s", r->error);
        int64_t due = now + backoff_ms(n->config, r->msg.attempts);
        if (r->outcome == NOTIFY_RATE_LIMITED) {
            int64_t pause = (int64_t)n->config->notify.retry_max_s * 1000;
            ch->paused_until_ms =
                now + (pause < RATE_LIMITED_PAUSE_MS ? pause : RATE_LIMITED_PAUSE_MS);
            due = ch->paused_until_ms;
        }
        for (size_t k = 0; k < r->msg.nids; k++)
            gw_store_notification_retry(store, r->msg.ids[k], due, r->error);
        if (gw_log_limiter_fail(&ch->log))
            gw_warn("notify: channel %s: %s; %zu alert%s wait%s %lld s%s", name, r->error,
                    r->msg.nids, r->msg.nids == 1 ? "" : "s", r->msg.nids == 1 ? "s" : "",
                    (long long)((due - now + 999) / 1000),
                    r->outcome == NOTIFY_RATE_LIMITED ? " (rate limited: channel slowed down)"
                                                      : "");
    }
}

void gw_notify_tick(struct gw_notify *n, struct gw_store *store, int64_t now)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->lock);
    bool busy = n->busy && !n->answered;
    struct result *done = NULL;
    size_t ndone = 0;
    if (!busy && n->busy) {
        done = n->work;
        ndone = n->nwork;
        n->work = NULL;
        n->nwork = 0;
        n->busy = n->answered = false;
    }
    pthread_mutex_unlock(&n->lock);
    if (busy)
        return;
    record_results(n, store, done, ndone, now);
    results_free(done, ndone);
    watch_failing_channels(n, now);
    if (n->escalates && now - n->escalation_checked_ms >= ESCALATION_CHECK_MS) {
        n->escalation_checked_ms = now;
        check_escalations(n, store, now);
    }

    struct due_rows d = {.notify = n, .now = now};
    d.out = calloc(DUE_MAX, sizeof *d.out);
    if (d.out == NULL)
        return;
    if (gw_store_notifications_due(store, now, DUE_MAX, take_due_row, &d) != EST_OK)
        gw_error("notify: cannot read the waiting alerts: %s", gw_store_errmsg(store));
    for (size_t i = 0; i < d.nunknown; i++)
        gw_store_notification_retry(store, d.unknown[i], now + 3600000,
                                    "its channel is no longer configured");
    if (d.nout == 0) {
        free(d.out);
        return;
    }
    pthread_mutex_lock(&n->lock);
    n->work = d.out;
    n->nwork = d.nout;
    n->busy = true;
    n->answered = false;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
}

/* ---------------------------------------------------------------- */
/* Work orders                                                       */
/* ---------------------------------------------------------------- */

static const char *json_text(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void workorder_text(const struct gw_notify *n, const cJSON *wo, int64_t id,
                           const char *event, const char *kind, enum gw_language language,
                           char *out, size_t len)
{
    bool zh = language == GW_LANG_ZH_CN;
    const char *what =
        streq_or(event, "created", zh ? "新建" : "created", "breached", zh ? "超时" : "overdue",
                 zh ? "已完工，待回访" : "completed, awaiting the return visit");
    const char *sla = kind == NULL            ? ""
                      : same(kind, "arrival") ? (zh ? "（未按时到场）" : " (not on site in time)")
                                              : (zh ? "（未按时完成）" : " (not resolved in time)");
    const char *description = json_text(wo, "description");
    const char *location = json_text(wo, "location");
    char link[320] = "";
    if (n->config->notify.console_url != NULL)
        snprintf(link, sizeof link,
                 zh ? "\n处理：%s/?workorder=%lld" : "\nOpen: %s/?workorder=%lld",
                 n->config->notify.console_url, (long long)id);
    snprintf(out, len, zh ? "【工单 #%lld %s】%s%s%s%s%s" : "[Work order #%lld %s]%s%s%s%s%s",
             (long long)id, what, sla, description ? "\n" : "", description ? description : "",
             location ? (zh ? "\n位置：" : "\nWhere: ") : "", location ? location : "");
    size_t used = strlen(out);
    snprintf(out + used, len - used, "%s", link);
}

void gw_notify_on_event(struct gw_notify *n, struct gw_store *store, const char *topic_suffix,
                        const char *payload, int64_t now_ms)
{
    if (n == NULL || topic_suffix == NULL || payload == NULL || payload[0] == '\0')
        return;
    bool escalation = same(topic_suffix, "escalations");
    if (!escalation && strncmp(topic_suffix, "workorders/", 11) != 0)
        return;
    cJSON *wo = cJSON_Parse(payload);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(wo, escalation ? "workorder" : "id");
    const char *state = json_text(wo, "state");
    const char *event = escalation                 ? "breached"
                        : same(state, "open")      ? "created"
                        : same(state, "completed") ? "return_visit"
                                                   : NULL;
    if (!cJSON_IsNumber(idv) || event == NULL) {
        cJSON_Delete(wo);
        return;
    }
    int64_t id = (int64_t)idv->valuedouble;
    const char *kind = escalation ? json_text(wo, "kind") : NULL;
    const char *building = json_text(wo, "building");
    const struct gw_notify_config *nc = &n->config->notify;
    for (size_t c = 0; c < n->nchannels; c++) {
        const struct gw_notify_route_config *first = NULL;
        char recipients[1024] = "";
        for (size_t i = 0; i < nc->nroutes; i++) {
            const struct gw_notify_route_config *r = &nc->routes[i];
            if (r->channel != c || !listed(r->workorder_events, r->nworkorder_events, event) ||
                r->nworkorder_events == 0 ||
                (building != NULL && !listed(r->buildings, r->nbuildings, building)))
                continue;
            first = first != NULL ? first : r;
            add_recipients(recipients, sizeof recipients, r->to, r->nto);
        }
        if (first == NULL)
            continue;
        char cause[96], text[TEXT_MAX];
        snprintf(cause, sizeof cause, "workorder:%lld:%s%s%s", (long long)id, event,
                 kind != NULL ? ":" : "", kind != NULL ? kind : "");
        workorder_text(n, wo, id, event, kind, first->language, text, sizeof text);
        struct gw_store_notification row = {
            .cause = cause,
            .channel = n->channels[c].config->name,
            .severity = json_text(wo, "severity"),
            .place = json_text(wo, "location"),
            .text = text,
            .recipients = recipients,
            .created_ms = now_ms,
            .due_ms = now_ms,
        };
        if (gw_store_notification_add(store, &row, NULL) != EST_OK)
            gw_error("notify: work order %lld for channel %s cannot be queued: %s", (long long)id,
                     row.channel, gw_store_errmsg(store));
    }
    cJSON_Delete(wo);
}
