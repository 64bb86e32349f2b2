/*
 * policy_int.h — the policy's shared structures, inside the policy engine
 * only: policy_parse.c builds them from the policy file, policy.c decides
 * and answers questions with them, policy_opt.c holds the rule options.
 * Nothing outside plugin/core includes this header; the rest of the code
 * sees the opaque policy_t and policy_binding_t of policy.h.
 *
 * Ownership: the policy owns everything below.  Roles live in role_list
 * (roles only indexes them); device bindings in the devices map, pattern
 * bindings in patterns, the unknown-devices binding in unknown; `bindings`
 * lists all of them in file order without owning them; rules live in rules.
 */
#ifndef PG_POLICY_INT_H
#define PG_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "hmap.h"
#include "json.h"
#include "policy.h"
#include "policy_trie.h"

typedef struct policy_role {
	char *name;
	int line;
	/* [access - 1][deny]: built while parsing, compiled by policy_finish */
	ptrie_build_t *build[3][2];
	ptrie_t *trie[3][2];
	size_t nallow, ndeny;
	/* The role's rules as written, in order, while parsing; then their
	 * SHA-256, which tells a reload whether the role's rights changed. */
	json_out_t sigtext; /* a growing byte buffer (common/json.h) */
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

/* A rule as the file gave it: the compiled rule (the tries hold copies of
 * `rule`) plus what only introspection needs. */
typedef struct policy_rule_src {
	policy_rule_t rule;
	char *filter;              /* the topic filter as written */
	const policy_role_t *role; /* the role it belongs to */
} policy_rule_src_t;

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
	struct policy_binding **bindings; /* every binding in file order; not owned */
	size_t nbindings, binding_cap;
	policy_rule_src_t **rules; /* every rule, in file order */
	size_t nrules, rule_cap;
	int default_line; /* 0 until `default deny` is seen */
	/* Unique among the policies this process loaded (policy_parse.c): a
	 * memo tells a new policy from a freed one at the same address. */
	uint64_t serial;
};

/* Why an identity (or a value standing for a topic level) is unusable, or
 * NULL when it is fine (policy_parse.c).  Mirrors the identity rules the
 * plugin applies at connect, so the policy never names a device that could
 * not connect, and a decision never trusts an identity that could not. */
const char *policy_identity_problem(const char *s);

/* ---- Rule options (policy_opt.c): qos<=, retain=, max-payload= ----------
 * One table row per option.  A rule records which options it was given in
 * policy_rule_t.opts (bit i = row i), so a rule without options costs the
 * decision nothing. */

/* Parse the option words argv[from..argc) of rule r (whose deny and access
 * are set) into r.  Returns 0, or -1 with "file:line: ..." in err. */
int policy_opt_parse(const conf_line_t *l, int from, policy_rule_t *r, char *err, size_t errlen);

/* The first option of allow rule r that the request exceeds: its reason
 * (static text, a policy_decision_t reason) with *limit set to the maximum
 * exceeded (-1 when the option has no number), or NULL when r's options all
 * hold. */
const char *policy_opt_check(const policy_rule_t *r, const policy_request_t *req,
                             long long *limit);

/* When `reason` is an option's reason: write what was exceeded ("qos 2 above
 * max 1") to buf and return the util_snprintf result; otherwise return -2 and
 * leave buf alone. */
int policy_opt_explain(const char *reason, const policy_request_t *req, long long limit, char *buf,
                       size_t len);

/* ---- The per-subject memo's table (policy_memo.c; see policy.h) --------
 * What the walks found for one topic: the earliest deny rule that matched
 * (then nothing else is needed), else the allow rules that matched, in no
 * particular order (the options decide among them per request).  The rules
 * are borrowed from the policy the memo is bound to. */
#define POLICY_MEMO_RULES 3
typedef struct policy_memo_hit {
	const policy_rule_t *deny;
	const policy_rule_t *allow[POLICY_MEMO_RULES];
	unsigned nallow;
} policy_memo_hit_t;

/* Bind m to binding b of policy p: when it was filled for anything else, it
 * is emptied first. */
void policy_memo_bind(policy_memo_t *m, const policy_t *p, const policy_binding_t *b);
/* Length of topic in *len and its hash. */
uint64_t policy_memo_hash(const char *topic, size_t *len);
/* What m remembers for (a, topic), or NULL. */
const policy_memo_hit_t *policy_memo_find(const policy_memo_t *m, policy_access_t a, const char *topic,
                                          size_t len, uint64_t hash);
/* Remember h for (a, topic); topic must be at most POLICY_MEMO_TOPIC bytes.
 * May forget another topic to make room; does nothing on ENOMEM. */
void policy_memo_store(policy_memo_t *m, policy_access_t a, const char *topic, size_t len, uint64_t hash,
                       const policy_memo_hit_t *h);

#endif
