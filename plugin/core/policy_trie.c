/*
 * policy_trie.c — one role's rules compiled into a trie keyed by topic level
 * (see policy_trie.h).  Building and compiling allocate; the three walks only
 * read the compiled trie, never allocate, and visit each node at most once
 * per query, so their cost is bounded by the topic's levels times the (small,
 * fixed) branching of '+', '#' and variable children — not by the number of
 * rules.  The one exception is a '+' or '#' level in a filter checked by
 * ptrie_overlap, which must look at every literal child of the node it
 * reaches; ptrie_overlap is only used on deny-subscribe tries, which are
 * small.
 *
 * The walks on the compiled trie answer exactly what the same walks on the
 * built trie did, node for node: a merged chain's inner nodes had no rules and
 * no children but the next one, so all a walk could do there was compare the
 * next level with the chain's next key (tests/unit/test_policy_trie.c checks
 * the two against each other).
 */
#include "policy_trie.h"

#include <stddef.h>
#include <stdint.h>
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

/* ------------------------------------------------------------------------ */
/* The compiled trie                                                         */

/* Everything in the block is found by its byte offset from the block's
 * start, which keeps the node header small.  Offset 0 is the root, nobody's
 * child, so 0 also means "none". */
typedef uint32_t pt_off_t;

typedef struct pt_node pt_node_t;

/* A literal child, keyed by the first level of its label. */
typedef struct pt_slot {
	uint32_t hash; /* high half of pt_hash of that level */
	pt_off_t node; /* 0: an empty slot */
} pt_slot_t;

typedef struct pt_var {
	const char *name; /* in the block */
	pt_off_t node;
} pt_var_t;

/* One node and the label of the edge that leads to it.  A literal edge may
 * span several levels: the builder's chain of nodes with nothing but one
 * literal child each is merged into the node at its end, so the label is the
 * chain's levels joined by '/'.  The root, '+', '#' and variable nodes have
 * label_levels 0.  The node's rules follow the label, copied by value, so
 * that reaching a node and deciding on its rules is one or two cache lines. */
struct pt_node {
	pt_off_t plus;
	pt_off_t hash;  /* a leaf: '#' is always the last level */
	pt_off_t lits;  /* nlits children: a table of mask + 1 slots, or when mask
	                 * is 0 an array of nlits */
	pt_off_t vars;  /* nvars of them */
	pt_off_t first; /* the copy of the lowest-seq rule in this subtree */
	uint32_t nlits, mask;
	uint32_t nvars, nrules;
	uint16_t label_levels;
	uint16_t label_len; /* bytes, without the NUL; a filter has at most 65535 */
	uint16_t first_len; /* bytes of the label's first level */
	char label[];       /* NUL-terminated, then the rules */
};

struct ptrie {
	uint64_t seed;
	unsigned char *block; /* the root node first, then everything else */
	size_t size;
};

/* Up to this many literal children are scanned; more go in a hash table. */
#define PT_LINEAR_MAX 4
#define PT_ALIGN(x) (((x) + 7) & ~(size_t)7)

/* Where a node's rules start, from the node. */
static size_t pt_rules_at(size_t llen)
{
	return PT_ALIGN(offsetof(pt_node_t, label) + llen + 1);
}

/* Bytes of a node with its label and rules. */
static size_t pt_node_bytes(size_t llen, size_t nrules)
{
	return pt_rules_at(llen) + nrules * sizeof(policy_rule_t);
}

/* A node starts on a cache line, or on a pair of lines (which the CPU
 * fetches together) when it needs two. */
static size_t pt_node_align(size_t bytes)
{
	return bytes <= 64 ? 64 : 128;
}

/* Reserve n bytes aligned to `align` at *used: where they start.  pt_measure
 * and pt_emit both lay out through here, so they agree to the byte. */
static size_t pt_reserve(size_t *used, size_t n, size_t align)
{
	size_t at = (*used + align - 1) & ~(align - 1);
	*used = at + PT_ALIGN(n);
	return at;
}

/* A short-key hash: 8 bytes at a time, seeded per compiled trie so that a
 * hostile set of topic levels cannot be prepared against every plugin. */
static uint64_t pt_hash(uint64_t seed, const char *s, size_t len)
{
	uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15ULL);
	while(len >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 31;
		s += 8;
		len -= 8;
	}
	uint64_t w = 0;
	for(size_t k = 0; k < len; k++) {
		w |= (uint64_t)(unsigned char)s[k] << (8 * k);
	}
	h = (h ^ w) * 0x94d049bb133111ebULL;
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 29;
	return h;
}

/* n's only child when n merely passes through (no rules, no '+', '#' or
 * variable children, exactly one literal child), with its key; else NULL. */
static const ptrie_node_t *pt_chain_next(const ptrie_node_t *n, const char **key)
{
	if(n->nrules || n->plus || n->hash || n->nvars) {
		return NULL;
	}
	if(n->lit1 && !n->lits) {
		*key = n->lit1_key;
		return n->lit1;
	}
	if(n->lits && hmap_count(n->lits) == 1) {
		size_t it = 0;
		void *val = NULL;
		hmap_next(n->lits, &it, key, &val);
		return val;
	}
	return NULL;
}

/* The node a literal edge from `key` leads to once its chain is merged, and
 * the label's length and levels. */
static const ptrie_node_t *pt_chain(const char *key, const ptrie_node_t *b, size_t *len,
                                    size_t *levels)
{
	const char *k;
	const ptrie_node_t *next;
	*len = 0;
	*levels = 0;
	if(!key) {
		return b;
	}
	*len = strlen(key);
	*levels = 1;
	while((next = pt_chain_next(b, &k)) != NULL) {
		*len += 1 + strlen(k);
		(*levels)++;
		b = next;
	}
	return b;
}

static size_t pt_nlits_of(const ptrie_node_t *b)
{
	return (b->lit1 ? 1 : 0) + hmap_count(b->lits);
}

/* Slots for n literal children: all of them when scanned, else a power of two
 * at least twice n, so probes stay short and always meet an empty slot. */
static size_t pt_slots_for(size_t n)
{
	if(n <= PT_LINEAR_MAX) {
		return n;
	}
	size_t cap = 8;
	while(cap < 2 * n) {
		cap *= 2;
	}
	return cap;
}

/* Advance *used past the bytes pt_emit takes for the subtree reached by
 * `key` (NULL: no label), in the same order. */
static void pt_measure(size_t *used, const char *key, const ptrie_node_t *b)
{
	size_t llen, levels;
	const ptrie_node_t *e = pt_chain(key, b, &llen, &levels);
	size_t bytes = pt_node_bytes(llen, e->nrules);
	pt_reserve(used, bytes, pt_node_align(bytes));
	pt_reserve(used, e->nvars * sizeof(pt_var_t), 8);
	pt_reserve(used, pt_slots_for(pt_nlits_of(e)) * sizeof(pt_slot_t), 8);
	for(size_t k = 0; k < e->nvars; k++) {
		pt_reserve(used, strlen(e->vars[k].name) + 1, 8);
		pt_measure(used, NULL, e->vars[k].node);
	}
	if(e->plus) {
		pt_measure(used, NULL, e->plus);
	}
	if(e->hash) {
		pt_measure(used, NULL, e->hash);
	}
	if(e->lit1) {
		pt_measure(used, e->lit1_key, e->lit1);
	}
	if(e->lits) {
		size_t it = 0;
		const char *k;
		void *val;
		while(hmap_next(e->lits, &it, &k, &val)) {
			pt_measure(used, k, val);
		}
	}
}

typedef struct pt_arena {
	unsigned char *base; /* zeroed */
	size_t used, size;
	uint64_t seed;
} pt_arena_t;

static void *pt_take(pt_arena_t *a, size_t n, size_t align)
{
	size_t at = pt_reserve(&a->used, n, align);
	if(a->used > a->size) {
		return NULL; /* pt_measure and pt_emit disagree: never expected */
	}
	return a->base + at;
}

static pt_off_t pt_off(const pt_arena_t *a, const void *p)
{
	return (pt_off_t)((const unsigned char *)p - a->base);
}

/* Make rule copy `cand` n's first when its seq is lower. */
static void pt_note_first(const pt_arena_t *a, pt_node_t *n, pt_off_t cand)
{
	if(!cand) {
		return;
	}
	const policy_rule_t *r = (const policy_rule_t *)(a->base + cand);
	if(!n->first || r->seq < ((const policy_rule_t *)(a->base + n->first))->seq) {
		n->first = cand;
	}
}

static pt_node_t *pt_emit(pt_arena_t *a, const char *key, const ptrie_node_t *b);

/* Emit child c of n under `key` into n's literal slots. */
static int pt_emit_lit(pt_arena_t *a, pt_node_t *n, pt_slot_t *slots, const char *key,
                       const ptrie_node_t *c)
{
	pt_node_t *cn = pt_emit(a, key, c);
	if(!cn) {
		return -1;
	}
	uint64_t h = pt_hash(a->seed, key, strlen(key));
	size_t i = n->mask ? (size_t)h & n->mask : n->nlits;
	while(slots[i].node) {
		i = (i + 1) & n->mask;
	}
	slots[i].hash = (uint32_t)(h >> 32);
	slots[i].node = pt_off(a, cn);
	n->nlits++;
	pt_note_first(a, n, cn->first);
	return 0;
}

/* Emit a '+', '#' or variable child; its offset, or 0 when short. */
static pt_off_t pt_emit_child(pt_arena_t *a, pt_node_t *n, const ptrie_node_t *c)
{
	pt_node_t *cn = pt_emit(a, NULL, c);
	if(!cn) {
		return 0;
	}
	pt_note_first(a, n, cn->first);
	return pt_off(a, cn);
}

/* Lay out the subtree reached by `key` (NULL: no label) depth first: the
 * node with its label and rules, its variables and child table, then its
 * children.  NULL when the arena is short. */
static pt_node_t *pt_emit(pt_arena_t *a, const char *key, const ptrie_node_t *b)
{
	size_t llen, levels;
	const ptrie_node_t *e = pt_chain(key, b, &llen, &levels);
	if(llen > UINT16_MAX || levels > UINT16_MAX) {
		return NULL; /* longer than any valid filter */
	}
	size_t bytes = pt_node_bytes(llen, e->nrules);
	pt_node_t *n = pt_take(a, bytes, pt_node_align(bytes));
	if(!n) {
		return NULL;
	}
	n->label_levels = (uint16_t)levels;
	n->label_len = (uint16_t)llen;
	if(key) {
		const char *k = key;
		const ptrie_node_t *at = b;
		size_t o = strlen(key);
		n->first_len = (uint16_t)o;
		memcpy(n->label, key, o);
		while(at != e) {
			at = pt_chain_next(at, &k);
			n->label[o++] = '/';
			memcpy(n->label + o, k, strlen(k));
			o += strlen(k);
		}
	}
	policy_rule_t *rules = (policy_rule_t *)((unsigned char *)n + pt_rules_at(llen));
	for(size_t k = 0; k < e->nrules; k++) {
		rules[k] = *e->rules[k];
		pt_note_first(a, n, pt_off(a, &rules[k]));
	}
	n->nrules = (uint32_t)e->nrules;

	pt_var_t *vars = pt_take(a, e->nvars * sizeof(*vars), 8);
	size_t nslots = pt_slots_for(pt_nlits_of(e));
	pt_slot_t *slots = pt_take(a, nslots * sizeof(*slots), 8);
	if(!vars || !slots) {
		return NULL;
	}
	n->vars = pt_off(a, vars);
	n->lits = pt_off(a, slots);
	n->mask = nslots > PT_LINEAR_MAX ? (uint32_t)(nslots - 1) : 0;
	for(size_t k = 0; k < e->nvars; k++) {
		size_t nl = strlen(e->vars[k].name) + 1;
		char *name = pt_take(a, nl, 8);
		if(!name) {
			return NULL;
		}
		memcpy(name, e->vars[k].name, nl);
		vars[k].name = name;
		if(!(vars[k].node = pt_emit_child(a, n, e->vars[k].node))) {
			return NULL;
		}
	}
	n->nvars = (uint32_t)e->nvars;
	if(e->plus && !(n->plus = pt_emit_child(a, n, e->plus))) {
		return NULL;
	}
	if(e->hash && !(n->hash = pt_emit_child(a, n, e->hash))) {
		return NULL;
	}
	if(e->lit1 && pt_emit_lit(a, n, slots, e->lit1_key, e->lit1)) {
		return NULL;
	}
	if(e->lits) {
		size_t it = 0;
		const char *k;
		void *val;
		while(hmap_next(e->lits, &it, &k, &val)) {
			if(pt_emit_lit(a, n, slots, k, val)) {
				return NULL;
			}
		}
	}
	return n;
}

ptrie_t *ptrie_compile(const ptrie_node_t *root)
{
	if(!root) {
		return NULL;
	}
	ptrie_t *t = calloc(1, sizeof(*t));
	if(!t) {
		return NULL;
	}
	size_t used = 0;
	pt_measure(&used, NULL, root);
	t->size = (used + 127) & ~(size_t)127;
	if(t->size > UINT32_MAX) {
		free(t);
		return NULL; /* offsets are 32 bits: some 40 million rules */
	}
	t->block = aligned_alloc(128, t->size);
	if(!t->block) {
		free(t);
		return NULL;
	}
	memset(t->block, 0, t->size);
	/* Seed from the block's address: different per trie and per run. */
	t->seed = (uint64_t)(uintptr_t)t->block * 0x9E3779B97F4A7C15ULL;
	pt_arena_t a = {.base = t->block, .size = t->size, .seed = t->seed};
	if(pt_emit(&a, NULL, root) != (pt_node_t *)t->block || a.used != used) {
		ptrie_compiled_free(t);
		return NULL;
	}
	return t;
}

void ptrie_compiled_free(ptrie_t *t)
{
	if(!t) {
		return;
	}
	free(t->block);
	free(t);
}

/* ------------------------------------------------------------------------ */
/* The walks                                                                 */

typedef struct pt_walk {
	const ptrie_query_t *q;
	const unsigned char *base;
	uint64_t seed;
	bool dollar; /* the first level starts with '$' */
} pt_walk_t;

static void pt_walk_init(pt_walk_t *w, const ptrie_t *t, const ptrie_query_t *q)
{
	w->q = q;
	w->base = t->block;
	w->seed = t->seed;
	w->dollar = q->levels[0].len > 0 && q->levels[0].s[0] == '$';
}

static const pt_node_t *pt_at(const pt_walk_t *w, pt_off_t off)
{
	return (const pt_node_t *)(w->base + off);
}

static const pt_slot_t *pt_slots(const pt_walk_t *w, const pt_node_t *n)
{
	return (const pt_slot_t *)(w->base + n->lits);
}

static const pt_var_t *pt_vars(const pt_walk_t *w, const pt_node_t *n)
{
	return (const pt_var_t *)(w->base + n->vars);
}

static bool pt_is(const ptrie_level_t *l, char c)
{
	return l->len == 1 && l->s[0] == c;
}

static void pt_hit_all(const pt_node_t *n, const ptrie_query_t *q)
{
	const policy_rule_t *rules =
	    (const policy_rule_t *)((const unsigned char *)n + pt_rules_at(n->label_len));
	for(uint32_t i = 0; i < n->nrules; i++) {
		q->hit(q->acc, &rules[i]);
	}
}

/* The literal child of n whose label's first level is l, or NULL. */
static const pt_node_t *pt_lit(const pt_walk_t *w, const pt_node_t *n, const ptrie_level_t *l)
{
	const pt_slot_t *slots = pt_slots(w, n);
	if(!n->mask) {
		for(uint32_t k = 0; k < n->nlits; k++) {
			const pt_node_t *c = pt_at(w, slots[k].node);
			if(c->first_len == l->len && memcmp(c->label, l->s, l->len) == 0) {
				return c;
			}
		}
		return NULL;
	}
	uint64_t h = pt_hash(w->seed, l->s, l->len);
	uint32_t tag = (uint32_t)(h >> 32);
	for(size_t i = (size_t)h & n->mask;; i = (i + 1) & n->mask) {
		if(!slots[i].node) {
			return NULL;
		}
		if(slots[i].hash == tag) {
			const pt_node_t *c = pt_at(w, slots[i].node);
			if(c->first_len == l->len && memcmp(c->label, l->s, l->len) == 0) {
				return c;
			}
		}
	}
}

/* Do the query's levels from i on continue with the rest of c's label (its
 * first level is known to be levels[i])?  The levels are contiguous in one
 * string, like the label's, so one comparison covers them all. */
static bool pt_label_rest(const ptrie_query_t *q, const pt_node_t *c, size_t i)
{
	if(c->label_levels == 1) {
		return true;
	}
	if(c->label_levels > q->nlevels - i) {
		return false;
	}
	const ptrie_level_t *last = &q->levels[i + c->label_levels - 1];
	const char *s = q->levels[i].s;
	size_t span = (size_t)(last->s + last->len - s);
	return span == c->label_len &&
	       memcmp(s + c->first_len, c->label + c->first_len, span - c->first_len) == 0;
}

/* Length of a usable value (see ptrie_value_usable) in *len, or false. */
static bool pt_value_len(const char *v, size_t *len)
{
	if(!v || !v[0] || v[0] == '$') {
		return false;
	}
	const unsigned char *c = (const unsigned char *)v;
	for(; *c; c++) {
		if(*c == '/' || *c == '+' || *c == '#' || *c < 0x20 || *c == 0x7f) {
			return false;
		}
	}
	*len = (size_t)(c - (const unsigned char *)v);
	return true;
}

bool ptrie_value_usable(const char *v)
{
	size_t len;
	return pt_value_len(v, &len);
}

/* Does variable v stand for the literal level l?  A variable never reaches a
 * '$' first level (`dollar0`), like a wildcard. */
static bool pt_var_is(const ptrie_query_t *q, const pt_var_t *v, const ptrie_level_t *l,
                      bool dollar0)
{
	if(dollar0) {
		return false;
	}
	size_t len;
	const char *val = q->var(q->var_ctx, v->name);
	if(pt_value_len(val, &len)) {
		return len == l->len && memcmp(val, l->s, len) == 0;
	}
	return q->deny;
}

/* Can variable v stand for *some* level that a '+' or '#' of the query
 * filter at depth i matches? */
static bool pt_var_any(const ptrie_query_t *q, const pt_var_t *v, size_t i)
{
	const char *val = q->var(q->var_ctx, v->name);
	if(ptrie_value_usable(val)) {
		return !(i == 0 && val[0] == '$');
	}
	return q->deny;
}

static void pt_match_at(const pt_walk_t *w, const pt_node_t *n, size_t i)
{
	const ptrie_query_t *q = w->q;
	bool dollar0 = i == 0 && w->dollar;
	if(n->hash && !dollar0) {
		pt_hit_all(pt_at(w, n->hash), q); /* "a/#" matches "a" and everything below */
	}
	if(i == q->nlevels) {
		pt_hit_all(n, q);
		return;
	}
	const ptrie_level_t *l = &q->levels[i];
	if(n->plus && !dollar0) {
		pt_match_at(w, pt_at(w, n->plus), i + 1);
	}
	const pt_node_t *c = pt_lit(w, n, l);
	if(c && pt_label_rest(q, c, i)) {
		pt_match_at(w, c, i + c->label_levels);
	}
	const pt_var_t *vars = pt_vars(w, n);
	for(uint32_t k = 0; k < n->nvars; k++) {
		if(pt_var_is(q, &vars[k], l, dollar0)) {
			pt_match_at(w, pt_at(w, vars[k].node), i + 1);
		}
	}
}

void ptrie_match(const ptrie_t *t, const ptrie_query_t *q)
{
	if(t && q->nlevels > 0) {
		pt_walk_t w;
		pt_walk_init(&w, t, q);
		pt_match_at(&w, pt_at(&w, 0), 0);
	}
}

static void pt_cover_at(const pt_walk_t *w, const pt_node_t *n, size_t i)
{
	const ptrie_query_t *q = w->q;
	bool dollar0 = i == 0 && w->dollar;
	if(n->hash && !dollar0) {
		pt_hit_all(pt_at(w, n->hash), q); /* '#' covers whatever the filter has left */
	}
	if(i == q->nlevels) {
		pt_hit_all(n, q);
		return;
	}
	const ptrie_level_t *l = &q->levels[i];
	const pt_var_t *vars = pt_vars(w, n);
	if(pt_is(l, '#')) {
		/* Only a '#' covers a '#' — and "P/+/#" covers "P/#" when P is the
		 * empty topic, which is not valid (see topic_filter_covers). */
		if((i == 0 || (i == 1 && q->levels[0].len == 0)) && n->plus &&
		   pt_at(w, n->plus)->hash) {
			pt_hit_all(pt_at(w, pt_at(w, n->plus)->hash), q);
		}
		return;
	}
	if(n->plus && !dollar0) {
		pt_cover_at(w, pt_at(w, n->plus), i + 1);
	}
	if(pt_is(l, '+')) {
		/* Only '+' (above) covers '+'; in a deny trie an unusable variable
		 * acts as '+' too. */
		for(uint32_t k = 0; k < n->nvars && q->deny; k++) {
			if(!ptrie_value_usable(q->var(q->var_ctx, vars[k].name))) {
				pt_cover_at(w, pt_at(w, vars[k].node), i + 1);
			}
		}
		return;
	}
	/* A label's levels are literal: a '+' or '#' further on in the query
	 * never equals one, as only '+' and '#' cover those. */
	const pt_node_t *c = pt_lit(w, n, l);
	if(c && pt_label_rest(q, c, i)) {
		pt_cover_at(w, c, i + c->label_levels);
	}
	for(uint32_t k = 0; k < n->nvars; k++) {
		if(pt_var_is(q, &vars[k], l, dollar0)) {
			pt_cover_at(w, pt_at(w, vars[k].node), i + 1);
		}
	}
}

void ptrie_cover(const ptrie_t *t, const ptrie_query_t *q)
{
	if(t && q->nlevels > 0) {
		pt_walk_t w;
		pt_walk_init(&w, t, q);
		pt_cover_at(&w, pt_at(&w, 0), 0);
	}
}

/* Slots to look at for n's literal children (some may be empty). */
static size_t pt_nslots(const pt_node_t *n)
{
	return n->mask ? (size_t)n->mask + 1 : n->nlits;
}

/* Report the rules of subtree n (at depth i), any of whose topics the query's
 * trailing '#' matches.  In a deny trie every node leads to a rule that
 * matches something (variables there match a value or anything), so the
 * precomputed first rule suffices; in an allow trie unusable variables cut
 * branches off. */
static void pt_hit_subtree(const pt_walk_t *w, const pt_node_t *n, size_t i)
{
	const ptrie_query_t *q = w->q;
	if(q->deny) {
		if(n->first) {
			q->hit(q->acc, (const policy_rule_t *)(w->base + n->first));
		}
		return;
	}
	pt_hit_all(n, q);
	if(n->hash) {
		pt_hit_all(pt_at(w, n->hash), q);
	}
	if(n->plus) {
		pt_hit_subtree(w, pt_at(w, n->plus), i + 1);
	}
	const pt_slot_t *slots = pt_slots(w, n);
	for(size_t s = 0; s < pt_nslots(n); s++) {
		if(slots[s].node) {
			const pt_node_t *c = pt_at(w, slots[s].node);
			pt_hit_subtree(w, c, i + c->label_levels);
		}
	}
	const pt_var_t *vars = pt_vars(w, n);
	for(uint32_t k = 0; k < n->nvars; k++) {
		if(pt_var_any(q, &vars[k], i)) {
			pt_hit_subtree(w, pt_at(w, vars[k].node), i + 1);
		}
	}
}

static void pt_overlap_at(const pt_walk_t *w, const pt_node_t *n, size_t i);

/* Go on with literal child c of a node at depth i, whose label's first level
 * the query's level i matched (literally or as '+'): the rest of the label
 * must overlap the query's next levels, level by level — a '+' there matches
 * any label level, a '#' the whole subtree. */
static void pt_overlap_edge(const pt_walk_t *w, const pt_node_t *c, size_t i)
{
	const ptrie_query_t *q = w->q;
	const char *lab = c->label + c->first_len;
	const char *end = c->label + c->label_len;
	for(size_t j = 1; j < c->label_levels; j++) {
		if(i + j == q->nlevels) {
			return; /* the query ends inside the chain, where no rule ends */
		}
		lab++; /* the '/' */
		const char *slash = memchr(lab, '/', (size_t)(end - lab));
		size_t len = slash ? (size_t)(slash - lab) : (size_t)(end - lab);
		const ptrie_level_t *l = &q->levels[i + j];
		if(pt_is(l, '#')) {
			pt_hit_subtree(w, c, i + c->label_levels);
			return;
		}
		if(!pt_is(l, '+') && (l->len != len || memcmp(l->s, lab, len) != 0)) {
			return;
		}
		lab += len;
	}
	pt_overlap_at(w, c, i + c->label_levels);
}

static void pt_overlap_at(const pt_walk_t *w, const pt_node_t *n, size_t i)
{
	const ptrie_query_t *q = w->q;
	bool dollar0 = i == 0 && w->dollar;
	if(n->hash && !dollar0) {
		pt_hit_all(pt_at(w, n->hash), q);
	}
	if(i == q->nlevels) {
		pt_hit_all(n, q);
		return;
	}
	const ptrie_level_t *l = &q->levels[i];
	const pt_var_t *vars = pt_vars(w, n);
	bool hash = pt_is(l, '#');
	if(hash || pt_is(l, '+')) {
		if(hash && i > 0) {
			pt_hit_all(n, q); /* "a/#" matches "a" */
		}
		if(n->plus) {
			if(hash) {
				pt_hit_subtree(w, pt_at(w, n->plus), i + 1);
			} else {
				pt_overlap_at(w, pt_at(w, n->plus), i + 1);
			}
		}
		const pt_slot_t *slots = pt_slots(w, n);
		for(size_t s = 0; s < pt_nslots(n); s++) {
			if(!slots[s].node) {
				continue;
			}
			const pt_node_t *c = pt_at(w, slots[s].node);
			if(i == 0 && c->label[0] == '$') {
				continue;
			}
			if(hash) {
				pt_hit_subtree(w, c, i + c->label_levels);
			} else {
				pt_overlap_edge(w, c, i);
			}
		}
		for(uint32_t k = 0; k < n->nvars; k++) {
			if(pt_var_any(q, &vars[k], i)) {
				if(hash) {
					pt_hit_subtree(w, pt_at(w, vars[k].node), i + 1);
				} else {
					pt_overlap_at(w, pt_at(w, vars[k].node), i + 1);
				}
			}
		}
		return;
	}
	if(n->plus && !dollar0) {
		pt_overlap_at(w, pt_at(w, n->plus), i + 1);
	}
	const pt_node_t *c = pt_lit(w, n, l);
	if(c) {
		pt_overlap_edge(w, c, i);
	}
	for(uint32_t k = 0; k < n->nvars; k++) {
		if(pt_var_is(q, &vars[k], l, dollar0)) {
			pt_overlap_at(w, pt_at(w, vars[k].node), i + 1);
		}
	}
}

void ptrie_overlap(const ptrie_t *t, const ptrie_query_t *q)
{
	if(t && q->nlevels > 0) {
		pt_walk_t w;
		pt_walk_init(&w, t, q);
		pt_overlap_at(&w, pt_at(&w, 0), 0);
	}
}
