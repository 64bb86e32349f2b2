/*
 * auth.c — who may connect.  Runs on MOSQ_EVT_BASIC_AUTH, which mosquitto
 * calls for every client as long as use_identity_as_username and
 * use_subject_as_username are both off (they skip BASIC_AUTH entirely).
 *
 * A client is admitted only when: it presented a certificate (mosquitto has
 * verified the chain and CRL), the certificate is within its dates, its
 * issuer is pinned (if pinning is configured), the identity it carries is
 * well-formed, the client id is bound to that identity, and the policy admits
 * the identity.  The identity then replaces whatever username the client
 * sent, so every later ACL decision keys on the certificate, never on
 * client-supplied text.
 */
#include "plugin_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static int refuse(pg_plugin_t *pg, struct mosquitto *client, const char *identity, const char *why,
                  const char *what_to_do)
{
	char cid[128], id[128];
	pg->stats.connects_refused++;
	mosquitto_log_printf(MOSQ_LOG_WARNING,
	                     PG_LOG_PREFIX "connect refused: address=%s client_id=\"%s\" identity=\"%s\" reason=\"%s\"%s%s%s",
	                     mosquitto_client_address(client),
	                     util_log_safe(mosquitto_client_id(client), cid, sizeof(cid)),
	                     util_log_safe(identity, id, sizeof(id)), why, what_to_do ? " fix=\"" : "",
	                     what_to_do ? what_to_do : "", what_to_do ? "\"" : "");
	return MOSQ_ERR_AUTH;
}

int auth_basic(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	pg_plugin_t *pg = userdata;
	struct mosquitto *client = ed->client;
	char identity[IDENTITY_MAX + 1] = "";
	char site[IDENTITY_MAX + 1], line[IDENTITY_MAX + 1];
	const char *reason = NULL;
	int rc;

	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) {
		return refuse(pg, client, NULL, "no client certificate",
		              "connect with the device's own certificate; this listener needs require_certificate true");
	}
	if(pg->npins && !identity_issuer_pinned(cert, pg->pins, pg->npins)) {
		rc = refuse(pg, client, NULL, "certificate not issued by a pinned CA",
		            "issue the device certificate from the plant CA (scripts/pki device ID)");
		goto out;
	}
	if(identity_check_dates(cert, time(NULL), &reason)) {
		rc = refuse(pg, client, NULL, reason, NULL);
		goto out;
	}
	if(identity_from_cert(cert, &pg->id_opts, identity, sizeof(identity), &reason)) {
		rc = refuse(pg, client, NULL, reason,
		            "issue the certificate with a plain identity: letters, digits, '.', '_', '-', ':'");
		identity[0] = '\0';
		goto out;
	}
	const char *cid = mosquitto_client_id(client);
	if(!identity_clientid_ok(identity, cid, pg->id_opts.binding)) {
		rc = refuse(pg, client, identity, "client id is not bound to the certificate identity",
		            pg->id_opts.binding == BINDING_EQUAL ? "set the MQTT client id to the identity"
		                                                 : "set the MQTT client id to the identity or identity-<suffix>");
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
	if(!policy_admit(pg->policy, &who, &reason)) {
		rc = refuse(pg, client, identity, reason, "add the device to the policy file, then reload");
		goto out;
	}

	pg_client_t *rec = calloc(1, sizeof(*rec));
	if(!rec) {
		rc = MOSQ_ERR_NOMEM;
		goto out;
	}
	util_strlcpy(rec->identity, identity, sizeof(rec->identity));
	util_strlcpy(rec->site, site, sizeof(rec->site));
	util_strlcpy(rec->line, line, sizeof(rec->line));
	if(hmap_put(pg->clients, cid, rec)) {
		free(rec);
		rc = MOSQ_ERR_NOMEM;
		goto out;
	}
	/* Frees ed->username: do not read it after this. */
	rc = mosquitto_set_username(client, identity);
	if(rc) {
		goto out;
	}
	pg->stats.connects_ok++;
	mosquitto_log_printf(MOSQ_LOG_INFO, PG_LOG_PREFIX "connect accepted: address=%s identity=\"%s\"",
	                     mosquitto_client_address(client), identity);
	rc = MOSQ_ERR_SUCCESS;
out:
	X509_free(cert);
	return rc;
}
