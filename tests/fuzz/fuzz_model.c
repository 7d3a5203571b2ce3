/* fuzz_model.c - libFuzzer harness for the device model loader
 * (drivers/model_file.c): the input is a model file's text. A rejected file
 * must come with "FILE:LINE: message" lines and no model; an accepted one
 * must keep the promises the planner and decoder rely on (points inside the
 * register space, within the model's read limit, no two on one register,
 * status words and actions pointing at what the model reads), and must plan
 * and decode a poll of zeros. Anything else aborts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers.h"

/* libconfig 1.5 leaks its string buffer on some syntax errors (a string
 * left open at the error); that is the library's, not the loader's. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\nleak:libconfig.so\n";
}

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Every line of a report starts "fuzz.conf:<digits>: ". */
static void check_errors(const char *errors)
{
    check(errors != NULL && errors[0] != '\0');
    for (const char *line = errors; *line != '\0';) {
        check(strncmp(line, "fuzz.conf:", 10) == 0);
        const char *p = line + 10;
        check(*p >= '1' && *p <= '9');
        while (*p >= '0' && *p <= '9')
            p++;
        check(p[0] == ':' && p[1] == ' ');
        const char *end = strchr(p, '\n');
        check(end != NULL);
        line = end + 1;
    }
}

/* A DL/T 645 or CJ/T 188 model: data items, no registers, no plan. */
static void check_national_model(const struct drv_model *m)
{
    check(m->kind != DRV_KIND_FIRE_PANEL && m->panel == NULL && m->npoints > 0);
    struct drv_plan *plan = NULL;
    check(drv_plan_build(m, NULL, &plan) == EST_ERR_INVALID && plan == NULL);
    for (size_t i = 0; i < m->npoints; i++) {
        const struct drv_point *a = &m->points[i];
        check(a->quantity < DRV_Q__COUNT && a->scale != 0.0 && a->function == 0);
        if (m->protocol == DRV_PROTO_DLT645)
            check(a->nbytes >= 1 && a->nbytes <= 8 && (a->status == NULL || a->nbytes <= 2));
        else
            check(a->field <= DRV_CJT188_BATTERY_LOW && a->status == NULL);
        for (size_t k = i + 1; k < m->npoints; k++)
            check(a->quantity != m->points[k].quantity);
    }
    check(m->valve == NULL || m->protocol == DRV_PROTO_CJT188);
}

static void check_model(const struct drv_model *m)
{
    if (m->protocol != DRV_PROTO_MODBUS) {
        check_national_model(m);
        return;
    }
    check(m->name != NULL && m->vendor != NULL && m->product != NULL && m->description != NULL);
    check(m->max_read_regs >= 1 && m->max_read_regs <= DRV_MAX_READ_REGS);
    check((m->kind == DRV_KIND_FIRE_PANEL) == (m->panel != NULL));
    check(m->kind != DRV_KIND_FIRE_PANEL || m->npoints == 0);
    for (size_t i = 0; i < m->npoints; i++) {
        const struct drv_point *a = &m->points[i];
        unsigned regs = drv_type_regs(a->type);
        check(a->quantity < DRV_Q__COUNT);
        check(a->function == DRV_FC_HOLDING || a->function == DRV_FC_INPUT);
        check((unsigned)a->address + regs <= 65536u && regs <= m->max_read_regs);
        check(a->scale != 0.0);
        check(a->status == NULL || regs == 1);
        for (size_t k = i + 1; k < m->npoints; k++) {
            const struct drv_point *b = &m->points[k];
            check(a->quantity != b->quantity);
            check(a->function != b->function || a->address + regs <= b->address ||
                  b->address + drv_type_regs(b->type) <= a->address);
        }
    }
    if (m->valve != NULL) {
        bool read = false;
        for (size_t i = 0; i < m->npoints; i++)
            read |= m->points[i].quantity == m->valve->read_back;
        for (size_t i = 0; i < m->npoints; i++)
            for (size_t f = 0; m->points[i].status != NULL && f < m->points[i].status->nflags; f++)
                read |= m->points[i].status->flags[f].quantity == m->valve->read_back;
        check(read);
    }
}

static void decode_zeros(const struct drv_model *m)
{
    struct drv_plan *plan = NULL;
    if (drv_plan_build(m, NULL, &plan) != EST_OK)
        return;
    size_t nregs = drv_plan_register_count(plan), nreq = drv_plan_request_count(plan);
    uint16_t *regs = calloc(nregs + 1, sizeof *regs);
    bool *ok = calloc(nreq + 1, sizeof *ok);
    if (regs != NULL && ok != NULL) {
        for (size_t i = 0; i < nreq; i++) {
            check(drv_plan_request(plan, i)->count <= m->max_read_regs);
            ok[i] = true;
        }
        struct drv_reading reading;
        check(drv_decode(plan, regs, ok, &reading, NULL) == EST_OK);
    }
    free(regs);
    free(ok);
    drv_plan_free(plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct drv_model *model = NULL;
    char *errors = NULL;
    est_err err = drv_model_parse((const char *)data, size, "fuzz.conf", &model, &errors);
    if (err == EST_OK) {
        check(model != NULL && errors == NULL);
        check_model(model);
        decode_zeros(model);
    } else {
        check(model == NULL);
        if (err == EST_ERR_INVALID)
            check_errors(errors);
    }
    drv_model_free(model);
    free(errors);
    return 0;
}
