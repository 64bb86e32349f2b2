/*
 * plugin_int.h — state shared by the plugin's glue files (plugin.c, auth.c,
 * acl.c).  All state hangs off one struct passed as the callback userdata; the
 * plugin has no globals, so two instances (two listeners) never share state.
 */
#ifndef PG_PLUGIN_INT_H
#define PG_PLUGIN_INT_H

/* 2.0.11 header bug: mosquitto_broker.h must come before mosquitto_plugin.h. */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>

#include <openssl/x509.h>
#include <stdint.h>

#include "hmap.h"
#include "identity.h"
#include "policy.h"

#define PG_LOG_PREFIX "plantgate: "

/* What the plugin remembers of a client from its connect: the identity the
 * certificate proved and the certificate's attributes.  Keyed by client id
 * (which is bound to the identity), kept across disconnects so a persistent
 * session's queued messages are checked with the same facts. */
typedef struct pg_client {
	char identity[IDENTITY_MAX + 1];
	char site[IDENTITY_MAX + 1];
	char line[IDENTITY_MAX + 1];
} pg_client_t;

typedef struct pg_stats {
	uint64_t connects_ok;
	uint64_t connects_refused;
	uint64_t publish_denied;
	uint64_t subscribe_denied;
	uint64_t read_denied;
} pg_stats_t;

typedef struct pg_plugin {
	mosquitto_plugin_id_t *pid;
	char *policy_path;
	policy_t *policy;
	identity_opts_t id_opts;
	char *uri_prefix_buf; /* storage behind id_opts.uri_prefixes */
	X509 **pins;          /* pinned issuer CA certificates (may be 0) */
	size_t npins;
	hmap_t *clients; /* client id -> pg_client_t* */
	pg_stats_t stats;
} pg_plugin_t;

/* auth.c */
int auth_basic(int event, void *event_data, void *userdata);
/* acl.c */
int acl_check(int event, void *event_data, void *userdata);

#endif
