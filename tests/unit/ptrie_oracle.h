/*
 * ptrie_oracle.h — the policy trie as it was before it was compiled
 * (plugin/core/policy_trie.c as of commit c0637ef: one node per filter level,
 * walks over NUL-split levels), kept verbatim apart from the ptrie_ -> oracle_
 * renames and `static`, as the oracle test_policy_trie.c checks the compiled
 * trie against.  Test code only: included by that one file.
 */
#ifndef PG_PTRIE_ORACLE_H
#define PG_PTRIE_ORACLE_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "policy_trie.h"

typedef struct oracle_node oracle_node_t;

typedef struct oracle_query {
	char **levels; /* the topic or filter split at '/', NUL-terminated each */
	size_t nlevels;
	bool deny;
	ptrie_var_fn var;
	const void *var_ctx;
	ptrie_hit_fn hit;
	void *acc;
} oracle_query_t;

typedef struct oracle_var {
	char *name;
	oracle_node_t *node;
} oracle_var_t;

struct oracle_node {
	/* Literal children: the first one inline (chains of single children are
	 * the common case: plant/hq/line1/...), all of them in an hmap once there
	 * are two. */
	char *lit1_key;
	oracle_node_t *lit1;
	hmap_t *lits;
	oracle_node_t *plus;
	oracle_node_t *hash; /* a leaf: '#' is always the last level */
	oracle_var_t *vars;
	size_t nvars;
	const policy_rule_t **rules; /* rules whose filter ends here */
	size_t nrules;
	const policy_rule_t *first;  /* lowest seq in this subtree */
};

static oracle_node_t *oracle_new(void)
{
	return calloc(1, sizeof(oracle_node_t));
}

static void oracle_free(oracle_node_t *n);

static void oracle_free_value(void *v)
{
	oracle_free(v);
}

static void oracle_free(oracle_node_t *n)
{
	if(!n) {
		return;
	}
	free(n->lit1_key);
	oracle_free(n->lit1);
	hmap_free(n->lits);
	oracle_free(n->plus);
	oracle_free(n->hash);
	for(size_t i = 0; i < n->nvars; i++) {
		free(n->vars[i].name);
		oracle_free(n->vars[i].node);
	}
	free(n->vars);
	free(n->rules);
	free(n);
}

static bool oracle_value_usable(const char *v)
{
	if(!v || !v[0] || v[0] == '$') {
		return false;
	}
	for(const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if(*c == '/' || *c == '+' || *c == '#' || *c < 0x20 || *c == 0x7f) {
			return false;
		}
	}
	return true;
}

/* `%{name}` → name (pointer into level, length in *len); NULL otherwise. */
static const char *oracle_var_name(const char *level, size_t *len)
{
	size_t l = strlen(level);
	if(l < 4 || level[0] != '%' || level[1] != '{' || level[l - 1] != '}') {
		return NULL;
	}
	*len = l - 3;
	return level + 2;
}

static const oracle_node_t *oracle_lit_get(const oracle_node_t *n, const char *key)
{
	if(n->lits) {
		return hmap_get(n->lits, key);
	}
	if(n->lit1_key && strcmp(n->lit1_key, key) == 0) {
		return n->lit1;
	}
	return NULL;
}

/* Child for `level`, created when missing.  NULL on ENOMEM. */
static oracle_node_t *oracle_child(oracle_node_t *n, const char *level)
{
	oracle_node_t **slot = NULL;
	size_t vlen;
	const char *vname;

	if(strcmp(level, "+") == 0) {
		slot = &n->plus;
	} else if(strcmp(level, "#") == 0) {
		slot = &n->hash;
	} else if((vname = oracle_var_name(level, &vlen)) != NULL) {
		for(size_t i = 0; i < n->nvars; i++) {
			if(strlen(n->vars[i].name) == vlen && memcmp(n->vars[i].name, vname, vlen) == 0) {
				return n->vars[i].node;
			}
		}
		oracle_var_t *nv = realloc(n->vars, (n->nvars + 1) * sizeof(*nv));
		if(!nv) {
			return NULL;
		}
		n->vars = nv;
		oracle_var_t *v = &n->vars[n->nvars];
		v->name = strndup(vname, vlen);
		v->node = oracle_new();
		if(!v->name || !v->node) {
			free(v->name);
			oracle_free(v->node);
			return NULL;
		}
		n->nvars++;
		return v->node;
	} else {
		oracle_node_t *c = (oracle_node_t *)oracle_lit_get(n, level);
		if(c) {
			return c;
		}
		if(!n->lits && !n->lit1) {
			n->lit1_key = strdup(level);
			n->lit1 = oracle_new();
			if(!n->lit1_key || !n->lit1) {
				free(n->lit1_key);
				oracle_free(n->lit1);
				n->lit1_key = NULL;
				n->lit1 = NULL;
				return NULL;
			}
			return n->lit1;
		}
		if(!n->lits) {
			hmap_t *m = hmap_new(oracle_free_value);
			if(!m || hmap_put(m, n->lit1_key, n->lit1)) {
				hmap_free(m);
				return NULL;
			}
			free(n->lit1_key);
			n->lit1_key = NULL;
			n->lit1 = NULL;
			n->lits = m;
		}
		c = oracle_new();
		if(!c || hmap_put(n->lits, level, c)) {
			oracle_free(c);
			return NULL;
		}
		return c;
	}
	if(!*slot) {
		*slot = oracle_new();
	}
	return *slot;
}

static void oracle_note_first(oracle_node_t *n, const policy_rule_t *r)
{
	if(!n->first || r->seq < n->first->seq) {
		n->first = r;
	}
}

static int oracle_insert(oracle_node_t *root, const char *filter, const policy_rule_t *r)
{
	int rc = -1;
	char *copy = strdup(filter);
	if(!copy) {
		goto out;
	}
	oracle_node_t *n = root;
	oracle_note_first(n, r);
	char *level = copy;
	for(;;) {
		char *slash = strchr(level, '/');
		if(slash) {
			*slash = '\0';
		}
		n = oracle_child(n, level);
		if(!n) {
			goto out;
		}
		oracle_note_first(n, r);
		if(!slash) {
			break;
		}
		level = slash + 1;
	}
	const policy_rule_t **nr = realloc(n->rules, (n->nrules + 1) * sizeof(*nr));
	if(!nr) {
		goto out;
	}
	n->rules = nr;
	n->rules[n->nrules++] = r;
	rc = 0;
out:
	free(copy);
	return rc;
}

static void oracle_hit_all(const oracle_node_t *n, const oracle_query_t *q)
{
	for(size_t i = 0; i < n->nrules; i++) {
		q->hit(q->acc, n->rules[i]);
	}
}

/* Does variable child v stand for the literal level `text`?  A variable never
 * reaches a '$' first level (`dollar0`), like a wildcard. */
static bool oracle_var_is(const oracle_query_t *q, const oracle_var_t *v, const char *text,
                         bool dollar0)
{
	if(dollar0) {
		return false;
	}
	const char *val = q->var(q->var_ctx, v->name);
	if(oracle_value_usable(val)) {
		return strcmp(val, text) == 0;
	}
	return q->deny;
}

/* Can variable child v stand for *some* level that a '+' or '#' of the
 * query filter at depth i matches? */
static bool oracle_var_any(const oracle_query_t *q, const oracle_var_t *v, size_t i)
{
	const char *val = q->var(q->var_ctx, v->name);
	if(oracle_value_usable(val)) {
		return !(i == 0 && val[0] == '$');
	}
	return q->deny;
}

static bool oracle_is(const char *level, char c)
{
	return level[0] == c && level[1] == '\0';
}

static void oracle_match_at(const oracle_node_t *n, const oracle_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		oracle_hit_all(n->hash, q); /* "a/#" matches "a" and everything below */
	}
	if(i == q->nlevels) {
		oracle_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	if(n->plus && !dollar0) {
		oracle_match_at(n->plus, q, i + 1);
	}
	const oracle_node_t *c = oracle_lit_get(n, l);
	if(c) {
		oracle_match_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(oracle_var_is(q, &n->vars[k], l, dollar0)) {
			oracle_match_at(n->vars[k].node, q, i + 1);
		}
	}
}

static void oracle_match(const oracle_node_t *root, const oracle_query_t *q)
{
	if(root && q->nlevels > 0) {
		oracle_match_at(root, q, 0);
	}
}

static void oracle_cover_at(const oracle_node_t *n, const oracle_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		oracle_hit_all(n->hash, q); /* '#' covers whatever the filter has left */
	}
	if(i == q->nlevels) {
		oracle_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	if(oracle_is(l, '#')) {
		/* Only a '#' covers a '#' — and "P/+/#" covers "P/#" when P is the
		 * empty topic, which is not valid (see topic_filter_covers). */
		if((i == 0 || (i == 1 && q->levels[0][0] == '\0')) && n->plus && n->plus->hash) {
			oracle_hit_all(n->plus->hash, q);
		}
		return;
	}
	if(n->plus && !dollar0) {
		oracle_cover_at(n->plus, q, i + 1);
	}
	if(oracle_is(l, '+')) {
		/* Only '+' (above) covers '+'; in a deny trie an unusable variable
		 * acts as '+' too. */
		for(size_t k = 0; k < n->nvars && q->deny; k++) {
			const char *val = q->var(q->var_ctx, n->vars[k].name);
			if(!oracle_value_usable(val)) {
				oracle_cover_at(n->vars[k].node, q, i + 1);
			}
		}
		return;
	}
	const oracle_node_t *c = oracle_lit_get(n, l);
	if(c) {
		oracle_cover_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(oracle_var_is(q, &n->vars[k], l, dollar0)) {
			oracle_cover_at(n->vars[k].node, q, i + 1);
		}
	}
}

static void oracle_cover(const oracle_node_t *root, const oracle_query_t *q)
{
	if(root && q->nlevels > 0) {
		oracle_cover_at(root, q, 0);
	}
}

/* Report the rules of subtree n, any of whose topics the query's trailing '#'
 * matches.  In a deny trie every node leads to a rule that matches something
 * (variables there match a value or anything), so the precomputed first rule
 * suffices; in an allow trie unusable variables cut branches off. */
static void oracle_hit_subtree(const oracle_node_t *n, const oracle_query_t *q, size_t i)
{
	if(q->deny) {
		if(n->first) {
			q->hit(q->acc, n->first);
		}
		return;
	}
	oracle_hit_all(n, q);
	if(n->hash) {
		oracle_hit_all(n->hash, q);
	}
	if(n->plus) {
		oracle_hit_subtree(n->plus, q, i + 1);
	}
	if(n->lit1) {
		oracle_hit_subtree(n->lit1, q, i + 1);
	}
	if(n->lits) {
		size_t it = 0;
		const char *key;
		void *val;
		while(hmap_next(n->lits, &it, &key, &val)) {
			oracle_hit_subtree(val, q, i + 1);
		}
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(oracle_var_any(q, &n->vars[k], i)) {
			oracle_hit_subtree(n->vars[k].node, q, i + 1);
		}
	}
}

static void oracle_overlap_at(const oracle_node_t *n, const oracle_query_t *q, size_t i);

/* Visit child c of a node at depth i, reached by a wildcard level of the
 * query: for '#' the whole subtree overlaps, for '+' go on with the query. */
static void oracle_overlap_wild(const oracle_node_t *c, const oracle_query_t *q, size_t i,
                               bool hash)
{
	if(hash) {
		oracle_hit_subtree(c, q, i + 1);
	} else {
		oracle_overlap_at(c, q, i + 1);
	}
}

static void oracle_overlap_at(const oracle_node_t *n, const oracle_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		oracle_hit_all(n->hash, q);
	}
	if(i == q->nlevels) {
		oracle_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	bool hash = oracle_is(l, '#');
	if(hash || oracle_is(l, '+')) {
		if(hash && i > 0) {
			oracle_hit_all(n, q); /* "a/#" matches "a" */
		}
		if(n->plus) {
			oracle_overlap_wild(n->plus, q, i, hash);
		}
		if(n->lit1 && !(i == 0 && n->lit1_key[0] == '$')) {
			oracle_overlap_wild(n->lit1, q, i, hash);
		}
		if(n->lits) {
			size_t it = 0;
			const char *key;
			void *val;
			while(hmap_next(n->lits, &it, &key, &val)) {
				if(!(i == 0 && key[0] == '$')) {
					oracle_overlap_wild(val, q, i, hash);
				}
			}
		}
		for(size_t k = 0; k < n->nvars; k++) {
			if(oracle_var_any(q, &n->vars[k], i)) {
				oracle_overlap_wild(n->vars[k].node, q, i, hash);
			}
		}
		return;
	}
	if(n->plus && !dollar0) {
		oracle_overlap_at(n->plus, q, i + 1);
	}
	const oracle_node_t *c = oracle_lit_get(n, l);
	if(c) {
		oracle_overlap_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(oracle_var_is(q, &n->vars[k], l, dollar0)) {
			oracle_overlap_at(n->vars[k].node, q, i + 1);
		}
	}
}

static void oracle_overlap(const oracle_node_t *root, const oracle_query_t *q)
{
	if(root && q->nlevels > 0) {
		oracle_overlap_at(root, q, 0);
	}
}

#endif
