/*
 * test_common_prims.c — unit tests of the primitives plugin, bridge and
 * tools share once in common/ (issue 15, item 5): the one JSON string
 * escaper (json_escape, both modes, byte for byte), json_out_str built on it,
 * the reader's reasons for refusing (json_in_t.why) and its allocation-free
 * json_string_into, util_utf8_seq, the one growable array (util_grow) and
 * the one log-value quoter (util_log_quote over util_log_safe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "util.h"

static void put(void *ctx, const char *s, size_t n)
{
	json_out_raw(ctx, s, n);
}

/* s[0..n) escaped with flags, as a fresh string. */
static char *esc(const char *s, size_t n, unsigned flags)
{
	json_out_t o = {0};
	json_out_raw(&o, "", 0);
	json_escape(s, n, flags, put, &o);
	return json_out_take(&o, NULL);
}

static void test_escape_cases(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t n;
		const char *plain;
		const char *strict;
	} cases[] = {
	    {"plain text", 10, "plain text", "plain text"},
	    {"", 0, "", ""},
	    {"a\"b\\c", 5, "a\\\"b\\\\c", "a\\\"b\\\\c"},
	    {"l1\nl2", 5, "l1\\u000al2", "l1\\nl2"},
	    {"\r\t\b\f", 4, "\\u000d\\u0009\\u0008\\u000c", "\\r\\t\\b\\f"},
	    {"\x01\x1f", 2, "\\u0001\\u001f", "\\u0001\\u001f"},
	    {"del\x7f", 4, "del\x7f", "del\\u007f"},
	    {"nul\0x", 5, "nul\\u0000x", "nul\\u0000x"},
	    {"caf\xc3\xa9", 5, "caf\xc3\xa9", "caf\xc3\xa9"},
	    {"\xe2\x80\xa8|\xe2\x80\xa9", 7, "\xe2\x80\xa8|\xe2\x80\xa9", "\\u2028|\\u2029"},
	    {"bad\xff\xc0\x80!", 7, "bad\xff\xc0\x80!", "bad\\ufffd\\ufffd\\ufffd!"},
	    {"cut\xe2\x82", 5, "cut\xe2\x82", "cut\\ufffd\\ufffd"},
	    {"\xf0\x9f\x8f\xad", 4, "\xf0\x9f\x8f\xad", "\xf0\x9f\x8f\xad"},
	    {"sur\xed\xa0\x80", 6, "sur\xed\xa0\x80", "sur\\ufffd\\ufffd\\ufffd"},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = esc(cases[i].in, cases[i].n, 0);
		char *s = esc(cases[i].in, cases[i].n, JSON_ESC_STRICT);
		assert_non_null(p);
		assert_non_null(s);
		assert_string_equal(p, cases[i].plain);
		assert_string_equal(s, cases[i].strict);
		assert_true(util_utf8_valid(s, strlen(s)) || !s[0]);
		free(p);
		free(s);
	}
}

/* json_out_str is the escaper between quotes, and reads back through the
 * reader to what was written, for every single byte value. */
static void test_out_str_roundtrip(void **state)
{
	(void)state;
	for(int c = 1; c < 0x80; c++) {
		char in[3] = {'x', (char)c, 'y'};
		json_out_t o = {0};
		json_out_str(&o, in, 3);
		size_t len;
		char *text = json_out_take(&o, &len);
		assert_non_null(text);
		json_in_t j;
		json_in_init(&j, text, len);
		char *back;
		size_t blen;
		assert_int_equal(json_string(&j, &back, &blen), 0);
		assert_int_equal(blen, 3);
		assert_memory_equal(back, in, 3);
		free(back);
		free(text);
	}
}

/* The reader says why it refused, for every caller (the audit trail's
 * "... at column N" messages come from here). */
static void test_reader_reasons(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		const char *why;
	} cases[] = {
	    {"x", "expected '\"'"},
	    {"\"abc", "unterminated string"},
	    {"\"a\x01\"", "control character in string"},
	    {"\"\\q\"", "unknown escape"},
	    {"\"\\u12\"", "bad \\u escape"},
	    {"\"\\udc00\"", "lone low surrogate"},
	    {"\"\\ud800x\"", "lone high surrogate"},
	    {"\"\\ud800\\u0041\"", "bad surrogate pair"},
	    {"\"\\u0000\"", "invalid UTF-8 or NUL in string"},
	    {"\"\xff\"", "invalid UTF-8 or NUL in string"},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_in_t in;
		char *out;
		json_in_init(&in, cases[i].in, strlen(cases[i].in));
		assert_int_equal(json_string(&in, &out, NULL), -1);
		assert_null(out);
		assert_non_null(in.why);
		assert_string_equal(in.why, cases[i].why);
	}
	static const struct {
		const char *in;
		const char *why;
	} ints[] = {
	    {"x", "expected an integer"},
	    {"012", "leading zero"},
	    {"1.5", "only integers are allowed"},
	    {"99999999999999999999", "integer out of range"},
	    {"11", "integer out of range"}, /* max is 10 below */
	};
	for(size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		json_in_t in;
		int64_t v;
		json_in_init(&in, ints[i].in, strlen(ints[i].in));
		assert_int_equal(json_int(&in, 0, 10, &v), -1);
		assert_string_equal(in.why, ints[i].why);
	}
	/* json_string_into decodes in place, without allocating. */
	char d[32];
	size_t n;
	json_in_t in;
	json_in_init(&in, " \"a\\u00e9\\n\" rest", 15);
	assert_int_equal(json_string_into(&in, d, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(d, "a\xc3\xa9\n");
	assert_null(in.why);
}

static void test_utf8_seq(void **state)
{
	(void)state;
	assert_int_equal(util_utf8_seq((const unsigned char *)"a", 1), 1);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xe2\x80\xa8", 3), 3);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xf0\x9f\x8f\xad", 4), 4);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\x80", 1), 0);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xc0\x80", 2), 0);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3), 0);
	assert_int_equal(util_utf8_seq((const unsigned char *)"\xf5\x80\x80\x80", 4), 0);
}

static void test_grow(void **state)
{
	(void)state;
	int *v = NULL;
	size_t n = 0, cap = 0;
	for(int i = 0; i < 1000; i++) {
		int *g = util_grow(v, n, &cap, sizeof(*v));
		assert_non_null(g);
		v = g;
		v[n++] = i;
		assert_true(cap >= n);
	}
	assert_int_equal(cap, 1024); /* doubling from 16 */
	for(int i = 0; i < 1000; i++) {
		assert_int_equal(v[i], i);
	}
	/* Room left: the same array back, no reallocation. */
	assert_ptr_equal(util_grow(v, 1000, &cap, sizeof(*v)), v);
	/* An impossible size fails and leaves the array and its capacity alone. */
	size_t huge = SIZE_MAX / 2;
	assert_null(util_grow(v, huge, &huge, 16));
	assert_int_equal(huge, SIZE_MAX / 2);
	free(v);
}

static void test_log_quote(void **state)
{
	(void)state;
	char b[64];
	/* A plain token stays bare, the bridge's dialect. */
	assert_string_equal(util_log_quote("plant/a-1/+/#", b, sizeof(b)), "plant/a-1/+/#");
	assert_string_equal(util_log_quote("$aws/rules/r_1:x.y", b, sizeof(b)), "$aws/rules/r_1:x.y");
	/* Anything else is quoted, with the plugin's replacements inside: no
	 * quote, backslash, control byte or invalid UTF-8 survives. */
	assert_string_equal(util_log_quote("", b, sizeof(b)), "\"\"");
	assert_string_equal(util_log_quote(NULL, b, sizeof(b)), "\"\"");
	assert_string_equal(util_log_quote("a b", b, sizeof(b)), "\"a b\"");
	assert_string_equal(util_log_quote("x\" role=ops y=\"", b, sizeof(b)), "\"x? role=ops y=?\"");
	assert_string_equal(util_log_quote("a\\b\nc\x7f", b, sizeof(b)), "\"a?b?c?\"");
	assert_string_equal(util_log_quote("t\xc3\xa4mp", b, sizeof(b)), "\"t\xc3\xa4mp\"");
	assert_string_equal(util_log_quote("bad\xc3", b, sizeof(b)), "\"bad?\"");
	/* Cut to fit, the closing quote kept; too small for quotes is "". */
	char s[6];
	assert_string_equal(util_log_quote("hello world", s, sizeof(s)), "\"hel\"");
	assert_string_equal(util_log_quote("abcdefgh", s, sizeof(s)), "abcde");
	assert_string_equal(util_log_quote("a b", s, 2), "");
	/* The plugin's form: the same replacements, quotes left to the caller. */
	assert_string_equal(util_log_safe("x\" y", b, sizeof(b)), "x? y");
	assert_string_equal(util_log_safe(NULL, b, sizeof(b)), "(none)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_cases),
	    cmocka_unit_test(test_out_str_roundtrip),
	    cmocka_unit_test(test_reader_reasons),
	    cmocka_unit_test(test_utf8_seq),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_log_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
