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

void doctor_renewal_check(const char *dir, const revocation_t *rev, time_t now, doctor_report_t *r)
{
	char path[4096], line[8192], ev[1024], fix[512];
	renewal_set_t s = {0};
	if(util_snprintf(path, sizeof(path), "%s/index.txt", dir) < 0) {
		return;
	}
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
