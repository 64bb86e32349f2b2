/*
 * test_est.c — the EST core (enroll/): request decoding and checks, the
 * device profile of issued certificates, the index.txt rows scripts/pki reads,
 * the one-time token store, the configuration, re-enrollment eligibility and
 * rate limits.  Time and serial bytes are injected; keys are made here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "est_conf.h"
#include "est_csr.h"
#include "est_policy.h"
#include "est_token.h"
#include "identity.h"
#include "revocation.h"
#include "util.h"

#define NOW ((time_t)1795000000) /* 2026-11-18 11:06:40 UTC */

static EVP_PKEY *ec_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A CA certificate for key k named cn, signed by signer/signer_key (itself
 * when signer is NULL). */
static X509 *make_ca_by(EVP_PKEY *k, const char *cn, X509 *signer, EVP_PKEY *signer_key)
{
	X509 *c = X509_new();
	assert_non_null(c);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_NAME *nm = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, signer ? X509_get_subject_name(signer) : nm);
	time_t t = NOW - 86400;
	X509_time_adj_ex(X509_getm_notBefore(c), 0, 0, &t);
	X509_time_adj_ex(X509_getm_notAfter(c), 3650, 0, &t);
	X509_set_pubkey(c, k);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, signer ? signer : c, c, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
	assert_true(X509_sign(c, signer_key ? signer_key : k, EVP_sha256()) > 0);
	return c;
}

static X509 *make_ca(EVP_PKEY *k, const char *cn)
{
	return make_ca_by(k, cn, NULL, NULL);
}

static X509_REQ *make_req(EVP_PKEY *k, const char *cn)
{
	X509_REQ *r = X509_REQ_new();
	X509_REQ_set_version(r, 0);
	if(cn) {
		X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
		                           (const unsigned char *)cn, -1, -1, 0);
	}
	X509_REQ_set_pubkey(r, k);
	assert_true(X509_REQ_sign(r, k, EVP_sha256()) > 0);
	return r;
}

/* base64 of the DER request, with a line break every 64 characters. */
static char *req_b64(X509_REQ *r)
{
	unsigned char *der = NULL;
	int n = i2d_X509_REQ(r, &der);
	assert_true(n > 0);
	char *out = est_b64_lines(der, (size_t)n, NULL);
	assert_non_null(out);
	OPENSSL_free(der);
	return out;
}

static const unsigned char SERIAL[EST_SERIAL_BYTES] = {0xff, 1, 2, 3, 4, 5, 6, 7,
                                                       8,    9, 10, 11, 12, 13, 14, 15};

static void test_decode_base64_and_pem(void **state)
{
	(void)state;
	EVP_PKEY *k = ec_key();
	X509_REQ *r = make_req(k, "press-07");
	char *b = req_b64(r);
	char why[256] = "";
	X509_REQ *got = NULL;
	assert_int_equal(est_csr_decode(b, strlen(b), &got, why, sizeof(why)), EST_OK);
	assert_int_equal(X509_REQ_verify(got, k), 1);
	X509_REQ_free(got);

	BIO *m = BIO_new(BIO_s_mem());
	PEM_write_bio_X509_REQ(m, r);
	char *pem = NULL;
	long pl = BIO_get_mem_data(m, &pem);
	assert_int_equal(est_csr_decode(pem, (size_t)pl, &got, why, sizeof(why)), EST_OK);
	X509_REQ_free(got);
	BIO_free(m);

	assert_int_equal(est_csr_decode("not base64!", 11, &got, why, sizeof(why)), EST_E_MALFORMED);
	assert_null(got);
	assert_non_null(strstr(why, "base64"));
	assert_int_equal(est_csr_decode("aGVsbG8gd29ybGQ=", 16, &got, why, sizeof(why)),
	                 EST_E_MALFORMED);
	assert_non_null(strstr(why, "PKCS#10"));
	assert_int_equal(est_csr_decode("  \r\n", 4, &got, why, sizeof(why)), EST_E_MALFORMED);
	char *big = calloc(1, EST_BODY_MAX + 2);
	memset(big, 'A', EST_BODY_MAX + 1);
	assert_int_equal(est_csr_decode(big, EST_BODY_MAX + 1, &got, why, sizeof(why)),
	                 EST_E_MALFORMED);
	free(big);
	free(b);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
}

static void test_check_key_signature_identity(void **state)
{
	(void)state;
	char why[256];
	EVP_PKEY *k = ec_key();
	X509_REQ *r = make_req(k, NULL);
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_OK);
	X509_REQ_free(r);
	r = make_req(k, "press-07");
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_OK);
	assert_int_equal(est_csr_check(r, "press-08", why, sizeof(why)), EST_E_IDENTITY);
	assert_non_null(strstr(why, "press-08"));
	X509_REQ_free(r);

	/* A request signed by another key than the one it carries. */
	EVP_PKEY *k2 = ec_key();
	r = make_req(k, "press-07");
	X509_REQ_set_pubkey(r, k2);
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_E_SIGNATURE);
	X509_REQ_free(r);

	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	r = make_req(weak, "press-07");
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_E_KEYTYPE);
	assert_non_null(strstr(why, "1024"));
	X509_REQ_free(r);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	r = X509_REQ_new();
	X509_REQ_set_pubkey(r, ed);
	X509_REQ_sign(r, ed, NULL);
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_E_KEYTYPE);
	X509_REQ_free(r);
	EVP_PKEY *k384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	r = make_req(k384, NULL);
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_OK);
	X509_REQ_free(r);
	EVP_PKEY *k521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	r = make_req(k521, NULL);
	assert_int_equal(est_csr_check(r, "press-07", why, sizeof(why)), EST_E_KEYTYPE);
	X509_REQ_free(r);
	EVP_PKEY_free(k521);
	EVP_PKEY_free(k384);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
}

static X509 *issue(X509 *ca, EVP_PKEY *cak, EVP_PKEY *k, const char *id, const char *site,
                   const char *line, time_t now, long days)
{
	X509_REQ *r = make_req(k, "ignored-subject-is-checked-elsewhere");
	est_subject_t s = {id, site, line};
	char why[256];
	X509 *c = est_issue(ca, cak, r, &s, now, days, SERIAL, why, sizeof(why));
	X509_REQ_free(r);
	assert_non_null(c);
	return c;
}

static void test_issue_device_profile(void **state)
{
	(void)state;
	EVP_PKEY *cak = ec_key(), *k = ec_key();
	X509 *ca = make_ca(cak, "Plant Root CA");
	X509 *c = issue(ca, cak, k, "press-07", "osaka", "line-3", NOW, 90);

	char dn[256];
	X509_NAME_oneline(X509_get_subject_name(c), dn, sizeof(dn));
	assert_string_equal(dn, "/L=osaka/OU=line-3/CN=press-07");
	assert_int_equal(X509_verify(c, cak), 1);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c), k), 1);
	assert_int_equal(X509_check_issued(ca, c), X509_V_OK);

	identity_opts_t o = {.source = IDENTITY_SAN_URI, .max_len = 64};
	o.uri_prefixes[0] = "urn:plantgate:device:";
	char id[IDENTITY_MAX + 1], site[80], line[80];
	const char *why;
	assert_int_equal(identity_from_cert(c, &o, id, sizeof(id), &why), 0);
	assert_string_equal(id, "press-07");
	identity_cert_attrs(c, site, sizeof(site), line, sizeof(line));
	assert_string_equal(site, "osaka");
	assert_string_equal(line, "line-3");

	assert_true(X509_get_extension_flags(c) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(c), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(c), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_check_ca(c), 0);
	assert_non_null(X509_get0_subject_key_id(c));
	assert_non_null(X509_get0_authority_key_id(c));
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(c, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);

	assert_int_equal(X509_cmp_time(X509_get0_notBefore(c), &(time_t){NOW - 1}), 1);
	assert_int_equal(identity_check_dates(c, NOW + 89 * 86400, &why), 0);
	assert_int_not_equal(identity_check_dates(c, NOW + 91 * 86400, &why), 0);

	char serial[64];
	assert_int_equal(est_serial_hex(c, serial, sizeof(serial)), 0);
	assert_string_equal(serial, "7F0102030405060708090A0B0C0D0E0F");

	char row[512];
	assert_int_equal(est_index_row(c, row, sizeof(row)), 0);
	assert_string_equal(row, "V\t270216110640Z\t\t7F0102030405060708090A0B0C0D0E0F\test\t"
	                         "/L=osaka/OU=line-3/CN=press-07\n");
	X509_free(c);

	/* No site and line: subject CN only. */
	c = issue(ca, cak, k, "valve-2", "", "", NOW, 30);
	X509_NAME_oneline(X509_get_subject_name(c), dn, sizeof(dn));
	assert_string_equal(dn, "/CN=valve-2");

	/* certs-only PKCS#7, as /cacerts and the enroll responses carry it. */
	X509 *both[2] = {c, ca};
	size_t bl = 0;
	char *b = est_certs_only_b64(both, 2, &bl);
	assert_non_null(b);
	assert_int_equal(strlen(b), bl);
	X509_free(c);
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(cak);
	free(b);
}

static void test_index_revoke(void **state)
{
	(void)state;
	const char idx[] = "V\t270216232000Z\t\tAA\tunknown\t/CN=a\n"
	                   "V\t270216232000Z\t\tBB\tunknown\t/L=x/CN=b\n";
	char *r = est_index_revoke(idx, strlen(idx), "BB", NOW);
	assert_non_null(r);
	assert_string_equal(r, "V\t270216232000Z\t\tAA\tunknown\t/CN=a\n"
	                       "R\t270216232000Z\t261118110640Z,superseded\tBB\tunknown\t/L=x/CN=b\n");
	free(r);
	assert_null(est_index_revoke(idx, strlen(idx), "CC", NOW));
	assert_null(est_index_revoke(idx, strlen(idx), "B", NOW));
}

static void test_index_resendable(void **state)
{
	(void)state;
	const char one[] = "R\t270216110640Z\t261118110640Z\tAA\test\t/CN=a\nV\t270216110640Z\t\tBB\test\t/CN=b\n";
	assert_int_equal(est_index_status(one, strlen(one), "AA"), 'R');
	assert_int_equal(est_index_status(one, strlen(one), "BB"), 'V');
	assert_int_equal(est_index_status(one, strlen(one), "B"), 0);
	const char idx[] = "R\t270216110640Z\t261118110640Z,superseded\tAA\tunknown\t/L=x/CN=press-07\n"
	                   "R\t270516110640Z\t261118110640Z,superseded\tBB\test\t/CN=press-07\n"
	                   "V\t270816110640Z\t\tCC\test\t/L=x/OU=y/CN=press-07\n"
	                   "V\t270916110640Z\t\tDD\test\t/CN=press-070\n"
	                   "R\t270216110640Z\t261118110640Z,keyCompromise\tEE\test\t/CN=valve-1\n"
	                   "V\t270816110640Z\t\tFF\test\t/CN=valve-1\n"
	                   "R\t270216110640Z\t261118110640Z,superseded\t11\test\t/CN=hand-1\n"
	                   "V\t270816110640Z\t\t22\tunknown\t/CN=hand-1\n";
	char newest[64];
	/* The first renewal of a scripts/pki certificate, and a later one. */
	assert_true(est_index_resendable(idx, strlen(idx), "AA", "press-07", newest, sizeof(newest)));
	assert_string_equal(newest, "CC"); /* not press-070's DD */
	assert_true(est_index_resendable(idx, strlen(idx), "BB", "press-07", newest, sizeof(newest)));
	assert_string_equal(newest, "CC");
	assert_false(est_index_resendable(idx, strlen(idx), "CC", "press-07", newest, sizeof(newest)));
	assert_false(est_index_resendable(idx, strlen(idx), "AA", "press-0", newest, sizeof(newest)));
	/* Revoked for another reason; or the newest was issued by hand. */
	assert_false(est_index_resendable(idx, strlen(idx), "EE", "valve-1", newest, sizeof(newest)));
	assert_false(est_index_resendable(idx, strlen(idx), "11", "hand-1", newest, sizeof(newest)));
}

static void test_crl_build(void **state)
{
	(void)state;
	EVP_PKEY *cak = ec_key();
	X509 *ca = make_ca(cak, "Plant EST CA");
	const char idx[] = "V\t270216110640Z\t\tAA01\test\t/CN=a\n"
	                   "R\t270216110640Z\t261118110640Z,superseded\t7F01\test\t/CN=b\n"
	                   "R\t270216110640Z\t261118110640Z,keyCompromise\t7F02\test\t/CN=c\n"
	                   "R\t270216110640Z\t261118110640Z\t7F03\test\t/CN=d\n"
	                   "R\t270216110640Z\t261118110640Z,superseded\t42D5\tunknown\t/CN=e\n"
	                   "garbage line\n";
	X509_CRL *crl = est_crl_build(ca, cak, idx, strlen(idx), NOW, 30, 7);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_verify(crl, cak), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)), 0);
	STACK_OF(X509_REVOKED) *rv = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(rv), 3); /* est rows only, revoked only */
	static const struct {
		long serial;
		int reason; /* -1: no reason extension */
	} want[] = {{0x7F01, CRL_REASON_SUPERSEDED}, {0x7F02, CRL_REASON_KEY_COMPROMISE}, {0x7F03, -1}};
	for(size_t i = 0; i < 3; i++) {
		ASN1_INTEGER *s = ASN1_INTEGER_new();
		ASN1_INTEGER_set(s, want[i].serial);
		X509_REVOKED *r = NULL;
		assert_int_equal(X509_CRL_get0_by_serial(crl, &r, s), 1);
		ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
		assert_int_equal(e ? (int)ASN1_ENUMERATED_get(e) : -1, want[i].reason);
		ASN1_ENUMERATED_free(e);
		ASN1_INTEGER_free(s);
	}
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	assert_int_equal(ASN1_INTEGER_get(n), 7);
	ASN1_INTEGER_free(n);
	assert_int_equal(X509_cmp_time(X509_CRL_get0_nextUpdate(crl), &(time_t){NOW + 29 * 86400}), 1);
	X509_CRL_free(crl);
	X509_free(ca);
	EVP_PKEY_free(cak);
}

static void hash_of(const char *tok, char out[65])
{
	unsigned char md[32];
	envelope_sha256(tok, strlen(tok), md);
	util_hex(md, 32, out);
}

static void test_tokens(void **state)
{
	(void)state;
	char h1[65], h2[65], buf[1024], err[256], why[256];
	hash_of("secret-one", h1);
	hash_of("secret-two", h2);
	util_snprintf(buf, sizeof(buf),
	              "# comment\ntoken %s press-07 osaka line-3 %lld unused\n"
	              "token %s valve-2 - - %lld unused\n",
	              h1, (long long)NOW + 3600, h2, (long long)NOW - 1);
	est_tokens_t t;
	assert_int_equal(est_tokens_parse("tok", buf, strlen(buf), &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.v[1].site, "");

	size_t idx = 99;
	assert_int_equal(est_tokens_redeem(&t, "press-07", "nope", NOW, &idx, why, sizeof(why)),
	                 EST_E_TOKEN);
	assert_int_equal(est_tokens_redeem(&t, "press-08", "secret-one", NOW, &idx, why, sizeof(why)),
	                 EST_E_IDENTITY);
	assert_false(t.v[0].used);
	assert_int_equal(est_tokens_redeem(&t, "valve-2", "secret-two", NOW, &idx, why, sizeof(why)),
	                 EST_E_TOKEN);
	assert_non_null(strstr(why, "expired"));
	assert_int_equal(est_tokens_redeem(&t, "press-07", "secret-one", NOW, &idx, why, sizeof(why)),
	                 EST_OK);
	assert_int_equal(idx, 0);
	assert_true(t.v[0].used);
	assert_int_equal(est_tokens_redeem(&t, "press-07", "secret-one", NOW, &idx, why, sizeof(why)),
	                 EST_E_REPLAY);

	/* What it was used for is kept, and a replay names the token. */
	util_strlcpy(t.v[0].serial, "7F0102", sizeof(t.v[0].serial));
	idx = 99;
	assert_int_equal(est_tokens_redeem(&t, "press-07", "secret-one", NOW, &idx, why, sizeof(why)),
	                 EST_E_REPLAY);
	assert_int_equal(idx, 0);
	/* Formatting round-trips, the used flag and serial included. */
	size_t fl;
	char *f = est_tokens_format(&t, &fl);
	est_tokens_t t2;
	assert_int_equal(est_tokens_parse("fmt", f, fl, &t2, err, sizeof(err)), 0);
	assert_int_equal(t2.n, 2);
	assert_true(t2.v[0].used);
	assert_string_equal(t2.v[0].serial, "7F0102");
	assert_non_null(strstr(f, " used:7F0102\n"));
	assert_string_equal(t2.v[0].line, "line-3");
	assert_int_equal(est_tokens_redeem(&t2, "press-07", "secret-one", NOW, &idx, why, sizeof(why)),
	                 EST_E_REPLAY);
	free(f);
	est_tokens_free(&t2);
	est_tokens_free(&t);

	static const struct {
		const char *line;
		const char *want;
	} bad[] = {
	    {"token abc press-07 - - 1 unused\n", "tok:1: the hash"},
	    {"token %s press+07 - - 1 unused\n", "tok:1: identity is not a valid name"},
	    {"token %s press-07 a/b - 1 unused\n", "tok:1: site is not a valid name"},
	    {"token %s press-07 - - soon unused\n", "tok:1: expiry"},
	    {"token %s press-07 - - 1 maybe\n", "tok:1: state"},
	    {"token %s press-07 - - 1 used:7f01\n", "tok:1: state"},
	    {"token %s press-07 - - 1 used:\n", "tok:1: state"},
	    {"token %s press-07 - - 1\n", "tok:1: 6 words"},
	    {"ticket %s press-07 - - 1 unused\n", "tok:1: unknown keyword"},
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* "%s" in a line stands for the valid hash h1. */
		const char *at = strstr(bad[i].line, "%s");
		if(at) {
			util_snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - bad[i].line), bad[i].line, h1,
			              at + 2);
		} else {
			util_strlcpy(buf, bad[i].line, sizeof(buf));
		}
		assert_int_equal(est_tokens_parse("tok", buf, strlen(buf), &t, err, sizeof(err)), -1);
		assert_non_null(strstr(err, bad[i].want));
		assert_int_equal(t.n, 0);
	}
	util_snprintf(buf, sizeof(buf), "token %s a - - 1 unused\ntoken %s b - - 1 unused\n", h1, h1);
	assert_int_equal(est_tokens_parse("tok", buf, strlen(buf), &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tok:2: duplicate"));
}

static void test_conf(void **state)
{
	(void)state;
	est_conf_t c;
	char err[256];
	const char ok[] = "listen 127.0.0.1:8443\ntls_cert /p/issued/est.crt\ntls_key /p/private/est.key\n"
	                  "pki_dir /p\nissuer_key /e/issuer.key\nold_cert expire\ncert_days 30\n"
	                  "rate_identity 3 10m\n";
	assert_int_equal(est_conf_parse("est.conf", ok, strlen(ok), &c, err, sizeof(err)), 0);
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 8443);
	assert_string_equal(c.ca_cert, "/p/ca.crt");
	assert_string_equal(c.issuer_cert, "/p/ca.crt"); /* no intermediate: the root signs */
	assert_string_equal(c.tokens, "/p/enroll-tokens.txt");
	assert_int_equal(c.old_cert, EST_OLD_EXPIRE);
	assert_int_equal(c.cert_days, 30);
	assert_int_equal(c.rate_identity, 3);
	assert_int_equal(c.rate_identity_ms, 600000);
	assert_int_equal(c.rate_address, 30);

	const char dflt[] = "listen h:1\ntls_cert /c\ntls_key /k\npki_dir /p\nissuer_key /i\n";
	assert_int_equal(est_conf_parse("est.conf", dflt, strlen(dflt), &c, err, sizeof(err)), 0);
	assert_int_equal(c.old_cert, EST_OLD_REVOKE); /* one identity, one certificate in force */
	assert_int_equal(c.cert_days, 90);

	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
	    {"listen 8443\n", "est.conf:1: `listen` wants HOST:PORT"},
	    {"cert_days 0\n", "est.conf:1: `cert_days`"},
	    {"old_cert keep\n", "est.conf:1: `old_cert`"},
	    {"pki_dir relative\n", "est.conf:1: `pki_dir` needs an absolute path"},
	    {"cert_days 1\ncert_days 2\n", "est.conf:2: `cert_days` is duplicate"},
	    {"rate_address 5\n", "est.conf:1: `rate_address` takes 2 values"},
	    {"rate_address 5 10ms\n", "est.conf:1: `rate_address` wants COUNT PERIOD"},
	    {"frobnicate yes\n", "est.conf:1: unknown directive"},
	    {"listen 127.0.0.1:1\n", "`tls_cert` is required"},
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(est_conf_parse("est.conf", bad[i].text, strlen(bad[i].text), &c, err,
		                                sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, bad[i].want));
	}
}

static void test_limits(void **state)
{
	(void)state;
	est_limits_t *l = est_limits_new();
	for(int i = 0; i < 3; i++) {
		assert_true(est_limits_take(l, "id:a", 3, 60000, 1000));
	}
	assert_false(est_limits_take(l, "id:a", 3, 60000, 1000));
	assert_true(est_limits_take(l, "id:b", 3, 60000, 1000)); /* keys are separate */
	assert_false(est_limits_take(l, "id:a", 3, 60000, 1000 + 19000));
	assert_true(est_limits_take(l, "id:a", 3, 60000, 1000 + 20000)); /* one refilled */
	est_limits_free(l);
}

static void test_reenroll_check(void **state)
{
	(void)state;
	EVP_PKEY *cak = ec_key(), *k = ec_key(), *otherk = ec_key();
	X509 *ca = make_ca(cak, "Plant Root CA");
	X509 *other = make_ca(otherk, "Plant Root CA");
	X509 *c = issue(ca, cak, k, "press-07", "osaka", "line-3", NOW, 90);
	est_peer_t p;
	char why[256];
	assert_int_equal(est_reenroll_check(c, NULL, ca, NULL, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_OK);
	assert_string_equal(p.identity, "press-07");
	assert_string_equal(p.site, "osaka");
	assert_string_equal(p.line, "line-3");
	assert_string_equal(p.serial, "7F0102030405060708090A0B0C0D0E0F");

	assert_int_equal(est_reenroll_check(NULL, NULL, ca, NULL, NULL, NOW, &p, why, sizeof(why)),
	                 EST_E_CERT);
	assert_int_equal(est_reenroll_check(c, NULL, ca, NULL, NULL, NOW + 91 * 86400, &p, why, sizeof(why)),
	                 EST_E_CERT);
	assert_non_null(strstr(why, "new token"));
	assert_false(p.revoked);
	/* A CA certificate is never a device, even one the issuer signed. */
	assert_int_equal(est_reenroll_check(ca, NULL, ca, NULL, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_E_CERT);
	/* Same name, other key: a look-alike CA is not the issuer. */
	assert_int_equal(est_reenroll_check(c, NULL, other, NULL, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_E_CERT);
	assert_non_null(strstr(why, "does not verify"));

	char list[256], err[256];
	util_snprintf(list, sizeof(list), "serial %s\n", "7F0102030405060708090A0B0C0D0E0F");
	revocation_t *rev = revocation_load_buffer("revoked.txt", list, strlen(list), err, sizeof(err));
	assert_non_null(rev);
	assert_int_equal(est_reenroll_check(c, NULL, ca, NULL, rev, NOW + 60, &p, why, sizeof(why)),
	                 EST_E_CERT);
	assert_non_null(strstr(why, "revoked"));
	assert_true(p.revoked); /* only revoked: identity and serial are known */
	assert_string_equal(p.identity, "press-07");
	revocation_free(rev);
	/* A certificate from plantgate-est's intermediate renews against the
	 * root with the intermediate as a step; without it, it does not verify. */
	EVP_PKEY *ik = ec_key();
	X509 *inter = make_ca_by(ik, "Plant EST CA", ca, cak);
	X509 *ic = issue(inter, ik, k, "press-08", "osaka", "line-3", NOW, 90);
	assert_int_equal(est_reenroll_check(ic, NULL, ca, inter, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_OK);
	assert_string_equal(p.identity, "press-08");
	assert_int_equal(est_reenroll_check(ic, NULL, ca, NULL, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_E_CERT);
	/* ... or when the device sends it in its chain. */
	STACK_OF(X509) *chain = sk_X509_new_null();
	sk_X509_push(chain, inter);
	assert_int_equal(est_reenroll_check(ic, chain, ca, NULL, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_OK);
	sk_X509_free(chain);
	/* A root-issued certificate still renews when an intermediate issues. */
	assert_int_equal(est_reenroll_check(c, NULL, ca, inter, NULL, NOW + 60, &p, why, sizeof(why)),
	                 EST_OK);
	X509_free(ic);
	X509_free(inter);
	EVP_PKEY_free(ik);
	X509_free(other);
	X509_free(c);
	X509_free(ca);
	EVP_PKEY_free(otherk);
	EVP_PKEY_free(k);
	EVP_PKEY_free(cak);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_base64_and_pem),
	    cmocka_unit_test(test_check_key_signature_identity),
	    cmocka_unit_test(test_issue_device_profile),
	    cmocka_unit_test(test_index_revoke),
	    cmocka_unit_test(test_crl_build),
	    cmocka_unit_test(test_index_resendable),
	    cmocka_unit_test(test_tokens),
	    cmocka_unit_test(test_conf),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_reenroll_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
