/* rules_config.c - rule defaults (DOMAIN.md, Detection), the table of tunable
 * parameters the config loader parses as rules.<rule>.<name>, range checks,
 * and the rule/severity names. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "rules_internal.h"

static const char *const rule_names[RULE__COUNT] = {
    [RULE_REVERSE_ENERGY] = "reverse_energy",
    [RULE_VACANT_FLOW] = "vacant_flow",
    [RULE_CONTINUOUS_FLOW] = "continuous_flow",
    [RULE_FIRE_ALARM] = "fire_alarm",
    [RULE_FIRE_FAULT] = "fire_fault",
    [RULE_FIRE_DISABLED] = "fire_disabled",
    [RULE_METER_OFFLINE] = "meter_offline",
    [RULE_IMPLAUSIBLE_READING] = "implausible_reading",
    [RULE_METER_REPLACED] = "meter_replaced",
    [RULE_BALANCE_LOSS] = "balance_loss",
    [RULE_FIRE_SUPERVISORY] = "fire_supervisory",
    [RULE_VACANT_POWER] = "vacant_power",
    [RULE_BATTERY_LOW] = "battery_low",
};

static const char *const severity_names[] = { "info", "minor", "major", "critical" };

static void set_common(struct rule_common *c, enum rule_severity severity, int hold_s, int clear_s)
{
    c->enabled = true;
    c->severity = severity;
    c->hold_s = hold_s;
    c->clear_s = clear_s;
}

void rule_config_defaults(struct rule_config *config)
{
    memset(config, 0, sizeof *config);

    set_common(&config->reverse_energy.c, RULE_SEV_MAJOR, 0, 300);
    config->reverse_energy.min_negative_power_w = 10.0;
    config->reverse_energy.rating_fraction = 0.005;
    config->reverse_energy.negative_power_hold_s = 60;
    config->reverse_energy.export_confirm_polls = 2;

    set_common(&config->vacant_flow.c, RULE_SEV_MAJOR, 0, 300);
    config->vacant_flow.min_increase_m3 = 0.001;
    config->vacant_flow.confirm_reads = 2;
    config->vacant_flow.window_s = 600;
    config->vacant_flow.auto_close_valve = false;
    config->vacant_flow.valve_check_s = 60;
    config->vacant_flow.valve_retries = 3;

    set_common(&config->continuous_flow.c, RULE_SEV_MAJOR, 0, 0);
    config->continuous_flow.min_flow_m3h = 0.001;
    config->continuous_flow.zero_flow_needed_s = 3600;
    config->continuous_flow.window_s = 86400;

    set_common(&config->fire_alarm.c, RULE_SEV_CRITICAL, 0, 0);
    set_common(&config->fire_fault.c, RULE_SEV_MAJOR, 0, 60);
    set_common(&config->fire_disabled.c, RULE_SEV_MINOR, 0, 0);
    set_common(&config->fire_supervisory.c, RULE_SEV_MAJOR, 0, 0);

    set_common(&config->meter_offline.c, RULE_SEV_MINOR, 0, 0);
    config->meter_offline.failures = 3;

    set_common(&config->implausible_reading.c, RULE_SEV_MINOR, 0, 3600);
    config->implausible_reading.jump_margin = 1.5;
    config->implausible_reading.freeze_s = 3600;
    config->implausible_reading.max_water_flow_m3h = 10.0;

    set_common(&config->meter_replaced.c, RULE_SEV_MINOR, 0, 3600);

    set_common(&config->balance_loss.c, RULE_SEV_MINOR, 0, 86400);
    config->balance_loss.loss_pct = 8.0;
    config->balance_loss.low_flow_m3 = 1.0;
    config->balance_loss.low_flow_loss_pct = 20.0;
    config->balance_loss.window_s = 86400;

    set_common(&config->vacant_power.c, RULE_SEV_MINOR, 0, 600);
    config->vacant_power.threshold_w = 60.0;
    config->vacant_power.clear_below_w = 30.0;
    config->vacant_power.window_s = 900;

    set_common(&config->battery_low.c, RULE_SEV_MINOR, 0, 3600);
    config->battery_low.confirm_reads = 2;
    config->battery_low.open_workorder = true;
}

#define MONTH_S (31 * 86400)
#define COMMON_ROWS(rule, field)                                                                     \
    { rule, "enabled", RULE_PARAM_BOOL, offsetof(struct rule_config, field.c.enabled), 0, 1,          \
      "evaluate this rule" },                                                                         \
    { rule, "severity", RULE_PARAM_SEVERITY, offsetof(struct rule_config, field.c.severity), 0, 3,    \
      "severity of its incidents: info, minor, major or critical" },                                  \
    { rule, "hold_s", RULE_PARAM_INT, offsetof(struct rule_config, field.c.hold_s), 0, MONTH_S,       \
      "seconds the condition must persist before an incident is raised" },                            \
    { rule, "clear_s", RULE_PARAM_INT, offsetof(struct rule_config, field.c.clear_s), 0, MONTH_S,     \
      "seconds the condition must be absent before the incident clears" }

#define ROW(rule, field, name, type, min, max, doc) \
    { rule, #name, type, offsetof(struct rule_config, field.name), min, max, doc }

static const struct rule_param params[] = {
    COMMON_ROWS(RULE_REVERSE_ENERGY, reverse_energy),
    ROW(RULE_REVERSE_ENERGY, reverse_energy, min_negative_power_w, RULE_PARAM_DOUBLE, 0, 1e6,
        "power counts as reverse below -max(this, rated power x rating_fraction), W"),
    ROW(RULE_REVERSE_ENERGY, reverse_energy, rating_fraction, RULE_PARAM_DOUBLE, 0, 1,
        "share of the meter's rated power for the negative power threshold"),
    ROW(RULE_REVERSE_ENERGY, reverse_energy, negative_power_hold_s, RULE_PARAM_INT, 0, 86400,
        "seconds power must stay below the threshold (also for a reversed CT phase)"),
    ROW(RULE_REVERSE_ENERGY, reverse_energy, export_confirm_polls, RULE_PARAM_INT, 1, 100,
        "consecutive polls the export register must stay at least one step above its baseline"),

    COMMON_ROWS(RULE_VACANT_FLOW, vacant_flow),
    ROW(RULE_VACANT_FLOW, vacant_flow, min_increase_m3, RULE_PARAM_DOUBLE, 0, 100,
        "volume increase must exceed max(this, meter resolution), m3"),
    ROW(RULE_VACANT_FLOW, vacant_flow, confirm_reads, RULE_PARAM_INT, 1, 100,
        "reads that must each show an increase over the previous read"),
    ROW(RULE_VACANT_FLOW, vacant_flow, window_s, RULE_PARAM_INT, 1, MONTH_S,
        "an increase older than this no longer counts: tracking restarts"),
    ROW(RULE_VACANT_FLOW, vacant_flow, auto_close_valve, RULE_PARAM_BOOL, 0, 1,
        "close the meter's valve when raised (meters with a valve)"),
    ROW(RULE_VACANT_FLOW, vacant_flow, valve_check_s, RULE_PARAM_INT, 1, 3600,
        "seconds after closing when the valve must report closed and the flow must have stopped"),
    ROW(RULE_VACANT_FLOW, vacant_flow, valve_retries, RULE_PARAM_INT, 0, 10,
        "closes sent again to a valve that did not close (each check waits twice as long) before "
        "the incident goes critical"),

    COMMON_ROWS(RULE_CONTINUOUS_FLOW, continuous_flow),
    ROW(RULE_CONTINUOUS_FLOW, continuous_flow, min_flow_m3h, RULE_PARAM_DOUBLE, 0, 100,
        "flow at or below this counts as no flow, m3/h"),
    ROW(RULE_CONTINUOUS_FLOW, continuous_flow, zero_flow_needed_s, RULE_PARAM_INT, 1, MONTH_S,
        "length of the zero-flow stretch that proves there is no leak"),
    ROW(RULE_CONTINUOUS_FLOW, continuous_flow, window_s, RULE_PARAM_INT, 1, MONTH_S,
        "raise when no such stretch was seen for this long (quiet-window time excluded)"),

    COMMON_ROWS(RULE_FIRE_ALARM, fire_alarm),
    COMMON_ROWS(RULE_FIRE_FAULT, fire_fault),
    COMMON_ROWS(RULE_FIRE_DISABLED, fire_disabled),
    COMMON_ROWS(RULE_FIRE_SUPERVISORY, fire_supervisory),

    COMMON_ROWS(RULE_METER_OFFLINE, meter_offline),
    ROW(RULE_METER_OFFLINE, meter_offline, failures, RULE_PARAM_INT, 1, 1000,
        "consecutive failed polls that make a meter or panel offline"),

    COMMON_ROWS(RULE_IMPLAUSIBLE_READING, implausible_reading),
    ROW(RULE_IMPLAUSIBLE_READING, implausible_reading, jump_margin, RULE_PARAM_DOUBLE, 1, 1000,
        "a counter may advance at most rated power (or max flow) x interval x this"),
    ROW(RULE_IMPLAUSIBLE_READING, implausible_reading, freeze_s, RULE_PARAM_INT, 10, MONTH_S,
        "a counter that has not moved for this long while power or flow says it should is frozen"),
    ROW(RULE_IMPLAUSIBLE_READING, implausible_reading, max_water_flow_m3h, RULE_PARAM_DOUBLE, 0.001,
        1e5, "plausibility bound for water meters without their own max_flow_m3h, m3/h"),

    COMMON_ROWS(RULE_METER_REPLACED, meter_replaced),

    COMMON_ROWS(RULE_BALANCE_LOSS, balance_loss),
    ROW(RULE_BALANCE_LOSS, balance_loss, loss_pct, RULE_PARAM_DOUBLE, 0, 100,
        "raise when the parent exceeds the sum of its children by more than this, percent"),
    ROW(RULE_BALANCE_LOSS, balance_loss, low_flow_m3, RULE_PARAM_DOUBLE, 0, 1e9,
        "below this parent increase per window (m3, or kWh for electricity) ..."),
    ROW(RULE_BALANCE_LOSS, balance_loss, low_flow_loss_pct, RULE_PARAM_DOUBLE, 0, 100,
        "... this tolerance applies instead, percent"),
    ROW(RULE_BALANCE_LOSS, balance_loss, window_s, RULE_PARAM_INT, 30, MONTH_S,
        "window length; windows start at local midnight when they divide a day"),

    COMMON_ROWS(RULE_VACANT_POWER, vacant_power),
    ROW(RULE_VACANT_POWER, vacant_power, threshold_w, RULE_PARAM_DOUBLE, 0, 1e6,
        "a vacant unit's meter whose mean power over window_s exceeds this raises, W"),
    ROW(RULE_VACANT_POWER, vacant_power, clear_below_w, RULE_PARAM_DOUBLE, 0, 1e6,
        "... and counts as off again when its mean power falls below this, W (hysteresis)"),
    ROW(RULE_VACANT_POWER, vacant_power, window_s, RULE_PARAM_INT, 1, 86400,
        "the mean power is taken over windows of this length"),

    COMMON_ROWS(RULE_BATTERY_LOW, battery_low),
    ROW(RULE_BATTERY_LOW, battery_low, confirm_reads, RULE_PARAM_INT, 1, 100,
        "consecutive good reads that must show the battery-low flag before raising"),
    ROW(RULE_BATTERY_LOW, battery_low, open_workorder, RULE_PARAM_BOOL, 0, 1,
        "open a maintenance work order for the incident even when its severity is below major"),
};

const struct rule_param *rule_params(size_t *count)
{
    if (count)
        *count = sizeof params / sizeof params[0];
    return params;
}

/* The value of one parameter row in a config, as a double. */
static double param_value(const struct rule_config *config, const struct rule_param *p)
{
    const char *field = (const char *)config + p->offset;
    switch (p->type) {
    case RULE_PARAM_BOOL: return *(const bool *)(const void *)field ? 1.0 : 0.0;
    case RULE_PARAM_INT: return *(const int *)(const void *)field;
    case RULE_PARAM_DOUBLE: return *(const double *)(const void *)field;
    case RULE_PARAM_SEVERITY: return (double)*(const enum rule_severity *)(const void *)field;
    }
    return NAN;
}

est_err rules__config_check(const struct rule_config *config)
{
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        double v = param_value(config, &params[i]);
        if (!isfinite(v) || v < params[i].min || v > params[i].max)
            return EST_ERR_RANGE;
    }
    if (config->continuous_flow.zero_flow_needed_s > config->continuous_flow.window_s)
        return EST_ERR_RANGE;
    if (config->vacant_power.clear_below_w > config->vacant_power.threshold_w)
        return EST_ERR_RANGE;
    return EST_OK;
}

est_err rule_config_check(const struct rule_config *config)
{
    if (!config)
        return EST_ERR_INVALID;
    return rules__config_check(config);
}

const char *rule_name(enum rule_id rule)
{
    if ((unsigned)rule >= RULE__COUNT)
        return "unknown";
    return rule_names[rule];
}

int rule_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < RULE__COUNT; i++)
        if (strcmp(name, rule_names[i]) == 0)
            return i;
    return -1;
}

const char *rule_severity_name(enum rule_severity s)
{
    if ((unsigned)s > RULE_SEV_CRITICAL)
        return "unknown";
    return severity_names[s];
}

int rule_severity_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i <= RULE_SEV_CRITICAL; i++)
        if (strcmp(name, severity_names[i]) == 0)
            return i;
    return -1;
}
