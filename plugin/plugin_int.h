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

/* mosquitto 2.1's <mosquitto.h> brings the broker and plugin API; its old
 * headers only #warning (an error here) that they are replaced.  Before 2.1
 * they are separate, and (2.0.11 header bug) mosquitto_broker.h must come
 * before mosquitto_plugin.h.  scripts/compat builds against both. */
#include <mosquitto.h>
#if LIBMOSQUITTO_VERSION_NUMBER < 2001000
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>
#endif

#include <openssl/x509.h>
#include <stdint.h>

#include "audit.h"
#include "hmap.h"
#include "identity.h"
#include "policy.h"
#include "ratelimit.h"
#include "revocation.h"
#include "util.h"

#define PG_LOG_PREFIX "plantgate: "
/* Every value in a log line goes through util_log_safe() (common/util.c), the
 * one escaping of plugin and bridge (the bridge's util_log_quote wraps it):
 * '"', '\\', control characters and invalid UTF-8 become '?', so no value
 * can close its field, add a field or start a new line.  PG_SAFE(buf, s)
 * writes s into the char array buf. */
#define PG_SAFE(buf, s) util_log_safe((s), (buf), sizeof(buf))
#define PG_PROP_DEVICE "plantgate-device"
#define PG_PROP_RECEIVED "plantgate-received"

/* What the plugin remembers of a client from its connect: the identity the
 * certificate proved, its attributes and ids, and the policy entry it
 * resolved to.  Keyed by client id (bound to the identity); re-resolved on
 * every reload.  Kept after the disconnect for as long as mosquitto may still
 * ask about the client: its will is checked after the DISCONNECT event (or
 * after a will delay), and an MQTT 5 session — clean start or not — lives on
 * for its session expiry interval, which plugins cannot read, with messages
 * queued for it and READ-checked.  An MQTT 3.1.1 clean session is forgotten
 * within a second (its will was checked right after the disconnect); every
 * other offline record is kept, the oldest dropped beyond
 * plugin_opt_offline_sessions (control.c). */
typedef struct pg_client {
	char identity[IDENTITY_MAX + 1];
	char site[IDENTITY_MAX + 1];
	char line[IDENTITY_MAX + 1];
	char serial[68];
	char sha256[65];
	char address[64];
	const policy_binding_t *binding; /* into pg->policy; NULL = refused */
	/* Topic decisions for this subject (acl.c), made on first use; cleared
	 * whenever identity, attributes or binding are set (auth.c, reload in
	 * control.c), and empties itself for another policy or binding. */
	policy_memo_t *memo;
	const struct mosquitto *client;  /* the live connection, NULL when offline */
	/* The connection that went offline last, kept as a tag (never
	 * dereferenced): on reload mosquitto re-checks the session it left with
	 * this very pointer (see auth.c, offline_recheck). */
	const struct mosquitto *session;
	bool rights_changed; /* a reload changed its rights while it was offline */
	bool forget;         /* offline with no session left: drop at the next sweep (1 s) */
	int64_t offline_ms;  /* when it went offline (monotonic, never 0); 0 = live */
	bool evict;          /* marked for dropping (control.c, expire_records) */
	bool kick_pending;
} pg_client_t;

/* Refusals of one identity within one window are written one by one up to
 * PG_DENY_LINES; the rest are counted, with a few examples, and summarised
 * in one log line and one audit line when the window closes. */
#define PG_DENY_WINDOW_MS 10000
#define PG_DENY_LINES 20
#define PG_DENY_EXAMPLES 3

/* What belongs to an identity rather than to one connection: its token
 * buckets, its flood counter and its refusal log budget.  A clean session
 * loses its pg_client_t at every disconnect, and in prefix mode one identity
 * may hold several client ids: neither may start with a full bucket or a
 * zeroed counter.  Keyed by identity in pg_plugin_t.idents; forgotten
 * (control.c, idents_sweep) only once idle long enough that a fresh one is
 * the same: buckets refilled, windows closed, summaries written. */
typedef struct pg_ident {
	ratelimit_bucket_t msgs, bytes;
	ratelimit_strikes_t strikes; /* refused publishes/subscribes, rate-limited or not */
	uint64_t limited;            /* publishes refused by the rate limit, total */
	uint64_t limited_unlogged;   /* ... since the last log line */
	int64_t limited_logged_ms;
	char last_denied[128]; /* access + topic of the last refusal written */
	int64_t deny_window_ms;
	uint32_t deny_logged;     /* refusals written in this window */
	uint64_t deny_suppressed; /* refusals counted, not written, in this window */
	char examples[PG_DENY_EXAMPLES][128];
	uint32_t nexamples;
	int64_t last_ms; /* last refusal or rate-limit use (monotonic) */
} pg_ident_t;

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
	uint64_t wills_stamped;    /* wills the plugin published with the stamp */
	uint64_t wills_denied;     /* wills the policy refused */
	uint64_t sessions_evicted; /* offline records dropped to bound memory */
	uint64_t stamp_oversize;   /* messages the stamp pushed over max_packet */
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
	size_t offline;   /* records in `clients` without a live connection */
	size_t max_offline; /* plugin_opt_offline_sessions */
	size_t forgettable; /* records marked `forget` */
	hmap_t *failures; /* "addr:<ip>" / "id:<identity>" -> pg_failures_t* */
	hmap_t *idents;   /* identity -> pg_ident_t* */
	int64_t last_sweep_ms;
	/* Some record may have kick_pending set: control_tick looks for them
	 * only then, not on every main-loop pass (issue 14: that scan of every
	 * client was a tenth of the plugin's time). */
	bool kick_scan;
	/* limits */
	double rate_msgs;  /* default messages/s per device; 0 = unlimited */
	double rate_bytes; /* default bytes/s per device; 0 = unlimited */
	double burst_seconds;
	uint32_t flood_strikes; /* refused publishes within flood_window_ms that disconnect */
	int64_t flood_window_ms;
	uint32_t connect_failures; /* failed connects per window before throttling */
	int64_t connect_window_ms;
	bool stamp_received;
	uint32_t max_packet;        /* plugin_opt_max_packet_size; 0 = off */
	uint64_t oversize_unlogged; /* ... messages over it not yet logged */
	int64_t oversize_logged_ms;
	/* The broker frees the property list a MESSAGE handler replaced (mosquitto
	 * >= 2.0.15, 2.1); before that the handler must free it.  From
	 * mosquitto_lib_version(): Debian's mosquitto depends on libmosquitto1 of
	 * exactly its own version. */
	bool broker_frees_replaced;
	int mosq_version[3];
	int64_t sys_interval_ms; /* $SYS/plantgate/ publish interval; 0 = off */
	int64_t last_sys_ms;
	/* Between our RELOAD callback and the next tick mosquitto re-runs
	 * BASIC_AUTH for every session it holds (auth.c, offline_recheck). */
	bool reload_pass;
	pg_stats_t stats;
} pg_plugin_t;

/* auth.c */
int auth_basic(int event, void *event_data, void *userdata);
/* Prefix mode: is `cid` (not `identity` itself) an identity `policy` would
 * admit, so that holding it could take over another device's session? */
bool auth_clientid_taken(const policy_t *policy, const char *identity, const char *cid);
/* acl.c */
int acl_check(int event, void *event_data, void *userdata);
/* control.c */
int control_reload(int event, void *event_data, void *userdata);
int control_tick(int event, void *event_data, void *userdata);
int control_disconnect(int event, void *event_data, void *userdata);
/* Make `rec` (the record of client id `cid`, possibly offline) the one of the
 * live connection `client`, keeping the offline count right. */
void control_client_online(pg_plugin_t *pg, pg_client_t *rec, const struct mosquitto *client);
/* Replace the record of `cid` by a new, zeroed one; NULL on ENOMEM. */
pg_client_t *control_client_new(pg_plugin_t *pg, const char *cid);
/* Free a record and what it owns (the clients map's free function). */
void control_client_free(void *rec);
int64_t control_mono_ms(void); /* monotonic clock, for rate limits */
int64_t control_wall_ms(void); /* UTC wall clock, for audit lines */
/* Write an audit line; counts and logs (once per minute) audit failures.
 * limited: repeated identical refusals are counted, not written. */
void control_audit(pg_plugin_t *pg, const audit_event_t *ev, bool limited);
/* The state of `identity`, made on first use; NULL when out of memory or
 * when PG_IDENTS_MAX identities are tracked (limits then do not apply to a
 * new identity until the sweep makes room; refusals are still enforced). */
#define PG_IDENTS_MAX 200000
pg_ident_t *control_ident(pg_plugin_t *pg, const char *identity, int64_t now);
/* Should this refusal by `identity` (state `id`, may be NULL) be written
 * one by one (log and audit)?  Otherwise it is counted for the summary. */
bool control_refusal_written(pg_plugin_t *pg, const char *identity, pg_ident_t *id, const char *access,
                             const char *topic, int64_t now);

/* provenance.c */
int provenance_message(int event, void *event_data, void *userdata);
/* Publish the will this WRITE check is about, stamped with `identity`
 * (borrowed), as the plugin's own message; 0 or a MOSQ_ERR_*.  The caller
 * then denies the check so mosquitto drops its unstamped copy. */
int provenance_will(pg_plugin_t *pg, const struct mosquitto_evt_acl_check *ed, const char *identity);

#endif
