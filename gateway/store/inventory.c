/* inventory.c - the meters and units tables: syncing them with the config,
 * meter status and serial, detected replacements, and occupancy of units
 * (set at run time, seeded from the config). */
#include "store_internal.h"

#include <string.h>

/* Columns of a listed meter, in the order of enum meter_col. */
#define METER_COLS                                                                          \
    "rid, id, kind, category, unit, building, location, driver, bus, slave, serial,"       \
    " parent, valve, install_ms, status, last_good_ms, last_values_json, removed, address"
enum meter_col {
    METER_COL_RID,
    METER_COL_ID,
    METER_COL_KIND,
    METER_COL_CATEGORY,
    METER_COL_UNIT,
    METER_COL_BUILDING,
    METER_COL_LOCATION,
    METER_COL_DRIVER,
    METER_COL_BUS,
    METER_COL_SLAVE,
    METER_COL_SERIAL,
    METER_COL_PARENT,
    METER_COL_VALVE,
    METER_COL_INSTALL_MS,
    METER_COL_STATUS,
    METER_COL_LAST_GOOD_MS,
    METER_COL_LAST_VALUES_JSON,
    METER_COL_REMOVED,
    METER_COL_ADDRESS,
};

/* Columns of a listed replacement, in the order of enum replacement_col. */
#define REPLACEMENT_COLS                                                                 \
    "m.id, r.ts_ms, r.old_serial, r.old_last_reading_json, r.new_serial,"               \
    " r.new_first_reading_json"
enum replacement_col {
    REPLACEMENT_COL_METER_ID,
    REPLACEMENT_COL_TS_MS,
    REPLACEMENT_COL_OLD_SERIAL,
    REPLACEMENT_COL_OLD_LAST_READING_JSON,
    REPLACEMENT_COL_NEW_SERIAL,
    REPLACEMENT_COL_NEW_FIRST_READING_JSON,
};

/* Columns of a listed unit, in the order of enum unit_col. */
#define UNIT_COLS "id, building, occupancy, occupancy_changed_ms, occupancy_by, removed"
enum unit_col {
    UNIT_COL_ID,
    UNIT_COL_BUILDING,
    UNIT_COL_OCCUPANCY,
    UNIT_COL_OCCUPANCY_CHANGED_MS,
    UNIT_COL_OCCUPANCY_BY,
    UNIT_COL_REMOVED,
};

/* The one column of S_UNIT_GET_OCCUPANCY. */
enum { OCCUPANCY_COL = 0 };

static const struct store__sql inventory_sql[] = {
    {S_METERS_MARK_REMOVED, "UPDATE meters SET removed = 1"},
    {S_UNITS_MARK_REMOVED, "UPDATE units SET removed = 1"},
    {S_METER_UPSERT,
     "INSERT INTO meters(id, kind, category, unit, building, location, driver, bus, slave,"
     " serial, config_serial, parent, valve, install_ms, status, removed, address)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, 'ok', 0, ?14)"
     " ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, category = excluded.category,"
     " unit = excluded.unit, building = excluded.building, location = excluded.location,"
     " driver = excluded.driver, bus = excluded.bus, slave = excluded.slave,"
     " serial = CASE WHEN excluded.config_serial IS NOT meters.config_serial"
     "  THEN excluded.config_serial ELSE meters.serial END,"
     " config_serial = excluded.config_serial, parent = excluded.parent,"
     " valve = excluded.valve, removed = 0, address = excluded.address"
     " RETURNING rid"},
    {S_UNIT_UPSERT,
     "INSERT INTO units(id, building, occupancy, occupancy_changed_ms, occupancy_by, removed)"
     " VALUES (?1, ?2, ?3, ?4, 'config', 0)"
     " ON CONFLICT(id) DO UPDATE SET building = excluded.building, removed = 0"},
    {S_METER_ROWID, "SELECT rid FROM meters WHERE id = ?1"},
    {S_METER_SET_STATUS, "UPDATE meters SET status = ?2 WHERE id = ?1"},
    {S_METER_SET_SERIAL, "UPDATE meters SET serial = ?2 WHERE id = ?1"},
    {S_METERS_LIST, "SELECT " METER_COLS " FROM meters ORDER BY id"},
    {S_REPLACEMENT_INSERT,
     "INSERT INTO replacements(meter, ts_ms, old_serial, old_last_reading_json, new_serial,"
     " new_first_reading_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
    {S_REPLACEMENTS_LIST,
     "SELECT " REPLACEMENT_COLS " FROM replacements r JOIN meters m ON m.rid = r.meter"
     " WHERE r.ts_ms >= ?1 AND r.ts_ms < ?2 AND (?3 IS NULL OR m.id = ?3)"
     " ORDER BY r.ts_ms, r.id"},
    {S_UNIT_GET_OCCUPANCY, "SELECT occupancy FROM units WHERE id = ?1"},
    {S_UNIT_SET_OCCUPANCY,
     "UPDATE units SET occupancy = ?2, occupancy_changed_ms = ?3, occupancy_by = ?4"
     " WHERE id = ?1"},
    {S_UNITS_LIST, "SELECT " UNIT_COLS " FROM units ORDER BY id"},
};
const struct store__sql_table store__inventory_sql = STORE__SQL_TABLE(inventory_sql);

static const char *const meter_status_names[] = {
    [GW_STORE_METER_OK] = "ok",
    [GW_STORE_METER_OFFLINE] = "offline",
    [GW_STORE_METER_DAMAGED] = "damaged",
    [GW_STORE_METER_REPLACED] = "replaced",
};

const char *gw_store_meter_status_name(enum gw_store_meter_status status)
{
    if ((unsigned)status >= sizeof meter_status_names / sizeof meter_status_names[0])
        return NULL;
    return meter_status_names[status];
}

/* Same order as enum gw_category (config.h). Kept here rather than calling
 * gw_category_name() so the store does not depend on the config loader. */
static const char *const category_names[] = {
    "master", "building", "unit", "amenity", "landscape", "shop", "public_lighting", "office",
};

static const char *category_name(enum gw_category c)
{
    if ((unsigned)c >= sizeof category_names / sizeof category_names[0])
        return "unknown";
    return category_names[c];
}

static const char *kind_name(enum drv_kind kind)
{
    switch (kind) {
    case DRV_KIND_ELECTRICITY: return "electricity";
    case DRV_KIND_WATER: return "water";
    case DRV_KIND_FIRE_PANEL: return "fire_panel";
    }
    return "unknown";
}

/* The occupancy column's text for vacant, and back. */
static const char *occupancy_text(bool vacant)
{
    return vacant ? "vacant" : "occupied";
}

static bool occupancy_is_vacant(const char *occupancy)
{
    return occupancy != NULL && strcmp(occupancy, "vacant") == 0;
}

static est_err sync_unit(struct gw_store *s, const struct gw_unit_config *u, int64_t now_ms)
{
    if (u->id == NULL)
        return store__fail(s, EST_ERR_INVALID, "a unit without an id");
    sqlite3_stmt *q = store__stmt(s, S_UNIT_UPSERT);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, u->id, &rc);
    store__bind_text(q, 2, u->building, &rc);
    store__bind_text(q, 3, occupancy_text(u->vacant), &rc);
    store__bind_opt(q, 4, now_ms, &rc);
    return store__exec(s, q, rc);
}

static est_err sync_meter(struct gw_store *s, const struct gw_config *c, size_t i, int64_t now_ms,
                          int64_t *rid)
{
    const struct gw_meter_config *m = &c->meters[i];
    if (m->id == NULL)
        return store__fail(s, EST_ERR_INVALID, "a meter without an id");
    const struct gw_unit_config *unit =
        m->unit >= 0 && (size_t)m->unit < c->nunits ? &c->units[m->unit] : NULL;
    const char *building = m->building != NULL ? m->building : unit != NULL ? unit->building : NULL;
    sqlite3_stmt *q = store__stmt(s, S_METER_UPSERT);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, m->id, &rc);
    store__bind_text(q, 2, kind_name(m->kind), &rc);
    store__bind_text(q, 3, category_name(m->category), &rc);
    store__bind_text(q, 4, unit != NULL ? unit->id : NULL, &rc);
    store__bind_text(q, 5, building, &rc);
    store__bind_text(q, 6, m->location, &rc);
    store__bind_text(q, 7, m->model != NULL ? m->model->name : NULL, &rc);
    store__bind_text(q, 8, m->bus < c->nbuses ? c->buses[m->bus].name : NULL, &rc);
    store__bind_int(q, 9, m->slave, &rc);
    store__bind_text(q, 10, m->serial, &rc);
    store__bind_text(q, 11, m->parent >= 0 && (size_t)m->parent < c->nmeters
                                ? c->meters[m->parent].id
                                : m->parent_id, &rc);
    store__bind_int(q, 12, m->valve ? 1 : 0, &rc);
    store__bind_int(q, 13, now_ms, &rc);
    store__bind_text(q, 14, m->address, &rc);
    int64_t id = 0;
    est_err err = store__query_int(s, q, rc, &id);
    if (err == EST_OK && rid != NULL)
        *rid = id;
    return err;
}

est_err gw_store_sync_inventory(struct gw_store *store, const struct gw_config *config,
                                int64_t now_ms, int64_t *meter_rids)
{
    if (store == NULL || config == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    err = store__exec(store, store__stmt(store, S_METERS_MARK_REMOVED), SQLITE_OK);
    if (err == EST_OK)
        err = store__exec(store, store__stmt(store, S_UNITS_MARK_REMOVED), SQLITE_OK);
    for (size_t i = 0; err == EST_OK && i < config->nunits; i++)
        err = sync_unit(store, &config->units[i], now_ms);
    for (size_t i = 0; err == EST_OK && i < config->nmeters; i++)
        err = sync_meter(store, config, i, now_ms, meter_rids != NULL ? &meter_rids[i] : NULL);
    return store__tx_end(store, began, err);
}

est_err gw_store_meter_rowid(struct gw_store *store, const char *meter_id, int64_t *rid)
{
    if (store == NULL || meter_id == NULL || rid == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_METER_ROWID);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, meter_id, &rc);
    est_err err = store__query_int(store, q, rc, rid);
    if (err == EST_ERR_NOTFOUND)
        store__fail(store, err, "unknown meter %s", meter_id);
    return err;
}

/* Runs an UPDATE keyed by meter id; EST_ERR_NOTFOUND when no row changed. */
static est_err update_meter(struct gw_store *s, enum store__stmt id, const char *meter_id,
                            const char *value)
{
    sqlite3_stmt *q = store__stmt(s, id);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, meter_id, &rc);
    store__bind_text(q, 2, value, &rc);
    return store__exec_one(s, q, rc, "unknown meter %s", meter_id);
}

est_err gw_store_set_meter_status(struct gw_store *store, const char *meter_id,
                                  enum gw_store_meter_status status)
{
    const char *name = gw_store_meter_status_name(status);
    if (store == NULL || meter_id == NULL || name == NULL)
        return EST_ERR_INVALID;
    return update_meter(store, S_METER_SET_STATUS, meter_id, name);
}

est_err gw_store_update_serial(struct gw_store *store, const char *meter_id, const char *serial)
{
    if (store == NULL || meter_id == NULL)
        return EST_ERR_INVALID;
    return update_meter(store, S_METER_SET_SERIAL, meter_id, serial);
}

est_err gw_store_record_replacement(struct gw_store *store, const struct gw_store_replacement *r)
{
    if (store == NULL || r == NULL || r->meter_id == NULL)
        return EST_ERR_INVALID;
    bool began;
    est_err err = store__tx_begin(store, &began);
    if (err != EST_OK)
        return err;
    int64_t rid = 0;
    err = gw_store_meter_rowid(store, r->meter_id, &rid);
    if (err == EST_OK) {
        sqlite3_stmt *q = store__stmt(store, S_REPLACEMENT_INSERT);
        int rc = SQLITE_OK;
        store__bind_int(q, 1, rid, &rc);
        store__bind_int(q, 2, r->ts_ms, &rc);
        store__bind_text(q, 3, r->old_serial, &rc);
        store__bind_text(q, 4, r->old_last_reading_json, &rc);
        store__bind_text(q, 5, r->new_serial, &rc);
        store__bind_text(q, 6, r->new_first_reading_json, &rc);
        err = store__exec(store, q, rc);
    }
    if (err == EST_OK)
        err = update_meter(store, S_METER_SET_SERIAL, r->meter_id, r->new_serial);
    return store__tx_end(store, began, err);
}

/* A row of REPLACEMENT_COLS. */
static struct gw_store_replacement replacement_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_replacement){
        .meter_id = store__col_text(q, REPLACEMENT_COL_METER_ID),
        .ts_ms = store__col_int(q, REPLACEMENT_COL_TS_MS),
        .old_serial = store__col_text(q, REPLACEMENT_COL_OLD_SERIAL),
        .old_last_reading_json = store__col_text(q, REPLACEMENT_COL_OLD_LAST_READING_JSON),
        .new_serial = store__col_text(q, REPLACEMENT_COL_NEW_SERIAL),
        .new_first_reading_json = store__col_text(q, REPLACEMENT_COL_NEW_FIRST_READING_JSON),
    };
}

static bool replacement_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_replacement r = replacement_from_row(q);
    return l->fn.replacement(l->ctx, &r);
}

est_err gw_store_replacements_list(struct gw_store *store, const char *meter_id, int64_t from_ms,
                                   int64_t to_ms, gw_store_replacement_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_REPLACEMENTS_LIST);
    int rc = SQLITE_OK;
    store__bind_int(q, 1, from_ms, &rc);
    store__bind_int(q, 2, to_ms, &rc);
    store__bind_text(q, 3, meter_id, &rc);
    struct store__listing l = {.fn.replacement = fn, .ctx = ctx};
    return store__each_row(store, q, rc, replacement_row, &l, NULL);
}

/* A row of METER_COLS. */
static struct gw_store_meter meter_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_meter){
        .rid = store__col_int(q, METER_COL_RID),
        .id = store__col_text(q, METER_COL_ID),
        .kind = store__col_text(q, METER_COL_KIND),
        .category = store__col_text(q, METER_COL_CATEGORY),
        .unit = store__col_text(q, METER_COL_UNIT),
        .building = store__col_text(q, METER_COL_BUILDING),
        .location = store__col_text(q, METER_COL_LOCATION),
        .driver = store__col_text(q, METER_COL_DRIVER),
        .bus = store__col_text(q, METER_COL_BUS),
        .slave = (int)store__col_int(q, METER_COL_SLAVE),
        .serial = store__col_text(q, METER_COL_SERIAL),
        .parent = store__col_text(q, METER_COL_PARENT),
        .valve = store__col_int(q, METER_COL_VALVE) != 0,
        .install_ms = store__col_int(q, METER_COL_INSTALL_MS),
        .status = store__col_text(q, METER_COL_STATUS),
        .last_good_ms = store__col_int(q, METER_COL_LAST_GOOD_MS),
        .last_values_json = store__col_text(q, METER_COL_LAST_VALUES_JSON),
        .removed = store__col_int(q, METER_COL_REMOVED) != 0,
        .address = store__col_text(q, METER_COL_ADDRESS),
    };
}

static bool meter_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_meter m = meter_from_row(q);
    return l->fn.meter(l->ctx, &m);
}

est_err gw_store_meters_list(struct gw_store *store, gw_store_meter_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct store__listing l = {.fn.meter = fn, .ctx = ctx};
    return store__each_row(store, store__stmt(store, S_METERS_LIST), SQLITE_OK, meter_row, &l,
                           NULL);
}

est_err gw_store_get_occupancy(struct gw_store *store, const char *unit_id, bool *vacant)
{
    if (store == NULL || unit_id == NULL || vacant == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_UNIT_GET_OCCUPANCY);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, unit_id, &rc);
    est_err err = store__find_row(store, q, rc, "unknown unit %s", unit_id);
    if (err != EST_OK)
        return err;
    *vacant = occupancy_is_vacant(store__col_text(q, OCCUPANCY_COL));
    sqlite3_reset(q);
    return EST_OK;
}

est_err gw_store_set_occupancy(struct gw_store *store, const char *unit_id, bool vacant,
                               const char *who, int64_t ts_ms)
{
    if (store == NULL || unit_id == NULL)
        return EST_ERR_INVALID;
    sqlite3_stmt *q = store__stmt(store, S_UNIT_SET_OCCUPANCY);
    int rc = SQLITE_OK;
    store__bind_text(q, 1, unit_id, &rc);
    store__bind_text(q, 2, occupancy_text(vacant), &rc);
    store__bind_opt(q, 3, ts_ms, &rc);
    store__bind_text(q, 4, who, &rc);
    return store__exec_one(store, q, rc, "unknown unit %s", unit_id);
}

/* A row of UNIT_COLS. */
static struct gw_store_unit unit_from_row(sqlite3_stmt *q)
{
    return (struct gw_store_unit){
        .id = store__col_text(q, UNIT_COL_ID),
        .building = store__col_text(q, UNIT_COL_BUILDING),
        .vacant = occupancy_is_vacant(store__col_text(q, UNIT_COL_OCCUPANCY)),
        .occupancy_changed_ms = store__col_int(q, UNIT_COL_OCCUPANCY_CHANGED_MS),
        .occupancy_by = store__col_text(q, UNIT_COL_OCCUPANCY_BY),
        .removed = store__col_int(q, UNIT_COL_REMOVED) != 0,
    };
}

static bool unit_row(sqlite3_stmt *q, void *arg)
{
    const struct store__listing *l = arg;
    struct gw_store_unit u = unit_from_row(q);
    return l->fn.unit(l->ctx, &u);
}

est_err gw_store_units_list(struct gw_store *store, gw_store_unit_fn fn, void *ctx)
{
    if (store == NULL || fn == NULL)
        return EST_ERR_INVALID;
    struct store__listing l = {.fn.unit = fn, .ctx = ctx};
    return store__each_row(store, store__stmt(store, S_UNITS_LIST), SQLITE_OK, unit_row, &l, NULL);
}
