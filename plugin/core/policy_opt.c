/*
 * policy_opt.c — the options an allow rule may carry (`publish plant/# qos<=1
 * retain=no max-payload=16k`), one table row each: how it is written, how
 * its value is parsed into the rule, how a request exceeds it, and how the
 * denial is explained.  A new option is a field in policy_rule_t
 * (policy_trie.h) and a row here; the parser (policy_parse.c), the decision
 * (policy.c), the error messages and policy_decision_format all follow the
 * table.
 *
 * Options limit what an allow rule grants; deny rules take none.  A rule
 * records which options it was given (policy_rule_t.opts), so checking a
 * rule without options is free.
 */
#include <stdint.h>
#include <string.h>

#include "policy_int.h"
#include "util.h"

/* MQTT's largest possible payload: 256 MiB minus headers. */
#define POLICY_MAX_PAYLOAD 268435455ULL

typedef struct policy_opt {
	const char *name;  /* the word up to its value: "qos<=" */
	const char *form;  /* the value in "expected ..." lists: "N" */
	const char *usage; /* how to write a valid value, after `invalid "WORD": ` */
	bool subscribe;    /* may also limit a subscribe rule */
	/* Store value v in r; 0, or -1 when v is not a valid value. */
	int (*parse)(const char *v, policy_rule_t *r);
	/* Does req exceed r's value?  Sets *limit to the maximum (or -1). */
	bool (*exceeds)(const policy_rule_t *r, const policy_request_t *req, long long *limit);
	const char *reason; /* the decision's reason when it does */
	/* What was exceeded, for policy_decision_format; req may be NULL. */
	int (*explain)(const policy_request_t *req, long long limit, char *buf, size_t len);
} policy_opt_t;

/* ---- qos<=N ------------------------------------------------------------- */

static int policy_opt_qos_parse(const char *v, policy_rule_t *r)
{
	int64_t q;
	if(util_parse_i64(v, 0, 2, &q)) {
		return -1;
	}
	r->max_qos = (int)q;
	return 0;
}

static bool policy_opt_qos_exceeds(const policy_rule_t *r, const policy_request_t *req,
                                   long long *limit)
{
	*limit = r->max_qos;
	return req->qos > r->max_qos;
}

static int policy_opt_qos_explain(const policy_request_t *req, long long limit, char *buf,
                                  size_t len)
{
	if(!req) {
		return -2;
	}
	return util_snprintf(buf, len, "qos %d above max %lld", req->qos, limit);
}

/* ---- retain=yes|no ------------------------------------------------------ */

static int policy_opt_retain_parse(const char *v, policy_rule_t *r)
{
	if(strcmp(v, "no") == 0) {
		r->no_retain = true;
	} else if(strcmp(v, "yes") != 0) {
		return -1;
	}
	return 0;
}

static bool policy_opt_retain_exceeds(const policy_rule_t *r, const policy_request_t *req,
                                      long long *limit)
{
	*limit = -1;
	return r->no_retain && req->retain;
}

static int policy_opt_retain_explain(const policy_request_t *req, long long limit, char *buf,
                                     size_t len)
{
	return util_snprintf(buf, len, "retain not allowed");
}

/* ---- max-payload=SIZE --------------------------------------------------- */

static int policy_opt_size_parse(const char *v, policy_rule_t *r)
{
	return util_parse_size(v, POLICY_MAX_PAYLOAD, &r->max_payload);
}

static bool policy_opt_size_exceeds(const policy_rule_t *r, const policy_request_t *req,
                                    long long *limit)
{
	*limit = (long long)r->max_payload;
	return (uint64_t)req->payloadlen > r->max_payload;
}

static int policy_opt_size_explain(const policy_request_t *req, long long limit, char *buf,
                                   size_t len)
{
	if(!req) {
		return -2;
	}
	return util_snprintf(buf, len, "payload of %zu bytes above max %lld", req->payloadlen, limit);
}

/* The options, in the order a request is checked against them. */
static const policy_opt_t policy_opts[] = {
    {"qos<=", "N", "write qos<=0, qos<=1 or qos<=2", true, policy_opt_qos_parse,
     policy_opt_qos_exceeds, "qos above the rule's maximum", policy_opt_qos_explain},
    {"retain=", "yes|no", "write retain=yes or retain=no", false, policy_opt_retain_parse,
     policy_opt_retain_exceeds, "retain not allowed by the rule", policy_opt_retain_explain},
    {"max-payload=", "SIZE", "write a size such as max-payload=512, 16k or 1M (at most 256M)",
     false, policy_opt_size_parse, policy_opt_size_exceeds,
     "payload larger than the rule's maximum", policy_opt_size_explain},
};

#define POLICY_NOPTS (sizeof(policy_opts) / sizeof(policy_opts[0]))
_Static_assert(POLICY_NOPTS <= 8, "policy_rule_t.opts has one bit per option");

/* The options' names as a list: "qos<=N, retain=yes|no or max-payload=SIZE"
 * (with_form) or "qos<=, retain= and max-payload=". */
static const char *policy_opt_list(bool with_form, const char *last_sep, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for(size_t i = 0; i < POLICY_NOPTS && at < len; i++) {
		const char *sep = i == 0 ? "" : i + 1 == POLICY_NOPTS ? last_sep : ", ";
		util_snprintf(buf + at, len - at, "%s%s%s", sep, policy_opts[i].name,
		              with_form ? policy_opts[i].form : "");
		at += strlen(buf + at);
	}
	return buf;
}

int policy_opt_parse(const conf_line_t *l, int from, policy_rule_t *r, char *err, size_t errlen)
{
	char list[256];
	for(int i = from; i < l->argc; i++) {
		const char *w = l->argv[i];
		if(r->deny) {
			return conf_error(l, err, errlen,
			                  "deny rules take no options (\"%s\"): %s limit what an allow rule "
			                  "grants",
			                  w, policy_opt_list(false, " and ", list, sizeof(list)));
		}
		size_t k = 0;
		while(k < POLICY_NOPTS &&
		      strncmp(w, policy_opts[k].name, strlen(policy_opts[k].name)) != 0) {
			k++;
		}
		if(k == POLICY_NOPTS) {
			return conf_error(l, err, errlen,
			                  "unknown rule option \"%s\": expected %s (no blanks inside an "
			                  "option)",
			                  w, policy_opt_list(true, " or ", list, sizeof(list)));
		}
		const policy_opt_t *o = &policy_opts[k];
		if(r->opts & (1u << k)) {
			return conf_error(l, err, errlen, "%s given twice", o->name);
		}
		if(r->access == POLICY_SUBSCRIBE && !o->subscribe) {
			return conf_error(l, err, errlen,
			                  "%s applies to publish and read rules, not subscribe", o->name);
		}
		if(o->parse(w + strlen(o->name), r)) {
			return conf_error(l, err, errlen, "invalid \"%s\": %s", w, o->usage);
		}
		r->opts |= (uint8_t)(1u << k);
	}
	return 0;
}

const char *policy_opt_check(const policy_rule_t *r, const policy_request_t *req,
                             long long *limit)
{
	for(unsigned m = r->opts; m; m &= m - 1) {
		const policy_opt_t *o = &policy_opts[__builtin_ctz(m)];
		if(o->exceeds(r, req, limit)) {
			return o->reason;
		}
	}
	*limit = -1;
	return NULL;
}

int policy_opt_explain(const char *reason, const policy_request_t *req, long long limit, char *buf,
                       size_t len)
{
	for(size_t k = 0; k < POLICY_NOPTS; k++) {
		if(reason == policy_opts[k].reason) {
			return policy_opts[k].explain(req, limit, buf, len);
		}
	}
	return -2;
}
