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
 * and bytes/s) decide; a device that keeps hitting them, or keeps sending
 * publishes and subscribes the policy refuses, is disconnected on the next
 * tick (plugin_opt_flood_disconnect).  A device's refusals are written one by
 * one up to a budget per 10 s, then summarised (control.c).  The hot path
 * for allowed messages logs and writes nothing.
 *
 * Fails closed: no identity, no client id, an unknown access type or any
 * invalid input is a deny.
 */
#include "plugin_int.h"

#include <string.h>

#include "util.h"

/* Rate limits after the policy allowed a publish.  True = within limits.
 * The buckets are the identity's (see pg_ident_t), so reconnecting does not
 * refill them. */
static bool within_rate(pg_plugin_t *pg, pg_client_t *rec, const char *identity,
                        const struct mosquitto_evt_acl_check *ed)
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
	pg_ident_t *id = control_ident(pg, identity, now);
	if(!id) {
		return true;
	}
	id->last_ms = now;
	bool ok = ratelimit_take(&id->msgs, rate, rate * pg->burst_seconds, 1, now) &&
	          ratelimit_take(&id->bytes, bytes, bytes * pg->burst_seconds, (double)ed->payloadlen, now);
	if(ok) {
		return true;
	}
	pg->stats.rate_limited++;
	id->limited++;
	id->limited_unlogged++;
	if(ratelimit_strike(&id->strikes, pg->flood_strikes, pg->flood_window_ms, now) && rec->client == ed->client) {
		rec->kick_pending = pg->kick_scan = true; /* kicked on the next tick, outside this callback */
	}
	/* One log line per device per 10 s, with the count, not one per message. */
	if(now - id->limited_logged_ms >= PG_DENY_WINDOW_MS) {
		char q[128];
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     PG_LOG_PREFIX "rate limit: identity=\"%s\" refused %llu publishes "
		                     "(limit %.0f msg/s, %.0f bytes/s); total %llu",
		                     PG_SAFE(q, identity), (unsigned long long)id->limited_unlogged, rate, bytes,
		                     (unsigned long long)id->limited);
		control_audit(pg,
		              &(audit_event_t){.event = AUDIT_EV_RATE_LIMITED,
		                               .identity = identity,
		                               .clientid = mosquitto_client_id(ed->client),
		                               .address = rec->address,
		                               .topic = ed->topic,
		                               .access = "publish",
		                               .decision = "deny",
		                               .reason = "rate limit exceeded",
		                               .count = (int)(id->limited_unlogged > 1000000 ? 1000000 : id->limited_unlogged)},
		              false);
		id->limited_unlogged = 0;
		id->limited_logged_ms = now;
	}
	return false;
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
		if(!rec->memo && req.access != POLICY_SUBSCRIBE) {
			rec->memo = policy_memo_new(); /* NULL (ENOMEM): decided without it */
		}
		policy_check_memo(pg->policy, rec->binding, &who, &req, rec->memo, &d);
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
		if(req.access == POLICY_PUBLISH && !within_rate(pg, rec, identity, ed)) {
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
	char why[512], qwhy[512], rule[300] = "";
	policy_decision_format(&d, &req, why, sizeof(why));
	if(d.rule_file) {
		util_snprintf(rule, sizeof(rule), "%s:%d", d.rule_file, d.rule_line);
	}
	int64_t now = control_mono_ms();
	pg_ident_t *st = will ? NULL : control_ident(pg, identity, now);
	/* Refused publishes and subscribes are the client's doing: they count
	 * toward flood_disconnect like rate-limited ones (READ refusals are
	 * deliveries the broker attempts, and wills come after the client). */
	if(st && req.access != POLICY_READ && rec && rec->client == ed->client &&
	   ratelimit_strike(&st->strikes, pg->flood_strikes, pg->flood_window_ms, now)) {
		rec->kick_pending = pg->kick_scan = true; /* kicked on the next tick, outside this callback */
	}
	if(!control_refusal_written(pg, identity, st, access, ed->topic, now)) {
		return MOSQ_ERR_ACL_DENIED; /* counted for the burst summary */
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "%s denied: identity=\"%s\" topic=\"%s\" qos=%d retain=%d reason=\"%s\"",
	                     access, util_log_safe(identity, id, sizeof(id)),
	                     util_log_safe(ed->topic, topic, sizeof(topic)), req.qos, req.retain, PG_SAFE(qwhy, why));
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
