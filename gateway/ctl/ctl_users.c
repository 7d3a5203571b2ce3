/* ctl_users.c - estate-ctl user ...: hands over to the users module. */
#include <stdio.h>

#include "ctl.h"
#if __has_include("users.h")
#include "office.h"
#define HAVE_USERS_CTL 1
#endif

int ctl_verb_user(struct ctl *c)
{
#ifdef HAVE_USERS_CTL
    return gw_users_ctl_main(c->config, c->argc, c->argv);
#else
    (void)c;
    fprintf(stderr, "estate-ctl: user management is not built in\n");
    return EST_EXIT_RUNTIME;
#endif
}
