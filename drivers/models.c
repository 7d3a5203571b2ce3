/* models.c - the device models as const register tables (addresses, function
 * codes, types and word orders from the datasheets summarised in DOMAIN.md),
 * the model registry and the quantity / valve-state names.
 *
 * Serial numbers: SDM120 and SDM630 expose theirs at holding 0xFC00 (uint32
 * big-endian, datasheet). Xintai water meters and DDS238-2 document none; as
 * an estate-gw convention (ESTATE_SERIAL_CONVENTION_ADDR below) their serial
 * is a uint32 ABCD holding register pair at 0x0020, which estate-sim serves
 * and which real devices may answer with an exception (then the serial is
 * simply absent). DDSU666 and DTSU666 have no serial point. */
#include "drivers.h"

#include <string.h>

/* estate-gw convention, not a datasheet address: see the file comment. */
#define ESTATE_SERIAL_CONVENTION_ADDR 0x0020

/* Shorthands that keep the tables one row per point. */
#define FAST(q, fc, addr, type, order, scale) \
    {(q), (fc), (addr), (type), (order), (scale), DRV_HOOK_NONE, false}
#define SLOW(q, fc, addr, type, order, scale) \
    {(q), (fc), (addr), (type), (order), (scale), DRV_HOOK_NONE, true}
#define EASTRON_F32(q, addr) FAST((q), DRV_FC_INPUT, (addr), DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0)
#define CHINT_F32(q, addr, scale) \
    FAST((q), DRV_FC_HOLDING, (addr), DRV_TYPE_F32, DRV_ORDER_ABCD, (scale))
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Eastron SDM120 / SDM230: FC04 float ABCD; total (0x0156) depends on the
 * meter's mode register and is published as energy_total_kwh only. It sits
 * far from the main block, so it is a slow point (read with the serial):
 * no rule uses it, and it would otherwise double each poll's transactions. */
static const struct drv_point sdm120_points[] = {
    EASTRON_F32(DRV_Q_VOLTAGE_V, 0x0000),
    EASTRON_F32(DRV_Q_CURRENT_A, 0x0006),
    EASTRON_F32(DRV_Q_POWER_W, 0x000C),
    EASTRON_F32(DRV_Q_POWER_FACTOR, 0x001E),
    EASTRON_F32(DRV_Q_FREQUENCY_HZ, 0x0046),
    EASTRON_F32(DRV_Q_ENERGY_IMPORT_KWH, 0x0048),
    EASTRON_F32(DRV_Q_ENERGY_EXPORT_KWH, 0x004A),
    SLOW(DRV_Q_ENERGY_TOTAL_KWH, DRV_FC_INPUT, 0x0156, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0),
    SLOW(DRV_Q_SERIAL, DRV_FC_HOLDING, 0xFC00, DRV_TYPE_U32, DRV_ORDER_ABCD, 1.0),
};

/* Eastron SDM630: three phases, FC04 float ABCD; total as for the SDM120. */
static const struct drv_point sdm630_points[] = {
    EASTRON_F32(DRV_Q_VOLTAGE_L1_V, 0x0000),
    EASTRON_F32(DRV_Q_VOLTAGE_L2_V, 0x0002),
    EASTRON_F32(DRV_Q_VOLTAGE_L3_V, 0x0004),
    EASTRON_F32(DRV_Q_CURRENT_L1_A, 0x0006),
    EASTRON_F32(DRV_Q_CURRENT_L2_A, 0x0008),
    EASTRON_F32(DRV_Q_CURRENT_L3_A, 0x000A),
    EASTRON_F32(DRV_Q_POWER_L1_W, 0x000C),
    EASTRON_F32(DRV_Q_POWER_L2_W, 0x000E),
    EASTRON_F32(DRV_Q_POWER_L3_W, 0x0010),
    EASTRON_F32(DRV_Q_POWER_W, 0x0034),
    EASTRON_F32(DRV_Q_FREQUENCY_HZ, 0x0046),
    EASTRON_F32(DRV_Q_ENERGY_IMPORT_KWH, 0x0048),
    EASTRON_F32(DRV_Q_ENERGY_EXPORT_KWH, 0x004A),
    SLOW(DRV_Q_ENERGY_TOTAL_KWH, DRV_FC_INPUT, 0x0156, DRV_TYPE_F32, DRV_ORDER_ABCD, 1.0),
    SLOW(DRV_Q_SERIAL, DRV_FC_HOLDING, 0xFC00, DRV_TYPE_U32, DRV_ORDER_ABCD, 1.0),
};

/* CHINT DDSU666: FC03 float ABCD; power in kW. No serial register. */
static const struct drv_point ddsu666_points[] = {
    CHINT_F32(DRV_Q_VOLTAGE_V, 0x2000, 1.0),
    CHINT_F32(DRV_Q_CURRENT_A, 0x2002, 1.0),
    CHINT_F32(DRV_Q_POWER_W, 0x2004, 1000.0),
    CHINT_F32(DRV_Q_POWER_FACTOR, 0x200A, 1.0),
    CHINT_F32(DRV_Q_FREQUENCY_HZ, 0x200E, 1.0),
    CHINT_F32(DRV_Q_ENERGY_IMPORT_KWH, 0x4000, 1.0),
    CHINT_F32(DRV_Q_ENERGY_EXPORT_KWH, 0x400A, 1.0),
};

/* CHINT DTSU666: FC03 floats holding scaled integers. No serial register. */
static const struct drv_point dtsu666_points[] = {
    CHINT_F32(DRV_Q_VOLTAGE_L1_V, 0x2006, 0.1),
    CHINT_F32(DRV_Q_VOLTAGE_L2_V, 0x2008, 0.1),
    CHINT_F32(DRV_Q_VOLTAGE_L3_V, 0x200A, 0.1),
    CHINT_F32(DRV_Q_CURRENT_L1_A, 0x200C, 0.001),
    CHINT_F32(DRV_Q_CURRENT_L2_A, 0x200E, 0.001),
    CHINT_F32(DRV_Q_CURRENT_L3_A, 0x2010, 0.001),
    CHINT_F32(DRV_Q_POWER_W, 0x2012, 0.1),
    CHINT_F32(DRV_Q_POWER_L1_W, 0x2014, 0.1),
    CHINT_F32(DRV_Q_POWER_L2_W, 0x2016, 0.1),
    CHINT_F32(DRV_Q_POWER_L3_W, 0x2018, 0.1),
    CHINT_F32(DRV_Q_FREQUENCY_HZ, 0x2044, 0.01),
    CHINT_F32(DRV_Q_ENERGY_IMPORT_KWH, 0x101E, 1.0),
    CHINT_F32(DRV_Q_ENERGY_EXPORT_KWH, 0x1028, 1.0),
};

/* Hiking DDS238-2: FC03 big-endian integers. */
static const struct drv_point dds238_points[] = {
    FAST(DRV_Q_ENERGY_TOTAL_KWH, DRV_FC_HOLDING, 0x0000, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01),
    FAST(DRV_Q_ENERGY_EXPORT_KWH, DRV_FC_HOLDING, 0x0008, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01),
    FAST(DRV_Q_ENERGY_IMPORT_KWH, DRV_FC_HOLDING, 0x000A, DRV_TYPE_U32, DRV_ORDER_ABCD, 0.01),
    FAST(DRV_Q_VOLTAGE_V, DRV_FC_HOLDING, 0x000C, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.1),
    FAST(DRV_Q_CURRENT_A, DRV_FC_HOLDING, 0x000D, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.01),
    FAST(DRV_Q_POWER_W, DRV_FC_HOLDING, 0x000E, DRV_TYPE_I16, DRV_ORDER_ABCD, 1.0),
    FAST(DRV_Q_FREQUENCY_HZ, DRV_FC_HOLDING, 0x0011, DRV_TYPE_U16, DRV_ORDER_ABCD, 0.01),
    SLOW(DRV_Q_SERIAL, DRV_FC_HOLDING, ESTATE_SERIAL_CONVENTION_ADDR, DRV_TYPE_U32,
         DRV_ORDER_ABCD, 1.0),
};

/* Kaifeng Xintai valve water meter: FC03, floats DCBA, one 28-register block
 * from 0x0001; the valve status word goes through a hook. */
static const struct drv_point xintai_points[] = {
    FAST(DRV_Q_VOLUME_M3, DRV_FC_HOLDING, 0x0001, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0),
    FAST(DRV_Q_REVERSE_VOLUME_M3, DRV_FC_HOLDING, 0x0003, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0),
    FAST(DRV_Q_FLOW_M3H, DRV_FC_HOLDING, 0x0005, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0),
    FAST(DRV_Q_BATTERY_V, DRV_FC_HOLDING, 0x001A, DRV_TYPE_F32, DRV_ORDER_DCBA, 1.0),
    {DRV_Q_VALVE, DRV_FC_HOLDING, 0x001C, DRV_TYPE_U16, DRV_ORDER_ABCD, 1.0,
     DRV_HOOK_XINTAI_VALVE_STATUS, false},
    SLOW(DRV_Q_SERIAL, DRV_FC_HOLDING, ESTATE_SERIAL_CONVENTION_ADDR, DRV_TYPE_U32,
         DRV_ORDER_ABCD, 1.0),
};

static const struct drv_write xintai_valve = {.address = 0x001C, .open_value = 0x0001,
                                              .close_value = 0x0002};

/* NOTIFIER MODBUS-GW: loop 1 detectors from wire 0, 159 used points per loop. */
static const struct drv_panel_layout notifier_layout = {
    .first_point_address = 0x0000,
    .max_zones = 159,
    .zone_decode = drv_notifier_zone_decode,
};

static const struct drv_model models[] = {
    {
        .name = "sdm120",
        .description = "Eastron SDM120/SDM230 single-phase meter",
        .kind = DRV_KIND_ELECTRICITY,
        .points = sdm120_points,
        .npoints = COUNT_OF(sdm120_points),
        .max_read_regs = 80,
        .max_gap_regs = 40,
        .export_expected = false,
        .rated_power_w = 230.0 * 100.0, /* SDM230 family: 100 A max */
        .resolution = 0.01,
        .default_baud = 2400,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
    {
        .name = "sdm630",
        .description = "Eastron SDM630 three-phase meter",
        .kind = DRV_KIND_ELECTRICITY,
        .points = sdm630_points,
        .npoints = COUNT_OF(sdm630_points),
        .max_read_regs = 80,
        .max_gap_regs = 40,
        .export_expected = false,
        .rated_power_w = 3.0 * 230.0 * 100.0,
        .resolution = 0.01,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
    {
        .name = "ddsu666",
        .description = "CHINT DDSU666 single-phase meter",
        .kind = DRV_KIND_ELECTRICITY,
        .points = ddsu666_points,
        .npoints = COUNT_OF(ddsu666_points),
        .max_read_regs = DRV_MAX_READ_REGS,
        .max_gap_regs = 16,
        .export_expected = false,
        .rated_power_w = 230.0 * 80.0,
        .resolution = 0.01,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
    {
        .name = "dtsu666",
        .description = "CHINT DTSU666 three-phase meter",
        .kind = DRV_KIND_ELECTRICITY,
        .points = dtsu666_points,
        .npoints = COUNT_OF(dtsu666_points),
        .max_read_regs = DRV_MAX_READ_REGS,
        .max_gap_regs = 16,
        .export_expected = false,
        .rated_power_w = 3.0 * 230.0 * 80.0,
        .resolution = 0.01,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1, /* manual n.1; 8N2 seen in the field */
    },
    {
        .name = "dds238",
        .description = "Hiking DDS238-2 single-phase meter",
        .kind = DRV_KIND_ELECTRICITY,
        .points = dds238_points,
        .npoints = COUNT_OF(dds238_points),
        .max_read_regs = DRV_MAX_READ_REGS,
        .max_gap_regs = 8,
        .export_expected = false,
        .rated_power_w = 230.0 * 65.0,
        .counter_wrap = 4294967296.0 * 0.01,
        .resolution = 0.01,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
    {
        .name = "xintai-water",
        .description = "Kaifeng Xintai valve water meter (Modbus V1)",
        .kind = DRV_KIND_WATER,
        .points = xintai_points,
        .npoints = COUNT_OF(xintai_points),
        .max_read_regs = DRV_MAX_READ_REGS,
        .max_gap_regs = 32,
        .export_expected = false,
        .rated_power_w = 0.0,
        .resolution = 0.001,
        .valve = &xintai_valve,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
    {
        .name = "notifier-gw",
        .description = "NOTIFIER MODBUS-GW fire panel gateway",
        .kind = DRV_KIND_FIRE_PANEL,
        .points = NULL,
        .npoints = 0,
        .max_read_regs = DRV_MAX_READ_REGS,
        .max_gap_regs = 8,
        .export_expected = false,
        .panel = &notifier_layout,
        .default_baud = 9600,
        .default_parity = 'N',
        .default_stop_bits = 1,
    },
};

static const char *const quantity_names[DRV_Q__COUNT] = {
    [DRV_Q_ENERGY_IMPORT_KWH] = "energy_import_kwh",
    [DRV_Q_ENERGY_EXPORT_KWH] = "energy_export_kwh",
    [DRV_Q_ENERGY_TOTAL_KWH] = "energy_total_kwh",
    [DRV_Q_POWER_W] = "power_w",
    [DRV_Q_VOLTAGE_V] = "voltage_v",
    [DRV_Q_CURRENT_A] = "current_a",
    [DRV_Q_POWER_FACTOR] = "power_factor",
    [DRV_Q_FREQUENCY_HZ] = "frequency_hz",
    [DRV_Q_POWER_L1_W] = "power_l1_w",
    [DRV_Q_POWER_L2_W] = "power_l2_w",
    [DRV_Q_POWER_L3_W] = "power_l3_w",
    [DRV_Q_VOLTAGE_L1_V] = "voltage_l1_v",
    [DRV_Q_VOLTAGE_L2_V] = "voltage_l2_v",
    [DRV_Q_VOLTAGE_L3_V] = "voltage_l3_v",
    [DRV_Q_CURRENT_L1_A] = "current_l1_a",
    [DRV_Q_CURRENT_L2_A] = "current_l2_a",
    [DRV_Q_CURRENT_L3_A] = "current_l3_a",
    [DRV_Q_VOLUME_M3] = "volume_m3",
    [DRV_Q_REVERSE_VOLUME_M3] = "reverse_volume_m3",
    [DRV_Q_FLOW_M3H] = "flow_m3h",
    [DRV_Q_VALVE] = "valve",
    [DRV_Q_VALVE_FAULT] = "valve_fault",
    [DRV_Q_BATTERY_V] = "battery_v",
    [DRV_Q_BATTERY_LOW] = "battery_low",
    [DRV_Q_PANEL_ALARM] = "panel_alarm",
    [DRV_Q_PANEL_FAULT] = "panel_fault",
    [DRV_Q_SERIAL] = "serial",
};

const struct drv_model *drv_model_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < COUNT_OF(models); i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

size_t drv_model_count(void) { return COUNT_OF(models); }

const struct drv_model *drv_model_at(size_t index)
{
    return index < COUNT_OF(models) ? &models[index] : NULL;
}

uint64_t drv_model_float32_quantities(const struct drv_model *model)
{
    uint64_t mask = 0;
    for (size_t i = 0; model != NULL && i < model->npoints; i++) {
        const struct drv_point *pt = &model->points[i];
        if (pt->type == DRV_TYPE_F32 && pt->scale == 1.0 && pt->hook == DRV_HOOK_NONE)
            mask |= UINT64_C(1) << pt->quantity;
    }
    return mask;
}

const char *drv_quantity_name(enum drv_quantity q)
{
    if ((int)q < 0 || q >= DRV_Q__COUNT)
        return "unknown";
    return quantity_names[q];
}

int drv_quantity_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int q = 0; q < DRV_Q__COUNT; q++)
        if (strcmp(quantity_names[q], name) == 0)
            return q;
    return -1;
}

const char *drv_valve_state_name(enum drv_valve_state s)
{
    switch (s) {
    case DRV_VALVE_OPEN:
        return "open";
    case DRV_VALVE_CLOSED:
        return "closed";
    case DRV_VALVE_MOVING:
        return "moving";
    case DRV_VALVE_UNKNOWN:
    default:
        return "unknown";
    }
}

/* NOTIFIER point word: bit 13 trouble, 11 active (low byte = event type),
 * 9 disabled; low byte 0xFF with bit 11 clear = point not programmed. */
uint8_t drv_notifier_zone_decode(uint16_t reg)
{
    const uint16_t trouble = 1u << 13, active = 1u << 11, disabled = 1u << 9;
    unsigned event = reg & 0xFFu;
    if (!(reg & active) && event == 0xFFu)
        return DRV_ZONE_UNPROGRAMMED;
    uint8_t bits = 0;
    if (reg & active) {
        if (event == 0x10u || event == 0x14u)
            bits |= DRV_ZONE_ALARM;
        else if (event == 0x30u || event == 0x40u)
            bits |= DRV_ZONE_SUPERVISORY;
    }
    if (reg & trouble)
        bits |= DRV_ZONE_FAULT;
    if (reg & disabled)
        bits |= DRV_ZONE_DISABLED;
    return bits;
}
