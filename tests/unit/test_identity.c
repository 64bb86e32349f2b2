/*
 * test_identity.c — identity extraction and validation from certificates
 * made in memory with OpenSSL (no files, no broker): CN and SAN sources,
 * hostile identities, dates against an injected clock, client-id binding,
 * issuer pinning, revocation list parsing and matching, token buckets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "ratelimit.h"
#include "revocation.h"

static EVP_PKEY *ca_key, *leaf_key;
static X509 *ca_cert;

static EVP_PKEY *new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void add_ext(X509 *c, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, c, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate with the given subject entries ("CN", value, ...), SAN (may
 * be NULL), validity offsets from now in seconds, signed by `signer`. */
static X509 *make_cert(const char *const *subject, const char *san, long from, long to, X509 *issuer,
                       EVP_PKEY *signer, EVP_PKEY *pub, long serial)
{
	X509 *c = X509_new();
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_gmtime_adj(X509_getm_notBefore(c), from);
	X509_gmtime_adj(X509_getm_notAfter(c), to);
	X509_set_pubkey(c, pub);
	X509_NAME *n = X509_get_subject_name(c);
	for(size_t i = 0; subject[i]; i += 2) {
		X509_NAME_add_entry_by_txt(n, subject[i], MBSTRING_UTF8, (const unsigned char *)subject[i + 1], -1, -1, 0);
	}
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
	if(san) {
		add_ext(c, issuer ? issuer : c, NID_subject_alt_name, san);
	}
	assert_true(X509_sign(c, signer, EVP_sha256()) > 0);
	return c;
}

static X509 *leaf(const char *cn, const char *san)
{
	const char *subj[] = {"CN", cn, NULL};
	return make_cert(subj, san, -60, 3600, ca_cert, ca_key, leaf_key, 42);
}

static int setup(void **state)
{
	ca_key = new_key();
	leaf_key = new_key();
	const char *subj[] = {"CN", "Test CA", NULL};
	ca_cert = make_cert(subj, NULL, -60, 86400, NULL, ca_key, ca_key, 1);
	return 0;
}

static int teardown(void **state)
{
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	return 0;
}

static identity_opts_t opts(identity_source_t src)
{
	identity_opts_t o = {.source = src, .max_len = 64, .binding = BINDING_EQUAL};
	o.uri_prefixes[0] = "urn:plantgate:device:";
	return o;
}

static void test_cn_identity(void **state)
{
	char id[IDENTITY_MAX + 1];
	const char *why = NULL;
	identity_opts_t o = opts(IDENTITY_CN);
	X509 *c = leaf("press-07", NULL);
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), 0);
	assert_string_equal(id, "press-07");
	X509_free(c);
	assert_int_equal(identity_from_cert(NULL, &o, id, sizeof(id), &why), -1);
	assert_string_equal(why, "no client certificate");
}

static void test_hostile_identities_refused(void **state)
{
	static const char *const bad[] = {"+", "#", "a/b", "$SYS", "dev+1", "sensor#", " lead", "trail ",
	                                  "tab\tin", "nl\nin", "del\x7f", "c1\xc2\x85", "bad\xff" "utf8"};
	char id[IDENTITY_MAX + 1];
	const char *why;
	identity_opts_t o = opts(IDENTITY_CN);
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_false(identity_valid(bad[i], strlen(bad[i]), 64, &why));
		assert_non_null(why);
	}
	assert_false(identity_valid("", 0, 64, &why));
	assert_false(identity_valid("a\0b", 3, 64, &why));
	char longid[80];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[79] = '\0';
	assert_false(identity_valid(longid, 79, 64, &why));
	assert_true(identity_valid(longid, 64, 64, &why));
	assert_true(identity_valid("sensor-01.line_2:x", 18, 64, &why));
	/* The rule is scripts/pki's: non-ASCII letters are refused too. */
	assert_false(identity_valid("センサー", strlen("センサー"), 64, &why));
	/* And through a real certificate. */
	X509 *c = leaf("a/b", NULL);
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), -1);
	X509_free(c);
}

static void test_two_cns_are_ambiguous(void **state)
{
	char id[IDENTITY_MAX + 1];
	const char *why = NULL;
	identity_opts_t o = opts(IDENTITY_CN);
	const char *subj[] = {"CN", "sensor-1", "CN", "admin", NULL};
	X509 *c = make_cert(subj, NULL, -60, 3600, ca_cert, ca_key, leaf_key, 7);
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), -1);
	assert_non_null(strstr(why, "more than one"));
	X509_free(c);
}

static void test_san_uri_and_dns(void **state)
{
	char id[IDENTITY_MAX + 1];
	const char *why = NULL;
	identity_opts_t o = opts(IDENTITY_SAN_URI);
	X509 *c = leaf("ignored", "URI:https://example.com/x,URI:urn:plantgate:device:press-07");
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), 0);
	assert_string_equal(id, "press-07");
	X509_free(c);

	c = leaf("x", "URI:urn:plantgate:device:a,URI:urn:plantgate:device:b");
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), -1);
	assert_non_null(strstr(why, "more than one"));
	X509_free(c);

	c = leaf("x", "URI:urn:plantgate:device:a/b");
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), -1);
	X509_free(c);

	c = leaf("x", "URI:urn:other:press-07");
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), -1);
	assert_non_null(strstr(why, "prefix"));
	X509_free(c);

	identity_opts_t d = opts(IDENTITY_SAN_DNS);
	c = leaf("x", "DNS:cam-12.plant.lan");
	assert_int_equal(identity_from_cert(c, &d, id, sizeof(id), &why), 0);
	assert_string_equal(id, "cam-12.plant.lan");
	X509_free(c);
	c = leaf("x", NULL);
	assert_int_equal(identity_from_cert(c, &d, id, sizeof(id), &why), -1);
	X509_free(c);
}

static void test_dates_with_injected_clock(void **state)
{
	const char *why = NULL;
	X509 *c = leaf("d", NULL); /* valid from now-60 s to now+3600 s */
	time_t now = time(NULL);
	assert_int_equal(identity_check_dates(c, now, &why), 0);
	assert_int_equal(identity_check_dates(c, now + 7200, &why), -1);
	assert_non_null(strstr(why, "expired"));
	assert_int_equal(identity_check_dates(c, now - 7200, &why), -1);
	assert_non_null(strstr(why, "not yet valid"));
	X509_free(c);
}

/* printf %b escapes of tests/vectors/identities.txt: \t \n \\ \xHH. */
static size_t unescape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for(size_t i = 0; in[i] && o + 1 < outlen; i++) {
		if(in[i] != '\\' || !in[i + 1]) {
			out[o++] = in[i];
		} else if(in[i + 1] == 't' || in[i + 1] == 'n' || in[i + 1] == '\\') {
			out[o++] = in[i + 1] == 't' ? '\t' : in[i + 1] == 'n' ? '\n' : '\\';
			i++;
		} else if(in[i + 1] == 'x' && in[i + 2] && in[i + 3]) {
			char hex[3] = {in[i + 2], in[i + 3], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 3;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
	return o;
}

/* The vectors scripts/pki is tested against too (tests/pki/test_pki.sh). */
static void test_identity_vectors_shared_with_pki(void **state)
{
	char path[1024], line[512], value[512];
	const char *src = getenv("PG_SOURCE_DIR");
	snprintf(path, sizeof(path), "%s/tests/vectors/identities.txt", src ? src : ".");
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	int n = 0;
	while(fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *tab = strchr(line, '\t');
		if(line[0] == '#' || !tab) {
			continue;
		}
		*tab = '\0';
		size_t len = unescape(tab + 1, value, sizeof(value));
		const char *why = NULL;
		bool ok = identity_valid(value, len, 64, &why);
		if(ok != !strcmp(line, "accept")) {
			fail_msg("identities.txt: %s \"%s\": identity_valid says %s (%s)", line, tab + 1,
			         ok ? "accept" : "refuse", why ? why : "");
		}
		n++;
	}
	fclose(f);
	assert_true(n >= 30);
}

static void test_ca_certificates_are_not_identities(void **state)
{
	const char *why = NULL;
	X509 *c = leaf("plain", NULL);
	assert_int_equal(identity_check_not_ca(c, &why), 0);
	X509_free(c);
	static const struct {
		int nid;
		const char *value, *why;
	} ca[] = {
		{NID_basic_constraints, "critical,CA:TRUE", "CA:TRUE"},
		{NID_key_usage, "critical,digitalSignature,keyCertSign", "keyCertSign"},
	};
	for(size_t i = 0; i < sizeof(ca) / sizeof(ca[0]); i++) {
		c = leaf("ca-ish", NULL);
		add_ext(c, ca_cert, ca[i].nid, ca[i].value);
		X509_sign(c, ca_key, EVP_sha256());
		assert_int_equal(identity_check_not_ca(c, &why), -1);
		assert_non_null(strstr(why, ca[i].why));
		X509_free(c);
	}
}

static void test_clientid_binding(void **state)
{
	assert_true(identity_clientid_ok("press-07", "press-07", BINDING_EQUAL));
	assert_false(identity_clientid_ok("press-07", "press-07-a", BINDING_EQUAL));
	assert_false(identity_clientid_ok("press-07", "press-0", BINDING_EQUAL));
	assert_true(identity_clientid_ok("press-07", "press-07-a", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-07-", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-070", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-08", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", NULL, BINDING_PREFIX));
	/* The suffix follows the identity rule. */
	assert_true(identity_clientid_ok("press-07", "press-07-a.b_c:1", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-07-a b", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-07-a\"b", BINDING_PREFIX));
	assert_false(identity_clientid_ok("press-07", "press-07-a/b", BINDING_PREFIX));
}

static void test_attrs_from_subject(void **state)
{
	char site[65], line[65];
	const char *subj[] = {"L", "hq", "OU", "line1", "CN", "s1", NULL};
	X509 *c = make_cert(subj, NULL, -60, 3600, ca_cert, ca_key, leaf_key, 9);
	identity_cert_attrs(c, site, sizeof(site), line, sizeof(line));
	assert_string_equal(site, "hq");
	assert_string_equal(line, "line1");
	X509_free(c);
	const char *evil[] = {"L", "#", "OU", "a/b", "CN", "s1", NULL};
	c = make_cert(evil, NULL, -60, 3600, ca_cert, ca_key, leaf_key, 10);
	identity_cert_attrs(c, site, sizeof(site), line, sizeof(line));
	assert_string_equal(site, "");
	assert_string_equal(line, "");
	X509_free(c);
}

static void test_issuer_pinning(void **state)
{
	EVP_PKEY *other_key = new_key();
	const char *subj[] = {"CN", "Test CA", NULL}; /* same name, different key */
	X509 *other_ca = make_cert(subj, NULL, -60, 86400, NULL, other_key, other_key, 1);
	X509 *good = leaf("a", NULL);
	X509 *forged = make_cert((const char *[]){"CN", "a", NULL}, NULL, -60, 3600, other_ca, other_key, leaf_key, 5);
	X509 *pins[] = {ca_cert};
	assert_true(identity_issuer_pinned(good, pins, 1));
	assert_false(identity_issuer_pinned(forged, pins, 1));
	X509 *both[] = {other_ca, ca_cert};
	assert_true(identity_issuer_pinned(forged, both, 2));
	X509_free(good);
	X509_free(forged);
	X509_free(other_ca);
	EVP_PKEY_free(other_key);
}

static void test_revocation_list(void **state)
{
	char err[256];
	const char *why = NULL;
	const char *text = "# 2026-11-29T00:00:00Z revoked press-07 reason=keyCompromise\n"
	                   "serial 2a\n"
	                   "sha256 AB:CD:000000000000000000000000000000000000000000000000000000000000\n"
	                   "identity thief-1\n";
	revocation_t *r = revocation_load_buffer("revoked.txt", text, strlen(text), err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(revocation_count(r), 3);
	X509 *c = leaf("press-07", NULL); /* serial 42 = 0x2A */
	char serial[68], fp[65];
	assert_int_equal(revocation_cert_ids(c, serial, sizeof(serial), fp), 0);
	assert_string_equal(serial, "2A");
	assert_true(revocation_is_revoked(r, c, "press-07", serial, fp, &why));
	assert_non_null(strstr(why, "serial"));
	assert_true(revocation_is_revoked(r, NULL, "thief-1", "01", "", &why));
	assert_false(revocation_is_revoked(r, NULL, "press-08", "01", fp, &why));
	assert_true(revocation_is_revoked(r, NULL, "x", "", "abcd00000000000000000000000000000000000000000000000000000000000000", &why) == false);
	assert_true(revocation_is_revoked(r, NULL, "x", "", "abcd000000000000000000000000000000000000000000000000000000000000", &why));
	X509_free(c);
	revocation_free(r);

	static const char *const bad[] = {"serial zz\n", "sha256 abc\n", "identity a/b\n", "thumbprint 12\n",
	                                  "serial\n", "serial 1 2\n"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = revocation_load_buffer("bad.txt", bad[i], strlen(bad[i]), err, sizeof(err));
		assert_null(r);
		assert_non_null(strstr(err, "bad.txt:1: "));
	}
	assert_null(revocation_load("/nonexistent/revoked.txt", NULL, err, sizeof(err)));
	revocation_free(NULL);
}

static void test_token_bucket(void **state)
{
	ratelimit_bucket_t b = {0};
	/* 10/s with a burst of 20: 20 pass at once, then one every 100 ms. */
	int passed = 0;
	for(int i = 0; i < 30; i++) {
		passed += ratelimit_take(&b, 10, 20, 1, 1000);
	}
	assert_int_equal(passed, 20);
	assert_false(ratelimit_take(&b, 10, 20, 1, 1050));
	assert_true(ratelimit_take(&b, 10, 20, 1, 1100));
	assert_true(ratelimit_take(&b, 10, 20, 5, 1600));
	/* Unlimited */
	ratelimit_bucket_t u = {0};
	for(int i = 0; i < 1000; i++) {
		assert_true(ratelimit_take(&u, 0, 0, 1e6, 5));
	}
	/* A message larger than the burst can still pass an idle bucket. */
	ratelimit_bucket_t big = {0};
	assert_true(ratelimit_take(&big, 100, 100, 1000, 1));
	assert_false(ratelimit_take(&big, 100, 100, 1000, 2));

	ratelimit_strikes_t s = {0};
	assert_false(ratelimit_strike(&s, 3, 10000, 1));
	assert_false(ratelimit_strike(&s, 3, 10000, 2));
	assert_true(ratelimit_strike(&s, 3, 10000, 3));
	assert_false(ratelimit_strike(&s, 3, 10000, 20000)); /* window passed: count restarts */
	assert_false(ratelimit_strike(&s, 0, 10000, 20001));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cn_identity),
		cmocka_unit_test(test_hostile_identities_refused),
		cmocka_unit_test(test_two_cns_are_ambiguous),
		cmocka_unit_test(test_san_uri_and_dns),
		cmocka_unit_test(test_dates_with_injected_clock),
		cmocka_unit_test(test_clientid_binding),
		cmocka_unit_test(test_identity_vectors_shared_with_pki),
		cmocka_unit_test(test_ca_certificates_are_not_identities),
		cmocka_unit_test(test_attrs_from_subject),
		cmocka_unit_test(test_issuer_pinning),
		cmocka_unit_test(test_revocation_list),
		cmocka_unit_test(test_token_bucket),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
