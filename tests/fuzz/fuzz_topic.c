/*
 * fuzz_topic.c — libFuzzer target for topic matching: common/topic.c and the
 * policy engine's tries, which must agree with it.
 *
 * Input: FILTER '\n' TOPIC (bytes after a second '\n' are ignored).  Checks
 * that nothing crashes and that these invariants hold, aborting otherwise:
 *  - topic_matches agrees with a small independent reference matcher;
 *  - a valid topic name matches itself, and a filter covers itself;
 *  - for a topic name T, topic_filter_covers(F, T) == topic_matches(F, T);
 *  - covers(F, G) and matches(G, T) imply matches(F, T);
 *  - topic_filters_overlap is symmetric, equals topic_matches for a name,
 *    and holds when one filter covers the other;
 *  - a one-rule policy `publish F` / `subscribe F` decides exactly as
 *    topic_matches / topic_filter_covers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FT_MAX 4096

static void ft_check(int ok, const char *what, const char *f, const char *t)
{
	if(!ok) {
		fprintf(stderr, "invariant broken: %s (filter \"%s\", topic \"%s\")\n", what, f, t);
		abort();
	}
}

/* Reference: does filter level sequence f match topic t (both '/'-split)? */
static int ft_ref_at(const char *f, const char *t)
{
	for(;;) {
		const char *fs = strchr(f, '/'), *ts = strchr(t, '/');
		size_t fl = fs ? (size_t)(fs - f) : strlen(f);
		size_t tl = ts ? (size_t)(ts - t) : strlen(t);
		if(fl == 1 && f[0] == '#') {
			return 1;
		}
		if(!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0)) {
			return 0;
		}
		if(!fs || !ts) {
			/* Filter done: topic must be too.  Topic done: only "/#" may remain. */
			return (!fs && !ts) || (fs && !ts && strcmp(fs + 1, "#") == 0);
		}
		f = fs + 1;
		t = ts + 1;
	}
}

static int ft_ref(const char *f, const char *t)
{
	if(t[0] == '$' && (f[0] == '+' || f[0] == '#')) {
		return 0;
	}
	return ft_ref_at(f, t);
}

static int ft_policy(const char *f, policy_access_t a, const char *t)
{
	char text[FT_MAX + 128];
	char err[256];
	if(strpbrk(f, "\"\\\r\n\t ") || strstr(f, "%{")) {
		return -1; /* not expressible as one rule word, or a variable */
	}
	snprintf(text, sizeof(text), "default deny\nrole r\n  %s %s\nend\ndevice x role r\n",
	         a == POLICY_PUBLISH ? "publish" : "subscribe", f);
	policy_t *p = policy_load_buffer("fuzz", text, strlen(text), err, sizeof(err));
	if(!p) {
		return -1; /* e.g. $CONTROL or $share rules */
	}
	policy_subject_t who = {"x", "x", NULL, 0};
	policy_request_t req = {a, t, 0, false, 0};
	policy_decision_t d;
	policy_check(p, &who, &req, &d);
	policy_free(p);
	return d.allow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[2 * FT_MAX + 2];
	if(size > sizeof(buf) - 1) {
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *f = buf;
	char *t = memchr(buf, '\n', size);
	if(!t) {
		return 0;
	}
	*t++ = '\0';
	char *end = strchr(t, '\n');
	if(end) {
		*end = '\0';
	}
	if(strlen(f) > FT_MAX || strlen(t) > FT_MAX) {
		return 0;
	}

	int vf = topic_valid_filter(f), vt = topic_valid_name(t), vtf = topic_valid_filter(t);
	(void)topic_levels(f);
	const char *g;
	size_t gl;
	const char *s = topic_strip_share(f, &g, &gl);
	if(s && g) {
		ft_check(gl > 0 && s > g && s[0] != '\0', "strip_share result", f, t);
	}
	if(vt) {
		ft_check(vtf, "a valid name is a valid filter", f, t);
		ft_check(topic_matches(t, t), "a name matches itself", t, t);
	}
	if(vf) {
		ft_check(topic_filter_covers(f, f), "a filter covers itself", f, f);
	}
	if(vf && vt) {
		int m = topic_matches(f, t);
		ft_check(m == ft_ref(f, t), "topic_matches == reference", f, t);
		ft_check(topic_filter_covers(f, t) == m, "covers(F, name) == matches(F, name)", f, t);
		ft_check(topic_filters_overlap(f, t) == m, "overlap(F, name) == matches(F, name)", f, t);
		int pm = ft_policy(f, POLICY_PUBLISH, t);
		ft_check(pm < 0 || pm == m, "policy publish == topic_matches", f, t);
	}
	if(vf && vtf) {
		int c = topic_filter_covers(f, t);
		int ov = topic_filters_overlap(f, t);
		ft_check(ov == topic_filters_overlap(t, f), "overlap is symmetric", f, t);
		ft_check(!c || ov, "covers implies overlap", f, t);
		/* The policy strips $share from requests; topic.c does not. */
		int pc = strncmp(t, "$share/", 7) ? ft_policy(f, POLICY_SUBSCRIBE, t) : -1;
		ft_check(pc < 0 || pc == c, "policy subscribe == topic_filter_covers", f, t);
		/* covers(f, t) and t matches some concrete topic => f matches it too:
		 * try the topic made by replacing wildcards of t with "w". */
		if(c) {
			char concrete[FT_MAX + 2];
			size_t o = 0;
			for(const char *p = t; *p && o < FT_MAX; p++) {
				if((*p == '+' || *p == '#') && (p == t || p[-1] == '/')) {
					concrete[o++] = 'w';
				} else {
					concrete[o++] = *p;
				}
			}
			concrete[o] = '\0';
			if(topic_valid_name(concrete) && topic_matches(t, concrete)) {
				ft_check(topic_matches(f, concrete), "covers implies matches", f, concrete);
			}
		}
	}
	return 0;
}
