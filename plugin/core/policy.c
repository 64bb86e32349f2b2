/*
 * policy.c — the device policy: parse the policy file, compile each role's
 * rules into tries (policy_trie.c), map identities to roles, and decide each
 * publish, subscribe and read (see policy.h for the contract and
 * docs/policy.md for the language).
 *
 * Loading is transactional: everything is built in a fresh policy_t and only
 * returned when the whole file is valid; any error frees it.  Once loaded the
 * policy is never written again, so any number of threads may check against it
 * at once; no function here keeps static mutable state.
 *
 * A decision takes three steps, none of which depends on the number of rules:
 * find the client's entry (hmap of devices; patterns only when the plugin did
 * not resolve once with policy_resolve), walk the role's deny trie for the
 * access, then its allow trie.  Any deny rule that matches wins; otherwise the
 * earliest matching allow rule whose constraints (QoS, retain, payload size)
 * the request meets allows it; otherwise it is denied.
 */
#include "policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "conf.h"
#include "hmap.h"
#include "policy_trie.h"
#include "topic.h"
#include "util.h"

/* MQTT's largest possible payload: 256 MiB minus headers. */
#define POLICY_MAX_PAYLOAD 268435455ULL

typedef struct policy_role {
	char *name;
	int line;
	/* [access - 1][deny]: built while parsing, compiled by policy_finish */
	ptrie_build_t *build[3][2];
	ptrie_t *trie[3][2];
	size_t nallow, ndeny;
	/* The role's rules as written, in order, while parsing; then their
	 * SHA-256, which tells a reload whether the role's rights changed. */
	char *sigbuf;
	size_t siglen, sigcap;
	unsigned char sig[32];
	/* `limit rate<=N/s bytes<=SIZE/s`; -1 = not set (plugin default) */
	double rate, bytes;
	int limit_line;
} policy_role_t;

struct policy_binding {
	const policy_t *owner;
	policy_binding_kind_t kind;
	char *entry;     /* identity or glob; NULL for the unknown-devices entry */
	char *role_name; /* as written; resolved to `role` after the whole file is read */
	policy_role_t *role;
	policy_attr_t *attrs; /* owned keys and values */
	size_t nattrs;
	int line;
	double rate, bytes; /* per-device limits from `rate<=`/`bytes<=`; -1 = role's */
};

struct policy {
	char *file; /* the name used in messages; rule_file points here */
	hmap_t *roles; /* name -> policy_role_t* (owned by role_list) */
	policy_role_t **role_list;
	size_t nroles, role_cap;
	hmap_t *devices; /* identity -> policy_binding* (owned) */
	struct policy_binding **patterns; /* in file order */
	size_t npatterns, pattern_cap;
	struct policy_binding *unknown; /* NULL: unknown devices are refused */
	bool unknown_seen;
	int unknown_line;
	policy_rule_t **rules; /* every rule, in file order */
	size_t nrules, rule_cap;
	int default_line; /* 0 until `default deny` is seen */
};

/* Reasons: static text, compared by address in policy_decision_format. */
static const char POLICY_R_ALLOW[] = "allowed by rule";
static const char POLICY_R_DENY[] = "denied by rule";
static const char POLICY_R_NONE[] = "no rule grants it";
static const char POLICY_R_QOS[] = "qos above the rule's maximum";
static const char POLICY_R_RETAIN[] = "retain not allowed by the rule";
static const char POLICY_R_SIZE[] = "payload larger than the rule's maximum";
static const char POLICY_R_NOTADMITTED[] = "client not admitted by the policy";
static const char POLICY_R_BADREQ[] = "invalid request";
static const char POLICY_R_BADQOS[] = "invalid qos";
static const char POLICY_R_BADTOPIC[] = "invalid topic name";
static const char POLICY_R_BADFILTER[] = "invalid topic filter";
static const char POLICY_R_BADSHARE[] = "malformed shared subscription";
static const char POLICY_R_CONTROL[] = "$CONTROL topics are never granted";
static const char POLICY_R_NOMEM[] = "out of memory";

/* ------------------------------------------------------------------------ */
/* Freeing                                                                   */

static void policy_binding_free(struct policy_binding *b)
{
	if(!b) {
		return;
	}
	for(size_t i = 0; i < b->nattrs; i++) {
		free((char *)b->attrs[i].key);
		free((char *)b->attrs[i].value);
	}
	free(b->attrs);
	free(b->entry);
	free(b->role_name);
	free(b);
}

static void policy_binding_free_value(void *v)
{
	policy_binding_free(v);
}

static void policy_role_free(policy_role_t *r)
{
	if(!r) {
		return;
	}
	for(int a = 0; a < 3; a++) {
		for(int d = 0; d < 2; d++) {
			ptrie_build_free(r->build[a][d]);
			ptrie_compiled_free(r->trie[a][d]);
		}
	}
	free(r->sigbuf);
	free(r->name);
	free(r);
}

void policy_free(policy_t *p)
{
	if(!p) {
		return;
	}
	hmap_free(p->roles);
	for(size_t i = 0; i < p->nroles; i++) {
		policy_role_free(p->role_list[i]);
	}
	free(p->role_list);
	hmap_free(p->devices);
	for(size_t i = 0; i < p->npatterns; i++) {
		policy_binding_free(p->patterns[i]);
	}
	free(p->patterns);
	policy_binding_free(p->unknown);
	for(size_t i = 0; i < p->nrules; i++) {
		if(p->rules[i]) {
			free(p->rules[i]->text);
			free(p->rules[i]);
		}
	}
	free(p->rules);
	free(p->file);
	free(p);
}

/* ------------------------------------------------------------------------ */
/* Names, identities, attributes                                             */

/* Role names and attribute keys: letters, digits, '_', '-', '.'. */
static bool policy_name_ok(const char *s)
{
	if(!s[0]) {
		return false;
	}
	for(const char *c = s; *c; c++) {
		if(!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		     *c == '_' || *c == '-' || *c == '.')) {
			return false;
		}
	}
	return true;
}

static bool policy_has_ctl(const char *s)
{
	for(const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if(*c < 0x20 || *c == 0x7f) {
			return true;
		}
	}
	return false;
}

/* Why an identity (or a value standing for a topic level) is unusable, or
 * NULL when it is fine.  Mirrors the identity rules the plugin applies at
 * connect, so the policy never names a device that could not connect. */
static const char *policy_identity_problem(const char *s)
{
	if(!s || !s[0]) {
		return "it is empty";
	}
	if(strpbrk(s, "+#/")) {
		return "it contains '+', '#' or '/'";
	}
	if(s[0] == '$') {
		return "it starts with '$'";
	}
	if(policy_has_ctl(s)) {
		return "it contains a control character";
	}
	if(!util_utf8_valid(s, strlen(s))) {
		return "it is not valid UTF-8";
	}
	return NULL;
}

/* Step over one character: a byte plus any UTF-8 continuation bytes.  Never
 * passes the terminating NUL, even in malformed input. */
static const char *policy_next_char(const char *s)
{
	s++;
	while((*(const unsigned char *)s & 0xC0) == 0x80) {
		s++;
	}
	return s;
}

/* Glob match: '*' any run of characters (also none), '?' exactly one
 * character (UTF-8 code point).  Linear backtracking on the last '*'. */
static bool policy_glob(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;
	while(*s) {
		if(*pat == '*') {
			star = ++pat;
			resume = s;
		} else if(*pat == '?') {
			pat++;
			s = policy_next_char(s);
		} else if(*pat && *pat == *s) {
			pat++;
			s++;
		} else if(star) {
			pat = star;
			resume = policy_next_char(resume);
			s = resume;
		} else {
			return false;
		}
	}
	while(*pat == '*') {
		pat++;
	}
	return *pat == '\0';
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

/* Make room for entry n of array a (*cap entries of elem bytes allocated),
 * doubling so that loading N entries costs O(N).  Returns the array (maybe
 * moved), or NULL on ENOMEM with a left as it was. */
static void *policy_grow(void *a, size_t n, size_t *cap, size_t elem)
{
	if(n < *cap) {
		return a;
	}
	size_t ncap = *cap ? *cap * 2 : 16;
	void *na = realloc(a, ncap * elem);
	if(na) {
		*cap = ncap;
	}
	return na;
}

typedef struct policy_parse {
	policy_t *p;
	policy_role_t *cur; /* the open role, or NULL */
	hmap_t *pattern_lines; /* glob -> (void*)(intptr_t)line, for duplicates */
} policy_parse_t;

/* Parse one limit word, `rate<=N/s` or `bytes<=SIZE/s`, into *rate / *bytes.
 * Returns 1 when `w` is not a limit word, 0 when parsed, -1 on error. */
static int policy_parse_limit(const conf_line_t *l, const char *w, double *rate, double *bytes,
                              char *err, size_t errlen)
{
	const char *le = strstr(w, "<=");
	if(!le) {
		return 1;
	}
	size_t klen = (size_t)(le - w);
	const char *v = le + 2;
	size_t vlen = strlen(v);
	char num[64];
	if(vlen < 3 || vlen >= sizeof(num) || strcmp(v + vlen - 2, "/s") != 0) {
		return conf_error(l, err, errlen,
		                  "limit \"%s\": write rate<=N/s (messages per second) or "
		                  "bytes<=SIZE/s (e.g. bytes<=64k/s)",
		                  w);
	}
	memcpy(num, v, vlen - 2);
	num[vlen - 2] = '\0';
	int64_t n;
	uint64_t u;
	if(klen == 4 && strncmp(w, "rate", 4) == 0) {
		if(*rate >= 0) {
			return conf_error(l, err, errlen, "rate<= is duplicate on this line");
		}
		if(util_parse_i64(num, 0, 10000000, &n)) {
			return conf_error(l, err, errlen,
			                  "limit \"%s\": the rate is a whole number of messages per "
			                  "second, 0 = unlimited",
			                  w);
		}
		*rate = (double)n;
	} else if(klen == 5 && strncmp(w, "bytes", 5) == 0) {
		if(*bytes >= 0) {
			return conf_error(l, err, errlen, "bytes<= is duplicate on this line");
		}
		if(util_parse_size(num, 1ULL << 40, &u)) {
			return conf_error(l, err, errlen,
			                  "limit \"%s\": give bytes per second such as 64k/s or 1M/s, "
			                  "0 = unlimited",
			                  w);
		}
		*bytes = (double)u;
	} else {
		return conf_error(l, err, errlen, "unknown limit \"%s\": use rate<=N/s or bytes<=SIZE/s", w);
	}
	return 0;
}

/* Parse `key=value` words argv[from..argc) into b's attributes. */
static int policy_parse_attrs(const conf_line_t *l, int from, struct policy_binding *b, char *err,
                              size_t errlen)
{
	int n = l->argc - from;
	if(n <= 0) {
		return 0;
	}
	b->attrs = calloc((size_t)n, sizeof(*b->attrs));
	if(!b->attrs) {
		return conf_error(l, err, errlen, "out of memory");
	}
	for(int i = from; i < l->argc; i++) {
		const char *w = l->argv[i];
		int lim = policy_parse_limit(l, w, &b->rate, &b->bytes, err, errlen);
		if(lim <= 0) {
			if(lim < 0) {
				return -1;
			}
			continue;
		}
		const char *eq = strchr(w, '=');
		if(!eq || eq == w) {
			return conf_error(l, err, errlen,
			                  "malformed attribute \"%s\": write key=value, e.g. site=hq", w);
		}
		char *key = strndup(w, (size_t)(eq - w));
		if(!key) {
			return conf_error(l, err, errlen, "out of memory");
		}
		b->attrs[b->nattrs++].key = key; /* owned by b from here on; value set below */
		if(!policy_name_ok(key)) {
			return conf_error(l, err, errlen,
			                  "malformed attribute \"%s\": a key uses only letters, digits, "
			                  "'_', '-' and '.'",
			                  w);
		}
		if(strcmp(key, "id") == 0 || strcmp(key, "clientid") == 0) {
			return conf_error(l, err, errlen,
			                  "attribute \"%s\" is reserved: %%{%s} always comes from the "
			                  "connection; choose another key",
			                  key, key);
		}
		for(size_t k = 0; k + 1 < b->nattrs; k++) {
			if(strcmp(b->attrs[k].key, key) == 0) {
				return conf_error(l, err, errlen, "attribute %s is duplicate on this line",
				                  key);
			}
		}
		const char *why = policy_identity_problem(eq + 1);
		if(why) {
			return conf_error(l, err, errlen,
			                  "malformed attribute \"%s\": the value must be usable as one "
			                  "topic level, but %s",
			                  w, why);
		}
		char *val = strdup(eq + 1);
		if(!val) {
			return conf_error(l, err, errlen, "out of memory");
		}
		b->attrs[b->nattrs - 1].value = val;
	}
	return 0;
}

/* Common tail of `device` / `devices matching` / `unknown-devices role`:
 * "role NAME [attrs]" starting at argv[at]. */
static struct policy_binding *policy_parse_binding(policy_parse_t *ps, const conf_line_t *l,
                                                   int at, policy_binding_kind_t kind,
                                                   const char *entry, bool attrs, char *err,
                                                   size_t errlen)
{
	struct policy_binding *b = NULL;
	const char *what = kind == POLICY_BINDING_DEVICE    ? "device ID role NAME [key=value ...]"
	                   : kind == POLICY_BINDING_PATTERN ? "devices matching GLOB role NAME [key=value ...]"
	                                                    : "unknown-devices role NAME";
	if(l->argc < at + 2 || strcmp(l->argv[at], "role") != 0 || (!attrs && l->argc > at + 2)) {
		conf_error(l, err, errlen, "expected: %s", what);
		goto fail;
	}
	if(!policy_name_ok(l->argv[at + 1])) {
		conf_error(l, err, errlen,
		           "invalid role name \"%s\": use letters, digits, '_', '-' and '.'",
		           l->argv[at + 1]);
		goto fail;
	}
	b = calloc(1, sizeof(*b));
	if(!b) {
		goto nomem;
	}
	b->owner = ps->p;
	b->kind = kind;
	b->line = l->line;
	b->rate = b->bytes = -1;
	b->role_name = strdup(l->argv[at + 1]);
	if(!b->role_name) {
		goto nomem;
	}
	if(entry) {
		b->entry = strdup(entry);
		if(!b->entry) {
			goto nomem;
		}
	}
	if(policy_parse_attrs(l, at + 2, b, err, errlen)) {
		goto fail;
	}
	return b;
nomem:
	conf_error(l, err, errlen, "out of memory");
fail:
	policy_binding_free(b);
	return NULL;
}

static int policy_kw_default(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	if(l->argc == 2 && strcmp(l->argv[1], "allow") == 0) {
		return conf_error(l, err, errlen,
		                  "\"default allow\" is not supported: plantgate denies whatever no "
		                  "rule grants; write \"default deny\" and grant each role what it "
		                  "needs");
	}
	if(l->argc != 2 || strcmp(l->argv[1], "deny") != 0) {
		return conf_error(l, err, errlen, "expected \"default deny\" (the only default)");
	}
	if(ps->p->default_line) {
		return conf_error(l, err, errlen, "\"default deny\" is duplicate (first at line %d)",
		                  ps->p->default_line);
	}
	ps->p->default_line = l->line;
	return 0;
}

static int policy_kw_unknown(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	if(p->unknown_seen) {
		return conf_error(l, err, errlen, "unknown-devices is duplicate (first at line %d)",
		                  p->unknown_line);
	}
	if(l->argc == 2 && strcmp(l->argv[1], "refuse") == 0) {
		p->unknown_seen = true;
		p->unknown_line = l->line;
		return 0;
	}
	if(l->argc < 2 || strcmp(l->argv[1], "role") != 0) {
		return conf_error(l, err, errlen,
		                  "expected \"unknown-devices refuse\" or \"unknown-devices role NAME\"");
	}
	p->unknown = policy_parse_binding(ps, l, 1, POLICY_BINDING_UNKNOWN, NULL, false, err, errlen);
	if(!p->unknown) {
		return -1;
	}
	p->unknown_seen = true;
	p->unknown_line = l->line;
	return 0;
}

static int policy_kw_role(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	if(l->argc != 2) {
		return conf_error(l, err, errlen, "expected: role NAME (then its rules, then end)");
	}
	const char *name = l->argv[1];
	if(!policy_name_ok(name)) {
		return conf_error(l, err, errlen,
		                  "invalid role name \"%s\": use letters, digits, '_', '-' and '.'",
		                  name);
	}
	const policy_role_t *old = hmap_get(p->roles, name);
	if(old) {
		return conf_error(l, err, errlen,
		                  "role %s is duplicate (first defined at line %d): merge the two", name,
		                  old->line);
	}
	void *grown = policy_grow(p->role_list, p->nroles, &p->role_cap, sizeof(*p->role_list));
	if(!grown) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->role_list = grown;
	policy_role_t *r = calloc(1, sizeof(*r));
	if(!r || !(r->name = strdup(name))) {
		free(r);
		return conf_error(l, err, errlen, "out of memory");
	}
	r->line = l->line;
	r->rate = r->bytes = -1;
	p->role_list[p->nroles++] = r;
	if(hmap_put(p->roles, name, r)) {
		return conf_error(l, err, errlen, "out of memory");
	}
	ps->cur = r;
	return 0;
}

static int policy_kw_end(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	if(!ps->cur) {
		return conf_error(l, err, errlen, "\"end\" without a role to close");
	}
	if(l->argc != 1) {
		return conf_error(l, err, errlen, "\"end\" takes nothing after it");
	}
	ps->cur = NULL;
	return 0;
}

static int policy_kw_device(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	if(l->argc < 4) {
		return conf_error(l, err, errlen, "expected: device ID role NAME [key=value ...]");
	}
	const char *id = l->argv[1];
	const char *why = policy_identity_problem(id);
	if(why) {
		return conf_error(l, err, errlen, "device \"%s\" can never connect: %s", id, why);
	}
	if(strpbrk(id, "*?")) {
		return conf_error(l, err, errlen,
		                  "device \"%s\" contains '*' or '?': for a pattern write "
		                  "\"devices matching %s role ...\"",
		                  id, id);
	}
	const struct policy_binding *old = hmap_get(p->devices, id);
	if(old) {
		return conf_error(l, err, errlen, "device %s is duplicate (first at line %d)", id,
		                  old->line);
	}
	struct policy_binding *b =
	    policy_parse_binding(ps, l, 2, POLICY_BINDING_DEVICE, id, true, err, errlen);
	if(!b) {
		return -1;
	}
	if(hmap_put(p->devices, id, b)) {
		policy_binding_free(b);
		return conf_error(l, err, errlen, "out of memory");
	}
	return 0;
}

static int policy_kw_devices(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	if(l->argc < 5 || strcmp(l->argv[1], "matching") != 0) {
		return conf_error(l, err, errlen,
		                  "expected: devices matching GLOB role NAME [key=value ...]");
	}
	const char *glob = l->argv[2];
	if(!glob[0] || strpbrk(glob, "+#/") || glob[0] == '$' || policy_has_ctl(glob)) {
		return conf_error(l, err, errlen,
		                  "pattern \"%s\" can never match an identity that may connect (no "
		                  "'+', '#', '/', control characters or leading '$')",
		                  glob);
	}
	if(!strpbrk(glob, "*?")) {
		return conf_error(l, err, errlen,
		                  "pattern \"%s\" has no '*' or '?': for one device write \"device %s "
		                  "role ...\"",
		                  glob, glob);
	}
	void *old = hmap_get(ps->pattern_lines, glob);
	if(old) {
		return conf_error(l, err, errlen, "pattern %s is duplicate (first at line %d)", glob,
		                  (int)(intptr_t)old);
	}
	struct policy_binding *b =
	    policy_parse_binding(ps, l, 3, POLICY_BINDING_PATTERN, glob, true, err, errlen);
	if(!b) {
		return -1;
	}
	void *grown = policy_grow(p->patterns, p->npatterns, &p->pattern_cap, sizeof(*p->patterns));
	if(grown) {
		p->patterns = grown;
	}
	if(!grown || hmap_put(ps->pattern_lines, glob, (void *)(intptr_t)l->line)) {
		policy_binding_free(b);
		return conf_error(l, err, errlen, "out of memory");
	}
	p->patterns[p->npatterns++] = b;
	return 0;
}

/* Check the levels of a rule's filter: variables are whole levels with a
 * valid name; $CONTROL is never granted; $share is not written in rules. */
static int policy_check_filter(const conf_line_t *l, const char *filter, bool deny, char *err,
                               size_t errlen)
{
	if(!topic_valid_filter(filter)) {
		return conf_error(l, err, errlen,
		                  "invalid topic filter \"%s\": '+' and '#' must each be a whole "
		                  "level, and '#' only the last one",
		                  filter);
	}
	const char *lv = filter;
	bool first = true;
	for(;;) {
		const char *slash = strchr(lv, '/');
		size_t len = slash ? (size_t)(slash - lv) : strlen(lv);
		if(first) {
			if(!deny && len == 8 && strncasecmp(lv, "$CONTROL", 8) == 0) {
				return conf_error(l, err, errlen,
				                  "$CONTROL topics control the broker itself and may never be "
				                  "granted: remove this rule");
			}
			if(len == 6 && strncmp(lv, "$share", 6) == 0) {
				return conf_error(l, err, errlen,
				                  "write the filter without \"$share/GROUP/\": a shared "
				                  "subscription is checked against the filter inside it");
			}
		}
		const char *pct = memchr(lv, '%', len);
		if(pct && pct + 1 < lv + len && pct[1] == '{') {
			if(pct != lv || lv[len - 1] != '}' || len < 4) {
				return conf_error(l, err, errlen,
				                  "a variable must be a whole topic level, like "
				                  "plant/%%{site}/x, not \"%.*s\"",
				                  (int)len, lv);
			}
			char name[256];
			size_t nlen = len - 3;
			if(nlen >= sizeof(name) || memchr(lv + 2, '}', nlen) || memchr(lv + 2, '%', nlen)) {
				return conf_error(l, err, errlen, "malformed variable \"%.*s\"", (int)len, lv);
			}
			memcpy(name, lv + 2, nlen);
			name[nlen] = '\0';
			if(!policy_name_ok(name)) {
				return conf_error(l, err, errlen,
				                  "malformed variable \"%.*s\": a name uses only letters, "
				                  "digits, '_', '-' and '.'",
				                  (int)len, lv);
			}
		}
		if(!slash) {
			break;
		}
		lv = slash + 1;
		first = false;
	}
	return 0;
}

static int policy_parse_options(const conf_line_t *l, int from, policy_rule_t *r, char *err,
                                size_t errlen)
{
	bool seen_qos = false, seen_retain = false, seen_size = false;
	for(int i = from; i < l->argc; i++) {
		const char *w = l->argv[i];
		if(r->deny) {
			return conf_error(l, err, errlen,
			                  "deny rules take no options (\"%s\"): qos<=, retain= and "
			                  "max-payload= limit what an allow rule grants",
			                  w);
		}
		if(strncmp(w, "qos<=", 5) == 0) {
			int64_t q;
			if(seen_qos) {
				return conf_error(l, err, errlen, "qos<= given twice");
			}
			if(util_parse_i64(w + 5, 0, 2, &q)) {
				return conf_error(l, err, errlen, "invalid \"%s\": write qos<=0, qos<=1 or qos<=2",
				                  w);
			}
			r->max_qos = (int)q;
			seen_qos = true;
		} else if(strncmp(w, "retain=", 7) == 0) {
			if(seen_retain) {
				return conf_error(l, err, errlen, "retain= given twice");
			}
			if(r->access == POLICY_SUBSCRIBE) {
				return conf_error(l, err, errlen,
				                  "retain= applies to publish and read rules, not subscribe");
			}
			if(strcmp(w + 7, "no") == 0) {
				r->no_retain = true;
			} else if(strcmp(w + 7, "yes") != 0) {
				return conf_error(l, err, errlen, "invalid \"%s\": write retain=yes or retain=no",
				                  w);
			}
			seen_retain = true;
		} else if(strncmp(w, "max-payload=", 12) == 0) {
			uint64_t sz;
			if(seen_size) {
				return conf_error(l, err, errlen, "max-payload= given twice");
			}
			if(r->access == POLICY_SUBSCRIBE) {
				return conf_error(l, err, errlen,
				                  "max-payload= applies to publish and read rules, not subscribe");
			}
			if(util_parse_size(w + 12, POLICY_MAX_PAYLOAD, &sz)) {
				return conf_error(l, err, errlen,
				                  "invalid \"%s\": write a size such as max-payload=512, 16k or "
				                  "1M (at most 256M)",
				                  w);
			}
			r->max_payload = sz;
			seen_size = true;
		} else {
			return conf_error(l, err, errlen,
			                  "unknown rule option \"%s\": expected qos<=N, retain=yes|no or "
			                  "max-payload=SIZE (no blanks inside an option)",
			                  w);
		}
	}
	return 0;
}

static bool policy_access_parse(const char *w, policy_access_t *a)
{
	if(strcmp(w, "publish") == 0) {
		*a = POLICY_PUBLISH;
	} else if(strcmp(w, "subscribe") == 0) {
		*a = POLICY_SUBSCRIBE;
	} else if(strcmp(w, "read") == 0) {
		*a = POLICY_READ;
	} else {
		return false;
	}
	return true;
}

/* The rule as written, words joined by blanks (quoted when they hold one). */
static char *policy_rule_text(const conf_line_t *l)
{
	size_t n = 1;
	for(int i = 0; i < l->argc; i++) {
		n += strlen(l->argv[i]) + 3;
	}
	char *s = malloc(n);
	if(!s) {
		return NULL;
	}
	size_t at = 0;
	for(int i = 0; i < l->argc; i++) {
		bool q = strpbrk(l->argv[i], " \t") != NULL;
		int w = snprintf(s + at, n - at, "%s%s%s%s", i ? " " : "", q ? "\"" : "", l->argv[i],
		                 q ? "\"" : "");
		if(w < 0) {
			free(s);
			return NULL;
		}
		at += (size_t)w;
	}
	return s;
}

/* Append a rule's text to its role's signature buffer. */
static int policy_role_sig_add(policy_role_t *role, const char *text)
{
	size_t n = strlen(text) + 1;
	if(role->siglen + n > role->sigcap) {
		size_t cap = role->sigcap ? role->sigcap : 256;
		while(cap < role->siglen + n) {
			cap *= 2;
		}
		char *nb = realloc(role->sigbuf, cap);
		if(!nb) {
			return -1;
		}
		role->sigbuf = nb;
		role->sigcap = cap;
	}
	memcpy(role->sigbuf + role->siglen, text, n - 1);
	role->sigbuf[role->siglen + n - 1] = '\n';
	role->siglen += n;
	return 0;
}

static int policy_kw_rule(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	int at = 0;
	bool deny = false;
	if(strcmp(l->argv[0], "deny") == 0 || strcmp(l->argv[0], "allow") == 0) {
		deny = l->argv[0][0] == 'd';
		at = 1;
	}
	policy_access_t access;
	if(l->argc <= at || !policy_access_parse(l->argv[at], &access)) {
		return conf_error(l, err, errlen, "expected: %s publish|subscribe|read FILTER",
		                  l->argv[0]);
	}
	if(!ps->cur) {
		return conf_error(l, err, errlen,
		                  "rule outside a role: put rules between \"role NAME\" and \"end\"");
	}
	if(l->argc < at + 2) {
		return conf_error(l, err, errlen, "%s needs a topic filter", l->argv[at]);
	}
	const char *filter = l->argv[at + 1];
	if(policy_check_filter(l, filter, deny, err, errlen)) {
		return -1;
	}
	void *grown = policy_grow(p->rules, p->nrules, &p->rule_cap, sizeof(*p->rules));
	if(!grown) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->rules = grown;
	policy_rule_t *r = calloc(1, sizeof(*r));
	if(!r) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->rules[p->nrules++] = r; /* owned by the policy from here on */
	r->seq = (unsigned)p->nrules;
	r->deny = deny;
	r->access = access;
	r->max_qos = -1;
	r->max_payload = UINT64_MAX;
	r->file = p->file;
	r->line = l->line;
	r->text = policy_rule_text(l);
	if(!r->text) {
		return conf_error(l, err, errlen, "out of memory");
	}
	if(policy_parse_options(l, at + 2, r, err, errlen)) {
		return -1;
	}
	ptrie_build_t **t = &ps->cur->build[access - 1][deny ? 1 : 0];
	if(!*t && !(*t = ptrie_build_new())) {
		return conf_error(l, err, errlen, "out of memory");
	}
	if(ptrie_insert(*t, filter, r)) {
		return conf_error(l, err, errlen, "out of memory");
	}
	if(deny) {
		ps->cur->ndeny++;
	} else {
		ps->cur->nallow++;
	}
	if(policy_role_sig_add(ps->cur, r->text)) {
		return conf_error(l, err, errlen, "out of memory");
	}
	return 0;
}

/* `limit rate<=N/s bytes<=SIZE/s` inside a role: the role's flood limits. */
static int policy_kw_limit(policy_parse_t *ps, const conf_line_t *l, char *err, size_t errlen)
{
	policy_role_t *r = ps->cur;
	if(!r) {
		return conf_error(l, err, errlen,
		                  "limit outside a role: put it between \"role NAME\" and \"end\"");
	}
	if(r->limit_line) {
		return conf_error(l, err, errlen, "limit is duplicate in role %s (first at line %d)", r->name,
		                  r->limit_line);
	}
	if(l->argc < 2) {
		return conf_error(l, err, errlen, "expected: limit rate<=N/s [bytes<=SIZE/s]");
	}
	for(int i = 1; i < l->argc; i++) {
		int rc = policy_parse_limit(l, l->argv[i], &r->rate, &r->bytes, err, errlen);
		if(rc < 0) {
			return -1;
		}
		if(rc > 0) {
			return conf_error(l, err, errlen, "\"%s\" is not a limit: use rate<=N/s or bytes<=SIZE/s",
			                  l->argv[i]);
		}
	}
	r->limit_line = l->line; /* limits are not rights: not part of the role's signature */
	return 0;
}

typedef int (*policy_kw_fn)(policy_parse_t *, const conf_line_t *, char *, size_t);

/* The directives: name, handler, whether it belongs inside a role. */
static const struct policy_kw {
	const char *name;
	policy_kw_fn fn;
	bool in_role;
} policy_kws[] = {
    {"default", policy_kw_default, false},
    {"unknown-devices", policy_kw_unknown, false},
    {"role", policy_kw_role, false},
    {"device", policy_kw_device, false},
    {"devices", policy_kw_devices, false},
    {"end", policy_kw_end, true},
    {"limit", policy_kw_limit, true},
    {"publish", policy_kw_rule, true},
    {"subscribe", policy_kw_rule, true},
    {"read", policy_kw_rule, true},
    {"allow", policy_kw_rule, true},
    {"deny", policy_kw_rule, true},
};

static int policy_line(void *ud, const conf_line_t *l, char *err, size_t errlen)
{
	policy_parse_t *ps = ud;
	for(size_t i = 0; i < sizeof(policy_kws) / sizeof(policy_kws[0]); i++) {
		const struct policy_kw *k = &policy_kws[i];
		if(strcmp(l->argv[0], k->name) != 0) {
			continue;
		}
		if(!k->in_role && ps->cur) {
			return conf_error(l, err, errlen,
			                  "\"%s\" inside role %s: close the role (line %d) with \"end\" "
			                  "first",
			                  k->name, ps->cur->name, ps->cur->line);
		}
		return k->fn(ps, l, err, errlen);
	}
	if(ps->cur) {
		return conf_error(l, err, errlen,
		                  "unknown keyword \"%s\" in role %s: expected publish, subscribe, read, "
		                  "deny, limit or end",
		                  l->argv[0], ps->cur->name);
	}
	return conf_error(l, err, errlen,
	                  "unknown keyword \"%s\": expected default, unknown-devices, role, device "
	                  "or devices",
	                  l->argv[0]);
}

static int policy_link(policy_t *p, struct policy_binding *b, char *err, size_t errlen)
{
	conf_line_t l = {.file = p->file, .line = b->line};
	b->role = hmap_get(p->roles, b->role_name);
	if(!b->role) {
		return conf_error(&l, err, errlen,
		                  "unknown role \"%s\": define it with \"role %s\" ... \"end\"",
		                  b->role_name, b->role_name);
	}
	return 0;
}

/* After the last line: everything that needs the whole file. */
static int policy_finish(policy_parse_t *ps, char *err, size_t errlen)
{
	policy_t *p = ps->p;
	for(size_t i = 0; i < p->nroles; i++) {
		policy_role_t *r = p->role_list[i];
		SHA256((const unsigned char *)(r->sigbuf ? r->sigbuf : ""), r->siglen, r->sig);
		free(r->sigbuf);
		r->sigbuf = NULL;
		r->siglen = r->sigcap = 0;
	}
	if(ps->cur) {
		conf_line_t l = {.file = p->file, .line = ps->cur->line};
		return conf_error(&l, err, errlen,
		                  "role %s is not closed: add \"end\" after its last rule",
		                  ps->cur->name);
	}
	if(!p->default_line) {
		conf_line_t l = {.file = p->file, .line = 1};
		return conf_error(&l, err, errlen,
		                  "no \"default deny\" line: put \"default deny\" at the top (plantgate "
		                  "denies whatever no rule grants, and says so explicitly)");
	}
	size_t it = 0;
	const char *key;
	void *val;
	while(hmap_next(p->devices, &it, &key, &val)) {
		if(policy_link(p, val, err, errlen)) {
			return -1;
		}
	}
	for(size_t i = 0; i < p->npatterns; i++) {
		if(policy_link(p, p->patterns[i], err, errlen)) {
			return -1;
		}
	}
	if(p->unknown && policy_link(p, p->unknown, err, errlen)) {
		return -1;
	}
	for(size_t i = 0; i < p->nroles; i++) {
		policy_role_t *r = p->role_list[i];
		for(int a = 0; a < 3; a++) {
			for(int d = 0; d < 2; d++) {
				if(!r->build[a][d]) {
					continue;
				}
				r->trie[a][d] = ptrie_compile(r->build[a][d]);
				if(!r->trie[a][d]) {
					conf_line_t l = {.file = p->file, .line = r->line};
					return conf_error(&l, err, errlen, "out of memory");
				}
				ptrie_build_free(r->build[a][d]);
				r->build[a][d] = NULL;
			}
		}
	}
	return 0;
}

static policy_t *policy_new(const char *name)
{
	policy_t *p = calloc(1, sizeof(*p));
	if(!p) {
		return NULL;
	}
	p->file = strdup(name ? name : "policy");
	p->roles = hmap_new(NULL);
	p->devices = hmap_new(policy_binding_free_value);
	if(!p->file || !p->roles || !p->devices) {
		policy_free(p);
		return NULL;
	}
	return p;
}

/* Parse with parse_fn (file or buffer), then finish; NULL on any error. */
static policy_t *policy_load(const char *name, const char *path, const char *buf, size_t len,
                             char *err, size_t errlen)
{
	policy_parse_t ps = {0};
	policy_t *result = NULL;
	int rc;
	if(err && errlen) {
		err[0] = '\0';
	}
	ps.p = policy_new(name);
	ps.pattern_lines = hmap_new(NULL);
	if(!ps.p || !ps.pattern_lines) {
		util_snprintf(err, errlen, "%s: out of memory", name ? name : "policy");
		goto out;
	}
	if(path) {
		rc = conf_parse_file(path, policy_line, &ps, err, errlen);
	} else {
		rc = conf_parse_buffer(ps.p->file, buf, len, policy_line, &ps, err, errlen);
	}
	if(rc || policy_finish(&ps, err, errlen)) {
		goto out;
	}
	result = ps.p;
	ps.p = NULL;
out:
	policy_free(ps.p);
	hmap_free(ps.pattern_lines);
	return result;
}

policy_t *policy_load_file(const char *path, char *err, size_t errlen)
{
	if(!path) {
		util_snprintf(err, errlen, "policy: no file given");
		return NULL;
	}
	return policy_load(path, path, NULL, 0, err, errlen);
}

policy_t *policy_load_buffer(const char *name, const char *buf, size_t len, char *err,
                             size_t errlen)
{
	if(!buf && len) {
		util_snprintf(err, errlen, "%s: no buffer given", name ? name : "policy");
		return NULL;
	}
	return policy_load(name, NULL, buf ? buf : "", len, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Resolving and checking                                                    */

const policy_binding_t *policy_resolve(const policy_t *p, const policy_subject_t *who)
{
	if(!p || !who || policy_identity_problem(who->identity)) {
		return NULL;
	}
	const struct policy_binding *b = hmap_get(p->devices, who->identity);
	if(b) {
		return b;
	}
	for(size_t i = 0; i < p->npatterns; i++) {
		if(policy_glob(p->patterns[i]->entry, who->identity)) {
			return p->patterns[i];
		}
	}
	return p->unknown;
}

bool policy_admit(const policy_t *p, const policy_subject_t *who, const char **reason)
{
	const char *why = NULL;
	if(!p) {
		why = "no policy loaded";
	} else if(!who || policy_identity_problem(who->identity)) {
		why = "identity unusable: empty, or containing '+', '#', '/', control characters, "
		      "or starting with '$'";
	} else if(!policy_resolve(p, who)) {
		why = "identity not in policy and unknown devices are refused";
	}
	if(reason) {
		*reason = why;
	}
	return why == NULL;
}

typedef struct policy_var_ctx {
	const struct policy_binding *b;
	const policy_subject_t *who;
} policy_var_ctx_t;

/* Value of %{name}: id and clientid from the connection; other names from the
 * policy's entry first, then the certificate's attributes. */
static const char *policy_var_value(const void *ctx, const char *name)
{
	const policy_var_ctx_t *c = ctx;
	if(strcmp(name, "id") == 0) {
		return c->who->identity;
	}
	if(strcmp(name, "clientid") == 0) {
		return c->who->clientid;
	}
	for(size_t i = 0; i < c->b->nattrs; i++) {
		if(strcmp(c->b->attrs[i].key, name) == 0) {
			return c->b->attrs[i].value;
		}
	}
	for(size_t i = 0; c->who->attrs && i < c->who->nattrs; i++) {
		if(c->who->attrs[i].key && strcmp(c->who->attrs[i].key, name) == 0) {
			return c->who->attrs[i].value;
		}
	}
	return NULL;
}

typedef struct policy_acc {
	const policy_request_t *req;
	const policy_rule_t *ok;  /* earliest allow rule whose constraints hold */
	const policy_rule_t *bad; /* earliest allow rule that matched but whose constraint failed */
	const char *bad_reason;
	long long bad_limit;
	const policy_rule_t *deny; /* earliest deny rule */
} policy_acc_t;

static void policy_hit_deny(void *acc, const policy_rule_t *r)
{
	policy_acc_t *a = acc;
	if(!a->deny || r->seq < a->deny->seq) {
		a->deny = r;
	}
}

static void policy_hit_allow(void *acc, const policy_rule_t *r)
{
	policy_acc_t *a = acc;
	const policy_request_t *req = a->req;
	const char *why = NULL;
	long long limit = -1;
	if(r->max_qos >= 0 && req->qos > r->max_qos) {
		why = POLICY_R_QOS;
		limit = r->max_qos;
	} else if(r->no_retain && req->retain) {
		why = POLICY_R_RETAIN;
	} else if((uint64_t)req->payloadlen > r->max_payload) {
		why = POLICY_R_SIZE;
		limit = (long long)r->max_payload;
	}
	if(!why) {
		if(!a->ok || r->seq < a->ok->seq) {
			a->ok = r;
		}
	} else if(!a->bad || r->seq < a->bad->seq) {
		a->bad = r;
		a->bad_reason = why;
		a->bad_limit = limit;
	}
}

static void policy_decide(policy_decision_t *out, bool allow, const char *reason,
                          const policy_rule_t *r)
{
	out->allow = allow;
	out->reason = reason;
	out->rule_file = r ? r->file : NULL;
	out->rule_line = r ? r->line : 0;
	out->rule_text = r ? r->text : NULL;
}

/* Topics of up to this many levels are split on the stack; more on the heap. */
#define POLICY_STACK_LEVELS 64

#define POLICY_ONES 0x0101010101010101ULL
#define POLICY_LOW7 0x7f7f7f7f7f7f7f7fULL

/* The high bit of each byte of w that equals c, and no other bit (exact: no
 * carry crosses a byte). */
static uint64_t policy_bytes_eq(uint64_t w, unsigned char c)
{
	uint64_t t = w ^ (POLICY_ONES * c);
	return ~(((t & POLICY_LOW7) + POLICY_LOW7) | t | POLICY_LOW7);
}

/* One pass over `topic`: store where each level starts and how long it is
 * (the first `max` of them; no copy: the levels point into topic), and note
 * its length, whether it holds a '+' or '#', and whether it holds bytes
 * above 0x7f (only then can it be invalid UTF-8).  Returns the number of
 * levels, which may be more than max.  Looks at 8 bytes at a time where it
 * can: the topic is rarely shorter, and has a '/' every few bytes. */
static size_t policy_split(const char *topic, ptrie_level_t *lv, size_t max, size_t *lenp,
                           bool *wild, bool *high)
{
	size_t len = strlen(topic);
	size_t n = 0, start = 0, i = 0;
	uint64_t hi = 0, wl = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for(; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, topic + i, 8);
		hi |= w;
		/* '+' is 0x2b and '#' 0x23: with bit 3 set, both are 0x2b. */
		wl |= policy_bytes_eq(w | (POLICY_ONES * 0x08), '+');
		for(uint64_t sl = policy_bytes_eq(w, '/'); sl; sl &= sl - 1) {
			size_t at = i + (size_t)__builtin_ctzll(sl) / 8; /* lowest byte first */
			if(n < max) {
				lv[n].s = topic + start;
				lv[n].len = at - start;
			}
			n++;
			start = at + 1;
		}
	}
#endif
	for(; i < len; i++) {
		unsigned char ch = (unsigned char)topic[i];
		hi |= ch;
		if(ch == '+' || ch == '#') {
			wl = 1;
		} else if(ch == '/') {
			if(n < max) {
				lv[n].s = topic + start;
				lv[n].len = i - start;
			}
			n++;
			start = i + 1;
		}
	}
	if(n < max) {
		lv[n].s = topic + start;
		lv[n].len = len - start;
	}
	n++;
	*lenp = len;
	*wild = wl != 0;
	*high = (hi & ~POLICY_LOW7) != 0;
	return n;
}

/* Is the identity `id` usable (policy_identity_problem finds nothing)?  When
 * it is the very identity of b's `device` line, it was checked when the
 * policy was loaded (policy_kw_device refuses any identity with a problem),
 * so one comparison answers on the hot path. */
static bool policy_identity_usable(const struct policy_binding *b, const char *id)
{
	if(id && b->kind == POLICY_BINDING_DEVICE && b->entry && strcmp(id, b->entry) == 0) {
		return true;
	}
	return policy_identity_problem(id) == NULL;
}

void policy_check_resolved(const policy_t *p, const policy_binding_t *b,
                           const policy_subject_t *who, const policy_request_t *req,
                           policy_decision_t *out)
{
	ptrie_level_t slev[POLICY_STACK_LEVELS];
	ptrie_level_t *levels = slev;
	const char *topic;
	size_t tlen, n;
	bool wild, high;

	if(!out) {
		return;
	}
	policy_decide(out, false, POLICY_R_BADREQ, NULL);
	out->limit = -1;
	if(!p || !b || b->owner != p || !b->role || !who ||
	   !policy_identity_usable(b, who->identity)) {
		out->reason = POLICY_R_NOTADMITTED;
		goto out;
	}
	if(!req || !req->topic) {
		goto out;
	}
	if(req->qos < 0 || req->qos > 2) {
		out->reason = POLICY_R_BADQOS;
		goto out;
	}
	topic = req->topic;
	switch(req->access) {
	case POLICY_SUBSCRIBE: {
		const char *group;
		size_t glen;
		topic = topic_strip_share(req->topic, &group, &glen);
		if(!topic) {
			out->reason = POLICY_R_BADSHARE;
			goto out;
		}
		if(!topic_valid_filter(topic)) {
			out->reason = POLICY_R_BADFILTER;
			goto out;
		}
		n = policy_split(topic, levels, POLICY_STACK_LEVELS, &tlen, &wild, &high);
		break;
	}
	case POLICY_PUBLISH:
	case POLICY_READ:
		/* topic_valid_name's checks, made on the one pass that splits the
		 * topic: non-empty, at most TOPIC_MAX_LEN bytes, no '+' or '#',
		 * valid UTF-8 (a C string has no NUL inside, and pure ASCII is
		 * valid UTF-8, so only topics with high bytes need the check). */
		n = policy_split(topic, levels, POLICY_STACK_LEVELS, &tlen, &wild, &high);
		if(tlen == 0 || tlen > TOPIC_MAX_LEN || wild || (high && !util_utf8_valid(topic, tlen))) {
			out->reason = POLICY_R_BADTOPIC;
			goto out;
		}
		break;
	default:
		goto out;
	}
	if(topic[0] == '$' && strncasecmp(topic, "$CONTROL", 8) == 0 &&
	   (topic[8] == '/' || topic[8] == '\0')) {
		out->reason = POLICY_R_CONTROL;
		goto out;
	}
	if(n > POLICY_STACK_LEVELS) {
		levels = malloc(n * sizeof(*levels));
		if(!levels) {
			out->reason = POLICY_R_NOMEM;
			goto out;
		}
		policy_split(topic, levels, n, &tlen, &wild, &high);
	}

	policy_var_ctx_t vctx = {.b = b, .who = who};
	policy_acc_t acc = {.req = req, .bad_limit = -1};
	ptrie_query_t q = {
	    .levels = levels,
	    .nlevels = n,
	    .deny = true,
	    .var = policy_var_value,
	    .var_ctx = &vctx,
	    .hit = policy_hit_deny,
	    .acc = &acc,
	};
	const policy_role_t *role = b->role;
	int a = (int)req->access - 1;
	if(req->access == POLICY_SUBSCRIBE) {
		ptrie_overlap(role->trie[a][1], &q);
	} else {
		ptrie_match(role->trie[a][1], &q);
	}
	if(acc.deny) {
		policy_decide(out, false, POLICY_R_DENY, acc.deny);
		goto out;
	}
	q.deny = false;
	q.hit = policy_hit_allow;
	if(req->access == POLICY_SUBSCRIBE) {
		ptrie_cover(role->trie[a][0], &q);
	} else {
		ptrie_match(role->trie[a][0], &q);
	}
	if(acc.ok) {
		policy_decide(out, true, POLICY_R_ALLOW, acc.ok);
	} else if(acc.bad) {
		policy_decide(out, false, acc.bad_reason, acc.bad);
		out->limit = acc.bad_limit;
	} else {
		policy_decide(out, false, POLICY_R_NONE, NULL);
	}
out:
	if(levels != slev) {
		free(levels);
	}
}

void policy_check(const policy_t *p, const policy_subject_t *who, const policy_request_t *req,
                  policy_decision_t *out)
{
	policy_check_resolved(p, policy_resolve(p, who), who, req, out);
}

/* ------------------------------------------------------------------------ */
/* Introspection                                                             */

void policy_get_stats(const policy_t *p, policy_stats_t *out)
{
	if(!out) {
		return;
	}
	memset(out, 0, sizeof(*out));
	if(!p) {
		return;
	}
	out->roles = p->nroles;
	out->devices = hmap_count(p->devices);
	out->matches = p->npatterns;
	out->rules = p->nrules;
	out->unknown_role = p->unknown ? p->unknown->role_name : NULL;
}

void policy_binding_get_info(const policy_binding_t *b, policy_binding_info_t *out)
{
	if(!out) {
		return;
	}
	memset(out, 0, sizeof(*out));
	if(!b) {
		return;
	}
	out->kind = b->kind;
	out->entry = b->entry;
	out->role = b->role_name;
	out->file = b->owner ? b->owner->file : NULL;
	out->line = b->line;
}

bool policy_role_at(const policy_t *p, size_t i, policy_role_info_t *out)
{
	if(!p || i >= p->nroles || !out) {
		return false;
	}
	const policy_role_t *r = p->role_list[i];
	out->name = r->name;
	out->file = p->file;
	out->line = r->line;
	out->allow_rules = r->nallow;
	out->deny_rules = r->ndeny;
	return true;
}

const char *policy_access_name(policy_access_t a)
{
	switch(a) {
	case POLICY_PUBLISH:
		return "publish";
	case POLICY_SUBSCRIBE:
		return "subscribe";
	case POLICY_READ:
		return "read";
	}
	return "?";
}

int policy_decision_format(const policy_decision_t *d, const policy_request_t *req, char *buf,
                           size_t len)
{
	char what[128];
	if(!buf || !len) {
		return -1;
	}
	if(!d) {
		return util_snprintf(buf, len, "no decision");
	}
	if(d->reason == POLICY_R_QOS && req) {
		util_snprintf(what, sizeof(what), "qos %d above max %lld", req->qos, d->limit);
	} else if(d->reason == POLICY_R_SIZE && req) {
		util_snprintf(what, sizeof(what), "payload of %zu bytes above max %lld", req->payloadlen,
		              d->limit);
	} else if(d->reason == POLICY_R_RETAIN) {
		util_snprintf(what, sizeof(what), "retain not allowed");
	} else {
		util_snprintf(what, sizeof(what), "%s", d->reason ? d->reason : "denied");
	}
	if(d->rule_file) {
		return util_snprintf(buf, len, "%s (%s:%d: %s)", what, d->rule_file, d->rule_line,
		                     d->rule_text ? d->rule_text : "");
	}
	return util_snprintf(buf, len, "%s", what);
}

bool policy_binding_same_rights(const policy_t *pa, const policy_binding_t *a, const policy_t *pb,
                                const policy_binding_t *b)
{
	if(!a || !b || a->owner != pa || b->owner != pb || !a->role || !b->role) {
		return false;
	}
	if(strcmp(a->role->name, b->role->name) != 0 || memcmp(a->role->sig, b->role->sig, 32) != 0 ||
	   a->nattrs != b->nattrs) {
		return false;
	}
	for(size_t i = 0; i < a->nattrs; i++) {
		if(strcmp(a->attrs[i].key, b->attrs[i].key) != 0 ||
		   strcmp(a->attrs[i].value, b->attrs[i].value) != 0) {
			return false;
		}
	}
	return true;
}

void policy_binding_limits(const policy_binding_t *b, double *rate, double *bytes)
{
	*rate = -1;
	*bytes = -1;
	if(!b) {
		return;
	}
	*rate = b->rate >= 0 ? b->rate : (b->role ? b->role->rate : -1);
	*bytes = b->bytes >= 0 ? b->bytes : (b->role ? b->role->bytes : -1);
}
