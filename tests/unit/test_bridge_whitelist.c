/*
 * test_bridge_whitelist.c — forward rules (bridge/whitelist.c): first match
 * wins, nothing matches what no rule names, $ topics stay out of wildcard
 * rules, strip/prefix/to remapping, the depth bound used by the AWS profile;
 * and the reconnect backoff (bridge/backoff.c) with injected randomness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "whitelist.h"

static void add(whitelist_t *w, const char *line)
{
	char buf[512], *argv[16], why[256];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	for(char *p = buf; *p && argc < 16;) {
		argv[argc++] = p;
		char *sp = strchr(p, ' ');
		if(!sp) {
			break;
		}
		*sp = '\0';
		p = sp + 1;
	}
	wl_rule_t r;
	if(whitelist_rule_parse(&r, argc, argv, why, sizeof(why)) ||
	   whitelist_add(w, &r, why, sizeof(why))) {
		fail_msg("%s: %s", line, why);
	}
}

static void test_match_first_rule_wins(void **state)
{
	whitelist_t w = {0};
	add(&w, "plant/hq/energy/+/telemetry/power ttl=2h");
	add(&w, "plant/hq/+/+/telemetry/# strip=plant/ prefix=sites/");
	const wl_rule_t *r = whitelist_match(&w, "plant/hq/energy/m1/telemetry/power");
	assert_non_null(r);
	assert_int_equal(r->ttl_ms, 7200000);
	r = whitelist_match(&w, "plant/hq/line1/p1/telemetry/temp");
	assert_non_null(r);
	assert_string_equal(r->prefix, "sites/");
	assert_null(whitelist_match(&w, "plant/hq/line1/p1/command/stop"));
	/* MQTT: "a/#" also matches "a" itself. */
	assert_non_null(whitelist_match(&w, "plant/hq/line1/p1/telemetry"));
	assert_null(whitelist_match(&w, "other/hq/line1/p1/telemetry/x"));
	assert_null(whitelist_match(&w, NULL));
	assert_null(whitelist_match(NULL, "a"));
	whitelist_clear(&w);
	whitelist_clear(&w);
	whitelist_clear(NULL);
}

static void test_dollar_topics_never_match_wildcards(void **state)
{
	whitelist_t w = {0};
	add(&w, "+/# force");
	assert_non_null(whitelist_match(&w, "a/b"));
	assert_null(whitelist_match(&w, "$SYS/broker/load"));
	assert_null(whitelist_match(&w, "$CONTROL/dynamic-security/v1"));
	whitelist_clear(&w);
}

static void test_remap(void **state)
{
	whitelist_t w = {0};
	char out[256];
	add(&w, "plant/+/telemetry/# strip=plant/ prefix=sites/osaka/");
	add(&w, "raw/x to=fixed/topic");
	add(&w, "keep/# qos=0");
	add(&w, "only/strip strip=only/strip");
	assert_int_equal(whitelist_remap(&w.rules[0], "plant/line1/telemetry/t", out, sizeof(out)), 0);
	assert_string_equal(out, "sites/osaka/line1/telemetry/t");
	assert_int_equal(whitelist_remap(&w.rules[1], "raw/x", out, sizeof(out)), 0);
	assert_string_equal(out, "fixed/topic");
	assert_int_equal(whitelist_remap(&w.rules[2], "keep/a/b", out, sizeof(out)), 0);
	assert_string_equal(out, "keep/a/b");
	assert_int_equal(w.rules[2].qos, 0);
	/* Stripping everything leaves no topic: refused, never sent as "". */
	assert_int_equal(whitelist_remap(&w.rules[3], "only/strip", out, sizeof(out)), -1);
	/* Too long for the buffer. */
	assert_int_equal(whitelist_remap(&w.rules[0], "plant/line1/telemetry/t", out, 10), -1);
	whitelist_clear(&w);
}

static void test_max_slashes(void **state)
{
	whitelist_t w = {0};
	add(&w, "plant/a/b/c strip=plant/ prefix=x/y/");
	add(&w, "plant/a/# prefix=x/");
	add(&w, "q/r to=a/b/c");
	assert_int_equal(whitelist_max_slashes(&w.rules[0]), 4); /* x/y/a/b/c */
	assert_int_equal(whitelist_max_slashes(&w.rules[1]), -1);
	assert_int_equal(whitelist_max_slashes(&w.rules[2]), 2);
	whitelist_clear(&w);
}

static void test_copy_and_format(void **state)
{
	whitelist_t w = {0}, c = {0};
	add(&w, "plant/+/telemetry/# qos=0 strip=plant/ prefix=s/ max-payload=1k ttl=30s retain");
	assert_int_equal(whitelist_copy(&c, &w), 0);
	assert_int_equal(c.count, 1);
	assert_ptr_not_equal(c.rules[0].filter, w.rules[0].filter);
	char out[512];
	assert_int_equal(whitelist_rule_format(&c.rules[0], out, sizeof(out)), 0);
	assert_string_equal(out, "plant/+/telemetry/# qos=0 strip=plant/ prefix=s/ max-payload=1024 "
	                         "ttl=30000ms retain");
	whitelist_clear(&w);
	whitelist_clear(&c);
}

static void test_backoff_grows_to_cap_with_jitter(void **state)
{
	backoff_t b;
	backoff_init(&b, 1000, 60000);
	/* rnd = 0: the low end, d/2 rounded up. */
	int64_t expect_lo[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
	for(size_t i = 0; i < sizeof(expect_lo) / sizeof(expect_lo[0]); i++) {
		assert_int_equal(backoff_next(&b, 0), expect_lo[i]);
	}
	backoff_reset(&b);
	/* rnd = max: never above d, never above the cap. */
	int64_t expect_hi[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
	for(size_t i = 0; i < sizeof(expect_hi) / sizeof(expect_hi[0]); i++) {
		int64_t d = backoff_next(&b, UINT32_MAX);
		assert_true(d <= expect_hi[i]);
		assert_true(d >= expect_hi[i] / 2);
	}
	for(int i = 0; i < 200; i++) { /* no overflow after many attempts */
		int64_t d = backoff_next(&b, (uint32_t)i * 2654435761u);
		assert_true(d >= 30000 && d <= 60000);
	}
	backoff_init(&b, 0, 0); /* nonsense is clamped, not a busy loop of 0 */
	assert_true(backoff_next(&b, 7) >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_first_rule_wins),
	    cmocka_unit_test(test_dollar_topics_never_match_wildcards),
	    cmocka_unit_test(test_remap),
	    cmocka_unit_test(test_max_slashes),
	    cmocka_unit_test(test_copy_and_format),
	    cmocka_unit_test(test_backoff_grows_to_cap_with_jitter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
