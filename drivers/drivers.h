/* drivers.h - the public face of drivers/: device models as register tables,
 * pure decoders and encoders, the read planner, and the Modbus link (TCP and
 * RTU) the pollers use. Nothing in drivers/ logs, exits or knows the gateway.
 *
 * Data path: a model (loaded from its file, etc/models/<name>.conf) +
 * per-device options -> drv_plan (the fewest merged requests) -> registers
 * read over a drv_link -> drv_decode() -> drv_reading (named quantities).
 * estate-sim loads the same files and serves them through drv_encode_value()
 * so drivers and simulator cannot drift apart. */
#ifndef DRIVERS_H
#define DRIVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "estate.h"

/* Protocol limits (Modbus application protocol v1.1b3). */
#define DRV_MAX_READ_REGS 125 /* one FC03/FC04 request */
#define DRV_MAX_ZONES 256     /* zones of one fire panel we track */

enum drv_kind { DRV_KIND_ELECTRICITY, DRV_KIND_WATER, DRV_KIND_FIRE_PANEL };

enum drv_function {
    DRV_FC_HOLDING = 3, /* read holding registers */
    DRV_FC_INPUT = 4,   /* read input registers */
};

enum drv_type { DRV_TYPE_U16, DRV_TYPE_I16, DRV_TYPE_U32, DRV_TYPE_I32, DRV_TYPE_F32 };

/* Byte order of a 32-bit value spread over two registers; A is the most
 * significant byte. ABCD big-endian, CDAB word-swapped, BADC byte-swapped
 * in each word, DCBA little-endian. 16-bit types use only the byte order
 * within the word (ABCD/CDAB = big-endian, BADC/DCBA = swapped). */
enum drv_word_order { DRV_ORDER_ABCD, DRV_ORDER_CDAB, DRV_ORDER_BADC, DRV_ORDER_DCBA };

/* Named quantities (SPEC "Quantity names"), plus a few extras. The enum is
 * the index into drv_reading.value; drv_quantity_name() gives the wire name. */
enum drv_quantity {
    DRV_Q_ENERGY_IMPORT_KWH,
    DRV_Q_ENERGY_EXPORT_KWH,
    DRV_Q_ENERGY_TOTAL_KWH,
    DRV_Q_POWER_W,
    DRV_Q_VOLTAGE_V,
    DRV_Q_CURRENT_A,
    DRV_Q_POWER_FACTOR,
    DRV_Q_FREQUENCY_HZ,
    DRV_Q_POWER_L1_W,
    DRV_Q_POWER_L2_W,
    DRV_Q_POWER_L3_W,
    DRV_Q_VOLTAGE_L1_V,
    DRV_Q_VOLTAGE_L2_V,
    DRV_Q_VOLTAGE_L3_V,
    DRV_Q_CURRENT_L1_A,
    DRV_Q_CURRENT_L2_A,
    DRV_Q_CURRENT_L3_A,
    DRV_Q_VOLUME_M3,
    DRV_Q_REVERSE_VOLUME_M3,
    DRV_Q_FLOW_M3H,
    DRV_Q_VALVE,       /* enum drv_valve_state stored as a number */
    DRV_Q_VALVE_FAULT, /* 0/1 */
    DRV_Q_BATTERY_V,
    DRV_Q_BATTERY_LOW, /* 0/1 */
    DRV_Q_PANEL_ALARM, /* 0/1 */
    DRV_Q_PANEL_FAULT, /* 0/1 */
    DRV_Q_SERIAL,      /* device serial number, read on slow polls only */
    DRV_Q__COUNT
};

enum drv_valve_state { DRV_VALVE_UNKNOWN, DRV_VALVE_OPEN, DRV_VALVE_CLOSED, DRV_VALVE_MOVING };

/* The protocol a model speaks (its file's `protocol`). Modbus models read
 * registers through a drv_plan and a drv_link; the others read data items
 * over a drv_cnlink (drivers/cnlink.c). */
enum drv_protocol { DRV_PROTO_MODBUS, DRV_PROTO_DLT645, DRV_PROTO_CJT188 };

/* A field of the CJ/T 188 901F reply a point takes its value from. */
enum drv_cjt188_field {
    DRV_CJT188_CURRENT_VOLUME,    /* m3 */
    DRV_CJT188_SETTLEMENT_VOLUME, /* m3 */
    DRV_CJT188_VALVE,             /* enum drv_valve_state; abnormal -> unknown */
    DRV_CJT188_VALVE_FAULT,       /* 1 when ST0 says the valve is abnormal */
    DRV_CJT188_BATTERY_LOW,       /* 0/1 */
};

/* Per-zone state bits in drv_reading.zones[]. */
enum drv_zone_bits {
    DRV_ZONE_ALARM = 1u << 0,
    DRV_ZONE_FAULT = 1u << 1,
    DRV_ZONE_DISABLED = 1u << 2,
    DRV_ZONE_SUPERVISORY = 1u << 3,
    DRV_ZONE_PREALARM = 1u << 4,     /* shown in the panel state, never raised */
    DRV_ZONE_UNKNOWN = 1u << 6,      /* the zone's register was not read this poll */
    DRV_ZONE_UNPROGRAMMED = 1u << 7,
};

/* A status word: one register whose bits say a state and some flags (a
 * valve's position, its fault and battery bits). Decoding sets the point's
 * quantity to the result of the first state whose (raw & mask) == value
 * (absent when none matches) and each flag's quantity to 1 when
 * (raw & mask) != 0, else 0. */
struct drv_status_state {
    uint16_t mask;
    uint16_t value;
    double result;             /* e.g. enum drv_valve_state */
};

struct drv_status_flag {
    enum drv_quantity quantity;
    uint16_t mask;
};

struct drv_status_word {
    const char *name;
    const struct drv_status_state *states;
    size_t nstates;
    const struct drv_status_flag *flags;
    size_t nflags;
};

struct drv_point {
    enum drv_quantity quantity;
    uint8_t function;          /* enum drv_function */
    uint16_t address;          /* 0-based wire address before options.address_base */
    enum drv_type type;
    enum drv_word_order order; /* datasheet order; a device may override it */
    double scale;              /* value = raw * scale (e.g. 1000 for kW -> W); a power
                                * of ten (0.01, 1000.0) is applied to the decimal
                                * digits exactly: see drv_decode_value */
    const struct drv_status_word *status; /* NULL: a number; else decoded as status bits */
    bool slow;                 /* read only every slow_every polls (serial) */
    const char *unit;          /* the datasheet's unit, for people; may be NULL */
    /* DL/T 645 points: the data identifier and its BCD format (value =
     * digits / 10^decimals * scale; sign_bit: the top bit of the last
     * byte is the sign). A point with a status word reads the item as a
     * little-endian bit word instead. */
    uint32_t di;
    uint8_t nbytes;
    uint8_t decimals;
    bool sign_bit;
    enum drv_cjt188_field field; /* CJ/T 188 points */
};

/* A writable register (valve control) and the quantity that shows the
 * command took effect. */
struct drv_write {
    uint16_t address;
    uint16_t open_value;
    uint16_t close_value;
    enum drv_quantity read_back;
};

/* One rule of a fire panel's point word: when (reg & mask) == value the
 * zone gets bits (enum drv_zone_bits). A matching DRV_ZONE_UNPROGRAMMED rule
 * wins alone; otherwise the bits of every matching rule are combined. */
struct drv_zone_rule {
    uint16_t mask;
    uint16_t value;
    uint8_t bits;
};

/* Fire panel zone layout: one holding register per point; zone n (1-based)
 * defaults to first_point_address + (n-1). Decoded by the rules. */
struct drv_panel_layout {
    uint16_t first_point_address;
    uint16_t max_zones;
    const struct drv_zone_rule *rules;
    size_t nrules;
    uint16_t enabled_bits;     /* shown by every point not disabled (simulator only) */
};

/* One device model, as loaded from its file (drv_model_load_file). */
struct drv_model {
    const char *name;          /* config name, e.g. "sdm120" */
    const char *vendor;        /* e.g. "Eastron" */
    const char *product;       /* the file's `model`, e.g. "SDM120" */
    const char *description;   /* human text, e.g. "Eastron SDM120 single-phase" */
    const char *file;          /* the file it was loaded from */
    enum drv_kind kind;
    const struct drv_point *points;
    size_t npoints;
    uint16_t max_read_regs;    /* lower than 125 for models that need it */
    uint16_t max_gap_regs;     /* largest hole the planner may read through */
    bool export_expected;      /* false: export growth means reverse running */
    double rated_power_w;      /* plausibility bound for energy jumps */
    double counter_wrap;       /* integer counters: value at which they wrap, 0 = none */
    double resolution;         /* smallest counter step in the quantity's unit */
    const struct drv_write *valve; /* NULL when the model has no valve */
    const struct drv_panel_layout *panel; /* fire panels only */
    int default_baud;
    char default_parity;       /* 'N', 'E', 'O' */
    int default_stop_bits;
    int slave_switch_delay_ms; /* pause the model needs after another slave spoke */
    unsigned slow_every;       /* polls between reads of slow points; 0 = 60 */
    const struct drv_status_word *status_words; /* owned; points refer to them */
    size_t nstatus_words;
    enum drv_protocol protocol;
    int dlt645_version;        /* DL/T 645: 2007 or 1997 */
    uint8_t cjt188_meter_type; /* CJ/T 188: T byte, e.g. 0x10 cold water */
};

/* Per-device overrides from the config (real sites need them). Start from
 * drv_device_options_init() (or pass NULL for all defaults): note that a
 * zeroed struct means word_order 0 = ABCD forced, not "model's". */
struct drv_device_options {
    int function;              /* 0 = model's; 3 or 4 forces every read point */
    int word_order;            /* -1 = model's; else enum drv_word_order. Applies to
                                * 32-bit points only: a 16-bit register is
                                * big-endian on the wire by Modbus definition */
    int address_base;          /* added to every table address (e.g. -1 or +1) */
    uint16_t max_read_regs;    /* 0 = model's */
    unsigned slow_every;       /* read slow points every N polls; 0 = the model's */
    uint16_t nzones;           /* fire panels: zones configured (0 = the layout's
                                * max_zones); must be 0 for meters */
    const uint16_t *zone_addresses; /* NULL = layout default (address_base applies);
                                * else nzones wire addresses, used as given. With
                                * explicit addresses up to DRV_MAX_ZONES zones,
                                * otherwise up to the layout's max_zones. Copied by
                                * drv_plan_build. */
};

/* Sets every option to "use the model's" (function 0, word_order -1, ...). */
void drv_device_options_init(struct drv_device_options *options);

struct drv_request {
    uint8_t function;
    uint16_t address;
    uint16_t count;
    bool slow;                 /* only read on slow polls */
    size_t reg_offset;         /* where its registers start in the regs buffer */
};

/* A device's read plan, built once at config load. Opaque apart from the
 * request list. Owned by the caller; free with drv_plan_free(). */
struct drv_plan;

/* Decoded values of one poll. present has bit (1 << q) set for each
 * quantity read; value[q] holds it. Zones only for fire panels. */
struct drv_reading {
    uint64_t present;
    uint64_t bad;              /* quantities whose registers held NaN or Inf this poll
                                * (bit 1 << q each): not in present */
    double value[DRV_Q__COUNT];
    uint16_t nzones;
    uint8_t zones[DRV_MAX_ZONES];
};

/* --- model files --- */
/* Parses one model file's text (file names it in messages). On failure
 * returns EST_ERR_INVALID (or EST_ERR_NOMEM) and, when errors is not NULL,
 * sets *errors to lines "FILE:LINE: message\n" (free() it). */
est_err drv_model_parse(const char *text, size_t len, const char *file, struct drv_model **out,
                        char **errors);
/* Reads and parses path (EST_ERR_IO when it cannot be read). */
est_err drv_model_load_file(const char *path, struct drv_model **out, char **errors);
void drv_model_free(struct drv_model *model);

/* --- the model registry ---
 * Models are looked up by name in the site directories added with
 * drv_models_add_dir (the latest first), then in the shipped directory:
 * $ESTATE_GW_MODELS_DIR when set, else the first share/estate-gw/models
 * found beside or above the executable (<exe>/../share/estate-gw/models for
 * an installed program; a build tree has one at its top), else the install
 * prefix's. The shipped directory is loaded on first use. Models stay
 * loaded until the process ends: pointers to them never dangle. Call from
 * one thread at a time while loading configuration. */
const struct drv_model *drv_model_find(const char *name);
size_t drv_model_count(void);
const struct drv_model *drv_model_at(size_t index);
/* Loads every *.conf in dir as site models; a directory already added is
 * not read again. Errors as for drv_model_parse; no model of the directory
 * is added when one file is wrong. */
est_err drv_models_add_dir(const char *dir, char **errors);
/* The shipped directory in use (NULL when none was found), and the errors
 * of loading it (NULL when none). */
const char *drv_models_shipped_dir(void);
const char *drv_models_shipped_errors(void);
/* Zone bits of a fire panel point word under the layout's rules. */
uint8_t drv_panel_zone_decode(const struct drv_panel_layout *layout, uint16_t reg);
/* Register value showing zone bits: the values of the first rule for each
 * bit set, combined, plus enabled_bits unless disabled or unprogrammed (for
 * the simulator). */
uint16_t drv_panel_zone_encode(const struct drv_panel_layout *layout, uint8_t bits);
/* Register value of a status word that decodes to state (the point's
 * quantity) and to the flags set in values[] (for the simulator). */
uint16_t drv_status_encode(const struct drv_status_word *word, double state,
                           const double values[DRV_Q__COUNT]);
const char *drv_quantity_name(enum drv_quantity q);
/* -1 when name is not a quantity */
int drv_quantity_from_name(const char *name);
/* "open", "closed", "moving", "unknown" */
const char *drv_valve_state_name(enum drv_valve_state s);

/* Quantities the model reads from float32 registers at scale 1 (bit 1 << q
 * each): for these, (double)(float)value gives back the register's float32
 * exactly, for arithmetic in register steps (the rules' counter checks). */
uint64_t drv_model_float32_quantities(const struct drv_model *model);

/* --- pure decoders and encoders --- */
/* Registers needed by a type: 1 or 2. */
unsigned drv_type_regs(enum drv_type type);
/* Decodes raw registers (as they came off the wire, one uint16 per register
 * in host order) into a number, applying scale, as the decimal the meter
 * meant: a float32 gives the shortest decimal of at most 9 significant
 * digits that converts back to the same float32 (0x43621999 -> 226.1, not
 * 226.10000610351562), an integer with a power-of-ten scale raw / 10^k
 * (1234 at 0.01 -> 12.34, not 12.340000000000001); the result is the double
 * nearest to that decimal (the scale applied to its digits), which prints
 * short. NaN and Inf stay as they are; 0, subnormal
 * and float32 magnitudes outside 1e-12..1e22 are kept exactly. */
double drv_decode_value(const uint16_t *regs, enum drv_type type, enum drv_word_order order,
                        double scale);
/* Inverse of drv_decode_value (for the simulator and tests): encoding a
 * decoded value gives back the same registers. Integers are rounded and
 * clamped to the type's range. Writes drv_type_regs() words. */
void drv_encode_value(double value, enum drv_type type, enum drv_word_order order, double scale,
                      uint16_t *regs);

/* --- read plan --- */
/* Builds the plan for one device. Errors: EST_ERR_INVALID (bad options,
 * e.g. zones beyond the layout, address out of range), EST_ERR_NOMEM. */
est_err drv_plan_build(const struct drv_model *model, const struct drv_device_options *options,
                       struct drv_plan **out);
void drv_plan_free(struct drv_plan *plan);
size_t drv_plan_request_count(const struct drv_plan *plan);
const struct drv_request *drv_plan_request(const struct drv_plan *plan, size_t index);
/* Total registers over all requests: the size of the regs buffer. */
size_t drv_plan_register_count(const struct drv_plan *plan);
/* Effective wire address, function and order of a model point on a device
 * (after the options): what the simulator must serve. */
void drv_point_effective(const struct drv_model *model, const struct drv_device_options *options,
                         size_t point_index, uint8_t *function, uint16_t *address,
                         enum drv_word_order *order);
/* Wire address of fire-panel zone z (0-based) on a device. */
uint16_t drv_zone_address(const struct drv_model *model, const struct drv_device_options *options,
                          uint16_t zone);
/* Wire address and value of a valve command on a device (address_base
 * applied). EST_ERR_NOTFOUND when the model has no valve, EST_ERR_RANGE when
 * the base moves the address outside 0..65535. */
est_err drv_valve_command(const struct drv_model *model, const struct drv_device_options *options,
                          bool open, uint16_t *address, uint16_t *value);
/* The model, zone count (0 for meters) and slow_every (never 0) a plan was built with. */
const struct drv_model *drv_plan_model(const struct drv_plan *plan);
uint16_t drv_plan_zone_count(const struct drv_plan *plan);
unsigned drv_plan_slow_every(const struct drv_plan *plan);

/* Decodes one poll. regs holds every request's registers at its reg_offset;
 * request_ok[i] says whether request i was read this poll (a slow request
 * skipped, or a failed one, is false and its quantities stay absent; zones
 * it covers get DRV_ZONE_UNKNOWN). NaN/Inf decode as absent, with their
 * quantity's bit set in out->bad; *bad_values (may be NULL) is set to how
 * many there were in this poll. panel_alarm and
 * panel_fault are derived from the zones read (any alarm / any fault).
 * Status-word points decode through their drv_status_word. */
est_err drv_decode(const struct drv_plan *plan, const uint16_t *regs, const bool *request_ok,
                   struct drv_reading *out, unsigned *bad_values);

/* NOTIFIER point register -> zone bits under the shipped notifier-gw
 * model's rules (0 when that model is not loaded). */
uint8_t drv_notifier_zone_decode(uint16_t reg);

/* --- Modbus link: one per bus, used by exactly one thread --- */
/* DRV_LINK_RTU_OVER_TCP: RTU frames (slave, PDU, CRC-16) over a TCP
 * stream, for serial-to-Ethernet converters in transparent mode: host and
 * port as for TCP, baud/parity/data_bits/stop_bits as for RTU (they set the
 * derived timeouts and the inter-frame silence); one request at a time. */
enum drv_link_type { DRV_LINK_TCP, DRV_LINK_RTU, DRV_LINK_RTU_OVER_TCP };

struct drv_link_config {
    enum drv_link_type type;
    const char *host;          /* TCP */
    int port;
    const char *device;        /* RTU: /dev/ttyUSB0 or a pty path */
    int baud;
    char parity;               /* 'N', 'E', 'O' */
    int data_bits;
    int stop_bits;
    int response_timeout_ms;   /* 0 = derived from baud (RTU) or 1000 (TCP) */
    int byte_timeout_ms;       /* 0 = derived */
    int slave_switch_delay_ms; /* pause after addressing another slave id */
    int request_gap_ms;        /* pause between any two requests */
    int reconnect_min_ms;      /* first reconnect backoff; 0 = 200 */
    int reconnect_max_ms;      /* backoff cap; 0 = 30000 */
};

struct drv_link;

/* Allocates a link; connects lazily on first use and after failures, with
 * exponential backoff and jitter. */
est_err drv_link_open(const struct drv_link_config *config, struct drv_link **out);
void drv_link_close(struct drv_link *link);
/* Reads count registers. On EST_ERR_EXCEPTION *exception (if non-NULL) gets
 * the Modbus exception code (0x0A/0x0B come from converters).
 * EST_ERR_IO when not connected (including during backoff). */
est_err drv_link_read(struct drv_link *link, int slave, uint8_t function, uint16_t address,
                      uint16_t count, uint16_t *dest, int *exception);
/* FC06 write of one holding register. */
est_err drv_link_write(struct drv_link *link, int slave, uint16_t address, uint16_t value,
                       int *exception);
/* One read of a pipelined batch (drv_link_read_many). */
struct drv_link_read {
    int slave;
    uint8_t function;          /* DRV_FC_HOLDING or DRV_FC_INPUT */
    uint16_t address;
    uint16_t count;
    uint16_t *dest;
    est_err result;            /* out */
    int exception;             /* out: the code when result is EST_ERR_EXCEPTION */
};

/* The most reads drv_link_read_many keeps in flight. */
#define DRV_LINK_MAX_IN_FLIGHT 32

/* Sends up to DRV_LINK_MAX_IN_FLIGHT reads back to back in one TCP segment,
 * each with its own transaction id, then takes the replies, matched by
 * transaction id and unit id: a converter or meter that queues Modbus
 * TCP requests answers them one after the other, so a burst of polls costs
 * one round trip instead of one each. Each read gets its own result, as from
 * drv_link_read. Stray and duplicated frames are skipped; a read another
 * read's reply overtook gets EST_ERR_TIMEOUT. After a timeout or a frame
 * that breaks the stream (a bad header, a length other than the reply's)
 * the connection is reopened, and the reads not answered get EST_ERR_STATE
 * (read them again alone). On an RTU link, or for one read, the
 * reads are done one at a time. */
void drv_link_read_many(struct drv_link *link, struct drv_link_read *reads, size_t n);
/* Transactions and failures since open (for statistics and benchmarks). */
void drv_link_stats(const struct drv_link *link, uint64_t *transactions, uint64_t *failures);
/* TCP frames skipped since open: replies to no outstanding request (late,
 * duplicated or stray) and bytes that arrived while none was outstanding. */
uint64_t drv_link_stray_frames(const struct drv_link *link);

/* --- RTU framing (the RTU-over-TCP link, the commissioning scan) --- */
#define DRV_RTU_MAX_ADU 256        /* slave + PDU (253) + CRC */
#define DRV_RTU_REQUEST_BYTES 8    /* an FC03/FC04 read or FC06 write request */

/* Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF); the low byte goes
 * first on the wire. */
uint16_t drv_rtu_crc16(const uint8_t *data, size_t len);
/* The request ADU of an FC03/FC04 read of count registers. */
void drv_rtu_read_request(uint8_t slave, uint8_t function, uint16_t address, uint16_t count,
                          uint8_t out[DRV_RTU_REQUEST_BYTES]);
/* The request ADU of an FC06 write of one holding register. */
void drv_rtu_write_request(uint8_t slave, uint16_t address, uint16_t value,
                           uint8_t out[DRV_RTU_REQUEST_BYTES]);

enum drv_rtu_found {
    DRV_RTU_NOTHING,   /* no reply to the request in the bytes yet: read more */
    DRV_RTU_REPLY,     /* the normal reply, at [start, end) */
    DRV_RTU_EXCEPTION, /* an exception reply from the slave, at [start, end) */
    DRV_RTU_MISMATCH,  /* a frame from the slave (CRC good) that does not answer the
                        * request: another function, byte count or write echo */
};

/* What drv_rtu_find_reply saw in a stream of received bytes. */
struct drv_rtu_scan {
    enum drv_rtu_found found;
    size_t start, end;        /* the frame found */
    int exception;            /* DRV_RTU_EXCEPTION: its code */
    unsigned bad_crc;         /* frames that looked like replies but failed the CRC */
    unsigned other_slave;     /* well-formed replies from other slaves (skipped) */
};

/* Looks for the reply to request (an ADU from drv_rtu_read_request or
 * drv_rtu_write_request) in buf[0..len): bytes before it (garbage, the rest
 * of an earlier frame) and complete frames from other slaves are skipped, a
 * candidate whose CRC fails is counted and skipped. A frame split over
 * several reads is found once all of it is in buf. Pure. */
void drv_rtu_find_reply(const uint8_t request[DRV_RTU_REQUEST_BYTES], const uint8_t *buf,
                        size_t len, struct drv_rtu_scan *out);
/* The registers of a read reply frame (as found: frame[0] is the slave). */
void drv_rtu_reply_registers(const uint8_t *frame, uint16_t count, uint16_t *dest);

/* --- commissioning scan: which requests identify a device, how to judge
 * the replies (pure; estate-ctl scan does the I/O) --- */
#define DRV_SCAN_MAX_PROBES 48
#define DRV_SCAN_MAX_REGS 2        /* a probe reads one point: 1 or 2 registers */

/* One identifying read: a model's signature point (voltage, frequency,
 * volume, battery), the same read shared by the models that have it. */
struct drv_scan_probe {
    uint8_t function;
    uint16_t address;
    uint16_t count;
};

/* What one probe got: result as from drv_link_read, regs when EST_OK. */
struct drv_scan_answer {
    est_err result;
    uint16_t regs[DRV_SCAN_MAX_REGS];
};

/* The distinct probes over every meter model's signature points, in model
 * order (the first one is a good presence check). Returns how many were
 * written (at most max). */
size_t drv_scan_probes(struct drv_scan_probe *probes, size_t max);

/* The model a device's answers fit best: every signature point of the
 * model plausible (voltages 180-260 V, frequency 45-65 Hz, volume 0 to 1e8
 * m3, battery 2-15 V) in one word order, the most points winning (an
 * SDM630 also fits the SDM120's two). word_order is -1 when the model's
 * own order fits, else the enum drv_word_order that does; voltage_v or
 * volume_m3 (NAN when the model has none) the first such value read. */
struct drv_scan_match {
    const struct drv_model *model; /* NULL: no model fits */
    int word_order;
    unsigned points;               /* signature points that fit */
    /* Other models that fit the same answers as well (same register map,
     * e.g. SDM630 and SDM72): a scan cannot tell them apart. */
    const struct drv_model *alternatives[4];
    size_t nalternatives;
    double voltage_v;
    double volume_m3;
};
void drv_scan_identify(const struct drv_scan_probe *probes, const struct drv_scan_answer *answers,
                       size_t nprobes, struct drv_scan_match *out);
/* Whether model is the match or one of its equally good alternatives. */
bool drv_scan_match_fits(const struct drv_scan_match *match, const struct drv_model *model);

/* Where a model keeps its serial number (the read, its type and datasheet
 * order); false when it has none. */
bool drv_scan_serial_point(const struct drv_model *model, struct drv_scan_probe *probe,
                           enum drv_type *type, enum drv_word_order *order);

/* --- DL/T 645 and CJ/T 188 link: one per bus, used by exactly one thread ---
 * A serial port (termios; pseudo-terminals work too), or a TCP connection
 * to a serial-to-Ethernet converter in transparent mode, carrying one of
 * the two protocols: wake-up preamble before each request, one request at
 * a time, a response timeout and a turnaround pause, and the codecs'
 * scanner to find the reply among noise, echoes and however the converter
 * splits the bytes into segments. */
struct drv_cnlink_config {
    enum drv_protocol protocol; /* DRV_PROTO_DLT645 or DRV_PROTO_CJT188 */
    const char *device;        /* the serial port; NULL when host is set */
    const char *host;          /* the converter (TCP); NULL for a serial port */
    int port;                  /* the converter's TCP port */
    int baud;                  /* 2400 usual */
    char parity;               /* 'E' usual */
    int data_bits;
    int stop_bits;
    int response_timeout_ms;   /* 0 = derived from baud (+ 200 ms over TCP) */
    int turnaround_ms;         /* pause after a reply before the next request; 0 = 20 */
    unsigned preamble_count;   /* FE bytes; 0 = the protocol's default (4 / 2) */
    int reconnect_max_ms;      /* 0 = 5000 */
};

struct drv_cnlink;

est_err drv_cnlink_open(const struct drv_cnlink_config *config, struct drv_cnlink **out);
void drv_cnlink_close(struct drv_cnlink *link);

/* Address bytes of a meter on the wire (low byte first): 6 for DL/T 645,
 * 7 for CJ/T 188. */
size_t drv_cn_address_len(enum drv_protocol protocol);

/* How one poll of a meter went. */
struct drv_cn_poll_result {
    size_t attempted, answered;
    est_err first_error;       /* EST_OK when every read answered */
    int first_code;            /* the meter's error byte for EST_ERR_EXCEPTION */
};

/* Reads the model's points from the meter at address (every point when
 * slow_poll, else only those not slow) into out (present bits set for
 * what was read), attempts times each. A meter that does not answer its
 * first read is not asked for the rest. */
void drv_cnlink_poll(struct drv_cnlink *link, const struct drv_model *model,
                     const uint8_t *address, bool slow_poll, int attempts,
                     struct drv_reading *out, struct drv_cn_poll_result *result);

/* Opens or closes a CJ/T 188 meter's valve. EST_OK when the meter
 * accepted the command; EST_ERR_EXCEPTION when it refused (*code: 0);
 * EST_ERR_NOTFOUND for a model without valve. */
est_err drv_cnlink_valve(struct drv_cnlink *link, const struct drv_model *model,
                         const uint8_t *address, bool open);

void drv_cnlink_stats(const struct drv_cnlink *link, uint64_t *transactions, uint64_t *failures);

/* Commissioning (estate-ctl scan). Both return EST_OK for a good reply,
 * EST_ERR_EXCEPTION for an abnormal one (a meter is there), EST_ERR_TIMEOUT
 * when nothing answered, EST_ERR_PROTOCOL when only garbled frames came
 * (on a shared bus: several meters answering at once), EST_ERR_IO when the
 * port or converter cannot be used. */

/* The read-address broadcast (DL/T 645-2007: address AA x6, C=13;
 * CJ/T 188: type and address AA, C=03, DI 810A): the address of the one
 * meter on the line (drv_cn_address_len bytes, low byte first) and, for
 * CJ/T 188, its type byte (*type untouched for DL/T 645). */
est_err drv_cnlink_read_address(struct drv_cnlink *link, uint8_t *address, uint8_t *type);

/* Whether a meter answers at address: a read of model's first point
 * (DL/T 645) or of 901F with the model's type (CJ/T 188); with model NULL,
 * DL/T 645 reads the import register as 2007 and then as 1997, CJ/T 188
 * asks with the wildcard type AA. */
est_err drv_cnlink_probe(struct drv_cnlink *link, const struct drv_model *model,
                         const uint8_t *address);

#endif
