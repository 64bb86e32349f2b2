/*
 * control.c — the plugin's life between connects: reload (SIGHUP), kicks,
 * disconnects, the periodic tick, status counters and the audit helper.
 *
 * Reload is transactional: the new policy and revocation list are parsed and
 * validated completely into new objects; only if both load is anything
 * swapped.  A broken file leaves the old policy in force and logs
 * "file:line: error" — never a window with no policy.  After the swap every
 * known client is re-resolved against the new policy; each connected client
 * that is now revoked, refused, or whose rights changed is kicked, so no
 * session keeps a grant the new policy took away (CVE-2021-34434's lesson:
 * only a reconnect makes the broker re-check existing subscriptions).
 */
#include "plugin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

int64_t control_mono_ms(void)
{
	return util_mono_ms();
}

int64_t control_wall_ms(void)
{
	return util_wall_ms();
}

void control_audit(pg_plugin_t *pg, const audit_event_t *ev, bool limited)
{
	if(!pg->audit) {
		return;
	}
	int rc = limited ? audit_write_limited(pg->audit, ev, control_wall_ms())
	                 : audit_write(pg->audit, ev, control_wall_ms());
	if(rc < 0) {
		char qpath[512], qerr[256];
		/* Never stops the broker and never passes silently: counted, in
		 * $SYS/plantgate/audit/errors, and logged once per 100 failures. */
		if(pg->stats.audit_errors++ % 100 == 0) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
			                     PG_LOG_PREFIX "audit log %s: write failed (%s); %llu failures so far. "
			                     "Refusals are still enforced. Check the disk and the file's permissions.",
			                     PG_SAFE(qpath, pg->audit_path), PG_SAFE(qerr, audit_last_error(pg->audit)),
			                     (unsigned long long)pg->stats.audit_errors);
		}
	}
}

static void kick(pg_plugin_t *pg, const char *cid, pg_client_t *rec, const char *why)
{
	char id[128], cq[128];
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PG_LOG_PREFIX "kick: identity=\"%s\" reason=\"%s\" client_id=\"%s\"",
	                     PG_SAFE(id, rec->identity), why, PG_SAFE(cq, cid));
	control_audit(pg,
	              &(audit_event_t){.event = AUDIT_EV_KICK,
	                               .identity = rec->identity,
	                               .clientid = cid,
	                               .address = rec->address,
	                               .decision = "deny",
	                               .reason = why},
	              false);
	pg->stats.kicks++;
	rec->kick_pending = false;
	/* May call control_disconnect(), which may free rec: do not touch it after. */
	mosquitto_kick_client_by_clientid(cid, false);
}

/* A client's subject, as recorded at connect. */
static void subject_of(const char *cid, const pg_client_t *rec, policy_attr_t attrs[2],
                       policy_subject_t *who)
{
	who->identity = rec->identity;
	who->clientid = cid;
	who->attrs = attrs;
	who->nattrs = 0;
	if(rec->site[0]) {
		attrs[who->nattrs++] = (policy_attr_t){"site", rec->site};
	}
	if(rec->line[0]) {
		attrs[who->nattrs++] = (policy_attr_t){"line", rec->line};
	}
}

static void reload(pg_plugin_t *pg)
{
	char err[1024];
	policy_stats_t before, after;

	policy_t *np = policy_load_file(pg->policy_path, err, sizeof(err));
	revocation_t *nr = NULL;
	if(np && (pg->revocation_path || pg->crl_path)) {
		nr = revocation_load(pg->revocation_path, pg->crl_path, err, sizeof(err));
		if(!nr) {
			policy_free(np);
			np = NULL;
		}
	}
	if(!np) {
		pg->stats.reload_failures++;
		char qerr[1024];
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     PG_LOG_PREFIX "reload refused, the previous policy stays in force: reason=\"%s\"",
		                     PG_SAFE(qerr, err));
		control_audit(pg, &(audit_event_t){.event = AUDIT_EV_RELOAD_FAILED, .decision = "keep", .reason = err},
		              false);
		return;
	}

	policy_get_stats(pg->policy, &before);
	policy_get_stats(np, &after);
	size_t rev_before = revocation_count(pg->revoked) + revocation_crl_count(pg->revoked);
	size_t rev_after = revocation_count(nr) + revocation_crl_count(nr);

	/* Re-resolve every client against the new policy; collect the kicks. */
	size_t cap = hmap_count(pg->clients), nkick = 0;
	char **kick_ids = calloc(cap ? cap : 1, sizeof(*kick_ids));
	const char **kick_why = calloc(cap ? cap : 1, sizeof(*kick_why));
	if(!kick_ids || !kick_why) {
		free(kick_ids);
		free(kick_why);
		policy_free(np);
		revocation_free(nr);
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "reload refused: out of memory");
		return;
	}
	size_t it = 0;
	const char *cid;
	void *v;
	while(hmap_next(pg->clients, &it, &cid, &v)) {
		pg_client_t *rec = v;
		policy_attr_t attrs[2];
		policy_subject_t who;
		const char *why = NULL;
		subject_of(cid, rec, attrs, &who);
		const policy_binding_t *nb = policy_resolve(np, &who);
		if(revocation_is_revoked(nr, NULL, rec->identity, rec->serial, rec->sha256, &why)) {
			nb = NULL;
			why = "revoked";
			control_audit(pg,
			              &(audit_event_t){.event = AUDIT_EV_REVOKE,
			                               .identity = rec->identity,
			                               .clientid = cid,
			                               .decision = "deny",
			                               .reason = "certificate or identity revoked"},
			              false);
		} else if(!nb) {
			why = "no longer admitted by the policy";
		} else if(!policy_binding_same_rights(pg->policy, rec->binding, np, nb)) {
			why = "its rights changed in the new policy";
		} else if(auth_clientid_taken(np, rec->identity, cid)) {
			/* Checked at connect against the old policy (auth.c). */
			why = "its client id could now be another device's identity";
		}
		rec->binding = nb;
		policy_memo_clear(rec->memo); /* it would empty itself anyway: np is new */
		/* Only a live connection is kicked.  Kicking (or refusing) an
		 * offline session makes mosquitto disconnect it a second time and
		 * list it twice for session expiry (see auth.c, offline_recheck):
		 * an offline session whose rights changed is kicked once when it
		 * comes back instead, and a revoked one is refused then. */
		if(why && !rec->client) {
			rec->rights_changed = nb != NULL;
		}
		if(why && rec->client && (kick_ids[nkick] = strdup(cid)) != NULL) {
			kick_why[nkick++] = why;
		}
	}

	policy_t *old = pg->policy;
	revocation_t *old_rev = pg->revoked;
	pg->policy = np;
	pg->revoked = nr;
	policy_free(old);
	revocation_free(old_rev);
	pg->stats.reloads++;

	char summary[512];
	util_snprintf(summary, sizeof(summary),
	              "roles %zu->%zu, devices %zu->%zu, patterns %zu->%zu, rules %zu->%zu, revocations %zu->%zu, "
	              "%zu clients to disconnect",
	              before.roles, after.roles, before.devices, after.devices, before.matches, after.matches,
	              before.rules, after.rules, rev_before, rev_after, nkick);
	char qpath[512];
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PG_LOG_PREFIX "reloaded %s: %s", PG_SAFE(qpath, pg->policy_path), summary);
	control_audit(pg, &(audit_event_t){.event = AUDIT_EV_RELOAD, .decision = "allow", .reason = summary}, false);

	for(size_t i = 0; i < nkick; i++) {
		pg_client_t *rec = hmap_get(pg->clients, kick_ids[i]);
		if(rec) {
			kick(pg, kick_ids[i], rec, kick_why[i]);
		}
		free(kick_ids[i]);
	}
	free(kick_ids);
	free(kick_why);
}

int control_reload(int event, void *event_data, void *userdata)
{
	pg_plugin_t *pg = userdata;
	reload(pg);
	/* Whether or not the new files loaded, mosquitto now re-runs BASIC_AUTH
	 * for every session (auth.c, offline_recheck).  Set last: kicks in
	 * reload() run ACL checks, which end the pass. */
	pg->reload_pass = true;
	return MOSQ_ERR_SUCCESS;
}

pg_ident_t *control_ident(pg_plugin_t *pg, const char *identity, int64_t now)
{
	pg_ident_t *id = hmap_get(pg->idents, identity);
	if(id || hmap_count(pg->idents) >= PG_IDENTS_MAX) {
		return id;
	}
	id = calloc(1, sizeof(*id));
	if(!id || hmap_put(pg->idents, identity, id)) {
		free(id);
		return NULL;
	}
	id->last_ms = now;
	return id;
}

/* One log line and one audit line for the refusals of `identity` counted,
 * not written, in the window that just closed: how many, and examples. */
static void refusal_summary(pg_plugin_t *pg, const char *identity, pg_ident_t *id)
{
	char reason[600], q[128], qreason[600];
	size_t o = (size_t)util_snprintf(reason, sizeof(reason),
	                                 "%llu refusals in %d s not written one by one (repeats or flood); examples:",
	                                 (unsigned long long)id->deny_suppressed, PG_DENY_WINDOW_MS / 1000);
	for(uint32_t i = 0; i < id->nexamples && o < sizeof(reason); i++) {
		int n = util_snprintf(reason + o, sizeof(reason) - o, "%s %s", i ? ";" : "", id->examples[i]);
		if(n < 0) {
			break;
		}
		o += (size_t)n;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "%llu further refusals for identity=\"%s\" not logged (repeats or flood); "
	                     "all are counted in $SYS/plantgate/ and summarised in the audit trail: \"%s\"",
	                     (unsigned long long)id->deny_suppressed, PG_SAFE(q, identity), PG_SAFE(qreason, reason));
	control_audit(pg,
	              &(audit_event_t){.event = AUDIT_EV_SUPPRESSED,
	                               .identity = identity,
	                               .decision = "deny",
	                               .reason = reason,
	                               .count = (int)(id->deny_suppressed > 1000000000 ? 1000000000 : id->deny_suppressed)},
	              false);
	id->deny_suppressed = 0;
	id->nexamples = 0;
}

bool control_refusal_written(pg_plugin_t *pg, const char *identity, pg_ident_t *id, const char *access,
                             const char *topic, int64_t now)
{
	char key[128];
	if(!id) {
		return true; /* a will, or no memory: write it */
	}
	id->last_ms = now;
	if(now - id->deny_window_ms > PG_DENY_WINDOW_MS) {
		if(id->deny_suppressed) {
			refusal_summary(pg, identity, id);
		}
		id->deny_window_ms = now;
		id->deny_logged = 0;
		id->last_denied[0] = '\0';
	}
	util_snprintf(key, sizeof(key), "%s %s", access, topic);
	if(!strcmp(key, id->last_denied) || id->deny_logged >= PG_DENY_LINES) {
		if(id->deny_suppressed++ == 0 || (id->nexamples < PG_DENY_EXAMPLES &&
		                                  strcmp(id->examples[id->nexamples - 1], key))) {
			util_strlcpy(id->examples[id->nexamples++], key, sizeof(id->examples[0]));
		}
		return false;
	}
	util_strlcpy(id->last_denied, key, sizeof(id->last_denied));
	id->deny_logged++;
	return true;
}

/* Write the summaries of refusal windows that have closed, and forget
 * identities idle long enough that a fresh state is the same (buckets full
 * again, flood and refusal windows over). */
static void idents_sweep(pg_plugin_t *pg, int64_t now)
{
	int64_t idle = (int64_t)(pg->burst_seconds * 1000) + 1000;
	if(idle < pg->flood_window_ms + 1000) {
		idle = pg->flood_window_ms + 1000;
	}
	if(idle < PG_DENY_WINDOW_MS + 1000) {
		idle = PG_DENY_WINDOW_MS + 1000;
	}
	const char *drop[256];
	size_t ndrop = 0, it = 0;
	const char *identity;
	void *v;
	while(hmap_next(pg->idents, &it, &identity, &v)) {
		pg_ident_t *id = v;
		if(id->deny_suppressed && now - id->deny_window_ms > PG_DENY_WINDOW_MS) {
			refusal_summary(pg, identity, id);
		}
		if(!id->deny_suppressed && now - id->last_ms > idle && ndrop < 256) {
			drop[ndrop++] = identity;
		}
	}
	for(size_t i = 0; i < ndrop; i++) {
		hmap_del(pg->idents, drop[i]);
	}
}

pg_client_t *control_client_new(pg_plugin_t *pg, const char *cid)
{
	pg_client_t *old = hmap_get(pg->clients, cid);
	pg_client_t *rec = calloc(1, sizeof(*rec));
	if(!rec) {
		return NULL;
	}
	bool counted = old && !old->client && old->offline_ms;
	if(counted) {
		pg->offline--;
		pg->forgettable -= old->forget;
	}
	if(hmap_put(pg->clients, cid, rec)) { /* frees `old` on success only */
		if(counted) {
			pg->offline++;
			pg->forgettable += old->forget;
		}
		free(rec);
		return NULL;
	}
	return rec;
}

void control_client_free(void *v)
{
	pg_client_t *rec = v;
	if(rec) {
		policy_memo_free(rec->memo);
		free(rec);
	}
}

void control_client_online(pg_plugin_t *pg, pg_client_t *rec, const struct mosquitto *client)
{
	if(!rec->client && rec->offline_ms) {
		pg->offline--;
		pg->forgettable -= rec->forget;
	}
	rec->forget = false;
	rec->offline_ms = 0;
	rec->client = client;
	rec->session = NULL;
}

int control_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	pg_plugin_t *pg = userdata;
	const char *cid = mosquitto_client_id(ed->client);
	if(!cid) {
		return MOSQ_ERR_SUCCESS;
	}
	pg_client_t *rec = hmap_get(pg->clients, cid);
	/* Only the connection the record belongs to may close it: a refused
	 * connect or an old connection taken over by a new one must not. */
	if(!rec || rec->client != ed->client) {
		return MOSQ_ERR_SUCCESS;
	}
	rec->client = NULL;
	rec->session = ed->client;
	rec->offline_ms = control_mono_ms() | 1; /* never 0: 0 = not offline */
	pg->offline++;
	/* MQTT 3.1.1 clean session: no session survives and there is no will
	 * delay; the will's WRITE check comes right after this callback
	 * (src/context.c, context__disconnect), so the record goes at the next
	 * sweep (once a second).  MQTT 5 keeps a session for its expiry interval even with clean
	 * start, and a will may wait for its delay: kept (see plugin_int.h). */
	if(mosquitto_client_clean_session(ed->client) && mosquitto_client_protocol_version(ed->client) != 5) {
		rec->forget = true;
		pg->forgettable++;
	}
	return MOSQ_ERR_SUCCESS;
}

static void forget(pg_plugin_t *pg, const char *cid)
{
	pg_client_t *rec = hmap_get(pg->clients, cid);
	if(rec && !rec->client && rec->offline_ms) {
		pg->offline--;
		pg->forgettable -= rec->forget;
		hmap_del(pg->clients, cid);
	}
}

static int by_offline_ms(const void *a, const void *b)
{
	const pg_client_t *x = *(pg_client_t *const *)a, *y = *(pg_client_t *const *)b;
	return (x->offline_ms > y->offline_ms) - (x->offline_ms < y->offline_ms);
}

/* Drop the records marked `forget`, and beyond plugin_opt_offline_sessions
 * the offline records that went offline first (down to 90 %), logging how
 * many.  mosquitto asking about an evicted session later gets what an
 * unknown client gets: the policy without its certificate attributes, which
 * fails closed, and its will is still stamped (from the username). */
static void expire_records(pg_plugin_t *pg)
{
	if(!pg->forgettable && pg->offline <= pg->max_offline) {
		return;
	}
	size_t n = 0, it = 0, cap = pg->offline;
	const char *cid;
	void *v;
	pg_client_t **offline = calloc(cap ? cap : 1, sizeof(*offline));
	char **keys = calloc(cap ? cap : 1, sizeof(*keys));
	if(!offline || !keys) {
		free(offline);
		free(keys);
		return;
	}
	while(n < cap && hmap_next(pg->clients, &it, &cid, &v)) {
		pg_client_t *rec = v;
		if(!rec->client && rec->offline_ms) {
			offline[n++] = rec;
		}
	}
	size_t keep = pg->offline > pg->max_offline ? pg->max_offline - pg->max_offline / 10 : pg->offline;
	qsort(offline, n, sizeof(*offline), by_offline_ms);
	size_t nkeys = 0, evicted = 0;
	/* Map records back to their keys: a second pass (the map owns the keys). */
	for(size_t i = 0; i < n; i++) {
		bool drop = offline[i]->forget || i < n - (keep < n ? keep : n);
		evicted += drop && !offline[i]->forget;
		offline[i]->evict = drop;
	}
	it = 0;
	while(nkeys < n && hmap_next(pg->clients, &it, &cid, &v)) {
		pg_client_t *rec = v;
		if(!rec->client && rec->evict && (keys[nkeys] = strdup(cid)) != NULL) {
			nkeys++;
		}
	}
	for(size_t i = 0; i < nkeys; i++) {
		forget(pg, keys[i]);
		free(keys[i]);
	}
	if(evicted) {
		pg->stats.sessions_evicted += evicted;
		mosquitto_log_printf(MOSQ_LOG_WARNING,
		                     PG_LOG_PREFIX "%zu offline sessions forgotten (more than plugin_opt_offline_sessions "
		                     "%zu): mosquitto's checks for them now fail closed until each device reconnects",
		                     evicted, pg->max_offline);
	}
	free(offline);
	free(keys);
}

static void publish_stat(const char *name, uint64_t value)
{
	char topic[128], payload[32];
	int n = snprintf(payload, sizeof(payload), "%llu", (unsigned long long)value);
	snprintf(topic, sizeof(topic), "$SYS/plantgate/%s", name);
	mosquitto_broker_publish_copy(NULL, topic, n, payload, 0, true, NULL);
}

static void publish_stats(pg_plugin_t *pg)
{
	const pg_stats_t *s = &pg->stats;
	publish_stat("connects/accepted", s->connects_ok);
	publish_stat("connects/refused", s->connects_refused);
	publish_stat("connects/throttled", s->connects_throttled);
	publish_stat("refusals/publish", s->publish_denied);
	publish_stat("refusals/subscribe", s->subscribe_denied);
	publish_stat("refusals/read", s->read_denied);
	publish_stat("rate-limited", s->rate_limited);
	publish_stat("kicks", s->kicks);
	publish_stat("reloads", s->reloads);
	publish_stat("reload-failures", s->reload_failures);
	publish_stat("forged-properties", s->forged_properties);
	publish_stat("offline-rechecks", s->offline_rechecks);
	publish_stat("wills/stamped", s->wills_stamped);
	publish_stat("wills/denied", s->wills_denied);
	publish_stat("sessions-evicted", s->sessions_evicted);
	publish_stat("stamp-oversize", s->stamp_oversize);
	publish_stat("audit/errors", s->audit_errors);
	publish_stat("clients/known", hmap_count(pg->clients));
}

/* Forget failure counters whose window has passed, logging what was
 * suppressed in it. */
static void expire_failures(pg_plugin_t *pg, int64_t now)
{
	const char *drop[64];
	size_t ndrop = 0, it = 0;
	const char *key;
	void *v;
	while(ndrop < 64 && hmap_next(pg->failures, &it, &key, &v)) {
		pg_failures_t *f = v;
		if(now - f->strikes.window_start_ms <= pg->connect_window_ms) {
			continue;
		}
		if(f->suppressed) {
			char qkey[IDENTITY_MAX + 80];
			mosquitto_log_printf(MOSQ_LOG_WARNING,
			                     PG_LOG_PREFIX "%llu further refused connects were not logged (throttled): address|identity=\"%s\"",
			                     (unsigned long long)f->suppressed, PG_SAFE(qkey, key));
		}
		drop[ndrop++] = key;
	}
	for(size_t i = 0; i < ndrop; i++) {
		hmap_del(pg->failures, drop[i]);
	}
}

int control_tick(int event, void *event_data, void *userdata)
{
	pg_plugin_t *pg = userdata;
	int64_t now = control_mono_ms();

	pg->reload_pass = false;
	/* The tick comes every main-loop pass: the scans run once a second. */
	if(now - pg->last_sweep_ms >= 1000) {
		pg->last_sweep_ms = now;
		expire_records(pg);
		idents_sweep(pg, now);
	}
	/* Devices that kept flooding: disconnect them here, outside the ACL
	 * callback of their own publish. */
	char *ids[32];
	size_t n = 0, it = 0;
	const char *cid;
	void *v;
	bool more = false;
	while(pg->kick_scan && hmap_next(pg->clients, &it, &cid, &v)) {
		pg_client_t *rec = v;
		if(rec->kick_pending && !rec->client) {
			more = true; /* kicked once it is back online */
		} else if(rec->kick_pending) {
			if(n == 32 || (ids[n] = strdup(cid)) == NULL) {
				more = true; /* the next tick takes the rest */
				break;
			}
			n++;
		}
	}
	pg->kick_scan = more;
	for(size_t i = 0; i < n; i++) {
		pg_client_t *rec = hmap_get(pg->clients, ids[i]);
		if(rec) {
			kick(pg, ids[i], rec, "sustained flooding: refused or rate-limited publishes and subscribes "
			                      "past plugin_opt_flood_disconnect");
		}
		free(ids[i]);
	}
	if(pg->audit) {
		audit_tick(pg->audit, control_wall_ms());
	}
	if(pg->sys_interval_ms > 0 && now - pg->last_sys_ms >= pg->sys_interval_ms) {
		pg->last_sys_ms = now;
		publish_stats(pg);
		expire_failures(pg, now);
	}
	return MOSQ_ERR_SUCCESS;
}
