/* poller.c - the per-bus polling thread: due-time heap, read plans executed
 * over the bus's drv_link (on a pipelined TCP bus, the reads of a burst of
 * healthy devices in flight together), decode, backoff for failing devices,
 * valve writes. */
#include "poller.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "views.h"

/* A failing device is polled at most this rarely: 8 poll intervals, kept
 * within 5 s .. 60 s, so a meter that comes back is seen again soon while a
 * dead one costs its bus at most one timeout per backoff period. */
#define BACKOFF_INTERVALS 8
#define BACKOFF_MIN_CAP_MS 5000
#define BACKOFF_MAX_CAP_MS 60000
/* Reconnect backoff cap of a bus link (drv_link doubles from 200 ms). */
#define LINK_RECONNECT_MAX_MS 5000
/* Valve commands waiting for the bus thread. */
#define VALVE_QUEUE_CAPACITY 32
/* Samples wait in the poller until it is about to sleep or this many are
 * waiting: one lock and at most one wake-up of the core per burst of polls
 * rather than per poll. */
#define SAMPLE_BATCH 8
/* A device due within this much (or a tenth of its interval, if less) is
 * polled together with the ones due now: on a busy bus the thread sleeps
 * once per burst of polls instead of once per device. */
#define POLL_EARLY_MS 10
/* On a pipelined bus a burst costs one round trip, so it gathers more: the
 * devices due within a twentieth of the interval, up to 50 ms. */
#define PIPELINE_EARLY_PARTS 20
#define PIPELINE_EARLY_MAX_MS 50

struct poll_device {
    enum gw_device_type type;
    uint32_t index;                /* meter or panel index */
    const char *id;
    int slave;
    int interval_ms;
    const struct drv_plan *plan;   /* shared by the bus's devices of one model and options */
    const struct drv_model *model;
    const struct drv_device_options *options;
    const uint8_t *wire_address;   /* DL/T 645 / CJ/T 188 meters: address as sent */
    const char *address;           /* the same as printed on the meter, for messages */
    bool has_valve;                /* valve control configured */
    size_t nrequests;
    bool has_slow;                 /* the model has points read on slow polls only */
    bool serial_due;               /* back from offline: read the serial on the next poll */
    unsigned slow_every;
    uint64_t polls;
    unsigned consecutive_failures;
    int64_t interval_now_ms;       /* interval including backoff */
    int64_t due_ms;                /* monotonic */
    struct gw_log_limiter limiter;
};

struct plan_entry {
    const struct drv_model *model;
    const struct drv_device_options *options;
    struct drv_plan *plan;
};

/* A device in a burst: its reads are burst reads first_read onward. */
struct burst_device {
    struct poll_device *device;
    size_t first_read;
    bool slow_poll;
};

struct valve_request {
    uint32_t meter;
    bool close;
    char requested_by[48];
};

/* The due time is kept beside the pointer so that sifting reads one small
 * array instead of every device it compares. */
struct heap_entry {
    int64_t due_ms;
    struct poll_device *device;
};

struct gw_poller {
    const struct gw_config *config;
    const struct gw_bus_config *bus;
    struct gw_queue *samples;
    uint32_t generation;           /* stamped on every sample (the config it indexes) */
    struct gw_queue *valve_requests;
    struct drv_link *link;         /* Modbus buses */
    struct drv_cnlink *cnlink;     /* DL/T 645 and CJ/T 188 buses */
    pthread_t thread;
    atomic_bool stopping;
    int retries;
    unsigned offline_after;        /* failures before backoff starts */
    struct poll_device *devices;
    size_t ndevices;
    struct heap_entry *heap;       /* min-heap on due_ms */
    size_t heap_len;               /* ndevices except during a burst */
    /* Read plans, one per distinct (model, options) on the bus: a site's
     * meters are mostly alike, and a plan per device cost about 0.5 KB. */
    struct plan_entry *plans;
    size_t nplans;
    /* Registers and request outcomes of the devices being polled: one slot
     * per device of a burst (pipeline_depth slots), each sized for the
     * largest plan on the bus. */
    uint16_t *regs;
    bool *request_ok;
    size_t regs_cap;               /* per slot */
    size_t requests_cap;           /* per slot */
    size_t depth;                  /* the bus's pipeline_depth: reads in flight */
    struct drv_link_read *reads;   /* depth entries: a burst's reads */
    struct burst_device *burst;    /* depth entries: a burst's devices */
    struct gw_sample *batch;       /* SAMPLE_BATCH samples not yet queued */
    size_t nbatch;
    pthread_mutex_t stats_lock;
    struct gw_poller_stats stats;
    struct gw_log_limiter link_limiter; /* failed polls while the link is down */
};

const double gw_poll_latency_bounds_s[GW_POLL_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

/* Seconds on the monotonic clock, finer than est_mono_ms. */
static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts one poll's duration in the latency histogram. */
static void note_latency(struct gw_poller *p, double seconds)
{
    size_t bucket = 0;
    while (bucket < GW_POLL_LATENCY_BUCKETS && seconds > gw_poll_latency_bounds_s[bucket])
        bucket++;
    pthread_mutex_lock(&p->stats_lock);
    p->stats.latency_counts[bucket]++;
    p->stats.latency_sum_s += seconds;
    pthread_mutex_unlock(&p->stats_lock);
}

/* ---- due-time heap ---- */

static void heap_sift_down(struct heap_entry *heap, size_t n, size_t i)
{
    for (;;) {
        size_t smallest = i, left = 2 * i + 1, right = left + 1;
        if (left < n && heap[left].due_ms < heap[smallest].due_ms)
            smallest = left;
        if (right < n && heap[right].due_ms < heap[smallest].due_ms)
            smallest = right;
        if (smallest == i)
            return;
        struct heap_entry t = heap[i];
        heap[i] = heap[smallest];
        heap[smallest] = t;
        i = smallest;
    }
}

static void heap_build(struct heap_entry *heap, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        heap_sift_down(heap, n, i);
}

static struct poll_device *heap_pop(struct gw_poller *p)
{
    struct poll_device *d = p->heap[0].device;
    p->heap[0] = p->heap[--p->heap_len];
    heap_sift_down(p->heap, p->heap_len, 0);
    return d;
}

static void heap_push(struct gw_poller *p, struct poll_device *d)
{
    size_t i = p->heap_len++;
    p->heap[i] = (struct heap_entry){d->due_ms, d};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (p->heap[parent].due_ms <= p->heap[i].due_ms)
            return;
        struct heap_entry t = p->heap[i];
        p->heap[i] = p->heap[parent];
        p->heap[parent] = t;
        i = parent;
    }
}

/* ---- setup ---- */

/* The bus's plan for model and options, built on first use. Options are
 * compared byte for byte (config structs start zeroed), so two devices share
 * a plan only when every option is the same. */
static est_err plan_for(struct gw_poller *p, const struct drv_model *model,
                        const struct drv_device_options *options, const struct drv_plan **out)
{
    for (size_t i = 0; i < p->nplans; i++) {
        const struct plan_entry *e = &p->plans[i];
        if (e->model == model &&
            (e->options == options ||
             (e->options != NULL && options != NULL && memcmp(e->options, options, sizeof *options) == 0))) {
            *out = e->plan;
            return EST_OK;
        }
    }
    struct drv_plan *plan = NULL;
    est_err err = drv_plan_build(model, options, &plan);
    if (err != EST_OK)
        return err;
    /* p->plans has room for one plan per device. */
    p->plans[p->nplans++] = (struct plan_entry){model, options, plan};
    size_t nregs = drv_plan_register_count(plan) + 1;
    size_t nrequests = drv_plan_request_count(plan) + 1;
    if (nregs > p->regs_cap) {
        uint16_t *regs = realloc(p->regs, nregs * p->depth * sizeof *regs);
        if (regs == NULL)
            return EST_ERR_NOMEM;
        p->regs = regs;
        p->regs_cap = nregs;
    }
    if (nrequests > p->requests_cap) {
        bool *ok = realloc(p->request_ok, nrequests * p->depth * sizeof *ok);
        if (ok == NULL)
            return EST_ERR_NOMEM;
        p->request_ok = ok;
        p->requests_cap = nrequests;
    }
    *out = plan;
    return EST_OK;
}

static est_err device_init(struct gw_poller *p, struct poll_device *d, enum gw_device_type type,
                           uint32_t index, const char *id, int slave,
                           const struct drv_model *model, const struct drv_device_options *options,
                           int interval_ms, bool has_valve)
{
    d->type = type;
    d->index = index;
    d->id = id;
    d->slave = slave;
    d->interval_ms = interval_ms;
    d->interval_now_ms = interval_ms;
    d->model = model;
    d->options = options;
    d->has_valve = has_valve && model->valve != NULL;
    if (model->protocol != DRV_PROTO_MODBUS) {
        /* Read item by item over the bus's cnlink: no register plan. */
        d->slow_every = model->slow_every ? model->slow_every : 60;
        for (size_t i = 0; i < model->npoints; i++)
            d->has_slow |= model->points[i].slow;
        return EST_OK;
    }
    est_err err = plan_for(p, model, options, &d->plan);
    if (err != EST_OK)
        return err;
    d->slow_every = drv_plan_slow_every(d->plan);
    d->nrequests = drv_plan_request_count(d->plan);
    for (size_t i = 0; i < d->nrequests; i++)
        d->has_slow |= drv_plan_request(d->plan, i)->slow;
    return EST_OK;
}

static size_t count_devices_on_bus(const struct gw_config *config, size_t bus)
{
    size_t n = 0;
    for (size_t i = 0; i < config->nmeters; i++)
        n += config->meters[i].bus == bus;
    for (size_t i = 0; i < config->npanels; i++)
        n += config->panels[i].bus == bus;
    return n;
}

static est_err add_devices(struct gw_poller *p, size_t bus)
{
    const struct gw_config *config = p->config;
    size_t n = 0;
    for (size_t i = 0; i < config->nmeters; i++) {
        const struct gw_meter_config *m = &config->meters[i];
        if (m->bus != bus)
            continue;
        int interval = m->poll_interval_ms ? m->poll_interval_ms : p->bus->poll_interval_ms;
        p->devices[n].wire_address = m->wire_address;
        p->devices[n].address = m->address;
        est_err err = device_init(p, &p->devices[n++], GW_DEVICE_METER, (uint32_t)i, m->id, m->slave,
                                  m->model, &m->options, interval, m->valve);
        if (err != EST_OK) {
            gw_error("%s:%d: meter %s: read plan: %s", m->file, m->line, m->id, est_strerror(err));
            return err;
        }
    }
    for (size_t i = 0; i < config->npanels; i++) {
        const struct gw_panel_config *panel = &config->panels[i];
        if (panel->bus != bus)
            continue;
        int interval = panel->poll_interval_ms ? panel->poll_interval_ms : p->bus->poll_interval_ms;
        est_err err = device_init(p, &p->devices[n++], GW_DEVICE_PANEL, (uint32_t)i, panel->id,
                                  panel->slave, panel->model, &panel->options, interval, false);
        if (err != EST_OK) {
            gw_error("%s:%d: fire panel %s: read plan: %s", panel->file, panel->line, panel->id,
                     est_strerror(err));
            return err;
        }
    }
    return EST_OK;
}

static void spread_first_polls(struct gw_poller *p)
{
    /* Spread the first polls over one interval so a large bus does not
     * start with every device due at once. */
    int64_t now = est_mono_ms();
    for (size_t i = 0; i < p->ndevices; i++) {
        struct poll_device *d = &p->devices[i];
        d->due_ms = now + (int64_t)((double)d->interval_ms * (double)i / (double)p->ndevices);
        p->heap[i] = (struct heap_entry){d->due_ms, d};
    }
    p->heap_len = p->ndevices;
    heap_build(p->heap, p->heap_len);
}

static void link_config_from_bus(const struct gw_bus_config *bus, struct drv_link_config *lc)
{
    memset(lc, 0, sizeof *lc);
    lc->type = bus->type == GW_BUS_TCP            ? DRV_LINK_TCP
               : bus->type == GW_BUS_RTU_OVER_TCP ? DRV_LINK_RTU_OVER_TCP
                                                  : DRV_LINK_RTU;
    lc->host = bus->host;
    lc->port = bus->port;
    lc->device = bus->device;
    lc->baud = bus->baud;
    lc->parity = bus->parity;
    lc->data_bits = bus->data_bits;
    lc->stop_bits = bus->stop_bits;
    lc->response_timeout_ms = bus->timeout_ms;
    lc->slave_switch_delay_ms = bus->slave_switch_delay_ms;
    lc->request_gap_ms = bus->request_gap_ms;
    /* A converter or serial port that went away is tried again at least
     * every 5 s, so polling resumes within seconds of its return. */
    lc->reconnect_max_ms = LINK_RECONNECT_MAX_MS;
}

static est_err open_national_link(const struct gw_bus_config *bus, struct drv_cnlink **out)
{
    struct drv_cnlink_config cc = {
        .protocol = bus->protocol,
        .device = bus->type == GW_BUS_RTU_OVER_TCP ? NULL : bus->device,
        .host = bus->type == GW_BUS_RTU_OVER_TCP ? bus->host : NULL, .port = bus->port,
        .baud = bus->baud,
        .parity = bus->parity, .data_bits = bus->data_bits, .stop_bits = bus->stop_bits,
        .response_timeout_ms = bus->timeout_ms, .turnaround_ms = bus->request_gap_ms,
        .reconnect_max_ms = LINK_RECONNECT_MAX_MS};
    return drv_cnlink_open(&cc, out);
}

/* ---- polling ---- */

/* "slave 3", or "address 000012345678" on a DL/T 645 / CJ/T 188 bus. */
static const char *device_where(const struct poll_device *d, char *buf, size_t len)
{
    if (d->address != NULL)
        snprintf(buf, len, "address %s", d->address);
    else
        snprintf(buf, len, "slave %d", d->slave);
    return buf;
}

static const char *describe_error(const struct gw_poller *p, est_err err, int exception,
                                  char *buf, size_t len)
{
    if (err == EST_ERR_EXCEPTION && p->cnlink != NULL) {
        snprintf(buf, len, "abnormal reply (error byte 0x%02X)", exception);
        return buf;
    }
    if (err == EST_ERR_EXCEPTION) {
        const char *what = exception == 0x0A   ? " (gateway path unavailable)"
                           : exception == 0x0B ? " (gateway target did not respond)"
                                               : "";
        snprintf(buf, len, "Modbus exception 0x%02X%s", exception, what);
        return buf;
    }
    return est_strerror(err);
}

/* Reads one request into regs, up to attempts times. */
static est_err read_request(struct gw_poller *p, struct poll_device *d, const struct drv_request *r,
                            uint16_t *regs, int attempts, int *exception)
{
    est_err err = EST_ERR_IO;
    for (int a = 0; a < attempts && !atomic_load(&p->stopping); a++) {
        *exception = 0;
        err = drv_link_read(p->link, d->slave, r->function, r->address, r->count,
                            regs + r->reg_offset, exception);
        if (err == EST_OK || err == EST_ERR_EXCEPTION)
            break; /* an exception is an answer: retrying changes nothing */
    }
    return err;
}

/* Retries are spent only while the device is healthy. */
static int attempts_for(const struct gw_poller *p, const struct poll_device *d)
{
    return d->consecutive_failures == 0 ? 1 + p->retries : 1;
}

/* The slow points (the serial) are read every slow_every polls, and once
 * more when the device answers again after being offline (it may have been
 * swapped meanwhile). A poll that merely failed forces no extra read: on a
 * bus that loses one request in three that would lose more polls. */
static bool wants_slow_poll(const struct poll_device *d)
{
    return d->has_slow && (d->polls % d->slow_every == 0 || d->serial_due);
}

/* Clears serial_due once the slow requests of a poll were all read. */
static void note_slow_read(struct poll_device *d, const bool *request_ok)
{
    if (!d->serial_due)
        return;
    for (size_t i = 0; i < d->nrequests; i++)
        if (drv_plan_request(d->plan, i)->slow && !request_ok[i])
            return;
    d->serial_due = false;
}

static uint16_t *slot_regs(const struct gw_poller *p, size_t slot)
{
    return p->regs + slot * p->regs_cap;
}

static bool *slot_request_ok(const struct gw_poller *p, size_t slot)
{
    return p->request_ok + slot * p->requests_cap;
}

/* How one poll's requests went. */
struct poll_tally {
    size_t answered, attempted;
    est_err first_error;
    int first_exception;
};

/* Counts one request's outcome; false when the poll should read no more
 * (a device that does not answer at all costs one timeout per poll). */
static bool tally_request(struct poll_tally *t, est_err err, int exception)
{
    t->attempted++;
    if (err == EST_OK) {
        t->answered++;
        return true;
    }
    if (t->first_error == EST_OK) {
        t->first_error = err;
        t->first_exception = exception;
    }
    return err == EST_ERR_EXCEPTION || t->answered > 0;
}

static void finish_sample(struct poll_device *d, const uint16_t *regs, const bool *request_ok,
                          const struct poll_tally *t, struct gw_sample *sample)
{
    memset(sample, 0, offsetof(struct gw_sample, reading));
    sample->item = GW_ITEM_SAMPLE;
    sample->device_type = d->type;
    sample->index = d->index;
    sample->ts_ms = est_now_ms();
    sample->mono_ms = est_mono_ms();
    sample->error = t->first_error;
    sample->exception = t->first_exception;
    sample->reading.present = 0;
    sample->reading.bad = 0;
    sample->reading.nzones = 0;
    if (t->answered > 0)
        drv_decode(d->plan, regs, request_ok, &sample->reading, &sample->bad_values);
    /* A value the meter sent as NaN or Inf is not a good reading: stale,
     * with the quantity named in the payload. */
    sample->quality = t->answered == 0 ? GW_QUALITY_ERROR
                      : t->answered < t->attempted || sample->reading.bad != 0 ? GW_QUALITY_STALE
                                                                             : GW_QUALITY_GOOD;
    if (t->answered > 0 && d->has_slow)
        note_slow_read(d, request_ok);
    d->polls++;
}

/* Polls a DL/T 645 or CJ/T 188 meter, item by item. */
static void poll_national_device(struct gw_poller *p, struct poll_device *d,
                                 struct gw_sample *sample)
{
    memset(sample, 0, offsetof(struct gw_sample, reading));
    struct drv_cn_poll_result r;
    drv_cnlink_poll(p->cnlink, d->model, d->wire_address, wants_slow_poll(d), attempts_for(p, d),
                    &sample->reading, &r);
    sample->item = GW_ITEM_SAMPLE;
    sample->device_type = d->type;
    sample->index = d->index;
    sample->ts_ms = est_now_ms();
    sample->mono_ms = est_mono_ms();
    sample->error = r.first_error;
    sample->exception = r.first_code;
    sample->quality = r.answered == 0 ? GW_QUALITY_ERROR
                      : r.answered < r.attempted ? GW_QUALITY_STALE
                                                 : GW_QUALITY_GOOD;
    d->polls++;
}

/* Polls one device on its own, request by request. */
static void poll_device(struct gw_poller *p, struct poll_device *d, struct gw_sample *sample)
{
    if (p->cnlink != NULL) {
        poll_national_device(p, d, sample);
        return;
    }
    uint16_t *regs = slot_regs(p, 0);
    bool *request_ok = slot_request_ok(p, 0);
    bool slow_poll = wants_slow_poll(d);
    struct poll_tally t = {0};
    for (size_t i = 0; i < d->nrequests; i++) {
        const struct drv_request *r = drv_plan_request(d->plan, i);
        request_ok[i] = false;
        if (r->slow && !slow_poll)
            continue;
        int exception = 0;
        est_err err = read_request(p, d, r, regs, attempts_for(p, d), &exception);
        request_ok[i] = err == EST_OK;
        if (!tally_request(&t, err, exception))
            break;
    }
    finish_sample(d, regs, request_ok, &t, sample);
}

static void note_outcome(struct gw_poller *p, struct poll_device *d, const struct gw_sample *s)
{
    pthread_mutex_lock(&p->stats_lock);
    p->stats.polls++;
    p->stats.failed_polls += s->quality == GW_QUALITY_ERROR;
    p->stats.timeout_polls += s->quality == GW_QUALITY_ERROR && s->error == EST_ERR_TIMEOUT;
    pthread_mutex_unlock(&p->stats_lock);

    if (s->quality == GW_QUALITY_ERROR && s->error == EST_ERR_IO) {
        /* The link is down (connection refused, port gone): one line for
         * the bus, at growing intervals, rather than one per device. */
        d->consecutive_failures++;
        if (d->consecutive_failures >= p->offline_after)
            d->serial_due = d->has_slow;
        if (gw_log_limiter_fail(&p->link_limiter)) {
            if (p->bus->type != GW_BUS_RTU)
                gw_warn("bus %s: cannot reach %s:%d: %s (%llu failed polls)", p->bus->name,
                        p->bus->host, p->bus->port, est_strerror(s->error),
                        (unsigned long long)p->link_limiter.failures);
            else
                gw_warn("bus %s: cannot use %s: %s (%llu failed polls)", p->bus->name,
                        p->bus->device, est_strerror(s->error),
                        (unsigned long long)p->link_limiter.failures);
        }
        return;
    }
    if (s->quality == GW_QUALITY_ERROR) {
        d->consecutive_failures++;
        if (d->consecutive_failures >= p->offline_after)
            d->serial_due = d->has_slow;
        if (gw_log_limiter_fail(&d->limiter)) {
            char buf[96], where[48];
            gw_warn("bus %s: device %s (%s): poll failed: %s (%llu in a row)", p->bus->name,
                    d->id, device_where(d, where, sizeof where),
                    describe_error(p, s->error, s->exception, buf, sizeof buf),
                    (unsigned long long)d->limiter.failures);
        }
        /* Link failures (above) never slow a device down: the link has
         * its own reconnect backoff, and device backoff on top would delay
         * recovery by the longest device interval. */
        if (d->consecutive_failures >= p->offline_after) {
            int64_t next = d->interval_now_ms * 2;
            int64_t cap = (int64_t)d->interval_ms * BACKOFF_INTERVALS;
            cap = cap < BACKOFF_MIN_CAP_MS ? BACKOFF_MIN_CAP_MS
                  : cap > BACKOFF_MAX_CAP_MS ? BACKOFF_MAX_CAP_MS
                                             : cap;
            d->interval_now_ms = next > cap ? cap : next;
        }
        return;
    }
    uint64_t link_ended = gw_log_limiter_ok(&p->link_limiter);
    if (link_ended > 0)
        gw_info("bus %s: answers again after %llu failed polls", p->bus->name,
                (unsigned long long)link_ended);
    uint64_t ended = gw_log_limiter_ok(&d->limiter);
    char where[48];
    if (ended > 0)
        gw_info("bus %s: device %s (%s) answers again after %llu failed polls", p->bus->name,
                d->id, device_where(d, where, sizeof where), (unsigned long long)ended);
    if (s->quality == GW_QUALITY_STALE && s->error != EST_OK) {
        char buf[96];
        gw_debug("bus %s: device %s: partial poll: %s", p->bus->name, d->id,
                 describe_error(p, s->error, s->exception, buf, sizeof buf));
    }
    d->consecutive_failures = 0;
    d->interval_now_ms = d->interval_ms;
}

/* Queues the batched samples for the core, oldest first. Waits for room
 * in steps; a queue full for long means the core is stuck, and dropping
 * samples at shutdown beats stalling the bus forever. */
static void flush_batch(struct gw_poller *p)
{
    for (size_t i = 0; i < p->nbatch; i++)
        p->batch[i].generation = p->generation;
    size_t done = 0;
    while (done < p->nbatch && !atomic_load(&p->stopping)) {
        size_t pushed = 0;
        est_err err = gw_queue_push_many(p->samples, p->batch + done, p->nbatch - done, 200, &pushed);
        done += pushed;
        if (err == EST_ERR_STATE)
            break;
    }
    p->nbatch = 0;
}

/* The next free batch slot (flushing a full batch first). */
static struct gw_sample *next_slot(struct gw_poller *p)
{
    if (p->nbatch == SAMPLE_BATCH)
        flush_batch(p);
    return &p->batch[p->nbatch];
}

static void reschedule(struct poll_device *d, int64_t now)
{
    d->due_ms += d->interval_now_ms;
    if (d->due_ms <= now)
        d->due_ms = now + (d->interval_now_ms < d->interval_ms ? d->interval_now_ms : 0) + 1;
}

static struct poll_device *find_meter(struct gw_poller *p, uint32_t meter)
{
    for (size_t i = 0; i < p->ndevices; i++)
        if (p->devices[i].type == GW_DEVICE_METER && p->devices[i].index == meter)
            return &p->devices[i];
    return NULL;
}

static void handle_valve_request(struct gw_poller *p, const struct valve_request *req)
{
    struct poll_device *d = find_meter(p, req->meter);
    struct gw_sample *sample = next_slot(p);
    memset(sample, 0, offsetof(struct gw_sample, reading));
    sample->item = GW_ITEM_VALVE_RESULT;
    sample->device_type = GW_DEVICE_METER;
    sample->index = req->meter;
    sample->valve_close = req->close;
    snprintf(sample->requested_by, sizeof sample->requested_by, "%s", req->requested_by);
    sample->reading.present = 0;
    sample->reading.bad = 0;
    sample->reading.nzones = 0;
    uint16_t address = 0, value = 0;
    if (d == NULL || !d->has_valve) {
        sample->error = EST_ERR_NOTFOUND;
    } else if (p->cnlink != NULL) {
        sample->error = drv_cnlink_valve(p->cnlink, d->model, d->wire_address, !req->close);
    } else if (drv_valve_command(d->model, d->options, !req->close, &address, &value) != EST_OK) {
        sample->error = EST_ERR_NOTFOUND;
    } else {
        int exception = 0;
        sample->error = drv_link_write(p->link, d->slave, address, value, &exception);
        sample->exception = exception;
    }
    sample->ts_ms = est_now_ms();
    sample->mono_ms = est_mono_ms();
    sample->quality = sample->error == EST_OK ? GW_QUALITY_GOOD : GW_QUALITY_ERROR;
    gw_info("bus %s: valve %s on meter %s requested by %s: %s", p->bus->name,
            req->close ? "close" : "open", d ? d->id : "?", req->requested_by,
            est_strerror(sample->error));
    p->nbatch++;
    if (d != NULL) {
        /* Read the valve state back at once. */
        sample = next_slot(p);
        poll_device(p, d, sample);
        note_outcome(p, d, sample);
        p->nbatch++;
    }
    flush_batch(p);
}

static int64_t early_window_ms(const struct gw_poller *p, const struct poll_device *d)
{
    int64_t tenth = d->interval_now_ms / 10;
    int64_t window = POLL_EARLY_MS;
    if (p->depth > 1) {
        int64_t part = d->interval_now_ms / PIPELINE_EARLY_PARTS;
        window = part > PIPELINE_EARLY_MAX_MS ? PIPELINE_EARLY_MAX_MS
                 : part > POLL_EARLY_MS       ? part
                                              : POLL_EARLY_MS;
    }
    return tenth < window ? tenth : window;
}

/* Polls the device at the top of the heap on its own. */
static void poll_top_alone(struct gw_poller *p)
{
    struct poll_device *d = p->heap[0].device;
    struct gw_sample *sample = next_slot(p);
    double started = mono_seconds();
    poll_device(p, d, sample);
    note_latency(p, mono_seconds() - started);
    note_outcome(p, d, sample);
    p->nbatch++;
    reschedule(d, est_mono_ms());
    p->heap[0].due_ms = d->due_ms;
    heap_sift_down(p->heap, p->heap_len, 0);
}

/* Turns a burst device's read results into its sample. A read the burst
 * left unanswered is done again alone; a timeout or garbled reply gets the
 * retries it would have had on its own. */
static void finish_burst_device(struct gw_poller *p, size_t slot, struct gw_sample *sample)
{
    const struct burst_device *b = &p->burst[slot];
    struct poll_device *d = b->device;
    uint16_t *regs = slot_regs(p, slot);
    bool *request_ok = slot_request_ok(p, slot);
    struct poll_tally t = {0};
    size_t next_read = b->first_read;
    for (size_t i = 0; i < d->nrequests; i++) {
        const struct drv_request *r = drv_plan_request(d->plan, i);
        request_ok[i] = false;
        if (r->slow && !b->slow_poll)
            continue;
        const struct drv_link_read *read = &p->reads[next_read++];
        est_err err = read->result;
        int exception = read->exception;
        if (err == EST_ERR_STATE)
            err = read_request(p, d, r, regs, 1 + p->retries, &exception);
        else if ((err == EST_ERR_TIMEOUT || err == EST_ERR_PROTOCOL) && p->retries > 0)
            err = read_request(p, d, r, regs, p->retries, &exception);
        request_ok[i] = err == EST_OK;
        if (!tally_request(&t, err, exception))
            break;
    }
    finish_sample(d, regs, request_ok, &t, sample);
}

/* Reads the poll of device d would make now; false when its plan would not
 * fit in the burst's remaining room. */
static bool add_burst_reads(struct gw_poller *p, struct poll_device *d, size_t slot, size_t *nreads)
{
    bool slow_poll = wants_slow_poll(d);
    size_t need = 0;
    for (size_t i = 0; i < d->nrequests; i++)
        need += !drv_plan_request(d->plan, i)->slow || slow_poll;
    if (*nreads + need > p->depth)
        return false;
    p->burst[slot] = (struct burst_device){d, *nreads, slow_poll};
    uint16_t *regs = slot_regs(p, slot);
    for (size_t i = 0; i < d->nrequests; i++) {
        const struct drv_request *r = drv_plan_request(d->plan, i);
        if (r->slow && !slow_poll)
            continue;
        p->reads[(*nreads)++] = (struct drv_link_read){
            .slave = d->slave, .function = r->function, .address = r->address,
            .count = r->count, .dest = regs + r->reg_offset};
    }
    return true;
}

/* On a pipelined bus: takes the healthy devices due now off the heap, as
 * many as fit in pipeline_depth reads, and polls them with their reads in
 * flight together. A failing device is polled alone, as on any bus, so a
 * dead meter costs its timeout without holding up a burst. */
static void poll_burst(struct gw_poller *p)
{
    int64_t now = est_mono_ms();
    size_t ndevices = 0, nreads = 0;
    while (ndevices < p->depth && p->heap_len > 0) {
        struct poll_device *d = p->heap[0].device;
        if (d->due_ms > now + early_window_ms(p, d))
            break;
        if (d->consecutive_failures > 0 || !add_burst_reads(p, d, ndevices, &nreads)) {
            if (ndevices == 0)
                poll_top_alone(p);
            break;
        }
        heap_pop(p);
        ndevices++;
    }
    if (ndevices == 0)
        return;
    double started = mono_seconds();
    drv_link_read_many(p->link, p->reads, nreads);
    for (size_t slot = 0; slot < ndevices; slot++) {
        struct poll_device *d = p->burst[slot].device;
        struct gw_sample *sample = next_slot(p);
        finish_burst_device(p, slot, sample);
        note_latency(p, mono_seconds() - started);
        note_outcome(p, d, sample);
        p->nbatch++;
        reschedule(d, est_mono_ms());
        heap_push(p, d);
    }
}

static void *poller_thread(void *arg)
{
    struct gw_poller *p = arg;
    while (!atomic_load(&p->stopping)) {
        struct valve_request req;
        while (gw_queue_pop_many(p->valve_requests, &req, 1, 0) == 1)
            handle_valve_request(p, &req);
        if (p->ndevices == 0) {
            est_sleep_ms(100);
            continue;
        }
        int64_t now = est_mono_ms();
        struct poll_device *d = p->heap[0].device;
        if (d->due_ms > now + early_window_ms(p, d)) {
            flush_batch(p);
            int64_t wait = d->due_ms - now;
            /* Wake for valve requests at least every 50 ms. */
            if (gw_queue_pop_many(p->valve_requests, &req, 1, (int)(wait > 50 ? 50 : wait)) == 1)
                handle_valve_request(p, &req);
            continue;
        }
        if (p->depth > 1)
            poll_burst(p);
        else
            poll_top_alone(p);
    }
    flush_batch(p);
    return NULL;
}

static void poller_free(struct gw_poller *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nplans; i++)
        drv_plan_free(p->plans[i].plan);
    free(p->plans);
    free(p->regs);
    free(p->request_ok);
    free(p->reads);
    free(p->burst);
    free(p->devices);
    free(p->heap);
    free(p->batch);
    if (p->link != NULL)
        drv_link_close(p->link);
    drv_cnlink_close(p->cnlink);
    gw_queue_destroy(p->valve_requests);
    pthread_mutex_destroy(&p->stats_lock);
    free(p);
}

est_err gw_poller_start(const struct gw_config *config, size_t bus, struct gw_queue *samples,
                        uint32_t generation, struct gw_poller **out)
{
    struct gw_poller *p = calloc(1, sizeof *p);
    if (p == NULL)
        return EST_ERR_NOMEM;
    pthread_mutex_init(&p->stats_lock, NULL);
    p->config = config;
    p->generation = generation;
    p->bus = &config->buses[bus];
    p->samples = samples;
    p->retries = p->bus->retries;
    p->offline_after = config->rules.meter_offline.failures > 0
                           ? (unsigned)config->rules.meter_offline.failures
                           : 3;
    p->ndevices = count_devices_on_bus(config, bus);
    p->devices = calloc(p->ndevices + 1, sizeof *p->devices);
    p->heap = calloc(p->ndevices + 1, sizeof *p->heap);
    p->plans = calloc(p->ndevices + 1, sizeof *p->plans);
    p->batch = malloc(SAMPLE_BATCH * sizeof *p->batch);
    p->depth = p->bus->pipeline_depth > 1 ? (size_t)p->bus->pipeline_depth : 1;
    p->reads = calloc(p->depth, sizeof *p->reads);
    p->burst = calloc(p->depth, sizeof *p->burst);
    est_err err = p->devices && p->heap && p->plans && p->batch && p->reads && p->burst
                      ? EST_OK
                      : EST_ERR_NOMEM;
    if (err == EST_OK)
        err = gw_queue_create(sizeof(struct valve_request), VALVE_QUEUE_CAPACITY, &p->valve_requests);
    if (err == EST_OK)
        err = add_devices(p, bus);
    struct drv_link_config lc;
    link_config_from_bus(p->bus, &lc);
    if (err == EST_OK && p->bus->protocol != DRV_PROTO_MODBUS)
        err = open_national_link(p->bus, &p->cnlink);
    else if (err == EST_OK)
        err = drv_link_open(&lc, &p->link);
    if (err != EST_OK) {
        poller_free(p);
        return err;
    }
    spread_first_polls(p);
    if (pthread_create(&p->thread, NULL, poller_thread, p) != 0) {
        poller_free(p);
        return EST_ERR_NOMEM;
    }
    *out = p;
    return EST_OK;
}

void gw_poller_stop(struct gw_poller *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stopping, true);
    gw_queue_close(p->valve_requests);
    pthread_join(p->thread, NULL);
    poller_free(p);
}

est_err gw_poller_request_valve(struct gw_poller *p, uint32_t meter, bool close,
                                const char *requested_by)
{
    struct valve_request req = {.meter = meter, .close = close};
    snprintf(req.requested_by, sizeof req.requested_by, "%s", requested_by ? requested_by : "?");
    return gw_queue_push(p->valve_requests, &req, 0);
}

void gw_poller_get_stats(struct gw_poller *p, struct gw_poller_stats *stats)
{
    pthread_mutex_lock(&p->stats_lock);
    *stats = p->stats;
    pthread_mutex_unlock(&p->stats_lock);
    if (p->cnlink != NULL)
        drv_cnlink_stats(p->cnlink, &stats->transactions, &stats->failed_transactions);
    else
        drv_link_stats(p->link, &stats->transactions, &stats->failed_transactions);
}
