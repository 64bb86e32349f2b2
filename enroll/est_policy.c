/*
 * est_policy.c — re-enrollment eligibility and rate limits (est_policy.h).
 */
#include "est_policy.h"

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "identity.h"
#include "ratelimit.h"
#include "util.h"

#define LIMITS_MAX_KEYS 8192

est_err_t est_reenroll_check(X509 *peer, STACK_OF(X509) *chain, X509 *root, X509 *intermediate,
                             const revocation_t *rev, time_t now, est_peer_t *out, char *why,
                             size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if(!peer) {
		util_strlcpy(why, "no client certificate: /simplereenroll needs the device's current "
		                  "certificate (mutual TLS); a new device enrolls with a token at "
		                  "/simpleenroll",
		             whylen);
		return EST_E_CERT;
	}
	const char *reason = NULL;
	if(identity_check_dates(peer, now, &reason)) {
		util_snprintf(why, whylen, "client certificate %s; enroll again with a new token "
		                           "(scripts/pki enroll-token)",
		              reason);
		return EST_E_CERT;
	}
	if(identity_check_not_ca(peer, &reason)) {
		util_snprintf(why, whylen, "client certificate refused: %s", reason);
		return EST_E_CERT;
	}
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = chain ? sk_X509_dup(chain) : sk_X509_new_null();
	est_err_t rc = EST_E_CERT;
	if(!store || !ctx || !untrusted || X509_STORE_add_cert(store, root) != 1 ||
	   (intermediate && !sk_X509_push(untrusted, intermediate)) ||
	   X509_STORE_CTX_init(ctx, store, peer, untrusted) != 1) {
		util_strlcpy(why, "cannot set up certificate verification", whylen);
		rc = EST_E_INTERNAL;
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if(X509_verify_cert(ctx) != 1) {
		util_snprintf(why, whylen, "client certificate does not verify against the issuer: %s",
		              X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	identity_opts_t o = {.source = IDENTITY_SAN_URI, .max_len = EST_NAME_MAX};
	o.uri_prefixes[0] = "urn:plantgate:device:";
	char id[IDENTITY_MAX + 1];
	if(identity_from_cert(peer, &o, id, sizeof(id), &reason)) {
		util_snprintf(why, whylen, "client certificate is not a plantgate device certificate: %s",
		              reason);
		goto out;
	}
	char sha[65];
	if(revocation_cert_ids(peer, out->serial, sizeof(out->serial), sha)) {
		util_strlcpy(why, "cannot read the client certificate's serial", whylen);
		goto out;
	}
	util_strlcpy(out->identity, id, sizeof(out->identity));
	identity_cert_attrs(peer, out->site, sizeof(out->site), out->line, sizeof(out->line));
	if(rev && revocation_is_revoked(rev, peer, id, out->serial, sha, &reason)) {
		util_snprintf(why, whylen, "client certificate is revoked (%s); enroll again with a new "
		                           "token if the device may come back",
		              reason ? reason : "revoked");
		out->revoked = true; /* everything else about it is fine */
		goto out;
	}
	rc = EST_OK;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	return rc;
}

struct est_limits {
	hmap_t *m;
};

est_limits_t *est_limits_new(void)
{
	est_limits_t *l = calloc(1, sizeof(*l));
	if(l && !(l->m = hmap_new(free))) {
		free(l);
		l = NULL;
	}
	return l;
}

void est_limits_free(est_limits_t *l)
{
	if(l) {
		hmap_free(l->m);
		free(l);
	}
}

bool est_limits_take(est_limits_t *l, const char *key, uint32_t count, int64_t period_ms,
                     int64_t now_ms)
{
	ratelimit_bucket_t *b = hmap_get(l->m, key);
	if(!b) {
		if(hmap_count(l->m) >= LIMITS_MAX_KEYS) {
			/* A flood of distinct keys: forget them all rather than grow. */
			hmap_t *n = hmap_new(free);
			if(!n) {
				return false;
			}
			hmap_free(l->m);
			l->m = n;
		}
		b = calloc(1, sizeof(*b));
		if(!b || hmap_put(l->m, key, b)) {
			free(b);
			return false;
		}
	}
	double rate = (double)count * 1000.0 / (double)period_ms;
	return ratelimit_take(b, rate, (double)count, 1.0, now_ms);
}
