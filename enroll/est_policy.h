/*
 * est_policy.h — who may renew, and how often anyone may ask.
 *
 * Re-enrollment (/simplereenroll) is granted to a client certificate that
 * chains to the issuer, is within its dates at the injected time, is not a
 * CA certificate (identity_check_not_ca), is a device
 * certificate (SAN URI urn:plantgate:device:ID whose ID passes the plugin's
 * identity rules), and is not revoked by the plugin's revocation list or the
 * CRL (plugin/core/revocation.c).  The new certificate keeps the identity,
 * site and line read from it.
 *
 * Rate limits are token buckets (plugin/core/ratelimit.c) keyed by identity
 * and by client address.  Pure: time is a parameter.
 */
#ifndef PG_EST_POLICY_H
#define PG_EST_POLICY_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "est_csr.h"
#include "est_token.h"
#include "revocation.h"

typedef struct est_peer {
	char identity[EST_NAME_MAX + 1];
	char site[EST_NAME_MAX + 1];
	char line[EST_NAME_MAX + 1];
	char serial[128]; /* upper-case hex, as in index.txt */
	bool revoked;     /* refused only because it is revoked (the fields are set) */
} est_peer_t;

/* Check the client certificate `peer` (with the chain it sent, may be NULL)
 * ... (when the only fault is a revocation, out is filled and out->revoked
 * set, so a lost response can be re-sent: est_index_resendable()).
 * for re-enrollment at `now` against trust anchor `root`, with `intermediate`
 * (may be NULL) as a CA the chain may pass through, and revocations `rev`
 * (may be NULL).  So a device with a certificate from the root (scripts/pki)
 * or from plantgate-est's intermediate may renew.  Fills *out.  EST_E_CERT
 * with why on refusal. */
est_err_t est_reenroll_check(X509 *peer, STACK_OF(X509) *chain, X509 *root, X509 *intermediate,
                             const revocation_t *rev, time_t now, est_peer_t *out, char *why,
                             size_t whylen);

typedef struct est_limits est_limits_t;

est_limits_t *est_limits_new(void);
void est_limits_free(est_limits_t *l);

/* One request by `key` ("id:press-07", "addr:10.0.0.7") at now_ms (monotonic):
 * true when it is within `count` per `period_ms` (burst = count). */
bool est_limits_take(est_limits_t *l, const char *key, uint32_t count, int64_t period_ms,
                     int64_t now_ms);

#endif
