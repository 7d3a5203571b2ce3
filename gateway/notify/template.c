/* template.c - an http channel's templates filled in: each {placeholder}
 * replaced by the message's value, escaped for the body's content type
 * (JSON string or URL form), everything else copied as it is. */
#include "notify_internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct text_buf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void put(struct text_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put_json(struct text_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c == '\n') {
            put(b, "\\n", 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, s, 1);
        }
    }
}

static void put_value(struct text_buf *b, const char *value, char escape)
{
    if (escape == 'j') {
        put_json(b, value);
    } else if (escape == 'u') {
        char *e = curl_easy_escape(NULL, value, 0);
        if (e == NULL)
            b->failed = true;
        else
            put(b, e, strlen(e));
        curl_free(e);
    } else {
        put(b, value, strlen(value));
    }
}

/* The value of placeholder name (len bytes), into scratch when computed. */
static const char *value_of(const char *name, size_t len, const struct notify_message *m,
                            const struct notify_channel *ch, const struct gw_config *config,
                            char *scratch, size_t scratch_len)
{
#define IS(word) (len == strlen(word) && strncmp(name, word, len) == 0)
    if (IS("text"))
        return m->text;
    if (IS("severity"))
        return m->severity != NULL ? m->severity : "";
    if (IS("rule"))
        return m->rule != NULL ? m->rule : "";
    if (IS("where"))
        return m->place != NULL ? m->place : "";
    if (IS("to"))
        return m->recipients != NULL ? m->recipients : "";
    if (IS("secret"))
        return ch->password != NULL ? ch->password : "";
    if (IS("since")) {
        notify_local_time(config, m->since_ms, scratch, scratch_len);
        return scratch;
    }
    if (IS("incident")) {
        snprintf(scratch, scratch_len, "%lld", (long long)m->incident);
        return scratch;
    }
    if (IS("link")) {
        if (config->notify.console_url == NULL)
            return "";
        snprintf(scratch, scratch_len, "%s/?incident=%lld", config->notify.console_url,
                 (long long)m->incident);
        return scratch;
    }
#undef IS
    return NULL;
}

char *notify_fill_template(const char *tmpl, const struct notify_message *m,
                           const struct notify_channel *ch, const struct gw_config *config,
                           char escape)
{
    struct text_buf b = {NULL, 0, 0, false};
    put(&b, "", 0);
    const char *p = tmpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (open == NULL) {
            put(&b, p, strlen(p));
            break;
        }
        size_t len = strspn(open + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
        char scratch[320];
        const char *value = len > 0 && open[1 + len] == '}'
                                ? value_of(open + 1, len, m, ch, config, scratch, sizeof scratch)
                                : NULL;
        put(&b, p, (size_t)(open - p));
        if (value == NULL) { /* not a placeholder (JSON braces): copied */
            put(&b, open, 1);
            p = open + 1;
            continue;
        }
        put_value(&b, value, escape);
        p = open + len + 2;
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
