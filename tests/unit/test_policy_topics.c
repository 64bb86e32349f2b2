/*
 * test_policy_topics.c — unit tests of how policy_check_resolved reads a topic
 * name: it splits the topic into levels and makes topic_valid_name's checks
 * in one pass, 8 bytes at a time, without copying it.  So every level
 * boundary, wildcard and byte above 0x7f must be seen wherever it falls
 * relative to an 8-byte word, and the answer must be the one common/topic.c
 * gives: "invalid topic name" exactly when topic_valid_name says no, and
 * otherwise allowed exactly when some rule's filter matches
 * (topic_matches).  Also the `device` fast path of the identity check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "topic.h"

static const char *const filters[] = {
    "a/+/c", "x/#", "+/b/+", "a//b", "aaaaaaa/bbbbbbbb/+", "/+/", "+/+/+/+/+/+/+/+/+/+",
    "é/+", "aaaaaaaaaaaaaaa", "b/aaaaaaa/#", "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/c",
};

static policy_t *load_filters(void)
{
	char text[2048];
	size_t o = (size_t)snprintf(text, sizeof text, "default deny\nrole r\n");
	for(size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		o += (size_t)snprintf(text + o, sizeof text - o, "  publish %s\n  read %s\n", filters[i],
		                      filters[i]);
	}
	o += (size_t)snprintf(text + o, sizeof text - o, "end\ndevice dev role r\n");
	char err[512];
	policy_t *p = policy_load_buffer("t.conf", text, o, err, sizeof err);
	if(!p) {
		print_error("%s\n", err);
	}
	assert_non_null(p);
	return p;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Check one topic both ways (publish and read). */
static void check(const policy_t *p, const policy_binding_t *b, const policy_subject_t *who,
                  const char *topic)
{
	bool valid = topic_valid_name(topic);
	bool want = false;
	for(size_t i = 0; valid && i < sizeof(filters) / sizeof(filters[0]); i++) {
		want = want || topic_matches(filters[i], topic);
	}
	for(int a = POLICY_PUBLISH; a <= POLICY_READ; a += 2) {
		policy_request_t req = {(policy_access_t)a, topic, 0, false, 0};
		policy_decision_t d;
		policy_check_resolved(p, b, who, &req, &d);
		bool bad = strcmp(d.reason, "invalid topic name") == 0;
		if(bad != !valid || d.allow != want) {
			print_error("topic \"%s\": valid %d want %d, got allow %d (%s)\n", topic, valid,
			            want, d.allow, d.reason);
		}
		assert_int_equal(bad, !valid);
		assert_int_equal(d.allow, want);
	}
}

static void test_random_topics(void **state)
{
	(void)state;
	static const char *const parts[] = {"a", "b", "c", "x", "", "aaaaaaa", "bbbbbbbb",
	                                    "aaaaaaaaaaaaaaa", "é", "+", "#", "a+", "\xff",
	                                    "\xc3", "\xe2\x82\xac", "$"};
	policy_t *p = load_filters();
	policy_subject_t who = {"dev", "dev", NULL, 0};
	const policy_binding_t *b = policy_resolve(p, &who);
	assert_non_null(b);
	char topic[512];
	for(int k = 0; k < 100000; k++) {
		size_t o = 0;
		unsigned n = 1 + rnd(24);
		for(unsigned i = 0; i < n; i++) {
			o += (size_t)snprintf(topic + o, sizeof topic - o, "%s%s", i ? "/" : "",
			                      parts[rnd(sizeof(parts) / sizeof(parts[0]))]);
		}
		check(p, b, &who, topic);
	}
	policy_free(p);
}

static void test_word_boundaries(void **state)
{
	(void)state;
	policy_t *p = load_filters();
	policy_subject_t who = {"dev", "dev", NULL, 0};
	const policy_binding_t *b = policy_resolve(p, &who);
	assert_non_null(b);
	/* Every special byte at every offset of the first three words. */
	static const char specials[] = {'/', '+', '#', '\x80', '\xff', '*', '\x03', '\xab',
	                                '\xa3', '\xaf', 'a'};
	char topic[32];
	for(size_t len = 1; len < sizeof(topic); len++) {
		for(size_t at = 0; at < len; at++) {
			for(size_t s = 0; s < sizeof(specials); s++) {
				memset(topic, 'a', len);
				topic[len] = '\0';
				topic[at] = specials[s];
				check(p, b, &who, topic);
				topic[len - 1 - at] = '/';
				check(p, b, &who, topic);
			}
		}
	}
	check(p, b, &who, "");
	policy_free(p);
}

static void test_many_levels(void **state)
{
	(void)state;
	policy_t *p = load_filters();
	policy_subject_t who = {"dev", "dev", NULL, 0};
	const policy_binding_t *b = policy_resolve(p, &who);
	assert_non_null(b);
	/* 20 and 21 levels match the 21-level filter only when the last is c;
	 * then past the 64 levels kept on the stack. */
	char topic[1024];
	for(unsigned n = 1; n < 200; n++) {
		size_t o = 0;
		for(unsigned i = 0; i < n; i++) {
			o += (size_t)snprintf(topic + o, sizeof topic - o, "%s%s", i ? "/" : "",
			                      i + 1 == n ? "c" : "x");
		}
		check(p, b, &who, topic);
	}
	policy_free(p);
}

static void test_identity_fast_path(void **state)
{
	(void)state;
	policy_t *p = load_filters();
	policy_subject_t who = {"dev", "dev", NULL, 0};
	const policy_binding_t *b = policy_resolve(p, &who);
	assert_non_null(b);
	policy_request_t req = {POLICY_PUBLISH, "x/1", 0, false, 0};
	policy_decision_t d;
	policy_check_resolved(p, b, &who, &req, &d);
	assert_true(d.allow);
	/* Another identity with the device's binding is checked in full. */
	static const char *const bad[] = {"", "a/b", "$dev", "a+", "a#", "d\x01", "\xff", NULL};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		policy_subject_t other = {bad[i], "c", NULL, 0};
		policy_check_resolved(p, b, &other, &req, &d);
		assert_false(d.allow);
		assert_string_equal(d.reason, "client not admitted by the policy");
	}
	policy_subject_t other = {"dev2", "c", NULL, 0};
	policy_check_resolved(p, b, &other, &req, &d);
	assert_true(d.allow);
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_topics),
	    cmocka_unit_test(test_word_boundaries),
	    cmocka_unit_test(test_many_levels),
	    cmocka_unit_test(test_identity_fast_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
