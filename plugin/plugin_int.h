/*
 * plugin_int.h — state shared by the plugin's glue files: plugin.c (init,
 * options, registration), auth.c (who may connect), acl.c (what they may
 * touch), control.c (reload, revocation kicks, tick, disconnect, status),
 * provenance.c (stamping the verified sender).  All state hangs off one
 * struct passed as the callback userdata; the plugin has no globals.
 *
 * mosquitto 2.0 runs every callback on its single main thread: no locking.
 */
#ifndef PG_PLUGIN_INT_H
#define PG_PLUGIN_INT_H

/* 2.0.11 header bug: mosquitto_broker.h must come before mosquitto_plugin.h. */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <openssl/x509.h>
#include <stdint.h>

#include "audit.h"
#include "hmap.h"
#include "identity.h"
#include "policy.h"
#include "ratelimit.h"
#include "revocation.h"

#define PG_LOG_PREFIX "plantgate: "
#define PG_PROP_DEVICE "plantgate-device"
#define PG_PROP_RECEIVED "plantgate-received"

/* What the plugin remembers of a client from its connect: the identity the
 * certificate proved, its attributes and ids, and the policy entry it
 * resolved to.  Keyed by client id (bound to the identity); kept across
 * disconnects of persistent sessions so their queued messages are checked
 * with the same facts; re-resolved on every reload. */
typedef struct pg_client {
	char identity[IDENTITY_MAX + 1];
	char site[IDENTITY_MAX + 1];
	char line[IDENTITY_MAX + 1];
	char serial[68];
	char sha256[65];
	char address[64];
	const policy_binding_t *binding; /* into pg->policy; NULL = refused */
	const struct mosquitto *client;  /* the live connection, NULL when offline */
	/* The connection that went offline last, kept as a tag (never
	 * dereferenced): on reload mosquitto re-checks the session it left with
	 * this very pointer (see auth.c, offline_recheck). */
	const struct mosquitto *session;
	bool rights_changed; /* a reload changed its rights while it was offline */
	ratelimit_bucket_t msgs, bytes;
	ratelimit_strikes_t strikes;
	uint64_t limited;          /* publishes refused by the rate limit, total */
	uint64_t limited_unlogged; /* ... since the last log line */
	int64_t limited_logged_ms;
	bool kick_pending;
	/* Refusal logging: identical repeats and floods are counted, not logged. */
	char last_denied[128]; /* access + topic of the last refusal logged */
	int64_t deny_window_ms;
	uint32_t deny_logged;    /* lines logged in this window */
	uint64_t deny_suppressed; /* refusals not logged in this window */
} pg_client_t;

/* Failed connects from one address or identity, for throttling. */
typedef struct pg_failures {
	ratelimit_strikes_t strikes;
	uint64_t suppressed; /* refusals not logged since the last summary */
	int64_t last_log_ms;
} pg_failures_t;

typedef struct pg_stats {
	uint64_t connects_ok;
	uint64_t connects_refused;
	uint64_t connects_throttled;
	uint64_t publish_denied;
	uint64_t subscribe_denied;
	uint64_t read_denied;
	uint64_t rate_limited;
	uint64_t kicks;
	uint64_t reloads;
	uint64_t reload_failures;
	uint64_t forged_properties;
	uint64_t offline_rechecks; /* reload re-checks of sessions with no connection */
	uint64_t audit_errors;
} pg_stats_t;

typedef struct pg_plugin {
	mosquitto_plugin_id_t *pid;
	char *policy_path;
	policy_t *policy;
	char *revocation_path; /* revoked.txt from scripts/pki, optional */
	char *crl_path;        /* the CA's CRL, optional */
	revocation_t *revoked;
	char *audit_path;
	audit_t *audit;
	identity_opts_t id_opts;
	char *uri_prefix_buf; /* storage behind id_opts.uri_prefixes */
	X509 **pins;          /* pinned issuer CA certificates (may be 0) */
	size_t npins;
	hmap_t *pinned_ok; /* SHA-256 of leaf certificates already verified against a pin */
	hmap_t *clients;  /* client id -> pg_client_t* */
	hmap_t *failures; /* "addr:<ip>" / "id:<identity>" -> pg_failures_t* */
	/* limits */
	double rate_msgs;  /* default messages/s per device; 0 = unlimited */
	double rate_bytes; /* default bytes/s per device; 0 = unlimited */
	double burst_seconds;
	uint32_t flood_strikes; /* refused publishes within flood_window_ms that disconnect */
	int64_t flood_window_ms;
	uint32_t connect_failures; /* failed connects per window before throttling */
	int64_t connect_window_ms;
	bool stamp_received;
	int64_t sys_interval_ms; /* $SYS/plantgate/ publish interval; 0 = off */
	int64_t last_sys_ms;
	/* Between our RELOAD callback and the next tick mosquitto re-runs
	 * BASIC_AUTH for every session it holds (auth.c, offline_recheck). */
	bool reload_pass;
	pg_stats_t stats;
} pg_plugin_t;

/* auth.c */
int auth_basic(int event, void *event_data, void *userdata);
/* acl.c */
int acl_check(int event, void *event_data, void *userdata);
/* control.c */
int control_reload(int event, void *event_data, void *userdata);
int control_tick(int event, void *event_data, void *userdata);
int control_disconnect(int event, void *event_data, void *userdata);
int64_t control_mono_ms(void); /* monotonic clock, for rate limits */
int64_t control_wall_ms(void); /* UTC wall clock, for audit lines */
/* Write an audit line; counts and logs (once per minute) audit failures.
 * limited: repeated identical refusals are counted, not written. */
void control_audit(pg_plugin_t *pg, const audit_event_t *ev, bool limited);
/* provenance.c */
int provenance_message(int event, void *event_data, void *userdata);

#endif
