/*
 * ratelimit.h — token buckets against floods (IEC 62443-3-3 FR7, resource
 * availability).  Pure: the caller passes the time in milliseconds from a
 * monotonic clock, so tests drive it without sleeping.
 *
 * A bucket holds at most `burst` tokens and refills at `rate` tokens per
 * second.  A device has two: messages and bytes.
 */
#ifndef PG_RATELIMIT_H
#define PG_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ratelimit_bucket {
	double tokens;
	int64_t last_ms; /* time of the last refill; 0 = never used */
} ratelimit_bucket_t;

/* Take `cost` tokens if the bucket has them (after refilling up to now_ms).
 * rate <= 0 means unlimited (always true).  burst < cost is treated as burst
 * = cost so a single large message can pass an otherwise idle bucket. */
bool ratelimit_take(ratelimit_bucket_t *b, double rate, double burst, double cost, int64_t now_ms);

/* Counts refusals within a sliding window to decide when a client's abuse is
 * sustained: returns true when `threshold` refusals fell within `window_ms`. */
typedef struct ratelimit_strikes {
	int64_t window_start_ms;
	uint32_t count;
} ratelimit_strikes_t;

bool ratelimit_strike(ratelimit_strikes_t *s, uint32_t threshold, int64_t window_ms, int64_t now_ms);

#endif
