/* sim_world.h - the simulated site: endpoints, devices and their physics,
 * events and faults, the simulation clock. Pure state and functions of
 * (state, time): no sockets, no threads, no locks (the front ends hold
 * sim_world.lock around every call). Built by sim_config.c; served by
 * sim_pdu.c; driven by sim_loop.c (ticks, scenario) and sim_command.c.
 *
 * Ownership: the world owns every device, endpoint and string in it;
 * sim_world_free() releases all of it. */
#ifndef SIM_WORLD_H
#define SIM_WORLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers.h"
#include "estate.h"
#include "sim_profile.h"

#define SIM_MAX_SLAVE 247
#define SIM_VALVE_TRAVEL_MS 2000 /* a valve is "moving" this long after a write */

/* SIM_EP_RTU_OVER_TCP: RTU frames (with CRC) on a TCP listener, the way a
 * serial-to-Ethernet converter in transparent mode passes a bus through;
 * served like an rtu endpoint, with the wire timing of its serial side. */
enum sim_endpoint_type { SIM_EP_TCP, SIM_EP_RTU, SIM_EP_RTU_OVER_TCP };

/* What an endpoint does with a request for a slave id it does not have. */
enum sim_unknown_slave { SIM_UNKNOWN_EXCEPTION, SIM_UNKNOWN_SILENT };

struct sim_endpoint_stats {
    uint64_t requests;   /* frames addressed to this endpoint */
    uint64_t replies;    /* normal replies sent */
    uint64_t exceptions; /* exception replies */
    uint64_t dropped;    /* no reply (silent fault, unknown slave, broadcast, bad CRC) */
    uint64_t bad_frames; /* framing or CRC errors */
    uint64_t queued;     /* tcp: requests already waiting behind the one before (pipelined) */
    uint64_t rx_bytes;   /* rtu: bytes of request frames served (CRC checked) */
    uint64_t tx_bytes;   /* rtu: bytes of reply frames written */
};

struct sim_endpoint {
    char *name;
    enum sim_endpoint_type type;
    char *listen;        /* tcp, rtu_over_tcp: "host:port" */
    char *link;          /* rtu: path of the symlink to the pty slave */
    int baud;            /* rtu, rtu_over_tcp */
    char parity;         /* 'N', 'E', 'O' */
    int data_bits;
    int stop_bits;
    int turnaround_ms;   /* rtu: slave's think time before replying */
    enum sim_unknown_slave unknown_slave;
    enum drv_protocol protocol; /* rtu: modbus, or DL/T 645 / CJ/T 188 meters by address */
    int32_t slave_device[SIM_MAX_SLAVE + 1]; /* device index per slave id, -1 none */
    int32_t slave_twin[SIM_MAX_SLAVE + 1];   /* a second device on the id (shares_slave), -1 none */
    struct sim_endpoint_stats stats;
};

/* duplicate: every reply frame sent twice (after delay_ms, if given); bad_length: an MBAP length that
 * disagrees with the PDU (6 padding bytes follow it, TCP); wrong_unit: the
 * reply carries the next unit id. */
enum sim_fault { SIM_FAULT_NONE, SIM_FAULT_SILENT, SIM_FAULT_SLOW, SIM_FAULT_EXCEPTION,
                 SIM_FAULT_GARBAGE, SIM_FAULT_CRC, SIM_FAULT_DUPLICATE, SIM_FAULT_BAD_LENGTH,
                 SIM_FAULT_WRONG_UNIT };
#define SIM_FAULT_LAST SIM_FAULT_WRONG_UNIT

enum sim_zone_state { SIM_ZONE_NORMAL, SIM_ZONE_ALARM, SIM_ZONE_FAULT, SIM_ZONE_DISABLED,
                      SIM_ZONE_SUPERVISORY };

/* Where one model point lives on this device (drv_point_effective). */
struct sim_point {
    uint8_t function;
    uint16_t address;
    uint8_t nregs;
    enum drv_word_order order;
};

struct sim_device {
    char *id;
    size_t endpoint;              /* index into world.endpoints */
    uint8_t slave;                /* on a DL/T 645 / CJ/T 188 endpoint: a slot number */
    uint8_t cn_address[8];        /* DL/T 645 / CJ/T 188 address, low byte first */
    const struct drv_model *model;
    struct drv_device_options options;
    uint16_t *zone_addresses;     /* owned; options.zone_addresses points here */
    struct sim_point *points;     /* one per model point, owned */
    enum sim_profile profile;
    bool occupied;
    bool has_valve;
    bool three_phase;             /* model shows per-phase values */
    bool shares_slave;            /* set to the slave id of another device on purpose (a
                                   * commissioning mistake): both answer, replies collide */
    int parent;                   /* device index, -1 none */
    int depth;                    /* 0 for leaves; parents are deeper */
    uint64_t key;                 /* noise key (seed mixed with the id) */

    /* counters: they only grow, apart from replace/jump/set events */
    uint32_t serial;
    double import_kwh, export_kwh;
    double volume_m3, reverse_m3;
    double step_import_kwh, step_export_kwh, step_volume_m3; /* last advance, for parents */

    /* injected state */
    bool reverse;                 /* runs backwards at -reverse_w */
    double reverse_w;
    double extra_flow_m3h;        /* constant extra flow (leak, vacant-unit draw) */
    double loss_pct;              /* parents: share added to the children's sum */
    uint64_t forced_mask;         /* bit q: value[q] is forced to forced[q] */
    double forced[DRV_Q__COUNT];

    /* valve */
    enum drv_valve_state valve;
    enum drv_valve_state valve_target;
    int64_t valve_done_mono_ms;
    bool valve_fault;

    /* fire panel */
    uint16_t nzones;
    uint8_t *zones;               /* enum sim_zone_state per zone, owned */
    uint16_t *zone_wire;          /* wire address of each zone's register, owned */

    /* fault injection */
    enum sim_fault fault;
    uint32_t fault_delay_ms;
    uint8_t fault_code;
    uint32_t fault_replies_left;  /* the fault ends after this many replies; 0 = never */

    /* what the device shows now, in quantity units (W, kWh, m3 ...) */
    double value[DRV_Q__COUNT];
    uint64_t requests;
};

struct sim_clock {
    int64_t base_sim_ms;   /* simulated time at base_mono_ms */
    int64_t base_mono_ms;
    double time_scale;     /* simulated ms per real ms */
    bool frozen;
};

struct sim_world {
    pthread_mutex_t lock;  /* front ends hold it around every call below */
    uint64_t seed;
    int utc_offset_min;
    struct sim_clock clock;
    int64_t last_advance_sim_ms;
    struct sim_endpoint *endpoints;
    size_t nendpoints, endpoints_cap;
    struct sim_device *devices;
    size_t ndevices, devices_cap;
    size_t *order;         /* device indices, children before parents */
};

/* --- building (sim_config.c) --- */
/* An empty world; seed and clock set later. NULL on allocation failure. */
struct sim_world *sim_world_new(void);
void sim_world_free(struct sim_world *world);
/* Appends a zeroed endpoint / device; NULL on allocation failure. The
 * returned pointer is valid until the next add. */
struct sim_endpoint *sim_world_add_endpoint(struct sim_world *world);
struct sim_device *sim_world_add_device(struct sim_world *world);
/* After every device is added: effective points, slave tables, parents'
 * depth order, initial counters and values. EST_ERR_INVALID with a message
 * in err (size errlen) on duplicate slave ids or a parent loop. */
est_err sim_world_finish(struct sim_world *world, int64_t start_sim_ms, int64_t mono_ms,
                         char *err, size_t errlen);

/* --- lookup --- */
int sim_world_device_index(const struct sim_world *world, const char *id); /* -1 none */
int sim_world_endpoint_index(const struct sim_world *world, const char *name);
/* Device serving (endpoint, slave), or NULL. O(1). */
struct sim_device *sim_world_slave(struct sim_world *world, size_t endpoint, unsigned slave);
/* The second device answering (endpoint, slave) (shares_slave), or NULL. */
struct sim_device *sim_world_slave_twin(struct sim_world *world, size_t endpoint, unsigned slave);

/* --- clock --- */
int64_t sim_clock_now(const struct sim_clock *clock, int64_t mono_ms);
void sim_clock_freeze(struct sim_clock *clock, bool on, int64_t mono_ms);

/* --- physics --- */
/* Integrates every device from the last advance to sim_ms (counters grow
 * by the power or flow at each simulated second) and refreshes the shown
 * values. Also completes valve travel due at mono_ms. */
void sim_world_advance(struct sim_world *world, int64_t sim_ms, int64_t mono_ms);
/* Recomputes one device's shown values at sim_ms (after an event). */
void sim_device_refresh(struct sim_world *world, struct sim_device *dev, int64_t sim_ms);
/* Completes a valve movement that is due; true when the state changed. */
bool sim_device_valve_tick(struct sim_device *dev, int64_t mono_ms);

/* --- events (shared by the scenario and the control interface) --- */
enum sim_event_type { SIM_EV_REVERSE, SIM_EV_FLOW, SIM_EV_ZONE, SIM_EV_REPLACE, SIM_EV_JUMP,
                      SIM_EV_LOSS, SIM_EV_SET, SIM_EV_VALVE, SIM_EV__COUNT };

struct sim_event {
    enum sim_event_type type;
    bool on;              /* reverse; valve fault */
    double power_w;       /* reverse: magnitude of the negative power */
    double flow_m3h;      /* flow: constant extra flow, 0 stops it */
    int zone;             /* zone: 1-based zone number */
    enum sim_zone_state state; /* zone */
    bool has_serial;
    uint32_t serial;      /* replace */
    double delta;         /* jump */
    int quantity;         /* set, jump (optional): enum drv_quantity, -1 = main counter */
    bool clear;           /* set: drop the forced value */
    double value;         /* set */
    double pct;           /* loss */
    int valve_state;      /* valve: -1 keep, else DRV_VALVE_OPEN / DRV_VALVE_CLOSED */
    int valve_fault;      /* valve: -1 keep, 0/1 */
};

/* Applies one event to a device. EST_ERR_INVALID with a message when the
 * event does not fit the device (e.g. a zone event on a meter). */
est_err sim_device_apply_event(struct sim_world *world, struct sim_device *dev,
                               const struct sim_event *ev, int64_t mono_ms, char *err,
                               size_t errlen);
/* Checks that an event fits the device without applying it. */
est_err sim_device_check_event(const struct sim_device *dev, const struct sim_event *ev,
                               char *err, size_t errlen);
/* Sets the device's fault (delay_ms for slow and duplicate, code for exception). */
void sim_device_set_fault(struct sim_device *dev, enum sim_fault fault, uint32_t delay_ms,
                          uint8_t code);
/* Valve control write: value open_value or close_value of the model. false
 * when the value is neither. The valve moves for SIM_VALVE_TRAVEL_MS. */
/* The fault set last ends by itself after count requests (0: stays). */
void sim_device_limit_fault(struct sim_device *dev, uint32_t count);
bool sim_device_valve_write(struct sim_device *dev, uint16_t value, int64_t mono_ms);
/* Panel reset (status register write 1): alarms and supervisory back to normal. */
void sim_device_panel_reset(struct sim_device *dev);

/* --- names --- */
const char *sim_event_name(enum sim_event_type t);
int sim_event_from_name(const char *name);   /* -1 unknown */
const char *sim_fault_name(enum sim_fault f);
int sim_fault_from_name(const char *name);   /* -1 unknown */
const char *sim_zone_state_name(enum sim_zone_state s);
int sim_zone_state_from_name(const char *name); /* -1 unknown */

/* Register value a panel shows for a zone state, from its model's point_bits. */
uint16_t sim_zone_register(const struct drv_panel_layout *panel, enum sim_zone_state s);

#endif
