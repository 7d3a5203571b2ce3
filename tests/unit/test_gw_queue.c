/* test_gw_queue.c - unit tests of gateway/queue.c: FIFO order across the
 * ring's wrap, push_many filling only the room there is, timeouts, close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "queue.h"

static void test_push_many_keeps_order_across_wrap(void **state)
{
    (void)state;
    struct gw_queue *q = NULL;
    assert_int_equal(gw_queue_create(sizeof(int), 5, &q), EST_OK);
    int in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
    size_t pushed = 0;
    assert_int_equal(gw_queue_push_many(q, in, 3, 0, &pushed), EST_OK);
    assert_int_equal(pushed, 3);
    assert_int_equal(gw_queue_pop_many(q, out, 2, 0), 2); /* head moves to slot 2 */
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
    /* Room for 4: the first 4 of 5 go in (wrapping), the call says FULL. */
    int more[5] = {10, 11, 12, 13, 14};
    assert_int_equal(gw_queue_push_many(q, more, 5, 0, &pushed), EST_ERR_FULL);
    assert_int_equal(pushed, 4);
    assert_int_equal(gw_queue_length(q), 5);
    assert_int_equal(gw_queue_pop_many(q, out, 5, 0), 5);
    int want[5] = {3, 10, 11, 12, 13};
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], want[i]);
    /* A full queue and no wait: nothing goes in. */
    assert_int_equal(gw_queue_push_many(q, in, 5, 0, &pushed), EST_OK);
    assert_int_equal(gw_queue_push(q, in, 0), EST_ERR_FULL);
    assert_int_equal(gw_queue_push_many(q, in, 2, 10, &pushed), EST_ERR_FULL);
    assert_int_equal(pushed, 0);
    assert_int_equal(gw_queue_push_many(q, in, 0, 0, &pushed), EST_OK);
    gw_queue_destroy(q);
}

struct consumer {
    struct gw_queue *q;
    int got[64];
    size_t n;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    while (c->n < 64) {
        size_t n = gw_queue_pop_many(c->q, c->got + c->n, 64 - c->n, 1000);
        if (n == 0)
            break;
        c->n += n;
    }
    return NULL;
}

/* A producer waiting for room is let in as the consumer pops. */
static void test_push_many_waits_for_room(void **state)
{
    (void)state;
    struct consumer c = {0};
    assert_int_equal(gw_queue_create(sizeof(int), 4, &c.q), EST_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, consume, &c), 0);
    int items[64];
    for (int i = 0; i < 64; i++)
        items[i] = i;
    size_t done = 0;
    while (done < 64) {
        size_t pushed = 0;
        est_err err = gw_queue_push_many(c.q, items + done, 64 - done, 1000, &pushed);
        assert_true(err == EST_OK || err == EST_ERR_FULL);
        assert_true(pushed > 0);
        done += pushed;
    }
    pthread_join(t, NULL);
    assert_int_equal(c.n, 64);
    for (int i = 0; i < 64; i++)
        assert_int_equal(c.got[i], i);
    gw_queue_destroy(c.q);
}

static void test_closed_queue_refuses_pushes_and_drains(void **state)
{
    (void)state;
    struct gw_queue *q = NULL;
    assert_int_equal(gw_queue_create(sizeof(int), 4, &q), EST_OK);
    int in[2] = {7, 8}, out[4] = {0};
    size_t pushed = 0;
    assert_int_equal(gw_queue_push_many(q, in, 2, 0, &pushed), EST_OK);
    gw_queue_close(q);
    assert_int_equal(gw_queue_push_many(q, in, 2, 0, &pushed), EST_ERR_STATE);
    assert_int_equal(pushed, 0);
    assert_int_equal(gw_queue_push(q, in, 0), EST_ERR_STATE);
    assert_int_equal(gw_queue_pop_many(q, out, 4, 0), 2);
    assert_int_equal(out[1], 8);
    assert_int_equal(gw_queue_pop_many(q, out, 4, 50), 0);
    gw_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_many_keeps_order_across_wrap),
        cmocka_unit_test(test_push_many_waits_for_room),
        cmocka_unit_test(test_closed_queue_refuses_pushes_and_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
