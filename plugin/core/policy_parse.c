/*
 * policy_parse.c — read the policy file (docs/policy.md) into a policy_t:
 * one handler per keyword, in a table; each role's rules collected into
 * tries (policy_trie.c) and compiled once the whole file is read; device
 * entries linked to their roles.  The decisions are policy.c's; the rule
 * options (qos<=, retain=, max-payload=) are policy_opt.c's table.
 *
 * Loading is transactional: everything is built in a fresh policy_t and only
 * returned when the whole file is valid; any error frees it and says
 * "file:line: what is wrong, and what to write instead".  Once loaded the
 * policy is never written again, so any number of threads may check against
 * it at once.  The one static mutable state is an atomic counter that
 * gives each policy loaded its serial (struct policy).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "conf.h"
#include "hmap.h"
#include "policy_int.h"
#include "topic.h"
#include "util.h"

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
	json_out_free(&r->sigtext);
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
			free(p->rules[i]->rule.text);
			free(p->rules[i]->filter);
			free(p->rules[i]);
		}
	}
	free(p->rules);
	free(p->bindings);
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
const char *policy_identity_problem(const char *s)
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

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

/* List binding b, already owned by p, in p->bindings (file order). */
static int policy_list_binding(const conf_line_t *l, policy_t *p, struct policy_binding *b,
                               char *err, size_t errlen)
{
	void *grown = util_grow(p->bindings, p->nbindings, &p->binding_cap, sizeof(*p->bindings));
	if(!grown) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->bindings = grown;
	p->bindings[p->nbindings++] = b;
	return 0;
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
	return policy_list_binding(l, p, p->unknown, err, errlen);
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
	void *grown = util_grow(p->role_list, p->nroles, &p->role_cap, sizeof(*p->role_list));
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
	return policy_list_binding(l, p, b, err, errlen);
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
	void *grown = util_grow(p->patterns, p->npatterns, &p->pattern_cap, sizeof(*p->patterns));
	if(grown) {
		p->patterns = grown;
	}
	if(!grown || hmap_put(ps->pattern_lines, glob, (void *)(intptr_t)l->line)) {
		policy_binding_free(b);
		return conf_error(l, err, errlen, "out of memory");
	}
	p->patterns[p->npatterns++] = b;
	return policy_list_binding(l, p, b, err, errlen);
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
	json_out_raw(&role->sigtext, text, strlen(text));
	json_out_raw(&role->sigtext, "\n", 1);
	return role->sigtext.oom ? -1 : 0;
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
	void *grown = util_grow(p->rules, p->nrules, &p->rule_cap, sizeof(*p->rules));
	if(!grown) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->rules = grown;
	policy_rule_src_t *src = calloc(1, sizeof(*src));
	if(!src) {
		return conf_error(l, err, errlen, "out of memory");
	}
	p->rules[p->nrules++] = src; /* owned by the policy from here on */
	src->role = ps->cur;
	src->filter = strdup(filter);
	policy_rule_t *r = &src->rule;
	r->seq = (unsigned)p->nrules;
	r->deny = deny;
	r->access = access;
	r->file = p->file;
	r->line = l->line;
	r->text = policy_rule_text(l);
	if(!r->text || !src->filter) {
		return conf_error(l, err, errlen, "out of memory");
	}
	if(policy_opt_parse(l, at + 2, r, err, errlen)) {
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
		SHA256((const unsigned char *)(r->sigtext.s ? r->sigtext.s : ""), r->sigtext.len, r->sig);
		json_out_free(&r->sigtext);
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

/* The serial of the next policy loaded (see struct policy). */
static _Atomic uint64_t policy_serial_next = 1;

static policy_t *policy_new(const char *name)
{
	policy_t *p = calloc(1, sizeof(*p));
	if(!p) {
		return NULL;
	}
	p->serial = atomic_fetch_add(&policy_serial_next, 1);
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

