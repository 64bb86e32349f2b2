/*
 * doctor_renewal.c — which device certificates will lapse without a renewal
 * path (PKI-RENEWAL, docs/enrollment.md).
 *
 * For every identity with a device or bridge certificate in force in the
 * scripts/pki directory (index.txt status V, not revoked by revoked.txt or
 * the CRL, within its dates at the injected `now`), the newest of them (the
 * latest notAfter) decides:
 *  - issued by plantgate-est (its index.txt row says "est" in the file-name
 *    field): the device runs plantgate-enroll and renews itself.  If it has
 *    less than 7 days left it did not renew in time (the default renews 30
 *    days ahead): its timer does not run or cannot reach plantgate-est.
 *  - issued by hand (scripts/pki): nothing renews it.  Within 30 days of its
 *    expiry it will lapse unless someone acts.
 * Server certificates are PKI-SERVER-CERT's business; revoked and expired
 * ones are history.
 *
 * With an intermediate CA, plantgate-est also keeps that CA's CRL
 * (DIR/crl-est.pem, copied into DIR/crl.pem); mosquitto's crlfile refuses
 * every device it issued once that CRL is out of date, so PKI-CRL reports it
 * due, out of date, or missing from crl.pem.
 */
#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "est_csr.h"
#include "revocation.h"
#include "util.h"

#define RENEWAL_EST_LATE_DAYS 7
#define RENEWAL_HAND_SOON_DAYS 30
#define RENEWAL_MAX_IDS 100000

typedef struct renewal_id {
	char cn[256];
	char serial[80];
	char until[32];
	time_t not_after;
	bool est;
} renewal_id_t;

typedef struct renewal_set {
	renewal_id_t *v;
	size_t n, cap;
} renewal_set_t;

/* "YYMMDDHHMMSSZ" or "YYYYMMDDHHMMSSZ" (index.txt) to time_t; -1 if bad. */
static time_t renewal_time(const char *s, char *iso, size_t isolen)
{
	ASN1_TIME *t = ASN1_TIME_new();
	struct tm tm;
	time_t out = -1;
	if(t && ASN1_TIME_set_string_X509(t, s) == 1 && ASN1_TIME_to_tm(t, &tm) == 1) {
		out = timegm(&tm);
		strftime(iso, isolen, "%Y-%m-%d", &tm);
	}
	ASN1_TIME_free(t);
	return out;
}

/* A client certificate (device or bridge), not a server's or a CA's. */
static bool renewal_is_client(const char *dir, const char *serial)
{
	char path[4096];
	if(util_snprintf(path, sizeof(path), "%s/newcerts/%s.pem", dir, serial) < 0) {
		return false;
	}
	FILE *f = fopen(path, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if(f) {
		fclose(f);
	}
	bool client = x && X509_check_ca(x) == 0 &&
	              (X509_get_extended_key_usage(x) & XKU_SSL_SERVER) == 0 &&
	              (X509_get_extended_key_usage(x) & XKU_SSL_CLIENT) != 0;
	X509_free(x);
	return client;
}

static void renewal_row(renewal_set_t *s, const char *dir, char *line, const revocation_t *rev,
                        time_t now)
{
	char *f[6];
	if(est_index_split(line, f) != 6 || strcmp(f[0], "V") != 0) {
		return;
	}
	const char *cn = strstr(f[5], "/CN=");
	char name[256], iso[32] = "";
	if(!cn || util_strlcpy(name, cn + 4, sizeof(name))) {
		return;
	}
	name[strcspn(name, "/")] = '\0';
	time_t na = renewal_time(f[1], iso, sizeof(iso));
	const char *why = NULL;
	if(na < 0 || na <= now || (rev && revocation_is_revoked(rev, NULL, name, f[3], "", &why)) ||
	   !renewal_is_client(dir, f[3])) {
		return;
	}
	renewal_id_t *e = NULL;
	for(size_t i = 0; i < s->n && !e; i++) {
		if(strcmp(s->v[i].cn, name) == 0) {
			e = &s->v[i];
		}
	}
	if(!e) {
		if(s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 64;
			renewal_id_t *nv = nc <= RENEWAL_MAX_IDS ? realloc(s->v, nc * sizeof(*nv)) : NULL;
			if(!nv) {
				return;
			}
			s->v = nv;
			s->cap = nc;
		}
		e = &s->v[s->n++];
		memset(e, 0, sizeof(*e));
		util_strlcpy(e->cn, name, sizeof(e->cn));
	} else if(na <= e->not_after) {
		return; /* an older certificate of an identity already seen */
	}
	e->not_after = na;
	e->est = strcmp(f[4], "est") == 0;
	util_strlcpy(e->serial, f[3], sizeof(e->serial));
	util_strlcpy(e->until, iso, sizeof(e->until));
}

/* The CRLs of a PEM file (NULL when it cannot be read). */
static STACK_OF(X509_CRL) *renewal_crls(const char *path)
{
	FILE *f = fopen(path, "re");
	if(!f) {
		return NULL;
	}
	STACK_OF(X509_CRL) *st = sk_X509_CRL_new_null();
	for(X509_CRL *c; st && (c = PEM_read_X509_CRL(f, NULL, NULL, NULL));) {
		if(!sk_X509_CRL_push(st, c)) {
			X509_CRL_free(c);
		}
	}
	fclose(f);
	return st;
}

/* plantgate-est's intermediate keeps its own CRL (crl-est.pem), which must be
 * current and in crl.pem, or mosquitto refuses every device it issued. */
static void renewal_est_crl(const char *dir, time_t now, doctor_report_t *r)
{
	char own[4096], all[4096], ev[1024], next[32] = "?";
	if(util_snprintf(own, sizeof(own), "%s/crl-est.pem", dir) < 0 ||
	   util_snprintf(all, sizeof(all), "%s/crl.pem", dir) < 0) {
		return;
	}
	STACK_OF(X509_CRL) *mine = renewal_crls(own), *in_all = NULL;
	if(!mine) {
		return; /* no intermediate in use */
	}
	X509_CRL *c = sk_X509_CRL_num(mine) ? sk_X509_CRL_value(mine, 0) : NULL;
	const ASN1_TIME *nu = c ? X509_CRL_get0_nextUpdate(c) : NULL;
	struct tm tm;
	if(nu && ASN1_TIME_to_tm(nu, &tm) == 1) {
		strftime(next, sizeof(next), "%Y-%m-%d %H:%M UTC", &tm);
	}
	util_snprintf(ev, sizeof(ev), "%s: next update %s", own, next);
	const char *fix = "check that plantgate-est runs (it re-signs this CRL daily), then scripts/pki "
	                  "--dir DIR crl && systemctl reload mosquitto";
	bool listed = false;
	in_all = c ? renewal_crls(all) : NULL;
	for(int i = 0; in_all && i < sk_X509_CRL_num(in_all); i++) {
		X509_CRL *o = sk_X509_CRL_value(in_all, i);
		listed |= X509_NAME_cmp(X509_CRL_get_issuer(o), X509_CRL_get_issuer(c)) == 0 &&
		          ASN1_TIME_compare(X509_CRL_get0_nextUpdate(o), nu) >= 0;
	}
	if(!c || !nu) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev, fix,
		                  "the EST intermediate's CRL cannot be read");
	} else if(X509_cmp_time(nu, &now) < 0) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev, fix,
		                  "the EST intermediate's CRL is out of date since %s: with crlfile set, "
		                  "mosquitto refuses every device plantgate-est issued",
		                  next);
	} else if(!listed) {
		util_snprintf(ev, sizeof(ev), "%s: no CRL of %s as current as %s", all, own, own);
		doctor_report_add(r, "PKI-CRL", DOCTOR_CRITICAL, ev,
		                  "scripts/pki --dir DIR crl && systemctl reload mosquitto",
		                  "crl.pem lacks the EST intermediate's current CRL: mosquitto refuses its "
		                  "devices once the copy it has expires");
	} else if((nu && ASN1_TIME_to_tm(nu, &tm) == 1 && timegm(&tm) - now < 7 * 86400)) {
		doctor_report_add(r, "PKI-CRL", DOCTOR_WARNING, ev, fix,
		                  "the EST intermediate's CRL expires on %s, in less than 7 days", next);
	} else {
		doctor_report_add(r, "PKI-CRL", DOCTOR_PASS, ev, NULL,
		                  "the EST intermediate's CRL is current until %s and in crl.pem", next);
	}
	sk_X509_CRL_pop_free(mine, X509_CRL_free);
	sk_X509_CRL_pop_free(in_all, X509_CRL_free);
}

void doctor_renewal_check(const char *dir, const revocation_t *rev, time_t now, doctor_report_t *r)
{
	char path[4096], line[8192], ev[1024], fix[512];
	renewal_set_t s = {0};
	if(util_snprintf(path, sizeof(path), "%s/index.txt", dir) < 0) {
		return;
	}
	renewal_est_crl(dir, now, r);
	FILE *f = fopen(path, "re");
	if(!f) {
		return; /* PKI-DIR says the directory cannot be read */
	}
	while(fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		renewal_row(&s, dir, line, rev, now);
	}
	fclose(f);
	size_t est = 0, hand = 0, flagged = 0;
	for(size_t i = 0; i < s.n; i++) {
		const renewal_id_t *e = &s.v[i];
		long days = (long)((e->not_after - now) / 86400);
		util_snprintf(ev, sizeof(ev), "%s: CN=%s, serial %s, expires %s (%s)", path, e->cn, e->serial,
		              e->until, e->est ? "issued by plantgate-est" : "issued by scripts/pki");
		if(e->est) {
			est++;
			if(days < RENEWAL_EST_LATE_DAYS) {
				util_snprintf(fix, sizeof(fix), "on the device: run plantgate-enroll --renew-before 30d "
				                                "and check its timer and that it reaches plantgate-est");
				doctor_report_add(r, "PKI-RENEWAL", DOCTOR_WARNING, ev, fix,
				                  "%s renews over EST but has not renewed: %ld day%s left", e->cn, days,
				                  days == 1 ? "" : "s");
				flagged++;
			}
		} else {
			hand++;
			if(days < RENEWAL_HAND_SOON_DAYS) {
				util_snprintf(fix, sizeof(fix), "re-issue it by hand, or let it renew itself: revoke it, "
				                                "scripts/pki --dir DIR enroll-token %s, plantgate-enroll "
				                                "on the device",
				              e->cn);
				doctor_report_add(r, "PKI-RENEWAL", DOCTOR_WARNING, ev, fix,
				                  "%s will lapse in %ld day%s: nothing renews it", e->cn, days,
				                  days == 1 ? "" : "s");
				flagged++;
			}
		}
	}
	if(!flagged && s.n) {
		util_snprintf(ev, sizeof(ev), "%s: %zu identities with a client certificate in force", path, s.n);
		doctor_report_add(r, "PKI-RENEWAL", DOCTOR_PASS, ev, hand ? "let devices renew themselves: docs/enrollment.md" : NULL,
		                  "no device certificate lapses within 30 days without a renewal path (%zu renew "
		                  "themselves over EST, %zu issued by hand)",
		                  est, hand);
	}
	free(s.v);
}
