/*
 * plugin.c — plantgate_auth.so entry points: option parsing, first load of
 * policy, revocation list and audit log, callback registration and cleanup.
 * The decisions live in auth.c (who may connect), acl.c (what they may
 * touch), control.c (reload, kicks, status) and provenance.c; the rules in
 * core/.  The options are documented in config/mosquitto.conf and the README.
 */
#include "plugin_int.h"

#include <openssl/pem.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_version.h"
#include "util.h"

#define EXPORT __attribute__((visibility("default")))

/* mosquitto 2.1 sends MOSQ_EVT_DISCONNECT only for a client whose session ends
 * with the connection; one whose session stays gets MOSQ_EVT_CLIENT_OFFLINE
 * (28, with the same event data) instead.  control_disconnect must see both,
 * or a will sent later looks like a live publish (acl.c) and goes out with
 * the client's own properties, unstamped.  2.0's headers lack the name. */
#define PG_EVT_CLIENT_OFFLINE 28

EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++) {
		if(supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

static bool pg_broker_has_offline_event(const pg_plugin_t *pg)
{
	return pg->mosq_version[0] * 1000 + pg->mosq_version[1] >= 2001;
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

static int set_source(pg_plugin_t *pg, const char *v)
{
	return identity_source_parse(v, &pg->id_opts.source);
}

static int set_binding(pg_plugin_t *pg, const char *v)
{
	return identity_binding_parse(v, &pg->id_opts.binding);
}

/* How an option's value is read, and the type of the field it is stored in. */
enum pg_opt_kind {
	PG_OPT_PATH,     /* char *, a copy of the value */
	PG_OPT_INT,      /* a whole number in [min, max] */
	PG_OPT_SIZE,     /* a size such as 256k, at most max */
	PG_OPT_DURATION, /* a duration such as 10s, in ms, at most max */
	PG_OPT_BOOL,     /* true or false */
	PG_OPT_FN,       /* fn(pg, value) stores it; -1 when invalid */
};
enum pg_opt_field { PG_F_STR, PG_F_DOUBLE, PG_F_U32, PG_F_SIZE, PG_F_I64, PG_F_BOOL, PG_F_NONE };

/* The plugin_opt_* options, one row each (config/mosquitto.conf documents
 * them): name, how it is read, where it goes, its bounds and what to write
 * instead when the value is wrong.  A row without usage reports its own
 * errors (load_pins); a PATH fails only without memory.  A later line for
 * the same option replaces an earlier one, as in mosquitto.conf. */
#define PG_OFF(f) offsetof(pg_plugin_t, f)
static const struct pg_option {
	const char *name;
	enum pg_opt_kind kind;
	enum pg_opt_field field;
	size_t off;
	int64_t min, max;
	int (*fn)(pg_plugin_t *pg, const char *v);
	const char *usage;
} pg_options[] = {
    {"policy", PG_OPT_PATH, PG_F_STR, PG_OFF(policy_path), 0, 0, NULL, NULL},
    {"revocation_file", PG_OPT_PATH, PG_F_STR, PG_OFF(revocation_path), 0, 0, NULL, NULL},
    {"crlfile", PG_OPT_PATH, PG_F_STR, PG_OFF(crl_path), 0, 0, NULL, NULL},
    {"audit_log", PG_OPT_PATH, PG_F_STR, PG_OFF(audit_path), 0, 0, NULL, NULL},
    {"identity_source", PG_OPT_FN, PG_F_NONE, 0, 0, 0, set_source, "use cn, san-uri or san-dns"},
    {"san_uri_prefix", PG_OPT_FN, PG_F_NONE, 0, 0, 0, set_uri_prefixes,
     "give 1 to 3 comma-separated prefixes"},
    {"identity_max_len", PG_OPT_INT, PG_F_SIZE, PG_OFF(id_opts.max_len), 1, IDENTITY_MAX, NULL,
     "give a number from 1 to 256"},
    {"clientid", PG_OPT_FN, PG_F_NONE, 0, 0, 0, set_binding, "use equal or prefix"},
    {"issuer_cafile", PG_OPT_FN, PG_F_NONE, 0, 0, 0, load_pins, NULL},
    {"rate_messages", PG_OPT_INT, PG_F_DOUBLE, PG_OFF(rate_msgs), 0, 10000000, NULL,
     "give messages per second per device, 0 = unlimited"},
    {"rate_bytes", PG_OPT_SIZE, PG_F_DOUBLE, PG_OFF(rate_bytes), 0, 1LL << 40, NULL,
     "give bytes per second per device, e.g. 256k; 0 = unlimited"},
    {"rate_burst", PG_OPT_INT, PG_F_DOUBLE, PG_OFF(burst_seconds), 1, 3600, NULL,
     "give the burst in seconds of rate, 1 to 3600"},
    {"flood_disconnect", PG_OPT_INT, PG_F_U32, PG_OFF(flood_strikes), 0, 1000000, NULL,
     "give refused publishes per 10 s that disconnect, 0 = never"},
    {"connect_failures", PG_OPT_INT, PG_F_U32, PG_OFF(connect_failures), 0, 1000000, NULL,
     "give failed connects per minute before throttling, 0 = never"},
    {"max_packet_size", PG_OPT_SIZE, PG_F_U32, PG_OFF(max_packet), 0, 268435460LL, NULL,
     "give the smallest Maximum Packet Size of your MQTT 5 subscribers, e.g. 1k; 0 = off"},
    {"offline_sessions", PG_OPT_INT, PG_F_SIZE, PG_OFF(max_offline), 1, 10000000, NULL,
     "give the number of offline sessions remembered, 1 to 10000000"},
    {"stamp_received", PG_OPT_BOOL, PG_F_BOOL, PG_OFF(stamp_received), 0, 0, NULL, "use true or false"},
    {"sys_interval", PG_OPT_DURATION, PG_F_I64, PG_OFF(sys_interval_ms), 0, 86400000, NULL,
     "give an interval such as 10s; 0 = off"},
};

/* Read value v of option o into pg.  0; -1 with usage to be reported; -2
 * when already reported or out of memory. */
static int set_option(pg_plugin_t *pg, const struct pg_option *o, const char *v)
{
	void *f = (char *)pg + o->off;
	int64_t n = 0;
	uint64_t u;
	switch(o->kind) {
	case PG_OPT_PATH:
		return set_path(f, v) ? -2 : 0;
	case PG_OPT_FN:
		if(o->fn(pg, v)) {
			return o->usage ? -1 : -2;
		}
		return 0;
	case PG_OPT_INT:
		if(util_parse_i64(v, o->min, o->max, &n)) {
			return -1;
		}
		break;
	case PG_OPT_SIZE:
		if(util_parse_size(v, (uint64_t)o->max, &u)) {
			return -1;
		}
		n = (int64_t)u;
		break;
	case PG_OPT_DURATION:
		if(util_parse_duration_ms(v, &n) || n > o->max) {
			return -1;
		}
		break;
	case PG_OPT_BOOL:
		if(strcmp(v, "true") && strcmp(v, "false")) {
			return -1;
		}
		n = !strcmp(v, "true");
		break;
	}
	switch(o->field) {
	case PG_F_DOUBLE:
		*(double *)f = (double)n;
		break;
	case PG_F_U32:
		*(uint32_t *)f = (uint32_t)n;
		break;
	case PG_F_SIZE:
		*(size_t *)f = (size_t)n;
		break;
	case PG_F_I64:
		*(int64_t *)f = n;
		break;
	case PG_F_BOOL:
		*(bool *)f = n != 0;
		break;
	case PG_F_STR:
	case PG_F_NONE:
		break;
	}
	return 0;
}

static int parse_options(pg_plugin_t *pg, struct mosquitto_opt *options, int option_count)
{
	for(int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value;
		if(!k || !v) {
			continue;
		}
		size_t o = 0;
		while(o < sizeof(pg_options) / sizeof(pg_options[0]) && strcmp(k, pg_options[o].name)) {
			o++;
		}
		if(o == sizeof(pg_options) / sizeof(pg_options[0])) {
			char qk[128];
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
			                     "unknown option plugin_opt_%s: check the spelling (see config/mosquitto.conf)",
			                     PG_SAFE(qk, k));
			return -1;
		}
		int rc = set_option(pg, &pg_options[o], v);
		if(rc == -1) {
			return bad_option(k, v, pg_options[o].usage);
		}
		if(rc) {
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
	pg->clients = hmap_new(control_client_free);
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
	if(pg_broker_has_offline_event(pg) &&
	   mosquitto_callback_register(identifier, PG_EVT_CLIENT_OFFLINE, control_disconnect, NULL, pg)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot register callback %d", PG_EVT_CLIENT_OFFLINE);
		goto fail;
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
		if(pg_broker_has_offline_event(pg)) {
			mosquitto_callback_unregister(pg->pid, PG_EVT_CLIENT_OFFLINE, control_disconnect, NULL);
		}
		mosquitto_callback_unregister(pg->pid, MOSQ_EVT_MESSAGE, provenance_message, NULL);
		control_audit(pg, &(audit_event_t){.event = AUDIT_EV_STOP, .reason = "broker stopping"}, false);
	}
	plugin_free(pg);
	return MOSQ_ERR_SUCCESS;
}
