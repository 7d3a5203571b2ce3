/* config.h - the gateway's configuration as plain structs, loaded in one
 * place (config.c) from a libconfig file: defaults, parse, cross-checks.
 * Every error is reported as "FILE:LINE: message". Used by estate-gw and
 * estate-ctl; the rest of the gateway never touches libconfig. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "drivers.h"
#include "rules.h"

enum gw_language { GW_LANG_ZH_CN, GW_LANG_EN };
enum gw_log_level { GW_LOG_ERROR, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

struct gw_gateway_config {
    char *id;          /* default "gw1" */
    char *site;        /* default "site" */
    char *data_dir;    /* default "/var/lib/estate-gw" */
    char *models_dir;  /* site device models, searched before the shipped ones; NULL = none */
    char *timezone;    /* an est_tz name (IANA or "+08:00"); default "Asia/Shanghai".
                          Local times via est_tz.h: the offset changes with DST. */
    enum gw_log_level log_level;
    enum gw_language language; /* default zh-CN */
    int integrity_check_s;     /* full database check every N s; 0 = never; default 3600 */
    char *backup_dir;          /* daily backups; NULL = <data_dir>/backups */
    int backup_at_min;         /* daily backup at this site time (minutes after midnight); 03:30 */
    int backup_keep;           /* daily backups kept (older ones deleted); 0 = none taken; 14 */
};

struct gw_mqtt_config {
    char *uri;           /* tcp://host:port or ssl://host:port; default tcp://127.0.0.1:1883 */
    char *client_id;     /* default "estate-gw-<id>" */
    char *username;      /* NULL = none */
    char *password_file; /* password is read from this file; NULL = none */
    char *ca_file;
    char *cert_file;
    char *key_file;
    char *topic_prefix;  /* default "estate/<site>/<id>" */
    int qos_readings;    /* default 0 */
    int qos_events;      /* default 1 */
    double outbox_limit_mb; /* readings kept while offline, MB (fractions allowed); default 64 */
    int keepalive_s;     /* default 15; 2x: the silent-link bound */
    char *command_roles; /* roles whose users may send commands over MQTT (comma-separated);
                          * NULL = every role */
    bool commands_by_account; /* commands only on P/cmd/by/<account>/<verb>, acting as the
                               * gateway user named like the broker account (the broker's
                               * ACL lets each account write only its own topics) */
};

/* GW_BUS_RTU_OVER_TCP: RTU frames through a serial-to-Ethernet converter in
 * transparent mode (host, port; the serial settings set the timing). */
enum gw_bus_type { GW_BUS_TCP, GW_BUS_RTU, GW_BUS_RTU_OVER_TCP };

struct gw_bus_config {
    char *name;
    enum gw_bus_type type;
    char *host;             /* tcp, rtu_over_tcp */
    int port;               /* tcp, rtu_over_tcp, default 502 */
    char *device;           /* rtu */
    int baud;               /* rtu, rtu_over_tcp, default 9600 */
    char parity;            /* 'N','E','O' default 'N' */
    int data_bits;          /* default 8 */
    int stop_bits;          /* default 1 */
    int timeout_ms;         /* 0 = derived */
    int retries;            /* default 1 extra try */
    int poll_interval_ms;   /* default 1000; devices may override */
    int slave_switch_delay_ms;
    int request_gap_ms;
    int pipeline_depth;     /* tcp: reads in flight at once; default 1 */
    enum drv_protocol protocol; /* default modbus; dlt645 and cjt188 need rtu or
                             * rtu_over_tcp, and default to 2400 8E1 */
    const char *file;       /* where it was defined (for messages): one of the
                             * config's file_names */
    int line;
};

enum gw_category {
    GW_CAT_MASTER, GW_CAT_BUILDING, GW_CAT_UNIT, GW_CAT_AMENITY, GW_CAT_LANDSCAPE,
    GW_CAT_SHOP, GW_CAT_PUBLIC_LIGHTING, GW_CAT_OFFICE
}; /* same order as enum rule_category */

struct gw_unit_config {
    char *id;        /* "3-1201" */
    char *building;
    bool vacant;     /* initial occupancy; the database wins at run time */
    const char *file; /* one of the config's file_names */
    int line;
};

/* Fields ordered by size: 10,000 of these are common. */
struct gw_meter_config {
    char *id;
    const struct drv_model *model;
    size_t bus;                      /* index into buses */
    char *building;                  /* NULL if none; defaults to its unit's building (then
                                      * it is the unit's string: building_from_unit) */
    char *location;                  /* human location text, NULL if none */
    char *parent_id;                 /* the parent's id as configured, NULL none */
    char *serial;                    /* inventory serial, NULL unknown */
    char *address;                   /* DL/T 645 / CJ/T 188 bus: the meter's address as
                                      * printed on it (12 / 14 digits); NULL on Modbus */
    const char *file;                /* one of the config's file_names */
    double rated_power_w;            /* 0 = model's */
    struct drv_device_options options;
    int slave;                       /* 1..247; 0 on a DL/T 645 or CJ/T 188 bus */
    enum drv_kind kind;              /* electricity or water, must match the model */
    enum gw_category category;
    int unit;                        /* index into units, -1 none */
    int parent;                      /* index into meters, -1 none */
    int poll_interval_ms;            /* 0 = bus's */
    int quiet_start_min, quiet_end_min; /* continuous_flow exemption window, -1 none */
    int line;
    bool valve;
    bool export_expected;            /* default model's */
    bool building_from_unit;         /* building belongs to units[unit]: not freed with the meter */
    uint8_t wire_address[8];         /* address as sent, low byte first (6 or 7 bytes used) */
};

struct gw_zone_config {
    char *name;      /* e.g. "1号楼 3层 烟感" */
    char *location;
    uint16_t address;/* wire address of its point register */
};

struct gw_panel_config {
    char *id;
    size_t bus;
    int slave;
    const struct drv_model *model;
    uint16_t nzones;
    struct gw_zone_config *zones;    /* nzones entries; names may be NULL */
    uint16_t *zone_addresses;        /* nzones entries, referenced by options */
    char *location;
    int poll_interval_ms;
    struct drv_device_options options;
    const char *file;                /* one of the config's file_names */
    int line;
};

struct gw_workorder_config {
    int arrive_within_s;     /* default 1200 */
    int resolve_within_s;    /* default 604800 */
    int unconfirmed_after_s; /* incidents no patrol confirmed within this go to handover; default 3600 */
    char **escalation_roles; /* e.g. "supervisor" */
    size_t nescalation_roles;
    char **escalation_contacts;
    size_t nescalation_contacts;
};

/* Who may read GET /metrics. */
enum gw_metrics_access { GW_METRICS_SIGNED_IN, GW_METRICS_PUBLIC, GW_METRICS_OFF };

struct gw_http_config {
    char *listen;     /* default "127.0.0.1:8080"; "" disables */
    char *users_file; /* console users; NULL = <data_dir>/users.conf */
    char *static_dir; /* console files; NULL = the http module's default
                       * (the installed console, else the source tree) */
    int session_ttl_s;/* default 43200 */
    bool require_private_users_file; /* default true: a users file others may read is an error */
    char *hosts;      /* names the console answers for (comma-separated); NULL =
                       * the listen address and the loopback names */
    enum gw_metrics_access metrics; /* http.metrics, default "signed_in" */
};

/* Who runs estate-ctl: Unix accounts mapped to gateway users. */
struct gw_ctl_config {
    char *unix_accounts; /* "account:user, account:user"; NULL = none mapped */
};


struct gw_retention_config {
    int raw_readings_days;   /* raw readings older than this are downsampled; default 30 */
    int patrol_days;         /* at least 730 */
};

/* Where alerts go besides MQTT: the notify section (sent by gateway/notify). */
enum gw_notify_type { GW_NOTIFY_WECOM, GW_NOTIFY_DINGTALK, GW_NOTIFY_FEISHU, GW_NOTIFY_HTTP,
                      GW_NOTIFY_SMTP };

/* One channel: a group robot, a templated HTTP call or an SMTP server.
 * Secrets are in files (readable by the owner only); the config holds their
 * names, never the secrets. */
struct gw_notify_channel_config {
    char *name;
    enum gw_notify_type type;
    char *url;              /* robot webhook without its key, http call, smtp[s]://host:port */
    char *key_file;         /* wecom key, dingtalk access_token, feishu hook token */
    char *sign_secret_file; /* dingtalk: signs each call; NULL = unsigned */
    char *method;           /* http: default "POST" */
    char **headers;         /* http: "Name: value" templates */
    size_t nheaders;
    char *body;             /* http: body template; NULL = empty */
    char *from;             /* smtp: sender address */
    char *username;         /* smtp: login; NULL = none */
    char *password_file;    /* smtp: password; http: the {secret} placeholder */
    char *ca_file;          /* TLS trust; NULL = the system's */
    bool tls;               /* smtp: STARTTLS required on smtp:// (smtps:// always is); true */
    int rate_per_min;       /* messages a minute, more wait and are batched; 0 = no limit;
                             * robots default 20 (WeCom's limit) */
    int timeout_ms;         /* one call; default 10000 */
    const char *file;       /* one of the config's file_names */
    int line;
};

/* A person routes name: the on-duty engineer (the "to" of the last shift
 * handover) is found here by name. */
struct gw_notify_person_config {
    char *name;             /* as written in the handover ("li.gong") */
    char *mobile;           /* @-mentioned on robots, {to} for http; NULL none */
    char *email;            /* smtp; NULL none */
};

/* One escalation step: an open major or critical incident nobody
 * acknowledged (a patrol check-in confirming or disputing it) after_s
 * after it was raised goes to these recipients, once. */
struct gw_notify_level_config {
    int after_s;
    char **to;
    size_t nto;
};

/* One route: which incidents go to which channel and whom. An empty list
 * matches everything. */
struct gw_notify_route_config {
    char *channel_name;
    size_t channel;         /* index into notify.channels */
    char **rules;           /* rule names */
    size_t nrules;
    char **severities;      /* info, minor, major, critical */
    size_t nseverities;
    char **buildings;
    size_t nbuildings;
    char **categories;      /* the meter's category (master, unit, ...) or "fire" */
    size_t ncategories;
    char **to;              /* mobiles to @-mention, e-mail addresses, SMS numbers */
    size_t nto;
    char **workorder_events; /* created, breached, return_visit: then the route is for work
                              * orders (buildings filter them), not incidents */
    size_t nworkorder_events;
    int quiet_start_min, quiet_end_min; /* site time, held until the end; -1 none;
                                         * never holds a critical incident */
    bool cleared;           /* also when the incident clears; default true */
    bool on_duty;           /* also the on-duty person (notify.people); default false */
    struct gw_notify_level_config *escalation; /* in after_s order */
    size_t nescalation;
    enum gw_language language; /* default gateway.language */
    const char *file;
    int line;
};

struct gw_notify_config {
    struct gw_notify_channel_config *channels;
    size_t nchannels;
    struct gw_notify_route_config *routes;
    size_t nroutes;
    struct gw_notify_person_config *people;
    size_t npeople;
    char *console_url;      /* the link in each message ("<url>/#/incidents/<id>"); NULL none */
    int retry_max_s;        /* longest wait between two attempts; default 300 */
    int failing_after_s;    /* a channel failing this long degrades the health; default 600 */
};

/* The placeholders an http channel's templates may use, NULL-terminated:
 * {text} {severity} {rule} {where} {since} {link} {incident} {to} {secret}. */
extern const char *const gw_notify_placeholders[];

struct gw_config {
    char *path;
    struct gw_gateway_config gateway;
    struct gw_mqtt_config mqtt;
    struct gw_bus_config *buses;
    size_t nbuses;
    struct gw_unit_config *units;
    size_t nunits;
    struct gw_meter_config *meters;
    size_t nmeters;
    struct gw_panel_config *panels;
    size_t npanels;
    struct rule_config rules;
    struct gw_workorder_config workorders;
    struct gw_http_config http;
    struct gw_retention_config retention;
    struct gw_ctl_config ctl;
    struct gw_notify_config notify;
    /* Every file name entries were defined in (config, @include'd files,
     * meters CSVs, override labels), each once: the entries' file fields
     * point here. */
    char **file_names;
    size_t nfile_names, file_names_cap;
};

/* Errors collected while loading: each one "FILE:LINE: message". */
/* The gateway user a Unix account acts as (ctl.unix_accounts), copied into
 * out (at most outlen bytes with the NUL): true when mapped. */
bool gw_config_ctl_account_user(const struct gw_config *config, const char *account, char *out,
                                size_t outlen);

struct gw_config_errors {
    char **messages;
    size_t count;
    size_t cap;    /* room in messages */
};

/* Loads path, applies overrides ("PATH=VALUE", e.g. "mqtt.uri=tcp://..."),
 * checks everything. On success returns EST_OK and *out; on failure returns
 * EST_ERR_INVALID (EST_ERR_NOMEM when memory ran out) with at least one
 * message appended to errors (start it zeroed; the caller frees it with
 * gw_config_errors_free) and *out NULL. All errors found are reported, not
 * only the first.
 *
 * Relative file and directory names in the file (and in overrides) are
 * resolved against the config file's directory and stored resolved; files
 * the config names (password_file, TLS files, users_file, meters_csv) must
 * be readable now. @include names are relative to that directory too.
 *
 * Overrides are applied to the parsed file before the checks. PATH is dotted;
 * list elements by index ("buses.0.port", "buses.[0].port", "buses[0].port")
 * or by their id/name ("meters.W-1-102.valve"). VALUE takes the type of the
 * setting it replaces; a missing key (and missing groups on the way) is
 * created and typed by the key it names. Errors caused by an override read
 * "--set PATH=VALUE: message". */
est_err gw_config_load(const char *path, const char *const *overrides, size_t noverrides,
                       struct gw_config **out, struct gw_config_errors *errors);
void gw_config_free(struct gw_config *config);
/* Frees every meter: meters NULL, nmeters 0. */
void gw_config_clear_meters(struct gw_config *config);
void gw_config_errors_free(struct gw_config_errors *errors);
/* Writes each message on its own line to out. */
/* Every key the loader accepts, one "path<TAB>value words" line each, in
 * file order (list entries as "buses[].name"): the manual's key list. */
void gw_config_print_keys(FILE *out);
void gw_config_errors_print(const struct gw_config_errors *errors, FILE *out);

/* Lookups: index or -1. */
int gw_config_meter_index(const struct gw_config *config, const char *id);
int gw_config_unit_index(const struct gw_config *config, const char *id);
int gw_config_panel_index(const struct gw_config *config, const char *id);

const char *gw_category_name(enum gw_category c);  /* "master", "public_lighting" ... */
int gw_category_from_name(const char *name);        /* -1 if unknown */

/* Reads and validates a meters CSV (same columns as the meters list; the
 * header row names them; RFC 4180 quoting; an empty cell = not given). Used
 * for meters_csv and estate-ctl inventory import: all or nothing, errors
 * name CSVFILE:LINE; the new rows are checked together with the meters
 * already in config (duplicate ids and slaves, parents, loops). Appends to
 * config->meters on success; leaves config unchanged on any error. csv_path
 * is used as given (not relative to the config file). */
est_err gw_config_load_meters_csv(struct gw_config *config, const char *csv_path,
                                  struct gw_config_errors *errors);

/* The rest of the part's interface: the log and the meters CSV reader. */
#include "csv.h"
#include "log.h"

#endif
