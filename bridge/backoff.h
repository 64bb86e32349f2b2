/*
 * backoff.h — reconnect delays: exponential growth from `min` to `cap` with
 * "equal jitter" (half the delay fixed, half random), so a fleet of bridges
 * does not reconnect in lockstep after a cloud outage.  Pure: the caller
 * supplies the randomness, which makes the sequence testable.
 */
#ifndef PG_BACKOFF_H
#define PG_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
	int64_t min_ms; /* first delay (before jitter) */
	int64_t cap_ms; /* delays never exceed this */
	unsigned attempt;
} backoff_t;

void backoff_init(backoff_t *b, int64_t min_ms, int64_t cap_ms);

/* The delay before the next attempt, in ms, in [d/2, d] where
 * d = min(cap, min * 2^attempt); `rnd` is any 32-bit random value.  Advances
 * the attempt counter. */
int64_t backoff_next(backoff_t *b, uint32_t rnd);

/* Back to the first delay (call after a successful connection). */
void backoff_reset(backoff_t *b);

#endif
