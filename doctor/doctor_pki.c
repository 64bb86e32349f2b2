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

void doctor_pki_check(const doctor_pki_in_t *in, doctor_report_t *r)
{
	char cafile[4096], crlfile[4096], revfile[4096], buf[4096], ev[2048], err[1024];
	doctor_pki_set_t set = {0};
	revocation_t *rev = NULL;
	X509 *ca = NULL;
	struct stat sb;
	bool have_crl = false;

	cafile[0] = crlfile[0] = revfile[0] = '\0';
	if(in->dir) {
		if(stat(in->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			util_snprintf(ev, sizeof(ev), "%s: not a directory", in->dir);
			doctor_report_add(r, "PKI-DIR", DOCTOR_WARNING, ev, "--pki /etc/plantgate/pki",
			                  "the PKI directory cannot be read: device certificates were not examined");
		} else {
			util_snprintf(ev, sizeof(ev), "%s", in->dir);
			doctor_report_add(r, "PKI-DIR", DOCTOR_PASS, ev, NULL, "the plant PKI directory was examined");
		}
		util_snprintf(cafile, sizeof(cafile), "%s/ca.crt", in->dir);
		util_snprintf(crlfile, sizeof(crlfile), "%s/crl.pem", in->dir);
		util_snprintf(revfile, sizeof(revfile), "%s/revoked.txt", in->dir);
	} else {
		doctor_report_add(r, "PKI-DIR", DOCTOR_INFO, NULL, "plantgate-doctor --pki /etc/plantgate/pki ...",
		                  "no PKI directory given: only the certificates named in the configuration were "
		                  "examined, not every device certificate");
	}
	if(in->cafile) {
		util_strlcpy(cafile, in->cafile, sizeof(cafile));
	}
	if(in->crlfile) {
		util_strlcpy(crlfile, in->crlfile, sizeof(crlfile));
	}
	if(in->revocation) {
		util_strlcpy(revfile, in->revocation, sizeof(revfile));
	}
	have_crl = crlfile[0] && (in->crlfile || access(crlfile, F_OK) == 0);
	if(revfile[0] && !in->revocation && access(revfile, F_OK) != 0) {
		revfile[0] = '\0';
	}
	if(revfile[0] || have_crl) {
		rev = revocation_load(revfile[0] ? revfile : NULL, have_crl ? crlfile : NULL, err, sizeof(err));
		if(!rev) {
			doctor_report_add(r, "REV-CONFIG", DOCTOR_CRITICAL, err, "scripts/pki --dir DIR crl",
			                  "the revocation list or CRL does not load: the plugin refuses it");
		}
	}
	if(cafile[0]) {
		ca = doctor_pki_read(cafile);
		if(ca) {
			doctor_pki_add(&set, cafile, NULL, false, NULL, in->now);
			set.c[set.n - 1].server = true; /* the CA counts with the server's credentials */
			set.c[set.n - 1].is_ca = true;
		} else if(in->dir || in->cafile) {
			util_snprintf(ev, sizeof(ev), "%s: no PEM certificate", cafile);
			doctor_report_add(r, "PKI-SERVER-CERT", DOCTOR_CRITICAL, ev, "scripts/pki --dir DIR init",
			                  "the CA certificate cannot be read");
		}
	}
	if(in->dir) {
		util_snprintf(buf, sizeof(buf), "%s/issued", in->dir);
		doctor_pki_add_dir(&set, buf, ".crt", true, rev, in->now);
		util_snprintf(buf, sizeof(buf), "%s/newcerts", in->dir);
		doctor_pki_add_dir(&set, buf, ".pem", false, rev, in->now);
	}
	for(size_t i = 0; i < 8 && in->certs[i]; i++) {
		if(doctor_pki_add(&set, in->certs[i], in->cert_from[i], false, rev, in->now) != 0) {
			util_snprintf(ev, sizeof(ev), "%s%s%s: cannot be read", in->cert_from[i] ? in->cert_from[i] : "",
			              in->cert_from[i] ? ": " : "", in->certs[i]);
			doctor_report_add(r, "PKI-EXPIRY", DOCTOR_CRITICAL, ev, "fix the path or the permissions",
			                  "a configured certificate cannot be read");
		}
	}

	/* The same certificate under two device names. */
	int shared = 0;
	for(size_t i = 0; i < set.n; i++) {
		for(size_t j = i + 1; j < set.n; j++) {
			const doctor_pki_cert_t *a = &set.c[i], *b = &set.c[j];
			if(a->issued && b->issued && strcmp(a->fp, b->fp) == 0 && strcmp(a->path, b->path) != 0) {
				util_snprintf(ev, sizeof(ev), "%s and %s: same certificate (sha256 %.16s..., CN=%s)", a->path,
				              b->path, a->fp, a->cn);
				util_snprintf(buf, sizeof(buf), "issue each device its own: scripts/pki --dir DIR device NAME");
				doctor_report_add(r, "PKI-SHARED", DOCTOR_CRITICAL, ev, buf,
				                  "two devices share one certificate: they cannot be told apart, and "
				                  "revoking one cuts off both");
				shared++;
			}
		}
	}
	/* The same identity in two different certificates in force (each
	 * certificate counted once, however many files hold it). */
	for(size_t i = 0; i < set.n; i++) {
		for(size_t k = 0; k < i && !set.c[i].dup; k++) {
			set.c[i].dup = strcmp(set.c[k].fp, set.c[i].fp) == 0;
		}
	}
	for(size_t i = 0; i < set.n; i++) {
		const doctor_pki_cert_t *a = &set.c[i];
		if(a->dup || a->revoked || a->state != 0 || !a->cn[0] || a->is_ca) {
			continue;
		}
		for(size_t j = i + 1; j < set.n; j++) {
			const doctor_pki_cert_t *b = &set.c[j];
			/* Same CA only: a cloud certificate may carry the bridge's name. */
			if(b->dup || b->revoked || b->state != 0 || strcmp(a->cn, b->cn) != 0 ||
			   X509_NAME_cmp(X509_get_issuer_name(a->x), X509_get_issuer_name(b->x)) != 0) {
				continue;
			}
			util_snprintf(ev, sizeof(ev), "%s (serial %s) and %s (serial %s): both CN=%s, neither revoked "
			              "nor expired", a->path, a->serial, b->path, b->serial, a->cn);
			util_snprintf(buf, sizeof(buf), "revoke the one that should not exist: scripts/pki --dir DIR revoke "
			              "SERIAL (or add `serial SERIAL` to revoked.txt), then reload the broker");
			doctor_report_add(r, "PKI-SHARED", DOCTOR_CRITICAL, ev, buf,
			                  "identity %s is held by two different certificates in force: two devices "
			                  "can pose as %s",
			                  a->cn, a->cn);
			shared++;
		}
	}
	if(!shared && set.n) {
		util_snprintf(ev, sizeof(ev), "%zu certificates compared by fingerprint and identity", set.n);
		doctor_report_add(r, "PKI-SHARED", DOCTOR_PASS, ev, NULL,
		                  "every device holds its own certificate and identity");
	}

	/* Expiry of what is in use (issued/ holds the newest of each name). */
	int soon = 0;
	int min_days = 1 << 30;
	const doctor_pki_cert_t *soonest = NULL;
	for(size_t i = 0; i < set.n; i++) {
		const doctor_pki_cert_t *c = &set.c[i];
		bool dup = false;
		if((!c->issued && c->from == NULL && !c->is_ca) || c->revoked) {
			continue; /* newcerts history, or revoked */
		}
		for(size_t k = 0; k < i; k++) {
			dup |= strcmp(set.c[k].fp, c->fp) == 0 && (set.c[k].issued || set.c[k].from || set.c[k].is_ca);
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

	if(have_crl || in->dir) {
		doctor_pki_crl(crlfile, ca, in->now, in->crlfile != NULL, r);
	}
	if(in->dir) {
		util_snprintf(buf, sizeof(buf), "%s/private/ca.key", in->dir);
		if(access(buf, F_OK) == 0) {
			doctor_pki_check_key(buf, true, r);
		} else {
			util_snprintf(ev, sizeof(ev), "%s: not present", buf);
			doctor_report_add(r, "PKI-CA-KEY", DOCTOR_PASS, ev, NULL,
			                  "the CA key is not on this host (kept offline)");
		}
		util_snprintf(buf, sizeof(buf), "%s/private", in->dir);
		struct dirent **names = NULL;
		int n = scandir(buf, &names, NULL, alphasort);
		for(int i = 0; i < n; i++) {
			size_t len = strlen(names[i]->d_name);
			char kp[4096];
			if(len > 4 && strcmp(names[i]->d_name + len - 4, ".key") == 0 &&
			   strcmp(names[i]->d_name, "ca.key") != 0 &&
			   util_snprintf(kp, sizeof(kp), "%s/%s", buf, names[i]->d_name) >= 0 && stat(kp, &sb) == 0 &&
			   (sb.st_mode & 07)) {
				doctor_pki_check_key(kp, false, r);
			}
			free(names[i]);
		}
		free(names);
	}
	X509_free(ca);
	if(in->dir) {
		doctor_renewal_check(in->dir, rev, in->now, r);
	}
	revocation_free(rev);
	doctor_pki_set_free(&set);
}
