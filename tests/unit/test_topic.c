/*
 * test_topic.c — unit tests of common/topic.c: validation of topic names and
 * filters, matching, filter coverage and $share stripping.  Besides tables of
 * hand-picked cases, every filter and topic over a small alphabet (with
 * wildcards, empty levels and a '$' level) is checked against an independent
 * reference: topic_matches against a recursive matcher, topic_filter_covers
 * against set inclusion of the topics each filter matches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

static void test_valid_name(void **state)
{
	(void)state;
	static const char *const good[] = {"a", "a/b", "/", "//", "a//b", "/a", "a/", "$SYS/x",
	                                   "$", "é/ü", "a b", "%{id}", "a\x7f"};
	static const char *const bad[] = {"", "+", "#", "a/+", "a/#", "a+", "a#b", "\xff", "a\xc0\x80",
	                                  "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
	for(size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(topic_valid_name(good[i]));
	}
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(topic_valid_name(bad[i])) {
			print_error("accepted bad name %zu\n", i);
		}
		assert_false(topic_valid_name(bad[i]));
	}
	assert_false(topic_valid_name(NULL));
	char *big = malloc(TOPIC_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', TOPIC_MAX_LEN);
	big[TOPIC_MAX_LEN] = '\0';
	assert_true(topic_valid_name(big));
	assert_true(topic_valid_filter(big));
	big[TOPIC_MAX_LEN] = 'a';
	big[TOPIC_MAX_LEN + 1] = '\0';
	assert_false(topic_valid_name(big));
	assert_false(topic_valid_filter(big));
	free(big);
}

static void test_valid_filter(void **state)
{
	(void)state;
	static const char *const good[] = {"#", "+", "a", "a/#", "a/+", "+/+", "+/#", "/#", "/+",
	                                   "a//b", "+//#", "$SYS/#", "$share/g/a", "/", "a/+/b/#"};
	static const char *const bad[] = {"", "a#", "#a", "a/#/b", "#/", "#/a", "a+", "+a", "a/b+",
	                                  "++", "##", "a/+b/c", "\xff", "+#", "a/#/"};
	for(size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if(!topic_valid_filter(good[i])) {
			print_error("refused good filter %s\n", good[i]);
		}
		assert_true(topic_valid_filter(good[i]));
	}
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(topic_valid_filter(bad[i])) {
			print_error("accepted bad filter %s\n", bad[i]);
		}
		assert_false(topic_valid_filter(bad[i]));
	}
	assert_false(topic_valid_filter(NULL));
}

static void test_matches_table(void **state)
{
	(void)state;
	static const struct {
		const char *f, *t;
		bool m;
	} cases[] = {
	    {"a/b", "a/b", true},     {"a/b", "a/c", false},   {"a/b", "a", false},
	    {"a", "a/b", false},      {"a/+", "a/b", true},    {"a/+", "a", false},
	    {"a/+", "a/b/c", false},  {"a/+", "a/", true},     {"+", "a", true},
	    {"+", "/", false},        {"+/+", "/", true},      {"/+", "/a", true},
	    {"#", "a", true},         {"#", "a/b/c", true},    {"#", "/", true},
	    {"a/#", "a", true},       {"a/#", "a/b/c", true},  {"a/#", "b", false},
	    {"a/#", "ab", false},     {"+/#", "a", true},      {"a//b", "a//b", true},
	    {"a//b", "a/b", false},   {"a/+/b", "a//b", true}, {"#", "$SYS", false},
	    {"#", "$SYS/a", false},   {"+/a", "$SYS/a", false}, {"+", "$", false},
	    {"$SYS/#", "$SYS", true}, {"$SYS/#", "$SYS/a/b", true}, {"$SYS/+", "$SYS/a", true},
	    {"a/#", "a/$SYS", true},  {"a/+", "a/$x", true},   {"$SYS", "$sys", false},
	    {"", "a", false},         {"a", "", false},        {"A", "a", false},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if(topic_matches(cases[i].f, cases[i].t) != cases[i].m) {
			print_error("topic_matches(%s, %s) != %d\n", cases[i].f, cases[i].t, cases[i].m);
		}
		assert_int_equal(topic_matches(cases[i].f, cases[i].t), cases[i].m);
	}
	assert_false(topic_matches(NULL, "a"));
	assert_false(topic_matches("a", NULL));
}

static void test_covers_table(void **state)
{
	(void)state;
	static const struct {
		const char *o, *i;
		bool c;
	} cases[] = {
	    {"#", "a/b", true},        {"#", "#", true},          {"#", "+/#", true},
	    {"#", "$SYS/#", false},    {"#", "$SYS", false},      {"+/#", "$SYS/a", false},
	    {"$SYS/#", "$SYS/a/+", true}, {"$SYS/#", "#", false}, {"$SYS/+", "+/+", false},
	    {"a/#", "a", true},        {"a/#", "a/#", true},      {"a/#", "a/+/c", true},
	    {"a/#", "#", false},       {"a/+", "a/b", true},      {"a/+", "a/+", true},
	    {"a/+", "a/#", false},     {"a/+", "a", false},       {"a/b", "a/+", false},
	    {"a/b", "a/b", true},      {"+/+", "a/b", true},      {"+/+", "+/b", true},
	    {"+/b", "+/+", false},     {"a/+/#", "a", false},     {"a/+/#", "a/b", true},
	    {"a/+/#", "a/#", false},   {"+", "a/b", false},       {"+/#", "a", true},
	    {"a//#", "a/", true},      {"a//#", "a//x", true},    {"a/b", "a//b", false},
	    {"+/#", "#", true},        {"/+/#", "/#", true},      {"+/#", "$SYS/#", false},
	    {"//+/#", "//#", false},   {"+/+/#", "+/#", false},   {"$SYS/+/#", "$SYS/#", false},
	    {"", "a", false},          {"a", "", false},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if(topic_filter_covers(cases[i].o, cases[i].i) != cases[i].c) {
			print_error("topic_filter_covers(%s, %s) != %d\n", cases[i].o, cases[i].i, cases[i].c);
		}
		assert_int_equal(topic_filter_covers(cases[i].o, cases[i].i), cases[i].c);
	}
	assert_false(topic_filter_covers(NULL, "a"));
	assert_false(topic_filter_covers("a", NULL));
}

static void test_overlap_table(void **state)
{
	(void)state;
	static const struct {
		const char *a, *b;
		bool o;
	} cases[] = {
	    {"a/+/c", "a/b/+", true},  {"a/+/c", "a/b/d", false}, {"a/#", "a", true},
	    {"a", "a/#", true},        {"a/+", "a", false},       {"#", "$SYS/x", false},
	    {"+/x", "$SYS/+", false},  {"$SYS/#", "$SYS/a", true}, {"a/b/#", "a/+/c/d", true},
	    {"a/b", "a/b/c", false},   {"a//b", "a/+/b", true},   {"x/+/y", "+/z/#", true}, {"+", "/#", false}, {"/", "/#", true},
	    {"plant/hq/energy/+/telemetry/power", "plant/hq/+/+/telemetry/#", true},
	    {"plant/+/telemetry/#", "plant/hq/+/status", true},
	    {"plant/+/telemetry/#", "plant/hq/status/+", false},
	    {"", "a", false},          {"a", NULL, false},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if(topic_filters_overlap(cases[i].a, cases[i].b) != cases[i].o ||
		   topic_filters_overlap(cases[i].b, cases[i].a) != cases[i].o) {
			print_error("topic_filters_overlap(%s, %s) != %d\n", cases[i].a,
			            cases[i].b ? cases[i].b : "NULL", cases[i].o);
		}
		assert_int_equal(topic_filters_overlap(cases[i].a, cases[i].b), cases[i].o);
		assert_int_equal(topic_filters_overlap(cases[i].b, cases[i].a), cases[i].o);
	}
}

static void test_levels(void **state)
{
	(void)state;
	assert_int_equal(topic_levels(NULL), 0);
	assert_int_equal(topic_levels(""), 1);
	assert_int_equal(topic_levels("a"), 1);
	assert_int_equal(topic_levels("/"), 2);
	assert_int_equal(topic_levels("a/b/c"), 3);
	assert_int_equal(topic_levels("a//"), 3);
}

static void test_strip_share(void **state)
{
	(void)state;
	const char *g = (const char *)1;
	size_t gl = 99;
	const char *f = "$share/grp/a/b";
	assert_ptr_equal(topic_strip_share(f, &g, &gl), f + 11);
	assert_int_equal(gl, 3);
	assert_memory_equal(g, "grp", 3);
	f = "$share/g/#";
	assert_string_equal(topic_strip_share(f, &g, &gl), "#");
	assert_int_equal(gl, 1);
	f = "$share/g//x";
	assert_string_equal(topic_strip_share(f, &g, &gl), "/x");
	f = "$share/g/$SYS/#";
	assert_string_equal(topic_strip_share(f, &g, &gl), "$SYS/#");
	/* Not shared: returned unchanged, no group. */
	static const char *const plain[] = {"a/b", "$SYS/x", "$share", "$SHARE/g/x", "share/g/x", "#"};
	for(size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		g = (const char *)1;
		gl = 99;
		assert_ptr_equal(topic_strip_share(plain[i], &g, &gl), plain[i]);
		assert_null(g);
		assert_int_equal(gl, 0);
	}
	/* Malformed. */
	static const char *const bad[] = {"$share/", "$share/g", "$share/g/", "$share//x",
	                                  "$share/+/x", "$share/#/x", "$share/a+/x", "$share/#"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(topic_strip_share(bad[i], &g, &gl)) {
			print_error("accepted %s\n", bad[i]);
		}
		assert_null(topic_strip_share(bad[i], &g, &gl));
	}
	assert_null(topic_strip_share(NULL, &g, &gl));
	assert_null(g);
}

/* ------------------------------------------------------------------------ */
/* Exhaustive comparison with a reference                                     */

#define MAXLV 4

typedef struct {
	char s[32];
	const char *lv[MAXLV];
	size_t n;
} split_t;

static const char *const alpha_f[] = {"a", "b", "", "$s", "+", "#"};
static const char *const alpha_t[] = {"a", "b", "", "$s", "z"}; /* z: any other level */

static void make(split_t *x, const char *const *alpha, size_t na, size_t len, size_t k)
{
	size_t at = 0;
	x->n = len;
	for(size_t i = 0; i < len; i++) {
		x->lv[i] = alpha[k % na];
		k /= na;
		at += (size_t)snprintf(x->s + at, sizeof(x->s) - at, "%s%s", i ? "/" : "", x->lv[i]);
	}
}

/* Independent reference matcher over split levels (MQTT 3.1.1 §4.7). */
static bool ref_match_at(const split_t *f, size_t fi, const split_t *t, size_t ti)
{
	if(fi == f->n) {
		return ti == t->n;
	}
	if(strcmp(f->lv[fi], "#") == 0) {
		return true; /* the rest, including nothing: "a/#" matches "a" */
	}
	if(ti == t->n) {
		return false;
	}
	if(strcmp(f->lv[fi], "+") != 0 && strcmp(f->lv[fi], t->lv[ti]) != 0) {
		return false;
	}
	return ref_match_at(f, fi + 1, t, ti + 1);
}

static bool ref_match(const split_t *f, const split_t *t)
{
	if(t->lv[0][0] == '$' && (!strcmp(f->lv[0], "+") || !strcmp(f->lv[0], "#"))) {
		return false;
	}
	return ref_match_at(f, 0, t, 0);
}

static size_t enumerate(split_t **out, const char *const *alpha, size_t na, size_t maxlen,
                        bool filters)
{
	size_t total = 0, pw = 1;
	for(size_t len = 1; len <= maxlen; len++) {
		pw *= na;
		total += pw;
	}
	split_t *v = calloc(total, sizeof(*v));
	assert_non_null(v);
	size_t n = 0;
	pw = 1;
	for(size_t len = 1; len <= maxlen; len++) {
		pw *= na;
		for(size_t k = 0; k < pw; k++) {
			make(&v[n], alpha, na, len, k);
			if(filters ? topic_valid_filter(v[n].s) : topic_valid_name(v[n].s)) {
				n++;
			}
		}
	}
	*out = v;
	return n;
}

static void test_matches_exhaustive(void **state)
{
	(void)state;
	split_t *fs, *ts;
	size_t nf = enumerate(&fs, alpha_f, 6, 4, true);
	size_t nt = enumerate(&ts, alpha_t, 5, 4, false);
	size_t yes = 0;
	for(size_t i = 0; i < nf; i++) {
		for(size_t j = 0; j < nt; j++) {
			bool want = ref_match(&fs[i], &ts[j]);
			bool got = topic_matches(fs[i].s, ts[j].s);
			if(want != got) {
				print_error("topic_matches(%s, %s) = %d, reference %d\n", fs[i].s, ts[j].s, got,
				            want);
			}
			assert_int_equal(got, want);
			yes += got;
		}
	}
	assert_true(yes > 1000);
	free(fs);
	free(ts);
}

/* topic_filter_covers(o, i) must be exactly "every topic i matches, o
 * matches": compared over all topics of up to 4 levels, which is enough for
 * filters of up to 3 (a difference always shows one level past the longer
 * filter), and 'z' stands for every level not named in the filters. */
static void test_covers_exhaustive(void **state)
{
	(void)state;
	split_t *fs, *ts;
	size_t nf = enumerate(&fs, alpha_f, 6, 3, true);
	size_t nt = enumerate(&ts, alpha_t, 5, 4, false);
	size_t words = (nt + 63) / 64;
	uint64_t *bits = calloc(nf * words, sizeof(uint64_t));
	assert_non_null(bits);
	for(size_t i = 0; i < nf; i++) {
		for(size_t j = 0; j < nt; j++) {
			if(ref_match(&fs[i], &ts[j])) {
				bits[i * words + j / 64] |= 1ULL << (j % 64);
			}
		}
	}
	size_t yes = 0;
	for(size_t o = 0; o < nf; o++) {
		for(size_t i = 0; i < nf; i++) {
			bool want = true;
			for(size_t w = 0; w < words && want; w++) {
				want = (bits[i * words + w] & ~bits[o * words + w]) == 0;
			}
			bool got = topic_filter_covers(fs[o].s, fs[i].s);
			if(want != got) {
				print_error("topic_filter_covers(%s, %s) = %d, inclusion %d\n", fs[o].s, fs[i].s,
				            got, want);
			}
			assert_int_equal(got, want);
			yes += got;
			/* and topic_filters_overlap(o, i): some topic matches both */
			bool any = false;
			for(size_t w = 0; w < words && !any; w++) {
				any = (bits[i * words + w] & bits[o * words + w]) != 0;
			}
			if(any != topic_filters_overlap(fs[o].s, fs[i].s)) {
				print_error("topic_filters_overlap(%s, %s) != %d\n", fs[o].s, fs[i].s, any);
			}
			assert_int_equal(topic_filters_overlap(fs[o].s, fs[i].s), any);
		}
	}
	assert_true(yes > 500);
	free(bits);
	free(fs);
	free(ts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_name),         cmocka_unit_test(test_valid_filter),
	    cmocka_unit_test(test_matches_table),      cmocka_unit_test(test_covers_table),
	    cmocka_unit_test(test_overlap_table),
	    cmocka_unit_test(test_levels),             cmocka_unit_test(test_strip_share),
	    cmocka_unit_test(test_matches_exhaustive), cmocka_unit_test(test_covers_exhaustive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
