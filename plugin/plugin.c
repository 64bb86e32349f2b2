/*
 * plugin.c — plantgate_auth.so entry points: option parsing, first load of
 * policy, revocation list and audit log, callback registration and cleanup.
 * The decisions live in auth.c (who may connect), acl.c (what they may
 * touch), control.c (reload, kicks, status) and provenance.c; the rules in
 * core/.  The options are documented in config/mosquitto.conf and the README.
 */
#include "plugin_int.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_version.h"
#include "util.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++) {
		if(supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

static void plugin_free(pg_plugin_t *pg)
{
	if(!pg) {
		return;
	}
	policy_free(pg->policy);
	revocation_free(pg->revoked);
	audit_close(pg->audit);
	hmap_free(pg->clients);
	hmap_free(pg->failures);
	hmap_free(pg->idents);
	hmap_free(pg->pinned_ok);
	for(size_t i = 0; i < pg->npins; i++) {
		X509_free(pg->pins[i]);
	}
	free(pg->pins);
	free(pg->policy_path);
	free(pg->revocation_path);
	free(pg->crl_path);
	free(pg->audit_path);
	free(pg->uri_prefix_buf);
	free(pg);
}

/* Split a comma-separated prefix list into id_opts.uri_prefixes. */
static int set_uri_prefixes(pg_plugin_t *pg, const char *value)
{
	free(pg->uri_prefix_buf);
	pg->uri_prefix_buf = strdup(value);
	if(!pg->uri_prefix_buf) {
		return -1;
	}
	memset(pg->id_opts.uri_prefixes, 0, sizeof(pg->id_opts.uri_prefixes));
	size_t n = 0;
	char *p = pg->uri_prefix_buf;
	while(p && *p) {
		char *comma = strchr(p, ',');
		if(comma) {
			*comma = '\0';
		}
		if(*p) {
			if(n == 3) {
				return -1;
			}
			pg->id_opts.uri_prefixes[n++] = p;
		}
		p = comma ? comma + 1 : NULL;
	}
	return n ? 0 : -1;
}

static int load_pins(pg_plugin_t *pg, const char *path)
{
	FILE *f = fopen(path, "r");
	if(!f) {
		char qp[512];
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot open plugin_opt_issuer_cafile \"%s\"", PG_SAFE(qp, path));
		return -1;
	}
	X509 *c;
	while((c = PEM_read_X509(f, NULL, NULL, NULL))) {
		X509 **np = realloc(pg->pins, (pg->npins + 1) * sizeof(*np));
		if(!np) {
			X509_free(c);
			fclose(f);
			return -1;
		}
		pg->pins = np;
		pg->pins[pg->npins++] = c;
		char fp[65];
		identity_fingerprint(c, fp);
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PG_LOG_PREFIX "issuer pinned: sha256 %s", fp);
	}
	fclose(f);
	if(pg->npins == 0) {
		char qp[512];
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     PG_LOG_PREFIX "plugin_opt_issuer_cafile \"%s\" holds no PEM certificate", PG_SAFE(qp, path));
		return -1;
	}
	return 0;
}

static int set_path(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -1;
}

static int bad_option(const char *k, const char *v, const char *what)
{
	char qk[128], qv[512];
	mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "plugin_opt_%s \"%s\": %s", PG_SAFE(qk, k), PG_SAFE(qv, v), what);
	return -1;
}

static int parse_options(pg_plugin_t *pg, struct mosquitto_opt *options, int option_count)
{
	for(int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value;
		int64_t n;
		uint64_t u;
		if(!k || !v) {
			continue;
		}
		if(!strcmp(k, "policy")) {
			if(set_path(&pg->policy_path, v)) {
				return -1;
			}
		} else if(!strcmp(k, "revocation_file")) {
			if(set_path(&pg->revocation_path, v)) {
				return -1;
			}
		} else if(!strcmp(k, "crlfile")) {
			if(set_path(&pg->crl_path, v)) {
				return -1;
			}
		} else if(!strcmp(k, "audit_log")) {
			if(set_path(&pg->audit_path, v)) {
				return -1;
			}
		} else if(!strcmp(k, "identity_source")) {
			if(identity_source_parse(v, &pg->id_opts.source)) {
				return bad_option(k, v, "use cn, san-uri or san-dns");
			}
		} else if(!strcmp(k, "san_uri_prefix")) {
			if(set_uri_prefixes(pg, v)) {
				return bad_option(k, v, "give 1 to 3 comma-separated prefixes");
			}
		} else if(!strcmp(k, "identity_max_len")) {
			if(util_parse_i64(v, 1, IDENTITY_MAX, &n)) {
				return bad_option(k, v, "give a number from 1 to 256");
			}
			pg->id_opts.max_len = (size_t)n;
		} else if(!strcmp(k, "clientid")) {
			if(identity_binding_parse(v, &pg->id_opts.binding)) {
				return bad_option(k, v, "use equal or prefix");
			}
		} else if(!strcmp(k, "issuer_cafile")) {
			if(load_pins(pg, v)) {
				return -1;
			}
		} else if(!strcmp(k, "rate_messages")) {
			if(util_parse_i64(v, 0, 10000000, &n)) {
				return bad_option(k, v, "give messages per second per device, 0 = unlimited");
			}
			pg->rate_msgs = (double)n;
		} else if(!strcmp(k, "rate_bytes")) {
			if(util_parse_size(v, 1ULL << 40, &u)) {
				return bad_option(k, v, "give bytes per second per device, e.g. 256k; 0 = unlimited");
			}
			pg->rate_bytes = (double)u;
		} else if(!strcmp(k, "rate_burst")) {
			if(util_parse_i64(v, 1, 3600, &n)) {
				return bad_option(k, v, "give the burst in seconds of rate, 1 to 3600");
			}
			pg->burst_seconds = (double)n;
		} else if(!strcmp(k, "flood_disconnect")) {
			if(util_parse_i64(v, 0, 1000000, &n)) {
				return bad_option(k, v, "give refused publishes per 10 s that disconnect, 0 = never");
			}
			pg->flood_strikes = (uint32_t)n;
		} else if(!strcmp(k, "connect_failures")) {
			if(util_parse_i64(v, 0, 1000000, &n)) {
				return bad_option(k, v, "give failed connects per minute before throttling, 0 = never");
			}
			pg->connect_failures = (uint32_t)n;
		} else if(!strcmp(k, "max_packet_size")) {
			if(util_parse_size(v, 268435460ULL, &u)) {
				return bad_option(k, v, "give the smallest Maximum Packet Size of your MQTT 5 subscribers, e.g. 1k; 0 = off");
			}
			pg->max_packet = (uint32_t)u;
		} else if(!strcmp(k, "offline_sessions")) {
			if(util_parse_i64(v, 1, 10000000, &n)) {
				return bad_option(k, v, "give the number of offline sessions remembered, 1 to 10000000");
			}
			pg->max_offline = (size_t)n;
		} else if(!strcmp(k, "stamp_received")) {
			if(strcmp(v, "true") && strcmp(v, "false")) {
				return bad_option(k, v, "use true or false");
			}
			pg->stamp_received = !strcmp(v, "true");
		} else if(!strcmp(k, "sys_interval")) {
			if(util_parse_duration_ms(v, &n) || n > 86400000) {
				return bad_option(k, v, "give an interval such as 10s; 0 = off");
			}
			pg->sys_interval_ms = n;
		} else {
			char qk[128];
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
			                     "unknown option plugin_opt_%s: check the spelling (see config/mosquitto.conf)",
			                     PG_SAFE(qk, k));
			return -1;
		}
	}
	if(!pg->policy_path) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
		                     "plugin_opt_policy is missing: add `plugin_opt_policy /etc/plantgate/policy.conf`");
		return -1;
	}
	return 0;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                                 struct mosquitto_opt *options, int option_count)
{
	char err[1024], qerr[1024], qpath[512];
	pg_plugin_t *pg = calloc(1, sizeof(*pg));
	if(!pg) {
		return MOSQ_ERR_NOMEM;
	}
	pg->pid = identifier;
	pg->id_opts.source = IDENTITY_CN;
	pg->id_opts.max_len = 64;
	pg->id_opts.binding = BINDING_EQUAL;
	pg->rate_msgs = 0;
	pg->rate_bytes = 0;
	pg->burst_seconds = 2;
	pg->flood_strikes = 0;
	pg->flood_window_ms = 10000;
	pg->connect_failures = 20;
	pg->connect_window_ms = 60000;
	pg->sys_interval_ms = 10000;
	pg->max_offline = 20000;
	mosquitto_lib_version(&pg->mosq_version[0], &pg->mosq_version[1], &pg->mosq_version[2]);
	pg->broker_frees_replaced =
	    pg->mosq_version[0] * 1000000 + pg->mosq_version[1] * 1000 + pg->mosq_version[2] >= 2000015;
	if(set_uri_prefixes(pg, "urn:plantgate:device:,urn:plantgate:bridge:") ||
	   parse_options(pg, options, option_count)) {
		goto fail;
	}
	pg->clients = hmap_new(free);
	pg->failures = hmap_new(free);
	pg->idents = hmap_new(free);
	pg->pinned_ok = hmap_new(NULL);
	if(!pg->clients || !pg->failures || !pg->idents || !pg->pinned_ok) {
		goto fail;
	}
	pg->policy = policy_load_file(pg->policy_path, err, sizeof(err));
	if(!pg->policy) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "policy not loaded, broker not started: reason=\"%s\"",
		                     PG_SAFE(qerr, err));
		goto fail;
	}
	if(pg->revocation_path || pg->crl_path) {
		pg->revoked = revocation_load(pg->revocation_path, pg->crl_path, err, sizeof(err));
		if(!pg->revoked) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "revocation list not loaded, broker not started: reason=\"%s\"",
			                     PG_SAFE(qerr, err));
			goto fail;
		}
	}
	if(pg->audit_path) {
		pg->audit = audit_open(pg->audit_path, err, sizeof(err));
		if(!pg->audit) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "audit log not opened, broker not started: reason=\"%s\" "
			                     "(fix the path or permissions of plugin_opt_audit_log)", PG_SAFE(qerr, err));
			goto fail;
		}
		if(audit_restart_reason(pg->audit)) {
			mosquitto_log_printf(MOSQ_LOG_WARNING, PG_LOG_PREFIX "audit log %s: its last line was damaged (%s); "
			                     "a chain-restart line records this. Check the file: plantgate-audit verify %s",
			                     PG_SAFE(qpath, pg->audit_path), PG_SAFE(qerr, audit_restart_reason(pg->audit)),
			                     qpath);
		}
	} else {
		mosquitto_log_printf(MOSQ_LOG_WARNING, PG_LOG_PREFIX "no audit log: set plugin_opt_audit_log "
		                     "/var/log/plantgate/audit.jsonl to record connects, refusals and reloads");
	}
	policy_stats_t st;
	policy_get_stats(pg->policy, &st);
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "version " PG_VERSION " (mosquitto %d.%d.%d), policy %s loaded: "
	                     "%zu roles, %zu devices, %zu patterns, %zu rules; %zu revocations, %zu in CRL",
	                     pg->mosq_version[0], pg->mosq_version[1], pg->mosq_version[2],
	                     PG_SAFE(qpath, pg->policy_path), st.roles, st.devices, st.matches, st.rules,
	                     revocation_count(pg->revoked), revocation_crl_count(pg->revoked));
	control_audit(pg, &(audit_event_t){.event = AUDIT_EV_START, .reason = "plugin loaded"}, false);

	struct {
		int ev;
		MOSQ_FUNC_generic_callback cb;
	} cbs[] = {
		{MOSQ_EVT_BASIC_AUTH, auth_basic}, {MOSQ_EVT_ACL_CHECK, acl_check},
		{MOSQ_EVT_RELOAD, control_reload}, {MOSQ_EVT_TICK, control_tick},
		{MOSQ_EVT_DISCONNECT, control_disconnect}, {MOSQ_EVT_MESSAGE, provenance_message},
	};
	for(size_t i = 0; i < sizeof(cbs) / sizeof(cbs[0]); i++) {
		if(mosquitto_callback_register(identifier, cbs[i].ev, cbs[i].cb, NULL, pg)) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot register callback %d", cbs[i].ev);
			goto fail;
		}
	}
	*userdata = pg;
	return MOSQ_ERR_SUCCESS;
fail:
	plugin_free(pg);
	return MOSQ_ERR_INVAL;
}

EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	pg_plugin_t *pg = userdata;
	if(pg) {
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_BASIC_AUTH, auth_basic, NULL);
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_ACL_CHECK, acl_check, NULL);
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_RELOAD, control_reload, NULL);
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_TICK, control_tick, NULL);
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_DISCONNECT, control_disconnect, NULL);
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_MESSAGE, provenance_message, NULL);
		control_audit(pg, &(audit_event_t){.event = AUDIT_EV_STOP, .reason = "broker stopping"}, false);
	}
	plugin_free(pg);
	return MOSQ_ERR_SUCCESS;
}
