/* test_gw_store.c - unit tests of gateway/store.c: schema and file modes,
 * migrations, inventory sync (database occupancy wins), readings, snapshots
 * and retention, incidents (idempotent per condition), the outbox, the
 * patrol log's hash chain with tamper tests (edit, delete, insert,
 * truncation below an anchor), work orders, meta and estate-ctl requests,
 * and the WAL checkpoints the store counts and times.
 * Each test works in its own mkdtemp directory under /tmp, removed after. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "store.h"

/* ---- fixtures ---- */

struct fixture {
    char dir[64];            /* mkdtemp root, removed at teardown */
    char data_dir[96];       /* dir + "/data/sub": exercises mkdir -p */
    struct gw_store *store;
};

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/gwstore.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data_dir, sizeof f->data_dir, "%s/data/sub", f->dir);
    char err[256];
    assert_int_equal(gw_store_open(f->data_dir, false, &f->store, err, sizeof err), EST_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gw_store_close(f->store);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A second, raw connection: what an attacker with file access could do. */
static sqlite3 *raw_open(const struct fixture *f)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", f->data_dir, GW_STORE_DB_FILE);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int raw_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* ---- a small config ---- */

static const struct drv_model model_sdm120 = {.name = "sdm120", .kind = DRV_KIND_ELECTRICITY};
static const struct drv_model model_water = {.name = "xintai-water", .kind = DRV_KIND_WATER};

struct test_config {
    struct gw_config config;
    struct gw_bus_config buses[1];
    struct gw_unit_config units[2];
    struct gw_meter_config meters[3];
};

static void make_config(struct test_config *t)
{
    memset(t, 0, sizeof *t);
    t->buses[0] = (struct gw_bus_config){.name = "bus1", .type = GW_BUS_TCP};
    t->units[0] = (struct gw_unit_config){.id = "3-1201", .building = "3", .vacant = true};
    t->units[1] = (struct gw_unit_config){.id = "3-1202", .building = "3", .vacant = false};
    t->meters[0] = (struct gw_meter_config){
        .id = "E-3-1201", .bus = 0, .slave = 1, .model = &model_sdm120,
        .kind = DRV_KIND_ELECTRICITY, .category = GW_CAT_UNIT, .unit = 0, .parent = -1,
        .serial = "1001"};
    t->meters[1] = (struct gw_meter_config){
        .id = "W-3-1201", .bus = 0, .slave = 2, .model = &model_water, .kind = DRV_KIND_WATER,
        .category = GW_CAT_UNIT, .unit = 0, .parent = 2, .valve = true, .serial = "2001"};
    t->meters[2] = (struct gw_meter_config){
        .id = "W-MASTER", .bus = 0, .slave = 3, .model = &model_water, .kind = DRV_KIND_WATER,
        .category = GW_CAT_MASTER, .unit = -1, .parent = -1, .location = "pump room"};
    t->config.buses = t->buses;
    t->config.nbuses = 1;
    t->config.units = t->units;
    t->config.nunits = 2;
    t->config.meters = t->meters;
    t->config.nmeters = 3;
}

/* ---- open, schema, migrations ---- */

static void test_open_creates_private_file_and_schema(void **state)
{
    struct fixture *f = *state;
    struct stat info;
    assert_int_equal(stat(f->data_dir, &info), 0);
    assert_int_equal(info.st_mode & 0777, 0700);
    char path[160];
    snprintf(path, sizeof path, "%s/%s", f->data_dir, GW_STORE_DB_FILE);
    assert_int_equal(stat(path, &info), 0);
    assert_int_equal(info.st_mode & 0777, 0600);

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), GW_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name IN ('meters','units','readings','incidents','outbox',"
                                 "'patrol','patrol_anchors','workorders','workorder_history',"
                                 "'meta','ctl_requests','snapshots','replacements')"),
                     13);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);

    /* A read-only second connection works alongside. */
    struct gw_store *ro = NULL;
    assert_int_equal(gw_store_open(f->data_dir, true, &ro, NULL, 0), EST_OK);
    struct gw_store_outbox_counts counts;
    assert_int_equal(gw_store_outbox_counts(ro, &counts), EST_OK);
    assert_int_equal(gw_store_meta_set(ro, "k", "v"), EST_ERR_PERM);
    assert_int_equal(gw_store_close(ro), EST_OK);
}

static void test_reopen_migrates_once_and_refuses_newer(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(gw_store_meta_set(f->store, "marker", "kept"), EST_OK);
    assert_int_equal(gw_store_close(f->store), EST_OK);
    f->store = NULL;
    /* Re-running migration 1 would fail on CREATE TABLE: reopen proves it is skipped. */
    assert_int_equal(gw_store_open(f->data_dir, false, &f->store, NULL, 0), EST_OK);
    char *value = NULL;
    assert_int_equal(gw_store_meta_get(f->store, "marker", &value), EST_OK);
    assert_string_equal(value, "kept");
    free(value);
    assert_int_equal(gw_store_close(f->store), EST_OK);
    f->store = NULL;

    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_exec(db, "PRAGMA user_version = 99"), SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    assert_int_equal(gw_store_open(f->data_dir, false, &f->store, err, sizeof err), EST_ERR_STATE);
    assert_null(f->store);
    assert_non_null(strstr(err, "newer"));

    /* Read-only open of a missing database names the problem. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", f->dir);
    struct gw_store *ro = NULL;
    assert_int_equal(gw_store_open(missing, true, &ro, err, sizeof err), EST_ERR_NOTFOUND);
    assert_null(ro);
}

/* ---- inventory and occupancy ---- */

struct meter_seen {
    int count;
    char removed_id[32];
    char serial_w[32];
    char parent_w[32];
};

static bool collect_meter(void *ctx, const struct gw_store_meter *m)
{
    struct meter_seen *seen = ctx;
    seen->count++;
    if (m->removed)
        snprintf(seen->removed_id, sizeof seen->removed_id, "%s", m->id);
    if (strcmp(m->id, "W-3-1201") == 0) {
        snprintf(seen->serial_w, sizeof seen->serial_w, "%s", m->serial ? m->serial : "");
        snprintf(seen->parent_w, sizeof seen->parent_w, "%s", m->parent ? m->parent : "");
    }
    return true;
}

static void test_inventory_sync_keeps_db_occupancy(void **state)
{
    struct fixture *f = *state;
    struct test_config t;
    make_config(&t);
    int64_t rids[3] = {0};
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 1000, rids), EST_OK);
    assert_true(rids[0] > 0 && rids[1] > 0 && rids[2] > 0);
    int64_t rid = 0;
    assert_int_equal(gw_store_meter_rowid(f->store, "W-3-1201", &rid), EST_OK);
    assert_int_equal(rid, rids[1]);
    assert_int_equal(gw_store_meter_rowid(f->store, "nope", &rid), EST_ERR_NOTFOUND);

    bool vacant = false;
    assert_int_equal(gw_store_get_occupancy(f->store, "3-1201", &vacant), EST_OK);
    assert_true(vacant);
    assert_int_equal(gw_store_set_occupancy(f->store, "3-1201", false, "alice", 2000), EST_OK);
    assert_int_equal(gw_store_set_occupancy(f->store, "9-9999", false, "alice", 2000),
                     EST_ERR_NOTFOUND);

    /* A run-time serial change survives a re-sync with the same config ... */
    struct gw_store_replacement r = {.meter_id = "W-3-1201", .ts_ms = 2500, .old_serial = "2001",
                                     .new_serial = "2002", .new_first_reading_json = "{}"};
    assert_int_equal(gw_store_record_replacement(f->store, &r), EST_OK);

    int64_t rids2[3] = {0};
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 3000, rids2), EST_OK);
    assert_memory_equal(rids, rids2, sizeof rids);
    assert_int_equal(gw_store_get_occupancy(f->store, "3-1201", &vacant), EST_OK);
    assert_false(vacant); /* the database wins over the config */
    struct meter_seen seen = {0};
    assert_int_equal(gw_store_meters_list(f->store, collect_meter, &seen), EST_OK);
    assert_int_equal(seen.count, 3);
    assert_string_equal(seen.serial_w, "2002");
    assert_string_equal(seen.parent_w, "W-MASTER");
    assert_string_equal(seen.removed_id, "");

    /* ... but a changed config serial wins, and a dropped meter is flagged. */
    t.meters[1].serial = "2003";
    t.config.nmeters = 2;
    t.meters[1].parent = -1;
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 4000, NULL), EST_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_meters_list(f->store, collect_meter, &seen), EST_OK);
    assert_string_equal(seen.serial_w, "2003");
    assert_string_equal(seen.removed_id, "W-MASTER");

    assert_int_equal(gw_store_set_meter_status(f->store, "E-3-1201", GW_STORE_METER_OFFLINE),
                     EST_OK);
    assert_int_equal(gw_store_set_meter_status(f->store, "nope", GW_STORE_METER_OK),
                     EST_ERR_NOTFOUND);
}

/* ---- readings ---- */

struct reading_seen {
    int count;
    int64_t ts[16];
    char ids[16][32];
    double import_kwh[16];
};

static bool collect_reading(void *ctx, const struct gw_store_reading_row *row)
{
    struct reading_seen *seen = ctx;
    if (seen->count < 16) {
        seen->ts[seen->count] = row->ts_ms;
        snprintf(seen->ids[seen->count], sizeof seen->ids[0], "%s",
                 row->meter_id ? row->meter_id : "");
        seen->import_kwh[seen->count] = row->values.energy_import_kwh;
    }
    seen->count++;
    return true;
}

static bool last_good_of(void *ctx, const struct gw_store_meter *m)
{
    int64_t *out = ctx;
    if (strcmp(m->id, "E-3-1201") == 0)
        *out = m->last_good_ms;
    return true;
}

static void test_readings_batch_latest_history(void **state)
{
    struct fixture *f = *state;
    struct test_config t;
    make_config(&t);
    int64_t rids[3];
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 1000, rids), EST_OK);

    struct drv_reading dr = {0};
    dr.present = (UINT64_C(1) << DRV_Q_ENERGY_IMPORT_KWH) | (UINT64_C(1) << DRV_Q_POWER_W);
    dr.value[DRV_Q_ENERGY_IMPORT_KWH] = 12.5;
    dr.value[DRV_Q_POWER_W] = 230;

    struct gw_store_reading rows[7];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 5; i++) {
        rows[i].meter_rid = rids[0];
        rows[i].ts_ms = 10000 + i * 1000;
        rows[i].quality = GW_STORE_GOOD;
        rows[i].reading = &dr;
        rows[i].values_json = "{\"energy_import_kwh\":12.5}";
    }
    rows[4].quality = GW_STORE_STALE; /* newest is stale: last_good stays at 13000 */
    rows[5] = (struct gw_store_reading){.meter_rid = rids[1], .ts_ms = 12000,
                                        .quality = GW_STORE_GOOD};
    gw_store_values_clear(&rows[5].values);
    rows[5].values.volume_m3 = 3.25;
    rows[6] = rows[5];
    rows[6].ts_ms = 11000; /* out of order in the batch */
    assert_int_equal(gw_store_add_readings(f->store, rows, 7), EST_OK);

    struct reading_seen seen = {0};
    assert_int_equal(gw_store_readings_latest(f->store, collect_reading, &seen), EST_OK);
    assert_int_equal(seen.count, 2);
    assert_string_equal(seen.ids[0], "E-3-1201");
    assert_int_equal(seen.ts[0], 14000);
    assert_true(fabs(seen.import_kwh[0] - 12.5) < 1e-9);
    assert_string_equal(seen.ids[1], "W-3-1201");
    assert_int_equal(seen.ts[1], 12000);
    assert_true(isnan(seen.import_kwh[1]));

    memset(&seen, 0, sizeof seen);
    assert_int_equal(
        gw_store_readings_history(f->store, rids[0], 11000, 14000, 2, collect_reading, &seen),
        EST_OK);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.ts[0], 11000);
    assert_int_equal(seen.ts[1], 12000);

    int64_t last_good = 0;
    assert_int_equal(gw_store_meters_list(f->store, last_good_of, &last_good), EST_OK);
    assert_int_equal(last_good, 13000);

    /* Snapshots: the first reading of a day only. */
    struct gw_store_values v;
    gw_store_values_clear(&v);
    v.energy_import_kwh = 12.5;
    bool inserted = false;
    assert_int_equal(
        gw_store_snapshot_if_needed(f->store, rids[0], "2026-01-02", 10000, &v, &inserted),
        EST_OK);
    assert_true(inserted);
    v.energy_import_kwh = 13;
    assert_int_equal(
        gw_store_snapshot_if_needed(f->store, rids[0], "2026-01-02", 20000, &v, &inserted),
        EST_OK);
    assert_false(inserted);
    assert_int_equal(gw_store_snapshot_if_needed(f->store, rids[0], "2026-1-2", 1, &v, NULL),
                     EST_ERR_INVALID);
}

static bool count_reading(void *ctx, const struct gw_store_reading_row *row)
{
    (void)row;
    (*(int *)ctx)++;
    return true;
}

static void test_prune_keeps_one_per_hour(void **state)
{
    struct fixture *f = *state;
    struct test_config t;
    make_config(&t);
    int64_t rids[3];
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 1000, rids), EST_OK);
    const int64_t base = 1767225600000; /* an hour boundary */
    struct gw_store_reading rows[2 * 40];
    size_t n = 0;
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < 40; i++) /* 10-minute spacing: 6 per hour, 6h40 */
            rows[n++] = (struct gw_store_reading){.meter_rid = rids[m],
                                                  .ts_ms = base + i * 600000LL,
                                                  .quality = GW_STORE_GOOD,
                                                  .values = {NAN, NAN, NAN, NAN, NAN}};
    assert_int_equal(gw_store_add_readings(f->store, rows, n), EST_OK);
    const int64_t cutoff = base + 4 * 3600000LL;
    int64_t resume = 0;
    size_t deleted = 0, total = 0;
    int calls = 0;
    do {
        assert_int_equal(gw_store_prune_readings(f->store, cutoff, 7, &resume, &deleted), EST_OK);
        total += deleted;
        calls++;
    } while (resume != 0);
    assert_true(calls > 1);
    /* First 4 hours: 6 -> 1 per hour per meter = 2 * 4 * 5 deleted. */
    assert_int_equal(total, 40);
    int count = 0;
    assert_int_equal(gw_store_readings_history(f->store, rids[0], base, base + 10 * 3600000LL, 0,
                                               count_reading, &count),
                     EST_OK);
    assert_int_equal(count, 4 + 16);
    /* A second pass finds nothing more. */
    resume = 0;
    assert_int_equal(gw_store_prune_readings(f->store, cutoff, 100, &resume, &deleted), EST_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(resume, 0);
}

/* ---- incidents ---- */

struct incident_seen {
    int count;
    int64_t ids[8];
    bool open[8];
    char text[64];
};

static bool collect_incident(void *ctx, const struct gw_store_incident *inc)
{
    struct incident_seen *seen = ctx;
    if (seen->count < 8) {
        seen->ids[seen->count] = inc->id;
        seen->open[seen->count] = inc->open;
    }
    snprintf(seen->text, sizeof seen->text, "%s", inc->text ? inc->text : "");
    seen->count++;
    return true;
}

static void test_incident_open_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = {.rule = "reverse_energy", .subject_type = "meter",
                                   .subject = "E-3-1201", .zone = -1, .severity = "major",
                                   .since_ms = 100, .raised_ms = 160, .text = "runs backwards",
                                   .detail_json = "{\"reason\":\"export_growth\"}"};
    int64_t id1 = 0, id2 = 0, id3 = 0;
    bool existing = true;
    assert_int_equal(gw_store_incident_open(f->store, &in, &id1, &existing), EST_OK);
    assert_false(existing);
    assert_int_equal(gw_store_incident_open(f->store, &in, &id2, &existing), EST_OK);
    assert_true(existing);
    assert_int_equal(id1, id2);

    /* Zones are part of the key; no zone and zone 0 differ. */
    struct gw_store_incident z = {.rule = "fire_alarm", .subject_type = "zone",
                                  .subject = "FP1", .zone = 0, .severity = "critical",
                                  .since_ms = 1, .raised_ms = 1, .text = "alarm"};
    int64_t zid0 = 0, zid1 = 0;
    assert_int_equal(gw_store_incident_open(f->store, &z, &zid0, &existing), EST_OK);
    z.zone = 1;
    assert_int_equal(gw_store_incident_open(f->store, &z, &zid1, &existing), EST_OK);
    assert_false(existing);
    assert_true(zid0 != zid1);

    assert_int_equal(gw_store_incident_update(f->store, id1, NULL, NULL, "still backwards", 200),
                     EST_OK);
    assert_int_equal(gw_store_incident_confirm(f->store, id1, false, "patrol-1", 210), EST_OK);
    assert_int_equal(gw_store_incident_clear(f->store, id1, 300), EST_OK);
    assert_int_equal(gw_store_incident_clear(f->store, id1, 301), EST_ERR_STATE);
    assert_int_equal(gw_store_incident_update(f->store, id1, "minor", NULL, NULL, 302),
                     EST_ERR_STATE);
    assert_int_equal(gw_store_incident_clear(f->store, 999, 301), EST_ERR_NOTFOUND);

    /* After clearing, the same condition is a new incident. */
    assert_int_equal(gw_store_incident_open(f->store, &in, &id3, &existing), EST_OK);
    assert_false(existing);
    assert_true(id3 != id1);

    struct incident_seen seen = {0};
    assert_int_equal(gw_store_incidents_open(f->store, collect_incident, &seen), EST_OK);
    assert_int_equal(seen.count, 3); /* two zones + the reopened one */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_incident_get(f->store, id1, collect_incident, &seen), EST_OK);
    assert_int_equal(seen.count, 1);
    assert_false(seen.open[0]);
    assert_string_equal(seen.text, "still backwards");
    assert_int_equal(gw_store_incident_get(f->store, 999, collect_incident, &seen),
                     EST_ERR_NOTFOUND);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_incidents_between(f->store, 250, 400, collect_incident, &seen),
                     EST_OK);
    assert_int_equal(seen.count, 4); /* id1 (cleared at 300), both zones, id3 */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_incidents_between(f->store, 301, 400, collect_incident, &seen),
                     EST_OK);
    assert_int_equal(seen.count, 3); /* id1 cleared before 301 */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_incidents_between(f->store, 0, 100, collect_incident, &seen),
                     EST_OK);
    assert_int_equal(seen.count, 2); /* only the zones were raised by then */
}

/* ---- outbox ---- */

struct outbox_seen {
    int count;
    int64_t seq[16];
    bool is_event[16];
    size_t len[16];
};

static bool collect_outbox(void *ctx, const struct gw_store_outbox_msg *msg)
{
    struct outbox_seen *seen = ctx;
    if (seen->count < 16) {
        seen->seq[seen->count] = msg->seq;
        seen->is_event[seen->count] = msg->is_event;
        seen->len[seen->count] = msg->payload_len;
    }
    seen->count++;
    return true;
}

static void test_outbox_order_delete_trim(void **state)
{
    struct fixture *f = *state;
    char payload[100];
    memset(payload, 'x', sizeof payload);
    assert_int_equal(gw_store_begin(f->store), EST_OK);
    int64_t seqs[10];
    for (int i = 0; i < 10; i++) {
        struct gw_store_outbox_msg msg = {.topic = "estate/s/g/x", .payload = payload,
                                          .payload_len = 100, .qos = i % 3 == 0 ? 1 : 0,
                                          .is_event = i % 3 == 0, .created_ms = i};
        assert_int_equal(gw_store_outbox_add(f->store, &msg, &seqs[i]), EST_OK);
    }
    assert_int_equal(gw_store_commit(f->store), EST_OK);
    /* An empty retained payload (an incident cleared) stays an empty blob. */
    struct gw_store_outbox_msg clear = {.topic = "estate/s/g/alerts/active/1", .payload = NULL,
                                        .payload_len = 0, .qos = 1, .retain = true,
                                        .is_event = true, .created_ms = 11};
    int64_t clear_seq = 0;
    assert_int_equal(gw_store_outbox_add(f->store, &clear, &clear_seq), EST_OK);

    struct outbox_seen seen = {0};
    assert_int_equal(gw_store_outbox_peek(f->store, 0, 0, collect_outbox, &seen), EST_OK);
    assert_int_equal(seen.count, 11);
    for (int i = 1; i < 11; i++)
        assert_true(seen.seq[i] > seen.seq[i - 1]);
    assert_int_equal(seen.len[10], 0);

    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_outbox_peek(f->store, seqs[2], 3, collect_outbox, &seen), EST_OK);
    assert_int_equal(seen.count, 3);
    assert_int_equal(seen.seq[0], seqs[3]);

    assert_int_equal(gw_store_outbox_delete(f->store, seqs[0]), EST_OK);
    assert_int_equal(gw_store_outbox_delete(f->store, seqs[0]), EST_ERR_NOTFOUND);

    struct gw_store_outbox_counts c;
    assert_int_equal(gw_store_outbox_counts(f->store, &c), EST_OK);
    assert_int_equal(c.events, 4); /* 3, 6, 9 and the clear */
    assert_int_equal(c.readings, 6);
    assert_int_equal(c.reading_bytes, 600);
    assert_int_equal(c.event_bytes, 300);

    uint64_t dropped = 0;
    assert_int_equal(gw_store_outbox_trim_readings(f->store, 250, &dropped), EST_OK);
    assert_int_equal(dropped, 4);
    assert_int_equal(gw_store_outbox_counts(f->store, &c), EST_OK);
    assert_int_equal(c.readings, 2);
    assert_int_equal(c.reading_bytes, 200);
    assert_int_equal(c.events, 4);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_outbox_peek(f->store, 0, 0, collect_outbox, &seen), EST_OK);
    assert_int_equal(seen.count, 6);
    assert_int_equal(seen.seq[0], seqs[3]); /* oldest event first */
    assert_int_equal(gw_store_outbox_trim_readings(f->store, 0, &dropped), EST_OK);
    assert_int_equal(dropped, 2);
    assert_int_equal(gw_store_outbox_trim_readings(f->store, 0, &dropped), EST_OK);
    assert_int_equal(dropped, 0);
}

/* ---- patrol log ---- */

static void append_entries(struct gw_store *store, int n)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "round %d: all quiet", i + 1);
        struct gw_store_patrol_entry e = {.ts_ms = 1000 + i, .kind = "checkin", .text = text,
                                          .author = "patrol-1",
                                          .incident = i == 2 ? 7 : 0,
                                          .detail_json = i == 1 ? "{\"where\":\"B2\"}" : NULL};
        assert_int_equal(gw_store_patrol_append(store, &e), EST_OK);
        assert_int_equal(e.seq, i + 1);
    }
}

/* The documented serialization, written out independently of store.c. */
static void independent_hash(const char *prev, int64_t seq, int64_t ts, const char *kind,
                             const char *text, const char *incident, const char *workorder,
                             const char *author, const char *detail, char out[65])
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "EGWP1T%zu:%s,", strlen(prev), prev);
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, seq);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "I%zu:%s,", strlen(num), num);
    snprintf(num, sizeof num, "%" PRId64, ts);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "I%zu:%s,", strlen(num), num);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "T%zu:%s,T%zu:%s,", strlen(kind), kind,
                  strlen(text), text);
    const char *opt[2] = {incident, workorder};
    for (int i = 0; i < 2; i++)
        n += opt[i] ? snprintf(buf + n, sizeof buf - (size_t)n, "I%zu:%s,", strlen(opt[i]), opt[i])
                    : snprintf(buf + n, sizeof buf - (size_t)n, "N");
    n += snprintf(buf + n, sizeof buf - (size_t)n, "T%zu:%s,", strlen(author), author);
    n += detail ? snprintf(buf + n, sizeof buf - (size_t)n, "T%zu:%s,", strlen(detail), detail)
                : snprintf(buf + n, sizeof buf - (size_t)n, "N");
    unsigned char digest[32];
    unsigned len = 0;
    assert_int_equal(EVP_Digest(buf, (size_t)n, digest, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

struct patrol_seen {
    int count;
    struct gw_store_patrol_entry last; /* its strings are dangling after the callback */
    char text[64];
    char recomputed[GW_STORE_HASH_LEN]; /* gw_store_patrol_compute_hash() in the callback */
};

static bool collect_patrol(void *ctx, const struct gw_store_patrol_entry *e)
{
    struct patrol_seen *seen = ctx;
    seen->count++;
    seen->last = *e;
    snprintf(seen->text, sizeof seen->text, "%s", e->text);
    assert_int_equal(gw_store_patrol_compute_hash(e, seen->recomputed), EST_OK);
    return true;
}

static void test_patrol_append_verify_intact(void **state)
{
    struct fixture *f = *state;
    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(f->store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
    assert_int_equal(v.count, 0);

    append_entries(f->store, 5);
    assert_int_equal(gw_store_patrol_verify(f->store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
    assert_null(v.problem);
    assert_int_equal(v.count, 5);
    assert_int_equal(v.head_seq, 5);

    int64_t seq = 0;
    char head[GW_STORE_HASH_LEN];
    assert_int_equal(gw_store_patrol_head(f->store, &seq, head), EST_OK);
    assert_int_equal(seq, 5);
    assert_string_equal(head, v.head_hash);

    /* Entries 1..3 recomputed from the header's description. */
    struct patrol_seen seen = {0};
    assert_int_equal(gw_store_patrol_list(f->store, 0, 1, collect_patrol, &seen), EST_OK);
    char expect[65];
    independent_hash("0000000000000000000000000000000000000000000000000000000000000000", 1, 1000,
                     "checkin", "round 1: all quiet", NULL, NULL, "patrol-1", NULL, expect);
    assert_string_equal(seen.last.hash, expect);
    char prev[65];
    snprintf(prev, sizeof prev, "%s", seen.last.hash);
    assert_int_equal(gw_store_patrol_list(f->store, 1, 1, collect_patrol, &seen), EST_OK);
    independent_hash(prev, 2, 1001, "checkin", "round 2: all quiet", NULL, NULL, "patrol-1",
                     "{\"where\":\"B2\"}", expect);
    assert_string_equal(seen.last.hash, expect);
    snprintf(prev, sizeof prev, "%s", seen.last.hash);
    assert_int_equal(gw_store_patrol_list(f->store, 2, 1, collect_patrol, &seen), EST_OK);
    independent_hash(prev, 3, 1002, "checkin", "round 3: all quiet", "7", NULL, "patrol-1", NULL,
                     expect);
    assert_string_equal(seen.last.hash, expect);
    assert_string_equal(seen.last.prev_hash, prev);
    assert_string_equal(seen.recomputed, expect);

    /* Append is atomic with the caller's transaction. */
    assert_int_equal(gw_store_begin(f->store), EST_OK);
    struct gw_store_patrol_entry e = {.ts_ms = 5, .kind = "system", .text = "t", .author = "sys"};
    assert_int_equal(gw_store_patrol_append(f->store, &e), EST_OK);
    assert_int_equal(e.seq, 6);
    assert_int_equal(gw_store_rollback(f->store), EST_OK);
    assert_int_equal(gw_store_patrol_head(f->store, &seq, head), EST_OK);
    assert_int_equal(seq, 5);
}

static void test_patrol_triggers_refuse_update_delete(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 3);
    sqlite3 *db = raw_open(f);
    assert_int_not_equal(raw_exec(db, "UPDATE patrol SET text = 'x' WHERE seq = 2"), SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_not_equal(raw_exec(db, "DELETE FROM patrol WHERE seq = 3"), SQLITE_OK);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM patrol"), 3);
    sqlite3_close(db);
    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(f->store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
}

/* Tampering as an attacker with the file would: triggers dropped first. */
static sqlite3 *attacker(const struct fixture *f)
{
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_exec(db, "DROP TRIGGER patrol_no_update; DROP TRIGGER patrol_no_delete;"
                                  "DROP TRIGGER patrol_anchors_no_delete;"),
                     SQLITE_OK);
    return db;
}

static int64_t verify_first_bad(struct gw_store *store)
{
    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(store, &v), EST_OK);
    if (v.first_bad_seq != 0)
        assert_non_null(v.problem);
    return v.first_bad_seq;
}

static void test_tamper_edit_named(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 5);
    sqlite3 *db = attacker(f);
    assert_int_equal(raw_exec(db, "UPDATE patrol SET text = 'round 3: nothing' WHERE seq = 3"),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(verify_first_bad(f->store), 3);
}

static void test_tamper_delete_named(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 5);
    sqlite3 *db = attacker(f);
    assert_int_equal(raw_exec(db, "DELETE FROM patrol WHERE seq = 3"), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(verify_first_bad(f->store), 3);
}

static void test_tamper_insert_named(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 5);
    sqlite3 *db = attacker(f);
    /* A forged entry squeezed in after 2: later entries renumbered. */
    assert_int_equal(raw_exec(db, "UPDATE patrol SET seq = seq + 100 WHERE seq >= 3;"
                                  "UPDATE patrol SET seq = seq - 99 WHERE seq >= 103;"
                                  "INSERT INTO patrol SELECT 3, ts_ms, kind, 'forged', NULL, NULL,"
                                  " author, NULL, hash, hash FROM patrol WHERE seq = 2;"),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(verify_first_bad(f->store), 3);
}

static void test_tamper_insert_at_end_named(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 4);
    sqlite3 *db = attacker(f);
    assert_int_equal(raw_exec(db, "INSERT INTO patrol SELECT 5, ts_ms + 1, kind, 'forged', NULL,"
                                  " NULL, author, NULL, hash, printf('%064d', 1) FROM patrol"
                                  " WHERE seq = 4"),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(verify_first_bad(f->store), 5);
}

static void test_truncation_below_anchor_detected(void **state)
{
    struct fixture *f = *state;
    append_entries(f->store, 5);
    int64_t anchored_seq = 0;
    char anchored_hash[GW_STORE_HASH_LEN];
    assert_int_equal(
        gw_store_patrol_anchor(f->store, 9999, "printed", &anchored_seq, anchored_hash), EST_OK);
    assert_int_equal(anchored_seq, 5);
    struct gw_store_patrol_entry e = {.ts_ms = 6, .kind = "system", .text = "t", .author = "sys"};
    assert_int_equal(gw_store_patrol_append(f->store, &e), EST_OK);
    assert_int_equal(gw_store_patrol_check_anchor(f->store, 5, anchored_hash), EST_OK);

    struct gw_store_patrol_verify v;
    assert_int_equal(gw_store_patrol_verify(f->store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 0);
    assert_int_equal(v.anchors, 1);

    /* Cut the tail below the anchor: the chain 1..3 alone is consistent. */
    sqlite3 *db = attacker(f);
    assert_int_equal(raw_exec(db, "DELETE FROM patrol WHERE seq >= 4"), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(gw_store_patrol_verify(f->store, &v), EST_OK);
    assert_int_equal(v.first_bad_seq, 4);
    assert_int_equal(v.head_seq, 3);
    assert_non_null(strstr(v.problem, "truncated"));
    assert_int_equal(gw_store_patrol_check_anchor(f->store, 5, anchored_hash), EST_ERR_NOTFOUND);
}

/* ---- work orders ---- */

struct wo_seen {
    int count;
    int history;
    char state[32];
    char last_action[32];
};

static bool collect_wo(void *ctx, const struct gw_store_workorder *wo)
{
    struct wo_seen *seen = ctx;
    seen->count++;
    snprintf(seen->state, sizeof seen->state, "%s", wo->state);
    return true;
}

static bool collect_history(void *ctx, const struct gw_store_wo_history *h)
{
    struct wo_seen *seen = ctx;
    seen->history++;
    snprintf(seen->last_action, sizeof seen->last_action, "%s", h->action);
    return true;
}

static void test_workorder_create_idempotent_with_history(void **state)
{
    struct fixture *f = *state;
    struct gw_store_incident in = {.rule = "vacant_flow", .subject_type = "unit",
                                   .subject = "3-1201", .zone = -1, .severity = "major",
                                   .since_ms = 1, .raised_ms = 2, .text = "water in vacant unit"};
    int64_t incident = 0;
    assert_int_equal(gw_store_incident_open(f->store, &in, &incident, NULL), EST_OK);

    struct gw_store_workorder wo = {.incident = incident, .category = "water", .unit = "3-1201",
                                    .description = "water flows in a vacant unit",
                                    .state = "open", .severity = "major", .opened_ms = 1000,
                                    .resolve_due_ms = 1000 + 604800000LL};
    int64_t id1 = 0, id2 = 0;
    bool existing = true;
    assert_int_equal(gw_store_workorder_create(f->store, &wo, "system", NULL, &id1, &existing),
                     EST_OK);
    assert_false(existing);
    assert_int_equal(gw_store_workorder_create(f->store, &wo, "system", NULL, &id2, &existing),
                     EST_OK);
    assert_true(existing);
    assert_int_equal(id1, id2);
    int64_t found = 0;
    assert_int_equal(gw_store_workorder_for_incident(f->store, incident, &found), EST_OK);
    assert_int_equal(found, id1);

    wo.id = id1;
    wo.state = "dispatched";
    wo.dispatched_ms = 2000;
    wo.arrive_due_ms = 2000 + 1200000;
    wo.assignee = "engineer-1";
    wo.updated_ms = 2000;
    struct gw_store_wo_history h = {.ts_ms = 2000, .action = "dispatch", .from_state = "open",
                                    .who = "frontdesk-1", .note = "go"};
    assert_int_equal(gw_store_workorder_update(f->store, &wo, &h), EST_OK);
    /* A stale transition (state moved on) is refused and changes nothing. */
    assert_int_equal(gw_store_workorder_update(f->store, &wo, &h), EST_ERR_STATE);
    wo.id = 999;
    assert_int_equal(gw_store_workorder_update(f->store, &wo, &h), EST_ERR_NOTFOUND);
    wo.id = id1;

    struct wo_seen seen = {0};
    assert_int_equal(gw_store_workorder_get(f->store, id1, collect_wo, collect_history, &seen),
                     EST_OK);
    assert_int_equal(seen.count, 1);
    assert_string_equal(seen.state, "dispatched");
    assert_int_equal(seen.history, 2);
    assert_string_equal(seen.last_action, "dispatch");

    const char *active[] = {"open", "dispatched", "on_site"};
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_workorders_list(f->store, active, 3, collect_wo, &seen), EST_OK);
    assert_int_equal(seen.count, 1);
    const char *closed[] = {"verified"};
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_workorders_list(f->store, closed, 1, collect_wo, &seen), EST_OK);
    assert_int_equal(seen.count, 0);

    /* Once verified, the incident may get a new order. */
    wo.state = "verified";
    wo.verified_ms = 3000;
    wo.verifier = "supervisor-1";
    h = (struct gw_store_wo_history){.ts_ms = 3000, .action = "verify",
                                     .from_state = "dispatched", .who = "supervisor-1"};
    assert_int_equal(gw_store_workorder_update(f->store, &wo, &h), EST_OK);
    wo.state = "open";
    int64_t id3 = 0;
    assert_int_equal(gw_store_workorder_create(f->store, &wo, "system", NULL, &id3, &existing),
                     EST_OK);
    assert_false(existing);
    assert_true(id3 != id1);
}

/* ---- meta and estate-ctl requests ---- */

struct ctl_ctx {
    struct gw_store *store;
    int handled;
};

static bool handle_ctl(void *ctx, const struct gw_store_ctl_request *req)
{
    struct ctl_ctx *c = ctx;
    assert_string_equal(req->verb, "occupancy");
    assert_int_equal(gw_store_ctl_finish(c->store, req->id, "{\"ok\":true}", 50), EST_OK);
    c->handled++;
    return true;
}

static void test_meta_and_ctl_requests(void **state)
{
    struct fixture *f = *state;
    char *value = NULL;
    assert_int_equal(gw_store_meta_get(f->store, "absent", &value), EST_ERR_NOTFOUND);
    assert_int_equal(gw_store_meta_set(f->store, "k", "1"), EST_OK);
    assert_int_equal(gw_store_meta_set(f->store, "k", "2"), EST_OK);
    assert_int_equal(gw_store_meta_get(f->store, "k", &value), EST_OK);
    assert_string_equal(value, "2");
    free(value);

    struct gw_store *ctl = NULL;
    assert_int_equal(gw_store_open(f->data_dir, false, &ctl, NULL, 0), EST_OK);
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(gw_store_ctl_submit(ctl, "occupancy", "{\"unit\":\"3-1201\"}", 10, &id1),
                     EST_OK);
    assert_int_equal(gw_store_ctl_submit(ctl, "occupancy", NULL, 11, &id2), EST_OK);
    bool done = true;
    char *result = NULL;
    assert_int_equal(gw_store_ctl_result(ctl, id1, &done, &result), EST_OK);
    assert_false(done);

    struct ctl_ctx c = {f->store, 0};
    assert_int_equal(gw_store_ctl_take_pending(f->store, handle_ctl, &c), EST_OK);
    assert_int_equal(c.handled, 2);
    c.handled = 0;
    assert_int_equal(gw_store_ctl_take_pending(f->store, handle_ctl, &c), EST_OK);
    assert_int_equal(c.handled, 0);

    assert_int_equal(gw_store_ctl_result(ctl, id1, &done, &result), EST_OK);
    assert_true(done);
    assert_string_equal(result, "{\"ok\":true}");
    free(result);
    assert_int_equal(gw_store_ctl_finish(f->store, id1, "{}", 60), EST_ERR_NOTFOUND);
    assert_int_equal(gw_store_ctl_prune(f->store, 100), EST_OK);
    assert_int_equal(gw_store_ctl_result(ctl, id1, &done, &result), EST_ERR_NOTFOUND);
    assert_int_equal(gw_store_close(ctl), EST_OK);
}

/* Rows added one meter at a time, 1 s apart, values_json NULL. */
static void add_plain_readings(struct gw_store *store, int64_t rid, int64_t first_ts, int count)
{
    struct gw_store_reading rows[16];
    assert_true(count <= 16);
    for (int i = 0; i < count; i++) {
        rows[i] = (struct gw_store_reading){.meter_rid = rid, .ts_ms = first_ts + i * 1000LL,
                                            .quality = GW_STORE_GOOD};
        gw_store_values_clear(&rows[i].values);
        rows[i].values.energy_import_kwh = (double)(first_ts + i * 1000LL) / 1000.0;
    }
    assert_int_equal(gw_store_add_readings(store, rows, (size_t)count), EST_OK);
}

static int64_t raw_count(struct fixture *f, const char *sql)
{
    sqlite3 *db = raw_open(f);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* History and latest see indexed rows and the not yet indexed tail alike,
 * in time order, with LIMIT across the boundary. */
static void test_readings_index_and_tail(void **state)
{
    struct fixture *f = *state;
    struct test_config t;
    make_config(&t);
    int64_t rids[3];
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 1000, rids), EST_OK);
    add_plain_readings(f->store, rids[0], 1000, 5);  /* 1000..5000 */
    add_plain_readings(f->store, rids[1], 1000, 3);
    assert_int_equal(gw_store_index_readings(f->store), EST_OK);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings_index"), 8);
    assert_int_equal(raw_count(f, "SELECT upto FROM readings_indexed"), 8);
    add_plain_readings(f->store, rids[0], 6000, 3);  /* 6000..8000, the tail */
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings_index"), 8);

    struct reading_seen seen = {0};
    assert_int_equal(gw_store_readings_history(f->store, rids[0], 0, 100000, 0, collect_reading,
                                               &seen),
                     EST_OK);
    assert_int_equal(seen.count, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(seen.ts[i], 1000 + i * 1000);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_readings_history(f->store, rids[0], 4000, 100000, 3,
                                               collect_reading, &seen),
                     EST_OK);
    assert_int_equal(seen.count, 3);
    assert_int_equal(seen.ts[0], 4000);
    assert_int_equal(seen.ts[1], 5000);
    assert_int_equal(seen.ts[2], 6000);
    assert_true(fabs(seen.import_kwh[2] - 6.0) < 1e-9);

    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_readings_latest(f->store, collect_reading, &seen), EST_OK);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.ts[0], 8000); /* from the tail */
    assert_int_equal(seen.ts[1], 3000); /* from the index */

    /* A read-only connection sees the same. */
    struct gw_store *ro = NULL;
    assert_int_equal(gw_store_open(f->data_dir, true, &ro, NULL, 0), EST_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_readings_history(ro, rids[0], 5000, 100000, 0, collect_reading,
                                               &seen),
                     EST_OK);
    assert_int_equal(seen.count, 4);
    assert_int_equal(gw_store_index_readings(ro), EST_ERR_PERM);
    assert_int_equal(gw_store_close(ro), EST_OK);

    /* Indexing the tail changes no answer; a rolled-back batch is not indexed. */
    assert_int_equal(gw_store_index_readings(f->store), EST_OK);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings_index"), 11);
    assert_int_equal(gw_store_begin(f->store), EST_OK);
    add_plain_readings(f->store, rids[1], 9000, 2);
    assert_int_equal(gw_store_rollback(f->store), EST_OK);
    add_plain_readings(f->store, rids[1], 9000, 1);
    assert_int_equal(gw_store_index_readings(f->store), EST_OK);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings_index"), 12);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings r WHERE NOT EXISTS (SELECT 1 "
                                  "FROM readings_index i WHERE i.row = r.rowid AND i.meter = "
                                  "r.meter AND i.ts_ms = r.ts_ms)"),
                     0);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(gw_store_readings_history(f->store, rids[0], 0, 100000, 0, collect_reading,
                                               &seen),
                     EST_OK);
    assert_int_equal(seen.count, 8);
    assert_int_equal(seen.ts[7], 8000);
}

/* A version-1 database (readings indexed by an SQL index) is migrated:
 * its readings end up in readings_index and stay queryable. */
static void test_migration_2_indexes_existing_readings(void **state)
{
    struct fixture *f = *state;
    struct test_config t;
    make_config(&t);
    int64_t rids[3];
    assert_int_equal(gw_store_sync_inventory(f->store, &t.config, 1000, rids), EST_OK);
    assert_int_equal(gw_store_close(f->store), EST_OK);
    f->store = NULL;
    sqlite3 *db = raw_open(f);
    char sql[768];
    snprintf(sql, sizeof sql,
             "DROP TRIGGER readings_unindex; DROP TABLE readings_index;"
             " DROP TABLE readings_indexed; DROP TABLE command_ids; DROP TABLE notifications;"
             " ALTER TABLE meters DROP COLUMN address;"
             " ALTER TABLE incidents DROP COLUMN acked_by; ALTER TABLE incidents DROP COLUMN acked_ms;"
             " CREATE INDEX readings_meter_ts ON readings(meter, ts_ms);"
             " INSERT INTO readings(meter, ts_ms, quality) VALUES (%lld, 2000, 0), (%lld, 1000, 0),"
             " (%lld, 1500, 0); PRAGMA user_version = 1;",
             (long long)rids[0], (long long)rids[0], (long long)rids[1]);
    assert_int_equal(raw_exec(db, sql), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(gw_store_open(f->data_dir, false, &f->store, NULL, 0), EST_OK);
    assert_int_equal(raw_count(f, "PRAGMA user_version"), GW_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM readings_index"), 3);
    assert_int_equal(raw_count(f, "SELECT upto FROM readings_indexed"), 3);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM sqlite_master WHERE name = "
                                  "'readings_meter_ts'"),
                     0);
    struct reading_seen seen = {0};
    assert_int_equal(gw_store_readings_history(f->store, rids[0], 0, 100000, 0, collect_reading,
                                               &seen),
                     EST_OK);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.ts[0], 1000);
    assert_int_equal(seen.ts[1], 2000);
}

static void test_command_ids_answer_once_within_window(void **state)
{
    struct fixture *f = *state;
    char *result = NULL;
    assert_int_equal(gw_store_command_id_result(f->store, "li", "valve", "r1", 0, &result), EST_OK);
    assert_null(result);
    assert_int_equal(gw_store_command_id_put(f->store, "li", "valve", "r1", "{\"ok\":true}", 1000),
                     EST_OK);
    assert_int_equal(gw_store_command_id_result(f->store, "li", "valve", "r1", 500, &result), EST_OK);
    assert_string_equal(result, "{\"ok\":true}");
    free(result);
    /* Another user, another verb, or outside the window: not the same request. */
    assert_int_equal(gw_store_command_id_result(f->store, "wang", "valve", "r1", 0, &result), EST_OK);
    assert_null(result);
    assert_int_equal(gw_store_command_id_result(f->store, "li", "occupancy", "r1", 0, &result),
                     EST_OK);
    assert_null(result);
    assert_int_equal(gw_store_command_id_result(f->store, "li", "valve", "r1", 1001, &result), EST_OK);
    assert_null(result);
    /* Pruning keeps the newest `keep` and nothing older than the cut-off. */
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%d", i);
        assert_int_equal(gw_store_command_id_put(f->store, "li", "patrol-checkin", id, "{}",
                                                 2000 + i),
                         EST_OK);
    }
    assert_int_equal(gw_store_command_id_prune(f->store, 1500, 3), EST_OK);
    assert_int_equal(raw_count(f, "SELECT count(*) FROM command_ids"), 3);
    assert_int_equal(raw_count(f, "SELECT min(created_ms) FROM command_ids"), 2002);
}

/* ---- WAL checkpoints ---- */

static void test_checkpoints_counted_and_timed(void **state)
{
    struct fixture *f = *state;
    struct gw_store_checkpoint_stats ck;
    gw_store_checkpoint_stats(f->store, &ck);
    assert_int_equal(ck.checkpoints, 1); /* the one at open */
    int64_t opened_ck_ms = ck.last_checkpoint_ms;
    assert_true(opened_ck_ms > 0 && opened_ck_ms <= est_now_ms());

    /* 16 KiB messages, one transaction each: the WAL passes 1000 pages
     * (4 KiB) after about 250 of them, then the store checkpoints. SQLite
     * calls the store after a statement that ends with SQLITE_DONE (the
     * COMMIT here; an INSERT ... RETURNING reset after its row does not). */
    enum { PAYLOAD = 16384, MESSAGES = 400 };
    char *payload = malloc(PAYLOAD);
    assert_non_null(payload);
    memset(payload, 'x', PAYLOAD);
    int64_t before_ms = est_now_ms(), seq = 0;
    struct gw_store_outbox_msg msg = {.topic = "estate/s/g/x", .payload = payload,
                                      .payload_len = PAYLOAD, .qos = 1, .is_event = true};
    assert_int_equal(gw_store_begin(f->store), EST_OK);
    assert_int_equal(gw_store_outbox_add(f->store, &msg, &seq), EST_OK);
    assert_int_equal(gw_store_commit(f->store), EST_OK);
    gw_store_checkpoint_stats(f->store, &ck);
    assert_int_equal(ck.checkpoints, 1);
    assert_true(ck.wal_pages > 0);
    for (int i = 1; i < MESSAGES; i++) {
        assert_int_equal(gw_store_begin(f->store), EST_OK);
        assert_int_equal(gw_store_outbox_add(f->store, &msg, &seq), EST_OK);
        assert_int_equal(gw_store_commit(f->store), EST_OK);
    }
    free(payload);
    gw_store_checkpoint_stats(f->store, &ck);
    assert_true(ck.checkpoints >= 2);
    assert_true(ck.last_checkpoint_ms >= before_ms && ck.last_checkpoint_ms <= est_now_ms());
    assert_true(ck.wal_pages < 1000 + PAYLOAD / 4096 + 2);

    /* Making room truncates the WAL: counted, nothing left in it. */
    uint64_t ran = ck.checkpoints;
    assert_int_equal(gw_store_make_room(f->store), EST_OK);
    gw_store_checkpoint_stats(f->store, &ck);
    assert_int_equal(ck.checkpoints, ran + 1);
    assert_int_equal(ck.wal_pages, 0);

    /* A read-only connection checkpoints nothing. */
    struct gw_store *ro = NULL;
    char err[256];
    assert_int_equal(gw_store_open(f->data_dir, true, &ro, err, sizeof err), EST_OK);
    gw_store_checkpoint_stats(ro, &ck);
    assert_int_equal(ck.checkpoints, 0);
    assert_int_equal(ck.last_checkpoint_ms, 0);
    gw_store_close(ro);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_open_creates_private_file_and_schema),
        T(test_reopen_migrates_once_and_refuses_newer),
        T(test_inventory_sync_keeps_db_occupancy),
        T(test_readings_batch_latest_history),
        T(test_readings_index_and_tail),
        T(test_migration_2_indexes_existing_readings),
        T(test_prune_keeps_one_per_hour),
        T(test_incident_open_is_idempotent),
        T(test_outbox_order_delete_trim),
        T(test_patrol_append_verify_intact),
        T(test_patrol_triggers_refuse_update_delete),
        T(test_tamper_edit_named),
        T(test_tamper_delete_named),
        T(test_tamper_insert_named),
        T(test_tamper_insert_at_end_named),
        T(test_truncation_below_anchor_detected),
        T(test_workorder_create_idempotent_with_history),
        T(test_meta_and_ctl_requests),
        T(test_command_ids_answer_once_within_window),
        T(test_checkpoints_counted_and_timed),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
