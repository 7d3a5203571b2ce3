/* payload.h - builds the JSON payloads of SPEC's MQTT topics (cJSON only):
 * readings, panel states and the status message. Pure: config + sample in,
 * a malloc'd UTF-8 string out (the caller frees it). */
#ifndef GW_PAYLOAD_H
#define GW_PAYLOAD_H

#include <cjson/cJSON.h>

#include "config.h"
#include "sample.h"

/* {"meter","kind","category","unit"?,"ts","values":{...},"quality"[,"error"]} */
char *gw_payload_reading(const struct gw_config *config, const struct gw_sample *sample);

/* values object of a reading (numbers; valve as its name). */
cJSON *gw_payload_values(const struct drv_reading *reading);

/* {"panel","ts","quality","panel_alarm","panel_fault","zones":[{"zone","name","alarm","fault","disabled","supervisory"}...]} */
char *gw_payload_panel_state(const struct gw_config *config, const struct gw_sample *sample);

/* {"state":"online"|"offline","version","ts"} */
char *gw_payload_status(bool online, int64_t ts_ms);

/* Adds "ts": RFC 3339 to an object. */
void gw_json_add_ts(cJSON *object, const char *key, int64_t ts_ms);

/* Prints compactly and frees the object. NULL on allocation failure. */
char *gw_json_finish(cJSON *object);

#endif
