/*
 * policy_trie.c — one role's rules compiled into a trie keyed by topic level
 * (see policy_trie.h).  Building allocates; the three walks only read, never
 * allocate, and visit each trie node at most once per query, so their cost is
 * bounded by the topic's levels times the (small, fixed) branching of '+',
 * '#' and variable children — not by the number of rules.  The one exception
 * is a '+' or '#' level in a filter checked by ptrie_overlap, which must look
 * at every literal child of the node it reaches; ptrie_overlap is only used
 * on deny-subscribe tries, which are small.
 */
#include "policy_trie.h"

#include <stdlib.h>
#include <string.h>

#include "hmap.h"

typedef struct ptrie_var {
	char *name;
	ptrie_node_t *node;
} ptrie_var_t;

struct ptrie_node {
	/* Literal children: the first one inline (chains of single children are
	 * the common case: plant/hq/line1/...), all of them in an hmap once there
	 * are two. */
	char *lit1_key;
	ptrie_node_t *lit1;
	hmap_t *lits;
	ptrie_node_t *plus;
	ptrie_node_t *hash; /* a leaf: '#' is always the last level */
	ptrie_var_t *vars;
	size_t nvars;
	const policy_rule_t **rules; /* rules whose filter ends here */
	size_t nrules;
	const policy_rule_t *first;  /* lowest seq in this subtree */
};

ptrie_node_t *ptrie_new(void)
{
	return calloc(1, sizeof(ptrie_node_t));
}

static void ptrie_free_value(void *v)
{
	ptrie_free(v);
}

void ptrie_free(ptrie_node_t *n)
{
	if(!n) {
		return;
	}
	free(n->lit1_key);
	ptrie_free(n->lit1);
	hmap_free(n->lits);
	ptrie_free(n->plus);
	ptrie_free(n->hash);
	for(size_t i = 0; i < n->nvars; i++) {
		free(n->vars[i].name);
		ptrie_free(n->vars[i].node);
	}
	free(n->vars);
	free(n->rules);
	free(n);
}

bool ptrie_value_usable(const char *v)
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
static const char *ptrie_var_name(const char *level, size_t *len)
{
	size_t l = strlen(level);
	if(l < 4 || level[0] != '%' || level[1] != '{' || level[l - 1] != '}') {
		return NULL;
	}
	*len = l - 3;
	return level + 2;
}

static const ptrie_node_t *ptrie_lit_get(const ptrie_node_t *n, const char *key)
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
static ptrie_node_t *ptrie_child(ptrie_node_t *n, const char *level)
{
	ptrie_node_t **slot = NULL;
	size_t vlen;
	const char *vname;

	if(strcmp(level, "+") == 0) {
		slot = &n->plus;
	} else if(strcmp(level, "#") == 0) {
		slot = &n->hash;
	} else if((vname = ptrie_var_name(level, &vlen)) != NULL) {
		for(size_t i = 0; i < n->nvars; i++) {
			if(strlen(n->vars[i].name) == vlen && memcmp(n->vars[i].name, vname, vlen) == 0) {
				return n->vars[i].node;
			}
		}
		ptrie_var_t *nv = realloc(n->vars, (n->nvars + 1) * sizeof(*nv));
		if(!nv) {
			return NULL;
		}
		n->vars = nv;
		ptrie_var_t *v = &n->vars[n->nvars];
		v->name = strndup(vname, vlen);
		v->node = ptrie_new();
		if(!v->name || !v->node) {
			free(v->name);
			ptrie_free(v->node);
			return NULL;
		}
		n->nvars++;
		return v->node;
	} else {
		ptrie_node_t *c = (ptrie_node_t *)ptrie_lit_get(n, level);
		if(c) {
			return c;
		}
		if(!n->lits && !n->lit1) {
			n->lit1_key = strdup(level);
			n->lit1 = ptrie_new();
			if(!n->lit1_key || !n->lit1) {
				free(n->lit1_key);
				ptrie_free(n->lit1);
				n->lit1_key = NULL;
				n->lit1 = NULL;
				return NULL;
			}
			return n->lit1;
		}
		if(!n->lits) {
			hmap_t *m = hmap_new(ptrie_free_value);
			if(!m || hmap_put(m, n->lit1_key, n->lit1)) {
				hmap_free(m);
				return NULL;
			}
			free(n->lit1_key);
			n->lit1_key = NULL;
			n->lit1 = NULL;
			n->lits = m;
		}
		c = ptrie_new();
		if(!c || hmap_put(n->lits, level, c)) {
			ptrie_free(c);
			return NULL;
		}
		return c;
	}
	if(!*slot) {
		*slot = ptrie_new();
	}
	return *slot;
}

static void ptrie_note_first(ptrie_node_t *n, const policy_rule_t *r)
{
	if(!n->first || r->seq < n->first->seq) {
		n->first = r;
	}
}

int ptrie_insert(ptrie_node_t *root, const char *filter, const policy_rule_t *r)
{
	int rc = -1;
	char *copy = strdup(filter);
	if(!copy) {
		goto out;
	}
	ptrie_node_t *n = root;
	ptrie_note_first(n, r);
	char *level = copy;
	for(;;) {
		char *slash = strchr(level, '/');
		if(slash) {
			*slash = '\0';
		}
		n = ptrie_child(n, level);
		if(!n) {
			goto out;
		}
		ptrie_note_first(n, r);
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

static void ptrie_hit_all(const ptrie_node_t *n, const ptrie_query_t *q)
{
	for(size_t i = 0; i < n->nrules; i++) {
		q->hit(q->acc, n->rules[i]);
	}
}

/* Does variable child v stand for the literal level `text`?  A variable never
 * reaches a '$' first level (`dollar0`), like a wildcard. */
static bool ptrie_var_is(const ptrie_query_t *q, const ptrie_var_t *v, const char *text,
                         bool dollar0)
{
	if(dollar0) {
		return false;
	}
	const char *val = q->var(q->var_ctx, v->name);
	if(ptrie_value_usable(val)) {
		return strcmp(val, text) == 0;
	}
	return q->deny;
}

/* Can variable child v stand for *some* level that a '+' or '#' of the
 * query filter at depth i matches? */
static bool ptrie_var_any(const ptrie_query_t *q, const ptrie_var_t *v, size_t i)
{
	const char *val = q->var(q->var_ctx, v->name);
	if(ptrie_value_usable(val)) {
		return !(i == 0 && val[0] == '$');
	}
	return q->deny;
}

static bool ptrie_is(const char *level, char c)
{
	return level[0] == c && level[1] == '\0';
}

static void ptrie_match_at(const ptrie_node_t *n, const ptrie_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		ptrie_hit_all(n->hash, q); /* "a/#" matches "a" and everything below */
	}
	if(i == q->nlevels) {
		ptrie_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	if(n->plus && !dollar0) {
		ptrie_match_at(n->plus, q, i + 1);
	}
	const ptrie_node_t *c = ptrie_lit_get(n, l);
	if(c) {
		ptrie_match_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(ptrie_var_is(q, &n->vars[k], l, dollar0)) {
			ptrie_match_at(n->vars[k].node, q, i + 1);
		}
	}
}

void ptrie_match(const ptrie_node_t *root, const ptrie_query_t *q)
{
	if(root && q->nlevels > 0) {
		ptrie_match_at(root, q, 0);
	}
}

static void ptrie_cover_at(const ptrie_node_t *n, const ptrie_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		ptrie_hit_all(n->hash, q); /* '#' covers whatever the filter has left */
	}
	if(i == q->nlevels) {
		ptrie_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	if(ptrie_is(l, '#')) {
		/* Only a '#' covers a '#' — and "P/+/#" covers "P/#" when P is the
		 * empty topic, which is not valid (see topic_filter_covers). */
		if((i == 0 || (i == 1 && q->levels[0][0] == '\0')) && n->plus && n->plus->hash) {
			ptrie_hit_all(n->plus->hash, q);
		}
		return;
	}
	if(n->plus && !dollar0) {
		ptrie_cover_at(n->plus, q, i + 1);
	}
	if(ptrie_is(l, '+')) {
		/* Only '+' (above) covers '+'; in a deny trie an unusable variable
		 * acts as '+' too. */
		for(size_t k = 0; k < n->nvars && q->deny; k++) {
			const char *val = q->var(q->var_ctx, n->vars[k].name);
			if(!ptrie_value_usable(val)) {
				ptrie_cover_at(n->vars[k].node, q, i + 1);
			}
		}
		return;
	}
	const ptrie_node_t *c = ptrie_lit_get(n, l);
	if(c) {
		ptrie_cover_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(ptrie_var_is(q, &n->vars[k], l, dollar0)) {
			ptrie_cover_at(n->vars[k].node, q, i + 1);
		}
	}
}

void ptrie_cover(const ptrie_node_t *root, const ptrie_query_t *q)
{
	if(root && q->nlevels > 0) {
		ptrie_cover_at(root, q, 0);
	}
}

/* Report the rules of subtree n, any of whose topics the query's trailing '#'
 * matches.  In a deny trie every node leads to a rule that matches something
 * (variables there match a value or anything), so the precomputed first rule
 * suffices; in an allow trie unusable variables cut branches off. */
static void ptrie_hit_subtree(const ptrie_node_t *n, const ptrie_query_t *q, size_t i)
{
	if(q->deny) {
		if(n->first) {
			q->hit(q->acc, n->first);
		}
		return;
	}
	ptrie_hit_all(n, q);
	if(n->hash) {
		ptrie_hit_all(n->hash, q);
	}
	if(n->plus) {
		ptrie_hit_subtree(n->plus, q, i + 1);
	}
	if(n->lit1) {
		ptrie_hit_subtree(n->lit1, q, i + 1);
	}
	if(n->lits) {
		size_t it = 0;
		const char *key;
		void *val;
		while(hmap_next(n->lits, &it, &key, &val)) {
			ptrie_hit_subtree(val, q, i + 1);
		}
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(ptrie_var_any(q, &n->vars[k], i)) {
			ptrie_hit_subtree(n->vars[k].node, q, i + 1);
		}
	}
}

static void ptrie_overlap_at(const ptrie_node_t *n, const ptrie_query_t *q, size_t i);

/* Visit child c of a node at depth i, reached by a wildcard level of the
 * query: for '#' the whole subtree overlaps, for '+' go on with the query. */
static void ptrie_overlap_wild(const ptrie_node_t *c, const ptrie_query_t *q, size_t i,
                               bool hash)
{
	if(hash) {
		ptrie_hit_subtree(c, q, i + 1);
	} else {
		ptrie_overlap_at(c, q, i + 1);
	}
}

static void ptrie_overlap_at(const ptrie_node_t *n, const ptrie_query_t *q, size_t i)
{
	bool dollar0 = i == 0 && q->levels[0][0] == '$';
	if(n->hash && !dollar0) {
		ptrie_hit_all(n->hash, q);
	}
	if(i == q->nlevels) {
		ptrie_hit_all(n, q);
		return;
	}
	const char *l = q->levels[i];
	bool hash = ptrie_is(l, '#');
	if(hash || ptrie_is(l, '+')) {
		if(hash && i > 0) {
			ptrie_hit_all(n, q); /* "a/#" matches "a" */
		}
		if(n->plus) {
			ptrie_overlap_wild(n->plus, q, i, hash);
		}
		if(n->lit1 && !(i == 0 && n->lit1_key[0] == '$')) {
			ptrie_overlap_wild(n->lit1, q, i, hash);
		}
		if(n->lits) {
			size_t it = 0;
			const char *key;
			void *val;
			while(hmap_next(n->lits, &it, &key, &val)) {
				if(!(i == 0 && key[0] == '$')) {
					ptrie_overlap_wild(val, q, i, hash);
				}
			}
		}
		for(size_t k = 0; k < n->nvars; k++) {
			if(ptrie_var_any(q, &n->vars[k], i)) {
				ptrie_overlap_wild(n->vars[k].node, q, i, hash);
			}
		}
		return;
	}
	if(n->plus && !dollar0) {
		ptrie_overlap_at(n->plus, q, i + 1);
	}
	const ptrie_node_t *c = ptrie_lit_get(n, l);
	if(c) {
		ptrie_overlap_at(c, q, i + 1);
	}
	for(size_t k = 0; k < n->nvars; k++) {
		if(ptrie_var_is(q, &n->vars[k], l, dollar0)) {
			ptrie_overlap_at(n->vars[k].node, q, i + 1);
		}
	}
}

void ptrie_overlap(const ptrie_node_t *root, const ptrie_query_t *q)
{
	if(root && q->nlevels > 0) {
		ptrie_overlap_at(root, q, 0);
	}
}
