/* sim_command.c - the control protocol (newline-delimited JSON) and the
 * fault/event actions shared with the scripted scenario. See sim_command.h. */
#include "sim_command.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_pdu.h"

/* Keys an action object may hold. */
static const char *const action_keys[] = {
    "device", "event", "fault", "delay_ms", "code", "on", "power_w", "flow_m3h", "zone",
    "state", "serial", "delta", "pct", "quantity", "value", "clear", "valve_fault", "count", NULL,
};

static bool key_in(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys != NULL && keys[i] != NULL; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

static est_err fail(char *err, size_t errlen, est_err rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static est_err fail(char *err, size_t errlen, est_err rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Optional number field; false with a message when present but not a number. */
static bool opt_number(const cJSON *obj, const char *key, double *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return true;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
        fail(err, errlen, EST_ERR_INVALID, "\"%s\" must be a number", key);
        return false;
    }
    *out = item->valuedouble;
    return true;
}

static bool opt_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return true;
    if (!cJSON_IsBool(item)) {
        fail(err, errlen, EST_ERR_INVALID, "\"%s\" must be true or false", key);
        return false;
    }
    *out = cJSON_IsTrue(item);
    return true;
}

/* Optional string field; *out stays as it was when absent. */
static bool opt_string(const cJSON *obj, const char *key, const char **out, char *err,
                       size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return true;
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        fail(err, errlen, EST_ERR_INVALID, "\"%s\" must be a string", key);
        return false;
    }
    *out = item->valuestring;
    return true;
}

/* Optional integer in [lo, hi]. */
static bool opt_int(const cJSON *obj, const char *key, double lo, double hi, double *out,
                    char *err, size_t errlen)
{
    double v = *out;
    if (!opt_number(obj, key, &v, err, errlen))
        return false;
    if (v != floor(v) || v < lo || v > hi) {
        snprintf(err, errlen, "\"%s\" must be an integer in %.0f..%.0f", key, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

static est_err parse_fault(const cJSON *obj, const char *name, struct sim_action *out, char *err,
                           size_t errlen)
{
    int f = sim_fault_from_name(name);
    if (f < 0)
        return fail(err, errlen, EST_ERR_INVALID,
                    "unknown fault \"%s\" (silent, slow, exception, garbage, crc, duplicate, "
                    "bad_length, wrong_unit, none)",
                    name);
    double delay = 0, code = 0, count = 0;
    if (!opt_int(obj, "delay_ms", 0, 600000, &delay, err, errlen) ||
        !opt_int(obj, "code", 0, 255, &code, err, errlen) ||
        !opt_int(obj, "count", 0, 1000000, &count, err, errlen))
        return EST_ERR_INVALID;
    if (f == SIM_FAULT_SLOW && delay == 0)
        delay = 300;
    out->is_fault = true;
    out->fault = (enum sim_fault)f;
    out->delay_ms = (uint32_t)delay;
    out->code = (uint8_t)code;
    out->count = (uint32_t)count;
    return EST_OK;
}

static est_err parse_state(const struct sim_event *ev, const char *state, struct sim_event *out,
                           char *err, size_t errlen)
{
    (void)ev;
    if (out->type == SIM_EV_ZONE) {
        int s = sim_zone_state_from_name(state);
        if (s < 0)
            return fail(err, errlen, EST_ERR_INVALID,
                        "unknown zone state \"%s\" (alarm, fault, disabled, supervisory, normal)",
                        state ? state : "");
        out->state = (enum sim_zone_state)s;
    } else if (out->type == SIM_EV_VALVE && state != NULL) {
        if (strcmp(state, "open") == 0)
            out->valve_state = DRV_VALVE_OPEN;
        else if (strcmp(state, "closed") == 0)
            out->valve_state = DRV_VALVE_CLOSED;
        else
            return fail(err, errlen, EST_ERR_INVALID, "valve state \"%s\": open or closed",
                        state);
    }
    return EST_OK;
}

static est_err parse_event_params(const cJSON *obj, struct sim_event *ev, char *err,
                                  size_t errlen)
{
    double zone = 0, serial = -1, vfault = -1;
    const char *state = NULL, *quantity = NULL;
    bool valve_fault = false;
    if (!opt_bool(obj, "on", &ev->on, err, errlen) ||
        !opt_number(obj, "power_w", &ev->power_w, err, errlen) ||
        !opt_number(obj, "flow_m3h", &ev->flow_m3h, err, errlen) ||
        !opt_int(obj, "zone", 0, DRV_MAX_ZONES, &zone, err, errlen) ||
        !opt_string(obj, "state", &state, err, errlen) ||
        !opt_int(obj, "serial", -1, 4294967295.0, &serial, err, errlen) ||
        !opt_number(obj, "delta", &ev->delta, err, errlen) ||
        !opt_number(obj, "pct", &ev->pct, err, errlen) ||
        !opt_string(obj, "quantity", &quantity, err, errlen) ||
        !opt_bool(obj, "clear", &ev->clear, err, errlen) ||
        !opt_bool(obj, "valve_fault", &valve_fault, err, errlen))
        return EST_ERR_INVALID;
    if (cJSON_GetObjectItemCaseSensitive(obj, "valve_fault") != NULL)
        vfault = valve_fault ? 1 : 0;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(obj, "value");
    const char *special = cJSON_IsString(value) ? value->valuestring : NULL;
    if (value != NULL && cJSON_IsNull(value))
        ev->clear = true;
    else if (special != NULL && strcmp(special, "nan") == 0)
        ev->value = NAN; /* what a meter with a broken register sends */
    else if (special != NULL && (strcmp(special, "inf") == 0 || strcmp(special, "-inf") == 0))
        ev->value = special[0] == '-' ? -INFINITY : INFINITY;
    else if (!opt_number(obj, "value", &ev->value, err, errlen))
        return EST_ERR_INVALID;
    ev->zone = (int)zone;
    ev->has_serial = serial >= 0;
    ev->serial = ev->has_serial ? (uint32_t)serial : 0;
    ev->valve_fault = (int)vfault;
    if (quantity != NULL) {
        ev->quantity = drv_quantity_from_name(quantity);
        if (ev->quantity < 0)
            return fail(err, errlen, EST_ERR_INVALID, "unknown quantity \"%s\"", quantity);
    }
    return parse_state(ev, state, ev, err, errlen);
}

static est_err check_event(const cJSON *obj, const struct sim_event *ev, char *err, size_t errlen)
{
    if (ev->type == SIM_EV_SET && ev->quantity < 0)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"quantity\"", "set");
    if (ev->type == SIM_EV_SET && !ev->clear &&
        cJSON_GetObjectItemCaseSensitive(obj, "value") == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"value\" (null clears; \"nan\", \"inf\", \"-inf\")", "set");
    if (ev->type == SIM_EV_ZONE && ev->zone < 1)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"zone\" (1-based)", "zone");
    if (ev->type == SIM_EV_ZONE && cJSON_GetObjectItemCaseSensitive(obj, "state") == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"state\"", "zone");
    if (ev->type == SIM_EV_JUMP && cJSON_GetObjectItemCaseSensitive(obj, "delta") == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"delta\"", "jump");
    if (ev->type == SIM_EV_LOSS && cJSON_GetObjectItemCaseSensitive(obj, "pct") == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"pct\"", "loss");
    if (ev->type == SIM_EV_FLOW && cJSON_GetObjectItemCaseSensitive(obj, "flow_m3h") == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s needs \"flow_m3h\"", "flow");
    return EST_OK;
}

static est_err parse_event(const cJSON *obj, const char *name, struct sim_action *out, char *err,
                           size_t errlen)
{
    int t = sim_event_from_name(name);
    if (t < 0)
        return fail(err, errlen, EST_ERR_INVALID,
                    "unknown event \"%s\" (reverse, flow, zone, replace, jump, loss, set, valve)",
                    name);
    struct sim_event *ev = &out->ev;
    memset(ev, 0, sizeof *ev);
    ev->type = (enum sim_event_type)t;
    ev->on = true;
    ev->quantity = -1;
    ev->valve_state = -1;
    ev->valve_fault = -1;
    ev->value = NAN;
    est_err rc = parse_event_params(obj, ev, err, errlen);
    return rc != EST_OK ? rc : check_event(obj, ev, err, errlen);
}

est_err sim_action_parse(const struct sim_world *world, const cJSON *obj,
                         const char *const *extra_keys, struct sim_action *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(obj))
        return fail(err, errlen, EST_ERR_INVALID, "%s", "expected an object");
    for (const cJSON *item = obj->child; item != NULL; item = item->next)
        if (item->string == NULL || (!key_in(item->string, action_keys) &&
                                     !key_in(item->string, extra_keys)))
            return fail(err, errlen, EST_ERR_INVALID, "unknown key \"%s\"",
                        item->string ? item->string : "");
    const char *device = NULL, *fault = NULL, *event = NULL;
    if (!opt_string(obj, "device", &device, err, errlen) ||
        !opt_string(obj, "fault", &fault, err, errlen) ||
        !opt_string(obj, "event", &event, err, errlen))
        return EST_ERR_INVALID;
    if (device == NULL)
        return fail(err, errlen, EST_ERR_INVALID, "%s", "missing \"device\"");
    int index = sim_world_device_index(world, device);
    if (index < 0)
        return fail(err, errlen, EST_ERR_NOTFOUND, "unknown device \"%s\"", device);
    out->device = (size_t)index;
    if ((fault == NULL) == (event == NULL))
        return fail(err, errlen, EST_ERR_INVALID, "%s", "need exactly one of \"fault\", \"event\"");
    return fault != NULL ? parse_fault(obj, fault, out, err, errlen)
                         : parse_event(obj, event, out, err, errlen);
}

est_err sim_action_apply(struct sim_world *world, const struct sim_action *action,
                         int64_t mono_ms, char *err, size_t errlen)
{
    if (action->device >= world->ndevices)
        return fail(err, errlen, EST_ERR_NOTFOUND, "%s", "unknown device");
    struct sim_device *dev = &world->devices[action->device];
    if (action->is_fault) {
        sim_device_set_fault(dev, action->fault, action->delay_ms, action->code);
        sim_device_limit_fault(dev, action->count);
        return EST_OK;
    }
    return sim_device_apply_event(world, dev, &action->ev, mono_ms, err, errlen);
}

void sim_action_describe(const struct sim_world *world, const struct sim_action *action,
                         char *out, size_t outlen)
{
    const char *id = action->device < world->ndevices ? world->devices[action->device].id : "?";
    if (action->is_fault && action->fault == SIM_FAULT_SLOW) {
        snprintf(out, outlen, "%s fault slow delay_ms=%u", id, action->delay_ms);
        return;
    }
    if (action->is_fault && action->fault == SIM_FAULT_EXCEPTION) {
        snprintf(out, outlen, "%s fault exception code=0x%02X", id,
                 action->code ? action->code : 0x04);
        return;
    }
    if (action->is_fault) {
        snprintf(out, outlen, "%s fault %s", id, sim_fault_name(action->fault));
        return;
    }
    const struct sim_event *ev = &action->ev;
    switch (ev->type) {
    case SIM_EV_REVERSE:
        snprintf(out, outlen, "%s event reverse %s power_w=-%g", id, ev->on ? "on" : "off",
                 ev->power_w != 0.0 ? fabs(ev->power_w) : 800.0);
        break;
    case SIM_EV_FLOW:
        snprintf(out, outlen, "%s event flow %g m3/h", id, ev->flow_m3h);
        break;
    case SIM_EV_ZONE:
        snprintf(out, outlen, "%s event zone %d %s", id, ev->zone, sim_zone_state_name(ev->state));
        break;
    case SIM_EV_REPLACE:
        snprintf(out, outlen, "%s event replace serial=%u", id, ev->serial);
        break;
    case SIM_EV_JUMP:
        snprintf(out, outlen, "%s event jump delta=%g", id, ev->delta);
        break;
    case SIM_EV_LOSS:
        snprintf(out, outlen, "%s event loss %g%%", id, ev->pct);
        break;
    case SIM_EV_SET:
        snprintf(out, outlen, "%s event set %s=%g%s", id, drv_quantity_name(ev->quantity),
                 ev->value, ev->clear ? " (cleared)" : "");
        break;
    default:
        snprintf(out, outlen, "%s event %s", id, sim_event_name(ev->type));
        break;
    }
}

/* --------------------------------------------------------------- replies */

static char *print_reply(cJSON *reply)
{
    char *text = reply != NULL ? cJSON_PrintUnformatted(reply) : NULL;
    cJSON_Delete(reply);
    return text;
}

static char *error_reply(const char *message)
{
    cJSON *reply = cJSON_CreateObject();
    if (reply == NULL)
        return NULL;
    cJSON_AddFalseToObject(reply, "ok");
    cJSON_AddStringToObject(reply, "error", message);
    return print_reply(reply);
}

static cJSON *ok_reply(void)
{
    cJSON *reply = cJSON_CreateObject();
    if (reply != NULL)
        cJSON_AddTrueToObject(reply, "ok");
    return reply;
}

static const char *kind_name(enum drv_kind kind)
{
    switch (kind) {
    case DRV_KIND_ELECTRICITY:
        return "electricity";
    case DRV_KIND_WATER:
        return "water";
    case DRV_KIND_FIRE_PANEL:
        return "fire_panel";
    }
    return "unknown";
}

static char *cmd_list(struct sim_world *world)
{
    cJSON *reply = ok_reply();
    cJSON *list = cJSON_AddArrayToObject(reply, "devices");
    for (size_t i = 0; list != NULL && i < world->ndevices; i++) {
        const struct sim_device *dev = &world->devices[i];
        cJSON *d = cJSON_CreateObject();
        if (d == NULL)
            break;
        cJSON_AddStringToObject(d, "id", dev->id);
        cJSON_AddStringToObject(d, "endpoint", world->endpoints[dev->endpoint].name);
        cJSON_AddNumberToObject(d, "slave", dev->slave);
        cJSON_AddStringToObject(d, "driver", dev->model->name);
        cJSON_AddStringToObject(d, "kind", kind_name(dev->model->kind));
        cJSON_AddItemToArray(list, d);
    }
    return print_reply(reply);
}

static void add_values(cJSON *reply, const struct sim_device *dev)
{
    cJSON *values = cJSON_AddObjectToObject(reply, "values");
    for (size_t i = 0; values != NULL && i < dev->model->npoints; i++) {
        const char *name = drv_quantity_name(dev->model->points[i].quantity);
        double v;
        if (name == NULL || cJSON_GetObjectItemCaseSensitive(values, name) != NULL ||
            !sim_device_wire_value(dev, i, &v))
            continue;
        cJSON_AddNumberToObject(values, name, v);
    }
}

static char *cmd_get(struct sim_world *world, const cJSON *req)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "device");
    if (!cJSON_IsString(id) || id->valuestring == NULL)
        return error_reply("\"device\" must be a string");
    int index = sim_world_device_index(world, id->valuestring);
    if (index < 0)
        return error_reply("unknown device");
    const struct sim_device *dev = &world->devices[index];
    cJSON *reply = ok_reply();
    cJSON_AddStringToObject(reply, "device", dev->id);
    cJSON_AddStringToObject(reply, "driver", dev->model->name);
    add_values(reply, dev);
    cJSON_AddNumberToObject(reply, "serial", dev->serial);
    if (dev->model->valve != NULL && dev->has_valve)
        cJSON_AddStringToObject(reply, "valve", drv_valve_state_name(dev->valve));
    if (dev->model->kind == DRV_KIND_FIRE_PANEL) {
        cJSON *zones = cJSON_AddArrayToObject(reply, "zones");
        cJSON *names = cJSON_AddArrayToObject(reply, "zone_states");
        for (uint16_t z = 0; zones != NULL && names != NULL && z < dev->nzones; z++) {
            uint16_t reg = sim_zone_register(dev->model->panel, (enum sim_zone_state)dev->zones[z]);
            uint8_t bits = dev->model->panel != NULL ? drv_panel_zone_decode(dev->model->panel, reg)
                                                     : drv_notifier_zone_decode(reg);
            cJSON_AddItemToArray(zones, cJSON_CreateNumber(bits));
            cJSON_AddItemToArray(names, cJSON_CreateString(
                                            sim_zone_state_name((enum sim_zone_state)dev->zones[z])));
        }
    }
    cJSON_AddStringToObject(reply, "fault", sim_fault_name(dev->fault));
    cJSON_AddNumberToObject(reply, "requests", (double)dev->requests);
    return print_reply(reply);
}

static void add_sim_time(cJSON *reply, const struct sim_world *world, int64_t mono_ms)
{
    char ts[EST_TS_LEN];
    est_format_ts(sim_clock_now(&world->clock, mono_ms), ts);
    cJSON_AddStringToObject(reply, "sim_time", ts);
    cJSON_AddBoolToObject(reply, "frozen", world->clock.frozen);
}

static char *cmd_freeze(struct sim_world *world, const cJSON *req, int64_t mono_ms)
{
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(req, "on");
    if (on != NULL && !cJSON_IsBool(on))
        return error_reply("\"on\" must be true or false");
    bool freeze = on == NULL || cJSON_IsTrue(on);
    /* bring every counter up to now first, so frozen values are current */
    sim_world_advance(world, sim_clock_now(&world->clock, mono_ms), mono_ms);
    sim_clock_freeze(&world->clock, freeze, mono_ms);
    cJSON *reply = ok_reply();
    add_sim_time(reply, world, mono_ms);
    return print_reply(reply);
}

static char *cmd_action(struct sim_world *world, const cJSON *req, const char *cmd,
                        int64_t mono_ms)
{
    static const char *const extra[] = {"cmd", NULL};
    struct sim_action action;
    char err[256];
    if (sim_action_parse(world, req, extra, &action, err, sizeof err) != EST_OK)
        return error_reply(err);
    if (action.is_fault != (strcmp(cmd, "fault") == 0))
        return error_reply(action.is_fault ? "\"fault\" belongs to cmd fault"
                                           : "cmd fault needs \"fault\"");
    if (sim_action_apply(world, &action, mono_ms, err, sizeof err) != EST_OK)
        return error_reply(err);
    cJSON *reply = ok_reply();
    cJSON_AddStringToObject(reply, "device", world->devices[action.device].id);
    return print_reply(reply);
}

static char *cmd_stats(struct sim_world *world)
{
    cJSON *reply = ok_reply();
    cJSON *list = cJSON_AddArrayToObject(reply, "endpoints");
    double total = 0;
    for (size_t i = 0; list != NULL && i < world->nendpoints; i++) {
        const struct sim_endpoint *ep = &world->endpoints[i];
        cJSON *e = cJSON_CreateObject();
        if (e == NULL)
            break;
        cJSON_AddStringToObject(e, "name", ep->name);
        cJSON_AddStringToObject(e, "type", ep->type == SIM_EP_TCP   ? "tcp"
                                           : ep->type == SIM_EP_RTU ? "rtu"
                                                                    : "rtu_over_tcp");
        cJSON_AddNumberToObject(e, "requests", (double)ep->stats.requests);
        cJSON_AddNumberToObject(e, "replies", (double)ep->stats.replies);
        cJSON_AddNumberToObject(e, "exceptions", (double)ep->stats.exceptions);
        cJSON_AddNumberToObject(e, "dropped", (double)ep->stats.dropped);
        cJSON_AddNumberToObject(e, "bad_frames", (double)ep->stats.bad_frames);
        if (ep->type == SIM_EP_TCP)
            cJSON_AddNumberToObject(e, "queued", (double)ep->stats.queued);
        if (ep->type != SIM_EP_TCP) {
            cJSON_AddNumberToObject(e, "rx_bytes", (double)ep->stats.rx_bytes);
            cJSON_AddNumberToObject(e, "tx_bytes", (double)ep->stats.tx_bytes);
        }
        cJSON_AddItemToArray(list, e);
        total += (double)ep->stats.requests;
    }
    cJSON_AddNumberToObject(reply, "requests", total);
    return print_reply(reply);
}

static char *cmd_time(struct sim_world *world, int64_t mono_ms)
{
    cJSON *reply = ok_reply();
    add_sim_time(reply, world, mono_ms);
    cJSON_AddNumberToObject(reply, "time_scale", world->clock.time_scale);
    return print_reply(reply);
}

static char *dispatch(struct sim_world *world, const cJSON *req, const char *cmd, int64_t mono_ms)
{
    if (strcmp(cmd, "list") == 0)
        return cmd_list(world);
    if (strcmp(cmd, "get") == 0)
        return cmd_get(world, req);
    if (strcmp(cmd, "freeze") == 0)
        return cmd_freeze(world, req, mono_ms);
    if (strcmp(cmd, "fault") == 0 || strcmp(cmd, "event") == 0)
        return cmd_action(world, req, cmd, mono_ms);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(world);
    if (strcmp(cmd, "time") == 0)
        return cmd_time(world, mono_ms);
    if (strcmp(cmd, "ping") == 0)
        return print_reply(ok_reply());
    return error_reply("unknown cmd (list, get, freeze, fault, event, stats, time, ping)");
}

char *sim_command_execute(struct sim_world *world, const char *line, size_t len,
                          int64_t mono_ms)
{
    if (line == NULL || len == 0)
        return error_reply("empty request");
    cJSON *req = cJSON_ParseWithLength(line, len);
    if (req == NULL)
        return error_reply("malformed JSON");
    char *reply;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
    if (!cJSON_IsObject(req))
        reply = error_reply("request must be a JSON object");
    else if (!cJSON_IsString(cmd) || cmd->valuestring == NULL)
        reply = error_reply("\"cmd\" must be a string");
    else
        reply = dispatch(world, req, cmd->valuestring, mono_ms);
    cJSON_Delete(req);
    return reply;
}
