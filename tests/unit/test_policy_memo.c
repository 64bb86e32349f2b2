/*
 * test_policy_memo.c — unit tests of the per-client memo of topic decisions
 * (plugin/core/policy_memo.c, policy_check_memo in policy.c): it answers
 * exactly what policy_check_resolved answers, for requests that differ from
 * the one it learnt from only in QoS, retain or payload size; it never keeps
 * a decision across a reload, even when the new policy lands at the freed
 * one's address, nor across a change of binding or a clear; it stays within
 * its bounds; and what it must not learn (invalid topics, $CONTROL, long
 * topics, subscribes, topics matching many rules) it does not.
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

#define PUB POLICY_PUBLISH
#define SUB POLICY_SUBSCRIBE
#define READ POLICY_READ

static policy_t *load(const char *text)
{
	char err[1024] = "";
	policy_t *p = policy_load_buffer("m.conf", text, strlen(text), err, sizeof(err));
	if(!p) {
		print_error("unexpected load error: %s\n", err);
	}
	assert_non_null(p);
	return p;
}

/* Check req for `who` through m and without it; both must agree.  Returns
 * the decision. */
static policy_decision_t both(const policy_t *p, const policy_subject_t *who, policy_memo_t *m,
                              policy_access_t a, const char *topic, int qos, bool retain, size_t len)
{
	const policy_binding_t *b = policy_resolve(p, who);
	policy_request_t req = {a, topic, qos, retain, len};
	policy_decision_t want, got;
	memset(&want, 0x5a, sizeof(want));
	memset(&got, 0xa5, sizeof(got));
	policy_check_resolved(p, b, who, &req, &want);
	policy_check_memo(p, b, who, &req, m, &got);
	assert_int_equal(want.allow, got.allow);
	assert_ptr_equal(want.reason, got.reason);
	assert_ptr_equal(want.rule_file, got.rule_file);
	assert_int_equal(want.rule_line, got.rule_line);
	assert_ptr_equal(want.rule_text, got.rule_text);
	assert_int_equal(want.limit, got.limit);
	return got;
}

static const char CONSTRAINTS[] = "default deny\n"
                                  "role r\n"
                                  "  publish t/#  qos<=1 retain=no max-payload=16k\n"
                                  "  publish t/big  max-payload=1M\n"
                                  "  publish s qos<=0\n"
                                  "  deny publish t/secret/#\n"
                                  "  read t/# qos<=0 retain=no max-payload=10\n"
                                  "  publish p/%{site}/%{id}/x\n"
                                  "  read p/%{site}/+/x\n"
                                  "end\n"
                                  "device d role r\n";

/* One memo, one topic, every combination of options: the memo learns the
 * rules from the first request and must apply their options to each. */
static void test_memo_options(void **state)
{
	(void)state;
	policy_t *p = load(CONSTRAINTS);
	policy_attr_t attrs[] = {{"site", "hq"}};
	policy_subject_t who = {"d", "d", attrs, 1};
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	static const char *const topics[] = {"t/x", "t/big", "s", "t/secret/a", "p/hq/d/x", "p/hq/e/x",
	                                     "p/lab/d/x", "u"};
	static const size_t lens[] = {0, 10, 11, 16384, 16385, 1000000, 2000000};
	for(int round = 0; round < 2; round++) {
		for(size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++) {
			for(int qos = 0; qos <= 2; qos++) {
				for(int retain = 0; retain <= 1; retain++) {
					for(size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
						both(p, &who, m, PUB, topics[t], qos, retain, lens[l]);
						both(p, &who, m, READ, topics[t], qos, retain, lens[l]);
					}
				}
			}
		}
	}
	assert_true(policy_memo_count(m) > 0);
	/* Spot checks that the answers are the intended ones. */
	assert_true(both(p, &who, m, PUB, "t/x", 1, false, 16384).allow);
	assert_false(both(p, &who, m, PUB, "t/x", 2, false, 0).allow);
	assert_true(both(p, &who, m, PUB, "t/big", 2, true, 1000000).allow);
	assert_false(both(p, &who, m, PUB, "t/secret/a", 0, false, 0).allow);
	assert_true(both(p, &who, m, PUB, "p/hq/d/x", 0, false, 0).allow);
	assert_false(both(p, &who, m, PUB, "p/hq/e/x", 0, false, 0).allow);
	assert_true(both(p, &who, m, READ, "p/hq/e/x", 0, false, 0).allow);
	policy_memo_free(m);
	policy_free(p);
}

/* A reload frees the old policy and loads a new one, which malloc may well
 * put at the same address, with bindings at the same addresses too.  A memo
 * filled under the old policy must not answer for the new one: here the new
 * policy takes back what the old one granted, and then grants it again. */
static void test_memo_reload_not_stale(void **state)
{
	(void)state;
	static const char grant[] = "default deny\nrole r\n  publish a/b\n  read a/b\nend\ndevice d role r\n";
	static const char take[] = "default deny\nrole r\n  publish a/c\n  read a/c\nend\ndevice d role r\n";
	policy_subject_t who = {"d", "d", NULL, 0};
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	int same_address = 0;
	for(int i = 0; i < 20; i++) {
		policy_t *p1 = load(grant);
		assert_true(both(p1, &who, m, PUB, "a/b", 0, false, 0).allow);
		assert_true(both(p1, &who, m, READ, "a/b", 0, false, 0).allow);
		assert_true(both(p1, &who, m, PUB, "a/b", 0, false, 0).allow); /* from the memo */
		assert_int_equal(policy_memo_count(m), 2);
		const void *old = p1;
		policy_free(p1);
		policy_t *p2 = load(take);
		same_address += (const void *)p2 == old;
		assert_false(both(p2, &who, m, PUB, "a/b", 0, false, 0).allow);
		assert_false(both(p2, &who, m, READ, "a/b", 0, false, 0).allow);
		assert_true(both(p2, &who, m, PUB, "a/c", 0, false, 0).allow);
		policy_free(p2);
	}
	/* Not required (it depends on malloc), only reported: with glibc the
	 * address is reused, which is the case the serial exists for. */
	print_message("policy address reused in %d of 20 reloads\n", same_address);
	policy_memo_free(m);
}

/* The same memo asked for another binding (another role) forgets. */
static void test_memo_binding_change(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role a\n  publish x\nend\n"
	                   "role b\n  publish y\nend\n"
	                   "device d role a\ndevice e role b\n");
	policy_subject_t d = {"d", "d", NULL, 0}, e = {"e", "e", NULL, 0};
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	assert_true(both(p, &d, m, PUB, "x", 0, false, 0).allow);
	assert_false(both(p, &e, m, PUB, "x", 0, false, 0).allow);
	assert_true(both(p, &d, m, PUB, "x", 0, false, 0).allow);
	policy_memo_clear(m);
	assert_int_equal(policy_memo_count(m), 0);
	assert_true(both(p, &d, m, PUB, "x", 0, false, 0).allow);
	assert_int_equal(policy_memo_count(m), 1);
	policy_memo_free(m);
	policy_free(p);
}

/* What the memo must not learn, and its bounds. */
static void test_memo_bounds(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish #\n  publish a/#\n  publish a/+\n  publish a/b\n"
	                   "  read #\n"
	                   "  subscribe #\n"
	                   "end\n"
	                   "device d role r\n");
	policy_subject_t who = {"d", "d", NULL, 0};
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	/* Invalid topics, $CONTROL, subscribes: decided, not remembered. */
	assert_false(both(p, &who, m, PUB, "", 0, false, 0).allow);
	assert_false(both(p, &who, m, PUB, "a/+", 0, false, 0).allow);
	assert_false(both(p, &who, m, PUB, "a/#", 0, false, 0).allow);
	assert_false(both(p, &who, m, PUB, "a/\xff", 0, false, 0).allow);
	assert_false(both(p, &who, m, PUB, "$CONTROL/x", 0, false, 0).allow);
	assert_false(both(p, &who, m, READ, "$control/x", 0, false, 0).allow);
	assert_true(both(p, &who, m, SUB, "a/#", 0, false, 0).allow);
	assert_int_equal(policy_memo_count(m), 0);
	/* Four allow rules match a/b: more than the memo keeps. */
	assert_true(both(p, &who, m, PUB, "a/b", 0, false, 0).allow);
	assert_true(both(p, &who, m, PUB, "a/b", 0, false, 0).allow);
	assert_int_equal(policy_memo_count(m), 0);
	/* Longer than POLICY_MEMO_TOPIC: decided, not remembered. */
	char lng[POLICY_MEMO_TOPIC + 2];
	memset(lng, 'z', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_true(both(p, &who, m, PUB, lng, 0, false, 0).allow);
	assert_int_equal(policy_memo_count(m), 0);
	lng[POLICY_MEMO_TOPIC] = '\0';
	assert_true(both(p, &who, m, PUB, lng, 0, false, 0).allow);
	assert_true(both(p, &who, m, PUB, lng, 0, false, 0).allow);
	assert_int_equal(policy_memo_count(m), 1);
	/* Publishes to many topics grow it to POLICY_MEMO_PUB_MAX at most,
	 * reads to POLICY_MEMO_MAX. */
	char t[64];
	for(int i = 0; i < 1000; i++) {
		snprintf(t, sizeof(t), "pub/%d", i);
		assert_true(both(p, &who, m, PUB, t, 0, false, 0).allow);
		assert_true(policy_memo_count(m) <= POLICY_MEMO_PUB_MAX);
	}
	for(int round = 0; round < 2; round++) {
		for(int i = 0; i < 2000; i++) {
			snprintf(t, sizeof(t), "read/%d", i % (round ? 100 : 2000));
			assert_true(both(p, &who, m, READ, t, 0, false, 0).allow);
			assert_true(policy_memo_count(m) <= POLICY_MEMO_MAX);
		}
	}
	assert_true(policy_memo_count(m) > POLICY_MEMO_PUB_MAX);
	/* Still exact after all that replacing. */
	for(int i = 0; i < 1000; i++) {
		snprintf(t, sizeof(t), "pub/%d", i);
		assert_true(both(p, &who, m, PUB, t, 0, false, 0).allow);
		snprintf(t, sizeof(t), "read/%d", i);
		assert_true(both(p, &who, m, READ, t, 0, false, 0).allow);
	}
	policy_memo_free(m);
	policy_memo_free(NULL);
	policy_memo_clear(NULL);
	assert_int_equal(policy_memo_count(NULL), 0);
	policy_free(p);
}

/* Random topics over levels that hit and miss literal, '+', '#' and
 * variable rules, one memo throughout: every answer as without it. */
static void test_memo_differential(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish plant/%{site}/%{line}/%{id}/telemetry/#  qos<=1 max-payload=100\n"
	                   "  publish plant/%{site}/%{line}/%{id}/status qos<=0\n"
	                   "  deny publish plant/+/+/+/command/#\n"
	                   "  read plant/+/+/+/telemetry/#\n"
	                   "  read plant/%{site}/%{line}/%{id}/config/# retain=no\n"
	                   "  deny read plant/+/+/+/telemetry/raw/#\n"
	                   "  publish plant/%{site}/%{line}/%{id}/telemetry/raw max-payload=10\n"
	                   "end\n"
	                   "device dev-1 role r\n");
	policy_attr_t attrs[] = {{"site", "hq"}, {"line", "l1"}};
	policy_subject_t who = {"dev-1", "dev-1", attrs, 2};
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	static const char *const lv[][4] = {
	    {"plant", "plant", "plant", "x"},
	    {"hq", "hq", "lab", "+"},
	    {"l1", "l1", "l2", "#"},
	    {"dev-1", "dev-1", "dev-2", "$x"},
	    {"telemetry", "status", "config", "command"},
	    {"raw", "a", "", "b"},
	};
	uint32_t seed = 12345;
	char topic[128];
	for(int i = 0; i < 20000; i++) {
		size_t n = 0;
		int levels = 4 + (int)((seed >> 8) % 3);
		topic[0] = '\0';
		for(int k = 0; k < levels; k++) {
			seed = seed * 1103515245u + 12345u;
			n += (size_t)snprintf(topic + n, sizeof(topic) - n, "%s%s", k ? "/" : "", lv[k][(seed >> 16) % 4]);
		}
		seed = seed * 1103515245u + 12345u;
		int qos = (int)((seed >> 16) % 3);
		bool retain = (seed >> 20) & 1;
		size_t len = (seed >> 21) % 120;
		both(p, &who, m, (seed >> 28) & 1 ? PUB : READ, topic, qos, retain, len);
	}
	policy_memo_free(m);
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_memo_options),
	    cmocka_unit_test(test_memo_reload_not_stale),
	    cmocka_unit_test(test_memo_binding_change),
	    cmocka_unit_test(test_memo_bounds),
	    cmocka_unit_test(test_memo_differential),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
