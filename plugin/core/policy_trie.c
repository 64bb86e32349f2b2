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
 * Compiling sorts the rules by their filters' levels, so the rules under any
 * node are one run of the sorted array, and lays the trie out depth first in
 * one pass.  The walks answer exactly what the same walks on a trie with one
 * node per level did (tests/unit/test_policy_trie.c checks the two against
 * each other): a merged chain's inner nodes would have had no rules and no
 * children but the next one, so all a walk could do there was compare the
 * next level with the chain's next level.
 */
#include "policy_trie.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Building: the rules and their filters, in the order given                */

typedef struct pt_entry {
	size_t filter; /* offset in text */
	const policy_rule_t *rule;
} pt_entry_t;

struct ptrie_build {
	char *text; /* the filters, each NUL-terminated */
	size_t textlen, textcap;
	pt_entry_t *entries;
	size_t n, cap;
	size_t nlevels; /* over all filters */
};

ptrie_build_t *ptrie_build_new(void)
{
	return calloc(1, sizeof(ptrie_build_t));
}

void ptrie_build_free(ptrie_build_t *b)
{
	if(!b) {
		return;
	}
	free(b->text);
	free(b->entries);
	free(b);
}

/* Make room for `more` bytes beyond *len in *buf (*cap allocated), doubling. */
static int pt_room(void **buf, size_t *cap, size_t len, size_t more, size_t elem)
{
	if(len + more <= *cap) {
		return 0;
	}
	size_t ncap = *cap ? *cap : 64;
	while(ncap < len + more) {
		ncap *= 2;
	}
	void *nb = realloc(*buf, ncap * elem);
	if(!nb) {
		return -1;
	}
	*buf = nb;
	*cap = ncap;
	return 0;
}

int ptrie_insert(ptrie_build_t *b, const char *filter, const policy_rule_t *r)
{
	size_t len = strlen(filter) + 1;
	if(pt_room((void **)&b->text, &b->textcap, b->textlen, len, 1) ||
	   pt_room((void **)&b->entries, &b->cap, b->n, 1, sizeof(pt_entry_t))) {
		return -1;
	}
	memcpy(b->text + b->textlen, filter, len);
	b->entries[b->n].filter = b->textlen;
	b->entries[b->n].rule = r;
	b->n++;
	b->textlen += len;
	for(const char *c = filter;; c++) {
		if(*c == '/' || !*c) {
			b->nlevels++;
		}
		if(!*c) {
			break;
		}
	}
	return 0;
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
	uint32_t hash; /* high half of ptrie_hash of that level */
	pt_off_t node; /* 0: an empty slot */
} pt_slot_t;

typedef struct pt_var {
	pt_off_t name; /* NUL-terminated */
	pt_off_t node;
} pt_var_t;

/* One node and the label of the edge that leads to it.  A literal edge may
 * span several levels: a chain of nodes that would each have nothing but one
 * literal child is merged into the node at its end, so the label is the
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

uint64_t ptrie_hash(uint64_t seed, const char *s, size_t len)
{
	const char *p = s;
	size_t left = len;
	uint64_t h = seed ^ ((uint64_t)len * 0x9E3779B97F4A7C15ULL);
	while(left >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 31;
		p += 8;
		left -= 8;
	}
	/* The tail: with 8 bytes or more, the last 8 in one load (overlapping
	 * the words above) instead of a byte loop. */
	uint64_t w = 0;
	memcpy(&w, len >= 8 ? s + len - 8 : p, len >= 8 ? 8 : left);
	h = (h ^ w) * 0x94d049bb133111ebULL;
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 29;
	return h;
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

/* ---- compiling: the filters as sorted arrays of levels */

enum { PT_LIT, PT_VAR, PT_PLUS, PT_HASH };

typedef struct pt_lvl {
	const char *s; /* the level, or for PT_VAR the variable's name */
	size_t len;
	int kind;
} pt_lvl_t;

typedef struct pt_item {
	const pt_lvl_t *lv;
	size_t n;
	const policy_rule_t *rule;
} pt_item_t;

/* Split filter into lv (levels: literal, `%{name}`, '+' or '#'); their count. */
static size_t pt_levels(const char *filter, pt_lvl_t *lv)
{
	size_t n = 0;
	const char *s = filter;
	for(;;) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);
		pt_lvl_t *l = &lv[n++];
		l->s = s;
		l->len = len;
		l->kind = PT_LIT;
		if(len == 1 && s[0] == '+') {
			l->kind = PT_PLUS;
		} else if(len == 1 && s[0] == '#') {
			l->kind = PT_HASH;
		} else if(len >= 4 && s[0] == '%' && s[1] == '{' && s[len - 1] == '}') {
			l->kind = PT_VAR;
			l->s = s + 2;
			l->len = len - 3;
		}
		if(!slash) {
			return n;
		}
		s = slash + 1;
	}
}

static int pt_level_cmp(const pt_lvl_t *a, const pt_lvl_t *b)
{
	if(a->kind != b->kind) {
		return a->kind < b->kind ? -1 : 1;
	}
	int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
	if(c) {
		return c;
	}
	return (a->len > b->len) - (a->len < b->len);
}

/* Level by level; a filter before the longer ones it starts; then file
 * order.  So the rules under any node are one run, those ending there
 * first. */
static int pt_item_cmp(const void *x, const void *y)
{
	const pt_item_t *a = x, *b = y;
	size_t m = a->n < b->n ? a->n : b->n;
	for(size_t i = 0; i < m; i++) {
		int c = pt_level_cmp(&a->lv[i], &b->lv[i]);
		if(c) {
			return c;
		}
	}
	if(a->n != b->n) {
		return a->n < b->n ? -1 : 1;
	}
	return (a->rule->seq > b->rule->seq) - (a->rule->seq < b->rule->seq);
}

/* The block being written: grows by doubling, found by offsets. */
typedef struct pt_out {
	unsigned char *base; /* zeroed up to cap */
	size_t used, cap;
	uint64_t seed;
} pt_out_t;

/* Take n bytes aligned to `align` (offsets are aligned; the final block is
 * aligned to 128 like them): their offset in *at. */
static int pt_take(pt_out_t *o, size_t n, size_t align, size_t *at)
{
	size_t start = (o->used + align - 1) & ~(align - 1);
	size_t end = start + PT_ALIGN(n);
	if(end > UINT32_MAX) {
		return -1; /* offsets are 32 bits: some 40 million rules */
	}
	if(end > o->cap) {
		size_t ncap = o->cap ? o->cap : 4096;
		while(ncap < end) {
			ncap *= 2;
		}
		unsigned char *nb = realloc(o->base, ncap);
		if(!nb) {
			return -1;
		}
		memset(nb + o->cap, 0, ncap - o->cap);
		o->base = nb;
		o->cap = ncap;
	}
	o->used = end;
	*at = start;
	return 0;
}

static pt_node_t *pt_node(const pt_out_t *o, size_t off)
{
	return (pt_node_t *)(o->base + off);
}

/* Make rule copy `cand` node n's first when its seq is lower. */
static void pt_note_first(const pt_out_t *o, size_t n, pt_off_t cand)
{
	pt_node_t *nn = pt_node(o, n);
	if(!cand) {
		return;
	}
	const policy_rule_t *r = (const policy_rule_t *)(o->base + cand);
	if(!nn->first || r->seq < ((const policy_rule_t *)(o->base + nn->first))->seq) {
		nn->first = cand;
	}
}

/* End of the run of items from g on (before hi) with the same level d. */
static size_t pt_run_end(const pt_item_t *it, size_t g, size_t hi, size_t d)
{
	size_t e = g + 1;
	while(e < hi && pt_level_cmp(&it[e].lv[d], &it[g].lv[d]) == 0) {
		e++;
	}
	return e;
}

/* Emit the node for items [lo, hi), which share their levels [0, d) and of
 * which those with d levels end here (they sort first); its label is levels
 * [d0, d).  Then its children, depth first.  Its offset in *out. */
static int pt_emit(pt_out_t *o, const pt_item_t *it, size_t lo, size_t hi, size_t d0, size_t d,
                   size_t *out)
{
	size_t m = lo;
	while(m < hi && it[m].n == d) {
		m++;
	}
	size_t llen = 0;
	for(size_t k = d0; k < d; k++) {
		llen += it[lo].lv[k].len + (k > d0);
	}
	if(llen > UINT16_MAX || d - d0 > UINT16_MAX) {
		return -1; /* longer than any valid filter */
	}
	size_t nlits = 0, nvars = 0;
	for(size_t g = m; g < hi; g = pt_run_end(it, g, hi, d)) {
		nlits += it[g].lv[d].kind == PT_LIT;
		nvars += it[g].lv[d].kind == PT_VAR;
	}
	size_t bytes = pt_node_bytes(llen, m - lo);
	size_t nslots = pt_slots_for(nlits);
	size_t n, voff, soff;
	if(pt_take(o, bytes, pt_node_align(bytes), &n) ||
	   pt_take(o, nvars * sizeof(pt_var_t), 8, &voff) ||
	   pt_take(o, nslots * sizeof(pt_slot_t), 8, &soff)) {
		return -1;
	}
	pt_node_t *nn = pt_node(o, n);
	nn->label_levels = (uint16_t)(d - d0);
	nn->label_len = (uint16_t)llen;
	nn->first_len = (uint16_t)(d > d0 ? it[lo].lv[d0].len : 0);
	for(size_t k = d0, at = 0; k < d; k++) {
		if(k > d0) {
			nn->label[at++] = '/';
		}
		memcpy(nn->label + at, it[lo].lv[k].s, it[lo].lv[k].len);
		at += it[lo].lv[k].len;
	}
	policy_rule_t *rules = (policy_rule_t *)((unsigned char *)nn + pt_rules_at(llen));
	for(size_t k = lo; k < m; k++) {
		rules[k - lo] = *it[k].rule;
		pt_note_first(o, n, (pt_off_t)((unsigned char *)&rules[k - lo] - o->base));
	}
	nn->nrules = (uint32_t)(m - lo);
	nn->vars = (pt_off_t)voff;
	nn->nvars = (uint32_t)nvars;
	nn->lits = (pt_off_t)soff;
	nn->mask = nslots > PT_LINEAR_MAX ? (uint32_t)(nslots - 1) : 0;
	/* nn is not valid past here: emitting children may move the block. */
	size_t vi = 0;
	for(size_t g = m; g < hi;) {
		size_t ge = pt_run_end(it, g, hi, d);
		const pt_lvl_t *l = &it[g].lv[d];
		size_t c, e = d + 1, name = 0;
		if(l->kind == PT_LIT) {
			/* Merge the chain: go on while no rule ends and all go on with
			 * the same literal level (the run is sorted: compare its ends;
			 * a rule that ended would sort first). */
			while(it[g].n > e && it[g].lv[e].kind == PT_LIT &&
			      pt_level_cmp(&it[g].lv[e], &it[ge - 1].lv[e]) == 0) {
				e++;
			}
			if(pt_emit(o, it, g, ge, d, e, &c)) {
				return -1;
			}
			uint64_t h = ptrie_hash(o->seed, l->s, l->len);
			pt_node_t *p = pt_node(o, n);
			pt_slot_t *slots = (pt_slot_t *)(o->base + soff);
			size_t i = p->mask ? (size_t)h & p->mask : p->nlits;
			while(slots[i].node) {
				i = (i + 1) & p->mask;
			}
			slots[i].hash = (uint32_t)(h >> 32);
			slots[i].node = (pt_off_t)c;
			p->nlits++;
		} else {
			if(l->kind == PT_VAR && pt_take(o, l->len + 1, 8, &name)) {
				return -1;
			}
			if(l->kind == PT_VAR) {
				memcpy(o->base + name, l->s, l->len); /* NUL: zeroed */
			}
			if(pt_emit(o, it, g, ge, e, e, &c)) {
				return -1;
			}
			pt_node_t *p = pt_node(o, n);
			if(l->kind == PT_PLUS) {
				p->plus = (pt_off_t)c;
			} else if(l->kind == PT_HASH) {
				p->hash = (pt_off_t)c;
			} else {
				pt_var_t *vars = (pt_var_t *)(o->base + voff);
				vars[vi].name = (pt_off_t)name;
				vars[vi].node = (pt_off_t)c;
				vi++;
			}
		}
		pt_note_first(o, n, pt_node(o, c)->first);
		g = ge;
	}
	*out = n;
	return 0;
}

ptrie_t *ptrie_compile(const ptrie_build_t *b)
{
	ptrie_t *t = NULL;
	pt_lvl_t *lv = NULL;
	pt_item_t *it = NULL;
	pt_out_t o = {0};
	size_t root;
	if(!b) {
		return NULL;
	}
	lv = malloc((b->nlevels ? b->nlevels : 1) * sizeof(*lv));
	it = malloc((b->n ? b->n : 1) * sizeof(*it));
	t = calloc(1, sizeof(*t));
	if(!lv || !it || !t) {
		goto fail;
	}
	for(size_t i = 0, at = 0; i < b->n; i++) {
		it[i].lv = lv + at;
		it[i].n = pt_levels(b->text + b->entries[i].filter, lv + at);
		it[i].rule = b->entries[i].rule;
		at += it[i].n;
	}
	qsort(it, b->n, sizeof(*it), pt_item_cmp);
	/* Seed from the trie's address: different per trie and per run. */
	t->seed = (uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ULL;
	o.seed = t->seed;
	if(pt_emit(&o, it, 0, b->n, 0, 0, &root) || root != 0) {
		goto fail;
	}
	t->size = (o.used + 127) & ~(size_t)127;
	t->block = aligned_alloc(128, t->size);
	if(!t->block) {
		goto fail;
	}
	memcpy(t->block, o.base, o.used);
	memset(t->block + o.used, 0, t->size - o.used);
	free(o.base);
	free(lv);
	free(it);
	return t;
fail:
	free(o.base);
	free(lv);
	free(it);
	ptrie_compiled_free(t);
	return NULL;
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

static const char *pt_var_name(const pt_walk_t *w, const pt_var_t *v)
{
	return (const char *)(w->base + v->name);
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
	uint64_t h = ptrie_hash(w->seed, l->s, l->len);
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
static bool pt_var_is(const pt_walk_t *w, const pt_var_t *v, const ptrie_level_t *l,
                      bool dollar0)
{
	const ptrie_query_t *q = w->q;
	if(dollar0) {
		return false;
	}
	size_t len;
	const char *val = q->var(q->var_ctx, pt_var_name(w, v));
	if(pt_value_len(val, &len)) {
		return len == l->len && memcmp(val, l->s, len) == 0;
	}
	return q->deny;
}

/* Can variable v stand for *some* level that a '+' or '#' of the query
 * filter at depth i matches? */
static bool pt_var_any(const pt_walk_t *w, const pt_var_t *v, size_t i)
{
	const ptrie_query_t *q = w->q;
	const char *val = q->var(q->var_ctx, pt_var_name(w, v));
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
		if(pt_var_is(w, &vars[k], l, dollar0)) {
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
			if(!ptrie_value_usable(q->var(q->var_ctx, pt_var_name(w, &vars[k])))) {
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
		if(pt_var_is(w, &vars[k], l, dollar0)) {
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
		if(pt_var_any(w, &vars[k], i)) {
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
			if(pt_var_any(w, &vars[k], i)) {
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
		if(pt_var_is(w, &vars[k], l, dollar0)) {
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
