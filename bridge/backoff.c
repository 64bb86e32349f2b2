/*
 * backoff.c — exponential backoff with equal jitter (see backoff.h).
 */
#include "backoff.h"

void backoff_init(backoff_t *b, int64_t min_ms, int64_t cap_ms)
{
	if(min_ms < 1) {
		min_ms = 1;
	}
	if(cap_ms < min_ms) {
		cap_ms = min_ms;
	}
	b->min_ms = min_ms;
	b->cap_ms = cap_ms;
	b->attempt = 0;
}

int64_t backoff_next(backoff_t *b, uint32_t rnd)
{
	int64_t d = b->min_ms;
	for(unsigned i = 0; i < b->attempt && d < b->cap_ms; i++) {
		d *= 2;
	}
	if(d > b->cap_ms) {
		d = b->cap_ms;
	}
	if(b->attempt < 64) {
		b->attempt++;
	}
	int64_t half = d / 2;
	return d - half + (int64_t)(rnd % (uint64_t)(half + 1));
}

void backoff_reset(backoff_t *b)
{
	b->attempt = 0;
}
