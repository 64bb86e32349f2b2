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

static void remap_ok(const wl_rule_t *r, const char *topic, const char *want)
{
	char *out = NULL;
	const char *why = "unset";
	assert_int_equal(whitelist_remap(r, topic, &out, &why), 0);
	assert_null(why);
	assert_string_equal(out, want);
	free(out);
}

static void remap_refused(const wl_rule_t *r, const char *topic, const char *reason)
{
	char *out = (char *)"unset";
	const char *why = NULL;
	assert_int_equal(whitelist_remap(r, topic, &out, &why), -1);
	assert_null(out);
	assert_string_equal(why, reason);
}

static void test_remap(void **state)
{
	whitelist_t w = {0};
	add(&w, "plant/+/telemetry/# strip=plant/ prefix=sites/osaka/");
	add(&w, "raw/x to=fixed/topic");
	add(&w, "keep/# qos=0");
	add(&w, "only/# strip=only/");
	remap_ok(&w.rules[0], "plant/line1/telemetry/t", "sites/osaka/line1/telemetry/t");
	remap_ok(&w.rules[1], "raw/x", "fixed/topic");
	remap_ok(&w.rules[2], "keep/a/b", "keep/a/b");
	assert_int_equal(w.rules[2].qos, 0);
	/* Stripping everything leaves no topic: refused, never sent as "". */
	remap_refused(&w.rules[3], "only", "bad-cloud-topic");
	/* No fixed buffer: a 5,000-byte cloud topic is built whole. */
	char *longt = malloc(5100), *want = malloc(5200);
	strcpy(longt, "plant/l/telemetry/");
	memset(longt + 18, 'x', 5000);
	longt[5018] = '\0';
	snprintf(want, 5200, "sites/osaka/%s", longt + 6);
	remap_ok(&w.rules[0], longt, want);
	free(longt);
	free(want);
	whitelist_clear(&w);
}

/* Issue 12, item 7: no rule without `force` can produce a '$' cloud topic,
 * neither at config check nor at run time. */
static void test_no_dollar_cloud_topic_without_force(void **state)
{
	char why[256];
	wl_rule_t r;
	char *lit[] = {"plant/$aws/things/#", "strip=plant/"};
	assert_int_equal(whitelist_rule_parse(&r, 2, lit, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "reserved"));
	char *sys[] = {"x/$SYS/broker/#", "strip=x/"};
	assert_int_equal(whitelist_rule_parse(&r, 2, sys, why, sizeof(why)), -1);
	char *empty[] = {"a/b", "strip=a/b"};
	assert_int_equal(whitelist_rule_parse(&r, 2, empty, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "empty"));
	whitelist_t w = {0};
	add(&w, "plant/+/# strip=plant/");
	add(&w, "edge/# strip=edge/ force");
	/* '+' matches a '$' level below the first: refused per message. */
	remap_refused(&w.rules[0], "plant/$aws/things/t1/shadow/update", "cloud-topic-reserved");
	remap_refused(&w.rules[0], "plant/$SYS/x", "cloud-topic-reserved");
	remap_ok(&w.rules[0], "plant/l1/t", "l1/t");
	remap_ok(&w.rules[1], "edge/$aws/rules/r1", "$aws/rules/r1");
	whitelist_clear(&w);
}

static void collect(void *arg, const wl_rule_t *a, const wl_rule_t *b)
{
	int *lines = arg;
	lines[0]++;
	lines[1] = a->line;
	lines[2] = b->line;
}

/* Issue 12, item 3: a filter covered by another rule's is not subscribed
 * (mosquitto would deliver the message once per subscription); overlaps
 * that are no coverage are reported. */
static void test_subscriptions_without_overlap(void **state)
{
	whitelist_t w = {0};
	add(&w, "plant/hq/energy/+/telemetry/power ttl=2h");
	add(&w, "plant/hq/+/+/telemetry/# strip=plant/ prefix=sites/");
	add(&w, "plant/osaka/line1/press/status");
	add(&w, "+/# force");
	add(&w, "# force");
	add(&w, "x/+/c");
	add(&w, "x/b/+");
	bool sub[7];
	whitelist_subscriptions(&w, sub);
	/* everything is covered by "+/#" and "#" (equal sets): the earlier stays */
	assert_false(sub[0]);
	assert_false(sub[1]);
	assert_false(sub[2]);
	assert_true(sub[3]);
	assert_false(sub[4]);
	assert_false(sub[5]);
	assert_false(sub[6]);
	assert_int_equal(whitelist_overlaps(&w, sub, NULL, NULL), 0);
	whitelist_clear(&w);

	add(&w, "plant/hq/energy/+/telemetry/power ttl=2h");
	add(&w, "plant/hq/+/+/telemetry/# strip=plant/ prefix=sites/");
	add(&w, "x/+/c");
	add(&w, "x/b/+");
	add(&w, "y/#");
	whitelist_subscriptions(&w, sub);
	assert_false(sub[0]);
	assert_true(sub[1]);
	assert_true(sub[2]);
	assert_true(sub[3]);
	assert_true(sub[4]);
	for(size_t i = 0; i < w.count; i++) {
		w.rules[i].line = (int)i + 10;
	}
	int seen[3] = {0};
	assert_int_equal(whitelist_overlaps(&w, sub, collect, seen), 1);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 12);
	assert_int_equal(seen[2], 13);
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
	    cmocka_unit_test(test_no_dollar_cloud_topic_without_force),
	    cmocka_unit_test(test_subscriptions_without_overlap),
	    cmocka_unit_test(test_max_slashes),
	    cmocka_unit_test(test_copy_and_format),
	    cmocka_unit_test(test_backoff_grows_to_cap_with_jitter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
