/* test_rules_config.c - rule defaults follow DOMAIN.md, the parameter rows
 * cover every field of struct rule_config exactly once, range checks, and
 * the rule/severity names. */
#include "test_rules_fixture.h"

static size_t field_size(enum rule_param_type type)
{
    switch (type) {
    case RULE_PARAM_BOOL: return sizeof(bool);
    case RULE_PARAM_INT: return sizeof(int);
    case RULE_PARAM_DOUBLE: return sizeof(double);
    case RULE_PARAM_SEVERITY: return sizeof(enum rule_severity);
    }
    return 0;
}

/* Sets a parameter the way a config loader would: through its row. */
static void set_param(struct rule_config *cfg, const struct rule_param *p, double value)
{
    char *field = (char *)cfg + p->offset;
    switch (p->type) {
    case RULE_PARAM_BOOL: *(bool *)(void *)field = value != 0.0; break;
    case RULE_PARAM_INT: *(int *)(void *)field = (int)value; break;
    case RULE_PARAM_DOUBLE: *(double *)(void *)field = value; break;
    case RULE_PARAM_SEVERITY: *(enum rule_severity *)(void *)field = (enum rule_severity)value; break;
    }
}

static const struct rule_param *find_param(enum rule_id rule, const char *name)
{
    size_t n;
    const struct rule_param *p = rule_params(&n);
    for (size_t i = 0; i < n; i++)
        if (p[i].rule == rule && strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

static void test_defaults_follow_domain(void **state)
{
    (void)state;
    struct rule_config c;
    rule_config_defaults(&c);
    assert_true(c.reverse_energy.min_negative_power_w == 10.0);
    assert_true(c.reverse_energy.rating_fraction == 0.005);
    assert_int_equal(c.reverse_energy.negative_power_hold_s, 60);
    assert_int_equal(c.reverse_energy.export_confirm_polls, 2);
    assert_int_equal(c.vacant_flow.confirm_reads, 2);
    assert_false(c.vacant_flow.auto_close_valve);
    assert_int_equal(c.continuous_flow.zero_flow_needed_s, 3600);
    assert_int_equal(c.continuous_flow.window_s, 86400);
    assert_int_equal(c.meter_offline.failures, 3);
    assert_int_equal(c.meter_offline.c.clear_s, 0);
    assert_true(c.balance_loss.loss_pct >= 5.0 && c.balance_loss.loss_pct <= 8.0);
    assert_true(c.balance_loss.low_flow_loss_pct > c.balance_loss.loss_pct);
    assert_int_equal(c.fire_alarm.c.severity, RULE_SEV_CRITICAL);
    assert_int_equal(c.vacant_flow.c.severity, RULE_SEV_MAJOR);
    assert_int_equal(c.reverse_energy.c.severity, RULE_SEV_MAJOR);
    assert_int_equal(c.continuous_flow.c.severity, RULE_SEV_MAJOR);
    assert_int_equal(c.fire_fault.c.severity, RULE_SEV_MAJOR);
    assert_int_equal(c.fire_disabled.c.severity, RULE_SEV_MINOR);
    assert_int_equal(c.meter_offline.c.severity, RULE_SEV_MINOR);
    assert_int_equal(c.implausible_reading.c.severity, RULE_SEV_MINOR);
    assert_int_equal(c.meter_replaced.c.severity, RULE_SEV_MINOR);
    assert_int_equal(c.balance_loss.c.severity, RULE_SEV_MINOR);
    assert_int_equal(c.vacant_power.c.severity, RULE_SEV_MINOR);
    assert_true(c.vacant_power.clear_below_w < c.vacant_power.threshold_w);
    assert_int_equal(rule_config_check(&c), EST_OK);
}

static void test_every_rule_has_common_rows(void **state)
{
    (void)state;
    static const char *const common[] = { "enabled", "severity", "hold_s", "clear_s" };
    for (int r = 0; r < RULE__COUNT; r++)
        for (size_t k = 0; k < 4; k++)
            assert_non_null(find_param((enum rule_id)r, common[k]));
}

/* The 78 fields of struct rule_config: 4 common x 13 rules + 26 thresholds.
 * Rows must not overlap, must lie inside the struct, and together cover
 * every field, so the loader can reject any key not in the table. */
static void test_rows_cover_every_field_once(void **state)
{
    (void)state;
    size_t n;
    const struct rule_param *p = rule_params(&n);
    assert_int_equal(n, 78);
    unsigned char covered[sizeof(struct rule_config)];
    memset(covered, 0, sizeof covered);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = field_size(p[i].type);
        assert_true(p[i].offset + size <= sizeof(struct rule_config));
        for (size_t b = 0; b < size; b++) {
            assert_int_equal(covered[p[i].offset + b], 0);
            covered[p[i].offset + b] = 1;
        }
        bytes += size;
        assert_true(p[i].min <= p[i].max);
        assert_non_null(p[i].doc);
        assert_true(strlen(p[i].doc) > 10);
        for (size_t j = 0; j < i; j++)
            assert_false(p[j].rule == p[i].rule && strcmp(p[j].name, p[i].name) == 0);
    }
    /* every threshold by name */
    assert_non_null(find_param(RULE_REVERSE_ENERGY, "min_negative_power_w"));
    assert_non_null(find_param(RULE_REVERSE_ENERGY, "rating_fraction"));
    assert_non_null(find_param(RULE_REVERSE_ENERGY, "negative_power_hold_s"));
    assert_non_null(find_param(RULE_REVERSE_ENERGY, "export_confirm_polls"));
    assert_non_null(find_param(RULE_VACANT_FLOW, "min_increase_m3"));
    assert_non_null(find_param(RULE_VACANT_FLOW, "confirm_reads"));
    assert_non_null(find_param(RULE_VACANT_FLOW, "window_s"));
    assert_non_null(find_param(RULE_VACANT_FLOW, "auto_close_valve"));
    assert_non_null(find_param(RULE_VACANT_FLOW, "valve_check_s"));
    assert_non_null(find_param(RULE_CONTINUOUS_FLOW, "min_flow_m3h"));
    assert_non_null(find_param(RULE_CONTINUOUS_FLOW, "zero_flow_needed_s"));
    assert_non_null(find_param(RULE_CONTINUOUS_FLOW, "window_s"));
    assert_non_null(find_param(RULE_METER_OFFLINE, "failures"));
    assert_non_null(find_param(RULE_IMPLAUSIBLE_READING, "jump_margin"));
    assert_non_null(find_param(RULE_IMPLAUSIBLE_READING, "freeze_s"));
    assert_non_null(find_param(RULE_IMPLAUSIBLE_READING, "max_water_flow_m3h"));
    assert_non_null(find_param(RULE_BALANCE_LOSS, "loss_pct"));
    assert_non_null(find_param(RULE_BALANCE_LOSS, "low_flow_m3"));
    assert_non_null(find_param(RULE_BALANCE_LOSS, "low_flow_loss_pct"));
    assert_non_null(find_param(RULE_BALANCE_LOSS, "window_s"));
    assert_null(find_param(RULE_BALANCE_LOSS, "no_such_key"));
}

/* A row's offset reaches the field the name says (spot checks). */
static void test_rows_point_at_their_fields(void **state)
{
    (void)state;
    struct rule_config c;
    rule_config_defaults(&c);
    set_param(&c, find_param(RULE_VACANT_FLOW, "auto_close_valve"), 1);
    set_param(&c, find_param(RULE_REVERSE_ENERGY, "min_negative_power_w"), 25.5);
    set_param(&c, find_param(RULE_METER_OFFLINE, "failures"), 7);
    set_param(&c, find_param(RULE_FIRE_DISABLED, "severity"), RULE_SEV_MAJOR);
    set_param(&c, find_param(RULE_BALANCE_LOSS, "clear_s"), 42);
    assert_true(c.vacant_flow.auto_close_valve);
    assert_true(c.reverse_energy.min_negative_power_w == 25.5);
    assert_int_equal(c.meter_offline.failures, 7);
    assert_int_equal(c.fire_disabled.c.severity, RULE_SEV_MAJOR);
    assert_int_equal(c.balance_loss.c.clear_s, 42);
}

static void test_check_rejects_out_of_range(void **state)
{
    (void)state;
    size_t n;
    const struct rule_param *p = rule_params(&n);
    for (size_t i = 0; i < n; i++) {
        if (p[i].type == RULE_PARAM_BOOL)
            continue;
        struct rule_config c;
        rule_config_defaults(&c);
        set_param(&c, &p[i], p[i].max + 1);
        assert_int_equal(rule_config_check(&c), EST_ERR_RANGE);
        rule_config_defaults(&c);
        set_param(&c, &p[i], p[i].min - 1);
        assert_int_equal(rule_config_check(&c), EST_ERR_RANGE);
    }
    struct rule_config c;
    rule_config_defaults(&c);
    c.vacant_flow.min_increase_m3 = NAN;
    assert_int_equal(rule_config_check(&c), EST_ERR_RANGE);
    rule_config_defaults(&c);
    c.continuous_flow.zero_flow_needed_s = c.continuous_flow.window_s + 1;
    assert_int_equal(rule_config_check(&c), EST_ERR_RANGE);
    assert_int_equal(rule_config_check(NULL), EST_ERR_INVALID);

    /* create applies the same check */
    struct rule_topology topo = { 0 };
    struct rule_engine *e = (struct rule_engine *)&topo;
    rule_config_defaults(&c);
    c.meter_offline.failures = 0;
    assert_int_equal(rule_engine_create(&c, &topo, NULL, NULL, NULL, &e), EST_ERR_RANGE);
    assert_null(e);
}

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int r = 0; r < RULE__COUNT; r++)
        assert_int_equal(rule_from_name(rule_name((enum rule_id)r)), r);
    assert_string_equal(rule_name(RULE_REVERSE_ENERGY), "reverse_energy");
    assert_string_equal(rule_name(RULE_BALANCE_LOSS), "balance_loss");
    assert_int_equal(rule_from_name("nope"), -1);
    assert_int_equal(rule_from_name(NULL), -1);
    assert_string_equal(rule_name((enum rule_id)99), "unknown");
    for (int s = RULE_SEV_INFO; s <= RULE_SEV_CRITICAL; s++)
        assert_int_equal(rule_severity_from_name(rule_severity_name((enum rule_severity)s)), s);
    assert_string_equal(rule_severity_name(RULE_SEV_CRITICAL), "critical");
    assert_int_equal(rule_severity_from_name("fatal"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_domain),
        cmocka_unit_test(test_every_rule_has_common_rows),
        cmocka_unit_test(test_rows_cover_every_field_once),
        cmocka_unit_test(test_rows_point_at_their_fields),
        cmocka_unit_test(test_check_rejects_out_of_range),
        cmocka_unit_test(test_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
