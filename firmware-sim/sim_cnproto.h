/* sim_cnproto.h - simulated household meters that speak DL/T 645
 * (electricity) and CJ/T 188 (water) instead of Modbus: pure functions
 * from a meter's state and one request frame to the reply frame, built
 * with the same codecs and item table the gateway uses (drivers/cnproto.h).
 * A serial endpoint of estate-sim feeds them what it receives and writes
 * back what they return. No I/O, no locks, no allocation. */
#ifndef SIM_CNPROTO_H
#define SIM_CNPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnproto.h"
#include "estate.h"

/* How a simulated meter answers the requests addressed to it. */
enum sim_cn_answer {
    SIM_CN_NORMAL,
    SIM_CN_ABNORMAL,     /* an abnormal reply (D6 set) to every request */
    SIM_CN_SILENT,       /* no reply at all */
    SIM_CN_BAD_CHECKSUM, /* the normal reply with its checksum broken */
};

/* A DL/T 645 meter. Values in SPEC units; they are served through the
 * dlt645 item table (dlt645_encode_point), so what a gateway decodes is
 * what is here, rounded to the item's decimals. */
struct sim_dlt645_meter {
    uint8_t address[DLT645_ADDRESS_LEN];
    struct dlt645_options options; /* variant, and FE bytes before each reply */
    double energy_total_kwh;
    double energy_import_kwh;
    double energy_export_kwh;
    double voltage_v;
    double current_a;   /* negative when power flows back */
    double power_w;     /* negative = reverse; also sets status word 1 bit 4 */
    double power_factor;
    double frequency_hz;
    uint64_t meter_number; /* DI 04000402, 12 digits */
    uint16_t status_word_1; /* other bits of run status word 1 */
    enum sim_cn_answer answer;
    uint8_t error_byte;    /* SIM_CN_ABNORMAL: the error byte sent */
};

/* Answers one request (FE preamble and noise before it are skipped).
 * EST_OK with *reply_len = 0 when the meter says nothing (another
 * address, a broadcast it does not answer, SIM_CN_SILENT); EST_OK with
 * the reply in out otherwise; EST_ERR_PROTOCOL when req holds no complete
 * request frame; EST_ERR_RANGE when out is too small (DLT645_FRAME_MAX
 * always suffices). Unknown DIs get an abnormal reply (no such data). */
est_err sim_dlt645_handle(const struct sim_dlt645_meter *meter, const uint8_t *req, size_t len,
                          uint8_t *out, size_t cap, size_t *reply_len);

/* A CJ/T 188 water meter. */
struct sim_cjt188_meter {
    uint8_t type;                         /* enum cjt188_meter_type */
    uint8_t address[CJT188_ADDRESS_LEN];
    struct cjt188_options options;        /* its DI order, status layout, valve codes,
                                           * units, and FE bytes before each reply */
    double volume_m3;                     /* current cumulative volume */
    double settlement_volume_m3;          /* on the last settlement day */
    uint8_t unit;                         /* unit byte it reports in (0x2C m3, 0x29 L) */
    struct cjt188_time clock;             /* its real-time clock as it sends it */
    enum cjt188_valve valve;
    bool battery_low;
    bool refuse_valve_on_low_battery;     /* many battery meters do */
    enum sim_cn_answer answer;
};

/* As sim_dlt645_handle. A valve command that is obeyed sets meter->valve
 * at once (travel time is the caller's to model); the only change the
 * handler makes to meter. */
est_err sim_cjt188_handle(struct sim_cjt188_meter *meter, const uint8_t *req, size_t len,
                          uint8_t *out, size_t cap, size_t *reply_len);

#endif
