/*
 * policy_trie.h — the compiled form of one role's rules: a trie keyed by topic
 * level, so that finding the rules that match a topic costs O(topic levels)
 * whatever the number of rules.  Internal to the policy engine (policy.c,
 * policy_parse.c, policy_opt.c); nothing outside plugin/core includes it.
 *
 * A node has literal children, a '+' child, a '#' child and variable
 * children (`%{name}`, compared literally with the level after
 * substitution).  Rules hang off the node where their filter ends.
 *
 * The rules are collected (ptrie_build_new, ptrie_insert), then compiled
 * (ptrie_compile) into a ptrie_t: the trie in one block of memory, depth
 * first, each chain of single literal children merged into one node whose
 * label spans several levels ("r17/a3/a4"), literal children in an
 * open-addressing table of (hash, node) beside their parent, and each node's
 * label and a copy of its rules stored with it.  A decision then touches one
 * or two cache lines per *branching* level, not a few allocations per level
 * and one per rule.
 *
 * Three walks answer the three questions the policy asks:
 *  - ptrie_match:   which rules' filters match this topic *name*;
 *  - ptrie_cover:   which rules' filters cover this *filter* entirely
 *                   (topic_filter_covers semantics);
 *  - ptrie_overlap: which rules' filters share at least one topic with this
 *                   filter.
 * All three follow MQTT's rule that wildcards never reach a topic whose first
 * level starts with '$', and extend it to variables.
 *
 * Variable values come from a lookup callback.  A value that is missing,
 * empty, starts with '$', or contains '/', '+', '#' or a control character is
 * "unusable" (the same rules as identities follow).  In an allow trie a node
 * with an unusable value matches nothing; in a deny trie it matches any single
 * level like '+' — so missing or hostile data can only ever deny more.
 *
 * The trie is built once and then only read: the walks keep no state in it,
 * so concurrent readers are fine.
 */
#ifndef PG_POLICY_TRIE_H
#define PG_POLICY_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* One allow or deny rule, as compiled.  Owned by the policy. */
typedef struct policy_rule {
	unsigned seq;          /* position in the file: the lower, the earlier */
	bool deny;
	uint8_t opts;          /* bit i: option i of policy_opt.c's table given */
	policy_access_t access;
	/* The options' values (policy_opt.c), each meaningful only when its
	 * bit in opts is set: */
	int max_qos;           /* qos<=N */
	bool no_retain;        /* retain=no */
	uint64_t max_payload;  /* max-payload=SIZE */
	const char *file;      /* borrowed from the policy */
	int line;
	char *text;            /* the rule as written, for explanations */
} policy_rule_t;

typedef struct ptrie_build ptrie_build_t; /* rules collected for a trie */
typedef struct ptrie ptrie_t;             /* a compiled trie */

/* Returns the value of variable `name` for the client being checked, or NULL. */
typedef const char *(*ptrie_var_fn)(const void *ctx, const char *name);
/* Called once per rule found by a walk.  r is the compiled trie's copy of
 * the rule inserted (same fields, same borrowed file and text): valid while
 * the trie is. */
typedef void (*ptrie_hit_fn)(void *acc, const policy_rule_t *r);

/* One level of a topic or filter: not NUL-terminated. */
typedef struct ptrie_level {
	const char *s;
	size_t len;
} ptrie_level_t;

typedef struct ptrie_query {
	/* The topic or filter split at '/': all levels lie in one string, in
	 * order, each separated from the next by exactly one '/' (the walks
	 * compare a label spanning several levels with one memcmp). */
	const ptrie_level_t *levels;
	size_t nlevels;
	bool deny;        /* walking a deny trie: unusable values act as '+' */
	ptrie_var_fn var;
	const void *var_ctx;
	ptrie_hit_fn hit;
	void *acc;
} ptrie_query_t;

/* A new empty collection of rules, or NULL on ENOMEM. */
ptrie_build_t *ptrie_build_new(void);
/* Free a collection; the rules are not freed (the policy owns them).  NULL
 * is fine. */
void ptrie_build_free(ptrie_build_t *b);

/* Add rule r under `filter`, a valid MQTT filter whose levels may also be
 * `%{name}` variables (the caller has checked their syntax).  The filter is
 * copied; r is borrowed until compiled.  Returns 0, or -1 on ENOMEM. */
int ptrie_insert(ptrie_build_t *b, const char *filter, const policy_rule_t *r);

/* Compile the rules collected in b into one block.  b is only read, and may
 * be freed afterwards; the result holds copies of the rules (whose file and
 * text it borrows, like the rules did).  The caller frees it with
 * ptrie_compiled_free.  NULL on ENOMEM or a NULL b. */
ptrie_t *ptrie_compile(const ptrie_build_t *b);
/* Free a compiled trie; NULL is fine. */
void ptrie_compiled_free(ptrie_t *t);

/* The walks described above; each calls q->hit for every rule found (a rule
 * may be reported more than once by ptrie_overlap, and in no particular
 * order by any walk).  t may be NULL: no rules. */
void ptrie_match(const ptrie_t *t, const ptrie_query_t *q);
void ptrie_cover(const ptrie_t *t, const ptrie_query_t *q);
void ptrie_overlap(const ptrie_t *t, const ptrie_query_t *q);

/* A short-key hash, 8 bytes at a time: the trie's (seeded per compiled
 * trie, so that a hostile set of topic levels cannot be prepared against
 * every plugin) and the decision memo's (policy_memo.c). */
uint64_t ptrie_hash(uint64_t seed, const char *s, size_t len);

/* True when a substituted value can stand for exactly one topic level:
 * non-NULL, non-empty, no leading '$', no '/', '+', '#' or control
 * characters. */
bool ptrie_value_usable(const char *v);

#endif
