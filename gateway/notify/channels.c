/* channels.c - one call to one channel with libcurl: the WeCom, DingTalk
 * and Feishu robots' JSON (DingTalk signed when it has a secret), a
 * templated HTTP call, an SMTP e-mail; and what counts as delivered
 * (errcode 0 / HTTP 2xx / SMTP 250). */
#include "notify_internal.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* WeCom's answer when a robot sent more than 20 messages a minute. */
#define WECOM_RATE_LIMITED 45009
/* DingTalk's answer for too many messages (its own rate limit). */
#define DINGTALK_RATE_LIMITED 130101
#define ANSWER_MAX            (64 * 1024)

struct answer {
    char *data;
    size_t len;
};

static size_t keep_answer(char *ptr, size_t size, size_t n, void *ctx)
{
    struct answer *a = ctx;
    size_t bytes = size * n;
    if (a->len + bytes > ANSWER_MAX)
        return bytes; /* the rest is not needed to judge success */
    char *grown = realloc(a->data, a->len + bytes + 1);
    if (grown == NULL)
        return 0;
    a->data = grown;
    memcpy(a->data + a->len, ptr, bytes);
    a->len += bytes;
    a->data[a->len] = '\0';
    return bytes;
}

static char *url_encode(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = c != NULL ? curl_easy_escape(c, s, 0) : NULL;
    char *copy = e != NULL ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(c);
    return copy;
}

bool notify_dingtalk_sign(const char *secret, int64_t timestamp_ms, char *out, size_t len)
{
    char *to_sign = est_asprintf("%lld\n%s", (long long)timestamp_ms, secret);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    bool ok = to_sign != NULL &&
              HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)to_sign,
                   strlen(to_sign), mac, &mac_len) != NULL;
    free(to_sign);
    unsigned char b64[128];
    ok = ok && EVP_EncodeBlock(b64, mac, (int)mac_len) > 0;
    char *encoded = ok ? url_encode((const char *)b64) : NULL;
    ok = encoded != NULL && strlen(encoded) < len;
    if (ok)
        snprintf(out, len, "%s", encoded);
    free(encoded);
    return ok;
}

/* The recipients "a,b" as a JSON array of strings. */
static cJSON *recipient_array(const char *recipients)
{
    cJSON *list = cJSON_CreateArray();
    for (const char *p = recipients; list != NULL && p != NULL && *p;) {
        size_t n = strcspn(p, ",");
        char *one = n > 0 ? strndup(p, n) : NULL;
        if (one != NULL)
            cJSON_AddItemToArray(list, cJSON_CreateString(one));
        free(one);
        p += n;
        p += *p == ',';
    }
    return list;
}

/* DingTalk highlights a mention only when "@mobile" is in the text. */
static char *text_with_mentions(const char *text, const char *recipients)
{
    size_t len = strlen(text) + 2 * strlen(recipients) + 4;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    snprintf(out, len, "%s", text);
    for (const char *p = recipients; *p;) {
        size_t n = strcspn(p, ",");
        size_t used = strlen(out);
        if (n > 0)
            snprintf(out + used, len - used, "%s@%.*s", p == recipients ? "\n" : " ", (int)n, p);
        p += n;
        p += *p == ',';
    }
    return out;
}

static char *robot_body(const struct gw_notify_channel_config *c, const struct notify_message *m)
{
    cJSON *root = cJSON_CreateObject();
    const char *recipients = m->recipients != NULL ? m->recipients : "";
    if (c->type == GW_NOTIFY_WECOM) {
        cJSON_AddStringToObject(root, "msgtype", "text");
        cJSON *text = cJSON_AddObjectToObject(root, "text");
        cJSON_AddStringToObject(text, "content", m->text);
        if (recipients[0] != '\0')
            cJSON_AddItemToObject(text, "mentioned_mobile_list", recipient_array(recipients));
    } else if (c->type == GW_NOTIFY_DINGTALK) {
        char *content = text_with_mentions(m->text, recipients);
        cJSON_AddStringToObject(root, "msgtype", "text");
        cJSON *text = cJSON_AddObjectToObject(root, "text");
        cJSON_AddStringToObject(text, "content", content != NULL ? content : m->text);
        free(content);
        cJSON *at = cJSON_AddObjectToObject(root, "at");
        cJSON_AddItemToObject(at, "atMobiles", recipient_array(recipients));
    } else {
        cJSON_AddStringToObject(root, "msg_type", "text");
        cJSON *content = cJSON_AddObjectToObject(root, "content");
        cJSON_AddStringToObject(content, "text", m->text);
    }
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return body;
}

/* The robot's URL with its key or token (and DingTalk's signature). */
static char *robot_url(const struct notify_channel *ch, int64_t now_ms)
{
    const struct gw_notify_channel_config *c = ch->config;
    char *key = url_encode(ch->key != NULL ? ch->key : "");
    char *url = NULL;
    const char *sep = strchr(c->url, '?') != NULL ? "&" : "?";
    if (key == NULL)
        return NULL;
    if (c->type == GW_NOTIFY_WECOM) {
        url = est_asprintf("%s%skey=%s", c->url, sep, key);
    } else if (c->type == GW_NOTIFY_DINGTALK) {
        char sign[128];
        if (ch->sign_secret == NULL)
            url = est_asprintf("%s%saccess_token=%s", c->url, sep, key);
        else if (notify_dingtalk_sign(ch->sign_secret, now_ms, sign, sizeof sign))
            url = est_asprintf("%s%saccess_token=%s&timestamp=%lld&sign=%s", c->url, sep, key,
                               (long long)now_ms, sign);
    } else {
        size_t n = strlen(c->url);
        url = est_asprintf("%s%s%s", c->url, n > 0 && c->url[n - 1] == '/' ? "" : "/", key);
    }
    free(key);
    return url;
}

/* Judges a robot's JSON answer: errcode (WeCom, DingTalk), code or
 * StatusCode (Feishu) must be 0. */
static enum notify_outcome robot_outcome(const char *answer, char *error, size_t error_len)
{
    cJSON *root = answer != NULL ? cJSON_Parse(answer) : NULL;
    if (!cJSON_IsObject(root)) {
        snprintf(error, error_len, "the robot's answer is not JSON");
        cJSON_Delete(root);
        return NOTIFY_FAILED;
    }
    static const char *const names[] = {"errcode", "code", "StatusCode"};
    enum notify_outcome outcome = NOTIFY_FAILED;
    snprintf(error, error_len, "the robot's answer has no errcode");
    for (size_t i = 0; i < 3; i++) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, names[i]);
        if (!cJSON_IsNumber(code))
            continue;
        int value = (int)code->valuedouble;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "errmsg");
        if (value == 0) {
            outcome = NOTIFY_DELIVERED;
        } else {
            outcome = value == WECOM_RATE_LIMITED || value == DINGTALK_RATE_LIMITED
                          ? NOTIFY_RATE_LIMITED
                          : NOTIFY_FAILED;
            snprintf(error, error_len, "%s %d%s%.100s", names[i], value,
                     cJSON_IsString(msg) ? ": " : "", cJSON_IsString(msg) ? msg->valuestring : "");
        }
        break;
    }
    cJSON_Delete(root);
    return outcome;
}

/* The content type an http channel declares: 'j' JSON, 'u' form, 0 other. */
static char template_escape(const struct gw_notify_channel_config *c)
{
    for (size_t i = 0; i < c->nheaders; i++) {
        if (strncasecmp(c->headers[i], "content-type:", 13) != 0)
            continue;
        if (strstr(c->headers[i], "json") != NULL)
            return 'j';
        if (strstr(c->headers[i], "x-www-form-urlencoded") != NULL)
            return 'u';
    }
    return 0;
}

/* RFC 5322 message: headers (subject in RFC 2047 base64) and the text. */
static char *mail_message(const struct notify_channel *ch, const struct notify_message *m)
{
    const char *subject = m->subject != NULL ? m->subject : "estate-gw";
    size_t slen = strlen(subject);
    unsigned char *b64 = malloc(4 * ((slen + 2) / 3) + 1);
    if (b64 == NULL)
        return NULL;
    EVP_EncodeBlock(b64, (const unsigned char *)subject, (int)slen);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char *text = est_asprintf("Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: =?UTF-8?B?%s?=\r\n"
                              "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                              "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
                              date, ch->config->from, m->recipients, b64, m->text);
    free(b64);
    return text;
}

struct mail_reader {
    const char *data;
    size_t left;
};

static size_t read_mail(char *ptr, size_t size, size_t n, void *ctx)
{
    struct mail_reader *r = ctx;
    size_t room = size * n;
    size_t take = r->left < room ? r->left : room;
    memcpy(ptr, r->data, take);
    r->data += take;
    r->left -= take;
    return take;
}

static struct curl_slist *mail_recipients(const char *recipients)
{
    struct curl_slist *list = NULL;
    for (const char *p = recipients; *p;) {
        size_t n = strcspn(p, ",");
        char *one = n > 0 ? strndup(p, n) : NULL;
        if (one != NULL) {
            struct curl_slist *grown = curl_slist_append(list, one);
            list = grown != NULL ? grown : list;
        }
        free(one);
        p += n;
        p += *p == ',';
    }
    return list;
}

static enum notify_outcome send_mail(CURL *curl, const struct notify_channel *ch,
                                     const struct notify_message *m, char *error, size_t error_len)
{
    const struct gw_notify_channel_config *c = ch->config;
    char *message = mail_message(ch, m);
    struct curl_slist *rcpt = mail_recipients(m->recipients != NULL ? m->recipients : "");
    if (message == NULL || rcpt == NULL) {
        snprintf(error, error_len, message == NULL ? "out of memory" : "no recipients");
        free(message);
        curl_slist_free_all(rcpt);
        return NOTIFY_FAILED;
    }
    struct mail_reader reader = {message, strlen(message)};
    curl_easy_setopt(curl, CURLOPT_URL, c->url);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, c->from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_mail);
    curl_easy_setopt(curl, CURLOPT_READDATA, &reader);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_USE_SSL, c->tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
    if (c->username != NULL)
        curl_easy_setopt(curl, CURLOPT_USERNAME, c->username);
    if (ch->password != NULL)
        curl_easy_setopt(curl, CURLOPT_PASSWORD, ch->password);
    char curl_error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpt);
    free(message);
    if (rc == CURLE_OK && code == 250)
        return NOTIFY_DELIVERED;
    snprintf(error, error_len, "smtp: %s (reply %ld)",
             curl_error[0] ? curl_error : curl_easy_strerror(rc), code);
    return NOTIFY_FAILED;
}

static enum notify_outcome send_http(CURL *curl, const struct notify_channel *ch,
                                     const struct notify_message *m, const struct gw_config *config,
                                     int64_t now_ms, char *error, size_t error_len)
{
    const struct gw_notify_channel_config *c = ch->config;
    bool robot = c->type != GW_NOTIFY_HTTP;
    char escape = robot ? 'j' : template_escape(c);
    char *url = robot ? robot_url(ch, now_ms) : strdup(c->url);
    char *body = robot
                     ? robot_body(c, m)
                     : notify_fill_template(c->body != NULL ? c->body : "", m, ch, config, escape);
    struct curl_slist *headers = NULL;
    bool ok = url != NULL && body != NULL;
    if (robot)
        headers = curl_slist_append(headers, "Content-Type: application/json; charset=utf-8");
    for (size_t i = 0; ok && !robot && i < c->nheaders; i++) {
        char *h = notify_fill_template(c->headers[i], m, ch, config, 0);
        struct curl_slist *grown = h != NULL ? curl_slist_append(headers, h) : NULL;
        free(h);
        ok = grown != NULL;
        headers = grown != NULL ? grown : headers;
    }
    enum notify_outcome outcome = NOTIFY_FAILED;
    struct answer answer = {NULL, 0};
    char curl_error[CURL_ERROR_SIZE] = "";
    if (!ok) {
        snprintf(error, error_len, "cannot build the request (out of memory or signing failed)");
        goto done;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, robot || c->method == NULL ? "POST" : c->method);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_answer);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        snprintf(error, error_len, "%s", curl_error[0] ? curl_error : curl_easy_strerror(rc));
    } else if (status < 200 || status > 299) {
        snprintf(error, error_len, "HTTP %ld", status);
        outcome = status == 429 ? NOTIFY_RATE_LIMITED : NOTIFY_FAILED;
    } else {
        outcome = robot ? robot_outcome(answer.data, error, error_len) : NOTIFY_DELIVERED;
    }
done:
    curl_slist_free_all(headers);
    free(answer.data);
    free(body);
    free(url);
    return outcome;
}

/* libcurl's progress callback: non-zero stops the call. */
static int keep_going(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                      curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load((const atomic_bool *)ctx) ? 1 : 0;
}

enum notify_outcome notify_send(const struct notify_channel *ch, const struct notify_message *msg,
                                const struct gw_config *config, int64_t now_ms,
                                const atomic_bool *abandon, char *error, size_t error_len)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(error, error_len, "libcurl: cannot start a call");
        return NOTIFY_FAILED;
    }
    const struct gw_notify_channel_config *c = ch->config;
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, keep_going);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)abandon);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    if (c->ca_file != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
    enum notify_outcome outcome = c->type == GW_NOTIFY_SMTP
                                      ? send_mail(curl, ch, msg, error, error_len)
                                      : send_http(curl, ch, msg, config, now_ms, error, error_len);
    curl_easy_cleanup(curl);
    return outcome;
}
