/*
 * test_doctor_renewal.c — PKI-RENEWAL: device certificates that will lapse
 * without a renewal path.  Builds a scripts/pki-shaped directory (index.txt,
 * newcerts/) at run time with certificates from the EST core, some rows
 * marked as issued by plantgate-est, some by hand, and checks what the doctor
 * says at an injected time; and the freshness of the EST intermediate's CRL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doctor.h"
#include "est_csr.h"
#include "revocation.h"
#include "util.h"

#define NOW ((time_t)1795000000) /* 2026-11-18 */
#define DAY 86400

typedef struct fx {
	char dir[256];
	EVP_PKEY *cak;
	X509 *ca;
	FILE *index;
	int serial;
} fx_t;

static X509 *make_ca(EVP_PKEY *k)
{
	X509 *c = X509_new();
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
	                           (const unsigned char *)"Test CA", -1, -1, 0);
	X509_set_issuer_name(c, X509_get_subject_name(c));
	time_t t = NOW - 400 * DAY;
	X509_time_adj_ex(X509_getm_notBefore(c), 0, 0, &t);
	X509_time_adj_ex(X509_getm_notAfter(c), 3650, 0, &t);
	X509_set_pubkey(c, k);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, c, c, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(c, e, -1);
	X509_EXTENSION_free(e);
	X509_sign(c, k, EVP_sha256());
	return c;
}

static void fx_open(fx_t *f)
{
	memset(f, 0, sizeof(*f));
	util_strlcpy(f->dir, "/tmp/pg-renewal-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	char p[512];
	util_snprintf(p, sizeof(p), "%s/newcerts", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	util_snprintf(p, sizeof(p), "%s/index.txt", f->dir);
	f->index = fopen(p, "w");
	assert_non_null(f->index);
	f->cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	f->ca = make_ca(f->cak);
}

/* A device certificate for id issued `issued_days_ago` days before NOW,
 * valid `days`, recorded in index.txt as EST or hand issuance.  Returns its
 * serial (static buffer). */
static const char *fx_issue(fx_t *f, const char *id, long issued_days_ago, long days, bool est)
{
	static char serial[128];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509_REQ *req = X509_REQ_new();
	X509_REQ_set_pubkey(req, k);
	X509_REQ_sign(req, k, EVP_sha256());
	unsigned char sr[EST_SERIAL_BYTES] = {0};
	sr[15] = (unsigned char)++f->serial;
	est_subject_t s = {id, "hq", "l1"};
	char why[256], row[1024], p[512];
	X509 *c = est_issue(f->ca, f->cak, req, &s, NOW - issued_days_ago * DAY, days, sr, why,
	                    sizeof(why));
	assert_non_null(c);
	assert_int_equal(est_index_row(c, row, sizeof(row)), 0);
	if(!est) {
		char *m = strstr(row, "\test\t");
		assert_non_null(m);
		char rest[1024];
		util_strlcpy(rest, m + 5, sizeof(rest));
		util_snprintf(m, sizeof(row) - (size_t)(m - row), "\tunknown\t%s", rest);
	}
	fputs(row, f->index);
	est_serial_hex(c, serial, sizeof(serial));
	util_snprintf(p, sizeof(p), "%s/newcerts/%s.pem", f->dir, serial);
	FILE *o = fopen(p, "w");
	PEM_write_X509(o, c);
	fclose(o);
	X509_free(c);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return serial;
}

static void fx_close(fx_t *f)
{
	char cmd[600];
	if(f->index) {
		fclose(f->index);
	}
	util_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	X509_free(f->ca);
	EVP_PKEY_free(f->cak);
}

static void check(fx_t *f, const revocation_t *rev, doctor_report_t *r)
{
	fflush(f->index);
	memset(r, 0, sizeof(*r));
	doctor_renewal_check(f->dir, rev, NOW, r);
}

static bool reported(const doctor_report_t *r, const char *text)
{
	for(size_t i = 0; i < r->count; i++) {
		const doctor_finding_t *x = &r->items[i];
		if(strcmp(x->check->id, "PKI-RENEWAL") == 0 &&
		   ((x->title && strstr(x->title, text)) || (x->evidence && strstr(x->evidence, text)))) {
			return true;
		}
	}
	return false;
}

static void test_lapse_without_renewal_path(void **state)
{
	(void)state;
	fx_t f;
	fx_open(&f);
	fx_issue(&f, "est-ok", 30, 90, true);      /* 60 days left, renews itself */
	fx_issue(&f, "est-late", 87, 90, true);    /* 3 days left: did not renew */
	fx_issue(&f, "hand-soon", 345, 365, false); /* 20 days left, nothing renews it */
	fx_issue(&f, "hand-far", 100, 365, false);  /* 265 days left */
	fx_issue(&f, "renewed", 355, 365, false);   /* 10 days left, but ... */
	fx_issue(&f, "renewed", 10, 90, true);      /* ... renewed over EST: 80 days */
	fx_issue(&f, "expired", 400, 365, false);   /* history */
	const char *rs = fx_issue(&f, "revoked", 360, 365, false);
	char list[256], err[256];
	util_snprintf(list, sizeof(list), "serial %s\n", rs);
	revocation_t *rev = revocation_load_buffer("revoked.txt", list, strlen(list), err, sizeof(err));
	assert_non_null(rev);

	doctor_report_t r;
	check(&f, rev, &r);
	assert_int_equal(doctor_report_count(&r, "PKI-RENEWAL", DOCTOR_WARNING), 2);
	assert_true(reported(&r, "est-late renews over EST but has not renewed: 3 days left"));
	assert_true(reported(&r, "hand-soon will lapse in 20 days: nothing renews it"));
	assert_false(reported(&r, "CN=renewed"));
	assert_false(reported(&r, "CN=revoked"));
	assert_false(reported(&r, "CN=expired"));
	doctor_report_free(&r);

	/* Without the revocation list the revoked one (5 days left) is due too. */
	check(&f, NULL, &r);
	assert_int_equal(doctor_report_count(&r, "PKI-RENEWAL", DOCTOR_WARNING), 3);
	doctor_report_free(&r);
	revocation_free(rev);
	fx_close(&f);
}

static void test_summary(void **state)
{
	(void)state;
	fx_t f;
	fx_open(&f);
	fx_issue(&f, "a", 10, 90, true);
	fx_issue(&f, "b", 10, 90, true);
	doctor_report_t r;
	check(&f, NULL, &r);
	assert_int_equal(doctor_report_count(&r, "PKI-RENEWAL", DOCTOR_PASS), 1);
	assert_true(reported(&r, "(2 renew themselves over EST, 0 issued by hand)"));
	doctor_report_free(&r);
	fx_issue(&f, "c", 10, 365, false);
	check(&f, NULL, &r);
	assert_int_equal(doctor_report_count(&r, "PKI-RENEWAL", DOCTOR_PASS), 1);
	assert_true(reported(&r, "(2 renew themselves over EST, 1 issued by hand)"));
	doctor_report_free(&r);
	fx_close(&f);
}

/* crl-est.pem (and, with `in_all`, crl.pem) holding an intermediate CRL
 * signed `age` days before NOW, valid 30 days. */
static void write_crls(fx_t *f, long age, bool in_all)
{
	char p[512];
	X509_CRL *crl = est_crl_build(f->ca, f->cak, "", 0, NOW - age * DAY, 30, 1);
	assert_non_null(crl);
	util_snprintf(p, sizeof(p), "%s/crl-est.pem", f->dir);
	FILE *o = fopen(p, "w");
	PEM_write_X509_CRL(o, crl);
	fclose(o);
	util_snprintf(p, sizeof(p), "%s/crl.pem", f->dir);
	unlink(p);
	if(in_all) {
		o = fopen(p, "w");
		PEM_write_X509_CRL(o, crl);
		fclose(o);
	}
	X509_CRL_free(crl);
}

static void test_est_crl(void **state)
{
	(void)state;
	fx_t f;
	fx_open(&f);
	doctor_report_t r;
	check(&f, NULL, &r); /* no intermediate: nothing about its CRL */
	assert_int_equal(doctor_report_count(&r, "PKI-CRL", DOCTOR_PASS) +
	                     doctor_report_count(&r, "PKI-CRL", DOCTOR_CRITICAL),
	                 0);
	doctor_report_free(&r);
	static const struct {
		long age;
		bool in_all;
		doctor_sev_t want;
		const char *text;
	} cases[] = {
	    {10, true, DOCTOR_PASS, "current until"},
	    {10, false, DOCTOR_CRITICAL, "crl.pem lacks the EST intermediate's current CRL"},
	    {25, true, DOCTOR_WARNING, "in less than 7 days"},
	    {40, true, DOCTOR_CRITICAL, "out of date since"},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_crls(&f, cases[i].age, cases[i].in_all);
		check(&f, NULL, &r);
		assert_int_equal(doctor_report_count(&r, "PKI-CRL", cases[i].want), 1);
		const doctor_finding_t *x = doctor_report_get(&r, "PKI-CRL");
		assert_non_null(strstr(x->title, cases[i].text));
		doctor_report_free(&r);
	}
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lapse_without_renewal_path),
	    cmocka_unit_test(test_summary),
	    cmocka_unit_test(test_est_crl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
