/*
 * doctor.c — plantgate-doctor: the command line, finding the files a
 * deployment uses, running the checks and choosing the exit code.
 *
 * Given only the broker's mosquitto.conf, the doctor follows it to the rest:
 * the policy, revocation list, CRL and audit trail from the plugin_opt_*
 * lines, the CA and the broker certificate from the TLS lines, and the
 * scripts/pki directory the CA lives in (when it has that layout).  Every
 * path can also be given or overridden on the command line.  The checks live
 * in doctor_*.c (see doctor.h); this file only wires them together.
 *
 * Exit status: 0 nothing worse than info, 1 warnings, 2 critical findings,
 * 3 usage or internal error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bconf.h"
#include "doctor.h"
#include "pg_version.h"
#include "util.h"

#define DOCTOR_EXIT_USAGE 3

static const char doctor_usage[] =
    "usage: plantgate-doctor [--mosquitto-conf FILE] [--policy FILE] [--pki DIR]\n"
    "                        [--revocation FILE] [--crl FILE] [--audit FILE]\n"
    "                        [--bridge-conf FILE] [--bridge-url http://127.0.0.1:PORT]\n"
    "                        [--bridge-pidfile FILE] [--bridge-unit FILE]\n"
    "                        [--broker HOST:PORT --cert CRT --key KEY [--cafile CA] [--client-id ID]]\n"
    "                        [--device-roles ROLE,...] [--json] [--html FILE] [-v]\n"
    "                        [--now YYYY-MM-DD] [--timeout MS]\n"
    "       plantgate-doctor --list-checks | --version | --help\n"
    "\n"
    "A security self-assessment of a plantgate deployment, by the five components of\n"
    "the JPCERT/CC guide (IoT devices, plant LAN, server, WAN, cloud) and lifecycle\n"
    "step, each finding mapped to IEC 62443-3-3 (FR1-FR7) with evidence and a fix.\n"
    "\n"
    "  --mosquitto-conf FILE  the broker's configuration; the policy, revocation list,\n"
    "                         CRL, audit trail, CA and PKI directory are found from it\n"
    "  --policy FILE          the device policy (default: plugin_opt_policy)\n"
    "  --pki DIR              the scripts/pki directory (default: the CA's directory)\n"
    "  --revocation FILE, --crl FILE, --audit FILE   override what mosquitto.conf names\n"
    "  --bridge-conf FILE     the bridge configuration\n"
    "  --bridge-url URL       the running bridge's HTTP endpoint (loopback): GET /healthz,\n"
    "                         and the user of the process that serves it\n"
    "  --bridge-pidfile FILE, --bridge-unit FILE   how to find the bridge's user otherwise\n"
    "  --broker HOST:PORT     the running broker (loopback), read $SYS/plantgate/ with\n"
    "                         --cert/--key (a client allowed to read $SYS, e.g. ops-console)\n"
    "  --device-roles LIST    roles to treat as device roles (default: roles that publish\n"
    "                         under their own %{id})\n"
    "  --json                 the report as JSON on stdout instead of text\n"
    "  --html FILE            also write a one-page printable HTML report\n"
    "  -v, --verbose          show the evidence of passed checks too\n"
    "  --now YYYY-MM-DD       judge dates as of this day (for tests)\n"
    "\n"
    "Exit status: 0 passed (info at most), 1 warnings, 2 critical findings, 3 usage error.\n";

typedef struct doctor_args {
	const char *mosq_conf, *policy, *pki, *revocation, *crl, *audit, *bridge_conf, *bridge_url,
	    *bridge_pidfile, *bridge_unit, *broker, *cert, *key, *cafile, *clientid, *device_roles, *html;
	bool json, verbose, list;
	time_t now;
	int timeout_ms;
} doctor_args_t;

/* Paths found by following mosquitto.conf (owned). */
typedef struct doctor_found {
	char *policy, *revocation, *crl, *audit, *cafile, *pki;
	char policy_from[512], audit_from[512];
	char *certs[8];
	char cert_from[8][512];
	size_t ncerts;
	char *keys[8];
	size_t nkeys;
	char run_user[128];
} doctor_found_t;

/* strdup that passes NULL through. */
static char *doctor_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void doctor_found_free(doctor_found_t *f)
{
	free(f->policy);
	free(f->revocation);
	free(f->crl);
	free(f->audit);
	free(f->cafile);
	free(f->pki);
	for(size_t i = 0; i < f->ncerts; i++) {
		free(f->certs[i]);
	}
	for(size_t i = 0; i < f->nkeys; i++) {
		free(f->keys[i]);
	}
	memset(f, 0, sizeof(*f));
}

static int doctor_parse_date(const char *s, time_t *out)
{
	int64_t y, m, d;
	char part[8];
	struct tm tm;
	if(strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
		return -1;
	}
	memcpy(part, s, 4);
	part[4] = '\0';
	if(util_parse_i64(part, 1970, 9999, &y) != 0) {
		return -1;
	}
	memcpy(part, s + 5, 2);
	part[2] = '\0';
	if(util_parse_i64(part, 1, 12, &m) != 0) {
		return -1;
	}
	memcpy(part, s + 8, 2);
	part[2] = '\0';
	if(util_parse_i64(part, 1, 31, &d) != 0) {
		return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)y - 1900;
	tm.tm_mon = (int)m - 1;
	tm.tm_mday = (int)d;
	tm.tm_hour = 12;
	*out = timegm(&tm);
	return 0;
}

static int doctor_parse_args(int argc, char **argv, doctor_args_t *a)
{
	struct {
		const char *name;
		const char **slot;
	} opts[] = {
	    {"--mosquitto-conf", &a->mosq_conf}, {"--policy", &a->policy},
	    {"--pki", &a->pki},                  {"--revocation", &a->revocation},
	    {"--crl", &a->crl},                  {"--audit", &a->audit},
	    {"--bridge-conf", &a->bridge_conf},  {"--bridge-url", &a->bridge_url},
	    {"--bridge-pidfile", &a->bridge_pidfile}, {"--bridge-unit", &a->bridge_unit},
	    {"--broker", &a->broker},            {"--cert", &a->cert},
	    {"--key", &a->key},                  {"--cafile", &a->cafile},
	    {"--client-id", &a->clientid},       {"--device-roles", &a->device_roles},
	    {"--html", &a->html},                {"-c", &a->mosq_conf},
	};
	a->now = time(NULL);
	a->timeout_ms = 3000;
	for(int i = 1; i < argc; i++) {
		const char *w = argv[i];
		bool done = false;
		if(strcmp(w, "--json") == 0) {
			a->json = true;
			continue;
		}
		if(strcmp(w, "-v") == 0 || strcmp(w, "--verbose") == 0) {
			a->verbose = true;
			continue;
		}
		if(strcmp(w, "--list-checks") == 0) {
			a->list = true;
			continue;
		}
		if(strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
			fputs(doctor_usage, stdout);
			exit(0);
		}
		if(strcmp(w, "--version") == 0) {
			printf("plantgate-doctor %s\n", PG_VERSION);
			exit(0);
		}
		if(strcmp(w, "--now") == 0 || strcmp(w, "--timeout") == 0) {
			int64_t ms;
			if(i + 1 >= argc) {
				fprintf(stderr, "plantgate-doctor: %s needs a value\n", w);
				return -1;
			}
			if(w[2] == 'n' && doctor_parse_date(argv[i + 1], &a->now) != 0) {
				fprintf(stderr, "plantgate-doctor: --now %s: expected YYYY-MM-DD\n", argv[i + 1]);
				return -1;
			}
			if(w[2] == 't') {
				if(util_parse_i64(argv[i + 1], 100, 60000, &ms) != 0) {
					fprintf(stderr, "plantgate-doctor: --timeout %s: expected 100..60000 ms\n", argv[i + 1]);
					return -1;
				}
				a->timeout_ms = (int)ms;
			}
			i++;
			continue;
		}
		for(size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
			if(strcmp(w, opts[k].name) == 0) {
				if(i + 1 >= argc) {
					fprintf(stderr, "plantgate-doctor: %s needs a value\n", w);
					return -1;
				}
				*opts[k].slot = argv[++i];
				done = true;
				break;
			}
		}
		if(!done) {
			fprintf(stderr, "plantgate-doctor: unknown argument %s (see --help)\n", w);
			return -1;
		}
	}
	if(a->broker && (!a->cert || !a->key)) {
		fprintf(stderr, "plantgate-doctor: --broker needs --cert and --key of a client that may read $SYS\n");
		return -1;
	}
	return 0;
}

static void doctor_list_checks(void)
{
	const doctor_check_t *c;
	printf("%-20s %-12s %-13s %-4s %-7s %s\n", "ID", "COMPONENT", "STEP", "FR", "SR", "CHECK");
	for(size_t i = 0; (c = doctor_checks_at(i)) != NULL; i++) {
		printf("%-20s %-12s %-13s FR%-2d %-7s %s\n", c->id, doctor_checks_comp_key(c->comp),
		       doctor_checks_step_name(c->step), c->fr, c->sr, c->what);
	}
}

static bool doctor_is_pki_dir(const char *dir)
{
	char p[4096];
	struct stat sb;
	return util_snprintf(p, sizeof(p), "%s/issued", dir) >= 0 && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void doctor_from(const doctor_setting_t *s, char *buf, size_t len)
{
	util_snprintf(buf, len, "%s:%d", s->file, s->line);
}

/* Follow mosquitto.conf to the files it names. */
static void doctor_follow(const doctor_mosq_t *m, doctor_found_t *f)
{
	const doctor_setting_t *s;
	if((s = doctor_mosq_opt(m, "policy")) != NULL) {
		f->policy = doctor_dup(s->value);
		doctor_from(s, f->policy_from, sizeof(f->policy_from));
	}
	if((s = doctor_mosq_opt(m, "revocation_file")) != NULL) {
		f->revocation = doctor_dup(s->value);
	}
	if((s = doctor_mosq_opt(m, "crlfile")) != NULL) {
		f->crl = doctor_dup(s->value);
	}
	if((s = doctor_mosq_opt(m, "audit_log")) != NULL) {
		f->audit = doctor_dup(s->value);
		doctor_from(s, f->audit_from, sizeof(f->audit_from));
	}
	if((s = doctor_mosq_opt(m, "issuer_cafile")) != NULL) {
		f->cafile = doctor_dup(s->value);
	}
	util_strlcpy(f->run_user, m->user.value ? m->user.value : "mosquitto", sizeof(f->run_user));
	size_t n = 0;
	doctor_listener_t **ls = doctor_mosq_listeners(m, &n);
	for(size_t i = 0; i < n; i++) {
		const doctor_listener_t *l = ls[i];
		if(!f->cafile && l->cafile.value) {
			f->cafile = doctor_dup(l->cafile.value);
		}
		if(!f->crl && l->crlfile.value) {
			f->crl = doctor_dup(l->crlfile.value);
		}
		if(l->certfile.value && f->ncerts < 7) {
			doctor_from(&l->certfile, f->cert_from[f->ncerts], sizeof(f->cert_from[0]));
			f->certs[f->ncerts++] = doctor_dup(l->certfile.value);
		}
		if(l->keyfile.value && f->nkeys < 7) {
			f->keys[f->nkeys++] = doctor_dup(l->keyfile.value);
		}
	}
	free(ls);
	if(f->cafile) {
		char dir[4096];
		util_strlcpy(dir, f->cafile, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if(slash) {
			*slash = '\0';
		} else {
			util_strlcpy(dir, ".", sizeof(dir));
		}
		if(doctor_is_pki_dir(dir)) {
			f->pki = doctor_dup(dir);
		}
	}
}

/* The files to examine: what the command line names, else what
 * mosquitto.conf led to. */
typedef struct doctor_files {
	const char *policy, *revocation, *crl, *audit, *pki, *cafile;
} doctor_files_t;

/* MQ-*: read mosquitto.conf and check it; follow it to the other files.
 * True when it was read. */
static bool doctor_run_broker(const doctor_args_t *a, doctor_mosq_t *m, doctor_found_t *f, doctor_report_t *r)
{
	char err[4096];
	if(!a->mosq_conf) {
		doctor_report_add(r, "MQ-CONFIG", DOCTOR_INFO, NULL, "plantgate-doctor --mosquitto-conf /etc/mosquitto/mosquitto.conf",
		                  "no mosquitto.conf given: the broker's listeners and plugin were not checked");
		return false;
	}
	if(doctor_mosq_load_file(a->mosq_conf, m, err, sizeof(err)) != 0) {
		doctor_report_add(r, "MQ-CONFIG", DOCTOR_CRITICAL, err, "fix the line (mosquitto -c FILE says the same)",
		                  "mosquitto.conf cannot be read completely");
		return false;
	}
	util_snprintf(err, sizeof(err), "%s (%zu file%s)", a->mosq_conf, m->nfiles, m->nfiles == 1 ? "" : "s");
	doctor_report_add(r, "MQ-CONFIG", DOCTOR_PASS, err, NULL, "mosquitto.conf was read");
	doctor_mosq_check(m, r);
	doctor_mosq_check_files(m, r);
	doctor_follow(m, f);
	return true;
}

/* PKI-* and REV-*: the PKI directory, the certificates mosquitto.conf and
 * the bridge configuration name, and their keys. */
static void doctor_run_pki(const doctor_args_t *a, const doctor_found_t *f, const doctor_files_t *x,
                           doctor_report_t *r)
{
	char err[4096];
	doctor_pki_in_t pin;
	memset(&pin, 0, sizeof(pin));
	pin.dir = x->pki;
	pin.cafile = x->cafile;
	pin.crlfile = x->crl;
	pin.revocation = x->revocation;
	pin.now = a->now;
	size_t nc = 0;
	for(size_t i = 0; i < f->ncerts && nc < 7; i++, nc++) {
		pin.certs[nc] = f->certs[i];
		pin.cert_from[nc] = f->cert_from[i];
	}
	bconf_t bc;
	memset(&bc, 0, sizeof(bc));
	char bridge_from[2][512];
	if(a->bridge_conf && bconf_load(a->bridge_conf, &bc, err, sizeof(err)) == 0) {
		const char *bcerts[2] = {bc.plant_certfile, bc.cloud_certfile};
		int lines[2] = {bc.line[BK_PLANT_CERTFILE], bc.line[BK_CLOUD_CERTFILE]};
		for(int i = 0; i < 2 && nc < 7; i++) {
			if(bcerts[i] && access(bcerts[i], R_OK) == 0) {
				util_snprintf(bridge_from[i], sizeof(bridge_from[i]), "%s:%d", a->bridge_conf, lines[i]);
				pin.certs[nc] = bcerts[i];
				pin.cert_from[nc++] = bridge_from[i];
			}
		}
	}
	if(x->pki || x->cafile || nc || x->crl) {
		doctor_pki_check(&pin, r);
	}
	bconf_free(&bc);
	for(size_t i = 0; i < f->nkeys; i++) {
		doctor_pki_check_key(f->keys[i], false, r);
	}
}

/* BR-* and the live checks: the bridge configuration, the running broker
 * and bridge, and the bridge's user. */
static void doctor_run_bridge(const doctor_args_t *a, const doctor_files_t *x, doctor_report_t *r)
{
	doctor_live_in_t live = {a->broker, a->cert, a->key, x->cafile, a->clientid, a->bridge_url, a->timeout_ms};
	char cn[256] = "";
	if(a->broker && !a->clientid) {
		/* The client id must equal the certificate's identity. */
		const char *base = strrchr(a->cert, '/');
		util_strlcpy(cn, base ? base + 1 : a->cert, sizeof(cn));
		char *dot = strstr(cn, ".crt");
		if(dot) {
			*dot = '\0';
		}
		live.clientid = cn;
	}
	if(a->bridge_conf) {
		doctor_bridge_check(a->bridge_conf, x->policy, r);
	} else {
		doctor_report_add(r, "BR-CONFIG", DOCTOR_INFO, NULL, "--bridge-conf /etc/plantgate/bridge.conf",
		                  "no bridge configuration given: the WAN and cloud side were not checked");
	}
	long bridge_pid = 0;
	if(a->broker || a->bridge_url) {
		bridge_pid = doctor_live_check(&live, r);
	}
	if(a->bridge_conf || a->bridge_url || a->bridge_pidfile || a->bridge_unit) {
		doctor_bridge_check_user(bridge_pid, a->bridge_pidfile, a->bridge_unit, r);
	}
}

/* Print the report (text or JSON, and the HTML page) and give the exit
 * status: 2 critical, 1 warnings, 0 otherwise; DOCTOR_EXIT_USAGE when the
 * report could not be written or is incomplete. */
static int doctor_output(const doctor_args_t *a, const doctor_files_t *x, const doctor_report_t *r)
{
	doctor_inputs_t in = {a->mosq_conf, x->policy, x->revocation, x->crl, x->audit, x->pki,
	                      a->bridge_conf, a->bridge_url, a->broker, a->now};
	if(a->json) {
		doctor_report_json(r, &in, stdout);
	} else {
		doctor_report_text(r, &in, a->verbose, stdout);
	}
	if(a->html) {
		FILE *html = fopen(a->html, "w");
		if(!html) {
			fprintf(stderr, "plantgate-doctor: cannot write %s\n", a->html);
			return DOCTOR_EXIT_USAGE;
		}
		doctor_html_write(r, &in, html);
		if(fclose(html) != 0) {
			fprintf(stderr, "plantgate-doctor: cannot write %s\n", a->html);
			return DOCTOR_EXIT_USAGE;
		}
	}
	if(r->failed) {
		fputs("plantgate-doctor: internal error (out of memory?): the report is incomplete\n", stderr);
		return DOCTOR_EXIT_USAGE;
	}
	switch(doctor_report_worst(r)) {
	case DOCTOR_CRITICAL:
		return 2;
	case DOCTOR_WARNING:
		return 1;
	case DOCTOR_INFO:
	case DOCTOR_PASS:
		break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc = DOCTOR_EXIT_USAGE;
	doctor_args_t a;
	doctor_found_t f;
	doctor_report_t r;
	doctor_mosq_t m;

	memset(&a, 0, sizeof(a));
	memset(&f, 0, sizeof(f));
	memset(&r, 0, sizeof(r));
	memset(&m, 0, sizeof(m));
	if(doctor_parse_args(argc, argv, &a) != 0) {
		fputs(doctor_usage, stderr);
		goto out;
	}
	if(a.list) {
		doctor_list_checks();
		rc = 0;
		goto out;
	}
	if(!a.mosq_conf && !a.policy && !a.bridge_conf && !a.pki && !a.audit && !a.broker && !a.bridge_url) {
		if(access("/etc/mosquitto/mosquitto.conf", R_OK) == 0) {
			a.mosq_conf = "/etc/mosquitto/mosquitto.conf";
		} else {
			fputs("plantgate-doctor: nothing to examine: give --mosquitto-conf FILE (or see --help)\n", stderr);
			goto out;
		}
	}

	bool have_mosq = doctor_run_broker(&a, &m, &f, &r);
	doctor_files_t x = {
	    a.policy ? a.policy : f.policy, a.revocation ? a.revocation : f.revocation,
	    a.crl ? a.crl : f.crl,          a.audit ? a.audit : f.audit,
	    a.pki ? a.pki : f.pki,          a.cafile ? a.cafile : f.cafile,
	};
	if(x.policy) {
		doctor_policy_check(x.policy, a.device_roles, a.policy ? NULL : f.policy_from, &r);
	} else if(!have_mosq) {
		doctor_report_add(&r, "POL-LOAD", DOCTOR_INFO, NULL, "--policy /etc/plantgate/policy.conf",
		                  "no policy given: the device policy was not checked");
	}
	doctor_run_pki(&a, &f, &x, &r);
	if(have_mosq || a.audit) {
		doctor_audit_check(x.audit, x.audit && !a.audit ? f.audit_from : NULL, f.run_user[0] ? f.run_user : NULL,
		                   &r);
	}
	doctor_run_bridge(&a, &x, &r);
	rc = doctor_output(&a, &x, &r);
out:
	fflush(stdout);
	doctor_report_free(&r);
	doctor_mosq_free(&m);
	doctor_found_free(&f);
	return rc;
}
