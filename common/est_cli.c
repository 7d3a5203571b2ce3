/* est_cli.c - the options every estate program shares (see est_cli.h). */
#include "est_cli.h"

#include <stdlib.h>
#include <string.h>

#include "est_alloc.h"
#include "estate.h"

/* The value of an option spelt short ("-c", "-cVALUE") or long ("--config",
 * "--config=VALUE"); NULL when arg is not that option. *needs_next when the
 * value is the next argument. */
static const char *option_value(const char *arg, const char *short_name, const char *long_name,
                                bool *needs_next)
{
    *needs_next = false;
    size_t len = strlen(long_name);
    if (strncmp(arg, long_name, len) == 0 && (arg[len] == '\0' || arg[len] == '=')) {
        *needs_next = arg[len] == '\0';
        return arg + len + (arg[len] == '=');
    }
    len = short_name ? strlen(short_name) : 0;
    if (len > 0 && strncmp(arg, short_name, len) == 0) {
        *needs_next = arg[len] == '\0';
        return arg + len;
    }
    return NULL;
}

static bool push_set(struct est_cli *cli, const char *text)
{
    if (EST_VEC_RESERVE(cli->sets, cli->sets_cap, cli->nsets + 1) != EST_OK)
        return false;
    cli->sets[cli->nsets++] = text;
    return true;
}

static enum est_cli_take finish(struct est_cli *cli, int code)
{
    cli->exit_code = code;
    return EST_CLI_EXIT;
}

enum est_cli_take est_cli_take(struct est_cli *cli, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        cli->usage(stdout);
        return finish(cli, EST_EXIT_OK);
    }
    if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
        printf("%s %s\n", cli->program, ESTATE_VERSION);
        return finish(cli, EST_EXIT_OK);
    }
    bool needs_next;
    bool is_set = false;
    const char *value = option_value(arg, "-c", "--config", &needs_next);
    if (value == NULL) {
        value = option_value(arg, NULL, "--set", &needs_next);
        is_set = value != NULL;
    }
    if (value == NULL)
        return EST_CLI_OTHER;
    if (needs_next) {
        if (*i + 1 >= argc)
            return EST_CLI_NO_VALUE;
        value = argv[++*i];
    }
    if (!is_set)
        cli->config_path = value;
    else if (!push_set(cli, value)) {
        fprintf(stderr, "%s: out of memory\n", cli->program);
        return finish(cli, EST_EXIT_RUNTIME);
    }
    return EST_CLI_TAKEN;
}

void est_cli_free(struct est_cli *cli)
{
    free(cli->sets);
    cli->sets = NULL;
    cli->nsets = cli->sets_cap = 0;
}
