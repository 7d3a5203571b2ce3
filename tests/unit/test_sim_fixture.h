/* test_sim_fixture.h - shared fixture of the estate-sim unit tests: loads a
 * simulator config from text into a sim_setup kept in cmocka's state, and
 * finds devices in its world. A header (not test_sim_*.c) so the unit-test
 * glob does not build it alone; include it after <cmocka.h>. */
#ifndef TEST_SIM_FIXTURE_H
#define TEST_SIM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_config.h"

/* Writes text to a temporary file and loads it; mono_start_ms is the
 * simulator's monotonic start. Fails the test on any config error. */
static struct sim_setup *sim_fixture_load(const char *text, int64_t mono_start_ms)
{
    char path[] = "/tmp/test_sim_fixture_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sim_setup *setup = NULL;
    struct sim_config_errors errors = {0};
    est_err rc = sim_config_load(path, NULL, 0, NULL, mono_start_ms, &setup, &errors);
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "%s\n", errors.messages[i]);
    sim_config_errors_free(&errors);
    unlink(path);
    assert_int_equal(rc, EST_OK);
    return setup;
}

static int teardown_site(void **state)
{
    sim_setup_free(*state);
    return 0;
}

static struct sim_world *world_of(void **state)
{
    return ((struct sim_setup *)*state)->world;
}

static struct sim_device *device(void **state, const char *id)
{
    struct sim_world *w = world_of(state);
    int i = sim_world_device_index(w, id);
    assert_true(i >= 0);
    return &w->devices[i];
}

#endif
