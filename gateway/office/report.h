/* report.h - consumption reports over the store's daily snapshots (used by
 * estate-ctl report, later the console), and the small table/CSV printer
 * estate-ctl uses for every listing.
 *
 * Consumption of a meter over local days [from, to] = its counter at the
 * first snapshot on or after `from` minus its counter at the first snapshot
 * on or after `to`+1 (the end falls back to the last snapshot inside the
 * period, marked "partial"); electricity counts import kWh, water volume m3.
 * A meter replaced in the period adds the old device's last reading minus
 * the start and the new device's end minus its first reading.
 * Reads only; nothing here prints except the print functions. */
#ifndef GW_REPORT_H
#define GW_REPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "store.h"

/* Builds the report for local days from_day..to_day ("YYYY-MM-DD"):
 * {"from","to",
 *  "meters":[{"meter","kind","category","unit"?,"building"?,"start","end",
 *             "consumption","quantity","partial","replaced"}],
 *  "units":[{"unit","building","electricity_kwh","water_m3"}],
 *  "buildings":[{"building","electricity_kwh","water_m3"}],
 *  "categories":[{"category","electricity_kwh","water_m3"}],
 *  "balance":[{"day","meter","parent_m3"|"parent_kwh","children","loss","loss_pct"}],
 *  "month_end":[{"month","meter","day","value"}],
 *  "offline":[{"meter","since","until"?}], "replaced":[{"meter","ts","old_serial","new_serial"}]}
 * NULL with a reason in errbuf on bad days or a store failure. Caller frees. */
cJSON *gw_report_build(struct gw_store *store, const struct gw_config *config, const char *from_day,
                       const char *to_day, char *errbuf, size_t errlen);

/* Readable tables (one per section), or CSV with a "section" first column. */
void gw_report_print_text(const cJSON *report, FILE *out);
void gw_report_print_csv(const cJSON *report, FILE *out);

/* Whether text is a valid "YYYY-MM-DD". */
bool gw_report_day_valid(const char *text);

/* One column of a table: header and the member of each row object. */
struct gw_table_column {
    const char *header;
    const char *key;
};

/* Prints an array of objects as an aligned table (UTF-8 aware) or as CSV
 * (RFC 4180 quoting). Numbers print without trailing zeros, booleans as
 * yes/no, absent members as "". */
void gw_table_print(FILE *out, const cJSON *rows, const struct gw_table_column *columns,
                    size_t ncolumns, bool csv);

#endif
