/* bench_config.c - heap the loaded gateway configuration holds at 10,000
 * meters: writes a config and a meters CSV into a temporary directory, loads
 * them with gw_config_load and prints the heap still allocated afterwards
 * (glibc mallinfo2 deltas: every allocation counts, malloc's own chunk
 * overhead included) and the growth of the process's peak RSS (VmHWM) over
 * the load, for two sites:
 *   poll   - the bench_poll.py config: 41 TCP buses, meters in a CSV with
 *            id,bus,slave,driver,kind,category,serial; no units;
 *   estate - 100 buildings of 100 meters (a building meter, then unit meters
 *            under it as balance children), 9,900 units in the config.
 * Usage: bench_config [meters]. A figure, not a pass/fail test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_heap.h"
#include "config.h"

#define BUSES 41 /* bench_poll.py at 10,000 meters: ceil(10000 / 247) endpoints */

/* VmHWM of this process in bytes, 0 where unknown. */
static size_t peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static void write_buses(FILE *f)
{
    fprintf(f, "buses = (\n");
    for (int b = 0; b < BUSES; b++)
        fprintf(f, "  { name = \"gen%d\"; type = \"tcp\"; host = \"127.0.0.1\"; port = %d; timeout_ms = 500; "
                   "retries = 0; poll_interval_ms = 1000; }%s\n",
                b, 15000 + b, b + 1 < BUSES ? "," : "");
    fprintf(f, ");\n");
}

static bool write_site(const char *dir, const char *site, size_t nmeters, char *conf, size_t conf_len)
{
    char csv[512];
    snprintf(conf, conf_len, "%s/%s.conf", dir, site);
    snprintf(csv, sizeof csv, "%s/%s-meters.csv", dir, site);
    bool estate = strcmp(site, "estate") == 0;
    FILE *f = fopen(csv, "w");
    if (!f)
        return false;
    fprintf(f, estate ? "id,bus,slave,driver,kind,category,serial,unit,parent\n"
                      : "id,bus,slave,driver,kind,category,serial\n");
    for (size_t i = 0; i < nmeters; i++) {
        fprintf(f, "M%05zu,gen%zu,%zu,sdm120,electricity,%s,%zu", i + 1, i % BUSES, i / BUSES + 1,
                estate && i % 100 == 0 ? "building" : "unit", 30000001 + i);
        if (estate && i % 100 == 0)
            fprintf(f, ",,\n");
        else if (estate)
            fprintf(f, ",B%03zu-%02zu,M%05zu\n", i / 100, i % 100, i - i % 100 + 1);
        else
            fprintf(f, "\n");
    }
    if (fclose(f) != 0)
        return false;
    f = fopen(conf, "w");
    if (!f)
        return false;
    fprintf(f, "gateway = { id = \"gw1\"; site = \"bench\"; data_dir = \"%s/gw\"; log_level = \"warn\"; "
               "language = \"en\"; };\n",
            dir);
    fprintf(f, "mqtt = { uri = \"tcp://127.0.0.1:1883\"; qos_readings = 0; qos_events = 1; };\n");
    fprintf(f, "http = { listen = \"\"; };\n");
    write_buses(f);
    if (estate) {
        fprintf(f, "units = (\n");
        bool first = true;
        for (size_t i = 0; i < nmeters; i++) {
            if (i % 100 == 0)
                continue;
            fprintf(f, "%s  { id = \"B%03zu-%02zu\"; building = \"%zu\"; }", first ? "" : ",\n", i / 100,
                    i % 100, i / 100 + 1);
            first = false;
        }
        fprintf(f, "\n);\n");
    }
    fprintf(f, "meters_csv = \"%s\";\n", csv);
    return fclose(f) == 0;
}

static int measure(const char *dir, const char *site, size_t nmeters)
{
    char conf[512];
    if (!write_site(dir, site, nmeters, conf, sizeof conf)) {
        fprintf(stderr, "bench_config: cannot write the %s site into %s\n", site, dir);
        return 1;
    }
    size_t heap_before = heap_in_use();
    size_t rss_before = peak_rss();
    struct gw_config *config = NULL;
    struct gw_config_errors errors = { 0 };
    if (gw_config_load(conf, NULL, 0, &config, &errors) != EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        return 1;
    }
    size_t held = heap_in_use() - heap_before;
    size_t rss_growth = peak_rss() - rss_before;
    printf("  %-6s %zu meters, %zu units: config holds %.2f MB (%.0f bytes/meter); peak RSS grew %.2f MB "
           "while loading\n",
           site, config->nmeters, config->nunits, held / 1e6, (double)held / (double)config->nmeters,
           rss_growth / 1e6);
    gw_config_free(config);
    char path[600];
    snprintf(path, sizeof path, "%s/%s-meters.csv", dir, site);
    unlink(path);
    unlink(conf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t nmeters = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    if (nmeters < 100 || nmeters > BUSES * 247) {
        fprintf(stderr, "usage: %s [meters: 100..%d]\n", argv[0], BUSES * 247);
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/bench_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench_config: mkdtemp");
        return 1;
    }
    printf("bench_config: gateway configuration loaded with gw_config_load\n");
    int rc = measure(dir, "poll", nmeters);
    if (rc == 0)
        rc = measure(dir, "estate", nmeters);
    rmdir(dir);
    printf("  run: %s %zu\n", argv[0], nmeters);
    return rc;
}
