/* model_file.c - reads one device model file (libconfig, etc/models/<name>.conf)
 * into a struct drv_model, checking it as it goes: every mistake is reported
 * as "FILE:LINE: message", and a model with any mistake is not returned. */
#include "drivers.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SLOW_EVERY 60
#define MAX_NAME_LEN 64
#define MAX_EVERY_N_POLLS 100000
#define MAX_SLAVE_SWITCH_DELAY_MS 10000
#define CJT188_TYPE_COLD_WATER 0x10
#define DLT645_MAX_VALUE_BYTES 8

struct parser {
    const char *file;
    char *errors;              /* "FILE:LINE: message\n" lines */
    size_t errors_len;
    unsigned nerrors;
    bool nomem;
    struct drv_model *model;
    const config_setting_t *root;
};

__attribute__((format(printf, 3, 0))) static void vfail_line(struct parser *P, unsigned line,
                                                             const char *fmt, va_list ap)
{
    P->nerrors++;
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    int head = snprintf(NULL, 0, "%s:%u: ", P->file, line > 0 ? line : 1);
    if (n < 0 || head < 0) {
        P->nomem = true;
        return;
    }
    size_t need = P->errors_len + (size_t)head + (size_t)n + 2;
    char *grown = realloc(P->errors, need);
    if (grown == NULL) {
        P->nomem = true;
        return;
    }
    P->errors = grown;
    char *at = grown + P->errors_len;
    snprintf(at, (size_t)head + 1, "%s:%u: ", P->file, line > 0 ? line : 1);
    vsnprintf(at + head, (size_t)n + 1, fmt, ap);
    at[head + n] = '\n';
    at[head + n + 1] = '\0';
    P->errors_len = need - 1;
}

__attribute__((format(printf, 3, 4))) static void fail_line(struct parser *P, unsigned line,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_line(P, line, fmt, ap);
    va_end(ap);
}

/* One message at the setting's line (line 1 for the file as a whole). */
__attribute__((format(printf, 3, 4))) static void fail(struct parser *P, const config_setting_t *s,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail_line(P, s != NULL ? config_setting_source_line(s) : 0, fmt, ap);
    va_end(ap);
}

#define SHOWN_MAX 48

/* A file's text as it may appear in a one-line message: control
 * characters become '?', and long text is cut with "...". */
static const char *shown(const char *text, char out[SHOWN_MAX])
{
    size_t n = 0;
    for (; text[n] != '\0' && n < SHOWN_MAX - 4; n++) {
        unsigned char c = (unsigned char)text[n];
        out[n] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    if (text[n] != '\0') {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static char *dup_text(struct parser *P, const char *text)
{
    char *copy = text != NULL ? strdup(text) : NULL;
    if (text != NULL && copy == NULL)
        P->nomem = true;
    return copy;
}

static void *alloc_zeroed(struct parser *P, size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);
    if (p == NULL)
        P->nomem = true;
    return p;
}

/* ------------------------------------------------------------ values */

static void check_keys(struct parser *P, const config_setting_t *group, const char *what,
                       const char *const *keys)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        size_t k = 0;
        while (keys[k] != NULL && (name == NULL || strcmp(keys[k], name) != 0))
            k++;
        if (keys[k] == NULL)
            fail(P, s, "%s: unknown key '%s'", what, name ? name : "?");
    }
}

/* The member, or NULL (reported when required). */
static const config_setting_t *member(struct parser *P, const config_setting_t *group,
                                      const char *what, const char *key, bool required)
{
    const config_setting_t *s = config_setting_get_member(group, key);
    if (s == NULL && required)
        fail(P, group, "%s: %s is missing", what, key);
    return s;
}

static bool is_int(const config_setting_t *s)
{
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* Integer in lo..hi; false when absent or wrong (wrong is reported). */
static bool get_int(struct parser *P, const config_setting_t *group, const char *what,
                    const char *key, long long lo, long long hi, bool required, long long *out)
{
    const config_setting_t *s = member(P, group, what, key, required);
    if (s == NULL)
        return false;
    if (!is_int(s)) {
        fail(P, s, "%s: %s must be an integer", what, key);
        return false;
    }
    long long v = config_setting_get_int64(s);
    if (v < lo || v > hi) {
        fail(P, s, "%s: %s %lld is outside %lld..%lld", what, key, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

static bool get_number(struct parser *P, const config_setting_t *group, const char *what,
                       const char *key, bool required, double *out)
{
    const config_setting_t *s = member(P, group, what, key, required);
    if (s == NULL)
        return false;
    double v;
    if (is_int(s))
        v = (double)config_setting_get_int64(s);
    else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else {
        fail(P, s, "%s: %s must be a number", what, key);
        return false;
    }
    if (!isfinite(v)) {
        fail(P, s, "%s: %s must be finite", what, key);
        return false;
    }
    *out = v;
    return true;
}

static bool get_text(struct parser *P, const config_setting_t *group, const char *what,
                     const char *key, bool required, const char **out)
{
    const config_setting_t *s = member(P, group, what, key, required);
    if (s == NULL)
        return false;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        fail(P, s, "%s: %s must be a string", what, key);
        return false;
    }
    *out = config_setting_get_string(s);
    return true;
}

static bool get_bool(struct parser *P, const config_setting_t *group, const char *what,
                     const char *key, bool *out)
{
    const config_setting_t *s = member(P, group, what, key, false);
    if (s == NULL)
        return false;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        fail(P, s, "%s: %s must be true or false", what, key);
        return false;
    }
    *out = config_setting_get_bool(s) != 0;
    return true;
}

/* Index of text in names (NULL-terminated), or -1 (reported). */
static int get_choice(struct parser *P, const config_setting_t *group, const char *what,
                      const char *key, bool required, const char *const *names)
{
    const char *text = NULL;
    if (!get_text(P, group, what, key, required, &text))
        return -1;
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(names[i], text) == 0)
            return i;
    size_t len = 1;
    for (int i = 0; names[i] != NULL; i++)
        len += strlen(names[i]) + 2;
    char *list = calloc(1, len);
    if (list == NULL) {
        P->nomem = true;
        return -1;
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (i > 0)
            strcat(list, ", ");
        strcat(list, names[i]);
    }
    char buf[SHOWN_MAX];
    fail(P, config_setting_get_member(group, key), "%s: %s '%s' is not one of %s", what, key,
         shown(text, buf), list);
    free(list);
    return -1;
}

static const config_setting_t *get_group(struct parser *P, const config_setting_t *parent,
                                         const char *what, const char *key, bool required)
{
    const config_setting_t *s = member(P, parent, what, key, required);
    if (s != NULL && !config_setting_is_group(s)) {
        fail(P, s, "%s: %s must be a group { ... }", what, key);
        return NULL;
    }
    return s;
}

static const config_setting_t *get_list(struct parser *P, const config_setting_t *parent,
                                        const char *what, const char *key, bool required)
{
    const config_setting_t *s = member(P, parent, what, key, required);
    if (s != NULL && !config_setting_is_list(s) && !config_setting_is_array(s)) {
        fail(P, s, "%s: %s must be a list ( { ... }, ... )", what, key);
        return NULL;
    }
    return s;
}

static const char *const type_names[] = {"uint16", "int16", "uint32", "int32", "float32", NULL};
static const char *const order_names[] = {"ABCD", "CDAB", "BADC", "DCBA", NULL};
static const char *const kind_names[] = {"electricity", "water", "fire_panel", NULL};
static const char *const valve_state_names[] = {"unknown", "open", "closed", "moving", NULL};

static int quantity_of(struct parser *P, const config_setting_t *group, const char *what,
                       const char *key)
{
    const char *name = NULL;
    if (!get_text(P, group, what, key, true, &name))
        return -1;
    int q = drv_quantity_from_name(name);
    char buf[SHOWN_MAX];
    if (q < 0)
        fail(P, config_setting_get_member(group, key),
             "%s: '%s' is not a quantity name (SPEC \"Quantity names\")", what, shown(name, buf));
    return q;
}

/* ----------------------------------------------------------- sections */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return false;
    }
    return true;
}

static void parse_identity(struct parser *P)
{
    struct drv_model *m = P->model;
    const char *text = NULL;
    if (get_text(P, P->root, "model file", "name", true, &text)) {
        char buf[SHOWN_MAX];
        if (!name_ok(text))
            fail(P, config_setting_get_member(P->root, "name"),
                 "name '%s' must be 1..64 of a-z 0-9 - _ .", shown(text, buf));
        m->name = dup_text(P, text);
    }
    if (get_text(P, P->root, "model file", "vendor", true, &text))
        m->vendor = dup_text(P, text);
    if (get_text(P, P->root, "model file", "model", true, &text))
        m->product = dup_text(P, text);
    if (get_text(P, P->root, "model file", "description", true, &text))
        m->description = dup_text(P, text);
    int kind = get_choice(P, P->root, "model file", "kind", true, kind_names);
    if (kind >= 0)
        m->kind = (enum drv_kind)kind;
    static const char *const protocols[] = {"modbus", "dlt645", "cjt188", NULL};
    int protocol = get_choice(P, P->root, "model file", "protocol", true, protocols);
    if (protocol >= 0)
        m->protocol = (enum drv_protocol)protocol;
    long long v;
    m->dlt645_version = 2007;
    if (get_int(P, P->root, "model file", "dlt645_version", 1997, 2007, false, &v)) {
        if (m->protocol != DRV_PROTO_DLT645 || (v != 1997 && v != 2007))
            fail(P, config_setting_get_member(P->root, "dlt645_version"),
                 "dlt645_version is 2007 or 1997, for protocol \"dlt645\" only");
        m->dlt645_version = (int)v;
    }
    m->cjt188_meter_type = CJT188_TYPE_COLD_WATER;
    if (get_int(P, P->root, "model file", "cjt188_meter_type", 0, 0xFF, false, &v)) {
        if (m->protocol != DRV_PROTO_CJT188)
            fail(P, config_setting_get_member(P->root, "cjt188_meter_type"),
                 "cjt188_meter_type is for protocol \"cjt188\" only");
        m->cjt188_meter_type = (uint8_t)v;
    }
}

static void parse_limits(struct parser *P)
{
    struct drv_model *m = P->model;
    m->max_read_regs = DRV_MAX_READ_REGS;
    m->max_gap_regs = 8;
    bool national = m->protocol != DRV_PROTO_MODBUS;
    m->default_baud = national ? 2400 : 9600;   /* DL/T 645 and CJ/T 188: 2400 8E1 */
    m->default_parity = national ? 'E' : 'N';
    m->default_stop_bits = 1;
    const config_setting_t *g = get_group(P, P->root, "model file", "limits", false);
    if (g == NULL)
        return;
    static const char *const keys[] = {"max_read_registers", "max_gap_registers",
                                       "slave_switch_delay_ms", "serial", NULL};
    check_keys(P, g, "limits", keys);
    long long v;
    const config_setting_t *max = config_setting_get_member(g, "max_read_registers");
    if (max != NULL && is_int(max) && config_setting_get_int64(max) > DRV_MAX_READ_REGS)
        fail(P, max, "limits: max_read_registers %lld is over the Modbus limit of %d",
             config_setting_get_int64(max), DRV_MAX_READ_REGS);
    else if (get_int(P, g, "limits", "max_read_registers", 1, DRV_MAX_READ_REGS, false, &v))
        m->max_read_regs = (uint16_t)v;
    if (get_int(P, g, "limits", "max_gap_registers", 0, DRV_MAX_READ_REGS, false, &v))
        m->max_gap_regs = (uint16_t)v;
    if (get_int(P, g, "limits", "slave_switch_delay_ms", 0, MAX_SLAVE_SWITCH_DELAY_MS, false, &v))
        m->slave_switch_delay_ms = (int)v;
    const config_setting_t *serial = get_group(P, g, "limits", "serial", false);
    if (serial == NULL)
        return;
    static const char *const serial_keys[] = {"baud", "parity", "stop_bits", NULL};
    check_keys(P, serial, "limits.serial", serial_keys);
    if (get_int(P, serial, "limits.serial", "baud", 300, 921600, false, &v))
        m->default_baud = (int)v;
    static const char *const parities[] = {"N", "E", "O", NULL};
    int parity = get_choice(P, serial, "limits.serial", "parity", false, parities);
    if (parity >= 0)
        m->default_parity = parities[parity][0];
    if (get_int(P, serial, "limits.serial", "stop_bits", 1, 2, false, &v))
        m->default_stop_bits = (int)v;
}

static void parse_checks(struct parser *P)
{
    struct drv_model *m = P->model;
    const config_setting_t *g = get_group(P, P->root, "model file", "checks", false);
    if (g == NULL)
        return;
    static const char *const keys[] = {"export_expected", "rated_power_w", "counter_wrap",
                                       "resolution", NULL};
    check_keys(P, g, "checks", keys);
    get_bool(P, g, "checks", "export_expected", &m->export_expected);
    double *targets[] = {&m->rated_power_w, &m->counter_wrap, &m->resolution};
    const char *names[] = {"rated_power_w", "counter_wrap", "resolution"};
    for (size_t i = 0; i < 3; i++) {
        double v;
        if (!get_number(P, g, "checks", names[i], false, &v))
            continue;
        if (v < 0.0)
            fail(P, config_setting_get_member(g, names[i]), "checks: %s must not be negative",
                 names[i]);
        else
            *targets[i] = v;
    }
}

static void parse_status_state(struct parser *P, const config_setting_t *g, const char *what,
                               struct drv_status_state *st)
{
    static const char *const keys[] = {"mask", "value", "state", "result", NULL};
    check_keys(P, g, what, keys);
    long long v;
    if (get_int(P, g, what, "mask", 1, 0xFFFF, true, &v))
        st->mask = (uint16_t)v;
    if (get_int(P, g, what, "value", 0, 0xFFFF, true, &v))
        st->value = (uint16_t)v;
    if ((st->value & ~st->mask) != 0)
        fail(P, g, "%s: value 0x%04X has bits outside mask 0x%04X", what, st->value, st->mask);
    bool has_state = config_setting_get_member(g, "state") != NULL;
    bool has_result = config_setting_get_member(g, "result") != NULL;
    if (has_state == has_result) {
        fail(P, g, "%s: give either state (a valve state) or result (a number)", what);
        return;
    }
    if (has_state) {
        int s = get_choice(P, g, what, "state", true, valve_state_names);
        if (s >= 0)
            st->result = s;
    } else {
        get_number(P, g, what, "result", true, &st->result);
    }
}

static void parse_status_flag(struct parser *P, const config_setting_t *g, const char *what,
                              struct drv_status_flag *fl)
{
    static const char *const keys[] = {"quantity", "mask", NULL};
    check_keys(P, g, what, keys);
    int q = quantity_of(P, g, what, "quantity");
    if (q >= 0)
        fl->quantity = (enum drv_quantity)q;
    long long v;
    if (get_int(P, g, what, "mask", 1, 0xFFFF, true, &v))
        fl->mask = (uint16_t)v;
}

static void parse_status_word(struct parser *P, const config_setting_t *g,
                              struct drv_status_word *w)
{
    static const char *const keys[] = {"name", "states", "flags", NULL};
    check_keys(P, g, "status word", keys);
    const char *text = NULL;
    char buf[SHOWN_MAX];
    const char *name = "?";
    if (get_text(P, g, "status word", "name", true, &text)) {
        w->name = dup_text(P, text);
        name = shown(text, buf);
    }
    const config_setting_t *states = get_list(P, g, "status word", "states", false);
    const config_setting_t *flags = get_list(P, g, "status word", "flags", false);
    int nstates = states ? config_setting_length(states) : 0;
    int nflags = flags ? config_setting_length(flags) : 0;
    if (nstates + nflags == 0)
        fail(P, g, "status word %s: needs states or flags", name);
    struct drv_status_state *st = alloc_zeroed(P, (size_t)nstates, sizeof *st);
    struct drv_status_flag *fl = alloc_zeroed(P, (size_t)nflags, sizeof *fl);
    w->states = st;
    w->flags = fl;
    if (st == NULL || fl == NULL)
        return;
    w->nstates = (size_t)nstates;
    w->nflags = (size_t)nflags;
    for (int i = 0; i < nstates; i++) {
        const config_setting_t *e = config_setting_get_elem(states, (unsigned)i);
        if (!config_setting_is_group(e))
            fail(P, e, "status word %s: each state is a group { mask; value; state; }", name);
        else
            parse_status_state(P, e, "status word state", &st[i]);
    }
    for (int i = 0; i < nflags; i++) {
        const config_setting_t *e = config_setting_get_elem(flags, (unsigned)i);
        if (!config_setting_is_group(e))
            fail(P, e, "status word %s: each flag is a group { quantity; mask; }", name);
        else
            parse_status_flag(P, e, "status word flag", &fl[i]);
    }
}

static void parse_status_words(struct parser *P)
{
    struct drv_model *m = P->model;
    const config_setting_t *list = get_list(P, P->root, "model file", "status_words", false);
    int n = list ? config_setting_length(list) : 0;
    if (n == 0)
        return;
    struct drv_status_word *words = alloc_zeroed(P, (size_t)n, sizeof *words);
    if (words == NULL)
        return;
    m->status_words = words;
    m->nstatus_words = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(e)) {
            fail(P, e, "status_words: each entry is a group { name; states; flags; }");
            continue;
        }
        parse_status_word(P, e, &words[i]);
        char buf[SHOWN_MAX];
        for (int k = 0; k < i && words[i].name != NULL; k++)
            if (words[k].name != NULL && strcmp(words[k].name, words[i].name) == 0)
                fail(P, e, "status_words: '%s' is defined twice", shown(words[i].name, buf));
    }
}

static const struct drv_status_word *status_by_name(const struct drv_model *m, const char *name)
{
    for (size_t i = 0; i < m->nstatus_words; i++)
        if (m->status_words[i].name != NULL && strcmp(m->status_words[i].name, name) == 0)
            return &m->status_words[i];
    return NULL;
}

/* Register fields shared by points and the serial number. */
static void parse_register(struct parser *P, const config_setting_t *g, const char *what,
                           struct drv_point *pt, long long *every)
{
    long long v;
    if (get_int(P, g, what, "function", 3, 4, true, &v))
        pt->function = (uint8_t)v;
    if (get_int(P, g, what, "address", 0, 0xFFFF, true, &v))
        pt->address = (uint16_t)v;
    int type = get_choice(P, g, what, "type", true, type_names);
    if (type >= 0)
        pt->type = (enum drv_type)type;
    int order = get_choice(P, g, what, "word_order", false, order_names);
    pt->order = order >= 0 ? (enum drv_word_order)order : DRV_ORDER_ABCD;
    pt->scale = 1.0;
    double scale;
    if (get_number(P, g, what, "scale", false, &scale)) {
        if (scale == 0.0)
            fail(P, config_setting_get_member(g, "scale"), "%s: scale must not be 0", what);
        else
            pt->scale = scale;
    }
    const char *unit = NULL;
    if (get_text(P, g, what, "unit", false, &unit))
        pt->unit = dup_text(P, unit);
    if (get_int(P, g, what, "every_n_polls", 1, MAX_EVERY_N_POLLS, false, &v))
        *every = v;
    unsigned regs = drv_type_regs(pt->type);
    if ((long)pt->address + (long)regs > 0x10000)
        fail(P, g, "%s: %s at 0x%04X runs past register 0xFFFF", what, type_names[pt->type],
             pt->address);
    if (regs > P->model->max_read_regs)
        fail(P, g, "%s: reading %u registers is over the model's max_read_registers %u", what,
             regs, P->model->max_read_regs);
}

/* The model's one slow interval: every point with every_n_polls > 1 shares it. */
static void note_every(struct parser *P, const config_setting_t *g, const char *what,
                       struct drv_point *pt, long long every, long long *slow_every,
                       const config_setting_t **slow_at)
{
    if (every <= 1)
        return;
    pt->slow = true;
    if (*slow_every == 0) {
        *slow_every = every;
        *slow_at = g;
    } else if (every != *slow_every) {
        fail(P, g, "%s: every_n_polls %lld differs from %lld (line %u): a model has one slow "
             "interval", what, every, *slow_every, config_setting_source_line(*slow_at));
    }
}

static void parse_point(struct parser *P, const config_setting_t *g, struct drv_point *pt,
                        long long *slow_every, const config_setting_t **slow_at)
{
    static const char *const keys[] = {"quantity", "function", "address", "type", "word_order",
                                       "scale", "unit", "every_n_polls", "status", NULL};
    check_keys(P, g, "point", keys);
    int q = quantity_of(P, g, "point", "quantity");
    if (q == DRV_Q_SERIAL)
        fail(P, g, "point: the serial number goes in serial_number = { ... }");
    if (q >= 0)
        pt->quantity = (enum drv_quantity)q;
    const char *what = q >= 0 ? drv_quantity_name((enum drv_quantity)q) : "point";
    long long every = 1;
    parse_register(P, g, what, pt, &every);
    note_every(P, g, what, pt, every, slow_every, slow_at);
    const char *status = NULL;
    char buf[SHOWN_MAX];
    if (get_text(P, g, what, "status", false, &status)) {
        pt->status = status_by_name(P->model, status);
        if (pt->status == NULL)
            fail(P, config_setting_get_member(g, "status"), "%s: no status word named '%s'",
                 what, shown(status, buf));
        else if (drv_type_regs(pt->type) != 1)
            fail(P, g, "%s: a status word is one register (uint16 or int16)", what);
    }
}

static const char *const cjt188_field_names[] = {"current_volume", "settlement_volume", "valve",
                                                 "valve_fault", "battery_low", NULL};

/* A DL/T 645 point: a data identifier and its BCD format, or a status word. */
static void parse_dlt645_point(struct parser *P, const config_setting_t *g, const char *what,
                               struct drv_point *pt, long long *every)
{
    long long v;
    long long max_di = P->model->dlt645_version == 1997 ? 0xFFFF : 0xFFFFFFFFLL;
    if (get_int(P, g, what, "di", 0, max_di, true, &v))
        pt->di = (uint32_t)v;
    if (get_int(P, g, what, "digits", 2, 2 * DLT645_MAX_VALUE_BYTES, true, &v)) {
        if (v % 2 != 0)
            fail(P, config_setting_get_member(g, "digits"),
                 "%s: digits must be even (two BCD digits a byte)", what);
        pt->nbytes = (uint8_t)(v / 2);
    }
    if (get_int(P, g, what, "decimals", 0, 2 * DLT645_MAX_VALUE_BYTES, false, &v))
        pt->decimals = (uint8_t)v;
    get_bool(P, g, what, "sign", &pt->sign_bit);
    pt->scale = 1.0;
    double scale;
    if (get_number(P, g, what, "scale", false, &scale)) {
        if (scale == 0.0)
            fail(P, config_setting_get_member(g, "scale"), "%s: scale must not be 0", what);
        else
            pt->scale = scale;
    }
    if (get_int(P, g, what, "every_n_polls", 1, MAX_EVERY_N_POLLS, false, &v))
        *every = v;
    /* Not a register: the planner never sees these points. */
    pt->function = 0;
    pt->type = DRV_TYPE_U16;
}

static void parse_cjt188_point(struct parser *P, const config_setting_t *g, const char *what,
                               struct drv_point *pt, long long *every)
{
    int field = get_choice(P, g, what, "field", true, cjt188_field_names);
    if (field >= 0)
        pt->field = (enum drv_cjt188_field)field;
    long long v;
    if (get_int(P, g, what, "every_n_polls", 1, MAX_EVERY_N_POLLS, false, &v))
        *every = v;
    pt->scale = 1.0;
    pt->function = 0;
    pt->type = DRV_TYPE_U16;
}

static void parse_national_point(struct parser *P, const config_setting_t *g,
                                 struct drv_point *pt, long long *slow_every,
                                 const config_setting_t **slow_at)
{
    bool dlt645 = P->model->protocol == DRV_PROTO_DLT645;
    static const char *const dlt645_keys[] = {"quantity", "di", "digits", "decimals", "sign",
                                              "scale", "unit", "every_n_polls", "status", NULL};
    static const char *const cjt188_keys[] = {"quantity", "field", "unit", "every_n_polls", NULL};
    check_keys(P, g, "point", dlt645 ? dlt645_keys : cjt188_keys);
    int q = quantity_of(P, g, "point", "quantity");
    if (q >= 0)
        pt->quantity = (enum drv_quantity)q;
    const char *what = q >= 0 ? drv_quantity_name((enum drv_quantity)q) : "point";
    long long every = 1;
    if (dlt645)
        parse_dlt645_point(P, g, what, pt, &every);
    else
        parse_cjt188_point(P, g, what, pt, &every);
    note_every(P, g, what, pt, every, slow_every, slow_at);
    const char *text = NULL;
    if (get_text(P, g, what, "unit", false, &text))
        pt->unit = dup_text(P, text);
    char buf[SHOWN_MAX];
    if (dlt645 && get_text(P, g, what, "status", false, &text)) {
        pt->status = status_by_name(P->model, text);
        if (pt->status == NULL)
            fail(P, config_setting_get_member(g, "status"), "%s: no status word named '%s'",
                 what, shown(text, buf));
        else if (pt->nbytes > 2)
            fail(P, g, "%s: a status word is at most 2 bytes (4 digits)", what);
    }
}

static void parse_serial_number(struct parser *P, struct drv_point *pt, long long *slow_every,
                                const config_setting_t **slow_at)
{
    const config_setting_t *g = get_group(P, P->root, "model file", "serial_number", true);
    if (g == NULL)
        return;
    static const char *const keys[] = {"function", "address", "type", "word_order", "scale",
                                       "every_n_polls", NULL};
    check_keys(P, g, "serial_number", keys);
    pt->quantity = DRV_Q_SERIAL;
    long long every = DEFAULT_SLOW_EVERY;
    parse_register(P, g, "serial_number", pt, &every);
    if (pt->type == DRV_TYPE_F32)
        fail(P, g, "serial_number: type must be an integer type");
    note_every(P, g, "serial_number", pt, every, slow_every, slow_at);
}

/* The setting point i came from: an element of points, or serial_number. */
static const config_setting_t *point_setting(const struct parser *P, const config_setting_t *list,
                                             size_t i)
{
    if (list != NULL && i < (size_t)config_setting_length(list))
        return config_setting_get_elem(list, (unsigned)i);
    return config_setting_get_member(P->root, "serial_number");
}

/* Quantity a point (or a flag of its status word) sets twice. */
static void check_quantities(struct parser *P, const config_setting_t *list, const bool *valid)
{
    const struct drv_model *m = P->model;
    const config_setting_t *seen[DRV_Q__COUNT] = {0};
    for (size_t i = 0; i < m->npoints; i++) {
        const config_setting_t *g = point_setting(P, list, i);
        const struct drv_point *pt = &m->points[i];
        if (!valid[i])
            continue;
        enum drv_quantity qs[1 + 16];
        size_t n = 0;
        qs[n++] = pt->quantity;
        for (size_t f = 0; pt->status != NULL && f < pt->status->nflags && n < 17; f++)
            qs[n++] = pt->status->flags[f].quantity;
        for (size_t k = 0; k < n; k++) {
            if (seen[qs[k]] != NULL)
                fail(P, g, "quantity %s is already read (line %u)", drv_quantity_name(qs[k]),
                     config_setting_source_line(seen[qs[k]]));
            else
                seen[qs[k]] = g;
        }
    }
}

/* Two points reading the same register. */
static void check_overlaps(struct parser *P, const config_setting_t *list, const bool *valid)
{
    const struct drv_model *m = P->model;
    for (size_t i = 0; i < m->npoints; i++) {
        const struct drv_point *a = &m->points[i];
        if (!valid[i])
            continue;
        long a_end = (long)a->address + (long)drv_type_regs(a->type);
        for (size_t k = i + 1; k < m->npoints; k++) {
            const struct drv_point *b = &m->points[k];
            if (!valid[k])
                continue;
            long b_end = (long)b->address + (long)drv_type_regs(b->type);
            if (a->function != b->function || a->address >= b_end || b->address >= a_end)
                continue;
            fail(P, point_setting(P, list, k), "%s overlaps %s (line %u) at register 0x%04X",
                 drv_quantity_name(b->quantity), drv_quantity_name(a->quantity),
                 config_setting_source_line(point_setting(P, list, i)),
                 (unsigned)(a->address > b->address ? a->address : b->address));
        }
    }
}

static void parse_points(struct parser *P)
{
    struct drv_model *m = P->model;
    const config_setting_t *list = get_list(P, P->root, "model file", "points", false);
    bool has_serial = config_setting_get_member(P->root, "serial_number") != NULL;
    size_t n = list ? (size_t)config_setting_length(list) : 0;
    if (m->kind == DRV_KIND_FIRE_PANEL) {
        if (n > 0 || has_serial)
            fail(P, list ? list : config_setting_get_member(P->root, "serial_number"),
                 "a fire panel model reads zones (fire_panel), not points");
        return;
    }
    if (n == 0)
        fail(P, list ? list : P->root, "a meter model needs at least one point in points");
    struct drv_point *points = alloc_zeroed(P, n + 1, sizeof *points);
    bool *valid = alloc_zeroed(P, n + 1, sizeof *valid);
    if (points == NULL || valid == NULL) {
        free(points);
        free(valid);
        return;
    }
    m->points = points;
    long long slow_every = 0;
    const config_setting_t *slow_at = NULL;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        unsigned before = P->nerrors;
        if (!config_setting_is_group(e))
            fail(P, e, "points: each point is a group { quantity; function; address; type; }");
        else if (m->protocol != DRV_PROTO_MODBUS)
            parse_national_point(P, e, &points[i], &slow_every, &slow_at);
        else
            parse_point(P, e, &points[i], &slow_every, &slow_at);
        valid[i] = P->nerrors == before;
    }
    m->npoints = n;
    if (has_serial) {
        unsigned before = P->nerrors;
        parse_serial_number(P, &points[m->npoints], &slow_every, &slow_at);
        valid[m->npoints++] = P->nerrors == before;
    }
    m->slow_every = (unsigned)slow_every;
    check_quantities(P, list, valid);
    if (m->protocol == DRV_PROTO_MODBUS)
        check_overlaps(P, list, valid);
    else if (has_serial)
        fail(P, config_setting_get_member(P->root, "serial_number"),
             "serial_number is for Modbus models; a national protocol model reads its "
             "serial as a point");
    free(valid);
}

static bool reads_quantity(const struct drv_model *m, enum drv_quantity q)
{
    for (size_t i = 0; i < m->npoints; i++) {
        if (m->points[i].quantity == q)
            return true;
        for (size_t f = 0; m->points[i].status != NULL && f < m->points[i].status->nflags; f++)
            if (m->points[i].status->flags[f].quantity == q)
                return true;
    }
    return false;
}

static bool parse_action(struct parser *P, const config_setting_t *g, const char *name,
                         uint16_t *address, uint16_t *value, int *read_back)
{
    static const char *const keys[] = {"address", "value", "read_back", NULL};
    check_keys(P, g, name, keys);
    long long v;
    bool ok = true;
    bool modbus = P->model->protocol == DRV_PROTO_MODBUS;
    if (!modbus && config_setting_get_member(g, "address") != NULL)
        fail(P, config_setting_get_member(g, "address"),
             "%s: a CJ/T 188 valve command has no register address", name);
    if (!modbus)
        *address = 0;
    else if (get_int(P, g, name, "address", 0, 0xFFFF, true, &v))
        *address = (uint16_t)v;
    else
        ok = false;
    if (get_int(P, g, name, "value", 0, 0xFFFF, true, &v))
        *value = (uint16_t)v;
    else
        ok = false;
    if (config_setting_get_member(g, "read_back") == NULL) {
        fail(P, g, "%s: an action needs read_back, the quantity that shows it took effect", name);
        return false;
    }
    *read_back = quantity_of(P, g, name, "read_back");
    if (*read_back < 0)
        return false;
    if (!reads_quantity(P->model, (enum drv_quantity)*read_back)) {
        fail(P, config_setting_get_member(g, "read_back"),
             "%s: read_back %s is not read by any point", name,
             drv_quantity_name((enum drv_quantity)*read_back));
        return false;
    }
    return ok;
}

static void parse_actions(struct parser *P)
{
    struct drv_model *m = P->model;
    const config_setting_t *g = get_group(P, P->root, "model file", "actions", false);
    if (g == NULL)
        return;
    if (m->protocol == DRV_PROTO_DLT645) {
        fail(P, g, "actions: a DL/T 645 model has no valve");
        return;
    }
    static const char *const keys[] = {"valve_open", "valve_close", NULL};
    check_keys(P, g, "actions", keys);
    const config_setting_t *open = get_group(P, g, "actions", "valve_open", true);
    const config_setting_t *close = get_group(P, g, "actions", "valve_close", true);
    if (open == NULL || close == NULL)
        return;
    uint16_t open_address = 0, close_address = 0, open_value = 0, close_value = 0;
    int open_back = -1, close_back = -1;
    bool ok = parse_action(P, open, "valve_open", &open_address, &open_value, &open_back);
    ok = parse_action(P, close, "valve_close", &close_address, &close_value, &close_back) && ok;
    if (!ok)
        return;
    if (open_address != close_address || open_back != close_back) {
        fail(P, close, "valve_close: must write the register valve_open writes and read back "
             "the same quantity");
        return;
    }
    struct drv_write *valve = alloc_zeroed(P, 1, sizeof *valve);
    if (valve == NULL)
        return;
    *valve = (struct drv_write){.address = open_address, .open_value = open_value,
                                .close_value = close_value,
                                .read_back = (enum drv_quantity)open_back};
    m->valve = valve;
}

static void parse_zone_rule(struct parser *P, const config_setting_t *g, struct drv_zone_rule *r)
{
    static const char *const keys[] = {"mask", "value", "state", NULL};
    static const char *const states[] = {"alarm", "fault", "disabled", "supervisory",
                                         "unprogrammed", "pre_alarm", NULL};
    static const uint8_t bits[] = {DRV_ZONE_ALARM, DRV_ZONE_FAULT, DRV_ZONE_DISABLED,
                                   DRV_ZONE_SUPERVISORY, DRV_ZONE_UNPROGRAMMED,
                                   DRV_ZONE_PREALARM};
    check_keys(P, g, "point_bits", keys);
    long long v;
    if (get_int(P, g, "point_bits", "mask", 1, 0xFFFF, true, &v))
        r->mask = (uint16_t)v;
    if (get_int(P, g, "point_bits", "value", 0, 0xFFFF, true, &v))
        r->value = (uint16_t)v;
    if ((r->value & ~r->mask) != 0)
        fail(P, g, "point_bits: value 0x%04X has bits outside mask 0x%04X", r->value, r->mask);
    int s = get_choice(P, g, "point_bits", "state", true, states);
    if (s >= 0)
        r->bits = bits[s];
}

static void parse_fire_panel(struct parser *P)
{
    struct drv_model *m = P->model;
    bool panel = m->kind == DRV_KIND_FIRE_PANEL;
    const config_setting_t *g = get_group(P, P->root, "model file", "fire_panel", panel);
    if (g == NULL)
        return;
    if (!panel) {
        fail(P, g, "fire_panel: only a model of kind fire_panel has zones");
        return;
    }
    static const char *const keys[] = {"first_address", "max_zones", "enabled_bits",
                                       "point_bits", NULL};
    check_keys(P, g, "fire_panel", keys);
    struct drv_panel_layout *layout = alloc_zeroed(P, 1, sizeof *layout);
    if (layout == NULL)
        return;
    m->panel = layout;
    long long v;
    if (get_int(P, g, "fire_panel", "first_address", 0, 0xFFFF, true, &v))
        layout->first_point_address = (uint16_t)v;
    if (get_int(P, g, "fire_panel", "max_zones", 1, DRV_MAX_ZONES, true, &v))
        layout->max_zones = (uint16_t)v;
    if (get_int(P, g, "fire_panel", "enabled_bits", 0, 0xFFFF, false, &v))
        layout->enabled_bits = (uint16_t)v;
    if ((long)layout->first_point_address + layout->max_zones > 0x10000)
        fail(P, g, "fire_panel: %u zones from 0x%04X run past register 0xFFFF",
             layout->max_zones, layout->first_point_address);
    const config_setting_t *list = get_list(P, g, "fire_panel", "point_bits", true);
    int n = list ? config_setting_length(list) : 0;
    if (list != NULL && n == 0)
        fail(P, list, "fire_panel: point_bits needs at least one rule");
    struct drv_zone_rule *rules = alloc_zeroed(P, (size_t)n, sizeof *rules);
    if (rules == NULL)
        return;
    layout->rules = rules;
    layout->nrules = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(e))
            fail(P, e, "point_bits: each rule is a group { mask; value; state; }");
        else
            parse_zone_rule(P, e, &rules[i]);
    }
}

static void parse_model(struct parser *P)
{
    static const char *const keys[] = {"name", "vendor", "model", "description", "kind",
                                       "protocol", "limits", "checks", "points",
                                       "serial_number", "status_words", "actions",
                                       "fire_panel", "dlt645_version", "cjt188_meter_type",
                                       NULL};
    check_keys(P, P->root, "model file", keys);
    parse_identity(P);
    parse_limits(P);
    parse_checks(P);
    parse_status_words(P);
    parse_points(P);
    parse_actions(P);
    parse_fire_panel(P);
}

void drv_model_free(struct drv_model *model)
{
    if (model == NULL)
        return;
    free((char *)model->name);
    free((char *)model->vendor);
    free((char *)model->product);
    free((char *)model->description);
    free((char *)model->file);
    for (size_t i = 0; model->points != NULL && i < model->npoints; i++)
        free((char *)model->points[i].unit);
    free((struct drv_point *)model->points);
    for (size_t i = 0; i < model->nstatus_words; i++) {
        free((char *)model->status_words[i].name);
        free((struct drv_status_state *)model->status_words[i].states);
        free((struct drv_status_flag *)model->status_words[i].flags);
    }
    free((struct drv_status_word *)model->status_words);
    free((struct drv_write *)model->valve);
    if (model->panel != NULL)
        free((struct drv_zone_rule *)model->panel->rules);
    free((struct drv_panel_layout *)model->panel);
    free(model);
}

static est_err finish(struct parser *P, struct drv_model **out, char **errors)
{
    if (P->nomem && P->nerrors == 0)
        fail(P, NULL, "out of memory");
    est_err err = P->nomem ? EST_ERR_NOMEM : P->nerrors > 0 ? EST_ERR_INVALID : EST_OK;
    if (err != EST_OK) {
        drv_model_free(P->model);
        P->model = NULL;
    }
    *out = P->model;
    if (errors != NULL)
        *errors = P->errors;
    else
        free(P->errors);
    return err;
}

est_err drv_model_parse(const char *text, size_t len, const char *file, struct drv_model **out,
                        char **errors)
{
    struct parser P = {.file = file != NULL ? file : "(model)"};
    if (errors != NULL)
        *errors = NULL;
    *out = NULL;
    char *copy = malloc(len + 1);
    P.model = calloc(1, sizeof *P.model);
    if (copy == NULL || P.model == NULL) {
        free(copy);
        P.nomem = true;
        return finish(&P, out, errors);
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    config_t lc;
    config_init(&lc);
    if (!config_read_string(&lc, copy)) {
        const char *why = config_error_text(&lc);
        fail_line(&P, (unsigned)(config_error_line(&lc) > 0 ? config_error_line(&lc) : 1), "%s",
                  why != NULL ? why : "syntax error");
    } else {
        P.root = config_root_setting(&lc);
        P.model->file = dup_text(&P, P.file);
        parse_model(&P);
    }
    config_destroy(&lc);
    free(copy);
    return finish(&P, out, errors);
}

est_err drv_model_load_file(const char *path, struct drv_model **out, char **errors)
{
    *out = NULL;
    if (errors != NULL)
        *errors = NULL;
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0;
    bool ok = f != NULL;
    while (ok) {
        if (len + 4096 > cap) {
            char *grown = realloc(text, cap = cap * 2 + 4096);
            if (grown == NULL) {
                ok = false;
                break;
            }
            text = grown;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            ok = !ferror(f);
            break;
        }
    }
    int saved = errno;
    if (f != NULL)
        fclose(f);
    if (!ok) {
        free(text);
        if (errors != NULL) {
            const char *why = strerror(f == NULL ? saved : EIO);
            size_t need = strlen(path) + strlen(why) + 32;
            if ((*errors = malloc(need)) != NULL)
                snprintf(*errors, need, "%s:1: cannot read: %s\n", path, why);
        }
        return EST_ERR_IO;
    }
    est_err err = drv_model_parse(text != NULL ? text : "", len, path, out, errors);
    free(text);
    return err;
}
