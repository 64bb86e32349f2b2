/*
 * doctor_policy.c — plantgate-doctor's questions to the device policy.
 *
 * The policy is loaded with policy_load_file(), exactly as the plugin loads
 * it, and every question is answered by the policy engine itself
 * (policy_resolve + policy_check_resolved), never by re-implementing its
 * rules here.  What this file adds is the choice of questions.  To find
 * topics worth asking about, it walks the rules and the device entries the
 * engine parsed (policy_rule_at, policy_binding_at: the file is read once,
 * by the engine's own parser), and
 * instantiates each filter for a concrete device A: variables become A's
 * values, and in turn each '+' level, the '#' tail or the %{id} level becomes
 * another device B's id.  If the engine lets A publish to (or subscribe to
 * and receive) such a topic that names B but not A, A can forge or read
 * another machine's data.
 *
 * A role counts as a device role when it publishes under its own identity
 * (an allow publish rule with a %{id} or %{clientid} level) or when the
 * operator names it with --device-roles; engineer stations, HMIs, the bridge
 * and consoles, which legitimately act on other devices' topics, are not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "policy.h"
#include "topic.h"
#include "util.h"

#define DP_TOPIC_MAX 1024

/* Does a rule's filter have a level equal to one of the words? */
static bool dp_has_level(const char *filter, const char *const *words)
{
	const char *p = filter;
	while(p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		for(size_t i = 0; words[i]; i++) {
			if(strlen(words[i]) == n && strncmp(p, words[i], n) == 0) {
				return true;
			}
		}
		p = e ? e + 1 : NULL;
	}
	return false;
}

static const char *const dp_self_words[] = {"%{id}", "%{clientid}", NULL};
static const char *const dp_command_words[] = {"command", "commands", "cmd", NULL};

static bool dp_role_listed(const char *list, const char *role)
{
	size_t n = strlen(role);
	for(const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if(len == n && strncmp(p, role, n) == 0) {
			return true;
		}
		p = e ? e + 1 : NULL;
	}
	return false;
}

static bool dp_is_device_role(const policy_t *p, const char *role, const char *listed)
{
	if(listed) {
		return dp_role_listed(listed, role);
	}
	policy_rule_info_t r;
	for(size_t i = 0; policy_rule_at(p, i, &r); i++) {
		if(!r.deny && r.access == POLICY_PUBLISH && strcmp(r.role, role) == 0 &&
		   dp_has_level(r.filter, dp_self_words)) {
			return true;
		}
	}
	return false;
}

static bool dp_takes_commands(const policy_t *p, const char *role)
{
	policy_rule_info_t r;
	for(size_t i = 0; policy_rule_at(p, i, &r); i++) {
		if(!r.deny && r.access != POLICY_PUBLISH && strcmp(r.role, role) == 0 &&
		   dp_has_level(r.filter, dp_command_words)) {
			return true;
		}
	}
	return false;
}

/* A concrete device of a policy entry: identities A and B, its attributes. */
typedef struct dp_subject {
	policy_binding_info_t e; /* the entry: device, pattern or unknown-devices */
	char a[128];
	char b[128];
	policy_attr_t attrs[2]; /* what a certificate would carry */
	policy_subject_t who;
	const policy_binding_t *binding;
} dp_subject_t;

static void dp_glob_instance(const char *glob, char fill, const char *star, char *out, size_t len)
{
	size_t at = 0;
	for(const char *p = glob; *p && at + 1 < len; p++) {
		if(*p == '*') {
			for(const char *q = star; *q && at + 1 < len; q++) {
				out[at++] = *q;
			}
		} else {
			out[at++] = *p == '?' ? fill : *p;
		}
	}
	out[at] = '\0';
}

static const char *dp_attr(const dp_subject_t *sj, const char *key)
{
	for(size_t i = 0; i < sj->e.nattrs; i++) {
		if(strcmp(sj->e.attrs[i].key, key) == 0) {
			return sj->e.attrs[i].value;
		}
	}
	for(size_t i = 0; i < 2; i++) {
		if(strcmp(sj->attrs[i].key, key) == 0) {
			return sj->attrs[i].value;
		}
	}
	return "x";
}

/* Make sj a device with identity A (sj->a, already set) and the attributes
 * a certificate would carry, and resolve it: false when the policy refuses it. */
static bool dp_subject_resolve(dp_subject_t *sj, const policy_t *p)
{
	sj->attrs[0].key = "site";
	sj->attrs[0].value = "doctor-site";
	sj->attrs[1].key = "line";
	sj->attrs[1].value = "doctor-line";
	sj->who.identity = sj->a;
	sj->who.clientid = sj->a;
	sj->who.attrs = sj->attrs;
	sj->who.nattrs = 2;
	sj->binding = policy_resolve(p, &sj->who);
	if(!sj->binding) {
		return false;
	}
	policy_binding_get_info(sj->binding, &sj->e);
	return true;
}

/* Build the subject for entry eb; false when its device A does not resolve
 * to eb (an earlier entry takes it). */
static bool dp_subject_init(dp_subject_t *sj, const policy_t *p, const policy_binding_t *eb)
{
	policy_binding_info_t e;
	policy_binding_get_info(eb, &e);
	memset(sj, 0, sizeof(*sj));
	if(e.kind == POLICY_BINDING_DEVICE) {
		util_strlcpy(sj->a, e.entry, sizeof(sj->a));
		util_strlcpy(sj->b, "doctor-peer", sizeof(sj->b));
		const policy_binding_t *ob;
		for(size_t i = 0; (ob = policy_binding_at(p, i)); i++) {
			policy_binding_info_t o;
			policy_binding_get_info(ob, &o);
			if(o.kind == POLICY_BINDING_DEVICE && strcmp(o.entry, e.entry) != 0) {
				util_strlcpy(sj->b, o.entry, sizeof(sj->b));
				break;
			}
		}
	} else if(e.kind == POLICY_BINDING_PATTERN) {
		dp_glob_instance(e.entry, 'a', "doctor-a", sj->a, sizeof(sj->a));
		dp_glob_instance(e.entry, 'b', "doctor-b", sj->b, sizeof(sj->b));
		if(strcmp(sj->a, sj->b) == 0) {
			util_strlcpy(sj->b, "doctor-peer", sizeof(sj->b));
		}
	} else {
		util_strlcpy(sj->a, "doctor-unlisted-a", sizeof(sj->a));
		util_strlcpy(sj->b, "doctor-unlisted-b", sizeof(sj->b));
	}
	return dp_subject_resolve(sj, p) && sj->binding == eb;
}

enum dp_mode { DP_PLAIN, DP_ID_IS_B, DP_PLUS_IS_B, DP_HASH_IS_B };

/* Instantiate filter for subject sj under mode (pos: which '+' becomes B).
 * Returns false when the mode does not apply or the result is too long. */
static bool dp_instance(const dp_subject_t *sj, const char *filter, enum dp_mode mode, int pos, char *out,
                        size_t len)
{
	size_t at = 0;
	int plus = 0;
	bool applied = mode == DP_PLAIN;
	out[0] = '\0';
	for(const char *p = filter; p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char level[256];
		const char *v;
		if(n >= sizeof(level)) {
			return false;
		}
		memcpy(level, p, n);
		level[n] = '\0';
		if(strcmp(level, "%{id}") == 0 || strcmp(level, "%{clientid}") == 0) {
			v = mode == DP_ID_IS_B ? sj->b : sj->a;
			applied |= mode == DP_ID_IS_B;
		} else if(n > 3 && strncmp(level, "%{", 2) == 0 && level[n - 1] == '}') {
			level[n - 1] = '\0';
			v = dp_attr(sj, level + 2);
		} else if(strcmp(level, "+") == 0) {
			bool me = mode == DP_PLUS_IS_B && plus == pos;
			v = me ? sj->b : "x";
			applied |= me;
			plus++;
		} else if(strcmp(level, "#") == 0) {
			v = mode == DP_HASH_IS_B ? sj->b : "x";
			applied |= mode == DP_HASH_IS_B;
		} else {
			v = level;
		}
		if(util_snprintf(out + at, len - at, "%s%s", at ? "/" : "", v) < 0) {
			return false;
		}
		at += strlen(out + at);
		p = e ? e + 1 : NULL;
	}
	return applied;
}

static bool dp_topic_has(const char *topic, const char *word)
{
	const char *words[2] = {word, NULL};
	return dp_has_level(topic, words);
}

/* Ask the engine; fill d. */
static bool dp_ask(const policy_t *p, const dp_subject_t *sj, policy_access_t a, const char *topic,
                   policy_decision_t *d)
{
	policy_request_t req = {a, topic, 0, false, 0};
	policy_check_resolved(p, sj->binding, &sj->who, &req, d);
	return d->allow;
}

static void dp_rule_ev(const policy_decision_t *d, const char *fallback, char *buf, size_t len)
{
	if(d->rule_file) {
		util_snprintf(buf, len, "%s:%d: %s", d->rule_file, d->rule_line, d->rule_text ? d->rule_text : "");
	} else {
		util_snprintf(buf, len, "%s", fallback);
	}
}

/* Findings are reported once per (check, role, deciding rule line). */
typedef struct dp_seen {
	char keys[256][96];
	size_t n;
} dp_seen_t;

static bool dp_first(dp_seen_t *seen, const char *check, const char *role, int line)
{
	char k[96];
	util_snprintf(k, sizeof(k), "%s|%s|%d", check, role, line);
	for(size_t i = 0; i < seen->n; i++) {
		if(strcmp(seen->keys[i], k) == 0) {
			return false;
		}
	}
	if(seen->n < sizeof(seen->keys) / sizeof(seen->keys[0])) {
		util_strlcpy(seen->keys[seen->n++], k, sizeof(seen->keys[0]));
	}
	return true;
}

static const char *dp_who(const dp_subject_t *sj, char *buf, size_t len)
{
	if(sj->e.kind == POLICY_BINDING_DEVICE) {
		util_snprintf(buf, len, "device %s", sj->e.entry);
	} else if(sj->e.kind == POLICY_BINDING_PATTERN) {
		util_snprintf(buf, len, "devices matching %s, e.g. %s", sj->e.entry, sj->a);
	} else {
		util_snprintf(buf, len, "unlisted devices");
	}
	return buf;
}

/* POL-CROSS-DEVICE for one subject.  Returns the number of findings about
 * device roles (notes about other roles are not counted). */
static int dp_cross(const policy_t *p, const dp_subject_t *sj, bool device_role,
                    dp_seen_t *seen, doctor_report_t *r)
{
	int found = 0;
	char topic[DP_TOPIC_MAX], ev[1024], who[256];
	policy_rule_info_t ru;
	for(size_t i = 0; policy_rule_at(p, i, &ru); i++) {
		if(ru.deny || ru.access == POLICY_READ || strcmp(ru.role, sj->e.role) != 0) {
			continue;
		}
		int nplus = 0;
		for(const char *c = ru.filter; *c; c++) {
			nplus += (*c == '+' && (c == ru.filter || c[-1] == '/') && (c[1] == '/' || !c[1]));
		}
		/* Modes: the %{id} level as B, each '+' as B (last first), the '#' tail as B. */
		for(int m = 0; m < nplus + 2; m++) {
			enum dp_mode mode = m == 0 ? DP_ID_IS_B : m <= nplus ? DP_PLUS_IS_B : DP_HASH_IS_B;
			int pos = nplus - m;
			policy_decision_t d;
			if(!dp_instance(sj, ru.filter, mode, pos, topic, sizeof(topic)) ||
			   !dp_topic_has(topic, sj->b) || dp_topic_has(topic, sj->a) || !topic_valid_name(topic)) {
				continue;
			}
			bool allowed;
			if(ru.access == POLICY_PUBLISH) {
				allowed = dp_ask(p, sj, POLICY_PUBLISH, topic, &d);
			} else {
				policy_decision_t rd;
				allowed = dp_ask(p, sj, POLICY_SUBSCRIBE, topic, &d) && dp_ask(p, sj, POLICY_READ, topic, &rd);
			}
			/* Non-device roles: one note per role is enough. */
			if(!allowed || topic[0] == '$' || !dp_first(seen, "cross", sj->e.role, device_role ? d.rule_line : 0)) {
				continue;
			}
			found += device_role;
			dp_rule_ev(&d, ru.filter, ev, sizeof(ev));
			bool pub = ru.access == POLICY_PUBLISH;
			if(device_role) {
				doctor_report_add(r, "POL-CROSS-DEVICE", pub ? DOCTOR_CRITICAL : DOCTOR_WARNING, ev,
				                  "use the device's own level in the rule: plant/%{site}/%{line}/%{id}/...",
				                  "role %s (%s) may %s another device's topics, e.g. %s %s: a compromised "
				                  "device could %s",
				                  sj->e.role, dp_who(sj, who, sizeof(who)), pub ? "publish to" : "read",
				                  pub ? "publish" : "subscribe", topic,
				                  pub ? "forge that machine's data" : "read that machine's data");
			} else {
				doctor_report_add(r, "POL-CROSS-DEVICE", DOCTOR_INFO, ev, NULL,
				                  "role %s (%s) is not a device role and may %s other devices' topics, e.g. "
				                  "%s: as intended for panels, engineers' stations and the bridge; confirm",
				                  sj->e.role, dp_who(sj, who, sizeof(who)), pub ? "publish to" : "read",
				                  topic);
			}
		}
	}
	return found;
}

/* Topics a command could travel on, for subject sj: every command-level
 * filter of any role's subscribe/read rules and of sj's own publish rules,
 * instantiated with sj's values and with B's id. */
static int dp_control(const policy_t *p, const dp_subject_t *sj, dp_seen_t *seen,
                      doctor_report_t *r)
{
	int found = 0;
	char topic[DP_TOPIC_MAX], ev[1024], who[256];
	policy_rule_info_t ru;
	for(size_t i = 0; policy_rule_at(p, i, &ru); i++) {
		bool own_pub = ru.access == POLICY_PUBLISH && strcmp(ru.role, sj->e.role) == 0;
		if(ru.deny || !dp_has_level(ru.filter, dp_command_words) ||
		   (ru.access == POLICY_PUBLISH && !own_pub)) {
			continue;
		}
		for(int m = 0; m < 2; m++) {
			policy_decision_t d;
			if(!dp_instance(sj, ru.filter, m ? DP_ID_IS_B : DP_PLAIN, 0, topic, sizeof(topic)) ||
			   !topic_valid_name(topic) || !dp_ask(p, sj, POLICY_PUBLISH, topic, &d) ||
			   !dp_first(seen, "control", sj->e.role, d.rule_line)) {
				continue;
			}
			found++;
			dp_rule_ev(&d, ru.filter, ev, sizeof(ev));
			doctor_report_add(r, "POL-CONTROL", DOCTOR_WARNING, ev,
			                  "remove the grant, or add to the role: deny publish plant/+/+/+/command/#",
			                  "role %s (%s) takes no commands but may send one: publish %s", sj->e.role,
			                  dp_who(sj, who, sizeof(who)), topic);
		}
	}
	return found;
}

/* POL-UNKNOWN: who gets in without being listed. */
static void dp_check_unknown(const policy_t *p, const char *path, doctor_report_t *r)
{
	char ev[2048];
	bool warned = false;
	const policy_binding_t *b;
	for(size_t i = 0; (b = policy_binding_at(p, i)); i++) {
		policy_binding_info_t e;
		policy_binding_get_info(b, &e);
		if(e.kind == POLICY_BINDING_UNKNOWN) {
			util_snprintf(ev, sizeof(ev), "%s:%d: unknown-devices role %s", path, e.line, e.role);
			doctor_report_add(r, "POL-UNKNOWN", DOCTOR_WARNING, ev, "unknown-devices refuse",
			                  "identities not listed in the policy get role %s: every certificate the CA "
			                  "ever issued can connect",
			                  e.role);
			warned = true;
		} else if(e.kind == POLICY_BINDING_PATTERN && strcmp(e.entry, "*") == 0) {
			util_snprintf(ev, sizeof(ev), "%s:%d: devices matching * role %s", path, e.line, e.role);
			doctor_report_add(r, "POL-UNKNOWN", DOCTOR_WARNING, ev,
			                  "list devices by name or by a narrower pattern (e.g. sensor-*)",
			                  "`devices matching *` gives role %s to every identity", e.role);
			warned = true;
		}
	}
	if(warned) {
		return;
	}
	policy_stats_t st;
	policy_get_stats(p, &st);
	if(st.unknown_line) {
		util_snprintf(ev, sizeof(ev), "%s:%d: unknown-devices refuse", path, st.unknown_line);
	} else {
		util_snprintf(ev, sizeof(ev), "%s: unknown-devices refuse is the default", path);
	}
	doctor_report_add(r, "POL-UNKNOWN", DOCTOR_PASS, ev, NULL, "devices not listed in the policy are refused");
}

/* How many findings each question gave, over all subjects. */
typedef struct dp_tally {
	int wild, cross, control, subjects;
} dp_tally_t;

/* POL-WILDCARD and POL-CONTROL's $CONTROL question for one subject. */
static void dp_wildcards(const policy_t *p, const dp_subject_t *sj, bool dev, dp_seen_t *seen,
                         dp_tally_t *t, doctor_report_t *r)
{
	policy_decision_t d;
	char ev[2048], who[256], topic[DP_TOPIC_MAX];

	/* Everything: '#' or any topic at all. */
	util_snprintf(topic, sizeof(topic), "doctor-probe/%s", sj->b);
	if(dp_ask(p, sj, POLICY_SUBSCRIBE, "#", &d) && dp_first(seen, "wild-sub", sj->e.role, d.rule_line)) {
		dp_rule_ev(&d, "#", ev, sizeof(ev));
		doctor_report_add(r, "POL-WILDCARD", dev ? DOCTOR_CRITICAL : DOCTOR_WARNING, ev,
		                  "grant the device's own subtree only: plant/%{site}/%{line}/%{id}/config/#",
		                  "role %s (%s) may subscribe to # : it receives every message of the plant",
		                  sj->e.role, dp_who(sj, who, sizeof(who)));
		t->wild++;
	}
	if(dp_ask(p, sj, POLICY_PUBLISH, topic, &d) && dp_first(seen, "wild-pub", sj->e.role, d.rule_line)) {
		dp_rule_ev(&d, "#", ev, sizeof(ev));
		doctor_report_add(r, "POL-WILDCARD", dev ? DOCTOR_CRITICAL : DOCTOR_WARNING, ev,
		                  "grant the device's own subtree only: plant/%{site}/%{line}/%{id}/telemetry/#",
		                  "role %s (%s) may publish to any topic (e.g. %s): it could write into every "
		                  "machine's topics",
		                  sj->e.role, dp_who(sj, who, sizeof(who)), topic);
		t->wild++;
	}
	/* $CONTROL: the parser refuses such grants; ask anyway. */
	if(dp_ask(p, sj, POLICY_PUBLISH, "$CONTROL/dynamic-security/v1", &d)) {
		dp_rule_ev(&d, "$CONTROL", ev, sizeof(ev));
		doctor_report_add(r, "POL-CONTROL", DOCTOR_CRITICAL, ev, "remove the rule",
		                  "role %s may publish to $CONTROL: it could reconfigure the broker", sj->e.role);
		t->control++;
	}
}

void doctor_policy_check(const char *path, const char *device_roles, const char *from, doctor_report_t *r)
{
	char err[2048], ev[2048];
	policy_t *p = NULL;
	dp_seen_t *seen = NULL;
	dp_tally_t t = {0};

	p = policy_load_file(path, err, sizeof(err));
	if(!p) {
		util_snprintf(ev, sizeof(ev), "%s%s%s", err, from ? " (named at " : "", from ? from : "");
		if(from) {
			util_strlcpy(ev + strlen(ev), ")", sizeof(ev) - strlen(ev));
		}
		doctor_report_add(r, "POL-LOAD", DOCTOR_CRITICAL, ev, "fix the line, then: plantgate-policy check FILE",
		                  "the policy does not load: the plugin refuses to start with it (or keeps the "
		                  "previous one on reload)");
		goto out;
	}
	policy_stats_t st;
	policy_get_stats(p, &st);
	util_snprintf(ev, sizeof(ev), "%s: default deny; %zu roles, %zu devices, %zu patterns, %zu rules", path,
	              st.roles, st.devices, st.matches, st.rules);
	doctor_report_add(r, "POL-LOAD", DOCTOR_PASS, ev, NULL,
	                  "the policy loads: anything not granted is denied, deny rules win");
	seen = calloc(1, sizeof(*seen));
	if(!seen) {
		r->failed = true;
		goto out;
	}
	dp_check_unknown(p, path, r);

	/* The questions, per device or pattern entry. */
	const policy_binding_t *b;
	for(size_t i = 0; (b = policy_binding_at(p, i)); i++) {
		dp_subject_t sj;
		if(!dp_subject_init(&sj, p, b)) {
			continue;
		}
		t.subjects++;
		bool dev = dp_is_device_role(p, sj.e.role, device_roles);
		dp_wildcards(p, &sj, dev, seen, &t, r);
		t.cross += dp_cross(p, &sj, dev, seen, r);
		if(dev && !dp_takes_commands(p, sj.e.role)) {
			t.control += dp_control(p, &sj, seen, r);
		}
	}
	util_snprintf(ev, sizeof(ev), "%s: %d device entries questioned through the policy engine", path, t.subjects);
	if(!t.wild) {
		doctor_report_add(r, "POL-WILDCARD", DOCTOR_PASS, ev, NULL,
		                  "no role may subscribe to # or publish to arbitrary topics");
	}
	if(!t.cross) {
		doctor_report_add(r, "POL-CROSS-DEVICE", DOCTOR_PASS, ev, NULL,
		                  "no role may publish to or read another device's topics");
	}
	if(!t.control) {
		doctor_report_add(r, "POL-CONTROL", DOCTOR_PASS, ev, NULL,
		                  "devices that take no commands cannot send any; $CONTROL is never granted");
	}
out:
	free(seen);
	policy_free(p);
}

int doctor_policy_can_publish(const char *path, const char *identity, char *topic, size_t len, char *rule,
                              size_t rulelen)
{
	char err[1024];
	dp_subject_t sj;
	policy_t *p = policy_load_file(path, err, sizeof(err));
	if(!p) {
		return -1;
	}
	/* The entry the identity resolves to: its device line, a pattern, or
	 * unknown-devices. */
	int rc = 0;
	memset(&sj, 0, sizeof(sj));
	util_strlcpy(sj.a, identity, sizeof(sj.a));
	util_strlcpy(sj.b, "doctor-peer", sizeof(sj.b));
	if(!dp_subject_resolve(&sj, p)) {
		goto out;
	}
	policy_rule_info_t ru;
	for(size_t i = 0; policy_rule_at(p, i, &ru); i++) {
		policy_decision_t d;
		if(ru.deny || ru.access != POLICY_PUBLISH || strcmp(ru.role, sj.e.role) != 0 ||
		   !dp_instance(&sj, ru.filter, DP_PLAIN, 0, topic, len) || !topic_valid_name(topic)) {
			continue;
		}
		if(dp_ask(p, &sj, POLICY_PUBLISH, topic, &d)) {
			dp_rule_ev(&d, ru.filter, rule, rulelen);
			rc = 1;
			break;
		}
	}
out:
	policy_free(p);
	return rc;
}
