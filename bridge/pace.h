/*
 * pace.h — byte pacing for the cloud link: a token bucket on the bytes
 * actually published, refilled at `rate` bytes per second and holding at most
 * one second's worth (the burst).  A publish may go while the bucket holds
 * anything; its size is then taken even if that leaves the bucket in debt, so
 * a message larger than the burst is never held forever, and the debt delays
 * the next one.  Pure: the caller supplies the clock (monotonic ms).
 */
#ifndef PG_PACE_H
#define PG_PACE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pace {
	uint64_t rate;  /* bytes per second; 0 = unpaced */
	double tokens;  /* bytes that may go now; negative: debt */
	int64_t at_ms;  /* when `tokens` was last brought up to date */
} pace_t;

/* A full bucket (one second's worth) at `now_ms`. */
void pace_init(pace_t *p, uint64_t rate, int64_t now_ms);

/* May a publish go at `now_ms`?  Always true when unpaced. */
bool pace_ready(pace_t *p, int64_t now_ms);

/* Account `bytes` just published. */
void pace_take(pace_t *p, uint64_t bytes);

/* Milliseconds from `now_ms` until pace_ready() turns true (0: it is). */
int64_t pace_wait_ms(pace_t *p, int64_t now_ms);

#endif
