/* fuzz_csv.c - libFuzzer harness for the meters CSV: the input goes to the
 * RFC 4180 reader on its own (small limits, so the limit paths run), then
 * through gw_config_load_meters_csv onto the demo site's config, which must
 * stay unchanged on any error (all or nothing) and stay consistent on
 * success. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "csv.h"

static char path[] = "/tmp/fuzz_csv_XXXXXX";
static bool have_path;
static struct gw_config *base;

static void cleanup(void)
{
    if (have_path)
        unlink(path);
    gw_config_free(base);
}

static void read_records(const uint8_t *data, size_t size)
{
    struct csv_reader *r;
    if (csv_reader_new((const char *)data, size, 64, 16, &r) != EST_OK)
        return;
    struct csv_record rec;
    est_err e;
    unsigned long last = 0;
    while ((e = csv_reader_next(r, &rec)) == EST_OK) {
        if (rec.nfields == 0 || rec.nfields > 16 || rec.line <= last)
            abort();
        for (size_t i = 0; i < rec.nfields; i++)
            if (strlen(rec.fields[i]) > 64)
                abort();
        last = rec.line;
    }
    if (e == EST_ERR_INVALID && !csv_reader_error(r)[0])
        abort();
    csv_reader_free(r);
}

static struct gw_config *load_base(void)
{
    const char *src = getenv("ESTATE_SOURCE_DIR");
    char conf[1024];
    snprintf(conf, sizeof conf, "%s/etc/demo/estate-gw.conf", src && *src ? src : ESTATE_SOURCE_DIR);
    struct gw_config *c = NULL;
    struct gw_config_errors errors = { 0 };
    if (gw_config_load(conf, NULL, 0, &c, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        abort();
    }
    gw_config_errors_free(&errors);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_records(data, size);
    if (!have_path) {
        int fd = mkstemp(path);
        if (fd < 0)
            return 0;
        close(fd);
        have_path = true;
        atexit(cleanup);
    }
    if (!base)
        base = load_base();
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    size_t before = base->nmeters;
    struct gw_config_errors errors = { 0 };
    est_err e = gw_config_load_meters_csv(base, path, &errors);
    if (e != EST_OK) {
        if (base->nmeters != before || errors.count == 0)
            abort();
    } else {
        for (size_t i = 0; i < base->nmeters; i++)
            if (base->meters[i].bus >= base->nbuses || base->meters[i].parent >= (int)base->nmeters)
                abort();
        if (base->nmeters != before) { /* start the next input from the demo site again */
            gw_config_free(base);
            base = NULL;
        }
    }
    gw_config_errors_free(&errors);
    return 0;
}
