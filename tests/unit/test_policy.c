/*
 * test_policy.c — unit tests of the policy engine (plugin/core/policy*.c):
 * every parse error with its file:line message, matching of
 * wildcards, '$' topics, shared subscriptions and empty levels, literal
 * substitution of hostile values, deny-wins, constraints, unknown devices,
 * patterns, a table of hostile requests, the shipped config/policy.example,
 * a differential test of the tries against common/topic.c, a large
 * policy to show that size does not change the answer, and the iterators.
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

#define NAME "t.conf"

static policy_t *load(const char *text)
{
	char err[1024] = "";
	policy_t *p = policy_load_buffer(NAME, text, strlen(text), err, sizeof(err));
	if(!p) {
		print_error("unexpected load error: %s\n", err);
	}
	assert_non_null(p);
	return p;
}

/* Decide one request; attrs as "k=v" strings, NULL-terminated list. */
static policy_decision_t ask_full(const policy_t *p, const char *id, const char *cid,
                                  const char *const *kv, policy_access_t a, const char *topic,
                                  int qos, bool retain, size_t len)
{
	policy_attr_t attrs[8];
	char keys[8][64];
	size_t n = 0;
	for(; kv && kv[n]; n++) {
		const char *eq = strchr(kv[n], '=');
		assert_non_null(eq);
		snprintf(keys[n], sizeof(keys[n]), "%.*s", (int)(eq - kv[n]), kv[n]);
		attrs[n].key = keys[n];
		attrs[n].value = eq + 1;
	}
	policy_subject_t who = {id, cid ? cid : id, attrs, n};
	policy_request_t req = {a, topic, qos, retain, len};
	policy_decision_t d;
	memset(&d, 0x5a, sizeof(d));
	policy_check(p, &who, &req, &d);
	/* Resolving once must give the same answer. */
	policy_decision_t d2;
	policy_check_resolved(p, policy_resolve(p, &who), &who, &req, &d2);
	assert_int_equal(d.allow, d2.allow);
	assert_ptr_equal(d.reason, d2.reason);
	assert_int_equal(d.rule_line, d2.rule_line);
	/* So must a memo, when it first learns the topic and when it then
	 * answers from what it learnt. */
	policy_memo_t *m = policy_memo_new();
	assert_non_null(m);
	for(int k = 0; k < 2; k++) {
		policy_decision_t d3;
		memset(&d3, 0x5a, sizeof(d3));
		policy_check_memo(p, policy_resolve(p, &who), &who, &req, m, &d3);
		assert_int_equal(d.allow, d3.allow);
		assert_ptr_equal(d.reason, d3.reason);
		assert_int_equal(d.rule_line, d3.rule_line);
		assert_ptr_equal(d.rule_text, d3.rule_text);
		assert_int_equal(d.limit, d3.limit);
	}
	policy_memo_free(m);
	assert_non_null(d.reason);
	if(d.rule_file) {
		assert_true(d.rule_line > 0);
		assert_non_null(d.rule_text);
	} else {
		assert_int_equal(d.rule_line, 0);
	}
	return d;
}

static bool ask(const policy_t *p, const char *id, policy_access_t a, const char *topic)
{
	return ask_full(p, id, NULL, NULL, a, topic, 0, false, 0).allow;
}

#define PUB POLICY_PUBLISH
#define SUB POLICY_SUBSCRIBE
#define READ POLICY_READ

/* ------------------------------------------------------------------------ */
/* Parser errors                                                              */

static const struct {
	const char *text;
	const char *error; /* expected prefix of the message */
} parse_errors[] = {
    {"", NAME ":1: no \"default deny\" line"},
    {"# only a comment\n", NAME ":1: no \"default deny\" line"},
    {"default allow\n", NAME ":1: \"default allow\" is not supported"},
    {"default deny\ndefault deny\n", NAME ":2: \"default deny\" is duplicate (first at line 1)"},
    {"default\n", NAME ":1: expected \"default deny\""},
    {"default deny please\n", NAME ":1: expected \"default deny\""},
    {"default deny\nfrobnicate x\n", NAME ":2: unknown keyword \"frobnicate\": expected default"},
    {"default deny\nrole a\n  pubish x\nend\n", NAME ":3: unknown keyword \"pubish\" in role a"},
    {"default deny\npublish a/b\n", NAME ":2: rule outside a role"},
    {"default deny\ndeny read a/b\n", NAME ":2: rule outside a role"},
    {"default deny\nrole a\npublish x\n", NAME ":2: role a is not closed: add \"end\""},
    {"default deny\nend\n", NAME ":2: \"end\" without a role to close"},
    {"default deny\nrole a\nend now\n", NAME ":3: \"end\" takes nothing after it"},
    {"default deny\nrole a\nend\nrole a\nend\n", NAME ":4: role a is duplicate (first defined at line 2)"},
    {"default deny\nrole\n", NAME ":2: expected: role NAME"},
    {"default deny\nrole a b\n", NAME ":2: expected: role NAME"},
    {"default deny\nrole a/b\n", NAME ":2: invalid role name \"a/b\""},
    {"default deny\nrole a\nrole b\n", NAME ":3: \"role\" inside role a: close the role (line 2)"},
    {"default deny\nrole a\ndevice d role a\n", NAME ":3: \"device\" inside role a"},
    {"default deny\nrole a\ndefault deny\n", NAME ":3: \"default\" inside role a"},
    {"default deny\ndevice d role nope\n", NAME ":2: unknown role \"nope\""},
    {"default deny\ndevices matching d* role nope\n", NAME ":2: unknown role \"nope\""},
    {"default deny\nunknown-devices role nope\n", NAME ":2: unknown role \"nope\""},
    {"default deny\nunknown-devices\n", NAME ":2: expected \"unknown-devices refuse\""},
    {"default deny\nunknown-devices allow\n", NAME ":2: expected \"unknown-devices refuse\""},
    {"default deny\nunknown-devices refuse\nunknown-devices refuse\n",
     NAME ":3: unknown-devices is duplicate (first at line 2)"},
    {"default deny\nrole r\nend\nunknown-devices role r site=x\n",
     NAME ":4: expected: unknown-devices role NAME"},
    {"default deny\nrole r\nend\ndevice d role r\ndevice d role r\n",
     NAME ":5: device d is duplicate (first at line 4)"},
    {"default deny\nrole r\nend\ndevice d\n", NAME ":4: expected: device ID role NAME"},
    {"default deny\nrole r\nend\ndevice d rol r\n", NAME ":4: expected: device ID role NAME"},
    {"default deny\nrole r\nend\ndevice a/b role r\n", NAME ":4: device \"a/b\" can never connect"},
    {"default deny\nrole r\nend\ndevice + role r\n", NAME ":4: device \"+\" can never connect"},
    {"default deny\nrole r\nend\ndevice # role r\n", NAME ":4: device \"#\" can never connect"},
    {"default deny\nrole r\nend\ndevice $SYS role r\n", NAME ":4: device \"$SYS\" can never connect"},
    {"default deny\nrole r\nend\ndevice \"\" role r\n", NAME ":4: device \"\" can never connect"},
    {"default deny\nrole r\nend\ndevice \"a\tb\" role r\n", NAME ":4: device \"a\tb\" can never connect"},
    {"default deny\nrole r\nend\ndevice s-* role r\n", NAME ":4: device \"s-*\" contains '*' or '?'"},
    {"default deny\nrole r\nend\ndevice d role r site\n", NAME ":4: malformed attribute \"site\""},
    {"default deny\nrole r\nend\ndevice d role r =x\n", NAME ":4: malformed attribute \"=x\""},
    {"default deny\nrole r\nend\ndevice d role r site=\n", NAME ":4: malformed attribute \"site=\""},
    {"default deny\nrole r\nend\ndevice d role r site=a/b\n", NAME ":4: malformed attribute \"site=a/b\""},
    {"default deny\nrole r\nend\ndevice d role r site=+\n", NAME ":4: malformed attribute \"site=+\""},
    {"default deny\nrole r\nend\ndevice d role r site=#\n", NAME ":4: malformed attribute \"site=#\""},
    {"default deny\nrole r\nend\ndevice d role r site=$SYS\n", NAME ":4: malformed attribute \"site=$SYS\""},
    {"default deny\nrole r\nend\ndevice d role r s%e=x\n", NAME ":4: malformed attribute \"s%e=x\""},
    {"default deny\nrole r\nend\ndevice d role r id=x\n", NAME ":4: attribute \"id\" is reserved"},
    {"default deny\nrole r\nend\ndevice d role r clientid=x\n", NAME ":4: attribute \"clientid\" is reserved"},
    {"default deny\nrole r\nend\ndevice d role r a=1 a=2\n", NAME ":4: attribute a is duplicate"},
    {"default deny\nrole r\nend\ndevices s-* role r\n", NAME ":4: expected: devices matching GLOB"},
    {"default deny\nrole r\nend\ndevices matching s-x role r\n", NAME ":4: pattern \"s-x\" has no '*' or '?'"},
    {"default deny\nrole r\nend\ndevices matching s/* role r\n", NAME ":4: pattern \"s/*\" can never match"},
    {"default deny\nrole r\nend\ndevices matching s* role r\ndevices matching s* role r\n",
     NAME ":5: pattern s* is duplicate (first at line 4)"},
    {"default deny\nrole r\n  publish\nend\n", NAME ":3: publish needs a topic filter"},
    {"default deny\nrole r\n  deny\nend\n", NAME ":3: expected: deny publish|subscribe|read FILTER"},
    {"default deny\nrole r\n  deny write a\nend\n", NAME ":3: expected: deny publish|subscribe|read"},
    {"default deny\nrole r\n  allow x a\nend\n", NAME ":3: expected: allow publish|subscribe|read"},
    {"default deny\nrole r\n  publish a/b#\nend\n", NAME ":3: invalid topic filter \"a/b#\""},
    {"default deny\nrole r\n  publish a/#/b\nend\n", NAME ":3: invalid topic filter \"a/#/b\""},
    {"default deny\nrole r\n  publish a+/b\nend\n", NAME ":3: invalid topic filter \"a+/b\""},
    {"default deny\nrole r\n  publish \"\"\nend\n", NAME ":3: invalid topic filter \"\""},
    {"default deny\nrole r\n  publish a/x%{id}\nend\n", NAME ":3: a variable must be a whole topic level"},
    {"default deny\nrole r\n  publish a/%{id}x\nend\n", NAME ":3: a variable must be a whole topic level"},
    {"default deny\nrole r\n  publish a/%{id\nend\n", NAME ":3: a variable must be a whole topic level"},
    {"default deny\nrole r\n  publish a/%{}\nend\n", NAME ":3: a variable must be a whole topic level"},
    {"default deny\nrole r\n  publish a/%{a}b}\nend\n", NAME ":3: malformed variable \"%{a}b}\""},
    {"default deny\nrole r\n  publish a/%{a b}\nend\n", NAME ":3: a variable must be a whole topic level"},
    {"default deny\nrole r\n  publish \"a/%{a b}\"\nend\n", NAME ":3: malformed variable \"%{a b}\""},
    {"default deny\nrole r\n  publish $CONTROL/#\nend\n", NAME ":3: $CONTROL topics control the broker"},
    {"default deny\nrole r\n  subscribe $CONTROL/dynamic-security/v1\nend\n",
     NAME ":3: $CONTROL topics control the broker"},
    {"default deny\nrole r\n  read $control/x\nend\n", NAME ":3: $CONTROL topics control the broker"},
    {"default deny\nrole r\n  read $CONTROL\nend\n", NAME ":3: $CONTROL topics control the broker"},
    {"default deny\nrole r\n  subscribe $share/g/a\nend\n", NAME ":3: write the filter without \"$share/GROUP/\""},
    {"default deny\nrole r\n  publish a qos<=3\nend\n", NAME ":3: invalid \"qos<=3\""},
    {"default deny\nrole r\n  publish a qos<=x\nend\n", NAME ":3: invalid \"qos<=x\""},
    {"default deny\nrole r\n  publish a qos<=1 qos<=0\nend\n", NAME ":3: qos<= given twice"},
    {"default deny\nrole r\n  publish a qos <= 1\nend\n", NAME ":3: unknown rule option \"qos\""},
    {"default deny\nrole r\n  publish a retain=maybe\nend\n", NAME ":3: invalid \"retain=maybe\""},
    {"default deny\nrole r\n  publish a retain=no retain=no\nend\n", NAME ":3: retain= given twice"},
    {"default deny\nrole r\n  publish a max-payload=lots\nend\n", NAME ":3: invalid \"max-payload=lots\""},
    {"default deny\nrole r\n  publish a max-payload=1G\nend\n", NAME ":3: invalid \"max-payload=1G\""},
    {"default deny\nrole r\n  publish a max-payload=1 max-payload=2\nend\n", NAME ":3: max-payload= given twice"},
    {"default deny\nrole r\n  subscribe a retain=no\nend\n", NAME ":3: retain= applies to publish and read rules"},
    {"default deny\nrole r\n  subscribe a max-payload=1k\nend\n", NAME ":3: max-payload= applies to publish and read"},
    {"default deny\nrole r\n  deny publish a qos<=1\nend\n", NAME ":3: deny rules take no options"},
    {"default deny\nrole r\n  publish \"a b\" \"c\"d\nend\n", NAME ":3: text right after a closing quote"},
    {"default deny\nrole r\n  publish \"a\nend\n", NAME ":3: unterminated quoted string"},
    {"default deny\nrole r\n  publish a\xff\nend\n", NAME ":3: not valid UTF-8"},
};

static void test_parse_errors(void **state)
{
	(void)state;
	for(size_t i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++) {
		char err[1024] = "";
		const char *t = parse_errors[i].text;
		policy_t *p = policy_load_buffer(NAME, t, strlen(t), err, sizeof(err));
		if(p || strncmp(err, parse_errors[i].error, strlen(parse_errors[i].error)) != 0) {
			print_error("case %zu: %s\n  got:      %s\n  expected: %s...\n", i, t,
			            p ? "(loaded)" : err, parse_errors[i].error);
		}
		assert_null(p);
		assert_memory_equal(err, parse_errors[i].error, strlen(parse_errors[i].error));
	}
}

static void test_parse_error_file(void **state)
{
	(void)state;
	char err[256];
	assert_null(policy_load_file("/nonexistent/policy.conf", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/policy.conf: cannot open: No such file or directory");
	assert_null(policy_load_file(NULL, err, sizeof(err)));
	/* A NUL byte inside the buffer. */
	static const char nul[] = "default deny\nrole a\0x\n";
	assert_null(policy_load_buffer(NAME, nul, sizeof(nul) - 1, err, sizeof(err)));
	assert_string_equal(err, NAME ":2: NUL byte in line: is this a text file?");
	/* A tiny error buffer still gets a terminated prefix. */
	char tiny[8];
	assert_null(policy_load_buffer(NAME, "x", 1, tiny, sizeof(tiny)));
	assert_int_equal(strlen(tiny), 7);
}

static void test_parse_ok(void **state)
{
	(void)state;
	policy_t *p = load("\xEF\xBB\xBF# comment\n"
	                   "   # indented comment\n"
	                   "\n"
	                   "default deny\n"
	                   "unknown-devices role guest\n"
	                   "role guest\n"
	                   "end\n"
	                   "role r\n"
	                   "\tpublish a/#\t qos<=2 retain=yes max-payload=0\n"
	                   "  allow publish b\n"
	                   "  deny subscribe \"c/#\"\n"
	                   "  read %{id}/%{clientid}/%{site}/%{a.b-c_d}\r\n"
	                   "  publish 50%/%\n"
	                   "end\n"
	                   "device d role r site=hq\n"
	                   "device dé role r\n"
	                   "devices matching s-* role r line=l1 site=x\n");
	policy_stats_t st;
	policy_get_stats(p, &st);
	assert_int_equal(st.roles, 2);
	assert_int_equal(st.devices, 2);
	assert_int_equal(st.matches, 1);
	assert_int_equal(st.rules, 5);
	assert_string_equal(st.unknown_role, "guest");
	policy_role_info_t ri;
	assert_true(policy_role_at(p, 1, &ri));
	assert_string_equal(ri.name, "r");
	assert_int_equal(ri.line, 8);
	assert_int_equal(ri.allow_rules, 4);
	assert_int_equal(ri.deny_rules, 1);
	assert_false(policy_role_at(p, 2, &ri));
	assert_true(ask(p, "d", PUB, "50%/%"));
	assert_true(ask(p, "d", PUB, "b"));
	policy_free(p);

	policy_get_stats(NULL, &st);
	assert_int_equal(st.roles, 0);
	policy_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                   */

static void test_match_wildcards(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish a/+/c\n"
	                   "  publish x/#\n"
	                   "  publish #\n"
	                   "  read lit/one\n"
	                   "  read e//f\n"
	                   "  read +/+\n"
	                   "  read /lead\n"
	                   "end\n"
	                   "device d role r\n");
	assert_true(ask(p, "d", PUB, "a/b/c"));
	assert_true(ask(p, "d", PUB, "a//c"));
	assert_true(ask(p, "d", PUB, "anything/at/all"));
	assert_true(ask(p, "d", PUB, "x"));
	assert_true(ask(p, "d", PUB, "/"));
	assert_false(ask(p, "d", PUB, "$SYS/x"));
	assert_false(ask(p, "d", PUB, "$x"));
	assert_true(ask(p, "d", READ, "lit/one"));
	assert_false(ask(p, "d", READ, "lit/one/two"));
	assert_false(ask(p, "d", READ, "lit"));
	assert_true(ask(p, "d", READ, "lit/two")); /* +/+ */
	assert_true(ask(p, "d", READ, "e//f"));
	assert_true(ask(p, "d", READ, "e/f")); /* +/+ */
	assert_false(ask(p, "d", READ, "e///f"));
	assert_true(ask(p, "d", READ, "/lead"));
	assert_true(ask(p, "d", READ, "/")); /* +/+ matches two empty levels */
	assert_false(ask(p, "d", READ, "one"));
	assert_false(ask(p, "d", READ, "a/b/c"));
	assert_false(ask(p, "d", READ, "$SYS/x"));
	/* Rules for one access never grant another. */
	assert_false(ask(p, "d", SUB, "lit/one"));
	policy_free(p);
}

static void test_match_dollar_topics(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  read #\n"
	                   "  read +/#\n"
	                   "  read %{id}/#\n"
	                   "  subscribe #\n"
	                   "  subscribe +/broker/#\n"
	                   "end\n"
	                   "role ops\n"
	                   "  read $SYS/#\n"
	                   "  subscribe $SYS/broker/+\n"
	                   "end\n"
	                   "device d role r\n"
	                   "device o role ops\n");
	assert_true(ask(p, "d", READ, "a/b"));
	assert_false(ask(p, "d", READ, "$SYS/broker/uptime"));
	assert_false(ask(p, "d", SUB, "$SYS/#"));
	assert_false(ask(p, "d", SUB, "$SYS/broker/+"));
	assert_true(ask(p, "d", SUB, "#"));
	assert_true(ask(p, "d", SUB, "+/broker/x"));
	assert_true(ask(p, "o", READ, "$SYS/broker/uptime"));
	assert_true(ask(p, "o", READ, "$SYS"));
	assert_false(ask(p, "o", READ, "$SYSX/a"));
	assert_false(ask(p, "o", READ, "x/$SYS/a"));
	assert_true(ask(p, "o", SUB, "$SYS/broker/uptime"));
	assert_true(ask(p, "o", SUB, "$SYS/broker/+"));
	assert_false(ask(p, "o", SUB, "$SYS/broker/#"));
	assert_false(ask(p, "o", SUB, "$SYS/#"));
	assert_false(ask(p, "o", SUB, "#"));
	assert_false(ask(p, "o", SUB, "+/broker/uptime"));
	policy_free(p);
}

static void test_control_never(void **state)
{
	(void)state;
	/* A deny rule for $CONTROL is allowed (harmless); nothing grants it. */
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  deny publish $CONTROL/#\n"
	                   "  publish #\n"
	                   "  subscribe #\n"
	                   "end\n"
	                   "device d role r\n");
	policy_decision_t d = ask_full(p, "d", NULL, NULL, PUB, "$CONTROL/dynamic-security/v1", 0,
	                               false, 0);
	assert_false(d.allow);
	d = ask_full(p, "d", NULL, NULL, SUB, "$CONTROL/#", 0, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "$CONTROL topics are never granted");
	d = ask_full(p, "d", NULL, NULL, SUB, "$share/g/$CONTROL/x", 0, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "$CONTROL topics are never granted");
	assert_false(ask(p, "d", READ, "$control"));
	policy_free(p);
}

static void test_share(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  subscribe plant/+/telemetry/#\n"
	                   "  subscribe $SYS/x\n"
	                   "end\n"
	                   "device d role r\n");
	assert_true(ask(p, "d", SUB, "$share/g/plant/a/telemetry/#"));
	assert_true(ask(p, "d", SUB, "$share/g/plant/+/telemetry/t"));
	assert_true(ask(p, "d", SUB, "$share/g/$SYS/x"));
	assert_false(ask(p, "d", SUB, "$share/g/plant/#"));
	assert_false(ask(p, "d", SUB, "$share/g/#"));
	static const char *const bad[] = {"$share/", "$share/g", "$share/g/", "$share//plant/a/telemetry",
	                                  "$share/+/plant/a/telemetry", "$share/#/plant/a/telemetry",
	                                  "$share/g+/plant/a/telemetry"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		policy_decision_t d = ask_full(p, "d", NULL, NULL, SUB, bad[i], 0, false, 0);
		assert_false(d.allow);
	}
	policy_decision_t d = ask_full(p, "d", NULL, NULL, SUB, "$share/g", 0, false, 0);
	assert_string_equal(d.reason, "malformed shared subscription");
	/* $share is only special for SUBSCRIBE. */
	assert_false(ask(p, "d", READ, "$share/g/plant/a/telemetry/x"));
	policy_free(p);
}

static void test_subscribe_cover(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  subscribe a/+/c\n"
	                   "  subscribe b/#\n"
	                   "  subscribe x/%{id}/#\n"
	                   "  deny subscribe b/secret/#\n"
	                   "  deny subscribe b/+/private\n"
	                   "end\n"
	                   "device d role r\n");
	assert_true(ask(p, "d", SUB, "a/+/c"));
	assert_true(ask(p, "d", SUB, "a/b/c"));
	assert_false(ask(p, "d", SUB, "a/#"));
	assert_false(ask(p, "d", SUB, "a/+/#"));
	assert_false(ask(p, "d", SUB, "+/+/c"));
	assert_false(ask(p, "d", SUB, "#"));
	assert_true(ask(p, "d", SUB, "b"));
	assert_true(ask(p, "d", SUB, "b/public/x"));
	assert_true(ask(p, "d", SUB, "b/x/+/y"));
	/* Deny rules that overlap the requested filter refuse it. */
	assert_false(ask(p, "d", SUB, "b/#"));
	assert_false(ask(p, "d", SUB, "b/+/#"));
	assert_false(ask(p, "d", SUB, "b/+"));           /* overlaps b/secret/# at b/secret */
	assert_false(ask(p, "d", SUB, "b/secret"));      /* "b/secret/#" matches "b/secret" */
	assert_false(ask(p, "d", SUB, "b/secret/x"));
	assert_false(ask(p, "d", SUB, "b/q/private"));
	assert_false(ask(p, "d", SUB, "b/+/+"));
	assert_true(ask(p, "d", SUB, "b/q/public"));
	assert_true(ask(p, "d", SUB, "b/q/+/x"));
	/* Variables in subscribe rules are literal. */
	assert_true(ask(p, "d", SUB, "x/d/#"));
	assert_true(ask(p, "d", SUB, "x/d"));
	assert_false(ask(p, "d", SUB, "x/+/#"));
	assert_false(ask(p, "d", SUB, "x/e/#"));
	policy_free(p);
	/* "+/#" grants "#" (the same topics), but not "$SYS/#". */
	p = load("default deny\nrole r\n  subscribe +/#\nend\ndevice d role r\n");
	assert_true(ask(p, "d", SUB, "#"));
	assert_false(ask(p, "d", SUB, "$SYS/#"));
	policy_free(p);
}

static void test_subscribe_b_plus(void **state)
{
	(void)state;
	/* "b/+" overlaps "b/secret/#" (topic b/secret), so it is refused: check
	 * the deciding rule is reported. */
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  subscribe b/#\n"
	                   "  deny subscribe b/secret/#\n"
	                   "end\n"
	                   "device d role r\n");
	policy_decision_t d = ask_full(p, "d", NULL, NULL, SUB, "b/+", 0, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "denied by rule");
	assert_int_equal(d.rule_line, 4);
	assert_string_equal(d.rule_file, NAME);
	assert_string_equal(d.rule_text, "deny subscribe b/secret/#");
	d = ask_full(p, "d", NULL, NULL, SUB, "b/x", 0, false, 0);
	assert_true(d.allow);
	assert_int_equal(d.rule_line, 3);
	policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* Substitution                                                               */

static void test_substitution(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish plant/%{site}/%{line}/%{id}/telemetry/#\n"
	                   "  publish c/%{clientid}\n"
	                   "  publish z/%{zone}\n"
	                   "  subscribe plant/%{site}/%{line}/+/status\n"
	                   "end\n"
	                   "device d role r site=hq line=l1\n"
	                   "devices matching s* role r\n");
	assert_true(ask(p, "d", PUB, "plant/hq/l1/d/telemetry/t"));
	assert_false(ask(p, "d", PUB, "plant/hq/l1/e/telemetry/t"));
	assert_false(ask(p, "d", PUB, "plant/hq/l2/d/telemetry/t"));
	assert_false(ask(p, "d", PUB, "plant/x/l1/d/telemetry/t"));
	assert_true(ask(p, "d", PUB, "c/d"));
	/* The policy's attributes win over the certificate's. */
	static const char *const cert[] = {"site=evil", "line=l9", "zone=z1", NULL};
	assert_true(ask_full(p, "d", NULL, cert, PUB, "plant/hq/l1/d/telemetry/t", 0, false, 0).allow);
	assert_false(ask_full(p, "d", NULL, cert, PUB, "plant/evil/l9/d/telemetry/t", 0, false, 0).allow);
	assert_true(ask_full(p, "d", NULL, cert, PUB, "z/z1", 0, false, 0).allow);
	/* A pattern-matched device takes site/line from its certificate. */
	assert_true(ask_full(p, "s1", NULL, cert, PUB, "plant/evil/l9/s1/telemetry/t", 0, false, 0).allow);
	/* Missing attribute: the rule grants nothing. */
	assert_false(ask(p, "s1", PUB, "plant/hq/l1/s1/telemetry/t"));
	assert_false(ask(p, "d", PUB, "z/"));
	assert_false(ask(p, "d", PUB, "z/%{zone}"));
	/* Client id. */
	assert_true(ask_full(p, "d", "d-2", NULL, PUB, "c/d-2", 0, false, 0).allow);
	assert_false(ask_full(p, "d", "d-2", NULL, PUB, "c/d", 0, false, 0).allow);
	/* The variable level itself written in a topic is just text. */
	assert_false(ask(p, "d", PUB, "plant/%{site}/%{line}/%{id}/telemetry/t"));
	policy_free(p);
}

/* Hostile values never widen a rule: they match nothing in allow rules. */
static void test_substitution_hostile(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish v/%{zone}/x\n"
	                   "  subscribe v/%{zone}/x\n"
	                   "  read %{zone}/x\n"
	                   "  publish c/%{clientid}\n"
	                   "end\n"
	                   "device d role r\n");
	static const char *const values[] = {"+", "#", "a/b", "", "$SYS", "/", "+/#", "a/+"};
	for(size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char kv[32];
		snprintf(kv, sizeof(kv), "zone=%s", values[i]);
		const char *const attrs[] = {kv, NULL};
		char topic[64];
		static const char *const probes[] = {"v/a/x", "v/+/x", "v/#", "v//x", "v/a/b/x", "v/$SYS/x"};
		for(size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
			assert_false(ask_full(p, "d", NULL, attrs, PUB, probes[k], 0, false, 0).allow);
			assert_false(ask_full(p, "d", NULL, attrs, SUB, probes[k], 0, false, 0).allow);
		}
		/* Even the literal value as a topic level is refused when unusable. */
		snprintf(topic, sizeof(topic), "v/%s/x", values[i]);
		assert_false(ask_full(p, "d", NULL, attrs, PUB, topic, 0, false, 0).allow);
		assert_false(ask_full(p, "d", NULL, attrs, SUB, topic, 0, false, 0).allow);
		snprintf(topic, sizeof(topic), "%s/x", values[i]);
		assert_false(ask_full(p, "d", NULL, attrs, READ, topic, 0, false, 0).allow);
		assert_false(ask_full(p, "d", NULL, attrs, READ, "$SYS/x", 0, false, 0).allow);
		assert_false(ask_full(p, "d", values[i], NULL, PUB, "c/a", 0, false, 0).allow);
		assert_false(ask_full(p, "d", values[i], NULL, PUB, "c/+", 0, false, 0).allow);
		snprintf(topic, sizeof(topic), "c/%s", values[i]);
		assert_false(ask_full(p, "d", values[i], NULL, PUB, topic, 0, false, 0).allow);
	}
	/* A usable value works, and a '$' value never reaches a '$' topic
	 * through a first-level variable. */
	const char *const ok[] = {"zone=z", NULL};
	assert_true(ask_full(p, "d", NULL, ok, PUB, "v/z/x", 0, false, 0).allow);
	assert_true(ask_full(p, "d", NULL, ok, READ, "z/x", 0, false, 0).allow);
	policy_free(p);
}

/* Identities with wildcard characters are refused outright. */
static void test_hostile_identity(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "unknown-devices role any\n"
	                   "role any\n"
	                   "  publish d/%{id}\n"
	                   "  publish open\n"
	                   "end\n"
	                   "devices matching s? role any\n");
	static const char *const ids[] = {"+", "#", "a/b", "", "$SYS", "a\nb", "x+", "#x",
	                                  "s\xe0\xe0", "\xff", "s\xc0\x80"};
	for(size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		policy_subject_t who = {ids[i], ids[i], NULL, 0};
		const char *why = NULL;
		assert_false(policy_admit(p, &who, &why));
		assert_non_null(why);
		assert_null(policy_resolve(p, &who));
		policy_decision_t d = ask_full(p, ids[i], NULL, NULL, PUB, "open", 0, false, 0);
		assert_false(d.allow);
		assert_string_equal(d.reason, "client not admitted by the policy");
	}
	policy_subject_t nul = {NULL, "c", NULL, 0};
	assert_false(policy_admit(p, &nul, NULL));
	assert_false(policy_admit(p, NULL, NULL));
	assert_false(policy_admit(NULL, &nul, NULL));
	assert_true(ask(p, "ok", PUB, "d/ok"));
	assert_false(ask(p, "ok", PUB, "d/+"));
	policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* Deny wins, constraints                                                     */

static void test_deny_wins(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish a/#\n"
	                   "  publish a/b/c\n"
	                   "  deny publish a/+/c\n"
	                   "  read a/#\n"
	                   "  deny read a/%{id}/x\n"
	                   "  deny read a/%{zone}/y\n"
	                   "end\n"
	                   "device d role r\n");
	policy_decision_t d = ask_full(p, "d", NULL, NULL, PUB, "a/b/c", 0, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "denied by rule");
	assert_int_equal(d.rule_line, 5);
	assert_true(ask(p, "d", PUB, "a/b/d"));
	assert_true(ask(p, "d", PUB, "a/b/c/d"));
	assert_false(ask(p, "d", READ, "a/d/x"));
	assert_true(ask(p, "d", READ, "a/e/x"));
	/* A deny rule whose variable is missing or unusable still denies: it
	 * stands for any level, so missing data never opens anything. */
	assert_false(ask(p, "d", READ, "a/anything/y"));
	const char *const z[] = {"zone=z", NULL};
	assert_false(ask_full(p, "d", NULL, z, READ, "a/z/y", 0, false, 0).allow);
	assert_true(ask_full(p, "d", NULL, z, READ, "a/w/y", 0, false, 0).allow);
	const char *const zh[] = {"zone=#", NULL};
	assert_false(ask_full(p, "d", NULL, zh, READ, "a/w/y", 0, false, 0).allow);
	policy_free(p);
}

static void test_constraints(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish t/#  qos<=1 retain=no max-payload=16k\n"
	                   "  publish t/big  max-payload=1M\n"
	                   "  publish s qos<=0\n"
	                   "  subscribe t/# qos<=1\n"
	                   "  read t/# qos<=0 retain=no max-payload=10\n"
	                   "end\n"
	                   "device d role r\n");
	policy_decision_t d;
	assert_true(ask_full(p, "d", NULL, NULL, PUB, "t/x", 1, false, 16384).allow);
	d = ask_full(p, "d", NULL, NULL, PUB, "t/x", 2, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "qos above the rule's maximum");
	assert_int_equal(d.limit, 1);
	assert_int_equal(d.rule_line, 3);
	char line[256];
	policy_request_t req = {PUB, "t/x", 2, false, 0};
	assert_true(policy_decision_format(&d, &req, line, sizeof(line)) > 0);
	assert_string_equal(line, "qos 2 above max 1 (" NAME ":3: publish t/# qos<=1 retain=no max-payload=16k)");

	d = ask_full(p, "d", NULL, NULL, PUB, "t/x", 0, true, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "retain not allowed by the rule");
	assert_int_equal(d.limit, -1);
	d = ask_full(p, "d", NULL, NULL, PUB, "t/x", 0, false, 16385);
	assert_false(d.allow);
	assert_string_equal(d.reason, "payload larger than the rule's maximum");
	assert_int_equal(d.limit, 16384);
	req.qos = 0;
	req.payloadlen = 16385;
	policy_decision_format(&d, &req, line, sizeof(line));
	assert_string_equal(line, "payload of 16385 bytes above max 16384 (" NAME
	                          ":3: publish t/# qos<=1 retain=no max-payload=16k)");
	/* Another matching rule may still allow what the first refuses. */
	d = ask_full(p, "d", NULL, NULL, PUB, "t/big", 2, true, 1000000);
	assert_true(d.allow);
	assert_int_equal(d.rule_line, 4);
	d = ask_full(p, "d", NULL, NULL, PUB, "t/big", 0, false, 2000000);
	assert_false(d.allow);
	assert_int_equal(d.rule_line, 3); /* the earliest rule that matched */
	assert_false(ask_full(p, "d", NULL, NULL, PUB, "s", 1, false, 0).allow);
	assert_true(ask_full(p, "d", NULL, NULL, PUB, "s", 0, true, 1u << 30).allow);
	/* Subscribe: requested QoS. */
	assert_true(ask_full(p, "d", NULL, NULL, SUB, "t/#", 1, false, 0).allow);
	assert_false(ask_full(p, "d", NULL, NULL, SUB, "t/#", 2, false, 0).allow);
	/* Read. */
	assert_true(ask_full(p, "d", NULL, NULL, READ, "t/a", 0, false, 10).allow);
	assert_false(ask_full(p, "d", NULL, NULL, READ, "t/a", 1, false, 10).allow);
	assert_false(ask_full(p, "d", NULL, NULL, READ, "t/a", 0, true, 10).allow);
	assert_false(ask_full(p, "d", NULL, NULL, READ, "t/a", 0, false, 11).allow);
	/* Invalid QoS. */
	d = ask_full(p, "d", NULL, NULL, PUB, "s", 3, false, 0);
	assert_string_equal(d.reason, "invalid qos");
	d = ask_full(p, "d", NULL, NULL, PUB, "s", -1, false, 0);
	assert_string_equal(d.reason, "invalid qos");
	policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* Identities: devices, patterns, unknown devices                             */

static void test_unknown_devices(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish x\n"
	                   "end\n"
	                   "device d role r\n");
	policy_subject_t who = {"stranger", "stranger", NULL, 0};
	const char *why = NULL;
	assert_false(policy_admit(p, &who, &why));
	assert_string_equal(why, "identity not in policy and unknown devices are refused");
	policy_decision_t d = ask_full(p, "stranger", NULL, NULL, PUB, "x", 0, false, 0);
	assert_false(d.allow);
	assert_string_equal(d.reason, "client not admitted by the policy");
	who.identity = "d";
	assert_true(policy_admit(p, &who, &why));
	assert_null(why);
	policy_stats_t st;
	policy_get_stats(p, &st);
	assert_null(st.unknown_role);
	policy_free(p);

	p = load("default deny\n"
	         "unknown-devices role guest\n"
	         "role guest\n"
	         "  publish guest/%{id}\n"
	         "end\n");
	who.identity = "stranger";
	assert_true(policy_admit(p, &who, NULL));
	assert_true(ask(p, "stranger", PUB, "guest/stranger"));
	assert_false(ask(p, "stranger", PUB, "guest/other"));
	policy_binding_info_t bi;
	policy_binding_get_info(policy_resolve(p, &who), &bi);
	assert_int_equal(bi.kind, POLICY_BINDING_UNKNOWN);
	assert_null(bi.entry);
	assert_string_equal(bi.role, "guest");
	assert_int_equal(bi.line, 2);
	policy_free(p);

	p = load("default deny\nunknown-devices refuse\n");
	assert_false(policy_admit(p, &who, NULL));
	policy_free(p);
}

/* The iterators give tools what the engine parsed, in file order: roles,
 * rules (with their role and filter as written) and the entries binding
 * identities to roles (with the policy file's attributes, not limits). */
static void test_iterators(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role sensor\n"
	                   "  publish plant/%{site}/%{id}/telemetry/# qos<=1\n"
	                   "  deny read plant/+/+/command/#\n"
	                   "end\n"
	                   "device s-1 role sensor site=hq rate<=5/s\n"
	                   "role hmi\n"
	                   "  subscribe \"plant/#\"\n"
	                   "end\n"
	                   "devices matching hmi-* role hmi\n"
	                   "unknown-devices role hmi\n"
	                   "device s-2 role sensor\n");
	policy_rule_info_t ri;
	assert_true(policy_rule_at(p, 0, &ri));
	assert_string_equal(ri.role, "sensor");
	assert_false(ri.deny);
	assert_int_equal(ri.access, POLICY_PUBLISH);
	assert_string_equal(ri.filter, "plant/%{site}/%{id}/telemetry/#");
	assert_string_equal(ri.text, "publish plant/%{site}/%{id}/telemetry/# qos<=1");
	assert_string_equal(ri.file, NAME);
	assert_int_equal(ri.line, 3);
	assert_true(policy_rule_at(p, 1, &ri));
	assert_true(ri.deny);
	assert_int_equal(ri.access, POLICY_READ);
	assert_string_equal(ri.filter, "plant/+/+/command/#");
	assert_true(policy_rule_at(p, 2, &ri));
	assert_string_equal(ri.role, "hmi");
	assert_int_equal(ri.access, POLICY_SUBSCRIBE);
	assert_string_equal(ri.filter, "plant/#");
	assert_int_equal(ri.line, 8);
	assert_false(policy_rule_at(p, 3, &ri));
	assert_false(policy_rule_at(NULL, 0, &ri));

	const policy_binding_t *b;
	policy_binding_info_t bi;
	static const struct {
		policy_binding_kind_t kind;
		const char *entry, *role;
		int line;
		size_t nattrs;
	} want[] = {
	    {POLICY_BINDING_DEVICE, "s-1", "sensor", 6, 1},
	    {POLICY_BINDING_PATTERN, "hmi-*", "hmi", 10, 0},
	    {POLICY_BINDING_UNKNOWN, NULL, "hmi", 11, 0},
	    {POLICY_BINDING_DEVICE, "s-2", "sensor", 12, 0},
	};
	size_t n = 0;
	for(; (b = policy_binding_at(p, n)); n++) {
		assert_true(n < sizeof(want) / sizeof(want[0]));
		policy_binding_get_info(b, &bi);
		assert_int_equal(bi.kind, want[n].kind);
		if(want[n].entry) {
			assert_string_equal(bi.entry, want[n].entry);
		} else {
			assert_null(bi.entry);
		}
		assert_string_equal(bi.role, want[n].role);
		assert_int_equal(bi.line, want[n].line);
		assert_int_equal(bi.nattrs, want[n].nattrs);
	}
	assert_int_equal(n, 4);
	/* The device line's attribute (rate<= is a limit, not an attribute). */
	policy_binding_get_info(policy_binding_at(p, 0), &bi);
	assert_string_equal(bi.attrs[0].key, "site");
	assert_string_equal(bi.attrs[0].value, "hq");
	/* A binding from the iterator is the one policy_resolve finds. */
	policy_subject_t who = {"s-2", "s-2", NULL, 0};
	assert_ptr_equal(policy_resolve(p, &who), policy_binding_at(p, 3));
	assert_null(policy_binding_at(NULL, 0));

	policy_stats_t st;
	policy_get_stats(p, &st);
	assert_int_equal(st.unknown_line, 11);
	policy_free(p);

	p = load("default deny\nunknown-devices refuse\n");
	assert_null(policy_binding_at(p, 0)); /* `refuse` binds nothing */
	policy_get_stats(p, &st);
	assert_int_equal(st.unknown_line, 2);
	policy_free(p);
}

static void test_patterns(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role a\n  publish a\nend\n"
	                   "role b\n  publish b\nend\n"
	                   "role c\n  publish c\nend\n"
	                   "device sensor-special role c\n"
	                   "devices matching sensor-* role a\n"
	                   "devices matching sensor-1? role b\n" /* shadowed by the line before */
	                   "devices matching t?mp role b\n"
	                   "devices matching *-x-* role c\n"
	                   "devices matching ** role c\n");
	assert_true(ask(p, "sensor-12", PUB, "a"));
	assert_false(ask(p, "sensor-12", PUB, "b"));
	assert_true(ask(p, "sensor-special", PUB, "c"));
	assert_false(ask(p, "sensor-special", PUB, "a"));
	assert_true(ask(p, "sensor-", PUB, "a"));
	assert_true(ask(p, "temp", PUB, "b"));
	assert_true(ask(p, "tämp", PUB, "b")); /* '?' is one character, not one byte */
	assert_false(ask(p, "tmp", PUB, "b"));
	assert_false(ask(p, "teemp", PUB, "b"));
	assert_true(ask(p, "1-x-2", PUB, "c"));
	assert_true(ask(p, "anything", PUB, "c")); /* "**" catches the rest */
	policy_subject_t who = {"sensor-12", "sensor-12", NULL, 0};
	policy_binding_info_t bi;
	policy_binding_get_info(policy_resolve(p, &who), &bi);
	assert_int_equal(bi.kind, POLICY_BINDING_PATTERN);
	assert_string_equal(bi.entry, "sensor-*");
	assert_string_equal(bi.role, "a");
	assert_int_equal(bi.line, 12);
	who.identity = "sensor-special";
	policy_binding_get_info(policy_resolve(p, &who), &bi);
	assert_int_equal(bi.kind, POLICY_BINDING_DEVICE);
	assert_string_equal(bi.file, NAME);
	policy_binding_get_info(NULL, &bi);
	assert_int_equal(bi.kind, 0);
	policy_free(p);
}

static void test_resolved_other_policy(void **state)
{
	(void)state;
	const char *text = "default deny\nrole r\n  publish x\nend\ndevice d role r\n";
	policy_t *p1 = load(text);
	policy_t *p2 = load(text);
	policy_subject_t who = {"d", "d", NULL, 0};
	policy_request_t req = {PUB, "x", 0, false, 0};
	policy_decision_t d;
	const policy_binding_t *b1 = policy_resolve(p1, &who);
	assert_non_null(b1);
	policy_check_resolved(p1, b1, &who, &req, &d);
	assert_true(d.allow);
	/* A binding from another policy (e.g. before a reload) is refused. */
	policy_check_resolved(p2, b1, &who, &req, &d);
	assert_false(d.allow);
	policy_check_resolved(p1, NULL, &who, &req, &d);
	assert_false(d.allow);
	policy_check_resolved(p1, b1, NULL, &req, &d);
	assert_false(d.allow);
	policy_check_resolved(p1, b1, &who, NULL, &d);
	assert_false(d.allow);
	policy_check_resolved(p1, b1, &who, &req, NULL); /* must not crash */
	policy_check(NULL, &who, &req, &d);
	assert_false(d.allow);
	policy_free(p1);
	policy_free(p2);
}

/* policy_binding_same_rights: what a reload uses to decide whom to kick. */
static void test_same_rights(void **state)
{
	(void)state;
	policy_t *a = load("default deny\nrole r\n  publish x/%{id}\nend\nrole q\n  publish y\nend\n"
	                   "device d role r site=hq\ndevice e role q\n");
	policy_t *b = load("# reordered, same rights for d\ndefault deny\nrole q\n  publish y/#\nend\n"
	                   "role r\n  publish x/%{id}\nend\ndevice e role q\ndevice d role r site=hq\n");
	policy_t *c = load("default deny\nrole r\n  publish x/%{id}\nend\ndevice d role r site=hq2\n");
	policy_subject_t d = {"d", "d", NULL, 0}, e = {"e", "e", NULL, 0};
	const policy_binding_t *ad = policy_resolve(a, &d), *bd = policy_resolve(b, &d);
	const policy_binding_t *ae = policy_resolve(a, &e), *be = policy_resolve(b, &e);
	const policy_binding_t *cd = policy_resolve(c, &d);
	assert_true(policy_binding_same_rights(a, ad, b, bd));
	assert_true(policy_binding_same_rights(a, ad, a, ad));
	assert_false(policy_binding_same_rights(a, ae, b, be)); /* y became y/# */
	assert_false(policy_binding_same_rights(a, ad, c, cd)); /* attribute changed */
	assert_false(policy_binding_same_rights(a, ad, a, ae));
	assert_false(policy_binding_same_rights(b, ad, b, bd)); /* binding of another policy */
	assert_false(policy_binding_same_rights(a, NULL, b, bd));
	policy_free(a);
	policy_free(b);
	policy_free(c);
}

/* ------------------------------------------------------------------------ */
/* Hostile requests                                                           */

static void test_hostile_requests(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role r\n"
	                   "  publish #\n"
	                   "  subscribe #\n"
	                   "  read #\n"
	                   "end\n"
	                   "device d role r\n");
	static const struct {
		policy_access_t a;
		const char *topic;
		const char *reason;
	} cases[] = {
	    {PUB, "", "invalid topic name"},
	    {PUB, "#", "invalid topic name"},
	    {PUB, "+", "invalid topic name"},
	    {PUB, "a/+", "invalid topic name"},
	    {PUB, "a/#", "invalid topic name"},
	    {PUB, "a\xff", "invalid topic name"},
	    {PUB, "a\xc0\x80", "invalid topic name"}, /* overlong NUL */
	    {PUB, "\xed\xa0\x80", "invalid topic name"}, /* surrogate */
	    {READ, "", "invalid topic name"},
	    {READ, "a/b+", "invalid topic name"},
	    {SUB, "", "invalid topic filter"},
	    {SUB, "a#", "invalid topic filter"},
	    {SUB, "a/#/b", "invalid topic filter"},
	    {SUB, "a/b+/c", "invalid topic filter"},
	    {SUB, "++", "invalid topic filter"},
	    {SUB, "\xff", "invalid topic filter"},
	    {SUB, "$share/g/a#", "invalid topic filter"},
	    {SUB, "$share/g", "malformed shared subscription"},
	    {SUB, "$CONTROL/x", "$CONTROL topics are never granted"},
	    {PUB, "$CONTROL", "$CONTROL topics are never granted"},
	    {PUB, "$SYS/x", "no rule grants it"},
	    {READ, "$anything", "no rule grants it"},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_decision_t d = ask_full(p, "d", NULL, NULL, cases[i].a, cases[i].topic, 0, false, 0);
		if(d.allow || strcmp(d.reason, cases[i].reason) != 0) {
			print_error("case %zu (%s): got %s\n", i, cases[i].topic, d.reason);
		}
		assert_false(d.allow);
		assert_string_equal(d.reason, cases[i].reason);
	}
	/* NULL topic, bad access. */
	policy_subject_t who = {"d", "d", NULL, 0};
	policy_request_t req = {PUB, NULL, 0, false, 0};
	policy_decision_t d;
	policy_check(p, &who, &req, &d);
	assert_false(d.allow);
	req.topic = "x";
	req.access = (policy_access_t)7;
	policy_check(p, &who, &req, &d);
	assert_false(d.allow);
	/* Long topics and many levels, past the stack buffers. */
	size_t n = TOPIC_MAX_LEN;
	char *big = malloc(n + 1);
	assert_non_null(big);
	for(size_t i = 0; i < n; i++) {
		big[i] = (i % 2) ? '/' : 'a';
	}
	big[n] = '\0';
	assert_true(ask(p, "d", PUB, big));
	memset(big, '/', n);
	assert_true(ask(p, "d", PUB, big));
	assert_true(ask(p, "d", SUB, big));
	memset(big, 'x', n);
	assert_true(ask(p, "d", READ, big));
	policy_free(p);
	/* Nothing granted at all. */
	p = load("default deny\nrole r\nend\ndevice d role r\n");
	assert_false(ask(p, "d", PUB, "a"));
	assert_false(ask(p, "d", SUB, "a"));
	assert_false(ask(p, "d", READ, big));
	free(big);
	policy_free(p);
}

static void test_format(void **state)
{
	(void)state;
	char line[128];
	policy_decision_t d = {false, "no rule grants it", NULL, 0, NULL, -1};
	assert_int_equal(policy_decision_format(&d, NULL, line, sizeof(line)), 17);
	assert_string_equal(line, "no rule grants it");
	assert_int_equal(policy_decision_format(&d, NULL, line, 4), -1);
	assert_string_equal(line, "no ");
	assert_int_equal(policy_decision_format(NULL, NULL, line, sizeof(line)), 11);
	assert_int_equal(policy_decision_format(&d, NULL, NULL, 0), -1);
	assert_string_equal(policy_access_name(POLICY_PUBLISH), "publish");
	assert_string_equal(policy_access_name(POLICY_SUBSCRIBE), "subscribe");
	assert_string_equal(policy_access_name(POLICY_READ), "read");
	assert_string_equal(policy_access_name((policy_access_t)0), "?");
}

/* ------------------------------------------------------------------------ */
/* The shipped example                                                        */

static void test_example(void **state)
{
	(void)state;
	const char *src = getenv("PG_SOURCE_DIR");
	assert_non_null(src);
	char path[4096];
	snprintf(path, sizeof(path), "%s/config/policy.example", src);
	char err[1024] = "";
	policy_t *p = policy_load_file(path, err, sizeof(err));
	if(!p) {
		print_error("%s\n", err);
	}
	assert_non_null(p);

	const char *const l1[] = {"site=hq", "line=line1", NULL};
	const char *const l2[] = {"site=hq", "line=line2", NULL};
	static const struct {
		const char *id;
		int attrs; /* 0 none, 1 line1 certificate, 2 line2 certificate */
		policy_access_t a;
		const char *topic;
		int qos;
		bool retain;
		size_t size;
		bool allow;
	} cases[] = {
	    /* sensor: own telemetry (attributes from the certificate) */
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 1, false, 100, true},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 2, false, 100, false},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 0, true, 100, false},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 0, false, 16385, false},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-8/telemetry/temp", 0, false, 1, false},
	    {"sensor-7", 1, PUB, "plant/hq/line2/sensor-7/telemetry/temp", 0, false, 1, false},
	    {"sensor-7", 0, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 0, false, 1, false},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/status", 1, true, 10, true},
	    {"sensor-7", 1, SUB, "plant/hq/line1/sensor-7/config/#", 1, false, 0, true},
	    {"sensor-7", 1, READ, "plant/hq/line1/sensor-7/config/interval", 1, false, 10, true},
	    {"sensor-7", 1, READ, "plant/hq/line1/sensor-8/config/interval", 1, false, 10, false},
	    {"sensor-7", 1, SUB, "plant/hq/line1/+/config/#", 0, false, 0, false},
	    {"sensor-7", 1, PUB, "plant/hq/line1/sensor-7/command/stop", 0, false, 0, false},
	    {"sensor-7", 1, SUB, "#", 0, false, 0, false},
	    {"temp-l2-07", 0, PUB, "plant/hq/line2/temp-l2-07/telemetry/t", 0, false, 1, true},
	    {"temp-l2-07", 1, PUB, "plant/hq/line1/temp-l2-07/telemetry/t", 0, false, 1, false},
	    {"temp-l2-107", 0, PUB, "plant/hq/line2/temp-l2-107/telemetry/t", 0, false, 1, false},
	    /* actuator: its own commands only */
	    {"press-01", 0, SUB, "plant/hq/line1/press-01/command/#", 1, false, 0, true},
	    {"press-01", 0, READ, "plant/hq/line1/press-01/command/stop", 1, false, 8, true},
	    {"press-01", 0, SUB, "plant/hq/line1/+/command/#", 0, false, 0, false},
	    {"press-01", 0, READ, "plant/hq/line1/press-02/command/stop", 0, false, 8, false},
	    {"press-01", 2, READ, "plant/hq/line2/press-01/command/stop", 0, false, 8, false},
	    {"press-01", 0, PUB, "plant/hq/line1/press-01/status/state", 1, true, 8, true},
	    {"press-01", 0, PUB, "plant/hq/line1/press-01/command/stop", 0, false, 8, false},
	    {"press-02", 0, READ, "plant/hq/line2/press-02/command/start", 0, false, 8, true},
	    /* hmi: its line's telemetry and status, no commands */
	    {"hmi-line1", 0, SUB, "plant/hq/line1/+/telemetry/#", 0, false, 0, true},
	    {"hmi-line1", 0, READ, "plant/hq/line1/press-01/telemetry/pressure", 0, false, 8, true},
	    {"hmi-line1", 0, READ, "plant/hq/line1/press-01/status/state", 0, false, 8, true},
	    {"hmi-line1", 0, READ, "plant/hq/line2/press-02/telemetry/pressure", 0, false, 8, false},
	    {"hmi-line1", 0, SUB, "plant/hq/+/+/telemetry/#", 0, false, 0, false},
	    {"hmi-line1", 0, PUB, "plant/hq/line1/press-01/command/stop", 0, false, 8, false},
	    {"hmi-line1", 0, READ, "plant/hq/line1/press-01/command/stop", 0, false, 8, false},
	    /* engineer: commands to machines of its line */
	    {"eng-tanaka", 0, PUB, "plant/hq/line1/press-01/command/stop", 1, false, 8, true},
	    {"eng-tanaka", 0, PUB, "plant/hq/line1/press-01/command/stop", 1, true, 8, false},
	    {"eng-tanaka", 0, PUB, "plant/hq/line1/press-01/command/stop", 2, false, 8, false},
	    {"eng-tanaka", 0, PUB, "plant/hq/line2/press-02/command/stop", 1, false, 8, false},
	    {"eng-tanaka", 0, PUB, "plant/hq/line1/press-01/config/speed", 1, true, 8, true},
	    {"eng-tanaka", 0, SUB, "plant/hq/line1/+/status/#", 0, false, 0, true},
	    {"eng-tanaka", 0, SUB, "plant/hq/line1/#", 0, false, 0, false},
	    {"eng-tanaka", 0, SUB, "$SYS/#", 0, false, 0, false},
	    /* bridge: whitelisted telemetry only */
	    {"bridge-01", 0, SUB, "plant/+/+/+/telemetry/#", 1, false, 0, true},
	    {"bridge-01", 0, SUB, "$share/cloud/plant/+/+/+/telemetry/#", 1, false, 0, true},
	    {"bridge-01", 0, SUB, "plant/#", 0, false, 0, false},
	    {"bridge-01", 0, SUB, "#", 0, false, 0, false},
	    {"bridge-01", 0, READ, "plant/hq/line1/sensor-7/telemetry/temp", 1, false, 8, true},
	    {"bridge-01", 0, READ, "plant/hq/line1/sensor-7/telemetry/raw/wave", 1, false, 8, false},
	    {"bridge-01", 0, READ, "plant/hq/line1/press-01/command/stop", 0, false, 8, false},
	    {"bridge-01", 0, READ, "plant/hq/line1/press-01/config/x", 0, false, 8, false},
	    {"bridge-01", 0, PUB, "plant/hq/line1/sensor-7/telemetry/temp", 0, false, 8, false},
	    /* ops: $SYS */
	    {"ops-console", 0, SUB, "$SYS/#", 0, false, 0, true},
	    {"ops-console", 0, READ, "$SYS/broker/clients/connected", 0, false, 8, true},
	    {"ops-console", 0, SUB, "#", 0, false, 0, false},
	    {"ops-console", 0, SUB, "$CONTROL/#", 0, false, 0, false},
	    {"ops-console", 0, READ, "plant/hq/line1/x/telemetry/t", 0, false, 8, false},
	    /* unknown devices are refused */
	    {"stranger", 0, PUB, "plant/hq/line1/stranger/telemetry/t", 0, false, 8, false},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *kv = cases[i].attrs == 1 ? l1 : cases[i].attrs == 2 ? l2 : NULL;
		policy_decision_t d = ask_full(p, cases[i].id, NULL, kv, cases[i].a, cases[i].topic,
		                               cases[i].qos, cases[i].retain, cases[i].size);
		if(d.allow != cases[i].allow) {
			print_error("case %zu: %s %s %s: expected %s, got %s (%s line %d)\n", i, cases[i].id,
			            policy_access_name(cases[i].a), cases[i].topic,
			            cases[i].allow ? "allow" : "deny", d.allow ? "allow" : "deny", d.reason,
			            d.rule_line);
		}
		assert_int_equal(d.allow, cases[i].allow);
	}
	policy_subject_t who = {"stranger", "stranger", NULL, 0};
	assert_false(policy_admit(p, &who, NULL));
	policy_free(p);
}

/* ------------------------------------------------------------------------ */
/* Differential: the tries against common/topic.c                            */

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 8) & 0xffffff;
}

static void random_filter(char *out, size_t len, bool wild, bool var)
{
	static const char *const lv[] = {"a", "b", "", "$s", "x"};
	size_t n = 1 + rng() % 4;
	size_t at = 0;
	out[0] = '\0';
	for(size_t i = 0; i < n; i++) {
		const char *l;
		uint32_t r = rng() % 10;
		if(wild && r == 0) {
			l = "+";
		} else if(wild && r == 1 && i == n - 1) {
			l = "#";
		} else if(var && r == 2) {
			l = "%{id}";
		} else {
			l = lv[rng() % 5];
		}
		at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "/" : "", l);
	}
}

/* Replace %{id} with "x" (the identity used below). */
static void substitute(const char *in, char *out, size_t len)
{
	size_t o = 0;
	while(*in && o + 1 < len) {
		if(strncmp(in, "%{id}", 5) == 0) {
			out[o++] = 'x';
			in += 5;
		} else {
			out[o++] = *in++;
		}
	}
	out[o] = '\0';
}

static void test_differential(void **state)
{
	(void)state;
	for(int round = 0; round < 3000; round++) {
		char f[64], t[64], s[64], text[256], lit[64];
		random_filter(f, sizeof(f), true, true);
		random_filter(t, sizeof(t), false, false);
		random_filter(s, sizeof(s), true, false);
		if(!topic_valid_name(t) || !topic_valid_filter(s) || !topic_valid_filter(f)) {
			continue;
		}
		snprintf(text, sizeof(text),
		         "default deny\nrole r\n  publish %s\n  subscribe %s\nend\ndevice x role r\n", f,
		         f);
		policy_t *p = load(text);
		substitute(f, lit, sizeof(lit));
		bool m = ask(p, "x", PUB, t);
		bool want = topic_matches(lit, t) && !(t[0] == '$' && !strncmp(f, "%{id}", 5));
		if(m != want) {
			print_error("publish rule %s, topic %s: policy %d, topic_matches %d\n", f, t, m, want);
		}
		assert_int_equal(m, want);
		bool c = ask(p, "x", SUB, s);
		bool cwant = topic_filter_covers(lit, s) && !(s[0] == '$' && !strncmp(f, "%{id}", 5));
		if(c != cwant) {
			print_error("subscribe rule %s, filter %s: policy %d, covers %d\n", f, s, c, cwant);
		}
		assert_int_equal(c, cwant);
		policy_free(p);
	}
}

/* Every filter of up to 3 levels over a small alphabet as the only rule,
 * against every topic and filter: the tries answer exactly as topic.c. */
static void test_differential_exhaustive(void **state)
{
	(void)state;
	static const char *const at[] = {"a", "", "$s", "z", "+", "#"};
	char fs[200][16], ts[400][16];
	size_t nf = 0, nt = 0;
	for(size_t len = 1; len <= 3; len++) {
		size_t pw = 1;
		for(size_t i = 0; i < len; i++) {
			pw *= 6;
		}
		for(size_t k = 0; k < pw; k++) {
			char buf[16];
			size_t o = 0, v = k;
			bool fok = true;
			for(size_t i = 0; i < len; i++, v /= 6) {
				o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "/" : "", at[v % 6]);
				fok = fok && (v % 6) != 3;
			}
			if(topic_valid_filter(buf) && nt < 400) {
				snprintf(ts[nt++], sizeof(ts[0]), "%s", buf);
			}
			if(fok && topic_valid_filter(buf) && nf < 200) {
				snprintf(fs[nf++], sizeof(fs[0]), "%s", buf);
			}
		}
	}
	for(size_t i = 0; i < nf; i++) {
		char text[128];
		snprintf(text, sizeof(text),
		         "default deny\nrole r\n  publish \"%s\"\n  subscribe \"%s\"\nend\n"
		         "device x role r\n",
		         fs[i], fs[i]);
		policy_t *p = load(text);
		for(size_t j = 0; j < nt; j++) {
			if(topic_valid_name(ts[j])) {
				bool got = ask(p, "x", PUB, ts[j]);
				if(got != topic_matches(fs[i], ts[j])) {
					print_error("publish %s, topic %s: %d\n", fs[i], ts[j], got);
				}
				assert_int_equal(got, topic_matches(fs[i], ts[j]));
			}
			bool got = ask(p, "x", SUB, ts[j]);
			if(got != topic_filter_covers(fs[i], ts[j])) {
				print_error("subscribe %s, filter %s: %d\n", fs[i], ts[j], got);
			}
			assert_int_equal(got, topic_filter_covers(fs[i], ts[j]));
		}
		policy_free(p);
	}
}

/* Reference for "some topic matches both filters": enumerate topics over the
 * levels that occur in either, plus a fresh one. */
static bool ref_overlap(const char *d, const char *s)
{
	static const char *const alpha[] = {"a", "b", "", "$s", "x", "fresh"};
	const size_t na = sizeof(alpha) / sizeof(alpha[0]);
	for(size_t len = 1; len <= 5; len++) {
		size_t total = 1;
		for(size_t i = 0; i < len; i++) {
			total *= na;
		}
		for(size_t k = 0; k < total; k++) {
			char t[64];
			size_t at = 0, v = k;
			for(size_t i = 0; i < len; i++) {
				at += (size_t)snprintf(t + at, sizeof(t) - at, "%s%s", i ? "/" : "", alpha[v % na]);
				v /= na;
			}
			if(topic_valid_name(t) && topic_matches(d, t) && topic_matches(s, t)) {
				return true;
			}
		}
	}
	return false;
}

static void test_differential_overlap(void **state)
{
	(void)state;
	for(int round = 0; round < 400; round++) {
		char dflt[64], s[64], text[256];
		random_filter(dflt, sizeof(dflt), true, false);
		random_filter(s, sizeof(s), true, false);
		if(!topic_valid_filter(s) || !topic_valid_filter(dflt)) {
			continue;
		}
		snprintf(text, sizeof(text),
		         "default deny\nrole r\n  subscribe #\n  subscribe $s/#\n  deny subscribe %s\n"
		         "end\ndevice x role r\n",
		         dflt);
		policy_t *p = load(text);
		policy_decision_t d = ask_full(p, "x", NULL, NULL, SUB, s, 0, false, 0);
		bool denied = strcmp(d.reason, "denied by rule") == 0;
		bool want = ref_overlap(dflt, s);
		if(denied != want) {
			print_error("deny %s, subscribe %s: policy %d, reference %d\n", dflt, s, denied, want);
		}
		assert_int_equal(denied, want);
		policy_free(p);
	}
}

/* ------------------------------------------------------------------------ */
/* Size does not change the answer                                           */

static void test_large_policy(void **state)
{
	(void)state;
	const size_t n = 100000;
	size_t cap = n * 120 + 1024, at = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	at += (size_t)snprintf(text + at, cap - at, "default deny\nrole big\n");
	for(size_t i = 0; i < n; i++) {
		at += (size_t)snprintf(text + at, cap - at, "  publish plant/s%zu/+/dev%zu/telemetry/#\n",
		                       i % 97, i);
	}
	at += (size_t)snprintf(text + at, cap - at, "  deny publish plant/+/+/+/telemetry/secret\nend\n");
	for(size_t i = 0; i < n; i++) {
		at += (size_t)snprintf(text + at, cap - at, "device dev%zu role big site=s%zu\n", i, i % 97);
	}
	char err[512] = "";
	policy_t *p = policy_load_buffer(NAME, text, at, err, sizeof(err));
	free(text);
	if(!p) {
		print_error("%s\n", err);
	}
	assert_non_null(p);
	policy_stats_t st;
	policy_get_stats(p, &st);
	assert_int_equal(st.rules, n + 1);
	assert_int_equal(st.devices, n);
	for(size_t i = 0; i < 20000; i++) {
		char topic[128], id[32];
		size_t k = (i * 7919) % n;
		snprintf(id, sizeof(id), "dev%zu", k);
		snprintf(topic, sizeof(topic), "plant/s%zu/l/dev%zu/telemetry/t", k % 97, k);
		assert_true(ask(p, id, PUB, topic));
		snprintf(topic, sizeof(topic), "plant/s%zu/l/dev%zu/telemetry/secret", k % 97, k);
		assert_false(ask(p, id, PUB, topic));
	}
	policy_free(p);
}

static void test_limits(void **state)
{
	(void)state;
	policy_t *p = load("default deny\n"
	                   "role sensor\n"
	                   "  limit rate<=20/s bytes<=4k/s\n"
	                   "  publish t/%{id}\n"
	                   "end\n"
	                   "role free\n"
	                   "  publish f/#\n"
	                   "end\n"
	                   "device s1 role sensor site=hq\n"
	                   "device s2 role sensor rate<=5/s\n"
	                   "device f1 role free bytes<=0/s\n"
	                   "devices matching g-* role free rate<=7/s bytes<=1M/s\n");
	double rate, bytes;
	const char *ids[] = {"s1", "s2", "f1", "g-1"};
	const double want[][2] = {{20, 4096}, {5, 4096}, {-1, 0}, {7, 1048576}};
	for(size_t i = 0; i < 4; i++) {
		policy_subject_t who = {ids[i], ids[i], NULL, 0};
		const policy_binding_t *b = policy_resolve(p, &who);
		assert_non_null(b);
		policy_binding_limits(b, &rate, &bytes);
		assert_true(rate == want[i][0]);
		assert_true(bytes == want[i][1]);
	}
	policy_binding_limits(NULL, &rate, &bytes);
	assert_true(rate == -1 && bytes == -1);
	/* Limits are not rights: a changed limit keeps the same rights. */
	policy_t *q = load("default deny\n"
	                   "role sensor\n"
	                   "  publish t/%{id}\n"
	                   "end\n"
	                   "role free\n"
	                   "  publish f/#\n"
	                   "end\n"
	                   "device s1 role sensor site=hq\n");
	policy_subject_t who = {"s1", "s1", NULL, 0};
	assert_true(policy_binding_same_rights(p, policy_resolve(p, &who), q, policy_resolve(q, &who)));
	policy_free(q);
	policy_free(p);

	static const char *const bad[][2] = {
	    {"default deny\nrole r\n  limit rate<=x/s\nend\n", "policy:3: limit \"rate<=x/s\": the rate"},
	    {"default deny\nrole r\n  limit rate<=5\nend\n", "policy:3: limit \"rate<=5\": write rate<=N/s"},
	    {"default deny\nrole r\n  limit speed<=5/s\nend\n", "policy:3: unknown limit"},
	    {"default deny\nrole r\n  limit\nend\n", "policy:3: expected: limit"},
	    {"default deny\nrole r\n  limit rate<=1/s\n  limit bytes<=1k/s\nend\n", "policy:4: limit is duplicate"},
	    {"default deny\nrole r\n  limit qos=1\nend\n", "policy:3: \"qos=1\" is not a limit"},
	    {"default deny\nrole r\nend\ndevice d role r rate<=1/s rate<=2/s\n", "policy:4: rate<= is duplicate"},
	    {"default deny\nrole r\nend\ndevice d role r bytes<=lots/s\n", "policy:4: limit \"bytes<=lots/s\": give bytes"},
	    {"default deny\nlimit rate<=1/s\n", "policy:2: limit outside a role"},
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512];
		policy_t *x = policy_load_buffer("policy", bad[i][0], strlen(bad[i][0]), err, sizeof(err));
		assert_null(x);
		if(strncmp(err, bad[i][1], strlen(bad[i][1])) != 0) {
			fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, bad[i][1]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_parse_error_file),
	    cmocka_unit_test(test_parse_ok),
	    cmocka_unit_test(test_match_wildcards),
	    cmocka_unit_test(test_match_dollar_topics),
	    cmocka_unit_test(test_control_never),
	    cmocka_unit_test(test_share),
	    cmocka_unit_test(test_subscribe_cover),
	    cmocka_unit_test(test_subscribe_b_plus),
	    cmocka_unit_test(test_substitution),
	    cmocka_unit_test(test_substitution_hostile),
	    cmocka_unit_test(test_hostile_identity),
	    cmocka_unit_test(test_deny_wins),
	    cmocka_unit_test(test_constraints),
	    cmocka_unit_test(test_unknown_devices),
	    cmocka_unit_test(test_iterators),
	    cmocka_unit_test(test_patterns),
	    cmocka_unit_test(test_resolved_other_policy),
	    cmocka_unit_test(test_same_rights),
	    cmocka_unit_test(test_hostile_requests),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_example),
	    cmocka_unit_test(test_differential),
	    cmocka_unit_test(test_differential_exhaustive),
	    cmocka_unit_test(test_differential_overlap),
	    cmocka_unit_test(test_large_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
