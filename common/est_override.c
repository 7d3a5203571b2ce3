/* est_override.c - "--set PATH=VALUE" applied to a libconfig tree: path
 * tokens, list elements by index or id/name, and typing the value. */
#include "est_override.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"

#define MAX_INDEX_DIGITS 6

struct override_state {
    enum est_override_mode mode;
    void *hook;
    struct est_override_result *result;
};

__attribute__((format(printf, 2, 3))) static est_err fail(struct override_state *st,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st->result->message = est_vasprintf(fmt, ap);
    va_end(ap);
    return st->result->message != NULL ? EST_ERR_INVALID : EST_ERR_NOMEM;
}

/* Next path token: "name", "[N]" or a bare "N". Splits the path in place
 * (the path needs room for one extra byte per '['). */
static bool next_token(char **pp, char **token, bool *bracket)
{
    char *p = *pp;
    *bracket = false;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (!close || close == p + 1)
            return false;
        *close = '\0';
        *token = p + 1;
        *bracket = true;
        p = close + 1;
        if (*p == '.')
            p++;
        else if (*p && *p != '[')
            return false;
    } else {
        size_t n = strcspn(p, ".[");
        if (n == 0)
            return false;
        *token = p;
        p += n;
        if (*p == '.') {
            *p++ = '\0';
            if (!*p)
                return false;
        } else if (*p == '[') {
            /* "buses[0]": end the name here; the '[' is read next time */
            memmove(p + 1, p, strlen(p) + 1);
            *p++ = '\0';
        }
    }
    *pp = p;
    return true;
}

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static bool member_is(const config_setting_t *e, const char *member, const char *value)
{
    const char *text = NULL;
    return config_setting_lookup_string(e, member, &text) && strcmp(text, value) == 0;
}

/* The element of a list or array by index or by its id or name member. */
static config_setting_t *list_element(config_setting_t *list, const char *token, bool bracket)
{
    if (bracket || all_digits(token)) {
        if (!all_digits(token) || strlen(token) > MAX_INDEX_DIGITS)
            return NULL;
        return config_setting_get_elem(list, (unsigned)atoi(token));
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_is_group(e) && (member_is(e, "id", token) || member_is(e, "name", token)))
            return e;
    }
    return NULL;
}

static bool text_to_ll(const char *text, int base, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, base);
    if (!*text || *end || errno)
        return false;
    *out = v;
    return true;
}

static bool text_to_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* A number that is not an integer: "0.25", "1e3". */
static bool is_fraction(const char *text)
{
    char *end;
    errno = 0;
    (void)strtoll(text, &end, 10);
    double d;
    return *text && *end && text_to_double(text, &d);
}

/* Adds parent.name holding value, typed as the mode says. */
static config_setting_t *add_scalar(struct override_state *st, config_setting_t *parent,
                                    const char *name, const char *value)
{
    long long ll;
    double d;
    config_setting_t *s = NULL;
    bool infer = st->mode == EST_OVERRIDE_NEW_INFERRED;
    st->result->created = true;
    if (infer && text_to_ll(value, 0, &ll)) {
        bool small = ll >= INT32_MIN && ll <= INT32_MAX;
        s = config_setting_add(parent, name, small ? CONFIG_TYPE_INT : CONFIG_TYPE_INT64);
        if (s && !(small ? config_setting_set_int(s, (int)ll) : config_setting_set_int64(s, ll)))
            s = NULL;
    } else if (infer && text_to_double(value, &d)) {
        s = config_setting_add(parent, name, CONFIG_TYPE_FLOAT);
        if (s && !config_setting_set_float(s, d))
            s = NULL;
    } else if (infer && (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)) {
        s = config_setting_add(parent, name, CONFIG_TYPE_BOOL);
        if (s && !config_setting_set_bool(s, value[0] == 't'))
            s = NULL;
    } else {
        s = config_setting_add(parent, name, CONFIG_TYPE_STRING);
        if (s && !config_setting_set_string(s, value))
            s = NULL;
    }
    if (s)
        config_setting_set_hook(s, st->hook);
    return s;
}

/* Replaces the group member s by a new scalar typed as the mode says; NULL
 * when s is not a member of a group or the tree refuses. */
static config_setting_t *replace_scalar(struct override_state *st, config_setting_t *s,
                                        const char *value)
{
    config_setting_t *parent = config_setting_parent(s);
    const char *name = config_setting_name(s);
    if (parent == NULL || name == NULL || !config_setting_is_group(parent))
        return NULL;
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    config_setting_t *t = NULL;
    if (config_setting_remove(parent, copy) == CONFIG_TRUE)
        t = add_scalar(st, parent, copy, value);
    free(copy);
    return t;
}

/* Whether the scalar's own type takes value; sets it when so. */
static bool set_typed(config_setting_t *s, const char *value)
{
    long long i;
    double d;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        return text_to_ll(value, 10, &i) && i >= INT_MIN && i <= INT_MAX &&
               config_setting_set_int(s, (int)i);
    case CONFIG_TYPE_INT64:
        return text_to_ll(value, 10, &i) && config_setting_set_int64(s, i);
    case CONFIG_TYPE_FLOAT:
        return text_to_double(value, &d) && config_setting_set_float(s, d);
    case CONFIG_TYPE_BOOL:
        return (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) &&
               config_setting_set_bool(s, strcmp(value, "true") == 0);
    case CONFIG_TYPE_STRING:
        return config_setting_set_string(s, value);
    default:
        return false;
    }
}

/* Why value does not fit the scalar s. */
static est_err type_mismatch(struct override_state *st, const config_setting_t *s,
                             const char *value)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return fail(st, "'%s' is not an integer", value);
    case CONFIG_TYPE_FLOAT:
        return fail(st, "'%s' is not a number", value);
    case CONFIG_TYPE_BOOL:
        return fail(st, "'%s' is not true or false", value);
    default:
        return EST_ERR_NOMEM; /* a string refused only for want of memory */
    }
}

/* Sets an existing scalar from text. In NEW_AS_TEXT mode an integer given a
 * fractional number (e.g. mqtt.outbox_limit_mb=0.25 over "= 16") becomes a
 * created string, so the key's own row types it; in NEW_INFERRED mode any
 * non-string scalar that does not take the value is replaced by one that does. */
static est_err set_existing(struct override_state *st, config_setting_t *s, const char *value)
{
    if (config_setting_is_aggregate(s))
        return fail(st, "the path names a group or list, not a single setting");
    if (set_typed(s, value)) {
        config_setting_set_hook(s, st->hook);
        return EST_OK;
    }
    bool replace = st->mode == EST_OVERRIDE_NEW_INFERRED ||
                   (config_setting_type(s) == CONFIG_TYPE_INT && is_fraction(value));
    if (replace && replace_scalar(st, s, value) != NULL)
        return EST_OK;
    return type_mismatch(st, s, value);
}

static const char *name_or(const config_setting_t *s, const char *fallback)
{
    return config_setting_name(s) ? config_setting_name(s) : fallback;
}

/* One step down the path from cur; *child NULL when the value was stored. */
static est_err step(struct override_state *st, config_setting_t *cur, const char *token,
                    bool bracket, bool last, const char *value, config_setting_t **child)
{
    *child = NULL;
    if (config_setting_is_group(cur)) {
        if (bracket)
            return fail(st, "'[%s]': '%s' is a group, not a list", token, name_or(cur, "(top)"));
        *child = config_setting_get_member(cur, token);
        if (*child != NULL)
            return EST_OK;
        if (last)
            return add_scalar(st, cur, token, value) ? EST_OK
                                                     : fail(st, "cannot create setting '%s'", token);
        st->result->created = true;
        *child = config_setting_add(cur, token, CONFIG_TYPE_GROUP);
        if (*child == NULL)
            return fail(st, "cannot create setting '%s'", token);
        config_setting_set_hook(*child, st->hook);
        return EST_OK;
    }
    if (config_setting_is_aggregate(cur)) {
        *child = list_element(cur, token, bracket);
        return *child ? EST_OK : fail(st, "no element '%s' in %s", token, name_or(cur, "the list"));
    }
    return fail(st, "'%s' is not a group or list", name_or(cur, "(top)"));
}

est_err est_config_override(config_t *lc, const char *text, enum est_override_mode mode,
                            void *hook, struct est_override_result *result)
{
    *result = (struct est_override_result){0};
    struct override_state st = {mode, hook, result};
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return fail(&st, "expected PATH=VALUE");
    size_t plen = (size_t)(eq - text);
    char *path = malloc(plen * 2 + 2); /* room for next_token's splits */
    if (!path)
        return EST_ERR_NOMEM;
    memcpy(path, text, plen);
    path[plen] = '\0';
    const char *value = eq + 1;
    config_setting_t *cur = config_root_setting(lc);
    char *p = path, *token;
    bool bracket;
    est_err err = EST_OK;
    while (err == EST_OK && *p) {
        if (!next_token(&p, &token, &bracket)) {
            err = fail(&st, "malformed path");
            break;
        }
        config_setting_t *child = NULL;
        err = step(&st, cur, token, bracket, !*p, value, &child);
        if (err == EST_OK && child == NULL)
            goto out; /* created with its value */
        cur = child;
    }
    if (err == EST_OK)
        err = set_existing(&st, cur, value);
out:
    free(path);
    return err;
}
