/* est_cli.h - the command-line options every estate program shares:
 *   -c, --config FILE   (also -cFILE, --config=FILE)
 *   --set PATH=VALUE    (also --set=PATH=VALUE), any number of them
 *   -h, --help          prints the program's usage on stdout, exit 0
 *   -V, --version       prints "PROGRAM VERSION", exit 0
 * The program walks its argv, offers each argument to est_cli_take and
 * handles what it declines. Apply the --set values with est_override.h. */
#ifndef EST_CLI_H
#define EST_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes of every estate program. */
#define EST_EXIT_OK 0
#define EST_EXIT_RUNTIME 1
#define EST_EXIT_USAGE 2

struct est_cli {
    const char *program;          /* "estate-gw": for --version */
    void (*usage)(FILE *out);     /* prints the program's usage */
    const char *config_path;      /* -c FILE, NULL when not given */
    const char **sets;            /* the --set PATH=VALUE texts in order */
    size_t nsets, sets_cap;
    int exit_code;                /* set when est_cli_take returns EST_CLI_EXIT */
};

enum est_cli_take {
    EST_CLI_OTHER,    /* not a common option: the program's own argument */
    EST_CLI_TAKEN,    /* taken with its value; *i is on the last one used */
    EST_CLI_EXIT,     /* help or version printed, or out of memory: exit_code */
    EST_CLI_NO_VALUE, /* -c or --set is the last argument: the program reports it */
};

/* Looks at argv[*i] (1 <= *i < argc). */
enum est_cli_take est_cli_take(struct est_cli *cli, int argc, char **argv, int *i);

/* Frees the --set list (not the strings: they are argv's). */
void est_cli_free(struct est_cli *cli);

#endif
