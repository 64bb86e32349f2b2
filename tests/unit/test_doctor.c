/*
 * test_doctor.c — cmocka tests of plantgate-doctor's checks (pg_doctor_core).
 *
 * Every check has a weak fixture that triggers it and a good fixture that
 * passes it (tests/fixtures/doctor/{weak,good}/).  The PKI fixtures are
 * public certificates and CRLs made once with scripts/pki (no keys), judged
 * at fixed dates with an injected `now`; file modes, audit trails and pid
 * files are made in a temporary directory by the tests themselves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "doctor.h"
#include "util.h"

static char fixtures[4096];
static char tmpdir[4096];

static const char *fx(const char *rel)
{
	static char buf[8][4096];
	static int at;
	at = (at + 1) % 8;
	util_snprintf(buf[at], sizeof(buf[at]), "%s/%s", fixtures, rel);
	return buf[at];
}

static const char *tmp(const char *rel)
{
	static char buf[8][4096];
	static int at;
	at = (at + 1) % 8;
	util_snprintf(buf[at], sizeof(buf[at]), "%s/%s", tmpdir, rel);
	return buf[at];
}

static time_t day(int y, int m, int d)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	return timegm(&tm);
}

static void dump(const doctor_report_t *r)
{
	for(size_t i = 0; i < r->count; i++) {
		fprintf(stderr, "  %-8s %-20s %s | %s\n", doctor_checks_sev_name(r->items[i].sev), r->items[i].check->id,
		        r->items[i].title, r->items[i].evidence ? r->items[i].evidence : "");
	}
}

/* At least one finding of id with severity sev. */
static void expect(const doctor_report_t *r, const char *id, doctor_sev_t sev)
{
	if(doctor_report_count(r, id, sev) == 0) {
		fprintf(stderr, "expected %s %s in:\n", doctor_checks_sev_name(sev), id);
		dump(r);
		fail();
	}
}

/* No finding of id worse than sev. */
static void at_most(const doctor_report_t *r, const char *id, doctor_sev_t sev)
{
	for(int s = sev + 1; s < DOCTOR_SEV_COUNT; s++) {
		if(doctor_report_count(r, id, (doctor_sev_t)s) != 0) {
			fprintf(stderr, "expected nothing worse than %s for %s in:\n", doctor_checks_sev_name(sev), id);
			dump(r);
			fail();
		}
	}
}

static void no_worse_than(const doctor_report_t *r, doctor_sev_t sev)
{
	if(doctor_report_worst(r) > sev) {
		fprintf(stderr, "expected nothing worse than %s in:\n", doctor_checks_sev_name(sev));
		dump(r);
		fail();
	}
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* ---- the table ------------------------------------------------------------- */

static void test_checks_table(void **state)
{
	const doctor_check_t *c;
	size_t n = 0;
	for(size_t i = 0; (c = doctor_checks_at(i)) != NULL; i++, n++) {
		assert_true(c->fr >= 1 && c->fr <= 7);
		assert_true((int)c->comp >= 0 && (int)c->comp < DOCTOR_COMP_COUNT);
		assert_true((int)c->step >= 0 && (int)c->step < DOCTOR_STEP_COUNT);
		assert_ptr_equal(doctor_checks_find(c->id), c);
		assert_non_null(c->what);
		assert_non_null(c->guide);
		assert_string_not_equal(doctor_checks_fr_name(c->fr), "?");
	}
	assert_true(n >= 30);
	assert_null(doctor_checks_find("NO-SUCH-CHECK"));
	doctor_report_t r = {0};
	assert_int_equal(doctor_report_add(&r, "NO-SUCH-CHECK", DOCTOR_PASS, NULL, NULL, "x"), -1);
	assert_true(r.failed);
	doctor_report_free(&r);
}

/* ---- mosquitto.conf ------------------------------------------------------------ */

static void mosq_report(const char *path, doctor_report_t *r)
{
	doctor_mosq_t m;
	char err[1024];
	memset(r, 0, sizeof(*r));
	assert_int_equal(doctor_mosq_load_file(path, &m, err, sizeof(err)), 0);
	doctor_mosq_check(&m, r);
	doctor_mosq_free(&m);
}

static void test_mosq_good(void **state)
{
	doctor_report_t r;
	mosq_report(fx("good/mosquitto.conf"), &r);
	no_worse_than(&r, DOCTOR_PASS);
	const char *ids[] = {"MQ-LISTENER-TLS", "MQ-LISTENER-BIND", "MQ-TLS-VERSION", "MQ-ANONYMOUS",
	                     "MQ-REQUIRE-CERT", "MQ-CERT-DATES", "MQ-IDENTITY-USERNAME", "MQ-PER-LISTENER", "MQ-PLUGIN",
	                     "MQ-ISSUER-PIN", "MQ-USER", "REV-CONFIG", "MQ-PERSIST"};
	for(size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		expect(&r, ids[i], DOCTOR_PASS);
	}
	/* Evidence points at the file and line. */
	const doctor_finding_t *f = doctor_report_get(&r, "MQ-TLS-VERSION");
	assert_non_null(strstr(f->evidence, "good/mosquitto.conf:16: tls_version tlsv1.2"));
	doctor_report_free(&r);
}

static void test_mosq_weak(void **state)
{
	doctor_report_t r;
	mosq_report(fx("weak/mosquitto.conf"), &r);
	expect(&r, "MQ-LISTENER-TLS", DOCTOR_CRITICAL);
	expect(&r, "MQ-LISTENER-BIND", DOCTOR_WARNING);
	assert_int_equal(doctor_report_count(&r, "MQ-LISTENER-BIND", DOCTOR_WARNING), 2); /* any + public */
	expect(&r, "MQ-TLS-VERSION", DOCTOR_CRITICAL);
	expect(&r, "MQ-TLS-VERSION", DOCTOR_WARNING);
	expect(&r, "MQ-ANONYMOUS", DOCTOR_CRITICAL);
	expect(&r, "MQ-REQUIRE-CERT", DOCTOR_CRITICAL);
	expect(&r, "MQ-IDENTITY-USERNAME", DOCTOR_CRITICAL);
	expect(&r, "MQ-PER-LISTENER", DOCTOR_WARNING);
	expect(&r, "MQ-PLUGIN", DOCTOR_CRITICAL);
	expect(&r, "MQ-USER", DOCTOR_WARNING);
	expect(&r, "REV-CONFIG", DOCTOR_WARNING);
	expect(&r, "MQ-PERSIST", DOCTOR_WARNING);
	const doctor_finding_t *f = doctor_report_get(&r, "MQ-ANONYMOUS");
	assert_non_null(strstr(f->evidence, "weak/mosquitto.conf:9: allow_anonymous true"));
	assert_string_equal(f->fix, "allow_anonymous false");
	doctor_report_free(&r);
}

static void test_mosq_weak_plugin(void **state)
{
	doctor_report_t r;
	mosq_report(fx("weak/mosquitto-plugin.conf"), &r);
	expect(&r, "MQ-PLUGIN", DOCTOR_PASS);
	expect(&r, "POL-LOAD", DOCTOR_CRITICAL);
	expect(&r, "MQ-ISSUER-PIN", DOCTOR_INFO);
	expect(&r, "REV-CONFIG", DOCTOR_INFO);
	expect(&r, "MQ-TLS-VERSION", DOCTOR_PASS);
	doctor_report_free(&r);
}

static void test_mosq_default_listener(void **state)
{
	doctor_mosq_t m;
	doctor_report_t r = {0};
	char err[256];
	/* No listener at all: mosquitto 2.0 listens on loopback only, in clear. */
	assert_int_equal(doctor_mosq_load_buffer("empty.conf", "", 0, &m, err, sizeof(err)), 0);
	doctor_mosq_check(&m, &r);
	expect(&r, "MQ-LISTENER-TLS", DOCTOR_WARNING);
	expect(&r, "MQ-LISTENER-BIND", DOCTOR_PASS);
	doctor_mosq_free(&m);
	doctor_report_free(&r);
	/* `port` opens the default listener on every interface. */
	const char *text = "port 1883\n";
	assert_int_equal(doctor_mosq_load_buffer("port.conf", text, strlen(text), &m, err, sizeof(err)), 0);
	doctor_mosq_check(&m, &r);
	expect(&r, "MQ-LISTENER-TLS", DOCTOR_CRITICAL);
	expect(&r, "MQ-LISTENER-BIND", DOCTOR_WARNING);
	doctor_mosq_free(&m);
	doctor_report_free(&r);
}

/* mosquitto 2.1's disable_client_cert_date_checks lets expired certificates in. */
static void test_mosq_cert_dates(void **state)
{
	doctor_mosq_t m;
	doctor_report_t r = {0};
	char err[256];
	const char *text = "listener 8883 10.0.0.5\ncafile ca.crt\ncertfile b.crt\nkeyfile b.key\n"
	                   "require_certificate true\ntls_version tlsv1.2\n"
	                   "disable_client_cert_date_checks true\n";
	assert_int_equal(doctor_mosq_load_buffer("dates.conf", text, strlen(text), &m, err, sizeof(err)), 0);
	doctor_mosq_check(&m, &r);
	expect(&r, "MQ-CERT-DATES", DOCTOR_CRITICAL);
	const doctor_finding_t *f = doctor_report_get(&r, "MQ-CERT-DATES");
	assert_non_null(strstr(f->evidence, "dates.conf:7: disable_client_cert_date_checks true"));
	assert_string_equal(f->fix, "disable_client_cert_date_checks false");
	doctor_mosq_free(&m);
	doctor_report_free(&r);
	/* Off (or absent, as in good/mosquitto.conf) passes. */
	text = "listener 8883 10.0.0.5\ncafile ca.crt\ncertfile b.crt\nkeyfile b.key\n"
	       "require_certificate true\ndisable_client_cert_date_checks false\n";
	assert_int_equal(doctor_mosq_load_buffer("dates.conf", text, strlen(text), &m, err, sizeof(err)), 0);
	doctor_mosq_check(&m, &r);
	expect(&r, "MQ-CERT-DATES", DOCTOR_PASS);
	assert_int_equal(doctor_report_count(&r, "MQ-CERT-DATES", DOCTOR_CRITICAL), 0);
	doctor_mosq_free(&m);
	doctor_report_free(&r);
}

static void test_mosq_include_dir(void **state)
{
	char text[8192];
	doctor_report_t r;
	assert_int_equal(mkdir(tmp("conf.d"), 0755), 0);
	write_file(tmp("conf.d/10-tls.conf"), "listener 8883 10.1.1.1\ncertfile c\nrequire_certificate true\n"
	                                      "tls_version tlsv1.2\n", 0644);
	write_file(tmp("conf.d/20-anon.conf"), "allow_anonymous true\n", 0644);
	write_file(tmp("conf.d/ignored.txt"), "allow_anonymous bogus\n", 0644);
	util_snprintf(text, sizeof(text), "plugin /x/plantgate_auth.so\nplugin_opt_policy p\ninclude_dir %s\n",
	              tmp("conf.d"));
	write_file(tmp("main.conf"), text, 0644);
	mosq_report(tmp("main.conf"), &r);
	expect(&r, "MQ-LISTENER-TLS", DOCTOR_PASS);
	expect(&r, "MQ-ANONYMOUS", DOCTOR_CRITICAL);
	assert_non_null(strstr(doctor_report_get(&r, "MQ-ANONYMOUS")->evidence, "20-anon.conf:1:"));
	doctor_report_free(&r);
}

/* MQ-PERSIST: what a broker crash keeps of the bridge's session. */
static void test_mosq_persist(void **state)
{
	static const struct {
		const char *text;
		doctor_sev_t sev;
		const char *says;
	} cases[] = {
	    {"", DOCTOR_WARNING, "persistence is off"},
	    {"persistence false\n", DOCTOR_WARNING, "persistence is off"},
	    {"persistence true\n", DOCTOR_WARNING, "every 1800 s (mosquitto's default)"},
	    {"persistence true\nautosave_interval 0\n", DOCTOR_WARNING, "only at a clean shutdown"},
	    {"persistence true\nautosave_interval 300\n", DOCTOR_WARNING, "every 300 s"},
	    {"persistence true\nautosave_interval 10\nautosave_on_changes true\n", DOCTOR_WARNING,
	     "depends on the traffic"},
	    {"persistence true\nautosave_interval 10\n", DOCTOR_PASS, "at most what it accepted in the last 10 s"},
	    {"persistence true\nautosave_interval 60\nautosave_on_changes false\n", DOCTOR_PASS, "last 60 s"},
	};
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		doctor_mosq_t m;
		doctor_report_t r = {0};
		char err[256];
		assert_int_equal(doctor_mosq_load_buffer("p.conf", cases[i].text, strlen(cases[i].text), &m,
		                                         err, sizeof(err)),
		                 0);
		doctor_mosq_check(&m, &r);
		const doctor_finding_t *f = doctor_report_get(&r, "MQ-PERSIST");
		assert_non_null(f);
		assert_int_equal(f->sev, cases[i].sev);
		if(!strstr(f->title, cases[i].says)) {
			fail_msg("case %zu: '%s' does not say '%s'", i, f->title, cases[i].says);
		}
		doctor_mosq_free(&m);
		doctor_report_free(&r);
	}
}

static void test_mosq_shipped_example(void **state)
{
	char path[4096];
	doctor_report_t r;
	util_snprintf(path, sizeof(path), "%s/config/mosquitto.conf", getenv("PG_SOURCE_DIR"));
	mosq_report(path, &r);
	no_worse_than(&r, DOCTOR_PASS);
	doctor_report_free(&r);
}

/* ---- policy ------------------------------------------------------------------- */

static void test_policy_good(void **state)
{
	doctor_report_t r = {0};
	doctor_policy_check(fx("good/policy.conf"), NULL, NULL, &r);
	expect(&r, "POL-LOAD", DOCTOR_PASS);
	expect(&r, "POL-UNKNOWN", DOCTOR_PASS);
	expect(&r, "POL-WILDCARD", DOCTOR_PASS);
	expect(&r, "POL-CROSS-DEVICE", DOCTOR_PASS);
	expect(&r, "POL-CONTROL", DOCTOR_PASS);
	no_worse_than(&r, DOCTOR_INFO); /* the bridge role reads every device: a note */
	doctor_report_free(&r);
}

static void test_policy_weak(void **state)
{
	doctor_report_t r = {0};
	doctor_policy_check(fx("weak/policy.conf"), NULL, NULL, &r);
	expect(&r, "POL-LOAD", DOCTOR_PASS);
	expect(&r, "POL-UNKNOWN", DOCTOR_WARNING);
	expect(&r, "POL-WILDCARD", DOCTOR_CRITICAL);
	expect(&r, "POL-CROSS-DEVICE", DOCTOR_CRITICAL);
	expect(&r, "POL-CONTROL", DOCTOR_WARNING);
	const doctor_finding_t *f = doctor_report_get(&r, "POL-CROSS-DEVICE");
	assert_non_null(strstr(f->evidence, "weak/policy.conf:8: publish plant/+/+/+/telemetry/#"));
	doctor_report_free(&r);

	/* The operator decides which roles are device roles: not the sensor, so
	 * its grant on every device's telemetry is only a note; the actuator's
	 * `subscribe #` still reads other devices' data. */
	memset(&r, 0, sizeof(r));
	doctor_policy_check(fx("weak/policy.conf"), "actuator", NULL, &r);
	assert_int_equal(doctor_report_count(&r, "POL-CROSS-DEVICE", DOCTOR_CRITICAL), 0);
	expect(&r, "POL-CROSS-DEVICE", DOCTOR_INFO);
	expect(&r, "POL-CROSS-DEVICE", DOCTOR_WARNING);
	doctor_report_free(&r);
}

static void test_policy_broken(void **state)
{
	doctor_report_t r = {0};
	doctor_policy_check(fx("weak/policy-broken.conf"), NULL, "mosquitto.conf:7", &r);
	expect(&r, "POL-LOAD", DOCTOR_CRITICAL);
	const doctor_finding_t *f = doctor_report_get(&r, "POL-LOAD");
	assert_non_null(strstr(f->evidence, "policy-broken.conf:"));
	assert_non_null(strstr(f->evidence, "mosquitto.conf:7"));
	doctor_report_free(&r);
	memset(&r, 0, sizeof(r));
	doctor_policy_check(tmp("no-such-policy.conf"), NULL, NULL, &r);
	expect(&r, "POL-LOAD", DOCTOR_CRITICAL);
	doctor_report_free(&r);
}

static void test_policy_shipped_example(void **state)
{
	char path[4096];
	doctor_report_t r = {0};
	util_snprintf(path, sizeof(path), "%s/config/policy.example", getenv("PG_SOURCE_DIR"));
	doctor_policy_check(path, NULL, NULL, &r);
	no_worse_than(&r, DOCTOR_INFO);
	expect(&r, "POL-CROSS-DEVICE", DOCTOR_PASS);
	doctor_report_free(&r);
}

static void test_policy_can_publish(void **state)
{
	char topic[256], rule[512];
	assert_int_equal(doctor_policy_can_publish(fx("good/policy.conf"), "bridge-01", topic, sizeof(topic), rule,
	                                           sizeof(rule)),
	                 0);
	assert_int_equal(doctor_policy_can_publish(fx("good/policy.conf"), "sensor-9", topic, sizeof(topic), rule,
	                                           sizeof(rule)),
	                 1);
	assert_string_equal(topic, "plant/hq/line1/sensor-9/telemetry/x");
	assert_int_equal(doctor_policy_can_publish(fx("good/policy.conf"), "stranger", topic, sizeof(topic), rule,
	                                           sizeof(rule)),
	                 0);
	assert_int_equal(doctor_policy_can_publish(fx("weak/policy-broken.conf"), "s1", topic, sizeof(topic), rule,
	                                           sizeof(rule)),
	                 -1);
}

/* ---- PKI ------------------------------------------------------------------------ */

static void pki_report(const char *dir, time_t now, doctor_report_t *r)
{
	doctor_pki_in_t in;
	memset(&in, 0, sizeof(in));
	memset(r, 0, sizeof(*r));
	in.dir = dir;
	in.now = now;
	doctor_pki_check(&in, r);
}

static void test_pki_good(void **state)
{
	doctor_report_t r;
	pki_report(fx("good/pki"), day(2026, 12, 1), &r);
	no_worse_than(&r, DOCTOR_PASS);
	expect(&r, "PKI-DIR", DOCTOR_PASS);
	expect(&r, "PKI-SHARED", DOCTOR_PASS); /* press-01 re-issued after revoke: fine */
	expect(&r, "PKI-EXPIRY", DOCTOR_PASS);
	expect(&r, "PKI-CRL", DOCTOR_PASS);
	expect(&r, "PKI-CA-KEY", DOCTOR_PASS); /* not on this host */
	doctor_report_free(&r);
}

static void test_pki_weak(void **state)
{
	doctor_report_t r;
	pki_report(fx("weak/pki"), day(2026, 12, 1), &r);
	/* sensor-a.crt copied to sensor-b.crt; twin issued twice. */
	assert_int_equal(doctor_report_count(&r, "PKI-SHARED", DOCTOR_CRITICAL), 2);
	expect(&r, "PKI-EXPIRY", DOCTOR_WARNING);
	assert_int_equal(doctor_report_count(&r, "PKI-EXPIRY", DOCTOR_WARNING), 2); /* soon-1, old-1 */
	expect(&r, "PKI-CRL", DOCTOR_CRITICAL);                                     /* due 2026-11-30 */
	doctor_report_free(&r);
}

static void test_pki_dates(void **state)
{
	doctor_report_t r;
	/* CRL due 2026-12-29: within 7 days on the 25th. */
	pki_report(fx("good/pki"), day(2026, 12, 25), &r);
	expect(&r, "PKI-CRL", DOCTOR_WARNING);
	doctor_report_free(&r);
	/* The broker certificate ends 2029-03-03. */
	pki_report(fx("good/pki"), day(2029, 2, 20), &r);
	expect(&r, "PKI-SERVER-CERT", DOCTOR_WARNING);
	doctor_report_free(&r);
	pki_report(fx("good/pki"), day(2029, 4, 1), &r);
	expect(&r, "PKI-SERVER-CERT", DOCTOR_CRITICAL);
	doctor_report_free(&r);
}

static void test_pki_keys(void **state)
{
	doctor_report_t r = {0};
	write_file(tmp("ca.key"), "not a key: only the mode matters\n", 0640);
	doctor_pki_check_key(tmp("ca.key"), true, &r);
	expect(&r, "PKI-CA-KEY", DOCTOR_CRITICAL);
	doctor_report_free(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(chmod(tmp("ca.key"), 0600), 0);
	doctor_pki_check_key(tmp("ca.key"), true, &r);
	expect(&r, "PKI-CA-KEY", DOCTOR_PASS);
	doctor_report_free(&r);
	memset(&r, 0, sizeof(r));
	write_file(tmp("leaf.key"), "x\n", 0644);
	doctor_pki_check_key(tmp("leaf.key"), false, &r);
	expect(&r, "PKI-CA-KEY", DOCTOR_WARNING);
	doctor_report_free(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(chmod(tmp("leaf.key"), 0640), 0); /* the broker's group may read it */
	doctor_pki_check_key(tmp("leaf.key"), false, &r);
	expect(&r, "PKI-CA-KEY", DOCTOR_PASS);
	doctor_report_free(&r);
}

static void test_pki_named_certs(void **state)
{
	doctor_pki_in_t in;
	doctor_report_t r = {0};
	memset(&in, 0, sizeof(in));
	in.cafile = fx("weak/pki/ca.crt");
	in.certs[0] = fx("weak/pki/issued/soon-1.crt");
	in.cert_from[0] = "bridge.conf:4";
	in.certs[1] = tmp("missing.crt");
	in.now = day(2026, 12, 1);
	doctor_pki_check(&in, &r);
	expect(&r, "PKI-DIR", DOCTOR_INFO);
	expect(&r, "PKI-EXPIRY", DOCTOR_WARNING);
	expect(&r, "PKI-EXPIRY", DOCTOR_CRITICAL); /* cannot be read */
	assert_non_null(strstr(doctor_report_get(&r, "PKI-EXPIRY")->evidence, "missing.crt"));
	doctor_report_free(&r);
}

/* ---- audit --------------------------------------------------------------------------- */

static void make_audit(const char *path, int lines)
{
	char err[256];
	audit_t *a = audit_open(path, err, sizeof(err));
	assert_non_null(a);
	for(int i = 0; i < lines; i++) {
		audit_event_t ev = {.event = AUDIT_EV_CONNECT, .identity = "sensor-1", .clientid = "sensor-1"};
		assert_int_equal(audit_write(a, &ev, 1700000000000LL + i), 0);
	}
	audit_close(a);
}

static void test_audit(void **state)
{
	doctor_report_t r = {0};
	struct passwd *me = getpwuid(getuid());
	assert_non_null(me);

	doctor_audit_check(NULL, "mosquitto.conf", NULL, &r);
	expect(&r, "AUDIT-LOG", DOCTOR_WARNING);
	doctor_report_free(&r);

	make_audit(tmp("audit.jsonl"), 5);
	memset(&r, 0, sizeof(r));
	doctor_audit_check(tmp("audit.jsonl"), "mosquitto.conf:12", me->pw_name, &r);
	expect(&r, "AUDIT-LOG", DOCTOR_PASS);
	expect(&r, "AUDIT-CHAIN", DOCTOR_PASS);
	no_worse_than(&r, DOCTOR_PASS);
	doctor_report_free(&r);

	/* Edit one record: the verifier names the altered line. */
	FILE *f = fopen(tmp("audit.jsonl"), "r+");
	assert_non_null(f);
	char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	char *second = strchr(buf, '\n') + 1;
	char *who = strstr(second, "sensor-1");
	assert_non_null(who);
	who[7] = '2';
	rewind(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	fclose(f);
	memset(&r, 0, sizeof(r));
	doctor_audit_check(tmp("audit.jsonl"), NULL, me->pw_name, &r);
	expect(&r, "AUDIT-CHAIN", DOCTOR_CRITICAL);
	assert_non_null(strstr(doctor_report_get(&r, "AUDIT-CHAIN")->evidence, "audit.jsonl:2: line 2 was altered"));
	doctor_report_free(&r);

	/* Not writable by the broker's user; the directory does not exist. */
	if(getpwnam("nobody")) {
		assert_int_equal(chmod(tmp("audit.jsonl"), 0644), 0);
		memset(&r, 0, sizeof(r));
		doctor_audit_check(tmp("audit.jsonl"), NULL, "nobody", &r);
		expect(&r, "AUDIT-LOG", DOCTOR_WARNING);
		doctor_report_free(&r);
	}
	memset(&r, 0, sizeof(r));
	doctor_audit_check(tmp("no-dir/audit.jsonl"), NULL, me->pw_name, &r);
	expect(&r, "AUDIT-LOG", DOCTOR_WARNING);
	doctor_report_free(&r);
}

/* ---- bridge --------------------------------------------------------------------------- */

static void test_bridge_good(void **state)
{
	doctor_report_t r = {0};
	doctor_bridge_check(fx("good/bridge.conf"), fx("good/policy.conf"), &r);
	no_worse_than(&r, DOCTOR_PASS);
	const char *ids[] = {"BR-CONFIG", "BR-WHITELIST", "BR-CLOUD-TRUST", "BR-HOSTNAME", "BR-CLOUD-TLS", "BR-QUEUE",
	                     "BR-PLANT-WRITE", "BR-CLOUD-LIMITS"};
	for(size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		expect(&r, ids[i], DOCTOR_PASS);
	}
	doctor_report_free(&r);
}

static void test_bridge_weak(void **state)
{
	doctor_report_t r = {0};
	doctor_bridge_check(fx("weak/bridge.conf"), fx("weak/policy.conf"), &r);
	expect(&r, "BR-CONFIG", DOCTOR_PASS);
	expect(&r, "BR-WHITELIST", DOCTOR_CRITICAL);
	assert_int_equal(doctor_report_count(&r, "BR-WHITELIST", DOCTOR_WARNING), 2); /* $SYS, commands */
	expect(&r, "BR-CLOUD-TRUST", DOCTOR_WARNING);
	expect(&r, "BR-QUEUE", DOCTOR_WARNING);
	expect(&r, "BR-QUEUE", DOCTOR_INFO);
	expect(&r, "BR-PLANT-WRITE", DOCTOR_WARNING);
	expect(&r, "BR-HOSTNAME", DOCTOR_PASS);
	doctor_report_free(&r);

	memset(&r, 0, sizeof(r));
	write_file(tmp("broken-bridge.conf"), "plant_host x\nno_such_key 1\n", 0644);
	doctor_bridge_check(tmp("broken-bridge.conf"), NULL, &r);
	expect(&r, "BR-CONFIG", DOCTOR_CRITICAL);
	doctor_report_free(&r);
}

/* BR-CLOUD-LIMITS: AWS IoT Core's 512 KiB/s per connection, from the profile
 * row, paced by drain_byte_rate; a message larger than one second's worth. */
static void test_bridge_cloud_limits(void **state)
{
	static const char base[] =
	    "plant_host 127.0.0.1\nplant_cafile a\nplant_certfile b\nplant_keyfile c\n"
	    "cloud_host x.iot.example\ncloud_cafile d\ncloud_certfile e\ncloud_keyfile f\n"
	    "queue_path /tmp/plantgate-doctor-limits.db\ncloud_profile aws-iot\n";
	char text[1024];
	doctor_report_t r = {0};
	/* the profile's default: paced to 512 KiB/s */
	util_snprintf(text, sizeof(text), "%sforward a/b\n", base);
	write_file(tmp("limits.conf"), text, 0644);
	doctor_bridge_check(tmp("limits.conf"), NULL, &r);
	expect(&r, "BR-CLOUD-LIMITS", DOCTOR_PASS);
	assert_non_null(strstr(doctor_report_get(&r, "BR-CLOUD-LIMITS")->title, "paces"));
	assert_non_null(strstr(doctor_report_get(&r, "BR-CLOUD-LIMITS")->title, "512 KiB/s"));
	doctor_report_free(&r);
	/* 64 KiB/s with messages of up to 128 KiB: one message is two seconds' worth */
	memset(&r, 0, sizeof(r));
	util_snprintf(text, sizeof(text), "%sdrain_byte_rate 64K\nforward a/b\n", base);
	write_file(tmp("limits.conf"), text, 0644);
	doctor_bridge_check(tmp("limits.conf"), NULL, &r);
	expect(&r, "BR-CLOUD-LIMITS", DOCTOR_WARNING);
	assert_non_null(strstr(doctor_report_get(&r, "BR-CLOUD-LIMITS")->title, "131072 bytes"));
	doctor_report_free(&r);
}

static void test_bridge_shipped_example(void **state)
{
	char path[4096], policy[4096];
	doctor_report_t r = {0};
	util_snprintf(path, sizeof(path), "%s/config/bridge.example", getenv("PG_SOURCE_DIR"));
	util_snprintf(policy, sizeof(policy), "%s/config/policy.example", getenv("PG_SOURCE_DIR"));
	doctor_bridge_check(path, policy, &r);
	at_most(&r, "BR-CONFIG", DOCTOR_PASS);
	at_most(&r, "BR-WHITELIST", DOCTOR_PASS);
	at_most(&r, "BR-CLOUD-TRUST", DOCTOR_PASS);
	at_most(&r, "BR-PLANT-WRITE", DOCTOR_PASS);
	/* The queue check looks at the free disk of /var/lib/plantgate, absent here. */
	no_worse_than(&r, DOCTOR_WARNING);
	doctor_report_free(&r);
}

static void test_bridge_user(void **state)
{
	doctor_report_t r = {0};
	doctor_bridge_check_user(0, NULL, fx("good/plantgate-bridge.service"), &r);
	expect(&r, "BR-USER", DOCTOR_PASS);
	no_worse_than(&r, DOCTOR_PASS);
	doctor_report_free(&r);

	memset(&r, 0, sizeof(r));
	doctor_bridge_check_user(0, NULL, fx("weak/plantgate-bridge.service"), &r);
	expect(&r, "BR-USER", DOCTOR_WARNING);
	expect(&r, "BR-HOSTNAME", DOCTOR_CRITICAL);
	doctor_report_free(&r);

	/* A pid file naming this very process. */
	char pid[32];
	util_snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	write_file(tmp("bridge.pid"), pid, 0644);
	memset(&r, 0, sizeof(r));
	doctor_bridge_check_user(0, tmp("bridge.pid"), NULL, &r);
	expect(&r, "BR-USER", geteuid() == 0 ? DOCTOR_WARNING : DOCTOR_PASS);
	doctor_report_free(&r);

	memset(&r, 0, sizeof(r));
	doctor_bridge_check_user(0, NULL, NULL, &r);
	expect(&r, "BR-USER", DOCTOR_INFO);
	doctor_report_free(&r);
}

/* ---- output ----------------------------------------------------------------------------- */

static void test_outputs(void **state)
{
	doctor_report_t r;
	doctor_inputs_t in = {.mosq_conf = "weak/mosquitto.conf", .now = day(2026, 12, 1)};
	char *buf = NULL;
	size_t len = 0;
	char summary[256];

	mosq_report(fx("weak/mosquitto.conf"), &r);
	assert_int_equal(doctor_report_add(&r, "AUDIT-LOG", DOCTOR_WARNING, "evil\n\x1b[31mline", "fix \"it\"",
	                                   "title <b>&</b>"),
	                 0);
	doctor_report_summary(&r, summary, sizeof(summary));
	assert_non_null(strstr(summary, " critical, "));

	FILE *f = open_memstream(&buf, &len);
	doctor_report_text(&r, &in, false, f);
	fclose(f);
	assert_non_null(strstr(buf, "== IoT devices =="));
	assert_non_null(strstr(buf, "== Cloud == (nothing checked)"));
	assert_non_null(strstr(buf, "Summary: "));
	assert_non_null(strstr(buf, summary));
	assert_null(strchr(buf, '\x1b')); /* control characters never reach the terminal */
	free(buf);

	f = open_memstream(&buf, &len);
	doctor_report_json(&r, &in, f);
	fclose(f);
	assert_non_null(strstr(buf, "\"summary\":{\"critical\":"));
	assert_non_null(strstr(buf, "\"id\":\"MQ-ANONYMOUS\",\"severity\":\"critical\",\"component\":\"server\""));
	assert_non_null(strstr(buf, "\"evidence\":\"evil\\n\\u001b[31mline\""));
	assert_non_null(strstr(buf, "\"cloud\":\"not-checked\""));
	free(buf);

	f = open_memstream(&buf, &len);
	doctor_html_write(&r, &in, f);
	fclose(f);
	assert_non_null(strstr(buf, "<svg"));
	assert_non_null(strstr(buf, "title &lt;b&gt;&amp;&lt;/b&gt;"));
	assert_null(strstr(buf, "<script"));
	assert_null(strstr(buf, "src="));
	assert_null(strstr(buf, "href="));
	assert_null(strstr(buf, "<b>&</b>"));
	free(buf);
	doctor_report_free(&r);
}

static int setup(void **state)
{
	const char *src = getenv("PG_SOURCE_DIR");
	if(!src) {
		fprintf(stderr, "PG_SOURCE_DIR is not set (ctest sets it)\n");
		return -1;
	}
	util_snprintf(fixtures, sizeof(fixtures), "%s/tests/fixtures/doctor", src);
	util_snprintf(tmpdir, sizeof(tmpdir), "/tmp/pg-test-doctor-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	const char *files[] = {"conf.d/10-tls.conf", "conf.d/20-anon.conf", "conf.d/ignored.txt", "main.conf",
	                       "ca.key", "leaf.key", "audit.jsonl", "broken-bridge.conf", "bridge.pid", "limits.conf"};
	for(size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		unlink(tmp(files[i]));
	}
	rmdir(tmp("conf.d"));
	rmdir(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checks_table),
	    cmocka_unit_test(test_mosq_good),
	    cmocka_unit_test(test_mosq_weak),
	    cmocka_unit_test(test_mosq_weak_plugin),
	    cmocka_unit_test(test_mosq_default_listener),
	    cmocka_unit_test(test_mosq_cert_dates),
	    cmocka_unit_test(test_mosq_include_dir),
	    cmocka_unit_test(test_mosq_persist),
	    cmocka_unit_test(test_mosq_shipped_example),
	    cmocka_unit_test(test_policy_good),
	    cmocka_unit_test(test_policy_weak),
	    cmocka_unit_test(test_policy_broken),
	    cmocka_unit_test(test_policy_shipped_example),
	    cmocka_unit_test(test_policy_can_publish),
	    cmocka_unit_test(test_pki_good),
	    cmocka_unit_test(test_pki_weak),
	    cmocka_unit_test(test_pki_dates),
	    cmocka_unit_test(test_pki_keys),
	    cmocka_unit_test(test_pki_named_certs),
	    cmocka_unit_test(test_audit),
	    cmocka_unit_test(test_bridge_good),
	    cmocka_unit_test(test_bridge_weak),
	    cmocka_unit_test(test_bridge_cloud_limits),
	    cmocka_unit_test(test_bridge_shipped_example),
	    cmocka_unit_test(test_bridge_user),
	    cmocka_unit_test(test_outputs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
