/*
 * policy.c — the device policy's decisions and what it tells about itself
 * (see policy.h for the contract, docs/policy.md for the language).  The
 * policy is built by policy_parse.c; this file only reads it.
 *
 * A decision takes three steps, none of which depends on the number of rules:
 * find the client's entry (hmap of devices; patterns only when the plugin did
 * not resolve once with policy_resolve), walk the role's deny trie for the
 * access, then its allow trie.  Any deny rule that matches wins; otherwise the
 * earliest matching allow rule whose options (policy_opt.c: QoS, retain,
 * payload size) the request meets allows it; otherwise it is denied.
 */
#include "policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hmap.h"
#include "policy_int.h"
#include "topic.h"
#include "util.h"

/* Reasons: static text.  Those of the rule options are policy_opt.c's. */
static const char POLICY_R_ALLOW[] = "allowed by rule";
static const char POLICY_R_DENY[] = "denied by rule";
static const char POLICY_R_NONE[] = "no rule grants it";
static const char POLICY_R_NOTADMITTED[] = "client not admitted by the policy";
static const char POLICY_R_BADREQ[] = "invalid request";
static const char POLICY_R_BADQOS[] = "invalid qos";
static const char POLICY_R_BADTOPIC[] = "invalid topic name";
static const char POLICY_R_BADFILTER[] = "invalid topic filter";
static const char POLICY_R_BADSHARE[] = "malformed shared subscription";
static const char POLICY_R_CONTROL[] = "$CONTROL topics are never granted";
static const char POLICY_R_NOMEM[] = "out of memory";

/* ------------------------------------------------------------------------ */
/* Identity patterns                                                         */

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
	/* Every allow rule that matched, for the memo (first POLICY_MEMO_RULES;
	 * nseen counts them all). */
	const policy_rule_t *seen[POLICY_MEMO_RULES];
	unsigned nseen;
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
	long long limit = -1;
	if(a->nseen < POLICY_MEMO_RULES) {
		a->seen[a->nseen] = r;
	}
	a->nseen++;
	const char *why = r->opts ? policy_opt_check(r, req, &limit) : NULL;
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

/* The decision once the walks (or the memo) found acc's rules. */
static void policy_conclude(policy_decision_t *out, const policy_acc_t *acc)
{
	if(acc->deny) {
		policy_decide(out, false, POLICY_R_DENY, acc->deny);
	} else if(acc->ok) {
		policy_decide(out, true, POLICY_R_ALLOW, acc->ok);
	} else if(acc->bad) {
		policy_decide(out, false, acc->bad_reason, acc->bad);
		out->limit = acc->bad_limit;
	} else {
		policy_decide(out, false, POLICY_R_NONE, NULL);
	}
}

/* The decision from what the memo remembers of the topic: the same rules the
 * walks would find, with their options applied to this request. */
static void policy_conclude_memo(policy_decision_t *out, const policy_memo_hit_t *h,
                                 const policy_request_t *req)
{
	policy_acc_t acc = {.req = req, .bad_limit = -1, .deny = h->deny};
	for(unsigned i = 0; !acc.deny && i < h->nallow; i++) {
		policy_hit_allow(&acc, h->allow[i]);
	}
	policy_conclude(out, &acc);
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
	policy_check_memo(p, b, who, req, NULL, out);
}

void policy_check_memo(const policy_t *p, const policy_binding_t *b, const policy_subject_t *who,
                       const policy_request_t *req, policy_memo_t *m, policy_decision_t *out)
{
	ptrie_level_t slev[POLICY_STACK_LEVELS];
	ptrie_level_t *levels = slev;
	const char *topic;
	size_t tlen, n;
	bool wild, high;
	uint64_t mhash = 0;

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
		if(m) {
			/* A topic remembered was valid, not $CONTROL, and walked
			 * for this very policy, binding and subject. */
			policy_memo_bind(m, p, b);
			mhash = policy_memo_hash(topic, &tlen);
			const policy_memo_hit_t *h = policy_memo_find(m, req->access, topic, tlen, mhash);
			if(h) {
				policy_conclude_memo(out, h, req);
				goto out;
			}
		}
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
	if(!acc.deny) {
		q.deny = false;
		q.hit = policy_hit_allow;
		if(req->access == POLICY_SUBSCRIBE) {
			ptrie_cover(role->trie[a][0], &q);
		} else {
			ptrie_match(role->trie[a][0], &q);
		}
	}
	policy_conclude(out, &acc);
	if(m && req->access != POLICY_SUBSCRIBE && acc.nseen <= POLICY_MEMO_RULES) {
		policy_memo_hit_t h = {.deny = acc.deny, .nallow = acc.deny ? 0 : acc.nseen};
		memcpy(h.allow, acc.seen, h.nallow * sizeof(h.allow[0]));
		policy_memo_store(m, req->access, topic, tlen, mhash, &h);
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
	out->unknown_line = p->unknown_line;
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
	out->attrs = b->attrs;
	out->nattrs = b->nattrs;
}

const policy_binding_t *policy_binding_at(const policy_t *p, size_t i)
{
	return p && i < p->nbindings ? p->bindings[i] : NULL;
}

bool policy_rule_at(const policy_t *p, size_t i, policy_rule_info_t *out)
{
	if(!p || i >= p->nrules || !out) {
		return false;
	}
	const policy_rule_src_t *src = p->rules[i];
	out->role = src->role->name;
	out->deny = src->rule.deny;
	out->access = src->rule.access;
	out->filter = src->filter;
	out->text = src->rule.text;
	out->file = src->rule.file;
	out->line = src->rule.line;
	return true;
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
	if(policy_opt_explain(d->reason, req, d->limit, what, sizeof(what)) == -2) {
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

