/*
 * doctor_pki.c — plantgate-doctor's look at the plant PKI: the certificates
 * scripts/pki issued (the .crt files in DIR/issued, the .pem files in DIR/newcerts), the ones the
 * broker and bridge are configured with, the CA key's permissions and the
 * CRL's freshness.
 *
 * A certificate counts as in force when it is neither revoked (revoked.txt
 * or the CRL, read with plugin/core/revocation.c exactly as the plugin reads
 * them) nor expired nor not yet valid at the injected time `now`.  Two files
 * with the same SHA-256 fingerprint under different device names are one
 * certificate shared by two devices; two different certificates in force
 * with the same CN from the same CA are one identity held twice.  Both defeat the point of a
 * certificate per device.
 */
#include <dirent.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doctor.h"
#include "identity.h"
#include "revocation.h"
#include "util.h"

#define DOCTOR_PKI_MAX_CERTS 100000
#define DOCTOR_PKI_SOON_DAYS 30
#define DOCTOR_PKI_CRL_DAYS 7

typedef struct doctor_pki_cert {
	char *path;
	const char *from; /* "file:line" naming it, or NULL */
	X509 *x;
	char fp[65];
	char serial[80];
	char cn[256];
	bool issued; /* DIR/issued/NAME.crt */
	bool server; /* extendedKeyUsage serverAuth, or the CA */
	bool is_ca;
	bool dup; /* an earlier entry holds the same certificate */
	bool revoked;
	int state; /* -1 not yet valid, 0 valid, 1 expired */
	int days;  /* days left (negative: since expiry) */
} doctor_pki_cert_t;

typedef struct doctor_pki_set {
	doctor_pki_cert_t *c;
	size_t n;
} doctor_pki_set_t;

static void doctor_pki_set_free(doctor_pki_set_t *s)
{
	for(size_t i = 0; i < s->n; i++) {
		free(s->c[i].path);
		X509_free(s->c[i].x);
	}
	free(s->c);
	memset(s, 0, sizeof(*s));
}

static X509 *doctor_pki_read(const char *path)
{
	FILE *f = fopen(path, "r");
	if(!f) {
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static void doctor_pki_date(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;
	if(!t || !ASN1_TIME_to_tm(t, &tm) || strftime(buf, len, "%Y-%m-%d", &tm) == 0) {
		util_strlcpy(buf, "?", len);
	}
}

/* Whole days from now to t (negative when t is past). */
static int doctor_pki_days(const ASN1_TIME *t, time_t now)
{
	int days = 0, secs = 0;
	ASN1_TIME *n = ASN1_TIME_set(NULL, now);
	if(!n || !ASN1_TIME_diff(&days, &secs, n, t)) {
		days = 0;
	}
	ASN1_TIME_free(n);
	if(secs < 0 && days == 0) {
		days = -1;
	}
	return days;
}

static void doctor_pki_cn(X509 *x, char *out, size_t len)
{
	out[0] = '\0';
	X509_NAME *nm = X509_get_subject_name(x);
	int idx = nm ? X509_NAME_get_index_by_NID(nm, NID_commonName, -1) : -1;
	if(idx < 0) {
		return;
	}
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, idx)));
	if(n >= 0) {
		char safe[256];
		util_log_safe((const char *)utf8, safe, sizeof(safe));
		util_strlcpy(out, safe, len);
	}
	OPENSSL_free(utf8);
}

static int doctor_pki_add(doctor_pki_set_t *s, const char *path, const char *from, bool issued,
                          const revocation_t *rev, time_t now)
{
	if(s->n >= DOCTOR_PKI_MAX_CERTS) {
		return -1;
	}
	X509 *x = doctor_pki_read(path);
	if(!x) {
		return -1;
	}
	doctor_pki_cert_t *n = realloc(s->c, (s->n + 1) * sizeof(*n));
	if(!n) {
		X509_free(x);
		return -1;
	}
	s->c = n;
	doctor_pki_cert_t *c = &s->c[s->n];
	memset(c, 0, sizeof(*c));
	c->path = strdup(path);
	if(!c->path) {
		X509_free(x);
		return -1;
	}
	c->from = from;
	c->x = x;
	c->issued = issued;
	s->n++;
	doctor_pki_cn(x, c->cn, sizeof(c->cn));
	if(revocation_cert_ids(x, c->serial, sizeof(c->serial), c->fp) != 0) {
		identity_fingerprint(x, c->fp);
	}
	c->server = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	if(rev) {
		const char *why = NULL;
		c->revoked = revocation_is_revoked(rev, x, c->cn, c->serial, c->fp, &why);
	}
	c->days = doctor_pki_days(X509_get0_notAfter(x), now);
	if(X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
		c->state = 1;
	} else if(X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
		c->state = -1;
	}
	return 0;
}

/* Add every file of dir ending in suffix (but not in ".chain.pem"). */
static void doctor_pki_add_dir(doctor_pki_set_t *s, const char *dir, const char *suffix, bool issued,
                               const revocation_t *rev, time_t now)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	for(int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		size_t len = strlen(nm), sl = strlen(suffix);
		char path[4096];
		if(len > sl && strcmp(nm + len - sl, suffix) == 0 && !strstr(nm, ".chain.") &&
		   util_snprintf(path, sizeof(path), "%s/%s", dir, nm) >= 0) {
			doctor_pki_add(s, path, NULL, issued, rev, now);
		}
		free(names[i]);
	}
	free(names);
}

static void doctor_pki_ev(const doctor_pki_cert_t *c, char *buf, size_t len)
{
	char date[32];
	doctor_pki_date(X509_get0_notAfter(c->x), date, sizeof(date));
	util_snprintf(buf, len, "%s%s%s (CN=%s, serial %s, expires %s)", c->from ? c->from : "",
	              c->from ? ": " : "", c->path, c->cn, c->serial, date);
}

void doctor_pki_check_key(const char *path, bool is_ca, doctor_report_t *r)
{
	struct stat sb;
	char ev[1024], fix[1024];
	if(stat(path, &sb) != 0) {
		return;
	}
	unsigned mode = sb.st_mode & 07777;
	util_snprintf(ev, sizeof(ev), "%s: mode %04o, owner uid %u gid %u", path, mode, (unsigned)sb.st_uid,
	              (unsigned)sb.st_gid);
	if(is_ca && (mode & 077)) {
		util_snprintf(fix, sizeof(fix), "chmod 600 %s (and keep the CA on a machine few people can reach)", path);
		doctor_report_add(r, "PKI-CA-KEY", DOCTOR_CRITICAL, ev, fix,
		                  "the CA key is readable by %s: whoever can read it can mint device certificates",
		                  (mode & 07) ? "every user of the host" : "the file's group");
	} else if(!is_ca && (mode & 07)) {
		util_snprintf(fix, sizeof(fix), "chmod o-rwx %s", path);
		doctor_report_add(r, "PKI-CA-KEY", DOCTOR_WARNING, ev, fix,
		                  "private key %s is readable by every user of the host", path);
	} else {
		doctor_report_add(r, "PKI-CA-KEY", DOCTOR_PASS, ev, NULL, "%s %s is readable by its owner%s only",
		                  is_ca ? "the CA key" : "private key", path, is_ca ? "" : " and group");
	}
}

static void doctor_pki_crl(const char *path, X509 *ca, time_t now, bool explicit_path, doctor_report_t *r)
{
	char ev[1024], next[32];
	FILE *f = fopen(path, "r");
	X509_CRL *crl = NULL;
	if(!f) {
		if(explicit_path) {
			util_snprintf(ev, sizeof(ev), "%s: cannot be opened", path);
			doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev, "scripts/pki --dir DIR crl",
			                  "the configured CRL is missing: mosquitto refuses to start with a crlfile it "
			                  "cannot read");
		} else {
			util_snprintf(ev, sizeof(ev), "%s: no CRL", path);
			doctor_report_add(r, "PKI-CRL", DOCTOR_WARNING, ev, "scripts/pki --dir DIR crl",
			                  "the PKI has no CRL: revocations cannot be published to the broker");
		}
		return;
	}
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	if(!crl) {
		util_snprintf(ev, sizeof(ev), "%s: not a PEM CRL", path);
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev, "scripts/pki --dir DIR crl",
		                  "the CRL cannot be read");
		return;
	}
	const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
	doctor_pki_date(nu, next, sizeof(next));
	util_snprintf(ev, sizeof(ev), "%s: next update %s", path, next);
	EVP_PKEY *pub = ca ? X509_get0_pubkey(ca) : NULL;
	if(pub && X509_CRL_verify(crl, pub) != 1) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev, "scripts/pki --dir DIR crl",
		                  "the CRL is not signed by the plant CA: it is ignored or refused");
	} else if(!nu) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_WARNING, ev, "scripts/pki --dir DIR crl",
		                  "the CRL has no next-update date");
	} else if(X509_cmp_time(nu, &now) < 0) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev,
		                  "scripts/pki --dir DIR crl && systemctl reload mosquitto",
		                  "the CRL is out of date since %s: with crlfile set, OpenSSL refuses every client", next);
	} else if(doctor_pki_days(nu, now) < DOCTOR_PKI_CRL_DAYS) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_WARNING, ev,
		                  "scripts/pki --dir DIR crl && systemctl reload mosquitto (and a weekly timer)",
		                  "the CRL expires on %s, in less than %d days: then every client is refused", next,
		                  DOCTOR_PKI_CRL_DAYS);
	} else {
		doctor_report_add(r, "PKI-CRL", DOCTOR_PASS, ev, NULL, "the CRL is signed by the CA and current until %s",
		                  next);
	}
	X509_CRL_free(crl);
}

static void doctor_pki_expiry(const doctor_pki_cert_t *c, doctor_report_t *r)
{
	char ev[1536], fix[512];
	const char *id = c->server ? "PKI-SERVER-CERT" : "PKI-EXPIRY";
	doctor_pki_ev(c, ev, sizeof(ev));
	if(c->server) {
		util_snprintf(fix, sizeof(fix), "scripts/pki --dir DIR server %s && systemctl reload mosquitto", c->cn);
	} else {
		util_snprintf(fix, sizeof(fix), "scripts/pki --dir DIR revoke %s --reason superseded && scripts/pki "
		              "--dir DIR device %s, then install the new certificate on the device", c->cn, c->cn);
	}
	if(c->state == 1) {
		doctor_report_add(r, id, c->server ? DOCTOR_CRITICAL : DOCTOR_WARNING, ev, fix,
		                  "certificate of %s has expired%s", c->cn,
		                  c->server ? ": no device can connect" : ": the device cannot connect (revoke it if it is retired)");
	} else if(c->state == 0 && c->days < DOCTOR_PKI_SOON_DAYS) {
		doctor_report_add(r, id, DOCTOR_WARNING, ev, fix, "certificate of %s expires in %d day%s", c->cn,
		                  c->days, c->days == 1 ? "" : "s");
	} else if(c->state == -1) {
		doctor_report_add(r, id, DOCTOR_INFO, ev, NULL, "certificate of %s is not valid yet", c->cn);
	}
}

/* What the checks of doctor_pki_check share: the inputs, the files they
 * resolve to, the revocation data, the CA and every certificate found. */
typedef struct doctor_pki_ctx {
	const doctor_pki_in_t *in;
	char cafile[4096], crlfile[4096], revfile[4096];
	bool have_crl;
	revocation_t *rev;
	X509 *ca;
	doctor_pki_set_t set;
} doctor_pki_ctx_t;

/* PKI-DIR: the scripts/pki directory, and the files it implies unless the
 * configuration names them. */
static void doctor_pki_dir(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	const doctor_pki_in_t *in = x->in;
	char ev[2048];
	struct stat sb;
	if(in->dir) {
		if(stat(in->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			util_snprintf(ev, sizeof(ev), "%s: not a directory", in->dir);
			doctor_report_add(r, "PKI-DIR", DOCTOR_WARNING, ev, "--pki /etc/plantgate/pki",
			                  "the PKI directory cannot be read: device certificates were not examined");
		} else {
			util_snprintf(ev, sizeof(ev), "%s", in->dir);
			doctor_report_add(r, "PKI-DIR", DOCTOR_PASS, ev, NULL, "the plant PKI directory was examined");
		}
		util_snprintf(x->cafile, sizeof(x->cafile), "%s/ca.crt", in->dir);
		util_snprintf(x->crlfile, sizeof(x->crlfile), "%s/crl.pem", in->dir);
		util_snprintf(x->revfile, sizeof(x->revfile), "%s/revoked.txt", in->dir);
	} else {
		doctor_report_add(r, "PKI-DIR", DOCTOR_INFO, NULL, "plantgate-doctor --pki /etc/plantgate/pki ...",
		                  "no PKI directory given: only the certificates named in the configuration were "
		                  "examined, not every device certificate");
	}
	if(in->cafile) {
		util_strlcpy(x->cafile, in->cafile, sizeof(x->cafile));
	}
	if(in->crlfile) {
		util_strlcpy(x->crlfile, in->crlfile, sizeof(x->crlfile));
	}
	if(in->revocation) {
		util_strlcpy(x->revfile, in->revocation, sizeof(x->revfile));
	}
	x->have_crl = x->crlfile[0] && (in->crlfile || access(x->crlfile, F_OK) == 0);
	if(x->revfile[0] && !in->revocation && access(x->revfile, F_OK) != 0) {
		x->revfile[0] = '\0';
	}
}

/* REV-CONFIG: the revocation list and CRL load as the plugin loads them. */
static void doctor_pki_revocation(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	char err[1024];
	if(!x->revfile[0] && !x->have_crl) {
		return;
	}
	x->rev = revocation_load(x->revfile[0] ? x->revfile : NULL, x->have_crl ? x->crlfile : NULL, err,
	                         sizeof(err));
	if(!x->rev) {
		doctor_report_add(r, "REV-CONFIG", DOCTOR_CRITICAL, err, "scripts/pki --dir DIR crl",
		                  "the revocation list or CRL does not load: the plugin refuses it");
	}
}

/* Gather the CA, DIR/issued, DIR/newcerts and the configured certificates
 * (PKI-SERVER-CERT, PKI-EXPIRY when one cannot be read). */
static void doctor_pki_collect(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	const doctor_pki_in_t *in = x->in;
	doctor_pki_set_t *set = &x->set;
	char buf[4096], ev[2048];
	if(x->cafile[0]) {
		x->ca = doctor_pki_read(x->cafile);
		if(x->ca) {
			doctor_pki_add(set, x->cafile, NULL, false, NULL, in->now);
			set->c[set->n - 1].server = true; /* the CA counts with the server's credentials */
			set->c[set->n - 1].is_ca = true;
		} else if(in->dir || in->cafile) {
			util_snprintf(ev, sizeof(ev), "%s: no PEM certificate", x->cafile);
			doctor_report_add(r, "PKI-SERVER-CERT", DOCTOR_CRITICAL, ev, "scripts/pki --dir DIR init",
			                  "the CA certificate cannot be read");
		}
	}
	if(in->dir) {
		util_snprintf(buf, sizeof(buf), "%s/issued", in->dir);
		doctor_pki_add_dir(set, buf, ".crt", true, x->rev, in->now);
		util_snprintf(buf, sizeof(buf), "%s/newcerts", in->dir);
		doctor_pki_add_dir(set, buf, ".pem", false, x->rev, in->now);
	}
	for(size_t i = 0; i < 8 && in->certs[i]; i++) {
		if(doctor_pki_add(set, in->certs[i], in->cert_from[i], false, x->rev, in->now) != 0) {
			util_snprintf(ev, sizeof(ev), "%s%s%s: cannot be read", in->cert_from[i] ? in->cert_from[i] : "",
			              in->cert_from[i] ? ": " : "", in->certs[i]);
			doctor_report_add(r, "PKI-EXPIRY", DOCTOR_CRITICAL, ev, "fix the path or the permissions",
			                  "a configured certificate cannot be read");
		}
	}
}

/* PKI-SHARED, first half: the same certificate under two device names. */
static int doctor_pki_same_cert(const doctor_pki_set_t *set, doctor_report_t *r)
{
	char ev[2048];
	int shared = 0;
	for(size_t i = 0; i < set->n; i++) {
		for(size_t j = i + 1; j < set->n; j++) {
			const doctor_pki_cert_t *a = &set->c[i], *b = &set->c[j];
			if(a->issued && b->issued && strcmp(a->fp, b->fp) == 0 && strcmp(a->path, b->path) != 0) {
				util_snprintf(ev, sizeof(ev), "%s and %s: same certificate (sha256 %.16s..., CN=%s)", a->path,
				              b->path, a->fp, a->cn);
				doctor_report_add(r, "PKI-SHARED", DOCTOR_CRITICAL, ev,
				                  "issue each device its own: scripts/pki --dir DIR device NAME",
				                  "two devices share one certificate: they cannot be told apart, and "
				                  "revoking one cuts off both");
				shared++;
			}
		}
	}
	return shared;
}

/* PKI-SHARED, second half: the same identity in two different certificates
 * in force (each certificate counted once, however many files hold it). */
static int doctor_pki_same_identity(doctor_pki_set_t *set, doctor_report_t *r)
{
	char ev[2048];
	int shared = 0;
	for(size_t i = 0; i < set->n; i++) {
		for(size_t k = 0; k < i && !set->c[i].dup; k++) {
			set->c[i].dup = strcmp(set->c[k].fp, set->c[i].fp) == 0;
		}
	}
	for(size_t i = 0; i < set->n; i++) {
		const doctor_pki_cert_t *a = &set->c[i];
		if(a->dup || a->revoked || a->state != 0 || !a->cn[0] || a->is_ca) {
			continue;
		}
		for(size_t j = i + 1; j < set->n; j++) {
			const doctor_pki_cert_t *b = &set->c[j];
			/* Same CA only: a cloud certificate may carry the bridge's name. */
			if(b->dup || b->revoked || b->state != 0 || strcmp(a->cn, b->cn) != 0 ||
			   X509_NAME_cmp(X509_get_issuer_name(a->x), X509_get_issuer_name(b->x)) != 0) {
				continue;
			}
			util_snprintf(ev, sizeof(ev), "%s (serial %s) and %s (serial %s): both CN=%s, neither revoked "
			              "nor expired", a->path, a->serial, b->path, b->serial, a->cn);
			doctor_report_add(r, "PKI-SHARED", DOCTOR_CRITICAL, ev,
			                  "revoke the one that should not exist: scripts/pki --dir DIR revoke "
			                  "SERIAL (or add `serial SERIAL` to revoked.txt), then reload the broker",
			                  "identity %s is held by two different certificates in force: two devices "
			                  "can pose as %s",
			                  a->cn, a->cn);
			shared++;
		}
	}
	return shared;
}

/* PKI-SHARED: every device holds its own certificate and identity. */
static void doctor_pki_shared(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	char ev[2048];
	int shared = doctor_pki_same_cert(&x->set, r);
	shared += doctor_pki_same_identity(&x->set, r);
	if(!shared && x->set.n) {
		util_snprintf(ev, sizeof(ev), "%zu certificates compared by fingerprint and identity", x->set.n);
		doctor_report_add(r, "PKI-SHARED", DOCTOR_PASS, ev, NULL,
		                  "every device holds its own certificate and identity");
	}
}

/* PKI-EXPIRY of what is in use (issued/ holds the newest of each name). */
static void doctor_pki_expiries(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	const doctor_pki_set_t *set = &x->set;
	char ev[2048];
	int soon = 0;
	int min_days = 1 << 30;
	const doctor_pki_cert_t *soonest = NULL;
	for(size_t i = 0; i < set->n; i++) {
		const doctor_pki_cert_t *c = &set->c[i];
		bool dup = false;
		if((!c->issued && c->from == NULL && !c->is_ca) || c->revoked) {
			continue; /* newcerts history, or revoked */
		}
		for(size_t k = 0; k < i; k++) {
			dup |= strcmp(set->c[k].fp, c->fp) == 0 && (set->c[k].issued || set->c[k].from || set->c[k].is_ca);
		}
		if(dup) {
			continue;
		}
		if(c->state != 0 || c->days < DOCTOR_PKI_SOON_DAYS) {
			doctor_pki_expiry(c, r);
			soon++;
		} else if(c->days < min_days) {
			min_days = c->days;
			soonest = c;
		}
	}
	if(soonest) {
		doctor_pki_ev(soonest, ev, sizeof(ev));
		doctor_report_add(r, "PKI-EXPIRY", DOCTOR_PASS, ev, NULL,
		                  "%scertificates in use are valid for %d more days or longer",
		                  soon ? "the other " : "all ", min_days);
	}
}

/* REV-CRL: the CRL is there, signed by the CA and fresh. */
static void doctor_pki_crl_step(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	if(x->have_crl || x->in->dir) {
		doctor_pki_crl(x->crlfile, x->ca, x->in->now, x->in->crlfile != NULL, r);
	}
}

/* PKI-CA-KEY and the device keys in DIR/private: offline, and not readable
 * by others. */
static void doctor_pki_keys(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	char buf[4096], ev[2048];
	struct stat sb;
	if(!x->in->dir) {
		return;
	}
	util_snprintf(buf, sizeof(buf), "%s/private/ca.key", x->in->dir);
	if(access(buf, F_OK) == 0) {
		doctor_pki_check_key(buf, true, r);
	} else {
		util_snprintf(ev, sizeof(ev), "%s: not present", buf);
		doctor_report_add(r, "PKI-CA-KEY", DOCTOR_PASS, ev, NULL, "the CA key is not on this host (kept offline)");
	}
	util_snprintf(buf, sizeof(buf), "%s/private", x->in->dir);
	struct dirent **names = NULL;
	int n = scandir(buf, &names, NULL, alphasort);
	for(int i = 0; i < n; i++) {
		size_t len = strlen(names[i]->d_name);
		char kp[4096];
		if(len > 4 && strcmp(names[i]->d_name + len - 4, ".key") == 0 && strcmp(names[i]->d_name, "ca.key") != 0 &&
		   util_snprintf(kp, sizeof(kp), "%s/%s", buf, names[i]->d_name) >= 0 && stat(kp, &sb) == 0 &&
		   (sb.st_mode & 07)) {
			doctor_pki_check_key(kp, false, r);
		}
		free(names[i]);
	}
	free(names);
}

/* PKI-RENEWAL (doctor_renewal.c): certificates that will lapse unrenewed. */
static void doctor_pki_renewal(doctor_pki_ctx_t *x, doctor_report_t *r)
{
	if(x->in->dir) {
		doctor_renewal_check(x->in->dir, x->rev, x->in->now, r);
	}
}

/* The checks, in the order they run (and report): each reads what the
 * earlier ones found in the context. */
static void (*const doctor_pki_steps[])(doctor_pki_ctx_t *, doctor_report_t *) = {
    doctor_pki_dir,     doctor_pki_revocation, doctor_pki_collect, doctor_pki_shared,
    doctor_pki_expiries, doctor_pki_crl_step,  doctor_pki_keys,    doctor_pki_renewal,
};

void doctor_pki_check(const doctor_pki_in_t *in, doctor_report_t *r)
{
	doctor_pki_ctx_t x = {.in = in};
	for(size_t i = 0; i < sizeof(doctor_pki_steps) / sizeof(doctor_pki_steps[0]); i++) {
		doctor_pki_steps[i](&x, r);
	}
	X509_free(x.ca);
	revocation_free(x.rev);
	doctor_pki_set_free(&x.set);
}
