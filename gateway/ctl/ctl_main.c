/* ctl_main.c - estate-ctl, the operator's command line (SPEC "Programs"):
 * global options and the table of verbs (one file per verb group).
 *
 *   estate-ctl -c FILE [--set PATH=VALUE]... [--json] [--csv] [--user U] VERB ...
 *
 * Read-only verbs (inventory, readings, incidents, workorders, workorder
 * <id>, patrol log/verify, report, handover --preview) open the database
 * read-only. Verbs that change state while the daemon runs (workorder
 * actions, unit occupancy, handover, patrol checkin) are queued for the
 * daemon through the store's request table and answered by its core thread
 * within 10 s. The daemon decides who acts from the Unix account estate-ctl
 * reports (ctl.unix_accounts maps accounts to gateway users; root and the
 * gateway's account may name one with --user, else act as the site
 * administrator with role supervisor; other accounts are refused), and
 * refuses what that user's role may not do, as the console would. Two verbs write the database directly because they touch
 * nothing the daemon caches: "patrol anchor" (records the exported head)
 * and "inventory import" (validated all or nothing, one transaction).
 * "backup" copies the database read-only while the daemon runs; "restore"
 * replaces the file and refuses while anything has it open.
 *
 * Exit status: 0 success, 2 bad usage or bad config/input file, 1 runtime
 * failure (database, refused command, gateway not running, broken chain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define DEFAULT_CONFIG "/etc/estate-gw/estate-gw.conf"

static const struct ctl_verb verbs[] = {
    {"inventory", ctl_verb_inventory,
     "  inventory [--csv]                      meters with status and last good reading\n"
     "  inventory import FILE.csv              replace the meter list (validated, all or nothing)\n"},
    {"readings", ctl_verb_readings, "  readings [METER] [--since TS] [--limit N]\n"},
    {"incidents", ctl_verb_incidents, "  incidents [--all]\n"},
    {"incident", ctl_verb_incident, "  incident ID ack                        acknowledge an open alert (who and when are logged)\n"},
    {"workorders", ctl_verb_workorders, "  workorders [--state S[,S...]] [--all]\n"},
    {"workorder", ctl_verb_workorder,
     "  workorder ID                           one work order with its history\n"
     "  workorder ID ACTION [--note T] [--assignee A] [--verifier V] [--until TS|+Nh|+Nd]\n"
     "                      [--rating N]       ACTION: dispatch arrive complete verify cancel\n"
     "                                         close postpone note rating\n"
     "  workorder create --category C --description D (--unit U | --location L)\n"},
    {"patrol", ctl_verb_patrol,
     "  patrol log [--since SEQ] [--limit N] [--csv]\n"
     "  patrol verify [--broker]               check the hash chain (exit 1 when broken); --broker:\n"
     "                                         also against the head retained on the broker\n"
     "  patrol anchor [--to DESTINATION]       print and record the chain head\n"
     "  patrol checkin --location L --text T [--incident ID [--verdict confirm|dispute]]\n"},
    {"handover", ctl_verb_handover, "  handover --from A --to B [--note T] [--preview]\n"},
    {"report", ctl_verb_report,
     "  report [--from DAY] [--to DAY] [--csv]  consumption, balance, offline/replaced meters\n"},
    {"unit", ctl_verb_unit, "  unit ID occupancy vacant|occupied\n"},
    {"user", ctl_verb_user, "  user add|passwd|disable|enable|list ...\n"},
    {"scan", ctl_verb_scan,
     "  scan (--bus NAME | --device PATH | --host H [--port P] [--rtu-over-tcp])\n"
     "       [--baud N] [--parity N|E|O] [--stop-bits 1|2] [--ids 1-247] [--try-settings]\n"
     "       [--timeout-ms N] [--bus-name NAME] [--force-offline-bus] [--csv|--json]\n"
     "                                         find, identify and check the devices of a bus\n"
     "  scan (--bus NAME | --device PATH | --host H --port P) --protocol dlt645|cjt188\n"
     "       [--read-address | --addresses A[,A...]] [--baud N] [--parity N|E|O]\n"
     "       [--timeout-ms N] [--bus-name NAME] [--force-offline-bus] [--csv|--json]\n"
     "                                         DL/T 645 / CJ/T 188 line: the one meter's address\n"
     "                                         (broadcast), or which addresses answer\n"},
    {"backup", ctl_verb_backup,
     "  backup [DIR]                           online copy to DIR/estate-YYYYmmdd-HHMMSS.db (default\n"
     "                                         gateway.backup_dir, else data_dir/backups), verified\n"
     "                                         (exit 1 and the copy deleted if it does not verify)\n"},
    {"restore", ctl_verb_restore,
     "  restore FILE                           put a verified copy in place (gateway stopped)\n"},
    {"reload", ctl_verb_reload,
     "  reload                                 the running gateway loads its config again (exit 2\n"
     "                                         and the errors when it is refused; the old one stays)\n"},
};

static void usage(FILE *out)
{
    fputs("usage: estate-ctl -c FILE [--set PATH=VALUE]... [--json] [--csv] [--user USER] VERB ...\n"
          "verbs:\n",
          out);
    for (size_t i = 0; i < COUNT_OF(verbs); i++)
        fputs(verbs[i].usage, out);
    fputs("options: --json machine output, --csv CSV where supported, --help, --version\n"
          "exit: 0 ok, 2 bad usage or config, 1 failure\n",
          out);
}

/* estate-ctl's own global options (the verb's start at its name); false
 * when argv[*i] is none of them. --user counts only before the verb. */
static bool take_global(struct ctl *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0)
        c->json = true;
    else if (strcmp(a, "--csv") == 0)
        c->csv = true;
    else if (c->argc == 0 && strcmp(a, "--user") == 0 && *i + 1 < argc)
        c->user = argv[++*i];
    else
        return false;
    return true;
}

/* Splits argv into global options and the verb's arguments. Returns -1 to
 * go on, else the exit code. */
static int parse_global(int argc, char **argv, struct ctl *c)
{
    c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
    if (c->argv == NULL)
        return EST_EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        enum est_cli_take taken = est_cli_take(&c->common, argc, argv, &i);
        if (taken == EST_CLI_EXIT)
            return c->common.exit_code;
        if (taken == EST_CLI_NO_VALUE || (c->argc == 0 && strcmp(a, "--user") == 0 && i + 1 >= argc))
            return ctl_usage_error("%s needs a value", a);
        if (taken == EST_CLI_TAKEN || take_global(c, argc, argv, &i))
            continue;
        if (c->argc == 0 && a[0] == '-')
            return ctl_usage_error("unknown option '%s'", a);
        c->argv[c->argc++] = argv[i];
    }
    return -1;
}

static int load_config(struct ctl *c)
{
    c->config_path = c->common.config_path ? c->common.config_path : DEFAULT_CONFIG;
    struct gw_config_errors errors = {0};
    if (gw_config_load(c->config_path, c->common.sets, c->common.nsets, &c->config, &errors) !=
        EST_OK) {
        gw_config_errors_print(&errors, stderr);
        gw_config_errors_free(&errors);
        if (c->argc > 0 && strcmp(c->argv[0], "reload") == 0)
            fprintf(stderr, "estate-ctl: reload refused: %s does not load; nothing was sent and "
                            "the running gateway keeps its configuration\n", c->config_path);
        return EST_EXIT_USAGE;
    }
    return 0;
}

static int run_verb(struct ctl *c)
{
    for (size_t i = 0; i < COUNT_OF(verbs); i++)
        if (strcmp(c->argv[0], verbs[i].name) == 0)
            return verbs[i].handler(c);
    return ctl_usage_error("unknown verb '%s'", c->argv[0]);
}

int main(int argc, char **argv)
{
    struct ctl c = {.common = {.program = "estate-ctl", .usage = usage}};
    int rc = parse_global(argc, argv, &c);
    if (rc < 0 && c.argc == 0)
        rc = ctl_usage_error("no verb given");
    if (rc < 0)
        rc = load_config(&c);
    if (rc == 0 && c.config != NULL) {
        c.used = calloc((size_t)c.argc + 1, sizeof *c.used);
        rc = c.used ? run_verb(&c) : EST_EXIT_RUNTIME;
    }
    gw_config_free(c.config);
    est_cli_free(&c.common);
    free(c.used);
    free(c.argv);
    return rc;
}
