/*
 * auth.c — who may connect.  Runs on MOSQ_EVT_BASIC_AUTH, which mosquitto
 * calls for every client as long as use_identity_as_username and
 * use_subject_as_username are both off (they skip BASIC_AUTH entirely).
 *
 * A client is admitted only when: it presented a certificate (mosquitto has
 * verified the chain and CRL), the certificate is within its dates, its
 * issuer is pinned (if pinning is configured), it is not revoked, the
 * identity it carries is well-formed, the client id is bound to that
 * identity, and the policy admits the identity.  The identity then replaces
 * whatever username the client sent, so every later ACL decision keys on the
 * certificate, never on client-supplied text.
 *
 * Repeated failures are throttled per address and identity: past
 * plugin_opt_connect_failures per minute that identity is refused at once
 * from that address, and the log carries one summary line per minute instead
 * of one per attempt.  (Failures before an identity is known — no or a
 * malformed certificate — are counted per address, for the log only.)
 */
#include "plugin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* The failure counter of this address (identity NULL: the client has not
 * shown a usable identity) or of this address and identity.  Keying on both
 * keeps one misbehaving device from locking out others behind the same
 * address (a gateway, a NAT). */
static pg_failures_t *failures_for(pg_plugin_t *pg, const char *addr, const char *identity)
{
	char key[IDENTITY_MAX + 80];
	if(!addr || util_snprintf(key, sizeof(key), "%s|%s", addr, identity ? identity : "") < 0) {
		return NULL;
	}
	pg_failures_t *f = hmap_get(pg->failures, key);
	if(!f && hmap_count(pg->failures) < 100000) {
		f = calloc(1, sizeof(*f));
		if(f && hmap_put(pg->failures, key, f)) {
			free(f);
			f = NULL;
		}
	}
	return f;
}

static bool throttled(pg_plugin_t *pg, const char *addr, const char *identity, int64_t now)
{
	if(pg->connect_failures == 0) {
		return false;
	}
	char key[IDENTITY_MAX + 80];
	if(!addr || util_snprintf(key, sizeof(key), "%s|%s", addr, identity ? identity : "") < 0) {
		return false;
	}
	const pg_failures_t *f = hmap_get(pg->failures, key);
	return f && f->strikes.count >= pg->connect_failures &&
	       now - f->strikes.window_start_ms <= pg->connect_window_ms;
}

/* Log (unless this address/identity is over its failure budget: then only
 * count, and control.c logs one summary per minute), audit, count. */
static int refuse(pg_plugin_t *pg, struct mosquitto *client, const char *identity, const char *why,
                  const char *what_to_do)
{
	char cid[128], id[128], ad[64];
	const char *addr = mosquitto_client_address(client);
	int64_t now = control_mono_ms();
	pg_failures_t *f = failures_for(pg, addr, identity);
	bool quiet = false;

	pg->stats.connects_refused++;
	if(f) {
		ratelimit_strike(&f->strikes, pg->connect_failures, pg->connect_window_ms, now);
		if(pg->connect_failures && f->strikes.count > pg->connect_failures) {
			f->suppressed++;
			quiet = true;
		}
	}
	if(!quiet) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     PG_LOG_PREFIX "connect refused: address=%s client_id=\"%s\" identity=\"%s\" reason=\"%s\"%s%s%s",
		                     PG_SAFE(ad, addr), util_log_safe(mosquitto_client_id(client), cid, sizeof(cid)),
		                     util_log_safe(identity, id, sizeof(id)), why, what_to_do ? " fix=\"" : "",
		                     what_to_do ? what_to_do : "", what_to_do ? "\"" : "");
	}
	control_audit(pg,
	              &(audit_event_t){.event = AUDIT_EV_CONNECT_REFUSED,
	                               .identity = identity,
	                               .clientid = mosquitto_client_id(client),
	                               .address = addr,
	                               .decision = "deny",
	                               .reason = why},
	              true);
	return MOSQ_ERR_AUTH;
}

/* Is the certificate signed by a pinned CA?  The signature check costs a
 * public-key operation, so a certificate that passed once (same bytes: same
 * SHA-256) is remembered; a reconnect storm verifies each device once. */
static bool pinned(pg_plugin_t *pg, X509 *cert, const char *sha256)
{
	if(sha256[0] && hmap_get(pg->pinned_ok, sha256)) {
		return true;
	}
	if(!identity_issuer_pinned(cert, pg->pins, pg->npins)) {
		return false;
	}
	if(sha256[0]) {
		if(hmap_count(pg->pinned_ok) >= 200000) {
			hmap_free(pg->pinned_ok); /* bounded: start over rather than grow */
			pg->pinned_ok = hmap_new(NULL);
		}
		if(pg->pinned_ok) {
			hmap_put(pg->pinned_ok, sha256, (void *)1);
		}
	}
	return true;
}

static const char *fix_for_identity(const char *reason)
{
	if(strstr(reason, "subjectAltName") || strstr(reason, "SAN")) {
		return "issue the certificate with scripts/pki, which writes the SAN, or set plugin_opt_identity_source";
	}
	return "issue the certificate with a plain identity: letters, digits, '.', '_', '-', ':'";
}

/* plugin_opt_clientid prefix lets `sensor-a` connect as `sensor-a-<suffix>`.
 * A second connection with a client id takes over that id's session (and
 * kicks its connection), so a suffixed client id must never be one that
 * another device could hold as its own: refuse it when the policy would
 * admit it as an identity — a `device` line, a `devices matching` pattern
 * that matches it, or `unknown-devices role ...` (which admits any). */
bool auth_clientid_taken(const policy_t *policy, const char *identity, const char *cid)
{
	const policy_subject_t who = {cid, cid, NULL, 0};
	return strcmp(cid, identity) != 0 && policy_resolve(policy, &who) != NULL;
}

/* Is this BASIC_AUTH mosquitto's re-check of a session that has no
 * connection?  On reload, mosquitto 2.0.11 re-runs BASIC_AUTH for every
 * context in db.contexts_by_id, offline persistent sessions included
 * (src/security_default.c, mosquitto_security_apply_default), and such a
 * session has no socket and so no certificate.  Refusing it is not harmless:
 * apply_default sets it to mosq_cs_disconnecting and calls do_disconnect()
 * on a session that is already disconnected, context__disconnect() then adds
 * it to the session-expiry list a second time (src/session_expiry.c,
 * session_expiry__add), and when it expires the first entry is left behind
 * pointing at the freed context: mosquitto crashes on a later expiry check.
 *
 * Inside the reload pass — control_reload() ran and the main loop has not
 * yet reached the next tick or any ACL check (src/loop.c runs the reload,
 * then apply_default, then the tick, with no MQTT packet handled in
 * between) — a context without a certificate is taken to be such a session,
 * because every connection the plugin admitted has one.  The answer is
 * "success", without a refusal line or audit line:
 *  - the session whose disconnect we saw (same client id, same context, no
 *    connection since), or one restored from persistence (no address:
 *    mosquitto gives every accepted connection one, src/context.c
 *    context__init), keeps its username — the identity verified when it
 *    connected — and its binding, which the reload re-resolved: a revoked
 *    or refused session is denied every READ;
 *  - any other (a session whose record was forgotten to bound memory, or —
 *    only on a listener without require_certificate, e.g. a websockets one
 *    serviced in the same loop pass — a new connection without a
 *    certificate) gets the username "$unverified", which no policy grants
 *    anything ('$' never starts an identity), instead of a refusal that
 *    mosquitto would turn into a double disconnect.
 * Either way the device goes through the whole check with its certificate
 * when it connects again. */
static bool offline_recheck(pg_plugin_t *pg, struct mosquitto *client)
{
	const char *cid = mosquitto_client_id(client);
	if(!pg->reload_pass || !cid) {
		return false;
	}
	const pg_client_t *rec = hmap_get(pg->clients, cid);
	if(!mosquitto_client_address(client) || (rec && !rec->client && rec->session == client)) {
		return true;
	}
	char q[128];
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "reload: client_id=\"%s\" has no connection or certificate and no record: "
	                     "it keeps its session but no rights (username $unverified) until it connects with its "
	                     "certificate", PG_SAFE(q, cid));
	return mosquitto_set_username(client, "$unverified") == MOSQ_ERR_SUCCESS;
}

int auth_basic(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	pg_plugin_t *pg = userdata;
	struct mosquitto *client = ed->client;
	char identity[IDENTITY_MAX + 1] = "";
	char site[IDENTITY_MAX + 1], line[IDENTITY_MAX + 1];
	char serial[68], sha256[65];
	const char *reason = NULL;
	int rc;
	int64_t now = control_mono_ms();

	const char *addr = mosquitto_client_address(client);
	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) {
		if(offline_recheck(pg, client)) {
			pg->stats.offline_rechecks++;
			return MOSQ_ERR_SUCCESS;
		}
		return refuse(pg, client, NULL, "no client certificate",
		              "connect with the device's own certificate; this listener needs require_certificate true");
	}
	if(revocation_cert_ids(cert, serial, sizeof(serial), sha256)) {
		rc = refuse(pg, client, NULL, "cannot read the certificate serial", NULL);
		goto out;
	}
	if(pg->npins && !pinned(pg, cert, sha256)) {
		rc = refuse(pg, client, NULL, "certificate not issued by a pinned CA",
		            "issue the device certificate from the plant CA (scripts/pki device ID)");
		goto out;
	}
	if(identity_check_dates(cert, time(NULL), &reason)) {
		rc = refuse(pg, client, NULL, reason, NULL);
		goto out;
	}
	if(identity_from_cert(cert, &pg->id_opts, identity, sizeof(identity), &reason)) {
		rc = refuse(pg, client, NULL, reason, fix_for_identity(reason));
		goto out;
	}
	/* mosquitto's chain check does not stop a CA certificate (the plant CA's
	 * own, or an intermediate) from being presented as a client's. */
	if(identity_check_not_ca(cert, &reason)) {
		rc = refuse(pg, client, identity, reason,
		            "issue the device its own certificate (scripts/pki device ID); a CA's key must never be on a device");
		goto out;
	}
	if(throttled(pg, addr, identity, now)) {
		pg->stats.connects_throttled++;
		rc = refuse(pg, client, identity, "too many failed connects of this identity from this address: throttled for a minute",
		            "fix the device's configuration; see the first refusal in the log");
		goto out;
	}
	if(revocation_is_revoked(pg->revoked, cert, identity, serial, sha256, &reason)) {
		rc = refuse(pg, client, identity, reason,
		            "this device was revoked; issue a new certificate only if it is trusted again");
		goto out;
	}
	const char *cid = mosquitto_client_id(client);
	if(!identity_clientid_ok(identity, cid, pg->id_opts.binding)) {
		rc = refuse(pg, client, identity, "client id is not bound to the certificate identity",
		            pg->id_opts.binding == BINDING_EQUAL ? "set the MQTT client id to the identity"
		                                                 : "set the MQTT client id to the identity or identity-<suffix>");
		goto out;
	}
	if(auth_clientid_taken(pg->policy, identity, cid)) {
		rc = refuse(pg, client, identity, "client id could be another device's identity (prefix mode)",
		            "use a suffix that makes no identity the policy admits, or the identity itself");
		goto out;
	}
	identity_cert_attrs(cert, site, sizeof(site), line, sizeof(line));
	policy_attr_t attrs[2];
	size_t nattrs = 0;
	if(site[0]) {
		attrs[nattrs++] = (policy_attr_t){"site", site};
	}
	if(line[0]) {
		attrs[nattrs++] = (policy_attr_t){"line", line};
	}
	policy_subject_t who = {identity, cid, attrs, nattrs};
	const policy_binding_t *binding = policy_resolve(pg->policy, &who);
	if(!binding) {
		rc = refuse(pg, client, identity, "identity not in the policy and unknown devices are refused",
		            "add the device to the policy file, then reload (kill -HUP the broker)");
		goto out;
	}

	pg_client_t *rec = hmap_get(pg->clients, cid);
	/* mosquitto re-runs BASIC_AUTH for every connected client after a
	 * reload: a re-check of a connection we admitted, not a new connect. */
	bool recheck = rec && rec->client == client && !strcmp(rec->identity, identity);
	if(!rec || strcmp(rec->identity, identity)) {
		rec = control_client_new(pg, cid);
		if(!rec) {
			rc = MOSQ_ERR_NOMEM;
			goto out;
		}
	}
	util_strlcpy(rec->identity, identity, sizeof(rec->identity));
	util_strlcpy(rec->site, site, sizeof(rec->site));
	util_strlcpy(rec->line, line, sizeof(rec->line));
	util_strlcpy(rec->serial, serial, sizeof(rec->serial));
	util_strlcpy(rec->sha256, sha256, sizeof(rec->sha256));
	util_strlcpy(rec->address, mosquitto_client_address(client), sizeof(rec->address));
	rec->binding = binding;
	policy_memo_clear(rec->memo); /* site and line may differ from the last connect */
	control_client_online(pg, rec, client);
	/* Its session may still hold subscriptions the new rights do not grant
	 * (a takeover keeps them without a SUBSCRIBE check): one kick makes
	 * mosquitto re-check them (check_subscription_acls in
	 * src/plugin_public.c), after which the device reconnects cleanly. */
	if(!recheck) {
		/* A pending kick was for the previous connection; a device whose
		 * rights changed while it was offline gets one now. */
		rec->kick_pending = rec->rights_changed;
		pg->kick_scan = pg->kick_scan || rec->kick_pending;
		rec->rights_changed = false;
	}
	/* Frees ed->username: do not read it after this. */
	rc = mosquitto_set_username(client, identity);
	if(rc) {
		goto out;
	}
	policy_binding_info_t bi;
	policy_binding_get_info(binding, &bi);
	char qid[128], qrole[128], qaddr[64], qfile[256];
	if(recheck) {
		mosquitto_log_printf(MOSQ_LOG_DEBUG, PG_LOG_PREFIX "re-checked after reload: identity=\"%s\" role=\"%s\"",
		                     PG_SAFE(qid, identity), PG_SAFE(qrole, bi.role));
		rc = MOSQ_ERR_SUCCESS;
		goto out;
	}
	pg->stats.connects_ok++;
	mosquitto_log_printf(MOSQ_LOG_INFO,
	                     PG_LOG_PREFIX "connect accepted: address=%s identity=\"%s\" role=\"%s\" rule=\"%s:%d\"",
	                     PG_SAFE(qaddr, rec->address), PG_SAFE(qid, identity), PG_SAFE(qrole, bi.role),
	                     PG_SAFE(qfile, bi.file), bi.line);
	control_audit(pg,
	              &(audit_event_t){.event = AUDIT_EV_CONNECT,
	                               .identity = identity,
	                               .clientid = cid,
	                               .address = rec->address,
	                               .decision = "allow",
	                               .reason = bi.role},
	              false);
	rc = MOSQ_ERR_SUCCESS;
out:
	X509_free(cert);
	return rc;
}
