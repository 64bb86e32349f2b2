/*
 * fuzz_policy.c — libFuzzer target for the policy parser and decisions.
 *
 * Input: POLICY-TEXT [ '\0' IDENTITY '\0' CLIENTID '\0' TOPIC '\0' ATTRVALUE ].
 * The text is loaded with policy_load_buffer; on error the message must be
 * non-empty and start with the file name.  When it loads, a handful of
 * requests (the given topic, or fixed ones) are decided for the given
 * identity and for fixed ones, through both policy_check and
 * policy_resolve + policy_check_resolved, which must agree; every allow must
 * name its rule; and the introspection functions must cope.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fp_check(int ok, const char *what)
{
	if(!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

static void fp_decide(const policy_t *p, const char *id, const char *cid, const char *attr,
                      const char *topic)
{
	policy_attr_t attrs[3] = {{"site", attr}, {"line", attr}, {"zone", "z"}};
	policy_subject_t who = {id, cid, attrs, attr ? 3 : 0};
	const char *why = NULL;
	bool admitted = policy_admit(p, &who, &why);
	fp_check(admitted == (why == NULL), "admit reason iff refused");
	const policy_binding_t *b = policy_resolve(p, &who);
	fp_check(admitted == (b != NULL), "admit iff resolve");
	if(b) {
		policy_binding_info_t bi;
		policy_binding_get_info(b, &bi);
		fp_check(bi.role != NULL && bi.line > 0, "binding info");
	}
	for(int a = POLICY_PUBLISH; a <= POLICY_READ; a++) {
		for(int qos = 0; qos <= 2; qos += 2) {
			policy_request_t req = {(policy_access_t)a, topic, qos, qos == 2, (size_t)qos * 10000};
			policy_decision_t d1, d2;
			policy_check(p, &who, &req, &d1);
			policy_check_resolved(p, b, &who, &req, &d2);
			fp_check(d1.allow == d2.allow && d1.reason == d2.reason &&
			             d1.rule_line == d2.rule_line,
			         "check == check_resolved");
			fp_check(d1.reason != NULL, "a reason");
			fp_check(!d1.allow || (d1.rule_file && d1.rule_line > 0 && d1.rule_text),
			         "an allow names its rule");
			fp_check(!d1.allow || admitted, "no allow without admission");
			char line[512];
			policy_decision_format(&d1, &req, line, sizeof(line));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if(size > 256 * 1024) {
		return 0;
	}
	char *buf = malloc(size + 1);
	if(!buf) {
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = '\0';
	size_t textlen = strlen(buf);
	/* The optional request fields after the policy text. */
	const char *field[4] = {NULL, NULL, NULL, NULL};
	size_t at = textlen + 1;
	for(int i = 0; i < 4 && at <= size; i++) {
		field[i] = buf + at;
		at += strlen(buf + at) + 1;
	}

	char err[512];
	err[0] = '\0';
	policy_t *p = policy_load_buffer("fuzz.conf", buf, textlen, err, sizeof(err));
	if(!p) {
		fp_check(strncmp(err, "fuzz.conf:", 10) == 0, "error starts with file name");
		goto out;
	}
	policy_stats_t st;
	policy_get_stats(p, &st);
	policy_role_info_t ri;
	size_t nroles = 0, nrules = 0;
	for(size_t i = 0; policy_role_at(p, i, &ri); i++) {
		nroles++;
		nrules += ri.allow_rules + ri.deny_rules;
	}
	fp_check(nroles == st.roles && nrules == st.rules, "stats agree with roles");

	static const char *const ids[] = {"d", "press-01", "sensor-1", "x", "+", "a/b", ""};
	static const char *const topics[] = {"plant/hq/l1/d/telemetry/t", "a/b", "#", "$SYS/x",
	                                     "$share/g/a/#", "+/+", "/", "$CONTROL/x"};
	if(field[0] && field[2]) {
		fp_decide(p, field[0], field[1] ? field[1] : field[0], field[3], field[2]);
	}
	for(size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		for(size_t k = 0; k < sizeof(topics) / sizeof(topics[0]); k++) {
			fp_decide(p, ids[i], ids[i], i % 2 ? "hq" : NULL, topics[k]);
		}
	}
	policy_free(p);
out:
	free(buf);
	return 0;
}
