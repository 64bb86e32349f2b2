/*
 * test_bridge_pace.c — the cloud link's byte pacing (bridge/pace.c) with an
 * injected clock: a one-second burst, then the configured rate and no more,
 * a message larger than the burst goes and its debt delays the next one,
 * an idle bucket never holds more than one second, 0 is unpaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pace.h"

/* Publish `size`-byte messages as fast as the bucket lets them from t=0 to
 * t=end_ms, advancing the clock by pace_wait_ms; return the bytes sent. */
static uint64_t drain(pace_t *p, uint64_t size, int64_t end_ms)
{
	uint64_t sent = 0;
	int64_t now = 0;
	while(now <= end_ms) {
		int64_t w = pace_wait_ms(p, now);
		if(w) {
			now += w;
			continue;
		}
		assert_true(pace_ready(p, now));
		pace_take(p, size);
		sent += size;
	}
	return sent;
}

static void test_burst_then_rate(void **state)
{
	pace_t p;
	pace_init(&p, 65536, 0);
	/* the burst: one second's worth goes at once, then nothing */
	uint64_t sent = 0;
	while(pace_ready(&p, 0)) {
		pace_take(&p, 1024);
		sent += 1024;
	}
	assert_int_equal(sent, 65536);
	assert_false(pace_ready(&p, 0));
	assert_int_equal(pace_wait_ms(&p, 0), 1); /* the next byte's worth */
	/* ten seconds of 10 KiB messages: burst + 10 s x 64 KiB, within a message */
	pace_init(&p, 65536, 0);
	sent = drain(&p, 10240, 10000);
	assert_true(sent >= 65536 + 655360 - 10240);
	assert_true(sent <= 65536 + 655360 + 10240);
}

static void test_large_message_debt(void **state)
{
	pace_t p;
	pace_init(&p, 1000, 0);
	assert_true(pace_ready(&p, 0));
	pace_take(&p, 5000); /* five seconds' worth: it goes, the bucket owes 4000 */
	assert_int_equal(pace_wait_ms(&p, 3000), 1000 + 1);
	assert_false(pace_ready(&p, 3999));
	assert_true(pace_ready(&p, 4002));
}

static void test_idle_caps_at_one_second(void **state)
{
	pace_t p;
	pace_init(&p, 2000, 0);
	pace_take(&p, 2000);
	/* an hour idle refills one second's worth, not an hour's */
	assert_true(pace_ready(&p, 3600000));
	pace_take(&p, 2000);
	assert_false(pace_ready(&p, 3600000));
	/* a clock that goes backwards never adds tokens */
	assert_false(pace_ready(&p, 1000));
}

static void test_unpaced(void **state)
{
	pace_t p;
	pace_init(&p, 0, 0);
	for(int i = 0; i < 1000; i++) {
		assert_true(pace_ready(&p, 0));
		pace_take(&p, 1u << 20);
	}
	assert_int_equal(pace_wait_ms(&p, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_rate),
	    cmocka_unit_test(test_large_message_debt),
	    cmocka_unit_test(test_idle_caps_at_one_second),
	    cmocka_unit_test(test_unpaced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
