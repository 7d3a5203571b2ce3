/* payload.h - builds the JSON payloads of SPEC's MQTT topics (cJSON only):
 * readings, panel states and the status message. Pure: config + sample in,
 * a malloc'd UTF-8 string out (the caller frees it), or for the readings'
 * hot path, text printed into the caller's buffers. */
#ifndef GW_PAYLOAD_H
#define GW_PAYLOAD_H

#include <cjson/cJSON.h>

#include "config.h"
#include "sample.h"

/* {"meter","kind","category","unit"?,"ts","values":{...},"quality"[,"error"]} */
char *gw_payload_reading(const struct gw_config *config, const struct gw_sample *sample);

/* values object of a reading (numbers; valve as its name). */
cJSON *gw_payload_values(const struct drv_reading *reading);

/* The hot path's forms of the two above, the same JSON printed into the
 * caller's buffers so the values are printed once for the payload and the
 * store. gw_payload_values_json prints the values object into buf and
 * returns its length (0 when cap is too small: cJSON wants some slack);
 * gw_payload_reading_into prints the reading payload around values_json
 * (NUL-terminated, from the former) and returns its length (0 when cap is
 * too small). The sizes below hold every model shipped. */
#define GW_PAYLOAD_VALUES_MAX 2048
#define GW_PAYLOAD_READING_MAX 3072
size_t gw_payload_values_json(const struct drv_reading *reading, char *buf, size_t cap);
size_t gw_payload_reading_into(const struct gw_config *config, const struct gw_sample *sample,
                               const char *values_json, size_t values_len, char *buf, size_t cap);

/* {"panel","ts","quality","panel_alarm","panel_fault","zones":[{"zone","name","alarm","fault","disabled","supervisory"}...]} */
char *gw_payload_panel_state(const struct gw_config *config, const struct gw_sample *sample);

/* {"state":"online"|"offline","version","ts"} */
char *gw_payload_status(bool online, int64_t ts_ms);

/* Adds "ts": RFC 3339 to an object. */
void gw_json_add_ts(cJSON *object, const char *key, int64_t ts_ms);

/* Adds "key": RFC 3339 only when ts_ms > 0 (0 means "not yet"). */
void gw_json_add_ts_if(cJSON *object, const char *key, int64_t ts_ms);

/* Adds "key": value only when value is not NULL. */
void gw_json_add_string_if(cJSON *object, const char *key, const char *value);

/* Prints compactly and frees the object. NULL on allocation failure. */
char *gw_json_finish(cJSON *object);

#endif
