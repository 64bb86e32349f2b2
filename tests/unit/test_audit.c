/*
 * test_audit.c — the audit trail (plugin/core/audit.c) on real files in a
 * private temporary directory: the chain verifies, edits/deletions/truncation
 * are reported at the right line, reopening continues the chain, a corrupt
 * tail starts an explicit new segment, hostile strings round-trip through the
 * writer and the parser, repeated refusals are summarised, and write failures
 * are counted without breaking the chain.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "audit.h"
#include "util.h"

#define T0 INT64_C(1714564800123) /* 2024-05-01T12:00:00.123Z */

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	util_strlcpy(f->dir, "/tmp/pg-audit-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	util_snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Whole file into a NUL-terminated heap buffer. */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for(;;) {
		if(cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, fp);
		if(r == 0) {
			break;
		}
		n += r;
	}
	fclose(fp);
	buf[n] = '\0';
	if(len) {
		*len = n;
	}
	return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Offset of the start of line `k` (1-based) in buf. */
static size_t line_off(const char *buf, int k)
{
	size_t o = 0;
	for(int i = 1; i < k; i++) {
		const char *nl = strchr(buf + o, '\n');
		assert_non_null(nl);
		o = (size_t)(nl - buf) + 1;
	}
	return o;
}

static size_t line_len(const char *buf, int k)
{
	size_t o = line_off(buf, k);
	const char *nl = strchr(buf + o, '\n');
	return nl ? (size_t)(nl - buf) - o : strlen(buf + o);
}

static void write_n(const char *path, int n, int64_t t0)
{
	char err[256];
	audit_t *a = audit_open(path, err, sizeof(err));
	assert_non_null(a);
	for(int i = 0; i < n; i++) {
		char topic[64];
		util_snprintf(topic, sizeof(topic), "plant/line%d/cmd", i);
		audit_event_t ev = {
		    .event = i == 0 ? AUDIT_EV_START : AUDIT_EV_PUBLISH_DENIED,
		    .identity = "plc-7",
		    .clientid = "plc-7-a",
		    .address = "10.0.0.7",
		    .topic = topic,
		    .access = "write",
		    .decision = "deny",
		    .reason = "no rule grants write",
		    .rule = "policy.conf:12",
		};
		assert_int_equal(audit_write(a, &ev, t0 + i), 0);
	}
	assert_int_equal(audit_errors(a), 0);
	audit_close(a);
}

static int verify(const char *path, audit_verify_result_t *res)
{
	memset(res, 0, sizeof(*res));
	return audit_verify_file(path, res);
}

/* ---------------------------------------------------------------------- */

static void test_format_ts(void **state)
{
	(void)state;
	char ts[25];
	audit_format_ts(0, ts);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
	audit_format_ts(T0, ts);
	assert_string_equal(ts, "2024-05-01T12:00:00.123Z");
	audit_format_ts(-5, ts);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
	audit_format_ts(INT64_MAX, ts);
	assert_string_equal(ts, "9999-12-31T23:59:59.999Z");
}

static void test_line_format(void **state)
{
	fixture_t *f = *state;
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	audit_event_t ev = {.event = AUDIT_EV_PUBLISH_DENIED,
	                    .identity = "plc-7",
	                    .clientid = "",
	                    .topic = "plant/a/cmd",
	                    .access = "write",
	                    .decision = "deny",
	                    .reason = "no rule grants write",
	                    .rule = "policy.conf:12"};
	assert_int_equal(audit_write(a, &ev, T0), 0);
	audit_event_t k = {.event = AUDIT_EV_KICK, .identity = "plc-7", .count = 2};
	assert_int_equal(audit_write(a, &k, T0 + 1), 0);
	assert_int_equal(audit_lines(a), 2);
	char head[AUDIT_HASH_HEX];
	audit_head(a, head);
	audit_close(a);

	char *buf = slurp(f->path, NULL);
	const char *want1 =
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"publish-denied\","
	    "\"identity\":\"plc-7\",\"topic\":\"plant/a/cmd\",\"access\":\"write\","
	    "\"decision\":\"deny\",\"reason\":\"no rule grants write\","
	    "\"rule\":\"policy.conf:12\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}\n";
	assert_memory_equal(buf, want1, strlen(want1));
	/* Line 2's prev is SHA-256 of line 1 without its newline. */
	char *l2 = buf + strlen(want1);
	assert_non_null(strstr(l2, "\"seq\":2,\"event\":\"kick\",\"identity\":\"plc-7\",\"count\":2,"));
	unsigned char h[32];
	char hex[65], want2[80];
	assert_int_equal(EVP_Digest(buf, strlen(want1) - 1, h, NULL, EVP_sha256(), NULL), 1);
	util_hex(h, sizeof(h), hex);
	util_snprintf(want2, sizeof(want2), "\"prev\":\"%s\"}\n", hex);
	assert_string_equal(l2 + strlen(l2) - strlen(want2), want2);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 2);
	assert_string_equal(res.head, head);
	free(buf);
}

static void test_chain_verifies(void **state)
{
	fixture_t *f = *state;
	write_n(f->path, 50, T0);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 50);
	assert_int_equal(res.restarts, 0);
	assert_int_equal(res.bad_line, 0);
}

static void test_empty_file_verifies(void **state)
{
	fixture_t *f = *state;
	spit(f->path, "", 0);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 0);
	assert_int_equal(audit_verify_file("/nonexistent/pg-audit.log", &res), -1);
	assert_non_null(strstr(res.why, "cannot open"));
}

/* Change one byte of line k so that it still parses: the chain breaks at the
 * next line, and verify blames line k. */
static void test_edit_reported(void **state)
{
	fixture_t *f = *state;
	for(int k = 1; k <= 9; k += 4) {
		write_n(f->path, 10, T0);
		size_t len;
		char *buf = slurp(f->path, &len);
		size_t o = line_off(buf, k);
		char *r = strstr(buf + o, "no rule");
		assert_non_null(r);
		r[0] = 'N';
		spit(f->path, buf, len);
		audit_verify_result_t res;
		assert_int_equal(verify(f->path, &res), 1);
		assert_int_equal(res.bad_line, k);
		assert_non_null(strstr(res.why, "altered"));
		free(buf);
		unlink(f->path);
	}
	/* An edit that changes seq is caught on that very line. */
	write_n(f->path, 10, T0);
	size_t len;
	char *buf = slurp(f->path, &len);
	char *s = strstr(buf + line_off(buf, 6), "\"seq\":6");
	assert_non_null(s);
	s[6] = '7';
	spit(f->path, buf, len);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 1);
	assert_int_equal(res.bad_line, 6);
	free(buf);
	unlink(f->path);
	/* An edit that breaks the JSON is caught on that line. */
	write_n(f->path, 10, T0);
	buf = slurp(f->path, &len);
	buf[line_off(buf, 4)] = '[';
	spit(f->path, buf, len);
	assert_int_equal(verify(f->path, &res), 1);
	assert_int_equal(res.bad_line, 4);
	assert_non_null(strstr(res.why, "does not parse"));
	free(buf);
}

static void test_delete_reported(void **state)
{
	fixture_t *f = *state;
	int cases[] = {1, 4, 9};
	for(size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int k = cases[c];
		write_n(f->path, 10, T0);
		size_t len;
		char *buf = slurp(f->path, &len);
		size_t o = line_off(buf, k), l = line_len(buf, k) + 1;
		memmove(buf + o, buf + o + l, len - o - l);
		spit(f->path, buf, len - l);
		audit_verify_result_t res;
		assert_int_equal(verify(f->path, &res), 1);
		assert_int_equal(res.bad_line, k);
		assert_non_null(strstr(res.why, "deleted"));
		free(buf);
		unlink(f->path);
	}
}

static void test_truncate_reported(void **state)
{
	fixture_t *f = *state;
	write_n(f->path, 10, T0);
	size_t len;
	char *buf = slurp(f->path, &len);
	spit(f->path, buf, len - 20);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 1);
	assert_int_equal(res.bad_line, 10);
	assert_non_null(strstr(res.why, "incomplete"));
	/* Only the newline missing. */
	spit(f->path, buf, len - 1);
	assert_int_equal(verify(f->path, &res), 1);
	assert_int_equal(res.bad_line, 10);
	assert_non_null(strstr(res.why, "no newline"));
	free(buf);
}

static void test_reopen_continues(void **state)
{
	fixture_t *f = *state;
	write_n(f->path, 5, T0);
	write_n(f->path, 5, T0 + 1000);
	write_n(f->path, 1, T0 + 2000);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 11);
	assert_int_equal(res.restarts, 0);
	char *buf = slurp(f->path, NULL);
	assert_non_null(strstr(buf + line_off(buf, 11), "\"seq\":11,"));
	free(buf);
}

static void test_corrupt_tail_restarts(void **state)
{
	fixture_t *f = *state;
	/* A garbage last line. */
	write_n(f->path, 5, T0);
	FILE *fp = fopen(f->path, "ab");
	assert_non_null(fp);
	fputs("this is not json\n", fp);
	fclose(fp);
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(audit_restart_reason(a));
	assert_non_null(strstr(audit_restart_reason(a), "does not parse"));
	audit_event_t ev = {.event = AUDIT_EV_START};
	assert_int_equal(audit_write(a, &ev, T0 + 10), 0);
	assert_int_equal(audit_write(a, &ev, T0 + 11), 0);
	audit_close(a);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 9);
	assert_int_equal(res.restarts, 1);
	assert_int_equal(res.first_restart_line, 7);
	char *buf = slurp(f->path, NULL);
	const char *l7 = buf + line_off(buf, 7);
	assert_non_null(strstr(l7, "\"seq\":1,\"event\":\"chain-restart\""));
	assert_non_null(strstr(buf + line_off(buf, 8), "\"seq\":2,\"event\":\"start\""));
	free(buf);
	/* Reopen again: a clean tail now, no new restart. */
	write_n(f->path, 2, T0 + 20);
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 11);
	assert_int_equal(res.restarts, 1);
	unlink(f->path);

	/* A last line cut in the middle (a crash during write). */
	write_n(f->path, 5, T0);
	size_t len;
	buf = slurp(f->path, &len);
	spit(f->path, buf, len - 30);
	free(buf);
	a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(audit_restart_reason(a), "no newline"));
	assert_int_equal(audit_write(a, &ev, T0 + 10), 0);
	audit_close(a);
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 7);
	assert_int_equal(res.restarts, 1);
	assert_int_equal(res.first_restart_line, 6);
	unlink(f->path);

	/* A restart only excuses the line right before it: an edit further up
	 * is still reported. */
	write_n(f->path, 5, T0);
	buf = slurp(f->path, &len);
	buf[line_off(buf, 2)] = 'X';
	buf[len - 2] = 'X'; /* break the last line too */
	spit(f->path, buf, len);
	free(buf);
	write_n(f->path, 1, T0 + 10);
	assert_int_equal(verify(f->path, &res), 1);
	assert_int_equal(res.bad_line, 2);
}

static void test_escaping_roundtrip(void **state)
{
	fixture_t *f = *state;
	static const char *hostile[] = {
	    "quote\" backslash\\ slash/",
	    "new\nline\r\ttab\b\f",
	    "\x01\x02\x1f\x7f bell\a esc\x1b[31m",
	    "{\"event\":\"connect\",\"prev\":\"x\"}",
	    "unicode: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xe2\x80\xa8 sep",
	    "+/#/$SYS",
	};
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	size_t nh = sizeof(hostile) / sizeof(hostile[0]);
	for(size_t i = 0; i < nh; i++) {
		audit_event_t ev = {.event = AUDIT_EV_CONNECT_REFUSED,
		                    .identity = hostile[i],
		                    .clientid = hostile[i],
		                    .topic = hostile[i],
		                    .reason = hostile[i]};
		assert_int_equal(audit_write(a, &ev, T0 + (int64_t)i), 0);
	}
	/* Invalid UTF-8: each bad byte becomes U+FFFD. */
	audit_event_t bad = {.event = AUDIT_EV_CONNECT_REFUSED,
	                     .identity = "a\xff" "b\xc3(\xed\xa0\x80z\xf0\x9f\x98"};
	assert_int_equal(audit_write(a, &bad, T0 + 100), 0);
	audit_close(a);

	size_t len;
	char *buf = slurp(f->path, &len);
	/* Exactly one newline per line, no raw control characters at all. */
	size_t nl = 0;
	for(size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if(c == '\n') {
			nl++;
		} else {
			assert_true(c >= 0x20 && c != 0x7f);
		}
	}
	assert_int_equal(nl, nh + 1);
	for(size_t i = 0; i < nh; i++) {
		audit_record_t r;
		assert_int_equal(audit_parse_line(buf + line_off(buf, (int)i + 1),
		                                  line_len(buf, (int)i + 1), &r, err, sizeof(err)),
		                 0);
		assert_string_equal(r.identity, hostile[i]);
		assert_string_equal(r.clientid, hostile[i]);
		assert_string_equal(r.topic, hostile[i]);
		assert_string_equal(r.reason, hostile[i]);
		assert_string_equal(r.event, "connect-refused");
		audit_record_free(&r);
	}
	audit_record_t r;
	assert_int_equal(audit_parse_line(buf + line_off(buf, (int)nh + 1),
	                                  line_len(buf, (int)nh + 1), &r, err, sizeof(err)),
	                 0);
	assert_string_equal(r.identity, "a\xef\xbf\xbd" "b\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"
	                                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	audit_record_free(&r);
	assert_non_null(strstr(buf, "\\u2028"));
	assert_non_null(strstr(buf, "\\u001b[31m"));
	free(buf);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
}

static void test_long_field_truncated(void **state)
{
	fixture_t *f = *state;
	char *topic = malloc(5000);
	assert_non_null(topic);
	/* 3-byte characters, so the cut must back up to a boundary. */
	for(size_t i = 0; i + 3 < 5000; i += 3) {
		memcpy(topic + i, "\xe2\x82\xac", 3);
		topic[i + 3] = '\0';
	}
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	audit_event_t ev = {.event = AUDIT_EV_SUBSCRIBE_DENIED, .topic = topic};
	assert_int_equal(audit_write(a, &ev, T0), 0);
	audit_close(a);
	size_t len;
	char *buf = slurp(f->path, &len);
	audit_record_t r;
	assert_int_equal(audit_parse_line(buf, len - 1, &r, err, sizeof(err)), 0);
	size_t tl = strlen(r.topic);
	assert_true(tl <= AUDIT_FIELD_MAX + strlen(AUDIT_TRUNC_MARK));
	assert_string_equal(r.topic + tl - strlen(AUDIT_TRUNC_MARK), AUDIT_TRUNC_MARK);
	assert_true(util_utf8_valid(r.topic, tl));
	assert_null(strstr(r.topic, "\xef\xbf\xbd"));
	audit_record_free(&r);
	free(buf);
	free(topic);
}

static void test_parser(void **state)
{
	(void)state;
	static const char *good[] = {
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    " { \"prev\" : \"0000000000000000000000000000000000000000000000000000000000000000\" , "
	    "\"event\":\"kick\",\"seq\":9223372036854775807,\"ts\":\"2024-05-01T12:00:00.123Z\","
	    "\"topic\":\"a\\u00e9\\ud83d\\ude00\\/b\"} ",
	};
	static const char *bad[] = {
	    "",
	    "{}",
	    "[]",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\"}",
	    "{\"ts\":\"2024-05-01 12:00:00\",\"seq\":1,\"event\":\"start\",\"prev\":\"00\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"seq\":2,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"bogus\":1,\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1.5,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":01,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":99999999999999999999,\"event\":\"start\","
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":\"1\",\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"topic\":\"\\u0000\","
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"topic\":\"\\ud800\","
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"topic\":\"a\tb\","
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"topic\":\"\xff\","
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"topic\":{},"
	    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}x",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"Start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"prev\":"
	    "\"000000000000000000000000000000000000000000000000000000000000000G\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"count\":0,\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\",}",
	    "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"start\",\"prev\":"
	    "\"0000000000000000000000000000000000000000000000000000000000000000\"",
	};
	char err[160];
	audit_record_t r;
	for(size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = audit_parse_line(good[i], strlen(good[i]), &r, err, sizeof(err));
		if(rc) {
			fail_msg("good[%zu] rejected: %s", i, err);
		}
		audit_record_free(&r);
	}
	assert_int_equal(audit_parse_line(good[1], strlen(good[1]), &r, err, sizeof(err)), 0);
	assert_string_equal(r.topic, "a\xc3\xa9\xf0\x9f\x98\x80/b");
	assert_int_equal(r.seq, INT64_MAX);
	assert_null(r.identity);
	audit_record_free(&r);
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if(audit_parse_line(bad[i], strlen(bad[i]), &r, err, sizeof(err)) == 0) {
			fail_msg("bad[%zu] accepted", i);
		}
		assert_true(err[0] != '\0');
		assert_null(r.buf_);
	}
	/* An embedded NUL byte is not part of any valid line. */
	const char nul[] = "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"seq\":1,\"event\":\"st\0rt\"}";
	assert_int_equal(audit_parse_line(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -1);
}

static void test_rate_limit(void **state)
{
	fixture_t *f = *state;
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	audit_event_t ev = {.event = AUDIT_EV_PUBLISH_DENIED,
	                    .identity = "plc-7",
	                    .clientid = "plc-7",
	                    .address = "10.0.0.7",
	                    .topic = "plant/a/cmd",
	                    .decision = "deny",
	                    .reason = "no rule grants write",
	                    .rule = "policy.conf:12"};
	assert_int_equal(audit_write_limited(a, &ev, T0), 0);
	for(int i = 1; i <= 41; i++) {
		assert_int_equal(audit_write_limited(a, &ev, T0 + i * 200), 1);
	}
	/* A different reason is a different key; another address is the same. */
	audit_event_t other = ev;
	other.reason = "quota exceeded";
	assert_int_equal(audit_write_limited(a, &other, T0 + 100), 0);
	audit_event_t moved = ev;
	moved.address = "10.0.0.8";
	assert_int_equal(audit_write_limited(a, &moved, T0 + 9000), 1);
	assert_int_equal(audit_lines(a), 2);
	assert_int_equal(audit_tick(a, T0 + 9999), 0);
	assert_int_equal(audit_lines(a), 2);
	/* Window over: one summary for the repeated key, none for `other`. */
	assert_int_equal(audit_tick(a, T0 + 10000), 0);
	assert_int_equal(audit_lines(a), 3);
	assert_int_equal(audit_tick(a, T0 + 10100), 0);
	assert_int_equal(audit_lines(a), 3);
	/* The next one is written again. */
	assert_int_equal(audit_write_limited(a, &ev, T0 + 10200), 0);
	assert_int_equal(audit_lines(a), 4);
	/* A shorter window, closed by write_limited itself. */
	audit_set_window(a, 1000);
	assert_int_equal(audit_write_limited(a, &ev, T0 + 10300), 1);
	assert_int_equal(audit_write_limited(a, &ev, T0 + 11300), 0);
	assert_int_equal(audit_lines(a), 6); /* summary (count 1) + the event */
	/* Close flushes the pending summary. */
	assert_int_equal(audit_write_limited(a, &ev, T0 + 11400), 1);
	audit_close(a);

	char *buf = slurp(f->path, NULL);
	char *l3 = strndup(buf + line_off(buf, 3), line_len(buf, 3));
	assert_non_null(l3);
	assert_non_null(strstr(l3, "\"event\":\"audit-suppressed\",\"identity\":\"plc-7\","
	                           "\"clientid\":\"plc-7\",\"topic\":\"plant/a/cmd\""));
	assert_null(strstr(l3, "\"address\"")); /* it varied */
	assert_non_null(strstr(l3, "\"suppressed\":\"publish-denied\",\"count\":42,"));
	free(l3);
	assert_non_null(strstr(buf + line_off(buf, 5), "\"count\":1,"));
	assert_non_null(strstr(buf + line_off(buf, 7), "\"event\":\"audit-suppressed\""));
	assert_non_null(strstr(buf + line_off(buf, 7), "\"ts\":\"2024-05-01T12:00:11.523Z\""));
	free(buf);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 7);
}

/* More distinct refusals than the table holds: the oldest are flushed, so
 * memory stays bounded and no count is lost. */
static void test_rate_limit_bounded(void **state)
{
	fixture_t *f = *state;
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	int n = AUDIT_LIMIT_KEYS + 10;
	for(int round = 0; round < 2; round++) {
		for(int j = 0; j < n; j++) {
			/* Second round backwards: repeats first, then evicting ones. */
			int i = round ? n - 1 - j : j;
			char id[32];
			util_snprintf(id, sizeof(id), "dev-%d", i);
			audit_event_t ev = {.event = AUDIT_EV_CONNECT_REFUSED, .identity = id, .reason = "revoked"};
			int rc = audit_write_limited(a, &ev, T0 + round);
			assert_true(rc == 0 || rc == 1);
		}
	}
	audit_close(a);
	/* Every identity: its first line, and either a summary (count 1, at
	 * eviction or at close) or, for the ones evicted before their repeat, a
	 * second written line. */
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, (uint64_t)(2 * n));
}

static void test_dev_full(void **state)
{
	(void)state;
	char err[256];
	audit_t *a = audit_open("/dev/full", err, sizeof(err));
	if(!a) {
		skip();
	}
	audit_event_t ev = {.event = AUDIT_EV_KICK, .identity = "plc-7"};
	assert_int_equal(audit_write(a, &ev, T0), -1);
	assert_int_equal(audit_write(a, &ev, T0), -1);
	assert_int_equal(audit_errors(a), 2);
	assert_int_equal(audit_lines(a), 0);
	assert_non_null(strstr(audit_last_error(a), "audit write failed"));
	assert_int_equal(audit_write_limited(a, &ev, T0), -1);
	assert_int_equal(audit_flush(a), 0);
	audit_close(a);
}

static void test_bad_input(void **state)
{
	fixture_t *f = *state;
	char err[256];
	assert_null(audit_open(f->dir, err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(audit_open("/nonexistent-dir/x.log", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open"));
	assert_null(audit_open("", NULL, 0));
	audit_close(NULL);
	assert_int_equal(audit_write(NULL, NULL, 0), -1);
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	audit_event_t ev = {.event = "made-up"};
	assert_int_equal(audit_write(a, &ev, T0), -1);
	assert_int_equal(audit_write(a, NULL, T0), -1);
	assert_int_equal(audit_errors(a), 2);
	assert_int_equal(audit_flush(a), 0);
	audit_close(a);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 0077 & ~0040, 0); /* no more than 0640 */
}

/* Short writes through the test hook. */
static size_t hook_limit;
static ssize_t short_write(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len < hook_limit ? len : hook_limit);
}
static int failing_truncate(int fd, off_t len)
{
	(void)fd;
	(void)len;
	errno = EPERM;
	return -1;
}

static void test_short_write_undone(void **state)
{
	fixture_t *f = *state;
	write_n(f->path, 3, T0);
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	hook_limit = 40;
	audit_set_io_hooks(a, short_write, NULL);
	audit_event_t ev = {.event = AUDIT_EV_REVOKE, .identity = "plc-7"};
	assert_int_equal(audit_write(a, &ev, T0 + 10), -1);
	assert_int_equal(audit_errors(a), 1);
	assert_non_null(strstr(audit_last_error(a), "undone"));
	audit_set_io_hooks(a, NULL, NULL);
	assert_int_equal(audit_write(a, &ev, T0 + 11), 0);
	audit_close(a);
	audit_verify_result_t res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 4);
	assert_int_equal(res.restarts, 0);
}

static void test_short_write_kept(void **state)
{
	fixture_t *f = *state;
	write_n(f->path, 3, T0);
	char err[256];
	audit_t *a = audit_open(f->path, err, sizeof(err));
	assert_non_null(a);
	audit_set_io_hooks(a, short_write, failing_truncate);
	audit_event_t ev = {.event = AUDIT_EV_REVOKE, .identity = "plc-7"};
	hook_limit = 40;
	assert_int_equal(audit_write(a, &ev, T0 + 10), -1);
	/* The retry's chain-restart line is itself cut short. */
	hook_limit = 30;
	assert_int_equal(audit_write(a, &ev, T0 + 11), -1);
	/* A failure with nothing written changes nothing. */
	hook_limit = 0;
	assert_int_equal(audit_write(a, &ev, T0 + 12), -1);
	assert_int_equal(audit_errors(a), 3);
	audit_set_io_hooks(a, NULL, NULL);
	assert_int_equal(audit_write(a, &ev, T0 + 13), 0);
	assert_int_equal(audit_write(a, &ev, T0 + 14), 0);
	audit_close(a);
	audit_verify_result_t res;
	int rc = verify(f->path, &res);
	if(rc) {
		fail_msg("line %llu: %s", (unsigned long long)res.bad_line, res.why);
	}
	/* 3 good, 2 stray fragments, restart, 2 events. */
	assert_int_equal(res.lines, 8);
	assert_int_equal(res.restarts, 1);
	assert_int_equal(res.first_restart_line, 6);
	/* And the next open continues it cleanly. */
	write_n(f->path, 1, T0 + 20);
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 9);
}

static void test_verify_mem_cases(void **state)
{
	(void)state;
	audit_verify_result_t res;
	assert_int_equal(audit_verify_mem("", 0, &res), 0);
	assert_int_equal(audit_verify_mem("\n", 1, &res), 1);
	assert_int_equal(res.bad_line, 1);
	/* A file that starts with a chain-restart lost its beginning. */
	char line[512];
	audit_event_t ev = {.event = AUDIT_EV_CHAIN_RESTART, .reason = "x"};
	int n = audit_format_line(line, sizeof(line) - 1, &ev, NULL, T0, 1,
	                          "0000000000000000000000000000000000000000000000000000000000000000",
	                          NULL);
	assert_true(n > 0);
	line[n] = '\n';
	assert_int_equal(audit_verify_mem(line, (size_t)n + 1, &res), 1);
	assert_int_equal(res.bad_line, 1);
	/* Too small a buffer is refused, not overrun. */
	assert_int_equal(audit_format_line(line, 20, &ev, NULL, T0, 1, "00", NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_ts),
	    cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_file_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_edit_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncate_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_tail_restarts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaping_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_field_truncated, setup, teardown),
	    cmocka_unit_test(test_parser),
	    cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_limit_bounded, setup, teardown),
	    cmocka_unit_test(test_dev_full),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_write_undone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_write_kept, setup, teardown),
	    cmocka_unit_test(test_verify_mem_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
