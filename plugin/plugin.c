/*
 * plugin.c — plantgate_auth.so entry points: option parsing, policy loading,
 * callback registration and cleanup.  The decisions live in auth.c (who may
 * connect) and acl.c (what they may touch); the rules in core/.
 *
 * mosquitto.conf:
 *   plugin /usr/lib/plantgate/plantgate_auth.so
 *   plugin_opt_policy /etc/plantgate/policy.conf       (required)
 *   plugin_opt_identity_source cn | san-uri | san-dns  (default cn)
 *   plugin_opt_san_uri_prefix urn:plantgate:device:,urn:plantgate:bridge:
 *   plugin_opt_identity_max_len 64                     (default 64)
 *   plugin_opt_clientid equal | prefix                 (default equal)
 *   plugin_opt_issuer_cafile /etc/plantgate/ca.crt     (optional pin)
 */
#include "plugin_int.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	hmap_free(pg->clients);
	for(size_t i = 0; i < pg->npins; i++) {
		X509_free(pg->pins[i]);
	}
	free(pg->pins);
	free(pg->policy_path);
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
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot open plugin_opt_issuer_cafile %s", path);
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
		mosquitto_log_printf(MOSQ_LOG_ERR,
		                     PG_LOG_PREFIX "plugin_opt_issuer_cafile %s holds no PEM certificate", path);
		return -1;
	}
	return 0;
}

static int parse_options(pg_plugin_t *pg, struct mosquitto_opt *options, int option_count)
{
	for(int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value;
		int64_t n;
		if(!k || !v) {
			continue;
		}
		if(!strcmp(k, "policy")) {
			free(pg->policy_path);
			pg->policy_path = strdup(v);
		} else if(!strcmp(k, "identity_source")) {
			if(identity_source_parse(v, &pg->id_opts.source)) {
				mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
				                     "plugin_opt_identity_source '%s': use cn, san-uri or san-dns", v);
				return -1;
			}
		} else if(!strcmp(k, "san_uri_prefix")) {
			if(set_uri_prefixes(pg, v)) {
				mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
				                     "plugin_opt_san_uri_prefix '%s': give 1 to 3 comma-separated prefixes", v);
				return -1;
			}
		} else if(!strcmp(k, "identity_max_len")) {
			if(util_parse_i64(v, 1, IDENTITY_MAX, &n)) {
				mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
				                     "plugin_opt_identity_max_len '%s': give a number from 1 to %d", v, IDENTITY_MAX);
				return -1;
			}
			pg->id_opts.max_len = (size_t)n;
		} else if(!strcmp(k, "clientid")) {
			if(identity_binding_parse(v, &pg->id_opts.binding)) {
				mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
				                     "plugin_opt_clientid '%s': use equal or prefix", v);
				return -1;
			}
		} else if(!strcmp(k, "issuer_cafile")) {
			if(load_pins(pg, v)) {
				return -1;
			}
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX
			                     "unknown option plugin_opt_%s: check the spelling (see config/mosquitto.conf)", k);
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
	char err[1024];
	pg_plugin_t *pg = calloc(1, sizeof(*pg));
	if(!pg) {
		return MOSQ_ERR_NOMEM;
	}
	pg->pid = identifier;
	pg->id_opts.source = IDENTITY_CN;
	pg->id_opts.max_len = 64;
	pg->id_opts.binding = BINDING_EQUAL;
	if(set_uri_prefixes(pg, "urn:plantgate:device:,urn:plantgate:bridge:") ||
	   parse_options(pg, options, option_count)) {
		goto fail;
	}
	pg->clients = hmap_new(free);
	if(!pg->clients) {
		goto fail;
	}
	pg->policy = policy_load_file(pg->policy_path, err, sizeof(err));
	if(!pg->policy) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "policy not loaded, broker not started: %s", err);
		goto fail;
	}
	policy_stats_t st;
	policy_get_stats(pg->policy, &st);
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
	                     PG_LOG_PREFIX "policy %s loaded: %zu roles, %zu devices, %zu patterns, %zu rules",
	                     pg->policy_path, st.roles, st.devices, st.matches, st.rules);
	if(mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, auth_basic, NULL, pg) ||
	   mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, acl_check, NULL, pg)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PG_LOG_PREFIX "cannot register callbacks");
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
	}
	plugin_free(pg);
	return MOSQ_ERR_SUCCESS;
}
