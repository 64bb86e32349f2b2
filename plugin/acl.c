/*
 * acl.c — what a connected client may touch.  Runs on MOSQ_EVT_ACL_CHECK:
 * for WRITE on every PUBLISH, for SUBSCRIBE on every filter (raw, including
 * $share/<group>/), and for READ on every delivery — also deliveries queued
 * for an offline persistent session, when the client has no live
 * certificate.  So decisions key on the identity recorded at connect (the
 * username auth.c set), never on the certificate.
 *
 * Fails closed: no identity, no client id, an unknown access type or any
 * invalid input is a deny.
 */
#include "plugin_int.h"

#include <string.h>

#include "util.h"

static const char *access_name(policy_access_t a)
{
	switch(a) {
	case POLICY_PUBLISH:
		return "publish";
	case POLICY_SUBSCRIBE:
		return "subscribe";
	case POLICY_READ:
		return "read";
	}
	return "?";
}

int acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	pg_plugin_t *pg = userdata;
	policy_request_t req = {0};
	policy_decision_t d = {0};

	switch(ed->access) {
	case MOSQ_ACL_UNSUBSCRIBE:
		return MOSQ_ERR_SUCCESS; /* dropping a subscription never grants anything */
	case MOSQ_ACL_WRITE:
		req.access = POLICY_PUBLISH;
		break;
	case MOSQ_ACL_SUBSCRIBE:
		req.access = POLICY_SUBSCRIBE;
		break;
	case MOSQ_ACL_READ:
		req.access = POLICY_READ;
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	const char *identity = mosquitto_client_username(ed->client);
	const char *cid = mosquitto_client_id(ed->client);
	if(!identity || !cid || !ed->topic) {
		return MOSQ_ERR_ACL_DENIED;
	}

	policy_attr_t attrs[2];
	policy_subject_t who = {identity, cid, attrs, 0};
	const pg_client_t *rec = hmap_get(pg->clients, cid);
	if(rec && !strcmp(rec->identity, identity)) {
		if(rec->site[0]) {
			attrs[who.nattrs++] = (policy_attr_t){"site", rec->site};
		}
		if(rec->line[0]) {
			attrs[who.nattrs++] = (policy_attr_t){"line", rec->line};
		}
	}
	req.topic = ed->topic;
	req.qos = ed->qos;
	req.retain = ed->retain;
	req.payloadlen = ed->payloadlen;
	policy_check(pg->policy, &who, &req, &d);
	if(d.allow) {
		return MOSQ_ERR_SUCCESS;
	}

	switch(req.access) {
	case POLICY_PUBLISH:
		pg->stats.publish_denied++;
		break;
	case POLICY_SUBSCRIBE:
		pg->stats.subscribe_denied++;
		break;
	case POLICY_READ:
		pg->stats.read_denied++;
		break;
	}
	char topic[256], id[128];
	if(d.rule_file) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     PG_LOG_PREFIX "%s denied: identity=\"%s\" topic=\"%s\" qos=%d retain=%d reason=\"%s\" rule=%s:%d",
		                     access_name(req.access), util_log_safe(identity, id, sizeof(id)),
		                     util_log_safe(ed->topic, topic, sizeof(topic)), req.qos, req.retain,
		                     d.reason ? d.reason : "denied", d.rule_file, d.rule_line);
	} else {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
		                     PG_LOG_PREFIX "%s denied: identity=\"%s\" topic=\"%s\" qos=%d retain=%d reason=\"%s\"",
		                     access_name(req.access), util_log_safe(identity, id, sizeof(id)),
		                     util_log_safe(ed->topic, topic, sizeof(topic)), req.qos, req.retain,
		                     d.reason ? d.reason : "no rule grants it");
	}
	return MOSQ_ERR_ACL_DENIED;
}
