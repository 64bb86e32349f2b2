/*
 * bconf.h — the bridge configuration: one file, one directive per line,
 * parsed by a table (a row per key: name, argument count, type, field), so
 * every key is checked the same way.  Unknown keys are refused, a key given
 * twice "is duplicate", every error carries "file:line:".  After parsing,
 * bconf_load() applies the defaults and checks the combination (required
 * keys, the cloud profile's limits); bconf_check_files() checks that the
 * named files can be read, and bconf_cloud_topic_ok() checks each message's
 * cloud topic at run time.
 *
 * See docs/bridge.md for the reference and config/bridge.example.
 */
#ifndef PG_BCONF_H
#define PG_BCONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "whitelist.h"

/* How MQTT reaches the cloud: over TLS on a TCP port, or over WebSockets in
 * TLS (wss://, the port of HTTPS).  Either may go through cloud_proxy. */
enum bconf_transport { BCONF_TRANSPORT_TLS = 0, BCONF_TRANSPORT_WSS };
enum bconf_when_full { BCONF_FULL_BACKPRESSURE = 0, BCONF_FULL_DROP_OLDEST };
/* queue_commit_interval auto: pause only while messages come fast (plant.c,
 * PLANT_AUTO_RATE). */
#define BCONF_COMMIT_AUTO (-1)
/* sign_algorithm; the values are envelope.h's ENVELOPE_ALG_*. */
enum bconf_sign_alg { BCONF_SIGN_AUTO = 0, BCONF_SIGN_ED25519 = 1, BCONF_SIGN_ECDSA_P256 = 2 };

/* A cloud profile as data: what the endpoint accepts, checked at config
 * check (bconf_load), per message (bconf_cloud_topic_ok, the signed size at
 * ingest) and shown by the doctor.  One row per profile in bconf.c; a new
 * cloud is a new row.  0 / NULL = no such limit.  docs/bridge.md, "Cloud
 * profiles", cites the published source of every number. */
typedef struct bconf_profile_desc {
	const char *name;        /* the cloud_profile value */
	const char *cloud;       /* for messages: "AWS IoT Core" */
	uint64_t max_payload;    /* bytes on the wire, after the MQTT 3.1.1 signing wrapper */
	size_t max_topic;        /* bytes of a cloud topic */
	int max_slashes;         /* '/' in a cloud topic; -1 = no limit */
	const char *ingest_prefix; /* "$aws/rules/": Basic Ingest; its first 3 levels count
	                              toward neither max_topic nor max_slashes */
	size_t max_client_id;    /* bytes (AWS) or characters (Azure device id) */
	bool client_id_no_dollar; /* a client id must not start with '$' */
	int64_t max_rate;        /* publishes/s per connection (default and maximum drain_rate) */
	int64_t max_inflight;    /* unacknowledged QoS 1 publishes per connection */
	uint64_t max_bytes_per_s; /* per connection (default and maximum drain_byte_rate) */
	int64_t max_keepalive_s;
	int protocol;            /* the only MQTT protocol it speaks (4 = 3.1.1), 0 = any */
	const char *alpn_443;    /* ALPN that MQTT on port 443 needs */
	const char *ws_path;     /* cloud_transport wss at this default path; NULL: no wss */
	const char *ws_refused;  /* !ws_path: why, and what to use instead */
	bool hub;                /* needs cloud_azure_hub; username from hub and device id */
	const char *d2c_topic;   /* every rule sends to this topic ("%s" = the device id) */
} bconf_profile_desc_t;

/* The row of a profile (the generic one for an unknown value). */
const bconf_profile_desc_t *bconf_profile(int64_t profile);

/* The host name suffixes of Azure IoT Hub, public and sovereign clouds. */
extern const char *const bconf_azure_suffixes[];

/* The operator HTTP endpoints listen here unless told otherwise (9464: the
 * port commonly used by Prometheus exporters of this kind). */
#define BCONF_HTTP_LISTEN_DEFAULT "127.0.0.1:9464"

/* Every key of the file; the index into bconf_t.line[]. */
enum bconf_key {
	BK_PLANT_HOST,
	BK_PLANT_PORT,
	BK_PLANT_CAFILE,
	BK_PLANT_CERTFILE,
	BK_PLANT_KEYFILE,
	BK_PLANT_CLIENT_ID,
	BK_PLANT_KEEPALIVE,
	BK_CLOUD_HOST,
	BK_CLOUD_PORT,
	BK_CLOUD_CAFILE,
	BK_CLOUD_USE_SYSTEM_TRUST,
	BK_CLOUD_CERTFILE,
	BK_CLOUD_KEYFILE,
	BK_CLOUD_TLS_VERSION,
	BK_CLOUD_ALPN,
	BK_CLOUD_PROTOCOL,
	BK_CLOUD_CLIENT_ID,
	BK_CLOUD_KEEPALIVE,
	BK_CLOUD_PROFILE,
	BK_CLOUD_AZURE_HUB,
	BK_CLOUD_TRANSPORT,
	BK_CLOUD_WS_PATH,
	BK_CLOUD_PROXY,
	BK_CLOUD_PROXY_AUTH_FILE,
	BK_CLOUD_PROXY_CAFILE,
	BK_CLOUD_NO_PROXY,
	BK_FORWARD,
	BK_QUEUE_PATH,
	BK_QUEUE_MAX_BYTES,
	BK_QUEUE_MAX_MESSAGES,
	BK_QUEUE_WHEN_FULL,
	BK_QUEUE_MIN_FREE_DISK,
	BK_QUEUE_COMMIT_INTERVAL,
	BK_DRAIN_RATE,
	BK_DRAIN_INFLIGHT,
	BK_DRAIN_BYTE_RATE,
	BK_DEAD_LETTER_AFTER,
	BK_RECONNECT_MIN,
	BK_RECONNECT_MAX,
	BK_LOG_LEVEL,
	BK_HTTP_LISTEN,
	BK_HTTP_TLS_CERT,
	BK_HTTP_TLS_KEY,
	BK_HTTP_TLS_CLIENT_CA,
	BK_HTTP_MAX_CONNECTIONS,
	BK_QUEUE_WARN_MESSAGES,
	BK_QUEUE_WARN_AGE,
	BK_USER,
	BK_ALLOW_ROOT,
	BK_SITE_ID,
	BK_SIGN_KEY,
	BK_SIGN_ALGORITHM,
	BK_COUNT
};

typedef struct bconf {
	char *path; /* the file parsed, owned */

	char *plant_host;
	int64_t plant_port;
	char *plant_cafile;
	char *plant_certfile;
	char *plant_keyfile;
	char *plant_client_id;
	int64_t plant_keepalive_ms;

	char *cloud_host;
	int64_t cloud_port;
	char *cloud_cafile;
	bool cloud_use_system_trust;
	char *cloud_certfile;
	char *cloud_keyfile;
	int64_t cloud_tls_version; /* 12 or 13: the minimum */
	char *cloud_alpn;
	int64_t cloud_protocol; /* 4 (3.1.1) or 5 */
	char *cloud_client_id;
	int64_t cloud_keepalive_ms;
	int64_t cloud_profile; /* its row in bconf.c's profile table (bconf_profile()) */
	char *cloud_azure_hub;
	char *cloud_username; /* derived (Azure), never configured directly */
	int64_t cloud_transport; /* enum bconf_transport */
	char *cloud_ws_path;     /* wss: the HTTP path of the upgrade request */
	char *cloud_proxy;       /* http://HOST:PORT or https://HOST:PORT, or NULL */
	char *cloud_proxy_auth_file; /* user:password for Basic, mode 0600 */
	char *cloud_proxy_cafile;    /* https:// proxy: its CA (default: system store) */
	char *cloud_no_proxy;        /* hosts reached directly (see tunproto.h) */

	whitelist_t whitelist;

	char *queue_path;
	uint64_t queue_max_bytes;
	int64_t queue_max_messages;
	int64_t queue_when_full; /* enum bconf_when_full */
	uint64_t queue_min_free_disk;
	int64_t queue_commit_interval_ms; /* shortest time between two commits' starts, or
	                                   * BCONF_COMMIT_AUTO */

	int64_t drain_rate;     /* messages per second, 0 = unpaced */
	int64_t drain_inflight; /* unacknowledged QoS 1 publishes at the cloud */
	uint64_t drain_byte_rate; /* published bytes per second (burst: one second), 0 = unpaced */
	int64_t dead_letter_after; /* the cloud dropped the link this many times in a row on
	                            * one message: set it aside; 0 = never */
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t log_level; /* enum blog_level */

	/* Operator HTTP endpoints (http.c): "off", or HOST:PORT */
	char *http_listen;
	char *http_host;   /* derived from http_listen: the IP address; NULL when off */
	int64_t http_port; /* derived; 0 when off */
	char *http_tls_cert;
	char *http_tls_key;
	char *http_tls_client_ca;
	int64_t http_max_connections; /* open HTTP/WebSocket connections at once */
	int64_t queue_warn_messages; /* /healthz: 503 at this backlog (default 80% of max) */
	int64_t queue_warn_age_ms;   /* /healthz: 503 when the oldest is this old */

	/* Least privilege (priv.c): started as root, drop to this user. */
	char *user;
	bool allow_root; /* `user root` is refused unless this is set */

	/* Integrity envelope (docs/integrity.md): every message leaving is signed
	 * with sign_key when it is set (sign.c loads and checks the key). */
	char *site_id;          /* the plant's name in every signed message */
	char *sign_key;         /* PEM private key, mode 0600 or 0400 */
	int64_t sign_algorithm; /* enum bconf_sign_alg; AUTO = what the key is */

	int line[BK_COUNT]; /* line where each key was set; 0 = default */
} bconf_t;

/* Parse `path` into a fresh *cfg (defaults applied), then validate.  Returns
 * the number of errors (0 = good); the errors, one "file:line: message" per
 * line, are in err.  On errors *cfg is freed and zeroed.  Does not look at the
 * files the configuration names: see bconf_check_files. */
int bconf_load(const char *path, bconf_t *cfg, char *err, size_t errlen);

/* Same for an in-memory text; `name` stands for the file in messages. */
int bconf_load_buffer(const char *name, const char *text, size_t len, bconf_t *cfg, char *err,
                      size_t errlen);

/* Check that every certificate, key and CA file exists and is readable and
 * that the queue's directory exists.  Appends "file:line: key 'path': reason"
 * lines to err; returns the number of problems. */
int bconf_check_files(const bconf_t *cfg, char *err, size_t errlen);

/* Print the effective configuration (defaults included) in file syntax, such
 * that loading the output gives the same configuration. */
void bconf_print(const bconf_t *cfg, FILE *out);

/* Free everything *cfg owns and zero it.  NULL and half-built are fine. */
void bconf_free(bconf_t *cfg);

/* The key's name as written in the file. */
const char *bconf_key_name(enum bconf_key k);

const char *bconf_profile_name(int64_t profile);

/* True when a cloud topic respects the profile's limits; otherwise *why is a
 * short reason for the log ("cloud-topic-too-deep").  Checked per message,
 * because a '#' rule cannot be bounded at config check. */
bool bconf_cloud_topic_ok(const bconf_t *cfg, const char *topic, const char **why);

#endif
