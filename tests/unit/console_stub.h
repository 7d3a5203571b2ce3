/* console_stub.h - a small host for the console (console.h) in unit tests,
 * in place of the daemon: call() records each command (verb, args, actor)
 * and answers with a canned result the test sets, subscribe() keeps the
 * console's event function so the test can inject events, and now_ms() is
 * a clock the test controls. Thread-safe (the console calls it from its
 * connection threads). Header-only. */
#ifndef CONSOLE_STUB_H
#define CONSOLE_STUB_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"

#define CONSOLE_STUB_TEXT 512

struct console_stub {
    pthread_mutex_t lock;
    int64_t clock_ms;            /* what now_ms() answers */
    const char *answer;          /* what call() returns (copied); NULL = no answer in time */
    int calls;                   /* call() invocations */
    char verb[64];               /* the last call's */
    char args[CONSOLE_STUB_TEXT];
    char user[64];
    char role[32];
    char origin[32];
    int timeout_ms;
    est_err subscribe_result;    /* what subscribe() answers (EST_OK keeps fn) */
    gw_console_event_fn event_fn; /* what subscribe() was given */
    void *event_ctx;
    int subscriptions;
};

static inline char *console_stub_call(void *ctx, const char *verb, const char *args_json,
                                      const struct gw_actor *actor, int timeout_ms)
{
    struct console_stub *stub = ctx;
    pthread_mutex_lock(&stub->lock);
    stub->calls++;
    snprintf(stub->verb, sizeof stub->verb, "%s", verb);
    snprintf(stub->args, sizeof stub->args, "%s", args_json ? args_json : "");
    snprintf(stub->user, sizeof stub->user, "%s", actor && actor->user ? actor->user : "");
    snprintf(stub->role, sizeof stub->role, "%s", actor && actor->role ? actor->role : "");
    snprintf(stub->origin, sizeof stub->origin, "%s", actor && actor->origin ? actor->origin : "");
    stub->timeout_ms = timeout_ms;
    char *answer = stub->answer ? strdup(stub->answer) : NULL;
    pthread_mutex_unlock(&stub->lock);
    return answer;
}

static inline est_err console_stub_subscribe(void *ctx, gw_console_event_fn fn, void *fn_ctx)
{
    struct console_stub *stub = ctx;
    pthread_mutex_lock(&stub->lock);
    est_err result = stub->subscribe_result;
    if (result == EST_OK) {
        stub->event_fn = fn;
        stub->event_ctx = fn_ctx;
        stub->subscriptions++;
    }
    pthread_mutex_unlock(&stub->lock);
    return result;
}

static inline int64_t console_stub_now(void *ctx)
{
    struct console_stub *stub = ctx;
    pthread_mutex_lock(&stub->lock);
    int64_t now = stub->clock_ms;
    pthread_mutex_unlock(&stub->lock);
    return now;
}

static inline void console_stub_init(struct console_stub *stub, int64_t clock_ms)
{
    memset(stub, 0, sizeof *stub);
    pthread_mutex_init(&stub->lock, NULL);
    stub->clock_ms = clock_ms;
    stub->answer = "{\"ok\":true}";
}

static inline void console_stub_destroy(struct console_stub *stub)
{
    pthread_mutex_destroy(&stub->lock);
}

/* The host the console gets: this stub behind every callback. */
static inline struct gw_console_host console_stub_host(struct console_stub *stub,
                                                       const struct gw_config *config)
{
    struct gw_console_host host = {
        .ctx = stub, .config = config, .call = console_stub_call,
        .subscribe = console_stub_subscribe, .now_ms = console_stub_now,
    };
    return host;
}

/* Sets what call() answers from now on (a static string, or NULL). */
static inline void console_stub_answer(struct console_stub *stub, const char *answer)
{
    pthread_mutex_lock(&stub->lock);
    stub->answer = answer;
    pthread_mutex_unlock(&stub->lock);
}

static inline int console_stub_calls(struct console_stub *stub)
{
    pthread_mutex_lock(&stub->lock);
    int n = stub->calls;
    pthread_mutex_unlock(&stub->lock);
    return n;
}

/* Delivers an event as the daemon would (kind "alerts", "workorders/3", ...). */
static inline void console_stub_inject(struct console_stub *stub, const char *kind,
                                       const char *payload)
{
    pthread_mutex_lock(&stub->lock);
    gw_console_event_fn fn = stub->event_fn;
    void *fn_ctx = stub->event_ctx;
    pthread_mutex_unlock(&stub->lock);
    if (fn)
        fn(fn_ctx, kind, payload);
}

#endif
