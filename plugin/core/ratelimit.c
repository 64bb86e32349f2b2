/*
 * ratelimit.c — token buckets and strike counting (see ratelimit.h).
 */
#include "ratelimit.h"

bool ratelimit_take(ratelimit_bucket_t *b, double rate, double burst, double cost, int64_t now_ms)
{
	if(rate <= 0) {
		return true;
	}
	if(burst < cost) {
		burst = cost;
	}
	if(b->last_ms == 0) {
		b->tokens = burst;
		b->last_ms = now_ms;
	} else if(now_ms > b->last_ms) {
		b->tokens += rate * (double)(now_ms - b->last_ms) / 1000.0;
		if(b->tokens > burst) {
			b->tokens = burst;
		}
		b->last_ms = now_ms;
	}
	if(b->tokens >= cost) {
		b->tokens -= cost;
		return true;
	}
	return false;
}

bool ratelimit_strike(ratelimit_strikes_t *s, uint32_t threshold, int64_t window_ms, int64_t now_ms)
{
	if(threshold == 0) {
		return false;
	}
	if(s->count == 0 || now_ms - s->window_start_ms > window_ms) {
		s->window_start_ms = now_ms;
		s->count = 0;
	}
	s->count++;
	return s->count >= threshold;
}
