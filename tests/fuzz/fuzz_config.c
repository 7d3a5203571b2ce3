/* fuzz_config.c - libFuzzer harness for the configuration loader
 * (gateway/config.c): the input is a config file, written to a private
 * temporary directory and loaded with gw_config_load. Leading lines
 * "//set PATH=VALUE" (a libconfig comment) also become --set overrides, so
 * the override path walker is fuzzed too. A loaded config must be internally
 * consistent (every index in range); anything else aborts.
 * Inputs naming /dev/ or /proc/ are skipped: an @include of a device could
 * block, which is not the loader's fault. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define MAX_SETS 8

static char dir[] = "/tmp/fuzz_config_XXXXXX";
static char path[64];

/* libconfig 1.5 leaks its string buffer on some syntax errors (a string
 * left open at the error); that is the library's, not the loader's. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig.so\n";
}

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static bool contains(const uint8_t *data, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(data + i, needle, n) == 0)
            return true;
    return false;
}

/* Copies the leading "//set " lines into sets[]; returns how many. */
static size_t leading_sets(const uint8_t *data, size_t size, char *sets[MAX_SETS])
{
    size_t n = 0, pos = 0;
    while (n < MAX_SETS && size - pos > 6 && memcmp(data + pos, "//set ", 6) == 0) {
        size_t start = pos + 6, end = start;
        while (end < size && data[end] != '\n')
            end++;
        sets[n] = malloc(end - start + 1);
        if (!sets[n])
            break;
        memcpy(sets[n], data + start, end - start);
        sets[n][end - start] = '\0';
        n++;
        pos = end < size ? end + 1 : end;
    }
    return n;
}

static void check_consistent(const struct gw_config *c)
{
    for (size_t i = 0; i < c->nmeters; i++) {
        const struct gw_meter_config *m = &c->meters[i];
        if (!m->id || m->bus >= c->nbuses || !m->model || m->slave < 1 || m->slave > 247 ||
            m->unit >= (int)c->nunits || m->parent >= (int)c->nmeters ||
            gw_config_meter_index(c, m->id) != (int)i)
            abort();
    }
    for (size_t i = 0; i < c->npanels; i++) {
        const struct gw_panel_config *p = &c->panels[i];
        if (!p->id || p->bus >= c->nbuses || !p->model || !p->nzones || !p->zone_addresses ||
            p->options.zone_addresses != p->zone_addresses)
            abort();
    }
    if (!c->mqtt.client_id || !c->mqtt.topic_prefix || !c->gateway.id)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        if (!mkdtemp(dir))
            return 0;
        snprintf(path, sizeof path, "%s/fuzz.conf", dir);
        atexit(cleanup);
    }
    if (contains(data, size, "/dev/") || contains(data, size, "/proc/"))
        return 0;
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    char *sets[MAX_SETS];
    size_t nsets = leading_sets(data, size, sets);
    struct gw_config *config = NULL;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load(path, (const char *const *)sets, nsets, &config, &errors);
    if (e == EST_OK) {
        if (errors.count)
            abort();
        check_consistent(config);
    } else if (config || errors.count == 0) {
        abort(); /* a failure always says why */
    }
    gw_config_free(config);
    gw_config_errors_free(&errors);
    for (size_t i = 0; i < nsets; i++)
        free(sets[i]);
    return 0;
}
