/*
 * acl.c — what a connected client may touch.  Runs on MOSQ_EVT_ACL_CHECK:
 * for WRITE on every PUBLISH, for SUBSCRIBE on every filter (raw, including
 * $share/<group>/), and for READ on every delivery — also deliveries queued
 * for an offline persistent session, when the client has no live
 * certificate.  So decisions key on the identity recorded at connect (the
 * username auth.c set) and the policy entry resolved then, never on the
 * certificate.
 *
 * After the policy allows a PUBLISH, the device's token buckets (messages/s
 * and bytes/s) decide; a device that keeps hitting them is disconnected on
 * the next tick.  The hot path for allowed messages logs and writes nothing.
 *
 * Fails closed: no identity, no client id, an unknown access type or any
 * invalid input is a deny.
 */
#include "plugin_int.h"

#include <string.h>

#include "util.h"

/* Rate limits after the policy allowed a publish.  True = within limits. */
static bool within_rate(pg_plugin_t *pg, pg_client_t *rec, const struct mosquitto_evt_acl_check *ed)
{
	if(!rec) {
		return true;
	}
	double rate, bytes;
	policy_binding_limits(rec->binding, &rate, &bytes);
	if(rate < 0) {
		rate = pg->rate_msgs;
	}
	if(bytes < 0) {
		bytes = pg->rate_bytes;
	}
	if(rate <= 0 && bytes <= 0) {
		return true;
	}
	int64_t now = control_mono_ms();
	bool ok = ratelimit_take(&rec->msgs, rate, rate * pg->burst_seconds, 1, now) &&
	          ratelimit_take(&rec->bytes, bytes, bytes * pg->burst_seconds, (double)ed->payloadlen, now);
	if(ok) {
		return true;
	}
	pg->stats.rate_limited++;
	rec->limited++;
	rec->limited_unlogged++;
	if(ratelimit_strike(&rec->strikes, pg->flood_strikes, pg->flood_window_ms, now) && !rec->kick_pending) {
		rec->kick_pending = true; /* kicked on the next tick, outside this callback */
	}
	/* One log line per device per 10 s, with the count, not one per message. */
	if(now - rec->limited_logged_ms >= 10000) {
		char id[128];
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     PG_LOG_PREFIX "rate limit: identity=\"%s\" refused %llu publishes "
		                     "(limit %.0f msg/s, %.0f bytes/s); total %llu",
		                     PG_SAFE(id, rec->identity), (unsigned long long)rec->limited_unlogged, rate, bytes,
		                     (unsigned long long)rec->limited);
		control_audit(pg,
		              &(audit_event_t){.event = AUDIT_EV_RATE_LIMITED,
		                               .identity = rec->identity,
		                               .clientid = mosquitto_client_id(ed->client),
		                               .address = rec->address,
		                               .topic = ed->topic,
		                               .access = "publish",
		                               .decision = "deny",
		                               .reason = "rate limit exceeded",
		                               .count = (int)(rec->limited_unlogged > 1000000 ? 1000000 : rec->limited_unlogged)},
		              false);
		rec->limited_unlogged = 0;
		rec->limited_logged_ms = now;
	}
	return false;
}

/* Should this refusal be written to the broker log?  Identical repeats of
 * the last refusal and more than 20 lines per client per 10 s are counted
 * instead, and the count is logged when the window closes. */
static bool log_refusal(pg_client_t *rec, const char *access, const char *topic)
{
	char key[128];
	if(!rec) {
		return true;
	}
	int64_t now = control_mono_ms();
	if(now - rec->deny_window_ms > 10000) {
		if(rec->deny_suppressed) {
			char id[128];
			mosquitto_log_printf(MOSQ_LOG_NOTICE,
			                     PG_LOG_PREFIX "%llu further refusals for identity=\"%s\" not logged "
			                     "(repeats or flood); all are counted in $SYS/plantgate/",
			                     (unsigned long long)rec->deny_suppressed, PG_SAFE(id, rec->identity));
		}
		rec->deny_window_ms = now;
		rec->deny_logged = 0;
		rec->deny_suppressed = 0;
		rec->last_denied[0] = '\0';
	}
	util_snprintf(key, sizeof(key), "%s %s", access, topic);
	if(!strcmp(key, rec->last_denied) || rec->deny_logged >= 20) {
		rec->deny_suppressed++;
		return false;
	}
	util_strlcpy(rec->last_denied, key, sizeof(rec->last_denied));
	rec->deny_logged++;
	return true;
}

int acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	pg_plugin_t *pg = userdata;
	policy_request_t req = {0};
	policy_decision_t d = {0};

	pg->reload_pass = false; /* the reload pass (auth.c) is over */
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
	pg_client_t *rec = hmap_get(pg->clients, cid);
	if(rec && strcmp(rec->identity, identity)) {
		rec = NULL;
	}
	if(rec) {
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
	if(rec) {
		policy_check_resolved(pg->policy, rec->binding, &who, &req, &d);
	} else {
		policy_check(pg->policy, &who, &req, &d);
	}
	/* A WRITE check from a connection that is not the client's live one is
	 * mosquitto about to send that connection's will (src/context.c,
	 * context__send_will): a PUBLISH only ever comes from the live
	 * connection, and auth.c makes every new connection the live one before
	 * mosquitto closes the one it takes over.  See provenance.c. */
	bool will = req.access == POLICY_PUBLISH && (!rec || rec->client != ed->client);
	char topic[256], id[128];
	if(d.allow && will) {
		int rc = provenance_will(pg, ed, identity);
		if(rc) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "will not sent: identity=\"%s\" topic=\"%s\" "
			                     "reason=\"cannot publish the stamped copy (error %d)\"",
			                     util_log_safe(identity, id, sizeof(id)),
			                     util_log_safe(ed->topic, topic, sizeof(topic)), rc);
		} else {
			mosquitto_log_printf(MOSQ_LOG_INFO, PG_LOG_PREFIX "will sent with the verified sender: "
			                     "identity=\"%s\" topic=\"%s\" qos=%d retain=%d",
			                     util_log_safe(identity, id, sizeof(id)),
			                     util_log_safe(ed->topic, topic, sizeof(topic)), ed->qos, ed->retain);
		}
		return MOSQ_ERR_ACL_DENIED; /* mosquitto's own, unstamped copy */
	}
	if(d.allow) {
		if(req.access == POLICY_PUBLISH && !within_rate(pg, rec, ed)) {
			return MOSQ_ERR_ACL_DENIED;
		}
		return MOSQ_ERR_SUCCESS;
	}

	const char *ev = AUDIT_EV_PUBLISH_DENIED;
	const char *access = will ? "will" : policy_access_name(req.access);
	switch(req.access) {
	case POLICY_PUBLISH:
		pg->stats.publish_denied++;
		pg->stats.wills_denied += will;
		break;
	case POLICY_SUBSCRIBE:
		pg->stats.subscribe_denied++;
		ev = AUDIT_EV_SUBSCRIBE_DENIED;
		break;
	case POLICY_READ:
		pg->stats.read_denied++;
		ev = AUDIT_EV_READ_DENIED;
		break;
	}
	char why[512], rule[300] = "";
	policy_decision_format(&d, &req, why, sizeof(why));
	if(d.rule_file) {
		util_snprintf(rule, sizeof(rule), "%s:%d", d.rule_file, d.rule_line);
	}
	if(log_refusal(will ? NULL : rec, access, ed->topic)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "%s denied: identity=\"%s\" topic=\"%s\" qos=%d retain=%d reason=\"%s\"",
	                     access, util_log_safe(identity, id, sizeof(id)),
	                     util_log_safe(ed->topic, topic, sizeof(topic)), req.qos, req.retain, why);
	}
	control_audit(pg,
	              &(audit_event_t){.event = ev,
	                               .identity = identity,
	                               .clientid = cid,
	                               .address = rec ? rec->address : NULL,
	                               .topic = ed->topic,
	                               .access = access,
	                               .decision = "deny",
	                               .reason = d.reason ? d.reason : "no rule grants it",
	                               .rule = rule[0] ? rule : NULL},
	              true);
	return MOSQ_ERR_ACL_DENIED;
}
