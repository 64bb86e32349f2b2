/*
 * test_policy_trie.c — unit tests of plugin/core/policy_trie.c, the compiled
 * trie that decides which rules a topic or filter reaches.
 *
 * The compiled trie merges chains of single literal children into one node
 * and keeps literal children in hash tables; none of that may change an
 * answer.  So besides hand-picked edge cases of the merging (a chain split by
 * a later insert, '+', '#' and variables in the middle of a chain, '$' first
 * levels, deny tries with unusable variable values, many siblings), every
 * walk is checked against the trie as it was before compiling
 * (ptrie_oracle.h) on random rule sets, topics, filters and variable values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_trie.h"
#include "ptrie_oracle.h"

#define MAX_RULES 64
#define MAX_LEVELS 16

/* ---- a trie under test: the same rules in the compiled trie and the oracle */

typedef struct tt {
	policy_rule_t rules[MAX_RULES];
	char *filters[MAX_RULES];
	size_t nrules;
	ptrie_build_t *build;
	oracle_node_t *oracle;
	ptrie_t *trie;
} tt_t;

static void tt_init(tt_t *t)
{
	memset(t, 0, sizeof(*t));
	t->build = ptrie_build_new();
	t->oracle = oracle_new();
	assert_non_null(t->build);
	assert_non_null(t->oracle);
}

static void tt_add(tt_t *t, const char *filter)
{
	assert_true(t->nrules < MAX_RULES);
	policy_rule_t *r = &t->rules[t->nrules];
	r->seq = (unsigned)t->nrules;
	r->line = (int)t->nrules + 1;
	t->filters[t->nrules] = strdup(filter);
	assert_non_null(t->filters[t->nrules]);
	t->nrules++;
	assert_int_equal(ptrie_insert(t->build, filter, r), 0);
	assert_int_equal(oracle_insert(t->oracle, filter, r), 0);
}

static void tt_compile(tt_t *t)
{
	t->trie = ptrie_compile(t->build);
	assert_non_null(t->trie);
	ptrie_build_free(t->build); /* the compiled trie must not need it */
	t->build = NULL;
}

static void tt_free(tt_t *t)
{
	ptrie_build_free(t->build);
	ptrie_compiled_free(t->trie);
	oracle_free(t->oracle);
	for(size_t i = 0; i < t->nrules; i++) {
		free(t->filters[i]);
	}
}

/* ---- variables: %{v}, %{w} and %{id} get values chosen per test */

typedef struct vars {
	const char *v, *w, *id;
} vars_t;

static const char *var_value(const void *ctx, const char *name)
{
	const vars_t *vs = ctx;
	if(strcmp(name, "v") == 0) {
		return vs->v;
	}
	if(strcmp(name, "w") == 0) {
		return vs->w;
	}
	if(strcmp(name, "id") == 0) {
		return vs->id;
	}
	return NULL;
}

/* Hits as a set of rule numbers (rules are numbered by seq 0..63). */
static void hit_bit(void *acc, const policy_rule_t *r)
{
	*(uint64_t *)acc |= 1ULL << r->seq;
}

enum walk { WALK_MATCH, WALK_COVER, WALK_OVERLAP };

/* The rules the compiled trie reaches for `topic` (a name or filter). */
static uint64_t ask_trie(const tt_t *t, enum walk wk, bool deny, const vars_t *vs,
                         const char *topic)
{
	ptrie_level_t lv[MAX_LEVELS];
	size_t n = 0;
	const char *s = topic;
	for(;;) {
		const char *slash = strchr(s, '/');
		assert_true(n < MAX_LEVELS);
		lv[n].s = s;
		lv[n].len = slash ? (size_t)(slash - s) : strlen(s);
		n++;
		if(!slash) {
			break;
		}
		s = slash + 1;
	}
	uint64_t hits = 0;
	ptrie_query_t q = {lv, n, deny, var_value, vs, hit_bit, &hits};
	if(wk == WALK_MATCH) {
		ptrie_match(t->trie, &q);
	} else if(wk == WALK_COVER) {
		ptrie_cover(t->trie, &q);
	} else {
		ptrie_overlap(t->trie, &q);
	}
	return hits;
}

/* The same question to the oracle. */
static uint64_t ask_oracle(const tt_t *t, enum walk wk, bool deny, const vars_t *vs,
                           const char *topic)
{
	char buf[256];
	char *lv[MAX_LEVELS];
	size_t n = 0;
	size_t tl = strlen(topic);
	assert_true(tl < sizeof(buf));
	memcpy(buf, topic, tl + 1);
	lv[n++] = buf;
	for(char *c = buf; *c; c++) {
		if(*c == '/') {
			*c = '\0';
			assert_true(n < MAX_LEVELS);
			lv[n++] = c + 1;
		}
	}
	uint64_t hits = 0;
	oracle_query_t q = {lv, n, deny, var_value, vs, hit_bit, &hits};
	if(wk == WALK_MATCH) {
		oracle_match(t->oracle, &q);
	} else if(wk == WALK_COVER) {
		oracle_cover(t->oracle, &q);
	} else {
		oracle_overlap(t->oracle, &q);
	}
	return hits;
}

static const vars_t plain = {"v1", "w1", "dev"};

/* Rule bits the compiled trie matches for topic name `topic`, after checking
 * that the oracle agrees. */
static uint64_t match(const tt_t *t, bool deny, const vars_t *vs, const char *topic)
{
	uint64_t got = ask_trie(t, WALK_MATCH, deny, vs, topic);
	uint64_t want = ask_oracle(t, WALK_MATCH, deny, vs, topic);
	if(got != want) {
		print_error("match %s: trie %llx, oracle %llx\n", topic, (unsigned long long)got,
		            (unsigned long long)want);
	}
	assert_true(got == want);
	return got;
}

static uint64_t walk(const tt_t *t, enum walk wk, bool deny, const vars_t *vs, const char *f)
{
	uint64_t got = ask_trie(t, wk, deny, vs, f);
	uint64_t want = ask_oracle(t, wk, deny, vs, f);
	if(got != want) {
		print_error("walk %d %s: trie %llx, oracle %llx\n", (int)wk, f,
		            (unsigned long long)got, (unsigned long long)want);
	}
	assert_true(got == want);
	return got;
}

#define BIT(i) (1ULL << (i))

/* ---- hand-picked cases */

static void test_chain_split_by_later_insert(void **state)
{
	(void)state;
	tt_t t;
	tt_init(&t);
	tt_add(&t, "a/b/c/d");   /* 0: one chain a/b/c/d */
	tt_add(&t, "a/b/x");     /* 1: splits it after a/b */
	tt_add(&t, "a/b/c/d/e"); /* 2: extends it below d */
	tt_add(&t, "a/b");       /* 3: a rule inside the chain */
	tt_compile(&t);
	assert_true(match(&t, false, &plain, "a/b/c/d") == BIT(0));
	assert_true(match(&t, false, &plain, "a/b/x") == BIT(1));
	assert_true(match(&t, false, &plain, "a/b/c/d/e") == BIT(2));
	assert_true(match(&t, false, &plain, "a/b") == BIT(3));
	assert_true(match(&t, false, &plain, "a/b/c") == 0);   /* ends inside a chain */
	assert_true(match(&t, false, &plain, "a") == 0);
	assert_true(match(&t, false, &plain, "a/b/c/d/e/f") == 0); /* runs past it */
	assert_true(match(&t, false, &plain, "a/b/c/dd") == 0);    /* longer level */
	assert_true(match(&t, false, &plain, "a/b/c/") == 0);      /* empty level */
	assert_true(match(&t, false, &plain, "a/b/cd") == 0);      /* '/' vs byte */
	assert_true(match(&t, false, &plain, "a/bc/d") == 0);
	assert_true(walk(&t, WALK_COVER, false, &plain, "a/b/c/d") == BIT(0));
	assert_true(walk(&t, WALK_COVER, false, &plain, "a/b/+/d") == 0);
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "a/b/+/d") == BIT(0));
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "a/+/c/#") == (BIT(0) | BIT(2)));
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "a/b/#") == 0xf);
	assert_true(walk(&t, WALK_OVERLAP, true, &plain, "a/+/c/#") != 0);
	tt_free(&t);
}

static void test_wildcards_and_variables_inside_chains(void **state)
{
	(void)state;
	tt_t t;
	tt_init(&t);
	tt_add(&t, "p/q/+/r/s");       /* 0 */
	tt_add(&t, "p/q/%{v}/r/s");    /* 1 */
	tt_add(&t, "p/q/lit/r/s");     /* 2 */
	tt_add(&t, "p/q/lit/r/#");     /* 3 */
	tt_add(&t, "p/q/%{w}/#");      /* 4 */
	tt_add(&t, "p/q/%{v}/%{w}/z"); /* 5 */
	tt_compile(&t);
	assert_true(match(&t, false, &plain, "p/q/v1/r/s") == (BIT(0) | BIT(1)));
	assert_true(match(&t, false, &plain, "p/q/lit/r/s") == (BIT(0) | BIT(2) | BIT(3)));
	assert_true(match(&t, false, &plain, "p/q/lit/r") == BIT(3)); /* "x/#" matches "x" */
	assert_true(match(&t, false, &plain, "p/q/w1") == BIT(4));
	assert_true(match(&t, false, &plain, "p/q/v1/w1/z") == BIT(5));
	assert_true(match(&t, false, &plain, "p/q/w1/w1/z") == BIT(4));
	assert_true(match(&t, false, &plain, "p/q/v1/w2/z") == 0);
	assert_true(walk(&t, WALK_COVER, false, &plain, "p/q/+/r/s") == BIT(0));
	assert_true(walk(&t, WALK_COVER, false, &plain, "p/q/lit/r/+") == BIT(3));
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "p/q/#") != 0);
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "p/+/+/r/+") != 0);
	tt_free(&t);
}

static void test_dollar_first_level(void **state)
{
	(void)state;
	tt_t t;
	tt_init(&t);
	tt_add(&t, "$SYS/broker/load"); /* 0: one merged chain starting with '$' */
	tt_add(&t, "+/broker/load");    /* 1 */
	tt_add(&t, "#");                /* 2 */
	tt_add(&t, "%{v}/broker/load"); /* 3 */
	tt_add(&t, "sys/broker/load");  /* 4 */
	tt_compile(&t);
	vars_t dollar = {"$SYS", "w", "id"};
	assert_true(match(&t, false, &plain, "$SYS/broker/load") == BIT(0));
	assert_true(match(&t, false, &dollar, "$SYS/broker/load") == BIT(0));
	assert_true(match(&t, true, &dollar, "$SYS/broker/load") == BIT(0));
	assert_true(match(&t, false, &plain, "sys/broker/load") == (BIT(1) | BIT(2) | BIT(4)));
	/* A wildcard query never reaches a '$' first level. */
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "+/broker/load") ==
	            (BIT(1) | BIT(2) | BIT(3) | BIT(4)));
	assert_true((walk(&t, WALK_OVERLAP, false, &plain, "#") & BIT(0)) == 0);
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "$SYS/+/load") == BIT(0));
	assert_true(walk(&t, WALK_OVERLAP, false, &plain, "$SYS/#") == BIT(0));
	assert_true(walk(&t, WALK_COVER, false, &plain, "$SYS/broker/load") == BIT(0));
	tt_free(&t);
}

static void test_deny_unusable_values(void **state)
{
	(void)state;
	static const char *const unusable[] = {NULL, "", "$x", "a/b", "a+", "#", "a\x01"};
	tt_t t;
	tt_init(&t);
	tt_add(&t, "plant/%{v}/cmd/set"); /* 0: variable, then a merged chain */
	tt_add(&t, "plant/x/cmd/set");    /* 1 */
	tt_compile(&t);
	for(size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]); i++) {
		vars_t vs = {unusable[i], "w", "id"};
		/* deny: an unusable value acts as '+' */
		assert_true(match(&t, true, &vs, "plant/anything/cmd/set") == BIT(0));
		assert_true(match(&t, true, &vs, "plant/x/cmd/set") == (BIT(0) | BIT(1)));
		assert_true(match(&t, true, &vs, "plant/x/cmd") == 0);
		assert_true(walk(&t, WALK_OVERLAP, true, &vs, "plant/+/cmd/#") != 0);
		assert_true(walk(&t, WALK_COVER, true, &vs, "plant/+/cmd/set") == BIT(0));
		/* allow: it matches nothing */
		assert_true(match(&t, false, &vs, "plant/anything/cmd/set") == 0);
		assert_true(match(&t, false, &vs, "plant/x/cmd/set") == BIT(1));
		assert_true(walk(&t, WALK_COVER, false, &vs, "plant/+/cmd/set") == 0);
	}
	tt_free(&t);
}

static void test_many_siblings(void **state)
{
	(void)state;
	tt_t t;
	tt_init(&t);
	char f[64];
	for(int k = 0; k < 60; k++) { /* a hash table of children, each a chain */
		snprintf(f, sizeof f, "plant/%%{id}/r%d/a/b", k);
		tt_add(&t, f);
	}
	tt_add(&t, "plant/%{id}/+/a/b"); /* 60 */
	tt_add(&t, "plant/%{id}/r7");    /* 61 */
	tt_add(&t, "plant/%{id}/");      /* 62: an empty level */
	tt_compile(&t);
	vars_t vs = {"v", "w", "dev"};
	for(int k = 0; k < 60; k++) {
		snprintf(f, sizeof f, "plant/dev/r%d/a/b", k);
		assert_true(match(&t, false, &vs, f) == (BIT(k) | BIT(60)));
		snprintf(f, sizeof f, "plant/dev/r%d/a/c", k);
		assert_true(match(&t, false, &vs, f) == 0);
	}
	assert_true(match(&t, false, &vs, "plant/dev/r7") == BIT(61));
	assert_true(match(&t, false, &vs, "plant/dev/") == BIT(62));
	assert_true(match(&t, false, &vs, "plant/dev/x1/a/b") == BIT(60));
	assert_true(match(&t, false, &vs, "plant/other/r1/a/b") == 0);
	assert_true(walk(&t, WALK_OVERLAP, false, &vs, "plant/dev/+/a/b") == (~0ULL >> 3));
	assert_true(walk(&t, WALK_OVERLAP, false, &vs, "plant/dev/#") == (~0ULL >> 1));
	assert_true(walk(&t, WALK_COVER, false, &vs, "plant/dev/r59/a/b") == (BIT(59) | BIT(60)));
	tt_free(&t);
}

static void test_empty_trie(void **state)
{
	(void)state;
	tt_t t;
	tt_init(&t);
	tt_compile(&t);
	assert_true(match(&t, false, &plain, "a/b") == 0);
	assert_true(walk(&t, WALK_OVERLAP, true, &plain, "#") == 0);
	assert_true(walk(&t, WALK_COVER, true, &plain, "+") == 0);
	ptrie_query_t q = {NULL, 0, false, var_value, &plain, hit_bit, NULL};
	ptrie_match(NULL, &q); /* no trie: no rules */
	ptrie_cover(NULL, &q);
	ptrie_overlap(NULL, &q);
	ptrie_compiled_free(NULL);
	assert_null(ptrie_compile(NULL));
	tt_free(&t);
}

/* ---- random rule sets against the oracle */

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Literal levels: short, prefixes of each other, empty, '$'-led, and a run
 * of k0..k9 so some nodes get more children than are scanned. */
static const char *rnd_literal(char *buf)
{
	static const char *const lits[] = {"a", "b", "ab", "", "$s", "x", "a b"};
	if(rnd(3) == 0) {
		snprintf(buf, 8, "k%u", rnd(10));
		return buf;
	}
	return lits[rnd(sizeof(lits) / sizeof(lits[0]))];
}

/* A filter (rule, or query with wild) or a topic name of 1..6 levels. */
static void rnd_topic(char *out, size_t len, bool wild, bool vars)
{
	size_t o = 0;
	unsigned n = 1 + rnd(6);
	out[0] = '\0';
	for(unsigned i = 0; i < n; i++) {
		char kb[8];
		const char *l;
		unsigned kind = rnd(10);
		if(wild && kind == 0) {
			l = "+";
		} else if(wild && kind == 1) {
			l = "#";
			n = i + 1; /* '#' is the last level */
		} else if(vars && kind == 2) {
			l = rnd(2) ? "%{v}" : "%{w}";
		} else {
			l = rnd_literal(kb);
		}
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "/" : "", l);
	}
}

static void test_random_against_oracle(void **state)
{
	(void)state;
	static const char *const values[] = {"a", "b", "k3", "", NULL, "$s", "a/b", "+", "x"};
	const size_t nvalues = sizeof(values) / sizeof(values[0]);
	char f[128];
	for(int round = 0; round < 400; round++) {
		tt_t t;
		tt_init(&t);
		unsigned nrules = 1 + rnd(MAX_RULES);
		for(unsigned i = 0; i < nrules; i++) {
			rnd_topic(f, sizeof f, true, true);
			tt_add(&t, f);
		}
		tt_compile(&t);
		for(int k = 0; k < 200; k++) {
			vars_t vs = {values[rnd((unsigned)nvalues)], values[rnd((unsigned)nvalues)], "id"};
			bool deny = rnd(2);
			rnd_topic(f, sizeof f, false, false);
			match(&t, deny, &vs, f);
			rnd_topic(f, sizeof f, true, false);
			walk(&t, WALK_COVER, deny, &vs, f);
			walk(&t, WALK_OVERLAP, deny, &vs, f);
			/* A rule's own filter (variables written out as values). */
			const char *rf = t.filters[rnd((unsigned)t.nrules)];
			if(!strstr(rf, "%{")) {
				walk(&t, WALK_COVER, deny, &vs, rf);
				walk(&t, WALK_OVERLAP, deny, &vs, rf);
				if(!strpbrk(rf, "+#")) {
					match(&t, deny, &vs, rf);
				}
			}
		}
		tt_free(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chain_split_by_later_insert),
	    cmocka_unit_test(test_wildcards_and_variables_inside_chains),
	    cmocka_unit_test(test_dollar_first_level),
	    cmocka_unit_test(test_deny_unusable_values),
	    cmocka_unit_test(test_many_siblings),
	    cmocka_unit_test(test_empty_trie),
	    cmocka_unit_test(test_random_against_oracle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
