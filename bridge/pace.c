/*
 * pace.c — the byte-rate token bucket of pace.h.
 */
#include "pace.h"

void pace_init(pace_t *p, uint64_t rate, int64_t now_ms)
{
	p->rate = rate;
	p->tokens = (double)rate;
	p->at_ms = now_ms;
}

static void pace_refill(pace_t *p, int64_t now_ms)
{
	if(now_ms <= p->at_ms) {
		return; /* the clock is monotonic; never refill backwards */
	}
	p->tokens += (double)(now_ms - p->at_ms) * (double)p->rate / 1000.0;
	if(p->tokens > (double)p->rate) {
		p->tokens = (double)p->rate;
	}
	p->at_ms = now_ms;
}

bool pace_ready(pace_t *p, int64_t now_ms)
{
	if(p->rate == 0) {
		return true;
	}
	pace_refill(p, now_ms);
	return p->tokens > 0;
}

void pace_take(pace_t *p, uint64_t bytes)
{
	if(p->rate) {
		p->tokens -= (double)bytes;
	}
}

int64_t pace_wait_ms(pace_t *p, int64_t now_ms)
{
	if(pace_ready(p, now_ms)) {
		return 0;
	}
	/* tokens <= 0: the first whole ms after the debt is paid */
	return (int64_t)(-p->tokens * 1000.0 / (double)p->rate) + 1;
}
