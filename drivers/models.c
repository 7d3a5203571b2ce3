/* models.c - the model registry (the shipped model files, then the site's
 * models_dir, looked up by name), the quantity and valve-state names, and the
 * data-driven decoders of status words and fire panel point words.
 *
 * The shipped models live in etc/models/<name>.conf (installed under
 * share/estate-gw/models); drivers and estate-sim read the same files. */
#include "drivers.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ESTATE_MODELS_INSTALL_DIR
#define ESTATE_MODELS_INSTALL_DIR "/usr/local/share/estate-gw/models"
#endif
#define MODELS_SUBDIR "share/estate-gw/models"
#define EXE_LEVELS_SEARCHED 4

/* The models of one directory, sorted by file name. */
struct model_dir {
    char *path;
    struct drv_model **models;
    size_t count;
};

static struct {
    pthread_once_t once;
    struct model_dir shipped;
    char *shipped_errors;
    struct model_dir *site;    /* in the order added; the latest is searched first */
    size_t nsite;
    const struct drv_model **view; /* every visible model: site (latest first), then shipped */
    size_t nview;
} registry = {.once = PTHREAD_ONCE_INIT};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* share/estate-gw/models in the executable's directory's parents. */
static char *models_beside_executable(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int level = 0; level < EXE_LEVELS_SEARCHED; level++) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = '\0';
        char *candidate = join(exe[0] != '\0' ? exe : "", MODELS_SUBDIR);
        if (candidate != NULL && is_dir(candidate))
            return candidate;
        free(candidate);
    }
    return NULL;
}

static char *find_shipped_dir(void)
{
    const char *env = getenv("ESTATE_GW_MODELS_DIR");
    if (env != NULL && env[0] != '\0')
        return strdup(env);
    char *beside = models_beside_executable();
    if (beside != NULL)
        return beside;
    return is_dir(ESTATE_MODELS_INSTALL_DIR) ? strdup(ESTATE_MODELS_INSTALL_DIR) : NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_conf_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && name[0] != '.' && strcmp(name + n - 5, ".conf") == 0;
}

static void append_text(char **errors, const char *text)
{
    size_t old = *errors != NULL ? strlen(*errors) : 0, add = strlen(text);
    char *grown = realloc(*errors, old + add + 1);
    if (grown == NULL)
        return;
    memcpy(grown + old, text, add + 1);
    *errors = grown;
}

static void free_dir(struct model_dir *d)
{
    for (size_t i = 0; i < d->count; i++)
        drv_model_free(d->models[i]);
    free(d->models);
    free(d->path);
    *d = (struct model_dir){0};
}

/* The *.conf file names of dir, sorted; NULL with *n = 0 when empty. */
static char **list_model_files(const char *dir, size_t *n, char **errors)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        char line[PATH_MAX + 64];
        snprintf(line, sizeof line, "%s:1: cannot open the models directory\n", dir);
        append_text(errors, line);
        return NULL;
    }
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_conf_suffix(e->d_name))
            continue;
        if (*n == cap) {
            char **grown = realloc(names, (cap = cap * 2 + 16) * sizeof *grown);
            if (grown == NULL)
                break;
            names = grown;
        }
        if ((names[*n] = strdup(e->d_name)) != NULL)
            (*n)++;
    }
    closedir(d);
    if (*n > 0)
        qsort(names, *n, sizeof *names, by_name);
    return names;
}

/* Loads every model of dir into out; false (with errors) when any is wrong. */
static bool load_dir(const char *dir, struct model_dir *out, char **errors)
{
    size_t nfiles = 0;
    char **files = list_model_files(dir, &nfiles, errors);
    bool ok = *errors == NULL;
    *out = (struct model_dir){.path = strdup(dir)};
    out->models = calloc(nfiles > 0 ? nfiles : 1, sizeof *out->models);
    ok = ok && out->path != NULL && out->models != NULL;
    for (size_t i = 0; i < nfiles; i++) {
        char *path = join(dir, files[i]);
        char *msg = NULL;
        struct drv_model *model = NULL;
        if (path == NULL || drv_model_load_file(path, &model, &msg) != EST_OK) {
            ok = false;
            append_text(errors, msg != NULL ? msg : "out of memory loading models\n");
        } else if (out->models != NULL) {
            for (size_t k = 0; k < out->count; k++) {
                if (strcmp(out->models[k]->name, model->name) == 0) {
                    char line[2 * PATH_MAX + 128];
                    snprintf(line, sizeof line, "%s:1: model name '%s' is also used by %s\n", path,
                             model->name, out->models[k]->file);
                    append_text(errors, line);
                    ok = false;
                }
            }
            out->models[out->count++] = model;
            model = NULL;
        }
        drv_model_free(model);
        free(msg);
        free(path);
        free(files[i]);
    }
    free(files);
    if (!ok)
        free_dir(out);
    return ok;
}

static bool name_taken(const struct drv_model *const *view, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(view[i]->name, name) == 0)
            return true;
    return false;
}

static void rebuild_view(void)
{
    size_t total = registry.shipped.count;
    for (size_t d = 0; d < registry.nsite; d++)
        total += registry.site[d].count;
    const struct drv_model **view = calloc(total > 0 ? total : 1, sizeof *view);
    if (view == NULL)
        return;
    size_t n = 0;
    for (size_t d = registry.nsite; d-- > 0;)
        for (size_t i = 0; i < registry.site[d].count; i++)
            if (!name_taken(view, n, registry.site[d].models[i]->name))
                view[n++] = registry.site[d].models[i];
    for (size_t i = 0; i < registry.shipped.count; i++)
        if (!name_taken(view, n, registry.shipped.models[i]->name))
            view[n++] = registry.shipped.models[i];
    free(registry.view);
    registry.view = view;
    registry.nview = n;
}

static void load_shipped(void)
{
    char *dir = find_shipped_dir();
    if (dir == NULL) {
        append_text(&registry.shipped_errors,
                    "estate-gw: no shipped models directory (share/estate-gw/models beside the "
                    "program, or ESTATE_GW_MODELS_DIR)\n");
        return;
    }
    if (!load_dir(dir, &registry.shipped, &registry.shipped_errors))
        registry.shipped.path = strdup(dir);
    free(dir);
    rebuild_view();
}

static void ensure_loaded(void) { pthread_once(&registry.once, load_shipped); }

const char *drv_models_shipped_dir(void)
{
    ensure_loaded();
    return registry.shipped.path;
}

const char *drv_models_shipped_errors(void)
{
    ensure_loaded();
    return registry.shipped_errors;
}

est_err drv_models_add_dir(const char *dir, char **errors)
{
    if (errors != NULL)
        *errors = NULL;
    if (dir == NULL)
        return EST_ERR_INVALID;
    ensure_loaded();
    for (size_t d = 0; d < registry.nsite; d++)
        if (strcmp(registry.site[d].path, dir) == 0)
            return EST_OK;
    char *msg = NULL;
    struct model_dir loaded;
    if (!load_dir(dir, &loaded, &msg)) {
        if (errors != NULL)
            *errors = msg;
        else
            free(msg);
        return EST_ERR_INVALID;
    }
    struct model_dir *grown = realloc(registry.site, (registry.nsite + 1) * sizeof *grown);
    if (grown == NULL) {
        free_dir(&loaded);
        return EST_ERR_NOMEM;
    }
    registry.site = grown;
    registry.site[registry.nsite++] = loaded;
    rebuild_view();
    return EST_OK;
}

const struct drv_model *drv_model_find(const char *name)
{
    if (name == NULL)
        return NULL;
    ensure_loaded();
    for (size_t i = 0; i < registry.nview; i++)
        if (strcmp(registry.view[i]->name, name) == 0)
            return registry.view[i];
    return NULL;
}

size_t drv_model_count(void)
{
    ensure_loaded();
    return registry.nview;
}

const struct drv_model *drv_model_at(size_t index)
{
    ensure_loaded();
    return index < registry.nview ? registry.view[index] : NULL;
}

static const char *const quantity_names[DRV_Q__COUNT] = {
    [DRV_Q_ENERGY_IMPORT_KWH] = "energy_import_kwh",
    [DRV_Q_ENERGY_EXPORT_KWH] = "energy_export_kwh",
    [DRV_Q_ENERGY_TOTAL_KWH] = "energy_total_kwh",
    [DRV_Q_POWER_W] = "power_w",
    [DRV_Q_VOLTAGE_V] = "voltage_v",
    [DRV_Q_CURRENT_A] = "current_a",
    [DRV_Q_POWER_FACTOR] = "power_factor",
    [DRV_Q_FREQUENCY_HZ] = "frequency_hz",
    [DRV_Q_POWER_L1_W] = "power_l1_w",
    [DRV_Q_POWER_L2_W] = "power_l2_w",
    [DRV_Q_POWER_L3_W] = "power_l3_w",
    [DRV_Q_VOLTAGE_L1_V] = "voltage_l1_v",
    [DRV_Q_VOLTAGE_L2_V] = "voltage_l2_v",
    [DRV_Q_VOLTAGE_L3_V] = "voltage_l3_v",
    [DRV_Q_CURRENT_L1_A] = "current_l1_a",
    [DRV_Q_CURRENT_L2_A] = "current_l2_a",
    [DRV_Q_CURRENT_L3_A] = "current_l3_a",
    [DRV_Q_VOLUME_M3] = "volume_m3",
    [DRV_Q_REVERSE_VOLUME_M3] = "reverse_volume_m3",
    [DRV_Q_FLOW_M3H] = "flow_m3h",
    [DRV_Q_VALVE] = "valve",
    [DRV_Q_VALVE_FAULT] = "valve_fault",
    [DRV_Q_BATTERY_V] = "battery_v",
    [DRV_Q_BATTERY_LOW] = "battery_low",
    [DRV_Q_PANEL_ALARM] = "panel_alarm",
    [DRV_Q_PANEL_FAULT] = "panel_fault",
    [DRV_Q_SERIAL] = "serial",
};

uint64_t drv_model_float32_quantities(const struct drv_model *model)
{
    uint64_t mask = 0;
    for (size_t i = 0; model != NULL && i < model->npoints; i++) {
        const struct drv_point *pt = &model->points[i];
        if (pt->type == DRV_TYPE_F32 && pt->scale == 1.0 && pt->status == NULL)
            mask |= UINT64_C(1) << pt->quantity;
    }
    return mask;
}

const char *drv_quantity_name(enum drv_quantity q)
{
    if ((int)q < 0 || q >= DRV_Q__COUNT)
        return "unknown";
    return quantity_names[q];
}

int drv_quantity_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int q = 0; q < DRV_Q__COUNT; q++)
        if (strcmp(quantity_names[q], name) == 0)
            return q;
    return -1;
}

const char *drv_valve_state_name(enum drv_valve_state s)
{
    switch (s) {
    case DRV_VALVE_OPEN:
        return "open";
    case DRV_VALVE_CLOSED:
        return "closed";
    case DRV_VALVE_MOVING:
        return "moving";
    case DRV_VALVE_UNKNOWN:
    default:
        return "unknown";
    }
}

/* Status words and panel point words: the rules are data in the model. */
uint16_t drv_status_encode(const struct drv_status_word *word, double state,
                           const double values[DRV_Q__COUNT])
{
    uint16_t raw = 0;
    for (size_t i = 0; word != NULL && i < word->nstates; i++) {
        if (word->states[i].result == state) {
            raw |= word->states[i].value;
            break;
        }
    }
    for (size_t i = 0; word != NULL && i < word->nflags; i++)
        if (values[word->flags[i].quantity] != 0.0)
            raw |= word->flags[i].mask;
    return raw;
}

uint8_t drv_panel_zone_decode(const struct drv_panel_layout *layout, uint16_t reg)
{
    uint8_t bits = 0;
    for (size_t i = 0; layout != NULL && i < layout->nrules; i++) {
        const struct drv_zone_rule *r = &layout->rules[i];
        if ((reg & r->mask) != r->value)
            continue;
        if (r->bits & DRV_ZONE_UNPROGRAMMED)
            return DRV_ZONE_UNPROGRAMMED;
        bits |= r->bits;
    }
    return bits;
}

uint16_t drv_panel_zone_encode(const struct drv_panel_layout *layout, uint8_t bits)
{
    uint16_t reg = 0;
    uint8_t done = 0;
    for (size_t i = 0; layout != NULL && i < layout->nrules; i++) {
        const struct drv_zone_rule *r = &layout->rules[i];
        if ((bits & r->bits) != 0 && (done & r->bits) == 0) {
            reg |= r->value;
            done |= r->bits;
        }
    }
    if (layout != NULL && !(bits & (DRV_ZONE_DISABLED | DRV_ZONE_UNPROGRAMMED)))
        reg |= layout->enabled_bits;
    return reg;
}

uint8_t drv_notifier_zone_decode(uint16_t reg)
{
    const struct drv_model *notifier = drv_model_find("notifier-gw");
    return notifier != NULL ? drv_panel_zone_decode(notifier->panel, reg) : 0;
}
