/* sample.h - the plain struct that flows down the data path:
 * poller (poll + decode) -> core queue -> rules -> store -> publish.
 * Also carries the result of a valve actuation back to the core. */
#ifndef GW_SAMPLE_H
#define GW_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers.h"
#include "estate.h"

enum gw_device_type { GW_DEVICE_METER, GW_DEVICE_PANEL };

/* good: every request answered; stale: some answered (partial values);
 * error: none answered (values empty, error says why). */
enum gw_quality { GW_QUALITY_GOOD, GW_QUALITY_STALE, GW_QUALITY_ERROR };

enum gw_item_type { GW_ITEM_SAMPLE, GW_ITEM_VALVE_RESULT };

struct gw_sample {
    enum gw_item_type item;
    enum gw_device_type device_type;
    uint32_t index;          /* meter or panel index in the config */
    uint32_t generation;     /* which config index refers to (the poller's; see
                              * gw_core_reload) */
    int64_t ts_ms;           /* wall clock when the poll finished */
    int64_t mono_ms;         /* monotonic clock then (0: unknown): the rules' time */
    enum gw_quality quality;
    est_err error;           /* first failure of this poll, EST_OK if none */
    int exception;           /* Modbus exception code when error is EST_ERR_EXCEPTION */
    unsigned bad_values;     /* NaN/Inf values dropped by the decoder */
    bool valve_close;        /* GW_ITEM_VALVE_RESULT: what was asked */
    char requested_by[48];   /* GW_ITEM_VALVE_RESULT: who asked ("rule", a user) */
    struct drv_reading reading;
};

const char *gw_quality_name(enum gw_quality q);

#endif
